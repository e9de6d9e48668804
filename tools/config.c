/*
 * config.c - load the phifs INI file into struct phi_config.
 *
 * inih does the lexing (comments, KEY = VALUE, whitespace); the rest is
 * ours, because what the installed inih hands a handler is too lossy for
 * messages that name a line: no line numbers, no call for a section that
 * has no keys, section names cut at 49 characters (a region name may have
 * 64), an indented line glued to the previous value, and a line longer
 * than its buffer silently split in two.  So inih reads through our own
 * reader, which counts lines, strips indentation, refuses overlong lines
 * and opens sections itself; the handler only ever sees keys.
 *
 * Invariants: the earliest error (lowest line) is the one reported, and
 * reading stops once there is one; ctx->sect is the section of the line
 * inih is parsing; a key is set at most once per section and a section
 * opened at most once, so no stored string is ever overwritten by a file.
 */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "backend.h"
#include "phi.h"

enum key_scope {
	SCOPE_FS,		/* [filesystem], fields of struct phi_config */
	SCOPE_REGION,		/* [region NAME], fields of struct
				   backend_region */
};

enum key_type {
	KEY_PATH,		/* absolute path, char *, trailing '/' dropped */
	KEY_SIZE,		/* phi_parse_size(), uint64_t or uint32_t */
	KEY_SIZE0,		/* the same, where 0 means "derive it" */
	KEY_STRING,		/* any non-empty text, char * */
	KEY_BOOL,		/* int: 0/1, or -1 while unset and no default */
	KEY_URL,		/* backend_url_parse() accepts it, char * */
	KEY_DURATION,		/* phi_parse_duration(), unsigned ms */
	KEY_UINT,		/* a decimal number, unsigned */
	KEY_PERIOD,		/* phi_parse_period(), uint64_t ms */
	KEY_LISTEN,		/* phi_parse_listen() accepts it, char * */
	KEY_PATIENTS,		/* audit_patients_parse() accepts it, char * */
	KEY_SYSLOG,		/* phi_parse_syslog() accepts it, char * */
};

struct key_def {
	enum key_scope scope;
	const char *name;
	enum key_type type;
	size_t offset;
	size_t width;		/* sizeof the field */
	const char *def;	/* default, written as a user would write it */
	bool required;		/* only for pointer fields */
	const char *(*check)(uint64_t v);	/* extra rule for a size,
						   duration (ms) or number */
	const char *help;
};

#define MIN_BLOCK_SIZE (UINT64_C(4) << 10)
#define MAX_BLOCK_SIZE (UINT64_C(16) << 20)
#define MIN_CACHE_BLOCKS 16
#define MAX_SEAL_DELAY_MS (UINT64_C(3600) * 1000)
#define MAX_SEAL_QUIET_MS (UINT64_C(60) * 1000)
#define MIN_LEASE_TIME_MS (UINT64_C(1000))
#define MAX_LEASE_TIME_MS (UINT64_C(3600) * 1000)
#define MAX_UPLOADERS 64
#define MAX_SEAL_THREADS 16
#define MIN_PACK_SIZE (UINT64_C(64) << 10)
#define MAX_PACK_SIZE (UINT64_C(64) << 20)
#define MIN_META_INTERVAL_MS 100
#define MAX_META_INTERVAL_MS (UINT64_C(3600) * 1000)
#define DAY_MS (UINT64_C(86400) * 1000)
#define MAX_RETENTION_DAYS 36500

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *check_block_size(uint64_t v)
{
	if (v < MIN_BLOCK_SIZE || v > MAX_BLOCK_SIZE || (v & (v - 1)) != 0)
		return "must be a power of two from 4K to 16M";
	return NULL;
}

static const char *check_seal_delay(uint64_t ms)
{
	if (ms < 1 || ms > MAX_SEAL_DELAY_MS)
		return "must be from 1ms to 1h";
	return NULL;
}

static const char *check_seal_quiet(uint64_t ms)
{
	if (ms > MAX_SEAL_QUIET_MS)
		return "must be from 0 to 1m";
	return NULL;
}

/* Renewed every third of it: below a second that is a put to every region
 * several times a second; above an hour a crashed machine blocks the
 * filesystem too long. */
static const char *check_lease_time(uint64_t ms)
{
	if (ms < MIN_LEASE_TIME_MS || ms > MAX_LEASE_TIME_MS)
		return "must be from 1s to 1h";
	return NULL;
}

static const char *check_uploaders(uint64_t v)
{
	if (v < 1 || v > MAX_UPLOADERS)
		return "must be from 1 to " STR(MAX_UPLOADERS);
	return NULL;
}

static const char *check_seal_threads(uint64_t v)
{
	if (v > MAX_SEAL_THREADS)
		return "must be from 0 (one per core) to " STR(MAX_SEAL_THREADS);
	return NULL;
}

static const char *check_pack_size(uint64_t v)
{
	if (v < MIN_PACK_SIZE || v > MAX_PACK_SIZE)
		return "must be from 64K to 64M";
	return NULL;
}

static const char *check_metadata_interval(uint64_t ms)
{
	if (ms < MIN_META_INTERVAL_MS || ms > MAX_META_INTERVAL_MS)
		return "must be from 100ms to 1h";
	return NULL;
}

static const char *check_retention(uint64_t ms)
{
	if (ms < 1000 || ms > MAX_RETENTION_DAYS * DAY_MS)
		return "must be from 1s to " STR(MAX_RETENTION_DAYS) "d";
	return NULL;
}

#define FS(field) offsetof(struct phi_config, field), \
	sizeof(((struct phi_config *)0)->field)
#define RG(field) offsetof(struct backend_region, field), \
	sizeof(((struct backend_region *)0)->field)

static const struct key_def keys[] = {
	{ SCOPE_FS, "cache_dir", KEY_PATH, FS(cache_dir), NULL, true, NULL,
	  "folder for the metadata (LMDB) and blocks" },
	{ SCOPE_FS, "cache_size", KEY_SIZE, FS(cache_size), "20G", false,
	  NULL, "upper bound for the local store" },
	{ SCOPE_FS, "block_size", KEY_SIZE, FS(block_size), "1M", false,
	  check_block_size, "fixed at mkfs; power of two, 4K to 16M" },
	{ SCOPE_FS, "key_file", KEY_PATH, FS(key_file), NULL, false, NULL,
	  "unlock with this key file (mkfs makes it); unset = passphrase" },
	{ SCOPE_FS, "seal_delay", KEY_DURATION, FS(seal_delay_ms), "5s",
	  false, check_seal_delay, "idle time before a written block is "
	  "sealed for the regions" },
	{ SCOPE_FS, "seal_quiet", KEY_DURATION, FS(seal_quiet_ms), "100ms",
	  false, check_seal_quiet, "while files are being written, closed "
	  "ones wait for a pause this long (at most seal_delay) before "
	  "they are sealed; 0 = at once" },
	{ SCOPE_FS, "uploaders", KEY_UINT, FS(uploaders), "4", false,
	  check_uploaders, "uploads at once, 1 to " STR(MAX_UPLOADERS) },
	{ SCOPE_FS, "seal_threads", KEY_UINT, FS(seal_threads), "0", false,
	  check_seal_threads, "threads that compress and encrypt for the "
	  "regions; 0 = one per core" },
	{ SCOPE_FS, "pack_size", KEY_SIZE, FS(pack_size), "4M", false,
	  check_pack_size, "sealed blocks go out in objects this big, "
	  "64K to 64M" },
	{ SCOPE_FS, "dirty_limit", KEY_SIZE0, FS(dirty_limit), "0", false,
	  NULL, "unsealed bytes that start sealing at once; 0 = "
	  "cache_size/4" },
	{ SCOPE_FS, "lease_time", KEY_DURATION, FS(lease_time_ms), "5m",
	  false, check_lease_time, "a writable mount's lease expires this "
	  "long after its last renewal" },
	{ SCOPE_FS, "log_file", KEY_PATH, FS(log_file), NULL, false, NULL,
	  "a mount in the background appends its log here; unset = "
	  "syslog" },
	{ SCOPE_FS, "mountpoint", KEY_PATH, FS(mountpoint), NULL, false, NULL,
	  "where mount mounts when no MOUNTPOINT is given (for "
	  "phifs@.service)" },
	{ SCOPE_FS, "metadata_interval", KEY_DURATION,
	  FS(metadata_interval_ms), "30s", false, check_metadata_interval,
	  "metadata changes reach the regions within this, 100ms to 1h" },
	{ SCOPE_FS, "retention", KEY_PERIOD, FS(retention_ms), "30d", false,
	  check_retention, "how long history is kept: versions lists "
	  "moments this far back; 1s to " STR(MAX_RETENTION_DAYS) "d" },
	{ SCOPE_FS, "metrics_listen", KEY_LISTEN, FS(metrics_listen), NULL,
	  false, NULL, "serve Prometheus metrics on HOST:PORT (a loopback "
	  "address unless metrics_allow_remote); unset = none" },
	{ SCOPE_FS, "metrics_allow_remote", KEY_BOOL,
	  FS(metrics_allow_remote), "false", false, NULL, "let "
	  "metrics_listen be an address other machines reach" },
	{ SCOPE_FS, "local_seal", KEY_BOOL, FS(local_seal), "on", false,
	  NULL, "encrypt the cached blocks on this machine's disk; off only "
	  "for a cache_dir on a disk encrypted already" },
	{ SCOPE_FS, "audit", KEY_BOOL, FS(audit), "on", false, NULL,
	  "record who opened, changed or removed what (phifs audit)" },
	{ SCOPE_FS, "patient_folders", KEY_PATIENTS, FS(patient_folders),
	  NULL, false, NULL, "which folders are patients' in the audit "
	  "trail: a glob under the root (/Patients/*) or a depth (1)" },
	{ SCOPE_FS, "audit_retention", KEY_PERIOD, FS(audit_retention_ms),
	  "6y", false, check_retention, "how long gc keeps the audit trail "
	  "in the regions (for ever while a legal hold stands); 1s to "
	  STR(MAX_RETENTION_DAYS) "d" },
	{ SCOPE_FS, "audit_syslog", KEY_SYSLOG, FS(audit_syslog), NULL,
	  false, NULL, "forward each audit event live as an RFC 5424 "
	  "message: local (/dev/log, authpriv) or tls://HOST:PORT "
	  "(RFC 5425); unset = off" },
	{ SCOPE_FS, "audit_syslog_ca_file", KEY_PATH,
	  FS(audit_syslog_ca_file), NULL, false, NULL, "CA that signed "
	  "the audit_syslog receiver's certificate (its name is checked "
	  "too); unset = the system's CA store" },
	{ SCOPE_FS, "audit_syslog_cert_file", KEY_PATH,
	  FS(audit_syslog_cert_file), NULL, false, NULL, "client "
	  "certificate (PEM, with its chain) shown to the audit_syslog "
	  "receiver (mutual TLS); unset = none" },
	{ SCOPE_FS, "audit_syslog_key_file", KEY_PATH,
	  FS(audit_syslog_key_file), NULL, false, NULL, "the key of "
	  "audit_syslog_cert_file (PEM, mode 0600)" },
	{ SCOPE_REGION, "url", KEY_URL, RG(url), NULL, true, NULL,
	  "dir:/PATH or s3://BUCKET[/PREFIX]" },
	{ SCOPE_REGION, "endpoint", KEY_STRING, RG(endpoint), NULL, false,
	  NULL, "S3 endpoint: https://HOST[:PORT]" },
	{ SCOPE_REGION, "region", KEY_STRING, RG(region), NULL, false, NULL,
	  "S3 signing region, e.g. eu-west-1" },
	{ SCOPE_REGION, "path_style", KEY_BOOL, RG(path_style), NULL, false,
	  NULL, "S3: bucket in the path, not the host" },
	{ SCOPE_REGION, "allow_http", KEY_BOOL, RG(allow_http), "false",
	  false, NULL, "S3: permit an http:// endpoint" },
	{ SCOPE_REGION, "credentials_file", KEY_PATH, RG(credentials_file),
	  NULL, false, NULL, "S3: access key file" },
	{ SCOPE_REGION, "ca_file", KEY_PATH, RG(ca_file), NULL, false, NULL,
	  "S3: CA bundle to check the endpoint" },
	{ SCOPE_REGION, "gc_credentials_file", KEY_PATH,
	  RG(gc_credentials_file), NULL, false, NULL,
	  "S3: key file for garbage collection" },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

struct load_ctx {
	struct phi_config *cfg;
	FILE *f;
	int line;		/* lines read so far: the one inih is parsing */
	int sect;		/* -1 none, 0 [filesystem], 1 + i region i,
				   SECT_RETENTION */
	int fs_line;		/* line of [filesystem], 0 while absent */
	int retention_line;	/* line of [retention], 0 while absent */
	int seen[1 + PHI_MAX_REGIONS][N_KEYS];	/* line a key was set on */
	int read_errno;		/* fgets() failed with this */
	int rc;			/* the error to return, 0 while none */
	int err_line;		/* its line, 0 for the file as a whole */
	char msg[512];		/* its text, after "FILE:LINE: " */
};

__attribute__((format(printf, 5, 0)))
static void vfail(struct load_ctx *ctx, int code, int line, const char *key,
		  const char *fmt, va_list ap)
{
	size_t n = 0;

	/* The earliest error is the one to fix first; file-level errors
	 * (line 0) are only raised when they trump everything else. */
	if (ctx->rc && line >= ctx->err_line)
		return;
	ctx->rc = code;
	ctx->err_line = line;
	if (key) {
		n = (size_t)snprintf(ctx->msg, sizeof(ctx->msg), "%s: ", key);
		if (n >= sizeof(ctx->msg))
			n = sizeof(ctx->msg) - 1;
	}
	vsnprintf(ctx->msg + n, sizeof(ctx->msg) - n, fmt, ap);
}

/* Record a configuration error; returns PHI_ECONFIG for tail calls. */
__attribute__((format(printf, 4, 5)))
static int fail(struct load_ctx *ctx, int line, const char *key,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(ctx, PHI_ECONFIG, line, key, fmt, ap);
	va_end(ap);
	return PHI_ECONFIG;
}

__attribute__((format(printf, 3, 4)))
static int fail_code(struct load_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(ctx, code, 0, NULL, fmt, ap);
	va_end(ap);
	return code;
}

static int nomem(struct load_ctx *ctx)
{
	return fail_code(ctx, -ENOMEM, "out of memory");
}

static int find_key(enum key_scope scope, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (keys[i].scope == scope && strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Number with an optional K/M/G/T, which may be followed by "B" or "iB";
 * a bare "B" means bytes.  Case does not matter: "20g" is what people
 * type.  Digits only, so "-1", "+1", " 1" and "1.5G" are refused.
 */
int phi_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "kmgt";
	const char *unit;
	unsigned shift = 0;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	unit = *s ? strchr(units, *s | 0x20) : NULL;
	if (unit) {
		shift = 10 * (unsigned)(unit - units + 1);
		s++;
	}
	if (!(*s == '\0' || strcasecmp(s, "b") == 0 ||
	      (unit && strcasecmp(s, "ib") == 0)))
		return -EINVAL;
	if (v > UINT64_MAX >> shift)
		return -EINVAL;
	*out = v << shift;
	return 0;
}

struct time_unit {
	const char *unit;
	uint64_t ms;
};

/* Digits, then one of units (any case); *ms untouched on failure. */
static int parse_with_units(const char *s, const struct time_unit *units,
			    size_t nunits, uint64_t *ms)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	for (size_t i = 0; i < nunits; i++) {
		if (strcasecmp(s, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -EINVAL;
		*ms = v * units[i].ms;
		return 0;
	}
	return -EINVAL;
}

/*
 * A number with an optional unit: ms, s, m or h (any case); a bare number
 * is seconds, as in "seal_delay = 5".  Digits only, like sizes.
 */
int phi_parse_duration(const char *s, uint64_t *ms)
{
	static const struct time_unit units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 },
	};

	return parse_with_units(s, units, sizeof(units) / sizeof(units[0]),
				ms);
}

/* The same with days, for spans like retention that run to years. */
int phi_parse_period(const char *s, uint64_t *ms)
{
	static const struct time_unit units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", DAY_MS }, { "w", 7 * DAY_MS },
		{ "y", 365 * DAY_MS },
	};

	return parse_with_units(s, units, sizeof(units) / sizeof(units[0]),
				ms);
}

/* n digits of s as a number, or -1 if they are not all digits. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "-2h", "-3d": now_ms less a period.  0 or -EINVAL. */
static int parse_ago(const char *s, int64_t now_ms, int64_t *out)
{
	size_t n = strlen(s);
	uint64_t ms;

	/* A unit is required: "-90" could mean anything. */
	if (n == 0 || (s[n - 1] >= '0' && s[n - 1] <= '9') ||
	    phi_parse_period(s, &ms) < 0 || now_ms < 0 ||
	    ms > (uint64_t)now_ms)
		return -EINVAL;
	*out = now_ms - (int64_t)ms;
	return 0;
}

/* "HH:MM[:SS[.fff...]]" into tm and *ms; returns the rest, or NULL. */
static const char *parse_clock(const char *s, struct tm *tm, int *ms)
{
	int n, scale = 100;

	tm->tm_hour = digits(s, 2);
	if (tm->tm_hour < 0 || tm->tm_hour > 23 || s[2] != ':')
		return NULL;
	tm->tm_min = digits(s + 3, 2);
	if (tm->tm_min < 0 || tm->tm_min > 59)
		return NULL;
	s += 5;
	if (*s != ':')
		return s;
	tm->tm_sec = digits(s + 1, 2);
	if (tm->tm_sec < 0 || tm->tm_sec > 59)
		return NULL;
	s += 3;
	if (*s != '.' && *s != ',')
		return s;
	for (n = 0, s++; *s >= '0' && *s <= '9'; s++, n++) {
		*ms += (*s - '0') * scale;	/* beyond ms: cut, not rounded */
		scale /= 10;
	}
	return n >= 1 && n <= 9 ? s : NULL;
}

/* "Z", "+HH:MM", "-HHMM", "+HH" into seconds east of UTC. */
static int parse_zone(const char *s, long *east)
{
	int sign = *s == '-' ? -1 : 1, h, m = 0;

	if (strcasecmp(s, "z") == 0) {
		*east = 0;
		return 0;
	}
	if (*s != '+' && *s != '-')
		return -EINVAL;
	h = digits(s + 1, 2);
	if (h < 0 || h > 23)
		return -EINVAL;
	s += 3;
	if (*s == ':')
		s++;
	if (*s) {
		m = digits(s, 2);
		if (m < 0 || m > 59)
			return -EINVAL;
		s += 2;
	}
	if (*s)
		return -EINVAL;
	*east = sign * (h * 3600L + m * 60L);
	return 0;
}

/* A calendar date; timegm() would quietly turn Feb 30 into Mar 2. */
static bool date_exists(const struct tm *tm)
{
	struct tm t = *tm;
	time_t secs = timegm(&t);

	return secs != (time_t)-1 && t.tm_mday == tm->tm_mday &&
	       t.tm_mon == tm->tm_mon && t.tm_year == tm->tm_year;
}

/* ISO 8601: DATE[(T| )CLOCK[ZONE]], local time without a zone. */
static int parse_iso(const char *s, int64_t *out)
{
	struct tm tm;
	time_t secs;
	long east = 0;
	int ms = 0, local = 1;

	if (strlen(s) < 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 ||
	    tm.tm_mday < 1 || !date_exists(&tm))
		return -EINVAL;
	s += 10;
	if (*s == 'T' || *s == 't' || *s == ' ') {
		s = parse_clock(s + 1, &tm, &ms);
		if (!s)
			return -EINVAL;
		if (*s) {
			if (parse_zone(s, &east))
				return -EINVAL;
			local = 0;
		}
	} else if (*s) {
		return -EINVAL;
	}
	if (local) {
		tm.tm_isdst = -1;
		secs = mktime(&tm);
	} else {
		secs = timegm(&tm) - east;
	}
	if (secs == (time_t)-1 || secs < 0)
		return -EINVAL;
	*out = (int64_t)secs * 1000 + ms;
	return 0;
}

int phi_parse_moment(const char *s, int64_t now_ms, int64_t *ms)
{
	if (strcasecmp(s, "now") == 0) {
		*ms = now_ms;
		return 0;
	}
	if (s[0] == '-')
		return parse_ago(s + 1, now_ms, ms);
	return parse_iso(s, ms);
}

void phi_format_moment(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	char text[96];
	struct tm tm;

	if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999)
		snprintf(text, sizeof(text), "%lld ms", (long long)ms);
	else
		snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d."
			 "%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(ms - (int64_t)secs * 1000));
	text[31] = '\0';
	memcpy(out, text, strlen(text) + 1);
}

/* The port after the last ':' of s (1 to 65535), or -1. */
static long listen_port(const char *colon)
{
	long port = 0;
	const char *p = colon + 1;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9' && port <= 65535; p++)
		port = port * 10 + (*p - '0');
	return *p || port < 1 || port > 65535 ? -1 : port;
}

static int ipv6_loopback(const struct in6_addr *a)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	return IN6_IS_ADDR_LOOPBACK(a) ||
	       (memcmp(a->s6_addr, mapped, 12) == 0 && a->s6_addr[12] == 127);
}

const char *phi_parse_listen(const char *s, struct phi_listen *out)
{
	const char *colon = strrchr(s, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t n = colon ? (size_t)(colon - s) : 0;
	long port;

	memset(out, 0, sizeof(*out));
	if (!colon || n == 0 || n >= sizeof(host))
		return "bad address (use HOST:PORT, e.g. 127.0.0.1:9101)";
	port = listen_port(colon);
	if (port < 0)
		return "bad port (use HOST:PORT with a port from 1 to 65535)";
	memcpy(host, s, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (host[0] == '[' && host[n - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->addr;

		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return "bad IPv6 address (use [ADDRESS]:PORT, e.g. "
			       "[::1]:9101)";
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*a);
		out->loopback = ipv6_loopback(&a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&out->addr;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return "bad host (use a numeric address, [IPv6] or "
			       "localhost, then :PORT)";
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		out->len = sizeof(*a);
		out->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	return NULL;
}

const char *phi_parse_syslog(const char *s, struct phi_syslog *out)
{
	const char *colon, *host = s + 6;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (strcmp(s, "local") == 0)
		return NULL;
	if (strncmp(s, "tls://", 6) != 0)
		return "use local or tls://HOST:PORT";
	colon = strrchr(host, ':');
	n = colon ? (size_t)(colon - host) : 0;
	if (!colon || listen_port(colon) < 0)
		return "use tls://HOST:PORT with a port from 1 to 65535";
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		host++;		/* [IPv6]: the brackets are not the host */
		n -= 2;
	}
	if (n == 0 || n >= sizeof(out->host) ||
	    strcspn(host, " \t/?#@[]") < n) {
		memset(out, 0, sizeof(*out));
		return "bad host (use tls://HOST:PORT, HOST a name or an "
		       "address, [IPv6] in brackets)";
	}
	out->tls = 1;
	memcpy(out->host, host, n);
	snprintf(out->port, sizeof(out->port), "%s", colon + 1);
	return NULL;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const words[][2] = {
		{ "false", "true" }, { "no", "yes" }, { "off", "on" },
		{ "0", "1" },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		for (int b = 0; b < 2; b++) {
			if (strcasecmp(s, words[i][b]) == 0) {
				*out = b;
				return 0;
			}
		}
	}
	return -EINVAL;
}

static int set_string(struct load_ctx *ctx, char **field, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return nomem(ctx);
	free(*field);
	*field = copy;
	return 0;
}

static int set_path(struct load_ctx *ctx, const struct key_def *k,
		    char **field, const char *value)
{
	size_t n = strlen(value);

	/* A mount daemonizes into "/", so a relative path would quietly
	 * mean something else there than where the user typed it. */
	if (value[0] != '/')
		return fail(ctx, ctx->line, k->name,
			    "must be an absolute path");
	if (set_string(ctx, field, value) < 0)
		return ctx->rc;
	while (n > 1 && (*field)[n - 1] == '/')
		(*field)[--n] = '\0';
	return 0;
}

static int set_size(struct load_ctx *ctx, const struct key_def *k,
		    void *field, const char *value)
{
	const char *why;
	uint64_t v;

	if (phi_parse_size(value, &v) < 0)
		return fail(ctx, ctx->line, k->name, "bad size '%s' (use a "
			    "number with K, M, G or T)", value);
	if (v == 0 && k->type != KEY_SIZE0)
		return fail(ctx, ctx->line, k->name, "size must not be 0");
	why = k->check ? k->check(v) : NULL;
	if (why)
		return fail(ctx, ctx->line, k->name, "%s", why);
	if (k->width == sizeof(uint32_t)) {
		if (v > UINT32_MAX)
			return fail(ctx, ctx->line, k->name, "too large");
		*(uint32_t *)field = (uint32_t)v;
	} else {
		assert(k->width == sizeof(uint64_t));
		*(uint64_t *)field = v;
	}
	return 0;
}

static int set_duration(struct load_ctx *ctx, const struct key_def *k,
			unsigned *field, const char *value)
{
	const char *why;
	uint64_t ms;

	if (phi_parse_duration(value, &ms) < 0)
		return fail(ctx, ctx->line, k->name, "bad duration '%s' (use "
			    "a number with ms, s, m or h)", value);
	why = k->check ? k->check(ms) : NULL;
	if (why)
		return fail(ctx, ctx->line, k->name, "%s", why);
	assert(ms <= UINT_MAX);
	*field = (unsigned)ms;
	return 0;
}

static int set_period(struct load_ctx *ctx, const struct key_def *k,
		      uint64_t *field, const char *value)
{
	const char *why;
	uint64_t ms;

	if (phi_parse_period(value, &ms) < 0)
		return fail(ctx, ctx->line, k->name, "bad period '%s' (use "
			    "a number with s, m, h, d, w or y)", value);
	why = k->check ? k->check(ms) : NULL;
	if (why)
		return fail(ctx, ctx->line, k->name, "%s", why);
	*field = ms;
	return 0;
}

static int set_uint(struct load_ctx *ctx, const struct key_def *k,
		    unsigned *field, const char *value)
{
	const char *why;
	uint64_t v = 0;
	const char *s;

	for (s = value; *s >= '0' && *s <= '9' && v <= UINT_MAX; s++)
		v = v * 10 + (unsigned)(*s - '0');
	if (s == value || *s != '\0' || v > UINT_MAX)
		return fail(ctx, ctx->line, k->name, "bad number '%s'", value);
	why = k->check ? k->check(v) : NULL;
	if (why)
		return fail(ctx, ctx->line, k->name, "%s", why);
	*field = (unsigned)v;
	return 0;
}

static int set_url(struct load_ctx *ctx, const struct key_def *k,
		   char **field, const char *value)
{
	struct backend_url url;
	char why[256];

	/* The reason only, never the url: one carrying a secret is exactly
	 * what gets refused, and it must not reach a terminal or a log. */
	if (backend_url_parse(value, &url, why, sizeof(why)) < 0)
		return fail(ctx, ctx->line, k->name, "%s", why);
	return set_string(ctx, field, value);
}

static int set_listen(struct load_ctx *ctx, const struct key_def *k,
		      char **field, const char *value)
{
	struct phi_listen l;
	const char *why = phi_parse_listen(value, &l);

	if (why)
		return fail(ctx, ctx->line, k->name, "%s", why);
	return set_string(ctx, field, value);
}

static int set_patients(struct load_ctx *ctx, const struct key_def *k,
			void *field, const char *value)
{
	struct audit_patients p;

	if (audit_patients_parse(value, &p) || !p.depth)
		return fail(ctx, ctx->line, k->name, "bad patient folders "
			    "'%s' (a glob under the root such as /Patients/*, "
			    "or a depth such as 1)", value);
	return set_string(ctx, field, value);
}

static int set_syslog(struct load_ctx *ctx, const struct key_def *k,
		      char **field, const char *value)
{
	struct phi_syslog d;
	const char *why = phi_parse_syslog(value, &d);

	if (why)
		return fail(ctx, ctx->line, k->name, "bad value '%s' (%s)",
			    value, why);
	return set_string(ctx, field, value);
}

/* Parse value into key k of the section struct at base. */
static int set_key(struct load_ctx *ctx, const struct key_def *k,
		   void *base, const char *value)
{
	void *field = (char *)base + k->offset;

	switch (k->type) {
	case KEY_PATH:
		return set_path(ctx, k, field, value);
	case KEY_SIZE:
	case KEY_SIZE0:
		return set_size(ctx, k, field, value);
	case KEY_STRING:
		return set_string(ctx, field, value);
	case KEY_URL:
		return set_url(ctx, k, field, value);
	case KEY_LISTEN:
		return set_listen(ctx, k, field, value);
	case KEY_PATIENTS:
		return set_patients(ctx, k, field, value);
	case KEY_SYSLOG:
		return set_syslog(ctx, k, field, value);
	case KEY_DURATION:
		assert(k->width == sizeof(unsigned));
		return set_duration(ctx, k, field, value);
	case KEY_UINT:
		assert(k->width == sizeof(unsigned));
		return set_uint(ctx, k, field, value);
	case KEY_PERIOD:
		assert(k->width == sizeof(uint64_t));
		return set_period(ctx, k, field, value);
	case KEY_BOOL:
		assert(k->width == sizeof(int));
		if (parse_bool(value, field) < 0)
			return fail(ctx, ctx->line, k->name, "bad boolean "
				    "'%s' (use true/false, yes/no, on/off or "
				    "1/0)", value);
		return 0;
	}
	assert(!"unknown key type");
	return PHI_ECONFIG;
}

/* Defaults go through the same parsers as the file, so that the text
 * phi_config_print_help() shows is the value a user gets. */
static int apply_defaults(struct load_ctx *ctx, enum key_scope scope,
			  void *base)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		int rc;

		if (k->scope != scope)
			continue;
		if (k->type == KEY_BOOL)
			*(int *)((char *)base + k->offset) = -1;
		if (!k->def)
			continue;
		rc = set_key(ctx, k, base, k->def);
		assert(rc == 0 || rc == -ENOMEM);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void free_strings(enum key_scope scope, void *base)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];

		if (k->scope == scope && (k->type == KEY_PATH ||
		    k->type == KEY_STRING || k->type == KEY_URL ||
		    k->type == KEY_LISTEN || k->type == KEY_PATIENTS ||
		    k->type == KEY_SYSLOG))
			free(*(char **)((char *)base + k->offset));
	}
}

/* A region's strings, secrets included, are backend/'s to free. */
void phi_config_release(struct phi_config *cfg)
{
	for (int i = 0; i < cfg->nrules; i++)
		free(cfg->rules[i].path);
	free(cfg->rules);
	free(cfg->path);
	free_strings(SCOPE_FS, cfg);
	for (int i = 0; i < cfg->nregions; i++)
		backend_region_release(&cfg->regions[i]);
	memset(cfg, 0, sizeof(*cfg));
}

static void open_filesystem(struct load_ctx *ctx, const char *label)
{
	if (ctx->fs_line) {
		fail(ctx, ctx->line, label, "duplicate section (first on "
		     "line %d)", ctx->fs_line);
		return;
	}
	ctx->fs_line = ctx->line;
	ctx->sect = 0;
}

static const char *region_name_error(const struct phi_config *cfg,
				     const char *name, int *first)
{
	static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"abcdefghijklmnopqrstuvwxyz0123456789_.-";
	size_t n = strlen(name);

	if (n == 0)
		return "a region needs a name ([region NAME])";
	/* The name ends up in paths and object keys: keep it plain. */
	if (n > BACKEND_REGION_NAME_MAX || strspn(name, allowed) != n)
		return "bad region name (use 1 to 64 of A-Z a-z 0-9 _ . -)";
	for (int i = 0; i < cfg->nregions; i++) {
		if (strcmp(cfg->regions[i].name, name) == 0) {
			*first = cfg->region_line[i];
			return "duplicate region";
		}
	}
	if (cfg->nregions == PHI_MAX_REGIONS)
		return "too many regions (at most " STR(PHI_MAX_REGIONS) ")";
	return NULL;
}

static void open_region(struct load_ctx *ctx, const char *label,
			const char *name)
{
	struct phi_config *cfg = ctx->cfg;
	struct backend_region *r;
	const char *why;
	int first = 0;

	why = region_name_error(cfg, name, &first);
	if (why && first) {
		fail(ctx, ctx->line, label, "%s (first on line %d)", why,
		     first);
		return;
	}
	if (why) {
		fail(ctx, ctx->line, label, "%s", why);
		return;
	}
	cfg->region_line[cfg->nregions] = ctx->line;
	r = &cfg->regions[cfg->nregions++];
	backend_region_init(r);
	strcpy(r->name, name);
	ctx->sect = cfg->nregions;
	apply_defaults(ctx, SCOPE_REGION, r);
}

#define SECT_RETENTION (-2)

static void open_retention(struct load_ctx *ctx, const char *label)
{
	if (ctx->retention_line) {
		fail(ctx, ctx->line, label, "duplicate section (first on "
		     "line %d)", ctx->retention_line);
		return;
	}
	ctx->retention_line = ctx->line;
	ctx->sect = SECT_RETENTION;
}

/* Why path cannot name a folder or file of the filesystem, or NULL. */
const char *phi_rule_path_error(const char *path)
{
	const char *p = path;

	if (path[0] != '/')
		return "a path in the filesystem must start with '/'";
	if (strlen(path) >= PHI_RULE_PATH_MAX)
		return "path too long";
	while (*p == '/' && p[1]) {
		size_t n = strcspn(p + 1, "/");

		if (n == 0 || (n == 1 && p[1] == '.') ||
		    (n == 2 && p[1] == '.' && p[2] == '.'))
			return "use a plain path: no empty, '.' or '..' parts";
		p += 1 + n;
	}
	return NULL;
}

/* One PATH = PERIOD line of [retention]. */
static int take_rule(struct load_ctx *ctx, const char *name,
		     const char *value)
{
	struct phi_config *cfg = ctx->cfg;
	struct phi_rule *r;
	const char *why;
	uint64_t ms;
	size_t n;

	why = phi_rule_path_error(name);
	if (why)
		return fail(ctx, ctx->line, name, "%s", why);
	n = strlen(name);
	if (n > 1 && name[n - 1] == '/')
		n--;			/* "/Patients/" is "/Patients" */
	for (int i = 0; i < cfg->nrules; i++)
		if (strlen(cfg->rules[i].path) == n &&
		    strncmp(cfg->rules[i].path, name, n) == 0)
			return fail(ctx, ctx->line, name, "duplicate path "
				    "(first on line %d)", cfg->rules[i].line);
	if (!value || value[0] == '\0')
		return fail(ctx, ctx->line, name, "empty value");
	if (phi_parse_period(value, &ms) < 0)
		return fail(ctx, ctx->line, name, "bad period '%s' (use a "
			    "number with s, m, h, d, w or y)", value);
	why = check_retention(ms);
	if (why)
		return fail(ctx, ctx->line, name, "%s", why);
	if (cfg->nrules % 16 == 0) {
		void *p = realloc(cfg->rules, (cfg->nrules + 16) *
				  sizeof(*cfg->rules));

		if (!p)
			return nomem(ctx);
		cfg->rules = p;
	}
	r = &cfg->rules[cfg->nrules];
	r->path = strndup(name, n);
	if (!r->path)
		return nomem(ctx);
	r->period_ms = ms;
	r->line = ctx->line;
	cfg->nrules++;
	return 0;
}

/* After ']' only blanks or a comment may follow; inih would ignore it. */
static bool header_tail_ok(const char *s)
{
	s += strspn(s, " \t\r\n");
	return *s == '\0' || *s == ';' || *s == '#';
}

/* buf starts with '['.  Opens the section or records why not. */
static void open_section(struct load_ctx *ctx, const char *buf)
{
	const char *end = strchr(buf, ']');
	char label[256];
	const char *head;

	ctx->sect = -1;
	if (!end) {
		fail(ctx, ctx->line, NULL, "section header has no ']'");
		return;
	}
	if (!header_tail_ok(end + 1)) {
		fail(ctx, ctx->line, NULL, "unexpected text after ']'");
		return;
	}
	/* inih's lines are shorter than label; a longer header would be
	 * cut here and then still be refused, as a bad region name. */
	snprintf(label, sizeof(label), "%.*s", (int)(end - buf + 1), buf);
	head = label + 1;
	if (strcmp(head, "filesystem]") == 0)
		open_filesystem(ctx, label);
	else if (strcmp(head, "retention]") == 0)
		open_retention(ctx, label);
	else if (strcmp(head, "region]") == 0)
		open_region(ctx, label, "");
	else if (strncmp(head, "region ", 7) == 0) {
		char name[sizeof(label)];

		snprintf(name, sizeof(name), "%.*s",
			 (int)(strlen(head) - 8), head + 7);
		open_region(ctx, label, name);
	} else
		fail(ctx, ctx->line, label, "unknown section (use "
		     "[filesystem], [region NAME] or [retention])");
}

/* True if buf holds a whole line; otherwise the rest of the line is
 * consumed so that the next read starts on the next line. */
static bool whole_line(FILE *f, const char *buf, int size)
{
	size_t len = strlen(buf);
	int ch;

	if (len + 1 < (size_t)size || buf[len - 1] == '\n')
		return true;
	ch = getc(f);
	if (ch == EOF || ch == '\n')
		return true;
	while (ch != EOF && ch != '\n')
		ch = getc(f);
	return false;
}

/*
 * fgets for inih, one physical line per call, so that ctx->line is the
 * line inih is about to parse and section headers are seen before inih
 * calls the handler for the keys under them.
 */
static char *read_line(char *buf, int size, void *stream)
{
	struct load_ctx *ctx = stream;
	size_t skip;

	long start;

	if (ctx->rc)
		return NULL;
	start = ftell(ctx->f);
	if (!fgets(buf, size, ctx->f)) {
		if (ferror(ctx->f))
			ctx->read_errno = errno ? errno : EIO;
		return NULL;
	}
	ctx->line++;
	/* fgets() reads past a NUL byte, which would silently cut the
	 * value there ("5\0s" read as "5"): more bytes read than the
	 * string holds means there was one. */
	if (start >= 0 && ftell(ctx->f) - start != (long)strlen(buf)) {
		fail(ctx, ctx->line, NULL, "NUL byte in the line (a "
		     "configuration is a text file)");
		buf[0] = '\0';
		return buf;
	}
	if (!whole_line(ctx->f, buf, size)) {
		fail(ctx, ctx->line, NULL, "line too long (at most %d "
		     "characters)", size - 3);
		buf[0] = '\0';
		return buf;
	}
	/* inih skips a UTF-8 byte order mark too, but only after we would
	 * have missed a header behind it. */
	skip = (ctx->line == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0;
	skip += strspn(buf + skip, " \t");
	memmove(buf, buf + skip, strlen(buf + skip) + 1);
	if (buf[0] == '[')
		open_section(ctx, buf);
	return buf;
}

/* One KEY = VALUE line of the current section. */
static int take_key(struct load_ctx *ctx, const char *name, const char *value)
{
	int *seen;
	int i;

	if (name[0] == '\0')
		return fail(ctx, ctx->line, NULL, "missing key before '='");
	if (ctx->sect == SECT_RETENTION)
		return take_rule(ctx, name, value);
	if (ctx->sect < 0)
		return fail(ctx, ctx->line, name, "not in a section (put it "
			    "under [filesystem] or [region NAME])");
	i = find_key(ctx->sect ? SCOPE_REGION : SCOPE_FS, name);
	if (i < 0)
		return fail(ctx, ctx->line, name, "unknown key");
	seen = &ctx->seen[ctx->sect][i];
	if (*seen)
		return fail(ctx, ctx->line, name, "duplicate key (first set "
			    "on line %d)", *seen);
	if (!value || value[0] == '\0')
		return fail(ctx, ctx->line, name, "empty value");
	*seen = ctx->line;
	if (ctx->sect == 0)
		return set_key(ctx, &keys[i], ctx->cfg, value);
	return set_key(ctx, &keys[i], &ctx->cfg->regions[ctx->sect - 1],
		       value);
}

/* inih's handler.  section is ignored: inih truncates long ones, and
 * ctx->sect already says where we are. */
static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct load_ctx *ctx = user;

	(void)section;
	if (!ctx->rc)
		take_key(ctx, name, value);
	return !ctx->rc;
}

static const char *file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "of an unknown kind";
}

/*
 * Open path for reading, refusing anything but a regular file: a FIFO
 * would block the open (hence O_NONBLOCK) and /dev/zero would feed the
 * reader NUL bytes for ever.  NULL after recording why.
 */
static FILE *open_config(struct load_ctx *ctx, const char *path)
{
	struct stat st;
	FILE *f = NULL;
	int fd, e = 0;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st))
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	else if (!S_ISREG(st.st_mode))
		fail_code(ctx, PHI_ECONFIG, "not a regular file (it is %s)",
			  file_kind(st.st_mode));
	else if (!(f = fdopen(fd, "r")))	/* reads of a regular file */
		e = errno;			/* never block */
	if (e)
		fail_code(ctx, -e, "cannot read: %s", strerror(e));
	if (!f && fd >= 0)
		close(fd);
	return f;
}

static void parse_file(struct load_ctx *ctx, const char *path)
{
	int rc;

	ctx->f = open_config(ctx, path);
	if (!ctx->f)
		return;
	if (apply_defaults(ctx, SCOPE_FS, ctx->cfg) == 0) {
		rc = ini_parse_stream(read_line, ctx, on_key, ctx);
		if (ctx->read_errno)
			fail_code(ctx, -ctx->read_errno, "cannot read: %s",
				  strerror(ctx->read_errno));
		else if (rc > 0)
			fail(ctx, rc, NULL, "syntax error (expected KEY = "
			     "VALUE or [SECTION])");
		else if (rc < 0)
			nomem(ctx);
	}
	fclose(ctx->f);
	ctx->f = NULL;
}

static void check_required(struct load_ctx *ctx, enum key_scope scope,
			   const void *base, int line, const char *label)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];

		if (k->scope != scope || !k->required)
			continue;
		assert(k->width == sizeof(char *));
		if (!*(char *const *)((const char *)base + k->offset))
			fail(ctx, line, label, "%s is required", k->name);
	}
}

void phi_format_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

/* Fewer blocks than this and eviction would thrash on any real workload.
 * Blamed on cache_size: today's block_size limits cannot fail the default. */
static void check_cache_size(struct load_ctx *ctx)
{
	const struct phi_config *cfg = ctx->cfg;
	uint64_t need = MIN_CACHE_BLOCKS * (uint64_t)cfg->block_size;
	char text[32];

	if (cfg->cache_size >= need)
		return;
	phi_format_size(need, text, sizeof(text));
	fail(ctx, ctx->seen[0][find_key(SCOPE_FS, "cache_size")], "cache_size",
	     "must be at least %d * block_size (%s)", MIN_CACHE_BLOCKS, text);
}

/* A dirty limit at or above cache_size could never start sealing before
 * the store is full; below one block, every write would. */
static void check_dirty_limit(struct load_ctx *ctx)
{
	const struct phi_config *cfg = ctx->cfg;
	int line = ctx->seen[0][find_key(SCOPE_FS, "dirty_limit")];

	if (cfg->dirty_limit == 0)
		return;
	if (cfg->dirty_limit < cfg->block_size)
		fail(ctx, line, "dirty_limit", "must be 0 (cache_size/4) or "
		     "at least block_size");
	else if (cfg->dirty_limit >= cfg->cache_size)
		fail(ctx, line, "dirty_limit", "must be below cache_size");
}

/* Metrics are for the machine's own monitoring unless the file says
 * otherwise: they tell who works when, and how much. */
static void check_metrics(struct load_ctx *ctx)
{
	const struct phi_config *cfg = ctx->cfg;
	struct phi_listen l;

	if (!cfg->metrics_listen || cfg->metrics_allow_remote == 1 ||
	    phi_parse_listen(cfg->metrics_listen, &l) || l.loopback)
		return;
	fail(ctx, ctx->seen[0][find_key(SCOPE_FS, "metrics_listen")],
	     "metrics_listen", "'%s' is not a loopback address (127.0.0.1, "
	     "[::1]); set metrics_allow_remote = true to let other machines "
	     "read the metrics", cfg->metrics_listen);
}

/* audit_syslog forwards the trail: it needs one; the CA file and the
 * client certificate are for tls:// only, the certificate with its key. */
static void check_syslog(struct load_ctx *ctx)
{
	const struct phi_config *cfg = ctx->cfg;
	int line = ctx->seen[0][find_key(SCOPE_FS, "audit_syslog")];
	int ca_line = ctx->seen[0][find_key(SCOPE_FS,
					    "audit_syslog_ca_file")];
	int cert_line = ctx->seen[0][find_key(SCOPE_FS,
					      "audit_syslog_cert_file")];
	int key_line = ctx->seen[0][find_key(SCOPE_FS,
					     "audit_syslog_key_file")];
	int tls = cfg->audit_syslog &&
		  strncmp(cfg->audit_syslog, "tls://", 6) == 0;

	if (cfg->audit_syslog && cfg->audit == 0)
		fail(ctx, line, "audit_syslog", "forwards the audit trail, "
		     "but audit is off (set audit = on or remove "
		     "audit_syslog)");
	else if (cfg->audit_syslog_ca_file && !tls)
		fail(ctx, ca_line, "audit_syslog_ca_file", "is for audit_syslog "
		     "= tls://HOST:PORT only");
	else if ((cfg->audit_syslog_cert_file || cfg->audit_syslog_key_file) &&
		 !tls)
		fail(ctx, cert_line ? cert_line : key_line, cert_line ?
		     "audit_syslog_cert_file" : "audit_syslog_key_file",
		     "is for audit_syslog = tls://HOST:PORT only");
	else if (!cfg->audit_syslog_cert_file != !cfg->audit_syslog_key_file)
		fail(ctx, cert_line ? cert_line : key_line, cert_line ?
		     "audit_syslog_cert_file" : "audit_syslog_key_file",
		     "needs %s too", cert_line ? "audit_syslog_key_file" :
		     "audit_syslog_cert_file");
}

/* What only the whole file can tell. */
static void check_config(struct load_ctx *ctx)
{
	struct phi_config *cfg = ctx->cfg;
	char label[sizeof(cfg->regions[0].name) + 16];

	if (!ctx->fs_line) {
		fail(ctx, 0, "[filesystem]", "section is missing");
		return;
	}
	check_required(ctx, SCOPE_FS, cfg, 0, "[filesystem]");
	for (int i = 0; i < cfg->nregions; i++) {
		snprintf(label, sizeof(label), "[region %s]",
			 cfg->regions[i].name);
		check_required(ctx, SCOPE_REGION, &cfg->regions[i],
			       cfg->region_line[i], label);
	}
	check_cache_size(ctx);
	check_dirty_limit(ctx);
	check_metrics(ctx);
	check_syslog(ctx);
	cfg->block_size_line = ctx->seen[0][find_key(SCOPE_FS, "block_size")];
}

int phi_config_load(struct phi_config *cfg, const char *path, char *err,
		    size_t errlen)
{
	struct load_ctx ctx = { .cfg = cfg, .sect = -1 };

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = strdup(path);
	if (!cfg->path)
		nomem(&ctx);
	else
		parse_file(&ctx, path);
	if (!ctx.rc)
		check_config(&ctx);
	if (!ctx.rc)
		return 0;
	if (err && errlen && ctx.err_line)
		snprintf(err, errlen, "%s:%d: %s", path, ctx.err_line, ctx.msg);
	else if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, ctx.msg);
	phi_config_release(cfg);
	return ctx.rc;
}

static void print_scope(enum key_scope scope)
{
	static const char *const type_names[] = {
		[KEY_PATH] = "PATH", [KEY_SIZE] = "SIZE", [KEY_SIZE0] = "SIZE",
		[KEY_STRING] = "TEXT", [KEY_BOOL] = "BOOL", [KEY_URL] = "URL",
		[KEY_DURATION] = "TIME", [KEY_UINT] = "N",
		[KEY_PERIOD] = "PERIOD", [KEY_LISTEN] = "ADDR",
		[KEY_PATIENTS] = "GLOB|N", [KEY_SYSLOG] = "DEST",
	};

	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		const char *def = k->def ? k->def :
				  k->required ? "required" : "unset";

		if (k->scope == scope)
			printf("  %-22s %-6s %-9s %s\n", k->name,
			       type_names[k->type], def, k->help);
	}
}

void phi_config_print_help(void)
{
	printf("  %-22s %-6s %-9s %s\n", "KEY", "TYPE", "DEFAULT", "MEANING");
	printf("[filesystem]\n");
	print_scope(SCOPE_FS);
	printf("[region NAME]   at most %d; NAME is 1 to 64 of A-Z a-z 0-9 "
	       "_ . -\n", PHI_MAX_REGIONS);
	print_scope(SCOPE_REGION);
	printf("[retention]     optional; one line per path, such as "
	       "/Patients = 10y\n");
	printf("  %-22s %-6s %-9s %s\n", "PATH", "PERIOD", "unset",
	       "every version of a file under PATH (absolute, in the "
	       "filesystem) is kept by gc this long after it was replaced "
	       "or deleted, on top of retention");
	printf("\nSIZE: a number with an optional K, M, G or T (powers of "
	       "1024): 4096, 1M, 20G.\nTIME: a number with ms, s, m or h; "
	       "seconds without: 500ms, 5s, 2m.\nPERIOD: the same, "
	       "with d, w and y (365 days) too: 30d, 12h, 10y.\nBOOL: true/false, yes/no, "
	       "on/off or 1/0.  PATH: absolute.  N: a whole number.\n"
	       "ADDR: HOST:PORT, HOST a numeric address or localhost: "
	       "127.0.0.1:9101, [::1]:9101.\n"
	       "DEST: local (the local syslog, /dev/log) or tls://HOST:PORT "
	       "(an audit repository, RFC 5425).\n");
}
