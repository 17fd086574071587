# The two commands of the README:
#   make run    install what is missing, build, serve graphs/orders.yaml with a demo load
#   make test   install what is missing, build, run the whole test suite
# Also:
#   make sanitize   unit and integration tests built with clang under ASan + UBSan ($(ASAN_BUILD))
#   make fuzz       every libFuzzer target in fuzz/ for FUZZ_SECONDS each (same build dir)
#   make bench-cosmos   `orderflow bench` of graphs/orders-cosmos.yaml on the Cosmos DB stand-in
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
DEMO_RATE ?= 200
LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data
CMAKE_ARGS ?=

.PHONY: all deps configure build run test bench bench-cosmos clean sanitize-configure sanitize fuzz release

all: build

deps:
	bash scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/server/orderflow serve graphs/orders.yaml --listen $(LISTEN) --data-dir $(DATA_DIR) --demo-rate $(DEMO_RATE)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

BENCH_ARGS ?= --commands 50000 --runs 3 --threads 1,2 --store rocksdb,memory
bench: build
	$(BUILD)/server/orderflow bench graphs/orders.yaml $(BENCH_ARGS)

# graphs/orders-cosmos.yaml on the Cosmos DB stand-in (a free loopback port, a random key,
# COSMOS_LATENCY_MS=5 added per request), with the raw-creates baseline in the same run;
# the stand-in is stopped even when the bench fails (scripts/bench-cosmos.sh).
BENCH_COSMOS_ARGS ?= --runs 3 --commands 8000
bench-cosmos: build
	bash scripts/bench-cosmos.sh $(BUILD)/server/orderflow $(BENCH_COSMOS_ARGS)

# One clang build dir serves both: the sanitizers everywhere, libFuzzer coverage only on
# the decoders the fuzz targets exercise.
ASAN_BUILD ?= build-asan
SANITIZE ?= address,undefined
SANITIZE_TARGETS ?= unit_tests integration_tests
SANITIZE_LABELS ?= unit|integration
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZERS = command_decode graph_yaml cosmos_response kafka_message
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp

sanitize-configure: deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DORDERFLOW_SANITIZE=$(SANITIZE) -DORDERFLOW_FUZZ=ON -DORDERFLOW_BUILD_MONITOR=OFF $(CMAKE_ARGS)

# The cosmos_launcher suite is node's own; executables not built here are skipped.
sanitize: sanitize-configure
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target $(SANITIZE_TARGETS)
	cd $(ASAN_BUILD) && ctest -L '$(SANITIZE_LABELS)' -E 'NOT_BUILT|cosmos_launcher' --output-on-failure -j$(JOBS) --timeout 900

# Each target starts from its seed corpus in fuzz/corpus/NAME; what it learns goes to
# $(ASAN_BUILD)/fuzz/corpus-NAME, a crashing input to $(ASAN_BUILD)/fuzz/crash-*.
fuzz: sanitize-configure
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target fuzzers
	set -e; for f in $(FUZZERS); do \
	  mkdir -p $(ASAN_BUILD)/fuzz/corpus-$$f; \
	  echo "fuzz_$$f: $(FUZZ_SECONDS) s"; \
	  $(ASAN_BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(ASAN_BUILD)/fuzz/ $(FUZZ_ARGS) \
	    $(ASAN_BUILD)/fuzz/corpus-$$f fuzz/corpus/$$f; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# A release build: the server and the monitor linked against RocksDB built without its debug
# assertions (scripts/build-rocksdb.sh: Debian's own source package, CMAKE_BUILD_TYPE=Release;
# about 15 minutes on 2 cores, once, kept in ROCKSDB_PREFIX). Debian's librocksdb keeps its assert()s,
# which the tests may use; a release binary must not (a failed one aborts the server).
RELEASE_BUILD ?= build-release
ROCKSDB_PREFIX ?= $(RELEASE_BUILD)/rocksdb
release: deps
	bash scripts/build-rocksdb.sh $(ROCKSDB_PREFIX)
	cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH=$(abspath $(ROCKSDB_PREFIX)) $(CMAKE_ARGS)
	cmake --build $(RELEASE_BUILD) -j$(JOBS) --target orderflow
	@if strings $(RELEASE_BUILD)/server/orderflow | grep -q sync_without_flush_called_; then \
	  echo "release: $(RELEASE_BUILD)/server/orderflow still carries RocksDB's assertions" >&2; exit 1; fi
	@echo "release: $(RELEASE_BUILD)/server/orderflow (RocksDB without debug assertions)"
