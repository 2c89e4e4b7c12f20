#!/bin/sh
# Assemble the interop guest from Debian packages only:
#   OUTDIR/vmlinuz     kernel of the package linux-image-cloud-amd64 depends on
#   OUTDIR/initrd.img  gzip'd cpio: busybox-static, virtio-pci/virtio-blk (and
#                      ext4, if modular) kernel modules, mkfs.ext4 from
#                      e2fsprogs with its shared libraries, /init
#                      (guest-init.sh)
#   OUTDIR/guest.info  what went in
# Usage: build-guest.sh OUTDIR [--cache DIR]
#   --cache DIR  where downloaded .deb files are kept and reused
#                (default: $INTEROP_DEB_CACHE or OUTDIR/debs)
# Skips all work when the stamp (package versions + scripts) is unchanged.
# Exit: 0 ok, 1 error, 77 packages not obtainable (no apt / no network).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=
cache=${INTEROP_DEB_CACHE:-}
while [ $# -gt 0 ]; do
	case $1 in
	--cache) cache=$2; shift 2 ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	-*) echo "build-guest: unknown option $1" >&2; exit 1 ;;
	*) out=$1; shift ;;
	esac
done
[ -n "$out" ] || { echo "usage: $0 OUTDIR [--cache DIR]" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${cache:-$out/debs}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Modules wanted in the guest (dependencies are added automatically;
# built-in ones are skipped).
WANT_MODULES="virtio_pci virtio_blk crc32c_generic ext4"
META=${INTEROP_KERNEL_META:-linux-image-cloud-amd64}

unavailable() {
	echo "build-guest: $*" >&2
	exit 77
}
command -v apt-cache >/dev/null 2>&1 || unavailable "apt-cache not found"
command -v dpkg-deb >/dev/null 2>&1 || unavailable "dpkg-deb not found"
for t in cpio gzip modinfo ldd sha256sum; do
	command -v $t >/dev/null 2>&1 || unavailable "$t not found"
done

exec 9>"$out/.lock"
command -v flock >/dev/null 2>&1 && flock 9

updated=no
apt_update() {
	[ $updated = no ] || return 0
	updated=yes
	echo "build-guest: apt-get update" >&2
	apt-get update -qq >&2 || true
}
candidate() { # candidate PKG -> version or empty
	v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ "$v" = "(none)" ] && v=
	echo "$v"
}
# deb PKG -> path of the .deb in the cache (downloaded if needed)
deb() {
	v=$(candidate "$1")
	if [ -z "$v" ]; then
		apt_update
		v=$(candidate "$1")
	fi
	if [ -z "$v" ]; then # apt knows nothing: fall back to whatever is cached
		f=$(ls "$cache/$1"_*.deb 2>/dev/null | sort | tail -n 1)
		[ -n "$f" ] || unavailable "package $1 unknown to apt and not in $cache"
		echo "$f"
		return
	fi
	ev=$(echo "$v" | sed 's/:/%3a/g')
	f=$(ls "$cache/$1_${ev}"_*.deb 2>/dev/null | head -n 1)
	if [ -z "$f" ]; then
		echo "build-guest: downloading $1=$v" >&2
		if ! (cd "$cache" && apt-get download -q "$1=$v" >&2 2>/dev/null); then
			apt_update
			(cd "$cache" && apt-get download -q "$1=$v" >&2) ||
				unavailable "cannot download $1=$v"
		fi
		f=$(ls "$cache/$1_${ev}"_*.deb 2>/dev/null | head -n 1)
		[ -n "$f" ] || unavailable "download of $1=$v left no .deb in $cache"
	fi
	echo "$f"
}

kpkg=$(apt-cache depends "$META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
	apt_update
	kpkg=$(apt-cache depends "$META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
fi
if [ -z "$kpkg" ]; then # offline: newest cached kernel package
	f=$(ls "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort | tail -n 1)
	[ -n "$f" ] || unavailable "cannot resolve $META and no kernel .deb cached"
	kpkg=$(basename "$f" | cut -d_ -f1)
fi

kdeb=$(deb "$kpkg")
bdeb=$(deb busybox-static)
edeb=$(deb e2fsprogs)

stamp=$( (basename "$kdeb"; basename "$bdeb"; basename "$edeb"
	echo "$WANT_MODULES"; cat "$here/guest-init.sh" "$0") | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
	[ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
	echo "build-guest: $out is up to date"
	exit 0
fi

t0=$(date +%s)
work=$out/.work
rm -rf "$work" "$out/stamp"
mkdir -p "$work/k" "$work/b" "$work/e" "$work/root"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kdeb" "$work/k"
dpkg-deb -x "$bdeb" "$work/b"
dpkg-deb -x "$edeb" "$work/e"

root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/dev" "$root/proc" \
	"$root/sys" "$root/mnt" "$root/tmp" "$root/lib/modules"

# --- kernel and modules -----------------------------------------------
kver=$(ls "$work/k/lib/modules" | head -n 1)
mdir=$work/k/lib/modules/$kver
cp "$work/k/boot/vmlinuz-$kver" "$work/vmlinuz"

order=$work/load.order
: >"$order"
builtin_list=
# add_mod NAME: append NAME's dependencies, then NAME, to the load order.
add_mod() {
	# shellcheck disable=SC3043  # dash, bash and busybox sh have local
	local n f d
	n=$(echo "$1" | tr - _)
	grep -qx "$n" "$work/seen" 2>/dev/null && return 0
	echo "$n" >>"$work/seen"
	if tr - _ <"$mdir/modules.builtin" | grep -q "/$n\.ko"; then
		builtin_list="$builtin_list $n"
		return 0
	fi
	f=$(find "$mdir" -name "$n.ko*" -o -name "$(echo "$n" | tr _ -).ko*" | head -n 1)
	[ -n "$f" ] || { echo "build-guest: module $n not found in $kver" >&2; exit 1; }
	for d in $(modinfo -F depends "$f" | tr , ' '); do
		add_mod "$d"
	done
	case $f in
	*.ko) cp "$f" "$root/lib/modules/$n.ko" ;;
	*.ko.xz) xz -dc "$f" >"$root/lib/modules/$n.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$root/lib/modules/$n.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$root/lib/modules/$n.ko" ;;
	esac
	echo "$n.ko" >>"$order"
}
for m in $WANT_MODULES; do add_mod "$m"; done
cp "$order" "$root/lib/modules/load.order"

# --- busybox ------------------------------------------------------------
cp "$work/b/bin/busybox" "$root/bin/busybox"

# --- mkfs.ext4 and its shared libraries ----------------------------------
mke2fs=$work/e/sbin/mke2fs
[ -x "$mke2fs" ] || mke2fs=$work/e/usr/sbin/mke2fs
cp "$mke2fs" "$root/sbin/mkfs.ext4"
[ -f "$work/e/etc/mke2fs.conf" ] && cp "$work/e/etc/mke2fs.conf" "$root/etc/"
libs=$(ldd "$mke2fs" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
for l in $libs; do
	mkdir -p "$root$(dirname "$l")"
	cp -L "$l" "$root$l"
done
# ELF interpreter at the path the binary asks for.
interp=$(readelf -l "$mke2fs" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)]/\1/p')
if [ -n "$interp" ] && [ ! -e "$root$interp" ]; then
	mkdir -p "$root$(dirname "$interp")"
	cp -L "$interp" "$root$interp"
fi

# --- init -------------------------------------------------------------------
cp "$here/guest-init.sh" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox" "$root/sbin/mkfs.ext4"
[ "$(id -u)" = 0 ] && mknod -m 600 "$root/dev/console" c 5 1

(cd "$root" && find . | sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$work/initrd.img"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initrd.img" "$out/initrd.img"
{
	echo "kernel: $kpkg ($kver) from $(basename "$kdeb")"
	echo "busybox: $(basename "$bdeb")"
	echo "e2fsprogs: $(basename "$edeb")"
	echo "modules (load order): $(tr '\n' ' ' <"$order")"
	echo "built-in (not loaded):$builtin_list"
	echo "mkfs.ext4 libraries:" $libs
	echo "initrd: $(wc -c <"$out/initrd.img") bytes"
} >"$out/guest.info"
echo "$stamp" >"$out/stamp"
cat "$out/guest.info"
echo "build-guest: built $out in $(($(date +%s) - t0)) s"
