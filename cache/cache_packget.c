/*
 * cache_packget.c - whole packs got for small files read cold, and for
 * larger files read in order, kept in memory for the reads that follow.
 *
 * The sealer packs dirty files in the order of their inode numbers, so
 * the letters of one folder, or the slices of one CT series, copied in
 * together sit side by side in the same few packs.  Read back cold, each
 * small file would cost a region round trip of its own for a frame of a
 * few kilobytes.  Instead, once a second file of one block is fetched
 * from the same pack (the first may be a single letter opened alone: a
 * ranged get, not megabytes over a clinic's line), the pack is got whole
 * and the reads of its neighbours take their frames from memory.  Once
 * such a pack has served a neighbour, small files are being read folder
 * by folder (a walk): the first fetch from the next pack gets it whole
 * at once, which saves a round trip per pack, and a read-ahead thread
 * gets that pack while the one before is still being read
 * (cache_blk_pack_ahead(), PACKGET_NEXT).  The walk ends at a fetch
 * from a new pack while the pack got last for a small file served none
 * (single files opened here and there), at a pack got whole for
 * nothing when its slot goes to another, and after a pause.
 *
 * A larger file read in order (a reader's sequential read, and the
 * read-ahead threads running past it) gets each of its packs whole at
 * once: one get of a few megabytes costs an S3 server far less than one
 * ranged get per block, and the read-ahead threads each get a
 * different pack at the same time (a thread that finds its pack being
 * got goes on to the next block instead of waiting).  Only a pack that
 * holds the file's next block too is got so (cache_blk.c): a file whose
 * blocks were sealed among other files' data, a pack each, gets its
 * frames alone.  Any other read looks here first (PACKGET_PEEK): a
 * block whose pack is in memory, or being got, comes from there.
 *
 * A pack is an immutable object (a key is never written with other
 * bytes), so what is kept here never goes stale.  Nothing here is
 * trusted: the frame a fetch asked for is authenticated before the pack
 * is kept (a region whose copy fails it is skipped and reported as bad,
 * as for a ranged get), and every frame later taken from memory is
 * authenticated again; a pack with a frame that fails is dropped, and
 * the caller gets the frame from the regions.
 *
 * Bounds: PACKGET_SLOTS packs of at most PACKGET_MAX bytes each, in
 * memory only (never in cache_dir), the one used longest ago given up
 * for the next.  A slot keeps its memory for the next pack (memory
 * fresh from the system faults in page by page, which costs more than
 * the pack's decryption), and gives it back at a sync
 * (cache_packget_trim()) and at close.  A pack larger than that (pack_size set higher when it
 * was written) is remembered as such and never got whole.  Floor 2, with
 * the fetching of cache_blk.c, its only caller.  p->lock is a leaf: no
 * other lock is held with it, and none while a region is asked; a second
 * fetch from a pack being got waits for it (but a read-ahead thread's).
 */
#include "cache_int.h"
#include "backend.h"

#include <errno.h>
#include <string.h>

enum { PG_FREE, PG_LOADING, PG_READY };

/* A walk of small files with no read from a pack for this long is over. */
#define WALK_PAUSE_NS (2 * 1000000000ull)

/* The part of a whole pack a fetch asked for, checked by its verify. */
struct slice {
	uint64_t off, len;
	backend_verify_fn *verify;
	void *ctx;
};

static int slice_verify(void *arg, const void *data, size_t len)
{
	const struct slice *s = arg;

	if (s->off > len || s->len > len - s->off)
		return PHI_ECORRUPT;	/* a copy cut short */
	return s->verify(s->ctx, (const unsigned char *)data + s->off,
			 s->len);
}

void cache_packget_init(struct cache *c)
{
	pthread_mutex_init(&c->packget.lock, NULL);
	pthread_cond_init(&c->packget.cond, NULL);
	for (int i = 0; i < PACKGET_SLOTS; i++)
		buf_init(&c->packget.slot[i].data, PACKGET_MAX);
}

void cache_packget_start(struct cache *c)
{
	struct packget *p = &c->packget;
	uint64_t biggest;

	if (!c->seal || c->read_ahead < 0)
		return;
	/* a pack is stored once it reaches pack_size: with the frame that
	 * crossed it, and the frames' headers, it is at most this */
	biggest = c->seal->pack_size + c->block_size + (64u << 10);
	p->on = biggest <= PACKGET_MAX;
}

void cache_packget_free(struct cache *c)
{
	struct packget *p = &c->packget;

	for (int i = 0; i < PACKGET_SLOTS; i++)
		buf_release(&p->slot[i].data);
	while (p->nspare)
		buf_release(&p->spare[--p->nspare]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

/* The slot holding or getting pack id, or NULL.  p->lock held. */
static struct packget_slot *find(struct packget *p, const uint8_t id[16])
{
	for (int i = 0; i < PACKGET_SLOTS; i++) {
		struct packget_slot *s = &p->slot[i];

		if (s->state != PG_FREE && !s->dropped &&
		    memcmp(s->id, id, 16) == 0)
			return s;
	}
	return NULL;
}

/* The ring's entry of pack id, or NULL.  p->lock held. */
static struct packget_miss *noted(struct packget *p, const uint8_t id[16])
{
	for (int i = 0; i < PACKGET_MISSES; i++)
		if (p->miss[i].seen && memcmp(p->miss[i].id, id, 16) == 0)
			return &p->miss[i];
	return NULL;
}

/*
 * Note a small file's fetch from pack id that found it in no slot: 1 if
 * the pack is to be got whole now (a fetch from it was noted before, or
 * the first during a walk), 0 if not (the first otherwise, or a pack too
 * large for a slot).  p->lock held.
 */
static int small_miss(struct packget *p, const uint8_t id[16])
{
	struct packget_miss *m = noted(p, id);

	if (m)
		return !m->too_big;
	if (p->last_small && p->last_small->served == 0)
		p->walk = 0;	/* the last one got whole served nobody */
	if (phi_mono_ns() - p->walk_ns > WALK_PAUSE_NS)
		p->walk = 0;	/* the reader has stopped */
	m = &p->miss[p->miss_next++ % PACKGET_MISSES];
	memcpy(m->id, id, 16);
	m->seen = 1;
	m->too_big = 0;
	return p->walk;
}

/* Pack id was found too large for a slot: never got whole again (as
 * long as the ring remembers it), whatever the mode.  p->lock held. */
static void mark_too_big(struct packget *p, const uint8_t id[16])
{
	struct packget_miss *m = noted(p, id);

	if (!m) {
		m = &p->miss[p->miss_next++ % PACKGET_MISSES];
		memcpy(m->id, id, 16);
		m->seen = 1;
	}
	m->too_big = 1;
}

/* A slot for a pack to get: a free one, or the ready one used longest
 * ago that no one reads, emptied; NULL when every one is busy.  p->lock
 * held. */
static struct packget_slot *claim(struct packget *p)
{
	struct packget_slot *best = NULL;

	for (int i = 0; i < PACKGET_SLOTS; i++) {
		struct packget_slot *s = &p->slot[i];

		if (s->state == PG_FREE)
			return s;
		if (s->state == PG_READY && s->readers == 0 &&
		    (!best || s->used < best->used))
			best = s;
	}
	if (best) {
		if (best->small && best->served == 0)
			p->walk = 0;	/* got whole for nothing */
		buf_reset(&best->data);
		best->state = PG_FREE;
	}
	return best;
}

/* Authenticate the slice of ready slot s.  p->lock held, dropped
 * meanwhile (s is pinned by its readers count).  0 or 1 (not taken). */
static int from_memory(struct packget *p, struct packget_slot *s,
		       const char *key, const struct slice *want)
{
	int rc;

	s->readers++;
	s->used = ++p->tick;
	lock_drop(&p->lock);
	rc = slice_verify((void *)want, buf_data(&s->data),
			  buf_len(&s->data));
	if (rc)
		PHI_LOG(PHI_LOG_WARNING, "object %s, kept in memory, fails "
			"its check at offset %llu; its blocks are got from "
			"the regions", key, (unsigned long long)want->off);
	lock_take(&p->lock);
	if (rc) {
		s->dropped = 1;	/* a damaged copy: not for the next read */
	} else {
		s->served++;
		if (s->small) {
			p->walk = 1;	/* a neighbour read after it */
			p->walk_ns = phi_mono_ns();
		}
	}
	if (--s->readers == 0 && s->dropped) {
		buf_reset(&s->data);
		s->state = PG_FREE;
	}
	if (rc == 0)
		p->hits++;
	return rc ? 1 : 0;
}

/* Get pack key whole into slot s, which the caller made PG_LOADING and
 * so owns, checking the slice want of it.  p->lock held, dropped
 * meanwhile.  As cache_packget_frame(). */
static int load(struct cache *c, struct packget_slot *s, const char *key,
		const struct slice *want, int *bad)
{
	struct packget *p = &c->packget;
	int rc;

	lock_drop(&p->lock);
	buf_reset(&s->data);
	rc = backend_replica_get_verified(c->seal->regions, key, 0, 0,
					  &s->data, slice_verify, (void *)want,
					  bad);
	lock_take(&p->lock);
	if (rc == 0) {
		s->state = PG_READY;
		s->used = ++p->tick;
		p->loads++;
	} else {
		buf_reset(&s->data);
		s->state = PG_FREE;
		if (rc == -E2BIG)
			mark_too_big(p, s->id);
	}
	pthread_cond_broadcast(&p->cond);
	/* No region reached (none answered with a bad copy or none): the
	 * frame alone would not come either.  Otherwise (too large, no
	 * memory, a copy bad or cut short) the frame alone may. */
	if (rc && *bad == 0 && rc != -E2BIG && rc != -ENOMEM)
		return rc;
	return rc ? 1 : 0;
}

int cache_packget_frame(struct cache *c, const char *key,
			const uint8_t id[16], uint64_t off, uint64_t len,
			backend_verify_fn *verify, void *ctx, int *bad,
			enum packget_mode mode)
{
	struct packget *p = &c->packget;
	const struct slice want = { off, len, verify, ctx };
	struct packget_slot *s;
	int rc, waited = 0;

	*bad = 0;
	if (!p->on)
		return 1;
	lock_take(&p->lock);
	while ((s = find(p, id)) && s->state == PG_LOADING) {
		if (mode == PACKGET_AHEAD || mode == PACKGET_NEXT) {
			lock_drop(&p->lock);
			return -EINPROGRESS;
		}
		pthread_cond_wait(&p->cond, &p->lock);
		waited = 1;
	}
	if (s && mode == PACKGET_NEXT)
		rc = 0;		/* here already: nothing to get */
	else if (s)
		rc = from_memory(p, s, key, &want);
	else if (waited || mode == PACKGET_PEEK)
		rc = 1;		/* the get waited for failed; or a look */
	else if (mode == PACKGET_SMALL ? !small_miss(p, id) :
		 (noted(p, id) && noted(p, id)->too_big))
		rc = 1;		/* the first small one; or too large */
	else if ((s = claim(p)) != NULL) {
		memcpy(s->id, id, 16);
		s->dropped = 0;
		s->state = PG_LOADING;
		s->small = mode == PACKGET_SMALL || mode == PACKGET_NEXT;
		s->served = 0;
		if (s->small)
			p->last_small = s;
		else if (p->last_small == s)
			p->last_small = NULL;
		rc = load(c, s, key, &want, bad);
	} else
		rc = 1;		/* every slot busy */
	lock_drop(&p->lock);
	return rc;
}

void cache_packget_counts(struct cache *c, uint64_t *loads, uint64_t *hits)
{
	struct packget *p = &c->packget;

	lock_take(&p->lock);
	*loads = p->loads;
	*hits = p->hits;
	lock_drop(&p->lock);
}

int cache_packget_walking(struct cache *c)
{
	struct packget *p = &c->packget;
	int walk;

	if (!p->on)
		return 0;
	lock_take(&p->lock);
	walk = p->walk;
	lock_drop(&p->lock);
	return walk;
}

void cache_packget_buf_take(struct cache *c, struct buf *b)
{
	struct packget *p = &c->packget;

	buf_init(b, SIZE_MAX);
	lock_take(&p->lock);
	if (p->nspare)
		*b = p->spare[--p->nspare];
	lock_drop(&p->lock);
}

void cache_packget_buf_give(struct cache *c, struct buf *b)
{
	struct packget *p = &c->packget;

	buf_reset(b);
	lock_take(&p->lock);
	if (p->nspare < PACKGET_SPARE) {
		p->spare[p->nspare++] = *b;
		buf_init(b, SIZE_MAX);
	}
	lock_drop(&p->lock);
	buf_release(b);
}

void cache_packget_trim(struct cache *c)
{
	struct packget *p = &c->packget;

	lock_take(&p->lock);
	for (int i = 0; i < PACKGET_SLOTS; i++) {
		struct packget_slot *s = &p->slot[i];

		if (s->state == PG_READY && s->readers == 0) {
			buf_release(&s->data);
			s->state = PG_FREE;
		} else if (s->state == PG_FREE) {
			buf_release(&s->data);
		}
	}
	while (p->nspare)
		buf_release(&p->spare[--p->nspare]);
	lock_drop(&p->lock);
}
