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

/* The local cache, read-only, its sealed store read with key (NULL: a
 * plain store only); NULL (and *none set) when this machine has no
 * filesystem in cache_dir. */
static struct cache *open_local(const struct phi_config *cfg,
				const struct crypt_key *key, int *none)
{
	struct cache_config cc;
	struct cache *c;
	int rc;

	*none = 0;
	tool_cache_config(cfg, &cc);
	cc.key = key;
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
	struct crypt_key *key = NULL;
	uint8_t fsid[16];
	struct buf sb;
	struct cache *c;
	int none;
	long n;

	/* the key reads a sealed store, and any store's block records
	 * (their lengths and checksums are masked): opened without it
	 * first, to learn whether there is a filesystem here at all */
	c = open_local(cfg, NULL, &none);
	if (c) {
		cache_close(c);
		buf_init(&sb, SIZE_MAX);
		c = tool_unlock_any(cfg, &key, fsid, &sb) ? NULL :
		    open_local(cfg, key, &none);
		buf_release(&sb);
	}
	if (!c) {
		crypt_key_free(key);
		return none ? 0 : -1;
	}
	n = cache_verify_local(c, print_line, NULL, &res);
	cache_close(c);
	crypt_key_free(key);
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

/*
 * A mount goes on sealing while the scrub runs: a segment it sends after
 * the region's history was read, and before the local metadata was, makes
 * the region look behind without being so.  Such a comparison is made
 * again, with the history read anew; only the last attempt's lines are
 * printed.  A region still behind then is missing metadata this machine
 * recorded as replicated, and that is a problem.
 */
#define COMPARE_TRIES 3

struct compare_ctx {
	const struct phi_config *cfg;
	const char *region;
	int last;		/* the last attempt: report whatever it finds */
	char **lines;		/* what this attempt found, to print at the end */
	size_t nlines, caplines;
	int nomem;
	struct tool_progress prog;	/* reading, then comparing */
	char label[96];
};

/* The report goes to keep_line(), which prints nothing: ctx is the
 * compare_ctx for both. */
static void compare_progress(void *ctx, const char *what, uint64_t done,
			     uint64_t total)
{
	struct compare_ctx *x = ctx;

	tool_progress_show(&x->prog, what, done, total);
}

static void keep_line(void *ctx, const char *line)
{
	struct compare_ctx *x = ctx;
	char *copy;

	if (x->nlines == x->caplines) {
		size_t cap = x->caplines ? 2 * x->caplines : 64;
		char **v = realloc(x->lines, cap * sizeof(*v));

		if (!v) {
			x->nomem = 1;
			return;
		}
		x->lines = v;
		x->caplines = cap;
	}
	copy = strdup(line);
	if (!copy) {
		x->nomem = 1;
		return;
	}
	x->lines[x->nlines++] = copy;
}

/* Print the kept lines (or only drop them) and forget them. */
static void flush_kept(struct compare_ctx *x, int print)
{
	for (size_t i = 0; i < x->nlines; i++) {
		if (print)
			printf("%s\n", x->lines[i]);
		free(x->lines[i]);
	}
	free(x->lines);
	if (print && x->nomem)
		printf("(some lines were lost: out of memory)\n");
	x->lines = NULL;
	x->nlines = x->caplines = 0;
	x->nomem = 0;
	fflush(stdout);
}

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
	cc.key = h->key;	/* its names are sealed as this cache's */
	rc = cache_open(out, &cc, CACHE_OPEN_RDONLY);
	if (rc)
		tool_error("cannot open the rebuilt metadata of region %s: %s",
			   tool_history_region(h), phi_strerror(rc));
	return rc ? -1 : 0;
}

static void summary(const char *region, const struct cache_compare_result *r)
{
	if (r->differ && !r->was_pending && r->seq_there < r->seq_here)
		printf("region %s: its latest metadata is object %llu; this "
		       "machine recorded up to %llu as replicated\n", region,
		       (unsigned long long)r->seq_there,
		       (unsigned long long)r->seq_here);
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

/* In the scratch child: 0 equal, 1 differs, 2 could not compare, 3 the
 * region's history moved on while it was read: try again. */
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

	if (tool_history_open(x->cfg, x->region, &h))
		return 2;
	c = open_local(x->cfg, h.key, &none);
	if (!c) {
		tool_history_close(&h);
		return none ? 0 : 2;
	}
	tool_history_args(&h, dir, INT64_MAX, &ra);
	snprintf(x->label, sizeof(x->label), "reading region %s",
		 tool_history_region(&h));
	tool_progress_init(&x->prog, x->label);
	ra.progress = tool_progress_show;
	ra.progress_ctx = &x->prog;
	rc = cache_recover(&ra, &info);
	tool_progress_end(&x->prog);
	if (rc)
		rc = tool_history_error(&h, INT64_MAX, rc);
	if (rc == 0)
		rc = open_view(x->cfg, &h, dir, &view);
	if (rc == 0) {
		ca.region = backend_replica_region(h.set, h.chosen);
		ca.label = tool_history_region(&h);
		ca.key = h.key;
		ca.report = keep_line;
		ca.ctx = x;
		ca.progress = compare_progress;
		snprintf(x->label, sizeof(x->label), "comparing with region "
			 "%s", ca.label);
		tool_progress_init(&x->prog, x->label);
		n = cache_compare(c, view, &ca, &res);
		tool_progress_end(&x->prog);
		if (n > 0 && !res.was_pending &&
		    res.seq_there < res.seq_here && !x->last) {
			flush_kept(x, 0);
			rc = 3;
		} else if (n < 0) {
			flush_kept(x, 1);
			tool_error("cannot compare with region %s: %s",
				   ca.label, phi_strerror((int)n));
			rc = -1;
		} else {
			flush_kept(x, 1);
			summary(ca.label, &res);
			rc = n ? 1 : 0;
		}
		cache_close(view);
	}
	cache_close(c);		/* before the key it reads with */
	tool_history_close(&h);
	return rc < 0 ? 2 : rc;
}

int tool_verify_regions(const struct phi_config *cfg, long *problems)
{
	int status = 0;

	for (int i = 0; i < cfg->nregions; i++) {
		struct compare_ctx x = { .cfg = cfg,
					 .region = cfg->regions[i].name };
		int rc = 3;

		for (int t = 0; rc == 3 && t < COMPARE_TRIES; t++) {
			x.last = t == COMPARE_TRIES - 1;
			rc = tool_with_scratch(cfg, compare_in, &x);
		}
		if (rc)
			(*problems)++;
		if (rc > 1)
			status = -1;
	}
	return status;
}
