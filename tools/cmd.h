/*
 * cmd.h - subcommands of the phifs tool and what they share.
 *
 * Each cmd_* takes its own argv (argv[0] is the subcommand name) and
 * returns the process exit code: 0 success, 1 failure, 2 usage error.
 * Failures print exactly one line on stderr, starting "phifs: ".
 */
#ifndef PHI_CMD_H
#define PHI_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "buf.h"
#include "cache.h"
#include "cache_admin.h"
#include "config.h"
#include "crypt.h"

struct backend;
struct crypt_key;

/* The subcommands, one file each (cmd_umount() is in cmd_mount.c,
 * cmd_fsck() and cmd_gc() in cmd_check.c), called by phifs.c. */
int cmd_mkfs(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_versions(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_hold(int argc, char **argv);
int cmd_audit(int argc, char **argv);
/* `phifs audit verify` (argv[0] is "verify"; cmd_audit_region.c). */
int cmd_audit_verify(int argc, char **argv);
/* fn on each event of region name's audit segments, oldest first
 * (cmd_audit_region.c); fn's nonzero return stops it and is returned.
 * -1 after printing why. */
int tool_audit_region_walk(const struct phi_config *cfg, const char *name,
			   cache_audit_fn *fn, void *arg);

/*
 * Record what a command did (kind: AUDIT_HOLD_ADD, ...; err its outcome,
 * 0 or an errno) in the audit trail of cache_dir, beside the mount's
 * events (it may be mounted), with who ran it and the patient of path
 * (may be NULL).  Nothing with audit = off; a warning and 0 when this
 * machine has no cache_dir for the filesystem.  0, or -1 after printing
 * why it could not be recorded (cmd_audit.c).
 */
int tool_audit_command(const struct phi_config *cfg, enum audit_kind kind,
		       int err, const char *path, const char *detail);
/* tool_audit_command() by a command that holds the master key already
 * (phifs key: the secret that opened it may open nothing any more). */
int tool_audit_command_key(const struct phi_config *cfg,
			   const struct crypt_key *key, enum audit_kind kind,
			   int err, const char *path, const char *detail);

/*
 * Record an event of the mount itself (AUDIT_MOUNT, AUDIT_UNMOUNT) in c,
 * the cache the daemon has open, with the daemon's uid, pid and name.
 * 0, or the error of cache_audit_append() after logging it.
 */
int tool_audit_daemon(struct cache *c, enum audit_kind kind, int err,
		      const char *detail);

/* ms since 1970 as an event's detail shows a moment (UTC, ISO 8601 with
 * ms), or "latest" for INT64_MAX (no --at given). */
void tool_audit_time(int64_t ms, char *buf, size_t size);

/* One line on stderr, "phifs: " first. */
void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, "phifs: warning: " first. */
void tool_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Load CONFIG, printing the parser's line on failure.  0 or -1. */
int tool_load_config(const char *path, struct phi_config *cfg);

/* The cache's view of the configuration (strings borrowed from cfg);
 * regions, key and fsid are left NULL for the caller to fill. */
void tool_cache_config(const struct phi_config *cfg,
		       struct cache_config *out);

/* Explain a cache_open()/cache_format() failure for cache_dir. */
void tool_cache_error(const struct phi_config *cfg, int rc);

/*
 * Flush stdout; 1 once its reader has gone (EPIPE: `... | head` read all
 * it wanted), else 0.  SIGPIPE is ignored in every phifs process, so a
 * closed pipe ends no command: one that prints much may ask this to stop
 * early, and then ends quietly with 0.
 */
int tool_stdout_gone(void);

/* If argv holds -h or --help, print usage on stdout and return 1. */
int tool_want_help(int argc, char **argv, const char *usage);

/*
 * The filesystem's summary through a read-only open (works while
 * mounted).  0, or -1 after printing why (tool_cache_error(), or
 * tool_check_block_size() when cfg names another block_size).
 */
int tool_fs_stats(const struct phi_config *cfg, struct cache_stats *out);

/*
 * block_size is fixed at mkfs: a configuration that sets it to anything
 * but fs_block_size (the filesystem's) is refused, not ignored, with one
 * line naming both and the fix.  Leaving the key out is always fine.
 * 0, or -1 (printed).
 */
int tool_check_block_size(const struct phi_config *cfg,
			  uint32_t fs_block_size);

/* ---- secrets and the superblock (keys.c) ---------------------------- */

/*
 * What unlocks the filesystem: the bytes of a key file, or a passphrase
 * (data[0..len), not NUL-terminated).  data is malloc'd, mlock()ed when
 * the limits allow, and wiped by tool_secret_wipe().
 */
struct tool_secret {
	unsigned char *data;
	size_t len;		/* bytes in use */
	size_t size;		/* bytes allocated */
	int is_keyfile;
	int locked;
};

/* Wipe and free; a zeroed or wiped secret is a no-op. */
void tool_secret_wipe(struct tool_secret *s);

/*
 * Read a key file, refusing one that group or others may read (mode &
 * 077), one that is not a regular file, and one outside
 * CRYPT_KEYFILE_MIN..64 KiB.  0, or -1 after printing why.
 */
int tool_keyfile_read(const char *path, struct tool_secret *s);

/* 64 fresh random bytes for a new key file.  0 or -1 (printed). */
int tool_keyfile_new(struct tool_secret *s);

/* Write s to a new file at path (O_EXCL, mode 0600) and make it durable.
 * 0 or -1 (printed; nothing left behind). */
int tool_keyfile_create(const char *path, const struct tool_secret *s);

/*
 * A passphrase from PHIFS_PASSPHRASE, else asked on /dev/tty without
 * echo (with confirm: twice, and both must match).  0 or -1 (printed).
 * PHIFS_PASSPHRASE is wiped from the process's environment, /proc/PID/
 * environ included, once read (good or bad); a good one is kept in
 * locked memory for the command's later reads until
 * tool_passphrase_forget().
 */
int tool_passphrase_read(struct tool_secret *s, int confirm);

/* Wipe what tool_passphrase_read() kept of PHIFS_PASSPHRASE: mount does
 * before it forks, so that the daemon never holds it. */
void tool_passphrase_forget(void);

/* A new passphrase, for `phifs key`: PHIFS_NEW_PASSPHRASE (wiped from
 * the environment as PHIFS_PASSPHRASE is), else asked twice on
 * /dev/tty.  0 or -1 (printed). */
int tool_new_passphrase_read(struct tool_secret *s);

/* For mount and sync: cfg's key_file if set, else a passphrase (asked
 * once).  0 or -1 (printed). */
int tool_secret_read(const struct phi_config *cfg, struct tool_secret *s);

/*
 * Open the superblock sb with s; on success *out is the master key (free
 * with crypt_key_free()).  A wrong secret prints "wrong passphrase or key
 * file: no key slot opens".  0 or -1 (printed).
 */
int tool_unlock(const struct phi_config *cfg, const struct buf *sb,
		const struct tool_secret *s, struct crypt_key **out);

/*
 * tool_unlock(), and *slot (when not NULL) the number of the slot that
 * opened.  A passphrase that reads as a recovery code (crypt.h) is tried
 * on the recovery slots first, then on the passphrase slots.
 */
int tool_unlock_slot(const struct phi_config *cfg, const struct buf *sb,
		     const struct tool_secret *s, struct crypt_key **out,
		     int *slot);

/* fsid as 32 lowercase hex digits and a NUL. */
void tool_fsid_hex(const uint8_t fsid[16], char out[33]);

/*
 * Read cache_dir/superblock into sb (an empty buffer); if there is none,
 * take the copy of the first region that gives one and store it there.
 * Either way it must be filesystem fsid_hex (what LMDB holds).  0 or -1
 * (printed).
 */
int tool_superblock_load(const struct phi_config *cfg, const char *fsid_hex,
			 struct buf *sb);

/*
 * The superblock from cache_dir/superblock, else from the first region
 * that has it (stored nowhere), and the filesystem id it names: for
 * commands that may run on a machine without the filesystem (gc, fsck
 * --scrub).  0 or -1 (printed).
 */
int tool_superblock_find(const struct phi_config *cfg, struct buf *sb,
			 uint8_t fsid[16]);
/* Write sb to a new cache_dir/superblock (mode 0600), durably.  0 or -1
 * (printed; nothing left behind). */
int tool_superblock_store(const struct phi_config *cfg, const struct buf *sb);

/*
 * Replace cache_dir/superblock with sb atomically: write
 * superblock.new, fsync, rename over, fsync cache_dir.  Readers (a mount
 * starting, fsck) see the old copy or the new, never a mix.  Only under
 * tool_superblock_lock().  0 or -1 (printed).
 */
int tool_superblock_replace(const struct phi_config *cfg,
			    const struct buf *sb);

/*
 * The lock every change of the superblock takes (`phifs key`): an
 * exclusive flock() on the cache_dir folder itself, which nothing else
 * locks (a mount holds cache_dir/lock, so key changes work mounted or
 * not).  Waits for another change to end.  The fd to close to release
 * it, or -1 (printed).
 */
int tool_superblock_lock(const struct phi_config *cfg);

/* PHIFS_KDF_N (a test hook, hooks.h) or crypt_kdf_default(): the scrypt
 * cost of a new passphrase slot.  0 or -1 (printed). */
int tool_kdf_params(struct crypt_kdf_params *p);

/* Whether pid serves a phifs mount (its source is "phifs:PID"), so that
 * a signal meant for a mount never reaches another holder of the lock or
 * a process that took a dead mount's pid (cmd_mount.c). */
int tool_serves_mount(long pid);

/* ---- key rotation of a running mount (rekey.c) --------------------- */

struct tool_rekey;

/*
 * In the mount, once it answers: a receiver for the master key of a
 * `phifs key rotate` (SIGUSR2 wakes its thread, which adds the new
 * generation to key, the mount's own, if cache_dir/superblock verifies
 * under it).  0, or a negative code (*out NULL) when no thread could be
 * made; a failure to publish the receiver is logged, and rotate then
 * refuses this mount.  Stop with tool_rekey_stop() (NULL is a no-op)
 * before key is freed.
 */
int tool_rekey_start(struct tool_rekey **out, const struct phi_config *cfg,
		     struct crypt_key *key, const uint8_t fsid[16]);
void tool_rekey_stop(struct tool_rekey *r);

/*
 * In `phifs key rotate`, before anything changes: whether pid serves the
 * mount and has published a receiver whose tag verifies under key (the
 * keys before the rotation); its public key into pub.  0, or -1 with why
 * (a phrase) in why[0..len).
 */
int tool_rekey_prepare(const struct phi_config *cfg, long pid,
		       const struct crypt_key *key, const uint8_t fsid[16],
		       uint8_t pub[CRYPT_HANDOFF_PUB], char *why, size_t len);

/*
 * With the new superblock stored: hand key's newest generation to the
 * receiver pub of the mount pid and wait (up to 30 s) until it seals
 * with it.  0; 1 when the mount ended meanwhile (the next one reads the
 * new superblock); -1 with why.
 */
int tool_rekey_send(const struct phi_config *cfg, long pid,
		    const uint8_t pub[CRYPT_HANDOFF_PUB],
		    const struct crypt_key *key, const uint8_t fsid[16],
		    char *why, size_t len);

/* ---- regions (regions.c) -------------------------------------------- */

/*
 * Open region i of cfg (no network I/O).  With PHIFS_FAULT_DIR set (a
 * test hook) it is wrapped in a fault backend reading
 * $PHIFS_FAULT_DIR/<name>.  0, or -1 with err = "region NAME: why".
 */
int tool_region_open(const struct phi_config *cfg, int i,
		     struct backend **out, char *err, size_t errlen);

/* Every region of cfg, each opened on its own (no network I/O). */
struct tool_regions {
	struct backend *be[PHI_MAX_REGIONS];
	const char *names[PHI_MAX_REGIONS];	/* cfg's */
	int n;
};

/* Open them all, with a region's gc_credentials_file when for_gc and it
 * has one (cmd_check.c).  0, or -1 after printing why (none left open). */
int tool_regions_open(const struct phi_config *cfg, int for_gc,
		      struct tool_regions *r);
void tool_regions_close(struct tool_regions *r);

/* The master key and the filesystem id, from wherever the superblock is
 * (cache_dir or a region), unlocked as mount does; the superblock itself
 * into sb (an empty buffer).  0, or -1 after printing why. */
int tool_unlock_any(const struct phi_config *cfg, struct crypt_key **key,
		    uint8_t fsid[16], struct buf *sb);

/* cache_open() of cfg's cache_dir with flags, and with the key unlocked
 * (into *key, to be freed after cache_close()) only when the store is
 * sealed and what the caller does needs it (the audit trail, names).
 * cache_open()'s code; -EACCES after printing why the key did not
 * unlock. */
int tool_cache_open_keyed(const struct phi_config *cfg, unsigned flags,
			  struct cache **c, struct crypt_key **key);
/* The same with the master key given (borrowed until cache_close()). */
int tool_cache_open_with(const struct phi_config *cfg, unsigned flags,
			 const struct crypt_key *key, struct cache **c);

/* A legal hold (cmd_hold.c), as the regions keep it. */
struct tool_hold {
	char key[40];		/* its object: "h/<32 hex>" */
	char id[9];		/* what a user names it by: 8 hex digits */
	char path[PHI_RULE_PATH_MAX];
	char reason[1024];
	int64_t until_ms;	/* 0: until removed */
	int64_t created_ms;
	char by[320];		/* "USER (uid N) on HOST" */
};

/*
 * Every hold any region of r keeps (the union: a hold that reached one
 * region only still stands), into a malloc()ed array, oldest first.  0, or
 * -1 after printing why: a region whose holds cannot be listed, or a hold
 * no region has a good copy of; gc then deletes nothing.
 */
int tool_holds_load(const struct tool_regions *r,
		    const struct crypt_key *key, const uint8_t fsid[16],
		    struct tool_hold **out, size_t *n);

/* Why the call on region be (named name) failed with rc: the driver's
 * message when it kept one, else phi_strerror(rc); never a secret. */
void tool_region_why(struct backend *be, const char *name, int rc,
		     char *out, size_t len);

/* msg without a leading "region NAME: ". */
const char *tool_strip_region(const char *msg, const char *name);

/*
 * For mount and sync: open every region and check it holds a superblock.
 * A region that refuses (credentials, bucket) or lacks the superblock is
 * an error; one that does not answer is a warning, and the set is made
 * with it.  *out is the replica set, or NULL when cfg has no region.
 * 0 or -1 (printed).
 */
int tool_regions_attach(const struct phi_config *cfg, struct backend **out);

/* The same, for a writable mount: a region that answers with neither a
 * superblock nor any object (new, or emptied) is attached too, with a
 * warning, and empty[i] (PHI_MAX_REGIONS of them) set for it, for
 * cache_config.seed. */
int tool_regions_attach_empty(const struct phi_config *cfg,
			      struct backend **out, int *empty);

/*
 * Judge a superblock a region gave: whole (CRYPT_SUPER_SIZE bytes),
 * parsing, of filesystem fsid (NULL: any) and, with key (NULL: not
 * checked), its MAC verifying under it.  0, or PHI_ECORRUPT (or what
 * crypt_super_verify() failed with) and why = a short reason for a
 * message ("100 bytes, where a superblock has 1632: truncated or
 * overwritten").
 */
int tool_super_judge(const struct buf *sb, const struct crypt_key *key,
		     const uint8_t *fsid, char *why, size_t len);

/*
 * Read the superblock of region be (named name) and judge it as
 * tool_super_judge().  0 good; PHI_ECORRUPT bad; -ENOENT none; else the
 * region's error.  why says what was wrong whenever it is not 0.
 */
int tool_region_super_check(struct backend *be, const char *name,
			    const struct crypt_key *key, const uint8_t *fsid,
			    char *why, size_t len);

/*
 * For mount, once the master key opened sb (cache_dir's superblock):
 * check every region's copy of it (regions: the set of
 * tool_regions_attach(), NULL for none).  A bad copy gets a warning
 * naming its region when another region's copy is good; when none is
 * good but some is bad, refuse.  Regions that do not answer or hold none
 * are left to tool_regions_attach().  0 or -1 (printed).
 */
int tool_regions_check_super(const struct phi_config *cfg,
			     struct backend *regions,
			     const struct crypt_key *key, const struct buf *sb);

/*
 * The cache's record of region i of cfg, named as in cfg: the entry of
 * that name, else the entry at position i when the counts agree (the
 * replica set is in config order), else all zero (nothing recorded yet).
 */
void tool_region_stats(const struct phi_config *cfg,
		       const struct cache_stats *s, int i,
		       struct cache_region_stats *out);

/*
 * Of the superblocks the regions be[0..n) hold (NULL entries and regions
 * that do not answer are skipped), the newest copy of the filesystem of
 * sb whose MAC holds under key, when its serial is higher than sb's: a
 * key change that sb (cache_dir's copy) missed.  1 with the copy in
 * newer (cap CRYPT_SUPER_SIZE) and *which its index (a copy of a newer
 * key generation than key is taken unchecked: crypt_super_verify() says
 * -ESTALE, and only a slot's secret can check it); 0 when there is
 * none.  Prints nothing.
 */
int tool_super_newer(struct backend *const *be, int n,
		     const struct crypt_key *key, const struct buf *sb,
		     struct buf *newer, int *which);

/* ---- mounts and places (cmd_mount.c, regions.c) --------------------- */

/* Called per line of /proc/self/mountinfo, mountpoint unescaped, dev the
 * mount's device as "major:minor"; a non-zero return stops the walk and
 * is returned. */
typedef int tool_mount_fn(void *ctx, const char *mountpoint,
			  const char *type, const char *source,
			  const char *dev);

/* Walk the mounts.  fn's stop value, 0, or -1 when mountinfo cannot be
 * read. */
int tool_mounts_each(tool_mount_fn *fn, void *ctx);

/*
 * The places of cfg must be apart, for every command that writes to
 * them: no two dir: regions (nor two s3: regions) may be the same place,
 * no dir: region may be cache_dir or inside it or hold it, and none of
 * cache_dir, a dir: region or log_file may be inside a phifs mount.
 * With mountpoint (the mount's, not yet mounted): it must not be
 * cache_dir or a region or be inside one, and none of them nor log_file
 * may be inside it.  Paths are compared as realpath() makes them, the
 * part that does not exist yet cleaned of "." and "..", so `dir:/x`,
 * `dir:/x/` and `dir:/y/../x` are one place.  0, or -1 after one line
 * naming both places.
 */
int tool_check_places(const struct phi_config *cfg, const char *mountpoint);

/* ---- where a mount logs (cmd_mount.c) -------------------------------- */

enum tool_log_to {
	TOOL_LOG_SYSLOG,	/* in the background, without log_file */
	TOOL_LOG_FILE,		/* in the background, to log_file */
	TOOL_LOG_STDERR,	/* in the foreground (mount -f) */
};

/* Where the log lines of a mount go, for `phifs status`. */
struct tool_log_place {
	enum tool_log_to to;
	char path[4096];	/* TOOL_LOG_FILE: the file */
	int from_mount;		/* 1: as the running mount recorded it;
				   0: as a mount in the background of cfg
				   would do it (not mounted) */
	int syslog_available;	/* phi_log_syslog_available() */
};

/* Where the mount of cfg logs; s is its status (tool_fs_stats()). */
void tool_log_place(const struct phi_config *cfg,
		    const struct cache_stats *s, struct tool_log_place *out);

/* ---- the service manager (notify.c; notify_none.c without libsystemd) */

/* A mount's reports to systemd (Type=notify).  Opaque. */
struct tool_notify;

/*
 * In the serving process, just before fs_run(): under a service manager
 * (NOTIFY_SOCKET set) start a thread that sends READY=1 once FUSE answers
 * a statfs() of mountpoint, then STATUS= lines (dirty bytes, bytes
 * waiting for the regions, regions down) when they change.  c and cfg
 * are borrowed and must outlive tool_notify_close(); mountpoint is
 * copied.  *out is NULL when there is no service manager (or no
 * libsystemd in the build).  0 or a negative errno (nothing started).
 */
int tool_notify_start(struct tool_notify **out, struct cache *c,
		      const struct phi_config *cfg, const char *mountpoint);

/* Once fs_run() has returned: STOPPING=1, and no more STATUS=.  NULL is
 * a no-op. */
void tool_notify_stopping(struct tool_notify *n);

/* After fs_unmount() (a statfs() of the thread may wait for the session
 * until then): end the thread, free n.  NULL is a no-op. */
void tool_notify_close(struct tool_notify *n);

/* ---- the mount(8) helper (mount_helper.c) ---------------------------- */

/*
 * mount.phifs CONFIG MOUNTPOINT [-sfnv] [-o OPTIONS]: what mount(8) and
 * fstab run, argv[0] being mount.phifs (a link to phifs).  Drops the
 * options meant for mount, fstab and systemd, then runs cmd_mount().
 * Exit code as cmd_mount().
 */
int cmd_mount_helper(int argc, char **argv);

/* ---- the single-writer lease (lease.c) ------------------------------ */

/* A writable mount's lease in the regions.  Opaque. */
struct tool_lease;

enum tool_lease_flags {
	TOOL_LEASE_FORCE = 1 << 0,	/* take over a live lease (--force) */
};

/*
 * For a writable mount, in the process that serves it, after the regions
 * are attached and before the cache writes to them: read the lease
 * objects ("l/...") of every region that answers and refuse when another
 * mount's lease is live, printing one line that names its host, pid and
 * since when ("filesystem is in use: ...").  With TOOL_LEASE_FORCE, or
 * when the lease has expired (its holder stopped without unmounting), or
 * when its holder was a mount of this cache_dir on this machine (which
 * cannot be running: the caller checked cache_dir's lock), warn and take
 * it over.  Then write this mount's first lease object and renew it
 * from a thread every lease_time/3.  Never deletes or overwrites an
 * object.
 *
 * cfg, regions (the replica set of tool_regions_attach(), in config
 * order) and key are borrowed and must outlive the lease; fsid is
 * copied.  With regions NULL there is nothing to hold and *out is NULL.
 * 0, or -1 after printing why (nothing left behind but, after a lost
 * race, a released object).
 */
int tool_lease_open(struct tool_lease **out, const struct phi_config *cfg,
		    struct backend *regions, const struct crypt_key *key,
		    const uint8_t fsid[16], int flags);

/*
 * Once this mount holds cache_dir's lock (cache_open() succeeded): write a
 * released object for each lease that tool_lease_open() took over from an
 * earlier mount of this cache_dir here, so that no lease of a crashed
 * mount outlives this one.  Regions that miss it are retried at a clean
 * tool_lease_close().  Never before the lock is held: without it, such a
 * lease may be a live mount's.  NULL is a no-op.  The thread that opened
 * l, which must not have closed it.
 */
void tool_lease_settle(struct tool_lease *l);

/*
 * Stop renewing; with release (a clean unmount) write a released object
 * so that the next mount need not wait for the lease to expire (and, after
 * tool_lease_settle(), one for each lease taken over from this cache_dir
 * that a region still lacks); without, the lease expires lease_time after
 * its last renewal.  Frees l.  NULL is a no-op.  Call before closing the
 * regions or the key.
 */
void tool_lease_close(struct tool_lease *l, int release);

/* How long ago any region last took this mount's lease (its first object
 * or a renewal), in ms, for the metrics; -1 for NULL.  Any thread. */
int64_t tool_lease_age_ms(struct tool_lease *l);

/* ---- history in the regions (cmd_recover.c) ------------------------- */

/*
 * What recover, restore and versions share: the regions of a
 * configuration, the one chosen to read the history from, the superblock
 * it holds and the master key that superblock opens.
 */
struct tool_history {
	struct backend *set;	/* replica set over the regions below */
	const char *names[PHI_MAX_REGIONS];	/* [i] names region i of set
						   (borrowed from the config) */
	int nset;
	int chosen;		/* index in set of the history's region */
	struct backend *others[PHI_MAX_REGIONS];	/* regions that answer
							   (borrowed from set) */
	int nothers;
	int lacks_sb[PHI_MAX_REGIONS];	/* [i]: region i answered, but holds
					   no superblock (emptied) */
	struct buf sb;		/* the newest (highest serial) superblock of
				   the regions kept, which opened key */
	struct crypt_super_info info;
	struct crypt_key *key;
};

/*
 * Open every region of cfg, choose the one named `region` (NULL: the
 * first that gives a superblock), read its superblock and unlock it as
 * mount does (key_file, PHIFS_PASSPHRASE, a prompt).  A region that does
 * not answer gets a warning; one holding another filesystem is left out.
 * 0, or -1 (printed; h released).
 */
int tool_history_open(const struct phi_config *cfg, const char *region,
		      struct tool_history *h);

/* Close the regions, free the key.  A zeroed h is a no-op. */
void tool_history_close(struct tool_history *h);

/* The name of the history's region. */
const char *tool_history_region(const struct tool_history *h);

/* Arguments for cache_recover()/cache_history_walk() into dir, as at
 * at_ms, with a terminal progress display when stderr is one. */
void tool_history_args(struct tool_history *h, const char *dir,
		       int64_t at_ms, struct cache_recover_args *a);

/* Explain a cache_recover()/cache_history_walk() failure.  Always -1. */
int tool_history_error(const struct tool_history *h, int64_t at_ms, int rc);

/* Warn about every other region whose history reaches a later moment
 * at or before at_ms than got_ms, the one used. */
void tool_history_compare(const struct tool_history *h, int64_t at_ms,
			  int64_t got_ms);

/*
 * For restore and versions without --region: make the region whose
 * history reaches the latest moment at or before at_ms the one to read
 * (on a tie, the one whose history goes further back, then the first in
 * the config), rather than the first that gave a superblock, which after
 * a recover may be an emptied region holding no history.  *latest_ms is
 * that moment, INT64_MIN when no region holds one (h is left as it was:
 * the error then names the region asked).  Regions that do not answer
 * are passed over.
 */
void tool_history_choose_latest(struct tool_history *h, int64_t at_ms,
				int64_t *latest_ms);

/* "history read from region NAME, the one with the latest moment (T)"
 * on stderr, after a command that read the region
 * tool_history_choose_latest() chose; nothing when latest_ms is
 * INT64_MIN. */
void tool_history_say_choice(const struct tool_history *h,
			     int64_t latest_ms);

/* --at TIME (phi_parse_moment() against now).  0, or -1 after printing
 * which argument was wrong and what is accepted. */
int tool_time_arg(const char *opt, const char *text, int64_t *ms);

/* Whether process pid exists and is not a zombie. */
int tool_pid_alive(long pid);

/* ---- progress.c ----------------------------------------------------- */

/* "1.5 MiB" */
void tool_human_size(uint64_t n, char *buf, size_t len);

/*
 * A progress line on stderr, only when it is a terminal: done of total,
 * rate and time left, redrawn a few times a second.  Usable as a
 * cache_progress_fn with the struct as ctx.  A call with another `what`
 * than the last starts a new phase: its rate counts from then.  Nothing
 * else may be written to the terminal while the line is drawn: erase it
 * first with tool_progress_end() (the next show draws it again).  One
 * line is drawn at a time, by one thread; the erasing functions below
 * may run on any thread.
 */
struct tool_progress {
	int on;
	const char *label;
	uint64_t start_ns, last_ns;
	char what[96];		/* the unit of the phase shown */
};
/* Start a line labelled label (shown only if stderr is a terminal);
 * tool_progress_show() is the cache_progress_fn that redraws it. */
void tool_progress_init(struct tool_progress *p, const char *label);
void tool_progress_show(void *ctx, const char *what, uint64_t done,
			uint64_t total);
/* Erase the line, if one was drawn. */
void tool_progress_end(struct tool_progress *p);
/* For a command that draws its own line (restore): record that it is on
 * the terminal, so that what erases lines knows it. */
void tool_progress_drawn(void);
/* Erase whatever progress line is drawn (tool_error() and tool_warn()
 * call it); the next show draws it again. */
void tool_progress_erase(void);
/* The log sink of the command (set by main()): phi_log_sink_stderr(),
 * after erasing a progress line. */
void tool_log_sink(enum phi_log_level level, const char *msg);

/*
 * fsck --scrub, end to end (verify.c).  tool_verify_local() checks this
 * machine's local store against its checksums; tool_verify_regions()
 * compares every file with each region's latest metadata, byte for byte.
 * Both print what they find (paths included) and a summary line, add
 * the problems to *problems, and return 0, or -1 when a check could not
 * run (printed).  Without a filesystem on this machine they do nothing.
 */
int tool_verify_local(const struct phi_config *cfg, long *problems);
int tool_verify_regions(const struct phi_config *cfg, long *problems);

/*
 * Run fn(ctx, dir) in a child process with dir a new, empty scratch
 * folder (mode 0700) beside cache_dir (else in $TMPDIR or /tmp), and
 * remove the folder when the child ends, however it ends; signals that
 * would end this process are passed on to the child first.  Scratch
 * folders left by a process that no longer runs are removed as well.
 * A configuration whose places overlap (tool_check_places()) is refused
 * first.  Returns fn's result (an exit code), or 1 (printed).
 */
typedef int tool_scratch_fn(void *ctx, const char *dir);
int tool_with_scratch(const struct phi_config *cfg, tool_scratch_fn *fn,
		      void *ctx);

#endif
