# shellcheck shell=bash
# bench/lib.sh: the framework behind bench/run.sh. Cases (bench/cases/*.sh)
# register with bench_case, time commands with hf_add/hf_run (hyperfine, all
# tools of one case in ONE hyperfine run, so that the ratios compare figures
# taken under the same load) and report rows with result.
#
# Variables every case may use (set by run.sh's measure phase):
#   W       work directory (inputs, stores, raw results), owned by the bench user
#   NOOK    the nook binary under test
#   HAVE_PODMAN  1 when podman runs for this user, else 0
#   RUNS WARMUP  hyperfine's defaults for fast commands (BENCH_QUICK lowers them)
#   QUICK   1 for a short smoke run
#   NOOKE   "env NOOK_ROOT=... NOOK" prefix for a store; see nook_in/podman_in

# ---------------------------------------------------------------- output

say() { printf '%s\n' "$*" >&2; }
note() { printf '  .. %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cases

CASES=()
declare -A CASE_ISSUE CASE_TITLE

# bench_case ID ISSUE TITLE: registers function case_ID (with '-' as '_').
bench_case() {
	CASES+=("$1")
	CASE_ISSUE[$1]=$2
	CASE_TITLE[$1]=$3
}

# nook_has WORDS...: whether "nook WORDS --help" succeeds, i.e. the command
# exists in the binary under test.
nook_has() { "$NOOK" "$@" --help >/dev/null 2>&1; }

# ---------------------------------------------------------------- stores
# Every case uses private stores under $W/stores so that nothing of the
# user's own images takes part, and both tools see the same images.

# use_store NAME: nook and podman over the private store NAME for the
# commands that follow: exports NOOK_ROOT (nook reads it, so the timed command
# line is just "$NOOK ...") and sets P to podman with --root and --runroot.
use_store() {
	export NOOK_ROOT=$W/stores/nook-$1
	P="podman --root $W/stores/podman-$1 --runroot $(podman_runroot "$1")"
}

# podman_runroot NAME: podman's run root for store NAME. podman refuses one
# longer than 50 characters, so it lives in a short directory of its own.
podman_runroot() { printf '/tmp/nook-bench-%s/%s' "$(id -u)" "$1"; }

# ---------------------------------------------------------------- hyperfine

HF_NAMES=() HF_PREPS=() HF_CMDS=()
HF_SKIPPED=() # "name: reason" of commands that failed their probe run

hf_reset() { HF_NAMES=() HF_PREPS=() HF_CMDS=() HF_SKIPPED=(); }

# hf_add NAME PREPARE COMMAND: one command for the next hf_run. PREPARE ("" for
# none) runs before every timed run and is not timed. Both are split into
# words as a shell would (no pipes, no ';': use "bash $U ..." for those).
hf_add() { HF_NAMES+=("$1"); HF_PREPS+=("$2"); HF_CMDS+=("$3"); }

# hf_probe I: runs command I once (after its prepare). A command that fails
# here is left out of the timed run, and why is recorded, so that a broken
# podman never hides nook's figures (and the reverse).
hf_probe() {
	local i=$1 err
	err=$(mktemp)
	if [[ -n ${HF_PREPS[i]} ]] && ! bash -c "${HF_PREPS[i]}" >/dev/null 2>"$err"; then
		HF_SKIPPED+=("${HF_NAMES[i]}: prepare failed: $(tail -n 3 "$err" | tr '\n' ' ')")
		rm -f "$err"
		return 1
	fi
	if ! bash -c "${HF_CMDS[i]}" >/dev/null 2>"$err"; then
		HF_SKIPPED+=("${HF_NAMES[i]}: $(grep -v 'is not a shared mount' "$err" | tail -n 3 | tr '\n' ' ')")
		rm -f "$err"
		return 1
	fi
	rm -f "$err"
}

# hf_run ID [--runs N] [--warmup N] [--rounds R] [HYPERFINE ARGS...]: probes
# every added command, then times the ones that work (medians land in
# $RAW/ID.json, in hyperfine's export format).
#
# hyperfine times all runs of one command before the next command. For slow
# commands that write a lot (import, COPY, pull) the machine changes under
# that order: other users' load comes and goes, and the file system is
# slower right after many files were deleted. --rounds R interleaves
# instead: R hyperfine runs of about N/R runs each, the commands in a
# rotated order every round, merged into one export.
# Returns 1 when no command could be timed.
hf_run() {
	local id=$1
	shift
	local runs=$RUNS warmup=$WARMUP rounds=1 extra=()
	while (($#)); do
		case $1 in
		--runs) runs=$2; shift 2 ;;
		--warmup) warmup=$2; shift 2 ;;
		--rounds) rounds=$2; shift 2 ;;
		*) extra+=("$1"); shift ;;
		esac
	done
	local i n=0 any_prep=0 live=()
	for i in "${!HF_NAMES[@]}"; do
		hf_probe "$i" || continue
		live+=("$i")
		[[ -n ${HF_PREPS[i]} ]] && any_prep=1
	done
	local s
	for s in "${HF_SKIPPED[@]}"; do note "left out: $s"; done
	n=${#live[@]}
	rm -f "$RAW/$id.json" "$RAW/$id".r*.json
	((n > 0)) || return 1
	((rounds > runs)) && rounds=$runs
	local r per left=$runs parts=()
	for ((r = 0; r < rounds; r++)); do
		per=$(((left + rounds - r - 1) / (rounds - r)))
		left=$((left - per))
		local out=$RAW/$id.json
		((rounds > 1)) && out=$RAW/$id.r$r.json
		local pre=(-N --style basic --runs "$per" --warmup "$((r == 0 ? warmup : 0))" --export-json "$out")
		local cmds=() k j
		for ((k = 0; k < n; k++)); do
			j=${live[(k + r) % n]}
			# The i-th --prepare goes with the i-th command.
			((any_prep)) && pre+=(--prepare "${HF_PREPS[j]:-true}")
			cmds+=(-n "${HF_NAMES[j]}" "${HF_CMDS[j]}")
		done
		if ! hyperfine "${pre[@]}" "${extra[@]}" "${cmds[@]}" >>"$LOG" 2>&1; then
			note "hyperfine failed for $id: see $LOG"
			tail -n 5 "$LOG" | sed 's/^/     /' >&2
			rm -f "$RAW/$id.json" "$RAW/$id".r*.json
			return 1
		fi
		parts+=("$out")
	done
	if ((rounds > 1)); then
		jq -s '
		def stats: sort as $t | ($t | length) as $n |
			($t | add / $n) as $mean |
			{ times: ., mean: $mean, min: $t[0], max: $t[$n - 1],
			  median: (if $n % 2 == 1 then $t[($n - 1) / 2] else ($t[$n / 2 - 1] + $t[$n / 2]) / 2 end),
			  stddev: (if $n > 1 then ($t | map(. - $mean | . * .) | add / ($n - 1) | sqrt) else null end) };
		{ rounds: length,
		  results: ([.[].results[]] | group_by(.command) |
			map({ command: .[0].command } + ([.[].times[]] | stats))) }' "${parts[@]}" >"$RAW/$id.json"
		rm -f "${parts[@]}"
	fi
	jq -r '.results[] | "  \(.command): median \(.median * 1000 | . * 10 | round / 10) ms (mean \(.mean * 1000 | . * 10 | round / 10) ± \(.stddev // 0 | . * 1000 | . * 10 | round / 10) ms, \(.times | length) runs)"' "$RAW/$id.json" >&2
}

skipped() {
	local s
	for s in "${HF_SKIPPED[@]}"; do [[ $s == "$1: "* ]] && return 0; done
	return 1
}

# skip_reason NAME: why NAME was left out of the timed run.
skip_reason() {
	local s
	for s in "${HF_SKIPPED[@]}"; do [[ $s == "$1: "* ]] && { printf '%s' "${s#"$1: "}"; return; }; done
}

# median ID NAME: the median in milliseconds of NAME in hf_run ID ("" if none).
median() {
	[[ -f $RAW/$1.json ]] || return 0
	jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$RAW/$1.json"
}

# ---------------------------------------------------------------- results

# result ID WHAT NOOK_MS REF_LABEL REF_MS KIND VALUE [NOTE]
# One row of the table: WHAT is the measured figure, NOOK_MS nook's median
# (or another value for KIND rss_le), REF_LABEL/REF_MS the reference it is
# compared with (podman, tar, ...; empty when none). KIND:
#   abs_lt V    nook's median under V ms
#   ratio_le V  nook/ref median ratio at most V (times; 0.5 = twice as fast)
#   rss_le V    nook's value (MiB) at most V
#   count_ge V  nook's value (a count) at least V
#   count_eq V  nook's value (a count) exactly V
#   info        reported, no target
#   na          not measurable yet (NOTE says why); NOOK_MS etc. empty
#   error       nook failed (NOTE says how)
result() {
	local id=$1 what=$2 nook=$3 reflabel=$4 ref=$5 kind=$6 value=$7 note=${8:-}
	jq -cn --arg id "$id" --arg issue "${CASE_ISSUE[$id]:-}" --arg what "$what" \
		--arg nook "$nook" --arg reflabel "$reflabel" --arg ref "$ref" \
		--arg kind "$kind" --arg value "$value" --arg note "$note" '
	def num: if . == "" then null else tonumber end;
	($nook | num) as $n | ($ref | num) as $r | ($value | num) as $v |
	(if $n != null and $r != null and $r > 0 and ($kind | startswith("count_") | not) then $n / $r else null end) as $ratio |
	{
	  case: $id, issue: ($issue | num), what: $what,
	  nook: $n, reference: (if $reflabel == "" then null else $reflabel end), reference_value: $r,
	  ratio: $ratio, target_kind: $kind, target_value: $v,
	  unit: (if $kind == "rss_le" then "MiB" elif ($kind | startswith("count_")) then "" else "ms" end),
	  target: (if $kind == "abs_lt" then "< \($value) ms"
	    elif $kind == "ratio_le" then "ratio <= \($value)"
	    elif $kind == "rss_le" then "<= \($value) MiB"
	    elif $kind == "count_ge" then ">= \($value)"
	    elif $kind == "count_eq" then "= \($value)"
	    else "-" end),
	  status: (if $kind == "na" then "N/A"
	    elif $kind == "error" then "ERROR"
	    elif $kind == "info" then "info"
	    elif $n == null then "ERROR"
	    elif $kind == "abs_lt" then (if $n < $v then "PASS" else "FAIL" end)
	    elif $kind == "rss_le" then (if $n <= $v then "PASS" else "FAIL" end)
	    elif $kind == "count_ge" then (if $n >= $v then "PASS" else "FAIL" end)
	    elif $kind == "count_eq" then (if $n == $v then "PASS" else "FAIL" end)
	    elif $kind == "ratio_le" then
	      (if $ratio == null then "no-ref" elif $ratio <= $v then "PASS" else "FAIL" end)
	    else "?" end),
	  note: $note
	}' >>"$ROWS"
}

# unavailable ID WHAT FEATURE: a row for a figure whose nook command has not
# landed yet.
unavailable() { result "$1" "$2" "" "" "" na "" "not yet available: nook $3"; }

# ref_note NAME: the note to put on a row when reference NAME was not timed.
ref_note() {
	if [[ $HAVE_PODMAN != 1 && $1 == podman* ]]; then
		printf '%s: nook alone' "$PODMAN_WHY"
	elif skipped "$1"; then
		printf '%s failed: %s' "$1" "$(skip_reason "$1")"
	fi
}

# mib_s BYTES MS: throughput in MiB/s.
mib_s() { awk -v b="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", b / 1048576 / (ms / 1000); else printf "-" }'; }

# ---------------------------------------------------------------- report

report() {
	local json=$1
	say ""
	say "nook benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(jq -r .nook_version "$json"), podman: $(jq -r '.podman_version // .podman_note' "$json")$([[ $QUICK == 1 ]] && printf ' (BENCH_QUICK: smoke run, few samples)')"
	say "load average at start and end: $(jq -r '.loadavg_start + " / " + .loadavg_end' "$json")"
	say "ratio = nook median / reference median (time; < 1 means nook is faster)"
	say ""
	jq -r '
	def ms: if . == null then "-" elif . >= 100 then "\(. | round)" else "\(. * 10 | round / 10)" end;
	def r: if . == null then "-" else "\(. * 1000 | round / 1000)" end;
	(["issue", "case", "figure", "nook", "reference", "ratio", "target", "result"] | @tsv),
	(.rows[] | [
	  "#\(.issue)", .case, .what,
	  (.unit as $u | if .nook == null then "-" else "\(.nook | ms) \($u)" end),
	  (.unit as $u | if .reference == null then "-" elif .reference_value == null then "\(.reference): -" else "\(.reference) \(.reference_value | ms) \($u)" end),
	  (.ratio | r), .target, .status
	] | @tsv)' "$json" | column -t -s $'\t' >&2
	local notes
	notes=$(jq -r '
	  (.rows[] | select(.note != "" and .status != "N/A") | "  \(.case) (\(.what)): \(.note)"),
	  ([.rows[] | select(.status == "N/A")] | group_by(.note)[] |
	    "  \(.[0].note): \(map(.case) | unique | join(", "))")' "$json")
	if [[ -n $notes ]]; then
		say ""
		say "notes:"
		say "$notes"
	fi
	say ""
	say "$(jq -r '[.rows[] | .status] | group_by(.) | map("\(.[0]): \(length)") | join(", ")' "$json")"
}

# row HFID WHAT NOOKNAME REFNAME KIND VALUE [NOTE]: a result row for the
# current case from the medians of hf_run HFID: NOOKNAME's against
# REFNAME's ("" for none). A nook command that failed its probe makes an
# ERROR row that says why; a reference that is missing makes a note.
row() {
	local hfid=$1 what=$2 nn=$3 rn=$4 kind=$5 value=$6 more=${7:-}
	if skipped "$nn"; then
		result "$CUR_CASE" "$what" "" "" "" error "" "nook failed: $(skip_reason "$nn")"
		return
	fi
	local n r="" note=$more
	n=$(median "$hfid" "$nn")
	if [[ -z $n ]]; then
		result "$CUR_CASE" "$what" "" "" "" error "" "no timing for nook (hyperfine failed: see $LOG)"
		return
	fi
	if [[ -n $rn ]]; then
		r=$(median "$hfid" "$rn")
		local rnote
		rnote=$(ref_note "$rn")
		[[ -n $rnote ]] && note=${note:+$note; }$rnote
	fi
	if [[ $kind == abs_lt ]]; then
		# An absolute target on a shared machine: the fastest run tells a
		# busy moment from a slow nook.
		local fastest
		fastest=$(jq -r --arg n "$nn" '.results[] | select(.command == $n) | .min * 1000 | . * 10 | round / 10' "$RAW/$hfid.json")
		note="fastest run ${fastest} ms${note:+; $note}"
	fi
	result "$CUR_CASE" "$what" "$n" "$rn" "$r" "$kind" "$value" "$note"
}

# throughput_note HFID BYTES NAME...: "NAME N MiB/s" for each timed NAME.
throughput_note() {
	local hfid=$1 bytes=$2 out="" nm m
	shift 2
	for nm in "$@"; do
		m=$(median "$hfid" "$nm")
		[[ -n $m ]] && out=${out:+$out, }"$nm $(mib_s "$bytes" "$m") MiB/s"
	done
	printf '%s' "$out"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on, from a range
# that depends on the uid so that two users' runs do not collide.
free_port() {
	local p=$((20000 + ($(id -u) % 500) * 20 + ${1:-0}))
	while ss -Htln "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
	printf '%s' "$p"
}

# wait_http URL: waits up to 10 s for URL to answer.
wait_http() {
	local i
	for ((i = 0; i < 200; i++)); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.05
	done
	return 1
}
