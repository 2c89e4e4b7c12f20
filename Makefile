# Flint: the two set-up commands are `make demo` and `make check`.
# Both install the Debian packages they need (root, apt-get), then build
# with Meson + Ninja.  `make bench` runs the benchmarks; `make fuzz` runs
# every fuzz target longer and grows the checked-in corpus.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
MESON_TEST  = meson test --print-errorlogs --num-processes 2
FUZZ_SECONDS ?= 60

.PHONY: all deps build check check-asan check-fuzz fuzz demo bench clean

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The whole suite: unit tests, flint-hv shell tests, the guest on QEMU,
# the nested lab (real KVM inside QEMU TCG), and short libFuzzer runs.
check: build check-fuzz
	$(MESON_TEST) -C $(BUILD)

$(BUILD_ASAN)/build.ninja:
	meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dguest=false -Dlab=false

# Unit tests and corpus replays under ASan+UBSan (CI runs this too).
check-asan: deps $(BUILD_ASAN)/build.ninja
	ninja -C $(BUILD_ASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(MESON_TEST) -C $(BUILD_ASAN) --suite unit

$(BUILD_FUZZ)/build.ninja:
	CC=clang meson setup $(BUILD_FUZZ) -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dguest=false -Dlab=false

check-fuzz: deps $(BUILD_FUZZ)/build.ninja
	ninja -C $(BUILD_FUZZ)
	$(MESON_TEST) -C $(BUILD_FUZZ) --suite fuzz

# Every fuzz target for FUZZ_SECONDS (default 60) each, two at a time; the
# inputs that reach new edges of a target are merged into
# fuzz/corpus/<name>/ (commit them: the unit suite replays them).
fuzz: deps $(BUILD_FUZZ)/build.ninja
	ninja -C $(BUILD_FUZZ)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MERGE=1 \
		$(MESON_TEST) -C $(BUILD_FUZZ) --suite fuzz --timeout-multiplier 0

demo: build
	sh scripts/demo.sh $(BUILD)

bench: build
	sh bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
