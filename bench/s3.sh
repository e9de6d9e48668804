#!/usr/bin/env bash
# bench/s3.sh - 1,000 files of 64 KiB written through a mount and synced
# to two S3 regions: two Swift/s3api servers on 127.0.0.1, started here
# with tests/lib/s3server.sh and always stopped.
#
#   ninja -C build && bash bench/s3.sh        (as root, after scripts/deps.sh)
#
# Prints the time to write the files (one /usr/bin/python3 process), the
# time `phifs sync` then takes until both regions hold everything, the
# number of objects each bucket got, and for reference the same files
# written to a plain directory.  BENCH_FILES (1000) and BENCH_KIB (64)
# change the set.
set -eu
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHIFS=$ROOT/build/tools/phifs
S3SERVER=$ROOT/tests/lib/s3server.sh
BASE=${BENCH_TMP:-/var/tmp}/phifs-s3bench.$$
MNT=$BASE/mnt
CONFIG=$BASE/phifs.ini
NFILES=${BENCH_FILES:-1000}
KIB=${BENCH_KIB:-64}
REGION=phifs-bench-1

die() { echo "s3.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it mounts)"
[ -x "$PHIFS" ] || die "no $PHIFS: build first (ninja -C build)"
command -v swift-proxy-server >/dev/null || die "Swift is not installed (bash scripts/deps.sh)"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {	# a base port with the next four free, not in $1..$1+4
	local base i ok
	for base in $(shuf -i 20000-20990 -n 60); do
		[ -n "${1:-}" ] && [ "$base" -le $(($1 + 4)) ] && [ $((base + 4)) -ge "$1" ] && continue
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
	bash "$S3SERVER" stop "$BASE/s3-a" >&2 || true
	bash "$S3SERVER" stop "$BASE/s3-b" >&2 || true
	is_mounted "$MNT" || rm -rf "$BASE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BASE/cache" "$MNT" "$BASE/plain"
pa=$(pick_port) || die "no free ports"
pb=$(pick_port "$pa") || die "no free ports"
bash "$S3SERVER" start "$BASE/s3-a" "$pa" "$REGION" bench-a >/dev/null
bash "$S3SERVER" start "$BASE/s3-b" "$pb" "$REGION" bench-b >/dev/null
printf 'access_key_id = test:tester\nsecret_access_key = testing\n' >"$BASE/cred"
chmod 600 "$BASE/cred"
cat >"$CONFIG" <<EOF
[filesystem]
cache_dir = $BASE/cache
key_file = $BASE/key

[region a]
url = s3://bench-a
endpoint = http://127.0.0.1:$pa
region = $REGION
path_style = true
credentials_file = $BASE/cred

[region b]
url = s3://bench-b
endpoint = http://127.0.0.1:$pb
region = $REGION
path_style = true
credentials_file = $BASE/cred
EOF
"$PHIFS" mkfs "$CONFIG" >/dev/null
"$PHIFS" mount "$CONFIG" "$MNT" >&2

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
write_set() {	# DIR
	local t0 t1
	t0=$(now)
	/usr/bin/python3 - "$1" "$NFILES" "$KIB" <<'EOF'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.mkdir(os.path.join(d, "set"))
for i in range(n):
    with open(os.path.join(d, "set", "file-%04d" % i), "wb") as f:
        f.write(os.urandom(kib * 1024))
EOF
	t1=$(now)
	secs "$t0" "$t1"
}
count() {	# PORT BUCKET: objects but the superblock
	bash "$S3SERVER" sign "$BASE/s3-$1" GET "/$2?list-type=2&max-keys=1000" |
		grep -o '<Key>[^<]*</Key>' | grep -vc '<Key>superblock</Key>' || true
}

w_plain=$(write_set "$BASE/plain")
w_phifs=$(write_set "$MNT")
t0=$(now)
"$PHIFS" sync "$CONFIG" >/dev/null
t1=$(now)
s_phifs=$(secs "$t0" "$t1")

printf '%-48s %s\n' "files" "$NFILES x $KIB KiB"
printf '%-48s %s s\n' "write through the mount" "$w_phifs"
printf '%-48s %s s\n' "phifs sync until both regions hold them" "$s_phifs"
printf '%-48s %s s\n' "write + sync" "$(awk -v a="$w_phifs" -v b="$s_phifs" 'BEGIN { printf "%.2f", a + b }')"
printf '%-48s %s s\n' "the same files into a plain directory" "$w_plain"
printf '%-48s %s / %s\n' "objects in bucket a / b" "$(count a bench-a)" "$(count b bench-b)"
