/*
 * keys.c - what unlocks a filesystem, and its superblock, for the phifs
 * command.
 *
 * A secret is the content of key_file or a passphrase.  It is read in
 * the process the user started (a terminal prompt cannot be answered
 * from a daemon) and used in the one that serves the mount, because the
 * master key lives in mlock()ed memory and memory locks do not survive
 * fork().  So a secret is held in its own locked pages, wiped as soon as
 * the master key is unlocked, and never logged or printed.
 *
 * The superblock (crypt.h) is stored in every region and copied to
 * cache_dir/superblock, so that a mount needs no region to start.
 */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

#define KEYFILE_MAX (64 << 10)		/* bytes of a key file we read */
#define PASSPHRASE_MAX 1024		/* bytes, with the newline */
#define KEYFILE_NEW 64			/* bytes of a key file mkfs makes */

/* ---- secrets ------------------------------------------------------- */

static int secret_alloc(struct tool_secret *s, size_t size, int is_keyfile)
{
	memset(s, 0, sizeof(*s));
	s->data = calloc(1, size);
	if (!s->data)
		return -ENOMEM;
	s->size = size;
	s->is_keyfile = is_keyfile;
	/* Best effort: without it a secret might reach swap, which the
	 * master key itself never does. */
	s->locked = mlock(s->data, size) == 0;
	return 0;
}

void tool_secret_wipe(struct tool_secret *s)
{
	if (!s->data)
		return;
	explicit_bzero(s->data, s->size);
	if (s->locked)
		munlock(s->data, s->size);
	free(s->data);
	memset(s, 0, sizeof(*s));
}

int tool_keyfile_read(const char *path, struct tool_secret *s)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tool_error("key_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		tool_error("key_file %s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & 077) {
		tool_error("key_file %s: group or others may read it; refusing "
			   "to use it (run: chmod 600 %s)", path, path);
		goto fail;
	}
	if (st.st_size < CRYPT_KEYFILE_MIN || st.st_size > KEYFILE_MAX) {
		tool_error("key_file %s: %lld bytes; a key file holds %d to "
			   "%d bytes", path, (long long)st.st_size,
			   CRYPT_KEYFILE_MIN, KEYFILE_MAX);
		goto fail;
	}
	if (secret_alloc(s, (size_t)st.st_size, 1)) {
		tool_error("key_file %s: out of memory", path);
		goto fail;
	}
	n = pread(fd, s->data, s->size, 0);
	if (n != (ssize_t)s->size) {
		tool_error("key_file %s: %s", path, n < 0 ? strerror(errno) :
			   "changed while being read");
		tool_secret_wipe(s);
		goto fail;
	}
	s->len = s->size;
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

int tool_keyfile_new(struct tool_secret *s)
{
	if (secret_alloc(s, KEYFILE_NEW, 1)) {
		tool_error("out of memory");
		return -1;
	}
	if (crypt_random_bytes(s->data, KEYFILE_NEW)) {
		tool_error("cannot make a key file: the random generator "
			   "failed");
		tool_secret_wipe(s);
		return -1;
	}
	s->len = KEYFILE_NEW;
	return 0;
}

static int sync_parent(const char *path)
{
	char dir[4096];
	char *slash;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	if (slash == dir)
		slash++;
	*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Write data to a new file (never over one) and make it durable. */
static int create_file(const char *path, const void *data, size_t len)
{
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		rc = errno ? -errno : -EIO;
	if (rc == 0 && fsync(fd))
		rc = -errno;
	if (close(fd) && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = sync_parent(path);
	if (rc)
		unlink(path);
	return rc;
}

int tool_keyfile_create(const char *path, const struct tool_secret *s)
{
	int rc = create_file(path, s->data, s->len);

	if (rc)
		tool_error("key_file %s: cannot create it: %s", path,
			   phi_strerror(rc));
	return rc ? -1 : 0;
}

/* ---- passphrases ----------------------------------------------------- */

/* The terminal whose echo we turned off, so that a signal restores it. */
static int tty_fd = -1;
static struct termios tty_saved;
static atomic_int tty_raw;

static void restore_and_die(int sig)
{
	if (atomic_load(&tty_raw))
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void echo_off(int fd)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct termios t;

	if (tcgetattr(fd, &tty_saved))
		return;
	tty_fd = fd;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], restore_and_die);
	t = tty_saved;
	t.c_lflag &= ~(tcflag_t)ECHO;
	if (tcsetattr(fd, TCSAFLUSH, &t) == 0)
		atomic_store(&tty_raw, 1);
}

static void echo_on(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

	if (atomic_exchange(&tty_raw, 0))
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	tty_fd = -1;
}

/* One line from the terminal fd, without echo, into s (no newline).
 * 0, or -1 (printed). */
static int prompt_line(int fd, const char *prompt, struct tool_secret *s)
{
	size_t n = 0;
	char ch;
	ssize_t r = 0;

	/* Echo goes off before the prompt shows: turning it off flushes
	 * pending input, which must not hold an answer already typed. */
	echo_off(fd);
	if (write(fd, prompt, strlen(prompt)) < 0) {
		echo_on();
		tool_error("cannot write to the terminal: %s", strerror(errno));
		return -1;
	}
	while (n < s->size && (r = read(fd, &ch, 1)) == 1 && ch != '\n')
		s->data[n++] = (unsigned char)ch;
	echo_on();
	if (write(fd, "\n", 1) < 0)
		PHI_LOG(PHI_LOG_DEBUG, "cannot end the prompt line");
	explicit_bzero(&ch, sizeof(ch));
	if (n == s->size) {
		tool_error("passphrase too long (at most %d bytes)",
			   PASSPHRASE_MAX - 1);
		return -1;
	}
	if (r != 1) {
		tool_error("no passphrase given");
		return -1;
	}
	s->len = n;
	return 0;
}

/* Ask on /dev/tty; with confirm, twice, and the two must match. */
static int ask_tty(struct tool_secret *s, int confirm)
{
	struct tool_secret again;
	int fd, rc = -1;

	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		tool_error("no passphrase: set key_file in the configuration, "
			   "or PHIFS_PASSPHRASE, or run on a terminal");
		return -1;
	}
	if (secret_alloc(s, PASSPHRASE_MAX, 0) ||
	    secret_alloc(&again, PASSPHRASE_MAX, 0)) {
		tool_error("out of memory");
		tool_secret_wipe(s);
		close(fd);
		return -1;
	}
	if (prompt_line(fd, confirm ? "New passphrase for the filesystem: " :
			"Passphrase: ", s) == 0) {
		if (!confirm)
			rc = 0;
		else if (prompt_line(fd, "Passphrase again: ", &again) == 0) {
			rc = again.len == s->len &&
			     memcmp(again.data, s->data, s->len) == 0 ? 0 : -1;
			if (rc)
				tool_error("the two passphrases differ");
		}
	}
	tool_secret_wipe(&again);
	close(fd);
	if (rc)
		tool_secret_wipe(s);
	return rc;
}

/*
 * Wipe the value of the environment variable name where it lies, then
 * drop it.  unsetenv() alone is not enough: /proc/PID/environ shows the
 * environment block the process started with for its whole life (the
 * daemon's too, which runs for months), and a child forked later copies
 * it.  Only a variable given at exec lies in that block; one set with
 * setenv() is on the heap and wiped there just the same.
 */
static void env_scrub(const char *name)
{
	size_t n = strlen(name);

	for (char **e = environ; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			explicit_bzero(*e + n + 1, strlen(*e + n + 1));
	unsetenv(name);
}

/*
 * PHIFS_PASSPHRASE as first read, for a command that unlocks more than
 * once (fsck --scrub: the scrub, then each region's history) after the
 * environment has been wiped.  In locked pages of its own, like every
 * secret; tool_passphrase_forget() wipes it.
 */
static struct tool_secret env_kept;

static int secret_copy(struct tool_secret *to, const struct tool_secret *from)
{
	if (secret_alloc(to, PASSPHRASE_MAX, 0)) {
		tool_error("out of memory");
		return -1;
	}
	memcpy(to->data, from->data, from->len);
	to->len = from->len;
	return 0;
}

void tool_passphrase_forget(void)
{
	tool_secret_wipe(&env_kept);
}

/* A passphrase from the environment variable var, else (with keep) what
 * an earlier read kept of it, else the terminal.  With keep, a
 * passphrase read from var is kept there too. */
static int passphrase_from(const char *var, struct tool_secret *s,
			   int confirm, struct tool_secret *keep)
{
	const char *env = getenv(var);
	size_t n;
	int rc = -1;

	if (!env && keep && keep->len)
		return secret_copy(s, keep);
	if (!env) {
		if (ask_tty(s, confirm))
			return -1;
		if (s->len == 0) {
			tool_secret_wipe(s);
			tool_error("empty passphrase");
			return -1;
		}
		return 0;
	}
	n = strlen(env);
	if (n == 0 || n >= PASSPHRASE_MAX) {
		tool_error("%s: %s", var, n ? "too long" : "empty");
	} else if (secret_alloc(s, PASSPHRASE_MAX, 0)) {
		tool_error("out of memory");
	} else {
		memcpy(s->data, env, n);
		s->len = n;
		rc = 0;
		if (keep && !keep->len && secret_copy(keep, s)) {
			tool_secret_wipe(s);
			rc = -1;
		}
	}
	env_scrub(var);
	return rc;
}

int tool_passphrase_read(struct tool_secret *s, int confirm)
{
	return passphrase_from("PHIFS_PASSPHRASE", s, confirm, &env_kept);
}

int tool_new_passphrase_read(struct tool_secret *s)
{
	return passphrase_from("PHIFS_NEW_PASSPHRASE", s, 1, NULL);
}

int tool_secret_read(const struct phi_config *cfg, struct tool_secret *s)
{
	if (cfg->key_file)
		return tool_keyfile_read(cfg->key_file, s);
	return tool_passphrase_read(s, 0);
}

/*
 * A typed secret that reads as a recovery code (crypt.h) is tried on the
 * recovery slots first, then, like any other, on the passphrase slots: a
 * passphrase that happens to look like a code still opens its slot.
 * *typo is set when it looked like a code whose check failed.
 */
static int unlock_typed(const struct buf *sb, const struct tool_secret *s,
			struct crypt_key **out, int *slot, int *typo)
{
	uint8_t code[CRYPT_RECOVERY_SECRET];
	int rc;

	rc = crypt_recovery_parse((const char *)s->data, s->len, code);
	*typo = rc == -EILSEQ;
	if (rc == 0) {
		rc = crypt_super_unlock(buf_data(sb), buf_len(sb),
					CRYPT_SLOT_RECOVERY, code,
					sizeof(code), out, slot);
		explicit_bzero(code, sizeof(code));
		if (rc != PHI_EBADKEY)
			return rc;
	}
	return crypt_super_unlock(buf_data(sb), buf_len(sb),
				  CRYPT_SLOT_PASSPHRASE, s->data, s->len, out,
				  slot);
}

int tool_unlock(const struct phi_config *cfg, const struct buf *sb,
		const struct tool_secret *s, struct crypt_key **out)
{
	return tool_unlock_slot(cfg, sb, s, out, NULL);
}

int tool_unlock_slot(const struct phi_config *cfg, const struct buf *sb,
		     const struct tool_secret *s, struct crypt_key **out,
		     int *slot)
{
	int rc, typo = 0;

	if (s->is_keyfile)
		rc = crypt_super_unlock(buf_data(sb), buf_len(sb),
					CRYPT_SLOT_KEYFILE, s->data, s->len,
					out, slot);
	else
		rc = unlock_typed(sb, s, out, slot, &typo);
	if (rc == 0)
		return 0;
	if (rc == PHI_EBADKEY && typo)
		tool_error("wrong passphrase or key file: no key slot opens "
			   "(it looks like a recovery code with a typo: its "
			   "last group does not match the others)");
	else if (rc == PHI_EBADKEY)
		tool_error("wrong passphrase or key file: no key slot opens");
	else if (rc == PHI_ECORRUPT)
		tool_error("%s/superblock: damaged or altered (its MAC does "
			   "not verify)", cfg->cache_dir);
	else if (rc == -ENOMEM || rc == -EPERM)
		tool_error("cannot hold the master key in locked memory: %s "
			   "(raise RLIMIT_MEMLOCK)", phi_strerror(rc));
	else
		tool_error("cannot unlock the filesystem: %s",
			   phi_strerror(rc));
	return -1;
}

/* ---- the superblock ------------------------------------------------- */

void tool_fsid_hex(const uint8_t fsid[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", fsid[i]);
}

static void superblock_path(const struct phi_config *cfg, char *path,
			    size_t len)
{
	snprintf(path, len, "%s/superblock", cfg->cache_dir);
}

int tool_superblock_store(const struct phi_config *cfg, const struct buf *sb)
{
	char path[4200];
	int rc;

	superblock_path(cfg, path, sizeof(path));
	rc = create_file(path, buf_data(sb), buf_len(sb));
	if (rc == -EEXIST)
		tool_error("%s exists, but cache_dir holds no filesystem (left "
			   "by an interrupted mkfs?); remove it and retry",
			   path);
	else if (rc)
		tool_error("cannot write %s: %s", path, phi_strerror(rc));
	return rc ? -1 : 0;
}

int tool_superblock_replace(const struct phi_config *cfg, const struct buf *sb)
{
	char path[4200], tmp[4210];
	int fd, rc = 0;

	superblock_path(cfg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	/* a .new left by a crash is ours to overwrite: the caller holds
	 * the lock of tool_superblock_lock() */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		rc = -errno;
	else {
		if (write(fd, buf_data(sb), buf_len(sb)) !=
		    (ssize_t)buf_len(sb))
			rc = errno ? -errno : -EIO;
		if (rc == 0 && fsync(fd))
			rc = -errno;
		if (close(fd) && rc == 0)
			rc = -errno;
	}
	if (rc == 0 && rename(tmp, path))
		rc = -errno;
	if (rc == 0)
		rc = sync_parent(path);
	if (rc) {
		unlink(tmp);
		tool_error("cannot write %s: %s", path, phi_strerror(rc));
	}
	return rc ? -1 : 0;
}

int tool_superblock_lock(const struct phi_config *cfg)
{
	int fd = open(cfg->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		tool_error("cache_dir %s: %s", cfg->cache_dir, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX)) {
		tool_error("cache_dir %s: cannot lock it: %s", cfg->cache_dir,
			   strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* 0 and the file in sb; -ENOENT if there is none; -1 (printed). */
static int read_local(const char *path, struct buf *sb)
{
	struct stat st;
	ssize_t n;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0) {
		tool_error("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st)) {
		tool_error("cannot read %s: %s", path, strerror(errno));
	} else if (!crypt_super_size_known((size_t)st.st_size)) {
		tool_error("%s: not a phifs superblock (%lld bytes)", path,
			   (long long)st.st_size);
	} else if (buf_reserve(sb, (size_t)st.st_size) == 0) {
		n = pread(fd, buf_mut(sb), (size_t)st.st_size, 0);
		if (n == st.st_size) {
			buf_setlen(sb, (size_t)st.st_size);
			rc = 0;
		} else {
			tool_error("cannot read %s: %s", path, n < 0 ?
				   strerror(errno) : "short read");
		}
	} else {
		tool_error("out of memory");
	}
	close(fd);
	return rc;
}

/* The superblock from the first region that has it; 0 or -1 (printed). */
static int fetch_from_regions(const struct phi_config *cfg, struct buf *sb)
{
	char why[512] = "no region is configured";

	for (int i = 0; i < cfg->nregions; i++) {
		struct backend *be;
		int rc;

		if (tool_region_open(cfg, i, &be, why, sizeof(why)))
			continue;
		buf_reset(sb);
		rc = backend_get(be, "superblock", 0, 0, sb);
		if (rc) {
			char reason[400];

			tool_region_why(be, cfg->regions[i].name, rc, reason,
					sizeof(reason));
			snprintf(why, sizeof(why), "region %s: %s",
				 cfg->regions[i].name, reason);
		} else if (tool_super_judge(sb, NULL, NULL, why,
					    sizeof(why))) {
			tool_warn("corrupt superblock in region %s (%s); "
				  "trying the next region",
				  cfg->regions[i].name, why);
			snprintf(why, sizeof(why), "region %s: corrupt "
				 "superblock", cfg->regions[i].name);
			rc = PHI_ECORRUPT;
		}
		backend_close(be);
		if (rc == 0)
			return 0;
	}
	tool_error("%s/superblock is missing and no region gave a copy "
		   "(last: %s)", cfg->cache_dir, why);
	return -1;
}

int tool_superblock_load(const struct phi_config *cfg, const char *fsid_hex,
			 struct buf *sb)
{
	struct crypt_super_info info;
	char path[4200], hex[33];
	int rc, fetched = 0;

	superblock_path(cfg, path, sizeof(path));
	rc = read_local(path, sb);
	if (rc == -ENOENT) {
		rc = fetch_from_regions(cfg, sb);
		fetched = 1;
	}
	if (rc)
		return -1;
	rc = crypt_super_parse(buf_data(sb), buf_len(sb), &info);
	if (rc) {
		tool_error("%s%s: not a superblock this phifs can read: %s",
			   fetched ? "the regions' copy of " : "", path,
			   phi_strerror(rc));
		return -1;
	}
	tool_fsid_hex(info.fsid, hex);
	if (strcmp(hex, fsid_hex) != 0) {
		tool_error("%s%s belongs to filesystem %s, but cache_dir holds "
			   "%s", fetched ? "the regions' copy of " : "", path,
			   hex, fsid_hex);
		return -1;
	}
	return fetched ? tool_superblock_store(cfg, sb) : 0;
}

int tool_superblock_find(const struct phi_config *cfg, struct buf *sb,
			 uint8_t fsid[16])
{
	struct crypt_super_info info;
	char path[4200];
	int rc;

	superblock_path(cfg, path, sizeof(path));
	rc = read_local(path, sb);
	if (rc == -ENOENT)
		rc = fetch_from_regions(cfg, sb);
	if (rc)
		return -1;
	rc = crypt_super_parse(buf_data(sb), buf_len(sb), &info);
	if (rc) {
		tool_error("the superblock is not one this phifs can read: %s",
			   phi_strerror(rc));
		return -1;
	}
	memcpy(fsid, info.fsid, 16);
	return 0;
}
