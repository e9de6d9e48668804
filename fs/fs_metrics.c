/*
 * fs_metrics.c - how many requests of each kind the mount served, and
 * how long each took, for the metrics (fs_op_stats()).
 *
 * Every handler of fs.c replies before it returns, so the time from its
 * call to its return is the request's time in the daemon.  Rather than
 * touch each handler, fs_mount() serves a copy of the handler table
 * whose entries time the real ones (fs_metrics_wrap()).  Counting is two
 * relaxed atomic additions per request (hist.h); the counters are the
 * process's, since a process serves one mount.
 */
#include "fs.h"
#include "fs_int.h"

#include "hist.h"
#include "phi.h"

#include <assert.h>
#include <fuse_lowlevel.h>

static const char *const op_names[FS_OP_COUNT] = {
#define FS_OP_NAME(name, up) [FS_OP_##up] = #name,
	FS_OPS(FS_OP_NAME)
#undef FS_OP_NAME
};

static struct phi_hist op_time[FS_OP_COUNT];
static struct fuse_lowlevel_ops inner;	/* the real handlers */
static struct fuse_lowlevel_ops timed;	/* what the session calls */

const char *fs_op_name(enum fs_op op)
{
	assert(op >= 0 && op < FS_OP_COUNT);
	return op_names[op];
}

void fs_op_stats(enum fs_op op, struct phi_hist_snap *out)
{
	assert(op >= 0 && op < FS_OP_COUNT);
	phi_hist_read(&op_time[op], out);
}

static void done(enum fs_op op, uint64_t t0)
{
	phi_hist_add(&op_time[op], phi_mono_ns() - t0);
}

/* One wrapper per handler: PARAMS is its parameter list, ARGS the names
 * passed on. */
#define TIMED(name, up, params, args)				\
	static void timed_##name params				\
	{							\
		uint64_t t0 = phi_mono_ns();			\
								\
		inner.name args;				\
		done(FS_OP_##up, t0);				\
	}

typedef fuse_req_t R;
typedef fuse_ino_t I;
typedef struct fuse_file_info F;

TIMED(lookup, LOOKUP, (R q, I p, const char *n), (q, p, n))
TIMED(forget, FORGET, (R q, I i, uint64_t n), (q, i, n))
TIMED(forget_multi, FORGET_MULTI,
      (R q, size_t n, struct fuse_forget_data *f), (q, n, f))
TIMED(getattr, GETATTR, (R q, I i, F *f), (q, i, f))
TIMED(setattr, SETATTR, (R q, I i, struct stat *a, int s, F *f),
      (q, i, a, s, f))
TIMED(readlink, READLINK, (R q, I i), (q, i))
TIMED(mknod, MKNOD, (R q, I p, const char *n, mode_t m, dev_t d),
      (q, p, n, m, d))
TIMED(mkdir, MKDIR, (R q, I p, const char *n, mode_t m), (q, p, n, m))
TIMED(symlink, SYMLINK, (R q, const char *l, I p, const char *n),
      (q, l, p, n))
TIMED(link, LINK, (R q, I i, I p, const char *n), (q, i, p, n))
TIMED(unlink, UNLINK, (R q, I p, const char *n), (q, p, n))
TIMED(rmdir, RMDIR, (R q, I p, const char *n), (q, p, n))
TIMED(rename, RENAME,
      (R q, I p, const char *n, I np, const char *nn, unsigned int fl),
      (q, p, n, np, nn, fl))
TIMED(open, OPEN, (R q, I i, F *f), (q, i, f))
TIMED(create, CREATE, (R q, I p, const char *n, mode_t m, F *f),
      (q, p, n, m, f))
TIMED(read, READ, (R q, I i, size_t s, off_t o, F *f), (q, i, s, o, f))
TIMED(write, WRITE, (R q, I i, const char *b, size_t s, off_t o, F *f),
      (q, i, b, s, o, f))
TIMED(flush, FLUSH, (R q, I i, F *f), (q, i, f))
TIMED(release, RELEASE, (R q, I i, F *f), (q, i, f))
TIMED(fsync, FSYNC, (R q, I i, int d, F *f), (q, i, d, f))
TIMED(opendir, OPENDIR, (R q, I i, F *f), (q, i, f))
TIMED(readdir, READDIR, (R q, I i, size_t s, off_t o, F *f),
      (q, i, s, o, f))
TIMED(readdirplus, READDIRPLUS, (R q, I i, size_t s, off_t o, F *f),
      (q, i, s, o, f))
TIMED(releasedir, RELEASEDIR, (R q, I i, F *f), (q, i, f))
TIMED(fsyncdir, FSYNCDIR, (R q, I i, int d, F *f), (q, i, d, f))
TIMED(statfs, STATFS, (R q, I i), (q, i))
TIMED(setxattr, SETXATTR,
      (R q, I i, const char *n, const char *v, size_t s, int fl),
      (q, i, n, v, s, fl))
TIMED(getxattr, GETXATTR, (R q, I i, const char *n, size_t s), (q, i, n, s))
TIMED(listxattr, LISTXATTR, (R q, I i, size_t s), (q, i, s))
TIMED(removexattr, REMOVEXATTR, (R q, I i, const char *n), (q, i, n))
TIMED(access, ACCESS, (R q, I i, int m), (q, i, m))
TIMED(fallocate, FALLOCATE, (R q, I i, int m, off_t o, off_t l, F *f),
      (q, i, m, o, l, f))

const struct fuse_lowlevel_ops *fs_metrics_wrap(
	const struct fuse_lowlevel_ops *ops)
{
	inner = *ops;
	timed = *ops;
#define WRAP(name, up)						\
	if (ops->name)						\
		timed.name = timed_##name;
	FS_OPS(WRAP)
#undef WRAP
	return &timed;
}
