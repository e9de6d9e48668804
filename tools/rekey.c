/*
 * rekey.c - a running mount takes the new master key of `phifs key
 * rotate` (crypt.h: handing a new key generation to a running mount).
 *
 * The mount keeps a receiver (an X25519 key pair in locked memory) and
 * publishes its public key in cache_dir:
 *
 *   rekey.pub   "PID GEN PUB TAG\n": the mount's pid, its key generation,
 *               the receiver's public key and crypt_handoff_pub_tag() of
 *               it under that generation (hex); written when the mount
 *               answers, removed at unmount
 *   rekey.msg   the handoff message (CRYPT_HANDOFF_SIZE bytes), written
 *               by rotate once the new superblock is in cache_dir and the
 *               regions; the mount removes it when it has read it
 *   rekey.ack   "PID GEN\n" once the mount seals under generation GEN, or
 *               "PID error TEXT\n"; written by the mount, removed by rotate
 *
 * Each is written whole (FILE.tmp, then rename), mode 0600, and holds
 * nothing secret: the message opens only with the receiver's private
 * key, which never leaves the mount's memory.  Neither side trusts the
 * files: rotate seals the key only to a receiver whose tag verifies
 * under the filesystem's keys (someone who could write to cache_dir but
 * holds no key cannot have it sealed to a receiver of theirs), checks
 * that the pid serves the mount (tool_serves_mount()), and does all that
 * before it changes anything; the mount adopts a key only if
 * cache_dir/superblock, of the new generation, verifies under it and
 * chains the keys the mount already has (crypt_handoff_open()).  rotate
 * signals the mount with SIGUSR2; the handler only posts a semaphore,
 * and a thread of the mount does the rest.  Under tool_superblock_lock(),
 * held by rotate, so one handoff at a time.
 */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "phi.h"

#define REKEY_PUB "rekey.pub"
#define REKEY_MSG "rekey.msg"
#define REKEY_ACK "rekey.ack"
#define ACK_WAIT_MS 30000
#define ACK_POLL_MS 50

struct tool_rekey {
	const struct phi_config *cfg;
	struct crypt_key *key;
	uint8_t fsid[16];
	struct crypt_receiver *recv;
	sem_t wake;
	atomic_int stop;
	pthread_t thread;
};

/* The one mount of this process, for the signal handler. */
static sem_t *_Atomic rekey_wake;

static void rekey_path(const struct phi_config *cfg, const char *name,
		       char *out, size_t len)
{
	snprintf(out, len, "%s/%s", cfg->cache_dir, name);
}

/* Write data[0..len) to cache_dir/name whole (name.tmp, rename), 0600.
 * 0 or a negative errno. */
static int put_file(const struct phi_config *cfg, const char *name,
		    const void *data, size_t len)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
	int fd, rc = 0;

	rekey_path(cfg, name, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		rc = errno ? -errno : -EIO;
	if (close(fd) && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* Read cache_dir/name, at most cap bytes, into out; its length, or a
 * negative errno (-ENOENT when there is none, -EFBIG when larger). */
static ssize_t get_file(const struct phi_config *cfg, const char *name,
			void *out, size_t cap)
{
	char path[PATH_MAX + 16];
	ssize_t n;
	int fd;

	rekey_path(cfg, name, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, out, cap);
	if (n < 0)
		n = -errno;
	else if ((size_t)n == cap) {
		char extra;

		if (read(fd, &extra, 1) == 1)
			n = -EFBIG;
	}
	close(fd);
	return n;
}

/* Two hex digits per byte of p[0..n) at out; 2n. */
static size_t hex_put(char *out, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	return 2 * n;
}

/* n bytes from 2n hex digits at in, then a space or the end; the
 * position after them, or NULL. */
static const char *hex_get(const char *in, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(in + 2 * i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdef", in[2 * i]) ||
		    !strchr("0123456789abcdef", in[2 * i + 1]))
			return NULL;
		p[i] = (uint8_t)v;
	}
	in += 2 * n;
	return *in == ' ' || *in == '\0' ? in : NULL;
}

/* ---- the mount's side ---------------------------------------------- */

/* Take the message, if there is one, and say how it went in the ack. */
static void rekey_take(struct tool_rekey *r)
{
	uint8_t msg[CRYPT_HANDOFF_SIZE], sb[CRYPT_SUPER_SIZE];
	char ack[128], path[PATH_MAX + 16];
	ssize_t n, sblen;
	uint32_t gen = 0;
	int rc;

	n = get_file(r->cfg, REKEY_MSG, msg, sizeof(msg));
	if (n == -ENOENT)
		return;		/* a stray signal */
	sblen = get_file(r->cfg, "superblock", sb, sizeof(sb));
	if (n != (ssize_t)sizeof(msg))
		rc = n < 0 ? (int)n : PHI_ECORRUPT;
	else if (sblen < 0)
		rc = (int)sblen;
	else
		rc = crypt_handoff_open(r->recv, r->fsid, msg, sb,
					(size_t)sblen, r->key, &gen);
	rekey_path(r->cfg, REKEY_MSG, path, sizeof(path));
	unlink(path);
	if (rc == 0) {
		PHI_LOG(PHI_LOG_NOTICE, "sealing under key generation %u now",
			gen);
		snprintf(ack, sizeof(ack), "%ld %u\n", (long)getpid(), gen);
	} else {
		const char *why = rc == -ESTALE ? "not newer than the key it "
				  "seals with" : phi_strerror(rc);

		PHI_LOG(PHI_LOG_ERR, "cannot take the rotated key: %s", why);
		snprintf(ack, sizeof(ack), "%ld error %s\n", (long)getpid(),
			 why);
	}
	rc = put_file(r->cfg, REKEY_ACK, ack, strlen(ack));
	if (rc)
		PHI_LOG(PHI_LOG_ERR, "cannot answer a key rotation: %s",
			phi_strerror(rc));
}

static void *rekey_thread(void *arg)
{
	struct tool_rekey *r = arg;

	for (;;) {
		while (sem_wait(&r->wake) && errno == EINTR)
			;
		if (atomic_load(&r->stop))
			return NULL;
		rekey_take(r);
	}
}

static void on_sigusr2(int sig)
{
	sem_t *s = atomic_load(&rekey_wake);
	int saved = errno;

	(void)sig;
	if (s)
		sem_post(s);	/* async-signal-safe */
	errno = saved;
}

int tool_rekey_start(struct tool_rekey **out, const struct phi_config *cfg,
		     struct crypt_key *key, const uint8_t fsid[16])
{
	uint8_t pub[CRYPT_HANDOFF_PUB], tag[32];
	char line[64 + 2 * CRYPT_HANDOFF_PUB + 64], path[PATH_MAX + 16];
	uint32_t gen = crypt_key_generation(key);
	struct tool_rekey *r;
	struct sigaction sa;
	size_t n;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = cfg;
	r->key = key;
	memcpy(r->fsid, fsid, 16);
	rc = crypt_receiver_new(&r->recv, pub);
	if (rc == 0)
		rc = crypt_handoff_pub_tag(key, gen, fsid, pub, tag);
	if (rc) {
		crypt_receiver_free(r->recv);
		free(r);
		return rc;
	}
	sem_init(&r->wake, 0, 0);
	rc = -pthread_create(&r->thread, NULL, rekey_thread, r);
	if (rc) {
		sem_destroy(&r->wake);
		crypt_receiver_free(r->recv);
		free(r);
		return rc;
	}
	atomic_store(&rekey_wake, &r->wake);
	*out = r;
	rekey_path(cfg, REKEY_MSG, path, sizeof(path));
	unlink(path);		/* left by a mount that died: not for us */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr2;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL)) {
		rc = -errno;
	} else {
		/* only now may rotate find us: SIGUSR2 no longer ends us */
		n = (size_t)snprintf(line, sizeof(line), "%ld %u ",
				     (long)getpid(), gen);
		n += hex_put(line + n, pub, CRYPT_HANDOFF_PUB);
		line[n++] = ' ';
		n += hex_put(line + n, tag, sizeof(tag));
		line[n++] = '\n';
		rc = put_file(cfg, REKEY_PUB, line, n);
	}
	if (rc)
		PHI_LOG(PHI_LOG_WARNING, "phifs key rotate cannot reach this "
			"mount: %s", phi_strerror(rc));
	return 0;
}

void tool_rekey_stop(struct tool_rekey *r)
{
	char path[PATH_MAX + 16];

	if (!r)
		return;
	rekey_path(r->cfg, REKEY_PUB, path, sizeof(path));
	unlink(path);
	atomic_store(&r->stop, 1);
	sem_post(&r->wake);
	pthread_join(r->thread, NULL);
	atomic_store(&rekey_wake, NULL);
	sem_destroy(&r->wake);
	crypt_receiver_free(r->recv);
	free(r);
}

/* ---- rotate's side ------------------------------------------------- */

int tool_rekey_prepare(const struct phi_config *cfg, long pid,
		       const struct crypt_key *key, const uint8_t fsid[16],
		       uint8_t pub[CRYPT_HANDOFF_PUB], char *why, size_t len)
{
	char line[64 + 2 * CRYPT_HANDOFF_PUB + 64 + 2], *p;
	ssize_t n = get_file(cfg, REKEY_PUB, line, sizeof(line) - 1);
	uint8_t tag[32];
	unsigned long gen;
	const char *q;
	long who;

	if (!tool_serves_mount(pid)) {
		snprintf(why, len, "process %ld serves no phifs mount", pid);
		return -1;
	}
	if (n < 0) {
		snprintf(why, len, n == -ENOENT ? "it does not take keys "
			 "while running (a phifs from before rotation, or "
			 "still starting)" : "cannot read %s: %s", REKEY_PUB,
			 phi_strerror((int)n));
		return -1;
	}
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	who = strtol(line, &p, 10);
	if (who != pid || *p != ' ') {
		snprintf(why, len, "%s belongs to another process", REKEY_PUB);
		return -1;
	}
	gen = strtoul(p + 1, &p, 10);
	q = *p == ' ' && gen < CRYPT_MAX_GENS ?
	    hex_get(p + 1, pub, CRYPT_HANDOFF_PUB) : NULL;
	q = q && *q == ' ' ? hex_get(q + 1, tag, sizeof(tag)) : NULL;
	if (!q || *q) {
		snprintf(why, len, "%s is damaged", REKEY_PUB);
		return -1;
	}
	if (crypt_handoff_pub_check(key, (uint32_t)gen, fsid, pub, tag)) {
		snprintf(why, len, "%s was not written by a mount of this "
			 "filesystem", REKEY_PUB);
		return -1;
	}
	return 0;
}

/* Wait for the mount's ack; 0 with the generation it took, 1 when the
 * mount ended meanwhile, or -1 and why. */
static int wait_ack(const struct phi_config *cfg, long pid, uint32_t want,
		    char *why, size_t len)
{
	struct timespec nap = { 0, ACK_POLL_MS * 1000000L };
	char ack[256], path[PATH_MAX + 16], *p;
	ssize_t n = -ENOENT;
	int gone = 0;

	for (int waited = 0; waited < ACK_WAIT_MS; waited += ACK_POLL_MS) {
		n = get_file(cfg, REKEY_ACK, ack, sizeof(ack) - 1);
		if (n != -ENOENT)
			break;
		if (!tool_serves_mount(pid)) {
			gone = 1;
			break;
		}
		nanosleep(&nap, NULL);
	}
	rekey_path(cfg, REKEY_ACK, path, sizeof(path));
	unlink(path);
	if (n == -ENOENT) {
		/* unanswered: the message must not wait for someone else */
		rekey_path(cfg, REKEY_MSG, path, sizeof(path));
		unlink(path);
		if (gone)
			return 1;
		snprintf(why, len, "it did not answer within %d s",
			 ACK_WAIT_MS / 1000);
		return -1;
	}
	if (n < 0) {
		snprintf(why, len, "cannot read its answer: %s",
			 phi_strerror((int)n));
		return -1;
	}
	ack[n] = '\0';
	ack[strcspn(ack, "\n")] = '\0';
	if (strtol(ack, &p, 10) != pid || *p != ' ') {
		snprintf(why, len, "another process answered");
		return -1;
	}
	if (strncmp(p + 1, "error ", 6) == 0) {
		snprintf(why, len, "%s", p + 7);
		return -1;
	}
	if (strtoul(p + 1, NULL, 10) != want) {
		snprintf(why, len, "it took generation %s", p + 1);
		return -1;
	}
	return 0;
}

int tool_rekey_send(const struct phi_config *cfg, long pid,
		    const uint8_t pub[CRYPT_HANDOFF_PUB],
		    const struct crypt_key *key, const uint8_t fsid[16],
		    char *why, size_t len)
{
	uint8_t msg[CRYPT_HANDOFF_SIZE];
	char path[PATH_MAX + 16];
	int rc;

	rc = crypt_handoff_seal(key, fsid, pub, msg);
	if (rc) {
		snprintf(why, len, "cannot seal the key for it: %s",
			 phi_strerror(rc));
		return -1;
	}
	rekey_path(cfg, REKEY_ACK, path, sizeof(path));
	unlink(path);		/* a stale answer is not this one's */
	rc = put_file(cfg, REKEY_MSG, msg, sizeof(msg));
	if (rc) {
		snprintf(why, len, "cannot write %s: %s", REKEY_MSG,
			 phi_strerror(rc));
		return -1;
	}
	if (!tool_serves_mount(pid) || kill((pid_t)pid, SIGUSR2)) {
		rekey_path(cfg, REKEY_MSG, path, sizeof(path));
		unlink(path);
		if (!tool_serves_mount(pid))
			return 1;	/* it ended meanwhile */
		snprintf(why, len, "cannot signal it: %s", strerror(errno));
		return -1;
	}
	return wait_ack(cfg, pid, crypt_key_generation(key), why, len);
}
