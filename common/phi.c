/*
 * phi.c - error strings, the log sink, the clock and (debug builds) the
 * count of locks held, shared by all modules.
 */
#include "phi.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

int phi_log_threshold = PHI_LOG_NOTICE;

static phi_log_sink_fn *log_sink;	/* set before threads start */
static int log_fd = -1;			/* sink_file()'s; set with log_sink */

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

void phi_log_sink_stderr(enum phi_log_level level, const char *msg)
{
	fprintf(stderr, "phifs: %s: %s\n", level_name(level), msg);
}

static void sink_syslog(enum phi_log_level level, const char *msg)
{
	syslog((int)level, "%s", msg);
}

static void sink_file(enum phi_log_level level, const char *msg)
{
	struct timespec now = phi_now();
	char line[1200], when[32];
	struct tm tm;
	size_t n;
	int len;

	if (!gmtime_r(&now.tv_sec, &tm) ||
	    !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(when, sizeof(when), "%lld", (long long)now.tv_sec);
	len = snprintf(line, sizeof(line), "%s.%03ldZ phifs[%ld]: %s: %s\n",
		       when, now.tv_nsec / 1000000L, (long)getpid(),
		       level_name(level), msg);
	if (len < 0)
		return;
	n = (size_t)len;
	if (n >= sizeof(line)) {	/* cut, but still one whole line */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* O_APPEND: one write is one line, whole, at the end.  A failed
	 * write has nowhere to be reported. */
	if (write(log_fd, line, n) < 0)
		return;
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

int phi_log_syslog_available(void)
{
	struct stat st;

	return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

int phi_log_open_file(const char *path)
{
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC |
		  O_NOCTTY, 0600);
	/* A directory, and a FIFO without a reader or a socket (ENXIO),
	 * are refused by open() itself: not regular files either. */
	if (fd < 0)
		return errno == EISDIR || errno == ENXIO ? -EINVAL : -errno;
	if (fstat(fd, &st))
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

void phi_log_to_fd(int fd)
{
	log_fd = fd;
	log_sink = sink_file;
}

void phi_log_write(enum phi_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(log_sink ? log_sink : phi_log_sink_stderr)(level, msg);
}

struct timespec phi_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

uint64_t phi_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct timespec phi_mono_deadline(uint64_t ns)
{
	uint64_t at = phi_mono_ns() + ns;

	return (struct timespec){ (time_t)(at / 1000000000ull),
				  (long)(at % 1000000000ull) };
}

#ifndef NDEBUG
static _Thread_local int locks_held;

void phi_lock_note(int delta)
{
	locks_held += delta;
	assert(locks_held >= 0);
}

int phi_locks_held(void)
{
	return locks_held;
}
#endif
