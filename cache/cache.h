/*
 * cache.h - the local state of one phifs filesystem.
 *
 * The cache owns everything under cache_dir:
 *
 *   meta/        LMDB environment: inodes, directory entries (by name and by
 *                readdir cookie), extended attributes, orphans, superblock
 *   data/XX/INO  the local block store: one sparse file per regular-file
 *                inode, holding its content at its own offsets (holes stay
 *                holes).  Named by inode number only.
 *   packs/ID     sealed objects (packs of frames) waiting for upload to
 *                some region; deleted once every region holds them
 *   lock         flock()ed by the one process that has the cache open
 *                read-write
 *
 * Every metadata change goes through one write transaction helper in
 * cache_meta.c (meta_write()), which is where the disaster-recovery journal
 * will hook in.  Content goes through cache_write()/cache_read_extent(); the
 * sealing of blocks into immutable objects will live behind these calls
 * without fs/ noticing.
 *
 * Durability.  Metadata commits are ordered (LMDB with MDB_NOMETASYNC keeps
 * integrity across a power loss); a write() only touches the data file and
 * an in-memory record of the new size and times, folded into LMDB by a
 * background thread every two seconds (one transaction for all files), and
 * at fsync, setattr, the last reference and cache_close().
 * cache_fsync() makes one file's data and all metadata durable on the
 * local disk.  A crash loses at most what
 * was written since the last fsync; after a crash the next cache_open()
 * frees the inodes that were unlinked but still open.
 *
 * Lookup counts.  Every call that returns an entry (struct stat for a name)
 * to the caller takes one lookup reference on that inode, as the kernel
 * counts them; cache_forget() drops them.  An unlinked inode is freed when
 * its lookup count and open count both reach zero.
 *
 * Threads.  All calls may be made concurrently from any thread once
 * cache_open() has returned, except cache_close().
 *
 * Errors.  0 or a positive count on success; a negative errno, or a PHI_E*
 * code from phi.h, on failure.  Out-parameters are only written on success.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

struct cache;
struct cache_file;
struct backend;
struct crypt_key;

#define CACHE_ROOT_INO 1
#define CACHE_NAME_MAX 255
#define CACHE_XATTR_SIZE_MAX 65536

/*
 * Settings from [filesystem]; strings are borrowed during the call only.
 * Zero in an optional field means its default.
 */
struct cache_config {
	const char *dir;	/* cache_dir, must exist and be writable */
	uint64_t size_limit;	/* cache_size in bytes */
	uint32_t block_size;	/* fixed at format time */
	const uint8_t *fsid;	/* cache_format(): the 16-byte filesystem id
				   of the superblock; NULL = a random one */

	/* Sealing and replication (cache_open() read-write only). */
	struct backend *regions;	/* a replica set over the regions
					   (backend_replica_open()), borrowed
					   until cache_close(); NULL = local
					   only: nothing is sealed */
	const char *const *region_names;	/* [i] names region i of the
						   set ([region NAME]); the
						   upload queue and status
						   know regions by name */
	const struct crypt_key *key;	/* the master key, required with
					   regions; borrowed likewise */
	unsigned seal_delay_ms;	/* idle time before a dirty block is
				   sealed (5000) */
	unsigned uploaders;	/* uploader threads (4) */
	uint64_t pack_size;	/* sealed blocks are packed into objects of
				   about this size (4 MiB) */
	uint64_t dirty_limit;	/* past this many dirty bytes, sealing starts
				   at once (size_limit / 4) */
	unsigned metadata_interval_ms;	/* metadata changes reach the
					   regions within this (30000) */

	/* Re-seeding (read-write opens; see cache_mend.c).  A region named
	 * here, or recorded so by an earlier open, is brought to a whole
	 * copy in the background: its superblock (from below), then every
	 * pack and metadata object the other regions hold.  Until then it
	 * receives no metadata object, status shows it incomplete, and
	 * cache_sync_regions() waits for it. */
	const char *const *seed;	/* NULL-terminated region names found
					   empty (no superblock, no objects);
					   recorded at open, before anything
					   is sent; NULL = none */
	const void *superblock;		/* the bytes a region keeps under
					   "superblock"; copied; NULL = a
					   seeded region must have one */
	size_t superblock_len;
};

enum cache_open_flags {
	CACHE_OPEN_RDONLY = 1 << 0,	/* status: no lock, no writes */
	CACHE_OPEN_FETCH_ONLY = 1 << 1,	/* restore: read gone blocks back from
					   the regions, but seal, upload and
					   journal nothing (no threads) */
};

/*
 * Create a new, empty filesystem in cfg->dir (root directory owned by
 * uid/gid, mode 0755).  Returns PHI_EEXISTFS if one is already there
 * (whether mounted or not), PHI_EBUSYFS if another mkfs holds the lock,
 * -errno if the directory is unusable.
 * Creates nothing on failure.
 */
int cache_format(const struct cache_config *cfg, uid_t uid, gid_t gid);

/*
 * Open the filesystem in cfg->dir.  Read-write opens take cache_dir/lock
 * and fail with PHI_EBUSYFS if another process holds it; they also free
 * inodes orphaned by a crash.  PHI_ENOFS if there is no filesystem.
 * On success *out is a handle to be closed with cache_close().
 */
int cache_open(struct cache **out, const struct cache_config *cfg,
	       unsigned flags);

/*
 * Fold every pending write record, sync data and metadata, release the
 * lock and free the handle.  cache_files still open (the kernel never
 * sent their RELEASE) are released first.
 * Returns the first error met while flushing (the handle is freed anyway).
 */
int cache_close(struct cache *c);

/* Make all metadata (the LMDB environment) durable on the local disk;
 * file content is cache_fsync()'s. */
int cache_sync(struct cache *c);

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

/* The time CLOCK_MONOTONIC shows now, in ns (shared by all processes). */
uint64_t cache_mono_ns(void);

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
	char fsid[33];		/* filesystem id, hex */
	int mounted;		/* another process holds the lock */
	long pid;		/* that process, when mounted */
	/* sealing and replication (as last recorded in LMDB: the mount
	 * folds its state every two seconds) */
	uint64_t dirty_blocks;	/* written, not yet sealed */
	uint64_t dirty_bytes;	/* the same in bytes (whole blocks) */
	uint64_t sealed_objects;	/* objects sealed locally, not yet in
					   every region */
	uint64_t sealed_bytes;
	uint64_t resident_blocks;	/* sealed blocks also cached as
					   plaintext */
	uint64_t evicted_blocks;	/* sealed blocks only in the regions */
	uint64_t sync_mark_ns;	/* cache_mono_ns() when the last sync
				   pass began; 0 if none */
	uint64_t sync_waiting;	/* objects of that pass (or earlier) not
				   yet in every region */
	int nregions;
	struct cache_region_stats regions[16];
};

/* Fill *out; a read-only open reports what the mount last recorded.
 * 0 or a negative code. */
int cache_stats(struct cache *c, struct cache_stats *out);

/* Counts for statfs(2). */
int cache_statfs(struct cache *c, struct statvfs *out);

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
 * set) that decode under key and fsid, by sequence number.  *out is
 * malloc()ed (free()).  Returns 0 or a region error.
 */
int cache_history_list(struct backend *region, const struct crypt_key *key,
		       const uint8_t fsid[16], struct cache_moment **out,
		       size_t *count);

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
 * accepted half full).  Safe while mounted: objects are immutable and a
 * repair writes the same bytes.  Returns 0 (problems are in *out and the
 * report) or a region error that stopped it.
 */
int cache_scrub(const struct cache_scrub_args *a,
		struct cache_scrub_result *out);

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

struct cache_gc_args {
	struct backend *const *regions;	/* opened with the credentials
					   that may delete */
	const char *const *names;
	int nregions;
	const struct crypt_key *key;
	const uint8_t *fsid;
	int64_t keep_after_ms;	/* now - retention: every moment after it
				   stays restorable */
	int dry_run;
	cache_report_fn *report;
	void *ctx;
};

struct cache_gc_result {
	uint64_t meta_deleted, packs_deleted, leases_deleted;
	uint64_t bytes_deleted;
	uint64_t kept_unreferenced;	/* packs no history names (in flight
					   from a mount, or left by a crash) */
};

/*
 * Delete what no moment after keep_after_ms needs: metadata objects older
 * than the last snapshot at or before it, packs only they referred to,
 * and old lease objects.  Packs no metadata object has ever named are
 * kept (a mount may be uploading them).  Packs go first, then metadata,
 * so an interrupted run leaves nothing dangling.  Safe while mounted.
 */
int cache_gc(const struct cache_gc_args *a, struct cache_gc_result *out);

/* --- names and attributes ------------------------------------------- */

/* Attributes of ino.  Does not take a lookup reference. */
int cache_getattr(struct cache *c, uint64_t ino, struct stat *st);

/* Look name up in directory parent; takes a lookup reference. */
int cache_lookup(struct cache *c, uint64_t parent, const char *name,
		 struct stat *st);

/* Drop nlookup lookup references (FUSE forget). */
void cache_forget(struct cache *c, uint64_t ino, uint64_t nlookup);

enum cache_set {
	CACHE_SET_MODE = 1 << 0,
	CACHE_SET_UID = 1 << 1,
	CACHE_SET_GID = 1 << 2,
	CACHE_SET_SIZE = 1 << 3,
	CACHE_SET_ATIME = 1 << 4,
	CACHE_SET_MTIME = 1 << 5,
	CACHE_SET_ATIME_NOW = 1 << 6,
	CACHE_SET_MTIME_NOW = 1 << 7,
	CACHE_SET_CTIME = 1 << 8,
};

/*
 * Change the attributes selected by `set` (enum cache_set) from `in`
 * (st_mode, st_uid, st_gid, st_size, st_atim, st_mtim, st_ctim); ctime
 * becomes now unless CACHE_SET_CTIME.  Permission checks are the kernel's
 * (default_permissions).  Writes the new attributes to *out.
 */
int cache_setattr(struct cache *c, uint64_t ino, unsigned set,
		  const struct stat *in, struct stat *out);

/* Who creates a node: its owner, and the group unless the directory is
 * setgid. */
struct cache_cred {
	uid_t uid;
	gid_t gid;
};

/*
 * Create name in parent: a regular file, directory, FIFO, socket or
 * device (mode's type bits), or a symlink to `target` when S_ISLNK(mode).
 * EEXIST if the name exists, ENAMETOOLONG past CACHE_NAME_MAX bytes,
 * ENOTDIR if parent is no directory.  Takes a lookup reference.
 */
int cache_mknod(struct cache *c, uint64_t parent, const char *name,
		mode_t mode, dev_t rdev, const char *target,
		const struct cache_cred *cred, struct stat *st);

/* New hard link newparent/newname to ino (not a directory: EPERM).
 * Takes a lookup reference. */
int cache_link(struct cache *c, uint64_t ino, uint64_t newparent,
	       const char *newname, struct stat *st);

/* Remove a non-directory entry (EISDIR for a directory). */
int cache_unlink(struct cache *c, uint64_t parent, const char *name);

/* Remove an empty directory (ENOTEMPTY, ENOTDIR). */
int cache_rmdir(struct cache *c, uint64_t parent, const char *name);

enum cache_rename_flags {
	CACHE_RENAME_NOREPLACE = 1 << 0,	/* RENAME_NOREPLACE */
	CACHE_RENAME_EXCHANGE = 1 << 1,		/* RENAME_EXCHANGE */
};

/* rename(2)/renameat2(2) semantics, including EINVAL for moving a
 * directory into itself and the ENOTDIR/EISDIR/ENOTEMPTY cases. */
int cache_rename(struct cache *c, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags);

/* Copy a symlink's target, NUL-terminated, into buf; -ERANGE if short. */
int cache_readlink(struct cache *c, uint64_t ino, char *buf, size_t size);

/*
 * Called by cache_readdir() per entry; `next` is the offset at which a
 * later call resumes after this entry.  st is complete when `plus` was
 * requested, else only st_ino and the type bits of st_mode are set.
 * Return 0 if the entry was taken, non-zero to stop before it.
 */
typedef int cache_dirent_fn(void *ctx, const char *name,
			    const struct stat *st, uint64_t next);

/*
 * List directory ino from offset `off` (0 = start; otherwise a `next`
 * value from an earlier call).  Offsets stay valid while the directory
 * changes: an entry present throughout is returned exactly once.  Lists
 * "." and ".." first.  With `plus`, each taken entry other than "." and
 * ".." gets a lookup reference.
 */
int cache_readdir(struct cache *c, uint64_t ino, uint64_t off, int plus,
		  cache_dirent_fn *fn, void *ctx);

/* --- extended attributes (user.* namespace) ---------------------------- */

enum cache_xattr_flags {
	CACHE_XATTR_CREATE = 1 << 0,	/* XATTR_CREATE: EEXIST if present */
	CACHE_XATTR_REPLACE = 1 << 1,	/* XATTR_REPLACE: ENODATA if absent */
};

/* Names outside user.* get -EOPNOTSUPP from every xattr call (they are
 * not stored); values over CACHE_XATTR_SIZE_MAX get -E2BIG. */
int cache_setxattr(struct cache *c, uint64_t ino, const char *name,
		   const void *value, size_t size, unsigned flags);

/* With size 0, return the value's length; -ERANGE if size is too small,
 * -ENODATA if absent (-EOPNOTSUPP outside user.*).  Otherwise copy and
 * return the length. */
int cache_getxattr(struct cache *c, uint64_t ino, const char *name,
		   void *value, size_t size);

/* NUL-separated names, same size rules as cache_getxattr(). */
int cache_listxattr(struct cache *c, uint64_t ino, char *list, size_t size);

/* Remove name: 0, -ENODATA if absent, -EPERM for user.phifs.state
 * (-EOPNOTSUPP outside user.*). */
int cache_removexattr(struct cache *c, uint64_t ino, const char *name);

/* --- file content ------------------------------------------------------ */

/*
 * Open regular file ino for I/O.  Handles of the same inode share one
 * state.  `trunc` truncates to zero first (O_TRUNC).  *out lives until
 * cache_file_release().
 */
int cache_file_open(struct cache *c, uint64_t ino, int trunc,
		    struct cache_file **out);

/* close(): nothing is owed (pending size and times reach LMDB within
 * about two seconds, or at fsync); returns PHI_ELATCHED after a failure
 * of the local store so that close() reports it. */
int cache_file_flush(struct cache *c, struct cache_file *f);

/* Drop the handle; frees an unlinked inode at its last reference. */
void cache_file_release(struct cache *c, struct cache_file *f);

/* A range of content readable in place: read len bytes of fd at off.
 * fd is borrowed and valid until cache_file_release(). */
struct cache_extent {
	int fd;
	uint64_t off;
	size_t len;
};

/* Where to read [off, off+len) of the file, clamped to its size (len 0 at
 * or past the end).  Holes read as zeros. */
int cache_read_extent(struct cache *c, struct cache_file *f, uint64_t off,
		      size_t len, struct cache_extent *out);

/* Write len bytes at off; returns len or a negative code (-ENOSPC once
 * the local store would pass cache_size). */
ssize_t cache_write(struct cache *c, struct cache_file *f, uint64_t off,
		    const void *buf, size_t len);

/* fsync(2): the file's content (unless datasync) and all metadata are
 * durable on the local disk when this returns 0. */
int cache_fsync(struct cache *c, struct cache_file *f, int datasync);

/* fallocate(2) mode 0 only (others: -EOPNOTSUPP); may extend the size. */
int cache_fallocate(struct cache *c, struct cache_file *f, int mode,
		    uint64_t off, uint64_t len);

#endif
