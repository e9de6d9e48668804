/*
 * cache_seal.c - the sealer: dirty blocks into packs of sealed frames.
 *
 * One thread.  Every SEAL_TICK_MS, or when woken, it looks at the inodes
 * with dirty blocks (the `dirty` db, which folds keep current) and seals
 * the blocks of those that are due: idle for seal_delay, closed, asked
 * for by a sync, or all of them while the dirty total is past
 * dirty_limit.  Closed files wait while other files are being written,
 * for a pause of seal_quiet (yield_to_writers()).  A block is read from
 * the data file under its node's lock (and leaves the node's dirty set
 * there) into a batch of up to BATCH_BYTES, then compressed and
 * encrypted into the current pack without the lock.
 *
 * The crew.  Compression is most of the work, and a frame's object id
 * names its offset in the pack, which the frames before it decide.  So
 * a batch is sealed in three steps: its blocks are compressed side by
 * side (crypt_seal_prepare()), by the sealer and seal_threads - 1
 * helper threads; the sealer places the frames in the pack in order;
 * and all of them encrypt the frames side by side, each for its place
 * (crypt_seal_finish()).  A frame is encrypted before its pack is
 * written anywhere, and the open pack holds only encrypted frames
 * between batches.
 *
 * A pack is written to cache_dir/packs/ (fdatasync, rename, fsync of the
 * directory) before one transaction records it in `packs` (the upload
 * queue), points the blocks' `blocks` entries at its frames and drops
 * their `dirty` entries.  So a recorded frame always exists locally until
 * every region has it, and a crash before the commit leaves only an
 * unreferenced file, which the next open deletes.
 *
 * A block written again while it was being sealed stays dirty: the node's
 * generation counter, read without a lock inside the transaction, tells
 * that the dirty entry must stay.  It moves with a write to any block of
 * the file, so after the commit settle_kept() looks again, per block and
 * under the node's lock, and drops the entries of the blocks that were
 * not written again: so the blocks of a file being written on become
 * clean, replicated and evictable while it is still open.
 *
 * Frames are sealed for the object id "d/<pack id>@<offset>", so that a
 * frame moved within a pack, or into another, fails to open.
 */
#include "cache_int.h"
#include "backend.h"
#include "crc32c.h"
#include "crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SEAL_TICK_MS 200
#define DEFAULT_DELAY_MS 5000
#define DEFAULT_PACK (4ull << 20)
#define PACK_MAX_AGE_MS 3000	/* a pack not full is stored after this */
#define BATCH_MAX 64		/* blocks in a batch, at most */
#define BATCH_BYTES (1u << 20)	/* plaintext in a batch, at least one
				   block and at most about this: enough
				   for a few cores, and the stage and the
				   frames stay small beside the pack */
#define CREW_MAX 8		/* threads that seal, by default at most */
#define CREW_MIN_BYTES (256u << 10)	/* a smaller batch is sealed by the
					   sealer alone: waking the crew
					   would cost more */

/* --- packs ------------------------------------------------------------- */

struct pack_entry {
	struct cnode *n;	/* a temporary reference */
	uint64_t blk;
	uint64_t off;
	uint32_t len, plain;
	uint32_t crc;		/* phi_crc32c() of the plaintext */
	unsigned gen;		/* n->gen when the block was read */
	unsigned cuts;		/* n->cuts likewise */
	int kept;		/* recorded, but its dirty entry kept: n->gen
				   moved (settle_kept()) */
};

/* A block read for sealing, not in the pack yet. */
struct taken {
	struct cnode *n;	/* a temporary reference */
	uint64_t blk;
	unsigned gen, cuts;	/* as in struct pack_entry */
	size_t at, len;		/* its plaintext in the stage */
	size_t fat, flen;	/* its frame's cleartext in frames */
	uint32_t crc;
	int rc;			/* of crypt_seal_prepare() */
};

struct packer {
	uint8_t id[16];
	char key[PACK_KEY_LEN + 1];
	struct buf data;
	struct pack_entry *e;
	size_t n, cap;
	size_t fin;		/* e[fin, n) are not encrypted yet */
	atomic_int fin_rc;	/* the first failure to encrypt one */
	struct taken *t;	/* the batch */
	size_t nt, tcap;
	struct buf stage;	/* the batch's plaintext */
	struct buf frames;	/* its frames, compressed, in the clear */
	uint64_t opened_ns;	/* when its first frame was added */
	uint64_t packs, bytes_in, bytes_out;	/* for the log */
};

/* --- the crew ---------------------------------------------------------- */

typedef void crew_fn(struct cache *c, struct packer *p, size_t i);

struct crew {
	pthread_mutex_t lock;
	pthread_cond_t go;	/* a round begins, or stop */
	pthread_cond_t idle;	/* busy reached 0 */
	pthread_t th[2 * CREW_MAX];
	int n;			/* helpers running */
	int stop;
	unsigned round;
	int busy;		/* helpers not done with this round */
	/* the round's work, set under lock before it begins */
	crew_fn *fn;
	struct cache *c;
	struct packer *p;
	size_t count;
	atomic_size_t next;	/* the next item to take */
};

static void crew_work(struct crew *w)
{
	size_t i;

	while ((i = atomic_fetch_add(&w->next, 1)) < w->count)
		w->fn(w->c, w->p, i);
}

static void *crew_main(void *arg)
{
	struct crew *w = arg;
	unsigned seen = 0;

	lock_take(&w->lock);
	for (;;) {
		while (!w->stop && w->round == seen)
			pthread_cond_wait(&w->go, &w->lock);
		if (w->stop)
			break;
		seen = w->round;
		lock_drop(&w->lock);
		crew_work(w);
		lock_take(&w->lock);
		if (--w->busy == 0)
			pthread_cond_signal(&w->idle);
	}
	lock_drop(&w->lock);
	return NULL;
}

/* fn(c, p, i) for every i below count, on the sealer and the crew;
 * returns once all are done.  bytes: the work's size. */
static void crew_run(struct crew *w, crew_fn *fn, struct cache *c,
		     struct packer *p, size_t count, size_t bytes)
{
	if (!w || w->n == 0 || count < 2 || bytes < CREW_MIN_BYTES) {
		for (size_t i = 0; i < count; i++)
			fn(c, p, i);
		return;
	}
	lock_take(&w->lock);
	w->fn = fn;
	w->c = c;
	w->p = p;
	w->count = count;
	atomic_store(&w->next, 0);
	w->busy = w->n;
	w->round++;
	pthread_cond_broadcast(&w->go);
	lock_drop(&w->lock);
	crew_work(w);
	lock_take(&w->lock);
	while (w->busy)
		pthread_cond_wait(&w->idle, &w->lock);
	lock_drop(&w->lock);
}

/* Stop and free the crew; NULL is none. */
static void crew_free(struct crew *w)
{
	if (!w)
		return;
	lock_take(&w->lock);
	w->stop = 1;
	pthread_cond_broadcast(&w->go);
	lock_drop(&w->lock);
	for (int i = 0; i < w->n; i++)
		pthread_join(w->th[i], NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->go);
	pthread_cond_destroy(&w->idle);
	free(w);
}

/* A crew of threads - 1 helpers (threads 0: one per core, at most
 * CREW_MAX); *out stays NULL when the sealer is to work alone. */
static int crew_start(unsigned threads, struct crew **out)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct crew *w;

	*out = NULL;
	if (threads == 0)
		threads = cores < 1 ? 1 : cores > CREW_MAX ? CREW_MAX :
			  (unsigned)cores;
	if (threads > 2 * CREW_MAX)
		threads = 2 * CREW_MAX;
	if (threads < 2)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->go, NULL);
	pthread_cond_init(&w->idle, NULL);
	for (unsigned i = 0; i + 1 < threads; i++) {
		int rc = pthread_create(&w->th[i], NULL, crew_main, w);

		if (rc) {
			crew_free(w);
			return -rc;
		}
		pthread_setname_np(w->th[i], "phifs-crew");
		w->n++;
	}
	*out = w;
	return 0;
}

static void packer_drop(struct cache *c, struct packer *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct cnode *n = p->e[i].n;

		lock_take(&n->lock);
		cache_blkset_del(&n->sealing, p->e[i].blk);
		lock_drop(&n->lock);
		cache_node_release(c, n);
	}
	p->n = 0;
	p->fin = 0;
	/* the batch may still hold blocks: only the pack's bytes go */
	atomic_fetch_sub(&c->sealing_bytes, buf_len(&p->data));
	buf_reset(&p->data);
}

int cache_store_durably(struct cache *c, const char *dir, const char *name,
			const void *data, size_t len)
{
	char tmp[128];
	size_t done = 0;
	int fd, dfd, rc = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	while (rc == 0 && done < len) {
		ssize_t w = write(fd, (const char *)data + done, len - done);

		if (w < 0 && errno != EINTR)
			rc = -errno;
		else if (w > 0)
			done += (size_t)w;
	}
	if (rc == 0 && fdatasync(fd))
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(c->dirfd, tmp, c->dirfd, name))
		rc = -errno;
	if (rc == 0) {
		dfd = openat(c->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd))
			rc = -errno;
		if (dfd >= 0)
			close(dfd);
		if (rc)
			unlinkat(c->dirfd, name, 0);
	} else {
		unlinkat(c->dirfd, tmp, 0);
	}
	return rc;
}

/* Write the pack file durably. */
static int write_pack(struct cache *c, struct packer *p)
{
	char name[PACK_FILE_LEN + 1];

	cache_pack_file(p->id, name);
	return cache_store_durably(c, "packs", name, buf_data(&p->data),
			     buf_len(&p->data));
}

/* Put ino in the LRU order if it is not there (a resident block must
 * always be reachable by eviction, even if the open that would have
 * noted its use was lost in a crash).  An LMDB code. */
static int lru_enter(struct cache *c, MDB_txn *txn, uint64_t ino)
{
	struct timespec now;
	uint64_t t;
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val = { 8, &t };
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);
	t = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	key_put_u64(k, ino);
	rc = cache_rec_put(c, txn, JDB_LRU, &key, &val,
			   MDB_NOOVERWRITE | CACHE_REC_QUIET);
	return rc == MDB_KEYEXIST ? 0 : rc;
}

struct commit_arg {
	struct packer *p;
	uint64_t seq;
};

/* Record the pack in the upload queue and advance next_seq. */
static int record_pack(struct cache *c, MDB_txn *txn, const struct packer *p,
		       uint64_t seq)
{
	struct pack_rec pr = { .size = buf_len(&p->data),
			       .pending = c->seal->all_bits,
			       .created = phi_now().tv_sec };
	uint64_t next = seq + 1;
	uint8_t k[8];
	MDB_val key = { 8, k }, val = { sizeof(pr), &pr };
	MDB_val nk = { 8, (void *)"next_seq" }, nv = { 8, &next };
	int rc;

	memcpy(pr.id, p->id, 16);
	key_put_u64(k, seq);
	rc = mdb_put(txn, c->db_packs, &key, &val, 0);
	if (rc == 0)
		rc = mdb_put(txn, c->db_super, &nk, &nv, 0);
	return cache_meta_err(rc);
}

/* Point e's block at its frame, and drop its dirty entry if n->gen held
 * (else e->kept is set). */
static int record_frame(struct cache *c, MDB_txn *txn, const struct packer *p,
			uint64_t seq, struct pack_entry *e)
{
	struct block_rec br = { .seq = seq, .off = e->off,
				.len = e->len, .plain = e->plain,
				.flags = BLOCK_RESIDENT | BLOCK_MASKED,
				.crc = e->crc };
	struct inode_rec rec;
	uint8_t k[16];
	MDB_val key = { 16, k };
	int rc;

	memcpy(br.pack, p->id, 16);
	e->kept = 0;
	/* Freed, or cut below this block since it was read: the frame is
	 * garbage already. */
	rc = cache_inode_get(c, txn, e->n->ino, &rec, NULL, NULL);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (e->blk * c->block_size >= rec.size)
		return 0;
	/* Cut since it was read, and maybe grown again past it: the block
	 * may be a hole now, with no record and no dirty entry to correct
	 * this one.  If it was written again, its dirty entry seals it
	 * anew. */
	if (atomic_load(&e->n->cuts) != e->cuts)
		return 0;
	key_put_u64(k, e->n->ino);
	key_put_u64(k + 8, e->blk);
	rc = cache_blk_rec_put(c, txn, e->n->ino, e->blk, &br);
	if (rc)
		return rc;
	rc = cache_jnote(c, txn, JDB_BLOCKS, &key);
	if (rc == 0)
		rc = lru_enter(c, txn, e->n->ino);
	if (rc)
		return cache_meta_err(rc);
	if (atomic_load(&e->n->gen) != e->gen) {
		e->kept = 1;	/* some block written meanwhile: maybe
				   this one (settle_kept()) */
		return 0;
	}
	rc = mdb_del(txn, c->db_dirty, &key, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	return 0;
}

/* The pack's one transaction: the queue entry, then each frame's record. */
static int commit_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct commit_arg *a = arg;
	int rc = record_pack(c, txn, a->p, a->seq);

	for (size_t i = 0; rc == 0 && i < a->p->n; i++)
		rc = record_frame(c, txn, a->p, a->seq, &a->p->e[i]);
	return rc;
}

struct undirty_arg {
	uint64_t ino;
	const uint64_t *blk;
	size_t n;
};

static int undirty_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct undirty_arg *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		uint8_t k[16];
		MDB_val key = { sizeof(k), k };
		int rc;

		cache_blk_key(k, a->ino, a->blk[i]);
		rc = mdb_del(txn, c->db_dirty, &key, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return cache_meta_err(rc);
	}
	return 0;
}

/*
 * The kept entries p->e[from, to), all of node n: drop the dirty entries
 * of the blocks that were not written again since take_block() read
 * them.  Under n->lock that is exact: every write puts its blocks back
 * into n->dblk under it (cache_blk_prepare_write()), and the commit here
 * runs before the lock is let go, so no write slips in between.
 */
static void settle_node(struct cache *c, struct packer *p, size_t from,
			size_t to)
{
	struct cnode *n = p->e[from].n;
	uint64_t sblk[64], *blk = sblk;
	struct undirty_arg a = { n->ino, NULL, 0 };

	if (to - from > 64 && !(blk = malloc((to - from) * sizeof(*blk))))
		return;		/* kept: sealed once more, later */
	lock_take(&n->lock);
	for (size_t i = from; i < to; i++) {
		const struct pack_entry *e = &p->e[i];

		if (e->kept && atomic_load(&n->cuts) == e->cuts &&
		    !cache_blkset_has(&n->dblk, e->blk))
			blk[a.n++] = e->blk;
	}
	a.blk = blk;
	if (a.n)
		cache_meta_write(c, undirty_txn, &a);	/* failing, the
							   entries stay */
	lock_drop(&n->lock);
	if (blk != sblk)
		free(blk);
}

/*
 * After the pack's commit: the per-node generation of record_frame() is
 * coarse, and a file written on while its earlier blocks are sealed (one
 * larger than the cache, in one open) moves it all the time.  Its
 * blocks must still become clean, or they could never be evicted.
 */
static void settle_kept(struct cache *c, struct packer *p)
{
	size_t i = 0;

	while (i < p->n) {
		size_t j = i + 1;
		int any = p->e[i].kept;

		for (; j < p->n && p->e[j].n == p->e[i].n; j++)
			any |= p->e[j].kept;
		if (any)
			settle_node(c, p, i, j);
		i = j;
	}
}

/* Encrypt frame e[fin + i] of p for its place. */
static void finish_one(struct cache *c, struct packer *p, size_t i)
{
	const struct pack_entry *e = &p->e[p->fin + i];
	char fid[PACK_KEY_LEN + 32];
	int rc, none = 0;

	snprintf(fid, sizeof(fid), "%s@%" PRIu64, p->key, e->off);
	rc = crypt_seal_finish(c->seal->key, c->fsid, fid,
			       (uint8_t *)buf_mut(&p->data) + e->off, e->len);
	if (rc)
		atomic_compare_exchange_strong(&p->fin_rc, &none, rc);
}

/* Encrypt the frames placed since the last call, side by side. */
static int finish_frames(struct cache *c, struct packer *p)
{
	int rc;

	if (p->fin == p->n)
		return 0;
	atomic_store(&p->fin_rc, 0);
	crew_run(c->seal->crew, finish_one, c, p, p->n - p->fin,
		 buf_len(&p->data) - p->e[p->fin].off);
	rc = atomic_load(&p->fin_rc);
	if (rc == 0)
		p->fin = p->n;
	else	/* the frames left in the clear go with the pack */
		OPENSSL_cleanse((uint8_t *)buf_mut(&p->data) +
				p->e[p->fin].off,
				buf_len(&p->data) - p->e[p->fin].off);
	return rc;
}

/* Put the pack's blocks back into their nodes' dirty sets (packer_drop()
 * then lets the nodes go). */
static void pack_undo(struct cache *c, struct packer *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct cnode *n = p->e[i].n;

		lock_take(&n->lock);
		if (cache_blkset_add(&n->dblk, p->e[i].blk) > 0)
			atomic_fetch_add(&c->inbox.dirty_blocks, 1);
		lock_drop(&n->lock);
	}
}

/* Store and record the pack; the entries' blocks stay dirty on failure. */
static int pack_commit(struct cache *c, struct packer *p)
{
	struct seal *s = c->seal;
	struct commit_arg a = { p, 0 };
	int rc;

	if (p->n == 0)
		return 0;
	rc = finish_frames(c, p);
	if (rc == 0)
		rc = write_pack(c, p);
	if (rc == 0) {
		lock_take(&s->lock);
		a.seq = s->next_seq++;
		lock_drop(&s->lock);
		rc = cache_meta_write(c, commit_txn, &a);
		if (rc) {
			char name[PACK_FILE_LEN + 1];

			cache_pack_file(p->id, name);
			unlinkat(c->dirfd, name, 0);
		}
	}
	if (rc) {
		pack_undo(c, p);
		PHI_LOG(PHI_LOG_ERR, "cannot store sealed object %s: %s; "
			"will retry", p->key, phi_strerror(rc));
	} else {
		settle_kept(c, p);
		cache_packs_used_add(c, buf_len(&p->data));
		p->packs++;
		p->bytes_out += buf_len(&p->data);
		lock_take(&s->lock);
		pthread_cond_broadcast(&s->done);	/* uploaders */
		lock_drop(&s->lock);
	}
	packer_drop(c, p);
	return rc;
}

static int packer_begin(struct packer *p)
{
	int rc = crypt_random_bytes(p->id, sizeof(p->id));

	if (rc == 0)
		cache_pack_key(p->id, p->key);
	return rc;
}

/* --- the sealing pass -------------------------------------------------- */

struct due {
	int force;		/* sync: every dirty block */
	int pressure;		/* past dirty_limit */
	uint64_t now;
	uint64_t *closed;	/* sorted */
	size_t nclosed;
};

static int is_due(struct cache *c, struct cnode *n, const struct due *d)
{
	if (d->force || d->pressure || n->last_write_ns == 0)
		return 1;
	if (d->nclosed && bsearch(&n->ino, d->closed, d->nclosed,
				  sizeof(uint64_t), cache_cmp_u64))
		return 1;
	return d->now - n->last_write_ns >= c->seal->delay_ns;
}

/* Copy n's dirty set into todo if n is due to be sealed; 1 if it is not. */
static int due_blocks(struct cache *c, struct cnode *n, const struct due *d,
		      struct blkset *todo)
{
	int rc;

	lock_take(&n->lock);
	rc = cache_node_load(c, n);
	if (rc == 0 && !is_due(c, n, d))
		rc = 1;
	if (rc == 0)
		rc = cache_node_fold(c, n);	/* the size the commit checks */
	if (rc == 0)		/* entries a commit kept to be safe */
		rc = cache_blk_reload_dirty(c, n);
	for (size_t i = 0; rc == 0 && i < n->dblk.n; i++)
		rc = cache_blkset_add(todo, n->dblk.v[i]) < 0 ? -ENOMEM : 0;
	lock_drop(&n->lock);
	return rc;
}

/* Append len bytes of block blk of n to the stage at *at, zeros past a
 * short file. */
static int read_plain(struct cache *c, struct packer *p, struct cnode *n,
		      uint64_t blk, uint64_t len, size_t *at)
{
	uint64_t bs = c->block_size, bad = 0;
	int rc;

	*at = buf_len(&p->stage);
	rc = buf_reserve(&p->stage, len);
	if (rc == 0)
		rc = cache_sect_read(c, n->fd, n->ino,
				     (uint8_t *)buf_mut(&p->stage) + *at,
				     blk * bs, len, &bad);
	if (rc == PHI_EAUTHFAIL) {
		PHI_LOG(PHI_LOG_ERR, "inode %" PRIu64 ": local sector %" PRIu64
			" of a dirty block fails its seal; the block is not "
			"sealed", n->ino, bad);
		rc = -EIO;
	}
	if (rc)
		return rc;
	buf_setlen(&p->stage, *at + len);
	return 0;
}

/* Under n->lock, read block blk into the batch as t and move it from
 * dirty to sealing; 1: skip. */
static int take_block(struct cache *c, struct packer *p, struct cnode *n,
		      uint64_t blk, struct taken *t)
{
	uint64_t bs = c->block_size, len;
	int rc = 0;

	lock_take(&n->lock);
	if (!cache_blkset_has(&n->dblk, blk)) {
		lock_drop(&n->lock);
		return 1;
	}
	len = blk * bs >= n->size ? 0 :
	      n->size - blk * bs < bs ? n->size - blk * bs : bs;
	if (len)
		rc = read_plain(c, p, n, blk, len, &t->at);
	if (rc) {
		lock_drop(&n->lock);
		return rc;
	}
	cache_blkset_del(&n->dblk, blk);
	/* what the record will say is what the data file holds */
	cache_blkset_add(&n->checked, blk);
	atomic_fetch_sub(&c->inbox.dirty_blocks, 1);
	t->n = n;
	t->blk = blk;
	t->len = (size_t)len;
	t->gen = atomic_load(&n->gen);
	t->cuts = atomic_load(&n->cuts);
	if (len && cache_blkset_add(&n->sealing, blk) < 0) {
		if (cache_blkset_add(&n->dblk, blk) > 0)
			atomic_fetch_add(&c->inbox.dirty_blocks, 1);
		buf_setlen(&p->stage, t->at);
		lock_drop(&n->lock);
		return -ENOMEM;
	}
	/* no longer a dirty block in the cache's reckoning (used_total()),
	 * but the frame it will be, at most */
	if (len)
		atomic_fetch_add(&c->sealing_bytes, crypt_seal_bound(len));
	lock_drop(&n->lock);
	/* past the end: nothing to seal; the entry goes with the next cut
	 * or seal of the file */
	return len == 0;
}

/* t, taken but not sealed: dirty again, and its node let go. */
static void give_back(struct cache *c, const struct taken *t)
{
	struct cnode *n = t->n;

	lock_take(&n->lock);
	cache_blkset_del(&n->sealing, t->blk);
	if (cache_blkset_add(&n->dblk, t->blk) > 0)
		atomic_fetch_add(&c->inbox.dirty_blocks, 1);
	lock_drop(&n->lock);
	atomic_fetch_sub(&c->sealing_bytes, crypt_seal_bound(t->len));
	cache_node_release(c, n);
}

/* Compress the batch's block i into its place in frames. */
static void prepare_one(struct cache *c, struct packer *p, size_t i)
{
	struct taken *t = &p->t[i];
	const uint8_t *plain = (const uint8_t *)buf_data(&p->stage) + t->at;

	t->crc = phi_crc32c(0, plain, t->len);
	t->rc = crypt_seal_prepare(c->seal->key, plain, t->len,
				   (uint8_t *)buf_mut(&p->frames) + t->fat,
				   &t->flen);
}

/* Append t's prepared frame to the pack (not encrypted yet). */
static int place(struct cache *c, struct packer *p, const struct taken *t)
{
	size_t off;
	int rc;

	if (p->n == 0 && buf_len(&p->data) == 0) {
		rc = packer_begin(p);
		if (rc)
			return rc;
		p->opened_ns = phi_mono_ns();
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		void *v = realloc(p->e, cap * sizeof(*p->e));

		if (!v)
			return -ENOMEM;
		p->e = v;
		p->cap = cap;
	}
	off = buf_len(&p->data);
	rc = buf_reserve(&p->data, t->flen);
	if (rc)
		return rc;
	memcpy((uint8_t *)buf_mut(&p->data) + off,
	       (const uint8_t *)buf_data(&p->frames) + t->fat, t->flen);
	buf_setlen(&p->data, off + t->flen);
	p->e[p->n++] = (struct pack_entry){ t->n, t->blk, off,
					    (uint32_t)t->flen,
					    (uint32_t)t->len, t->crc,
					    t->gen, t->cuts, 0 };
	/* the pack holds it now, in place of the most it could have been */
	atomic_fetch_sub(&c->sealing_bytes, crypt_seal_bound(t->len) - t->flen);
	p->bytes_in += t->len;
	return 0;
}

/*
 * Seal the batch into p: compress its blocks side by side, place their
 * frames in order, encrypt them side by side, and store each pack that
 * fills.  A block that fails is logged with its inode and goes back to
 * dirty, for the next pass.  Returns PHI_ELATCHED if the store latched,
 * else 0: the batch holds blocks of several files, and the one being
 * taken when it filled is not to blame.
 */
static int seal_batch(struct cache *c, struct packer *p)
{
	size_t fat = 0;
	int rc, latched = 0;

	if (p->nt == 0)		/* and every frame placed is encrypted */
		return 0;
	for (size_t i = 0; i < p->nt; i++) {
		p->t[i].fat = fat;
		fat += crypt_seal_bound(p->t[i].len);
	}
	buf_reset(&p->frames);
	rc = buf_reserve(&p->frames, fat);
	if (rc == 0) {
		buf_setlen(&p->frames, fat);
		crew_run(c->seal->crew, prepare_one, c, p, p->nt,
			 buf_len(&p->stage));
	}
	for (size_t i = 0; i < p->nt; i++) {
		const struct taken *t = &p->t[i];
		int r = rc ? rc : t->rc;

		if (r == 0)
			r = place(c, p, t);
		if (r) {
			PHI_LOG(PHI_LOG_ERR, "cannot seal inode %" PRIu64 ": %s; "
				"will retry", t->n->ino, phi_strerror(r));
			give_back(c, t);
		} else if (buf_len(&p->data) >= c->seal->pack_size) {
			r = pack_commit(c, p);	/* logs its failures */
		}
		if (r == PHI_ELATCHED)
			latched = r;
	}
	/* the open pack keeps encrypted frames only */
	rc = finish_frames(c, p);
	if (rc) {
		PHI_LOG(PHI_LOG_ERR, "cannot seal for object %s: %s; will "
			"retry", p->key, phi_strerror(rc));
		pack_undo(c, p);
		packer_drop(c, p);
	}
	buf_reset(&p->frames);
	buf_reset(&p->stage);
	p->nt = 0;
	return latched;
}

/* Give the batch's blocks back, unsealed. */
static void batch_drop(struct cache *c, struct packer *p)
{
	for (size_t i = 0; i < p->nt; i++)
		give_back(c, &p->t[i]);
	p->nt = 0;
	buf_reset(&p->stage);
}

/* Take dirty block blk of n into the batch, and seal the batch once it
 * holds what the pack has room for. */
static int seal_block(struct cache *c, struct packer *p, struct cnode *n,
		      uint64_t blk)
{
	uint64_t room;
	int rc;

	if (p->nt == p->tcap) {
		size_t cap = p->tcap ? 2 * p->tcap : 16;
		void *v = realloc(p->t, cap * sizeof(*p->t));

		if (!v)
			return -ENOMEM;
		p->t = v;
		p->tcap = cap;
	}
	rc = take_block(c, p, n, blk, &p->t[p->nt]);
	if (rc)
		return rc > 0 ? 0 : rc;
	cache_node_hold(c, n);
	p->nt++;
	room = c->seal->pack_size > buf_len(&p->data) ?
	       c->seal->pack_size - buf_len(&p->data) : 0;
	if (room > BATCH_BYTES)
		room = BATCH_BYTES;
	if (p->nt == BATCH_MAX || buf_len(&p->stage) >= room)
		return seal_batch(c, p);
	return 0;
}

/* Seal the due dirty blocks of ino into p. */
static int seal_inode(struct cache *c, struct packer *p, uint64_t ino,
		      const struct due *d)
{
	struct cnode *n = cache_node_acquire(c, ino);
	struct blkset todo = { 0 };
	int rc;

	if (!n)
		return -ENOMEM;
	rc = due_blocks(c, n, d, &todo);
	for (size_t i = 0; rc == 0 && i < todo.n; i++)
		rc = seal_block(c, p, n, todo.v[i]);
	cache_blkset_free(&todo);
	cache_node_release(c, n);
	return rc > 0 ? 0 : rc;
}

/* Inodes with entries in `dirty`, ascending.  *out is malloc()ed. */
static size_t dirty_inodes(struct cache *c, uint64_t **out)
{
	uint64_t *v = NULL, next = 0;
	size_t n = 0, cap = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return 0;
	if (mdb_cursor_open(txn, c->db_dirty, &cur) == 0) {
		for (;;) {
			uint8_t k[16];
			MDB_val key = { sizeof(k), k }, val;

			key_put_u64(k, next);
			key_put_u64(k + 8, 0);
			if (mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE) ||
			    key.mv_size != 16)
				break;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 256;
				void *p = realloc(v, ncap * sizeof(*v));

				if (!p)
					break;
				v = p;
				cap = ncap;
			}
			v[n] = key_get_u64(key.mv_data);
			next = v[n++] + 1;
			if (next == 0)
				break;
		}
		mdb_cursor_close(cur);
	}
	cache_meta_read_end(txn);
	*out = v;
	return n;
}

static void seal_pass(struct cache *c, struct packer *p, int force)
{
	struct due d = { force, 0, phi_mono_ns(), NULL, 0 };
	uint64_t *inos;
	size_t count;
	int rc = 0;

	d.nclosed = cache_inbox_take_closed(c, &d.closed);
	if (d.nclosed)	/* qsort() of NULL is undefined, even for 0 */
		qsort(d.closed, d.nclosed, sizeof(uint64_t), cache_cmp_u64);
	d.pressure = cache_inbox_over_dirty_limit(c, c->block_size);
	/* Dirty blocks into `dirty`: every node's when all are due, else
	 * those of the files just closed.  The folder thread folds the
	 * rest within FOLD_INTERVAL_MS, well before seal_delay makes them
	 * due.  A walk of the whole table per close made small-file
	 * creation slow down as the table grew. */
	if (force || d.pressure)
		cache_node_fold_all(c);
	else if (d.nclosed)
		cache_node_fold_inos(c, d.closed, d.nclosed);
	count = dirty_inodes(c, &inos);
	for (size_t i = 0; i < count && rc != PHI_ELATCHED; i++) {
		int r = seal_inode(c, p, inos[i], &d);

		/* A file unlinked and freed since the list was made is a
		 * normal event: its blocks went with it.  Any other failure
		 * leaves that file's blocks dirty for the next pass and the
		 * other files' frames in the pack. */
		if (r && r != -ENOENT && r != PHI_ELATCHED)
			PHI_LOG(PHI_LOG_ERR, "cannot seal inode %llu: %s; will "
				"retry", (unsigned long long)inos[i],
				phi_strerror(r));
		if (r && r != -ENOENT && rc == 0)
			rc = r;
	}
	/* what the batch holds is in the pack before it may be stored */
	if (rc != PHI_ELATCHED) {
		int r = seal_batch(c, p);

		if (r && rc == 0)
			rc = r;
	}
	/* A pack that is not full stays open across passes for a while,
	 * so that files saved one by one still share objects. */
	if (rc != PHI_ELATCHED && (force || phi_mono_ns() - p->opened_ns >=
				   PACK_MAX_AGE_MS * 1000000ull))
		pack_commit(c, p);
	else if (rc == PHI_ELATCHED) {
		batch_drop(c, p);
		packer_drop(c, p);
	}
	free(inos);
	free(d.closed);
}

/* --- sync -------------------------------------------------------------- */

struct sync_arg {
	uint64_t mark, seq, mseq;
};

static int sync_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct sync_arg *a = arg;
	MDB_val k1 = { 9, (void *)"sync_mark" }, v1 = { 8, &a->mark };
	MDB_val k2 = { 8, (void *)"sync_seq" }, v2 = { 8, &a->seq };
	MDB_val k3 = { 9, (void *)"sync_mseq" }, v3 = { 8, &a->mseq };
	int rc = mdb_put(txn, c->db_super, &k1, &v1, 0);

	if (rc == 0)
		rc = mdb_put(txn, c->db_super, &k2, &v2, 0);
	if (rc == 0)
		rc = mdb_put(txn, c->db_super, &k3, &v3, 0);
	return cache_meta_err(rc);
}

/* Packs up to seq and metadata objects up to mseq not everywhere yet. */
static uint64_t waiting_upto(struct cache *c, MDB_txn *txn, uint64_t seq,
			     uint64_t mseq)
{
	if (!c->have_blockdbs)
		return 0;
	return cache_upload_queue_waiting(c, txn, seq, mseq) +
	       cache_mend_waiting(c, txn);
}

int cache_sync_regions(struct cache *c, unsigned timeout_ms)
{
	struct seal *s = c->seal;
	uint64_t start = phi_mono_ns(), deadline;
	int rc = 0;

	if (!s)
		return 0;
	deadline = timeout_ms ? start + timeout_ms * 1000000ull : UINT64_MAX;
	cache_request_sync(c);
	cache_inbox_kick(c);
	for (;;) {
		struct timespec ts;
		uint64_t mark, seq, mseq, waiting = 0;
		MDB_txn *txn;

		if (atomic_load(&c->latched))
			return PHI_ELATCHED;
		lock_take(&s->lock);
		mark = s->sync_mark;
		seq = s->sync_seq;
		mseq = s->sync_mseq;
		lock_drop(&s->lock);
		if (mark > start) {
			txn = cache_meta_read_begin(c, &rc);
			if (!txn)
				return rc;
			waiting = waiting_upto(c, txn, seq, mseq);
			cache_meta_read_end(txn);
			if (waiting == 0)
				return 0;
		}
		if (phi_mono_ns() >= deadline)
			return -ETIMEDOUT;
		ts = phi_mono_deadline(50 * 1000000ull);
		lock_take(&s->lock);
		pthread_cond_timedwait(&s->done, &s->lock, &ts);
		lock_drop(&s->lock);
	}
}

/* --- the thread -------------------------------------------------------- */

static void maybe_evict(struct cache *c)
{
	uint64_t used = atomic_load(&c->used) + atomic_load(&c->packs_used);
	uint64_t high = c->size_limit / 10 * 9, low = c->size_limit / 10 * 8;

	if (used > high)
		cache_lru_evict(c, used - low);
}

/* Send the metadata journal out, and wake the syncs waiting for it. */
static void flush_journal(struct cache *c)
{
	struct seal *s = c->seal;
	uint64_t mseq = 0;
	int rc = cache_journal_flush(c, &mseq);

	if (rc)
		PHI_LOG(PHI_LOG_ERR, "metadata journal: %s", phi_strerror(rc));
	if (mseq) {
		lock_take(&s->lock);
		pthread_cond_broadcast(&s->done);
		lock_drop(&s->lock);
	}
}

/* Record what a sync pass begun at mark waits for, and wake its callers. */
static void mark_synced(struct cache *c, uint64_t mark)
{
	struct seal *s = c->seal;
	struct sync_arg a = { mark, 0, 0 };
	MDB_txn *txn;
	int rc;

	lock_take(&s->lock);
	a.seq = s->next_seq - 1;
	lock_drop(&s->lock);
	txn = cache_meta_read_begin(c, &rc);
	if (txn) {
		MDB_val k = { 8, (void *)"meta_seq" }, v;

		if (mdb_get(txn, c->db_super, &k, &v) == 0 && v.mv_size == 8)
			memcpy(&a.mseq, v.mv_data, 8);
		cache_meta_read_end(txn);
	}
	if (cache_meta_write(c, sync_txn, &a) == 0) {
		lock_take(&s->lock);
		s->sync_mark = mark;
		s->sync_seq = a.seq;
		s->sync_mseq = a.mseq;
		pthread_cond_broadcast(&s->done);
		lock_drop(&s->lock);
	}
}

/* Store the pack begun and free the packer, as the thread ends. */
static void sealer_finish(struct cache *c, struct packer *p)
{
	/* Dirty blocks not sealed yet stay in the `dirty` db, and the next
	 * mount seals them first thing, so that unmount does not wait for
	 * sealing. */
	if (!atomic_load(&c->latched)) {
		seal_batch(c, p);
		pack_commit(c, p);
	}
	batch_drop(c, p);
	packer_drop(c, p);
	cache_lru_persist_fetched(c);
	buf_release(&p->data);
	buf_release(&p->stage);
	buf_release(&p->frames);
	free(p->e);
	free(p->t);
}

/* Drop the files closed since the last pass, unsealed (latched). */
static void free_closed(struct cache *c)
{
	uint64_t *closed;

	cache_inbox_take_closed(c, &closed);
	free(closed);
}

/*
 * Whether this pass leaves the files closed since the last one for later
 * (seal_quiet): files are still being written (the last write was less
 * than quiet_ns ago), so that sealing and uploading what a copy closed
 * does not slow the copy down, unless the first pass left so was
 * delay_ns ago or dirty bytes are past dirty_limit.  A sync, or
 * metadata due, does not ask.  *since: when the first pass left them,
 * 0 if none.
 */
static int yield_to_writers(struct cache *c, uint64_t now, uint64_t *since)
{
	struct seal *s = c->seal;
	uint64_t last = cache_inbox_last_write(c);

	/* a write stamped after now counts as a write just now */
	if (s->quiet_ns == 0 || last == 0 || last + s->quiet_ns <= now ||
	    cache_inbox_over_dirty_limit(c, c->block_size)) {
		*since = 0;
		return 0;
	}
	if (*since == 0)
		*since = now;
	if (now - *since >= s->delay_ns) {
		*since = 0;
		return 0;
	}
	return 1;
}

/* The sealer thread: each tick, seal, send metadata, answer a sync, evict. */
static void *sealer_main(void *arg)
{
	struct cache *c = arg;
	struct seal *s = c->seal;
	struct packer p;
	/* sync_req starts at 0 with s: a request made before this thread
	 * ran is not lost */
	unsigned handled = 0;
	uint64_t last_journal = phi_mono_ns(), sealed_seen = 0, yielded = 0;
	struct kept_buf keep;
	int yield = 0;

	memset(&p, 0, sizeof(p));
	buf_init(&p.data, SIZE_MAX);
	buf_init(&p.stage, SIZE_MAX);
	buf_init(&p.frames, SIZE_MAX);
	kept_buf_init(&keep, &p.data, &p.stage, &p.frames, last_journal);
	/* while yielding, look again once the writing may have paused */
	while (!cache_inbox_wait(c, handled, yield ? (unsigned)(s->quiet_ns /
				 1000000ull) + 1 : SEAL_TICK_MS, yield)) {
		unsigned req;
		uint64_t mark;
		int force, jdue, idle;

		req = atomic_load(&c->inbox.sync_req);
		force = req != handled;
		if (force)
			cache_upload_retry_now(c);	/* a sync does not wait
							   out a backoff */
		mark = phi_mono_ns();
		/* Metadata goes out every metadata_interval: everything
		 * written is sealed first, so that a segment never names a
		 * block whose content is not in some pack. */
		jdue = force || (mark - last_journal >= s->journal_ns &&
				 cache_journal_pending(c));
		yield = !jdue && yield_to_writers(c, mark, &yielded);
		if (atomic_load(&c->latched))
			free_closed(c);	/* nothing to seal: do not wake
					   again for them */
		else if (!yield)
			seal_pass(c, &p, jdue);
		/* No pack open and nothing sealed for KEPT_IDLE_NS: keep no
		 * pack-sized buffers while idle.  While writes go on they
		 * are kept: faulting fresh ones in was a tenth of the
		 * daemon's CPU while a CT series was copied in. */
		if (p.bytes_in != sealed_seen) {
			sealed_seen = p.bytes_in;
			kept_buf_take(&keep);
		}
		idle = kept_buf_idle(&keep, mark);
		if (p.n == 0 && idle)
			kept_buf_trim(&keep);
		if (jdue && !atomic_load(&c->latched)) {
			flush_journal(c);
			last_journal = mark;
		}
		cache_lru_persist_fetched(c);
		cache_upload_record_health(c);
		if (force) {
			mark_synced(c, mark);
			handled = req;
			/* a sync is a point of rest: what the daemon keeps
			 * for the next pack or fetch goes back now (the
			 * uploaders give theirs back once idle, seeing the
			 * new sync_mark) */
			if (p.n == 0)
				kept_buf_trim(&keep);
			cache_packget_trim(c);
		}
		if (atomic_load(&c->inbox.sync_req) != handled)
			cache_upload_retry_now(c);	/* nor one asked for
							   during the pass */
		maybe_evict(c);
	}
	sealer_finish(c, &p);
	return NULL;
}

static int load_state(struct cache *c)
{
	struct seal *s = c->seal;
	MDB_val k = { 8, (void *)"next_seq" }, v;
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	s->next_seq = 1;
	if (mdb_get(txn, c->db_super, &k, &v) == 0 && v.mv_size == 8)
		memcpy(&s->next_seq, v.mv_data, 8);
	cache_meta_read_end(txn);
	return 0;
}

int cache_seal_start(struct cache *c, const struct cache_config *cfg,
		     unsigned flags)
{
	struct seal *s;
	pthread_condattr_t ca;
	int rc;

	if (!cfg->regions || c->rdonly)
		return 0;
	if (!cfg->key)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->regions = cfg->regions;
	s->key = cfg->key;
	s->delay_ns = (uint64_t)(cfg->seal_delay_ms ? cfg->seal_delay_ms :
				 DEFAULT_DELAY_MS) * 1000000ull;
	s->quiet_ns = (uint64_t)cfg->seal_quiet_ms * 1000000ull;
	s->pack_size = cfg->pack_size ? cfg->pack_size : DEFAULT_PACK;
	s->journal_ns = (uint64_t)(cfg->metadata_interval_ms ?
				   cfg->metadata_interval_ms : 30000) *
			1000000ull;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->done, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->digest_done, NULL);
	c->seal = s;
	if (mkdirat(c->dirfd, "packs", 0700) && errno != EEXIST)
		return -errno;
	if (mkdirat(c->dirfd, "journal", 0700) && errno != EEXIST)
		return -errno;
	if (mkdirat(c->dirfd, "audit", 0700) && errno != EEXIST)
		return -errno;
	rc = load_state(c);
	if (rc == 0)
		rc = cache_upload_regions_load(c, cfg->region_names);
	if (rc)
		return rc;
	if (flags & CACHE_OPEN_FETCH_ONLY) {
		c->journal = 0;		/* a scratch copy: nothing goes out */
		return 0;
	}
	rc = cache_mend_load(c, cfg);
	if (rc)
		return rc;
	/* files a crash left between writing and recording, or after
	 * their last upload */
	atomic_store(&c->packs_used, cache_upload_queue_sweep(c));
	cache_inbox_open(c, cfg->dirty_limit ? cfg->dirty_limit :
			 c->size_limit / 4);
	rc = crew_start(cfg->seal_threads, &s->crew);
	if (rc)
		return rc;
	rc = pthread_create(&s->sealer, NULL, sealer_main, c);
	if (rc)
		return -rc;
	pthread_setname_np(s->sealer, "phifs-seal");
	s->sealer_running = 1;
	rc = cache_upload_start(c, cfg->uploaders ? cfg->uploaders : 4);
	return rc ? rc : cache_mend_start(c);
}

void cache_seal_stop(struct cache *c)
{
	struct seal *s = c->seal;

	if (!s)
		return;
	cache_inbox_stop(c);
	lock_take(&s->lock);
	s->stop = 1;
	pthread_cond_broadcast(&s->done);
	lock_drop(&s->lock);
	if (s->sealer_running)
		pthread_join(s->sealer, NULL);
	s->sealer_running = 0;
	crew_free(s->crew);
	s->crew = NULL;
	for (int i = 0; i < s->nuploaders; i++)
		pthread_join(s->uploader[i], NULL);
	s->nuploaders = 0;
	cache_mend_join(c);
	cache_upload_record_health(c);
	cache_lru_flush(c);
}

void cache_seal_free(struct cache *c)
{
	struct seal *s = c->seal;

	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->done);
	pthread_cond_destroy(&s->digest_done);
	free(s->inflight);
	free(s);
	c->seal = NULL;
}

/* --- status ------------------------------------------------------------ */

static uint64_t count(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat st;

	return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

/* Bad copies recorded for repair, by region. */
static void count_bad(struct cache *c, MDB_txn *txn, struct cache_stats *s,
		      const uint32_t *bits)
{
	MDB_val key, val;
	MDB_cursor *cur;

	if (mdb_cursor_open(txn, c->db_repair, &cur))
		return;
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		if (key.mv_size != 12)
			continue;
		for (int i = 0; i < s->nregions; i++)
			if (((uint8_t *)key.mv_data)[11] == bits[i])
				s->regions[i].bad++;
	}
	mdb_cursor_close(cur);
}

/* Sealed blocks still cached and evicted. */
static void count_blocks(struct cache *c, MDB_txn *txn, struct cache_stats *s)
{
	MDB_val key, val;
	MDB_cursor *cur;

	if (mdb_cursor_open(txn, c->db_blocks, &cur))
		return;
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		struct block_rec br;

		if (val.mv_size != sizeof(br))
			continue;
		memcpy(&br, val.mv_data, sizeof(br));
		if (br.flags & BLOCK_RESIDENT)
			s->resident_blocks++;
		else
			s->evicted_blocks++;
	}
	mdb_cursor_close(cur);
}

/*
 * What the dirty blocks hold: of each, the part below its file's size as
 * the inode record has it (a block past the end holds nothing).  The
 * `dirty` db is ordered by inode, so each record is read once.
 */
static void count_dirty(struct cache *c, MDB_txn *txn, struct cache_stats *s)
{
	uint64_t bs = c->block_size, ino = 0, size = 0;
	MDB_val key, val;
	MDB_cursor *cur;

	if (mdb_cursor_open(txn, c->db_dirty, &cur))
		return;
	while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
		uint64_t k, blk;
		struct inode_rec rec;

		if (key.mv_size != 16)
			continue;
		k = key_get_u64(key.mv_data);
		blk = key_get_u64((const uint8_t *)key.mv_data + 8);
		if (k != ino) {
			int rc = cache_inode_get(c, txn, ino = k, &rec, NULL,
						 NULL);

			/* without the key (sealed): whole blocks */
			size = rc == 0 ? rec.size : rc == -EACCES ? UINT64_MAX
			       : 0;
		}
		if (blk < size / bs)
			s->dirty_data_bytes += bs;
		else if (blk == size / bs)
			s->dirty_data_bytes += size % bs;
	}
	mdb_cursor_close(cur);
}

/* The last sync pass: when it began, and what of it is still waiting. */
static void sync_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s)
{
	MDB_val key = { 9, (void *)"sync_mark" }, val;
	uint64_t seq, mseq = 0;

	if (mdb_get(txn, c->db_super, &key, &val) == 0 && val.mv_size == 8)
		memcpy(&s->sync_mark_ns, val.mv_data, 8);
	key.mv_size = 8;
	key.mv_data = (void *)"sync_seq";
	if (mdb_get(txn, c->db_super, &key, &val) || val.mv_size != 8)
		return;
	memcpy(&seq, val.mv_data, 8);
	key.mv_size = 9;
	key.mv_data = (void *)"sync_mseq";
	if (mdb_get(txn, c->db_super, &key, &val) == 0 && val.mv_size == 8)
		memcpy(&mseq, val.mv_data, 8);
	s->sync_waiting = waiting_upto(c, txn, seq, mseq);
}

int cache_seal_stats(struct cache *c, MDB_txn *txn, struct cache_stats *s)
{
	uint32_t bits[SEAL_MAX_REGIONS];

	if (!c->have_blockdbs)
		return 0;
	s->dirty_blocks = count(txn, c->db_dirty);
	count_dirty(c, txn, s);
	s->dirty_bytes = s->dirty_blocks * c->block_size;
	cache_upload_stats(c, txn, s, bits);
	count_bad(c, txn, s, bits);
	count_blocks(c, txn, s);
	cache_mend_stats(c, txn, s);
	sync_stats(c, txn, s);
	return 0;
}
