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
		"system.other", "system.posix_acl", "user.", "security.",
		"trusted.", "plain", "",
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

TEST(xattr_security_and_trusted)
{
	struct cache *c = fresh();
	char buf[128];
	uint64_t f;

	f = mkfile(c, CACHE_ROOT_INO, "f");
	/* a write asks for this one first: absent, no error */
	ASSERT_ERR(cache_getxattr(c, f, "security.capability", buf,
				  sizeof(buf)), -ENODATA);
	ASSERT_OK(cache_setxattr(c, f, "security.NTACL", "\x04\x00nt", 4, 0));
	ASSERT_OK(cache_setxattr(c, f, "trusted.t", "t", 1, 0));
	ASSERT_OK(cache_setxattr(c, f, "user.u", "u", 1, 0));
	ASSERT_EQ(cache_getxattr(c, f, "security.NTACL", buf, sizeof(buf)), 4);
	ASSERT_TRUE(memcmp(buf, "\x04\x00nt", 4) == 0);
	ASSERT_EQ(cache_getxattr(c, f, "trusted.t", buf, sizeof(buf)), 1);
	/* all of them for root, trusted.* left out for the others */
	ASSERT_EQ(cache_listxattr(c, f, buf, sizeof(buf)),
		  (int)sizeof("security.NTACL\0trusted.t\0user.u"));
	ASSERT_TRUE(memcmp(buf, "security.NTACL\0trusted.t\0user.u",
			   sizeof("security.NTACL\0trusted.t\0user.u")) == 0);
	ASSERT_EQ(cache_listxattr_as(c, f, CACHE_XATTR_TRUSTED, NULL, 0),
		  (int)sizeof("security.NTACL\0trusted.t\0user.u"));
	ASSERT_EQ(cache_listxattr_as(c, f, 0, NULL, 0),
		  (int)sizeof("security.NTACL\0user.u"));
	ASSERT_EQ(cache_listxattr_as(c, f, 0, buf, sizeof(buf)),
		  (int)sizeof("security.NTACL\0user.u"));
	ASSERT_TRUE(memcmp(buf, "security.NTACL\0user.u",
			   sizeof("security.NTACL\0user.u")) == 0);
	ASSERT_OK(cache_removexattr(c, f, "security.NTACL"));
	ASSERT_ERR(cache_removexattr(c, f, "security.NTACL"), -ENODATA);
	ASSERT_OK(cache_close(c));
}

/* === POSIX ACLs ======================================================= */

#define A_ACCESS "system.posix_acl_access"
#define A_DEFAULT "system.posix_acl_default"
#define T_USER_OBJ 0x01
#define T_USER 0x02
#define T_GROUP_OBJ 0x04
#define T_GROUP 0x08
#define T_MASK 0x10
#define T_OTHER 0x20
#define NOID 0xffffffffu

struct ace {
	unsigned tag, perm;
	uint32_t id;
};

/* The posix_acl_xattr bytes of n entries into out; returns the length. */
static size_t acl(uint8_t *out, const struct ace *e, size_t n)
{
	out[0] = 2;
	out[1] = out[2] = out[3] = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + 4 + 8 * i;

		p[0] = (uint8_t)e[i].tag;
		p[1] = 0;
		p[2] = (uint8_t)e[i].perm;
		p[3] = 0;
		for (int b = 0; b < 4; b++)
			p[4 + b] = (uint8_t)(e[i].id >> (8 * b));
	}
	return 4 + 8 * n;
}

#define ACL(buf, ...) \
	acl(buf, (const struct ace[]){ __VA_ARGS__ }, \
	    sizeof((const struct ace[]){ __VA_ARGS__ }) / sizeof(struct ace))

static mode_t perms(struct cache *c, uint64_t ino)
{
	return attr(c, ino).st_mode & 07777;
}

/* Permission of the entry with this tag (and id) in ino's ACL name. */
static int perm_of(struct cache *c, uint64_t ino, const char *name,
		   unsigned tag, uint32_t id)
{
	uint8_t v[256];
	int n = cache_getxattr(c, ino, name, v, sizeof(v));

	for (int i = 0; n > 0 && 4 + 8 * i < n; i++) {
		const uint8_t *p = v + 4 + 8 * i;
		uint32_t pid = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
			       (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

		if (p[0] == tag && (id == NOID || pid == id))
			return p[2];
	}
	return -1;
}

TEST(acl_malformed_values)
{
	struct cache *c = fresh();
	uint8_t v[256];
	uint64_t f = mkfile(c, CACHE_ROOT_INO, "f");
	uint64_t d = mkdir_(c, CACHE_ROOT_INO, "d");
	size_t n;

	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, "", 0, 0), -EINVAL);
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, "\2\0\0\0", 4, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_GROUP_OBJ, 4, NOID },
		{ T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n - 1, 0), -EINVAL);
	v[0] = 1;			/* version */
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_USER, 4, 7 },
		{ T_GROUP_OBJ, 4, NOID }, { T_OTHER, 4, NOID });	/* mask */
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_GROUP_OBJ, 4, NOID },
		{ T_USER, 4, 7 }, { T_MASK, 4, NOID }, { T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_USER, 4, NOID },
		{ T_GROUP_OBJ, 4, NOID }, { T_MASK, 4, NOID },
		{ T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 8, NOID }, { T_GROUP_OBJ, 4, NOID },
		{ T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_GROUP_OBJ, 4, NOID },
		{ T_OTHER, 4, NOID }, { T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_GROUP_OBJ, 4, NOID },
		{ 0x40, 4, NOID }, { T_OTHER, 4, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_ACCESS, v, n, 0), -EINVAL);
	/* nothing was stored, nor the mode changed */
	ASSERT_EQ(cache_listxattr(c, f, NULL, 0), 0);
	ASSERT_EQ(perms(c, f), 0644);
	/* a default ACL belongs on a directory */
	n = ACL(v, { T_USER_OBJ, 7, NOID }, { T_GROUP_OBJ, 5, NOID },
		{ T_OTHER, 0, NOID });
	ASSERT_ERR(cache_setxattr(c, f, A_DEFAULT, v, n, 0), -EACCES);
	ASSERT_OK(cache_setxattr(c, d, A_DEFAULT, v, n, 0));
	ASSERT_EQ(cache_getxattr(c, d, A_DEFAULT, NULL, 0), (int)n);
	/* and unlike an access ACL is kept even when the mode could say it */
	ASSERT_EQ(perms(c, d), 0755);
	ASSERT_OK(cache_close(c));
}

TEST(acl_access_sets_the_mode)
{
	struct cache *c = fresh();
	uint8_t v[256];
	uint64_t f = mkfile(c, CACHE_ROOT_INO, "f");
	struct stat st;
	size_t n;

	/* the group bits show the mask */
	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_USER, 7, OTHER_UID },
		{ T_GROUP_OBJ, 4, NOID }, { T_MASK, 5, NOID },
		{ T_OTHER, 0, NOID });
	ASSERT_OK(cache_setxattr(c, f, A_ACCESS, v, n, 0));
	ASSERT_EQ(perms(c, f), 0650);
	ASSERT_EQ(cache_getxattr(c, f, A_ACCESS, NULL, 0), (int)n);
	ASSERT_EQ(cache_listxattr(c, f, NULL, 0), (int)sizeof(A_ACCESS));
	/* one the mode says all of is not stored, and replaces the old */
	n = ACL(v, { T_USER_OBJ, 7, NOID }, { T_GROUP_OBJ, 1, NOID },
		{ T_OTHER, 4, NOID });
	ASSERT_OK(cache_setxattr(c, f, A_ACCESS, v, n, 0));
	ASSERT_EQ(perms(c, f), 0714);
	ASSERT_ERR(cache_getxattr(c, f, A_ACCESS, NULL, 0), -ENODATA);
	/* removing an absent ACL is no error (setfacl -b) */
	ASSERT_OK(cache_removexattr(c, f, A_ACCESS));
	ASSERT_OK(cache_removexattr(c, f, A_DEFAULT));
	/* a caller outside the file's group loses the setgid bit */
	st.st_mode = 02755;
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_MODE, &st, &st));
	n = ACL(v, { T_USER_OBJ, 7, NOID }, { T_GROUP_OBJ, 5, NOID },
		{ T_GROUP, 5, 77 }, { T_MASK, 5, NOID },
		{ T_OTHER, 5, NOID });
	ASSERT_OK(cache_setxattr(c, f, A_ACCESS, v, n, 0));
	ASSERT_EQ(perms(c, f), 02755);
	ASSERT_OK(cache_setxattr(c, f, A_ACCESS, v, n, CACHE_XATTR_KILL_SGID));
	ASSERT_EQ(perms(c, f), 0755);
	ASSERT_OK(cache_close(c));
}

TEST(acl_chmod_moves_the_mask)
{
	struct cache *c = fresh();
	uint8_t v[256];
	uint64_t f = mkfile(c, CACHE_ROOT_INO, "f");
	uint64_t g = mkfile(c, CACHE_ROOT_INO, "g");
	struct stat st;
	size_t n;

	n = ACL(v, { T_USER_OBJ, 6, NOID }, { T_USER, 7, OTHER_UID },
		{ T_GROUP_OBJ, 4, NOID }, { T_MASK, 7, NOID },
		{ T_OTHER, 4, NOID });
	ASSERT_OK(cache_setxattr(c, f, A_ACCESS, v, n, 0));
	st.st_mode = 0741;
	ASSERT_OK(cache_setattr(c, f, CACHE_SET_MODE, &st, &st));
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_USER_OBJ, NOID), 7);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_MASK, NOID), 4);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_OTHER, NOID), 1);
	/* the named entry and the group entry stay as they were */
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_USER, OTHER_UID), 7);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_GROUP_OBJ, NOID), 4);
	/* a file without an ACL just changes its mode */
	st.st_mode = 0600;
	ASSERT_OK(cache_setattr(c, g, CACHE_SET_MODE, &st, &st));
	ASSERT_ERR(cache_getxattr(c, g, A_ACCESS, NULL, 0), -ENODATA);
	ASSERT_OK(cache_close(c));
}

TEST(acl_default_is_inherited)
{
	struct cache *c = fresh();
	struct cache_cred masked = { 1000, 1001, 077 };
	uint8_t v[256];
	uint64_t d = mkdir_(c, CACHE_ROOT_INO, "d"), f, sub, l, p;
	struct stat st;
	size_t n;

	n = ACL(v, { T_USER_OBJ, 7, NOID }, { T_USER, 7, OTHER_UID },
		{ T_GROUP_OBJ, 5, NOID }, { T_MASK, 7, NOID },
		{ T_OTHER, 0, NOID });
	ASSERT_OK(cache_setxattr(c, d, A_DEFAULT, v, n, 0));
	/* a file: the ACL masked by the create mode, no umask */
	ASSERT_OK(cache_mknod(c, d, "f", S_IFREG | 0640, 0, NULL, &masked,
			      &st));
	f = st.st_ino;
	ASSERT_EQ(st.st_mode & 07777, 0640);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_USER_OBJ, NOID), 6);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_USER, OTHER_UID), 7);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_MASK, NOID), 4);
	ASSERT_EQ(perm_of(c, f, A_ACCESS, T_OTHER, NOID), 0);
	ASSERT_ERR(cache_getxattr(c, f, A_DEFAULT, NULL, 0), -ENODATA);
	cache_forget(c, f, 1);
	/* a directory: the same, and the default passed on whole */
	ASSERT_OK(cache_mknod(c, d, "sub", S_IFDIR | 0777, 0, NULL, &masked,
			      &st));
	sub = st.st_ino;
	ASSERT_EQ(st.st_mode & 07777, 0770);
	ASSERT_EQ(perm_of(c, sub, A_ACCESS, T_MASK, NOID), 7);
	ASSERT_EQ(cache_getxattr(c, sub, A_DEFAULT, v + 128, 128), (int)n);
	ASSERT_TRUE(memcmp(v, v + 128, n) == 0);
	cache_forget(c, sub, 1);
	/* a symlink gets nothing */
	ASSERT_OK(cache_mknod(c, d, "l", S_IFLNK | 0777, 0, "f", &masked,
			      &st));
	l = st.st_ino;
	ASSERT_EQ(st.st_mode & 07777, 0777);
	ASSERT_EQ(cache_listxattr(c, l, NULL, 0), 0);
	cache_forget(c, l, 1);
	/* without a default ACL the umask applies, and no ACL is made */
	ASSERT_OK(cache_mknod(c, CACHE_ROOT_INO, "p", S_IFIFO | 0666, 0, NULL,
			      &masked, &st));
	p = st.st_ino;
	ASSERT_EQ(st.st_mode & 07777, 0600);
	ASSERT_EQ(cache_listxattr(c, p, NULL, 0), 0);
	cache_forget(c, p, 1);
	/* a default the create mode says all of gives no access ACL */
	n = ACL(v, { T_USER_OBJ, 7, NOID }, { T_GROUP_OBJ, 5, NOID },
		{ T_OTHER, 1, NOID });
	ASSERT_OK(cache_setxattr(c, d, A_DEFAULT, v, n, 0));
	ASSERT_OK(cache_mknod(c, d, "g", S_IFREG | 0666, 0, NULL, &masked,
			      &st));
	ASSERT_EQ(st.st_mode & 07777, 0640);
	ASSERT_EQ(cache_listxattr(c, st.st_ino, NULL, 0), 0);
	cache_forget(c, st.st_ino, 1);
	ASSERT_OK(cache_close(c));
}

TEST_MAIN(
	TEST_ENTRY(xattr_set_get_list_remove),
	TEST_ENTRY(xattr_create_replace),
	TEST_ENTRY(xattr_sizes),
	TEST_ENTRY(xattr_other_namespaces),
	TEST_ENTRY(xattr_security_and_trusted),
	TEST_ENTRY(acl_malformed_values),
	TEST_ENTRY(acl_access_sets_the_mode),
	TEST_ENTRY(acl_chmod_moves_the_mask),
	TEST_ENTRY(acl_default_is_inherited),
)
