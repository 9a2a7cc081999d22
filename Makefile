# netmon-agent: the commands a user types. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help build release run test check-fmt bench bench-decode bench-deps soak soak-short clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

build: ## debug build
	$(CARGO) build

release: ## optimised, size-tuned build for this machine
	$(CARGO) build --release

# Safe on any machine: loopback only, no ARP scan, not promiscuous, nothing shipped. The real
# thing (a LAN interface, scanning) is `netmon-agent run -i IFACE` as root: see README.md.
RUN_ARGS := run --config /dev/null --cycle $${CYCLE_TIME:-5} -i lo --set SCAN_INTERVAL=0 --set PROMISC=0
run: build ## build and run the agent on loopback (no scan, not promiscuous), a JSON snapshot per line
	@echo "(loopback only: no ARP scan, not promiscuous, nothing sent; README.md says how to watch a LAN)"
	./target/debug/netmon-agent $(RUN_ARGS)

test: ## the whole test suite (root-only tests skip with a reason when not root)
	$(CARGO) test --all-targets -- --test-threads=$${TEST_THREADS:-2}

check-fmt: ## formatting check
	$(CARGO) fmt --check

bench-decode: ## decode+account throughput vs tshark, replay peak RSS (needs ../shared/pcaps)
	bench/decode.sh

bench: bench-deps ## every benchmark in one run, ONE table beside tshark/tcpdump/darkstat/arp-scan/pyshark (root for the live rows)
	python3 bench/bench.py target/bench.md

# tool:package pairs the benchmarks and the soak use; a missing one is one line, its rows say so.
BENCH_TOOLS := tshark:tshark mergecap:wireshark-common editcap:wireshark-common capinfos:wireshark-common \
	tcpdump:tcpdump darkstat:darkstat trafgen:netsniff-ng arp-scan:arp-scan gnuplot:gnuplot-nox bc:bc
bench-deps: ## check the tools of bench/soak (one line per missing one)
	@for tp in $(BENCH_TOOLS); do command -v $${tp%%:*} >/dev/null || echo "missing $${tp%%:*}: apt-get install $${tp##*:}"; done
	@python3 -c 'import pyshark' 2>/dev/null || echo "missing pyshark (the seed's way): pip install pyshark"
	@python3 -c 'import websockets' 2>/dev/null || echo "missing websockets (soak WS server): apt-get install python3-websockets"

soak: release bench-deps ## endurance run, SOAK_MINUTES (default 60) of faults; report in target/soak/ (root)
	python3 bench/soak.py run target/release/netmon-agent target/soak $${SOAK_MINUTES:-60}

soak-short: release bench-deps ## the 3-minute soak, for CI (root)
	python3 bench/soak.py run target/release/netmon-agent target/soak-short 3

clean:
	$(CARGO) clean

bench-live: ## live capture figures on a namespace lab (root; needs netsniff-ng, darkstat, bc)
	$(CARGO) build --profile bench-release
	bash bench/live.sh target/bench-release/netmon-agent

# ---- Cross builds, routers and packaging (scripts/cross.sh, openwrt/, packaging/) ----
# Static musl binaries land in dist/netmon-agent-<rust target>. No Docker needed: zig +
# cargo-zigbuild come from PyPI into .venv; see docs/openwrt.md.
.PHONY: cross cross-all cross-deps size test-cross test-cross-ci ipk apk apk-tool install uninstall \
	build-x86_64 build-aarch64 build-armv7 build-armv7sf build-mipsel build-mips
CROSS_TARGETS := x86_64 aarch64 armv7 armv7sf mipsel mips
ARCH ?= mipsel_24kc

cross-deps: ## install zig/cargo-zigbuild (.venv) and rustup bits; names missing apt packages
	scripts/cross.sh deps qemu

cross: ## static release build for TARGET=<rust musl triple or short name>, e.g. TARGET=mipsel
	@test -n "$(TARGET)" || { echo "make cross: set TARGET= (one of $(CROSS_TARGETS) or a musl triple)"; exit 2; }
	scripts/cross.sh build $(TARGET)

build-mipsel: ## static mipsel build -> dist/ (likewise build-x86_64, build-aarch64, build-armv7, build-mips)
build-x86_64 build-aarch64 build-armv7 build-armv7sf build-mipsel build-mips: build-%:
	scripts/cross.sh build $*

cross-all: ## static release builds for x86_64, aarch64, armv7, armv7sf (soft float), mipsel, mips (dist/)
	for t in $(CROSS_TARGETS); do scripts/cross.sh build $$t || exit 1; done

size: cross-all ## build every target and print stripped sizes; fails when mipsel is over 1.0 MB
	scripts/cross.sh size

test-cross: cross-all ## every target under qemu (--version, snapshot, replay) + unit tests on big-endian mips
	for t in $(CROSS_TARGETS); do scripts/cross.sh check $$t || exit 1; done
	scripts/cross.sh unit mips

CROSS_CI_MIPS_UNIT ?= 1
test-cross-ci: ## CI subset: mipsel + armv7 builds and qemu checks, mipsel unit tests as optimized as the build, unit tests on mips (CROSS_CI_MIPS_UNIT=0: not)
	for t in mipsel armv7; do scripts/cross.sh build $$t && scripts/cross.sh check $$t || exit 1; done
	scripts/cross.sh unit-opt mipsel
	if [ "$(CROSS_CI_MIPS_UNIT)" = 1 ]; then scripts/cross.sh unit mips; fi

# The OpenWrt lab (../shared/openwrt-lab) builds apk-tools 3 for `make apk` (~30 s, once).
OWRT_LAB ?= ../shared/openwrt-lab
OWRT_LAB_WORK ?= $(CURDIR)/target/owrt-lab
APK_TOOL := env LD_LIBRARY_PATH=$(OWRT_LAB_WORK)/stage/usr/lib $(OWRT_LAB_WORK)/stage/usr/bin/apk
# PKG=<name> builds another package described in openwrt/mkpkg.d/<name>.sh (ARCH=all for one
# without a binary).
PKG ?= netmon-agent
PKG_NEEDS_BINARY = $(shell sed -n 's/^PKG_NEEDS_BINARY=\([01]\).*/\1/p' openwrt/mkpkg.d/$(PKG).sh)

apk-tool: ## build apk-tools 3 (apk mkpkg) from the OpenWrt lab into OWRT_LAB_WORK
	@test -x $(OWRT_LAB)/build.sh || { echo "make apk: $(OWRT_LAB)/build.sh not found (set OWRT_LAB=)"; exit 1; }
	OWRT_LAB_WORK=$(OWRT_LAB_WORK) $(OWRT_LAB)/build.sh >/dev/null
	@$(APK_TOOL) --version

ipk: ## OpenWrt .ipk for ARCH=<openwrt arch> (default mipsel_24kc) + luci-app-netmon-agent (all), without the SDK -> dist/
	if [ "$(PKG_NEEDS_BINARY)" = 1 ]; then scripts/cross.sh build $(ARCH); fi
	PKG=$(PKG) openwrt/mkpkg.sh ipk $(ARCH) $$(if [ "$(PKG_NEEDS_BINARY)" = 1 ]; then echo dist/netmon-agent-$$(scripts/cross.sh target-of $(ARCH)); else echo -; fi) dist
	if [ "$(PKG)" = netmon-agent ]; then PKG=luci-app-netmon-agent openwrt/mkpkg.sh ipk all - dist; fi

apk: apk-tool ## OpenWrt 25.12 .apk for ARCH=... (apk mkpkg from the OpenWrt lab) -> dist/
	if [ "$(PKG_NEEDS_BINARY)" = 1 ]; then scripts/cross.sh build $(ARCH); fi
	PKG=$(PKG) APK="$(APK_TOOL)" openwrt/mkpkg.sh apk $(ARCH) $$(if [ "$(PKG_NEEDS_BINARY)" = 1 ]; then echo dist/netmon-agent-$$(scripts/cross.sh target-of $(ARCH)); else echo -; fi) dist
	if [ "$(PKG)" = netmon-agent ]; then PKG=luci-app-netmon-agent APK="$(APK_TOOL)" openwrt/mkpkg.sh apk all - dist; fi

install: release ## install the binary, config and systemd unit (DESTDIR=, PREFIX=/usr/local)
	BIN=target/release/netmon-agent packaging/install.sh

uninstall: ## stop, disable and remove what install put there (PURGE=1 also removes the config)
	packaging/uninstall.sh
