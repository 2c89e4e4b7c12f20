#!/bin/sh
# Lab test (runs inside L1): the QEMU configurations the benchmarks use as
# peers of flint-hv boot the L2 guest: -M microvm (qboot) with the bzImage and
# -M q35 with the vmlinux ELF (PVH entry, pvh.bin).  Checks the image carries
# the firmware they need.
. /flint/tests/l2boot-lib.sh

QEMU=/usr/bin/qemu-system-x86_64
if [ ! -x "$QEMU" ]; then
    echo "not ok - $QEMU missing (image built without --with-qemu)"
    exit 1
fi
run_l2 qemu-microvm "$QEMU" -enable-kvm -cpu host -M microvm -m 512 -smp 2 \
    -nographic -no-reboot -nodefaults -monitor none -serial stdio \
    -kernel /flint/l2/vmlinuz -initrd /flint/l2/initrd.cpio.gz \
    -append "$L2_CMDLINE"
check_l2 qemu-microvm 2
run_l2 qemu-q35-pvh "$QEMU" -enable-kvm -cpu host -M q35 -m 512 -smp 2 \
    -nographic -no-reboot -nodefaults -monitor none -serial stdio \
    -kernel /flint/l2/vmlinux -initrd /flint/l2/initrd.cpio.gz \
    -append "$L2_CMDLINE"
check_l2 qemu-q35-pvh 2
summary
