/*
 * cache_ns.c - the namespace: names, links, directories, rename, readdir.
 *
 * Each operation is one write transaction through cache_meta_write(), so a
 * crash leaves either all of it or none.  Readdir offsets are cookies:
 * every entry gets the next value of its directory's `next_cookie` when
 * it is created (or renamed in), and `dircookies` lists a directory in
 * cookie order.  A reader resuming at a cookie therefore sees each entry
 * that stayed put exactly once, however the directory changed meanwhile.
 * A rename over an existing name is the one exception: the name keeps
 * the replaced entry's cookie, so that a program saving a file by rename
 * never makes a concurrent listing show that name twice (ext4, where the
 * place is the name's hash, and tmpfs behave the same).  A name unlinked
 * and created again is a new entry, with a new cookie.
 * Cookies 1 and 2 are "." and "..".
 */
#include "cache_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define FIRST_COOKIE 3
#define DIR_SIZE 4096

struct dkey {
	uint8_t b[8 + CACHE_NAME_MAX];
	MDB_val val;
};

static int name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return -ENOENT;
	if (n > CACHE_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static MDB_val *name_key(struct dkey *k, uint64_t parent, const char *name)
{
	size_t n = strlen(name);

	key_put_u64(k->b, parent);
	memcpy(k->b + 8, name, n);
	k->val.mv_size = 8 + n;
	k->val.mv_data = k->b;
	return &k->val;
}

static MDB_val *cookie_key(struct dkey *k, uint64_t parent, uint64_t cookie)
{
	key_put_u64(k->b, parent);
	key_put_u64(k->b + 8, cookie);
	k->val.mv_size = 16;
	k->val.mv_data = k->b;
	return &k->val;
}

/* The readdir twin of entry (parent, name) -> d. */
static int cookie_put(struct cache *c, MDB_txn *txn, uint64_t parent,
		      const char *name, const struct dirent_rec *d)
{
	uint8_t b[sizeof(*d) + CACHE_NAME_MAX];
	size_t n = strlen(name);
	struct dkey k;
	MDB_val v = { sizeof(*d) + n, b };

	memcpy(b, d, sizeof(*d));
	memcpy(b + sizeof(*d), name, n);
	return cache_meta_err(cache_rec_put(c, txn, JDB_COOKIES,
					    cookie_key(&k, parent, d->cookie),
					    &v, 0));
}

static int dirent_get(struct cache *c, MDB_txn *txn, uint64_t parent,
		      const char *name, struct dirent_rec *out)
{
	struct dkey k;
	MDB_val v;
	int rc = cache_rec_get(c, txn, JDB_DIRENTS, name_key(&k, parent, name),
			       &v);

	if (rc)
		return cache_meta_err(rc);
	if (v.mv_size != sizeof(*out))
		return PHI_ECORRUPT;
	memcpy(out, v.mv_data, sizeof(*out));
	return 0;
}

/* Add name -> ino to directory `parent` (record prec, updated here). */
static int dirent_add(struct cache *c, MDB_txn *txn, uint64_t parent,
		      struct inode_rec *prec, const char *name, uint64_t ino,
		      uint32_t type)
{
	struct dirent_rec d = { ino, prec->next_cookie++, type, 0 };
	struct dkey k;
	MDB_val v = { sizeof(d), &d };
	int rc;

	rc = cache_rec_put(c, txn, JDB_DIRENTS, name_key(&k, parent, name),
			   &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return -EEXIST;
	if (rc)
		return cache_meta_err(rc);
	return cookie_put(c, txn, parent, name, &d);
}

static int dirent_del(struct cache *c, MDB_txn *txn, uint64_t parent,
		      const char *name, const struct dirent_rec *d)
{
	struct dkey k;
	int rc;

	rc = cache_rec_del(c, txn, JDB_DIRENTS, name_key(&k, parent, name), 0);
	if (rc == 0)
		rc = cache_rec_del(c, txn, JDB_COOKIES,
				   cookie_key(&k, parent, d->cookie), 0);
	return rc == MDB_NOTFOUND ? PHI_ECORRUPT : cache_meta_err(rc);
}

static int dir_is_empty(struct cache *c, MDB_txn *txn, uint64_t ino)
{
	struct dkey k;
	MDB_val key, v;
	MDB_cursor *cur;
	int rc, empty;

	rc = mdb_cursor_open(txn, c->db_dirents, &cur);
	if (rc)
		return cache_meta_err(rc);
	key_put_u64(k.b, ino);
	key.mv_size = 8;
	key.mv_data = k.b;
	rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	empty = rc == MDB_NOTFOUND ||
		(rc == 0 && (key.mv_size < 8 || key_get_u64(key.mv_data) != ino));
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	return empty;
}

/* A directory that can take new entries: exists, is one, not removed. */
static int live_dir(struct cache *c, MDB_txn *txn, uint64_t ino,
		    struct inode_rec *rec)
{
	int rc = cache_inode_get(c, txn, ino, rec, NULL, NULL);

	if (rc)
		return rc;
	if (!S_ISDIR(rec->mode))
		return -ENOTDIR;
	return rec->nlink == 0 ? -ENOENT : 0;
}

static void touch(struct inode_rec *rec, struct timespec now, int mtime)
{
	cache_rec_set_time(&rec->ctime_sec, &rec->ctime_nsec, now);
	if (mtime)
		cache_rec_set_time(&rec->mtime_sec, &rec->mtime_nsec, now);
}

static int orphan_add(struct cache *c, MDB_txn *txn, uint64_t ino)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k }, val = { 0, NULL };

	key_put_u64(k, ino);
	return cache_meta_err(mdb_put(txn, c->db_orphans, &key, &val, 0));
}

static int orphan_del(struct cache *c, MDB_txn *txn, uint64_t ino)
{
	uint8_t k[8];
	MDB_val key = { sizeof(k), k };
	int rc;

	key_put_u64(k, ino);
	rc = mdb_del(txn, c->db_orphans, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : cache_meta_err(rc);
}

/* ---------------------------------------------------------------------- */

int cache_getattr(struct cache *c, uint64_t ino, struct stat *st)
{
	return cache_node_stat(c, NULL, ino, st);
}

int cache_lookup(struct cache *c, uint64_t parent, const char *name,
		 struct stat *st)
{
	struct dirent_rec d;
	MDB_txn *txn;
	int rc;

	rc = name_check(name);
	if (rc)
		return rc;
	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = dirent_get(c, txn, parent, name, &d);
	if (rc == 0)
		rc = cache_node_stat(c, txn, d.ino, st);
	cache_meta_read_end(txn);
	if (rc)
		return rc;
	cache_node_ref_lookup(c, d.ino, 1);
	return 0;
}

struct mknod_arg {
	uint64_t parent;
	const char *name;
	mode_t mode;
	dev_t rdev;
	const char *target;
	const struct cache_cred *cred;
	uint64_t ino;		/* out */
	struct inode_rec rec;	/* out */
};

static int alloc_ino(struct cache *c, MDB_txn *txn, uint64_t *out)
{
	uint64_t next;
	MDB_val k = { 8, (void *)"next_ino" }, v = { sizeof(next), &next };
	int rc = cache_meta_super_get_u64(c, txn, "next_ino", &next);

	if (rc)
		return rc;
	*out = next++;
	cache_audit_note_ino(*out);
	rc = mdb_put(txn, c->db_super, &k, &v, 0);
	if (rc == 0)
		rc = cache_jnote(c, txn, JDB_SUPER, &k);
	return cache_meta_err(rc);
}

static void init_rec(struct inode_rec *rec, const struct mknod_arg *a,
		     const struct inode_rec *prec, struct timespec now)
{
	memset(rec, 0, sizeof(*rec));
	rec->mode = a->mode;
	rec->uid = a->cred->uid;
	rec->gid = a->cred->gid;
	if (prec->mode & S_ISGID) {
		rec->gid = prec->gid;
		if (S_ISDIR(a->mode))
			rec->mode |= S_ISGID;
	}
	rec->nlink = S_ISDIR(a->mode) ? 2 : 1;
	rec->rdev = (S_ISCHR(a->mode) || S_ISBLK(a->mode)) ? a->rdev : 0;
	rec->parent = S_ISDIR(a->mode) ? a->parent : 0;
	rec->next_cookie = S_ISDIR(a->mode) ? FIRST_COOKIE : 0;
	rec->size = S_ISLNK(a->mode) ? strlen(a->target) :
		    S_ISDIR(a->mode) ? DIR_SIZE : 0;
	cache_rec_set_time(&rec->atime_sec, &rec->atime_nsec, now);
	cache_rec_set_time(&rec->btime_sec, &rec->btime_nsec, now);
	touch(rec, now, 1);
}

static int mknod_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct mknod_arg *a = arg;
	struct timespec now = phi_now();
	struct inode_rec prec;
	size_t tlen = S_ISLNK(a->mode) ? strlen(a->target) : 0;
	int rc;

	rc = live_dir(c, txn, a->parent, &prec);
	if (rc)
		return rc;
	if (S_ISDIR(a->mode) && prec.nlink >= UINT32_MAX - 1)
		return -EMLINK;
	rc = alloc_ino(c, txn, &a->ino);
	if (rc == 0)
		rc = cache_acl_inherit(c, txn, a->parent, a->ino, &a->mode,
				       a->cred->umask);
	if (rc)
		return rc;
	init_rec(&a->rec, a, &prec, now);
	rc = dirent_add(c, txn, a->parent, &prec, a->name, a->ino,
			a->mode & S_IFMT);
	if (rc)
		return rc;
	rc = cache_inode_put(c, txn, a->ino, &a->rec, a->target, tlen);
	if (rc)
		return rc;
	if (S_ISDIR(a->mode))
		prec.nlink++;
	touch(&prec, now, 1);
	return cache_inode_put(c, txn, a->parent, &prec, NULL, 0);
}

int cache_mknod(struct cache *c, uint64_t parent, const char *name,
		mode_t mode, dev_t rdev, const char *target,
		const struct cache_cred *cred, struct stat *st)
{
	struct mknod_arg a = { parent, name, mode, rdev, target, cred, 0, {0} };
	int rc = name_check(name);

	if (rc)
		return rc;
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFIFO: case S_IFSOCK:
	case S_IFCHR: case S_IFBLK:
		break;
	case S_IFLNK:
		if (!target || !*target)
			return -ENOENT;
		if (strlen(target) >= PATH_MAX)
			return -ENAMETOOLONG;
		break;
	default:
		return -EINVAL;
	}
	rc = cache_meta_write(c, mknod_txn, &a);
	if (rc)
		return rc;
	cache_inode_to_stat(a.ino, &a.rec, st);
	cache_node_ref_lookup(c, a.ino, 1);
	return 0;
}

struct link_arg {
	uint64_t ino, newparent;
	const char *newname;
	struct inode_rec rec;	/* out */
};

static int link_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct link_arg *a = arg;
	struct timespec now = phi_now();
	struct inode_rec prec;
	int rc;

	rc = cache_inode_get(c, txn, a->ino, &a->rec, NULL, NULL);
	if (rc)
		return rc;
	if (S_ISDIR(a->rec.mode))
		return -EPERM;
	if (a->rec.nlink >= UINT32_MAX)
		return -EMLINK;
	rc = live_dir(c, txn, a->newparent, &prec);
	if (rc)
		return rc;
	rc = dirent_add(c, txn, a->newparent, &prec, a->newname, a->ino,
			a->rec.mode & S_IFMT);
	if (rc)
		return rc;
	if (a->rec.nlink++ == 0) {
		rc = orphan_del(c, txn, a->ino);
		if (rc)
			return rc;
	}
	touch(&a->rec, now, 0);
	rc = cache_inode_update(c, txn, a->ino, &a->rec);
	if (rc)
		return rc;
	touch(&prec, now, 1);
	return cache_inode_put(c, txn, a->newparent, &prec, NULL, 0);
}

int cache_link(struct cache *c, uint64_t ino, uint64_t newparent,
	       const char *newname, struct stat *st)
{
	struct link_arg a = { ino, newparent, newname, {0} };
	int rc = name_check(newname);

	if (rc)
		return rc;
	rc = cache_meta_write(c, link_txn, &a);
	if (rc)
		return rc;
	rc = cache_getattr(c, ino, st);
	if (rc == 0)
		cache_node_ref_lookup(c, ino, 1);
	return rc;
}

/*
 * Drop one link to the inode d names, which is about to lose that entry.
 * A directory loses both its links and its parent's ".." link.
 */
static int drop_link(struct cache *c, MDB_txn *txn, const struct dirent_rec *d,
		     struct inode_rec *prec, struct timespec now)
{
	struct inode_rec rec;
	int rc;

	rc = cache_inode_get(c, txn, d->ino, &rec, NULL, NULL);
	if (rc)
		return rc == -ENOENT ? PHI_ECORRUPT : rc;
	if (S_ISDIR(rec.mode)) {
		rec.nlink = 0;
		prec->nlink--;
	} else if (rec.nlink > 0) {
		rec.nlink--;
	}
	touch(&rec, now, 0);
	if (rec.nlink == 0) {
		rc = orphan_add(c, txn, d->ino);
		if (rc)
			return rc;
	}
	return cache_inode_update(c, txn, d->ino, &rec);
}

struct remove_arg {
	uint64_t parent;
	const char *name;
	int dir;
	uint64_t ino;		/* out */
};

static int remove_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct remove_arg *a = arg;
	struct timespec now = phi_now();
	struct inode_rec prec;
	struct dirent_rec d;
	int rc;

	rc = cache_inode_get(c, txn, a->parent, &prec, NULL, NULL);
	if (rc)
		return rc;
	rc = dirent_get(c, txn, a->parent, a->name, &d);
	if (rc)
		return rc;
	if (a->dir && d.type != S_IFDIR)
		return -ENOTDIR;
	if (!a->dir && d.type == S_IFDIR)
		return -EISDIR;
	if (a->dir) {
		rc = dir_is_empty(c, txn, d.ino);
		if (rc <= 0)
			return rc ? rc : -ENOTEMPTY;
	}
	rc = dirent_del(c, txn, a->parent, a->name, &d);
	if (rc == 0)
		rc = drop_link(c, txn, &d, &prec, now);
	if (rc)
		return rc;
	a->ino = d.ino;
	touch(&prec, now, 1);
	return cache_inode_put(c, txn, a->parent, &prec, NULL, 0);
}

static int remove_name(struct cache *c, uint64_t parent, const char *name,
		       int dir)
{
	struct remove_arg a = { parent, name, dir, 0 };
	int rc = name_check(name);

	if (rc)
		return rc;
	rc = cache_meta_write(c, remove_txn, &a);
	if (rc == 0)
		cache_node_maybe_free(c, a.ino);
	return rc;
}

int cache_unlink(struct cache *c, uint64_t parent, const char *name)
{
	return remove_name(c, parent, name, 0);
}

int cache_rmdir(struct cache *c, uint64_t parent, const char *name)
{
	return remove_name(c, parent, name, 1);
}

int cache_readlink(struct cache *c, uint64_t ino, char *buf, size_t size)
{
	struct inode_rec rec;
	const char *target;
	size_t tlen;
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_inode_get(c, txn, ino, &rec, &target, &tlen);
	if (rc == 0 && !S_ISLNK(rec.mode))
		rc = -EINVAL;
	else if (rc == 0 && tlen + 1 > size)
		rc = -ERANGE;
	else if (rc == 0) {
		memcpy(buf, target, tlen);
		buf[tlen] = '\0';
	}
	cache_meta_read_end(txn);
	return rc;
}

/* ---------------------------------------------------------------------- */

struct rename_arg {
	uint64_t parent, newparent;
	const char *name, *newname;
	unsigned flags;
	uint64_t victim;	/* out: inode that lost its last link, or 0 */
};

/* EINVAL if directory `dir` is `ancestor` or lies below it. */
static int check_not_below(struct cache *c, MDB_txn *txn, uint64_t dir,
			   uint64_t ancestor)
{
	for (int depth = 0; depth < 1 << 20; depth++) {
		struct inode_rec rec;
		int rc;

		if (dir == ancestor)
			return -EINVAL;
		if (dir == CACHE_ROOT_INO)
			return 0;
		rc = cache_inode_get(c, txn, dir, &rec, NULL, NULL);
		if (rc)
			return rc;
		dir = rec.parent;
	}
	return PHI_ECORRUPT;
}

/* Re-point entry (dir, name, cookie) at another inode, in both tables. */
static int dirent_repoint(struct cache *c, MDB_txn *txn, uint64_t dir,
			  const char *name, struct dirent_rec d)
{
	struct dkey k;
	MDB_val v = { sizeof(d), &d };
	int rc;

	rc = cache_rec_put(c, txn, JDB_DIRENTS, name_key(&k, dir, name), &v, 0);
	if (rc)
		return cache_meta_err(rc);
	return cookie_put(c, txn, dir, name, &d);
}

/* Set a moved directory's parent and ctime, or just the ctime. */
static int moved(struct cache *c, MDB_txn *txn, uint64_t ino,
		 uint64_t newparent, struct timespec now)
{
	struct inode_rec rec;
	int rc;

	rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
	if (rc)
		return rc;
	if (S_ISDIR(rec.mode))
		rec.parent = newparent;
	touch(&rec, now, 0);
	return cache_inode_update(c, txn, ino, &rec);
}

/* Load both parents; p2 aliases p1 when they are the same directory. */
struct parents {
	struct inode_rec r1, r2;
	struct inode_rec *p1, *p2;
};

static int load_parents(struct cache *c, MDB_txn *txn,
			const struct rename_arg *a, struct parents *p)
{
	int rc = live_dir(c, txn, a->parent, &p->r1);

	if (rc == 0 && a->newparent != a->parent)
		rc = live_dir(c, txn, a->newparent, &p->r2);
	p->p1 = &p->r1;
	p->p2 = a->newparent == a->parent ? &p->r1 : &p->r2;
	return rc;
}

static int save_parents(struct cache *c, MDB_txn *txn,
			const struct rename_arg *a, struct parents *p,
			struct timespec now)
{
	int rc;

	touch(p->p1, now, 1);
	touch(p->p2, now, 1);
	rc = cache_inode_put(c, txn, a->parent, p->p1, NULL, 0);
	if (rc == 0 && p->p2 != p->p1)
		rc = cache_inode_put(c, txn, a->newparent, p->p2, NULL, 0);
	return rc;
}

/* Checks and parent link counts for RENAME_EXCHANGE of s and d. */
static int exchange_check(struct cache *c, MDB_txn *txn,
			  const struct rename_arg *a,
			  const struct dirent_rec *s,
			  const struct dirent_rec *d, struct parents *p)
{
	int rc = 0;

	if (a->parent == a->newparent)
		return 0;
	if (s->type == S_IFDIR)
		rc = check_not_below(c, txn, a->newparent, s->ino);
	if (rc == 0 && d->type == S_IFDIR)
		rc = check_not_below(c, txn, a->parent, d->ino);
	if (rc)
		return rc;
	if (s->type == S_IFDIR && d->type != S_IFDIR) {
		p->p1->nlink--;
		p->p2->nlink++;
	} else if (d->type == S_IFDIR && s->type != S_IFDIR) {
		p->p1->nlink++;
		p->p2->nlink--;
	}
	return 0;
}

static int rename_exchange(struct cache *c, MDB_txn *txn,
			   struct rename_arg *a, struct dirent_rec s,
			   struct dirent_rec d, struct parents *p,
			   struct timespec now)
{
	struct dirent_rec ns = s, nd = d;
	int rc;

	rc = exchange_check(c, txn, a, &s, &d, p);
	if (rc)
		return rc;
	ns.ino = d.ino;
	ns.type = d.type;
	nd.ino = s.ino;
	nd.type = s.type;
	rc = dirent_repoint(c, txn, a->parent, a->name, ns);
	if (rc == 0)
		rc = dirent_repoint(c, txn, a->newparent, a->newname, nd);
	if (rc == 0)
		rc = moved(c, txn, s.ino, a->newparent, now);
	if (rc == 0)
		rc = moved(c, txn, d.ino, a->parent, now);
	return rc ? rc : save_parents(c, txn, a, p, now);
}

static int rename_check(struct cache *c, MDB_txn *txn,
			const struct rename_arg *a, const struct dirent_rec *s,
			const struct dirent_rec *d, int have_d)
{
	int rc;

	if (have_d && s->type == S_IFDIR && d->type != S_IFDIR)
		return -ENOTDIR;
	if (have_d && s->type != S_IFDIR && d->type == S_IFDIR)
		return -EISDIR;
	if (s->type == S_IFDIR && a->parent != a->newparent) {
		rc = check_not_below(c, txn, a->newparent, s->ino);
		if (rc)
			return rc;
	}
	if (have_d && d->type == S_IFDIR) {
		rc = dir_is_empty(c, txn, d->ino);
		if (rc <= 0)
			return rc ? rc : -ENOTEMPTY;
	}
	return 0;
}

static int rename_move(struct cache *c, MDB_txn *txn, struct rename_arg *a,
		       struct dirent_rec s, struct dirent_rec d, int have_d,
		       struct parents *p, struct timespec now)
{
	int rc = rename_check(c, txn, a, &s, &d, have_d);

	if (rc)
		return rc;
	if (have_d) {
		rc = drop_link(c, txn, &d, p->p2, now);
		if (rc)
			return rc;
		a->victim = d.ino;
	}
	rc = dirent_del(c, txn, a->parent, a->name, &s);
	if (rc == 0 && have_d)	/* the name keeps its place */
		rc = dirent_repoint(c, txn, a->newparent, a->newname,
				    (struct dirent_rec){ s.ino, d.cookie,
							 s.type, 0 });
	else if (rc == 0)
		rc = dirent_add(c, txn, a->newparent, p->p2, a->newname, s.ino,
				s.type);
	if (rc == 0)
		rc = moved(c, txn, s.ino, a->newparent, now);
	if (rc)
		return rc;
	if (s.type == S_IFDIR && a->parent != a->newparent) {
		p->p1->nlink--;
		p->p2->nlink++;
	}
	return save_parents(c, txn, a, p, now);
}

static int rename_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	struct rename_arg *a = arg;
	struct timespec now = phi_now();
	struct dirent_rec s, d;
	struct parents p;
	int rc, have_d;

	rc = load_parents(c, txn, a, &p);
	if (rc == 0)
		rc = dirent_get(c, txn, a->parent, a->name, &s);
	if (rc)
		return rc;
	rc = dirent_get(c, txn, a->newparent, a->newname, &d);
	if (rc && rc != -ENOENT)
		return rc;
	have_d = rc == 0;
	if (a->flags & CACHE_RENAME_EXCHANGE) {
		if (!have_d)
			return -ENOENT;
		if (s.ino == d.ino)
			return 0;
		return rename_exchange(c, txn, a, s, d, &p, now);
	}
	if (have_d && (a->flags & CACHE_RENAME_NOREPLACE))
		return -EEXIST;
	if (have_d && s.ino == d.ino)
		return 0;	/* POSIX: two links to one file, nothing to do */
	return rename_move(c, txn, a, s, d, have_d, &p, now);
}

/*
 * The classic save: write a temporary file, rename it over the original.
 * If the program skipped fsync, make the new content durable before the
 * rename can be, so that a power loss shows the old file or the new one,
 * never an empty or torn one (ext4's auto_da_alloc does the same).
 */
static int sync_before_replace(struct cache *c, uint64_t parent,
			       const char *name, uint64_t newparent,
			       const char *newname)
{
	struct dirent_rec s, d;
	MDB_txn *txn;
	int rc, replace;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	replace = dirent_get(c, txn, parent, name, &s) == 0 &&
		  s.type == S_IFREG &&
		  dirent_get(c, txn, newparent, newname, &d) == 0;
	cache_meta_read_end(txn);
	return replace ? cache_file_sync_for_replace(c, s.ino) : 0;
}

int cache_rename(struct cache *c, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags)
{
	struct rename_arg a = { parent, newparent, name, newname, flags, 0 };
	int rc;

	if ((flags & CACHE_RENAME_EXCHANGE) && (flags & CACHE_RENAME_NOREPLACE))
		return -EINVAL;
	if (flags & ~(unsigned)(CACHE_RENAME_EXCHANGE | CACHE_RENAME_NOREPLACE))
		return -EINVAL;
	rc = name_check(name);
	if (rc == 0)
		rc = name_check(newname);
	if (rc == 0 && !(flags & CACHE_RENAME_EXCHANGE))
		rc = sync_before_replace(c, parent, name, newparent, newname);
	if (rc)
		return rc;
	rc = cache_meta_write(c, rename_txn, &a);
	if (rc == 0 && a.victim)
		cache_node_maybe_free(c, a.victim);
	return rc;
}

/* ---------------------------------------------------------------------- */

static int emit_dot(struct cache *c, MDB_txn *txn, uint64_t ino,
		    const char *name, uint64_t next, int plus,
		    cache_dirent_fn *fn, void *ctx)
{
	struct inode_rec rec;
	struct stat st;
	int rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);

	if (rc)
		return rc;
	if (plus) {
		cache_inode_to_stat(ino, &rec, &st);
	} else {
		memset(&st, 0, sizeof(st));
		st.st_ino = ino;
		st.st_mode = rec.mode & S_IFMT;
	}
	return fn(ctx, name, &st, next) ? 1 : 0;
}

static int emit_entries(struct cache *c, MDB_txn *txn, uint64_t dir,
			uint64_t from, int plus, cache_dirent_fn *fn,
			void *ctx)
{
	struct dkey k;
	MDB_val key, v;
	MDB_cursor *cur;
	int rc = 0, mrc;	/* ours, and LMDB's */
	size_t mark = cache_rec_mark();

	mrc = mdb_cursor_open(txn, c->db_cookies, &cur);
	if (mrc)
		return cache_meta_err(mrc);
	key = *cookie_key(&k, dir, from);
	/* each entry's opened value given back before the next */
	for (mrc = cache_rec_cursor(c, JDB_COOKIES, cur, &key, &v,
				    MDB_SET_RANGE); mrc == 0;
	     cache_rec_release(mark),
	     mrc = cache_rec_cursor(c, JDB_COOKIES, cur, &key, &v, MDB_NEXT)) {
		struct dirent_rec d;
		char name[CACHE_NAME_MAX + 1];
		struct stat st;
		size_t n;

		if (key.mv_size != 16 || key_get_u64(key.mv_data) != dir)
			break;
		if (v.mv_size < sizeof(d) || v.mv_size > sizeof(d) + CACHE_NAME_MAX) {
			rc = PHI_ECORRUPT;
			break;
		}
		memcpy(&d, v.mv_data, sizeof(d));
		n = v.mv_size - sizeof(d);
		memcpy(name, (char *)v.mv_data + sizeof(d), n);
		name[n] = '\0';
		memset(&st, 0, sizeof(st));
		st.st_ino = d.ino;
		st.st_mode = d.type;
		if (plus && (rc = cache_node_stat(c, txn, d.ino, &st)) != 0)
			break;
		if (fn(ctx, name, &st, d.cookie))
			break;
		if (plus)
			cache_node_ref_lookup(c, d.ino, 1);
	}
	mdb_cursor_close(cur);
	if (rc)
		return rc;
	return mrc == MDB_NOTFOUND ? 0 : cache_meta_err(mrc);
}

int cache_readdir(struct cache *c, uint64_t ino, uint64_t off, int plus,
		  cache_dirent_fn *fn, void *ctx)
{
	struct inode_rec rec;
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
	if (rc == 0 && !S_ISDIR(rec.mode))
		rc = -ENOTDIR;
	if (rc == 0 && off < 1)
		rc = emit_dot(c, txn, ino, ".", 1, plus, fn, ctx);
	if (rc == 0 && off < 2)
		rc = emit_dot(c, txn, rec.parent, "..", 2, plus, fn, ctx);
	if (rc == 0)
		rc = emit_entries(c, txn, ino, off < 2 ? FIRST_COOKIE : off + 1,
				  plus, fn, ctx);
	cache_meta_read_end(txn);
	return rc == 1 ? 0 : rc;
}
