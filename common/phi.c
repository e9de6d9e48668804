/*
 * phi.c - error strings, the log sink and the clock shared by all modules.
 */
#include "phi.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

int phi_log_threshold = PHI_LOG_NOTICE;

static phi_log_sink_fn *log_sink;	/* set before threads start */

const char *phi_strerror(int code)
{
	switch (code) {
	case PHI_ECORRUPT:
		return "metadata or block store is corrupt";
	case PHI_ENOFS:
		return "no phifs filesystem here (run phifs mkfs first)";
	case PHI_EEXISTFS:
		return "a phifs filesystem already exists here";
	case PHI_EBUSYFS:
		return "the filesystem is in use by a running mount";
	case PHI_EVERSION:
		return "filesystem format version is not supported by this build";
	case PHI_ECONFIG:
		return "invalid configuration";
	case PHI_EUNREACHABLE:
		return "region unreachable";
	case PHI_EAUTH:
		return "region refused the credentials";
	case PHI_EBADKEY:
		return "wrong passphrase or key file";
	case PHI_EAUTHFAIL:
		return "object failed authentication (tampered, swapped or "
		       "from another filesystem)";
	case PHI_ELATCHED:
		return "an earlier local failure left the cache uncertain; "
		       "unmount and mount again";
	case PHI_ENOBUCKET:
		return "region has no such bucket";
	case PHI_ECLOCKSKEW:
		return "system clock too far off the region's (fix the clock)";
	case PHI_ETLS:
		return "TLS connection to the region failed (check ca_file)";
	case PHI_EREPLACED:
		return "region folder was moved, replaced or emptied since it "
		       "was opened";
	}
	if (code < 0 && code > -PHI_ERR_BASE)
		return strerror(-code);
	return "unknown error";
}

static const char *level_name(enum phi_log_level level)
{
	switch (level) {
	case PHI_LOG_ERR:
		return "error";
	case PHI_LOG_WARNING:
		return "warning";
	case PHI_LOG_NOTICE:
		return "notice";
	case PHI_LOG_INFO:
		return "info";
	case PHI_LOG_DEBUG:
		return "debug";
	}
	return "log";
}

static void sink_stderr(enum phi_log_level level, const char *msg)
{
	fprintf(stderr, "phifs: %s: %s\n", level_name(level), msg);
}

static void sink_syslog(enum phi_log_level level, const char *msg)
{
	syslog((int)level, "%s", msg);
}

void phi_log_set_sink(phi_log_sink_fn *sink)
{
	log_sink = sink;
}

void phi_log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	log_sink = sink_syslog;
}

void phi_log_write(enum phi_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(log_sink ? log_sink : sink_stderr)(level, msg);
}

struct timespec phi_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}
