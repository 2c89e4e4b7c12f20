#!/bin/sh
# flint-hv's --blk set-up against a real card (flint-blk-mem-card): option
# errors exit 2, a missing or unfit back end exits 8 with one clear line,
# and a good one negotiates before KVM is touched (so this runs anywhere;
# without /dev/kvm flint-hv then stops at KVM with status 8).
# usage: vhost-user-setup.sh FLINT_HV TEST_GUEST_ELF FLINT_BLK_MEM_CARD
HV=$1
GUEST=$2
CARD=$3
. "$(dirname "$0")/lib.sh"

SOCK=$WORK/card.sock
CARD_PID=
start_card() { # QUEUES
	rm -f "$SOCK"
	"$CARD" --socket "$SOCK" --size-mib 8 --queues "$1" 2>"$WORK/card.err" &
	CARD_PID=$!
	i=0
	while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
stop_card() {
	kill "$CARD_PID" 2>/dev/null
	wait "$CARD_PID" 2>/dev/null
}

run blk-no-socket 10 --kernel "$GUEST" --blk queues=2
expect blk-no-socket 2 "socket=PATH is required"
run blk-bad-queues 10 --kernel "$GUEST" --blk "socket=$SOCK,queues=17"
expect blk-bad-queues 2 "1..16"
run blk-missing 10 --kernel "$GUEST" --blk "socket=$WORK/nonexistent.sock"
expect blk-missing 8 "cannot connect"

start_card 1
run blk-too-few-queues 10 --kernel "$GUEST" --blk "socket=$SOCK,queues=2"
expect blk-too-few-queues 8 "back end has 1 queues, queues=2 asked"
stop_card

if [ ! -e /dev/kvm ]; then
	start_card 2
	run blk-negotiated 10 --kernel "$GUEST" --blk "socket=$SOCK,queues=2"
	expect blk-negotiated 8 "vhost-user blk0 ($SOCK): 2 queues, features"
	if grep -q "/dev/kvm" "$WORK/blk-negotiated.err"; then
		pass "blk-negotiated: stopped at KVM after negotiation"
	else
		fail "blk-negotiated: did not reach KVM"
	fi
	stop_card
else
	echo "# /dev/kvm present: the guest runs with --blk in the lab tests"
fi
finish
