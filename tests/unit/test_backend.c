/*
 * test_backend.c - backend_url_parse(), through backend.h only.
 */
#include <errno.h>
#include <string.h>

#include "backend.h"
#include "test.h"

static void expect_bad(const char *url, const char *reason)
{
	struct backend_url u;
	char err[256] = "";

	memset(&u, 0x5a, sizeof(u));
	ASSERT_ERR(backend_url_parse(url, &u, err, sizeof(err)), -EINVAL);
	ASSERT_STREQ(err, reason);
	/* out is left alone on failure */
	ASSERT_EQ(u.path[0], 0x5a);
	ASSERT_EQ(u.bucket[0], 0x5a);
	ASSERT_EQ(u.prefix[0], 0x5a);
}

TEST(dir_absolute)
{
	struct backend_url u;
	char err[256] = "";

	ASSERT_OK(backend_url_parse("dir:/srv/phifs/region-a", &u, err,
				    sizeof(err)));
	ASSERT_STREQ(err, "");
	ASSERT_EQ(u.kind, BACKEND_DIR);
	ASSERT_STREQ(u.path, "/srv/phifs/region-a");
	ASSERT_STREQ(u.bucket, "");
	ASSERT_STREQ(u.prefix, "");
}

TEST(dir_relative_refused)
{
	static const char why[] = "dir: needs an absolute path "
				  "(dir:/srv/phifs/region-a)";

	expect_bad("dir:srv/phifs", why);
	expect_bad("dir:./x", why);
	expect_bad("dir:", why);
}

TEST(s3_bucket_only)
{
	struct backend_url u;
	char err[256];

	ASSERT_OK(backend_url_parse("s3://phifs-data", &u, err, sizeof(err)));
	ASSERT_EQ(u.kind, BACKEND_S3);
	ASSERT_STREQ(u.bucket, "phifs-data");
	ASSERT_STREQ(u.prefix, "");
	ASSERT_STREQ(u.path, "");
}

TEST(s3_bucket_and_prefix)
{
	struct backend_url u;
	char err[256];

	ASSERT_OK(backend_url_parse("s3://my.bucket-1/clinic/a", &u, err,
				    sizeof(err)));
	ASSERT_STREQ(u.bucket, "my.bucket-1");
	ASSERT_STREQ(u.prefix, "clinic/a");
}

/* The struct holds its strings: a copy outlives the original. */
TEST(url_copy_is_self_contained)
{
	struct backend_url a, b;
	char err[256];

	ASSERT_OK(backend_url_parse("s3://bkt/clinic/a", &a, err,
				    sizeof(err)));
	b = a;
	memset(&a, 0, sizeof(a));
	ASSERT_STREQ(b.bucket, "bkt");
	ASSERT_STREQ(b.prefix, "clinic/a");
	ASSERT_OK(backend_url_parse("dir:/srv/r", &a, err, sizeof(err)));
	b = a;
	memset(&a, 0, sizeof(a));
	ASSERT_STREQ(b.path, "/srv/r");
}

/* The longest url each field holds, and one byte more. */
TEST(url_length_limits)
{
	struct backend_url u;
	char url[1200], err[256];

	strcpy(url, "dir:/");
	memset(url + 5, 'p', 1022);
	url[1027] = '\0';
	ASSERT_OK(backend_url_parse(url, &u, err, sizeof(err)));
	ASSERT_EQ(strlen(u.path), 1023);
	strcat(url, "p");
	ASSERT_ERR(backend_url_parse(url, &u, err, sizeof(err)), -EINVAL);
	ASSERT_STREQ(err, "path too long");

	strcpy(url, "s3://bkt/");
	memset(url + 9, 'x', 507);
	url[516] = '\0';
	ASSERT_OK(backend_url_parse(url, &u, err, sizeof(err)));
	ASSERT_EQ(strlen(u.prefix), 507);
	strcat(url, "x");
	ASSERT_ERR(backend_url_parse(url, &u, err, sizeof(err)), -EINVAL);
	ASSERT_STREQ(err, "url too long");
}

TEST(s3_prefix_slashes_trimmed)
{
	struct backend_url u;
	char err[256];

	ASSERT_OK(backend_url_parse("s3://bkt//a/b//", &u, err, sizeof(err)));
	ASSERT_STREQ(u.bucket, "bkt");
	ASSERT_STREQ(u.prefix, "a/b");
	ASSERT_OK(backend_url_parse("s3://bkt/", &u, err, sizeof(err)));
	ASSERT_STREQ(u.prefix, "");
}

TEST(s3_bad_bucket)
{
	static const char why[] = "bad bucket name (3-63 characters: "
				  "lowercase letters, digits, '.' and '-')";
	char long_name[80] = "s3://";

	memset(long_name + 5, 'b', 64);
	long_name[69] = '\0';
	expect_bad("s3://ab", why);
	expect_bad("s3://Bucket", why);
	expect_bad("s3://-bucket", why);
	expect_bad("s3://bucket-", why);
	expect_bad("s3://buck_et", why);
	expect_bad("s3:///prefix", why);
	expect_bad(long_name, why);
	expect_bad("s3://", "s3:// needs a bucket (s3://BUCKET/PREFIX)");
}

TEST(s3_bucket_63_chars)
{
	struct backend_url u;
	char url[80] = "s3://", err[256];

	memset(url + 5, 'b', 63);
	url[68] = '\0';
	ASSERT_OK(backend_url_parse(url, &u, err, sizeof(err)));
	ASSERT_EQ(strlen(u.bucket), 63);
}

TEST(s3_user_refused)
{
	static const char why[] = "credentials do not belong in the url; "
				  "use credentials_file";

	expect_bad("s3://key:secret@bucket/p", why);
	expect_bad("s3://user@bucket", why);
	expect_bad("s3://bucket/p@x", why);
}

TEST(unknown_scheme)
{
	static const char why[] = "unknown scheme (use dir:/PATH or "
				  "s3://BUCKET/PREFIX)";

	expect_bad("ftp://host/x", why);
	expect_bad("https://s3.example.com/bucket", why);
	expect_bad("/srv/phifs", why);
	expect_bad("S3://bucket", why);
	expect_bad("", why);
}

TEST_MAIN(
	TEST_ENTRY(dir_absolute),
	TEST_ENTRY(dir_relative_refused),
	TEST_ENTRY(s3_bucket_only),
	TEST_ENTRY(s3_bucket_and_prefix),
	TEST_ENTRY(url_copy_is_self_contained),
	TEST_ENTRY(url_length_limits),
	TEST_ENTRY(s3_prefix_slashes_trimmed),
	TEST_ENTRY(s3_bad_bucket),
	TEST_ENTRY(s3_bucket_63_chars),
	TEST_ENTRY(s3_user_refused),
	TEST_ENTRY(unknown_scheme),
)
