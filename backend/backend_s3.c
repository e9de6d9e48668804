/*
 * backend_s3.c - the "s3" driver: objects in an S3-compatible bucket,
 * over libcurl, signed with our own Signature Version 4 (s3_sign.c).
 *
 * Every method becomes one or more requests, each run by s3_request():
 *
 *	pool_get()        borrow an idle curl handle (its connection stays
 *	                  open between requests), or wait while
 *	                  max_transfers are lent out
 *	attempt()         sign with a fresh x-amz-date, set up the handle,
 *	                  curl_easy_perform(), note status, ETag and Date
 *	backend_s3_error_retryable()   5xx, 429/SlowDown, timeouts, dropped
 *	                  connections: sleep (exponential backoff with jitter)
 *	                  and attempt() again, up to max_attempts tries
 *	backend_s3_error_map()    the one table from HTTP status + S3 error
 *	                  Code + transport failure to a phifs code and a
 *	                  message; the message is kept for backend_last_error()
 *	pool_put()        give the handle back
 *
 * Invariants.  Settings are read-only after open; the handle pool and the
 * last message are the only shared mutable state, both under s->lock,
 * which is never held across a transfer.  A handle is used by one thread
 * at a time.  The secret key lives only in the struct and is wiped at
 * close; nothing here logs or stores a credential, a signature or an
 * Authorization header (messages name the region, bucket and keys only).
 */
#include "backend_int.h"
#include "s3_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "phi.h"

#define MIB (UINT64_C(1) << 20)
#define S3_LIST_PAGE 1000	/* keys per list page and per multi-delete */
#define S3_MAX_PARTS 1000
#define S3_MIN_PART (5 * MIB)
#define S3_ERR_BODY_MAX (8u << 20)	/* cap on error and XML bodies */
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000

struct s3_backend {
	struct backend base;
	/* read-only after open */
	char *name;		/* region name, for messages */
	char *bucket;
	char *prefix;		/* "" or "clinic/a/" (with the slash) */
	char *region;		/* signing region */
	char *base_url;		/* "https://bucket.host:port" (no path) */
	char *host;		/* Host header: what base_url names */
	char *bucket_path;	/* "/bucket" path-style, "" virtual-host */
	char *access_key;
	char *secret_key;	/* wiped at close */
	char *ca_file;		/* NULL: the system's */
	int loopback;		/* endpoint host is loopback: no proxy */
	unsigned max_transfers, max_attempts;
	uint64_t mp_threshold, part_size;
	long connect_timeout_ms, low_speed_time_s;

	pthread_mutex_t lock;
	pthread_cond_t handle_back;	/* a lent handle came back */
	CURL **idle;		/* protected by lock: nidle handles not lent */
	unsigned nidle;		/* protected by lock */
	unsigned lent;		/* protected by lock */
	char last_err[512];	/* protected by lock */
};

static const struct backend_ops s3_ops;

static struct s3_backend *s3_of(struct backend *be)
{
	assert(be && be->ops == &s3_ops);
	return (struct s3_backend *)be;
}

/* ---- the error table ------------------------------------------------ */

struct code_entry {
	const char *code;
	int err;
	const char *what;	/* the message after "region NAME: " */
};

/* S3 error Codes that say more than their HTTP status.  The special
 * messages (signing region, clock, bucket) are built in map_code(). */
static const struct code_entry s3_codes[] = {
	{ "AccessDenied", PHI_EAUTH, "access denied: check credentials_file" },
	{ "InvalidAccessKeyId", PHI_EAUTH, "the server does not know the "
	  "access key: check credentials_file" },
	{ "SignatureDoesNotMatch", PHI_EAUTH, "signature rejected (wrong "
	  "secret key?): check credentials_file" },
	{ "InvalidToken", PHI_EAUTH, "token rejected: check credentials_file" },
	{ "ExpiredToken", PHI_EAUTH, "token expired: check credentials_file" },
	{ "AuthorizationHeaderMalformed", PHI_EAUTH, NULL },
	{ "RequestTimeTooSkewed", PHI_ECLOCKSKEW, NULL },
	{ "NoSuchBucket", PHI_ENOBUCKET, NULL },
	{ "NoSuchKey", -ENOENT, "no such object" },
	{ "NoSuchUpload", -ENOENT, "the multipart upload is gone" },
	{ "InvalidRange", -ERANGE, "range not satisfiable" },
	{ "SlowDown", PHI_EUNREACHABLE, "server is overloaded (SlowDown): "
	  "try again later" },
	{ "ServiceUnavailable", PHI_EUNREACHABLE, "server unavailable: try "
	  "again later" },
	{ "EntityTooLarge", -EFBIG, "object too large for the server" },
	{ "QuotaExceeded", -ENOSPC, "quota exceeded: free space in the bucket" },
	{ "PermanentRedirect", PHI_ECONFIG, "the bucket lives at another "
	  "endpoint: fix endpoint and region" },
	{ "NotImplemented", -ENOTSUP, "the server does not implement a "
	  "request phifs needs" },
	{ "BadDigest", -EIO, "the server received a damaged body" },
	{ "XAmzContentSHA256Mismatch", -EIO, "the server received a damaged "
	  "body" },
};

/* "7 minutes" or "40 seconds" for a skew, either sign. */
static void skew_words(long skew, char *out, size_t len)
{
	long a = skew < 0 ? -skew : skew;

	if (a >= 90)
		snprintf(out, len, "%ld minutes", (a + 30) / 60);
	else
		snprintf(out, len, "%ld seconds", a);
}

static int map_special(const struct s3_failure *f, int err, const char *pre,
		       char *msg, size_t msglen)
{
	char words[32];

	if (err == PHI_ECLOCKSKEW) {
		if (f->skew == 0)
			snprintf(msg, msglen, "%sclock is too far off the "
				 "server's: fix the system clock", pre);
		else {
			skew_words(f->skew, words, sizeof(words));
			snprintf(msg, msglen, "%sclock is %s off the server's: "
				 "fix the system clock", pre, words);
		}
	} else if (err == PHI_ENOBUCKET) {
		snprintf(msg, msglen, "%sno such bucket '%s': create it or fix "
			 "the url", pre, f->bucket ? f->bucket : "");
	} else if (f->expected_region && f->expected_region[0]) {
		snprintf(msg, msglen, "%sthe server expects signing region "
			 "'%s', not '%s': set region = %s", pre,
			 f->expected_region, f->signing_region,
			 f->expected_region);
	} else {
		snprintf(msg, msglen, "%sauthorization header refused (wrong "
			 "signing region '%s'?): check region", pre,
			 f->signing_region);
	}
	return err;
}

static int map_code(const struct s3_failure *f, const char *pre, char *msg,
		    size_t msglen)
{
	for (size_t i = 0; i < sizeof(s3_codes) / sizeof(s3_codes[0]); i++) {
		const struct code_entry *e = &s3_codes[i];

		if (strcmp(e->code, f->code) != 0)
			continue;
		if (!e->what)
			return map_special(f, e->err, pre, msg, msglen);
		if (e->err == PHI_EUNREACHABLE && f->attempts > 1)
			snprintf(msg, msglen, "%s%s (%d tries)", pre, e->what,
				 f->attempts);
		else
			snprintf(msg, msglen, "%s%s", pre, e->what);
		return e->err;
	}
	return 0;
}

static int map_status(const struct s3_failure *f, const char *pre, char *msg,
		      size_t msglen)
{
	const char *code = f->code[0] ? f->code : "no error code";
	long st = f->status;

	if (st == 401 || st == 403) {
		snprintf(msg, msglen, "%saccess denied: check credentials_file",
			 pre);
		return PHI_EAUTH;
	}
	if (st == 404) {
		snprintf(msg, msglen, "%sno such object", pre);
		return -ENOENT;
	}
	if (st == 301 || st == 307) {
		snprintf(msg, msglen, "%sthe bucket lives at another endpoint: "
			 "fix endpoint and region", pre);
		return PHI_ECONFIG;
	}
	if (st == 429 || st == 502 || st == 503 || st == 504) {
		snprintf(msg, msglen, "%sserver unavailable (%ld, %s) after %d "
			 "tries: try again later", pre, st, code, f->attempts);
		return PHI_EUNREACHABLE;
	}
	if (st == 416) {
		snprintf(msg, msglen, "%srange not satisfiable", pre);
		return -ERANGE;
	}
	if (st == 405 || st == 501) {
		snprintf(msg, msglen, "%sthe server does not implement a "
			 "request phifs needs (%ld, %s)", pre, st, code);
		return -ENOTSUP;
	}
	if (st >= 500)
		snprintf(msg, msglen, "%sserver error (%ld, %s) after %d tries",
			 pre, st, code, f->attempts);
	else
		snprintf(msg, msglen, "%srequest refused (%ld, %s)", pre, st,
			 code);
	return -EIO;
}

static bool curl_is_tls(int cc)
{
	return cc == CURLE_PEER_FAILED_VERIFICATION ||
	       cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CERTPROBLEM ||
	       cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_ISSUER_ERROR ||
	       cc == CURLE_SSL_CIPHER || cc == CURLE_SSL_CRL_BADFILE ||
	       cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
	       cc == CURLE_SSL_INVALIDCERTSTATUS;
}

static int map_transport(const struct s3_failure *f, const char *pre,
			 char *msg, size_t msglen)
{
	int cc = f->curl_code;
	const char *why;

	if (curl_is_tls(cc)) {
		snprintf(msg, msglen, "%sTLS verification failed (%s): set "
			 "ca_file", pre, curl_easy_strerror((CURLcode)cc));
		return PHI_ETLS;
	}
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		why = f->os_errno == ECONNREFUSED || f->os_errno == 0 ?
			"connection refused" : strerror(f->os_errno);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		why = "timed out";
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		why = "cannot resolve the endpoint's host name";
		break;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		why = "connection lost";
		break;
	default:
		snprintf(msg, msglen, "%stransfer failed (%s)", pre,
			 curl_easy_strerror((CURLcode)cc));
		return -EIO;
	}
	if (f->attempts > 1)
		snprintf(msg, msglen, "%sunreachable (%s, %d tries)", pre, why,
			 f->attempts);
	else
		snprintf(msg, msglen, "%sunreachable (%s)", pre, why);
	return PHI_EUNREACHABLE;
}

int backend_s3_error_map(const struct s3_failure *f, const char *region_name,
			 char *msg, size_t msglen)
{
	char pre[96];
	int err;

	snprintf(pre, sizeof(pre), "region %s: ",
		 region_name && region_name[0] ? region_name : "s3");
	if (f->curl_code)
		return map_transport(f, pre, msg, msglen);
	if (f->code && f->code[0]) {
		err = map_code(f, pre, msg, msglen);
		if (err)
			return err;
	}
	return map_status(f, pre, msg, msglen);
}

bool backend_s3_error_retryable(const struct s3_failure *f)
{
	switch (f->curl_code) {
	case 0:
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
	if (f->code && strcmp(f->code, "SlowDown") == 0)
		return true;
	return f->status == 429 || (f->status >= 500 && f->status != 501);
}

/* ---- endpoints ------------------------------------------------------ */

bool backend_s3_host_is_loopback(const char *host)
{
	char h[64];
	size_t n = strlen(host);
	struct in_addr a4;
	struct in6_addr a6;

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = '\0';
	if (strcasecmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, h, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

struct endpoint {
	bool https;
	char hostport[256];	/* "host:port" as written */
	char host[256];		/* without port, IPv6 with brackets */
};

static int fail_open(char *err, size_t errlen, const char *name,
		     const char *why)
{
	snprintf(err, errlen, "region %s: %s", name, why);
	return -EINVAL;
}

/* Split "scheme://host[:port][/]". */
static int parse_endpoint(const char *url, struct endpoint *ep)
{
	const char *p, *end, *colon;
	size_t n;

	if (strncmp(url, "https://", 8) == 0) {
		ep->https = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		ep->https = false;
		p = url + 7;
	} else {
		return -EINVAL;
	}
	n = strlen(p);
	if (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(ep->hostport) || memchr(p, '/', n) ||
	    memchr(p, '@', n) || memchr(p, '?', n))
		return -EINVAL;
	memcpy(ep->hostport, p, n);
	ep->hostport[n] = '\0';
	end = ep->hostport + n;
	if (ep->hostport[0] == '[') {
		const char *rb = strchr(ep->hostport, ']');

		if (!rb || (rb[1] != '\0' && rb[1] != ':'))
			return -EINVAL;
		end = rb + 1;
	} else if ((colon = strchr(ep->hostport, ':')) != NULL) {
		end = colon;
	}
	memcpy(ep->host, ep->hostport, (size_t)(end - ep->hostport));
	ep->host[end - ep->hostport] = '\0';
	return ep->host[0] ? 0 : -EINVAL;
}

static bool host_is_address(const char *host)
{
	unsigned char a[16];

	return host[0] == '[' || inet_pton(AF_INET, host, a) == 1 ||
	       strcasecmp(host, "localhost") == 0;
}

/* ---- the handle pool ------------------------------------------------ */

/* A handle for one request; blocks while max_transfers are lent out.
 * NULL only when curl cannot make a handle. */
static CURL *pool_get(struct s3_backend *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->lock);
	while (s->lent >= s->max_transfers)
		pthread_cond_wait(&s->handle_back, &s->lock);
	s->lent++;
	if (s->nidle)
		h = s->idle[--s->nidle];
	pthread_mutex_unlock(&s->lock);
	if (!h)
		h = curl_easy_init();
	if (!h) {
		pthread_mutex_lock(&s->lock);
		s->lent--;
		pthread_cond_signal(&s->handle_back);
		pthread_mutex_unlock(&s->lock);
	}
	return h;
}

static void pool_put(struct s3_backend *s, CURL *h)
{
	pthread_mutex_lock(&s->lock);
	assert(s->lent > 0 && s->nidle < s->max_transfers);
	s->idle[s->nidle++] = h;
	s->lent--;
	pthread_cond_signal(&s->handle_back);
	pthread_mutex_unlock(&s->lock);
}

/* ---- one request ---------------------------------------------------- */

struct s3_req {
	const char *method;		/* "GET", "PUT", ... */
	const char *key;		/* full object name (prefix applied),
					   NULL for the bucket itself */
	const struct s3_param *params;
	size_t nparams;
	const void *body;
	size_t body_len;
	const uint8_t *body_sha256;	/* its digest if known, or NULL */
	const char *content_md5;	/* base64, or NULL */
	const char *content_type;	/* or NULL */
	const char *range;		/* "bytes=0-9", or NULL */
	struct buf *out;		/* 2xx body; NULL: into resp->body */
};

struct s3_resp {
	long status;
	int curl_code;
	int os_errno;
	int attempts;
	int sink_err;			/* out refused the body (-E2BIG) */
	struct buf body;		/* non-2xx (or out-less) body */
	char etag[128];
	time_t server_date;		/* 0 if no Date header */
	uint64_t length;		/* Content-Length of a HEAD */
	CURL *h;			/* for the write callback */
	struct buf *out;
};

static void resp_init(struct s3_resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, S3_ERR_BODY_MAX);
}

static void resp_release(struct s3_resp *r)
{
	buf_release(&r->body);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct s3_resp *r = ud;
	long st = 0;
	struct buf *dst;
	int rc;

	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &st);
	dst = (st >= 200 && st < 300 && r->out) ? r->out : &r->body;
	rc = buf_add(dst, p, size * n);
	if (rc) {
		r->sink_err = dst == r->out ? rc : -EIO;
		return 0;
	}
	return size * n;
}

/* Is line "Name: value" for this name?  Then point at the value. */
static const char *header_value(const char *line, size_t len,
				const char *name, size_t *vlen)
{
	size_t n = strlen(name);
	const char *v, *end = line + len;

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	v = line + n + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
			   end[-1] == ' '))
		end--;
	*vlen = (size_t)(end - v);
	return v;
}

/* A 2xx body's announced size: make room at once (one allocation, not a
 * doubling series), and refuse early what out's cap cannot hold. */
static int reserve_body(struct s3_resp *r, const char *v, size_t vlen)
{
	char tmp[32];
	long st = 0;
	unsigned long long cl;

	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &st);
	if (!r->out || st < 200 || st >= 300 || vlen >= sizeof(tmp))
		return 0;
	memcpy(tmp, v, vlen);
	tmp[vlen] = '\0';
	cl = strtoull(tmp, NULL, 10);
	if (cl > SIZE_MAX)
		return -E2BIG;
	return buf_reserve(r->out, (size_t)cl);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct s3_resp *r = ud;
	size_t len = size * n, vlen;
	const char *v;
	char tmp[128];

	if ((v = header_value(p, len, "Content-Length", &vlen)) != NULL) {
		r->sink_err = reserve_body(r, v, vlen);
		if (r->sink_err)
			return 0;
	} else if ((v = header_value(p, len, "ETag", &vlen)) != NULL) {
		if (vlen < sizeof(r->etag)) {
			memcpy(r->etag, v, vlen);
			r->etag[vlen] = '\0';
		}
	} else if ((v = header_value(p, len, "Date", &vlen)) != NULL &&
		   vlen < sizeof(tmp)) {
		memcpy(tmp, v, vlen);
		tmp[vlen] = '\0';
		r->server_date = curl_getdate(tmp, NULL);
		if (r->server_date < 0)
			r->server_date = 0;
	}
	return len;
}

/* Everything of a request that stays the same across its tries. */
struct prepared {
	struct buf path;	/* encoded: "/bucket/clinic/a/key" */
	struct buf query;	/* canonical query string */
	struct buf url;
	char payload_hash[S3_SHA256_HEX];
};

static int prepare(struct s3_backend *s, const struct s3_req *req,
		   struct prepared *pr)
{
	int rc;

	buf_init(&pr->path, SIZE_MAX);
	buf_init(&pr->query, SIZE_MAX);
	buf_init(&pr->url, SIZE_MAX);
	if (req->body_sha256)
		backend_s3_hex(req->body_sha256, 32, pr->payload_hash);
	else
		backend_s3_sha256_hex(req->body ? req->body : "",
				      req->body_len, pr->payload_hash);
	rc = buf_add(&pr->path, s->bucket_path, strlen(s->bucket_path));
	if (rc == 0 && (req->key || !s->bucket_path[0]))
		rc = buf_add(&pr->path, "/", 1);
	if (rc == 0 && req->key)
		rc = backend_s3_uri_encode(&pr->path, req->key, true);
	if (rc == 0)
		rc = backend_s3_query_string(&pr->query, req->params,
					     req->nparams);
	if (rc == 0)
		rc = buf_add(&pr->url, s->base_url, strlen(s->base_url));
	if (rc == 0)
		rc = buf_add(&pr->url, buf_data(&pr->path), buf_len(&pr->path));
	if (rc == 0 && buf_len(&pr->query))
		rc = buf_add(&pr->url, "?", 1);
	if (rc == 0)
		rc = buf_add(&pr->url, buf_data(&pr->query),
			     buf_len(&pr->query));
	return rc;
}

static void prepared_release(struct prepared *pr)
{
	buf_release(&pr->path);
	buf_release(&pr->query);
	buf_release(&pr->url);
}

/* Append "Name: value" to the curl header list; NULL on failure. */
static struct curl_slist *add_header(struct curl_slist *list,
				     const char *name, const char *value)
{
	char line[1024];
	struct curl_slist *next;

	if (!list)
		return NULL;
	snprintf(line, sizeof(line), "%s: %s", name, value);
	next = curl_slist_append(list, line);
	explicit_bzero(line, sizeof(line));
	if (!next)
		curl_slist_free_all(list);
	return next;
}

/* The signed headers and the Authorization header, as a curl list. */
static int sign_headers(struct s3_backend *s, const struct s3_req *req,
			const struct prepared *pr, struct curl_slist **out)
{
	struct s3_header hv[5];
	struct s3_sign_input in;
	struct curl_slist *list;
	struct buf auth;
	char date[17];
	size_t nh = 0;
	int rc;

	backend_s3_amz_date(time(NULL), date);
	hv[nh++] = (struct s3_header){ "host", s->host };
	hv[nh++] = (struct s3_header){ "x-amz-content-sha256",
				       pr->payload_hash };
	hv[nh++] = (struct s3_header){ "x-amz-date", date };
	if (req->content_md5)
		hv[nh++] = (struct s3_header){ "content-md5",
					       req->content_md5 };
	if (req->range)
		hv[nh++] = (struct s3_header){ "range", req->range };
	in = (struct s3_sign_input){
		.method = req->method, .uri = buf_data(&pr->path),
		.query = buf_data(&pr->query), .headers = hv, .nheaders = nh,
		.payload_hash = pr->payload_hash, .amz_date = date,
		.region = s->region, .service = "s3",
	};
	buf_init(&auth, 4096);
	rc = backend_s3_authorization(&auth, &in, s->access_key, s->secret_key);
	list = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; i < nh; i++)
		list = add_header(list, hv[i].name, hv[i].value);
	list = add_header(list, "Authorization", buf_data(&auth));
	list = add_header(list, "Content-Type", req->content_type ?
			  req->content_type : "");
	if (buf_mut(&auth))
		explicit_bzero(buf_mut(&auth), buf_len(&auth));
	buf_release(&auth);
	if (rc == 0 && !list)
		rc = -ENOMEM;
	if (rc) {
		curl_slist_free_all(list);
		return rc;
	}
	*out = list;
	return 0;
}

static void set_method(CURL *h, const struct s3_req *req)
{
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->method, "PUT") == 0 ||
		   strcmp(req->method, "POST") == 0) {
		/* POSTFIELDS sends the body from memory, rewinds by itself
		 * and takes any method name */
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				 req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	}
}

static void set_options(struct s3_backend *s, CURL *h, const char *url,
			struct curl_slist *headers, struct s3_resp *r)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (s->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
	if (s->loopback)
		curl_easy_setopt(h, CURLOPT_PROXY, "");
}

/* One try.  <0 only for a local failure (no memory); the outcome of the
 * exchange is in r. */
static int attempt(struct s3_backend *s, CURL *h, const struct s3_req *req,
		   const struct prepared *pr, struct s3_resp *r)
{
	struct curl_slist *headers = NULL;
	long oserr = 0;
	int rc = sign_headers(s, req, pr, &headers);

	if (rc)
		return rc;
	curl_easy_reset(h);
	r->h = h;
	r->out = req->out;
	set_options(s, h, buf_data(&pr->url), headers, r);
	set_method(h, req);
	r->curl_code = (int)curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
	r->os_errno = (int)oserr;
	if (r->curl_code == CURLE_OK && strcmp(req->method, "HEAD") == 0) {
		curl_off_t cl = -1;

		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		r->length = cl > 0 ? (uint64_t)cl : 0;
	}
	curl_slist_free_all(headers);
	return 0;
}

static bool status_ok(long st)
{
	return st >= 200 && st < 300;
}

/* What a finished exchange says, for the table; xe holds the parsed error
 * body and must outlive f. */
static void describe(struct s3_backend *s, const struct s3_resp *r,
		     struct s3_xml_error *xe, struct s3_failure *f)
{
	memset(xe, 0, sizeof(*xe));
	if (r->curl_code == CURLE_OK && buf_len(&r->body))
		(void)backend_s3_xml_error(buf_data(&r->body),
					   buf_len(&r->body), xe);
	*f = (struct s3_failure){
		.curl_code = r->curl_code, .os_errno = r->os_errno,
		.status = r->curl_code ? 0 : r->status, .code = xe->code,
		.expected_region = xe->region, .signing_region = s->region,
		.bucket = s->bucket, .attempts = r->attempts,
	};
	if (r->server_date)
		f->skew = (long)(r->server_date - time(NULL));
}

/* Sleep before try number next (2, 3, ...): exponential with jitter. */
static void backoff(int next)
{
	static _Thread_local unsigned seed;
	unsigned ms = BACKOFF_BASE_MS << (next - 2 < 6 ? next - 2 : 6);
	struct timespec ts;

	if (ms > BACKOFF_CAP_MS)
		ms = BACKOFF_CAP_MS;
	if (!seed)
		seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
	ms = ms / 2 + (unsigned)rand_r(&seed) % (ms / 2 + 1);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void set_last_error(struct s3_backend *s, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->last_err, sizeof(s->last_err), "%s", msg);
	pthread_mutex_unlock(&s->lock);
}

/* Map a failure, keep its message (not for a plain missing object or an
 * unsatisfiable range, which are answers rather than failures). */
static int fail(struct s3_backend *s, const struct s3_failure *f)
{
	char msg[512];
	int err = backend_s3_error_map(f, s->name, msg, sizeof(msg));

	if (err != -ENOENT && err != -ERANGE)
		set_last_error(s, msg);
	PHI_LOG(PHI_LOG_DEBUG, "%s", msg);
	return err;
}

/* The tries of one prepared request on handle h.  Returns 0 (2xx), a
 * mapped failure, or a local error; r holds the last exchange. */
static int run(struct s3_backend *s, CURL *h, const struct s3_req *req,
	       const struct prepared *pr, struct s3_resp *r)
{
	size_t out_len = req->out ? buf_len(req->out) : 0;
	struct s3_xml_error xe;
	struct s3_failure f;

	for (r->attempts = 1;; r->attempts++) {
		int rc = attempt(s, h, req, pr, r);

		if (rc)
			return rc;
		if (r->sink_err)
			return r->sink_err;
		if (r->curl_code == CURLE_OK && status_ok(r->status))
			return 0;
		describe(s, r, &xe, &f);
		if (!backend_s3_error_retryable(&f) ||
		    r->attempts >= (int)s->max_attempts)
			return fail(s, &f);
		PHI_LOG(PHI_LOG_INFO, "region %s: %s %s: %s %ld, try %d of %u",
			s->name, req->method, req->key ? req->key : "(bucket)",
			r->curl_code ? curl_easy_strerror((CURLcode)r->curl_code)
				     : "status", r->curl_code ? 0 : r->status,
			r->attempts + 1, s->max_attempts);
		if (req->out)
			buf_setlen(req->out, out_len);
		buf_reset(&r->body);
		r->etag[0] = '\0';
		r->server_date = 0;
		backoff(r->attempts + 1);
	}
}

static int s3_request(struct s3_backend *s, const struct s3_req *req,
		      struct s3_resp *r)
{
	struct prepared pr;
	CURL *h;
	int rc = prepare(s, req, &pr);

	if (rc == 0) {
		h = pool_get(s);
		if (!h) {
			rc = -ENOMEM;
		} else {
			rc = run(s, h, req, &pr, r);
			pool_put(s, h);
		}
	}
	prepared_release(&pr);
	return rc;
}

/* A 2xx whose body we could not read: the server is not speaking S3. */
static int bad_reply(struct s3_backend *s, const char *what)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "region %s: unexpected reply to %s: is "
		 "the endpoint an S3 server?", s->name, what);
	set_last_error(s, msg);
	return -EIO;
}

/* ---- names ---------------------------------------------------------- */

/* prefix + key, malloc'd. */
static char *full_key(struct s3_backend *s, const char *key)
{
	size_t a = strlen(s->prefix), b = strlen(key);
	char *k = malloc(a + b + 1);

	if (k) {
		memcpy(k, s->prefix, a);
		memcpy(k + a, key, b + 1);
	}
	return k;
}

/* ---- put ------------------------------------------------------------ */

static int put_single(struct s3_backend *s, const char *k, const void *data,
		      size_t len, const uint8_t *sha256)
{
	struct s3_req req = { .method = "PUT", .key = k, .body = data,
			      .body_len = len, .body_sha256 = sha256 };
	struct s3_resp r;
	int rc;

	resp_init(&r);
	rc = s3_request(s, &req, &r);
	resp_release(&r);
	return rc;
}

struct upload {
	const char *key;
	char *id;
	char **etags;
	size_t nparts;
};

static int mp_initiate(struct s3_backend *s, struct upload *u)
{
	const struct s3_param p[] = { { "uploads", "" } };
	struct s3_req req = { .method = "POST", .key = u->key, .params = p,
			      .nparams = 1 };
	struct s3_resp r;
	int rc;

	resp_init(&r);
	rc = s3_request(s, &req, &r);
	if (rc == 0 && backend_s3_xml_upload_id(buf_data(&r.body),
						buf_len(&r.body), &u->id) != 0)
		rc = bad_reply(s, "InitiateMultipartUpload");
	resp_release(&r);
	return rc;
}

static int mp_part(struct s3_backend *s, struct upload *u, size_t i,
		   const void *data, size_t len)
{
	char num[24];
	const struct s3_param p[] = { { "partNumber", num },
				      { "uploadId", u->id } };
	struct s3_req req = { .method = "PUT", .key = u->key, .params = p,
			      .nparams = 2, .body = data, .body_len = len };
	struct s3_resp r;
	int rc;

	snprintf(num, sizeof(num), "%zu", i + 1);
	resp_init(&r);
	rc = s3_request(s, &req, &r);
	if (rc == 0 && !r.etag[0])
		rc = bad_reply(s, "UploadPart (no ETag)");
	if (rc == 0 && !(u->etags[i] = strdup(r.etag)))
		rc = -ENOMEM;
	resp_release(&r);
	return rc;
}

/* Append s with XML's special characters escaped. */
static int xml_escaped(struct buf *b, const char *s)
{
	int rc = 0;

	for (; *s && rc == 0; s++) {
		switch (*s) {
		case '&': rc = buf_add(b, "&amp;", 5); break;
		case '<': rc = buf_add(b, "&lt;", 4); break;
		case '>': rc = buf_add(b, "&gt;", 4); break;
		case '"': rc = buf_add(b, "&quot;", 6); break;
		case '\'': rc = buf_add(b, "&apos;", 6); break;
		default: rc = buf_add(b, s, 1);
		}
	}
	return rc;
}

static int add_str(struct buf *b, int rc, const char *s)
{
	return rc ? rc : buf_add(b, s, strlen(s));
}

static int complete_body(const struct upload *u, struct buf *b)
{
	int rc = add_str(b, 0, "<CompleteMultipartUpload>");

	for (size_t i = 0; i < u->nparts; i++) {
		char num[24];

		snprintf(num, sizeof(num), "%zu", i + 1);
		rc = add_str(b, rc, "<Part><PartNumber>");
		rc = add_str(b, rc, num);
		rc = add_str(b, rc, "</PartNumber><ETag>");
		rc = rc ? rc : xml_escaped(b, u->etags[i]);
		rc = add_str(b, rc, "</ETag></Part>");
	}
	return add_str(b, rc, "</CompleteMultipartUpload>");
}

static int head_full(struct s3_backend *s, const char *k, uint64_t *size);

/* A retried Complete whose first try went through gets NoSuchUpload:
 * the object being there with the right size means it did. */
static int mp_completed_anyway(struct s3_backend *s, const char *k,
			       uint64_t len)
{
	uint64_t size = 0;

	return head_full(s, k, &size) == 0 && size == len;
}

static int mp_complete(struct s3_backend *s, struct upload *u, uint64_t len)
{
	const struct s3_param p[] = { { "uploadId", u->id } };
	struct s3_req req = { .method = "POST", .key = u->key, .params = p,
			      .nparams = 1, .content_type = "application/xml" };
	struct s3_xml_error xe;
	struct s3_resp r;
	struct buf body;
	int rc;

	buf_init(&body, SIZE_MAX);
	resp_init(&r);
	rc = complete_body(u, &body);
	req.body = buf_data(&body);
	req.body_len = buf_len(&body);
	rc = rc ? rc : s3_request(s, &req, &r);
	if (rc == -ENOENT && r.attempts > 1 &&
	    mp_completed_anyway(s, u->key, len))
		rc = 0;
	else if (rc == 0) {
		int x = backend_s3_xml_complete(buf_data(&r.body),
						buf_len(&r.body), &xe);

		if (x < 0) {
			rc = bad_reply(s, "CompleteMultipartUpload");
		} else if (x == 1) {
			/* an error inside a 200 */
			struct s3_failure f = {
				.status = 500, .code = xe.code,
				.expected_region = xe.region,
				.signing_region = s->region,
				.bucket = s->bucket, .attempts = r.attempts,
			};

			rc = fail(s, &f);
			if (rc == -ENOENT)
				rc = -EIO;	/* our upload vanished */
		}
	}
	resp_release(&r);
	buf_release(&body);
	return rc;
}

/* Best effort: parts of a failed upload otherwise sit in the bucket (and
 * cost money) until a lifecycle rule removes them. */
static void mp_abort(struct s3_backend *s, struct upload *u)
{
	const struct s3_param p[] = { { "uploadId", u->id } };
	struct s3_req req = { .method = "DELETE", .key = u->key, .params = p,
			      .nparams = 1 };
	struct s3_resp r;
	char keep[sizeof(s->last_err)];

	/* the upload's own failure is the message worth keeping */
	pthread_mutex_lock(&s->lock);
	memcpy(keep, s->last_err, sizeof(keep));
	pthread_mutex_unlock(&s->lock);
	resp_init(&r);
	if (s3_request(s, &req, &r) != 0)
		PHI_LOG(PHI_LOG_WARNING, "region %s: cannot abort the multipart "
			"upload of %s; its parts stay until the bucket's "
			"lifecycle rules remove them", s->name, u->key);
	resp_release(&r);
	set_last_error(s, keep);
}

/* Parts of at least 5 MiB, few enough for the 1000-part limit. */
static uint64_t part_size_for(const struct s3_backend *s, uint64_t len)
{
	uint64_t part = s->part_size;
	uint64_t need = (len + S3_MAX_PARTS - 1) / S3_MAX_PARTS;

	if (part < need)
		part = need;
	return part < S3_MIN_PART ? S3_MIN_PART : part;
}

static int put_multipart(struct s3_backend *s, const char *k,
			 const char *data, size_t len)
{
	uint64_t part = part_size_for(s, len);
	struct upload u = { .key = k };
	int rc;

	u.nparts = (size_t)((len + part - 1) / part);
	u.etags = calloc(u.nparts, sizeof(*u.etags));
	if (!u.etags)
		return -ENOMEM;
	rc = mp_initiate(s, &u);
	for (size_t i = 0; rc == 0 && i < u.nparts; i++) {
		size_t off = (size_t)(i * part);
		size_t n = len - off < part ? len - off : (size_t)part;

		rc = mp_part(s, &u, i, data + off, n);
	}
	if (rc == 0)
		rc = mp_complete(s, &u, len);
	if (rc && u.id)
		mp_abort(s, &u);
	for (size_t i = 0; i < u.nparts; i++)
		free(u.etags[i]);
	free(u.etags);
	free(u.id);
	return rc;
}

/* A multipart upload signs each part: a whole body's digest is of no use
 * to it. */
static int s3_put_digest(struct backend *be, const char *key,
			 const void *data, size_t len,
			 const uint8_t sha256[32])
{
	struct s3_backend *s = s3_of(be);
	char *k = full_key(s, key);
	int rc;

	if (!k)
		return -ENOMEM;
	if (len > s->mp_threshold)
		rc = put_multipart(s, k, data, len);
	else
		rc = put_single(s, k, data, len, sha256);
	free(k);
	return rc;
}

static int s3_signs_body(struct backend *be, size_t len)
{
	return len <= s3_of(be)->mp_threshold;
}

static int s3_put(struct backend *be, const char *key, const void *data,
		  size_t len)
{
	return s3_put_digest(be, key, data, len, NULL);
}

/* ---- get, head ------------------------------------------------------ */

/* A server that ignored Range sent the whole object into out from at:
 * keep only [off, off + len). */
static void cut_to_range(struct buf *out, size_t at, uint64_t off,
			 uint64_t len)
{
	size_t got = buf_len(out) - at, keep = 0;
	unsigned char *p = buf_mut(out);

	if (off < got) {
		keep = got - (size_t)off;
		if (len && len < keep)
			keep = (size_t)len;
		memmove(p + at, p + at + off, keep);
	}
	buf_setlen(out, at + keep);
}

static int s3_get(struct backend *be, const char *key, uint64_t off,
		  uint64_t len, struct buf *out)
{
	struct s3_backend *s = s3_of(be);
	struct s3_req req = { .method = "GET", .out = out };
	struct s3_resp r;
	size_t at = buf_len(out);
	char range[64];
	int rc;

	if (len && off > UINT64_MAX - len)
		return -EINVAL;
	if (len)
		snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64,
			 off, off + len - 1);
	else
		snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", off);
	if (off || len)
		req.range = range;
	req.key = full_key(s, key);
	if (!req.key)
		return -ENOMEM;
	resp_init(&r);
	rc = s3_request(s, &req, &r);
	if (rc == -ERANGE)
		rc = 0;		/* 416: starts at or past the end */
	else if (rc == 0 && r.status == 200 && req.range)
		cut_to_range(out, at, off, len);
	resp_release(&r);
	free((char *)req.key);
	return rc;
}

/*
 * A HEAD reply has no body, so a refusal (400, 403...) says nothing of
 * why; asking again with a one-byte GET brings the error document, and
 * with it the message the user needs (wrong region, clock, bucket).  Only
 * on failure, so a good HEAD stays one request.  404 is left alone: a
 * missing object is an answer, and HEAD misses may be frequent.
 */
static int explain_head(struct s3_backend *s, const char *k, int rc)
{
	struct s3_req req = { .method = "GET", .key = k,
			      .range = "bytes=0-0" };
	struct s3_resp r;
	struct buf scratch;
	int why;

	buf_init(&scratch, 1);
	req.out = &scratch;
	resp_init(&r);
	why = s3_request(s, &req, &r);
	/* the GET's own failure, if the server explained one */
	if (r.curl_code != CURLE_OK || r.status < 400 || r.status == 404 ||
	    r.status == 416)
		why = rc;
	resp_release(&r);
	buf_release(&scratch);
	return why;
}

/* HEAD of the full name k; its size into *size. */
static int head_full(struct s3_backend *s, const char *k, uint64_t *size)
{
	struct s3_req req = { .method = "HEAD", .key = k };
	struct s3_resp r;
	int rc;

	resp_init(&r);
	rc = s3_request(s, &req, &r);
	if (rc == 0)
		*size = r.length;
	else if (r.curl_code == CURLE_OK && r.status >= 400 &&
		 r.status < 500 && r.status != 404)
		rc = explain_head(s, k, rc);
	resp_release(&r);
	return rc;
}

static int s3_head(struct backend *be, const char *key, uint64_t *size)
{
	struct s3_backend *s = s3_of(be);
	char *k = full_key(s, key);
	int rc;

	if (!k)
		return -ENOMEM;
	rc = head_full(s, k, size);
	free(k);
	return rc;
}

/* ---- list ----------------------------------------------------------- */

struct gather {
	struct backend_keys keys;
	size_t strip;		/* length of the driver's prefix */
};

static int gather_key(void *ctx, const char *key, uint64_t size)
{
	struct gather *g = ctx;

	/* names that are not ours (another tool's, a folder marker) */
	if (strlen(key) <= g->strip || backend_key_check(key + g->strip) != 0)
		return 0;
	return backend_keys_add(&g->keys, key + g->strip, size, 0);
}

/* One page after token (NULL: the first); *next gets the next token or
 * NULL at the end. */
static int list_page(struct s3_backend *s, const char *want,
		     const char *token, struct gather *g, char **next)
{
	struct s3_param p[4] = { { "list-type", "2" }, { "prefix", want },
				 { "max-keys", "1000" } };
	struct s3_req req = { .method = "GET", .params = p, .nparams = 3 };
	struct s3_list_page page;
	struct s3_resp r;
	int rc;

	if (token)
		p[req.nparams++] = (struct s3_param){ "continuation-token",
						      token };
	resp_init(&r);
	rc = s3_request(s, &req, &r);
	if (rc == 0) {
		rc = backend_s3_xml_list(buf_data(&r.body), buf_len(&r.body),
				 gather_key, g, &page);
		if (rc == -EBADMSG)
			rc = bad_reply(s, "ListObjectsV2");
		if (rc == 0 && page.truncated) {
			*next = page.next_token;
			page.next_token = NULL;
		}
		backend_s3_list_page_release(&page);
	}
	resp_release(&r);
	return rc;
}

static int s3_list(struct backend *be, const char *prefix,
		   backend_list_fn *fn, void *ctx)
{
	struct s3_backend *s = s3_of(be);
	struct gather g = { .strip = strlen(s->prefix) };
	char *want = full_key(s, prefix), *token = NULL;
	int rc = want ? 0 : -ENOMEM;

	while (rc == 0) {
		char *next = NULL;

		rc = list_page(s, want, token, &g, &next);
		free(token);
		token = next;
		if (!token)
			break;
	}
	free(token);
	free(want);
	if (rc == 0) {
		backend_keys_sort(&g.keys);
		rc = backend_keys_emit(&g.keys, fn, ctx);
	}
	backend_keys_release(&g.keys);
	return rc;
}

/* ---- del ------------------------------------------------------------ */

static int s3_del(struct backend *be, const char *key)
{
	struct s3_backend *s = s3_of(be);
	struct s3_req req = { .method = "DELETE" };
	struct s3_resp r;
	uint64_t size;
	int rc;

	req.key = full_key(s, key);
	if (!req.key)
		return -ENOMEM;
	rc = head_full(s, req.key, &size);
	if (rc == 0) {
		resp_init(&r);
		rc = s3_request(s, &req, &r);
		resp_release(&r);
	}
	free((char *)req.key);
	return rc;
}

struct del_errors {
	struct s3_backend *s;
	size_t n;
	char first[160];
};

static int note_del_error(void *ctx, const char *key, const char *code)
{
	struct del_errors *d = ctx;

	if (d->n++ == 0)
		snprintf(d->first, sizeof(d->first), "%s: %s", key, code);
	return 0;
}

static int delete_body(struct s3_backend *s, const char *const *keys,
		       size_t n, struct buf *b)
{
	int rc = add_str(b, 0, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
			 "<Delete><Quiet>true</Quiet>");

	for (size_t i = 0; i < n; i++) {
		rc = backend_key_check(keys[i]) ? -EINVAL : rc;
		rc = add_str(b, rc, "<Object><Key>");
		rc = rc ? rc : xml_escaped(b, s->prefix);
		rc = rc ? rc : xml_escaped(b, keys[i]);
		rc = add_str(b, rc, "</Key></Object>");
	}
	return add_str(b, rc, "</Delete>");
}

/* One POST ?delete for keys[0..n), n <= 1000. */
static int del_batch(struct s3_backend *s, const char *const *keys, size_t n)
{
	const struct s3_param p[] = { { "delete", "" } };
	struct s3_req req = { .method = "POST", .params = p, .nparams = 1,
			      .content_type = "application/xml" };
	struct del_errors d = { .s = s };
	char md5[S3_MD5_B64], msg[320];
	struct s3_resp r;
	struct buf body;
	int rc;

	buf_init(&body, SIZE_MAX);
	resp_init(&r);
	rc = delete_body(s, keys, n, &body);
	backend_s3_md5_base64(buf_data(&body), buf_len(&body), md5);
	req.body = buf_data(&body);
	req.body_len = buf_len(&body);
	req.content_md5 = md5;
	rc = rc ? rc : s3_request(s, &req, &r);
	if (rc == 0 &&
	    backend_s3_xml_delete_result(buf_data(&r.body), buf_len(&r.body),
					 note_del_error, &d, NULL) != 0)
		rc = bad_reply(s, "DeleteObjects");
	if (rc == 0 && d.n) {
		snprintf(msg, sizeof(msg), "region %s: cannot delete %zu "
			 "objects (first %s)", s->name, d.n, d.first);
		set_last_error(s, msg);
		rc = -EIO;
	}
	resp_release(&r);
	buf_release(&body);
	return rc;
}

int backend_s3_del_many(struct backend *be, const char *const *keys,
			size_t n)
{
	struct s3_backend *s = s3_of(be);
	int rc = 0;

	for (size_t at = 0; at < n && rc == 0; at += S3_LIST_PAGE)
		rc = del_batch(s, keys + at, n - at < S3_LIST_PAGE ?
			       n - at : S3_LIST_PAGE);
	PHI_LOG(PHI_LOG_DEBUG, "backend s3: delete %zu objects: %s", n,
		rc ? phi_strerror(rc) : "ok");
	return rc;
}

/* ---- open, close ---------------------------------------------------- */

static void wipe_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static void s3_close(struct backend *be)
{
	struct s3_backend *s = s3_of(be);

	assert(s->lent == 0);
	for (unsigned i = 0; i < s->nidle; i++)
		curl_easy_cleanup(s->idle[i]);
	free(s->idle);
	pthread_cond_destroy(&s->handle_back);
	pthread_mutex_destroy(&s->lock);
	wipe_free(s->secret_key);
	wipe_free(s->access_key);
	free(s->name);
	free(s->bucket);
	free(s->prefix);
	free(s->region);
	free(s->base_url);
	free(s->host);
	free(s->bucket_path);
	free(s->ca_file);
	free(s);
}

static const struct backend_ops s3_ops = {
	.name = "s3",
	.put = s3_put,
	.put_digest = s3_put_digest,
	.signs_body = s3_signs_body,
	.get = s3_get,
	.head = s3_head,
	.list = s3_list,
	.del = s3_del,
	.close = s3_close,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool set(const char *v)
{
	return v && v[0];
}

static char *dup_or_null(const char *v, bool *oom)
{
	char *d;

	if (!set(v))
		return NULL;
	d = strdup(v);
	if (!d)
		*oom = true;
	return d;
}

static char *printf_dup(bool *oom, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static char *printf_dup(bool *oom, const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*oom = true;
		return NULL;
	}
	return p;
}

/* Where requests go: base url, Host header and bucket path. */
static void set_addressing(struct s3_backend *s, const struct endpoint *ep,
			   int path_style, bool *oom)
{
	const char *scheme = ep->https ? "https" : "http";

	if (path_style < 0)	/* certificates do not cover "a.b.host" */
		path_style = host_is_address(ep->host) ||
			     (ep->https && strchr(s->bucket, '.'));
	if (path_style) {
		s->host = printf_dup(oom, "%s", ep->hostport);
		s->bucket_path = printf_dup(oom, "/%s", s->bucket);
	} else {
		s->host = printf_dup(oom, "%s.%s", s->bucket, ep->hostport);
		s->bucket_path = printf_dup(oom, "%s", "");
	}
	s->base_url = printf_dup(oom, "%s://%s", scheme, s->host ?
				 s->host : "");
}

static void set_numbers(struct s3_backend *s,
			const struct backend_region *cfg)
{
	s->max_transfers = cfg->max_transfers ? cfg->max_transfers : 8;
	s->max_attempts = cfg->max_attempts ? cfg->max_attempts : 5;
	s->mp_threshold = cfg->multipart_threshold ?
		cfg->multipart_threshold : 64 * MIB;
	s->part_size = cfg->part_size ? cfg->part_size : 16 * MIB;
	s->connect_timeout_ms = cfg->connect_timeout_ms ?
		(long)cfg->connect_timeout_ms : 5000;
	s->low_speed_time_s = cfg->low_speed_time_s ?
		(long)cfg->low_speed_time_s : 30;
}

/* Check cfg, take bucket and prefix from its url into *u and work out
 * the endpoint; 0 or -EINVAL with err set. */
static int check_config(const struct backend_region *cfg,
			const char *name, struct backend_url *u,
			struct endpoint *ep, char *err, size_t errlen)
{
	char def[128], why[256];
	const char *url = cfg->endpoint;

	if (!set(cfg->url))
		return fail_open(err, errlen, name, "no bucket (url = "
				 "s3://BUCKET[/PREFIX])");
	if (backend_url_parse(cfg->url, u, why, sizeof(why)) < 0)
		return fail_open(err, errlen, name, why);
	if (u->kind != BACKEND_S3)
		return fail_open(err, errlen, name, "url is not s3://");
	if (!set(cfg->access_key) || !set(cfg->secret_key))
		return fail_open(err, errlen, name, "no credentials");
	if (!set(url)) {
		snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com",
			 set(cfg->region) ? cfg->region : "us-east-1");
		url = def;
	}
	if (parse_endpoint(url, ep) < 0)
		return fail_open(err, errlen, name, "endpoint must be "
				 "http(s)://HOST[:PORT]");
	if (ep->https || backend_s3_host_is_loopback(ep->host))
		return 0;
	if (!cfg->allow_http)
		return fail_open(err, errlen, name, "endpoint uses plain http "
				 "to a host that is not loopback: use https, or "
				 "set allow_http = true to send patient data "
				 "unencrypted");
	PHI_LOG(PHI_LOG_WARNING, "region %s: endpoint uses plain http "
		"(allow_http): traffic to %s is not encrypted", name, ep->host);
	return 0;
}

static int fill(struct s3_backend *s, const struct backend_region *cfg,
		const char *name, const struct backend_url *u,
		const struct endpoint *ep)
{
	bool oom = false;
	const char *p = u->prefix;

	s->name = printf_dup(&oom, "%s", name);
	s->bucket = printf_dup(&oom, "%s", u->bucket);
	s->prefix = printf_dup(&oom, "%s%s", p, p[0] ? "/" : "");
	s->region = printf_dup(&oom, "%s", set(cfg->region) ? cfg->region :
			       "us-east-1");
	s->access_key = dup_or_null(cfg->access_key, &oom);
	s->secret_key = dup_or_null(cfg->secret_key, &oom);
	s->ca_file = dup_or_null(cfg->ca_file, &oom);
	s->loopback = backend_s3_host_is_loopback(ep->host);
	if (!oom)
		set_addressing(s, ep, cfg->path_style, &oom);
	set_numbers(s, cfg);
	s->idle = calloc(s->max_transfers, sizeof(*s->idle));
	return oom || !s->idle ? -ENOMEM : 0;
}

int backend_s3_open(struct backend **out, const struct backend_region *cfg,
		    char *err, size_t errlen)
{
	const char *name = set(cfg->name) ? cfg->name : "s3";
	struct backend_url u;
	struct s3_backend *s;
	struct endpoint ep;
	int rc;

	*out = NULL;
	rc = check_config(cfg, name, &u, &ep, err, errlen);
	if (rc)
		return rc;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		snprintf(err, errlen, "region %s: cannot initialise libcurl",
			 name);
		return -ENOMEM;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &s3_ops;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->handle_back, NULL);
	rc = fill(s, cfg, name, &u, &ep);
	if (rc) {
		snprintf(err, errlen, "region %s: out of memory", name);
		s3_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}

const char *backend_last_error(struct backend *be)
{
	static _Thread_local char copy[512];
	struct s3_backend *s;

	if (!be || be->ops != &s3_ops)
		return "";
	s = s3_of(be);
	pthread_mutex_lock(&s->lock);
	memcpy(copy, s->last_err, sizeof(copy));
	pthread_mutex_unlock(&s->lock);
	return copy;
}

/* ---- credentials ---------------------------------------------------- */

#define CRED_FILE_MAX 16384

static int cred_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int cred_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* Read the whole file into buf (NUL-terminated), refusing loose modes. */
static int read_cred_file(const char *path, char *buf, size_t size,
			  char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int rc = 0;

	if (fd < 0)
		return cred_fail(err, errlen, -errno, "cannot open credentials "
				 "file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		rc = cred_fail(err, errlen, PHI_ECONFIG, "credentials file %s "
			       "is not a regular file", path);
	else if (st.st_mode & 077)
		rc = cred_fail(err, errlen, PHI_ECONFIG, "credentials file %s "
			       "may be read by group or others (mode %04o): "
			       "run chmod 600 %s", path,
			       (unsigned)(st.st_mode & 07777), path);
	while (rc == 0) {
		ssize_t n = read(fd, buf + got, size - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = cred_fail(err, errlen, -errno, "cannot read "
				       "credentials file %s: %s", path,
				       strerror(errno));
		else if (n == 0)
			break;
		else if ((got += (size_t)n) == size - 1)
			rc = cred_fail(err, errlen, PHI_ECONFIG, "credentials "
				       "file %s is too large", path);
	}
	buf[got] = '\0';
	close(fd);
	return rc;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* Point *ak / *sk at the values in text (modified in place). */
static int parse_creds(char *text, const char *path, char **ak, char **sk,
		       char *err, size_t errlen)
{
	int line = 0;

	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char *eq, *name, *value;

		line++;
		l = trim(l);
		if (!*l || *l == '#' || *l == ';' || *l == '[')
			continue;
		eq = strchr(l, '=');
		if (!eq)
			return cred_fail(err, errlen, PHI_ECONFIG, "%s:%d: "
					 "expected NAME = VALUE", path, line);
		*eq = '\0';
		name = trim(l);
		value = trim(eq + 1);
		if (strncmp(name, "aws_", 4) == 0)
			name += 4;
		if (strcmp(name, "access_key_id") == 0)
			*ak = value;
		else if (strcmp(name, "secret_access_key") == 0)
			*sk = value;
	}
	if (!*ak || !**ak || !*sk || !**sk)
		return cred_fail(err, errlen, PHI_ECONFIG, "credentials file %s "
				 "needs access_key_id and secret_access_key",
				 path);
	return 0;
}

static int dup_pair(const char *a, const char *b, char **ak, char **sk)
{
	*ak = strdup(a);
	*sk = strdup(b);
	if (*ak && *sk)
		return 0;
	wipe_free(*ak);
	wipe_free(*sk);
	*ak = *sk = NULL;
	return -ENOMEM;
}

int backend_s3_load_credentials(const char *path, char **access_key,
				char **secret_key, char *err, size_t errlen)
{
	char *text, *ak = NULL, *sk = NULL;
	int rc;

	*access_key = *secret_key = NULL;
	if (!set(path)) {
		ak = getenv("AWS_ACCESS_KEY_ID");
		sk = getenv("AWS_SECRET_ACCESS_KEY");
		if (!set(ak) || !set(sk))
			return cred_fail(err, errlen, PHI_ECONFIG, "no "
					 "credentials_file, and "
					 "AWS_ACCESS_KEY_ID / "
					 "AWS_SECRET_ACCESS_KEY are not both "
					 "set");
		return dup_pair(ak, sk, access_key, secret_key);
	}
	text = malloc(CRED_FILE_MAX);
	if (!text)
		return -ENOMEM;
	rc = read_cred_file(path, text, CRED_FILE_MAX, err, errlen);
	if (rc == 0)
		rc = parse_creds(text, path, &ak, &sk, err, errlen);
	if (rc == 0)
		rc = dup_pair(ak, sk, access_key, secret_key);
	explicit_bzero(text, CRED_FILE_MAX);
	free(text);
	return rc;
}

void backend_s3_credentials_free(char *access_key, char *secret_key)
{
	wipe_free(access_key);
	wipe_free(secret_key);
}
