/*
 * audit.h - the audit trail's events: what one records, how it is stored,
 * which patient it names, and how a query shows it.
 *
 * An event is one operation on the filesystem (or one query of the trail)
 * with who made it and what it touched.  This module owns the event's
 * byte format; cache/ stores the bytes in order (cache_audit_*() in
 * cache.h) without reading them, fs/ makes events as requests arrive
 * (fs_audit.c), and tools/ reads them back (`phifs audit`).  It calls no
 * other module.
 *
 * The stored form (version 1), all integers little-endian:
 *
 *   u64 ino          first, as cache.h requires; 0 = the inode the
 *                    change made (filled in by cache/)
 *   u8  version (1)  u8 kind  u16 count of strings
 *   i32 err          0 or the positive errno the request was answered with
 *   u64 time_ns      UTC, nanoseconds since 1970
 *   u32 uid, gid, pid, flags
 *   u64 bytes_read, bytes_written
 *   then each string as u16 length and its bytes, in the order of
 *   enum audit_str; a reader takes the strings it knows and skips the rest
 *
 * Threads: every function may be called from any thread.
 */
#ifndef AUDIT_H
#define AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum audit_kind {
	AUDIT_OPEN = 1,		/* flags: the open(2) access mode */
	AUDIT_RELEASE,		/* the last close of an open: bytes moved */
	AUDIT_CREATE, AUDIT_MKDIR, AUDIT_MKNOD, AUDIT_SYMLINK, AUDIT_LINK,
	AUDIT_RENAME,		/* path: the old name, path2: the new one */
	AUDIT_UNLINK, AUDIT_RMDIR,
	AUDIT_TRUNCATE, AUDIT_CHMOD, AUDIT_CHOWN, AUDIT_UTIMES,
	AUDIT_SETXATTR, AUDIT_REMOVEXATTR,	/* detail: the name */
	AUDIT_QUERY,		/* `phifs audit`: detail says what it asked */
	AUDIT_HOLD_ADD,		/* `phifs hold add`: path held; detail: the
				   hold's id, until and reason */
	AUDIT_HOLD_REMOVE,	/* `phifs hold remove`: path; detail: id */
	AUDIT_GC,		/* `phifs gc`: detail: what it deleted */
	/* Later kinds: a reader that does not know one shows it as "?"
	 * (audit_kind_name()) and keeps the rest of the event. */
	AUDIT_MOUNT,		/* the mount began; detail: mountpoint and
				   options */
	AUDIT_UNMOUNT,		/* the mount ended; detail: why (unmounted,
				   a signal and its sender) */
	AUDIT_RESTORE,		/* `phifs restore`: path restored; detail:
				   the moment asked for, the moment found,
				   where to, which region */
	AUDIT_RECOVER,		/* `phifs recover`: detail: region, moment */
	AUDIT_REPAIR,		/* `phifs fsck --repair`: detail: counts */
	AUDIT_KEY_ADD,		/* `phifs key add`: detail: slot, kind,
				   label; never the secret */
	AUDIT_KEY_PASSWD,	/* `phifs key passwd`: detail: slot */
	AUDIT_KEY_REMOVE,	/* `phifs key remove`: detail: slot */
	AUDIT_KEY_ROTATE,	/* `phifs key rotate`: detail: the new key
				   generation, the slot that authorised it */
	AUDIT_KIND_END
};

enum audit_str {
	AUDIT_S_COMM,		/* process name (/proc/PID/comm) */
	AUDIT_S_USER,		/* user name of uid then; "" if none */
	AUDIT_S_GROUP,		/* group name of gid then; "" if none */
	AUDIT_S_HOST,
	AUDIT_S_PATH,		/* from the root, as it was then */
	AUDIT_S_PATH2,		/* rename: the new path; link: the new name;
				   symlink: the target */
	AUDIT_S_PATIENT,	/* the patient folder of path, or "" */
	AUDIT_S_PATIENT2,	/* the patient folder of path2, or "" */
	AUDIT_S_DETAIL,		/* kind-specific: an xattr name, a mode */
	AUDIT_S_END
};

/* One event, decoded or to be encoded; strings are borrowed (see
 * audit_decode()), NULL reads as "". */
struct audit_event {
	uint64_t ino;
	enum audit_kind kind;
	int err;
	uint64_t time_ns;
	uint32_t uid, gid, pid, flags;
	uint64_t bytes_read, bytes_written;
	const char *s[AUDIT_S_END];
};

/* An encoded event: 4 KiB per path is the most the kernel sends. */
#define AUDIT_REC_MAX (64 + AUDIT_S_END * 2 + 3 * 4096 + 5 * 256)

/*
 * Encode ev into out (size bytes).  Strings longer than 4095 bytes are
 * cut.  Returns the length, or -ENOSPC if size is too small.
 */
int audit_encode(const struct audit_event *ev, uint8_t *out, size_t size);

/*
 * Decode rec (len bytes) into ev; the strings of ev point into buf
 * (bufsize bytes, AUDIT_REC_MAX is always enough) and live as long as it.
 * Returns 0, or PHI_ECORRUPT if rec is not an event of a known version.
 */
int audit_decode(const void *rec, size_t len, struct audit_event *ev,
		 char *buf, size_t bufsize);

/*
 * Set the errno of the encoded event rec (len bytes, from
 * audit_encode()), and its inode if that is 0, without encoding it
 * again.
 */
void audit_patch(uint8_t *rec, size_t len, int err, uint64_t ino);

/* "open", "rename", ...; "?" for a kind this build does not know. */
const char *audit_kind_name(enum audit_kind kind);

/* --- patient folders -------------------------------------------------- */

/* Where patient folders are, parsed (audit_patients_parse()). */
struct audit_patients {
	char glob[1024];	/* "" = none */
	int depth;		/* components of glob */
};

/*
 * Where patient folders are: spec is `patient_folders` of the
 * configuration, a glob of folders under the root ("/Patients/" and a
 * star) or a depth ("1": every folder in the root).  Returns 0 and fills *out, or
 * -EINVAL (the spec is neither, or is deeper than 32 levels).  NULL or
 * "" means no patient folders.
 */
int audit_patients_parse(const char *spec, struct audit_patients *out);

/*
 * The patient folder path lies in: the name of its ancestor (or itself)
 * at the depth of the glob, if that folder matches.  Writes it into out
 * (size bytes) and returns 1; returns 0 and writes "" if none.
 */
int audit_patient_of(const struct audit_patients *p, const char *path,
		     char *out, size_t size);

/* --- who ------------------------------------------------------------------ */

/*
 * The user and group names of uid and gid on this machine now, "" for
 * an id with no name.  Looked up at most once a minute per id.
 */
void audit_names(uid_t uid, gid_t gid, char *user, size_t ulen,
		 char *group, size_t glen);

/* The name of process pid (/proc/PID/comm) now, "" if it is gone.  Keeps
 * the file of the last 64 processes open, bound to the process, not to
 * its number: never a stale name, one pread() per call. */
void audit_comm(pid_t pid, char *out, size_t size);

/* This machine's host name, looked up once. */
const char *audit_host(void);

/* --- showing ---------------------------------------------------------- */

/*
 * Write ev as one line of text, or as one JSON object on one line
 * (json != 0), ending in a newline, into out.  Returns the length
 * (cut to size - 1 if longer).
 */
size_t audit_format(const struct audit_event *ev, uint64_t seq, int json,
		    char *out, size_t size);

/*
 * The most audit_format_fhir() writes for one event: every string of an
 * event escaped (6 bytes for a byte at most), several of them more than
 * once, and the paths in base64 too.
 */
#define AUDIT_FHIR_MAX (1u << 20)

/*
 * Write ev as one FHIR R4 AuditEvent resource in JSON, on one line ending
 * in a newline (NDJSON), into out (size bytes, AUDIT_FHIR_MAX is always
 * enough).  type and subtype are DICOM codes (DCM) for the kind, action
 * is C, R, U, D or E, outcome 0, 4 or 8 with the errno's text; agents
 * are the user (requestor, uid as identifier, the host as network
 * address) and the process (pid); the source is phifs on the host; the
 * entities are the path(s) with the inode and the patient (role
 * Patient).  Strings are JSON-escaped; a string that is not valid UTF-8
 * is written with U+FFFD for each bad byte, and a path so damaged also
 * as its bytes in base64 (an entity detail), so nothing is lost.
 * Returns the length, or -ENOSPC (nothing usable in out).
 */
int audit_format_fhir(const struct audit_event *ev, char *out, size_t size);

/* The SD-ID of audit_format_syslog()'s structured data: a private
 * name under the placeholder enterprise number 32473, which RFC 5612
 * reserves for documentation. */
#define AUDIT_SYSLOG_SDID "phifs@32473"

/*
 * Write ev as one RFC 5424 syslog message, without framing or newline:
 *
 *   <PRI>1 TIMESTAMP HOST phifs PROCID KIND [phifs@32473 seq="" ...] TEXT
 *
 * PRI is facility authpriv (10) with severity notice (5) for a success,
 * warning (4) for a refusal; TIMESTAMP is the event's time in UTC to the
 * microsecond; HOST the event's host ("-" if none); procid the sending
 * process; KIND audit_kind_name().  The structured data carries seq,
 * errno, uid, gid, pid, ino, bytes_read, bytes_written and each string
 * of the event that is not empty (user, group, process, path, path2,
 * patient, patient2, detail), values escaped as RFC 5424 says ('"', '\'
 * and ']' after a backslash) with control characters and bytes that are
 * not UTF-8 as U+FFFD.  The message is audit_format()'s text line
 * without its newline (MSG-ANY: no BOM).  Returns the length, or
 * -ENOSPC if it does not fit in size bytes (AUDIT_FHIR_MAX always does).
 */
int audit_format_syslog(const struct audit_event *ev, uint64_t seq,
			long procid, char *out, size_t size);

/* Parse a time given to a query: seconds since 1970 ("@1700000000"),
 * or "YYYY-MM-DD[THH:MM[:SS]][Z]" as UTC.  0 and *ns, or -EINVAL. */
int audit_parse_time(const char *s, uint64_t *ns);

#endif
