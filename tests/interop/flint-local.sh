#!/bin/sh
# card-local end to end (IST-1..5), with a stock Linux guest on QEMU TCG.
# A card serves one front end (guest) and ends with it; every guest below
# gets a new card on the same store file:
#  1. raw: the plaintext pattern written never reaches the store file
#  2. ext4 on the instance store: mkfs, write, sync, verify
#  3. each card ends with its guest: key destroyed (crypto-erase, IST-4);
#     the store still holds that tenant's ciphertext, nothing was zeroed
#  4. the next tenant (a new card on the same store) reads the whole disk as
#     zeros, like a new disk (IST-5), and cannot mount the earlier file
#     system: the data written before the release is gone
# usage: flint-local.sh --card PATH [--guest-dir DIR] [--cache DIR]
. "$(dirname "$0")/lib.sh"

card=""; gdir=""; cache=""
while [ $# -gt 0 ]; do
	case "$1" in
	--card) card=$2; shift 2 ;;
	--guest-dir) gdir=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	*) echo "usage: $0 --card PATH [--guest-dir DIR] [--cache DIR]"; exit 2 ;;
	esac
done
interop_need qemu-system-x86_64 qemu-system-x86
work=$(mktemp -d /tmp/flint-local.XXXXXX)
[ -n "$gdir" ] || gdir=$work/guest
interop_guest "$gdir" "$cache"
card_pid=""
cleanup() { interop_stop "$card_pid"; rm -rf "$work"; }
trap cleanup EXIT

start_card() { # start_card NAME: a card for guest NAME
	rm -f "$work/blk.sock"
	"$card" --socket "$work/blk.sock" --store "$work/store.img" --size 67108864 \
		--queues 1 --instance i-interop --device "$1" >>"$work/card.log" 2>&1 &
	card_pid=$!
	interop_wait_socket "$work/blk.sock" "$card_pid" 20 || exit 1
}
card_released() { # card_released NAME: the card ended with its guest, key destroyed
	interop_check "$1: the card ended with its front end" interop_ended "$card_pid"
	card_pid=""
	interop_check "$1: the card destroyed its key" \
		grep -q "card-local\[i-interop/$1\]: released: key destroyed" "$work/card.log"
}
run() { # run NAME MODE [APPEND]: a guest on a card of its own
	start_card "$1"
	interop_run "$1" --guest-dir "$gdir" --socket "$work/blk.sock" --mode "$2" \
		${3:+--append "$3"}
	interop_check "guest $1 ($2)" [ $? = 0 ]
	card_released "$1"
}
holds_data() { # holds_data OFFSET_MIB: 1 MiB of the store there is not all zero
	! dd if="$work/store.img" bs=1M skip="$1" count=1 2>/dev/null |
		cmp -s - /dev/zero -n 1048576
}

pattern="FLINT-LOCAL-$$-"
run raw raw "interop.pattern=$pattern"
interop_check "the store never holds the plaintext pattern" \
	sh -c "! grep -q -a '$pattern' '$work/store.img'"
run ext4 ext4
manifest=$(interop_field "$work/ext4.log" manifest)
interop_check "ext4 run printed its manifest" [ -n "$manifest" ]
interop_check "after release the store's head still holds (encrypted) data" holds_data 0

# The next tenant: a new card, a new key, the same store.
run next-tenant zeros
start_card next-tenant-mount
"$INTEROP_DIR/run-guest.sh" --log "$work/next-tenant-mount.log" --guest-dir "$gdir" \
	--socket "$work/blk.sock" --mode readback --append "interop.manifest=$manifest" >/dev/null 2>&1
interop_check "the next tenant cannot read data written before the release" [ $? = 1 ]
card_released next-tenant-mount

echo "--- card log"; cat "$work/card.log"
interop_summary
