/*
 * test_admin.c - the admin floor of cache/ (cache_recover.c,
 * cache_check.c, cache_verify.c), through cache.h and cache_admin.h:
 * recovering a filesystem from a region's history, as at a moment; fsck,
 * scrub and repair of the regions, gc, and fsck --scrub's comparison
 * against a live filesystem.
 *
 * Every case formats a fresh filesystem in its test_tmpdir() with regions
 * a/ and b/ beside it, each behind a fault-injecting backend, and a random
 * master key made by the test (struct env and the helpers test_seal.c and
 * test_fetch.c share: seal_test.h).
 */
#include "backend.h"
#include "cache.h"
#include "cache_admin.h"
#include "phi.h"
#include "seal_test.h"
#include "test.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
	/* a default ACL: owner rwx, group r-x, other --- */
	static const char acl[] = "\2\0\0\0" "\1\0\7\0\377\377\377\377"
		"\4\0\5\0\377\377\377\377" "\40\0\0\0\377\377\377\377";
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
	ASSERT_OK(cache_setxattr(e.c, f, "security.NTACL", "nt", 2, 0));
	ASSERT_OK(cache_setxattr(e.c, d, "system.posix_acl_default", acl,
				 sizeof(acl) - 1, 0));
	ASSERT_OK(cache_getattr(e.c, f, &want_f));
	ASSERT_OK(cache_getattr(e.c, d, &want_d));
	sync_ok(&e);
	sync_ok(&e);

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
	n = cache_getxattr(r.c, f, "security.NTACL", buf, sizeof(buf));
	ASSERT_EQ(n, 2);
	n = cache_getxattr(r.c, d, "system.posix_acl_default", buf,
			   sizeof(buf));
	ASSERT_EQ(n, (int)sizeof(acl) - 1);
	ASSERT_TRUE(memcmp(buf, acl, sizeof(acl) - 1) == 0);
	expect(r.c, f, big, sizeof(big));	/* fetched from the regions */
	/* the recovered filesystem goes on: new inodes, new history */
	ASSERT_TRUE(mkfile_in(r.c, d, "after") > l);
	sync_ok(&r);
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

/* The metadata objects region dir holds. */
static int meta_objects(const char *regdir)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/m", regdir);
	return stat(path, &st) == 0 ? scan(path, NULL) : 0;
}

TEST(metadata_reaches_regions_without_sync)
{
	struct env e, r;
	struct cache_stats st;
	uint64_t f;
	int m[2];

	memset(&e, 0, sizeof(e));
	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.metadata_interval_ms = 300;
	env_open(&e);
	f = mkfile_in(e.c, CACHE_ROOT_INO, "unsynced");
	m[0] = meta_objects(e.regdir[0]);
	m[1] = meta_objects(e.regdir[1]);
	{
		struct cache_file *h;

		ASSERT_OK(cache_file_open(e.c, f, 0, &h));
		ASSERT_EQ(cache_write(e.c, h, 0, "no sync asked", 13), 13);
		/* records the size and the dirty block now, not at the
		 * next fold, so that the counts below see them */
		ASSERT_OK(cache_fsync(e.c, h, 0));
		cache_file_release(e.c, h);
	}
	/* until the block is sealed and nothing waits for a region, and
	 * each region holds a metadata object more than before (metadata
	 * goes out once everything written is sealed).  Up to a minute:
	 * slow under a sanitizer on a loaded machine */
	for (int i = 0; i < 1200; i++) {
		ASSERT_OK(cache_stats(e.c, &st));
		if (st.dirty_blocks == 0 && st.sealed_objects == 0 &&
		    meta_objects(e.regdir[0]) > m[0] &&
		    meta_objects(e.regdir[1]) > m[1])
			break;
		usleep(50000);
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
	/* The filesystem is closed while its regions are damaged and
	 * scrubbed: an open cache's threads may still store into them
	 * (a snapshot after the sync), which would race with rm and dd
	 * below and make the counts this case asserts depend on timing. */
	env_close(&e);
	for (int i = 0; i < 2; i++)
		ASSERT_OK(backend_dir_open(&r[i], e.regdir[i]));
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
	for (int i = 0; i < 2; i++)
		backend_close(r[i]);
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
	vc.key = e.key;		/* rebuilt sealed, as phifs fsck opens it */
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

/* The LMDB environment of e's closed cache, a write transaction on it
 * and table name's first record in *k, *v. */
static void raw_first(struct env *e, const char *name, MDB_env **env,
		      MDB_txn **txn, MDB_dbi *dbi, MDB_val *k, MDB_val *v)
{
	MDB_cursor *cur;

	raw_open(e, name, 0, env, txn, dbi);
	ASSERT_OK(mdb_cursor_open(*txn, *dbi, &cur));
	ASSERT_OK(mdb_cursor_get(cur, k, v, MDB_FIRST));
	mdb_cursor_close(cur);
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
	MDB_val k, v, nk, nv;
	uint8_t key[16], val[512];
	size_t head;
	int found = 0;

	/* records in the clear, to be edited here (sealed ones: below) */
	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.plain_store = 1;
	env_open(&e);
	mkfile(e.c, "f0");
	env_close(&e);

	raw_first(&e, "dircookies", &env, &txn, &dbi, &k, &v);
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
	raw_close(env, txn, 0);

	env_open(&e);
	ASSERT_TRUE(cache_fsck(e.c, find_line, &found) > 0);
	ASSERT_TRUE(found);
	env_done(&e);
}

static void find_seal_line(void *ctx, const char *line)
{
	int *found = ctx;

	if (strstr(line, "dirents") && strstr(line, "fails its seal"))
		*found = 1;
}

/* Sealed names: a record changed on disk fails its seal; fsck says so,
 * and a lookup of it is an error, not another file. */
TEST(fsck_reports_a_name_that_fails_its_seal)
{
	struct env e;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v, nv;
	uint8_t val[512];
	struct stat st;
	int found = 0;

	env_init(&e, 1ull << 30);
	mkfile(e.c, "f0");
	env_close(&e);

	raw_first(&e, "dirents", &env, &txn, &dbi, &k, &v);
	/* the name is no longer in the key: 8 bytes of parent, a hash */
	ASSERT_TRUE(k.mv_size == 8 + 16);
	ASSERT_TRUE(memmem(k.mv_data, k.mv_size, "f0", 2) == NULL);
	ASSERT_TRUE(v.mv_size < sizeof(val));
	memcpy(val, v.mv_data, v.mv_size);
	val[v.mv_size / 2] ^= 1;
	nv = (MDB_val){ v.mv_size, val };
	ASSERT_OK(mdb_put(txn, dbi, &k, &nv, 0));
	raw_close(env, txn, 0);

	env_open(&e);
	ASSERT_TRUE(cache_fsck(e.c, find_seal_line, &found) > 0);
	ASSERT_TRUE(found);
	ASSERT_ERR(cache_lookup(e.c, CACHE_ROOT_INO, "f0", &st),
		   PHI_EAUTHFAIL);
	env_done(&e);
}

TEST_MAIN(
	TEST_ENTRY(recover_rebuilds_tree_from_one_region),
	TEST_ENTRY(recover_as_at_a_moment),
	TEST_ENTRY(metadata_reaches_regions_without_sync),
	TEST_ENTRY(recover_refuses_a_filesystem_and_a_time_before_history),
	TEST_ENTRY(mount_never_deletes_and_fsck_is_clean),
	TEST_ENTRY(scrub_finds_and_repairs_damage),
	TEST_ENTRY(gc_keeps_every_moment_within_retention),
	TEST_ENTRY(compare_meets_eviction_and_a_view_behind),
	TEST_ENTRY(fsck_reports_an_overlong_readdir_name),
	TEST_ENTRY(fsck_reports_a_name_that_fails_its_seal),
)
