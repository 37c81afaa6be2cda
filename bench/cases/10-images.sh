# shellcheck shell=bash
# Issue 2 (foundation): joining the namespace, starting it, importing, listing.

bench_case join 2 "a command that joins a running holder: images, empty store"
case_join() {
	use_store empty
	hf_add nook "" "$NOOK images"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "" "$P images"
	hf_run join --runs $((QUICK ? 10 : 40)) --rounds 4 --warmup 5
	row join "images, empty store, holder running" nook podman abs_lt 15
}

bench_case first 2 "first command with no holder running (holder start included)"
case_first() {
	use_store empty
	# Between timed runs the holder (podman: its pause process) is stopped,
	# so every timed run starts one.
	hf_add nook "$U stop-nook" "$NOOK images"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$U stop-podman" "$P images"
	hf_run first --runs $((QUICK ? 3 : 15)) --rounds 3 --warmup 1
	row first "images, no holder running" nook podman abs_lt 200
}

bench_case import 2 "import of a 100 MiB rootfs tarball vs tar -x on the same disk"
case_import() {
	use_store main
	local t=$W/inputs/rootfs-100m.tar size
	size=$(stat -c %s "$t")
	# Every timed run writes into a new place, after the last run's dirty
	# pages were written back (sync); nothing is deleted until the end, since
	# ext4 allocates inodes slowly right after many were deleted (see
	# util.sh next-dir), which would penalise whichever tool runs later.
	# Every run imports a tarball its store has not seen (podman would reuse
	# the layer): one of K variants of the same tree, see input_variants.
	local runs=$((QUICK ? 2 : 5)) v
	v=$(input_variants $((runs + 1)))
	rm -rf "$W/tarx"
	hf_add "tar -x" "$U next-dir $W/tarx" "tar -xf $t -C $W/tarx/cur"
	hf_add nook "$U next-variant $v nook" "$NOOK import $v/nook.tar bench-import"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$U next-variant $v podman" "$P import $v/podman.tar bench-import"
	hf_run import --runs "$runs" --rounds "$runs" --warmup 0
	local tp
	tp=$(throughput_note import "$size" "tar -x" nook podman)
	# 80 % of tar's speed = at most 1.25 times tar's time.
	row import "import 100 MiB vs tar -x (>= 80% speed)" nook "tar -x" ratio_le 1.25 "$tp"
	row import "import 100 MiB vs podman import" nook podman info ""
	rm -rf "$W/tarx"
	"$NOOK" rmi -f bench-import >/dev/null 2>&1
	"$NOOK" image prune -f >/dev/null 2>&1
	if [[ $HAVE_PODMAN == 1 ]]; then
		$P rmi -f bench-import >/dev/null 2>&1
		$P image prune -f >/dev/null 2>&1
	fi
	return 0
}

bench_case images50 2 "images with 50 images in the store"
case_images50() {
	use_store fifty
	local i n
	n=$("$NOOK" images -q 2>/dev/null | wc -l)
	if ((n < 50)); then
		for ((i = 1; i <= 50; i++)); do
			"$NOOK" import "$W/inputs/tiny/$i.tar" "bench/img$i:latest" >/dev/null || {
				result images50 "images, 50 images" "" "" "" error "" "nook import of the 50 images failed"
				return 1
			}
		done
	fi
	if [[ $HAVE_PODMAN == 1 ]]; then
		n=$($P images -q 2>/dev/null | wc -l)
		if ((n < 50)); then
			for ((i = 1; i <= 50; i++)); do
				$P import "$W/inputs/tiny/$i.tar" "bench/img$i:latest" >/dev/null 2>&1 || break
			done
		fi
	fi
	hf_add nook "" "$NOOK images"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "" "$P images"
	hf_run images50 --runs $((QUICK ? 5 : 30)) --rounds 3 --warmup 3
	row images50 "images, 50 images" nook podman info ""
}
