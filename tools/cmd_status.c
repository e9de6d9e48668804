/*
 * cmd_status.c - phifs status CONFIG [--json].
 *
 * Opens the cache read-only, so it works while the filesystem is mounted
 * (LMDB readers share the environment with the writer).
 */
#include "cmd.h"
#include "backend.h"
#include "phi.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char status_usage[] =
	"usage: phifs status CONFIG [--json]\n\n"
	"Show the state of the filesystem of CONFIG: whether it is mounted "
	"and\nwhere its log goes, its inodes, how much of cache_size the local "
	"store\nuses, what is written but not yet sealed, and per region what "
	"it still\nlacks and whether it answers, and with audit_syslog how many "
	"audit events\nare not yet forwarded.  Works while mounted (the "
	"mount records\nits state every two seconds).  --json prints one JSON "
	"object.\n";

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *url_kind(const char *url)
{
	struct backend_url u;
	char why[256];

	if (backend_url_parse(url, &u, why, sizeof(why)))
		return "unknown";
	return u.kind == BACKEND_S3 ? "s3" : "dir";
}

static void print_json_regions(const struct phi_config *cfg,
			       const struct cache_stats *s)
{
	printf(",\"region_state\":[");
	for (int i = 0; i < cfg->nregions; i++) {
		struct cache_region_stats r;

		tool_region_stats(cfg, s, i, &r);
		printf("%s{\"name\":", i ? "," : "");
		json_str(r.name);
		printf(",\"kind\":\"%s\",\"waiting\":%llu,"
		       "\"waiting_bytes\":%llu,\"fails\":%u,\"down\":%s,"
		       "\"last_ok\":", url_kind(cfg->regions[i].url),
		       (unsigned long long)r.waiting,
		       (unsigned long long)r.waiting_bytes, (unsigned)r.fails,
		       r.down ? "true" : "false");
		if (r.last_ok > 0)
			printf("%lld", (long long)r.last_ok);
		else
			printf("null");
		printf(",\"bad\":%llu,\"complete\":%s,\"seed\":",
		       (unsigned long long)r.bad,
		       r.seeding ? "false" : "true");
		if (r.seeding)
			printf("{\"objects\":%llu,\"objects_total\":%llu,"
			       "\"bytes\":%llu,\"bytes_total\":%llu}",
			       (unsigned long long)r.seed_objects,
			       (unsigned long long)r.seed_objects_total,
			       (unsigned long long)r.seed_bytes,
			       (unsigned long long)r.seed_bytes_total);
		else
			printf("null");
		putchar('}');
	}
	putchar(']');
}

static const char *const log_to_json[] = {
	[TOOL_LOG_SYSLOG] = "syslog", [TOOL_LOG_FILE] = "file",
	[TOOL_LOG_STDERR] = "stderr",
};

static void print_json_log(const struct tool_log_place *lp)
{
	printf(",\"log\":{\"to\":\"%s\",\"path\":", log_to_json[lp->to]);
	if (lp->to == TOOL_LOG_FILE)
		json_str(lp->path);
	else
		printf("null");
	printf(",\"from_mount\":%s,\"syslog_available\":%s}",
	       lp->from_mount ? "true" : "false",
	       lp->syslog_available ? "true" : "false");
}

/* Events stored but not yet taken by the audit_syslog receiver, or -1
 * when forwarding is off or the count cannot be read. */
static long long syslog_waiting(const struct phi_config *cfg)
{
	struct cache_config cc;
	struct cache *c;
	uint64_t sent = 0, last = 0;
	int rc;

	if (!cfg->audit_syslog || cfg->audit != 1)
		return -1;
	tool_cache_config(cfg, &cc);
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	if (rc)
		return -1;
	rc = cache_audit_forwarded(c, &sent, &last);
	cache_close(c);
	return rc ? -1 : last > sent ? (long long)(last - sent) : 0;
}

static void print_json(const struct phi_config *cfg,
		       const struct cache_stats *s)
{
	long long waiting = syslog_waiting(cfg);
	struct tool_log_place lp;

	printf("{\"fsid\":\"%s\",\"cache_dir\":", s->fsid);
	json_str(cfg->cache_dir);
	printf(",\"mounted\":%s,\"pid\":", s->mounted ? "true" : "false");
	if (s->mounted && s->pid > 0)
		printf("%ld", s->pid);
	else
		printf("null");
	printf(",\"inodes\":%llu,\"orphans\":%llu,\"used_bytes\":%llu,"
	       "\"cache_size\":%llu,\"block_size\":%u,\"format_version\":%llu,"
	       "\"local_sealed\":%s,\"counts_only\":%s,\"regions\":[",
	       (unsigned long long)s->inodes, (unsigned long long)s->orphans,
	       (unsigned long long)s->used_bytes,
	       (unsigned long long)s->size_limit, (unsigned)s->block_size,
	       (unsigned long long)s->format_version,
	       s->local_sealed ? "true" : "false",
	       s->counts_only ? "true" : "false");
	for (int i = 0; i < cfg->nregions; i++) {
		printf("%s{\"name\":", i ? "," : "");
		json_str(cfg->regions[i].name);
		printf(",\"url\":");
		json_str(cfg->regions[i].url);
		putchar('}');
	}
	printf("],\"dirty_blocks\":%llu,\"dirty_bytes\":%llu,"
	       "\"sealed_objects\":%llu,\"sealed_bytes\":%llu,"
	       "\"resident_blocks\":%llu,\"evicted_blocks\":%llu,"
	       "\"sync_waiting\":%llu,\"dirty_data_bytes\":%llu",
	       (unsigned long long)s->dirty_blocks,
	       (unsigned long long)s->dirty_bytes,
	       (unsigned long long)s->sealed_objects,
	       (unsigned long long)s->sealed_bytes,
	       (unsigned long long)s->resident_blocks,
	       (unsigned long long)s->evicted_blocks,
	       (unsigned long long)s->sync_waiting,
	       (unsigned long long)s->dirty_data_bytes);
	print_json_regions(cfg, s);
	tool_log_place(cfg, s, &lp);
	print_json_log(&lp);
	printf(",\"audit_syslog\":");
	if (waiting >= 0) {
		printf("{\"to\":");
		json_str(cfg->audit_syslog);
		printf(",\"waiting\":%lld}", waiting);
	} else {
		printf("null");
	}
	printf("}\n");
}

/* "up", "up, 3 objects (1.2 MiB) waiting, 2 failed uploads in a row,
 * last upload 2024-05-01 10:00:00" and the like. */
static void region_line(const struct cache_region_stats *r, char *out,
			size_t len)
{
	char size[32], total[32], when[64];
	size_t n;

	n = (size_t)snprintf(out, len, "%s", r->down ? "down" : "up");
	if (r->waiting && n < len) {
		tool_human_size(r->waiting_bytes, size, sizeof(size));
		n += (size_t)snprintf(out + n, len - n, ", %llu object%s (%s) "
				      "waiting", (unsigned long long)r->waiting,
				      r->waiting == 1 ? "" : "s", size);
	}
	if (r->fails && n < len)
		n += (size_t)snprintf(out + n, len - n, ", %u failed upload%s "
				      "in a row", (unsigned)r->fails,
				      r->fails == 1 ? "" : "s");
	if (r->bad && n < len)
		n += (size_t)snprintf(out + n, len - n, ", %llu bad cop%s to "
				      "repair", (unsigned long long)r->bad,
				      r->bad == 1 ? "y" : "ies");
	if (r->seeding && n < len) {
		tool_human_size(r->seed_bytes, size, sizeof(size));
		tool_human_size(r->seed_bytes_total, total, sizeof(total));
		n += (size_t)snprintf(out + n, len - n, ", not complete: being "
				      "filled from the other regions: %llu of "
				      "%llu objects (%s of %s) copied",
				      (unsigned long long)r->seed_objects,
				      (unsigned long long)r->seed_objects_total,
				      size, total);
	}
	if (r->last_ok > 0 && n < len) {
		time_t t = (time_t)r->last_ok;
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
			 localtime_r(&t, &tm));
		snprintf(out + n, len - n, ", last upload %s", when);
	}
}

static void print_sealing(const struct cache_stats *s)
{
	char dirty[32], sealed[32];

	tool_human_size(s->dirty_data_bytes, dirty, sizeof(dirty));
	tool_human_size(s->sealed_bytes, sealed, sizeof(sealed));
	printf("not sealed   %s in %llu block%s\n", dirty,
	       (unsigned long long)s->dirty_blocks,
	       s->dirty_blocks == 1 ? "" : "s");
	printf("sealed       %llu object%s (%s) not yet in every region\n",
	       (unsigned long long)s->sealed_objects,
	       s->sealed_objects == 1 ? "" : "s", sealed);
	printf("blocks       %llu sealed and kept here, %llu only in the "
	       "regions\n", (unsigned long long)s->resident_blocks,
	       (unsigned long long)s->evicted_blocks);
}

/* "file /var/log/phifs.log", "syslog", "stderr of ..."; without a
 * mount, what a mount in the background would do. */
static void print_text_log(const struct tool_log_place *lp)
{
	if (lp->to == TOOL_LOG_STDERR)
		printf("log          stderr of the mount (in the foreground)");
	else if (lp->to == TOOL_LOG_FILE)
		printf("log          file %s", lp->path);
	else if (lp->syslog_available)
		printf("log          syslog");
	else
		printf("log          syslog, but there is none here (no "
		       "/dev/log): lines are lost; set log_file");
	if (!lp->from_mount)
		printf(" (when mounted in the background; stderr with -f)");
	putchar('\n');
}

static void print_text(const struct phi_config *cfg,
		       const struct cache_stats *s)
{
	struct tool_log_place lp;
	char used[32], limit[32], bs[32], state[512];
	long long waiting = syslog_waiting(cfg);

	tool_human_size(s->used_bytes, used, sizeof(used));
	tool_human_size(s->size_limit, limit, sizeof(limit));
	tool_human_size(s->block_size, bs, sizeof(bs));
	printf("filesystem   %s\n", s->fsid);
	printf("cache_dir    %s\n", cfg->cache_dir);
	if (s->mounted)
		printf("mounted      yes (pid %ld)\n", s->pid);
	else
		printf("mounted      no\n");
	tool_log_place(cfg, s, &lp);
	print_text_log(&lp);
	printf("inodes       %llu (%llu unlinked but open)\n",
	       (unsigned long long)s->inodes, (unsigned long long)s->orphans);
	printf("local store  %s of %s (%.0f%%), %s\n", used, limit,
	       s->size_limit ? 100.0 * (double)s->used_bytes /
			       (double)s->size_limit : 0.0,
	       s->local_sealed ? "sealed (AES-256-GCM)" :
	       "plaintext (local_seal = off)");
	printf("block size   %s\n", bs);
	if (s->counts_only)
		printf("metadata     sealed; without the key, counts only (dirty "
		       "data in whole blocks)\n");
	print_sealing(s);
	for (int i = 0; i < cfg->nregions; i++) {
		struct cache_region_stats r;

		tool_region_stats(cfg, s, i, &r);
		region_line(&r, state, sizeof(state));
		printf("region       %s  %s  %s\n", cfg->regions[i].name,
		       cfg->regions[i].url, state);
	}
	if (waiting >= 0)
		printf("audit syslog %s  %lld event%s not yet forwarded\n",
		       cfg->audit_syslog, waiting, waiting == 1 ? "" : "s");
}

int cmd_status(int argc, char **argv)
{
	struct phi_config cfg;
	struct cache_stats s;
	const char *config = NULL;
	int json = 0, bad = 0;

	if (tool_want_help(argc, argv, status_usage))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!config && argv[i][0] != '-')
			config = argv[i];
		else
			bad = 1;
	}
	if (!config || bad) {
		tool_error("usage: phifs status CONFIG [--json]");
		return 2;
	}
	if (tool_load_config(config, &cfg))
		return 1;
	if (tool_fs_stats(&cfg, &s)) {
		phi_config_release(&cfg);
		return 1;
	}
	if (json)
		print_json(&cfg, &s);
	else
		print_text(&cfg, &s);
	phi_config_release(&cfg);
	return 0;
}
