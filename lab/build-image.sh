#!/bin/bash
# Build the nested-lab image: an L1 kernel plus an initramfs that loads KVM
# (AMD SVM) and runs one test script from /flint/tests.  Debian packages only.
#
# usage: lab/build-image.sh OUTDIR [--flint-hv PATH] [--guest PATH]
#            [--with-qemu] [--add SRC:DEST ...] [--add-exe SRC:DEST ...]
#            [--cache DIR] [--skip-ok]
#
# --add copies a file as is; --add-exe copies an ELF executable together with
# its shared libraries (ldd) and ELF interpreter, at the same absolute paths.
# The L2 virtio-blk modules (virtio ... virtio_blk, dependency order in
# /flint/l2/modules/order) are always copied to /flint/l2/modules for tests
# that give an L2 guest a disk.
#
# Output: OUTDIR/l1-vmlinuz, OUTDIR/l1-initrd.cpio.gz (plus OUTDIR/.stamp).
# --skip-ok: if the packages or tools cannot be had, write SKIP marker files
# instead of failing (lab/run.sh then reports SKIP and exits 77).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "build-image: error: $*" >&2; exit 1; }
log() { echo "build-image: $*" >&2; }

[ $# -ge 1 ] || die "usage: $0 OUTDIR [--flint-hv PATH] [--guest PATH] [--with-qemu] [--add SRC:DEST ...]"
OUT=$1; shift
FLINT_HV=""; GUEST=""; WITH_QEMU=0; ADDS=(); EXES=(); CACHE=""; SKIP_OK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --flint-hv) FLINT_HV=$2; shift 2 ;;
        --guest) GUEST=$2; shift 2 ;;
        --with-qemu) WITH_QEMU=1; shift ;;
        --add) ADDS+=("$2"); shift 2 ;;
        --add-exe) EXES+=("$2"); shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --skip-ok) SKIP_OK=1; shift ;;
        *) die "unknown argument: $1" ;;
    esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${CACHE:-$OUT/debs}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# Cannot build: either fail, or (--skip-ok) leave SKIP markers for run.sh.
skip_or_die() {
    if [ "$SKIP_OK" = 1 ]; then
        log "SKIP: $*"
        printf 'SKIP: %s\n' "$*" >"$OUT/l1-vmlinuz"
        printf 'SKIP: %s\n' "$*" >"$OUT/l1-initrd.cpio.gz"
        rm -f "$OUT/.stamp"
        exit 0
    fi
    die "$*"
}

for t in dpkg-deb cpio gzip readelf ldd sha256sum; do
    command -v "$t" >/dev/null || skip_or_die "tool $t not found"
done
[ -z "$FLINT_HV" ] || [ -f "$FLINT_HV" ] || die "--flint-hv $FLINT_HV: no such file"
[ -z "$GUEST" ] || [ -f "$GUEST" ] || die "--guest $GUEST: no such file"
for a in "${ADDS[@]+"${ADDS[@]}"}"; do
    [ -f "${a%%:*}" ] || die "--add $a: no such file"
    case "${a#*:}" in /*) ;; *) die "--add $a: DEST must be an absolute path" ;; esac
done
for a in "${EXES[@]+"${EXES[@]}"}"; do
    [ -f "${a%%:*}" ] || die "--add-exe $a: no such file"
    case "${a#*:}" in /*) ;; *) die "--add-exe $a: DEST must be an absolute path" ;; esac
done
if [ "$WITH_QEMU" = 1 ]; then
    QEMU_BIN=$(command -v qemu-system-x86_64) || skip_or_die "--with-qemu: qemu-system-x86_64 not found"
fi

# ---- Debian packages -------------------------------------------------------
APT_OPTS=(-o APT::Sandbox::User=root -o Debug::NoLocking=1)
# pkg_version NAME -> candidate version ("" when apt does not know it)
pkg_version() { apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/{print $2; exit}'; }
# deb_file NAME VERSION -> path of the cached .deb (may not exist yet)
deb_file() { echo "$CACHE/${1}_${2//:/%3a}_amd64.deb"; }
# fetch NAME -> prints the path of the .deb, downloading it if not cached
fetch() {
    local name=$1 ver f
    ver=$(pkg_version "$name")
    if [ -n "$ver" ]; then
        f=$(deb_file "$name" "$ver")
        if [ ! -s "$f" ]; then
            log "downloading $name $ver"
            (cd "$CACHE" && apt-get "${APT_OPTS[@]}" -q download "$name=$ver" >&2) ||
                skip_or_die "apt-get download $name=$ver failed"
        fi
        echo "$f"; return
    fi
    # apt does not know it (offline?): fall back to any cached version.
    f=$(ls "$CACHE/${name}"_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$f" ] || skip_or_die "package $name unavailable (not in apt cache or $CACHE)"
    log "using cached $f"
    echo "$f"
}
if ! command -v apt-cache >/dev/null; then
    skip_or_die "apt-cache not found"
fi
if [ -z "$(pkg_version linux-image-cloud-amd64)" ]; then
    log "apt lists empty: running apt-get update"
    apt-get -q update >&2 || log "apt-get update failed (will try the cache)"
fi
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true)
if [ -z "$KPKG" ]; then
    KPKG=$(ls "$CACHE"/linux-image-[0-9]*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$KPKG" ] || skip_or_die "cannot resolve linux-image-cloud-amd64"
    KPKG=$(basename "$KPKG"); KPKG=${KPKG%%_*}
fi
KDEB=$(fetch "$KPKG")
BBDEB=$(fetch busybox-static)

# ---- stamp: skip the build when no input changed ---------------------------
manifest() {
    echo "v1 with-qemu=$WITH_QEMU"
    sha256sum "$LAB_DIR/build-image.sh" "$LAB_DIR/l1-init.sh" "$LAB_DIR/l2-init.sh"
    basename "$KDEB"; basename "$BBDEB"
    [ -z "$FLINT_HV" ] || sha256sum "$FLINT_HV"
    [ -z "$GUEST" ] || sha256sum "$GUEST"
    for a in "${ADDS[@]+"${ADDS[@]}"}"; do echo "add ${a#*:}"; sha256sum "${a%%:*}"; done
    for a in "${EXES[@]+"${EXES[@]}"}"; do echo "add-exe ${a#*:}"; sha256sum "${a%%:*}"; done
    if [ "$WITH_QEMU" = 1 ]; then sha256sum "$QEMU_BIN"; fi
}
STAMP_NEW=$(manifest | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP_NEW" ] &&
   [ -s "$OUT/l1-vmlinuz" ] && [ -s "$OUT/l1-initrd.cpio.gz" ]; then
    log "up to date ($OUT)"
    exit 0
fi
rm -f "$OUT/.stamp"

# ---- unpack ----------------------------------------------------------------
W=$OUT/work
rm -rf "$W"; mkdir -p "$W/kernel" "$W/busybox"
dpkg-deb -x "$KDEB" "$W/kernel"
dpkg-deb -x "$BBDEB" "$W/busybox"
VMLINUZ=$(ls "$W"/kernel/boot/vmlinuz-* | head -n1)
KVER=${VMLINUZ##*/vmlinuz-}
KCONFIG=$W/kernel/boot/config-$KVER
MODDIR=$W/kernel/lib/modules/$KVER
BUSYBOX=$W/busybox/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static package has no /bin/busybox"
log "kernel $KVER ($KPKG)"

# ---- L2 vmlinux: decompress the bzImage payload (like extract-vmlinux) -----
extract_vmlinux() {  # IN OUT
    local in=$1 out=$2 e hex tool pos setup poff cands
    # magic as grep -P hex | decompressor (the table of scripts/extract-vmlinux)
    local table=(
        '\x1f\x8b\x08|gzip -dc'
        '\xfd\x37\x7a\x58\x5a\x00|xz -dc'
        '\x42\x5a\x68|bzip2 -dc'
        '\x5d\x00\x00\x00|unlzma -c'
        '\x89\x4c\x5a|lzop -dc'
        '\x02\x21\x4c\x18|lz4 -dc'
        '\x28\xb5\x2f\xfd|zstd -dc'
    )
    # bzImage setup header: payload at (setup_sects + 1) * 512 + payload_offset.
    setup=$(od -An -tu1 -j 0x1f1 -N1 "$in" | tr -d ' ')
    [ "$setup" = 0 ] && setup=4
    poff=$(od -An -tu4 -j 0x248 -N4 "$in" | tr -d ' ')
    for e in "${table[@]}"; do
        hex=${e%%|*}; tool=${e#*|}
        command -v "${tool%% *}" >/dev/null || continue
        # the header's payload offset first, then (like extract-vmlinux) the
        # first few places the magic occurs
        cands="$(( (setup + 1) * 512 + poff )) $(LC_ALL=C grep -obUaP "$hex" "$in" 2>/dev/null | head -n 4 | cut -d: -f1 || true)"
        for pos in $cands; do
            # only where the magic really is
            [ "$(tail -c +"$((pos + 1))" "$in" | head -c $(( ${#hex} / 4 )) | od -An -tx1 | tr -d ' \n')" \
              = "$(printf '%s' "$hex" | sed 's/\\x//g')" ] || continue
            tail -c +"$((pos + 1))" "$in" | $tool >"$out" 2>/dev/null || true
            if [ "$(head -c4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
                log "vmlinux: payload at offset $pos, decompressed with ${tool%% *}"
                return 0
            fi
        done
    done
    return 1
}
mkdir -p "$W/l2"
extract_vmlinux "$VMLINUZ" "$W/l2/vmlinux" || die "could not extract vmlinux from $VMLINUZ"
# The PVH entry is the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 0x12).
if ! readelf -n "$W/l2/vmlinux" | grep -E '^\s*Xen\s' | grep -qiE 'PHYS32_ENTRY|type: \(0x00000012\)'; then
    die "vmlinux has no Xen PHYS32_ENTRY (PVH) note"
fi

# ---- L2 initramfs: busybox + /init ------------------------------------------
make_cpio_gz() {  # DIR OUT
    (cd "$1" && find . -print0 | LC_ALL=C sort -z |
        cpio --quiet -o -0 -H newc -R 0:0) | gzip -6 -n >"$2"
}
R2=$W/l2root
mkdir -p "$R2"/{bin,dev,proc,sys,tmp}
cp "$BUSYBOX" "$R2/bin/busybox"
ln -s busybox "$R2/bin/sh"
install -m 0755 "$LAB_DIR/l2-init.sh" "$R2/init"
mknod -m 600 "$R2/dev/console" c 5 1 2>/dev/null || true
make_cpio_gz "$R2" "$W/l2/initrd.cpio.gz"

# ---- L1 root ----------------------------------------------------------------
R=$W/l1root
mkdir -p "$R"/{bin,dev,proc,sys,tmp,run,lib64,etc} "$R"/flint/{bin,guest,l2,tests,modules}
cp "$BUSYBOX" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
install -m 0755 "$LAB_DIR/l1-init.sh" "$R/init"
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true
echo "root:x:0:0:root:/:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"

# KVM modules in dependency order (depends= from each module's .modinfo).
mod_path() { find "$MODDIR" -name "$1.ko" -o -name "$1.ko.*" | head -n1; }
mod_deps() {
    if command -v modinfo >/dev/null; then modinfo -F depends "$1"
    else tr '\0' '\n' <"$1" | LC_ALL=C grep -a '^depends=' | head -n1 | cut -d= -f2; fi
}
ORDER=()
add_mod() {
    local name=$1 p d
    for d in "${ORDER[@]+"${ORDER[@]}"}"; do [ "$d" = "$name" ] && return 0; done
    p=$(mod_path "$name")
    [ -n "$p" ] || die "module $name not found in $KPKG"
    case "$p" in *.ko) ;; *) die "compressed module $p not supported" ;; esac
    for d in $(mod_deps "$p" | tr ',' ' '); do add_mod "$d"; done
    cp "$p" "$R/flint/modules/$name.ko"
    ORDER+=("$name")
}
add_mod irqbypass
[ -z "$(mod_path ccp)" ] || add_mod ccp
add_mod kvm
add_mod kvm-amd
printf '%s\n' "${ORDER[@]}" >"$R/flint/modules/order"
log "modules: ${ORDER[*]}"

# Copy an ELF and the shared libraries it needs (same absolute paths).
copy_elf() {  # SRC DEST_IN_ROOT
    local src=$1 dest=$2 lib
    mkdir -p "$R$(dirname "$dest")"
    cp -L "$src" "$R$dest"; chmod 0755 "$R$dest"
    if ldd "$src" >/dev/null 2>&1; then
        for lib in $(ldd "$src" | awk '/=> \//{print $3} /^\s*\//{print $1}'); do
            [ -e "$R$lib" ] && continue
            mkdir -p "$R$(dirname "$lib")"
            cp -L "$lib" "$R$lib"
        done
    fi
    local interp
    interp=$(readelf -lW "$src" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    if [ -n "$interp" ] && [ ! -e "$R$interp" ]; then
        mkdir -p "$R$(dirname "$interp")"; cp -L "$interp" "$R$interp"
    fi
}
[ -z "$FLINT_HV" ] || copy_elf "$FLINT_HV" /flint/bin/flint-hv
[ -z "$GUEST" ] || cp "$GUEST" "$R/flint/guest/flint-test-guest.elf"
cp "$VMLINUZ" "$R/flint/l2/vmlinuz"
cp "$W/l2/vmlinux" "$W/l2/initrd.cpio.gz" "$R/flint/l2/"
echo "$KVER" >"$R/flint/l2/version"

if [ "$WITH_QEMU" = 1 ]; then
    copy_elf "$QEMU_BIN" /usr/bin/qemu-system-x86_64
    # Firmware for -M q35/pc (SeaBIOS + linuxboot option ROMs) and -M microvm
    # (qboot) with -kernel; run with -nic none -vga none so no NIC/VGA ROM is
    # needed.  Found with strace; QEMU looks in /usr/share/qemu and, on Debian,
    # /usr/share/seabios and /usr/lib/ipxe/qemu.
    mkdir -p "$R/usr/share/qemu"
    for f in bios-256k.bin bios-microvm.bin qboot.rom pvh.bin linuxboot_dma.bin linuxboot.bin \
             kvmvapic.bin multiboot_dma.bin multiboot.bin vgabios-stdvga.bin; do
        for d in /usr/share/qemu /usr/share/seabios; do
            if [ -e "$d/$f" ]; then cp -L "$d/$f" "$R/usr/share/qemu/$f"; break; fi
        done
    done
    for f in bios-256k.bin linuxboot_dma.bin pvh.bin; do
        [ -e "$R/usr/share/qemu/$f" ] || die "--with-qemu: firmware $f not found"
    done
    # A vhost-user-blk back end nobody here wrote, for flint-hv's front end.
    QSD=$(command -v qemu-storage-daemon || true)
    [ -z "$QSD" ] || copy_elf "$QSD" /usr/bin/qemu-storage-daemon
fi

for a in "${ADDS[@]+"${ADDS[@]}"}"; do
    dest=${a#*:}
    mkdir -p "$R$(dirname "$dest")"
    cp "${a%%:*}" "$R$dest"
done
for a in "${EXES[@]+"${EXES[@]}"}"; do copy_elf "${a%%:*}" "${a#*:}"; done

# L2 virtio-blk modules (not in the base L2 initramfs; tests add them), in
# dependency order like the KVM modules above.
mkdir -p "$R/flint/l2/modules"
L2ORDER=()
add_l2_mod() {
    local name=$1 p d
    for d in "${L2ORDER[@]+"${L2ORDER[@]}"}"; do [ "$d" = "$name" ] && return 0; done
    p=$(mod_path "$name")
    if [ -z "$p" ]; then log "L2 module $name not in $KPKG (built in?)"; return 0; fi
    case "$p" in *.ko) ;; *) die "compressed module $p not supported" ;; esac
    for d in $(mod_deps "$p" | tr ',' ' '); do add_l2_mod "$d"; done
    cp "$p" "$R/flint/l2/modules/$name.ko"
    L2ORDER+=("$name")
}
add_l2_mod virtio_pci
add_l2_mod virtio_blk
printf '%s\n' "${L2ORDER[@]+"${L2ORDER[@]}"}" >"$R/flint/l2/modules/order"
log "L2 modules: ${L2ORDER[*]+"${L2ORDER[*]}"}"
chmod 0755 "$R"/flint/tests/* 2>/dev/null || true

# ---- outputs -----------------------------------------------------------------
cp "$VMLINUZ" "$OUT/l1-vmlinuz.tmp"
if grep -q '^CONFIG_RD_ZSTD=y' "$KCONFIG" && command -v zstd >/dev/null; then
    COMP="zstd -q -T0 -9"     # decompresses much faster than gzip under TCG
else
    COMP="gzip -6 -n"
fi
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --quiet -o -0 -H newc -R 0:0) |
    $COMP >"$OUT/l1-initrd.cpio.gz.tmp"
mv "$OUT/l1-vmlinuz.tmp" "$OUT/l1-vmlinuz"
mv "$OUT/l1-initrd.cpio.gz.tmp" "$OUT/l1-initrd.cpio.gz"
echo "$STAMP_NEW" >"$OUT/.stamp"
log "done: $OUT/l1-vmlinuz, $OUT/l1-initrd.cpio.gz ($(du -h "$OUT/l1-initrd.cpio.gz" | cut -f1), ${COMP%% *}; root $(du -sh "$R" | cut -f1))"
