/*
 * cache_int.h - shared inside cache/ only.
 *
 * LMDB databases (all keys big-endian so that cursors walk in order):
 *
 *   super       "version" "fsid" "block_size" "next_ino" -> values
 *   inodes      ino                 -> struct inode_rec [+ symlink target]
 *   dirents     parent ino, name    -> struct dirent_rec
 *   dircookies  parent ino, cookie  -> struct dirent_rec + name
 *   xattrs      ino, name           -> value
 *   orphans     ino                 -> (empty) nlink reached 0, not yet freed
 *
 * Lock order: c->nodes_lock before node->lock (close_data()), and
 * node->lock before an LMDB write transaction (node_fold()).  Never take
 * nodes_lock while holding a node lock, nor begin a write transaction
 * while holding nodes_lock.  The batch fold, which holds a transaction
 * while it gathers node locks, only ever trylocks them.  Nothing calls out
 * of cache/ with any of these held.
 */
#ifndef CACHE_INT_H
#define CACHE_INT_H

#include "cache.h"
#include "phi.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#define CACHE_FORMAT_VERSION 1
#define NODE_BUCKETS 4096

/* Value in `inodes`.  Host byte order: the LMDB file never leaves the
 * machine as is (journals and snapshots have their own format). */
struct inode_rec {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;
	uint64_t size;
	uint64_t blocks;	/* 512-byte units in the local store */
	uint64_t rdev;
	uint64_t parent;	/* directories: containing directory */
	uint64_t next_cookie;	/* directories: next readdir cookie */
	int64_t atime_sec, mtime_sec, ctime_sec, btime_sec;
	uint32_t atime_nsec, mtime_nsec, ctime_nsec, btime_nsec;
};

/* Value in `dirents` and (followed by the name) in `dircookies`. */
struct dirent_rec {
	uint64_t ino;
	uint64_t cookie;
	uint32_t type;		/* mode & S_IFMT */
	uint32_t pad;
};

/* In-memory state of an inode the kernel or an open handle refers to. */
struct cnode {
	uint64_t ino;
	struct cnode *next;	/* hash chain; protected by c->nodes_lock */
	uint64_t nlookup;	/* protected by c->nodes_lock */
	uint32_t nref;		/* open handles and temporary users;
				   protected by c->nodes_lock */
	pthread_mutex_t lock;	/* protects everything below */
	int fd;			/* data file while handles are open, or -1 */
	int loaded;		/* size/mtime/ctime below are current */
	atomic_int dirty;	/* they differ from the inode record;
				   read without the lock by folds */
	int created;		/* data file new, its directory not synced */
	int unsynced;		/* data written since the last fdatasync */
	uint64_t size;
	struct timespec mtime, ctime;
	uint64_t alloc;		/* bytes the data file had at last fstat */
	uint64_t growth;	/* bytes written since then (upper bound) */
};

struct cache_file {
	struct cnode *node;
	struct cache_file *prev, *next;	/* c->files, by files_lock */
};

struct cache {
	char *dir;
	int dirfd;		/* cache_dir */
	int datafd;		/* cache_dir/data */
	int trashfd;		/* cache_dir/data/trash (read-write opens) */
	int lockfd;
	int rdonly;
	uint64_t size_limit;
	uint32_t block_size;
	uint8_t fsid[16];
	MDB_env *env;
	MDB_dbi db_super, db_inodes, db_dirents, db_cookies, db_xattrs,
		db_orphans;
	atomic_int latched;	/* first uncertain failure, 0 if none */
	atomic_uint_fast64_t used;	/* bytes in the local store */
	pthread_mutex_t nodes_lock;
	struct cnode *nodes[NODE_BUCKETS];	/* by nodes_lock */
	/* open handles: a signal may end the session before the kernel
	 * sends RELEASE for each, and cache_close() must still drop them */
	pthread_mutex_t files_lock;
	struct cache_file *files;
	/* the folder thread: folds pending write records every
	 * FOLD_INTERVAL_MS, so a crash loses little even without fsync */
	pthread_t folder;
	int folder_running;
	pthread_mutex_t folder_lock;
	pthread_cond_t folder_cond;
	int folder_stop;	/* by folder_lock */
};

#define FOLD_INTERVAL_MS 2000

/* Keys begin with an inode number, big-endian, so cursors walk in order. */
static inline void key_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t key_get_u64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* --- cache_meta.c: records and transactions -------------------------- */

typedef int meta_fn(struct cache *c, MDB_txn *txn, void *arg);

/* Run fn in a write transaction; commit when it returns 0.  The one
 * place every metadata change passes through. */
int meta_write(struct cache *c, meta_fn *fn, void *arg);

/* Begin/end a read transaction (NULL on failure, code in *rc). */
MDB_txn *meta_read_begin(struct cache *c, int *rc);
void meta_read_end(MDB_txn *txn);

/* Translate an LMDB return code into a phifs code. */
int meta_err(int rc);

int meta_open_dbs(struct cache *c, MDB_txn *txn, unsigned flags);

/* Inode record get/put.  get copies at most one record; *target (if not
 * NULL) points into the txn's pages, valid until the txn ends. */
int inode_get(struct cache *c, MDB_txn *txn, uint64_t ino,
	      struct inode_rec *rec, const char **target, size_t *tlen);
int inode_put(struct cache *c, MDB_txn *txn, uint64_t ino,
	      const struct inode_rec *rec, const char *target, size_t tlen);
/* Replace the record of ino, keeping its symlink target. */
int inode_update(struct cache *c, MDB_txn *txn, uint64_t ino,
		 const struct inode_rec *rec);
void inode_to_stat(uint64_t ino, const struct inode_rec *rec,
		   struct stat *st);
void rec_set_time(int64_t *sec, uint32_t *nsec, struct timespec ts);

/* Free an inode whose nlink reached zero once nothing refers to it. */
void meta_maybe_free(struct cache *c, uint64_t ino);

/* Free every orphan (after a crash).  Read-write open only. */
int meta_free_orphans(struct cache *c);

/* Sum of blocks over all inodes, in bytes. */
int meta_used_bytes(struct cache *c, uint64_t *out);

int meta_super_get_u64(struct cache *c, MDB_txn *txn, const char *key,
		       uint64_t *out);

/* --- cache_node.c: in-memory inode table ----------------------------- */

/* Take one temporary reference (created if absent).  NULL: -ENOMEM. */
struct cnode *node_acquire(struct cache *c, uint64_t ino);
/* Take a temporary reference if ino has a node; NULL otherwise. */
struct cnode *node_find_ref(struct cache *c, uint64_t ino);
/* Drop one temporary reference; the last one folds and frees. */
void node_release(struct cache *c, struct cnode *n);
/* Add lookup references. */
void node_ref_lookup(struct cache *c, uint64_t ino, uint64_t n);
/* Whether anything refers to ino (lookups or handles). */
int node_in_use(struct cache *c, uint64_t ino);
/*
 * Attributes of ino: its record with any pending size and times of its
 * node on top.  txn (may be NULL) serves when ino has no node.
 */
int node_stat(struct cache *c, MDB_txn *txn, uint64_t ino, struct stat *st);
/* Load size/times (once) and open the data file (again if it was
 * closed with the last handle); n->lock held. */
int node_load(struct cache *c, struct cnode *n);
/* Re-measure the data file's allocation into n->alloc and c->used;
 * n->lock held. */
void node_refresh_alloc(struct cache *c, struct cnode *n);
/* Write pending size/times into the inode record; n->lock held. */
int node_fold(struct cache *c, struct cnode *n);
/* Make ino's content durable if it has unsynced writes: called before a
 * rename replaces another file with it (the save-by-rename pattern). */
int node_sync_for_replace(struct cache *c, uint64_t ino);
/* Fold every node (unmount, sync). */
int node_fold_all(struct cache *c);
/* Free the table (cache_close). */
void node_table_free(struct cache *c);

/* Path of ino's data file relative to c->datafd, "XX/INO". */
void data_name(uint64_t ino, char *buf, size_t size);

/* Add delta to c->used, never below zero. */
void used_adjust(struct cache *c, int64_t delta);

/* --- cache_trash.c: data files waiting for a durable unlink ------ */

int trash_open(struct cache *c);
/* Move ino's data file to the trash (instead of deleting it). */
void trash_put(struct cache *c, uint64_t ino);
/* Sync LMDB, then delete what was in the trash. */
int trash_empty(struct cache *c);
/* At open: restore the data of trashed inodes that are still alive
 * (their unlink was rolled back by a power loss), delete the rest. */
int trash_recover(struct cache *c);

/* Record a failure that leaves local state uncertain (EIO from fsync). */
int cache_latch(struct cache *c, int code);

#endif
