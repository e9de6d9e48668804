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
 *     backend that wraps another and makes it fail on demand, and "s3"
 *     (any S3-compatible object store, over libcurl).
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
#include "hist.h"

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
 * (see backend_dir_open()); s3: urls need endpoint and credentials, which
 * a url alone does not carry, so they fail here with -ENOTSUP: open them
 * with backend_open_region().  On failure err says why, without
 * credentials, and *out is NULL.
 */
int backend_open(struct backend **out, const struct backend_url *url,
		 char *err, size_t errlen);

/*
 * One region's settings, the one structure that carries them from the
 * configuration to the driver: tools/ parses each [region NAME] section
 * into one (a key of the section is the field of the same name; backend/
 * never reads the configuration file), backend_open_region() opens the
 * region it describes, and the s3 driver reads its s3 settings.
 *
 * Ownership.  Every string is NULL or malloc()ed and owned by the struct;
 * NULL and "" both mean "not set".  Start with backend_region_init() and
 * end with backend_region_release(), which wipes the credentials before
 * freeing.  A struct whose strings are borrowed (literals in a test, a
 * shallow copy made to change one field for one call) must never be
 * released.  Numbers 0 mean the default.
 */
#define BACKEND_REGION_NAME_MAX 64

struct backend_region {
	char name[BACKEND_REGION_NAME_MAX + 1];	/* NAME, for messages;
						   "" = "?" ("s3" in the
						   s3 driver) */
	char *url;			/* dir:/PATH or s3://BUCKET[/PREFIX] */

	/* s3 only (keys of the configuration file) */
	char *endpoint;			/* scheme://host[:port][/]; unset =
					   https://s3.REGION.amazonaws.com */
	char *region;			/* signing region; unset = us-east-1 */
	int path_style;			/* 1 /bucket/key, 0 bucket.host/key,
					   -1 unset: path-style for an IP or
					   localhost endpoint, else
					   virtual-host */
	int allow_http;			/* http:// to a non-loopback host
					   (warns) */
	char *credentials_file;		/* see backend_s3_load_credentials();
					   unset = the environment */
	char *gc_credentials_file;	/* tools/ gc opens the region with
					   this in place of credentials_file;
					   no driver reads it */
	char *ca_file;			/* CA bundle for TLS; unset = the
					   system's */

	/* s3 tuning, not in the configuration file (0 = the default) */
	unsigned max_transfers;		/* transfers in flight at once (8) */
	uint64_t multipart_threshold;	/* objects larger go multipart
					   (64 MiB) */
	uint64_t part_size;		/* multipart part size (16 MiB; at
					   least 5 MiB, raised so that no
					   object needs more than 1000
					   parts) */
	unsigned max_attempts;		/* tries per request (5) */
	unsigned connect_timeout_ms;	/* per connection attempt (5000) */
	unsigned low_speed_time_s;	/* abort a transfer slower than
					   1 KiB/s for this long (30) */

	/* s3 credentials: secrets, never in the configuration file.  Unset,
	 * backend_open_region() loads them for the open only (from
	 * credentials_file, else the environment); backend_s3_open() needs
	 * them set.  Wiped by backend_region_release(). */
	char *access_key;
	char *secret_key;
};

/* An empty region: every string unset, path_style -1 (unset), every
 * number 0. */
void backend_region_init(struct backend_region *r);

/* Free every string of r, wiping access_key and secret_key first, and
 * leave r as backend_region_init() makes it.  NULL is a no-op. */
void backend_region_release(struct backend_region *r);

/*
 * Open the region r describes: parse r->url, then for dir: as
 * backend_open(); for s3: load the credentials (file, else environment)
 * unless r holds them, open the s3 driver and wipe the loaded secrets.
 * r is only read; the driver copies what it keeps.  Does no network I/O:
 * a bad endpoint or key shows at the first call.  Returns 0, -EINVAL (bad
 * url or setting), PHI_ECONFIG (credentials), -ENOMEM or what the driver
 * returns; on failure err says why, naming the region but no secret, and
 * *out is NULL.
 */
int backend_open_region(struct backend **out,
			const struct backend_region *r, char *err,
			size_t errlen);

/*
 * A message for the latest failure seen by be, for the user: "region b:
 * access denied: check credentials_file".  "" if be has failed no call
 * yet or keeps no messages (every driver but s3; a replica set or fault
 * backend does not look into its regions).  Never holds a credential or
 * signature.  The string is this thread's copy, valid until this thread
 * calls backend_last_error() again.  Any thread.
 */
const char *backend_last_error(struct backend *be);

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
 * backend_put() of data whose SHA-256 the caller knows already (sha256,
 * 32 bytes): an S3 region signs that instead of hashing the body again,
 * so an object sent to several regions is hashed once.  The caller must
 * pass the digest of exactly these bytes: a wrong one makes the server
 * refuse the put.  Backends that sign no body ignore it.
 * backend_signs_body(): whether be would use it for a put of len bytes
 * (an S3 region, also behind a fault backend, but for a multipart
 * upload, which signs each part), so that no one hashes for nothing.
 */
int backend_put_digest(struct backend *be, const char *key, const void *data,
		       size_t len, const uint8_t sha256[32]);
int backend_signs_body(struct backend *be, size_t len);

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

/* "dir", "replica", "fault", "s3".  Static storage. */
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

/*
 * The dir driver follows path: every call opens the folder path names at
 * that moment, never a handle kept from open.  It must still be the
 * region that was opened, else the call fails with PHI_EREPLACED and
 * changes nothing:
 *   - if the object BACKEND_DIR_MARKER was in the folder at open, it must
 *     be there now (a folder emptied, deleted and made again, or swapped
 *     for an empty one is refused until the region is put back; a
 *     complete copy put in its place is taken);
 *   - if not, the folder must be the very one opened (same device and
 *     inode).
 * A folder missing at path fails the same way.
 */
#define BACKEND_DIR_MARKER "superblock"

/* ---- the s3 driver -------------------------------------------------- */

/*
 * The s3 driver: objects in the bucket of r->url (s3://BUCKET[/PREFIX])
 * under PREFIX + "/" + key, over HTTP(S) with AWS Signature Version 4.
 * r->access_key and r->secret_key must be set; r is only read and every
 * string kept is copied.
 *
 *   put   one PUT with Content-Length, or above multipart_threshold a
 *         multipart upload (parts sent one after the other; an upload
 *         that fails is aborted).  Atomic as S3 is: readers see the old
 *         or the new object.
 *   get   GET, with a Range header unless the whole object is wanted;
 *         a range starting at or past the end (416) appends nothing.
 *   head  HEAD; its Content-Length is the size.  A missing bucket also
 *         reads as -ENOENT here (HEAD replies carry no error code).
 *   list  ListObjectsV2 pages (at most 1000 keys each) followed by their
 *         continuation tokens; all pages are read before fn is called.
 *         Objects whose names are not valid keys are skipped.
 *   del   HEAD then DELETE: S3 answers a DELETE of a missing object with
 *         success, so the HEAD is what gives -ENOENT.
 *
 * Requests that fail with 5xx, 429/SlowDown, a timeout or a dropped
 * connection are retried with exponential backoff and jitter, up to
 * max_attempts tries; other 4xx never are.  Failures come back as
 * PHI_EAUTH (refused credentials, wrong signing region), PHI_ENOBUCKET,
 * PHI_ECLOCKSKEW, PHI_ETLS, PHI_EUNREACHABLE (refused, timed out, no
 * such host, server unavailable after the retries), -ENOENT, or -EIO
 * (anything else); backend_last_error() then says what to do.
 *
 * Refuses (-EINVAL, with err saying why) a url that is not s3://, and an
 * http:// endpoint whose host is not loopback (127.0.0.0/8, ::1,
 * localhost) unless allow_http, in which case it logs a warning.  Does no
 * network I/O.  The secret is kept only inside the handle and wiped by
 * backend_close().  Returns 0, -EINVAL or -ENOMEM; *out is NULL on
 * failure.
 */
int backend_s3_open(struct backend **out, const struct backend_region *r,
		    char *err, size_t errlen);

/*
 * Read the credentials file at path: lines "access_key_id = ..." and
 * "secret_access_key = ..." ("aws_" in front of either name is accepted;
 * '#' and ';' start comments, [sections] are ignored).  A file that group
 * or others may read (mode & 077), or that is not a regular file, is
 * refused.  With path NULL or "", AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY are used instead.  On success *access_key and
 * *secret_key are the caller's until it gives them back to
 * backend_s3_credentials_free(), which wipes them (never free() them).
 * Returns 0, PHI_ECONFIG (mode, missing or malformed values, no
 * environment variables) or -errno (cannot open); err says why, never
 * quoting a value; both outputs NULL on failure.
 */
int backend_s3_load_credentials(const char *path, char **access_key,
				char **secret_key, char *err, size_t errlen);

/* Wipe and free what backend_s3_load_credentials() gave.  Either may be
 * NULL. */
void backend_s3_credentials_free(char *access_key, char *secret_key);

/*
 * Delete the objects keys[0..n) (each a valid key) from an s3 backend
 * with multi-object delete requests (POST ?delete, up to 1000 keys each,
 * with Content-MD5).  Missing objects are not an error.  Returns 0, or the
 * first failure (a key check's -EINVAL, a request's error, or -EIO if the
 * server refused some key); keys before a failed request may be gone.
 * be must be an s3 backend.
 */
int backend_s3_del_many(struct backend *be, const char *const *keys,
			size_t n);

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

/* Gets of objects (not heads) that went to one region of a set. */
struct backend_get_stats {
	uint64_t errors;	/* ended in an error, a copy verify refused
				   or none (-ENOENT) */
	struct phi_hist_snap time;	/* how long each took */
};

/*
 * The gets region i of the replica set be has served since the set was
 * opened, for the metrics; all zero for a backend that is not a replica
 * set.  Any thread; takes no lock.
 */
void backend_replica_get_stats(struct backend *be, int i,
			       struct backend_get_stats *out);

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
	int signs_body;		/* act as a region that signs a put's body
				   (S3): backend_signs_body() says yes, and
				   a put given a digest that is not its
				   body's fails with -EIO, as the server
				   refuses it */
};

/*
 * A backend that passes every call to inner, unless told to misbehave by
 * backend_fault_set().  Takes ownership of inner, on failure too.
 * Returns 0 or -ENOMEM; *out is NULL on failure.  A call made to fail
 * never reaches inner.
 */
int backend_fault_open(struct backend **out, struct backend *inner);

/*
 * A fault backend whose settings live in the file at path (a test hook:
 * tools/ opens every region this way when PHIFS_FAULT_DIR is set, with
 * path $PHIFS_FAULT_DIR/<region name>).  The file is read at open and
 * again whenever it changes (checked with one stat() at every call), and
 * each new reading restarts the fail_nth count.  A missing file means no
 * faults; so does one that cannot be read or parsed (logged as an error).
 * Write it whole and rename it into place so that no call reads half of
 * it.  Its format is backend_fault_parse()'s.  path is copied.  Takes
 * ownership of inner, on failure too.  Returns 0 or -ENOMEM; *out is NULL
 * on failure.  backend_fault_set() overrides the file until it changes.
 */
int backend_fault_open_file(struct backend **out, struct backend *inner,
			    const char *path);

/*
 * Parse fault settings written as words separated by blanks or newlines
 * ('#' comments to the end of the line):
 *
 *   fail_all  fail_nth=N  corrupt_get  latency_ms=N  signs_body
 *   error=unreachable|auth|nobucket|clockskew|tls|authfail|corrupt|
 *         eio|enoent|eacces|enospc|etimedout
 *   put get head list del    the methods the faults apply to (ops_mask);
 *                            none named = all
 *
 * e.g. "fail_all put get" or "latency_ms=200".  Empty text is no faults.
 * Returns 0, or -EINVAL for an unknown word (*out untouched).
 */
int backend_fault_parse(const char *text, struct backend_fault *out);

/* Replace the fault settings (NULL: behave) and restart the fail_nth
 * count.  be must be a fault backend.  Any thread. */
void backend_fault_set(struct backend *be, const struct backend_fault *f);

/* Calls of one method (a single BACKEND_OP_* bit) since open, failed or
 * not. */
unsigned long backend_fault_calls(struct backend *be, enum backend_op op);

/* Calls of one method that have begun (counted by
 * backend_fault_calls()) and not yet returned: a test can tell that a
 * call is still under way, in its latency_ms or in inner, without
 * timing it. */
unsigned long backend_fault_busy(struct backend *be, enum backend_op op);

#endif
