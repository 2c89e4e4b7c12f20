#!/bin/sh
# Boot benchmark, run where a real /dev/kvm is: inside the nested lab's L1,
# or directly on a host with hardware virtualisation.  flint-hv and QEMU
# (-M microvm -enable-kvm, the Firecracker-like peer) boot the same guest,
# several times each; prints medians and ratios.  Guest RAM is a memfd for
# both, so "overhead" (RssAnon + RssFile) is the VMM's own memory.
# usage: lab-bench.sh FLINT_HV GUEST_ELF MEASURE [L2_KERNEL L2_INITRD]
HV=$1
GUEST=$2
MEASURE=$3
L2_KERNEL=${4:-}
L2_INITRD=${5:-}
RUNS=${BENCH_RUNS:-7}
LINUX_RUNS=${BENCH_LINUX_RUNS:-3}
QEMU=$(command -v qemu-system-x86_64 || true)
L2_CMDLINE="console=ttyS0 reboot=k panic=-1 quiet"
OUT=${TMPDIR:-/tmp}/flint-bench.$$
mkdir -p "$OUT"

median() { sort -n | awk '{v[NR]=$1} END{if(NR==0){print "nan"} else if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }
field() { sed -n "s/.*$1=\([-0-9.]*\).*/\1/p"; }

# measure NAME MARKER RUNS COMMAND...: appends one result line per run.
measure() {
	name=$1; marker=$2; runs=$3; shift 3
	i=0
	while [ "$i" -lt "$runs" ]; do
		i=$((i + 1))
		line=$("$MEASURE" "$marker" 120 "$OUT/$name.$i.log" -- "$@" | tail -n 1)
		echo "# $name run $i: $line"
		status=$(echo "$line" | field status)
		if [ "$status" != 0 ]; then
			echo "# $name run $i FAILED (status $status); last output:"
			tail -n 5 "$OUT/$name.$i.log" | sed 's/^/#   /'
			continue
		fi
		echo "$line" >>"$OUT/$name.results"
	done
}

stat() { field "$2" <"$OUT/$1.results" 2>/dev/null | median; }

# QEMU's microvm with guest RAM in a memfd, like flint-hv's.
QEMU_COMMON="-M microvm,memory-backend=ram -enable-kvm -cpu host -nodefaults
 -no-user-config -nographic -no-reboot -serial stdio"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

measure flint-guest "flint-guest: boot marker" "$RUNS" \
	"$HV" --kernel "$GUEST" --mem 64 --cmdline "tests=hello"
if [ -n "$QEMU" ]; then
	# shellcheck disable=SC2086
	measure qemu-guest "flint-guest: boot marker" "$RUNS" \
		"$QEMU" $QEMU_COMMON -m 64 -smp 1 -object memory-backend-memfd,id=ram,size=64M \
		-kernel "$GUEST" -append "tests=hello"
fi
if [ -n "$L2_KERNEL" ]; then
	measure flint-linux "flint-l2: shell marker" "$LINUX_RUNS" \
		"$HV" --kernel "$L2_KERNEL" --initrd "$L2_INITRD" --mem 512 --cpus 2 \
		--cmdline "$L2_CMDLINE"
	# shellcheck disable=SC2086
	[ -n "$QEMU" ] && measure qemu-linux "flint-l2: shell marker" "$LINUX_RUNS" \
		"$QEMU" $QEMU_COMMON -m 512 -smp 2 -object memory-backend-memfd,id=ram,size=512M \
		-kernel "$L2_KERNEL" -initrd "$L2_INITRD" -append "$L2_CMDLINE"
fi

fg=$(stat flint-guest marker_ms); qg=$(stat qemu-guest marker_ms)
fo=$(stat flint-guest overhead_kib); qo=$(stat qemu-guest overhead_kib)
fr=$(stat flint-guest rss_kib); qr=$(stat qemu-guest rss_kib)
fs=$(stat flint-guest startup_kib); qs=$(stat qemu-guest startup_kib)
echo "BENCH test-guest boot to marker (median of $RUNS): flint-hv $fg ms, qemu-microvm $qg ms"
echo "BENCH VMM overhead RSS after boot, guest RAM excluded (median): flint-hv $fo KiB, qemu-microvm $qo KiB"
echo "BENCH VMM peak RSS during start-up, guest RAM excluded (median): flint-hv $fs KiB, qemu-microvm $qs KiB"
echo "BENCH peak RSS incl. touched guest RAM (median): flint-hv $fr KiB, qemu-microvm $qr KiB"
if [ -n "$L2_KERNEL" ]; then
	fl=$(stat flint-linux marker_ms); ql=$(stat qemu-linux marker_ms)
	flo=$(stat flint-linux overhead_kib); qlo=$(stat qemu-linux overhead_kib)
	echo "BENCH linux boot to shell marker, 2 vCPUs (median of $LINUX_RUNS): flint-hv $fl ms, qemu-microvm $ql ms"
	echo "BENCH linux guest VMM overhead RSS after boot (median): flint-hv $flo KiB, qemu-microvm $qlo KiB"
	echo "RATIO linux boot flint-hv/qemu: $(ratio "$fl" "$ql") (lower is better)"
fi
echo "RATIO VMM overhead RSS flint-hv/qemu: $(ratio "$fo" "$qo"); flint-hv overhead $(awk -v k="$fo" 'BEGIN{printf "%.2f", k/1024}') MiB (goal <= 3 MiB)"
echo "RATIO test-guest boot flint-hv/qemu: $(ratio "$fg" "$qg") (goal <= 0.5)"
rm -rf "$OUT"
