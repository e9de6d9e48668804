#!/bin/bash
# run.sh S3SERVER PROGRAM - run the s3 driver's tests against a real server.
#
# Starts one Swift/s3api instance with S3SERVER (tests/lib/s3server.sh) in
# a private temporary directory, on five free consecutive ports picked from
# 127.0.0.1:18000-18999, with a bucket for the tests; runs PROGRAM with its
# TAP going straight to stdout; and always stops the server and removes
# the directory (EXIT trap), whatever happens.  Our own chatter goes to
# stderr.  Exits with PROGRAM's status.  Reports SKIP when Swift is not
# installed.
set -u

if [ $# -ne 2 ]; then
	echo "usage: run.sh S3SERVER PROGRAM" >&2
	exit 2
fi
s3server=$1
prog=$2
region=phifs-test-1
bucket=phifs-test

for p in swift-proxy-server swift-object-server swift-container-server \
	 swift-account-server memcached; do
	if ! command -v "$p" >/dev/null; then
		echo "1..0 # SKIP $p not installed (scripts/deps.sh installs it)"
		exit 0
	fi
done

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A base port with it and the next four free.
pick_port() {
	local base i ok
	for base in $(shuf -i 18000-18990 -n 40); do
		ok=1
		for i in 0 1 2 3 4; do
			port_free $((base + i)) || { ok=0; break; }
		done
		[ "$ok" -eq 1 ] && { echo "$base"; return 0; }
	done
	return 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/phifs-s3.XXXXXX")
srv=$tmp/server

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	bash "$s3server" stop "$srv" >&2 || status=1
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(pick_port) || {
	echo "1..0 # SKIP no free ports in 127.0.0.1:18000-18999"
	exit 0
}
echo "run.sh: starting Swift/s3api on 127.0.0.1:$port (region $region)" >&2
t0=$(date +%s%N)
if ! bash "$s3server" start "$srv" "$port" "$region" "$bucket" >&2; then
	echo "1..1"
	echo "not ok 1 - the S3 server did not start (see the log above)"
	exit 1
fi
echo "run.sh: server ready after $((($(date +%s%N) - t0) / 1000000)) ms" >&2

S3_PORT=$port S3_REGION=$region S3_BUCKET=$bucket S3_DIR=$srv \
	S3SERVER=$(realpath "$s3server") TMPDIR=$tmp "$prog"
