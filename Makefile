# HoloStore: `make run` starts a local cluster, `make test` runs every test.
# Every target installs (or checks and explains) the system packages it needs first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# A persistent target directory outside the clone keeps repeated runs fast.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/holostore-target
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help deps build build-release build-release-system-alloc lint test bench bench-cpu flamegraph bench-wal bench-redis sim run stop clean \
	check-linearizability check-crash-recovery suites report image check-docker

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-24s %s\n", $$1, $$2}'

deps: ## install or check the system packages the build needs (librocksdb-dev, libclang-dev)
	@scripts/install_deps.sh

build: deps ## debug build of every crate and test
	$(CARGO) build --workspace --all-targets --locked

build-release: deps ## release build of the binaries
	$(CARGO) build --workspace --release --locked

build-release-system-alloc: deps ## release build of holo-node with the system allocator instead of mimalloc
	$(CARGO) build --release --locked -p holo-node --no-default-features --features rocksdb

lint: deps ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: deps lint ## every test: unit, property, conformance, crash, harness suites, client libraries, Docker clusters when an engine answers
	@if docker info >/dev/null 2>&1; then echo "make test: a Docker engine answers: the container tests (holo-harness/tests/docker.rs) run"; \
	else echo "make test: NO Docker engine answers: the container tests are SKIPPED (they pass without running)"; fi
	$(CARGO) test --workspace --doc --locked
	@# redis-py for holo-node/tests/clients.rs, in a virtualenv of its own.
	export HOLO_PYTHON="$$(scripts/python_env.sh)"; \
	if [ "$(NEXTEST)" = yes ]; then $(CARGO) nextest run --workspace --locked --profile ci; \
	else $(CARGO) test --workspace --locked; fi

HARNESS = $(CARGO_TARGET_DIR)/release/holo-harness
# make bench's flags: SET at -P 1 and -P 100 for 60 s each after every backend's healthy
# runs shows whether throughput holds up under sustained load.
BENCH_ARGS ?= --sustain 60

bench: build-release ## holo-harness bench: HoloStore (redb, rocksdb) beside a plain redis-server, -P 1 and -P 100
	@command -v redis-server >/dev/null || { echo "make bench: redis-server is missing: apt-get install redis-server" >&2; exit 1; }
	$(HARNESS) bench $(BENCH_ARGS)
	$(HARNESS) report .holostore/bench --out .holostore/report

bench-cpu: deps ## instructions per transaction of the Accord core under callgrind (stable on a noisy machine)
	scripts/bench_cpu.sh

flamegraph: build-release ## CPU flame graph of the local cluster under redis-benchmark load (OUT, LOAD: redis-benchmark arguments)
	scripts/flamegraph.sh $${OUT:-.holostore/flamegraph.svg} $${LOAD:-}

bench-wal: deps ## criterion benchmark: WAL group commit beside raw fdatasync
	$(CARGO) bench --locked -p holo-wal --bench append

bench-redis: build-release ## the local cluster beside a plain redis-server, redis-benchmark -P 1 and -P 100
	scripts/bench_vs_redis.sh

SEEDS ?= 10000
sim: deps ## deterministic Accord simulation over SEEDS seeds (default 10000), release build
	HOLO_SIM_SEEDS=$(SEEDS) $(CARGO) test --release --locked -p holo-accord --test sim -- --nocapture

check-linearizability: build-release ## workload + linearizability check (NODES, CLIENTS, KEYS, SET_PCT, DURATION, OP_TIMEOUT, FAIL_FAST)
	scripts/check_linearizability.sh

image: build-release ## the holo-node Docker image (FROM scratch: our binary and the libraries ldd lists)
	$(HARNESS) image build --bin $(CARGO_TARGET_DIR)/release/holo-node

check-docker: image ## short Docker suite: baseline, isolate, one-way, bridge, kill-restart, pause, split-merge-kill-controller, transfers-isolate (DURATION)
	$(HARNESS) suite linearizability --runtime docker --duration $${DURATION:-8s} \
		--scenario baseline,isolate,one-way,bridge,kill-restart,pause,split-merge-kill-controller,transfers-isolate --dir .holostore/docker
	$(HARNESS) report .holostore/docker --out .holostore/report

check-crash-recovery: build-release ## crash-recovery suite: kill -9 cycles, every acknowledged write read back (CYCLES, BACKEND)
	$(HARNESS) suite crash-recovery --cycles $${CYCLES:-12} --backend $${BACKEND:-redb}

suites: build-release ## the full linearizability and crash-recovery suites, then the report
	$(HARNESS) suite linearizability --backend $${BACKEND:-redb}
	$(HARNESS) suite crash-recovery --backend $${BACKEND:-redb}
	$(HARNESS) report .holostore --out .holostore/report

report: ## render every results.json under .holostore into .holostore/report (Markdown + HTML)
	$(HARNESS) report .holostore --out .holostore/report

run: build-release ## start a local 3-node cluster (redb) in the background
	scripts/start_cluster.sh

stop: ## stop the local cluster started by `make run`
	scripts/cleanup_cluster.sh

clean: ## remove build output
	$(CARGO) clean
