/*
 * regions.c - opening the regions of a configuration for the phifs
 * command.
 *
 * Every command opens a region through tool_region_open(), which is also
 * where the test hook lives: with PHIFS_FAULT_DIR set in the environment,
 * each region is wrapped in a fault backend that reads its settings from
 * $PHIFS_FAULT_DIR/<region name> (backend_fault_open_file()), so a test
 * can make one region of a running mount fail, stall or lie.  The hook is
 * for tests only and is left out of the user help on purpose.
 */
#include "cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "phi.h"

/* "region NAME: why" into err.  A reason too long for err is cut, and the
 * cut shown with "...": the region's name always survives. */
static void region_error(char *err, size_t errlen, const char *name,
			 const char *why)
{
	int n = snprintf(err, errlen, "region %s: %s", name, why);

	if (n >= 0 && (size_t)n >= errlen && errlen > 4)
		memcpy(err + errlen - 4, "...", 4);
}

int tool_region_open(const struct phi_config *cfg, int i,
		     struct backend **out, char *err, size_t errlen)
{
	const struct phi_region *r = &cfg->regions[i];
	struct phi_region_settings rs = {
		.name = r->name, .url = r->url, .endpoint = r->endpoint,
		.region = r->region, .path_style = r->path_style,
		.allow_http = r->allow_http,
		.credentials_file = r->credentials_file, .ca_file = r->ca_file,
	};
	const char *faults = getenv("PHIFS_FAULT_DIR");
	char why[512], path[4200];
	struct backend *be;
	int rc;

	*out = NULL;
	rc = backend_open_region(&be, &rs, why, sizeof(why));
	if (rc) {
		region_error(err, errlen, r->name,
			     tool_strip_region(why, r->name));
		return -1;
	}
	if (faults && faults[0]) {
		snprintf(path, sizeof(path), "%s/%s", faults, r->name);
		rc = backend_fault_open_file(&be, be, path);
		if (rc) {
			region_error(err, errlen, r->name, phi_strerror(rc));
			return -1;
		}
	}
	*out = be;
	return 0;
}

const char *tool_strip_region(const char *msg, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(msg, "region ", 7) == 0 &&
	    strncmp(msg + 7, name, n) == 0 && strncmp(msg + 7 + n, ": ", 2) == 0)
		return msg + 7 + n + 2;
	return msg;
}

void tool_region_why(struct backend *be, const char *name, int rc,
		     char *out, size_t len)
{
	/* A missing object is an answer, not a failure: the driver keeps
	 * no message for it, and an older one would mislead. */
	const char *msg = rc == -ENOENT ? "" : backend_last_error(be);

	if (msg[0])
		snprintf(out, len, "%s", tool_strip_region(msg, name));
	else
		snprintf(out, len, "%s", phi_strerror(rc));
}

/* A region that does not answer at all may come back; one that answers
 * "no" (credentials, bucket, no superblock) is a configuration error. */
static int unanswered(int rc)
{
	return rc == PHI_EUNREACHABLE || rc == -ETIMEDOUT;
}

/* Open region i and check it holds a superblock.  0, 1 (opened but not
 * answering: warned), or -1 (printed; *be closed). */
static int attach_one(const struct phi_config *cfg, int i,
		      struct backend **be)
{
	const char *name = cfg->regions[i].name;
	char why[512];
	uint64_t size;
	int rc;

	if (tool_region_open(cfg, i, be, why, sizeof(why))) {
		tool_error("%s", why);
		return -1;
	}
	rc = backend_head(*be, "superblock", &size);
	if (rc == 0)
		return 0;
	tool_region_why(*be, name, rc, why, sizeof(why));
	if (unanswered(rc)) {
		tool_warn("region %s does not answer (%s); going on without "
			  "it: what it lacks waits until it is back", name,
			  why);
		return 1;
	}
	if (rc == -ENOENT)
		tool_error("region %s holds no superblock: it is not a region "
			   "of this filesystem (check its url) or it was "
			   "emptied", name);
	else
		tool_error("region %s: cannot read its superblock: %s", name,
			   why);
	backend_close(*be);
	*be = NULL;
	return -1;
}

int tool_regions_attach(const struct phi_config *cfg, struct backend **out)
{
	struct backend *be[PHI_MAX_REGIONS];
	int n = 0, rc;

	*out = NULL;
	if (cfg->nregions == 0)
		return 0;
	for (; n < cfg->nregions; n++) {
		if (attach_one(cfg, n, &be[n]) < 0) {
			while (n > 0)
				backend_close(be[--n]);
			return -1;
		}
	}
	/* The set takes the regions, on failure too. */
	rc = backend_replica_open(out, be, n);
	if (rc) {
		tool_error("cannot open the regions: %s", phi_strerror(rc));
		return -1;
	}
	return 0;
}

void tool_region_stats(const struct phi_config *cfg,
		       const struct cache_stats *s, int i,
		       struct cache_region_stats *out)
{
	int n = s->nregions < 16 ? s->nregions : 16;

	for (int j = 0; j < n; j++) {
		if (strcmp(s->regions[j].name, cfg->regions[i].name) == 0) {
			*out = s->regions[j];
			return;
		}
	}
	/* The replica set is built in config order, and the cache may
	 * know its regions only by position. */
	if (n == cfg->nregions && i < n)
		*out = s->regions[i];
	else
		memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", cfg->regions[i].name);
}
