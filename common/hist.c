/*
 * hist.c - lock-free latency histograms (hist.h).
 *
 * Buckets are stored apart and summed on reading, so an addition touches
 * one bucket and the sum, and a reader never sees a count that runs
 * backwards.
 */
#include "hist.h"

const uint64_t phi_hist_bounds_ns[PHI_HIST_BUCKETS] = {
	100000, 250000, 500000,				/* 100 us .. */
	1000000, 2500000, 5000000,			/* 1 ms .. */
	10000000, 25000000, 50000000,			/* 10 ms .. */
	100000000, 250000000, 500000000,		/* 100 ms .. */
	1000000000, 2500000000u, 5000000000u, 10000000000u,	/* 1 s .. */
};

void phi_hist_add(struct phi_hist *h, uint64_t ns)
{
	int i = 0;

	while (i < PHI_HIST_BUCKETS && ns > phi_hist_bounds_ns[i])
		i++;
	atomic_fetch_add_explicit(&h->n[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void phi_hist_read(const struct phi_hist *h, struct phi_hist_snap *out)
{
	uint64_t total = 0;

	for (int i = 0; i <= PHI_HIST_BUCKETS; i++) {
		total += atomic_load_explicit(&h->n[i], memory_order_relaxed);
		out->cum[i] = total;
	}
	out->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}
