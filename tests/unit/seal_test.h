/*
 * seal_test.h - what test_seal.c, test_admin.c and test_fetch.c share: a
 * formatted filesystem in the case's test_tmpdir() with two dir: regions
 * beside it (region-a/, region-b/), each behind a fault-injecting
 * backend, a random master key made by the test, and short forms of the
 * cache calls that assert as they go.
 *
 * Each helper that asserts fails the running case (test.h), as if the
 * assertion were written in the case itself; try_get() alone asserts
 * nothing, so that a case's threads may call it.  Linked into the three
 * programs from seal_test.c; reaches the cache through cache.h and
 * cache_admin.h only.
 */
#ifndef PHI_SEAL_TEST_H
#define PHI_SEAL_TEST_H

#include "backend.h"
#include "cache.h"
#include "crypt.h"

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#define KiB 1024ull
#define MiB (1024ull * KiB)

/* The block size env_init() formats with. */
#define BLOCK_SIZE (64 * KiB)

/* The caller every case creates files as: uid 1000, gid 1000. */
extern const struct cache_cred cred;

/* The regions' names, "a" and "b", as cache_config.region_names. */
extern const char *const names[2];

/* A filesystem and its two regions; fields may be read and, between
 * env_close() and env_open(), changed by the case. */
struct env {
	struct cache_config cfg;
	struct crypt_key *key;
	struct backend *rs;		/* the replica set over both */
	struct backend *fault[2];	/* borrowed from rs */
	struct backend_fault start[2];	/* set on them at each env_open() */
	struct cache *c;		/* NULL while closed */
	char regdir[2][4096];
	uint8_t fsid[16];
	char dirbuf[4200];		/* room for a cfg.dir of the case's */
};

/* --- the filesystem and its regions ------------------------------------- */

/* Open the regions (setting start[] on them) and the cache in e->cfg. */
void env_open(struct env *e);

/* Close the cache, asserting that it closes, and the regions. */
void env_close(struct env *e);

/* Format a fresh filesystem with this size limit and open it; the first
 * open sets start[] (the regions' faults; NULL: none) before anything is
 * uploaded. */
void env_init_with(struct env *e, uint64_t limit,
		   const struct backend_fault start[2]);

/* env_init_with() without faults. */
void env_init(struct env *e, uint64_t limit);

/* Close e if it is open, and free its key. */
void env_done(struct env *e);

/* cache_sync_regions() with 120 s to spare (an ASan or TSan build on a
 * loaded machine); asserts that it returns 0. */
void sync_ok(struct env *e);

/* Reopen e with region a still returning damaged copies, and assert that
 * status has a, and only a, recorded for repair. */
void expect_a_recorded_bad(struct env *e);

/* --- files and their content ------------------------------------------ */

/* A regular file 0644 in the root (as cred); asserts, returns the ino. */
uint64_t mkfile(struct cache *c, const char *name);

/* Write len bytes at off through a handle of its own; asserts that all of
 * them were written. */
void put(struct cache *c, uint64_t ino, uint64_t off, const void *buf,
	 size_t len);

/* Read [off, off+len) of f as fs/ does (cache_read() from a sealed store,
 * else the bytes of cache_read_extent()'s extent) into buf, the bytes
 * read in *got; returns the cache's code. */
int read_file(struct cache *c, struct cache_file *f, uint64_t off,
	      void *buf, size_t len, size_t *got);

/* Read [off, off+len) through cache_read_extent() into buf, the bytes read
 * in *got; asserts that the file opens and that what the extent holds is
 * read, returns cache_read_extent()'s code (*got unchanged unless 0). */
int get(struct cache *c, uint64_t ino, uint64_t off, void *buf, size_t len,
	size_t *got);

/* get() that asserts nothing (threads call it): the first failing code,
 * -EIO for a short read of the extent; *got is 0 unless it returns 0. */
int try_get(struct cache *c, uint64_t ino, uint64_t off, void *buf,
	    size_t len, size_t *got);

/* A pattern that differs with seed (xorshift). */
void fill(unsigned char *buf, size_t len, unsigned seed);

/* Assert that ino holds exactly the len bytes at want. */
void expect(struct cache *c, uint64_t ino, const void *want, size_t len);

/* --- the regions' objects --------------------------------------------- */

/* Files under dir, recursively; with needle, asserts none holds it. */
int scan(const char *dir, const char *needle);

/* --- the closed cache's LMDB, raw ------------------------------------- */

/* Open the LMDB environment of e's closed cache and a transaction on its
 * table name, read-only if flags holds MDB_RDONLY; raw_close() ends
 * both, committing a write transaction. */
void raw_open(struct env *e, const char *name, unsigned flags,
	      MDB_env **env, MDB_txn **txn, MDB_dbi *dbi);
void raw_close(MDB_env *env, MDB_txn *txn, unsigned flags);

#endif
