#!/usr/bin/env bash
# make demo: nook's main job, end to end, on this machine. As root (after
# 'make test-deps'), it runs itself again as the unprivileged TEST_USER,
# since nook is made for ordinary users; as a user it runs directly.
# The demo uses a store of its own, removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
TEST_USER=${TEST_USER:-nooktest}

if [ "$(id -u)" -eq 0 ] && [ -z "${NOOK_DEMO_AS_ROOT:-}" ]; then
	bindir=/tmp/nook-demo-bin
	install -d -m 0755 "$bindir"
	for f in bin/nook hack/demo.sh hack/busybox-rootfs.sh; do
		cp "$repo/$f" "$bindir/.$(basename "$f").new"
		chmod 0755 "$bindir/.$(basename "$f").new"
		mv -f "$bindir/.$(basename "$f").new" "$bindir/$(basename "$f")"
	done
	home=$(getent passwd "$TEST_USER" | cut -d: -f6)
	uid=$(id -u "$TEST_USER")
	install -d -m 0700 -o "$TEST_USER" -g "$(id -g "$TEST_USER")" "/run/user/$uid"
	echo "# running the demo as the unprivileged user $TEST_USER (nook needs no root)"
	cd /tmp
	exec runuser -u "$TEST_USER" -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" LANG=C.UTF-8 TERM="${TERM:-dumb}" XDG_RUNTIME_DIR="/run/user/$uid" \
		NOOK="$bindir/nook" BUSYBOX_ROOTFS="$bindir/busybox-rootfs.sh" bash "$bindir/demo.sh"
fi

NOOK=${NOOK:-$repo/bin/nook}
BUSYBOX_ROOTFS=${BUSYBOX_ROOTFS:-$repo/hack/busybox-rootfs.sh}
work=$(mktemp -d "${TMPDIR:-/tmp}/nook-demo.XXXXXX")
export NOOK_ROOT=$work/store
cleanup() {
	"$NOOK" system reset -f >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

bold= plain=
if [ -t 1 ]; then
	bold=$(tput bold 2>/dev/null || true)
	plain=$(tput sgr0 2>/dev/null || true)
fi
say() { printf '\n%s# %s%s\n' "$bold" "$*" "$plain"; }
# shown quotes a word only when the shell needs it, as a person types it.
shown() {
	local a out=
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $a"; else out+=" '$a'"; fi
	done
	printf '%s' "$out"
}
run() {
	printf '%s$ nook%s%s\n' "$bold" "$(shown "$@")" "$plain"
	"$NOOK" "$@"
}
say "who am I, and where do things go? (user $(id -un), no root)"
run info

say "a root filesystem made from the static busybox binary"
"$BUSYBOX_ROOTFS" "$work/busybox.tar"
ls -l "$work/busybox.tar"

say "the tarball becomes an image"
run import --change 'CMD ["sh"]' --change 'ENV GREETING=hello' "$work/busybox.tar" busybox
run tag busybox localhost/busybox:demo

say "list and inspect it"
run images
run image inspect --format '{{.Id}} cmd={{.Config.Cmd}} env={{.Config.Env}} layers={{len .RootFS.Layers}}' busybox
run system df

# --- issue 3 (nook run) extends the demo here: run a container from it ---
# --- issue 4 (nook build) extends the demo here: build an image from a Dockerfile ---
# --- issue 5 (nook push/pull) extends the demo here: push to and pull from a local registry ---

say "clean up"
run rmi busybox localhost/busybox:demo
run images
say "demo done"
