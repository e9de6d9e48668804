/*
 * cache_test.c - the helpers of cache_test.h, shared by the
 * test_cache_*.c programs.
 */
#include "cache_test.h"

#include "cache.h"
#include "test.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const struct cache_cred cred = { 1000, 1001, 0 };

/* --- helpers ------------------------------------------------------------ */

struct cache_config config(const char *dir, uint64_t limit)
{
	return (struct cache_config){ .dir = dir, .size_limit = limit,
				      .block_size = 1 << 20 };
}

/* A path inside the case's directory; static storage, one at a time. */
const char *tmp_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), name);
	return path;
}

/* Format a filesystem in the case's directory, with this size limit. */
struct cache_config format_limit(uint64_t limit)
{
	struct cache_config cfg = config(test_tmpdir(), limit);

	ASSERT_OK(cache_format(&cfg, 0, 0));
	return cfg;
}

struct cache *open_rw(const struct cache_config *cfg)
{
	struct cache *c = NULL;

	ASSERT_OK(cache_open(&c, cfg, 0));
	ASSERT_TRUE(c != NULL);
	return c;
}

/* The usual start: a fresh filesystem, open read-write. */
struct cache *fresh(void)
{
	struct cache_config cfg = format_limit(20 * GiB);

	return open_rw(&cfg);
}

uint64_t mk(struct cache *c, uint64_t parent, const char *name, mode_t mode)
{
	struct stat st;

	ASSERT_OK(cache_mknod(c, parent, name, mode, 0, NULL, &cred, &st));
	ASSERT_EQ(st.st_mode, mode);
	return st.st_ino;
}

uint64_t mkfile(struct cache *c, uint64_t parent, const char *name)
{
	return mk(c, parent, name, S_IFREG | 0644);
}

uint64_t mkdir_(struct cache *c, uint64_t parent, const char *name)
{
	return mk(c, parent, name, S_IFDIR | 0755);
}

/* Look up name, dropping the reference again; returns ino or -errno. */
long long look(struct cache *c, uint64_t parent, const char *name)
{
	struct stat st;
	int rc = cache_lookup(c, parent, name, &st);

	if (rc)
		return rc;
	cache_forget(c, st.st_ino, 1);
	return (long long)st.st_ino;
}

struct stat attr(struct cache *c, uint64_t ino)
{
	struct stat st;

	ASSERT_OK(cache_getattr(c, ino, &st));
	return st;
}

int gone(struct cache *c, uint64_t ino)
{
	struct stat st;
	int rc;

	/* 1000 x 10 ms: far past FREE_GATHER_MS, also under a sanitizer */
	for (int i = 0; i < 1000; i++) {
		rc = cache_getattr(c, ino, &st);
		if (rc != 0)
			break;
		usleep(10000);
	}
	return rc;
}

struct cache_file *fopen_(struct cache *c, uint64_t ino, int trunc)
{
	struct cache_file *f = NULL;

	ASSERT_OK(cache_file_open(c, ino, trunc, &f));
	ASSERT_TRUE(f != NULL);
	return f;
}

void wr(struct cache *c, struct cache_file *f, uint64_t off, const void *buf,
	size_t len)
{
	ASSERT_EQ(cache_write(c, f, off, buf, len), (ssize_t)len);
}

/* Read through cache_read_extent(); returns the bytes read. */
size_t rd(struct cache *c, struct cache_file *f, uint64_t off, void *buf,
	  size_t len)
{
	struct cache_extent ext;
	size_t done = 0;

	ASSERT_OK(cache_read_extent(c, f, off, len, &ext));
	ASSERT_TRUE(ext.len <= len);
	while (done < ext.len) {
		ssize_t n = pread(ext.fd, (char *)buf + done, ext.len - done,
				  (off_t)(ext.off + done));

		ASSERT_TRUE(n > 0);
		done += (size_t)n;
	}
	cache_read_end(c, &ext);
	return ext.len;
}

void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 12)) & 0xff);
}

bool all_zero(const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

struct cache_stats stats(struct cache *c)
{
	struct cache_stats s;

	ASSERT_OK(cache_stats(c, &s));
	return s;
}

bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool ts_le(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec ||
	       (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

struct timespec now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* --- readdir collection ------------------------------------------------- */

int collect(void *ctx, const char *name, const struct stat *st,
	    uint64_t next)
{
	struct listing *l = ctx;

	if (l->limit && l->n >= l->limit)
		return 1;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct ent *e = realloc(l->e, cap * sizeof(*e));

		if (!e)
			return 1;
		l->e = e;
		l->cap = cap;
	}
	snprintf(l->e[l->n].name, sizeof(l->e[l->n].name), "%s", name);
	l->e[l->n].st = *st;
	l->e[l->n].next = next;
	l->n++;
	return 0;
}

/* List dir from off (all of it, or at most limit entries). */
struct listing list_dir(struct cache *c, uint64_t dir, uint64_t off,
			int plus, size_t limit)
{
	struct listing l = { NULL, 0, 0, limit };

	ASSERT_OK(cache_readdir(c, dir, off, plus, collect, &l));
	return l;
}

long find_ent(const struct listing *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return (long)i;
	return -1;
}

size_t count_ent(const struct listing *l, const char *name)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++)
		k += strcmp(l->e[i].name, name) == 0;
	return k;
}

/* The ino ".." names in directory dir. */
uint64_t dotdot(struct cache *c, uint64_t dir)
{
	struct listing l = list_dir(c, dir, 0, 0, 2);
	uint64_t ino;

	ASSERT_EQ(l.n, 2u);
	ASSERT_STREQ(l.e[1].name, "..");
	ino = l.e[1].st.st_ino;
	free(l.e);
	return ino;
}

/* --- a second process ---------------------------------------------------- */

/* Read exactly len bytes from a pipe; false at EOF. */
bool pipe_read(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

void pipe_write(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		_exit(99);
}

int wait_child(pid_t pid)
{
	int status;

	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Snapshot of a directory tree: names, types, sizes and mtimes. */
static char tree_buf[1 << 16];
static size_t tree_len;

static int tree_one(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	int n;

	(void)type;
	(void)ftw;
	n = snprintf(tree_buf + tree_len, sizeof(tree_buf) - tree_len,
		     "%s %o %lld %lld.%09ld\n", path, (unsigned)st->st_mode,
		     (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		     st->st_mtim.tv_nsec);
	if (n > 0 && (size_t)n < sizeof(tree_buf) - tree_len)
		tree_len += (size_t)n;
	return 0;
}

char *tree(const char *dir)
{
	tree_len = 0;
	tree_buf[0] = '\0';
	ASSERT_OK(nftw(dir, tree_one, 16, FTW_PHYS));
	return strdup(tree_buf);
}
