/*
 * cache_auditseg.c - the audit trail in the regions: the events of the
 * local `audit` table sealed into hash-chained segments under "a/",
 * queued for every region like metadata objects, and read back and
 * verified from a region alone.
 *
 * A segment holds the events of a contiguous range of sequence numbers.
 * Its plaintext, format 1 (integers big-endian):
 *
 *	0	4	"PHIA"
 *	4	1	format version (1)
 *	5	3	zero
 *	8	8	first sequence number
 *	16	8	last sequence number
 *	24	8	time it was cut, ms since the epoch
 *	32	32	SHA-256 of the plaintext of the segment before it (all
 *			zero for the first segment of the chain)
 *	64	...	events, first to last: length (4), the event's bytes
 *
 * It is sealed like a metadata object (zstd + AES-256-GCM, bound to its
 * object key "a/" and 16 hex digits of its first sequence number), so a
 * changed byte, a segment renamed or one moved from another filesystem
 * fails to open.  The chain's head is the last sequence number sealed
 * and the SHA-256 of the last segment's plaintext: the superblock record
 * "audit_head" (AUDIT_HEAD_SIZE bytes: the number, then the hash) holds
 * it, and every metadata object written after the first segment carries
 * it too (cache_journal.c), so a region whose "a/" lost its tail no
 * longer matches its newest metadata object.
 *
 * Cutting (cache_auditseg_cut()) runs inside the transaction of a
 * metadata flush, before the metadata object is built:
 *
 *   events head.seq+1 .. last of the table  -> segments, each sealed and
 *       stored durably in cache_dir/audit/ (cache_store_durably())
 *   then, in the same transaction: each recorded in `auditq` (the upload
 *       queue's audit kind), "audit_head" advanced, the metadata object
 *       that binds the new head recorded in `metaq`
 *
 * Crashes.  Nothing reaches a region before that transaction commits
 * (the uploaders read the queue), and the transaction records the
 * segments, the head and the metadata object at once.  A crash before
 * the commit leaves the head where it was and at most files in audit/
 * that no entry names (swept at the next open): the next flush cuts
 * again from the same first number, under the same object key, a
 * segment holding the same events and perhaps more (events are only
 * ever appended, with rising numbers).  A crash after it leaves the
 * segments queued; an upload repeated after a crash puts the same local
 * bytes again.  So no segment is lost, none is made twice with other
 * contents, and no number is left out or sealed twice.  A failure that
 * aborts the transaction unlinks the files it stored
 * (cache_auditseg_undo()).
 *
 * Order: a metadata object goes to a region only once every segment cut
 * with it or before it is there (cache_upload.c), so a region never binds
 * a head it does not hold.
 *
 * Recovery (cache_recover.c) takes the head from the history, then moves
 * it to the newest segment any region holds (cache_auditseg_region_end()):
 * a cache recovered as at an earlier moment, or from metadata that had
 * not bound the newest segment yet, numbers its events after every
 * segment there and never remakes one under a name in use.
 *
 * Only gc deletes segments (cache_audit_region_gc()): a prefix of the
 * chain, never the newest segment.  It first stores "a/base" (sealed:
 * "PHIB", version 1, three zero bytes, then the head after the last
 * segment it deletes), where verify then starts the chain; segments a
 * run cut short left at or before that head are passed over.
 */
#include "cache_int.h"
#include "backend.h"
#include "crypt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEG_MAGIC "PHIA"
#define SEG_VERSION 1
#define SEG_MAX_BYTES (4u << 20)	/* plaintext of one segment, about */
#define HEAD_KEY "audit_head"

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the format -------------------------------------------------------- */

void cache_audit_seg_key(uint64_t first, char out[CACHE_AUDIT_KEY_LEN + 1])
{
	snprintf(out, CACHE_AUDIT_KEY_LEN + 1, "a/%016" PRIx64, first);
}

int cache_audit_seg_key_parse(const char *key, uint64_t *first)
{
	uint64_t v = 0;

	if (strncmp(key, "a/", 2) != 0 || strlen(key) != CACHE_AUDIT_KEY_LEN)
		return -EINVAL;
	for (const char *p = key + 2; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' :
			*p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;

		if (d < 0)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	*first = v;
	return 0;
}

void cache_audit_head_encode(const struct cache_audit_head *h,
			     uint8_t out[CACHE_AUDIT_HEAD_SIZE])
{
	put_be(out, h->seq, 8);
	memcpy(out + 8, h->hash, sizeof(h->hash));
}

int cache_audit_head_decode(const void *p, size_t len,
			    struct cache_audit_head *h)
{
	if (len != CACHE_AUDIT_HEAD_SIZE)
		return PHI_ECORRUPT;
	h->seq = get_be(p, 8);
	memcpy(h->hash, (const uint8_t *)p + 8, sizeof(h->hash));
	return 0;
}

int cache_audit_seg_begin(struct buf *b, uint64_t first,
			  const uint8_t prev[32], int64_t time_ms)
{
	uint8_t h[CACHE_AUDIT_SEG_HEADER];

	if (first == 0)
		return -EINVAL;
	memcpy(h, SEG_MAGIC, 4);
	h[4] = SEG_VERSION;
	h[5] = h[6] = h[7] = 0;
	put_be(h + 8, first, 8);
	put_be(h + 16, first - 1, 8);	/* no event yet */
	put_be(h + 24, (uint64_t)time_ms, 8);
	memcpy(h + 32, prev, 32);
	buf_reset(b);
	return buf_add(b, h, sizeof(h));
}

int cache_audit_seg_add(struct buf *b, const void *rec, size_t len)
{
	uint8_t *h = buf_mut(b), n[4];
	int rc;

	if (buf_len(b) < CACHE_AUDIT_SEG_HEADER || len > UINT32_MAX)
		return -EINVAL;
	put_be(n, len, 4);
	rc = buf_add(b, n, sizeof(n));
	if (rc == 0)
		rc = buf_add(b, rec, len);
	if (rc == 0) {
		h = buf_mut(b);	/* may have moved */
		put_be(h + 16, get_be(h + 16, 8) + 1, 8);
	}
	return rc;
}

int cache_audit_seg_parse(const void *plain, size_t len,
			  struct cache_audit_seg *s)
{
	const uint8_t *p = plain, *q, *end = p + len;
	uint64_t n = 0;

	if (len < CACHE_AUDIT_SEG_HEADER || memcmp(p, SEG_MAGIC, 4) ||
	    p[4] != SEG_VERSION)
		return PHI_ECORRUPT;
	s->first = get_be(p + 8, 8);
	s->last = get_be(p + 16, 8);
	s->time_ms = (int64_t)get_be(p + 24, 8);
	memcpy(s->prev, p + 32, 32);
	if (s->first == 0 || s->last < s->first)
		return PHI_ECORRUPT;	/* an empty segment is never cut */
	for (q = p + CACHE_AUDIT_SEG_HEADER; q < end; n++) {
		uint64_t l;

		if (end - q < 4)
			return PHI_ECORRUPT;
		l = get_be(q, 4);
		if ((uint64_t)(end - q - 4) < l)
			return PHI_ECORRUPT;
		q += 4 + l;
	}
	if (n != s->last - s->first + 1)
		return PHI_ECORRUPT;
	s->events = p + CACHE_AUDIT_SEG_HEADER;
	s->len = len - CACHE_AUDIT_SEG_HEADER;
	return crypt_sha256(plain, len, s->hash);
}

int cache_audit_seg_events(const struct cache_audit_seg *s,
			   cache_audit_fn *fn, void *arg)
{
	const uint8_t *q = s->events, *end = q + s->len;
	uint64_t seq = s->first;
	int rc = 0;

	while (rc == 0 && q < end) {
		uint64_t l = get_be(q, 4);

		rc = fn(arg, seq++, q + 4, (size_t)l);
		q += 4 + l;
	}
	return rc;
}

int cache_audit_chain_add(struct cache_audit_chain *ch,
			  const struct cache_audit_seg *s)
{
	int rc = 0;

	if (s->first != ch->head.seq + 1)
		rc = s->first > ch->head.seq + 1 ? CACHE_AUDIT_GAP :
		     CACHE_AUDIT_OVERLAP;
	else if (memcmp(s->prev, ch->head.hash, 32))
		rc = CACHE_AUDIT_BROKEN;
	ch->head.seq = s->last;
	memcpy(ch->head.hash, s->hash, 32);
	ch->segments++;
	ch->events += s->last - s->first + 1;
	return rc;
}

/* --- cutting ----------------------------------------------------------- */

int cache_auditseg_head(struct cache *c, MDB_txn *txn,
			struct cache_audit_head *h)
{
	MDB_val k = { strlen(HEAD_KEY), (void *)HEAD_KEY }, v;
	int rc = mdb_get(txn, c->db_super, &k, &v);

	memset(h, 0, sizeof(*h));
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return cache_meta_err(rc);
	return cache_audit_head_decode(v.mv_data, v.mv_size, h);
}

int cache_auditseg_pending(struct cache *c, MDB_txn *txn)
{
	struct cache_audit_head h;
	MDB_cursor *cur;
	MDB_val k, v;
	int any = 0;

	if (!c->db_audit_open || !c->have_auditq ||
	    cache_auditseg_head(c, txn, &h))
		return 0;
	if (mdb_cursor_open(txn, c->db_audit, &cur))
		return 0;
	if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
		any = key_get_u64(k.mv_data) > h.seq;
	mdb_cursor_close(cur);
	return any;
}

static void local_file(uint64_t first, char *out, size_t size)
{
	snprintf(out, size, "audit/%016" PRIx64, first);
}

void cache_auditseg_file(const char *key, char *out, size_t size)
{
	snprintf(out, size, "audit/%s", key + 2);
}

/* Seal the segment in plain (its first event first), store it, queue it
 * under qkey; advance *h. */
static int seg_store(struct cache *c, MDB_txn *txn, struct buf *plain,
		     uint64_t qkey, struct cache_audit_head *h,
		     struct cache_auditseg_undo *u)
{
	const uint8_t *p = buf_data(plain);
	char key[CACHE_AUDIT_KEY_LEN + 1], file[64];
	struct meta_rec mr = { 0 };
	uint8_t k[8];
	MDB_val kk = { 8, k }, vv = { sizeof(mr), &mr };
	struct buf sealed;
	uint64_t first = get_be(p + 8, 8);
	int rc;

	cache_audit_seg_key(first, key);
	buf_init(&sealed, SIZE_MAX);
	rc = buf_reserve(&sealed, crypt_seal_bound(buf_len(plain)));
	if (rc == 0)
		rc = crypt_seal(c->seal->key, c->fsid, key, p, buf_len(plain),
				&sealed);
	if (rc == 0) {
		local_file(first, file, sizeof(file));
		rc = cache_store_durably(c, "audit", file, buf_data(&sealed),
					 buf_len(&sealed));
	}
	if (rc == 0 && u->n < CACHE_AUDITSEG_UNDO_MAX)
		u->first[u->n++] = first;
	if (rc == 0) {
		snprintf(mr.key, sizeof(mr.key), "%s", key);
		mr.size = buf_len(&sealed);
		mr.pending = c->seal->all_bits;
		mr.time_ms = (int64_t)get_be(p + 24, 8);
		key_put_u64(k, qkey);
		rc = cache_meta_err(mdb_put(txn, c->db_auditq, &kk, &vv, 0));
	}
	if (rc == 0) {
		u->bytes += cache_disk_size(buf_len(&sealed));
		h->seq = get_be(p + 16, 8);
		rc = crypt_sha256(p, buf_len(plain), h->hash);
	}
	buf_release(&sealed);
	return rc;
}

/* Fill plain with the events from cur's one on, while they follow each
 * other and the segment is under SEG_MAX_BYTES; *more says whether the
 * cursor stands on an event not taken. */
static int seg_fill(struct cache *c, MDB_cursor *cur, struct buf *plain,
		    const struct cache_audit_head *h, int *more)
{
	MDB_val k, v;
	uint64_t first, next;
	size_t mark = cache_rec_mark();
	int rc = cache_rec_cursor(c, JDB_AUDIT, cur, &k, &v, MDB_GET_CURRENT);

	*more = 0;
	if (rc || k.mv_size != 8)
		return rc ? cache_meta_err(rc) : PHI_ECORRUPT;
	first = next = key_get_u64(k.mv_data);
	rc = cache_audit_seg_begin(plain, first, h->hash, now_ms());
	while (rc == 0) {
		rc = cache_audit_seg_add(plain, v.mv_data, v.mv_size);
		next++;
		cache_rec_release(mark);
		if (rc)
			break;
		rc = cache_rec_cursor(c, JDB_AUDIT, cur, &k, &v, MDB_NEXT);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return cache_meta_err(rc);
		if (k.mv_size != 8)
			return PHI_ECORRUPT;
		/* a hole in the table (never made here) ends the segment;
		 * verify reports it */
		if (key_get_u64(k.mv_data) != next ||
		    buf_len(plain) >= SEG_MAX_BYTES) {
			*more = 1;
			return 0;
		}
	}
	return rc;
}

int cache_auditseg_cut(struct cache *c, MDB_txn *txn, uint64_t mseq,
		       struct cache_auditseg_undo *u)
{
	struct cache_audit_head h;
	uint8_t kb[8], hv[CACHE_AUDIT_HEAD_SIZE];
	MDB_val k = { sizeof(kb), kb }, v;
	MDB_cursor *cur;
	struct buf plain;
	uint64_t idx = 0;
	int rc, more = 1;

	if (!c->db_audit_open || !c->have_auditq)
		return 0;
	rc = cache_auditseg_head(c, txn, &h);
	if (rc)
		return rc;
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_audit, &cur));
	if (rc)
		return rc;
	key_put_u64(kb, h.seq + 1);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND) {
		mdb_cursor_close(cur);
		return 0;
	}
	rc = cache_meta_err(rc);
	buf_init(&plain, SIZE_MAX);
	while (rc == 0 && more && idx < CACHE_AUDITSEG_PER_FLUSH) {
		rc = seg_fill(c, cur, &plain, &h, &more);
		if (rc == 0)
			rc = seg_store(c, txn, &plain, mseq << 16 | idx++, &h, u);
	}
	buf_release(&plain);
	mdb_cursor_close(cur);
	if (rc == 0 && idx) {
		MDB_val hk = { strlen(HEAD_KEY), (void *)HEAD_KEY },
			hvv = { sizeof(hv), hv };

		cache_audit_head_encode(&h, hv);
		rc = cache_meta_err(mdb_put(txn, c->db_super, &hk, &hvv, 0));
		u->cut = idx;
	}
	return rc;
}

void cache_auditseg_undo(struct cache *c, const struct cache_auditseg_undo *u)
{
	char file[64];

	for (size_t i = 0; i < u->n; i++) {
		local_file(u->first[i], file, sizeof(file));
		unlinkat(c->dirfd, file, 0);
	}
}

/* --- reading a region -------------------------------------------------- */

struct seg_list {
	uint64_t *v;
	size_t n, cap;
	int base;		/* "a/base" is there */
	int err;
};

static int list_one(void *arg, const char *name, uint64_t size)
{
	struct seg_list *l = arg;
	uint64_t first;

	(void)size;
	if (strcmp(name, CACHE_AUDIT_BASE_KEY) == 0) {
		l->base = 1;
		return 0;
	}
	if (cache_audit_seg_key_parse(name, &first))
		return 0;		/* not a segment: ignore */
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		uint64_t *p = realloc(l->v, cap * sizeof(*p));

		if (!p) {
			l->err = -ENOMEM;
			return -ENOMEM;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = first;
	return 0;
}

/* The first numbers of the segments in region, sorted; *base whether
 * "a/base" is there.  Free *out. */
static int seg_list(struct backend *region, uint64_t **out, size_t *n,
		    int *base)
{
	struct seg_list l = { NULL, 0, 0, 0, 0 };
	int rc = backend_list(region, "a/", list_one, &l);

	if (rc == 0 && l.err)
		rc = l.err;
	if (rc) {
		free(l.v);
		return rc;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cache_cmp_u64);
	*out = l.v;
	*n = l.n;
	*base = l.base;
	return 0;
}

/* Get and unseal object key of region into plain. */
static int get_plain(struct backend *region, const struct crypt_key *key,
		     const uint8_t fsid[16], const char *okey,
		     struct buf *plain)
{
	struct buf raw;
	int rc;

	buf_init(&raw, SIZE_MAX);
	rc = backend_get(region, okey, 0, 0, &raw);
	buf_reset(plain);
	if (rc == 0)
		rc = crypt_unseal(key, fsid, okey, buf_data(&raw),
				  buf_len(&raw), plain);
	buf_release(&raw);
	return rc;
}

/* Read segment first of region into plain and parse it into s; the
 * name's number must be the segment's. */
static int seg_read(struct backend *region, const struct crypt_key *key,
		    const uint8_t fsid[16], uint64_t first, struct buf *plain,
		    struct cache_audit_seg *s)
{
	char okey[CACHE_AUDIT_KEY_LEN + 1];
	int rc;

	cache_audit_seg_key(first, okey);
	rc = get_plain(region, key, fsid, okey, plain);
	if (rc == 0)
		rc = cache_audit_seg_parse(buf_data(plain), buf_len(plain), s);
	if (rc == 0 && s->first != first)
		rc = PHI_ECORRUPT;
	return rc;
}

int cache_audit_base_read(struct backend *region, const struct crypt_key *key,
			  const uint8_t fsid[16], struct cache_audit_head *h)
{
	struct buf plain;
	int rc;

	buf_init(&plain, 4096);
	rc = get_plain(region, key, fsid, CACHE_AUDIT_BASE_KEY, &plain);
	if (rc == 0 && (buf_len(&plain) != 8 + CACHE_AUDIT_HEAD_SIZE ||
			memcmp(buf_data(&plain), "PHIB\1\0\0\0", 8)))
		rc = PHI_ECORRUPT;
	if (rc == 0)
		rc = cache_audit_head_decode((const uint8_t *)buf_data(&plain)
					     + 8, CACHE_AUDIT_HEAD_SIZE, h);
	buf_release(&plain);
	return rc;
}

int cache_audit_region_walk(struct backend *region,
			    const struct crypt_key *key,
			    const uint8_t fsid[16], cache_audit_fn *fn,
			    void *arg)
{
	struct cache_audit_seg s;
	struct buf plain;
	uint64_t *v = NULL;
	size_t n = 0;
	int base, rc = seg_list(region, &v, &n, &base);

	buf_init(&plain, SIZE_MAX);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = seg_read(region, key, fsid, v[i], &plain, &s);
		if (rc == 0)
			rc = cache_audit_seg_events(&s, fn, arg);
	}
	buf_release(&plain);
	free(v);
	return rc;
}

/* --- verifying a region ------------------------------------------------ */

/* Scan a metadata object's records for "audit_head". */
static int head_in_meta(const struct buf *plain, struct cache_audit_head *h,
			int *found)
{
	const uint8_t *p = buf_data(plain), *end = p + buf_len(plain);

	*found = 0;
	if (buf_len(plain) < JOURNAL_HEADER || memcmp(p, "PHIJ", 4))
		return PHI_ECORRUPT;
	for (p += JOURNAL_HEADER; end - p >= 8;) {
		size_t kl = get_be(p + 2, 2), vl = get_be(p + 4, 4);

		if ((size_t)(end - p - 8) < kl + vl)
			return PHI_ECORRUPT;
		if (p[0] == JDB_SUPER && p[1] == JOURNAL_OP_PUT &&
		    kl == strlen(HEAD_KEY) && !memcmp(p + 8, HEAD_KEY, kl)) {
			*found = 1;
			return cache_audit_head_decode(p + 8 + kl, vl, h);
		}
		p += 8 + kl + vl;
	}
	return 0;
}

int cache_audit_bound_head(struct backend *region,
			   const struct crypt_key *key,
			   const uint8_t fsid[16], struct cache_audit_head *h,
			   char mkey[40])
{
	struct cache_moment *m = NULL;
	struct buf plain;
	size_t n = 0;
	int found = 0, rc = cache_history_list(region, key, fsid, &m, &n);

	memset(h, 0, sizeof(*h));
	mkey[0] = '\0';
	if (rc || n == 0) {
		cache_history_free(m);
		return rc;
	}
	snprintf(mkey, 40, "%s", m[n - 1].key);
	buf_init(&plain, SIZE_MAX);
	rc = get_plain(region, key, fsid, m[n - 1].key, &plain);
	if (rc == 0)
		rc = head_in_meta(&plain, h, &found);
	buf_release(&plain);
	cache_history_free(m);
	return rc;
}

struct verify {
	struct backend *region;
	const struct crypt_key *key;
	const uint8_t *fsid;
	cache_report_fn *fn;
	void *ctx;
	struct cache_audit_verify *out;
	uint64_t base_seq;	/* "a/base" says the kept chain starts after */
};

static void problem(struct verify *vf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct verify *vf, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	vf->out->problems++;
	vf->fn(vf->ctx, line);
}

/* Where the chain may start: after "a/base" if there is one. */
static void chain_start(struct verify *vf, int base,
			struct cache_audit_chain *ch)
{
	int rc;

	memset(ch, 0, sizeof(*ch));
	if (!base)
		return;
	rc = cache_audit_base_read(vf->region, vf->key, vf->fsid, &ch->head);
	if (rc)
		problem(vf, "object %s: cannot be read: %s",
			CACHE_AUDIT_BASE_KEY, phi_strerror(rc));
	vf->base_seq = ch->head.seq;
}

static void chain_problem(struct verify *vf, const char *okey, int rc,
			  uint64_t expect, const struct cache_audit_seg *s)
{
	if (rc == CACHE_AUDIT_GAP)
		problem(vf, "object %s: events %" PRIu64 " to %" PRIu64
			" are missing before it", okey, expect,
			s->first - 1);
	else if (rc == CACHE_AUDIT_OVERLAP)
		problem(vf, "object %s: starts at event %" PRIu64
			", which an earlier segment holds", okey, s->first);
	else
		problem(vf, "object %s: does not chain to the segment before "
			"it (altered or replaced)", okey);
}

/* Compare the chain's end with the head the newest metadata object
 * (mkey) binds. */
static void check_head(struct verify *vf, const struct cache_audit_chain *ch,
		       const struct cache_audit_head *bound, const char *mkey,
		       const char *last, int matched)
{
	if (bound->seq == 0)
		return;		/* no segment bound yet */
	if (ch->head.seq < bound->seq)
		problem(vf, "object %s: the trail ends at event %" PRIu64
			" but metadata object %s binds it up to %" PRIu64
			" (segments after it are missing)", last, ch->head.seq,
			mkey, bound->seq);
	else if (!matched)
		problem(vf, "metadata object %s: binds event %" PRIu64
			" with a hash no segment has (the trail was altered)",
			mkey, bound->seq);
}

/* Check segment first in order; *resync after one that could not be
 * read (already reported: the next is taken as it comes). */
static int verify_one(struct verify *vf, struct cache_audit_chain *ch,
		      uint64_t first, struct buf *plain, int *resync,
		      const struct cache_audit_head *bound, int *matched)
{
	char okey[CACHE_AUDIT_KEY_LEN + 1];
	uint64_t expect = ch->head.seq + 1;
	struct cache_audit_seg s;
	int rc;

	cache_audit_seg_key(first, okey);
	rc = seg_read(vf->region, vf->key, vf->fsid, first, plain, &s);
	if (rc == -EIO || rc == PHI_EUNREACHABLE)
		return rc;		/* the region, not the object */
	if (rc) {
		problem(vf, "object %s: cannot be opened: %s", okey,
			phi_strerror(rc));
		*resync = 1;
		return 0;
	}
	if (vf->base_seq && s.last <= vf->base_seq)
		return 0;	/* left by a gc cut short: before the start */
	if (*resync) {
		ch->head.seq = s.first - 1;
		memcpy(ch->head.hash, s.prev, 32);
		*resync = 0;
	}
	rc = cache_audit_chain_add(ch, &s);
	if (rc)
		chain_problem(vf, okey, rc, expect, &s);
	if (s.last == bound->seq && !memcmp(s.hash, bound->hash, 32))
		*matched = 1;
	return 0;
}

int cache_audit_region_verify(struct backend *region,
			      const struct crypt_key *key,
			      const uint8_t fsid[16], cache_report_fn *fn,
			      void *ctx, struct cache_audit_verify *out)
{
	struct verify vf = { region, key, fsid, fn, ctx, out, 0 };
	char mkey[40], last[CACHE_AUDIT_KEY_LEN + 1] = "a/";
	struct cache_audit_head bound;
	struct cache_audit_chain ch;
	struct buf plain;
	uint64_t *v = NULL;
	size_t n = 0;
	int base = 0, resync = 0, matched = 0;
	int rc = seg_list(region, &v, &n, &base);

	memset(out, 0, sizeof(*out));
	if (rc == 0)
		rc = cache_audit_bound_head(region, key, fsid, &bound, mkey);
	if (rc == PHI_EAUTHFAIL || rc == PHI_ECORRUPT) {
		problem(&vf, "metadata object %s: cannot be opened: %s",
			mkey[0] ? mkey : "m/", phi_strerror(rc));
		memset(&bound, 0, sizeof(bound));
		rc = 0;
	}
	if (rc) {
		free(v);
		return rc;
	}
	chain_start(&vf, base, &ch);
	buf_init(&plain, SIZE_MAX);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = verify_one(&vf, &ch, v[i], &plain, &resync, &bound,
				&matched);
	buf_release(&plain);
	out->segments = ch.segments;
	out->events = ch.events;
	if (n)
		cache_audit_seg_key(v[n - 1], last);
	if (rc == 0)
		check_head(&vf, &ch, &bound, mkey, last, matched);
	free(v);
	return rc;
}

/* --- gc: deleting the oldest segments ---------------------------------- */

/* Store "a/base": the kept chain starts after h. */
static int base_write(struct backend *region, const struct crypt_key *key,
		      const uint8_t fsid[16], const struct cache_audit_head *h)
{
	uint8_t plain[8 + CACHE_AUDIT_HEAD_SIZE];
	struct buf sealed;
	int rc;

	memcpy(plain, "PHIB\1\0\0\0", 8);
	cache_audit_head_encode(h, plain + 8);
	buf_init(&sealed, SIZE_MAX);
	rc = buf_reserve(&sealed, crypt_seal_bound(sizeof(plain)));
	if (rc == 0)
		rc = crypt_seal(key, fsid, CACHE_AUDIT_BASE_KEY, plain,
				sizeof(plain), &sealed);
	if (rc == 0)
		rc = backend_put(region, CACHE_AUDIT_BASE_KEY,
				 buf_data(&sealed), buf_len(&sealed));
	buf_release(&sealed);
	return rc;
}

/* How many of the n oldest segments v[] may go: each cut before
 * keep_after_ms, read whole, never the newest; *last the head after the
 * last of them. */
static size_t gc_prefix(struct backend *region, const struct crypt_key *key,
			const uint8_t fsid[16], const uint64_t *v, size_t n,
			int64_t keep_after_ms, struct cache_audit_head *last)
{
	struct cache_audit_seg s;
	struct buf plain;
	size_t cut = 0;

	buf_init(&plain, SIZE_MAX);
	while (cut + 1 < n &&
	       seg_read(region, key, fsid, v[cut], &plain, &s) == 0 &&
	       s.time_ms < keep_after_ms) {
		last->seq = s.last;
		memcpy(last->hash, s.hash, 32);
		cut++;
	}
	buf_release(&plain);
	return cut;
}

int cache_audit_region_gc(struct backend *region, const struct crypt_key *key,
			  const uint8_t fsid[16], int64_t keep_after_ms,
			  int dry_run, uint64_t *deleted)
{
	struct cache_audit_head last = { 0 };
	uint64_t *v = NULL;
	size_t n = 0, cut;
	int base, rc = seg_list(region, &v, &n, &base);

	*deleted = 0;
	if (rc)
		return rc;
	cut = gc_prefix(region, key, fsid, v, n, keep_after_ms, &last);
	/* the start is recorded before anything goes: a run cut short
	 * leaves segments that verify passes over, never a chain with no
	 * known start */
	if (cut && !dry_run)
		rc = base_write(region, key, fsid, &last);
	for (size_t i = 0; rc == 0 && i < cut; i++) {
		char okey[CACHE_AUDIT_KEY_LEN + 1];

		cache_audit_seg_key(v[i], okey);
		if (!dry_run)
			rc = backend_del(region, okey);
		if (rc == -ENOENT)
			rc = 0;
		if (rc == 0)
			(*deleted)++;
	}
	free(v);
	return rc;
}

/* --- where a region's trail ends --------------------------------------- */

int cache_auditseg_region_end(struct backend *region,
			      const struct crypt_key *key,
			      const uint8_t fsid[16], struct cache_audit_head *h)
{
	struct cache_audit_seg s;
	struct buf plain;
	uint64_t *v = NULL;
	size_t n = 0;
	int base, rc = seg_list(region, &v, &n, &base);

	buf_init(&plain, SIZE_MAX);
	/* the newest segment that opens; one that does not is fsck's */
	while (rc == 0 && n > 0) {
		if (seg_read(region, key, fsid, v[--n], &plain, &s) != 0)
			continue;
		if (s.last > h->seq) {
			h->seq = s.last;
			memcpy(h->hash, s.hash, 32);
		}
		break;
	}
	buf_release(&plain);
	free(v);
	return rc;
}
