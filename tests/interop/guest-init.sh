#!/bin/busybox sh
# /init of the Flint interop guest (busybox sh, runs as PID 1).
# Drives the first virtio-blk disk (/dev/vda) with stock Linux drivers and
# reports on the console:
#   interop: ok WHAT | interop: FAIL WHAT | interop: done N passed, M failed
# then powers off.
# Kernel command line:
#   interop.mode=ext4|readback|raw|zeros   (default ext4)
#   interop.pattern=STRING           raw mode: plaintext repeated in 4 KiB block
#   interop.manifest=SHA256          readback: expected sha256 of the manifest
#   interop.size=MIB                 ext4 mode: size of the big file (default 8)
#   interop.blocksize=N              ext4 mode: mkfs.ext4 -b N (default 4096)
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /mnt /tmp
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
echo 1 >/proc/sys/kernel/printk 2>/dev/null

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "interop: ok $*"; }
bad() { fail=$((fail + 1)); echo "interop: FAIL $*"; }
finish() {
	echo "interop: done $pass passed, $fail failed"
	sync
	poweroff -f
	sleep 5
	exit 1
}

arg() { # arg NAME DEFAULT
	for w in $(cat /proc/cmdline); do
		case $w in "$1="*) echo "${w#*=}"; return ;; esac
	done
	echo "$2"
}
mode=$(arg interop.mode ext4)
pattern=$(arg interop.pattern FLINT-INTEROP-PLAINTEXT-)
manifest_want=$(arg interop.manifest "")
bigmib=$(arg interop.size 8)
fsbs=$(arg interop.blocksize 4096)
echo "interop: start mode=$mode kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"

# Modules in dependency order (written by build-guest.sh).
while read -r m; do
	[ -n "$m" ] || continue
	if insmod "/lib/modules/$m" 2>/tmp/insmod.err; then
		:
	elif grep -q 'File exists' /tmp/insmod.err; then
		:
	else
		bad "insmod $m: $(cat /tmp/insmod.err)"
	fi
done </lib/modules/load.order

dev=/dev/vda
i=0
while [ ! -b $dev ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -b $dev ]; then
	bad "no $dev after 30 s (virtio-blk device did not appear)"
	finish
fi
sectors=$(cat /sys/block/vda/size)
ok "found $dev ($((sectors / 2048)) MiB, $(ls /sys/block/vda/mq 2>/dev/null | wc -l) queue(s))"

checksums() { # checksums DIR -> sorted "sum  name" lines for data files
	(cd "$1" && find . -type f ! -name MANIFEST | sort | xargs sha256sum)
}

verify_manifest() { # verify_manifest WHEN
	if [ ! -f /mnt/MANIFEST ]; then
		bad "$1: /mnt/MANIFEST missing"
		return
	fi
	if [ -n "$manifest_want" ]; then
		got=$(sha256sum /mnt/MANIFEST | cut -d' ' -f1)
		if [ "$got" = "$manifest_want" ]; then
			ok "$1: manifest sha256 as expected"
		else
			bad "$1: manifest sha256 $got, want $manifest_want"
		fi
	fi
	checksums /mnt >/tmp/now.sums
	if cmp -s /tmp/now.sums /mnt/MANIFEST; then
		ok "$1: $(wc -l </mnt/MANIFEST) files match their sha256"
	else
		bad "$1: checksums differ:"
		diff /mnt/MANIFEST /tmp/now.sums | head -20
	fi
}

mode_ext4() {
	if mkfs.ext4 -F -q -b "$fsbs" "$dev"; then ok "mkfs.ext4 -b $fsbs"; else bad "mkfs.ext4"; finish; fi
	if mount -t ext4 "$dev" /mnt; then ok "mount"; else bad "mount"; finish; fi
	# Data: a big file, an odd-sized one, many small files, a sparse one.
	dd if=/dev/urandom of=/mnt/big bs=1M count="$bigmib" 2>/dev/null
	dd if=/dev/urandom of=/mnt/odd bs=4093 count=301 2>/dev/null
	mkdir -p /mnt/small
	n=0
	while [ $n -lt 64 ]; do
		dd if=/dev/urandom of=/mnt/small/f$n bs=$((n * 97 + 1)) count=1 2>/dev/null
		n=$((n + 1))
	done
	dd if=/dev/urandom of=/mnt/sparse bs=4096 count=3 seek=5000 2>/dev/null
	echo "hello from the interop guest" >/mnt/hello.txt
	checksums /mnt >/mnt/MANIFEST
	sync
	ok "wrote $(wc -l </mnt/MANIFEST) files ($(du -sk /mnt | cut -f1) KiB)"
	echo "interop: manifest $(sha256sum /mnt/MANIFEST | cut -d' ' -f1)"
	manifest_want=$(sha256sum /mnt/MANIFEST | cut -d' ' -f1)
	verify_manifest "before remount"
	if umount /mnt; then ok "umount"; else bad "umount"; fi
	echo 3 >/proc/sys/vm/drop_caches
	if mount -t ext4 "$dev" /mnt; then ok "remount"; else bad "remount"; finish; fi
	verify_manifest "after remount"
	umount /mnt || bad "final umount"
}

mode_readback() {
	if mount -t ext4 -o ro "$dev" /mnt; then
		ok "mount existing filesystem (no mkfs)"
	else
		bad "mount existing filesystem"
		finish
	fi
	verify_manifest "readback"
	umount /mnt || bad "umount"
}

mode_raw() {
	# 4 KiB block made of the pattern string repeated.
	: >/tmp/blk
	while [ "$(wc -c </tmp/blk)" -lt 4096 ]; do
		printf '%s' "$pattern$pattern$pattern$pattern" >>/tmp/blk
	done
	head -c 4096 /tmp/blk >/tmp/block
	# 4 MiB of that block: region [0, 4 MiB).
	n=0
	: >/tmp/pat1m
	while [ $n -lt 256 ]; do cat /tmp/block; n=$((n + 1)); done >/tmp/pat1m
	cat /tmp/pat1m /tmp/pat1m /tmp/pat1m /tmp/pat1m >/tmp/pat
	# Random data at [8 MiB, 12 MiB) in odd-sized (12 KiB) requests catches
	# misplaced offsets that a repeated pattern would not.
	dd if=/dev/urandom of=/tmp/rnd bs=1M count=4 2>/dev/null
	if dd if=/tmp/pat of=$dev bs=64k conv=fsync 2>/dev/null &&
		dd if=/tmp/rnd of=$dev bs=12k seek=683 conv=notrunc,fsync 2>/dev/null; then
		ok "raw write (pattern 4 MiB @0, random 4 MiB @8 MiB)"
	else
		bad "raw write"
	fi
	sync
	echo 3 >/proc/sys/vm/drop_caches
	want=$(sha256sum </tmp/pat | cut -d' ' -f1)
	got=$(dd if=$dev bs=64k count=64 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] && ok "raw pattern read back (O_DIRECT)" ||
		bad "raw pattern read back: $got != $want"
	got=$(dd if=$dev bs=64k count=64 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] && ok "raw pattern read back (page cache dropped)" ||
		bad "raw pattern read back (buffered): $got != $want"
	# 12 KiB * 683 = 8196 KiB: not 8 MiB exactly; compare the same range.
	want=$(sha256sum </tmp/rnd | cut -d' ' -f1)
	got=$(dd if=$dev bs=12k skip=683 count=$((4096 / 12 + 1)) iflag=direct 2>/dev/null |
		head -c 4194304 | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] && ok "raw random data read back at offset" ||
		bad "raw random data read back: $got != $want"
	echo "interop: pattern-block-sha256 $(sha256sum </tmp/block | cut -d' ' -f1)"
}

# The whole disk reads as zeros, like a new one (a new tenant's instance store).
mode_zeros() {
	want=$(dd if=/dev/zero bs=512 count="$sectors" 2>/dev/null | sha256sum | cut -d' ' -f1)
	got=$(dd if=$dev bs=1M iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] && ok "the whole disk reads as zeros" ||
		bad "the disk does not read as zeros"
}

case $mode in
ext4) mode_ext4 ;;
readback) mode_readback ;;
raw) mode_raw ;;
zeros) mode_zeros ;;
*) bad "unknown interop.mode=$mode" ;;
esac
finish
