#!/usr/bin/env bash
# bench/peers.sh - phifs against its peers on loopback S3 servers: s3fs
# and rclone (--vfs-cache-mode full) on the same OpenStack Swift/s3api
# servers the tests use, a plain FUSE passthrough (libfuse's
# passthrough_ll.c example, compiled here) and a plain directory (ext4).
#
#   sudo bash bench/peers.sh                       (the full table)
#   sudo PEERS_ROUNDS=1 PEERS_SCALE=small bash bench/peers.sh   (a few minutes)
#
# As root it installs what is missing (scripts/deps.sh, s3fs, rclone),
# builds an optimised phifs in build-rel, starts the servers on 127.0.0.1
# (tests/lib/s3server.sh), mounts everything under
# PEERS_TMP/phifs-peers.PID, runs every workload on every system in turn
# in each round, checks every byte read back, and prints a table of
# medians and ratios.  It never judges the timings.  On exit, also on
# failure or Ctrl-C, it unmounts and stops what it started and removes
# its folder.  See bench/README.md for the rows and the PEERS_* settings.
set -u
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
S3SERVER=$ROOT/tests/lib/s3server.sh
WORK=$ROOT/bench/peers_work.py
PY=/usr/bin/python3
ROUNDS=${PEERS_ROUNDS:-3}
SCALE=${PEERS_SCALE:-full}
BASE=${PEERS_TMP:-/var/tmp}/phifs-peers.$$
LOG=$BASE/log
REGION=phifs-peers
ALL_SYSTEMS=(phifs s3fs rclone passthrough ext4)
read -r -a WANTED <<<"${PEERS_SYSTEMS:-${ALL_SYSTEMS[*]}}"

say() { echo "peers.sh: $*" >&2; }
die() { say "$*"; KEEP_LOGS=1; exit 1; }

case $SCALE in
full)	N_CREATE=10000 N_SMALL=1000 N_LEGACY=200 N_CT=500 BIG_MIB=100
	SEQ_MIB=1024 MIX=100:40:1000 ;;
small)	N_CREATE=500 N_SMALL=100 N_LEGACY=20 N_CT=20 BIG_MIB=16
	SEQ_MIB=64 MIX=10:4:50 ;;
*)	die "PEERS_SCALE must be full or small, not '$SCALE'" ;;
esac
N_CREATE=${PEERS_CREATE:-$N_CREATE}
N_SMALL=${PEERS_SMALL:-$N_SMALL}
N_LEGACY=${PEERS_LEGACY:-$N_LEGACY}
N_CT=${PEERS_CT:-$N_CT}
BIG_MIB=${PEERS_BIG_MIB:-$BIG_MIB}
SEQ_MIB=${PEERS_SEQ_MIB:-$SEQ_MIB}
MIX=${PEERS_MIX:-$MIX}
for v in "$ROUNDS" "$N_CREATE" "$N_SMALL" "$N_LEGACY" "$N_CT" "$BIG_MIB" "$SEQ_MIB"; do
	case $v in '' | *[!0-9]* | 0) die "PEERS_ROUNDS and the sizes must be positive numbers" ;; esac
done
case $MIX in
[0-9]*:[0-9]*:[0-9]*) ;;
*) die "PEERS_MIX must be CT:PDF:LETTERS, such as 100:40:1000" ;;
esac
IFS=: read -r MIX_CT MIX_PDF MIX_LET <<<"$MIX"
for s in "${WANTED[@]}"; do
	case " ${ALL_SYSTEMS[*]} " in *" $s "*) ;; *) die "PEERS_SYSTEMS: unknown system '$s'" ;; esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (it mounts, drops caches and installs what is missing)"

# ---- state, and the cleanup that undoes it -----------------------------

declare -A MNT PID GEN UP
for s in "${ALL_SYSTEMS[@]}"; do
	MNT[$s]=$BASE/mnt/$s
	PID[$s]=
	GEN[$s]=0
	UP[$s]=0
done
MNT[ext4]=$BASE/ext4
SEQ_MNT=$BASE/mnt/phifs-seq	# the phifs of the sequential write, see README
SERVERS=()
PHIFS=
KEEP_LOGS=0	# 1 once something failed: the logs outlive the run

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

alive() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "${state%% *}" != Z ]
}

wait_gone() {	# PID: up to 30 s
	local i
	[ -n "$1" ] || return 0
	for ((i = 0; i < 300; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

cleanup() {
	local s m left=0 srv
	trap - EXIT INT TERM
	set +e
	for m in "${MNT[@]}" "$SEQ_MNT"; do
		is_mounted "$m" || continue
		case $m in
		"${MNT[phifs]}" | "$SEQ_MNT") "$PHIFS" umount "$m" >>"$LOG/umount.log" 2>&1 ;;
		esac
		is_mounted "$m" && fusermount3 -u "$m" 2>>"$LOG/umount.log"
		is_mounted "$m" && { sleep 1; fusermount3 -u -z "$m" 2>>"$LOG/umount.log"; }
	done
	for s in "${ALL_SYSTEMS[@]}"; do
		[ -n "${PID[$s]}" ] || continue
		alive "${PID[$s]}" && kill -TERM "${PID[$s]}"
		wait_gone "${PID[$s]}" || kill -KILL "${PID[$s]}"
	done
	for srv in "${SERVERS[@]}"; do
		bash "$S3SERVER" stop "$srv" >&2
	done
	for m in "${MNT[@]}" "$SEQ_MNT"; do
		if is_mounted "$m"; then
			say "$m is still mounted; leaving $BASE in place"
			left=1
		fi
	done
	if [ "$left" -eq 0 ]; then
		if [ "$KEEP_LOGS" -eq 1 ] && [ -d "$LOG" ]; then
			rm -rf "$BASE-logs"
			mv "$LOG" "$BASE-logs" && say "the logs are kept in $BASE-logs"
		fi
		rm -rf "$BASE"
	fi
}
trap cleanup EXIT
trap 'say "interrupted; cleaning up"; exit 130' INT TERM

# ---- what it needs -----------------------------------------------------

install_deps() {
	local p missing=()
	[ -n "${PEERS_NO_INSTALL:-}" ] && return 0
	# shellcheck source=scripts/deps.sh
	. "$ROOT/scripts/deps.sh"
	phifs_deps >&2 || die "cannot install the packages phifs needs (scripts/deps.sh)"
	for p in s3fs rclone; do
		[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}" >&2 ||
		{ apt-get update >&2 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			"${missing[@]}" >&2; } ||
		say "warning: cannot install ${missing[*]}; going on without what is missing"
}

build_phifs() {
	if [ -n "${PEERS_PHIFS:-}" ]; then
		PHIFS=$PEERS_PHIFS
		[ -x "$PHIFS" ] || die "PEERS_PHIFS: no program at $PHIFS"
		return 0
	fi
	PHIFS=$ROOT/build-rel/tools/phifs
	if [ ! -d "$ROOT/build-rel" ]; then
		meson setup "$ROOT/build-rel" --buildtype=release >&2 ||
			die "meson setup build-rel --buildtype=release failed"
	fi
	ninja -C "$ROOT/build-rel" >&2 || die "the release build of phifs failed"
}

build_passthrough() {	# the example as libfuse3-dev ships it, maybe gzipped
	local dir=/usr/share/doc/libfuse3-dev/examples f
	mkdir -p "$BASE/passthrough"
	for f in "$dir"/*; do
		case $f in
		*.gz) zcat "$f" >"$BASE/passthrough/$(basename "${f%.gz}")" ;;
		*) cp "$f" "$BASE/passthrough/" ;;
		esac
	done
	[ -f "$BASE/passthrough/passthrough_ll.c" ] || {
		say "no passthrough_ll.c in $dir (libfuse3-dev); no passthrough column"
		return 1
	}
	# shellcheck disable=SC2046  # pkg-config gives several words
	gcc -O2 -o "$BASE/passthrough/passthrough_ll" "$BASE/passthrough/passthrough_ll.c" \
		$(pkg-config fuse3 --cflags --libs) >"$LOG/passthrough-build.log" 2>&1 || {
		say "cannot compile passthrough_ll.c (see below); no passthrough column"
		cat "$LOG/passthrough-build.log" >&2
		return 1
	}
}

# ---- servers -----------------------------------------------------------

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=()
PORT=
pick_port() {	# sets PORT: a base port with the next five free, apart from those taken
	local base i ok u
	for base in $(shuf -i 20000-29990 -n 100); do
		ok=1
		for u in "${USED_PORTS[@]}"; do
			[ "$base" -le $((u + 5)) ] && [ $((base + 5)) -ge "$u" ] && ok=0
		done
		for ((i = 0; i <= 5 && ok; i++)); do port_free $((base + i)) || ok=0; done
		[ "$ok" -eq 1 ] && { USED_PORTS+=("$base"); PORT=$base; return 0; }
	done
	die "no free ports on 127.0.0.1"
}

# A server whose storage servers are slow to listen can refuse the bucket
# creation on a busy machine: up to three tries, each on new ports.
start_server() {	# NAME BUCKET...: sets PORT
	local name=$1 try
	shift
	SERVERS+=("$BASE/s3-$name")
	for try in 1 2 3; do
		pick_port
		bash "$S3SERVER" start "$BASE/s3-$name" "$PORT" "$REGION" "$@" \
			>>"$LOG/s3server.log" 2>&1 && return 0
		say "S3 server $name did not start (try $try of 3; see $LOG/s3server.log)"
	done
	tail -n 20 "$LOG/s3server.log" >&2
	die "cannot start the S3 server $name"
}

# ---- the systems: mount, unmount, settle, cold -------------------------

wait_mounted() {	# SYSTEM: until its mount is there, its process alive
	local s=$1 i
	for ((i = 0; i < 300; i++)); do
		is_mounted "${MNT[$s]}" && return 0
		[ -n "${PID[$s]}" ] && ! alive "${PID[$s]}" && return 1
		sleep 0.1
	done
	return 1
}

phifs_conf() {	# FILE CACHE_DIR REGION-SECTIONS...
	local file=$1 cache=$2
	shift 2
	mkdir -p "$cache"
	{
		printf '[filesystem]\ncache_dir = %s\ncache_size = 8G\n' "$cache"
		printf 'key_file = %s\nlog_file = %s\n' "$BASE/phifs/key" "$LOG/phifs.log"
		printf '%s\n' "$@"
	} >"$file"
}

s3_region() {	# NAME PORT BUCKET
	printf '\n[region %s]\nurl = s3://%s\nendpoint = http://127.0.0.1:%s\n' "$1" "$3" "$2"
	printf 'region = %s\npath_style = true\ncredentials_file = %s\n' "$REGION" "$BASE/cred"
}

phifs_write_conf() {
	phifs_conf "$BASE/phifs/phifs.ini" "$BASE/phifs/cache${GEN[phifs]}" \
		"$(s3_region a "$PORT_A" phifs-a)" "$(s3_region b "$PORT_B" phifs-b)"
}

rclone_env() {
	env -u AWS_CA_BUNDLE RCLONE_CONFIG=/dev/null RCLONE_CONFIG_PEERS_TYPE=s3 \
		RCLONE_CONFIG_PEERS_PROVIDER=Other \
		RCLONE_CONFIG_PEERS_ENDPOINT="http://127.0.0.1:$PORT_R" \
		RCLONE_CONFIG_PEERS_ACCESS_KEY_ID=test:tester \
		RCLONE_CONFIG_PEERS_SECRET_ACCESS_KEY=testing \
		RCLONE_CONFIG_PEERS_REGION="$REGION" \
		RCLONE_CONFIG_PEERS_FORCE_PATH_STYLE=true "$@"
}

mount_sys() {	# SYSTEM
	local s=$1 m=${MNT[$1]}
	mkdir -p "$m"
	case $s in
	phifs)
		"$PHIFS" mount "$BASE/phifs/phifs.ini" "$m" >>"$LOG/phifs-mount.log" 2>&1 ;;
	s3fs)
		AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing \
			s3fs peers-s3fs "$m" -f -o "url=http://127.0.0.1:$PORT_S,use_path_request_style,endpoint=$REGION" \
			</dev/null >>"$LOG/s3fs.log" 2>&1 &
		PID[$s]=$!
		wait_mounted "$s" ;;
	rclone)
		rclone_env rclone mount peers:peers-rclone "$m" --vfs-cache-mode full \
			--cache-dir "$BASE/rclone/cache${GEN[rclone]}" \
			--rc --rc-addr "127.0.0.1:$PORT_RC" --rc-no-auth \
			--log-file "$LOG/rclone.log" </dev/null >>"$LOG/rclone.out" 2>&1 &
		PID[$s]=$!
		wait_mounted "$s" ;;
	passthrough)
		"$BASE/passthrough/passthrough_ll" -f -o "source=$BASE/passthrough/src" "$m" \
			</dev/null >>"$LOG/passthrough.log" 2>&1 &
		PID[$s]=$!
		wait_mounted "$s" ;;
	ext4) mkdir -p "$m" ;;
	esac
}

umount_sys() {	# SYSTEM
	local s=$1 m=${MNT[$1]}
	case $s in
	ext4) return 0 ;;
	phifs) "$PHIFS" umount "$m" >>"$LOG/phifs-mount.log" 2>&1 || return 1 ;;
	*)
		fusermount3 -u "$m" 2>>"$LOG/umount.log" || return 1
		wait_gone "${PID[$s]}" || return 1
		PID[$s]= ;;
	esac
}

rclone_idle() {	# no upload running or queued
	curl -sf -X POST "http://127.0.0.1:$PORT_RC/vfs/stats" |
		"$PY" -c 'import json, sys
d = json.load(sys.stdin)["diskCache"]
sys.exit(0 if d["uploadsInProgress"] == 0 and d["uploadsQueued"] == 0 else 1)'
}

# Until what was written is in the cloud (timed for the "until in the
# cloud" rows; otherwise run untimed, so that one system's uploads never
# run in another's measurement).
to_cloud() {	# SYSTEM
	local i
	case $1 in
	phifs) "$PHIFS" sync "$BASE/phifs/phifs.ini" >>"$LOG/phifs-sync.log" 2>&1 ;;
	rclone)
		for ((i = 0; i < 36000; i++)); do
			rclone_idle && return 0
			sleep 0.1
		done
		return 1 ;;
	*) sync ;;	# s3fs: in the cloud when close returned
	esac
}

CAN_DROP=1
drop_caches() {
	sync
	[ "$CAN_DROP" -eq 0 ] || echo 3 >/proc/sys/vm/drop_caches
}

# Cold: a fresh mount with a fresh local cache, kernel caches dropped.
# phifs: everything synced, unmounted, and `phifs recover` into a new
# cache_dir (metadata back from region a; content is fetched as it is
# read).  rclone: its uploads finished, a new --cache-dir.
cold() {	# SYSTEM
	local s=$1 old
	[ "$s" = ext4 ] && { drop_caches; return 0; }
	[ "$s" = phifs ] || [ "$s" = rclone ] && { to_cloud "$s" || return 1; }
	umount_sys "$s" || return 1
	case $s in
	phifs)
		old=$BASE/phifs/cache${GEN[phifs]}
		GEN[phifs]=$((GEN[phifs] + 1))
		phifs_write_conf
		"$PHIFS" recover "$BASE/phifs/phifs.ini" --region a >>"$LOG/phifs-recover.log" 2>&1 ||
			return 1
		rm -rf "$old" ;;
	rclone)
		rm -rf "$BASE/rclone/cache${GEN[rclone]}"
		GEN[rclone]=$((GEN[rclone] + 1)) ;;
	esac
	drop_caches
	mount_sys "$s"
}

setup_sys() {	# SYSTEM: prints nothing; 1 when it cannot be used
	local s=$1
	case $s in
	phifs)
		mkdir -p "$BASE/phifs"
		phifs_write_conf
		"$PHIFS" mkfs "$BASE/phifs/phifs.ini" >>"$LOG/phifs-mkfs.log" 2>&1 || return 1
		# the sequential write: the same binary, one dir: region on disk
		mkdir -p "$BASE/phifs-seq/region" "$SEQ_MNT"
		phifs_conf "$BASE/phifs-seq/phifs.ini" "$BASE/phifs-seq/cache" \
			"$(printf '\n[region seq]\nurl = dir:%s' "$BASE/phifs-seq/region")"
		"$PHIFS" mkfs "$BASE/phifs-seq/phifs.ini" >>"$LOG/phifs-mkfs.log" 2>&1 || return 1
		"$PHIFS" mount "$BASE/phifs-seq/phifs.ini" "$SEQ_MNT" >>"$LOG/phifs-mount.log" 2>&1 ||
			return 1 ;;
	s3fs) command -v s3fs >/dev/null || { say "s3fs is not installed"; return 1; } ;;
	rclone) command -v rclone >/dev/null || { say "rclone is not installed"; return 1; } ;;
	passthrough) build_passthrough || return 1; mkdir -p "$BASE/passthrough/src" ;;
	esac
	mount_sys "$s"
}

# ---- measuring ---------------------------------------------------------

# The rows: key, unit (s: lower is better; rate: higher is better), text.
ROWS=(
	"create|rate|create $N_CREATE files of 4 KiB (files/s)"
	"rm|s|\`rm -rf\` of them"
	"small|s|write $N_SMALL × 4 KiB, until the writer returns"
	"legacy|s|the legacy save (write temp, fsync, rename) × $N_LEGACY"
	"ct|s|copy a CT series ($N_CT × 512 KiB) in"
	"bigread|s|$BIG_MIB MiB file, cold read from the cloud"
	"ctread|s|the CT series, cold read from the cloud"
	"smallread|s|$N_SMALL × 4 KiB, cold read from the cloud"
	"bigw|s|$BIG_MIB MiB written, until the writer returns"
	"bigcloud|+s|$BIG_MIB MiB written, then until in the cloud"
	"bigtotal|s|$BIG_MIB MiB: from the writer's start until in the cloud"
	"seq|rate|sequential write $SEQ_MIB MiB, cached (MiB/s)"
	"ls|s|\`ls -l\` of $N_SMALL cold files"
	"smallcloud|s|$N_SMALL files of 4 KiB: from the writer's start until in the cloud"
	"mixw|s|clinical mix ($MIX_CT CT slices, $MIX_PDF PDFs, $MIX_LET letters) in, until the writer returns"
	"mixcloud|s|clinical mix: from the writer's start until in the cloud"
	"mixread|s|clinical mix, cold read from the cloud"
	"rawget|s|$BIG_MIB MiB of phifs's largest objects in region a, raw GETs with curl, 4 at a time"
)
RESULTS=$BASE/results	# lines: ROW SYSTEM VALUE
FAILED=$BASE/failed	# lines: ROW SYSTEM ROUND

record() {	# ROW SYSTEM VALUE
	echo "$1 $2 $3" >>"$RESULTS"
	printf 'peers.sh: round %s  %-11s %-10s %s\n' "$ROUND" "$2" "$1" "$3" >&2
}

fail() {	# ROW SYSTEM WHAT
	echo "$1 $2 $ROUND" >>"$FAILED"
	KEEP_LOGS=1
	say "round $ROUND: $2: $1 failed: $3"
}

is_cloud() { case $1 in phifs | s3fs | rclone) return 0 ;; esac; return 1; }
is_local() { case $1 in phifs | passthrough | ext4) return 0 ;; esac; return 1; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a + b }'; }

work() { "$PY" "$WORK" "$BASE/pool" "$@" 2>>"$LOG/work.log"; }

# A system that failed to mount again is out for the rest of the run.
lost() {	# SYSTEM
	UP[$1]=0
	KEEP_LOGS=1
	say "$1: cannot mount it again (see the logs); leaving it out from here on"
}

writes() {	# SYSTEM: the write rows, in the round's folder
	local s=$1 d=${MNT[$1]}/r$ROUND t t0
	mkdir -p "$d" || { fail all "$s" "mkdir"; return; }
	if t=$(work write "$d/small" "small:$N_SMALL" $((ROUND * 10 + 1))); then
		record small "$s" "$t"
		if is_cloud "$s"; then
			t0=$EPOCHREALTIME
			if to_cloud "$s"; then
				record smallcloud "$s" "$(add "$t" "$(secs "$t0" "$EPOCHREALTIME")")"
			else
				fail smallcloud "$s" "the upload did not finish"
			fi
		fi
	else
		fail small "$s" "$(tail -n 1 "$LOG/work.log")"
	fi
	to_cloud "$s"
	if t=$(work legacy "$d/legacy" "$N_LEGACY" $((ROUND * 10 + 2))); then
		record legacy "$s" "$t"
	else
		fail legacy "$s" "$(tail -n 1 "$LOG/work.log")"
	fi
	to_cloud "$s"
	if t=$(work write "$d/ct" "ct:$N_CT" $((ROUND * 10 + 3))); then
		record ct "$s" "$t"
	else
		fail ct "$s" "$(tail -n 1 "$LOG/work.log")"
	fi
	to_cloud "$s"
	if is_cloud "$s"; then
		if t=$(work write "$d/big" "big:$BIG_MIB" $((ROUND * 10 + 4))); then
			record bigw "$s" "$t"
			t0=$EPOCHREALTIME
			if to_cloud "$s"; then
				t0=$(secs "$t0" "$EPOCHREALTIME")
				record bigcloud "$s" "$t0"
				record bigtotal "$s" "$(add "$t" "$t0")"
			else
				fail bigcloud "$s" "the upload did not finish"
			fi
		else
			fail bigw "$s" "$(tail -n 1 "$LOG/work.log")"
		fi
	fi
	if t=$(work write "$d/mix" "mix:$MIX" $((ROUND * 10 + 5))); then
		record mixw "$s" "$t"
		if is_cloud "$s"; then
			t0=$EPOCHREALTIME
			if to_cloud "$s"; then
				record mixcloud "$s" "$(add "$t" "$(secs "$t0" "$EPOCHREALTIME")")"
			else
				fail mixcloud "$s" "the upload did not finish"
			fi
		fi
	else
		fail mixw "$s" "$(tail -n 1 "$LOG/work.log")"
	fi
	to_cloud "$s"
	is_local "$s" || return 0
	if t=$(work write "$d/create" "small:$N_CREATE" $((ROUND * 10 + 6))); then
		record create "$s" "$(awk -v n="$N_CREATE" -v t="$t" 'BEGIN { printf "%.1f", n / t }')"
		to_cloud "$s"
		t0=$EPOCHREALTIME
		if rm -rf "$d/create"; then
			record rm "$s" "$(secs "$t0" "$EPOCHREALTIME")"
		else
			fail rm "$s" "rm -rf"
		fi
	else
		fail create "$s" "$(tail -n 1 "$LOG/work.log")"
	fi
	to_cloud "$s"
	seq_write "$s"
}

seq_write() {	# SYSTEM: dd of the random file (read first, so from memory)
	local s=$1 d=${MNT[$1]}/r$ROUND t0 t1
	[ "$s" = phifs ] && d=$SEQ_MNT
	cat "$BASE/seqsrc" >/dev/null
	t0=$EPOCHREALTIME
	if dd if="$BASE/seqsrc" of="$d/seq" bs=1M conv=fsync status=none 2>>"$LOG/work.log"; then
		t1=$EPOCHREALTIME
		record seq "$s" "$(awk -v n="$SEQ_MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')"
	else
		fail seq "$s" "dd"
	fi
	rm -f "$d/seq"
	if [ "$s" = phifs ]; then
		"$PHIFS" sync "$BASE/phifs-seq/phifs.ini" >>"$LOG/phifs-sync.log" 2>&1
	else
		sync
	fi
}

cold_read() {	# ROW SYSTEM SET SALT-OFFSET FOLDER
	local row=$1 s=$2 t
	[ "${UP[$s]}" -eq 1 ] || return 0
	cold "$s" || { lost "$s"; return 0; }
	if t=$(work read "${MNT[$s]}/r$ROUND/$5" "$3" $((ROUND * 10 + $4))); then
		record "$row" "$s" "$t"
	else
		fail "$row" "$s" "$(tail -n 1 "$LOG/work.log")"
	fi
}

check() {	# SYSTEM SET SALT-OFFSET FOLDER: read back, untimed
	work read "${MNT[$1]}/r$ROUND/$4" "$2" $((ROUND * 10 + $3)) >/dev/null ||
		fail "check-$4" "$1" "$(tail -n 1 "$LOG/work.log")"
}

reads() {	# SYSTEM: the cold rows
	local s=$1 t0
	cold "$s" || { lost "$s"; return; }
	t0=$EPOCHREALTIME
	if ls -l "${MNT[$s]}/r$ROUND/small" >/dev/null 2>>"$LOG/work.log"; then
		record ls "$s" "$(secs "$t0" "$EPOCHREALTIME")"
	else
		fail ls "$s" "ls -l"
	fi
	if ! is_cloud "$s"; then	# no timing: only check what was written
		check "$s" "small:$N_SMALL" 1 small
		check "$s" "ct:$N_CT" 3 ct
		check "$s" "mix:$MIX" 5 mix
		return 0
	fi
	cold_read smallread "$s" "small:$N_SMALL" 1 small
	cold_read ctread "$s" "ct:$N_CT" 3 ct
	cold_read bigread "$s" "big:$BIG_MIB" 4 big
	[ "$s" = phifs ] && raw_gets
	cold_read mixread "$s" "mix:$MIX" 5 mix
}

# The reference for phifs's cold sequential read: what the same server
# gives a plain client.  Region a's largest objects (packs), as many as
# make BIG_MIB, got whole with one curl making 4 requests at a time (the
# read-ahead threads of phifs are 4); the time is scaled to BIG_MIB.
raw_gets() {
	local list total keys t0 t u args=()
	list=$(bash "$S3SERVER" sign "$BASE/s3-a" GET /phifs-a 2>>"$LOG/rawget.log" |
		"$PY" -c '
import re, sys
xml = sys.stdin.read()
objs = sorted(((int(s), k) for k, s in re.findall(
    r"<Key>([^<]*)</Key>.*?<Size>([0-9]+)</Size>", xml, re.S)), reverse=True)
want, got = int(sys.argv[1]) << 20, 0
for size, key in objs:
    if got >= want:
        break
    got += size
    print(size, key)
' "$BIG_MIB")
	[ -n "$list" ] || { fail rawget phifs "no objects listed"; return; }
	total=$(awk '{ s += $1 } END { print s }' <<<"$list")
	keys=$(awk '{ print "/phifs-a/" $2 }' <<<"$list")
	# shellcheck disable=SC2086
	while read -r u; do
		args+=(-o /dev/null "$u")
	done < <(bash "$S3SERVER" presign "$BASE/s3-a" GET $keys 2>>"$LOG/rawget.log")
	t0=$EPOCHREALTIME
	if curl -sf --parallel --parallel-max 4 "${args[@]}" 2>>"$LOG/rawget.log"; then
		t=$(secs "$t0" "$EPOCHREALTIME")
		record rawget phifs "$(awk -v t="$t" -v n="$total" -v m="$BIG_MIB" \
			'BEGIN { printf "%.4f", t * m * 1048576 / n }')"
	else
		fail rawget phifs "curl"
	fi
}

# ---- the table ---------------------------------------------------------

median() {	# ROW SYSTEM
	[ -f "$RESULTS" ] || return 0
	awk -v r="$1" -v s="$2" '$1 == r && $2 == s { print $3 }' "$RESULTS" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

fmt() {	# VALUE UNIT
	[ -n "$1" ] || return 0
	awk -v v="$1" -v u="$2" 'BEGIN {
		p = (u == "+s") ? "+" : ""
		if (v >= 100) printf "%s%.0f", p, v; else if (v >= 10) printf "%s%.1f", p, v;
		else printf "%s%.2f", p, v }'
}

# How many times better phifs is than OTHER (above 1: phifs is ahead).
ratio() {	# PHIFS OTHER UNIT
	[ -n "$1" ] && [ -n "$2" ] || return 0
	awk -v p="$1" -v o="$2" -v u="$3" 'BEGIN {
		r = (u == "rate") ? (o > 0 ? p / o : -1) : (p > 0 ? o / p : -1)
		if (r < 0) printf "-"; else printf "%.2f×", r }'
}

table() {
	local row key unit text s v p best b peer cells big
	printf '\n| work (medians of %s interleaved rounds, seconds unless said) |' "$ROUNDS"
	for s in "${ALL_SYSTEMS[@]}"; do printf ' %s |' "$s"; done
	printf ' phifs vs best peer | phifs vs passthrough |\n|---|'
	for s in "${ALL_SYSTEMS[@]}"; do printf -- '---|'; done
	printf -- '---|---|\n'
	for row in "${ROWS[@]}"; do
		IFS='|' read -r key unit text <<<"$row"
		cells=
		for s in "${ALL_SYSTEMS[@]}"; do
			v=$(median "$key" "$s")
			[ -n "$v" ] || { [ -f "$FAILED" ] && awk -v r="$key" -v s="$s" '$1 == r && $2 == s { f = 1 } END { exit !f }' "$FAILED" && v=failed; }
			if [ "$v" = failed ]; then cells+=" failed |"; else cells+=" $(fmt "$v" "$unit") |"; fi
		done
		p=$(median "$key" phifs)
		best=
		for peer in s3fs rclone; do
			b=$(median "$key" "$peer")
			[ -n "$b" ] || continue
			if [ -z "$best" ] || awk -v b="$b" -v c="$best" -v u="$unit" \
				'BEGIN { exit !((u == "rate") ? b > c : b < c) }'; then
				best=$b
			fi
		done
		printf '| %s |%s %s | %s |\n' "$text" "$cells" "$(ratio "$p" "$best" "$unit")" \
			"$(ratio "$p" "$(median "$key" passthrough)" "$unit")"
	done
	cat <<EOF

Ratios: how many times better phifs does (above 1: phifs is ahead), against
the better of s3fs and rclone in that row, and against the passthrough.
"+" rows: seconds after the writer returned. "failed": every run of that
cell failed (see the lines above and the logs). An empty cell: not run.
phifs's sequential write goes to a second phifs (same binary, a dir:
region), so that its data does not fill the loopback servers.
EOF
	big=$(median bigread phifs)
	p=$(median rawget phifs)
	[ -n "$big" ] && [ -n "$p" ] &&
		printf '\nphifs cold-reads the %s MiB file at %s the rate of raw GETs of its objects (4 at a time).\n' \
			"$BIG_MIB" "$(ratio "$big" "$p" s)"
	return 0
}

# ---- main --------------------------------------------------------------

mkdir -p "$BASE" "$LOG" || die "cannot make $BASE"
install_deps
build_phifs
if ! (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	CAN_DROP=0
	say "warning: cannot write /proc/sys/vm/drop_caches; cold reads may come from the page cache"
fi

need_mib=$((SEQ_MIB * 3 + ROUNDS * (N_CT / 2 + BIG_MIB + MIX_CT + MIX_PDF * 2 + 100) * 5 + 1024))
avail_kib=$(df -Pk "$BASE" | awk 'NR == 2 { print $4 }')
[ "$avail_kib" -ge $((need_mib * 1024)) ] ||
	die "needs about $need_mib MiB free under $(dirname "$BASE"), has $((avail_kib / 1024)) MiB"

say "making the random data"
pool_mib=$((BIG_MIB + 64))
[ "$pool_mib" -ge $((N_CT / 2 + 64)) ] || pool_mib=$((N_CT / 2 + 64))
head -c "${pool_mib}M" /dev/urandom >"$BASE/pool"
head -c "${SEQ_MIB}M" /dev/urandom >"$BASE/seqsrc"
printf 'access_key_id = test:tester\nsecret_access_key = testing\n' >"$BASE/cred"
chmod 600 "$BASE/cred"

# Four servers: phifs's two regions, and one each for s3fs and rclone,
# so that no bucket's data fills another's tmpfs.
say "starting the S3 servers on 127.0.0.1"
wanted() { case " ${WANTED[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
if wanted phifs; then
	start_server a phifs-a
	PORT_A=$PORT
	start_server b phifs-b
	PORT_B=$PORT
fi
if wanted s3fs; then
	start_server s peers-s3fs
	PORT_S=$PORT
fi
if wanted rclone; then
	start_server r peers-rclone
	PORT_R=$PORT
	pick_port
	PORT_RC=$PORT
fi

SYSTEMS=()
for s in "${WANTED[@]}"; do
	if setup_sys "$s"; then
		UP[$s]=1
		SYSTEMS+=("$s")
		say "$s: mounted"
	else
		KEEP_LOGS=1
		say "$s: cannot be set up or mounted (see the logs); the table has no $s column"
		for f in "$LOG/$s"*.log; do [ -s "$f" ] && tail -n 5 "$f" >&2; done
	fi
done
[ ${#SYSTEMS[@]} -gt 0 ] || die "no system could be mounted"
[ "${UP[phifs]}" -eq 1 ] || say "warning: phifs itself is not measured"

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	# a different system goes first in each round
	n=${#SYSTEMS[@]}
	order=()
	for ((i = 0; i < n; i++)); do order+=("${SYSTEMS[$(((i + ROUND - 1) % n))]}"); done
	say "round $ROUND of $ROUNDS: writes (${order[*]})"
	for s in "${order[@]}"; do
		[ "${UP[$s]}" -eq 1 ] && writes "$s"
	done
	say "round $ROUND of $ROUNDS: cold reads"
	for s in "${order[@]}"; do
		[ "${UP[$s]}" -eq 1 ] && reads "$s"
	done
done

table
if [ -f "$FAILED" ]; then
	say "some measurements failed (above)"
	exit 1
fi
