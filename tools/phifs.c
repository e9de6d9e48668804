/*
 * phifs.c - the phifs command: dispatch to subcommands, git style.
 */
#include "cmd.h"
#include "phi.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "mkfs", cmd_mkfs, "create a new, empty filesystem" },
	{ "mount", cmd_mount, "mount a filesystem (daemonizes unless -f)" },
	{ "umount", cmd_umount, "flush everything locally and unmount" },
	{ "status", cmd_status, "show the state of a filesystem" },
	{ "sync", cmd_sync, "seal what was written and wait until every "
	  "region has it" },
	{ "recover", cmd_recover, "rebuild cache_dir from a region's history "
	  "(new machine)" },
	{ "restore", cmd_restore, "copy a file or folder out, as it was at "
	  "a moment" },
	{ "versions", cmd_versions, "the moments at which a path changed" },
	{ "fsck", cmd_fsck, "check the metadata; --scrub/--repair the "
	  "regions' objects" },
	{ "gc", cmd_gc, "delete what no moment within retention needs" },
	{ "key", cmd_key, "list, add, change or remove the keys that open "
	  "it" },
	{ "hold", cmd_hold, "legal holds: what gc may not delete, however "
	  "old" },
	{ "audit", cmd_audit, "who opened, changed or removed what: the "
	  "audit trail" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

void tool_error(const char *fmt, ...)
{
	va_list ap;

	tool_progress_erase();
	fputs("phifs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void tool_warn(const char *fmt, ...)
{
	va_list ap;

	tool_progress_erase();
	fputs("phifs: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int tool_load_config(const char *path, struct phi_config *cfg)
{
	char err[1024];

	if (phi_config_load(cfg, path, err, sizeof(err)) == 0)
		return 0;
	tool_error("%s", err);
	return -1;
}

void tool_cache_config(const struct phi_config *cfg, struct cache_config *out)
{
	memset(out, 0, sizeof(*out));
	out->dir = cfg->cache_dir;
	out->size_limit = cfg->cache_size;
	out->block_size = cfg->block_size;
	out->seal_delay_ms = cfg->seal_delay_ms;
	out->seal_quiet_ms = cfg->seal_quiet_ms;
	out->uploaders = cfg->uploaders;
	out->seal_threads = cfg->seal_threads;
	out->pack_size = cfg->pack_size;
	out->dirty_limit = cfg->dirty_limit;
	out->metadata_interval_ms = cfg->metadata_interval_ms;
	out->plain_store = !cfg->local_seal;
	/* The cache knows regions by name (upload queue, status); the
	 * names live as long as cfg, which outlives the cache. */
	static const char *names[PHI_MAX_REGIONS];
	for (int i = 0; i < cfg->nregions && i < PHI_MAX_REGIONS; i++)
		names[i] = cfg->regions[i].name;
	out->region_names = names;
}

int tool_fs_stats(const struct phi_config *cfg, struct cache_stats *out)
{
	struct crypt_key *key = NULL;
	struct cache_config cc;
	struct cache *c;
	int rc;

	tool_cache_config(cfg, &cc);
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	/* sealed: the whole figures with a key that opens without asking
	 * (key_file, PHIFS_PASSPHRASE), else the counts alone */
	if (rc == 0 && cache_needs_key(c) &&
	    (cfg->key_file || getenv("PHIFS_PASSPHRASE"))) {
		cache_close(c);
		rc = tool_cache_open_keyed(cfg, CACHE_OPEN_RDONLY, &c, &key);
	}
	if (rc == 0) {
		rc = cache_stats(c, out);
		cache_close(c);
	}
	crypt_key_free(key);
	if (rc == -EACCES)
		return -1;	/* the key did not unlock: said why */
	if (rc) {
		tool_cache_error(cfg, rc);
		return -1;
	}
	return tool_check_block_size(cfg, out->block_size);
}

int tool_check_block_size(const struct phi_config *cfg,
			  uint32_t fs_block_size)
{
	char want[32], have[32];

	if (!cfg->block_size_line || cfg->block_size == fs_block_size)
		return 0;
	phi_format_size(cfg->block_size, want, sizeof(want));
	phi_format_size(fs_block_size, have, sizeof(have));
	tool_error("%s:%d: block_size: %s, but the filesystem was made with "
		   "%s and it cannot change: remove block_size or set it to %s",
		   cfg->path, cfg->block_size_line, want, have, have);
	return -1;
}

void tool_cache_error(const struct phi_config *cfg, int rc)
{
	switch (rc) {
	case PHI_ENOFS:
		tool_error("%s: no phifs filesystem in cache_dir %s (create one "
			   "with: phifs mkfs %s)", cfg->path, cfg->cache_dir,
			   cfg->path);
		break;
	case PHI_EEXISTFS:
		tool_error("%s: cache_dir %s already holds a phifs filesystem; "
			   "refusing to overwrite it", cfg->path,
			   cfg->cache_dir);
		break;
	case PHI_EBUSYFS:
		tool_error("%s: cache_dir %s is in use by a running phifs "
			   "mount", cfg->path, cfg->cache_dir);
		break;
	case -ENOENT:
	case -ENOTDIR:
	case -EACCES:
	case -EPERM:
	case -EROFS:
		tool_error("%s: cache_dir %s: %s", cfg->path, cfg->cache_dir,
			   rc == -EACCES || rc == -EPERM || rc == -EROFS ?
			   "not writable" : phi_strerror(rc));
		break;
	default:
		tool_error("%s: cache_dir %s: %s", cfg->path, cfg->cache_dir,
			   phi_strerror(rc));
	}
}

int tool_stdout_gone(void)
{
	static int gone;

	if (!gone && fflush(stdout) == EOF && errno == EPIPE)
		gone = 1;
	return gone;
}

int tool_want_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 1;
		}
	}
	return 0;
}

static void usage(FILE *out)
{
	fputs("usage: phifs <command> [arguments]\n\n"
	      "phifs mounts patient folders as ordinary files, keeps a "
	      "write-back cache\non the local disk and its metadata in LMDB.\n\n"
	      "commands:\n", out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fputs("  help     this text; 'phifs help COMMAND' for one command,\n"
	      "           'phifs help config' for the configuration keys\n",
	      out);
}

static int help(int argc, char **argv)
{
	char help_opt[] = "--help";
	char *help_argv[] = { NULL, help_opt, NULL };

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "config") == 0) {
		phi_config_print_help();
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			help_argv[0] = argv[1];
			return commands[i].run(2, help_argv);
		}
	}
	tool_error("no help for '%s' (see phifs help)", argv[1]);
	return 2;
}

/* Run as mount.phifs (the link mount(8) finds in /sbin)? */
static int is_mount_helper(const char *argv0)
{
	const char *base = argv0 ? strrchr(argv0, '/') : NULL;

	return argv0 && strcmp(base ? base + 1 : argv0, "mount.phifs") == 0;
}

int main(int argc, char **argv)
{
	phi_log_set_sink(tool_log_sink);	/* erases a progress line */
	/* A reader that stops early (phifs versions ... | head) is a
	 * normal end, not a death by SIGPIPE: writes to it fail with EPIPE
	 * instead, which stdio swallows and tool_stdout_gone() reports.
	 * Sockets to the regions are no different: their writes fail
	 * with an error the driver handles. */
	signal(SIGPIPE, SIG_IGN);
	if (is_mount_helper(argv[0]))
		return cmd_mount_helper(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)
		return help(argc - 1, argv + 1);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	tool_error("unknown command '%s' (see phifs help)", argv[1]);
	return 2;
}
