#!/bin/sh
# make bench: boot time and memory overhead of flint-hv against QEMU, and
# block throughput of card-ebs against QEMU's virtio-blk (lab-blk.sh), run
# in the same script on the same machine.  On a host with a usable /dev/kvm
# the benchmark runs directly; it always runs inside the nested lab too (the
# only place real KVM exists on the development and CI machines).
# usage: bench/run.sh BUILD_DIR
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

echo "== card-ebs encryption throughput (this host, one core)"
xts=$(sh bench/xts.sh "$BUILD")
echo "$xts"

if [ -c /dev/kvm ] && [ -r /dev/kvm ]; then
	echo "== bench on this host's /dev/kvm"
	sh bench/lab-bench.sh "$BUILD/hv/flint-hv" "$BUILD/guest/flint-test-guest.elf" \
		"$BUILD/bench/flint-measure" || echo "bench: host run failed"
else
	echo "== no /dev/kvm on this host: the benchmark runs in the nested lab only"
fi

echo "== bench in the nested lab (QEMU TCG + AMD SVM; ratios only are meaningful)"
ninja -C "$BUILD" lab/l1-vmlinuz >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
lab/run.sh "$BUILD/lab" lab-boot.sh --timeout 900 >"$log" 2>&1 || {
	tail -n 40 "$log"
	echo "bench: the lab run failed"
	exit 1
}
grep -E '^# (flint|qemu)-.* run [0-9]+' "$log" | tr -d '\r' || true
tr -d '\r' <"$log" | grep -E '^(BENCH|RATIO) '

echo "== block throughput in the nested lab (card-ebs vs QEMU virtio-blk; ratios only)"
blklog=$(mktemp)
trap 'rm -f "$log" "$blklog"' EXIT
blk_ok=1
lab/run.sh "$BUILD/lab" lab-blk-entry.sh --timeout 900 >"$blklog" 2>&1 || {
	tail -n 40 "$blklog"
	echo "bench: the lab block benchmark failed"
	blk_ok=0
}
tr -d '\r' <"$blklog" | grep -E '^# (ebs-|local-|qemu |TSC)' || true
tr -d '\r' <"$blklog" | grep -E '^BENCH ' || true

# The same block benchmark with QEMU TCG as the front end of all three
# set-ups: the guest is equally slow in each, while the card (and QEMU's own
# block layer) run natively on this host, with its real AES instructions.
echo "== block throughput on this host (QEMU TCG front end for all; card native)"
hostblk=$(mktemp)
trap 'rm -f "$log" "$blklog" "$hostblk"' EXIT
BENCH_BLK_FRONT=qemu-tcg BENCH_BLK_RUNS=${BENCH_BLK_RUNS:-5} sh bench/lab-blk.sh none \
	"$BUILD/guest/flint-test-guest.elf" "$BUILD/cards/flint-card-ebs" \
	"$BUILD/bench/flint-card-ebs-plain" "$BUILD/storage/flint-nbd-server" \
	"$BUILD/cards/flint-card-local" >"$hostblk" 2>&1 || {
	tail -n 40 "$hostblk"
	echo "bench: the host block benchmark failed"
	blk_ok=0
}
grep -E '^# (ebs-|local-|qemu |TSC)' "$hostblk" || true
grep -E '^BENCH ' "$hostblk" || true

echo "== ratios (encryption first, boot, then block throughput)"
echo "$xts" | grep '^RATIO'
tr -d '\r' <"$log" | grep -E '^RATIO '
tr -d '\r' <"$blklog" | grep -E '^RATIO ' || true
grep -E '^RATIO ' "$hostblk" || true
[ "$blk_ok" = 1 ] || exit 1
