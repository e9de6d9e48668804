/*
 * cache_mend.c - the mender: one thread of a read-write open with regions
 * that brings regions back to a whole copy: it re-seeds a region found
 * empty, and looks again at the bad copies reads recorded for repair.
 *
 * Re-seeding.  A region that was emptied, or is new, holds nothing; the
 * uploaders only send it what is sealed from now on.  Such a region is
 * named by the opener (cache_config.seed: tools found it answering with
 * no superblock and no object) and recorded at open, before any thread
 * runs, as "seed/<name>" in `super` (struct seed_rec: the progress), so
 * that a crash part way leaves a record the next open resumes.  Then:
 *
 *   SEED_SUPER   list what the other regions hold (packs and audit
 *                segments, and metadata objects by sequence number) and what the region holds
 *                already; record the totals; store the newest
 *                superblock (newest_super(): a key change made since
 *                the open must not be undone in this region).
 *                Nothing else may go to the region before (the
 *                uploaders skip it), so a crash here leaves it empty but
 *                for lease objects, and tools find it empty again.
 *   SEED_COPY    copy each object it lacks from the first other region
 *                that gives a good copy (cache_check_object()), packs first and
 *                metadata objects in order, recording the progress every
 *                SAVE_NS; the uploaders send it packs but no metadata
 *                object, so that its history is always a prefix of the
 *                others' whose packs are all there.
 *   (whole)      the record goes; metadata objects queued meanwhile flow.
 *
 * Every other region that is whole must answer the listing, since one
 * left out may hold what the others lack.  An object that has vanished
 * from every region (gc) is passed over; one with no good copy anywhere is
 * logged and passed over (fsck reports it).
 * A region that fails is retried after a backoff, and its health moves as
 * an upload's would.  Until the record goes, status shows the region as
 * not complete and sync waits for it (cache_mend_waiting()).
 *
 * Bad copies.  A read that meets a bad or missing copy in a region
 * records it in the `repair` db (cache_blk.c) and fails over; status shows
 * the count as that region's `bad`.  Someone else mends the copy (`phifs
 * fsck --repair`), so the record must go once the copy is good again, or
 * status would show it for ever.  The mender fetches each recorded copy
 * from its region and authenticates it whole: a good copy drops the
 * record, a bad or missing one keeps it.  It looks at once when the cache
 * opens, at every sync request (fsck asks the mount for one after a
 * repair), and otherwise after RECHECK_MIN_NS, doubling up to
 * RECHECK_MAX_NS while copies stay bad, so that a copy nobody mends is not
 * fetched over and over.  A record whose pack no block names any more is
 * dropped (history is fsck's business).
 *
 * The mender only adds objects to a region (a re-seeded one).  Floor:
 * administration (beside check, scrub, gc): it reads the replication
 * floor's region table (struct seal) and the records below; only
 * cache_open(), cache_seal_start(), cache_seal_stop() and the status and sync
 * counts call it.  It holds no lock across a call to a region.
 */
#include "cache_int.h"
#include "crypt.h"
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MEND_TICK_MS 1000
#define SEED_PREFIX "seed/"
#define SAVE_NS (UINT64_C(1000000000))		/* progress recorded */
#define SEED_RETRY_MIN_NS (UINT64_C(1000000000))
#define SEED_RETRY_MAX_NS (UINT64_C(60) * 1000000000)
#define RECHECK_MIN_NS (UINT64_C(60) * 1000000000)
#define RECHECK_MAX_NS (UINT64_C(3600) * 1000000000)
#define STALE_WAIT_NS (UINT64_C(60) * 1000000000)

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

/* s->stop, read under s->lock. */
static int stopping(struct cache *c)
{
	struct seal *s = c->seal;
	int stop;

	lock_take(&s->lock);
	stop = s->stop;
	lock_drop(&s->lock);
	return stop;
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
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_repair, &cur));
	if (rc == 0) {
		while (rc == 0 && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0)
			rc = add_bad(&v, &n, &cap, &k);
		mdb_cursor_close(cur);
	}
	left = n;
	if (rc == 0 && n)
		rc = cache_meta_err(mdb_cursor_open(txn, c->db_blocks, &cur));
	if (rc == 0 && n) {
		while (left && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0)
			left -= name_packs(v, n, &d);
		mdb_cursor_close(cur);
	}
	cache_meta_read_end(txn);
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
			return cache_meta_err(rc);
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

	cache_pack_key(id, key);
	buf_reset(obj);
	if (backend_get(r->be, key, 0, 0, obj))
		return 0;
	if (cache_check_object(c->seal->key, c->fsid, key, obj, plain))
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
	for (size_t i = 0; i < (size_t)n && !stopping(c); i++) {
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
	if (cache_meta_write(c, drop_txn, &a))
		left = 1;
	free(drop);
	free(v);
	return left;
}

/* --- re-seeding: the record ------------------------------------------ */

/* Value of "seed/<region name>" in `super`.  Host byte order. */
struct seed_rec {
	uint64_t objects, objects_total;	/* copied, of */
	uint64_t bytes, bytes_total;
	uint32_t listed;	/* the totals are known */
	uint32_t pad;
};

/* The mender's state of one region being seeded. */
struct seed {
	struct seed_rec rec;	/* progress */
	uint64_t next_ns;	/* no attempt before this */
	unsigned fails;
	uint64_t saved_ns;	/* when rec was last recorded */
	uint64_t stale_ns;	/* when a superblock the key cannot check was
				   first met (newest_super()); 0 */
};

struct mend {
	void *sb;		/* the superblock to store; NULL if none */
	size_t sblen;
	struct seed seed[SEAL_MAX_REGIONS];
};

struct rec_arg {
	const char *name;
	const struct seed_rec *rec;	/* NULL: delete the record */
};

static void seed_key(const char *name, char *out, size_t size)
{
	snprintf(out, size, SEED_PREFIX "%s", name);
}

static int rec_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	const struct rec_arg *a = arg;
	char k[sizeof(SEED_PREFIX) + 64];
	MDB_val key, val;
	int rc;

	seed_key(a->name, k, sizeof(k));
	key.mv_size = strlen(k);
	key.mv_data = k;
	if (!a->rec) {
		rc = mdb_del(txn, c->db_super, &key, NULL);
		return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
	}
	val.mv_size = sizeof(*a->rec);
	val.mv_data = (void *)a->rec;
	return cache_meta_err(mdb_put(txn, c->db_super, &key, &val, 0));
}

static int rec_write(struct cache *c, const char *name,
		     const struct seed_rec *rec)
{
	struct rec_arg a = { name, rec };

	return cache_meta_write(c, rec_txn, &a);
}

int cache_mend_record(struct cache *c, const struct cache_config *cfg)
{
	static const struct seed_rec zero;

	for (const char *const *n = cfg->seed; *n; n++) {
		int rc;

		if (strlen(*n) > 64)
			return -EINVAL;
		rc = rec_write(c, *n, &zero);
		if (rc)
			return rc;
	}
	return 0;
}

/* Call fn for every record; 0 or fn's first non-zero value. */
typedef int rec_fn(void *ctx, const char *name, const struct seed_rec *rec);

static int each_rec(struct cache *c, MDB_txn *txn, rec_fn *fn, void *ctx)
{
	size_t plen = strlen(SEED_PREFIX);
	MDB_val key = { plen, (void *)SEED_PREFIX }, val;
	MDB_cursor *cur;
	int rc, op = MDB_SET_RANGE;

	if (mdb_cursor_open(txn, c->db_super, &cur))
		return 0;
	for (rc = 0; rc == 0 && mdb_cursor_get(cur, &key, &val, op) == 0;
	     op = MDB_NEXT) {
		char name[65];
		struct seed_rec rec;

		if (key.mv_size < plen ||
		    memcmp(key.mv_data, SEED_PREFIX, plen) != 0)
			break;
		if (key.mv_size - plen >= sizeof(name) ||
		    val.mv_size != sizeof(rec))
			continue;
		memcpy(name, (char *)key.mv_data + plen, key.mv_size - plen);
		name[key.mv_size - plen] = '\0';
		memcpy(&rec, val.mv_data, sizeof(rec));
		rc = fn(ctx, name, &rec);
	}
	mdb_cursor_close(cur);
	return rc;
}

/* What a region being seeded still lacks; at least 1 while its record
 * is there. */
static uint64_t left_of(const struct seed_rec *rec)
{
	uint64_t left = rec->listed && rec->objects_total > rec->objects ?
			rec->objects_total - rec->objects : 0;

	return left ? left : 1;
}

static int add_left(void *ctx, const char *name, const struct seed_rec *rec)
{
	(void)name;
	*(uint64_t *)ctx += left_of(rec);
	return 0;
}

uint64_t cache_mend_waiting(struct cache *c, MDB_txn *txn)
{
	uint64_t n = 0;

	each_rec(c, txn, add_left, &n);
	return n;
}

static int add_stats(void *ctx, const char *name, const struct seed_rec *rec)
{
	struct cache_stats *s = ctx;

	for (int i = 0; i < s->nregions && i < 16; i++) {
		struct cache_region_stats *r = &s->regions[i];

		if (strcmp(r->name, name) != 0)
			continue;
		r->seeding = 1;
		r->seed_objects = rec->objects;
		r->seed_objects_total = rec->objects_total;
		r->seed_bytes = rec->bytes;
		r->seed_bytes_total = rec->bytes_total;
		r->waiting += left_of(rec);
		if (rec->bytes_total > rec->bytes)
			r->waiting_bytes += rec->bytes_total - rec->bytes;
	}
	return 0;
}

void cache_mend_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s)
{
	each_rec(c, txn, add_stats, s);
}

/* The region named name, or NULL. */
static struct seal_region *region_named(struct seal *s, const char *name)
{
	for (int i = 0; i < s->nregions; i++)
		if (strcmp(s->r[i].name, name) == 0)
			return &s->r[i];
	return NULL;
}

struct load_arg {
	struct cache *c;
	const char *gone[SEAL_MAX_REGIONS];	/* records of regions no
						   longer configured */
	char names[SEAL_MAX_REGIONS][65];
	int ngone;
};

static int load_one(void *ctx, const char *name, const struct seed_rec *rec)
{
	struct load_arg *a = ctx;
	struct seal *s = a->c->seal;
	struct seal_region *r = region_named(s, name);

	if (!r) {
		if (a->ngone < SEAL_MAX_REGIONS) {
			snprintf(a->names[a->ngone], sizeof(a->names[0]), "%s",
				 name);
			a->gone[a->ngone] = a->names[a->ngone];
			a->ngone++;
		}
		return 0;
	}
	r->seeding = SEED_SUPER;
	s->mend->seed[r - s->r].rec = *rec;
	s->mend->seed[r - s->r].rec.listed = 0;	/* listed again */
	PHI_LOG(PHI_LOG_NOTICE, "region %s is not a whole copy yet: copying "
		"what the other regions hold into it", name);
	return 0;
}

int cache_mend_load(struct cache *c, const struct cache_config *cfg)
{
	struct seal *s = c->seal;
	struct load_arg a;
	uint32_t bits = 0;
	MDB_txn *txn;
	int rc;

	s->mend = calloc(1, sizeof(*s->mend));
	if (!s->mend)
		return -ENOMEM;
	if (cfg->superblock && cfg->superblock_len) {
		s->mend->sb = malloc(cfg->superblock_len);
		if (!s->mend->sb)
			return -ENOMEM;
		memcpy(s->mend->sb, cfg->superblock, cfg->superblock_len);
		s->mend->sblen = cfg->superblock_len;
	}
	memset(&a, 0, sizeof(a));
	a.c = c;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	each_rec(c, txn, load_one, &a);
	cache_meta_read_end(txn);
	for (int i = 0; i < a.ngone && rc == 0; i++)
		rc = rec_write(c, a.gone[i], NULL);
	for (int i = 0; i < s->nregions; i++)
		if (s->r[i].seeding)
			bits |= 1u << s->r[i].bit;
	return rc ? rc : cache_upload_queue_all(c, bits);
}

/* --- re-seeding: the work --------------------------------------------- */

/* An object to copy.  Packs (seq 0) go first, by key; then metadata
 * objects by sequence number (seq is theirs + 1). */
struct item {
	char key[40];
	uint64_t size;
	uint64_t seq;
};

struct items {
	struct item *v;
	size_t n, cap;
};

static int items_add(struct items *it, const char *key, uint64_t size,
		     uint64_t seq)
{
	if (strlen(key) >= sizeof(it->v->key))
		return 0;
	if (it->n == it->cap) {
		size_t cap = it->cap ? 2 * it->cap : 256;
		void *p = realloc(it->v, cap * sizeof(*it->v));

		if (!p)
			return -ENOMEM;
		it->v = p;
		it->cap = cap;
	}
	snprintf(it->v[it->n].key, sizeof(it->v->key), "%s", key);
	it->v[it->n].size = size;
	it->v[it->n].seq = seq;
	it->n++;
	return 0;
}

static int list_pack(void *ctx, const char *key, uint64_t size)
{
	return items_add(ctx, key, size, 0);
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->key,
		      ((const struct item *)b)->key);
}

static int by_order(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Sort by key and drop repeated keys. */
static void items_unique(struct items *it)
{
	size_t w = 0;

	if (it->n)
		qsort(it->v, it->n, sizeof(*it->v), by_key);
	for (size_t i = 0; i < it->n; i++)
		if (w == 0 || strcmp(it->v[w - 1].key, it->v[i].key))
			it->v[w++] = it->v[i];
	it->n = w;
}

/* Add what source region src holds to all: its packs, and its metadata
 * objects of this filesystem.  0 or the region's code. */
static int list_source(struct cache *c, struct backend *src,
		       struct items *all)
{
	struct cache_moment *m = NULL;
	size_t n = 0;
	int rc;

	rc = backend_list(src, "d/", list_pack, all);
	/* the audit trail's segments before the metadata binding them */
	if (rc == 0)
		rc = backend_list(src, "a/", list_pack, all);
	if (rc == 0)
		rc = cache_history_list(src, c->seal->key, c->fsid, &m, &n);
	for (size_t k = 0; rc == 0 && k < n; k++)
		rc = items_add(all, m[k].key, m[k].size, m[k].seq + 1);
	free(m);
	return rc;
}

/* Whether region j may serve as a source (a whole copy other than i). */
static int is_source(struct seal *s, int i, int j)
{
	int ok;

	lock_take(&s->lock);
	ok = j != i && !s->r[j].seeding;
	lock_drop(&s->lock);
	return ok;
}

/* What region i lacks of what the others hold, in the order to copy it,
 * into todo; *have_sb whether it holds a superblock.  0 or a code. */
static int seed_list(struct cache *c, int i, struct items *todo,
		     int *have_sb)
{
	struct seal *s = c->seal;
	struct seal_region *r = &s->r[i];
	struct items all = { 0 }, here = { 0 };
	int nsrc = 0, rc = 0;
	uint64_t size;

	/* every other whole region must answer: one left out may hold
	 * what the others lack */
	for (int j = 0; j < s->nregions && rc == 0; j++) {
		if (!is_source(s, i, j))
			continue;
		nsrc++;
		rc = list_source(c, s->r[j].be, &all);
	}
	if (rc == 0 && nsrc == 0 && !s->mend->seed[i].rec.listed)
		PHI_LOG(PHI_LOG_WARNING, "region %s: no other region is whole "
			"to copy from; it holds only what is written from now "
			"on", r->name);
	if (rc == 0)
		rc = backend_list(r->be, "d/", list_pack, &here);
	if (rc == 0)
		rc = backend_list(r->be, "m/", list_pack, &here);
	if (rc == 0)
		rc = backend_list(r->be, "a/", list_pack, &here);
	if (rc == 0) {
		rc = backend_head(r->be, "superblock", &size);
		*have_sb = rc == 0;
		rc = rc == -ENOENT ? 0 : rc;
	}
	if (rc)
		goto out;
	items_unique(&all);
	items_unique(&here);
	for (size_t k = 0; k < all.n && rc == 0; k++)
		if (!here.n || !bsearch(&all.v[k], here.v, here.n,
					sizeof(*here.v), by_key))
			rc = items_add(todo, all.v[k].key, all.v[k].size,
				       all.v[k].seq);
	if (todo->n)
		qsort(todo->v, todo->n, sizeof(*todo->v), by_order);
out:
	free(all.v);
	free(here.v);
	return rc;
}

static void seed_save(struct cache *c, int i)
{
	struct seed *sd = &c->seal->mend->seed[i];

	if (rec_write(c, c->seal->r[i].name, &sd->rec))
		PHI_LOG(PHI_LOG_WARNING, "cannot record how far region %s is "
			"filled", c->seal->r[i].name);
	sd->saved_ns = phi_mono_ns();
}

/* A put into region i ended with rc: its health moves. */
static void note_put(struct cache *c, int i, int rc)
{
	struct seal *s = c->seal;

	lock_take(&s->lock);
	cache_upload_health(&s->r[i], rc);
	lock_drop(&s->lock);
}

static void set_seeding(struct cache *c, int i, int state)
{
	struct seal *s = c->seal;

	lock_take(&s->lock);
	s->r[i].seeding = state;
	pthread_cond_broadcast(&s->done);	/* uploaders may go on */
	lock_drop(&s->lock);
}

/* --- re-seeding: which superblock ------------------------------------ */

/*
 * A key change made while mounted (`phifs key`: add, passwd, remove,
 * rotate) rewrites cache_dir/superblock and every region's copy, but for
 * a region being seeded, which holds none: the copy this open started
 * with (m->sb) may since have lost a slot whose secret leaked.  So the
 * superblock stored is, by serial (crypt.h), the newest of that copy,
 * cache_dir/superblock as it is now (replaced whole by rename, never
 * half written) and the copies of the regions it is filled from.  A
 * candidate counts only if it is of this filesystem and its MAC holds
 * under the key: whoever can write a region or cache_dir but holds no
 * key cannot plant one.  One of a key generation the key lacks (a
 * rotation whose key the mount has not taken yet) cannot be checked: the
 * seed waits for the key up to STALE_WAIT_NS (rotate hands it over
 * within seconds, ACK_WAIT_MS in tools/rekey.c), then stores the newest
 * it can check and says so.  The one chosen becomes m->sb, so no later
 * seed of this open stores an older one.
 */
struct pick {
	const struct cache *c;
	struct buf best;	/* the newest so far; empty if none */
	uint64_t serial;
	uint64_t stale_serial;	/* the newest of a generation the key
				   lacks, and that generation; 0 if none */
	uint32_t stale_gen;
};

static void pick_one(struct pick *p, const void *sb, size_t len)
{
	struct crypt_super_info in;
	int rc;

	if (crypt_super_parse(sb, len, &in) ||
	    memcmp(in.fsid, p->c->fsid, sizeof(in.fsid)) != 0 ||
	    (buf_len(&p->best) && in.serial <= p->serial))
		return;
	rc = crypt_super_verify(sb, len, p->c->seal->key);
	if (rc == -ESTALE && in.serial > p->stale_serial) {
		p->stale_serial = in.serial;
		p->stale_gen = in.generation;
	}
	if (rc)
		return;
	buf_reset(&p->best);
	buf_add(&p->best, sb, len);	/* reserved: cannot fail */
	p->serial = in.serial;
}

/* cache_dir/superblock as it is now into out.  0 or a negative errno. */
static int local_super(struct cache *c, struct buf *out)
{
	int fd = openat(c->dirfd, "superblock",
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	buf_reset(out);
	for (;;) {
		ssize_t n = read(fd, (char *)buf_mut(out) + len,
				 CRYPT_SUPER_SIZE + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		if (n <= 0 || (len += (size_t)n) > CRYPT_SUPER_SIZE)
			break;
	}
	close(fd);
	if (rc == 0)
		buf_setlen(out, len);	/* too long: pick_one() refuses it */
	return rc;
}

/* The copies of the regions region i is filled from into p.  0 or the
 * first region's code but "none there". */
static int source_supers(struct cache *c, int i, struct pick *p,
			 struct buf *copy)
{
	struct seal *s = c->seal;

	for (int j = 0; j < s->nregions; j++) {
		int rc;

		if (!is_source(s, i, j))
			continue;
		buf_reset(copy);
		rc = backend_get(s->r[j].be, "superblock", 0, 0, copy);
		if (rc == -ENOENT || rc == -E2BIG)
			continue;
		if (rc)
			return rc;
		pick_one(p, buf_data(copy), buf_len(copy));
	}
	return 0;
}

/* Whether the seed of region i waits for the key of a newer superblock
 * (see above); says so. */
static int wait_for_key(struct cache *c, int i, uint32_t gen)
{
	struct seed *sd = &c->seal->mend->seed[i];
	const char *name = c->seal->r[i].name;
	uint64_t now = phi_mono_ns();

	if (!sd->stale_ns) {
		sd->stale_ns = now;
		PHI_LOG(PHI_LOG_NOTICE, "region %s: a newer superblock is of "
			"key generation %u, which this mount does not hold "
			"yet; waiting for it before storing one", name, gen);
	}
	if (now - sd->stale_ns < STALE_WAIT_NS)
		return 1;
	PHI_LOG(PHI_LOG_WARNING, "region %s: a newer superblock is of key "
		"generation %u, which this mount does not hold; storing the "
		"newest it can check: unmount, mount again and run phifs fsck "
		"--repair", name, gen);
	return 0;
}

/* p->best in place of m->sb, which is older (serial started) or NULL.
 * 0 or -ENOMEM. */
static int adopt(struct cache *c, int i, const struct pick *p,
		 uint64_t started)
{
	struct mend *m = c->seal->mend;
	void *sb = malloc(buf_len(&p->best));

	if (!sb)
		return -ENOMEM;
	memcpy(sb, buf_data(&p->best), buf_len(&p->best));
	PHI_LOG(PHI_LOG_NOTICE, "region %s: storing the superblock of serial "
		"%llu, newer than the one this mount started with (%s%llu)",
		c->seal->r[i].name, (unsigned long long)p->serial,
		m->sb ? "" : "none, ", (unsigned long long)started);
	free(m->sb);
	m->sb = sb;
	m->sblen = buf_len(&p->best);
	return 0;
}

/* Make m->sb the newest superblock to store into region i (see above).
 * 0, -ESTALE (waiting for the key), or a code. */
static int newest_super(struct cache *c, int i)
{
	struct mend *m = c->seal->mend;
	struct pick p = { .c = c };
	struct crypt_super_info in;
	uint64_t started = 0;
	struct buf copy;
	int rc;

	buf_init(&p.best, CRYPT_SUPER_SIZE + 1);
	buf_init(&copy, CRYPT_SUPER_SIZE + 1);
	rc = buf_reserve(&p.best, CRYPT_SUPER_SIZE + 1) ||
	     buf_reserve(&copy, CRYPT_SUPER_SIZE + 1) ? -ENOMEM : 0;
	/* the copy that opened the key needs no check */
	if (rc == 0 && m->sb && buf_add(&p.best, m->sb, m->sblen) == 0 &&
	    crypt_super_parse(m->sb, m->sblen, &in) == 0)
		started = p.serial = in.serial;
	if (rc == 0 && local_super(c, &copy) == 0)
		pick_one(&p, buf_data(&copy), buf_len(&copy));
	if (rc == 0)
		rc = source_supers(c, i, &p, &copy);
	if (rc == 0 && p.stale_serial <= p.serial)
		m->seed[i].stale_ns = 0;
	else if (rc == 0 && wait_for_key(c, i, p.stale_gen))
		rc = -ESTALE;
	if (rc == 0 && buf_len(&p.best) && (!m->sb || p.serial > started))
		rc = adopt(c, i, &p, started);
	buf_release(&copy);
	buf_release(&p.best);
	return rc;
}

/* The superblock (newest_super()'s) into region i.  0 or a code. */
static int seed_super(struct cache *c, int i)
{
	struct mend *m = c->seal->mend;
	struct seal_region *r = &c->seal->r[i];
	int rc;

	if (!m->sb) {
		PHI_LOG(PHI_LOG_ERR, "region %s holds no superblock, and this "
			"open has none to give it: run phifs fsck --repair",
			r->name);
		return -ENOENT;
	}
	rc = backend_put(r->be, "superblock", m->sb, m->sblen);
	note_put(c, i, rc);
	if (rc == 0) {
		m->seed[i].rec.objects++;
		m->seed[i].rec.bytes += m->sblen;
	}
	return rc;
}

enum { COPIED, PASSED, RETRY };

/* Copy one object into region i from the first other region that gives
 * a good copy.  COPIED, PASSED (gone from every region, or no good copy
 * anywhere) or RETRY. */
static int copy_one(struct cache *c, int i, const struct item *it,
		    struct buf *obj, struct buf *plain)
{
	struct seal *s = c->seal;
	int failed = 0, bad = 0, rc;

	for (int j = 0; j < s->nregions; j++) {
		if (!is_source(s, i, j))
			continue;
		buf_reset(obj);
		rc = backend_get(s->r[j].be, it->key, 0, 0, obj);
		if (rc == -ENOENT)
			continue;
		if (rc || cache_check_object(s->key, c->fsid, it->key, obj,
					     plain)) {
			failed |= rc != 0;
			bad |= rc == 0;
			continue;
		}
		rc = backend_put(s->r[i].be, it->key, buf_data(obj),
				 buf_len(obj));
		note_put(c, i, rc);
		return rc ? RETRY : COPIED;
	}
	if (failed)
		return RETRY;
	if (bad)
		PHI_LOG(PHI_LOG_WARNING, "object %s: no region holds a good "
			"copy to fill region %s with", it->key, s->r[i].name);
	return PASSED;
}

/* Copy todo into region i.  0 when all is there, 1 if stopped, or a
 * code (retry later). */
static int seed_copy(struct cache *c, int i, const struct items *todo)
{
	struct seed *sd = &c->seal->mend->seed[i];
	struct buf obj, plain;
	int rc = 0;

	buf_init(&obj, SIZE_MAX);
	buf_init(&plain, SIZE_MAX);
	for (size_t k = 0; k < todo->n && rc == 0; k++) {
		int r;

		if (stopping(c)) {
			rc = 1;
			break;
		}
		r = copy_one(c, i, &todo->v[k], &obj, &plain);
		if (r == RETRY) {
			rc = PHI_EUNREACHABLE;
			break;
		}
		sd->rec.objects++;
		sd->rec.bytes += todo->v[k].size;
		if (phi_mono_ns() - sd->saved_ns >= SAVE_NS)
			seed_save(c, i);
	}
	buf_release(&obj);
	buf_release(&plain);
	return rc;
}

/*
 * One attempt at making region i whole (see the top of this file).
 * 0 when it is, 1 if stopped, or a code (tried again after a backoff).
 */
static int seed_region(struct cache *c, int i)
{
	struct seal *s = c->seal;
	struct seed *sd = &s->mend->seed[i];
	struct items todo = { 0 };
	int have_sb = 0, rc;

	rc = seed_list(c, i, &todo, &have_sb);
	if (rc == 0 && !have_sb)
		rc = newest_super(c, i);
	if (rc == 0) {
		sd->rec.objects_total = sd->rec.objects + todo.n + !have_sb;
		sd->rec.bytes_total = sd->rec.bytes +
				      (have_sb ? 0 : s->mend->sblen);
		for (size_t k = 0; k < todo.n; k++)
			sd->rec.bytes_total += todo.v[k].size;
		sd->rec.listed = 1;
		seed_save(c, i);
		if (!have_sb)
			rc = seed_super(c, i);
	}
	if (rc == 0) {
		set_seeding(c, i, SEED_COPY);
		rc = seed_copy(c, i, &todo);
	}
	free(todo.v);
	if (rc == 0 && rec_write(c, s->r[i].name, NULL) == 0) {
		set_seeding(c, i, 0);
		PHI_LOG(PHI_LOG_NOTICE, "region %s is a whole copy again (%llu "
			"objects copied)", s->r[i].name,
			(unsigned long long)sd->rec.objects);
		return 0;
	}
	seed_save(c, i);
	return rc ? rc : -EIO;
}

/* Work on the first region being seeded whose backoff is over.  s->lock
 * held (dropped meanwhile).  1 if there was one. */
static int seed_next(struct cache *c)
{
	struct seal *s = c->seal;
	uint64_t now = phi_mono_ns();

	for (int i = 0; i < s->nregions; i++) {
		struct seed *sd = &s->mend->seed[i];
		int rc;

		if (!s->r[i].seeding || sd->next_ns > now)
			continue;
		lock_drop(&s->lock);
		rc = seed_region(c, i);
		lock_take(&s->lock);
		if (rc == 0 || rc == 1) {
			sd->fails = 0;
		} else {
			uint64_t wait = SEED_RETRY_MIN_NS;

			for (unsigned f = 0; f < sd->fails &&
			     wait < SEED_RETRY_MAX_NS; f++)
				wait *= 2;
			sd->fails++;
			sd->next_ns = phi_mono_ns() +
				      (wait < SEED_RETRY_MAX_NS ? wait :
				       SEED_RETRY_MAX_NS);
			PHI_LOG(PHI_LOG_INFO, "region %s: filling it stopped "
				"(%s); trying again later", s->r[i].name,
				phi_strerror(rc));
		}
		return 1;
	}
	return 0;
}

/* --- the thread -------------------------------------------------------- */

/* Sleep up to MEND_TICK_MS, less if stopped.  s->lock held. */
static void tick(struct seal *s)
{
	struct timespec ts;

	ts = phi_mono_deadline(MEND_TICK_MS * 1000000ull);
	pthread_cond_timedwait(&s->done, &s->lock, &ts);
}

static void *mend_main(void *arg)
{
	struct cache *c = arg;
	struct seal *s = c->seal;
	uint64_t next = 0, interval = RECHECK_MIN_NS;
	unsigned handled = 0;

	lock_take(&s->lock);
	while (!s->stop) {
		unsigned req = atomic_load(&c->inbox.sync_req);
		uint64_t now = phi_mono_ns();

		if (req != handled || now >= next) {
			lock_drop(&s->lock);
			if (req != handled)
				interval = RECHECK_MIN_NS;
			handled = req;
			if (recheck(c)) {
				next = phi_mono_ns() + interval;
				interval = interval * 2 > RECHECK_MAX_NS ?
					   RECHECK_MAX_NS : interval * 2;
			} else {
				next = phi_mono_ns() + RECHECK_MIN_NS;
				interval = RECHECK_MIN_NS;
			}
			lock_take(&s->lock);
			continue;
		}
		if (!seed_next(c))
			tick(s);
	}
	lock_drop(&s->lock);
	return NULL;
}

int cache_mend_start(struct cache *c)
{
	struct seal *s = c->seal;
	int rc = pthread_create(&s->mender, NULL, mend_main, c);

	if (rc)
		return -rc;
	pthread_setname_np(s->mender, "phifs-mend");
	s->mender_running = 1;
	return 0;
}

void cache_mend_join(struct cache *c)
{
	struct seal *s = c->seal;

	if (s->mender_running)
		pthread_join(s->mender, NULL);
	s->mender_running = 0;
	if (s->mend)
		free(s->mend->sb);
	free(s->mend);
	s->mend = NULL;
}

/* Authenticate every frame of a pack. */
static int check_pack(const struct crypt_key *key, const uint8_t *fsid,
		      const char *name, const uint8_t *d, size_t len,
		      struct buf *scratch)
{
	size_t off = 0;

	if (len == 0)
		return PHI_ECORRUPT;
	while (off < len) {
		char fid[64];
		uint64_t n;
		size_t flen;
		int rc;

		if (len - off < CRYPT_FRAME_OVERHEAD)
			return PHI_ECORRUPT;
		n = cache_journal_get_be(d + off + 26, 8);
		if (n > len - off - CRYPT_FRAME_OVERHEAD)
			return PHI_ECORRUPT;
		flen = CRYPT_FRAME_OVERHEAD + (size_t)n;
		snprintf(fid, sizeof(fid), "%s@%zu", name, off);
		buf_reset(scratch);
		rc = crypt_unseal(key, fsid, fid, d + off, flen, scratch);
		if (rc)
			return rc;
		off += flen;
	}
	return 0;
}

int cache_check_object(const struct crypt_key *key, const uint8_t *fsid,
		 const char *name, const struct buf *obj, struct buf *scratch)
{
	const uint8_t *d = buf_data(obj);

	buf_reset(scratch);
	if (name[0] == 'd')
		return check_pack(key, fsid, name, d, buf_len(obj), scratch);
	return crypt_unseal(key, fsid, name, d, buf_len(obj), scratch);
}
