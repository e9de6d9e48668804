/*
 * cache_meta.c - LMDB records and the one write path for metadata.
 *
 * Invariants kept by every transaction:
 *   - every dirents entry has a dircookies twin with the same ino and type;
 *   - a directory's nlink is 2 plus its subdirectories; its `parent` is the
 *     directory that names it (the root names itself);
 *   - an inode with nlink 0 is in `orphans` until cache_node_maybe_free() has
 *     removed its data file, its xattrs and its record, in that order, so
 *     that a crash at any point leaves something the next open can finish.
 *
 * cache_meta_write() is the single door for metadata changes: the journal that
 * ships changes to the regions will be written from there.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cache_jnote(struct cache *c, MDB_txn *txn, int jdb, const MDB_val *key)
{
	uint8_t k[1 + 511];
	MDB_val kk = { 1 + key->mv_size, k }, v = { 0, (void *)"" };

	if (!c->journal)
		return 0;
	if (key->mv_size > sizeof(k) - 1)
		return MDB_BAD_VALSIZE;
	k[0] = (uint8_t)jdb;
	memcpy(k + 1, key->mv_data, key->mv_size);
	return mdb_put(txn, c->db_changed, &kk, &v, 0);
}

int cache_meta_err(int rc)
{
	/* ours (cache_rec_*() pass them on), not LMDB's */
	if (rc < 0 && (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE))
		return rc;
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		return PHI_ECORRUPT;
	case MDB_VERSION_MISMATCH:
		return PHI_EVERSION;
	case MDB_PANIC:
		return -EIO;
	}
	if (rc > 0 && rc < PHI_ERR_BASE)
		return -rc;
	return -EIO;
}

int cache_latch(struct cache *c, int code)
{
	int expected = 0;

	if (atomic_compare_exchange_strong(&c->latched, &expected, code))
		PHI_LOG(PHI_LOG_ERR, "local store failed (%s); refusing further "
			"changes until remount", phi_strerror(code));
	return PHI_ELATCHED;
}

static int meta_write(struct cache *c, meta_fn *fn, void *arg)
{
	MDB_txn *txn;
	int rc;

	if (c->rdonly && !(c->audit_append && fn == cache_audit_only))
		return -EROFS;
	if (atomic_load(&c->latched))
		return PHI_ELATCHED;
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return cache_meta_err(rc);
	rc = fn(c, txn, arg);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	/* commits the transaction, with the audit events that wait */
	rc = cache_audit_commit(c, txn);
	if (rc < 0)
		return rc;
	if (rc == MDB_PANIC || rc == EIO)
		return cache_latch(c, cache_meta_err(rc));
	if (rc == 0)
		atomic_fetch_add_explicit(&c->commits, 1,
					  memory_order_relaxed);
	return cache_meta_err(rc);
}

int cache_meta_write(struct cache *c, meta_fn *fn, void *arg)
{
	int rc;

	cache_rec_txn_begin();
	rc = meta_write(c, fn, arg);
	cache_rec_txn_end();
	return rc;
}

MDB_txn *cache_meta_read_begin(struct cache *c, int *rc)
{
	MDB_txn *txn = NULL;
	int r = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);

	*rc = cache_meta_err(r);
	if (!r)
		cache_rec_txn_begin();
	return r ? NULL : txn;
}

void cache_meta_read_end(MDB_txn *txn)
{
	mdb_txn_abort(txn);
	cache_rec_txn_end();
}

static int meta_open_block_dbs(struct cache *c, MDB_txn *txn,
			       unsigned flags);

int cache_meta_open_dbs(struct cache *c, MDB_txn *txn, unsigned flags)
{
	static const char *const names[] = {
		"super", "inodes", "dirents", "dircookies", "xattrs", "orphans",
	};
	MDB_dbi *dbis[] = {
		&c->db_super, &c->db_inodes, &c->db_dirents, &c->db_cookies,
		&c->db_xattrs, &c->db_orphans,
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int rc = mdb_dbi_open(txn, names[i], flags, dbis[i]);

		if (rc == MDB_NOTFOUND)
			return PHI_ECORRUPT;
		if (rc)
			return cache_meta_err(rc);
	}
	return meta_open_block_dbs(c, txn, flags);
}

/* The block databases came with sealing: a read-write open creates them
 * in a cache made before; a read-only one does without. */
static int meta_open_block_dbs(struct cache *c, MDB_txn *txn, unsigned flags)
{
	static const char *const names[] = {
		"blocks", "dirty", "packs", "regions", "lru", "repair",
		"changed", "metaq",
	};
	MDB_dbi *dbis[] = {
		&c->db_blocks, &c->db_dirty, &c->db_packs, &c->db_regions,
		&c->db_lru, &c->db_repair, &c->db_changed, &c->db_metaq,
	};
	int rc;

	if (!c->rdonly)
		flags |= MDB_CREATE;
	c->have_blockdbs = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		rc = mdb_dbi_open(txn, names[i], flags, dbis[i]);

		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return cache_meta_err(rc);
	}
	c->have_blockdbs = 1;
	c->journal = !c->rdonly;
	/* came with the audit trail's segments: a read-only open of an
	 * older cache does without */
	c->have_auditq = 0;
	rc = mdb_dbi_open(txn, "auditq", flags, &c->db_auditq);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return cache_meta_err(rc);
	c->have_auditq = 1;
	return 0;
}

int cache_inode_get(struct cache *c, MDB_txn *txn, uint64_t ino,
		    struct inode_rec *rec, const char **target, size_t *tlen)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val;
	int rc;

	key_put_u64(k, ino);
	rc = cache_rec_get(c, txn, JDB_INODES, &key, &val);
	if (rc)
		return cache_meta_err(rc);
	if (val.mv_size < sizeof(*rec))
		return PHI_ECORRUPT;
	memcpy(rec, val.mv_data, sizeof(*rec));
	if (target) {
		*target = (const char *)val.mv_data + sizeof(*rec);
		*tlen = val.mv_size - sizeof(*rec);
	}
	return 0;
}

int cache_inode_put(struct cache *c, MDB_txn *txn, uint64_t ino,
	      const struct inode_rec *rec, const char *target, size_t tlen)
{
	uint8_t k[8], one[sizeof(*rec) + 64], *v = one;
	MDB_val key = { sizeof(k), k }, val = { sizeof(*rec) + tlen, NULL };
	int rc;

	if (val.mv_size > sizeof(one) && !(v = malloc(val.mv_size)))
		return -ENOMEM;
	memcpy(v, rec, sizeof(*rec));
	if (tlen)
		memcpy(v + sizeof(*rec), target, tlen);
	val.mv_data = v;
	key_put_u64(k, ino);
	rc = cache_rec_put(c, txn, JDB_INODES, &key, &val, 0);
	if (v != one)
		free(v);
	return cache_meta_err(rc);
}

int cache_inode_put_local(struct cache *c, MDB_txn *txn, uint64_t ino,
			  const struct inode_rec *rec)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val = { sizeof(*rec), (void *)rec };

	key_put_u64(k, ino);
	return cache_meta_err(cache_rec_put(c, txn, JDB_INODES, &key, &val,
					    CACHE_REC_QUIET));
}

int cache_inode_update(struct cache *c, MDB_txn *txn, uint64_t ino,
		       const struct inode_rec *rec)
{
	struct inode_rec old;
	const char *target;
	char buf[PATH_MAX];
	size_t tlen;
	int rc;

	rc = cache_inode_get(c, txn, ino, &old, &target, &tlen);
	if (rc)
		return rc;
	if (tlen > sizeof(buf))
		return PHI_ECORRUPT;
	/* target points into the map; mdb_put may reuse that page */
	memcpy(buf, target, tlen);
	return cache_inode_put(c, txn, ino, rec, buf, tlen);
}

void cache_rec_set_time(int64_t *sec, uint32_t *nsec, struct timespec ts)
{
	*sec = ts.tv_sec;
	*nsec = (uint32_t)ts.tv_nsec;
}

void cache_inode_to_stat(uint64_t ino, const struct inode_rec *rec,
			 struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = rec->mode;
	st->st_nlink = rec->nlink;
	st->st_uid = rec->uid;
	st->st_gid = rec->gid;
	st->st_rdev = rec->rdev;
	st->st_size = (off_t)rec->size;
	st->st_blocks = (blkcnt_t)cache_blocks_shown(rec->blocks, rec->size);
	st->st_blksize = 65536;
	st->st_atim.tv_sec = rec->atime_sec;
	st->st_atim.tv_nsec = rec->atime_nsec;
	st->st_mtim.tv_sec = rec->mtime_sec;
	st->st_mtim.tv_nsec = rec->mtime_nsec;
	st->st_ctim.tv_sec = rec->ctime_sec;
	st->st_ctim.tv_nsec = rec->ctime_nsec;
}

int cache_meta_super_get_u64(struct cache *c, MDB_txn *txn, const char *key,
			     uint64_t *out)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, c->db_super, &k, &v);

	if (rc)
		return rc == MDB_NOTFOUND ? PHI_ECORRUPT : cache_meta_err(rc);
	if (v.mv_size != sizeof(*out))
		return PHI_ECORRUPT;
	memcpy(out, v.mv_data, sizeof(*out));
	return 0;
}

int cache_meta_del_prefixed(struct cache *c, MDB_txn *txn, MDB_dbi dbi, int jdb,
			    uint64_t ino)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val;
	MDB_cursor *cur;
	int rc;

	if (jdb && cache_rec_sealed_db(jdb))
		return cache_rec_del_prefixed(c, txn, jdb, ino);
	key_put_u64(k, ino);
	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return cache_meta_err(rc);
	/* Seek again after each delete (see del_from() in cache_blk.c). */
	for (;;) {
		key.mv_size = sizeof(k);
		key.mv_data = k;
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc || key.mv_size < 8 || memcmp(key.mv_data, k, 8))
			break;
		if (jdb && (rc = cache_jnote(c, txn, jdb, &key)) != 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : cache_meta_err(rc);
}

/* What the data files take on disk, from the files themselves: the
 * inode records that count it are sealed. */
static int used_by_files(struct cache *c, uint64_t *out)
{
	MDB_val key, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	uint64_t sum = 0;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = mdb_cursor_open(txn, c->db_inodes, &cur);
	if (rc == 0) {
		while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
			char name[64];
			struct stat st;

			if (key.mv_size != 8)
				continue;
			cache_data_name(key_get_u64(key.mv_data), name,
					sizeof(name));
			if (fstatat(c->datafd, name, &st,
				    AT_SYMLINK_NOFOLLOW) == 0)
				sum += (uint64_t)st.st_blocks * 512;
		}
		mdb_cursor_close(cur);
	}
	cache_meta_read_end(txn);
	if (rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	*out = sum;
	return 0;
}

int cache_meta_used_bytes(struct cache *c, uint64_t *out)
{
	MDB_val key, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	uint64_t sum = 0;
	int rc;

	if (cache_rec_keyless(c))
		return used_by_files(c, out);	/* a tool without the key */
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = mdb_cursor_open(txn, c->db_inodes, &cur);
	if (rc == 0) {
		size_t mark = cache_rec_mark();
		uint64_t failed = 0;

		while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
			struct inode_rec rec;
			int r = cache_rec_open(c, JDB_INODES, &key, &val);

			/* one that fails its seal does not stop a mount:
			 * reading it says so */
			if (r)
				failed++;
			else if (val.mv_size >= sizeof(rec)) {
				memcpy(&rec, val.mv_data, sizeof(rec));
				sum += rec.blocks * 512;
			}
			cache_rec_release(mark);
		}
		mdb_cursor_close(cur);
		if (failed)
			PHI_LOG(PHI_LOG_WARNING, "%llu inode records fail their "
				"seal; phifs fsck lists them",
				(unsigned long long)failed);
	}
	cache_meta_read_end(txn);
	if (rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	*out = sum;
	return 0;
}

void cache_data_name(uint64_t ino, char *buf, size_t size)
{
	snprintf(buf, size, "%02x/%llu", (unsigned)(ino & 0xff),
		 (unsigned long long)ino);
}

void cache_pack_key(const uint8_t id[16], char out[PACK_KEY_LEN + 1])
{
	out[0] = 'd';
	out[1] = '/';
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 + 2 * i, 3, "%02x", id[i]);
}

void cache_pack_file(const uint8_t id[16], char out[PACK_FILE_LEN + 1])
{
	memcpy(out, "packs/", 6);
	for (int i = 0; i < 16; i++)
		snprintf(out + 6 + 2 * i, 3, "%02x", id[i]);
}

void cache_blk_key(uint8_t k[16], uint64_t ino, uint64_t blk)
{
	key_put_u64(k, ino);
	key_put_u64(k + 8, blk);
}

int cache_sync(struct cache *c)
{
	int rc;

	if (c->rdonly)
		return 0;
	if (atomic_load(&c->latched))
		return PHI_ELATCHED;
	rc = mdb_env_sync(c->env, 1);
	return rc ? cache_latch(c, cache_meta_err(rc)) : 0;
}

/* Whether pack seq is in every region (no longer in `packs`). */
int cache_meta_pack_replicated(struct cache *c, MDB_txn *txn, uint64_t seq)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val;

	key_put_u64(k, seq);
	return mdb_get(txn, c->db_packs, &key, &val) == MDB_NOTFOUND;
}
