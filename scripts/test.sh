#!/usr/bin/env bash
# scripts/test.sh - build phifs and run every test.  Run as root:
#
#   bash scripts/test.sh [MESON-TEST-ARGS...]      e.g. --suite unit
#
# Installs missing Debian packages, configures build/ (wiping a broken one),
# builds, runs `meson test` one test at a time (integration tests mount),
# then builds build-asan/ with AddressSanitizer and UBSan and runs every
# test again (PHIFS_NO_SANITIZE=1 skips that), and ends with the line
# "N passed, N failed" (", N skipped" when some were) counted from both
# runs' JUnit logs.  Exits non-zero if the build or any
# test failed, or if no test ran.  phifs mounts that crashed tests left
# under /tmp are cleared before and after the run.
set -eu

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
phifs_deps

# Unmount phifs mounts (type fuse.phifs) left behind under /tmp, $TMPDIR or
# build/ by a test that crashed; mounts elsewhere (a demo, a clinic's) are
# never touched.  $1 says when, for the warning.
clear_stale_mounts() {
	local when=$1 tmp=${TMPDIR:-/tmp} mp n=0
	tmp=${tmp%/}
	[ -n "$tmp" ] || tmp=/tmp
	while IFS= read -r mp; do
		mp=$(printf '%b' "$mp")	# /proc/mounts writes a space as \040
		echo "test.sh: warning: stale FUSE mount $when the run: $mp; unmounting" >&2
		fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" || true
		n=$((n + 1))
	done < <(awk -v a="/tmp/" -v b="$tmp/" -v c="$ROOT/build/" \
		'$3 == "fuse.phifs" && (index($2, a) == 1 || index($2, b) == 1 ||
		 index($2, c) == 1) { print $2 }' /proc/mounts)
	[ "$n" -eq 0 ] || echo "test.sh: warning: cleared $n stale mount(s)" >&2
}

# Configure DIR (with meson OPTIONS) unless it already is a working meson
# build directory.
configure() {	# DIR [OPTIONS...]
	local dir=$1
	shift
	if [ ! -e "$dir" ]; then
		meson setup "$dir" "$@"
	elif [ ! -f "$dir/build.ninja" ] || ! meson configure "$dir" >/dev/null 2>&1; then
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
	meson test -C "$dir" --print-errorlogs --num-processes 1 "$@"
}

clear_stale_mounts before
rc=0
configure build
run_suite build "$@" || rc=$?
clear_stale_mounts after
logdirs=(build/meson-logs)

# The same tests once more, built with AddressSanitizer and UBSan: the
# daemon too runs instrumented under the integration tests.
# PHIFS_NO_SANITIZE=1 skips this for a quicker local run.
if [ -z "${PHIFS_NO_SANITIZE:-}" ]; then
	echo "test.sh: again under AddressSanitizer and UBSan (build-asan/)"
	configure build-asan -Db_sanitize=address,undefined -Dbuildtype=debug
	# An undefined-behaviour report fails the test that caused it, as
	# a memory error does.
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_suite build-asan "$@" || rc=$?
	clear_stale_mounts "after the sanitizer run"
	logdirs+=(build-asan/meson-logs)
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
