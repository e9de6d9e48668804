/*
 * fs_int.h - shared inside fs/ only.
 */
#ifndef FS_INT_H
#define FS_INT_H

#include <fuse_lowlevel.h>
#include <stdint.h>

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

/* --- the audit trail (fs_audit.c) ------------------------------------ */

struct cache;
struct fuse_file_info;

/*
 * What the handler running on this thread answered, for fs_audit.c: err
 * is the errno replied (0 for success), ino the inode of an entry
 * replied, bytes what a read or write moved.  fs.c's reply helpers set
 * it; a wrapper clears it before calling the handler.
 */
struct fs_answer {
	int err;
	uint64_t ino;
	uint64_t bytes;
	/* What the wrapper keeps of this answer (the names the kernel now
	 * holds, the bytes a handle moved), set by the wrapper before it
	 * calls the handler: fs_answer_ready() runs it. */
	void (*ready)(void);
};
extern _Thread_local struct fs_answer fs_answer;

/*
 * Called by fs.c's reply helpers once err, ino and bytes are set, just
 * before the answer leaves: it runs fs_answer.ready, once.  The program
 * may make its next request as soon as the answer reaches the kernel,
 * and another thread may serve it (an unlink of the name a rename just
 * gave, the release after the last read), so what the wrapper keeps must
 * be in place before.  A wrapper calls it again after the handler, for
 * an answer that left some other way.
 */
static inline void fs_answer_ready(void)
{
	void (*fn)(void) = fs_answer.ready;

	fs_answer.ready = NULL;
	if (fn)
		fn();
}

/* Set by fs_audit_setup(): events are being made. */
extern int fs_audit_on;

/*
 * Make audit events for the requests of this process's mount, kept in c,
 * naming the patient folders patient_folders gives (audit.h).  0 or
 * -EINVAL for a bad patient_folders.  Before fs_audit_wrap().
 */
int fs_audit_setup(struct cache *c, const char *patient_folders);

/* The handlers of ops, wrapped to make audit events; like
 * fs_metrics_wrap(), one table per process, built before the threads. */
const struct fuse_lowlevel_ops *fs_audit_wrap(
	const struct fuse_lowlevel_ops *ops);

/* The kernel got an entry for ino named (parent, name) outside lookup
 * (readdirplus). */
void fs_audit_entry(uint64_t parent, const char *name, uint64_t ino);

/* An entry for ino, kept by fs_answer_ready(), never reached the kernel
 * (the request was interrupted): the kernel holds one lookup fewer. */
void fs_audit_entry_lost(uint64_t ino);

/* A file was opened as fi->fh: its reads and writes count from now on.
 * Called before the open is replied. */
void fs_audit_opened(fuse_req_t req, uint64_t ino,
		     const struct fuse_file_info *fi);

#endif
