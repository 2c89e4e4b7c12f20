#!/bin/sh
# Validate the interop harness against a vhost-user-blk back end nobody here
# wrote: qemu-storage-daemon exporting a 64 MiB raw image.
#   1. ext4:     mkfs.ext4, write files, remount, verify sha256
#   2. readback: qsd restarted; fresh boot mounts the fs and verifies the
#                manifest (sha256 handed over from step 1)
#   3. raw:      4 KiB plaintext pattern + random data via raw dd, O_DIRECT
#                read back; host checks the pattern is in the image at 0
# Usage: qsd-ext4.sh [--guest-dir DIR] [--cache DIR] [--queues N] [--keep]
# Exit: 0 pass, 1 fail, 77 skip (no QEMU / qsd / Debian packages).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

guest=${INTEROP_GUEST_DIR:-}
cache=${INTEROP_DEB_CACHE:-}
nq=2
keep=no
while [ $# -gt 0 ]; do
	case $1 in
	--guest-dir) guest=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--queues) nq=$2; shift 2 ;;
	--keep) keep=yes; shift ;;
	*) echo "usage: $0 [--guest-dir DIR] [--cache DIR] [--queues N] [--keep]"; exit 1 ;;
	esac
done

interop_need qemu-system-x86_64 qemu-system-x86
interop_need qemu-storage-daemon qemu-utils
interop_need timeout coreutils

work=$(mktemp -d /tmp/interop-qsd.XXXXXX)
guest=${guest:-$work/guest}
qsd_pid=
cleanup() {
	interop_stop "$qsd_pid"
	if [ $keep = yes ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

t=$(date +%s)
interop_guest "$guest" "$cache"
echo "interop: guest ready in $(($(date +%s) - t)) s"

img=$work/disk.img
sock=$work/blk.sock
truncate -s 64M "$img"

qsd_start() {
	rm -f "$sock"
	qemu-storage-daemon \
		--blockdev driver=file,node-name=f,filename="$img" \
		--export type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path="$sock",writable=on,num-queues="$nq" \
		>>"$work/qsd.log" 2>&1 &
	qsd_pid=$!
	interop_wait_socket "$sock" "$qsd_pid" 20 || { cat "$work/qsd.log"; exit 1; }
}

qsd_start
interop_run ext4 --guest-dir "$guest" --socket "$sock" --mode ext4 \
	--smp 2 --num-queues "$nq" --timeout 240
manifest=$(interop_field "$work/ext4.log" manifest)

# Restart the back end: the data must come from the image, not from memory.
interop_stop "$qsd_pid"
qsd_start
if [ -n "$manifest" ]; then
	interop_run readback --guest-dir "$guest" --socket "$sock" --mode readback \
		--smp 2 --num-queues "$nq" --timeout 180 --append "interop.manifest=$manifest"
else
	echo "interop: step readback FAILED: ext4 step printed no manifest"
	interop_failed=$((interop_failed + 1))
fi

pattern=FLINT-QSD-PLAINTEXT-$$-
interop_run raw --guest-dir "$guest" --socket "$sock" --mode raw \
	--smp 2 --num-queues "$nq" --timeout 180 --append "interop.pattern=$pattern"
interop_stop "$qsd_pid"
qsd_pid=
# qsd stores plaintext, so the guest's pattern block must sit at offset 0.
want=$(interop_field "$work/raw.log" pattern-block-sha256)
got=$(head -c 4096 "$img" | sha256sum | cut -d' ' -f1)
if [ -n "$want" ] && [ "$want" = "$got" ]; then
	echo "interop: ok host sees the guest's pattern block at offset 0 of the image"
else
	echo "interop: FAIL host image block 0 sha256 $got, guest wrote ${want:-?}"
	interop_failed=$((interop_failed + 1))
fi

if [ $interop_failed = 0 ]; then
	echo "PASS: interop-qsd-ext4 (ext4, readback after qsd restart, raw; $nq queues)"
	exit 0
fi
echo "FAIL: interop-qsd-ext4: $interop_failed step(s) failed"
exit 1
