#!/bin/sh
# flint-hv rejects bad input with a clear message and exit status 2, before
# touching KVM, so this runs on any machine.
# usage: bad-input.sh FLINT_HV TEST_GUEST_ELF
HV=$1
GUEST=$2
. "$(dirname "$0")/lib.sh"

# Images derived from the real test guest: truncated and corrupted copies.
head -c 40 "$GUEST" >"$WORK/trunc-ehdr.elf"
head -c 4096 "$GUEST" >"$WORK/trunc-seg.elf"
cp "$GUEST" "$WORK/bad-machine.elf"
printf '\003\000' | dd of="$WORK/bad-machine.elf" bs=1 seek=18 conv=notrunc 2>/dev/null
cp "$GUEST" "$WORK/bad-phoff.elf"
printf '\377\377\377\377' | dd of="$WORK/bad-phoff.elf" bs=1 seek=32 conv=notrunc 2>/dev/null
: >"$WORK/empty"
head -c 1000 /dev/zero >"$WORK/zeros"
# A bzImage header that promises more than the file holds.
printf 'HdrS' | dd of="$WORK/trunc-bz" bs=1 seek=514 2>/dev/null
head -c 20000000 /dev/zero >"$WORK/big-initrd"

run missing-kernel 10
expect missing-kernel 2 "--kernel is required"
run no-such-file 10 --kernel "$WORK/nonexistent"
expect no-such-file 2 "No such file"
run directory 10 --kernel "$WORK"
expect directory 2 "not a regular file"
run empty 10 --kernel "$WORK/empty"
expect empty 2 "size 0"
run not-an-image 10 --kernel "$WORK/zeros"
expect not-an-image 2 "neither a bzImage nor an ELF"
run trunc-ehdr 10 --kernel "$WORK/trunc-ehdr.elf"
expect trunc-ehdr 2 "ELF: truncated"
run trunc-segment 10 --kernel "$WORK/trunc-seg.elf"
expect trunc-segment 2 "past the end of the file"
run bad-machine 10 --kernel "$WORK/bad-machine.elf"
expect bad-machine 2 "need an x86-64 executable"
run bad-phoff 10 --kernel "$WORK/bad-phoff.elf"
expect bad-phoff 2 "program headers"
run trunc-bzimage 10 --kernel "$WORK/trunc-bz"
expect trunc-bzimage 2 "bzImage: truncated"
run initrd-too-big 10 --kernel "$GUEST" --mem 16 --initrd "$WORK/big-initrd"
expect initrd-too-big 2 "does not fit"
run initrd-missing 10 --kernel "$GUEST" --initrd "$WORK/nonexistent"
expect initrd-missing 2 "--initrd"
run mem-zero 10 --kernel "$GUEST" --mem 0
expect mem-zero 2 "outside"
run mem-absurd 10 --kernel "$GUEST" --mem 99999999G
expect mem-absurd 2 "exceeds"
run mem-garbage 10 --kernel "$GUEST" --mem lots
expect mem-garbage 2 "not a size"
run cpus-zero 10 --kernel "$GUEST" --cpus 0
expect cpus-zero 2 "outside"
run cpus-absurd 10 --kernel "$GUEST" --cpus 100000
expect cpus-absurd 2 "outside"
run unknown-option 10 --kernel "$GUEST" --turbo
expect unknown-option 2 "unknown option"
run missing-value 10 --kernel
expect missing-value 2 "missing value"
run stray-argument 10 --kernel "$GUEST" extra
expect stray-argument 2 "unexpected argument"
long=$(head -c 5000 /dev/zero | tr '\0' 'x')
run cmdline-too-long 10 --kernel "$GUEST" --cmdline "$long"
expect cmdline-too-long 2 "--cmdline"
run help 10 --help
expect help 0 "" "usage:"
finish
