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
