/*
 * test_cache_ns.c - the namespace (cache_ns.c): mknod, lookup, link,
 * unlink, rmdir, rename, readdir and readlink, through cache.h only.
 *
 * Every case formats a fresh filesystem in its own test_tmpdir() and opens
 * it read-write.  Lookup references matter wherever an inode is meant to
 * go away: mknod, link, lookup and readdirplus each take one, and the
 * tests drop them with cache_forget() before they expect an unlinked inode
 * to be freed (by the folder thread, in a batch: gone() waits for it).
 */
#include "cache.h"
#include "cache_test.h"
#include "phi.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* === names ========================================================== */

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
	ASSERT_ERR(gone(c, f), -ENOENT);
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
	ASSERT_ERR(gone(c, d), -ENOENT);
	ASSERT_OK(cache_rmdir(c, CACHE_ROOT_INO, "e"));
	cache_forget(c, e, 1);
	ASSERT_EQ(attr(c, CACHE_ROOT_INO).st_nlink, (nlink_t)2);
	ASSERT_OK(cache_close(c));
}

/* === rename ========================================================= */

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

	a = mkfile(c, CACHE_ROOT_INO, "a");
	b = mkfile(c, CACHE_ROOT_INO, "b");
	ASSERT_OK(cache_rename(c, CACHE_ROOT_INO, "a", CACHE_ROOT_INO, "b", 0));
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "a"), -ENOENT);
	ASSERT_EQ(look(c, CACHE_ROOT_INO, "b"), (long long)a);
	ASSERT_EQ(attr(c, b).st_nlink, (nlink_t)0);	/* still referenced */
	cache_forget(c, b, 1);
	ASSERT_ERR(gone(c, b), -ENOENT);
	ASSERT_EQ(stats(c).inodes, 2u);
	ASSERT_OK(cache_close(c));
}

TEST(rename_over_empty_dir)
{
	struct cache *c = fresh();
	uint64_t s, d, p;

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
	ASSERT_ERR(gone(c, d), -ENOENT);
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

/* === readdir ======================================================== */

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
	ASSERT_ERR(gone(c, f), -ENOENT);

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

/* === symlinks ======================================================= */

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

TEST_MAIN(
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
	TEST_ENTRY(readdir_name_replaced_by_rename_keeps_place),
	TEST_ENTRY(symlink_readlink),
)
