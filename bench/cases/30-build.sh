# shellcheck shell=bash
# Issue 4 (nook build): cached and cold builds, a large COPY, a late change.

build_ready() {
	if ! nook_has build; then
		local what
		for what in "$@"; do unavailable "$CUR_CASE" "$what" build; done
		return 1
	fi
	ensure_busybox main || {
		result "$CUR_CASE" "$1" "" "" "" error "" "importing busybox failed"
		return 1
	}
}

# build_context DIR: a context with a 10-step Dockerfile (FROM + 9) whose
# steps are the usual mix: ENV, RUN, COPY, WORKDIR, LABEL, CMD. late.txt is
# copied at step 8, so that changing it re-runs steps 8 to 10 only.
build_context() {
	local d=$1
	mkdir -p "$d"
	printf 'a\n' >"$d/a.txt"
	printf 'b\n' >"$d/b.txt"
	[[ -f $d/late.txt ]] || printf 'late\n' >"$d/late.txt"
	cat >"$d/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/app MODE=bench
RUN mkdir -p /app/data && echo one > /app/one.txt
COPY a.txt /app/a.txt
WORKDIR /app
RUN cat a.txt one.txt > both.txt
COPY b.txt ./
COPY late.txt ./
RUN wc -c late.txt both.txt > sizes.txt
CMD ["sh"]
EOF
}

# layers_kept TOOL CTX BUILD: how many leading layers of image bench-late
# stay the same when late.txt changes and BUILD runs again.
layers_kept() {
	local tool=$1 ctx=$2 build=$3 before after
	before=$($tool image inspect --format '{{json .RootFS.Layers}}' bench-late 2>/dev/null) || return 0
	date +%s%N >"$ctx/late.txt"
	$build >/dev/null 2>&1 || return 0
	after=$($tool image inspect --format '{{json .RootFS.Layers}}' bench-late 2>/dev/null) || return 0
	jq -n --argjson a "$before" --argjson b "$after" \
		'[$a, $b | length] | min as $n | first(range(0; $n) | select($a[.] != $b[.])) // $n'
}

# podman build: the base image is local (localhost/busybox); never pull.
pbuild() { printf '%s build --pull=never' "$P"; }

bench_case build-cached 4 "fully cached rebuild of a 10-step Dockerfile"
case_build_cached() {
	build_ready "cached rebuild" || return 0
	local ctx=$W/build/ctx
	build_context "$ctx"
	hf_add nook "" "$NOOK build -q -t bench-build $ctx"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "" "$(pbuild) -q -t bench-build $ctx"
	hf_run build-cached --runs $((QUICK ? 3 : 15)) --rounds 3 --warmup 2
	row build-cached "cached rebuild, 10 steps (<= 1/5 podman)" nook podman ratio_le 0.2
	row build-cached "cached rebuild, 10 steps (< 150 ms)" nook "" abs_lt 150
}

bench_case build-cold 4 "cold build (--no-cache) of the same Dockerfile"
case_build_cold() {
	build_ready "cold build" || return 0
	local ctx=$W/build/ctx
	build_context "$ctx"
	hf_add nook "" "$NOOK build -q --no-cache -t bench-build-cold $ctx"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "" "$(pbuild) -q --no-cache -t bench-build-cold $ctx"
	hf_run build-cold --runs $((QUICK ? 2 : 6)) --rounds 4 --warmup 1
	row build-cold "cold build, 10 steps (<= podman)" nook podman ratio_le 1
	"$NOOK" rmi -f bench-build-cold >/dev/null 2>&1
	"$NOOK" image prune -f >/dev/null 2>&1
	[[ $HAVE_PODMAN == 1 ]] && $P rmi -f bench-build-cold >/dev/null 2>&1
	return 0
}

bench_case build-copy 4 "COPY of a 200 MiB context file"
case_build_copy() {
	build_ready "COPY 200 MiB" || return 0
	local ctx=$W/build/copy big
	mkdir -p "$ctx"
	big=$(input_big_file)
	ln -f "$big" "$ctx/big.bin" 2>/dev/null || cp "$big" "$ctx/big.bin"
	printf 'FROM busybox\nCOPY big.bin /big.bin\n' >"$ctx/Dockerfile"
	hf_add nook "$U nook-rmi $NOOK bench-copy" "$NOOK build -q --no-cache -t bench-copy $ctx"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$U podman-rmi $P bench-copy" "$(pbuild) -q --no-cache -t bench-copy $ctx"
	hf_run build-copy --runs $((QUICK ? 2 : 5)) --rounds 5 --warmup 0
	# 2 times podman's throughput = at most half its time.
	row build-copy "COPY 200 MiB (>= 2x podman throughput)" nook podman ratio_le 0.5 \
		"$(throughput_note build-copy $((200 * MIB)) nook podman)"
	$U nook-rmi "$NOOK" bench-copy
	[[ $HAVE_PODMAN == 1 ]] && $U podman-rmi $P bench-copy
	return 0
}

bench_case build-late 4 "rebuild after one changed file copied late"
case_build_late() {
	build_ready "rebuild after a late change" || return 0
	local ctx=$W/build/late
	build_context "$ctx"
	# Each timed run first changes late.txt (the prepare step).
	local touch="bash -c 'date +%s%N > $ctx/late.txt'"
	"$NOOK" build -q -t bench-late "$ctx" >/dev/null 2>&1
	hf_add nook "$touch" "$NOOK build -q -t bench-late $ctx"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$touch" "$(pbuild) -q -t bench-late $ctx"
	hf_run build-late --runs $((QUICK ? 3 : 8)) --rounds 4 --warmup 1
	row build-late "rebuild after a late change" nook podman info ""
	# Which steps ran: the image's layers before the late COPY must be the
	# very same after the change, and the late COPY's layer a new one.
	local nook_kept podman_kept n
	nook_kept=$(layers_kept "$NOOK" "$ctx" "$NOOK build -q -t bench-late $ctx")
	n=$("$NOOK" image inspect --format '{{len .RootFS.Layers}}' bench-late 2>/dev/null)
	[[ $HAVE_PODMAN == 1 ]] && podman_kept=$(layers_kept "$P" "$ctx" "$(pbuild) -q -t bench-late $ctx")
	if [[ -z $nook_kept || -z $n ]]; then
		result build-late "layers kept after the change" "" "" "" error "" "nook build or image inspect failed"
		return 0
	fi
	# All but the last two layers (COPY late.txt and the RUN after it).
	result build-late "layers kept after the change (of $n)" "$nook_kept" "${podman_kept:+podman}" "$podman_kept" \
		count_eq $((n - 2)) "the layers of the steps before COPY late.txt are reused, the rest rebuilt"
}
