#!/usr/bin/env bash
# bench/audit_query.sh - how long `phifs audit` takes to answer over a
# large trail.
#
#   ninja -C build && bash bench/audit_query.sh        (as root)
#
# Makes a fresh phifs in /var/tmp/phifs-auditq.PID (one dir: region,
# patient_folders = /Patients/*) with 100 patient folders of one file
# each, and fills the trail with AUDIT_EVENTS events (default 1,000,000):
# opens of those files, one event each, spread evenly over the patients.
# Then, unmounted, it times AUDIT_RUNS (default 3) runs of each query and
# prints the medians:
#
#   by patient   --patient P42: one patient's events (1 in 100)
#   by path      --path /Patients/P42: the same events, by path
#   everything   every event, as json, to /dev/null: the reference the
#                other two are given as a ratio of
#
# It also prints the bytes the region's a/ segments take per 1,000
# events.  Removes everything it made, and always unmounts.
set -eu
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHIFS=${BENCH_PHIFS:-$ROOT/build/tools/phifs}
EVENTS=${AUDIT_EVENTS:-1000000}
RUNS=${AUDIT_RUNS:-3}
BASE=${BENCH_TMP:-/var/tmp}/phifs-auditq.$$
MNT=$BASE/mnt
CONFIG=$BASE/phifs.ini
PATIENTS=100

die() { echo "audit_query.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it mounts)"
[ -x "$PHIFS" ] || die "no $PHIFS: build first (ninja -C build)"
for v in "$EVENTS" "$RUNS"; do
	case $v in '' | *[!0-9]* | 0) die "AUDIT_EVENTS and AUDIT_RUNS must be positive numbers" ;; esac
done

is_mounted() {
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}

cleanup() {
	if is_mounted "$MNT"; then
		"$PHIFS" umount "$MNT" || fusermount3 -u -z "$MNT" || true
	fi
	if is_mounted "$MNT"; then
		echo "audit_query.sh: $MNT is still mounted; leaving $BASE in place" >&2
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
cache_size = 2G
key_file = $BASE/key
patient_folders = /Patients/*

[region bench]
url = dir:$BASE/region
EOF
"$PHIFS" mkfs "$CONFIG" >/dev/null
"$PHIFS" mount "$CONFIG" "$MNT" >&2

echo "making $EVENTS events over $PATIENTS patients..." >&2
t0=$(date +%s.%N)
/usr/bin/python3 - "$MNT" "$EVENTS" "$PATIENTS" <<'PY'
import os, sys

mnt, events, patients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = []
for p in range(patients):
    d = os.path.join(mnt, "Patients", "P%d" % p)
    os.makedirs(d)
    f = os.path.join(d, "record")
    with open(f, "wb") as fh:
        fh.write(b"x")
    files.append(f)
# each open is one event (a handle that moves no byte has no release)
for i in range(events - 3 * patients):
    os.close(os.open(files[i % patients], os.O_RDONLY))
PY
t1=$(date +%s.%N)
# every event sealed into the region's a/ segments, for their size
"$PHIFS" sync "$CONFIG" >&2
"$PHIFS" umount "$MNT" >&2
awk -v a="$t0" -v b="$t1" -v n="$EVENTS" \
	'BEGIN { printf "made in %.1f s (%.0f events/s through the mount)\n", b - a, n / (b - a) }' >&2

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# time_query OUT_LINES ARGS...: seconds of one run; the lines it printed
# go to the file OUT_LINES
time_query() {
	local out=$1 t0 t1
	shift
	t0=$(now)
	"$PHIFS" audit "$CONFIG" "$@" >"$BASE/out"
	t1=$(now)
	wc -l <"$BASE/out" >"$out"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

declare -A med lines
for q in patient path all; do
	ts=()
	for _ in $(seq "$RUNS"); do
		case $q in
		patient) ts+=("$(time_query "$BASE/n" --patient P42)") ;;
		path) ts+=("$(time_query "$BASE/n" --path /Patients/P42)") ;;
		all) ts+=("$(time_query "$BASE/n" --format json)") ;;
		esac
	done
	med[$q]=$(median "${ts[@]}")
	lines[$q]=$(cat "$BASE/n")
done

total=$("$PHIFS" audit "$CONFIG" --format json | wc -l)
abytes=$(find "$BASE/region/a" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
printf '%s events in the trail; medians of %s runs\n' "$total" "$RUNS"
awk -v b="$abytes" -v n="$total" 'BEGIN { printf "sealed in the region: %d bytes of a/ segments, %.0f bytes per 1,000 events\n", b, b * 1000 / n }'

printf '%-12s %9s %9s %9s\n' query seconds events "x all"
for q in patient path all; do
	awk -v q="$q" -v t="${med[$q]}" -v n="${lines[$q]}" -v r="${med[all]}" \
		'BEGIN { printf "%-12s %9.3f %9d %9.2f\n", q, t, n, t / r }'
done
