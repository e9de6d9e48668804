/*
 * hist.h - a latency histogram that any thread may add to without a lock.
 *
 * Fixed buckets (PHI_HIST_BOUNDS_NS, 100 us to 10 s, and one above) so
 * that every histogram of the process has the same shape, as Prometheus
 * wants of one metric.  Each bucket is an atomic counter: phi_hist_add()
 * is two relaxed atomic adds.  A histogram of zero bytes (static, calloc)
 * is empty and ready; there is nothing to release.
 */
#ifndef PHI_HIST_H
#define PHI_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define PHI_HIST_BUCKETS 16	/* finite upper bounds; one more for +Inf */

/* The upper bounds of the buckets in nanoseconds, ascending. */
extern const uint64_t phi_hist_bounds_ns[PHI_HIST_BUCKETS];

struct phi_hist {
	atomic_uint_fast64_t n[PHI_HIST_BUCKETS + 1];	/* not cumulative */
	atomic_uint_fast64_t sum_ns;
};

/* What a histogram held at one moment: cumulative counts by bound, as
 * the exposition format lists them; cum[PHI_HIST_BUCKETS] is the count
 * of all. */
struct phi_hist_snap {
	uint64_t cum[PHI_HIST_BUCKETS + 1];
	uint64_t sum_ns;
};

/* Count one observation of ns nanoseconds.  Any thread; no lock. */
void phi_hist_add(struct phi_hist *h, uint64_t ns);

/* Copy h into *out.  Each counter is read once; additions made
 * meanwhile may be partly in it (the count always equals the last
 * bucket's). */
void phi_hist_read(const struct phi_hist *h, struct phi_hist_snap *out);

#endif
