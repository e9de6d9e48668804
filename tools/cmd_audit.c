/*
 * cmd_audit.c - phifs audit CONFIG [filters] [--format text|json|fhir]:
 * the events of the local audit trail that match, oldest first.
 *
 * The trail is read from cache_dir through a read-only open, mounted or
 * not.  Looking is itself recorded: before anything is shown, the query
 * (who ran it, on which host, with which filters) is appended to the
 * trail as a `query` event naming the patient and path it asked about;
 * if that cannot be written, nothing is shown.
 */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "phi.h"

static const char audit_usage[] =
	"usage: phifs audit CONFIG [--patient NAME] [--user USER] "
	"[--path PATH] [--since TIME] [--until TIME] "
	"[--format text|json|fhir]\n\n"
	"Show the events of the audit trail kept in cache_dir (mounted or "
	"not),\noldest first: who opened, made, changed or removed what, "
	"when, from which\nprogram.  Text is one line per event; json is one "
	"object per line; fhir is\none FHIR R4 AuditEvent resource per line "
	"(NDJSON).  Each query is itself\nrecorded in the trail, and so are "
	"mount and unmount, restore, recover,\nfsck --repair, gc, key and "
	"hold changes.\n\n"
	"  --patient NAME  events in the patient folder NAME (patient_folders)\n"
	"  --user USER     events by USER (a name, or a uid)\n"
	"  --path PATH     events on PATH or anything under it (from the "
	"root)\n"
	"  --since TIME    events at or after TIME: as restore --at takes it "
	"(2026-11-29,\n                  2026-11-29T10:00:00Z, -2h, -30d), or "
	"@SECONDS since 1970\n"
	"  --until TIME    events at or before TIME\n"
	"  --region NAME   the events as region NAME keeps them (its sealed "
	"segments),\n                  not cache_dir's: needs only the "
	"configuration and a key;\n                  `phifs audit verify "
	"CONFIG [--region NAME]` checks them\n"
	"  --format F      text (default), json or fhir\n";

struct query {
	const char *config, *patient, *user, *path, *since_s, *until_s;
	const char *region;	/* --region: read its segments */
	uint64_t since, until;
	int json;
	int fhir;
	uint64_t shown;
	int gone;
	char buf[AUDIT_REC_MAX];
	char line[4 * AUDIT_REC_MAX];
	char fhir_line[AUDIT_FHIR_MAX];
};

static int opt(char **argv, int argc, int *i, const char *name,
	       const char **out)
{
	size_t n = strlen(name);

	if (strcmp(argv[*i], name) == 0 && *i + 1 < argc) {
		*out = argv[++*i];
		return 1;
	}
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
		*out = argv[*i] + n + 1;
		return 1;
	}
	return 0;
}

static int parse_audit_args(int argc, char **argv, struct query *q)
{
	const char *format = "text";

	for (int i = 1; i < argc; i++) {
		if (opt(argv, argc, &i, "--patient", &q->patient) ||
		    opt(argv, argc, &i, "--user", &q->user) ||
		    opt(argv, argc, &i, "--path", &q->path) ||
		    opt(argv, argc, &i, "--since", &q->since_s) ||
		    opt(argv, argc, &i, "--until", &q->until_s) ||
		    opt(argv, argc, &i, "--region", &q->region) ||
		    opt(argv, argc, &i, "--format", &format))
			continue;
		if (argv[i][0] == '-' || q->config)
			return -1;
		q->config = argv[i];
	}
	if (strcmp(format, "json") == 0)
		q->json = 1;
	else if (strcmp(format, "fhir") == 0)
		q->fhir = 1;
	else if (strcmp(format, "text") != 0)
		return -1;
	return q->config ? 0 : -1;
}

/* path is p or under it. */
static int under(const char *path, const char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		n--;
	if (n == 1 && p[0] == '/')
		return path[0] == '/';
	return strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int user_match(const struct audit_event *ev, const char *user)
{
	char *end;
	unsigned long uid = strtoul(user, &end, 10);

	if (*user && !*end)
		return ev->uid == uid;
	return strcmp(ev->s[AUDIT_S_USER], user) == 0;
}

static int matches(const struct query *q, const struct audit_event *ev)
{
	if (q->patient && strcmp(ev->s[AUDIT_S_PATIENT], q->patient) &&
	    strcmp(ev->s[AUDIT_S_PATIENT2], q->patient))
		return 0;
	if (q->user && !user_match(ev, q->user))
		return 0;
	if (q->path && !under(ev->s[AUDIT_S_PATH], q->path) &&
	    !(ev->kind == AUDIT_RENAME || ev->kind == AUDIT_LINK ?
	      under(ev->s[AUDIT_S_PATH2], q->path) : 0))
		return 0;
	if (q->since_s && ev->time_ns < q->since)
		return 0;
	if (q->until_s && ev->time_ns > q->until)
		return 0;
	return 1;
}

/* ev as one FHIR AuditEvent line in q->fhir_line: its length, 0 if it
 * cannot be one (said on stderr). */
static size_t fhir_line(struct query *q, uint64_t seq,
			const struct audit_event *ev)
{
	int n = audit_format_fhir(ev, q->fhir_line, sizeof(q->fhir_line));

	if (n < 0) {
		tool_warn("audit event %llu does not fit a FHIR resource; "
			  "skipped", (unsigned long long)seq);
		return 0;
	}
	return (size_t)n;
}

static int show(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct query *q = arg;
	struct audit_event ev;
	size_t n;

	if (audit_decode(rec, len, &ev, q->buf, sizeof(q->buf))) {
		tool_warn("audit event %llu is not readable; skipped",
			  (unsigned long long)seq);
		return 0;
	}
	if (!matches(q, &ev))
		return 0;
	n = q->fhir ? fhir_line(q, seq, &ev) :
	    audit_format(&ev, seq, q->json, q->line, sizeof(q->line));
	fwrite(q->fhir ? q->fhir_line : q->line, 1, n, stdout);
	q->shown++;
	if (q->shown % 256 == 0 && tool_stdout_gone()) {
		q->gone = 1;
		return 1;
	}
	return 0;
}

/* An event of this process (a command, not a FUSE request) into c. */
static int append_event(struct cache *c, enum audit_kind kind, int err,
			const char *path, const char *patient,
			const char *detail)
{
	struct audit_event ev;
	char comm[64], user[64], group[64];
	uint8_t rec[AUDIT_REC_MAX];
	struct timespec now = phi_now();
	int len;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.err = err;
	ev.time_ns = (uint64_t)now.tv_sec * 1000000000ull +
		     (uint64_t)now.tv_nsec;
	ev.uid = (uint32_t)getuid();
	ev.gid = (uint32_t)getgid();
	ev.pid = (uint32_t)getpid();
	audit_comm(getpid(), comm, sizeof(comm));
	audit_names(getuid(), getgid(), user, sizeof(user), group,
		    sizeof(group));
	ev.s[AUDIT_S_COMM] = comm;
	ev.s[AUDIT_S_USER] = user;
	ev.s[AUDIT_S_GROUP] = group;
	ev.s[AUDIT_S_HOST] = audit_host();
	ev.s[AUDIT_S_PATH] = path;
	ev.s[AUDIT_S_PATIENT] = patient;
	ev.s[AUDIT_S_DETAIL] = detail;
	len = audit_encode(&ev, rec, sizeof(rec));
	return len < 0 ? len : cache_audit_append(c, rec, (size_t)len);
}

/* The query as an event of its own. */
static int record_query(struct cache *c, const struct query *q)
{
	char detail[1024];

	snprintf(detail, sizeof(detail), "%s%s%s%s%s%s%s%s",
		 q->user ? "user=" : "", q->user ? q->user : "",
		 q->since_s ? " since=" : "", q->since_s ? q->since_s : "",
		 q->until_s ? " until=" : "", q->until_s ? q->until_s : "",
		 q->json ? " format=json" : "",
		 q->fhir ? " format=fhir" : "");
	return append_event(c, AUDIT_QUERY, 0, q->path, q->patient,
			    detail[0] == ' ' ? detail + 1 : detail);
}

int tool_audit_command(const struct phi_config *cfg, enum audit_kind kind,
		       int err, const char *path, const char *detail)
{
	return tool_audit_command_key(cfg, NULL, kind, err, path, detail);
}

int tool_audit_command_key(const struct phi_config *cfg,
			   const struct crypt_key *given, enum audit_kind kind,
			   int err, const char *path, const char *detail)
{
	struct audit_patients pat;
	struct crypt_key *key = NULL;
	char patient[256] = "";
	struct cache *c;
	int rc;

	if (cfg->audit == 0)
		return 0;
	/* a sealed trail takes the key to append to */
	if (given)
		rc = tool_cache_open_with(cfg, CACHE_OPEN_RDONLY |
					  CACHE_OPEN_AUDIT, given, &c);
	else
		rc = tool_cache_open_keyed(cfg, CACHE_OPEN_RDONLY |
					   CACHE_OPEN_AUDIT, &c, &key);
	if (rc == PHI_ENOFS) {
		tool_warn("not in an audit trail: the filesystem has no "
			  "cache_dir on this machine to keep one");
		return 0;
	}
	if (rc) {
		tool_error("cannot record this in the audit trail: %s",
			   phi_strerror(rc));
		return -1;
	}
	if (path && audit_patients_parse(cfg->patient_folders, &pat) == 0)
		audit_patient_of(&pat, path, patient, sizeof(patient));
	rc = append_event(c, kind, err, path, patient, detail);
	cache_close(c);
	crypt_key_free(key);
	if (rc) {
		tool_error("cannot record this in the audit trail: %s",
			   phi_strerror(rc));
		return -1;
	}
	return 0;
}

int tool_audit_daemon(struct cache *c, enum audit_kind kind, int err,
		      const char *detail)
{
	int rc = append_event(c, kind, err, NULL, NULL, detail);

	if (rc)
		PHI_LOG(PHI_LOG_ERR, "cannot record %s in the audit trail: %s",
			audit_kind_name(kind), phi_strerror(rc));
	return rc;
}

void tool_audit_time(int64_t ms, char *buf, size_t size)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == INT64_MAX || !gmtime_r(&sec, &tm)) {
		snprintf(buf, size, "latest");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int run_query(const struct phi_config *cfg, struct query *q)
{
	struct crypt_key *key = NULL;
	struct cache *c;
	int rc;

	rc = tool_cache_open_keyed(cfg, CACHE_OPEN_RDONLY | CACHE_OPEN_AUDIT,
				   &c, &key);
	if (rc) {
		if (rc != -EACCES)
			tool_cache_error(cfg, rc);
		return 1;
	}
	rc = record_query(c, q);
	if (rc) {
		tool_error("%s: cannot record this query in the audit trail: "
			   "%s", cfg->path, phi_strerror(rc));
		cache_close(c);
		crypt_key_free(key);
		return 1;
	}
	rc = cache_audit_walk(c, 1, show, q);
	cache_close(c);
	crypt_key_free(key);
	if (q->gone)
		return 0;
	if (rc < 0) {
		tool_error("%s: cannot read the audit trail: %s", cfg->path,
			   phi_strerror(rc));
		return 1;
	}
	if (fflush(stdout) == EOF && !tool_stdout_gone()) {
		tool_error("cannot write the events: %s", strerror(errno));
		return 1;
	}
	return 0;
}

/* The query from region q->region's segments (no cache_dir needed); the
 * query is recorded where this machine keeps a trail. */
static int run_region_query(const struct phi_config *cfg, struct query *q)
{
	char detail[1200];
	int rc;

	snprintf(detail, sizeof(detail), "region=%s%s%s%s%s%s%s%s",
		 q->region, q->user ? " user=" : "", q->user ? q->user : "",
		 q->since_s ? " since=" : "", q->since_s ? q->since_s : "",
		 q->until_s ? " until=" : "", q->until_s ? q->until_s : "",
		 q->json ? " format=json" : "");
	if (tool_audit_command(cfg, AUDIT_QUERY, 0, q->path, detail))
		return 1;
	rc = tool_audit_region_walk(cfg, q->region, show, q);
	if (q->gone)
		return 0;
	if (rc < 0)
		return 1;
	if (fflush(stdout) == EOF && !tool_stdout_gone()) {
		tool_error("cannot write the events: %s", strerror(errno));
		return 1;
	}
	return 0;
}

/* TIME of --since or --until into ns: @SECONDS, or a moment as --at
 * takes it (tool_time_arg()).  0, or -1 after printing why. */
static int query_time(const char *opt, const char *text, uint64_t *ns)
{
	int64_t ms;

	if (text[0] == '@') {
		if (audit_parse_time(text, ns) == 0)
			return 0;
		tool_error("%s: bad time '%s' (@ and a whole number of seconds "
			   "since 1970)", opt, text);
		return -1;
	}
	if (tool_time_arg(opt, text, &ms))
		return -1;
	*ns = (uint64_t)ms * 1000000;
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	struct phi_config cfg;
	struct query *q;
	int rc;

	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return cmd_audit_verify(argc - 1, argv + 1);
	if (tool_want_help(argc, argv, audit_usage))
		return 0;
	q = calloc(1, sizeof(*q));
	if (!q) {
		tool_error("out of memory");
		return 1;
	}
	if (parse_audit_args(argc, argv, q)) {
		tool_error("usage: phifs audit CONFIG [--patient NAME] "
			   "[--user USER] [--path PATH] [--since TIME] "
			   "[--until TIME] [--format text|json|fhir]");
		free(q);
		return 2;
	}
	if ((q->since_s && query_time("--since", q->since_s, &q->since)) ||
	    (q->until_s && query_time("--until", q->until_s, &q->until))) {
		free(q);
		return 2;
	}
	if (tool_load_config(q->config, &cfg)) {
		free(q);
		return 1;
	}
	rc = q->region ? run_region_query(&cfg, q) : run_query(&cfg, q);
	phi_config_release(&cfg);
	free(q);
	return rc;
}
