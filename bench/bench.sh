#!/usr/bin/env bash
# bench/bench.sh - phifs against a plain directory on the same disk.
#
#   ninja -C build && bash bench/bench.sh        (as root)
#
# Makes a fresh phifs in /var/tmp/phifs-bench.PID (one dir: region, mounted
# with default options) and a plain directory beside it, runs each
# measurement BENCH_RUNS times (default 3) on both, and prints the median.
# With BENCH_PHIFS_BEFORE=PATH (a phifs binary built from an older commit)
# it also measures that one, in the same run, for a before/after column;
# BENCH_BEFORE_CONF adds lines to that one's [filesystem] (with the same
# binary, BENCH_BEFORE_CONF="audit = off" compares audit on and off).
# See bench/README.md for what each line measures and the other BENCH_*
# settings.  Needs about 4 GiB free in /var/tmp; removes everything it
# made, and always unmounts.
set -eu
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHIFS=${BENCH_PHIFS:-$ROOT/build/tools/phifs}
BEFORE=${BENCH_PHIFS_BEFORE:-}
BEFORE_CONF=${BENCH_BEFORE_CONF:-}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-wzero wrand read create cached ls rm}
BASE=${BENCH_TMP:-/var/tmp}/phifs-bench.$$
MNT=$BASE/mnt
PLAIN=$BASE/plain
CONFIG=$BASE/phifs.ini
# the older binary, when there is one: its own filesystem beside ours
BMNT=$BASE/before/mnt
BCONFIG=$BASE/before/phifs.ini
RANDOM_FILE=$BASE/random
SIZE_MIB=${BENCH_SIZE_MIB:-1024}	# the big file
NFILES=${BENCH_FILES:-10000}	# the small files

die() { echo "bench.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it drops caches and mounts)"
[ -x "$PHIFS" ] || die "no $PHIFS: build first (ninja -C build)"
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || die "BENCH_PHIFS_BEFORE: no program at $BEFORE"
for v in "$RUNS" "$SIZE_MIB" "$NFILES"; do
	case $v in '' | *[!0-9]* | 0) die "BENCH_RUNS, BENCH_SIZE_MIB and BENCH_FILES must be positive numbers" ;; esac
done
only() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
for k in $ONLY; do
	case $k in wzero | wrand | read | create | cached | ls | rm) ;;
	*) die "BENCH_ONLY: no measurement '$k' (wzero wrand read create cached ls rm)" ;;
	esac
done
{ only create || ! { only cached || only ls || only rm; }; } ||
	die "BENCH_ONLY: cached, ls and rm use the files create makes: add create"
only read && ! only wzero && ! only wrand &&
	die "BENCH_ONLY: read reads the file wzero or wrand writes: add one"
size_label="$SIZE_MIB MiB"
[ $((SIZE_MIB % 1024)) -ne 0 ] || size_label="$((SIZE_MIB / 1024)) GiB"

is_mounted() {
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}

cleanup() {
	local m left=0
	for m in "$MNT" "$BMNT"; do
		if is_mounted "$m"; then
			"$PHIFS" umount "$m" || fusermount3 -u -z "$m" || true
		fi
		if is_mounted "$m"; then
			echo "bench.sh: $m is still mounted; leaving $BASE in place" >&2
			left=1
		fi
	done
	[ "$left" -eq 1 ] || rm -rf "$BASE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BASE"
avail_kib=$(df -Pk "$BASE" | awk 'NR == 2 { print $4 }')
need_mib=$((3 * SIZE_MIB + 2 * RUNS * NFILES * 4 / 1024 + 512))	# 3 big files, 2 x RUNS dirs of small ones
[ "$avail_kib" -ge $((need_mib * 1024)) ] ||
	die "needs $need_mib MiB free under $(dirname "$BASE"), has $((avail_kib / 1024)) MiB"

# make_fs BIN DIR CONFIG MNT [LINES]: a fresh filesystem in DIR, mounted
# at MNT, with LINES added to [filesystem]
make_fs() {
	mkdir -p "$2/cache" "$2/region" "$4"
	cat >"$3" <<EOF
[filesystem]
cache_dir = $2/cache
cache_size = 8G
key_file = $2/key
${5:-}

[region bench]
url = dir:$2/region
EOF
	"$1" mkfs "$3" >/dev/null
	"$1" mount "$3" "$4" >&2
}
mkdir -p "$PLAIN"
make_fs "$PHIFS" "$BASE" "$CONFIG" "$MNT"
TARGETS=(phifs plain)
if [ -n "$BEFORE" ]; then
	make_fs "$BEFORE" "$BASE/before" "$BCONFIG" "$BMNT" "$BEFORE_CONF"
	TARGETS=(phifs before plain)
fi

can_drop=1
if ! (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	can_drop=0
	echo "bench.sh: warning: cannot write /proc/sys/vm/drop_caches;" \
		"cold reads may be served from the page cache" >&2
fi

# Forget cached data: for phifs also unmount and mount again, which drops
# the FUSE side (kernel page cache and attributes of the mount).
cold() {
	if [ "$1" = phifs ]; then	# >&2: keep the daemon off $(...)'s pipe
		"$PHIFS" umount "$MNT" >&2
		"$PHIFS" mount "$CONFIG" "$MNT" >&2
	elif [ "$1" = before ]; then
		"$BEFORE" umount "$BMNT" >&2
		"$BEFORE" mount "$BCONFIG" "$BMNT" >&2
	fi
	sync
	if [ "$can_drop" -eq 1 ]; then
		echo 3 >/proc/sys/vm/drop_caches
	fi
}

# quiet: let every phifs finish sealing what earlier steps wrote (and
# queue the audit events they made), so that background work of one step
# or one target does not land in the timing of the next.
quiet() {
	"$PHIFS" sync "$CONFIG" >/dev/null
	[ -z "$BEFORE" ] || "$BEFORE" sync "$BCONFIG" >/dev/null
}

now() { date +%s.%N; }
# rate AMOUNT T0 T1: AMOUNT per second
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

dir_of() {
	case $1 in phifs) echo "$MNT" ;; before) echo "$BMNT" ;; *) echo "$PLAIN" ;; esac
}

# One run of each measurement; prints the value.
run_write() {	# TARGET SOURCE
	local d t0 t1
	d=$(dir_of "$1")
	rm -f "$d/big"
	sync
	[ "$2" = /dev/zero ] || cat "$2" >/dev/null	# source from memory
	quiet
	t0=$(now)
	dd if="$2" of="$d/big" bs=1M count="$SIZE_MIB" conv=fsync status=none
	t1=$(now)
	rate "$SIZE_MIB" "$t0" "$t1"
}

run_read() {	# TARGET
	local d t0 t1
	d=$(dir_of "$1")
	quiet
	cold "$1"
	t0=$(now)
	dd if="$d/big" of=/dev/null bs=1M status=none
	t1=$(now)
	rate "$SIZE_MIB" "$t0" "$t1"
}

RUN=0	# index of the current run, set by measure()
run_create() {	# TARGET
	local d t0 t1
	d=$(dir_of "$1")/small.$RUN
	mkdir "$d"
	sync
	quiet
	t0=$(now)
	/usr/bin/python3 - "$d" "$NFILES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
buf = os.urandom(4096)
for i in range(n):
    with open("%s/f%05d" % (d, i), "wb") as f:
        f.write(buf)
os.sync()
EOF
	t1=$(now)
	rate "$NFILES" "$t0" "$t1"
}

run_cached() {	# TARGET: read back the small files the page cache holds
	local d t0 t1
	d=$(dir_of "$1")/small.$((RUNS - 1))
	cat "$d"/* >/dev/null	# in the page cache now
	quiet
	t0=$(now)
	/usr/bin/python3 - "$d" <<'EOF'
import os, sys
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), "rb") as f:
        while f.read(4096):
            pass
EOF
	t1=$(now)
	rate "$(ls "$d" | wc -l)" "$t0" "$t1"
}

run_ls() {	# TARGET
	local d t0 t1
	d=$(dir_of "$1")/small.$((RUNS - 1))	# the last one run_create made
	cold "$1"
	t0=$(now)
	ls -l "$d" >/dev/null
	t1=$(now)
	secs "$t0" "$t1"
}

run_rm() {	# TARGET: delete one directory of small files run_create made
	local d t0 t1
	d=$(dir_of "$1")/small.$RUN
	sync
	quiet
	t0=$(now)
	rm -rf "$d"
	sync
	t1=$(now)
	secs "$t0" "$t1"
}

declare -A RESULT VALS

echo "bench.sh: generating $size_label of random data" >&2
head -c "${SIZE_MIB}M" /dev/urandom >"$RANDOM_FILE"

# Each run of a measurement on every target in turn, the first one
# changing from run to run, so that a noisy moment of the machine, or a
# drift over the runs, falls on all of them alike.
nt=${#TARGETS[@]}
for m in "wzero run_write /dev/zero" "wrand run_write $RANDOM_FILE" \
	"read run_read" "create run_create" "cached run_cached" "ls run_ls" \
	"rm run_rm"; do
	# shellcheck disable=SC2086  # words on purpose
	set -- $m
	only "$1" || continue
	for ((i = 0; i < RUNS; i++)); do
		RUN=$i
		for ((j = 0; j < nt; j++)); do
			t=${TARGETS[(i + j) % nt]}
			echo "bench.sh: $1 on $t, run $((i + 1)) of $RUNS" >&2
			VALS[$1,$t]+=" $("$2" "$t" "${@:3}")"
		done
	done
	for t in "${TARGETS[@]}"; do
		# shellcheck disable=SC2086  # the values, one word each
		RESULT[$1,$t]=$(median ${VALS[$1,$t]})
		echo "  $1 on $t:${VALS[$1,$t]} -> median ${RESULT[$1,$t]}" >&2
	done
	if [ -n "$BEFORE" ]; then	# runs i of phifs and before ran side by side
		# shellcheck disable=SC2086,SC2046  # the values, one word each
		RESULT[$1,pair]=$(median $(paste -d ' ' \
			<(printf '%s\n' ${VALS[$1,phifs]}) \
			<(printf '%s\n' ${VALS[$1,before]}) |
			awk '{ printf "%.3f\n", ($2 > 0 ? $1 / $2 : 0) }'))
		echo "  $1, phifs/before run by run -> median ${RESULT[$1,pair]}" >&2
	fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
row() {	# LABEL UNIT KEY
	only "$3" || return 0
	local p=${RESULT[$3,phifs]} q=${RESULT[$3,plain]} b
	if [ -n "$BEFORE" ]; then
		b=${RESULT[$3,before]}
		printf '%-34s %12s %12s %12s %8s %9s  %s\n' "$1" "$p" "$b" "$q" \
			"$(ratio "$p" "$q")" "${RESULT[$3,pair]}" "$2"
	else
		printf '%-34s %12s %12s %8s  %s\n' "$1" "$p" "$q" "$(ratio "$p" "$q")" "$2"
	fi
}

echo
echo "phifs vs plain directory in $(dirname "$BASE") ($(df -PT "$BASE" | awk 'NR == 2 { print $2 }'))," \
	"median of $RUNS runs, $(uname -r)"
if [ -n "$BEFORE" ]; then
	printf '%-34s %12s %12s %12s %8s %9s  %s\n' operation phifs before plain ratio vs-before unit
else
	printf '%-34s %12s %12s %8s  %s\n' operation phifs plain ratio unit
fi
row "write $size_label, zeros, fsync" MiB/s wzero
row "write $size_label, random data, fsync" MiB/s wrand
row "read $size_label, cold" MiB/s read
row "create $NFILES 4 KiB files + sync" files/s create
row "read $NFILES 4 KiB files, cached" files/s cached
row "ls -l $NFILES entries, cold" seconds ls
row "rm -rf $NFILES 4 KiB files + sync" seconds rm
echo "ratio = phifs/plain: below 1 is slower for MiB/s and files/s, above 1 is slower for seconds"
[ -z "$BEFORE" ] ||
	echo "vs-before = the median of phifs/before over the runs, each run of the two side by side; read the same way"
