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

struct fs_options {
	const char *fuse_opts;	/* user's -o list, comma separated, or NULL */
	int debug;		/* FUSE request tracing to stderr */
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

/* Translate a cache/phifs code into a positive errno for the kernel. */
int fs_errno(int code);

#endif
