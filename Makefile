# Thin wrapper over CMake: the README's commands are `make demo` and `make test`.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= 2
PREFIX ?= /usr/local
CC ?= cc
CMAKE_FLAGS ?=

.PHONY: all deps build test asan demo bench install clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The sanitizer run uses clang, so CI builds with both compilers.
ASAN_CC ?= clang

asan: deps
	CC=$(ASAN_CC) cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# Trains LeNet (batch norm) on Fashion-MNIST for 2 epochs, hybridized; writes
# demo/metrics.csv and its plot (PNG with gnuplot, SVG otherwise).
DEMO_DATA ?= /usr/share/datasets/fashion-mnist
demo: deps build
	@scripts/deps.sh --demo
	mkdir -p demo
	$(BUILD)/kiln train --model lenet --data $(DEMO_DATA) --epochs 2 --hybridize \
	  --metrics demo/metrics.csv --plot demo/metrics.png
	@awk -F, 'NR > 1 { acc = $$4 } END { ok = acc >= 0.885; \
	  printf "demo: test accuracy %.4f after 2 epochs (goal >= 0.885): %s\n", acc, ok ? "met" : "NOT met"; \
	  exit !ok }' demo/metrics.csv

bench: build
	@scripts/deps.sh --bench
	@bench/setup_mxnet.sh || echo "bench: no MXNet peer (bench/setup_mxnet.sh failed)"
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
