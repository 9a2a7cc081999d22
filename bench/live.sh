#!/usr/bin/env bash
# Live capture figures on a namespace lab (root only; traffic stays in the namespaces made here):
#  1. idle wake-ups per second and CPU of `run` (cycle 5 s, ARP scan every 60 s) over IDLE_S s;
#  2. `scan` of a /24 with 8 clients against arp-scan (3 runs each);
#  3. frames from trafgen (client 0 -> client 1, through br-lan) at increasing rates: agent drops,
#     exact tx count, CPU per million frames, beside tcpdump -w /dev/null and darkstat in the
#     same run. darkstat reads its ring only every 500 ms, through libpcap's 2 MiB buffer, and
#     drops what does not fit: its frames are the ones it accounted (`tp` on its page, not `pc`,
#     which is libpcap's ps_recv and counts the dropped ones too), and the lowest rate is one it
#     keeps up with, so both process the same frames there. Before each step every tool's CPU
#     is read over IDLE_STEP_S s without traffic, so the cost per frame can be given with and
#     without the tools' fixed cost per second (cycle, timers).
# Usage: bench/live.sh [BIN]   (default target/bench-release/netmon-agent)
set -euo pipefail
BIN=${1:-target/bench-release/netmon-agent}
BIN=$(realpath "$BIN")
IDLE_S=${IDLE_S:-30}
RATES=${RATES:-"2000 50000 100000 200000 max"}  # max: trafgen unpaced
FRAMES=${FRAMES:-500000}  # per step; a paced step sends at most STEP_S s of frames
STEP_S=${STEP_S:-10}
IDLE_STEP_S=${IDLE_STEP_S:-3}
P=nbl$$
R=${P}r
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in $(ip netns list | awk '{print $1}' | grep "^$P" || true); do ip netns del "$n"; done
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "bench/live.sh: needs root (network namespaces)"; exit 1; }

ip netns add $R
ip -n $R link add br-lan type bridge
ip -n $R link set br-lan up
ip -n $R link set lo up
ip -n $R addr add 10.97.0.1/24 dev br-lan
for i in 0 1 2 3 4 5 6 7; do
  C=${P}c$i
  ip netns add $C
  ip -n $R link add lan$i type veth peer name eth0 netns $C
  ip -n $C link set eth0 address 02:00:00:97:00:1$i
  ip -n $R link set lan$i master br-lan up
  ip -n $C link set eth0 up
  ip -n $C addr add 10.97.0.$((10 + i))/24 dev eth0
done

# CPU time in ns from the scheduler (/proc/PID/schedstat), not 10 ms ticks: a few hundred
# thousand frames cost only a few ticks.
cpu_ticks() { cat /proc/$1/task/*/schedstat | awk '{s += $1} END {print s}'; }
# darkstat's counters on its page: tp = frames it accounted, pd = frames its ring dropped.
dk_count() { ip netns exec $R curl -s http://127.0.0.1:6677/ | grep -o "id=\"$1\">[0-9,]*" | tr -dc 0-9; }
vcs() { awk '/^voluntary_ctxt_switches/ {print $2}' /proc/$1/status; }
HZ=1000000000

echo "== idle: run --cycle 5, SCAN_INTERVAL=60, ${IDLE_S} s; tcpdump -w /dev/null and darkstat on the same bridge"
ip netns exec $R "$BIN" run --config /dev/null -i br-lan --cycle 5 >/dev/null 2>&1 &
A=$!; PIDS+=($A)
ip netns exec $R tcpdump -q -i br-lan -w /dev/null 2>/dev/null &
T=$!; PIDS+=($T)
ip netns exec $R darkstat -i br-lan --no-daemon --no-dns -b 127.0.0.1 -p 6677 >/dev/null 2>&1 &
D=$!; PIDS+=($D)
sleep 2
declare -A V0 C0
for p in $A $T $D; do V0[$p]=$(vcs $p); C0[$p]=$(cpu_ticks $p); done
sleep "$IDLE_S"
for pair in "netmon-agent:$A" "tcpdump:$T" "darkstat:$D"; do
  name=${pair%%:*}; p=${pair##*:}
  v1=$(vcs $p); c1=$(cpu_ticks $p)
  awk -v n="$name" -v v=$((v1 - V0[$p])) -v c=$((c1 - C0[$p])) -v s="$IDLE_S" -v hz="$HZ" \
    'BEGIN {printf "idle %s: wake-ups: %d in %d s = %.2f/s; CPU %.4f s = %.4f%%\n", n, v, s, v / s, c / hz, 100 * c / hz / s}'
  echo "rss $name $(awk '/^VmRSS/ {print $2}' /proc/$p/status) KiB"
done
kill $A $T $D; wait $A $T $D 2>/dev/null || true

echo "== scan of 10.97.0.0/24 (8 hosts answer), 3 runs each"
for i in 1 2 3; do
  a=$(date +%s.%N); ip netns exec $R "$BIN" scan --config /dev/null -i br-lan >/dev/null; b=$(date +%s.%N)
  c=$(date +%s.%N); ip netns exec $R arp-scan -q -I br-lan 10.97.0.0/24 >/dev/null; d=$(date +%s.%N)
  awk -v x="$(echo "$b - $a" | bc)" -v y="$(echo "$d - $c" | bc)" 'BEGIN {printf "netmon-agent scan %.3f s   arp-scan %.3f s   ratio %.2f\n", x, y, x / y}'
done

echo "== capture: trafgen ${FRAMES} IPv4/UDP frames client0 -> client1 (60..1500 B) per rate"
# IPv4/UDP 10.97.0.10:9 -> 10.97.0.99:9 via client 1 MAC (frames of 60, 600 and 1500 bytes; client 1
# drops them silently: no ICMP error, no ARP, so client 0 sends nothing else): traffic darkstat
# accounts too (it ignores non-IP frames, which would make its CPU figure meaningless).
cat >/tmp/$P.trafgen <<'CFG'
{ 0x02,0x00,0x00,0x97,0x00,0x11, 0x02,0x00,0x00,0x97,0x00,0x10, 0x08,0x00, 0x45,0x00,const16(46),0x00,0x00,0x40,0x00,64,17,csumip(14,33), 10,97,0,10, 10,97,0,99, const16(9),const16(9),const16(26),0x00,0x00, fill(0x55, 18) }
{ 0x02,0x00,0x00,0x97,0x00,0x11, 0x02,0x00,0x00,0x97,0x00,0x10, 0x08,0x00, 0x45,0x00,const16(586),0x00,0x00,0x40,0x00,64,17,csumip(14,33), 10,97,0,10, 10,97,0,99, const16(9),const16(9),const16(566),0x00,0x00, fill(0x55, 558) }
{ 0x02,0x00,0x00,0x97,0x00,0x11, 0x02,0x00,0x00,0x97,0x00,0x10, 0x08,0x00, 0x45,0x00,const16(1486),0x00,0x00,0x40,0x00,64,17,csumip(14,33), 10,97,0,10, 10,97,0,99, const16(9),const16(9),const16(1466),0x00,0x00, fill(0x55, 1458) }
CFG
for rate in $RATES; do
  ip netns exec $R "$BIN" run --config /dev/null -i br-lan --cycle 1 --set SCAN_INTERVAL=0 --set RING_KB=${RING_KB:-8192} >/tmp/$P.out 2>/dev/null &
  A=$!; PIDS+=($A)
  ip netns exec $R tcpdump -q -i br-lan -w /dev/null 2>/tmp/$P.tcpdump &
  T=$!; PIDS+=($T)
  ip netns exec $R darkstat -i br-lan --no-daemon --no-dns -b 127.0.0.1 -p 6677 >/tmp/$P.darkstat 2>&1 &
  D=$!; PIDS+=($D)
  sleep 2
  n=$FRAMES
  [ "$rate" = max ] || [ $((rate * STEP_S)) -ge "$FRAMES" ] || n=$((rate * STEP_S))
  ia=$(cpu_ticks $A); id=$(cpu_ticks $D); i0=$(date +%s.%N)
  sleep "$IDLE_STEP_S"
  ia1=$(cpu_ticks $A); id1=$(cpu_ticks $D); i1=$(date +%s.%N)
  dk0=$(dk_count tp); dd0=$(dk_count pd)
  tx0=$(ip netns exec ${P}c0 cat /sys/class/net/eth0/statistics/tx_packets)
  base=$(tail -1 /tmp/$P.out | python3 -c 'import json,sys; d=json.load(sys.stdin); print(next((x["bandwidth"]["txPacketsTotal"] for x in d["network"]["connectedDevices"] if x["mac"]=="02:00:00:97:00:10"),0))')
  ca=$(cpu_ticks $A); ct=$(cpu_ticks $T); cd=$(cpu_ticks $D); w0=$(date +%s.%N)
  g0=$(date +%s.%N)
  ip netns exec ${P}c0 trafgen -q -C -P 1 -o eth0 -i /tmp/$P.trafgen -n "$n" $([ "$rate" = max ] || echo -b "${rate}pps") >/dev/null 2>&1
  g1=$(date +%s.%N)
  sleep 2
  tx1=$(ip netns exec ${P}c0 cat /sys/class/net/eth0/statistics/tx_packets)
  ca1=$(cpu_ticks $A); ct1=$(cpu_ticks $T); cd1=$(cpu_ticks $D); w1=$(date +%s.%N)
  dk1=$(dk_count tp); dd1=$(dk_count pd)
  read -r got drops < <(tail -1 /tmp/$P.out | python3 -c 'import json,sys; d=json.load(sys.stdin); print(next((x["bandwidth"]["txPacketsTotal"] for x in d["network"]["connectedDevices"] if x["mac"]=="02:00:00:97:00:10"),0), d["agent"]["capture"]["packetsDropped"])')
  kill $A $T $D; wait $A $T $D 2>/dev/null || true
  sent=$((tx1 - tx0)); got=$((got - base))
  exact=$([ "$sent" = "$got" ] && echo yes || echo "no(sent=$sent,counted=$got)")
  tdrop=$(grep -o '[0-9]* packets dropped by kernel' /tmp/$P.tcpdump | awk '{print $1}' || true)
  awk -v r="$rate" -v el="$(echo "$g1 - $g0" | bc)" -v d="$drops" -v e="$exact" -v c=$((ca1 - ca)) -v t=$((ct1 - ct)) -v k=$((cd1 - cd)) -v hz="$HZ" -v n="$sent" -v td="${tdrop:-?}" \
    -v dp=$(( ${dk1:-0} - ${dk0:-0} )) -v dd=$(( ${dd1:-0} - ${dd0:-0} )) -v w="$(echo "$w1 - $w0" | bc)" \
    -v il="$(echo "$i1 - $i0" | bc)" -v ia=$((ia1 - ia)) -v id=$((id1 - id)) \
    'BEGIN {printf "rate %s achieved %d agent_drops %s exact %s agent_cpu %.4f tcpdump_cpu %.4f tcpdump_drops %s darkstat_cpu %.4f sent %d darkstat_processed %d darkstat_dropped %d window %.3f agent_idle_cpu_per_s %.6f darkstat_idle_cpu_per_s %.6f\n", r, n / el, d, e, c / hz, t / hz, td, k / hz, n, dp, dd, w, ia / hz / il, id / hz / il}'
  awk -v r="$rate" -v c=$((ca1 - ca)) -v k=$((cd1 - cd)) -v n="$sent" -v dp=$(( ${dk1:-0} - ${dk0:-0} )) -v w="$(echo "$w1 - $w0" | bc)" \
    -v il="$(echo "$i1 - $i0" | bc)" -v ia=$((ia1 - ia)) -v id=$((id1 - id)) \
    'BEGIN {a = c / n; d = dp > 0 ? k / dp : 0; am = (c - ia / il * w) / n; dm = dp > 0 ? (k - id / il * w) / dp : 0;
      q = d > 0 ? a / d : 0; qm = dm > 0 ? am / dm : 0;
      printf "  per frame at %s: agent %.1f ns (%.1f ns above its idle CPU); darkstat %.1f ns per frame it accounted (%.1f above idle), %d of %d frames; agent/darkstat %.2f (%.2f above idle)\n",
        r, a, am, d, dm, dp, n, q, qm}'
done
rm -f /tmp/$P.*
