/*
 * backend_fault.c - the test-only "fault" driver: wraps another backend
 * and fails, slows or corrupts its calls on demand, counts them, and
 * can stand for a region that signs bodies (signs_body).
 *
 * A call first takes the lock, counts itself, decides its fate from the
 * current settings (fail_all, then the fail_nth countdown), and drops the
 * lock; the sleep and the inner call run unlocked, so one slow call does
 * not serialise the others and a test may change the settings while calls
 * are in flight.  It counts itself out again as it returns, so that a
 * test can see which calls are still under way (backend_fault_busy()).
 *
 * A fault backend opened on a file (backend_fault_open_file()) stats that
 * file at every call, under the lock, and re-reads it when its identity,
 * size or times changed; a stat costs a microsecond against a region
 * call's milliseconds, and a test that rewrites the file sees the next
 * call obey it.
 */
#include "backend_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "phi.h"

enum { OP_COUNT = 5 };		/* the BACKEND_OP_* bits */

struct fault_backend {
	struct backend base;
	struct backend *inner;		/* owned; set at open */
	pthread_mutex_t lock;		/* protects everything below */
	struct backend_fault f;
	int countdown;			/* matching calls until fail_nth fires */
	unsigned long calls[OP_COUNT];
	unsigned long busy[OP_COUNT];	/* of those, not yet returned */
	char *path;			/* settings file, or NULL; set at open */
	struct stat seen;		/* that file when last read; st_nlink 0
					   while it was missing */
};

/* The largest settings file read; the rest is ignored. */
#define FAULT_FILE_MAX 4096

static const struct backend_ops fault_ops;

static struct fault_backend *fault_of(struct backend *be)
{
	assert(be && be->ops == &fault_ops);
	return (struct fault_backend *)be;
}

static int op_index(enum backend_op op)
{
	for (int i = 0; i < OP_COUNT; i++)
		if ((int)op == 1 << i)
			return i;
	assert(!"not a single BACKEND_OP_* bit");
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const struct {
	const char *name;
	int code;
} fault_errors[] = {
	{ "unreachable", PHI_EUNREACHABLE }, { "auth", PHI_EAUTH },
	{ "nobucket", PHI_ENOBUCKET }, { "clockskew", PHI_ECLOCKSKEW },
	{ "tls", PHI_ETLS }, { "authfail", PHI_EAUTHFAIL },
	{ "corrupt", PHI_ECORRUPT }, { "eio", -EIO }, { "enoent", -ENOENT },
	{ "eacces", -EACCES }, { "enospc", -ENOSPC },
	{ "etimedout", -ETIMEDOUT },
};

static const char *const fault_ops_words[OP_COUNT] = {
	"put", "get", "head", "list", "del",
};

/* "name=N" with N a decimal number that fits an int; -1 if not. */
static int word_number(const char *word, const char *name)
{
	size_t n = strlen(name);
	long v = 0;
	const char *p;

	if (strncmp(word, name, n) != 0 || word[n] != '=')
		return -1;
	for (p = word + n + 1; *p >= '0' && *p <= '9' && v < 1000000000L; p++)
		v = v * 10 + (*p - '0');
	if (p == word + n + 1 || *p || v >= 1000000000L)
		return -1;
	return (int)v;
}

static int parse_word(const char *w, struct backend_fault *f)
{
	int v;

	if (strcmp(w, "fail_all") == 0) {
		f->fail_all = 1;
		return 0;
	}
	if (strcmp(w, "corrupt_get") == 0) {
		f->corrupt_get = 1;
		return 0;
	}
	if (strcmp(w, "signs_body") == 0) {
		f->signs_body = 1;
		return 0;
	}
	for (int i = 0; i < OP_COUNT; i++) {
		if (strcmp(w, fault_ops_words[i]) == 0) {
			f->ops_mask |= 1 << i;
			return 0;
		}
	}
	if ((v = word_number(w, "fail_nth")) > 0) {
		f->fail_nth = v;
		return 0;
	}
	if ((v = word_number(w, "latency_ms")) >= 0) {
		f->latency_ms = (unsigned)v;
		return 0;
	}
	if (strncmp(w, "error=", 6) == 0) {
		for (size_t i = 0; i < sizeof(fault_errors) /
		     sizeof(fault_errors[0]); i++) {
			if (strcmp(w + 6, fault_errors[i].name) == 0) {
				f->error = fault_errors[i].code;
				return 0;
			}
		}
	}
	return -EINVAL;
}

int backend_fault_parse(const char *text, struct backend_fault *out)
{
	struct backend_fault f = { 0 };
	char word[64];

	while (*text) {
		size_t n;

		text += strspn(text, " \t\r\n");
		if (*text == '#') {
			text += strcspn(text, "\n");
			continue;
		}
		n = strcspn(text, " \t\r\n#");
		if (n == 0)
			continue;
		if (n >= sizeof(word))
			return -EINVAL;
		memcpy(word, text, n);
		word[n] = '\0';
		text += n;
		if (parse_word(word, &f) < 0)
			return -EINVAL;
	}
	*out = f;
	return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_nlink == b->st_nlink && a->st_dev == b->st_dev &&
	       a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The settings the file holds: none if it is missing, unreadable or not
 * understood (the last two are logged, once per change). */
static void read_settings(const char *path, struct backend_fault *f)
{
	char text[FAULT_FILE_MAX + 1];
	ssize_t n = -1;
	int fd;

	memset(f, 0, sizeof(*f));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return;
	if (fd >= 0) {
		n = read(fd, text, FAULT_FILE_MAX);
		close(fd);
	}
	if (n < 0) {
		PHI_LOG(PHI_LOG_ERR, "fault file %s: cannot read it", path);
		return;
	}
	text[n] = '\0';
	if (backend_fault_parse(text, f) < 0)
		PHI_LOG(PHI_LOG_ERR, "fault file %s: not understood, no "
			"faults", path);
}

/* With fb->lock held: re-read the settings file if it changed. */
static void reload_locked(struct fault_backend *fb)
{
	struct stat st;

	if (!fb->path)
		return;
	if (stat(fb->path, &st) < 0)
		memset(&st, 0, sizeof(st));	/* st_nlink 0: missing */
	if (same_file(&st, &fb->seen))
		return;
	fb->seen = st;
	read_settings(fb->path, &fb->f);
	fb->countdown = fb->f.fail_nth;
}

/* A call of op returns (every fault_enter() is paired with one). */
static int fault_leave(struct fault_backend *fb, enum backend_op op, int rc)
{
	pthread_mutex_lock(&fb->lock);
	fb->busy[op_index(op)]--;
	pthread_mutex_unlock(&fb->lock);
	return rc;
}

/* Count a call of op and decide it: 0 to go ahead, or the error to fail
 * with.  *corrupt says whether a get's result is to be damaged. */
static int fault_enter(struct fault_backend *fb, enum backend_op op,
		       bool *corrupt)
{
	unsigned ms = 0;
	int rc = 0;

	pthread_mutex_lock(&fb->lock);
	reload_locked(fb);
	fb->calls[op_index(op)]++;
	fb->busy[op_index(op)]++;
	if (!fb->f.ops_mask || (fb->f.ops_mask & (int)op)) {
		int err = fb->f.error ? fb->f.error : PHI_EUNREACHABLE;

		ms = fb->f.latency_ms;
		if (corrupt)
			*corrupt = fb->f.corrupt_get;
		if (fb->f.fail_all)
			rc = err;
		else if (fb->countdown > 0 && --fb->countdown == 0)
			rc = err;
	}
	pthread_mutex_unlock(&fb->lock);
	if (ms)
		sleep_ms(ms);
	return rc;
}

/* Whether the settings say to act as a region that signs bodies. */
static bool pretends_to_sign(struct fault_backend *fb)
{
	bool yes;

	pthread_mutex_lock(&fb->lock);
	reload_locked(fb);
	yes = fb->f.signs_body != 0;
	pthread_mutex_unlock(&fb->lock);
	return yes;
}

/* What a region that signs bodies says of a put given sha256: 0, or
 * -EIO when it is not the digest of data (the server refuses it). */
static int check_digest(const void *data, size_t len,
			const uint8_t sha256[32])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != 32)
		return -ENOMEM;
	return memcmp(md, sha256, 32) == 0 ? 0 : -EIO;
}

static int fault_put_digest(struct backend *be, const char *key,
			    const void *data, size_t len,
			    const uint8_t sha256[32])
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_PUT, NULL);

	if (rc == 0 && sha256 && pretends_to_sign(fb))
		rc = check_digest(data, len, sha256);
	if (rc == 0)
		rc = backend_put_digest(fb->inner, key, data, len, sha256);
	return fault_leave(fb, BACKEND_OP_PUT, rc);
}

static int fault_signs_body(struct backend *be, size_t len)
{
	struct fault_backend *fb = fault_of(be);

	return pretends_to_sign(fb) || backend_signs_body(fb->inner, len);
}

static int fault_put(struct backend *be, const char *key, const void *data,
		     size_t len)
{
	return fault_put_digest(be, key, data, len, NULL);
}

static int fault_get(struct backend *be, const char *key, uint64_t off,
		     uint64_t len, struct buf *out)
{
	struct fault_backend *fb = fault_of(be);
	bool corrupt = false;
	size_t old = buf_len(out), n;
	int rc = fault_enter(fb, BACKEND_OP_GET, &corrupt);

	if (rc == 0)
		rc = backend_get(fb->inner, key, off, len, out);
	n = buf_len(out) - old;
	/* Inverting every bit of one byte defeats any checksum worth the
	 * name, which is what a test of verification needs. */
	if (rc == 0 && corrupt && n > 0)
		((unsigned char *)buf_mut(out))[old + n / 2] ^= 0xff;
	return fault_leave(fb, BACKEND_OP_GET, rc);
}

static int fault_head(struct backend *be, const char *key, uint64_t *size)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_HEAD, NULL);

	if (rc == 0)
		rc = backend_head(fb->inner, key, size);
	return fault_leave(fb, BACKEND_OP_HEAD, rc);
}

static int fault_list(struct backend *be, const char *prefix,
		      backend_list_fn *fn, void *ctx)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_LIST, NULL);

	if (rc == 0)
		rc = backend_list(fb->inner, prefix, fn, ctx);
	return fault_leave(fb, BACKEND_OP_LIST, rc);
}

static int fault_del(struct backend *be, const char *key)
{
	struct fault_backend *fb = fault_of(be);
	int rc = fault_enter(fb, BACKEND_OP_DEL, NULL);

	if (rc == 0)
		rc = backend_del(fb->inner, key);
	return fault_leave(fb, BACKEND_OP_DEL, rc);
}

static void fault_close(struct backend *be)
{
	struct fault_backend *fb = fault_of(be);

	backend_close(fb->inner);
	pthread_mutex_destroy(&fb->lock);
	free(fb->path);
	free(fb);
}

static const struct backend_ops fault_ops = {
	.name = "fault",
	.put = fault_put,
	.put_digest = fault_put_digest,
	.signs_body = fault_signs_body,
	.get = fault_get,
	.head = fault_head,
	.list = fault_list,
	.del = fault_del,
	.close = fault_close,
};

int backend_fault_open(struct backend **out, struct backend *inner)
{
	struct fault_backend *fb;
	int rc;

	assert(inner);
	*out = NULL;
	fb = calloc(1, sizeof(*fb));
	rc = fb ? -pthread_mutex_init(&fb->lock, NULL) : -ENOMEM;
	if (rc < 0) {
		free(fb);
		backend_close(inner);
		return rc;
	}
	fb->base.ops = &fault_ops;
	fb->inner = inner;
	*out = &fb->base;
	return 0;
}

int backend_fault_open_file(struct backend **out, struct backend *inner,
			    const char *path)
{
	struct fault_backend *fb;
	char *copy = strdup(path);
	int rc;

	*out = NULL;
	if (!copy) {
		backend_close(inner);
		return -ENOMEM;
	}
	rc = backend_fault_open(out, inner);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	fb = fault_of(*out);
	fb->path = copy;
	pthread_mutex_lock(&fb->lock);
	fb->seen.st_nlink = 1;		/* differs from any missing file */
	fb->seen.st_ino = (ino_t)-1;
	reload_locked(fb);
	pthread_mutex_unlock(&fb->lock);
	return 0;
}

void backend_fault_set(struct backend *be, const struct backend_fault *f)
{
	struct fault_backend *fb = fault_of(be);
	static const struct backend_fault none;

	if (!f)
		f = &none;
	assert(f->error <= 0 && f->fail_nth >= 0);
	pthread_mutex_lock(&fb->lock);
	fb->f = *f;
	fb->countdown = f->fail_nth;
	pthread_mutex_unlock(&fb->lock);
}

unsigned long backend_fault_calls(struct backend *be, enum backend_op op)
{
	struct fault_backend *fb = fault_of(be);
	unsigned long n;

	pthread_mutex_lock(&fb->lock);
	n = fb->calls[op_index(op)];
	pthread_mutex_unlock(&fb->lock);
	return n;
}

unsigned long backend_fault_busy(struct backend *be, enum backend_op op)
{
	struct fault_backend *fb = fault_of(be);
	unsigned long n;

	pthread_mutex_lock(&fb->lock);
	n = fb->busy[op_index(op)];
	pthread_mutex_unlock(&fb->lock);
	return n;
}
