/*
 * test_cache_open.c - the top floor of cache/ (cache.c): format, open,
 * close, stats and statfs, and what a close and a reopen keep, through
 * cache.h only.
 *
 * Cases that need a second process (the lock, a read-only format) fork
 * before any LMDB environment is open in the parent: an environment must
 * never be open twice in one process, nor cross a fork().
 */
#include "cache.h"
#include "cache_test.h"
#include "phi.h"
#include "test.h"

#include <fcntl.h>
#include <grp.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* === format and open ================================================ */

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

/* The format version in the closed cache at dir: set to *v if set,
 * else read into *v. */
static void format_version(const char *dir, uint64_t *v, int set)
{
	MDB_val k = { 7, (void *)"version" }, val = { sizeof(*v), v };
	char path[4200];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	snprintf(path, sizeof(path), "%s/meta", dir);
	ASSERT_OK(mdb_env_create(&env));
	mdb_env_set_maxdbs(env, 32);
	mdb_env_set_mapsize(env, 64ull << 30);
	ASSERT_OK(mdb_env_open(env, path, MDB_NOTLS, 0600));
	ASSERT_OK(mdb_txn_begin(env, NULL, 0, &txn));
	ASSERT_OK(mdb_dbi_open(txn, "super", 0, &dbi));
	if (set) {
		ASSERT_OK(mdb_put(txn, dbi, &k, &val, 0));
	} else {
		ASSERT_OK(mdb_get(txn, dbi, &k, &val));
		ASSERT_EQ(val.mv_size, sizeof(*v));
		memcpy(v, val.mv_data, sizeof(*v));
	}
	ASSERT_OK(mdb_txn_commit(txn));
	mdb_env_close(env);
}

/* A cache of the format before (block records never masked) opens, and
 * a read-write open takes it up, so that an older phifs refuses what
 * this one may have written there; a newer format is refused. */
TEST(format_version_taken_up_and_newer_refused)
{
	struct cache_config cfg = format_limit(64 * MiB);
	struct cache *c = NULL;
	uint64_t v = 1, now = 0;

	format_version(cfg.dir, &v, 1);
	c = open_rw(&cfg);
	ASSERT_OK(cache_close(c));
	format_version(cfg.dir, &now, 0);
	ASSERT_EQ(now, 2u);
	v = now + 1;
	format_version(cfg.dir, &v, 1);
	ASSERT_ERR(cache_open(&c, &cfg, 0), PHI_EVERSION);
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

/* === persistence ==================================================== */

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

/* === statfs ========================================================= */

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

/* The events of a burst larger than the queue's 64 MiB are all kept, in
 * order: the queue is written out, never full. */
struct walked {
	uint64_t n;
	int in_order;
};

static int count_events(void *arg, uint64_t seq, const void *rec,
			size_t len)
{
	struct walked *w = arg;
	uint64_t first;

	(void)seq;
	ASSERT_EQ(len, 4096);
	memcpy(&first, (const char *)rec + 8, sizeof(first));
	if (first != w->n)
		w->in_order = 0;
	w->n++;
	return 0;
}

TEST(audit_burst_beyond_the_queue_is_all_kept)
{
	struct cache *c = fresh();
	static char rec[4096];
	const uint64_t n = (80ull << 20) / sizeof(rec);	/* 80 MiB */
	struct walked w = { 0, 1 };

	for (uint64_t i = 0; i < n; i++) {
		memcpy(rec + 8, &i, sizeof(i));
		ASSERT_OK(cache_audit_queue(c, rec, sizeof(rec)));
	}
	ASSERT_OK(cache_audit_flush(c));
	ASSERT_OK(cache_audit_walk(c, 1, count_events, &w));
	ASSERT_EQ(w.n, n);
	ASSERT_TRUE(w.in_order);
	ASSERT_OK(cache_close(c));
}

/* The forwarding cursor of audit_syslog: 0 at first, kept across a
 * reopen, never moved back, and readable from a read-only open. */
TEST(audit_forwarded_cursor)
{
	struct cache_config cfg = format_limit(20 * GiB);
	struct cache *c = open_rw(&cfg), *ro;
	static char rec[64];
	uint64_t sent = 99, last = 99;

	ASSERT_OK(cache_audit_forwarded(c, &sent, &last));
	ASSERT_EQ(sent, 0);
	ASSERT_EQ(last, 0);
	for (int i = 0; i < 5; i++)
		ASSERT_OK(cache_audit_queue(c, rec, sizeof(rec)));
	ASSERT_OK(cache_audit_flush(c));
	ASSERT_OK(cache_audit_set_forwarded(c, 3));
	ASSERT_OK(cache_audit_set_forwarded(c, 2));	/* not back */
	ASSERT_OK(cache_audit_forwarded(c, &sent, &last));
	ASSERT_EQ(sent, 3);
	ASSERT_EQ(last, 5);
	ASSERT_OK(cache_close(c));
	c = open_rw(&cfg);
	ASSERT_OK(cache_open(&ro, &cfg, CACHE_OPEN_RDONLY));
	ASSERT_OK(cache_audit_forwarded(ro, &sent, &last));
	ASSERT_EQ(sent, 3);
	ASSERT_EQ(last, 5);
	ASSERT_ERR(cache_audit_set_forwarded(ro, 5), -EROFS);
	ASSERT_OK(cache_close(ro));
	ASSERT_OK(cache_close(c));
}

TEST_MAIN(
	TEST_ENTRY(format_fresh),
	TEST_ENTRY(format_version_taken_up_and_newer_refused),
	TEST_ENTRY(format_twice),
	TEST_ENTRY(format_missing_dir),
	TEST_ENTRY(format_not_writable),
	TEST_ENTRY(open_nofs),
	TEST_ENTRY(open_rdonly_refuses_writes),
	TEST_ENTRY(open_busy_and_rdonly),
	TEST_ENTRY(persistence_across_reopen),
	TEST_ENTRY(close_with_open_handles),
	TEST_ENTRY(statfs_counts),
	TEST_ENTRY(audit_burst_beyond_the_queue_is_all_kept),
	TEST_ENTRY(audit_forwarded_cursor),
)
