/*
 * test_hooks.c - the test-only environment hooks (tools/include/hooks.h),
 * compiled twice: against the variant with hooks (HOOKS_BUILD 1) and the
 * production one (HOOKS_BUILD 0), whatever -Dtest_hooks says.
 */
#include "hooks.h"
#include "test.h"

#include <stdlib.h>

#ifndef HOOKS_BUILD
#error "HOOKS_BUILD must be 0 or 1"
#endif

TEST(reports_its_build)
{
	ASSERT_EQ(tool_test_hooks(), HOOKS_BUILD);
}

/* Set, the hooks reach the caller only in a build with hooks; asked
 * twice, the production build warns once and still ignores them. */
TEST(set_hooks_reach_only_a_build_with_hooks)
{
	ASSERT_OK(setenv("PHIFS_KDF_N", "1024", 1));
	ASSERT_OK(setenv("PHIFS_FAULT_DIR", "/nonexistent-faults", 1));
	for (int round = 0; round < 2; round++) {
		const char *kdf = tool_test_env("PHIFS_KDF_N");
		const char *faults = tool_test_env("PHIFS_FAULT_DIR");

		if (HOOKS_BUILD) {
			ASSERT_TRUE(kdf != NULL && faults != NULL);
			ASSERT_STREQ(kdf, "1024");
			ASSERT_STREQ(faults, "/nonexistent-faults");
		} else {
			ASSERT_TRUE(kdf == NULL);
			ASSERT_TRUE(faults == NULL);
		}
	}
}

TEST(unset_hooks_are_null)
{
	ASSERT_OK(unsetenv("PHIFS_KDF_N"));
	ASSERT_OK(unsetenv("PHIFS_FAULT_DIR"));
	ASSERT_TRUE(tool_test_env("PHIFS_KDF_N") == NULL);
	ASSERT_TRUE(tool_test_env("PHIFS_FAULT_DIR") == NULL);
}

TEST_MAIN(TEST_ENTRY(reports_its_build),
	  TEST_ENTRY(set_hooks_reach_only_a_build_with_hooks),
	  TEST_ENTRY(unset_hooks_are_null))
