/*
 * cmd_sync.c - phifs sync CONFIG [--timeout TIME]: seal everything
 * written so far and wait until every region holds it.
 *
 * Mounted: the mount is asked with SIGUSR1 (its handler calls
 * cache_request_sync()), and this process watches cache_stats() through
 * read-only opens until a sync pass that began after the request
 * (sync_mark_ns later than the moment of asking) has nothing left
 * waiting.  The mount records its state every two seconds, so that is
 * the usual delay even when there is nothing to send.
 *
 * Not mounted: this process unlocks the master key as a mount would,
 * opens the cache read-write with the regions and waits in
 * cache_sync_regions(), a second at a time so that it can judge progress
 * the same way.
 *
 * Either way: exit 0 with one line on stdout, or 1 with one line on
 * stderr that names each region still lacking something.  On a terminal
 * a progress line counts the bytes not yet in every region (unsealed,
 * plus what each region still lacks) down from the most seen.  Without
 * --timeout it waits as long as some region answers, and gives up once
 * every region has been down for a minute.
 */
#include "cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

static const char sync_usage[] =
	"usage: phifs sync CONFIG [--timeout TIME]\n\n"
	"Seal everything written to the filesystem of CONFIG so far and wait "
	"until\nevery region holds it.  Works whether or not the filesystem "
	"is mounted\n(when it is not, sync unlocks it like mount: key_file, "
	"PHIFS_PASSPHRASE\nor a passphrase asked on the terminal).\n\n"
	"  --timeout TIME   give up after TIME (30, 30s, 5m; 0 = no limit, "
	"the\n                   default); without a limit sync still gives "
	"up once\n                   every region has been down for a "
	"minute\n\n"
	"Exit status 0 when every region holds everything; 1 otherwise, with "
	"one\nline saying what each region still lacks and whether it is "
	"down.\n";

#define POLL_MS 150
#define RESIGNAL_NS (UINT64_C(2) * 1000000000)	/* ask again if unheard */
#define ALL_DOWN_NS (UINT64_C(60) * 1000000000)	/* give up without limit */
#define SLICE_MS 1000

struct sync_wait {
	const struct phi_config *cfg;
	uint64_t timeout_ns;		/* 0 = none */
	uint64_t start_ns;		/* when the waiting began */
	uint64_t deadline_ns;		/* 0 = none */
	uint64_t all_down_since;	/* 0 while some region is up */
	struct tool_progress prog;
	uint64_t most_waiting;		/* the most bytes seen waiting */
};

/* The clock starts once there is something to wait for: not while a
 * passphrase is being typed. */
static void start_waiting(struct sync_wait *w)
{
	w->start_ns = phi_mono_ns();
	w->deadline_ns = w->timeout_ns ? w->start_ns + w->timeout_ns : 0;
	w->all_down_since = 0;
	tool_progress_init(&w->prog, "sync");
	w->most_waiting = 0;
}

/* Redraw the progress line from a look at s. */
static void show_progress(struct sync_wait *w, const struct cache_stats *s)
{
	uint64_t waiting = s->dirty_bytes;

	for (int i = 0; i < w->cfg->nregions; i++) {
		struct cache_region_stats r;

		tool_region_stats(w->cfg, s, i, &r);
		waiting += r.waiting_bytes;
	}
	if (waiting > w->most_waiting)
		w->most_waiting = waiting;
	if (w->most_waiting)
		tool_progress_show(&w->prog, "bytes",
				   w->most_waiting - waiting, w->most_waiting);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "region a: down, 3 objects (1.2 MiB) waiting, 4 failed uploads in a
 * row" for every region that lacks something or is down. */
static void describe_missing(const struct phi_config *cfg,
			     const struct cache_stats *s, char *out,
			     size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < cfg->nregions && n < len; i++) {
		struct cache_region_stats r;
		char size[32];

		tool_region_stats(cfg, s, i, &r);
		if (!r.waiting && !r.down)
			continue;
		tool_human_size(r.waiting_bytes, size, sizeof(size));
		n += (size_t)snprintf(out + n, len - n, "%sregion %s: %s, "
				      "%llu object%s (%s) waiting, %u failed "
				      "upload%s in a row", n ? "; " : "",
				      r.name, r.down ? "down" : "up",
				      (unsigned long long)r.waiting,
				      r.waiting == 1 ? "" : "s", size,
				      (unsigned)r.fails,
				      r.fails == 1 ? "" : "s");
	}
	if (n == 0)
		snprintf(out, len, "%llu object%s not yet in every region",
			 (unsigned long long)s->sync_waiting,
			 s->sync_waiting == 1 ? "" : "s");
}

static void report_missing(struct sync_wait *w, const struct cache_stats *s,
			   const char *why)
{
	char what[2048];

	tool_progress_end(&w->prog);
	describe_missing(w->cfg, s, what, sizeof(what));
	tool_error("sync not finished (%s): %s", why, what);
}

static void report_done(struct sync_wait *w)
{
	double secs = (double)(phi_mono_ns() - w->start_ns) / 1e9;

	tool_progress_end(&w->prog);
	printf("synced: every region holds everything written before the "
	       "sync (%d region%s, %.1f s)\n", w->cfg->nregions,
	       w->cfg->nregions == 1 ? "" : "s", secs);
}

/* After a look at s: NULL to keep waiting, or why to give up. */
static const char *give_up(struct sync_wait *w, const struct cache_stats *s)
{
	static char why[64];
	uint64_t now = phi_mono_ns();
	int down = s->nregions > 0;

	for (int i = 0; i < s->nregions && i < 16; i++)
		down &= s->regions[i].down != 0;
	if (!down)
		w->all_down_since = 0;
	else if (!w->all_down_since)
		w->all_down_since = now;
	if (w->deadline_ns && now >= w->deadline_ns) {
		snprintf(why, sizeof(why), "timed out after %.1f s",
			 (double)(now - w->start_ns) / 1e9);
		return why;
	}
	if (!w->deadline_ns && down && now - w->all_down_since >= ALL_DOWN_NS)
		return "every region has been down for a minute";
	return NULL;
}

/* The mount at pid does the work; watch its record. */
static int sync_mounted(struct sync_wait *w, long pid)
{
	uint64_t asked, signalled;
	struct cache_stats s;
	const char *why;

	start_waiting(w);
	asked = signalled = w->start_ns;
	if (kill((pid_t)pid, SIGUSR1)) {
		tool_error("cannot ask the mount (pid %ld) to sync: %s", pid,
			   strerror(errno));
		return 1;
	}
	for (;;) {
		sleep_ms(POLL_MS);
		if (tool_fs_stats(w->cfg, &s))
			return 1;
		if (!s.mounted || s.pid != pid) {
			tool_progress_end(&w->prog);
			tool_error("the mount (pid %ld) stopped before the sync "
				   "finished; run phifs sync again", pid);
			return 1;
		}
		if (s.sync_mark_ns > asked && s.sync_waiting == 0) {
			report_done(w);
			return 0;
		}
		show_progress(w, &s);
		/* A signal that came before the mount could take it. */
		if (s.sync_mark_ns <= asked &&
		    phi_mono_ns() - signalled >= RESIGNAL_NS) {
			kill((pid_t)pid, SIGUSR1);
			signalled = phi_mono_ns();
		}
		why = give_up(w, &s);
		if (why) {
			report_missing(w, &s, why);
			return 1;
		}
	}
}

/* Wait in this process, one slice at a time.  0 or 1 (printed). */
static int wait_here(struct sync_wait *w, struct cache *c)
{
	struct cache_stats s;
	const char *why;

	if (cache_stats(c, &s) == 0)
		show_progress(w, &s);
	for (;;) {
		unsigned slice = SLICE_MS;
		int rc;

		if (w->deadline_ns) {
			uint64_t now = phi_mono_ns();
			uint64_t left = w->deadline_ns > now ?
					(w->deadline_ns - now) / 1000000 : 0;

			slice = left < SLICE_MS ? (unsigned)left + 1 : SLICE_MS;
		}
		rc = cache_sync_regions(c, slice);
		if (rc == 0) {
			report_done(w);
			return 0;
		}
		if (rc != -ETIMEDOUT) {
			tool_progress_end(&w->prog);
			tool_error("sync failed: %s", phi_strerror(rc));
			return 1;
		}
		rc = cache_stats(c, &s);
		if (rc) {
			tool_progress_end(&w->prog);
			tool_error("sync: cannot read the state: %s",
				   phi_strerror(rc));
			return 1;
		}
		why = give_up(w, &s);
		if (why) {
			report_missing(w, &s, why);
			return 1;
		}
		show_progress(w, &s);
	}
}

/* Unlock and open as a mount does, then wait.  0 or 1 (printed). */
static int sync_here(struct sync_wait *w, const char *fsid)
{
	const struct phi_config *cfg = w->cfg;
	struct tool_secret secret = { 0 };
	struct crypt_key *key = NULL;
	struct backend *regions = NULL;
	struct cache_config cc;
	struct cache *c;
	struct buf sb;
	int rc = 1;

	buf_init(&sb, CRYPT_SUPER_SIZE);
	crypt_harden_process();
	if (tool_superblock_load(cfg, fsid, &sb) ||
	    tool_secret_read(cfg, &secret) ||
	    tool_unlock(cfg, &sb, &secret, &key))
		goto out;
	tool_secret_wipe(&secret);
	if (tool_regions_attach(cfg, &regions))
		goto out;
	tool_cache_config(cfg, &cc);
	cc.regions = regions;
	cc.key = key;
	rc = cache_open(&c, &cc, 0);
	if (rc) {
		tool_cache_error(cfg, rc);
		rc = 1;
		goto out;
	}
	start_waiting(w);
	rc = wait_here(w, c);
	if (cache_close(c) && rc == 0) {
		tool_error("sync: cannot close the cache cleanly");
		rc = 1;
	}
out:
	backend_close(regions);
	crypt_key_free(key);
	tool_secret_wipe(&secret);
	buf_release(&sb);
	return rc;
}

static int parse_sync_args(int argc, char **argv, const char **config,
			   uint64_t *timeout_ms)
{
	const char *t = NULL;

	*config = NULL;
	*timeout_ms = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			t = argv[++i];
		else if (strncmp(argv[i], "--timeout=", 10) == 0)
			t = argv[i] + 10;
		else if (!*config && argv[i][0] != '-')
			*config = argv[i];
		else
			return -1;
	}
	if (!*config)
		return -1;
	if (t && phi_parse_duration(t, timeout_ms)) {
		tool_error("--timeout: bad duration '%s' (use a number with "
			   "ms, s, m or h; seconds without)", t);
		return -2;
	}
	return 0;
}

int cmd_sync(int argc, char **argv)
{
	struct sync_wait w = { 0 };
	struct phi_config cfg;
	struct cache_stats s;
	const char *config;
	uint64_t timeout_ms;
	int rc;

	if (tool_want_help(argc, argv, sync_usage))
		return 0;
	rc = parse_sync_args(argc, argv, &config, &timeout_ms);
	if (rc) {
		if (rc == -1)
			tool_error("usage: phifs sync CONFIG [--timeout TIME]");
		return 2;
	}
	if (tool_load_config(config, &cfg))
		return 1;
	w.cfg = &cfg;
	/* beyond any real wait, and far from overflowing */
	if (timeout_ms > UINT64_C(1) << 40)
		timeout_ms = UINT64_C(1) << 40;
	w.timeout_ns = timeout_ms * 1000000;
	if (tool_fs_stats(&cfg, &s))
		rc = 1;
	else if (cfg.nregions == 0) {
		printf("nothing to sync: %s has no region\n", cfg.path);
		rc = 0;
	} else if (s.mounted && s.pid > 0)
		rc = sync_mounted(&w, s.pid);
	else
		rc = sync_here(&w, s.fsid);
	phi_config_release(&cfg);
	return rc;
}
