/*
 * test_cache_xattr.c - extended attributes (cache_xattr.c), through
 * cache.h only.  Every case formats a fresh filesystem in its own
 * test_tmpdir() and opens it read-write.
 */
#include "cache.h"
#include "cache_test.h"
#include "phi.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* === extended attributes ============================================ */

TEST(xattr_set_get_list_remove)
{
	struct cache *c = fresh();
	char buf[256];
	uint64_t f;
	int n;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)), 0);
	ASSERT_OK(cache_setxattr(c, f, "user.alpha", "one", 3, 0));
	ASSERT_OK(cache_setxattr(c, f, "user.beta", "", 0, 0));
	ASSERT_OK(cache_setxattr(c, f, "user.gamma", "three!", 6, 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.alpha", buf, sizeof(buf)), 3);
	ASSERT_TRUE(memcmp(buf, "one", 3) == 0);
	ASSERT_EQ(cache_getxattr(c, f, "user.beta", buf, sizeof(buf)), 0);
	ASSERT_ERR(cache_getxattr(c, f, "user.none", buf, sizeof(buf)),
		   -ENODATA);

	n = cache_listxattr(c, f, buf, sizeof(buf));
	ASSERT_EQ(n, (int)sizeof("user.alpha\0user.beta\0user.gamma"));
	ASSERT_TRUE(memcmp(buf, "user.alpha\0user.beta\0user.gamma", (size_t)n)
		    == 0);

	/* overwrite */
	ASSERT_OK(cache_setxattr(c, f, "user.alpha", "uno!", 4, 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.alpha", buf, sizeof(buf)), 4);
	ASSERT_TRUE(memcmp(buf, "uno!", 4) == 0);

	ASSERT_OK(cache_removexattr(c, f, "user.beta"));
	ASSERT_ERR(cache_removexattr(c, f, "user.beta"), -ENODATA);
	ASSERT_ERR(cache_getxattr(c, f, "user.beta", buf, sizeof(buf)),
		   -ENODATA);
	n = cache_listxattr(c, f, buf, sizeof(buf));
	ASSERT_EQ(n, (int)sizeof("user.alpha\0user.gamma"));

	/* directories carry them too, separately */
	ASSERT_OK(cache_setxattr(c, CACHE_ROOT_INO, "user.r", "x", 1, 0));
	ASSERT_EQ(cache_listxattr(c, CACHE_ROOT_INO, buf, sizeof(buf)),
		  (int)sizeof("user.r"));
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)), n);
	ASSERT_OK(cache_close(c));
}

TEST(xattr_create_replace)
{
	struct cache *c = fresh();
	char buf[16];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_ERR(cache_setxattr(c, f, "user.a", "1", 1, CACHE_XATTR_REPLACE),
		   -ENODATA);
	ASSERT_OK(cache_setxattr(c, f, "user.a", "1", 1, CACHE_XATTR_CREATE));
	ASSERT_ERR(cache_setxattr(c, f, "user.a", "2", 1, CACHE_XATTR_CREATE),
		   -EEXIST);
	ASSERT_EQ(cache_getxattr(c, f, "user.a", buf, sizeof(buf)), 1);
	ASSERT_EQ(buf[0], '1');
	ASSERT_OK(cache_setxattr(c, f, "user.a", "3", 1, CACHE_XATTR_REPLACE));
	ASSERT_EQ(cache_getxattr(c, f, "user.a", buf, sizeof(buf)), 1);
	ASSERT_EQ(buf[0], '3');
	ASSERT_OK(cache_close(c));
}

TEST(xattr_sizes)
{
	struct cache *c = fresh();
	unsigned char *big, *back;
	char buf[64];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	ASSERT_OK(cache_setxattr(c, f, "user.name", "0123456789", 10, 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.name", NULL, 0), 10);
	ASSERT_ERR(cache_getxattr(c, f, "user.name", buf, 9), -ERANGE);
	ASSERT_EQ(cache_getxattr(c, f, "user.name", buf, 10), 10);
	ASSERT_EQ(cache_listxattr(c, f, NULL, 0), (int)sizeof("user.name"));
	ASSERT_ERR(cache_listxattr(c, f, buf, sizeof("user.name") - 1),
		   -ERANGE);
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof("user.name")),
		  (int)sizeof("user.name"));

	big = malloc(CACHE_XATTR_SIZE_MAX + 1);
	back = malloc(CACHE_XATTR_SIZE_MAX);
	ASSERT_TRUE(big && back);
	fill(big, CACHE_XATTR_SIZE_MAX + 1, 5);
	ASSERT_OK(cache_setxattr(c, f, "user.big", big, CACHE_XATTR_SIZE_MAX,
				 0));
	ASSERT_EQ(cache_getxattr(c, f, "user.big", NULL, 0),
		  CACHE_XATTR_SIZE_MAX);
	ASSERT_EQ(cache_getxattr(c, f, "user.big", back, CACHE_XATTR_SIZE_MAX),
		  CACHE_XATTR_SIZE_MAX);
	ASSERT_TRUE(memcmp(big, back, CACHE_XATTR_SIZE_MAX) == 0);
	ASSERT_TRUE(cache_setxattr(c, f, "user.bigger", big,
				   CACHE_XATTR_SIZE_MAX + 1, 0) < 0);
	ASSERT_ERR(cache_getxattr(c, f, "user.bigger", NULL, 0), -ENODATA);
	free(big);
	free(back);
	ASSERT_OK(cache_close(c));
}

TEST(xattr_other_namespaces)
{
	static const char *const names[] = {
		"trusted.x", "security.x", "system.posix_acl_access", "user.",
		"plain",
	};
	struct cache *c = fresh();
	char buf[64];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		test_diag("name %s", names[i]);
		ASSERT_ERR(cache_setxattr(c, f, names[i], "v", 1, 0), -ENOTSUP);
		ASSERT_ERR(cache_getxattr(c, f, names[i], buf, sizeof(buf)),
			   -ENOTSUP);
		ASSERT_ERR(cache_removexattr(c, f, names[i]), -ENOTSUP);
	}
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)), 0);
	ASSERT_OK(cache_close(c));
}

TEST_MAIN(
	TEST_ENTRY(xattr_set_get_list_remove),
	TEST_ENTRY(xattr_create_replace),
	TEST_ENTRY(xattr_sizes),
	TEST_ENTRY(xattr_other_namespaces),
)
