/*
 * verify.c - the end-to-end part of `phifs fsck --scrub`: the local store
 * against its checksums, then every file of this machine against each
 * region's latest metadata, byte for byte (cache_verify_local(),
 * cache_compare()).
 *
 * Each region's history is rebuilt in a scratch folder, in a child
 * process (tool_with_scratch()), which prints its findings and says by
 * its exit status whether the region matched.  Lines name paths: this is
 * the user's own terminal, never a log.
 */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
	fflush(stdout);
}

/* The local cache, read-only; NULL (and *none set) when this machine has
 * no filesystem in cache_dir. */
static struct cache *open_local(const struct phi_config *cfg, int *none)
{
	struct cache_config cc;
	struct cache *c;
	int rc;

	*none = 0;
	tool_cache_config(cfg, &cc);
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	if (rc == PHI_ENOFS) {
		*none = 1;
		return NULL;
	}
	if (rc) {
		tool_cache_error(cfg, rc);
		return NULL;
	}
	return c;
}

int tool_verify_local(const struct phi_config *cfg, long *problems)
{
	struct cache_verify_result res;
	struct cache *c;
	int none;
	long n;

	c = open_local(cfg, &none);
	if (!c)
		return none ? 0 : -1;
	n = cache_verify_local(c, print_line, NULL, &res);
	cache_close(c);
	if (n < 0) {
		tool_error("cannot check the local store: %s",
			   phi_strerror((int)n));
		return -1;
	}
	printf("local store: %llu files, %llu blocks checked; %llu damaged, "
	       "%llu with unrecorded data",
	       (unsigned long long)res.files, (unsigned long long)res.blocks,
	       (unsigned long long)res.damaged,
	       (unsigned long long)res.unrecorded);
	if (res.unsummed)
		printf(", %llu sealed before checksums (not checkable here)",
		       (unsigned long long)res.unsummed);
	printf("\n");
	*problems += n;
	return 0;
}

struct compare_ctx {
	const struct phi_config *cfg;
	const char *region;
};

/* Open the rebuilt copy in dir read-only. */
static int open_view(const struct phi_config *cfg,
		     const struct tool_history *h, const char *dir,
		     struct cache **out)
{
	struct cache_config cc;
	int rc;

	tool_cache_config(cfg, &cc);
	cc.dir = dir;
	cc.block_size = h->info.block_size;
	rc = cache_open(out, &cc, CACHE_OPEN_RDONLY);
	if (rc)
		tool_error("cannot open the rebuilt metadata of region %s: %s",
			   tool_history_region(h), phi_strerror(rc));
	return rc ? -1 : 0;
}

static void summary(const char *region, const struct cache_compare_result *r)
{
	printf("region %s: %llu files, %llu blocks compared with this "
	       "machine; %llu differ", region,
	       (unsigned long long)r->files, (unsigned long long)r->blocks,
	       (unsigned long long)r->differ);
	if (r->was_pending)
		printf("; local changes not yet replicated (%llu difference%s "
		       "from them): run phifs sync first for a full proof",
		       (unsigned long long)r->pending,
		       r->pending == 1 ? "" : "s");
	printf("\n");
}

/* In the scratch child: 0 equal, 1 differs, 2 could not compare. */
static int compare_in(void *arg, const char *dir)
{
	struct compare_ctx *x = arg;
	struct cache_compare_result res;
	struct cache_compare_args ca = { 0 };
	struct cache_recover_info info;
	struct cache_recover_args ra;
	struct tool_history h;
	struct cache *c, *view = NULL;
	int none, rc;
	long n;

	c = open_local(x->cfg, &none);
	if (!c)
		return none ? 0 : 2;
	if (tool_history_open(x->cfg, x->region, &h)) {
		cache_close(c);
		return 2;
	}
	tool_history_args(&h, dir, INT64_MAX, &ra);
	rc = cache_recover(&ra, &info);
	if (rc)
		rc = tool_history_error(&h, INT64_MAX, rc);
	if (rc == 0)
		rc = open_view(x->cfg, &h, dir, &view);
	if (rc == 0) {
		ca.region = backend_replica_region(h.set, h.chosen);
		ca.label = tool_history_region(&h);
		ca.key = h.key;
		ca.report = print_line;
		n = cache_compare(c, view, &ca, &res);
		if (n < 0) {
			tool_error("cannot compare with region %s: %s",
				   ca.label, phi_strerror((int)n));
			rc = -1;
		} else {
			summary(ca.label, &res);
			rc = n ? 1 : 0;
		}
		cache_close(view);
	}
	tool_history_close(&h);
	cache_close(c);
	return rc < 0 ? 2 : rc;
}

int tool_verify_regions(const struct phi_config *cfg, long *problems)
{
	int status = 0;

	for (int i = 0; i < cfg->nregions; i++) {
		struct compare_ctx x = { cfg, cfg->regions[i].name };
		int rc = tool_with_scratch(cfg, compare_in, &x);

		if (rc)
			(*problems)++;
		if (rc > 1)
			status = -1;
	}
	return status;
}
