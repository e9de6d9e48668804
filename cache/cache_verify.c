/*
 * cache_verify.c - end-to-end checks for `phifs fsck --scrub`: the local
 * store against its records, and every file against a region's latest
 * metadata, byte for byte.
 *
 * What is proved, for each region whose history was rebuilt into a view
 * (cache_recover()):
 *
 *   names     every directory entry of the local filesystem is in the
 *             view, naming the same inode with the same type, and the
 *             view has no entry the local filesystem lacks;
 *   files     each regular file has the same size and the same block map
 *             (the same sealed frames) in both;
 *   content   every frame the view names is fetched from that region,
 *             authenticated, and its plaintext compared with the local
 *             bytes where the block is resident (a block that is gone
 *             locally reads that very frame, so naming it is enough).
 *
 * Local changes not sealed or replicated yet (dirty blocks, queued
 * objects, records changed since the last journal segment) can make the
 * names, sizes and maps differ; they are reported as pending, not as
 * problems.  Local bytes that differ from a frame both sides name are
 * always a problem: that is a block recorded clean whose content is not
 * what the regions hold.
 *
 * Both checks work on read-only opens, also while the filesystem is
 * mounted: a block found wrong is looked up again in a newer transaction
 * and left alone if it became dirty meanwhile (a write records that
 * before it touches the data file, cache_blk.c).
 *
 * Reports name paths: they go to the user running fsck, never to a log.
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
#include <unistd.h>

/* --- paths, for the report --------------------------------------------- */

/* One name of each inode: the first directory entry found for it. */
struct pname {
	uint64_t ino, parent;
	char *name;
};

struct paths {
	struct pname *v;
	size_t n, cap;
};

static int cmp_pname(const void *a, const void *b)
{
	const struct pname *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void paths_free(struct paths *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].name);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static int paths_load(struct cache *c, MDB_txn *txn, struct paths *p)
{
	MDB_cursor *cur;
	MDB_val key, val;
	size_t mark = cache_rec_mark();
	int rc;

	memset(p, 0, sizeof(*p));
	rc = mdb_cursor_open(txn, c->db_dirents, &cur);
	if (rc)
		return cache_meta_err(rc);
	while (cache_rec_release(mark),
	       (rc = cache_rec_cursor(c, JDB_DIRENTS, cur, &key, &val,
				      MDB_NEXT)) == 0) {
		struct dirent_rec d;

		if (key.mv_size <= 8 || val.mv_size != sizeof(d))
			continue;
		memcpy(&d, val.mv_data, sizeof(d));
		if (p->n == p->cap) {
			size_t cap = p->cap ? 2 * p->cap : 256;
			void *v = realloc(p->v, cap * sizeof(*p->v));

			if (!v) {
				rc = ENOMEM;
				break;
			}
			p->v = v;
			p->cap = cap;
		}
		p->v[p->n].ino = d.ino;
		p->v[p->n].parent = key_get_u64(key.mv_data);
		p->v[p->n].name = strndup((char *)key.mv_data + 8,
					  key.mv_size - 8);
		if (!p->v[p->n].name) {
			rc = ENOMEM;
			break;
		}
		p->n++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		paths_free(p);
		return rc == ENOMEM ? -ENOMEM : cache_meta_err(rc);
	}
	/* stable: the first name in key order stays first for its inode */
	if (p->n)
		qsort(p->v, p->n, sizeof(*p->v), cmp_pname);
	return 0;
}

static const struct pname *paths_find(const struct paths *p, uint64_t ino)
{
	struct pname k = { .ino = ino };
	const struct pname *e = p->n ? bsearch(&k, p->v, p->n, sizeof(*p->v),
					       cmp_pname) : NULL;

	while (e && e > p->v && e[-1].ino == ino)
		e--;
	return e;
}

/* The path of ino into out ("/a/b"), or "inode N" when it has no name. */
static void path_of(const struct paths *p, uint64_t ino, char *out,
		    size_t size)
{
	char tmp[4096];
	size_t len = 0;
	int depth = 0;

	if (ino == CACHE_ROOT_INO) {
		snprintf(out, size, "/");
		return;
	}
	tmp[sizeof(tmp) - 1] = '\0';
	len = 1;
	while (ino != CACHE_ROOT_INO && depth++ < 256) {
		const struct pname *e = paths_find(p, ino);
		size_t nl;

		if (!e) {
			snprintf(out, size, "inode %" PRIu64, ino);
			return;
		}
		nl = strlen(e->name);
		if (len + nl + 1 >= sizeof(tmp))
			break;
		len += nl;
		memcpy(tmp + sizeof(tmp) - len, e->name, nl);
		tmp[sizeof(tmp) - ++len] = '/';
		ino = e->parent;
	}
	snprintf(out, size, "%s", tmp + sizeof(tmp) - len);
}

/* --- the local store --------------------------------------------------- */

/* 1 if block blk of ino has a `blocks` entry (then in *rec), 0 if it
 * has none, or a negative code if it cannot be read (a damaged record,
 * no memory): never taken for "none", which would report the block's
 * data as unrecorded. */
static int get_rec(struct cache *c, MDB_txn *txn, uint64_t ino,
		   uint64_t blk, struct block_rec *rec)
{
	int rc = cache_blk_rec_get(c, txn, ino, blk, rec);

	return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

/* The data file of ino, opened for reading; -1 if there is none. */
static int open_data_ro(struct cache *c, uint64_t ino)
{
	char name[32];

	cache_data_name(ino, name, sizeof(name));
	return openat(c->datafd, name, O_RDONLY | O_CLOEXEC);
}

/* Read a block's plain bytes (zeros past the end of the data file). */
static int read_local(struct cache *c, int fd, uint64_t ino, uint64_t off,
		      uint32_t len, struct buf *b)
{
	int rc;

	buf_reset(b);
	if (buf_reserve(b, len))
		return -ENOMEM;
	rc = cache_sect_read(c, fd, ino, buf_mut(b), off, len, NULL);
	if (rc == 0)
		buf_setlen(b, len);
	return rc;
}

/*
 * Whether block blk of ino still is what *rec says and clean, in a
 * transaction newer than the one that found it wrong: if a write made
 * it dirty meanwhile, its bytes were allowed to change.
 */
static int still_clean(struct cache *c, uint64_t ino, uint64_t blk,
		       const struct block_rec *rec)
{
	struct block_rec now;
	MDB_txn *txn;
	int rc, same;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return 1;
	same = !cache_blk_in_dirty(c, txn, ino, blk) &&
	       get_rec(c, txn, ino, blk, &now) == (rec != NULL ? 1 : 0) &&
	       (!rec || memcmp(&now, rec, sizeof(now)) == 0);
	cache_meta_read_end(txn);
	return same;
}

struct local_walk {
	struct cache *c;
	const struct paths *paths;
	cache_report_fn *fn;
	void *ctx;
	struct cache_verify_result *out;
	struct buf buf;
	long problems;
};

static void report_block(struct local_walk *w, uint64_t ino, uint64_t blk,
			 const char *what)
{
	char path[4096];

	path_of(w->paths, ino, path, sizeof(path));
	cache_say(w->fn, w->ctx, "local: %s (inode %" PRIu64 ") block %" PRIu64
	    ": %s", path, ino, blk, what);
	w->problems++;
}

/* Check one file: its resident blocks against their checksums, its
 * dirty ones against their seals (a sealed store), and that its data
 * file holds no data where no record names any. */
static int verify_file(struct local_walk *w, MDB_txn *txn, uint64_t ino,
		       uint64_t size)
{
	struct cache *c = w->c;
	uint64_t bs = c->block_size, nblk = (size + bs - 1) / bs;
	int fd = open_data_ro(c, ino);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	w->out->files++;
	for (uint64_t b = 0; b < nblk; b++) {
		struct block_rec rec;
		uint32_t want = 0;
		int have, rc;

		if (!cache_sect_has_data(c, fd, b))
			continue;
		have = get_rec(c, txn, ino, b, &rec);
		if (cache_blk_in_dirty(c, txn, ino, b)) {
			rc = c->sect.sealed ? read_local(c, fd, ino, b * bs,
						       c->block_size,
						       &w->buf) : 0;
			/* a mount may be writing it: its new bytes can
			 * land before their entry; look once more */
			if (rc == PHI_EAUTHFAIL) {
				usleep(200 * 1000);
				rc = read_local(c, fd, ino, b * bs,
						c->block_size, &w->buf);
			}
			if (rc == PHI_EAUTHFAIL &&
			    cache_blk_in_dirty(c, txn, ino, b)) {
				w->out->damaged++;
				report_block(w, ino, b, "local copy damaged "
					     "(fails its seal) and not yet in "
					     "any region: reads of it fail");
			} else if (rc && rc != PHI_EAUTHFAIL) {
				close(fd);
				return rc;
			}
			continue;
		}
		if (have == PHI_ECORRUPT) {
			w->out->damaged++;
			report_block(w, ino, b, "its block record is damaged: "
				     "the local copy cannot be checked");
			continue;
		}
		if (have < 0) {
			close(fd);
			return have;
		}
		if (!have) {
			if (!still_clean(c, ino, b, NULL))
				continue;
			w->out->unrecorded++;
			report_block(w, ino, b, "holds data no record names (a "
				     "write lost with the power?)");
			continue;
		}
		if (!(rec.flags & BLOCK_RESIDENT))
			continue;	/* being fetched or evicted */
		if (cache_blk_rec_sum(&rec, &want)) {
			w->out->unsummed++;
			continue;
		}
		rc = read_local(c, fd, ino, b * bs, rec.plain, &w->buf);
		if (rc && rc != PHI_EAUTHFAIL) {
			close(fd);
			return rc;
		}
		w->out->blocks++;
		if ((rc == 0 && phi_crc32c(0, buf_data(&w->buf), rec.plain) ==
			       want) || !still_clean(c, ino, b, &rec))
			continue;
		w->out->damaged++;
		report_block(w, ino, b, rc ? "local copy damaged (fails its "
			     "seal); the mount fetches it again on the next "
			     "read" : "local copy damaged (fails its "
			     "checksum); the mount fetches it again on the "
			     "next read");
	}
	close(fd);
	return 0;
}

long cache_verify_local(struct cache *c, cache_report_fn *fn, void *ctx,
			struct cache_verify_result *out)
{
	struct local_walk w = { c, NULL, fn, ctx, out, { 0 }, 0 };
	size_t mark;
	int r = MDB_NOTFOUND;
	struct paths paths;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	MDB_txn *txn;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c->have_blockdbs)
		return 0;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = paths_load(c, txn, &paths);
	if (rc) {
		cache_meta_read_end(txn);
		return rc;
	}
	w.paths = &paths;
	buf_init(&w.buf, SIZE_MAX);
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_inodes, &cur));
	mark = cache_rec_mark();
	while (rc == 0 && (cache_rec_release(mark),
			   (r = cache_rec_cursor(c, JDB_INODES, cur, &key, &val,
						 MDB_NEXT))) == 0) {
		struct inode_rec rec;

		if (key.mv_size != 8 || val.mv_size < sizeof(rec))
			continue;
		memcpy(&rec, val.mv_data, sizeof(rec));
		if (S_ISREG(rec.mode))
			rc = verify_file(&w, txn, key_get_u64(key.mv_data),
					 rec.size);
	}
	/* a walk cut short is no clean result */
	if (rc == 0 && r != MDB_NOTFOUND)
		rc = cache_meta_err(r);
	if (cur)
		mdb_cursor_close(cur);
	cache_meta_read_end(txn);
	buf_release(&w.buf);
	paths_free(&paths);
	return rc ? rc : w.problems;
}

/* --- against a region's latest metadata -------------------------------- */

struct frame_ref {
	struct block_rec rec;	/* the view's */
	struct block_rec here;	/* the local one, when it was compared */
	uint64_t ino, blk;
};

struct cmp {
	struct cache *c, *view;
	struct backend *region;
	const char *label;
	const struct crypt_key *key;
	struct paths lpaths, vpaths;
	int pending;		/* local changes not yet in every region */
	cache_report_fn *fn;
	void *ctx;
	cache_progress_fn *progress;
	struct cache_compare_result *out;
	struct frame_ref *f;
	size_t nf, capf;
	uint64_t last_ino;	/* the last file reported, to say it once */
};

/* A difference in what a file or name is: pending while local changes
 * wait for the regions, a problem otherwise. */
static void differs(struct cmp *m, uint64_t ino, const struct paths *p,
		    const char *what)
{
	char path[4096];

	path_of(p, ino, path, sizeof(path));
	if (m->pending) {
		m->out->pending++;
		cache_say(m->fn, m->ctx, "%s: %s in region %s's latest metadata "
		    "(local changes not yet replicated)", path, what,
		    m->label);
		return;
	}
	if (m->last_ino != ino)
		m->out->differ++;
	m->last_ino = ino;
	cache_say(m->fn, m->ctx, "%s: %s in region %s's latest metadata", path,
	    what, m->label);
}

/* A difference in content both sides name the same: always a problem. */
static void damaged(struct cmp *m, uint64_t ino, uint64_t blk,
		    const char *what)
{
	char path[4096];

	path_of(&m->lpaths, ino, path, sizeof(path));
	if (m->last_ino != ino)
		m->out->differ++;
	m->last_ino = ino;
	cache_say(m->fn, m->ctx, "%s: block %" PRIu64 " %s region %s", path, blk,
	    what, m->label);
}

static int db_empty(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat st;

	return mdb_stat(txn, dbi, &st) == 0 && st.ms_entries == 0;
}

/* Every local name in the view and every name of the view here. */
static int compare_names(struct cmp *m, MDB_txn *lt, MDB_txn *vt)
{
	for (int pass = 0; pass < 2; pass++) {
		struct cache *a = pass ? m->view : m->c;
		struct cache *b = pass ? m->c : m->view;
		MDB_txn *at = pass ? vt : lt, *bt = pass ? lt : vt;
		MDB_cursor *cur;
		MDB_val key, val, other;
		int rc = mdb_cursor_open(at, a->db_dirents, &cur);
		size_t mark = cache_rec_mark();

		if (rc)
			return cache_meta_err(rc);
		while (cache_rec_release(mark),
		       (rc = cache_rec_cursor(a, JDB_DIRENTS, cur, &key, &val,
					      MDB_NEXT)) == 0) {
			struct dirent_rec d, e;
			MDB_val k = key;

			if (val.mv_size != sizeof(d))
				continue;
			memcpy(&d, val.mv_data, sizeof(d));
			if (cache_rec_get(b, bt, JDB_DIRENTS, &k, &other) ||
			    other.mv_size != sizeof(e)) {
				differs(m, d.ino, pass ? &m->vpaths : &m->lpaths,
					pass ? "missing here, present" :
					"missing");
				continue;
			}
			memcpy(&e, other.mv_data, sizeof(e));
			if (!pass && (e.ino != d.ino || e.type != d.type))
				differs(m, d.ino, &m->lpaths, "another file or "
					"type");
		}
		mdb_cursor_close(cur);
		if (rc != MDB_NOTFOUND)
			return cache_meta_err(rc);	/* cut short */
	}
	return 0;
}

static int add_frame(struct cmp *m, const struct frame_ref *r)
{
	if (m->nf == m->capf) {
		size_t cap = m->capf ? 2 * m->capf : 1024;
		void *v = realloc(m->f, cap * sizeof(*m->f));

		if (!v)
			return -ENOMEM;
		m->f = v;
		m->capf = cap;
	}
	m->f[m->nf++] = *r;
	return 0;
}

static int same_rec(const struct block_rec *a, const struct block_rec *b)
{
	return memcmp(a->pack, b->pack, 16) == 0 && a->off == b->off &&
	       a->len == b->len && a->plain == b->plain &&
	       (!(a->flags & b->flags & (BLOCK_SUMMED | BLOCK_MASKED)) ||
		a->crc == b->crc);
}

/* The block maps of ino: the same frames block by block; each frame of
 * the view is queued for the content pass. */
static int compare_blocks(struct cmp *m, MDB_txn *lt, MDB_txn *vt,
			  uint64_t ino, uint64_t size)
{
	uint64_t bs = m->c->block_size;
	uint64_t nblk = (size + bs - 1) / bs;
	int rc = 0;

	for (uint64_t b = 0; b < nblk && rc == 0; b++) {
		struct block_rec lr, vr;
		int lh = get_rec(m->c, lt, ino, b, &lr);
		int vh = get_rec(m->view, vt, ino, b, &vr);
		char what[96];

		if (cache_blk_in_dirty(m->c, lt, ino, b)) {
			m->out->pending++;
			continue;
		}
		if (lh == PHI_ECORRUPT || vh == PHI_ECORRUPT) {
			snprintf(what, sizeof(what), "block %" PRIu64 " has a "
				 "damaged record here or", b);
			differs(m, ino, &m->lpaths, what);
			continue;
		}
		if (lh < 0 || vh < 0)
			return lh < 0 ? lh : vh;
		if (!lh && !vh)
			continue;	/* a hole in both */
		if (lh != vh || !same_rec(&lr, &vr)) {
			snprintf(what, sizeof(what), "block %" PRIu64 " is "
				 "another sealed copy than", b);
			differs(m, ino, &m->lpaths, what);
			continue;
		}
		rc = add_frame(m, &(struct frame_ref){ vr, lr, ino, b });
	}
	return rc;
}

/* Names, attributes and block maps of every file. */
static int compare_files(struct cmp *m, MDB_txn *lt, MDB_txn *vt)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc = cache_meta_err(mdb_cursor_open(lt, m->c->db_inodes, &cur));
	size_t mark = cache_rec_mark();

	while (rc == 0 && (cache_rec_release(mark),
			   mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
		struct inode_rec lr, vr;
		const char *lt_target, *vt_target;
		size_t ltl, vtl;
		uint64_t ino;

		if (key.mv_size != 8 || val.mv_size < sizeof(lr))
			continue;
		ino = key_get_u64(key.mv_data);
		if (cache_inode_get(m->c, lt, ino, &lr, &lt_target, &ltl))
			continue;
		if (cache_inode_get(m->view, vt, ino, &vr, &vt_target, &vtl))
			continue;	/* its names were reported */
		if ((lr.mode & S_IFMT) != (vr.mode & S_IFMT))
			continue;	/* likewise */
		if (S_ISREG(lr.mode))
			m->out->files++;
		if (lr.size != vr.size)
			differs(m, ino, &m->lpaths, "another size than");
		else if (lr.mode != vr.mode || lr.uid != vr.uid ||
			 lr.gid != vr.gid)
			differs(m, ino, &m->lpaths, "another mode or owner "
				"than");
		else if (S_ISLNK(lr.mode) && (ltl != vtl ||
			 memcmp(lt_target, vt_target, ltl)))
			differs(m, ino, &m->lpaths, "another target than");
		if (S_ISREG(lr.mode) && lr.size == vr.size)
			rc = compare_blocks(m, lt, vt, ino, lr.size);
	}
	mdb_cursor_close(cur);
	return rc;
}

static int cmp_frame(const void *a, const void *b)
{
	const struct frame_ref *x = a, *y = b;
	int r = memcmp(x->rec.pack, y->rec.pack, 16);

	if (r)
		return r;
	return x->rec.off < y->rec.off ? -1 : x->rec.off > y->rec.off;
}

/* One frame of obj (the pack, from the region) against the local bytes. */
static void check_frame(struct cmp *m, const struct frame_ref *r,
			const char *pkey, const struct buf *obj,
			struct buf *plain, struct buf *local)
{
	char fid[PACK_KEY_LEN + 32];
	uint32_t want = 0;
	int fd, rc, summed;

	snprintf(fid, sizeof(fid), "%s@%" PRIu64, pkey, r->rec.off);
	buf_reset(plain);
	rc = r->rec.off + r->rec.len > buf_len(obj) ? PHI_ECORRUPT :
	     crypt_unseal(m->key, m->c->fsid, fid,
			  (const uint8_t *)buf_data(obj) + r->rec.off,
			  r->rec.len, plain);
	m->out->blocks++;
	summed = cache_blk_rec_sum(&r->rec, &want);
	if (rc || buf_len(plain) != r->rec.plain ||
	    (summed == 0 &&
	     phi_crc32c(0, buf_data(plain), r->rec.plain) != want)) {
		damaged(m, r->ino, r->blk, "cannot be read back from");
		return;
	}
	if (!(r->here.flags & BLOCK_RESIDENT))
		return;		/* read from this very frame */
	fd = open_data_ro(m->c, r->ino);
	rc = fd < 0 ? -errno : read_local(m->c, fd, r->ino,
					  r->blk * m->c->block_size,
					  r->rec.plain, local);
	if (fd >= 0)
		close(fd);
	if (rc == 0 && memcmp(buf_data(local), buf_data(plain),
			      r->rec.plain) == 0)
		return;
	/* Eviction clears the resident flag before it punches the hole,
	 * a write records the block dirty before it changes a byte, an
	 * unlink drops the records first: bytes read while the record
	 * still stands, resident and clean, are the ones it names. */
	if (!still_clean(m->c, r->ino, r->blk, &r->here))
		return;		/* written, evicted or removed meanwhile */
	damaged(m, r->ino, r->blk, rc ? "cannot be read locally to compare "
		"with" : "differs locally from the copy in");
}

/* Fetch each pack the view names once and check its frames. */
static void compare_content(struct cmp *m)
{
	struct buf obj, plain, local;

	if (m->nf)
		qsort(m->f, m->nf, sizeof(*m->f), cmp_frame);
	buf_init(&obj, SIZE_MAX);
	buf_init(&plain, SIZE_MAX);
	buf_init(&local, SIZE_MAX);
	for (size_t i = 0; i < m->nf;) {
		char pkey[PACK_KEY_LEN + 1];
		size_t j = i;
		int rc;

		cache_pack_key(m->f[i].rec.pack, pkey);
		buf_reset(&obj);
		rc = backend_get(m->region, pkey, 0, 0, &obj);
		while (j < m->nf && memcmp(m->f[j].rec.pack, m->f[i].rec.pack,
					   16) == 0) {
			if (rc == 0)
				check_frame(m, &m->f[j], pkey, &obj, &plain,
					    &local);
			else if (rc == -ENOENT && m->pending)
				m->out->pending++;
			else
				damaged(m, m->f[j].ino, m->f[j].blk, rc ==
					-ENOENT ? "is missing from" :
					"cannot be fetched from");
			j++;
		}
		i = j;
		if (m->progress)
			m->progress(m->ctx, "blocks", j, m->nf);
	}
	buf_release(&obj);
	buf_release(&plain);
	buf_release(&local);
}

long cache_compare(struct cache *c, struct cache *view,
		   const struct cache_compare_args *a,
		   struct cache_compare_result *out)
{
	struct cmp m = { .c = c, .view = view, .region = a->region,
			 .label = a->label, .key = a->key, .fn = a->report,
			 .ctx = a->ctx, .progress = a->progress, .out = out,
			 .last_ino = 0 };
	MDB_txn *lt, *vt = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (memcmp(c->fsid, view->fsid, 16))
		return PHI_EAUTHFAIL;
	lt = cache_meta_read_begin(c, &rc);
	if (lt)
		vt = cache_meta_read_begin(view, &rc);
	if (!vt)
		goto out;
	m.pending = c->have_blockdbs &&
		    !(db_empty(lt, c->db_dirty) && db_empty(lt, c->db_packs) &&
		      db_empty(lt, c->db_metaq) && db_empty(lt, c->db_changed));
	out->seq_here = cache_journal_seq(c, lt);
	out->seq_there = cache_journal_seq(view, vt);
	rc = paths_load(c, lt, &m.lpaths);
	if (rc == 0)
		rc = paths_load(view, vt, &m.vpaths);
	if (rc == 0)
		rc = compare_names(&m, lt, vt);
	if (rc == 0)
		rc = compare_files(&m, lt, vt);
out:
	if (vt)
		cache_meta_read_end(vt);
	if (lt)
		cache_meta_read_end(lt);
	/* the content pass fetches: no transaction is held across it */
	if (rc == 0)
		compare_content(&m);
	paths_free(&m.lpaths);
	paths_free(&m.vpaths);
	free(m.f);
	out->was_pending = m.pending;
	return rc ? rc : (long)out->differ;
}
