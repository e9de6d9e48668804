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
 *   blocks      ino, block          -> struct block_rec: where a sealed
 *                                      block lives (cache_blk.c)
 *   dirty       ino, block          -> (empty) written, not yet sealed
 *   packs       pack seq            -> struct pack_rec: a sealed object not
 *                                      yet in every region (the upload
 *                                      queue, cache_upload.c)
 *   regions     region name         -> struct region_rec: its bit in
 *                                      pack_rec.pending, and its health
 *   lru         ino                 -> last use, CLOCK_REALTIME ns
 *   repair      pack seq, bit       -> (empty) a region served a bad copy
 *   changed     jdb id, key         -> (empty) a replicated record changed
 *                                      since the last journal segment
 *   metaq       meta seq            -> struct meta_rec: a journal segment
 *                                      or snapshot not yet in every region
 *   auditq      meta seq << 16 | i  -> struct meta_rec: an audit segment
 *                                      ("a/", cache_auditseg.c) cut with
 *                                      metadata object meta seq, not yet
 *                                      in every region
 *   audit       event seq           -> one event (cache_audit.c)
 *
 * Lock order: c->nodes_lock before node->lock (close_data()), and
 * node->lock before an LMDB write transaction (cache_node_fold()).  Never
 * take nodes_lock while holding a node lock, nor begin a write
 * transaction while holding nodes_lock.  The batch fold, which holds a
 * transaction while it gathers node locks, only ever trylocks them.
 * c->inbox.lock, c->lru.lock and c->packget.lock are leaves: taken under any of these,
 * they are held for a few instructions and nothing is taken under
 * them.  Nothing calls out of cache/ with any of these held (a fetch
 * drops node->lock while it reads from the regions, cache_blk.c); debug
 * builds check it at every call to a region (lock_take()).
 */
#ifndef CACHE_INT_H
#define CACHE_INT_H

#include "backend.h"
#include "buf.h"
#include "cache.h"
#include "cache_admin.h"
#include "hist.h"
#include "phi.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* 2: block records may be masked (BLOCK_MASKED).  A read-write open
 * takes a cache of 1 up to 2; a phifs that knows only 1 refuses 2. */
#define CACHE_FORMAT_VERSION 2
#define CACHE_FORMAT_VERSION_MIN 1
/* The node table's buckets: chains of about 16 at a million nodes in
 * memory (the kernel may keep that many inodes); 512 KiB of pointers. */
#define NODE_HASH_BITS 16
#define NODE_BUCKETS (1u << NODE_HASH_BITS)
#define FOLD_INTERVAL_MS 2000	/* the folder thread's period (cache.c) */

/* A sorted set of block numbers (in-memory state of a node). */
struct blkset {
	uint64_t *v;
	size_t n, cap;
};

/* 1 if b was added, 0 if it was there, -ENOMEM. */
int cache_blkset_add(struct blkset *s, uint64_t b);
int cache_blkset_has(const struct blkset *s, uint64_t b);
void cache_blkset_del(struct blkset *s, uint64_t b);
void cache_blkset_free(struct blkset *s);

#define BLOCK_RESIDENT 1u	/* plaintext also in the data file (local
				   only: never in a journal record) */
#define BLOCK_SUMMED 2u		/* crc is the CRC-32C of the plaintext
				   (records sealed before checksums lack it) */
#define BLOCK_MASKED 4u		/* off, len, plain and crc (the CRC-32C, as
				   with BLOCK_SUMMED) are kept XORed with
				   the record's mask (crypt_block_rec_mask()):
				   what the sealer records since.  Unmasked
				   by cache_blk_rec_get(), masked again by
				   cache_blk_rec_put(); a journal record
				   keeps its stored form */

/* Value in `blocks`.  Host byte order, like every record here. */
struct block_rec {
	uint8_t pack[16];	/* the pack object's id */
	uint64_t seq;		/* its key in `packs` while not replicated */
	uint64_t off;		/* the frame's offset in the pack */
	uint32_t len;		/* frame length */
	uint32_t plain;		/* plaintext length */
	uint32_t flags;		/* BLOCK_* */
	uint32_t crc;		/* phi_crc32c() of the plain bytes */
};

/*
 * Value in `dirty`: empty, or one byte of these.  DIRTY_WAS_GONE: the
 * record was written ahead of a write that covers the block whole while
 * its plaintext was not in the data file; if a crash came before that
 * write reached the data file, the block is still a hole there, and the
 * sealed copy, not the hole, is its content (cache_blk_settle()).
 */
#define DIRTY_WAS_GONE 1u

/* Value in `packs`. */
struct pack_rec {
	uint8_t id[16];
	uint64_t size;
	uint32_t pending;	/* bits of the regions still to receive it */
	uint32_t pad;
	int64_t created;	/* epoch seconds */
};

/* Value in `metaq`. */
struct meta_rec {
	char key[40];		/* "m/<hex>", NUL-terminated */
	uint64_t size;
	uint64_t dep;		/* packs up to this seq must be there first */
	int64_t time_ms;
	uint32_t pending;	/* region bits */
	uint32_t snapshot;
};

/* Value in `regions`. */
struct region_rec {
	uint32_t bit;		/* 0..31 */
	uint32_t fails;		/* consecutive failed uploads */
	int32_t down;
	uint32_t pad;
	int64_t last_ok;	/* epoch seconds of the last upload; 0 */
};

#define PACK_KEY_LEN 34		/* "d/" + 32 hex digits */
/* Object key of a pack: "d/<hex id>". */
void cache_pack_key(const uint8_t id[16], char out[PACK_KEY_LEN + 1]);
#define PACK_FILE_LEN 38	/* "packs/" + 32 hex digits */
/* Its local copy, relative to cache_dir: "packs/<hex id>". */
void cache_pack_file(const uint8_t id[16], char out[PACK_FILE_LEN + 1]);

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

/* A fetch under way (cache_blk.c, fetch()). */
struct fetch_slot;

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
	uint64_t sect_floor;	/* sealed store: counters below this are
				   durable in the data file (cache_sect.c) */
	int sect_floor_known;	/* 0 until the first fdatasync */
	/* blocks (regular files with sealing on; valid while loaded) */
	struct blkset dblk;	/* dirty blocks: written since last read
				   for sealing */
	struct blkset fresh;	/* of those, not yet in the `dirty` db */
	struct blkset gone;	/* sealed, plaintext not in the data file */
	struct blkset fetched;	/* fetched back; resident flag unrecorded */
	atomic_int fetched_any;	/* set when fetched gains a block, cleared
				   once it is found empty; read without the
				   lock by collect_fetched() */
	int fetched_unsummed;	/* one of them has no checksum: its bytes
				   must be synced before the flag */
	int fetch_unsynced;	/* a fetch wrote into the data file since
				   its last fdatasync: synced before a
				   write makes such a block dirty */
	uint64_t ahead_next;	/* read-ahead: the block after the last
				   read (sequential if the next read starts
				   there or in the block before) */
	uint64_t ahead_to;	/* blocks below this are queued already */
	int ahead_seq;		/* the last read followed the one before */
	struct blkset sealing;	/* in a pack not stored yet */
	struct blkset checked;	/* clean blocks whose local bytes were
				   found to match their record since the
				   node was loaded (blk_check_range()) */
	struct blkset unowed;	/* sealed clean blocks read unchecked: no
				   crash owed them a check, and a read
				   checks what it opens; a write into
				   part of one still checks it first */
	uint64_t rec_size;	/* the size the inode record holds (as of
				   the last fold): a crash cuts the data
				   file back to it (cache_node_load()) */
	uint64_t cut_from;	/* blocks >= this to drop from the dbs at
				   the next fold; UINT64_MAX if none */
	uint64_t last_write_ns;	/* phi_mono_ns() of the last write */
	atomic_uint gen;	/* bumped when a block joins `dirty` */
	atomic_uint cuts;	/* bumped by every cut
				   (cache_blk_prepare_cut()): a seal in
				   flight may no longer record what it
				   read, the block may be gone */
	struct fetch_slot *fetching;	/* gone blocks being fetched with
					   this lock dropped (fetch()) */
	pthread_cond_t fetch_done;	/* one of those fetches ended */
	int handles;		/* open cache_files */
	int pinned;		/* reads and writes under way that eviction
				   must not punch under: extents
				   cache_read_extent() handed out and
				   cache_read_end() did not end yet (a
				   reader may be copying them out of the
				   data file), and the fetches of a read or
				   write, which drop this lock */
	uint64_t size;
	struct timespec mtime, ctime;
	uint64_t alloc;		/* bytes the data file had at last fstat */
	uint64_t growth;	/* bytes written since then (upper bound) */
};

struct cache_file {
	struct cnode *node;
	struct cache_file *prev, *next;	/* c->files, by files_lock */
};

/*
 * The sealer's inbox: the data path (files, blocks, eviction) hands the
 * sealer work and reads the uploaders' verdict on the regions here, so
 * that no call runs up from those floors into replication.  All of it is
 * by lock except the atomics.
 */
struct inbox {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* the sealer waits here */
	atomic_int open;		/* a sealer drains it (regions given) */
	int stop;			/* the sealer is to end */
	int kicked;			/* look at the work now */
	int fetched;			/* some node has fetched blocks */
	uint64_t *closed;		/* inos whose last handle went, dirty */
	size_t nclosed, capclosed;
	uint64_t first_closed_ns;	/* when closed[] got its first entry */
	atomic_uint sync_req;		/* cache_request_sync() */
	atomic_uint_fast64_t dirty_blocks;	/* in memory, approximate */
	uint64_t dirty_limit;		/* past it, sealing does not wait */
	atomic_int regions_down;	/* regions the uploaders find down */
	atomic_uint_fast64_t last_write_ns;	/* phi_mono_ns() of the last
						   write to any file */
};

/* Read-ahead: gone blocks just past a sequential read, queued by
 * cache_blk.c for the threads of cache_ahead.c.  By lock. */
#define AHEAD_QUEUE 64
struct ahead_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t q[AHEAD_QUEUE][2];	/* ino, block; a ring */
	size_t head, n;
	atomic_int on;		/* threads take from it (lock and cond
				   are set up) */
	int stop;		/* they are to end */
	uint64_t window;	/* blocks fetched past a read */
};

/* Whole packs got for reads, in memory (cache_packget.c).  Every
 * field but `on` (set at open) by packget.lock; a slot's data also by
 * its loader alone while it is being got, and read by its pinning
 * readers with the lock dropped. */
#define PACKGET_SLOTS 6
#define PACKGET_MAX (16u << 20)	/* bytes of the largest pack kept */
#define PACKGET_MISSES 16	/* packs a small file's fetch was noted in */
#define PACKGET_SPARE 8		/* plaintext buffers kept for fetches */
struct packget_slot {
	uint8_t id[16];
	int state;		/* free, being got, ready */
	int dropped;		/* a frame in it failed: emptied by its last
				   reader (its memory kept), found by no
				   one */
	unsigned readers;	/* checking a frame of it, lock dropped */
	uint64_t used;		/* tick of its last use */
	int small;		/* got whole for a small file's read */
	uint64_t served;	/* frames taken from it since */
	struct buf data;
};

struct packget_miss {
	uint8_t id[16];
	int seen;		/* the entry is in use */
	int too_big;		/* larger than PACKGET_MAX: never whole */
};

struct packget {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a get of a pack ended */
	int on;			/* with regions, read_ahead not off, and
				   packs no larger than PACKGET_MAX */
	uint64_t tick;
	uint64_t loads, hits;	/* packs got whole; frames served */
	struct packget_slot slot[PACKGET_SLOTS];
	struct packget_miss miss[PACKGET_MISSES];	/* a ring */
	unsigned miss_next;
	struct packget_slot *last_small;	/* the pack got whole for a
						   small file last, or NULL */
	int walk;		/* small files are being read pack after pack:
				   the next pack's first fetch gets it whole */
	uint64_t walk_ns;	/* monotonic time of the walk's last read */
	struct buf spare[PACKGET_SPARE];	/* fetches' plaintext
						   buffers, kept */
	unsigned nspare;
};

/* Uses of files (ino, CLOCK_REALTIME ns) noted in memory (cache_lru.c). */
struct lru_notes {
	pthread_mutex_t lock;
	uint64_t (*v)[2];
	size_t n, cap;
};

/* The local store's sectors (cache_sect.c). */
struct sect {
	int sealed;			/* the data files' form */
	struct crypt_local *keys;	/* NULL: plain, or sealed and no key
					   (a status): no byte readable */
	uint32_t spb;			/* sectors per block */
	uint32_t tag_bytes;		/* entries of a block, whole pages */
	uint64_t group;			/* data file bytes per block */
	uint8_t cache_id[16];
	uint32_t salt;
	int unclean;			/* the last read-write open did not
					   close cleanly: settle and cut */
	int want;			/* local_seal */
	uint64_t state;			/* "local_seal" of the super db */
	pthread_mutex_t lock;		/* the counters */
	uint64_t next, limit;		/* reserved up to limit */
	uint64_t owed[8][2];		/* counters [lo, hi) sessions that
					   ended unclean used: a clean block
					   holding one is checked against its
					   record before it is read */
	int nowed;
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
	const struct crypt_key *key;	/* the master key; NULL: opened
					   without it */
	MDB_env *env;
	struct sect sect;
	struct crypt_local *mkeys;	/* the records' keys (cache_mrec.c);
					   NULL without the key */
	int msealed;			/* names and attributes sealed */
	int mcompact;			/* sealed since data.mdb was last
					   rewritten ("meta_compact" in the
					   super table; cache.c) */
	int mcompact_quiet;		/* and nothing named in it */
	MDB_dbi db_super, db_inodes, db_dirents, db_cookies, db_xattrs,
		db_orphans, db_blocks, db_dirty, db_packs, db_regions, db_lru,
		db_repair, db_changed, db_metaq;
	int journal;		/* note replicated changes in `changed` */
	int have_blockdbs;	/* the six above exist (read-only opens of
				   an older cache may lack them) */
	atomic_int latched;	/* first uncertain failure, 0 if none */
	atomic_uint_fast64_t used;	/* bytes of the data files */
	atomic_uint_fast64_t packs_used;	/* bytes of packs/ */
	atomic_uint_fast64_t sealing_bytes;	/* of the pack being sealed,
						   not in packs_used yet, and
						   the most the sealer's batch
						   can add to it */
	atomic_uint_fast64_t evictions;	/* blocks evicted since open
					   (cache_blk_evict_blocks()) */
	atomic_uint_fast64_t commits;	/* write transactions committed
					   by cache_meta_write() since open */
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
	/* unlinked inodes the kernel forgot, freed by the folder thread in
	 * one transaction (cache_node_free_later()); by free_lock, a leaf */
	pthread_mutex_t free_lock;
	uint64_t *freeq;
	size_t nfreeq, capfreeq;
	uint64_t freeq_first_ns;	/* when freeq got its first entry */

	/* what the floors below replication hand the sealer (cache_inbox.c) */
	struct inbox inbox;
	/* uses of files not yet in the `lru` db (cache_lru.c) */
	struct lru_notes lru;
	/* read-ahead (queued by cache_blk.c, fetched by cache_ahead.c) */
	struct ahead_queue ahead;
	pthread_t ahead_threads[4];
	int ahead_nthreads;
	int read_ahead;		/* cache_config's */
	/* whole packs for small files (cache_packget.c) */
	struct packget packget;

	/* sealing and replication (cache_seal.c, cache_upload.c) */
	struct seal *seal;	/* NULL: local only */

	/* the audit trail (cache_audit.c) and its segments' upload queue
	 * (cache_auditseg.c; absent from a cache made before, opened
	 * read-only) */
	MDB_dbi db_audit, db_auditq;
	int have_auditq;
	int db_audit_open;	/* the `audit` table exists and is open */
	int audit_append;	/* CACHE_OPEN_AUDIT: a read-only open that
				   may still append events */
	pthread_mutex_t audit_lock;
	struct audit_ev *audit_head;	/* queued events, by audit_lock */
	struct audit_ev **audit_tail;	/* by audit_lock */
	atomic_uint_fast64_t audit_bytes;	/* queued, approximate */
};

/*
 * c->packs_used counts what the files under packs/ take on the disk:
 * each file's size rounded up to a whole 4 KiB block, as the disk
 * allocates it (counting bytes only, a queue of many small objects took
 * more room than the cache believed).  Added and taken away with these,
 * never by a load and a store (an add in between would be lost).
 */
static inline uint64_t cache_disk_size(uint64_t bytes)
{
	return (bytes + 4095) & ~(uint64_t)4095;
}

static inline void cache_packs_used_add(struct cache *c, uint64_t bytes)
{
	atomic_fetch_add(&c->packs_used, cache_disk_size(bytes));
}

static inline void cache_packs_used_sub(struct cache *c, uint64_t bytes)
{
	uint64_t want = cache_disk_size(bytes);
	uint_fast64_t old = atomic_load(&c->packs_used);

	while (!atomic_compare_exchange_weak(&c->packs_used, &old,
					     old > want ? old - want : 0))
		;
}

/*
 * The declarations below go floor by floor, from the bottom up
 * (README.md): a file may call what is declared in its own floor's
 * sections and the ones above them here, never further down.
 */

/* === floor 1 records =================================================== */

/* --- locks and keys --------------------------------------------------- */

/*
 * Every mutex of cache/ is taken and dropped through these, so that a
 * debug build counts the locks each thread holds (phi_lock_note()) and
 * backend/ asserts that none is held when a call to a region starts (the
 * rule of the lock order above).  A condition wait keeps the count: the
 * lock is held again when it returns.
 */
static inline void lock_take(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	phi_lock_note(1);
}

/* 0 if taken, else pthread_mutex_trylock()'s code. */
static inline int lock_try(pthread_mutex_t *m)
{
	int rc = pthread_mutex_trylock(m);

	if (rc == 0)
		phi_lock_note(1);
	return rc;
}

static inline void lock_drop(pthread_mutex_t *m)
{
	phi_lock_note(-1);
	pthread_mutex_unlock(m);
}

/* Keys begin with an inode number, big-endian, so cursors walk in order. */
static inline void key_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* qsort() order of uint64_t values, ascending. */
static inline int cache_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static inline uint64_t key_get_u64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* --- cache_meta.c: records and transactions --------------------------- */

typedef int meta_fn(struct cache *c, MDB_txn *txn, void *arg);

/* Run fn in a write transaction; commit when it returns 0.  The one
 * place every metadata change passes through. */
int cache_meta_write(struct cache *c, meta_fn *fn, void *arg);

/* Begin/end a read transaction (NULL on failure, code in *rc). */
MDB_txn *cache_meta_read_begin(struct cache *c, int *rc);
void cache_meta_read_end(MDB_txn *txn);

/*
 * The databases whose records go to the regions (journal.c), by the id
 * a journal record and the `changed` db carry.
 */
enum jdb {
	JDB_SUPER = 1,		/* only next_ino changes after format */
	JDB_INODES = 2,
	JDB_DIRENTS = 3,
	JDB_COOKIES = 4,
	JDB_XATTRS = 5,
	JDB_BLOCKS = 6,		/* resident flags are local: not noted */
	/* local only, never in a journal record; sealed like the four
	 * above (cache_mrec.c) */
	JDB_AUDIT = 64,		/* the audit trail */
	JDB_LRU = 65,		/* the order of use */
};

/* Note that key of database jdb changed in txn, for the next journal
 * segment (nothing when journaling is off).  An LMDB code. */
int cache_jnote(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key);

/* Translate an LMDB return code into a phifs code. */
int cache_meta_err(int rc);

int cache_meta_open_dbs(struct cache *c, MDB_txn *txn, unsigned flags);

/* Inode record get/put.  get copies at most one record; *target (if not
 * NULL) points into the txn's pages, valid until the txn ends. */
int cache_inode_get(struct cache *c, MDB_txn *txn, uint64_t ino,
		    struct inode_rec *rec, const char **target, size_t *tlen);
int cache_inode_put(struct cache *c, MDB_txn *txn, uint64_t ino,
	      const struct inode_rec *rec, const char *target, size_t tlen);
/* cache_inode_put() of a record without a target whose replicated fields are
 * unchanged (only `blocks`, this store's allocation, moved): not noted
 * for the journal, so that reading back evicted blocks sends nothing. */
int cache_inode_put_local(struct cache *c, MDB_txn *txn, uint64_t ino,
			  const struct inode_rec *rec);
/* Replace the record of ino, keeping its symlink target. */
int cache_inode_update(struct cache *c, MDB_txn *txn, uint64_t ino,
		       const struct inode_rec *rec);
void cache_inode_to_stat(uint64_t ino, const struct inode_rec *rec,
			 struct stat *st);
void cache_rec_set_time(int64_t *sec, uint32_t *nsec, struct timespec ts);

/* Free an inode whose nlink reached zero once nothing refers to it. */
void cache_node_maybe_free(struct cache *c, uint64_t ino);

/*
 * The same, batched: the inode, if it is an orphan, waits in c->freeq
 * and the folder thread frees it FREE_GATHER_MS after the first one
 * queued (at once past FREE_BATCH of them), with the others in one
 * transaction.  For cache_forget(): `rm -rf` then costs one synced
 * commit per name instead of two.  Nobody waits for a free (a write
 * short of room frees the queue itself, and the trash is emptied every
 * FOLD_INTERVAL_MS anyway), so the gathering time is longer than the
 * sealer's for closed files (CLOSE_GATHER_MS), whose sealing it delays.  Nothing is lost by the wait: the
 * unlink committed the orphan record, so a crash leaves an orphan that
 * the next open frees, and its data goes to the trash (deleted only
 * after a durable commit) before the transaction that frees it.
 * Without the folder thread (read-only, or closing) it frees at once.
 */
#define FREE_GATHER_MS 100
#define FREE_BATCH 512
void cache_node_free_later(struct cache *c, uint64_t ino);
/* When the folder thread is to call cache_node_free_queued() next
 * (CLOCK_MONOTONIC ns); UINT64_MAX while nothing waits. */
uint64_t cache_node_free_due(struct cache *c);
/* Free every inode cache_node_free_later() queued; how many.  Holding
 * no lock. */
size_t cache_node_free_queued(struct cache *c);

/* Free every orphan (after a crash).  Read-write open only. */
int cache_node_free_orphans(struct cache *c);

/* Delete every key of dbi that starts with the 8-byte prefix of ino,
 * noting each for the journal under jdb (0: not journaled). */
int cache_meta_del_prefixed(struct cache *c, MDB_txn *txn, MDB_dbi dbi, int jdb,
			    uint64_t ino);
/* Whether pack seq is in every region: the upload queue (cache_upload.c)
 * owns `packs` and drops an entry once every region holds the pack; the
 * block store asks before it evicts a block sealed into it. */
int cache_meta_pack_replicated(struct cache *c, MDB_txn *txn, uint64_t seq);
/* Sum of blocks over all inodes, in bytes. */
int cache_meta_used_bytes(struct cache *c, uint64_t *out);

int cache_meta_super_get_u64(struct cache *c, MDB_txn *txn, const char *key,
			     uint64_t *out);

/* Path of ino's data file relative to c->datafd, "XX/INO". */
void cache_data_name(uint64_t ino, char *buf, size_t size);

/* Record a failure that leaves local state uncertain (EIO from fsync). */
int cache_latch(struct cache *c, int code);

/* --- cache_inbox.c: what the data path hands the sealer --------------- */

void cache_inbox_init(struct cache *c);
void cache_inbox_free(struct cache *c);
/* The sealer starts reading it; posts before this are dropped. */
void cache_inbox_open(struct cache *c, uint64_t dirty_limit);
/* Ask the sealer to end (cache_inbox_wait() returns 1). */
void cache_inbox_stop(struct cache *c);
/* Wake the sealer (dirty bytes past the limit, space needed). */
void cache_inbox_kick(struct cache *c);
/*
 * A file with dirty blocks lost its last handle: seal it soon.  The
 * sealer takes the files closed within CLOSE_GATHER_MS of the first one
 * together (at most CLOSE_BATCH), so that a program writing many small
 * files one after another costs one fold transaction per batch rather
 * than one per file.  Nothing waits on that fold: fsync, setattr, a
 * rename over a file and cache_close() fold for themselves, and a sync
 * request or a kick ends the wait at once.
 */
#define CLOSE_GATHER_MS 20
#define CLOSE_BATCH 512
void cache_inbox_closed(struct cache *c, uint64_t ino);
/* The inos posted by cache_inbox_closed() since the last call, malloc()ed. */
size_t cache_inbox_take_closed(struct cache *c, uint64_t **out);
/* Some node has fetched blocks to record as resident. */
void cache_inbox_fetched(struct cache *c);
/* Whether cache_inbox_fetched() was called since the last call. */
int cache_inbox_take_fetched(struct cache *c);
/* The sealer's wait: until kicked, a sync request past `handled`, a
 * stop, CLOSE_GATHER_MS after the first file closed since the last
 * cache_inbox_take_closed() (or CLOSE_BATCH of them; not while
 * hold_closed, when the sealer leaves closed files for later), or
 * tick_ms.  Returns 1 when the sealer is to stop. */
int cache_inbox_wait(struct cache *c, unsigned handled, unsigned tick_ms,
		     int hold_closed);
/* A write to some file at phi_mono_ns() now (for seal_quiet).  No lock
 * needed. */
void cache_inbox_wrote(struct cache *c, uint64_t now);
/* phi_mono_ns() of the last cache_inbox_wrote(), 0 if none. */
uint64_t cache_inbox_last_write(struct cache *c);
/* Whether the dirty blocks counted exceed dirty_limit. */
int cache_inbox_over_dirty_limit(struct cache *c, uint64_t block_size);
/* Whether no region was found down at the uploaders' last report. */
int cache_inbox_regions_up(struct cache *c);

/* --- the audit trail (cache_audit.c) --------------------------------- */

struct audit_ev;

/* The inode the calling thread's transaction has just made, for the
 * event it may have staged (alloc_ino()). */
void cache_audit_note_ino(uint64_t ino);

/*
 * Commit txn (cache_meta_write() only), first writing into it the queued
 * events and the calling thread's staged one.  Returns what
 * mdb_txn_commit() returns, or a negative code if an event could not be
 * written (txn is then aborted; the queue is left as it was).
 */
int cache_audit_commit(struct cache *c, MDB_txn *txn);

/* Open the `audit` table, creating it if create (cache_open()). */
int cache_audit_open_db(struct cache *c, int create);

/* A transaction that changes nothing: its commit writes the queue. */
meta_fn cache_audit_only;

/* Drop the queued events (cache_close(), after the last flush). */
void cache_audit_free(struct cache *c);

/*
 * st_blocks for a file of size bytes whose data file takes blocks
 * 512-byte units: never more than its size in whole 4 KiB pages, as a
 * sealed store's entries and extra slots (cache_sect.c) are the store's
 * overhead, not the file's.
 */
static inline uint64_t cache_blocks_shown(uint64_t blocks, uint64_t size)
{
	uint64_t most = (size + 4095) / 4096 * 8;

	return blocks < most ? blocks : most;
}

/* === floor 2 blocks ==================================================== */

/* --- cache_mrec.c: names and attributes in their local form ---------- */

/* Key and value handled in the plain form; the local one is sealed when
 * c->msealed, for the tables cache_rec_sealed_db() names.  LMDB's codes
 * (MDB_NOTFOUND, MDB_KEYEXIST...) or -errno and PHI_* codes: -EACCES for
 * a sealed table and no key, PHI_EAUTHFAIL for a record that fails.
 * Values got live until the transaction ends (cache_rec_txn_end()). */
#define CACHE_REC_QUIET 0x1000000	/* flag: note nothing for the journal */
int cache_rec_sealed_db(int jdb);
/* 1 if the tables are sealed and c was opened without the key. */
int cache_rec_keyless(const struct cache *c);
/* The table of journal id jdb (JDB_*). */
MDB_dbi cache_rec_db(struct cache *c, int jdb);
int cache_rec_get(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key,
		  MDB_val *val);
/* flags: MDB_NOOVERWRITE, CACHE_REC_QUIET (never MDB_RESERVE); the key is
 * noted in `changed` unless quiet. */
int cache_rec_put(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key,
		  const MDB_val *val, unsigned flags);
int cache_rec_del(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key,
		  unsigned flags);
/* mdb_cursor_get() on a cursor of jdb's table, in the plain form.  A
 * key given to MDB_SET_RANGE in a hashed table is a prefix of 8 bytes or
 * an exact key. */
int cache_rec_cursor(struct cache *c, int jdb, MDB_cursor *cur, MDB_val *key,
		     MDB_val *val, MDB_cursor_op op);
/* A record as a raw cursor of jdb's table gave it, opened in place to the
 * plain form. */
int cache_rec_open(struct cache *c, int jdb, MDB_val *key, MDB_val *val);
/* Delete (and note) every record of jdb whose key starts with prefix. */
int cache_rec_del_prefixed(struct cache *c, MDB_txn *txn, int jdb,
			   uint64_t prefix);
/* The record a `changed` note (ck, cv) names, in the plain form: 0 with
 * both, MDB_NOTFOUND with its key only (deleted), or an error. */
int cache_rec_noted(struct cache *c, MDB_txn *txn, const MDB_val *ck,
		    const MDB_val *cv, MDB_val *key, MDB_val *val);
/* Opened values since mark are given back (and wiped). */
size_t cache_rec_mark(void);
void cache_rec_release(size_t mark);
void cache_rec_txn_begin(void);
void cache_rec_txn_end(void);
/* In the transaction that formats c: its id, and the tables sealed
 * under key from the first record on. */
int cache_mrec_format(struct cache *c, MDB_txn *txn,
		      const struct crypt_key *key);
/* Keys, and the form the store wants (converting to it, read-write). */
int cache_mrec_start(struct cache *c, const struct crypt_key *key, int want);
/* data.mdb was rewritten (c->mcompact): forget that it is owed. */
int cache_mrec_compacted(struct cache *c);
/* The form as txn has it, for a process that opened before another
 * converted the store (an audit appender); -EACCES if it is sealed and
 * c has no key. */
int cache_mrec_refresh(struct cache *c, MDB_txn *txn);
void cache_mrec_free(struct cache *c);

/* --- cache_sect.c: the bytes of the data files ------------------------ */

/* 1 if clean block blk of fd must be checked against its record before
 * it is read (cache_blk.c): always in a plain store; in a sealed one only
 * if the newest version of one of its sectors was written by a session
 * that ended unclean (its dirty record may be lost while its bytes
 * stayed).  0 if not, or -errno. */
int cache_sect_owed(struct cache *c, int fd, uint64_t blk);
/* Set up c->sect's lock (cache_open(), first). */
void cache_sect_init(struct cache *c);
/* Seal the local store from now on under key: the cache's id (made on
 * first use), a counter reservation (a synced commit), a salt. */
int cache_sect_open(struct cache *c, const struct crypt_key *key);
void cache_sect_free(struct cache *c);
/*
 * At open: read the store's form, and with key set up its keys (a
 * read-write open: the cache's id, counters, whether the last close was
 * clean).  want is local_seal, for cache_sect_convert().  Without key, a
 * sealed store opens with no data file readable or writable (-EACCES):
 * for tools that touch metadata only; so does any store in the middle
 * of a conversion but for the read-write open that ends it.  Returns 0
 * or a code.
 */
int cache_sect_start(struct cache *c, const struct crypt_key *key, int want);
/* Whether cache_blk_settle() must undo torn writes: a sealed store (not
 * converting) whose last read-write open did not close cleanly. */
int cache_sect_settling(const struct cache *c);
/* The conversion cache_sect_start() found needed, or under way (after
 * cache_blk_settle(), so that torn writes are undone first).  Returns 0
 * or a code (printed); the store then stays as it was. */
int cache_sect_convert(struct cache *c);
/* A clean close, all synced: the next open need not look for torn
 * writes.  0 or a code. */
int cache_sect_closed_clean(struct cache *c);
/* In the transaction that formats a cache: a store with no data file
 * yet is clean, and no counter was ever used, so its first open owes no
 * check.  0 or a code. */
int cache_sect_format(struct cache *c, MDB_txn *txn);
/*
 * Read the plaintext [off, off+len) of the data file fd of inode ino into
 * buf: holes and bytes past the end read as zeros.  Returns 0,
 * PHI_EAUTHFAIL with the file's sector number (4 KiB units) in *bad (if
 * not NULL) when a sealed sector fails, or -errno.
 */
int cache_sect_read(struct cache *c, int fd, uint64_t ino, void *buf,
		    uint64_t off, size_t len, uint64_t *bad);
/* Write buf as the plaintext [off, off+len) of n's data file (n->fd open);
 * n->lock held.  PHI_EAUTHFAIL (with *bad) if a sector written in part
 * fails; nothing of that sector is written then.  *wrote (if not NULL):
 * the bytes written, also on failure. */
int cache_sect_write(struct cache *c, struct cnode *n, const void *buf,
		     uint64_t off, size_t len, uint64_t *bad, size_t *wrote);
/* fdatasync() n's data file, recording what it made durable; n->lock
 * held.  Returns 0 or -errno (the caller latches). */
int cache_sect_sync(struct cache *c, struct cnode *n);
/* The largest file the store holds: a sealed data file is about three
 * times its file's span, and must stay within what the file system
 * under cache_dir takes (ext4: 16 TiB). */
uint64_t cache_sect_max_size(const struct cache *c);
/* Whether block blk of the data file fd holds anything. */
int cache_sect_has_data(struct cache *c, int fd, uint64_t blk);
/* Reserve the space that writing [off, off+len) into fd needs
 * (fallocate mode 0).  Returns 0 or -errno. */
int cache_sect_allocate(struct cache *c, int fd, uint64_t off, uint64_t len);
/* Punch blocks [blk, blk + nblk) out of the data file fd. */
int cache_sect_punch(struct cache *c, int fd, uint64_t blk, uint64_t nblk);
/* n's file grows to size (its new bytes read as zeros); n->lock held. */
int cache_sect_grow(struct cache *c, struct cnode *n, uint64_t size);
/* Cut n's data file to size: past it, it reads as zeros whatever it
 * held.  n->lock held. */
int cache_sect_cut(struct cache *c, struct cnode *n, uint64_t size);
/* After a crash: undo the torn writes in block blk of the data file fd
 * of ino (cache_sect.c, "Torn writes").  Returns how many sectors, or a
 * negative code. */
int cache_sect_settle(struct cache *c, int fd, uint64_t ino, uint64_t blk);

/* --- cache_blk.c: the local block store ------------------------------- */

/* Key of block blk of ino in `blocks` and `dirty`. */
void cache_blk_key(uint8_t k[16], uint64_t ino, uint64_t blk);
/* The `blocks` entry of block blk of ino, unmasked: 0, -ENOENT, -EACCES
 * (masked, and this open has no key), or a code. */
int cache_blk_rec_get(struct cache *c, MDB_txn *txn, uint64_t ino,
		      uint64_t blk, struct block_rec *rec);
/* Store rec as block blk of ino's `blocks` entry, masked if it says
 * BLOCK_MASKED: 0, -EACCES (no key to mask it with), -ENOMEM or an LMDB
 * error (cache_meta_err()). */
int cache_blk_rec_put(struct cache *c, MDB_txn *txn, uint64_t ino,
		      uint64_t blk, const struct block_rec *rec);
/* The CRC-32C of the plaintext that rec (as cache_blk_rec_get() gives
 * it) names: 0 and *crc, or 1 if it has none (sealed before checksums
 * were kept). */
int cache_blk_rec_sum(const struct block_rec *rec, uint32_t *crc);
/* Whether block blk of ino has a `dirty` entry in txn. */
int cache_blk_in_dirty(struct cache *c, MDB_txn *txn, uint64_t ino,
		       uint64_t blk);
/* Load the dirty and gone sets of n from LMDB (cache_node_load()). */
int cache_blk_load(struct cache *c, MDB_txn *txn, struct cnode *n);
/* Add the `dirty` entries of n missing from n->dirty; n->lock held. */
int cache_blk_reload_dirty(struct cache *c, struct cnode *n);
/* Before writing [off, off+len): fetch gone blocks the write does not
 * cover whole and check the clean ones it covers in part, then record
 * every block of the range in `dirty` (committed) before returning, so
 * that no byte of the data file changes while its block is recorded
 * clean.  On failure nothing is recorded and the write must not happen.
 * n->lock held; dropped and taken again while a block is fetched, so
 * that anything read of n before the call must be read again. */
int cache_blk_prepare_write(struct cache *c, struct cnode *n, uint64_t off,
			    uint64_t len);
/* After writing [off, off+len): note the time (seal_delay).  n->lock
 * held. */
void cache_blk_mark_dirty(struct cache *c, struct cnode *n, uint64_t off,
			  uint64_t len);
/* Before reading [off, off+len): check the clean blocks' local bytes
 * against their records (once per block while the node is loaded),
 * drop the ones that fail, and fetch what is gone.  n->lock held;
 * dropped and taken again while a block is fetched. */
int cache_blk_prepare_read(struct cache *c, struct cnode *n, uint64_t off,
			   uint64_t len);
/* Block blk of n failed its seal locally: if it is clean, punch it and
 * mark it gone, so that the next read fetches its sealed copy (0); if
 * the data file is its only copy (dirty, or being sealed), -EIO.  n->lock
 * held. */
int cache_blk_drop_damaged(struct cache *c, struct cnode *n, uint64_t blk);
/* At a read-write open, before any node loads: drop the `dirty` records
 * written ahead of whole-block writes over gone blocks that never reached
 * the data file (DIRTY_WAS_GONE over a hole). */
int cache_blk_settle(struct cache *c);
/* Before cutting n to size: fetch a gone block that the cut splits, mark
 * it dirty, and drop the blocks past it from the sets; the dbs follow at
 * the next fold (n->cut_from).  n->lock held; dropped and taken again
 * while the block is fetched (n->size may have moved meanwhile). */
int cache_blk_prepare_cut(struct cache *c, struct cnode *n, uint64_t size);
/* Inside a transaction that records n: apply cut_from, record fresh. */
int cache_blk_fold_txn(struct cache *c, MDB_txn *txn, struct cnode *n);
/* That transaction committed. */
void cache_blk_fold_done(struct cnode *n);
/* Drop every block entry of a freed inode. */
int cache_blk_free_txn(struct cache *c, MDB_txn *txn, uint64_t ino);
/* Punch gone blocks that hold data (cache_node_load()); n->lock held. */
void cache_blk_punch_gone(struct cache *c, struct cnode *n);
/* Record n's fetched blocks as resident (after an fdatasync only if one
 * has no checksum to guard it); n->lock held, data file open. */
int cache_blk_persist_node(struct cache *c, struct cnode *n);
/* Whether ino has any `dirty` entry in txn. */
int cache_blk_has_dirty(struct cache *c, MDB_txn *txn, uint64_t ino);
/* Blocks of n that may go into *out: resident, clean, replicated; *left
 * set when some block stays.  n->lock held. */
int cache_blk_evictable(struct cache *c, struct cnode *n, struct blkset *out,
			int *left);
/* Evict the blocks of go (from cache_blk_evictable()): clear their resident
 * flags, then punch them; *freed gets the bytes the data file gave back.
 * n->lock held; the caller folds n. */
int cache_blk_evict_blocks(struct cache *c, struct cnode *n,
			   const struct blkset *go, uint64_t *freed);
/* Read-ahead queue.  cache_blk_ahead_init() once at open;
 * cache_blk_ahead_take() waits for the next (ino, block) to fetch ahead:
 * 0, or -1 once cache_blk_ahead_stop() was called (no lock held). */
void cache_blk_ahead_init(struct cache *c, uint64_t window);
int cache_blk_ahead_take(struct cache *c, uint64_t *ino, uint64_t *blk);
void cache_blk_ahead_stop(struct cache *c);
/* Fetch gone block blk of n ahead of a reader, if it is still gone and
 * nobody fetches it; failures are left to the reader.  Takes n->lock. */
void cache_blk_fetch_ahead(struct cache *c, struct cnode *n, uint64_t blk);
/* As a queued block number: not a block, but the pack after inode ino's
 * in a walk of small files (cache_blk_pack_ahead()). */
#define AHEAD_NEXT_PACK UINT64_MAX
/* During a walk of small files, get whole the first pack other than
 * ino's that holds block 0 of one of the next few inode numbers, unless
 * it is in memory already (the sealer packs files in inode order, so it
 * is likely the walk's next).  Failures are left to the reader.  No lock
 * held. */
void cache_blk_pack_ahead(struct cache *c, uint64_t ino);

/*
 * Whole packs (cache_packget.c, floor 2).  cache_packget_init() first
 * thing at open, cache_packget_start() after cache_seal_start() (off
 * until then), cache_packget_free() last at close.
 * cache_packget_frame(): for a read, the frame [off, off+len) of pack
 * id (object key) through verify(ctx, frame, len): from a pack kept in
 * memory, or from the pack got whole now from the regions and kept:
 * for a small file's read (PACKGET_SMALL) the second such fetch from
 * it; for a sequential read of a larger file (PACKGET_SEQ, and
 * PACKGET_AHEAD from a read-ahead thread) the first; for any other read
 * (PACKGET_PEEK) never.  0 when verify passed.  1 when not taken: off;
 * the first small fetch from that pack, a look that found it not here;
 * a pack too large, every slot busy, a copy kept that fails verify, a
 * get of the pack this call waited for that failed, or this call's get
 * failing for a reason the frame alone may not share (too large, no
 * memory, a copy bad or cut short); the caller then gets the frame
 * alone, and *bad still names the regions whose whole copy was bad.
 * PACKGET_NEXT, from a read-ahead thread during a walk of small files,
 * gets the pack whole at once and counts it as got for a small file.
 * -EINPROGRESS, for PACKGET_AHEAD and PACKGET_NEXT only: another thread
 * is getting that pack; a read-ahead thread does not wait for it but
 * goes on (the reader takes this one from memory).  Otherwise a code
 * as backend_replica_get_verified() (no region reached), which set
 * *bad.  No lock held.
 */
enum packget_mode {
	PACKGET_PEEK = 1,	/* from memory only: never gets a pack */
	PACKGET_SMALL,		/* a small file: the second fetch gets it */
	PACKGET_SEQ,		/* a file read in order: the first does */
	PACKGET_AHEAD,		/* read-ahead: as SEQ, never waits */
	PACKGET_NEXT		/* the next pack of a walk: as AHEAD */
};
void cache_packget_init(struct cache *c);
void cache_packget_start(struct cache *c);
void cache_packget_free(struct cache *c);
int cache_packget_frame(struct cache *c, const char *key,
			const uint8_t id[16], uint64_t off, uint64_t len,
			backend_verify_fn *verify, void *ctx, int *bad,
			enum packget_mode mode);
void cache_packget_counts(struct cache *c, uint64_t *loads, uint64_t *hits);
/* Whether small files are being read pack after pack (a walk).  No lock
 * held. */
int cache_packget_walking(struct cache *c);
/* A buffer for a fetched block's plaintext, empty, into *b: one kept
 * from an earlier fetch (its memory already faulted in) or a new one;
 * cache_packget_buf_give() keeps it for the next (at most PACKGET_SPARE)
 * or frees it.  No lock held. */
void cache_packget_buf_take(struct cache *c, struct buf *b);
void cache_packget_buf_give(struct cache *c, struct buf *b);
/* Give back the memory of the packs kept and of the buffers kept (a sync
 * is a point of rest); a pack being got or read stays.  No lock held. */
void cache_packget_trim(struct cache *c);
/* Add delta to c->used (the data files' bytes), never below zero. */
void cache_blk_used_adjust(struct cache *c, int64_t delta);
/* Re-measure the data file's allocation into n->alloc and c->used;
 * n->lock held. */
void cache_blk_refresh_alloc(struct cache *c, struct cnode *n);

/* --- cache_trash.c: data files waiting for a durable unlink ----------- */

int cache_trash_open(struct cache *c);
/* Move ino's data file to the trash (instead of deleting it). */
void cache_trash_put(struct cache *c, uint64_t ino);
/* Sync LMDB, then delete what was in the trash. */
int cache_trash_empty(struct cache *c);
/* At open: restore the data of trashed inodes that are still alive
 * (their unlink was rolled back by a power loss), delete the rest. */
int cache_trash_recover(struct cache *c);

/* === floor 3 nodes ===================================================== */

/* --- cache_node.c: the in-memory node table --------------------------- */

/* Take one temporary reference (created if absent).  NULL: -ENOMEM. */
struct cnode *cache_node_acquire(struct cache *c, uint64_t ino);
/* Take a temporary reference if ino has a node; NULL otherwise. */
struct cnode *cache_node_find_ref(struct cache *c, uint64_t ino);
/* One more temporary reference to a node the caller holds. */
void cache_node_hold(struct cache *c, struct cnode *n);
/* Drop one temporary reference; the last one folds and frees. */
void cache_node_release(struct cache *c, struct cnode *n);
/* Add lookup references. */
void cache_node_ref_lookup(struct cache *c, uint64_t ino, uint64_t n);
/* Up to max nodes with fetched blocks, each with a temporary reference
 * (cache_node_release() each). */
size_t cache_node_collect_fetched(struct cache *c, struct cnode **out,
				  size_t max);
/*
 * Attributes of ino: its record with any pending size and times of its
 * node on top.  txn (may be NULL) serves when ino has no node.
 */
int cache_node_stat(struct cache *c, MDB_txn *txn, uint64_t ino,
		    struct stat *st);
/* Load size/times (once) and open the data file (again if it was
 * closed with the last handle); n->lock held. */
int cache_node_load(struct cache *c, struct cnode *n);
/* Write pending size/times into the inode record; n->lock held. */
int cache_node_fold(struct cache *c, struct cnode *n);
/* Fold every node (unmount, sync, the folder thread, dirty pressure):
 * a walk of the whole node table. */
int cache_node_fold_all(struct cache *c);
/* Fold the nodes of inos[0..count), sorted (repeats allowed; an inode
 * with no node or a clean one is skipped): what the sealer does for the
 * files just closed, at a cost that does not grow with the table. */
int cache_node_fold_inos(struct cache *c, const uint64_t *inos, size_t count);
/* Free the table (cache_close). */
void cache_node_table_free(struct cache *c);

/* === floor 4 residency ================================================= */

/* --- cache_lru.c: which files keep their blocks here ------------------ */

void cache_lru_init(struct cache *c);
void cache_lru_free(struct cache *c);
/* cache_blk_persist_node() for every node with fetched blocks (sealer). */
void cache_lru_persist_fetched(struct cache *c);
/* Evict clean, replicated blocks of files, least recently used first,
 * until `want` bytes are freed or nothing more can go.  A file open for
 * writing gives up its replicated blocks too (so that one larger than
 * cache_size can be written); a file with a read in flight
 * (n->pinned) gives up none.  Takes no lock on entry.  Returns the
 * bytes freed. */
uint64_t cache_lru_evict(struct cache *c, uint64_t want);
/* Note a use of ino for the LRU order. */
void cache_lru_touch(struct cache *c, uint64_t ino);
/* Write pending LRU times (folder thread). */
void cache_lru_flush(struct cache *c);

/* --- cache_ahead.c: read-ahead threads -------------------------------- */

/* Start the threads that fetch queued blocks ahead of sequential reads
 * (only with regions); stop them (a no-op when none run). */
int cache_ahead_start(struct cache *c);
void cache_ahead_stop(struct cache *c);

/* === floor 5 files ===================================================== */

/* --- cache_xattr.c: ACLs on the way of other changes ------------------ */

/* In the transaction creating ino in parent: give ino the ACLs parent's
 * default ACL calls for, and make *mode (type and permission bits as
 * asked) the mode to store: masked by that ACL, else by umask. */
int cache_acl_inherit(struct cache *c, MDB_txn *txn, uint64_t parent,
		      uint64_t ino, mode_t *mode, mode_t umask);

/* In a chmod's transaction: a stored access ACL of ino takes mode's
 * owner, group (its mask entry, if any) and other bits. */
int cache_acl_chmod(struct cache *c, MDB_txn *txn, uint64_t ino, mode_t mode);

/* --- cache_file.c: file content --------------------------------------- */

/* Make ino's content durable if it has unsynced writes: called before a
 * rename replaces another file with it (the save-by-rename pattern). */
int cache_file_sync_for_replace(struct cache *c, uint64_t ino);

/* === floor 6 replication =============================================== */

/* --- buffers kept between uses (cache_seal.c, cache_upload.c) -------- */

/*
 * Buffers one thread keeps from one use to the next (the sealer's pack
 * buffers, an uploader's read buffer): memory fresh from the system for
 * every pack faults in page by page, so they are kept while work goes on,
 * and given back once idle for KEPT_IDLE_NS or at a sync, a point of rest
 * (an idle daemon's memory goes back to what it serves).  The owning
 * thread's alone; no lock.
 */
#define KEPT_IDLE_NS (UINT64_C(10) * 1000000000)

struct kept_buf {
	struct buf *b[3];	/* borrowed from the owner; NULL: none */
	uint64_t idle_since;	/* first seen idle; 0 while in use */
};

/* Keep a, b and d (NULL: none), idle since now. */
static inline void kept_buf_init(struct kept_buf *k, struct buf *a,
				 struct buf *b, struct buf *d, uint64_t now)
{
	k->b[0] = a;
	k->b[1] = b;
	k->b[2] = d;
	k->idle_since = now;
}

/* They are in use: idle again from the next kept_buf_idle(). */
static inline void kept_buf_take(struct kept_buf *k)
{
	k->idle_since = 0;
}

/* Whether they have been idle for KEPT_IDLE_NS at now; the first look
 * after kept_buf_take() starts the count. */
static inline bool kept_buf_idle(struct kept_buf *k, uint64_t now)
{
	if (!k->idle_since)
		k->idle_since = now;
	return now - k->idle_since >= KEPT_IDLE_NS;
}

/* Give their memory back; they grow again at their next use. */
static inline void kept_buf_trim(struct kept_buf *k)
{
	for (size_t i = 0; i < sizeof(k->b) / sizeof(k->b[0]); i++)
		if (k->b[i])
			buf_release(k->b[i]);
}

/* --- cache_seal.c: the sealer ----------------------------------------- */

/* Write data to cache_dir/name (in directory dir) durably: a temporary
 * file, fdatasync, rename, fsync of dir.  Nothing is left on failure. */
int cache_store_durably(struct cache *c, const char *dir, const char *name,
			const void *data, size_t len);

int cache_seal_start(struct cache *c, const struct cache_config *cfg,
		     unsigned flags);
/* Seal what is left, stop the threads (cache_close()). */
void cache_seal_stop(struct cache *c);
void cache_seal_free(struct cache *c);
int cache_seal_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s);

/* The shared state behind c->seal (cache_seal.c and cache_upload.c). */
#define SEAL_MAX_REGIONS 16
struct seal_region {
	struct backend *be;	/* borrowed from the replica set */
	char name[65];
	uint32_t bit;
	/* by seal->lock: */
	unsigned fails;
	int down;
	uint64_t retry_ns;	/* no uploads before this */
	int busy;		/* uploads in flight */
	int dirty;		/* health to record in LMDB */
	int64_t last_ok;
	int seeding;		/* SEED_*, 0 once it is a whole copy */
	int64_t complete;	/* epoch seconds it was last seen holding
				   every object queued (pick()); 0 */
	uint64_t put_errors;	/* uploads that failed */
	struct phi_hist put_time;	/* how long uploads took; no lock */
};

/* A region being re-seeded (cache_mend.c): */
#define SEED_SUPER 1	/* nothing may go to it yet */
#define SEED_COPY 2	/* packs may, metadata objects not yet */

struct seal {
	struct backend *regions;
	const struct crypt_key *key;
	int nregions;
	struct seal_region r[SEAL_MAX_REGIONS];
	uint32_t all_bits;
	uint64_t delay_ns;
	uint64_t quiet_ns;	/* seal_quiet */
	uint64_t journal_ns;	/* metadata_interval */
	uint64_t pack_size;

	pthread_mutex_t lock;
	pthread_cond_t done;		/* sync passes, uploads finish */
	int stop;
	uint64_t next_seq;		/* next pack sequence number */
	uint64_t sync_mark;		/* last finished sync pass */
	uint64_t sync_seq;		/* packs up to it belong to it */
	uint64_t sync_mseq;		/* metadata objects likewise */
	uint64_t *inflight;		/* seq << 5 | bit, by lock */
	size_t ninflight, capinflight;
	pthread_t sealer;
	int sealer_running;
	struct crew *crew;		/* helpers that seal frames beside the
					   sealer (cache_seal.c); NULL: none */
	pthread_t uploader[64];
	int nuploaders;
	pthread_t mender;		/* cache_mend.c */
	int mender_running;
	struct mend *mend;
	/* the SHA-256 of objects lately sent to a region, for the others
	 * (cache_upload.c, digest_of()); by lock */
	struct upload_digest {
		bool used;		/* holds an object's digest */
		bool hashing;		/* its digest is being computed
					   (sha256 not yet set);
					   digest_done is broadcast when
					   it is */
		int kind;		/* QK_* (cache_upload.c) */
		uint64_t seq, size;
		uint8_t sha256[32];
	} digests[16];
	unsigned digest_next;
	uint64_t hashed;		/* hashes digest_of() computed (a
					   failed one, a retry's and one
					   with the memo full count too);
					   by lock */
	pthread_cond_t digest_done;	/* an entry stopped hashing */
};

/* --- cache_journal.c: metadata for the regions ------------------------ */

/* The format of segments and snapshots (described in cache_journal.c),
 * written there and read by cache_recover.c. */
#define JOURNAL_VERSION 2	/* 2: block records may be masked */
#define JOURNAL_VERSION_MIN 1	/* the oldest still read */
#define JOURNAL_HEADER 40
#define JOURNAL_OP_PUT 1
#define JOURNAL_OP_DEL 2
/* The big-endian integer of n bytes at p. */
uint64_t cache_journal_get_be(const uint8_t *p, int n);
/* The db of a journal record's db id (JDB_*). */
MDB_dbi cache_journal_db(struct cache *c, int db);
/* Set the 8-byte superblock value key in txn; an LMDB code. */
int cache_journal_set_u64(struct cache *c, MDB_txn *txn, const char *key,
			  uint64_t x);

/* Write what changed since the last segment as a new one (or a
 * snapshot); *seq is its number, 0 if nothing had changed. */
int cache_journal_flush(struct cache *c, uint64_t *seq);
/* Something to write (changes, or a snapshot owed). */
int cache_journal_pending(struct cache *c);

/* --- cache_auditseg.c: the audit trail's segments --------------------- */

#define CACHE_AUDITSEG_PER_FLUSH 65536	/* segments cut with one metadata
					   object, at most (auditq keys) */
#define CACHE_AUDITSEG_UNDO_MAX 64

/* The local copies stored by one cut, to unlink if its transaction
 * does not commit. */
struct cache_auditseg_undo {
	uint64_t first[CACHE_AUDITSEG_UNDO_MAX];
	size_t n;
	uint64_t cut;		/* segments cut */
	uint64_t bytes;		/* sealed bytes stored */
};

/* The chain's head as the superblock records it (zero if none). */
int cache_auditseg_head(struct cache *c, MDB_txn *txn,
			struct cache_audit_head *h);
/* Whether the table holds events not sealed yet. */
int cache_auditseg_pending(struct cache *c, MDB_txn *txn);
/* Seal every event after the head into segments stored in audit/, queue
 * them in auditq under mseq (the metadata object written in txn next)
 * and advance the head; in txn (cache_journal.c's flush).  u says what
 * was stored. */
int cache_auditseg_cut(struct cache *c, MDB_txn *txn, uint64_t mseq,
		       struct cache_auditseg_undo *u);
/* Unlink the local copies u stored (its transaction did not commit). */
void cache_auditseg_undo(struct cache *c, const struct cache_auditseg_undo *u);
/* Move h to the end of region's trail (its newest segment that opens)
 * if that is further: a cache recovered from the regions, perhaps as
 * at an earlier moment, must number its events after every segment
 * there and never remake one under a name in use.  0 or a region
 * error. */
int cache_auditseg_region_end(struct backend *region,
			      const struct crypt_key *key,
			      const uint8_t fsid[16], struct cache_audit_head *h);
/* The local copy of segment key ("a/..."), relative to cache_dir. */
void cache_auditseg_file(const char *key, char *out, size_t size);
/* The number of the last metadata object written here (or, in a copy
 * rebuilt by cache_recover(), the last one the region held). */
uint64_t cache_journal_seq(struct cache *c, MDB_txn *txn);
/* The local copy of metadata object key: "journal/<hex>". */
void cache_journal_file(const char *key, char *out, size_t size);

/* --- cache_upload.c: the upload queue --------------------------------- */

int cache_upload_start(struct cache *c, unsigned threads);
/* Load regions' bits and health; read-write open. */
int cache_upload_regions_load(struct cache *c, const char *const *names);
/* At open: delete the files in packs/ and journal/ that are not the
 * local copy of an object in the queue (a crash left them between
 * writing and recording, or after their last upload); returns the bytes
 * of those kept. */
uint64_t cache_upload_queue_sweep(struct cache *c);
/* Entries of the queue, readable or not, up to pack seq and metadata
 * object mseq. */
uint64_t cache_upload_queue_waiting(struct cache *c, MDB_txn *txn, uint64_t seq,
				    uint64_t mseq);
/* The regions on record (names, health) into s->regions, and the queue's
 * counts (sealed objects, what each region lacks); bits[i] receives the
 * bit of s->regions[i]. */
void cache_upload_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s,
			uint32_t bits[SEAL_MAX_REGIONS]);
/* Everything in the queue goes to the regions of bits too (a region
 * being re-seeded, which may be new: what was queued before it existed
 * is not in its copy yet either). */
int cache_upload_queue_all(struct cache *c, uint32_t bits);
/* End every region's backoff now (a sync was asked for). */
void cache_upload_retry_now(struct cache *c);
/* Record health changes, and how many regions are down for the data
 * path (cache_inbox_regions_up()); sealer pass. */
void cache_upload_record_health(struct cache *c);
/* A put to region r ended with rc: its failures, backoff and down mark
 * move.  seal->lock held. */
void cache_upload_health(struct seal_region *r, int rc);
/* The regions' upload counters into s->regions (cache_counters()). */
void cache_upload_counters(struct cache *c, struct cache_counters *s);

/* --- cache_mend.c: the mender thread ---------------------------------- */

/* Record the regions cfg->seed names as to be re-seeded (read-write
 * open, before any thread runs). */
int cache_mend_record(struct cache *c, const struct cache_config *cfg);
/* Mark the regions recorded so, and keep cfg's superblock; before the
 * uploaders start. */
int cache_mend_load(struct cache *c, const struct cache_config *cfg);
int cache_mend_start(struct cache *c);
/* Join it, free its state; cache_seal_stop() has set s->stop. */
void cache_mend_join(struct cache *c);
/* Objects regions being re-seeded still lack (at least one each). */
uint64_t cache_mend_waiting(struct cache *c, MDB_txn *txn);
/* Their progress into s->regions (cache_seal_stats()). */
void cache_mend_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s);

struct buf;

/* Authenticate object name (a pack frame by frame, a metadata object
 * whole), held in obj; scratch receives plaintext.  0 or the code. */
int cache_check_object(const struct crypt_key *key, const uint8_t *fsid,
		 const char *name, const struct buf *obj, struct buf *scratch);

/* === floor 8 admin ===================================================== */

/* --- cache_check.c: fsck, scrub, gc ----------------------------------- */

/* One line of a report through fn (nothing if fn is NULL). */
void cache_say(cache_report_fn *fn, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- cache_keep.c: what retention rules and holds keep from gc -------- */

/* Called with the key ("d/<hex>") of each pack a protected version is
 * in (a pack may come more than once); non-zero stops the replay. */
typedef int cache_keep_fn(void *ctx, const char *pack_key);

struct keep;

/* A replay under rules[0..nrules) (borrowed until cache_keep_free()),
 * judged at now_ms.  0 or -ENOMEM. */
int cache_keep_new(const struct cache_keep_rule *rules, size_t nrules,
		   int64_t now_ms, cache_keep_fn *fn, void *ctx,
		   struct keep **out);
/* Apply the plaintext of the next metadata object, oldest first: each
 * version it ends that a rule still protects goes to fn.  0,
 * PHI_ECORRUPT, -ENOMEM or what fn returned. */
int cache_keep_apply(struct keep *k, const uint8_t *d, size_t len);
/* The sequence number of the moment the oldest protected version began,
 * or UINT64_MAX when none is. */
uint64_t cache_keep_oldest(const struct keep *k);
void cache_keep_free(struct keep *k);

#endif
