#!/bin/sh
# Lab test (runs inside L1): tests/hv/guest.sh, the in-tree test guest on
# flint-hv, on the real /dev/kvm of the lab.
HV=/flint/bin/flint-hv
GUEST=/flint/guest/flint-test-guest.elf
for f in "$HV" "$GUEST" /flint/tests/hv/guest.sh; do
    if [ ! -e "$f" ]; then
        echo "not ok - $f missing from the lab image"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
exec sh /flint/tests/hv/guest.sh "$HV" "$GUEST"
