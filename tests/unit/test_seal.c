/*
 * test_seal.c - sealing, replication, fetching back and eviction, through
 * cache.h and cache_admin.h, over two dir: regions each behind a fault-injecting backend.
 *
 * Every case formats a fresh filesystem in its test_tmpdir() with regions
 * a/ and b/ beside it and a random master key made by the test (struct
 * env and the helpers test_fetch.c shares: seal_test.h).
 */
#include "backend.h"
#include "cache.h"
#include "cache_admin.h"
#include "crypt.h"
#include "phi.h"
#include "seal_test.h"
#include "test.h"

#include <dirent.h>
#include <lmdb.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fault(struct env *e, int region, int fail_all, int corrupt)
{
	struct backend_fault f = { 0 };

	f.fail_all = fail_all;
	f.corrupt_get = corrupt;
	backend_fault_set(e->fault[region], &f);
}

static long long attr_size(struct cache *c, uint64_t ino)
{
	struct stat st;

	ASSERT_OK(cache_getattr(c, ino, &st));
	return (long long)st.st_size;
}

/* Objects (files) in a region directory, recursively; with `needle`,
 * also fail if any file or name contains it. */
static int scan(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int count = 0;

	ASSERT_TRUE(d != NULL);
	while ((de = readdir(d))) {
		char path[8192];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (needle)
			ASSERT_TRUE(strstr(de->d_name, needle) == NULL);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		ASSERT_OK(lstat(path, &st));
		if (S_ISDIR(st.st_mode)) {
			count += scan(path, needle);
			continue;
		}
		count++;
		if (needle) {
			FILE *f = fopen(path, "rb");
			char *data = malloc((size_t)st.st_size + 1);

			ASSERT_TRUE(f && data);
			ASSERT_EQ(fread(data, 1, (size_t)st.st_size, f),
				  (size_t)st.st_size);
			data[st.st_size] = '\0';
			ASSERT_TRUE(memmem(data, (size_t)st.st_size, needle,
					   strlen(needle)) == NULL);
			free(data);
			fclose(f);
		}
	}
	closedir(d);
	return count;
}

static const char *state(struct cache *c, uint64_t ino)
{
	static char buf[32];
	int n = cache_getxattr(c, ino, "user.phifs.state", buf,
			       sizeof(buf) - 1);

	ASSERT_TRUE(n > 0);
	buf[n] = '\0';
	return buf;
}

static void sync_ok(struct env *e)
{
	ASSERT_OK(cache_sync_regions(e->c, 20000));
}

/* --- cases ------------------------------------------------------------- */

#define MARKER "PHIFS-MARKER-7f3a9c"

TEST(sealed_objects_in_both_regions_say_nothing)
{
	struct env e;
	static char text[300 * 1024];
	struct cache_stats st;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	for (size_t i = 0; i + sizeof(MARKER) < sizeof(text);
	     i += sizeof(MARKER))
		memcpy(text + i, MARKER " ", sizeof(MARKER));
	ino = mkfile(e.c, MARKER);
	put(e.c, ino, 0, text, sizeof(text));
	ASSERT_STREQ(state(e.c, ino), "dirty");
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, ino), "replicated");
	ASSERT_TRUE(scan(e.regdir[0], MARKER) >= 1);
	ASSERT_EQ(scan(e.regdir[0], NULL), scan(e.regdir[1], NULL));
	scan(e.regdir[1], MARKER);
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.sealed_objects, 0);
	ASSERT_EQ(st.dirty_blocks, 0);
	ASSERT_EQ(st.resident_blocks, 5);	/* 300 KiB in 64 KiB blocks */
	ASSERT_EQ(st.nregions, 2);
	ASSERT_EQ(st.regions[0].waiting, 0);
	ASSERT_TRUE(st.sync_mark_ns > 0);
	ASSERT_EQ(cache_setxattr(e.c, ino, "user.phifs.state", "x", 1, 0),
		  -EPERM);
	ASSERT_EQ(cache_removexattr(e.c, ino, "user.phifs.state"), -EPERM);
	ASSERT_EQ(cache_listxattr(e.c, ino, NULL, 0), 0);
	env_done(&e);
}

TEST(small_files_share_packs)
{
	struct env e;
	char name[32], data[4096];

	env_init(&e, 1ull << 30);
	for (int i = 0; i < 1000; i++) {
		uint64_t ino;

		snprintf(name, sizeof(name), "letter-%d", i);
		fill((unsigned char *)data, sizeof(data), (unsigned)i);
		ino = mkfile(e.c, name);
		put(e.c, ino, 0, data, sizeof(data));
	}
	sync_ok(&e);
	/* 4 MB of incompressible data in 1 MiB packs */
	test_diag("objects per region: %d", scan(e.regdir[0], NULL));
	ASSERT_TRUE(scan(e.regdir[0], NULL) <= 8);
	ASSERT_EQ(scan(e.regdir[1], NULL), scan(e.regdir[0], NULL));
	env_done(&e);
}

TEST(evicted_blocks_read_back_after_reopen)
{
	struct env e;
	static unsigned char a[1 * MiB + 4321], b[200 * KiB];
	struct cache_stats st;
	uint64_t fa, fb;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 2);
	fa = mkfile(e.c, "a");
	fb = mkfile(e.c, "b");
	put(e.c, fa, 0, a, sizeof(a));
	put(e.c, fb, 0, b, sizeof(b));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) >= sizeof(a));
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.resident_blocks, 0);
	ASSERT_EQ(st.evicted_blocks, 17 + 4);
	expect(e.c, fa, a, sizeof(a));
	env_close(&e);

	env_open(&e);
	expect(e.c, fa, a, sizeof(a));		/* fetched, now resident */
	expect(e.c, fb, b, sizeof(b));		/* fetched after reopen */
	env_done(&e);
}

TEST(region_a_gone_reads_from_b)
{
	struct env e;
	static unsigned char a[700 * KiB];
	char cmd[8300];
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 3);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", e.regdir[0]);
	ASSERT_OK(system(cmd));
	ASSERT_EQ(scan(e.regdir[0], NULL), 0);
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

TEST(corrupt_copy_in_a_fails_over_and_is_recorded)
{
	struct env e;
	static unsigned char a[300 * KiB];
	struct cache_stats st;
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 4);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	fault(&e, 0, 0, 1);
	expect(e.c, fa, a, sizeof(a));
	fault(&e, 0, 0, 0);
	env_close(&e);			/* status reads what was recorded */
	env_open(&e);
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_TRUE(st.regions[0].bad >= 1);
	ASSERT_EQ(st.regions[1].bad, 0);
	env_done(&e);
}

TEST(no_region_answers_read_fails_with_eio_writes_go_on)
{
	struct env e;
	static unsigned char a[200 * KiB], buf[64];
	uint64_t fa, fb;
	size_t got;
	struct timespec t0, t1;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 5);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	fault(&e, 0, 1, 0);
	fault(&e, 1, 1, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(get(e.c, fa, 0, buf, sizeof(buf), &got), -EIO);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	test_diag("failed read took %ld ms",
		  (long)((t1.tv_sec - t0.tv_sec) * 1000 +
			 (t1.tv_nsec - t0.tv_nsec) / 1000000));
	/* writes and reads of cached data go on */
	fb = mkfile(e.c, "b");
	put(e.c, fb, 0, a, sizeof(a));
	expect(e.c, fb, a, sizeof(a));
	ASSERT_EQ(cache_sync_regions(e.c, 1500), -ETIMEDOUT);
	ASSERT_STREQ(state(e.c, fb), "local");
	fault(&e, 0, 0, 0);
	fault(&e, 1, 0, 0);
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, fb), "replicated");
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

TEST(region_down_during_writes_catches_up)
{
	struct env e;
	static unsigned char a[256 * KiB];
	struct cache_stats st;
	uint64_t ino[20];

	/* region a is unreachable from the first open on: not even the
	 * first metadata snapshot may reach it */
	env_init_with(&e, 1ull << 30,
		      (struct backend_fault[2]){ { .fail_all = 1 }, { 0 } });
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		fill(a, sizeof(a), 100 + (unsigned)i);
		ino[i] = mkfile(e.c, name);
		put(e.c, ino[i], 0, a, sizeof(a));
	}
	ASSERT_EQ(cache_sync_regions(e.c, 3000), -ETIMEDOUT);
	/* on a loaded machine the first upload may not have been tried yet */
	for (int i = 0; i < 60; i++) {
		ASSERT_OK(cache_stats(e.c, &st));
		if (st.regions[0].fails >= 1)
			break;
		ASSERT_EQ(cache_sync_regions(e.c, 1000), -ETIMEDOUT);
	}
	env_close(&e);			/* the queue must survive this */
	env_open(&e);			/* region a still unreachable */
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_TRUE(st.regions[0].waiting > 0);
	ASSERT_EQ(st.regions[1].waiting, 0);
	ASSERT_TRUE(st.regions[0].fails >= 1);
	ASSERT_EQ(scan(e.regdir[0], NULL), 0);
	e.start[0].fail_all = 0;
	fault(&e, 0, 0, 0);		/* the region answers again */
	sync_ok(&e);
	ASSERT_EQ(scan(e.regdir[0], NULL), scan(e.regdir[1], NULL));
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.regions[0].waiting, 0);
	ASSERT_EQ(st.regions[0].down, 0);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	for (int i = 0; i < 20; i++) {
		fill(a, sizeof(a), 100 + (unsigned)i);
		expect(e.c, ino[i], a, sizeof(a));
	}
	env_done(&e);
}

/* A region taken out of the config takes its share of the queue with it:
 * what only it still lacked, packs and metadata objects alike, no longer
 * holds a sync back or shows in status. */
TEST(region_dropped_from_config_leaves_nothing_waiting)
{
	struct env e;
	static unsigned char a[256 * KiB];
	struct backend *dir;
	struct cache_stats st;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	fault(&e, 1, 1, 0);
	fill(a, sizeof(a), 9);
	ino = mkfile(e.c, "f");
	put(e.c, ino, 0, a, sizeof(a));
	ASSERT_EQ(cache_sync_regions(e.c, 2000), -ETIMEDOUT);
	env_close(&e);
	ASSERT_OK(backend_dir_open(&dir, e.regdir[0]));	/* "a" only */
	ASSERT_OK(backend_replica_open(&e.rs, &dir, 1));
	e.cfg.regions = e.rs;
	ASSERT_OK(cache_open(&e.c, &e.cfg, 0));
	ASSERT_OK(cache_sync_regions(e.c, 20000));
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.nregions, 1);
	ASSERT_EQ(st.sealed_objects, 0);
	ASSERT_EQ(st.regions[0].waiting, 0);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, ino, a, sizeof(a));
	env_done(&e);
}

/* At open, files in packs/ and journal/ that no queued object names (a
 * crash between writing and recording them) go; the local copies of the
 * queued packs and metadata objects stay, and reach the region that
 * lacked them. */
TEST(open_sweeps_unrecorded_files_and_keeps_queued_ones)
{
	static const char *const strays[] = {
		"packs/00112233445566778899aabbccddeeff",
		"journal/00112233445566778899aabbccddeeff",
		"packs/00112233445566778899aabbccddeeff.tmp",
	};
	static unsigned char a[256 * KiB];
	char path[8192];
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	fault(&e, 0, 1, 0);
	fill(a, sizeof(a), 11);
	ino = mkfile(e.c, "f");
	put(e.c, ino, 0, a, sizeof(a));
	ASSERT_EQ(cache_sync_regions(e.c, 2000), -ETIMEDOUT);
	env_close(&e);
	snprintf(path, sizeof(path), "%s/packs", test_tmpdir());
	ASSERT_TRUE(scan(path, NULL) >= 1);
	snprintf(path, sizeof(path), "%s/journal", test_tmpdir());
	ASSERT_TRUE(scan(path, NULL) >= 1);
	for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", test_tmpdir(),
			 strays[i]);
		f = fopen(path, "w");
		ASSERT_TRUE(f != NULL);
		fputs("stray", f);
		fclose(f);
	}
	env_open(&e);
	for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", test_tmpdir(),
			 strays[i]);
		ASSERT_EQ(access(path, F_OK), -1);
	}
	sync_ok(&e);		/* so the queued copies were kept */
	ASSERT_EQ(scan(e.regdir[0], NULL), scan(e.regdir[1], NULL));
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, ino, a, sizeof(a));
	env_done(&e);
}

TEST(overwrite_and_truncate_evicted_blocks)
{
	struct env e;
	static unsigned char a[300 * KiB];
	unsigned char zero[1000] = { 0 }, buf[1000];
	struct stat in = { 0 }, out;
	size_t got;
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 6);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	/* a partial overwrite of a gone block keeps the rest of it */
	memcpy(a + 70000, "patched", 7);
	put(e.c, fa, 70000, "patched", 7);
	/* cut inside a gone block, then grow: the cut part reads zeros */
	in.st_size = 150000;
	ASSERT_OK(cache_setattr(e.c, fa, CACHE_SET_SIZE, &in, &out));
	in.st_size = sizeof(a);
	ASSERT_OK(cache_setattr(e.c, fa, CACHE_SET_SIZE, &in, &out));
	memset(a + 150000, 0, sizeof(a) - 150000);
	expect(e.c, fa, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, fa, a, sizeof(a));
	ASSERT_OK(get(e.c, fa, 200000, buf, sizeof(buf), &got));
	ASSERT_TRUE(memcmp(buf, zero, sizeof(buf)) == 0);
	env_close(&e);
	env_open(&e);
	expect(e.c, fa, a, sizeof(a));
	{
		struct cache_file *f;
		struct cache_stats st;

		ASSERT_OK(cache_file_open(e.c, fa, 1, &f));	/* O_TRUNC */
		cache_file_release(e.c, f);
		ASSERT_EQ(attr_size(e.c, fa), 0);
		ASSERT_OK(cache_stats(e.c, &st));
		ASSERT_EQ(st.resident_blocks + st.evicted_blocks, 0);
	}
	env_done(&e);
}

TEST(dirty_blocks_outlive_a_close_and_seal_at_next_open)
{
	struct env e;
	static unsigned char a[100 * KiB];
	struct cache_stats st;
	uint64_t fa;

	env_init(&e, 1ull << 30);
	e.cfg.seal_delay_ms = 600000;	/* never by time in this case */
	env_close(&e);
	env_open(&e);
	fill(a, sizeof(a), 7);
	fa = mkfile(e.c, "a");
	{
		struct cache_file *f;

		ASSERT_OK(cache_file_open(e.c, fa, 0, &f));
		ASSERT_EQ(cache_write(e.c, f, 0, a, sizeof(a)),
			  (ssize_t)sizeof(a));
		env_close(&e);		/* still open: the kernel never
					   released it */
	}
	/* nothing may leave before the check: the blocks are dirty or
	 * sealed here, not already in every region */
	e.start[0].fail_all = e.start[1].fail_all = 1;
	env_open(&e);
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_TRUE(st.dirty_blocks == 2 || st.sealed_objects > 0);
	e.start[0].fail_all = e.start[1].fail_all = 0;
	fault(&e, 0, 0, 0);
	fault(&e, 1, 0, 0);
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, fa), "replicated");
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

/* Like kill -9 of the daemon: in a child, open the cache, write
 * [off, off+len) with the handle left open, and _exit() at once, before
 * any fold or seal could run. */
static void write_and_die(struct env *e, uint64_t ino, uint64_t off,
			  const void *buf, size_t len)
{
	pid_t pid;
	int status;

	env_close(e);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		struct cache_file *f;
		struct backend *r[2], *dir;

		for (int i = 0; i < 2; i++) {
			if (backend_dir_open(&dir, e->regdir[i]))
				_exit(2);
			r[i] = dir;
		}
		if (backend_replica_open(&e->rs, r, 2))
			_exit(2);
		e->cfg.regions = e->rs;
		if (cache_open(&e->c, &e->cfg, 0) ||
		    cache_file_open(e->c, ino, 0, &f) ||
		    cache_write(e->c, f, off, buf, len) != (ssize_t)len)
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	env_open(e);
}

static void data_path(struct env *e, uint64_t ino, char *out, size_t size)
{
	snprintf(out, size, "%s/data/%02x/%llu", e->cfg.dir,
		 (unsigned)(ino & 0xff), (unsigned long long)ino);
}

TEST(overwrite_of_a_sealed_block_survives_a_crash_and_is_sealed)
{
	struct env e;
	static unsigned char a[200 * KiB];
	uint64_t fa;

	env_init(&e, 1ull << 30);
	e.cfg.seal_delay_ms = 600000;	/* only a sync seals */
	fill(a, sizeof(a), 11);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, fa), "replicated");
	/* before the fix the block stayed recorded clean: "replicated"
	 * for ever, and an eviction brought the old bytes back */
	memset(a + 70000, 'N', 1000);
	write_and_die(&e, fa, 70000, a + 70000, 1000);
	ASSERT_STREQ(state(e.c, fa), "dirty");
	expect(e.c, fa, a, sizeof(a));
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, fa), "replicated");
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

TEST(whole_block_write_over_an_evicted_block_that_never_landed)
{
	struct env e;
	static unsigned char a[192 * KiB], n[64 * KiB];
	char path[4200];
	uint64_t fa;
	int fd;

	env_init(&e, 1ull << 30);
	e.cfg.seal_delay_ms = 600000;
	fill(a, sizeof(a), 12);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	/* block 1, whole, over its hole; then the bytes are lost as if the
	 * crash came between the record and the write */
	fill(n, sizeof(n), 13);
	write_and_die(&e, fa, 64 * KiB, n, sizeof(n));
	env_close(&e);
	data_path(&e, fa, path, sizeof(path));
	fd = open(path, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			    64 * KiB, 64 * KiB));
	close(fd);
	env_open(&e);
	/* the sealed copy stands, not a block of zeros */
	ASSERT_STREQ(state(e.c, fa), "replicated");
	expect(e.c, fa, a, sizeof(a));
	/* and when the write did land, it is what the file shows */
	write_and_die(&e, fa, 64 * KiB, n, sizeof(n));
	ASSERT_STREQ(state(e.c, fa), "dirty");
	memcpy(a + 64 * KiB, n, sizeof(n));
	expect(e.c, fa, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

TEST(damaged_local_blocks_are_never_returned)
{
	struct env e;
	static unsigned char a[200 * KiB], b[200 * KiB];
	struct stat in = { 0 }, out;
	char path[4200];
	uint64_t fa, fb;
	int fd;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 14);
	fill(b, 1000, 15);
	fa = mkfile(e.c, "a");
	fb = mkfile(e.c, "b");
	put(e.c, fa, 0, a, sizeof(a));
	put(e.c, fb, 0, b, 1000);
	in.st_size = sizeof(b);		/* b: 1000 bytes, then a hole */
	ASSERT_OK(cache_setattr(e.c, fb, CACHE_SET_SIZE, &in, &out));
	sync_ok(&e);
	env_close(&e);
	/* a flipped byte in a sealed block of a; data in b's hole */
	data_path(&e, fa, path, sizeof(path));
	fd = open(path, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(pwrite(fd, "\x5a", 1, 130000), 1);
	close(fd);
	data_path(&e, fb, path, sizeof(path));
	fd = open(path, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(pwrite(fd, "stray", 5, 100 * KiB), 5);
	close(fd);
	env_open(&e);
	expect(e.c, fa, a, sizeof(a));
	expect(e.c, fb, b, sizeof(b));
	/* a partial write into a damaged block keeps the sealed rest */
	env_close(&e);
	data_path(&e, fa, path, sizeof(path));
	fd = open(path, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(pwrite(fd, "\xa5", 1, 10), 1);
	close(fd);
	env_open(&e);
	memcpy(a + 20, "patch", 5);
	put(e.c, fa, 20, "patch", 5);
	expect(e.c, fa, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	expect(e.c, fa, a, sizeof(a));
	expect(e.c, fb, b, sizeof(b));
	env_done(&e);
}

TEST(cut_and_grow_while_sealing_leaves_no_stale_block)
{
	struct env e;
	static unsigned char a[256 * KiB], zero[256 * KiB];
	struct stat in = { 0 }, out;
	uint64_t fa;

	env_init(&e, 1ull << 30);
	e.cfg.seal_delay_ms = 1;	/* seal as soon as it is closed */
	env_close(&e);
	env_open(&e);
	fa = mkfile(e.c, "a");
	/* each round: content, sealed at once by the close; cut to 0 and
	 * grown again while that seal may be in flight: a seal read before
	 * the cut must not record its block over the new hole */
	for (unsigned i = 0; i < 300; i++) {
		fill(a, sizeof(a), 100 + i);
		put(e.c, fa, 0, a, sizeof(a));
		if (i % 3)
			usleep(i % 7 * 300);
		in.st_size = 0;
		ASSERT_OK(cache_setattr(e.c, fa, CACHE_SET_SIZE, &in, &out));
		in.st_size = sizeof(a);
		ASSERT_OK(cache_setattr(e.c, fa, CACHE_SET_SIZE, &in, &out));
	}
	expect(e.c, fa, zero, sizeof(zero));
	sync_ok(&e);
	env_close(&e);
	env_open(&e);
	expect(e.c, fa, zero, sizeof(zero));
	ASSERT_STREQ(state(e.c, fa), "replicated");
	env_done(&e);
}

TEST(working_set_larger_than_cache)
{
	struct env e;
	static unsigned char a[512 * KiB];
	struct cache_stats st;
	uint64_t ino[16];

	/* 8 MiB of files through a 3 MiB cache */
	env_init(&e, 3 * MiB);
	for (int i = 0; i < 16; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		fill(a, sizeof(a), 200 + (unsigned)i);
		ino[i] = mkfile(e.c, name);
		put(e.c, ino[i], 0, a, sizeof(a));
		sync_ok(&e);
	}
	ASSERT_OK(cache_stats(e.c, &st));
	test_diag("used %llu of %llu", (unsigned long long)st.used_bytes,
		  (unsigned long long)st.size_limit);
	ASSERT_TRUE(st.used_bytes <= 3 * MiB);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 16; i++) {
			fill(a, sizeof(a), 200 + (unsigned)i);
			expect(e.c, ino[i], a, sizeof(a));
		}
	/* what fetching brought back goes again, in the background */
	for (int i = 0; i < 100; i++) {
		ASSERT_OK(cache_stats(e.c, &st));
		if (st.used_bytes <= 3 * MiB)
			break;
		usleep(50000);
	}
	test_diag("used %llu of %llu after reads",
		  (unsigned long long)st.used_bytes,
		  (unsigned long long)st.size_limit);
	ASSERT_TRUE(st.used_bytes <= 3 * MiB);
	env_done(&e);
}

TEST(dirty_data_fills_cache_enospc)
{
	struct env e;
	static unsigned char a[256 * KiB];
	struct cache_file *f;
	ssize_t w = 0;
	uint64_t ino, off = 0;

	env_init(&e, 2 * MiB);
	fault(&e, 0, 1, 0);		/* nothing can be replicated */
	fill(a, sizeof(a), 9);
	ino = mkfile(e.c, "big");
	ASSERT_OK(cache_file_open(e.c, ino, 0, &f));
	for (int i = 0; i < 64; i++) {
		w = cache_write(e.c, f, off, a, sizeof(a));
		if (w < 0)
			break;
		off += (uint64_t)w;
	}
	cache_file_release(e.c, f);
	ASSERT_EQ(w, -ENOSPC);
	test_diag("wrote %llu bytes before ENOSPC", (unsigned long long)off);
	ASSERT_TRUE(off >= 1 * MiB);
	env_done(&e);
}

/* --- metadata history ------------------------------------------------- */

static uint64_t mkdir_(struct cache *c, uint64_t parent, const char *name)
{
	struct stat st;

	ASSERT_OK(cache_mknod(c, parent, name, S_IFDIR | 0750, 0, NULL, &cred,
			      &st));
	cache_forget(c, st.st_ino, 1);
	return st.st_ino;
}

static uint64_t mkfile_in(struct cache *c, uint64_t parent, const char *name)
{
	struct stat st;

	ASSERT_OK(cache_mknod(c, parent, name, S_IFREG | 0640, 0, NULL, &cred,
			      &st));
	cache_forget(c, st.st_ino, 1);
	return st.st_ino;
}

static long long look(struct cache *c, uint64_t parent, const char *name)
{
	struct stat st;
	int rc = cache_lookup(c, parent, name, &st);

	if (rc)
		return rc;
	cache_forget(c, st.st_ino, 1);
	return (long long)st.st_ino;
}

/* Recover e's filesystem from region `from` into a fresh dir; returns an
 * env on it, opened with the same regions. */
static void recover_into_dir(struct env *e, struct env *r, int from,
			     int64_t at_ms, const char *sub)
{
	struct cache_recover_args a = { 0 };
	struct cache_recover_info info;
	struct backend *dir, *fb;
	char path[4200];

	*r = *e;
	r->c = NULL;
	r->rs = NULL;
	snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), sub);
	mkdir(path, 0700);
	ASSERT_OK(backend_dir_open(&dir, e->regdir[from]));
	ASSERT_OK(backend_fault_open(&fb, dir));
	a.dir = path;
	a.block_size = e->cfg.block_size;
	a.fsid = r->fsid;
	a.key = e->key;
	a.region = fb;
	a.at_ms = at_ms;
	ASSERT_OK(cache_recover(&a, &info));
	backend_close(fb);
	test_diag("recovered seq %llu: %llu objects, %llu bytes, %llu inodes",
		  (unsigned long long)info.seq,
		  (unsigned long long)info.objects,
		  (unsigned long long)info.bytes,
		  (unsigned long long)info.inodes);
	snprintf(r->dirbuf, sizeof(r->dirbuf), "%s", path);
	r->cfg.dir = r->dirbuf;
	env_open(r);
}

static void recover_into(struct env *e, struct env *r, int from,
			 int64_t at_ms)
{
	recover_into_dir(e, r, from, at_ms, "recovered");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

TEST(recover_rebuilds_tree_from_one_region)
{
	struct env e, r;
	static unsigned char big[700 * KiB];
	struct stat st, want_f, want_d;
	uint64_t d, f, sub, l;
	char buf[64];
	int n;

	env_init(&e, 1ull << 30);
	fill(big, sizeof(big), 11);
	d = mkdir_(e.c, CACHE_ROOT_INO, "patient-17");
	sub = mkdir_(e.c, d, "scans");
	f = mkfile_in(e.c, sub, "ct.raw");
	put(e.c, f, 0, big, sizeof(big));
	ASSERT_OK(cache_link(e.c, f, d, "ct-link", &st));
	cache_forget(e.c, st.st_ino, 1);
	ASSERT_OK(cache_mknod(e.c, d, "latest", S_IFLNK | 0777, 0,
			      "scans/ct.raw", &cred, &st));
	cache_forget(e.c, st.st_ino, 1);
	l = st.st_ino;
	ASSERT_OK(cache_setxattr(e.c, f, "user.modality", "CT", 2, 0));
	ASSERT_OK(cache_getattr(e.c, f, &want_f));
	ASSERT_OK(cache_getattr(e.c, d, &want_d));
	sync_ok(&e);
	ASSERT_OK(cache_sync_regions(e.c, 20000));

	recover_into(&e, &r, 1, INT64_MAX);
	ASSERT_EQ(look(r.c, CACHE_ROOT_INO, "patient-17"), (long long)d);
	ASSERT_EQ(look(r.c, d, "scans"), (long long)sub);
	ASSERT_EQ(look(r.c, sub, "ct.raw"), (long long)f);
	ASSERT_EQ(look(r.c, d, "ct-link"), (long long)f);
	ASSERT_OK(cache_getattr(r.c, f, &st));
	ASSERT_EQ(st.st_size, want_f.st_size);
	ASSERT_EQ(st.st_nlink, 2);
	ASSERT_EQ(st.st_mode, want_f.st_mode);
	ASSERT_EQ(st.st_mtim.tv_nsec, want_f.st_mtim.tv_nsec);
	ASSERT_OK(cache_getattr(r.c, d, &st));
	ASSERT_EQ(st.st_nlink, want_d.st_nlink);
	ASSERT_OK(cache_readlink(r.c, l, buf, sizeof(buf)));
	ASSERT_STREQ(buf, "scans/ct.raw");
	n = cache_getxattr(r.c, f, "user.modality", buf, sizeof(buf));
	ASSERT_EQ(n, 2);
	expect(r.c, f, big, sizeof(big));	/* fetched from the regions */
	/* the recovered filesystem goes on: new inodes, new history */
	ASSERT_TRUE(mkfile_in(r.c, d, "after") > l);
	ASSERT_OK(cache_sync_regions(r.c, 20000));
	env_close(&r);
	env_done(&e);
}

TEST(recover_as_at_a_moment)
{
	struct env e, r;
	uint64_t f, g;
	int64_t t1;

	env_init(&e, 1ull << 30);
	f = mkfile_in(e.c, CACHE_ROOT_INO, "letter");
	put(e.c, f, 0, "version one", 11);
	sync_ok(&e);
	usleep(20000);
	t1 = now_ms();
	usleep(20000);
	put(e.c, f, 0, "VERSION TWO, longer", 19);
	g = mkfile_in(e.c, CACHE_ROOT_INO, "later");
	ASSERT_OK(cache_unlink(e.c, CACHE_ROOT_INO, "later"));
	(void)g;
	mkfile_in(e.c, CACHE_ROOT_INO, "new");
	sync_ok(&e);

	recover_into(&e, &r, 0, t1);
	ASSERT_EQ(look(r.c, CACHE_ROOT_INO, "letter"), (long long)f);
	ASSERT_EQ(look(r.c, CACHE_ROOT_INO, "new"), -ENOENT);
	expect(r.c, f, "version one", 11);
	env_close(&r);
	/* and the latest moment, a snapshot and a segment later */
	recover_into_dir(&e, &r, 1, INT64_MAX, "latest");
	ASSERT_EQ(look(r.c, CACHE_ROOT_INO, "later"), -ENOENT);
	ASSERT_TRUE(look(r.c, CACHE_ROOT_INO, "new") > 0);
	expect(r.c, f, "VERSION TWO, longer", 19);
	env_close(&r);
	env_done(&e);
}

TEST(metadata_reaches_regions_without_sync)
{
	struct env e, r;
	struct cache_stats st;
	uint64_t f;

	memset(&e, 0, sizeof(e));
	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.metadata_interval_ms = 300;
	env_open(&e);
	f = mkfile_in(e.c, CACHE_ROOT_INO, "unsynced");
	put(e.c, f, 0, "no sync asked", 13);
	for (int i = 0; i < 100; i++) {
		usleep(50000);
		ASSERT_OK(cache_stats(e.c, &st));
		if (i > 20 && st.sealed_objects == 0)
			break;
	}
	recover_into(&e, &r, 0, INT64_MAX);
	ASSERT_EQ(look(r.c, CACHE_ROOT_INO, "unsynced"), (long long)f);
	expect(r.c, f, "no sync asked", 13);
	env_close(&r);
	env_done(&e);
}

TEST(recover_refuses_a_filesystem_and_a_time_before_history)
{
	struct env e;
	struct cache_recover_args a = { 0 };
	struct cache_recover_info info;

	env_init(&e, 1ull << 30);
	mkfile_in(e.c, CACHE_ROOT_INO, "x");
	sync_ok(&e);
	a.dir = test_tmpdir();		/* holds this filesystem */
	a.block_size = e.cfg.block_size;
	a.fsid = e.fsid;
	a.key = e.key;
	a.region = e.fault[0];
	a.at_ms = INT64_MAX;
	ASSERT_EQ(cache_recover(&a, &info), PHI_EEXISTFS);
	{
		char path[4200];

		snprintf(path, sizeof(path), "%s/empty", test_tmpdir());
		ASSERT_OK(mkdir(path, 0700));
		a.dir = path;
		a.at_ms = 1000;		/* 1970 */
		ASSERT_EQ(cache_recover(&a, &info), -ENOENT);
	}
	env_done(&e);
}

static void report_line(void *ctx, const char *line)
{
	(void)ctx;
	test_diag("report: %s", line);
}

static void args_regions(struct env *e, struct backend *r[2])
{
	r[0] = backend_replica_region(e->rs, 0);
	r[1] = backend_replica_region(e->rs, 1);
}

TEST(mount_never_deletes_and_fsck_is_clean)
{
	struct env e;
	uint64_t d, f;
	struct stat st;

	env_init(&e, 1ull << 30);
	d = mkdir_(e.c, CACHE_ROOT_INO, "dir");
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		f = mkfile_in(e.c, d, name);
		put(e.c, f, 0, name, strlen(name));
		if (i % 3 == 0)
			ASSERT_OK(cache_unlink(e.c, d, name));
	}
	ASSERT_OK(cache_link(e.c, f, CACHE_ROOT_INO, "hard", &st));
	cache_forget(e.c, st.st_ino, 1);
	ASSERT_OK(cache_rename(e.c, d, "f1", CACHE_ROOT_INO, "moved", 0));
	sync_ok(&e);
	put(e.c, f, 0, "overwritten", 11);
	sync_ok(&e);
	ASSERT_EQ(cache_fsck(e.c, report_line, NULL), 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(backend_fault_calls(e.fault[i], BACKEND_OP_DEL), 0);
	env_done(&e);
}

TEST(scrub_finds_and_repairs_damage)
{
	struct env e;
	static unsigned char a[200 * KiB];
	struct cache_scrub_args sa = { 0 };
	struct cache_scrub_result res;
	struct backend *r[2];
	char cmd[9000];
	uint64_t f;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 21);
	f = mkfile_in(e.c, CACHE_ROOT_INO, "x");
	put(e.c, f, 0, a, sizeof(a));
	sync_ok(&e);
	args_regions(&e, r);
	sa.regions = r;
	sa.names = names;
	sa.nregions = 2;
	sa.key = e.key;
	sa.fsid = e.fsid;
	sa.report = report_line;
	ASSERT_OK(cache_scrub(&sa, &res));
	ASSERT_TRUE(res.objects >= 2);
	ASSERT_EQ(res.bad + res.missing + res.lost, 0);
	/* damage: region a loses its data objects, b gets a flipped byte
	 * in every metadata object */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/d' && for f in $(find '%s/m' "
		 "-type f); do printf '\\377' | dd of=$f bs=1 seek=60 "
		 "conv=notrunc status=none; done", e.regdir[0], e.regdir[1]);
	ASSERT_OK(system(cmd));
	ASSERT_OK(cache_scrub(&sa, &res));
	ASSERT_TRUE(res.missing >= 1);
	ASSERT_TRUE(res.bad >= 1);
	ASSERT_EQ(res.repaired, 0);
	sa.repair = 1;
	ASSERT_OK(cache_scrub(&sa, &res));
	ASSERT_EQ(res.repaired, res.missing + res.bad);
	ASSERT_EQ(res.lost, 0);
	sa.repair = 0;
	ASSERT_OK(cache_scrub(&sa, &res));
	ASSERT_EQ(res.bad + res.missing + res.lost, 0);
	env_done(&e);
}

TEST(gc_keeps_every_moment_within_retention)
{
	struct env e, r;
	struct cache_gc_args ga = { 0 };
	struct cache_gc_result res;
	struct backend *rr[2];
	uint64_t f;
	int64_t cut;
	int before, after;

	env_init(&e, 1ull << 30);
	e.cfg.pack_size = 64 * KiB;
	env_close(&e);
	env_open(&e);
	f = mkfile_in(e.c, CACHE_ROOT_INO, "note");
	put(e.c, f, 0, "old old old", 11);
	sync_ok(&e);
	for (int i = 0; i < 3; i++) {	/* history that retention drops */
		char text[32];

		snprintf(text, sizeof(text), "revision %d", i);
		put(e.c, f, 0, text, strlen(text));
		sync_ok(&e);
	}
	/* segments outweighing the snapshot bring a new one: the base of
	 * the moments retention keeps */
	usleep(20000);
	cut = now_ms();
	usleep(20000);
	put(e.c, f, 0, "kept version", 12);
	sync_ok(&e);
	args_regions(&e, rr);
	ga.regions = rr;
	ga.names = names;
	ga.nregions = 2;
	ga.key = e.key;
	ga.fsid = e.fsid;
	ga.keep_after_ms = cut;
	ga.report = report_line;
	before = scan(e.regdir[0], NULL);
	ga.dry_run = 1;
	ASSERT_OK(cache_gc(&ga, &res));
	ASSERT_EQ(scan(e.regdir[0], NULL), before);
	ga.dry_run = 0;
	ASSERT_OK(cache_gc(&ga, &res));
	after = scan(e.regdir[0], NULL);
	test_diag("objects %d -> %d; meta %llu packs %llu unreferenced %llu",
		  before, after, (unsigned long long)res.meta_deleted,
		  (unsigned long long)res.packs_deleted,
		  (unsigned long long)res.kept_unreferenced);
	ASSERT_TRUE(after <= before);
	/* every moment after the cut is still there */
	recover_into_dir(&e, &r, 0, INT64_MAX, "after-gc");
	expect(r.c, f, "kept version", 12);
	env_close(&r);
	/* the oldest kept moment too: what was there at the cut */
	recover_into_dir(&e, &r, 1, cut, "at-cut");
	expect(r.c, f, "revision 2d", 11);	/* over "old old old" */
	env_close(&r);
	ASSERT_EQ(cache_fsck(e.c, report_line, NULL), 0);
	env_done(&e);
}

/* --- fsck --scrub's comparison against a live filesystem ---------------- */

struct evict_later {
	struct cache *c;
	unsigned delay_ms;
};

static void *evict_after(void *arg)
{
	struct evict_later *x = arg;

	nanosleep(&(struct timespec){ 0, x->delay_ms * 1000000L }, NULL);
	cache_evict(x->c, UINT64_MAX);
	return NULL;
}

static void count_line(void *ctx, const char *line)
{
	(*(int *)ctx)++;
	test_diag("compare: %s", line);
}

/*
 * A block evicted while its pack is being fetched is not a difference
 * (its hole is not its content), and a view taken before the mount sent
 * its last segment says that it is behind, not that the files differ for
 * no reason.
 */
TEST(compare_meets_eviction_and_a_view_behind)
{
	struct env e;
	static unsigned char a[3 * 64 * KiB], b[64 * KiB];
	struct cache_compare_result res;
	struct cache_compare_args ca = { 0 };
	struct cache_recover_args ra = { 0 };
	struct cache_recover_info info;
	struct cache_config vc;
	struct backend *dir, *slow;
	struct backend_fault f = { 0 };
	struct evict_later x;
	struct cache *view;
	pthread_t t;
	char path[4200];
	int lines = 0;
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 21);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);

	snprintf(path, sizeof(path), "%s/view", test_tmpdir());
	ASSERT_OK(mkdir(path, 0700));
	ASSERT_OK(backend_dir_open(&dir, e.regdir[0]));
	ASSERT_OK(backend_fault_open(&slow, dir));
	ra.dir = path;
	ra.block_size = e.cfg.block_size;
	ra.fsid = e.fsid;
	ra.key = e.key;
	ra.region = slow;
	ra.at_ms = INT64_MAX;
	ASSERT_OK(cache_recover(&ra, &info));
	memset(&vc, 0, sizeof(vc));
	vc.dir = path;
	vc.block_size = e.cfg.block_size;
	vc.region_names = names;
	ASSERT_OK(cache_open(&view, &vc, CACHE_OPEN_RDONLY));

	ca.region = slow;
	ca.label = "a";
	ca.key = e.key;
	ca.report = count_line;
	ca.ctx = &lines;
	ASSERT_EQ(cache_compare(e.c, view, &ca, &res), 0);
	ASSERT_EQ(res.blocks, 3);
	ASSERT_EQ(lines, 0);
	ASSERT_EQ(res.seq_there, res.seq_here);

	/* the pack comes slowly; the file is evicted before it is there */
	f.latency_ms = 600;
	f.ops_mask = BACKEND_OP_GET;
	backend_fault_set(slow, &f);
	x.c = e.c;
	x.delay_ms = 150;
	ASSERT_OK(pthread_create(&t, NULL, evict_after, &x));
	ASSERT_EQ(cache_compare(e.c, view, &ca, &res), 0);
	ASSERT_OK(pthread_join(t, NULL));
	ASSERT_EQ(lines, 0);
	ASSERT_EQ(res.differ, 0);
	backend_fault_set(slow, NULL);

	/* the mount goes on and sends a segment the view has not */
	fill(b, sizeof(b), 22);
	put(e.c, fa, 0, b, sizeof(b));
	sync_ok(&e);
	ASSERT_EQ(cache_compare(e.c, view, &ca, &res), 1);
	ASSERT_EQ(res.was_pending, 0);
	ASSERT_TRUE(res.seq_there < res.seq_here);
	ASSERT_EQ(lines, 1);

	ASSERT_OK(cache_close(view));
	backend_close(slow);
	env_done(&e);
}

static void find_line(void *ctx, const char *line)
{
	int *found = ctx;

	test_diag("report: %s", line);
	if (strstr(line, "has a name of 300 bytes"))
		*found = 1;
}

/* fsck meets metadata as damaged as it may be: a readdir entry whose name
 * is longer than any name may be is a problem it reports, not a buffer it
 * overruns. */
TEST(fsck_reports_an_overlong_readdir_name)
{
	struct env e;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v, nk, nv;
	uint8_t key[16], val[512];
	char path[4200];
	size_t head;
	int found = 0;

	env_init(&e, 1ull << 30);
	mkfile(e.c, "f0");
	env_close(&e);

	snprintf(path, sizeof(path), "%s/meta", e.cfg.dir);
	ASSERT_OK(mdb_env_create(&env));
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_mapsize(env, 64ull << 30);
	ASSERT_OK(mdb_env_open(env, path, MDB_NOTLS, 0600));
	ASSERT_OK(mdb_txn_begin(env, NULL, 0, &txn));
	ASSERT_OK(mdb_dbi_open(txn, "dircookies", 0, &dbi));
	ASSERT_OK(mdb_cursor_open(txn, dbi, &cur));
	ASSERT_OK(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
	mdb_cursor_close(cur);
	/* the one entry names "f0": the record is what comes before it */
	ASSERT_TRUE(k.mv_size == 16 && v.mv_size > 2 && v.mv_size < 64);
	head = v.mv_size - 2;
	memcpy(key, k.mv_data, 16);
	key[15] ^= 0x40;		/* another cookie of the same folder */
	memcpy(val, v.mv_data, head);
	memset(val + head, 'x', 300);
	nk = (MDB_val){ 16, key };
	nv = (MDB_val){ head + 300, val };
	ASSERT_OK(mdb_put(txn, dbi, &nk, &nv, 0));
	ASSERT_OK(mdb_txn_commit(txn));
	mdb_env_close(env);

	env_open(&e);
	ASSERT_TRUE(cache_fsck(e.c, find_line, &found) > 0);
	ASSERT_TRUE(found);
	env_done(&e);
}

TEST_MAIN(
	TEST_ENTRY(sealed_objects_in_both_regions_say_nothing),
	TEST_ENTRY(small_files_share_packs),
	TEST_ENTRY(evicted_blocks_read_back_after_reopen),
	TEST_ENTRY(region_a_gone_reads_from_b),
	TEST_ENTRY(corrupt_copy_in_a_fails_over_and_is_recorded),
	TEST_ENTRY(no_region_answers_read_fails_with_eio_writes_go_on),
	TEST_ENTRY(region_down_during_writes_catches_up),
	TEST_ENTRY(region_dropped_from_config_leaves_nothing_waiting),
	TEST_ENTRY(open_sweeps_unrecorded_files_and_keeps_queued_ones),
	TEST_ENTRY(overwrite_and_truncate_evicted_blocks),
	TEST_ENTRY(dirty_blocks_outlive_a_close_and_seal_at_next_open),
	TEST_ENTRY(overwrite_of_a_sealed_block_survives_a_crash_and_is_sealed),
	TEST_ENTRY(whole_block_write_over_an_evicted_block_that_never_landed),
	TEST_ENTRY(damaged_local_blocks_are_never_returned),
	TEST_ENTRY(cut_and_grow_while_sealing_leaves_no_stale_block),
	TEST_ENTRY(working_set_larger_than_cache),
	TEST_ENTRY(dirty_data_fills_cache_enospc),
	TEST_ENTRY(recover_rebuilds_tree_from_one_region),
	TEST_ENTRY(recover_as_at_a_moment),
	TEST_ENTRY(metadata_reaches_regions_without_sync),
	TEST_ENTRY(recover_refuses_a_filesystem_and_a_time_before_history),
	TEST_ENTRY(mount_never_deletes_and_fsck_is_clean),
	TEST_ENTRY(scrub_finds_and_repairs_damage),
	TEST_ENTRY(gc_keeps_every_moment_within_retention),
	TEST_ENTRY(compare_meets_eviction_and_a_view_behind),
	TEST_ENTRY(fsck_reports_an_overlong_readdir_name),
)
