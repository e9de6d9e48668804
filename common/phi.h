/*
 * phi.h - what every phifs module shares: error codes, logging, time.
 *
 * Errors.  Every function in phifs returns 0 (or a byte count) on success
 * and a negative errno on failure.  Failures errno cannot name get codes
 * in the reserved range below PHI_ERR_BASE; phi_strerror() describes both.
 * Each seam translates once: fs/ turns these into errno for the kernel in
 * one place (fs_errno()), tools/ turns them into a message for the user.
 *
 * Logging.  PHI_LOG() tests the threshold before evaluating its arguments.
 * Messages say what failed first, in lowercase, without a full stop, and
 * name inodes and object ids, never file names or contents.
 *
 * Thread safety: all of this may be called from any thread.
 */
#ifndef PHI_H
#define PHI_H

#include <stdarg.h>
#include <stdint.h>
#include <time.h>

/* Codes errno cannot express.  Keep them below -PHI_ERR_BASE. */
#define PHI_ERR_BASE 4096
enum phi_err {
	PHI_ECORRUPT = -(PHI_ERR_BASE + 1),	/* on-disk state fails a check */
	PHI_ENOFS = -(PHI_ERR_BASE + 2),	/* no filesystem at this cache_dir */
	PHI_EEXISTFS = -(PHI_ERR_BASE + 3),	/* a filesystem is already there */
	PHI_EBUSYFS = -(PHI_ERR_BASE + 4),	/* cache_dir in use by a mount */
	PHI_EVERSION = -(PHI_ERR_BASE + 5),	/* format version we cannot read */
	PHI_ECONFIG = -(PHI_ERR_BASE + 6),	/* bad configuration */
	PHI_ELATCHED = -(PHI_ERR_BASE + 7),	/* an earlier failure left local
						   state uncertain; remount */
	PHI_EUNREACHABLE = -(PHI_ERR_BASE + 8),	/* region did not answer */
	PHI_EAUTH = -(PHI_ERR_BASE + 9),	/* region refused credentials */
	PHI_EBADKEY = -(PHI_ERR_BASE + 10),	/* wrong passphrase or key file */
	PHI_EAUTHFAIL = -(PHI_ERR_BASE + 11),	/* object failed authentication
						   (tampered, swapped, other fs) */
	PHI_ENOBUCKET = -(PHI_ERR_BASE + 12),	/* region's bucket does not exist */
	PHI_ECLOCKSKEW = -(PHI_ERR_BASE + 13),	/* region refused our clock */
	PHI_ETLS = -(PHI_ERR_BASE + 14),	/* TLS handshake or certificate
						   verification failed */
	PHI_EREPLACED = -(PHI_ERR_BASE + 15),	/* region is not what was opened:
						   folder moved, replaced or
						   emptied */
};

/* Message for a phifs code or a negative errno.  Static storage, except
 * strerror()'s for an errno the C library does not know, which lasts
 * until the next strerror() in the thread. */
const char *phi_strerror(int code);

enum phi_log_level {
	PHI_LOG_ERR = 3,
	PHI_LOG_WARNING = 4,
	PHI_LOG_NOTICE = 5,
	PHI_LOG_INFO = 6,
	PHI_LOG_DEBUG = 7,
};

/* Messages above this level are dropped.  Default PHI_LOG_NOTICE. */
extern int phi_log_threshold;

/* A sink receives the formatted line without trailing newline. */
typedef void phi_log_sink_fn(enum phi_log_level level, const char *msg);

/* Replace the sink (NULL restores stderr).  Call before threads start. */
void phi_log_set_sink(phi_log_sink_fn *sink);

/* The default sink: "phifs: LEVEL: MESSAGE" on stderr (for a sink that
 * wraps it). */
void phi_log_sink_stderr(enum phi_log_level level, const char *msg);

/* Send messages to syslog instead of stderr (for a daemonized mount). */
void phi_log_to_syslog(const char *ident);

/* Whether syslog can take messages here: glibc's syslog() sends them to
 * the socket /dev/log and silently drops them when there is none (as in
 * many containers). */
int phi_log_syslog_available(void);

/*
 * Open path for appending log lines: created with mode 0600 if absent;
 * anything but a regular file is refused (-EINVAL), without blocking on a
 * FIFO.  Returns the descriptor (close-on-exec) or a negative errno.
 */
int phi_log_open_file(const char *path);

/*
 * Send messages to fd (from phi_log_open_file(), now owned by the sink)
 * instead of stderr: one write(2) per line, so that lines of several
 * threads never mix, each "2026-11-29T10:00:03.120Z phifs[PID]: LEVEL:
 * MESSAGE" (UTC).  Call before threads start.
 */
void phi_log_to_fd(int fd);

/* Format one message (cut at 1023 bytes) and hand it to the sink,
 * whatever the threshold: PHI_LOG() is the one that tests it. */
void phi_log_write(enum phi_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define PHI_LOG(level, ...)						\
	do {								\
		if ((int)(level) <= phi_log_threshold)			\
			phi_log_write((level), __VA_ARGS__);		\
	} while (0)

/* Current wall-clock time (CLOCK_REALTIME). */
struct timespec phi_now(void);

/* Nanoseconds of CLOCK_MONOTONIC: for intervals and deadlines. */
uint64_t phi_mono_ns(void);

/* CLOCK_MONOTONIC now plus ns, as pthread_cond_timedwait() wants it for a
 * condition made with pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec phi_mono_deadline(uint64_t ns);

/*
 * Locks the calling thread holds, counted in debug builds only: a module
 * notes each of its mutexes as it takes (+1) and drops (-1) it (cache/
 * does, through its lock wrappers), and backend/ asserts the count is
 * zero when a call to a region starts: no lock is held across a call out
 * of a module.  With NDEBUG (release builds) both compile to nothing.
 */
#ifdef NDEBUG
static inline void phi_lock_note(int delta)
{
	(void)delta;
}

static inline int phi_locks_held(void)
{
	return 0;
}
#else
/* Add delta (+1 taken, -1 dropped) to this thread's count of locks. */
void phi_lock_note(int delta);
/* This thread's count of locks held. */
int phi_locks_held(void);
#endif

#endif
