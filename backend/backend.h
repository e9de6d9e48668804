/*
 * backend.h - where sealed objects go: the object-store interface.
 *
 * This module owns
 *   - the parsing and validation of a region's url (backend_url_parse());
 *   - the object interface: a struct backend is one place that stores
 *     immutable objects under opaque keys, reached through one wrapper per
 *     method (backend_put/get/head/list/del/close);
 *   - the drivers: "dir" (a local folder), "replica" (a set of N regions
 *     with fan-out writes and read failover) and the test-only "fault"
 *     backend that wraps another and makes it fail on demand.  The "s3"
 *     driver comes later behind the same interface.
 *
 * Keys.  1..BACKEND_KEY_MAX bytes of [A-Za-z0-9._/-]; no leading or
 * trailing '/', no "//", no "..", and no '/'-separated part starting with
 * '.' (the dir driver keeps its temporary files under such names).  Every
 * wrapper refuses any other key with -EINVAL before a driver sees it.
 * On the dir driver a key's parts are folders, so "a" and "a/b" cannot
 * both exist there (the second put fails with -ENOTDIR); keep a key
 * layout where an object name is never also a folder name.
 *
 * Errors.  0 or a negative errno, or a PHI_E* code from phi.h
 * (PHI_EUNREACHABLE, PHI_EAUTH, PHI_EAUTHFAIL ...).  A missing object is
 * -ENOENT from get, head and del.
 *
 * Threads.  Every backend in this module may be called from any number of
 * threads at once; backend_close() must be the last call on a handle.
 */
#ifndef BACKEND_H
#define BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- region urls ---------------------------------------------------- */

enum backend_kind {
	BACKEND_DIR = 1,	/* dir:/absolute/path */
	BACKEND_S3 = 2,		/* s3://bucket[/prefix] */
};

/* A parsed region url.  Self-contained: copy it freely.  Unused strings
 * are "". */
struct backend_url {
	enum backend_kind kind;
	char path[1024];	/* dir: the absolute folder */
	char bucket[64];	/* s3: bucket name (3..63, S3 naming rules) */
	char prefix[512];	/* s3: key prefix without slashes at the ends,
				   "" when absent */
};

/*
 * Parse url into *out.  Returns 0, or -EINVAL with a short reason in
 * err ("dir: needs an absolute path", "unknown scheme 'ftp'"); *out is
 * left alone on failure.
 */
int backend_url_parse(const char *url, struct backend_url *out, char *err,
		      size_t errlen);

/* ---- objects -------------------------------------------------------- */

#define BACKEND_KEY_MAX 512	/* bytes, without the NUL */
#define BACKEND_REPLICA_MAX 16	/* regions in one replica set */

struct backend;			/* opaque */

/* Methods, as bits: for ops masks and per-method counters. */
enum backend_op {
	BACKEND_OP_PUT = 1 << 0,
	BACKEND_OP_GET = 1 << 1,
	BACKEND_OP_HEAD = 1 << 2,
	BACKEND_OP_LIST = 1 << 3,
	BACKEND_OP_DEL = 1 << 4,
};

/* Called by backend_list() once per key; a non-zero return stops the
 * listing, and backend_list() returns that value. */
typedef int backend_list_fn(void *ctx, const char *key, uint64_t size);

/* 0 if key obeys the rules above, else -EINVAL. */
int backend_key_check(const char *key);

/*
 * Open the backend a url names, for tools/.  dir: urls open the folder
 * (see backend_dir_open()); s3: urls fail with -ENOTSUP until the s3
 * driver lands.  On failure err says why, without credentials, and *out
 * is NULL.
 */
int backend_open(struct backend **out, const struct backend_url *url,
		 char *err, size_t errlen);

/*
 * Store data under key, replacing any object there.  Atomic: a concurrent
 * or later reader sees the whole old object, the whole new one, or (if
 * there was none) nothing.  Durable on return.  Objects are meant to be
 * written once; overwriting is allowed (a lease, a retried upload) but
 * callers must not rely on which of two racing puts wins.
 */
int backend_put(struct backend *be, const char *key, const void *data,
		size_t len);

/*
 * Append bytes [off, off + len) of the object to out; len 0 means "to the
 * end".  A range reaching past the end is cut at the end, and one starting
 * at or past it appends nothing (like pread).  Returns 0, -ENOENT, -E2BIG
 * when out's cap is too small, or a region error.  On failure out is as
 * it was before the call.
 */
int backend_get(struct backend *be, const char *key, uint64_t off,
		uint64_t len, struct buf *out);

/* The object's size into *size.  Returns 0 or -ENOENT or a region error;
 * *size is set only on success. */
int backend_head(struct backend *be, const char *key, uint64_t *size);

/*
 * Call fn for every key that starts with prefix ("" for all), in byte
 * order (strcmp), with the object's size.  prefix follows the key rules
 * for its characters and length but may be empty or end with '/'.
 * Returns 0, the first non-zero value fn returned, or an error (before
 * fn was called for any key).  fn may call the backend: no lock is held.
 */
int backend_list(struct backend *be, const char *prefix,
		 backend_list_fn *fn, void *ctx);

/* Remove the object.  Returns 0, -ENOENT if there was none, or a region
 * error. */
int backend_del(struct backend *be, const char *key);

/* Free be and everything it owns.  NULL is a no-op. */
void backend_close(struct backend *be);

/* "dir", "replica", "fault" (later "s3").  Static storage. */
const char *backend_name(const struct backend *be);

/* ---- the dir driver ------------------------------------------------- */

/*
 * Objects as files under the folder path: key "a/b" is the file path/a/b,
 * its folders made on demand.  put writes a temporary file (".tmp.*",
 * never listed) in the target folder, fsyncs it, renames it over the final
 * name and fsyncs the folder.  Temporary files of a crashed process stay
 * behind until someone removes them.  Empty folders left by del stay.
 *
 * Returns 0, -ENOENT (no such folder), -ENOTDIR (not a folder), -EACCES
 * (not writable and searchable), -EROFS or -ENOMEM; *out is NULL on
 * failure.
 */
int backend_dir_open(struct backend **out, const char *path);

/* ---- the replica set ------------------------------------------------ */

/*
 * One backend over n regions (1..BACKEND_REPLICA_MAX), region i being
 * regions[i].  Takes ownership of the n backends, on failure too (they are
 * closed); the array itself stays the caller's.
 *
 *   put   goes to every region, one after the other in index order; 0
 *         only if all succeeded, else the first region's error.  A region
 *         that failed may hold the object anyway.
 *   get,  try regions healthiest first (a region whose last call failed
 *   head  comes after those whose last call succeeded; ties keep index
 *         order) and fail over on any error, -ENOENT included.  When all
 *         fail: an error that says "maybe there" (unreachable, EIO...)
 *         wins over a bad copy, which wins over -ENOENT, so -ENOENT means
 *         no region reported anything else.
 *   list  the union of the keys of every region that answered, sorted and
 *         without duplicates (the size is the first answering region's, in
 *         index order); an error only if no region answered.
 *   del   from every region; 0 if at least one region deleted it and the
 *         others deleted it or did not have it, -ENOENT if none had it,
 *         else the first region's error.
 *
 * Returns 0, -EINVAL (bad n) or -ENOMEM; *out is NULL on failure.
 */
int backend_replica_open(struct backend **out, struct backend **regions,
			 int n);

/* Number of regions.  Any other backend counts as a set of one. */
int backend_replica_count(const struct backend *be);

/* Region i (0-based, < backend_replica_count()), borrowed: valid until
 * be is closed.  For a backend that is not a replica set, i must be 0 and
 * the answer is be itself. */
struct backend *backend_replica_region(struct backend *be, int i);

/* Judges one copy of an object: 0 if good, non-zero (a negative code, say
 * PHI_EAUTHFAIL) if not. */
typedef int backend_verify_fn(void *ctx, const void *data, size_t len);

/*
 * backend_get() for an object the caller can check: each region's copy
 * goes through verify (if not NULL) and a copy it refuses is dropped and
 * the next region tried.  If bad_mask is not NULL it is set, success or
 * not, to the regions (bit i for region i) that answered with a bad copy
 * or no copy at all; regions that were not reached or not asked are not
 * in it, so repair can rewrite exactly the marked ones.  Works on any
 * backend (a set of one).  Returns as backend_get(); when every copy was
 * bad, verify's code (PHI_EAUTHFAIL if it returned a positive value).
 */
int backend_replica_get_verified(struct backend *be, const char *key,
				 uint64_t off, uint64_t len, struct buf *out,
				 backend_verify_fn *verify, void *ctx,
				 int *bad_mask);

/* ---- the fault backend (tests only) --------------------------------- */

struct backend_fault {
	int fail_nth;		/* fail only the Nth matching call from now,
				   1-based; 0 = off */
	int fail_all;		/* every matching call fails */
	int error;		/* code to fail with; 0 = PHI_EUNREACHABLE */
	int corrupt_get;	/* flip one byte in the middle of what every
				   matching get returns */
	unsigned latency_ms;	/* sleep before every matching call */
	int ops_mask;		/* BACKEND_OP_* the above apply to; 0 = all */
};

/*
 * A backend that passes every call to inner, unless told to misbehave by
 * backend_fault_set().  Takes ownership of inner, on failure too.
 * Returns 0 or -ENOMEM; *out is NULL on failure.  A call made to fail
 * never reaches inner.
 */
int backend_fault_open(struct backend **out, struct backend *inner);

/* Replace the fault settings (NULL: behave) and restart the fail_nth
 * count.  be must be a fault backend.  Any thread. */
void backend_fault_set(struct backend *be, const struct backend_fault *f);

/* Calls of one method (a single BACKEND_OP_* bit) since open, failed or
 * not. */
unsigned long backend_fault_calls(struct backend *be, enum backend_op op);

#endif
