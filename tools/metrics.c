/*
 * metrics.c - the Prometheus endpoint of a mount (metrics.h).
 *
 * A small HTTP/1.x server of our own: Prometheus asks one GET at a time,
 * and a library would bring far more than the few lines it takes to read
 * one request line and answer with Connection: close.  One thread polls
 * the listening socket and a pipe that tool_metrics_close() writes to;
 * each connection gets REQ_TIMEOUT_MS for each read and write and
 * CONN_TIMEOUT_MS in all, so a client that stalls delays the next scrape
 * and the unmount by at most that, and never a FUSE request.
 *
 * The answer is built for each request from cache_stats() (a read
 * transaction: what the mount last recorded in LMDB, as `phifs status`
 * shows it), cache_counters() and fs_op_stats() (atomics and one short
 * lock), and the lease's age.  Names follow Prometheus' conventions:
 * a phifs_ prefix, the unit last (_bytes, _seconds), _total for
 * counters.  Labels carry region names and request kinds only, never a
 * file name.
 */
#include "metrics.h"

#include "cmd.h"
#include "fs.h"
#include "hist.h"
#include "phi.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQ_TIMEOUT_MS 2000	/* per read or write of a connection */
#define CONN_TIMEOUT_MS 5000	/* for the whole of one */
#define REQ_MAX 8192		/* a request's line and headers */
#define ANSWER_MAX (4u << 20)	/* far above what 16 regions make */

struct tool_metrics {
	const struct phi_config *cfg;
	int fd;			/* listening */
	int wake[2];		/* a byte in wake[1] stops the thread */
	struct cache *c;
	struct tool_lease *lease;
	pthread_t thread;
	int running;
};

/* --- the text format ---------------------------------------------------- */

struct out {
	struct buf b;
	int err;		/* the first failure to grow b */
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		o->err = -EOVERFLOW;
	else if (!o->err)
		o->err = buf_add(&o->b, line, (size_t)n);
}

static void family(struct out *o, const char *name, const char *type,
		   const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it: \, " and newline escaped. */
static void label_value(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in && n + 3 < len; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			out[n++] = '\\';
			out[n++] = *in == '\n' ? 'n' : *in;
		} else {
			out[n++] = *in;
		}
	}
	out[n] = '\0';
}

/* One histogram's samples; label is `key="value"`. */
static void histogram(struct out *o, const char *name, const char *label,
		      const struct phi_hist_snap *h)
{
	for (int i = 0; i < PHI_HIST_BUCKETS; i++)
		put(o, "%s_bucket{%s,le=\"%g\"} %llu\n", name, label,
		    (double)phi_hist_bounds_ns[i] / 1e9,
		    (unsigned long long)h->cum[i]);
	put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, label,
	    (unsigned long long)h->cum[PHI_HIST_BUCKETS]);
	put(o, "%s_sum{%s} %.9f\n", name, label, (double)h->sum_ns / 1e9);
	put(o, "%s_count{%s} %llu\n", name, label,
	    (unsigned long long)h->cum[PHI_HIST_BUCKETS]);
}

static void gauge(struct out *o, const char *name, const char *help,
		  unsigned long long v)
{
	family(o, name, "gauge", help);
	put(o, "%s %llu\n", name, v);
}

static void local_metrics(struct out *o, const struct cache_stats *s,
			  const struct cache_counters *k)
{
	gauge(o, "phifs_dirty_bytes", "Bytes written and not yet sealed "
	      "(of each dirty block, the part within its file's size).",
	      s->dirty_data_bytes);
	gauge(o, "phifs_dirty_blocks", "Blocks written and not yet sealed.",
	      s->dirty_blocks);
	gauge(o, "phifs_sealed_bytes", "Bytes of sealed objects not yet in "
	      "every region.", s->sealed_bytes);
	gauge(o, "phifs_sealed_objects", "Sealed objects not yet in every "
	      "region.", s->sealed_objects);
	gauge(o, "phifs_cache_used_bytes", "Bytes the local store uses "
	      "(data files and sealed objects waiting).", s->used_bytes);
	gauge(o, "phifs_cache_limit_bytes", "cache_size: the bound of the "
	      "local store.", s->size_limit);
	family(o, "phifs_cache_evictions_total", "counter", "Blocks evicted "
	       "from the local store since the mount began.");
	put(o, "phifs_cache_evictions_total %llu\n",
	    (unsigned long long)k->evictions);
	family(o, "phifs_metadata_commits_total", "counter", "Metadata "
	       "transactions committed to the local disk since the mount "
	       "began (each one fdatasync).");
	put(o, "phifs_metadata_commits_total %llu\n",
	    (unsigned long long)k->commits);
	family(o, "phifs_pack_prefetches_total", "counter", "Packs got "
	       "whole from a region for a small file's read, kept in memory "
	       "for its neighbours.");
	put(o, "phifs_pack_prefetches_total %llu\n",
	    (unsigned long long)k->packs_fetched_whole);
	family(o, "phifs_pack_prefetch_hits_total", "counter", "Blocks "
	       "read back from such a pack instead of a region.");
	put(o, "phifs_pack_prefetch_hits_total %llu\n",
	    (unsigned long long)k->frames_from_memory);
}

/* The counters of region name, or NULL. */
static const struct cache_region_counters *
counters_of(const struct cache_counters *k, const char *name)
{
	for (int i = 0; i < k->nregions; i++)
		if (strcmp(k->regions[i].name, name) == 0)
			return &k->regions[i];
	return NULL;
}

/* The regions of the configuration, each with its label. */
struct region_row {
	char label[160];
	struct cache_region_stats st;
	struct cache_region_counters k;
	int counted;		/* k is the cache's (it seals for the region) */
};

static void region_rows(const struct phi_config *cfg,
			const struct cache_stats *s,
			const struct cache_counters *k,
			struct region_row *rows)
{
	for (int i = 0; i < cfg->nregions; i++) {
		const struct cache_region_counters *rk;
		char v[140];

		label_value(cfg->regions[i].name, v, sizeof(v));
		snprintf(rows[i].label, sizeof(rows[i].label),
			 "region=\"%s\"", v);
		tool_region_stats(cfg, s, i, &rows[i].st);
		rk = counters_of(k, cfg->regions[i].name);
		rows[i].counted = rk != NULL;
		if (rk)
			rows[i].k = *rk;
		else
			memset(&rows[i].k, 0, sizeof(rows[i].k));
	}
}

enum region_field {
	RF_WAIT_OBJ, RF_WAIT_BYTES, RF_UP, RF_UP_ERR, RF_FETCH_ERR,
};

static unsigned long long region_value(const struct region_row *r,
				       enum region_field f)
{
	switch (f) {
	case RF_WAIT_OBJ:
		return r->st.waiting;
	case RF_WAIT_BYTES:
		return r->st.waiting_bytes;
	case RF_UP:
		return !r->st.down && (!r->counted || r->k.up);
	case RF_UP_ERR:
		return r->k.upload_errors;
	case RF_FETCH_ERR:
		return r->k.fetch_errors;
	}
	return 0;
}

static void region_family(struct out *o, const struct region_row *rows,
			  int n, const char *name, const char *type,
			  const char *help, enum region_field f)
{
	family(o, name, type, help);
	for (int i = 0; i < n; i++)
		put(o, "%s{%s} %llu\n", name, rows[i].label,
		    region_value(&rows[i], f));
}

static void region_metrics(struct out *o, const struct region_row *r, int n)
{
	static const char up_h[] = "phifs_region_upload_duration_seconds";
	static const char fe_h[] = "phifs_region_fetch_duration_seconds";
	static const char done[] =
		"phifs_region_last_complete_replication_timestamp_seconds";

	region_family(o, r, n, "phifs_region_waiting_objects", "gauge",
		      "Sealed objects the region does not hold yet.",
		      RF_WAIT_OBJ);
	region_family(o, r, n, "phifs_region_waiting_bytes", "gauge",
		      "Bytes of the sealed objects the region does not hold "
		      "yet.", RF_WAIT_BYTES);
	region_family(o, r, n, "phifs_region_up", "gauge", "1 while the "
		      "region takes uploads, 0 once it is marked down.",
		      RF_UP);
	region_family(o, r, n, "phifs_region_upload_errors_total", "counter",
		      "Uploads to the region that failed.", RF_UP_ERR);
	region_family(o, r, n, "phifs_region_fetch_errors_total", "counter",
		      "Fetches from the region that failed or found no good "
		      "copy.", RF_FETCH_ERR);
	family(o, up_h, "histogram", "Time an upload to the region took.");
	for (int i = 0; i < n; i++)
		histogram(o, up_h, r[i].label, &r[i].k.upload);
	family(o, fe_h, "histogram", "Time a fetch from the region took.");
	for (int i = 0; i < n; i++)
		histogram(o, fe_h, r[i].label, &r[i].k.fetch);
	family(o, done, "gauge", "When the region last held every object "
	       "sealed so far (unix time); absent until seen.");
	for (int i = 0; i < n; i++)
		if (r[i].k.complete > 0)
			put(o, "%s{%s} %lld\n", done, r[i].label,
			    (long long)r[i].k.complete);
}

static void fuse_metrics(struct out *o)
{
	static const char ops[] = "phifs_fuse_operations_total";
	static const char dur[] = "phifs_fuse_operation_duration_seconds";
	struct phi_hist_snap h[FS_OP_COUNT];
	char label[64];

	for (int i = 0; i < FS_OP_COUNT; i++)
		fs_op_stats((enum fs_op)i, &h[i]);
	family(o, ops, "counter", "FUSE requests served, by kind.");
	for (int i = 0; i < FS_OP_COUNT; i++)
		put(o, "%s{op=\"%s\"} %llu\n", ops, fs_op_name((enum fs_op)i),
		    (unsigned long long)h[i].cum[PHI_HIST_BUCKETS]);
	family(o, dur, "histogram", "Time a FUSE request took in the "
	       "daemon, by kind.");
	for (int i = 0; i < FS_OP_COUNT; i++) {
		snprintf(label, sizeof(label), "op=\"%s\"",
			 fs_op_name((enum fs_op)i));
		histogram(o, dur, label, &h[i]);
	}
}

/* The whole answer into o. */
static void build(struct tool_metrics *m, struct out *o)
{
	struct region_row rows[PHI_MAX_REGIONS];
	struct cache_counters k;
	struct cache_stats s;
	int64_t age;
	int rc = cache_stats(m->c, &s);

	if (rc) {
		PHI_LOG(PHI_LOG_ERR, "metrics: cannot read the cache's state: "
			"%s", phi_strerror(rc));
		o->err = rc;
		return;
	}
	cache_counters(m->c, &k);
	region_rows(m->cfg, &s, &k, rows);
	local_metrics(o, &s, &k);
	region_metrics(o, rows, m->cfg->nregions);
	fuse_metrics(o);
	age = tool_lease_age_ms(m->lease);
	if (age >= 0) {
		family(o, "phifs_lease_age_seconds", "gauge", "Time since a "
		       "region last took this mount's lease.");
		put(o, "phifs_lease_age_seconds %.3f\n", (double)age / 1e3);
	}
}

/* --- HTTP --------------------------------------------------------------- */

/* The connection being served must end by this (phi_mono_ns()); only
 * the serving thread touches it. */
static uint64_t conn_deadline;

static int late(void)
{
	return phi_mono_ns() > conn_deadline;
}

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n && !late()) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;		/* the client went: nothing to do */
		c += w;
		n -= (size_t)w;
	}
}

static void answer(int fd, const char *status, const char *type,
		   const void *body, size_t len, int head)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %s\r\nContent-Type: %s"
			 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, len);

	send_all(fd, hdr, (size_t)n);
	if (!head)
		send_all(fd, body, len);
}

static void answer_text(int fd, const char *status, const char *text,
			int head)
{
	answer(fd, status, "text/plain; charset=utf-8", text, strlen(text),
	       head);
}

/* Read up to the end of the headers; the length read, or -1. */
static ssize_t read_request(int fd, char *req, size_t size)
{
	size_t n = 0;

	while (n + 1 < size && !late()) {
		ssize_t r = recv(fd, req + n, size - 1 - n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;	/* closed, or REQ_TIMEOUT_MS passed */
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			return (ssize_t)n;
	}
	return -1;
}

/* "/metrics" or "/metrics?..." */
static int is_metrics_path(const char *path, size_t len)
{
	return (len == 8 || (len > 8 && path[8] == '?')) &&
	       strncmp(path, "/metrics", 8) == 0;
}

static void serve_one(struct tool_metrics *m, int fd)
{
	char req[REQ_MAX], *sp, *path;
	struct out o = { .err = 0 };
	size_t plen;
	int head;

	if (read_request(fd, req, sizeof(req)) < 0)
		return;
	sp = strchr(req, ' ');
	path = sp ? sp + 1 : NULL;
	plen = path ? strcspn(path, " \r\n") : 0;
	if (!path || path[plen] != ' ' || strncmp(path + plen + 1, "HTTP/1.",
						  7) != 0) {
		answer_text(fd, "400 Bad Request", "bad request\n", 0);
		return;
	}
	head = strncmp(req, "HEAD ", 5) == 0;
	if (!head && strncmp(req, "GET ", 4) != 0) {
		answer_text(fd, "405 Method Not Allowed", "use GET\n", 0);
		return;
	}
	if (!is_metrics_path(path, plen)) {
		answer_text(fd, "404 Not Found", "not found; the metrics are "
			    "at /metrics\n", head);
		return;
	}
	buf_init(&o.b, ANSWER_MAX);
	build(m, &o);
	if (o.err)
		answer_text(fd, "500 Internal Server Error", "cannot read the "
			    "filesystem's state; see the mount's log\n", head);
	else
		answer(fd, "200 OK", "text/plain; version=0.0.4; "
		       "charset=utf-8", buf_data(&o.b), buf_len(&o.b), head);
	buf_release(&o.b);
}

static void set_timeouts(int fd)
{
	struct timeval tv = { REQ_TIMEOUT_MS / 1000,
			      (REQ_TIMEOUT_MS % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void *serve_main(void *arg)
{
	struct tool_metrics *m = arg;
	struct pollfd p[2] = { { m->fd, POLLIN, 0 }, { m->wake[0], POLLIN, 0 } };

	for (;;) {
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			PHI_LOG(PHI_LOG_ERR, "metrics: poll failed: %s",
				strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;	/* gone before we took it, or no fds */
		conn_deadline = phi_mono_ns() + CONN_TIMEOUT_MS * 1000000ull;
		set_timeouts(fd);
		serve_one(m, fd);
		close(fd);
	}
	return NULL;
}

/* --- lifecycle ---------------------------------------------------------- */

static int listen_on(const struct phi_listen *l)
{
	/* non-blocking: a connection reset between poll() and accept()
	 * must not leave the thread in accept(), deaf to its stop */
	int fd = socket(l->addr.ss_family,
			SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1, e;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->len) ||
	    listen(fd, 16)) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int tool_metrics_open(struct tool_metrics **out, const struct phi_config *cfg)
{
	struct tool_metrics *m;
	struct phi_listen l;
	const char *why;
	int fd;

	*out = NULL;
	if (!cfg->metrics_listen)
		return 0;
	why = phi_parse_listen(cfg->metrics_listen, &l);
	if (why) {	/* the config loader took it: cannot happen */
		tool_error("%s: metrics_listen: %s", cfg->path, why);
		return -1;
	}
	fd = listen_on(&l);
	if (fd < 0) {
		tool_error("%s: metrics_listen %s: cannot listen: %s",
			   cfg->path, cfg->metrics_listen, strerror(-fd));
		return -1;
	}
	m = calloc(1, sizeof(*m));
	if (!m || pipe2(m->wake, O_CLOEXEC)) {
		tool_error("cannot serve the metrics: %s", strerror(errno));
		free(m);
		close(fd);
		return -1;
	}
	m->cfg = cfg;
	m->fd = fd;
	*out = m;
	return 0;
}

int tool_metrics_start(struct tool_metrics *m, struct cache *c,
		       struct tool_lease *lease)
{
	sigset_t all, old;
	int rc;

	if (!m)
		return 0;
	m->c = c;
	m->lease = lease;
	/* Signals are for the FUSE loop and the sync handler, not us. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&m->thread, NULL, serve_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		PHI_LOG(PHI_LOG_ERR, "cannot start serving the metrics: %s",
			strerror(rc));
		return -rc;
	}
	m->running = 1;
	PHI_LOG(PHI_LOG_INFO, "metrics served on %s", m->cfg->metrics_listen);
	return 0;
}

void tool_metrics_close(struct tool_metrics *m)
{
	char byte = 0;

	if (!m)
		return;
	if (m->running) {
		if (write(m->wake[1], &byte, 1) != 1)
			PHI_LOG(PHI_LOG_WARNING, "metrics: cannot stop the "
				"thread: %s", strerror(errno));
		pthread_join(m->thread, NULL);
	}
	close(m->wake[0]);
	close(m->wake[1]);
	close(m->fd);
	free(m);
}
