/*
 * fs_audit.c - one audit event per operation that touches a file, made
 * where the request arrives (audit.h has the event, cache.h how it is
 * kept).
 *
 * Like fs_metrics.c, this serves a copy of the handler table whose
 * entries wrap the real ones (fs_audit_wrap()); with audit off it is not
 * in the table at all.  A wrapper describes the operation before the
 * handler runs and stages that event with the cache, so the cache writes
 * it in the transaction of the change (cache_audit_stage()); what the
 * handler answered comes back through fs_answer, which fs.c's reply
 * helpers set.  An event whose request made no change (an open, a
 * refusal) is queued instead, with the answer's errno.  What a wrapper
 * keeps of an answer (the names below, a handle's byte counts) is kept
 * by the reply helpers just before the answer leaves (fs_answer_ready()):
 * the program's next request, served by another thread, may depend on it.
 *
 * Paths.  The kernel names a file by its parent's inode and its name; the
 * trail wants the path from the root as it is at that moment.  The names
 * table holds, for each inode the kernel holds a reference to, the parent
 * and names it was reached by, counted as the kernel counts lookups
 * (an entry goes when the kernel forgets the inode).  A file with hard
 * links is shown by the oldest name that still leads to it.  Renames
 * move names; an unlinked name is kept for the release of a handle
 * still open on it.  The kernel holds every ancestor of what it
 * holds, so a path is found by walking up the table to the root.
 *
 * Reads and writes are counted per open handle (by the file handle the
 * kernel quotes) and recorded once, in the release event; an open whose
 * reads the kernel's page cache answered moved nothing through phifs and
 * has no release event.
 */
#include "fs.h"
#include "fs_int.h"

#include "audit.h"
#include "cache.h"
#include "phi.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local struct fs_answer fs_answer;
int fs_audit_on;

/* The process name begin() read for this thread's request, which
 * fs_audit_opened() keeps for the release. */
static _Thread_local char req_comm[64];

static struct cache *audit_cache;
static struct audit_patients patients;
static struct fuse_lowlevel_ops inner;	/* what we wrap */
static struct fuse_lowlevel_ops audited;	/* what the session calls */

/* --- names ------------------------------------------------------------ */

#define BUCKETS 65536

struct name;

/* An inode the kernel holds, with every name it was reached by. */
struct node {
	uint64_t ino;
	uint64_t nref;		/* the kernel's lookups */
	struct node *next;	/* by_ino chain */
	struct name *names;	/* oldest first */
};

struct name {
	struct node *node;
	uint64_t parent;
	int unlinked;		/* gone from by_name; kept for the path */
	struct name *node_next, *hash_next;
	char name[];
};

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *by_ino[BUCKETS];	/* by names_lock */
static struct name *by_name[BUCKETS];	/* by names_lock */

static size_t ino_hash(uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 48) % BUCKETS;
}

static size_t name_hash(uint64_t parent, const char *name)
{
	uint64_t h = parent * 0x100000001b3ull ^ 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const void *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)(h % BUCKETS);
}

static struct node *find_ino(uint64_t ino)
{
	struct node *n = by_ino[ino_hash(ino)];

	while (n && n->ino != ino)
		n = n->next;
	return n;
}

static struct name *find_name(uint64_t parent, const char *name)
{
	struct name *e = by_name[name_hash(parent, name)];

	while (e && (e->parent != parent || strcmp(e->name, name)))
		e = e->hash_next;
	return e;
}

/* Take e out of by_name: the name no longer leads to its node. */
static void unhash(struct name *e)
{
	struct name **pp = &by_name[name_hash(e->parent, e->name)];

	if (e->unlinked)
		return;
	while (*pp != e)
		pp = &(*pp)->hash_next;
	*pp = e->hash_next;
	e->unlinked = 1;
}

static struct name *new_name(struct node *n, uint64_t parent,
			     const char *name)
{
	size_t len = strlen(name) + 1;
	struct name *e = malloc(sizeof(*e) + len);
	size_t h = name_hash(parent, name);

	if (!e)
		return NULL;
	e->node = n;
	e->parent = parent;
	e->unlinked = 0;
	e->node_next = NULL;
	memcpy(e->name, name, len);
	e->hash_next = by_name[h];
	by_name[h] = e;
	return e;
}

/* Put new in old's place in its node's list, and free old. */
static void replace_name(struct name *old, struct name *new)
{
	struct name **pp = &old->node->names;

	while (*pp != old)
		pp = &(*pp)->node_next;
	new->node_next = old->node_next;
	*pp = new;
	unhash(old);
	free(old);
}

static void free_node(struct node *n)
{
	struct node **pp = &by_ino[ino_hash(n->ino)];

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	while (n->names) {
		struct name *e = n->names;

		n->names = e->node_next;
		unhash(e);
		free(e);
	}
	free(n);
}

/* The kernel took nref lookups of ino, reached as (parent, name). */
static void names_set(uint64_t parent, const char *name, uint64_t ino,
		      uint64_t nref)
{
	struct name *e, **tail;
	struct node *n;

	pthread_mutex_lock(&names_lock);
	n = find_ino(ino);
	if (!n && (n = calloc(1, sizeof(*n))) != NULL) {
		n->ino = ino;
		n->next = by_ino[ino_hash(ino)];
		by_ino[ino_hash(ino)] = n;
	}
	if (!n)
		goto out;	/* its paths show as unknown; nothing else */
	n->nref += nref;
	e = find_name(parent, name);
	if (e && e->node == n)
		goto out;
	if (e)
		unhash(e);	/* replaced: the name leads here now */
	e = new_name(n, parent, name);
	if (!e)
		goto out;
	for (tail = &n->names; *tail; tail = &(*tail)->node_next)
		;
	*tail = e;
out:
	pthread_mutex_unlock(&names_lock);
}

static void names_forget(uint64_t ino, uint64_t nref)
{
	struct node *n;

	pthread_mutex_lock(&names_lock);
	n = find_ino(ino);
	if (n && (n->nref -= n->nref < nref ? n->nref : nref) == 0)
		free_node(n);
	pthread_mutex_unlock(&names_lock);
}

/* The inode named (parent, name), 0 if not known. */
static uint64_t names_ino(uint64_t parent, const char *name)
{
	struct name *e;
	uint64_t ino;

	pthread_mutex_lock(&names_lock);
	e = find_name(parent, name);
	ino = e ? e->node->ino : 0;
	pthread_mutex_unlock(&names_lock);
	return ino;
}

static void names_unlinked(uint64_t parent, const char *name)
{
	struct name *e;

	pthread_mutex_lock(&names_lock);
	e = find_name(parent, name);
	if (e)
		unhash(e);
	pthread_mutex_unlock(&names_lock);
}

/* Give e the name (parent, name) instead of its own. */
static void rename_one(struct name *e, uint64_t parent, const char *name)
{
	struct name *ne = new_name(e->node, parent, name);

	if (ne)
		replace_name(e, ne);
	else
		unhash(e);
}

/* After a rename: what had the new name lost it; the old one moved. */
static void names_moved(uint64_t parent, const char *name,
			uint64_t newparent, const char *newname, int exchange)
{
	struct name *src, *dst;

	pthread_mutex_lock(&names_lock);
	src = find_name(parent, name);
	dst = find_name(newparent, newname);
	if (dst && src == dst) {
		pthread_mutex_unlock(&names_lock);
		return;
	}
	if (dst)
		unhash(dst);
	if (src)
		unhash(src);
	if (dst && exchange)
		rename_one(dst, parent, name);
	if (src)
		rename_one(src, newparent, newname);
	pthread_mutex_unlock(&names_lock);
}

/* The name a node is shown by: its oldest that still leads to it. */
static const struct name *shown_name(const struct node *n)
{
	for (const struct name *e = n->names; e; e = e->node_next)
		if (!e->unlinked)
			return e;
	return n->names;
}

/*
 * The path of ino into buf (size bytes, at least 2): from the root, as
 * the table knows it now.  A part the table does not know shows as
 * "?INO".  By names_lock.
 */
static void path_locked(uint64_t ino, char *buf, size_t size)
{
	size_t at = size - 1;
	int depth = 0;

	buf[at] = '\0';
	while (ino != CACHE_ROOT_INO && depth++ < 4096) {
		struct node *n = find_ino(ino);
		const struct name *e = n ? shown_name(n) : NULL;
		char unknown[32];
		const char *part = unknown;
		size_t len;

		if (e)
			part = e->name;
		else
			snprintf(unknown, sizeof(unknown), "?%llu",
				 (unsigned long long)ino);
		len = strlen(part);
		if (len + 1 > at)
			break;
		at -= len;
		memcpy(buf + at, part, len);
		buf[--at] = '/';
		if (!e)
			break;
		ino = e->parent;
	}
	if (at == size - 1)
		buf[--at] = '/';
	memmove(buf, buf + at, size - at);
}

static void path_of(uint64_t ino, char *buf, size_t size)
{
	pthread_mutex_lock(&names_lock);
	path_locked(ino, buf, size);
	pthread_mutex_unlock(&names_lock);
}

static void child_path(uint64_t parent, const char *name, char *buf,
		       size_t size)
{
	size_t n;

	path_of(parent, buf, size);
	n = strlen(buf);
	snprintf(buf + n, size - n, "%s%s", n > 1 ? "/" : "", name);
}

/* --- handles ---------------------------------------------------------- */

struct handle {
	uint64_t fh, ino;
	struct handle *next;
	uint32_t uid, gid, pid, flags;
	atomic_uint_fast64_t bytes_read, bytes_written;
	char comm[64];
};

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *handles[BUCKETS];	/* by handles_lock */

static size_t fh_hash(uint64_t fh)
{
	return ino_hash(fh >> 4);
}

static struct handle *find_handle(uint64_t fh)
{
	struct handle *h = handles[fh_hash(fh)];

	while (h && h->fh != fh)
		h = h->next;
	return h;
}

void fs_audit_opened(fuse_req_t req, uint64_t ino,
		     const struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct handle *h = calloc(1, sizeof(*h));
	size_t b;

	if (!h)
		return;		/* its release is recorded without counts */
	h->fh = fi->fh;
	h->ino = ino;
	h->uid = ctx->uid;
	h->gid = ctx->gid;
	h->pid = (uint32_t)ctx->pid;
	h->flags = (uint32_t)fi->flags;
	memcpy(h->comm, req_comm, sizeof(h->comm));	/* begin() read it */
	b = fh_hash(h->fh);
	pthread_mutex_lock(&handles_lock);
	h->next = handles[b];
	handles[b] = h;
	pthread_mutex_unlock(&handles_lock);
}

static void count_bytes(uint64_t fh, uint64_t n, int written)
{
	struct handle *h;

	pthread_mutex_lock(&handles_lock);
	h = find_handle(fh);
	if (h)
		atomic_fetch_add(written ? &h->bytes_written : &h->bytes_read,
				 n);
	pthread_mutex_unlock(&handles_lock);
}

static struct handle *take_handle(uint64_t fh)
{
	struct handle **pp, *h;

	pthread_mutex_lock(&handles_lock);
	pp = &handles[fh_hash(fh)];
	while (*pp && (*pp)->fh != fh)
		pp = &(*pp)->next;
	h = *pp;
	if (h)
		*pp = h->next;
	pthread_mutex_unlock(&handles_lock);
	return h;
}

/* --- what a wrapper keeps of the answer -------------------------------- */

/*
 * What the wrapper on this thread keeps of its handler's answer, done by
 * keep_answer() through fs_answer_ready() just before the answer leaves
 * (fs_int.h says why then): names, byte counts, and the event itself, so
 * that a queued event (an open) is in the queue before any event of a
 * request the answer lets the program make (its release).  The names
 * point into the request, which outlives the handler.
 */
enum keep_what {
	KEEP_NOTHING,
	KEEP_NAME,		/* the entry replied is reached by (parent, name) */
	KEEP_UNLINKED,		/* (parent, name) is gone */
	KEEP_MOVED,		/* (parent, name) moved to (newparent, newname) */
	KEEP_READ,		/* bytes read through handle fh */
	KEEP_WRITTEN,		/* bytes written through handle fh */
};

static _Thread_local struct {
	enum keep_what what;
	uint64_t parent, newparent, fh;
	const char *name, *newname;
	int exchange;
	struct evb *b;		/* the event staged, finished with the answer */
} keep;

/* --- events ----------------------------------------------------------- */

struct evb {
	struct audit_event ev;
	char comm[64], user[64], group[64];
	char path[4096], path2[4096], patient[256], patient2[256];
	char detail[256];
	uint8_t rec[AUDIT_REC_MAX];
	int len;
};

static void who(struct evb *b, uint32_t uid, uint32_t gid, uint32_t pid)
{
	b->ev.uid = uid;
	b->ev.gid = gid;
	b->ev.pid = pid;
	audit_names(uid, gid, b->user, sizeof(b->user), b->group,
		    sizeof(b->group));
}

static void begin(struct evb *b, fuse_req_t req, enum audit_kind kind,
		  uint64_t ino)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	memset(&b->ev, 0, sizeof(b->ev));
	b->comm[0] = b->path[0] = b->path2[0] = b->detail[0] = '\0';
	b->ev.kind = kind;
	b->ev.ino = ino;
	who(b, ctx->uid, ctx->gid, (uint32_t)ctx->pid);
	/* a release is the opener's: its name was kept at the open */
	if (kind != AUDIT_RELEASE)
		audit_comm(ctx->pid, b->comm, sizeof(b->comm));
	memcpy(req_comm, b->comm, sizeof(req_comm));
	fs_answer.err = 0;
	fs_answer.ino = 0;
	fs_answer.bytes = 0;
}

static void encode(struct evb *b)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (!b->ev.time_ns)
		b->ev.time_ns = (uint64_t)now.tv_sec * 1000000000ull +
				(uint64_t)now.tv_nsec;
	audit_patient_of(&patients, b->path, b->patient, sizeof(b->patient));
	audit_patient_of(&patients, b->path2, b->patient2,
			 sizeof(b->patient2));
	b->ev.s[AUDIT_S_COMM] = b->comm;
	b->ev.s[AUDIT_S_USER] = b->user;
	b->ev.s[AUDIT_S_GROUP] = b->group;
	b->ev.s[AUDIT_S_HOST] = audit_host();
	b->ev.s[AUDIT_S_PATH] = b->path;
	b->ev.s[AUDIT_S_PATH2] = b->path2;
	b->ev.s[AUDIT_S_PATIENT] = b->patient;
	b->ev.s[AUDIT_S_PATIENT2] = b->patient2;
	b->ev.s[AUDIT_S_DETAIL] = b->detail;
	b->len = audit_encode(&b->ev, b->rec, sizeof(b->rec));
}

static void keep_answer(void);
static void finish(struct evb *b);

/* Stage b with the cache; keep_answer() finishes it before the answer
 * leaves, or the wrapper's fs_answer_ready() after the handler. */
static void stage(struct evb *b)
{
	encode(b);
	if (b->len > 0)
		cache_audit_stage(audit_cache, b->rec, (size_t)b->len);
	keep.b = b;
	fs_answer.ready = keep_answer;
}

/* With the handler's answer: keep the event, in the change's transaction
 * if it made one, else queued with what the handler answered. */
static void finish(struct evb *b)
{
	int rc;

	if (b->len <= 0)
		return;
	if (cache_audit_unstage(audit_cache))
		return;
	b->ev.err = fs_answer.err;
	if (!b->ev.ino)
		b->ev.ino = fs_answer.ino;
	audit_patch(b->rec, (size_t)b->len, b->ev.err, b->ev.ino);
	rc = cache_audit_queue(audit_cache, b->rec, (size_t)b->len);
	if (rc)
		PHI_LOG(PHI_LOG_ERR, "cannot record audit event for inode "
			"%llu: %s", (unsigned long long)b->ev.ino,
			phi_strerror(rc));
}

static void keep_answer(void)
{
	switch (keep.what) {
	case KEEP_NAME:
		if (fs_answer.ino)
			names_set(keep.parent, keep.name, fs_answer.ino, 1);
		break;
	case KEEP_UNLINKED:
		if (!fs_answer.err)
			names_unlinked(keep.parent, keep.name);
		break;
	case KEEP_MOVED:
		if (!fs_answer.err)
			names_moved(keep.parent, keep.name, keep.newparent,
				    keep.newname, keep.exchange);
		break;
	case KEEP_READ:
	case KEEP_WRITTEN:
		if (!fs_answer.err && fs_answer.bytes)
			count_bytes(keep.fh, fs_answer.bytes,
				    keep.what == KEEP_WRITTEN);
		break;
	case KEEP_NOTHING:
		break;
	}
	keep.what = KEEP_NOTHING;
	if (keep.b) {
		struct evb *b = keep.b;

		keep.b = NULL;
		finish(b);
	}
}

/* Keep `what` of the answer of the handler about to run. */
static void expect(enum keep_what what, uint64_t parent, const char *name)
{
	keep.what = what;
	keep.parent = parent;
	keep.name = name;
	fs_answer.ready = keep_answer;
}

void fs_audit_entry_lost(uint64_t ino)
{
	names_forget(ino, 1);
}

/* --- the wrappers ----------------------------------------------------- */

typedef fuse_req_t R;
typedef fuse_ino_t I;
typedef struct fuse_file_info F;

static void a_lookup(R q, I p, const char *n)
{
	fs_answer.ino = 0;
	expect(KEEP_NAME, p, n);
	inner.lookup(q, p, n);
	fs_answer_ready();
}

static void a_forget(R q, I i, uint64_t n)
{
	names_forget(i, n);
	inner.forget(q, i, n);
}

static void a_forget_multi(R q, size_t n, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < n; i++)
		names_forget(f[i].ino, f[i].nlookup);
	inner.forget_multi(q, n, f);
}

static void a_mknod(R q, I p, const char *n, mode_t m, dev_t d)
{
	struct evb b;

	begin(&b, q, AUDIT_MKNOD, 0);
	child_path(p, n, b.path, sizeof(b.path));
	snprintf(b.detail, sizeof(b.detail), "mode=%06o", (unsigned)m);
	stage(&b);
	expect(KEEP_NAME, p, n);
	inner.mknod(q, p, n, m, d);
	fs_answer_ready();
}

static void a_mkdir(R q, I p, const char *n, mode_t m)
{
	struct evb b;

	begin(&b, q, AUDIT_MKDIR, 0);
	child_path(p, n, b.path, sizeof(b.path));
	snprintf(b.detail, sizeof(b.detail), "mode=%04o", (unsigned)m & 07777);
	stage(&b);
	expect(KEEP_NAME, p, n);
	inner.mkdir(q, p, n, m);
	fs_answer_ready();
}

static void a_symlink(R q, const char *l, I p, const char *n)
{
	struct evb b;

	begin(&b, q, AUDIT_SYMLINK, 0);
	child_path(p, n, b.path, sizeof(b.path));
	snprintf(b.path2, sizeof(b.path2), "%s", l);
	stage(&b);
	expect(KEEP_NAME, p, n);
	inner.symlink(q, l, p, n);
	fs_answer_ready();
}

static void a_link(R q, I i, I np, const char *nn)
{
	struct evb b;

	begin(&b, q, AUDIT_LINK, i);
	path_of(i, b.path, sizeof(b.path));
	child_path(np, nn, b.path2, sizeof(b.path2));
	stage(&b);
	expect(KEEP_NAME, np, nn);
	inner.link(q, i, np, nn);
	fs_answer_ready();
}

static void a_unlink(R q, I p, const char *n)
{
	struct evb b;

	begin(&b, q, AUDIT_UNLINK, names_ino(p, n));
	child_path(p, n, b.path, sizeof(b.path));
	stage(&b);
	expect(KEEP_UNLINKED, p, n);
	inner.unlink(q, p, n);
	fs_answer_ready();
}

static void a_rmdir(R q, I p, const char *n)
{
	struct evb b;

	begin(&b, q, AUDIT_RMDIR, names_ino(p, n));
	child_path(p, n, b.path, sizeof(b.path));
	stage(&b);
	expect(KEEP_UNLINKED, p, n);
	inner.rmdir(q, p, n);
	fs_answer_ready();
}

static void a_rename(R q, I p, const char *n, I np, const char *nn,
		     unsigned int fl)
{
	struct evb b;

	begin(&b, q, AUDIT_RENAME, names_ino(p, n));
	child_path(p, n, b.path, sizeof(b.path));
	child_path(np, nn, b.path2, sizeof(b.path2));
	b.ev.flags = fl;
	stage(&b);
	expect(KEEP_MOVED, p, n);
	keep.newparent = np;
	keep.newname = nn;
	keep.exchange = !!(fl & RENAME_EXCHANGE);
	inner.rename(q, p, n, np, nn, fl);
	fs_answer_ready();
}

/* What a setattr changes, most telling first, and its new values. */
static enum audit_kind setattr_kind(const struct stat *a, int s, char *d,
				    size_t dlen)
{
	enum audit_kind kind = AUDIT_UTIMES;
	size_t n = 0;

	d[0] = '\0';
	if (s & FUSE_SET_ATTR_SIZE)
		n += (size_t)snprintf(d + n, dlen - n, "size=%lld ",
				      (long long)a->st_size);
	if ((s & FUSE_SET_ATTR_MODE) && n < dlen)
		n += (size_t)snprintf(d + n, dlen - n, "mode=%04o ",
				      (unsigned)a->st_mode & 07777);
	if ((s & FUSE_SET_ATTR_UID) && n < dlen)
		n += (size_t)snprintf(d + n, dlen - n, "uid=%u ",
				      (unsigned)a->st_uid);
	if ((s & FUSE_SET_ATTR_GID) && n < dlen)
		n += (size_t)snprintf(d + n, dlen - n, "gid=%u ",
				      (unsigned)a->st_gid);
	if (n && n < dlen)
		d[n - 1] = '\0';
	if (s & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		kind = AUDIT_CHOWN;
	if (s & FUSE_SET_ATTR_MODE)
		kind = AUDIT_CHMOD;
	if (s & FUSE_SET_ATTR_SIZE)
		kind = AUDIT_TRUNCATE;
	return kind;
}

static void a_setattr(R q, I i, struct stat *a, int s, F *f)
{
	struct evb b;
	char d[256];

	begin(&b, q, setattr_kind(a, s, d, sizeof(d)), i);
	memcpy(b.detail, d, sizeof(d));
	path_of(i, b.path, sizeof(b.path));
	stage(&b);
	inner.setattr(q, i, a, s, f);
	fs_answer_ready();
}

static void a_open(R q, I i, F *f)
{
	struct evb b;

	begin(&b, q, AUDIT_OPEN, i);
	path_of(i, b.path, sizeof(b.path));
	b.ev.flags = (uint32_t)(f->flags & (O_ACCMODE | O_TRUNC | O_APPEND));
	stage(&b);
	inner.open(q, i, f);
	fs_answer_ready();
}

static void a_create(R q, I p, const char *n, mode_t m, F *f)
{
	struct evb b;

	begin(&b, q, AUDIT_CREATE, 0);
	child_path(p, n, b.path, sizeof(b.path));
	b.ev.flags = (uint32_t)(f->flags & (O_ACCMODE | O_TRUNC | O_APPEND));
	snprintf(b.detail, sizeof(b.detail), "mode=%04o", (unsigned)m & 07777);
	stage(&b);
	expect(KEEP_NAME, p, n);
	inner.create(q, p, n, m, f);
	fs_answer_ready();
}

static void a_read(R q, I i, size_t s, off_t o, F *f)
{
	fs_answer.err = 0;
	fs_answer.bytes = 0;
	expect(KEEP_READ, 0, NULL);
	keep.fh = f->fh;
	inner.read(q, i, s, o, f);
	fs_answer_ready();
}

static void a_write(R q, I i, const char *d, size_t s, off_t o, F *f)
{
	fs_answer.err = 0;
	fs_answer.bytes = 0;
	expect(KEEP_WRITTEN, 0, NULL);
	keep.fh = f->fh;
	inner.write(q, i, d, s, o, f);
	fs_answer_ready();
}

/* Only an open that moved bytes through phifs has a release event: one
 * whose reads the page cache answered has said all in its open event. */
static void a_release(R q, I i, F *f)
{
	struct handle *h = take_handle(f->fh);
	struct evb b;

	if (h && !atomic_load(&h->bytes_read) &&
	    !atomic_load(&h->bytes_written)) {
		free(h);
		inner.release(q, i, f);
		return;
	}
	begin(&b, q, AUDIT_RELEASE, i);
	if (h) {
		who(&b, h->uid, h->gid, h->pid);
		memcpy(b.comm, h->comm, sizeof(b.comm));
		b.ev.flags = h->flags & (O_ACCMODE | O_TRUNC | O_APPEND);
		b.ev.bytes_read = atomic_load(&h->bytes_read);
		b.ev.bytes_written = atomic_load(&h->bytes_written);
		free(h);
	}
	path_of(i, b.path, sizeof(b.path));
	stage(&b);
	inner.release(q, i, f);
	fs_answer_ready();
}

static void a_setxattr(R q, I i, const char *n, const char *v, size_t s,
		       int fl)
{
	struct evb b;

	begin(&b, q, AUDIT_SETXATTR, i);
	path_of(i, b.path, sizeof(b.path));
	snprintf(b.detail, sizeof(b.detail), "%s", n);
	stage(&b);
	inner.setxattr(q, i, n, v, s, fl);
	fs_answer_ready();
}

static void a_removexattr(R q, I i, const char *n)
{
	struct evb b;

	begin(&b, q, AUDIT_REMOVEXATTR, i);
	path_of(i, b.path, sizeof(b.path));
	snprintf(b.detail, sizeof(b.detail), "%s", n);
	stage(&b);
	inner.removexattr(q, i, n);
	fs_answer_ready();
}

void fs_audit_entry(uint64_t parent, const char *name, uint64_t ino)
{
	names_set(parent, name, ino, 1);
}

int fs_audit_setup(struct cache *c, const char *patient_folders)
{
	int rc = audit_patients_parse(patient_folders, &patients);

	if (rc)
		return rc;
	audit_cache = c;
	fs_audit_on = 1;
	return 0;
}

const struct fuse_lowlevel_ops *fs_audit_wrap(
	const struct fuse_lowlevel_ops *ops)
{
	inner = *ops;
	audited = *ops;
#define WRAP(name) if (ops->name) audited.name = a_##name
	WRAP(lookup); WRAP(forget); WRAP(forget_multi);
	WRAP(mknod); WRAP(mkdir); WRAP(symlink); WRAP(link);
	WRAP(unlink); WRAP(rmdir); WRAP(rename); WRAP(setattr);
	WRAP(open); WRAP(create); WRAP(read); WRAP(write); WRAP(release);
	WRAP(setxattr); WRAP(removexattr);
#undef WRAP
	return &audited;
}
