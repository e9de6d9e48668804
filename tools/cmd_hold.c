/*
 * cmd_hold.c - phifs hold add|list|remove: legal holds.
 *
 * A hold names a path of the filesystem; while it stands (until its
 * --until, or until it is removed) gc deletes no version of anything
 * under that path, however old.  Holds live in the regions, one sealed
 * object each, "h/" and 32 random hex digits (a listing tells nothing),
 * so that gc run from any machine obeys them: gc reads the union of every
 * region's holds, and deletes nothing when a region's cannot be read.
 * The id a user sees is the first 8 hex digits of the object's.
 *
 * Plaintext of a hold object, one field per line:
 *
 *	phifs hold 1
 *	path /Patients/anna
 *	reason Smith v. Clinic, case 2026-123
 *	until 0				(ms since the epoch; 0: none)
 *	created 1796550000000		(ms since the epoch)
 *	by root (uid 0) on frontdesk
 */
#include "cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

static const char hold_usage[] =
	"usage: phifs hold add CONFIG PATH --reason TEXT [--until TIME] "
	"[--force]\n"
	"       phifs hold list CONFIG\n"
	"       phifs hold remove CONFIG ID [--force]\n\n"
	"Legal holds: while a hold stands, phifs gc deletes no version of "
	"anything\nunder PATH (a path in the filesystem, from its root: "
	"/Patients/anna),\nhowever old.  Holds are kept, sealed, in every "
	"region, so gc obeys them\nfrom any machine.\n\n"
	"  add      place a hold; --reason is required (a case number, "
	"who asked);\n"
	"           --until TIME lets it lapse then (2027-06-30, "
	"2027-06-30T12:00Z)\n"
	"  list     every hold: ID, path, until, when and by whom it was "
	"placed, why\n"
	"  remove   lift the hold ID (as list shows it)\n"
	"  --force  go on when a region does not answer: a hold added "
	"stands in\n"
	"           the others; a hold removed stays in force in that "
	"region\n"
	"           until remove is run again while it answers\n\n"
	"Exit status 0 when every region took the change (list: when every "
	"region\nwas read), 1 otherwise.\n";

#define HOLD_MAGIC "phifs hold 1"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the object ----------------------------------------------------- */

static int hold_encode(const struct tool_hold *h, struct buf *out)
{
	char text[sizeof(h->path) + sizeof(h->reason) + sizeof(h->by) + 128];
	int n = snprintf(text, sizeof(text), HOLD_MAGIC "\npath %s\nreason "
			 "%s\nuntil %" PRId64 "\ncreated %" PRId64 "\nby %s\n",
			 h->path, h->reason, h->until_ms, h->created_ms,
			 h->by);

	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	return buf_add(out, text, (size_t)n);
}

/* The value of "NAME value\n" at *p into out; moves *p past the line. */
static int field(const char **p, const char *end, const char *name,
		 char *out, size_t size)
{
	size_t n = strlen(name);
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t len;

	if (!nl || (size_t)(nl - *p) <= n || memcmp(*p, name, n) ||
	    (*p)[n] != ' ')
		return PHI_ECORRUPT;
	len = (size_t)(nl - *p) - n - 1;
	if (len >= size || memchr(*p + n + 1, '\0', len))
		return PHI_ECORRUPT;
	memcpy(out, *p + n + 1, len);
	out[len] = '\0';
	*p = nl + 1;
	return 0;
}

static int number(const char *s, int64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || end == s || *end || *v < 0 ? PHI_ECORRUPT : 0;
}

static int hold_decode(const struct buf *plain, struct tool_hold *h)
{
	const char *p = (const char *)buf_data(plain);
	const char *end = p + buf_len(plain);
	char num[32];
	int rc;

	if (buf_len(plain) < sizeof(HOLD_MAGIC) ||
	    memcmp(p, HOLD_MAGIC "\n", sizeof(HOLD_MAGIC)))
		return PHI_ECORRUPT;
	p += sizeof(HOLD_MAGIC);
	rc = field(&p, end, "path", h->path, sizeof(h->path));
	if (rc == 0)
		rc = field(&p, end, "reason", h->reason, sizeof(h->reason));
	if (rc == 0)
		rc = field(&p, end, "until", num, sizeof(num));
	if (rc == 0)
		rc = number(num, &h->until_ms);
	if (rc == 0)
		rc = field(&p, end, "created", num, sizeof(num));
	if (rc == 0)
		rc = number(num, &h->created_ms);
	if (rc == 0)
		rc = field(&p, end, "by", h->by, sizeof(h->by));
	if (rc == 0 && (p != end || phi_rule_path_error(h->path)))
		rc = PHI_ECORRUPT;
	return rc;
}

/* --- reading every region's holds ------------------------------------ */

struct keylist {
	char (*k)[40];
	size_t n, cap;
};

static int keylist_add(void *ctx, const char *key, uint64_t size)
{
	struct keylist *l = ctx;

	(void)size;
	if (strlen(key) != 34)
		return 0;	/* not a hold object of ours */
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->k[i], key) == 0)
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		void *p = realloc(l->k, cap * sizeof(*l->k));

		if (!p)
			return -ENOMEM;
		l->k = p;
		l->cap = cap;
	}
	snprintf(l->k[l->n++], sizeof(l->k[0]), "%s", key);
	return 0;
}

/* Hold key from the first region with a good copy into *h. */
static int hold_read(const struct tool_regions *r, const struct crypt_key *key,
		     const uint8_t fsid[16], const char *okey,
		     struct tool_hold *h)
{
	struct buf raw, plain;
	int rc = -ENOENT;

	buf_init(&raw, 1 << 20);
	buf_init(&plain, 1 << 20);
	for (int i = 0; i < r->n; i++) {
		buf_reset(&raw);
		buf_reset(&plain);
		rc = backend_get(r->be[i], okey, 0, 0, &raw);
		if (rc == 0)
			rc = crypt_unseal(key, fsid, okey, buf_data(&raw),
					  buf_len(&raw), &plain);
		if (rc == 0)
			rc = hold_decode(&plain, h);
		if (rc == 0)
			break;
	}
	buf_release(&raw);
	buf_release(&plain);
	if (rc)
		return rc;
	snprintf(h->key, sizeof(h->key), "%s", okey);
	snprintf(h->id, sizeof(h->id), "%.8s", okey + 2);
	return 0;
}

static int by_created(const void *x, const void *y)
{
	const struct tool_hold *a = x, *b = y;

	if (a->created_ms != b->created_ms)
		return a->created_ms < b->created_ms ? -1 : 1;
	return strcmp(a->key, b->key);
}

int tool_holds_load(const struct tool_regions *r,
		    const struct crypt_key *key, const uint8_t fsid[16],
		    struct tool_hold **out, size_t *n)
{
	struct keylist keys = { 0 };
	struct tool_hold *v = NULL;
	int rc = 0;

	for (int i = 0; i < r->n && rc == 0; i++) {
		rc = backend_list(r->be[i], "h/", keylist_add, &keys);
		if (rc) {
			char why[512];

			tool_region_why(r->be[i], r->names[i], rc, why,
					sizeof(why));
			tool_error("region %s: cannot list its legal holds: %s",
				   r->names[i],
				   tool_strip_region(why, r->names[i]));
		}
	}
	if (rc == 0 && keys.n && !(v = calloc(keys.n, sizeof(*v)))) {
		tool_error("out of memory");
		rc = -ENOMEM;
	}
	for (size_t i = 0; i < keys.n && rc == 0; i++) {
		rc = hold_read(r, key, fsid, keys.k[i], &v[i]);
		if (rc)
			tool_error("legal hold %s: no region has a good copy "
				   "(%s); run phifs fsck --repair, or ask "
				   "whoever placed it", keys.k[i],
				   phi_strerror(rc));
	}
	if (rc == 0 && keys.n)
		qsort(v, keys.n, sizeof(*v), by_created);
	free(keys.k);
	if (rc) {
		free(v);
		return -1;
	}
	*out = v;
	*n = keys.n;
	return 0;
}

/* --- the commands ---------------------------------------------------- */

struct holdop {
	struct phi_config cfg;
	int cfg_loaded;
	struct crypt_key *key;
	uint8_t fsid[16];
	struct buf sb;
	struct tool_regions r;
	int force;
};

static int holdop_begin(struct holdop *o, const char *path)
{
	buf_init(&o->sb, CRYPT_SUPER_SIZE);
	if (tool_load_config(path, &o->cfg))
		return -1;
	o->cfg_loaded = 1;
	crypt_harden_process();
	if (tool_unlock_any(&o->cfg, &o->key, o->fsid, &o->sb) ||
	    tool_regions_open(&o->cfg, 0, &o->r))
		return -1;
	return 0;
}

static void holdop_end(struct holdop *o)
{
	tool_regions_close(&o->r);
	crypt_key_free(o->key);
	buf_release(&o->sb);
	if (o->cfg_loaded)
		phi_config_release(&o->cfg);
}

/* Whether region i answers, judged by a listing of its holds; says why
 * not.  Without --force one that does not stops the command. */
static int answers(struct holdop *o, int i, const char *what)
{
	struct keylist keys = { 0 };
	char why[512];
	int rc = backend_list(o->r.be[i], "h/", keylist_add, &keys);

	free(keys.k);
	if (rc == 0)
		return 1;
	tool_region_why(o->r.be[i], o->r.names[i], rc, why, sizeof(why));
	if (!o->force)
		tool_error("region %s does not answer (%s); nothing changed: "
			   "retry when it answers, or use --force", o->r.names[i],
			   tool_strip_region(why, o->r.names[i]));
	else
		tool_warn("region %s does not answer (%s); %s", o->r.names[i],
			  tool_strip_region(why, o->r.names[i]), what);
	return 0;
}

static void who(char *out, size_t size)
{
	char host[256] = "";
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	uid_t uid = getuid();

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "an unknown host");
	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) || !res)
		snprintf(out, size, "uid %u on %s", (unsigned)uid, host);
	else
		snprintf(out, size, "%s (uid %u) on %s", res->pw_name,
			 (unsigned)uid, host);
}

static int reason_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void time_text(int64_t ms, char *out, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ",
					    &tm))
		snprintf(out, size, "?");
}

static int hold_add(struct holdop *o, const char *path, const char *reason,
		    int64_t until)
{
	struct tool_hold h = { 0 };
	struct buf plain, sealed;
	char id[33], when[32], detail[sizeof(h.reason) + 128];
	int failed = 0, rc;
	int up[PHI_MAX_REGIONS];
	size_t n = strlen(path);

	if (n > 1 && path[n - 1] == '/')
		n--;
	snprintf(h.path, sizeof(h.path), "%.*s", (int)n, path);
	snprintf(h.reason, sizeof(h.reason), "%s", reason);
	h.until_ms = until;
	h.created_ms = now_ms();
	who(h.by, sizeof(h.by));
	for (int i = 0; i < o->r.n; i++) {
		up[i] = answers(o, i, "the hold is placed in the others, "
				"which is enough for gc");
		if (!up[i] && !o->force)
			return 1;
	}
	if (crypt_random_id(id)) {
		tool_error("cannot make a hold id: the random generator "
			   "failed");
		return 1;
	}
	snprintf(h.key, sizeof(h.key), "h/%s", id);
	buf_init(&plain, SIZE_MAX);
	buf_init(&sealed, SIZE_MAX);
	rc = hold_encode(&h, &plain);
	if (rc == 0)
		rc = buf_reserve(&sealed, crypt_seal_bound(buf_len(&plain)));
	if (rc == 0)
		rc = crypt_seal(o->key, o->fsid, h.key, buf_data(&plain),
				buf_len(&plain), &sealed);
	if (rc) {
		tool_error("cannot seal the hold: %s", phi_strerror(rc));
		failed = -1;
	}
	for (int i = 0; i < o->r.n && failed >= 0; i++) {
		char why[512];

		if (!up[i])
			continue;
		rc = backend_put(o->r.be[i], h.key, buf_data(&sealed),
				 buf_len(&sealed));
		if (rc == 0) {
			up[i] = 2;
			continue;
		}
		tool_region_why(o->r.be[i], o->r.names[i], rc, why,
				sizeof(why));
		tool_error("region %s: cannot store the hold: %s",
			   o->r.names[i], tool_strip_region(why,
			   o->r.names[i]));
		failed = 1;
	}
	buf_release(&plain);
	buf_release(&sealed);
	if (failed < 0)
		return 1;
	n = 0;
	for (int i = 0; i < o->r.n; i++)
		n += up[i] == 2;
	if (n == 0) {
		tool_error("no region took the hold: it is not in force");
		return 1;
	}
	if (until)
		time_text(until, when, sizeof(when));
	printf("hold %.8s placed on %s%s%s, in %zu of %d regions\n", id,
	       h.path, until ? " until " : "", until ? when : "", n,
	       o->r.n);
	fflush(stdout);
	snprintf(detail, sizeof(detail), "id=%.8s until=%s regions=%zu/%d "
		 "reason=%s", id, until ? when : "removed", n, o->r.n,
		 h.reason);
	if (tool_audit_command(&o->cfg, AUDIT_HOLD_ADD, 0, h.path, detail))
		return 1;
	return failed || (int)n < o->r.n ? 1 : 0;
}

static int hold_list(struct holdop *o)
{
	struct tool_hold *v = NULL;
	size_t n = 0;
	int64_t now = now_ms();

	if (tool_holds_load(&o->r, o->key, o->fsid, &v, &n))
		return 1;
	if (n == 0)
		printf("no legal holds\n");
	for (size_t i = 0; i < n; i++) {
		char created[32], until[48];

		time_text(v[i].created_ms, created, sizeof(created));
		if (v[i].until_ms == 0)
			snprintf(until, sizeof(until), "until removed");
		else {
			char t[32];

			time_text(v[i].until_ms, t, sizeof(t));
			snprintf(until, sizeof(until), "%s %s",
				 v[i].until_ms > now ? "until" : "lapsed", t);
		}
		printf("%s  %s  %s  placed %s by %s: %s\n", v[i].id,
		       v[i].path, until, created, v[i].by, v[i].reason);
	}
	free(v);
	return 0;
}

static int hold_remove(struct holdop *o, const char *id)
{
	struct tool_hold *v = NULL, *h = NULL;
	struct tool_regions up = { .n = 0 };	/* borrowed from o->r */
	char detail[128];
	size_t n = 0, hits = 0;
	int failed = 0;

	if (strlen(id) != 8 || strspn(id, "0123456789abcdef") != 8) {
		tool_error("hold remove: '%s' is not a hold id (8 hex digits, "
			   "as phifs hold list shows)", id);
		return 2;
	}
	for (int i = 0; i < o->r.n; i++) {
		if (!answers(o, i, "the hold stays in force there until "
			     "phifs hold remove is run again while it "
			     "answers")) {
			if (!o->force)
				return 1;
			continue;
		}
		up.be[up.n] = o->r.be[i];
		up.names[up.n++] = o->r.names[i];
	}
	if (tool_holds_load(&up, o->key, o->fsid, &v, &n))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0) {
			h = &v[i];
			hits++;
		}
	if (hits != 1) {
		tool_error(hits ? "hold %s: more than one hold has this id; "
			   "nothing removed" : "no legal hold %s (see phifs "
			   "hold list)", id);
		free(v);
		return 1;
	}
	for (int i = 0; i < up.n; i++) {
		int rc = backend_del(up.be[i], h->key);
		char why[512];

		if (rc == 0 || rc == -ENOENT)
			continue;
		tool_region_why(up.be[i], up.names[i], rc, why, sizeof(why));
		tool_error("region %s: cannot remove the hold: %s; it stays in "
			   "force until phifs hold remove is run again",
			   up.names[i], tool_strip_region(why, up.names[i]));
		failed = 1;
	}
	failed |= up.n < o->r.n;
	printf("hold %s on %s %s\n", id, h->path, failed ? "removed from "
	       "some regions only" : "removed");
	fflush(stdout);
	snprintf(detail, sizeof(detail), "id=%s regions=%d/%d", id,
		 up.n - failed, o->r.n);
	if (tool_audit_command(&o->cfg, AUDIT_HOLD_REMOVE, 0, h->path,
			       detail))
		failed = 1;
	free(v);
	return failed;
}

int cmd_hold(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	const char *pos[2] = { NULL, NULL }, *reason = NULL, *until_s = NULL;
	struct holdop o = { 0 };
	int npos = 0, force = 0, rc;
	int64_t until = 0;

	if (tool_want_help(argc, argv, hold_usage))
		return 0;
	if (!sub || (strcmp(sub, "add") && strcmp(sub, "list") &&
		     strcmp(sub, "remove"))) {
		tool_error("hold: say add, list or remove (see phifs hold "
			   "--help)");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 && strcmp(sub, "list"))
			force = 1;
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc &&
			 strcmp(sub, "add") == 0)
			reason = argv[++i];
		else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc &&
			 strcmp(sub, "add") == 0)
			until_s = argv[++i];
		else if (argv[i][0] != '-' && npos < 2)
			pos[npos++] = argv[i];
		else {
			tool_error("hold %s: unexpected argument '%s' (see "
				   "phifs hold --help)", sub, argv[i]);
			return 2;
		}
	}
	if (npos != (strcmp(sub, "list") ? 2 : 1)) {
		tool_error("usage: phifs hold %s", strcmp(sub, "add") == 0 ?
			   "add CONFIG PATH --reason TEXT [--until TIME] "
			   "[--force]" : strcmp(sub, "list") == 0 ?
			   "list CONFIG" : "remove CONFIG ID [--force]");
		return 2;
	}
	if (strcmp(sub, "add") == 0) {
		const char *why = phi_rule_path_error(pos[1]);

		if (why) {
			tool_error("hold add: %s: %s", pos[1], why);
			return 2;
		}
		if (!reason || !reason_ok(reason)) {
			tool_error("hold add: --reason TEXT is required: one "
				   "line saying why (a case number, who "
				   "asked)");
			return 2;
		}
		if (strlen(reason) >= sizeof(((struct tool_hold *)0)->reason)) {
			tool_error("hold add: --reason is too long (at most "
				   "1023 bytes)");
			return 2;
		}
		if (until_s && tool_time_arg("--until", until_s, &until))
			return 2;
		if (until_s && until <= now_ms()) {
			tool_error("hold add: --until %s is not in the future",
				   until_s);
			return 2;
		}
	}
	o.force = force;
	if (holdop_begin(&o, pos[0]))
		rc = 1;
	else if (strcmp(sub, "add") == 0)
		rc = hold_add(&o, pos[1], reason, until);
	else if (strcmp(sub, "list") == 0)
		rc = hold_list(&o);
	else
		rc = hold_remove(&o, pos[1]);
	holdop_end(&o);
	return rc;
}
