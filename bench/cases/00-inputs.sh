# shellcheck shell=bash
# Inputs shared by the cases, made once in $W/inputs and kept between runs
# (they only depend on this machine's files). Large inputs that only later
# cases need are made on demand by input_* functions.

MIB=$((1024 * 1024))

make_inputs() {
	local in=$W/inputs
	mkdir -p "$in"
	[[ -s $in/busybox.tar ]] || make_busybox_tar "$in/busybox.tar"
	[[ -s $in/rootfs-100m.tar ]] || make_rootfs_tar "$in/rootfs-100m.tar" 100
	if [[ ! -s $in/tiny/50.tar ]]; then
		mkdir -p "$in/tiny/src"
		local i
		for ((i = 1; i <= 50; i++)); do
			printf 'image %s\n' "$i" >"$in/tiny/src/id"
			tar -C "$in/tiny/src" --owner=0 --group=0 --numeric-owner -cf "$in/tiny/$i.tar" .
		done
	fi
	note "busybox.tar $(($(stat -c %s "$in/busybox.tar") / 1024)) KiB; rootfs-100m.tar $(($(stat -c %s "$in/rootfs-100m.tar") / MIB)) MiB, $(tar -tf "$in/rootfs-100m.tar" | wc -l) entries"
}

# make_busybox_tar DEST: a root filesystem of the static busybox, as the e2e
# harness makes it (every applet a symlink, passwd and group).
make_busybox_tar() {
	local dest=$1 root
	root=$(mktemp -d "$W/inputs/bb.XXXXXX")
	mkdir -p "$root"/{bin,etc,tmp,root,home/user,usr/bin,sbin,var,proc,sys,dev,www}
	chmod 1777 "$root/tmp"
	local bb
	bb=$(command -v busybox)
	cp "$bb" "$root/bin/busybox"
	local a
	for a in $("$bb" --list); do
		[[ $a == busybox ]] || ln -s busybox "$root/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nuser:x:1000:\nnobody:x:65534:\n' >"$root/etc/group"
	tar -C "$root" --owner=0 --group=0 --numeric-owner -cf "$dest" .
	rm -rf "$root"
}

# make_rootfs_tar DEST MIB: a root filesystem tarball of about MIB MiB of
# this machine's /usr (libraries, binaries, docs, locales: realistic file
# sizes and counts), sampled evenly over the sorted tree so that it mixes
# every kind of file, with the directories and symlinks on the way.
make_rootfs_tar() {
	local dest=$1 want=$(($2 * MIB)) list
	list=$(mktemp "$W/inputs/list.XXXXXX")
	find /usr -xdev \( -type f -size -16M -o -type l \) -readable -printf '%s\t%P\n' 2>/dev/null |
		LC_ALL=C sort -t $'\t' -k2 >"$list.all" || true
	awk -F'\t' -v want="$want" '
		{ size[NR] = $1; path[NR] = $2; total += $1 }
		END {
			# Every k-th file, k = total / want, so that about want bytes come.
			rate = want / total; if (rate > 1) rate = 1
			for (i = 1; i <= NR && got < want; i++) {
				acc += rate
				if (acc < 1) continue
				acc -= 1; got += size[i]
				print "usr/" path[i]
			}
		}' "$list.all" >"$list.files"
	# The parent directories of every chosen file, so that they come with
	# their real modes, then the files; --no-recursion keeps it to the list.
	awk '{ n = split($0, p, "/"); d = p[1]; print d; for (i = 2; i < n; i++) { d = d "/" p[i]; print d } }' "$list.files" |
		LC_ALL=C sort -u >"$list.dirs"
	cat "$list.dirs" "$list.files" >"$list"
	tar -C / --no-recursion --numeric-owner -cf "$dest.tmp" -T "$list" 2>/dev/null || true
	mv "$dest.tmp" "$dest"
	rm -f "$list" "$list.all" "$list.files" "$list.dirs"
}

# input_random_tar: a root filesystem tarball of busybox plus one fresh
# 100 MiB file of random bytes (an incompressible layer, as a push/pull
# figure needs). Made anew for every run so that no registry has it.
input_random_tar() {
	local dest=$W/inputs/random-100m.tar
	if [[ ! -s $dest || -z ${RANDOM_TAR_MADE:-} ]]; then
		local d
		d=$(mktemp -d "$W/inputs/rand.XXXXXX")
		head -c $((100 * MIB)) /dev/urandom >"$d/random.bin"
		tar -C "$d" --owner=0 --group=0 --numeric-owner -cf "$dest" random.bin
		rm -rf "$d"
		RANDOM_TAR_MADE=1
	fi
	printf '%s' "$dest"
}

# input_big_file: a 200 MiB file of random bytes (for a build context).
input_big_file() {
	local dest=$W/inputs/big-200m.bin
	[[ -s $dest ]] || head -c $((200 * MIB)) /dev/urandom >"$dest"
	printf '%s' "$dest"
}

# ensure_busybox STORE: the busybox image, CMD ["sh"], in STORE for nook
# (docker.io/library/busybox) and podman (localhost/busybox).
ensure_busybox() {
	use_store "$1"
	local err
	if ! "$NOOK" image inspect busybox >/dev/null 2>&1; then
		err=$("$NOOK" import --change 'CMD ["sh"]' "$W/inputs/busybox.tar" busybox 2>&1 >/dev/null) || {
			note "nook import of busybox failed: $err"
			return 1
		}
	fi
	if [[ $HAVE_PODMAN == 1 ]] && ! $P image exists busybox 2>/dev/null; then
		$P import --change 'CMD ["sh"]' "$W/inputs/busybox.tar" busybox >/dev/null 2>&1 ||
			note "podman import of busybox failed"
	fi
	return 0
}

# input_variants K: DIR with 1.tar .. K.tar, each rootfs-100m.tar plus one
# file of its own (a different digest), for figures where a tool must not
# find the layer already stored (see util.sh next-variant). Prints DIR.
input_variants() {
	local k=$1 dir=$W/inputs/variants i
	mkdir -p "$dir"
	for ((i = 1; i <= k; i++)); do
		[[ -s $dir/$i.tar && $dir/$i.tar -nt $W/inputs/rootfs-100m.tar ]] && continue
		local tiny
		tiny=$(mktemp -d "$W/inputs/variant.XXXXXX")
		printf 'variant %s\n' "$i" >"$tiny/.bench-variant"
		tar -C "$tiny" --owner=0 --group=0 --numeric-owner -cf "$dir/$i.tar.tmp" .bench-variant
		tar -A -f "$dir/$i.tar.tmp" "$W/inputs/rootfs-100m.tar"
		mv "$dir/$i.tar.tmp" "$dir/$i.tar"
		rm -rf "$tiny"
	done
	rm -f "$dir"/*.n
	printf '%s' "$dir"
}
