#!/bin/sh
# Lab test (runs inside L1): QEMU with KVM as the L2 VMM boots the Debian cloud
# kernel with the lab's L2 initramfs.  Validates the lab itself (image, KVM in
# L1, L2 initramfs) independently of flint-hv, and the QEMU configurations the
# benchmarks use as flint-hv's peers: q35 (SeaBIOS), microvm (qboot) with the
# bzImage, and q35 with the vmlinux ELF (PVH entry, pvh.bin).
. /flint/tests/l2boot-lib.sh

QEMU=/usr/bin/qemu-system-x86_64
if [ ! -x "$QEMU" ]; then
    echo "not ok - $QEMU missing (image built without --with-qemu)"
    exit 1
fi
# run_qemu LABEL MACHINE KERNEL
run_qemu() {
    run_l2 "$1" "$QEMU" -enable-kvm -cpu host -M "$2" -m 512 -smp 2 \
        -nographic -no-reboot -nodefaults -monitor none -serial stdio \
        -kernel "$3" -initrd /flint/l2/initrd.cpio.gz -append "$L2_CMDLINE"
    check_l2 "$1" 2
}
run_qemu qemu-q35 q35 /flint/l2/vmlinuz
run_qemu qemu-microvm microvm /flint/l2/vmlinuz
run_qemu qemu-q35-pvh q35 /flint/l2/vmlinux
summary
