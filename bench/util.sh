#!/usr/bin/env bash
# bench/util.sh ACTION ARGS...: small steps that benchmarks run between timed
# runs (hyperfine --prepare) or around them. Nothing here is timed.
set -uo pipefail

# nook's runtime dir, as userns.RuntimeDir computes it for a rootless user.
nook_runtime() {
	if [[ $(id -u) == 0 ]]; then
		printf /run/nook
	elif [[ ${XDG_RUNTIME_DIR:-} == /* ]]; then
		printf '%s/nook' "$XDG_RUNTIME_DIR"
	else
		printf '/tmp/nook-run-%s' "$(id -u)"
	fi
}

# podman's tmp dir, where its rootless pause process records its pid.
podman_tmp() {
	if [[ ${XDG_RUNTIME_DIR:-} == /* ]]; then
		printf '%s/libpod/tmp' "$XDG_RUNTIME_DIR"
	else
		printf '/tmp/podman-run-%s/libpod/tmp' "$(id -u)"
	fi
}

# alive PID: whether PID runs (a zombie waiting for its reaper does not).
alive() {
	local st
	[[ -n $1 ]] || return 1
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

# wait_gone PID...: waits up to 5 s for the processes to exit, then kills them.
wait_gone() {
	local p i
	for ((i = 0; i < 500; i++)); do
		local any=0
		for p in "$@"; do alive "$p" && any=1; done
		((any)) || return 0
		sleep 0.01
	done
	for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
}

# rm_f CMD...: "CMD rm -f bench-d". podman's rm -f waits 10 s for a
# container that ignores SIGTERM (sleep as pid 1); with -t 0 it kills at
# once, as docker's (and nook's) rm -f does.
rm_f() {
	local now=()
	[[ $(basename "$1") == podman ]] && now=(-t 0)
	"$@" rm -f "${now[@]}" bench-d >/dev/null 2>&1
}

readpid() { [[ -r $1 ]] && tr -dc 0-9 <"$1"; }

case ${1:-} in
stop-nook)
	# Stops this user's nook holder, as userns.StopHolder does: SIGTERM to
	# the rootlesskit child and the pause process, then the parent (the
	# child's parent) exits and releases the holder's lock.
	d="$(nook_runtime)/holder"
	child=$(readpid "$d/child_pid")
	pause=$(readpid "$d/ready")
	parent=
	[[ -n $child && -r /proc/$child/stat ]] && parent=$(awk '{print $4}' "/proc/$child/stat")
	pids=()
	for p in $child $pause $parent; do alive "$p" && pids+=("$p"); done
	((${#pids[@]})) || exit 0
	kill -TERM ${child:+"$child"} ${pause:+"$pause"} 2>/dev/null
	wait_gone "${pids[@]}"
	;;
stop-podman)
	# Kills podman's rootless pause process, as 'podman system migrate' does:
	# the one its pid file names, and any catatonit of this user started with
	# the same XDG_RUNTIME_DIR ('podman system reset' removes the pid file but
	# not the process).
	pids=()
	p=$(readpid "$(podman_tmp)/pause.pid")
	alive "$p" && pids+=("$p")
	for d in /proc/[0-9]*; do
		[[ -O $d && $(cat "$d/comm" 2>/dev/null) == catatonit ]] || continue
		tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-}" || continue
		pids+=("${d#/proc/}")
	done
	((${#pids[@]})) || exit 0
	kill -KILL "${pids[@]}" 2>/dev/null
	wait_gone "${pids[@]}"
	;;
next-dir)
	# next-dir BASE: a new empty directory BASE/N that BASE/cur points to,
	# after writing back dirty pages. Nothing is deleted: ext4 then scans past
	# recently deleted inodes (recently_deleted) when it allocates new ones,
	# which made a tar -x right after an rm -rf two to four times slower.
	mkdir -p "$2"
	n=$(find "$2" -mindepth 1 -maxdepth 1 -type d | wc -l)
	mkdir "$2/$((n + 1))" && ln -sfn "$((n + 1))" "$2/cur" && sync
	;;
next-variant)
	# next-variant DIR NAME: points DIR/NAME.tar at the next of DIR/1.tar ..
	# DIR/K.tar (the same root filesystem, each with one unique file), so that
	# no run imports a tarball that the store has seen: podman reuses a
	# layer whose digest it already has, which made its later imports skip
	# the unpacking altogether.
	k=$(find "$2" -maxdepth 1 -name '[0-9]*.tar' | wc -l)
	n=$(cat "$2/$3.n" 2>/dev/null || echo 0)
	n=$((n % k + 1))
	echo "$n" >"$2/$3.n"
	ln -sfn "$n.tar" "$2/$3.tar" && sync
	;;
fresh-dir)
	# fresh-dir DIR: an empty DIR (for tar -x).
	rm -rf "$2" && mkdir -p "$2" && sync
	;;
nook-rmi)
	# nook-rmi STORE-PREFIX... NAME: removes image NAME (if any) and syncs, so
	# that the next timed run starts from the same state.
	shift
	name=${*: -1}
	set -- "${@:1:$#-1}"
	"$@" rmi -f "$name" >/dev/null 2>&1
	"$@" image prune -f >/dev/null 2>&1
	sync
	;;
podman-rmi)
	shift
	name=${*: -1}
	set -- "${@:1:$#-1}"
	"$@" rmi -f "$name" >/dev/null 2>&1
	sync
	;;
container)
	# container CMD...: a fresh detached container bench-d (sleep) of CMD
	# (nook, or podman with its store flags).
	shift
	rm_f "$@"
	"$@" run -d --name bench-d busybox sleep 600 >/dev/null
	;;
no-container)
	# no-container CMD...: container bench-d removed, if it exists.
	shift
	rm_f "$@"
	exit 0
	;;
upload)
	# upload REGISTRY REPO FILE DIGEST: FILE as one blob, with curl: what any
	# push costs at least (the registry's own work and the loopback copy).
	loc=$(curl -sf -D - -o /dev/null -X POST "http://$2/v2/$3/blobs/uploads/" |
		tr -d '\r' | awk -F': ' 'tolower($1) == "location" { print $2 }')
	[[ -n $loc ]] || exit 1
	[[ $loc == http* ]] || loc="http://$2$loc"
	[[ $loc == *\?* ]] && loc+="&" || loc+="?"
	curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$4" "${loc}digest=$5"
	;;
run)
	# run N CMD...: runs CMD N times in a row, stopping at the first failure.
	n=$2
	shift 2
	for ((i = 0; i < n; i++)); do "$@" >/dev/null || exit 1; done
	;;
*)
	echo "usage: util.sh stop-nook|stop-podman|fresh-dir DIR|next-dir BASE|next-variant DIR NAME|nook-rmi CMD... NAME|podman-rmi CMD... NAME|container CMD...|no-container CMD...|upload REG REPO FILE DIGEST|run N CMD..." >&2
	exit 2
	;;
esac
