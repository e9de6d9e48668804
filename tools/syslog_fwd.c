/*
 * syslog_fwd.c - the forwarder thread of audit_syslog (syslog_fwd.h).
 *
 * Invariants: the cursor in the cache (cache_audit_forwarded()) only
 * moves forward, and only past events whose frames were all written to
 * a connection that was open before the write began; the thread is the
 * one user of the connection; `down` is set once per outage, so an
 * outage logs one line however many retries it takes.
 */
#include "syslog_fwd.h"
#include "audit.h"
#include "cache.h"
#include "cmd.h"
#include "config.h"
#include "hooks.h"
#include "phi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define BATCH_BYTES (256u << 10)	/* frames sent before the cursor moves */
#define BATCH_EVENTS 512
#define POLL_MS 250			/* how often new events are looked for */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define NET_TIMEOUT_S 15		/* connect, handshake, one write */

struct tool_syslog {
	const struct phi_config *cfg;
	struct phi_syslog dest;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	SSL_CTX *ctx;			/* tls only */
	struct cache *c;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;			/* by lock */
	/* the forwarder thread's alone */
	int fd;				/* -1 while not connected */
	SSL *ssl;
	int down;			/* this outage was logged */
	char *msg;			/* one message, AUDIT_FHIR_MAX */
	char *batch;			/* frames, BATCH_BYTES and one message */
	size_t batch_len;
	size_t offs[BATCH_EVENTS + 1];	/* local: where each message starts */
	int nmsg;
	uint64_t batch_last;		/* seq of the batch's last event */
};

/* --- opening ---------------------------------------------------------- */

static int open_local(struct tool_syslog *s, const struct phi_config *cfg)
{
	const char *path = tool_test_env("PHIFS_SYSLOG_SOCKET");
	struct stat st;

	if (!path)
		path = "/dev/log";
	if (strlen(path) >= sizeof(s->sock_path)) {
		tool_error("%s: audit_syslog = local: socket path too long",
			   cfg->path);
		return -1;
	}
	strcpy(s->sock_path, path);
	if (stat(path, &st) || !S_ISSOCK(st.st_mode)) {
		tool_error("%s: audit_syslog = local but there is no %s (no "
			   "syslog daemon here)", cfg->path, path);
		return -1;
	}
	return 0;
}

/* The first queued OpenSSL error as text, or fallback. */
static const char *ssl_why(const char *fallback)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : fallback;
}

/*
 * The client certificate and its key (mutual TLS, as IHE ATNA asks).
 * With one, TLS 1.2 at most: there the receiver refuses a certificate
 * inside the handshake, whereas TLS 1.3 lets the handshake end first
 * and the refusal would only show after a batch had been written.
 */
static int load_client_cert(struct tool_syslog *s,
			    const struct phi_config *cfg)
{
	const char *key = cfg->audit_syslog_key_file;
	struct stat st;

	if (!cfg->audit_syslog_cert_file)
		return 0;
	if (stat(key, &st) == 0 && (st.st_mode & 077)) {
		tool_error("%s: audit_syslog_key_file %s may be read by group "
			   "or others (mode %04o): run chmod 600 %s", cfg->path,
			   key, (unsigned)(st.st_mode & 07777), key);
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(s->ctx,
			cfg->audit_syslog_cert_file) != 1) {
		tool_error("%s: audit_syslog_cert_file %s: cannot load it: %s",
			   cfg->path, cfg->audit_syslog_cert_file,
			   ssl_why("not a PEM certificate"));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(s->ctx) != 1) {
		tool_error("%s: audit_syslog_key_file %s: cannot use it with "
			   "the certificate: %s", cfg->path, key,
			   ssl_why("not its PEM key"));
		return -1;
	}
	SSL_CTX_set_max_proto_version(s->ctx, TLS1_2_VERSION);
	return 0;
}

static int open_tls(struct tool_syslog *s, const struct phi_config *cfg)
{
	s->ctx = SSL_CTX_new(TLS_client_method());
	if (!s->ctx) {
		tool_error("cannot set up TLS for audit_syslog: %s",
			   ssl_why("out of memory"));
		return -1;
	}
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	if (cfg->audit_syslog_ca_file &&
	    SSL_CTX_load_verify_locations(s->ctx, cfg->audit_syslog_ca_file,
					  NULL) != 1) {
		tool_error("%s: audit_syslog_ca_file %s: cannot load it: %s",
			   cfg->path, cfg->audit_syslog_ca_file,
			   ssl_why("not a PEM certificate"));
		return -1;
	}
	if (!cfg->audit_syslog_ca_file &&
	    SSL_CTX_set_default_verify_paths(s->ctx) != 1) {
		tool_error("%s: audit_syslog: cannot load the system's CA "
			   "store (set audit_syslog_ca_file): %s", cfg->path,
			   ssl_why("unknown error"));
		return -1;
	}
	return load_client_cert(s, cfg);
}

static void syslog_free(struct tool_syslog *s)
{
	SSL_CTX_free(s->ctx);
	free(s->msg);
	free(s->batch);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

int tool_syslog_open(struct tool_syslog **out, const struct phi_config *cfg)
{
	struct tool_syslog *s;
	const char *why;
	int rc;

	*out = NULL;
	if (!cfg->audit_syslog || cfg->audit != 1)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s) {
		tool_error("cannot forward the audit trail: out of memory");
		return -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->cfg = cfg;
	s->fd = -1;
	why = phi_parse_syslog(cfg->audit_syslog, &s->dest);
	if (why) {	/* the config loader took it: cannot happen */
		tool_error("%s: audit_syslog: %s", cfg->path, why);
		syslog_free(s);
		return -1;
	}
	s->msg = malloc(AUDIT_FHIR_MAX);
	s->batch = malloc(BATCH_BYTES + AUDIT_FHIR_MAX + 16);
	if (!s->msg || !s->batch) {
		tool_error("cannot forward the audit trail: out of memory");
		syslog_free(s);
		return -1;
	}
	rc = s->dest.tls ? open_tls(s, cfg) : open_local(s, cfg);
	if (rc) {
		syslog_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* --- the connection --------------------------------------------------- */

static void disconnect(struct tool_syslog *s)
{
	if (s->ssl) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { NET_TIMEOUT_S, 0 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* connect(2) with NET_TIMEOUT_S.  The socket, or a negative errno. */
static int connect_timed(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
			SOCK_NONBLOCK, ai->ai_protocol);
	struct pollfd p = { fd, POLLOUT, 0 };
	socklen_t len = sizeof(int);
	int e = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
		e = errno;
	else if (poll(&p, 1, NET_TIMEOUT_S * 1000) != 1)
		e = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len))
		e = errno;
	if (e == 0 && fcntl(fd, F_SETFL, 0))
		e = errno;
	if (e) {
		close(fd);
		return -e;
	}
	set_timeouts(fd);
	return fd;
}

static int connect_tcp(struct tool_syslog *s, char *why, size_t wlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -ECONNREFUSED, rc;

	rc = getaddrinfo(s->dest.host, s->dest.port, &hints, &res);
	if (rc) {
		snprintf(why, wlen, "cannot resolve the host: %s",
			 gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = connect_timed(ai);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, wlen, "cannot connect: %s", strerror(-fd));
		return -1;
	}
	s->fd = fd;
	return 0;
}

/* Check the receiver's certificate against the CA and its name (or
 * address) against the host audit_syslog names. */
static int tls_handshake(struct tool_syslog *s, char *why, size_t wlen)
{
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, s->dest.host, ip) == 1 ||
		    inet_pton(AF_INET6, s->dest.host, ip) == 1;
	X509_VERIFY_PARAM *vp;
	long v;

	s->ssl = SSL_new(s->ctx);
	if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1) {
		snprintf(why, wlen, "TLS: %s", ssl_why("out of memory"));
		return -1;
	}
	vp = SSL_get0_param(s->ssl);
	if (is_ip)
		X509_VERIFY_PARAM_set1_ip_asc(vp, s->dest.host);
	else {
		SSL_set_tlsext_host_name(s->ssl, s->dest.host);
		X509_VERIFY_PARAM_set1_host(vp, s->dest.host, 0);
	}
	if (SSL_connect(s->ssl) == 1)
		return 0;
	v = SSL_get_verify_result(s->ssl);
	if (v != X509_V_OK)
		snprintf(why, wlen, "TLS: the receiver's certificate is "
			 "refused: %s", X509_verify_cert_error_string(v));
	else
		snprintf(why, wlen, "TLS handshake failed: %s",
			 ssl_why(errno ? strerror(errno) : "closed"));
	return -1;
}

static int connect_local(struct tool_syslog *s, char *why, size_t wlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	strcpy(a.sun_path, s->sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		snprintf(why, wlen, "cannot reach the local syslog: %s",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	set_timeouts(fd);
	s->fd = fd;
	return 0;
}

static int connect_dest(struct tool_syslog *s, char *why, size_t wlen)
{
	int rc;

	if (!s->dest.tls)
		return connect_local(s, why, wlen);
	rc = connect_tcp(s, why, wlen);
	if (rc == 0)
		rc = tls_handshake(s, why, wlen);
	if (rc)
		disconnect(s);
	return rc;
}

/*
 * A receiver never sends us data (RFC 5425): what there is to read on
 * the connection is a TLS record of its own (a TLS 1.3 session ticket),
 * its close, or an error.  Read it without blocking; 1 if the connection
 * still stands.
 */
static int still_open(struct tool_syslog *s)
{
	struct pollfd p = { s->fd, POLLIN, 0 };
	int flags, n, e;
	char c;

	if (!s->dest.tls)
		return 1;
	if (SSL_pending(s->ssl) == 0 && poll(&p, 1, 0) == 0)
		return 1;
	if (p.revents & (POLLERR | POLLNVAL))
		return 0;
	flags = fcntl(s->fd, F_GETFL);
	if (flags < 0 || fcntl(s->fd, F_SETFL, flags | O_NONBLOCK))
		return 0;
	n = SSL_read(s->ssl, &c, 1);
	e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, n);
	ERR_clear_error();
	if (fcntl(s->fd, F_SETFL, flags))
		return 0;
	return e == SSL_ERROR_NONE || e == SSL_ERROR_WANT_READ;
}

/* --- batches ---------------------------------------------------------- */

static int add_event(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct tool_syslog *s = arg;
	struct audit_event ev;
	int n, h;

	if (s->batch_len >= BATCH_BYTES || s->nmsg == BATCH_EVENTS)
		return 1;	/* full: the rest waits for the next batch */
	if (audit_decode(rec, len, &ev, s->msg, AUDIT_REC_MAX) != 0)
		return PHI_ECORRUPT;
	n = audit_format_syslog(&ev, seq, (long)getpid(),
				s->msg + AUDIT_REC_MAX,
				AUDIT_FHIR_MAX - AUDIT_REC_MAX);
	if (n < 0)
		return n;
	h = s->dest.tls ? snprintf(s->batch + s->batch_len, 16, "%d ", n) : 0;
	s->offs[s->nmsg++] = s->batch_len + (size_t)h;
	memcpy(s->batch + s->batch_len + h, s->msg + AUDIT_REC_MAX,
	       (size_t)n);
	s->batch_len += (size_t)h + (size_t)n;
	s->offs[s->nmsg] = s->batch_len;
	s->batch_last = seq;
	return 0;
}

/* Fill the batch with the events after sent.  0 (nmsg may be 0) or a
 * negative code. */
static int fill_batch(struct tool_syslog *s, uint64_t sent)
{
	int rc;

	s->batch_len = 0;
	s->nmsg = 0;
	s->offs[0] = 0;
	rc = cache_audit_walk(s->c, sent + 1, add_event, s);
	return rc == 1 ? 0 : rc;
}

static int send_batch(struct tool_syslog *s, char *why, size_t wlen)
{
	if (!s->dest.tls) {
		for (int i = 0; i < s->nmsg; i++) {
			size_t n = s->offs[i + 1] - s->offs[i];

			if (send(s->fd, s->batch + s->offs[i], n,
				 MSG_NOSIGNAL) != (ssize_t)n) {
				snprintf(why, wlen, "cannot write to the "
					 "local syslog: %s", strerror(errno));
				return -1;
			}
		}
		return 0;
	}
	if (!still_open(s)) {
		snprintf(why, wlen, "the receiver closed the connection");
		return -1;
	}
	if (SSL_write(s->ssl, s->batch, (int)s->batch_len) !=
	    (int)s->batch_len) {
		snprintf(why, wlen, "cannot write: %s",
			 ssl_why(errno ? strerror(errno) : "closed"));
		return -1;
	}
	return 0;
}

/* --- the thread ------------------------------------------------------- */

/* Wait ms or until stopped.  1 if stopped. */
static int nap(struct tool_syslog *s, unsigned ms)
{
	struct timespec until;
	int stop;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	if (!s->stop)
		pthread_cond_timedwait(&s->cond, &s->lock, &until);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

static void went_down(struct tool_syslog *s, const char *why)
{
	disconnect(s);
	if (s->down)
		return;
	s->down = 1;
	PHI_LOG(PHI_LOG_WARNING, "audit_syslog %s: %s; audit events wait "
		"in the cache until it answers", s->cfg->audit_syslog, why);
}

/*
 * Send what is stored after the cursor, batch by batch.  0 when all was
 * sent, -1 when the connection failed (logged), or a negative code of
 * the cache.
 */
static int drain(struct tool_syslog *s)
{
	uint64_t sent, last;
	char why[256];
	int rc;

	for (;;) {
		rc = cache_audit_forwarded(s->c, &sent, &last);
		if (rc || sent >= last)
			return rc;
		rc = fill_batch(s, sent);
		if (rc || s->nmsg == 0)
			return rc;
		if (s->fd < 0 && connect_dest(s, why, sizeof(why))) {
			went_down(s, why);
			return -1;
		}
		if (send_batch(s, why, sizeof(why))) {
			went_down(s, why);
			return -1;
		}
		if (s->down)
			PHI_LOG(PHI_LOG_NOTICE, "audit_syslog %s: the "
				"receiver answers again; sending the events "
				"that waited", s->cfg->audit_syslog);
		s->down = 0;
		rc = cache_audit_set_forwarded(s->c, s->batch_last);
		if (rc)
			return rc;
	}
}

static void *forward_main(void *arg)
{
	struct tool_syslog *s = arg;
	unsigned backoff = BACKOFF_MIN_MS;
	int rc, cache_logged = 0;

	for (;;) {
		rc = drain(s);
		if (rc < -1 && !cache_logged) {
			PHI_LOG(PHI_LOG_ERR, "audit_syslog: cannot read the "
				"audit trail: %s", phi_strerror(rc));
			cache_logged = 1;
		}
		if (rc == 0) {
			backoff = BACKOFF_MIN_MS;
			cache_logged = 0;
		}
		if (nap(s, rc ? backoff : POLL_MS))
			break;
		if (rc && backoff < BACKOFF_MAX_MS)
			backoff = backoff * 2 > BACKOFF_MAX_MS ?
				  BACKOFF_MAX_MS : backoff * 2;
	}
	/* The unmount event and what came before it, if the receiver is
	 * there; otherwise they wait for the next mount. */
	if (s->fd >= 0 || !s->down)
		drain(s);
	disconnect(s);
	return NULL;
}

int tool_syslog_start(struct tool_syslog *s, struct cache *c)
{
	int rc;

	if (!s)
		return 0;
	s->c = c;
	rc = pthread_create(&s->thread, NULL, forward_main, s);
	if (rc) {
		PHI_LOG(PHI_LOG_ERR, "cannot start the audit_syslog "
			"forwarder: %s", strerror(rc));
		return -rc;
	}
	s->started = 1;
	return 0;
}

void tool_syslog_close(struct tool_syslog *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	syslog_free(s);
}
