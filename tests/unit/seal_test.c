/*
 * seal_test.c - the helpers of seal_test.h, shared by test_seal.c,
 * test_admin.c and test_fetch.c.
 */
#include "seal_test.h"

#include "backend.h"
#include "cache.h"
#include "cache_admin.h"
#include "crypt.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct cache_cred cred = { 1000, 1000, 0 };
const char *const names[2] = { "a", "b" };

/* --- the filesystem and its regions ------------------------------------- */

static void make_regions(struct env *e)
{
	struct backend *r[2];

	for (int i = 0; i < 2; i++) {
		struct backend *dir;

		ASSERT_OK(backend_dir_open(&dir, e->regdir[i]));
		ASSERT_OK(backend_fault_open(&r[i], dir));
		backend_fault_set(r[i], &e->start[i]);
		e->fault[i] = r[i];
	}
	ASSERT_OK(backend_replica_open(&e->rs, r, 2));
}

void env_open(struct env *e)
{
	make_regions(e);
	e->cfg.regions = e->rs;
	e->cfg.region_names = names;
	e->cfg.key = e->key;
	e->c = NULL;
	ASSERT_OK(cache_open(&e->c, &e->cfg, 0));
}

void env_close(struct env *e)
{
	ASSERT_OK(cache_close(e->c));
	e->c = NULL;
	backend_close(e->rs);
	e->rs = NULL;
}

void env_init_with(struct env *e, uint64_t limit,
		   const struct backend_fault start[2])
{
	memset(e, 0, sizeof(*e));
	if (start)
		memcpy(e->start, start, sizeof(e->start));
	for (int i = 0; i < 2; i++) {
		snprintf(e->regdir[i], sizeof(e->regdir[i]), "%s/region-%s",
			 test_tmpdir(), names[i]);
		ASSERT_OK(mkdir(e->regdir[i], 0700));
	}
	e->cfg.dir = test_tmpdir();
	e->cfg.size_limit = limit;
	e->cfg.block_size = BLOCK_SIZE;
	e->cfg.seal_delay_ms = 100;
	e->cfg.pack_size = 1 * MiB;
	e->cfg.uploaders = 2;
	e->cfg.read_ahead = -1;	/* each test counts its own fetches */
	ASSERT_OK(crypt_key_new_random(&e->key));
	ASSERT_OK(crypt_random_bytes(e->fsid, sizeof(e->fsid)));
	e->cfg.fsid = e->fsid;
	ASSERT_OK(cache_format(&e->cfg, 0, 0));
	env_open(e);
}

void env_init(struct env *e, uint64_t limit)
{
	env_init_with(e, limit, NULL);
}

void env_done(struct env *e)
{
	if (e->c)
		env_close(e);
	crypt_key_free(e->key);
}

void sync_ok(struct env *e)
{
	ASSERT_OK(cache_sync_regions(e->c, 120000));
}

void expect_a_recorded_bad(struct env *e)
{
	struct cache_stats st;

	env_close(e);			/* status reads what was recorded */
	/* still corrupt at the reopen: the mender's recheck must not find a
	 * good copy and drop the record before the stats are read */
	e->start[0].corrupt_get = 1;
	env_open(e);
	ASSERT_OK(cache_stats(e->c, &st));
	ASSERT_TRUE(st.regions[0].bad >= 1);
	ASSERT_EQ(st.regions[1].bad, 0);
}

/* --- files and their content ------------------------------------------ */

uint64_t mkfile(struct cache *c, const char *name)
{
	struct stat st;

	ASSERT_OK(cache_mknod(c, CACHE_ROOT_INO, name, S_IFREG | 0644, 0, NULL,
			      &cred, &st));
	cache_forget(c, st.st_ino, 1);
	return st.st_ino;
}

void put(struct cache *c, uint64_t ino, uint64_t off, const void *buf,
	 size_t len)
{
	struct cache_file *f;

	ASSERT_OK(cache_file_open(c, ino, 0, &f));
	ASSERT_EQ(cache_write(c, f, off, buf, len), (ssize_t)len);
	cache_file_release(c, f);
}

/* Read as fs/ does: through memory from a sealed store, else from the
 * extent the cache names (splice). */
int read_file(struct cache *c, struct cache_file *f, uint64_t off,
	      void *buf, size_t len, size_t *got)
{
	struct cache_extent ext;
	ssize_t r;
	int rc;

	*got = 0;
	if (cache_read_copies(c)) {
		r = cache_read(c, f, off, buf, len);
		if (r >= 0)
			*got = (size_t)r;
		return r < 0 ? (int)r : 0;
	}
	rc = cache_read_extent(c, f, off, len, &ext);
	if (rc == 0) {
		if (pread(ext.fd, buf, ext.len, (off_t)ext.off) !=
		    (ssize_t)ext.len)
			rc = -EIO;
		*got = rc ? 0 : ext.len;
		cache_read_end(c, &ext);
	}
	return rc;
}

int get(struct cache *c, uint64_t ino, uint64_t off, void *buf, size_t len,
	size_t *got)
{
	struct cache_file *f;
	int rc;

	ASSERT_OK(cache_file_open(c, ino, 0, &f));
	rc = read_file(c, f, off, buf, len, got);
	cache_file_release(c, f);
	return rc;
}

int try_get(struct cache *c, uint64_t ino, uint64_t off, void *buf,
	    size_t len, size_t *got)
{
	struct cache_file *f;
	int rc;

	*got = 0;
	rc = cache_file_open(c, ino, 0, &f);
	if (rc)
		return rc;
	rc = read_file(c, f, off, buf, len, got);
	cache_file_release(c, f);
	return rc;
}

void fill(unsigned char *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

void expect(struct cache *c, uint64_t ino, const void *want, size_t len)
{
	unsigned char *buf = malloc(len + 1);
	size_t got = 0;

	ASSERT_TRUE(buf != NULL);
	ASSERT_OK(get(c, ino, 0, buf, len + 1, &got));
	ASSERT_EQ(got, len);
	ASSERT_TRUE(memcmp(buf, want, len) == 0);
	free(buf);
}

/* --- the regions' objects --------------------------------------------- */

int scan(const char *dir, const char *needle)
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

void raw_open(struct env *e, const char *name, unsigned flags,
	      MDB_env **env, MDB_txn **txn, MDB_dbi *dbi)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/meta", e->cfg.dir);
	ASSERT_OK(mdb_env_create(env));
	mdb_env_set_maxdbs(*env, 16);
	mdb_env_set_mapsize(*env, 64ull << 30);
	ASSERT_OK(mdb_env_open(*env, path, MDB_NOTLS | (flags & MDB_RDONLY),
			       0600));
	ASSERT_OK(mdb_txn_begin(*env, NULL, flags & MDB_RDONLY, txn));
	ASSERT_OK(mdb_dbi_open(*txn, name, 0, dbi));
}

void raw_close(MDB_env *env, MDB_txn *txn, unsigned flags)
{
	if (flags & MDB_RDONLY)
		mdb_txn_abort(txn);
	else
		ASSERT_OK(mdb_txn_commit(txn));
	mdb_env_close(env);
}
