/*
 * hooks.c - the test-only environment hooks, honoured or ignored by build.
 *
 * Compiled with PHIFS_TEST_HOOKS=1 into the phifs binary of a build
 * configured with -Dtest_hooks=true, with PHIFS_TEST_HOOKS=0 otherwise;
 * both variants are also built as libraries for tests/unit/test_hooks.c.
 */
#include "hooks.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PHIFS_TEST_HOOKS
#error "PHIFS_TEST_HOOKS must be defined to 0 or 1 by the build"
#endif

static const char *const hook_names[] = { "PHIFS_KDF_N", "PHIFS_FAULT_DIR",
					   "PHIFS_SYSLOG_SOCKET" };

#define NHOOKS (sizeof(hook_names) / sizeof(hook_names[0]))

int tool_test_hooks(void)
{
	return PHIFS_TEST_HOOKS;
}

const char *tool_test_env(const char *name)
{
	static int warned[NHOOKS];
	const char *v = getenv(name);
	size_t i;

	for (i = 0; i < NHOOKS; i++)
		if (strcmp(name, hook_names[i]) == 0)
			break;
	assert(i < NHOOKS);
	if (PHIFS_TEST_HOOKS)
		return v;
	if (v && i < NHOOKS && !warned[i]) {
		warned[i] = 1;
		fprintf(stderr, "phifs: warning: %s is ignored: this build has "
			"no test hooks (meson -Dtest_hooks=true)\n", name);
	}
	return NULL;
}
