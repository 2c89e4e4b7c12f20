#!/bin/sh
# flint-hv running the test guest on a real /dev/kvm: the self-tests pass,
# and each way a guest can end (power-off, reboot, triple fault, debug exit)
# gives its own exit status and a one-line reason.  Used directly where
# /dev/kvm exists and inside the nested lab everywhere else.
# usage: guest.sh FLINT_HV TEST_GUEST_ELF
HV=$1
GUEST=$2
if [ ! -c /dev/kvm ]; then
	echo "SKIP: guest.sh needs /dev/kvm, which this machine does not have." >&2
	echo "SKIP: the same checks run inside the nested lab (meson test lab-hv-guest)." >&2
	exit 77
fi
. "$(dirname "$0")/lib.sh"
T=${FLINT_TEST_TIMEOUT:-60}

run selftests "$T" --kernel "$GUEST" --mem 64 \
	--cmdline "tests=hello,cpl3,mem,cpuid mem.max_mib=32"
expect selftests 0 "boot marker:" "4 passed, 0 failed"
run poweroff-log "$T" --kernel "$GUEST" --mem 64 --cmdline "tests=poweroff"
expect poweroff-log 0 "guest powered off (ACPI S5"
run smp2 "$T" --kernel "$GUEST" --mem 64 --cpus 2 --cmdline "tests=smp smp.expect=2"
expect smp2 0 "" "1 passed, 0 failed"
run smp4 "$T" --kernel "$GUEST" --mem 64 --cpus 4 --cmdline "tests=smp,cpl3 smp.expect=4"
expect smp4 0 "" "2 passed, 0 failed"
run highmem "$T" --kernel "$GUEST" --mem 3584 --cmdline "tests=hello,mem mem.max_mib=16"
expect highmem 0 "" "2 passed, 0 failed"
run triplefault "$T" --kernel "$GUEST" --mem 64 --cmdline "tests=triplefault"
expect triplefault 6 "triple fault"
run reboot "$T" --kernel "$GUEST" --mem 64 --cmdline "tests=reboot"
expect reboot 4 "reboot (i8042 reset)"
run badio "$T" --kernel "$GUEST" --mem 64 --cmdline "tests=badio,hello"
expect badio 0 "" "2 passed, 0 failed"
run debug-exit "$T" --kernel "$GUEST" --mem 64 --cpus 2 --debug-exit \
	--cmdline "tests=smp smp.expect=3"
expect debug-exit 3 "debug-exit port"
# Guest memory contents never reach the log: the reason is one line.
if [ "$(wc -l <"$WORK/triplefault.err")" -le 3 ]; then
	pass "triple-fault reason is short"
else
	fail "triple-fault stderr has $(wc -l <"$WORK/triplefault.err") lines"
fi
finish
