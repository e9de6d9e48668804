/*
 * test_cache_file.c - file I/O and attributes (cache_file.c): open,
 * write, read, truncate, fallocate, the cache size limit, and setattr,
 * through cache.h only.  Every case formats a fresh filesystem in its own
 * test_tmpdir() and opens it read-write.
 */
#include "cache.h"
#include "cache_test.h"
#include "phi.h"
#include "test.h"

#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* === file content =================================================== */

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
	cache_read_end(c, &ext);
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
	cache_read_end(c, &ext);
	ASSERT_OK(cache_read_extent(c, f, sizeof(a) + 5000, 10, &ext));
	ASSERT_EQ(ext.len, 0u);
	cache_read_end(c, &ext);

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

/*
 * A clean file unlinked and forgotten waits a moment to be freed with
 * others (cache_node_free_later()); a write that needs its room must not
 * fail meanwhile: it frees the queue itself.
 */
TEST(room_from_a_file_just_forgotten)
{
	struct cache_config cfg = format_limit(4 * MiB);
	struct cache *c = open_rw(&cfg);
	static unsigned char chunk[64 * 1024];
	struct cache_file *f;
	uint64_t ino;

	fill(chunk, sizeof(chunk), 5);
	ino = mkfile(c, CACHE_ROOT_INO, "f");
	f = fopen_(c, ino, 0);
	for (uint64_t off = 0; off < 3 * MiB; off += sizeof(chunk))
		wr(c, f, off, chunk, sizeof(chunk));
	ASSERT_OK(cache_fsync(c, f, 0));	/* folded: the node is clean */
	cache_file_release(c, f);
	ASSERT_OK(cache_unlink(c, CACHE_ROOT_INO, "f"));
	cache_forget(c, ino, 1);		/* mknod's reference: queued */
	test_diag("orphans after the forget: %llu",
		  (unsigned long long)stats(c).orphans);

	ino = mkfile(c, CACHE_ROOT_INO, "g");
	f = fopen_(c, ino, 0);
	for (uint64_t off = 0; off < 3 * MiB; off += sizeof(chunk))
		wr(c, f, off, chunk, sizeof(chunk));
	cache_file_release(c, f);
	ASSERT_EQ(stats(c).orphans, 0u);
	ASSERT_OK(cache_close(c));
}

/* === setattr ======================================================== */

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

TEST_MAIN(
	TEST_ENTRY(file_write_read),
	TEST_ENTRY(file_open_not_regular),
	TEST_ENTRY(file_holes_read_zero),
	TEST_ENTRY(file_write_at_5gib),
	TEST_ENTRY(file_truncate_setattr),
	TEST_ENTRY(file_open_trunc),
	TEST_ENTRY(file_size_pending_and_flushed),
	TEST_ENTRY(file_fallocate),
	TEST_ENTRY(file_enospc),
	TEST_ENTRY(room_from_a_file_just_forgotten),
	TEST_ENTRY(setattr_mode_keeps_type),
	TEST_ENTRY(setattr_owner),
	TEST_ENTRY(setattr_times),
	TEST_ENTRY(write_updates_mtime_and_ctime),
)
