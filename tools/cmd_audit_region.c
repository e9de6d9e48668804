/*
 * cmd_audit_region.c - the audit trail as the regions keep it: `phifs
 * audit verify CONFIG [--region NAME]`, and the region source of `phifs
 * audit CONFIG --region NAME` (the events of a region's segments instead
 * of cache_dir's table).
 *
 * Both need only the configuration and a key: the superblock is read
 * from cache_dir or a region (tool_unlock_any()), so they work on an
 * auditor's machine with no cache_dir.  Both are recorded in the trail
 * as a `query` event where this machine keeps one (tool_audit_command());
 * if that cannot be written, nothing is shown.
 */
#include "cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cache_admin.h"
#include "crypt.h"
#include "phi.h"

static const char verify_usage[] =
	"usage: phifs audit verify CONFIG [--region NAME]\n\n"
	"Check the audit trail as every region (or the one named) keeps it:\n"
	"every segment opens with the key (nothing altered), they follow each\n"
	"other with no event missing, each names the hash of the one before,\n"
	"and the last one is the head that the newest metadata object binds\n"
	"(nothing cut off the end).  Prints one line per problem, naming the\n"
	"region and the object, then a summary; exits 0 only when every "
	"region\nchecked is whole.\n";

/* The key, and the regions asked for (name NULL: all). */
struct aregions {
	struct crypt_key *key;
	uint8_t fsid[16];
	struct buf sb;
	struct backend *be[PHI_MAX_REGIONS];
	const char *names[PHI_MAX_REGIONS];
	int n;
};

static void aregions_close(struct aregions *a)
{
	for (int i = 0; i < a->n; i++)
		backend_close(a->be[i]);
	a->n = 0;
	crypt_key_free(a->key);
	a->key = NULL;
	buf_release(&a->sb);
}

/* Open region name (NULL: every region) of cfg and unlock the key.  0, or
 * -1 after printing why. */
static int aregions_open(const struct phi_config *cfg, const char *name,
			 struct aregions *a)
{
	int found = 0;

	memset(a, 0, sizeof(*a));
	buf_init(&a->sb, 1 << 20);
	for (int i = 0; i < cfg->nregions; i++) {
		char err[512];

		if (name && strcmp(cfg->regions[i].name, name))
			continue;
		found = 1;
		if (tool_region_open(cfg, i, &a->be[a->n], err, sizeof(err))) {
			tool_error("%s", err);
			aregions_close(a);
			return -1;
		}
		a->names[a->n++] = cfg->regions[i].name;
	}
	if (!found) {
		tool_error("%s: no region named '%s' in the configuration",
			   cfg->path, name ? name : "");
		aregions_close(a);
		return -1;
	}
	if (tool_unlock_any(cfg, &a->key, a->fsid, &a->sb)) {
		aregions_close(a);
		return -1;
	}
	return 0;
}

int tool_audit_region_walk(const struct phi_config *cfg, const char *name,
			   cache_audit_fn *fn, void *arg)
{
	struct aregions a;
	char why[512];
	int rc;

	if (aregions_open(cfg, name, &a))
		return -1;
	rc = cache_audit_region_walk(a.be[0], a.key, a.fsid, fn, arg);
	if (rc < 0) {
		tool_region_why(a.be[0], a.names[0], rc, why, sizeof(why));
		tool_error("region %s: cannot read the audit trail: %s (check "
			   "it with phifs audit verify)", a.names[0], why);
	}
	aregions_close(&a);
	return rc < 0 ? -1 : rc;
}

/* --- verify ------------------------------------------------------------ */

struct vline {
	const char *region;
};

static void print_problem(void *ctx, const char *line)
{
	const struct vline *v = ctx;

	printf("region %s: %s\n", v->region, line);
}

/* Verify each region of a; the number of problems, or -1 if one could not
 * be read (said). */
static long verify_all(struct aregions *a, uint64_t *segs, uint64_t *events)
{
	long problems = 0;
	int failed = 0;

	for (int i = 0; i < a->n; i++) {
		struct cache_audit_verify out;
		struct vline v = { a->names[i] };
		char why[512];
		int rc = cache_audit_region_verify(a->be[i], a->key, a->fsid,
						   print_problem, &v, &out);

		if (rc) {
			tool_region_why(a->be[i], a->names[i], rc, why,
					sizeof(why));
			printf("region %s: cannot be read: %s\n", a->names[i],
			       why);
			failed = 1;
			continue;
		}
		problems += (long)out.problems;
		if (out.segments > *segs)
			*segs = out.segments;
		if (out.events > *events)
			*events = out.events;
	}
	return failed ? -1 : problems;
}

static int parse_verify_args(int argc, char **argv, const char **config,
			     const char **region)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--region") == 0 && i + 1 < argc) {
			*region = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--region=", 9) == 0) {
			*region = argv[i] + 9;
			continue;
		}
		if (argv[i][0] == '-' || *config)
			return -1;
		*config = argv[i];
	}
	return *config ? 0 : -1;
}

static int run_verify(const struct phi_config *cfg, const char *region)
{
	uint64_t segs = 0, events = 0;
	char detail[128];
	struct aregions a;
	long problems;

	snprintf(detail, sizeof(detail), "verify%s%s", region ? " region=" :
		 "", region ? region : "");
	if (tool_audit_command(cfg, AUDIT_QUERY, 0, NULL, detail))
		return 1;
	if (aregions_open(cfg, region, &a))
		return 1;
	problems = verify_all(&a, &segs, &events);
	if (problems == 0)
		printf("audit trail: %" PRIu64 " segments, %" PRIu64 " events, "
		       "%d region%s: whole\n", segs, events, a.n,
		       a.n == 1 ? "" : "s");
	else
		printf("audit trail: %" PRIu64 " segments, %" PRIu64 " events, "
		       "%d region%s: %s\n", segs, events, a.n,
		       a.n == 1 ? "" : "s", problems < 0 ?
		       "a region could not be read" : "NOT whole");
	aregions_close(&a);
	fflush(stdout);
	return problems == 0 ? 0 : 1;
}

int cmd_audit_verify(int argc, char **argv)
{
	const char *config = NULL, *region = NULL;
	struct phi_config cfg;
	int rc;

	if (tool_want_help(argc, argv, verify_usage))
		return 0;
	if (parse_verify_args(argc, argv, &config, &region)) {
		tool_error("usage: phifs audit verify CONFIG [--region NAME]");
		return 2;
	}
	if (tool_load_config(config, &cfg))
		return 1;
	rc = run_verify(&cfg, region);
	phi_config_release(&cfg);
	return rc;
}
