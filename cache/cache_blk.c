/*
 * cache_blk.c - which blocks of a file are dirty, sealed, or gone from the
 * local store; fetching gone blocks back; eviction.
 *
 * A block of a regular file is in one of these states:
 *
 *   hole/local  no `blocks` entry, not dirty: the data file is the truth
 *               (a hole reads as zeros)
 *   dirty       written since it was last sealed: the data file is the
 *               truth, a `blocks` entry (if any) is an older version
 *   resident    sealed, and its plaintext is also in the data file
 *   gone        sealed and evicted: the data file has a hole there, the
 *               frame is in a pack, locally or in the regions
 *
 * Dirty wins over everything: a block in `dirty` is read from the data
 * file whatever `blocks` says.  The in-memory sets of a node (struct
 * cnode) are the truth while it is loaded; `fresh` dirty blocks reach the
 * `dirty` db with the node's next fold, and the `cut_from` of a truncate
 * with it, so a crash loses no more than the unfolded size would.
 *
 * A fetched block is written into the data file at once and recorded as
 * resident later (cache_lru_persist_fetched()); until then a crash merely costs
 * a second fetch.  Its checksum guards the order: should the flag reach
 * the disk before the bytes do (a power loss), the first read finds them
 * wrong and fetches again, never returns a block of zeros.  A block
 * sealed before checksums has no such guard, and its bytes are synced
 * before its flag is recorded.
 *
 * THE INVARIANT: no byte of the data file changes while its block is
 * recorded clean.  What a file shows after any crash is then what the
 * next seal puts into every region, and a clean block never reads back
 * anything but the content its record names.  The order that keeps it:
 *
 *   write     cache_blk_prepare_write() commits the block's `dirty` record
 *             (and bumps n->gen) BEFORE cache_write() touches the data
 *             file.  A kill -9 at any instruction leaves either the old
 *             bytes under a dirty record (sealed again: same content) or
 *             the new bytes under one (sealed: the content the file
 *             showed).  The commit is not fsync'ed: the page cache and
 *             LMDB's pages both outlive the process.
 *   seal      the sealer reads the bytes under n->lock, records their
 *             CRC-32C (masked: cache_blk_rec_put()) in the new `blocks`
 *             entry, and drops the `dirty` record only if n->gen did
 *             not move, or else afterwards under n->lock if the block
 *             is not in n->dblk again (cache_seal.c, settle_kept()).
 *   cut       the size and the dirty record of the block it splits are
 *             committed before ftruncate() (cache_file.c).
 *   fetch     writes an authenticated plaintext into a hole; it is
 *             recorded resident only after an fdatasync.  The frame is
 *             read with n->lock dropped; the bytes land, under the lock
 *             again, only in a block still gone that no write or cut
 *             touched meanwhile (fetch()).  A gone block gets a new
 *             record only by a write first, so such a block's record is
 *             still the one its bytes were read by.
 *   evict     clears the resident flag before punching the hole.
 *
 * Power loss may drop unsynced pages of the data file and undo LMDB's
 * last commit (MDB_NOMETASYNC), each on its own: a new byte may reach the
 * disk while the dirty record written ahead of it does not.  Such a block
 * is recorded clean with bytes that do not match its checksum, which is
 * what blk_check_range() looks for: a clean block whose bytes fail their
 * record is never returned; it is punched and fetched again from a
 * region (the write was never fsync'ed, so losing it is allowed; showing
 * it locally while the regions hold something else is not).  Local data
 * in a block no record names is dropped the same way.  An fsync()
 * orders everything: data file, then LMDB synced (cache_fsync()).
 * A dirty block has no checksum: a torn write in it after a power loss
 * is sealed as found (the issue on encryption at rest authenticates
 * every local block, dirty ones too).
 *
 * A fetch writes into the data file without an fdatasync (a clean block
 * is guarded by its checksum).  A write that makes such a block dirty
 * must not: were the fetched bytes lost in a power loss, the dirty
 * record would make the hole, not the sealed copy, the block's content,
 * and the part of it the write did not cover would be lost.  So
 * n->fetch_unsynced, set by every fetch (a reader's, a writer's or one
 * ahead of a reader), makes the next write fdatasync first
 * (cache_blk_prepare_write()).
 *
 * Eviction punches holes into data files of open files too (a file
 * larger than the cache is written in one open), but never into one with
 * n->pinned set: a read spliced from the data file after the node lock
 * was dropped (until cache_read_end()), or a read or write between the
 * fetches of its blocks, must never meet a hole punched under it.  Every
 * other use of the bytes (writes, seals, fetches landing) holds the lock.
 */
#include "cache_int.h"
#include "backend.h"
#include "crc32c.h"
#include "crypt.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* --- blkset ------------------------------------------------------------ */

static size_t blkset_pos(const struct blkset *s, uint64_t b)
{
	size_t lo = 0, hi = s->n;

	if (s->n && s->v[s->n - 1] < b)	/* appending is the common case */
		return s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid] < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int cache_blkset_add(struct blkset *s, uint64_t b)
{
	size_t i = blkset_pos(s, b);

	if (i < s->n && s->v[i] == b)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
	s->v[i] = b;
	s->n++;
	return 1;
}

int cache_blkset_has(const struct blkset *s, uint64_t b)
{
	size_t i = blkset_pos(s, b);

	return i < s->n && s->v[i] == b;
}

void cache_blkset_del(struct blkset *s, uint64_t b)
{
	size_t i = blkset_pos(s, b);

	if (i < s->n && s->v[i] == b) {
		memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
		s->n--;
	}
}

/* Drop every member >= from. */
static void blkset_cut(struct blkset *s, uint64_t from)
{
	s->n = blkset_pos(s, from);
}

void cache_blkset_free(struct blkset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* --- records ----------------------------------------------------------- */

/* XOR the masked fields of rec, a record of block blk of ino, with its
 * mask: masks a plain record, unmasks a masked one. */
static int rec_mask(const struct cache *c, uint64_t ino, uint64_t blk,
		    struct block_rec *rec)
{
	uint8_t m[CRYPT_BLOCK_REC_MASK];
	int rc;

	static_assert(CRYPT_BLOCK_REC_MASK == 8 + 3 * 4,
		      "off, then len, plain and crc");
	if (!c->key)
		return -EACCES;
	rc = crypt_block_rec_mask(c->key, c->fsid, ino, blk, rec->pack, m);
	if (rc == 0) {
		rec->off ^= key_get_u64(m);	/* big-endian, as keys */
		rec->len ^= (uint32_t)(key_get_u64(m + 8) >> 32);
		rec->plain ^= (uint32_t)key_get_u64(m + 8);
		rec->crc ^= (uint32_t)key_get_u64(m + 12);
	}
	OPENSSL_cleanse(m, sizeof(m));
	return rc;
}

/* The entry as stored: its pack, seq and flags hold without the key. */
static int rec_get_stored(struct cache *c, MDB_txn *txn, uint64_t ino,
			  uint64_t blk, struct block_rec *rec)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	int rc;

	cache_blk_key(k, ino, blk);
	rc = mdb_get(txn, c->db_blocks, &key, &val);
	if (rc)
		return cache_meta_err(rc);
	if (val.mv_size != sizeof(*rec))
		return PHI_ECORRUPT;
	memcpy(rec, val.mv_data, sizeof(*rec));
	return 0;
}

int cache_blk_rec_get(struct cache *c, MDB_txn *txn, uint64_t ino,
		      uint64_t blk, struct block_rec *rec)
{
	int rc = rec_get_stored(c, txn, ino, blk, rec);

	if (rc == 0 && (rec->flags & BLOCK_MASKED))
		rc = rec_mask(c, ino, blk, rec);
	return rc;
}

/* Store rec as it is, masked already or never. */
static int rec_put_stored(struct cache *c, MDB_txn *txn, uint64_t ino,
			  uint64_t blk, struct block_rec *rec)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val = { sizeof(*rec), rec };

	cache_blk_key(k, ino, blk);
	return cache_meta_err(mdb_put(txn, c->db_blocks, &key, &val, 0));
}

int cache_blk_rec_put(struct cache *c, MDB_txn *txn, uint64_t ino,
		      uint64_t blk, const struct block_rec *rec)
{
	struct block_rec stored = *rec;
	int rc = 0;

	if (stored.flags & BLOCK_MASKED)
		rc = rec_mask(c, ino, blk, &stored);
	return rc ? rc : rec_put_stored(c, txn, ino, blk, &stored);
}

int cache_blk_rec_sum(const struct block_rec *rec, uint32_t *crc)
{
	if (!(rec->flags & (BLOCK_SUMMED | BLOCK_MASKED)))
		return 1;
	*crc = rec->crc;
	return 0;
}

void cache_blk_used_adjust(struct cache *c, int64_t delta)
{
	uint_fast64_t old = atomic_load(&c->used), new;

	do {
		if (delta < 0 && (uint64_t)-delta > old)
			new = 0;
		else
			new = old + (uint64_t)delta;
	} while (!atomic_compare_exchange_weak(&c->used, &old, new));
}

void cache_blk_refresh_alloc(struct cache *c, struct cnode *n)
{
	struct stat st;

	if (n->fd < 0 || fstat(n->fd, &st))
		return;
	cache_blk_used_adjust(c,
			      (int64_t)st.st_blocks * 512 - (int64_t)n->alloc);
	n->alloc = (uint64_t)st.st_blocks * 512;
	n->growth = 0;
}

int cache_blk_load(struct cache *c, MDB_txn *txn, struct cnode *n)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	int rc;

	n->cut_from = UINT64_MAX;
	if (!c->seal || !c->have_blockdbs)
		return 0;
	for (int pass = 0; pass < 2; pass++) {
		MDB_dbi dbi = pass == 0 ? c->db_dirty : c->db_blocks;

		cache_blk_key(k, n->ino, 0);
		key.mv_size = sizeof(k);
		key.mv_data = k;
		rc = mdb_cursor_open(txn, dbi, &cur);
		if (rc)
			return cache_meta_err(rc);
		for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		     rc == 0 && key.mv_size == 16 &&
		     key_get_u64(key.mv_data) == n->ino;
		     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			uint64_t blk = key_get_u64((uint8_t *)key.mv_data + 8);
			struct block_rec rec;
			int r = 0;

			if (pass == 0) {
				r = cache_blkset_add(&n->dblk, blk);
				atomic_fetch_add(&c->inbox.dirty_blocks, r > 0);
			} else if (val.mv_size == sizeof(rec)) {
				memcpy(&rec, val.mv_data, sizeof(rec));
				if (!(rec.flags & BLOCK_RESIDENT) &&
				    !cache_blkset_has(&n->dblk, blk))
					r = cache_blkset_add(&n->gone, blk);
			}
			if (r < 0) {
				mdb_cursor_close(cur);
				return r;
			}
		}
		mdb_cursor_close(cur);
		if (rc != MDB_NOTFOUND && rc != 0)
			return cache_meta_err(rc);
	}
	return 0;
}

int cache_blk_reload_dirty(struct cache *c, struct cnode *n)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, r = 0;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_dirty, &cur));
	if (rc == 0) {
		cache_blk_key(k, n->ino, 0);
		for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		     rc == 0 && r >= 0 && key.mv_size == 16 &&
		     key_get_u64(key.mv_data) == n->ino;
		     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			uint64_t blk = key_get_u64((uint8_t *)key.mv_data + 8);

			/* a gone block's sealed copy is the truth: its data
			 * file range is a hole, never to be sealed */
			if (cache_blkset_has(&n->gone, blk) ||
			    cache_blkset_has(&n->sealing, blk))
				continue;
			r = cache_blkset_add(&n->dblk, blk);
			if (r > 0)
				atomic_fetch_add(&c->inbox.dirty_blocks, 1);
		}
		mdb_cursor_close(cur);
		rc = r < 0 ? r : 0;
	}
	cache_meta_read_end(txn);
	return rc;
}

/* --- fetching a gone block back ---------------------------------------- */

struct verify_ctx {
	struct cache *c;
	const char *frame_id;
	struct buf *plain;
};

static int verify_frame(void *arg, const void *data, size_t len)
{
	struct verify_ctx *v = arg;

	buf_reset(v->plain);
	return crypt_unseal(v->c->seal->key, v->c->fsid, v->frame_id, data,
			    len, v->plain);
}

static void frame_id(const struct block_rec *rec, char *out, size_t size)
{
	char key[PACK_KEY_LEN + 1];

	cache_pack_key(rec->pack, key);
	snprintf(out, size, "%s@%" PRIu64, key, rec->off);
}

/* The frame from the local copy of its pack, if there is one. */
static int local_frame(struct cache *c, const struct block_rec *rec,
		       struct buf *frame)
{
	char name[PACK_FILE_LEN + 1];
	ssize_t r;
	int fd, rc;

	cache_pack_file(rec->pack, name);
	fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf_reset(frame);
	rc = buf_reserve(frame, rec->len);
	if (rc == 0) {
		r = pread(fd, buf_mut(frame), rec->len, (off_t)rec->off);
		if (r == (ssize_t)rec->len)
			buf_setlen(frame, rec->len);
		else
			rc = r < 0 ? -errno : PHI_ECORRUPT;
	}
	close(fd);
	return rc;
}

struct repair_arg {
	uint64_t seq;
	int mask;		/* region indexes */
	int fresh;		/* out: regions not recorded before */
};

static int repair_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct repair_arg *a = arg;

	for (int i = 0; i < c->seal->nregions; i++) {
		uint8_t k[12];
		MDB_val key = { sizeof(k), k }, val = { 0, (void *)"" };
		int rc;

		if (!(a->mask & (1 << i)))
			continue;
		key_put_u64(k, a->seq);
		k[8] = k[9] = k[10] = 0;
		k[11] = (uint8_t)c->seal->r[i].bit;
		rc = mdb_put(txn, c->db_repair, &key, &val, MDB_NOOVERWRITE);
		if (rc == 0)
			a->fresh |= 1 << i;
		else if (rc != MDB_KEYEXIST)
			return cache_meta_err(rc);
	}
	return 0;
}

/* Plaintext of block blk of n into plain.  Called with n->lock dropped:
 * reads nothing of n but its inode number.  whole: 0 (not a read), or
 * how a read may take its frame from a pack got whole (cache_packget.c):
 * n is a small file whose neighbours in its pack are likely read next, a
 * larger file read in order, or only from a pack in memory already. */
static int read_sealed(struct cache *c, struct cnode *n, uint64_t blk,
		       const struct block_rec *rec, enum packget_mode whole,
		       struct buf *plain)
{
	struct buf frame;
	char fid[PACK_KEY_LEN + 32], key[PACK_KEY_LEN + 1];
	struct verify_ctx v = { c, fid, plain };
	int bad = 0, rc;

	frame_id(rec, fid, sizeof(fid));
	buf_init(&frame, SIZE_MAX);
	rc = local_frame(c, rec, &frame);
	if (rc == 0)
		rc = verify_frame(&v, buf_data(&frame), buf_len(&frame));
	buf_release(&frame);
	if (rc == 0)
		return 0;
	cache_pack_key(rec->pack, key);
	rc = whole ? cache_packget_frame(c, key, rec->pack, rec->off,
					 rec->len, verify_frame, &v, &bad,
					 whole) : 1;
	if (rc == -EINPROGRESS)
		return rc;	/* read-ahead: the reader takes it */
	if (rc == 1) {		/* the frame alone */
		int bad2 = 0;

		buf_init(&frame, SIZE_MAX);
		rc = backend_replica_get_verified(c->seal->regions, key,
						  rec->off, rec->len, &frame,
						  verify_frame, &v, &bad2);
		buf_release(&frame);
		bad |= bad2;
	}
	if (bad) {
		struct repair_arg a = { rec->seq, bad, 0 };

		cache_meta_write(c, repair_txn, &a);
		for (int i = 0; i < c->seal->nregions; i++)
			if (a.fresh & (1 << i))
				PHI_LOG(PHI_LOG_WARNING, "object %s: region %s "
					"has a bad or missing copy; recorded "
					"for repair", key, c->seal->r[i].name);
	}
	if (rc)
		PHI_LOG(PHI_LOG_ERR, "inode %llu block %llu: no region could "
			"serve object %s: %s", (unsigned long long)n->ino,
			(unsigned long long)blk, key, phi_strerror(rc));
	return rc;
}

/*
 * A fetch under way, on the fetching thread's stack, in n->fetching while
 * n->lock is dropped.  stale: the block was written whole or cut since
 * the fetch began (fetch_spoil()); what the fetch brings back is no
 * longer its content.
 */
struct fetch_slot {
	uint64_t blk;
	int stale;
	struct fetch_slot *next;
};

/* Whether block blk of n is being fetched; n->lock held. */
static int fetch_busy(const struct cnode *n, uint64_t blk)
{
	for (const struct fetch_slot *s = n->fetching; s; s = s->next)
		if (s->blk == blk)
			return 1;
	return 0;
}

/* Blocks [from, to) of n change other than by a fetch: the fetches of
 * them under way must not write what they bring.  n->lock held. */
static void fetch_spoil(struct cnode *n, uint64_t from, uint64_t to)
{
	for (struct fetch_slot *s = n->fetching; s; s = s->next)
		if (s->blk >= from && s->blk < to)
			s->stale = 1;
}

/* The record of block blk of n into *rec and its plaintext into plain,
 * locally or from the regions.  n->lock dropped.  The record's codes as
 * they are (-ENOENT: no record), any other failure -EIO or -ENOSPC;
 * -EINPROGRESS: for read-ahead, another thread is getting its pack. */
static int fetch_sealed(struct cache *c, struct cnode *n, uint64_t blk,
			enum packget_mode whole, struct block_rec *rec,
			struct buf *plain)
{
	MDB_txn *txn;
	int rc;

	struct block_rec next;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_blk_rec_get(c, txn, n->ino, blk, rec);
	/* a pack got whole for a read in order must hold the next block
	 * too: the blocks of a file sealed among other files' data, a
	 * pack each, come alone (or from a pack got meanwhile) */
	if (rc == 0 && (whole == PACKGET_SEQ || whole == PACKGET_AHEAD) &&
	    (cache_blk_rec_get(c, txn, n->ino, blk + 1, &next) != 0 ||
	     memcmp(next.pack, rec->pack, sizeof(next.pack)) != 0))
		whole = PACKGET_PEEK;
	cache_meta_read_end(txn);
	if (rc)
		return rc;
	rc = read_sealed(c, n, blk, rec, whole, plain);
	if (rc == 0 && buf_len(plain) != rec->plain)
		rc = PHI_ECORRUPT;
	return rc == 0 || rc == -ENOSPC || rc == -EINPROGRESS ? rc : -EIO;
}

/* Write what fetch_sealed() brought (rc its code) into the hole of gone
 * block blk of n, whose fetch did not go stale.  n->lock held. */
static int fetch_install(struct cache *c, struct cnode *n, uint64_t blk,
			 const struct block_rec *rec, const struct buf *plain,
			 int rc)
{
	uint64_t bs = c->block_size, off = blk * bs, len;

	if (rc == -ENOENT) {		/* cut meanwhile: a hole */
		cache_blkset_del(&n->gone, blk);
		return 0;
	}
	if (rc)
		return rc;	/* -EINPROGRESS too: still gone */
	if (!(rec->flags & (BLOCK_SUMMED | BLOCK_MASKED)))
		n->fetched_unsummed = 1;
	len = off >= n->size ? 0 : n->size - off;
	if (len > rec->plain)
		len = rec->plain;
	rc = len ? cache_sect_write(c, n, buf_data(plain), off, len, NULL,
				     NULL) : 0;
	if (rc)
		return rc == -ENOSPC ? -ENOSPC : -EIO;
	cache_blkset_del(&n->gone, blk);
	n->fetch_unsynced = 1;
	cache_blkset_add(&n->checked, blk);	/* authenticated: good as
						   it is */
	cache_blk_refresh_alloc(c, n);
	n->dirty = 1;		/* the record's block count */
	if (atomic_load(&c->used) + atomic_load(&c->packs_used) >
	    c->size_limit)
		cache_inbox_kick(c);	/* evicts others; not under this lock */
	if (cache_blkset_add(&n->fetched, blk) < 0)
		return 0;	/* it is only fetched again after a reload */
	atomic_store_explicit(&n->fetched_any, 1, memory_order_relaxed);
	n->unsynced = 1;
	cache_inbox_fetched(c);
	return 0;
}

/*
 * Bring gone block blk of n back into the data file.  n->lock is held on
 * entry and on return, but dropped while the frame is read (from the
 * local pack or the regions), so that a stat, or a read of the file's
 * blocks that are here, never waits for the network.  reading: for a
 * read (a file of one block may then get its whole pack, and so may a
 * larger file read in order, cache_packget.c), not a write or a cut;
 * FETCH_AHEAD for a read-ahead thread.  Meanwhile the
 * block has a slot in n->fetching: a second fetch of it waits for this
 * one (n->fetch_done) instead of asking the regions again, and a write
 * over it whole or a cut below it marks the slot stale (fetch_spoil()),
 * so that the older bytes are dropped rather than written over the
 * writer's or into the cut's hole; the write wins.  The bytes land only
 * in a block still gone whose slot is not stale, so the record they were
 * read by is still its record (a new one needs a write first), and the
 * invariant above holds as when the lock was kept.
 */
enum { FETCH_READ = 1, FETCH_AHEAD };

static void ahead_queue(struct cache *c, uint64_t ino, uint64_t blk);

static int fetch(struct cache *c, struct cnode *n, uint64_t blk,
		 int reading)
{
	struct fetch_slot slot = { blk, 0, NULL }, **p;
	struct block_rec rec;
	struct buf plain;
	enum packget_mode whole;
	int rc, stale;

	for (;;) {
		while (fetch_busy(n, blk))
			pthread_cond_wait(&n->fetch_done, &n->lock);
		if (!cache_blkset_has(&n->gone, blk))
			return 0;	/* fetched, written or cut meanwhile */
		slot.stale = 0;
		slot.next = n->fetching;
		n->fetching = &slot;
		cache_packget_buf_take(c, &plain);
		/* a file of one block, read: its neighbours in its pack
		 * are likely read next; a larger one read in order: the
		 * next blocks are, and read-ahead gets other packs */
		whole = !reading ? 0 : reading == FETCH_AHEAD ? PACKGET_AHEAD :
			n->size <= c->block_size ? PACKGET_SMALL :
			n->ahead_seq ? PACKGET_SEQ : PACKGET_PEEK;
		lock_drop(&n->lock);
		rc = fetch_sealed(c, n, blk, whole, &rec, &plain);
		lock_take(&n->lock);
		for (p = &n->fetching; *p != &slot; p = &(*p)->next)
			;
		*p = slot.next;
		/* written or cut meanwhile: drop what came, look again */
		stale = slot.stale || !cache_blkset_has(&n->gone, blk);
		if (!stale)
			rc = fetch_install(c, n, blk, &rec, &plain, rc);
		cache_packget_buf_give(c, &plain);
		pthread_cond_broadcast(&n->fetch_done);
		/* a walk of small files: the next pack while this one is
		 * read through */
		if (rc == 0 && whole == PACKGET_SMALL &&
		    atomic_load(&c->ahead.on) && cache_packget_walking(c))
			ahead_queue(c, n->ino, AHEAD_NEXT_PACK);
		if (!stale)
			return rc;
	}
}

/* Fetch every gone block of [off, off+len), except the ones a write
 * covers whole (skip_whole: for a write, not a read), which stay gone
 * for write_ahead(); *fetched
 * is set when something was written into the data file (by this thread
 * or by a fetch it waited for).  n->lock held, dropped meanwhile. */
static int fetch_range(struct cache *c, struct cnode *n, uint64_t off,
		       uint64_t len, int skip_whole, int *fetched)
{
	uint64_t bs = c->block_size, first, last;

	if (!n->gone.n || len == 0)
		return 0;
	first = off / bs;
	last = (off + len - 1) / bs;
	for (size_t i = blkset_pos(&n->gone, first);
	     i < n->gone.n && n->gone.v[i] <= last;) {
		uint64_t blk = n->gone.v[i];
		int rc;

		if (skip_whole && off <= blk * bs && off + len >= (blk + 1) * bs) {
			i++;
			continue;
		}
		rc = fetch(c, n, blk, skip_whole ? 0 : FETCH_READ);
		if (rc)
			return rc;
		*fetched = 1;
		/* n->lock was dropped meanwhile: look at the range again */
		i = blkset_pos(&n->gone, first);
	}
	return 0;
}

/* --- after a crash: writes recorded ahead that never happened ---------- */

/* Whether the write recorded ahead of block blk of ino (DIRTY_WAS_GONE)
 * never reached the data file: the block is still a hole there and its
 * sealed copy is still not resident. */
static int never_written(struct cache *c, MDB_txn *txn, uint64_t ino,
			 uint64_t blk)
{
	struct block_rec rec;
	char name[32];
	int fd, hole;

	/* the flags only: an open without the key settles too */
	if (rec_get_stored(c, txn, ino, blk, &rec) ||
	    (rec.flags & BLOCK_RESIDENT))
		return 0;
	cache_data_name(ino, name, sizeof(name));
	fd = openat(c->datafd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	hole = !cache_sect_has_data(c, fd, blk);
	close(fd);
	return hole;
}

static int settle_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	MDB_cursor *cur;
	MDB_val key, val;
	uint64_t *dropped = arg;
	int rc;

	rc = mdb_cursor_open(txn, c->db_dirty, &cur);
	if (rc)
		return cache_meta_err(rc);
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		uint64_t ino, blk;

		if (key.mv_size != 16 || val.mv_size != 1 ||
		    !(*(uint8_t *)val.mv_data & DIRTY_WAS_GONE))
			continue;
		ino = key_get_u64(key.mv_data);
		blk = key_get_u64((uint8_t *)key.mv_data + 8);
		if (!never_written(c, txn, ino, blk))
			continue;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		(*dropped)++;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

/* A sealed store: undo the writes a power loss tore in dirty blocks
 * (cache_sect.c, "Torn writes"); the sealed copies of clean blocks
 * stand behind them, so only dirty ones need it. */
static int settle_sectors(struct cache *c)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	MDB_txn *txn;
	uint64_t open_ino = 0, fixed = 0;
	int rc, fd = -1;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_dirty, &cur));
	for (int r = rc ? rc : mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	     rc == 0 && r == 0; r = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		uint64_t ino, blk;
		char name[32];
		int got;

		if (key.mv_size != 16)
			continue;
		ino = key_get_u64(key.mv_data);
		blk = key_get_u64((uint8_t *)key.mv_data + 8);
		if (ino != open_ino || fd < 0) {
			if (fd >= 0 && fsync(fd))
				rc = -errno;
			if (fd >= 0)
				close(fd);
			open_ino = ino;
			cache_data_name(ino, name, sizeof(name));
			fd = openat(c->datafd, name, O_RDWR | O_CLOEXEC);
			if (fd < 0 && errno != ENOENT)
				rc = -errno;
			if (fd < 0)
				continue;
		}
		got = cache_sect_settle(c, fd, ino, blk);
		if (got < 0)
			rc = got;
		else
			fixed += (uint64_t)got;
	}
	if (fd >= 0 && fsync(fd) && rc == 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (cur)
		mdb_cursor_close(cur);
	cache_meta_read_end(txn);
	if (rc == 0 && fixed)
		PHI_LOG(PHI_LOG_NOTICE, "%llu local sectors written when the "
			"power went read what they held before that write",
			(unsigned long long)fixed);
	return rc;
}

int cache_blk_settle(struct cache *c)
{
	uint64_t dropped = 0;
	int rc;

	if (c->rdonly || !c->have_blockdbs)
		return 0;
	rc = cache_sect_settling(c) ? settle_sectors(c) : 0;
	if (rc == 0)
		rc = cache_meta_write(c, settle_txn, &dropped);
	if (rc == 0 && dropped)
		PHI_LOG(PHI_LOG_NOTICE, "%llu block writes recorded ahead of a "
			"crash never reached the local store; their sealed "
			"copies stand", (unsigned long long)dropped);
	return rc;
}

/* --- checking local bytes against their records ------------------------ */

/* Forget the local bytes of block blk: punch them and clear its resident
 * flag (record first, as eviction does), so that a read fetches the
 * sealed copy again.  n->lock held. */
static int drop_local(struct cache *c, struct cnode *n, uint64_t blk,
		      int has_rec);

/* The CRC-32C of the plaintext [off, off+len) of n's data file (zeros
 * past its end), read a chunk at a time through a buffer that stays in
 * the cache.  A sealed sector that fails is PHI_ECORRUPT, like a CRC
 * that does not match. */
static int crc_of(struct cache *c, struct cnode *n, uint64_t off,
		  uint64_t len, uint32_t *out)
{
	static _Thread_local uint8_t chunk[128 << 10];
	uint32_t crc = 0;

	while (len) {
		size_t want = len < sizeof(chunk) ? (size_t)len : sizeof(chunk);
		uint64_t bad;
		int rc = cache_sect_read(c, n->fd, n->ino, chunk, off, want,
					 &bad);

		if (rc == PHI_EAUTHFAIL) {
			PHI_LOG(PHI_LOG_WARNING, "inode %" PRIu64 ": local "
				"sector %" PRIu64 " fails its seal; its block "
				"is fetched again", n->ino, bad);
			return PHI_ECORRUPT;
		}
		if (rc)
			return rc;
		crc = phi_crc32c(crc, chunk, want);
		off += want;
		len -= want;
	}
	*out = crc;
	return 0;
}

/* 0 if block blk's local bytes are what rec says, PHI_ECORRUPT if not,
 * or an error reading them. */
static int check_block(struct cache *c, struct cnode *n, uint64_t blk,
		       const struct block_rec *rec, int have_rec)
{
	uint64_t bs = c->block_size, off = blk * bs;
	uint32_t crc = 0, want = 0;
	int rc;

	if (!have_rec)		/* nothing recorded: a hole */
		return off < n->size && cache_sect_has_data(c, n->fd, blk) ?
		       PHI_ECORRUPT : 0;
	if (!(rec->flags & BLOCK_RESIDENT) || cache_blk_rec_sum(rec, &want))
		return 0;	/* fetched just now, or sealed unsummed */
	rc = crc_of(c, n, off, rec->plain, &crc);
	if (rc)
		return rc;
	return crc == want ? 0 : PHI_ECORRUPT;
}

/*
 * Check the clean blocks of [off, off+len) that were not checked since
 * the node was loaded; with partial_only, only the first and last block
 * if the range covers them in part (a write replaces the rest).  A block
 * that fails is dropped from the local store, so that what follows
 * (fetch_range()) brings back its sealed copy.  n->lock held.
 */
static int check_range(struct cache *c, struct cnode *n, uint64_t off,
		       uint64_t len, int partial_only)
{
	uint64_t bs = c->block_size, first, last;
	MDB_txn *txn = NULL;
	int rc = 0;

	if (len == 0 || off >= n->size)
		return 0;
	if (len > n->size - off)
		len = n->size - off;
	first = off / bs;
	last = (off + len - 1) / bs;
	for (uint64_t b = first; b <= last && rc == 0; b++) {
		struct block_rec rec;
		int r, have;

		if (partial_only && b != first && b != last)
			continue;
		if (partial_only && off <= b * bs && off + len >= (b + 1) * bs)
			continue;
		if (cache_blkset_has(&n->checked, b) ||
		    cache_blkset_has(&n->dblk, b) ||
		    cache_blkset_has(&n->gone, b) ||
		    cache_blkset_has(&n->sealing, b))
			continue;
		/* a read of a sealed block no crash could have left newer
		 * than its record: its seal is check enough, and a read that
		 * fails it fetches the block again (cache_sect_owed()); a
		 * write into part of one must find it whole first */
		if (!partial_only && cache_blkset_has(&n->unowed, b))
			continue;
		r = partial_only ? 1 : cache_sect_owed(c, n->fd, b);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 0) {
			rc = cache_blkset_add(&n->unowed, b) < 0 ? -ENOMEM : 0;
			continue;
		}
		if (!txn && !(txn = cache_meta_read_begin(c, &rc)))
			break;
		r = cache_blk_rec_get(c, txn, n->ino, b, &rec);
		if (r && r != -ENOENT) {
			rc = r;
			break;
		}
		have = r == 0;
		r = check_block(c, n, b, &rec, have);
		if (r == PHI_ECORRUPT) {
			PHI_LOG(PHI_LOG_ERR, "inode %llu block %llu: local copy "
				"%s; %s", (unsigned long long)n->ino,
				(unsigned long long)b, have ?
				"fails its checksum" : "holds data no record "
				"names", have ? "fetching the sealed copy "
				"again" : "dropped");
			cache_meta_read_end(txn);
			txn = NULL;
			r = drop_local(c, n, b, have);
		}
		if (r == 0)
			r = cache_blkset_add(&n->checked, b) < 0 ? -ENOMEM : 0;
		rc = r;
	}
	if (txn)
		cache_meta_read_end(txn);
	return rc;
}

static void mark(struct cache *c, struct cnode *n, uint64_t blk)
{
	int r = cache_blkset_add(&n->dblk, blk);

	if (r > 0) {
		atomic_fetch_add(&n->gen, 1);
		atomic_fetch_add(&c->inbox.dirty_blocks, 1);
	}
	if (r >= 0)
		r = cache_blkset_add(&n->fresh, blk);
	if (r < 0)
		cache_latch(c, -ENOMEM);	/* a write we could not track */
	n->dirty = 1;
}

/* --- the dirty record goes first --------------------------------------- */

struct ahead_arg {
	uint64_t ino;
	const uint64_t *blk;
	const uint8_t *flags;
	size_t n;
};

static int ahead_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct ahead_arg *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		uint8_t k[16];
		MDB_val key = { sizeof(k), k };
		MDB_val val = { a->flags[i] ? 1 : 0, (void *)&a->flags[i] };
		int rc;

		cache_blk_key(k, a->ino, a->blk[i]);
		rc = mdb_put(txn, c->db_dirty, &key, &val, 0);
		if (rc)
			return cache_meta_err(rc);
	}
	return 0;
}

/* The blocks write_ahead() recorded join n's dirty set. */
static int track_ahead(struct cache *c, struct cnode *n, const uint64_t *blk,
		       size_t count)
{
	for (size_t i = 0; i < count; i++) {
		int r = cache_blkset_add(&n->dblk, blk[i]);

		if (r < 0)	/* recorded, not tracked: the next load finds it */
			return cache_latch(c, -ENOMEM);
		if (r > 0)
			atomic_fetch_add(&c->inbox.dirty_blocks, 1);
		cache_blkset_del(&n->fresh, blk[i]);
		cache_blkset_del(&n->gone, blk[i]);
		cache_blkset_del(&n->fetched, blk[i]);
	}
	return 0;
}

/*
 * Record every block of [off, off+len) that is not recorded dirty yet
 * (not in n->dblk, or only in n->fresh) in `dirty`, committed, before
 * the caller writes.  n->gen moves first, so that a seal in flight keeps
 * the record (cache_seal.c).  Gone blocks the write covers whole leave
 * `gone` here, marked DIRTY_WAS_GONE.
 *
 * Blocks wholly past the size the inode record holds need no record
 * ahead: a crash cuts the data file back to that size (cache_node_load()), and
 * the fold that records a larger size records their `dirty` entries in
 * the same transaction (cache_blk_fold_txn()).  So appending, the common case,
 * costs no commit.  n->lock held.
 */
static int write_ahead(struct cache *c, struct cnode *n, uint64_t off,
		       uint64_t len)
{
	uint64_t bs = c->block_size, first = off / bs, last;
	uint64_t sblk[16], *blk = sblk;
	uint8_t sflags[16], *flags = sflags;
	size_t count = 0;
	int rc;

	if (len == 0)
		return 0;
	last = (off + len - 1) / bs;
	/* a write spans few blocks: no allocation on the write path */
	if (last - first + 1 > 16) {
		blk = malloc((size_t)(last - first + 1) * sizeof(*blk));
		flags = malloc((size_t)(last - first + 1));
		if (!blk || !flags) {
			free(blk);
			free(flags);
			return -ENOMEM;
		}
	}
	for (uint64_t b = first; b <= last; b++) {
		if (cache_blkset_has(&n->dblk, b) &&
		    !cache_blkset_has(&n->fresh, b))
			continue;
		if (b * bs >= n->rec_size) {
			mark(c, n, b);
			continue;
		}
		flags[count] = cache_blkset_has(&n->gone, b) ?
			       DIRTY_WAS_GONE : 0;
		blk[count++] = b;
	}
	rc = 0;
	if (count) {
		struct ahead_arg a = { n->ino, blk, flags, count };

		atomic_fetch_add(&n->gen, 1);
		rc = cache_meta_write(c, ahead_txn, &a);
	}
	if (rc == 0)
		rc = track_ahead(c, n, blk, count);
	/* the write wins over a fetch of its blocks still under way */
	if (rc == 0)
		fetch_spoil(n, first, last + 1);
	if (blk != sblk) {
		free(blk);
		free(flags);
	}
	return rc;
}

int cache_blk_prepare_write(struct cache *c, struct cnode *n, uint64_t off,
			    uint64_t len)
{
	int fetched = 0, rc;

	if (!c->seal)
		return 0;
	rc = check_range(c, n, off, len, 1);
	if (rc == 0)
		rc = fetch_range(c, n, off, len, 1, &fetched);
	/* A fetched block (this write's, or an earlier read's) becomes
	 * dirty below: its plaintext must be on the disk before a record
	 * says the data file is its truth. */
	if (rc == 0 && (fetched || n->fetch_unsynced)) {
		rc = cache_sect_sync(c, n);
		if (rc)
			rc = cache_latch(c, rc);
		else
			n->fetch_unsynced = 0;
	}
	if (rc == 0)
		rc = write_ahead(c, n, off, len);
	return rc;
}

/* --- read-ahead --------------------------------------------------------- */

void cache_blk_ahead_init(struct cache *c, uint64_t window)
{
	struct ahead_queue *q = &c->ahead;

	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->head = q->n = 0;
	q->stop = 0;
	q->window = window;
	atomic_store(&q->on, 1);
}

int cache_blk_ahead_take(struct cache *c, uint64_t *ino, uint64_t *blk)
{
	struct ahead_queue *q = &c->ahead;
	int rc = -1;

	lock_take(&q->lock);
	while (!q->n && !q->stop)
		pthread_cond_wait(&q->cond, &q->lock);
	if (!q->stop) {
		*ino = q->q[q->head][0];
		*blk = q->q[q->head][1];
		q->head = (q->head + 1) % AHEAD_QUEUE;
		q->n--;
		rc = 0;
	}
	lock_drop(&q->lock);
	return rc;
}

void cache_blk_ahead_stop(struct cache *c)
{
	struct ahead_queue *q = &c->ahead;

	if (!atomic_exchange(&q->on, 0))
		return;
	lock_take(&q->lock);
	q->stop = 1;
	pthread_cond_broadcast(&q->cond);
	lock_drop(&q->lock);
}

/* Queue block blk of n (best effort: a full queue drops it). */
static void ahead_queue(struct cache *c, uint64_t ino, uint64_t blk)
{
	struct ahead_queue *q = &c->ahead;

	lock_take(&q->lock);
	if (q->n < AHEAD_QUEUE && !q->stop) {
		size_t tail = (q->head + q->n) % AHEAD_QUEUE;

		q->q[tail][0] = ino;
		q->q[tail][1] = blk;
		q->n++;
		pthread_cond_signal(&q->cond);
	}
	lock_drop(&q->lock);
}

/*
 * A read of blocks [first, last] of n: if it follows the last read (in
 * the block it ended in or the next), queue the gone blocks of the window
 * past it that are not queued yet; any other read starts the count
 * again.  n->lock held.
 */
static void ahead_note(struct cache *c, struct cnode *n, uint64_t first,
		       uint64_t last)
{
	uint64_t bs = c->block_size, from, to;
	int seq = first == n->ahead_next || first + 1 == n->ahead_next;

	n->ahead_next = last + 1;
	n->ahead_seq = seq;
	if (!seq || !atomic_load(&c->ahead.on)) {
		n->ahead_to = last + 1;
		return;
	}
	from = n->ahead_to > last + 1 ? n->ahead_to : last + 1;
	to = last + c->ahead.window;		/* inclusive */
	for (uint64_t b = from; b <= to && b * bs < n->size; b++)
		if (cache_blkset_has(&n->gone, b) && !fetch_busy(n, b))
			ahead_queue(c, n->ino, b);
	if (to + 1 > n->ahead_to)
		n->ahead_to = to + 1;
}

void cache_blk_fetch_ahead(struct cache *c, struct cnode *n, uint64_t blk)
{
	lock_take(&n->lock);
	/* pinned: eviction must not punch the block it brings while the
	 * lock is dropped, as for a reader's fetch */
	if (n->fd >= 0 && n->loaded && cache_blkset_has(&n->gone, blk) &&
	    !fetch_busy(n, blk)) {
		n->pinned++;
		fetch(c, n, blk, FETCH_AHEAD);
		n->pinned--;
	}
	lock_drop(&n->lock);
}

#define PACK_AHEAD_SCAN 16	/* inode numbers looked at past a walk's */

void cache_blk_pack_ahead(struct cache *c, uint64_t ino)
{
	char fid[PACK_KEY_LEN + 32], key[PACK_KEY_LEN + 1];
	struct block_rec cur, rec;
	struct buf plain;
	struct verify_ctx v = { c, fid, &plain };
	MDB_txn *txn;
	int rc, bad, found = 0;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return;
	rc = cache_blk_rec_get(c, txn, ino, 0, &cur);
	for (uint64_t k = 1; rc == 0 && !found && k <= PACK_AHEAD_SCAN; k++)
		found = cache_blk_rec_get(c, txn, ino + k, 0, &rec) == 0 &&
			!(rec.flags & BLOCK_RESIDENT) &&
			memcmp(rec.pack, cur.pack, sizeof(rec.pack)) != 0;
	cache_meta_read_end(txn);
	if (!found)
		return;	/* PACKGET_NEXT gets nothing already here */
	frame_id(&rec, fid, sizeof(fid));
	cache_pack_key(rec.pack, key);
	cache_packget_buf_take(c, &plain);
	cache_packget_frame(c, key, rec.pack, rec.off, rec.len, verify_frame,
			    &v, &bad, PACKGET_NEXT);
	cache_packget_buf_give(c, &plain);
}

int cache_blk_prepare_read(struct cache *c, struct cnode *n, uint64_t off,
			   uint64_t len)
{
	uint64_t bs = c->block_size;
	int fetched = 0, rc;

	if (!c->seal || off >= n->size)
		return 0;
	if (len > n->size - off)
		len = n->size - off;
	rc = check_range(c, n, off, len, 0);
	if (rc == 0 && n->gone.n)
		ahead_note(c, n, off / bs, (off + len - 1) / bs);
	return rc ? rc : fetch_range(c, n, off, len, 0, &fetched);
}

void cache_blk_mark_dirty(struct cache *c, struct cnode *n, uint64_t off,
			  uint64_t len)
{
	uint64_t bs = c->block_size;

	(void)off;
	if (!c->seal || len == 0)
		return;
	n->last_write_ns = phi_mono_ns();
	cache_inbox_wrote(c, n->last_write_ns);
	if (cache_inbox_over_dirty_limit(c, bs))
		cache_inbox_kick(c);
}

int cache_blk_prepare_cut(struct cache *c, struct cnode *n, uint64_t size)
{
	uint64_t bs = c->block_size, keep = (size + bs - 1) / bs;
	int rc;

	if (!c->seal)
		return 0;
	/* Before anything: a seal in flight must not record a block read
	 * before this cut (cache_seal.c, commit_txn()). */
	atomic_fetch_add(&n->cuts, 1);
	if (size % bs && size < n->size) {
		/* The block the cut splits changes: its tail becomes zeros,
		 * its head stays and must be good. */
		rc = check_range(c, n, size / bs * bs, size % bs, 1);
		if (rc == 0 && cache_blkset_has(&n->gone, size / bs)) {
			rc = fetch(c, n, size / bs, 0);
			if (rc == 0 && (rc = cache_sect_sync(c, n)))
				rc = cache_latch(c, rc);
		}
		if (rc)
			return rc;
		mark(c, n, size / bs);
	}
	for (size_t i = blkset_pos(&n->dblk, keep); i < n->dblk.n; i++)
		atomic_fetch_sub(&c->inbox.dirty_blocks, 1);
	blkset_cut(&n->dblk, keep);
	blkset_cut(&n->fresh, keep);
	blkset_cut(&n->gone, keep);
	blkset_cut(&n->fetched, keep);
	blkset_cut(&n->sealing, keep);
	blkset_cut(&n->checked, keep);
	blkset_cut(&n->unowed, keep);
	fetch_spoil(n, keep, UINT64_MAX);
	if (keep < n->cut_from)
		n->cut_from = keep;
	n->dirty = 1;
	return 0;
}

/* Delete the entries of ino from `from` on in dbi. */
static int del_from(struct cache *c, MDB_txn *txn, MDB_dbi dbi, uint64_t ino,
		    uint64_t from)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	int rc;

	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return cache_meta_err(rc);
	/* Seek again after each delete: where a deleting cursor stands at
	 * the end of a page or of the tree is not worth relying on. */
	for (;;) {
		cache_blk_key(k, ino, from);
		key.mv_size = sizeof(k);
		key.mv_data = k;
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc || key.mv_size != 16 || key_get_u64(key.mv_data) != ino)
			break;
		if (dbi == c->db_blocks &&
		    (rc = cache_jnote(c, txn, JDB_BLOCKS, &key)) != 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

int cache_blk_fold_txn(struct cache *c, MDB_txn *txn, struct cnode *n)
{
	int rc;

	if (!c->seal)
		return 0;
	if (n->cut_from != UINT64_MAX) {
		rc = del_from(c, txn, c->db_blocks, n->ino, n->cut_from);
		if (rc == 0)
			rc = del_from(c, txn, c->db_dirty, n->ino, n->cut_from);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < n->fresh.n; i++) {
		uint8_t k[16];
		MDB_val key = { sizeof(k), k }, val = { 0, (void *)"" };

		cache_blk_key(k, n->ino, n->fresh.v[i]);
		rc = mdb_put(txn, c->db_dirty, &key, &val, 0);
		if (rc)
			return cache_meta_err(rc);
	}
	return 0;
}

void cache_blk_fold_done(struct cnode *n)
{
	n->rec_size = n->size;
	n->fresh.n = 0;
	n->cut_from = UINT64_MAX;
}

int cache_blk_free_txn(struct cache *c, MDB_txn *txn, uint64_t ino)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k };
	int rc;

	if (!c->have_blockdbs)
		return 0;
	rc = del_from(c, txn, c->db_blocks, ino, 0);
	if (rc == 0)
		rc = del_from(c, txn, c->db_dirty, ino, 0);
	if (rc)
		return rc;
	key_put_u64(k, ino);
	rc = mdb_del(txn, c->db_lru, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

/* --- recording fetched blocks ------------------------------------------ */

void cache_blk_punch_gone(struct cache *c, struct cnode *n)
{
	/* A block fetched back but not yet recorded as resident when the
	 * node went (a crash) is a gone block with data in the data file:
	 * punch it, or it would take space that eviction never frees. */
	for (size_t i = 0; i < n->gone.n; i++)
		if (cache_sect_has_data(c, n->fd, n->gone.v[i]))
			cache_sect_punch(c, n->fd, n->gone.v[i], 1);
}

struct flags_arg {
	struct cnode *n;
	const uint64_t *blk;
	size_t count;
	uint32_t set, clear;
};

static int flags_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct flags_arg *a = arg;

	/* the stored form: the flags are not masked, nor is what the mask
	 * is made from */
	for (size_t i = 0; i < a->count; i++) {
		struct block_rec rec;
		int rc = rec_get_stored(c, txn, a->n->ino, a->blk[i], &rec);

		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		rec.flags = (rec.flags | a->set) & ~a->clear;
		rc = rec_put_stored(c, txn, a->n->ino, a->blk[i], &rec);
		if (rc)
			return rc;
	}
	return 0;
}

static int drop_local(struct cache *c, struct cnode *n, uint64_t blk,
		      int has_rec)
{
	int rc = 0;

	if (has_rec) {
		struct flags_arg a = { n, &blk, 1, 0, BLOCK_RESIDENT };

		rc = cache_meta_write(c, flags_txn, &a);
		if (rc)
			return rc;
	}
	rc = cache_sect_punch(c, n->fd, blk, 1);
	if (rc)
		return cache_latch(c, rc);
	cache_blkset_del(&n->fetched, blk);
	if (has_rec && cache_blkset_add(&n->gone, blk) < 0)
		return -ENOMEM;
	cache_blk_refresh_alloc(c, n);
	n->dirty = 1;		/* the record's block count */
	return 0;
}

int cache_blk_drop_damaged(struct cache *c, struct cnode *n, uint64_t blk)
{
	struct block_rec rec;
	MDB_txn *txn;
	int rc, have;

	if (!c->seal || cache_blkset_has(&n->dblk, blk) ||
	    cache_blkset_has(&n->sealing, blk))
		return -EIO;		/* its only copy */
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	have = cache_blk_rec_get(c, txn, n->ino, blk, &rec) == 0 &&
	       !cache_blk_in_dirty(c, txn, n->ino, blk);
	cache_meta_read_end(txn);
	if (!have)
		return -EIO;
	cache_blkset_del(&n->checked, blk);
	cache_blkset_del(&n->unowed, blk);
	return drop_local(c, n, blk, 1);
}

int cache_blk_persist_node(struct cache *c, struct cnode *n)
{
	struct flags_arg a = { n, n->fetched.v, n->fetched.n, BLOCK_RESIDENT,
			       0 };
	int rc;

	if (!n->fetched.n || n->fd < 0)
		return 0;
	if (n->fetched_unsummed && (rc = cache_sect_sync(c, n)))
		return rc;
	if (n->fetched_unsummed)
		n->fetch_unsynced = 0;
	rc = cache_meta_write(c, flags_txn, &a);
	if (rc == 0) {
		n->fetched.n = 0;
		n->fetched_unsummed = 0;
	}
	return rc;
}

int cache_blk_in_dirty(struct cache *c, MDB_txn *txn, uint64_t ino,
		       uint64_t blk)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;

	cache_blk_key(k, ino, blk);
	return mdb_get(txn, c->db_dirty, &key, &val) == 0;
}

int cache_blk_has_dirty(struct cache *c, MDB_txn *txn, uint64_t ino)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	int found;

	if (mdb_cursor_open(txn, c->db_dirty, &cur))
		return 1;
	cache_blk_key(k, ino, 0);
	found = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE) == 0 &&
		key.mv_size == 16 && key_get_u64(key.mv_data) == ino;
	mdb_cursor_close(cur);
	return found;
}

int cache_blk_evictable(struct cache *c, struct cnode *n, struct blkset *out,
			int *left)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc;

	*left = 0;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_blocks, &cur));
	if (rc) {
		cache_meta_read_end(txn);
		return rc;
	}
	cache_blk_key(k, n->ino, 0);
	for (int r = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     r == 0 && key.mv_size == 16 && key_get_u64(key.mv_data) == n->ino;
	     r = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		uint64_t blk = key_get_u64((uint8_t *)key.mv_data + 8);
		struct block_rec rec;

		if (val.mv_size != sizeof(rec))
			continue;
		memcpy(&rec, val.mv_data, sizeof(rec));
		if (cache_blkset_has(&n->gone, blk))
			continue;
		if (cache_blkset_has(&n->dblk, blk) ||
		    cache_blk_in_dirty(c, txn, n->ino, blk) ||
		    !cache_meta_pack_replicated(c, txn, rec.seq)) {
			*left = 1;
			continue;
		}
		if (cache_blkset_add(out, blk) < 0) {
			*left = 1;
			break;
		}
	}
	mdb_cursor_close(cur);
	/* Blocks still to be sealed will be resident later: keep the file
	 * in the LRU order. */
	if (n->dblk.n || n->sealing.n || cache_blk_has_dirty(c, txn, n->ino))
		*left = 1;
	cache_meta_read_end(txn);
	return 0;
}

int cache_blk_evict_blocks(struct cache *c, struct cnode *n,
			   const struct blkset *go, uint64_t *freed)
{
	struct flags_arg a = { n, go->v, go->n, 0, BLOCK_RESIDENT };
	uint64_t before = n->alloc;
	size_t done = 0;
	int rc;

	/* Record first: a crash after it costs a fetch, the other order
	 * could leave a resident flag over a hole. */
	rc = cache_meta_write(c, flags_txn, &a);
	for (; rc == 0 && done < go->n; done++) {
		uint64_t b = go->v[done];

		if (cache_sect_punch(c, n->fd, b, 1))
			break;
		cache_blkset_del(&n->fetched, b);
		cache_blkset_del(&n->checked, b);
		cache_blkset_del(&n->unowed, b);
		if (cache_blkset_add(&n->gone, b) < 0)
			break;
	}
	atomic_fetch_add_explicit(&c->evictions, done, memory_order_relaxed);
	cache_blk_refresh_alloc(c, n);
	n->dirty = 1;	/* the record's block count */
	*freed = before > n->alloc ? before - n->alloc : 0;
	return rc;
}
