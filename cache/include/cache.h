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
 * cache_meta.c (cache_meta_write()), which is where the disaster-recovery
 * journal will hook in.  Content goes through
 * cache_write()/cache_read_extent(); the sealing of blocks into immutable
 * objects will live behind these calls without fs/ noticing.
 *
 * Durability.  Metadata commits are ordered (LMDB with MDB_NOMETASYNC keeps
 * integrity across a power loss); a write() only touches the data file and
 * an in-memory record of the new size and times, folded into LMDB by a
 * background thread every two seconds (one transaction for all files), and
 * at fsync, setattr, the last reference and cache_close(); with regions,
 * the files closed within a few milliseconds of each other are folded
 * together soon after (one transaction for the lot).
 * cache_fsync() makes one file's data and all metadata durable on the
 * local disk.  A crash loses at most what
 * was written since the last fsync; after a crash the next cache_open()
 * frees the inodes that were unlinked but still open.
 *
 * Lookup counts.  Every call that returns an entry (struct stat for a name)
 * to the caller takes one lookup reference on that inode, as the kernel
 * counts them; cache_forget() drops them.  An unlinked inode is freed when
 * its lookup count and open count both reach zero: at once when that is
 * cache_file_release() or cache_unlink(); when it is cache_forget(), a
 * background thread frees it a few milliseconds later, with the others
 * forgotten meanwhile, in one transaction (cache_close() frees those
 * still waiting).  Until then cache_getattr() still finds it, with
 * nlink 0.
 *
 * Threads.  All calls may be made concurrently from any thread once
 * cache_open() has returned, except cache_close().
 *
 * Errors.  0 or a positive count on success; a negative errno, or a PHI_E*
 * code from phi.h, on failure.  Out-parameters are only written on success.
 *
 * Audience.  This header is the data path fs/ serves the kernel with:
 * open and close, names, attributes, directories, extended attributes,
 * file content, sync and statfs.  What tools/ does besides (format,
 * status, sync on demand, history, recover, fsck, scrub, gc) is in
 * cache_admin.h, which fs/ never includes.
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
	unsigned seal_quiet_ms;	/* while any file is written, files
				   closed wait for a pause this long
				   before they are sealed, at most
				   seal_delay (0: at once) */
	unsigned seal_delay_ms;	/* idle time before a dirty block is
				   sealed (5000) */
	unsigned uploaders;	/* uploader threads (4) */
	unsigned seal_threads;	/* threads that seal frames, the sealer
				   among them (0: one per core, at most
				   8) */
	uint64_t pack_size;	/* sealed blocks are packed into objects of
				   about this size (4 MiB) */
	uint64_t dirty_limit;	/* past this many dirty bytes, sealing starts
				   at once (size_limit / 4) */
	unsigned metadata_interval_ms;	/* metadata changes reach the
					   regions within this (30000) */
	int plain_store;	/* 1: keep the local store in plaintext
				   (local_seal off); else it is sealed
				   under key, when there is one.  An open
				   converts what it finds */
	int read_ahead;		/* gone blocks fetched past a sequential
				   read: 0 the default (16, and at most an
				   eighth of the cache), -1 none */

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
					   seeded region must have one.  A
					   seeded region gets the newest of
					   this, cache_dir/superblock when it
					   is seeded (where `phifs key`
					   writes) and the other regions'
					   copies whose MAC holds under key */
	size_t superblock_len;
};

enum cache_open_flags {
	CACHE_OPEN_RDONLY = 1 << 0,	/* status: no lock, no writes */
	CACHE_OPEN_FETCH_ONLY = 1 << 1,	/* restore: read gone blocks back from
					   the regions, but seal, upload and
					   journal nothing (no threads) */
	CACHE_OPEN_AUDIT = 1 << 2,	/* with RDONLY: no lock and no writes
					   but cache_audit_append(), which
					   may run while a mount has the cache
					   open read-write */
};

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

/* 1 if c was opened without the key and its names, attributes and audit
 * trail are sealed (local_seal): open it again with the key to read or
 * append them. */
int cache_needs_key(const struct cache *c);

/* Make all metadata (the LMDB environment) durable on the local disk;
 * file content is cache_fsync()'s. */
int cache_sync(struct cache *c);

/* Counts for statfs(2). */
int cache_statfs(struct cache *c, struct statvfs *out);

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
	/* clear setuid, setgid from the mode the inode has, in the same
	 * commit (a change by a caller without CAP_FSETID) */
	CACHE_SET_KILL_SUID = 1 << 9,
	CACHE_SET_KILL_SGID = 1 << 10,
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
 * setgid; and the umask cache_mknod() applies when the directory has no
 * default ACL (0 when the kernel applied it already). */
struct cache_cred {
	uid_t uid;
	gid_t gid;
	mode_t umask;
};

/*
 * Create name in parent: a regular file, directory, FIFO, socket or
 * device (mode's type bits), or a symlink to `target` when S_ISLNK(mode).
 * EEXIST if the name exists, ENAMETOOLONG past CACHE_NAME_MAX bytes,
 * ENOTDIR if parent is no directory.  Takes a lookup reference.
 * If parent has a default ACL, the node (not a symlink) gets it as its
 * access ACL, masked by mode, which loses what the ACL does not grant; a
 * directory also gets it as its default; the umask is not applied.
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

/* --- extended attributes and POSIX ACLs -------------------------------- */

/*
 * Stored: user.*, security.*, trusted.*, system.posix_acl_access and
 * system.posix_acl_default.  Who may read or write which is checked by
 * the kernel before these calls; the cache keeps the values and, for the
 * two ACLs, what ext4 keeps around them (cache_xattr.c): setting an
 * access ACL sets the mode's permission bits (the group bits show the
 * mask), and one the mode says all of is not stored; chmod
 * (cache_setattr()) moves a stored access ACL with the mode; a node made
 * by cache_mknod() inherits its directory's default ACL.
 */
enum cache_xattr_flags {
	CACHE_XATTR_CREATE = 1 << 0,	/* XATTR_CREATE: EEXIST if present */
	CACHE_XATTR_REPLACE = 1 << 1,	/* XATTR_REPLACE: ENODATA if absent */
	CACHE_XATTR_KILL_SGID = 1 << 2,	/* setting an access ACL also clears
					   the setgid bit (the caller is
					   neither in the file's group nor
					   privileged) */
	CACHE_XATTR_TRUSTED = 1 << 3,	/* cache_listxattr_as(): name the
					   trusted.* ones too */
};

/*
 * Names in no stored namespace get -EOPNOTSUPP from every xattr call;
 * values over CACHE_XATTR_SIZE_MAX get -E2BIG.  An ACL value must be the
 * kernel's posix_acl_xattr format and valid as the kernel checks it (one
 * owner, group and other entry in that order, named entries after their
 * kind's own, a mask when there are named ones), else -EINVAL; a default ACL on a non-directory is -EACCES.
 */
int cache_setxattr(struct cache *c, uint64_t ino, const char *name,
		   const void *value, size_t size, unsigned flags);

/* With size 0, return the value's length; -ERANGE if size is too small,
 * -ENODATA if absent (-EOPNOTSUPP outside the stored namespaces).
 * Otherwise copy and return the length. */
int cache_getxattr(struct cache *c, uint64_t ino, const char *name,
		   void *value, size_t size);

/* NUL-separated names, same size rules as cache_getxattr(); all of them. */
int cache_listxattr(struct cache *c, uint64_t ino, char *list, size_t size);

/* The same, for a caller: trusted.* names only with CACHE_XATTR_TRUSTED
 * in flags (the kernel shows them to CAP_SYS_ADMIN only). */
int cache_listxattr_as(struct cache *c, uint64_t ino, unsigned flags,
		       char *list, size_t size);

/* Remove name: 0, -ENODATA if absent (0 for an absent ACL, as on ext4),
 * -EPERM for user.phifs.state (-EOPNOTSUPP outside the stored
 * namespaces). */
int cache_removexattr(struct cache *c, uint64_t ino, const char *name);

/* --- file content ------------------------------------------------------ */

/*
 * Open regular file ino for I/O.  Handles of the same inode share one
 * state.  `trunc` non-zero truncates to zero first (O_TRUNC); with
 * CACHE_SET_KILL_SUID or CACHE_SET_KILL_SGID in it, the truncate's
 * commit also clears those bits.  *out lives until cache_file_release().
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
 * fd is borrowed and valid until cache_file_release(); pin is cache/'s,
 * for cache_read_end(). */
struct cache_extent {
	int fd;
	uint64_t off;
	size_t len;
	void *pin;
};

/* Where to read [off, off+len) of the file, clamped to its size (len 0 at
 * or past the end).  Holes read as zeros.  On success the file's blocks
 * stay in the data file, where eviction would punch holes, until
 * cache_read_end(out), which every successful call must be followed by
 * once the bytes are copied out. */
int cache_read_extent(struct cache *c, struct cache_file *f, uint64_t off,
		      size_t len, struct cache_extent *out);

/* Whether the local store is sealed: reads must then go through
 * cache_read(), as the data files hold no plaintext to splice. */
int cache_read_copies(const struct cache *c);

/* Read [off, off+len) of the file into buf, clamped to its size; returns
 * the bytes read or a negative code (-EIO: a local sector that fails its
 * seal with no sealed copy to fetch). */
ssize_t cache_read(struct cache *c, struct cache_file *f, uint64_t off,
		   void *buf, size_t len);

/* The bytes of ext (from cache_read_extent()) are copied out: the file's
 * blocks may be evicted again.  Needs no handle: it may come after
 * cache_file_release() (a reader served may close the file before the
 * thread that served it gets here). */
void cache_read_end(struct cache *c, struct cache_extent *ext);

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

/* --- the audit trail (cache_audit.c) ---------------------------------
 *
 * The cache keeps audit events in its LMDB environment, in the order they
 * were made, and never reads them: an event is opaque bytes, at least 8
 * long, whose first 8 are the inode it names (little-endian).  Events
 * are as durable as metadata (cache.h, Durability), and cost no
 * transaction of their own.
 */

/*
 * Stage the event of the operation the calling thread is about to ask
 * for: the first metadata change that thread commits before
 * cache_audit_unstage() writes it in the same transaction, so that it is
 * durable exactly when the change is.  If its inode is 0 and the
 * transaction makes an inode, the stored event names that one.  rec is
 * borrowed until cache_audit_unstage().
 */
void cache_audit_stage(struct cache *c, const void *rec, size_t len);

/* End the staging: 1 if the staged event was written, else 0. */
int cache_audit_unstage(struct cache *c);

/*
 * Queue an event (copied) that has no change of its own: it is written
 * with the next metadata change of any thread, and within two seconds
 * by the folder thread.  When 64 MiB of events already wait, the caller
 * writes them first (cache_audit_flush()).  0, -ENOMEM, or an error of
 * that write.  Any thread holding no cache lock.
 */
int cache_audit_queue(struct cache *c, const void *rec, size_t len);

/* Write the queued events now.  0, or an error of cache_meta_write(). */
int cache_audit_flush(struct cache *c);

/*
 * Queue rec and write it at once, for a tool: read-write opens, and
 * read-only ones with CACHE_OPEN_AUDIT.  -EROFS on other read-only opens.
 */
int cache_audit_append(struct cache *c, const void *rec, size_t len);

/*
 * Call fn for each stored event numbered from `from` on, in order (the
 * first is 1); rec is valid during the call only.  A nonzero return of
 * fn stops the walk and is returned.  0 when there is no trail.
 */
typedef int cache_audit_fn(void *arg, uint64_t seq, const void *rec,
			   size_t len);
int cache_audit_walk(struct cache *c, uint64_t from, cache_audit_fn *fn,
		     void *arg);

/*
 * The forwarding cursor (audit_syslog): the last event a receiver has
 * taken, 0 for none, kept in the superblock table (local state, never
 * replicated).  cache_audit_forwarded() reads it and the number of the
 * last stored event (0 when the trail is empty) into *sent and *last;
 * any open.  cache_audit_set_forwarded() records seq, read-write opens
 * only; it never moves the cursor back.  0 or an LMDB error.
 */
int cache_audit_forwarded(struct cache *c, uint64_t *sent, uint64_t *last);
int cache_audit_set_forwarded(struct cache *c, uint64_t seq);

#endif
