/*
 * cmd.h - subcommands of the phifs tool and what they share.
 *
 * Each cmd_* takes its own argv (argv[0] is the subcommand name) and
 * returns the process exit code: 0 success, 1 failure, 2 usage error.
 * Failures print exactly one line on stderr, starting "phifs: ".
 */
#ifndef PHI_CMD_H
#define PHI_CMD_H

#include "cache.h"
#include "config.h"

int cmd_mkfs(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* One line on stderr, "phifs: " first. */
void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Load CONFIG, printing the parser's line on failure.  0 or -1. */
int tool_load_config(const char *path, struct phi_config *cfg);

/* The cache's view of the configuration (strings borrowed from cfg). */
void tool_cache_config(const struct phi_config *cfg,
		       struct cache_config *out);

/* Explain a cache_open()/cache_format() failure for cache_dir. */
void tool_cache_error(const struct phi_config *cfg, int rc);

/* If argv holds -h or --help, print usage on stdout and return 1. */
int tool_want_help(int argc, char **argv, const char *usage);

#endif
