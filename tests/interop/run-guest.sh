#!/bin/sh
# Boot the interop guest (build-guest.sh) on QEMU/TCG with one
# vhost-user-blk disk served by whatever listens on SOCK.
# Usage: run-guest.sh --guest-dir DIR --socket SOCK --mode ext4|readback|raw
#          [--timeout S] [--smp N] [--num-queues N] [--append "k=v ..."]
#          [--log FILE] [--mem MIB]
# Prints the guest console. Exit 0 only if the guest printed
# "interop: done N passed, 0 failed" (N > 0) and powered off; 1 on failure,
# 2 on HANG (time limit hit), 77 if QEMU is missing.
set -u

guest=
sock=
mode=
limit=${INTEROP_TIMEOUT:-180}
smp=1
nq=1
extra=
log=
mem=512
qemu=${QEMU:-qemu-system-x86_64}
usage() { sed -n '2,10p' "$0" >&2; exit 1; }
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $1 in
	--guest-dir) guest=$2 ;;
	--socket) sock=$2 ;;
	--mode) mode=$2 ;;
	--timeout) limit=$2 ;;
	--smp) smp=$2 ;;
	--num-queues) nq=$2 ;;
	--append) extra=$2 ;;
	--log) log=$2 ;;
	--mem) mem=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[ -n "$guest" ] && [ -n "$sock" ] && [ -n "$mode" ] || usage

if ! command -v "$qemu" >/dev/null 2>&1; then
	echo "SKIP: $qemu not found (apt-get install qemu-system-x86)"
	exit 77
fi
for f in vmlinuz initrd.img; do
	[ -s "$guest/$f" ] || { echo "run-guest: FAIL: $guest/$f missing (run build-guest.sh)"; exit 1; }
done
[ -S "$sock" ] || { echo "run-guest: FAIL: $sock is not a socket (back end not listening?)"; exit 1; }

own_log=
if [ -z "$log" ]; then
	log=$(mktemp)
	own_log=$log
fi
trap '[ -n "$own_log" ] && rm -f "$own_log"' EXIT
: >"$log"

echo "run-guest: mode=$mode smp=$smp num-queues=$nq timeout=${limit}s socket=$sock"
t0=$(date +%s.%N)
# memfd with share=on: the back end maps guest RAM (vhost-user requirement).
rcfile=$log.rc
{
	timeout -k 5 "$limit" "$qemu" -M q35 -accel tcg -m "$mem" -smp "$smp" \
		-nographic -no-reboot -net none \
		-kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
		-append "console=ttyS0 panic=-1 quiet loglevel=4 interop.mode=$mode $extra" \
		-object memory-backend-memfd,id=mem,size="${mem}M",share=on \
		-numa node,memdev=mem \
		-chardev socket,id=blk0,path="$sock" \
		-device vhost-user-blk-pci,chardev=blk0,num-queues="$nq" \
		</dev/null 2>&1
	echo $? >"$rcfile"
} | tee "$log"
rc=$(cat "$rcfile" 2>/dev/null || echo 1)
rm -f "$rcfile"
secs=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}')

done_line=$(grep -a 'interop: done' "$log" | tail -n 1 | tr -d '\r')
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	if [ -n "$done_line" ]; then
		echo "run-guest: HANG: guest finished ($done_line) but did not power off within ${limit}s (mode=$mode)"
	else
		echo "run-guest: HANG: no 'interop: done' line within ${limit}s (mode=$mode)"
	fi
	exit 2
fi
if grep -aq 'Kernel panic' "$log"; then
	echo "run-guest: FAIL: guest kernel panic after ${secs}s (mode=$mode)"
	exit 1
fi
if [ "$rc" != 0 ]; then
	echo "run-guest: FAIL: QEMU exited with status $rc after ${secs}s (mode=$mode)"
	exit 1
fi
if [ -z "$done_line" ]; then
	echo "run-guest: FAIL: guest stopped after ${secs}s without 'interop: done' (mode=$mode)"
	exit 1
fi
passed=$(echo "$done_line" | sed -n 's/.*interop: done \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
failed=$(echo "$done_line" | sed -n 's/.*interop: done \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
if [ "${failed:-x}" != 0 ] || [ "${passed:-0}" -lt 1 ]; then
	echo "run-guest: FAIL: mode=$mode: $done_line"
	grep -a 'interop: FAIL' "$log" | tr -d '\r' | sed 's/^/run-guest:   /'
	exit 1
fi
echo "run-guest: PASS mode=$mode: $passed checks in ${secs}s"
exit 0
