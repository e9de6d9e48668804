/*
 * cache_upload.c - the upload queue: every sealed object to every region.
 *
 * The queue holds three kinds of object, each kind in its own db with its
 * own record, as they have always been on disk: packs (`packs`,
 * struct pack_rec, local copies in packs/), the audit trail's segments
 * (`auditq`, struct meta_rec, in audit/) and metadata objects, the
 * journal segments and snapshots (`metaq`, struct meta_rec, in journal/).
 * An entry is an object not yet in every region, with a bit per region
 * still to receive it.  A kind descriptor (struct qkind) says where its
 * entries are, where their bits sit, where the local copies lie and what a
 * region must hold first; everything else -- picking, uploading,
 * recording a region's copy, counting, sweeping -- is one code path over
 * the kinds, walked in order (packs, then metadata objects).
 *
 * An uploader picks the oldest (object, region) pair that no other
 * uploader has in flight and whose region is not backing off, puts the
 * local copy, and clears the bit in one transaction; the last bit deletes
 * the entry and then the local file.  A put is idempotent (same key, same
 * bytes), so a crash between the put and the commit only repeats it.
 * Nothing here ever deletes or overwrites an object in a region with
 * other bytes.
 *
 * Order: a metadata object goes to a region only once every pack it may
 * point into (all packs up to meta_rec.dep) is there, and every audit
 * segment cut with it or before it (whose head it binds).  A region being
 * re-seeded (cache_mend.c) receives nothing before its superblock, and no
 * metadata object before it is whole.
 *
 * Health: a failed put backs its region off exponentially (0.5 s doubling
 * to 60 s, with jitter); after DOWN_AFTER failures in a row the region is
 * marked down and logged once, and comes back at its first success.  The
 * other regions go on meanwhile.  Health goes to the `regions` db for
 * `phifs status`.
 */
#include "cache_int.h"
#include "backend.h"
#include "crypt.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOWN_AFTER 3
#define BACKOFF_MIN_NS 500000000ull
#define BACKOFF_MAX_NS 60000000000ull
#define IDLE_WAIT_MS 500

/* --- walking a db ------------------------------------------------------ */

/* One record of a db_walk(): cur is on it.  0 goes on; anything else ends
 * the walk and is returned. */
typedef int rec_fn(MDB_cursor *cur, const MDB_val *key, const MDB_val *val,
		   void *ctx);

/* fn on each record of dbi in key order that is size bytes long (0: of
 * any size).  0, fn's return, or an LMDB failure. */
static int db_walk(MDB_txn *txn, MDB_dbi dbi, size_t size, rec_fn *fn,
		   void *ctx)
{
	MDB_val key, val;
	MDB_cursor *cur = NULL;
	int rc = cache_meta_err(mdb_cursor_open(txn, dbi, &cur));

	while (rc == 0 && mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0)
		if (size == 0 || val.mv_size == size)
			rc = fn(cur, &key, &val, ctx);
	if (cur)
		mdb_cursor_close(cur);
	return rc;
}

/* --- the queue: kinds and objects -------------------------------------- */

enum { QK_PACK, QK_AUDIT, QK_META, QKINDS };	/* walked in this order */

#define QKEY_SIZE 48		/* an object key and its NUL */
#define QFILE_SIZE 80		/* a local copy's name and its NUL */

/* One object in the queue, as its entry says. */
struct qitem {
	int kind;		/* QK_* */
	uint64_t seq;		/* its key in its kind's db */
	uint64_t size;		/* bytes of the object */
	uint32_t pending;	/* bits of the regions still to receive it */
	uint64_t dep;		/* objects of kind dep_on up to this one must
				   be in a region before it */
	union {
		struct pack_rec pr;
		struct meta_rec mr;
	} rec;			/* the entry's value */
};

struct qkind {
	size_t db;		/* offsetof(struct cache, <its MDB_dbi>) */
	size_t size;		/* of an entry's value */
	size_t size_at;		/* where the object's size is in it */
	size_t pending_at;	/* where the region bits are */
	int dep_on;		/* a kind this one waits for, or -1 */
	size_t dep_at;		/* where the last object of it waited for is */
	int dep_key_on;		/* a kind whose objects with keys up to
				   (its key << 16 | 0xffff) it waits for, or
				   -1 */
	unsigned seeding;	/* bits 1 << seal_region.seeding of the
				   regions that may receive it */
	uint64_t tag;		/* set in its in-flight tags */
	const char *dir;	/* its local copies, in cache_dir */
	/* Its object key and its local copy's name in cache_dir. */
	void (*names)(const struct qitem *it, char *key, char *file);
};

static void pack_names(const struct qitem *it, char *key, char *file)
{
	cache_pack_key(it->rec.pr.id, key);
	cache_pack_file(it->rec.pr.id, file);
}

static void meta_names(const struct qitem *it, char *key, char *file)
{
	snprintf(key, QKEY_SIZE, "%.*s", (int)sizeof(it->rec.mr.key),
		 it->rec.mr.key);
	cache_journal_file(key, file, QFILE_SIZE);
}

static void audit_names(const struct qitem *it, char *key, char *file)
{
	snprintf(key, QKEY_SIZE, "%.*s", (int)sizeof(it->rec.mr.key),
		 it->rec.mr.key);
	cache_auditseg_file(key, file, QFILE_SIZE);
}

static const struct qkind kinds[QKINDS] = {
	[QK_PACK] = {
		.db = offsetof(struct cache, db_packs),
		.size = sizeof(struct pack_rec),
		.size_at = offsetof(struct pack_rec, size),
		.pending_at = offsetof(struct pack_rec, pending),
		.dep_on = -1,
		.dep_key_on = -1,
		.seeding = 1u << 0 | 1u << SEED_COPY,
		.tag = 0,
		.dir = "packs",
		.names = pack_names,
	},
	[QK_AUDIT] = {
		/* the audit trail's segments: keyed by the metadata object
		 * cut with them, which binds their head and waits for them */
		.db = offsetof(struct cache, db_auditq),
		.size = sizeof(struct meta_rec),
		.size_at = offsetof(struct meta_rec, size),
		.pending_at = offsetof(struct meta_rec, pending),
		.dep_on = -1,
		.dep_key_on = -1,
		.seeding = 1u << 0,
		.tag = 1ull << 62,
		.dir = "audit",
		.names = audit_names,
	},
	[QK_META] = {
		.db = offsetof(struct cache, db_metaq),
		.size = sizeof(struct meta_rec),
		.size_at = offsetof(struct meta_rec, size),
		.pending_at = offsetof(struct meta_rec, pending),
		.dep_on = QK_PACK,	/* the packs it may point into */
		.dep_at = offsetof(struct meta_rec, dep),
		.dep_key_on = QK_AUDIT,	/* the segments whose head it binds */
		/* whole regions only: a re-seeded region's history stays a
		 * prefix of the others' */
		.seeding = 1u << 0,
		.tag = 1ull << 63,
		.dir = "journal",
		.names = meta_names,
	},
};

static MDB_dbi qdb(const struct cache *c, int kind)
{
	MDB_dbi dbi;

	memcpy(&dbi, (const char *)c + kinds[kind].db, sizeof(dbi));
	return dbi;
}

/* Read the entry key/val of kind into it: 0, or PHI_ECORRUPT if it is
 * not one. */
static int qitem_get(int kind, const MDB_val *key, const MDB_val *val,
		     struct qitem *it)
{
	const struct qkind *k = &kinds[kind];
	const char *rec = (const char *)&it->rec;

	if (key->mv_size != 8 || val->mv_size != k->size)
		return PHI_ECORRUPT;
	it->kind = kind;
	it->seq = key_get_u64(key->mv_data);
	memcpy(&it->rec, val->mv_data, k->size);
	memcpy(&it->size, rec + k->size_at, sizeof(it->size));
	memcpy(&it->pending, rec + k->pending_at, sizeof(it->pending));
	it->dep = 0;
	if (k->dep_on >= 0)
		memcpy(&it->dep, rec + k->dep_at, sizeof(it->dep));
	return 0;
}

/* Write it->pending back into its entry, on which cur is; no bit left
 * takes the object out of the queue. */
static int qitem_put(MDB_cursor *cur, struct qitem *it)
{
	const struct qkind *k = &kinds[it->kind];
	uint8_t kb[8];
	MDB_val key = { sizeof(kb), kb }, val = { k->size, &it->rec };

	if (it->pending == 0)
		return cache_meta_err(mdb_cursor_del(cur, 0));
	key_put_u64(kb, it->seq);
	memcpy((char *)&it->rec + k->pending_at, &it->pending,
	       sizeof(it->pending));
	return cache_meta_err(mdb_cursor_put(cur, &key, &val, MDB_CURRENT));
}

/* The in-flight tag of it for the region of bit. */
static uint64_t qtag(const struct qitem *it, uint32_t bit)
{
	return kinds[it->kind].tag | it->seq << 5 | bit;
}

/* --- the queue: walking it --------------------------------------------- */

/* One object of a walk.  fn may change it->pending (in a write
 * transaction): its entry follows.  0 goes on; anything else ends the
 * walk and is returned. */
typedef int qitem_fn(struct cache *c, struct qitem *it, void *ctx);

struct kind_walk {
	struct cache *c;
	int kind;
	qitem_fn *fn;
	void *ctx;
};

static int walk_one(MDB_cursor *cur, const MDB_val *key, const MDB_val *val,
		    void *arg)
{
	struct kind_walk *w = arg;
	struct qitem it;
	uint32_t was;
	int rc;

	if (qitem_get(w->kind, key, val, &it))
		return 0;
	was = it.pending;
	rc = w->fn(w->c, &it, w->ctx);
	return rc == 0 && it.pending != was ? qitem_put(cur, &it) : rc;
}

/* fn on each object of kind, oldest first. */
static int walk_kind(struct cache *c, MDB_txn *txn, int kind, qitem_fn *fn,
		     void *ctx)
{
	struct kind_walk w = { c, kind, fn, ctx };

	if (kind == QK_AUDIT && !c->have_auditq)
		return 0;	/* an older cache, opened read-only */
	return db_walk(txn, qdb(c, kind), kinds[kind].size, walk_one, &w);
}

/* fn on each object of the queue: the kinds in order, each oldest first
 * (so that a kind is seen whole before the kinds that wait for it). */
static int queue_walk(struct cache *c, MDB_txn *txn, qitem_fn *fn,
		      void *ctx)
{
	int rc = 0;

	for (int k = 0; k < QKINDS && rc == 0; k++)
		rc = walk_kind(c, txn, k, fn, ctx);
	return rc;
}

struct mask {
	uint32_t keep, add;
};

/* Keep only the bits m->keep of it, and add m->add. */
static int mask_one(struct cache *c, struct qitem *it, void *arg)
{
	const struct mask *m = arg;

	(void)c;
	it->pending = (it->pending & m->keep) | m->add;
	return 0;
}

static int queue_all_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct mask m = { UINT32_MAX, *(uint32_t *)arg };

	return queue_walk(c, txn, mask_one, &m);
}

int cache_upload_queue_all(struct cache *c, uint32_t bits)
{
	return bits ? cache_meta_write(c, queue_all_txn, &bits) : 0;
}

/* --- the queue: counting and sweeping ---------------------------------- */

struct waiting {
	uint64_t upto, n;
};

static int waiting_one(MDB_cursor *cur, const MDB_val *key,
		       const MDB_val *val, void *arg)
{
	struct waiting *w = arg;

	(void)cur;
	(void)val;
	if (key->mv_size != 8 || key_get_u64(key->mv_data) > w->upto)
		return 1;
	w->n++;
	return 0;
}

uint64_t cache_upload_queue_waiting(struct cache *c, MDB_txn *txn, uint64_t seq,
				    uint64_t mseq)
{
	const uint64_t upto[QKINDS] = { [QK_PACK] = seq,
		[QK_AUDIT] = mseq << 16 | 0xffff, [QK_META] = mseq };
	struct waiting w = { 0, 0 };

	/* every entry counts, whether it reads or not: one that does not
	 * is not in every region either */
	for (int k = 0; k < QKINDS; k++) {
		if (k == QK_AUDIT && !c->have_auditq)
			continue;
		w.upto = upto[k];
		db_walk(txn, qdb(c, k), 0, waiting_one, &w);
	}
	return w.n;
}

/* Whether it is the object whose local copy is named arg. */
static int named_one(struct cache *c, struct qitem *it, void *arg)
{
	char key[QKEY_SIZE], file[QFILE_SIZE];

	(void)c;
	kinds[it->kind].names(it, key, file);
	return strcmp(key + 2, arg) == 0;
}

/* Delete the files in the folder of kind that are not the local copy of
 * an object of it; the bytes of those kept. */
static uint64_t sweep_kind(struct cache *c, int kind)
{
	int fd = openat(c->dirfd, kinds[kind].dir, O_RDONLY | O_DIRECTORY |
			O_CLOEXEC);
	uint64_t bytes = 0;
	struct dirent *de;
	MDB_txn *txn;
	DIR *dir;
	int rc;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	txn = cache_meta_read_begin(c, &rc);
	while (txn && (de = readdir(dir))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		/* a failed walk keeps what it cannot judge */
		if (walk_kind(c, txn, kind, named_one, de->d_name) == 0)
			unlinkat(fd, de->d_name, 0);
		else if (fstatat(fd, de->d_name, &st, 0) == 0)
			bytes += cache_disk_size((uint64_t)st.st_size);
	}
	if (txn)
		cache_meta_read_end(txn);
	closedir(dir);
	return bytes;
}

uint64_t cache_upload_queue_sweep(struct cache *c)
{
	uint64_t bytes = 0;

	for (int k = 0; k < QKINDS; k++)
		bytes += sweep_kind(c, k);
	return bytes;
}

/* --- regions: bits and health ------------------------------------------ */

/* The value of a record of `regions` that db_walk() passed on. */
static struct region_rec region_of(const MDB_val *val)
{
	struct region_rec rr;

	memcpy(&rr, val->mv_data, sizeof(rr));
	return rr;
}

struct regions_arg {
	struct seal *s;
	uint32_t used;		/* bits given out */
	uint32_t keep;		/* of those, bits of configured regions */
};

/* A region on record: its bit is taken; a configured region of its name
 * takes the bit and the health. */
static int match_one(MDB_cursor *cur, const MDB_val *name,
		     const MDB_val *val, void *arg)
{
	struct regions_arg *a = arg;
	struct region_rec rr = region_of(val);
	struct seal *s = a->s;

	(void)cur;
	a->used |= 1u << rr.bit;
	for (int i = 0; i < s->nregions; i++) {
		struct seal_region *r = &s->r[i];

		if (strlen(r->name) != name->mv_size ||
		    memcmp(r->name, name->mv_data, name->mv_size))
			continue;
		r->bit = rr.bit;
		r->fails = rr.fails;
		r->down = rr.down;
		r->last_ok = rr.last_ok;
		a->keep |= 1u << rr.bit;
		r->dirty = 2;	/* known */
	}
	return 0;
}

/* Configured regions not on record get the lowest free bits. */
static int regions_add(struct cache *c, MDB_txn *txn, struct regions_arg *a)
{
	struct seal *s = a->s;

	for (int i = 0; i < s->nregions; i++) {
		struct region_rec rr = { 0 };
		MDB_val key = { strlen(s->r[i].name), s->r[i].name };
		MDB_val val = { sizeof(rr), &rr };
		uint32_t bit = 0;
		int rc;

		if (s->r[i].dirty == 2) {
			s->r[i].dirty = 0;
			continue;
		}
		while (bit < 32 && (a->used & (1u << bit)))
			bit++;
		if (bit == 32)
			return -ENOSPC;
		a->used |= 1u << bit;
		a->keep |= 1u << bit;
		s->r[i].bit = rr.bit = bit;
		rc = mdb_put(txn, c->db_regions, &key, &val, 0);
		if (rc)
			return cache_meta_err(rc);
	}
	return 0;
}

/* A region on record that is no longer configured goes. */
static int forget_one(MDB_cursor *cur, const MDB_val *name,
		      const MDB_val *val, void *arg)
{
	const struct regions_arg *a = arg;

	(void)name;
	if (a->keep & (1u << region_of(val).bit))
		return 0;
	PHI_LOG(PHI_LOG_NOTICE, "a region is no longer configured; its "
		"upload queue is dropped");
	mdb_cursor_del(cur, 0);
	return 0;
}

static int regions_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct regions_arg *a = arg;
	struct mask m;
	int rc;

	rc = db_walk(txn, c->db_regions, sizeof(struct region_rec),
		     match_one, a);
	if (rc == 0)
		rc = regions_add(c, txn, a);
	/* Regions gone from the config cannot receive anything: drop their
	 * bits from the queue, and their records. */
	m = (struct mask){ a->keep, 0 };
	if (rc == 0)
		rc = queue_walk(c, txn, mask_one, &m);
	if (rc == 0)
		rc = db_walk(txn, c->db_regions, sizeof(struct region_rec),
			     forget_one, a);
	return rc;
}

int cache_upload_regions_load(struct cache *c, const char *const *names)
{
	struct seal *s = c->seal;
	struct regions_arg a = { s, 0, 0 };

	s->nregions = backend_replica_count(s->regions);
	if (s->nregions < 1 || s->nregions > SEAL_MAX_REGIONS)
		return -EINVAL;
	for (int i = 0; i < s->nregions; i++) {
		s->r[i].be = backend_replica_region(s->regions, i);
		snprintf(s->r[i].name, sizeof(s->r[i].name), "%s",
			 names && names[i] ? names[i] : "");
		if (!s->r[i].name[0])
			snprintf(s->r[i].name, sizeof(s->r[i].name),
				 "region%d", i);
	}
	for (int i = 0; i < s->nregions; i++)
		for (int j = 0; j < i; j++)
			if (strcmp(s->r[i].name, s->r[j].name) == 0)
				return -EINVAL;
	{
		int rc = cache_meta_write(c, regions_txn, &a);

		if (rc)
			return rc;
	}
	for (int i = 0; i < s->nregions; i++) {
		s->all_bits |= 1u << s->r[i].bit;
		s->r[i].retry_ns = 0;	/* try at once, even if down */
	}
	return 0;
}

static int health_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct region_rec *rr = arg;
	struct seal *s = c->seal;

	for (int i = 0; i < s->nregions; i++) {
		MDB_val key = { strlen(s->r[i].name), s->r[i].name };
		MDB_val val = { sizeof(rr[i]), &rr[i] };
		int rc;

		if (rr[i].pad == 0)
			continue;
		rr[i].pad = 0;
		rc = mdb_put(txn, c->db_regions, &key, &val, 0);
		if (rc)
			return cache_meta_err(rc);
	}
	return 0;
}

void cache_upload_record_health(struct cache *c)
{
	struct seal *s = c->seal;
	struct region_rec rr[SEAL_MAX_REGIONS];
	int any = 0, down = 0;

	if (!s)
		return;
	lock_take(&s->lock);
	for (int i = 0; i < s->nregions; i++) {
		rr[i] = (struct region_rec){ s->r[i].bit, s->r[i].fails,
					     s->r[i].down, s->r[i].dirty,
					     s->r[i].last_ok };
		any |= s->r[i].dirty;
		down += s->r[i].down != 0;
		s->r[i].dirty = 0;
	}
	lock_drop(&s->lock);
	atomic_store(&c->inbox.regions_down, down);	/* for the data path */
	if (any && cache_meta_write(c, health_txn, rr)) {
		lock_take(&s->lock);
		for (int i = 0; i < s->nregions; i++)
			s->r[i].dirty |= rr[i].pad;
		lock_drop(&s->lock);
	}
}

static uint64_t backoff(unsigned fails)
{
	uint64_t ns = BACKOFF_MIN_NS;
	uint32_t jitter;

	for (unsigned i = 1; i < fails && ns < BACKOFF_MAX_NS; i++)
		ns *= 2;
	if (ns > BACKOFF_MAX_NS)
		ns = BACKOFF_MAX_NS;
	if (crypt_random_bytes(&jitter, sizeof(jitter)))
		jitter = 0;
	return ns - ns / 4 + (ns / 2) * (jitter % 1000) / 1000;
}

/* Region r answered: it is up, and its backoff is over.  seal->lock
 * held. */
static void region_up(struct seal_region *r)
{
	if (r->down)
		PHI_LOG(PHI_LOG_NOTICE, "region %s is back", r->name);
	r->fails = 0;
	r->down = 0;
	r->retry_ns = 0;
	r->dirty = 1;
}

void cache_upload_health(struct seal_region *r, int rc)
{
	if (rc == 0) {
		region_up(r);
		r->last_ok = phi_now().tv_sec;
	} else if (rc != PHI_ELATCHED) {
		r->fails++;
		r->retry_ns = phi_mono_ns() + backoff(r->fails);
		if (r->fails >= DOWN_AFTER && !r->down) {
			r->down = 1;
			PHI_LOG(PHI_LOG_WARNING, "region %s is down (%s); "
				"uploads to it are retried in the background",
				r->name, phi_strerror(rc));
		}
		r->dirty = 1;
	}
}

/* --- status ------------------------------------------------------------ */

_Static_assert(sizeof(((struct cache_stats *)0)->regions) ==
	       SEAL_MAX_REGIONS * sizeof(struct cache_region_stats),
	       "a region of the status per region of the seal");

_Static_assert(sizeof(((struct cache_counters *)0)->regions) ==
	       SEAL_MAX_REGIONS * sizeof(struct cache_region_counters),
	       "counters for every region of the seal");

struct stats_arg {
	struct cache_stats *s;
	uint32_t *bits;		/* of s->regions[] */
};

static int stat_region(MDB_cursor *cur, const MDB_val *name,
		       const MDB_val *val, void *arg)
{
	struct stats_arg *a = arg;
	struct region_rec rr = region_of(val);
	struct cache_stats *s = a->s;
	struct cache_region_stats *r;

	(void)cur;
	if (s->nregions == SEAL_MAX_REGIONS ||
	    name->mv_size >= sizeof(s->regions[0].name))
		return 0;
	r = &s->regions[s->nregions];
	memcpy(r->name, name->mv_data, name->mv_size);
	r->name[name->mv_size] = '\0';
	r->fails = rr.fails;
	r->down = rr.down;
	r->last_ok = rr.last_ok;
	a->bits[s->nregions++] = rr.bit;
	return 0;
}

static int count_one(struct cache *c, struct qitem *it, void *arg)
{
	struct stats_arg *a = arg;
	struct cache_stats *s = a->s;

	(void)c;
	s->sealed_objects++;
	s->sealed_bytes += it->size;
	for (int i = 0; i < s->nregions; i++)
		if (it->pending & (1u << a->bits[i])) {
			s->regions[i].waiting++;
			s->regions[i].waiting_bytes += it->size;
		}
	return 0;
}

void cache_upload_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s,
			uint32_t bits[SEAL_MAX_REGIONS])
{
	struct stats_arg a = { s, bits };

	s->nregions = 0;
	db_walk(txn, c->db_regions, sizeof(struct region_rec), stat_region,
		&a);
	queue_walk(c, txn, count_one, &a);
}

void cache_upload_counters(struct cache *c, struct cache_counters *out)
{
	struct seal *s = c->seal;

	out->nregions = 0;
	if (!s)
		return;
	lock_take(&s->lock);
	for (int i = 0; i < s->nregions; i++) {
		struct cache_region_counters *r = &out->regions[i];

		memcpy(r->name, s->r[i].name, sizeof(r->name));
		r->up = !s->r[i].down;
		r->upload_errors = s->r[i].put_errors;
		r->complete = s->r[i].complete;
	}
	out->nregions = s->nregions;
	out->objects_hashed = s->hashed;
	lock_drop(&s->lock);
	for (int i = 0; i < out->nregions; i++) {
		struct backend_get_stats g;

		phi_hist_read(&s->r[i].put_time, &out->regions[i].upload);
		backend_replica_get_stats(s->regions, i, &g);
		out->regions[i].fetch_errors = g.errors;
		out->regions[i].fetch = g.time;
	}
}

/* --- picking work ------------------------------------------------------ */

struct job {
	struct qitem it;
	int region;		/* index */
};

static int inflight_has(struct seal *s, uint64_t tag)
{
	for (size_t i = 0; i < s->ninflight; i++)
		if (s->inflight[i] == tag)
			return 1;
	return 0;
}

static int inflight_add(struct seal *s, uint64_t tag)
{
	if (s->ninflight == s->capinflight) {
		size_t cap = s->capinflight ? 2 * s->capinflight : 16;
		uint64_t *v = realloc(s->inflight, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->inflight = v;
		s->capinflight = cap;
	}
	s->inflight[s->ninflight++] = tag;
	return 0;
}

static void inflight_del(struct seal *s, uint64_t tag)
{
	for (size_t i = 0; i < s->ninflight; i++)
		if (s->inflight[i] == tag) {
			s->inflight[i] = s->inflight[--s->ninflight];
			return;
		}
}

struct pick {
	struct job *j;
	uint64_t now;
	uint64_t wake_ns;	/* out: the end of the first backoff */
	uint32_t pending;	/* out: bits of regions that lack something */
	uint64_t oldest[QKINDS][32];	/* by kind and region bit: the
					   oldest object the region lacks */
};

/* Whether it may go to r now (in flight or not); notes when r's backoff
 * ends. */
static int may_take(struct pick *p, const struct qitem *it,
		    const struct seal_region *r)
{
	const struct qkind *k = &kinds[it->kind];

	if (!(k->seeding & (1u << r->seeding)))
		return 0;
	/* an object it may point into is not there yet */
	if (k->dep_on >= 0 && p->oldest[k->dep_on][r->bit] <= it->dep)
		return 0;
	if (k->dep_key_on >= 0 &&
	    p->oldest[k->dep_key_on][r->bit] <= (it->seq << 16 | 0xffff))
		return 0;
	if (r->retry_ns > p->now) {
		if (r->retry_ns < p->wake_ns)
			p->wake_ns = r->retry_ns;
		return 0;
	}
	return 1;
}

static int pick_one(struct cache *c, struct qitem *it, void *arg)
{
	struct pick *p = arg;
	struct seal *s = c->seal;

	p->pending |= it->pending;
	for (int i = 0; i < s->nregions; i++) {
		struct seal_region *r = &s->r[i];

		if (!(it->pending & (1u << r->bit)))
			continue;
		if (it->seq < p->oldest[it->kind][r->bit])
			p->oldest[it->kind][r->bit] = it->seq;
		if (!may_take(p, it, r) || inflight_has(s, qtag(it, r->bit)))
			continue;
		p->j->it = *it;
		p->j->region = i;
		return 1;
	}
	return 0;
}

/* A whole walk of the queue found nothing for the regions not in
 * pending: each holds every object queued so far.  s->lock held. */
static void note_complete(struct seal *s, uint32_t pending)
{
	int64_t now = phi_now().tv_sec;

	for (int i = 0; i < s->nregions; i++)
		if (!s->r[i].seeding && !(pending & (1u << s->r[i].bit)))
			s->r[i].complete = now;
}

/* The oldest pair to upload now; s->lock held.  0 or -ENOENT, and then
 * *wake_ns is when a backoff in the way ends and *pending holds the bits
 * of the regions that still lack something. */
static int pick(struct cache *c, struct job *j, uint64_t *wake_ns,
		uint32_t *pending)
{
	struct pick p = { j, phi_mono_ns(), UINT64_MAX, 0, { { 0 } } };
	MDB_txn *txn;
	int rc;

	memset(p.oldest, 0xff, sizeof(p.oldest));
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = queue_walk(c, txn, pick_one, &p);
	cache_meta_read_end(txn);
	if (rc == 0)
		note_complete(c->seal, p.pending);
	*wake_ns = p.wake_ns;
	*pending = p.pending;
	return rc > 0 ? 0 : rc ? rc : -ENOENT;
}

/* --- doing it ---------------------------------------------------------- */

/* A region now holds it: clear its bit; the last bit takes the entry out
 * of the queue. */
struct done_arg {
	const struct qitem *it;
	uint32_t bit;
	int emptied;		/* out */
};

static int done_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct done_arg *a = arg;
	uint8_t kb[8];
	MDB_val key = { sizeof(kb), kb }, val;
	MDB_cursor *cur;
	struct qitem it;
	int rc;

	key_put_u64(kb, a->it->seq);
	rc = cache_meta_err(mdb_cursor_open(txn, qdb(c, a->it->kind), &cur));
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_KEY);
	if (rc == MDB_NOTFOUND) {
		rc = 0;		/* its region's queue was dropped */
	} else if (rc) {
		rc = cache_meta_err(rc);
	} else if ((rc = qitem_get(a->it->kind, &key, &val, &it)) == 0) {
		it.pending &= ~(1u << a->bit);
		a->emptied = it.pending == 0;
		rc = qitem_put(cur, &it);
	}
	mdb_cursor_close(cur);
	return rc;
}

/* Read the local file name of size bytes into out. */
static int read_local(struct cache *c, const char *name, uint64_t size,
		      struct buf *out)
{
	size_t done = 0;
	int fd, rc;

	fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf_reset(out);
	rc = buf_reserve(out, size);
	while (rc == 0 && done < size) {
		ssize_t r = pread(fd, (char *)buf_mut(out) + done,
				  size - done, (off_t)done);

		if (r < 0 && errno != EINTR)
			rc = -errno;
		else if (r == 0)
			rc = PHI_ECORRUPT;	/* shorter than recorded */
		else if (r > 0)
			done += (size_t)r;
	}
	close(fd);
	if (rc == 0)
		buf_setlen(out, size);
	return rc;
}

/* The memo's entry for it, or NULL; s->lock held. */
static struct upload_digest *digest_find(struct seal *s,
					 const struct qitem *it)
{
	const size_t n = sizeof(s->digests) / sizeof(s->digests[0]);

	for (size_t i = 0; i < n; i++) {
		struct upload_digest *d = &s->digests[i];

		if (d->used && d->kind == it->kind && d->seq == it->seq &&
		    d->size == it->size)
			return d;
	}
	return NULL;
}

/* An entry for it, marked as being hashed, in the slot after the last
 * one taken that is not being hashed itself (the memo stays as long as
 * it is); NULL when all are.  s->lock held. */
static struct upload_digest *digest_claim(struct seal *s,
					  const struct qitem *it)
{
	const size_t n = sizeof(s->digests) / sizeof(s->digests[0]);

	for (size_t i = 0; i < n; i++) {
		struct upload_digest *d = &s->digests[s->digest_next++ % n];

		if (d->hashing)
			continue;
		d->used = true;
		d->hashing = true;
		d->kind = it->kind;
		d->seq = it->seq;
		d->size = it->size;
		return d;
	}
	return NULL;
}

/*
 * The SHA-256 of object it (its bytes at data) into sha256, for its put: an
 * S3 region signs it, and it is the same for every region, so it is
 * computed for the first region's put and remembered for the others
 * (the last 16 objects; a queued object's bytes never change under its
 * name).  An uploader that comes for it while another hashes it waits for
 * that digest instead of hashing the same bytes again.  0, or 1 when it
 * cannot be had (the put then hashes).  Called without s->lock; it is
 * not held while hashing.
 */
static int digest_of(struct seal *s, const struct qitem *it,
		     const void *data, uint8_t sha256[32])
{
	struct upload_digest *d;
	int rc;

	lock_take(&s->lock);
	while ((d = digest_find(s, it)) != NULL && d->hashing)
		pthread_cond_wait(&s->digest_done, &s->lock);
	if (d) {
		memcpy(sha256, d->sha256, 32);
		lock_drop(&s->lock);
		return 0;
	}
	d = digest_claim(s, it);
	s->hashed++;
	lock_drop(&s->lock);
	rc = crypt_sha256(data, (size_t)it->size, sha256);
	if (!d)
		return rc ? 1 : 0;
	lock_take(&s->lock);
	d->hashing = false;
	if (rc)
		d->used = false;	/* a waiter hashes it itself */
	else
		memcpy(d->sha256, sha256, 32);
	pthread_cond_broadcast(&s->digest_done);
	lock_drop(&s->lock);
	return rc ? 1 : 0;
}

/* Forget what digest_of() remembered of it: a put with it failed, and a
 * wrong digest must not fail every retry.  An entry being hashed stays:
 * that digest is of the bytes now, whatever the failed put was given. */
static void digest_forget(struct seal *s, const struct qitem *it)
{
	struct upload_digest *d;

	lock_take(&s->lock);
	d = digest_find(s, it);
	if (d && !d->hashing)
		d->used = false;
	lock_drop(&s->lock);
}

/* Upload one pair; called without s->lock. */
static void upload(struct cache *c, const struct job *j, struct buf *data)
{
	struct seal *s = c->seal;
	struct seal_region *r = &s->r[j->region];
	char key[QKEY_SIZE], name[QFILE_SIZE];
	struct done_arg a = { &j->it, r->bit, 0 };
	uint64_t t0;
	uint8_t sha256[32];
	int put_failed, rc, hashed;

	kinds[j->it.kind].names(&j->it, key, name);
	rc = read_local(c, name, j->it.size, data);
	if (rc) {
		/* The local copy is gone or damaged: nothing to send.  Keep
		 * the pair in flight for good so that it is not retried in
		 * a loop; status shows it waiting. */
		PHI_LOG(PHI_LOG_ERR, "object %s: local copy unreadable (%s); "
			"cannot upload it to region %s", key, phi_strerror(rc),
			r->name);
		return;
	}
	hashed = backend_signs_body(r->be, buf_len(data)) &&
		 digest_of(s, &j->it, buf_data(data), sha256) == 0;
	t0 = phi_mono_ns();
	rc = backend_put_digest(r->be, key, buf_data(data), buf_len(data),
				hashed ? sha256 : NULL);
	phi_hist_add(&r->put_time, phi_mono_ns() - t0);
	if (rc && hashed)
		digest_forget(s, &j->it);
	put_failed = rc != 0;
	if (rc == 0)
		rc = cache_meta_write(c, done_txn, &a);
	lock_take(&s->lock);
	r->put_errors += put_failed;
	inflight_del(s, qtag(&j->it, r->bit));
	cache_upload_health(r, rc);
	pthread_cond_broadcast(&s->done);
	lock_drop(&s->lock);
	if (rc == 0 && a.emptied && unlinkat(c->dirfd, name, 0) == 0)
		cache_packs_used_sub(c, j->it.size);
}

/*
 * A region marked down that has nothing to receive would stay down until
 * the next write, however long it has been answering again: once its
 * backoff is over, ask it for its superblock; an answer ("no such
 * object" included) brings it back up.  s->lock held, and dropped around
 * the call.  1 if a region was asked.
 */
static int probe_down(struct seal *s, uint32_t pending)
{
	uint64_t now = phi_mono_ns();

	for (int i = 0; i < s->nregions; i++) {
		struct seal_region *r = &s->r[i];
		uint64_t size;
		int rc;

		if (!r->down || r->busy || r->seeding || r->retry_ns > now ||
		    (pending & (1u << r->bit)))
			continue;
		r->busy++;
		lock_drop(&s->lock);
		rc = backend_head(r->be, "superblock", &size);
		lock_take(&s->lock);
		r->busy--;
		if (rc == 0 || rc == -ENOENT)
			region_up(r);
		else
			cache_upload_health(r, rc);	/* down already:
							   stays so */
		return 1;
	}
	return 0;
}

static void *uploader_main(void *arg)
{
	struct cache *c = arg;
	struct seal *s = c->seal;
	uint64_t seen_mark;
	struct kept_buf keep;
	struct buf data;

	buf_init(&data, SIZE_MAX);
	kept_buf_init(&keep, &data, NULL, NULL, phi_mono_ns());
	lock_take(&s->lock);
	seen_mark = s->sync_mark;
	while (!s->stop) {
		struct job j;
		uint64_t wake = UINT64_MAX, now;
		uint32_t pending = 0;
		struct timespec ts;
		int rc = atomic_load(&c->latched) ? PHI_ELATCHED :
			 pick(c, &j, &wake, &pending);

		if (rc == 0 &&
		    inflight_add(s, qtag(&j.it, s->r[j.region].bit)) == 0) {
			s->r[j.region].busy++;
			lock_drop(&s->lock);
			upload(c, &j, &data);
			lock_take(&s->lock);
			s->r[j.region].busy--;
			kept_buf_take(&keep);
			continue;
		}
		if (rc == -ENOENT && probe_down(s, pending))
			continue;
		now = phi_mono_ns();
		/* Nothing to send for KEPT_IDLE_NS, or nothing to send
		 * after a sync: keep no pack-sized buffer (four of them made
		 * most of an idle daemon's memory).  While packs keep coming
		 * it is kept: faulting a fresh one in for every pack was a
		 * quarter of the daemon's CPU while a CT series was copied
		 * in. */
		if (kept_buf_idle(&keep, now) || s->sync_mark != seen_mark) {
			kept_buf_trim(&keep);
			/* the sync's last upload done: until the next */
			if (s->ninflight == 0)
				seen_mark = s->sync_mark;
		}
		if (wake > now + IDLE_WAIT_MS * 1000000ull)
			wake = now + IDLE_WAIT_MS * 1000000ull;
		ts = phi_mono_deadline(wake - now);
		pthread_cond_timedwait(&s->done, &s->lock, &ts);
	}
	lock_drop(&s->lock);
	buf_release(&data);
	return NULL;
}

int cache_upload_start(struct cache *c, unsigned threads)
{
	struct seal *s = c->seal;

	if (threads > 64)
		threads = 64;
	for (unsigned i = 0; i < threads; i++) {
		int rc = pthread_create(&s->uploader[i], NULL, uploader_main, c);

		if (rc)
			return -rc;
		pthread_setname_np(s->uploader[i], "phifs-upload");
		s->nuploaders++;
	}
	return 0;
}

void cache_upload_retry_now(struct cache *c)
{
	struct seal *s = c->seal;

	if (!s)
		return;
	lock_take(&s->lock);
	for (int i = 0; i < s->nregions; i++)
		s->r[i].retry_ns = 0;
	pthread_cond_broadcast(&s->done);
	lock_drop(&s->lock);
}
