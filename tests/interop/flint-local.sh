#!/bin/sh
# card-local end to end (IST-1..5), with a stock Linux guest on QEMU TCG:
#  1. ext4 on the instance store: mkfs, write, sync, verify
#  2. the plaintext pattern of a raw run never reaches the store file
#  3. release (SIGTERM): key destroyed, head and tail of the store zeroed
#  4. a new card-local on the same store (the next tenant) cannot read the
#     data written before the release: crypto-erase
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

start_card() {
	rm -f "$work/blk.sock"
	"$card" --socket "$work/blk.sock" --store "$work/store.img" --size 67108864 \
		--queues 1 >>"$work/card.log" 2>&1 &
	card_pid=$!
	interop_wait_socket "$work/blk.sock" "$card_pid" 20 || exit 1
}
release_card() {
	interop_stop "$card_pid"; card_pid=""
}
run() { # run NAME MODE [APPEND]
	interop_run "$1" --guest-dir "$gdir" --socket "$work/blk.sock" --mode "$2" \
		${3:+--append "$3"}
	interop_check "guest $1 ($2)" [ $? = 0 ]
}
zeroed() { # zeroed OFFSET_MIB: 1 MiB of the store at that offset is all zero
	dd if="$work/store.img" bs=1M skip="$1" count=1 2>/dev/null | cmp -s - /dev/zero -n 1048576
}

start_card
pattern="FLINT-LOCAL-$$-"
run raw raw "interop.pattern=$pattern"
interop_check "the store never holds the plaintext pattern" \
	sh -c "! grep -q -a '$pattern' '$work/store.img'"
run ext4 ext4
manifest=$(interop_field "$work/ext4.log" manifest)
interop_check "ext4 run printed its manifest" [ -n "$manifest" ]
if zeroed 0; then head_zero=yes; else head_zero=no; fi
interop_check "before release the store's head holds (encrypted) data" [ "$head_zero" = no ]

release_card
interop_check "release destroyed the key" grep -q "released: key destroyed" "$work/card.log"
interop_check "release zeroed the first MiB" zeroed 0
interop_check "release zeroed the last MiB" zeroed 63

start_card
"$INTEROP_DIR/run-guest.sh" --log "$work/next-tenant.log" --guest-dir "$gdir" \
	--socket "$work/blk.sock" --mode readback --append "interop.manifest=$manifest" >/dev/null 2>&1
interop_check "the next tenant cannot read data written before the release" [ $? = 1 ]
release_card

echo "--- card log"; cat "$work/card.log"
interop_summary
