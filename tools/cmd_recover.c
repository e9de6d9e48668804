/*
 * cmd_recover.c - phifs recover CONFIG [--region NAME] [--at TIME]: build
 * the local state of a filesystem from the history one region holds, on a
 * machine that has only the configuration, the key and the regions.  Also
 * what recover, restore and versions share (cmd.h, "history in the
 * regions").
 *
 * The superblock comes from the region (there is none in cache_dir yet),
 * the key unlocks it as at mount, and cache_recover() does the work in
 * cache_dir/recover.tmp, moving the result into place at the end.  Then,
 * in this order:
 *
 *   1. cache_recover()                      a filesystem in cache_dir
 *   2. cache_dir/superblock                 mount needs no region to start
 *   3. the superblock into every region     mount refuses a region without
 *      that answered without one            one (an emptied region); it
 *                                           is recorded first for the
 *                                           mount to fill (cache_mend.c)
 *
 * An interruption before 1 ends leaves no filesystem, and recover runs
 * again from the start; one after it leaves a filesystem that mounts (the
 * mount fetches a missing cache_dir/superblock from the regions).  Nothing
 * is written to cache_dir before the key has opened the superblock.
 *
 * restore and versions work in a scratch folder run by
 * tool_with_scratch(): a child process does the work, and the parent
 * removes the folder when the child ends, whether it returned, failed or
 * was killed.  Only a SIGKILL of the parent leaves one behind, and the next
 * run removes it (its name holds the pid that made it).
 */
#include "cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

static const char recover_usage[] =
	"usage: phifs recover CONFIG [--region NAME] [--at TIME]\n\n"
	"Rebuild the filesystem of CONFIG in its cache_dir from the history "
	"kept\nin a region: on a new machine, or after losing the local disk. "
	" cache_dir\nmust exist and hold no filesystem.  Afterwards `phifs "
	"mount` works as\nbefore; file content stays in the regions and comes "
	"back as it is read.\nUnlocks like mount (key_file, PHIFS_PASSPHRASE "
	"or a prompt).\n\n"
	"  --region NAME   read the history from [region NAME] (default: the "
	"first\n                  region that answers)\n"
	"  --at TIME       the filesystem as it was then (default: the "
	"latest):\n                  2026-11-29T10:00:00Z, "
	"2026-11-29T10:00:00.250Z,\n                  2026-11-29T10:00:00 "
	"(local time), -2h, -3d, -30m, -90s\n\n"
	"Safe to run again after an interruption.  A region that answers but "
	"holds\nno superblock (it was emptied) gets a copy, so that mount "
	"accepts it.\n";

#define SCRATCH_PREFIX ".phifs-scratch-"

/* ---- small helpers -------------------------------------------------- */

int tool_time_arg(const char *opt, const char *text, int64_t *ms)
{
	struct timespec now = phi_now();
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;

	if (phi_parse_moment(text, now_ms, ms) == 0)
		return 0;
	tool_error("%s: bad time '%s' (use 2026-11-29T10:00:00Z, "
		   "2026-11-29T10:00:00 for local time, or -90s, -30m, -2h, "
		   "-3d)", opt, text);
	return -1;
}

int tool_pid_alive(long pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill((pid_t)pid, 0) && errno == ESRCH))
		return 0;
	/* a zombie no one has reaped yet is gone too */
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

/* ---- the regions and the key ---------------------------------------- */

static int find_region(const struct phi_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nregions; i++)
		if (strcmp(cfg->regions[i].name, name) == 0)
			return i;
	return -1;
}

static void unknown_region(const struct phi_config *cfg, const char *name)
{
	char list[1200] = "";
	size_t n = 0;

	for (int i = 0; i < cfg->nregions && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
				      i ? ", " : "", cfg->regions[i].name);
	tool_error("--region %s: %s has no [region %s] (its regions: %s)",
		   name, cfg->path, name, n ? list : "none");
}

/* What one region said when asked for its superblock. */
struct probe {
	struct backend *be;
	int rc;			/* of backend_get(): 0, -ENOENT, ... */
	struct buf sb;
	char why[600];
};

static void probe_region(const struct phi_config *cfg, int i,
			 struct probe *p)
{
	const char *name = cfg->regions[i].name;
	char why[400];

	buf_init(&p->sb, CRYPT_SUPER_SIZE);
	if (tool_region_open(cfg, i, &p->be, p->why, sizeof(p->why))) {
		p->rc = -EINVAL;
		return;
	}
	p->rc = backend_get(p->be, "superblock", 0, 0, &p->sb);
	if (p->rc == -ENOENT) {
		snprintf(p->why, sizeof(p->why), "region %s holds no "
			 "superblock", name);
	} else if (p->rc) {
		tool_region_why(p->be, name, p->rc, why, sizeof(why));
		snprintf(p->why, sizeof(p->why), "region %s: %s", name, why);
	}
}

/* The region to read the history from: index into cfg, or -1 (printed). */
static int choose(const struct phi_config *cfg, const char *want,
		  struct probe *p)
{
	int i = want ? find_region(cfg, want) : -1;

	if (want) {
		if (p[i].rc == 0)
			return i;
		if (p[i].rc == -ENOENT)
			tool_error("%s: no phifs filesystem is there (check its "
				   "url), or it was emptied", p[i].why);
		else
			tool_error("%s", p[i].why);
		return -1;
	}
	for (i = 0; i < cfg->nregions; i++)
		if (p[i].rc == 0)
			return i;
	tool_error("no region gives a superblock to recover from (%s)",
		   p[cfg->nregions - 1].why);
	return -1;
}

/* Parse the chosen superblock; warn about and leave out regions that are
 * down or hold another filesystem.  0 or -1 (printed). */
static int sort_regions(const struct phi_config *cfg, struct probe *p,
			int chosen, struct tool_history *h, int *keep)
{
	struct crypt_super_info other;
	const char *name;
	int rc;

	rc = crypt_super_parse(buf_data(&p[chosen].sb),
			       buf_len(&p[chosen].sb), &h->info);
	if (rc) {
		tool_error("region %s: its superblock is not one this phifs "
			   "can read: %s", cfg->regions[chosen].name,
			   phi_strerror(rc));
		return -1;
	}
	for (int i = 0; i < cfg->nregions; i++) {
		name = cfg->regions[i].name;
		keep[i] = p[i].be != NULL;
		if (p[i].rc == 0 &&
		    (crypt_super_parse(buf_data(&p[i].sb), buf_len(&p[i].sb),
				       &other) ||
		     memcmp(other.fsid, h->info.fsid, 16) != 0)) {
			tool_warn("region %s holds another filesystem than "
				  "region %s; leaving it out", name,
				  cfg->regions[chosen].name);
			keep[i] = 0;
		} else if (p[i].rc && p[i].rc != -ENOENT) {
			tool_warn("%s; going on without it", p[i].why);
		}
	}
	return 0;
}

/* The replica set over the kept regions (it takes them). */
static int make_set(const struct phi_config *cfg, struct probe *p,
		    const int *keep, int chosen, struct tool_history *h)
{
	struct backend *be[PHI_MAX_REGIONS];
	int answered[PHI_MAX_REGIONS];
	int rc;

	for (int i = 0; i < cfg->nregions; i++) {
		if (!keep[i])
			continue;
		if (i == chosen)
			h->chosen = h->nset;
		answered[h->nset] = p[i].rc == 0 || p[i].rc == -ENOENT;
		h->lacks_sb[h->nset] = p[i].rc == -ENOENT;
		h->names[h->nset] = cfg->regions[i].name;
		be[h->nset++] = p[i].be;
		p[i].be = NULL;
	}
	rc = backend_replica_open(&h->set, be, h->nset);
	if (rc) {
		tool_error("cannot open the regions: %s", phi_strerror(rc));
		h->nset = 0;
		return -1;
	}
	for (int i = 0; i < h->nset; i++)
		if (answered[i])
			h->others[h->nothers++] =
				backend_replica_region(h->set, i);
	return 0;
}

/* Of the kept regions' superblocks of this filesystem, the one with the
 * highest serial (crypt.h): a key change reaches every region, but one
 * down at the time keeps an older copy, which must not win.  Unlocking
 * it checks its MAC. */
static int newest_super(const struct probe *p, const int *keep, int n,
			int chosen, const struct tool_history *h)
{
	struct crypt_super_info info;
	uint64_t best = h->info.serial;

	for (int i = 0; i < n; i++)
		if (keep[i] && p[i].rc == 0 &&
		    crypt_super_parse(buf_data(&p[i].sb), buf_len(&p[i].sb),
				      &info) == 0 &&
		    memcmp(info.fsid, h->info.fsid, 16) == 0 &&
		    info.serial > best) {
			best = info.serial;
			chosen = i;
		}
	return chosen;
}

static int open_regions(const struct phi_config *cfg, const char *want,
			struct tool_history *h)
{
	struct probe p[PHI_MAX_REGIONS];
	int keep[PHI_MAX_REGIONS];
	int chosen, rc = -1;

	memset(p, 0, sizeof(p));
	for (int i = 0; i < cfg->nregions; i++)
		probe_region(cfg, i, &p[i]);
	chosen = choose(cfg, want, p);
	if (chosen >= 0 && sort_regions(cfg, p, chosen, h, keep) == 0) {
		int sb = newest_super(p, keep, cfg->nregions, chosen, h);

		buf_reset(&h->sb);
		rc = buf_add(&h->sb, buf_data(&p[sb].sb), buf_len(&p[sb].sb));
		if (rc == 0)	/* parsed by newest_super() */
			crypt_super_parse(buf_data(&h->sb), buf_len(&h->sb),
					  &h->info);
		if (rc)
			tool_error("out of memory");
		else
			rc = make_set(cfg, p, keep, chosen, h);
	}
	for (int i = 0; i < cfg->nregions; i++) {
		backend_close(p[i].be);
		buf_release(&p[i].sb);
	}
	return rc;
}

int tool_history_open(const struct phi_config *cfg, const char *region,
		      struct tool_history *h)
{
	struct tool_secret secret = { 0 };
	int rc;

	memset(h, 0, sizeof(*h));
	buf_init(&h->sb, CRYPT_SUPER_SIZE);
	if (cfg->nregions == 0) {
		tool_error("%s: no [region NAME] section: there is no history "
			   "to read", cfg->path);
		goto fail;
	}
	if (region && find_region(cfg, region) < 0) {
		unknown_region(cfg, region);
		goto fail;
	}
	rc = crypt_harden_process();
	if (rc)
		tool_warn("cannot keep secrets out of core dumps: %s",
			  phi_strerror(rc));
	if (open_regions(cfg, region, h) ||
	    tool_check_block_size(cfg, h->info.block_size) ||
	    tool_secret_read(cfg, &secret))
		goto fail;
	rc = tool_unlock(cfg, &h->sb, &secret, &h->key);
	tool_secret_wipe(&secret);
	if (rc == 0)
		return 0;
fail:
	tool_history_close(h);
	return -1;
}

void tool_history_close(struct tool_history *h)
{
	backend_close(h->set);
	crypt_key_free(h->key);
	buf_release(&h->sb);
	memset(h, 0, sizeof(*h));
}

const char *tool_history_region(const struct tool_history *h)
{
	return h->names[h->chosen];
}

void tool_history_args(struct tool_history *h, const char *dir,
		       int64_t at_ms, struct cache_recover_args *a)
{
	memset(a, 0, sizeof(*a));
	a->dir = dir;
	a->block_size = h->info.block_size;
	a->fsid = h->info.fsid;
	a->key = h->key;
	a->region = backend_replica_region(h->set, h->chosen);
	a->others = h->others;
	a->nothers = h->nothers;
	a->at_ms = at_ms;
}

/* "nothing at T": say what the region does hold. */
static void no_history(const struct tool_history *h, int64_t at_ms)
{
	struct backend *be = backend_replica_region(h->set, h->chosen);
	const char *name = tool_history_region(h);
	struct cache_moment *m = NULL;
	char when[32], first[32];
	size_t n = 0;

	if (cache_history_list(be, h->key, h->info.fsid, &m, &n) || n == 0) {
		tool_error("region %s holds no metadata history of this "
			   "filesystem (was it emptied? try another region "
			   "with --region)", name);
	} else {
		phi_format_moment(at_ms, when);
		phi_format_moment(m[0].time_ms, first);
		tool_error("--at %s: nothing to recover that early: the oldest "
			   "moment region %s holds is %s", when, name, first);
	}
	cache_history_free(m);
}

int tool_history_error(const struct tool_history *h, int64_t at_ms, int rc)
{
	const char *name = tool_history_region(h);
	char why[400];

	if (rc == -ENOENT) {
		no_history(h, at_ms);
	} else if (rc == PHI_EAUTHFAIL || rc == PHI_ECORRUPT) {
		tool_error("region %s: a metadata object is damaged or altered "
			   "(%s); nothing of it was used (try another region "
			   "with --region)", name, phi_strerror(rc));
	} else if (rc == PHI_EUNREACHABLE || rc == PHI_EAUTH ||
		   rc == PHI_ENOBUCKET || rc == PHI_ECLOCKSKEW ||
		   rc == PHI_ETLS || rc == -ETIMEDOUT || rc == -EIO) {
		tool_region_why(backend_replica_region(h->set, h->chosen),
				name, rc, why, sizeof(why));
		tool_error("region %s: %s", name, why);
	} else {
		tool_error("cannot read the history of region %s: %s", name,
			   phi_strerror(rc));
	}
	return -1;
}

void tool_history_compare(const struct tool_history *h, int64_t at_ms,
			  int64_t got_ms)
{
	char got[32], best[32];

	for (int i = 0; i < h->nset; i++) {
		struct backend *be = backend_replica_region(h->set, i);
		struct cache_moment *m = NULL;
		int64_t latest = INT64_MIN;
		size_t n = 0;

		if (i == h->chosen ||
		    cache_history_list(be, h->key, h->info.fsid, &m, &n))
			continue;
		for (size_t k = 0; k < n; k++)
			if (m[k].time_ms <= at_ms && m[k].time_ms > latest)
				latest = m[k].time_ms;
		cache_history_free(m);
		if (latest <= got_ms)
			continue;
		phi_format_moment(got_ms, got);
		phi_format_moment(latest, best);
		tool_warn("region %s holds a later moment (%s) than the %s used "
			  "from region %s (it may lag behind, or miss a "
			  "segment); --region %s would give the later one",
			  h->names[i], best, got, tool_history_region(h),
			  h->names[i]);
	}
}

/* ---- scratch folders -------------------------------------------------- */

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		PHI_LOG(PHI_LOG_DEBUG, "cannot remove a scratch entry");
	return 0;
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove the scratch folders in base whose process is gone. */
static void sweep(const char *base)
{
	size_t n = strlen(SCRATCH_PREFIX);
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(base);
	long pid;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, SCRATCH_PREFIX, n) != 0)
			continue;
		pid = strtol(e->d_name + n, NULL, 10);
		if (!tool_pid_alive(pid)) {
			snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
			remove_tree(path);
		}
	}
	closedir(d);
}

/* mkdtemp in base; 0 or -errno. */
static int make_in(const char *base, char *dir, size_t len)
{
	if ((size_t)snprintf(dir, len, "%s/" SCRATCH_PREFIX "%ld-XXXXXX",
			     base, (long)getpid()) >= len)
		return -ENAMETOOLONG;
	sweep(base);
	return mkdtemp(dir) ? 0 : -errno;
}

/* Beside cache_dir (the same disk, which has room for the cache), else
 * in $TMPDIR.  0 or -1 (printed). */
static int scratch_make(const struct phi_config *cfg, char *dir, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	char base[PATH_MAX];
	char *slash;
	int rc;

	snprintf(base, sizeof(base), "%s", cfg->cache_dir);
	slash = strrchr(base, '/');
	if (slash && slash != base)
		*slash = '\0';
	else
		snprintf(base, sizeof(base), "/");
	if (make_in(base, dir, len) == 0)
		return 0;
	rc = make_in(tmp && tmp[0] == '/' ? tmp : "/tmp", dir, len);
	if (rc == 0)
		return 0;
	tool_error("cannot make a scratch folder beside %s or in %s: %s",
		   cfg->cache_dir, tmp && tmp[0] == '/' ? tmp : "/tmp",
		   phi_strerror(rc));
	return -1;
}

static volatile pid_t scratch_child;

static void pass_on(int sig)
{
	if (scratch_child > 0)
		kill(scratch_child, sig);
}

/* Wait for the child, passing on what would end us.  Its exit code. */
static int wait_child(pid_t pid)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa, old[4];
	int status = 0;
	pid_t r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pass_on;
	sigemptyset(&sa.sa_mask);
	scratch_child = pid;
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	scratch_child = 0;
	if (r < 0) {
		tool_error("cannot wait for the worker process: %s",
			   strerror(errno));
		return 1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	tool_error("interrupted by signal %d; the scratch folder was removed",
		   WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

int tool_with_scratch(const struct phi_config *cfg, tool_scratch_fn *fn,
		      void *ctx)
{
	char dir[PATH_MAX];
	pid_t pid;
	int rc;

	/* the scratch folder goes beside cache_dir: not into a mount */
	if (tool_check_places(cfg, NULL) || scratch_make(cfg, dir, sizeof(dir)))
		return 1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		tool_error("cannot fork: %s", strerror(errno));
		remove_tree(dir);
		return 1;
	}
	if (pid == 0) {
		rc = fn(ctx, dir);
		fflush(NULL);
		_exit(rc);
	}
	rc = wait_child(pid);
	remove_tree(dir);
	return rc;
}

/* ---- phifs recover ---------------------------------------------------- */

struct recover_args {
	const char *config, *region, *at;
};

static int parse_recover_args(int argc, char **argv, struct recover_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			a->region = argv[++i];
		else if (strncmp(argv[i], "--region=", 9) == 0)
			a->region = argv[i] + 9;
		else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
			a->at = argv[++i];
		else if (strncmp(argv[i], "--at=", 5) == 0)
			a->at = argv[i] + 5;
		else if (!a->config && argv[i][0] != '-')
			a->config = argv[i];
		else
			return -1;
	}
	return a->config ? 0 : -1;
}

/* cache_dir must exist, be writable and hold no filesystem.  0 or -1. */
static int check_empty(const struct phi_config *cfg)
{
	struct cache_config cc;
	struct cache *c;
	int rc;

	tool_cache_config(cfg, &cc);
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	if (rc == 0) {
		cache_close(c);
		rc = PHI_EEXISTFS;
	} else if (rc == PHI_ENOFS) {
		rc = access(cfg->cache_dir, W_OK | X_OK) ? -errno : 0;
	}
	if (rc)
		tool_cache_error(cfg, rc);
	return rc ? -1 : 0;
}

/*
 * A cache_dir/superblock without a filesystem beside it is left from
 * something that did not finish.  The same bytes are fine; another
 * filesystem's copy is not ours to remove.  0 (*have set when it is
 * there already) or -1 (printed).
 */
static int check_local_superblock(const struct phi_config *cfg,
				  const struct buf *sb, int *have)
{
	char path[PATH_MAX], *data;
	struct stat st;
	int fd, same;

	*have = 0;
	snprintf(path, sizeof(path), "%s/superblock", cfg->cache_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || fstat(fd, &st)) {
		tool_error("cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	data = malloc(buf_len(sb));
	same = data && (size_t)st.st_size == buf_len(sb) &&
	       pread(fd, data, buf_len(sb), 0) == (ssize_t)buf_len(sb) &&
	       memcmp(data, buf_data(sb), buf_len(sb)) == 0;
	free(data);
	close(fd);
	if (!same) {
		tool_error("%s exists, but differs from the region's "
			   "superblock and cache_dir holds no filesystem; move "
			   "it away and retry", path);
		return -1;
	}
	*have = 1;
	return 0;
}

/* Before step 3: an emptied region is recorded for re-seeding, so that
 * the first mount fills it (the superblock alone makes it look whole).
 * A warning only. */
static void mark_seeds(const struct phi_config *cfg,
		       const struct tool_history *h)
{
	const char *seed[PHI_MAX_REGIONS + 1];
	struct cache_config cc;
	struct cache *c;
	int n = 0, rc;

	for (int i = 0; i < h->nset; i++)
		if (h->lacks_sb[i])
			seed[n++] = h->names[i];
	seed[n] = NULL;
	if (n == 0)
		return;
	tool_cache_config(cfg, &cc);
	cc.seed = seed;
	rc = cache_open(&c, &cc, 0);
	if (rc == 0)
		rc = cache_close(c);
	if (rc)
		tool_warn("cannot record the emptied regions for the mount to "
			  "fill: %s; run phifs fsck --repair after mounting",
			  phi_strerror(rc));
}

/* Step 3: an emptied region gets the superblock back.  Warnings only. */
static void reseed(struct tool_history *h)
{
	char why[400];

	for (int i = 0; i < h->nset; i++) {
		struct backend *be = backend_replica_region(h->set, i);
		int rc;

		if (!h->lacks_sb[i])
			continue;
		rc = backend_put(be, "superblock", buf_data(&h->sb),
				 buf_len(&h->sb));
		if (rc == 0) {
			printf("region %s held no superblock; stored a copy "
			       "there, and the first mount copies the rest "
			       "into it\n", h->names[i]);
			continue;
		}
		tool_region_why(be, h->names[i], rc, why, sizeof(why));
		tool_warn("region %s holds no superblock and cannot take one "
			  "(%s): mount will refuse it until it does", h->names[i],
			  why);
	}
}

static void report(const struct phi_config *cfg,
		   const struct tool_history *h,
		   const struct cache_recover_info *info, uint64_t start_ns)
{
	char fsid[33], when[32], size[32];

	tool_fsid_hex(h->info.fsid, fsid);
	phi_format_moment(info->time_ms, when);
	tool_human_size(info->bytes, size, sizeof(size));
	printf("recovered phifs filesystem %s in %s from region %s as at %s: "
	       "%" PRIu64 " metadata object%s (%s), %" PRIu64 " inode%s, "
	       "%.1f s\n", fsid, cfg->cache_dir, tool_history_region(h), when,
	       info->objects, info->objects == 1 ? "" : "s", size,
	       info->inodes, info->inodes == 1 ? "" : "s",
	       (double)(phi_mono_ns() - start_ns) / 1e9);
}

/* The recovery in the audit trail of the cache_dir it made: the region,
 * the moment asked for and the one found.  0, or -1 (printed). */
static int audit_recover(const struct phi_config *cfg,
			 const struct tool_history *h, int64_t at_ms,
			 const struct cache_recover_info *info)
{
	char asked[40], found[40], detail[256];

	tool_audit_time(at_ms, asked, sizeof(asked));
	tool_audit_time(info->time_ms, found, sizeof(found));
	snprintf(detail, sizeof(detail), "region=%s at=%s moment=%s "
		 "objects=%llu", h->names[h->chosen], asked, found,
		 (unsigned long long)info->objects);
	return tool_audit_command(cfg, AUDIT_RECOVER, 0, NULL, detail);
}

static int recover(const struct phi_config *cfg, const struct recover_args *ra,
		   int64_t at_ms)
{
	struct cache_recover_info info;
	struct cache_recover_args a;
	struct tool_progress prog;
	struct tool_history h;
	uint64_t start = phi_mono_ns();
	int rc, have_sb;

	if (check_empty(cfg) || tool_check_places(cfg, NULL) ||
	    tool_history_open(cfg, ra->region, &h))
		return 1;
	if (check_local_superblock(cfg, &h.sb, &have_sb)) {
		tool_history_close(&h);
		return 1;
	}
	tool_history_args(&h, cfg->cache_dir, at_ms, &a);
	tool_progress_init(&prog, "recover");
	a.progress = tool_progress_show;
	a.progress_ctx = &prog;
	rc = cache_recover(&a, &info);
	tool_progress_end(&prog);
	if (rc == PHI_EEXISTFS || rc == PHI_EBUSYFS)
		tool_cache_error(cfg, rc);
	else if (rc)
		tool_history_error(&h, at_ms, rc);
	else if (!have_sb && tool_superblock_store(cfg, &h.sb))
		rc = -1;
	if (rc == 0) {
		report(cfg, &h, &info, start);
		if (info.skipped)
			tool_warn("region %s holds %llu later metadata "
				  "object%s that could not be applied (one "
				  "before them is missing or damaged): run "
				  "phifs fsck --repair, or recover from "
				  "another region", h.names[h.chosen],
				  (unsigned long long)info.skipped,
				  info.skipped == 1 ? "" : "s");
		mark_seeds(cfg, &h);
		reseed(&h);
		tool_history_compare(&h, at_ms, info.time_ms);
		if (audit_recover(cfg, &h, at_ms, &info))
			rc = 1;
	}
	tool_history_close(&h);
	return rc ? 1 : 0;
}

int cmd_recover(int argc, char **argv)
{
	struct recover_args a;
	struct phi_config cfg;
	int64_t at_ms = INT64_MAX;
	int rc;

	if (tool_want_help(argc, argv, recover_usage))
		return 0;
	if (parse_recover_args(argc, argv, &a)) {
		tool_error("usage: phifs recover CONFIG [--region NAME] "
			   "[--at TIME]");
		return 2;
	}
	if (a.at && tool_time_arg("--at", a.at, &at_ms))
		return 2;
	if (tool_load_config(a.config, &cfg))
		return 1;
	rc = recover(&cfg, &a, at_ms);
	phi_config_release(&cfg);
	return rc;
}
