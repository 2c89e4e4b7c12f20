#!/bin/sh
# Boot the flint test guest on QEMU (TCG) and check its verdicts.
# Usage: run-on-qemu.sh GUEST_ELF
# Exit: 0 pass, 1 fail, 77 skip (no qemu-system-x86_64).
set -u

elf=${1:?usage: $0 GUEST_ELF}
qemu=${QEMU:-qemu-system-x86_64}
limit=${GUEST_QEMU_TIMEOUT:-120}

if ! command -v "$qemu" >/dev/null 2>&1; then
	echo "########################################################"
	echo "SKIP: $qemu not found; guest-on-qemu-tcg NOT run"
	echo "      (apt-get install qemu-system-x86)"
	echo "########################################################"
	exit 77
fi
if [ ! -r "$elf" ]; then
	echo "FAIL: guest image $elf missing"
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0

# run NAME WANT_STATUS MACHINE CMDLINE [QEMU ARGS...] -- EXPECTED_LINE...
# (an EXPECTED_LINE starting with '!' must not appear)
run() {
	name=$1 want=$2 machine=$3 cmdline=$4
	shift 4
	qargs=
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		qargs="$qargs $1"
		shift
	done
	[ $# -gt 0 ] && shift
	log=$tmp/$name.log

	# shellcheck disable=SC2086  # qargs is a word list on purpose
	timeout -k 5 "$limit" "$qemu" -M "$machine" -accel tcg -m 256 \
		-nographic -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		$qargs -kernel "$elf" -append "$cmdline" \
		</dev/null >"$log" 2>&1
	status=$?

	ok=1
	if [ "$status" -ne "$want" ]; then
		echo "FAIL [$name]: exit status $status, want $want" \
			"(124 = timeout after ${limit}s)"
		ok=0
	fi
	for line in "flint-guest: boot marker" "$@"; do
		case $line in
		!*)	# must NOT appear
			if grep -aqF -- "${line#!}" "$log"; then
				echo "FAIL [$name]: unexpected line: ${line#!}"
				ok=0
			fi ;;
		*)
			if ! grep -aqF -- "$line" "$log"; then
				echo "FAIL [$name]: missing line: $line"
				ok=0
			fi ;;
		esac
	done
	if [ "$ok" -eq 1 ]; then
		echo "PASS [$name] ($machine, '$cmdline', status $status)"
	else
		failures=$((failures + 1))
		echo "---- $name: serial output ----"
		tr -d '\033' <"$log" | grep -a 'flint-guest' || cat "$log"
		echo "------------------------------"
	fi
}

# microvm: hardware-reduced ACPI, power-off through the GED sleep register.
run microvm-basic 0 microvm 'tests=hello,cpl3,mem,cpuid cpuid.expect=none' -- \
	'flint-guest: test hello: ok' \
	'flint-guest: test cpl3: ok' \
	'flint-guest: test mem: ok' \
	'flint-guest: test cpuid: ok' \
	'flint-guest: 4 passed, 0 failed'

# No tests= at all: the default selection.
run microvm-default 0 microvm '' -- \
	'flint-guest: test hello: ok' \
	'flint-guest: test cpl3: ok' \
	'flint-guest: test mem: ok' \
	'flint-guest: 3 passed, 0 failed'

# q35 + SeaBIOS: legacy ACPI (PM1a_CNT + \_S5_), MADT with 2 CPUs.
run q35-smp 0 q35 'tests=smp,cpl3 smp.expect=2' -smp 2 -- \
	'flint-guest: test smp: ok' \
	'flint-guest: test cpl3: ok' \
	'flint-guest: 2 passed, 0 failed'

# pc (i440fx) boots too.
run pc-basic 0 pc 'tests=hello,cpl3' -- \
	'flint-guest: test hello: ok' \
	'flint-guest: test cpl3: ok' \
	'flint-guest: 2 passed, 0 failed'

# The failure path: 1 failure -> debug-exit 1 -> status (1 << 1) | 1 = 3.
run q35-smp-fail 3 q35 'tests=smp smp.expect=3' -smp 2 -- \
	'flint-guest: test smp: FAIL' \
	'flint-guest: 0 passed, 1 failed'

# Hostile modes end the VM without a summary.
run microvm-badio 0 microvm 'tests=badio,hello' -- \
	'flint-guest: test badio: ok' \
	'flint-guest: 2 passed, 0 failed'
run microvm-poweroff 0 microvm 'tests=poweroff,hello' -- \
	'flint-guest: poweroff: powering off via ACPI' '!passed,'
run q35-triplefault 0 q35 'tests=triplefault,hello' -- \
	'flint-guest: triplefault: loading empty IDT' '!passed,'
run q35-reboot 0 q35 'tests=reboot,hello' -- \
	'flint-guest: reboot: writing 0xfe' '!passed,'

if [ "$failures" -ne 0 ]; then
	echo "guest-on-qemu-tcg: $failures case(s) failed"
	exit 1
fi
echo "guest-on-qemu-tcg: all cases passed"
exit 0
