/*
 * backend_replica.c - the "replica" driver: one backend over N regions.
 *
 * Writes fan out to every region; reads go to one region at a time,
 * healthiest first, and fail over on any error, because a region may be
 * unreachable, lagging (-ENOENT) or holding a damaged copy, and the caller
 * only cares that some region has a good one.
 *
 * Health is one counter per region: consecutive failed calls, reset by
 * any answer (-ENOENT is an answer: the region works, the object is not
 * there).  Readers order regions by it; it is the only mutable state and
 * lives under rs->lock, which is never held across a call into a region,
 * so a slow region does not stall threads reading from a healthy one.
 */
#include "backend_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "phi.h"

struct region {
	struct backend *be;	/* owned; set at open */
	unsigned fails;		/* consecutive failed calls; rs->lock */
	/* gets through the set, for the metrics; atomics, no lock */
	atomic_uint_fast64_t get_errors;
	struct phi_hist get_time;
};

struct replica {
	struct backend base;
	int n;				/* regions; set at open */
	pthread_mutex_t lock;		/* protects r[].fails */
	struct region r[BACKEND_REPLICA_MAX];
};

static const struct backend_ops replica_ops;

static struct replica *replica_of(struct backend *be)
{
	assert(be && be->ops == &replica_ops);
	return (struct replica *)be;
}

/* Errors that are the caller's doing say nothing about the region. */
static bool region_failed(int rc)
{
	return rc < 0 && rc != -ENOENT && rc != -EINVAL && rc != -E2BIG;
}

/* Record how region i's call went; log when its health changes. */
static void note(struct replica *rs, int i, int rc)
{
	bool failed = region_failed(rc);
	unsigned before;

	pthread_mutex_lock(&rs->lock);
	before = rs->r[i].fails;
	if (!failed)
		rs->r[i].fails = 0;
	else if (before < ~0u)
		rs->r[i].fails = before + 1;
	pthread_mutex_unlock(&rs->lock);
	if (failed && before == 0)
		PHI_LOG(PHI_LOG_WARNING, "region %d (%s) failed: %s", i,
			backend_name(rs->r[i].be), phi_strerror(rc));
	else if (!failed && before > 0)
		PHI_LOG(PHI_LOG_NOTICE, "region %d (%s) answers again", i,
			backend_name(rs->r[i].be));
}

/* Regions whose last call succeeded, then the others, each in index
 * order.  Returns how many. */
static int health_order(struct replica *rs, int order[])
{
	int k = 0;

	pthread_mutex_lock(&rs->lock);
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].fails == 0)
			order[k++] = i;
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].fails > 0)
			order[k++] = i;
	pthread_mutex_unlock(&rs->lock);
	return k;
}

/* ---- reads ---------------------------------------------------------- */

/* One read, as a get (size NULL) or a head. */
struct read_req {
	const char *key;
	uint64_t off, len;
	struct buf *out;
	uint64_t *size;
	backend_verify_fn *verify;
	void *ctx;
};

/*
 * When every region failed, report what helps the caller most: an error
 * that leaves the object possibly there (retry later) beats a bad copy
 * (repair), which beats -ENOENT (really gone).
 */
struct outcome {
	int other;	/* first error that is neither bad nor missing */
	int bad;	/* first refusal by verify */
};

static void outcome_add(struct outcome *o, int rc, bool bad)
{
	if (bad && !o->bad)
		o->bad = rc;
	else if (!bad && rc != -ENOENT && !o->other)
		o->other = rc;
}

static int outcome_rc(const struct outcome *o)
{
	if (o->other)
		return o->other;
	return o->bad ? o->bad : -ENOENT;
}

/* Ask one backend; *bad says it answered with a copy verify refused. */
static int read_one(struct backend *be, const struct read_req *q, bool *bad)
{
	size_t old;
	int rc;

	*bad = false;
	if (q->size)
		return backend_head(be, q->key, q->size);
	old = buf_len(q->out);
	rc = backend_get(be, q->key, q->off, q->len, q->out);
	if (rc < 0 || !q->verify)
		return rc;
	rc = q->verify(q->ctx, (const char *)buf_data(q->out) + old,
		       buf_len(q->out) - old);
	if (rc == 0)
		return 0;
	buf_setlen(q->out, old);
	*bad = true;
	return rc < 0 ? rc : PHI_EAUTHFAIL;
}

/* A get from region r took ns and ended with rc (a copy verify refused
 * and a missing copy are errors of the region too). */
static void count_get(struct region *r, int rc, uint64_t ns)
{
	phi_hist_add(&r->get_time, ns);
	if (rc)
		atomic_fetch_add_explicit(&r->get_errors, 1,
					  memory_order_relaxed);
}

static int replica_read(struct replica *rs, const struct read_req *q,
			int *bad_mask)
{
	int order[BACKEND_REPLICA_MAX], n = health_order(rs, order);
	struct outcome o = { 0, 0 };
	int mask = 0, rc = -ENOENT;

	for (int k = 0; k < n; k++) {
		int i = order[k];
		uint64_t t0 = phi_mono_ns();
		bool bad;

		rc = read_one(rs->r[i].be, q, &bad);
		if (!q->size)
			count_get(&rs->r[i], rc, phi_mono_ns() - t0);
		note(rs, i, bad ? PHI_EAUTHFAIL : rc);
		if (rc == 0)
			break;
		if (bad || rc == -ENOENT)
			mask |= 1 << i;
		outcome_add(&o, rc, bad);
	}
	if (bad_mask)
		*bad_mask = mask;
	return rc == 0 ? 0 : outcome_rc(&o);
}

static int replica_get(struct backend *be, const char *key, uint64_t off,
		       uint64_t len, struct buf *out)
{
	struct read_req q = { key, off, len, out, NULL, NULL, NULL };

	return replica_read(replica_of(be), &q, NULL);
}

static int replica_head(struct backend *be, const char *key, uint64_t *size)
{
	struct read_req q = { key, 0, 0, NULL, size, NULL, NULL };

	return replica_read(replica_of(be), &q, NULL);
}

int backend_replica_get_verified(struct backend *be, const char *key,
				 uint64_t off, uint64_t len, struct buf *out,
				 backend_verify_fn *verify, void *ctx,
				 int *bad_mask)
{
	struct read_req q = { key, off, len, out, NULL, verify, ctx };
	bool bad;
	int rc;

	assert(be && be->ops && out);
	if (bad_mask)
		*bad_mask = 0;
	/* Not through backend_get(), so the key rule is enforced here. */
	rc = backend_key_check(key);
	if (rc < 0)
		return rc;
	if (be->ops == &replica_ops)
		return replica_read(replica_of(be), &q, bad_mask);
	rc = read_one(be, &q, &bad);
	if (bad_mask && (bad || rc == -ENOENT))
		*bad_mask = 1;
	return rc;
}

/* ---- writes, list --------------------------------------------------- */

static int replica_put(struct backend *be, const char *key, const void *data,
		       size_t len)
{
	struct replica *rs = replica_of(be);
	int first = 0;

	for (int i = 0; i < rs->n; i++) {
		int rc = backend_put(rs->r[i].be, key, data, len);

		note(rs, i, rc);
		if (rc < 0 && !first)
			first = rc;
	}
	return first;
}

static int replica_del(struct backend *be, const char *key)
{
	struct replica *rs = replica_of(be);
	int first = 0, deleted = 0;

	for (int i = 0; i < rs->n; i++) {
		int rc = backend_del(rs->r[i].be, key);

		note(rs, i, rc);
		if (rc == 0)
			deleted++;
		else if (rc != -ENOENT && !first)
			first = rc;
	}
	if (first)
		return first;
	return deleted ? 0 : -ENOENT;
}

struct gather {
	struct backend_keys *keys;
	int src;
	int err;	/* our own failure, as opposed to the region's */
};

static int gather_key(void *ctx, const char *key, uint64_t size)
{
	struct gather *g = ctx;

	g->err = backend_keys_add(g->keys, key, size, g->src);
	return g->err;
}

static int replica_list(struct backend *be, const char *prefix,
			backend_list_fn *fn, void *ctx)
{
	struct replica *rs = replica_of(be);
	struct backend_keys keys = { NULL, 0, 0 };
	int first = 0, answered = 0, rc = 0;

	for (int i = 0; i < rs->n; i++) {
		struct gather g = { &keys, i, 0 };

		rc = backend_list(rs->r[i].be, prefix, gather_key, &g);
		if (g.err) {
			rc = g.err;
			goto out;
		}
		note(rs, i, rc);
		if (rc == 0)
			answered++;
		else if (!first)
			first = rc;
	}
	rc = first;
	if (!answered)
		goto out;
	backend_keys_sort(&keys);
	rc = backend_keys_emit(&keys, fn, ctx);
out:
	backend_keys_release(&keys);
	return rc;
}

/* ---- lifecycle ------------------------------------------------------ */

static void replica_close(struct backend *be)
{
	struct replica *rs = replica_of(be);

	for (int i = 0; i < rs->n; i++)
		backend_close(rs->r[i].be);
	pthread_mutex_destroy(&rs->lock);
	free(rs);
}

static const struct backend_ops replica_ops = {
	.name = "replica",
	.put = replica_put,
	.get = replica_get,
	.head = replica_head,
	.list = replica_list,
	.del = replica_del,
	.close = replica_close,
};

static void close_all(struct backend **regions, int n)
{
	for (int i = 0; i < n; i++)
		backend_close(regions[i]);
}

int backend_replica_open(struct backend **out, struct backend **regions,
			 int n)
{
	struct replica *rs;
	int rc;

	*out = NULL;
	if (n < 1 || n > BACKEND_REPLICA_MAX) {
		close_all(regions, n);
		return -EINVAL;
	}
	rs = calloc(1, sizeof(*rs));
	rc = rs ? -pthread_mutex_init(&rs->lock, NULL) : -ENOMEM;
	if (rc < 0) {
		free(rs);
		close_all(regions, n);
		return rc;
	}
	rs->base.ops = &replica_ops;
	rs->n = n;
	for (int i = 0; i < n; i++) {
		assert(regions[i]);
		rs->r[i].be = regions[i];
	}
	*out = &rs->base;
	return 0;
}

int backend_replica_count(const struct backend *be)
{
	assert(be && be->ops);
	if (be->ops != &replica_ops)
		return 1;
	return ((const struct replica *)be)->n;
}

struct backend *backend_replica_region(struct backend *be, int i)
{
	struct replica *rs;

	assert(be && be->ops);
	if (be->ops != &replica_ops) {
		assert(i == 0);
		return be;
	}
	rs = replica_of(be);
	assert(i >= 0 && i < rs->n);
	return rs->r[i].be;
}

void backend_replica_get_stats(struct backend *be, int i,
			       struct backend_get_stats *out)
{
	struct replica *rs;

	memset(out, 0, sizeof(*out));
	assert(be && be->ops);
	if (be->ops != &replica_ops)
		return;
	rs = replica_of(be);
	assert(i >= 0 && i < rs->n);
	out->errors = atomic_load_explicit(&rs->r[i].get_errors,
					   memory_order_relaxed);
	phi_hist_read(&rs->r[i].get_time, &out->time);
}
