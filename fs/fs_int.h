/*
 * fs_int.h - shared inside fs/ only.
 */
#ifndef FS_INT_H
#define FS_INT_H

struct fuse_lowlevel_ops;

/*
 * The handlers of ops, each wrapped so that it counts and times its
 * requests for fs_op_stats(); handlers ops leaves NULL stay NULL, and
 * handlers this file does not know are passed on untimed.  Returns a
 * table of its own, built once per process (one mount per process):
 * call before the session's threads start.  ops must live as long.
 */
const struct fuse_lowlevel_ops *fs_metrics_wrap(
	const struct fuse_lowlevel_ops *ops);

#endif
