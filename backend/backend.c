/*
 * backend.c - region url parsing, key rules and the method wrappers.
 *
 * A url names a place; it never carries credentials (those live in a
 * credentials file), so a url with a user part is refused rather than
 * silently logged somewhere.
 *
 * Every call into a driver goes through one wrapper here: the single place
 * that checks keys, asserts what callers owe, traces at debug level and
 * restores a caller's buffer after a failed get.  Fault injection is a
 * driver (backend_fault.c) so that tests can put it anywhere in a stack.
 */
#include "backend_int.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phi.h"

/* ---- region urls ---------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

/* S3 bucket naming: 3-63 chars of [a-z0-9.-], starting and ending with a
 * letter or digit.  Stricter than some servers allow, which is what a
 * config meant to move between providers wants. */
static int bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)b[i];

		if (!(islower(ch) || isdigit(ch) || ch == '.' || ch == '-'))
			return 0;
	}
	return isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
}

static int parse_dir(const char *rest, struct backend_url *out, char *err,
		     size_t errlen)
{
	size_t n = strlen(rest);

	if (rest[0] != '/')
		return fail(err, errlen, "dir: needs an absolute path "
			    "(dir:/srv/phifs/region-a)");
	if (n >= sizeof(out->path))
		return fail(err, errlen, "path too long");
	memcpy(out->path, rest, n + 1);
	out->kind = BACKEND_DIR;
	return 0;
}

/* Copy [p, end) into prefix without the slashes at either end. */
static void set_prefix(struct backend_url *out, const char *p,
		       const char *end)
{
	while (p < end && *p == '/')
		p++;
	while (end > p && end[-1] == '/')
		end--;
	memcpy(out->prefix, p, (size_t)(end - p));
	out->prefix[end - p] = '\0';
}

static int parse_s3(const char *rest, struct backend_url *out, char *err,
		    size_t errlen)
{
	static const char bad_bucket[] = "bad bucket name (3-63 characters: "
		"lowercase letters, digits, '.' and '-')";
	size_t n = strlen(rest), blen;
	const char *slash;

	if (n == 0)
		return fail(err, errlen, "s3:// needs a bucket (s3://BUCKET/PREFIX)");
	if (n >= sizeof(out->prefix))
		return fail(err, errlen, "url too long");
	if (strchr(rest, '@'))
		return fail(err, errlen, "credentials do not belong in the url; "
			    "use credentials_file");
	slash = strchr(rest, '/');
	blen = slash ? (size_t)(slash - rest) : n;
	if (blen >= sizeof(out->bucket))
		return fail(err, errlen, bad_bucket);
	memcpy(out->bucket, rest, blen);
	out->bucket[blen] = '\0';
	if (!bucket_ok(out->bucket))
		return fail(err, errlen, bad_bucket);
	set_prefix(out, rest + blen, rest + n);
	out->kind = BACKEND_S3;
	return 0;
}

int backend_url_parse(const char *url, struct backend_url *out, char *err,
		      size_t errlen)
{
	struct backend_url tmp;
	int rc;

	/* Built aside so that out stays untouched on failure. */
	memset(&tmp, 0, sizeof(tmp));
	if (strncmp(url, "dir:", 4) == 0)
		rc = parse_dir(url + 4, &tmp, err, errlen);
	else if (strncmp(url, "s3://", 5) == 0)
		rc = parse_s3(url + 5, &tmp, err, errlen);
	else
		rc = fail(err, errlen, "unknown scheme (use dir:/PATH or "
			  "s3://BUCKET/PREFIX)");
	if (rc == 0)
		*out = tmp;
	return rc;
}

/* ---- keys ----------------------------------------------------------- */

/* Spelled out rather than isalnum(): the rule must not bend with the
 * locale. */
static int key_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
	       ch == '/' || ch == '-';
}

static int chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!key_char_ok(s[i]))
			return 0;
	return 1;
}

int backend_key_check(const char *key)
{
	size_t n;

	if (!key)
		return -EINVAL;
	n = strnlen(key, BACKEND_KEY_MAX + 1);
	if (n == 0 || n > BACKEND_KEY_MAX || !chars_ok(key, n) ||
	    strstr(key, ".."))
		return -EINVAL;
	/* Each part must be non-empty (no leading '/', "//" or trailing '/')
	 * and must not start with '.', which also keeps "." and ".." out and
	 * leaves names like ".tmp.*" to the drivers. */
	for (size_t start = 0; start <= n; start++) {
		if (start > 0 && key[start - 1] != '/')
			continue;
		if (key[start] == '/' || key[start] == '\0' ||
		    key[start] == '.')
			return -EINVAL;
	}
	return 0;
}

static int prefix_check(const char *prefix)
{
	size_t n;

	if (!prefix)
		return -EINVAL;
	n = strnlen(prefix, BACKEND_KEY_MAX + 1);
	if (n > BACKEND_KEY_MAX || !chars_ok(prefix, n) || prefix[0] == '/')
		return -EINVAL;
	return 0;
}

/* ---- wrappers ------------------------------------------------------- */

/* A call to a region may take seconds: no caller may hold a lock across
 * it (a debug build counts the locks a thread holds, see phi.h). */
#define ASSERT_NO_LOCK_HELD() assert(phi_locks_held() == 0)

/* Keys are opaque ids, so they may be logged; a key that failed the check
 * might be anything (a file name by mistake) and is not. */
static void trace(const struct backend *be, const char *op, const char *key,
		  int rc)
{
	PHI_LOG(PHI_LOG_DEBUG, "backend %s: %s %s: %s", be->ops->name, op,
		rc == -EINVAL ? "(key not shown)" : key,
		rc ? phi_strerror(rc) : "ok");
}

int backend_put(struct backend *be, const char *key, const void *data,
		size_t len)
{
	return backend_put_digest(be, key, data, len, NULL);
}

int backend_signs_body(struct backend *be, size_t len)
{
	return be->ops->signs_body ? be->ops->signs_body(be, len) : 0;
}

int backend_put_digest(struct backend *be, const char *key, const void *data,
		       size_t len, const uint8_t sha256[32])
{
	int rc;

	assert(be && be->ops && be->ops->put);
	ASSERT_NO_LOCK_HELD();
	assert(data || len == 0);
	rc = backend_key_check(key);
	if (rc == 0)
		rc = sha256 && be->ops->put_digest ?
		     be->ops->put_digest(be, key, data, len, sha256) :
		     be->ops->put(be, key, data, len);
	trace(be, "put", key, rc);
	return rc;
}

int backend_get(struct backend *be, const char *key, uint64_t off,
		uint64_t len, struct buf *out)
{
	size_t old;
	int rc;

	assert(be && be->ops && be->ops->get && out);
	ASSERT_NO_LOCK_HELD();
	old = buf_len(out);
	rc = backend_key_check(key);
	if (rc == 0)
		rc = be->ops->get(be, key, off, len, out);
	assert(buf_len(out) >= old);
	if (rc < 0)
		buf_setlen(out, old);
	trace(be, "get", key, rc);
	return rc;
}

int backend_head(struct backend *be, const char *key, uint64_t *size)
{
	uint64_t sz = 0;
	int rc;

	assert(be && be->ops && be->ops->head && size);
	ASSERT_NO_LOCK_HELD();
	rc = backend_key_check(key);
	if (rc == 0)
		rc = be->ops->head(be, key, &sz);
	if (rc == 0)
		*size = sz;
	trace(be, "head", key, rc);
	return rc;
}

int backend_list(struct backend *be, const char *prefix,
		 backend_list_fn *fn, void *ctx)
{
	int rc;

	assert(be && be->ops && be->ops->list && fn);
	ASSERT_NO_LOCK_HELD();
	rc = prefix_check(prefix);
	if (rc == 0)
		rc = be->ops->list(be, prefix, fn, ctx);
	trace(be, "list", prefix, rc);
	return rc;
}

int backend_del(struct backend *be, const char *key)
{
	int rc;

	assert(be && be->ops && be->ops->del);
	ASSERT_NO_LOCK_HELD();
	rc = backend_key_check(key);
	if (rc == 0)
		rc = be->ops->del(be, key);
	trace(be, "del", key, rc);
	return rc;
}

void backend_close(struct backend *be)
{
	if (!be)
		return;
	assert(be->ops && be->ops->close);
	be->ops->close(be);
}

const char *backend_name(const struct backend *be)
{
	assert(be && be->ops);
	return be->ops->name;
}

int backend_open(struct backend **out, const struct backend_url *url,
		 char *err, size_t errlen)
{
	int rc;

	*out = NULL;
	switch (url->kind) {
	case BACKEND_DIR:
		rc = backend_dir_open(out, url->path);
		if (rc < 0)
			snprintf(err, errlen, "cannot open region folder %s: %s",
				 url->path, phi_strerror(rc));
		return rc;
	case BACKEND_S3:
		snprintf(err, errlen, "s3 regions are not supported by this "
			 "build yet");
		return -ENOTSUP;
	}
	snprintf(err, errlen, "unknown region kind");
	return -EINVAL;
}

static bool is_set(const char *v)
{
	return v && v[0];
}

static int open_s3_region(struct backend **out,
			  const struct backend_region *r, const char *name,
			  char *err, size_t errlen)
{
	struct backend_region with = *r;	/* borrows r's strings: never
						   released */
	char *ak = NULL, *sk = NULL, why[384];
	int rc;

	snprintf(with.name, sizeof(with.name), "%s", name);
	if (is_set(r->access_key) && is_set(r->secret_key))
		return backend_s3_open(out, &with, err, errlen);
	rc = backend_s3_load_credentials(r->credentials_file, &ak, &sk, why,
					 sizeof(why));
	if (rc) {
		snprintf(err, errlen, "region %s: %s", name, why);
		return rc;
	}
	with.access_key = ak;
	with.secret_key = sk;
	rc = backend_s3_open(out, &with, err, errlen);
	backend_s3_credentials_free(ak, sk);
	return rc;
}

int backend_open_region(struct backend **out,
			const struct backend_region *r, char *err,
			size_t errlen)
{
	const char *name = r->name[0] ? r->name : "?";
	struct backend_url url;
	char why[256];
	int rc;

	*out = NULL;
	rc = backend_url_parse(r->url ? r->url : "", &url, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen, "region %s: url: %s", name, why);
		return rc;
	}
	if (url.kind == BACKEND_S3)
		return open_s3_region(out, r, name, err, errlen);
	return backend_open(out, &url, err, errlen);
}

/* ---- region settings ------------------------------------------------ */

void backend_region_init(struct backend_region *r)
{
	memset(r, 0, sizeof(*r));
	r->path_style = -1;
}

static void wipe_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

void backend_region_release(struct backend_region *r)
{
	if (!r)
		return;
	wipe_free(r->access_key);
	wipe_free(r->secret_key);
	free(r->url);
	free(r->endpoint);
	free(r->region);
	free(r->credentials_file);
	free(r->gc_credentials_file);
	free(r->ca_file);
	backend_region_init(r);
}

/* ---- key lists ------------------------------------------------------ */

int backend_keys_add(struct backend_keys *ks, const char *key,
		     uint64_t size, int src)
{
	char *copy;

	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 64;
		struct backend_key *v = realloc(ks->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ks->v = v;
		ks->cap = cap;
	}
	copy = strdup(key);
	if (!copy)
		return -ENOMEM;
	ks->v[ks->n++] = (struct backend_key){ copy, size, src };
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct backend_key *x = a, *y = b;
	int c = strcmp(x->key, y->key);	/* compares as unsigned char */

	if (c)
		return c;
	return (x->src > y->src) - (x->src < y->src);
}

void backend_keys_sort(struct backend_keys *ks)
{
	size_t w = 0;

	if (ks->n == 0)
		return;
	qsort(ks->v, ks->n, sizeof(ks->v[0]), key_cmp);
	for (size_t r = 1; r < ks->n; r++) {
		if (strcmp(ks->v[r].key, ks->v[w].key) == 0)
			free(ks->v[r].key);
		else
			ks->v[++w] = ks->v[r];
	}
	ks->n = w + 1;
}

int backend_keys_emit(const struct backend_keys *ks, backend_list_fn *fn,
		      void *ctx)
{
	for (size_t i = 0; i < ks->n; i++) {
		int rc = fn(ctx, ks->v[i].key, ks->v[i].size);

		if (rc)
			return rc;
	}
	return 0;
}

void backend_keys_release(struct backend_keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->v[i].key);
	free(ks->v);
	ks->v = NULL;
	ks->n = ks->cap = 0;
}
