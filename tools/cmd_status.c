/*
 * cmd_status.c - phifs status CONFIG [--json].
 *
 * Opens the cache read-only, so it works while the filesystem is mounted
 * (LMDB readers share the environment with the writer).
 */
#include "cmd.h"
#include "phi.h"

#include <stdio.h>
#include <string.h>

static const char status_usage[] =
	"usage: phifs status CONFIG [--json]\n\n"
	"Show the state of the filesystem of CONFIG: whether it is mounted, "
	"its\ninodes and how much of cache_size the local store uses.\n"
	"Works while mounted.  --json prints one JSON object.\n";

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

static void print_json(const struct phi_config *cfg,
		       const struct cache_stats *s)
{
	printf("{\"fsid\":\"%s\",\"cache_dir\":", s->fsid);
	json_str(cfg->cache_dir);
	printf(",\"mounted\":%s,\"pid\":", s->mounted ? "true" : "false");
	if (s->mounted && s->pid > 0)
		printf("%ld", s->pid);
	else
		printf("null");
	printf(",\"inodes\":%llu,\"orphans\":%llu,\"used_bytes\":%llu,"
	       "\"cache_size\":%llu,\"block_size\":%u,\"format_version\":%llu,"
	       "\"regions\":[",
	       (unsigned long long)s->inodes, (unsigned long long)s->orphans,
	       (unsigned long long)s->used_bytes,
	       (unsigned long long)s->size_limit, (unsigned)s->block_size,
	       (unsigned long long)s->format_version);
	for (int i = 0; i < cfg->nregions; i++) {
		printf("%s{\"name\":", i ? "," : "");
		json_str(cfg->regions[i].name);
		printf(",\"url\":");
		json_str(cfg->regions[i].url);
		putchar('}');
	}
	printf("]}\n");
}

static void human(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

static void print_text(const struct phi_config *cfg,
		       const struct cache_stats *s)
{
	char used[32], limit[32], bs[32];

	human(s->used_bytes, used, sizeof(used));
	human(s->size_limit, limit, sizeof(limit));
	human(s->block_size, bs, sizeof(bs));
	printf("filesystem   %s\n", s->fsid);
	printf("cache_dir    %s\n", cfg->cache_dir);
	if (s->mounted)
		printf("mounted      yes (pid %ld)\n", s->pid);
	else
		printf("mounted      no\n");
	printf("inodes       %llu (%llu unlinked but open)\n",
	       (unsigned long long)s->inodes, (unsigned long long)s->orphans);
	printf("local store  %s of %s\n", used, limit);
	printf("block size   %s\n", bs);
	for (int i = 0; i < cfg->nregions; i++)
		printf("region       %s  %s\n", cfg->regions[i].name,
		       cfg->regions[i].url);
}

int cmd_status(int argc, char **argv)
{
	struct phi_config cfg;
	struct cache_config cc;
	struct cache_stats s;
	struct cache *c;
	const char *config = NULL;
	int json = 0, bad = 0, rc;

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
	tool_cache_config(&cfg, &cc);
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	if (rc == 0) {
		rc = cache_stats(c, &s);
		cache_close(c);
	}
	if (rc) {
		tool_cache_error(&cfg, rc);
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
