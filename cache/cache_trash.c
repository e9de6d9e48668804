/*
 * cache_trash.c - data files of freed inodes wait here for a durable
 * metadata commit before they are deleted.
 *
 * An unlink commits with MDB_NOMETASYNC: its pages are on disk, its meta
 * page not yet, so a power loss can roll the unlink back.  Had the data
 * file been deleted at once, the rolled-back name would then read as
 * zeros.  So cache_node_maybe_free() (and cache_node_free_queued() for a
 * batch) only moves the data file into data/trash;
 * cache_trash_empty() deletes what it finds there once mdb_env_sync() has made
 * every earlier commit durable; and cache_trash_recover() at open puts back the
 * data of any inode that is still alive.
 *
 *   data/XX/INO --cache_trash_put()--> data/trash/INO --cache_trash_empty()-->
 *                                                                        gone
 *                                      |
 *                      cache_trash_recover(): inode alive --> data/XX/INO
 */
#include "cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRASH "trash"

int cache_trash_open(struct cache *c)
{
	if (mkdirat(c->datafd, TRASH, 0700) && errno != EEXIST)
		return -errno;
	c->trashfd = openat(c->datafd, TRASH, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC);
	return c->trashfd < 0 ? -errno : 0;
}

void cache_trash_put(struct cache *c, uint64_t ino)
{
	char from[32], to[32];

	cache_data_name(ino, from, sizeof(from));
	snprintf(to, sizeof(to), TRASH "/%llu", (unsigned long long)ino);
	if (renameat(c->datafd, from, c->datafd, to) && errno != ENOENT)
		PHI_LOG(PHI_LOG_WARNING, "cannot remove data of inode %llu: %s",
			(unsigned long long)ino, strerror(errno));
}

/* Call fn for each inode number in the trash.  Stops at fn's error. */
static int trash_walk(struct cache *c, int (*fn)(struct cache *, uint64_t,
		      void *), void *arg)
{
	int fd = dup(c->trashfd), rc = 0;
	struct dirent *de;
	DIR *dir;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(dir);
	while (rc == 0 && (de = readdir(dir))) {
		char *end;
		unsigned long long ino = strtoull(de->d_name, &end, 10);

		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && !*end)
			rc = fn(c, ino, arg);
	}
	closedir(dir);
	return rc;
}

struct ino_list {
	uint64_t *v;
	size_t n, cap;
};

static int collect(struct cache *c, uint64_t ino, void *arg)
{
	struct ino_list *l = arg;

	(void)c;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = ino;
	return 0;
}

static void unlink_trash(struct cache *c, uint64_t ino)
{
	char name[32];

	snprintf(name, sizeof(name), "%llu", (unsigned long long)ino);
	if (unlinkat(c->trashfd, name, 0) && errno != ENOENT)
		PHI_LOG(PHI_LOG_WARNING, "cannot delete data of inode %llu: %s",
			(unsigned long long)ino, strerror(errno));
}

int cache_trash_empty(struct cache *c)
{
	struct ino_list l = { NULL, 0, 0 };
	int rc;

	/* a tool without the key cannot tell a live inode (its record
	 * is sealed): it leaves the trash alone */
	if (cache_rec_keyless(c))
		return 0;
	/* What is listed now was trashed after its unlink committed: one
	 * sync below makes all those commits durable. */
	rc = trash_walk(c, collect, &l);
	if (rc == 0 && l.n)
		rc = cache_sync(c);
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		unlink_trash(c, l.v[i]);
	free(l.v);
	return rc;
}

static int recover_one(struct cache *c, uint64_t ino, void *arg)
{
	struct inode_rec rec;
	char from[32], to[32];
	MDB_txn *txn;
	int rc, alive;

	(void)arg;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
	alive = rc == 0 && rec.nlink > 0;
	cache_meta_read_end(txn);
	if (rc && rc != -ENOENT) {
		/* a record that does not open: keep the data */
		PHI_LOG(PHI_LOG_WARNING, "inode %llu: its record cannot be "
			"read (%s); its data stays in the trash",
			(unsigned long long)ino, phi_strerror(rc));
		return 0;
	}
	if (!alive) {
		unlink_trash(c, ino);
		return 0;
	}
	snprintf(from, sizeof(from), TRASH "/%llu", (unsigned long long)ino);
	cache_data_name(ino, to, sizeof(to));
	PHI_LOG(PHI_LOG_NOTICE, "inode %llu: unlink was undone by a crash; "
		"restoring its data", (unsigned long long)ino);
	return renameat(c->datafd, from, c->datafd, to) ? -errno : 0;
}

int cache_trash_recover(struct cache *c)
{
	if (cache_rec_keyless(c))
		return 0;
	return trash_walk(c, recover_one, NULL);
}
