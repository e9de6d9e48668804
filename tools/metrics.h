/*
 * metrics.h - the mount's Prometheus endpoint (metrics_listen).
 *
 * With metrics_listen set, the process serving a mount answers
 * `GET /metrics` over plain HTTP with the text exposition format 0.0.4:
 * what the cache holds and lacks (cache_stats()), what it has counted
 * (cache_counters()), the FUSE requests served (fs_op_stats()) and the
 * age of the lease.  Every other path is 404.  One thread serves one
 * connection at a time, each bounded by a short timeout; the answer is
 * built afresh for every request from calls that are safe on any thread.
 *
 * Lifecycle, in the daemon: tool_metrics_open() before anything reaches
 * a region (so that a port in use stops the mount with one line while
 * stderr is still the user's), tool_metrics_start() once the mount
 * answers, tool_metrics_close() before the cache closes.
 */
#ifndef TOOL_METRICS_H
#define TOOL_METRICS_H

struct cache;
struct phi_config;
struct tool_lease;
struct tool_metrics;

/*
 * Listen on cfg->metrics_listen.  *out is NULL when the key is unset.
 * 0, or -1 after printing one line ("...: metrics_listen 127.0.0.1:9101:
 * cannot listen: Address already in use").  cfg must outlive *out.
 */
int tool_metrics_open(struct tool_metrics **out, const struct phi_config *cfg);

/*
 * Serve from a thread of its own: c (open read-write) and lease (NULL
 * for none) are borrowed until tool_metrics_close().  NULL m is a no-op.
 * 0, or a negative errno (logged; the mount goes on without metrics).
 */
int tool_metrics_start(struct tool_metrics *m, struct cache *c,
		       struct tool_lease *lease);

/* Stop serving (a request under way is finished first), close the
 * socket, free m.  NULL is a no-op. */
void tool_metrics_close(struct tool_metrics *m);

#endif
