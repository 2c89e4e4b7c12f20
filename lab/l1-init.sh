#!/bin/sh
# L1 /init of the nested lab (busybox sh).  Loads KVM, runs the test script
# named by flint.run=NAME on the kernel command line, prints "LAB-EXIT <status>"
# and powers off.
/bin/busybox --install -s /bin
export PATH=/flint/bin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1

ts() { cut -d' ' -f1 /proc/uptime; }
finish() {
    echo "LAB: [$(ts)] done"
    echo "LAB-EXIT $1"
    sleep 1           # let the serial console drain before the power goes
    poweroff -f
    sleep 5
    exit "$1"         # init exits: kernel panics, QEMU -no-reboot stops
}

echo "LAB: [$(ts)] L1 init, kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpu(s)"
for m in $(cat /flint/modules/order); do
    if ! insmod "/flint/modules/$m.ko"; then
        echo "LAB: insmod $m failed"
        finish 1
    fi
done
echo "LAB: [$(ts)] modules loaded: $(cat /flint/modules/order | tr '\n' ' ')"
if [ ! -c /dev/kvm ]; then
    echo "LAB: no /dev/kvm"
    finish 1
fi
echo "LAB: [$(ts)] /dev/kvm ready (nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null), npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null))"

name=
for w in $(cat /proc/cmdline); do
    case "$w" in flint.run=*) name=${w#flint.run=} ;; esac
done
if [ -z "$name" ]; then
    echo "LAB: no flint.run=NAME on the kernel command line"
    finish 1
fi
case "$name" in */*|.*) echo "LAB: bad test name '$name'"; finish 1 ;; esac
if [ ! -f "/flint/tests/$name" ]; then
    echo "LAB: no test /flint/tests/$name (have: $(ls /flint/tests | tr '\n' ' '))"
    finish 1
fi
echo "LAB: [$(ts)] running $name"
cd /tmp || true
sh "/flint/tests/$name"
status=$?
echo "LAB: [$(ts)] $name exited with status $status"
finish "$status"
