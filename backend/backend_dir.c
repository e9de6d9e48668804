/*
 * backend_dir.c - the "dir" driver: objects as files under a root folder.
 *
 * Key "a/b/c" is the file ROOT/a/b/c.  The region is the folder the
 * configured path names, so every call opens ROOT by that path afresh
 * and works relative to that descriptor for the rest of the call; no
 * path below ROOT is ever rebuilt by string pasting, and the key rules
 * (backend.c) already keep ".." and absolute keys out.  A handle kept
 * open from the start would follow a folder moved away and go on writing
 * there, or keep writing into a deleted one, while the configured path
 * holds something else.
 *
 * Identity (root_open()).  The folder at the path must still be the
 * region that was opened, else the call fails with PHI_EREPLACED before
 * it touches anything:
 *
 *	marked (BACKEND_DIR_MARKER was there at open)
 *		the marker must be there now.  A folder emptied, deleted
 *		and made again, or swapped for an empty one is refused until
 *		someone puts the region back (a repair, or the folder moved
 *		back); a complete copy put in its place is the region.
 *	unmarked (a region being made, a test folder)
 *		the folder must be the very one opened (device and inode).
 *
 * A folder missing at the path is PHI_EREPLACED too.
 *
 * Atomic, durable put:
 *
 *	open_parent(create)  mkdir -p the key's folder, fsync new entries
 *	make_temp()          O_EXCL ".tmp.<pid>.<seq>" in that same folder
 *	write_all(), fsync   the whole object on disk
 *	renameat()           the object appears whole, replacing any old one
 *	fsync(folder)        the rename survives a crash
 *
 * Readers open the final name, so they see the old inode or the new one,
 * never a half-written file.  Names starting with '.' are not keys, so
 * temporary files never show up in list, get or head.
 *
 * No state is shared between calls but what open recorded, read-only
 * after open, and an atomic counter: the driver is thread-safe.
 */
#include "backend_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phi.h"

/* All read-only after open. */
struct dir_backend {
	struct backend base;
	char *path;		/* absolute: the region is what is there */
	dev_t dev;		/* the folder at open */
	ino_t ino;
	bool marked;		/* BACKEND_DIR_MARKER was there at open */
};

static const struct backend_ops dir_ops;

static atomic_ulong temp_seq;	/* makes temp names unique per process */

static struct dir_backend *dir_of(struct backend *be)
{
	assert(be && be->ops == &dir_ops);
	return (struct dir_backend *)be;
}

/* A key that runs into a file where a folder should be, or names a
 * folder, has no object: callers asked for an object, so say -ENOENT. */
static int missing_or(int err)
{
	if (err == ENOENT || err == ENOTDIR || err == EISDIR || err == ELOOP)
		return -ENOENT;
	return -err;
}

/* Whether the regular file name is in the folder dirfd: 1, 0, or -errno. */
static int has_file(int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISREG(st.st_mode);
	return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
}

/* Open the folder at the region's path for one call, and check it is
 * still the region (see the top of this file). */
static int root_open(struct dir_backend *d, int *fdp)
{
	struct stat st;
	int fd, rc = 0;

	fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? PHI_EREPLACED :
		       -errno;
	if (d->marked) {
		rc = has_file(fd, BACKEND_DIR_MARKER);
		if (rc == 0)
			rc = PHI_EREPLACED;
		else if (rc > 0)
			rc = 0;
	} else if (fstat(fd, &st) < 0) {
		rc = -errno;
	} else if (st.st_dev != d->dev || st.st_ino != d->ino) {
		rc = PHI_EREPLACED;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*fdp = fd;
	return 0;
}

static int fsync_dir_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* mkdir -p of the folder dir (relative to rootfd).  A folder this call
 * creates is only durable once its parent is fsynced. */
static int make_dirs(int rootfd, char *dir)
{
	for (char *p = dir;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdirat(rootfd, dir, 0700) == 0) {
			char *slash = strrchr(dir, '/');
			int rc;

			if (slash)
				*slash = '\0';
			rc = fsync_dir_at(rootfd, slash ? dir : ".");
			if (slash)
				*slash = '/';
			if (rc < 0)
				return rc;
		} else if (errno != EEXIST) {
			return -errno;
		}
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/*
 * Open the folder under rootfd that holds key's file and point *name at
 * the file's name inside key.  With create, missing folders are made;
 * without, a missing folder is -ENOENT.
 */
static int open_parent(int rootfd, const char *key, bool create, int *fdp,
		       const char **name)
{
	char dir[BACKEND_KEY_MAX + 1];
	const char *slash = strrchr(key, '/');
	int fd, rc;

	if (!slash) {
		strcpy(dir, ".");
		*name = key;
	} else {
		memcpy(dir, key, (size_t)(slash - key));
		dir[slash - key] = '\0';
		*name = slash + 1;
	}
	fd = openat(rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		rc = make_dirs(rootfd, dir);
		if (rc < 0)
			return rc;
		fd = openat(rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return create ? -errno : missing_or(errno);
	*fdp = fd;
	return 0;
}

/* A fresh temporary file in dirfd; a name left by a crashed process with
 * the same pid is skipped, never reused. */
static int make_temp(int dirfd, char *tmp, size_t size, int *fdp)
{
	for (int tries = 0; tries < 100; tries++) {
		unsigned long seq = atomic_fetch_add(&temp_seq, 1);
		int fd;

		snprintf(tmp, size, ".tmp.%ld.%lu", (long)getpid(), seq);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    0600);
		if (fd >= 0) {
			*fdp = fd;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write, flush and close the temp file; the first error wins. */
static int fill_temp(int fd, const void *data, size_t len)
{
	int rc = write_all(fd, data, len);

	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static int dir_put(struct backend *be, const char *key, const void *data,
		   size_t len)
{
	const char *name;
	char tmp[64];
	int root = -1, dfd = -1, fd = -1, rc;

	rc = root_open(dir_of(be), &root);
	if (rc < 0)
		return rc;
	rc = open_parent(root, key, true, &dfd, &name);
	close(root);
	if (rc < 0)
		return rc;
	rc = make_temp(dfd, tmp, sizeof(tmp), &fd);
	if (rc < 0)
		goto out;
	rc = fill_temp(fd, data, len);
	if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (fsync(dfd) < 0)
		rc = -errno;
out:
	close(dfd);
	return rc;
}

/* Open an object for reading; its size into *size. */
static int open_object(struct dir_backend *d, const char *key, int *fdp,
		       uint64_t *size)
{
	struct stat st;
	int root = -1, fd, rc;

	rc = root_open(d, &root);
	if (rc < 0)
		return rc;
	fd = openat(root, key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	rc = errno;
	close(root);
	if (fd < 0)
		return missing_or(rc);
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -ENOENT;
	}
	*fdp = fd;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Read exactly n bytes at off.  The file is immutable once renamed in, so
 * an early end means someone else changed it: -EIO. */
static int pread_all(int fd, void *dst, size_t n, uint64_t off)
{
	char *p = dst;

	while (n > 0) {
		ssize_t got = pread(fd, p, n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EIO;
		p += got;
		n -= (size_t)got;
		off += (uint64_t)got;
	}
	return 0;
}

static int dir_get(struct backend *be, const char *key, uint64_t off,
		   uint64_t len, struct buf *out)
{
	uint64_t size = 0, n = 0;
	int fd = -1, rc;

	rc = open_object(dir_of(be), key, &fd, &size);
	if (rc < 0)
		return rc;
	if (off < size)
		n = size - off;
	if (len && len < n)
		n = len;
	rc = n > SIZE_MAX ? -E2BIG : buf_reserve(out, (size_t)n);
	if (rc == 0 && n > 0) {
		size_t at = buf_len(out);

		rc = pread_all(fd, (char *)buf_mut(out) + at, (size_t)n, off);
		if (rc == 0)
			buf_setlen(out, at + (size_t)n);
	}
	close(fd);
	return rc;
}

static int dir_head(struct backend *be, const char *key, uint64_t *size)
{
	struct stat st;
	int root = -1, rc;

	rc = root_open(dir_of(be), &root);
	if (rc < 0)
		return rc;
	rc = fstatat(root, key, &st, AT_SYMLINK_NOFOLLOW) < 0 ?
	     missing_or(errno) : 0;
	close(root);
	if (rc < 0)
		return rc;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* ---- list ----------------------------------------------------------- */

struct walk {
	const char *prefix;
	size_t prefix_len;
	struct backend_keys keys;
	char path[BACKEND_KEY_MAX + 2];	/* key so far, folders end in '/' */
};

/* Could path[0..n) lead to, or be, a key starting with the prefix? */
static bool may_match(const struct walk *w, size_t n)
{
	return memcmp(w->path, w->prefix, n < w->prefix_len ?
		      n : w->prefix_len) == 0;
}

static int walk_dir(struct walk *w, int fd, size_t plen);

/* One directory entry: a folder to descend into, an object to keep, or
 * something that is not a key (skipped). */
static int walk_entry(struct walk *w, int dfd, const char *name, size_t plen)
{
	size_t nlen = strlen(name);
	struct stat st;
	int fd;

	if (name[0] == '.' || plen + nlen > BACKEND_KEY_MAX)
		return 0;
	memcpy(w->path + plen, name, nlen + 1);
	if (!may_match(w, plen + nlen))
		return 0;
	/* vanished since readdir: a concurrent del, not an error */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISREG(st.st_mode)) {
		if (plen + nlen < w->prefix_len ||
		    backend_key_check(w->path) < 0)
			return 0;
		return backend_keys_add(&w->keys, w->path,
					(uint64_t)st.st_size, 0);
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	memcpy(w->path + plen + nlen, "/", 2);
	if (!may_match(w, plen + nlen + 1))
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	return walk_dir(w, fd, plen + nlen + 1);
}

/* Gather the keys under the folder fd (consumed) whose path so far is
 * w->path[0..plen). */
static int walk_dir(struct walk *w, int fd, size_t plen)
{
	DIR *dir = fdopendir(fd);
	struct dirent *de;
	int rc = 0;

	if (!dir) {
		rc = -errno;
		close(fd);
		return rc;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de) {
			rc = -errno;
			break;
		}
		rc = walk_entry(w, dirfd(dir), de->d_name, plen);
		if (rc < 0)
			break;
	}
	closedir(dir);
	return rc;
}

static int dir_list(struct backend *be, const char *prefix,
		    backend_list_fn *fn, void *ctx)
{
	struct walk *w;
	int fd, rc;

	/* path is too big for the stack of a deep walk's caller */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->prefix = prefix;
	w->prefix_len = strlen(prefix);
	rc = root_open(dir_of(be), &fd);
	if (rc == 0)
		rc = walk_dir(w, fd, 0);
	if (rc == 0) {
		backend_keys_sort(&w->keys);
		rc = backend_keys_emit(&w->keys, fn, ctx);
	}
	backend_keys_release(&w->keys);
	free(w);
	return rc;
}

static int dir_del(struct backend *be, const char *key)
{
	const char *name;
	int root = -1, dfd = -1, rc;

	rc = root_open(dir_of(be), &root);
	if (rc < 0)
		return rc;
	rc = open_parent(root, key, false, &dfd, &name);
	close(root);
	if (rc < 0)
		return rc;
	if (unlinkat(dfd, name, 0) < 0)
		rc = missing_or(errno);
	else if (fsync(dfd) < 0)
		rc = -errno;	/* the object is gone, but maybe not for good */
	close(dfd);
	return rc;
}

static void dir_close(struct backend *be)
{
	struct dir_backend *d = dir_of(be);

	free(d->path);
	free(d);
}

static const struct backend_ops dir_ops = {
	.name = "dir",
	.put = dir_put,
	.get = dir_get,
	.head = dir_head,
	.list = dir_list,
	.del = dir_del,
	.close = dir_close,
};

/* path made absolute against the working folder (a daemon changes it
 * later); malloc'd, or NULL. */
static char *absolute(const char *path)
{
	char cwd[4096], *p;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	p = malloc(strlen(cwd) + strlen(path) + 2);
	if (p)
		sprintf(p, "%s/%s", cwd, path);
	return p;
}

/* Record what the folder fd is: its device and inode, and whether it
 * holds the marker.  0 or -errno. */
static int identify(struct dir_backend *d, int fd)
{
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	rc = has_file(fd, BACKEND_DIR_MARKER);
	if (rc < 0)
		return rc;
	d->marked = rc > 0;
	return 0;
}

int backend_dir_open(struct backend **out, const char *path)
{
	struct dir_backend *d;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Refuse now rather than at the first upload, minutes later. */
	if (faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		rc = errno == EROFS ? -EROFS : -EACCES;
		close(fd);
		return rc;
	}
	d = calloc(1, sizeof(*d));
	rc = d ? identify(d, fd) : -ENOMEM;
	if (rc == 0) {
		d->path = absolute(path);
		rc = d->path ? 0 : -ENOMEM;
	}
	close(fd);
	if (rc < 0) {
		free(d);
		return rc;
	}
	d->base.ops = &dir_ops;
	*out = &d->base;
	return 0;
}
