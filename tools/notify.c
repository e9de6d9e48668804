/*
 * notify.c - tell a service manager how the mount is (systemd's
 * Type=notify, through libsystemd's sd_notify()).
 *
 * Only under a service manager: without NOTIFY_SOCKET in the environment
 * tool_notify_start() starts nothing.  Its thread sends, in this order:
 *
 *   READY=1 + STATUS=   once a statfs() of the mountpoint is answered by
 *                       FUSE (f_type FUSE_SUPER_MAGIC), i.e. by our own
 *                       session loop: the mount answers, not just exists
 *   STATUS=             whenever the text changes, looked at every
 *                       NOTIFY_PERIOD_MS: dirty bytes, bytes waiting for
 *                       the regions, regions down (names from the
 *                       configuration; never a path or a file name)
 *
 * and tool_notify_stopping(), from the thread that ran fs_run(), sends
 * STOPPING=1 once the session loop has ended, before the unmount and the
 * flush; nothing is sent after it (both sends hold the lock).  The thread is joined by tool_notify_close() only after
 * fs_unmount(): a statfs() still waiting for the session would otherwise
 * never return.
 *
 * sd_notify() is called with unset_environment 0: unsetenv() while other
 * threads may read the environment is not safe.
 */
#include "cmd.h"
#include "phi.h"

#include <errno.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#define NOTIFY_PERIOD_MS 5000
#define NOTIFY_RETRY_MS 100	/* between statfs() tries before ready */

struct tool_notify {
	struct cache *c;	/* borrowed; outlives the thread */
	const struct phi_config *cfg;	/* borrowed: region names */
	char *mountpoint;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;		/* protected by lock */
	char last[512];		/* the STATUS= text sent last; thread only */
};

/* Wait up to ms, or until told to stop.  1 when told to stop. */
static int nap(struct tool_notify *n, unsigned ms)
{
	struct timespec until;
	int stop;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&n->lock);
	while (!n->stop &&
	       pthread_cond_timedwait(&n->wake, &n->lock, &until) != ETIMEDOUT)
		;
	stop = n->stop;
	pthread_mutex_unlock(&n->lock);
	return stop;
}

/* Whether FUSE answers a statfs() of the mountpoint. */
static int answers(const struct tool_notify *n)
{
	struct statfs st;

	return statfs(n->mountpoint, &st) == 0 &&
	       st.f_type == FUSE_SUPER_MAGIC;
}

/* The names of the regions marked down, space separated, into out;
 * returns how many. */
static int regions_down(const struct tool_notify *n,
			const struct cache_stats *s, char *out, size_t len)
{
	size_t at = 0;
	int down = 0;

	out[0] = '\0';
	for (int i = 0; i < n->cfg->nregions; i++) {
		struct cache_region_stats r;

		tool_region_stats(n->cfg, s, i, &r);
		if (!r.down)
			continue;
		if (at < len)
			at += (size_t)snprintf(out + at, len - at, "%s%s",
					       down ? " " : "",
					       n->cfg->regions[i].name);
		down++;
	}
	return down;
}

/* "dirty 12.0 KiB, 1.2 MiB waiting for the regions, 1 of 2 regions down:
 * b", from the cache's record. */
static void status_text(const struct tool_notify *n, char *out, size_t len)
{
	char dirty[32], waiting[32], names[256];
	struct cache_stats s;
	int down;

	if (cache_stats(n->c, &s)) {
		snprintf(out, len, "mounted (state unreadable)");
		return;
	}
	tool_human_size(s.dirty_data_bytes, dirty, sizeof(dirty));
	tool_human_size(s.sealed_bytes, waiting, sizeof(waiting));
	down = regions_down(n, &s, names, sizeof(names));
	if (n->cfg->nregions == 0)
		snprintf(out, len, "dirty %s, no regions", dirty);
	else if (down == 0)
		snprintf(out, len, "dirty %s, %s waiting for the regions, all "
			 "%d up", dirty, waiting, n->cfg->nregions);
	else
		snprintf(out, len, "dirty %s, %s waiting for the regions, %d "
			 "of %d down: %s", dirty, waiting, down,
			 n->cfg->nregions, names);
}

/* Send STATUS= (with READY=1 the first time) when the text changed;
 * nothing once STOPPING=1 is sent (under the lock, so never after it). */
static void send_status(struct tool_notify *n, int ready)
{
	char text[sizeof(n->last)];
	int rc = 0;

	status_text(n, text, sizeof(text));
	if (!ready && strcmp(text, n->last) == 0)
		return;
	pthread_mutex_lock(&n->lock);
	if (!n->stop)
		rc = sd_notifyf(0, "%sSTATUS=%s", ready ? "READY=1\n" : "",
				text);
	pthread_mutex_unlock(&n->lock);
	if (rc < 0)
		PHI_LOG(PHI_LOG_WARNING, "cannot notify the service manager: "
			"%s", phi_strerror(rc));
	snprintf(n->last, sizeof(n->last), "%s", text);
}

static void *notify_main(void *arg)
{
	struct tool_notify *n = arg;

	while (!answers(n))
		if (nap(n, NOTIFY_RETRY_MS))
			return NULL;
	send_status(n, 1);
	PHI_LOG(PHI_LOG_INFO, "told the service manager the mount is ready");
	while (!nap(n, NOTIFY_PERIOD_MS))
		send_status(n, 0);
	return NULL;
}

int tool_notify_start(struct tool_notify **out, struct cache *c,
		      const struct phi_config *cfg, const char *mountpoint)
{
	struct tool_notify *n;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->mountpoint = strdup(mountpoint))) {
		free(n);
		return -ENOMEM;
	}
	n->c = c;
	n->cfg = cfg;
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->wake, &ca);
	pthread_condattr_destroy(&ca);
	rc = -pthread_create(&n->thread, NULL, notify_main, n);
	if (rc) {
		pthread_cond_destroy(&n->wake);
		pthread_mutex_destroy(&n->lock);
		free(n->mountpoint);
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

/* Stop the thread; with what (STOPPING=1), say so while holding the
 * lock that send_status() takes. */
static void tell_stop(struct tool_notify *n, const char *what)
{
	int rc = 0;

	pthread_mutex_lock(&n->lock);
	if (what && !n->stop)
		rc = sd_notify(0, what);
	n->stop = 1;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
	if (rc < 0)
		PHI_LOG(PHI_LOG_WARNING, "cannot notify the service manager: "
			"%s", phi_strerror(rc));
}

void tool_notify_stopping(struct tool_notify *n)
{
	if (n)
		tell_stop(n, "STOPPING=1\nSTATUS=stopping: unmounting and "
			  "flushing to the local disk");
}

void tool_notify_close(struct tool_notify *n)
{
	if (!n)
		return;
	tell_stop(n, NULL);
	pthread_join(n->thread, NULL);
	pthread_cond_destroy(&n->wake);
	pthread_mutex_destroy(&n->lock);
	free(n->mountpoint);
	free(n);
}
