# shellcheck shell=bash
# scripts/deps.sh - the Debian 12 packages phifs needs to build, test and run.
#
# Sourced by scripts/demo.sh, scripts/test.sh and bench/bench.sh, which then
# call phifs_deps.  Run directly (`bash scripts/deps.sh`) it does the same.
#
# phifs_deps: as root, installs whatever is missing (apt-get update once,
# then one apt-get install).  As another user, names what is missing, prints
# the command to run as root and returns 1.  Returns 0 when all is there.
#
# Add a package by appending it to PHIFS_DEPS; keep this the one list.

PHIFS_DEPS=(
	build-essential
	meson
	ninja-build
	pkg-config
	man-db
	groff-base
	libfuse3-dev
	fuse3
	liblmdb-dev
	libinih-dev
	libzstd-dev
	libssl-dev
	python3
	python3-pytest
	attr
	acl
	rsync
	libcurl4-openssl-dev
	libexpat1-dev
	curl
	swift
	swift-proxy
	swift-object
	swift-container
	swift-account
	python3-swift
	memcached
	awscli
	prometheus
	libsystemd-dev
	debhelper
	dpkg-dev
	fakeroot
	lintian
	# test_samba.py runs its own smbd (on a machine with systemd, installing
	# samba also starts Debian's smbd and nmbd services)
	samba
	samba-vfs-modules
	smbclient
	samba-testsuite
	libnss-wrapper
	iproute2
	strace
	# test_audit_syslog.py runs its own rsyslogd with a TLS listener (on a
	# machine with systemd, installing rsyslog also starts Debian's)
	rsyslog
	rsyslog-openssl
)

# Print the packages of PHIFS_DEPS that are not installed, one per line.
phifs_deps_missing() {
	local p status
	for p in "${PHIFS_DEPS[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || status=
		if [ "$status" != "install ok installed" ]; then
			printf '%s\n' "$p"
		fi
	done
}

phifs_deps() {
	local missing
	missing=$(phifs_deps_missing | tr '\n' ' ')
	missing=${missing% }
	[ -n "$missing" ] || return 0

	if [ "$(id -u)" -ne 0 ]; then
		echo "phifs: missing Debian packages: $missing" >&2
		echo "phifs: install them as root with:" >&2
		echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing" >&2
		return 1
	fi

	echo "phifs: installing missing packages: $missing"
	apt-get update || return 1
	# shellcheck disable=SC2086  # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing || return 1

	missing=$(phifs_deps_missing | tr '\n' ' ')
	missing=${missing% }
	if [ -n "$missing" ]; then
		echo "phifs: still missing after apt-get install: $missing" >&2
		return 1
	fi
}

# Run directly rather than sourced: do the work and exit with its status.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -eu
	phifs_deps
fi
