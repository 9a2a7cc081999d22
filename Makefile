# netmon-agent: the commands a user types. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help build release run test check-fmt bench bench-decode clean

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

bench: bench-decode bench-live ## all benchmarks

clean:
	$(CARGO) clean

bench-live: ## live capture figures on a namespace lab (root; needs netsniff-ng, darkstat, bc)
	$(CARGO) build --profile bench-release
	bash bench/live.sh target/bench-release/netmon-agent
