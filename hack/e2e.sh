#!/usr/bin/env bash
# Runs the end-to-end suite (bin/e2e.test against bin/nook, both built by
# 'make test-e2e'). As root: the suite as root, then as the unprivileged
# TEST_USER (rootless, with subordinate ids), then the single-mapping tests
# as SOLO_USER (no subordinate ids). As an ordinary user: the suite as that
# user. Exits non-zero if any run fails; prints "e2e: N passed, N failed".
set -uo pipefail

TEST_USER=${TEST_USER:-nooktest}
SOLO_USER=${SOLO_USER:-nooksolo}
E2E_RUN=${E2E_RUN:-.}
E2E_TIMEOUT=${E2E_TIMEOUT:-30m}
E2E_PARALLEL=${E2E_PARALLEL:-4}
repo=$(cd "$(dirname "$0")/.." && pwd)
nook=$repo/bin/nook
e2e=$repo/bin/e2e.test
logdir=$(mktemp -d "${TMPDIR:-/tmp}/nook-e2e-log.XXXXXX")
status=0

for f in "$nook" "$e2e"; do
	[ -x "$f" ] || { echo "hack/e2e.sh: $f is missing: run 'make test-e2e'" >&2; exit 1; }
done

# suite LABEL CMD...: runs one suite, keeping its output for the summary.
suite() {
	local label=$1
	shift
	echo "=== e2e suite: $label"
	"$@" 2>&1 | tee "$logdir/$label.log"
	local rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		echo "=== e2e suite $label FAILED (exit $rc)"
		status=1
	fi
}

flags=(-test.v -test.timeout "$E2E_TIMEOUT" -test.parallel "$E2E_PARALLEL" -test.run "$E2E_RUN")

# as_user USER ENV...: a clean login-like environment for USER (no root
# XDG_RUNTIME_DIR or HOME leaking in), running from /tmp.
as_user() {
	local u=$1
	shift
	local home uid
	home=$(getent passwd "$u" | cut -d: -f6)
	uid=$(id -u "$u")
	# What a login session has: a private runtime dir (systemd-logind
	# makes it; here we do). Tools like skopeo keep auth files there.
	install -d -m 0700 -o "$u" -g "$(id -g "$u")" "/run/user/$uid"
	(cd /tmp && runuser -u "$u" -- env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME="$home" USER="$u" LOGNAME="$u" LANG=C.UTF-8 TMPDIR=/tmp CI="${CI:-}" \
		XDG_RUNTIME_DIR="/run/user/$uid" "$@")
}

if [ "$(id -u)" -eq 0 ]; then
	suite root env NOOK_BIN="$nook" "$e2e" "${flags[@]}"

	# The unprivileged users cannot read a repository under /root: copy the
	# binaries to a directory they can. mv replaces a binary that a holder
	# from an earlier run may still be executing.
	bindir=${E2E_BIN_DIR:-/tmp/nook-e2e-bin}
	install -d -m 0755 "$bindir"
	for f in "$nook" "$e2e"; do
		cp "$f" "$bindir/.$(basename "$f").new"
		chmod 0755 "$bindir/.$(basename "$f").new"
		mv -f "$bindir/.$(basename "$f").new" "$bindir/$(basename "$f")"
	done

	for u in "$TEST_USER" "$SOLO_USER"; do
		id -u "$u" >/dev/null 2>&1 || { echo "hack/e2e.sh: user $u does not exist: run 'make test-deps'" >&2; exit 1; }
		# Start from no holder (it may run an older binary) and an empty
		# default store: these users exist for the tests only.
		as_user "$u" "$bindir/nook" system reset -f >/dev/null 2>&1 || true
	done
	suite "$TEST_USER" as_user "$TEST_USER" NOOK_BIN="$bindir/nook" "$bindir/e2e.test" "${flags[@]}"
	# Without subordinate ids: the single-mapping tests, which fail (not
	# skip) when NOOK_E2E_SOLO is set and the user has a range after all.
	suite "$SOLO_USER" as_user "$SOLO_USER" NOOK_BIN="$bindir/nook" NOOK_E2E_SOLO=1 "$bindir/e2e.test" \
		-test.v -test.timeout "$E2E_TIMEOUT" -test.run 'SingleMapping'
	as_user "$SOLO_USER" "$bindir/nook" system reset -f >/dev/null 2>&1 || true
else
	suite "$(id -un)" env NOOK_BIN="$nook" "$e2e" "${flags[@]}"
fi

passed=$(cat "$logdir"/*.log | grep -c -- '--- PASS' || true)
failed=$(cat "$logdir"/*.log | grep -c -- '--- FAIL' || true)
skipped=$(cat "$logdir"/*.log | grep -c -- '--- SKIP' || true)
echo "e2e logs: $logdir"
echo "e2e: $passed passed, $failed failed, $skipped skipped"
if [ "$failed" -ne 0 ]; then
	grep -h -- '--- FAIL' "$logdir"/*.log
	status=1
fi
exit $status
