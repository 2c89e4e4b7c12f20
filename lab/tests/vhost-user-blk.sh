#!/bin/sh
# Lab test (runs inside L1): flint-hv gives the unmodified Debian L2 kernel a
# virtio-blk disk served by flint-card-local over vhost-user (--blk).  The L2
# initramfs is the lab's one plus an overlay (a second cpio archive appended,
# which the kernel unpacks over the first) with the virtio modules and an
# /init that loads them, checks /dev/vda, and writes, reads back and compares
# a pattern with O_DIRECT-free dd plus a page-cache drop.  A card serves one
# front end and ends with it: every guest gets a card of its own, and each
# card is checked to end by itself, key wiped, once its flint-hv exited.
. /flint/tests/l2boot-lib.sh

# card_ended PID: the card exits by itself within 20 s (else it is killed).
card_ended() {
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        return 1
    fi
    wait "$1" 2>/dev/null
    return 0
}

HV=/flint/bin/flint-hv
CARD=/flint/bin/flint-card-local
for f in "$HV" "$CARD" /flint/l2/modules/order; do
    if [ ! -e "$f" ]; then
        echo "not ok - $f missing from the lab image"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

# ---- the overlay initramfs --------------------------------------------------
O=/tmp/l2-blk-overlay
rm -rf "$O"; mkdir -p "$O/lib/modules"
cp /flint/l2/modules/*.ko /flint/l2/modules/order "$O/lib/modules/"
cat >"$O/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "flint-l2: cpus=$(grep -c ^processor /proc/cpuinfo)"
# flint.blkwait: L1 kills the card, then says "go" on the serial console,
# before the driver starts (a handshake, not a sleep: timing under TCG varies).
if grep -q flint.blkwait /proc/cmdline; then
    echo "flint-l2: waiting before virtio"
    if read -r -t 40 word && [ "$word" = go ]; then
        echo "flint-l2: go from the console"
    else
        echo "flint-l2: no go from the console"
    fi
fi
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" || echo "flint-l2: insmod $m failed"
done
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    echo "flint-l2: pci ${d##*/} $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class")"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/vda ]; then
    echo "flint-l2: vda sectors=$(cat /sys/block/vda/size) lbs=$(cat /sys/block/vda/queue/logical_block_size) mq=$(ls /sys/block/vda/mq | wc -l)"
    dd if=/dev/urandom of=/tmp/pat bs=4096 count=64 2>/dev/null
    dd if=/tmp/pat of=/dev/vda bs=4096 count=64 seek=16 conv=fsync 2>/dev/null &&
        echo "flint-l2: vda write ok"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    blockdev --flushbufs /dev/vda 2>/dev/null
    dd if=/dev/vda of=/tmp/back bs=4096 count=64 skip=16 2>/dev/null &&
        echo "flint-l2: vda read ok"
    if cmp /tmp/pat /tmp/back; then echo "flint-l2: vda cmp ok"; else echo "flint-l2: vda cmp FAILED"; fi
    # flint.fs=PATTERN: a file system on the volume, written, remounted, verified.
    pat=$(sed -n 's/.*flint\.fs=\([^ ]*\).*/\1/p' /proc/cmdline)
    if [ -n "$pat" ]; then
        mkdir -p /mnt
        if mke2fs -q -b 4096 /dev/vda >/dev/null 2>&1 && mount /dev/vda /mnt; then
            i=0
            while [ $i -lt 256 ]; do echo "$pat line $i"; i=$((i + 1)); done >/mnt/secret.txt
            dd if=/dev/urandom of=/mnt/blob bs=4096 count=256 2>/dev/null
            sum1=$(cat /mnt/secret.txt /mnt/blob | md5sum | cut -d' ' -f1)
            umount /mnt && sync && echo 3 >/proc/sys/vm/drop_caches
            mount /dev/vda /mnt
            sum2=$(cat /mnt/secret.txt /mnt/blob | md5sum | cut -d' ' -f1)
            umount /mnt
            if [ "$sum1" = "$sum2" ]; then echo "flint-l2: fs verify ok"; else echo "flint-l2: fs verify FAILED"; fi
        else
            echo "flint-l2: fs mkfs/mount FAILED"
        fi
    fi
else
    echo "flint-l2: no /dev/vda"
    dmesg | grep -iE 'virtio|vda' | tail -n 20 | sed 's/^/flint-l2: kmsg /'
fi
echo "flint-l2: shell marker"
echo "flint-l2: shell $((6*7))"
sleep 0.5
poweroff -f
INIT
chmod 0755 "$O/init"
(cd "$O" && find . | cpio -o -H newc 2>/dev/null) | gzip -1 >/tmp/l2-blk-overlay.cpio.gz
cat /flint/l2/initrd.cpio.gz /tmp/l2-blk-overlay.cpio.gz >/tmp/l2-blk-initrd.cpio.gz

# ---- the card ---------------------------------------------------------------
for queues in 1 2; do
    label=flint-blk-q$queues
    SOCK=/tmp/card-local-$queues.sock
    rm -f "$SOCK" /tmp/store-$queues.img
    "$CARD" --socket "$SOCK" --store /tmp/store-$queues.img --size 16777216 \
        --queues "$queues" --instance i-lab --device "q$queues" >/tmp/card-$queues.log 2>&1 &
    CARD_PID=$!
    i=0
    while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    check "$label: flint-card-local listening" [ -S "$SOCK" ]
    run_l2 "$label" "$HV" --kernel /flint/l2/vmlinuz \
        --initrd /tmp/l2-blk-initrd.cpio.gz --cmdline "$L2_CMDLINE" \
        --mem 512 --cpus 2 --blk "socket=$SOCK,queues=$queues"
    check_l2 "$label" 2
    check "$label: flint-hv negotiated with the card" \
        grep -q "vhost-user blk0 ($SOCK): $queues queue" "/tmp/$label.err"
    check "$label: virtio-blk on PCI (0x1af4:0x1042)" \
        grep -q 'flint-l2: pci 0000:00:0[0-9a-f].0 0x1af4:0x1042' "/tmp/$label.out"
    check "$label: /dev/vda with 32768 sectors" grep -q 'flint-l2: vda sectors=32768' "/tmp/$label.out"
    check "$label: $queues blk-mq queue(s)" grep -q "flint-l2: vda .* mq=$queues" "/tmp/$label.out"
    check "$label: dd write" has_line "$label" "flint-l2: vda write ok"
    check "$label: dd read" has_line "$label" "flint-l2: vda read ok"
    check "$label: cmp" has_line "$label" "flint-l2: vda cmp ok"
    check "$label: the card ended with its front end" card_ended "$CARD_PID"
    check "$label: the card destroyed its key" \
        grep -q "flint-card-local\[i-lab/q$queues\]: released: key destroyed" /tmp/card-$queues.log
    sed "s/^/# card-$queues| /" /tmp/card-$queues.log | tail -n 20
done

# ---- the test guest's virtio-blk suite on flint-card-local --------------------
# blkirq: MSI-X on queue 0; a completion while the vector (or the function) is
# masked must not interrupt, must show in the PBA, and must arrive on unmask
# (flint-hv unbinds the irqfd while masked and binds it again on unmask).
label=flint-local-guest
SOCK=/tmp/card-local-guest.sock
rm -f "$SOCK" /tmp/store-guest.img
"$CARD" --socket "$SOCK" --store /tmp/store-guest.img --size 16777216 --queues 2 \
    >/tmp/card-guest.log 2>&1 &
CARD_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
run_l2 "$label" "$HV" --kernel /flint/guest/flint-test-guest.elf --mem 128 --cpus 2 \
    --debug-exit --blk "socket=$SOCK,queues=2" --cmdline "tests=blk,blkmq,blkbad,blkirq"
check "$label: exit status 0, got $L2_STATUS" [ "$L2_STATUS" = 0 ]
check "$label: blk, blkmq, blkbad, blkirq passed" has_line "$label" "flint-guest: 4 passed, 0 failed"
check "$label: blkirq: a masked MSI-X vector held its interrupt, unmasking delivered it" \
    has_line "$label" "flint-guest: test blkirq: ok"
grep -aE 'flint-guest: (blkirq: (.* mask:|[0-9]+ interrupts)|test blkirq)' "/tmp/$label.out" |
    sed "s/^/# $label| /"
check "$label: the card ended with its front end" card_ended "$CARD_PID"
check "$label: release destroyed the key" grep -q "released: key destroyed" /tmp/card-guest.log

# ---- flint-hv's front end against qemu-storage-daemon ------------------------
# A vhost-user-blk back end nobody here wrote.  blkbad is left out:
# libvhost-user ends the export on the first bad descriptor, by design.
QSD=/usr/bin/qemu-storage-daemon
if [ -x "$QSD" ]; then
    label=flint-qsd-guest
    rm -f /tmp/qsd.sock /tmp/qsd.img
    dd if=/dev/zero of=/tmp/qsd.img bs=1M count=16 2>/dev/null
    "$QSD" --blockdev driver=file,node-name=f,filename=/tmp/qsd.img \
        --export type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=/tmp/qsd.sock,writable=on,num-queues=2 \
        >/tmp/qsd.log 2>&1 &
    QSD_PID=$!
    i=0
    while [ ! -S /tmp/qsd.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    run_l2 "$label" "$HV" --kernel /flint/guest/flint-test-guest.elf --mem 128 --cpus 2 \
        --debug-exit --blk "socket=/tmp/qsd.sock,queues=2" --cmdline "tests=blk,blkmq,blkirq"
    check "$label: exit status 0, got $L2_STATUS" [ "$L2_STATUS" = 0 ]
    check "$label: blk, blkmq, blkirq passed against qemu-storage-daemon" \
        has_line "$label" "flint-guest: 3 passed, 0 failed"
    kill "$QSD_PID" 2>/dev/null
    wait "$QSD_PID" 2>/dev/null
else
    notok "qemu-storage-daemon missing from the lab image"
fi

# ---- the card dies before the guest's driver starts --------------------------
# flint-hv logs one line, the device is refused (FEATURES_OK or queue start
# fails), and flint-hv and the guest keep running to a clean power-off.
label=flint-blk-dead
SOCK=/tmp/card-local-dead.sock
rm -f "$SOCK" /tmp/store-dead.img
"$CARD" --socket "$SOCK" --store /tmp/store-dead.img --size 16777216 \
    >/tmp/card-dead.log 2>&1 &
CARD_PID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# The guest's console input is a FIFO that this script holds open (fd 9).
rm -f /tmp/$label.in; mkfifo /tmp/$label.in
timeout -s TERM "$L2_TIMEOUT" "$HV" --kernel /flint/l2/vmlinuz \
    --initrd /tmp/l2-blk-initrd.cpio.gz --cmdline "$L2_CMDLINE flint.blkwait" \
    --mem 512 --cpus 2 --blk "socket=$SOCK" >"/tmp/$label.out" 2>"/tmp/$label.err" \
    <"/tmp/$label.in" &
HV_PID=$!
exec 9>"/tmp/$label.in"
i=0
while ! grep -q "flint-l2: waiting before virtio" "/tmp/$label.out" && [ $i -lt 500 ]; do
    sleep 0.1; i=$((i + 1))
done
kill "$CARD_PID" 2>/dev/null
wait "$CARD_PID" 2>/dev/null
echo go >&9
wait "$HV_PID"
L2_STATUS=$?
exec 9>&-
sed "s/^/# $label console| /" "/tmp/$label.out"
sed "s/^/# $label stderr| /" "/tmp/$label.err"
check "$label: card killed while the guest waited" \
    grep -q "flint-l2: waiting before virtio" "/tmp/$label.out"
check "$label: console input reached the guest" has_line "$label" "flint-l2: go from the console"
check "$label: exit status 0 (clean power-off), got $L2_STATUS" [ "$L2_STATUS" = 0 ]
check "$label: flint-l2: shell 42 (guest kept running)" has_line "$label" "flint-l2: shell 42"
check "$label: flint-hv logged the back end failure" \
    grep -q "vhost-user blk0 ($SOCK): back end failed during" "/tmp/$label.err"
check "$label: no /dev/vda" has_line "$label" "flint-l2: no /dev/vda"

# ---- card-ebs: an encrypted remote volume over NBD ---------------------------
# Linux makes a file system on it, writes, remounts and verifies; the storage
# server's file never holds the plaintext.  Then the test guest's virtio-blk
# suite (hostile requests included) runs on flint-hv against a second card
# with the same key.
EBS=/flint/bin/flint-card-ebs
NBD=/flint/bin/flint-nbd-server
GUEST=/flint/guest/flint-test-guest.elf
# start_ebs DEVICE: a card for one guest, on /tmp/ebs.sock
start_ebs() {
    rm -f /tmp/ebs.sock
    "$EBS" --socket /tmp/ebs.sock --nbd unix:/tmp/nbd.sock --key-fd 3 --queues 2 \
        --serial vol-lab --instance i-lab --device "$1" 3</tmp/vol.key >>/tmp/ebs.log 2>&1 &
    EBS_PID=$!
    i=0
    while [ ! -S /tmp/ebs.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    check "card-ebs ($1) listening" [ -S /tmp/ebs.sock ]
}
# ebs_ended DEVICE: the card ended with its flint-hv: flushed, key wiped
ebs_ended() {
    check "card-ebs ($1): ended with its front end" card_ended "$EBS_PID"
    check "card-ebs ($1): key wiped" \
        grep -q "flint-card-ebs\[i-lab/$1\]: volume detached, key wiped" /tmp/ebs.log
}
if [ -x "$EBS" ] && [ -x "$NBD" ]; then
    rm -f /tmp/nbd.sock /tmp/ebs.sock /tmp/vol.img /tmp/ebs.log
    "$NBD" --file /tmp/vol.img --size 67108864 --create --listen-unix /tmp/nbd.sock \
        >/tmp/nbd.log 2>&1 &
    NBD_PID=$!
    i=0
    while [ ! -S /tmp/nbd.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    head -c 64 /dev/urandom >/tmp/vol.key

    label=flint-ebs-linux
    start_ebs linux
    secret="FLINTLABSECRET$$"
    run_l2 "$label" "$HV" --kernel /flint/l2/vmlinuz \
        --initrd /tmp/l2-blk-initrd.cpio.gz --cmdline "$L2_CMDLINE flint.fs=$secret" \
        --mem 512 --cpus 2 --blk "socket=/tmp/ebs.sock,queues=2"
    check_l2 "$label" 2
    check "$label: /dev/vda with 131072 sectors" grep -q 'flint-l2: vda sectors=131072' "/tmp/$label.out"
    check "$label: mkfs, write, remount, verify" has_line "$label" "flint-l2: fs verify ok"
    ebs_ended linux
    check "$label: the storage server's file never holds the plaintext" \
        sh -c "! grep -q '$secret' /tmp/vol.img"

    label=flint-ebs-guest
    start_ebs guest
    run_l2 "$label" "$HV" --kernel "$GUEST" --mem 128 --cpus 2 --debug-exit \
        --blk "socket=/tmp/ebs.sock,queues=2" --cmdline "tests=blk,blkmq,blkbad,blkirq blk.serial=vol-lab"
    check "$label: exit status 0, got $L2_STATUS" [ "$L2_STATUS" = 0 ]
    check "$label: blk, blkmq, blkbad, blkirq passed" has_line "$label" "flint-guest: 4 passed, 0 failed"
    ebs_ended guest
    kill "$NBD_PID" 2>/dev/null
    wait "$NBD_PID" 2>/dev/null
    sed "s/^/# card-ebs| /" /tmp/ebs.log | tail -n 20
else
    notok "card-ebs / flint-nbd-server missing from the lab image"
fi
summary
