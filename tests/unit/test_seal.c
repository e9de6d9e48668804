/*
 * test_seal.c - the replication floor of cache/ (cache_seal.c,
 * cache_upload.c, cache_journal.c, cache_mend.c): sealing, packs, uploads,
 * region health, fetching back, eviction across regions, crash and dirty
 * records, through cache.h and cache_admin.h, over two dir: regions each
 * behind a fault-injecting backend.
 *
 * Every case formats a fresh filesystem in its test_tmpdir() with regions
 * a/ and b/ beside it and a random master key made by the test (struct
 * env and the helpers test_fetch.c and test_admin.c share: seal_test.h).
 * The admin floor's cases (recover, fsck, scrub, gc, compare) are in
 * test_admin.c.
 */
#include "backend.h"
#include "cache.h"
#include "cache_admin.h"
#include "crc32c.h"
#include "crypt.h"
#include "seal_test.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
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

static const char *state(struct cache *c, uint64_t ino)
{
	static char buf[32];
	int n = cache_getxattr(c, ino, "user.phifs.state", buf,
			       sizeof(buf) - 1);

	ASSERT_TRUE(n > 0);
	buf[n] = '\0';
	return buf;
}

/* --- cases ------------------------------------------------------------- */

/* Files "a" and "b" made with a[0..na) and b[0..nb) of fill(seed) and
 * fill(seed + 1), in every region. */
static void two_files_synced(struct env *e, unsigned char *a, size_t na,
			     unsigned char *b, size_t nb, unsigned seed,
			     uint64_t *fa, uint64_t *fb)
{
	fill(a, na, seed);
	fill(b, nb, seed + 1);
	*fa = mkfile(e->c, "a");
	*fb = mkfile(e->c, "b");
	put(e->c, *fa, 0, a, na);
	put(e->c, *fb, 0, b, nb);
	sync_ok(e);
}

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

/* Text that compresses, each line its own. */
static void text_fill(unsigned char *buf, size_t n, unsigned seed)
{
	size_t at = 0;

	while (at < n) {
		char line[80];
		int w = snprintf(line, sizeof(line), "%u: pressure normal, "
				 "pulse %zu\n", seed, at % 97);

		memcpy(buf + at, line, (size_t)w < n - at ? (size_t)w : n - at);
		at += (size_t)w;
	}
}

/* Sealed side by side by more threads than cores: every frame is placed
 * where its object id says, each block read back from its frame after
 * eviction and after a reopen, compressible and not, whole and short. */
TEST(blocks_sealed_side_by_side_read_back)
{
	struct env e;
	static unsigned char text[3 * MiB + 777], noise[2 * MiB + 5],
		letters[40][3000];
	uint64_t ft, fn, fl[40];
	struct cache_stats st;

	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.seal_threads = 4;
	env_open(&e);
	text_fill(text, sizeof(text), 1);
	fill(noise, sizeof(noise), 2);
	ft = mkfile(e.c, "text");
	fn = mkfile(e.c, "noise");
	put(e.c, ft, 0, text, sizeof(text));
	put(e.c, fn, 0, noise, sizeof(noise));
	for (int i = 0; i < 40; i++) {
		char name[16];

		snprintf(name, sizeof(name), "letter-%d", i);
		if (i % 2)
			text_fill(letters[i], sizeof(letters[i]), 100 + i);
		else
			fill(letters[i], sizeof(letters[i]), 100 + i);
		fl[i] = mkfile(e.c, name);
		put(e.c, fl[i], 0, letters[i], sizeof(letters[i]));
	}
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) >= sizeof(noise));
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.resident_blocks, 0);
	expect(e.c, ft, text, sizeof(text));
	expect(e.c, fn, noise, sizeof(noise));
	for (int i = 0; i < 40; i++)
		expect(e.c, fl[i], letters[i], sizeof(letters[i]));
	env_close(&e);

	e.cfg.seal_threads = 1;		/* read back by a sealer alone */
	env_open(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) >= sizeof(noise));
	expect(e.c, fn, noise, sizeof(noise));
	expect(e.c, fl[39], letters[39], sizeof(letters[39]));
	env_done(&e);
}

TEST(evicted_blocks_read_back_after_reopen)
{
	struct env e;
	static unsigned char a[1 * MiB + 4321], b[200 * KiB];
	struct cache_stats st;
	uint64_t fa, fb;

	env_init(&e, 1ull << 30);
	two_files_synced(&e, a, sizeof(a), b, sizeof(b), 1, &fa, &fb);
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
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 4);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	fault(&e, 0, 0, 1);
	expect(e.c, fa, a, sizeof(a));
	expect_a_recorded_bad(&e);
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

/* A pack whose local copy is found shorter than recorded is not sent
 * (not even tried: a put of what was read would store a damaged copy,
 * or fail), and stays waiting for that region; the other region has it
 * already. */
TEST(short_local_pack_is_not_uploaded)
{
	static unsigned char a[256 * KiB];
	struct cache_counters k;
	struct cache_stats st;
	char path[4300];
	struct dirent *d;
	int packs = 0;
	struct env e;
	DIR *dir;

	env_init_with(&e, 1ull << 30,
		      (struct backend_fault[2]){ { .fail_all = 1 }, { 0 } });
	ASSERT_OK(crypt_random_bytes(a, sizeof(a)));	/* a pack of pages */
	put(e.c, mkfile(e.c, "f"), 0, a, sizeof(a));
	ASSERT_EQ(cache_sync_regions(e.c, 3000), -ETIMEDOUT);
	env_close(&e);
	snprintf(path, sizeof(path), "%s/packs", e.cfg.dir);
	ASSERT_TRUE((dir = opendir(path)) != NULL);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/packs/%s", e.cfg.dir,
			 d->d_name);
		ASSERT_EQ(truncate(path, 100), 0);
		packs++;
	}
	closedir(dir);
	ASSERT_TRUE(packs >= 1);
	e.start[0].fail_all = 0;
	env_open(&e);			/* region a answers now */
	/* uploads to a go on (a second file's pack gets there), and the
	 * short pack, queued first, has been tried by then */
	put(e.c, mkfile(e.c, "g"), 0, a, sizeof(a));
	for (int i = 0; i < 60; i++) {
		ASSERT_EQ(cache_sync_regions(e.c, 1000), -ETIMEDOUT);
		cache_counters(e.c, &k);
		if (k.regions[0].upload.cum[PHI_HIST_BUCKETS] >= 1)
			break;
	}
	ASSERT_TRUE(k.regions[0].upload.cum[PHI_HIST_BUCKETS] >= 1);
	ASSERT_EQ(cache_sync_regions(e.c, 1000), -ETIMEDOUT);
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_TRUE(st.regions[0].waiting >= 1);	/* the short one */
	ASSERT_EQ(st.regions[1].waiting, 0);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.regions[0].upload_errors, 0);	/* not even tried */
	env_done(&e);
}

/* Regions that sign a put's body (S3) get the SHA-256 of an object
 * computed once for all of them: the uploaders that take the same pack
 * for a and for b at the same moment (woken together as it is queued)
 * hash it once, the second waiting for the first's digest, which is the
 * body's (a fault backend acting as such a region refuses any other). */
TEST(regions_that_sign_bodies_hash_each_object_once)
{
	static unsigned char a[1 * MiB];
	const struct backend_fault sign = { .signs_body = 1 };
	struct cache_counters k;
	unsigned long nput;
	uint64_t hashed;
	struct env e;
	uint64_t ino;

	env_init_with(&e, 1ull << 30,
		      (struct backend_fault[2]){ sign, sign });
	sync_ok(&e);
	env_close(&e);
	/* packs that take a while to hash: a wide window for the race */
	e.cfg.pack_size = 8 * MiB;
	env_open(&e);
	cache_counters(e.c, &k);
	hashed = k.objects_hashed;
	nput = backend_fault_calls(e.fault[0], BACKEND_OP_PUT);
	ino = mkfile(e.c, "f");
	for (unsigned i = 0; i < 32; i++) {
		ASSERT_OK(crypt_random_bytes(a, sizeof(a)));
		put(e.c, ino, (uint64_t)i * sizeof(a), a, sizeof(a));
	}
	sync_ok(&e);
	cache_counters(e.c, &k);
	nput = backend_fault_calls(e.fault[0], BACKEND_OP_PUT) - nput;
	test_diag("objects put to a: %lu, hashed: %llu", nput,
		  (unsigned long long)(k.objects_hashed - hashed));
	ASSERT_TRUE(nput >= 4);			/* 32 MiB in 8 MiB packs */
	ASSERT_EQ(backend_fault_calls(e.fault[1], BACKEND_OP_PUT),
		  backend_fault_calls(e.fault[0], BACKEND_OP_PUT));
	ASSERT_EQ(k.regions[0].upload_errors, 0);	/* digests right */
	ASSERT_EQ(k.regions[1].upload_errors, 0);
	ASSERT_EQ(k.objects_hashed - hashed, nput);
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
	sync_ok(&e);
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

/*
 * seal_quiet: a file closed while another is being written waits for a
 * pause in the writing before it is sealed; with seal_quiet = 0 it is
 * sealed while the writing goes on.  The writing is a write every 20 ms
 * against a quiet time of 2 s, so that a loaded machine's stall does not
 * look like a pause.
 */
struct busy_writer {
	struct cache *c;
	uint64_t ino;
	atomic_int stop;
	int rc;
	pthread_t t;
};

static void *busy_writer_main(void *arg)
{
	struct busy_writer *w = arg;
	unsigned char buf[4096];
	struct cache_file *f;
	uint64_t off = 0;

	w->rc = cache_file_open(w->c, w->ino, 0, &f);
	if (w->rc)
		return NULL;
	fill(buf, sizeof(buf), 5);
	while (!atomic_load(&w->stop) && w->rc == 0) {
		if (cache_write(w->c, f, off % (1u << 20), buf, sizeof(buf)) !=
		    (ssize_t)sizeof(buf))
			w->rc = -EIO;
		off += sizeof(buf);
		usleep(20000);
	}
	cache_file_release(w->c, f);
	return NULL;
}

static void busy_writer_start(struct busy_writer *w, struct cache *c,
			      uint64_t ino)
{
	w->c = c;
	w->ino = ino;
	atomic_store(&w->stop, 0);
	w->rc = 0;
	ASSERT_OK(pthread_create(&w->t, NULL, busy_writer_main, w));
}

static void busy_writer_stop(struct busy_writer *w)
{
	atomic_store(&w->stop, 1);
	ASSERT_OK(pthread_join(w->t, NULL));
	ASSERT_OK(w->rc);
}

/* Seconds until ino is no longer dirty, polled every 50 ms for at most
 * limit seconds (then limit). */
static double until_sealed(struct cache *c, uint64_t ino, double limit)
{
	double t = 0;

	while (t < limit && strcmp(state(c, ino), "dirty") == 0) {
		usleep(50000);
		t += 0.05;
	}
	return t;
}

TEST(a_file_closed_during_writing_is_sealed_at_a_pause)
{
	static unsigned char a[64 * KiB];
	struct busy_writer w;
	struct env e;
	uint64_t busy, fa;

	env_init(&e, 1ull << 30);
	e.cfg.seal_delay_ms = 600000;	/* not by time in this case */
	e.cfg.seal_quiet_ms = 2000;
	env_close(&e);
	env_open(&e);
	busy = mkfile(e.c, "busy");
	fa = mkfile(e.c, "a");
	fill(a, sizeof(a), 11);
	busy_writer_start(&w, e.c, busy);
	put(e.c, fa, 0, a, sizeof(a));	/* closed: would be sealed now */
	/* past the 3 s a pack not full stays open before it is stored
	 * (and the file with it stops being dirty) */
	sleep(6);
	ASSERT_STREQ(state(e.c, fa), "dirty");
	busy_writer_stop(&w);
	ASSERT_TRUE(until_sealed(e.c, fa, 60) < 60);

	/* 0: at once, the writing going on */
	env_close(&e);
	e.cfg.seal_quiet_ms = 0;
	env_open(&e);
	fill(a, sizeof(a), 12);
	busy_writer_start(&w, e.c, busy);
	put(e.c, fa, 0, a, sizeof(a));
	ASSERT_TRUE(until_sealed(e.c, fa, 60) < 60);
	busy_writer_stop(&w);
	expect(e.c, fa, a, sizeof(a));
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

static void data_path(struct env *e, uint64_t ino, char *out, size_t size);

/* Write n bytes over ino's data file at at (a place the store keeps). */
static void poke(struct env *e, uint64_t ino, uint64_t at, const void *bytes,
		 size_t n)
{
	char path[4200];
	int fd;

	data_path(e, ino, path, sizeof(path));
	fd = open(path, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(pwrite(fd, bytes, n, (off_t)at), (ssize_t)n);
	close(fd);
}

/* Copy cache_dir's meta/data.mdb to name (or back, with back). */
static int copy_meta(struct env *e, const char *name, int back)
{
	char a[4200], b[4200];
	static char buf[1 << 20];
	int in, out, rc = 0;
	ssize_t n;

	snprintf(a, sizeof(a), "%s/meta/data.mdb", e->cfg.dir);
	snprintf(b, sizeof(b), "%s/meta/%s", e->cfg.dir, name);
	in = open(back ? b : a, O_RDONLY);
	out = open(back ? a : b, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (in < 0 || out < 0)
		rc = -1;
	while (rc == 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* Like kill -9 of the daemon: in a child, open the cache, write
 * [off, off+len) with the handle left open, and _exit() at once, before
 * any fold or seal could run.  With tear_at not UINT64_MAX, the child
 * first overwrites 4 KiB of the data file there with junk, as a power
 * loss that kept a new entry but not the bytes it names would.  With
 * lose_commits, the LMDB file goes back to what it was just after the
 * child's open, as a power loss that kept the written bytes but lost
 * the commits after the open's (the write's dirty record) would. */
static void child_write(struct env *e, uint64_t ino, uint64_t off,
			const void *buf, size_t len, uint64_t tear_at,
			int lose_commits)
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
		/* the write's dirty record is committed, and nothing seals
		 * it, before the child dies */
		if (lose_commits)
			e->cfg.seal_delay_ms = 600000;
		if (cache_open(&e->c, &e->cfg, 0) ||
		    (lose_commits && copy_meta(e, "data.mdb.open", 0)) ||
		    cache_file_open(e->c, ino, 0, &f) ||
		    cache_write(e->c, f, off, buf, len) != (ssize_t)len)
			_exit(1);
		if (tear_at != UINT64_MAX) {
			static char junk[4096], path[4200];
			int fd;

			memset(junk, 0x6b, sizeof(junk));
			data_path(e, ino, path, sizeof(path));
			fd = open(path, O_RDWR);
			if (fd < 0 || pwrite(fd, junk, sizeof(junk),
					     (off_t)tear_at) != sizeof(junk))
				_exit(1);
		}
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	if (lose_commits) {
		char gone[4200];

		ASSERT_OK(copy_meta(e, "data.mdb.open", 1));
		snprintf(gone, sizeof(gone), "%s/meta/data.mdb.open",
			 e->cfg.dir);
		ASSERT_OK(unlink(gone));
	}
	env_open(e);
}

static void write_tear_and_die(struct env *e, uint64_t ino, uint64_t off,
			       const void *buf, size_t len, uint64_t tear_at)
{
	child_write(e, ino, off, buf, len, tear_at, 0);
}

static void write_and_die(struct env *e, uint64_t ino, uint64_t off,
			  const void *buf, size_t len)
{
	write_tear_and_die(e, ino, off, buf, len, UINT64_MAX);
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
	uint64_t fa, at, len;
	int fd;

	env_init(&e, 1ull << 30);
	e.cfg.seal_delay_ms = 600000;
	cache_data_block(e.c, 1, &at, &len);
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
			    (off_t)at, (off_t)len));
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
	uint64_t fa, fb, at130k, at100k, at10;

	env_init(&e, 1ull << 30);
	/* where those bytes are in the data files (written once: slot 0) */
	at130k = cache_data_where(e.c, 130000, 0);
	at100k = cache_data_where(e.c, 100 * KiB, 0);
	at10 = cache_data_where(e.c, 10, 0);
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
	poke(&e, fa, at130k, "\x5a", 1);
	poke(&e, fb, at100k, "stray", 5);
	env_open(&e);
	expect(e.c, fa, a, sizeof(a));
	expect(e.c, fb, b, sizeof(b));
	/* a partial write into a damaged block keeps the sealed rest */
	env_close(&e);
	poke(&e, fa, at10, "\xa5", 1);
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

/* --- the sealed local store ---------------------------------------------- */

/* env_init(), with blocks sealed by a sync only: written ones stay
 * dirty. */
static void env_init_held(struct env *e)
{
	env_init(e, 1ull << 30);
	e->cfg.seal_delay_ms = 600000;
	env_close(e);
	env_open(e);
}

static const char LOCAL_MARKER[] = "PATIENT-MARKER-7731";

/* n bytes of text that repeats LOCAL_MARKER. */
static void marker_fill(unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)LOCAL_MARKER[i % (sizeof(LOCAL_MARKER) -
							  1)];
}

/* Whether the file at path holds LOCAL_MARKER. */
static int file_holds_marker(const char *path)
{
	static char m[1 << 20];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ASSERT_TRUE(fd >= 0);
	n = read(fd, m, sizeof(m));
	close(fd);
	ASSERT_TRUE(n > 0);
	return memmem(m, (size_t)n, LOCAL_MARKER,
		      sizeof(LOCAL_MARKER) - 1) != NULL;
}

/* Content written, dirty or sealed, rewritten in part and cut: not a
 * byte of it under data/ in the clear, while open and after.  And a
 * store turned plain (local_seal off) and sealed again keeps it all. */
TEST(local_store_holds_no_plaintext)
{
	struct env e;
	static unsigned char a[300 * KiB], b[5000];
	struct stat in = { 0 }, out;
	char data[4300];
	uint64_t fa, fb;

	env_init_held(&e);
	ASSERT_EQ(cache_store_sealed(e.c), 1);
	snprintf(data, sizeof(data), "%s/data", e.cfg.dir);
	marker_fill(a, sizeof(a));
	marker_fill(b, sizeof(b));
	fa = mkfile(e.c, "a");
	fb = mkfile(e.c, "b");
	put(e.c, fa, 0, a, sizeof(a));
	put(e.c, fb, 3, b, sizeof(b));		/* partial sectors */
	put(e.c, fa, 4096 + 100, b, 3000);	/* a rewrite in place */
	memcpy(a + 4096 + 100, b, 3000);
	in.st_size = 250 * KiB + 7;
	ASSERT_OK(cache_setattr(e.c, fa, CACHE_SET_SIZE, &in, &out));
	scan(data, LOCAL_MARKER);
	sync_ok(&e);				/* sealed and replicated */
	scan(data, LOCAL_MARKER);
	expect(e.c, fa, a, 250 * KiB + 7);
	env_close(&e);
	scan(data, LOCAL_MARKER);

	/* turned plain: the bytes are there in the clear (this test can
	 * see them), and the content is whole */
	e.cfg.plain_store = 1;
	env_open(&e);
	ASSERT_EQ(cache_store_sealed(e.c), 0);
	data_path(&e, fa, data, sizeof(data));
	ASSERT_TRUE(file_holds_marker(data));
	snprintf(data, sizeof(data), "%s/data", e.cfg.dir);
	expect(e.c, fa, a, 250 * KiB + 7);
	env_close(&e);
	/* and sealed again */
	e.cfg.plain_store = 0;
	env_open(&e);
	ASSERT_EQ(cache_store_sealed(e.c), 1);
	scan(data, LOCAL_MARKER);
	expect(e.c, fa, a, 250 * KiB + 7);
	{
		static unsigned char want[5003];

		memcpy(want + 3, b, sizeof(b));
		expect(e.c, fb, want, sizeof(want));
	}
	env_done(&e);
}

/* Sectors moved between files, or within one, fail their seals: a clean
 * block comes back from the regions whole. */
TEST(swapped_local_sectors_are_detected)
{
	struct env e;
	static unsigned char a[128 * KiB], b[128 * KiB], s1[4096], s2[4096];
	char pa[4200], pb[4200];
	uint64_t fa, fb, w0, w1;
	int fd;

	env_init(&e, 1ull << 30);
	w0 = cache_data_where(e.c, 0, 0);
	w1 = cache_data_where(e.c, 4096, 0);
	two_files_synced(&e, a, sizeof(a), b, sizeof(b), 41, &fa, &fb);
	env_close(&e);
	data_path(&e, fa, pa, sizeof(pa));
	data_path(&e, fb, pb, sizeof(pb));
	/* a's sector 0 <-> b's sector 0, and b's sectors 0 and 1 */
	fd = open(pa, O_RDWR);
	ASSERT_EQ(pread(fd, s1, sizeof(s1), (off_t)w0), (ssize_t)sizeof(s1));
	close(fd);
	fd = open(pb, O_RDWR);
	ASSERT_EQ(pread(fd, s2, sizeof(s2), (off_t)w0), (ssize_t)sizeof(s2));
	ASSERT_EQ(pwrite(fd, s1, sizeof(s1), (off_t)w1), (ssize_t)sizeof(s1));
	close(fd);
	fd = open(pa, O_RDWR);
	ASSERT_EQ(pwrite(fd, s2, sizeof(s2), (off_t)w0), (ssize_t)sizeof(s2));
	close(fd);
	env_open(&e);
	expect(e.c, fa, a, sizeof(a));
	expect(e.c, fb, b, sizeof(b));
	env_done(&e);
}

/* A dirty block has no copy elsewhere: a damaged sector in it is EIO to
 * a reader and a writer in part, and scrub reports it; the rest of the
 * file reads. */
static long count_reports(struct cache *c, struct cache_verify_result *r)
{
	return cache_verify_local(c, NULL, NULL, r);
}

TEST(damaged_dirty_sector_is_eio_and_reported)
{
	struct env e;
	static unsigned char a[128 * KiB], buf[4096];
	struct cache_verify_result r;
	char path[4200];
	uint64_t fa, at;
	size_t got;
	int fd;

	env_init_held(&e);
	at = cache_data_where(e.c, 70000, 0);
	fill(a, sizeof(a), 43);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	ASSERT_EQ(count_reports(e.c, &r), 0);
	env_close(&e);
	data_path(&e, fa, path, sizeof(path));
	fd = open(path, O_RDWR);
	ASSERT_EQ(pwrite(fd, "\x01", 1, (off_t)at), 1);
	close(fd);
	env_open(&e);
	ASSERT_STREQ(state(e.c, fa), "dirty");
	ASSERT_ERR(get(e.c, fa, 68 * KiB, buf, sizeof(buf), &got), -EIO);
	ASSERT_OK(get(e.c, fa, 0, buf, sizeof(buf), &got));
	ASSERT_TRUE(memcmp(buf, a, sizeof(buf)) == 0);
	ASSERT_EQ(count_reports(e.c, &r), 1);
	ASSERT_EQ(r.damaged, 1u);
	env_done(&e);
}

/* A rewrite cut short by a power loss (simulated: the new slot's bytes
 * never reached the disk, its entry did) reads what the sector held
 * before; a kill -9 after a rewrite loses nothing. */
TEST(torn_rewrite_reads_the_version_before)
{
	struct env e;
	static unsigned char a[64 * KiB], n[4096];
	uint64_t fa, slot2;

	env_init_held(&e);
	slot2 = cache_data_where(e.c, 8192, 2);
	fill(a, sizeof(a), 44);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	/* a new process rewrites sector 2, then dies: the version before
	 * stays in slot 0, the new one is in slot 1 and reads */
	fill(n, sizeof(n), 45);
	write_and_die(&e, fa, 8192, n, sizeof(n));
	memcpy(a + 8192, n, sizeof(n));
	expect(e.c, fa, a, sizeof(a));
	/* again: slot 0 holds the oldest, slot 1 the durable version, so
	 * the write goes to slot 2, and the power goes before its bytes are
	 * on the disk: the sector reads what it held before that write */
	fill(n, sizeof(n), 46);
	write_tear_and_die(&e, fa, 8192, n, sizeof(n), slot2);
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

/* A first write torn by a power loss (no version before it): its sector
 * reads as zeros, as a plain store's lost bytes would; the block seals. */
TEST(torn_first_write_reads_zeros_and_seals)
{
	struct env e;
	static unsigned char a[64 * KiB], n[4096];
	struct stat in = { 0 }, out;
	uint64_t fa, slot0;

	env_init_held(&e);
	slot0 = cache_data_where(e.c, 3 * 4096, 0);
	fill(a, sizeof(a), 47);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, 3 * 4096);		/* sectors 0-2 */
	in.st_size = 4 * 4096;			/* and a hole */
	ASSERT_OK(cache_setattr(e.c, fa, CACHE_SET_SIZE, &in, &out));
	fill(n, sizeof(n), 48);
	write_tear_and_die(&e, fa, 3 * 4096, n, sizeof(n), slot0);
	memset(a + 3 * 4096, 0, 4096);
	expect(e.c, fa, a, 4 * 4096);
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, fa), "replicated");
	env_done(&e);
}

/* The same lost commit in a plain store, then local_seal turned on: the
 * conversion seals the newer bytes, but does not vouch for them; the
 * block is still checked and fetched again. */
TEST(a_conversion_does_not_vouch_for_bytes_newer_than_their_record)
{
	struct env e;
	static unsigned char a[BLOCK_SIZE], b[BLOCK_SIZE];
	uint64_t fa;

	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.plain_store = 1;
	env_open(&e);
	fill(a, sizeof(a), 54);
	fill(b, sizeof(b), 55);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	child_write(&e, fa, 0, b, sizeof(b), UINT64_MAX, 1);
	env_close(&e);
	e.cfg.plain_store = 0;
	env_open(&e);
	ASSERT_TRUE(cache_store_sealed(e.c));
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

/* A read of one part of a sealed block checks only what it opens: a
 * write into part of another sector of it that fails its seal fetches
 * the block again, as a read would, instead of failing. */
TEST(a_write_into_a_damaged_clean_sector_fetches_its_block)
{
	struct env e;
	static unsigned char a[BLOCK_SIZE], got[4096];
	struct cache_file *f;
	uint64_t fa, at10;
	size_t n = 0;

	env_init(&e, 1ull << 30);
	at10 = cache_data_where(e.c, 10, 0);
	fill(a, sizeof(a), 53);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	env_close(&e);
	poke(&e, fa, at10, "\xa5", 1);
	env_open(&e);
	/* one handle: the node, and what its read checked, stay loaded */
	ASSERT_OK(cache_file_open(e.c, fa, 0, &f));
	ASSERT_OK(read_file(e.c, f, 5 * 4096, got, sizeof(got), &n));
	ASSERT_EQ(n, sizeof(got));
	ASSERT_TRUE(memcmp(got, a + 5 * 4096, sizeof(got)) == 0);
	memcpy(a + 20, "patch", 5);
	ASSERT_EQ(cache_write(e.c, f, 20, "patch", 5), 5);
	cache_file_release(e.c, f);
	expect(e.c, fa, a, sizeof(a));
	env_done(&e);
}

/* The `blocks` key of block 0 of ino. */
static void block0_key(uint8_t k[16], uint64_t ino)
{
	memset(k, 0, 16);
	for (int i = 7; i >= 0; i--, ino >>= 8)
		k[i] = (uint8_t)ino;
}

/* The plaintext length, flags and checksum of the `blocks` record of
 * block 0 of ino as e's closed cache stores it (struct block_rec: 48
 * bytes, plain at 36, flags at 40, crc at 44, host order). */
static void block0_rec(struct env *e, uint64_t ino, uint32_t *plain,
		       uint32_t *flags, uint32_t *crc)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, v;

	block0_key(k, ino);
	raw_open(e, "blocks", MDB_RDONLY, &env, &txn, &dbi);
	ASSERT_OK(mdb_get(txn, dbi, &key, &v));
	ASSERT_EQ(v.mv_size, (size_t)48);
	memcpy(plain, (const uint8_t *)v.mv_data + 36, 4);
	memcpy(flags, (const uint8_t *)v.mv_data + 40, 4);
	memcpy(crc, (const uint8_t *)v.mv_data + 44, 4);
	raw_close(env, txn, MDB_RDONLY);
}

/* Cut the `blocks` record of block 0 of ino in e's closed cache to len
 * bytes: a damaged record. */
static void block0_rec_cut(struct env *e, uint64_t ino, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t k[16], v[48];
	MDB_val key = { sizeof(k), k }, val;

	block0_key(k, ino);
	raw_open(e, "blocks", 0, &env, &txn, &dbi);
	ASSERT_OK(mdb_get(txn, dbi, &key, &val));
	ASSERT_TRUE(len <= val.mv_size && len <= sizeof(v));
	memcpy(v, val.mv_data, len);
	val = (MDB_val){ len, v };
	ASSERT_OK(mdb_put(txn, dbi, &key, &val, 0));
	raw_close(env, txn, 0);
}

/* A scrub of the local store that meets a damaged block record says so,
 * and does not take the block's data for data no record names. */
TEST(a_damaged_block_record_is_reported_as_such)
{
	struct env e;
	static unsigned char a[BLOCK_SIZE];
	struct cache_verify_result r = { 0 };
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 57);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	env_close(&e);
	block0_rec_cut(&e, fa, 40);
	env_open(&e);
	ASSERT_EQ(count_reports(e.c, &r), 1);
	ASSERT_EQ(r.damaged, 1);
	ASSERT_EQ(r.unrecorded, 0);
	env_done(&e);
}

/* A block's record keeps its plaintext's length and checksum masked, so
 * that it tells no file's size and confirms no guess of the content to
 * whoever has cache_dir; yet the mount unmasks them to read the block
 * and vouch for the local copy.  A plain store checks every block's
 * first read: with no region to fetch from, an intact block reads and a
 * damaged one fails. */
TEST(block_checksums_are_masked_yet_vouch_for_local_copies)
{
	static const struct backend_fault down = { .fail_all = 1 };
	struct env e;
	static unsigned char a[BLOCK_SIZE];
	unsigned char got[64];
	uint32_t plain = 0, flags = 0, crc = 0;
	uint64_t fa, at10;
	size_t n = 0;

	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.plain_store = 1;
	env_open(&e);
	at10 = cache_data_where(e.c, 10, 0);
	fill(a, sizeof(a), 56);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	env_close(&e);

	block0_rec(&e, fa, &plain, &flags, &crc);
	ASSERT_EQ(flags & 6u, 4u);	/* BLOCK_MASKED, not BLOCK_SUMMED */
	ASSERT_NE(plain, (uint32_t)sizeof(a));
	ASSERT_NE(crc, phi_crc32c(0, a, sizeof(a)));

	e.start[0] = e.start[1] = down;
	env_open(&e);
	expect(e.c, fa, a, sizeof(a));
	env_close(&e);
	poke(&e, fa, at10, "\xa5", 1);
	env_open(&e);
	ASSERT_TRUE(try_get(e.c, fa, 0, got, sizeof(got), &n) < 0);
	env_done(&e);
}

/* A power loss that kept a rewrite's bytes but lost the commit of its
 * dirty record: the block's record still says clean, with the checksum of
 * what the regions hold.  The open after it owes the block a check
 * (cache_sect_owed()), which finds the bytes newer than the record and
 * fetches the sealed copy again: local and regions agree. */
TEST(bytes_a_lost_commit_left_behind_give_way_to_the_sealed_copy)
{
	struct env e;
	static unsigned char a[BLOCK_SIZE], b[BLOCK_SIZE];
	uint64_t fa;

	env_init(&e, 1ull << 30);
	fill(a, sizeof(a), 51);
	fill(b, sizeof(b), 52);
	fa = mkfile(e.c, "a");
	put(e.c, fa, 0, a, sizeof(a));
	sync_ok(&e);
	ASSERT_STREQ(state(e.c, fa), "replicated");
	child_write(&e, fa, 0, b, sizeof(b), UINT64_MAX, 1);
	expect(e.c, fa, a, sizeof(a));
	ASSERT_STREQ(state(e.c, fa), "replicated");
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
	/* what fetching brought back goes again, in the background (up to
	 * a minute: the sealer's eviction is slow under a sanitizer on a
	 * loaded machine) */
	for (int i = 0; i < 1200; i++) {
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

TEST(open_file_gives_up_replicated_blocks_but_not_under_a_read)
{
	struct env e;
	static unsigned char a[4 * BLOCK_SIZE], b[2 * BLOCK_SIZE];
	static unsigned char back[6 * BLOCK_SIZE];
	struct cache_extent ext;
	struct cache_file *f;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	/* the extent a read splices from exists in a plain store only */
	env_close(&e);
	e.cfg.plain_store = 1;
	env_open(&e);
	fill(a, sizeof(a), 31);
	fill(b, sizeof(b), 32);
	ino = mkfile(e.c, "open");
	ASSERT_OK(cache_file_open(e.c, ino, 0, &f));
	ASSERT_EQ(cache_write(e.c, f, 0, a, sizeof(a)), (ssize_t)sizeof(a));
	sync_ok(&e);
	/* a read in flight: its bytes are still being copied out of the
	 * data file, so nothing of the file may be punched */
	ASSERT_OK(cache_read_extent(e.c, f, 0, BLOCK_SIZE, &ext));
	ASSERT_EQ(ext.len, BLOCK_SIZE);
	ASSERT_EQ(cache_evict(e.c, UINT64_MAX), 0);
	ASSERT_EQ(pread(ext.fd, back, ext.len, (off_t)ext.off),
		  (ssize_t)ext.len);
	ASSERT_TRUE(memcmp(back, a, BLOCK_SIZE) == 0);
	cache_read_end(e.c, &ext);
	/* still open, its replicated blocks go */
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) >= sizeof(a));
	/* and the handle writes on and reads back through the regions */
	ASSERT_EQ(cache_write(e.c, f, sizeof(a), b, sizeof(b)),
		  (ssize_t)sizeof(b));
	cache_file_release(e.c, f);
	memcpy(back, a, sizeof(a));
	memcpy(back + sizeof(a), b, sizeof(b));
	expect(e.c, ino, back, sizeof(back));
	env_done(&e);
}

TEST(stats_and_counters_for_the_metrics)
{
	static unsigned char want[2 * BLOCK_SIZE + 60];
	struct cache_counters k;
	struct cache_file *f;
	struct cache_stats st;
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	fill(want, 100, 7);
	fill(want + 2 * BLOCK_SIZE + 10, 50, 8);
	ino = mkfile(e.c, "m");
	/* one open: a close between the writes would let the sealer take
	 * block 0 while the test counts (this case counts, it does not
	 * race the sealer) */
	ASSERT_OK(cache_file_open(e.c, ino, 0, &f));
	ASSERT_EQ(cache_write(e.c, f, 0, want, 100), 100);
	ASSERT_EQ(cache_write(e.c, f, 2 * BLOCK_SIZE + 10,
			      want + 2 * BLOCK_SIZE + 10, 50), 50);
	ASSERT_OK(cache_fsync(e.c, f, 0));	/* records it all */
	cache_file_release(e.c, f);
	/* block 0 lies within the size whole; block 2 holds 60 bytes */
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.dirty_blocks, 2);
	ASSERT_EQ(st.dirty_bytes, 2 * BLOCK_SIZE);
	ASSERT_EQ(st.dirty_data_bytes, BLOCK_SIZE + 60);
	sync_ok(&e);
	ASSERT_OK(cache_stats(e.c, &st));
	ASSERT_EQ(st.dirty_data_bytes, 0);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.nregions, 2);
	ASSERT_EQ(k.evictions, 0);
	for (int i = 0; i < 2; i++) {
		ASSERT_STREQ(k.regions[i].name, names[i]);
		ASSERT_EQ(k.regions[i].up, 1);
		ASSERT_EQ(k.regions[i].upload_errors, 0);
		ASSERT_TRUE(k.regions[i].upload.cum[PHI_HIST_BUCKETS] > 0);
		ASSERT_EQ(k.regions[i].fetch.cum[PHI_HIST_BUCKETS], 0);
	}
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.evictions, 2);
	fault(&e, 0, 1, 0);
	expect(e.c, ino, want, sizeof(want));	/* from b */
	cache_counters(e.c, &k);
	ASSERT_TRUE(k.regions[0].fetch_errors > 0);
	ASSERT_EQ(k.regions[1].fetch_errors, 0);
	ASSERT_TRUE(k.regions[1].fetch.cum[PHI_HIST_BUCKETS] >= 2);
	fault(&e, 0, 0, 0);
	env_done(&e);
}

/* --- the audit trail's segments (cache_auditseg.c) --------------------- */

/* An event of n bytes whose first 8 (the inode, for cache/) are i. */
static size_t event_of(uint64_t i, uint8_t *ev)
{
	size_t n = 8 + (size_t)(i % 50);

	memset(ev, (int)(i & 0xff), n);
	memcpy(ev, &i, 8);
	return n;
}

struct seen {
	uint64_t next;		/* the number the next event must carry */
	int bad;
};

static int seen_one(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct seen *s = arg;
	uint8_t want[64];

	if (seq != s->next || len != event_of(seq, want) ||
	    memcmp(rec, want, len))
		s->bad++;
	s->next = seq + 1;
	return 0;
}

/* The plaintext of a segment of events first..last after prev. */
static void seg_make(struct buf *b, uint64_t first, uint64_t last,
		     const uint8_t prev[32])
{
	uint8_t ev[64];

	ASSERT_OK(cache_audit_seg_begin(b, first, prev, 1234));
	for (uint64_t i = first; i <= last; i++)
		ASSERT_OK(cache_audit_seg_add(b, ev, event_of(i, ev)));
}

TEST(audit_segment_encodes_and_parses_back)
{
	static const uint8_t zero[32];
	struct cache_audit_seg s;
	struct seen seen = { 5, 0 };
	struct buf b;
	uint64_t first;
	char key[CACHE_AUDIT_KEY_LEN + 1];

	buf_init(&b, SIZE_MAX);
	seg_make(&b, 5, 40, zero);
	ASSERT_OK(cache_audit_seg_parse(buf_data(&b), buf_len(&b), &s));
	ASSERT_EQ(s.first, 5);
	ASSERT_EQ(s.last, 40);
	ASSERT_EQ(s.time_ms, 1234);
	ASSERT_OK(cache_audit_seg_events(&s, seen_one, &seen));
	ASSERT_EQ(seen.next, 41);
	ASSERT_EQ(seen.bad, 0);
	/* cut short, one byte too many, another version: refused */
	ASSERT_EQ(cache_audit_seg_parse(buf_data(&b), buf_len(&b) - 1, &s),
		  PHI_ECORRUPT);
	ASSERT_OK(buf_add(&b, "x", 1));
	ASSERT_EQ(cache_audit_seg_parse(buf_data(&b), buf_len(&b), &s),
		  PHI_ECORRUPT);
	((uint8_t *)buf_mut(&b))[4] = 2;
	ASSERT_EQ(cache_audit_seg_parse(buf_data(&b), buf_len(&b) - 1, &s),
		  PHI_ECORRUPT);
	/* a header with no event is not a segment */
	ASSERT_OK(cache_audit_seg_begin(&b, 7, zero, 0));
	ASSERT_EQ(cache_audit_seg_parse(buf_data(&b), buf_len(&b), &s),
		  PHI_ECORRUPT);
	cache_audit_seg_key(0x1f, key);
	ASSERT_STREQ(key, "a/000000000000001f");
	ASSERT_OK(cache_audit_seg_key_parse(key, &first));
	ASSERT_EQ(first, 0x1f);
	ASSERT_EQ(cache_audit_seg_key_parse("a/base", &first), -EINVAL);
	ASSERT_EQ(cache_audit_seg_key_parse("a/000000000000001F", &first),
		  -EINVAL);
	buf_release(&b);
}

TEST(audit_chain_finds_gap_overlap_and_broken_link)
{
	static const uint8_t zero[32];
	struct cache_audit_seg s1, s2, s3;
	struct cache_audit_chain ch;
	struct buf b1, b2, b3;

	buf_init(&b1, SIZE_MAX);
	buf_init(&b2, SIZE_MAX);
	buf_init(&b3, SIZE_MAX);
	seg_make(&b1, 1, 10, zero);
	ASSERT_OK(cache_audit_seg_parse(buf_data(&b1), buf_len(&b1), &s1));
	seg_make(&b2, 11, 12, s1.hash);
	ASSERT_OK(cache_audit_seg_parse(buf_data(&b2), buf_len(&b2), &s2));
	seg_make(&b3, 13, 20, s2.hash);
	ASSERT_OK(cache_audit_seg_parse(buf_data(&b3), buf_len(&b3), &s3));

	memset(&ch, 0, sizeof(ch));
	ASSERT_OK(cache_audit_chain_add(&ch, &s1));
	ASSERT_OK(cache_audit_chain_add(&ch, &s2));
	ASSERT_OK(cache_audit_chain_add(&ch, &s3));
	ASSERT_EQ(ch.segments, 3);
	ASSERT_EQ(ch.events, 20);
	ASSERT_EQ(ch.head.seq, 20);
	ASSERT_TRUE(memcmp(ch.head.hash, s3.hash, 32) == 0);

	memset(&ch, 0, sizeof(ch));	/* s2 taken out */
	ASSERT_OK(cache_audit_chain_add(&ch, &s1));
	ASSERT_EQ(cache_audit_chain_add(&ch, &s3), CACHE_AUDIT_GAP);
	memset(&ch, 0, sizeof(ch));	/* the start taken out */
	ASSERT_EQ(cache_audit_chain_add(&ch, &s2), CACHE_AUDIT_GAP);
	memset(&ch, 0, sizeof(ch));	/* s1 twice */
	ASSERT_OK(cache_audit_chain_add(&ch, &s1));
	ASSERT_EQ(cache_audit_chain_add(&ch, &s1), CACHE_AUDIT_OVERLAP);

	/* s2 made again with the same numbers and other events: its
	 * successor no longer chains to it */
	seg_make(&b2, 11, 12, s1.hash);
	((uint8_t *)buf_mut(&b2))[buf_len(&b2) - 1] ^= 1;
	ASSERT_OK(cache_audit_seg_parse(buf_data(&b2), buf_len(&b2), &s2));
	memset(&ch, 0, sizeof(ch));
	ASSERT_OK(cache_audit_chain_add(&ch, &s1));
	ASSERT_OK(cache_audit_chain_add(&ch, &s2));
	ASSERT_EQ(cache_audit_chain_add(&ch, &s3), CACHE_AUDIT_BROKEN);
	buf_release(&b1);
	buf_release(&b2);
	buf_release(&b3);
}

static void append_events(struct cache *c, uint64_t from, uint64_t to)
{
	uint8_t ev[64];

	for (uint64_t i = from; i <= to; i++)
		ASSERT_OK(cache_audit_append(c, ev, event_of(i, ev)));
}

static void no_line(void *ctx, const char *line)
{
	(void)ctx;
	test_diag("unexpected problem: %s", line);
	ASSERT_TRUE(line == NULL);
}

/* Regions from..1 hold events 1..last whole, bound by their metadata. */
static void trail_whole_from(struct env *e, int from, uint64_t last)
{
	for (int r = from; r < 2; r++) {
		struct cache_audit_verify v;
		struct cache_audit_head h;
		struct seen seen = { 1, 0 };
		char mkey[40];

		ASSERT_OK(cache_audit_region_verify(e->fault[r], e->key,
						    e->fsid, no_line, NULL, &v));
		ASSERT_EQ(v.problems, 0);
		ASSERT_EQ(v.events, last);
		ASSERT_OK(cache_audit_region_walk(e->fault[r], e->key, e->fsid,
						  seen_one, &seen));
		ASSERT_EQ(seen.next, last + 1);
		ASSERT_EQ(seen.bad, 0);
		ASSERT_OK(cache_audit_bound_head(e->fault[r], e->key, e->fsid,
						 &h, mkey));
		ASSERT_EQ(h.seq, last);
	}
}

/* Both regions hold events 1..last whole, bound by their metadata. */
static void trail_whole(struct env *e, uint64_t last)
{
	trail_whole_from(e, 0, last);
}

TEST(audit_segments_reach_both_regions_chained_and_bound)
{
	struct env e;

	env_init(&e, 64 * MiB);
	append_events(e.c, 1, 30);
	sync_ok(&e);
	trail_whole(&e, 30);
	append_events(e.c, 31, 31);
	sync_ok(&e);
	append_events(e.c, 32, 100);
	sync_ok(&e);
	sync_ok(&e);		/* nothing new: no empty segment */
	trail_whole(&e, 100);
	env_done(&e);
}

TEST(audit_cut_again_after_a_crash_before_commit_replaces_the_orphan)
{
	char path[4400];
	struct env e;
	int fd;

	env_init(&e, 64 * MiB);
	append_events(e.c, 1, 10);
	sync_ok(&e);
	/* As a crash between storing a segment and the commit that would
	 * record it leaves things: the head still at 10, a local copy of a
	 * segment from 11 that no entry names, holding fewer events. */
	snprintf(path, sizeof(path), "%s/audit/%016x", e.cfg.dir, 11);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(write(fd, "stale", 5), 5);
	close(fd);
	append_events(e.c, 11, 25);
	sync_ok(&e);
	trail_whole(&e, 25);
	env_done(&e);
}

TEST(audit_segments_wait_for_a_region_down_and_survive_reopen)
{
	struct env e;

	env_init(&e, 64 * MiB);
	append_events(e.c, 1, 5);
	sync_ok(&e);
	fault(&e, 1, 1, 0);	/* b refuses every call */
	append_events(e.c, 6, 20);
	ASSERT_EQ(cache_sync_regions(e.c, 1500), -ETIMEDOUT);
	env_close(&e);		/* queued for b, not sent */
	env_open(&e);
	fault(&e, 1, 0, 0);
	append_events(e.c, 21, 22);
	sync_ok(&e);
	trail_whole(&e, 22);
	env_done(&e);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	ASSERT_TRUE(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ASSERT_EQ(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

TEST(audit_gc_deletes_a_prefix_and_the_rest_verifies_from_base)
{
	char seg1[4400], keep[4400];
	struct cache_audit_verify v;
	struct cache_audit_head base;
	struct seen seen = { 21, 0 };
	uint64_t n = 42;
	struct env e;

	env_init(&e, 64 * MiB);
	append_events(e.c, 1, 10);
	sync_ok(&e);
	append_events(e.c, 11, 20);
	sync_ok(&e);
	append_events(e.c, 21, 30);
	sync_ok(&e);
	/* nothing is old enough: nothing goes, and no base is written */
	ASSERT_OK(cache_audit_region_gc(e.fault[0], e.key, e.fsid, 1, 0, &n));
	ASSERT_EQ(n, 0);
	ASSERT_ERR(cache_audit_base_read(e.fault[0], e.key, e.fsid, &base),
		   -ENOENT);
	/* a dry run says what would go, and leaves it */
	ASSERT_OK(cache_audit_region_gc(e.fault[0], e.key, e.fsid,
					wall_ms() + 1000, 1, &n));
	ASSERT_EQ(n, 2);
	/* everything is old: all but the newest segment goes */
	snprintf(seg1, sizeof(seg1), "%s/a/%016x", e.regdir[0], 1);
	snprintf(keep, sizeof(keep), "%s/../seg1", e.regdir[0]);
	copy_file(seg1, keep);
	ASSERT_OK(cache_audit_region_gc(e.fault[0], e.key, e.fsid,
					wall_ms() + 1000, 0, &n));
	ASSERT_EQ(n, 2);
	ASSERT_OK(cache_audit_base_read(e.fault[0], e.key, e.fsid, &base));
	ASSERT_EQ(base.seq, 20);
	ASSERT_OK(cache_audit_region_verify(e.fault[0], e.key, e.fsid,
					    no_line, NULL, &v));
	ASSERT_EQ(v.segments, 1);
	ASSERT_EQ(v.events, 10);
	ASSERT_OK(cache_audit_region_walk(e.fault[0], e.key, e.fsid, seen_one,
					  &seen));
	ASSERT_EQ(seen.next, 31);
	ASSERT_EQ(seen.bad, 0);
	/* a run cut short after the base left an old segment: passed over */
	copy_file(keep, seg1);
	ASSERT_OK(cache_audit_region_verify(e.fault[0], e.key, e.fsid,
					    no_line, NULL, &v));
	ASSERT_EQ(v.segments, 1);
	/* the chain goes on after gc */
	append_events(e.c, 31, 35);
	sync_ok(&e);
	ASSERT_OK(cache_audit_region_verify(e.fault[0], e.key, e.fsid,
					    no_line, NULL, &v));
	ASSERT_EQ(v.events, 15);
	trail_whole_from(&e, 1, 35);
	env_done(&e);
}

TEST_MAIN(
	TEST_ENTRY(sealed_objects_in_both_regions_say_nothing),
	TEST_ENTRY(small_files_share_packs),
	TEST_ENTRY(blocks_sealed_side_by_side_read_back),
	TEST_ENTRY(evicted_blocks_read_back_after_reopen),
	TEST_ENTRY(region_a_gone_reads_from_b),
	TEST_ENTRY(corrupt_copy_in_a_fails_over_and_is_recorded),
	TEST_ENTRY(no_region_answers_read_fails_with_eio_writes_go_on),
	TEST_ENTRY(region_down_during_writes_catches_up),
	TEST_ENTRY(short_local_pack_is_not_uploaded),
	TEST_ENTRY(regions_that_sign_bodies_hash_each_object_once),
	TEST_ENTRY(region_dropped_from_config_leaves_nothing_waiting),
	TEST_ENTRY(open_sweeps_unrecorded_files_and_keeps_queued_ones),
	TEST_ENTRY(overwrite_and_truncate_evicted_blocks),
	TEST_ENTRY(a_file_closed_during_writing_is_sealed_at_a_pause),
	TEST_ENTRY(dirty_blocks_outlive_a_close_and_seal_at_next_open),
	TEST_ENTRY(overwrite_of_a_sealed_block_survives_a_crash_and_is_sealed),
	TEST_ENTRY(whole_block_write_over_an_evicted_block_that_never_landed),
	TEST_ENTRY(damaged_local_blocks_are_never_returned),
	TEST_ENTRY(local_store_holds_no_plaintext),
	TEST_ENTRY(swapped_local_sectors_are_detected),
	TEST_ENTRY(damaged_dirty_sector_is_eio_and_reported),
	TEST_ENTRY(torn_rewrite_reads_the_version_before),
	TEST_ENTRY(torn_first_write_reads_zeros_and_seals),
	TEST_ENTRY(bytes_a_lost_commit_left_behind_give_way_to_the_sealed_copy),
	TEST_ENTRY(a_conversion_does_not_vouch_for_bytes_newer_than_their_record),
	TEST_ENTRY(a_write_into_a_damaged_clean_sector_fetches_its_block),
	TEST_ENTRY(block_checksums_are_masked_yet_vouch_for_local_copies),
	TEST_ENTRY(a_damaged_block_record_is_reported_as_such),
	TEST_ENTRY(cut_and_grow_while_sealing_leaves_no_stale_block),
	TEST_ENTRY(working_set_larger_than_cache),
	TEST_ENTRY(dirty_data_fills_cache_enospc),
	TEST_ENTRY(stats_and_counters_for_the_metrics),
	TEST_ENTRY(open_file_gives_up_replicated_blocks_but_not_under_a_read),
	TEST_ENTRY(audit_segment_encodes_and_parses_back),
	TEST_ENTRY(audit_chain_finds_gap_overlap_and_broken_link),
	TEST_ENTRY(audit_segments_reach_both_regions_chained_and_bound),
	TEST_ENTRY(audit_cut_again_after_a_crash_before_commit_replaces_the_orphan),
	TEST_ENTRY(audit_segments_wait_for_a_region_down_and_survive_reopen),
	TEST_ENTRY(audit_gc_deletes_a_prefix_and_the_rest_verifies_from_base),
)
