# Shared helpers for flint-hv's shell tests (POSIX sh; runs under busybox in
# the nested lab too).  Each check prints "ok - ..." or "not ok - ...";
# finish prints the "N passed, M failed" line and sets the exit status.
PASSED=0
FAILED=0
WORK=${TMPDIR:-/tmp}/flint-hv-test.$$
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# run NAME TIMEOUT ARGS...: runs flint-hv, leaves status in $ST, output in
# $WORK/NAME.out and $WORK/NAME.err.
run() {
	name=$1; limit=$2; shift 2
	timeout "$limit" "$HV" "$@" </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err"
	ST=$?
}

# expect NAME STATUS [PATTERN_IN_STDERR] [PATTERN_IN_STDOUT]
expect() {
	name=$1; want=$2; errpat=$3; outpat=$4
	if [ "$ST" -ne "$want" ]; then
		fail "$name: exit status $ST, expected $want"
		sed 's/^/#   stderr: /' "$WORK/$name.err" | tail -n 5
		tail -n 5 "$WORK/$name.out" | sed 's/^/#   stdout: /'
		return
	fi
	if [ -n "$errpat" ] && ! grep -q -- "$errpat" "$WORK/$name.err"; then
		fail "$name: stderr lacks '$errpat'"
		sed 's/^/#   stderr: /' "$WORK/$name.err" | tail -n 5
		return
	fi
	if [ -n "$outpat" ] && ! grep -q -- "$outpat" "$WORK/$name.out"; then
		fail "$name: console lacks '$outpat'"
		tail -n 8 "$WORK/$name.out" | sed 's/^/#   stdout: /'
		return
	fi
	pass "$name (status $ST)"
}

finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
