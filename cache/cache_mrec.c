/*
 * cache_mrec.c - the replicated records of names and attributes, sealed
 * in the local store.
 *
 * Six tables hold what says who a patient is, or when a file was used:
 * `inodes` (attributes and link targets), `dirents` (names),
 * `dircookies` (names again, in readdir order), `xattrs`, the local audit
 * trail, `audit` (who touched which path, cache_audit.c), and `lru`
 * (when each file was last used, cache_lru.c).  With local_seal on, their records are kept in a
 * local form that only the key opens:
 *
 *   - a key that holds a name (dirents: parent || name; xattrs: ino ||
 *     name) keeps its first 8 bytes and replaces the name by its keyed
 *     hash (crypt_local_name(), the table's journal id as domain), so a
 *     lookup still finds it and LMDB's order says nothing;
 *   - every value is sealed (crypt_local_seal_value()) with the table's
 *     journal id and the local key as associated data, so a value moved
 *     to another record fails.  Its plaintext is the value, preceded in
 *     the two hashed tables by the name's length (2 bytes, big-endian)
 *     and the name, so that a walk gets the name back, and followed by
 *     1 to PAD bytes of padding (zeros, the last one their count), so
 *     that a record's size tells a name's or a link target's length to
 *     PAD bytes only.
 *
 * Everything above works in the plain form, through cache_rec_get(),
 * _put(), _del() and _cursor(); the journal (cache_journal.c) and the
 * regions see the plain form only, so another cache, under keys of its
 * own, reads what this one wrote.  A `changed` note of a hashed key
 * carries the plain key sealed (its value), so that a deletion reaches
 * the journal with its name.
 *
 * An opened value lives in this thread's pool until its transaction ends
 * (cache_meta_read_end(), or cache_meta_write() returning), as LMDB's own
 * values live until then; a walk over a whole table gives them back
 * sooner (cache_rec_mark(), cache_rec_release()).  Given back, a value is
 * wiped.
 *
 * "meta_seal" in the super table says which form the tables are in (0
 * or absent plain, 1 sealed).  A read-write open with the key that wants
 * the other form rewrites all six tables in one transaction.
 */
#include "cache_int.h"
#include "crypt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define NAME_PREFIX 8			/* bytes of a hashed key kept */
#define LOCAL_HASHED (NAME_PREFIX + CRYPT_LOCAL_NAME)
#define MAX_KEY 511
#define PAD 32				/* values sealed in multiples of it */

/* --- the pool of opened values ------------------------------------------ */

struct opened {
	struct opened *next;
	size_t size;
	unsigned char data[];
};

static __thread struct {
	struct opened *top;
	size_t count;
	int depth;
} pool;

static void *pool_take(size_t size)
{
	struct opened *o = malloc(sizeof(*o) + (size ? size : 1));

	if (!o)
		return NULL;
	o->size = size;
	o->next = pool.top;
	pool.top = o;
	pool.count++;
	return o->data;
}

size_t cache_rec_mark(void)
{
	return pool.count;
}

void cache_rec_release(size_t mark)
{
	while (pool.count > mark && pool.top) {
		struct opened *o = pool.top;

		pool.top = o->next;
		pool.count--;
		OPENSSL_cleanse(o->data, o->size);
		free(o);
	}
}

void cache_rec_txn_begin(void)
{
	pool.depth++;
}

void cache_rec_txn_end(void)
{
	if (pool.depth > 0 && --pool.depth == 0)
		cache_rec_release(0);
}

/* --- the two forms ------------------------------------------------------ */

MDB_dbi cache_rec_db(struct cache *c, int jdb)
{
	switch (jdb) {
	case JDB_SUPER: return c->db_super;
	case JDB_INODES: return c->db_inodes;
	case JDB_DIRENTS: return c->db_dirents;
	case JDB_COOKIES: return c->db_cookies;
	case JDB_XATTRS: return c->db_xattrs;
	case JDB_AUDIT: return c->db_audit;
	case JDB_LRU: return c->db_lru;
	default: return c->db_blocks;
	}
}

static int hashed(int jdb)
{
	return jdb == JDB_DIRENTS || jdb == JDB_XATTRS;
}

int cache_rec_sealed_db(int jdb)
{
	return jdb == JDB_INODES || jdb == JDB_DIRENTS ||
	       jdb == JDB_COOKIES || jdb == JDB_XATTRS || jdb == JDB_AUDIT ||
	       jdb == JDB_LRU;
}

/* The local key of plain key k in buf (at least LOCAL_HASHED + 1 bytes
 * when hashed, else k's size) as *out. */
static int local_key(struct cache *c, int jdb, const MDB_val *k,
		     uint8_t *buf, MDB_val *out)
{
	if (k->mv_size > MAX_KEY)
		return MDB_BAD_VALSIZE;
	if (!hashed(jdb)) {
		*out = *k;
		return 0;
	}
	if (k->mv_size < NAME_PREFIX)
		return PHI_ECORRUPT;
	memcpy(buf, k->mv_data, NAME_PREFIX);
	out->mv_size = LOCAL_HASHED;
	out->mv_data = buf;
	return crypt_local_name(c->mkeys, (uint8_t)jdb,
				key_get_u64(k->mv_data),
				(const uint8_t *)k->mv_data + NAME_PREFIX,
				k->mv_size - NAME_PREFIX, buf + NAME_PREFIX);
}

/* The aad of a record: its table and local key. */
static size_t rec_aad(int jdb, const MDB_val *lk, uint8_t *aad)
{
	aad[0] = (uint8_t)jdb;
	memcpy(aad + 1, lk->mv_data, lk->mv_size);
	return 1 + lk->mv_size;
}

/* Seal plain key k and value v (lk their local key) into a new pool
 * value, *out. */
static int seal_value(struct cache *c, int jdb, const MDB_val *k,
		      const MDB_val *lk, const MDB_val *v, MDB_val *out)
{
	size_t nlen = hashed(jdb) ? k->mv_size - NAME_PREFIX : 0;
	size_t head = hashed(jdb) ? 2 + nlen : 0, used = head + v->mv_size;
	size_t pad = PAD - used % PAD, plen = used + pad;
	uint8_t aad[1 + MAX_KEY], *plain, *sealed;
	size_t alen = rec_aad(jdb, lk, aad);
	int rc;

	plain = malloc(plen);
	sealed = pool_take(plen + CRYPT_LOCAL_VALUE_OVERHEAD);
	if (!plain || !sealed) {
		free(plain);
		return -ENOMEM;
	}
	/* zeros, then how many bytes of padding (1 to PAD) */
	memset(plain + used, 0, pad);
	plain[plen - 1] = (uint8_t)pad;
	if (head) {
		plain[0] = (uint8_t)(nlen >> 8);
		plain[1] = (uint8_t)nlen;
		memcpy(plain + 2, (const uint8_t *)k->mv_data + NAME_PREFIX,
		       nlen);
	}
	if (v->mv_size)
		memcpy(plain + head, v->mv_data, v->mv_size);
	rc = crypt_local_seal_value(c->mkeys, aad, alen, plain, plen, sealed);
	OPENSSL_cleanse(plain, plen);
	free(plain);
	out->mv_size = plen + CRYPT_LOCAL_VALUE_OVERHEAD;
	out->mv_data = sealed;
	return rc;
}

/* Open local record (lk, lv) of jdb: its plain key (hashed tables) and
 * value, in the pool. */
static int open_value(struct cache *c, int jdb, MDB_val *lk, MDB_val *lv)
{
	uint8_t aad[1 + MAX_KEY], *plain, *key;
	size_t alen, plen, nlen;
	int rc;

	if (!c->mkeys)
		return -EACCES;	/* a tool without the key */
	if (lk->mv_size > MAX_KEY ||
	    lv->mv_size < CRYPT_LOCAL_VALUE_OVERHEAD ||
	    (hashed(jdb) && lk->mv_size != LOCAL_HASHED))
		return PHI_ECORRUPT;
	alen = rec_aad(jdb, lk, aad);
	plen = lv->mv_size - CRYPT_LOCAL_VALUE_OVERHEAD;
	plain = pool_take(plen);
	if (!plain)
		return -ENOMEM;
	rc = crypt_local_open_value(c->mkeys, aad, alen, lv->mv_data,
				    lv->mv_size, plain);
	if (rc)
		return rc;
	if (plen == 0 || plain[plen - 1] == 0 || plain[plen - 1] > PAD ||
	    plain[plen - 1] > plen)
		return PHI_ECORRUPT;
	plen -= plain[plen - 1];
	if (!hashed(jdb)) {
		lv->mv_data = plain;
		lv->mv_size = plen;
		return 0;
	}
	if (plen < 2)
		return PHI_ECORRUPT;
	nlen = (size_t)plain[0] << 8 | plain[1];
	if (nlen > plen - 2)
		return PHI_ECORRUPT;
	key = pool_take(NAME_PREFIX + nlen);
	if (!key)
		return -ENOMEM;
	memcpy(key, lk->mv_data, NAME_PREFIX);
	memcpy(key + NAME_PREFIX, plain + 2, nlen);
	lk->mv_data = key;
	lk->mv_size = NAME_PREFIX + nlen;
	lv->mv_data = plain + 2 + nlen;
	lv->mv_size = plen - 2 - nlen;
	return 0;
}

int cache_rec_keyless(const struct cache *c)
{
	return c->msealed && !c->mkeys;
}

static int sealed_here(const struct cache *c, int jdb)
{
	return c->msealed && cache_rec_sealed_db(jdb);
}

/* --- the journal's notes ------------------------------------------------ */

/* Note plain key k of jdb (local key lk) as changed. */
static int note(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *k,
		const MDB_val *lk)
{
	uint8_t nk[1 + MAX_KEY], aad[2 + MAX_KEY], *sealed;
	MDB_val kk = { 1 + lk->mv_size, nk }, v = { 0, (void *)"" };
	size_t mark = cache_rec_mark();
	int rc;

	if (!c->journal)
		return 0;
	if (!sealed_here(c, jdb) || !hashed(jdb))
		return cache_jnote(c, txn, jdb, lk);
	if (lk->mv_size > MAX_KEY)
		return MDB_BAD_VALSIZE;
	nk[0] = (uint8_t)jdb;
	memcpy(nk + 1, lk->mv_data, lk->mv_size);
	aad[0] = 'C';
	memcpy(aad + 1, nk, kk.mv_size);
	sealed = pool_take(k->mv_size + CRYPT_LOCAL_VALUE_OVERHEAD);
	if (!sealed)
		return -ENOMEM;
	rc = crypt_local_seal_value(c->mkeys, aad, 1 + kk.mv_size,
				    k->mv_data, k->mv_size, sealed);
	v.mv_size = k->mv_size + CRYPT_LOCAL_VALUE_OVERHEAD;
	v.mv_data = sealed;
	if (rc == 0)
		rc = mdb_put(txn, c->db_changed, &kk, &v, 0);
	cache_rec_release(mark);
	return rc;
}

int cache_rec_noted(struct cache *c, MDB_txn *txn, const MDB_val *ck,
		    const MDB_val *cv, MDB_val *key, MDB_val *val)
{
	int jdb = ck->mv_size ? ((const uint8_t *)ck->mv_data)[0] : 0;
	MDB_val lk = { ck->mv_size - 1, (uint8_t *)ck->mv_data + 1 }, lv;
	int rc;

	if (ck->mv_size < 1)
		return PHI_ECORRUPT;
	rc = mdb_get(txn, cache_rec_db(c, jdb), &lk, &lv);
	if (rc == 0) {
		*key = lk;
		*val = lv;
		return sealed_here(c, jdb) ? open_value(c, jdb, key, val) : 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	/* gone: its plain key */
	*key = lk;
	if (sealed_here(c, jdb) && hashed(jdb)) {
		uint8_t aad[2 + MAX_KEY], *plain;
		size_t plen;

		if (!c->mkeys)
			return -EACCES;
		if (cv->mv_size < CRYPT_LOCAL_VALUE_OVERHEAD ||
		    ck->mv_size > 1 + MAX_KEY)
			return PHI_ECORRUPT;
		plen = cv->mv_size - CRYPT_LOCAL_VALUE_OVERHEAD;
		plain = pool_take(plen);
		if (!plain)
			return -ENOMEM;
		aad[0] = 'C';
		memcpy(aad + 1, ck->mv_data, ck->mv_size);
		rc = crypt_local_open_value(c->mkeys, aad, 1 + ck->mv_size,
					    cv->mv_data, cv->mv_size, plain);
		if (rc)
			return rc;
		key->mv_data = plain;
		key->mv_size = plen;
	}
	return MDB_NOTFOUND;
}

/* --- reading and writing ------------------------------------------------ */

int cache_rec_open(struct cache *c, int jdb, MDB_val *key, MDB_val *val)
{
	return sealed_here(c, jdb) ? open_value(c, jdb, key, val) : 0;
}

int cache_rec_get(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key,
		  MDB_val *val)
{
	uint8_t buf[LOCAL_HASHED + 1];
	MDB_val lk;
	int rc;

	if (!sealed_here(c, jdb))
		return mdb_get(txn, cache_rec_db(c, jdb), (MDB_val *)key,
			       val);
	if (!c->mkeys)
		return -EACCES;
	rc = local_key(c, jdb, key, buf, &lk);
	if (rc == 0)
		rc = mdb_get(txn, cache_rec_db(c, jdb), &lk, val);
	if (rc == 0)
		rc = open_value(c, jdb, &lk, val);
	return rc;
}

int cache_rec_put(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key,
		  const MDB_val *val, unsigned flags)
{
	uint8_t buf[LOCAL_HASHED + 1];
	size_t mark = cache_rec_mark();
	MDB_val lk, lv = *val;
	int rc = 0;

	if (!sealed_here(c, jdb)) {
		lk = *key;
	} else if (!c->mkeys) {
		return -EACCES;
	} else {
		rc = local_key(c, jdb, key, buf, &lk);
		if (rc == 0)
			rc = seal_value(c, jdb, key, &lk, val, &lv);
	}
	if (rc == 0)
		rc = mdb_put(txn, cache_rec_db(c, jdb), &lk, &lv,
			     flags & ~CACHE_REC_QUIET);
	if (rc == 0 && !(flags & CACHE_REC_QUIET))
		rc = note(c, txn, jdb, key, &lk);
	cache_rec_release(mark);
	return rc;
}

int cache_rec_del(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key,
		  unsigned flags)
{
	uint8_t buf[LOCAL_HASHED + 1];
	MDB_val lk = *key;
	int rc = 0;

	if (sealed_here(c, jdb)) {
		if (!c->mkeys)
			return -EACCES;
		rc = local_key(c, jdb, key, buf, &lk);
	}
	if (rc == 0)
		rc = mdb_del(txn, cache_rec_db(c, jdb), &lk, NULL);
	if (rc == 0 && !(flags & CACHE_REC_QUIET))
		rc = note(c, txn, jdb, key, &lk);
	return rc;
}

int cache_rec_cursor(struct cache *c, int jdb, MDB_cursor *cur, MDB_val *key,
		     MDB_val *val, MDB_cursor_op op)
{
	uint8_t buf[LOCAL_HASHED + 1];
	int rc;

	if (!sealed_here(c, jdb))
		return mdb_cursor_get(cur, key, val, op);
	if (!c->mkeys)
		return -EACCES;
	MDB_val given = *key;

	if ((op == MDB_SET || op == MDB_SET_KEY || op == MDB_SET_RANGE) &&
	    hashed(jdb) && key->mv_size > NAME_PREFIX) {
		MDB_val lk;

		rc = local_key(c, jdb, key, buf, &lk);
		if (rc)
			return rc;
		*key = lk;
	}
	rc = mdb_cursor_get(cur, key, val, op);
	if (rc == 0)
		rc = open_value(c, jdb, key, val);
	else
		*key = given;	/* never our buffer */
	return rc;
}

/* The next journal object is a snapshot (super "need_snapshot"). */
static int need_snapshot(struct cache *c, MDB_txn *txn)
{
	uint64_t one = 1;
	MDB_val k = { 13, (void *)"need_snapshot" }, v = { sizeof(one), &one };

	return c->have_blockdbs ? mdb_put(txn, c->db_super, &k, &v, 0) : 0;
}

int cache_rec_del_prefixed(struct cache *c, MDB_txn *txn, int jdb,
			   uint64_t prefix)
{
	uint8_t k[8];
	MDB_val key, val;
	MDB_cursor *cur;
	int rc;

	key_put_u64(k, prefix);
	if (!c->mkeys && sealed_here(c, jdb))
		return -EACCES;
	rc = mdb_cursor_open(txn, cache_rec_db(c, jdb), &cur);
	if (rc)
		return cache_meta_err(rc);
	/* Seek again after each delete (see del_from() in cache_blk.c). */
	for (;;) {
		size_t mark = cache_rec_mark();

		key.mv_size = sizeof(k);
		key.mv_data = k;
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc || key.mv_size < 8 || memcmp(key.mv_data, k, 8))
			break;
		if (sealed_here(c, jdb) &&
		    (rc = open_value(c, jdb, &key, &val)) != 0) {
			/* it cannot be named to the journal: deleted all
			 * the same, and the next object is a snapshot */
			PHI_LOG(PHI_LOG_WARNING, "inode %llu: a record that "
				"fails its seal is deleted with it (%s)",
				(unsigned long long)prefix, phi_strerror(rc));
			rc = mdb_cursor_del(cur, 0);
			if (rc == 0)
				rc = need_snapshot(c, txn);
			cache_rec_release(mark);
			if (rc)
				break;
			continue;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc == 0 && c->journal) {
			uint8_t lb[LOCAL_HASHED + 1];
			MDB_val lk = key;

			if (sealed_here(c, jdb))
				rc = local_key(c, jdb, &key, lb, &lk);
			if (rc == 0)
				rc = note(c, txn, jdb, &key, &lk);
		}
		cache_rec_release(mark);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : cache_meta_err(rc);
}

/* --- opening and converting --------------------------------------------- */

static int id_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	MDB_val k = { 8, (void *)"cache_id" }, v;
	uint8_t *id = arg;
	int rc = mdb_get(txn, c->db_super, &k, &v);

	if (rc == 0)
		return v.mv_size == 16 ? (memcpy(id, v.mv_data, 16), 0) :
		       PHI_ECORRUPT;
	if (rc != MDB_NOTFOUND || c->rdonly)
		return cache_meta_err(rc);
	rc = crypt_random_bytes(id, 16);
	v = (MDB_val){ 16, id };
	return rc ? rc : cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

static int read_id(struct cache *c, uint8_t id[16], uint64_t *state)
{
	uint64_t pending = 0;
	int rc;
	MDB_txn *txn = cache_meta_read_begin(c, &rc);

	if (!txn)
		return rc;
	rc = id_txn(c, txn, id);
	*state = 0;
	if (cache_meta_super_get_u64(c, txn, "meta_seal", state))
		*state = 0;
	if (cache_meta_super_get_u64(c, txn, "meta_compact", &pending) ||
	    !pending)
		pending = 0;
	c->mcompact = pending != 0;
	cache_meta_read_end(txn);
	return rc;
}

/* Rewrite every record of jdb from the form c->msealed says into form
 * to, through table tmp. */
static int convert_db(struct cache *c, MDB_txn *txn, int jdb, MDB_dbi tmp,
		      int to, uint64_t *count)
{
	MDB_dbi db = cache_rec_db(c, jdb);
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, from = c->msealed;

	rc = mdb_cursor_open(txn, db, &cur);
	if (rc)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		size_t mark = cache_rec_mark();
		uint8_t buf[LOCAL_HASHED + 1];
		MDB_val lk, lv;

		if (from)
			rc = open_value(c, jdb, &k, &v);
		lk = k;
		lv = v;
		if (rc == 0 && to)
			rc = local_key(c, jdb, &k, buf, &lk);
		if (rc == 0 && to)
			rc = seal_value(c, jdb, &k, &lk, &v, &lv);
		if (rc == 0)
			rc = mdb_put(txn, tmp, &lk, &lv, 0);
		cache_rec_release(mark);
		if (rc)
			break;
		(*count)++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	rc = mdb_drop(txn, db, 0);
	if (rc == 0)
		rc = mdb_cursor_open(txn, tmp, &cur);
	if (rc)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
		if ((rc = mdb_put(txn, db, &k, &v, MDB_APPEND)) != 0)
			break;
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	return mdb_drop(txn, tmp, 0);
}

struct convert_arg {
	int to;
	uint64_t named;		/* records that held names: entries,
				   xattrs, audit events */
};

static int convert_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	static const int dbs[] = { JDB_INODES, JDB_DIRENTS, JDB_COOKIES,
				   JDB_XATTRS, JDB_AUDIT, JDB_LRU };
	struct convert_arg *a = arg;
	int to = a->to, rc;
	MDB_val k = { 9, (void *)"meta_seal" }, v;
	uint64_t state = (uint64_t)to;
	MDB_dbi tmp;

	a->named = 0;
	rc = mdb_dbi_open(txn, "mrec_convert", MDB_CREATE, &tmp);
	for (size_t i = 0; rc == 0 && i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		uint64_t n = 0;

		if ((dbs[i] == JDB_AUDIT && !c->db_audit_open) ||
		    (dbs[i] == JDB_LRU && !c->have_blockdbs))
			continue;
		rc = convert_db(c, txn, dbs[i], tmp, to, &n);
		if (dbs[i] == JDB_DIRENTS || dbs[i] == JDB_XATTRS ||
		    dbs[i] == JDB_AUDIT)
			a->named += n;
	}
	if (rc == 0)
		rc = mdb_drop(txn, tmp, 1);
	/* the notes name keys of the old form: the next journal object
	 * is a snapshot instead */
	if (rc == 0 && c->have_blockdbs) {
		rc = mdb_drop(txn, c->db_changed, 0);
		if (rc == 0)
			rc = need_snapshot(c, txn);
	}
	/* M1: the old pages are rewritten away by the next open that can
	 * (cache.c), crash or not */
	if (rc == 0 && to) {
		uint64_t one = 1;
		MDB_val ck = { 12, (void *)"meta_compact" };

		v = (MDB_val){ sizeof(one), &one };
		rc = mdb_put(txn, c->db_super, &ck, &v, 0);
	}
	v = (MDB_val){ sizeof(state), &state };
	if (rc == 0)
		rc = mdb_put(txn, c->db_super, &k, &v, 0);
	/* the audit events this commit writes (cache_audit_commit()) go
	 * in the new form too */
	if (rc == 0)
		c->msealed = to;
	return cache_meta_err(rc);
}

int cache_mrec_format(struct cache *c, MDB_txn *txn,
		      const struct crypt_key *key)
{
	MDB_val k = { 9, (void *)"meta_seal" }, v;
	uint64_t state = 1;
	uint8_t id[16];
	int rc = id_txn(c, txn, id);

	v = (MDB_val){ sizeof(state), &state };
	if (rc == 0)
		rc = cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
	if (rc == 0)
		rc = crypt_local_new(key, c->fsid, id, &c->mkeys);
	if (rc == 0)
		c->msealed = 1;
	return rc;
}

int cache_mrec_start(struct cache *c, const struct crypt_key *key, int want)
{
	struct convert_arg a;
	uint8_t id[16];
	uint64_t state = 0;
	int rc;

	rc = c->rdonly ? 0 : cache_meta_write(c, id_txn, id);
	if (rc == 0)
		rc = read_id(c, id, &state);
	if (rc == -ENOENT)
		rc = 0;		/* read-only, never opened to write */
	else if (rc == 0 && key)
		rc = crypt_local_new(key, c->fsid, id, &c->mkeys);
	if (rc)
		return rc;
	c->msealed = state != 0;
	want = want && key;
	if (c->rdonly || !key || want == c->msealed)
		return 0;
	a.to = want;
	rc = cache_meta_write(c, convert_txn, &a);
	if (rc)
		c->msealed = !want;
	if (rc == 0) {
		c->mcompact = want;
		/* a store that names nothing yet is converted quietly */
		c->mcompact_quiet = a.named == 0;
		if (a.named)
			PHI_LOG(PHI_LOG_NOTICE, "the local store's names and "
				"attributes %s", want ? "sealed" :
				"turned to plaintext (local_seal = off)");
	}
	return rc;
}

static int compacted_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	MDB_val k = { 12, (void *)"meta_compact" };
	int rc = mdb_del(txn, c->db_super, &k, NULL);

	(void)arg;
	return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

int cache_mrec_compacted(struct cache *c)
{
	c->mcompact = 0;
	return cache_meta_write(c, compacted_txn, NULL);
}

int cache_mrec_refresh(struct cache *c, MDB_txn *txn)
{
	uint64_t state = 0;

	if (cache_meta_super_get_u64(c, txn, "meta_seal", &state))
		state = 0;
	c->msealed = state != 0;
	return cache_rec_keyless(c) ? -EACCES : 0;
}

void cache_mrec_free(struct cache *c)
{
	crypt_local_free(c->mkeys);
	c->mkeys = NULL;
}
