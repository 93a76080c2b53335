# The two commands: `make run` and `make test`. Each installs missing Debian
# packages, configures and builds; `run` then runs the bundled example,
# `test` the whole suite in a normal and a sanitizer build.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 20
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Quiet sub-makes (CMake's generated Makefiles): no "Entering directory" lines.
MAKEFLAGS  += --no-print-directory
CMAKE_ARGS ?=

.PHONY: all deps build build-asan run test test-fast bench install clean fuzz

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
	@echo "== cotangent run examples/config/lotka_volterra.yaml (results in $(BUILD)/results/lotka_volterra/)"
	@COTANGENT_CACHE=$(CURDIR)/$(BUILD)/jit-cache $(BUILD)/cotangent run \
	  examples/config/lotka_volterra.yaml -o $(BUILD)/results/lotka_volterra
	@echo
	@echo "== Robertson kinetics with CVODES, Jacobian from the AD core, JIT-compiled (examples/robertson_ad)"
	@COTANGENT_CACHE=$(CURDIR)/$(BUILD)/jit-cache $(BUILD)/examples/robertson_ad --jit

# The normal suite, then the same suite under AddressSanitizer + UBSan, then
# a short fuzzing run of the config loader and expression parser (make fuzz).
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)

# The normal build's suite only.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The benchmarks (bench/): each prints its table and writes
# $(BUILD)/bench/<name>.json (rows {case, metric, value, unit}) and
# $(BUILD)/bench/<name>.md; bench/RESULTS.md keeps the latest tables.
# bench_ode also runs the SciPy peer (python3-scipy, installed here by
# install-deps --bench); without SciPy it reports without that column.
# bench/config times `cotangent check` of a 1,000-species network (with
# JIT caches of its own). bench/implicit differentiates nonlinear solves on
# grids of 10^4, 10^5 and 10^6 unknowns (~40 min; the largest needs ~11 GB).
bench: build
	@scripts/install-deps --bench || echo "make bench: python3-scipy not installed: bench_ode runs without SciPy" >&2
	@test -x $(BUILD)/bench/bench_ad || { echo "make bench: configure with -DCOTANGENT_BENCH=ON" >&2; exit 1; }
	$(BUILD)/bench/bench_ad --out $(BUILD)/bench/ad.json
	COTANGENT_CACHE=$(CURDIR)/$(BUILD)/jit-cache $(BUILD)/bench/bench_ode --out $(BUILD)/bench/ode.json
	python3 bench/config/bench_config.py --cotangent $(BUILD)/cotangent --out $(BUILD)/bench/config.json
	$(BUILD)/bench/bench_implicit --out $(BUILD)/bench/implicit.json

# libFuzzer on the config loader and the expression parser
# (tests/fuzz/fuzz_config.c) under ASan + UBSan, for FUZZ_SECONDS seconds
# (`make test` runs it for FUZZ_TEST_SECONDS). Seeds: tests/fuzz/corpus;
# new inputs go to $(FUZZ_BUILD)/corpus, crashes to $(FUZZ_BUILD)/crash-*.
$(FUZZ_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOTANGENT_FUZZ=ON \
	  -DCOTANGENT_SANITIZE=address,undefined -DCOTANGENT_CUDA=OFF -DCOTANGENT_WERROR=OFF \
	  -DCOTANGENT_TESTS=OFF -DCOTANGENT_EXAMPLES=OFF -DCOTANGENT_BENCH=OFF

fuzz: deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_config
	mkdir -p $(FUZZ_BUILD)/corpus
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(FUZZ_BUILD)/tests/fuzz/fuzz_config -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=8192 -timeout=10 -print_final_stats=1 \
	  -dict=tests/fuzz/config.dict -artifact_prefix=$(FUZZ_BUILD)/ \
	  $(FUZZ_BUILD)/corpus tests/fuzz/corpus

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
