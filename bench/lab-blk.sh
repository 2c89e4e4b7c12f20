#!/bin/sh
# Block throughput benchmark, run where a real /dev/kvm is (inside the nested
# lab's L1; busybox sh).  The test guest's `blkbench` mode (sequential 128 KiB
# and random 4 KiB writes and reads, polled, one queue, queue depths
# BENCH_BLK_QDS, default 1 and 8) runs on:
#   ebs-xts    flint-hv + flint-card-ebs (AES-256-XTS) over flint-nbd-server
#   ebs-plain  flint-hv + flint-card-ebs-plain (bench-only, no XTS), same path
#   qemu       QEMU -enable-kvm q35 with its own virtio-blk-pci on a raw file
#   qemu-nbd   the same QEMU with its own NBD client to flint-nbd-server
#              (context: a VMM without cards on the same remote path)
#   local-xts  flint-hv + flint-card-local (AES-256-XTS) on a file in /tmp,
#              when CARD_LOCAL is given (context: the card's data path
#              without the remote hop, storage as local as QEMU's)
# The NBD server's file and QEMU's raw file are both on /tmp (tmpfs), so the
# storage underneath is the same.  QEMU uses cache=writeback (O_DIRECT, i.e.
# cache=none, is not available on tmpfs in the lab's 6.1 kernel); the NBD
# server writes through the page cache too.  Each configuration runs
# BENCH_BLK_RUNS times (default 3); medians of guest TSC cycles are compared:
# ratio = QEMU cycles / card cycles = card throughput / QEMU throughput.
#
# BENCH_BLK_FRONT=qemu-tcg runs the same three set-ups where there is no
# /dev/kvm: QEMU TCG is the front end of all three (vhost-user-blk-pci to the
# card, or its own virtio-blk-pci), so the guest is equally slow everywhere
# and the card runs natively, with the host's real AES instructions.  FLINT_HV
# is then unused.
# usage: lab-blk.sh FLINT_HV GUEST_ELF CARD_EBS CARD_EBS_PLAIN NBD_SERVER [CARD_LOCAL]
HV=$1
GUEST=$2
EBS=$3
PLAIN=$4
NBD=$5
LOCAL=${6:-}
RUNS=${BENCH_BLK_RUNS:-3}
MIB=${BENCH_BLK_MIB:-32}
QDS=${BENCH_BLK_QDS:-1 8}
LIMIT=${BENCH_BLK_TIMEOUT:-240}
FRONT=${BENCH_BLK_FRONT:-flint-hv}
case $FRONT in
flint-hv) ACCEL="-enable-kvm -cpu host" ;;
qemu-tcg) ACCEL="-accel tcg" ;;
*) echo "lab-blk: BENCH_BLK_FRONT must be flint-hv or qemu-tcg"; exit 2 ;;
esac
QEMU=$(command -v qemu-system-x86_64 || true)
OUT=${TMPDIR:-/tmp}/flint-blkbench.$$
SIZE=67108864
PATTERNS="seqwrite seqread randwrite randread"
mkdir -p "$OUT"
failed=0

if [ "$FRONT" = qemu-tcg ]; then
	HV=$GUEST
	[ -n "$QEMU" ] || { echo "lab-blk: qemu-system-x86_64 is needed as the front end"; exit 1; }
fi
for f in "$HV" "$GUEST" "$EBS" "$PLAIN" "$NBD" ${LOCAL:+"$LOCAL"}; do
	if [ ! -x "$f" ] && [ ! -r "$f" ]; then
		echo "lab-blk: $f missing from the lab image"
		exit 1
	fi
done

median() { sort -n | awk '{v[NR]=$1} END{if(NR==0){print "nan"} else if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0 && b > 0) printf "%.2f", a / b; else print "nan" }'; }
wait_sock() { i=0; while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; [ -S "$1" ]; }
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# TSC frequency for MB/s (information only): the guest's CPUID if it has
# one, else L1's (L2 sees L1's TSC unscaled).
L1_KHZ=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9]*\)\.\([0-9]*\) MHz.*/\1\2/p' | tail -n 1)
[ -n "$L1_KHZ" ] || L1_KHZ=0

# guest NAME QD RUN COMMAND...: one guest run, results appended to
# $OUT/NAME.qdQD.PATTERN (cycles, one line per run).
guest() {
	name=$1; qd=$2; run=$3; shift 3
	log=$OUT/$name.qd$qd.$run.log
	timeout -s KILL "$LIMIT" "$@" >"$log" 2>"$log.err" </dev/null
	st=$?
	tr -d '\r' <"$log" >"$log.clean"
	if ! grep -q 'flint-guest: 1 passed, 0 failed' "$log.clean"; then
		echo "# $name qd=$qd run $run FAILED (exit $st); last output:"
		tail -n 8 "$log.clean" | sed 's/^/#   /'
		tail -n 5 "$log.err" | sed 's/^/#   stderr: /'
		failed=$((failed + 1))
		return 1
	fi
	line="# $name qd=$qd run $run:"
	for p in $PATTERNS; do
		c=$(sed -n "s/^flint-guest: bench $p bytes=\([0-9]*\) cycles=\([0-9]*\).*/\2/p" "$log.clean")
		b=$(sed -n "s/^flint-guest: bench $p bytes=\([0-9]*\) cycles=\([0-9]*\).*/\1/p" "$log.clean")
		echo "$c" >>"$OUT/$name.qd$qd.$p"
		echo "$b" >"$OUT/bytes.$p"
		line="$line $p=$c"
	done
	k=$(sed -n 's/^flint-guest: bench seqwrite .*tsc_khz=\([0-9]*\).*/\1/p' "$log.clean")
	[ -n "$k" ] && [ "$k" != 0 ] && echo "$k" >"$OUT/tsc_khz"
	echo "$line cycles"
}

cmdline() { echo "tests=blkbench bench.mib=$MIB bench.qd=$1"; }

# qemu_guest NAME QD RUN DEVICE_ARGS...: one run of the test guest on QEMU
# (every set-up's machine alike), the block device given by the arguments.
qemu_guest() {
	name=$1; qd=$2; run=$3; shift 3
	# shellcheck disable=SC2086
	guest "$name" "$qd" "$run" "$QEMU" $ACCEL -M q35 -m 256 -smp 2 \
		-nodefaults -no-user-config -nographic -no-reboot -serial stdio \
		"$@" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$GUEST" -append "$(cmdline "$qd")"
}

# start_card NAME CARD_KIND: a card for one guest (a card serves one front
# end and ends with it) on $OUT/card.sock; sets card_pid.
start_card() {
	rm -f "$OUT/card.sock"
	if [ "$2" = local ]; then
		"$LOCAL" --socket "$OUT/card.sock" --store /tmp/blkbench-vol.img --size $SIZE \
			--queues 1 >>"$OUT/card.$1.log" 2>&1 &
	elif [ "$2" = xts ]; then
		"$EBS" --socket "$OUT/card.sock" --nbd "unix:$OUT/nbd.sock" --key-fd 3 \
			--queues 1 3<"$OUT/vol.key" >>"$OUT/card.$1.log" 2>&1 &
	else
		"$PLAIN" --socket "$OUT/card.sock" --nbd "unix:$OUT/nbd.sock" \
			--queues 1 >>"$OUT/card.$1.log" 2>&1 &
	fi
	card_pid=$!
	wait_sock "$OUT/card.sock"
}

# flint_runs NAME CARD_KIND QD: NBD server fresh for each config, a card for
# each run (card-local, kind local, has its store file and no server).
flint_runs() {
	name=$1; kind=$2; qd=$3
	rm -f "$OUT/nbd.sock" "$OUT/card.sock" /tmp/blkbench-vol.img "$OUT/card.$name.log"
	head -c 64 /dev/urandom >"$OUT/vol.key"
	nbd_pid=
	if [ "$kind" != local ]; then
		"$NBD" --file /tmp/blkbench-vol.img --size $SIZE --create \
			--listen-unix "$OUT/nbd.sock" >"$OUT/nbd.$name.log" 2>&1 &
		nbd_pid=$!
		if ! wait_sock "$OUT/nbd.sock"; then
			echo "# $name: flint-nbd-server did not start"; cat "$OUT/nbd.$name.log"
			stop $nbd_pid; failed=$((failed + 1)); return
		fi
	fi
	r=0
	while [ $r -lt "$RUNS" ]; do
		r=$((r + 1))
		if ! start_card "$name" "$kind"; then
			echo "# $name: card did not start"; failed=$((failed + 1))
			stop $card_pid
			break
		fi
		if [ "$FRONT" = flint-hv ]; then
			guest "$name" "$qd" "$r" "$HV" --kernel "$GUEST" --mem 256 --cpus 2 \
				--debug-exit --blk "socket=$OUT/card.sock,queues=1" \
				--cmdline "$(cmdline "$qd")"
		else
			qemu_guest "$name" "$qd" "$r" \
				-object memory-backend-memfd,id=mem,size=256M,share=on \
				-numa node,memdev=mem \
				-chardev socket,id=c0,path="$OUT/card.sock" \
				-device vhost-user-blk-pci,chardev=c0,num-queues=1,disable-legacy=on
		fi
		stop $card_pid # normally gone already: it ends with its front end
	done
	[ -z "$nbd_pid" ] || stop $nbd_pid
	tail -n 3 "$OUT/card.$name.log" | sed "s/^/# $name card| /"
	rm -f /tmp/blkbench-vol.img
}

qemu_runs() {
	qd=$1
	rm -f /tmp/blkbench-raw.img
	truncate -s $SIZE /tmp/blkbench-raw.img
	r=0
	while [ $r -lt "$RUNS" ]; do
		r=$((r + 1))
		qemu_guest qemu "$qd" "$r" \
			-drive file=/tmp/blkbench-raw.img,format=raw,if=none,id=d0,cache=writeback,aio=threads \
			-device virtio-blk-pci,drive=d0,disable-legacy=on,num-queues=1
	done
	rm -f /tmp/blkbench-raw.img
}

# Context, not the goal: QEMU's virtio-blk on the same remote volume path
# (its own NBD client to the same flint-nbd-server, no encryption), i.e.
# what a VMM without cards pays for remote storage.
qemu_nbd_runs() {
	qd=$1
	rm -f "$OUT/nbd.sock" /tmp/blkbench-vol.img
	"$NBD" --file /tmp/blkbench-vol.img --size $SIZE --create \
		--listen-unix "$OUT/nbd.sock" >"$OUT/nbd.qemu-nbd.log" 2>&1 &
	nbd_pid=$!
	if wait_sock "$OUT/nbd.sock"; then
		r=0
		while [ $r -lt "$RUNS" ]; do
			r=$((r + 1))
			qemu_guest qemu-nbd "$qd" "$r" \
				-drive driver=nbd,server.type=unix,server.path="$OUT/nbd.sock",if=none,id=d0,cache=writeback \
				-device virtio-blk-pci,drive=d0,disable-legacy=on,num-queues=1
		done
	else
		echo "# qemu-nbd: flint-nbd-server did not start"; failed=$((failed + 1))
	fi
	stop $nbd_pid
	rm -f /tmp/blkbench-vol.img
}

for qd in $QDS; do
	flint_runs ebs-xts xts "$qd"
	flint_runs ebs-plain plain "$qd"
	[ -z "$LOCAL" ] || flint_runs local-xts local "$qd"
	if [ -n "$QEMU" ]; then
		qemu_runs "$qd"
		qemu_nbd_runs "$qd"
	else
		echo "# no qemu-system-x86_64 in L1"; failed=$((failed + 1))
	fi
done

khz=$(cat "$OUT/tsc_khz" 2>/dev/null || echo "$L1_KHZ")
mbs() { awk -v b="$1" -v c="$2" -v k="$khz" 'BEGIN{ if (c > 0 && k > 0) printf "%.1f", b * k / c / 1000; else print "?" }'; }
echo "# TSC: $khz kHz (MB/s below are information only; ratios use cycles)"
for qd in $QDS; do
	for p in $PATTERNS; do
		b=$(cat "$OUT/bytes.$p" 2>/dev/null || echo 0)
		line="BENCH blk[$FRONT] $p qd=$qd $b bytes, median of $RUNS (Mcycles, MB/s):"
		for n in ebs-xts ebs-plain qemu qemu-nbd ${LOCAL:+local-xts}; do
			c=$(median <"$OUT/$n.qd$qd.$p" 2>/dev/null)
			line="$line $n $(awk -v c="$c" 'BEGIN{printf "%.1f", c / 1e6}') ($(mbs "$b" "$c"))"
		done
		echo "$line"
	done
done
# cells QD CARD PEER: "pattern ratio, ..." of PEER's median cycles over CARD's.
cells() {
	line=""
	for p in $PATTERNS; do
		ce=$(median <"$OUT/$2.qd$1.$p" 2>/dev/null)
		cq=$(median <"$OUT/$3.qd$1.$p" 2>/dev/null)
		line="$line${line:+, }$p $(ratio "$cq" "$ce")"
	done
	echo "$line"
}
for qd in $QDS; do
	echo "RATIO blk[$FRONT] qd=$qd card-ebs encrypted / QEMU virtio-blk (throughput): $(cells "$qd" ebs-xts qemu) (goal >= 1.0)"
	echo "RATIO blk[$FRONT] qd=$qd card-ebs unencrypted / QEMU virtio-blk (throughput): $(cells "$qd" ebs-plain qemu)"
	echo "RATIO blk[$FRONT] qd=$qd card-ebs encrypted / QEMU virtio-blk over NBD, same server, unencrypted (context): $(cells "$qd" ebs-xts qemu-nbd)"
	[ -z "$LOCAL" ] ||
		echo "RATIO blk[$FRONT] qd=$qd card-local encrypted, local file / QEMU virtio-blk (context: no remote hop): $(cells "$qd" local-xts qemu)"
done
rm -rf "$OUT"
if [ "$failed" != 0 ]; then
	echo "lab-blk: $failed run(s) failed"
	exit 1
fi
exit 0
