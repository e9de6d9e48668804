/*
 * notify_none.c - tool_notify_*() for a build without libsystemd
 * (-Dsystemd=disabled): a mount under a service manager is never reported
 * ready, so a Type=notify unit needs the libsystemd build.
 */
#include "cmd.h"

int tool_notify_start(struct tool_notify **out, struct cache *c,
		      const struct phi_config *cfg, const char *mountpoint)
{
	(void)c;
	(void)cfg;
	(void)mountpoint;
	*out = NULL;
	return 0;
}

void tool_notify_stopping(struct tool_notify *n)
{
	(void)n;
}

void tool_notify_close(struct tool_notify *n)
{
	(void)n;
}
