/*
 * cache_xattr.c - user.* extended attributes, one LMDB entry per name.
 *
 * Only the user.* namespace is stored.  Any other name is answered
 * EOPNOTSUPP without a transaction: the kernel asks for
 * security.capability before every write, so that answer must be cheap,
 * and `ls -l` asks for ACLs and SELinux labels of every file unless it has
 * been told once that this filesystem supports neither.
 *
 * user.phifs.state is computed, not stored: "dirty", "local" or
 * "replicated" (cache_blk.c).  It cannot be set or removed, and listxattr
 * does not name it, so `cp -a` does not try to copy it.
 */
#include "cache_int.h"

#include <errno.h>
#include <string.h>

#define XATTR_NAME_MAX_LEN 255

struct xkey {
	uint8_t b[8 + XATTR_NAME_MAX_LEN];
	MDB_val val;
};

#define STATE_NAME "user.phifs.state"

static int user_name(const char *name)
{
	return strncmp(name, "user.", 5) == 0 && name[5] != '\0';
}

/* "dirty", "local" or "replicated": the file's user.phifs.state. */
static int file_state(struct cache *c, uint64_t ino, const char **out)
{
	uint8_t k[16];
	MDB_val key = { sizeof(k), k }, val;
	struct cnode *n = cache_node_find_ref(c, ino);
	struct inode_rec rec;
	MDB_cursor *cur;
	MDB_txn *txn;
	int dirty = 0, local = 0, rc;

	if (n) {
		lock_take(&n->lock);
		dirty = n->dblk.n > 0;
		lock_drop(&n->lock);
		cache_node_release(c, n);
	}
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
	if (rc || !c->have_blockdbs || !S_ISREG(rec.mode))
		goto out;
	if (!dirty)
		dirty = cache_blk_has_dirty(c, txn, ino);
	cache_blk_key(k, ino, 0);
	if (!dirty && mdb_cursor_open(txn, c->db_blocks, &cur) == 0) {
		for (int r = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		     r == 0 && !local && key.mv_size == 16 &&
		     key_get_u64(key.mv_data) == ino;
		     r = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			struct block_rec b;

			if (val.mv_size != sizeof(b))
				continue;
			memcpy(&b, val.mv_data, sizeof(b));
			local = !cache_meta_pack_replicated(c, txn, b.seq);
		}
		mdb_cursor_close(cur);
	}
	/* Without regions nothing is ever sealed: all of it is local. */
	if (!c->seal && rec.size)
		local = 1;
out:
	cache_meta_read_end(txn);
	if (rc == 0)
		*out = dirty ? "dirty" : local ? "local" : "replicated";
	return rc;
}

static int get_state(struct cache *c, uint64_t ino, void *value, size_t size)
{
	const char *state = NULL;
	size_t len;
	int rc = file_state(c, ino, &state);

	if (rc)
		return rc;
	len = strlen(state);
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(value, state, len);
	return (int)len;
}

static int xattr_key(struct xkey *k, uint64_t ino, const char *name)
{
	size_t n = strlen(name);

	if (n > XATTR_NAME_MAX_LEN)
		return -ERANGE;
	key_put_u64(k->b, ino);
	memcpy(k->b + 8, name, n);
	k->val.mv_size = 8 + n;
	k->val.mv_data = k->b;
	return 0;
}

struct set_arg {
	uint64_t ino;
	const char *name;
	const void *value;
	size_t size;
	unsigned flags;
	int remove;
};

static int set_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct set_arg *a = arg;
	struct inode_rec rec;
	struct xkey k;
	MDB_val v = { a->size, (void *)a->value }, old;
	int rc, exists;

	rc = cache_inode_get(c, txn, a->ino, &rec, NULL, NULL);
	if (rc == 0)
		rc = xattr_key(&k, a->ino, a->name);
	if (rc)
		return rc;
	rc = mdb_get(txn, c->db_xattrs, &k.val, &old);
	if (rc && rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	exists = rc == 0;
	if (a->remove || (a->flags & CACHE_XATTR_REPLACE)) {
		if (!exists)
			return -ENODATA;
	}
	if ((a->flags & CACHE_XATTR_CREATE) && exists)
		return -EEXIST;
	if (a->remove)
		rc = mdb_del(txn, c->db_xattrs, &k.val, NULL);
	else
		rc = mdb_put(txn, c->db_xattrs, &k.val, &v, 0);
	if (rc == 0)
		rc = cache_jnote(c, txn, JDB_XATTRS, &k.val);
	if (rc)
		return cache_meta_err(rc);
	cache_rec_set_time(&rec.ctime_sec, &rec.ctime_nsec, phi_now());
	return cache_inode_update(c, txn, a->ino, &rec);
}

int cache_setxattr(struct cache *c, uint64_t ino, const char *name,
		   const void *value, size_t size, unsigned flags)
{
	struct set_arg a = { ino, name, value, size, flags, 0 };

	if (!user_name(name))
		return -EOPNOTSUPP;
	if (strcmp(name, STATE_NAME) == 0)
		return -EPERM;
	if (size > CACHE_XATTR_SIZE_MAX)
		return -E2BIG;
	return cache_meta_write(c, set_txn, &a);
}

int cache_removexattr(struct cache *c, uint64_t ino, const char *name)
{
	struct set_arg a = { ino, name, NULL, 0, 0, 1 };

	if (!user_name(name))
		return -EOPNOTSUPP;
	if (strcmp(name, STATE_NAME) == 0)
		return -EPERM;
	return cache_meta_write(c, set_txn, &a);
}

int cache_getxattr(struct cache *c, uint64_t ino, const char *name,
		   void *value, size_t size)
{
	struct xkey k;
	MDB_txn *txn;
	MDB_val v;
	int rc;

	if (!user_name(name))
		return -EOPNOTSUPP;
	if (strcmp(name, STATE_NAME) == 0)
		return get_state(c, ino, value, size);
	rc = xattr_key(&k, ino, name);
	if (rc)
		return -ENODATA;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = mdb_get(txn, c->db_xattrs, &k.val, &v);
	if (rc == MDB_NOTFOUND)
		rc = -ENODATA;
	else if (rc)
		rc = cache_meta_err(rc);
	else if (size == 0)
		rc = (int)v.mv_size;
	else if (size < v.mv_size)
		rc = -ERANGE;
	else {
		memcpy(value, v.mv_data, v.mv_size);
		rc = (int)v.mv_size;
	}
	cache_meta_read_end(txn);
	return rc;
}

int cache_listxattr(struct cache *c, uint64_t ino, char *list, size_t size)
{
	struct xkey k;
	MDB_val key, v;
	MDB_cursor *cur;
	MDB_txn *txn;
	size_t total = 0;
	int rc;

	xattr_key(&k, ino, "");
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = mdb_cursor_open(txn, c->db_xattrs, &cur);
	if (rc) {
		cache_meta_read_end(txn);
		return cache_meta_err(rc);
	}
	key = k.val;
	for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
		size_t n = key.mv_size - 8;

		if (key.mv_size < 8 || memcmp(key.mv_data, k.b, 8))
			break;
		if (size && total + n + 1 > size) {
			total = SIZE_MAX;
			break;
		}
		if (size) {
			memcpy(list + total, (char *)key.mv_data + 8, n);
			list[total + n] = '\0';
		}
		total += n + 1;
	}
	mdb_cursor_close(cur);
	cache_meta_read_end(txn);
	if (total == SIZE_MAX)
		return -ERANGE;
	if (rc && rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	return (int)total;
}
