# Trail: the two commands a fresh machine needs are `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
DATA ?= ./var/data
KEYS ?= ./var/keys
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
TRAILCTL = $(BUILD)/bin/trailctl

.PHONY: all deps configure build run test bench clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

TRAILD = $(BUILD)/bin/traild
LISTEN ?= 127.0.0.1:8080

# `run` initialises ./var on first use (printing the admin password once), opens the project
# `demo` with the sample events (idempotent), verifies the chains and serves on $(LISTEN).
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target trailctl traild
	@if [ ! -f $(DATA)/data.mdb ]; then $(TRAILCTL) init --data $(DATA) --keys $(KEYS); fi
	@$(TRAILCTL) project list --data $(DATA) --keys $(KEYS) | grep -q '"id":"demo"' || \
		$(TRAILCTL) project add demo --name "Demo project" --data $(DATA) --keys $(KEYS) >/dev/null
	@$(TRAILCTL) append --data $(DATA) --keys $(KEYS) --project demo < scripts/sample-events.jsonl >/dev/null
	@$(TRAILCTL) verify --data $(DATA) --keys $(KEYS)
	@exec $(TRAILD) --data $(DATA) --keys $(KEYS) --listen $(LISTEN)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: build
	@$(BUILD)/bench/trail_ledger_bench --benchmark_counters_tabular=true
	@$(BUILD)/bench/trail_projections_bench --benchmark_counters_tabular=true

clean:
	rm -rf $(BUILD)
