/*
 * cmd_versions.c - phifs versions CONFIG PATH [--region NAME]: the moments
 * at which PATH changed, within retention (or the longer period of a
 * [retention] rule over PATH).
 *
 * cache_history_walk() replays a region's history in a scratch folder
 * (tool_with_scratch()) from its oldest snapshot, and after each metadata
 * object looks PATH up in the filesystem as it was then.  A moment is
 * printed when what PATH names changed since the moment before: it
 * appeared or went, became another inode (a save by rename), or changed
 * its size, mtime or type.  Changes older than retention are replayed but
 * not printed, except the last of them when what it made was still there
 * at the start of the retention window: that version is within reach, and
 * it is listed with the moment it was made.  Each time printed is one that
 * `phifs restore --at` accepts to get that version.
 */
#include "cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "phi.h"

static const char versions_usage[] =
	"usage: phifs versions CONFIG PATH [--region NAME]\n\n"
	"List the moments at which the file or folder PATH (a path from the "
	"root of\nthe filesystem) changed, oldest first, going back as far as "
	"retention\n(default 30d), or a [retention] rule's longer period "
	"over PATH, or through\nthe whole history under a legal hold, one "
	"line each:\n\n"
	"  2026-11-29T10:00:03.120Z  size 12345  mtime "
	"2026-11-29T10:00:02.999Z\n"
	"  2026-11-29T10:05:00.004Z  deleted\n\n"
	"Give a time shown to `phifs restore --at` to get that version.  The "
	"history\nis read from a region (like recover); unlocks like mount.\n\n"
	"  --region NAME   read the history from [region NAME] (default: the "
	"region\n                  with the latest moment, named on "
	"stderr)\n";

/* What PATH named at one moment. */
struct state {
	int exists;
	uint64_t ino;
	mode_t type;
	int64_t size;
	struct timespec mtime;
};

struct versions {
	const struct phi_config *cfg;
	const char *path, *region;
	uint64_t reach_ms;	/* retention, or a longer [retention] rule's
				   period over the path */
	int64_t cutoff_ms;	/* changes before this are not listed */
	struct state prev;	/* at the moment before */
	int64_t prev_ms;	/* when prev began */
	int have_prev, prev_shown, seen, printed;
	int reader_gone;	/* stdout's reader left (| head): stop, exit 0 */
	struct tool_progress prog;
};

/* PATH in view.  0 (st->exists may be 0) or a code other than "not
 * there". */
static int look(struct cache *view, const char *path, struct state *s)
{
	char *copy = strdup(path), *save = NULL, *part;
	uint64_t cur = CACHE_ROOT_INO;
	struct stat st;
	int rc = copy ? cache_getattr(view, cur, &st) : -ENOMEM;

	for (part = rc ? NULL : strtok_r(copy, "/", &save); part;
	     part = strtok_r(NULL, "/", &save)) {
		uint64_t parent = cur;

		if (strcmp(part, ".") == 0)
			continue;
		rc = cache_lookup(view, parent, part, &st);
		if (parent != CACHE_ROOT_INO)
			cache_forget(view, parent, 1);
		if (rc)
			break;
		cur = (uint64_t)st.st_ino;
	}
	free(copy);
	memset(s, 0, sizeof(*s));
	if (rc == -ENOENT || rc == -ENOTDIR)
		return 0;
	if (rc)
		return rc;
	if (cur != CACHE_ROOT_INO)
		cache_forget(view, cur, 1);
	s->exists = 1;
	s->ino = cur;
	s->type = st.st_mode & S_IFMT;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	return 0;
}

static int changed(const struct state *a, const struct state *b)
{
	if (a->exists != b->exists)
		return 1;
	return a->exists && (a->ino != b->ino || a->type != b->type ||
			     a->size != b->size ||
			     a->mtime.tv_sec != b->mtime.tv_sec ||
			     a->mtime.tv_nsec != b->mtime.tv_nsec);
}

static const char *type_word(mode_t type)
{
	switch (type) {
	case S_IFDIR:
		return "folder";
	case S_IFLNK:
		return "symlink";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	case S_IFCHR:
	case S_IFBLK:
		return "device";
	}
	return "size";
}

static void print_state(int64_t time_ms, const struct state *s)
{
	char when[32], mtime[32];

	phi_format_moment(time_ms, when);
	if (!s->exists) {
		printf("%s  deleted\n", when);
		return;
	}
	phi_format_moment((int64_t)s->mtime.tv_sec * 1000 +
			  s->mtime.tv_nsec / 1000000, mtime);
	if (s->type == S_IFREG)
		printf("%s  size %" PRId64 "  mtime %s\n", when, s->size,
		       mtime);
	else
		printf("%s  %s  mtime %s\n", when, type_word(s->type), mtime);
}

static void show(struct versions *v, int64_t time_ms, const struct state *s)
{
	tool_progress_end(&v->prog);
	print_state(time_ms, s);
	v->reader_gone = tool_stdout_gone();
	v->printed++;
}

static int at_moment(void *ctx, const struct cache_moment *m,
		     struct cache *view)
{
	struct versions *v = ctx;
	struct state s;
	int rc;

	rc = look(view, v->path, &s);
	if (rc) {
		tool_error("cannot look up %s in the history: %s", v->path,
			   phi_strerror(rc));
		return 1;
	}
	v->seen |= s.exists;
	if (v->have_prev ? changed(&v->prev, &s) : s.exists) {
		/* the version before, if it outlived the cutoff */
		if (m->time_ms >= v->cutoff_ms && !v->prev_shown &&
		    v->prev.exists)
			show(v, v->prev_ms, &v->prev);
		v->prev = s;
		v->prev_ms = m->time_ms;
		v->prev_shown = 0;
	}
	v->have_prev = 1;
	if (m->time_ms >= v->cutoff_ms && !v->prev_shown) {
		if (v->prev.exists || v->prev_ms >= v->cutoff_ms)
			show(v, v->prev_ms, &v->prev);
		v->prev_shown = 1;
	}
	return v->reader_gone;	/* no one reads the rest: stop the walk */
}

/* "30d", "12h", "90s": the retention as configured. */
static void period(uint64_t ms, char *buf, size_t len)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {
		{ 86400000, "d" }, { 3600000, "h" }, { 60000, "m" },
		{ 1000, "s" }, { 1, "ms" },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms,
				 units[i].unit);
			return;
		}
	}
}

/* Whether path a lies under path b ("/" and absolute, or relative to the
 * root, no trailing '/'). */
static int lies_under(const char *a, const char *b)
{
	size_t n;

	a += *a == '/';
	b += *b == '/';
	n = strlen(b);
	if (n && b[n - 1] == '/')
		n--;
	return n == 0 || (strncmp(a, b, n) == 0 &&
			  (a[n] == '\0' || a[n] == '/'));
}

/*
 * A legal hold over path, or over something under it, keeps all of its
 * history from gc: versions then lists every moment the region holds.
 * Holds that cannot be read leave the cutoff as it is, with a warning.
 */
static void reach_holds(struct versions *v, struct tool_history *h)
{
	struct tool_regions r = { .n = 0 };	/* borrowed from h */
	struct tool_hold *holds = NULL;
	struct timespec now = phi_now();
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	size_t n = 0;

	for (int i = 0; i < h->nset; i++)
		for (int j = 0; j < h->nothers; j++)
			if (h->others[j] == backend_replica_region(h->set, i)) {
				r.be[r.n] = h->others[j];
				r.names[r.n++] = h->names[i];
			}
	if (tool_holds_load(&r, h->key, h->info.fsid, &holds, &n)) {
		tool_warn("the legal holds were not read: versions goes back "
			  "only as far as retention and [retention] say");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if ((!holds[i].until_ms || holds[i].until_ms > now_ms) &&
		    (lies_under(v->path, holds[i].path) ||
		     lies_under(holds[i].path, v->path)))
			v->cutoff_ms = INT64_MIN;
	free(holds);
}

static int versions_in(void *ctx, const char *dir)
{
	struct versions *v = ctx;
	struct cache_recover_args a;
	struct tool_history h;
	int64_t latest = INT64_MIN;	/* the choice made, if any */
	char keep[32];
	int rc;

	if (tool_history_open(v->cfg, v->region, &h))
		return 1;
	reach_holds(v, &h);
	if (!v->region)
		tool_history_choose_latest(&h, INT64_MAX, &latest);
	tool_history_args(&h, dir, INT64_MAX, &a);
	tool_progress_init(&v->prog, "reading history");
	a.progress = tool_progress_show;
	a.progress_ctx = &v->prog;
	rc = cache_history_walk(&a, at_moment, v);
	/* no moment since the cutoff: the version then is still current */
	if (rc == 0 && v->have_prev && !v->prev_shown && v->prev.exists)
		show(v, v->prev_ms, &v->prev);
	tool_progress_end(&v->prog);
	if (v->reader_gone) {
		rc = 0;		/* a normal end: the reader had enough */
	} else if (rc < 0) {
		tool_history_error(&h, INT64_MAX, rc);
	} else if (rc == 0 && !v->printed) {
		period(v->reach_ms, keep, sizeof(keep));
		if (v->seen)
			tool_error("%s: no version within retention (%s): it "
				   "was deleted before", v->path, keep);
		else
			tool_error("%s: not in the history of region %s",
				   v->path, tool_history_region(&h));
		rc = 1;
	}
	if (rc == 0)
		tool_history_say_choice(&h, latest);
	tool_history_close(&h);
	return rc ? 1 : 0;
}


/* How far back path's versions reach: retention, or longer where a
 * [retention] rule covers it or something under it. */
static uint64_t reach_of(const struct phi_config *cfg, const char *path)
{
	uint64_t ms = cfg->retention_ms;

	for (int i = 0; i < cfg->nrules; i++)
		if ((lies_under(path, cfg->rules[i].path) ||
		     lies_under(cfg->rules[i].path, path)) &&
		    cfg->rules[i].period_ms > ms)
			ms = cfg->rules[i].period_ms;
	return ms;
}

static int parse_versions_args(int argc, char **argv, const char **config,
			       struct versions *v)
{
	int npos = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			v->region = argv[++i];
		else if (strncmp(argv[i], "--region=", 9) == 0)
			v->region = argv[i] + 9;
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			return -1;
		else if (npos == 0 && ++npos)
			*config = argv[i];
		else if (npos == 1 && ++npos)
			v->path = argv[i];
		else
			return -1;
	}
	return npos == 2 ? 0 : -1;
}

int cmd_versions(int argc, char **argv)
{
	struct versions v;
	struct phi_config cfg;
	struct timespec now;
	const char *config = NULL;
	int rc;

	if (tool_want_help(argc, argv, versions_usage))
		return 0;
	memset(&v, 0, sizeof(v));
	if (parse_versions_args(argc, argv, &config, &v)) {
		tool_error("usage: phifs versions CONFIG PATH [--region NAME]");
		return 2;
	}
	if (tool_load_config(config, &cfg))
		return 1;
	now = phi_now();
	v.cfg = &cfg;
	v.reach_ms = reach_of(&cfg, v.path);
	v.cutoff_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 -
		      (int64_t)v.reach_ms;
	rc = tool_with_scratch(&cfg, versions_in, &v);
	phi_config_release(&cfg);
	return rc;
}
