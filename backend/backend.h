/*
 * backend.h - where sealed objects go: the object-store interface.
 *
 * For now this module owns the parsing and validation of a region's url,
 * so that configuration files are stable before the drivers arrive.  The
 * object interface (put/get/head/list/del through one wrapper per method)
 * and the dir, s3 and replica drivers will be declared here.
 */
#ifndef BACKEND_H
#define BACKEND_H

#include <stddef.h>

enum backend_kind {
	BACKEND_DIR = 1,	/* dir:/absolute/path */
	BACKEND_S3 = 2,		/* s3://bucket[/prefix] */
};

/* A parsed region url.  Strings point into `buf`. */
struct backend_url {
	enum backend_kind kind;
	const char *path;	/* dir: the absolute folder */
	const char *bucket;	/* s3: bucket name (3..63, S3 naming rules) */
	const char *prefix;	/* s3: key prefix without slashes at the ends,
				   "" when absent */
	char buf[1024];
};

/*
 * Parse url into *out.  Returns 0, or -EINVAL with a short reason in
 * err ("dir: needs an absolute path", "unknown scheme 'ftp'").
 */
int backend_url_parse(const char *url, struct backend_url *out, char *err,
		      size_t errlen);

#endif
