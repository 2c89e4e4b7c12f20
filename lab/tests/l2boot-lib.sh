# shellcheck shell=sh
# Helpers shared by the lab's L2 boot tests (sourced; busybox sh inside L1).
# Not a test by itself.
L2_TIMEOUT=${L2_TIMEOUT:-60}
L2_CMDLINE=${L2_CMDLINE:-console=ttyS0 reboot=k panic=-1 quiet}
PASS=0
FAIL=0
HANGS=0

uptime_s() { cut -d' ' -f1 /proc/uptime; }
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
notok() { echo "not ok - $*"; FAIL=$((FAIL + 1)); }
check() {  # DESCRIPTION COMMAND...
    d=$1; shift
    if "$@"; then ok "$d"; else notok "$d"; fi
}

# run_l2 LABEL COMMAND...: runs the VMM with a hard limit of L2_TIMEOUT
# seconds; stdout -> /tmp/LABEL.out, stderr -> /tmp/LABEL.err, exit status ->
# L2_STATUS.  A timeout is a HANG: it is said loudly and retried exactly once.
# Sets L2_HUNG=1 if the last attempt hung.
run_l2() {
    label=$1; shift
    attempt=1
    while :; do
        t0=$(uptime_s)
        timeout -s TERM "$L2_TIMEOUT" "$@" >"/tmp/$label.out" 2>"/tmp/$label.err" </dev/null
        L2_STATUS=$?
        t1=$(uptime_s)
        el=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
        echo "# $label: attempt $attempt: exit status $L2_STATUS after ${el} s"
        sed "s/^/# $label console| /" "/tmp/$label.out"
        sed "s/^/# $label stderr| /" "/tmp/$label.err"
        L2_HUNG=0
        if [ "$L2_STATUS" = 143 ] || [ "$L2_STATUS" = 137 ] ||
           awk "BEGIN{exit !($el >= $L2_TIMEOUT - 0.5)}"; then
            L2_HUNG=1
            HANGS=$((HANGS + 1))
            echo "# !!!!!! $label: L2 HANG: no exit after ${el} s (limit ${L2_TIMEOUT} s) !!!!!!"
            if [ "$attempt" = 1 ]; then
                echo "# !!!!!! $label: retrying once after a hang !!!!!!"
                attempt=2
                continue
            fi
        fi
        break
    done
}

# has_line LABEL TEXT: a console line ends with TEXT (firmware may leave
# escape sequences without a newline in front of the guest's first line)
has_line() {
    tr -d '\r' <"/tmp/$1.out" |
        awk -v t="$2" 'substr($0, length($0) - length(t) + 1) == t { f = 1 } END { exit !f }'
}

# check_l2 LABEL EXPECTED_CPUS: the standard checks of one L2 boot
check_l2() {
    if [ "$L2_HUNG" = 1 ]; then
        notok "$1: L2 guest HANG (killed after ${L2_TIMEOUT} s)"
    else
        check "$1: exit status 0 (clean power-off), got $L2_STATUS" [ "$L2_STATUS" = 0 ]
    fi
    check "$1: flint-l2: cpus=$2" has_line "$1" "flint-l2: cpus=$2"
    check "$1: flint-l2: shell marker" has_line "$1" "flint-l2: shell marker"
    check "$1: flint-l2: shell 42" has_line "$1" "flint-l2: shell 42"
}

summary() {
    [ "$HANGS" = 0 ] || echo "# WARNING: $HANGS L2 hang(s) seen (see above)"
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" = 0 ]
}
