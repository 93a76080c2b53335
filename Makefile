# The two commands: `make run` and `make test`. Each installs missing Debian
# packages, configures and builds; `run` then runs the bundled example,
# `test` the whole suite in a normal and a sanitizer build.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps build build-asan run test test-fast bench install clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DCOTANGENT_SANITIZE=address,undefined -DCOTANGENT_CUDA=OFF $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	@echo "== Robertson kinetics with CVODES, Jacobian from the AD core, JIT-compiled (examples/robertson_ad)"
	@COTANGENT_CACHE=$(CURDIR)/$(BUILD)/jit-cache $(BUILD)/examples/robertson_ad --jit

# The normal suite, then the same suite under AddressSanitizer + UBSan.
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# The normal build's suite only.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The benchmarks (bench/): each prints its table and writes
# $(BUILD)/bench/<name>.json (rows {case, metric, value, unit}) and
# $(BUILD)/bench/<name>.md; bench/RESULTS.md keeps the latest tables.
bench: build
	@test -x $(BUILD)/bench/bench_ad || { echo "make bench: configure with -DCOTANGENT_BENCH=ON" >&2; exit 1; }
	$(BUILD)/bench/bench_ad --out $(BUILD)/bench/ad.json

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
