#!/usr/bin/env bash
# scripts/test.sh - build phifs and run every test.  Run as root:
#
#   bash scripts/test.sh [MESON-TEST-ARGS...]      e.g. --suite unit
#
# Installs missing Debian packages, configures build/ (wiping a broken one),
# builds, runs `meson test` two tests at a time (PHIFS_TEST_JOBS),
# then builds build-asan/ with AddressSanitizer and UBSan and runs every
# test again, then builds build-tsan/ with ThreadSanitizer and runs the
# unit tests a third time (PHIFS_NO_SANITIZE=1 skips both), and ends with
# the line "N passed, N failed" (", N skipped" when some were) counted
# from all runs' JUnit logs.  Exits non-zero if the build or any
# test failed, or if no test ran.
#
# Every test of the run makes its directories and mountpoints under one
# fresh directory, $PHIFS_TEST_TMP (also exported as TMPDIR); at the end
# phifs mounts that crashed tests left there, or under build*/, are
# cleared, and the directory is removed.  Nothing else is ever unmounted:
# other people's tests and live mounts may run on the same machine.
#
# Sourced (`. scripts/test.sh`), it only defines its functions.
set -eu

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Print the mountpoints of TYPE (or of any type, if TYPE is empty) at or
# below the given directories, one a line.
mounts_under() {	# TYPE DIR...
	local want=$1 dir mp type rest
	local -a dirs=()
	shift
	for dir in "$@"; do
		if [ -d "$dir" ]; then
			dirs+=("$(cd "$dir" && pwd -P)")
		fi
	done
	[ "${#dirs[@]}" -gt 0 ] || return 0
	while read -r _ mp type rest; do
		[ -z "$want" ] || [ "$type" = "$want" ] || continue
		mp=$(printf '%b' "$mp")	# /proc/mounts writes a space as \040
		for dir in "${dirs[@]}"; do
			case "$mp/" in
			"${dir%/}"/*)
				printf '%s\n' "$mp"
				break
				;;
			esac
		done
	done < /proc/mounts
}

# Lazily unmount the phifs mounts (type fuse.phifs) at or below the given
# directories: the ones a crashed test of this run left behind.  Mounts
# anywhere else are never touched.  WHEN says when, for the warning.
clear_stale_mounts() {	# WHEN DIR...
	local when=$1 mp n=0
	shift
	while IFS= read -r mp; do
		echo "test.sh: warning: stale FUSE mount $when the run: $mp; unmounting" >&2
		fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" || true
		n=$((n + 1))
	done < <(mounts_under fuse.phifs "$@")
	[ "$n" -eq 0 ] || echo "test.sh: warning: cleared $n stale mount(s)" >&2
}

# Configure DIR with meson OPTIONS: set them up, or set them on a working
# build directory made before.
configure() {	# DIR [OPTIONS...]
	local dir=$1
	shift
	if [ ! -e "$dir" ]; then
		meson setup "$dir" "$@"
	elif [ -f "$dir/build.ninja" ] && meson configure "$dir" >/dev/null 2>&1; then
		[ $# -eq 0 ] || meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		echo "test.sh: $dir/ is not a usable meson build directory; wiping it" >&2
		if ! meson setup --wipe "$dir" "$@"; then
			rm -rf "$dir"
			meson setup "$dir" "$@"
		fi
	fi
}

# Build DIR and run its tests; only this run's logs may be counted.
run_suite() {	# DIR [MESON-TEST-ARGS...]
	local dir=$1
	shift
	ninja -C "$dir" || return
	mkdir -p "$dir/meson-logs"
	rm -f "$dir"/meson-logs/*.junit.xml "$dir"/meson-logs/testlog*.json
	meson test -C "$dir" --print-errorlogs --num-processes "$JOBS" "$@"
}

# Print the MESON-TEST-ARGS of the ThreadSanitizer run, one a line: the
# given ones with their --suite choices replaced by the unit suite.  Fails,
# printing nothing, when they choose suites and unit is not among them.
unit_args() {	# [MESON-TEST-ARGS...]
	local named=0 unit=0 suite
	local -a out=()

	while [ $# -gt 0 ]; do
		suite=
		case $1 in
		--suite)
			suite=${2:-}
			[ $# -lt 2 ] || shift
			;;
		--suite=*)
			suite=${1#--suite=}
			;;
		*)
			out+=("$1")
			;;
		esac
		if [ -n "$suite" ]; then
			named=1
			case $suite in
			unit | *:unit) unit=1 ;;
			esac
		fi
		shift
	done
	if [ "$named" -eq 1 ] && [ "$unit" -eq 0 ]; then
		return 1
	fi
	printf '%s\n' "${out[@]}" --suite unit
}

# Tests run two at a time (PHIFS_TEST_JOBS=N for another number): each
# makes its own directories, mountpoints and servers on ports it checked
# free, and most of a mounting test's time is spent waiting on fsync,
# daemons starting and stopping, and deadlines, not on a core.
JOBS=${PHIFS_TEST_JOBS:-2}
case $JOBS in
'' | *[!0-9]* | 0)
	echo "test.sh: PHIFS_TEST_JOBS must be a positive number" >&2
	exit 2
	;;
esac

# Sourced by a test of this script: functions only.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cd "$ROOT"

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
phifs_deps

# This run's directory: every test makes its own directory in it.  Other
# uids (allow_other tests) must reach mountpoints through it.
PHIFS_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/phifs-test.XXXXXX")
chmod 755 "$PHIFS_TEST_TMP"
export PHIFS_TEST_TMP TMPDIR=$PHIFS_TEST_TMP

# Clear this run's stale mounts and remove its directory, unless something
# is still mounted there.
finish_run() {
	clear_stale_mounts "${1:-after}" "$PHIFS_TEST_TMP" "$ROOT/build" \
		"$ROOT/build-asan"
	if [ -n "$(mounts_under "" "$PHIFS_TEST_TMP")" ]; then
		echo "test.sh: $PHIFS_TEST_TMP still has mounts; left in place" >&2
	else
		rm -rf "$PHIFS_TEST_TMP"
	fi
}
trap finish_run EXIT

clear_stale_mounts before "$ROOT/build" "$ROOT/build-asan"
rc=0
# The test hooks (tools/include/hooks.h) are compiled in for the tests
# only: a cheap passphrase KDF and fault-injecting regions.
configure build -Dtest_hooks=true
run_suite build "$@" || rc=$?
clear_stale_mounts after "$PHIFS_TEST_TMP" "$ROOT/build"
logdirs=(build/meson-logs)

# The same tests once more, built with AddressSanitizer and UBSan: the
# daemon too runs instrumented under the integration tests.
# PHIFS_NO_SANITIZE=1 skips this for a quicker local run.
if [ -z "${PHIFS_NO_SANITIZE:-}" ]; then
	echo "test.sh: again under AddressSanitizer and UBSan (build-asan/)"
	configure build-asan -Db_sanitize=address,undefined -Dbuildtype=debug \
		-Dtest_hooks=true
	# An undefined-behaviour report fails the test that caused it, as
	# a memory error does.
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_suite build-asan "$@" || rc=$?
	clear_stale_mounts "after the sanitizer run" "$PHIFS_TEST_TMP" \
		"$ROOT/build-asan"
	logdirs+=(build-asan/meson-logs)
fi

# The unit tests a third time, built with ThreadSanitizer: races between
# the cache's threads (folder, sealer, uploaders, mender) and its callers.
# A race report fails the test that caused it (exit status 66).  LMDB is
# not instrumented; it locks through pthread mutexes, which TSan sees.
if [ -z "${PHIFS_NO_SANITIZE:-}" ] && targs=$(unit_args "$@"); then
	echo "test.sh: the unit tests under ThreadSanitizer (build-tsan/)"
	mapfile -t tsan_args <<<"$targs"
	configure build-tsan -Db_sanitize=thread -Dtest_hooks=true
	TSAN_OPTIONS=second_deadlock_stack=1 \
		run_suite build-tsan "${tsan_args[@]}" || rc=$?
	logdirs+=(build-tsan/meson-logs)
fi

# Count test cases.  TAP subtests are testcases of their own in the JUnit
# log.  A test meson judged bad without a failing testcase there (a TAP
# program that crashed after its last "ok", a plain test that timed out) is
# counted as a failure from meson's JSON log.
count=0
/usr/bin/python3 - "${logdirs[@]}" <<'EOF' || count=$?
import glob, json, os, sys
import xml.etree.ElementTree as ET

logdirs = sys.argv[1:]
passed = failed = skipped = 0
failures = []   # (classname, name) of failed testcases
passes = []     # (classname, name) of passed ones
def logs_of(pattern):
    return [p for d in logdirs for p in sorted(glob.glob(os.path.join(d, pattern)))]

for path in logs_of("*.junit.xml"):
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
    except (OSError, ET.ParseError) as e:
        failed += 1
        failures.append((path, "unreadable: %s" % e))
        continue
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append((case.get("classname", ""), case.get("name", "")))
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
            passes.append((case.get("classname", ""), case.get("name", "")))

def covered(test):
    # A TAP test's cases have classname PROJECT.TEST; a plain test's case
    # is named TEST.
    return any(cls.endswith("." + test) or name == test
               for cls, name in failures)

bad = {"FAIL", "ERROR", "TIMEOUT", "INTERRUPT", "UNEXPECTEDPASS"}
extra = []
for path in logs_of("testlog*.json"):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                t = json.loads(line)
            except ValueError:
                continue
            test = t.get("name", "?")
            if t.get("result") not in bad or covered(test):
                continue
            extra.append((test, t["result"]))
            failed += 1
            # A plain test that timed out is a testcase without <failure>.
            for cls, name in passes:
                if name == test and not cls.endswith("." + test):
                    passes.remove((cls, name))
                    passed -= 1
                    break

for cls, name in failures:
    print("FAILED %s: %s" % (cls, name))
for name, result in extra:
    print("FAILED %s (meson: %s)" % (name, result))
if passed + failed == 0:
    print("test.sh: no test ran", file=sys.stderr)
    sys.stderr.flush()
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(1 if failed or passed + failed == 0 else 0)
EOF

if [ "$rc" -ne 0 ] || [ "$count" -ne 0 ]; then
	exit 1
fi
