/*
 * cache_mend.c - the mender: one thread of a read-write open with regions
 * that looks again at the bad copies reads recorded for repair.
 *
 * A read that meets a bad or missing copy in a region records it in the
 * `repair` db (cache_blk.c) and fails over; status shows the count as
 * that region's `bad`.  Someone else mends the copy (`phifs fsck
 * --repair`), so the record must go once the copy is good again, or status
 * would show it for ever.  The mender fetches each recorded copy from its
 * region and authenticates it whole (check_object()): a good copy drops
 * the record, a bad or missing one keeps it.  It looks at once when the
 * cache opens, at every sync request (fsck asks the mount for one after
 * a repair), and otherwise after RECHECK_MIN_NS, doubling up to
 * RECHECK_MAX_NS while copies stay bad, so that a copy nobody mends is not
 * fetched over and over.  A record whose pack no block names any more has
 * nothing left to mend for reads and is dropped (history is fsck's).
 *
 * The mender never writes to a region.  Floor: administration (beside
 * check, scrub, gc): it reads the replication floor's region table
 * (struct seal) and the records below; nothing calls it but seal_start()
 * and seal_stop().  It holds no lock across a call to a region.
 */
#include "cache_int.h"
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEND_TICK_MS 1000
#define RECHECK_MIN_NS (UINT64_C(60) * 1000000000)
#define RECHECK_MAX_NS (UINT64_C(3600) * 1000000000)

/* One record of the `repair` db. */
struct bad_copy {
	uint8_t key[12];	/* pack seq, 0, 0, 0, region bit */
	uint64_t seq;
	uint32_t bit;
	int found;		/* id below is known */
	uint8_t id[16];
};

/* Append the record whose key is k (others are skipped).  0 or -ENOMEM. */
static int add_bad(struct bad_copy **v, size_t *n, size_t *cap,
		   const MDB_val *k)
{
	struct bad_copy *b;

	if (k->mv_size != sizeof(b->key))
		return 0;
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		void *p = realloc(*v, nc * sizeof(**v));

		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = nc;
	}
	b = &(*v)[(*n)++];
	memcpy(b->key, k->mv_data, sizeof(b->key));
	b->seq = key_get_u64(k->mv_data);
	b->bit = b->key[11];
	b->found = 0;
	return 0;
}

/* Note the pack of block record d in every record that names its
 * sequence number; how many records learnt their pack. */
static size_t name_packs(struct bad_copy *v, size_t n, const MDB_val *d)
{
	struct block_rec br;
	size_t named = 0;

	if (d->mv_size != sizeof(br))
		return 0;
	memcpy(&br, d->mv_data, sizeof(br));
	for (size_t i = 0; i < n; i++)
		if (!v[i].found && v[i].seq == br.seq) {
			memcpy(v[i].id, br.pack, sizeof(v[i].id));
			v[i].found = 1;
			named++;
		}
	return named;
}

/* Every record into *out (malloc()ed), with the id of the pack each one
 * names (found == 0 when no block names it any more).  The count, or a
 * negative code. */
static long load_bad(struct cache *c, struct bad_copy **out)
{
	struct bad_copy *v = NULL;
	size_t n = 0, cap = 0, left;
	MDB_cursor *cur;
	MDB_val k, d;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	txn = meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = meta_err(mdb_cursor_open(txn, c->db_repair, &cur));
	if (rc == 0) {
		while (rc == 0 && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0)
			rc = add_bad(&v, &n, &cap, &k);
		mdb_cursor_close(cur);
	}
	left = n;
	if (rc == 0 && n)
		rc = meta_err(mdb_cursor_open(txn, c->db_blocks, &cur));
	if (rc == 0 && n) {
		while (left && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0)
			left -= name_packs(v, n, &d);
		mdb_cursor_close(cur);
	}
	meta_read_end(txn);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	return (long)n;
}

struct drop_arg {
	const struct bad_copy *v;
	const int *drop;
	size_t n;
};

static int drop_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	const struct drop_arg *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		MDB_val k = { sizeof(a->v[i].key), (void *)a->v[i].key };
		int rc;

		if (!a->drop[i])
			continue;
		rc = mdb_del(txn, c->db_repair, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return meta_err(rc);
	}
	return 0;
}

/* The region whose bit is bit, or NULL (no longer configured). */
static struct seal_region *region_of(struct seal *s, uint32_t bit)
{
	for (int i = 0; i < s->nregions; i++)
		if (s->r[i].bit == bit)
			return &s->r[i];
	return NULL;
}

/* Whether region r now holds a good copy of the pack with that id. */
static int copy_good(struct cache *c, struct seal_region *r,
		     const uint8_t id[16], struct buf *obj, struct buf *plain)
{
	char key[PACK_KEY_LEN + 1];

	pack_key(id, key);
	buf_reset(obj);
	if (backend_get(r->be, key, 0, 0, obj))
		return 0;
	if (check_object(c->seal->key, c->fsid, key, obj, plain))
		return 0;
	PHI_LOG(PHI_LOG_NOTICE, "object %s: region %s holds a good copy "
		"again; no longer recorded for repair", key, r->name);
	return 1;
}

/* Look at every record.  1 if some stay bad. */
static int recheck(struct cache *c)
{
	struct drop_arg a = { NULL, NULL, 0 };
	struct bad_copy *v;
	struct buf obj, plain;
	int *drop, left = 0;
	long n;

	n = load_bad(c, &v);
	if (n <= 0)
		return n < 0;
	drop = calloc((size_t)n, sizeof(*drop));
	if (!drop) {
		free(v);
		return 1;
	}
	buf_init(&obj, SIZE_MAX);
	buf_init(&plain, SIZE_MAX);
	for (size_t i = 0; i < (size_t)n && !mend_stopping(c); i++) {
		struct seal_region *r = region_of(c->seal, v[i].bit);

		drop[i] = !r || !v[i].found ||
			  copy_good(c, r, v[i].id, &obj, &plain);
		left |= !drop[i];
	}
	buf_release(&obj);
	buf_release(&plain);
	a.v = v;
	a.drop = drop;
	a.n = (size_t)n;
	if (meta_write(c, drop_txn, &a))
		left = 1;
	free(drop);
	free(v);
	return left;
}

int mend_stopping(struct cache *c)
{
	struct seal *s = c->seal;
	int stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* Sleep up to MEND_TICK_MS, less if stopped.  s->lock held. */
static void tick(struct seal *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += MEND_TICK_MS / 1000;
	ts.tv_nsec += (long)(MEND_TICK_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&s->done, &s->lock, &ts);
}

static void *mend_main(void *arg)
{
	struct cache *c = arg;
	struct seal *s = c->seal;
	uint64_t next = 0, interval = RECHECK_MIN_NS;
	unsigned handled = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		unsigned req = atomic_load(&s->sync_req);
		uint64_t now = cache_mono_ns();

		if (req != handled || now >= next) {
			pthread_mutex_unlock(&s->lock);
			if (req != handled)
				interval = RECHECK_MIN_NS;
			handled = req;
			if (recheck(c)) {
				next = cache_mono_ns() + interval;
				interval = interval * 2 > RECHECK_MAX_NS ?
					   RECHECK_MAX_NS : interval * 2;
			} else {
				next = cache_mono_ns() + RECHECK_MIN_NS;
				interval = RECHECK_MIN_NS;
			}
			pthread_mutex_lock(&s->lock);
			continue;
		}
		tick(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int mend_start(struct cache *c)
{
	struct seal *s = c->seal;
	int rc = pthread_create(&s->mender, NULL, mend_main, c);

	if (rc)
		return -rc;
	s->mender_running = 1;
	return 0;
}

void mend_join(struct cache *c)
{
	struct seal *s = c->seal;

	if (s->mender_running)
		pthread_join(s->mender, NULL);
	s->mender_running = 0;
}
