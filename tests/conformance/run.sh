#!/bin/sh
# run.sh PHIFS SYSCALLS - mount a fresh phifs and run the syscall checks.
#
# Makes a private directory holding a config, a cache_dir, two dir: regions,
# a key file (made by mkfs) and a mountpoint; formats and mounts there; runs SYSCALLS on the mount
# with its TAP going straight to stdout; and always unmounts (EXIT trap)
# and removes the directory.  Our own chatter goes to stderr so that
# stdout stays TAP.  Exits with the status of SYSCALLS.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: run.sh PHIFS SYSCALLS" >&2
	exit 2
fi
phifs=$1
prog=$2

if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
	echo "1..0 # SKIP needs root and /dev/fuse"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/phifs-conformance.XXXXXX")
mnt=$tmp/mnt

is_mounted() {
	grep -q " $mnt fuse" /proc/mounts
}

cleanup() {
	status=$?
	trap - EXIT INT TERM
	if is_mounted; then
		"$phifs" umount "$mnt" >&2 ||
			fusermount3 -u -z "$mnt" >&2 || true
	fi
	if is_mounted; then
		echo "run.sh: $mnt is still mounted; leaving $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$tmp/cache" "$tmp/region-a" "$tmp/region-b" "$mnt"
cat > "$tmp/phifs.ini" <<CONFIG
[filesystem]
cache_dir = $tmp/cache
cache_size = 16G
block_size = 1M
key_file = $tmp/key
seal_delay = 1s

[region a]
url = dir:$tmp/region-a

[region b]
url = dir:$tmp/region-b
CONFIG

"$phifs" mkfs "$tmp/phifs.ini" >&2
"$phifs" mount "$tmp/phifs.ini" "$mnt" -o allow_other >&2

status=0
"$prog" "$mnt" || status=$?
exit "$status"
