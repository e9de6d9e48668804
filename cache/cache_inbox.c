/*
 * cache_inbox.c - the sealer's inbox (struct inbox): how the floors below
 * replication ask for sealing, say which files closed dirty, count dirty
 * blocks, and learn whether every region is up, without calling up.
 *
 * The sealer (cache_seal.c) opens it when it starts, waits on it
 * (cache_inbox_wait()) and drains it; before that, and with no regions at all,
 * what is posted here is dropped, as there is nobody to read it.
 */
#include "cache_int.h"

#include <stdlib.h>
#include <time.h>

void cache_inbox_init(struct cache *c)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&c->inbox.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->inbox.cond, &ca);
	pthread_condattr_destroy(&ca);
}

void cache_inbox_free(struct cache *c)
{
	pthread_mutex_destroy(&c->inbox.lock);
	pthread_cond_destroy(&c->inbox.cond);
	free(c->inbox.closed);
	c->inbox.closed = NULL;
	c->inbox.nclosed = c->inbox.capclosed = 0;
}

void cache_inbox_open(struct cache *c, uint64_t dirty_limit)
{
	struct inbox *in = &c->inbox;

	lock_take(&in->lock);
	in->stop = 0;
	in->dirty_limit = dirty_limit;
	atomic_store(&in->open, 1);
	lock_drop(&in->lock);
}

void cache_inbox_stop(struct cache *c)
{
	struct inbox *in = &c->inbox;

	lock_take(&in->lock);
	in->stop = 1;
	pthread_cond_broadcast(&in->cond);
	lock_drop(&in->lock);
}

void cache_inbox_kick(struct cache *c)
{
	struct inbox *in = &c->inbox;

	lock_take(&in->lock);
	if (atomic_load(&in->open)) {
		in->kicked = 1;
		pthread_cond_signal(&in->cond);
	}
	lock_drop(&in->lock);
}

void cache_inbox_closed(struct cache *c, uint64_t ino)
{
	struct inbox *in = &c->inbox;

	lock_take(&in->lock);
	if (!atomic_load(&in->open)) {
		lock_drop(&in->lock);
		return;
	}
	if (in->nclosed == in->capclosed) {
		size_t cap = in->capclosed ? 2 * in->capclosed : 64;
		uint64_t *v = realloc(in->closed, cap * sizeof(*v));

		if (v) {
			in->closed = v;
			in->capclosed = cap;
		}
	}
	if (in->nclosed == 0)
		in->first_closed_ns = phi_mono_ns();
	if (in->nclosed < in->capclosed)	/* else sealed after the delay */
		in->closed[in->nclosed++] = ino;
	/* The sealer sleeps until the gathering time of the first close
	 * ends; wake it to set that deadline, and when a batch is full. */
	if (in->nclosed == 1 || in->nclosed >= CLOSE_BATCH)
		pthread_cond_signal(&in->cond);
	lock_drop(&in->lock);
}

size_t cache_inbox_take_closed(struct cache *c, uint64_t **out)
{
	struct inbox *in = &c->inbox;
	size_t n;

	lock_take(&in->lock);
	*out = in->closed;
	n = in->nclosed;
	in->closed = NULL;
	in->nclosed = in->capclosed = 0;
	lock_drop(&in->lock);
	return n;
}

void cache_inbox_fetched(struct cache *c)
{
	lock_take(&c->inbox.lock);
	c->inbox.fetched = 1;
	lock_drop(&c->inbox.lock);
}

int cache_inbox_take_fetched(struct cache *c)
{
	int was;

	lock_take(&c->inbox.lock);
	was = c->inbox.fetched;
	c->inbox.fetched = 0;
	lock_drop(&c->inbox.lock);
	return was;
}

void cache_request_sync(struct cache *c)
{
	if (atomic_load(&c->inbox.open))
		atomic_fetch_add(&c->inbox.sync_req, 1);
}

void cache_inbox_wrote(struct cache *c, uint64_t now)
{
	atomic_store_explicit(&c->inbox.last_write_ns, now,
			      memory_order_relaxed);
}

uint64_t cache_inbox_last_write(struct cache *c)
{
	return atomic_load_explicit(&c->inbox.last_write_ns,
				    memory_order_relaxed);
}

int cache_inbox_wait(struct cache *c, unsigned handled, unsigned tick_ms,
		     int hold_closed)
{
	struct inbox *in = &c->inbox;
	uint64_t now = phi_mono_ns(), tick = now + tick_ms * 1000000ull;
	struct timespec ts;
	int stop;

	lock_take(&in->lock);
	while (!in->stop && !in->kicked &&
	       atomic_load(&in->sync_req) == handled && now < tick) {
		uint64_t until = tick;

		if (in->nclosed && !hold_closed) {
			uint64_t gathered = in->first_closed_ns +
					    CLOSE_GATHER_MS * 1000000ull;

			if (now >= gathered || in->nclosed >= CLOSE_BATCH)
				break;
			if (gathered < until)
				until = gathered;
		}
		ts = phi_mono_deadline(until - now);
		pthread_cond_timedwait(&in->cond, &in->lock, &ts);
		now = phi_mono_ns();
	}
	stop = in->stop;
	in->kicked = 0;
	lock_drop(&in->lock);
	return stop;
}

int cache_inbox_over_dirty_limit(struct cache *c, uint64_t block_size)
{
	return atomic_load(&c->inbox.dirty_blocks) * block_size >
	       c->inbox.dirty_limit;
}

int cache_inbox_regions_up(struct cache *c)
{
	return atomic_load(&c->inbox.regions_down) == 0;
}
