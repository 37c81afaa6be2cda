# shellcheck shell=bash
# Issue 3 (nook run): container start-up, sequential rate, detached
# containers, published ports, the monitor's memory.

# run_ready: whether nook can run containers; else rows saying so.
run_ready() {
	if ! nook_has run; then
		local what
		for what in "$@"; do unavailable "$CUR_CASE" "$what" run; done
		return 1
	fi
	ensure_busybox main || {
		result "$CUR_CASE" "$1" "" "" "" error "" "importing busybox failed"
		return 1
	}
}

bench_case run 3 "run --rm busybox true"
case_run() {
	run_ready "run --rm busybox true" || return 0
	hf_add nook "" "$NOOK run --rm busybox true"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "" "$P run --rm busybox true"
	# The floor: a bare user+mount+pid namespace with no image at all.
	hf_add floor "" "unshare -U -r -m -p -f true"
	hf_run run --runs $((QUICK ? 3 : 20)) --rounds 4 --warmup 2
	row run "run --rm busybox true" nook podman ratio_le 0.125
	row run "run --rm busybox true vs the floor (unshare)" nook floor info ""
}

bench_case run-nonet 3 "run --rm --network none busybox true"
case_run_nonet() {
	run_ready "run --rm --network none busybox true" || return 0
	hf_add nook "" "$NOOK run --rm --network none busybox true"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "" "$P run --rm --network none busybox true"
	hf_run run-nonet --runs $((QUICK ? 3 : 20)) --rounds 4 --warmup 2
	row run-nonet "run --rm --network none busybox true" nook podman ratio_le 0.125
}

bench_case run-seq50 3 "sequential run --rm: containers per second"
case_run_seq50() {
	run_ready "sequential run --rm" || return 0
	# nook's rate over 50 runs in a row; podman's over 10 (about 3 s),
	# which gives its rate as well and keeps the bench short.
	hf_add "nook x50" "" "$U run 50 $NOOK run --rm busybox true"
	[[ $HAVE_PODMAN == 1 ]] && hf_add "podman x10" "" "$U run 10 $P run --rm busybox true"
	# The probe run is the warm-up.
	hf_run run-seq50 --runs $((QUICK ? 1 : 3)) --rounds 3 --warmup 0
	if skipped "nook x50"; then
		result run-seq50 "sequential run --rm" "" "" "" error "" "nook failed: $(skip_reason "nook x50")"
		return 0
	fi
	local n p note
	n=$(median run-seq50 "nook x50")
	p=$(median run-seq50 "podman x10")
	[[ -n $n ]] || { result run-seq50 "sequential run --rm" "" "" "" error "" "no timing for nook"; return 0; }
	note="nook $(awk -v m="$n" 'BEGIN { printf "%.1f", 50000 / m }') containers/s"
	[[ -n $p ]] && note+=", podman $(awk -v m="$p" 'BEGIN { printf "%.1f", 10000 / m }') containers/s"
	[[ -z $p ]] && note+="; $(ref_note "podman x10")"
	# Per-container times; 8 times podman's rate = at most 1/8 of its time.
	result run-seq50 "time per container in a row (>= 8x podman's rate)" \
		"$(awk -v m="$n" 'BEGIN { print m / 50 }')" "${p:+podman}" \
		"$([[ -n $p ]] && awk -v m="$p" 'BEGIN { print m / 10 }')" ratio_le 0.125 "$note"
}

bench_case run-detached 3 "run -d, then rm -f"
case_run_detached() {
	run_ready "run -d" "rm -f" || return 0
	if ! nook_has rm; then
		unavailable run-detached "rm -f" rm
	fi
	hf_add nook "$U no-container $NOOK" "$NOOK run -d --name bench-d busybox sleep 600"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$U no-container $P" "$P run -d --name bench-d busybox sleep 600"
	hf_run run-d --runs $((QUICK ? 3 : 15)) --rounds 3 --warmup 1
	row run-d "run -d busybox sleep" nook podman ratio_le 0.25
	if nook_has rm; then
		hf_reset
		hf_add nook "$U container $NOOK" "$NOOK rm -f bench-d"
		[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$U container $P" "$P rm -f -t 0 bench-d"
		hf_run rm-f --runs $((QUICK ? 3 : 15)) --rounds 3 --warmup 1
		# docker's rm -f kills at once; podman's waits --time (10 s) for a
		# container that ignores SIGTERM, as sleep as pid 1 does: -t 0.
		row rm-f "rm -f of a running container" nook podman ratio_le 0.25 "podman with -t 0 (kill at once, as docker)"
	fi
	$U no-container "$NOOK"
	[[ $HAVE_PODMAN == 1 ]] && $U no-container $P
	return 0
}

# rss_of PID: resident memory of PID in MiB.
rss_of() { awk '/^VmRSS:/ { printf "%.2f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

bench_case monitor-rss 3 "resident memory of a detached container's monitor"
case_monitor_rss() {
	run_ready "monitor RSS" || return 0
	"$NOOK" rm -f bench-rss >/dev/null 2>&1
	if ! "$NOOK" run -d --name bench-rss busybox sleep 600 >/dev/null; then
		result monitor-rss "monitor RSS" "" "" "" error "" "nook run -d failed"
		return 1
	fi
	sleep 1
	# The monitor is nook re-executed: every process of this binary that is
	# not one of the holder's (parent, child, pause).
	local hd=$XDG_RUNTIME_DIR/nook/holder exe pid holder=" " max="" rss
	local child pause
	child=$( (tr -dc 0-9 <"$hd/child_pid") 2>/dev/null)
	pause=$( (tr -dc 0-9 <"$hd/ready") 2>/dev/null)
	holder+="$child $pause $(awk '{ print $4 }' "/proc/$child/stat" 2>/dev/null) "
	exe=$(readlink -f "$NOOK")
	local d
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[[ $holder == *" $pid "* ]] && continue
		[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] || continue
		rss=$(rss_of "$pid")
		[[ -z $max ]] || awk -v a="$rss" -v b="$max" 'BEGIN { exit !(a > b) }' && max=$rss
	done
	local ref="" refnote=""
	if [[ $HAVE_PODMAN == 1 ]]; then
		$P rm -f -t 0 bench-rss >/dev/null 2>&1
		if $P run -d --name bench-rss busybox sleep 600 >/dev/null 2>&1; then
			local id
			id=$($P inspect --format '{{.Id}}' bench-rss 2>/dev/null)
			for pid in $(pgrep -u "$(id -u)" -x conmon); do
				tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$id" && ref=$(rss_of "$pid")
			done
			$P rm -f -t 0 bench-rss >/dev/null 2>&1
		fi
		[[ -n $ref ]] || refnote="podman's conmon not found"
	fi
	"$NOOK" rm -f bench-rss >/dev/null 2>&1
	if [[ -z $max ]]; then
		result monitor-rss "monitor RSS" "" "" "" error "" "no monitor process (a process of $exe outside the holder) found"
		return 1
	fi
	result monitor-rss "monitor RSS (podman: conmon)" "$max" "${ref:+conmon}" "$ref" rss_le 8 "$refnote"
}

bench_case port 3 "published-port throughput: 100 MiB over HTTP through -p"
case_port() {
	run_ready "published-port throughput" || return 0
	local www=$W/inputs/www
	mkdir -p "$www"
	[[ -s $www/big.bin ]] || head -c $((100 * MIB)) /dev/urandom >"$www/big.bin"
	chmod -R a+rX "$www"
	local pn pp
	pn=$(free_port 0)
	"$NOOK" rm -f bench-web >/dev/null 2>&1
	if ! "$NOOK" run -d --name bench-web -p "127.0.0.1:$pn:80" -v "$www:/www:ro" busybox httpd -f -p 80 -h /www >/dev/null ||
		! wait_http "http://127.0.0.1:$pn/big.bin"; then
		result port "100 MiB over -p" "" "" "" error "" "nook run -d -p with httpd did not serve on 127.0.0.1:$pn"
		"$NOOK" rm -f bench-web >/dev/null 2>&1
		return 1
	fi
	hf_add nook "" "curl -sf -o /dev/null http://127.0.0.1:$pn/big.bin"
	if [[ $HAVE_PODMAN == 1 ]]; then
		pp=$(free_port 1)
		$P rm -f -t 0 bench-web >/dev/null 2>&1
		if $P run -d --name bench-web -p "127.0.0.1:$pp:80" -v "$www:/www:ro" busybox httpd -f -p 80 -h /www >/dev/null 2>&1 &&
			wait_http "http://127.0.0.1:$pp/big.bin"; then
			hf_add podman "" "curl -sf -o /dev/null http://127.0.0.1:$pp/big.bin"
		else
			HF_SKIPPED+=("podman: podman run -d -p with httpd did not serve on 127.0.0.1:$pp")
		fi
	fi
	hf_run port --runs $((QUICK ? 2 : 10)) --rounds 5 --warmup 1
	row port "100 MiB over HTTP through -p (>= podman)" nook podman ratio_le 1 "$(throughput_note port $((100 * MIB)) nook podman)"
	"$NOOK" rm -f bench-web >/dev/null 2>&1
	[[ $HAVE_PODMAN == 1 ]] && $P rm -f -t 0 bench-web >/dev/null 2>&1
	return 0
}
