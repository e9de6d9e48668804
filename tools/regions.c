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
		snprintf(err, errlen, "region %s: %s", r->name,
			 tool_strip_region(why, r->name));
		return -1;
	}
	if (faults && faults[0]) {
		snprintf(path, sizeof(path), "%s/%s", faults, r->name);
		rc = backend_fault_open_file(&be, be, path);
		if (rc) {
			snprintf(err, errlen, "region %s: %s", r->name,
				 phi_strerror(rc));
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

static int any_key(void *ctx, const char *key, uint64_t size)
{
	(void)ctx;
	(void)key;
	(void)size;
	return 1;
}

/* Whether be holds no pack and no metadata object (lease objects, which
 * a mount writes first, do not count). */
static int holds_nothing(struct backend *be)
{
	return backend_list(be, "d/", any_key, NULL) == 0 &&
	       backend_list(be, "m/", any_key, NULL) == 0;
}

/* Open region i and check it holds a superblock.  0, 1 (opened but not
 * answering: warned), or -1 (printed; *be closed).  With empty not NULL,
 * a region that answers with no superblock and no object is accepted
 * (warned) and *empty set. */
static int attach_one(const struct phi_config *cfg, int i,
		      struct backend **be, int *empty)
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
	if (rc == -ENOENT && empty && holds_nothing(*be)) {
		tool_warn("region %s is empty (new, or emptied): the mount "
			  "copies the filesystem into it in the background; "
			  "phifs status shows how far it got", name);
		*empty = 1;
		return 0;
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
	return tool_regions_attach_empty(cfg, out, NULL);
}

int tool_regions_attach_empty(const struct phi_config *cfg,
			      struct backend **out, int *empty)
{
	struct backend *be[PHI_MAX_REGIONS];
	int n = 0, rc;

	*out = NULL;
	if (cfg->nregions == 0)
		return 0;
	for (; n < cfg->nregions; n++) {
		if (empty)
			empty[n] = 0;
		if (attach_one(cfg, n, &be[n], empty ? &empty[n] : NULL) < 0) {
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

/* ---- the regions' superblocks ----------------------------------------- */

int tool_super_judge(const struct buf *sb, const struct crypt_key *key,
		     const uint8_t *fsid, char *why, size_t len)
{
	struct crypt_super_info info;
	char hex[33];
	int rc;

	if (buf_len(sb) != CRYPT_SUPER_SIZE) {
		snprintf(why, len, "%zu bytes, where a superblock has %d: "
			 "truncated or overwritten", buf_len(sb),
			 CRYPT_SUPER_SIZE);
		return PHI_ECORRUPT;
	}
	rc = crypt_super_parse(buf_data(sb), buf_len(sb), &info);
	if (rc == PHI_EVERSION) {
		snprintf(why, len, "a format version this phifs cannot read");
		return PHI_ECORRUPT;
	}
	if (rc) {
		snprintf(why, len, "garbled: not a phifs superblock");
		return PHI_ECORRUPT;
	}
	if (fsid && memcmp(info.fsid, fsid, 16) != 0) {
		tool_fsid_hex(info.fsid, hex);
		snprintf(why, len, "it is the superblock of another "
			 "filesystem, %s", hex);
		return PHI_ECORRUPT;
	}
	rc = key ? crypt_super_verify(buf_data(sb), buf_len(sb), key) : 0;
	if (rc == PHI_ECORRUPT)
		snprintf(why, len, "damaged or altered: its MAC does not "
			 "verify");
	else if (rc)
		snprintf(why, len, "cannot check it: %s", phi_strerror(rc));
	return rc;
}

int tool_region_super_check(struct backend *be, const char *name,
			    const struct crypt_key *key, const uint8_t *fsid,
			    char *why, size_t len)
{
	struct buf sb;
	int rc;

	/* a larger object is no superblock either: -E2BIG */
	buf_init(&sb, CRYPT_SUPER_SIZE);
	rc = backend_get(be, "superblock", 0, 0, &sb);
	if (rc == 0)
		rc = tool_super_judge(&sb, key, fsid, why, len);
	else if (rc == -E2BIG)
		snprintf(why, len, "more than %d bytes, the size of a "
			 "superblock", CRYPT_SUPER_SIZE);
	else if (rc == -ENOENT)
		snprintf(why, len, "it holds none");
	else
		tool_region_why(be, name, rc, why, len);
	buf_release(&sb);
	return rc == -E2BIG ? PHI_ECORRUPT : rc;
}

int tool_regions_check_super(const struct phi_config *cfg,
			     struct backend *regions,
			     const struct crypt_key *key, const struct buf *sb)
{
	char why[PHI_MAX_REGIONS][300], all[2048] = "";
	struct crypt_super_info info;
	int rcs[PHI_MAX_REGIONS], n, good = 0, bad = 0;

	if (!regions)
		return 0;
	if (crypt_super_parse(buf_data(sb), buf_len(sb), &info)) {
		tool_error("%s/superblock: not a superblock this phifs can "
			   "read", cfg->cache_dir);
		return -1;
	}
	n = backend_replica_count(regions);
	if (n > cfg->nregions)
		n = cfg->nregions;
	for (int i = 0; i < n; i++) {
		rcs[i] = tool_region_super_check(
			backend_replica_region(regions, i),
			cfg->regions[i].name, key, info.fsid, why[i],
			sizeof(why[i]));
		good += rcs[i] == 0;
		bad += rcs[i] == PHI_ECORRUPT;
	}
	for (int i = 0; i < n && bad && good; i++)
		if (rcs[i] == PHI_ECORRUPT)
			tool_warn("corrupt superblock in region %s (%s); "
				  "mounting with the good copy of the other "
				  "regions", cfg->regions[i].name, why[i]);
	if (!bad || good)
		return 0;
	for (int i = 0; i < n; i++) {
		size_t at = strlen(all);

		snprintf(all + at, sizeof(all) - at, "%sregion %.40s: %.160s",
			 i ? "; " : "", cfg->regions[i].name, why[i]);
	}
	tool_error("no region holds a good superblock (%s); refusing to "
		   "mount", all);
	return -1;
}
