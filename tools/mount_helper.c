/*
 * mount_helper.c - mount.phifs, what mount(8) runs for `mount -t phifs`
 * and for an fstab line of type phifs:
 *
 *   mount.phifs CONFIG MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]
 *
 * It is the phifs binary under another name (a link installed in /sbin,
 * where mount looks): main() sends argv[0] "mount.phifs" here.  The
 * options are sorted once:
 *
 *   dropped   what fstab, mount(8) and systemd keep for themselves:
 *             defaults, auto, noauto, _netdev, nofail, user, users,
 *             nouser, owner, group, user=NAME, comment=..., x-..., X-...
 *   passed    everything else, to `phifs mount CONFIG MOUNTPOINT -o ...`:
 *             phifs's own (ro, rw, debug) and FUSE's (allow_other, ...),
 *             which libfuse checks there; an unknown one is refused with
 *             one line
 *
 * -s (sloppy) drops, with a warning, each option libfuse would refuse;
 * -f (fake) checks the options and stops; -n (no mtab) is what phifs does
 * anyway; -v prints the phifs mount command on stderr.
 */
#include "cmd.h"
#include "fs.h"

#include <stdio.h>
#include <string.h>

static const char helper_usage[] =
	"usage: mount.phifs CONFIG MOUNTPOINT [-sfnv] [-o OPTIONS]\n\n"
	"The mount(8) helper: `mount -t phifs CONFIG MOUNTPOINT -o OPTIONS`\n"
	"and fstab lines of type phifs run it.  It runs phifs mount CONFIG\n"
	"MOUNTPOINT -o OPTIONS, without the options meant for fstab, mount\n"
	"and systemd (defaults, auto, noauto, _netdev, nofail, user, users,\n"
	"nouser, owner, group, comment=..., x-...).\n\n"
	"  -s   sloppy: drop the options phifs does not know, with a warning\n"
	"  -f   fake: check the options, mount nothing\n"
	"  -n   accepted (phifs writes no mtab)\n"
	"  -v   print the phifs mount command\n";

struct helper_args {
	const char *config, *mountpoint;
	int sloppy, fake, verbose;
	char opts[2048];	/* the options to pass, comma separated */
};

/* Whether option o is fstab's, mount(8)'s or systemd's, not ours. */
static int dropped(const char *o)
{
	static const char *const words[] = {
		"defaults", "auto", "noauto", "_netdev", "nofail", "user",
		"users", "nouser", "owner", "group",
	};
	static const char *const prefixes[] = {
		"x-", "X-", "comment=", "user=",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(o, words[i]) == 0)
			return 1;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(o, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

/* Whether phifs mount takes option o (debug is its own; libfuse judges
 * the rest).  1, or 0 with why in err. */
static int known(const char *o, char *err, size_t len)
{
	struct fs_options fo = { o, 0, 0, NULL };

	return strcmp(o, "debug") == 0 ||
	       fs_check_options(&fo, err, len) == 0;
}

/* Add the options of list that are not dropped to a->opts.  0 or -1
 * (printed). */
static int add_list(struct helper_args *a, const char *list)
{
	char buf[sizeof(a->opts)], err[512], *save = NULL;

	if (strlen(list) >= sizeof(buf)) {
		tool_error("mount options too long");
		return -1;
	}
	strcpy(buf, list);
	for (char *o = strtok_r(buf, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(a->opts);

		if (dropped(o))
			continue;
		if (a->sloppy && !known(o, err, sizeof(err))) {
			tool_warn("ignoring unknown mount option '%s' (-s)", o);
			continue;
		}
		if (n + strlen(o) + 2 > sizeof(a->opts)) {
			tool_error("mount options too long");
			return -1;
		}
		snprintf(a->opts + n, sizeof(a->opts) - n, "%s%s",
			 n ? "," : "", o);
	}
	return 0;
}

/* -s, -f, -n, -v, alone or together.  0 or -1 (printed). */
static int set_flags(struct helper_args *a, const char *arg)
{
	for (const char *f = arg + 1; *f; f++) {
		if (*f == 's')
			a->sloppy = 1;
		else if (*f == 'f')
			a->fake = 1;
		else if (*f == 'v')
			a->verbose = 1;
		else if (*f != 'n') {
			tool_error("unknown mount.phifs flag '-%c' (see "
				   "mount.phifs --help)", *f);
			return -1;
		}
	}
	return 0;
}

static int check_type(const char *type)
{
	if (strcmp(type, "phifs") == 0 || strcmp(type, "fuse.phifs") == 0)
		return 0;
	tool_error("mount.phifs -t %s: the type is not phifs", type);
	return -1;
}

/* The value of option -L at argv[*i] ("-LVALUE" or "-L VALUE"), moving
 * *i past it; NULL when argv[*i] is not -L, "" when its value is
 * missing. */
static const char *opt_value(int argc, char **argv, int *i, char letter)
{
	const char *arg = argv[*i];

	if (arg[0] != '-' || arg[1] != letter)
		return NULL;
	if (arg[2])
		return arg + 2;
	return *i + 1 < argc ? argv[++*i] : "";
}

/* For -f: refuse the first option phifs mount would refuse, as it
 * would.  0 or 1 (printed). */
static int check_each(const char *opts)
{
	char buf[2048], err[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *o = strtok_r(buf, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		if (!known(o, err, sizeof(err))) {
			tool_error("%s", err);
			return 1;
		}
	}
	return 0;
}

#define MAX_LISTS 16

/*
 * mount(8) puts the flags after CONFIG and MOUNTPOINT, and -s counts for
 * every -o, so the lists are sorted once all is read.  0, 1 (printed) or
 * 2 (usage).
 */
static int parse_helper_args(int argc, char **argv, struct helper_args *a)
{
	const char *lists[MAX_LISTS], *v;
	int npos = 0, nlists = 0;

	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if ((v = opt_value(argc, argv, &i, 'o'))) {
			if (!*v || nlists == MAX_LISTS)
				return 2;
			lists[nlists++] = v;
		} else if ((v = opt_value(argc, argv, &i, 't'))) {
			if (check_type(v))
				return 1;
		} else if (opt_value(argc, argv, &i, 'N')) {
			tool_error("mount.phifs -N (another mount namespace) "
				   "is not supported");
			return 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			if (set_flags(a, argv[i]))
				return 1;
		} else if (npos == 0) {
			a->config = argv[i];
			npos++;
		} else if (npos == 1) {
			a->mountpoint = argv[i];
			npos++;
		} else {
			return 2;
		}
	}
	if (npos != 2)
		return 2;
	for (int i = 0; i < nlists; i++)
		if (add_list(a, lists[i]))
			return 1;
	return 0;
}

int cmd_mount_helper(int argc, char **argv)
{
	struct helper_args a;
	char *mount_argv[6];
	int n = 0, rc;

	if (tool_want_help(argc, argv, helper_usage))
		return 0;
	rc = parse_helper_args(argc, argv, &a);
	if (rc == 2)
		tool_error("usage: mount.phifs CONFIG MOUNTPOINT [-sfnv] "
			   "[-o OPTIONS]");
	if (rc)
		return rc;
	mount_argv[n++] = (char *)"mount";
	mount_argv[n++] = (char *)a.config;
	mount_argv[n++] = (char *)a.mountpoint;
	if (a.opts[0]) {
		mount_argv[n++] = (char *)"-o";
		mount_argv[n++] = a.opts;
	}
	mount_argv[n] = NULL;
	if (a.verbose)
		fprintf(stderr, "mount.phifs: phifs mount %s %s%s%s\n",
			a.config, a.mountpoint, a.opts[0] ? " -o " : "",
			a.opts);
	if (a.fake)
		return check_each(a.opts);
	return cmd_mount(n, mount_argv);
}
