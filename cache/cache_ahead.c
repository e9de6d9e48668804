/*
 * cache_ahead.c - read-ahead: while a file is read in order, the gone
 * blocks just past the read are fetched by these threads, so that the
 * reader finds them here instead of waiting for one region round trip per
 * block.
 *
 * cache_blk_prepare_read() notices a sequential read and queues the gone
 * blocks of the window past it (cache_blk.c, the queue's owner: it runs
 * under the node's lock and may not take a node reference).  A thread
 * here takes one (ino, block), takes a temporary reference to the node if
 * it is still in the table with its data file open (a reader has it
 * open), and fetches the block through the same path a reader's fetch
 * takes (cache_blk_fetch_ahead()): a reader that arrives meanwhile waits
 * for that fetch instead of asking the regions again, and a write or cut
 * meanwhile wins over what it brings.  A failed fetch is left to the
 * reader, which fetches again and reports.  No lock is held while a
 * region is asked.  While small files are read pack after pack (a walk,
 * cache_packget.c), a thread here also gets the walk's next pack whole
 * (cache_blk_pack_ahead()), so that its get overlaps the reads of the
 * pack before.
 */
#include "cache_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>

#define AHEAD_THREADS 4
#define AHEAD_WINDOW 16		/* blocks past a read, at most */

static void *ahead_main(void *arg)
{
	struct cache *c = arg;
	uint64_t ino, blk;

	while (cache_blk_ahead_take(c, &ino, &blk) == 0) {
		struct cnode *n;

		if (blk == AHEAD_NEXT_PACK) {
			cache_blk_pack_ahead(c, ino);
			continue;
		}
		n = cache_node_find_ref(c, ino);

		if (!n)
			continue;	/* closed and gone meanwhile */
		cache_blk_fetch_ahead(c, n, blk);
		cache_node_release(c, n);
	}
	return NULL;
}

int cache_ahead_start(struct cache *c)
{
	uint64_t window = c->size_limit / c->block_size / 8;
	int rc = 0;

	static_assert(AHEAD_THREADS <= sizeof(c->ahead_threads) /
		      sizeof(c->ahead_threads[0]), "room for the threads");
	if (!c->seal || c->read_ahead < 0)
		return 0;
	/* a window at most an eighth of the cache: what it brings must not
	 * push out what the reader is about to read */
	if (window > AHEAD_WINDOW)
		window = AHEAD_WINDOW;
	if (c->read_ahead > 0 && window > (uint64_t)c->read_ahead)
		window = (uint64_t)c->read_ahead;
	if (window == 0)
		return 0;
	cache_blk_ahead_init(c, window);
	while (c->ahead_nthreads < AHEAD_THREADS) {
		rc = -pthread_create(&c->ahead_threads[c->ahead_nthreads], NULL,
				     ahead_main, c);
		if (rc)
			break;
		pthread_setname_np(c->ahead_threads[c->ahead_nthreads],
				   "phifs-ahead");
		c->ahead_nthreads++;
	}
	if (rc && c->ahead_nthreads == 0) {
		cache_blk_ahead_stop(c);
		return rc;
	}
	return 0;	/* fewer threads only read ahead less */
}

void cache_ahead_stop(struct cache *c)
{
	if (c->ahead_nthreads == 0)
		return;
	cache_blk_ahead_stop(c);
	while (c->ahead_nthreads > 0)
		pthread_join(c->ahead_threads[--c->ahead_nthreads], NULL);
}
