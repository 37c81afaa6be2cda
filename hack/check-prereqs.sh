#!/usr/bin/env bash
# Checks, as an ordinary user, what 'make test' and 'make demo' need, and
# fails with the one command that fixes the first thing missing.
set -euo pipefail

fail() {
	echo "make: missing prerequisite: $1" >&2
	echo "  fix: $2" >&2
	exit 1
}

me=$(id -un)
command -v go >/dev/null 2>&1 || fail "the Go toolchain (go) is not on PATH" "sudo apt-get install golang-go   (or add /usr/local/go/bin to PATH)"
command -v gcc >/dev/null 2>&1 || fail "gcc (nook is built with cgo)" "sudo apt-get install gcc"
command -v newuidmap >/dev/null 2>&1 || fail "newuidmap/newgidmap (package uidmap)" "sudo apt-get install uidmap"
command -v slirp4netns >/dev/null 2>&1 || fail "slirp4netns (the namespace's outbound network)" "sudo apt-get install slirp4netns"
command -v nsenter >/dev/null 2>&1 || fail "nsenter (package util-linux)" "sudo apt-get install util-linux"
command -v ip >/dev/null 2>&1 || fail "ip (package iproute2)" "sudo apt-get install iproute2"
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || fail "a static busybox at /bin/busybox (the test images are made from it)" "sudo apt-get install busybox-static"
if [ "$(id -u)" -ne 0 ]; then
	# The first range that no line of either file uses, as useradd picks.
	start=$(cat /etc/subuid /etc/subgid 2>/dev/null |
		awk -F: 'BEGIN{m=100000} NF==3 {e=$2+$3; if (e>m) m=e} END{print m}')
	grep -q "^$me:" /etc/subuid 2>/dev/null && grep -q "^$me:" /etc/subgid 2>/dev/null ||
		fail "a subordinate id range for $me in /etc/subuid and /etc/subgid (see docs/rootless.md)" \
			"sudo usermod --add-subuids $start-$((start + 65535)) --add-subgids $start-$((start + 65535)) $me"
	[ -r /dev/net/tun ] && [ -w /dev/net/tun ] || fail "read-write access to /dev/net/tun (slirp4netns creates a tap device)" "sudo chmod 666 /dev/net/tun"
fi
exit 0
