/*
 * cmd_key.c - phifs key: list, add, change and remove the key slots of a
 * filesystem (crypt.h: the superblock and its slots).
 *
 * The master key never changes here: a slot is one more way to unwrap
 * it, so adding or removing one rewrites the superblock and nothing
 * else.  A change is authorised by a slot that opens, read as mount
 * reads it (key_file of the config, PHIFS_PASSPHRASE, a prompt); a new
 * passphrase comes from PHIFS_NEW_PASSPHRASE or is asked twice.
 *
 * Where a change goes.  The superblock lives in cache_dir/superblock and
 * in every region under "superblock".  A change:
 *
 *   1. takes tool_superblock_lock() (a flock on the cache_dir folder), so
 *      two changes never interleave;
 *   2. reads cache_dir's copy (a machine without one is refused: the
 *      copy a mount reads must never be left behind), unlocks it, then
 *      reads every region's copy: a copy of
 *      this filesystem whose MAC holds under the key and whose serial is
 *      higher becomes the one edited, so an older copy never wins;
 *   3. refuses, naming it, when a region does not answer (unless
 *      --force), before anything is written;
 *   4. edits (the serial rises), writes cache_dir's copy atomically
 *      (superblock.new, fsync, rename), then puts it into each region
 *      that holds a good copy (a put of one object is atomic in both
 *      drivers).  A region that holds none (new or emptied) is left to
 *      the mount's re-seeding, one whose copy is damaged to
 *      `phifs fsck --repair`: a superblock must never land in a region
 *      before the objects it describes.
 *
 * Mounted or not.  The mount holds cache_dir/lock and LMDB, which list,
 * add, passwd and remove never touch; cache_dir/superblock is the tools'
 * own file, read by a mount when it starts, and by its re-seeding
 * (cache_mend.c) before it stores a superblock into a region that holds
 * none, which takes the newest copy that verifies.  So such a change
 * while mounted takes effect in cache_dir and the regions at once, and
 * the running mount goes on with the same master key.
 *
 * Rotation (crypt_super_rotate()) makes a new master key, which a
 * running mount does not have.  So rotate first tries cache_dir/lock
 * itself, without waiting.  If it gets it, nothing is mounted, and it
 * holds the lock for the whole change: no mount can start with the old
 * superblock while the new one is being written.  If a mount holds it,
 * the change is made as usual, and then the new key is handed to the
 * mount (rekey.c), which seals under it from then on; rotate succeeds
 * only once the mount says so.  Another command holding the lock (a sync
 * or fsck of the unmounted filesystem) makes rotate refuse.
 */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

static const char key_usage[] =
	"usage: phifs key list CONFIG\n"
	"       phifs key add CONFIG [--label TEXT] [--key-file PATH | "
	"--recovery] [--force]\n"
	"       phifs key passwd CONFIG [--force]\n"
	"       phifs key remove CONFIG SLOT [--force]\n"
	"       phifs key rotate CONFIG [--force]\n"
	"\n"
	"Manage the key slots that open the filesystem (up to 8).\n"
	"  list     slots: number, kind, when added, label\n"
	"  add      a passphrase (PHIFS_NEW_PASSPHRASE, or asked twice), a\n"
	"           key file (PATH, made if missing), or a recovery code,\n"
	"           printed once, to keep in a safe\n"
	"  passwd   change the passphrase of the slot that opens\n"
	"  remove   empty slot SLOT; the last slot is never removed\n"
	"  rotate   a new master key seals everything written from now on;\n"
	"           every slot opens it, and older copies of the superblock\n"
	"           (with slots removed since) open only the old key; a\n"
	"           running mount takes it at once\n"
	"A change is authorised as mount is (key_file, PHIFS_PASSPHRASE, a\n"
	"prompt) and reaches cache_dir and every region; a region that does\n"
	"not answer stops it unless --force (then run phifs fsck CONFIG\n"
	"--repair once the region is back).  Works mounted or not.\n";

/* One change of the superblock, from the lock to the last put. */
struct keyop {
	struct phi_config cfg;
	int cfg_loaded;
	int lockfd;
	int force;
	struct buf sb;			/* the copy being edited */
	struct crypt_key *key;
	int slot;			/* the slot that opened */
	struct crypt_super_info info;	/* of sb, before the edit */
	struct tool_secret secret;	/* what opened it, until the newest
					   copy is known */
	int adopted;			/* sb is a region's newer copy */
	struct backend *be[PHI_MAX_REGIONS];	/* NULL: not opened */
	int good[PHI_MAX_REGIONS];	/* holds a good copy: put the new one */
	struct tool_progress prog;	/* the regions read, then written */
};

static void keyop_release(struct keyop *k)
{
	tool_progress_end(&k->prog);
	for (int i = 0; i < PHI_MAX_REGIONS; i++)
		if (k->be[i])
			backend_close(k->be[i]);
	crypt_key_free(k->key);
	tool_secret_wipe(&k->secret);
	buf_release(&k->sb);
	if (k->lockfd >= 0)
		close(k->lockfd);
	if (k->cfg_loaded)
		phi_config_release(&k->cfg);
}

static const char *kind_name(enum crypt_slot_type t)
{
	switch (t) {
	case CRYPT_SLOT_PASSPHRASE:
		return "passphrase";
	case CRYPT_SLOT_KEYFILE:
		return "key file";
	case CRYPT_SLOT_RECOVERY:
		return "recovery code";
	default:
		return "empty";
	}
}

/* Read and unlock the superblock as mount does; k->sb, k->key, k->slot. */
static int open_local(struct keyop *k)
{
	char path[4200];
	uint8_t fsid[16];
	int rc = -1;

	snprintf(path, sizeof(path), "%s/superblock", k->cfg.cache_dir);
	if (access(path, F_OK) != 0) {
		/* the copy a mount reads would be left behind */
		tool_error("%s holds no superblock: change keys on the machine "
			   "that mounts this filesystem, whose cache_dir is "
			   "changed too", k->cfg.cache_dir);
		return -1;
	}
	if (tool_superblock_find(&k->cfg, &k->sb, fsid) == 0 &&
	    tool_secret_read(&k->cfg, &k->secret) == 0 &&
	    tool_unlock_slot(&k->cfg, &k->sb, &k->secret, &k->key,
			     &k->slot) == 0)
		rc = 0;
	if (rc == 0)
		rc = crypt_super_parse(buf_data(&k->sb), buf_len(&k->sb),
				       &k->info) ? -1 : 0;
	return rc;
}

/* Region i's copy: adopt it when newer; note whether it gets the change.
 * 0; 1 when the region does not answer (why in why); -1 (printed). */
static int look_at_region(struct keyop *k, int i, char *why, size_t len)
{
	const char *name = k->cfg.regions[i].name;
	struct crypt_super_info ri;
	struct buf copy;
	int rc;

	if (tool_region_open(&k->cfg, i, &k->be[i], why, len))
		return 1;
	buf_init(&copy, CRYPT_SUPER_SIZE);
	rc = backend_get(k->be[i], "superblock", 0, 0, &copy);
	if (rc == -ENOENT) {
		tool_warn("region %s holds no superblock; left as it is (a "
			  "mount re-seeds it)", name);
	} else if (rc && rc != -E2BIG) {
		tool_region_why(k->be[i], name, rc, why, len);
		buf_release(&copy);
		return 1;
	} else if (rc || tool_super_judge(&copy, k->key, k->info.fsid, why,
					   len)) {
		tool_warn("corrupt superblock in region %s (%s); left as it "
			  "is: run phifs fsck %s --repair", name,
			  rc ? "too large" : why, k->cfg.path);
	} else {
		k->good[i] = 1;
		crypt_super_parse(buf_data(&copy), buf_len(&copy), &ri);
		if (ri.serial > k->info.serial) {
			tool_warn("region %s holds a newer superblock than "
				  "cache_dir; changing that one", name);
			buf_reset(&k->sb);
			if (buf_add(&k->sb, buf_data(&copy), buf_len(&copy))) {
				tool_error("out of memory");
				buf_release(&copy);
				return -1;
			}
			k->info = ri;
			k->adopted = 1;
		}
	}
	buf_release(&copy);
	return 0;
}

/* Every region: newest copy wins; refuse on one down without --force. */
static int look_at_regions(struct keyop *k)
{
	int n = k->cfg.nregions;
	char why[512];

	for (int i = 0; i < n; i++) {
		int rc;

		tool_progress_show(&k->prog, "regions read", (uint64_t)i,
				   (uint64_t)n);
		rc = look_at_region(k, i, why, sizeof(why));

		if (rc <= 0) {
			if (rc < 0)
				return -1;
			continue;
		}
		if (!k->force) {
			tool_error("region %s does not answer (%s); nothing "
				   "changed: retry when it answers, or use "
				   "--force and then run phifs fsck %s "
				   "--repair", k->cfg.regions[i].name,
				   tool_strip_region(why,
						     k->cfg.regions[i].name),
				   k->cfg.path);
			return -1;
		}
		tool_warn("region %s does not answer (%s); it keeps the old "
			  "superblock until phifs fsck %s --repair",
			  k->cfg.regions[i].name,
			  tool_strip_region(why, k->cfg.regions[i].name),
			  k->cfg.path);
	}
	tool_progress_show(&k->prog, "regions read", (uint64_t)n, (uint64_t)n);
	tool_progress_end(&k->prog);	/* a prompt for a new secret may follow */
	return 0;
}

/*
 * The change is authorised by the copy it edits: when that is a region's
 * newer one, the secret must open a slot there too (it may have been
 * removed or changed since cache_dir's copy was written).
 */
static int reauthorise(struct keyop *k)
{
	struct crypt_key *key = NULL;

	if (k->adopted) {
		if (tool_unlock_slot(&k->cfg, &k->sb, &k->secret, &key,
				     &k->slot))
			return -1;
		crypt_key_free(k->key);
		k->key = key;
	}
	tool_secret_wipe(&k->secret);
	return 0;
}

/* Load the config, take the lock, unlock, look at the regions. */
static int keyop_begin(struct keyop *k, const char *path, int force)
{
	memset(k, 0, sizeof(*k));
	k->lockfd = -1;
	k->force = force;
	tool_progress_init(&k->prog, "key");
	buf_init(&k->sb, CRYPT_SUPER_SIZE);
	if (tool_load_config(path, &k->cfg))
		return -1;
	k->cfg_loaded = 1;
	crypt_harden_process();
	k->lockfd = tool_superblock_lock(&k->cfg);
	if (k->lockfd < 0 || open_local(k) || look_at_regions(k))
		return -1;
	return reauthorise(k);
}

/* Write the edited k->sb everywhere it goes.  0; 1 when cache_dir has it
 * but a region could not take it; -1 when nothing was changed (all
 * printed). */
static int keyop_commit(struct keyop *k)
{
	char why[512];
	int failed = 0;

	if (tool_superblock_replace(&k->cfg, &k->sb))
		return -1;
	for (int i = 0; i < k->cfg.nregions; i++) {
		int rc;

		tool_progress_show(&k->prog, "regions written", (uint64_t)i,
				   (uint64_t)k->cfg.nregions);
		if (!k->good[i])
			continue;
		rc = backend_put(k->be[i], "superblock", buf_data(&k->sb),
				 buf_len(&k->sb));
		if (rc == 0)
			continue;
		tool_region_why(k->be[i], k->cfg.regions[i].name, rc, why,
				sizeof(why));
		tool_error("region %s: cannot store the superblock: %s; the "
			   "change is made elsewhere: run phifs fsck %s "
			   "--repair when it answers", k->cfg.regions[i].name,
			   tool_strip_region(why, k->cfg.regions[i].name),
			   k->cfg.path);
		failed = 1;
	}
	tool_progress_show(&k->prog, "regions written",
			   (uint64_t)k->cfg.nregions, (uint64_t)k->cfg.nregions);
	tool_progress_end(&k->prog);
	return failed;
}

/* Say why an edit of the superblock failed. */
static void edit_error(int rc)
{
	if (rc == -ENOSPC)
		tool_error("every key slot is in use (%d): remove one first",
			   CRYPT_MAX_SLOTS);
	else if (rc == -ESTALE)
		tool_error("the superblock is of another key generation than "
			   "the key that opened it (a rotation made meanwhile); "
			   "nothing changed: run the command again");
	else
		tool_error("cannot change the superblock: %s",
			   phi_strerror(rc));
}

/*
 * A key change in the audit trail of cache_dir (which every change
 * edits): the slot changed (none when slot < 0: what then begins the
 * detail) and the slot that authorised it, never a secret.  partial:
 * some region kept the old superblock.  0, or -1 (printed).
 */
static int audit_key(const struct keyop *k, enum audit_kind kind, int slot,
		     const char *what, int partial)
{
	char detail[256], which[32] = "";

	if (slot >= 0)
		snprintf(which, sizeof(which), "slot=%d", slot);
	snprintf(detail, sizeof(detail), "%s%s by-slot=%d%s", which, what,
		 k->slot, partial ? " regions=some (run phifs fsck --repair)" :
		 "");
	return tool_audit_command_key(&k->cfg, k->key, kind, 0, NULL, detail);
}

/* ---- list ---------------------------------------------------------- */

static int key_list(const char *path)
{
	struct crypt_super_info info;
	struct phi_config cfg;
	uint8_t fsid[16];
	struct buf sb;
	int rc = 1;

	if (tool_load_config(path, &cfg))
		return 1;
	buf_init(&sb, CRYPT_SUPER_SIZE);
	if (tool_superblock_find(&cfg, &sb, fsid) ||
	    crypt_super_parse(buf_data(&sb), buf_len(&sb), &info))
		goto out;
	printf("superblock format %u, serial %llu, key generation %u, %d of "
	       "%d slots in use\n", info.version,
	       (unsigned long long)info.serial, info.generation, info.nslots,
	       CRYPT_MAX_SLOTS);
	printf("%-5s %-14s %-23s %s\n", "slot", "kind", "added", "label");
	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		const struct crypt_slot_info *s = &info.slots[i];
		char when[32] = "unknown";
		time_t t = (time_t)s->added;
		struct tm tm;

		if (s->type == CRYPT_SLOT_EMPTY)
			continue;
		if (s->added && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC",
				 &tm);
		printf("%-5d %-14s %-23s %s\n", i, kind_name(s->type), when,
		       s->label);
	}
	tool_stdout_gone();
	rc = 0;
out:
	buf_release(&sb);
	phi_config_release(&cfg);
	return rc;
}

/* ---- add ----------------------------------------------------------- */

struct add_args {
	const char *label;
	const char *key_file;
	int recovery;
};

/* The new slot's secret into s (and for --recovery its code text). */
static int add_secret(const struct add_args *a, struct tool_secret *s,
		      int *made_file)
{
	*made_file = 0;
	if (a->recovery) {
		/* 32 random bytes, like a key file, typed back as a code */
		if (tool_keyfile_new(s))
			return -1;
		s->len = CRYPT_RECOVERY_SECRET;
		s->is_keyfile = 0;
		return 0;
	}
	if (!a->key_file)
		return tool_new_passphrase_read(s);
	if (access(a->key_file, F_OK) == 0)
		return tool_keyfile_read(a->key_file, s);
	if (errno != ENOENT) {
		tool_error("key file %s: %s", a->key_file, strerror(errno));
		return -1;
	}
	*made_file = 1;
	return tool_keyfile_new(s);
}

static int do_add(struct keyop *k, const struct add_args *a)
{
	struct crypt_slot_new ns = { 0 };
	struct tool_secret s = { 0 };
	char code[CRYPT_RECOVERY_TEXT], what[CRYPT_LABEL_MAX + 64];
	int made_file, slot, rc = -1;

	if (add_secret(a, &s, &made_file))
		return -1;
	ns.type = a->recovery ? CRYPT_SLOT_RECOVERY : a->key_file ?
		  CRYPT_SLOT_KEYFILE : CRYPT_SLOT_PASSPHRASE;
	ns.secret = s.data;
	ns.len = s.len;
	ns.added = (int64_t)time(NULL);
	ns.label = a->label;
	if (ns.type == CRYPT_SLOT_PASSPHRASE && tool_kdf_params(&ns.kdf))
		goto out;
	if (a->recovery && crypt_recovery_format(s.data, code)) {
		tool_error("out of memory");
		goto out;
	}
	/* the key file first: a slot nobody can open helps no one */
	if (made_file && tool_keyfile_create(a->key_file, &s))
		goto out;
	slot = crypt_super_add_slot(&k->sb, k->key, &ns);
	if (slot < 0)
		edit_error(slot);
	else
		rc = keyop_commit(k);
	if (rc < 0) {
		if (made_file)	/* it opens nothing */
			unlink(a->key_file);
		goto out;
	}
	/* in cache_dir at least: the slot exists, so say what opens it */
	printf("added slot %d (%s)\n", slot, kind_name(ns.type));
	snprintf(what, sizeof(what), " kind=%s label=%s",
		 ns.type == CRYPT_SLOT_PASSPHRASE ? "passphrase" :
		 ns.type == CRYPT_SLOT_KEYFILE ? "key-file" : "recovery-code",
		 a->label ? a->label : "");
	if (made_file)
		printf("new key file %s: keep a copy apart from this machine\n",
		       a->key_file);
	if (a->recovery)
		printf("recovery code: %s\nWrite it down and keep it in a "
		       "safe: it is shown only now.  Type it where a "
		       "passphrase is asked (or in PHIFS_PASSPHRASE).\n", code);
	fflush(stdout);
	if (audit_key(k, AUDIT_KEY_ADD, slot, what, rc == 1))
		rc = -1;
out:
	explicit_bzero(code, sizeof(code));
	tool_secret_wipe(&s);
	return rc;
}

/* What crypt_super_add_slot() takes as a label. */
static int label_ok(const char *label)
{
	size_t n = strlen(label);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
			return 0;
	return n <= CRYPT_LABEL_MAX;
}

static int key_add(int argc, char **argv)
{
	struct add_args a = { 0 };
	const char *path = NULL;
	struct keyop k;
	int force = 0, rc;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
			a.label = argv[++i];
		else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
			a.key_file = argv[++i];
		else if (strcmp(argv[i], "--recovery") == 0)
			a.recovery = 1;
		else if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			tool_error("key add: unexpected argument '%s' (see "
				   "phifs key --help)", argv[i]);
			return 2;
		}
	}
	if (!path || (a.key_file && a.recovery)) {
		tool_error("usage: phifs key add CONFIG [--label TEXT] "
			   "[--key-file PATH | --recovery] [--force]");
		return 2;
	}
	if (a.label && !label_ok(a.label)) {
		tool_error("--label: at most %d bytes of text, without control "
			   "characters", CRYPT_LABEL_MAX);
		return 2;
	}
	rc = keyop_begin(&k, path, force);
	if (rc == 0)
		rc = do_add(&k, &a);
	keyop_release(&k);
	return rc ? 1 : 0;
}

/* ---- passwd -------------------------------------------------------- */

static int do_passwd(struct keyop *k)
{
	const struct crypt_slot_info *old = &k->info.slots[k->slot];
	struct crypt_slot_new ns = { 0 };
	struct tool_secret s = { 0 };
	int rc = -1;

	if (old->type != CRYPT_SLOT_PASSPHRASE) {
		tool_error("the slot that opened, %d, is a %s, not a "
			   "passphrase: use phifs key add and phifs key remove",
			   k->slot, kind_name(old->type));
		return -1;
	}
	if (tool_new_passphrase_read(&s))
		return -1;
	ns.type = CRYPT_SLOT_PASSPHRASE;
	ns.secret = s.data;
	ns.len = s.len;
	ns.added = (int64_t)time(NULL);
	ns.label = old->label;
	if (tool_kdf_params(&ns.kdf) == 0) {
		rc = crypt_super_replace_slot(&k->sb, k->key, k->slot, &ns);
		if (rc)
			edit_error(rc);
		else
			rc = keyop_commit(k);
		if (rc >= 0)
			printf("changed the passphrase of slot %d\n", k->slot);
		if (rc >= 0 && audit_key(k, AUDIT_KEY_PASSWD, k->slot, "",
					 rc == 1))
			rc = -1;
	}
	tool_secret_wipe(&s);
	return rc;
}

/* ---- remove -------------------------------------------------------- */

static int do_remove(struct keyop *k, int slot)
{
	int rc = crypt_super_remove_slot(&k->sb, k->key, slot);

	if (rc == -ENOENT) {
		tool_error("slot %d is not in use (see phifs key list %s)",
			   slot, k->cfg.path);
		return -1;
	}
	if (rc == -EPERM) {
		tool_error("slot %d is the last key slot: removing it would "
			   "lock everyone out; add another first", slot);
		return -1;
	}
	if (rc) {
		edit_error(rc);
		return -1;
	}
	rc = keyop_commit(k);
	if (rc >= 0)
		printf("removed slot %d\n", slot);
	if (rc >= 0 && audit_key(k, AUDIT_KEY_REMOVE, slot, "", rc == 1))
		rc = -1;
	return rc;
}

/* argv after the subcommand: CONFIG, maybe SLOT, maybe --force. */
static int plain_args(int argc, char **argv, const char *usage,
		      const char **path, const char **slot, int *force)
{
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			*force = 1;
		else if (argv[i][0] != '-' && !*path)
			*path = argv[i];
		else if (argv[i][0] != '-' && slot && !*slot)
			*slot = argv[i];
		else {
			tool_error("key %s: unexpected argument '%s' (see "
				   "phifs key --help)", argv[1], argv[i]);
			return 2;
		}
	}
	if (!*path || (slot && !*slot)) {
		tool_error("usage: %s", usage);
		return 2;
	}
	return 0;
}

static int key_passwd(int argc, char **argv)
{
	const char *path = NULL;
	struct keyop k;
	int force = 0, rc;

	rc = plain_args(argc, argv, "phifs key passwd CONFIG [--force]",
			&path, NULL, &force);
	if (rc)
		return rc;
	rc = keyop_begin(&k, path, force);
	if (rc == 0)
		rc = do_passwd(&k);
	keyop_release(&k);
	return rc ? 1 : 0;
}

static int key_remove(int argc, char **argv)
{
	const char *path = NULL, *arg = NULL;
	struct keyop k;
	int force = 0, rc;
	char *end;
	long slot;

	rc = plain_args(argc, argv, "phifs key remove CONFIG SLOT [--force]",
			&path, &arg, &force);
	if (rc)
		return rc;
	errno = 0;
	slot = strtol(arg, &end, 10);
	if (errno || end == arg || *end || slot < 0 ||
	    slot >= CRYPT_MAX_SLOTS) {
		tool_error("key remove: SLOT '%s' is not a slot number (0 to "
			   "%d)", arg, CRYPT_MAX_SLOTS - 1);
		return 2;
	}
	rc = keyop_begin(&k, path, force);
	if (rc == 0)
		rc = do_remove(&k, (int)slot);
	keyop_release(&k);
	return rc ? 1 : 0;
}

/* ---- rotate -------------------------------------------------------- */

/*
 * Hold cache_dir/lock as a mount does, so none starts while the master
 * key changes.  The fd to close; or -1 with *pid set to the mount's when
 * the filesystem is mounted; or -1 with *pid 0 (printed).
 */
static int rotate_lock(const struct keyop *k, long *pid)
{
	struct cache_stats st;
	char path[4200];
	int fd;

	*pid = 0;
	snprintf(path, sizeof(path), "%s/lock", k->cfg.cache_dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		tool_error("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	if (errno != EWOULDBLOCK)
		tool_error("cannot lock %s: %s", path, strerror(errno));
	else if (tool_fs_stats(&k->cfg, &st) == 0 && st.mounted &&
		 st.pid > 0 && tool_serves_mount(st.pid))
		*pid = st.pid;
	else
		tool_error("the filesystem of %s is in use by another phifs "
			   "command (a sync or fsck); nothing changed: run "
			   "phifs key rotate again when it is done",
			   k->cfg.path);
	close(fd);
	return -1;
}

/* Say which slots stop a rotation (direct slots from before format 3). */
static void direct_slots_error(const struct keyop *k)
{
	char list[CRYPT_MAX_SLOTS * 8] = "";
	size_t n = 0;

	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		const struct crypt_slot_info *s = &k->info.slots[i];

		if (s->type != CRYPT_SLOT_EMPTY && !s->sealed)
			n += (size_t)snprintf(list + n, sizeof(list) - n,
					      "%s%d", n ? ", " : "", i);
	}
	tool_error("slots %s were made before key rotation existed and open "
		   "only the current key: make each again first (a "
		   "passphrase: phifs key passwd, opened with it, may keep "
		   "the same passphrase; a key file or recovery code: phifs "
		   "key add a new one, then phifs key remove the old); "
		   "nothing changed", list);
}

/* The mount pid seals under k->key's newest generation once this
 * returns 0 (or it ended meanwhile); -1 (printed) when it did not take
 * it. */
static int hand_to_mount(const struct keyop *k, long pid,
			 const uint8_t pub[CRYPT_HANDOFF_PUB], uint32_t gen)
{
	char why[512];
	int rc = tool_rekey_send(&k->cfg, pid, pub, k->key, k->info.fsid,
				 why, sizeof(why));

	if (rc == 0)
		printf("the mount (pid %ld) seals under it now\n", pid);
	else if (rc == 1)
		printf("the mount (pid %ld) ended meanwhile; the next mount "
		       "reads the new key\n", pid);
	else
		tool_error("the superblock holds key generation %u, but the "
			   "mount (pid %ld) did not take it (%s): until it is "
			   "unmounted and mounted again it seals under the old "
			   "key", gen, pid, why);
	return rc < 0 ? -1 : 0;
}

/* Rotate; pid: the mount's, 0 when not mounted. */
static int do_rotate(struct keyop *k, long pid)
{
	uint8_t pub[CRYPT_HANDOFF_PUB];
	struct crypt_key *nk = NULL;
	char what[64], why[512];
	uint32_t gen;
	int rc;

	/* a mount that could not take the key refuses before any change */
	if (pid > 0 && tool_rekey_prepare(&k->cfg, pid, k->key, k->info.fsid,
					  pub, why, sizeof(why))) {
		tool_error("the filesystem is mounted (pid %ld), and that mount "
			   "cannot take a new key (%s); nothing changed: "
			   "unmount it and run phifs key rotate again", pid,
			   why);
		return -1;
	}
	rc = crypt_super_rotate(&k->sb, k->key, &nk);
	if (rc == -EPERM) {
		direct_slots_error(k);
		return -1;
	}
	if (rc == -EOVERFLOW) {
		tool_error("this filesystem has had %d key rotations, the most "
			   "it can have; nothing changed", CRYPT_MAX_GENS - 1);
		return -1;
	}
	if (rc) {
		edit_error(rc);
		return -1;
	}
	gen = crypt_key_generation(nk);
	crypt_key_free(k->key);
	k->key = nk;
	rc = keyop_commit(k);
	if (rc < 0)
		return rc;
	printf("rotated the master key: generation %u seals everything "
	       "written from now on; every slot opens it\n", gen);
	fflush(stdout);
	snprintf(what, sizeof(what), "generation=%u", gen);
	if (audit_key(k, AUDIT_KEY_ROTATE, -1, what, rc == 1))
		rc = -1;
	if (pid > 0 && hand_to_mount(k, pid, pub, gen))
		rc = -1;
	return rc;
}

static int key_rotate(int argc, char **argv)
{
	const char *path = NULL;
	struct keyop k;
	int force = 0, lockfd = -1, rc;
	long pid = 0;

	rc = plain_args(argc, argv, "phifs key rotate CONFIG [--force]",
			&path, NULL, &force);
	if (rc)
		return rc;
	rc = keyop_begin(&k, path, force);
	if (rc == 0) {
		lockfd = rotate_lock(&k, &pid);
		rc = lockfd < 0 && pid == 0 ? -1 : do_rotate(&k, pid);
	}
	keyop_release(&k);
	if (lockfd >= 0)
		close(lockfd);
	return rc ? 1 : 0;
}

int cmd_key(int argc, char **argv)
{
	if (argc < 2 || tool_want_help(argc, argv, key_usage)) {
		if (argc < 2)
			tool_error("usage: phifs key list|add|passwd|remove|"
				   "rotate CONFIG ... (see phifs key --help)");
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "list") == 0) {
		if (argc != 3 || argv[2][0] == '-') {
			tool_error("usage: phifs key list CONFIG");
			return 2;
		}
		return key_list(argv[2]);
	}
	if (strcmp(argv[1], "add") == 0)
		return key_add(argc, argv);
	if (strcmp(argv[1], "passwd") == 0)
		return key_passwd(argc, argv);
	if (strcmp(argv[1], "remove") == 0)
		return key_remove(argc, argv);
	if (strcmp(argv[1], "rotate") == 0)
		return key_rotate(argc, argv);
	tool_error("key: unknown subcommand '%s' (list, add, passwd, remove, "
		   "rotate)", argv[1]);
	return 2;
}
