/*
 * cache_admin.h - what tools/ does to a phifs filesystem besides serving
 * it: format, status, sync and eviction on demand, the history in the
 * regions (list, recover, walk), and the checks and repairs (fsck,
 * scrub, verify, compare, region mended, gc).
 *
 * cache.h holds the data path that fs/ serves the kernel with; this
 * header is for tools/ (and tests) only, and fs/ never includes it.  The
 * rules of cache.h (errors, out-parameters, threads) hold here too.
 */
#ifndef CACHE_ADMIN_H
#define CACHE_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "cache.h"
#include "hist.h"

/*
 * Create a new, empty filesystem in cfg->dir (root directory owned by
 * uid/gid, mode 0755).  Returns PHI_EEXISTFS if one is already there
 * (whether mounted or not), PHI_EBUSYFS if another mkfs holds the lock,
 * -errno if the directory is unusable.
 * Creates nothing on failure.
 */
int cache_format(const struct cache_config *cfg, uid_t uid, gid_t gid);

/* --- sync, eviction and status -------------------------------------- */

/*
 * Ask for everything written so far to be sealed and queued at once, as
 * `phifs sync` does.  Async-signal-safe (the mount calls it from its
 * SIGUSR1 handler): it only bumps a counter the sealer polls.  When the
 * pass that answers it has finished, cache_stats() shows a sync_mark_ns
 * later than the moment of the request, and sync_waiting counts the
 * objects of that pass (and earlier) not yet in every region.
 */
void cache_request_sync(struct cache *c);

/*
 * The same, waited for in this process: seal everything, then wait until
 * every object sealed so far is in every region.  Returns 0; -ETIMEDOUT
 * after timeout_ms (0 = wait for ever); PHI_ELATCHED; 0 at once without
 * regions.
 */
int cache_sync_regions(struct cache *c, unsigned timeout_ms);

/*
 * Evict clean blocks that every region holds, of files not open, least
 * recently used first, until want bytes are freed (UINT64_MAX: all that
 * can go).  The cache does this by itself near cache_size; this is for
 * tests and tools.  Returns the bytes freed.
 */
uint64_t cache_evict(struct cache *c, uint64_t want);

struct cache_region_stats {
	char name[65];
	uint64_t waiting;	/* objects not yet in this region */
	uint64_t waiting_bytes;
	uint32_t fails;		/* consecutive failed uploads */
	int down;		/* marked down after repeated failures */
	int64_t last_ok;	/* last successful upload, epoch seconds; 0 */
	uint64_t bad;		/* bad or missing copies recorded for repair */
	int seeding;		/* being filled from the other regions
				   (cache_config.seed): not a complete copy
				   yet; waiting then includes what is left */
	uint64_t seed_objects, seed_objects_total;	/* copied, of */
	uint64_t seed_bytes, seed_bytes_total;		/* (0 of 0 until the
							   other regions were
							   listed) */
};

/* Summary for `phifs status`. */
struct cache_stats {
	uint64_t inodes;	/* live inodes, root included */
	uint64_t orphans;	/* unlinked but still open */
	uint64_t used_bytes;	/* bytes the local block store occupies */
	uint64_t size_limit;	/* cache_size */
	uint32_t block_size;
	uint64_t format_version;
	int local_sealed;	/* the local store is sealed (local_seal) */
	int counts_only;	/* sealed and opened without the key: no
				   file's size is known, so dirty_data_bytes
				   counts whole blocks */
	char fsid[33];		/* filesystem id, hex */
	int mounted;		/* another process holds the lock */
	long pid;		/* that process, when mounted */
	/* sealing and replication (as last recorded in LMDB: the mount
	 * folds its state every two seconds) */
	uint64_t dirty_blocks;	/* written, not yet sealed */
	uint64_t dirty_bytes;	/* the same in bytes (whole blocks) */
	uint64_t dirty_data_bytes;	/* the bytes they hold: of each, the
					   part within its file's size */
	uint64_t sealed_objects;	/* objects sealed locally, not yet in
					   every region */
	uint64_t sealed_bytes;
	uint64_t resident_blocks;	/* sealed blocks also cached as
					   plaintext */
	uint64_t evicted_blocks;	/* sealed blocks only in the regions */
	uint64_t sync_mark_ns;	/* phi_mono_ns() when the last sync
				   pass began; 0 if none */
	uint64_t sync_waiting;	/* objects of that pass (or earlier) not
				   yet in every region */
	int nregions;
	struct cache_region_stats regions[16];
};

/* Fill *out; a read-only open reports what the mount last recorded.
 * 0 or a negative code. */
int cache_stats(struct cache *c, struct cache_stats *out);

/* What the mount has counted since cache_open(), for the metrics. */
struct cache_region_counters {
	char name[65];
	int up;			/* not marked down */
	uint64_t upload_errors;	/* uploads that failed */
	uint64_t fetch_errors;	/* fetches it failed (backend_get_stats) */
	struct phi_hist_snap upload;	/* how long uploads took */
	struct phi_hist_snap fetch;	/* how long fetches took */
	int64_t complete;	/* epoch seconds it last held every object
				   sealed so far; 0 not yet seen */
};

struct cache_counters {
	uint64_t evictions;	/* blocks evicted */
	uint64_t commits;	/* metadata write transactions committed
				   (each one fdatasync of the LMDB file) */
	uint64_t packs_fetched_whole;	/* for reads (read_ahead) */
	uint64_t frames_from_memory;	/* taken from such a pack */
	uint64_t objects_hashed;	/* hashes of sealed objects for their
					   puts to regions that sign the body
					   (S3): one per object for all such
					   regions, but for retries after a
					   failed put */
	int nregions;		/* 0 without regions */
	struct cache_region_counters regions[16];
};

/* Fill *out from memory: cheap, takes no transaction.  Any thread of the
 * process that opened c read-write. */
void cache_counters(struct cache *c, struct cache_counters *out);

/* --- history in the regions ------------------------------------------ */

/*
 * With regions, every metadata change (names, attributes, xattrs, block
 * maps) also goes to every region: as journal segments, each the records
 * that changed since the one before, within metadata_interval and at
 * every sync, and now and then as a snapshot of the whole.  Each is one
 * sealed object named "m/<32 hex>", a name only the key can read (it
 * holds the kind, a sequence number and the time).  A segment reaches a
 * region only after every pack its records point into.  The mount never
 * deletes or overwrites an object.
 */

/* One metadata object of a region, as its name says. */
struct cache_moment {
	uint64_t seq;		/* 1, 2, ... in the order they were made */
	int64_t time_ms;	/* when, ms since the epoch (CLOCK_REALTIME) */
	int snapshot;		/* 1 snapshot, 0 segment */
	uint64_t size;		/* bytes in the region */
	char key[40];		/* object key, "m/<hex>" */
};

/* Progress of a long run, for a terminal display: done of total units
 * (bytes or objects, named by `what`). */
typedef void cache_progress_fn(void *ctx, const char *what, uint64_t done,
			       uint64_t total);

/*
 * The metadata objects in region (one region's backend, not a replica
 * set) that decode under key and fsid, by sequence number.  *out (NULL
 * when there are none) is the caller's until it gives it back to
 * cache_history_free().  Returns 0 or a region error.
 */
int cache_history_list(struct backend *region, const struct crypt_key *key,
		       const uint8_t fsid[16], struct cache_moment **out,
		       size_t *count);

/* Free what cache_history_list() gave.  NULL is a no-op. */
static inline void cache_history_free(struct cache_moment *v)
{
	free(v);
}

struct cache_recover_args {
	const char *dir;	/* cache_dir: holds no filesystem (leftovers
				   of an interrupted recover are removed) */
	uint32_t block_size;	/* from the superblock */
	const uint8_t *fsid;	/* 16 bytes, from the superblock */
	const struct crypt_key *key;
	struct backend *region;	/* where to read the history from */
	struct backend *const *others;	/* every region reachable, for the
					   highest sequence number in use;
					   may be NULL */
	int nothers;
	int64_t at_ms;		/* the moment; INT64_MAX = the latest */
	cache_progress_fn *progress;	/* may be NULL */
	void *progress_ctx;
};

struct cache_recover_info {
	uint64_t seq;		/* the last object applied */
	int64_t time_ms;	/* its time */
	uint64_t objects;	/* metadata objects read */
	uint64_t bytes;		/* their bytes */
	uint64_t inodes;	/* inodes in the result */
	uint64_t skipped;	/* objects of the region at or before at_ms
				   left out because one before them is
				   missing or damaged (a gap) */
};

/*
 * Rebuild cache_dir from the region's history as it was at at_ms: the
 * latest snapshot at or before it and every segment after that up to it.
 * Works in cache_dir/recover.tmp and moves the result into place at the
 * end, so an interrupted run leaves no filesystem and may be run again.
 * Content is not fetched: every block starts gone and comes back on
 * first read.  The next read-write open with regions writes a snapshot
 * first, starting a new line of history.
 *
 * Returns 0; PHI_EEXISTFS if cache_dir holds a filesystem; -ENOENT if
 * the region has no history at or before at_ms; PHI_EAUTHFAIL /
 * PHI_ECORRUPT for a damaged metadata object (never applied); a region
 * error; -errno.
 */
int cache_recover(const struct cache_recover_args *a,
		  struct cache_recover_info *info);

/*
 * Replay the region's history from its oldest snapshot up to a->at_ms in
 * a->dir (an empty scratch directory, left holding the last state), and
 * after each object applied call fn with it and a view of the filesystem
 * as it was then: a read-only struct cache for cache_lookup(),
 * cache_getattr(), cache_readdir(), cache_readlink(), cache_getxattr()
 * (cache_forget() what lookups take).  fn returns 0 to go on, anything
 * else to stop (returned).  For `phifs versions`.
 */
typedef int cache_moment_fn(void *ctx, const struct cache_moment *m,
			    struct cache *view);
int cache_history_walk(const struct cache_recover_args *a,
		       cache_moment_fn *fn, void *ctx);

/* One line of a report (fsck, scrub, gc); never names a file. */
typedef void cache_report_fn(void *ctx, const char *line);

/* --- the audit trail in the regions (cache_auditseg.c) --------------- */

/*
 * The mount seals the events of the local trail into segments "a/" and
 * 16 hex digits of the first event's number, each holding a run of
 * events with no number left out and the SHA-256 of the segment before
 * it; the newest metadata object binds the chain's head.  Format and
 * crash argument: the top of cache_auditseg.c.  These functions read
 * and check a region with only its key (no cache_dir), or build and
 * parse a segment's plaintext (for tests).
 */
struct buf;

#define CACHE_AUDIT_KEY_LEN 18		/* "a/" + 16 hex digits */
#define CACHE_AUDIT_BASE_KEY "a/base"	/* where a chain cut by gc starts */
#define CACHE_AUDIT_SEG_HEADER 64
#define CACHE_AUDIT_HEAD_SIZE 40

/* The end of a chain: its last event, and the SHA-256 of the plaintext
 * of the segment holding it.  seq 0 (and a zero hash): no segment. */
struct cache_audit_head {
	uint64_t seq;
	uint8_t hash[32];
};

/* A segment's plaintext, parsed; events borrowed from it. */
struct cache_audit_seg {
	uint64_t first, last;	/* its events' numbers, first <= last */
	int64_t time_ms;	/* when it was cut */
	uint8_t prev[32];	/* SHA-256 of the segment before (zero: none) */
	uint8_t hash[32];	/* SHA-256 of this plaintext */
	const uint8_t *events;	/* length (4, big-endian) and bytes, each */
	size_t len;
};

/* "a/<16 hex of first>"; and back: 0, or -EINVAL if key is not one. */
void cache_audit_seg_key(uint64_t first, char out[CACHE_AUDIT_KEY_LEN + 1]);
int cache_audit_seg_key_parse(const char *key, uint64_t *first);

/* A head as CACHE_AUDIT_HEAD_SIZE bytes (the number big-endian, then the
 * hash), as metadata objects carry it; decode: 0 or PHI_ECORRUPT. */
void cache_audit_head_encode(const struct cache_audit_head *h,
			     uint8_t out[CACHE_AUDIT_HEAD_SIZE]);
int cache_audit_head_decode(const void *p, size_t len,
			    struct cache_audit_head *h);

/*
 * Build a segment's plaintext in b (its contents replaced): begin with
 * the number of its first event (>= 1) and the hash of the segment
 * before it, then add each event in order.  0, -EINVAL, or -E2BIG /
 * -ENOMEM from the buffer.
 */
int cache_audit_seg_begin(struct buf *b, uint64_t first,
			  const uint8_t prev[32], int64_t time_ms);
int cache_audit_seg_add(struct buf *b, const void *rec, size_t len);

/* Parse plaintext (len bytes) into s, its hash included: 0, or
 * PHI_ECORRUPT (bad header, no event, a count that does not match the
 * numbers, a truncated event). */
int cache_audit_seg_parse(const void *plain, size_t len,
			  struct cache_audit_seg *s);

/* fn(arg, seq, event, len) on each event of s in order; fn's nonzero
 * return stops it and is returned. */
int cache_audit_seg_events(const struct cache_audit_seg *s,
			   cache_audit_fn *fn, void *arg);

/* A chain checked segment by segment, from a start (zero: seq 0, no
 * hash; or what "a/base" says). */
struct cache_audit_chain {
	struct cache_audit_head head;	/* after the segments so far */
	uint64_t segments, events;
};

enum {
	CACHE_AUDIT_GAP = 1,	/* events between the head and s missing */
	CACHE_AUDIT_OVERLAP,	/* s starts at or before the head */
	CACHE_AUDIT_BROKEN,	/* s's prev is not the head's hash */
};

/* Add s after ch's head: 0 if it follows it, or CACHE_AUDIT_*; the
 * head moves to s either way. */
int cache_audit_chain_add(struct cache_audit_chain *ch,
			  const struct cache_audit_seg *s);

/* What "a/base" of region says the kept chain starts after: 0, a
 * region error (-ENOENT: none), PHI_EAUTHFAIL or PHI_ECORRUPT. */
int cache_audit_base_read(struct backend *region, const struct crypt_key *key,
			  const uint8_t fsid[16], struct cache_audit_head *h);

/* The head the newest metadata object of region binds (seq 0: none, or
 * no metadata), and that object's key into mkey ("" if none).  0, a
 * region error, PHI_EAUTHFAIL or PHI_ECORRUPT. */
int cache_audit_bound_head(struct backend *region,
			   const struct crypt_key *key,
			   const uint8_t fsid[16], struct cache_audit_head *h,
			   char mkey[40]);

/*
 * fn on each event of region's segments, oldest first (`phifs audit
 * --region`).  Stops at a segment that cannot be read and returns its
 * code (PHI_EAUTHFAIL, PHI_ECORRUPT, a region error); fn's nonzero
 * return stops it and is returned.
 */
int cache_audit_region_walk(struct backend *region,
			    const struct crypt_key *key,
			    const uint8_t fsid[16], cache_audit_fn *fn,
			    void *arg);

struct cache_audit_verify {
	uint64_t segments, events;	/* read and chained */
	uint64_t problems;		/* lines reported */
};

/*
 * Check region's trail (`phifs audit verify`): every segment opens (is
 * unaltered), they follow each other with no event missing from the
 * start ("a/base" or event 1), each names the hash of the one before,
 * and the chain reaches, with the same hash, the head its newest
 * metadata object binds.  Each problem is one line through fn naming
 * the object (the region is the caller's to name).  Returns 0 (problems
 * in *out), or a region error when the region could not be read.
 */
int cache_audit_region_verify(struct backend *region,
			      const struct crypt_key *key,
			      const uint8_t fsid[16], cache_report_fn *fn,
			      void *ctx, struct cache_audit_verify *out);

/*
 * Delete the oldest segments of region cut before keep_after_ms (every
 * event in them is older), oldest first, never the newest one and never
 * past one that cannot be read; first "a/base" is stored with the head
 * after the last of them, where verify then starts the chain.  With
 * dry_run nothing changes.  The number deleted (or that would be) into
 * *deleted; 0 or a region error (some may be deleted then).  For gc.
 */
int cache_audit_region_gc(struct backend *region, const struct crypt_key *key,
			  const uint8_t fsid[16], int64_t keep_after_ms,
			  int dry_run, uint64_t *deleted);

/*
 * Check the local metadata: directory entries and their readdir twins,
 * link counts, parents, block maps, orphans.  Reports each problem
 * through fn and returns how many there were (0: consistent), or a
 * negative code.  Works on a read-only open, also while mounted.
 */
long cache_fsck(struct cache *c, cache_report_fn *fn, void *ctx);

struct cache_scrub_args {
	struct backend *const *regions;	/* each region's own backend */
	const char *const *names;	/* their names, for the report */
	int nregions;
	const struct crypt_key *key;
	const uint8_t *fsid;
	int repair;		/* copy good copies over bad or missing */
	cache_report_fn *report;
	cache_progress_fn *progress;
	void *ctx;
	const void *superblock;	/* the superblock that opened the key: each
				   region's "superblock" object must be the
				   same bytes; NULL = not checked */
	size_t superblock_len;
};

struct cache_scrub_result {
	uint64_t objects;	/* distinct objects seen */
	uint64_t bytes;		/* fetched */
	uint64_t bad;		/* copies that failed authentication */
	uint64_t missing;	/* copies a region lacks */
	uint64_t repaired;	/* copies rewritten from a good one */
	uint64_t lost;		/* objects with no good copy anywhere */
	uint64_t unreadable;	/* copies a region failed to give (an
				   error other than "no such object") */
	uint32_t unmended;	/* bit i: region i still lacks or holds a bad
				   copy of something, or could not be read */
};

/*
 * Fetch and authenticate every object (packs frame by frame, metadata
 * objects whole) in every region, and compare each region's superblock
 * with a->superblock; with repair, put a good copy into each region that
 * has a bad one or none.  A region's superblock is repaired last, and
 * only once every other object of that region was repaired, so that an
 * emptied region is either whole again or still refused by mount (never
 * accepted half full).  A region's superblock of this filesystem that
 * verifies under a->key with a higher serial than a->superblock (crypt.h)
 * is newer: counted bad and reported, never overwritten, so the newest
 * key slots win.  Safe while mounted: objects are immutable and a
 * repair writes the same bytes.  Returns 0 (problems are in *out and the
 * report) or a region error that stopped it.
 */
int cache_scrub(const struct cache_scrub_args *a,
		struct cache_scrub_result *out);

/*
 * Where the local store keeps the byte at file offset off in a data file:
 * in slot slot (0, 1 or 2) of its sector when the store is sealed (a
 * sector written once is in slot 0), at off itself when it is plain.
 * For tests and for reading a report of damage.
 */
uint64_t cache_data_where(const struct cache *c, uint64_t off, int slot);

/* The span [*start, *start + *len) of a data file that block blk takes. */
void cache_data_block(const struct cache *c, uint64_t blk, uint64_t *start,
		      uint64_t *len);

/* Whether the local store is sealed (local_seal); -1 if it is but this
 * open has no key to read it. */
int cache_store_sealed(const struct cache *c);

struct cache_verify_result {
	uint64_t files;		/* regular files with a data file */
	uint64_t blocks;	/* resident blocks checked */
	uint64_t unsummed;	/* resident blocks sealed before checksums:
				   not checkable locally */
	uint64_t damaged;	/* resident blocks whose bytes fail their
				   checksum */
	uint64_t unrecorded;	/* blocks holding data no record names */
};

/*
 * Check the local store: every clean, resident block against the
 * CRC-32C its record holds, and that no block holds data where no record
 * names any.  Dirty blocks have no checksum yet and are not checked.
 * Works on a read-only open, also while mounted (a block written
 * meanwhile is not reported).  Each problem is one report line naming
 * the file's path (for the user's own terminal: never log these).
 * Returns the number of problems, or a negative code.
 */
long cache_verify_local(struct cache *c, cache_report_fn *fn, void *ctx,
			struct cache_verify_result *out);

struct cache_compare_args {
	struct backend *region;	/* the region view was rebuilt from */
	const char *label;	/* its name, for the report */
	const struct crypt_key *key;
	cache_report_fn *report;	/* lines naming paths, as above */
	void *ctx;
	cache_progress_fn *progress;	/* may be NULL; gets ctx: the
					   "blocks" fetched and compared */
};

struct cache_compare_result {
	uint64_t files;		/* regular files compared */
	uint64_t blocks;	/* frames fetched, authenticated, compared */
	uint64_t differ;	/* files or names that differ */
	uint64_t pending;	/* differences explained by local changes
				   not yet in every region */
	int was_pending;	/* such changes existed: run phifs sync */
	uint64_t seq_here;	/* the last metadata object written here */
	uint64_t seq_there;	/* the last one in the view */
};

/*
 * Prove that the filesystem of c reads exactly what view (a read-only
 * open of a region's latest metadata, rebuilt by cache_recover()) names:
 * the same names, types, sizes, modes, owners and link targets, the same
 * sealed frames for every block, and, fetched from a->region and
 * authenticated, the same bytes as every resident local block.  While c
 * has changes not yet in every region, differences in names and maps
 * count as pending; content that differs under the same frame never
 * does.  Holds no transaction while it fetches.  Returns the number of
 * files that differ (0: equal), or a negative code (PHI_EAUTHFAIL: view
 * is another filesystem).
 */
long cache_compare(struct cache *c, struct cache *view,
		   const struct cache_compare_args *a,
		   struct cache_compare_result *out);

/*
 * After a scrub found every object of the region named `region` good (or
 * repaired it): forget the bad copies recorded for it (status `bad`) and
 * its failed uploads (`fails`, `down`).  Read-write open; a mount looks
 * at the copies it recorded again by itself (at every cache_request_sync()
 * and now and then), and finds out that a region answers again.  0, or a
 * negative code; an unknown region is no error.
 */
int cache_region_mended(struct cache *c, const char *region);

/* A retention rule or a legal hold: every version of a file under path
 * (absolute, no trailing '/': "/" or "/Patients/anna") stays for
 * period_ms after it was replaced or deleted; INT64_MAX: a hold, kept
 * however old. */
struct cache_keep_rule {
	const char *path;
	int64_t period_ms;
};

struct cache_gc_args {
	struct backend *const *regions;	/* opened with the credentials
					   that may delete */
	const char *const *names;
	int nregions;
	const struct crypt_key *key;
	const uint8_t *fsid;
	int64_t keep_after_ms;	/* now - retention: every moment after it
				   stays restorable */
	int64_t now_ms;		/* the time rules and holds are judged at */
	const struct cache_keep_rule *keep;	/* rules and holds, on top
						   of keep_after_ms */
	size_t nkeep;
	int dry_run;
	cache_report_fn *report;
	void *ctx;
	cache_progress_fn *progress;	/* may be NULL; gets ctx: first the
					   "metadata objects" read, then per
					   region the "objects of region
					   NAME" looked at */
	int64_t audit_keep_after_ms;	/* now - audit_retention: audit
					   segments cut before it may go
					   (0: none), unless a legal hold
					   stands */
};

struct cache_gc_result {
	uint64_t meta_deleted, packs_deleted, leases_deleted;
	uint64_t bytes_deleted;
	uint64_t kept_unreferenced;	/* packs no history names (in flight
					   from a mount, or left by a crash) */
	uint64_t kept_by_rules;	/* packs only retention rules and holds
				   keep */
	uint64_t audit_deleted;	/* audit segments, over every region */
	int audit_held;		/* none deleted: a legal hold stands */
};

/*
 * Delete what no moment after keep_after_ms needs: metadata objects older
 * than the last snapshot at or before it, packs only they referred to,
 * and old lease objects.  With rules (keep[0..nkeep)), the whole history
 * is replayed first: a pack that holds a version a rule still protects
 * stays, and so does the metadata from the snapshot before the oldest such
 * version began; a metadata object that cannot be read then stops the
 * run with nothing deleted.  Packs no metadata object has ever named are
 * kept (a mount may be uploading them).  Packs go first, then metadata,
 * so an interrupted run leaves nothing dangling.  Safe while mounted.
 * Then the audit trail's segments older than audit_keep_after_ms
 * (cache_audit_region_gc()), in no region while a hold (a keep rule of
 * INT64_MAX) stands: the trail about held records is evidence too.
 */
int cache_gc(const struct cache_gc_args *a, struct cache_gc_result *out);

#endif
