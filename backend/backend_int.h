/*
 * backend_int.h - what the drivers of backend/ share; nothing outside
 * backend/ includes this.
 *
 * A driver embeds `struct backend base;` as its first member, points
 * base.ops at its static ops table, and downcasts with a check of that
 * pointer.  Methods are called only through the wrappers in backend.c,
 * which have already checked the key, so drivers may assume a valid key
 * (and a prefix of valid characters) and a non-NULL out/size/fn.
 * Methods are only ever appended to struct backend_ops.
 */
#ifndef BACKEND_INT_H
#define BACKEND_INT_H

#include "backend.h"

struct backend_ops {
	const char *name;	/* "dir", "replica", "fault", later "s3" */
	int (*put)(struct backend *be, const char *key, const void *data,
		   size_t len);
	/* len 0 = to the end; appends to out and may leave a partial append
	 * behind on failure (the wrapper trims it) */
	int (*get)(struct backend *be, const char *key, uint64_t off,
		   uint64_t len, struct buf *out);
	int (*head)(struct backend *be, const char *key, uint64_t *size);
	/* every key starting with prefix, in byte order; fn returning
	 * non-zero stops with that value */
	int (*list)(struct backend *be, const char *prefix,
		    backend_list_fn *fn, void *ctx);
	int (*del)(struct backend *be, const char *key);
	void (*close)(struct backend *be);
	/* optional: put with the body's SHA-256 known (NULL: put), and
	 * whether a put of len bytes would use it (NULL: no) */
	int (*put_digest)(struct backend *be, const char *key,
			  const void *data, size_t len,
			  const uint8_t sha256[32]);
	int (*signs_body)(struct backend *be, size_t len);
};

struct backend {
	const struct backend_ops *ops;
};

/*
 * A list of keys gathered before they are handed to a backend_list_fn,
 * so that listing holds no lock and no directory open while the caller's
 * function runs.  src says where a key came from (a region index).
 */
struct backend_key {
	char *key;
	uint64_t size;
	int src;
};

struct backend_keys {
	struct backend_key *v;
	size_t n, cap;
};

/* Copy key in.  0 or -ENOMEM. */
int backend_keys_add(struct backend_keys *ks, const char *key,
		     uint64_t size, int src);

/* Sort by key in byte order and keep, of equal keys, the one with the
 * lowest src. */
void backend_keys_sort(struct backend_keys *ks);

/* Call fn for each key in order; the first non-zero return stops. */
int backend_keys_emit(const struct backend_keys *ks, backend_list_fn *fn,
		      void *ctx);

void backend_keys_release(struct backend_keys *ks);

#endif
