#!/bin/sh
# card-ebs end to end, with a stock Linux guest (QEMU TCG, virtio-blk and
# ext4 drivers nobody here wrote) on vhost-user-blk-pci -> flint-card-ebs ->
# NBD -> flint-nbd-server.  A card serves one front end (guest) and ends
# with it, so every guest below has a card of its own, with the same key
# unless said otherwise, and every card is checked to end by itself, key
# wiped, once its guest is gone:
#  1. ext4: mkfs, write files, sync, verify (2 vCPUs, 2 queues)
#  2. crash the storage server (SIGKILL), restart it: with a new card the
#     synced files read back (flush means durable)
#  3. raw: a known plaintext pattern is written and read back, and appears
#     nowhere in the storage server's file: it only holds ciphertext (EBS-3)
#  4. the storage server is killed and restarted in the middle of guest I/O:
#     the card reconnects and retries, the guest sees no error
#  5. storage down beyond the retry window: clean I/O errors (the card keeps
#     serving them, nothing hangs); a new card serves once the server is back
#  6. a card with another key cannot read the volume
# usage: flint-ebs.sh --card PATH --nbd-server PATH [--guest-dir DIR] [--cache DIR]
. "$(dirname "$0")/lib.sh"

card=""; server=""; gdir=""; cache=""
while [ $# -gt 0 ]; do
	case "$1" in
	--card) card=$2; shift 2 ;;
	--nbd-server) server=$2; shift 2 ;;
	--guest-dir) gdir=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	*) echo "usage: $0 --card PATH --nbd-server PATH [--guest-dir DIR] [--cache DIR]"; exit 2 ;;
	esac
done
interop_need qemu-system-x86_64 qemu-system-x86
work=$(mktemp -d /tmp/flint-ebs.XXXXXX)
[ -n "$gdir" ] || gdir=$work/guest
interop_guest "$gdir" "$cache"
server_pid=""; card_pid=""
cleanup() { interop_stop "$card_pid"; interop_stop "$server_pid"; rm -rf "$work"; }
trap cleanup EXIT

start_server() {
	"$server" --file "$work/vol.img" --size 134217728 --create \
		--listen-unix "$work/nbd.sock" >>"$work/server.log" 2>&1 &
	server_pid=$!
	interop_wait_socket "$work/nbd.sock" "$server_pid" 20 || exit 1
}
start_card() { # start_card NAME KEYFILE [OPTIONS]: a card for guest NAME
	name=$1 keyfile=$2
	shift 2
	rm -f "$work/blk.sock"
	"$card" --socket "$work/blk.sock" --nbd "unix:$work/nbd.sock" --key-fd 3 \
		--queues 2 --serial vol-interop --instance i-interop --device "$name" "$@" \
		3<"$keyfile" >>"$work/card.log" 2>&1 &
	card_pid=$!
	interop_wait_socket "$work/blk.sock" "$card_pid" 20 || exit 1
}
card_ended() { # card_ended NAME: the card ended with its guest, key wiped
	interop_check "$1: the card ended with its front end" interop_ended "$card_pid"
	card_pid=""
	interop_check "$1: the card wiped its key" \
		grep -q "card-ebs\[i-interop/$1\]: volume detached, key wiped" "$work/card.log"
}
run() { # run NAME MODE [APPEND]: a guest on a card of its own
	start_card "$1" "$work/key"
	interop_run "$1" --guest-dir "$gdir" --socket "$work/blk.sock" --mode "$2" \
		--smp 2 --num-queues 2 ${3:+--append "$3"}
	interop_check "guest $1 ($2)" [ $? = 0 ]
	card_ended "$1"
}

head -c 64 /dev/urandom >"$work/key"
head -c 64 /dev/urandom >"$work/other-key"
rm -f "$work/nbd.sock"
start_server

run ext4 ext4
manifest=$(interop_field "$work/ext4.log" manifest)
interop_check "ext4 run printed its manifest" [ -n "$manifest" ]

kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=""
rm -f "$work/nbd.sock"
start_server
run readback readback "interop.manifest=$manifest"

pattern="FLINT-PLAINTEXT-$$-"
run raw raw "interop.pattern=$pattern"
interop_check "storage never holds the plaintext pattern" \
	sh -c "! grep -q -a '$pattern' '$work/vol.img'"
interop_check "storage never holds ext4 plaintext (file-system magic string)" \
	sh -c "! grep -q -a 'lost+found' '$work/vol.img'"

# 4: crash and restart the server while the guest is writing.
start_card restart-mid-io "$work/key"
interop_run restart-mid-io --guest-dir "$gdir" --socket "$work/blk.sock" --mode raw \
	--smp 2 --num-queues 2 --append "interop.pattern=$pattern" &
guest=$!
sleep 6
kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null
sleep 1
rm -f "$work/nbd.sock"
start_server
wait "$guest"
interop_check "guest I/O survives a storage-server restart (no error seen)" [ $? = 0 ]
card_ended restart-mid-io

# 5: storage gone for longer than the retry window: the guest gets clean
# I/O errors (its checks fail, nothing hangs) from a card that keeps
# serving; the card ends with its guest, and once the server is back a new
# card serves the volume.
start_card storage-down "$work/key" --retry-timeout-ms 2000
kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=""
"$INTEROP_DIR/run-guest.sh" --log "$work/storage-down.log" --guest-dir "$gdir" \
	--socket "$work/blk.sock" --mode raw --smp 2 --num-queues 2 \
	--append "interop.pattern=$pattern" >/dev/null 2>&1
interop_check "storage down: the guest's I/O fails cleanly (FAIL, not HANG)" [ $? = 1 ]
interop_check "storage down: the guest saw its writes fail" grep -q -a "interop: FAIL raw write" "$work/storage-down.log"
interop_check "storage down: the card served until its guest left (no crash)" \
	grep -q "storage-down\]: front end gone (disconnected)" "$work/card.log"
card_ended storage-down
rm -f "$work/nbd.sock"
start_server
run after-outage raw "interop.pattern=$pattern"

# 6: another key sees noise, not the file system.
start_card wrong-key "$work/other-key"
"$INTEROP_DIR/run-guest.sh" --log "$work/wrong-key.log" --guest-dir "$gdir" \
	--socket "$work/blk.sock" --mode readback --append "interop.manifest=$manifest" >/dev/null 2>&1
interop_check "a card with another key cannot read the volume" [ $? = 1 ]
card_ended wrong-key

echo "--- card log"; cat "$work/card.log"
interop_summary
