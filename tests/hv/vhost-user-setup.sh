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
expect blk-no-socket 2 "exactly one of socket=PATH and fd=N"
run blk-bad-queues 10 --kernel "$GUEST" --blk "socket=$SOCK,queues=17"
expect blk-bad-queues 2 "1..16"
run blk-missing 10 --kernel "$GUEST" --blk "socket=$WORK/nonexistent.sock"
expect blk-missing 8 "cannot connect"
# An inherited fd=N must be a connected unix stream socket.
exec 5</dev/null
run blk-fd-not-socket 10 --kernel "$GUEST" --blk fd=5
expect blk-fd-not-socket 8 "fd=5: not a socket"
exec 5<&-
run blk-fd-closed 10 --kernel "$GUEST" --blk fd=5
expect blk-fd-closed 8 "fd=5: not a socket"

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
	# The same over an inherited, already connected channel (fd=N), the
	# way the controller hands it down.
	if command -v python3 >/dev/null 2>&1; then
		start_card 2
		name=blk-fd-negotiated
		timeout 10 python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
os.dup2(s.fileno(), 7)
os.execv(sys.argv[2], sys.argv[2:])' "$SOCK" "$HV" --kernel "$GUEST" --blk fd=7,queues=2 \
			</dev/null >"$WORK/$name.out" 2>"$WORK/$name.err"
		ST=$?
		expect $name 8 "vhost-user blk0 (fd 7): 2 queues, features"
		stop_card
	else
		echo "# SKIP blk-fd-negotiated: no python3 to make the connected fd"
	fi
else
	echo "# /dev/kvm present: the guest runs with --blk in the lab tests"
fi
finish
