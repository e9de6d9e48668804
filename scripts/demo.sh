#!/usr/bin/env bash
# scripts/demo.sh - build phifs and mount a demo filesystem.  Run as root:
#
#   bash scripts/demo.sh
#
# Installs the Debian packages it needs, builds into build/, creates
# /var/tmp/phifs-demo/ (cache, two dir: regions, mount point, phifs.ini),
# makes the filesystem once (mkfs also makes its key file, so nothing asks
# for a passphrase), and mounts it at /var/tmp/phifs-demo/mnt.
# Running it again is harmless: what already exists is left as it is.
set -eu

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEMO=/var/tmp/phifs-demo
CONFIG=$DEMO/phifs.ini
KEY=$DEMO/key
MNT=$DEMO/mnt
PHIFS=$ROOT/build/tools/phifs

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: run this as root: bash scripts/demo.sh" >&2
	exit 1
fi

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
phifs_deps

if [ ! -f build/meson-private/coredata.dat ]; then
	meson setup build
fi
ninja -C build

# A mount whose daemon died stays in the mount table but cannot be entered
# ("Transport endpoint is not connected"): clear it so we can mount again.
if awk -v m="$MNT" '$2 == m { found = 1 } END { exit !found }' /proc/mounts &&
   ! stat "$MNT/." >/dev/null 2>&1; then
	echo "demo.sh: warning: clearing a dead mount at $MNT" >&2
	fusermount3 -u -z "$MNT"
fi

mkdir -p "$DEMO/cache" "$DEMO/region-a" "$DEMO/region-b" "$MNT"

if [ ! -e "$CONFIG" ]; then
	cat >"$CONFIG" <<EOF
# phifs demo configuration, written by scripts/demo.sh
[filesystem]
cache_dir = $DEMO/cache
cache_size = 2G
block_size = 1M
# made by phifs mkfs; whoever holds it can read the filesystem
key_file = $KEY

# Blocks are sealed (compressed, encrypted) and copied to both regions.
[region a]
url = dir:$DEMO/region-a

[region b]
url = dir:$DEMO/region-b
EOF
	echo "demo.sh: wrote $CONFIG"
fi

# A demo made before filesystems had keys cannot be mounted any more.
if ! grep -q '^key_file' "$CONFIG" ||
   { [ -e "$DEMO/cache/meta" ] && [ ! -e "$DEMO/cache/superblock" ]; }; then
	echo "demo.sh: $DEMO is from an older phifs without keys;" \
	     "unmount it, remove $DEMO and run demo.sh again" >&2
	exit 1
fi

if [ -e "$DEMO/cache/meta" ]; then
	echo "demo.sh: a filesystem already exists in $DEMO/cache"
else
	"$PHIFS" mkfs "$CONFIG"
fi

if mountpoint -q "$MNT"; then
	echo "demo.sh: already mounted at $MNT"
else
	"$PHIFS" mount "$CONFIG" "$MNT" -o allow_other,default_permissions
	if ! mountpoint -q "$MNT"; then
		echo "demo.sh: phifs mount returned but $MNT is not mounted" >&2
		exit 1
	fi
fi

if [ -z "$(ls -A "$MNT")" ]; then
	cat >"$MNT/README.txt" <<'EOF'
This folder is a phifs filesystem.  Files you put here live in the local
cache (/var/tmp/phifs-demo/cache); a few seconds after a change they are
sealed (compressed and encrypted) and copied to region-a and region-b.
Copy, edit, rename and delete them as in any folder.
EOF
	sync "$MNT/README.txt"
fi

cat <<EOF

phifs is mounted at $MNT
  config:   $CONFIG
  key file: $KEY (keep a copy somewhere safe)
  status:   $PHIFS status $CONFIG
  sync:     $PHIFS sync $CONFIG
  unmount:  $PHIFS umount $MNT
EOF
