/*
 * s3_sign.c - AWS Signature Version 4 for the s3 driver, in our own code.
 *
 * A request is signed in four steps (AWS "Signature Calculations for the
 * Authorization Header"):
 *
 *	backend_s3_canonical_request()  METHOD \n URI \n QUERY \n headers \n
 *	                        signed-header-names \n payload-hash
 *	backend_s3_string_to_sign()     "AWS4-HMAC-SHA256" \n date \n scope \n
 *	                        hex(sha256(canonical request))
 *	backend_s3_signing_key()        HMAC chain from "AWS4"+secret over date,
 *	                        region, service, "aws4_request"
 *	backend_s3_signature()          hex(HMAC(signing key, string to sign))
 *
 * libcurl's own SigV4 is not used: it cannot take an access key with a
 * colon through USERPWD, adds no x-amz-content-sha256 and signs the query
 * exactly as written.  Here the query we sign is also the query we send.
 *
 * Secrets: the secret key is read, never copied, and every derived key
 * is wiped before return.  Nothing here logs.
 */
#include "s3_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ---- hashing -------------------------------------------------------- */

void backend_s3_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void backend_s3_sha256_hex(const void *data, size_t len,
			   char out[S3_SHA256_HEX])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	/* only fails on allocation failure inside OpenSSL */
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		memset(md, 0, sizeof(md));
	backend_s3_hex(md, sizeof(md), out);
}

void backend_s3_hmac_sha256(const void *key, size_t keylen, const void *msg,
			    size_t len, unsigned char out[32])
{
	unsigned int outlen = 32;

	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen))
		memset(out, 0, 32);
}

void backend_s3_md5_base64(const void *data, size_t len, char out[S3_MD5_B64])
{
	unsigned char md[16];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL))
		memset(md, 0, sizeof(md));
	EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
}

/* ---- encoding ------------------------------------------------------- */

static int add(struct buf *b, int rc, const char *s)
{
	return rc ? rc : buf_add(b, s, strlen(s));
}

static bool unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
	       ch == '.' || ch == '~';
}

int backend_s3_uri_encode(struct buf *out, const char *s, bool keep_slash)
{
	static const char digits[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[3] = { '%', digits[*p >> 4], digits[*p & 15] };
		int rc;

		if (unreserved(*p) || (keep_slash && *p == '/'))
			rc = buf_add(out, p, 1);
		else
			rc = buf_add(out, esc, 3);
		if (rc)
			return rc;
	}
	return 0;
}

struct enc_param {
	char *name, *value;	/* encoded, NUL-terminated */
};

static int enc_cmp(const void *a, const void *b)
{
	const struct enc_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* A malloc'd encoded copy of s, or NULL. */
static char *encode_dup(const char *s)
{
	struct buf b;
	char *copy = NULL;

	buf_init(&b, SIZE_MAX);
	if (backend_s3_uri_encode(&b, s ? s : "", false) == 0)
		copy = strdup(buf_data(&b));
	buf_release(&b);
	return copy;
}

int backend_s3_query_string(struct buf *out, const struct s3_param *p, size_t n)
{
	struct enc_param *v;
	int rc = 0;

	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		v[i].name = encode_dup(p[i].name);
		v[i].value = encode_dup(p[i].value);
		if (!v[i].name || !v[i].value)
			rc = -ENOMEM;
	}
	if (rc == 0)
		qsort(v, n, sizeof(*v), enc_cmp);
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = add(out, i ? buf_add(out, "&", 1) : 0, v[i].name);
		rc = add(out, rc ? rc : buf_add(out, "=", 1), v[i].value);
	}
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
	return rc;
}

/* ---- canonical request ---------------------------------------------- */

struct canon_header {
	char name[64];		/* lowercased */
	const char *value;
};

static int canon_cmp(const void *a, const void *b)
{
	return strcmp(((const struct canon_header *)a)->name,
		      ((const struct canon_header *)b)->name);
}

/* Append value trimmed, with each inner run of spaces squeezed to one. */
static int add_trimmed(struct buf *b, const char *value)
{
	const char *p = value, *end = value + strlen(value);
	int rc = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; p < end && rc == 0; p++) {
		bool space = *p == ' ' || *p == '\t';

		if (space && (p[1] == ' ' || p[1] == '\t'))
			continue;
		rc = buf_add(b, space ? " " : p, 1);
	}
	return rc;
}

static int sorted_headers(const struct s3_sign_input *in,
			  struct canon_header **out)
{
	struct canon_header *h = calloc(in->nheaders ? in->nheaders : 1,
					sizeof(*h));

	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < in->nheaders; i++) {
		size_t n = strlen(in->headers[i].name);

		if (n >= sizeof(h[i].name)) {
			free(h);
			return -EINVAL;
		}
		for (size_t k = 0; k <= n; k++) {
			char ch = in->headers[i].name[k];

			h[i].name[k] = (ch >= 'A' && ch <= 'Z') ?
				(char)(ch - 'A' + 'a') : ch;
		}
		h[i].value = in->headers[i].value;
	}
	qsort(h, in->nheaders, sizeof(*h), canon_cmp);
	*out = h;
	return 0;
}

int backend_s3_canonical_request(struct buf *out, struct buf *signed_headers,
				 const struct s3_sign_input *in)
{
	struct canon_header *h;
	int rc = sorted_headers(in, &h);

	if (rc)
		return rc;
	rc = add(out, rc, in->method);
	rc = add(out, rc, "\n");
	rc = add(out, rc, in->uri);
	rc = add(out, rc, "\n");
	rc = add(out, rc, in->query);
	rc = add(out, rc, "\n");
	for (size_t i = 0; i < in->nheaders; i++) {
		rc = add(out, rc, h[i].name);
		rc = add(out, rc, ":");
		rc = rc ? rc : add_trimmed(out, h[i].value);
		rc = add(out, rc, "\n");
	}
	rc = add(out, rc, "\n");
	for (size_t i = 0; i < in->nheaders; i++) {
		rc = add(out, rc, i ? ";" : "");
		rc = add(out, rc, h[i].name);
		if (signed_headers) {
			rc = add(signed_headers, rc, i ? ";" : "");
			rc = add(signed_headers, rc, h[i].name);
		}
	}
	rc = add(out, rc, "\n");
	rc = add(out, rc, in->payload_hash);
	free(h);
	return rc;
}

/* "20130524/us-east-1/s3/aws4_request" */
static int add_scope(struct buf *b, int rc, const struct s3_sign_input *in)
{
	rc = rc ? rc : buf_add(b, in->amz_date, 8);
	rc = add(b, rc, "/");
	rc = add(b, rc, in->region);
	rc = add(b, rc, "/");
	rc = add(b, rc, in->service);
	return add(b, rc, "/aws4_request");
}

int backend_s3_string_to_sign(struct buf *out, const struct s3_sign_input *in,
			      const char *canonical_request)
{
	char h[S3_SHA256_HEX];
	int rc = 0;

	backend_s3_sha256_hex(canonical_request, strlen(canonical_request), h);
	rc = add(out, rc, "AWS4-HMAC-SHA256\n");
	rc = add(out, rc, in->amz_date);
	rc = add(out, rc, "\n");
	rc = add_scope(out, rc, in);
	rc = add(out, rc, "\n");
	return add(out, rc, h);
}

void backend_s3_signing_key(const char *secret, const char *amz_date,
			    const char *region, const char *service,
			    unsigned char key[32])
{
	size_t slen = strlen(secret);
	unsigned char *k0 = malloc(slen + 4);
	unsigned char k[32];

	if (!k0) {
		memset(key, 0, 32);
		return;
	}
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, slen);
	backend_s3_hmac_sha256(k0, slen + 4, amz_date, 8, k);
	explicit_bzero(k0, slen + 4);
	free(k0);
	backend_s3_hmac_sha256(k, 32, region, strlen(region), k);
	backend_s3_hmac_sha256(k, 32, service, strlen(service), k);
	backend_s3_hmac_sha256(k, 32, "aws4_request", 12, key);
	explicit_bzero(k, sizeof(k));
}

void backend_s3_signature(const unsigned char key[32],
			  const char *string_to_sign, char out[S3_SHA256_HEX])
{
	unsigned char mac[32];

	backend_s3_hmac_sha256(key, 32, string_to_sign, strlen(string_to_sign),
			       mac);
	backend_s3_hex(mac, sizeof(mac), out);
}

/* Signature of in (with the query already in place) into sig. */
static int sign(const struct s3_sign_input *in, const char *secret_key,
		struct buf *signed_headers, char sig[S3_SHA256_HEX])
{
	struct buf creq, sts;
	unsigned char key[32];
	int rc;

	buf_init(&creq, SIZE_MAX);
	buf_init(&sts, SIZE_MAX);
	rc = backend_s3_canonical_request(&creq, signed_headers, in);
	if (rc == 0)
		rc = backend_s3_string_to_sign(&sts, in, buf_data(&creq));
	if (rc == 0) {
		backend_s3_signing_key(secret_key, in->amz_date, in->region,
			       in->service, key);
		backend_s3_signature(key, buf_data(&sts), sig);
		explicit_bzero(key, sizeof(key));
	}
	buf_release(&creq);
	buf_release(&sts);
	return rc;
}

int backend_s3_authorization(struct buf *out, const struct s3_sign_input *in,
			     const char *access_key, const char *secret_key)
{
	char sig[S3_SHA256_HEX];
	struct buf sh;
	int rc;

	buf_init(&sh, SIZE_MAX);
	rc = sign(in, secret_key, &sh, sig);
	rc = add(out, rc, "AWS4-HMAC-SHA256 Credential=");
	rc = add(out, rc, access_key);
	rc = add(out, rc, "/");
	rc = add_scope(out, rc, in);
	rc = add(out, rc, ",SignedHeaders=");
	rc = add(out, rc, buf_data(&sh));
	rc = add(out, rc, ",Signature=");
	rc = add(out, rc, sig);
	buf_release(&sh);
	explicit_bzero(sig, sizeof(sig));
	return rc;
}

int backend_s3_presign(struct buf *out, const char *scheme_host,
		       const struct s3_sign_input *in, unsigned expires,
		       const char *access_key, const char *secret_key)
{
	struct s3_sign_input q = *in;
	struct buf cred, query;
	char exp[16], sig[S3_SHA256_HEX] = "";
	int rc;

	buf_init(&cred, SIZE_MAX);
	buf_init(&query, SIZE_MAX);
	snprintf(exp, sizeof(exp), "%u", expires);
	rc = add(&cred, 0, access_key);
	rc = add(&cred, rc, "/");
	rc = add_scope(&cred, rc, in);
	if (rc == 0) {
		const struct s3_param p[] = {
			{ "X-Amz-Algorithm", "AWS4-HMAC-SHA256" },
			{ "X-Amz-Credential", buf_data(&cred) },
			{ "X-Amz-Date", in->amz_date },
			{ "X-Amz-Expires", exp },
			{ "X-Amz-SignedHeaders", "host" },
		};

		rc = backend_s3_query_string(&query, p,
					     sizeof(p) / sizeof(p[0]));
	}
	q.query = buf_data(&query);
	q.payload_hash = "UNSIGNED-PAYLOAD";
	rc = rc ? rc : sign(&q, secret_key, NULL, sig);
	rc = add(out, rc, scheme_host);
	rc = add(out, rc, in->uri);
	rc = add(out, rc, "?");
	rc = add(out, rc, buf_data(&query));
	rc = add(out, rc, "&X-Amz-Signature=");
	rc = add(out, rc, sig);
	buf_release(&cred);
	buf_release(&query);
	return rc;
}

void backend_s3_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
