/*
 * cache_file.c - file content in the local block store, and setattr.
 *
 * Content lives in one sparse data file per inode; write() goes straight
 * to it and records the new size and times in the node (cache_node.c).
 * Durability is fsync's business: cache_fsync() folds the node, syncs the
 * data file (and its directory, the first time) and then the LMDB
 * environment, in that order, so that metadata never points at content
 * the disk does not have.
 *
 * A failed fdatasync() latches the cache (cache_latch()): after such a
 * failure the kernel may have dropped the dirty pages, so no later fsync
 * could be trusted to mean what it says.
 */
#include "cache_int.h"
#include "crypt.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Re-measure a node's allocation after this many bytes of writes. */
#define GROWTH_RECHECK (64ull << 20)

/*
 * What the local store holds, and what it will hold once the dirty
 * blocks are sealed: each of them goes into a pack while its plaintext
 * stays in the data file until the pack is in every region and the block
 * is evicted.  Without that reserve, writes could fill the cache with
 * dirty blocks and sealing them would then take up to as much again
 * (dirty_blocks counts whole blocks; what they hold is at most what the
 * data files hold).  growth: bytes written not yet in c->used.
 */
static uint64_t used_total(struct cache *c, uint64_t growth)
{
	uint64_t used = atomic_load(&c->used) + growth;
	uint64_t dirty = atomic_load(&c->inbox.dirty_blocks);

	dirty = dirty > used / c->block_size ? used : dirty * c->block_size;
	return used + dirty + atomic_load(&c->packs_used) +
	       atomic_load(&c->sealing_bytes);
}

/* -ENOSPC if writing len more bytes could pass cache_size. */
static int room_for(struct cache *c, struct cnode *n, uint64_t len)
{
	if (n->growth > GROWTH_RECHECK)
		cache_blk_refresh_alloc(c, n);
	if (used_total(c, n->growth) + len <= c->size_limit)
		return 0;
	cache_blk_refresh_alloc(c, n);
	if (used_total(c, 0) + len <= c->size_limit)
		return 0;
	return -ENOSPC;
}

/*
 * room_for(), evicting replicated blocks when the cache is full: of other
 * files, and of this one, whose blocks written earlier in this same open
 * may be sealed and in every region by now (so that a file larger than
 * cache_size can be written in one go).  What is dirty or not yet in
 * every region cannot go: while every region is up, the write waits (at
 * most ROOM_WAIT_MS) for the sealer and the uploaders to turn it into
 * something that can; with a region down, or after that, it fails with
 * ENOSPC rather than hang.  Eviction takes other nodes' locks (and
 * nodes_lock) and this one's, so n->lock is dropped meanwhile.
 */
#define ROOM_WAIT_MS 30000

static int make_room(struct cache *c, struct cnode *n, uint64_t len)
{
	uint64_t deadline = phi_mono_ns() + ROOM_WAIT_MS * 1000000ull;
	int rc = room_for(c, n, len);
	size_t freed;

	if (rc != -ENOSPC)
		return rc;
	lock_drop(&n->lock);
	freed = cache_node_free_queued(c);	/* files just deleted */
	lock_take(&n->lock);
	/* look again only if they gave room: the loop below evicts with a
	 * margin, which covers what the counts lag behind the disk */
	if (freed)
		rc = room_for(c, n, len);
	if (rc != -ENOSPC || !c->seal)
		return rc;
	lock_drop(&n->lock);
	for (;;) {
		uint64_t over = used_total(c, 0) + len + c->size_limit / 10;

		if (over > c->size_limit)
			cache_lru_evict(c, over - c->size_limit);
		if (used_total(c, 0) + len <= c->size_limit ||
		    !cache_inbox_regions_up(c) || phi_mono_ns() > deadline ||
		    atomic_load(&c->latched))
			break;
		cache_request_sync(c);	/* seal now, upload now */
		cache_inbox_kick(c);
		usleep(50000);
	}
	lock_take(&n->lock);
	return room_for(c, n, len);
}

/*
 * Cutting a file is ordered record first: a crash between the two steps
 * leaves a record shorter than the data file, which cache_node_load() trims.
 * The other order could resurrect the cut bytes as zeros past a record
 * that still holds the old size.  Growing is ordered data file first
 * for the same reason.  n->lock held.
 */
static int cut_data(struct cache *c, struct cnode *n, uint64_t size)
{
	int rc = cache_sect_cut(c, n, size);

	if (rc)
		return cache_latch(c, rc);	/* record and file disagree */
	n->unsynced = 1;
	cache_blk_refresh_alloc(c, n);
	return 0;
}

/* O_TRUNC without set-ID bits to clear: record size 0 now, then cut.
 * n->lock held. */
static int truncate_zero(struct cache *c, struct cnode *n)
{
	uint64_t old = n->size;
	int rc;

	rc = cache_blk_prepare_cut(c, n, 0);
	if (rc)
		return rc;
	n->size = 0;
	n->mtime = n->ctime = phi_now();
	n->dirty = 1;
	rc = cache_node_fold(c, n);
	if (rc) {
		n->size = old;
		return rc;
	}
	return old ? cut_data(c, n, 0) : 0;
}

static int truncate_open(struct cache *c, struct cnode *n, unsigned kill);

int cache_file_open(struct cache *c, uint64_t ino, int trunc,
		    struct cache_file **out)
{
	struct cache_file *f;
	struct cnode *n;
	int rc;

	f = malloc(sizeof(*f));
	n = f ? cache_node_acquire(c, ino) : NULL;
	if (!n) {
		free(f);
		return -ENOMEM;
	}
	lock_take(&n->lock);
	rc = cache_node_load(c, n);
	if (rc == 0 && trunc)
		rc = c->rdonly ? -EROFS : truncate_open(c, n, (unsigned)trunc);
	if (rc == 0)
		n->handles++;
	lock_drop(&n->lock);
	if (rc) {
		cache_node_release(c, n);
		free(f);
		return rc;
	}
	cache_lru_touch(c, ino);
	f->node = n;
	f->prev = NULL;
	lock_take(&c->files_lock);
	f->next = c->files;
	if (f->next)
		f->next->prev = f;
	c->files = f;
	lock_drop(&c->files_lock);
	*out = f;
	return 0;
}

int cache_file_flush(struct cache *c, struct cache_file *f)
{
	/* close() owes no durability; the folder thread records the new
	 * size within FOLD_INTERVAL_MS.  Report a latched failure so that
	 * close() does not pretend all is well. */
	(void)f;
	return atomic_load(&c->latched) ? PHI_ELATCHED : 0;
}

void cache_file_release(struct cache *c, struct cache_file *f)
{
	int closed;

	lock_take(&c->files_lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		c->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	lock_drop(&c->files_lock);
	lock_take(&f->node->lock);
	closed = --f->node->handles == 0 && f->node->dblk.n;
	lock_drop(&f->node->lock);
	if (closed)
		cache_inbox_closed(c, f->node->ino);
	cache_node_release(c, f->node);
	free(f);
}

int cache_read_extent(struct cache *c, struct cache_file *f, uint64_t off,
		      size_t len, struct cache_extent *out)
{
	struct cnode *n = f->node;
	int rc;

	lock_take(&n->lock);
	/* Pinned from the start: eviction must not take back a block
	 * fetched for this read while the next one is fetched. */
	n->pinned++;
	rc = cache_blk_prepare_read(c, n, off, len);
	if (rc) {
		n->pinned--;
		lock_drop(&n->lock);
		return rc;
	}
	out->fd = n->fd;
	out->off = off;
	out->len = off >= n->size ? 0 :
		   n->size - off < len ? (size_t)(n->size - off) : len;
	lock_drop(&n->lock);	/* pinned until cache_read_end() */
	cache_node_hold(c, n);	/* which may come after the release */
	out->pin = n;
	return 0;
}

int cache_read_copies(const struct cache *c)
{
	return c->sect.sealed;
}

/* Read [off, off+len) of n into buf; n->lock held.  A sealed sector
 * that fails in a clean block has its block checked again, which drops
 * it and fetches its sealed copy; in a dirty block it is EIO. */
static int read_sectors(struct cache *c, struct cnode *n, void *buf,
			uint64_t off, size_t len)
{
	uint64_t bad = 0, blk, last = UINT64_MAX;
	int rc = cache_sect_read(c, n->fd, n->ino, buf, off, len, &bad);

	/* each block of the range may have one: fetched again in turn,
	 * until the same block fails twice */
	while (rc == PHI_EAUTHFAIL) {
		blk = bad * CRYPT_SECTOR / c->block_size;
		if (blk == last || cache_blk_drop_damaged(c, n, blk) != 0)
			break;
		last = blk;
		PHI_LOG(PHI_LOG_WARNING, "inode %" PRIu64 ": local sector %"
			PRIu64 " fails its seal; its block is fetched again",
			n->ino, bad);
		rc = cache_blk_prepare_read(c, n, blk * c->block_size, 1);
		if (rc == 0)
			rc = cache_sect_read(c, n->fd, n->ino, buf, off, len,
					     &bad);
	}
	if (rc != PHI_EAUTHFAIL)
		return rc;
	PHI_LOG(PHI_LOG_ERR, "inode %" PRIu64 ": local sector %" PRIu64
		" fails its seal and has no sealed copy to fetch; reads of it "
		"fail (fsck --scrub reports it)", n->ino, bad);
	return -EIO;
}

ssize_t cache_read(struct cache *c, struct cache_file *f, uint64_t off,
		   void *buf, size_t len)
{
	struct cnode *n = f->node;
	int rc;

	/* The disk reads and the decryption run with n->lock dropped,
	 * pinned as a splice is (cache_read_extent()), so that readers of
	 * one file do not queue behind each other's disk waits.  A write
	 * landing meanwhile can make a sector fail its seal (new bytes,
	 * old entry): such a read is done again under the lock, where
	 * a failure is damage. */
	lock_take(&n->lock);
	n->pinned++;
	rc = cache_blk_prepare_read(c, n, off, len);
	len = off >= n->size ? 0 :
	      n->size - off < len ? (size_t)(n->size - off) : len;
	if (rc == 0 && len) {
		lock_drop(&n->lock);
		rc = cache_sect_read(c, n->fd, n->ino, buf, off, len, NULL);
		lock_take(&n->lock);
		if (rc == PHI_EAUTHFAIL)
			rc = read_sectors(c, n, buf, off, len);
	}
	n->pinned--;
	lock_drop(&n->lock);
	return rc ? rc : (ssize_t)len;
}

void cache_read_end(struct cache *c, struct cache_extent *ext)
{
	struct cnode *n = ext->pin;

	lock_take(&n->lock);
	assert(n->pinned > 0);
	n->pinned--;
	lock_drop(&n->lock);
	cache_node_release(c, n);
	ext->pin = NULL;
}

/* Write buf into n's data file; a failure part of the way returns what
 * was written, as a short pwrite() would.  n->lock held.  A sealed
 * sector that fails is EIO, logged by inode and sector. */
static ssize_t write_all(struct cache *c, struct cnode *n, const char *buf,
			 size_t len, uint64_t off)
{
	size_t done = 0;
	uint64_t bad = 0;
	int rc = cache_sect_write(c, n, buf, off, len, &bad, &done);

	if (rc == PHI_EAUTHFAIL) {
		PHI_LOG(PHI_LOG_ERR, "inode %" PRIu64 ": local sector %" PRIu64
			" fails its seal; the write is refused", n->ino, bad);
		rc = -EIO;
	}
	return done ? (ssize_t)done : rc;
}

ssize_t cache_write(struct cache *c, struct cache_file *f, uint64_t off,
		    const void *buf, size_t len)
{
	struct cnode *n = f->node;
	ssize_t w;
	int rc;

	if (atomic_load(&c->latched))
		return PHI_ELATCHED;
	if (c->rdonly)
		return -EROFS;
	if (off + len < off || off + len > cache_sect_max_size(c))
		return -EFBIG;
	lock_take(&n->lock);
	rc = make_room(c, n, len);
	if (rc == 0) {
		n->pinned++;	/* as in cache_read_extent() */
		rc = cache_blk_prepare_write(c, n, off, len);
		n->pinned--;
	}
	w = rc ? rc : write_all(c, n, buf, len, off);
	if (w > 0) {
		cache_blk_mark_dirty(c, n, off, (uint64_t)w);
		if (off + (uint64_t)w > n->size)
			n->size = off + (uint64_t)w;
		n->mtime = n->ctime = phi_now();
		n->growth += (uint64_t)w;
		n->dirty = 1;
		n->unsynced = 1;
	}
	lock_drop(&n->lock);
	return w;
}

static int sync_data_dir(struct cache *c, uint64_t ino)
{
	char name[32], *slash;
	int fd, rc = 0;

	cache_data_name(ino, name, sizeof(name));
	slash = strchr(name, '/');
	*slash = '\0';
	fd = openat(c->datafd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Fold n's pending size and times, then make its content and its data
 * file's directory entry durable; n->lock held.  The LMDB meta page is
 * the caller's to sync (cache_sync()), or the next commit's to order.
 */
static int sync_content(struct cache *c, struct cnode *n)
{
	int rc = cache_node_fold(c, n);

	if (rc == 0 && (n->unsynced || n->created))
		rc = cache_node_load(c, n);	/* the descriptor may be
						   closed */
	if (rc == 0 && n->unsynced) {
		rc = cache_sect_sync(c, n);
		if (rc)
			return cache_latch(c, rc);
		n->unsynced = 0;
		n->fetch_unsynced = 0;
	}
	if (rc == 0 && n->created) {
		rc = sync_data_dir(c, n->ino);
		if (rc == 0)
			n->created = 0;
	}
	return rc;
}

int cache_fsync(struct cache *c, struct cache_file *f, int datasync)
{
	int rc;

	(void)datasync;	/* size changes are folded either way */
	if (atomic_load(&c->latched))
		return PHI_ELATCHED;
	lock_take(&f->node->lock);
	rc = sync_content(c, f->node);
	lock_drop(&f->node->lock);
	return rc ? rc : cache_sync(c);
}

int cache_file_sync_for_replace(struct cache *c, uint64_t ino)
{
	struct cnode *n = cache_node_acquire(c, ino);
	int rc;

	if (!n)
		return -ENOMEM;
	lock_take(&n->lock);
	rc = cache_node_load(c, n);
	if (rc == 0)
		rc = sync_content(c, n);
	lock_drop(&n->lock);
	cache_node_release(c, n);
	return rc;
}

int cache_fallocate(struct cache *c, struct cache_file *f, int mode,
		    uint64_t off, uint64_t len)
{
	struct cnode *n = f->node;
	int rc;

	if (mode != 0)
		return -EOPNOTSUPP;
	if (c->rdonly)
		return -EROFS;
	if (off + len < off || off + len > cache_sect_max_size(c))
		return -EFBIG;
	lock_take(&n->lock);
	rc = room_for(c, n, len);
	if (rc == 0)
		rc = cache_sect_allocate(c, n->fd, off, len);
	if (rc == 0) {
		cache_blk_refresh_alloc(c, n);
		if (off + len > n->size) {
			n->size = off + len;
			n->mtime = phi_now();
		}
		n->ctime = phi_now();
		n->dirty = 1;
		n->unsynced = 1;
	}
	lock_drop(&n->lock);
	return rc;
}

/* --- setattr ----------------------------------------------------------- */

struct setattr_arg {
	struct cnode *n;	/* loaded node of a regular file, or NULL */
	uint64_t ino;
	unsigned set;
	const struct stat *in;
	struct inode_rec rec;	/* out */
};

static void apply_times(struct inode_rec *rec, unsigned set,
			const struct stat *in, struct timespec now)
{
	if (set & CACHE_SET_ATIME_NOW)
		cache_rec_set_time(&rec->atime_sec, &rec->atime_nsec, now);
	else if (set & CACHE_SET_ATIME)
		cache_rec_set_time(&rec->atime_sec, &rec->atime_nsec,
				   in->st_atim);
	if (set & CACHE_SET_MTIME_NOW)
		cache_rec_set_time(&rec->mtime_sec, &rec->mtime_nsec, now);
	else if (set & CACHE_SET_MTIME)
		cache_rec_set_time(&rec->mtime_sec, &rec->mtime_nsec,
				   in->st_mtim);
	if (set & CACHE_SET_CTIME)
		cache_rec_set_time(&rec->ctime_sec, &rec->ctime_nsec,
				   in->st_ctim);
	else
		cache_rec_set_time(&rec->ctime_sec, &rec->ctime_nsec, now);
}

static int setattr_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct setattr_arg *a = arg;
	struct inode_rec *rec = &a->rec;
	struct timespec now = phi_now();
	int rc;

	rc = cache_inode_get(c, txn, a->ino, rec, NULL, NULL);
	if (rc)
		return rc;
	if (a->n) {
		rec->size = a->n->size;
		rec->blocks = a->n->alloc / 512;
		cache_rec_set_time(&rec->mtime_sec, &rec->mtime_nsec,
				   a->n->mtime);
		rc = cache_blk_fold_txn(c, txn, a->n);
		if (rc)
			return rc;
	}
	if (a->set & CACHE_SET_MODE) {
		rec->mode = (rec->mode & S_IFMT) | (a->in->st_mode & 07777);
		rc = cache_acl_chmod(c, txn, a->ino, rec->mode);
		if (rc)
			return rc;
	}
	if (a->set & CACHE_SET_UID)
		rec->uid = a->in->st_uid;
	if (a->set & CACHE_SET_GID)
		rec->gid = a->in->st_gid;
	if (a->set & CACHE_SET_KILL_SUID)
		rec->mode &= ~(uint32_t)S_ISUID;
	if (a->set & CACHE_SET_KILL_SGID)
		rec->mode &= ~(uint32_t)S_ISGID;
	if ((a->set & CACHE_SET_SIZE) &&
	    !(a->set & (CACHE_SET_MTIME | CACHE_SET_MTIME_NOW)))
		cache_rec_set_time(&rec->mtime_sec, &rec->mtime_nsec, now);
	apply_times(rec, a->set, a->in, now);
	return cache_inode_update(c, txn, a->ino, rec);
}

/* Grow the data file before the record says so; n->lock held. */
static int grow_data(struct cache *c, struct cnode *n, uint64_t size)
{
	int rc = room_for(c, n, 0);

	if (rc == 0)
		rc = cache_sect_grow(c, n, size);
	if (rc == 0) {
		n->unsynced = 1;
		cache_blk_refresh_alloc(c, n);
	}
	return rc;
}

static int setattr_locked(struct cache *c, struct cnode *n,
			  struct setattr_arg *a)
{
	uint64_t old = n->size, size = (uint64_t)a->in->st_size, before;
	int rc = 0, resize = a->n && (a->set & CACHE_SET_SIZE);

	if (resize && size > cache_sect_max_size(c))
		return -EFBIG;
	if (resize && size > old)
		rc = grow_data(c, n, size);
	else if (a->n)
		cache_blk_refresh_alloc(c, n);
	if (rc == 0 && resize && size < old)
		rc = cache_blk_prepare_cut(c, n, size);
	if (rc)
		return rc;
	before = n->size;	/* a write may have moved it while
				   cache_blk_prepare_cut() fetched */
	if (resize)
		n->size = size;		/* setattr_txn records it */
	rc = cache_meta_write(c, setattr_txn, a);
	if (rc) {
		n->size = before;
		return rc;
	}
	if (a->n)
		cache_blk_fold_done(n);
	if (resize && size < old)
		rc = cut_data(c, n, size);
	return rc;
}

/* After setattr_locked() of a loaded node: its times are the record's. */
static void setattr_settled(struct cnode *n, const struct setattr_arg *a)
{
	n->mtime = (struct timespec){ a->rec.mtime_sec, a->rec.mtime_nsec };
	n->ctime = (struct timespec){ a->rec.ctime_sec, a->rec.ctime_nsec };
	n->dirty = 0;
}

/* O_TRUNC: to zero, clearing in the same commit the set-ID bits that
 * kill names (CACHE_SET_KILL_SUID, CACHE_SET_KILL_SGID).  n->lock held. */
static int truncate_open(struct cache *c, struct cnode *n, unsigned kill)
{
	struct stat in = { 0 };
	struct setattr_arg a = { n, n->ino, 0, &in, { 0 } };
	int rc;

	kill &= CACHE_SET_KILL_SUID | CACHE_SET_KILL_SGID;
	if (!kill)
		return truncate_zero(c, n);
	a.set = CACHE_SET_SIZE | kill;
	rc = setattr_locked(c, n, &a);
	if (rc == 0)
		setattr_settled(n, &a);
	return rc;
}

int cache_setattr(struct cache *c, uint64_t ino, unsigned set,
		  const struct stat *in, struct stat *out)
{
	struct setattr_arg a = { NULL, ino, set, in, {0} };
	struct cnode *n;
	int rc;

	n = cache_node_acquire(c, ino);
	if (!n)
		return -ENOMEM;
	lock_take(&n->lock);
	rc = cache_node_load(c, n);
	if (rc == 0)
		a.n = n;
	else if (rc == -EISDIR || rc == -EINVAL)
		rc = (set & CACHE_SET_SIZE) ? rc : 0;
	if (rc == 0)
		rc = setattr_locked(c, n, &a);
	if (rc == 0 && a.n)
		setattr_settled(n, &a);
	lock_drop(&n->lock);
	cache_node_release(c, n);
	if (rc == 0)
		rc = cache_node_stat(c, NULL, ino, out);
	return rc;
}
