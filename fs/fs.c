/*
 * fs.c - FUSE low-level operations.
 *
 * Every handler is a shell around one cache/ call: it unpacks the request,
 * calls the cache, and replies once, translating the result through
 * fs_errno().  Inode numbers are the cache's; file handles carry a
 * struct cache_file.  Lookup counting is the cache's job: every reply that
 * hands the kernel an entry comes from a cache call that took one
 * reference for it.
 *
 * Locks (fcntl and flock) are left to the kernel, which arbitrates them
 * between all processes on this machine; a single mount is the only
 * writer, so that is every process that can see the files.
 */
#include "fs.h"
#include "fs_int.h"

#include "cache.h"
#include "phi.h"

#include <errno.h>
#include <limits.h>
#include <fuse_log.h>
#include <fuse_lowlevel.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TIMEOUT 1.0
/* Allocations this large get a mapping of their own (fs_run()). */
#define MMAP_THRESHOLD (256 << 10)
/* The largest read sent by splice: larger ones are copied (fs_read()). */
#define SPLICE_MAX (128 << 10)

struct fs {
	struct fuse_session *se;
	struct cache *c;
	int acl;	/* the kernel enforces POSIX ACLs and leaves the umask
			   to make_node() (fs_init()) */
};

int fs_errno(int code)
{
	if (code >= 0)
		return 0;
	if (code > -PHI_ERR_BASE)
		return -code;
	switch (code) {
	case PHI_EBUSYFS:
		return EBUSY;
	case PHI_ENOFS:
		return ENOENT;
	default:
		return EIO;
	}
}

static struct cache *cache_of(fuse_req_t req)
{
	return ((struct fs *)fuse_req_userdata(req))->c;
}

static struct cache_file *file_of(struct fuse_file_info *fi)
{
	return (struct cache_file *)(uintptr_t)fi->fh;
}

/* Reply with an error; log once what errno cannot carry. */
static void reply_err(fuse_req_t req, fuse_ino_t ino, int code)
{
	if (code <= -PHI_ERR_BASE)
		PHI_LOG(PHI_LOG_ERR, "request on inode %llu failed: %s",
			(unsigned long long)ino, phi_strerror(code));
	fs_answer.err = fs_errno(code);
	fs_answer_ready();
	fuse_reply_err(req, fs_answer.err);
}

static void reply_entry(fuse_req_t req, fuse_ino_t parent, int rc,
			const struct stat *st)
{
	struct fuse_entry_param e;

	if (rc) {
		reply_err(req, parent, rc);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st->st_ino;
	e.attr = *st;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fs_answer.ino = e.ino;
	fs_answer_ready();
	/* An interrupted request never reaches the kernel, nor does the
	 * lookup reference the cache took for it. */
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		cache_forget(cache_of(req), e.ino, 1);
		if (fs_audit_on)
			fs_audit_entry_lost(e.ino);
	}
}

static void fs_init(void *data, struct fuse_conn_info *conn)
{
	struct fs *fs = data;

	/* The kernel checks access against the ACLs it reads from us; new
	 * nodes inherit default ACLs in cache_mknod(), which also applies
	 * the umask where no default ACL replaces it. */
	if ((conn->capable & FUSE_CAP_POSIX_ACL) &&
	    (conn->capable & FUSE_CAP_DONT_MASK)) {
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
		fs->acl = 1;
	}
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* The kernel clears setuid, setgid and security.capability after a
	 * write, truncate or chown, as on ext4; nothing here does.  libfuse
	 * 3.14 marks KILLPRIV wanted but never sends it (later versions send
	 * it only when asked), and has no KILLPRIV_V2, which would save the
	 * kernel's getxattr only before later writes to a file it has
	 * checked already (fs/README.md). */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = FS_REQUEST_MAX;
	conn->max_readahead = FS_READ_AHEAD;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct stat st;
	int rc = cache_lookup(cache_of(req), parent, name, &st);

	if (rc == -ENOENT) {
		/* a negative entry: the kernel may cache the absence */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, parent, rc, &st);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	cache_forget(cache_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		cache_forget(cache_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int rc = cache_getattr(cache_of(req), ino, &st);

	(void)fi;
	if (rc)
		reply_err(req, ino, rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

unsigned fs_setattr_flags(int to_set)
{
	static const struct { int fuse; unsigned cache; } map[] = {
		{ FUSE_SET_ATTR_MODE, CACHE_SET_MODE },
		{ FUSE_SET_ATTR_UID, CACHE_SET_UID },
		{ FUSE_SET_ATTR_GID, CACHE_SET_GID },
		{ FUSE_SET_ATTR_SIZE, CACHE_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, CACHE_SET_ATIME },
		{ FUSE_SET_ATTR_MTIME, CACHE_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, CACHE_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, CACHE_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, CACHE_SET_CTIME },
	};
	unsigned set = 0;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (to_set & map[i].fuse)
			set |= map[i].cache;
	return set;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct stat st;
	int rc;

	(void)fi;
	rc = cache_setattr(cache_of(req), ino, fs_setattr_flags(to_set), attr,
			   &st);
	if (rc) {
		reply_err(req, ino, rc);
		return;
	}
	fs_answer_ready();
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int rc = cache_readlink(cache_of(req), ino, buf, sizeof(buf));

	if (rc)
		reply_err(req, ino, rc);
	else
		fuse_reply_readlink(req, buf);
}

static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev, const char *target,
		     struct stat *st)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs *fs = fuse_req_userdata(req);
	struct cache_cred cred = { ctx->uid, ctx->gid,
				   fs->acl ? ctx->umask : 0 };

	return cache_mknod(cache_of(req), parent, name, mode, rdev, target,
			   &cred, st);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct stat st;
	int rc = make_node(req, parent, name, mode, rdev, NULL, &st);

	reply_entry(req, parent, rc, &st);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct stat st;
	int rc = make_node(req, parent, name, S_IFDIR | (mode & 07777), 0,
			   NULL, &st);

	reply_entry(req, parent, rc, &st);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct stat st;
	int rc = make_node(req, parent, name, S_IFLNK | 0777, 0, link, &st);

	reply_entry(req, parent, rc, &st);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct stat st;
	int rc = cache_link(cache_of(req), ino, newparent, newname, &st);

	reply_entry(req, newparent, rc, &st);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_err(req, parent, cache_unlink(cache_of(req), parent, name));
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_err(req, parent, cache_rmdir(cache_of(req), parent, name));
}

int fs_rename_flags(unsigned flags, unsigned *out)
{
	unsigned cflags = 0;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;	/* RENAME_WHITEOUT is for overlayfs */
	if (flags & RENAME_NOREPLACE)
		cflags |= CACHE_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		cflags |= CACHE_RENAME_EXCHANGE;
	*out = cflags;
	return 0;
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	unsigned cflags;
	int rc = fs_rename_flags(flags, &cflags);

	if (rc == 0)
		rc = cache_rename(cache_of(req), parent, name, newparent,
				  newname, cflags);
	reply_err(req, parent, rc);
}

/* Whether the caller is in group gid (its own, or a supplementary). */
static int in_group(fuse_req_t req, gid_t gid)
{
	gid_t groups[64];
	int n;

	if (fuse_req_ctx(req)->gid == gid)
		return 1;
	n = fuse_req_getgroups(req, 64, groups);
	for (int i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/*
 * How an O_TRUNC open of ino by the caller truncates (cache_file_open()).
 * As on ext4, a truncate by a caller without CAP_FSETID (here: anyone but
 * root) clears setuid, and setgid when the file has group execute or the
 * caller is outside its group (setattr_should_drop_suidgid()).  With
 * atomic O_TRUNC the kernel leaves that to us: it sends no setattr.
 */
static int open_trunc(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;
	int trunc = 1;

	if (fuse_req_ctx(req)->uid == 0 ||
	    cache_getattr(cache_of(req), ino, &st) || !S_ISREG(st.st_mode))
		return trunc;
	if (st.st_mode & S_ISUID)
		trunc |= CACHE_SET_KILL_SUID;
	if ((st.st_mode & S_ISGID) &&
	    ((st.st_mode & S_IXGRP) || !in_group(req, st.st_gid)))
		trunc |= CACHE_SET_KILL_SGID;
	return trunc;
}

static int open_file(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct cache_file *f;
	int rc;

	rc = cache_file_open(cache_of(req), ino,
			     fi->flags & O_TRUNC ? open_trunc(req, ino) : 0, &f);
	if (rc)
		return rc;
	fi->fh = (uintptr_t)f;
	/* Every change passes through this kernel: its pages stay valid. */
	fi->keep_cache = 1;
	if (fs_audit_on)
		fs_audit_opened(req, ino, fi);
	return 0;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino,
		    struct fuse_file_info *fi)
{
	int rc = open_file(req, ino, fi);

	if (rc) {
		reply_err(req, ino, rc);
		return;
	}
	fs_answer_ready();
	if (fuse_reply_open(req, fi) == -ENOENT)
		cache_file_release(cache_of(req), file_of(fi));
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = make_node(req, parent, name, S_IFREG | (mode & 07777), 0, NULL,
		       &e.attr);
	if (rc == 0) {
		fi->flags &= ~O_TRUNC;	/* it is new */
		rc = open_file(req, e.attr.st_ino, fi);
		if (rc)
			cache_forget(cache_of(req), e.attr.st_ino, 1);
	}
	if (rc) {
		reply_err(req, parent, rc);
		return;
	}
	e.ino = e.attr.st_ino;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fs_answer.ino = e.ino;
	fs_answer_ready();
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		cache_file_release(cache_of(req), file_of(fi));
		cache_forget(cache_of(req), e.ino, 1);
		if (fs_audit_on)
			fs_audit_entry_lost(e.ino);
	}
}

/*
 * Buffers for reads answered from memory (a sealed local store, or a read
 * larger than SPLICE_MAX): FS_REQUEST_MAX bytes each, the most a read can
 * ask for.  Up to READ_BUFS are kept for the next reads, since memory
 * fresh from the system costs a page fault per page on every read.  So
 * the daemon keeps at most READ_BUFS * FS_REQUEST_MAX bytes for reads,
 * and only the pages reads have touched.  A buffer held plaintext: it is
 * wiped, as far as reads used it, before it goes back to the system,
 * when more than READ_BUFS are out at once or at fs_unmount().
 */
#define READ_BUFS 8

struct read_buf {
	size_t used;		/* the most bytes a read put in it */
	char data[];
};

static struct {
	pthread_mutex_t lock;
	struct read_buf *free[READ_BUFS];
	int n;
} read_bufs = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct read_buf *read_buf_get(size_t size)
{
	struct read_buf *b = NULL;

	if (size <= FS_REQUEST_MAX) {
		pthread_mutex_lock(&read_bufs.lock);
		if (read_bufs.n)
			b = read_bufs.free[--read_bufs.n];
		pthread_mutex_unlock(&read_bufs.lock);
	}
	if (!b) {		/* larger: not from the kernel we know */
		b = malloc(sizeof(*b) + (size > FS_REQUEST_MAX ? size :
					 FS_REQUEST_MAX));
		if (b)
			b->used = 0;
	}
	return b;
}

static void read_buf_free(struct read_buf *b)
{
	explicit_bzero(b->data, b->used);
	free(b);
}

static void read_buf_put(struct read_buf *b, size_t size)
{
	if (size > b->used)
		b->used = size;
	pthread_mutex_lock(&read_bufs.lock);
	if (size <= FS_REQUEST_MAX && read_bufs.n < READ_BUFS) {
		read_bufs.free[read_bufs.n++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&read_bufs.lock);
	if (b)
		read_buf_free(b);
}

/* At unmount: no read is left to use them. */
static void read_bufs_release(void)
{
	pthread_mutex_lock(&read_bufs.lock);
	while (read_bufs.n)
		read_buf_free(read_bufs.free[--read_bufs.n]);
	pthread_mutex_unlock(&read_bufs.lock);
}

static void fs_read_copy(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	struct read_buf *buf = read_buf_get(size);
	ssize_t r = buf ? cache_read(cache_of(req), file_of(fi), (uint64_t)off,
				     buf->data, size) : -ENOMEM;

	if (r < 0) {
		reply_err(req, ino, (int)r);
	} else {
		fs_answer.bytes = (size_t)r;
		fs_answer_ready();
		fuse_reply_buf(req, buf->data, (size_t)r);
	}
	if (buf)
		read_buf_put(buf, size);
}

/*
 * A read of a plain store goes out by splice, from the data file through
 * a pipe, up to SPLICE_MAX; a larger one (the kernel asks for up to
 * FS_REQUEST_MAX once its read-ahead is raised) is copied: 1 MiB reads
 * sent by splice took 4.2 s of the daemon's CPU per GiB read in order,
 * against 0.5-0.7 s copied (fs/README.md).
 */
static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(0);
	struct cache_extent ext;
	struct cache *c = cache_of(req);	/* req is gone once replied to */
	int rc;

	if (cache_read_copies(c) || size > SPLICE_MAX) {
		fs_read_copy(req, ino, size, off, fi);
		return;
	}
	rc = cache_read_extent(c, file_of(fi), (uint64_t)off, size, &ext);
	if (rc) {
		reply_err(req, ino, rc);
		return;
	}
	buf.buf[0].size = ext.len;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = ext.fd;
	buf.buf[0].pos = (off_t)ext.off;
	fs_answer.bytes = ext.len;
	fs_answer_ready();
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	cache_read_end(c, &ext);
}

/*
 * Before a write by the caller: the one set-ID bit ext4 clears and the
 * kernel's FUSE code does not.  The kernel clears setuid, and setgid
 * with group execute, itself (a setattr before the write); since Linux
 * 6.2 ext4 also clears setgid without group execute when the writer,
 * lacking CAP_FSETID (here: not root), is outside the file's group
 * (setattr_should_drop_sgid()), which FUSE leaves to the filesystem only
 * with HANDLE_KILLPRIV_V2, out of reach of libfuse 3.14 (fs/README.md).
 */
static int write_kills_sgid(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st, out;

	if (fuse_req_ctx(req)->uid == 0 ||
	    cache_getattr(cache_of(req), ino, &st) ||
	    (st.st_mode & (S_ISGID | S_IXGRP)) != S_ISGID ||
	    in_group(req, st.st_gid))
		return 0;
	return cache_setattr(cache_of(req), ino, CACHE_SET_KILL_SGID, &st,
			     &out);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	int rc = write_kills_sgid(req, ino);
	ssize_t w = rc ? rc : cache_write(cache_of(req), file_of(fi),
					  (uint64_t)off, data, size);

	if (w < 0) {
		reply_err(req, ino, (int)w);
		return;
	}
	fs_answer.bytes = (uint64_t)w;
	fs_answer_ready();
	fuse_reply_write(req, (size_t)w);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	reply_err(req, ino, cache_file_flush(cache_of(req), file_of(fi)));
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	cache_file_release(cache_of(req), file_of(fi));
	fs_answer_ready();
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	reply_err(req, ino, cache_fsync(cache_of(req), file_of(fi), datasync));
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	reply_err(req, ino, cache_sync(cache_of(req)));
}

struct dir_ctx {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	int plus;
	uint64_t *taken;	/* readdirplus: inodes given a reference */
	size_t ntaken;
	uint64_t dir;
};

static int add_dirent(void *arg, const char *name, const struct stat *st,
		      uint64_t next)
{
	struct dir_ctx *d = arg;
	size_t room = d->size - d->used, n;

	if (d->plus) {
		struct fuse_entry_param e;
		int dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;

		memset(&e, 0, sizeof(e));
		e.ino = dot ? 0 : st->st_ino;	/* no reference for dots */
		e.attr = *st;
		e.attr_timeout = TIMEOUT;
		e.entry_timeout = TIMEOUT;
		n = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name,
					   &e, (off_t)next);
		if (n <= room && !dot)
			d->taken[d->ntaken++] = st->st_ino;
		if (n <= room && !dot && fs_audit_on)
			fs_audit_entry(d->dir, name, st->st_ino);
	} else {
		n = fuse_add_direntry(d->req, d->buf + d->used, room, name, st,
				      (off_t)next);
	}
	if (n > room)
		return 1;
	d->used += n;
	return 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, int plus)
{
	struct dir_ctx d = { req, NULL, size, 0, plus, NULL, 0, ino };
	int rc;

	d.buf = malloc(size ? size : 1);
	/* no entry is shorter than 24 bytes: that bounds the references */
	d.taken = plus ? malloc((size / 24 + 1) * sizeof(*d.taken)) : NULL;
	if (!d.buf || (plus && !d.taken)) {
		free(d.buf);
		free(d.taken);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = cache_readdir(cache_of(req), ino, (uint64_t)off, plus, add_dirent,
			   &d);
	if (rc && d.ntaken == 0)
		reply_err(req, ino, rc);
	else if (fuse_reply_buf(req, d.buf, d.used) != 0)
		for (size_t i = 0; i < d.ntaken; i++)
			cache_forget(cache_of(req), d.taken[i], 1);
	free(d.buf);
	free(d.taken);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, 0);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, 1);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc = cache_statfs(cache_of(req), &sv);

	if (rc)
		reply_err(req, ino, rc);
	else
		fuse_reply_statfs(req, &sv);
}

/* Whether the caller may keep a file's setgid bit when it sets the
 * file's ACL: root, or a member of its group (in_group_or_capable()). */
static int in_group_or_root(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;

	if (fuse_req_ctx(req)->uid == 0 ||
	    cache_getattr(cache_of(req), ino, &st) ||
	    !(st.st_mode & S_ISGID))
		return 1;
	return in_group(req, st.st_gid);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	unsigned cflags = 0;

	if (flags & XATTR_CREATE)
		cflags |= CACHE_XATTR_CREATE;
	if (flags & XATTR_REPLACE)
		cflags |= CACHE_XATTR_REPLACE;
	if (strcmp(name, "system.posix_acl_access") == 0 &&
	    !in_group_or_root(req, ino))
		cflags |= CACHE_XATTR_KILL_SGID;
	reply_err(req, ino, cache_setxattr(cache_of(req), ino, name, value,
					   size, cflags));
}

/* Shared by getxattr and listxattr: size 0 asks for the length. */
static void reply_xattr(fuse_req_t req, fuse_ino_t ino, size_t size,
			int (*get)(fuse_req_t, uint64_t, const char *,
				   char *, size_t),
			const char *name)
{
	char *buf = size ? malloc(size) : NULL;
	int rc;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = get(req, ino, name, buf, size);
	if (rc < 0)
		reply_err(req, ino, rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
	free(buf);
}

static int get_one(fuse_req_t req, uint64_t ino, const char *name,
		   char *buf, size_t size)
{
	return cache_getxattr(cache_of(req), ino, name, buf, size);
}

/* trusted.* names are root's to see, as on ext4 */
static int get_list(fuse_req_t req, uint64_t ino, const char *name,
		    char *buf, size_t size)
{
	unsigned flags = fuse_req_ctx(req)->uid == 0 ? CACHE_XATTR_TRUSTED : 0;

	(void)name;
	return cache_listxattr_as(cache_of(req), ino, flags, buf, size);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	reply_xattr(req, ino, size, get_one, name);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, ino, size, get_list, NULL);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	reply_err(req, ino, cache_removexattr(cache_of(req), ino, name));
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t off, off_t len, struct fuse_file_info *fi)
{
	reply_err(req, ino, cache_fallocate(cache_of(req), file_of(fi), mode,
					    (uint64_t)off, (uint64_t)len));
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.symlink = fs_symlink,
	.link = fs_link,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.fallocate = fs_fallocate,
};

/* --- session ------------------------------------------------------------ */

static int build_args(struct fuse_args *args, const struct fs_options *o)
{
	char opts[4096];
	int n;

	n = snprintf(opts, sizeof(opts), "fsname=phifs:%ld,subtype=phifs,"
		     "default_permissions%s%s", (long)getpid(),
		     o->fuse_opts && *o->fuse_opts ? "," : "",
		     o->fuse_opts ? o->fuse_opts : "");
	if (n < 0 || (size_t)n >= sizeof(opts))
		return -E2BIG;
	if (fuse_opt_add_arg(args, "phifs") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, opts))
		return -ENOMEM;
	if (o->debug && fuse_opt_add_arg(args, "-d"))
		return -ENOMEM;
	return 0;
}

static char option_error[256];	/* fs_check_options() only */

/* libfuse writes a message in pieces; keep its first line whole. */
static void keep_option_error(enum fuse_log_level level, const char *fmt,
			      va_list ap)
{
	size_t n = strlen(option_error);

	(void)level;
	if (strchr(option_error, '\n') || n + 1 >= sizeof(option_error))
		return;
	vsnprintf(option_error + n, sizeof(option_error) - n, fmt, ap);
}

int fs_check_options(const struct fs_options *opts, char *err,
		     size_t errlen)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	const char *why;
	int rc;

	rc = build_args(&args, opts);
	if (rc) {
		fuse_opt_free_args(&args);
		snprintf(err, errlen, "mount options too long");
		return -EINVAL;
	}
	option_error[0] = '\0';
	fuse_set_log_func(keep_option_error);
	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), NULL);
	fuse_set_log_func(NULL);
	fuse_opt_free_args(&args);
	if (se) {
		fuse_session_destroy(se);
		return 0;
	}
	option_error[strcspn(option_error, "\n")] = '\0';
	why = option_error;
	if (strncmp(why, "fuse: ", 6) == 0)
		why += 6;
	snprintf(err, errlen, "invalid mount options '%s'%s%s",
		 opts->fuse_opts ? opts->fuse_opts : "", why[0] ? ": " : "",
		 why);
	return -EINVAL;
}

int fs_mount(struct fs **out, struct cache *c, const char *mountpoint,
	     const struct fs_options *opts, char *err, size_t errlen)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fs *fs = calloc(1, sizeof(*fs));
	const struct fuse_lowlevel_ops *ops;
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->c = c;
	rc = build_args(&args, opts);
	if (rc) {
		snprintf(err, errlen, "mount options too long");
		goto fail;
	}
	ops = &fs_ops;
	if (opts->audit) {
		rc = fs_audit_setup(c, opts->patient_folders);
		if (rc) {
			snprintf(err, errlen, "invalid patient_folders");
			goto fail;
		}
		ops = fs_audit_wrap(ops);
	}
	fs->se = fuse_session_new(&args, fs_metrics_wrap(ops),
				  sizeof(fs_ops), fs);
	if (!fs->se) {
		snprintf(err, errlen, "invalid mount options '%s'",
			 opts->fuse_opts ? opts->fuse_opts : "");
		rc = -EINVAL;
		goto fail;
	}
	if (fuse_set_signal_handlers(fs->se) ||
	    fuse_session_mount(fs->se, mountpoint)) {
		snprintf(err, errlen, "cannot mount on %s", mountpoint);
		rc = -EIO;
		goto fail;
	}
	fuse_opt_free_args(&args);
	*out = fs;
	return 0;
fail:
	fuse_opt_free_args(&args);
	if (fs->se) {
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
	}
	free(fs);
	return rc;
}

int fs_run(struct fs *fs)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc;

	if (!cfg)
		return -ENOMEM;
	/* The daemon's big buffers (a pack being uploaded, a block being
	 * fetched, a request) come and go with the work.  glibc raises its
	 * mmap threshold past such a buffer once one is freed, and from
	 * then on keeps every freed one in its arenas for good: a daemon
	 * grew from 7 to 78 MB that way.  A fixed threshold gives each big
	 * buffer its own mapping, returned to the system when freed. */
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, 16);
	rc = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc < 0 ? rc : 0;
}

void fs_unmount(struct fs *fs)
{
	fuse_session_unmount(fs->se);
	fuse_remove_signal_handlers(fs->se);
	fuse_session_destroy(fs->se);
	free(fs);
	read_bufs_release();
}
