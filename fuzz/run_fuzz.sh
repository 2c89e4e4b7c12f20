#!/bin/sh
# Runs one libFuzzer target for a time budget, starting from its checked-in
# corpus, and reports the coverage it reached:
#   fuzz-NAME: E edges (cov) of P instrumented, F features, X execs in S s
# It fails when the target crashes, leaks or hangs (libFuzzer's own report
# is shown), and when E is below MIN_EDGES: a target whose code under test
# is not instrumented sees only its harness's few edges (a blind target).
#
# usage: run_fuzz.sh BINARY NAME SECONDS MIN_EDGES CORPUS_DIR
# Environment:
#   FUZZ_SECONDS  overrides SECONDS
#   FUZZ_MERGE=1  afterwards, add to CORPUS_DIR the inputs found that reach
#                 edges it does not (libFuzzer -merge=1 on edges alone, not
#                 hit counts, so the checked-in corpus stays small);
#                 otherwise the corpus is only read and what the run found
#                 is dropped.
# Crash inputs are written next to BINARY, named NAME-crash-<sha1>.
set -eu

bin=$1 name=$2 secs=${FUZZ_SECONDS:-$3} floor=$4 corpus=$5
merge=${FUZZ_MERGE:-0}

work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/new"
log=$work/log

# A UBSan finding ends the run (by default it would only print and go on).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# -close_fd_mask=2: the components' own log lines are dropped; libFuzzer's
# and the sanitizers' reports still arrive (on a copy of stderr).
rc=0
"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -close_fd_mask=2 \
	-print_final_stats=1 -artifact_prefix="$(dirname "$bin")/$name-" \
	"$work/new" "$corpus" > "$log" 2>&1 || rc=$?

if [ "$rc" -ne 0 ]; then
	tail -n 200 "$log"
	echo "fuzz-$name: FAILED (libFuzzer exit $rc; crash input, if any, next to $bin)"
	exit 1
fi

# libFuzzer's last status line: "#RUNS DONE cov: E ft: F corp: ...".
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -n 1)
edges=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
feats=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log")
took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
# Instrumented edges in the binary: "Loaded N modules (K inline 8-bit counters)".
pcs=$(sed -n 's/.*modules *(\([0-9]*\) inline 8-bit counters).*/\1/p' "$log" | head -n 1)

if [ -z "$edges" ]; then
	cat "$log"
	echo "fuzz-$name: FAILED (no final statistics from libFuzzer)"
	exit 1
fi
echo "fuzz-$name: $edges edges (cov) of ${pcs:-?} instrumented, ${feats:-?} features, ${execs:-?} execs in ${took:-?} s"

if [ "$merge" = 1 ]; then
	before=$(ls "$corpus" | wc -l)
	"$bin" -merge=1 -use_counters=0 -max_len=65536 -timeout=10 -close_fd_mask=2 \
		"$corpus" "$work/new" > "$log" 2>&1 || {
		cat "$log"
		echo "fuzz-$name: FAILED (merge into $corpus)"
		exit 1
	}
	after=$(ls "$corpus" | wc -l)
	echo "fuzz-$name: corpus $before -> $after inputs ($(grep 'MERGE-OUTER: .* new files' "$log" | sed 's/.*MERGE-OUTER: //'))"
fi

if [ "$edges" -lt "$floor" ]; then
	echo "fuzz-$name: FAILED: $edges edges, below this target's floor of $floor;" \
		"is the code it reaches built with -fsanitize=fuzzer-no-link?"
	exit 1
fi
