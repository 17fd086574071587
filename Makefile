# The two commands of the README:
#   make run    install what is missing, build, serve graphs/orders.yaml with a demo load
#   make test   install what is missing, build, run the whole test suite
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
DEMO_RATE ?= 200
LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data
CMAKE_ARGS ?=

.PHONY: all deps configure build run test bench clean

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

clean:
	rm -rf $(BUILD)
