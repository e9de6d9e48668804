/*
 * test_s3_driver.c - the s3 driver, through backend.h, against a real S3
 * server on 127.0.0.1 (OpenStack Swift with s3api, started by
 * tests/s3/run.sh with tests/lib/s3server.sh).
 *
 * Environment (set by run.sh):
 *   S3_PORT     the server's port on 127.0.0.1
 *   S3_REGION   its signing region
 *   S3_BUCKET   an existing, empty bucket
 *   S3_DIR      the s3server.sh instance directory
 *   S3SERVER    the path of s3server.sh (presigned urls for curl, and the
 *               last case stops the server)
 *
 * Besides the checks, prints throughput figures as TAP comments: PUT and
 * GET of 1 MiB and 4 MiB objects with 1 and 8 transfers at once, through
 * the driver and through the curl command-line tool with presigned urls.
 * Nothing is asserted about them: they are for reading.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"
#include "test.h"

#define MIB (1u << 20)

static const char *env_or_skip(const char *name)
{
	const char *v = getenv(name);

	if (!v || !v[0])
		TEST_SKIP("run through tests/s3/run.sh (S3_* not set)");
	return v;
}

static char endpoint[64];

struct opts {
	const char *name, *bucket, *prefix, *region, *secret, *access;
	const char *host;	/* endpoint host; NULL = 127.0.0.1 */
	int virtual_host;	/* bucket.host rather than host/bucket */
	uint64_t threshold, part;
	unsigned max_attempts;
};

/* A copy of v into *field, which backend_region_release() frees. */
static void set_str(char **field, const char *v)
{
	*field = strdup(v);
	ASSERT_TRUE(*field != NULL);
}

static struct backend *open_with(struct opts o)
{
	struct backend_region cfg;
	struct backend *be = NULL;
	char err[512], url[512];

	backend_region_init(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", o.name ? o.name : "a");
	snprintf(url, sizeof(url), "s3://%s/%s",
		 o.bucket ? o.bucket : env_or_skip("S3_BUCKET"),
		 o.prefix ? o.prefix : "run");
	set_str(&cfg.url, url);
	set_str(&cfg.region, o.region ? o.region : env_or_skip("S3_REGION"));
	cfg.path_style = !o.virtual_host;
	set_str(&cfg.access_key, o.access ? o.access : "test:tester");
	set_str(&cfg.secret_key, o.secret ? o.secret : "testing");
	cfg.multipart_threshold = o.threshold;
	cfg.part_size = o.part;
	cfg.max_attempts = o.max_attempts;
	snprintf(endpoint, sizeof(endpoint), "http://%s:%s",
		 o.host ? o.host : "127.0.0.1", env_or_skip("S3_PORT"));
	set_str(&cfg.endpoint, endpoint);
	if (backend_s3_open(&be, &cfg, err, sizeof(err)) != 0)
		test_diag("open: %s", err);
	backend_region_release(&cfg);
	ASSERT_TRUE(be != NULL);
	return be;
}

static struct backend *open_default(void)
{
	return open_with((struct opts){ 0 });
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic bytes, different per seed. */
static void fill(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static unsigned char *blob(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n ? n : 1);

	ASSERT_TRUE(p != NULL);
	fill(p, n, seed);
	return p;
}

/* Get [off, off + len) and compare with want. */
static void expect_get(struct backend *be, const char *key, uint64_t off,
		       uint64_t len, const void *want, size_t wantlen)
{
	struct buf out;

	buf_init(&out, SIZE_MAX);
	ASSERT_OK(backend_get(be, key, off, len, &out));
	ASSERT_EQ(buf_len(&out), wantlen);
	ASSERT_TRUE(memcmp(buf_data(&out), want, wantlen) == 0);
	buf_release(&out);
}

/* ---- parallel helper ------------------------------------------------ */

struct par {
	atomic_size_t next;
	size_t n;
	int (*fn)(void *ctx, size_t i);
	void *ctx;
	atomic_int failures;
	atomic_int first_err;
};

static void *par_main(void *arg)
{
	struct par *p = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&p->next, 1);
		int rc;

		if (i >= p->n)
			return NULL;
		rc = p->fn(p->ctx, i);
		if (rc) {
			int zero = 0;

			atomic_fetch_add(&p->failures, 1);
			atomic_compare_exchange_strong(&p->first_err, &zero, rc);
		}
	}
}

/* fn(ctx, i) for i in [0, n) on nthreads threads; returns the failures
 * (test.h's asserts are not for other threads). */
static int parallel(unsigned nthreads, size_t n,
		    int (*fn)(void *ctx, size_t i), void *ctx)
{
	struct par p = { .n = n, .fn = fn, .ctx = ctx };
	pthread_t t[16];

	for (unsigned i = 0; i < nthreads; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, par_main, &p));
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	if (p.failures)
		test_diag("%d calls failed, first with %s", p.failures,
			  phi_strerror(p.first_err));
	return p.failures;
}

/* ---- the basics ----------------------------------------------------- */

TEST(put_get_head_range)
{
	struct backend *be = open_default();
	unsigned char *data = blob(100000, 1);
	uint64_t size = 0;
	struct buf out;

	ASSERT_OK(backend_put(be, "basic/obj", data, 100000));
	ASSERT_OK(backend_head(be, "basic/obj", &size));
	ASSERT_EQ(size, 100000u);
	expect_get(be, "basic/obj", 0, 0, data, 100000);
	expect_get(be, "basic/obj", 10, 20, data + 10, 20);
	expect_get(be, "basic/obj", 99990, 0, data + 99990, 10);
	expect_get(be, "basic/obj", 99990, 50, data + 99990, 10);
	expect_get(be, "basic/obj", 100000, 0, data, 0);	/* at the end */
	expect_get(be, "basic/obj", 200000, 5, data, 0);	/* past it */

	/* a cap too small for the object: -E2BIG, out untouched */
	buf_init(&out, 1000);
	ASSERT_ERR(backend_get(be, "basic/obj", 0, 0, &out), -E2BIG);
	ASSERT_EQ(buf_len(&out), 0u);
	buf_release(&out);

	ASSERT_OK(backend_put(be, "basic/empty", "", 0));
	ASSERT_OK(backend_head(be, "basic/empty", &size));
	ASSERT_EQ(size, 0u);
	expect_get(be, "basic/empty", 0, 0, data, 0);

	/* overwrite */
	ASSERT_OK(backend_put(be, "basic/obj", "new", 3));
	expect_get(be, "basic/obj", 0, 0, "new", 3);
	ASSERT_STREQ(backend_last_error(be), "");
	free(data);
	backend_close(be);
}

/* A put whose body's SHA-256 the caller gives is signed with it, not
 * hashed again: the right digest stores the object, a wrong one is
 * refused by the server and stores nothing. */
TEST(put_with_a_known_digest)
{
	struct backend *be = open_default();
	unsigned char *data = blob(300000, 2);
	uint8_t sha[32];
	uint64_t size;

	ASSERT_TRUE(backend_signs_body(be, 300000));
	ASSERT_OK(crypt_sha256(data, 300000, sha));
	ASSERT_OK(backend_put_digest(be, "digest/right", data, 300000, sha));
	expect_get(be, "digest/right", 0, 0, data, 300000);
	sha[5] ^= 1;
	ASSERT_TRUE(backend_put_digest(be, "digest/wrong", data, 300000,
				       sha) != 0);
	ASSERT_ERR(backend_head(be, "digest/wrong", &size), -ENOENT);
	free(data);
	backend_close(be);
}

TEST(missing_objects)
{
	struct backend *be = open_default();
	uint64_t size = 99;
	struct buf out;

	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(backend_get(be, "nope/x", 0, 0, &out), -ENOENT);
	ASSERT_ERR(backend_get(be, "nope/x", 5, 5, &out), -ENOENT);
	ASSERT_ERR(backend_head(be, "nope/x", &size), -ENOENT);
	ASSERT_EQ(size, 99u);
	ASSERT_ERR(backend_del(be, "nope/x"), -ENOENT);
	ASSERT_STREQ(backend_last_error(be), "");
	buf_release(&out);
	backend_close(be);
}

TEST(del)
{
	struct backend *be = open_default();
	uint64_t size;

	ASSERT_OK(backend_put(be, "del/x", "abc", 3));
	ASSERT_OK(backend_del(be, "del/x"));
	ASSERT_ERR(backend_head(be, "del/x", &size), -ENOENT);
	ASSERT_ERR(backend_del(be, "del/x"), -ENOENT);
	backend_close(be);
}

/* ---- listing -------------------------------------------------------- */

#define MANY 1500

struct listed {
	size_t n;
	char last[BACKEND_KEY_MAX + 1];
	int out_of_order;
	uint64_t bad_sizes;
	int stop_at;		/* return 7 at this count; 0 = never */
};

static int see(void *ctx, const char *key, uint64_t size)
{
	struct listed *l = ctx;
	size_t n = strnlen(key, BACKEND_KEY_MAX);

	if (l->n && strcmp(l->last, key) >= 0)
		l->out_of_order++;
	memcpy(l->last, key, n);
	l->last[n] = '\0';
	/* "many/kNNNNN" holds NNNNN % 97 bytes */
	if (strncmp(key, "many/k", 6) == 0 &&
	    size != (uint64_t)(atoi(key + 6) % 97))
		l->bad_sizes++;
	l->n++;
	return l->stop_at && (int)l->n == l->stop_at ? 7 : 0;
}

static int put_many(void *ctx, size_t i)
{
	char key[32], data[97];

	snprintf(key, sizeof(key), "many/k%05zu", i);
	memset(data, 'a' + (int)(i % 26), sizeof(data));
	return backend_put(ctx, key, data, i % 97);
}

/* The number of keys under prefix by /usr/bin/aws (which pages on its
 * own), or -1 without it.  It prints the keys separated by blanks, or
 * "None" when there are none. */
static long aws_count(const char *prefix)
{
	char cmd[1024], word[BACKEND_KEY_MAX + 1] = "";
	FILE *f;
	long n = 0;

	if (access("/usr/bin/aws", X_OK) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "env -u AWS_CA_BUNDLE -u AWS_PROFILE "
		 "AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing "
		 "AWS_DEFAULT_REGION=%s AWS_CONFIG_FILE=/dev/null "
		 "AWS_SHARED_CREDENTIALS_FILE=/dev/null /usr/bin/aws "
		 "--endpoint-url http://127.0.0.1:%s s3api list-objects-v2 "
		 "--bucket %s --prefix %s --query 'Contents[].Key' "
		 "--output text 2>&1", getenv("S3_REGION"), getenv("S3_PORT"),
		 getenv("S3_BUCKET"), prefix);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%512s", word) == 1)
		n += strcmp(word, "None") != 0;
	if (pclose(f) != 0) {
		test_diag("aws failed: %s", word);
		return -2;
	}
	return n;
}

TEST(list_pages_and_multi_delete)
{
	struct backend *be = open_default();
	struct listed l = { 0 };
	const char **keys = calloc(MANY, sizeof(*keys));
	double t0 = now_s();
	long aws;

	ASSERT_TRUE(keys != NULL);
	ASSERT_EQ(parallel(8, MANY, put_many, be), 0);
	test_diag("put %d small objects with 8 threads in %.1f s", MANY,
		  now_s() - t0);

	t0 = now_s();
	ASSERT_OK(backend_list(be, "many/", see, &l));
	test_diag("listed them (2 pages) in %.2f s", now_s() - t0);
	ASSERT_EQ(l.n, (size_t)MANY);
	ASSERT_EQ(l.out_of_order, 0);
	ASSERT_EQ(l.bad_sizes, 0u);
	ASSERT_STREQ(l.last, "many/k01499");

	/* a narrower prefix, and fn stopping the listing */
	memset(&l, 0, sizeof(l));
	ASSERT_OK(backend_list(be, "many/k0012", see, &l));
	ASSERT_EQ(l.n, 10u);
	memset(&l, 0, sizeof(l));
	l.stop_at = 1200;
	ASSERT_EQ(backend_list(be, "many/", see, &l), 7);
	ASSERT_EQ(l.n, 1200u);

	/* somebody else's client sees the same objects */
	aws = aws_count("run/many/");
	if (aws == -1)
		test_diag("/usr/bin/aws not installed: no independent check");
	else
		ASSERT_EQ(aws, (long)MANY);

	for (size_t i = 0; i < MANY; i++) {
		char *k = malloc(16);

		ASSERT_TRUE(k != NULL);
		snprintf(k, 16, "many/k%05zu", i);
		keys[i] = k;
	}
	t0 = now_s();
	ASSERT_OK(backend_s3_del_many(be, keys, MANY));
	test_diag("multi-delete of %d objects (2 requests) in %.1f s", MANY,
		  now_s() - t0);
	memset(&l, 0, sizeof(l));
	ASSERT_OK(backend_list(be, "many/", see, &l));
	ASSERT_EQ(l.n, 0u);
	/* deleting what is gone is not an error */
	ASSERT_OK(backend_s3_del_many(be, keys, 3));
	if (aws != -1)
		ASSERT_EQ(aws_count("run/many/"), 0);
	for (size_t i = 0; i < MANY; i++)
		free((char *)keys[i]);
	free(keys);
	backend_close(be);
}

TEST(prefixes_keep_apart)
{
	struct backend *a = open_with((struct opts){ .prefix = "p1" });
	struct backend *b = open_with((struct opts){ .prefix = "p1/x" });
	struct listed l = { 0 };

	ASSERT_OK(backend_put(a, "k", "1", 1));
	ASSERT_OK(backend_put(b, "k", "2", 1));
	ASSERT_OK(backend_list(b, "", see, &l));
	ASSERT_EQ(l.n, 1u);
	ASSERT_STREQ(l.last, "k");
	memset(&l, 0, sizeof(l));
	/* a sees b's object as "x/k": b's prefix lies inside a's */
	ASSERT_OK(backend_list(a, "", see, &l));
	ASSERT_EQ(l.n, 2u);
	ASSERT_STREQ(l.last, "x/k");
	ASSERT_OK(backend_del(a, "k"));
	ASSERT_OK(backend_del(b, "k"));
	backend_close(a);
	backend_close(b);
}

/* BUCKET.localhost:PORT: the server knows "localhost" as its domain. */
TEST(virtual_host_addressing)
{
	struct backend *vh = open_with((struct opts){ .host = "localhost",
		.virtual_host = 1, .prefix = "vh" });
	struct backend *ps = open_with((struct opts){ .prefix = "vh" });
	struct listed l = { 0 };

	ASSERT_OK(backend_put(vh, "obj", "virtual", 7));
	expect_get(ps, "obj", 0, 0, "virtual", 7);
	expect_get(vh, "obj", 1, 3, "irt", 3);
	ASSERT_OK(backend_list(vh, "", see, &l));
	ASSERT_EQ(l.n, 1u);
	ASSERT_OK(backend_del(vh, "obj"));
	backend_close(vh);
	backend_close(ps);
}

/* ---- multipart ------------------------------------------------------ */

/* The ETag of run/KEY by /usr/bin/aws, "" without it. */
static void aws_etag(const char *key, char *out, size_t len)
{
	char cmd[1024];
	FILE *f;

	out[0] = '\0';
	if (access("/usr/bin/aws", X_OK) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "env -u AWS_CA_BUNDLE -u AWS_PROFILE "
		 "AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing "
		 "AWS_DEFAULT_REGION=%s AWS_CONFIG_FILE=/dev/null "
		 "AWS_SHARED_CREDENTIALS_FILE=/dev/null /usr/bin/aws "
		 "--endpoint-url http://127.0.0.1:%s s3api head-object "
		 "--bucket %s --key run/%s --query ETag --output text 2>&1",
		 getenv("S3_REGION"), getenv("S3_PORT"), getenv("S3_BUCKET"),
		 key);
	f = popen(cmd, "r");
	if (!f)
		return;
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	pclose(f);
	out[strcspn(out, "\n")] = '\0';
}

TEST(multipart)
{
	size_t n = 12 * MIB + 123;
	struct backend *be = open_with((struct opts){
		.threshold = 6 * MIB, .part = 5 * MIB });
	unsigned char *data = blob(n, 7);
	char etag[128];
	uint64_t size = 0;
	double t0 = now_s();

	ASSERT_OK(backend_put(be, "mp/big", data, n));
	test_diag("multipart put of %zu bytes (3 parts) in %.2f s", n,
		  now_s() - t0);
	ASSERT_OK(backend_head(be, "mp/big", &size));
	ASSERT_EQ(size, (uint64_t)n);
	expect_get(be, "mp/big", 0, 0, data, n);
	/* across the boundary of parts 1 and 2 */
	expect_get(be, "mp/big", 5 * MIB - 10, 20, data + 5 * MIB - 10, 20);
	expect_get(be, "mp/big", 10 * MIB, 0, data + 10 * MIB, n - 10 * MIB);
	aws_etag("mp/big", etag, sizeof(etag));
	if (etag[0]) {
		test_diag("ETag by aws: %s", etag);
		ASSERT_TRUE(strstr(etag, "-3\"") != NULL);
	}
	/* below the threshold: one PUT, a plain ETag */
	ASSERT_OK(backend_put(be, "mp/small", data, 6 * MIB));
	aws_etag("mp/small", etag, sizeof(etag));
	if (etag[0])
		ASSERT_TRUE(strchr(etag, '-') == NULL);
	ASSERT_OK(backend_del(be, "mp/big"));
	ASSERT_OK(backend_del(be, "mp/small"));
	free(data);
	backend_close(be);
}

/* ---- errors --------------------------------------------------------- */

/* Every log line at debug level, checked for secrets. */
static int leaked_lines, logged_lines;

static void check_line(enum phi_log_level level, const char *msg)
{
	static const char *const secrets[] = {
		"not-the-secret", "testing", "test:tester", "Signature=",
		"Credential=", "Authorization", "AWS4-HMAC",
	};

	(void)level;
	logged_lines++;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (strstr(msg, secrets[i])) {
			test_diag("leaked into the log: %s", msg);
			leaked_lines++;
		}
}

static void watch_log(void)
{
	leaked_lines = logged_lines = 0;
	phi_log_threshold = PHI_LOG_DEBUG;
	phi_log_set_sink(check_line);
}

static void unwatch_log(void)
{
	phi_log_threshold = PHI_LOG_NOTICE;
	phi_log_set_sink(NULL);
	ASSERT_TRUE(logged_lines > 0);
	ASSERT_EQ(leaked_lines, 0);
}

TEST(wrong_secret)
{
	struct backend *be = open_with((struct opts){ .name = "b",
		.secret = "not-the-secret" });
	struct buf out;
	uint64_t size;
	const char *msg;

	watch_log();
	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(backend_put(be, "x", "1", 1), PHI_EAUTH);
	msg = backend_last_error(be);
	test_diag("message: %s", msg);
	ASSERT_TRUE(strncmp(msg, "region b: ", 10) == 0);
	ASSERT_TRUE(strstr(msg, "check credentials_file") != NULL);
	ASSERT_TRUE(strstr(msg, "not-the-secret") == NULL);
	ASSERT_TRUE(strstr(msg, "test:tester") == NULL);
	ASSERT_ERR(backend_get(be, "x", 0, 0, &out), PHI_EAUTH);
	ASSERT_ERR(backend_head(be, "x", &size), PHI_EAUTH);
	buf_release(&out);
	backend_close(be);

	be = open_with((struct opts){ .name = "b", .access = "nobody:none" });
	ASSERT_ERR(backend_put(be, "x", "1", 1), PHI_EAUTH);
	test_diag("unknown access key: %s", backend_last_error(be));
	backend_close(be);
	unwatch_log();
}

TEST(wrong_region)
{
	struct backend *be = open_with((struct opts){ .name = "b",
		.region = "us-east-1" });
	const char *want = getenv("S3_REGION");
	struct listed l = { 0 };
	char expect[256];

	ASSERT_ERR(backend_list(be, "", see, &l), PHI_EAUTH);
	test_diag("message: %s", backend_last_error(be));
	snprintf(expect, sizeof(expect), "region b: the server expects "
		 "signing region '%s', not 'us-east-1': set region = %s",
		 want, want);
	ASSERT_STREQ(backend_last_error(be), expect);
	backend_close(be);
}

TEST(missing_bucket)
{
	struct backend *be = open_with((struct opts){ .name = "b",
		.bucket = "no-such-bucket-here" });
	struct listed l = { 0 };
	struct buf out;

	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(backend_put(be, "x", "1", 1), PHI_ENOBUCKET);
	ASSERT_STREQ(backend_last_error(be), "region b: no such bucket "
		     "'no-such-bucket-here': create it or fix the url");
	ASSERT_ERR(backend_get(be, "x", 0, 0, &out), PHI_ENOBUCKET);
	ASSERT_ERR(backend_list(be, "", see, &l), PHI_ENOBUCKET);
	buf_release(&out);
	backend_close(be);
}

/* ---- threads -------------------------------------------------------- */

static int put_get_check(void *ctx, size_t i)
{
	size_t n = 1000 + (i * 7919) % 200000;
	unsigned char *data = malloc(n);
	char key[32];
	struct buf out;
	int rc;

	if (!data)
		return -ENOMEM;
	fill(data, n, i + 100);
	snprintf(key, sizeof(key), "conc/o%03zu", i);
	buf_init(&out, SIZE_MAX);
	rc = backend_put(ctx, key, data, n);
	if (rc == 0)
		rc = backend_get(ctx, key, 0, 0, &out);
	if (rc == 0 && (buf_len(&out) != n ||
			memcmp(buf_data(&out), data, n) != 0))
		rc = PHI_EAUTHFAIL;
	if (rc == 0)
		rc = backend_del(ctx, key);
	buf_release(&out);
	free(data);
	return rc;
}

TEST(eight_threads)
{
	struct backend *be = open_default();
	double t0 = now_s();

	ASSERT_EQ(parallel(8, 160, put_get_check, be), 0);
	test_diag("160 put+get+check+del cycles on 8 threads in %.1f s",
		  now_s() - t0);
	backend_close(be);
}

/* ---- throughput (figures only) -------------------------------------- */

struct bench {
	struct backend *be;
	const unsigned char *data;
	size_t size;
	int get;
};

static int bench_one(void *ctx, size_t i)
{
	struct bench *b = ctx;
	char key[32];
	struct buf out;
	int rc;

	snprintf(key, sizeof(key), "bench/d%03zu", i);
	if (!b->get)
		return backend_put(b->be, key, b->data, b->size);
	buf_init(&out, SIZE_MAX);
	rc = backend_get(b->be, key, 0, 0, &out);
	if (rc == 0 && buf_len(&out) != b->size)
		rc = -EIO;
	buf_release(&out);
	return rc;
}

static double mibs(size_t bytes, double secs)
{
	return (double)bytes / MIB / (secs > 0 ? secs : 1e-9);
}

/* Write a curl config transferring count objects; returns its path. */
static const char *curl_config(const char *dir, size_t size, size_t count,
			       int get, const char *blobpath)
{
	static char cfg[4300];
	char cmd[8192], line[2048];
	size_t at;
	FILE *in, *out;

	snprintf(cfg, sizeof(cfg), "%s/curl.cfg", dir);
	at = (size_t)snprintf(cmd, sizeof(cmd), "bash '%s' presign '%s' %s",
			      getenv("S3SERVER"), getenv("S3_DIR"),
			      get ? "GET" : "PUT");
	for (size_t i = 0; i < count && at < sizeof(cmd) - 64; i++)
		at += (size_t)snprintf(cmd + at, sizeof(cmd) - at,
				       " /%s/run/bench/c%zu-%03zu",
				       getenv("S3_BUCKET"), size / MIB, i);
	in = popen(cmd, "r");
	out = fopen(cfg, "w");
	ASSERT_TRUE(in && out);
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = '\0';
		if (!get)
			fprintf(out, "upload-file = \"%s\"\n", blobpath);
		fprintf(out, "url = \"%s\"\noutput = \"/dev/null\"\n", line);
	}
	ASSERT_OK(pclose(in));
	fclose(out);
	return cfg;
}

/* Seconds curl took for count transfers at conc at once, <0 if failed. */
static double curl_run(const char *dir, size_t size, size_t count,
		       unsigned conc, int get, const char *blobpath)
{
	const char *cfg = curl_config(dir, size, count, get, blobpath);
	char cmd[4600], par[64] = "";
	double t0;
	int rc;

	if (conc > 1)
		snprintf(par, sizeof(par), "--parallel --parallel-max %u", conc);
	snprintf(cmd, sizeof(cmd), "curl -sS --no-progress-meter --fail -H 'Expect:' %s "
		 "-K '%s'",
		 par, cfg);
	t0 = now_s();
	rc = system(cmd);
	return rc == 0 ? now_s() - t0 : -1;
}

static void bench_size(struct backend *be, const char *dir, size_t size,
		       size_t count, unsigned conc)
{
	unsigned char *data = blob(size, size);
	struct bench b = { be, data, size, 0 };
	char blobpath[4200];
	double put, get, cput, cget;
	FILE *f;

	put = now_s();
	ASSERT_EQ(parallel(conc, count, bench_one, &b), 0);
	put = now_s() - put;
	b.get = 1;
	get = now_s();
	ASSERT_EQ(parallel(conc, count, bench_one, &b), 0);
	get = now_s() - get;

	snprintf(blobpath, sizeof(blobpath), "%s/blob", dir);
	f = fopen(blobpath, "w");
	ASSERT_TRUE(f && fwrite(data, 1, size, f) == size);
	fclose(f);
	cput = curl_run(dir, size, count, conc, 0, blobpath);
	cget = curl_run(dir, size, count, conc, 1, blobpath);
	test_diag("%zu x %zu MiB, %u at once: driver PUT %6.1f MiB/s GET "
		  "%6.1f MiB/s | curl PUT %6.1f MiB/s GET %6.1f MiB/s",
		  count, size / MIB, conc, mibs(size * count, put),
		  mibs(size * count, get),
		  cput > 0 ? mibs(size * count, cput) : 0.0,
		  cget > 0 ? mibs(size * count, cget) : 0.0);
	free(data);
}

struct names {
	char *v[256];
	size_t n;
};

static int collect(void *ctx, const char *key, uint64_t size)
{
	struct names *k = ctx;

	(void)size;
	if (k->n == 256)
		return -E2BIG;
	k->v[k->n] = strdup(key);
	return k->v[k->n++] ? 0 : -ENOMEM;
}

TEST(throughput_figures)
{
	struct backend *be = open_default();
	const char *dir = test_tmpdir();
	struct names k = { .n = 0 };

	env_or_skip("S3SERVER");
	test_diag("throughput on 127.0.0.1 (Swift s3api, one Python proxy); "
		  "curl uses presigned urls, one process per run");
	bench_size(be, dir, MIB, 32, 1);
	bench_size(be, dir, MIB, 32, 8);
	bench_size(be, dir, 4 * MIB, 16, 1);
	bench_size(be, dir, 4 * MIB, 16, 8);
	ASSERT_OK(backend_list(be, "bench/", collect, &k));
	ASSERT_EQ(k.n, 32u + 32u + 16u);
	ASSERT_OK(backend_s3_del_many(be, (const char *const *)k.v, k.n));
	for (size_t i = 0; i < k.n; i++)
		free(k.v[i]);
	backend_close(be);
}

/* ---- last: the server goes away ------------------------------------- */

TEST(server_stopped)
{
	struct backend *be = open_default();
	char cmd[4400];
	uint64_t size;
	double t0;

	ASSERT_OK(backend_put(be, "last", "x", 1));
	snprintf(cmd, sizeof(cmd), "bash '%s' stop '%s' >&2",
		 env_or_skip("S3SERVER"), env_or_skip("S3_DIR"));
	ASSERT_OK(system(cmd));
	t0 = now_s();
	ASSERT_ERR(backend_head(be, "last", &size), PHI_EUNREACHABLE);
	test_diag("PHI_EUNREACHABLE after %.2f s: %s", now_s() - t0,
		  backend_last_error(be));
	ASSERT_TRUE(now_s() - t0 < 20);
	ASSERT_TRUE(strstr(backend_last_error(be), "region a: unreachable "
			   "(connection refused") != NULL);
	backend_close(be);
}

TEST_MAIN(
	TEST_ENTRY(put_get_head_range),
	TEST_ENTRY(put_with_a_known_digest),
	TEST_ENTRY(missing_objects),
	TEST_ENTRY(del),
	TEST_ENTRY(list_pages_and_multi_delete),
	TEST_ENTRY(prefixes_keep_apart),
	TEST_ENTRY(virtual_host_addressing),
	TEST_ENTRY(multipart),
	TEST_ENTRY(wrong_secret),
	TEST_ENTRY(wrong_region),
	TEST_ENTRY(missing_bucket),
	TEST_ENTRY(eight_threads),
	TEST_ENTRY(throughput_figures),
	TEST_ENTRY(server_stopped),
)
