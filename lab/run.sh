#!/bin/bash
# Boot the nested lab's L1 (QEMU TCG, AMD SVM + NPT) and run one test script
# from /flint/tests inside it.
#
# usage: lab/run.sh IMAGE_DIR TEST_NAME [--timeout SECONDS]
#
# Exit status: 0 only when L1 printed "LAB-EXIT 0"; 77 (skip) when the image or
# QEMU is not available; 1 otherwise.  A run that hits the time limit is a
# HANG: reported loudly and retried exactly once.
set -uo pipefail

usage() { echo "usage: $0 IMAGE_DIR TEST_NAME [--timeout SECONDS]" >&2; exit 1; }
[ $# -ge 2 ] || usage
IMG=$1; TEST=$2; shift 2
LIMIT=180
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) LIMIT=$2; shift 2 ;;
        *) usage ;;
    esac
done

skip() {
    echo "########################################################"
    echo "SKIP: $*"
    echo "########################################################"
    exit 77
}
QEMU=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
for f in l1-vmlinuz l1-initrd.cpio.gz; do
    [ -s "$IMG/$f" ] || skip "lab image $IMG/$f missing (build it with lab/build-image.sh)"
    if head -c 5 "$IMG/$f" | grep -q '^SKIP:'; then
        skip "lab image not built: $(head -n1 "$IMG/$f" | cut -c7-)"
    fi
done

LOG=$(mktemp /tmp/flint-lab.XXXXXX)
trap 'rm -f "$LOG"' EXIT

attempt=1
while :; do
    echo "LAB: run $attempt: test $TEST, limit ${LIMIT} s, image $IMG"
    start=$(date +%s.%N)
    # stdin from /dev/null: QEMU must never wait on (or eat) the terminal.
    timeout -k 10 "$LIMIT" "$QEMU" \
        -M q35 -m 4096 -cpu qemu64,+svm,+npt,+aes -smp 1 -accel tcg \
        -nographic -no-reboot -monitor none -serial stdio -nic none -vga none \
        -kernel "$IMG/l1-vmlinuz" -initrd "$IMG/l1-initrd.cpio.gz" \
        -append "console=ttyS0 panic=-1 flint.run=$TEST quiet" \
        </dev/null 2>&1 | tee "$LOG"
    rc=${PIPESTATUS[0]}
    el=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "LAB: HANG after ${el} s (limit ${LIMIT} s; test $TEST, run $attempt)"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        if [ "$attempt" = 1 ]; then
            echo "LAB: retrying once after a hang"
            attempt=2
            continue
        fi
        echo "LAB: FAIL: hung twice"
        exit 1
    fi
    break
done

status=$(tr -d '\r' <"$LOG" | sed -n 's/^LAB-EXIT \([0-9][0-9]*\)$/\1/p' | tail -n1)
n=$(tr -d '\r' <"$LOG" | grep -c '^LAB-EXIT ' || true)
echo "LAB: L1 finished in ${el} s (qemu exit $rc, run $attempt), LAB-EXIT ${status:-missing}"
if [ -z "$status" ]; then
    echo "LAB: FAIL: L1 ended without a LAB-EXIT line (crash or lost console)"
    exit 1
fi
if [ "$n" != 1 ]; then
    echo "LAB: FAIL: $n LAB-EXIT lines (L1 rebooted?)"
    exit 1
fi
if [ "$status" = 0 ]; then
    echo "LAB: PASS: $TEST"
    exit 0
fi
# CI logs are often read from the tail: repeat what failed, with the lines
# just before each failure, after everything else.
tr -d '\r' <"$LOG" | awk '
    { prev[NR % 6] = $0 }
    /^not ok - / {
        print "LAB: ---- failed check, with the lines before it ----"
        for (i = NR - 5; i <= NR; i++) if (i > 0) print "LAB: | " prev[i % 6]
    }' | tail -n 60
echo "LAB: FAIL: $TEST exited with status $status"
exit 1
