#!/bin/sh
# The flint test guest's virtio-blk driver against vhost-user-blk back ends,
# QEMU (TCG, q35) as the front end.  A card serves one front end and ends
# with it, so every guest gets a card of its own (and each card is checked
# to have ended, key wiped, once its QEMU exited):
#   card-ebs (over flint-nbd-server): blk, blkmq, blkbad, blkirq; blkpersist
#     write, then a new card with the same key: blkpersist verify (+ a
#     wrong-seed verify that must fail: the check is not vacuous)
#   card-local: blk, blkmq, blkbad, blkirq; blk with the BAR moved by the
#     guest (a new card on the same store)
#   qemu-storage-daemon (a back end nobody here wrote): blk, blkmq, blkirq
#     (not blkbad: libvhost-user vu_panic()s on a bad descriptor, by design)
# Usage: blk-on-qemu.sh --guest ELF [--card-ebs PATH] [--card-local PATH]
#          [--nbd-server PATH] [--qsd PATH|none]
# Exit: 0 pass, 1 fail (a guest that hits its time limit is reported as
# HANG), 77 skip (no qemu-system-x86_64).
set -u

guest=""; ebs=""; local_card=""; nbd=""; qsd=${QSD:-qemu-storage-daemon}
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { sed -n '2,14p' "$0"; exit 2; }
	case $1 in
	--guest) guest=$2 ;;
	--card-ebs) ebs=$2 ;;
	--card-local) local_card=$2 ;;
	--nbd-server) nbd=$2 ;;
	--qsd) qsd=$2 ;;
	*) sed -n '2,14p' "$0"; exit 2 ;;
	esac
	shift 2
done
qemu=${QEMU:-qemu-system-x86_64}
limit=${GUEST_QEMU_TIMEOUT:-180}

if ! command -v "$qemu" >/dev/null 2>&1; then
	echo "########################################################"
	echo "SKIP: $qemu not found; guest-blk tests NOT run"
	echo "      (apt-get install qemu-system-x86)"
	echo "########################################################"
	exit 77
fi
[ -r "$guest" ] || { echo "FAIL: guest image '$guest' missing"; exit 1; }

tmp=$(mktemp -d /tmp/flint-gblk.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do stop "$p"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
failures=0
passes=0

stop() { # SIGTERM, wait up to 10 s, then SIGKILL
	kill "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

wait_socket() { # SOCK PID NAME
	i=0
	while [ ! -S "$1" ]; do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "FAIL: $3 (pid $2) died before creating $1"; return 1
		fi
		i=$((i + 1))
		[ $i -le 200 ] || { echo "FAIL: $3 did not create $1 in 20 s"; return 1; }
		sleep 0.1
	done
}

fail() {
	echo "FAIL [$1]: $2"
	failures=$((failures + 1))
}

# ended PID NAME LOG WORDS: the card ended by itself (its front end left)
# within 20 s, and its log has WORDS.
ended() {
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do
		sleep 0.1; i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		fail "$2" "the card still runs after its front end left"
		stop "$1"
		return 1
	fi
	wait "$1" 2>/dev/null
	grep -q "$4" "$3" || { fail "$2" "no '$4' in the card's log"; return 1; }
}

# guest NAME SOCK WANT_STATUS CMDLINE EXPECTED_LINE...
guest() {
	name=$1 sock=$2 want=$3 cmdline=$4
	shift 4
	log=$tmp/$name.log
	t0=$(date +%s.%N)
	timeout -k 5 "$limit" "$qemu" -M q35 -accel tcg -m 256 \
		-nographic -no-reboot -net none \
		-object memory-backend-memfd,id=mem,size=256M,share=on \
		-numa node,memdev=mem \
		-chardev socket,id=c0,path="$sock" \
		-device vhost-user-blk-pci,chardev=c0,num-queues=2,disable-legacy=on \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$guest" -append "$cmdline" </dev/null >"$log" 2>&1
	status=$?
	secs=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}')
	ok=1
	if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
		echo "HANG [$name]: no exit within ${limit}s ('$cmdline')"
		ok=0
	elif [ "$status" -ne "$want" ]; then
		echo "FAIL [$name]: exit status $status, want $want ('$cmdline')"
		ok=0
	fi
	for line in "flint-guest: boot marker" "$@"; do
		if ! grep -aqF -- "$line" "$log"; then
			echo "FAIL [$name]: missing line: $line"
			ok=0
		fi
	done
	if [ "$ok" -eq 1 ]; then
		echo "PASS [$name] (${secs}s, '$cmdline')"
		passes=$((passes + 1))
		tr -d '\033\r' <"$log" |
			grep -aE 'flint-guest: (blkbad: *[0-9]|blkirq: ([0-9]+ interrupts|[a-z]+ mask:))' |
			sed 's/^flint-guest: /    /'
	else
		failures=$((failures + 1))
		echo "---- $name: serial output (${secs}s) ----"
		tr -d '\033\r' <"$log" | grep -a 'flint-guest' || cat "$log"
		echo "------------------------------"
	fi
}

all_ok() { # expected lines for a tests= list of N tests
	echo "flint-guest: $1 passed, 0 failed"
}

seed=$(( $(date +%s) % 100000 + 7 ))

# ---- card-ebs over flint-nbd-server ----
if [ -n "$ebs" ]; then
	[ -n "$nbd" ] || { echo "FAIL: --card-ebs needs --nbd-server"; exit 1; }
	head -c 64 /dev/urandom >"$tmp/key"
	"$nbd" --file "$tmp/vol.img" --size 67108864 --create \
		--listen-unix "$tmp/nbd.sock" >"$tmp/nbd-server.log" 2>&1 &
	nbd_pid=$!; pids="$pids $nbd_pid"
	start_ebs() { # a card for one guest
		rm -f "$tmp/ebs.sock"
		"$ebs" --socket "$tmp/ebs.sock" --nbd "unix:$tmp/nbd.sock" --key-fd 3 \
			--queues 2 --serial vol-test --instance i-test --device "$1" \
			3<"$tmp/key" >>"$tmp/card-ebs.log" 2>&1 &
		ebs_pid=$!; pids="$pids $ebs_pid"
		wait_socket "$tmp/ebs.sock" "$ebs_pid" flint-card-ebs ||
			{ fail "$1" "card-ebs did not start"; return 1; }
	}
	# ebs_guest NAME ...: guest NAME on a card of its own, which must end with it
	ebs_guest() {
		start_ebs "$1" || return 0
		guest "$@"
		ended "$ebs_pid" "$1" "$tmp/card-ebs.log" "card-ebs\[i-test/$1\]: volume detached, key wiped"
	}
	if wait_socket "$tmp/nbd.sock" "$nbd_pid" flint-nbd-server; then
		ebs_guest ebs-blk "$tmp/ebs.sock" 0 \
			"tests=blk,blkmq,blkbad,blkirq blk.serial=vol-test blk.seed=$seed" \
			'flint-guest: test blk: ok' 'flint-guest: test blkmq: ok' \
			'flint-guest: test blkbad: ok' 'flint-guest: test blkirq: ok' "$(all_ok 4)"
		ebs_guest ebs-persist-write "$tmp/ebs.sock" 0 \
			"tests=blkpersist blk.phase=write blk.seed=$seed" \
			'flint-guest: blkpersist: wrote and flushed' "$(all_ok 1)"
		ebs_guest ebs-persist-verify "$tmp/ebs.sock" 0 \
			"tests=blkpersist blk.phase=verify blk.seed=$seed" \
			'flint-guest: blkpersist: verified' "$(all_ok 1)"
		ebs_guest ebs-persist-wrong-seed "$tmp/ebs.sock" 3 \
			"tests=blkpersist blk.phase=verify blk.seed=$((seed + 1))" \
			'flint-guest: test blkpersist: FAIL data mismatch' \
			'flint-guest: 0 passed, 1 failed'
	else
		fail ebs "flint-nbd-server did not start"
		cat "$tmp/nbd-server.log" 2>/dev/null
	fi
	stop "$nbd_pid"
fi

# ---- card-local: a card per guest, the same store ----
if [ -n "$local_card" ]; then
	# local_guest NAME ...: guest NAME on a card of its own, which must end with it
	local_guest() {
		rm -f "$tmp/local.sock"
		"$local_card" --socket "$tmp/local.sock" --store "$tmp/local.img" \
			--size 67108864 --queues 2 --serial local-test \
			--instance i-test --device "$1" >>"$tmp/card-local.log" 2>&1 &
		local_pid=$!; pids="$pids $local_pid"
		if ! wait_socket "$tmp/local.sock" "$local_pid" flint-card-local; then
			fail "$1" "back end did not start"; cat "$tmp/card-local.log"
			return 0
		fi
		guest "$@"
		ended "$local_pid" "$1" "$tmp/card-local.log" \
			"card-local\[i-test/$1\]: released: key destroyed"
	}
	local_guest local-blk "$tmp/local.sock" 0 \
		"tests=blk,blkmq,blkbad,blkirq blk.serial=local-test blk.seed=$seed" \
		'flint-guest: test blk: ok' 'flint-guest: test blkmq: ok' \
		'flint-guest: test blkbad: ok' 'flint-guest: test blkirq: ok' "$(all_ok 4)"
	# The driver places the BAR itself (path used when nobody did).
	local_guest local-reassign "$tmp/local.sock" 0 \
		"tests=blk pci.reassign=1 blk.seed=$seed" \
		'flint-guest: pci: 00:' 'flint-guest: test blk: ok' "$(all_ok 1)"
fi

# ---- qemu-storage-daemon: an independent back end ----
if [ "$qsd" != none ] && command -v "$qsd" >/dev/null 2>&1; then
	truncate -s 64M "$tmp/qsd.img"
	"$qsd" --blockdev driver=file,node-name=f0,filename="$tmp/qsd.img" \
		--export type=vhost-user-blk,id=e0,node-name=f0,writable=on,num-queues=2,addr.type=unix,addr.path="$tmp/qsd.sock" \
		>"$tmp/qsd.log" 2>&1 &
	qsd_pid=$!; pids="$pids $qsd_pid"
	if wait_socket "$tmp/qsd.sock" "$qsd_pid" qemu-storage-daemon; then
		guest qsd-blk "$tmp/qsd.sock" 0 "tests=blk,blkmq,blkirq blk.seed=$seed" \
			'flint-guest: test blk: ok' 'flint-guest: test blkmq: ok' \
			'flint-guest: test blkirq: ok' "$(all_ok 3)"
	else
		fail qsd "back end did not start"; cat "$tmp/qsd.log"
	fi
	stop "$qsd_pid"
elif [ "$qsd" != none ]; then
	echo "note: $qsd not found: the independent back-end run is skipped"
fi

if [ $((passes + failures)) -eq 0 ]; then
	echo "SKIP: no back end given (--card-ebs/--card-local) and no qemu-storage-daemon"
	exit 77
fi
if [ "$failures" -ne 0 ]; then
	echo "guest-blk: $failures case(s) failed, $passes passed"
	for f in card-ebs card-local nbd-server qsd; do
		[ -s "$tmp/$f.log" ] && { echo "--- $f.log"; tail -n 20 "$tmp/$f.log"; }
	done
	exit 1
fi
echo "guest-blk: all $passes cases passed"
exit 0
