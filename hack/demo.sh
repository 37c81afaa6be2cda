#!/usr/bin/env bash
# make demo: nook's main job, end to end, on this machine, as an ordinary
# user: an image from the static busybox; a Dockerfile built into a web
# server image and rebuilt from the cache; the server run in the background
# with a published port and fetched from the host; then the image pushed to
# a local registry (Debian's docker-registry on 127.0.0.1), removed, pulled
# back and run again.
#
# As root (after 'make test-deps'), it runs itself again as the
# unprivileged TEST_USER, since nook is made for ordinary users; as a user
# it runs directly. The demo uses a store of its own (NOOK_ROOT), never the
# user's images; whatever it started (containers, the registry) and its
# store are removed at the end, also when a step fails. It exits non-zero
# if any step fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
TEST_USER=${TEST_USER:-nooktest}

if [ "$(id -u)" -eq 0 ] && [ -z "${NOOK_DEMO_AS_ROOT:-}" ]; then
	# The user cannot read a repository under /root: copy what it runs. A
	# directory per user, and mv, since a holder from an earlier run may
	# still be executing the old binary.
	bindir=/tmp/nook-demo-bin-$TEST_USER
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
BUSYBOX=${BUSYBOX:-/bin/busybox}
for tool in docker-registry ss; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "hack/demo.sh: $tool not found: run 'sudo make test-deps'" >&2
		exit 1
	}
done
started=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/nook-demo.XXXXXX")
# Private: the store, its volatile state and any credentials or registry
# configuration; none of the user's own.
export NOOK_ROOT=$work/store NOOK_RUNROOT=$work/run
export REGISTRY_AUTH_FILE=$work/auth.json NOOK_REGISTRIES_CONF=$work/registries.conf
: >"$NOOK_REGISTRIES_CONF"
registry_pid=
step=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$rc" -ne 0 ]; then
		echo "demo FAILED (exit $rc) during: $step" >&2
	fi
	printf '\n# cleaning up: '
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
		printf 'registry stopped; '
	fi
	# Every container of the private store (and so its monitor), every
	# image, then the store itself. The user's holder and own store stay.
	"$NOOK" rm -f web >/dev/null 2>&1 || true
	"$NOOK" system reset -f >/dev/null 2>&1 || true
	# Files of subordinate ids, should the reset have failed, need the namespace.
	if rm -rf "$work" 2>/dev/null || "$NOOK" unshare rm -rf "$work"; then
		echo "store $NOOK_ROOT removed"
	else
		echo "could not remove $work" >&2
		[ "$rc" -ne 0 ] || rc=1
	fi
	echo "# (your own images are untouched; nook's per-user holder exits by itself when idle, see docs/rootless.md)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bold='' plain=''
if [ -t 1 ]; then
	bold=$(tput bold 2>/dev/null || true)
	plain=$(tput sgr0 2>/dev/null || true)
fi
say() {
	step=$*
	printf '\n%s# %s%s\n' "$bold" "$*" "$plain"
}
# shown quotes a word only when the shell needs it, as a person types it.
shown() {
	local a out=
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $a"; else out+=" '$a'"; fi
	done
	printf '%s' "$out"
}
# run shows and runs a nook command; host, any other command.
run() {
	printf '%s$ nook%s%s\n' "$bold" "$(shown "$@")" "$plain"
	"$NOOK" "$@"
}
host() {
	printf '%s$%s%s\n' "$bold" "$(shown "$@")" "$plain"
	"$@"
}
# run_to FILE ARGS...: run, with the output also kept in FILE for a check.
run_to() {
	local out=$1
	shift
	printf '%s$ nook%s%s\n' "$bold" "$(shown "$@")" "$plain"
	"$NOOK" "$@" 2>&1 | tee "$out"
	return "${PIPESTATUS[0]}"
}
fail() {
	echo "demo: $*" >&2
	exit 1
}
# free_port prints a TCP port nothing listens on at the moment.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
# fetch URL: the body of an HTTP GET from the host (curl or wget if the
# machine has one, else busybox's wget).
if command -v curl >/dev/null 2>&1; then
	fetch=(curl -fsS)
elif command -v wget >/dev/null 2>&1; then
	fetch=(wget -qO-)
else
	fetch=("$BUSYBOX" wget -qO-)
fi
# wait_http URL: until something answers there (10 s at most).
wait_http() {
	for _ in $(seq 100); do
		"${fetch[@]}" "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

say "who am I, and where do things go? (user $(id -un), no root; a store of the demo's own)"
run info

say "1. a root filesystem made from the static busybox binary"
"$BUSYBOX_ROOTFS" "$work/busybox.tar"
ls -l "$work/busybox.tar"

say "the tarball becomes an image"
run import --change 'CMD ["sh"]' --change 'ENV GREETING=hello' "$work/busybox.tar" busybox
run images
run image inspect --format '{{.Id}} cmd={{.Config.Cmd}} env={{.Config.Env}} layers={{len .RootFS.Layers}}' busybox

say "2. build a web server image from a Dockerfile"
ctx=$work/site
mkdir -p "$ctx"
cat >"$ctx/index.html" <<'HTML'
<html><body><h1>Hello from nook</h1>
<p>served by busybox httpd in a rootless container</p>
HTML
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM busybox
COPY index.html /www/index.html
RUN echo "<p>built by $(id -un) in the build container, $(busybox | head -n 1)</p></body></html>" >>/www/index.html
EXPOSE 80
CMD ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]
DOCKERFILE
cd "$work"
host cat site/Dockerfile
run build -t web site

say "the same build again: every step comes from the cache"
run_to "$work/rebuild.out" build -t web site
grep -q CACHED "$work/rebuild.out" || fail "the rebuild used no cached step"
run history web

web_port=$(free_port)
say "3. run it in the background, port 80 published on 127.0.0.1:$web_port, and fetch the page from the host"
run run -d --init -p "127.0.0.1:$web_port:80" --name web web
wait_http "http://127.0.0.1:$web_port/" || fail "nothing answers on 127.0.0.1:$web_port"
host "${fetch[@]}" "http://127.0.0.1:$web_port/" | tee "$work/page.html"
grep -q 'Hello from nook' "$work/page.html" || fail "the page is not the one built in"
run ps
run port web
run logs web
run exec web ls -l /www
run exec web ps
run stop web
run ps -a --format '{{.Names}}\t{{.Status}}'
run rm web

say "4. push to a registry on 127.0.0.1 (Debian's docker-registry, started now), remove, pull back"
regport=$(free_port)
reg=127.0.0.1:$regport
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: $reg
YAML
host cat registry/config.yml
printf '%s$%s &%s\n' "$bold" "$(shown docker-registry serve registry/config.yml)" "$plain"
# REGISTRY_* variables override the registry's configuration: the
# demo's REGISTRY_AUTH_FILE (nook's credentials file) is not for it.
env -u REGISTRY_AUTH_FILE docker-registry serve "$work/registry/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
wait_http "http://$reg/v2/" || fail "docker-registry did not answer on $reg: $(cat "$work/registry.log")"
run tag web "$reg/demo/web:1"
run push "$reg/demo/web:1"
host "${fetch[@]}" "http://$reg/v2/_catalog"
run rmi web "$reg/demo/web:1"
run images
run pull "$reg/demo/web:1"
run images
run run --rm "$reg/demo/web:1" cat /www/index.html

say "demo done in $(($(date +%s) - started)) s"
