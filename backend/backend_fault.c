/*
 * backend_fault.c - the test-only "fault" driver: wraps another backend
 * and fails, slows or corrupts its calls on demand, and counts them.
 *
 * A call first takes the lock, counts itself, decides its fate from the
 * current settings (fail_all, then the fail_nth countdown), and drops the
 * lock; the sleep and the inner call run unlocked, so one slow call does
 * not serialise the others and a test may change the settings while calls
 * are in flight.
 */
#include "backend_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "phi.h"

enum { OP_COUNT = 5 };		/* the BACKEND_OP_* bits */

struct fault_backend {
	struct backend base;
	struct backend *inner;		/* owned; set at open */
	pthread_mutex_t lock;		/* protects everything below */
	struct backend_fault f;
	int countdown;			/* matching calls until fail_nth fires */
	unsigned long calls[OP_COUNT];
};

static const struct backend_ops fault_ops;

static struct fault_backend *fault_of(struct backend *be)
{
	assert(be && be->ops == &fault_ops);
	return (struct fault_backend *)be;
}

static int op_index(enum backend_op op)
{
	for (int i = 0; i < OP_COUNT; i++)
		if ((int)op == 1 << i)
			return i;
	assert(!"not a single BACKEND_OP_* bit");
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Count a call of op and decide it: 0 to go ahead, or the error to fail
 * with.  *corrupt says whether a get's result is to be damaged. */
static int fault_enter(struct fault_backend *fb, enum backend_op op,
		       bool *corrupt)
{
	unsigned ms = 0;
	int rc = 0;

	pthread_mutex_lock(&fb->lock);
	fb->calls[op_index(op)]++;
	if (!fb->f.ops_mask || (fb->f.ops_mask & (int)op)) {
		int err = fb->f.error ? fb->f.error : PHI_EUNREACHABLE;

		ms = fb->f.latency_ms;
		if (corrupt)
			*corrupt = fb->f.corrupt_get;
		if (fb->f.fail_all)
			rc = err;
		else if (fb->countdown > 0 && --fb->countdown == 0)
			rc = err;
	}
	pthread_mutex_unlock(&fb->lock);
	if (ms)
		sleep_ms(ms);
	return rc;
}

static int fault_put(struct backend *be, const char *key, const void *data,
		     size_t len)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_PUT, NULL);

	return rc ? rc : backend_put(fb->inner, key, data, len);
}

static int fault_get(struct backend *be, const char *key, uint64_t off,
		     uint64_t len, struct buf *out)
{
	struct fault_backend *fb = fault_of(be);
	bool corrupt = false;
	size_t old = buf_len(out), n;
	int rc = fault_enter(fb, BACKEND_OP_GET, &corrupt);

	if (rc == 0)
		rc = backend_get(fb->inner, key, off, len, out);
	n = buf_len(out) - old;
	/* Inverting every bit of one byte defeats any checksum worth the
	 * name, which is what a test of verification needs. */
	if (rc == 0 && corrupt && n > 0)
		((unsigned char *)buf_mut(out))[old + n / 2] ^= 0xff;
	return rc;
}

static int fault_head(struct backend *be, const char *key, uint64_t *size)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_HEAD, NULL);

	return rc ? rc : backend_head(fb->inner, key, size);
}

static int fault_list(struct backend *be, const char *prefix,
		      backend_list_fn *fn, void *ctx)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_LIST, NULL);

	return rc ? rc : backend_list(fb->inner, prefix, fn, ctx);
}

static int fault_del(struct backend *be, const char *key)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_DEL, NULL);

	return rc ? rc : backend_del(fb->inner, key);
}

static void fault_close(struct backend *be)
{
	struct fault_backend *fb = fault_of(be);

	backend_close(fb->inner);
	pthread_mutex_destroy(&fb->lock);
	free(fb);
}

static const struct backend_ops fault_ops = {
	.name = "fault",
	.put = fault_put,
	.get = fault_get,
	.head = fault_head,
	.list = fault_list,
	.del = fault_del,
	.close = fault_close,
};

int backend_fault_open(struct backend **out, struct backend *inner)
{
	struct fault_backend *fb;
	int rc;

	assert(inner);
	*out = NULL;
	fb = calloc(1, sizeof(*fb));
	rc = fb ? -pthread_mutex_init(&fb->lock, NULL) : -ENOMEM;
	if (rc < 0) {
		free(fb);
		backend_close(inner);
		return rc;
	}
	fb->base.ops = &fault_ops;
	fb->inner = inner;
	*out = &fb->base;
	return 0;
}

void backend_fault_set(struct backend *be, const struct backend_fault *f)
{
	struct fault_backend *fb = fault_of(be);
	static const struct backend_fault none;

	if (!f)
		f = &none;
	assert(f->error <= 0 && f->fail_nth >= 0);
	pthread_mutex_lock(&fb->lock);
	fb->f = *f;
	fb->countdown = f->fail_nth;
	pthread_mutex_unlock(&fb->lock);
}

unsigned long backend_fault_calls(struct backend *be, enum backend_op op)
{
	struct fault_backend *fb = fault_of(be);
	unsigned long n;

	pthread_mutex_lock(&fb->lock);
	n = fb->calls[op_index(op)];
	pthread_mutex_unlock(&fb->lock);
	return n;
}
