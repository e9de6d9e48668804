/*
 * cache_recover.c - rebuilding a filesystem's metadata from a region's
 * history (cache_recover()) and replaying it moment by moment
 * (cache_history_walk()): the administrative side of the journal that
 * cache_journal.c writes.  It opens and formats caches of its own (a
 * scratch copy), so it stands above cache.c.
 */
#include "cache_int.h"
#include "backend.h"
#include "crypt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The objects to apply for at_ms: the latest snapshot at or before it,
 * then the segments after it with consecutive numbers, up to at_ms.
 * Returns the index of the snapshot and sets *end (one past the last).
 */
static int plan(const struct cache_moment *v, size_t n, int64_t at_ms,
		size_t *start, size_t *end)
{
	size_t best = n;

	for (size_t i = 0; i < n; i++)
		if (v[i].snapshot && v[i].time_ms <= at_ms)
			best = i;	/* the last such, in seq order */
	if (best == n)
		return -ENOENT;
	*start = best;
	*end = best + 1;
	for (size_t i = best + 1; i < n; i++) {
		if (v[i].snapshot || v[i].time_ms > at_ms ||
		    v[i].seq != v[*end - 1].seq + 1)
			break;
		*end = i + 1;
	}
	return 0;
}

/* --- applying ---------------------------------------------------------- */

struct apply_arg {
	const uint8_t *data;
	size_t len;
	int snapshot;
	uint64_t max_block_seq;
};

static int clear_replicated(struct cache *c, MDB_txn *txn)
{
	MDB_dbi dbs[] = { c->db_inodes, c->db_dirents, c->db_cookies,
			  c->db_xattrs, c->db_blocks, c->db_orphans,
			  c->db_dirty, c->db_changed };

	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int rc = mdb_drop(txn, dbs[i], 0);

		if (rc)
			return cache_meta_err(rc);
	}
	return 0;
}

/* One record of a journal object. */
struct jrec {
	int db, op;
	MDB_val k, v;
};

/* Parse the record at *p, before end, into r and step *p past it. */
static int jrec_next(const uint8_t **p, const uint8_t *end, struct jrec *r)
{
	const uint8_t *q = *p;
	size_t klen, vlen;

	if (end - q < 8)
		return PHI_ECORRUPT;
	r->db = q[0];
	r->op = q[1];
	klen = cache_journal_get_be(q + 2, 2);
	vlen = cache_journal_get_be(q + 4, 4);
	q += 8;
	if ((size_t)(end - q) < klen + vlen || klen == 0 ||
	    r->db < JDB_SUPER || r->db > JDB_BLOCKS ||
	    (r->op != JOURNAL_OP_PUT && r->op != JOURNAL_OP_DEL))
		return PHI_ECORRUPT;
	r->k.mv_size = klen;
	r->k.mv_data = (void *)q;
	r->v.mv_size = vlen;
	r->v.mv_data = (void *)(q + klen);
	*p = q + klen + vlen;
	return 0;
}

/* Put an inode record, with none of its blocks in this local store. */
static int apply_inode(struct cache *c, MDB_txn *txn, struct jrec *r)
{
	const uint8_t *src = r->v.mv_data;
	MDB_val v = r->v;
	struct inode_rec rec;
	uint8_t *dst;
	int rc;

	/* nothing of it is in this local store yet */
	memcpy(&rec, src, sizeof(rec));
	if (S_ISREG(rec.mode))
		rec.blocks = 0;
	dst = malloc(v.mv_size);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, &rec, sizeof(rec));
	memcpy(dst + sizeof(rec), src + sizeof(rec),
	       r->v.mv_size - sizeof(rec));
	v.mv_data = dst;
	rc = cache_rec_put(c, txn, JDB_INODES, &r->k, &v, CACHE_REC_QUIET);
	free(dst);
	return cache_meta_err(rc);
}

/* Apply one journal record to its database. */
static int apply_record(struct cache *c, MDB_txn *txn, struct apply_arg *a,
			struct jrec *r)
{
	int rc;

	/* next_ino, and the audit trail's head so that its numbers and
	 * its chain go on after the regions' segments */
	if (r->db == JDB_SUPER && (r->k.mv_size != 8 ||
				   memcmp(r->k.mv_data, "next_ino", 8)) &&
	    (r->k.mv_size != 10 || memcmp(r->k.mv_data, "audit_head", 10)))
		return 0;	/* version, fsid, block size: ours */
	if (r->op == JOURNAL_OP_DEL) {
		rc = cache_rec_del(c, txn, r->db, &r->k, CACHE_REC_QUIET);
		return rc && rc != MDB_NOTFOUND ? cache_meta_err(rc) : 0;
	}
	if (r->db == JDB_INODES && r->v.mv_size >= sizeof(struct inode_rec))
		return apply_inode(c, txn, r);
	if (r->db == JDB_BLOCKS && r->v.mv_size == sizeof(struct block_rec)) {
		struct block_rec br;

		memcpy(&br, r->v.mv_data, sizeof(br));
		if (br.seq > a->max_block_seq)
			a->max_block_seq = br.seq;
	}
	rc = cache_rec_put(c, txn, r->db, &r->k, &r->v, CACHE_REC_QUIET);
	return rc ? cache_meta_err(rc) : 0;
}

/* Apply one journal object (a snapshot replaces what came before). */
static int apply_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct apply_arg *a = arg;
	const uint8_t *p = a->data + JOURNAL_HEADER, *end = a->data + a->len;
	uint64_t count = cache_journal_get_be(a->data + 32, 8);
	int rc;

	if (a->snapshot && (rc = clear_replicated(c, txn)) != 0)
		return rc;
	for (uint64_t i = 0; i < count; i++) {
		struct jrec r;

		rc = jrec_next(&p, end, &r);
		if (rc == 0)
			rc = apply_record(c, txn, a, &r);
		if (rc)
			return rc;
	}
	return p == end ? 0 : PHI_ECORRUPT;
}

/* Fetch, authenticate and check one metadata object; plain gets its
 * plaintext. */
static int fetch_object(struct cache *c, struct backend *region,
			const struct crypt_key *key,
			const struct cache_moment *m, struct buf *plain)
{
	struct buf raw;
	const uint8_t *d;
	int rc;

	buf_init(&raw, SIZE_MAX);
	rc = backend_get(region, m->key, 0, 0, &raw);
	buf_reset(plain);
	if (rc == 0)
		rc = crypt_unseal(key, c->fsid, m->key, buf_data(&raw),
				  buf_len(&raw), plain);
	buf_release(&raw);
	if (rc)
		return rc;
	d = buf_data(plain);
	if (buf_len(plain) < JOURNAL_HEADER || memcmp(d, "PHIJ", 4) ||
	    d[4] < JOURNAL_VERSION_MIN || d[4] > JOURNAL_VERSION ||
	    d[5] != (m->snapshot ? 'S' : 'J') ||
	    cache_journal_get_be(d + 8, 8) != m->seq ||
	    (int64_t)cache_journal_get_be(d + 16, 8) != m->time_ms)
		return d && buf_len(plain) >= 5 && memcmp(d, "PHIJ", 4) == 0 &&
		       (d[4] < JOURNAL_VERSION_MIN ||
			d[4] > JOURNAL_VERSION) ? PHI_EVERSION : PHI_ECORRUPT;
	return 0;
}

struct after_arg {
	uint64_t max_seq;
	uint64_t max_block_seq;
	struct cache_audit_head audit;	/* where the regions' trail ends */
};

/* The end of the audit trail over the regions: the head the history
 * bound, or a later segment of any region. */
static int audit_end(const struct cache_recover_args *a, struct cache *c,
		     struct cache_audit_head *h)
{
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_auditseg_head(c, txn, h);
	cache_meta_read_end(txn);
	if (rc == 0)
		rc = cache_auditseg_region_end(a->region, a->key, a->fsid, h);
	for (int i = 0; rc == 0 && i < a->nothers; i++)
		if (a->others[i] && a->others[i] != a->region &&
		    cache_auditseg_region_end(a->others[i], a->key, a->fsid,
					      h))
			PHI_LOG(PHI_LOG_WARNING, "cannot list the audit trail "
				"of a region; its numbers go on after the "
				"others'");
	return rc;
}

/* Recovery is done: the next mount starts a new line with a snapshot, and
 * numbers packs and metadata after everything seen. */
static int after_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct after_arg *a = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t mark;
	int rc;

	rc = cache_journal_set_u64(c, txn, "meta_seq", a->max_seq);
	if (rc == 0 && a->audit.seq) {
		uint8_t hv[CACHE_AUDIT_HEAD_SIZE];
		MDB_val hk = { 10, (void *)"audit_head" }, hvv = { sizeof(hv),
								  hv };

		cache_audit_head_encode(&a->audit, hv);
		rc = mdb_put(txn, c->db_super, &hk, &hvv, 0);
	}
	if (rc == 0)
		rc = cache_journal_set_u64(c, txn, "need_snapshot", 1);
	if (rc == 0)
		rc = cache_journal_set_u64(c, txn, "next_seq",
					   a->max_block_seq + 1);
	if (rc == 0)
		rc = mdb_drop(txn, c->db_changed, 0);
	if (rc)
		return cache_meta_err(rc);
	/* inodes unlinked while open on the old machine: free at open */
	mark = cache_rec_mark();
	rc = mdb_cursor_open(txn, c->db_inodes, &cur);
	if (rc)
		return cache_meta_err(rc);
	while ((rc = cache_rec_cursor(c, JDB_INODES, cur, &k, &v,
				      MDB_NEXT)) == 0) {
		struct inode_rec rec;
		MDB_val e = { 0, (void *)"" };

		if (v.mv_size < sizeof(rec))
			continue;
		memcpy(&rec, v.mv_data, sizeof(rec));
		cache_rec_release(mark);
		if (rec.nlink == 0 &&
		    (rc = mdb_put(txn, c->db_orphans, &k, &e, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

/* --- recover and walk -------------------------------------------------- */

static int rm_rf_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
	struct dirent *de;
	DIR *dir;

	if (fd < 0)
		return unlinkat(dfd, name, 0) && errno != ENOENT ? -errno : 0;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rm_rf_at(fd, de->d_name);
	closedir(dir);
	return unlinkat(dfd, name, AT_REMOVEDIR) && errno != ENOENT ?
	       -errno : 0;
}

/* Open a fresh filesystem in dir for applying a history to it. */
static int scratch_open(const struct cache_recover_args *a, struct cache **c)
{
	/* with the key: sealed (local_seal) from its first record, as the
	 * mount that opens it next wants it */
	struct cache_config cfg = { .dir = a->dir, .size_limit = UINT64_MAX,
				    .block_size = a->block_size,
				    .fsid = a->fsid, .key = a->key };
	int rc = cache_format(&cfg, 0, 0);

	if (rc == 0)
		rc = cache_open(c, &cfg, 0);
	if (rc == 0)
		(*c)->journal = 0;	/* applying is not changing */
	return rc;
}

struct replay {
	const struct cache_recover_args *a;
	struct cache_moment *v;
	size_t n, start, end;
	uint64_t max_seq;
};

static int prepare(const struct cache_recover_args *a, struct replay *r,
		   int from_oldest)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->a = a;
	rc = cache_history_list(a->region, a->key, a->fsid, &r->v, &r->n);
	if (rc)
		return rc;
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].seq > r->max_seq)
			r->max_seq = r->v[i].seq;
	for (int i = 0; a->others && i < a->nothers; i++) {
		struct cache_moment *o;
		size_t no;

		if (!a->others[i] || cache_history_list(a->others[i], a->key,
							a->fsid, &o, &no))
			continue;	/* unreachable: a best effort */
		for (size_t k = 0; k < no; k++)
			if (o[k].seq > r->max_seq)
				r->max_seq = o[k].seq;
		free(o);
	}
	rc = plan(r->v, r->n, a->at_ms, &r->start, &r->end);
	if (rc == 0 && from_oldest) {
		/* the oldest snapshot; segments from there, up to at_ms,
		 * crossing later snapshots */
		size_t first = r->n;

		for (size_t i = 0; i < r->n && first == r->n; i++)
			if (r->v[i].snapshot && r->v[i].time_ms <= a->at_ms)
				first = i;
		r->start = first;
	}
	if (rc)
		free(r->v);
	return rc;
}

static int replay(struct replay *r, struct cache *c, cache_moment_fn *fn,
		  void *ctx, struct cache_recover_info *info,
		  uint64_t *max_block_seq)
{
	const struct cache_recover_args *a = r->a;
	uint64_t total = 0, done = 0, last = 0;
	struct buf plain;
	int rc = 0;

	for (size_t i = r->start; i < r->end; i++)
		total += r->v[i].size;
	buf_init(&plain, SIZE_MAX);
	for (size_t i = r->start; i < r->end && rc == 0; i++) {
		const struct cache_moment *m = &r->v[i];
		struct apply_arg ap = { 0 };

		if (i > r->start && !m->snapshot && m->seq != last + 1)
			break;		/* a gap: the history ends here */
		rc = fetch_object(c, a->region, a->key, m, &plain);
		if (rc)
			break;		/* damaged: never applied */
		ap.data = buf_data(&plain);
		ap.len = buf_len(&plain);
		ap.snapshot = m->snapshot;
		rc = cache_meta_write(c, apply_txn, &ap);
		if (ap.max_block_seq > *max_block_seq)
			*max_block_seq = ap.max_block_seq;
		if (rc)
			break;
		last = m->seq;
		done += m->size;
		if (info) {
			info->seq = m->seq;
			info->time_ms = m->time_ms;
			info->objects++;
			info->bytes += m->size;
		}
		if (a->progress)
			a->progress(a->progress_ctx, "bytes", done, total);
		if (fn)
			rc = fn(ctx, m, c);
	}
	buf_release(&plain);
	return rc;
}

static int move_into_place(int dirfd)
{
	static const char *const parts[] = { "data", "lock", "meta" };
	char from[64];

	/* meta last: it is what says "a filesystem is here" */
	for (size_t i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "recover.tmp/%s", parts[i]);
		if (renameat(dirfd, from, dirfd, parts[i]))
			return -errno;
	}
	if (fsync(dirfd))
		return -errno;
	return rm_rf_at(dirfd, "recover.tmp");
}

/* Open dir for recovery: its fd, or PHI_EEXISTFS if a filesystem is there. */
static int target_open(const char *dir)
{
	static const char *const left[] = { "recover.tmp", "data", "lock",
					    "packs", "journal", "audit" };
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (faccessat(fd, "meta", F_OK, 0) == 0) {
		close(fd);
		return PHI_EEXISTFS;
	}
	/* leftovers of an interrupted run */
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		rm_rf_at(fd, left[i]);
	return fd;
}

/* Count the moments up to at_ms that the replay did not reach. */
static void count_skipped(const struct replay *r,
			  struct cache_recover_info *info)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].seq > info->seq && r->v[i].time_ms <= r->a->at_ms)
			info->skipped++;
}

/* Count the recovered inodes into info. */
static int count_inodes(struct cache *c, struct cache_recover_info *info)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (txn && mdb_stat(txn, c->db_inodes, &st) == 0)
		info->inodes = st.ms_entries;
	if (txn)
		cache_meta_read_end(txn);
	return rc;
}

/* Replay r into a fresh filesystem in dir/recover.tmp, ready to mount. */
static int recover_scratch(struct replay *r, int dirfd,
			   struct cache_recover_info *info)
{
	struct cache_recover_args sa = *r->a;
	struct after_arg aa = { 0, 0, { 0, { 0 } } };
	struct cache *c = NULL;
	char tmp[4096];
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s/recover.tmp", r->a->dir);
	if (mkdirat(dirfd, "recover.tmp", 0700))
		rc = -errno;
	sa.dir = tmp;
	if (rc == 0)
		rc = scratch_open(&sa, &c);
	if (rc == 0)
		rc = replay(r, c, NULL, NULL, info, &aa.max_block_seq);
	if (rc == 0) {
		count_skipped(r, info);
		aa.max_seq = r->max_seq;
		rc = audit_end(r->a, c, &aa.audit);
	}
	if (rc == 0) {
		rc = cache_meta_write(c, after_txn, &aa);
	}
	if (rc == 0)
		rc = count_inodes(c, info);
	if (c) {
		int rc2 = cache_close(c);

		if (rc == 0)
			rc = rc2;
	}
	return rc;
}

int cache_recover(const struct cache_recover_args *a,
		  struct cache_recover_info *info)
{
	struct replay r;
	int dirfd, rc;

	memset(info, 0, sizeof(*info));
	dirfd = target_open(a->dir);
	if (dirfd < 0)
		return dirfd;
	rc = prepare(a, &r, 0);
	if (rc) {
		close(dirfd);
		return rc;
	}
	rc = recover_scratch(&r, dirfd, info);
	if (rc == 0)
		rc = move_into_place(dirfd);
	else
		rm_rf_at(dirfd, "recover.tmp");
	free(r.v);
	close(dirfd);
	return rc;
}

int cache_history_walk(const struct cache_recover_args *a,
		       cache_moment_fn *fn, void *ctx)
{
	uint64_t max_block_seq = 0;
	struct cache *c = NULL;
	struct replay r;
	int rc;

	rc = prepare(a, &r, 1);
	if (rc)
		return rc;
	rc = scratch_open(a, &c);
	if (rc == 0)
		rc = replay(&r, c, fn, ctx, NULL, &max_block_seq);
	if (c)
		cache_close(c);
	free(r.v);
	return rc;
}
