/*
 * fs.h - the FUSE low-level filesystem over a cache.
 *
 * fs/ owns the FUSE session: it turns kernel requests (inode numbers, no
 * paths) into cache/ calls and cache/ codes into errno, in one place.
 * Handlers are shells: each calls the cache and replies exactly once.
 *
 * Lifecycle: fs_mount() -> fs_run() -> fs_unmount().  The cache handle is
 * borrowed and must outlive the fs handle.
 */
#ifndef FS_H
#define FS_H

#include <stddef.h>

struct cache;
struct fs;

/*
 * How far the kernel should read ahead of a file read in order: two
 * requests of FS_REQUEST_MAX in flight, so that the two cores of a small
 * machine can each answer one (a sealed store decrypts).  The kernel
 * caps it at the mount's device's read_ahead_kb (128 KiB unless raised:
 * tools/cmd_mount.c raises it to this).  It is also how much a page
 * fault of a file mapped at random reads around the page.
 */
#define FS_READ_AHEAD (2 << 20)
/* The largest request: the kernel asks for at most max_write's pages at
 * a time, reads included. */
#define FS_REQUEST_MAX (1 << 20)

struct fs_options {
	const char *fuse_opts;	/* user's -o list, comma separated, or NULL */
	int debug;		/* FUSE request tracing to stderr */
	int audit;		/* record an audit event per operation (audit.h,
				   cache_audit_stage()) */
	const char *patient_folders;	/* with audit: where patient folders
					   are (audit_patients_parse()) */
};

/*
 * Create the session and mount it at mountpoint.  On failure returns a
 * negative code and writes one line into err.  Installs handlers so that
 * SIGTERM, SIGINT and SIGHUP end fs_run().
 */
int fs_mount(struct fs **out, struct cache *c, const char *mountpoint,
	     const struct fs_options *opts, char *err, size_t errlen);

/*
 * Parse opts as fs_mount() would, without mounting, so that a mount can
 * refuse bad options before it writes anything.  0, or -EINVAL with one
 * line in err naming what libfuse refused (which then prints nothing).
 * Call before threads start.
 */
int fs_check_options(const struct fs_options *opts, char *err,
		     size_t errlen);

/* Serve requests on a pool of threads until unmounted or signalled.
 * Sets the process's malloc mmap threshold (MMAP_THRESHOLD in fs.c), so
 * that the daemon's freed buffers go back to the system. */
int fs_run(struct fs *fs);

/* Unmount (if still mounted) and free the session. */
void fs_unmount(struct fs *fs);

/* Translate a cache/phifs code into a positive errno for the kernel:
 * 0 for 0 or a count, -code for a negative errno, EBUSY for PHI_EBUSYFS,
 * ENOENT for PHI_ENOFS and EIO for every other phifs code. */
int fs_errno(int code);

/* The cache_setattr() bits (CACHE_SET_*) for FUSE's FUSE_SET_ATTR_* bits
 * in to_set, as the setattr handler passes them; other bits are dropped. */
unsigned fs_setattr_flags(int to_set);

/*
 * The cache_rename() bits (CACHE_RENAME_*) for the rename flags the
 * kernel sends (RENAME_NOREPLACE, RENAME_EXCHANGE) into *out, and 0;
 * -EINVAL, *out unchanged, for any other flag (RENAME_WHITEOUT).
 */
int fs_rename_flags(unsigned flags, unsigned *out);

/* --- requests served, for the metrics (fs_metrics.c) --------------- */

/* The kinds of request counted, as FS_OPS(X) lists them: X(name, NAME)
 * for each, name as the metrics label it ("lookup"). */
#define FS_OPS(X)							\
	X(lookup, LOOKUP) X(forget, FORGET) X(forget_multi, FORGET_MULTI) \
	X(getattr, GETATTR) X(setattr, SETATTR) X(readlink, READLINK)	\
	X(mknod, MKNOD) X(mkdir, MKDIR) X(symlink, SYMLINK)		\
	X(link, LINK) X(unlink, UNLINK) X(rmdir, RMDIR)			\
	X(rename, RENAME) X(open, OPEN) X(create, CREATE) X(read, READ)	\
	X(write, WRITE) X(flush, FLUSH) X(release, RELEASE)		\
	X(fsync, FSYNC) X(opendir, OPENDIR) X(readdir, READDIR)		\
	X(readdirplus, READDIRPLUS) X(releasedir, RELEASEDIR)		\
	X(fsyncdir, FSYNCDIR) X(statfs, STATFS) X(setxattr, SETXATTR)	\
	X(getxattr, GETXATTR) X(listxattr, LISTXATTR)			\
	X(removexattr, REMOVEXATTR) X(access, ACCESS)			\
	X(fallocate, FALLOCATE)

enum fs_op {
#define FS_OP_ENUM(name, up) FS_OP_##up,
	FS_OPS(FS_OP_ENUM)
#undef FS_OP_ENUM
	FS_OP_COUNT
};

struct phi_hist_snap;

/* "lookup" for FS_OP_LOOKUP, and so on. */
const char *fs_op_name(enum fs_op op);

/* The requests of kind op this process has served and how long each
 * took (hist.h; the count is out->cum[PHI_HIST_BUCKETS]).  Any thread,
 * no lock; all zero before a mount. */
void fs_op_stats(enum fs_op op, struct phi_hist_snap *out);

#endif
