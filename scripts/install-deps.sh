#!/bin/sh
# Installs the Debian 12 packages Flint builds and tests with, only those
# that are missing.  Needs root (apt-get); does nothing when all are present.
set -eu

PACKAGES="
gcc make pkg-config meson ninja-build python3 openssl
libseccomp-dev libcmocka-dev libssl-dev linux-libc-dev
qemu-utils nbdkit e2fsprogs
clang libclang-rt-14-dev
qemu-system-x86
busybox-static cpio gzip xz-utils zstd kmod binutils
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root, or: apt-get install$missing" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
