/*
 * cache_upload.c - uploader threads: every sealed pack to every region.
 *
 * The queue is the `packs` db: one entry per pack not yet in every
 * region, with a bit per region still to receive it.  An uploader picks
 * the oldest (pack, region) pair that no other uploader has in flight and
 * whose region is not backing off, puts the local copy, and clears the bit
 * in one transaction; the last bit deletes the entry and then the local
 * file.  A put is idempotent (same key, same bytes), so a crash between
 * the put and the commit only repeats it.  Nothing here ever deletes or
 * overwrites an object in a region with other bytes.
 *
 * A region being re-seeded (cache_mend.c) receives nothing before its
 * superblock, and no metadata object before it is whole.
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

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DOWN_AFTER 3
#define BACKOFF_MIN_NS 500000000ull
#define BACKOFF_MAX_NS 60000000000ull
#define IDLE_WAIT_MS 500

struct regions_arg {
	struct seal *s;
};

static int regions_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct seal *s = ((struct regions_arg *)arg)->s;
	uint32_t used = 0, keep = 0;
	MDB_val key, val;
	MDB_cursor *cur;
	int rc;

	/* bits already given out, by name */
	rc = meta_err(mdb_cursor_open(txn, c->db_regions, &cur));
	if (rc)
		return rc;
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		struct region_rec rr;

		if (val.mv_size != sizeof(rr))
			continue;
		memcpy(&rr, val.mv_data, sizeof(rr));
		used |= 1u << rr.bit;
		for (int i = 0; i < s->nregions; i++) {
			if (strlen(s->r[i].name) != key.mv_size ||
			    memcmp(s->r[i].name, key.mv_data, key.mv_size))
				continue;
			s->r[i].bit = rr.bit;
			s->r[i].fails = rr.fails;
			s->r[i].down = rr.down;
			s->r[i].last_ok = rr.last_ok;
			keep |= 1u << rr.bit;
			s->r[i].dirty = 2;	/* known */
		}
	}
	mdb_cursor_close(cur);
	for (int i = 0; i < s->nregions; i++) {
		struct region_rec rr = { 0 };
		uint32_t bit = 0;

		if (s->r[i].dirty == 2) {
			s->r[i].dirty = 0;
			continue;
		}
		while (bit < 32 && (used & (1u << bit)))
			bit++;
		if (bit == 32)
			return -ENOSPC;
		used |= 1u << bit;
		keep |= 1u << bit;
		s->r[i].bit = rr.bit = bit;
		key.mv_size = strlen(s->r[i].name);
		key.mv_data = s->r[i].name;
		val.mv_size = sizeof(rr);
		val.mv_data = &rr;
		rc = mdb_put(txn, c->db_regions, &key, &val, 0);
		if (rc)
			return meta_err(rc);
	}
	/* Regions gone from the config cannot receive anything: drop their
	 * bits from the queue, and their records. */
	rc = meta_err(mdb_cursor_open(txn, c->db_packs, &cur));
	if (rc)
		return rc;
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		struct pack_rec pr;

		if (val.mv_size != sizeof(pr))
			continue;
		memcpy(&pr, val.mv_data, sizeof(pr));
		if (!(pr.pending & ~keep))
			continue;
		pr.pending &= keep;
		if (pr.pending == 0)
			rc = mdb_cursor_del(cur, 0);
		else
			rc = mdb_cursor_put(cur, &key, &(MDB_val){ sizeof(pr),
					    &pr }, MDB_CURRENT);
		if (rc) {
			mdb_cursor_close(cur);
			return meta_err(rc);
		}
	}
	mdb_cursor_close(cur);
	rc = meta_err(mdb_cursor_open(txn, c->db_regions, &cur));
	if (rc)
		return rc;
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		struct region_rec rr;

		if (val.mv_size != sizeof(rr))
			continue;
		memcpy(&rr, val.mv_data, sizeof(rr));
		if (!(keep & (1u << rr.bit))) {
			PHI_LOG(PHI_LOG_NOTICE, "a region is no longer "
				"configured; its upload queue is dropped");
			mdb_cursor_del(cur, 0);
		}
	}
	mdb_cursor_close(cur);
	return 0;
}

int upload_regions_load(struct cache *c, const char *const *names)
{
	struct seal *s = c->seal;
	struct regions_arg a = { s };

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
		int rc = meta_write(c, regions_txn, &a);

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
			return meta_err(rc);
	}
	return 0;
}

void upload_record_health(struct cache *c)
{
	struct seal *s = c->seal;
	struct region_rec rr[SEAL_MAX_REGIONS];
	int any = 0;

	if (!s)
		return;
	lock_take(&s->lock);
	for (int i = 0; i < s->nregions; i++) {
		rr[i] = (struct region_rec){ s->r[i].bit, s->r[i].fails,
					     s->r[i].down, s->r[i].dirty,
					     s->r[i].last_ok };
		any |= s->r[i].dirty;
		s->r[i].dirty = 0;
	}
	lock_drop(&s->lock);
	if (any && meta_write(c, health_txn, rr)) {
		lock_take(&s->lock);
		for (int i = 0; i < s->nregions; i++)
			s->r[i].dirty |= rr[i].pad;
		lock_drop(&s->lock);
	}
}

/* --- picking work ------------------------------------------------------ */

struct job {
	uint64_t seq;
	int region;		/* index */
	int meta;		/* a metadata object (mr), else a pack (pr) */
	struct pack_rec pr;
	struct meta_rec mr;
};

#define META_TAG (1ull << 63)	/* in-flight tags of metadata objects */

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

/* The oldest pair to upload now; s->lock held.  0 or -ENOENT, and then
 * *pending holds the bits of the regions that still lack something. */
static int pick(struct cache *c, struct job *j, uint64_t *wake_ns,
		uint32_t *pending)
{
	struct seal *s = c->seal;
	uint64_t now = cache_mono_ns();
	MDB_val key, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, found = 0;

	uint64_t minp[32];

	*wake_ns = UINT64_MAX;
	*pending = 0;
	for (int b = 0; b < 32; b++)
		minp[b] = UINT64_MAX;
	txn = meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	if (mdb_cursor_open(txn, c->db_packs, &cur)) {
		meta_read_end(txn);
		return -EIO;
	}
	/* Packs first, oldest first; note the oldest pack each region
	 * still lacks, which holds back the metadata that may point into
	 * it. */
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		struct pack_rec pr;
		uint64_t seq;

		if (key.mv_size != 8 || val.mv_size != sizeof(pr))
			continue;
		memcpy(&pr, val.mv_data, sizeof(pr));
		seq = key_get_u64(key.mv_data);
		*pending |= pr.pending;
		for (int i = 0; i < s->nregions; i++) {
			struct seal_region *r = &s->r[i];

			if (!(pr.pending & (1u << r->bit)))
				continue;
			if (seq < minp[r->bit])
				minp[r->bit] = seq;
			if (found || r->seeding == SEED_SUPER)
				continue;
			if (r->retry_ns > now) {
				if (r->retry_ns < *wake_ns)
					*wake_ns = r->retry_ns;
				continue;
			}
			if (inflight_has(s, seq << 5 | r->bit))
				continue;
			j->pr = pr;
			j->seq = seq;
			j->region = i;
			j->meta = 0;
			found = 1;
		}
	}
	mdb_cursor_close(cur);
	if (!found && mdb_cursor_open(txn, c->db_metaq, &cur) == 0) {
		while (!found &&
		       mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
			struct meta_rec mr;
			uint64_t seq;

			if (key.mv_size != 8 || val.mv_size != sizeof(mr))
				continue;
			memcpy(&mr, val.mv_data, sizeof(mr));
			seq = key_get_u64(key.mv_data);
			*pending |= mr.pending;
			for (int i = 0; i < s->nregions && !found; i++) {
				struct seal_region *r = &s->r[i];

				if (!(mr.pending & (1u << r->bit)) ||
				    r->seeding || minp[r->bit] <= mr.dep ||
				    r->retry_ns > now ||
				    inflight_has(s, META_TAG | seq << 5 |
						 r->bit))
					continue;
				j->mr = mr;
				j->seq = seq;
				j->region = i;
				j->meta = 1;
				found = 1;
			}
		}
		mdb_cursor_close(cur);
	}
	meta_read_end(txn);
	return found ? 0 : -ENOENT;
}

/* --- doing it ---------------------------------------------------------- */

/* A region now holds object seq of a queue (packs or metaq): clear its
 * bit; the last bit takes the entry out of the queue. */
struct done_arg {
	int meta;		/* metaq, else packs */
	uint64_t seq;
	uint32_t bit;
	int emptied;		/* out */
};

static int done_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct done_arg *a = arg;
	MDB_dbi dbi = a->meta ? c->db_metaq : c->db_packs;
	size_t size = a->meta ? sizeof(struct meta_rec) :
		      sizeof(struct pack_rec);
	size_t at = a->meta ? offsetof(struct meta_rec, pending) :
		    offsetof(struct pack_rec, pending);
	union {
		struct pack_rec pr;
		struct meta_rec mr;
	} rec;
	uint32_t pending;
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val;
	int rc;

	key_put_u64(k, a->seq);
	rc = mdb_get(txn, dbi, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return meta_err(rc);
	if (val.mv_size != size)
		return PHI_ECORRUPT;
	memcpy(&rec, val.mv_data, size);
	memcpy(&pending, (char *)&rec + at, sizeof(pending));
	pending &= ~(1u << a->bit);
	memcpy((char *)&rec + at, &pending, sizeof(pending));
	a->emptied = pending == 0;
	if (a->emptied)
		rc = mdb_del(txn, dbi, &key, NULL);
	else
		rc = mdb_put(txn, dbi, &key, &(MDB_val){ size, &rec }, 0);
	return meta_err(rc);
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

void upload_health(struct seal_region *r, int rc)
{
	if (rc == 0) {
		if (r->down)
			PHI_LOG(PHI_LOG_NOTICE, "region %s is back", r->name);
		r->fails = 0;
		r->down = 0;
		r->retry_ns = 0;
		r->last_ok = phi_now().tv_sec;
		r->dirty = 1;
	} else if (rc != PHI_ELATCHED) {
		r->fails++;
		r->retry_ns = cache_mono_ns() + backoff(r->fails);
		if (r->fails >= DOWN_AFTER && !r->down) {
			r->down = 1;
			PHI_LOG(PHI_LOG_WARNING, "region %s is down (%s); "
				"uploads to it are retried in the background",
				r->name, phi_strerror(rc));
		}
		r->dirty = 1;
	}
}

/* Upload one pair; called without s->lock. */
static void upload(struct cache *c, const struct job *j, struct buf *data)
{
	struct seal *s = c->seal;
	struct seal_region *r = &s->r[j->region];
	char key[48], name[128];
	struct done_arg a = { j->meta, j->seq, r->bit, 0 };
	uint64_t tag = (j->meta ? META_TAG : 0) | j->seq << 5 | r->bit;
	int rc;

	if (j->meta) {
		snprintf(key, sizeof(key), "%s", j->mr.key);
		journal_file(key, name, sizeof(name));
		rc = read_local(c, name, j->mr.size, data);
	} else {
		pack_key(j->pr.id, key);
		pack_file(j->pr.id, name);
		rc = read_local(c, name, j->pr.size, data);
	}
	if (rc) {
		/* The local copy is gone or damaged: nothing to send.  Keep
		 * the pair in flight for good so that it is not retried in
		 * a loop; status shows it waiting. */
		PHI_LOG(PHI_LOG_ERR, "object %s: local copy unreadable (%s); "
			"cannot upload it to region %s", key, phi_strerror(rc),
			r->name);
		return;
	}
	rc = backend_put(r->be, key, buf_data(data), buf_len(data));
	if (rc == 0)
		rc = meta_write(c, done_txn, &a);
	lock_take(&s->lock);
	inflight_del(s, tag);
	upload_health(r, rc);
	pthread_cond_broadcast(&s->done);
	lock_drop(&s->lock);
	if (rc == 0 && a.emptied) {
		uint64_t used = atomic_load(&c->packs_used);
		uint64_t size = j->meta ? j->mr.size : j->pr.size;

		if (unlinkat(c->dirfd, name, 0) == 0)
			atomic_store(&c->packs_used,
				     used > size ? used - size : 0);
	}
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
	uint64_t now = cache_mono_ns();

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
		if (rc == 0 || rc == -ENOENT) {
			PHI_LOG(PHI_LOG_NOTICE, "region %s is back", r->name);
			r->fails = 0;
			r->down = 0;
			r->retry_ns = 0;
		} else {
			r->fails++;
			r->retry_ns = cache_mono_ns() + backoff(r->fails);
		}
		r->dirty = 1;
		return 1;
	}
	return 0;
}

static void *uploader_main(void *arg)
{
	struct cache *c = arg;
	struct seal *s = c->seal;
	struct buf data;

	buf_init(&data, SIZE_MAX);
	lock_take(&s->lock);
	while (!s->stop) {
		struct job j;
		uint64_t wake = UINT64_MAX, now;
		uint32_t pending = 0;
		struct timespec ts;
		int rc = atomic_load(&c->latched) ? PHI_ELATCHED :
			 pick(c, &j, &wake, &pending);

		if (rc == 0 &&
		    inflight_add(s, (j.meta ? META_TAG : 0) | j.seq << 5 |
				 s->r[j.region].bit) == 0) {
			s->r[j.region].busy++;
			lock_drop(&s->lock);
			upload(c, &j, &data);
			lock_take(&s->lock);
			s->r[j.region].busy--;
			continue;
		}
		if (rc == -ENOENT && probe_down(s, pending))
			continue;
		/* Nothing to send now: an idle thread keeps no pack-sized
		 * buffer (four of them made most of a daemon's memory). */
		buf_release(&data);
		now = cache_mono_ns();
		if (wake > now + IDLE_WAIT_MS * 1000000ull)
			wake = now + IDLE_WAIT_MS * 1000000ull;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((wake - now) / 1000000000ull);
		ts.tv_nsec += (long)((wake - now) % 1000000000ull);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->done, &s->lock, &ts);
	}
	lock_drop(&s->lock);
	buf_release(&data);
	return NULL;
}

int upload_start(struct cache *c, unsigned threads)
{
	struct seal *s = c->seal;

	if (threads > 64)
		threads = 64;
	for (unsigned i = 0; i < threads; i++) {
		int rc = pthread_create(&s->uploader[i], NULL, uploader_main, c);

		if (rc)
			return -rc;
		s->nuploaders++;
	}
	return 0;
}

/* Add *bits to the pending bits of every entry of the queue db dbi,
 * whose records hold them at offset at. */
static int queue_or(MDB_txn *txn, MDB_dbi dbi, size_t size, size_t at,
		    uint32_t bits)
{
	MDB_val key, val;
	MDB_cursor *cur = NULL;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	while (rc == 0 && mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		uint8_t rec[sizeof(struct pack_rec) + sizeof(struct meta_rec)];
		uint32_t pending;

		if (val.mv_size != size)
			continue;
		memcpy(rec, val.mv_data, size);
		memcpy(&pending, rec + at, sizeof(pending));
		if ((pending | bits) == pending)
			continue;
		pending |= bits;
		memcpy(rec + at, &pending, sizeof(pending));
		rc = mdb_cursor_put(cur, &key, &(MDB_val){ size, rec },
				    MDB_CURRENT);
	}
	if (cur)
		mdb_cursor_close(cur);
	return meta_err(rc);
}

static int queue_all_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	uint32_t bits = *(uint32_t *)arg;
	int rc = queue_or(txn, c->db_packs, sizeof(struct pack_rec),
			  offsetof(struct pack_rec, pending), bits);

	if (rc == 0)
		rc = queue_or(txn, c->db_metaq, sizeof(struct meta_rec),
			      offsetof(struct meta_rec, pending), bits);
	return rc;
}

int upload_queue_all(struct cache *c, uint32_t bits)
{
	return bits ? meta_write(c, queue_all_txn, &bits) : 0;
}

int upload_all_up(struct cache *c)
{
	struct seal *s = c->seal;
	int up = 1;

	lock_take(&s->lock);
	for (int i = 0; i < s->nregions; i++)
		up &= !s->r[i].down;
	lock_drop(&s->lock);
	return up;
}

void upload_retry_now(struct cache *c)
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
