#!/bin/sh
# Lab test (runs inside L1): flint-hv boots an unmodified Debian cloud kernel
# with 2 vCPUs and the lab's L2 initramfs, once as a bzImage (64-bit boot
# protocol) and once as the decompressed vmlinux ELF (PVH entry).
. /flint/tests/l2boot-lib.sh

HV=/flint/bin/flint-hv
if [ ! -x "$HV" ]; then
    echo "not ok - $HV missing (image built without --flint-hv)"
    exit 1
fi
for kind in vmlinuz vmlinux; do
    label=flint-$kind
    run_l2 "$label" "$HV" --kernel "/flint/l2/$kind" \
        --initrd /flint/l2/initrd.cpio.gz --cmdline "$L2_CMDLINE" \
        --mem 512 --cpus 2
    check_l2 "$label" 2
    check "$label: stderr has the flint-hv boot marker line (ms)" \
        grep -qE '^flint-hv:.*boot marker.*[0-9]+(\.[0-9]+)? ?ms' "/tmp/$label.err"
    grep -E 'boot marker' "/tmp/$label.err" | sed "s/^/# $label: /"
    # PCI: Linux found the host bridge through MCFG/ECAM (or mechanism #1).
    check "$label: flint-l2: pci devices=1 (the host bridge)" \
        has_line "$label" "flint-l2: pci devices=1"
    check "$label: host bridge 0000:00:00.0 is class 0x060000" \
        grep -q 'flint-l2: pci 0000:00:00.0 0x1b36:0x0008 class 0x060000' "/tmp/$label.out"
    check "$label: no 'PCI: Fatal' / 'No config space access function'" \
        sh -c "! grep -qE 'PCI: Fatal|No config space access' /tmp/$label.out"
    check "$label: Linux accepted MCFG (ECAM reserved as a motherboard resource)" \
        grep -qF 'PCI: MMCONFIG at [mem 0xe0000000-0xe00fffff] reserved in ACPI motherboard resources' \
        "/tmp/$label.out"
    check "$label: PCI0 windows: bus 00, mem 0xc0000000-0xdfffffff" \
        sh -c "grep -qF 'root bus resource [bus 00]' /tmp/$label.out &&
               grep -qF 'root bus resource [mem 0xc0000000-0xdfffffff window]' /tmp/$label.out"
done
# The reset path a Linux guest uses (reboot=k: the i8042 pulse) ends
# flint-hv with the reboot status, distinct from power-off.
run_l2 flint-reboot "$HV" --kernel /flint/l2/vmlinuz --initrd /flint/l2/initrd.cpio.gz \
    --cmdline "$L2_CMDLINE flint.action=reboot" --mem 256 --cpus 1
check "flint-reboot: exit status 4 (guest reboot), got $L2_STATUS" [ "$L2_STATUS" = 4 ]
check "flint-reboot: flint-l2: rebooting" has_line flint-reboot "flint-l2: rebooting"
check "flint-reboot: stderr names the i8042 reset" \
    grep -q 'reboot (i8042 reset)' /tmp/flint-reboot.err
summary
