/*
 * cache_journal.c - metadata in the regions: journal segments and
 * snapshots, and rebuilding a cache_dir from them.
 *
 * Every write transaction notes the keys of replicated records it changes
 * in the `changed` db (cache_jnote()).  cache_journal_flush() turns them into
 * one segment: the current value of each noted key, or its deletion, so that
 * a segment says what the records are after it, not how they got there,
 * and applying it twice is harmless.  Now and then a snapshot holds all
 * replicated records instead.  Either is sealed (zstd + AES-256-GCM, bound
 * to its object key) and written to cache_dir/journal/ before one
 * transaction records it in `metaq`, clears `changed` and advances
 * meta_seq: the same discipline as packs (cache_seal.c).  The uploaders
 * send it to a region only once every pack it may point into is there.
 *
 * Object names are "m/" and 32 hex digits that only the key can read
 * (crypt_name_encode()): 'M', the kind ('S' snapshot, 'J' segment), the
 * sequence number (48 bits) and the time in ms, so that recovery finds
 * its way from a listing alone, and a region's listing says nothing.
 *
 * Plaintext of a segment or snapshot, format 2 (integers big-endian
 * unless said otherwise; format 1 is the same, and its block records
 * are never masked):
 *
 *	0	4	"PHIJ"
 *	4	1	format version (JOURNAL_VERSION)
 *	5	1	kind, 'S' or 'J'
 *	6	2	zero
 *	8	8	sequence number
 *	16	8	time, ms since the epoch
 *	24	8	the last pack sequence number it may point into
 *	32	8	number of records
 *	40	...	records: db id (1), op (1: 1 put, 2 delete), key length
 *			(2), value length (4), key, value
 *
 * Record values are the LMDB values as they are, in the byte order of the
 * machine that wrote them (little-endian x86-64 and arm64 alike): moving
 * a filesystem to a big-endian machine is not supported by format 1.
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

#define SNAPSHOT_EVERY 100	/* segments between snapshots, at most */
#define OP_PUT JOURNAL_OP_PUT
#define OP_DEL JOURNAL_OP_DEL
#define HEADER JOURNAL_HEADER

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t cache_journal_get_be(const uint8_t *p, int n)
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

/* --- names ------------------------------------------------------------- */

static int meta_name(const struct crypt_key *key, const uint8_t fsid[16],
		     int kind, uint64_t seq, int64_t time_ms,
		     char out[PACK_KEY_LEN + 1])
{
	uint8_t plain[16];
	char hex[33];
	int rc;

	plain[0] = 'M';
	plain[1] = (uint8_t)kind;
	put_be(plain + 2, seq, 6);
	put_be(plain + 8, (uint64_t)time_ms, 8);
	rc = crypt_name_encode(key, fsid, plain, hex);
	if (rc == 0)
		snprintf(out, PACK_KEY_LEN + 1, "m/%s", hex);
	return rc;
}

/* 0 and the fields if key is a metadata object name of this filesystem. */
static int meta_parse(const struct crypt_key *key, const uint8_t fsid[16],
		      const char *name, struct cache_moment *m)
{
	uint8_t plain[16];

	if (strncmp(name, "m/", 2) != 0 || strlen(name) != 34 ||
	    crypt_name_decode(key, fsid, name + 2, plain) != 0 ||
	    plain[0] != 'M' || (plain[1] != 'S' && plain[1] != 'J'))
		return -EINVAL;
	m->snapshot = plain[1] == 'S';
	m->seq = cache_journal_get_be(plain + 2, 6);
	m->time_ms = (int64_t)cache_journal_get_be(plain + 8, 8);
	snprintf(m->key, sizeof(m->key), "%s", name);
	return 0;
}

void cache_journal_file(const char *key, char *out, size_t size)
{
	snprintf(out, size, "journal/%s", key + 2);
}

/* --- writing ----------------------------------------------------------- */

struct jbuf {
	struct buf b;
	uint64_t count;
	int err;
};

static void rec_add(struct jbuf *j, int db, int op, const void *k,
		    size_t klen, const void *v, size_t vlen)
{
	uint8_t h[8];

	if (j->err)
		return;
	h[0] = (uint8_t)db;
	h[1] = (uint8_t)op;
	put_be(h + 2, klen, 2);
	put_be(h + 4, vlen, 4);
	j->err = buf_add(&j->b, h, sizeof(h));
	if (!j->err)
		j->err = buf_add(&j->b, k, klen);
	if (!j->err && vlen)
		j->err = buf_add(&j->b, v, vlen);
	j->count++;
}

MDB_dbi cache_journal_db(struct cache *c, int db)
{
	return cache_rec_db(c, db);
}

/* The replicated form of a value: a block map entry without its local
 * resident flag (its checksum goes along: it names the plaintext). */
static void add_value(struct jbuf *j, int db, const MDB_val *k,
		      const MDB_val *v)
{
	if (db == JDB_BLOCKS && v->mv_size == sizeof(struct block_rec)) {
		struct block_rec br;

		memcpy(&br, v->mv_data, sizeof(br));
		br.flags &= ~BLOCK_RESIDENT;
		rec_add(j, db, OP_PUT, k->mv_data, k->mv_size, &br, sizeof(br));
		return;
	}
	rec_add(j, db, OP_PUT, k->mv_data, k->mv_size, v->mv_data, v->mv_size);
}

static const char *const super_keys[] = {
	"version", "fsid", "block_size", "next_ino",
};

static int dump_all(struct cache *c, MDB_txn *txn, struct jbuf *j)
{
	static const int dbs[] = { JDB_INODES, JDB_DIRENTS, JDB_COOKIES,
				   JDB_XATTRS, JDB_BLOCKS };

	for (size_t i = 0; i < 4; i++) {
		MDB_val k = { strlen(super_keys[i]), (void *)super_keys[i] }, v;

		if (mdb_get(txn, c->db_super, &k, &v) == 0)
			add_value(j, JDB_SUPER, &k, &v);
	}
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_cursor *cur;
		MDB_val k, v;
		int rc = mdb_cursor_open(txn, cache_journal_db(c, dbs[i]),
					 &cur);

		size_t mark = cache_rec_mark();

		if (rc)
			return cache_meta_err(rc);
		/* in the plain form: another cache reads it */
		while ((rc = cache_rec_cursor(c, dbs[i], cur, &k, &v,
					      MDB_NEXT)) == 0) {
			add_value(j, dbs[i], &k, &v);
			cache_rec_release(mark);
		}
		mdb_cursor_close(cur);
		if (rc != MDB_NOTFOUND)
			return cache_meta_err(rc);
	}
	return j->err;
}

static int dump_changed(struct cache *c, MDB_txn *txn, struct jbuf *j)
{
	MDB_cursor *cur;
	MDB_val ck, cv;
	int rc = mdb_cursor_open(txn, c->db_changed, &cur);

	if (rc)
		return cache_meta_err(rc);
	while ((rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT)) == 0) {
		int db = ck.mv_size ? ((uint8_t *)ck.mv_data)[0] : 0;
		size_t mark = cache_rec_mark();
		MDB_val k, v;

		if (db < JDB_SUPER || db > JDB_BLOCKS)
			continue;
		/* the plain form: a sealed name comes back from its note */
		rc = cache_rec_noted(c, txn, &ck, &cv, &k, &v);
		if (rc == 0)
			add_value(j, db, &k, &v);
		else if (rc == MDB_NOTFOUND)
			rec_add(j, db, OP_DEL, k.mv_data, k.mv_size, NULL, 0);
		cache_rec_release(mark);
		if (rc && rc != MDB_NOTFOUND)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? j->err : cache_meta_err(rc);
}

static uint64_t super_u64(struct cache *c, MDB_txn *txn, const char *key,
			  uint64_t dflt)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	uint64_t x;

	if (mdb_get(txn, c->db_super, &k, &v) || v.mv_size != 8)
		return dflt;
	memcpy(&x, v.mv_data, 8);
	return x;
}

uint64_t cache_journal_seq(struct cache *c, MDB_txn *txn)
{
	return super_u64(c, txn, "meta_seq", 0);
}

int cache_journal_set_u64(struct cache *c, MDB_txn *txn, const char *key,
			  uint64_t x)
{
	MDB_val k = { strlen(key), (void *)key }, v = { 8, &x };

	return mdb_put(txn, c->db_super, &k, &v, 0);
}

struct flush_arg {
	uint64_t seq;		/* out: 0 if there was nothing to write */
	char file[80];		/* out: the local copy, for undo */
	struct cache_auditseg_undo audit;	/* out: segments stored */
};

/* Where the journal stands, read at the start of a flush. */
struct jstate {
	uint64_t seq;		/* of the object to write */
	uint64_t snap_seq;	/* of the last snapshot */
	uint64_t since;		/* bytes of segments since that snapshot */
	uint64_t snap_size;	/* bytes of that snapshot */
	uint64_t dep;		/* the last pack it may point into */
	int need;		/* a snapshot was asked for */
	int snapshot;		/* the object is a snapshot, not a segment */
	int64_t t;		/* its time, ms since the epoch */
};

/* Read the journal's counters from the superblock, and the time. */
static void journal_state(struct cache *c, MDB_txn *txn, struct jstate *js)
{
	js->seq = super_u64(c, txn, "meta_seq", 0) + 1;
	js->snap_seq = super_u64(c, txn, "meta_snap_seq", 0);
	js->since = super_u64(c, txn, "meta_since_snap", 0);
	js->snap_size = super_u64(c, txn, "meta_snap_size", 0);
	js->dep = super_u64(c, txn, "next_seq", 1) - 1;
	js->need = super_u64(c, txn, "need_snapshot", 0) != 0;
	js->snapshot = 0;
	js->t = now_ms();
}

/* The audit trail's head, if a segment was ever cut, in every object:
 * the newest one in a region says where its "a/" chain must reach
 * (cache_auditseg.c).  A reader before it skips the record (a
 * superblock key not its own). */
static int add_audit_head(struct cache *c, MDB_txn *txn, struct jbuf *j)
{
	static const char hk[] = "audit_head";
	struct cache_audit_head h;
	uint8_t v[CACHE_AUDIT_HEAD_SIZE];
	int rc = cache_auditseg_head(c, txn, &h);

	if (rc || h.seq == 0)
		return rc;
	cache_audit_head_encode(&h, v);
	rec_add(j, JDB_SUPER, OP_PUT, hk, sizeof(hk) - 1, v, sizeof(v));
	return j->err;
}

/* Build the object's plaintext (header and records) in j, its name in key. */
static int build_plain(struct cache *c, MDB_txn *txn, const struct jstate *js,
		       struct jbuf *j, char key[PACK_KEY_LEN + 1])
{
	uint8_t h[HEADER];
	int rc;

	memcpy(h, "PHIJ", 4);
	h[4] = JOURNAL_VERSION;
	h[5] = js->snapshot ? 'S' : 'J';
	h[6] = h[7] = 0;
	put_be(h + 8, js->seq, 8);
	put_be(h + 16, (uint64_t)js->t, 8);
	put_be(h + 24, js->dep, 8);
	j->err = buf_add(&j->b, h, sizeof(h));
	rc = j->err ? j->err : js->snapshot ? dump_all(c, txn, j) :
	     dump_changed(c, txn, j);
	if (rc == 0)
		rc = add_audit_head(c, txn, j);
	if (rc == 0) {
		put_be((uint8_t *)buf_mut(&j->b) + 32, j->count, 8);
		rc = meta_name(c->seal->key, c->fsid, h[5], js->seq, js->t, key);
	}
	return rc;
}

/* Queue the stored object for upload, clear `changed`, advance the counters. */
static int record_object(struct cache *c, MDB_txn *txn,
			 const struct jstate *js, const char *key,
			 uint64_t size)
{
	struct meta_rec mr = { 0 };
	uint8_t k[8];
	MDB_val kk = { 8, k }, vv = { sizeof(mr), &mr };
	int rc;

	snprintf(mr.key, sizeof(mr.key), "%s", key);
	mr.size = size;
	mr.pending = c->seal->all_bits;
	mr.dep = js->dep;
	mr.time_ms = js->t;
	mr.snapshot = js->snapshot;
	key_put_u64(k, js->seq);
	rc = cache_meta_err(mdb_put(txn, c->db_metaq, &kk, &vv, 0));
	if (rc == 0)
		rc = cache_meta_err(mdb_drop(txn, c->db_changed, 0));
	if (rc == 0)
		rc = cache_meta_err(cache_journal_set_u64(c, txn, "meta_seq",
							  js->seq));
	if (rc == 0 && js->snapshot) {
		rc = cache_meta_err(cache_journal_set_u64(c, txn,
				"meta_snap_seq", js->seq));
		if (rc == 0)
			rc = cache_meta_err(cache_journal_set_u64(c, txn,
					"meta_snap_size", mr.size));
		if (rc == 0)
			rc = cache_meta_err(cache_journal_set_u64(c, txn,
						      "meta_since_snap", 0));
		if (rc == 0)
			rc = cache_meta_err(cache_journal_set_u64(c, txn,
						      "need_snapshot", 0));
	} else if (rc == 0) {
		rc = cache_meta_err(cache_journal_set_u64(c, txn,
				"meta_since_snap", js->since + mr.size));
	}
	return rc;
}

/* One segment or snapshot: built, sealed, stored durably, then recorded. */
static int flush_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct flush_arg *a = arg;
	struct jbuf j = { .count = 0, .err = 0 };
	char key[PACK_KEY_LEN + 1];
	struct jstate js;
	struct buf sealed;
	MDB_stat st;
	int rc;

	journal_state(c, txn, &js);
	if (mdb_stat(txn, c->db_changed, &st))
		return -EIO;
	/* the audit events first: this object binds the head they make */
	memset(&a->audit, 0, sizeof(a->audit));
	rc = cache_auditseg_cut(c, txn, js.seq, &a->audit);
	if (rc)
		return rc;
	if (st.ms_entries == 0 && !js.need && js.seq > 1 && !a->audit.cut)
		return 0;		/* nothing new */
	js.snapshot = js.seq == 1 || js.need ||
		      js.seq - js.snap_seq >= SNAPSHOT_EVERY ||
		      (js.snap_size && js.since > js.snap_size);
	buf_init(&j.b, SIZE_MAX);
	rc = build_plain(c, txn, &js, &j, key);
	buf_init(&sealed, SIZE_MAX);
	if (rc == 0)
		rc = buf_reserve(&sealed, crypt_seal_bound(buf_len(&j.b)));
	if (rc == 0)
		rc = crypt_seal(c->seal->key, c->fsid, key, buf_data(&j.b),
				buf_len(&j.b), &sealed);
	buf_release(&j.b);
	if (rc == 0) {
		cache_journal_file(key, a->file, sizeof(a->file));
		rc = cache_store_durably(c, "journal", a->file,
				   buf_data(&sealed), buf_len(&sealed));
		if (rc)
			a->file[0] = '\0';
	}
	if (rc == 0) {
		rc = record_object(c, txn, &js, key, buf_len(&sealed));
		a->seq = js.seq;
	}
	buf_release(&sealed);
	return rc;
}

int cache_journal_flush(struct cache *c, uint64_t *seq)
{
	struct flush_arg a = { 0, "", { { 0 }, 0, 0, 0 } };
	int rc;

	*seq = 0;
	if (!c->seal || !c->have_blockdbs)
		return 0;
	rc = cache_meta_write(c, flush_txn, &a);
	if (rc && a.file[0])
		unlinkat(c->dirfd, a.file, 0);	/* never recorded */
	if (rc)
		cache_auditseg_undo(c, &a.audit);
	if (rc == 0)
		cache_packs_used_add(c, a.audit.bytes);
	if (rc == 0 && a.seq) {
		struct stat st;

		if (fstatat(c->dirfd, a.file, &st, 0) == 0)
			cache_packs_used_add(c, (uint64_t)st.st_size);
		*seq = a.seq;
	}
	return rc;
}

int cache_journal_pending(struct cache *c)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc, any = 0;

	if (!c->have_blockdbs)
		return 0;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return 0;
	if (mdb_stat(txn, c->db_changed, &st) == 0)
		any = st.ms_entries > 0;
	if (!any)
		any = super_u64(c, txn, "need_snapshot", 0) ||
		      super_u64(c, txn, "meta_seq", 0) == 0;
	if (!any)
		any = cache_auditseg_pending(c, txn);
	cache_meta_read_end(txn);
	return any;
}

/* --- reading: the history of a region ---------------------------------- */

struct list_ctx {
	const struct crypt_key *key;
	const uint8_t *fsid;
	struct cache_moment *v;
	size_t n, cap;
	int err;
};

static int list_one(void *arg, const char *name, uint64_t size)
{
	struct list_ctx *l = arg;
	struct cache_moment m;

	if (meta_parse(l->key, l->fsid, name, &m))
		return 0;		/* not ours: ignore */
	m.size = size;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		void *p = realloc(l->v, cap * sizeof(*l->v));

		if (!p) {
			l->err = -ENOMEM;
			return -ENOMEM;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = m;
	return 0;
}

static int cmp_moment(const void *a, const void *b)
{
	const struct cache_moment *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->time_ms < y->time_ms ? -1 : x->time_ms > y->time_ms;
}

int cache_history_list(struct backend *region, const struct crypt_key *key,
		       const uint8_t fsid[16], struct cache_moment **out,
		       size_t *count)
{
	struct list_ctx l = { key, fsid, NULL, 0, 0, 0 };
	int rc = backend_list(region, "m/", list_one, &l);

	if (rc == 0 && l.err)
		rc = l.err;
	if (rc) {
		free(l.v);
		return rc;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_moment);
	*out = l.v;
	*count = l.n;
	return 0;
}
