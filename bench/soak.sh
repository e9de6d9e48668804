#!/usr/bin/env bash
# bench/soak.sh - the crash-and-compare drill of tests/integration/
# test_trust.py, for hundreds of trials instead of CI's 30.
#
#   ninja -C build && bash bench/soak.sh [TRIALS]     (as root; default 300)
#
# Each trial runs a mixed workload on the mount (writes with and without
# fsync, overwrites of sealed and evicted blocks, truncates, renames,
# saves by rename, handles held open), kills the daemon with SIGKILL at a
# random moment, mounts again, runs `phifs sync`, and compares every file
# of the mount with a restore of / from each region; a third of the
# trials run with a 2 MiB cache, so that overwrites meet evicted blocks.
# A run ends with fsck --scrub.  Prints, per drill, the trials, the bytes
# the workload wrote and the divergences found (a divergence fails the
# run and names the file and the seed: PHIFS_SEED=N repeats it).
set -eu

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRIALS=${1:-300}
case $TRIALS in '' | *[!0-9]* | 0) echo "soak.sh: TRIALS must be a positive number" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "soak.sh: run as root (it mounts)" >&2; exit 1; }
[ -x "$ROOT/build/tools/phifs" ] || { echo "soak.sh: build first (ninja -C build)" >&2; exit 1; }

cd "$ROOT/tests/integration"
start=$(date +%s)
rc=0
PHIFS=$ROOT/build/tools/phifs PHIFS_TRUST_TRIALS=$TRIALS \
	/usr/bin/python3 -m pytest -p no:cacheprovider -q -s test_trust.py \
	-k crash_and_compare >"${TMPDIR:-/tmp}/soak.$$.log" 2>&1 || rc=$?
grep -E '^crash trials:|PHIFS_SEED=|differs|^(FAILED|ERROR)|passed|failed' \
	"${TMPDIR:-/tmp}/soak.$$.log" | grep -v '^#' | sort -u || true
echo "soak.sh: $(($(date +%s) - start)) s; full log in ${TMPDIR:-/tmp}/soak.$$.log"
exit "$rc"
