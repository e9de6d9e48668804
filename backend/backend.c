/*
 * backend.c - region url parsing.  A url names a place; it never carries
 * credentials (those live in a credentials file), so a url with a user
 * part is refused rather than silently logged somewhere.
 */
#include "backend.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

/* S3 bucket naming: 3-63 chars of [a-z0-9.-], starting and ending with a
 * letter or digit.  Stricter than some servers allow, which is what a
 * config meant to move between providers wants. */
static int bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)b[i];

		if (!(islower(ch) || isdigit(ch) || ch == '.' || ch == '-'))
			return 0;
	}
	return isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
}

static int parse_dir(const char *rest, struct backend_url *out, char *err,
		     size_t errlen)
{
	if (rest[0] != '/')
		return fail(err, errlen, "dir: needs an absolute path "
			    "(dir:/srv/phifs/region-a)");
	if (strlen(rest) >= sizeof(out->buf))
		return fail(err, errlen, "path too long");
	memcpy(out->buf, rest, strlen(rest) + 1);
	out->kind = BACKEND_DIR;
	out->path = out->buf;
	out->bucket = NULL;
	out->prefix = NULL;
	return 0;
}

static int parse_s3(const char *rest, struct backend_url *out, char *err,
		    size_t errlen)
{
	size_t n = strlen(rest);
	char *slash, *p;
	static char empty[] = "";

	if (n == 0)
		return fail(err, errlen, "s3:// needs a bucket (s3://BUCKET/PREFIX)");
	if (n >= sizeof(out->buf) / 2)
		return fail(err, errlen, "url too long");
	if (strchr(rest, '@'))
		return fail(err, errlen, "credentials do not belong in the url; "
			    "use credentials_file");
	memcpy(out->buf, rest, n + 1);
	slash = strchr(out->buf, '/');
	p = empty;
	if (slash) {
		*slash = '\0';
		p = slash + 1;
		while (*p == '/')
			p++;
		for (size_t m = strlen(p); m > 0 && p[m - 1] == '/'; m--)
			p[m - 1] = '\0';
	}
	if (!bucket_ok(out->buf))
		return fail(err, errlen, "bad bucket name (3-63 characters: "
			    "lowercase letters, digits, '.' and '-')");
	out->kind = BACKEND_S3;
	out->bucket = out->buf;
	out->prefix = p;
	out->path = NULL;
	return 0;
}

int backend_url_parse(const char *url, struct backend_url *out, char *err,
		      size_t errlen)
{
	struct backend_url tmp;
	int rc;

	if (strncmp(url, "dir:", 4) == 0)
		rc = parse_dir(url + 4, &tmp, err, errlen);
	else if (strncmp(url, "s3://", 5) == 0)
		rc = parse_s3(url + 5, &tmp, err, errlen);
	else
		rc = fail(err, errlen, "unknown scheme (use dir:/PATH or "
			  "s3://BUCKET/PREFIX)");
	if (rc == 0) {
		*out = tmp;
		/* re-point into the caller's copy of buf */
		if (tmp.path)
			out->path = out->buf + (tmp.path - tmp.buf);
		if (tmp.bucket)
			out->bucket = out->buf + (tmp.bucket - tmp.buf);
		if (tmp.prefix && tmp.prefix[0])
			out->prefix = out->buf + (tmp.prefix - tmp.buf);
		else if (tmp.prefix)
			out->prefix = "";
	}
	return rc;
}
