/*
 * cmd_check.c - phifs fsck CONFIG [--scrub] [--repair] and
 * phifs gc CONFIG [--dry-run].
 *
 * fsck checks the local metadata (a read-only open: it works while
 * mounted).  --scrub fetches and authenticates every object in every
 * region; --repair (which implies --scrub) copies good copies over bad or
 * missing ones.  gc deletes what no moment within `retention` needs, with
 * the regions opened with gc_credentials_file where a region has one.
 * Both may run on a machine without the filesystem: the superblock then
 * comes from a region.  Reports name object keys and inode numbers only.
 */
#include "cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

static const char fsck_usage[] =
	"usage: phifs fsck CONFIG [--scrub] [--repair]\n\n"
	"Check the local metadata of the filesystem of CONFIG (also while it "
	"is\nmounted: it then sees what the mount has recorded, which "
	"lags close()\nby up to two seconds; fsync or phifs sync first to "
	"include the latest\nwrites).\n\n"
	"  --scrub    also fetch every object from every region and "
	"authenticate it,\n"
	"             check the local store against its checksums, and "
	"prove that\n"
	"             every file here reads what each region's latest "
	"metadata names\n"
	"             (files that differ are named by path)\n"
	"  --repair   scrub, and copy a good copy over each bad or missing "
	"one\n\n"
	"Exit status 0 when nothing is wrong (or everything was repaired), "
	"1 otherwise.\n";

static const char gc_usage[] =
	"usage: phifs gc CONFIG [--dry-run]\n\n"
	"Delete from every region what no moment within `retention` needs: "
	"older\nmetadata, the packs only it named, old lease objects.  Uses "
	"a region's\ngc_credentials_file when it has one.  Safe while the "
	"filesystem is mounted,\nhere or elsewhere.\n\n"
	"Versions of files under a path of the [retention] section are kept "
	"that\nlong after they were replaced or deleted, and versions under "
	"a legal hold\n(phifs hold) however old; gc deletes nothing when a "
	"region's holds cannot\nbe read.\n\n"
	"  --dry-run  say what would be deleted, delete nothing\n";

/* A report line; ctx is the progress line, if one may be drawn, which
 * is erased first so that the two never share a line of the terminal. */
static void print_line(void *ctx, const char *line)
{
	if (ctx)
		tool_progress_end(ctx);
	printf("%s\n", line);
	fflush(stdout);
}

void tool_regions_close(struct tool_regions *r)
{
	for (int i = 0; i < r->n; i++)
		backend_close(r->be[i]);
	r->n = 0;
}

int tool_regions_open(const struct phi_config *cfg, int for_gc,
		      struct tool_regions *r)
{
	struct phi_config c = *cfg;	/* borrows cfg's strings: never
					   released */

	r->n = 0;
	for (int i = 0; i < cfg->nregions; i++) {
		char err[512];

		if (for_gc && cfg->regions[i].gc_credentials_file)
			c.regions[i].credentials_file =
				cfg->regions[i].gc_credentials_file;
		if (tool_region_open(&c, i, &r->be[r->n], err, sizeof(err))) {
			tool_error("%s", err);
			tool_regions_close(r);
			return -1;
		}
		r->names[r->n++] = cfg->regions[i].name;
	}
	return 0;
}

int tool_cache_open_with(const struct phi_config *cfg, unsigned flags,
			 const struct crypt_key *key, struct cache **c)
{
	struct cache_config cc;

	tool_cache_config(cfg, &cc);
	cc.key = key;
	return cache_open(c, &cc, flags);
}

int tool_cache_open_keyed(const struct phi_config *cfg, unsigned flags,
			  struct cache **c, struct crypt_key **key)
{
	struct cache_config cc;
	uint8_t fsid[16];
	struct buf sb;
	int rc;

	*key = NULL;
	tool_cache_config(cfg, &cc);
	rc = cache_open(c, &cc, flags);
	if (rc || !cache_needs_key(*c))
		return rc;
	cache_close(*c);
	*c = NULL;
	buf_init(&sb, CRYPT_SUPER_SIZE);
	rc = tool_unlock_any(cfg, key, fsid, &sb) ? -EACCES : 0;
	buf_release(&sb);
	if (rc == 0) {
		cc.key = *key;
		rc = cache_open(c, &cc, flags);
	}
	if (rc) {
		crypt_key_free(*key);
		*key = NULL;
	}
	return rc;
}

int tool_unlock_any(const struct phi_config *cfg, struct crypt_key **key,
		    uint8_t fsid[16], struct buf *sb)
{
	struct tool_secret secret = { 0 };
	int rc = -1;

	crypt_harden_process();
	if (tool_superblock_find(cfg, sb, fsid) == 0 &&
	    tool_secret_read(cfg, &secret) == 0 &&
	    tool_unlock(cfg, sb, &secret, key) == 0)
		rc = 0;
	tool_secret_wipe(&secret);
	return rc;
}

/* cache_fsck() on cache_dir, with key (NULL: none). */
static long fsck_with(const struct phi_config *cfg, const struct crypt_key *key)
{
	struct cache_stats st;
	struct cache_config cc;
	struct cache *c;
	long n;
	int rc;

	tool_cache_config(cfg, &cc);
	cc.key = key;
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	if (rc == PHI_ENOFS) {
		printf("metadata: no filesystem in %s on this machine; "
		       "not checked\n", cfg->cache_dir);
		return -ENOENT;
	}
	if (rc) {
		tool_cache_error(cfg, rc);
		return -EINVAL;
	}
	rc = cache_stats(c, &st);
	if (rc)
		tool_cache_error(cfg, rc);
	if (rc || tool_check_block_size(cfg, st.block_size)) {
		cache_close(c);
		return -EINVAL;
	}
	n = cache_fsck(c, print_line, NULL);
	cache_close(c);
	return n;
}

static int local_fsck(const struct phi_config *cfg, long *problems)
{
	long n = fsck_with(cfg, NULL);

	if (n == -EACCES) {
		/* names and attributes are sealed: they open with the key */
		struct crypt_key *key = NULL;
		uint8_t fsid[16];
		struct buf sb;

		buf_init(&sb, CRYPT_SUPER_SIZE);
		if (tool_unlock_any(cfg, &key, fsid, &sb) == 0)
			n = fsck_with(cfg, key);
		else
			n = -EINVAL;	/* tool_unlock_any() said why */
		crypt_key_free(key);
		buf_release(&sb);
	}
	if (n == -ENOENT)
		return 0;
	if (n == -EINVAL)
		return -1;
	if (n < 0) {
		tool_error("cannot check the metadata: %s",
			   phi_strerror((int)n));
		return -1;
	}
	printf("metadata: %ld problem%s\n", n, n == 1 ? "" : "s");
	*problems += n;
	return 0;
}

/* Say why each region's superblock is bad, where it is corrupt (one
 * that holds none, or another good one, is for cache_scrub()). */
static void check_superblocks(const struct tool_regions *r,
			      const struct crypt_key *key,
			      const uint8_t fsid[16])
{
	for (int i = 0; i < r->n; i++) {
		char why[512];

		if (tool_region_super_check(r->be[i], r->names[i], key, fsid,
					    why, sizeof(why)) != PHI_ECORRUPT)
			continue;
		printf("region %s: corrupt superblock (%s)\n", r->names[i],
		       why);
	}
}

static void scrub_report(const struct cache_scrub_result *res)
{
	printf("regions: %llu objects, %llu bytes checked; %llu bad, %llu "
	       "missing, %llu repaired, %llu with no good copy",
	       (unsigned long long)res->objects,
	       (unsigned long long)res->bytes, (unsigned long long)res->bad,
	       (unsigned long long)res->missing,
	       (unsigned long long)res->repaired,
	       (unsigned long long)res->lost);
	if (res->unreadable)
		printf(", %llu that could not be read",
		       (unsigned long long)res->unreadable);
	printf("\n");
}

/*
 * What a scrub proved whole needs no repair any more: forget the bad
 * copies and failed uploads recorded for those regions (cfg's, by index:
 * bit i of unmended set for one that is not whole), so that status stops
 * showing them.  A mount holds cache_dir, and it looks again by itself
 * when asked to sync: ask it (as phifs sync does).  That makes the mount
 * seal and send what waits, so it comes after fsck's comparison with
 * this machine, which names what waits as such.
 */
static void note_mended(const struct phi_config *cfg, uint32_t unmended)
{
	struct cache_config cc;
	struct cache_stats st;
	struct cache *c;
	int rc;

	tool_cache_config(cfg, &cc);
	rc = cache_open(&c, &cc, 0);
	if (rc == 0) {
		for (int i = 0; i < cfg->nregions && rc == 0; i++)
			if (!(unmended & (1u << i)))
				rc = cache_region_mended(c, cfg->regions[i].name);
		if (cache_close(c) && rc == 0)
			rc = -EIO;
		if (rc)
			tool_warn("cannot record in %s that the regions were "
				  "found whole: %s", cfg->cache_dir,
				  phi_strerror(rc));
	} else if (rc == PHI_EBUSYFS &&
		   cache_open(&c, &cc, CACHE_OPEN_RDONLY) == 0) {
		if (cache_stats(c, &st) == 0 && st.mounted && st.pid > 0 &&
		    tool_serves_mount(st.pid))
			kill((pid_t)st.pid, SIGUSR1);
		cache_close(c);
	}
}

/*
 * --repair: a region's superblock newer than cache_dir's (a key change
 * cache_dir missed; cache_scrub() reports it and leaves it) replaces
 * cache_dir's, under the lock phifs key takes, and only on a machine
 * whose cache_dir holds one.
 */
/*
 * A newer copy of a later key generation than key (a rotation this
 * cache_dir missed) is checked by opening it with the secret, read again,
 * before it replaces cache_dir's.  0 when sb may be adopted, or -1
 * (printed).
 */
static int newer_generation_opens(const struct phi_config *cfg,
				  const struct crypt_key *key,
				  const struct buf *sb, const char *region)
{
	struct tool_secret secret = { 0 };
	struct crypt_key *k = NULL;
	int rc;

	if (crypt_super_verify(buf_data(sb), buf_len(sb), key) != -ESTALE)
		return 0;
	rc = tool_secret_read(cfg, &secret) == 0 &&
	     tool_unlock(cfg, sb, &secret, &k) == 0 ? 0 : -1;
	tool_secret_wipe(&secret);
	crypt_key_free(k);
	if (rc)
		tool_error("region %s holds a superblock of a newer key "
			   "generation (a rotation this cache_dir missed), and "
			   "the secret given does not open it; cache_dir keeps "
			   "its own", region);
	return rc;
}

static void adopt_newer_super(const struct phi_config *cfg,
			      const struct tool_regions *r,
			      const struct crypt_key *key, long *problems)
{
	struct buf cur, newer;
	uint8_t fsid[16];
	char path[4200];
	int fd, which = 0;

	snprintf(path, sizeof(path), "%s/superblock", cfg->cache_dir);
	if (access(path, F_OK) != 0)
		return;
	fd = tool_superblock_lock(cfg);
	if (fd < 0) {
		(*problems)++;
		return;
	}
	buf_init(&cur, CRYPT_SUPER_SIZE);
	buf_init(&newer, CRYPT_SUPER_SIZE);
	if (tool_superblock_find(cfg, &cur, fsid) == 0 &&
	    tool_super_newer(r->be, r->n, key, &cur, &newer, &which)) {
		if (newer_generation_opens(cfg, key, &newer, r->names[which]) ||
		    tool_superblock_replace(cfg, &newer))
			(*problems)++;
		else
			printf("cache_dir: superblock brought up to date from "
			       "region %s\n", r->names[which]);
	}
	buf_release(&newer);
	buf_release(&cur);
	close(fd);
}

/* fsck --repair in the audit trail: what it found and mended; EIO when
 * it stopped.  0, or -1 (printed). */
static int audit_repair(const struct phi_config *cfg,
			const struct cache_scrub_result *res, int stopped)
{
	char detail[256] = "stopped: a region could not be listed";

	if (!stopped)
		snprintf(detail, sizeof(detail), "%llu objects checked; %llu "
			 "bad, %llu missing, %llu repaired, %llu with no good "
			 "copy", (unsigned long long)res->objects,
		 (unsigned long long)res->bad,
		 (unsigned long long)res->missing,
		 (unsigned long long)res->repaired,
		 (unsigned long long)res->lost);
	return tool_audit_command(cfg, AUDIT_REPAIR, stopped ? EIO : 0, NULL,
				  detail);
}

/* --scrub and --repair: every region against the others.  0, adding
 * what is still wrong to *problems, or -1 (printed). */
/* *unmended: bit i for cfg's region i not found whole; left alone
 * unless the scrub ran through. */
static int scrub_regions(const struct phi_config *cfg, int repair,
			 long *problems, int64_t *unmended)
{
	struct cache_scrub_args a = { 0 };
	struct cache_scrub_result res;
	struct crypt_key *key = NULL;
	struct tool_regions r = { .n = 0 };
	struct tool_progress prog;
	uint8_t fsid[16];
	struct buf sb;
	int rc = -1, stopped;

	buf_init(&sb, CRYPT_SUPER_SIZE);
	if (tool_unlock_any(cfg, &key, fsid, &sb) ||
	    tool_regions_open(cfg, 0, &r))
		goto out;
	a.regions = r.be;
	a.names = r.names;
	a.nregions = r.n;
	a.key = key;
	a.fsid = fsid;
	a.repair = repair;
	a.report = print_line;
	a.progress = tool_progress_show;
	a.ctx = &prog;
	a.superblock = buf_data(&sb);
	a.superblock_len = buf_len(&sb);
	rc = 0;
	/* why a superblock is bad, in words; cache_scrub() counts it */
	check_superblocks(&r, key, fsid);
	tool_progress_init(&prog, repair ? "repair" : "scrub");
	stopped = cache_scrub(&a, &res);
	tool_progress_end(&prog);
	if (stopped) {
		tool_error("scrub stopped: a region could not be listed");
		(*problems)++;
	} else {
		scrub_report(&res);
		/* what was not mended, and what could not be looked at */
		*problems += (long)(res.bad + res.missing - res.repaired +
				    res.lost + res.unreadable);
		*unmended = res.unmended;
		if (repair)
			adopt_newer_super(cfg, &r, key, problems);
	}
	if (repair && audit_repair(cfg, &res, stopped))
		(*problems)++;
out:
	tool_regions_close(&r);
	crypt_key_free(key);
	buf_release(&sb);
	return rc;
}

int cmd_fsck(int argc, char **argv)
{
	struct phi_config cfg;
	int scrub = 0, repair = 0, rc = 1;
	const char *path = NULL;
	long problems = 0;
	int64_t unmended = -1;	/* the scrub did not run through */

	if (tool_want_help(argc, argv, fsck_usage))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scrub") == 0)
			scrub = 1;
		else if (strcmp(argv[i], "--repair") == 0)
			scrub = repair = 1;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			tool_error("fsck: unexpected argument '%s' (see phifs "
				   "fsck --help)", argv[i]);
			return 2;
		}
	}
	if (!path) {
		tool_error("usage: phifs fsck CONFIG [--scrub] [--repair]");
		return 2;
	}
	if (tool_load_config(path, &cfg))
		return 1;
	if (local_fsck(&cfg, &problems))
		goto out;
	if (scrub && scrub_regions(&cfg, repair, &problems, &unmended))
		goto out;
	if (scrub && (tool_verify_local(&cfg, &problems) ||
		      tool_verify_regions(&cfg, &problems)))
		problems++;
	if (unmended >= 0)
		note_mended(&cfg, (uint32_t)unmended);
	rc = problems ? 1 : 0;
out:
	phi_config_release(&cfg);
	return rc;
}

/*
 * What gc keeps beyond retention: the [retention] rules and the holds that
 * stand (every region's), into *rules (malloc()ed; its paths point into
 * cfg and *holds, which must outlive it).  0, or -1 after printing why.
 */
static int keep_rules(const struct phi_config *cfg,
		      const struct tool_regions *r, const struct crypt_key *key,
		      const uint8_t fsid[16], int64_t now,
		      struct cache_keep_rule **rules, size_t *n,
		      struct tool_hold **holds)
{
	size_t nh = 0;

	*rules = NULL;
	*n = 0;
	*holds = NULL;
	if (tool_holds_load(r, key, fsid, holds, &nh)) {
		tool_error("nothing deleted: gc must know every legal hold");
		return -1;
	}
	*rules = calloc((size_t)cfg->nrules + nh + 1, sizeof(**rules));
	if (!*rules) {
		tool_error("out of memory");
		return -1;
	}
	for (int i = 0; i < cfg->nrules; i++) {
		(*rules)[*n].path = cfg->rules[i].path;
		(*rules)[(*n)++].period_ms = (int64_t)cfg->rules[i].period_ms;
	}
	for (size_t i = 0; i < nh; i++) {
		if ((*holds)[i].until_ms && (*holds)[i].until_ms <= now)
			continue;	/* lapsed */
		(*rules)[*n].path = (*holds)[i].path;
		(*rules)[(*n)++].period_ms = INT64_MAX;
	}
	return 0;
}

/* What gc did to the audit trail's segments, on one line. */
static void print_audit_gc(const struct cache_gc_result *res, int dry)
{
	if (res->audit_held)
		printf("kept every audit trail segment: a legal hold stands\n");
	else
		printf("%s %llu audit trail segments older than "
		       "audit_retention\n", dry ? "would delete" : "deleted",
		       (unsigned long long)res->audit_deleted);
}

int cmd_gc(int argc, char **argv)
{
	struct cache_gc_args a = { 0 };
	struct cache_gc_result res;
	struct crypt_key *key = NULL;
	struct phi_config cfg;
	const char *path = NULL;
	struct tool_regions r = { .n = 0 };
	struct cache_keep_rule *rules = NULL;
	struct tool_hold *holds = NULL;
	struct tool_progress prog;
	uint8_t fsid[16];
	struct buf sb;
	int dry = 0, rc = 1;

	if (tool_want_help(argc, argv, gc_usage))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			dry = 1;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			tool_error("gc: unexpected argument '%s' (see phifs gc "
				   "--help)", argv[i]);
			return 2;
		}
	}
	if (!path) {
		tool_error("usage: phifs gc CONFIG [--dry-run]");
		return 2;
	}
	if (tool_load_config(path, &cfg))
		return 1;
	buf_init(&sb, CRYPT_SUPER_SIZE);
	if (tool_unlock_any(&cfg, &key, fsid, &sb) ||
	    tool_regions_open(&cfg, 1, &r))
		goto out;
	a.regions = r.be;
	a.names = r.names;
	a.nregions = r.n;
	a.key = key;
	a.fsid = fsid;
	a.now_ms = (int64_t)time(NULL) * 1000;
	a.keep_after_ms = a.now_ms - (int64_t)cfg.retention_ms;
	a.audit_keep_after_ms = a.now_ms - (int64_t)cfg.audit_retention_ms;
	if (keep_rules(&cfg, &r, key, fsid, a.now_ms, &rules, &a.nkeep,
		       &holds))
		goto out;
	a.keep = rules;
	a.dry_run = dry;
	a.report = print_line;
	a.progress = tool_progress_show;
	a.ctx = &prog;
	tool_progress_init(&prog, "gc");
	rc = cache_gc(&a, &res) ? 1 : 0;
	tool_progress_end(&prog);
	if (rc == 0)
		printf("%s %llu metadata objects, %llu packs, %llu lease "
		       "objects; kept %llu packs no history names yet\n",
		       dry ? "would delete" : "deleted",
		       (unsigned long long)res.meta_deleted,
		       (unsigned long long)res.packs_deleted,
		       (unsigned long long)res.leases_deleted,
		       (unsigned long long)res.kept_unreferenced);
	if (rc == 0 && a.nkeep)
		printf("kept %llu packs for versions that retention rules "
		       "and legal holds protect\n",
		       (unsigned long long)res.kept_by_rules);
	if (rc == 0)
		print_audit_gc(&res, dry);
	if (rc == 0) {
		char detail[256];

		fflush(stdout);
		snprintf(detail, sizeof(detail), "%s%llu metadata objects, "
			 "%llu packs, %llu lease objects deleted; %llu packs "
			 "kept by retention rules and holds; %llu audit "
			 "segments deleted", dry ? "dry run: " : "",
			 (unsigned long long)res.meta_deleted,
			 (unsigned long long)res.packs_deleted,
			 (unsigned long long)res.leases_deleted,
			 (unsigned long long)res.kept_by_rules,
			 (unsigned long long)res.audit_deleted);
		if (tool_audit_command(&cfg, AUDIT_GC, 0, NULL, detail))
			rc = 1;
	}
out:
	free(rules);
	free(holds);
	tool_regions_close(&r);
	crypt_key_free(key);
	buf_release(&sb);
	phi_config_release(&cfg);
	return rc;
}
