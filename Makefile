# Thin wrapper over CMake/ctest. See README.md.
#   make run    build, then start what exists of the shop locally
#   make test   build and run every test (unit, integration, and the suites' own servers)
#   make asan   the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench  benchmarks against their peers (bench/*.sh)
#   make fuzz   libFuzzer targets for FUZZ_SECONDS each (clang)
#   make fmt    format the tree; `make fmt-check` only checks
#   make test-multihost  the shop on three network-namespace hosts with host failures (root;
#               not part of `make test`; docs/operations.md "The multi-host run")
JOBS        ?= $(shell nproc)
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
FUZZ_SECONDS ?= 60
CTEST_ARGS  ?=

.PHONY: all deps build run test test-multihost asan bench fuzz fuzz-smoke fmt fmt-check clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run.sh $(BUILD)

test: build
	scripts/test.sh $(BUILD) $(CTEST_ARGS)

# Exit status 77 (skipped) when not root or without `ip netns`.
test-multihost: build
	tests/multihost/run.sh $(BUILD)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSHOAL_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	scripts/test.sh $(ASAN_BUILD) $(CTEST_ARGS)

bench: build
	@for b in bench/*.sh; do echo "== $$b"; $$b $(BUILD) || exit 1; done

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_all
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=8

fmt:
	@git ls-files '*.c' '*.h' | xargs -r clang-format -i

fmt-check:
	@git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run -Werror

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
