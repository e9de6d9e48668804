/*
 * audit.c - events of the audit trail: their byte format, their patient,
 * the names of who made them, and their text and JSON forms.
 *
 * The format is in audit.h.  A reader skips strings it does not know,
 * and shows a kind it does not know as "?" with the rest of the event,
 * so a later version may add strings at the end, or kinds at the end of
 * enum audit_kind, without a new version number; anything else new
 * needs one.
 */
#include "audit.h"
#include "phi.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VERSION 1
#define HEAD 56		/* bytes before the strings */
#define STR_MAX 4095

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_n(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int audit_encode(const struct audit_event *ev, uint8_t *out, size_t size)
{
	size_t at = HEAD;

	if (size < HEAD)
		return -ENOSPC;
	put_u64(out, ev->ino);
	out[8] = VERSION;
	out[9] = (uint8_t)ev->kind;
	put_u16(out + 10, AUDIT_S_END);
	put_u32(out + 12, (uint32_t)ev->err);
	put_u64(out + 16, ev->time_ns);
	put_u32(out + 24, ev->uid);
	put_u32(out + 28, ev->gid);
	put_u32(out + 32, ev->pid);
	put_u32(out + 36, ev->flags);
	put_u64(out + 40, ev->bytes_read);
	put_u64(out + 48, ev->bytes_written);
	for (int i = 0; i < AUDIT_S_END; i++) {
		const char *s = ev->s[i] ? ev->s[i] : "";
		size_t n = strnlen(s, STR_MAX);

		if (at + 2 + n > size)
			return -ENOSPC;
		put_u16(out + at, (uint16_t)n);
		memcpy(out + at + 2, s, n);
		at += 2 + n;
	}
	return (int)at;
}

int audit_decode(const void *rec, size_t len, struct audit_event *ev,
		 char *buf, size_t bufsize)
{
	const uint8_t *p = rec;
	size_t at = HEAD, used = 0;
	unsigned count;

	if (len < HEAD || p[8] != VERSION)
		return PHI_ECORRUPT;
	memset(ev, 0, sizeof(*ev));
	ev->ino = get_n(p, 8);
	ev->kind = (enum audit_kind)p[9];
	count = (unsigned)get_n(p + 10, 2);
	ev->err = (int)get_n(p + 12, 4);
	ev->time_ns = get_n(p + 16, 8);
	ev->uid = (uint32_t)get_n(p + 24, 4);
	ev->gid = (uint32_t)get_n(p + 28, 4);
	ev->pid = (uint32_t)get_n(p + 32, 4);
	ev->flags = (uint32_t)get_n(p + 36, 4);
	ev->bytes_read = get_n(p + 40, 8);
	ev->bytes_written = get_n(p + 48, 8);
	for (unsigned i = 0; i < count; i++) {
		size_t n;

		if (at + 2 > len)
			return PHI_ECORRUPT;
		n = (size_t)get_n(p + at, 2);
		if (at + 2 + n > len)
			return PHI_ECORRUPT;
		if (i < AUDIT_S_END) {
			if (used + n + 1 > bufsize)
				return PHI_ECORRUPT;
			memcpy(buf + used, p + at + 2, n);
			buf[used + n] = '\0';
			ev->s[i] = buf + used;
			used += n + 1;
		}
		at += 2 + n;
	}
	for (int i = 0; i < AUDIT_S_END; i++)
		if (!ev->s[i])
			ev->s[i] = "";
	return 0;
}

void audit_patch(uint8_t *rec, size_t len, int err, uint64_t ino)
{
	(void)len;	/* for the assert */
	assert(len >= HEAD && rec[8] == VERSION);
	put_u32(rec + 12, (uint32_t)err);
	if (get_n(rec, 8) == 0)
		put_u64(rec, ino);
}

const char *audit_kind_name(enum audit_kind kind)
{
	static const char *const names[AUDIT_KIND_END] = {
		[AUDIT_OPEN] = "open", [AUDIT_RELEASE] = "release",
		[AUDIT_CREATE] = "create", [AUDIT_MKDIR] = "mkdir",
		[AUDIT_MKNOD] = "mknod", [AUDIT_SYMLINK] = "symlink",
		[AUDIT_LINK] = "link", [AUDIT_RENAME] = "rename",
		[AUDIT_UNLINK] = "unlink", [AUDIT_RMDIR] = "rmdir",
		[AUDIT_TRUNCATE] = "truncate", [AUDIT_CHMOD] = "chmod",
		[AUDIT_CHOWN] = "chown", [AUDIT_UTIMES] = "utimes",
		[AUDIT_SETXATTR] = "setxattr",
		[AUDIT_REMOVEXATTR] = "removexattr", [AUDIT_QUERY] = "query",
		[AUDIT_HOLD_ADD] = "hold-add",
		[AUDIT_HOLD_REMOVE] = "hold-remove", [AUDIT_GC] = "gc",
		[AUDIT_MOUNT] = "mount", [AUDIT_UNMOUNT] = "unmount",
		[AUDIT_RESTORE] = "restore", [AUDIT_RECOVER] = "recover",
		[AUDIT_REPAIR] = "fsck-repair", [AUDIT_KEY_ADD] = "key-add",
		[AUDIT_KEY_PASSWD] = "key-passwd",
		[AUDIT_KEY_REMOVE] = "key-remove",
		[AUDIT_KEY_ROTATE] = "key-rotate",
	};

	if ((int)kind <= 0 || kind >= AUDIT_KIND_END)
		return "?";
	return names[kind];
}

/* --- patient folders -------------------------------------------------- */

int audit_patients_parse(const char *spec, struct audit_patients *out)
{
	char *end;
	long depth;
	int n = 0;

	memset(out, 0, sizeof(*out));
	if (!spec || !*spec)
		return 0;
	if (spec[0] != '/') {
		depth = strtol(spec, &end, 10);
		if (*end || depth < 1 || depth > 32)
			return -EINVAL;
		for (long i = 0; i < depth; i++)
			memcpy(out->glob + 2 * i, "/*", 3);
		out->depth = (int)depth;
		return 0;
	}
	if (strlen(spec) >= sizeof(out->glob) || strstr(spec, "//"))
		return -EINVAL;
	for (const char *p = spec; *p; p++)
		if (*p == '/' && p[1])
			n++;
	if (n < 1 || n > 32)
		return -EINVAL;
	strcpy(out->glob, spec);
	if (out->glob[strlen(out->glob) - 1] == '/')
		out->glob[strlen(out->glob) - 1] = '\0';
	out->depth = n;
	return 0;
}

int audit_patient_of(const struct audit_patients *p, const char *path,
		     char *out, size_t size)
{
	char prefix[4096];
	const char *q = path, *last;
	size_t n;

	out[0] = '\0';
	if (!p->depth || !path || path[0] != '/')
		return 0;
	for (int i = 0; i < p->depth; i++) {
		if (*q != '/' || !q[1])
			return 0;
		q = strchrnul(q + 1, '/');
	}
	n = (size_t)(q - path);
	if (n >= sizeof(prefix))
		return 0;
	memcpy(prefix, path, n);
	prefix[n] = '\0';
	if (fnmatch(p->glob, prefix, FNM_PATHNAME | FNM_PERIOD))
		return 0;
	last = strrchr(prefix, '/') + 1;
	snprintf(out, size, "%s", last);
	return 1;
}

/* --- who ------------------------------------------------------------------ */

#define NAME_SLOTS 64
#define NAME_TTL_NS (60ull * 1000000000ull)

struct name_slot {
	uint32_t id;
	int is_group;
	uint64_t at;		/* CLOCK_MONOTONIC ns; 0 = empty */
	char name[64];
};

static struct name_slot name_slots[NAME_SLOTS];	/* by name_lock */
static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;

static void lookup_name(uint32_t id, int is_group, char *out, size_t size)
{
	char buf[4096];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;

	out[0] = '\0';
	if (is_group) {
		if (getgrgid_r(id, &gr, buf, sizeof(buf), &grp) == 0 && grp)
			snprintf(out, size, "%s", grp->gr_name);
	} else if (getpwuid_r(id, &pw, buf, sizeof(buf), &pwp) == 0 && pwp) {
		snprintf(out, size, "%s", pwp->pw_name);
	}
}

static void name_of(uint32_t id, int is_group, char *out, size_t size)
{
	struct name_slot *s = &name_slots[(id * 2 + (unsigned)is_group) %
					  NAME_SLOTS];
	uint64_t now = phi_mono_ns();
	char name[64];

	pthread_mutex_lock(&name_lock);
	if (s->at && s->id == id && s->is_group == is_group &&
	    now - s->at < NAME_TTL_NS) {
		snprintf(out, size, "%s", s->name);
		pthread_mutex_unlock(&name_lock);
		return;
	}
	pthread_mutex_unlock(&name_lock);
	/* NSS may be slow (LDAP): look up without the lock */
	lookup_name(id, is_group, name, sizeof(name));
	pthread_mutex_lock(&name_lock);
	s->id = id;
	s->is_group = is_group;
	s->at = now ? now : 1;
	memcpy(s->name, name, sizeof(name));
	pthread_mutex_unlock(&name_lock);
	snprintf(out, size, "%s", name);
}

void audit_names(uid_t uid, gid_t gid, char *user, size_t ulen,
		 char *group, size_t glen)
{
	name_of(uid, 0, user, ulen);
	name_of(gid, 1, group, glen);
}

static int procfd = -1;
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;

/* /proc, opened once: each lookup then starts there, not at the root. */
static void proc_init(void)
{
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * /proc/PID/comm of the last process seen per slot, kept open: a read of
 * it is one pread() instead of an open, a read and a close per request.
 * It is never stale: the file is bound to the process, not to its
 * number, so it shows the name after an exec or a rename, and once the
 * process is gone it fails (ESRCH) even when the number is in use again;
 * then the slot opens the new one.
 */
#define COMM_SLOTS 64

static struct comm_slot {
	pthread_mutex_t lock;
	pid_t pid;
	int fd;			/* -1: none */
} comm_slots[COMM_SLOTS];

static void comm_slots_init(void)
{
	for (int i = 0; i < COMM_SLOTS; i++) {
		pthread_mutex_init(&comm_slots[i].lock, NULL);
		comm_slots[i].fd = -1;
	}
	proc_init();
}

static ssize_t comm_read(int fd, char *out, size_t size)
{
	return pread(fd, out, size - 1, 0);
}

void audit_comm(pid_t pid, char *out, size_t size)
{
	struct comm_slot *s;
	char path[64];
	ssize_t n = -1;

	out[0] = '\0';
	pthread_once(&proc_once, comm_slots_init);
	s = &comm_slots[(unsigned)pid % COMM_SLOTS];
	pthread_mutex_lock(&s->lock);
	if (s->fd >= 0 && s->pid == pid)
		n = comm_read(s->fd, out, size);
	if (n <= 0 && s->fd >= 0) {	/* gone, or another process */
		close(s->fd);
		s->fd = -1;
	}
	if (n <= 0 && procfd >= 0 && pid > 0) {
		snprintf(path, sizeof(path), "%ld/comm", (long)pid);
		s->fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
		s->pid = pid;
		if (s->fd >= 0)
			n = comm_read(s->fd, out, size);
		if (n <= 0 && s->fd >= 0) {
			close(s->fd);
			s->fd = -1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static char host[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_init(void)
{
	if (gethostname(host, sizeof(host) - 1))
		host[0] = '\0';
}

const char *audit_host(void)
{
	pthread_once(&host_once, host_init);
	return host;
}

/* --- showing ---------------------------------------------------------- */

struct out {
	char *p;
	size_t size, len;
};

static void emit(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len + 1 >= o->size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
	if (o->len >= o->size)
		o->len = o->size - 1;
}

/* A JSON string: control characters, quotes and backslashes escaped;
 * other bytes as they are (names are UTF-8 or bytes, as given). */
static void emit_json_str(struct out *o, const char *key, const char *s)
{
	emit(o, ",\"%s\":\"", key);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			emit(o, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			emit(o, "\\u%04x", ch);
		else
			emit(o, "%c", ch);
	}
	emit(o, "\"");
}

/* Text: spaces and unprintable bytes in names as \xNN, so that a line
 * splits into its fields at spaces. */
static void emit_text_str(struct out *o, const char *key, const char *s)
{
	emit(o, " %s=", key);
	if (!*s)
		emit(o, "-");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch == 0x7f || ch == '\\' || ch == '=')
			emit(o, "\\x%02x", ch);
		else
			emit(o, "%c", ch);
	}
}

static void format_time(uint64_t ns, char *buf, size_t size)
{
	time_t sec = (time_t)(ns / 1000000000ull);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09lluZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec,
		 (unsigned long long)(ns % 1000000000ull));
}

static const char *const str_keys[AUDIT_S_END] = {
	[AUDIT_S_COMM] = "process", [AUDIT_S_USER] = "user",
	[AUDIT_S_GROUP] = "group", [AUDIT_S_HOST] = "host",
	[AUDIT_S_PATH] = "path", [AUDIT_S_PATH2] = "path2",
	[AUDIT_S_PATIENT] = "patient", [AUDIT_S_PATIENT2] = "patient2",
	[AUDIT_S_DETAIL] = "detail",
};

size_t audit_format(const struct audit_event *ev, uint64_t seq, int json,
		    char *out, size_t size)
{
	struct out o = { out, size, 0 };
	char when[48];

	out[0] = '\0';
	format_time(ev->time_ns, when, sizeof(when));
	if (json)
		emit(&o, "{\"seq\":%llu,\"time\":\"%s\",\"time_ns\":%llu,"
		     "\"event\":\"%s\",\"errno\":%d", (unsigned long long)seq,
		     when, (unsigned long long)ev->time_ns,
		     audit_kind_name(ev->kind), ev->err);
	else
		emit(&o, "%s %s %s", when, audit_kind_name(ev->kind),
		     ev->err ? strerrorname_np(ev->err) ? strerrorname_np(
		     ev->err) : "error" : "ok");
	if (json)
		emit(&o, ",\"uid\":%u,\"gid\":%u,\"pid\":%u,\"ino\":%llu,"
		     "\"flags\":%u,\"bytes_read\":%llu,\"bytes_written\":%llu",
		     ev->uid, ev->gid, ev->pid, (unsigned long long)ev->ino,
		     ev->flags, (unsigned long long)ev->bytes_read,
		     (unsigned long long)ev->bytes_written);
	else
		emit(&o, " uid=%u gid=%u pid=%u ino=%llu", ev->uid, ev->gid,
		     ev->pid, (unsigned long long)ev->ino);
	for (int i = 0; i < AUDIT_S_END; i++) {
		const char *v = ev->s[i] ? ev->s[i] : "";

		if (json)
			emit_json_str(&o, str_keys[i], v);
		else if (*v || i <= AUDIT_S_PATH)
			emit_text_str(&o, str_keys[i], v);
	}
	if (json)
		emit(&o, "}\n");
	else if (ev->kind == AUDIT_OPEN)
		emit(&o, " mode=%s\n", (ev->flags & 3) == 0 ? "read" :
		     (ev->flags & 3) == 1 ? "write" : "read-write");
	else if (ev->kind == AUDIT_RELEASE)
		emit(&o, " read=%llu written=%llu\n",
		     (unsigned long long)ev->bytes_read,
		     (unsigned long long)ev->bytes_written);
	else
		emit(&o, "\n");
	if (o.len + 1 >= size && size > 1)
		out[size - 2] = '\n';
	return o.len;
}

/* --- FHIR R4 AuditEvent ------------------------------------------------
 *
 * One resource per event, written by hand: the shape is fixed, and a
 * query of a million events must not pay for a JSON library.  Strings
 * are copied byte by byte (put()), not through printf.
 */

#define DCM "http://dicom.nema.org/resources/ontology/DCM"
#define HL7 "http://terminology.hl7.org/CodeSystem/"

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n >= o->size) {
		o->len = o->size ? o->size - 1 : 0;	/* full: see the end */
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence s starts with (1 to 4), or 0: an
 * overlong form, a surrogate, past U+10FFFF, or cut.  s ends in a NUL,
 * which no test below reads past. */
static int utf8_len(const unsigned char *s)
{
	unsigned c = s[0], lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		lo = c == 0xe0 ? 0xa0 : lo;
		hi = c == 0xed ? 0x9f : hi;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ?
		       3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		lo = c == 0xf0 ? 0x90 : lo;
		hi = c == 0xf4 ? 0x8f : hi;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
		       (s[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int n;

	for (; *p; p += n)
		if ((n = utf8_len(p)) == 0)
			return 0;
	return 1;
}

/* s as a JSON string: quotes, backslashes and control characters
 * escaped, valid UTF-8 as it is, each byte of anything else as U+FFFD. */
static void put_json(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	put(o, "\"", 1);
	while (*p) {
		int n = utf8_len(p);

		if (n == 0) {
			put(o, "\\ufffd", 6);
			p++;
			continue;
		}
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			put(o, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(o, esc, 6);
		} else {
			put(o, (const char *)p, (size_t)n);
		}
		p += n;
	}
	put(o, "\"", 1);
}

/* ,"key":"value" */
static void put_field(struct out *o, const char *key, const char *value)
{
	put(o, ",\"", 2);
	puts_(o, key);
	put(o, "\":", 2);
	put_json(o, value);
}

static void put_base64(struct out *o, const char *s)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
				  "opqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	char q[4];

	put(o, "\"", 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 |
			     (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);

		q[0] = abc[v >> 18 & 63];
		q[1] = abc[v >> 12 & 63];
		q[2] = i + 1 < n ? abc[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? abc[v & 63] : '=';
		put(o, q, 4);
	}
	put(o, "\"", 1);
}

/* {"system":...,"code":...,"display":...}; no system when NULL. */
static void put_coding(struct out *o, const char *system, const char *code,
		       const char *display)
{
	put(o, "{", 1);
	if (system) {
		put(o, "\"system\":", 9);
		put_json(o, system);
		put(o, ",", 1);
	}
	put(o, "\"code\":", 7);
	put_json(o, code);
	put_field(o, "display", display);
	put(o, "}", 1);
}

/* What kind of event it is: the DICOM event type, a DICOM subtype
 * (NULL: none fits), and the action. */
struct fhir_kind {
	const char *type, *type_name, *sub, *sub_name;
	char action;
};

static char fhir_action(const struct audit_event *ev)
{
	switch (ev->kind) {
	case AUDIT_OPEN:
		return (ev->flags & O_ACCMODE) == O_RDONLY ? 'R' : 'U';
	case AUDIT_RELEASE:
		return ev->bytes_written ? 'U' : 'R';
	case AUDIT_CREATE: case AUDIT_MKDIR: case AUDIT_MKNOD:
	case AUDIT_SYMLINK: case AUDIT_LINK:
		return 'C';
	case AUDIT_UNLINK: case AUDIT_RMDIR:
		return 'D';
	case AUDIT_RENAME: case AUDIT_TRUNCATE: case AUDIT_CHMOD:
	case AUDIT_CHOWN: case AUDIT_UTIMES: case AUDIT_SETXATTR:
	case AUDIT_REMOVEXATTR:
		return 'U';
	default:		/* queries and commands */
		return 'E';
	}
}

static struct fhir_kind fhir_kind_of(const struct audit_event *ev)
{
	struct fhir_kind k = { "110100", "Application Activity", NULL, NULL,
			       fhir_action(ev) };

	if (ev->kind >= AUDIT_OPEN && ev->kind <= AUDIT_REMOVEXATTR) {
		k.type = "110110";
		k.type_name = "Patient Record";
	} else if (ev->kind == AUDIT_QUERY) {
		k.type = "110112";
		k.type_name = "Query";
	} else if (ev->kind == AUDIT_RESTORE) {
		k.type = "110106";	/* data copied out of phifs */
		k.type_name = "Export";
	} else if (ev->kind == AUDIT_RECOVER) {
		k.type = "110107";	/* a region's history made local */
		k.type_name = "Import";
	} else if (ev->kind == AUDIT_MOUNT || ev->kind == AUDIT_UNMOUNT) {
		k.sub = ev->kind == AUDIT_MOUNT ? "110120" : "110121";
		k.sub_name = ev->kind == AUDIT_MOUNT ? "Application Start" :
			     "Application Stop";
	} else if (ev->kind >= AUDIT_KEY_ADD && ev->kind <= AUDIT_KEY_ROTATE) {
		k.type = "110113";
		k.type_name = "Security Alert";
		k.sub = "110129";
		k.sub_name = "Security Configuration";
	}
	return k;
}

/* 0 success; 8 when phifs or the machine failed (an HTTP 500); 4 when
 * the request was refused (an HTTP 400). */
static const char *fhir_outcome(int err)
{
	switch (err) {
	case 0:
		return "0";
	case EIO: case ENOSPC: case EDQUOT: case EROFS: case ENOMEM:
	case EUCLEAN: case ENOTRECOVERABLE:
		return "8";
	default:
		return "4";
	}
}

static void fhir_head(struct out *o, const struct audit_event *ev)
{
	struct fhir_kind k = fhir_kind_of(ev);
	char when[48], desc[160];

	puts_(o, "{\"resourceType\":\"AuditEvent\",\"type\":");
	put_coding(o, DCM, k.type, k.type_name);
	put(o, ",\"subtype\":[", 12);
	if (k.sub) {
		put_coding(o, DCM, k.sub, k.sub_name);
		put(o, ",", 1);
	}
	/* phifs's own name of the kind: no code system has these */
	put_coding(o, NULL, audit_kind_name(ev->kind),
		   audit_kind_name(ev->kind));
	emit(o, "],\"action\":\"%c\"", k.action);
	format_time(ev->time_ns, when, sizeof(when));
	put_field(o, "recorded", when);
	put_field(o, "outcome", fhir_outcome(ev->err));
	if (ev->err) {
		snprintf(desc, sizeof(desc), "%s: %s",
			 strerrorname_np(ev->err) ? strerrorname_np(ev->err) :
			 "error", strerrordesc_np(ev->err) ?
			 strerrordesc_np(ev->err) : "unknown error");
		put_field(o, "outcomeDesc", desc);
	}
}

/* Where an agent was: the host, by name (network type 1). */
static void put_network(struct out *o, const char *where)
{
	if (!*where)
		return;
	puts_(o, ",\"network\":{\"address\":");
	put_json(o, where);
	puts_(o, ",\"type\":\"1\"}");
}

/* The user, who asked, and the process that did it. */
static void fhir_agents(struct out *o, const struct audit_event *ev)
{
	const char *where = ev->s[AUDIT_S_HOST], *user = ev->s[AUDIT_S_USER];
	const char *comm = ev->s[AUDIT_S_COMM], *group = ev->s[AUDIT_S_GROUP];
	char role[128];

	puts_(o, ",\"agent\":[{\"type\":{\"coding\":[");
	put_coding(o, HL7 "extra-security-role-type", "humanuser",
		   "human user");
	snprintf(role, sizeof(role), "group %.64s%s(gid %u)", group,
		 *group ? " " : "", ev->gid);
	puts_(o, "]},\"role\":[{\"text\":");
	put_json(o, role);
	emit(o, "}],\"who\":{\"identifier\":{\"type\":{\"text\":\"uid\"},"
	     "\"value\":\"%u\"}", ev->uid);
	if (*user)
		put_field(o, "display", user);
	put(o, "}", 1);
	if (*user)
		put_field(o, "name", user);
	puts_(o, ",\"requestor\":true");
	put_network(o, where);
	puts_(o, "},{\"type\":{\"coding\":[");
	put_coding(o, DCM, "110150", "Application");
	emit(o, "]},\"who\":{\"identifier\":{\"type\":{\"text\":\"process ID\"},"
	     "\"value\":\"%u\"}", ev->pid);
	if (*comm)
		put_field(o, "display", comm);
	put(o, "}", 1);
	if (*comm)
		put_field(o, "name", comm);
	puts_(o, ",\"requestor\":false");
	put_network(o, where);
	puts_(o, "}]");
}

/* phifs on this host: the application server that saw it. */
static void fhir_source(struct out *o, const struct audit_event *ev)
{
	const char *where = ev->s[AUDIT_S_HOST];
	char observer[STR_MAX + 16];

	puts_(o, ",\"source\":{");
	if (*where) {
		put(o, "\"site\":", 7);
		put_json(o, where);
		put(o, ",", 1);
	}
	snprintf(observer, sizeof(observer), "phifs%s%s", *where ? " on " : "",
		 where);
	puts_(o, "\"observer\":{\"display\":");
	put_json(o, observer);
	puts_(o, "},\"type\":[");
	put_coding(o, HL7 "security-source-type", "4", "Application Server");
	puts_(o, "]}");
}

/* ,{"type":"TYPE","valueString":"VALUE"} (or valueBase64Binary). */
static void put_detail(struct out *o, int *first, const char *type,
		       const char *value, int base64)
{
	put(o, *first ? "" : ",", *first ? 0 : 1);
	*first = 0;
	put(o, "{\"type\":", 8);
	put_json(o, type);
	puts_(o, base64 ? ",\"valueBase64Binary\":" : ",\"valueString\":");
	if (base64)
		put_base64(o, value);
	else
		put_json(o, value);
	put(o, "}", 1);
}

/* The entity a path names: a system object, with its inode. */
static void fhir_object(struct out *o, const char *path, uint64_t ino,
			const char *role, const char *role_name)
{
	put(o, "{", 1);
	if (*path || ino) {
		put(o, "\"what\":{", 8);
		if (ino)
			emit(o, "\"identifier\":{\"type\":{\"text\":\"inode\"},"
			     "\"value\":\"%llu\"}", (unsigned long long)ino);
		if (*path) {
			put(o, ino ? ",\"display\":" : "\"display\":",
			    ino ? 11 : 10);
			put_json(o, path);
		}
		put(o, "},", 2);
	}
	puts_(o, "\"type\":");
	put_coding(o, HL7 "audit-entity-type", "2", "System Object");
	if (role) {
		puts_(o, ",\"role\":");
		put_coding(o, HL7 "object-role", role, role_name);
	}
}

/* The details of the first entity, if it has any. */
static void fhir_details(struct out *o, const struct audit_event *ev,
			 int bad, int bad2)
{
	const char *path = ev->s[AUDIT_S_PATH], *path2 = ev->s[AUDIT_S_PATH2];
	int first = 1;
	char n[32];

	puts_(o, ",\"detail\":[");
	if (ev->kind == AUDIT_SYMLINK)
		put_detail(o, &first, "target", path2, 0);
	if (ev->kind == AUDIT_OPEN)
		put_detail(o, &first, "mode", (ev->flags & O_ACCMODE) ==
			   O_RDONLY ? "read" : (ev->flags & O_ACCMODE) ==
			   O_WRONLY ? "write" : "read-write", 0);
	if (ev->kind == AUDIT_RELEASE) {
		snprintf(n, sizeof(n), "%llu",
			 (unsigned long long)ev->bytes_read);
		put_detail(o, &first, "bytes read", n, 0);
		snprintf(n, sizeof(n), "%llu",
			 (unsigned long long)ev->bytes_written);
		put_detail(o, &first, "bytes written", n, 0);
	}
	if (bad)
		put_detail(o, &first, "path bytes", path, 1);
	if (bad2)
		put_detail(o, &first, ev->kind == AUDIT_SYMLINK ?
			   "target bytes" : "new path bytes", path2, 1);
	put(o, "]", 1);
}

/* The first entity: the path (or what a command acted on) with what the
 * kind adds; for a rename or link, the new name as a second one. */
static void fhir_main_entity(struct out *o, const struct audit_event *ev)
{
	const char *path = ev->s[AUDIT_S_PATH], *path2 = ev->s[AUDIT_S_PATH2];
	const char *detail = ev->s[AUDIT_S_DETAIL];
	int two = ev->kind == AUDIT_RENAME || ev->kind == AUDIT_LINK;
	int sym = ev->kind == AUDIT_SYMLINK;
	int bad = !utf8_valid(path), bad2 = (two || sym) && !utf8_valid(path2);

	if (ev->kind == AUDIT_QUERY)
		fhir_object(o, path, ev->ino, "24", "Query");
	else
		fhir_object(o, path, ev->ino, NULL, NULL);
	if (*detail)
		put_field(o, "description", detail);
	/* FHIR has no empty arrays */
	if (sym || ev->kind == AUDIT_OPEN || ev->kind == AUDIT_RELEASE ||
	    bad || bad2)
		fhir_details(o, ev, bad, bad2);
	put(o, "}", 1);
	if (two) {
		put(o, ",", 1);
		fhir_object(o, path2, 0, NULL, NULL);
		put_field(o, "description", ev->kind == AUDIT_RENAME ?
			  "new name" : "new link");
		put(o, "}", 1);
	}
}

/* A patient the event names: a person, in the role of patient. */
static void fhir_patient(struct out *o, const char *patient)
{
	puts_(o, ",{\"what\":{\"display\":");
	put_json(o, patient);
	puts_(o, "},\"type\":");
	put_coding(o, HL7 "audit-entity-type", "1", "Person");
	puts_(o, ",\"role\":");
	put_coding(o, HL7 "object-role", "1", "Patient");
	put_field(o, "name", patient);
	put(o, "}", 1);
}

int audit_format_fhir(const struct audit_event *ev, char *out, size_t size)
{
	struct out o = { out, size, 0 };
	struct audit_event e = *ev;	/* NULL strings read as "" */
	const char *p1, *p2;

	if (size < 2)
		return -ENOSPC;
	for (int i = 0; i < AUDIT_S_END; i++)
		if (!e.s[i])
			e.s[i] = "";
	p1 = e.s[AUDIT_S_PATIENT];
	p2 = e.s[AUDIT_S_PATIENT2];
	out[0] = '\0';
	fhir_head(&o, &e);
	fhir_agents(&o, &e);
	fhir_source(&o, &e);
	puts_(&o, ",\"entity\":[");
	fhir_main_entity(&o, &e);
	if (*p1)
		fhir_patient(&o, p1);
	if (*p2 && strcmp(p1, p2) != 0)
		fhir_patient(&o, p2);
	puts_(&o, "]}\n");
	if (o.len + 1 >= size)
		return -ENOSPC;		/* cut: not JSON */
	return (int)o.len;
}

/* --- RFC 5424 syslog ------------------------------------------------- */

#define SYSLOG_AUTHPRIV 10
#define SYSLOG_WARNING 4
#define SYSLOG_NOTICE 5

/* A PARAM-VALUE of RFC 5424: UTF-8 with '"', '\' and ']' escaped by a
 * backslash; control characters and bytes that are not UTF-8 as U+FFFD,
 * so that one message stays one line in any receiver's file. */
static void put_sd_value(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[2] = { '\\', 0 };

	while (*p) {
		int n = utf8_len(p);

		if (n == 0 || *p < 0x20 || *p == 0x7f) {
			put(o, "\xef\xbf\xbd", 3);
			p += n ? n : 1;
			continue;
		}
		if (*p == '"' || *p == '\\' || *p == ']') {
			esc[1] = (char)*p;
			put(o, esc, 2);
		} else {
			put(o, (const char *)p, (size_t)n);
		}
		p += n;
	}
}

/* HOSTNAME: PRINTUSASCII, at most 255, or the NILVALUE. */
static void put_sd_host(struct out *o, const char *name)
{
	size_t n = 0;

	for (; name[n] && n < 255; n++) {
		char ch = name[n] > ' ' && name[n] < 0x7f ? name[n] : '_';

		put(o, &ch, 1);
	}
	if (n == 0)
		put(o, "-", 1);
}

static void put_sd_num(struct out *o, const char *name, unsigned long long v)
{
	emit(o, " %s=\"%llu\"", name, v);
}

int audit_format_syslog(const struct audit_event *ev, uint64_t seq,
			long procid, char *out, size_t size)
{
	struct out o = { out, size, 0 };
	time_t sec = (time_t)(ev->time_ns / 1000000000ull);
	struct tm tm;
	size_t n;

	if (size == 0)
		return -ENOSPC;
	out[0] = '\0';
	gmtime_r(&sec, &tm);
	emit(&o, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%06lluZ ",
	     SYSLOG_AUTHPRIV * 8 + (ev->err ? SYSLOG_WARNING : SYSLOG_NOTICE),
	     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	     tm.tm_min, tm.tm_sec,
	     (unsigned long long)(ev->time_ns % 1000000000ull / 1000));
	put_sd_host(&o, ev->s[AUDIT_S_HOST] ? ev->s[AUDIT_S_HOST] : "");
	emit(&o, " phifs %ld %s [" AUDIT_SYSLOG_SDID, procid,
	     audit_kind_name(ev->kind));
	put_sd_num(&o, "seq", seq);
	put_sd_num(&o, "errno", (unsigned)ev->err);
	put_sd_num(&o, "uid", ev->uid);
	put_sd_num(&o, "gid", ev->gid);
	put_sd_num(&o, "pid", ev->pid);
	put_sd_num(&o, "ino", ev->ino);
	put_sd_num(&o, "bytes_read", ev->bytes_read);
	put_sd_num(&o, "bytes_written", ev->bytes_written);
	for (int i = 0; i < AUDIT_S_END; i++) {
		if (i == AUDIT_S_HOST || !ev->s[i] || !ev->s[i][0])
			continue;
		emit(&o, " %s=\"", str_keys[i]);
		put_sd_value(&o, ev->s[i]);
		put(&o, "\"", 1);
	}
	put(&o, "] ", 2);
	if (o.len + 2 >= size)
		return -ENOSPC;
	n = audit_format(ev, seq, 0, out + o.len, size - o.len);
	if (o.len + n + 1 >= size)
		return -ENOSPC;		/* the text was cut */
	o.len += n;
	if (o.len && out[o.len - 1] == '\n')
		out[--o.len] = '\0';
	return (int)o.len;
}

int audit_parse_time(const char *s, uint64_t *ns)
{
	struct tm tm;
	const char *end;
	char *e;
	time_t t;

	if (s[0] == '@') {
		long long v = strtoll(s + 1, &e, 10);

		if (e == s + 1 || *e || v < 0)
			return -EINVAL;
		*ns = (uint64_t)v * 1000000000ull;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end && (*end == 'T' || *end == ' ')) {
		const char *e2 = strptime(end + 1, "%H:%M:%S", &tm);

		end = e2 ? e2 : strptime(end + 1, "%H:%M", &tm);
	}
	if (end && *end == 'Z')
		end++;
	if (!end || *end)
		return -EINVAL;
	t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ns = (uint64_t)t * 1000000000ull;
	return 0;
}
