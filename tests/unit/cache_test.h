/*
 * cache_test.h - what the test_cache_*.c programs share: a fresh
 * filesystem per case, short forms of the cache calls that assert as they
 * go, a readdir collector, and pipes to a second process.
 *
 * Each helper that asserts fails the running case (test.h), as if the
 * assertion were written in the case itself.  Linked into every
 * test_cache_* program from cache_test.c; reaches the cache through
 * cache.h only.
 */
#ifndef PHI_CACHE_TEST_H
#define PHI_CACHE_TEST_H

#include "cache.h"
#include "cache_admin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

#define OTHER_UID 1234
#define OTHER_GID 1234

/* The caller every case creates files as: uid 1000, gid 1001. */
extern const struct cache_cred cred;

/* --- a filesystem per case ----------------------------------------------- */

/* A configuration for dir with this size limit and 1 MiB blocks. */
struct cache_config config(const char *dir, uint64_t limit);

/* A path inside the case's directory; static storage, one at a time. */
const char *tmp_path(const char *name);

/* Format a filesystem in the case's directory, with this size limit. */
struct cache_config format_limit(uint64_t limit);

/* Open cfg read-write; asserts that it opens. */
struct cache *open_rw(const struct cache_config *cfg);

/* The usual start: a fresh filesystem, open read-write. */
struct cache *fresh(void);

/* --- names and attributes ------------------------------------------------ */

/* mknod name in parent with mode (as cred); asserts, returns the ino. */
uint64_t mk(struct cache *c, uint64_t parent, const char *name, mode_t mode);
/* mk() of a regular file 0644, and of a directory 0755. */
uint64_t mkfile(struct cache *c, uint64_t parent, const char *name);
uint64_t mkdir_(struct cache *c, uint64_t parent, const char *name);

/* Look up name, dropping the reference again; returns ino or -errno. */
long long look(struct cache *c, uint64_t parent, const char *name);

/* cache_getattr() of ino; asserts that it succeeds. */
struct stat attr(struct cache *c, uint64_t ino);

/* cache_getattr() of ino, once an unlinked inode the last cache_forget()
 * let go of had the time to be freed (the folder thread frees those in
 * batches, cache.h): polls until it fails, for 10 s at most; returns its
 * last result (0 if ino is still there). */
int gone(struct cache *c, uint64_t ino);

/* cache_stats(); asserts that it succeeds. */
struct cache_stats stats(struct cache *c);

/* --- file content -------------------------------------------------------- */

/* Open ino (truncating if trunc); asserts, returns the handle. */
struct cache_file *fopen_(struct cache *c, uint64_t ino, int trunc);

/* Write len bytes at off; asserts that all of them were written. */
void wr(struct cache *c, struct cache_file *f, uint64_t off, const void *buf,
	size_t len);

/* Read through cache_read_extent(); returns the bytes read. */
size_t rd(struct cache *c, struct cache_file *f, uint64_t off, void *buf,
	  size_t len);

/* A pattern that differs with seed and with the 4 KiB page. */
void fill(unsigned char *buf, size_t len, unsigned seed);

/* Whether len bytes at buf are all zero. */
bool all_zero(const unsigned char *buf, size_t len);

/* --- times --------------------------------------------------------------- */

/* a == b, and a <= b. */
bool ts_eq(struct timespec a, struct timespec b);
bool ts_le(struct timespec a, struct timespec b);

/* CLOCK_REALTIME now. */
struct timespec now(void);

/* --- readdir collection -------------------------------------------------- */

struct ent {
	char name[CACHE_NAME_MAX + 1];
	struct stat st;
	uint64_t next;
};

struct listing {
	struct ent *e;		/* malloc()ed; the caller frees */
	size_t n, cap;
	size_t limit;		/* take at most this many; 0: all */
};

/* A cache_readdir() callback appending to the struct listing at ctx;
 * returns 1 (stop) once limit entries are in. */
int collect(void *ctx, const char *name, const struct stat *st,
	    uint64_t next);

/* List dir from off (all of it, or at most limit entries). */
struct listing list_dir(struct cache *c, uint64_t dir, uint64_t off,
			int plus, size_t limit);

/* The index of name in l, or -1; and how many times it is there. */
long find_ent(const struct listing *l, const char *name);
size_t count_ent(const struct listing *l, const char *name);

/* The ino ".." names in directory dir. */
uint64_t dotdot(struct cache *c, uint64_t dir);

/* --- a second process ---------------------------------------------------- */

/* Read exactly len bytes from a pipe; false at EOF. */
bool pipe_read(int fd, void *buf, size_t len);

/* Write len bytes to a pipe, from a child: _exit(99) if it cannot. */
void pipe_write(int fd, const void *buf, size_t len);

/* Wait for the child pid; asserts that it exited, returns its status. */
int wait_child(pid_t pid);

/* A snapshot of the tree under dir (names, types, sizes and mtimes, one
 * line each), malloc()ed: two snapshots compare equal with strcmp() when
 * nothing under dir changed. */
char *tree(const char *dir);

#endif
