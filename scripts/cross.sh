#!/usr/bin/env bash
# Static musl cross builds without Docker: zig + cargo-zigbuild (from PyPI, in .venv), and
# -Zbuild-std (RUSTC_BOOTSTRAP=1 + rust-src) for the targets that have no prebuilt std here
# (armv7 hard float, mipsel, mips). Runners and per-target rustflags: .cargo/config.toml.
#
#   scripts/cross.sh deps [qemu]      install .venv/rustup bits; name missing apt packages in one line
#   scripts/cross.sh build TARGET     release build -> dist/netmon-agent-TARGET (stripped, static)
#   scripts/cross.sh check TARGET     run dist/netmon-agent-TARGET under qemu: --version, snapshot
#                                     (schema-valid), replay per-MAC counts == the x86_64 build's
#   scripts/cross.sh unit TARGET      the unit tests (cargo test --lib --bins) under qemu
#   scripts/cross.sh unit-opt TARGET  the same, optimized as `build` optimizes (release profile,
#                                     the code-generation flags of TINY; tests keep unwinding)
#   scripts/cross.sh size [TARGET..]  print stripped sizes; fail when mipsel is over SIZE_BUDGET
#   scripts/cross.sh target-of ARCH   the Rust target of a short name or an OpenWrt arch
#   scripts/cross.sh arches           every OpenWrt arch we build for, with its Rust target
#
# Environment: TINY (build-std targets only: armv7, mipsel, mips), default 2:
#   TINY=0  a plain release build (panic messages, unwind tables, Debug formatting);
#   TINY=1  std's optimize_for_size, panic=immediate-abort (a panic aborts without a message),
#           no unwind tables (nothing unwinds; on MIPS musl's are discarded at link time), no
#           panic locations, no MIR optimizations, MIPS linked non-PIE, ARMv7 code in Thumb-2;
#   TINY=2  also -Zfmt-debug=none: `{:?}` prints nothing. No user-visible message uses Debug
#           formatting (rustls's Debug-only reasons are described by ship::tls::describe).
# SHARED (default ../shared) holds the schema and the captures.
# Size experiments: CARGO_PROFILE_RELEASE_OPT_LEVEL=s, EXTRA_RUSTFLAGS="...", CARGO_FLAGS="...".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The caller's python (with jsonschema) for the checks; .venv's (with ziglang) for cargo-zigbuild.
PY=${PYTHON:-$(command -v python3 || echo python3)}
export PATH="$ROOT/.venv/bin:$PATH"
TINY=${TINY:-2}
SHARED=${SHARED:-$ROOT/../shared}
SIZE_BUDGET=${SIZE_BUDGET:-1000000}
DIST=$ROOT/dist

ALL_TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf armv7-unknown-linux-musleabi mipsel-unknown-linux-musl mips-unknown-linux-musl"

die() { echo "cross.sh: $*" >&2; exit 1; }

# OpenWrt package architectures (the ARCH of `make ipk`/`make apk`) of the families we build,
# and their Rust targets, following OpenWrt's rust-values.mk: ARMv7 with an FPU (a vfp/neon
# suffix) is musleabihf, ARMv7 without one (bcm53xx's arm_cortex-a9, mt7629's arm_cortex-a7) is
# soft-float musleabi; MIPS32r2 cores are the mips/mipsel musl targets (soft-float, as OpenWrt
# builds them; a static soft-float binary also runs on mipsel_24kc_24kf's FPU). Not built: MIPS32r1 (mips_mips32, mipsel_mips32), mips64, ARMv5/v6, i386.
OPENWRT_ARCHES="
x86_64 x86_64-unknown-linux-musl
aarch64_cortex-a53 aarch64-unknown-linux-musl
aarch64_cortex-a72 aarch64-unknown-linux-musl
aarch64_cortex-a76 aarch64-unknown-linux-musl
aarch64_generic aarch64-unknown-linux-musl
arm_cortex-a5_vfpv4 armv7-unknown-linux-musleabihf
arm_cortex-a7 armv7-unknown-linux-musleabi
arm_cortex-a7_neon-vfpv4 armv7-unknown-linux-musleabihf
arm_cortex-a7_vfpv4 armv7-unknown-linux-musleabihf
arm_cortex-a8_vfpv3 armv7-unknown-linux-musleabihf
arm_cortex-a9 armv7-unknown-linux-musleabi
arm_cortex-a9_neon armv7-unknown-linux-musleabihf
arm_cortex-a9_vfpv3-d16 armv7-unknown-linux-musleabihf
arm_cortex-a15_neon-vfpv4 armv7-unknown-linux-musleabihf
mips_24kc mips-unknown-linux-musl
mips_4kec mips-unknown-linux-musl
mipsel_24kc mipsel-unknown-linux-musl
mipsel_24kc_24kf mipsel-unknown-linux-musl
mipsel_74kc mipsel-unknown-linux-musl
"

# Short names used by `make build-<arch>`, Rust triples, and OpenWrt arch names (exact).
target_of() {
    case "$1" in
        x86_64-unknown-linux-musl | aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf | \
            armv7-unknown-linux-musleabi | mipsel-unknown-linux-musl | mips-unknown-linux-musl)
            echo "$1"; return ;;
        aarch64) echo aarch64-unknown-linux-musl; return ;;
        armv7) echo armv7-unknown-linux-musleabihf; return ;;
        armv7sf) echo armv7-unknown-linux-musleabi; return ;;
        mipsel | mips) echo "$1-unknown-linux-musl"; return ;;
    esac
    local t
    t=$(awk -v a="$1" '$1 == a {print $2}' <<<"$OPENWRT_ARCHES")
    [ -n "$t" ] || die "unknown target or arch '$1' (one of: x86_64 aarch64 armv7 armv7sf mipsel mips, a Rust musl triple, or an OpenWrt arch: $(awk 'NF {printf "%s ", $1}' <<<"$OPENWRT_ARCHES"))"
    echo "$t"
}

needs_build_std() {
    case "$1" in armv7-* | mips-* | mipsel-*) return 0 ;; *) return 1 ;; esac
}

qemu_of() {
    case "$1" in
        x86_64-*) echo "" ;;
        aarch64-*) echo qemu-aarch64-static ;;
        armv7-*) echo qemu-arm-static ;;
        mipsel-*) echo qemu-mipsel-static ;;
        mips-*) echo qemu-mips-static ;;
    esac
}

deps() {
    local missing_apt=() want_qemu=${1:-}
    command -v python3 >/dev/null || missing_apt+=(python3 python3-venv)
    command -v file >/dev/null || missing_apt+=(file)
    command -v mips-linux-gnu-strip >/dev/null || missing_apt+=(binutils-mips-linux-gnu)
    if [ -n "$want_qemu" ]; then
        for q in qemu-aarch64-static qemu-arm-static qemu-mipsel-static qemu-mips-static; do
            command -v $q >/dev/null || { missing_apt+=(qemu-user-static); break; }
        done
    fi
    if [ ${#missing_apt[@]} -gt 0 ]; then
        die "missing: ${missing_apt[*]} (apt-get install -y --no-install-recommends ${missing_apt[*]})"
    fi
    if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
        if [ ! -x .venv/bin/cargo-zigbuild ]; then
            echo "cross.sh: installing cargo-zigbuild and zig into .venv (PyPI)" >&2
            python3 -m venv .venv >/dev/null 2>&1 || die "missing: python3-venv (apt-get install -y python3-venv)"
            .venv/bin/pip install -q --disable-pip-version-check cargo-zigbuild ||
                die "missing: cargo-zigbuild (pip install cargo-zigbuild failed)"
        fi
    fi
    command -v rustup >/dev/null || die "missing: rustup (needed for the musl targets and rust-src)"
    local installed
    installed=$(rustup target list --installed)
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        grep -qx "$t" <<<"$installed" || rustup target add "$t" >&2
    done
    rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src >&2
    if [ -n "$want_qemu" ]; then
        "$PY" -c 'import jsonschema' 2>/dev/null ||
            die "missing: python3 jsonschema (pip install jsonschema) for the snapshot schema check"
    fi
}

# cargo-zigbuild arguments for TARGET, into the array ZIG_ARGS.
zig_args() {
    local t=$1 flags=()
    ZIG_ARGS=(--target "$t")
    if needs_build_std "$t"; then
        ZIG_ARGS+=(-Zbuild-std=std,panic_abort)
        if [ "$TINY" != 0 ]; then
            ZIG_ARGS+=(-Zbuild-std-features=optimize_for_size)
            flags+=(-Zunstable-options -Cpanic=immediate-abort)
            # With nothing to unwind, .eh_frame is dead weight: 90 kB on mipsel (Rust), and
            # 3 kB more for ring's C code (musl's own objects come prebuilt from zig).
            flags+=(-Cforce-unwind-tables=no)
            # rustc's own (MIR) optimizations before LLVM's: at opt-level z they leave more code
            # behind than LLVM alone does (mipsel: level 2, the default, 983 kB; 1: 981 kB;
            # 0: 979 kB). Level 0 still runs every pass that lowering needs.
            flags+=(-Zmir-opt-level=0)
            # A panic aborts without a message, so the file:line:column of every panic site
            # (the Location constants of indexing, unwrap, arithmetic) is never read.
            flags+=(-Zlocation-detail=none)
            local cflags_var="CFLAGS_${t//-/_}"
            export "$cflags_var=${!cflags_var:-} -fno-asynchronous-unwind-tables -fno-unwind-tables"
            # MIPS position-independent code goes through the GOT for every call and global:
            # a non-PIE static executable is ~120 kB (10%) smaller on mipsel (no ASLR for it).
            case "$t" in mips*) flags+=(-Crelocation-model=static) ;; esac
            # musl's objects (built by zig without the flags above) still carry .eh_frame, and
            # lld indexes it in .eh_frame_hdr: 9 kB on mipsel that nothing reads. Dropped at link
            # time (strip cannot shrink the file: the segments keep their offsets).
            case "$t" in mips*) flags+=("-Clink-arg=-Wl,-T,$ROOT/scripts/discard-eh-frame.ld") ;; esac
            # Rust checks every division by zero itself (a panic) before dividing: LLVM's MIPS
            # trap after each division (teq) can never fire.
            case "$t" in mips*) flags+=(-Cllvm-args=-mno-check-zero-division) ;; esac
            # LLVM emits MIPS sibling calls as jumps only when asked: -6 kB on mipsel (checked
            # under qemu: snapshot, replay against x86_64, unit tests, TLS 1.2 and 1.3 POSTs).
            # Not on big-endian mips, where the snapshot check cannot run under qemu.
            case "$t" in mipsel-*) flags+=(-Cllvm-args=-mips-tail-calls=1) ;; esac
            # LLVM fills a branch delay slot only from the instructions before the branch unless
            # asked to look forward and into the successor blocks: 1 in 18 instructions was a
            # nop; -13.6 kB on mipsel (checked under qemu: snapshot, replay against x86_64,
            # the unit tests built with these flags in release mode, TLS 1.2 and 1.3 POSTs).
            case "$t" in mipsel-*) flags+=(-Cllvm-args=-disable-mips-df-forward-search=false
                -Cllvm-args=-disable-mips-df-succbb-search=false) ;; esac
            # Every ARMv7-A core runs Thumb-2, whose 16/32-bit encodings make the Rust code about
            # a quarter smaller than ARM mode (armv7 hard float: 889 kB -> 658 kB).
            case "$t" in armv7-*) flags+=(-Ctarget-feature=+thumb-mode) ;; esac
        fi
        # TINY=2 also drops Debug formatting (`{:?}` prints nothing): about 48 kB on mipsel.
        # Only for code that never shows Debug output to a user.
        if [ "$TINY" = 2 ]; then flags+=(-Zfmt-debug=none); fi
    fi
    # EXTRA_RUSTFLAGS (space-separated) for size experiments, e.g. "-Crelocation-model=static".
    # shellcheck disable=SC2206
    flags+=(${EXTRA_RUSTFLAGS:-})
    if [ ${#flags[@]} -gt 0 ]; then
        local list="" f
        for f in "${flags[@]}"; do list+="${list:+,}\"$f\""; done
        ZIG_ARGS+=(--config "target.$t.rustflags=[$list]")
    fi
}

out_of() { echo "$DIST/netmon-agent-$1"; }

build() {
    local t start
    t=$(target_of "$1")
    start=$(date +%s)
    zig_args "$t"
    # CARGO_FLAGS: extra cargo arguments, e.g. "--no-default-features" (a build without TLS).
    # shellcheck disable=SC2086
    RUSTC_BOOTSTRAP=1 cargo zigbuild --release ${CARGO_FLAGS:-} "${ZIG_ARGS[@]}"
    mkdir -p "$DIST"
    local out
    out=$(out_of "$t")
    cp "${CARGO_TARGET_DIR:-target}/$t/release/netmon-agent" "$out.tmp"
    case "$t" in
        # lld keeps MIPS .pdr sections (never loaded); binutils' strip removes them.
        mips*) mips-linux-gnu-strip -R .pdr "$out.tmp" ;;
    esac
    mv "$out.tmp" "$out"
    local desc
    desc=$(file -b "$out")
    case "$desc" in *"statically linked"* | *"static-pie linked"*) ;; *) die "$out is not static: $desc" ;; esac
    printf '%s: %d bytes stripped, %s s; %s\n' "$t" "$(stat -c %s "$out")" "$(($(date +%s) - start))" "$desc"
}

size() {
    local targets=("$@") fail=0
    [ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$ALL_TARGETS"
    printf '%-34s %10s  %s\n' target bytes budget
    for t in "${targets[@]}"; do
        t=$(target_of "$t")
        local f
        f=$(out_of "$t")
        [ -f "$f" ] || { printf '%-34s %10s\n' "$t" "not built"; fail=1; continue; }
        local n note=""
        n=$(stat -c %s "$f")
        if [ "$t" = mipsel-unknown-linux-musl ]; then
            if [ "$n" -le "$SIZE_BUDGET" ]; then note="ok (<= $SIZE_BUDGET)"; else note="OVER $SIZE_BUDGET"; fail=1; fi
        fi
        printf '%-34s %10d  %s\n' "$t" "$n" "$note"
    done
    return $fail
}

# Runs the agent for TARGET (under qemu unless x86_64).
run_t() {
    local t=$1
    shift
    local q
    q=$(qemu_of "$t")
    # A bounded run: a hang under emulation must fail the check, not stall CI.
    env -u NETMON_CONFIG timeout "${QEMU_TIMEOUT:-60}" ${q:+$q} "$(out_of "$t")" "$@"
}

check() {
    local t
    t=$(target_of "$1")
    [ -x "$(out_of "$t")" ] || die "$(out_of "$t") not built: make cross TARGET=$t"
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    # 1. --version
    local v
    v=$(run_t "$t" --version)
    [ "$v" = "netmon-agent $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ] ||
        die "$t: --version printed '$v'"
    echo "$t: --version ok ($v)"
    # 2. snapshot, schema-valid
    # qemu-user's netlink translation for big-endian guests garbles the RTM_GETLINK dump and
    # musl's getifaddrs then loops forever (a plain C getifaddrs does the same under qemu-mips;
    # native big-endian kernels are fine). Giving the address and range skips that dump.
    local addr=()
    case "$t" in mips-*) addr=(--set SERVER_IP=192.0.2.1 --range 192.0.2.0/24) ;; esac
    run_t "$t" snapshot --config /dev/null --window 0.5 -i lo --set SCAN_INTERVAL=0 --set PROMISC=0 "${addr[@]}" >"$tmp/snap.json"
    validate "$tmp/snap.json"
    echo "$t: snapshot ok (schema-valid)"
    # 3. replay of a shared capture: the same per-MAC counts as the x86_64 build
    if ! run_t "$t" replay --help >/dev/null 2>&1; then
        echo "$t: replay SKIPPED: this build has no 'replay' subcommand yet"
        return 0
    fi
    local pcap="$SHARED/pcaps/ndpi__iphone.pcap"
    [ -f "$pcap" ] || { echo "$t: replay SKIPPED: $pcap not present"; return 0; }
    local host=x86_64-unknown-linux-musl
    [ -x "$(out_of $host)" ] || build $host >/dev/null
    for p in "$pcap" "$SHARED/pcaps/pcapngtg__test008-be.pcapng" "$SHARED/pcaps/pcapparser__wireshark_samples-test.pcapng"; do
        [ -f "$p" ] || continue
        run_t "$t" replay "$p" --json --log-level warn "${addr[@]}" >"$tmp/cross.json"
        run_t "$host" replay "$p" --json --log-level warn "${addr[@]}" >"$tmp/host.json"
        validate "$tmp/cross.json"
        "$PY" - "$tmp/cross.json" "$tmp/host.json" "$p" <<'EOF'
import json, sys
def per_mac(path):
    snap = json.load(open(path))
    return {d["mac"]: tuple(d["bandwidth"][k] for k in
            ("rxBytesTotal", "txBytesTotal", "rxPacketsTotal", "txPacketsTotal"))
            for d in snap["network"]["connectedDevices"]}
a, b = per_mac(sys.argv[1]), per_mac(sys.argv[2])
if a != b or not a:
    sys.exit(f"{sys.argv[3]}: per-MAC counts differ from x86_64 (or are empty):\n{a}\n{b}")
print(f"  {len(a)} MACs equal")
EOF
        echo "$t: replay $(basename "$p") ok (per-MAC counts equal x86_64)"
    done
}

validate() {
    local schema="$SHARED/spec/snapshot.schema.json"
    [ -f "$schema" ] || die "schema $schema not found (set SHARED=)"
    "$PY" - "$schema" "$1" <<'EOF'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
cls = jsonschema.validators.validator_for(schema)
errs = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errs[:5]:
    print(f"{sys.argv[2]}: {list(e.path)}: {e.message}", file=sys.stderr)
sys.exit(1 if errs else 0)
EOF
}

# Tests that cannot run under qemu for target $1, as --skip arguments in UNIT_SKIP.
unit_skips() {
    # Under qemu-mips, musl's getifaddrs never returns (see check): skip the tests that ask the
    # running system for its interface addresses (the parsers' tests all run).
    # That is every Collector test (the collector always asks the live system for addresses).
    # Three tests that are about volume or timing, not byte order (a worst-case 954-device
    # snapshot, every prefix of every decoded frame, a reader racing 200 rewrites) take minutes
    # of emulated CPU each: they run natively in `make test`.
    # qemu also hands back the host's errno for a refused connect (111 is not ECONNREFUSED on
    # MIPS), on either byte order.
    UNIT_SKIP=()
    case "$1" in mips*) UNIT_SKIP=(--skip sys::tcp::tests::refused_shows_in_take_error_or_at_once) ;; esac
    case "$1" in mips-*) UNIT_SKIP+=(--skip sys::ifaddrs:: --skip procfs::tests::
        --skip config::tests::a_full_table_of_the_largest_accepted_size_ships
        --skip decode::tests::no_prefix_and_no_single_byte_corruption_panics
        --skip status::tests::a_reader_never_sees_half_a_file) ;; esac
}

unit() {
    local t
    t=$(target_of "$1")
    local bs=()
    needs_build_std "$t" && bs=(-Zbuild-std)
    # Only the unit tests (--lib --bins): the integration tests drive host tools around the binary.
    unit_skips "$t"
    RUSTC_BOOTSTRAP=1 cargo-zigbuild test --target "$t" "${bs[@]}" --lib --bins -- --test-threads=2 "${UNIT_SKIP[@]}"
}

# The unit tests compiled as `build` compiles the agent: the release profile (opt-level z, LTO)
# and TINY's code-generation flags, so that what LLVM does under those flags (delay slots, tail
# calls, non-PIE code) is tested, not only the unoptimized code of `unit`. The panic and unwind
# flags are left out (the test harness needs unwinding), and so is -Zfmt-debug=none (tests
# compare Debug output).
unit_opt() {
    local t
    t=$(target_of "$1")
    zig_args "$t"
    local a keep=()
    unit_skips "$t"
    for a in "${ZIG_ARGS[@]}"; do
        case "$a" in
            -Zbuild-std=*) keep+=(-Zbuild-std) ;;
            target.*.rustflags=*)
                a=${a//\"-Zunstable-options\",/}
                a=${a//\"-Cpanic=immediate-abort\",/}
                a=${a//\"-Cforce-unwind-tables=no\",/}
                a=${a//\"-Clink-arg=-Wl,-T,$ROOT\/scripts\/discard-eh-frame.ld\",/}
                a=${a//,\"-Zfmt-debug=none\"/}
                keep+=("$a") ;;
            *) keep+=("$a") ;;
        esac
    done
    # panic=unwind for every crate: with the profile's abort, cargo builds core twice (abort for
    # the library, unwind for the harness) and the build fails on duplicate lang items.
    CARGO_PROFILE_RELEASE_PANIC=unwind RUSTC_BOOTSTRAP=1 cargo-zigbuild test --release "${keep[@]}" \
        --lib --bins -- --test-threads=2 "${UNIT_SKIP[@]}"
}

cmd=${1:-}
shift || true
case "$cmd" in
    deps) deps "$@" ;;
    build) deps && build "$@" ;;
    check) deps qemu && check "$@" ;;
    unit) deps qemu && unit "$@" ;;
    unit-opt) deps qemu && unit_opt "$@" ;;
    size) size "$@" ;;
    target-of) target_of "$@" ;;
    arches) awk 'NF' <<<"$OPENWRT_ARCHES" ;;
    *) die "usage: cross.sh deps|build|check|unit|unit-opt|size|target-of ..." ;;
esac
