/*
 * config.h - the phifs INI configuration, parsed once by tools/.
 *
 * The parser is table driven: every key has a name, a type, an offset into
 * struct phi_config (or, for a [region NAME] key, into struct
 * backend_region, the one structure backend/ opens a region from), a
 * default and a help line.
 * Keys are a contract with users' files: add, never rename.
 *
 *   [filesystem]
 *   cache_dir  = PATH      required; LMDB and block store live here
 *   cache_size = SIZE      upper bound for the local store (default 20G)
 *   block_size = SIZE      fixed at mkfs (default 1M; 4K..16M, power of two)
 *   key_file   = PATH      unlock with this key file instead of a
 *                          passphrase (mkfs creates it if absent)
 *   seal_delay = TIME      idle time before a block is sealed (default 5s;
 *                          1ms..1h)
 *   uploaders  = N         uploads at once (default 4; 1..64)
 *   pack_size  = SIZE      size of the objects sent (default 4M; 64K..64M)
 *   dirty_limit = SIZE     unsealed bytes that start sealing at once
 *                          (default 0 = cache_size/4; else block_size or
 *                          more, below cache_size)
 *   metadata_interval = TIME  metadata changes reach the regions within
 *                          this (default 30s; 100ms..1h)
 *   retention  = PERIOD    how long history is kept; `phifs versions`
 *                          lists moments this far back (default 30d;
 *                          1s..36500d)
 *   lease_time = TIME      a writable mount's lease in the regions lives
 *                          this long unless renewed (default 5m; 1s..1h)
 *   log_file   = PATH      a mount in the background appends its log
 *                          lines to this file instead of syslog
 *   metrics_listen = ADDR  serve Prometheus metrics over HTTP on
 *                          HOST:PORT (a loopback address unless
 *                          metrics_allow_remote = true)
 *   mountpoint = PATH      where `phifs mount CONFIG` (no MOUNTPOINT
 *                          argument) mounts, as phifs@.service does
 *   audit      = BOOL      record the audit trail (default on)
 *   patient_folders = GLOB|DEPTH  which folders name a patient in the
 *                          audit trail: a glob under the root, or a
 *                          depth such as 1 (default none)
 *   audit_syslog = local | tls://HOST:PORT  forward each audit event live
 *                          as an RFC 5424 message (default unset: off)
 *   audit_syslog_ca_file = PATH  CA that signed the receiver's
 *                          certificate (default: the system's CA store)
 *   audit_syslog_cert_file, audit_syslog_key_file = PATH  a client
 *                          certificate and its key (mutual TLS)
 *
 *   [region NAME]          one per region; NAME is [A-Za-z0-9_.-]{1,64}
 *   url = dir:PATH | s3://BUCKET[/PREFIX]
 *   endpoint, region, path_style, allow_http, credentials_file, ca_file,
 *   gc_credentials_file   (S3 settings; validated for form only for now)
 *
 * SIZE is a decimal number with an optional binary suffix K, M, G, T
 * (optionally followed by "iB" or "B"), e.g. 4096, 512K, 1M, 20G.
 * TIME is a decimal number with an optional unit ms, s, m or h; without a
 * unit it is seconds: 500ms, 5s, 5, 2m.  PERIOD is a TIME that may also
 * be in days: 30d.
 */
#ifndef PHI_CONFIG_H
#define PHI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "backend.h"

#define PHI_MAX_REGIONS 16

/* The longest path a [retention] rule may name, with its NUL. */
#define PHI_RULE_PATH_MAX 4096

/* One line of [retention]: every version of a file under path is kept
 * by gc for period_ms after it was replaced or deleted. */
struct phi_rule {
	char *path;		/* absolute, no trailing '/' but "/" */
	uint64_t period_ms;
	int line;		/* where the file says so */
};

/* Why path (a [retention] rule's, a hold's) cannot name a file or folder
 * of the filesystem: not absolute, too long, or with empty, "." or ".."
 * parts; NULL when it can.  One trailing '/' is allowed. */
const char *phi_rule_path_error(const char *path);

struct phi_config {
	char *path;		/* the file it came from */
	char *cache_dir;	/* absolute path */
	uint64_t cache_size;
	uint32_t block_size;
	int block_size_line;	/* line block_size was set on; 0 when the
				   file leaves it out (the default) */
	char *key_file;		/* absolute path, or NULL: passphrase */
	unsigned seal_delay_ms;
	unsigned seal_quiet_ms;
	unsigned uploaders;
	unsigned seal_threads;	/* 0: one per core */
	uint64_t pack_size;
	uint64_t dirty_limit;	/* 0 = cache_size / 4 (the cache's default) */
	unsigned metadata_interval_ms;
	uint64_t retention_ms;
	uint64_t audit_retention_ms;	/* gc keeps audit segments this long */
	unsigned lease_time_ms;	/* the lease expires this long after its
				   last renewal (lease.c) */
	char *log_file;		/* absolute path, or NULL: syslog */
	char *metrics_listen;	/* HOST:PORT as phi_parse_listen() takes
				   it, or NULL: no metrics */
	int metrics_allow_remote;	/* 1: metrics_listen may be an address
					   other than loopback */
	char *mountpoint;	/* absolute path, or NULL: given to mount */
	struct phi_rule *rules;	/* [retention], in file order */
	int nrules;
	int audit;		/* 1: the mount records the audit trail */
	int local_seal;		/* 1: the local store is sealed (default) */
	char *patient_folders;	/* audit_patients_parse() accepts it, or
				   NULL: no patient folders */
	char *audit_syslog;	/* phi_parse_syslog() accepts it, or NULL:
				   events are not forwarded */
	char *audit_syslog_ca_file;	/* absolute path, or NULL: the
					   system's CA store */
	char *audit_syslog_cert_file;	/* absolute paths of a client
					   certificate (PEM, chain) */
	char *audit_syslog_key_file;	/* and its key, both or neither */
	int nregions;
	struct backend_region regions[PHI_MAX_REGIONS];	/* in file order;
							   released with cfg */
	int region_line[PHI_MAX_REGIONS];	/* line of each [region]
						   header, for messages */
};

/*
 * Parse the file at path into *cfg.  On failure returns PHI_ECONFIG (or
 * -errno when the file cannot be read) and writes one line into err,
 * naming the file, line and key: "clinic.ini:4: cache_size: bad size 'x'
 * (use a number with K, M, G or T)".  cfg is released on failure.
 * Only a regular file is read (a FIFO or a device is refused without
 * blocking: PHI_ECONFIG, "not a regular file"); a line holding a NUL
 * byte is refused (PHI_ECONFIG, naming the line).
 */
int phi_config_load(struct phi_config *cfg, const char *path, char *err,
		    size_t errlen);

/* Where audit_syslog sends events. */
struct phi_syslog {
	int tls;		/* 0: local syslog (/dev/log), 1: tls:// */
	char host[256];		/* tls: a name or a numeric address */
	char port[6];		/* tls: 1 to 65535, as text */
};

/*
 * Parse audit_syslog's value: "local", or "tls://HOST:PORT" with HOST a
 * name, an IPv4 address or an IPv6 one in brackets.  NULL on success,
 * else why not, for a message (*out zeroed).
 */
const char *phi_parse_syslog(const char *s, struct phi_syslog *out);

/* An address to listen on, as metrics_listen gives it. */
struct phi_listen {
	struct sockaddr_storage addr;	/* AF_INET or AF_INET6, port set */
	socklen_t len;
	int loopback;		/* 127.0.0.0/8, ::1 (or ::ffff:127.x) */
};

/*
 * Parse HOST:PORT into *out: HOST a numeric IPv4 address, an IPv6 one in
 * brackets, or localhost (127.0.0.1); PORT 1 to 65535.  NULL on success,
 * else why not, for a message (*out zeroed).
 */
const char *phi_parse_listen(const char *s, struct phi_listen *out);

/* Free what phi_config_load() allocated. */
void phi_config_release(struct phi_config *cfg);

/* Parse SIZE as described above; 0 on success, -EINVAL otherwise. */
int phi_parse_size(const char *s, uint64_t *out);

/* v as a SIZE the way a user writes it: "1M", "64K", "1536K", "4097". */
void phi_format_size(uint64_t v, char *buf, size_t len);

/* Parse TIME as described above into milliseconds; 0 on success,
 * -EINVAL otherwise (*ms untouched). */
int phi_parse_duration(const char *s, uint64_t *ms);

/* Parse PERIOD (TIME, or a number of days with d, weeks with w, years
 * of 365 days with y) into milliseconds; 0 on success, -EINVAL otherwise
 * (*ms untouched). */
int phi_parse_period(const char *s, uint64_t *ms);

/*
 * A moment given on the command line (--at), into ms since the epoch:
 *
 *   2026-11-29T10:00:00Z        ISO 8601 in UTC; also +01:00, -0500, +01
 *   2026-11-29T10:00:00.250Z    with a fraction (beyond ms it is cut)
 *   2026-11-29T10:00:00         local time (TZ); seconds may be left out
 *   2026-11-29                  local midnight; a space may replace T
 *   -90s -30m -2h -3d           that long before now_ms (a unit is needed)
 *   now                         now_ms
 *
 * 0 on success, -EINVAL otherwise (*ms untouched): impossible dates
 * (Feb 30), times before 1970.
 */
int phi_parse_moment(const char *s, int64_t now_ms, int64_t *ms);

/* ms since the epoch as "2026-11-29T10:00:03.120Z" (UTC, always 24
 * characters for years 1970..9999) and a NUL. */
void phi_format_moment(int64_t ms, char out[32]);

/* Print the key table with defaults and help (for `phifs help config`). */
void phi_config_print_help(void);

#endif
