# shellcheck shell=bash
# Issue 5 (push/pull): against Debian's docker-registry on 127.0.0.1, started
# here as the bench user with its storage under $W/registry.

REG_PID=""
REG=""

registry_ready() {
	if ! nook_has push || ! nook_has pull; then
		local what
		for what in "$@"; do unavailable "$CUR_CASE" "$what" "push/pull"; done
		return 1
	fi
	if ! command -v docker-registry >/dev/null; then
		local what
		for what in "$@"; do
			result "$CUR_CASE" "$what" "" "" "" na "" "docker-registry not installed (apt-get install docker-registry)"
		done
		return 1
	fi
	ensure_busybox main || return 1
	start_registry || {
		result "$CUR_CASE" "$1" "" "" "" error "" "could not start docker-registry (see $W/registry/log)"
		return 1
	}
}

# start_registry: one registry for all registry cases, plain HTTP, no
# blob-descriptor cache (so that wiping its storage between timed runs
# makes every push a fresh one), deletes allowed.
start_registry() {
	[[ -n $REG_PID ]] && kill -0 "$REG_PID" 2>/dev/null && return 0
	local port
	port=$(free_port 5)
	mkdir -p "$W/registry/data"
	cat >"$W/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
	docker-registry serve "$W/registry/config.yml" >"$W/registry/log" 2>&1 &
	REG_PID=$!
	REG=127.0.0.1:$port
	wait_http "http://$REG/v2/" || return 1
	trap stop_registry EXIT
}

stop_registry() {
	[[ -n $REG_PID ]] || return 0
	kill "$REG_PID" 2>/dev/null
	wait "$REG_PID" 2>/dev/null
	REG_PID=""
}

# A wipe of the registry's storage: the next push uploads every blob.
WIPE="rm -rf"

bench_case push 5 "push of an image with a fresh 100 MiB random layer"
case_push() {
	registry_ready "push 100 MiB" || return 0
	use_store main
	local t
	t=$(input_random_tar)
	"$NOOK" rmi -f bench-rand >/dev/null 2>&1
	"$NOOK" import "$t" bench-rand >/dev/null 2>"$W/results/import.err" || {
		result push "push 100 MiB" "" "" "" error "" "nook import of the random layer failed"
		return 1
	}
	if [[ $HAVE_PODMAN == 1 ]]; then
		$P rmi -f bench-rand >/dev/null 2>&1
		$P import "$t" bench-rand >/dev/null 2>&1 || note "podman import of the random layer failed"
	fi
	local wipe="$WIPE $W/registry/data/docker" digest
	digest=sha256:$(sha256sum "$t" | cut -d' ' -f1)
	hf_add nook "$wipe" "$NOOK push --tls-verify=false bench-rand $REG/bench/rand:nook"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$wipe" "$P push --tls-verify=false bench-rand $REG/bench/rand:podman"
	# The floor: the same bytes as one blob upload with curl, no tool.
	hf_add "curl upload" "$wipe" "$U upload $REG bench/raw $t $digest"
	hf_run push --runs $((QUICK ? 2 : 6)) --rounds 6 --warmup 0
	row push "push 100 MiB fresh layer (>= 2x podman)" nook podman ratio_le 0.5 \
		"$(throughput_note push $((100 * MIB)) nook podman "curl upload")"
	row push "push 100 MiB vs a bare blob upload (curl)" nook "curl upload" info ""
}

bench_case push-again 5 "second push of the same image"
case_push_again() {
	registry_ready "second push" || return 0
	use_store main
	"$NOOK" image inspect bench-rand >/dev/null 2>&1 || "$NOOK" import "$(input_random_tar)" bench-rand >/dev/null
	# The probe run is the first push; every timed run is a second one.
	hf_add nook "" "$NOOK push --tls-verify=false bench-rand $REG/bench/again:nook"
	if [[ $HAVE_PODMAN == 1 ]]; then
		$P image exists bench-rand 2>/dev/null || $P import "$(input_random_tar)" bench-rand >/dev/null 2>&1
		hf_add podman "" "$P push --tls-verify=false bench-rand $REG/bench/again:podman"
	fi
	hf_run push-again --runs $((QUICK ? 3 : 10)) --rounds 3 --warmup 1
	row push-again "second push (< 100 ms beyond round trips)" nook podman abs_lt 100 \
		"loopback round trips are well under 1 ms each: the target is taken as 100 ms"
}

# pull_source NAME TAR: REG/bench/NAME:1 holds the image of TAR, pushed once
# by podman when there is one (so that both tools pull the very same blobs),
# else by nook.
pull_source() {
	local name=$1 tar=$2 ref=$REG/bench/$1:1
	if [[ $HAVE_PODMAN == 1 ]]; then
		$P image exists "bench-$name" 2>/dev/null || $P import "$tar" "bench-$name" >/dev/null 2>&1
		$P push --tls-verify=false "bench-$name" "$ref" >/dev/null 2>&1 && return 0
		note "podman push of $ref failed: nook pushes it"
	fi
	"$NOOK" image inspect "bench-$name" >/dev/null 2>&1 || "$NOOK" import "$tar" "bench-$name" >/dev/null || return 1
	"$NOOK" push --tls-verify=false "bench-$name" "$ref" >/dev/null
}

# pull_case ID NAME TAR WHAT KIND VALUE: both tools pull REG/bench/NAME:1
# into their own empty store (store "pull"), which every timed run empties.
pull_case() {
	local id=$1 name=$2 tar=$3 what=$4 kind=$5 value=$6 bytes
	bytes=$(stat -c %s "$tar")
	use_store main
	pull_source "$name" "$tar" || {
		result "$id" "$what" "" "" "" error "" "could not push $REG/bench/$name:1 to pull it"
		return 1
	}
	use_store pull
	local ref=$REG/bench/$name:1
	hf_add nook "$U nook-rmi $NOOK $ref" "$NOOK pull -q --tls-verify=false $ref"
	[[ $HAVE_PODMAN == 1 ]] && hf_add podman "$U podman-rmi $P $ref" "$P pull -q --tls-verify=false $ref"
	# The floor: downloading the layer blob with curl, storing nothing.
	local blob
	blob=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
		"http://$REG/v2/bench/$name/manifests/1" | jq -r '.layers[0].digest // empty')
	[[ -n $blob ]] && hf_add "curl download" "" "curl -sf -o /dev/null http://$REG/v2/bench/$name/blobs/$blob"
	hf_run "$id" --runs $((QUICK ? 2 : 5)) --rounds 5 --warmup 0
	row "$id" "$what" nook podman "$kind" "$value" "$(throughput_note "$id" "$bytes" nook podman "curl download")"
	[[ -n $blob ]] && row "$id" "${what%% (*} vs downloading the blob (curl)" nook "curl download" info ""
}

bench_case pull 5 "pull of the 100 MiB random-layer image into an empty store"
case_pull() {
	registry_ready "pull 100 MiB" || return 0
	pull_case pull rand "$(input_random_tar)" "pull 100 MiB layer (>= 2x podman)" ratio_le 0.5
}

bench_case pull-files 5 "pull of a many-small-files image"
case_pull_files() {
	registry_ready "pull many small files" || return 0
	# A debootstrapped Debian when one is at hand (BENCH_DEBOOTSTRAP_TAR),
	# else the 100 MiB sample of /usr (about 10,000 files).
	local tar=${BENCH_DEBOOTSTRAP_TAR:-$W/inputs/rootfs-100m.tar}
	pull_case pull-files files "$tar" "pull $(($(stat -c %s "$tar") / MIB)) MiB of small files (>= podman)" ratio_le 1
}
