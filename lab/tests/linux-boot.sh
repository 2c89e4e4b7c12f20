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
summary
