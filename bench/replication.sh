#!/usr/bin/env bash
# bench/replication.sh - phifs with two dir: regions, against a plain
# directory on the same disk, in one run.
#
#   ninja -C build && bash bench/replication.sh        (as root)
#
# Prints, each as phifs against plain where there is a plain counterpart:
#   - sequential write of a BENCH_SIZE_MIB (1024) MiB file (dd, fsync);
#   - the time `phifs sync` then takes to seal it and put it in both regions;
#   - sequential read of it, cold (unmount, mount, caches dropped);
#   - 1,000 files of 4 KiB: write time, `phifs sync` time, and how many
#     objects that made in each region;
#   - the compression ratio on a mixed set (text, PDF-like, raw image data):
#     bytes written against bytes that reached a region.
# Everything lives in /var/tmp/phifs-repl.PID and is removed at the end.
set -eu
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHIFS=$ROOT/build/tools/phifs
BASE=${BENCH_TMP:-/var/tmp}/phifs-repl.$$
MNT=$BASE/mnt
PLAIN=$BASE/plain
CONFIG=$BASE/phifs.ini
SIZE_MIB=${BENCH_SIZE_MIB:-1024}

die() { echo "replication.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it drops caches and mounts)"
[ -x "$PHIFS" ] || die "no $PHIFS: build first (ninja -C build)"
case $SIZE_MIB in '' | *[!0-9]* | 0) die "BENCH_SIZE_MIB: a positive number" ;; esac

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
cleanup() {
	if is_mounted "$MNT"; then
		"$PHIFS" umount "$MNT" || fusermount3 -u -z "$MNT" || true
	fi
	if is_mounted "$MNT"; then
		echo "replication.sh: $MNT is still mounted; leaving $BASE" >&2
	else
		rm -rf "$BASE"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BASE/cache" "$BASE/region-a" "$BASE/region-b" "$MNT" "$PLAIN"
avail_kib=$(df -Pk "$BASE" | awk 'NR == 2 { print $4 }')
[ "$avail_kib" -ge $((SIZE_MIB * 5 * 1024 + 1048576)) ] ||
	die "needs $((SIZE_MIB * 5 + 1024)) MiB free under $(dirname "$BASE")"
cat >"$CONFIG" <<EOF
[filesystem]
cache_dir = $BASE/cache
cache_size = 16G
key_file = $BASE/key

[region a]
url = dir:$BASE/region-a

[region b]
url = dir:$BASE/region-b
EOF
"$PHIFS" mkfs "$CONFIG" >/dev/null
"$PHIFS" mount "$CONFIG" "$MNT" >&2

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
objects() { find "$BASE/region-$1" -type f ! -name superblock | wc -l; }
region_bytes() { find "$BASE/region-$1" -type f ! -name superblock -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
cold() {
	if [ "$1" = phifs ]; then
		"$PHIFS" umount "$MNT" >&2
		"$PHIFS" mount "$CONFIG" "$MNT" >&2
	fi
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}
timed_sync() {
	local t0 t1
	t0=$(now)
	"$PHIFS" sync "$CONFIG" >/dev/null
	t1=$(now)
	secs "$t0" "$t1"
}

head -c $((SIZE_MIB << 20)) /dev/urandom >"$BASE/random"
write_big() {	# DIR
	local t0 t1
	cat "$BASE/random" >/dev/null
	t0=$(now)
	dd if="$BASE/random" of="$1/big" bs=1M conv=fsync status=none
	t1=$(now)
	rate "$SIZE_MIB" "$t0" "$t1"
}
read_big() {	# DIR KIND
	local t0 t1
	cold "$2"
	t0=$(now)
	dd if="$1/big" of=/dev/null bs=1M status=none
	t1=$(now)
	rate "$SIZE_MIB" "$t0" "$t1"
}

w_plain=$(write_big "$PLAIN")
w_phifs=$(write_big "$MNT")
s_big=$(timed_sync)
r_plain=$(read_big "$PLAIN" plain)
r_phifs=$(read_big "$MNT" phifs)
cmp -s "$BASE/random" "$MNT/big" || die "the big file reads back different"
rm -f "$BASE/random"

small() {	# DIR
	local t0 t1
	mkdir "$1/letters"
	t0=$(now)
	/usr/bin/python3 - "$1/letters" <<'EOF'
import os, sys
for i in range(1000):
    with open(os.path.join(sys.argv[1], "letter-%04d.txt" % i), "wb") as f:
        f.write(os.urandom(4096))
EOF
	t1=$(now)
	secs "$t0" "$t1"
}
small_plain=$(small "$PLAIN")
before_a=$(objects a)
before_b=$(objects b)
small_phifs=$(small "$MNT")
s_small=$(timed_sync)
objs_a=$(($(objects a) - before_a))
objs_b=$(($(objects b) - before_b))

# A mixed set: text, PDF-like (text with deflate-compressed streams and
# embedded JPEG-like noise), raw 16-bit grey image data (smooth, noisy).
bytes_before=$(region_bytes a)
written=$(/usr/bin/python3 - "$MNT/mixed" <<'EOF'
import os, random, sys, zlib
d = sys.argv[1]
os.mkdir(d)
rng = random.Random(7)
words = ("patient history allergy penicillin blood pressure normal "
         "referral cardiology follow-up prescription dose daily tablet "
         "mg ml left right examination findings impression plan").split()
total = 0
def put(name, data):
    global total
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    total += len(data)
for i in range(40):                     # letters and notes
    text = " ".join(rng.choice(words) for _ in range(rng.randint(2000, 20000)))
    put("note-%d.txt" % i, text.encode())
for i in range(20):                     # PDF-like
    parts = [b"%PDF-1.7\n"]
    for j in range(30):
        body = " ".join(rng.choice(words) for _ in range(800)).encode()
        stream = zlib.compress(body)
        parts.append(b"%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n"
                     % (j + 1, len(stream)) + stream + b"\nendstream\nendobj\n")
    parts.append(rng.randbytes(200000))          # an embedded photo
    parts.append(b"xref\n0 31\ntrailer\n<< /Size 31 >>\n%%EOF\n")
    put("report-%d.pdf" % i, b"".join(parts))
for i in range(10):                     # raw 512x512 16-bit slices
    rows = []
    for y in range(512):
        row = bytearray()
        for x in range(512):
            v = (x * 37 + y * 11 + i * 1000) % 4096 + rng.randint(0, 15)
            row += v.to_bytes(2, "little")
        rows.append(bytes(row))
    put("slice-%d.raw" % i, b"".join(rows))
print(total)
EOF
)
"$PHIFS" sync "$CONFIG" >/dev/null
stored=$(($(region_bytes a) - bytes_before))

printf '%-44s %10s %10s %7s\n' measurement phifs plain ratio
printf '%-44s %10s %10s %7s\n' "write $SIZE_MIB MiB, fsync (MiB/s)" "$w_phifs" "$w_plain" "$(ratio "$w_phifs" "$w_plain")"
printf '%-44s %10s\n' "phifs sync after it (s)" "$s_big"
printf '%-44s %10s %10s %7s\n' "cold read $SIZE_MIB MiB (MiB/s)" "$r_phifs" "$r_plain" "$(ratio "$r_phifs" "$r_plain")"
printf '%-44s %10s %10s %7s\n' "write 1,000 x 4 KiB files (s)" "$small_phifs" "$small_plain" "$(ratio "$small_phifs" "$small_plain")"
printf '%-44s %10s\n' "phifs sync after them (s)" "$s_small"
printf '%-44s %10s\n' "objects they made in region a / b" "$objs_a / $objs_b"
printf '%-44s %10s\n' "mixed set: bytes written" "$written"
printf '%-44s %10s\n' "mixed set: bytes in region a" "$stored"
printf '%-44s %10s\n' "compression ratio (written / stored)" "$(ratio "$written" "$stored")"
