#!/bin/bash
# s3server.sh - a throwaway S3 server on 127.0.0.1 for tests: OpenStack
# Swift (proxy, account, container, object servers) with its s3api
# middleware and tempauth, plus a memcached.
#
#   s3server.sh start DIR PORT REGION [BUCKET...]
#	Writes configs, rings and storage under DIR (which must not exist
#	yet or be empty), starts the servers in the background and waits
#	until a SigV4-signed request is answered, then creates the buckets.
#	Prints "ready" and exits 0, or prints the servers' log tails and
#	exits 1 (stopping what it started).  The proxy (the S3 endpoint)
#	listens on PORT; account, container and object servers on PORT+1,
#	PORT+2, PORT+3; memcached on PORT+4: all five must be free.
#	REGION is the SigV4 signing region the server insists on.  Access
#	key "test:tester", secret "testing".
#   s3server.sh stop DIR
#	Kills the recorded processes (TERM, then KILL after 10 s), unmounts
#	DIR/srv if it mounted a tmpfs there, removes DIR.
#   s3server.sh pause DIR
#	Stops the proxy only (the S3 endpoint goes away, connections are
#	refused); the storage servers and what they hold stay.
#   s3server.sh resume DIR
#	Starts the proxy again and waits until it answers.
#   s3server.sh sign DIR METHOD PATH [FILE]
#	One signed request (body from FILE, default empty) to the server
#	of DIR; prints the HTTP status, then the body.  For checks by hand.
#   s3server.sh presign DIR METHOD PATH...
#	One presigned url per PATH, a line each (query auth,
#	UNSIGNED-PAYLOAD, valid for an hour), for another client (curl).
#
# Needs (Debian 12): swift swift-proxy swift-object swift-container
# swift-account python3-swift memcached (see scripts/deps.sh), and the
# global /etc/swift/swift.conf the swift package installs.  Storage needs
# user xattrs: as root on Linux 6.6+ a private tmpfs is mounted on DIR/srv
# (twice as fast as disk); otherwise DIR's own filesystem must have them
# (ext4 does).  Servers log to DIR/log/*.log.  Works as root (servers keep
# running as the current user) or as any user.
set -u

ACCESS_KEY=test:tester
SECRET_KEY=testing

die() {
	echo "s3server.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

# ---- signing (python3 stdlib only: python3 comes with swift) ----------

# py DIR ARGS...: run the signer with the instance's port and region.
py() {
	local dir=$1
	shift
	# shellcheck disable=SC1091
	. "$dir/instance.env"
	S3_PORT=$S3_PORT S3_REGION=$S3_REGION S3_ACCESS=$ACCESS_KEY \
		S3_SECRET=$SECRET_KEY /usr/bin/python3 - "$@" <<'PY'
import datetime, hashlib, hmac, http.client, os, sys, urllib.parse

port = int(os.environ["S3_PORT"])
region = os.environ["S3_REGION"]
access, secret = os.environ["S3_ACCESS"], os.environ["S3_SECRET"]
host = "127.0.0.1:%d" % port


def h(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signature(amz, string_to_sign):
    k = h(("AWS4" + secret).encode(), amz[:8])
    for part in (region, "s3", "aws4_request"):
        k = h(k, part)
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


def string_to_sign(amz, creq):
    scope = "%s/%s/s3/aws4_request" % (amz[:8], region)
    digest = hashlib.sha256(creq.encode()).hexdigest()
    return scope, "\n".join(["AWS4-HMAC-SHA256", amz, scope, digest])


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")


def enc(s):
    return urllib.parse.quote(s, safe="-_.~")


def sign_request(method, path, body):
    amz, sha = now(), hashlib.sha256(body).hexdigest()
    hdrs = {"host": host, "x-amz-content-sha256": sha, "x-amz-date": amz}
    names = sorted(hdrs)
    canon = "".join("%s:%s\n" % (n, hdrs[n]) for n in names)
    p, _, q = path.partition("?")
    creq = "\n".join([method, p, q, canon, ";".join(names), sha])
    scope, sts = string_to_sign(amz, creq)
    hdrs["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=%s/%s,SignedHeaders=%s,Signature=%s"
        % (access, scope, ";".join(names), signature(amz, sts)))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=hdrs)
    r = c.getresponse()
    return r.status, r.read()


def presign(method, path, expires):
    amz = now()
    scope = "%s/%s/s3/aws4_request" % (amz[:8], region)
    q = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
         "X-Amz-Credential": "%s/%s" % (access, scope),
         "X-Amz-Date": amz, "X-Amz-Expires": str(expires),
         "X-Amz-SignedHeaders": "host"}
    query = "&".join("%s=%s" % (enc(k), enc(v)) for k, v in sorted(q.items()))
    creq = "\n".join([method, path, query, "host:%s\n" % host, "host",
                      "UNSIGNED-PAYLOAD"])
    _, sts = string_to_sign(amz, creq)
    return "http://%s%s?%s&X-Amz-Signature=%s" % (host, path, query,
                                                  signature(amz, sts))


cmd = sys.argv[1]
if cmd == "sign":
    body = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else b""
    try:
        status, data = sign_request(sys.argv[2], sys.argv[3], body)
    except OSError as e:
        print("000\n%s" % e)
        sys.exit(1)
    print(status)
    sys.stdout.write(data.decode("utf-8", "replace"))
    sys.exit(0 if status < 300 else 1)
elif cmd == "presign":
    for path in sys.argv[4:]:
        print(presign(sys.argv[2], path, int(sys.argv[3])))
PY
}

# ---- start -------------------------------------------------------------

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Storage with user xattrs: a private tmpfs where we may mount one and the
# kernel gives tmpfs user xattrs (6.6+), else DIR's own filesystem.
make_storage() {
	local dir=$1 major minor
	mkdir -p "$dir/srv"
	IFS=. read -r major minor _ < <(uname -r)
	if [ "$(id -u)" -eq 0 ] &&
	   { [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "${minor%%[!0-9]*}" -ge 6 ]; }; } &&
	   mount -t tmpfs -o size=2g,mode=0755 s3server "$dir/srv"; then
		touch "$dir/mounted"
	fi
	mkdir -p "$dir/srv/d1"
	chown "$(id -un)" "$dir/srv" "$dir/srv/d1"
	/usr/bin/python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.phifs", b"1")' \
		"$dir/srv/d1" 2>/dev/null ||
		die "no user xattrs on the filesystem of $dir (Swift needs them; use ext4, or tmpfs on Linux 6.6+ as root)"
}

# Rings with Swift's Python RingBuilder: 0.6 s for the three, against 5.4 s
# for the nine swift-ring-builder runs (create, add, rebalance per ring;
# each run re-imports Swift), measured on the 2-core development machine.
make_rings() {
	local etc=$1 port=$2
	/usr/bin/python3 - "$etc" "$port" <<'PY'
import sys
from swift.common.ring import RingBuilder

etc, port = sys.argv[1], int(sys.argv[2])
for i, name in enumerate(("account", "container", "object")):
    b = RingBuilder(8, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
               "port": port + 1 + i, "device": "d1", "weight": 100,
               "meta": ""})
    b.rebalance()
    b.get_ring().save("%s/%s.ring.gz" % (etc, name))
PY
}

# [DEFAULT] shared by the four servers.
defaults() {
	local dir=$1 port=$2
	cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $(id -un)
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
log_level = ${S3SERVER_LOG_LEVEL:-WARNING}
log_udp_host = 127.0.0.1
log_udp_port = $((S3_PORT + 5))
EOF
}

write_configs() {
	local dir=$1 region=$2 i name
	mkdir -p "$dir/etc" "$dir/log"
	for i in 1 2 3; do
		name=$(echo account container object | cut -d' ' -f"$i")
		{
			defaults "$dir" $((S3_PORT + i))
			cat <<EOF

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name
EOF
		} > "$dir/etc/$name-server.conf"
	done
	{
		defaults "$dir" "$S3_PORT"
		cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $region
# virtual-host addressing as BUCKET.localhost:PORT (curl resolves
# *.localhost to loopback by itself)
storage_domain = localhost

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((S3_PORT + 4))

EOF
		for name in catch_errors gatekeeper healthcheck proxy-logging \
			    listing_formats bulk copy slo dlo versioned_writes; do
			printf '[filter:%s]\nuse = egg:swift#%s\n\n' "$name" \
				"$(echo "$name" | tr - _)"
		done
	} > "$dir/etc/proxy-server.conf"
}

# spawn DIR NAME CMD...: start CMD in the background, log and record it.
spawn() {
	local dir=$1 name=$2
	shift 2
	"$@" </dev/null >>"$dir/log/$name.log" 2>&1 &
	echo "$! $name" >> "$dir/pids"
}

# Running, and not a zombie waiting for this shell to reap it.
alive() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "${state%% *}" != Z ]
}

all_alive() {
	local pid name
	while read -r pid name; do
		alive "$pid" || { echo "$name"; return 1; }
	done < "$1/pids"
}

show_logs() {
	local f
	for f in "$1"/log/*.log; do
		[ -s "$f" ] || continue
		echo "---- ${f##*/} (last lines)"
		tail -n 15 "$f"
	done
}

# Every server listens: the proxy answering a listing (account server) says
# nothing of the container and object servers, which a slow start on a
# loaded machine may still be bringing up.
all_listening() {
	local p
	for p in 1 2 3 4; do
		port_free $((S3_PORT + p)) && return 1
	done
	return 0
}

wait_ready() {
	local dir=$1 i dead
	# shellcheck disable=SC1091
	. "$dir/instance.env"
	for i in $(seq 1 120); do
		if dead=$(all_alive "$dir"); then
			all_listening &&
				py "$dir" sign GET / >/dev/null 2>&1 && return 0
		else
			echo "s3server.sh: $dead exited" >&2
			return 1
		fi
		sleep 0.5
	done
	echo "s3server.sh: no answer to a signed request after 60 s" >&2
	return 1
}

# A 503 is the proxy finding a storage server not answering yet (it
# marks it down for a while): asked again for up to 30 s.  Anything else
# is final.
make_buckets() {
	local dir=$1 b out i
	shift
	for b in "$@"; do
		for i in $(seq 1 60); do
			out=$(py "$dir" sign PUT "/$b") && break
			if [ "${out%%$'\n'*}" != 503 ] || [ "$i" -eq 60 ]; then
				echo "s3server.sh: cannot create bucket $b: $out" >&2
				return 1
			fi
			sleep 0.5
		done
	done
}

start() {
	[ $# -ge 3 ] || usage
	local dir=$1 region=$3 p
	S3_PORT=$2
	shift 3
	case $S3_PORT in
	''|*[!0-9]*) die "bad port '$S3_PORT'" ;;
	esac
	[ -r /etc/swift/swift.conf ] ||
		die "/etc/swift/swift.conf is missing (apt-get install swift)"
	for p in swift-proxy-server swift-object-server swift-container-server \
		 swift-account-server memcached; do
		command -v "$p" >/dev/null || die "$p not found (see scripts/deps.sh)"
	done
	for p in 0 1 2 3 4; do
		port_free $((S3_PORT + p)) || die "port $((S3_PORT + p)) is in use"
	done
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
		die "$dir is not empty"
	fi
	mkdir -p "$dir" || die "cannot make $dir"
	dir=$(cd "$dir" && pwd)
	printf 'S3_PORT=%s\nS3_REGION=%s\n' "$S3_PORT" "$region" > "$dir/instance.env"
	: > "$dir/pids"
	make_storage "$dir"
	write_configs "$dir" "$region"
	make_rings "$dir/etc" "$S3_PORT" >"$dir/log/rings.log" 2>&1 ||
		{ cat "$dir/log/rings.log" >&2; stop "$dir"; exit 1; }
	# memcached refuses to run as root without -u
	local asroot=()
	[ "$(id -u)" -ne 0 ] || asroot=(-u root)
	spawn "$dir" memcached memcached -l 127.0.0.1 -p $((S3_PORT + 4)) \
		-U 0 -m 64 -t 1 "${asroot[@]}"
	for p in account container object proxy; do
		spawn "$dir" "$p" "swift-$p-server" "$dir/etc/$p-server.conf" -v
	done
	if wait_ready "$dir" && make_buckets "$dir" "$@"; then
		echo ready
		return 0
	fi
	show_logs "$dir" >&2
	stop "$dir"
	exit 1
}

# ---- pause and resume: the endpoint goes away, the data stays ----------

pause() {
	[ $# -eq 1 ] || usage
	local dir=$1 pid name i
	[ -f "$dir/pids" ] || die "$dir: no server there"
	while read -r pid name; do
		[ "$name" = proxy ] || continue
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 1 100); do
			alive "$pid" || break
			sleep 0.1
		done
		alive "$pid" && kill -KILL "$pid" 2>/dev/null
	done < "$dir/pids"
	grep -v ' proxy$' "$dir/pids" > "$dir/pids.new"
	mv "$dir/pids.new" "$dir/pids"
}

resume() {
	[ $# -eq 1 ] || usage
	local dir=$1
	[ -f "$dir/pids" ] || die "$dir: no server there"
	grep -q ' proxy$' "$dir/pids" && die "$dir: the proxy is running"
	spawn "$dir" proxy swift-proxy-server "$dir/etc/proxy-server.conf" -v
	wait_ready "$dir" || { show_logs "$dir" >&2; exit 1; }
	echo ready
}

# ---- stop --------------------------------------------------------------

stop() {
	[ $# -eq 1 ] || usage
	local dir=$1 pid name i left
	[ -d "$dir" ] || return 0
	if [ -f "$dir/pids" ]; then
		while read -r pid name; do
			kill -TERM "$pid" 2>/dev/null
		done < "$dir/pids"
		for i in $(seq 1 100); do
			left=0
			while read -r pid name; do
				alive "$pid" && left=1
			done < "$dir/pids"
			[ "$left" -eq 0 ] && break
			sleep 0.1
		done
		while read -r pid name; do
			alive "$pid" && kill -KILL "$pid" 2>/dev/null &&
				echo "s3server.sh: $name ($pid) needed SIGKILL" >&2
		done < "$dir/pids"
	fi
	if [ -e "$dir/mounted" ]; then
		umount "$dir/srv" || umount -l "$dir/srv" ||
			die "cannot unmount $dir/srv; leaving $dir"
	fi
	rm -rf "$dir"
}

case ${1:-} in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
pause) shift; pause "$@" ;;
resume) shift; resume "$@" ;;
sign) [ $# -ge 4 ] || usage; py "$2" sign "$3" "$4" ${5:+"$5"} ;;
presign) [ $# -ge 4 ] || usage; d=$2 m=$3; shift 3; py "$d" presign "$m" 3600 "$@" ;;
*) usage ;;
esac
