/*
 * cmd_mkfs.c - phifs mkfs CONFIG: create a new, empty filesystem.
 *
 * Everything that can be refused is checked before anything is written:
 * the configuration, cache_dir, every region (it must take, return and
 * delete a test object, and hold no superblock yet), the key file or the
 * passphrase.  Then, in this order, each step undone if a later one
 * fails, so that a failed mkfs leaves nothing behind:
 *
 *   1. the key file, if mkfs makes it      (unlink)
 *   2. the superblock in every region      (del)
 *   3. cache_dir/superblock                (unlink)
 *   4. cache_format() with the fsid        (undoes itself)
 *
 * cache_format() is last because only the cache knows how to take a
 * format apart; the other steps are one object or file each.
 */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "hooks.h"
#include "phi.h"

static const char mkfs_usage[] =
	"usage: phifs mkfs CONFIG\n\n"
	"Create a new, empty phifs filesystem in the cache_dir named by "
	"CONFIG.\nRefuses if one already exists there, or in any region.  "
	"Every region\nmust be reachable and writable.  The root directory "
	"belongs to the\ncaller.  block_size is fixed from now on.\n\n"
	"The filesystem is encrypted under a new random master key, kept in "
	"a\nsuperblock that opens with the key_file of CONFIG (created if it "
	"does\nnot exist: keep it safe, with a copy away from this machine) "
	"or, without\nkey_file, with a passphrase: PHIFS_PASSPHRASE, else "
	"asked twice on the\nterminal.\n\n"
	"Environment, for tests only, and only in a build configured with\n"
	"-Dtest_hooks=true: PHIFS_KDF_N=N (a power of two) replaces the\n"
	"passphrase KDF's cost, making a weak slot.\n";

/* What mkfs made so far, for undoing it. */
struct mkfs {
	struct phi_config cfg;
	struct backend *regions[PHI_MAX_REGIONS];
	struct tool_secret secret;
	int new_keyfile;	/* key_file does not exist yet */
	struct buf sb;
	uint8_t fsid[16];
	struct crypt_key *key;	/* the new master key: the cache is made
				   sealed under it (local_seal) */
	int made_keyfile, put_regions, made_local;
};

/* cache_dir must be usable and hold no filesystem yet. */
static int check_cache_dir(const struct phi_config *cfg)
{
	struct cache_config cc;
	struct cache *c;
	int rc;

	tool_cache_config(cfg, &cc);
	rc = cache_open(&c, &cc, CACHE_OPEN_RDONLY);
	if (rc == 0) {
		cache_close(c);
		rc = PHI_EEXISTFS;
	} else if (rc == PHI_ENOFS) {
		rc = faccessat(AT_FDCWD, cfg->cache_dir, W_OK | X_OK,
			       AT_EACCESS) ? -errno : 0;
	}
	if (rc)
		tool_cache_error(cfg, rc);
	return rc ? -1 : 0;
}

/* Put, read back and delete a test object, then look for a superblock. */
static int probe_region(struct backend *be, const char *name)
{
	static const char data[] = "phifs mkfs: test object\n";
	char key[64], id[33], why[512];
	const char *step = "write";
	struct buf b;
	uint64_t size;
	int rc, del_rc;

	if (crypt_random_id(id)) {
		tool_error("the random generator failed");
		return -1;
	}
	snprintf(key, sizeof(key), "mkfs-probe-%s", id);
	buf_init(&b, sizeof(data));
	rc = backend_put(be, key, data, sizeof(data) - 1);
	if (rc == 0) {
		step = "read back";
		rc = backend_get(be, key, 0, 0, &b);
		if (rc == 0 && (buf_len(&b) != sizeof(data) - 1 ||
				memcmp(buf_data(&b), data, buf_len(&b)) != 0))
			rc = PHI_ECORRUPT;
		if (rc == 0)
			step = "delete";
		del_rc = backend_del(be, key);
		if (rc == 0)
			rc = del_rc;
	}
	buf_release(&b);
	if (rc) {
		tool_region_why(be, name, rc, why, sizeof(why));
		tool_error("region %s: cannot %s a test object: %s", name,
			   step, why);
		return -1;
	}
	rc = backend_head(be, "superblock", &size);
	if (rc == 0) {
		tool_error("region %s already holds a phifs filesystem (an "
			   "object named superblock); refusing to overwrite it",
			   name);
		return -1;
	}
	if (rc != -ENOENT) {
		tool_region_why(be, name, rc, why, sizeof(why));
		tool_error("region %s: %s", name, why);
		return -1;
	}
	return 0;
}

static int open_regions(struct mkfs *m)
{
	char why[512];

	if (m->cfg.nregions == 0) {
		tool_error("%s: no [region NAME] section: a filesystem needs at "
			   "least one region", m->cfg.path);
		return -1;
	}
	for (int i = 0; i < m->cfg.nregions; i++) {
		if (tool_region_open(&m->cfg, i, &m->regions[i], why,
				     sizeof(why))) {
			tool_error("%s", why);
			return -1;
		}
	}
	for (int i = 0; i < m->cfg.nregions; i++)
		if (probe_region(m->regions[i], m->cfg.regions[i].name))
			return -1;
	return 0;
}

/* The key file or the passphrase that will open the only slot. */
static int get_secret(struct mkfs *m)
{
	const char *path = m->cfg.key_file;
	struct stat st;

	if (!path)
		return tool_passphrase_read(&m->secret, 1);
	if (stat(path, &st) == 0)
		return tool_keyfile_read(path, &m->secret);
	if (errno != ENOENT) {
		tool_error("key_file %s: %s", path, strerror(errno));
		return -1;
	}
	m->new_keyfile = 1;
	return tool_keyfile_new(&m->secret);
}

/* PHIFS_KDF_N: a cheap scrypt for tests, in a build with test hooks
 * (hooks.h).  0, or -1 (printed). */
int tool_kdf_params(struct crypt_kdf_params *p)
{
	const char *env = tool_test_env("PHIFS_KDF_N");
	char *end;
	unsigned long long n;

	crypt_kdf_default(p);
	if (!env)
		return 0;
	errno = 0;
	n = strtoull(env, &end, 10);
	if (errno || end == env || *end || n < 2 || n > (1ull << 22) ||
	    (n & (n - 1))) {
		tool_error("PHIFS_KDF_N: '%s' is not a power of two from 2 to "
			   "4194304", env);
		return -1;
	}
	p->n = n;
	return 0;
}

static int add_slot(struct mkfs *m, const struct crypt_key *mk)
{
	struct crypt_kdf_params p;
	int rc;

	if (m->secret.is_keyfile)
		rc = crypt_super_add_keyfile(&m->sb, mk, m->secret.data,
					     m->secret.len);
	else if (tool_kdf_params(&p))
		return -1;
	else
		rc = crypt_super_add_passphrase(&m->sb, mk,
						(const char *)m->secret.data,
						m->secret.len, &p);
	if (rc < 0) {
		tool_error("cannot add a key slot: %s", phi_strerror(rc));
		return -1;
	}
	return 0;
}

/* A new master key and fsid; the superblock with one slot in m->sb. */
static int make_superblock(struct mkfs *m)
{
	struct crypt_super_info info;
	struct crypt_key *mk;
	int rc;

	memset(&info, 0, sizeof(info));
	rc = crypt_key_new_random(&mk);
	if (rc) {
		tool_error("cannot make a master key: %s%s", phi_strerror(rc),
			   rc == -ENOMEM || rc == -EPERM ?
			   " (raise RLIMIT_MEMLOCK)" : "");
		return -1;
	}
	rc = crypt_random_bytes(m->fsid, sizeof(m->fsid));
	memcpy(info.fsid, m->fsid, sizeof(m->fsid));
	info.block_size = m->cfg.block_size;
	info.created = (int64_t)time(NULL);
	if (rc == 0)
		rc = crypt_super_create(mk, &info, &m->sb);
	if (rc)
		tool_error("cannot make the superblock: %s", phi_strerror(rc));
	else
		rc = add_slot(m, mk);
	if (rc)
		crypt_key_free(mk);
	else
		m->key = mk;
	return rc ? -1 : 0;
}

static int put_superblock(struct mkfs *m)
{
	char why[512];

	for (int i = 0; i < m->cfg.nregions; i++) {
		int rc = backend_put(m->regions[i], "superblock",
				     buf_data(&m->sb), buf_len(&m->sb));

		if (rc) {
			tool_region_why(m->regions[i], m->cfg.regions[i].name,
					rc, why, sizeof(why));
			tool_error("region %s: cannot store the superblock: %s",
				   m->cfg.regions[i].name, why);
			/* it may have landed anyway */
			m->put_regions = i + 1;
			return -1;
		}
		m->put_regions = i + 1;
	}
	return 0;
}

static int write_everything(struct mkfs *m)
{
	struct cache_config cc;
	int rc;

	if (m->new_keyfile) {
		if (tool_keyfile_create(m->cfg.key_file, &m->secret))
			return -1;
		m->made_keyfile = 1;
	}
	if (put_superblock(m))
		return -1;
	if (tool_superblock_store(&m->cfg, &m->sb))
		return -1;
	m->made_local = 1;
	tool_cache_config(&m->cfg, &cc);
	cc.fsid = m->fsid;
	cc.key = m->key;
	rc = cache_format(&cc, getuid(), getgid());
	if (rc) {
		tool_cache_error(&m->cfg, rc);
		return -1;
	}
	return 0;
}

/* After a failure: take back what write_everything() made. */
static void undo(struct mkfs *m)
{
	char path[4200];

	if (m->made_local) {
		snprintf(path, sizeof(path), "%s/superblock",
			 m->cfg.cache_dir);
		unlink(path);
	}
	for (int i = 0; i < m->put_regions; i++) {
		int rc = backend_del(m->regions[i], "superblock");

		if (rc && rc != -ENOENT)
			tool_warn("region %s: cannot remove the superblock "
				  "just stored there: %s",
				  m->cfg.regions[i].name, phi_strerror(rc));
	}
	if (m->made_keyfile)
		unlink(m->cfg.key_file);
}

static void report(const struct mkfs *m)
{
	char hex[33];

	tool_fsid_hex(m->fsid, hex);
	if (m->made_keyfile)
		printf("created key file %s: keep it safe, and a copy of it "
		       "away from this machine;\nwithout it the filesystem "
		       "cannot be opened\n", m->cfg.key_file);
	printf("created phifs filesystem %s in %s (block size %u bytes, %d "
	       "region%s)\n", hex, m->cfg.cache_dir,
	       (unsigned)m->cfg.block_size, m->cfg.nregions,
	       m->cfg.nregions == 1 ? "" : "s");
}

static int mkfs(struct mkfs *m)
{
	if (tool_check_places(&m->cfg, NULL) || check_cache_dir(&m->cfg) ||
	    open_regions(m) || get_secret(m) || make_superblock(m))
		return 1;
	if (write_everything(m)) {
		undo(m);
		return 1;
	}
	report(m);
	return 0;
}

int cmd_mkfs(int argc, char **argv)
{
	struct mkfs m;
	int rc;

	if (tool_want_help(argc, argv, mkfs_usage))
		return 0;
	if (argc != 2) {
		tool_error("usage: phifs mkfs CONFIG");
		return 2;
	}
	memset(&m, 0, sizeof(m));
	if (tool_load_config(argv[1], &m.cfg))
		return 1;
	buf_init(&m.sb, CRYPT_SUPER_SIZE);
	rc = mkfs(&m);
	crypt_key_free(m.key);
	tool_secret_wipe(&m.secret);
	buf_release(&m.sb);
	for (int i = 0; i < m.cfg.nregions; i++)
		backend_close(m.regions[i]);
	phi_config_release(&m.cfg);
	return rc;
}
