#!/usr/bin/env bash
# Decode + account throughput vs tshark, and replay's peak RSS, on the same >= 1 M frame capture
# of mixed real traffic (built from ../shared/pcaps). Prints figures; asserts nothing.
# Usage: bench/decode.sh [FRAMES]   (run by `make bench-decode`)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${1:-1048576}
OUT=${TMPDIR:-/tmp}/netmon-bench-$$
mkdir -p "$OUT"
trap 'rm -rf "$OUT"' EXIT
PCAP="$OUT/mixed.pcap"

cargo build -q --profile bench-release --example bench_decode --bin netmon-agent 2>/dev/null
./target/bench-release/examples/bench_decode --frames "$FRAMES" --write "$PCAP"
N=$(./target/bench-release/netmon-agent replay --config /dev/null --json "$PCAP" 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["agent"]["capture"]["packetsSeen"])')

if command -v tshark >/dev/null; then
  S=$(date +%s.%N)
  tshark -n -q -z endpoints,eth -r "$PCAP" >/dev/null 2>&1
  E=$(date +%s.%N)
  python3 - "$S" "$E" "$N" <<'PY'
import sys
s, e, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"tshark -n -q -z endpoints,eth: {n / (e - s) / 1e6:.3f} M frames/s, {(e - s) * 1e9 / n:.0f} ns/frame ({e - s:.1f} s)")
PY
else
  echo "tshark: not installed, skipped"
fi

# The release binary (size-tuned, as shipped), table size 4096, reading the file.
cargo build -q --release --bin netmon-agent 2>/dev/null
/usr/bin/time -f "%M %e" -o "$OUT/time" ./target/release/netmon-agent replay --config /dev/null \
  --table-size 4096 "$PCAP" >/dev/null 2>&1
read -r RSS SECS < "$OUT/time"
python3 - "$RSS" "$SECS" "$N" <<'PY'
import sys
rss, secs, n = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"replay (release, DEVICE_TABLE_SIZE 4096): peak RSS {rss} KiB ({rss / 1024:.2f} MiB), "
      f"{secs:.2f} s for {n} frames incl. file reading ({n / max(secs, 1e-9) / 1e6:.1f} M frames/s)")
PY
