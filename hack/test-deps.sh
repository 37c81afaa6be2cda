#!/usr/bin/env bash
# Prepares a machine for nook's tests and demo. Run as root; safe to run
# again (every step checks first):
#   - installs the Debian packages the tests and the runtime use;
#   - makes /dev/net/tun usable by unprivileged users (slirp4netns needs it);
#   - creates the unprivileged test user TEST_USER (default nooktest) with a
#     65536-id range in /etc/subuid and /etc/subgid;
#   - creates SOLO_USER (default nooksolo) with NO subordinate ids, for the
#     single-mapping tests.
set -euo pipefail

TEST_USER=${TEST_USER:-nooktest}
SOLO_USER=${SOLO_USER:-nooksolo}
PACKAGES=(uidmap slirp4netns busybox-static docker-registry iproute2 skopeo
	debootstrap apache2-utils hyperfine bats podman util-linux tar gcc make)

if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps must run as root: sudo make test-deps" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "test-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "test-deps: no Go toolchain: install Go 1.26 (apt-get install golang-go, or from go.dev) and put it on PATH" >&2
	exit 1
fi

# slirp4netns opens /dev/net/tun inside the user's namespace.
if [ ! -e /dev/net/tun ]; then
	mkdir -p /dev/net
	mknod -m 666 /dev/net/tun c 10 200
fi
chmod 666 /dev/net/tun

# next_free_start prints the first id after every range in /etc/subuid and
# /etc/subgid (at least 100000, useradd's default).
next_free_start() {
	cat /etc/subuid /etc/subgid 2>/dev/null |
		awk -F: 'BEGIN{m=100000} NF==3 {e=$2+$3; if (e>m) m=e} END{print m}'
}

ensure_user() {
	local u=$1
	if ! id -u "$u" >/dev/null 2>&1; then
		echo "test-deps: creating user $u"
		# --no-user-group would share gid 100; a group of its own is simpler.
		useradd --create-home --shell /bin/bash --user-group "$u"
		# useradd may add a subuid range itself (SUB_UID_COUNT in login.defs).
	fi
}

ensure_user "$TEST_USER"
touch /etc/subuid /etc/subgid
start=$(next_free_start)
for f in /etc/subuid /etc/subgid; do
	if ! grep -q "^$TEST_USER:" "$f"; then
		echo "test-deps: adding $TEST_USER:$start:65536 to $f"
		echo "$TEST_USER:$start:65536" >>"$f"
	fi
done

ensure_user "$SOLO_USER"
for f in /etc/subuid /etc/subgid; do
	if grep -q "^$SOLO_USER:" "$f"; then
		echo "test-deps: removing the subordinate ids of $SOLO_USER from $f (it tests the single-id mapping)"
		sed -i "/^$SOLO_USER:/d" "$f"
	fi
done

echo "test-deps: ready (test user $TEST_USER, single-mapping user $SOLO_USER)"
