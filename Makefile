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

run: build ## build and run the agent, printing a JSON snapshot per line (no platform needed)
	./target/debug/netmon-agent run --config /dev/null --cycle $${CYCLE_TIME:-5}

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
