/*
 * test_cache_trash.c - orphans and the trash (cache_trash.c): an unlinked
 * file kept alive by its handle, and what an open after a crash or a
 * power loss frees or puts back, through cache.h only.
 *
 * The crash case forks before any LMDB environment is open in the parent:
 * an environment must never be open twice in one process, nor cross a
 * fork().
 */
#include "cache.h"
#include "cache_test.h"
#include "phi.h"
#include "test.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* === orphans and trash ============================================== */

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

TEST_MAIN(
	TEST_ENTRY(unlink_open_file),
	TEST_ENTRY(orphan_recovery_after_crash),
	TEST_ENTRY(trash_recovered_at_open),
)
