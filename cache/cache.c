/*
 * cache.c - creating, opening and closing the local state of a filesystem.
 *
 * cache_dir/lock is the single-writer guard on this machine: whoever holds
 * an exclusive flock() on it owns the read-write LMDB environment and the
 * data files; its pid is written into the file for `phifs status`.
 * Read-only opens (status) take no lock and never write.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#define MAP_SIZE (64ull << 30)	/* address space only; the file grows */

static const char *const meta_files[] = { "meta/data.mdb", "meta/lock.mdb" };

static int env_create(MDB_env **out, const char *dir, unsigned flags)
{
	char path[4096];
	MDB_env *env;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/meta", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	rc = mdb_env_create(&env);
	if (rc)
		return cache_meta_err(rc);
	mdb_env_set_maxdbs(env, 32);
	mdb_env_set_maxreaders(env, 512);
	mdb_env_set_mapsize(env, MAP_SIZE);
	rc = mdb_env_open(env, path, flags | MDB_NOTLS, 0600);
	if (rc) {
		mdb_env_close(env);
		return cache_meta_err(rc);
	}
	/* A killed process leaves its reader slot behind, which would pin
	 * old pages and make the file grow; clear such slots. */
	mdb_reader_check(env, NULL);
	*out = env;
	return 0;
}

static int put_super(struct cache *c, MDB_txn *txn, const char *key,
		     const void *data, size_t len)
{
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)data };

	return cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

struct format_arg {
	const struct cache_config *cfg;
	uid_t uid;
	gid_t gid;
};

static int format_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct format_arg *a = arg;
	uint64_t version = CACHE_FORMAT_VERSION, next = CACHE_ROOT_INO + 1;
	uint64_t bs = a->cfg->block_size;
	struct timespec now = phi_now();
	struct inode_rec root = { 0 };
	int rc;

	rc = cache_meta_open_dbs(c, txn, MDB_CREATE);
	if (rc == 0 && a->cfg->fsid)
		memcpy(c->fsid, a->cfg->fsid, sizeof(c->fsid));
	else if (rc == 0 && getrandom(c->fsid, sizeof(c->fsid), 0) !=
		 (ssize_t)sizeof(c->fsid))
		rc = -errno;
	if (rc == 0)
		rc = put_super(c, txn, "version", &version, sizeof(version));
	if (rc == 0)
		rc = put_super(c, txn, "fsid", c->fsid, sizeof(c->fsid));
	if (rc == 0)
		rc = put_super(c, txn, "block_size", &bs, sizeof(bs));
	if (rc == 0)
		rc = put_super(c, txn, "next_ino", &next, sizeof(next));
	if (rc == 0)
		rc = cache_sect_format(c, txn);
	/* made sealed, as the first open would make it */
	if (rc == 0 && a->cfg->key && !a->cfg->plain_store)
		rc = cache_mrec_format(c, txn, a->cfg->key);
	if (rc)
		return rc;
	root.mode = S_IFDIR | 0755;
	root.uid = a->uid;
	root.gid = a->gid;
	root.nlink = 2;
	root.size = 4096;
	root.parent = CACHE_ROOT_INO;
	root.next_cookie = 3;
	cache_rec_set_time(&root.atime_sec, &root.atime_nsec, now);
	cache_rec_set_time(&root.mtime_sec, &root.mtime_nsec, now);
	cache_rec_set_time(&root.ctime_sec, &root.ctime_nsec, now);
	cache_rec_set_time(&root.btime_sec, &root.btime_nsec, now);
	return cache_inode_put(c, txn, CACHE_ROOT_INO, &root, NULL, 0);
}

/* Remove what a failed format created; best effort. */
static void unformat(int dirfd, int made_lock)
{
	char name[16];

	for (int i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "data/%02x", i);
		unlinkat(dirfd, name, AT_REMOVEDIR);
	}
	unlinkat(dirfd, "data", AT_REMOVEDIR);
	for (size_t i = 0; i < 2; i++)
		unlinkat(dirfd, meta_files[i], 0);
	unlinkat(dirfd, "meta", AT_REMOVEDIR);
	if (made_lock)
		unlinkat(dirfd, "lock", 0);
}

static int make_dirs(int dirfd)
{
	char name[16];

	if (mkdirat(dirfd, "meta", 0700) || mkdirat(dirfd, "data", 0700))
		return -errno;
	for (int i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "data/%02x", i);
		if (mkdirat(dirfd, name, 0700))
			return -errno;
	}
	return 0;
}

/* Make the new directories themselves durable: a format half there after
 * a power loss would be refused by both mkfs and mount. */
static int sync_dirs(int dirfd)
{
	static const char *const names[] = { "meta", "data", "." };
	int rc = 0;

	for (size_t i = 0; i < 3 && rc == 0; i++) {
		int fd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY |
				O_CLOEXEC);

		if (fd < 0 || fsync(fd))
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

/* Open and exclusively lock cache_dir/lock. */
static int take_lock(int dirfd, int create, int *made)
{
	int fd = openat(dirfd, "lock", O_RDWR | O_CLOEXEC);

	*made = 0;
	if (fd < 0 && errno == ENOENT && create) {
		fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_EXCL |
			    O_CLOEXEC, 0600);
		*made = fd >= 0;
	}
	if (fd < 0)
		return errno == ENOENT ? PHI_ENOFS : -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		close(fd);
		return e == EWOULDBLOCK ? PHI_EBUSYFS : -e;
	}
	return fd;
}

static int has_fs(int dirfd)
{
	return faccessat(dirfd, "meta", F_OK, 0) == 0;
}

int cache_format(const struct cache_config *cfg, uid_t uid, gid_t gid)
{
	struct format_arg a = { cfg, uid, gid };
	struct cache c = { 0 };
	int dirfd, lockfd, made_lock = 0, rc;

	dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	if (faccessat(dirfd, ".", W_OK | X_OK, AT_EACCESS)) {
		rc = -errno;
		goto out;
	}
	if (has_fs(dirfd)) {
		rc = PHI_EEXISTFS;
		goto out;
	}
	lockfd = take_lock(dirfd, 1, &made_lock);
	if (lockfd < 0) {
		rc = lockfd;
		goto out;
	}
	rc = make_dirs(dirfd);
	if (rc == 0)
		rc = env_create(&c.env, cfg->dir, 0);
	if (rc == 0) {
		rc = cache_meta_write(&c, format_txn, &a);
		if (rc == 0)
			rc = cache_meta_err(mdb_env_sync(c.env, 1));
		mdb_env_close(c.env);
		cache_mrec_free(&c);
	}
	if (rc == 0)
		rc = sync_dirs(dirfd);
	if (rc)
		unformat(dirfd, made_lock);
	close(lockfd);
out:
	close(dirfd);
	return rc;
}

static int read_super(struct cache *c)
{
	MDB_val k = { 4, (void *)"fsid" }, v;
	uint64_t version, bs;
	MDB_txn *txn;
	int rc;

	rc = cache_meta_err(mdb_txn_begin(c->env, NULL,
				    c->rdonly ? MDB_RDONLY : 0, &txn));
	if (rc)
		return rc;
	rc = cache_meta_open_dbs(c, txn, 0);
	if (rc == 0)
		rc = cache_meta_super_get_u64(c, txn, "version", &version);
	if (rc == 0 && (version < CACHE_FORMAT_VERSION_MIN ||
			version > CACHE_FORMAT_VERSION))
		rc = PHI_EVERSION;
	/* what this open may write, an older phifs must not misread */
	if (rc == 0 && version < CACHE_FORMAT_VERSION && !c->rdonly) {
		version = CACHE_FORMAT_VERSION;
		rc = put_super(c, txn, "version", &version, sizeof(version));
	}
	if (rc == 0)
		rc = cache_meta_super_get_u64(c, txn, "block_size", &bs);
	if (rc == 0 && (rc = mdb_get(txn, c->db_super, &k, &v)) != 0)
		rc = cache_meta_err(rc) == -ENOENT ? PHI_ECORRUPT :
		     cache_meta_err(rc);
	if (rc == 0 && v.mv_size != sizeof(c->fsid))
		rc = PHI_ECORRUPT;
	if (rc == 0) {
		memcpy(c->fsid, v.mv_data, sizeof(c->fsid));
		c->block_size = (uint32_t)bs;
		rc = cache_meta_err(mdb_txn_commit(txn));
	} else {
		mdb_txn_abort(txn);
	}
	return rc;
}

static void write_pid(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) < 0)
		PHI_LOG(PHI_LOG_WARNING, "cannot record pid in lock file");
}

static int open_files(struct cache *c, const struct cache_config *cfg,
		      unsigned flags)
{
	int made;

	c->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return -errno;
	if (!has_fs(c->dirfd))
		return PHI_ENOFS;
	if (!(flags & CACHE_OPEN_RDONLY)) {
		c->lockfd = take_lock(c->dirfd, 0, &made);
		if (c->lockfd < 0)
			return c->lockfd;
		write_pid(c->lockfd);
	}
	c->datafd = openat(c->dirfd, "data", O_RDONLY | O_DIRECTORY |
			   O_CLOEXEC);
	return c->datafd < 0 ? (errno == ENOENT ? PHI_ECORRUPT : -errno) : 0;
}

/* The folder thread: every FOLD_INTERVAL_MS, fold, write the queued
 * audit events, empty the trash; and free the unlinked inodes the kernel
 * forgot when their batch is due (cache_node_free_later()). */
static void *folder_main(void *arg)
{
	struct cache *c = arg;
	uint64_t next = phi_mono_ns() + FOLD_INTERVAL_MS * 1000000ull;

	lock_take(&c->folder_lock);
	while (!c->folder_stop) {
		uint64_t now = phi_mono_ns(), until = next;
		uint64_t due = cache_node_free_due(c);
		struct timespec ts;

		if (due < until)
			until = due;
		if (now < until) {
			ts = phi_mono_deadline(until - now);
			pthread_cond_timedwait(&c->folder_cond, &c->folder_lock,
					       &ts);
			continue;
		}
		lock_drop(&c->folder_lock);
		cache_node_free_queued(c);
		if (now >= next) {
			cache_node_fold_all(c);
			cache_audit_flush(c);
			cache_trash_empty(c);
			cache_lru_flush(c);
			next = phi_mono_ns() + FOLD_INTERVAL_MS * 1000000ull;
		}
		lock_take(&c->folder_lock);
	}
	lock_drop(&c->folder_lock);
	return NULL;
}

static int folder_start(struct cache *c)
{
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&c->folder_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->folder_cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&c->folder, NULL, folder_main, c);
	if (rc)
		return -rc;
	pthread_setname_np(c->folder, "phifs-fold");
	c->folder_running = 1;
	return 0;
}

static void folder_stop(struct cache *c)
{
	if (!c->folder_running)
		return;
	lock_take(&c->folder_lock);
	c->folder_stop = 1;
	pthread_cond_signal(&c->folder_cond);
	lock_drop(&c->folder_lock);
	pthread_join(c->folder, NULL);
	c->folder_running = 0;
}

/* Whether another process has the LMDB environment open: each holds a
 * shared lock on the first byte of lock.mdb while it does.  Ours must be
 * closed.  1, 0, or -errno; with 0, *fd holds the lock exclusively
 * until closed. */
static int env_shared(struct cache *c, int *fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 0, .l_len = 1 };

	*fd = openat(c->dirfd, meta_files[1], O_RDWR | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fcntl(*fd, F_SETLK, &fl) == 0)
		return 0;
	close(*fd);
	*fd = -1;
	return errno == EACCES || errno == EAGAIN ? 1 : -errno;
}

/*
 * LMDB copies a page on write and leaves the old one on its free list
 * until it is reused: after the names and attributes were sealed
 * (cache_mrec_start()), data.mdb may still hold them in the clear in
 * such pages.  Rewrite it with the live pages only (MDB_CP_COMPACT),
 * durably, over the old one, and open that: only while no other process
 * has the environment open (a status, an audit query), else at a later
 * open ("meta_compact" stays set until done).  Before any thread runs.
 * The disk blocks of the old file keep what they held until reused.
 */
static int meta_compact(struct cache *c)
{
	static const char tmp[] = "meta/data.mdb.compact";
	int fd, lockfd = -1, rc, shared;

	unlinkat(c->dirfd, tmp, 0);
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	rc = cache_meta_err(mdb_env_copyfd2(c->env, fd, MDB_CP_COMPACT));
	if (rc == 0 && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc) {
		unlinkat(c->dirfd, tmp, 0);
		return rc;
	}
	mdb_env_close(c->env);
	c->env = NULL;
	shared = env_shared(c, &lockfd);
	if (shared == 0 && renameat(c->dirfd, tmp, c->dirfd, meta_files[0]))
		shared = -errno;
	if (shared)
		unlinkat(c->dirfd, tmp, 0);
	rc = shared < 0 ? shared : shared == 0 ? sync_dirs(c->dirfd) : 0;
	if (lockfd >= 0)
		close(lockfd);
	if (rc == 0)
		rc = env_create(&c->env, c->dir, MDB_NOMETASYNC);
	if (rc == 0)
		rc = read_super(c);
	if (rc == 0)
		rc = cache_audit_open_db(c, 1);
	if (rc || shared)
		return rc;
	rc = cache_mrec_compacted(c);
	if (rc == 0 && !c->mcompact_quiet)
		PHI_LOG(PHI_LOG_NOTICE, "the local store's metadata file "
			"rewritten without its free pages, which held names "
			"in the clear");
	return rc;
}

int cache_needs_key(const struct cache *c)
{
	return cache_rec_keyless(c);
}

int cache_open(struct cache **out, const struct cache_config *cfg,
	       unsigned flags)
{
	struct cache *c = calloc(1, sizeof(*c));
	uint64_t used = 0;
	int rc;

	if (!c)
		return -ENOMEM;
	c->dirfd = c->datafd = c->lockfd = c->trashfd = -1;
	c->rdonly = !!(flags & CACHE_OPEN_RDONLY);
	c->size_limit = cfg->size_limit;
	c->read_ahead = cfg->read_ahead;
	c->key = cfg->key;
	pthread_mutex_init(&c->nodes_lock, NULL);
	pthread_mutex_init(&c->files_lock, NULL);
	pthread_mutex_init(&c->free_lock, NULL);
	pthread_mutex_init(&c->audit_lock, NULL);
	c->audit_tail = &c->audit_head;
	cache_sect_init(c);
	cache_inbox_init(c);
	cache_lru_init(c);
	cache_packget_init(c);
	c->dir = strdup(cfg->dir);
	rc = c->dir ? open_files(c, cfg, flags) : -ENOMEM;
	if (rc == 0)
		rc = env_create(&c->env, c->dir,
				!c->rdonly ? MDB_NOMETASYNC :
				(flags & CACHE_OPEN_AUDIT) ? 0 : MDB_RDONLY);
	if (rc == 0)
		rc = read_super(c);
	if (rc == 0)
		rc = cache_audit_open_db(c, !c->rdonly ||
					 (flags & CACHE_OPEN_AUDIT));
	if (rc == 0 && (flags & CACHE_OPEN_AUDIT))
		c->audit_append = 1;
	if (rc == 0)
		rc = cache_mrec_start(c, cfg->key, !cfg->plain_store);
	if (rc == 0 && c->mcompact && !c->rdonly)
		rc = meta_compact(c);
	if (rc == 0 && !c->rdonly)
		rc = cache_trash_open(c);
	if (rc == 0 && !c->rdonly)
		rc = cache_trash_recover(c);
	/* a tool without the key cannot open sealed inodes: the next
	 * mount frees them */
	if (rc == 0 && !c->rdonly && !cache_needs_key(c))
		rc = cache_node_free_orphans(c);
	if (rc == 0)
		rc = cache_sect_start(c, cfg->key, !cfg->plain_store);
	if (rc == 0 && !c->rdonly)
		rc = cache_blk_settle(c);
	if (rc == 0)
		rc = cache_sect_convert(c);
	if (rc == 0 && !c->rdonly && cfg->seed)
		rc = cache_mend_record(c, cfg);
	if (rc == 0)
		rc = cache_meta_used_bytes(c, &used);
	if (rc == 0)
		atomic_store(&c->used, used);
	/* The folder reads c->seal (blk_lru_flush()): start it once
	 * cache_seal_start() has set up what it reads. */
	if (rc == 0)
		rc = cache_seal_start(c, cfg, flags);
	if (rc == 0)
		cache_packget_start(c);	/* reads what seal_start set */
	if (rc == 0)
		rc = cache_ahead_start(c);	/* with regions only */
	if (rc == 0 && !c->rdonly)
		rc = folder_start(c);
	if (rc) {
		cache_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

int cache_close(struct cache *c)
{
	int rc = 0, rc2;

	/* Handles the kernel never released (the session ended on a
	 * signal with files open) are dropped here, so that their pending
	 * sizes are folded below and no memory is left behind. */
	cache_ahead_stop(c);
	while (c->files)
		cache_file_release(c, c->files);
	cache_seal_stop(c);
	folder_stop(c);
	if (c->env && !c->rdonly) {
		cache_node_free_queued(c);
		rc = cache_node_fold_all(c);
		if (syncfs(c->datafd) && rc == 0)
			rc = -errno;
		rc2 = cache_audit_flush(c);
		if (rc == 0)
			rc = rc2;
		rc2 = cache_sync(c);
		if (rc == 0)
			rc = rc2;
		rc2 = cache_trash_empty(c);
		if (rc == 0)
			rc = rc2;
		if (rc == 0)
			rc = cache_sect_closed_clean(c);
	}
	cache_node_table_free(c);
	cache_seal_free(c);
	if (c->env)
		mdb_env_close(c->env);
	if (c->trashfd >= 0)
		close(c->trashfd);
	if (c->datafd >= 0)
		close(c->datafd);
	if (c->lockfd >= 0)
		close(c->lockfd);	/* drops the flock */
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_mutex_destroy(&c->nodes_lock);
	pthread_mutex_destroy(&c->files_lock);
	pthread_mutex_destroy(&c->free_lock);
	free(c->freeq);
	cache_audit_free(c);
	pthread_mutex_destroy(&c->audit_lock);
	cache_lru_free(c);
	cache_inbox_free(c);
	cache_packget_free(c);
	cache_sect_free(c);
	cache_mrec_free(c);
	free(c->dir);
	free(c);
	return rc;
}

static void lock_holder(struct cache *c, struct cache_stats *s)
{
	char buf[32] = { 0 };
	int fd = openat(c->dirfd, "lock", O_RDONLY | O_CLOEXEC);

	s->mounted = 0;
	s->pid = 0;
	if (fd < 0)
		return;
	if (c->lockfd >= 0) {
		s->mounted = 1;		/* it is us */
		s->pid = (long)getpid();
	} else if (flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK) {
		s->mounted = 1;
		if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
			s->pid = strtol(buf, NULL, 10);
	}
	close(fd);
}

static uint64_t entries(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat st;

	return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

int cache_stats(struct cache *c, struct cache_stats *out)
{
	struct cache_stats s = { 0 };
	MDB_txn *txn;
	int rc;

	if (c->seal)
		cache_upload_record_health(c);	/* status shows it as it is */
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	s.inodes = entries(txn, c->db_inodes);
	s.orphans = entries(txn, c->db_orphans);
	rc = cache_seal_stats(c, txn, &s);
	cache_meta_read_end(txn);
	if (rc)
		return rc;
	if (c->rdonly) {
		uint64_t used;

		rc = cache_meta_used_bytes(c, &used);
		if (rc)
			return rc;
		atomic_store(&c->used, used);
	}
	s.used_bytes = atomic_load(&c->used) + atomic_load(&c->packs_used);
	s.size_limit = c->size_limit;
	s.block_size = c->block_size;
	s.format_version = CACHE_FORMAT_VERSION;
	s.local_sealed = c->sect.sealed;
	s.counts_only = cache_needs_key(c);
	for (size_t i = 0; i < sizeof(c->fsid); i++)
		snprintf(s.fsid + 2 * i, 3, "%02x", c->fsid[i]);
	lock_holder(c, &s);
	*out = s;
	return 0;
}

void cache_counters(struct cache *c, struct cache_counters *out)
{
	memset(out, 0, sizeof(*out));
	out->evictions = atomic_load(&c->evictions);
	out->commits = atomic_load(&c->commits);
	cache_packget_counts(c, &out->packs_fetched_whole,
			     &out->frames_from_memory);
	cache_upload_counters(c, out);
}

int cache_statfs(struct cache *c, struct statvfs *out)
{
	struct statvfs disk;
	uint64_t used = atomic_load(&c->used) + atomic_load(&c->packs_used);
	uint64_t bsize = 4096, avail, inodes;
	MDB_txn *txn;
	int rc;

	if (fstatvfs(c->dirfd, &disk))
		return -errno;
	/* only the inode count: cache_stats() also walks the block map and
	 * the queues, too much for every df */
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	inodes = entries(txn, c->db_inodes);
	cache_meta_read_end(txn);
	avail = used < c->size_limit ? c->size_limit - used : 0;
	if (avail > (uint64_t)disk.f_bavail * disk.f_frsize)
		avail = (uint64_t)disk.f_bavail * disk.f_frsize;
	memset(out, 0, sizeof(*out));
	out->f_bsize = bsize;
	out->f_frsize = bsize;
	out->f_blocks = c->size_limit / bsize;
	out->f_bfree = avail / bsize;
	out->f_bavail = avail / bsize;
	out->f_files = inodes + disk.f_ffree;
	out->f_ffree = disk.f_ffree;
	out->f_favail = disk.f_ffree;
	out->f_namemax = CACHE_NAME_MAX;
	return 0;
}
