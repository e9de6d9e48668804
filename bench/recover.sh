#!/usr/bin/env bash
# bench/recover.sh - how long `phifs recover` takes to bring back a
# filesystem of BENCH_FILES (10,000) files / BENCH_SIZE_MIB (1024) MiB,
# from a dir: region and from a loopback S3 region (OpenStack
# Swift/s3api, started here with tests/lib/s3server.sh and always
# stopped), against `cp -a` of the same tree from a local folder; and how
# many metadata bytes 1,000 file creations send to a region.
#
#   ninja -C build && bash bench/recover.sh        (as root, after scripts/deps.sh)
#
# "recover" is the command alone (metadata; content comes back on first
# read); "recover + read" adds reading every file once through the mount.
set -eu
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHIFS=$ROOT/build/tools/phifs
S3SERVER=$ROOT/tests/lib/s3server.sh
BASE=${BENCH_TMP:-/var/tmp}/phifs-recbench.$$
MNT=$BASE/mnt
NFILES=${BENCH_FILES:-10000}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
REGION=phifs-bench-1

die() { echo "recover.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it mounts and drops caches)"
[ -x "$PHIFS" ] || die "no $PHIFS: build first (ninja -C build)"
command -v swift-proxy-server >/dev/null || die "Swift is not installed (bash scripts/deps.sh)"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
	local base i ok
	for base in $(shuf -i 21000-21990 -n 60); do
		ok=1
		for i in 0 1 2 3 4; do port_free $((base + i)) || { ok=0; break; }; done
		[ "$ok" -eq 1 ] && { echo "$base"; return 0; }
	done
	return 1
}
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
cleanup() {
	if is_mounted "$MNT"; then
		"$PHIFS" umount "$MNT" || fusermount3 -u -z "$MNT" || true
	fi
	bash "$S3SERVER" stop "$BASE/s3" >&2 || true
	is_mounted "$MNT" || rm -rf "$BASE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BASE/cache" "$BASE/region-a" "$MNT" "$BASE/plain"
port=$(pick_port) || die "no free ports"
bash "$S3SERVER" start "$BASE/s3" "$port" "$REGION" bench >/dev/null
printf 'access_key_id = test:tester\nsecret_access_key = testing\n' >"$BASE/cred"
chmod 600 "$BASE/cred"
config() {	# CACHE_DIR
	cat <<EOF
[filesystem]
cache_dir = $1
key_file = $BASE/key
cache_size = 40G

[region a]
url = dir:$BASE/region-a

[region b]
url = s3://bench
endpoint = http://127.0.0.1:$port
region = $REGION
path_style = true
credentials_file = $BASE/cred
EOF
}
config "$BASE/cache" >"$BASE/phifs.ini"
"$PHIFS" mkfs "$BASE/phifs.ini" >/dev/null
"$PHIFS" mount "$BASE/phifs.ini" "$MNT" >&2

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
meta_bytes() { find "$BASE/region-a/m" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# the tree: NFILES files in 100 folders, SIZE_MIB MiB in all
/usr/bin/python3 - "$BASE/plain" "$NFILES" "$SIZE_MIB" <<'EOF'
import os, sys
root, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = mib * 1024 * 1024 // n
for i in range(n):
    d = os.path.join(root, "patient-%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "doc-%05d.bin" % i), "wb") as f:
        f.write(os.urandom(size))
EOF
cp -a "$BASE/plain/." "$MNT/"
"$PHIFS" sync "$BASE/phifs.ini" >/dev/null

# metadata bytes per 1,000 creations
before=$(meta_bytes)
mkdir "$MNT/letters"
for i in $(seq 1 1000); do : >"$MNT/letters/l$i"; done
"$PHIFS" sync "$BASE/phifs.ini" >/dev/null
after=$(meta_bytes)
"$PHIFS" umount "$MNT"

# reference: cp -a from a local folder
drop
t0=$(now)
cp -a "$BASE/plain" "$BASE/copy"
sync
t1=$(now)
cp_s=$(secs "$t0" "$t1")
rm -rf "$BASE/copy"

recover_from() {	# REGION -> "recover_s read_s"
	local dir=$BASE/cache-$1 t0 t1 t2
	rm -rf "$dir"
	mkdir "$dir"
	config "$dir" >"$BASE/r-$1.ini"
	drop
	t0=$(now)
	"$PHIFS" recover "$BASE/r-$1.ini" --region "$1" >/dev/null
	t1=$(now)
	"$PHIFS" mount "$BASE/r-$1.ini" "$MNT" >&2
	tar -cf - -C "$MNT" . | cat >/dev/null
	t2=$(now)
	"$PHIFS" umount "$MNT"
	rm -rf "$dir"
	echo "$(secs "$t0" "$t1") $(secs "$t0" "$t2")"
}
read -r ra_s ra_all <<<"$(recover_from a)"
read -r rb_s rb_all <<<"$(recover_from b)"

printf '%-52s %s\n' "tree" "$NFILES files, $SIZE_MIB MiB"
printf '%-52s %s s\n' "cp -a from a local folder" "$cp_s"
printf '%-52s %s s\n' "phifs recover from the dir: region" "$ra_s"
printf '%-52s %s s\n' "  + reading every file once" "$ra_all"
printf '%-52s %s s\n' "phifs recover from the loopback S3 region" "$rb_s"
printf '%-52s %s s\n' "  + reading every file once" "$rb_all"
printf '%-52s %s\n' "metadata bytes sent per 1,000 file creations" "$((after - before))"
