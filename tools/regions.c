/*
 * regions.c - opening the regions of a configuration for the phifs
 * command.
 *
 * Every command opens a region through tool_region_open(), which is also
 * where the test hook lives: with PHIFS_FAULT_DIR set in the environment,
 * each region is wrapped in a fault backend that reads its settings from
 * $PHIFS_FAULT_DIR/<region name> (backend_fault_open_file()), so a test
 * can make one region of a running mount fail, stall or lie.  The hook is
 * for tests only, honoured only in a build with test hooks (hooks.h), and
 * left out of the user help on purpose.
 */
#include "cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hooks.h"
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
	const struct backend_region *r = &cfg->regions[i];
	const char *faults = tool_test_env("PHIFS_FAULT_DIR");
	char why[512], path[4200];
	struct backend *be;
	int rc;

	*out = NULL;
	rc = backend_open_region(&be, r, why, sizeof(why));
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

	if (!crypt_super_size_known(buf_len(sb))) {
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
	if (rc == -ESTALE)
		return 0;	/* of a key generation newer than key: a
				   rotation since; the serial says newer */
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

int tool_super_newer(struct backend *const *be, int n,
		     const struct crypt_key *key, const struct buf *sb,
		     struct buf *newer, int *which)
{
	struct crypt_super_info mine, info;
	uint64_t best;
	struct buf copy;
	int found = 0, rc;

	if (crypt_super_parse(buf_data(sb), buf_len(sb), &mine))
		return 0;
	best = mine.serial;
	buf_init(&copy, CRYPT_SUPER_SIZE);
	for (int i = 0; i < n; i++) {
		buf_reset(&copy);
		if (!be[i] ||
		    backend_get(be[i], "superblock", 0, 0, &copy) ||
		    crypt_super_parse(buf_data(&copy), buf_len(&copy),
				      &info) ||
		    memcmp(info.fsid, mine.fsid, 16) != 0 ||
		    info.serial <= best)
			continue;
		/* a newer key generation cannot be checked with key, but
		 * it is newer: a slot's secret checks it (tool_unlock()) */
		rc = crypt_super_verify(buf_data(&copy), buf_len(&copy), key);
		if (rc && rc != -ESTALE)
			continue;
		buf_reset(newer);
		if (buf_add(newer, buf_data(&copy), buf_len(&copy)))
			continue;
		best = info.serial;
		*which = i;
		found = 1;
	}
	buf_release(&copy);
	return found;
}

/* ---- places ------------------------------------------------------------ */

enum place_kind { PLACE_CACHE, PLACE_REGION, PLACE_LOG, PLACE_MOUNT };

struct place {
	enum place_kind kind;
	const char *name;	/* PLACE_REGION: the region's */
	char path[PATH_MAX];	/* canon_path() */
};

/* Append one component to the canonical path out (len bytes). */
static int canon_append(char *out, size_t len, const char *comp, size_t n)
{
	size_t at = strlen(out);
	char *slash;

	if (n == 0 || (n == 1 && comp[0] == '.'))
		return 0;
	if (n == 2 && comp[0] == '.' && comp[1] == '.') {
		slash = strrchr(out, '/');
		if (slash == out)
			out[1] = '\0';		/* "/a/.." is "/", as is "/.." */
		else if (slash)
			*slash = '\0';
		return 0;
	}
	if (at > 1)
		out[at++] = '/';
	if (at + n >= len)
		return -ENAMETOOLONG;
	memcpy(out + at, comp, n);
	out[at + n] = '\0';
	return 0;
}

/*
 * The absolute path as the kernel would resolve it, also when its end
 * does not exist yet: realpath() of the longest prefix that resolves,
 * then the rest, which holds no symlink (it does not exist), cleaned of
 * "." and "..".  0 or a negative errno.
 */
static int canon_path(const char *path, char out[PATH_MAX])
{
	size_t keep = strlen(path);
	char head[PATH_MAX];
	const char *rest;

	if (path[0] != '/' || keep >= sizeof(head))
		return -EINVAL;
	for (;;) {
		memcpy(head, path, keep);
		head[keep] = '\0';
		if (realpath(keep ? head : "/", out))
			break;
		if (keep == 0)
			return -errno;
		/* drop the last component and the slashes around it */
		while (keep > 0 && path[keep - 1] == '/')
			keep--;
		while (keep > 0 && path[keep - 1] != '/')
			keep--;
		while (keep > 0 && path[keep - 1] == '/')
			keep--;
	}
	for (rest = path + keep; *rest; ) {
		size_t n = strcspn(rest, "/");

		if (canon_append(out, PATH_MAX, rest, n))
			return -ENAMETOOLONG;
		rest += n;
		rest += strspn(rest, "/");
	}
	return 0;
}

/* a is inside b (not equal). */
static int inside(const char *a, const char *b)
{
	size_t n = strlen(b);

	if (strcmp(b, "/") == 0)
		return strcmp(a, "/") != 0;
	return strncmp(a, b, n) == 0 && a[n] == '/';
}

static void place_label(const struct place *p, char *out, size_t len)
{
	switch (p->kind) {
	case PLACE_CACHE:
		snprintf(out, len, "cache_dir %s", p->path);
		break;
	case PLACE_REGION:
		snprintf(out, len, "region %s (%s)", p->name, p->path);
		break;
	case PLACE_LOG:
		snprintf(out, len, "log_file %s", p->path);
		break;
	case PLACE_MOUNT:
		snprintf(out, len, "the mountpoint %s", p->path);
		break;
	}
}

/* Whether a and b may not be the same folder or one inside the other.
 * log_file may be anywhere but inside a region or the mountpoint. */
static int must_be_apart(const struct place *a, const struct place *b)
{
	if (a->kind == PLACE_LOG || b->kind == PLACE_LOG)
		return a->kind == PLACE_REGION || b->kind == PLACE_REGION ||
		       a->kind == PLACE_MOUNT || b->kind == PLACE_MOUNT;
	return 1;
}

/* One line if a and b overlap where they must not.  0 or -1. */
static int check_pair(const struct phi_config *cfg, const struct place *a,
		      const struct place *b)
{
	char la[PATH_MAX + 96], lb[PATH_MAX + 96];
	int same = strcmp(a->path, b->path) == 0;

	if (!must_be_apart(a, b))
		return 0;
	if (inside(b->path, a->path)) {		/* make it: a inside b */
		const struct place *t = a;

		a = b;
		b = t;
	}
	/* nothing is inside a file */
	if (!same && (!inside(a->path, b->path) || b->kind == PLACE_LOG))
		return 0;
	place_label(a, la, sizeof(la));
	place_label(b, lb, sizeof(lb));
	if (!same)
		tool_error("%s: %s is inside %s", cfg->path, la, lb);
	else if (a->kind == PLACE_REGION && b->kind == PLACE_REGION)
		tool_error("%s: %s and %s are the same folder: one copy, not "
			   "two", cfg->path, la, lb);
	else
		tool_error("%s: %s and %s are the same folder", cfg->path, la,
			   lb);
	return -1;
}

struct live_check {
	const struct phi_config *cfg;
	const struct place *p;
	int n;
};

/* A phifs mount must not hold this filesystem's cache, regions or log:
 * recover once wrote a filesystem into a live mount. */
static int check_live(void *ctx, const char *mp, const char *type,
		      const char *source, const char *dev)
{
	const struct live_check *lc = ctx;
	char label[PATH_MAX + 96];

	(void)source;
	(void)dev;
	if (strcmp(type, "fuse.phifs") != 0)
		return 0;
	for (int i = 0; i < lc->n; i++) {
		const struct place *p = &lc->p[i];

		if (p->kind == PLACE_MOUNT ||
		    (strcmp(p->path, mp) != 0 && !inside(p->path, mp)))
			continue;
		place_label(p, label, sizeof(label));
		tool_error("%s: %s is inside the phifs mount at %s (keep it "
			   "outside every mount)", lc->cfg->path, label, mp);
		return 1;
	}
	return 0;
}

static int add_place(const struct phi_config *cfg, struct place *p,
		     enum place_kind kind, const char *name, const char *path)
{
	int rc;

	p->kind = kind;
	p->name = name;
	rc = canon_path(path, p->path);
	if (rc == 0)
		return 0;
	tool_error("%s: %s: %s", cfg->path, path, phi_strerror(rc));
	return -1;
}

/* Two s3: regions naming one bucket and prefix of one server. */
static int check_s3_twins(const struct phi_config *cfg)
{
	struct backend_url u[PHI_MAX_REGIONS];
	char why[256];

	for (int i = 0; i < cfg->nregions; i++) {
		const struct backend_region *a = &cfg->regions[i];

		if (backend_url_parse(a->url, &u[i], why, sizeof(why)))
			u[i].kind = BACKEND_DIR;	/* checked elsewhere */
		for (int j = 0; u[i].kind == BACKEND_S3 && j < i; j++) {
			const struct backend_region *b = &cfg->regions[j];

			if (u[j].kind != BACKEND_S3 ||
			    strcmp(u[i].bucket, u[j].bucket) != 0 ||
			    strcmp(u[i].prefix, u[j].prefix) != 0 ||
			    strcmp(a->endpoint ? a->endpoint : "",
				   b->endpoint ? b->endpoint : "") != 0 ||
			    strcmp(a->region ? a->region : "",
				   b->region ? b->region : "") != 0)
				continue;
			tool_error("%s: regions %s and %s are the same bucket "
				   "and prefix: one copy, not two", cfg->path,
				   b->name, a->name);
			return -1;
		}
	}
	return 0;
}

int tool_check_places(const struct phi_config *cfg, const char *mountpoint)
{
	struct place p[PHI_MAX_REGIONS + 3];
	struct live_check lc = { cfg, p, 0 };
	struct backend_url u;
	char why[256];
	int n = 0;

	if (check_s3_twins(cfg) ||
	    add_place(cfg, &p[n++], PLACE_CACHE, NULL, cfg->cache_dir))
		return -1;
	for (int i = 0; i < cfg->nregions; i++) {
		const struct backend_region *r = &cfg->regions[i];

		if (backend_url_parse(r->url, &u, why, sizeof(why)) ||
		    u.kind != BACKEND_DIR)
			continue;
		if (add_place(cfg, &p[n++], PLACE_REGION, r->name, u.path))
			return -1;
	}
	if (cfg->log_file &&
	    add_place(cfg, &p[n++], PLACE_LOG, NULL, cfg->log_file))
		return -1;
	if (mountpoint &&
	    add_place(cfg, &p[n++], PLACE_MOUNT, NULL, mountpoint))
		return -1;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (check_pair(cfg, &p[i], &p[j]))
				return -1;
	lc.n = n;
	/* without /proc there is nothing to compare with */
	return tool_mounts_each(check_live, &lc) == 1 ? -1 : 0;
}
