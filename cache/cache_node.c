/*
 * cache_node.c - the in-memory table of inodes in use.
 *
 * A node exists while the kernel holds lookup references to its inode or
 * someone holds it (open handles, a setattr in progress).  It carries what
 * write() changes (size, mtime, ctime) so that a write costs no metadata
 * transaction; cache_node_fold() writes that state into the inode record.
 *
 *         cache_node_acquire()             cache_write()
 *   none ----------------> clean  ----------------> dirty
 *     ^                      |  ^                     |
 *     | last reference       |  +---------------------+
 *     +----------------------+      cache_node_fold(): flush, fsync, setattr,
 *       cache_node_release(),              release, close
 *       cache_forget()
 *
 * A node is freed only clean: cache_node_release() folds before it lets go.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cnode **bucket(struct cache *c, uint64_t ino)
{
	return &c->nodes[(ino * 0x9E3779B97F4A7C15ull) >>
			 (64 - NODE_HASH_BITS)];
}

/* Find ino; nodes_lock held. */
static struct cnode *find(struct cache *c, uint64_t ino)
{
	struct cnode *n;

	for (n = *bucket(c, ino); n; n = n->next)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Find or create ino; nodes_lock held. */
static struct cnode *get(struct cache *c, uint64_t ino)
{
	struct cnode *n = find(c, ino);
	struct cnode **b;

	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->ino = ino;
	n->fd = -1;
	n->cut_from = UINT64_MAX;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->fetch_done, NULL);
	b = bucket(c, ino);
	n->next = *b;
	*b = n;
	return n;
}

/* Unhook n if nothing refers to it; nodes_lock held.  Returns n if the
 * caller must free it. */
static struct cnode *unhook_if_unused(struct cache *c, struct cnode *n)
{
	struct cnode **p;

	if (n->nlookup || n->nref)
		return NULL;
	for (p = bucket(c, n->ino); *p != n; p = &(*p)->next)
		;
	*p = n->next;
	return n;
}

static void node_free(struct cache *c, struct cnode *n)
{
	/* its dirty blocks leave the count with it (a next node loads
	 * them again); room_for() reserves space by it */
	atomic_fetch_sub(&c->inbox.dirty_blocks, n->dblk.n);
	if (n->fd >= 0)
		close(n->fd);
	cache_blkset_free(&n->dblk);
	cache_blkset_free(&n->fresh);
	cache_blkset_free(&n->gone);
	cache_blkset_free(&n->fetched);
	cache_blkset_free(&n->sealing);
	cache_blkset_free(&n->checked);
	cache_blkset_free(&n->unowed);
	pthread_cond_destroy(&n->fetch_done);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

struct cnode *cache_node_acquire(struct cache *c, uint64_t ino)
{
	struct cnode *n;

	lock_take(&c->nodes_lock);
	n = get(c, ino);
	if (n)
		n->nref++;
	lock_drop(&c->nodes_lock);
	return n;
}

void cache_node_hold(struct cache *c, struct cnode *n)
{
	lock_take(&c->nodes_lock);
	n->nref++;
	lock_drop(&c->nodes_lock);
}

struct cnode *cache_node_find_ref(struct cache *c, uint64_t ino)
{
	struct cnode *n;

	lock_take(&c->nodes_lock);
	n = find(c, ino);
	if (n)
		n->nref++;
	lock_drop(&c->nodes_lock);
	return n;
}

/* Free the arrays of n's empty block sets; n->lock held.  A node lives
 * as long as the kernel remembers its inode, which may be for good: its
 * size must not keep what its busiest moment needed. */
static void trim_sets(struct cnode *n)
{
	struct blkset *sets[] = { &n->dblk, &n->fresh, &n->gone, &n->fetched,
				  &n->sealing };

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
		if (sets[i]->n == 0 && sets[i]->v)
			cache_blkset_free(sets[i]);
}

/* The last handle is gone: give the data file's descriptor back, so that
 * a program walking thousands of files does not run the daemon out of
 * them, and the memory of empty block sets.  The pending size stays in
 * the node.  nodes_lock held. */
static void close_data(struct cache *c, struct cnode *n)
{
	lock_take(&n->lock);
	if (n->fd >= 0) {
		cache_blk_refresh_alloc(c, n);
		close(n->fd);
		n->fd = -1;
	}
	trim_sets(n);
	lock_drop(&n->lock);
}

void cache_node_release(struct cache *c, struct cnode *n)
{
	uint64_t ino = n->ino;
	struct cnode *dead;
	int last;

	lock_take(&c->nodes_lock);
	last = n->nref == 1 && n->nlookup == 0;
	lock_drop(&c->nodes_lock);
	if (last) {
		/* Fold while the node is still findable, so that getattr
		 * never sees the record without the pending size. */
		lock_take(&n->lock);
		cache_blk_persist_node(c, n);	/* or the next node fetches
						   again */
		cache_node_fold(c, n);
		lock_drop(&n->lock);
	}
	lock_take(&c->nodes_lock);
	if (--n->nref == 0)
		close_data(c, n);
	/* Still dirty only if the fold above failed: keep the node (and
	 * its pending size) rather than let a newer node load a stale
	 * record. */
	dead = n->dirty ? NULL : unhook_if_unused(c, n);
	lock_drop(&c->nodes_lock);
	if (dead) {
		node_free(c, dead);
		cache_node_maybe_free(c, ino);
	}
}

/* Nodes with fetched blocks, each with a temporary reference. */
size_t cache_node_collect_fetched(struct cache *c, struct cnode **out,
				  size_t max)
{
	size_t count = 0;

	lock_take(&c->nodes_lock);
	for (size_t b = 0; b < NODE_BUCKETS && count < max; b++)
		for (struct cnode *n = c->nodes[b]; n && count < max;
		     n = n->next)
			if (atomic_load_explicit(&n->fetched_any,
						 memory_order_relaxed)) {
				/* a peek without n->lock; rechecked */
				n->nref++;
				out[count++] = n;
			}
	lock_drop(&c->nodes_lock);
	return count;
}

void cache_node_ref_lookup(struct cache *c, uint64_t ino, uint64_t count)
{
	struct cnode *n;

	lock_take(&c->nodes_lock);
	n = get(c, ino);
	if (n)
		n->nlookup += count;
	lock_drop(&c->nodes_lock);
	if (!n)
		PHI_LOG(PHI_LOG_ERR, "out of memory tracking inode %llu",
			(unsigned long long)ino);
}

void cache_forget(struct cache *c, uint64_t ino, uint64_t nlookup)
{
	struct cnode *n, *dead = NULL;
	int fold = 0;

	lock_take(&c->nodes_lock);
	n = find(c, ino);
	if (n) {
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		/* A node must never leave the table with a pending size: a
		 * new node for the same inode would load the older record
		 * (and trim the data file to it).  Fold through a temporary
		 * reference instead; cache_node_release() then unhooks
		 * it clean. */
		if (n->nlookup == 0 && n->nref == 0 && n->dirty) {
			n->nref++;
			fold = 1;
		} else {
			dead = unhook_if_unused(c, n);
		}
	}
	lock_drop(&c->nodes_lock);
	if (fold) {
		cache_node_release(c, n);	/* nref 1, nlookup 0: folds,
						   unhooks */
	} else if (dead) {
		node_free(c, dead);
		cache_node_free_later(c, ino);
	}
}

/* Whether anything refers to ino (lookups or handles). */
static int node_in_use(struct cache *c, uint64_t ino)
{
	struct cnode *n;
	int used;

	lock_take(&c->nodes_lock);
	n = find(c, ino);
	used = n && (n->nlookup || n->nref);
	lock_drop(&c->nodes_lock);
	return used;
}

/* The later of two times: namespace operations move ctime in the record
 * while a node may hold an older pending one from its last write. */
static struct timespec later(struct timespec a, int64_t sec, uint32_t nsec)
{
	if (sec > a.tv_sec || (sec == a.tv_sec && (long)nsec > a.tv_nsec))
		return (struct timespec){ sec, nsec };
	return a;
}

/* Put n's pending size and times on top of st; n->lock held. */
static void overlay(const struct cnode *n, struct stat *st)
{
	if (!n->dirty)
		return;
	st->st_size = (off_t)n->size;
	st->st_mtim = n->mtime;
	st->st_ctim = later(n->ctime, st->st_ctim.tv_sec,
			    (uint32_t)st->st_ctim.tv_nsec);
	st->st_blocks = (blkcnt_t)cache_blocks_shown((n->alloc + n->growth) /
						     512, n->size);
}

static int read_stat(struct cache *c, MDB_txn *txn, uint64_t ino,
		     struct stat *st)
{
	struct inode_rec rec;
	int rc = 0, own = !txn;

	if (own && !(txn = cache_meta_read_begin(c, &rc)))
		return rc;
	rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
	if (own)
		cache_meta_read_end(txn);
	if (rc == 0)
		cache_inode_to_stat(ino, &rec, st);
	return rc;
}

int cache_node_stat(struct cache *c, MDB_txn *txn, uint64_t ino,
		    struct stat *st)
{
	struct cnode *n = cache_node_find_ref(c, ino);
	int rc;

	if (!n)
		return read_stat(c, txn, ino, st);
	/* Folds commit under n->lock: reading the record under it, in a
	 * transaction of our own, can never pair a record from before a
	 * fold with a node that is already clean after it. */
	lock_take(&n->lock);
	rc = read_stat(c, NULL, ino, st);
	if (rc == 0)
		overlay(n, st);
	lock_drop(&n->lock);
	cache_node_release(c, n);
	return rc;
}

/* Open (creating if needed) the data file of n; n->lock held. */
static int open_data(struct cache *c, struct cnode *n)
{
	char name[32];
	int fd;

	cache_data_name(n->ino, name, sizeof(name));
	fd = openat(c->datafd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = openat(c->datafd, name, O_RDWR | O_CREAT | O_EXCL |
			    O_CLOEXEC, 0600);
		n->created = fd >= 0;
	}
	if (fd < 0)
		return -errno;
	n->fd = fd;
	return 0;
}

int cache_node_load(struct cache *c, struct cnode *n)
{
	struct inode_rec rec;
	struct stat st;
	MDB_txn *txn;
	int rc;

	if (n->loaded)
		return n->fd >= 0 ? 0 : open_data(c, n);
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_inode_get(c, txn, n->ino, &rec, NULL, NULL);
	if (rc == 0 && S_ISREG(rec.mode))
		rc = cache_blk_load(c, txn, n);
	cache_meta_read_end(txn);
	if (rc)
		return rc;
	if (!S_ISREG(rec.mode))
		return S_ISDIR(rec.mode) ? -EISDIR : -EINVAL;
	if (n->fd < 0 && (rc = open_data(c, n)))
		return rc;
	if (fstat(n->fd, &st))
		return -errno;
	/* The record is the truth.  After a crash the data file can hold an
	 * unsynced tail past it (which must never reappear when the file
	 * grows again) or, after a power loss, end short of it (the rest
	 * must read as zeros, not as EOF). */
	if (c->sect.sealed) {
		/* only a crash leaves a tail past the record; a damaged
		 * sector there is found by the read that meets it */
		rc = c->sect.unclean ? cache_sect_cut(c, n, rec.size) : 0;
		if (rc == PHI_EAUTHFAIL)
			rc = 0;
	}
	else if ((uint64_t)st.st_size != rec.size &&
		 ftruncate(n->fd, (off_t)rec.size))
		rc = -errno;
	if (rc)
		return rc;
	cache_blk_punch_gone(c, n);
	n->size = n->rec_size = rec.size;
	n->mtime = (struct timespec){ rec.mtime_sec, rec.mtime_nsec };
	n->ctime = (struct timespec){ rec.ctime_sec, rec.ctime_nsec };
	n->loaded = 1;
	/* c->used counts rec.blocks already; only the difference moves. */
	n->alloc = rec.blocks * 512;
	cache_blk_refresh_alloc(c, n);
	/* An earlier node, or a killed daemon, may have left this file's
	 * pages unsynced: the first fsync of a new node always syncs. */
	n->unsynced = 1;
	n->created = 1;
	return 0;
}


struct fold_arg {
	struct cnode *n;
	uint64_t blocks;
};

/*
 * Fetching evicted blocks back and evicting them again change only the
 * record's `blocks`, which describes this store and never leaves it (a
 * journal replay zeroes it): such a fold is not journaled, or reading a
 * folder of evicted files would send a record per file to every region.
 */
static int fold_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct fold_arg *a = arg;
	struct inode_rec old, rec;
	int rc;

	rc = cache_inode_get(c, txn, a->n->ino, &old, NULL, NULL);
	if (rc)
		return rc;
	rec = old;
	rec.size = a->n->size;
	rec.blocks = a->blocks;
	cache_rec_set_time(&rec.mtime_sec, &rec.mtime_nsec, a->n->mtime);
	cache_rec_set_time(&rec.ctime_sec, &rec.ctime_nsec,
		     later(a->n->ctime, rec.ctime_sec, rec.ctime_nsec));
	rc = cache_blk_fold_txn(c, txn, a->n);
	if (rc)
		return rc;
	old.blocks = rec.blocks;
	if (S_ISREG(rec.mode) && memcmp(&old, &rec, sizeof(rec)) == 0)
		return cache_inode_put_local(c, txn, a->n->ino, &rec);
	return cache_inode_put(c, txn, a->n->ino, &rec, NULL, 0);
}

int cache_node_fold(struct cache *c, struct cnode *n)
{
	struct fold_arg a = { n, 0 };
	int rc;

	if (!n->dirty)
		return 0;
	cache_blk_refresh_alloc(c, n);
	a.blocks = n->alloc / 512;
	rc = cache_meta_write(c, fold_txn, &a);
	if (rc && rc != -ENOENT)	/* ENOENT: freed meanwhile */
		return rc;
	n->dirty = 0;
	cache_blk_fold_done(n);
	return 0;
}

#define BATCH 512

struct batch {
	struct cnode *n[BATCH];
	int locked[BATCH];
	size_t count;
};

/*
 * Pick dirty nodes, each with a temporary reference, from *bucket on,
 * until BATCH are taken.  A bucket that does not fit is left for the next
 * round (its folded nodes are clean by then), so successive rounds make
 * one pass over the table.
 */
static void batch_collect(struct cache *c, struct batch *b, size_t *bucket)
{
	b->count = 0;
	lock_take(&c->nodes_lock);
	for (; *bucket < NODE_BUCKETS; (*bucket)++) {
		struct cnode *n;

		for (n = c->nodes[*bucket]; n; n = n->next) {
			if (!n->dirty)
				continue;
			if (b->count == BATCH)
				break;
			n->nref++;
			b->locked[b->count] = 0;
			b->n[b->count++] = n;
		}
		if (n)
			break;
	}
	lock_drop(&c->nodes_lock);
}

/*
 * Pick the dirty nodes of inos[*pos..count) (sorted: a repeat is
 * skipped), each with a temporary reference, until BATCH are taken.
 */
static void batch_collect_inos(struct cache *c, struct batch *b,
			       const uint64_t *inos, size_t count, size_t *pos)
{
	b->count = 0;
	lock_take(&c->nodes_lock);
	for (; *pos < count && b->count < BATCH; (*pos)++) {
		struct cnode *n;

		if (*pos > 0 && inos[*pos] == inos[*pos - 1])
			continue;
		n = find(c, inos[*pos]);
		if (!n || !n->dirty)
			continue;
		n->nref++;
		b->locked[b->count] = 0;
		b->n[b->count++] = n;
	}
	lock_drop(&c->nodes_lock);
}

/*
 * Fold every node of the batch whose lock is free into one transaction.
 * Taking node locks inside a write transaction reverses the lock order,
 * so only trylock is used here: a busy node is left for the next pass.
 * The locks are held until the commit is known (batch_unlock()).
 */
static int batch_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct batch *b = arg;

	for (size_t i = 0; i < b->count; i++) {
		struct cnode *n = b->n[i];
		struct fold_arg a = { n, 0 };
		int rc;

		if (!b->locked[i]) {
			if (lock_try(&n->lock))
				continue;
			b->locked[i] = 1;
		}
		if (!n->dirty)
			continue;
		cache_blk_refresh_alloc(c, n);
		a.blocks = n->alloc / 512;
		rc = fold_txn(c, txn, &a);
		if (rc && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/* The batch failed as a whole: fold its nodes one by one, so that one
 * bad inode does not hold back the others.  First error returned. */
static int batch_fold_each(struct cache *c, struct batch *b)
{
	int first = 0;

	for (size_t i = 0; i < b->count; i++) {
		int rc;

		if (!b->locked[i])
			continue;
		rc = cache_node_fold(c, b->n[i]);
		if (rc && !first)
			first = rc;
	}
	return first;
}

/* Unlock, then release: cache_node_release() takes nodes_lock, and
 * close_data() takes a node lock under nodes_lock. */
static size_t batch_finish(struct cache *c, struct batch *b, int committed)
{
	size_t taken = 0;

	for (size_t i = 0; i < b->count; i++) {
		if (!b->locked[i])
			continue;
		if (committed) {
			b->n[i]->dirty = 0;
			cache_blk_fold_done(b->n[i]);
		}
		lock_drop(&b->n[i]->lock);
		taken++;
	}
	for (size_t i = 0; i < b->count; i++)
		cache_node_release(c, b->n[i]);
	return taken;
}

/* Fold the dirty nodes of inos[0..count), or of the whole table when
 * inos is NULL, a batch per transaction.  First error returned. */
static int fold_batches(struct cache *c, const uint64_t *inos, size_t count)
{
	struct batch *b = malloc(sizeof(*b));
	size_t bucket = 0, pos = 0;
	int first = 0;

	if (!b)
		return -ENOMEM;
	for (;;) {
		int rc;

		if (inos)
			batch_collect_inos(c, b, inos, count, &pos);
		else
			batch_collect(c, b, &bucket);
		if (b->count == 0)
			break;
		rc = cache_meta_write(c, batch_txn, b);
		if (rc)
			rc = batch_fold_each(c, b);
		if (rc && !first)
			first = rc;
		/* Every node busy: their writers fold them.  A pass over the
		 * table stops there (its next batch would be the same one);
		 * a list goes on with its next nodes. */
		if (batch_finish(c, b, rc == 0) == 0 && !inos)
			break;
	}
	free(b);
	return first;
}

int cache_node_fold_all(struct cache *c)
{
	return fold_batches(c, NULL, 0);
}

int cache_node_fold_inos(struct cache *c, const uint64_t *inos, size_t count)
{
	return fold_batches(c, inos, count);
}

void cache_node_table_free(struct cache *c)
{
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		while (c->nodes[i]) {
			struct cnode *n = c->nodes[i];

			c->nodes[i] = n->next;
			node_free(c, n);
		}
	}
}

/* --- freeing unlinked inodes --------------------------------------------- */

/*
 * An orphan (nlink 0, in `orphans` since the commit that dropped its
 * last name) is freed once nothing refers to it: its data file moved to
 * the trash, then one transaction deletes its xattrs, blocks and record
 * and the orphan entry.  cache_node_maybe_free() does that for one
 * inode at once; cache_node_free_later() queues it and
 * cache_node_free_queued() does it for the whole queue, every data file
 * first and then one transaction.  A crash anywhere in between leaves
 * orphans that the next open frees (cache_node_free_orphans()).
 */

struct free_arg {
	uint64_t ino;
	uint64_t freed;		/* bytes the inode occupied */
};

static int free_inode_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct free_arg *fa = arg;
	uint64_t ino = fa->ino;
	struct inode_rec rec;
	uint8_t k[8];
	MDB_val key = { sizeof(k), k };
	int rc;

	rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
	if (rc == -ENOENT)
		goto drop_orphan;
	if (rc)
		return rc;
	if (rec.nlink > 0)
		goto drop_orphan;	/* relinked meanwhile */
	rc = cache_meta_del_prefixed(c, txn, c->db_xattrs, JDB_XATTRS, ino);
	if (rc == 0)
		rc = cache_blk_free_txn(c, txn, ino);
	if (rc)
		return rc;
	key_put_u64(k, ino);
	rc = cache_rec_del(c, txn, JDB_INODES, &key, 0);
	if (rc)
		return cache_meta_err(rc);
	fa->freed = rec.blocks * 512;
drop_orphan:
	key_put_u64(k, ino);
	rc = mdb_del(txn, c->db_orphans, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

static int is_orphan(struct cache *c, uint64_t ino)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val;
	MDB_txn *txn;
	int rc, found;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return 0;
	key_put_u64(k, ino);
	found = mdb_get(txn, c->db_orphans, &key, &val) == 0;
	cache_meta_read_end(txn);
	return found;
}

void cache_node_maybe_free(struct cache *c, uint64_t ino)
{
	struct free_arg fa = { ino, 0 };
	int rc;

	if (c->rdonly || node_in_use(c, ino) || !is_orphan(c, ino))
		return;
	/* Data first: a crash after this leaves an orphan whose data file
	 * is already in the trash, which the next open finishes freeing. */
	cache_trash_put(c, ino);
	rc = cache_meta_write(c, free_inode_txn, &fa);
	if (rc == 0)
		cache_blk_used_adjust(c, -(int64_t)fa.freed);
	else
		PHI_LOG(PHI_LOG_WARNING, "cannot free inode %llu: %s",
			(unsigned long long)ino, phi_strerror(rc));
}

void cache_node_free_later(struct cache *c, uint64_t ino)
{
	int wake = 0, queued = 0;

	if (c->rdonly || !is_orphan(c, ino))
		return;
	/* folder_running is set before cache_open() returns and cleared
	 * by cache_close() after the kernel's last request */
	if (!c->folder_running) {
		cache_node_maybe_free(c, ino);
		return;
	}
	lock_take(&c->free_lock);
	if (c->nfreeq == c->capfreeq) {
		size_t cap = c->capfreeq ? 2 * c->capfreeq : 64;
		uint64_t *v = realloc(c->freeq, cap * sizeof(*v));

		if (v) {
			c->freeq = v;
			c->capfreeq = cap;
		}
	}
	if (c->nfreeq < c->capfreeq) {
		if (c->nfreeq == 0)
			c->freeq_first_ns = phi_mono_ns();
		c->freeq[c->nfreeq++] = ino;
		wake = c->nfreeq == 1 || c->nfreeq == FREE_BATCH;
		queued = 1;
	}
	lock_drop(&c->free_lock);
	if (wake) {	/* to set its deadline, or to free a full batch */
		lock_take(&c->folder_lock);
		pthread_cond_signal(&c->folder_cond);
		lock_drop(&c->folder_lock);
	} else if (!queued) {	/* out of memory: no batch */
		cache_node_maybe_free(c, ino);
	}
}

uint64_t cache_node_free_due(struct cache *c)
{
	uint64_t due = UINT64_MAX;

	lock_take(&c->free_lock);
	if (c->nfreeq >= FREE_BATCH)
		due = 0;
	else if (c->nfreeq)
		due = c->freeq_first_ns + FREE_GATHER_MS * 1000000ull;
	lock_drop(&c->free_lock);
	return due;
}

struct free_batch {
	uint64_t *inos;
	size_t n;
	uint64_t freed;		/* bytes */
};

static int free_batch_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct free_batch *b = arg;

	b->freed = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct free_arg fa = { b->inos[i], 0 };
		int rc = free_inode_txn(c, txn, &fa);

		if (rc)
			return rc;
		b->freed += fa.freed;
	}
	return 0;
}

/* Free inos[0..count), whose data files are in the trash: FREE_BATCH
 * to a transaction, so that a queue that grew while the folder thread
 * was busy makes no huge one. */
static void free_in_batches(struct cache *c, uint64_t *inos, size_t count)
{
	for (size_t at = 0; at < count; at += FREE_BATCH) {
		struct free_batch b = { inos + at, count - at, 0 };
		int rc;

		if (b.n > FREE_BATCH)
			b.n = FREE_BATCH;
		rc = cache_meta_write(c, free_batch_txn, &b);
		if (rc == 0) {
			cache_blk_used_adjust(c, -(int64_t)b.freed);
			continue;
		}
		/* one bad inode must not keep the others */
		for (size_t i = 0; i < b.n; i++)
			cache_node_maybe_free(c, b.inos[i]);
	}
}

size_t cache_node_free_queued(struct cache *c)
{
	uint64_t *inos;
	size_t count, n = 0;

	lock_take(&c->free_lock);
	inos = c->freeq;
	count = c->nfreeq;
	c->freeq = NULL;
	c->nfreeq = c->capfreeq = 0;
	lock_drop(&c->free_lock);
	/* The checks of cache_node_maybe_free(), data first for each. */
	for (size_t i = 0; i < count; i++) {
		if (node_in_use(c, inos[i]) || !is_orphan(c, inos[i]))
			continue;
		cache_trash_put(c, inos[i]);
		inos[n++] = inos[i];
	}
	free_in_batches(c, inos, n);
	free(inos);
	return n;
}

int cache_node_free_orphans(struct cache *c)
{
	uint64_t inos[256];
	size_t n;

	do {
		MDB_val key, val;
		MDB_cursor *cur;
		MDB_txn *txn;
		int rc;

		txn = cache_meta_read_begin(c, &rc);
		if (!txn)
			return rc;
		n = 0;
		rc = mdb_cursor_open(txn, c->db_orphans, &cur);
		if (rc) {
			cache_meta_read_end(txn);
			return cache_meta_err(rc);
		}
		for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		     rc == 0 && n < 256;
		     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			inos[n++] = key_get_u64(key.mv_data);
		}
		mdb_cursor_close(cur);
		cache_meta_read_end(txn);
		for (size_t i = 0; i < n; i++)
			cache_node_maybe_free(c, inos[i]);
		/* Stop when a pass frees nothing rather than spin on orphans
		 * that cannot be freed now; the next open tries again. */
	} while (n == 256 && is_orphan(c, inos[0]) == 0);
	return 0;
}
