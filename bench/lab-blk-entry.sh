#!/bin/sh
# Lab entry point (runs inside L1): the block throughput benchmark.
exec sh /flint/tests/bench/lab-blk.sh /flint/bin/flint-hv \
	/flint/guest/flint-test-guest.elf /flint/bin/flint-card-ebs \
	/flint/bin/flint-card-ebs-plain /flint/bin/flint-nbd-server \
	/flint/bin/flint-card-local
