# The two commands a newcomer runs (see README.md): `make demo` and
# `make test`. Both install missing Debian packages first. Everything else
# here is a convenience around CMake.
BUILD     ?= build
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX    ?= /usr/local
CMAKE_ARGS ?=
FUZZ_SECONDS ?= 30

.PHONY: all deps configure build test unit demo install bench fuzz sanitize clean

all: build

deps:
	@scripts/deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNERVE_WERROR=ON \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -L unit

# ASan+UBSan build of everything, unit tests run under it (used by .ci/run).
sanitize: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNERVE_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS) -L unit

demo: build
	@scripts/demo.sh $(BUILD)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

bench: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DNERVE_TESTS=OFF >/dev/null
	@cmake --build build-bench -j$(JOBS)
	@scripts/bench.sh build-bench

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DNERVE_FUZZ=ON -DNERVE_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzzers
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-bench build-fuzz
