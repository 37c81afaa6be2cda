#!/usr/bin/env bash
# bench/run.sh: nook's benchmarks, side by side with podman in one run.
#
#   bench/run.sh                 as root: installs what it needs, sets up an
#                                unprivileged user (BENCH_USER, default
#                                nookbench) with a subuid range and rootless
#                                podman, then measures AS THAT USER
#   bench/run.sh                 as a normal user: measures directly
#
# Environment:
#   BENCH_QUICK=1      a short smoke run (few samples; figures are rough)
#   BENCH_CASES=REGEX  only the cases whose id matches (e.g. 'images|import')
#   BENCH_USER=NAME    the unprivileged user to measure as (root only)
#   BENCH_WORK=DIR     work directory (default /var/tmp/nook-bench-USER as
#                      root, ~/.cache/nook-bench otherwise)
#   BENCH_PODMAN=0     leave podman out even when it is installed
#   NOOK_BIN=PATH      the nook binary to measure (default: bin/nook if it
#                      exists, else built with go from this tree)
#
# Results: a table on standard error, bench/results/latest.json (or
# partial.json when BENCH_CASES picks some cases), and the raw hyperfine
# exports in bench/results/raw/. docs/bench.md explains the cases.
set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

QUICK=${BENCH_QUICK:-0}
[[ $QUICK == 1 ]] || QUICK=0
GO_TAGS=exclude_graphdriver_btrfs

# ================================================================ set-up (root)

# Commands the benchmarks use, with the Debian package that brings each.
REQUIRED=(hyperfine:hyperfine jq:jq tar:tar newuidmap:uidmap newgidmap:uidmap
	slirp4netns:slirp4netns busybox:busybox-static nsenter:util-linux ip:iproute2
	column:bsdextrautils curl:curl runuser:util-linux flock:util-linux)
OPTIONAL=(podman:podman runc:runc docker-registry:docker-registry skopeo:skopeo)

install_packages() {
	local want=() item
	for item in "${REQUIRED[@]}" "${OPTIONAL[@]}"; do
		command -v "${item%%:*}" >/dev/null || want+=("${item#*:}")
	done
	[[ ${BENCH_PODMAN:-1} == 0 ]] && want=("${want[@]/podman/}")
	((${#want[@]})) || return 0
	say "installing: ${want[*]}"
	apt-get update -qq >/dev/null || true
	# One by one, so that a package missing from the archive (say podman)
	# costs only its own figures.
	for item in $(printf '%s\n' "${want[@]}" | sort -u); do
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$item" >/dev/null 2>&1 ||
			say "could not install $item"
	done
	for item in "${REQUIRED[@]}"; do
		command -v "${item%%:*}" >/dev/null || die "${item%%:*} is missing: apt-get install ${item#*:}"
	done
}

# ensure_user NAME: an unprivileged user with a home and a subuid/subgid range.
ensure_user() {
	local u=$1
	if ! id -u "$u" >/dev/null 2>&1; then
		say "creating user $u"
		useradd -m -s /bin/bash "$u"
	fi
	local f
	for f in /etc/subuid /etc/subgid; do
		touch "$f"
		grep -q "^$u:" "$f" && continue
		# The first free 65536-id range after every range in use.
		local start
		start=$(awk -F: 'BEGIN { m = 100000 } { e = $2 + $3; if (e > m) m = e } END { print m }' /etc/subuid /etc/subgid)
		echo "$u:$start:65536" >>"$f"
		say "added $u:$start:65536 to $f"
	done
}

# podman_config HOME USER: rootless podman for USER with runc (crun fails on
# hybrid cgroup machines such as this one), cgroupfs (no systemd session)
# and a file event log (no journald session).
podman_config() {
	local home=$1 u=$2 dir="$1/.config/containers"
	local f=$dir/containers.conf
	local conf='# Set by nook bench/run.sh for rootless podman without a systemd session:
# crun fails on hybrid cgroup hosts, so runc; no session bus, so cgroupfs and
# a file event log.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
	if [[ -f $f ]] && ! grep -q 'nook bench/run.sh' "$f"; then
		cp "$f" "$f.before-nook-bench"
		say "kept $f as $f.before-nook-bench"
	fi
	mkdir -p "$dir"
	printf '%s\n' "$conf" >"$f"
	chown -R "$u:" "$home/.config"
}

# lock_work DIR: one bench run per work directory at a time (two people
# running make bench as root share the default user and its directory); a
# second run waits. The lock is held until this process exits.
lock_work() {
	[[ -n ${BENCH_LOCKED:-} ]] && return 0
	mkdir -p "$1"
	exec 9>>"$1/.lock"
	if ! flock -n 9; then
		say "another bench run is using $1: waiting for it to finish"
		flock 9
	fi
	export BENCH_LOCKED=1
}

# nook_binary DEST: the binary to measure, copied to DEST (by rename, so that
# a binary still running from an earlier run is not "busy").
nook_binary() {
	local dest=$1 src=${NOOK_BIN:-}
	mkdir -p "$(dirname "$dest")"
	if [[ -z $src && -x $BENCH_SRC/../bin/nook && ${BENCH_BUILD:-0} != 1 ]]; then
		src=$BENCH_SRC/../bin/nook
	fi
	if [[ -z $src ]]; then
		command -v go >/dev/null || die "no nook binary: set NOOK_BIN or install go"
		say "building nook (go build -tags $GO_TAGS)"
		(cd "$BENCH_SRC/.." && go build -tags "$GO_TAGS" -o "$dest.new" .) || die "go build failed"
	else
		cp "$src" "$dest.new"
	fi
	chmod 755 "$dest.new"
	mv -f "$dest.new" "$dest"
}

root_main() {
	local u=${BENCH_USER:-nookbench}
	install_packages
	[[ -e /dev/net/tun ]] && chmod 666 /dev/net/tun
	ensure_user "$u"
	local home
	home=$(getent passwd "$u" | cut -d: -f6)
	local w=${BENCH_WORK:-/var/tmp/nook-bench-$u}
	lock_work "$w"
	mkdir -p "$w/bench/cases" "$w/bin"
	nook_binary "$w/bin/nook"
	cp "$BENCH_SRC"/*.sh "$w/bench/"
	cp "$BENCH_SRC"/cases/*.sh "$w/bench/cases/"
	chown "$u:" "$w" "$w/.lock" "$w/bench" "$w/bench/cases" "$w/bin" "$w/bin/nook"
	chmod -R a+rX "$w/bench"
	if command -v podman >/dev/null && [[ ${BENCH_PODMAN:-1} != 0 ]]; then
		podman_config "$home" "$u"
	fi
	say "measuring as $u (work directory $w)"
	local rc=0
	runuser -u "$u" -- env -i HOME="$home" USER="$u" LOGNAME="$u" SHELL=/bin/bash \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 TERM="${TERM:-dumb}" BENCH_PHASE=measure BENCH_WORK="$w" \
		NOOK_BIN="$w/bin/nook" BENCH_QUICK="$QUICK" BENCH_CASES="${BENCH_CASES:-}" \
		BENCH_PODMAN="${BENCH_PODMAN:-1}" BENCH_SOURCE_COMMIT="$(source_commit)" BENCH_LOCKED=1 \
		bash "$w/bench/run.sh" || rc=$?
	collect "$w"
	return $rc
}

source_commit() {
	local c
	c=$(git -C "$BENCH_SRC/.." rev-parse --short HEAD 2>/dev/null) || return 0
	git -C "$BENCH_SRC/.." diff --quiet HEAD -- . 2>/dev/null || c+=+dirty
	printf '%s' "$c"
}

# collect W: copies the results of the measuring user into the source tree.
collect() {
	local w=$1 f=latest.json
	[[ -n ${BENCH_CASES:-} ]] && f=partial.json
	[[ -f $w/results/$f ]] || return 0
	mkdir -p "$BENCH_SRC/results/raw"
	cp "$w/results/$f" "$BENCH_SRC/results/$f"
	rm -f "$BENCH_SRC"/results/raw/*.json
	cp "$w"/results/raw/*.json "$BENCH_SRC/results/raw/" 2>/dev/null || true
	say "results: $BENCH_SRC/results/$f"
}

# ================================================================ normal user

user_main() {
	local item missing=()
	for item in "${REQUIRED[@]}"; do
		[[ ${item%%:*} == runuser ]] && continue
		command -v "${item%%:*}" >/dev/null || missing+=("${item#*:}")
	done
	((${#missing[@]} == 0)) || die "missing commands; as root run: apt-get install -y ${missing[*]} (or run 'make bench' as root)"
	grep -q "^$(id -un):" /etc/subuid 2>/dev/null ||
		say "warning: no /etc/subuid entry for $(id -un): nook falls back to a single-id mapping (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un))"
	local w=${BENCH_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/nook-bench}
	lock_work "$w"
	mkdir -p "$w/bin"
	nook_binary "$w/bin/nook"
	export NOOK_BIN=$w/bin/nook BENCH_WORK=$w
	if command -v podman >/dev/null && [[ ${BENCH_PODMAN:-1} != 0 ]] &&
		! grep -qs '^ *runtime *= *"runc"' "$HOME/.config/containers/containers.conf"; then
		# Leave the user's own configuration alone: a private one for the run.
		printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' >"$w/containers.conf"
		export CONTAINERS_CONF=$w/containers.conf
		note "podman uses $w/containers.conf (runc, cgroupfs, file events) for this run"
	fi
	local rc=0
	BENCH_SOURCE_COMMIT=$(source_commit) measure_main || rc=$?
	if [[ -w $BENCH_SRC ]]; then collect "$w"; fi
	return $rc
}

# ================================================================ measuring

measure_main() {
	W=${BENCH_WORK:?}
	NOOK=${NOOK_BIN:?}
	RAW=$W/results/raw
	ROWS=$W/results/rows.jsonl
	LOG=$W/results/hyperfine.log
	U="bash $BENCH_SRC/util.sh"
	mkdir -p "$RAW" "$W/stores" "$W/inputs"
	install -d -m 700 "$(dirname "$(podman_runroot x)")"
	rm -f "$RAW"/*.json "$ROWS" "$LOG" "$W/results/partial.json"
	: >"$ROWS"
	# A private runtime directory: this run's nook holder and podman pause
	# process are its own, and stopping them between runs touches nothing
	# else of the user's.
	export XDG_RUNTIME_DIR=$W/xdg
	mkdir -p "$XDG_RUNTIME_DIR"
	chmod 700 "$XDG_RUNTIME_DIR"
	unset DBUS_SESSION_BUS_ADDRESS NOOK_ROOT NOOK_RUNROOT NOOK_STORAGE_DRIVER
	# So that 'podman' in prepare steps and cases means the same binary.
	if [[ $QUICK == 1 ]]; then RUNS=3 WARMUP=1; else RUNS=${BENCH_RUNS:-20} WARMUP=3; fi

	HAVE_PODMAN=0 PODMAN_WHY="podman not installed"
	local podman_version=null
	if [[ ${BENCH_PODMAN:-1} != 0 ]] && command -v podman >/dev/null; then
		if podman info >/dev/null 2>"$W/results/podman-info.err"; then
			HAVE_PODMAN=1
			podman_version=$(podman version --format '{{.Client.Version}}' 2>/dev/null | jq -R .)
		else
			PODMAN_WHY="podman does not work for $(id -un): $(tail -n 1 "$W/results/podman-info.err")"
			say "$PODMAN_WHY"
			say "measuring nook alone"
		fi
	else
		[[ ${BENCH_PODMAN:-1} == 0 ]] && PODMAN_WHY="podman left out (BENCH_PODMAN=0)"
		say "$PODMAN_WHY: nook's figures alone, no ratios"
	fi
	local nook_version
	nook_version="nook $("$NOOK" version 2>/dev/null | awk '/^Version:/ { print $2 }' || true)"

	local f
	for f in "$(dirname "${BASH_SOURCE[0]}")"/cases/*.sh; do
		# shellcheck source=/dev/null
		. "$f"
	done
	local load_start
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	say "preparing inputs in $W/inputs"
	make_inputs

	local id failed=0 t0
	for id in "${CASES[@]}"; do
		[[ -n ${BENCH_CASES:-} && ! $id =~ ${BENCH_CASES} ]] && continue
		CUR_CASE=$id
		say ""
		say "== $id (issue ${CASE_ISSUE[$id]}): ${CASE_TITLE[$id]}"
		t0=$SECONDS
		hf_reset
		unset NOOK_ROOT
		if ! "case_${id//-/_}"; then
			failed=1
			say "   case $id failed"
		fi
		note "$((SECONDS - t0)) s"
	done
	cleanup_stores

	# A run of some cases only does not replace the last complete one.
	local out=$W/results/latest.json
	[[ -n ${BENCH_CASES:-} ]] && out=$W/results/partial.json
	jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg nook "$nook_version" \
		--argjson podman "$podman_version" --arg why "$PODMAN_WHY" --arg commit "${BENCH_SOURCE_COMMIT:-}" \
		--arg user "$(id -un)" --arg quick "$QUICK" --arg runs "$RUNS" \
		--arg host "$(uname -r), $(nproc) cores" \
		--arg load_start "$load_start" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" '{
		date: $date, nook_version: $nook, podman_version: $podman,
		podman_note: (if $podman == null then $why else null end), commit: $commit,
		user: $user, quick: ($quick == "1"), runs: ($runs | tonumber), host: $host,
		loadavg_start: $load_start, loadavg_end: $load_end,
		rows: .
	}' "$ROWS" >"$out"
	report "$out"
	if jq -e '[.rows[] | select(.status == "ERROR")] | length > 0' "$out" >/dev/null; then
		failed=1
	fi
	return $failed
}

# cleanup_stores: removes every store of this run (the files belong to
# subordinate ids, so each tool removes its own) and stops the holder and
# the pause process.
cleanup_stores() {
	local s
	for s in "$W"/stores/nook-*; do
		[[ -d $s ]] || continue
		NOOK_ROOT=$s "$NOOK" system reset -f >/dev/null 2>&1 || true
		rm -rf "$s" 2>/dev/null || "$NOOK" unshare rm -rf "$s" 2>/dev/null || true
	done
	$U stop-nook || true
	if [[ $HAVE_PODMAN == 1 ]]; then
		for s in "$W"/stores/podman-*; do
			[[ -d $s ]] || continue
			local rr
			rr=$(podman_runroot "${s##*/podman-}")
			podman --root "$s" --runroot "$rr" system reset -f >/dev/null 2>&1 || true
			podman unshare rm -rf "$s" "$rr" 2>/dev/null || true
		done
		$U stop-podman || true
	fi
	[[ -n ${REG_PID:-} ]] && stop_registry
	return 0
}

main() {
	if [[ ${BENCH_PHASE:-} == measure ]]; then
		measure_main
	elif [[ $EUID -eq 0 ]]; then
		root_main
	else
		user_main
	fi
}

main "$@"
