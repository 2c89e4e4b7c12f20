#!/bin/sh
# Lab entry point (runs inside L1): the boot benchmark on the lab's /dev/kvm.
exec sh /flint/tests/bench/lab-bench.sh /flint/bin/flint-hv \
	/flint/guest/flint-test-guest.elf /flint/bin/flint-measure \
	/flint/l2/vmlinuz /flint/l2/initrd.cpio.gz
