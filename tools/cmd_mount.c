/*
 * cmd_mount.c - phifs mount and phifs umount.
 *
 * mount checks what it can before it forks (config, mountpoint), then the
 * child opens the cache, mounts, and tells the parent through a pipe
 * whether it got that far; the parent exits 0 only then.  The LMDB
 * environment is opened in the child, never across fork().
 *
 * The mount's source is "phifs:PID" (fs_mount()), which is how umount
 * finds the daemon to wait for: a clean exit means every pending write
 * record was folded and LMDB synced (cache_close()).
 *
 * Keys.  The parent reads the superblock and the secret (a terminal
 * prompt must happen before the terminal is let go); the process that
 * serves the mount unlocks the master key, because its locked memory
 * would not survive fork().  That process is also made undumpable
 * (crypt_harden_process()).  It opens the regions, checks each holds the
 * superblock, and hands the cache a replica set over them.
 *
 * One writer.  A writable mount then takes the lease in the regions
 * (lease.c) before the cache may write to them, and refuses to mount when
 * another mount, here or on another machine, holds it; the refusal is
 * printed before detach(), so it reaches the terminal.  A clean unmount
 * releases the lease.  A read-only mount (-o ro) takes none.
 *
 * Order of the daemon's resources, opened top down and closed bottom up:
 * the metrics socket (metrics_listen), master key, regions (the replica
 * set owns them), lease, cache, FUSE session; the metrics thread starts
 * once the mount answers and stops after the unmount.
 * SIGUSR1 (sent by `phifs sync`) asks the cache to seal at once;
 * SIGUSR2 (sent by `phifs key rotate`) hands it a new master key
 * (rekey.c).
 * Under systemd (NOTIFY_SOCKET) notify.c says READY=1 once the mount
 * answers, and STOPPING=1 once the session loop has ended.
 *
 * Logs.  With -f the daemon logs to stderr; in the background to
 * log_file when it is set (opened by the parent, so that a bad path is
 * reported before anything else happens), else to syslog, which drops
 * every line where there is no /dev/log: the parent warns then.  The
 * daemon records where it logs in cache_dir/logging ("PID TO [PATH]") for
 * `phifs status`, and logs why it stops: the signal and who sent it, or
 * the unmount.
 */
#include "cmd.h"
#include "backend.h"
#include "crypt.h"
#include "fs.h"
#include "metrics.h"
#include "syslog_fwd.h"
#include "phi.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char mount_usage[] =
	"usage: phifs mount CONFIG [MOUNTPOINT] [-f] [--force] "
	"[-o OPT[,OPT...]]\n\n"
	"Mount the filesystem of CONFIG on MOUNTPOINT (without it: on the\n"
	"mountpoint CONFIG names).  Returns once it is mounted and keeps\n"
	"serving it in the background, unless -f.\n"
	"Under systemd (NOTIFY_SOCKET set, with -f) it reports ready once the\n"
	"mount answers, and its state in the status line.\n"
	"A writable mount holds a lease in the regions: while another mount\n"
	"(here or on another machine) holds it, mounting is refused.\n\n"
	"  -f            stay in the foreground, log to stderr (in the\n"
	"                background: to log_file if CONFIG sets it, else\n"
	"                to syslog)\n"
	"  --force       take the lease over from a mount that still holds it\n"
	"                (only when that mount is surely gone: two writers\n"
	"                lose each other's changes)\n"
	"  -o OPTIONS    FUSE mount options, comma separated:\n"
	"                allow_other (let other users in; needs root or\n"
	"                user_allow_other in /etc/fuse.conf), ro, debug, ...\n"
	"                default_permissions is always on: the kernel checks\n"
	"                permissions for every user.\n";

static const char umount_usage[] =
	"usage: phifs umount MOUNTPOINT\n\n"
	"Flush everything to the local disk and unmount.  Returns once the\n"
	"phifs process serving MOUNTPOINT has finished.\n";

struct mount_args {
	const char *config, *mountpoint;
	int foreground, debug;
	int force;		/* --force: take over a live lease */
	int readonly;		/* -o ro (the last of ro/rw wins): no lease */
	char opts[2048];
	enum tool_log_to log_to;	/* set by prepare_log() */
	int log_fd;		/* TOOL_LOG_FILE: log_file, opened */
};

/* Append one -o list, taking out the options that are ours. */
static int add_opts(struct mount_args *a, const char *list)
{
	char buf[2048], *save = NULL;

	if (strlen(list) >= sizeof(buf))
		return -1;
	strcpy(buf, list);
	for (char *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(a->opts);

		if (strcmp(o, "debug") == 0) {
			a->debug = 1;
			continue;
		}
		if (strcmp(o, "ro") == 0 || strcmp(o, "rw") == 0)
			a->readonly = o[1] == 'o';
		if (n + strlen(o) + 2 > sizeof(a->opts))
			return -1;
		snprintf(a->opts + n, sizeof(a->opts) - n, "%s%s", n ? "," : "", o);
	}
	return 0;
}

static int parse_mount_args(int argc, char **argv, struct mount_args *a)
{
	int npos = 0;

	memset(a, 0, sizeof(*a));
	a->log_fd = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0) {
			a->foreground = 1;
		} else if (strcmp(argv[i], "--force") == 0) {
			a->force = 1;
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			if (add_opts(a, argv[++i]))
				return -1;
		} else if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2]) {
			if (add_opts(a, argv[i] + 2))
				return -1;
		} else if (argv[i][0] == '-') {
			return -1;
		} else if (npos == 0) {
			a->config = argv[i];
			npos++;
		} else if (npos == 1) {
			a->mountpoint = argv[i];
			npos++;
		} else {
			return -1;
		}
	}
	return npos >= 1 ? 0 : -1;
}

/* Undo the octal escapes of /proc/self/mountinfo in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

int tool_mounts_each(tool_mount_fn *fn, void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;	/* whole, however long its options */
	size_t cap = 0;
	int rc = 0;

	if (!f)
		return -1;
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		char *field[10], *save = NULL, *dash, *type, *source;
		int n = 0;

		dash = strstr(line, " - ");
		if (!dash)
			continue;
		*dash = '\0';
		for (char *t = strtok_r(line, " ", &save); t && n < 10;
		     t = strtok_r(NULL, " ", &save))
			field[n++] = t;
		if (n < 5)
			continue;
		unescape(field[4]);
		save = NULL;
		type = strtok_r(dash + 3, " ", &save);
		source = type ? strtok_r(NULL, " \n", &save) : NULL;
		rc = fn(ctx, field[4], type ? type : "", source ? source : "",
			field[2]);
	}
	free(line);
	fclose(f);
	return rc;
}

struct mount_query {
	const char *path;
	char *type, *source;
	size_t len;
	int found;
};

static int match_mount(void *ctx, const char *mp, const char *type,
		       const char *source, const char *dev)
{
	struct mount_query *q = ctx;

	(void)dev;
	if (strcmp(mp, q->path) == 0) {
		snprintf(q->type, q->len, "%s", type);
		snprintf(q->source, q->len, "%s", source);
		q->found = 1;	/* keep going: the last mount on top wins */
	}
	return 0;
}

struct own_mount {
	const char *path;
	char source[32];	/* "phifs:PID", as fs_mount() names it */
	char dev[32];
};

static int match_own(void *ctx, const char *mp, const char *type,
		     const char *source, const char *dev)
{
	struct own_mount *o = ctx;

	if (strcmp(mp, o->path) == 0 && strcmp(type, "fuse.phifs") == 0 &&
	    strcmp(source, o->source) == 0)
		snprintf(o->dev, sizeof(o->dev), "%s", dev);
	return 0;
}

/*
 * The kernel reads ahead of a FUSE file by at most the read_ahead_kb of
 * the mount's device, 128 KiB unless raised, whatever the INIT reply's
 * max_readahead says: a file read in order then comes as 128 KiB
 * requests, one at a time.  Raise it to FS_READ_AHEAD for this mount
 * (this process's, found in mountinfo: the session loop is not running
 * yet, so a stat() of the mountpoint would wait on ourselves).  Only
 * root may; anyone else, or root where /sys is read-only, keeps the
 * kernel's default, and reads work as before.
 */
static void raise_read_ahead(const char *mp)
{
	struct own_mount o = { .path = mp };
	char path[96];
	FILE *f;
	int bad;

	if (geteuid() != 0)
		return;
	snprintf(o.source, sizeof(o.source), "phifs:%ld", (long)getpid());
	if (tool_mounts_each(match_own, &o) < 0 || !o.dev[0])
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", o.dev);
	f = fopen(path, "we");
	bad = !f;
	if (f) {
		bad = fprintf(f, "%d\n", FS_READ_AHEAD >> 10) < 0;
		if (fclose(f))
			bad = 1;
	}
	if (bad)
		PHI_LOG(PHI_LOG_DEBUG, "read-ahead of device %s left as it "
			"was: %s", o.dev, strerror(errno));
	else
		PHI_LOG(PHI_LOG_DEBUG, "read-ahead of device %s: %d KiB",
			o.dev, FS_READ_AHEAD >> 10);
}

/*
 * Look path up in mountinfo.  Returns 1 if something is mounted there,
 * copying its type and source; 0 if not; -1 if mountinfo is unreadable.
 */
static int find_mount(const char *path, char *type, char *source, size_t len)
{
	struct mount_query q = { path, type, source, len, 0 };

	if (tool_mounts_each(match_mount, &q) < 0)
		return -1;
	return q.found;
}

static int check_mountpoint(const char *mp, char *real)
{
	char type[256], source[256];
	struct stat st;

	if (stat(mp, &st)) {
		if (errno == ENOTCONN)
			tool_error("mountpoint %s: a dead mount is left there; "
				   "run: fusermount3 -u %s", mp, mp);
		else
			tool_error("mountpoint %s: %s", mp, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		tool_error("mountpoint %s: not a directory", mp);
		return -1;
	}
	if (!realpath(mp, real)) {
		tool_error("mountpoint %s: %s", mp, strerror(errno));
		return -1;
	}
	if (find_mount(real, type, source, sizeof(type)) == 1) {
		tool_error("mountpoint %s: already mounted (%s)", mp, type);
		return -1;
	}
	return 0;
}

/* Child side: detach from the terminal once the mount is up. */
static void detach(int notify_fd, const struct mount_args *a)
{
	int fd = open("/dev/null", O_RDWR);
	char ok = 0;

	if (write(notify_fd, &ok, 1) != 1)
		PHI_LOG(PHI_LOG_WARNING, "cannot notify parent");
	close(notify_fd);
	if (a->log_to == TOOL_LOG_FILE)
		phi_log_to_fd(a->log_fd);
	else
		phi_log_to_syslog("phifs");
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (chdir("/"))
		PHI_LOG(PHI_LOG_WARNING, "cannot chdir to /");
}

/* A clinic's program may keep thousands of files open; the daemon holds
 * one descriptor per open file.  Take the whole hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			PHI_LOG(PHI_LOG_WARNING, "cannot raise the open file "
				"limit");
	}
}

/* What unlocks the filesystem, read by the parent. */
struct mount_keys {
	const struct buf *sb;
	struct tool_secret *secret;	/* wiped once used */
};

/*
 * The cache `phifs sync` wants sealed; NULL while there is none.  Lock-free
 * atomics, so the handler may use them.  The handler may run on any
 * thread, the cache's own included: close_daemon() clears the pointer and
 * then waits for handlers still holding the old one (sync_handlers).
 */
static _Atomic(struct cache *) sync_target;
static atomic_int sync_handlers;

static void on_sigusr1(int sig)
{
	struct cache *c;

	(void)sig;
	atomic_fetch_add(&sync_handlers, 1);
	c = atomic_load(&sync_target);
	if (c)
		cache_request_sync(c);
	atomic_fetch_sub(&sync_handlers, 1);
}

/* Before the lock that makes `phifs sync` see us as mounted: SIGUSR1
 * would otherwise end the process. */
static void catch_sync_signal(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		PHI_LOG(PHI_LOG_WARNING, "cannot catch SIGUSR1");
}

/* The lease of a writable mount (nothing for -o ro).  0 or -1
 * (printed). */
static int take_lease(const struct phi_config *cfg,
		      const struct mount_args *a, const struct buf *sb,
		      const struct crypt_key *key, struct backend *regions,
		      struct tool_lease **lease)
{
	struct crypt_super_info info;
	int rc;

	*lease = NULL;
	if (a->readonly)
		return 0;
	rc = crypt_super_parse(buf_data(sb), buf_len(sb), &info);
	if (rc) {
		tool_error("%s/superblock: %s", cfg->cache_dir,
			   phi_strerror(rc));
		return -1;
	}
	return tool_lease_open(lease, cfg, regions, key, info.fsid,
			       a->force ? TOOL_LEASE_FORCE : 0);
}

/*
 * cache_dir's superblock must be the newest: a key change it missed (a
 * cache_dir restored from a backup) may have removed the very slot that
 * just opened it.  0 or -1 (printed).
 */
static int check_newest_super(const struct phi_config *cfg,
			      struct backend *regions,
			      const struct crypt_key *key, const struct buf *sb)
{
	struct backend *be[PHI_MAX_REGIONS];
	struct buf newer;
	int n, which = 0, found;

	if (!regions)
		return 0;
	n = backend_replica_count(regions);
	if (n > cfg->nregions)
		n = cfg->nregions;
	for (int i = 0; i < n; i++)
		be[i] = backend_replica_region(regions, i);
	buf_init(&newer, CRYPT_SUPER_SIZE);
	found = tool_super_newer(be, n, key, sb, &newer, &which);
	buf_release(&newer);
	if (!found)
		return 0;
	tool_error("region %s holds a newer superblock than %s/superblock "
		   "(a key change this cache_dir missed); refusing to mount: "
		   "run phifs fsck %s --repair to bring it up to date",
		   cfg->regions[which].name, cfg->cache_dir, cfg->path);
	return -1;
}

/* Unlock, attach the regions, take the lease, open the cache.  0, or 1
 * (printed, all closed again). */
static int open_daemon(const struct phi_config *cfg,
		       const struct mount_args *a, struct mount_keys *k,
		       struct crypt_key **key, struct backend **regions,
		       struct tool_lease **lease, struct cache **c)
{
	const char *seed[PHI_MAX_REGIONS + 1];
	int empty[PHI_MAX_REGIONS], n = 0;
	struct cache_config cc;
	int rc;

	rc = crypt_harden_process();
	if (rc)
		PHI_LOG(PHI_LOG_WARNING, "cannot keep secrets out of core "
			"dumps: %s", phi_strerror(rc));
	rc = tool_unlock(cfg, k->sb, k->secret, key);
	tool_secret_wipe(k->secret);
	if (rc)
		return 1;
	/* re-seed hook: an empty region is filled by the cache */
	if (a->readonly ? tool_regions_attach(cfg, regions) :
	    tool_regions_attach_empty(cfg, regions, empty)) {
		crypt_key_free(*key);
		return 1;
	}
	if (tool_regions_check_super(cfg, *regions, *key, k->sb) ||
	    check_newest_super(cfg, *regions, *key, k->sb)) {
		backend_close(*regions);
		crypt_key_free(*key);
		return 1;
	}
	for (int i = 0; i < cfg->nregions && !a->readonly; i++)
		if (empty[i])
			seed[n++] = cfg->regions[i].name;
	seed[n] = NULL;
	if (take_lease(cfg, a, k->sb, *key, *regions, lease)) {
		backend_close(*regions);
		crypt_key_free(*key);
		return 1;
	}
	tool_cache_config(cfg, &cc);
	cc.regions = *regions;
	cc.key = *key;
	cc.seed = seed;
	cc.superblock = buf_data(k->sb);
	cc.superblock_len = buf_len(k->sb);
	rc = cache_open(c, &cc, 0);
	if (rc) {
		tool_cache_error(cfg, rc);
		tool_lease_close(*lease, 1);	/* nothing was written */
		backend_close(*regions);
		crypt_key_free(*key);
		return 1;
	}
	tool_lease_settle(*lease);	/* cache_dir's lock is ours now */
	atomic_store(&sync_target, *c);
	return 0;
}

/* The cache first (it may still be uploading through the regions), then
 * the lease (released only when the cache closed cleanly: after a failed
 * flush it is left to expire), then the regions, then the key they were
 * sealed with. */
static int close_daemon(struct crypt_key *key, struct backend *regions,
			struct tool_lease *lease, struct cache *c)
{
	int rc;

	atomic_store(&sync_target, NULL);
	while (atomic_load(&sync_handlers))
		sched_yield();
	rc = cache_close(c);
	tool_lease_close(lease, rc == 0);
	backend_close(regions);
	crypt_key_free(key);
	return rc;
}

/* --- where the log goes, and why the daemon stops --------------------- */

static const char *const log_to_words[] = {
	[TOOL_LOG_SYSLOG] = "syslog", [TOOL_LOG_FILE] = "file",
	[TOOL_LOG_STDERR] = "stderr",
};

static void log_place_path(const struct phi_config *cfg, char *path,
			   size_t len)
{
	snprintf(path, len, "%s/logging", cfg->cache_dir);
}

/* For `phifs status`: where this mount logs, written whole (rename). */
static void record_log_place(const struct phi_config *cfg,
			     const struct mount_args *a)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
	FILE *f;
	int ok;

	log_place_path(cfg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f) {
		PHI_LOG(PHI_LOG_WARNING, "cannot record where the log goes: "
			"%s", strerror(errno));
		return;
	}
	fprintf(f, "%ld %s%s%s\n", (long)getpid(), log_to_words[a->log_to],
		a->log_to == TOOL_LOG_FILE ? " " : "",
		a->log_to == TOOL_LOG_FILE ? cfg->log_file : "");
	ok = !ferror(f);
	if (fclose(f) || !ok || rename(tmp, path)) {
		PHI_LOG(PHI_LOG_WARNING, "cannot record where the log goes: "
			"%s", strerror(errno));
		unlink(tmp);
	}
}

/* What cache_dir/logging says, if the mount pid wrote it.  0 or -1. */
static int read_log_place(const struct phi_config *cfg, long pid,
			  struct tool_log_place *out)
{
	char path[PATH_MAX + 16], line[4200], word[16];
	long who;
	int n = 0;
	FILE *f;

	log_place_path(cfg, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f) || pid <= 0 ||
	    sscanf(line, "%ld %15s %n", &who, word, &n) < 2 || who != pid)
		n = 0;
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	for (int to = 0; n > 0 && to <= TOOL_LOG_STDERR; to++) {
		if (strcmp(word, log_to_words[to]) == 0) {
			out->to = (enum tool_log_to)to;
			snprintf(out->path, sizeof(out->path), "%s",
				 line + n);
			return 0;
		}
	}
	return -1;
}

void tool_log_place(const struct phi_config *cfg,
		    const struct cache_stats *s, struct tool_log_place *out)
{
	memset(out, 0, sizeof(*out));
	out->syslog_available = phi_log_syslog_available();
	if (s->mounted && read_log_place(cfg, s->pid, out) == 0) {
		out->from_mount = 1;
		return;
	}
	out->to = cfg->log_file ? TOOL_LOG_FILE : TOOL_LOG_SYSLOG;
	if (cfg->log_file)
		snprintf(out->path, sizeof(out->path), "%s", cfg->log_file);
}

/*
 * In the parent, before anything is written: where the daemon will log.
 * log_file is opened here, so that a bad one stops the mount with one
 * line; the descriptor is inherited by the daemon.  0 or -1 (printed).
 */
static int prepare_log(const struct phi_config *cfg, struct mount_args *a)
{
	a->log_fd = -1;
	if (a->foreground) {
		a->log_to = TOOL_LOG_STDERR;
		return 0;
	}
	if (!cfg->log_file) {
		a->log_to = TOOL_LOG_SYSLOG;
		return 0;
	}
	a->log_to = TOOL_LOG_FILE;
	a->log_fd = phi_log_open_file(cfg->log_file);
	if (a->log_fd >= 0)
		return 0;
	tool_error("%s: log_file %s: %s", cfg->path, cfg->log_file,
		   a->log_fd == -EINVAL ? "not a regular file" :
		   phi_strerror(a->log_fd));
	return -1;
}

/*
 * The signals that end fs_run() (fs.h).  FUSE's handlers for them are
 * wrapped while the mount serves, to note which one came and from whom;
 * FUSE's own handler then ends the session as before.
 */
static const int end_signals[] = { SIGTERM, SIGINT, SIGHUP };
#define N_END_SIGNALS (sizeof(end_signals) / sizeof(end_signals[0]))
static struct sigaction fuse_actions[N_END_SIGNALS];
static int wrapped[N_END_SIGNALS];
static volatile sig_atomic_t end_signal, end_sender;

static void on_end_signal(int sig, siginfo_t *si, void *uc)
{
	for (size_t i = 0; i < N_END_SIGNALS; i++) {
		const struct sigaction *fa = &fuse_actions[i];

		if (end_signals[i] != sig)
			continue;
		if (!end_signal) {
			/* si_code <= 0: sent by a process, which si_pid
			 * names; above, by the kernel (a hangup). */
			end_sender = si && si->si_code <= 0 ? si->si_pid : 0;
			end_signal = sig;
		}
		if (fa->sa_flags & SA_SIGINFO)
			fa->sa_sigaction(sig, si, uc);
		else
			fa->sa_handler(sig);
	}
}

/* After fs_mount(): wrap the handlers FUSE installed (a signal the
 * process ignores, e.g. SIGHUP under nohup, stays ignored). */
static void watch_end_signals(void)
{
	for (size_t i = 0; i < N_END_SIGNALS; i++) {
		struct sigaction *fa = &fuse_actions[i], sa;

		wrapped[i] = 0;
		if (sigaction(end_signals[i], NULL, fa) ||
		    (!(fa->sa_flags & SA_SIGINFO) &&
		     (fa->sa_handler == SIG_DFL || fa->sa_handler == SIG_IGN)))
			continue;
		/* FUSE's flags and mask as they are: its loop relies on
		 * the signal interrupting a blocked read (no SA_RESTART). */
		sa = *fa;
		sa.sa_sigaction = on_end_signal;
		sa.sa_flags |= SA_SIGINFO;
		wrapped[i] = sigaction(end_signals[i], &sa, NULL) == 0;
	}
}

/* Before fs_unmount(), which removes FUSE's handlers only if they are
 * still in place. */
static void unwatch_end_signals(void)
{
	for (size_t i = 0; i < N_END_SIGNALS; i++)
		if (wrapped[i])
			sigaction(end_signals[i], &fuse_actions[i], NULL);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	}
	return "a signal";
}

/* Why fs_run() returned rc. */
static void log_stop_reason(int rc)
{
	int sig = end_signal;
	long from = end_sender;

	if (sig && from > 0)
		PHI_LOG(PHI_LOG_NOTICE, "stopping: %s from pid %ld",
			signal_name(sig), from);
	else if (sig)
		PHI_LOG(PHI_LOG_NOTICE, "stopping: %s", signal_name(sig));
	else if (rc < 0)
		PHI_LOG(PHI_LOG_ERR, "stopping: serving the mount failed: %s",
			phi_strerror(rc));
	else
		PHI_LOG(PHI_LOG_NOTICE, "stopping: unmounted (by fusermount "
			"-u, umount or phifs umount)");
}

/*
 * The mount's own audit events, with the daemon as the one who acted:
 * mount once it answers, unmount (and why) before the cache closes, so
 * that both are in the trail beside the events of the requests between.
 */
static void audit_mount(const struct phi_config *cfg, struct cache *c,
			const struct mount_args *a, const char *mp)
{
	char detail[PATH_MAX + 2200];

	if (!cfg->audit)
		return;
	snprintf(detail, sizeof(detail), "mountpoint=%s%s%s%s", mp,
		 a->opts[0] ? " options=" : "", a->opts,
		 a->readonly ? " read-only" : "");
	tool_audit_daemon(c, AUDIT_MOUNT, 0, detail);
}

static void audit_unmount(const struct phi_config *cfg, struct cache *c,
			  int rc)
{
	char detail[128];

	if (!cfg->audit)
		return;
	if (end_signal && end_sender > 0)
		snprintf(detail, sizeof(detail), "%s from pid %ld",
			 signal_name(end_signal), (long)end_sender);
	else if (end_signal)
		snprintf(detail, sizeof(detail), "%s",
			 signal_name(end_signal));
	else if (rc < 0)
		snprintf(detail, sizeof(detail), "serving the mount failed: %s",
			 phi_strerror(rc));
	else
		snprintf(detail, sizeof(detail), "unmounted");
	/* the event's err is an errno: a phifs code is an I/O error */
	tool_audit_daemon(c, AUDIT_UNMOUNT, rc >= 0 ? 0 :
			  rc > -PHI_ERR_BASE ? -rc : EIO, detail);
}

int tool_serves_mount(long pid)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], want[40];
	int found = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), " phifs:%ld ", pid);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, " - fuse.phifs ") &&
			strstr(strstr(line, " - fuse.phifs "), want);
	fclose(f);
	return found;
}

/* Take the keys of `phifs key rotate` while mounted (rekey.c); a mount
 * that cannot only logs why. */
static struct tool_rekey *start_rekey(const struct phi_config *cfg,
				      const struct mount_keys *k,
				      struct crypt_key *key)
{
	struct crypt_super_info info;
	struct tool_rekey *r = NULL;
	int rc;

	rc = crypt_super_parse(buf_data(k->sb), buf_len(k->sb), &info);
	if (rc == 0)
		rc = tool_rekey_start(&r, cfg, key, info.fsid);
	if (rc)
		PHI_LOG(PHI_LOG_WARNING, "phifs key rotate cannot reach this "
			"mount: %s", phi_strerror(rc));
	return r;
}

/* Open, mount, serve, flush.  Runs in the daemon (or with -f). */
static int serve(const struct phi_config *cfg, const struct mount_args *a,
		 const char *mp, int notify_fd, struct mount_keys *k)
{
	struct fs_options fo = { a->opts, a->debug, cfg->audit == 1,
				 cfg->patient_folders };
	struct crypt_key *key = NULL;
	struct backend *regions = NULL;
	struct tool_lease *lease = NULL;
	struct tool_metrics *metrics;
	struct tool_syslog *fwd;
	struct tool_notify *notify;
	struct tool_rekey *rekey;
	struct cache *c;
	struct fs *fs;
	char err[512], path[PATH_MAX + 16];
	int rc;

	catch_sync_signal();
	raise_fd_limit();
	/* before the lease: a port in use must stop us first */
	if (tool_metrics_open(&metrics, cfg))
		return 1;
	if (tool_syslog_open(&fwd, cfg)) {
		tool_metrics_close(metrics);
		return 1;
	}
	if (open_daemon(cfg, a, k, &key, &regions, &lease, &c)) {
		tool_syslog_close(fwd);
		tool_metrics_close(metrics);
		return 1;
	}
	/* before the mount appears: whoever sees it may rotate at once */
	rekey = start_rekey(cfg, k, key);
	rc = fs_mount(&fs, c, mp, &fo, err, sizeof(err));
	if (rc) {
		tool_error("%s", err);
		tool_rekey_stop(rekey);
		tool_syslog_close(fwd);
		tool_metrics_close(metrics);
		close_daemon(key, regions, lease, c);
		return 1;
	}
	raise_read_ahead(mp);
	tool_metrics_start(metrics, c, lease);
	/* Once mounted, while stderr is still the user's terminal. */
	if (a->log_to == TOOL_LOG_SYSLOG && !phi_log_syslog_available())
		tool_warn("there is no syslog here (no /dev/log): the mount's "
			  "log lines will be lost; set log_file in "
			  "[filesystem]");
	if (notify_fd >= 0)
		detach(notify_fd, a);
	record_log_place(cfg, a);
	PHI_LOG(PHI_LOG_NOTICE, "mounted (pid %ld)", (long)getpid());
	audit_mount(cfg, c, a, mp);
	tool_syslog_start(fwd, c);
	watch_end_signals();
	rc = tool_notify_start(&notify, c, cfg, mp);
	if (rc)
		PHI_LOG(PHI_LOG_WARNING, "cannot report to the service "
			"manager: %s", phi_strerror(rc));
	rc = fs_run(fs);
	log_stop_reason(rc);
	tool_notify_stopping(notify);
	unwatch_end_signals();
	fs_unmount(fs);
	tool_rekey_stop(rekey);
	audit_unmount(cfg, c, rc);
	tool_syslog_close(fwd);
	tool_metrics_close(metrics);
	tool_notify_close(notify);
	rc = close_daemon(key, regions, lease, c);
	if (rc)
		PHI_LOG(PHI_LOG_ERR, "flush at unmount failed: %s",
			phi_strerror(rc));
	else
		PHI_LOG(PHI_LOG_NOTICE, "unmounted cleanly");
	log_place_path(cfg, path, sizeof(path));
	unlink(path);
	return rc ? 1 : 0;
}

/* Parent side: wait until the child has mounted or failed. */
static int wait_child(pid_t pid, int fd)
{
	char ok;
	ssize_t n;
	int status;

	do
		n = read(fd, &ok, 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n == 1 && ok == 0)
		return 0;
	waitpid(pid, &status, 0);
	return 1;	/* the child said why on stderr */
}

static int daemonize_and_serve(const struct phi_config *cfg,
			       const struct mount_args *a, const char *mp,
			       struct mount_keys *k)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC)) {
		tool_error("cannot create pipe: %s", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		tool_error("cannot fork: %s", strerror(errno));
		return 1;
	}
	if (pid > 0) {
		close(p[1]);
		tool_secret_wipe(k->secret);
		return wait_child(pid, p[0]);
	}
	close(p[0]);
	setsid();
	_exit(serve(cfg, a, mp, p[1], k));
}

/* The -o options, as fs_mount() will parse them.  0 or -1 (printed). */
static int check_options(const struct mount_args *a)
{
	struct fs_options fo = { a->opts, a->debug, 0, NULL };
	char err[512];

	if (fs_check_options(&fo, err, sizeof(err)) == 0)
		return 0;
	tool_error("%s", err);
	return -1;
}

/*
 * cache_dir/lock (cache.h) must be a file the daemon can open read-write
 * and lock, as cache_open() will: found here, a folder or an unwritable
 * file in its place stops the mount before the daemon writes its lease
 * to the regions.  The lock is let go at once.  0 or -1 (printed).
 */
static int check_cache_lock(const struct phi_config *cfg)
{
	char path[PATH_MAX + 8];
	const char *why = NULL;
	struct stat st;
	int fd, e = 0;

	snprintf(path, sizeof(path), "%s/lock", cfg->cache_dir);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st))
		e = errno;
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (flock(fd, LOCK_EX | LOCK_NB))
		e = errno;
	if (fd >= 0)
		close(fd);		/* lets the lock go */
	if (e == EWOULDBLOCK) {
		tool_cache_error(cfg, PHI_EBUSYFS);
		return -1;
	}
	if (e == EISDIR)
		why = "a folder, not a file (move it away)";
	else if (e)
		why = strerror(e);
	if (!why)
		return 0;
	tool_error("%s: cache_dir %s: its lock file: %s", cfg->path,
		   cfg->cache_dir, why);
	return -1;
}

/* In the parent: the filesystem must exist and not be mounted, its lock
 * must be free; read its superblock and the secret.  0 or -1 (printed). */
static int prepare_keys(const struct phi_config *cfg, struct buf *sb,
			struct tool_secret *secret)
{
	struct cache_stats st;
	int rc;

	if (tool_fs_stats(cfg, &st))
		return -1;
	if (st.mounted) {
		tool_cache_error(cfg, PHI_EBUSYFS);
		return -1;
	}
	if (check_cache_lock(cfg))
		return -1;
	if (tool_superblock_load(cfg, st.fsid, sb))
		return -1;
	rc = tool_secret_read(cfg, secret);
	tool_passphrase_forget();	/* the daemon holds this copy only */
	return rc;
}

int cmd_mount(int argc, char **argv)
{
	struct tool_secret secret = { 0 };
	struct mount_keys k = { NULL, &secret };
	struct phi_config cfg;
	struct mount_args a;
	char real[PATH_MAX];
	struct buf sb;
	int rc;

	if (tool_want_help(argc, argv, mount_usage))
		return 0;
	if (parse_mount_args(argc, argv, &a)) {
		tool_error("usage: phifs mount CONFIG [MOUNTPOINT] [-f] "
			   "[--force] [-o OPT[,OPT...]]");
		return 2;
	}
	if (tool_load_config(a.config, &cfg))
		return 1;
	if (!a.mountpoint)
		a.mountpoint = cfg.mountpoint;
	if (!a.mountpoint) {
		tool_error("%s: no mountpoint: give one after CONFIG or set "
			   "mountpoint in [filesystem]", cfg.path);
		phi_config_release(&cfg);
		return 2;
	}
	buf_init(&sb, CRYPT_SUPER_SIZE);
	k.sb = &sb;
	/* Everything local first: nothing may reach a region (the lease)
	 * before the daemon is sure to start. */
	if (check_options(&a) || check_mountpoint(a.mountpoint, real) ||
	    tool_check_places(&cfg, real) ||
	    prepare_keys(&cfg, &sb, &secret) || prepare_log(&cfg, &a)) {
		rc = 1;
		goto out;
	}
	if (a.debug)
		phi_log_threshold = PHI_LOG_DEBUG;
	rc = a.foreground ? serve(&cfg, &a, real, -1, &k) :
			    daemonize_and_serve(&cfg, &a, real, &k);
out:
	if (a.log_fd >= 0)
		close(a.log_fd);	/* the daemon has its own copy */
	tool_secret_wipe(&secret);
	buf_release(&sb);
	phi_config_release(&cfg);
	return rc;
}

/* --- umount --------------------------------------------------------------- */

static int unmount_path(const char *mp)
{
	pid_t pid;
	int status;

	if (geteuid() == 0) {
		if (umount2(mp, UMOUNT_NOFOLLOW) == 0)
			return 0;
		if (errno == EBUSY) {
			tool_error("%s is busy: close the programs that have "
				   "files open there, then retry", mp);
			return -1;
		}
	}
	pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-q", mp, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		tool_error("cannot unmount %s (is it busy?)", mp);
		return -1;
	}
	return 0;
}

/* Whether pid has exited: gone, or a zombie its parent has not reaped. */
static int exited(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the name may hold spaces and parens */
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* Wait for the daemon to finish flushing and exit. */
static int wait_exit(pid_t pid)
{
	const struct timespec tick = { 0, 20 * 1000 * 1000 };

	for (long i = 0; i < 30L * 60 * 50; i++) {	/* 30 minutes */
		if (exited(pid))
			return 0;
		nanosleep(&tick, NULL);
	}
	tool_error("unmounted, but phifs (pid %ld) is still flushing; "
		   "it will finish on its own", (long)pid);
	return -1;
}

int cmd_umount(int argc, char **argv)
{
	char real[PATH_MAX], type[256], source[256];
	long pid = 0;

	if (tool_want_help(argc, argv, umount_usage))
		return 0;
	if (argc != 2) {
		tool_error("usage: phifs umount MOUNTPOINT");
		return 2;
	}
	if (!realpath(argv[1], real)) {
		/* a dead mount cannot be resolved, but can be named */
		if (errno != ENOTCONN) {
			tool_error("%s: %s", argv[1], strerror(errno));
			return 1;
		}
		snprintf(real, sizeof(real), "%s", argv[1]);
	}
	if (find_mount(real, type, source, sizeof(type)) != 1 ||
	    strcmp(type, "fuse.phifs") != 0) {
		tool_error("%s is not a phifs mount", argv[1]);
		return 1;
	}
	if (strncmp(source, "phifs:", 6) == 0)
		pid = strtol(source + 6, NULL, 10);
	if (unmount_path(real))
		return 1;
	if (pid > 0 && wait_exit((pid_t)pid))
		return 1;
	return 0;
}
