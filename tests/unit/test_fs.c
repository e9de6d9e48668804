/*
 * test_fs.c - what fs/ does without a kernel mount, through fs.h only:
 * the one translation of codes into errno, the setattr and rename flag
 * translations, and refusing bad mount options before anything mounts.
 */
#include "cache.h"
#include "cache_admin.h"
#include "fs.h"
#include "phi.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- fs_errno() ----------------------------------------------------- */

TEST(errno_passes_errno_through)
{
	ASSERT_EQ(fs_errno(0), 0);
	ASSERT_EQ(fs_errno(4096), 0);		/* a byte count */
	for (int e = 1; e < PHI_ERR_BASE; e++)
		ASSERT_EQ(fs_errno(-e), e);
}

TEST(errno_of_phi_codes)
{
	static const int other[] = {
		PHI_ECORRUPT, PHI_EEXISTFS, PHI_EVERSION, PHI_ECONFIG,
		PHI_ELATCHED, PHI_EUNREACHABLE, PHI_EAUTH, PHI_EBADKEY,
		PHI_EAUTHFAIL, PHI_ENOBUCKET, PHI_ECLOCKSKEW, PHI_ETLS,
		PHI_EREPLACED, -(PHI_ERR_BASE + 999),
	};

	ASSERT_EQ(fs_errno(PHI_EBUSYFS), EBUSY);
	ASSERT_EQ(fs_errno(PHI_ENOFS), ENOENT);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		ASSERT_EQ(fs_errno(other[i]), EIO);
}

/* ---- flag translations ---------------------------------------------- */

TEST(setattr_flags_one_by_one)
{
	static const struct { int fuse; unsigned cache; } map[] = {
		{ FUSE_SET_ATTR_MODE, CACHE_SET_MODE },
		{ FUSE_SET_ATTR_UID, CACHE_SET_UID },
		{ FUSE_SET_ATTR_GID, CACHE_SET_GID },
		{ FUSE_SET_ATTR_SIZE, CACHE_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, CACHE_SET_ATIME },
		{ FUSE_SET_ATTR_MTIME, CACHE_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, CACHE_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, CACHE_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, CACHE_SET_CTIME },
	};
	int all = 0;
	unsigned want = 0;

	ASSERT_EQ(fs_setattr_flags(0), 0u);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		test_diag("FUSE bit %#x", (unsigned)map[i].fuse);
		ASSERT_EQ(fs_setattr_flags(map[i].fuse), map[i].cache);
		all |= map[i].fuse;
		want |= map[i].cache;
	}
	ASSERT_EQ(fs_setattr_flags(all), want);
	ASSERT_EQ(fs_setattr_flags(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME),
		  (unsigned)(CACHE_SET_SIZE | CACHE_SET_MTIME));
	/* bits the cache has no meaning for are dropped */
	ASSERT_EQ(fs_setattr_flags(FUSE_SET_ATTR_FORCE), 0u);
	ASSERT_EQ(fs_setattr_flags(FUSE_SET_ATTR_KILL_SUID |
				   FUSE_SET_ATTR_KILL_SGID |
				   FUSE_SET_ATTR_FORCE | FUSE_SET_ATTR_MODE),
		  (unsigned)CACHE_SET_MODE);
}

TEST(rename_flags)
{
	unsigned out = 12345;

	ASSERT_OK(fs_rename_flags(0, &out));
	ASSERT_EQ(out, 0u);
	ASSERT_OK(fs_rename_flags(RENAME_NOREPLACE, &out));
	ASSERT_EQ(out, (unsigned)CACHE_RENAME_NOREPLACE);
	ASSERT_OK(fs_rename_flags(RENAME_EXCHANGE, &out));
	ASSERT_EQ(out, (unsigned)CACHE_RENAME_EXCHANGE);
	/* both: the cache refuses the pair, the translation keeps both */
	ASSERT_OK(fs_rename_flags(RENAME_NOREPLACE | RENAME_EXCHANGE, &out));
	ASSERT_EQ(out, (unsigned)(CACHE_RENAME_NOREPLACE |
				  CACHE_RENAME_EXCHANGE));
	out = 12345;
	ASSERT_ERR(fs_rename_flags(RENAME_WHITEOUT, &out), -EINVAL);
	ASSERT_ERR(fs_rename_flags(RENAME_WHITEOUT | RENAME_NOREPLACE, &out),
		   -EINVAL);
	ASSERT_ERR(fs_rename_flags(1u << 20, &out), -EINVAL);
	ASSERT_EQ(out, 12345u);
}

/* ---- mount options -------------------------------------------------- */

/* Run fs_check_options() on opts with stderr caught in a file; returns
 * its code, with err filled and *said set to what reached stderr. */
static int check_quietly(const char *opts, char *err, size_t errlen,
			 char *said, size_t saidlen)
{
	struct fs_options o = { opts, 0, 0, NULL };
	char path[4200];
	int fd, saved, rc;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", test_tmpdir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	ASSERT_TRUE(saved >= 0);
	ASSERT_TRUE(dup2(fd, 2) == 2);
	rc = fs_check_options(&o, err, errlen);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, said, saidlen - 1, 0);
	close(fd);
	ASSERT_TRUE(n >= 0);
	said[n] = '\0';
	return rc;
}

TEST(check_options_accepts_good_ones)
{
	static const char *const good[] = {
		NULL, "", "ro", "allow_other", "noatime", "ro,allow_other",
		"max_read=131072",
	};
	char err[256], said[1024];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		test_diag("-o %s", good[i] ? good[i] : "(none)");
		strcpy(err, "untouched");
		ASSERT_OK(check_quietly(good[i], err, sizeof(err), said,
					sizeof(said)));
		ASSERT_STREQ(err, "untouched");
		ASSERT_STREQ(said, "");
	}
}

/* A refused option gets one line naming it and what libfuse said, and
 * libfuse itself prints nothing. */
TEST(check_options_refuses_bad_ones)
{
	static const char *const bad[] = {
		"bogus", "ro,no_such_option", "max_read=x",
	};
	char err[256], said[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[256];

		test_diag("-o %s", bad[i]);
		ASSERT_ERR(check_quietly(bad[i], err, sizeof(err), said,
					 sizeof(said)), -EINVAL);
		test_diag("err: %s", err);
		snprintf(want, sizeof(want), "invalid mount options '%s'",
			 bad[i]);
		ASSERT_TRUE(strncmp(err, want, strlen(want)) == 0);
		ASSERT_TRUE(strchr(err, '\n') == NULL);
		ASSERT_TRUE(strncmp(err + strlen(want), ": ", 2) == 0);
		ASSERT_TRUE(strstr(err + strlen(want), "fuse: ") == NULL);
		ASSERT_STREQ(said, "");
	}
}

TEST(check_options_short_err_and_too_long)
{
	char err[16], said[1024], *huge;

	ASSERT_ERR(check_quietly("bogus", err, sizeof(err), said,
				 sizeof(said)), -EINVAL);
	ASSERT_EQ(strlen(err), sizeof(err) - 1);	/* cut, terminated */
	ASSERT_TRUE(strncmp(err, "invalid mount o", 15) == 0);

	huge = malloc(8192);
	ASSERT_TRUE(huge != NULL);
	memset(huge, 'a', 8191);
	huge[8191] = '\0';
	{
		char e2[256];

		ASSERT_ERR(check_quietly(huge, e2, sizeof(e2), said,
					 sizeof(said)), -EINVAL);
		ASSERT_STREQ(e2, "mount options too long");
	}
	free(huge);
}

/* fs_mount() refuses bad options and a mountpoint it cannot use without
 * mounting anything, and leaves *out alone. */
TEST(mount_refuses_before_mounting)
{
	struct cache_config cfg = { .dir = test_tmpdir(),
				    .size_limit = 64 << 20,
				    .block_size = 1 << 20 };
	struct fs_options o = { "bogus", 0, 0, NULL };
	struct fs *fs = (struct fs *)&cfg;	/* any non-NULL marker */
	struct cache *c = NULL;
	char err[256], mnt[4200];

	ASSERT_OK(cache_format(&cfg, 0, 0));
	ASSERT_OK(cache_open(&c, &cfg, 0));
	ASSERT_ERR(fs_mount(&fs, c, test_tmpdir(), &o, err, sizeof(err)),
		   -EINVAL);
	ASSERT_STREQ(err, "invalid mount options 'bogus'");
	ASSERT_TRUE(fs == (struct fs *)&cfg);

	o.fuse_opts = NULL;
	snprintf(mnt, sizeof(mnt), "%s/no/such/dir", test_tmpdir());
	ASSERT_ERR(fs_mount(&fs, c, mnt, &o, err, sizeof(err)), -EIO);
	test_diag("err: %s", err);
	ASSERT_TRUE(strncmp(err, "cannot mount on ", 16) == 0);
	ASSERT_STREQ(err + 16, mnt);
	ASSERT_TRUE(fs == (struct fs *)&cfg);
	ASSERT_OK(cache_close(c));
}

TEST_MAIN(
	TEST_ENTRY(errno_passes_errno_through),
	TEST_ENTRY(errno_of_phi_codes),
	TEST_ENTRY(setattr_flags_one_by_one),
	TEST_ENTRY(rename_flags),
	TEST_ENTRY(check_options_accepts_good_ones),
	TEST_ENTRY(check_options_refuses_bad_ones),
	TEST_ENTRY(check_options_short_err_and_too_long),
	TEST_ENTRY(mount_refuses_before_mounting),
)
