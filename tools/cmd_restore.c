/*
 * cmd_restore.c - phifs restore CONFIG PATH DEST [--at TIME]
 * [--region NAME] [--dry-run]: copy the file or folder PATH, as it was at
 * a moment, into the folder DEST, as `cp -a PATH DEST/` would.
 *
 * The filesystem as it was is rebuilt from a region's history in a scratch
 * folder (tool_with_scratch(), cache_recover()) and opened there with
 * CACHE_OPEN_FETCH_ONLY: its content comes back from the regions as it is
 * read, and nothing is sealed or sent.  The live filesystem and its
 * cache_dir are never touched, so DEST may be anywhere, the live mount
 * included.
 *
 * What lands in DEST, entry by entry (cp -a, made repeatable):
 *
 *   folder     made if missing, merged into if there (nothing of DEST is
 *              deleted); its mode, owner, xattrs and times are set after
 *              its entries, since adding them changes its times
 *   file       written to a temporary name beside it and renamed over
 *              the target, so that DEST/x is always either the old or the
 *              whole new file; a target with the same content only gets
 *              its attributes set
 *   symlink,   made under a temporary name and renamed over the target
 *   fifo, ...
 *   hard link  a second name of an inode already restored in this run is
 *              link()ed to the first, so link counts within PATH hold
 *
 * A folder never replaces a non-folder or the other way round: that stops
 * the restore with a line naming the target.  Temporary names are
 * ".phifs-restore-PID-N"; those of a process that no longer runs are
 * removed from every folder the restore enters, so a restore run again
 * after an interruption ends with the same tree as one that was not
 * interrupted.  Owners are set when running as root, as cp -a does.
 * PATH "/" restores the entries of the root into DEST itself, leaving
 * DEST's own attributes alone.
 */
#include "cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backend.h"
#include "phi.h"

static const char restore_usage[] =
	"usage: phifs restore CONFIG PATH DEST [--at TIME] [--region NAME] "
	"[--dry-run]\n\n"
	"Copy the file or folder PATH of the filesystem (a path from its "
	"root), as\nit was at TIME, into the folder DEST, as `cp -a PATH "
	"DEST/` would:\nthe result is DEST/<last part of PATH>.  Folders "
	"are merged into, files\nand links replaced; content, modes, owners "
	"(as root), times, hard links,\nsymlinks, user.* extended "
	"attributes, POSIX ACLs and (as root) security.*\nand trusted.* "
	"attributes are kept.  DEST may be any folder, the live\nmount "
	"included.  The history is read from a region (like recover),\nnot "
	"from cache_dir, which is left alone.\n\n"
	"  --at TIME       the moment (default: the latest): "
	"2026-11-29T10:00:00Z,\n                  2026-11-29T10:00:00 (local "
	"time), -2h, -3d, -30m, -90s\n"
	"  --region NAME   read the history from [region NAME] (default: the "
	"region\n                  whose history reaches closest to TIME, "
	"named on\n                  stderr)\n"
	"  --dry-run       write nothing; print one line per entry: create "
	"PATH,\n                  replace PATH (differs: ...), update PATH "
	"(a folder's\n                  attributes), or same PATH\n\n"
	"Safe to run again after an interruption.\n";

#define CHUNK (1u << 20)
#define EVICT_EVERY (UINT64_C(64) << 20)
#define TMP_PREFIX ".phifs-restore-"

struct link_slot {
	uint64_t ino;		/* 0 = free */
	char *path;		/* the first name restored */
	int fresh;		/* it is (or, in a dry run, would be) a new
				   inode: every other name must follow */
};

struct restore {
	/* arguments */
	const struct phi_config *cfg;
	const char *path, *dest, *region;
	int64_t at_ms;
	int dry_run;
	/* in the worker */
	struct cache *c;
	int as_root;
	int xattr_warned;
	int priv_warned;	/* security.* or trusted.* left out */
	struct link_slot *links;
	size_t nlinks, links_cap;
	char *buf, *buf2;	/* CHUNK each */
	unsigned tmp_seq;
	int last_new;		/* the last say() was create or replace */
	struct tool_progress prog;
	uint64_t total_bytes, done_bytes, since_evict;
	uint64_t total_entries, done_entries;
	uint64_t files, folders, symlinks, hardlinks, others;
	uint64_t created, replaced, same, bytes;
};

/* ---- small helpers ---------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	if (a && dir[a - 1] == '/')
		memmove(p + a, p + a + 1, b + 1);
	return p;
}

/* A path for a line of output: control characters and backslashes as
 * \ooo, so that each entry stays one line. */
static void print_path(FILE *f, const char *p)
{
	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			fprintf(f, "\\%03o", ch);
		else
			fputc(ch, f);
	}
}

static int fail_errno(const char *what, const char *path)
{
	tool_error("%s %s: %s", what, path, strerror(errno));
	return -1;
}

static int fail_code(const char *what, const char *path, int rc)
{
	tool_error("%s %s: %s", what, path, phi_strerror(rc));
	return -1;
}

/* ---- hard links: inode -> the first name restored -------------------- */

static struct link_slot *link_slot(struct restore *r, uint64_t ino)
{
	size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) & (r->links_cap - 1);

	while (r->links[i].ino && r->links[i].ino != ino)
		i = (i + 1) & (r->links_cap - 1);
	return &r->links[i];
}

static struct link_slot *link_find(struct restore *r, uint64_t ino)
{
	struct link_slot *s = r->links_cap ? link_slot(r, ino) : NULL;

	return s && s->ino ? s : NULL;
}

static int link_grow(struct restore *r)
{
	struct link_slot *old = r->links;
	size_t cap = r->links_cap;

	r->links_cap = cap ? 2 * cap : 64;
	r->links = calloc(r->links_cap, sizeof(*r->links));
	if (!r->links) {
		r->links = old;
		r->links_cap = cap;
		return -1;
	}
	for (size_t i = 0; i < cap; i++)
		if (old[i].ino)
			*link_slot(r, old[i].ino) = old[i];
	free(old);
	return 0;
}

static int link_add(struct restore *r, uint64_t ino, const char *path)
{
	struct link_slot *s;

	if ((r->nlinks + 1) * 2 > r->links_cap && link_grow(r)) {
		tool_error("out of memory");
		return -1;
	}
	s = link_slot(r, ino);
	if (s->ino)
		return 0;
	s->path = strdup(path);
	if (!s->path) {
		tool_error("out of memory");
		return -1;
	}
	s->ino = ino;
	r->nlinks++;
	return 0;
}

static void links_free(struct restore *r)
{
	for (size_t i = 0; i < r->links_cap; i++)
		free(r->links[i].path);
	free(r->links);
}

/* ---- the filesystem as it was ----------------------------------------- */

struct entries {
	char **name;
	size_t n, cap;
	int nomem;
};

static int collect(void *ctx, const char *name, const struct stat *st,
		   uint64_t next)
{
	struct entries *e = ctx;

	(void)st;
	(void)next;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 32;
		char **v = realloc(e->name, cap * sizeof(*v));

		if (!v) {
			e->nomem = 1;
			return 1;
		}
		e->name = v;
		e->cap = cap;
	}
	e->name[e->n] = strdup(name);
	if (!e->name[e->n]) {
		e->nomem = 1;
		return 1;
	}
	e->n++;
	return 0;
}

static void entries_free(struct entries *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->name[i]);
	free(e->name);
}

/* The names in folder ino.  0 or -1 (printed). */
static int list_folder(struct restore *r, uint64_t ino, const char *shown,
		       struct entries *e)
{
	int rc;

	memset(e, 0, sizeof(*e));
	rc = cache_readdir(r->c, ino, 0, 0, collect, e);
	if (rc == 0 && e->nomem)
		rc = -ENOMEM;
	if (rc) {
		entries_free(e);
		return fail_code("cannot list", shown, rc);
	}
	return 0;
}

/*
 * Walk PATH from the root; on success *ino and *st are its inode and
 * attributes, holding one lookup reference unless it is the root.
 * 0, or -1 (printed).
 */
static int resolve(struct restore *r, uint64_t *ino, struct stat *st)
{
	char *copy = strdup(r->path), *save = NULL, *part;
	uint64_t cur = CACHE_ROOT_INO;
	int rc = copy ? cache_getattr(r->c, cur, st) : -ENOMEM;

	for (part = rc ? NULL : strtok_r(copy, "/", &save); part;
	     part = strtok_r(NULL, "/", &save)) {
		uint64_t parent = cur;

		if (strcmp(part, ".") == 0)
			continue;
		if (strcmp(part, "..") == 0) {
			rc = -EINVAL;
			break;
		}
		rc = cache_lookup(r->c, parent, part, st);
		if (parent != CACHE_ROOT_INO)
			cache_forget(r->c, parent, 1);
		if (rc)
			break;
		cur = (uint64_t)st->st_ino;
	}
	free(copy);
	if (rc == -EINVAL)
		tool_error("%s: give a path from the root of the filesystem, "
			   "without ..", r->path);
	else if (rc == -ENOENT || rc == -ENOTDIR)
		tool_error("%s: no such file or folder in the filesystem at "
			   "that moment", r->path);
	else if (rc)
		fail_code("cannot look up", r->path, rc);
	if (rc)
		return -1;
	*ino = cur;
	return 0;
}

/* The last part of PATH, or NULL for the root. */
static char *last_part(const char *path)
{
	char *copy = strdup(path), *save = NULL, *part, *last = NULL;

	if (!copy)
		return NULL;
	for (part = strtok_r(copy, "/", &save); part;
	     part = strtok_r(NULL, "/", &save))
		if (strcmp(part, ".") != 0)
			last = part;
	last = last ? strdup(last) : NULL;
	free(copy);
	return last;
}

/* ---- attributes --------------------------------------------------------- */

/* A trusted.* or security.* name (Samba's security.NTACL, file
 * capabilities), which only root may set, other than the labels a
 * security module gives: those stay the ones of where a file lands. */
static int privileged_name(const char *name)
{
	static const char *const labels[] = {
		"security.selinux", "security.SMACK64", "security.apparmor",
		"security.ima", "security.evm",
	};

	if (strncmp(name, "trusted.", 8) != 0 &&
	    strncmp(name, "security.", 9) != 0)
		return 0;
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		if (strncmp(name, labels[i], strlen(labels[i])) == 0)
			return 0;
	return 1;
}

/* Whether restore makes the attribute name of a target of this mode
 * equal to the source's: user.* (which Linux keeps on files and folders
 * only) and the POSIX ACLs always, privileged_name()s as root. */
static int restored_name(const struct restore *r, const char *name,
			 mode_t mode)
{
	if (strncmp(name, "user.", 5) == 0)
		return S_ISREG(mode) || S_ISDIR(mode);
	return strcmp(name, "system.posix_acl_access") == 0 ||
	       strcmp(name, "system.posix_acl_default") == 0 ||
	       (r->as_root && privileged_name(name));
}

/* The xattrs of ino: NUL-separated names in *names (malloc).
 * Returns the list's length or a negative code. */
static int source_xattr_names(struct restore *r, uint64_t ino, char **names)
{
	int n = cache_listxattr(r->c, ino, NULL, 0);

	*names = NULL;
	if (n <= 0)
		return n;
	*names = malloc((size_t)n);
	if (!*names)
		return -ENOMEM;
	n = cache_listxattr(r->c, ino, *names, (size_t)n);
	if (n < 0) {
		free(*names);
		*names = NULL;
	}
	return n;
}

static int source_xattr(struct restore *r, uint64_t ino, const char *name,
			char *value)
{
	return cache_getxattr(r->c, ino, name, value, CACHE_XATTR_SIZE_MAX);
}

static int in_list(const char *list, size_t len, const char *name)
{
	for (size_t i = 0; i < len; i += strlen(list + i) + 1)
		if (strcmp(list + i, name) == 0)
			return 1;
	return 0;
}

/* The target's xattr names (NUL-separated, malloc) or NULL; *len. */
static char *target_xattr_names(const char *path, ssize_t *len)
{
	ssize_t n = llistxattr(path, NULL, 0);
	char *list;

	*len = 0;
	if (n <= 0)
		return NULL;
	list = malloc((size_t)n);
	if (!list)
		return NULL;
	n = llistxattr(path, list, (size_t)n);
	if (n < 0) {
		free(list);
		return NULL;
	}
	*len = n;
	return list;
}

/* Whether path's xattrs equal ino's, as far as restore makes them so
 * (restored_name()).  1 same, 0 not, -1 error. */
static int xattrs_same(struct restore *r, uint64_t ino, mode_t mode,
		       const char *path)
{
	char *src = NULL, *dst;
	ssize_t dlen;
	int slen, same = 1;

	slen = source_xattr_names(r, ino, &src);
	if (slen < 0)
		return fail_code("cannot list the attributes of", r->path, slen);
	dst = target_xattr_names(path, &dlen);
	for (ssize_t i = 0; same && i < dlen; i += (ssize_t)strlen(dst + i) + 1)
		if (restored_name(r, dst + i, mode) &&
		    !in_list(src, (size_t)slen, dst + i))
			same = 0;
	for (int i = 0; same && i < slen; i += (int)strlen(src + i) + 1) {
		int a;
		ssize_t b;

		if (!restored_name(r, src + i, mode))
			continue;
		a = source_xattr(r, ino, src + i, r->buf);
		b = lgetxattr(path, src + i, r->buf2, CACHE_XATTR_SIZE_MAX);
		same = a >= 0 && b == a && memcmp(r->buf, r->buf2,
						  (size_t)a) == 0;
	}
	free(src);
	free(dst);
	return same;
}

static void no_xattrs(struct restore *r)
{
	if (r->xattr_warned++)
		return;
	tool_warn("%s does not keep extended attributes (user.*, ACLs); "
		  "restoring without them", r->dest);
}

/* Make path's xattrs those of ino (restored_name()).  0 or -1 (printed). */
static int set_xattrs(struct restore *r, uint64_t ino, mode_t mode,
		      const char *path)
{
	char *src = NULL, *dst;
	ssize_t dlen;
	int slen, rc = 0;

	slen = source_xattr_names(r, ino, &src);
	if (slen < 0)
		return fail_code("cannot list the attributes of", r->path, slen);
	dst = target_xattr_names(path, &dlen);
	for (ssize_t i = 0; i < dlen; i += (ssize_t)strlen(dst + i) + 1)
		if (restored_name(r, dst + i, mode) &&
		    !in_list(src, (size_t)slen, dst + i))
			lremovexattr(path, dst + i);
	for (int i = 0; rc == 0 && i < slen; i += (int)strlen(src + i) + 1) {
		int n;

		if (!restored_name(r, src + i, mode)) {
			if (privileged_name(src + i) && !r->priv_warned++)
				tool_warn("restoring without security.* and "
					  "trusted.* attributes: only root "
					  "may set them");
			continue;
		}
		n = source_xattr(r, ino, src + i, r->buf);
		if (n < 0)
			rc = fail_code("cannot read an attribute of", r->path,
				       n);
		else if (lsetxattr(path, src + i, r->buf, (size_t)n, 0) == 0)
			continue;
		else if (errno == EOPNOTSUPP || errno == ENOTSUP)
			no_xattrs(r);
		else
			rc = fail_errno("cannot set an extended attribute on",
					path);
	}
	free(src);
	free(dst);
	return rc;
}

/* Symlinks have no ACLs nor user.* attributes: restore sets none. */
static int keeps_xattrs(mode_t mode)
{
	return !S_ISLNK(mode);
}

/* Owner, xattrs, mode and times of ino onto path, in an order where no
 * step undoes or blocks another: chown clears set-id bits, and setting
 * a user.* attribute needs write permission.  0 or -1 (printed). */
static int set_attrs(struct restore *r, uint64_t ino, const struct stat *st,
		     const char *path)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };

	if (r->as_root && lchown(path, st->st_uid, st->st_gid))
		return fail_errno("cannot set the owner of", path);
	if (keeps_xattrs(st->st_mode) &&
	    set_xattrs(r, ino, st->st_mode, path))
		return -1;
	if (!S_ISLNK(st->st_mode) && chmod(path, st->st_mode & 07777))
		return fail_errno("cannot set the mode of", path);
	if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW))
		return fail_errno("cannot set the times of", path);
	return 0;
}

/* Append to out what differs in the attributes of cur (at path) from
 * st (ino).  -1 on error (printed). */
static int diff_attrs(struct restore *r, uint64_t ino, const struct stat *st,
		      const char *path, const struct stat *cur, char *out,
		      size_t len)
{
	int is_link = S_ISLNK(st->st_mode), x = 1;
	size_t n = strlen(out);

	if (!is_link && (cur->st_mode & 07777) != (st->st_mode & 07777))
		n += (size_t)snprintf(out + n, len - n, "%smode", n ? ", " : "");
	if (r->as_root && (cur->st_uid != st->st_uid ||
			   cur->st_gid != st->st_gid))
		n += (size_t)snprintf(out + n, len - n, "%sowner",
				      n ? ", " : "");
	if (cur->st_mtim.tv_sec != st->st_mtim.tv_sec ||
	    cur->st_mtim.tv_nsec != st->st_mtim.tv_nsec)
		n += (size_t)snprintf(out + n, len - n, "%smtime",
				      n ? ", " : "");
	if (keeps_xattrs(st->st_mode))
		x = xattrs_same(r, ino, st->st_mode, path);
	if (x < 0)
		return -1;
	if (!x)
		snprintf(out + n, len - n, "%sxattrs", n ? ", " : "");
	return 0;
}

/* ---- what to do with one target ------------------------------------- */

/* The progress line: entries and bytes; the time left from the mean of
 * the two fractions, since many small files cost more than their bytes. */
static void show_progress(struct restore *r)
{
	struct tool_progress *p = &r->prog;
	uint64_t now = phi_mono_ns();
	double fe, fb, f, secs;
	char done[32], total[32], left[32] = "";

	if (!p->on || now - p->last_ns < 250000000)
		return;
	p->last_ns = now;
	fe = r->total_entries ? (double)r->done_entries /
				(double)r->total_entries : 1;
	fb = r->total_bytes ? (double)r->done_bytes / (double)r->total_bytes :
			      1;
	f = (fe + fb) / 2;
	secs = (double)(now - p->start_ns) / 1e9;
	if (f > 0.01 && f < 1)
		snprintf(left, sizeof(left), ", %.0f s left",
			 secs * (1 - f) / f);
	tool_human_size(r->done_bytes, done, sizeof(done));
	tool_human_size(r->total_bytes, total, sizeof(total));
	fprintf(stderr, "\r%s: %" PRIu64 " of %" PRIu64 " entries, %s of %s "
		"(%.0f%%)%s\033[K", p->label, r->done_entries,
		r->total_entries, done, total, 100 * f, left);
	tool_progress_drawn();
}

enum verdict { V_CREATE, V_REPLACE, V_FIX, V_SAME };

static void say(struct restore *r, enum verdict v, const char *path,
		const char *differs, int folder)
{
	static const char *const word[] = { "create", "replace", "replace",
					    "same" };

	r->last_new = v == V_CREATE || v == V_REPLACE;
	r->done_entries++;
	show_progress(r);
	if (v == V_CREATE)
		r->created++;
	else if (v == V_SAME)
		r->same++;
	else
		r->replaced++;
	if (!r->dry_run)
		return;
	fputs(folder && v == V_FIX ? "update" : word[v], stdout);
	fputc(' ', stdout);
	print_path(stdout, path);
	if (v == V_REPLACE || v == V_FIX)
		printf(" (differs: %s)", differs);
	fputc('\n', stdout);
}

/* A temporary name in dir, not there yet, for one attempt. */
static char *tmp_name(struct restore *r, const char *dir)
{
	char name[64];

	snprintf(name, sizeof(name), TMP_PREFIX "%ld-%u", (long)getpid(),
		 r->tmp_seq++);
	return join(dir, name);
}

/* Put the entry made at tmp in place of target.  0 or -1 (printed; tmp
 * removed). */
static int commit(const char *tmp, const char *target)
{
	struct stat st;

	if (rename(tmp, target)) {
		int e = errno;

		unlink(tmp);
		errno = e;
		return fail_errno("cannot put in place", target);
	}
	/* rename() of a name onto another name of the same inode does
	 * nothing: the temporary name stays */
	if (lstat(tmp, &st) == 0)
		unlink(tmp);
	return 0;
}

/* Remove temporary names left by restores that no longer run. */
static void sweep_tmp(const char *dir)
{
	size_t n = strlen(TMP_PREFIX);
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		long pid;

		if (strncmp(e->d_name, TMP_PREFIX, n) != 0)
			continue;
		pid = strtol(e->d_name + n, NULL, 10);
		if (pid != (long)getpid() && tool_pid_alive(pid))
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

/* ---- regular files ------------------------------------------------------ */

static int all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* [off, off + *n) of the source file into r->buf; *n 0 at the end. */
static int read_source(struct restore *r, struct cache_file *f, uint64_t off,
		       size_t *n)
{
	ssize_t got = cache_read(r->c, f, off, r->buf, CHUNK);

	*n = got > 0 ? (size_t)got : 0;
	return got < 0 ? (int)got : 0;
}

static int write_all(int fd, const char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

static void count_bytes(struct restore *r, size_t n)
{
	r->done_bytes += n;
	r->since_evict += n;
	show_progress(r);
}

/* The content of f into the new file fd.  0 or -1 (printed). */
static int write_content(struct restore *r, struct cache_file *f, int fd,
			 const struct stat *st, const char *target)
{
	uint64_t off = 0;
	size_t n;
	int rc;

	for (;;) {
		rc = read_source(r, f, off, &n);
		if (rc)
			return fail_code("cannot read the content of",
					 target, rc);
		if (n == 0)
			break;
		if (!all_zero(r->buf, n) &&
		    write_all(fd, r->buf, n, (off_t)off))
			return fail_errno("cannot write", target);
		off += n;
		count_bytes(r, n);
	}
	if (ftruncate(fd, st->st_size))
		return fail_errno("cannot write", target);
	if (fsync(fd))
		return fail_errno("cannot write", target);
	r->bytes += off;
	return 0;
}

/* Whether the file at target holds f's content.  1, 0, or -1 (printed). */
static int same_content(struct restore *r, struct cache_file *f,
			const char *target)
{
	int fd = open(target, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	uint64_t off = 0;
	size_t n;
	int rc, same = 1;

	if (fd < 0)
		return 0;
	while (same) {
		rc = read_source(r, f, off, &n);
		if (rc) {
			close(fd);
			return fail_code("cannot read the content of", target,
					 rc);
		}
		if (n == 0)
			break;
		same = pread(fd, r->buf2, n, (off_t)off) == (ssize_t)n &&
		       memcmp(r->buf, r->buf2, n) == 0;
		off += n;
	}
	close(fd);
	return same;
}

/* A new file with f's content and ino's attributes, renamed over target. */
static int write_file(struct restore *r, struct cache_file *f, uint64_t ino,
		      const struct stat *st, const char *dir,
		      const char *target)
{
	char *tmp = NULL;
	int fd = -1, rc;

	do {
		free(tmp);
		tmp = tmp_name(r, dir);
		if (!tmp) {
			tool_error("out of memory");
			return -1;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			  O_CLOEXEC, 0600);
	} while (fd < 0 && errno == EEXIST);
	if (fd < 0) {
		rc = fail_errno("cannot create a file in", dir);
		free(tmp);
		return rc;
	}
	rc = write_content(r, f, fd, st, target);
	if (close(fd) && rc == 0)
		rc = fail_errno("cannot write", target);
	if (rc == 0)
		rc = set_attrs(r, ino, st, tmp);
	if (rc == 0)
		rc = commit(tmp, target);
	else
		unlink(tmp);
	free(tmp);
	return rc;
}

/* What to do with a regular file whose target is cur (NULL: none). */
static int judge_file(struct restore *r, struct cache_file *f, uint64_t ino,
		      const struct stat *st, const char *target,
		      const struct stat *cur, char *why, size_t len,
		      enum verdict *v)
{
	int same;

	*v = V_CREATE;
	if (!cur)
		return 0;
	*v = V_REPLACE;
	if (!S_ISREG(cur->st_mode)) {
		snprintf(why, len, "type");
		return 0;
	}
	if (cur->st_size != st->st_size) {
		snprintf(why, len, "size");
		return 0;
	}
	same = same_content(r, f, target);
	if (same < 0)
		return -1;
	if (!same) {
		snprintf(why, len, "content");
		return 0;
	}
	if (diff_attrs(r, ino, st, target, cur, why, len))
		return -1;
	*v = why[0] ? V_FIX : V_SAME;
	return 0;
}

static int restore_file(struct restore *r, uint64_t ino,
			const struct stat *st, const char *dir,
			const char *target, const struct stat *cur)
{
	struct cache_file *f;
	char why[128] = "";
	enum verdict v;
	int rc;

	rc = cache_file_open(r->c, ino, 0, &f);
	if (rc)
		return fail_code("cannot open", target, rc);
	rc = judge_file(r, f, ino, st, target, cur, why, sizeof(why), &v);
	if (rc == 0)
		say(r, v, target, why, 0);
	if (rc == 0 && !r->dry_run) {
		if (v == V_CREATE || v == V_REPLACE)
			rc = write_file(r, f, ino, st, dir, target);
		else if (v == V_FIX)
			rc = set_attrs(r, ino, st, target);
	}
	cache_file_release(r->c, f);
	if (r->since_evict >= EVICT_EVERY ||
	    r->since_evict >= r->cfg->cache_size / 4) {
		/* the scratch copy need not keep what is in DEST now */
		cache_evict(r->c, UINT64_MAX);
		r->since_evict = 0;
	}
	r->files++;
	return rc;
}

/* ---- symlinks, fifos, sockets, devices, second names -------------------- */

/* Make the node (symlink to target_of, or mknod) at a temporary name in
 * dir; *tmp is malloc'd.  0 or -1 (printed). */
static int make_node(struct restore *r, const struct stat *st,
		     const char *link_to, const char *dir, char **tmp)
{
	int rc;

	*tmp = NULL;
	do {
		free(*tmp);
		*tmp = tmp_name(r, dir);
		if (!*tmp) {
			tool_error("out of memory");
			return -1;
		}
		if (S_ISLNK(st->st_mode))
			rc = symlink(link_to, *tmp);
		else
			rc = mknod(*tmp, (st->st_mode & S_IFMT) | 0600,
				   st->st_rdev);
	} while (rc && errno == EEXIST);
	if (rc) {
		rc = fail_errno(S_ISLNK(st->st_mode) ? "cannot make a symlink "
				"in" : "cannot make a special file in", dir);
		free(*tmp);
		*tmp = NULL;
	}
	return rc;
}

/* Whether cur is the node st describes (type, link target, device). */
static int same_node(struct restore *r, const struct stat *st,
		     const char *link_to, const char *target,
		     const struct stat *cur, char *why, size_t len)
{
	ssize_t n;

	if ((cur->st_mode & S_IFMT) != (st->st_mode & S_IFMT)) {
		snprintf(why, len, "type");
		return 0;
	}
	if (S_ISLNK(st->st_mode)) {
		n = readlink(target, r->buf2, CHUNK);
		if (n < 0 || (size_t)n != strlen(link_to) ||
		    memcmp(r->buf2, link_to, (size_t)n) != 0) {
			snprintf(why, len, "target");
			return 0;
		}
	} else if ((S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) &&
		   cur->st_rdev != st->st_rdev) {
		snprintf(why, len, "device");
		return 0;
	}
	return 1;
}

static int restore_node(struct restore *r, uint64_t ino,
			const struct stat *st, const char *dir,
			const char *target, const struct stat *cur)
{
	char why[128] = "", *tmp, link_to[PATH_MAX + 1] = "";
	enum verdict v = V_CREATE;
	int rc;

	if (S_ISLNK(st->st_mode)) {
		rc = cache_readlink(r->c, ino, link_to, sizeof(link_to));
		if (rc < 0)
			return fail_code("cannot read the symlink", target, rc);
		r->symlinks++;
	} else {
		r->others++;
	}
	if (cur) {
		v = V_REPLACE;
		if (same_node(r, st, link_to, target, cur, why, sizeof(why))) {
			if (diff_attrs(r, ino, st, target, cur, why,
				       sizeof(why)))
				return -1;
			v = why[0] ? V_FIX : V_SAME;
		}
	}
	say(r, v, target, why, 0);
	if (r->dry_run || v == V_SAME)
		return 0;
	if (v == V_FIX)
		return set_attrs(r, ino, st, target);
	if (make_node(r, st, link_to, dir, &tmp))
		return -1;
	rc = set_attrs(r, ino, st, tmp);
	if (rc == 0)
		rc = commit(tmp, target);
	else
		unlink(tmp);
	free(tmp);
	return rc;
}

/* Another name of an inode restored before in this run. */
static int restore_link(struct restore *r, const struct link_slot *first,
			const char *dir, const char *target,
			const struct stat *cur)
{
	struct stat fst;
	enum verdict v = V_CREATE;
	char *tmp = NULL;
	int rc;

	r->hardlinks++;
	if (cur) {
		v = V_REPLACE;
		/* in a dry run the first name is not new yet */
		if (!(r->dry_run && first->fresh) &&
		    lstat(first->path, &fst) == 0 &&
		    fst.st_dev == cur->st_dev && fst.st_ino == cur->st_ino)
			v = V_SAME;
	}
	say(r, v, target, "link", 0);
	if (r->dry_run || v == V_SAME)
		return 0;
	do {
		free(tmp);
		tmp = tmp_name(r, dir);
		if (!tmp) {
			tool_error("out of memory");
			return -1;
		}
		rc = link(first->path, tmp);
	} while (rc && errno == EEXIST);
	if (rc) {
		rc = fail_errno("cannot make a hard link to", first->path);
		free(tmp);
		return rc;
	}
	rc = commit(tmp, target);
	free(tmp);
	return rc;
}

/* ---- folders and the walk ----------------------------------------------- */

static int restore_entry(struct restore *r, uint64_t ino,
			 const struct stat *st, const char *dir,
			 const char *target);

/* Every entry of folder ino into the folder target. */
static int restore_children(struct restore *r, uint64_t ino,
			    const char *target)
{
	struct entries e;
	int rc = 0;

	if (list_folder(r, ino, target, &e))
		return -1;
	if (!r->dry_run)
		sweep_tmp(target);
	for (size_t i = 0; i < e.n && rc == 0; i++) {
		char *child = join(target, e.name[i]);
		struct stat st;

		if (!child) {
			tool_error("out of memory");
			rc = -1;
			break;
		}
		rc = cache_lookup(r->c, ino, e.name[i], &st);
		if (rc == 0) {
			rc = restore_entry(r, (uint64_t)st.st_ino, &st,
					   target, child);
			cache_forget(r->c, (uint64_t)st.st_ino, 1);
		} else {
			rc = fail_code("cannot look up", child, rc);
		}
		free(child);
	}
	entries_free(&e);
	return rc;
}

static int restore_folder(struct restore *r, uint64_t ino,
			  const struct stat *st, const char *target,
			  const struct stat *cur)
{
	char why[128] = "";
	enum verdict v = V_CREATE;

	r->folders++;
	if (cur && !S_ISDIR(cur->st_mode)) {
		tool_error("%s exists and is not a folder: will not replace it "
			   "with one (move it away first)", target);
		return -1;
	}
	if (cur && diff_attrs(r, ino, st, target, cur, why, sizeof(why)))
		return -1;
	if (cur)
		v = why[0] ? V_FIX : V_SAME;
	say(r, v, target, why, 1);
	if (r->dry_run)
		return restore_children(r, ino, target);
	if (!cur && mkdir(target, 0700))
		return fail_errno("cannot make the folder", target);
	if (restore_children(r, ino, target))
		return -1;
	return set_attrs(r, ino, st, target);
}

static int restore_entry(struct restore *r, uint64_t ino,
			 const struct stat *st, const char *dir,
			 const char *target)
{
	struct link_slot *first;
	struct stat cur;
	int have = lstat(target, &cur) == 0, rc;

	if (!have && errno != ENOENT && errno != ENOTDIR)
		return fail_errno("cannot look at", target);
	if (S_ISDIR(st->st_mode))
		return restore_folder(r, ino, st, target, have ? &cur : NULL);
	if (have && S_ISDIR(cur.st_mode)) {
		tool_error("%s is a folder: will not replace it with a file "
			   "(move it away first)", target);
		return -1;
	}
	first = st->st_nlink > 1 ? link_find(r, ino) : NULL;
	if (first)
		return restore_link(r, first, dir, target, have ? &cur : NULL);
	if (st->st_nlink > 1 && link_add(r, ino, target))
		return -1;
	if (S_ISREG(st->st_mode))
		rc = restore_file(r, ino, st, dir, target, have ? &cur : NULL);
	else
		rc = restore_node(r, ino, st, dir, target, have ? &cur : NULL);
	if (rc == 0 && st->st_nlink > 1)
		link_find(r, ino)->fresh = r->last_new;
	return rc;
}

/* Entries and bytes of regular files under ino, for the progress
 * display. */
static void tree_size(struct restore *r, uint64_t ino, const struct stat *st)
{
	struct entries e;

	r->total_entries++;
	if (S_ISREG(st->st_mode))
		r->total_bytes += (uint64_t)st->st_size;
	if (!S_ISDIR(st->st_mode))
		return;
	memset(&e, 0, sizeof(e));
	if (cache_readdir(r->c, ino, 0, 0, collect, &e) == 0) {
		for (size_t i = 0; i < e.n; i++) {
			struct stat cst;

			if (cache_lookup(r->c, ino, e.name[i], &cst))
				continue;
			tree_size(r, (uint64_t)cst.st_ino, &cst);
			cache_forget(r->c, (uint64_t)cst.st_ino, 1);
		}
	}
	entries_free(&e);
}

/* ---- the worker ---------------------------------------------------------- */

static void summary(const struct restore *r, const char *target,
		    const struct cache_recover_info *info, uint64_t start_ns)
{
	char when[32], size[32];

	phi_format_moment(info->time_ms, when);
	tool_human_size(r->bytes, size, sizeof(size));
	if (r->dry_run) {
		printf("dry run, nothing written: %" PRIu64 " to create, %"
		       PRIu64 " to replace or update, %" PRIu64 " the same "
		       "(as at %s)\n", r->created, r->replaced, r->same, when);
		return;
	}
	printf("restored %s as at %s into ", r->path, when);
	print_path(stdout, target);
	printf(": %" PRIu64 " file%s, %" PRIu64 " folder%s, %" PRIu64
	       " symlink%s, %" PRIu64 " hard link%s, %" PRIu64 " other; %"
	       PRIu64 " created, %" PRIu64 " replaced, %" PRIu64 " already "
	       "the same; %s written in %.1f s\n",
	       r->files, r->files == 1 ? "" : "s", r->folders,
	       r->folders == 1 ? "" : "s", r->symlinks,
	       r->symlinks == 1 ? "" : "s", r->hardlinks,
	       r->hardlinks == 1 ? "" : "s", r->others, r->created,
	       r->replaced, r->same, size,
	       (double)(phi_mono_ns() - start_ns) / 1e9);
}

/* DEST must be a folder; the top target is DEST/<last part of PATH>,
 * or DEST itself for the root.  0 or -1 (printed). */
static int top_target(struct restore *r, char **target, int *is_root)
{
	struct stat st;
	char *last;

	if (stat(r->dest, &st))
		return fail_errno("cannot restore into", r->dest);
	if (!S_ISDIR(st.st_mode)) {
		tool_error("%s: not a folder (DEST is the folder to restore "
			   "into)", r->dest);
		return -1;
	}
	last = last_part(r->path);
	*is_root = last == NULL;
	*target = last ? join(r->dest, last) : strdup(r->dest);
	free(last);
	if (!*target) {
		tool_error("out of memory");
		return -1;
	}
	return 0;
}

static int copy_out(struct restore *r, const struct cache_recover_info *info,
		    uint64_t start_ns)
{
	struct stat st;
	uint64_t ino;
	char *target = NULL;
	int rc, is_root = 0;

	if (resolve(r, &ino, &st))
		return -1;
	rc = top_target(r, &target, &is_root);
	if (rc == 0 && r->prog.on && !r->dry_run) {
		tree_size(r, ino, &st);
		r->total_entries -= (uint64_t)is_root;	/* DEST itself */
	}
	if (rc == 0 && !r->dry_run)
		sweep_tmp(is_root ? target : r->dest);
	if (rc == 0 && is_root)
		rc = restore_children(r, ino, target);
	else if (rc == 0)
		rc = restore_entry(r, ino, &st, r->dest, target);
	tool_progress_end(&r->prog);
	if (rc == 0)
		summary(r, target, info, start_ns);
	if (ino != CACHE_ROOT_INO)
		cache_forget(r->c, ino, 1);
	free(target);
	return rc;
}

/* Open the rebuilt copy in dir as the regions' reader.  0 or -1. */
static int open_copy(struct restore *r, struct tool_history *h,
		     const char *dir)
{
	struct cache_config cc;
	int rc;

	tool_cache_config(r->cfg, &cc);
	cc.dir = dir;
	cc.block_size = h->info.block_size;
	cc.regions = h->set;
	cc.region_names = h->names;
	cc.key = h->key;
	rc = cache_open(&r->c, &cc, CACHE_OPEN_FETCH_ONLY);
	if (rc)
		return fail_code("cannot open the rebuilt copy in", dir, rc);
	return 0;
}

/*
 * The restore in the audit trail of this machine's cache_dir: PATH, the
 * moment asked for and the one found, where to, from which region; err
 * EIO when it stopped partway (some of PATH may have reached DEST).
 * 0, or -1 after printing why it could not be recorded.
 */
static int audit_restore(const struct restore *r,
			 const struct tool_history *h,
			 const struct cache_recover_info *info, int failed)
{
	char asked[40], found[40], dest[PATH_MAX], detail[PATH_MAX + 400];

	tool_audit_time(r->at_ms, asked, sizeof(asked));
	tool_audit_time(info->time_ms, found, sizeof(found));
	if (!realpath(r->dest, dest))
		snprintf(dest, sizeof(dest), "%s", r->dest);
	snprintf(detail, sizeof(detail), "at=%s moment=%s dest=%s region=%s%s",
		 asked, found, dest, h->names[h->chosen],
		 r->dry_run ? " dry-run" : "");
	return tool_audit_command(r->cfg, AUDIT_RESTORE, failed ? EIO : 0,
				  r->path, detail);
}

static int restore_in(void *ctx, const char *dir)
{
	struct restore *r = ctx;
	struct cache_recover_info info;
	struct cache_recover_args a;
	struct tool_history h;
	uint64_t start = phi_mono_ns();
	int64_t latest = INT64_MIN;	/* the choice made, if any */
	int rc;

	r->as_root = geteuid() == 0;
	r->buf = malloc(CHUNK);
	r->buf2 = malloc(CHUNK);
	if (!r->buf || !r->buf2) {
		tool_error("out of memory");
		return 1;
	}
	if (tool_history_open(r->cfg, r->region, &h))
		return 1;
	if (!r->region)
		tool_history_choose_latest(&h, r->at_ms, &latest);
	tool_history_args(&h, dir, r->at_ms, &a);
	tool_progress_init(&r->prog, "reading history");
	a.progress = tool_progress_show;
	a.progress_ctx = &r->prog;
	rc = cache_recover(&a, &info);
	tool_progress_end(&r->prog);
	if (rc)
		rc = tool_history_error(&h, r->at_ms, rc);
	else
		tool_history_compare(&h, r->at_ms, info.time_ms);
	if (rc == 0)
		rc = open_copy(r, &h, dir);
	if (rc == 0) {
		tool_progress_init(&r->prog, "restore");
		r->prog.on &= !r->dry_run;	/* its lines are the output */
		rc = copy_out(r, &info, start);
		cache_close(r->c);
		if (audit_restore(r, &h, &info, rc != 0))
			rc = 1;
	}
	if (rc == 0)
		tool_history_say_choice(&h, latest);
	tool_history_close(&h);
	links_free(r);
	free(r->buf);
	free(r->buf2);
	return rc ? 1 : 0;
}

/* ---- which region's history ------------------------------------------ */

/* Whether (latest, oldest) of one region beats (best, best_oldest). */
static int better(int64_t latest, int64_t oldest, int64_t best,
		  int64_t best_oldest)
{
	return latest > best || (latest == best && oldest < best_oldest);
}

void tool_history_choose_latest(struct tool_history *h, int64_t at_ms,
				int64_t *latest_ms)
{
	int64_t best = INT64_MIN, best_oldest = INT64_MAX;
	int chosen = h->chosen;

	for (int i = 0; i < h->nset; i++) {
		struct backend *be = backend_replica_region(h->set, i);
		int64_t latest = INT64_MIN, oldest = INT64_MAX;
		struct cache_moment *m = NULL;
		size_t n = 0;

		if (cache_history_list(be, h->key, h->info.fsid, &m, &n))
			continue;
		for (size_t k = 0; k < n; k++) {
			if (m[k].time_ms < oldest)
				oldest = m[k].time_ms;
			if (m[k].time_ms <= at_ms && m[k].time_ms > latest)
				latest = m[k].time_ms;
		}
		cache_history_free(m);
		if (latest != INT64_MIN &&
		    better(latest, oldest, best, best_oldest)) {
			best = latest;
			best_oldest = oldest;
			chosen = i;
		}
	}
	h->chosen = chosen;
	*latest_ms = best;
}

void tool_history_say_choice(const struct tool_history *h,
			     int64_t latest_ms)
{
	char when[32];

	if (latest_ms == INT64_MIN)
		return;
	phi_format_moment(latest_ms, when);
	fflush(stdout);
	fprintf(stderr, "phifs: history read from region %s, the one with the "
		"latest moment (%s)\n", tool_history_region(h), when);
}

/* ---- phifs restore ----------------------------------------------------- */

static int parse_restore_args(int argc, char **argv, struct restore *r,
			      const char **config, const char **at)
{
	const char *pos[3] = { NULL, NULL, NULL };
	int npos = 0;

	*at = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			r->region = argv[++i];
		else if (strncmp(argv[i], "--region=", 9) == 0)
			r->region = argv[i] + 9;
		else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
			*at = argv[++i];
		else if (strncmp(argv[i], "--at=", 5) == 0)
			*at = argv[i] + 5;
		else if (strcmp(argv[i], "--dry-run") == 0)
			r->dry_run = 1;
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			return -1;
		else if (npos < 3)
			pos[npos++] = argv[i];
		else
			return -1;
	}
	if (npos != 3)
		return -1;
	*config = pos[0];
	r->path = pos[1];
	r->dest = pos[2];
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	struct restore r;
	struct phi_config cfg;
	const char *config, *at;
	int rc;

	if (tool_want_help(argc, argv, restore_usage))
		return 0;
	memset(&r, 0, sizeof(r));
	r.at_ms = INT64_MAX;
	if (parse_restore_args(argc, argv, &r, &config, &at)) {
		tool_error("usage: phifs restore CONFIG PATH DEST [--at TIME] "
			   "[--region NAME] [--dry-run]");
		return 2;
	}
	if (at && tool_time_arg("--at", at, &r.at_ms))
		return 2;
	if (tool_load_config(config, &cfg))
		return 1;
	r.cfg = &cfg;
	rc = tool_with_scratch(&cfg, restore_in, &r);
	phi_config_release(&cfg);
	return rc;
}
