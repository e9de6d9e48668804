#!/usr/bin/env bash
# bench/scale.sh - lookup, `ls -l` and create at 10,000 files and at
# SCALE_FILES (default 1,000,000), and the daemon's memory at each.
#
#   meson setup build-rel --buildtype=release && ninja -C build-rel
#   bash bench/scale.sh        (as root)
#
# Makes a fresh phifs in /var/tmp/phifs-scale.PID (one dir: region) and
# fills it with folders of 1,000 empty files each, as a clinic's patient
# folders.  At 10,000 files and again at SCALE_FILES it measures:
#   create    files/s over the last 10,000 files made
#   lookup    files/s of stat() on 2,000 files picked at random (a fixed
#             seed), cold: after an unmount, a mount and dropped caches
#   ls -l     seconds to list a folder of 1,000 files with their
#             attributes, cold, the median of three folders
#   memory    the daemon's resident heap (RssAnon), right after the
#             files were made (the kernel then holds every one of them)
#             and after the cold measurements; and the resident pages of
#             the files it maps (RssFile: LMDB's map, reclaimable)
# and prints each with its ratio, SCALE_FILES against 10,000.  At
# 1,000,000 files a run takes about 25 minutes on the 2-core machine of
# bench/README.md.  Removes everything it made, and always unmounts.
set -eu
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHIFS=${SCALE_PHIFS:-$ROOT/build-rel/tools/phifs}
N=${SCALE_FILES:-1000000}
PER=1000			# files per folder
FIRST=10000			# the small point
BASE=${SCALE_TMP:-/var/tmp}/phifs-scale.$$
MNT=$BASE/mnt
CONFIG=$BASE/phifs.ini

die() { echo "scale.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it drops caches and mounts)"
[ -x "$PHIFS" ] || die "no $PHIFS: build first (ninja -C build-rel), or set SCALE_PHIFS"
case $N in '' | *[!0-9]*) die "SCALE_FILES must be a number" ;; esac
[ "$N" -ge $((2 * FIRST)) ] && [ $((N % PER)) -eq 0 ] ||
	die "SCALE_FILES must be a multiple of $PER, at least $((2 * FIRST))"

is_mounted() {
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}

cleanup() {
	if is_mounted "$MNT"; then
		"$PHIFS" umount "$MNT" || fusermount3 -u -z "$MNT" || true
	fi
	if is_mounted "$MNT"; then
		echo "scale.sh: $MNT is still mounted; leaving $BASE in place" >&2
	else
		rm -rf "$BASE"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BASE/cache" "$BASE/region" "$MNT"
cat >"$CONFIG" <<EOF
[filesystem]
cache_dir = $BASE/cache
cache_size = 8G
key_file = $BASE/key
log_file = $BASE/phifs.log

[region scale]
url = dir:$BASE/region
EOF
"$PHIFS" mkfs "$CONFIG" >/dev/null
"$PHIFS" mount "$CONFIG" "$MNT" >&2

# daemon_mem: the daemon's resident KiB: "ANON FILE" (its heap and
# stacks; the pages of files it maps, LMDB's map most of all, which the
# kernel may reclaim)
daemon_mem() {
	local pid
	pid=$("$PHIFS" status "$CONFIG" --json |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
	awk '$1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 }
	     END { print a, f }' "/proc/$pid/status"
}

cold() {	# >&2: keep the daemon off $(...)'s pipe
	"$PHIFS" umount "$MNT" >&2
	"$PHIFS" mount "$CONFIG" "$MNT" >&2
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# fill FROM TO: folders FROM..TO-1 of PER files each; prints the files/s
# of the last FIRST files.
fill() {
	/usr/bin/python3 - "$MNT" "$1" "$2" "$PER" "$FIRST" <<'EOF'
import os, sys, time
mnt, a, b, per, last = sys.argv[1], *map(int, sys.argv[2:])
t_last = None
for d in range(a, b):
    if (b - d) * per == last:
        t_last = time.monotonic()
    path = "%s/p%06d" % (mnt, d)
    os.mkdir(path)
    for i in range(per):
        os.close(os.open("%s/f%04d" % (path, i),
                         os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
os.sync()
print("%.0f" % (last / (time.monotonic() - t_last)))
EOF
}

# lookups FOLDERS: stat() of 2,000 files at random among FOLDERS folders;
# files/s.
lookups() {
	/usr/bin/python3 - "$MNT" "$1" "$PER" <<'EOF'
import os, random, sys, time
mnt, folders, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
paths = ["%s/p%06d/f%04d" % (mnt, rnd.randrange(folders), rnd.randrange(per))
         for _ in range(2000)]
t0 = time.monotonic()
for p in paths:
    os.stat(p)
print("%.0f" % (len(paths) / (time.monotonic() - t0)))
EOF
}

# listing FOLDERS: median seconds of `ls -l` of three folders at random.
listing() {
	local t=() f t0 t1
	for f in $(/usr/bin/python3 -c "import random; r = random.Random(11); print(*(r.randrange($1) for _ in range(3)))"); do
		t0=$(date +%s.%N)
		ls -l "$(printf '%s/p%06d' "$MNT" "$f")" >/dev/null
		t1=$(date +%s.%N)
		t+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
	done
	printf '%s\n' "${t[@]}" | sort -g | sed -n 2p
}

# measure FOLDERS: sets L S M1 M2 for the point of FOLDERS folders.
measure() {
	M1=$(daemon_mem)
	cold
	L=$(lookups "$1")
	S=$(listing "$1")
	M2=$(daemon_mem)
}

echo "scale.sh: $FIRST files..." >&2
C1=$(fill 0 $((FIRST / PER)))
measure $((FIRST / PER))
L1=$L S1=$S A1=$M1 B1=$M2
echo "scale.sh: $N files (about $((N / 1000 / 60 + 1)) min at 1,000 files/s)..." >&2
C2=$(fill $((FIRST / PER)) $((N / PER)))
measure $((N / PER))
L2=$L S2=$S A2=$M1 B2=$M2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
printf '\n| measure | %d files | %d files | ratio |\n' "$FIRST" "$N"
printf '|---|---|---|---|\n'
printf '| create, files/s (the last %d) | %s | %s | %s |\n' "$FIRST" "$C1" "$C2" "$(ratio "$C1" "$C2")"
printf '| lookup, cold, files/s (2,000 at random) | %s | %s | %s |\n' "$L1" "$L2" "$(ratio "$L1" "$L2")"
printf '| `ls -l` of 1,000 files, cold, s | %s | %s | %s |\n' "$S1" "$S2" "$(ratio "$S1" "$S2")"
mem_row() {	# LABEL FIELD (1 anon, 2 file) SMALL LARGE
	local a b
	a=$(echo "$3" | cut -d' ' -f"$2")
	b=$(echo "$4" | cut -d' ' -f"$2")
	printf '| %s, MiB | %s | %s | %s |\n' "$1" "$(mib "$a")" "$(mib "$b")" "$(ratio "$a" "$b")"
}
mem_row "daemon heap (RssAnon) after creating" 1 "$A1" "$A2"
mem_row "daemon heap (RssAnon) after the cold reads" 1 "$B1" "$B2"
mem_row "mapped files (RssFile, LMDB) after creating" 2 "$A1" "$A2"
echo
echo "For rates a ratio below 1 is a slowdown; for times and memory, above 1 is growth."
