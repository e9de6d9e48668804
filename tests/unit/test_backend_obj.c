/*
 * test_backend_obj.c - the object interface, through backend.h only: the
 * dir driver, the replica set, the fault backend, and the buffer they
 * fill.
 *
 * Cases that need to see or damage what a region holds reach into its
 * folder directly: the dir driver's layout (key "a/b" is ROOT/a/b) is part
 * of its contract.  Threads never assert; they count what went wrong and
 * the case asserts the count afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "phi.h"
#include "test.h"

/* ---- helpers -------------------------------------------------------- */

/* A fresh folder under the case's tmpdir; static storage, one per name. */
static const char *subdir(const char *name)
{
	static char paths[4][4096];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, sizeof(paths[0]), "%s/%s", test_tmpdir(), name);
	ASSERT_OK(mkdir(p, 0700));
	return p;
}

static struct backend *open_dir(const char *path)
{
	struct backend *be = NULL;

	ASSERT_OK(backend_dir_open(&be, path));
	ASSERT_TRUE(be != NULL);
	return be;
}

static struct backend *open_fault(struct backend *inner)
{
	struct backend *be = NULL;

	ASSERT_OK(backend_fault_open(&be, inner));
	return be;
}

static struct backend *open_replica2(struct backend *a, struct backend *b)
{
	struct backend *regions[2] = { a, b }, *be = NULL;

	ASSERT_OK(backend_replica_open(&be, regions, 2));
	return be;
}

static void put_str(struct backend *be, const char *key, const char *s)
{
	ASSERT_OK(backend_put(be, key, s, strlen(s)));
}

/* The whole object as a string (objects in these cases hold text). */
static void expect_obj(struct backend *be, const char *key, const char *want)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	ASSERT_OK(backend_get(be, key, 0, 0, &b));
	ASSERT_EQ(buf_len(&b), strlen(want));
	ASSERT_STREQ(buf_data(&b), want);
	buf_release(&b);
}

static void expect_range(struct backend *be, const char *key, uint64_t off,
			 uint64_t len, const char *want)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	ASSERT_OK(backend_get(be, key, off, len, &b));
	ASSERT_STREQ(buf_data(&b), want);
	buf_release(&b);
}

static void path_of(char *dst, size_t size, const char *root,
		    const char *key)
{
	snprintf(dst, size, "%s/%s", root, key);
}

static int file_exists(const char *root, const char *key)
{
	char p[4096];
	struct stat st;

	path_of(p, sizeof(p), root, key);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void write_file(const char *root, const char *key, const char *s)
{
	char p[4096];
	FILE *f;

	path_of(p, sizeof(p), root, key);
	f = fopen(p, "w");
	ASSERT_TRUE(f != NULL);
	fputs(s, f);
	ASSERT_OK(fclose(f));
}

/* Damage one byte of an object the way a failing disk would. */
static void flip_byte(const char *root, const char *key, off_t at)
{
	char p[4096];
	unsigned char ch;
	int fd;

	path_of(p, sizeof(p), root, key);
	fd = open(p, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(pread(fd, &ch, 1, at), 1);
	ch ^= 0x20;
	ASSERT_EQ(pwrite(fd, &ch, 1, at), 1);
	ASSERT_OK(close(fd));
}

static void remove_file(const char *root, const char *key)
{
	char p[4096];

	path_of(p, sizeof(p), root, key);
	ASSERT_OK(unlink(p));
}

/* backend_list() into one string: "key:size,key:size," */
struct listing {
	char s[4096];
	int stop_after;		/* return 7 after this many keys; 0 = never */
	int seen;
};

static int list_cb(void *ctx, const char *key, uint64_t size)
{
	struct listing *l = ctx;
	size_t n = strlen(l->s);

	snprintf(l->s + n, sizeof(l->s) - n, "%s:%llu,", key,
		 (unsigned long long)size);
	l->seen++;
	return l->stop_after && l->seen == l->stop_after ? 7 : 0;
}

static void expect_list(struct backend *be, const char *prefix,
			const char *want)
{
	struct listing l = { "", 0, 0 };

	ASSERT_OK(backend_list(be, prefix, list_cb, &l));
	ASSERT_STREQ(l.s, want);
}

/* Count the directory entries of root/sub whose names start with ".tmp.". */
static int temp_files(const char *root, const char *sub)
{
	char p[4096];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(p, sizeof(p), "%s/%s", root, sub);
	d = opendir(p);
	ASSERT_TRUE(d != NULL);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, ".tmp.", 5) == 0;
	closedir(d);
	return n;
}

static uint64_t fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* What a caller of get_verified does: compare with a checksum it kept. */
struct sum {
	uint64_t want;
	int calls;
	int bad_result;		/* what to return for a bad copy */
};

static int verify_sum(void *ctx, const void *data, size_t len)
{
	struct sum *s = ctx;

	s->calls++;
	return fnv1a(data, len) == s->want ? 0 : s->bad_result;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- buf ------------------------------------------------------------ */

TEST(buf_cap_and_growth)
{
	struct buf b;

	buf_init(&b, 10);
	ASSERT_EQ(buf_len(&b), 0);
	ASSERT_STREQ(buf_data(&b), "");
	ASSERT_OK(buf_add(&b, "hello ", 6));
	ASSERT_ERR(buf_add(&b, "world", 5), -E2BIG);
	ASSERT_STREQ(buf_data(&b), "hello ");	/* unchanged by the refusal */
	ASSERT_ERR(buf_reserve(&b, 5), -E2BIG);
	ASSERT_OK(buf_reserve(&b, 4));
	memcpy((char *)buf_mut(&b) + buf_len(&b), "worl", 4);
	buf_setlen(&b, 10);
	ASSERT_STREQ(buf_data(&b), "hello worl");
	buf_setlen(&b, 5);
	ASSERT_STREQ(buf_data(&b), "hello");
	buf_reset(&b);
	ASSERT_EQ(buf_len(&b), 0);
	ASSERT_STREQ(buf_data(&b), "");
	buf_release(&b);
	ASSERT_OK(buf_add(&b, "0123456789", 10));	/* cap survives release */
	ASSERT_ERR(buf_add(&b, "x", 1), -E2BIG);
	buf_release(&b);
}

TEST(buf_large_appends)
{
	static char chunk[1000];
	struct buf b;

	memset(chunk, 'z', sizeof(chunk));
	buf_init(&b, SIZE_MAX);
	for (int i = 0; i < 1000; i++)
		ASSERT_OK(buf_add(&b, chunk, sizeof(chunk)));
	ASSERT_EQ(buf_len(&b), 1000000);
	ASSERT_EQ(((const char *)buf_data(&b))[999999], 'z');
	ASSERT_EQ(((const char *)buf_data(&b))[1000000], '\0');
	buf_release(&b);
}

/* ---- dir driver ----------------------------------------------------- */

TEST(dir_open_errors)
{
	const char *root = test_tmpdir();
	struct backend *be = (struct backend *)1;
	char p[4096];

	snprintf(p, sizeof(p), "%s/absent", root);
	ASSERT_ERR(backend_dir_open(&be, p), -ENOENT);
	ASSERT_TRUE(be == NULL);
	write_file(root, "plain", "x");
	snprintf(p, sizeof(p), "%s/plain", root);
	ASSERT_ERR(backend_dir_open(&be, p), -ENOTDIR);
	if (geteuid() == 0) {
		test_diag("running as root: -EACCES not checked");
		return;
	}
	snprintf(p, sizeof(p), "%s/ro", root);
	ASSERT_OK(mkdir(p, 0500));
	ASSERT_ERR(backend_dir_open(&be, p), -EACCES);
}

TEST(open_by_url)
{
	struct backend_url url;
	struct backend *be = NULL;
	char spec[4200], err[256] = "";

	snprintf(spec, sizeof(spec), "dir:%s", test_tmpdir());
	ASSERT_OK(backend_url_parse(spec, &url, err, sizeof(err)));
	ASSERT_OK(backend_open(&be, &url, err, sizeof(err)));
	ASSERT_STREQ(backend_name(be), "dir");
	backend_close(be);

	ASSERT_OK(backend_url_parse("dir:/nonexistent/phifs-test", &url, err,
				    sizeof(err)));
	ASSERT_ERR(backend_open(&be, &url, err, sizeof(err)), -ENOENT);
	ASSERT_TRUE(be == NULL);
	ASSERT_TRUE(strstr(err, "/nonexistent/phifs-test") != NULL);

	ASSERT_OK(backend_url_parse("s3://bucket/p", &url, err, sizeof(err)));
	ASSERT_ERR(backend_open(&be, &url, err, sizeof(err)), -ENOTSUP);
	ASSERT_STREQ(err, "s3 regions are not supported by this build yet");
	ASSERT_TRUE(be == NULL);
	backend_close(NULL);
}

TEST(dir_put_get)
{
	struct backend *be = open_dir(test_tmpdir());
	struct buf b;

	put_str(be, "obj1", "first object");
	expect_obj(be, "obj1", "first object");
	put_str(be, "obj1", "replaced");
	expect_obj(be, "obj1", "replaced");
	ASSERT_OK(backend_put(be, "empty", NULL, 0));
	expect_obj(be, "empty", "");

	/* get appends to what the buffer already holds */
	buf_init(&b, 100);
	ASSERT_OK(buf_add(&b, "<<", 2));
	ASSERT_OK(backend_get(be, "obj1", 0, 0, &b));
	ASSERT_STREQ(buf_data(&b), "<<replaced");
	buf_release(&b);
	backend_close(be);
}

TEST(dir_range_get)
{
	struct backend *be = open_dir(test_tmpdir());

	put_str(be, "r", "0123456789");
	expect_range(be, "r", 0, 0, "0123456789");
	expect_range(be, "r", 3, 4, "3456");
	expect_range(be, "r", 3, 0, "3456789");
	expect_range(be, "r", 8, 100, "89");	/* cut at the end */
	expect_range(be, "r", 9, 1, "9");
	expect_range(be, "r", 10, 0, "");	/* at the end: nothing */
	expect_range(be, "r", 10, 5, "");
	expect_range(be, "r", 1000, 5, "");	/* past it: nothing */
	expect_range(be, "r", UINT64_MAX, UINT64_MAX, "");
	expect_range(be, "r", 2, UINT64_MAX, "23456789");
	backend_close(be);
}

TEST(dir_get_over_cap)
{
	struct backend *be = open_dir(test_tmpdir());
	struct buf b;

	put_str(be, "big", "0123456789abcdef");
	buf_init(&b, 8);
	ASSERT_OK(buf_add(&b, "ab", 2));
	ASSERT_ERR(backend_get(be, "big", 0, 0, &b), -E2BIG);
	ASSERT_STREQ(buf_data(&b), "ab");		/* left as it was */
	ASSERT_OK(backend_get(be, "big", 10, 6, &b));	/* a range fits */
	ASSERT_STREQ(buf_data(&b), "ababcdef");
	buf_release(&b);
	backend_close(be);
}

TEST(dir_head)
{
	struct backend *be = open_dir(test_tmpdir());
	uint64_t size = 42;

	put_str(be, "h/x", "12345");
	ASSERT_OK(backend_head(be, "h/x", &size));
	ASSERT_EQ(size, 5);
	ASSERT_OK(backend_put(be, "h/zero", "", 0));
	ASSERT_OK(backend_head(be, "h/zero", &size));
	ASSERT_EQ(size, 0);
	size = 42;
	ASSERT_ERR(backend_head(be, "h/y", &size), -ENOENT);
	ASSERT_EQ(size, 42);			/* untouched on failure */
	backend_close(be);
}

TEST(dir_missing)
{
	const char *root = test_tmpdir();
	struct backend *be = open_dir(root);
	uint64_t size;
	struct buf b;

	buf_init(&b, 100);
	ASSERT_OK(buf_add(&b, "keep", 4));
	ASSERT_ERR(backend_get(be, "nope", 0, 0, &b), -ENOENT);
	ASSERT_ERR(backend_get(be, "no/such/dir", 0, 0, &b), -ENOENT);
	ASSERT_STREQ(buf_data(&b), "keep");
	ASSERT_ERR(backend_head(be, "nope", &size), -ENOENT);
	ASSERT_ERR(backend_del(be, "nope"), -ENOENT);
	ASSERT_ERR(backend_del(be, "no/such/dir"), -ENOENT);

	/* a folder is not an object, nor is a path through a file */
	put_str(be, "d/obj", "x");
	ASSERT_ERR(backend_get(be, "d", 0, 0, &b), -ENOENT);
	ASSERT_ERR(backend_head(be, "d", &size), -ENOENT);
	ASSERT_ERR(backend_del(be, "d"), -ENOENT);
	ASSERT_ERR(backend_get(be, "d/obj/x", 0, 0, &b), -ENOENT);
	ASSERT_ERR(backend_head(be, "d/obj/x", &size), -ENOENT);
	ASSERT_ERR(backend_del(be, "d/obj/x"), -ENOENT);
	ASSERT_ERR(backend_put(be, "d/obj/x", "y", 1), -ENOTDIR);
	ASSERT_STREQ(buf_data(&b), "keep");
	buf_release(&b);
	backend_close(be);
}

/* After put the object is an ordinary file at ROOT/KEY with the data, the
 * folders made on demand, and no temporary file left behind. */
TEST(dir_layout_after_put)
{
	const char *root = test_tmpdir();
	struct backend *be = open_dir(root);
	char p[4096], got[64] = "";
	struct stat st;
	FILE *f;

	put_str(be, "aa/bb/cc/obj-1", "durable bytes");
	path_of(p, sizeof(p), root, "aa/bb/cc/obj-1");
	ASSERT_OK(stat(p, &st));
	ASSERT_TRUE(S_ISREG(st.st_mode));
	ASSERT_EQ(st.st_size, 13);
	ASSERT_EQ(st.st_mode & 077, 0);		/* objects are private */
	f = fopen(p, "r");
	ASSERT_TRUE(f != NULL);
	ASSERT_TRUE(fgets(got, sizeof(got), f) != NULL);
	fclose(f);
	ASSERT_STREQ(got, "durable bytes");
	ASSERT_EQ(temp_files(root, "aa/bb/cc"), 0);
	ASSERT_EQ(temp_files(root, "."), 0);
	put_str(be, "top", "t");
	ASSERT_TRUE(file_exists(root, "top"));
	ASSERT_EQ(temp_files(root, "."), 0);
	backend_close(be);
}

TEST(dir_list)
{
	const char *root = test_tmpdir();
	struct backend *be = open_dir(root);
	static const char *keys[] = { "ab", "a_b", "a/b", "a.b", "a-b", "B",
				      "a0", "x/y/z", "x/y-1", "0" };
	char p[4096];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put_str(be, keys[i], keys[i]);
	/* what is not a key stays out: temporaries, dot files, odd names */
	write_file(root, ".tmp.999.1", "partial");
	write_file(root, "x/.tmp.999.2", "partial");
	write_file(root, "x/.hidden", "h");
	write_file(root, "bad name", "b");
	snprintf(p, sizeof(p), "%s/lost+found", root);
	ASSERT_OK(mkdir(p, 0700));
	write_file(root, "lost+found/k", "k");

	/* strcmp order: '-' < '.' < '/' < digits < upper < '_' < lower */
	expect_list(be, "", "0:1,B:1,a-b:3,a.b:3,a/b:3,a0:2,a_b:3,ab:2,"
		    "x/y-1:5,x/y/z:5,");
	backend_close(be);
}

TEST(dir_list_prefix)
{
	struct backend *be = open_dir(test_tmpdir());
	struct listing l = { "", 2, 0 };

	put_str(be, "blk/aa/1", "1");
	put_str(be, "blk/ab/2", "22");
	put_str(be, "blk/b", "333");
	put_str(be, "blkx", "4444");
	put_str(be, "meta/j1", "5");
	expect_list(be, "blk", "blk/aa/1:1,blk/ab/2:2,blk/b:3,blkx:4,");
	expect_list(be, "blk/", "blk/aa/1:1,blk/ab/2:2,blk/b:3,");
	expect_list(be, "blk/a", "blk/aa/1:1,blk/ab/2:2,");
	expect_list(be, "blk/aa/", "blk/aa/1:1,");
	expect_list(be, "blk/aa/1", "blk/aa/1:1,");
	expect_list(be, "meta/j1x", "");
	expect_list(be, "zzz", "");
	/* a non-zero return stops the listing and comes back */
	ASSERT_EQ(backend_list(be, "", list_cb, &l), 7);
	ASSERT_STREQ(l.s, "blk/aa/1:1,blk/ab/2:2,");
	backend_close(be);
}

TEST(dir_del)
{
	const char *root = test_tmpdir();
	struct backend *be = open_dir(root);
	struct stat st;
	char p[4096];

	put_str(be, "d/e/obj", "x");
	put_str(be, "d/other", "y");
	ASSERT_OK(backend_del(be, "d/e/obj"));
	ASSERT_TRUE(!file_exists(root, "d/e/obj"));
	ASSERT_ERR(backend_del(be, "d/e/obj"), -ENOENT);
	expect_list(be, "", "d/other:1,");
	path_of(p, sizeof(p), root, "d/e");
	ASSERT_OK(stat(p, &st));		/* empty folders stay */
	put_str(be, "d/e/obj", "again");	/* and are reused */
	expect_obj(be, "d/e/obj", "again");
	backend_close(be);
}

TEST(key_rules)
{
	static const char *bad[] = {
		"", "/a", "a/", "a//b", "..", "a/../b", "a..b", ".", "./a",
		"a/./b", ".tmp.1", "a/.tmp.1", ".hidden", "a b", "a\\b",
		"a:b", "a*", "é", "a\nb", "a+b",
	};
	static const char *good[] = {
		"q", "A", "0", "a.b", "a_b", "a-b", "a/b/c", "blk/00/ff.1",
		"a.", "a/b.", "-", "_x",
	};
	struct backend *be = open_dir(test_tmpdir());
	char key[BACKEND_KEY_MAX + 2];
	struct listing l = { "", 0, 0 };
	struct buf b;
	uint64_t size;

	buf_init(&b, 100);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_ERR(backend_key_check(bad[i]), -EINVAL);
		ASSERT_ERR(backend_put(be, bad[i], "x", 1), -EINVAL);
		ASSERT_ERR(backend_get(be, bad[i], 0, 0, &b), -EINVAL);
		ASSERT_ERR(backend_head(be, bad[i], &size), -EINVAL);
		ASSERT_ERR(backend_del(be, bad[i]), -EINVAL);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ASSERT_OK(backend_key_check(good[i]));
		ASSERT_OK(backend_put(be, good[i], "x", 1));
	}
	ASSERT_ERR(backend_key_check(NULL), -EINVAL);

	/* 512 bytes is the most; parts of 127 keep under NAME_MAX */
	memset(key, 'k', BACKEND_KEY_MAX);
	for (int i = 127; i < BACKEND_KEY_MAX - 1; i += 128)
		key[i] = '/';
	key[BACKEND_KEY_MAX] = '\0';
	ASSERT_OK(backend_key_check(key));
	ASSERT_OK(backend_put(be, key, "long", 4));
	expect_obj(be, key, "long");
	strcat(key, "k");
	ASSERT_ERR(backend_key_check(key), -EINVAL);
	ASSERT_ERR(backend_put(be, key, "x", 1), -EINVAL);

	/* prefixes: may be empty or end in '/', nothing else changes */
	ASSERT_ERR(backend_list(be, "/a", list_cb, &l), -EINVAL);
	ASSERT_ERR(backend_list(be, "a b", list_cb, &l), -EINVAL);
	ASSERT_OK(backend_list(be, "a/", list_cb, &l));
	ASSERT_STREQ(l.s, "a/b.:1,a/b/c:1,");
	ASSERT_EQ(buf_len(&b), 0);
	buf_release(&b);
	backend_close(be);
}

/* ---- dir driver under concurrency ----------------------------------- */

#define V_A_LEN 40000
#define V_B_LEN 70000

struct race {
	struct backend *be;
	atomic_int writers_left;
	atomic_int torn;	/* reads that saw neither version whole */
	atomic_int errors;
	atomic_int reads;
	char *a, *b;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < 25; i++) {
		const char *v = i % 2 ? r->a : r->b;
		size_t n = i % 2 ? V_A_LEN : V_B_LEN;

		if (backend_put(r->be, "hot/obj", v, n) < 0)
			atomic_fetch_add(&r->errors, 1);
	}
	atomic_fetch_sub(&r->writers_left, 1);
	return NULL;
}

static int whole_version(const struct race *r, const struct buf *b)
{
	if (buf_len(b) == V_A_LEN)
		return memcmp(buf_data(b), r->a, V_A_LEN) == 0;
	if (buf_len(b) == V_B_LEN)
		return memcmp(buf_data(b), r->b, V_B_LEN) == 0;
	return 0;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	struct buf b;

	buf_init(&b, 1 << 20);
	while (atomic_load(&r->writers_left) > 0) {
		buf_reset(&b);
		if (backend_get(r->be, "hot/obj", 0, 0, &b) < 0)
			atomic_fetch_add(&r->errors, 1);
		else if (!whole_version(r, &b))
			atomic_fetch_add(&r->torn, 1);
		atomic_fetch_add(&r->reads, 1);
	}
	buf_release(&b);
	return NULL;
}

TEST(dir_overwrite_while_reading)
{
	static char a[V_A_LEN], b[V_B_LEN];
	const char *root = test_tmpdir();
	struct race r = { .be = open_dir(root), .a = a, .b = b };
	pthread_t w[2], rd[2];

	memset(a, 'A', sizeof(a));
	memset(b, 'B', sizeof(b));
	a[V_A_LEN / 2] = 'a';		/* not uniform: order matters too */
	b[V_B_LEN / 3] = 'b';
	ASSERT_OK(backend_put(r.be, "hot/obj", a, V_A_LEN));
	atomic_store(&r.writers_left, 2);
	for (int i = 0; i < 2; i++) {
		ASSERT_OK(pthread_create(&w[i], NULL, race_writer, &r));
		ASSERT_OK(pthread_create(&rd[i], NULL, race_reader, &r));
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(w[i], NULL);
		pthread_join(rd[i], NULL);
	}
	test_diag("%d reads during 50 overwrites", atomic_load(&r.reads));
	ASSERT_EQ(atomic_load(&r.errors), 0);
	ASSERT_EQ(atomic_load(&r.torn), 0);
	ASSERT_TRUE(atomic_load(&r.reads) > 0);
	ASSERT_EQ(temp_files(root, "hot"), 0);
	backend_close(r.be);
}

struct fanin {
	struct backend *be;
	int id;
	int rc;
};

/* Several threads make the same new folders at once. */
static void *fanin_put(void *arg)
{
	struct fanin *f = arg;
	char key[64];

	f->rc = 0;
	for (int i = 0; i < 10 && f->rc == 0; i++) {
		snprintf(key, sizeof(key), "n/e/w%d/t%d-%d", i, f->id, i);
		f->rc = backend_put(f->be, key, key, strlen(key));
	}
	return NULL;
}

TEST(dir_concurrent_mkdir)
{
	struct backend *be = open_dir(test_tmpdir());
	struct fanin f[4];
	pthread_t t[4];
	struct listing l = { "", 0, 0 };

	for (int i = 0; i < 4; i++) {
		f[i] = (struct fanin){ be, i, -1 };
		ASSERT_OK(pthread_create(&t[i], NULL, fanin_put, &f[i]));
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ASSERT_OK(f[i].rc);
	}
	ASSERT_OK(backend_list(be, "n/e/", list_cb, &l));
	ASSERT_EQ(l.seen, 40);
	expect_obj(be, "n/e/w3/t2-3", "n/e/w3/t2-3");
	backend_close(be);
}

/* ---- a dir region follows its path ---------------------------------- */

/* Move root away to root.old (gone if gone), then make an empty root. */
static void swap_for_empty(const char *root, const char *gone)
{
	ASSERT_OK(rename(root, gone));
	ASSERT_OK(mkdir(root, 0700));
}

static int count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	ASSERT_TRUE(d != NULL);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Every method refuses a folder that is not the region that was opened,
 * and writes nothing anywhere. */
static void expect_replaced(struct backend *be, const char *key)
{
	struct listing l = { "", 0, 0 };
	struct buf b;
	uint64_t size;

	buf_init(&b, 1 << 20);
	ASSERT_ERR(backend_put(be, "new/obj", "x", 1), PHI_EREPLACED);
	ASSERT_ERR(backend_get(be, key, 0, 0, &b), PHI_EREPLACED);
	ASSERT_ERR(backend_head(be, key, &size), PHI_EREPLACED);
	ASSERT_ERR(backend_list(be, "", list_cb, &l), PHI_EREPLACED);
	ASSERT_ERR(backend_del(be, key), PHI_EREPLACED);
	ASSERT_EQ(l.seen, 0);
	buf_release(&b);
}

TEST(dir_moved_away_is_not_written)
{
	const char *root = subdir("region");
	char gone[4000];
	struct backend *be = open_dir(root);

	snprintf(gone, sizeof(gone), "%.3990s.old", root);
	put_str(be, "d/one", "before");
	swap_for_empty(root, gone);
	expect_replaced(be, "d/one");
	/* nothing went into the folder moved away, nor into the new one */
	ASSERT_TRUE(!file_exists(gone, "new/obj"));
	ASSERT_EQ(count_entries(root), 0);
	/* moved back: the region again */
	ASSERT_OK(rmdir(root));
	ASSERT_OK(rename(gone, root));
	expect_obj(be, "d/one", "before");
	put_str(be, "d/two", "after");
	ASSERT_TRUE(file_exists(root, "d/two"));
	backend_close(be);
}

TEST(dir_missing_folder_is_replaced)
{
	const char *root = subdir("region");
	char gone[4000];
	struct backend *be = open_dir(root);
	uint64_t size;

	snprintf(gone, sizeof(gone), "%.3990s.old", root);
	ASSERT_OK(rename(root, gone));
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EREPLACED);
	ASSERT_ERR(backend_put(be, "k", "x", 1), PHI_EREPLACED);
	ASSERT_TRUE(!file_exists(gone, "k"));
	backend_close(be);
}

TEST(dir_marked_region_recreated)
{
	const char *root = subdir("region");
	char gone[4000];
	struct backend *be;

	snprintf(gone, sizeof(gone), "%.3990s.old", root);
	write_file(root, BACKEND_DIR_MARKER, "sb");
	be = open_dir(root);
	put_str(be, "d/one", "before");
	/* deleted and made again: empty, so not the region */
	swap_for_empty(root, gone);
	expect_replaced(be, BACKEND_DIR_MARKER);
	ASSERT_EQ(count_entries(root), 0);
	/* put back (a repair, a copy): taken, and written there */
	write_file(root, BACKEND_DIR_MARKER, "sb");
	put_str(be, "d/two", "after");
	ASSERT_TRUE(file_exists(root, "d/two"));
	ASSERT_TRUE(!file_exists(gone, "d/two"));
	expect_list(be, "d/", "d/two:5,");
	backend_close(be);
}

TEST(dir_marked_region_emptied_in_place)
{
	const char *root = subdir("region");
	struct backend *be;
	struct buf b;

	write_file(root, BACKEND_DIR_MARKER, "sb");
	be = open_dir(root);
	put_str(be, "d/one", "before");
	remove_file(root, BACKEND_DIR_MARKER);
	remove_file(root, "d/one");
	buf_init(&b, 100);
	ASSERT_ERR(backend_get(be, "d/one", 0, 0, &b), PHI_EREPLACED);
	ASSERT_ERR(backend_put(be, "d/two", "x", 1), PHI_EREPLACED);
	ASSERT_TRUE(!file_exists(root, "d/two"));
	buf_release(&b);
	backend_close(be);
}

TEST(dir_relative_path_survives_chdir)
{
	const char *root = subdir("region");
	char cwd[4096];
	struct backend *be = NULL;

	ASSERT_TRUE(getcwd(cwd, sizeof(cwd)) != NULL);
	ASSERT_OK(chdir(test_tmpdir()));
	ASSERT_OK(backend_dir_open(&be, "region"));
	ASSERT_OK(chdir("/"));
	put_str(be, "k", "v");
	ASSERT_OK(chdir(cwd));
	ASSERT_TRUE(file_exists(root, "k"));
	backend_close(be);
}

/* ---- replica -------------------------------------------------------- */

TEST(replica_shape)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *one = open_dir(r0), *be = NULL;
	struct backend *regions[1] = { NULL };

	/* any backend is a set of one */
	ASSERT_EQ(backend_replica_count(one), 1);
	ASSERT_TRUE(backend_replica_region(one, 0) == one);
	ASSERT_ERR(backend_replica_open(&be, regions, 0), -EINVAL);
	ASSERT_TRUE(be == NULL);

	be = open_replica2(one, open_dir(r1));
	ASSERT_STREQ(backend_name(be), "replica");
	ASSERT_EQ(backend_replica_count(be), 2);
	ASSERT_TRUE(backend_replica_region(be, 0) == one);
	ASSERT_STREQ(backend_name(backend_replica_region(be, 1)), "dir");
	backend_close(be);			/* closes both regions */
}

TEST(replica_put_everywhere_get_fails_over)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *be = open_replica2(open_dir(r0), open_dir(r1));
	int bad = -1;
	struct buf b;

	put_str(be, "blk/1", "payload");
	ASSERT_TRUE(file_exists(r0, "blk/1"));
	ASSERT_TRUE(file_exists(r1, "blk/1"));
	remove_file(r0, "blk/1");
	expect_obj(be, "blk/1", "payload");
	buf_init(&b, 100);
	ASSERT_OK(backend_replica_get_verified(be, "blk/1", 0, 0, &b, NULL,
					       NULL, &bad));
	ASSERT_STREQ(buf_data(&b), "payload");
	ASSERT_EQ(bad, 1);			/* region 0 lacks it */
	buf_reset(&b);
	ASSERT_OK(backend_replica_get_verified(be, "blk/1", 3, 3, &b, NULL,
					       NULL, &bad));
	ASSERT_STREQ(buf_data(&b), "loa");
	buf_release(&b);
	backend_close(be);
}

TEST(replica_verified_skips_corrupt_copy)
{
	static const char data[] = "sealed block contents, encrypted";
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *be = open_replica2(open_dir(r0), open_dir(r1));
	struct sum s = { fnv1a(data, strlen(data)), 0, PHI_EAUTHFAIL };
	int bad = -1;
	struct buf b;

	put_str(be, "obj", data);
	flip_byte(r0, "obj", 5);
	buf_init(&b, 100);
	ASSERT_OK(buf_add(&b, "x", 1));
	ASSERT_OK(backend_replica_get_verified(be, "obj", 0, 0, &b,
					       verify_sum, &s, &bad));
	ASSERT_STREQ(buf_data(&b), "xsealed block contents, encrypted");
	ASSERT_EQ(bad, 1);
	ASSERT_EQ(s.calls, 2);

	/* every copy bad: verify's code, both marked, out untouched */
	flip_byte(r1, "obj", 9);
	buf_reset(&b);
	ASSERT_ERR(backend_replica_get_verified(be, "obj", 0, 0, &b,
						verify_sum, &s, &bad),
		   PHI_EAUTHFAIL);
	ASSERT_EQ(bad, 3);
	ASSERT_EQ(buf_len(&b), 0);
	/* a positive "no" from verify becomes PHI_EAUTHFAIL */
	s.bad_result = 1;
	ASSERT_ERR(backend_replica_get_verified(be, "obj", 0, 0, &b,
						verify_sum, &s, &bad),
		   PHI_EAUTHFAIL);
	/* bad in one, missing in the other: still a bad copy, not -ENOENT */
	remove_file(r1, "obj");
	ASSERT_ERR(backend_replica_get_verified(be, "obj", 0, 0, &b,
						verify_sum, &s, &bad),
		   PHI_EAUTHFAIL);
	ASSERT_EQ(bad, 3);
	buf_release(&b);
	backend_close(be);
}

TEST(get_verified_on_single_backend)
{
	struct backend *be = open_dir(test_tmpdir());
	struct sum s = { fnv1a("abc", 3), 0, PHI_EAUTHFAIL };
	int bad = -1;
	struct buf b;

	buf_init(&b, 100);
	put_str(be, "k", "abc");
	ASSERT_OK(backend_replica_get_verified(be, "k", 0, 0, &b, verify_sum,
					       &s, &bad));
	ASSERT_EQ(bad, 0);
	put_str(be, "k", "abd");
	buf_reset(&b);
	ASSERT_ERR(backend_replica_get_verified(be, "k", 0, 0, &b, verify_sum,
						&s, &bad), PHI_EAUTHFAIL);
	ASSERT_EQ(bad, 1);
	ASSERT_ERR(backend_replica_get_verified(be, "gone", 0, 0, &b, NULL,
						NULL, &bad), -ENOENT);
	ASSERT_EQ(bad, 1);
	ASSERT_ERR(backend_replica_get_verified(be, "/bad", 0, 0, &b, NULL,
						NULL, &bad), -EINVAL);
	ASSERT_EQ(bad, 0);
	buf_release(&b);
	backend_close(be);
}

TEST(replica_region_down)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *f0 = open_fault(open_dir(r0));
	struct backend *be = open_replica2(f0, open_dir(r1));
	struct backend_fault down = { .fail_all = 1 };
	unsigned long gets;
	uint64_t size;
	int bad = -1;
	struct buf b;

	backend_fault_set(f0, &down);
	ASSERT_ERR(backend_put(be, "k1", "v1", 2), PHI_EUNREACHABLE);
	ASSERT_TRUE(!file_exists(r0, "k1"));
	ASSERT_TRUE(file_exists(r1, "k1"));	/* the other region got it */
	ASSERT_OK(backend_head(backend_replica_region(be, 1), "k1", &size));

	/* region 0 failed last, so reads go to region 1 first */
	gets = backend_fault_calls(f0, BACKEND_OP_GET);
	buf_init(&b, 100);
	ASSERT_OK(backend_replica_get_verified(be, "k1", 0, 0, &b, NULL, NULL,
					       &bad));
	ASSERT_STREQ(buf_data(&b), "v1");
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(backend_fault_calls(f0, BACKEND_OP_GET), gets);
	ASSERT_OK(backend_head(be, "k1", &size));
	ASSERT_EQ(size, 2);

	/* back up: a successful call makes it first in line again */
	backend_fault_set(f0, NULL);
	put_str(be, "k2", "v2");
	expect_obj(be, "k2", "v2");
	ASSERT_EQ(backend_fault_calls(f0, BACKEND_OP_GET), gets + 1);
	buf_release(&b);
	backend_close(be);
}

TEST(replica_get_fails_over_on_error)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *f0 = open_fault(open_dir(r0));
	struct backend *be = open_replica2(f0, open_dir(r1));
	struct backend_fault f = { .fail_nth = 1, .error = -EIO };

	put_str(be, "k", "value");
	backend_fault_set(f0, &f);
	expect_obj(be, "k", "value");		/* region 0 said EIO */
	ASSERT_EQ(backend_fault_calls(f0, BACKEND_OP_GET), 1);
	backend_close(be);
}

/* When every region fails, the answer that helps the caller most. */
TEST(replica_error_ranking)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *f0 = open_fault(open_dir(r0));
	struct backend *f1 = open_fault(open_dir(r1));
	struct backend *be = open_replica2(f0, f1);
	struct backend_fault eio = { .fail_all = 1, .error = -EIO };
	struct backend_fault down = { .fail_all = 1 };
	struct sum s = { 0, 0, PHI_EAUTHFAIL };
	int bad = -1;
	uint64_t size;
	struct buf b;

	buf_init(&b, 100);
	ASSERT_ERR(backend_get(be, "none", 0, 0, &b), -ENOENT);
	ASSERT_ERR(backend_head(be, "none", &size), -ENOENT);
	backend_fault_set(f0, &down);
	ASSERT_ERR(backend_get(be, "none", 0, 0, &b), PHI_EUNREACHABLE);
	ASSERT_ERR(backend_head(be, "none", &size), PHI_EUNREACHABLE);
	backend_fault_set(f1, &eio);
	ASSERT_ERR(backend_replica_get_verified(be, "none", 0, 0, &b, NULL,
						NULL, &bad), -EIO);
	ASSERT_EQ(bad, 0);			/* nobody said "missing" */

	/* a bad copy in one region, the other lacks it */
	backend_fault_set(f0, NULL);
	backend_fault_set(f1, NULL);
	ASSERT_OK(backend_put(f0, "k", "abc", 3));
	ASSERT_ERR(backend_replica_get_verified(be, "k", 0, 0, &b, verify_sum,
						&s, &bad), PHI_EAUTHFAIL);
	ASSERT_EQ(bad, 3);
	buf_release(&b);
	backend_close(be);
}

TEST(replica_list_union)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *f0 = open_fault(open_dir(r0));
	struct backend *be = open_replica2(f0, open_dir(r1));
	struct backend_fault down = { .fail_all = 1 };
	struct listing l = { "", 0, 0 };

	put_str(backend_replica_region(be, 0), "a", "1");
	put_str(backend_replica_region(be, 1), "b", "22");
	put_str(be, "c", "333");
	put_str(backend_replica_region(be, 1), "a", "4444");
	/* region 0's size wins for a key both hold */
	expect_list(be, "", "a:1,b:2,c:3,");
	expect_list(be, "b", "b:2,");
	backend_fault_set(f0, &down);
	expect_list(be, "", "a:4,b:2,c:3,");	/* what answered */
	backend_fault_set(backend_replica_region(be, 0), NULL);
	backend_close(be);

	/* no region answering is an error */
	f0 = open_fault(open_dir(subdir("r2")));
	be = open_replica2(f0, open_fault(open_dir(subdir("r3"))));
	backend_fault_set(f0, &down);
	backend_fault_set(backend_replica_region(be, 1), &down);
	ASSERT_ERR(backend_list(be, "", list_cb, &l), PHI_EUNREACHABLE);
	ASSERT_EQ(l.seen, 0);
	backend_close(be);
}

TEST(replica_del)
{
	const char *r0 = subdir("r0"), *r1 = subdir("r1");
	struct backend *f0 = open_fault(open_dir(r0));
	struct backend *be = open_replica2(f0, open_dir(r1));
	struct backend_fault down = { .fail_all = 1 };

	put_str(be, "k", "v");
	ASSERT_OK(backend_del(be, "k"));
	ASSERT_TRUE(!file_exists(r0, "k") && !file_exists(r1, "k"));
	ASSERT_ERR(backend_del(be, "k"), -ENOENT);
	put_str(backend_replica_region(be, 1), "half", "v");
	ASSERT_OK(backend_del(be, "half"));	/* converges */
	put_str(be, "k", "v");
	backend_fault_set(f0, &down);
	ASSERT_ERR(backend_del(be, "k"), PHI_EUNREACHABLE);
	ASSERT_TRUE(file_exists(r0, "k"));
	ASSERT_TRUE(!file_exists(r1, "k"));
	backend_close(be);
}

struct mixer {
	struct backend *be;
	int id;
	atomic_int *failures;
};

/* Puts, verified gets and lists from several threads while a region
 * flaps. */
static void *mixer_run(void *arg)
{
	struct mixer *m = arg;
	char key[32], val[32];
	struct buf b;
	int bad;

	buf_init(&b, 100);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "m/%d/%d", m->id, i);
		snprintf(val, sizeof(val), "value %d %d", m->id, i);
		/* the put may fail in region 0, never in region 1 */
		backend_put(m->be, key, val, strlen(val));
		buf_reset(&b);
		if (backend_replica_get_verified(m->be, key, 0, 0, &b, NULL,
						 NULL, &bad) < 0 ||
		    strcmp(buf_data(&b), val) != 0)
			atomic_fetch_add(m->failures, 1);
	}
	buf_release(&b);
	return NULL;
}

TEST(replica_threads)
{
	struct backend *f0 = open_fault(open_dir(subdir("r0")));
	struct backend *be = open_replica2(f0, open_dir(subdir("r1")));
	struct backend_fault flap = { .fail_nth = 3 };
	atomic_int failures = 0;
	struct mixer m[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		m[i] = (struct mixer){ be, i, &failures };
		ASSERT_OK(pthread_create(&t[i], NULL, mixer_run, &m[i]));
	}
	for (int round = 0; round < 20; round++) {
		backend_fault_set(f0, &flap);
		usleep(2000);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ASSERT_EQ(atomic_load(&failures), 0);
	backend_fault_set(f0, NULL);
	expect_obj(be, "m/3/29", "value 3 29");
	backend_close(be);
}

/* ---- fault ---------------------------------------------------------- */

TEST(fault_fail_nth)
{
	struct backend *be = open_fault(open_dir(test_tmpdir()));
	struct backend_fault f = { .fail_nth = 3 };
	uint64_t size;

	ASSERT_STREQ(backend_name(be), "fault");
	put_str(be, "k", "v");
	backend_fault_set(be, &f);
	ASSERT_OK(backend_head(be, "k", &size));
	ASSERT_OK(backend_head(be, "k", &size));
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	ASSERT_OK(backend_head(be, "k", &size));	/* only the Nth */
	ASSERT_OK(backend_head(be, "k", &size));
	/* set again: counting starts over, and any method counts */
	f.fail_nth = 2;
	f.error = -ENOSPC;
	backend_fault_set(be, &f);
	ASSERT_OK(backend_head(be, "k", &size));
	ASSERT_ERR(backend_put(be, "k2", "v", 1), -ENOSPC);
	ASSERT_ERR(backend_head(be, "k2", &size), -ENOENT); /* never reached */
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_HEAD), 7);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_PUT), 2);
	backend_close(be);
}

TEST(fault_fail_all_and_mask)
{
	const char *root = test_tmpdir();
	struct backend *be = open_fault(open_dir(root));
	struct backend_fault f = { .fail_all = 1, .error = -EIO,
				   .ops_mask = BACKEND_OP_PUT |
					       BACKEND_OP_DEL };
	struct listing l = { "", 0, 0 };
	uint64_t size;

	put_str(be, "k", "v");
	backend_fault_set(be, &f);
	for (int i = 0; i < 3; i++)
		ASSERT_ERR(backend_put(be, "k", "new", 3), -EIO);
	ASSERT_ERR(backend_del(be, "k"), -EIO);
	expect_obj(be, "k", "v");		/* gets are not in the mask */
	ASSERT_OK(backend_head(be, "k", &size));
	ASSERT_OK(backend_list(be, "", list_cb, &l));
	ASSERT_STREQ(l.s, "k:1,");

	f.ops_mask = 0;				/* everything */
	backend_fault_set(be, &f);
	ASSERT_ERR(backend_head(be, "k", &size), -EIO);
	ASSERT_ERR(backend_list(be, "", list_cb, &l), -EIO);
	backend_fault_set(be, NULL);
	ASSERT_OK(backend_del(be, "k"));
	ASSERT_TRUE(!file_exists(root, "k"));
	backend_close(be);
}

TEST(fault_corrupt_get)
{
	static const char data[] = "0123456789abcdefghij";
	struct backend *be = open_fault(open_dir(test_tmpdir()));
	struct backend_fault f = { .corrupt_get = 1 };
	const unsigned char *p;
	struct buf b;
	int diffs = 0;

	put_str(be, "k", data);
	backend_fault_set(be, &f);
	buf_init(&b, 100);
	ASSERT_OK(buf_add(&b, "hdr", 3));
	ASSERT_OK(backend_get(be, "k", 0, 0, &b));
	ASSERT_EQ(buf_len(&b), 3 + 20);
	p = buf_data(&b);
	ASSERT_TRUE(memcmp(p, "hdr", 3) == 0);	/* only what get returned */
	for (int i = 0; i < 20; i++)
		diffs += p[3 + i] != (unsigned char)data[i];
	ASSERT_EQ(diffs, 1);
	ASSERT_TRUE(p[3 + 10] != (unsigned char)data[10]);	/* the middle */

	/* the stored object is intact; a masked-out get is too */
	f.ops_mask = BACKEND_OP_HEAD;
	backend_fault_set(be, &f);
	expect_obj(be, "k", data);
	buf_release(&b);
	backend_close(be);
}

TEST(fault_latency)
{
	struct backend *be = open_fault(open_dir(test_tmpdir()));
	struct backend_fault f = { .latency_ms = 60,
				   .ops_mask = BACKEND_OP_GET };
	uint64_t size;
	double t0;

	put_str(be, "k", "v");
	backend_fault_set(be, &f);
	t0 = now_ms();
	expect_obj(be, "k", "v");
	ASSERT_TRUE(now_ms() - t0 >= 60);
	t0 = now_ms();
	ASSERT_OK(backend_head(be, "k", &size));	/* not in the mask */
	test_diag("unmasked head took %.1f ms", now_ms() - t0);
	backend_close(be);
}

/* What an integration test uses to prove a mount never deletes. */
TEST(fault_counters)
{
	struct backend *be = open_fault(open_dir(test_tmpdir()));
	struct listing l = { "", 0, 0 };
	struct backend_fault f = { .fail_all = 1 };
	uint64_t size;
	struct buf b;

	buf_init(&b, 100);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_DEL), 0);
	put_str(be, "a", "1");
	put_str(be, "b", "2");
	ASSERT_OK(backend_get(be, "a", 0, 0, &b));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(backend_head(be, "b", &size));
	ASSERT_OK(backend_list(be, "", list_cb, &l));
	ASSERT_OK(backend_del(be, "a"));
	/* a key the wrapper refuses never reaches the driver */
	ASSERT_ERR(backend_del(be, "../x"), -EINVAL);
	backend_fault_set(be, &f);
	ASSERT_ERR(backend_get(be, "b", 0, 0, &b), PHI_EUNREACHABLE);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_PUT), 2);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_GET), 2);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_HEAD), 3);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_LIST), 1);
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_DEL), 1);
	buf_release(&b);
	backend_close(be);
}

TEST(fault_parse_words)
{
	struct backend_fault f;

	memset(&f, 0x5a, sizeof(f));
	ASSERT_OK(backend_fault_parse("", &f));
	ASSERT_EQ(f.fail_all, 0);
	ASSERT_EQ(f.ops_mask, 0);
	ASSERT_EQ(f.error, 0);
	ASSERT_OK(backend_fault_parse("fail_all put get\n", &f));
	ASSERT_EQ(f.fail_all, 1);
	ASSERT_EQ(f.ops_mask, BACKEND_OP_PUT | BACKEND_OP_GET);
	ASSERT_EQ(f.fail_nth, 0);
	ASSERT_OK(backend_fault_parse("# a comment\n  corrupt_get\t"
				      "latency_ms=200 head#more\n", &f));
	ASSERT_EQ(f.corrupt_get, 1);
	ASSERT_EQ(f.latency_ms, 200);
	ASSERT_EQ(f.ops_mask, BACKEND_OP_HEAD);
	ASSERT_EQ(f.fail_all, 0);
	ASSERT_OK(backend_fault_parse("fail_nth=3 error=eio list del", &f));
	ASSERT_EQ(f.fail_nth, 3);
	ASSERT_EQ(f.error, -EIO);
	ASSERT_EQ(f.ops_mask, BACKEND_OP_LIST | BACKEND_OP_DEL);
	ASSERT_OK(backend_fault_parse("error=unreachable", &f));
	ASSERT_EQ(f.error, PHI_EUNREACHABLE);
	ASSERT_OK(backend_fault_parse("error=auth", &f));
	ASSERT_EQ(f.error, PHI_EAUTH);
	ASSERT_OK(backend_fault_parse("error=nobucket", &f));
	ASSERT_EQ(f.error, PHI_ENOBUCKET);
}

TEST(fault_parse_refuses)
{
	static const char *const bad[] = {
		"fail", "fail_all=1", "fail_nth", "fail_nth=0", "fail_nth=x",
		"fail_nth=-1", "latency_ms=", "latency_ms=1.5", "error=",
		"error=nope", "PUT", "fail_all, put",
		"latency_ms=99999999999",
	};
	struct backend_fault f = { .latency_ms = 7 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (backend_fault_parse(bad[i], &f) == 0)
			test_diag("accepted '%s'", bad[i]);
		ASSERT_ERR(backend_fault_parse(bad[i], &f), -EINVAL);
		ASSERT_EQ(f.latency_ms, 7);	/* untouched */
	}
}

/* Replace the settings file whole, as the contract asks. */
static void write_settings(const char *path, const char *text)
{
	char tmp[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ASSERT_OK(close(fd));
	ASSERT_OK(rename(tmp, path));
}

TEST(fault_file_reload)
{
	const char *root = subdir("objects");
	char path[4200];
	struct backend *be = NULL;
	uint64_t size;

	snprintf(path, sizeof(path), "%s/a", subdir("faults"));
	ASSERT_OK(backend_fault_open_file(&be, open_dir(root), path));
	ASSERT_STREQ(backend_name(be), "fault");
	put_str(be, "k", "v");			/* no file: no faults */

	write_settings(path, "fail_all put get\n");
	ASSERT_ERR(backend_put(be, "k", "w", 1), PHI_EUNREACHABLE);
	ASSERT_ERR(backend_put(be, "k", "w", 1), PHI_EUNREACHABLE);
	ASSERT_OK(backend_head(be, "k", &size));
	write_settings(path, "fail_all error=eio");
	ASSERT_ERR(backend_head(be, "k", &size), -EIO);
	write_settings(path, "fail_nth=2 head");
	ASSERT_OK(backend_head(be, "k", &size));
	ASSERT_OK(backend_put(be, "k", "v", 1));	/* not in the mask */
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	ASSERT_OK(backend_head(be, "k", &size));
	/* the same text written again is a change: the count restarts */
	write_settings(path, "fail_nth=2 head");
	ASSERT_OK(backend_head(be, "k", &size));
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	write_settings(path, "nonsense words");	/* logged, no faults */
	ASSERT_OK(backend_head(be, "k", &size));
	write_settings(path, "fail_all");
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	ASSERT_OK(unlink(path));		/* gone: no faults */
	ASSERT_OK(backend_head(be, "k", &size));
	expect_obj(be, "k", "v");
	ASSERT_EQ(backend_fault_calls(be, BACKEND_OP_HEAD), 10);
	backend_close(be);
}

TEST(fault_file_read_at_open)
{
	char path[4200];
	struct backend *be = NULL;
	uint64_t size;

	snprintf(path, sizeof(path), "%s/a", subdir("faults"));
	write_settings(path, "fail_all error=auth");
	ASSERT_OK(backend_fault_open_file(&be, open_dir(subdir("objects")),
					  path));
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EAUTH);
	/* backend_fault_set() rules until the file changes */
	backend_fault_set(be, NULL);
	ASSERT_ERR(backend_head(be, "k", &size), -ENOENT);
	write_settings(path, "fail_all");
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	backend_close(be);
}

TEST_MAIN(
	TEST_ENTRY(buf_cap_and_growth),
	TEST_ENTRY(buf_large_appends),
	TEST_ENTRY(dir_open_errors),
	TEST_ENTRY(open_by_url),
	TEST_ENTRY(dir_put_get),
	TEST_ENTRY(dir_range_get),
	TEST_ENTRY(dir_get_over_cap),
	TEST_ENTRY(dir_head),
	TEST_ENTRY(dir_missing),
	TEST_ENTRY(dir_layout_after_put),
	TEST_ENTRY(dir_list),
	TEST_ENTRY(dir_list_prefix),
	TEST_ENTRY(dir_del),
	TEST_ENTRY(key_rules),
	TEST_ENTRY(dir_overwrite_while_reading),
	TEST_ENTRY(dir_concurrent_mkdir),
	TEST_ENTRY(dir_moved_away_is_not_written),
	TEST_ENTRY(dir_missing_folder_is_replaced),
	TEST_ENTRY(dir_marked_region_recreated),
	TEST_ENTRY(dir_marked_region_emptied_in_place),
	TEST_ENTRY(dir_relative_path_survives_chdir),
	TEST_ENTRY(replica_shape),
	TEST_ENTRY(replica_put_everywhere_get_fails_over),
	TEST_ENTRY(replica_verified_skips_corrupt_copy),
	TEST_ENTRY(get_verified_on_single_backend),
	TEST_ENTRY(replica_region_down),
	TEST_ENTRY(replica_get_fails_over_on_error),
	TEST_ENTRY(replica_error_ranking),
	TEST_ENTRY(replica_list_union),
	TEST_ENTRY(replica_del),
	TEST_ENTRY(replica_threads),
	TEST_ENTRY(fault_fail_nth),
	TEST_ENTRY(fault_fail_all_and_mask),
	TEST_ENTRY(fault_corrupt_get),
	TEST_ENTRY(fault_latency),
	TEST_ENTRY(fault_counters),
	TEST_ENTRY(fault_parse_words),
	TEST_ENTRY(fault_parse_refuses),
	TEST_ENTRY(fault_file_reload),
	TEST_ENTRY(fault_file_read_at_open),
)
