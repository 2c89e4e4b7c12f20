# Helpers for back-end specific interop scripts.  Source it:
#   . "$(dirname "$0")/lib.sh"
# Provides: interop_skip, interop_need, interop_guest, interop_wait_socket,
#           interop_stop, interop_run, interop_field.
# Sets INTEROP_DIR (this directory).
INTEROP_DIR=$(cd "$(dirname "$0")" && pwd)

interop_skip() { # interop_skip WHY...  (exits 77)
	echo "########################################################"
	echo "SKIP: $*"
	echo "########################################################"
	exit 77
}

interop_need() { # interop_need CMD [PACKAGE]  -> skip if CMD is missing
	command -v "$1" >/dev/null 2>&1 ||
		interop_skip "$1 not found${2:+ (apt-get install $2)}; interop test NOT run"
}

interop_guest() { # interop_guest OUTDIR [CACHE]: build (or reuse) the guest
	if [ -n "${2:-}" ]; then
		"$INTEROP_DIR/build-guest.sh" "$1" --cache "$2"
	else
		"$INTEROP_DIR/build-guest.sh" "$1"
	fi
	rc=$?
	[ $rc = 77 ] && interop_skip "guest packages not obtainable (see build-guest messages above)"
	[ $rc = 0 ] || { echo "FAIL: build-guest.sh exited $rc"; exit 1; }
}

interop_wait_socket() { # interop_wait_socket SOCK PID [SECONDS]
	i=0
	while [ ! -S "$1" ]; do
		kill -0 "$2" 2>/dev/null || { echo "FAIL: back end (pid $2) died before creating $1"; return 1; }
		i=$((i + 1))
		[ $i -le $((${3:-20} * 10)) ] || { echo "FAIL: $1 not created within ${3:-20}s"; return 1; }
		sleep 0.1
	done
}

interop_stop() { # interop_stop PID: SIGTERM, wait up to 10 s, then SIGKILL
	[ -n "${1:-}" ] || return 0
	kill "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

interop_ended() { # interop_ended PID [SECONDS]: PID exits by itself (default 20 s)
	[ -n "${1:-}" ] || return 1
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $((${2:-20} * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		interop_stop "$1"
		return 1
	fi
	wait "$1" 2>/dev/null
	return 0
}

# interop_run NAME run-guest.sh-ARGS...: run a guest, log to $work/NAME.log,
# count failures in $interop_failed.
interop_failed=0
interop_run() {
	name=$1
	shift
	"$INTEROP_DIR/run-guest.sh" --log "${work:?set work= to a scratch dir}/$name.log" "$@"
	rc=$?
	[ $rc = 77 ] && interop_skip "run-guest.sh skipped"
	if [ $rc != 0 ]; then
		interop_failed=$((interop_failed + 1))
		echo "interop: step $name FAILED (run-guest exit $rc)"
	fi
	return $rc
}

interop_field() { # interop_field LOG KEY -> value of the "interop: KEY VALUE" line
	grep -a "^interop: $2 " "$1" | tail -n 1 | tr -d '\r' | cut -d' ' -f3
}

# interop_check DESCRIPTION COMMAND...: one "ok -"/"not ok -" line per check;
# interop_summary prints the closing "N passed, M failed" line and fails on any.
interop_passed=0
interop_check_failed=0
interop_check() {
	d=$1
	shift
	if "$@"; then
		echo "ok - $d"
		interop_passed=$((interop_passed + 1))
	else
		echo "not ok - $d"
		interop_check_failed=$((interop_check_failed + 1))
	fi
}

interop_summary() {
	echo "$interop_passed passed, $interop_check_failed failed"
	[ "$interop_check_failed" = 0 ]
}
