/*
 * cache_lru.c - which files keep their blocks here: the order of last
 * use, eviction across files when the cache is near cache_size, and
 * recording fetched blocks as resident for every loaded node.
 *
 * This floor picks the files; the block store (cache_blk.c) makes each
 * transition of a block's state, under the node lock this floor takes.
 * The order of use is a hint: a use noted in memory (cache_lru_touch()) reaches
 * the `lru` db at the next cache_lru_flush(), and losing it costs only a
 * worse choice of what to evict.
 */
#include "cache_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cache_lru_persist_fetched(struct cache *c)
{
	struct cnode *nodes[256];
	size_t count;

	if (!c->seal || !cache_inbox_take_fetched(c))
		return;
	/*
	 * Rounds of 256 from the start of the table, each clearing the flag
	 * of the nodes it recorded.  A node it cannot record (a full disk, a
	 * failed fdatasync) keeps its flag, so it is picked again by the next
	 * round: a round that recorded none stops the pass, or 256 such
	 * nodes would be picked for ever and hold up the sealer.  They are
	 * tried again when a fetch next raises the inbox flag.
	 */
	do {
		size_t cleared = 0;

		count = cache_node_collect_fetched(c, nodes, 256);
		for (size_t i = 0; i < count; i++) {
			struct cnode *n = nodes[i];

			lock_take(&n->lock);
			if (n->fetched.n && cache_node_load(c, n) == 0)
				cache_blk_persist_node(c, n);
			if (!n->fetched.n) {
				atomic_store_explicit(&n->fetched_any, 0,
						      memory_order_relaxed);
				cleared++;
			}
			lock_drop(&n->lock);
			cache_node_release(c, n);
		}
		if (cleared == 0)
			break;
	} while (count == 256);
}

void cache_lru_init(struct cache *c)
{
	pthread_mutex_init(&c->lru.lock, NULL);
}

void cache_lru_free(struct cache *c)
{
	pthread_mutex_destroy(&c->lru.lock);
	free(c->lru.v);
	c->lru.v = NULL;
	c->lru.n = c->lru.cap = 0;
}

void cache_lru_touch(struct cache *c, uint64_t ino)
{
	struct lru_notes *l = &c->lru;
	struct timespec now;

	if (!c->seal)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	lock_take(&l->lock);
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		void *v = realloc(l->v, cap * sizeof(*l->v));

		if (!v) {
			lock_drop(&l->lock);
			return;		/* the order is a hint only */
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n][0] = ino;
	l->v[l->n][1] = (uint64_t)now.tv_sec * 1000000000ull +
			(uint64_t)now.tv_nsec;
	l->n++;
	lock_drop(&l->lock);
}

struct lru_arg {
	uint64_t (*v)[2];
	size_t n;
};

static int lru_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct lru_arg *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		uint8_t k[8];
		MDB_val key = { sizeof(k), k }, val = { 8, &a->v[i][1] }, old;
		struct inode_rec rec;
		int rc;

		/* an inode freed meanwhile must not come back as an entry */
		if (cache_inode_get(c, txn, a->v[i][0], &rec, NULL, NULL))
			continue;
		key_put_u64(k, a->v[i][0]);
		if (cache_rec_get(c, txn, JDB_LRU, &key, &old) == 0 &&
		    old.mv_size == 8) {
			uint64_t t;

			memcpy(&t, old.mv_data, 8);
			if (t > a->v[i][1])
				continue;	/* a later use is recorded */
		}
		rc = cache_rec_put(c, txn, JDB_LRU, &key, &val,
				   CACHE_REC_QUIET);
		if (rc)
			return cache_meta_err(rc);
	}
	return 0;
}

void cache_lru_flush(struct cache *c)
{
	struct lru_notes *l = &c->lru;
	struct lru_arg a;

	if (!c->seal)
		return;
	lock_take(&l->lock);
	a.v = l->v;
	a.n = l->n;
	l->v = NULL;
	l->n = l->cap = 0;
	lock_drop(&l->lock);
	if (a.n)
		cache_meta_write(c, lru_txn, &a);
	free(a.v);
}

static int cmp_time(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Every inode in `lru`, oldest use first.  *out is malloc()ed. */
static size_t lru_order(struct cache *c, uint64_t (**out)[2])
{
	uint64_t (*v)[2] = NULL;
	size_t n = 0, cap = 0;
	MDB_val key, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return 0;
	if (mdb_cursor_open(txn, c->db_lru, &cur) == 0) {
		size_t mark = cache_rec_mark();

		while (cache_rec_release(mark),
		       cache_rec_cursor(c, JDB_LRU, cur, &key, &val,
					MDB_NEXT) == 0) {
			if (key.mv_size != 8 || val.mv_size != 8)
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 1024;
				void *p = realloc(v, ncap * sizeof(*v));

				if (!p)
					break;
				v = p;
				cap = ncap;
			}
			v[n][0] = key_get_u64(key.mv_data);
			memcpy(&v[n][1], val.mv_data, 8);
			n++;
		}
		mdb_cursor_close(cur);
	}
	cache_meta_read_end(txn);
	if (n)
		qsort(v, n, sizeof(*v), cmp_time);
	*out = v;
	return n;
}

static int lru_del_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k };
	int rc;

	key_put_u64(k, *(uint64_t *)arg);
	rc = mdb_del(txn, c->db_lru, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

/*
 * Evict what can go of ino; returns the bytes freed.  An open file is no
 * exception: what can go is clean and in every region, and every write,
 * fetch and seal of its blocks happens under n->lock, held here.  Only a
 * read the kernel is still being served from the data file with the
 * lock dropped, or a read or write fetching blocks back (n->pinned),
 * keeps the file's blocks where they are.
 */
static uint64_t evict_one(struct cache *c, uint64_t ino)
{
	struct blkset go = { 0 };
	struct cnode *n = cache_node_acquire(c, ino);
	uint64_t freed = 0;
	int left = 1, rc;

	if (!n)
		return 0;
	lock_take(&n->lock);
	rc = n->pinned ? -EBUSY : cache_node_load(c, n);
	if (rc == 0)
		rc = cache_blk_evictable(c, n, &go, &left);
	if (rc == 0 && go.n) {
		rc = cache_blk_evict_blocks(c, n, &go, &freed);
		cache_node_fold(c, n);
	}
	lock_drop(&n->lock);
	cache_node_release(c, n);
	if (rc == 0 && !left)
		cache_meta_write(c, lru_del_txn, &ino);
	cache_blkset_free(&go);
	return freed;
}

uint64_t cache_lru_evict(struct cache *c, uint64_t want)
{
	uint64_t (*order)[2], freed = 0;
	size_t n;

	if (!c->seal)
		return 0;
	cache_lru_flush(c);
	n = lru_order(c, &order);
	for (size_t i = 0; i < n && freed < want; i++)
		freed += evict_one(c, order[i][0]);
	free(order);
	if (freed)
		PHI_LOG(PHI_LOG_INFO, "evicted %llu bytes of replicated blocks",
			(unsigned long long)freed);
	return freed;
}

uint64_t cache_evict(struct cache *c, uint64_t want)
{
	return cache_lru_evict(c, want);
}
