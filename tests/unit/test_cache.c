/*
 * test_cache.c - the cache module, through cache.h and cache_admin.h only.
 *
 * Every case formats a fresh filesystem in its own test_tmpdir() and opens
 * it read-write, unless the case is about format or open themselves.
 * Cases that need a second process (the lock, a crash) fork before any
 * LMDB environment is open in the parent: an environment must never be
 * open twice in one process, nor cross a fork().
 *
 * Lookup references matter wherever an inode is meant to go away: mknod,
 * link, lookup and readdirplus each take one, and the tests drop them with
 * cache_forget() before they expect an unlinked inode to be freed.
 */
#include "cache.h"
#include "cache_admin.h"
#include "phi.h"
#include "test.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

#define OTHER_UID 1234
#define OTHER_GID 1234

static const struct cache_cred cred = { 1000, 1001 };

/* --- helpers ------------------------------------------------------------ */

static struct cache_config config(const char *dir, uint64_t limit)
{
	return (struct cache_config){ .dir = dir, .size_limit = limit,
				      .block_size = 1 << 20 };
}

/* A path inside the case's directory; static storage, one at a time. */
static const char *tmp_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), name);
	return path;
}

/* Format a filesystem in the case's directory, with this size limit. */
static struct cache_config format_limit(uint64_t limit)
{
	struct cache_config cfg = config(test_tmpdir(), limit);

	ASSERT_OK(cache_format(&cfg, 0, 0));
	return cfg;
}

static struct cache *open_rw(const struct cache_config *cfg)
{
	struct cache *c = NULL;

	ASSERT_OK(cache_open(&c, cfg, 0));
	ASSERT_TRUE(c != NULL);
	return c;
}

/* The usual start: a fresh filesystem, open read-write. */
static struct cache *fresh(void)
{
	struct cache_config cfg = format_limit(20 * GiB);

	return open_rw(&cfg);
}

static uint64_t mk(struct cache *c, uint64_t parent, const char *name,
		   mode_t mode)
{
	struct stat st;

	ASSERT_OK(cache_mknod(c, parent, name, mode, 0, NULL, &cred, &st));
	ASSERT_EQ(st.st_mode, mode);
	return st.st_ino;
}

static uint64_t mkfile(struct cache *c, uint64_t parent, const char *name)
{
	return mk(c, parent, name, S_IFREG | 0644);
}

static uint64_t mkdir_(struct cache *c, uint64_t parent, const char *name)
{
	return mk(c, parent, name, S_IFDIR | 0755);
}

/* Look up name, dropping the reference again; returns ino or -errno. */
static long long look(struct cache *c, uint64_t parent, const char *name)
{
	struct stat st;
	int rc = cache_lookup(c, parent, name, &st);

	if (rc)
		return rc;
	cache_forget(c, st.st_ino, 1);
	return (long long)st.st_ino;
}

static struct stat attr(struct cache *c, uint64_t ino)
{
	struct stat st;

	ASSERT_OK(cache_getattr(c, ino, &st));
	return st;
}

static struct cache_file *fopen_(struct cache *c, uint64_t ino, int trunc)
{
	struct cache_file *f = NULL;

	ASSERT_OK(cache_file_open(c, ino, trunc, &f));
	ASSERT_TRUE(f != NULL);
	return f;
}

static void wr(struct cache *c, struct cache_file *f, uint64_t off,
	       const void *buf, size_t len)
{
	ASSERT_EQ(cache_write(c, f, off, buf, len), (ssize_t)len);
}

/* Read through cache_read_extent(); returns the bytes read. */
static size_t rd(struct cache *c, struct cache_file *f, uint64_t off,
		 void *buf, size_t len)
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
	return ext.len;
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 12)) & 0xff);
}

static bool all_zero(const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

static struct cache_stats stats(struct cache *c)
{
	struct cache_stats s;

	ASSERT_OK(cache_stats(c, &s));
	return s;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool ts_le(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec ||
	       (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

static struct timespec now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* --- readdir collection ------------------------------------------------- */

struct ent {
	char name[CACHE_NAME_MAX + 1];
	struct stat st;
	uint64_t next;
};

struct listing {
	struct ent *e;
	size_t n, cap;
	size_t limit;		/* take at most this many; 0: all */
};

static int collect(void *ctx, const char *name, const struct stat *st,
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
static struct listing list_dir(struct cache *c, uint64_t dir, uint64_t off,
			       int plus, size_t limit)
{
	struct listing l = { NULL, 0, 0, limit };

	ASSERT_OK(cache_readdir(c, dir, off, plus, collect, &l));
	return l;
}

static long find_ent(const struct listing *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return (long)i;
	return -1;
}

static size_t count_ent(const struct listing *l, const char *name)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++)
		k += strcmp(l->e[i].name, name) == 0;
	return k;
}

/* The ino ".." names in directory dir. */
static uint64_t dotdot(struct cache *c, uint64_t dir)
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
static bool pipe_read(int fd, void *buf, size_t len)
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

static void pipe_write(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		_exit(99);
}

static int wait_child(pid_t pid)
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

static char *tree(const char *dir)
{
	tree_len = 0;
	tree_buf[0] = '\0';
	ASSERT_OK(nftw(dir, tree_one, 16, FTW_PHYS));
	return strdup(tree_buf);
}

/* === format and open ================================================== */

TEST(format_fresh)
{
	struct cache_config cfg = config(test_tmpdir(), 64 * MiB);
	struct cache_stats s;
	struct cache *c;
	struct stat st;

	ASSERT_OK(cache_format(&cfg, 1000, 1001));
	c = open_rw(&cfg);
	st = attr(c, CACHE_ROOT_INO);
	ASSERT_EQ(st.st_ino, (ino_t)CACHE_ROOT_INO);
	ASSERT_EQ(st.st_mode, (mode_t)(S_IFDIR | 0755));
	ASSERT_EQ(st.st_uid, (uid_t)1000);
	ASSERT_EQ(st.st_gid, (gid_t)1001);
	ASSERT_EQ(st.st_nlink, (nlink_t)2);
	ASSERT_EQ(dotdot(c, CACHE_ROOT_INO), (uint64_t)CACHE_ROOT_INO);
	s = stats(c);
	ASSERT_EQ(s.inodes, 1u);
	ASSERT_EQ(s.orphans, 0u);
	ASSERT_EQ(s.used_bytes, 0u);
	ASSERT_EQ(s.size_limit, 64 * MiB);
	ASSERT_EQ(s.block_size, 1u << 20);
	ASSERT_TRUE(s.format_version > 0);
	ASSERT_EQ(strlen(s.fsid), 32u);
	ASSERT_EQ(strspn(s.fsid, "0123456789abcdef"), 32u);
	ASSERT_EQ(s.mounted, 1);
	ASSERT_EQ(s.pid, (long)getpid());
	ASSERT_OK(cache_close(c));
}

TEST(format_twice)
{
	struct cache_config cfg = format_limit(64 * MiB);
	char fsid[33], *before, *after;
	struct cache *c;
	uint64_t ino;

	c = open_rw(&cfg);
	ino = mkfile(c, CACHE_ROOT_INO, "keep");
	snprintf(fsid, sizeof(fsid), "%s", stats(c).fsid);
	ASSERT_OK(cache_close(c));

	before = tree(cfg.dir);
	ASSERT_ERR(cache_format(&cfg, 0, 0), PHI_EEXISTFS);
	after = tree(cfg.dir);
	ASSERT_STREQ(after, before);

	c = open_rw(&cfg);
	ASSERT_STREQ(stats(c).fsid, fsid);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "keep"), (long long)ino);
	ASSERT_OK(cache_close(c));
	free(before);
	free(after);
}

TEST(format_missing_dir)
{
	struct cache_config cfg = config(tmp_path("nonexistent"), 64 * MiB);
	struct cache *c = NULL;

	ASSERT_ERR(cache_format(&cfg, 0, 0), -ENOENT);
	ASSERT_TRUE(access(cfg.dir, F_OK) != 0);
	ASSERT_ERR(cache_open(&c, &cfg, 0), -ENOENT);
	ASSERT_TRUE(c == NULL);
}

TEST(format_not_writable)
{
	char dir[4096], *before, *after;
	struct cache_config cfg;
	int pfd[2], rc = 0;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s", tmp_path("ro"));
	ASSERT_OK(mkdir(dir, 0555));
	ASSERT_OK(chmod(dir, 0555));
	ASSERT_OK(chmod(test_tmpdir(), 0755));
	cfg = config(dir, 64 * MiB);
	before = tree(dir);
	if (geteuid() != 0) {
		/* not root: the mode bits alone keep us out */
		ASSERT_ERR(cache_format(&cfg, 0, 0), -EACCES);
	} else {
		ASSERT_OK(pipe(pfd));
		pid = fork();
		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			if (setgroups(0, NULL) || setgid(OTHER_GID) ||
			    setuid(OTHER_UID))
				_exit(77);
			rc = cache_format(&cfg, 0, 0);
			pipe_write(pfd[1], &rc, sizeof(rc));
			_exit(0);
		}
		close(pfd[1]);
		if (!pipe_read(pfd[0], &rc, sizeof(rc))) {
			close(pfd[0]);
			if (wait_child(pid) == 77)
				TEST_SKIP("cannot switch to another uid");
			ASSERT_TRUE(!"child reported nothing");
		}
		close(pfd[0]);
		ASSERT_EQ(wait_child(pid), 0);
		ASSERT_ERR(rc, -EACCES);
	}
	after = tree(dir);
	ASSERT_STREQ(after, before);	/* created nothing */
	chmod(dir, 0755);
	free(before);
	free(after);
}

TEST(open_nofs)
{
	struct cache_config cfg = config(test_tmpdir(), 64 * MiB);
	struct cache *c = NULL;

	ASSERT_ERR(cache_open(&c, &cfg, 0), PHI_ENOFS);
	ASSERT_ERR(cache_open(&c, &cfg, CACHE_OPEN_RDONLY), PHI_ENOFS);
	ASSERT_TRUE(c == NULL);
}

TEST(open_rdonly_refuses_writes)
{
	struct cache_config cfg = format_limit(64 * MiB);
	struct cache *c = NULL;
	struct stat st;

	ASSERT_OK(cache_open(&c, &cfg, CACHE_OPEN_RDONLY));
	ASSERT_ERR(cache_mknod(c, CACHE_ROOT_INO, "f", S_IFREG | 0644, 0,
			       NULL, &cred, &st), -EROFS);
	ASSERT_EQ(stats(c).mounted, 0);
	ASSERT_OK(cache_close(c));
}

/*
 * A child holds the filesystem open read-write; the parent can neither
 * open it read-write nor format it, but can open it read-only and sees
 * who holds it.
 */
TEST(open_busy_and_rdonly)
{
	struct cache_config cfg = format_limit(64 * MiB);
	struct cache *c = NULL, *ro = NULL;
	struct cache_stats s;
	int ready[2], go[2], rc;
	pid_t pid;
	char byte;

	ASSERT_OK(pipe(ready));
	ASSERT_OK(pipe(go));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		rc = cache_open(&c, &cfg, 0);
		pipe_write(ready[1], &rc, sizeof(rc));
		if (rc)
			_exit(1);
		(void)pipe_read(go[0], &byte, 1);	/* until EOF */
		_exit(cache_close(c) ? 2 : 0);
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_TRUE(pipe_read(ready[0], &rc, sizeof(rc)));
	ASSERT_OK(rc);

	ASSERT_ERR(cache_open(&c, &cfg, 0), PHI_EBUSYFS);
	ASSERT_TRUE(c == NULL);
	ASSERT_OK(cache_open(&ro, &cfg, CACHE_OPEN_RDONLY));
	s = stats(ro);
	ASSERT_EQ(s.mounted, 1);
	ASSERT_EQ(s.pid, (long)pid);
	ASSERT_EQ(s.inodes, 1u);

	close(go[1]);		/* let the child close and exit */
	close(ready[0]);
	ASSERT_EQ(wait_child(pid), 0);
	s = stats(ro);
	ASSERT_EQ(s.mounted, 0);
	ASSERT_OK(cache_close(ro));

	c = open_rw(&cfg);	/* the lock was released */
	ASSERT_OK(cache_close(c));
}

/* === names ============================================================ */

TEST(mknod_every_type)
{
	static const struct {
		const char *name;
		mode_t mode;
		dev_t rdev;
	} t[] = {
		{ "reg", S_IFREG | 0640, 0 },
		{ "dir", S_IFDIR | 0750, 0 },
		{ "fifo", S_IFIFO | 0600, 0 },
		{ "sock", S_IFSOCK | 0755, 0 },
		{ "chr", S_IFCHR | 0620, 0 },
		{ "blk", S_IFBLK | 0660, 0 },
		{ "lnk", S_IFLNK | 0777, 0 },
	};
	struct cache *c = fresh();
	uint64_t inos[sizeof(t) / sizeof(t[0])];
	const char *target = "some/where/else";

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		dev_t rdev = S_ISCHR(t[i].mode) ? makedev(1, 3) :
			     S_ISBLK(t[i].mode) ? makedev(8, 1) : 0;
		struct stat st, st2;

		ASSERT_OK(cache_mknod(c, CACHE_ROOT_INO, t[i].name, t[i].mode,
				      rdev, S_ISLNK(t[i].mode) ? target : NULL,
				      &cred, &st));
		test_diag("%s is inode %llu", t[i].name,
			  (unsigned long long)st.st_ino);
		ASSERT_EQ(st.st_mode, t[i].mode);
		ASSERT_EQ(st.st_uid, cred.uid);
		ASSERT_EQ(st.st_gid, cred.gid);
		ASSERT_EQ(st.st_nlink, (nlink_t)(S_ISDIR(t[i].mode) ? 2 : 1));
		ASSERT_EQ(st.st_rdev, rdev);
		if (S_ISLNK(t[i].mode))
			ASSERT_EQ(st.st_size, (off_t)strlen(target));
		if (S_ISREG(t[i].mode))
			ASSERT_EQ(st.st_size, 0);
		inos[i] = st.st_ino;
		for (size_t j = 0; j < i; j++)
			ASSERT_NE(inos[j], inos[i]);

		ASSERT_OK(cache_lookup(c, CACHE_ROOT_INO, t[i].name, &st2));
		ASSERT_EQ(st2.st_ino, st.st_ino);
		ASSERT_EQ(st2.st_mode, t[i].mode);
		ASSERT_EQ(st2.st_rdev, rdev);
		cache_forget(c, st.st_ino, 1);

		st2 = attr(c, st.st_ino);
		ASSERT_EQ(st2.st_ino, st.st_ino);
		ASSERT_EQ(st2.st_mode, t[i].mode);
		ASSERT_EQ(st2.st_nlink, st.st_nlink);
		ASSERT_EQ(st2.st_size, st.st_size);
		ASSERT_TRUE(ts_eq(st2.st_mtim, st.st_mtim));
	}
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)3);
	ASSERT_EQ(stats(c).inodes, 1u + sizeof(t) / sizeof(t[0]));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "missing"), -ENOENT);
	ASSERT_OK(cache_close(c));
}

TEST(mknod_errors)
{
	struct cache *c = fresh();
	char name[CACHE_NAME_MAX + 2];
	uint64_t file;
	struct stat st;

	file = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_ERR(cache_mknod(c, CACHE_ROOT_INO, "f", S_IFREG | 0644, 0,
			       NULL, &cred, &st), -EEXIST);
	ASSERT_ERR(cache_mknod(c, CACHE_ROOT_INO, "f", S_IFDIR | 0755, 0,
			       NULL, &cred, &st), -EEXIST);

	memset(name, 'n', CACHE_NAME_MAX + 1);
	name[CACHE_NAME_MAX + 1] = '\0';		/* 256 bytes */
	ASSERT_ERR(cache_mknod(c, CACHE_ROOT_INO, name, S_IFREG | 0644, 0,
			       NULL, &cred, &st), -ENAMETOOLONG);
	ASSERT_ERR(cache_lookup(c, CACHE_ROOT_INO, name, &st), -ENAMETOOLONG);
	name[CACHE_NAME_MAX] = '\0';			/* 255 bytes */
	mkfile(c, CACHE_ROOT_INO, name);
	ASSERT_TRUE(look(c, CACHE_ROOT_INO, name) > 0);

	ASSERT_ERR(cache_mknod(c, file, "sub", S_IFREG | 0644, 0, NULL,
			       &cred, &st), -ENOTDIR);
	ASSERT_EQ(stats(c).inodes, 3u);
	ASSERT_OK(cache_close(c));
}

TEST(link_unlink_nlink)
{
	struct cache *c = fresh();
	uint64_t d1, d2, f;
	struct stat st;

	d1 = mkdir_(c, CACHE_ROOT_INO, "d1");
	d2 = mkdir_(c, CACHE_ROOT_INO, "d2");
	f = mkfile(c, d1, "f");
	ASSERT_OK(cache_link(c, f, d2, "g", &st));
	ASSERT_EQ(st.st_ino, f);
	ASSERT_EQ(st.st_nlink, (nlink_t)2);
	ASSERT_OK(cache_link(c, f, d1, "h", &st));
	ASSERT_EQ(st.st_nlink, (nlink_t)3);
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)3);
	ASSERT_EQ(look(c, d2, "g"), (long long)f);
	ASSERT_EQ(look(c, d1, "h"), (long long)f);

	ASSERT_ERR(cache_link(c, f, d2, "g", &st), -EEXIST);
	ASSERT_ERR(cache_link(c, d1, d2, "dirlink", &st), -EPERM);
	ASSERT_ERR(cache_link(c, f, f, "x", &st), -ENOTDIR);
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)3);

	ASSERT_OK(cache_unlink(c, d1, "f"));
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)2);
	ASSERT_EQ(look(c, d1, "f"), -ENOENT);
	ASSERT_ERR(cache_unlink(c, d1, "f"), -ENOENT);
	ASSERT_ERR(cache_unlink(c, CACHE_ROOT_INO, "d1"), -EISDIR);
	ASSERT_OK(cache_unlink(c, d2, "g"));
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)1);
	ASSERT_OK(cache_unlink(c, d1, "h"));

	/* mknod and two links took three references */
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)0);
	ASSERT_EQ(stats(c).orphans, 1u);
	cache_forget(c, f, 2);
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)0);
	cache_forget(c, f, 1);
	ASSERT_ERR(cache_getattr(c, f, &st), -ENOENT);
	ASSERT_EQ(stats(c).orphans, 0u);
	ASSERT_EQ(stats(c).inodes, 3u);
	ASSERT_OK(cache_close(c));
}

TEST(dir_nlink)
{
	struct cache *c = fresh();
	uint64_t a, b;

	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)2);
	a = mkdir_(c, CACHE_ROOT_INO, "a");
	b = mkdir_(c, CACHE_ROOT_INO, "b");
	mkdir_(c, CACHE_ROOT_INO, "c");
	mkfile(c, CACHE_ROOT_INO, "file");
	mk(c, CACHE_ROOT_INO, "fifo", S_IFIFO | 0600);
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)5);
	ASSERT_EQ(attr(c, a).st_nlink, (nlink_t)2);
	mkdir_(c, a, "x");
	mkdir_(c, a, "y");
	mkfile(c, a, "z");
	ASSERT_EQ(attr(c, a).st_nlink, (nlink_t)4);
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)5);
	ASSERT_EQ(dotdot(c, a), (uint64_t)CACHE_ROOT_INO);
	ASSERT_OK(cache_rmdir(c, a, "x"));
	ASSERT_EQ(attr(c, a).st_nlink, (nlink_t)3);
	ASSERT_OK(cache_rmdir(c, CACHE_ROOT_INO, "b"));
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)4);
	cache_forget(c, b, 1);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "b"), -ENOENT);
	ASSERT_OK(cache_close(c));
}

TEST(rmdir_errors)
{
	struct cache *c = fresh();
	uint64_t d, e;
	struct stat st;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	mkfile(c, d, "f");
	mkfile(c, CACHE_ROOT_INO, "file");
	e = mkdir_(c, CACHE_ROOT_INO, "e");
	ASSERT_ERR(cache_rmdir(c, CACHE_ROOT_INO, "d"), -ENOTEMPTY);
	ASSERT_ERR(cache_rmdir(c, CACHE_ROOT_INO, "file"), -ENOTDIR);
	ASSERT_ERR(cache_rmdir(c, CACHE_ROOT_INO, "none"), -ENOENT);
	ASSERT_OK(cache_unlink(c, d, "f"));
	ASSERT_OK(cache_rmdir(c, CACHE_ROOT_INO, "d"));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "d"), -ENOENT);
	/* a removed directory takes no new entries */
	ASSERT_ERR(cache_mknod(c, d, "late", S_IFREG | 0644, 0, NULL, &cred,
			       &st), -ENOENT);
	cache_forget(c, d, 1);
	ASSERT_ERR(cache_getattr(c, d, &st), -ENOENT);
	ASSERT_OK(cache_rmdir(c, CACHE_ROOT_INO, "e"));
	cache_forget(c, e, 1);
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)2);
	ASSERT_OK(cache_close(c));
}

/* === rename ============================================================ */

TEST(rename_plain)
{
	struct cache *c = fresh();
	uint64_t p1, p2, f, d;

	p1 = mkdir_(c, CACHE_ROOT_INO, "p1");
	p2 = mkdir_(c, CACHE_ROOT_INO, "p2");
	f = mkfile(c, p1, "f");
	d = mkdir_(c, p1, "d");
	ASSERT_OK(cache_rename(c, p1, "f", p1, "g", 0));
	ASSERT_EQ(look(c, p1, "f"), -ENOENT);
	ASSERT_EQ(look(c, p1, "g"), (long long)f);
	ASSERT_OK(cache_rename(c, p1, "g", p2, "h", 0));
	ASSERT_EQ(look(c, p1, "g"), -ENOENT);
	ASSERT_EQ(look(c, p2, "h"), (long long)f);
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)1);

	ASSERT_EQ(attr(c, p1).st_nlink, (nlink_t)3);
	ASSERT_OK(cache_rename(c, p1, "d", p2, "d2", 0));
	ASSERT_EQ(attr(c, p1).st_nlink, (nlink_t)2);
	ASSERT_EQ(attr(c, p2).st_nlink, (nlink_t)3);
	ASSERT_EQ(attr(c, d).st_nlink, (nlink_t)2);
	ASSERT_EQ(dotdot(c, d), p2);
	ASSERT_ERR(cache_rename(c, p1, "none", p2, "x", 0), -ENOENT);
	ASSERT_OK(cache_close(c));
}

TEST(rename_over_file)
{
	struct cache *c = fresh();
	uint64_t a, b;
	struct stat st;

	a = mkfile(c, CACHE_ROOT_INO, "a");
	b = mkfile(c, CACHE_ROOT_INO, "b");
	ASSERT_OK(cache_rename(c, CACHE_ROOT_INO, "a", CACHE_ROOT_INO, "b", 0));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "a"), -ENOENT);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "b"), (long long)a);
	ASSERT_EQ(attr(c, b).st_nlink, (nlink_t)0);	/* still referenced */
	cache_forget(c, b, 1);
	ASSERT_ERR(cache_getattr(c, b, &st), -ENOENT);
	ASSERT_EQ(stats(c).inodes, 2u);
	ASSERT_OK(cache_close(c));
}

TEST(rename_over_empty_dir)
{
	struct cache *c = fresh();
	uint64_t s, d, p;
	struct stat st;

	p = mkdir_(c, CACHE_ROOT_INO, "p");
	s = mkdir_(c, CACHE_ROOT_INO, "s");
	mkfile(c, s, "inside");
	d = mkdir_(c, p, "d");
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)4);
	ASSERT_EQ(attr(c, p).st_nlink, (nlink_t)3);
	ASSERT_OK(cache_rename(c, CACHE_ROOT_INO, "s", p, "d", 0));
	ASSERT_EQ(look(c, p, "d"), (long long)s);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "s"), -ENOENT);
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)3);
	ASSERT_EQ(attr(c, p).st_nlink, (nlink_t)3);
	ASSERT_EQ(dotdot(c, s), p);
	ASSERT_TRUE(look(c, s, "inside") > 0);
	cache_forget(c, d, 1);
	ASSERT_ERR(cache_getattr(c, d, &st), -ENOENT);
	ASSERT_OK(cache_close(c));
}

TEST(rename_over_nonempty_dir)
{
	struct cache *c = fresh();
	uint64_t s, d;

	s = mkdir_(c, CACHE_ROOT_INO, "s");
	d = mkdir_(c, CACHE_ROOT_INO, "d");
	mkfile(c, d, "x");
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "s", CACHE_ROOT_INO, "d", 0),
		   -ENOTEMPTY);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "s"), (long long)s);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "d"), (long long)d);
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)4);
	ASSERT_OK(cache_close(c));
}

TEST(rename_dir_over_file)
{
	struct cache *c = fresh();
	uint64_t d, f;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "d", CACHE_ROOT_INO, "f", 0),
		   -ENOTDIR);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "d"), (long long)d);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "f"), (long long)f);
	ASSERT_OK(cache_close(c));
}

TEST(rename_file_over_dir)
{
	struct cache *c = fresh();
	uint64_t d, f;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "f", CACHE_ROOT_INO, "d", 0),
		   -EISDIR);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "d"), (long long)d);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "f"), (long long)f);
	ASSERT_OK(cache_close(c));
}

TEST(rename_into_own_subdir)
{
	struct cache *c = fresh();
	uint64_t a, b, x;

	a = mkdir_(c, CACHE_ROOT_INO, "a");
	b = mkdir_(c, a, "b");
	x = mkdir_(c, b, "x");
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "a", b, "a2", 0), -EINVAL);
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "a", x, "a2", 0), -EINVAL);
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "a", a, "a2", 0), -EINVAL);
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "a", b, "x",
				CACHE_RENAME_EXCHANGE), -EINVAL);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "a"), (long long)a);
	ASSERT_EQ(look(c, b, "x"), (long long)x);
	ASSERT_EQ(dotdot(c, a), (uint64_t)CACHE_ROOT_INO);
	/* moving a subdirectory up is fine */
	ASSERT_OK(cache_rename(c, b, "x", CACHE_ROOT_INO, "x", 0));
	ASSERT_EQ(dotdot(c, x), (uint64_t)CACHE_ROOT_INO);
	ASSERT_OK(cache_close(c));
}

TEST(rename_noreplace)
{
	struct cache *c = fresh();
	uint64_t a, b;

	a = mkfile(c, CACHE_ROOT_INO, "a");
	b = mkfile(c, CACHE_ROOT_INO, "b");
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "a", CACHE_ROOT_INO, "b",
				CACHE_RENAME_NOREPLACE), -EEXIST);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "a"), (long long)a);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "b"), (long long)b);
	ASSERT_OK(cache_rename(c, CACHE_ROOT_INO, "a", CACHE_ROOT_INO, "c",
			       CACHE_RENAME_NOREPLACE));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "c"), (long long)a);
	ASSERT_ERR(cache_rename(c, CACHE_ROOT_INO, "c", CACHE_ROOT_INO, "b",
				CACHE_RENAME_NOREPLACE |
				CACHE_RENAME_EXCHANGE), -EINVAL);
	ASSERT_OK(cache_close(c));
}

TEST(rename_exchange)
{
	struct cache *c = fresh();
	uint64_t p1, p2, f, d;
	struct listing l;

	p1 = mkdir_(c, CACHE_ROOT_INO, "p1");
	p2 = mkdir_(c, CACHE_ROOT_INO, "p2");
	f = mkfile(c, p1, "f");
	d = mkdir_(c, p2, "d");
	mkfile(c, d, "inside");
	ASSERT_EQ(attr(c, p1).st_nlink, (nlink_t)2);
	ASSERT_EQ(attr(c, p2).st_nlink, (nlink_t)3);

	ASSERT_ERR(cache_rename(c, p1, "f", p2, "none", CACHE_RENAME_EXCHANGE),
		   -ENOENT);
	ASSERT_OK(cache_rename(c, p1, "f", p2, "d", CACHE_RENAME_EXCHANGE));
	ASSERT_EQ(look(c, p1, "f"), (long long)d);
	ASSERT_EQ(look(c, p2, "d"), (long long)f);
	ASSERT_EQ(attr(c, p1).st_nlink, (nlink_t)3);
	ASSERT_EQ(attr(c, p2).st_nlink, (nlink_t)2);
	ASSERT_EQ(attr(c, d).st_nlink, (nlink_t)2);
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)1);
	ASSERT_EQ(dotdot(c, d), p1);
	ASSERT_TRUE(look(c, d, "inside") > 0);

	/* the entry types the listings report were swapped too */
	l = list_dir(c, p1, 0, 0, 0);
	ASSERT_EQ(l.n, 3u);
	ASSERT_STREQ(l.e[2].name, "f");
	ASSERT_EQ(l.e[2].st.st_ino, d);
	ASSERT_TRUE(S_ISDIR(l.e[2].st.st_mode));
	free(l.e);
	l = list_dir(c, p2, 0, 0, 0);
	ASSERT_EQ(l.n, 3u);
	ASSERT_STREQ(l.e[2].name, "d");
	ASSERT_EQ(l.e[2].st.st_ino, f);
	ASSERT_TRUE(S_ISREG(l.e[2].st.st_mode));
	free(l.e);

	/* and back */
	ASSERT_OK(cache_rename(c, p2, "d", p1, "f", CACHE_RENAME_EXCHANGE));
	ASSERT_EQ(look(c, p1, "f"), (long long)f);
	ASSERT_EQ(look(c, p2, "d"), (long long)d);
	ASSERT_EQ(attr(c, p1).st_nlink, (nlink_t)2);
	ASSERT_EQ(attr(c, p2).st_nlink, (nlink_t)3);
	ASSERT_EQ(dotdot(c, d), p2);
	ASSERT_OK(cache_close(c));
}

TEST(rename_hard_links_noop)
{
	struct cache *c = fresh();
	uint64_t f, sub;
	struct stat st;

	sub = mkdir_(c, CACHE_ROOT_INO, "sub");
	f = mkfile(c, CACHE_ROOT_INO, "a");
	ASSERT_OK(cache_link(c, f, CACHE_ROOT_INO, "b", &st));
	ASSERT_OK(cache_link(c, f, sub, "c", &st));
	ASSERT_OK(cache_rename(c, CACHE_ROOT_INO, "a", CACHE_ROOT_INO, "b", 0));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "a"), (long long)f);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "b"), (long long)f);
	ASSERT_OK(cache_rename(c, CACHE_ROOT_INO, "a", sub, "c", 0));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "a"), (long long)f);
	ASSERT_EQ(look(c, sub, "c"), (long long)f);
	ASSERT_EQ(attr(c, f).st_nlink, (nlink_t)3);
	ASSERT_OK(cache_close(c));
}

/* === readdir =========================================================== */

/* Create files prefix0000, prefix0001, ... */
static void make_names(struct cache *c, uint64_t dir, const char *prefix,
		       int n)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		cache_forget(c, mkfile(c, dir, name), 1);
	}
}

TEST(readdir_1000)
{
	struct cache *c = fresh();
	struct listing l;
	char name[64];
	uint64_t d;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	make_names(c, d, "entry-", 1000);
	l = list_dir(c, d, 0, 0, 0);
	ASSERT_EQ(l.n, 1002u);
	ASSERT_STREQ(l.e[0].name, ".");
	ASSERT_EQ(l.e[0].st.st_ino, d);
	ASSERT_TRUE(S_ISDIR(l.e[0].st.st_mode));
	ASSERT_STREQ(l.e[1].name, "..");
	ASSERT_EQ(l.e[1].st.st_ino, (ino_t)CACHE_ROOT_INO);
	for (int i = 0; i < 1000; i++) {
		long k;

		snprintf(name, sizeof(name), "entry-%04d", i);
		k = find_ent(&l, name);
		ASSERT_TRUE(k >= 2);
		ASSERT_EQ(count_ent(&l, name), 1u);
		ASSERT_TRUE(S_ISREG(l.e[k].st.st_mode));
		ASSERT_EQ(look(c, d, name), (long long)l.e[k].st.st_ino);
	}
	free(l.e);
	memset(&l, 0, sizeof(l));
	ASSERT_ERR(cache_readdir(c, (uint64_t)look(c, d, "entry-0000"), 0, 0,
				 collect, &l), -ENOTDIR);
	ASSERT_EQ(l.n, 0u);
	ASSERT_OK(cache_close(c));
}

TEST(readdir_resume_every_offset)
{
	struct cache *c = fresh();
	struct listing all;
	uint64_t d;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	make_names(c, d, "f", 300);
	all = list_dir(c, d, 0, 0, 0);
	ASSERT_EQ(all.n, 302u);
	for (size_t i = 0; i < all.n; i++) {
		struct listing rest = list_dir(c, d, all.e[i].next, 0, 0);

		ASSERT_EQ(rest.n, all.n - i - 1);
		for (size_t j = 0; j < rest.n; j++) {
			ASSERT_STREQ(rest.e[j].name, all.e[i + 1 + j].name);
			ASSERT_EQ(rest.e[j].st.st_ino,
				  all.e[i + 1 + j].st.st_ino);
			ASSERT_EQ(rest.e[j].next, all.e[i + 1 + j].next);
		}
		free(rest.e);
	}
	free(all.e);
	ASSERT_OK(cache_close(c));
}

/*
 * List 7 entries per call; between calls remove some entries (read and
 * unread ones), add new ones and rename one.  The "s" entries stay put
 * throughout and must each be seen exactly once; no name may repeat.
 */
TEST(readdir_offsets_survive_changes)
{
	struct cache *c = fresh();
	struct listing seen = { NULL, 0, 0, 0 };
	uint64_t d, off = 0;
	char name[64];
	int round = 0;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), i % 2 ? "t%03d" : "s%03d", i);
		cache_forget(c, mkfile(c, d, name), 1);
	}
	for (;;) {
		struct listing l = list_dir(c, d, off, 0, 7);

		for (size_t i = 0; i < l.n; i++)
			ASSERT_OK(collect(&seen, l.e[i].name, &l.e[i].st,
					  l.e[i].next));
		if (l.n == 0) {
			free(l.e);
			break;
		}
		off = l.e[l.n - 1].next;
		free(l.e);
		/* remove two transient entries, from both ends */
		snprintf(name, sizeof(name), "t%03d", 1 + 2 * round);
		cache_unlink(c, d, name);
		snprintf(name, sizeof(name), "t%03d", 99 - 2 * round);
		cache_unlink(c, d, name);
		if (round < 10) {	/* new entries land after us */
			snprintf(name, sizeof(name), "new%03d", round);
			cache_forget(c, mkfile(c, d, name), 1);
		}
		if (round == 3)
			ASSERT_OK(cache_rename(c, d, "t051", d, "t051-moved",
					       0));
		ASSERT_TRUE(++round < 100);
	}
	ASSERT_STREQ(seen.e[0].name, ".");
	ASSERT_STREQ(seen.e[1].name, "..");
	for (int i = 0; i < 10; i++) {		/* added after our position */
		snprintf(name, sizeof(name), "new%03d", i);
		ASSERT_EQ(count_ent(&seen, name), 1u);
	}
	for (int i = 0; i < 100; i += 2) {
		snprintf(name, sizeof(name), "s%03d", i);
		if (count_ent(&seen, name) != 1)
			test_diag("%s seen %zu times", name,
				  count_ent(&seen, name));
		ASSERT_EQ(count_ent(&seen, name), 1u);
	}
	for (size_t i = 0; i < seen.n; i++)
		ASSERT_EQ(count_ent(&seen, seen.e[i].name), 1u);
	free(seen.e);
	ASSERT_OK(cache_close(c));
}

TEST(readdirplus_takes_refs)
{
	struct cache *c = fresh();
	uint64_t f, g, h, sub;
	struct listing l;
	struct stat st;
	long k;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	g = mkfile(c, CACHE_ROOT_INO, "g");
	h = mkfile(c, CACHE_ROOT_INO, "h");
	sub = mkdir_(c, CACHE_ROOT_INO, "sub");
	cache_forget(c, f, 1);
	cache_forget(c, g, 1);
	cache_forget(c, h, 1);
	cache_forget(c, sub, 1);

	/* plain readdir: no references, partial attributes */
	l = list_dir(c, CACHE_ROOT_INO, 0, 0, 0);
	k = find_ent(&l, "g");
	ASSERT_TRUE(k >= 0);
	ASSERT_EQ(l.e[k].st.st_ino, g);
	ASSERT_EQ(l.e[k].st.st_mode & S_IFMT, (mode_t)S_IFREG);
	free(l.e);
	ASSERT_OK(cache_unlink(c, CACHE_ROOT_INO, "g"));
	ASSERT_ERR(cache_getattr(c, g, &st), -ENOENT);

	/* readdirplus stopped before "h" (entries: . .. f h sub) */
	l = list_dir(c, CACHE_ROOT_INO, 0, 1, 3);
	ASSERT_EQ(l.n, 3u);
	ASSERT_STREQ(l.e[2].name, "f");
	ASSERT_EQ(l.e[2].st.st_ino, f);
	ASSERT_EQ(l.e[2].st.st_mode, (mode_t)(S_IFREG | 0644));
	ASSERT_EQ(l.e[2].st.st_nlink, (nlink_t)1);
	ASSERT_EQ(l.e[2].st.st_uid, cred.uid);
	free(l.e);
	ASSERT_OK(cache_unlink(c, CACHE_ROOT_INO, "h"));
	ASSERT_ERR(cache_getattr(c, h, &st), -ENOENT);	/* no ref taken */
	ASSERT_OK(cache_unlink(c, CACHE_ROOT_INO, "f"));
	st = attr(c, f);				/* ref held */
	ASSERT_EQ(st.st_nlink, (nlink_t)0);
	cache_forget(c, f, 1);
	ASSERT_ERR(cache_getattr(c, f, &st), -ENOENT);

	/* "." and ".." take no references */
	l = list_dir(c, sub, 0, 1, 0);
	ASSERT_EQ(l.n, 2u);
	ASSERT_EQ(l.e[0].st.st_nlink, (nlink_t)2);
	ASSERT_EQ(l.e[1].st.st_ino, (ino_t)CACHE_ROOT_INO);
	free(l.e);
	ASSERT_OK(cache_rmdir(c, CACHE_ROOT_INO, "sub"));
	ASSERT_ERR(cache_getattr(c, sub, &st), -ENOENT);
	ASSERT_EQ(stats(c).inodes, 1u);
	ASSERT_OK(cache_close(c));
}

/* === symlinks ========================================================== */

TEST(symlink_readlink)
{
	struct cache *c = fresh();
	char target[4001], buf[4096];
	uint64_t l, f;
	struct stat st;

	ASSERT_OK(cache_mknod(c, CACHE_ROOT_INO, "short", S_IFLNK | 0777, 0,
			      "a/b", &cred, &st));
	ASSERT_EQ(st.st_size, 3);
	ASSERT_EQ(cache_readlink(c, st.st_ino, buf, sizeof(buf)), 0);
	ASSERT_STREQ(buf, "a/b");
	ASSERT_ERR(cache_readlink(c, st.st_ino, buf, 3), -ERANGE);
	ASSERT_EQ(cache_readlink(c, st.st_ino, buf, 4), 0);
	ASSERT_STREQ(buf, "a/b");

	for (size_t i = 0; i < 4000; i++)
		target[i] = (char)('a' + i % 26);
	target[4000] = '\0';
	ASSERT_OK(cache_mknod(c, CACHE_ROOT_INO, "long", S_IFLNK | 0777, 0,
			      target, &cred, &st));
	l = st.st_ino;
	ASSERT_EQ(st.st_size, 4000);
	ASSERT_EQ(attr(c, l).st_size, 4000);
	memset(buf, 0, sizeof(buf));
	ASSERT_OK(cache_readlink(c, l, buf, sizeof(buf)));
	ASSERT_STREQ(buf, target);
	ASSERT_ERR(cache_readlink(c, l, buf, 4000), -ERANGE);
	ASSERT_ERR(cache_readlink(c, l, buf, 100), -ERANGE);

	/* a setattr must keep the target */
	st.st_uid = 7;
	ASSERT_OK(cache_setattr(c, l, CACHE_SET_UID, &st, &st));
	ASSERT_OK(cache_readlink(c, l, buf, sizeof(buf)));
	ASSERT_STREQ(buf, target);

	f = mkfile(c, CACHE_ROOT_INO, "file");
	ASSERT_ERR(cache_readlink(c, f, buf, sizeof(buf)), -EINVAL);
	ASSERT_OK(cache_close(c));
}

/* === extended attributes =============================================== */

TEST(xattr_set_get_list_remove)
{
	struct cache *c = fresh();
	char buf[256];
	uint64_t f;
	int n;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)), 0);
	ASSERT_OK(cache_setxattr(c, f, "user.alpha", "one", 3, 0));
	ASSERT_OK(cache_setxattr(c, f, "user.beta", "", 0, 0));
	ASSERT_OK(cache_setxattr(c, f, "user.gamma", "three!", 6, 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.alpha", buf, sizeof(buf)), 3);
	ASSERT_TRUE(memcmp(buf, "one", 3) == 0);
	ASSERT_EQ(cache_getxattr(c, f, "user.beta", buf, sizeof(buf)), 0);
	ASSERT_ERR(cache_getxattr(c, f, "user.none", buf, sizeof(buf)),
		   -ENODATA);

	n = cache_listxattr(c, f, buf, sizeof(buf));
	ASSERT_EQ(n, (int)sizeof("user.alpha\0user.beta\0user.gamma"));
	ASSERT_TRUE(memcmp(buf, "user.alpha\0user.beta\0user.gamma", (size_t)n)
		    == 0);

	/* overwrite */
	ASSERT_OK(cache_setxattr(c, f, "user.alpha", "uno!", 4, 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.alpha", buf, sizeof(buf)), 4);
	ASSERT_TRUE(memcmp(buf, "uno!", 4) == 0);

	ASSERT_OK(cache_removexattr(c, f, "user.beta"));
	ASSERT_ERR(cache_removexattr(c, f, "user.beta"), -ENODATA);
	ASSERT_ERR(cache_getxattr(c, f, "user.beta", buf, sizeof(buf)),
		   -ENODATA);
	n = cache_listxattr(c, f, buf, sizeof(buf));
	ASSERT_EQ(n, (int)sizeof("user.alpha\0user.gamma"));

	/* directories carry them too, separately */
	ASSERT_OK(cache_setxattr(c, CACHE_ROOT_INO, "user.r", "x", 1, 0));
	ASSERT_EQ(cache_listxattr(c, CACHE_ROOT_INO, buf, sizeof(buf)),
		  (int)sizeof("user.r"));
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)), n);
	ASSERT_OK(cache_close(c));
}

TEST(xattr_create_replace)
{
	struct cache *c = fresh();
	char buf[16];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_ERR(cache_setxattr(c, f, "user.a", "1", 1, CACHE_XATTR_REPLACE),
		   -ENODATA);
	ASSERT_OK(cache_setxattr(c, f, "user.a", "1", 1, CACHE_XATTR_CREATE));
	ASSERT_ERR(cache_setxattr(c, f, "user.a", "2", 1, CACHE_XATTR_CREATE),
		   -EEXIST);
	ASSERT_EQ(cache_getxattr(c, f, "user.a", buf, sizeof(buf)), 1);
	ASSERT_EQ(buf[0], '1');
	ASSERT_OK(cache_setxattr(c, f, "user.a", "3", 1, CACHE_XATTR_REPLACE));
	ASSERT_EQ(cache_getxattr(c, f, "user.a", buf, sizeof(buf)), 1);
	ASSERT_EQ(buf[0], '3');
	ASSERT_OK(cache_close(c));
}

TEST(xattr_sizes)
{
	struct cache *c = fresh();
	unsigned char *big, *back;
	char buf[64];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_OK(cache_setxattr(c, f, "user.name", "0123456789", 10, 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.name", NULL, 0), 10);
	ASSERT_ERR(cache_getxattr(c, f, "user.name", buf, 9), -ERANGE);
	ASSERT_EQ(cache_getxattr(c, f, "user.name", buf, 10), 10);
	ASSERT_EQ(cache_listxattr(c, f, NULL, 0), (int)sizeof("user.name"));
	ASSERT_ERR(cache_listxattr(c, f, buf, sizeof("user.name") - 1),
		   -ERANGE);
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof("user.name")),
		  (int)sizeof("user.name"));

	big = malloc(CACHE_XATTR_SIZE_MAX + 1);
	back = malloc(CACHE_XATTR_SIZE_MAX);
	ASSERT_TRUE(big && back);
	fill(big, CACHE_XATTR_SIZE_MAX + 1, 5);
	ASSERT_OK(cache_setxattr(c, f, "user.big", big, CACHE_XATTR_SIZE_MAX,
				 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.big", NULL, 0),
		  CACHE_XATTR_SIZE_MAX);
	ASSERT_EQ(cache_getxattr(c, f, "user.big", back, CACHE_XATTR_SIZE_MAX),
		  CACHE_XATTR_SIZE_MAX);
	ASSERT_TRUE(memcmp(big, back, CACHE_XATTR_SIZE_MAX) == 0);
	ASSERT_TRUE(cache_setxattr(c, f, "user.bigger", big,
				   CACHE_XATTR_SIZE_MAX + 1, 0) < 0);
	ASSERT_ERR(cache_getxattr(c, f, "user.bigger", NULL, 0), -ENODATA);
	free(big);
	free(back);
	ASSERT_OK(cache_close(c));
}

TEST(xattr_other_namespaces)
{
	static const char *const names[] = {
		"trusted.x", "security.x", "system.posix_acl_access", "user.",
		"plain",
	};
	struct cache *c = fresh();
	char buf[64];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		test_diag("name %s", names[i]);
		ASSERT_ERR(cache_setxattr(c, f, names[i], "v", 1, 0), -ENOTSUP);
		ASSERT_ERR(cache_getxattr(c, f, names[i], buf, sizeof(buf)),
			   -ENOTSUP);
		ASSERT_ERR(cache_removexattr(c, f, names[i]), -ENOTSUP);
	}
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)), 0);
	ASSERT_OK(cache_close(c));
}

/* === file content ====================================================== */

TEST(file_write_read)
{
	struct cache *c = fresh();
	unsigned char a[100000], b[100000];
	struct cache_extent ext;
	struct cache_file *f;
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	ASSERT_OK(cache_read_extent(c, f, 0, 10, &ext));
	ASSERT_EQ(ext.len, 0u);
	fill(a, sizeof(a), 1);
	wr(c, f, 0, a, sizeof(a));
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), sizeof(b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
	/* a window in the middle, and the clamped tail */
	ASSERT_EQ(rd(c, f, 4097, b, 5000), 5000u);
	ASSERT_TRUE(memcmp(a + 4097, b, 5000) == 0);
	ASSERT_EQ(rd(c, f, sizeof(a) - 10, b, 1000), 10u);
	ASSERT_TRUE(memcmp(a + sizeof(a) - 10, b, 10) == 0);
	ASSERT_OK(cache_read_extent(c, f, sizeof(a), 10, &ext));
	ASSERT_EQ(ext.len, 0u);
	ASSERT_OK(cache_read_extent(c, f, sizeof(a) + 5000, 10, &ext));
	ASSERT_EQ(ext.len, 0u);

	/* overwrite a piece in the middle */
	fill(b, 3000, 2);
	wr(c, f, 50000, b, 3000);
	memcpy(a + 50000, b, 3000);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), sizeof(b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
	ASSERT_EQ(attr(c, ino).st_size, (off_t)sizeof(a));

	/* a second handle shares the state */
	{
		struct cache_file *g = fopen_(c, ino, 0);

		ASSERT_EQ(rd(c, g, 50000, b, 3000), 3000u);
		ASSERT_TRUE(memcmp(a + 50000, b, 3000) == 0);
		cache_file_release(c, g);
	}
	ASSERT_OK(cache_file_flush(c, f));
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
}

TEST(file_open_not_regular)
{
	struct cache *c = fresh();
	struct cache_file *f = NULL;
	uint64_t d, p;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	p = mk(c, CACHE_ROOT_INO, "p", S_IFIFO | 0644);
	ASSERT_TRUE(cache_file_open(c, d, 0, &f) < 0);
	ASSERT_TRUE(cache_file_open(c, p, 0, &f) < 0);
	ASSERT_TRUE(f == NULL);
	ASSERT_OK(cache_close(c));
}

TEST(file_holes_read_zero)
{
	struct cache *c = fresh();
	static unsigned char buf[1 << 20];
	struct cache_file *f;
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	wr(c, f, 1 * MiB, "tail", 4);
	ASSERT_EQ(attr(c, ino).st_size, (off_t)(MiB + 4));
	memset(buf, 0xff, sizeof(buf));
	ASSERT_EQ(rd(c, f, 0, buf, sizeof(buf)), sizeof(buf));
	ASSERT_TRUE(all_zero(buf, sizeof(buf)));
	ASSERT_EQ(rd(c, f, MiB - 2, buf, 100), 6u);
	ASSERT_TRUE(memcmp(buf, "\0\0tail", 6) == 0);
	ASSERT_OK(cache_file_flush(c, f));
	ASSERT_TRUE(attr(c, ino).st_blocks < 64);	/* sparse */
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
}

TEST(file_write_at_5gib)
{
	struct cache *c = fresh();
	unsigned char data[8192], back[8192];
	struct cache_file *f;
	uint64_t ino, off = 5 * GiB;
	struct stat st;

	ino = mkfile(c, CACHE_ROOT_INO, "big");
	f = fopen_(c, ino, 0);
	fill(data, sizeof(data), 9);
	wr(c, f, off, data, sizeof(data));
	st = attr(c, ino);
	ASSERT_EQ(st.st_size, (off_t)(off + sizeof(data)));
	ASSERT_EQ(rd(c, f, off, back, sizeof(back)), sizeof(back));
	ASSERT_TRUE(memcmp(data, back, sizeof(data)) == 0);
	memset(back, 0xff, sizeof(back));
	ASSERT_EQ(rd(c, f, 4 * GiB, back, sizeof(back)), sizeof(back));
	ASSERT_TRUE(all_zero(back, sizeof(back)));
	ASSERT_OK(cache_file_flush(c, f));
	st = attr(c, ino);
	ASSERT_EQ(st.st_size, (off_t)(off + sizeof(data)));
	ASSERT_TRUE(st.st_blocks < 1024);
	ASSERT_TRUE(stats(c).used_bytes < MiB);
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
}

TEST(file_truncate_setattr)
{
	struct cache *c = fresh();
	unsigned char a[20000], b[20000];
	struct cache_file *f;
	struct stat in, out;
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	fill(a, sizeof(a), 3);
	wr(c, f, 0, a, sizeof(a));

	memset(&in, 0, sizeof(in));
	in.st_size = 5000;
	ASSERT_OK(cache_setattr(c, ino, CACHE_SET_SIZE, &in, &out));
	ASSERT_EQ(out.st_size, 5000);
	ASSERT_EQ(attr(c, ino).st_size, 5000);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), 5000u);
	ASSERT_TRUE(memcmp(a, b, 5000) == 0);

	in.st_size = 12000;			/* up again: zeros */
	ASSERT_OK(cache_setattr(c, ino, CACHE_SET_SIZE, &in, &out));
	ASSERT_EQ(out.st_size, 12000);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), 12000u);
	ASSERT_TRUE(memcmp(a, b, 5000) == 0);
	ASSERT_TRUE(all_zero(b + 5000, 7000));

	in.st_size = 3 * GiB;			/* far up: sparse */
	ASSERT_OK(cache_setattr(c, ino, CACHE_SET_SIZE, &in, &out));
	ASSERT_EQ(out.st_size, (off_t)(3 * GiB));
	ASSERT_TRUE(out.st_blocks < 1024);
	ASSERT_EQ(rd(c, f, 3 * GiB - 100, b, 1000), 100u);
	ASSERT_TRUE(all_zero(b, 100));

	in.st_size = 0;
	ASSERT_OK(cache_setattr(c, ino, CACHE_SET_SIZE, &in, &out));
	ASSERT_EQ(out.st_size, 0);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), 0u);
	cache_file_release(c, f);

	/* without an open handle, too */
	in.st_size = 777;
	ASSERT_OK(cache_setattr(c, ino, CACHE_SET_SIZE, &in, &out));
	ASSERT_EQ(attr(c, ino).st_size, 777);
	f = fopen_(c, ino, 0);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), 777u);
	ASSERT_TRUE(all_zero(b, 777));
	cache_file_release(c, f);

	/* a directory has no size to set */
	ASSERT_TRUE(cache_setattr(c, CACHE_ROOT_INO, CACHE_SET_SIZE, &in,
				  &out) < 0);
	ASSERT_OK(cache_close(c));
}

TEST(file_open_trunc)
{
	struct cache *c = fresh();
	struct cache_file *f;
	unsigned char b[16];
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	wr(c, f, 0, "0123456789", 10);
	ASSERT_OK(cache_file_flush(c, f));
	cache_file_release(c, f);
	ASSERT_EQ(attr(c, ino).st_size, 10);

	f = fopen_(c, ino, 1);
	ASSERT_EQ(attr(c, ino).st_size, 0);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), 0u);
	wr(c, f, 2, "ab", 2);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), 4u);
	ASSERT_TRUE(memcmp(b, "\0\0ab", 4) == 0);
	cache_file_release(c, f);
	ASSERT_EQ(attr(c, ino).st_size, 4);
	ASSERT_OK(cache_close(c));
}

/* write() records the size in memory; getattr must see it at once. */
TEST(file_size_pending_and_flushed)
{
	struct cache_config cfg = format_limit(20 * GiB);
	struct cache *c = open_rw(&cfg);
	struct cache_file *f;
	struct stat st;
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	wr(c, f, 0, "hello", 5);
	st = attr(c, ino);
	ASSERT_EQ(st.st_size, 5);
	ASSERT_OK(cache_lookup(c, CACHE_ROOT_INO, "f", &st));
	ASSERT_EQ(st.st_size, 5);
	cache_forget(c, ino, 1);
	wr(c, f, 100, "world", 5);
	ASSERT_EQ(attr(c, ino).st_size, 105);
	ASSERT_OK(cache_file_flush(c, f));
	ASSERT_EQ(attr(c, ino).st_size, 105);
	wr(c, f, 200, "again", 5);
	ASSERT_EQ(attr(c, ino).st_size, 205);
	cache_file_release(c, f);		/* folds without a flush */
	ASSERT_EQ(attr(c, ino).st_size, 205);
	ASSERT_OK(cache_close(c));

	c = open_rw(&cfg);
	ASSERT_EQ(attr(c, ino).st_size, 205);
	ASSERT_OK(cache_close(c));
}

TEST(file_fallocate)
{
	struct cache *c = fresh();
	unsigned char b[4096];
	struct cache_file *f;
	struct stat st;
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	ASSERT_OK(cache_fallocate(c, f, 0, 0, MiB));
	st = attr(c, ino);
	ASSERT_EQ(st.st_size, (off_t)MiB);
	ASSERT_TRUE(st.st_blocks >= (blkcnt_t)(MiB / 512));
	memset(b, 0xff, sizeof(b));
	ASSERT_EQ(rd(c, f, MiB - sizeof(b), b, sizeof(b)), sizeof(b));
	ASSERT_TRUE(all_zero(b, sizeof(b)));
	/* inside the size: the size stays */
	ASSERT_OK(cache_fallocate(c, f, 0, 4096, 8192));
	ASSERT_EQ(attr(c, ino).st_size, (off_t)MiB);
	ASSERT_ERR(cache_fallocate(c, f, FALLOC_FL_KEEP_SIZE, 0, 2 * MiB),
		   -EOPNOTSUPP);
	ASSERT_ERR(cache_fallocate(c, f, FALLOC_FL_PUNCH_HOLE |
				   FALLOC_FL_KEEP_SIZE, 0, 4096), -EOPNOTSUPP);
	ASSERT_EQ(attr(c, ino).st_size, (off_t)MiB);
	ASSERT_OK(cache_fsync(c, f, 0));
	ASSERT_TRUE(stats(c).used_bytes >= MiB);
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
}

TEST(file_enospc)
{
	struct cache_config cfg = format_limit(4 * MiB);
	struct cache *c = open_rw(&cfg);
	static unsigned char chunk[64 * 1024];
	struct cache_file *f;
	uint64_t ino, done = 0;
	ssize_t w = 0;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	fill(chunk, sizeof(chunk), 4);
	while (done < 8 * MiB) {
		w = cache_write(c, f, done, chunk, sizeof(chunk));
		if (w < 0)
			break;
		ASSERT_EQ(w, (ssize_t)sizeof(chunk));
		done += sizeof(chunk);
	}
	test_diag("wrote %llu bytes before %zd", (unsigned long long)done, w);
	ASSERT_ERR(w, -ENOSPC);
	ASSERT_TRUE(done >= 4 * MiB - 256 * KiB);
	ASSERT_TRUE(done <= 4 * MiB);
	/* it stays full; overwriting in place is still refused or fine,
	 * but growing is not */
	ASSERT_ERR(cache_write(c, f, 6 * MiB, chunk, sizeof(chunk)), -ENOSPC);
	ASSERT_EQ(attr(c, ino).st_size, (off_t)done);
	ASSERT_OK(cache_file_flush(c, f));
	ASSERT_TRUE(stats(c).used_bytes <= 4 * MiB);
	cache_file_release(c, f);

	/* freeing the file makes room again */
	ASSERT_OK(cache_unlink(c, CACHE_ROOT_INO, "f"));
	cache_forget(c, ino, 1);
	ASSERT_EQ(stats(c).used_bytes, 0u);
	ino = mkfile(c, CACHE_ROOT_INO, "g");
	f = fopen_(c, ino, 0);
	wr(c, f, 0, chunk, sizeof(chunk));
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
}

TEST(unlink_open_file)
{
	struct cache *c = fresh();
	static unsigned char a[1 << 20], b[1 << 20];
	struct cache_file *f;
	struct cache_stats s;
	uint64_t ino, used;
	struct stat st;

	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	fill(a, sizeof(a), 6);
	wr(c, f, 0, a, sizeof(a));
	ASSERT_OK(cache_fsync(c, f, 0));	/* folds: used_bytes is exact */
	used = stats(c).used_bytes;
	ASSERT_TRUE(used >= sizeof(a));

	ASSERT_OK(cache_unlink(c, CACHE_ROOT_INO, "f"));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "f"), -ENOENT);
	cache_forget(c, ino, 1);		/* mknod's reference */
	st = attr(c, ino);			/* the handle keeps it */
	ASSERT_EQ(st.st_nlink, (nlink_t)0);
	ASSERT_EQ(st.st_size, (off_t)sizeof(a));
	s = stats(c);
	ASSERT_EQ(s.orphans, 1u);
	ASSERT_EQ(s.inodes, 2u);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), sizeof(b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
	wr(c, f, sizeof(a), "more", 4);		/* still writable */
	ASSERT_EQ(rd(c, f, sizeof(a), b, 10), 4u);

	cache_file_release(c, f);
	ASSERT_ERR(cache_getattr(c, ino, &st), -ENOENT);
	s = stats(c);
	ASSERT_EQ(s.orphans, 0u);
	ASSERT_EQ(s.inodes, 1u);
	ASSERT_TRUE(s.used_bytes < used);
	ASSERT_EQ(s.used_bytes, 0u);
	ASSERT_OK(cache_close(c));
}

/*
 * A child opens the cache, creates, opens and unlinks a file with data,
 * and dies without cache_close().  The next read-write open frees it.
 */
TEST(orphan_recovery_after_crash)
{
	struct cache_config cfg = format_limit(20 * GiB);
	struct cache *c = NULL;
	struct cache_stats s;
	uint64_t ino = 0;
	struct stat st;
	int pfd[2];
	pid_t pid;

	ASSERT_OK(pipe(pfd));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		static unsigned char data[1 << 20];
		struct cache_file *f;

		close(pfd[0]);
		fill(data, sizeof(data), 8);
		if (cache_open(&c, &cfg, 0) ||
		    cache_mknod(c, CACHE_ROOT_INO, "doomed", S_IFREG | 0600,
				0, NULL, &cred, &st) ||
		    cache_file_open(c, st.st_ino, 0, &f) ||
		    cache_write(c, f, 0, data, sizeof(data)) !=
		    (ssize_t)sizeof(data) ||
		    cache_fsync(c, f, 0) ||
		    cache_unlink(c, CACHE_ROOT_INO, "doomed"))
			_exit(1);
		ino = st.st_ino;
		pipe_write(pfd[1], &ino, sizeof(ino));
		_exit(0);		/* a crash: no release, no close */
	}
	close(pfd[1]);
	ASSERT_TRUE(pipe_read(pfd[0], &ino, sizeof(ino)));
	close(pfd[0]);
	ASSERT_EQ(wait_child(pid), 0);

	/* a read-only open sees the orphan and leaves it */
	ASSERT_OK(cache_open(&c, &cfg, CACHE_OPEN_RDONLY));
	s = stats(c);
	ASSERT_EQ(s.orphans, 1u);
	ASSERT_EQ(s.inodes, 2u);
	ASSERT_TRUE(s.used_bytes >= MiB);
	ASSERT_EQ(s.mounted, 0);
	ASSERT_EQ(attr(c, ino).st_nlink, (nlink_t)0);
	ASSERT_OK(cache_close(c));

	c = open_rw(&cfg);
	s = stats(c);
	ASSERT_EQ(s.orphans, 0u);
	ASSERT_EQ(s.inodes, 1u);
	ASSERT_EQ(s.used_bytes, 0u);
	ASSERT_ERR(cache_getattr(c, ino, &st), -ENOENT);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "doomed"), -ENOENT);
	ASSERT_OK(cache_close(c));
}

/* === setattr =========================================================== */

TEST(setattr_mode_keeps_type)
{
	struct cache *c = fresh();
	struct stat in, out;
	uint64_t f, d;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	d = mkdir_(c, CACHE_ROOT_INO, "d");
	memset(&in, 0, sizeof(in));

	/* age the ctime so that the chmod's update is visible */
	in.st_ctim = (struct timespec){ 1000, 5 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_CTIME, &in, &out));
	ASSERT_TRUE(ts_eq(out.st_ctim, in.st_ctim));
	ASSERT_TRUE(ts_eq(attr(c, f).st_ctim, in.st_ctim));

	in.st_mode = S_IFDIR | 04711;	/* type bits must be ignored */
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_MODE, &in, &out));
	ASSERT_EQ(out.st_mode, (mode_t)(S_IFREG | 04711));
	ASSERT_EQ(attr(c, f).st_mode, (mode_t)(S_IFREG | 04711));
	ASSERT_TRUE(out.st_ctim.tv_sec > 1000);
	ASSERT_TRUE(attr(c, f).st_ctim.tv_sec > 1000);

	in.st_mode = 01777;
	ASSERT_OK(cache_setattr(c, d, CACHE_SET_MODE, &in, &out));
	ASSERT_EQ(out.st_mode, (mode_t)(S_IFDIR | 01777));
	ASSERT_EQ(attr(c, d).st_nlink, (nlink_t)2);
	ASSERT_OK(cache_close(c));
}

TEST(setattr_owner)
{
	struct cache *c = fresh();
	struct stat in, out;
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	memset(&in, 0, sizeof(in));
	in.st_uid = 4242;
	in.st_gid = 4343;
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_UID, &in, &out));
	ASSERT_EQ(out.st_uid, (uid_t)4242);
	ASSERT_EQ(out.st_gid, cred.gid);
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_GID, &in, &out));
	ASSERT_EQ(out.st_gid, (gid_t)4343);
	in.st_uid = 0;
	in.st_gid = 0;
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_UID | CACHE_SET_GID, &in,
				&out));
	out = attr(c, f);
	ASSERT_EQ(out.st_uid, (uid_t)0);
	ASSERT_EQ(out.st_gid, (gid_t)0);
	ASSERT_EQ(out.st_mode, (mode_t)(S_IFREG | 0644));
	ASSERT_OK(cache_close(c));
}

TEST(setattr_times)
{
	struct cache_config cfg = format_limit(20 * GiB);
	struct cache *c = open_rw(&cfg);
	struct timespec t0, t1;
	struct cache_file *fh;
	struct stat in, out;
	uint64_t f, d;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	d = mkdir_(c, CACHE_ROOT_INO, "d");
	memset(&in, 0, sizeof(in));
	in.st_atim = (struct timespec){ 1000000000, 123456789 };
	in.st_mtim = (struct timespec){ 1500000000, 987654321 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_ATIME | CACHE_SET_MTIME, &in,
				&out));
	ASSERT_TRUE(ts_eq(out.st_atim, in.st_atim));
	ASSERT_TRUE(ts_eq(out.st_mtim, in.st_mtim));
	ASSERT_TRUE(ts_eq(attr(c, f).st_atim, in.st_atim));
	ASSERT_TRUE(ts_eq(attr(c, f).st_mtim, in.st_mtim));
	ASSERT_OK(cache_setattr(c, d, CACHE_SET_ATIME | CACHE_SET_MTIME, &in,
				&out));
	ASSERT_TRUE(ts_eq(attr(c, d).st_mtim, in.st_mtim));

	/* pre-epoch and far-future values */
	in.st_atim = (struct timespec){ -86400, 1 };
	in.st_mtim = (struct timespec){ 4102444800LL, 999999999 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_ATIME | CACHE_SET_MTIME, &in,
				&out));
	ASSERT_TRUE(ts_eq(attr(c, f).st_atim, in.st_atim));
	ASSERT_TRUE(ts_eq(attr(c, f).st_mtim, in.st_mtim));

	/* only the atime: the mtime stays */
	in.st_atim = (struct timespec){ 1234, 5678 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_ATIME, &in, &out));
	ASSERT_TRUE(ts_eq(out.st_atim, in.st_atim));
	ASSERT_TRUE(ts_eq(out.st_mtim, in.st_mtim));

	/* an open handle with pending writes must not clobber set times */
	fh = fopen_(c, f, 0);
	wr(c, fh, 0, "x", 1);
	in.st_mtim = (struct timespec){ 1600000000, 1 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_MTIME, &in, &out));
	ASSERT_TRUE(ts_eq(attr(c, f).st_mtim, in.st_mtim));
	ASSERT_OK(cache_file_flush(c, fh));
	cache_file_release(c, fh);
	ASSERT_TRUE(ts_eq(attr(c, f).st_mtim, in.st_mtim));

	t0 = now();
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_ATIME_NOW | CACHE_SET_MTIME_NOW,
				&in, &out));
	t1 = now();
	ASSERT_TRUE(ts_le(t0, out.st_atim) && ts_le(out.st_atim, t1));
	ASSERT_TRUE(ts_le(t0, out.st_mtim) && ts_le(out.st_mtim, t1));
	ASSERT_TRUE(ts_le(t0, out.st_ctim) && ts_le(out.st_ctim, t1));

	/* explicit values survive a reopen exactly */
	in.st_atim = (struct timespec){ 1111111111, 111111111 };
	in.st_mtim = (struct timespec){ 1222222222, 222222222 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_ATIME | CACHE_SET_MTIME, &in,
				&out));
	ASSERT_OK(cache_close(c));
	c = open_rw(&cfg);
	out = attr(c, f);
	ASSERT_TRUE(ts_eq(out.st_atim, in.st_atim));
	ASSERT_TRUE(ts_eq(out.st_mtim, in.st_mtim));
	ASSERT_OK(cache_close(c));
}

TEST(write_updates_mtime_and_ctime)
{
	struct cache *c = fresh();
	struct cache_file *fh;
	struct stat in, out;
	struct timespec t0;
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	memset(&in, 0, sizeof(in));
	in.st_mtim = (struct timespec){ 1000, 0 };
	in.st_ctim = (struct timespec){ 1000, 0 };
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_MTIME | CACHE_SET_CTIME, &in,
				&out));
	t0 = now();
	fh = fopen_(c, f, 0);
	wr(c, fh, 0, "abc", 3);
	out = attr(c, f);
	ASSERT_TRUE(ts_le(t0, out.st_mtim));
	ASSERT_TRUE(ts_le(t0, out.st_ctim));
	cache_file_release(c, fh);
	out = attr(c, f);
	ASSERT_TRUE(ts_le(t0, out.st_mtim));
	ASSERT_OK(cache_close(c));
}

/* === persistence ======================================================= */

static void stat_same(const struct stat *a, const struct stat *b)
{
	ASSERT_EQ(a->st_ino, b->st_ino);
	ASSERT_EQ(a->st_mode, b->st_mode);
	ASSERT_EQ(a->st_nlink, b->st_nlink);
	ASSERT_EQ(a->st_uid, b->st_uid);
	ASSERT_EQ(a->st_gid, b->st_gid);
	ASSERT_EQ(a->st_rdev, b->st_rdev);
	ASSERT_EQ(a->st_size, b->st_size);
	ASSERT_EQ(a->st_blocks, b->st_blocks);
	ASSERT_TRUE(ts_eq(a->st_atim, b->st_atim));
	ASSERT_TRUE(ts_eq(a->st_mtim, b->st_mtim));
	ASSERT_TRUE(ts_eq(a->st_ctim, b->st_ctim));
}

TEST(persistence_across_reopen)
{
	struct cache_config cfg = format_limit(20 * GiB);
	static unsigned char a[3 << 20], b[3 << 20];
	struct stat st_f, st_d, st_l, st_r, st;
	struct cache *c = open_rw(&cfg);
	struct cache_file *f;
	uint64_t fi, di, li;
	char buf[64];

	fi = mkfile(c, CACHE_ROOT_INO, "record.pdf");
	di = mkdir_(c, CACHE_ROOT_INO, "patient");
	ASSERT_OK(cache_mknod(c, di, "latest", S_IFLNK | 0777, 0,
			      "../record.pdf", &cred, &st));
	li = st.st_ino;
	f = fopen_(c, fi, 0);
	fill(a, sizeof(a), 11);
	wr(c, f, 0, a, 1 << 20);
	wr(c, f, 2 << 20, a + (2 << 20), 1 << 20);
	memset(a + (1 << 20), 0, 1 << 20);	/* the hole */
	ASSERT_OK(cache_setxattr(c, fi, "user.mime", "application/pdf", 15, 0));
	memset(&st, 0, sizeof(st));
	st.st_mode = 0600;
	ASSERT_OK(cache_setattr(c, fi, CACHE_SET_MODE, &st, &st));
	ASSERT_OK(cache_fsync(c, f, 0));
	wr(c, f, 10, "late", 4);		/* then a data-only fsync */
	memcpy(a + 10, "late", 4);
	ASSERT_OK(cache_fsync(c, f, 1));
	cache_file_release(c, f);
	st_f = attr(c, fi);
	st_d = attr(c, di);
	st_l = attr(c, li);
	st_r = attr(c, CACHE_ROOT_INO);
	ASSERT_EQ(st_f.st_size, (off_t)sizeof(a));
	ASSERT_OK(cache_close(c));

	c = open_rw(&cfg);
	st = attr(c, fi);
	stat_same(&st, &st_f);
	st = attr(c, di);
	stat_same(&st, &st_d);
	st = attr(c, li);
	stat_same(&st, &st_l);
	st = attr(c, CACHE_ROOT_INO);
	stat_same(&st, &st_r);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "record.pdf"), (long long)fi);
	ASSERT_EQ(look(c, di, "latest"), (long long)li);
	ASSERT_OK(cache_readlink(c, li, buf, sizeof(buf)));
	ASSERT_STREQ(buf, "../record.pdf");
	ASSERT_EQ(cache_getxattr(c, fi, "user.mime", buf, sizeof(buf)), 15);
	ASSERT_TRUE(memcmp(buf, "application/pdf", 15) == 0);
	f = fopen_(c, fi, 0);
	ASSERT_EQ(rd(c, f, 0, b, sizeof(b)), sizeof(b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
	cache_file_release(c, f);

	/* new inode numbers do not reuse old ones */
	st.st_ino = mkfile(c, CACHE_ROOT_INO, "new");
	ASSERT_TRUE(st.st_ino != fi && st.st_ino != di && st.st_ino != li);
	ASSERT_TRUE(st.st_ino > li);
	ASSERT_OK(cache_sync(c));
	ASSERT_OK(cache_close(c));
}

/* A session ended by a signal never sends RELEASE for files still
 * open: cache_close() drops those handles, folds what they wrote, and
 * leaves nothing for the sanitizers to report. */
TEST(close_with_open_handles)
{
	struct cache_config cfg = format_limit(20 * GiB);
	struct cache *c = open_rw(&cfg);
	struct cache_file *f1, *f2;
	uint64_t a, b;
	char buf[8];

	a = mkfile(c, CACHE_ROOT_INO, "a");
	b = mkfile(c, CACHE_ROOT_INO, "b");
	f1 = fopen_(c, a, 0);
	f2 = fopen_(c, b, 0);
	wr(c, f1, 0, "left", 4);
	wr(c, f2, 100, "open", 4);
	ASSERT_OK(cache_close(c));

	c = open_rw(&cfg);
	ASSERT_EQ(attr(c, a).st_size, (off_t)4);
	ASSERT_EQ(attr(c, b).st_size, (off_t)104);
	f1 = fopen_(c, b, 0);
	ASSERT_EQ(rd(c, f1, 100, buf, sizeof(buf)), 4);
	ASSERT_TRUE(memcmp(buf, "open", 4) == 0);
	cache_file_release(c, f1);
	ASSERT_OK(cache_close(c));
}

/*
 * A power loss can roll an unlink back after its data file was moved to
 * data/trash (the layout cache.h documents).  Simulate that state: the
 * inode alive in LMDB, its data in the trash.  Open must put it back;
 * data of inodes that are really gone must be deleted.
 */
TEST(trash_recovered_at_open)
{
	struct cache_config cfg = format_limit(20 * GiB);
	struct cache *c = open_rw(&cfg);
	struct cache_file *f;
	char from[PATH_MAX], to[PATH_MAX], buf[16];
	uint64_t ino;

	ino = mkfile(c, CACHE_ROOT_INO, "letter.txt");
	f = fopen_(c, ino, 0);
	wr(c, f, 0, "kept content", 12);
	ASSERT_OK(cache_fsync(c, f, 0));
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
	snprintf(from, sizeof(from), "%s/data/%02x/%llu", cfg.dir,
		 (unsigned)(ino & 0xff), (unsigned long long)ino);
	snprintf(to, sizeof(to), "%s/data/trash/%llu", cfg.dir,
		 (unsigned long long)ino);
	ASSERT_OK(rename(from, to));
	snprintf(from, sizeof(from), "%s/data/trash/999999", cfg.dir);
	close(open(from, O_CREAT | O_WRONLY, 0600));	/* no such inode */

	c = open_rw(&cfg);
	ASSERT_EQ(access(to, F_OK), -1);
	ASSERT_EQ(access(from, F_OK), -1);
	f = fopen_(c, ino, 0);
	ASSERT_EQ(rd(c, f, 0, buf, sizeof(buf)), 12);
	ASSERT_TRUE(memcmp(buf, "kept content", 12) == 0);
	cache_file_release(c, f);
	ASSERT_OK(cache_close(c));
}

TEST(statfs_counts)
{
	struct cache_config cfg = format_limit(64 * MiB);
	struct cache *c = open_rw(&cfg);
	struct cache_file *f;
	struct statvfs sv, sv2;
	static unsigned char buf[1 << 20];
	uint64_t ino;

	ASSERT_OK(cache_statfs(c, &sv));
	ASSERT_EQ(sv.f_namemax, (unsigned long)CACHE_NAME_MAX);
	ASSERT_TRUE(sv.f_bsize > 0 && sv.f_frsize > 0);
	ASSERT_EQ((uint64_t)sv.f_blocks * sv.f_frsize, 64 * MiB);
	ASSERT_TRUE(sv.f_bfree <= sv.f_blocks);
	ASSERT_TRUE(sv.f_bavail <= sv.f_bfree);
	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	fill(buf, sizeof(buf), 1);
	wr(c, f, 0, buf, sizeof(buf));
	ASSERT_OK(cache_fsync(c, f, 0));
	cache_file_release(c, f);
	ASSERT_OK(cache_statfs(c, &sv2));
	ASSERT_TRUE(sv2.f_bfree < sv.f_bfree);
	ASSERT_OK(cache_close(c));
}

/* A name replaced by rename keeps its place: a listing that has passed it
 * does not meet it again (issue 8: a save by rename, listed twice). */
TEST(readdir_name_replaced_by_rename_keeps_place)
{
	struct cache *c = fresh();
	struct listing first, rest;
	uint64_t d;
	long at;

	d = mkdir_(c, CACHE_ROOT_INO, "d");
	cache_forget(c, mkfile(c, d, "doc"), 1);
	make_names(c, d, "keep", 20);
	first = list_dir(c, d, 0, 0, 4);	/* ".", "..", "doc", one more */
	at = find_ent(&first, "doc");
	ASSERT_TRUE(at >= 0);
	cache_forget(c, mkfile(c, d, "doc.tmp"), 1);
	ASSERT_OK(cache_rename(c, d, "doc.tmp", d, "doc", 0));
	rest = list_dir(c, d, first.e[first.n - 1].next, 0, 0);
	ASSERT_EQ(count_ent(&rest, "doc"), 0u);
	free(rest.e);
	/* and a listing from scratch finds it where it was */
	rest = list_dir(c, d, 0, 0, 0);
	ASSERT_EQ(count_ent(&rest, "doc"), 1u);
	ASSERT_EQ(rest.e[find_ent(&rest, "doc")].next, first.e[at].next);
	ASSERT_EQ(rest.n, 2u + 1u + 20u);
	free(rest.e);
	free(first.e);
	ASSERT_OK(cache_close(c));
}

TEST_MAIN(
	TEST_ENTRY(format_fresh),
	TEST_ENTRY(format_twice),
	TEST_ENTRY(format_missing_dir),
	TEST_ENTRY(format_not_writable),
	TEST_ENTRY(open_nofs),
	TEST_ENTRY(open_rdonly_refuses_writes),
	TEST_ENTRY(open_busy_and_rdonly),
	TEST_ENTRY(mknod_every_type),
	TEST_ENTRY(mknod_errors),
	TEST_ENTRY(link_unlink_nlink),
	TEST_ENTRY(dir_nlink),
	TEST_ENTRY(rmdir_errors),
	TEST_ENTRY(rename_plain),
	TEST_ENTRY(rename_over_file),
	TEST_ENTRY(rename_over_empty_dir),
	TEST_ENTRY(rename_over_nonempty_dir),
	TEST_ENTRY(rename_dir_over_file),
	TEST_ENTRY(rename_file_over_dir),
	TEST_ENTRY(rename_into_own_subdir),
	TEST_ENTRY(rename_noreplace),
	TEST_ENTRY(rename_exchange),
	TEST_ENTRY(rename_hard_links_noop),
	TEST_ENTRY(readdir_1000),
	TEST_ENTRY(readdir_resume_every_offset),
	TEST_ENTRY(readdir_offsets_survive_changes),
	TEST_ENTRY(readdirplus_takes_refs),
	TEST_ENTRY(symlink_readlink),
	TEST_ENTRY(xattr_set_get_list_remove),
	TEST_ENTRY(xattr_create_replace),
	TEST_ENTRY(xattr_sizes),
	TEST_ENTRY(xattr_other_namespaces),
	TEST_ENTRY(file_write_read),
	TEST_ENTRY(file_open_not_regular),
	TEST_ENTRY(file_holes_read_zero),
	TEST_ENTRY(file_write_at_5gib),
	TEST_ENTRY(file_truncate_setattr),
	TEST_ENTRY(file_open_trunc),
	TEST_ENTRY(file_size_pending_and_flushed),
	TEST_ENTRY(file_fallocate),
	TEST_ENTRY(file_enospc),
	TEST_ENTRY(unlink_open_file),
	TEST_ENTRY(orphan_recovery_after_crash),
	TEST_ENTRY(setattr_mode_keeps_type),
	TEST_ENTRY(setattr_owner),
	TEST_ENTRY(setattr_times),
	TEST_ENTRY(write_updates_mtime_and_ctime),
	TEST_ENTRY(persistence_across_reopen),
	TEST_ENTRY(close_with_open_handles),
	TEST_ENTRY(trash_recovered_at_open),
	TEST_ENTRY(statfs_counts),
	TEST_ENTRY(readdir_name_replaced_by_rename_keeps_place),
)
