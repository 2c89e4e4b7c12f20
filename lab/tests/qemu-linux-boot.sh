#!/bin/sh
# Lab test (runs inside L1): QEMU with KVM as the L2 VMM boots the Debian cloud
# kernel with the lab's L2 initramfs.  Validates the lab itself (image, KVM in
# L1, L2 initramfs) independently of flint-hv.
. /flint/tests/l2boot-lib.sh

QEMU=/usr/bin/qemu-system-x86_64
if [ ! -x "$QEMU" ]; then
    echo "not ok - $QEMU missing (image built without --with-qemu)"
    exit 1
fi
run_l2 qemu-q35 "$QEMU" -enable-kvm -cpu host -M q35 -m 512 -smp 2 \
    -nographic -no-reboot -nic none -vga none -monitor none -serial stdio \
    -kernel /flint/l2/vmlinuz -initrd /flint/l2/initrd.cpio.gz \
    -append "$L2_CMDLINE"
check_l2 qemu-q35 2
summary
