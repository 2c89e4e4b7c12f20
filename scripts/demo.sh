#!/bin/sh
# make demo: flint-hv boots guests on its embedded defaults.
#  - with a usable /dev/kvm here: the test guest's self-tests on 2 vCPUs;
#  - always: inside the nested lab, flint-hv boots an unmodified Debian
#    kernel with 2 vCPUs to a shell and powers it off, then runs the test
#    guest suite on the lab's real KVM.
# usage: scripts/demo.sh BUILD_DIR
set -eu
BUILD=${1:-build}
cd "$(dirname "$0")/.."
HV=$BUILD/hv/flint-hv
GUEST=$BUILD/guest/flint-test-guest.elf

if [ -c /dev/kvm ] && [ -r /dev/kvm ]; then
	echo "== flint-hv on this host: test guest, 2 vCPUs"
	"$HV" --kernel "$GUEST" --mem 128 --cpus 2 \
		--cmdline "tests=hello,cpl3,mem,cpuid,smp smp.expect=2"
	echo "== flint-hv exited with status $?"
else
	echo "== this host has no /dev/kvm: flint-hv runs inside the nested lab"
	echo "   (QEMU TCG emulating AMD SVM; Debian's kvm_amd gives L1 a real /dev/kvm)"
fi
echo "== building the lab image (Debian packages, cached)"
ninja -C "$BUILD" lab/l1-vmlinuz >/dev/null
echo "== lab: flint-hv boots Debian's cloud kernel (bzImage, then PVH vmlinux), 2 vCPUs"
lab/run.sh "$BUILD/lab" linux-boot.sh | tr -d '\r' |
	grep -E 'flint-l2:|flint-hv:|^ok|^not ok|passed|LAB: (PASS|FAIL|HANG)'
echo "== lab: the test-guest suite on real KVM"
lab/run.sh "$BUILD/lab" hv-guest.sh | tr -d '\r' |
	grep -E '^ok|^not ok|passed|LAB: (PASS|FAIL|HANG)'
