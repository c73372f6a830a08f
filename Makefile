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

# Until traild exists (issue 4), `run` initialises ./var if empty, appends the sample events
# (idempotent: a second run reports them as duplicates) and verifies the chain.
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target trailctl
	@if [ ! -f $(DATA)/data.mdb ]; then $(TRAILCTL) init --data $(DATA) --keys $(KEYS); fi
	@$(TRAILCTL) append --data $(DATA) --keys $(KEYS) --project demo < scripts/sample-events.jsonl
	@$(TRAILCTL) verify --data $(DATA) --keys $(KEYS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: build
	@$(BUILD)/bench/trail_ledger_bench --benchmark_counters_tabular=true
	@$(BUILD)/bench/trail_projections_bench --benchmark_counters_tabular=true

clean:
	rm -rf $(BUILD)
