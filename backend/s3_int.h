/*
 * s3_int.h - the pieces of the s3 driver, for backend/ and its white-box
 * tests only.
 *
 * Nothing outside backend/ includes this, except tests/unit/test_s3.c,
 * which checks these pieces byte for byte against AWS's published
 * Signature Version 4 examples and against hand-made XML.  Everything a
 * user of the driver needs is in backend.h; this header may change
 * whenever the driver does.
 *
 *   s3_sign.c      hashing, URI encoding, canonical request, string to
 *                  sign, signing key, Authorization header, presigned urls
 *   s3_xml.c       the replies we read: ListObjectsV2, Error,
 *                  InitiateMultipartUploadResult, CompleteMultipartUpload,
 *                  DeleteResult (expat; no DTDs, bounded depth and sizes)
 *   backend_s3.c   the driver: transfers, retries, the error table
 *
 * Strings built here go into a struct buf; every builder returns 0,
 * -ENOMEM or -E2BIG (the buf's cap) and appends nothing useful on failure.
 * All functions may be called from any thread.
 */
#ifndef S3_INT_H
#define S3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* ---- hashing -------------------------------------------------------- */

#define S3_SHA256_HEX 65	/* 64 lowercase hex digits and a NUL */
#define S3_MD5_B64 25		/* 24 base64 characters and a NUL */

/* n bytes at p in lower-case hex, NUL-terminated, into out (2n + 1). */
void backend_s3_hex(const unsigned char *p, size_t n, char *out);
void backend_s3_sha256_hex(const void *data, size_t len,
			   char out[S3_SHA256_HEX]);
void backend_s3_hmac_sha256(const void *key, size_t keylen, const void *msg,
			    size_t len, unsigned char out[32]);
/* base64 of the MD5 of data, for Content-MD5. */
void backend_s3_md5_base64(const void *data, size_t len, char out[S3_MD5_B64]);

/* ---- encoding ------------------------------------------------------- */

/*
 * Append s percent-encoded the S3 way: every byte but A-Z a-z 0-9 - _ . ~
 * becomes %XX (uppercase hex), and '/' too unless keep_slash (object key
 * paths keep it, query values do not).
 */
int backend_s3_uri_encode(struct buf *out, const char *s, bool keep_slash);

/* One query parameter, unencoded.  value NULL is the same as "". */
struct s3_param {
	const char *name;
	const char *value;
};

/*
 * Append the canonical query string of p[0..n): each name and value
 * encoded, pairs sorted by encoded name then value, "name=value" joined
 * with '&' ("uploads=" for a valueless one).  The same string serves as
 * the query of the url we send, so the server sees what we signed.
 */
int backend_s3_query_string(struct buf *out, const struct s3_param *p,
			    size_t n);

/* ---- Signature Version 4 -------------------------------------------- */

struct s3_header {
	const char *name;	/* any case */
	const char *value;	/* trimmed and inner runs of spaces squeezed
				   when signed */
};

struct s3_sign_input {
	const char *method;		/* "GET" */
	const char *uri;		/* canonical URI, already encoded:
					   "/bucket/a%20b" */
	const char *query;		/* canonical query string or "" */
	const struct s3_header *headers;	/* the headers to sign; must
						   hold host and x-amz-date */
	size_t nheaders;
	const char *payload_hash;	/* hex SHA-256 or "UNSIGNED-PAYLOAD" */
	const char *amz_date;		/* "20130524T000000Z" */
	const char *region;		/* "us-east-1" */
	const char *service;		/* "s3" */
};

/*
 * The canonical request (AWS "CanonicalRequest"), and if signed is not
 * NULL the SignedHeaders list ("host;range;x-amz-date") appended to it.
 * Header names are lowercased and sorted; no two may be equal.
 */
int backend_s3_canonical_request(struct buf *out, struct buf *signed_headers,
				 const struct s3_sign_input *in);

/* The string to sign for a canonical request. */
int backend_s3_string_to_sign(struct buf *out, const struct s3_sign_input *in,
			      const char *canonical_request);

/* kSigning = HMAC chain over the date (first 8 characters of amz_date),
 * region, service and "aws4_request", keyed by "AWS4" + secret. */
void backend_s3_signing_key(const char *secret, const char *amz_date,
			    const char *region, const char *service,
			    unsigned char key[32]);

/* Hex of HMAC(key, string_to_sign). */
void backend_s3_signature(const unsigned char key[32],
			  const char *string_to_sign, char out[S3_SHA256_HEX]);

/*
 * The whole Authorization header value: "AWS4-HMAC-SHA256
 * Credential=AK/DATE/REGION/SERVICE/aws4_request,SignedHeaders=...,
 * Signature=...".  The signing key is derived here and wiped after use.
 */
int backend_s3_authorization(struct buf *out, const struct s3_sign_input *in,
			     const char *access_key, const char *secret_key);

/*
 * A presigned url for method on scheme_host + uri (query auth, payload
 * UNSIGNED-PAYLOAD, only host signed), valid for expires seconds.  For
 * tests and benchmarks that drive another client (curl) at our server.
 * in->query must be "" and in->headers must be just host.
 */
int backend_s3_presign(struct buf *out, const char *scheme_host,
		       const struct s3_sign_input *in, unsigned expires,
		       const char *access_key, const char *secret_key);

/* "20130524T000000Z" for t, in UTC. */
void backend_s3_amz_date(time_t t, char out[17]);

/* ---- XML replies ---------------------------------------------------- */

/*
 * All parsers return 0, or -EBADMSG for anything that is not a well
 * formed document of the expected kind (truncated, a DTD, too deep, an
 * element's text over 4 KiB, a missing required element), or -ENOMEM.
 * They never read past len.
 */

/* Called for each <Contents> of a list page; non-zero stops the parse
 * and is returned. */
typedef int s3_xml_key_fn(void *ctx, const char *key, uint64_t size);

struct s3_list_page {
	bool truncated;		/* IsTruncated was true */
	char *next_token;	/* NextContinuationToken, malloc'd, or NULL */
	size_t nkeys;		/* <Contents> seen */
};

/* A ListBucketResult (ListObjectsV2).  A truncated page without a token
 * is -EBADMSG: it could never be continued.  Free page->next_token with
 * backend_s3_list_page_release() whatever the result. */
int backend_s3_xml_list(const char *xml, size_t len, s3_xml_key_fn *fn,
			void *ctx, struct s3_list_page *page);
void backend_s3_list_page_release(struct s3_list_page *page);

struct s3_xml_error {
	char code[64];		/* "NoSuchBucket"; never empty on success */
	char message[256];	/* the server's words, cut to fit */
	char region[64];	/* the region the server expects: <Region>,
				   or "expecting 'X'" in the message; or "" */
	char bucket[64];	/* <BucketName>, or "" */
};

/* An <Error> document.  err is zeroed first. */
int backend_s3_xml_error(const char *xml, size_t len, struct s3_xml_error *err);

/* The UploadId of an InitiateMultipartUploadResult, malloc'd into *id
 * (NULL on failure). */
int backend_s3_xml_upload_id(const char *xml, size_t len, char **id);

/*
 * The reply to CompleteMultipartUpload, which may be an error although
 * the status was 200: 0 for a CompleteMultipartUploadResult, 1 for an
 * <Error> (err filled in), -EBADMSG otherwise.
 */
int backend_s3_xml_complete(const char *xml, size_t len,
			    struct s3_xml_error *err);

/* Called for each <Error> of a DeleteResult; non-zero stops. */
typedef int s3_xml_del_fn(void *ctx, const char *key, const char *code);

/* A DeleteResult: *ndeleted counts <Deleted>, fn sees each <Error>. */
int backend_s3_xml_delete_result(const char *xml, size_t len, s3_xml_del_fn *fn,
				 void *ctx, size_t *ndeleted);

/* ---- errors --------------------------------------------------------- */

/* What one failed exchange told us, for backend_s3_error_map(). */
struct s3_failure {
	int curl_code;		/* CURLcode; 0 if an HTTP reply came */
	int os_errno;		/* CURLINFO_OS_ERRNO, for connect errors */
	long status;		/* HTTP status, 0 if none came */
	const char *code;	/* S3 error Code, "" if none (HEAD) */
	const char *expected_region;	/* from the body, "" if none */
	const char *signing_region;	/* the region we signed for */
	const char *bucket;
	long skew;		/* seconds the server's clock is ahead of
				   ours (negative: behind) */
	int attempts;		/* tries made, for the message */
};

/*
 * The one table from an S3/HTTP/transport failure to a phifs code, with
 * a message for the user in msg: "region NAME: what happened: what to
 * do".  Never puts a credential or signature in msg.  0 is never
 * returned.
 */
int backend_s3_error_map(const struct s3_failure *f, const char *region_name,
			 char *msg, size_t msglen);

/* Would trying the same request again make sense?  5xx, 429, SlowDown
 * and transport failures other than TLS and name resolution; never
 * another 4xx. */
bool backend_s3_error_retryable(const struct s3_failure *f);

/* ---- endpoints ------------------------------------------------------ */

/* Is host (a name or address, IPv6 with or without brackets, no port)
 * loopback: localhost, 127.0.0.0/8 or ::1? */
bool backend_s3_host_is_loopback(const char *host);

#endif
