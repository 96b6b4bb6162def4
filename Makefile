# HoloStore: `make run` starts a local cluster, `make test` runs every test.
# Every target installs (or checks and explains) the system packages it needs first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# A persistent target directory outside the clone keeps repeated runs fast.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/holostore-target
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help deps build build-release build-release-mimalloc lint test bench bench-redis sim run stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-24s %s\n", $$1, $$2}'

deps: ## install or check the system packages the build needs (librocksdb-dev, libclang-dev)
	@scripts/install_deps.sh

build: deps ## debug build of every crate and test
	$(CARGO) build --workspace --all-targets --locked

build-release: deps ## release build of the binaries
	$(CARGO) build --workspace --release --locked

build-release-mimalloc: deps ## release build of holo-node with mimalloc as the allocator
	$(CARGO) build --release --locked -p holo-node --features mimalloc

lint: deps ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: deps lint ## every test: unit, property, conformance, crash (nextest when installed)
	$(CARGO) test --workspace --doc --locked
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --locked --profile ci
else
	$(CARGO) test --workspace --locked
endif

bench: deps ## benchmarks: WAL group commit beside raw fdatasync
	$(CARGO) bench --locked -p holo-wal --bench append

bench-redis: build-release ## the local cluster beside a plain redis-server, redis-benchmark -P 1 and -P 100
	scripts/bench_vs_redis.sh

SEEDS ?= 10000
sim: deps ## deterministic Accord simulation over SEEDS seeds (default 10000), release build
	HOLO_SIM_SEEDS=$(SEEDS) $(CARGO) test --release --locked -p holo-accord --test sim -- --nocapture

run: build-release ## start a local 3-node cluster (redb) in the background
	scripts/start_cluster.sh

stop: ## stop the local cluster started by `make run`
	scripts/cleanup_cluster.sh

clean: ## remove build output
	$(CARGO) clean
