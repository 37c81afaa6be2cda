#!/usr/bin/env bash
# Writes a busybox root filesystem tarball to $1, made from the static
# busybox binary (Debian package busybox-static): /bin/busybox with its
# applet links, /etc/passwd and /etc/group, /tmp, /root. No download.
set -euo pipefail
out=${1:?usage: hack/busybox-rootfs.sh OUT.tar}
bb=${BUSYBOX:-/bin/busybox}
if ! "$bb" --list >/dev/null 2>&1; then
	echo "no static busybox at $bb: sudo apt-get install busybox-static" >&2
	exit 1
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var,proc,sys,dev}
chmod 1777 "$d/tmp"
cp "$bb" "$d/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -s busybox "$d/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$d/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$d/etc/group"
tar -C "$d" --numeric-owner --owner=0 --group=0 -cf "$out" .
