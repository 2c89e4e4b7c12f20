#!/bin/sh
# /init of the L2 initramfs: an unmodified Debian cloud kernel boots this under
# the VMM being tested.  Prints the lines lab/tests/*-linux-boot.sh check for.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# flint.debug on the command line: interrupt counts and tty state go to the
# kernel log, which reaches the console without interrupts.
debug() {
    grep -q flint.debug /proc/cmdline || return 0
    echo "<3>flint-l2 debug: $1" >/dev/kmsg
    while read -r l; do echo "<3>flint-l2 irq: $l" >/dev/kmsg; done </proc/interrupts
}
debug start
echo "flint-l2: cpus=$(grep -c ^processor /proc/cpuinfo)"
# PCI: how many functions Linux enumerated, each as BDF vendor:device class,
# and the kernel's PCI config-access and MMCONFIG lines.
echo "flint-l2: pci devices=$(ls /sys/bus/pci/devices 2>/dev/null | wc -l)"
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    echo "flint-l2: pci ${d##*/} $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class")"
done
dmesg | grep -iE 'PCI: (Fatal|Using configuration|MMCONFIG)|No config space access|PCI host bridge|ECAM|pci_bus 0000:00: root bus resource' |
    sed 's/^/flint-l2: kmsg /'
# Boot marker (FLINT_BOOT_MARKER_MMIO, FLINT_BOOT_MARKER_MAGIC in guest_abi.h).
devmem 0xfeb00000 8 123 2>/dev/null || true
echo "flint-l2: shell marker"
echo "flint-l2: shell $((6*7))"
sleep 0.5        # let the serial console drain
debug end
# flint.action=reboot: leave through the reset path instead (reboot=k: i8042).
if grep -q flint.action=reboot /proc/cmdline; then
    echo "flint-l2: rebooting"
    sleep 0.5
    reboot -f
fi
poweroff -f
