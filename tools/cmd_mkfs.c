/*
 * cmd_mkfs.c - phifs mkfs CONFIG: create a new, empty filesystem.
 *
 * Refuses when cache_dir already holds a filesystem; on any failure it
 * leaves cache_dir as it found it (cache_format() undoes its own work).
 */
#include "cmd.h"
#include "phi.h"

#include <stdio.h>
#include <unistd.h>

static const char mkfs_usage[] =
	"usage: phifs mkfs CONFIG\n\n"
	"Create a new, empty phifs filesystem in the cache_dir named by "
	"CONFIG.\nRefuses if one already exists there.  The root directory "
	"belongs to the\ncaller.  block_size is fixed from now on.\n";

int cmd_mkfs(int argc, char **argv)
{
	struct phi_config cfg;
	struct cache_config cc;
	int rc;

	if (tool_want_help(argc, argv, mkfs_usage))
		return 0;
	if (argc != 2) {
		tool_error("usage: phifs mkfs CONFIG");
		return 2;
	}
	if (tool_load_config(argv[1], &cfg))
		return 1;
	tool_cache_config(&cfg, &cc);
	rc = cache_format(&cc, getuid(), getgid());
	if (rc) {
		tool_cache_error(&cfg, rc);
		phi_config_release(&cfg);
		return 1;
	}
	printf("created phifs filesystem in %s (block size %u bytes)\n",
	       cfg.cache_dir, (unsigned)cfg.block_size);
	phi_config_release(&cfg);
	return 0;
}
