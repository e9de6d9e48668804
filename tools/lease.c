/*
 * lease.c - one writer: the lease a writable mount holds in the regions.
 *
 * Two mounts writing one filesystem, on this machine or another, would
 * each pack and journal their own changes into the regions and never see
 * the other's.  The local cache_dir/lock cannot stop a second machine, so
 * a writable mount also holds a lease in the regions, and a second
 * writable mount is refused while that lease is live.  Read-only mounts
 * take none.
 *
 * Objects.  The lease is a series of objects "l/<32 hex>", the hex being
 * crypt_name_encode() of 16 bytes:
 *
 *	offset	size	field
 *	0	1	'L', the check value
 *	1	1	flags: LEASE_RELEASED, or 0 for a renewal
 *	2	6	mount id: random, the same for every object of one mount
 *	8	8	when it was written: ms since the epoch, CLOCK_REALTIME,
 *			big-endian
 *
 * So a listing tells the key holder who holds the lease and how fresh it
 * is, and tells anyone else nothing.  The body is sealed for its key
 * (crypt_seal()) and holds text lines "host=NAME", "pid=N", "since=SECONDS"
 * (when the mount started), "machine=ID" (/etc/machine-id) and "dir=PATH"
 * (cache_dir); it is read only for a live or stale holder, to name it in
 * a message and to tell whether it ran from this very cache_dir here.
 *
 * Every object has a new name (a new time), so a mount never overwrites
 * or deletes one: its credentials need no right to delete, and ransomware
 * that takes them cannot wipe the regions.  `phifs gc` removes old lease
 * objects.
 *
 * Rules (lease_judge()).  The objects of every region that answers are
 * read together and grouped by mount id.  A mount is live while it has
 * written no released object and its newest object is younger than
 * lease_time, or from the future (a clock ahead of ours: we cannot tell
 * by how much, so it counts; but see LEASE_AHEAD_MS).  A live mount
 * refuses ours, unless --force.  A mount that is neither released nor
 * live stopped without unmounting (kill -9, a crash, a power cut); if it
 * wrote the newest object, taking over from it is worth a warning.  The
 * mount id matters beyond the newest object: a mount that was taken over
 * with --force and still runs keeps renewing, and stays live even after
 * the mount that forced it out has released.  One exception: a live
 * lease of a mount of this same cache_dir on this machine was left by a
 * kill -9 or a crash (see left_here()); it is taken over with a warning,
 * so a machine never waits for its own lease.  One warning, for the
 * newest: several crashes in a row leave several such leases.
 *
 * Leases left here are released by the mount that took them over, once
 * it holds cache_dir's lock (tool_lease_settle()): a released object
 * under the dead mount's id, which is a new name (that mount never wrote
 * a released one).  Not before: two mounts of one cache_dir racing past
 * cmd_mount.c's check both see the other as left here, and only the one
 * that gets the lock may release the other's lease.  Otherwise a clean
 * unmount here would leave the crashed mount's lease live, and another
 * machine (a recovered copy) would wait lease_time for a mount that is
 * long gone.
 *
 *   tool_lease_open()	scan -> refuse, or warn and go on -> write the
 *			first renewal to the regions that answered -> scan
 *			again: of two mounts that raced past the first scan,
 *			the one whose first object is older wins, and the
 *			other releases and is refused -> renewal thread
 *   renew_main()	a new renewal object every lease_time/3, to every
 *			region; a failing region is logged once, not on every
 *			round, and never blocks the mount
 *   tool_lease_settle()	with cache_dir's lock held: release the leases
 *			left here (above)
 *   tool_lease_close()	stop the thread; at a clean unmount write a
 *			released object, so that the next mount need not wait
 *			for the lease to expire, and retry releasing the leases
 *			left here in the regions that missed it
 */
#include "cmd.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crypt.h"
#include "phi.h"

#define LEASE_PREFIX "l/"
#define LEASE_KEY_LEN (2 + 32)		/* "l/" and the hex */
#define LEASE_CHECK 'L'
#define LEASE_RELEASED 1
#define LEASE_BODY_MAX 8192		/* plaintext of one object */
#define LEASE_FRAME_MAX (64 * 1024)	/* a sealed body, with room to spare */

/*
 * A name that decodes with a wrong key (an object that is not ours) still
 * passes the check byte once in 256.  Such a name is noise: it gives a
 * random time, most likely far in the future, which would count as live
 * for ever.  So only times from 2020 to a year ahead of our clock are
 * taken for leases; a clock more than a year off is broken, not skewed.
 */
#define LEASE_EPOCH_MS INT64_C(1577836800000)	/* 2020-01-01 UTC */
#define LEASE_AHEAD_MS (INT64_C(366) * 24 * 3600 * 1000)

/* One object of the listing, as its name says. */
struct lease_obj {
	uint8_t id[6];
	uint8_t flags;
	int64_t ms;
};

/* One mount, from all the objects of its id. */
struct lease_holder {
	uint8_t id[6];
	int released;		/* wrote a released object */
	int64_t first_ms;	/* its oldest object: when it claimed */
	int64_t last_ms;	/* its newest object */
	uint8_t last_flags;	/* that object's flags (for its name) */
	int left_here;		/* left by this cache_dir here (left_here()) */
};

/* A lease left by a mount of this cache_dir here (left_here()), to be
 * released under its id. */
struct lease_stale {
	uint8_t id[6];
	int64_t last_ms;	/* time in the newest released name we wrote
				   for it */
	uint32_t done;		/* regions that took a released object */
};

/* What the regions hold under "l/", read by lease_scan(). */
struct lease_scan {
	const struct tool_lease *l;
	int64_t now_ms;
	struct lease_obj *obj;	/* the listing; duplicates across regions */
	size_t nobj, cap;
	struct lease_holder *h;	/* one per mount id, after lease_group() */
	size_t nh;
	uint32_t answered;	/* bit i: region i listed */
};

struct tool_lease {
	const struct phi_config *cfg;	/* borrowed: region names */
	struct backend *regions;	/* borrowed: the replica set */
	const struct crypt_key *key;	/* borrowed */
	uint8_t fsid[16];
	uint8_t id[6];			/* this mount's */
	int nregions;
	int64_t lease_ms;
	int64_t first_ms;		/* our first object's time */
	char host[256];			/* gethostname() */
	char machine[64];		/* /etc/machine-id, or "" */
	char dir[PATH_MAX];		/* cache_dir, resolved */
	char body[LEASE_BODY_MAX];	/* host, pid, since, machine, dir */
	size_t body_len;

	/* Touched by the opener and tool_lease_settle(), then only by
	 * tool_lease_close(); never by the renewal thread. */
	struct lease_stale *stale;	/* leases left here, taken over */
	size_t nstale;
	int settled;			/* cache_dir's lock is ours: they
					   may be released */

	/* Touched by the opener, then only by the renewal thread, then
	 * only by tool_lease_close() after the join. */
	int64_t last_ms;		/* time in our newest name */
	uint32_t ok_mask;		/* regions whose last put succeeded */
	_Atomic int64_t last_ok_ms;	/* the last put any region took, at
					   first the mount; also read by
					   tool_lease_age_ms() */
	int late_logged;		/* "not renewed anywhere" was logged */

	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* signalled to stop */
	int stop;			/* protected by lock */
};

/* ---- names, times, text --------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts = phi_now();

	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The object key for (id, flags, ms) into key[LEASE_KEY_LEN + 1], or ""
 * and -ENOMEM (the only way crypt_name_encode() fails). */
static int lease_key(const struct tool_lease *l, const uint8_t id[6],
		     uint8_t flags, int64_t ms, char *key)
{
	uint8_t plain[16];

	plain[0] = LEASE_CHECK;
	plain[1] = flags;
	memcpy(plain + 2, id, 6);
	put_be64(plain + 8, (uint64_t)ms);
	memcpy(key, LEASE_PREFIX, 2);
	if (crypt_name_encode(l->key, l->fsid, plain, key + 2) == 0)
		return 0;
	key[0] = '\0';
	return -ENOMEM;
}

/* "2026-11-29 14:03:12 UTC" for ms since the epoch. */
static void date_text(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, len, "%lld ms after the epoch", (long long)ms);
}

/* A span for people: "333 ms", "40 s", "12 min", "5 h", "3 days". */
static void span_text(int64_t ms, char *out, size_t len)
{
	long long s = (long long)(ms / 1000);

	if (ms > 0 && ms < 1000)
		snprintf(out, len, "%lld ms", (long long)ms);
	else if (s < 120)
		snprintf(out, len, "%lld s", s);
	else if (s < 120 * 60)
		snprintf(out, len, "%lld min", s / 60);
	else if (s < 48 * 3600)
		snprintf(out, len, "%lld h", s / 3600);
	else
		snprintf(out, len, "%lld days", s / 86400);
}

/* "40 s ago", or for a clock ahead of ours "12 s from now by our clock". */
static void age_text(int64_t age_ms, char *out, size_t len)
{
	char span[32];

	/* whole seconds: a lease renewed "16 ms ago" is just as live */
	span_text((age_ms < 0 ? -age_ms : age_ms) / 1000 * 1000, span,
		  sizeof(span));
	snprintf(out, len, age_ms < 0 ? "%s from now by our clock (that "
		 "machine's clock is ahead)" : "%s ago", span);
}

/* ---- reading the regions -------------------------------------------- */

static int on_lease_key(void *ctx, const char *key, uint64_t size)
{
	struct lease_scan *s = ctx;
	struct lease_obj *o;
	uint8_t plain[16];
	int64_t ms;

	(void)size;
	if (strlen(key) != LEASE_KEY_LEN ||
	    crypt_name_decode(s->l->key, s->l->fsid, key + 2, plain) != 0)
		return 0;
	ms = (int64_t)get_be64(plain + 8);
	if (plain[0] != LEASE_CHECK || (plain[1] & ~LEASE_RELEASED) ||
	    ms < LEASE_EPOCH_MS || ms > s->now_ms + LEASE_AHEAD_MS)
		return 0;	/* not a lease of this filesystem */
	if (s->nobj == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		void *p = realloc(s->obj, cap * sizeof(*s->obj));

		if (!p)
			return -ENOMEM;
		s->obj = p;
		s->cap = cap;
	}
	o = &s->obj[s->nobj++];
	memcpy(o->id, plain + 2, 6);
	o->flags = plain[1];
	o->ms = ms;
	return 0;
}

static int by_id_then_time(const void *a, const void *b)
{
	const struct lease_obj *x = a, *y = b;
	int c = memcmp(x->id, y->id, 6);

	if (c)
		return c;
	return (x->ms > y->ms) - (x->ms < y->ms);
}

/* Fold the objects into one holder per mount id.  0 or -ENOMEM. */
static int lease_group(struct lease_scan *s)
{
	size_t i;

	if (s->nobj == 0)
		return 0;
	if (s->nobj)
		qsort(s->obj, s->nobj, sizeof(*s->obj), by_id_then_time);
	s->h = calloc(s->nobj, sizeof(*s->h));
	if (!s->h)
		return -ENOMEM;
	for (i = 0; i < s->nobj; i++) {
		const struct lease_obj *o = &s->obj[i];
		struct lease_holder *h = s->nh ? &s->h[s->nh - 1] : NULL;

		if (!h || memcmp(h->id, o->id, 6) != 0) {
			h = &s->h[s->nh++];
			memcpy(h->id, o->id, 6);
			h->first_ms = o->ms;
		}
		/* sorted by time: the last one seen is the newest */
		h->last_ms = o->ms;
		h->last_flags = o->flags;
		h->released |= o->flags & LEASE_RELEASED;
	}
	return 0;
}

static void scan_release(struct lease_scan *s)
{
	free(s->obj);
	free(s->h);
	memset(s, 0, sizeof(*s));
}

/*
 * List "l/" in every region on its own, so that one failing region hides
 * nothing the others hold.  With warn, a region that answers but cannot
 * list gets a warning.  0, or -1 after printing why (out of memory).
 */
static int lease_scan(const struct tool_lease *l, struct lease_scan *s,
		      int warn)
{
	memset(s, 0, sizeof(*s));
	s->l = l;
	s->now_ms = now_ms();
	for (int i = 0; i < l->nregions; i++) {
		struct backend *be = backend_replica_region(l->regions, i);
		const char *name = l->cfg->regions[i].name;
		char why[512];
		int rc;

		rc = backend_list(be, LEASE_PREFIX, on_lease_key, s);
		if (rc == -ENOMEM) {
			tool_error("out of memory reading the leases");
			scan_release(s);
			return -1;
		}
		if (rc == 0) {
			s->answered |= 1u << i;
			continue;
		}
		/* tool_regions_attach() has already warned about a region
		 * that does not answer at all. */
		if (!warn || rc == PHI_EUNREACHABLE || rc == -ETIMEDOUT)
			continue;
		tool_region_why(be, name, rc, why, sizeof(why));
		tool_warn("region %s: cannot read the leases (%s); checking "
			  "the other regions only", name, why);
	}
	if (lease_group(s)) {
		tool_error("out of memory reading the leases");
		scan_release(s);
		return -1;
	}
	return 0;
}

static int is_self(const struct tool_lease *l, const struct lease_holder *h)
{
	return memcmp(h->id, l->id, 6) == 0;
}

static int is_live(const struct tool_lease *l, const struct lease_holder *h,
		   int64_t now)
{
	return !h->released && now - h->last_ms < l->lease_ms;
}

/* What the body of a holder's newest object says. */
struct lease_info {
	int rc;			/* 0, or why the body could not be read */
	char host[256];
	char machine[64];	/* /etc/machine-id, or "" */
	char dir[PATH_MAX];	/* cache_dir */
	long long pid;
	long long since;	/* seconds since the epoch, or -1 */
};

/* Copy a value of a lease body; with clean, only its printable bytes. */
static void value_copy(char *out, size_t len, const char *v, size_t n,
		       int clean)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 1 < len; i++)
		out[j++] = !clean || (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
	out[j] = '\0';
}

static void parse_body(const char *text, struct lease_info *in)
{
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > 5 && strncmp(p, "host=", 5) == 0)
			value_copy(in->host, sizeof(in->host), p + 5, n - 5, 1);
		else if (strncmp(p, "machine=", 8) == 0)
			value_copy(in->machine, sizeof(in->machine), p + 8,
				   n - 8, 1);
		else if (strncmp(p, "dir=", 4) == 0)
			value_copy(in->dir, sizeof(in->dir), p + 4, n - 4, 0);
		else if (strncmp(p, "pid=", 4) == 0)
			in->pid = strtoll(p + 4, NULL, 10);
		else if (strncmp(p, "since=", 6) == 0)
			in->since = strtoll(p + 6, NULL, 10);
		p += n + (end != NULL);
	}
}

/* The body of h's newest object, from any region with a good copy. */
static void lease_info_read(const struct tool_lease *l,
			    const struct lease_holder *h,
			    struct lease_info *in)
{
	struct buf frame, plain;
	char key[LEASE_KEY_LEN + 1];
	int rc;

	memset(in, 0, sizeof(*in));
	snprintf(in->host, sizeof(in->host), "an unknown host");
	in->since = -1;
	buf_init(&frame, LEASE_FRAME_MAX);
	buf_init(&plain, LEASE_BODY_MAX);
	rc = lease_key(l, h->id, h->last_flags, h->last_ms, key);
	if (rc == 0)
		rc = backend_get(l->regions, key, 0, 0, &frame);
	if (rc == 0)
		rc = crypt_unseal(l->key, l->fsid, key, buf_data(&frame),
				  buf_len(&frame), &plain);
	if (rc == 0)
		parse_body(buf_data(&plain), in);
	in->rc = rc;
	buf_release(&frame);
	buf_release(&plain);
}

/* "HOST (pid N) since DATE" for messages. */
static void who_text(const struct lease_info *in, char *out, size_t len)
{
	char date[64] = "an unknown time";

	if (in->rc) {
		snprintf(out, len, "another machine (its lease object cannot "
			 "be read: %s)", phi_strerror(in->rc));
		return;
	}
	if (in->since >= 0)
		date_text(in->since * 1000, date, sizeof(date));
	snprintf(out, len, "%s (pid %lld) since %s", in->host, in->pid, date);
}

/*
 * Whether the holder was a mount of this very cache_dir on this machine.
 * Then it is not running, however fresh its lease: a running mount holds
 * cache_dir's lock, and cmd_mount.c checked that no one does before it
 * forked (two mounts of one cache_dir racing past that check both get
 * here, and cache_open() refuses the second).  So a kill -9 or a crash
 * here does not keep this machine waiting for its own lease.  A copy of
 * cache_dir, elsewhere or in another folder, is another place.
 */
static int left_here(const struct tool_lease *l, const struct lease_info *in)
{
	return in->rc == 0 && strcmp(in->dir, l->dir) == 0 &&
	       strcmp(in->machine, l->machine) == 0 &&
	       (l->machine[0] || strcmp(in->host, l->host) == 0);
}

/* ---- judging and writing -------------------------------------------- */

/* The live mount other than ours that wrote last, or NULL. */
static struct lease_holder *newest_live(const struct tool_lease *l,
					struct lease_scan *s)
{
	struct lease_holder *best = NULL;

	for (size_t i = 0; i < s->nh; i++) {
		struct lease_holder *h = &s->h[i];

		if (!is_self(l, h) && !h->left_here &&
		    is_live(l, h, s->now_ms) &&
		    (!best || h->last_ms > best->last_ms))
			best = h;
	}
	return best;
}

/* The mount that wrote the newest object, or NULL when there is none. */
static const struct lease_holder *newest(const struct lease_scan *s)
{
	const struct lease_holder *best = NULL;

	for (size_t i = 0; i < s->nh; i++)
		if (!best || s->h[i].last_ms > best->last_ms)
			best = &s->h[i];
	return best;
}

static void refuse(const struct tool_lease *l, const struct lease_holder *h,
		   const char *who, int64_t now)
{
	char age[128], until[64];

	age_text(now - h->last_ms, age, sizeof(age));
	date_text(h->last_ms + l->lease_ms, until, sizeof(until));
	tool_error("filesystem is in use: mounted on %s, lease renewed %s; "
		   "unmount it there, or wait until the lease expires at %s, "
		   "or mount with --force", who, age, until);
}

static void warn_expired(const struct tool_lease *l,
			 const struct lease_holder *h, int64_t now)
{
	struct lease_info in;
	char who[PATH_MAX], age[128], span[32];

	lease_info_read(l, h, &in);
	who_text(&in, who, sizeof(who));
	age_text(now - h->last_ms, age, sizeof(age));
	span_text(l->lease_ms, span, sizeof(span));
	tool_warn("taking over an expired lease: the mount on %s stopped "
		  "without unmounting (lease last renewed %s, lease_time is "
		  "%s)", who, age, span);
}

/* Remember h, left here, for tool_lease_settle().  Out of memory, it
 * is only not released: it expires as it would have. */
static void stale_add(struct tool_lease *l, const struct lease_holder *h)
{
	struct lease_stale *v = realloc(l->stale,
					(l->nstale + 1) * sizeof(*v));

	if (!v)
		return;
	l->stale = v;
	memset(&v[l->nstale], 0, sizeof(*v));
	memcpy(v[l->nstale++].id, h->id, 6);
}

/*
 * Decide on the first scan: 0 to go on (with a warning when taking over
 * from a mount that is live (force), that ran from this cache_dir here,
 * or that stopped without unmounting), -1 after printing the refusal.
 */
static int lease_judge(struct tool_lease *l, struct lease_scan *s,
		       int force)
{
	const struct lease_holder *last;
	struct lease_holder *h;
	struct lease_info in;
	char who[PATH_MAX], age[128];

	while ((h = newest_live(l, s))) {
		lease_info_read(l, h, &in);
		who_text(&in, who, sizeof(who));
		age_text(s->now_ms - h->last_ms, age, sizeof(age));
		if (left_here(l, &in)) {
			/* newest first: older ones left here say no more */
			if (!l->nstale)
				tool_warn("taking over the lease of the last "
					  "mount of this cache_dir on %s: it "
					  "stopped without unmounting (lease "
					  "renewed %s)", who, age);
			stale_add(l, h);
			h->left_here = 1;
			continue;
		}
		if (!force) {
			refuse(l, h, who, s->now_ms);
			return -1;
		}
		tool_warn("--force: taking over the lease of the mount on %s, "
			  "renewed %s; if that mount still runs, two machines "
			  "now write this filesystem: unmount it there at once",
			  who, age);
		return 0;
	}
	last = newest(s);
	if (last && !last->released && !last->left_here)
		warn_expired(l, last, s->now_ms);
	return 0;
}

/*
 * Write the lease object (id, flags, ms) to the regions in mask.  rcs[i]
 * gets region i's result (0 for regions not in mask; every region in mask
 * gets the error when the object could not even be made).  Returns the
 * regions that took it.
 */
static uint32_t write_obj(const struct tool_lease *l, const uint8_t id[6],
			  uint8_t flags, int64_t ms, uint32_t mask, int *rcs)
{
	char key[LEASE_KEY_LEN + 1];
	struct buf frame;
	uint32_t done = 0;
	int rc;

	buf_init(&frame, LEASE_FRAME_MAX);
	rc = lease_key(l, id, flags, ms, key);
	if (rc == 0)
		rc = crypt_seal(l->key, l->fsid, key, l->body, l->body_len,
				&frame);
	for (int i = 0; i < l->nregions; i++) {
		rcs[i] = 0;
		if (!(mask & (1u << i)))
			continue;
		rcs[i] = rc ? rc : backend_put(backend_replica_region(
				l->regions, i), key, buf_data(&frame),
				buf_len(&frame));
		if (rcs[i] == 0)
			done |= 1u << i;
	}
	buf_release(&frame);
	return done;
}

static uint32_t all_regions(const struct tool_lease *l)
{
	return (1u << l->nregions) - 1;
}

/* A time for a new name after last_ms: a new name every time, even if
 * the clock stands or steps back, so an object is never written twice. */
static int64_t next_ms(int64_t last_ms)
{
	int64_t ms = now_ms();

	return ms <= last_ms ? last_ms + 1 : ms;
}

/* One object of this mount with flags, as write_obj(). */
static uint32_t lease_write(struct tool_lease *l, uint8_t flags,
			    uint32_t mask, int *rcs)
{
	int64_t ms = next_ms(l->last_ms);

	l->last_ms = ms;
	return write_obj(l, l->id, flags, ms, mask, rcs);
}

/* A released object for each lease left here, to the regions that do
 * not have one yet. */
static void release_stale(struct tool_lease *l)
{
	int rcs[BACKEND_REPLICA_MAX];

	for (size_t i = 0; i < l->nstale; i++) {
		struct lease_stale *st = &l->stale[i];
		uint32_t want = all_regions(l) & ~st->done;

		if (!want)
			continue;
		st->last_ms = next_ms(st->last_ms);
		st->done |= write_obj(l, st->id, LEASE_RELEASED, st->last_ms,
				      want, rcs);
	}
}

/* The first renewal, to the regions that answered the scan. */
static void lease_first_write(struct tool_lease *l, uint32_t answered)
{
	int rcs[BACKEND_REPLICA_MAX];
	char why[512], span[32];

	l->ok_mask = lease_write(l, 0, answered, rcs);
	l->first_ms = l->last_ms ? l->last_ms : now_ms();
	l->last_ok_ms = l->first_ms;	/* the clock for "not renewed" */
	span_text(l->lease_ms / 3, span, sizeof(span));
	for (int i = 0; i < l->nregions; i++) {
		struct backend *be = backend_replica_region(l->regions, i);
		const char *name = l->cfg->regions[i].name;

		if (rcs[i] == 0)
			continue;
		tool_region_why(be, name, rcs[i], why, sizeof(why));
		tool_warn("region %s: cannot write the lease (%s); retrying "
			  "every %s", name, why, span);
	}
}

/*
 * After our first object: did another mount race us past the first scan?
 * Of two live claims the older first object wins (ties: the smaller
 * mount id), the same answer for both, since both read the same names.
 * 0 if we keep the lease, -1 after releasing it and printing the refusal.
 */
static int lease_recheck(struct tool_lease *l)
{
	const struct lease_holder *winner = NULL;
	struct lease_info in, win;
	struct lease_scan s;
	int rcs[BACKEND_REPLICA_MAX];
	char who[PATH_MAX];

	if (lease_scan(l, &s, 0)) {
		lease_write(l, LEASE_RELEASED, l->ok_mask, rcs);
		return -1;
	}
	for (size_t i = 0; i < s.nh; i++) {
		const struct lease_holder *h = &s.h[i];
		int before = h->first_ms < l->first_ms ||
			     (h->first_ms == l->first_ms &&
			      memcmp(h->id, l->id, 6) < 0);

		if (is_self(l, h) || !is_live(l, h, s.now_ms) || !before ||
		    (winner && h->first_ms >= winner->first_ms))
			continue;
		lease_info_read(l, h, &in);
		if (!left_here(l, &in)) {
			winner = h;
			win = in;
		}
	}
	if (winner) {
		lease_write(l, LEASE_RELEASED, l->ok_mask, rcs);
		who_text(&win, who, sizeof(who));
		refuse(l, winner, who, s.now_ms);
	}
	scan_release(&s);
	return winner ? -1 : 0;
}

/* ---- renewal -------------------------------------------------------- */

/* One round: a new object to every region; log what changed. */
static void renew_once(struct tool_lease *l)
{
	int rcs[BACKEND_REPLICA_MAX];
	uint32_t done = lease_write(l, 0, all_regions(l), rcs);
	int64_t now = now_ms();
	char why[512], span[32];

	for (int i = 0; i < l->nregions; i++) {
		struct backend *be = backend_replica_region(l->regions, i);
		const char *name = l->cfg->regions[i].name;
		uint32_t bit = 1u << i;

		if ((done & bit) && !(l->ok_mask & bit)) {
			PHI_LOG(PHI_LOG_NOTICE, "region %s: lease renewed",
				name);
		} else if (!(done & bit) && (l->ok_mask & bit)) {
			tool_region_why(be, name, rcs[i], why, sizeof(why));
			PHI_LOG(PHI_LOG_WARNING, "region %s: cannot renew the "
				"lease: %s", name, why);
		}
	}
	l->ok_mask = done;
	if (done) {
		l->last_ok_ms = now;
		l->late_logged = 0;
	} else if (!l->late_logged && now - l->last_ok_ms >= l->lease_ms) {
		span_text(now - l->last_ok_ms, span, sizeof(span));
		PHI_LOG(PHI_LOG_ERR, "lease not renewed in any region for %s: "
			"another machine may now mount this filesystem", span);
		l->late_logged = 1;
	}
}

static void add_ms(struct timespec *ts, int64_t ms)
{
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *renew_main(void *arg)
{
	struct tool_lease *l = arg;
	struct timespec due, now;

	clock_gettime(CLOCK_MONOTONIC, &due);
	pthread_mutex_lock(&l->lock);
	for (;;) {
		add_ms(&due, l->lease_ms / 3);
		while (!l->stop &&
		       pthread_cond_timedwait(&l->wake, &l->lock, &due) !=
		       ETIMEDOUT)
			;
		if (l->stop)
			break;
		pthread_mutex_unlock(&l->lock);
		renew_once(l);
		pthread_mutex_lock(&l->lock);
		/* A slow round must not be followed by a burst. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > due.tv_sec ||
		    (now.tv_sec == due.tv_sec && now.tv_nsec > due.tv_nsec))
			due = now;
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ---- open and close ------------------------------------------------- */

static void lease_free(struct tool_lease *l)
{
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->lock);
	free(l->stale);
	free(l);
}

/* The first line of path into out, or "". */
static void read_line_of(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (!f)
		return;
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* Where this mount runs: host name, machine id, cache_dir. */
static void lease_place(struct tool_lease *l)
{
	if (gethostname(l->host, sizeof(l->host)) != 0)
		snprintf(l->host, sizeof(l->host), "unknown");
	l->host[sizeof(l->host) - 1] = '\0';
	read_line_of("/etc/machine-id", l->machine, sizeof(l->machine));
	if (!l->machine[0])
		read_line_of("/var/lib/dbus/machine-id", l->machine,
			     sizeof(l->machine));
	if (!realpath(l->cfg->cache_dir, l->dir))
		snprintf(l->dir, sizeof(l->dir), "%s", l->cfg->cache_dir);
}

/* A lease handle with a fresh mount id and its body.  NULL (printed). */
static struct tool_lease *lease_new(const struct phi_config *cfg,
				    struct backend *regions,
				    const struct crypt_key *key,
				    const uint8_t fsid[16])
{
	struct tool_lease *l = calloc(1, sizeof(*l));
	pthread_condattr_t ca;
	int rc;

	if (!l) {
		tool_error("out of memory");
		return NULL;
	}
	l->cfg = cfg;
	l->regions = regions;
	l->key = key;
	memcpy(l->fsid, fsid, 16);
	l->nregions = backend_replica_count(regions);
	if (l->nregions > cfg->nregions)
		l->nregions = cfg->nregions;	/* names come from cfg */
	l->lease_ms = cfg->lease_time_ms;
	lease_place(l);
	/* host and dir are bounded: the body always fits */
	l->body_len = (size_t)snprintf(l->body, sizeof(l->body),
				       "host=%s\npid=%ld\nsince=%lld\n"
				       "machine=%s\ndir=%s\n", l->host,
				       (long)getpid(),
				       (long long)(now_ms() / 1000),
				       l->machine, l->dir);
	assert(l->body_len < sizeof(l->body));
	rc = crypt_random_bytes(l->id, sizeof(l->id));
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		tool_error("cannot make a mount id: %s", phi_strerror(rc));
		lease_free(l);
		return NULL;
	}
	return l;
}

/* Scan, judge, claim, check the claim.  0 or -1 (printed). */
static int lease_take(struct tool_lease *l, int force)
{
	struct lease_scan s;
	uint32_t answered;
	int rc;

	if (lease_scan(l, &s, 1))
		return -1;
	answered = s.answered;
	if (!answered)
		tool_warn("no region answers: cannot check whether this "
			  "filesystem is mounted elsewhere; mounting anyway, "
			  "the lease is written once a region is back");
	rc = lease_judge(l, &s, force);
	scan_release(&s);
	if (rc)
		return -1;
	lease_first_write(l, answered);
	if (!force && l->ok_mask)
		return lease_recheck(l);
	return 0;
}

int tool_lease_open(struct tool_lease **out, const struct phi_config *cfg,
		    struct backend *regions, const struct crypt_key *key,
		    const uint8_t fsid[16], int flags)
{
	struct tool_lease *l;
	int rc;

	*out = NULL;
	if (!regions)
		return 0;	/* nowhere to hold one, and no one to share */
	l = lease_new(cfg, regions, key, fsid);
	if (!l)
		return -1;
	if (lease_take(l, flags & TOOL_LEASE_FORCE)) {
		lease_free(l);
		return -1;
	}
	rc = pthread_create(&l->thread, NULL, renew_main, l);
	if (rc) {
		int rcs[BACKEND_REPLICA_MAX];

		tool_error("cannot start renewing the lease: %s",
			   strerror(rc));
		lease_write(l, LEASE_RELEASED, l->ok_mask, rcs);
		lease_free(l);
		return -1;
	}
	l->running = 1;
	*out = l;
	return 0;
}

void tool_lease_settle(struct tool_lease *l)
{
	if (!l)
		return;
	l->settled = 1;
	release_stale(l);
}

/* At unmount: the regions that took the last renewal, else all; and the
 * leases left here, once ours to release. */
static void lease_release(struct tool_lease *l)
{
	int rcs[BACKEND_REPLICA_MAX];
	uint32_t mask = l->ok_mask ? l->ok_mask : all_regions(l);
	char until[64];

	if (l->settled)
		release_stale(l);
	if (lease_write(l, LEASE_RELEASED, mask, rcs)) {
		PHI_LOG(PHI_LOG_NOTICE, "lease released");
		return;
	}
	date_text(l->last_ok_ms + l->lease_ms, until, sizeof(until));
	PHI_LOG(PHI_LOG_WARNING, "cannot release the lease: no region took "
		"it; a mount elsewhere has to wait until %s", until);
}

void tool_lease_close(struct tool_lease *l, int release)
{
	if (!l)
		return;
	if (l->running) {
		pthread_mutex_lock(&l->lock);
		l->stop = 1;
		pthread_cond_signal(&l->wake);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->thread, NULL);
	}
	if (release)
		lease_release(l);
	lease_free(l);
}

int64_t tool_lease_age_ms(struct tool_lease *l)
{
	return l ? now_ms() - atomic_load(&l->last_ok_ms) : -1;
}
