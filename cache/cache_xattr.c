/*
 * cache_xattr.c - extended attributes and POSIX ACLs, one LMDB entry per
 * name.
 *
 * Stored namespaces: user.*, security.* (Samba's security.NTACL, file
 * capabilities, labels), trusted.*, and the two POSIX ACLs
 * system.posix_acl_access and system.posix_acl_default.  Who may touch
 * which is the kernel's to check (trusted.* and writes to security.* need
 * CAP_SYS_ADMIN, ACLs their owner); any other name is answered EOPNOTSUPP
 * without a transaction.  The kernel asks for security.capability before
 * every write: the answer is one read transaction and one LMDB miss, no
 * lock and no write.
 *
 * ACLs.  With FUSE_CAP_POSIX_ACL the kernel enforces the ACLs it reads
 * here, but leaves to the filesystem what ext4 does around them, and this
 * file does it the same way:
 *   - an access ACL set moves the mode's permission bits with it (the
 *     group bits show the mask), and one that says no more than the mode
 *     is not stored (acl_set_mode());
 *   - chmod moves the owner, mask (or group) and other entries of a
 *     stored access ACL with it (cache_acl_chmod());
 *   - a node created in a directory with a default ACL inherits it
 *     (cache_acl_inherit()): the access ACL is the default masked by the
 *     create mode, a directory also keeps the default, and the umask is
 *     not applied.
 * Values are the kernel's posix_acl_xattr format, checked as the kernel
 * checks them (acl_check()): version 2, one owner, group and other entry,
 * named user entries after the owner's and named group entries after the
 * group's, a mask when there are named entries, other last.
 *
 * user.phifs.state is computed, not stored: "dirty", "local" or
 * "replicated" (cache_blk.c).  It cannot be set or removed, and listxattr
 * does not name it, so `cp -a` does not try to copy it.
 */
#include "cache_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XATTR_NAME_MAX_LEN 255

struct xkey {
	uint8_t b[8 + XATTR_NAME_MAX_LEN];
	MDB_val val;
};

#define STATE_NAME "user.phifs.state"
#define ACL_ACCESS "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"

/* What a name is: not stored, a plain stored value, or an ACL. */
enum xns { XNS_NONE, XNS_PLAIN, XNS_ACL_ACCESS, XNS_ACL_DEFAULT };

static int prefixed(const char *name, const char *prefix, size_t n)
{
	return strncmp(name, prefix, n) == 0 && name[n] != '\0';
}

static enum xns name_ns(const char *name)
{
	if (prefixed(name, "user.", 5) || prefixed(name, "security.", 9) ||
	    prefixed(name, "trusted.", 8))
		return XNS_PLAIN;
	if (strcmp(name, ACL_ACCESS) == 0)
		return XNS_ACL_ACCESS;
	if (strcmp(name, ACL_DEFAULT) == 0)
		return XNS_ACL_DEFAULT;
	return XNS_NONE;
}

/* --- the posix_acl_xattr format -------------------------------------- */

/*
 * A little-endian u32 version (2), then entries of u16 tag, u16 perm,
 * u32 id.  Tags in the order the kernel requires them, which is also
 * their numeric order.
 */
#define ACL_VERSION 2
#define ACL_HDR 4
#define ACL_ENT 8
#define TAG_USER_OBJ 0x01
#define TAG_USER 0x02
#define TAG_GROUP_OBJ 0x04
#define TAG_GROUP 0x08
#define TAG_MASK 0x10
#define TAG_OTHER 0x20

static unsigned acl_tag(const uint8_t *v, size_t i)
{
	const uint8_t *e = v + ACL_HDR + i * ACL_ENT;

	return (unsigned)e[0] | (unsigned)e[1] << 8;
}

static unsigned acl_perm(const uint8_t *v, size_t i)
{
	const uint8_t *e = v + ACL_HDR + i * ACL_ENT + 2;

	return (unsigned)e[0] | (unsigned)e[1] << 8;
}

static void acl_set_perm(uint8_t *v, size_t i, unsigned perm)
{
	uint8_t *e = v + ACL_HDR + i * ACL_ENT + 2;

	e[0] = (uint8_t)(perm & 7);
	e[1] = 0;
}

static uint32_t acl_id(const uint8_t *v, size_t i)
{
	const uint8_t *e = v + ACL_HDR + i * ACL_ENT + 4;

	return (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 |
	       (uint32_t)e[3] << 24;
}

/* Entries of a well-formed ACL value, or -EINVAL (posix_acl_valid()). */
static int acl_check(const void *value, size_t len)
{
	const uint8_t *v = value;
	unsigned seen = 0, prev = 0;
	size_t n;

	if (len < ACL_HDR + ACL_ENT || (len - ACL_HDR) % ACL_ENT ||
	    v[0] != ACL_VERSION || v[1] || v[2] || v[3])
		return -EINVAL;
	n = (len - ACL_HDR) / ACL_ENT;
	for (size_t i = 0; i < n; i++) {
		unsigned tag = acl_tag(v, i);

		if (acl_perm(v, i) & ~7u || tag < prev)
			return -EINVAL;
		switch (tag) {
		case TAG_USER: case TAG_GROUP:
			/* the kernel wants no order among the ids, but each
			 * must map to a user (-1 does not) */
			if (acl_id(v, i) == UINT32_MAX)
				return -EINVAL;
			break;
		case TAG_USER_OBJ: case TAG_GROUP_OBJ: case TAG_MASK:
		case TAG_OTHER:
			if (tag == prev)
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
		seen |= tag;
		prev = tag;
	}
	if ((seen & (TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER)) !=
	    (TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER))
		return -EINVAL;
	if ((seen & (TAG_USER | TAG_GROUP)) && !(seen & TAG_MASK))
		return -EINVAL;
	return (int)n;
}

/* The permission bits a checked access ACL shows in the mode (the group
 * bits are the mask's if there is one); 1 if the ACL says no more than
 * those bits, so that it need not be stored (posix_acl_equiv_mode()). */
static int acl_mode(const uint8_t *v, size_t n, mode_t *perms)
{
	mode_t m = 0, mask = 0;
	int equiv = 1, has_mask = 0;

	for (size_t i = 0; i < n; i++) {
		mode_t p = acl_perm(v, i);

		switch (acl_tag(v, i)) {
		case TAG_USER_OBJ: m |= p << 6; break;
		case TAG_GROUP_OBJ: m |= p << 3; break;
		case TAG_OTHER: m |= p; break;
		case TAG_MASK: mask = p; has_mask = 1; equiv = 0; break;
		default: equiv = 0; break;
		}
	}
	if (has_mask)
		m = (m & ~(mode_t)070) | mask << 3;
	*perms = m;
	return equiv;
}

/*
 * A new node's access ACL from its parent's default ACL v (n entries,
 * changed in place) and the create mode *mode, which loses what the ACL
 * does not grant (posix_acl_create_masq()).  1 if the result says more
 * than the mode and must be stored.
 */
static int acl_masq(uint8_t *v, size_t n, mode_t *mode)
{
	size_t group = n, mask = n;
	int more = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned p = acl_perm(v, i);

		switch (acl_tag(v, i)) {
		case TAG_USER_OBJ:
			p &= (unsigned)(*mode >> 6) & 7;
			acl_set_perm(v, i, p);
			*mode &= (mode_t)(p << 6) | ~(mode_t)0700;
			break;
		case TAG_OTHER:
			p &= (unsigned)*mode & 7;
			acl_set_perm(v, i, p);
			*mode &= (mode_t)p | ~(mode_t)07;
			break;
		case TAG_GROUP_OBJ: group = i; break;
		case TAG_MASK: mask = i; more = 1; break;
		default: more = 1; break;
		}
	}
	if (mask == n)
		mask = group;
	acl_set_perm(v, mask, acl_perm(v, mask) & ((unsigned)(*mode >> 3) & 7));
	*mode &= (mode_t)(acl_perm(v, mask) << 3) | ~(mode_t)070;
	return more;
}

/* chmod: the owner, mask (else group) and other entries take perms'
 * bits (posix_acl_chmod()). */
static void acl_chmod(uint8_t *v, size_t n, mode_t perms)
{
	size_t group = n, mask = n;

	for (size_t i = 0; i < n; i++) {
		switch (acl_tag(v, i)) {
		case TAG_USER_OBJ: acl_set_perm(v, i, perms >> 6); break;
		case TAG_OTHER: acl_set_perm(v, i, perms); break;
		case TAG_GROUP_OBJ: group = i; break;
		case TAG_MASK: mask = i; break;
		}
	}
	acl_set_perm(v, mask < n ? mask : group, perms >> 3);
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

/* Put or delete (value NULL) ino's name in a write transaction. */
static int xattr_put(struct cache *c, MDB_txn *txn, uint64_t ino,
		     const char *name, const void *value, size_t size)
{
	struct xkey k;
	MDB_val v = { size, (void *)value };
	int rc = xattr_key(&k, ino, name);

	if (rc)
		return rc;
	if (value)
		rc = cache_rec_put(c, txn, JDB_XATTRS, &k.val, &v, 0);
	else
		rc = cache_rec_del(c, txn, JDB_XATTRS, &k.val, 0);
	if (rc == MDB_NOTFOUND)
		return 0;
	return cache_meta_err(rc);
}

/* ino's stored value of name, copied (malloc) into *out: its size, 0 if
 * absent (*out NULL), or a negative code. */
static int xattr_copy(struct cache *c, MDB_txn *txn, uint64_t ino,
		      const char *name, uint8_t **out)
{
	struct xkey k;
	MDB_val v;
	int rc = xattr_key(&k, ino, name);

	*out = NULL;
	if (rc)
		return rc;
	rc = cache_rec_get(c, txn, JDB_XATTRS, &k.val, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return cache_meta_err(rc);
	*out = malloc(v.mv_size ? v.mv_size : 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, v.mv_data, v.mv_size);
	return (int)v.mv_size;
}

struct set_arg {
	uint64_t ino;
	const char *name;
	const void *value;
	size_t size;
	unsigned flags;
	int remove;
	enum xns ns;
};

/* An access ACL being set: the mode follows it.  1 if the ACL says no
 * more than the mode, and is not to be stored. */
static int acl_set_mode(const struct set_arg *a, struct inode_rec *rec)
{
	mode_t perms;
	size_t n = (a->size - ACL_HDR) / ACL_ENT;
	int equiv = acl_mode(a->value, n, &perms);

	rec->mode = (rec->mode & ~(uint32_t)0777) | perms;
	if (a->flags & CACHE_XATTR_KILL_SGID)
		rec->mode &= ~(uint32_t)S_ISGID;
	return equiv;
}

static int set_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	const struct set_arg *a = arg;
	/* NULL removes (xattr_put()); an empty value may come as NULL */
	const void *value = a->remove ? NULL : a->value ? a->value : "";
	struct inode_rec rec;
	struct xkey k;
	MDB_val old;
	int rc, exists;

	rc = cache_inode_get(c, txn, a->ino, &rec, NULL, NULL);
	if (rc == 0)
		rc = xattr_key(&k, a->ino, a->name);
	if (rc)
		return rc;
	rc = cache_rec_get(c, txn, JDB_XATTRS, &k.val, &old);
	if (rc && rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	exists = rc == 0;
	/* ext4 removes an absent ACL without complaint (setfacl -b) */
	if (a->remove && !exists && a->ns != XNS_PLAIN)
		return 0;
	if ((a->remove || (a->flags & CACHE_XATTR_REPLACE)) && !exists)
		return -ENODATA;
	if ((a->flags & CACHE_XATTR_CREATE) && exists)
		return -EEXIST;
	if (a->ns == XNS_ACL_DEFAULT && !a->remove && !S_ISDIR(rec.mode))
		return -EACCES;
	if (a->ns == XNS_ACL_ACCESS && value && acl_set_mode(a, &rec))
		value = NULL;	/* the mode says it all: drop any old one */
	rc = xattr_put(c, txn, a->ino, a->name, value, a->size);
	if (rc)
		return rc;
	cache_rec_set_time(&rec.ctime_sec, &rec.ctime_nsec, phi_now());
	return cache_inode_update(c, txn, a->ino, &rec);
}

/* 0 if name may be set or removed, else its code. */
static int settable(const char *name, enum xns ns)
{
	if (ns == XNS_NONE)
		return -EOPNOTSUPP;
	if (strcmp(name, STATE_NAME) == 0)
		return -EPERM;
	return 0;
}

int cache_setxattr(struct cache *c, uint64_t ino, const char *name,
		   const void *value, size_t size, unsigned flags)
{
	struct set_arg a = { ino, name, value, size, flags, 0, name_ns(name) };
	int rc = settable(name, a.ns);

	if (rc)
		return rc;
	if (size > CACHE_XATTR_SIZE_MAX)
		return -E2BIG;
	if (a.ns != XNS_PLAIN && acl_check(value, size) < 0)
		return -EINVAL;
	return cache_meta_write(c, set_txn, &a);
}

int cache_removexattr(struct cache *c, uint64_t ino, const char *name)
{
	struct set_arg a = { ino, name, NULL, 0, 0, 1, name_ns(name) };
	int rc = settable(name, a.ns);

	if (rc)
		return rc;
	return cache_meta_write(c, set_txn, &a);
}

int cache_getxattr(struct cache *c, uint64_t ino, const char *name,
		   void *value, size_t size)
{
	struct xkey k;
	MDB_txn *txn;
	MDB_val v;
	int rc;

	if (name_ns(name) == XNS_NONE)
		return -EOPNOTSUPP;
	if (strcmp(name, STATE_NAME) == 0)
		return get_state(c, ino, value, size);
	rc = xattr_key(&k, ino, name);
	if (rc)
		return -ENODATA;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_rec_get(c, txn, JDB_XATTRS, &k.val, &v);
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

/* Whether listxattr names this stored name to the caller. */
static int listed(const MDB_val *key, unsigned flags)
{
	return (flags & CACHE_XATTR_TRUSTED) || key->mv_size < 8 + 8 ||
	       memcmp((char *)key->mv_data + 8, "trusted.", 8) != 0;
}

int cache_listxattr_as(struct cache *c, uint64_t ino, unsigned flags,
		       char *list, size_t size)
{
	struct xkey k;
	MDB_val key, v;
	MDB_cursor *cur;
	MDB_txn *txn;
	size_t total = 0, mark = cache_rec_mark();
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
	for (rc = cache_rec_cursor(c, JDB_XATTRS, cur, &key, &v,
				   MDB_SET_RANGE); rc == 0;
	     cache_rec_release(mark),
	     rc = cache_rec_cursor(c, JDB_XATTRS, cur, &key, &v, MDB_NEXT)) {
		size_t n = key.mv_size - 8;

		if (key.mv_size < 8 || memcmp(key.mv_data, k.b, 8))
			break;
		if (!listed(&key, flags))
			continue;
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

int cache_listxattr(struct cache *c, uint64_t ino, char *list, size_t size)
{
	return cache_listxattr_as(c, ino, CACHE_XATTR_TRUSTED, list, size);
}

/* --- ACLs on the way of other changes (cache_ns.c, cache_file.c) ------ */

int cache_acl_inherit(struct cache *c, MDB_txn *txn, uint64_t parent,
		      uint64_t ino, mode_t *mode, mode_t umask)
{
	uint8_t *acl;
	size_t size;
	int n, rc;

	if (S_ISLNK(*mode))
		return 0;
	rc = xattr_copy(c, txn, parent, ACL_DEFAULT, &acl);
	if (rc <= 0) {
		*mode &= ~(umask & 0777);
		return rc;
	}
	size = (size_t)rc;
	n = acl_check(acl, size);
	if (n < 0) {
		PHI_LOG(PHI_LOG_ERR, "default acl of inode %llu is malformed",
			(unsigned long long)parent);
		free(acl);
		return PHI_ECORRUPT;
	}
	/* a directory passes its default on, as its own default */
	rc = S_ISDIR(*mode) ? xattr_put(c, txn, ino, ACL_DEFAULT, acl, size) : 0;
	if (rc == 0 && acl_masq(acl, (size_t)n, mode))
		rc = xattr_put(c, txn, ino, ACL_ACCESS, acl, size);
	free(acl);
	return rc;
}

int cache_acl_chmod(struct cache *c, MDB_txn *txn, uint64_t ino, mode_t mode)
{
	uint8_t *acl;
	int n, rc = xattr_copy(c, txn, ino, ACL_ACCESS, &acl);

	if (rc <= 0)
		return rc;
	n = acl_check(acl, (size_t)rc);
	if (n > 0) {
		acl_chmod(acl, (size_t)n, mode & 0777);
		rc = xattr_put(c, txn, ino, ACL_ACCESS, acl, (size_t)rc);
	}
	free(acl);
	return n < 0 ? 0 : rc;
}
