/*
 * cache_audit.c - the local audit trail: the `audit` table of the LMDB
 * environment, and how events reach it in order with the changes they
 * describe.
 *
 * The table maps an 8-byte big-endian sequence number to one event,
 * opaque to the cache (audit/ owns its format).  Numbers rise by one per
 * event in commit order; the next one is read from the table's last key
 * in each transaction that writes events, so another process appending
 * (a query recording itself while the mount runs) keeps the order.
 *
 * An event reaches the table one of two ways:
 *
 *   staged  (cache_audit_stage())  the caller's thread describes the
 *           operation it is about to make; the first cache_meta_write()
 *           of that thread that commits writes the event inside the same
 *           transaction, so the event is durable exactly when the change
 *           is.  cache_audit_unstage() says whether that happened.
 *   queued  (cache_audit_queue())  an event with no change of its own (an
 *           open, a release, a refused request) waits in memory and is
 *           written by the next commit of any thread, or by
 *           cache_audit_flush() from the folder thread within
 *           FOLD_INTERVAL_MS.
 *
 * Queued events are written before the staged one of the same commit, so
 * the table holds them in the order they were made.  No event costs a
 * transaction or an fsync of its own.
 */
#include "cache_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_QUEUE_MAX (64u << 20)	/* bytes held in memory at most */

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

struct audit_ev {
	struct audit_ev *next;
	size_t len;
	uint8_t rec[];
};

/* The calling thread's staged event and the inode its transaction made. */
static _Thread_local struct {
	struct cache *c;
	const void *rec;
	size_t len;
	int written;
	uint64_t new_ino;
} staged;

void cache_audit_note_ino(uint64_t ino)
{
	staged.new_ino = ino;
}

void cache_audit_stage(struct cache *c, const void *rec, size_t len)
{
	assert(len >= 8);
	staged.c = c;
	staged.rec = rec;
	staged.len = len;
	staged.written = 0;
	staged.new_ino = 0;
}

int cache_audit_unstage(struct cache *c)
{
	int written = staged.c == c && staged.written;

	staged.c = NULL;
	staged.rec = NULL;
	return written;
}

int cache_audit_queue(struct cache *c, const void *rec, size_t len)
{
	struct audit_ev *ev;

	/* A burst of events that change nothing (opens of files read from
	 * the page cache) outran the folder thread: this thread writes the
	 * queue out rather than hold more or drop one. */
	if (atomic_load(&c->audit_bytes) + len > AUDIT_QUEUE_MAX) {
		int rc = cache_audit_flush(c);

		if (rc)
			return rc;
	}
	ev = malloc(sizeof(*ev) + len);
	if (!ev)
		return -ENOMEM;
	ev->next = NULL;
	ev->len = len;
	memcpy(ev->rec, rec, len);
	lock_take(&c->audit_lock);
	*c->audit_tail = ev;
	c->audit_tail = &ev->next;
	lock_drop(&c->audit_lock);
	atomic_fetch_add(&c->audit_bytes, len);
	return 0;
}

/* Take the whole queue; *out is NULL when it was empty. */
static struct audit_ev *take_queue(struct cache *c)
{
	struct audit_ev *list;

	if (atomic_load(&c->audit_bytes) == 0)
		return NULL;
	lock_take(&c->audit_lock);
	list = c->audit_head;
	c->audit_head = NULL;
	c->audit_tail = &c->audit_head;
	lock_drop(&c->audit_lock);
	return list;
}

/* Put back what a failed commit did not write, ahead of newer events. */
static void give_back(struct cache *c, struct audit_ev *list)
{
	struct audit_ev **end = &list;

	if (!list)
		return;
	while (*end)
		end = &(*end)->next;
	lock_take(&c->audit_lock);
	*end = c->audit_head;
	if (!c->audit_head)
		c->audit_tail = end;
	c->audit_head = list;
	lock_drop(&c->audit_lock);
}

static void free_list(struct cache *c, struct audit_ev *list)
{
	while (list) {
		struct audit_ev *next = list->next;

		atomic_fetch_sub(&c->audit_bytes, list->len);
		free(list);
		list = next;
	}
}

/* The last number sealed into the regions' segments ("audit_head",
 * cache_auditseg.c), 0 if none: a cache recovered from a region starts
 * with an empty table but must go on numbering after it. */
static uint64_t sealed_upto(struct cache *c, MDB_txn *txn)
{
	MDB_val k = { 10, (void *)"audit_head" }, v;

	if (mdb_get(txn, c->db_super, &k, &v) || v.mv_size < 8)
		return 0;
	return key_get_u64(v.mv_data);
}

static int next_seq(struct cache *c, MDB_txn *txn, uint64_t *seq)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, c->db_audit, &cur);

	if (rc)
		return cache_meta_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	*seq = 1;
	if (rc && rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	if (rc == 0 && k.mv_size != 8)
		return PHI_ECORRUPT;
	if (rc == 0)
		*seq = key_get_u64(k.mv_data) + 1;
	if (*seq <= sealed_upto(c, txn))
		*seq = sealed_upto(c, txn) + 1;
	return 0;
}

static int put_one(struct cache *c, MDB_txn *txn, uint64_t seq,
		   const void *rec, size_t len, uint64_t new_ino)
{
	uint8_t k[8], *copy = malloc(len ? len : 1);
	MDB_val key = { sizeof(k), k }, val = { len, copy };
	int rc;

	if (!copy)
		return -ENOMEM;
	memcpy(copy, rec, len);
	/* the first 8 bytes are the inode; 0 means the one made here */
	if (new_ino && len >= 8 && get_le64(rec) == 0)
		put_le64(copy, new_ino);
	key_put_u64(k, seq);
	/* sealed in a sealed store (cache_mrec.c) */
	rc = cache_rec_put(c, txn, JDB_AUDIT, &key, &val,
			   MDB_APPEND | CACHE_REC_QUIET);
	explicit_bzero(copy, len);
	free(copy);
	return cache_meta_err(rc);
}

/* Write the queue and the thread's staged event into txn. */
static int write_events(struct cache *c, MDB_txn *txn,
			struct audit_ev *list, int with_staged)
{
	uint64_t seq = 0;
	int rc = next_seq(c, txn, &seq);

	for (struct audit_ev *ev = list; rc == 0 && ev; ev = ev->next)
		rc = put_one(c, txn, seq++, ev->rec, ev->len, 0);
	if (rc == 0 && with_staged)
		rc = put_one(c, txn, seq, staged.rec, staged.len,
			     staged.new_ino);
	return rc;
}

int cache_audit_commit(struct cache *c, MDB_txn *txn)
{
	int with_staged = staged.c == c && staged.rec && !staged.written;
	struct audit_ev *list;
	int rc;

	if (!c->db_audit_open)
		return mdb_txn_commit(txn);
	list = take_queue(c);
	if (!list && !with_staged)
		return mdb_txn_commit(txn);
	rc = write_events(c, txn, list, with_staged);
	if (rc) {
		mdb_txn_abort(txn);
		give_back(c, list);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	if (rc) {
		give_back(c, list);
		return rc;
	}
	if (with_staged)
		staged.written = 1;
	free_list(c, list);
	return 0;
}

int cache_audit_only(struct cache *c, MDB_txn *txn, void *arg)
{
	(void)arg;
	/* a tool appending beside a mount: the mount may have sealed the
	 * store since this process opened it */
	return c->audit_append ? cache_mrec_refresh(c, txn) : 0;
}

int cache_audit_flush(struct cache *c)
{
	if (atomic_load(&c->audit_bytes) == 0 || !c->db_audit_open)
		return 0;
	return cache_meta_write(c, cache_audit_only, NULL);
}

int cache_audit_append(struct cache *c, const void *rec, size_t len)
{
	int rc;

	if (!c->db_audit_open)
		return -EROFS;
	rc = cache_audit_queue(c, rec, len);
	if (rc == 0)
		rc = cache_audit_flush(c);
	return rc;
}

int cache_audit_open_db(struct cache *c, int create)
{
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return cache_meta_err(rc);
	rc = mdb_dbi_open(txn, "audit", create ? MDB_CREATE : 0, &c->db_audit);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 0;	/* read-only, and never written */
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc == 0)
		c->db_audit_open = 1;
	return cache_meta_err(rc);
}

int cache_audit_walk(struct cache *c, uint64_t from, cache_audit_fn *fn,
		     void *arg)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, op = MDB_SET_RANGE;
	size_t mark = cache_rec_mark();

	if (!c->db_audit_open)
		return 0;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_meta_err(mdb_cursor_open(txn, c->db_audit, &cur));
	if (rc) {
		cache_meta_read_end(txn);
		return rc;
	}
	key_put_u64(k, from);
	while (cache_rec_release(mark),
	       (rc = cache_rec_cursor(c, JDB_AUDIT, cur, &key, &val, op)) == 0) {
		op = MDB_NEXT;
		if (key.mv_size != 8) {
			rc = PHI_ECORRUPT;
			break;
		}
		rc = fn(arg, key_get_u64(key.mv_data), val.mv_data,
			val.mv_size);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	cache_meta_read_end(txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc > 0 ? cache_meta_err(rc) : rc;
}

void cache_audit_free(struct cache *c)
{
	free_list(c, take_queue(c));
}

/* --- the forwarding cursor ------------------------------------------ */

#define FORWARDED_KEY "audit_forwarded"

static uint64_t forwarded_in(struct cache *c, MDB_txn *txn)
{
	MDB_val k = { sizeof(FORWARDED_KEY) - 1, (void *)FORWARDED_KEY }, v;

	if (mdb_get(txn, c->db_super, &k, &v) || v.mv_size != 8)
		return 0;
	return key_get_u64(v.mv_data);
}

int cache_audit_forwarded(struct cache *c, uint64_t *sent, uint64_t *last)
{
	MDB_txn *txn;
	int rc = 0;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	*sent = forwarded_in(c, txn);
	*last = 0;
	if (c->db_audit_open) {
		rc = next_seq(c, txn, last);
		if (rc == 0)
			(*last)--;
	}
	cache_meta_read_end(txn);
	return rc;
}

static int put_forwarded(struct cache *c, MDB_txn *txn, void *arg)
{
	uint64_t seq = *(const uint64_t *)arg;
	uint8_t b[8];
	MDB_val k = { sizeof(FORWARDED_KEY) - 1, (void *)FORWARDED_KEY },
		v = { sizeof(b), b };

	if (seq <= forwarded_in(c, txn))
		return 0;
	key_put_u64(b, seq);
	return cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

int cache_audit_set_forwarded(struct cache *c, uint64_t seq)
{
	return cache_meta_write(c, put_forwarded, &seq);
}
