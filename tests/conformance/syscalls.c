/*
 * syscalls.c - POSIX and Linux system calls against a mounted phifs.
 *
 *	syscalls MOUNTPOINT [CHECK...]
 *
 * Each check runs in its own fresh directory MOUNTPOINT/NAME, removed
 * afterwards however the check ended, and prints one TAP line: "ok N -
 * NAME" or "not ok N - NAME" with the failed expression, both values and
 * errno as "# " lines.  Exit status 0 when every check passed.  Arguments
 * after the mountpoint select checks by name.
 *
 * Everything goes through the kernel, so these are checks of what an
 * application sees: the FUSE kernel module's own caching included.  Checks
 * that need root (chown, device nodes, trusted.* xattrs) do that part only
 * when run as root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define KiB 1024ll
#define MiB (1024ll * KiB)
#define GiB (1024ll * MiB)

static const char *mountpoint;
static char workdir[PATH_MAX];	/* MOUNTPOINT/NAME of the running check */
static jmp_buf fail_jump;

/* --- checking --------------------------------------------------------- */

__attribute__((noreturn))
static void fail_(const char *file, int line, const char *what, int err)
{
	printf("# %s:%d: %s failed", file, line, what);
	if (err)
		printf(" (errno %d, %s)", err, strerror(err));
	printf("\n");
	longjmp(fail_jump, 1);
}

static void check_eq_(long long a, long long b, const char *ea,
		      const char *eb, const char *file, int line, int err)
{
	if (a == b)
		return;
	printf("# %s:%d: CHECK_EQ(%s, %s) failed\n#   %s = %lld\n#   %s = %lld\n",
	       file, line, ea, eb, ea, a, eb, b);
	if (err)
		printf("#   errno %d, %s\n", err, strerror(err));
	longjmp(fail_jump, 1);
}

#define CHECK(x) do {							\
	errno = 0;							\
	if (!(x))							\
		fail_(__FILE__, __LINE__, "CHECK(" #x ")", errno);	\
} while (0)

#define CHECK_EQ(a, b) do {						\
	long long a_, b_;						\
	errno = 0;							\
	a_ = (long long)(a);						\
	b_ = (long long)(b);						\
	check_eq_(a_, b_, #a, #b, __FILE__, __LINE__, errno);		\
} while (0)

/* A call that must succeed (return >= 0). */
#define CHECK_OK(x) do {						\
	errno = 0;							\
	if ((long long)(x) < 0)						\
		fail_(__FILE__, __LINE__, "CHECK_OK(" #x ")", errno);	\
} while (0)

/* A call that must fail with -1 and this errno. */
#define CHECK_ERR(x, e) do {						\
	long long r_;							\
	errno = 0;							\
	r_ = (long long)(x);						\
	if (r_ != -1 || errno != (e)) {					\
		printf("# %s:%d: CHECK_ERR(%s, %s) failed: returned %lld, "\
		       "errno %d (%s), expected %d (%s)\n", __FILE__,	\
		       __LINE__, #x, #e, r_, errno, strerror(errno), (e), \
		       strerror(e));					\
		longjmp(fail_jump, 1);					\
	}								\
} while (0)

/* --- helpers ------------------------------------------------------------ */

/* WORKDIR/name; four rotating buffers so that a call can take several. */
static const char *P(const char *name)
{
	static char buf[4][PATH_MAX];
	static int k;

	size_t w = strlen(workdir), n = strlen(name);

	k = (k + 1) % 4;
	if (w + 1 + n >= sizeof(buf[k]))
		fail_(__FILE__, __LINE__, "path too long", 0);
	memcpy(buf[k], workdir, w);
	buf[k][w] = '/';
	memcpy(buf[k] + w + 1, name, n + 1);
	return buf[k];
}

static int xopen(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags | O_CLOEXEC, mode);

	if (fd < 0)
		fail_(__FILE__, __LINE__, path, errno);
	return fd;
}

static void pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   off + (off_t)done);

		CHECK(n > 0);
		done += (size_t)n;
	}
}

/* Read exactly len bytes at off (short only at end of file). */
static size_t pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);

		CHECK(n >= 0);
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return done;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = xopen(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	pwrite_all(fd, buf, len, 0);
	CHECK_OK(close(fd));
}

/* The whole file must hold exactly buf. */
static void file_is(const char *path, const void *buf, size_t len)
{
	int fd = xopen(path, O_RDONLY, 0);
	char *got = malloc(len + 1);
	struct stat st;

	CHECK(got != NULL);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, len);
	CHECK_EQ(pread_all(fd, got, len + 1, 0), len);
	CHECK(memcmp(got, buf, len) == 0);
	free(got);
	CHECK_OK(close(fd));
}

static struct stat stat_of(const char *path)
{
	struct stat st;

	CHECK_OK(lstat(path, &st));
	return st;
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 251 + seed * 13 + (i >> 10)) & 0xff);
}

static bool all_zero(const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/* xorshift64*: reproducible offsets without rand()'s global state. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(uint64_t below)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (rng_state * 2685821657736338717ull) % below;
}

static struct timespec now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* a within [lo - slack, hi + slack] seconds */
static bool ts_within(struct timespec a, struct timespec lo,
		      struct timespec hi, int slack)
{
	long double x = a.tv_sec + a.tv_nsec / 1e9L;

	return x >= lo.tv_sec + lo.tv_nsec / 1e9L - slack &&
	       x <= hi.tv_sec + hi.tv_nsec / 1e9L + slack;
}

struct names {
	char name[256][NAME_MAX + 1];
	unsigned char type[256];
	long pos[256];		/* telldir() after the entry */
	int n;
};

/* Read the rest of dir into *out (at most 256 entries). */
static void read_rest(DIR *d, struct names *out, int max)
{
	struct dirent *e;

	while (out->n < max) {
		errno = 0;
		e = readdir(d);
		if (!e) {
			int err = errno;

			CHECK_EQ(err, 0);
			break;
		}
		CHECK(out->n < 256);
		snprintf(out->name[out->n], sizeof(out->name[0]), "%s",
			 e->d_name);
		out->type[out->n] = e->d_type;
		out->pos[out->n] = telldir(d);
		out->n++;
	}
}

static int count_name(const struct names *l, const char *name)
{
	int k = 0;

	for (int i = 0; i < l->n; i++)
		k += strcmp(l->name[i], name) == 0;
	return k;
}

static long long syscall_renameat2(const char *from, const char *to,
				   unsigned flags)
{
	return syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
}

/* === the checks ========================================================= */

static void check_mount_root(void)
{
	struct stat st;

	CHECK_OK(stat(mountpoint, &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK(st.st_nlink >= 2);
	st = stat_of(workdir);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(st.st_mode & 07777, 0755);
}

static void check_open_creat_excl(void)
{
	char name[NAME_MAX + 2];
	struct stat st;
	int fd;

	fd = xopen(P("f"), O_WRONLY | O_CREAT | O_EXCL, 0640);
	CHECK_OK(fstat(fd, &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_nlink, 1);
	CHECK_EQ(st.st_size, 0);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK_EQ(st.st_gid, getegid());
	CHECK_OK(close(fd));
	CHECK_ERR(open(P("f"), O_WRONLY | O_CREAT | O_EXCL, 0600), EEXIST);
	fd = xopen(P("f"), O_WRONLY | O_CREAT, 0600);	/* exists: no change */
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_OK(close(fd));

	fd = creat(P("g"), 0600);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "x", 1), 1);
	CHECK_ERR(read(fd, name, 1), EBADF);		/* creat is O_WRONLY */
	CHECK_OK(close(fd));
	CHECK_EQ(stat_of(P("g")).st_size, 1);

	CHECK_ERR(open(P("none"), O_RDONLY), ENOENT);
	CHECK_ERR(open(P("f/x"), O_RDONLY | O_CREAT, 0600), ENOTDIR);
	CHECK_ERR(open(P("."), O_WRONLY), EISDIR);

	memset(name, 'n', NAME_MAX + 1);
	name[NAME_MAX + 1] = '\0';
	CHECK_ERR(open(P(name), O_WRONLY | O_CREAT, 0600), ENAMETOOLONG);
	name[NAME_MAX] = '\0';
	fd = xopen(P(name), O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK_OK(close(fd));
	CHECK_OK(unlink(P(name)));
}

static void check_o_trunc(void)
{
	struct stat st;
	int fd;

	write_file(P("f"), "0123456789", 10);
	fd = xopen(P("f"), O_WRONLY | O_TRUNC, 0);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 0);
	CHECK_EQ(stat_of(P("f")).st_size, 0);
	CHECK_EQ(write(fd, "ab", 2), 2);
	CHECK_OK(close(fd));
	file_is(P("f"), "ab", 2);
	/* O_TRUNC with O_RDONLY is unspecified; Linux truncates too */
	fd = xopen(P("f"), O_RDWR | O_TRUNC, 0);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 0);
	CHECK_OK(close(fd));
	file_is(P("f"), "", 0);
}

static void check_o_append(void)
{
	int fd, fd2;

	write_file(P("f"), "abc", 3);
	fd = xopen(P("f"), O_WRONLY | O_APPEND, 0);
	CHECK_EQ(write(fd, "def", 3), 3);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 6);
	fd2 = xopen(P("f"), O_WRONLY, 0);
	CHECK_EQ(pwrite(fd2, "X", 1, 0), 1);
	CHECK_EQ(write(fd2, "Y", 1), 1);
	CHECK_OK(lseek(fd, 0, SEEK_SET));	/* append ignores the offset */
	CHECK_EQ(write(fd, "gh", 2), 2);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	CHECK_OK(close(fd2));
	CHECK_OK(close(fd));
	file_is(P("f"), "Ybcdefgh", 8);
}

static void check_read_write_random(void)
{
	const size_t size = 4 * MiB;
	unsigned char *ref = calloc(1, size), *buf = malloc(256 * KiB);
	size_t end = 0;
	int fd;

	CHECK(ref && buf);
	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	for (int i = 0; i < 300; i++) {
		size_t len = 1 + (size_t)rnd(64 * KiB);
		off_t off = (off_t)rnd(size - len);

		fill(buf, len, (unsigned)i);
		CHECK_EQ(pwrite(fd, buf, len, off), len);
		memcpy(ref + off, buf, len);
		if ((size_t)off + len > end)
			end = (size_t)off + len;
	}
	for (int i = 0; i < 300; i++) {
		size_t len = 1 + (size_t)rnd(256 * KiB);
		off_t off = (off_t)rnd(end);
		size_t want = (size_t)off + len > end ? end - (size_t)off : len;

		CHECK_EQ(pread_all(fd, buf, len, off), want);
		if (memcmp(buf, ref + off, want)) {
			printf("# mismatch reading %zu at %lld\n", len,
			       (long long)off);
			CHECK(!"content differs");
		}
	}
	/* sequential read() from the start, in odd-sized pieces */
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	for (size_t done = 0; done < end;) {
		ssize_t n = read(fd, buf, 100003);

		CHECK(n > 0);
		CHECK(memcmp(buf, ref + done, (size_t)n) == 0);
		done += (size_t)n;
	}
	CHECK_EQ(read(fd, buf, 10), 0);
	/* write() advances the offset */
	CHECK_EQ(lseek(fd, 100, SEEK_SET), 100);
	CHECK_EQ(write(fd, "seq", 3), 3);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 103);
	CHECK_OK(close(fd));
	free(ref);
	free(buf);
}

static void check_lseek(void)
{
	unsigned char buf[64];
	int fd;

	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	CHECK_EQ(lseek(fd, 3, SEEK_SET), 3);
	CHECK_EQ(lseek(fd, 2, SEEK_CUR), 5);
	CHECK_EQ(read(fd, buf, 2), 2);
	CHECK(memcmp(buf, "56", 2) == 0);
	CHECK_EQ(lseek(fd, -1, SEEK_END), 9);
	CHECK_EQ(read(fd, buf, 10), 1);
	CHECK_EQ(buf[0], '9');
	CHECK_EQ(read(fd, buf, 10), 0);
	CHECK_ERR(lseek(fd, -1, SEEK_SET), EINVAL);
	/* past the end, then write: the gap reads as zeros */
	CHECK_EQ(lseek(fd, 20, SEEK_END), 30);
	CHECK_EQ(write(fd, "end", 3), 3);
	CHECK_EQ(pread_all(fd, buf, sizeof(buf), 0), 33);
	CHECK(memcmp(buf, "0123456789", 10) == 0);
	CHECK(all_zero(buf + 10, 20));
	CHECK(memcmp(buf + 30, "end", 3) == 0);
	CHECK_OK(close(fd));
}

static void check_ftruncate(void)
{
	unsigned char a[10000], b[30000];
	int fd;

	fill(a, sizeof(a), 1);
	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	pwrite_all(fd, a, sizeof(a), 0);
	CHECK_OK(ftruncate(fd, 5000));
	CHECK_EQ(stat_of(P("f")).st_size, 5000);
	CHECK_EQ(pread_all(fd, b, sizeof(b), 0), 5000);
	CHECK(memcmp(a, b, 5000) == 0);
	CHECK_OK(ftruncate(fd, 20000));
	CHECK_EQ(stat_of(P("f")).st_size, 20000);
	CHECK_EQ(pread_all(fd, b, sizeof(b), 0), 20000);
	CHECK(memcmp(a, b, 5000) == 0);
	CHECK(all_zero(b + 5000, 15000));
	CHECK_OK(truncate(P("f"), 7));
	CHECK_EQ(stat_of(P("f")).st_size, 7);
	CHECK_EQ(pread_all(fd, b, sizeof(b), 0), 7);
	CHECK_OK(ftruncate(fd, 0));
	CHECK_EQ(pread_all(fd, b, sizeof(b), 0), 0);
	CHECK_ERR(ftruncate(fd, -1), EINVAL);
	CHECK_OK(close(fd));
	CHECK_ERR(truncate(P("."), 0), EISDIR);
}

static void check_fstat_fields(void)
{
	unsigned char buf[12345];
	struct stat st, st2;
	int fd;

	fill(buf, sizeof(buf), 2);
	fd = xopen(P("f"), O_RDWR | O_CREAT, 0604);
	pwrite_all(fd, buf, sizeof(buf), 0);
	CHECK_OK(fstat(fd, &st));
	CHECK_OK(stat(P("f"), &st2));
	CHECK_EQ(st.st_ino, st2.st_ino);
	CHECK_EQ(st.st_dev, st2.st_dev);
	CHECK_EQ(st.st_mode, S_IFREG | 0604);
	CHECK_EQ(st.st_nlink, 1);
	CHECK_EQ(st.st_size, sizeof(buf));
	CHECK(st.st_blksize > 0);
	CHECK_OK(fsync(fd));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_blocks >= (blkcnt_t)(sizeof(buf) / 512));
	CHECK_OK(close(fd));

	/* sparse: 1 GiB with one byte at the end */
	fd = xopen(P("sparse"), O_RDWR | O_CREAT, 0644);
	CHECK_OK(ftruncate(fd, GiB - 1));
	CHECK_EQ(pwrite(fd, "z", 1, GiB - 1), 1);
	CHECK_OK(fsync(fd));
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, GiB);
	CHECK(st.st_blocks < 1024);
	CHECK_OK(close(fd));

	CHECK_OK(mkdir(P("d"), 0700));
	st = stat_of(P("d"));
	CHECK_EQ(st.st_mode, S_IFDIR | 0700);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(stat_of(workdir).st_nlink, 3);
}

static void check_utimensat(void)
{
	struct timespec ts[2], t0, t1;
	struct stat st, before;
	int fd;

	write_file(P("f"), "x", 1);
	ts[0] = (struct timespec){ 1000000000, 123456789 };
	ts[1] = (struct timespec){ 1500000000, 987654321 };
	CHECK_OK(utimensat(AT_FDCWD, P("f"), ts, 0));
	st = stat_of(P("f"));
	CHECK_EQ(st.st_atim.tv_sec, 1000000000);
	CHECK_EQ(st.st_atim.tv_nsec, 123456789);
	CHECK_EQ(st.st_mtim.tv_sec, 1500000000);
	CHECK_EQ(st.st_mtim.tv_nsec, 987654321);

	/* UTIME_OMIT leaves the atime alone */
	before = st;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = (struct timespec){ 1600000000, 1 };
	CHECK_OK(utimensat(AT_FDCWD, P("f"), ts, 0));
	st = stat_of(P("f"));
	CHECK_EQ(st.st_atim.tv_sec, before.st_atim.tv_sec);
	CHECK_EQ(st.st_atim.tv_nsec, before.st_atim.tv_nsec);
	CHECK_EQ(st.st_mtim.tv_sec, 1600000000);
	CHECK_EQ(st.st_mtim.tv_nsec, 1);

	/* UTIME_NOW for the mtime only, through futimens */
	fd = xopen(P("f"), O_RDWR, 0);
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_nsec = UTIME_NOW;
	t0 = now();
	CHECK_OK(futimens(fd, ts));
	t1 = now();
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_atim.tv_sec, before.st_atim.tv_sec);
	CHECK(ts_within(st.st_mtim, t0, t1, 1));
	CHECK(ts_within(st.st_ctim, t0, t1, 1));
	CHECK_OK(close(fd));

	/* NULL: both now */
	t0 = now();
	CHECK_OK(utimensat(AT_FDCWD, P("f"), NULL, 0));
	t1 = now();
	st = stat_of(P("f"));
	CHECK(ts_within(st.st_atim, t0, t1, 1));
	CHECK(ts_within(st.st_mtim, t0, t1, 1));

	/* a symlink's own times */
	CHECK_OK(symlink("f", P("l")));
	ts[0] = (struct timespec){ 1300000000, 5 };
	ts[1] = (struct timespec){ 1300000001, 6 };
	CHECK_OK(utimensat(AT_FDCWD, P("l"), ts, AT_SYMLINK_NOFOLLOW));
	st = stat_of(P("l"));
	CHECK_EQ(st.st_mtim.tv_sec, 1300000001);
	CHECK_EQ(st.st_mtim.tv_nsec, 6);
	CHECK(stat_of(P("f")).st_mtim.tv_sec != 1300000001);

	/* directories too */
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(utimensat(AT_FDCWD, P("d"), ts, 0));
	st = stat_of(P("d"));
	CHECK_EQ(st.st_mtim.tv_nsec, 6);
}

static void check_link_unlink(void)
{
	struct stat st;

	write_file(P("f"), "data", 4);
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(link(P("f"), P("g")));
	CHECK_OK(link(P("f"), P("d/h")));
	st = stat_of(P("f"));
	CHECK_EQ(st.st_nlink, 3);
	CHECK_EQ(stat_of(P("g")).st_ino, st.st_ino);
	CHECK_EQ(stat_of(P("d/h")).st_ino, st.st_ino);
	CHECK_EQ(stat_of(P("d/h")).st_nlink, 3);
	file_is(P("d/h"), "data", 4);
	CHECK_ERR(link(P("f"), P("g")), EEXIST);
	CHECK_ERR(link(P("d"), P("dirlink")), EPERM);
	CHECK_ERR(link(P("none"), P("x")), ENOENT);

	CHECK_OK(unlink(P("f")));
	CHECK_ERR(lstat(P("f"), &st), ENOENT);
	CHECK_EQ(stat_of(P("g")).st_nlink, 2);
	CHECK_OK(unlink(P("d/h")));
	CHECK_EQ(stat_of(P("g")).st_nlink, 1);
	file_is(P("g"), "data", 4);
	CHECK_ERR(unlink(P("d")), EISDIR);
	CHECK_ERR(unlink(P("none")), ENOENT);
	CHECK_OK(unlink(P("g")));
}

static void check_rename(void)
{
	struct stat st, a, b;
	char buf[16];
	int fd;

	write_file(P("a"), "AAAA", 4);
	a = stat_of(P("a"));
	CHECK_OK(rename(P("a"), P("b")));
	CHECK_ERR(lstat(P("a"), &st), ENOENT);
	CHECK_EQ(stat_of(P("b")).st_ino, a.st_ino);

	/* over a file: the victim lives on while open */
	write_file(P("victim"), "VVV", 3);
	fd = xopen(P("victim"), O_RDONLY, 0);
	CHECK_OK(rename(P("b"), P("victim")));
	CHECK_EQ(stat_of(P("victim")).st_ino, a.st_ino);
	file_is(P("victim"), "AAAA", 4);
	CHECK_EQ(pread(fd, buf, sizeof(buf), 0), 3);
	CHECK(memcmp(buf, "VVV", 3) == 0);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_nlink, 0);
	CHECK_OK(close(fd));

	/* directories */
	CHECK_OK(mkdir(P("d1"), 0755));
	CHECK_OK(mkdir(P("d2"), 0755));
	CHECK_OK(mkdir(P("d2/sub"), 0755));
	CHECK_OK(mkdir(P("full"), 0755));
	write_file(P("full/x"), "x", 1);
	CHECK_ERR(rename(P("d1"), P("full")), ENOTEMPTY);
	CHECK_ERR(rename(P("d1"), P("victim")), ENOTDIR);
	CHECK_ERR(rename(P("victim"), P("d1")), EISDIR);
	CHECK_ERR(rename(P("d2"), P("d2/sub/x")), EINVAL);
	CHECK_ERR(rename(P("none"), P("x")), ENOENT);

	/* over an empty directory */
	a = stat_of(P("d1"));
	CHECK_EQ(stat_of(workdir).st_nlink, 5);
	CHECK_OK(rename(P("d1"), P("d2/sub")));
	CHECK_EQ(stat_of(P("d2/sub")).st_ino, a.st_ino);
	CHECK_EQ(stat_of(workdir).st_nlink, 4);
	CHECK_EQ(stat_of(P("d2")).st_nlink, 3);

	/* a directory to another parent: ".." follows */
	CHECK_OK(rename(P("d2/sub"), P("full/moved")));
	a = stat_of(P("full"));
	b = stat_of(P("full/moved/.."));
	CHECK_EQ(b.st_ino, a.st_ino);
	CHECK_EQ(a.st_nlink, 3);
	CHECK_EQ(stat_of(P("d2")).st_nlink, 2);

	/* hard links of one inode: nothing happens */
	CHECK_OK(link(P("victim"), P("twin")));
	CHECK_OK(rename(P("victim"), P("twin")));
	CHECK_EQ(stat_of(P("victim")).st_nlink, 2);
	CHECK_EQ(stat_of(P("twin")).st_nlink, 2);
}

static void check_renameat2(void)
{
	struct stat st, f, d;

	write_file(P("a"), "a", 1);
	write_file(P("b"), "b", 1);
	CHECK_ERR(syscall_renameat2(P("a"), P("b"), RENAME_NOREPLACE), EEXIST);
	file_is(P("a"), "a", 1);
	file_is(P("b"), "b", 1);
	CHECK_OK(syscall_renameat2(P("a"), P("c"), RENAME_NOREPLACE));
	CHECK_ERR(lstat(P("a"), &st), ENOENT);
	file_is(P("c"), "a", 1);

	/* two files */
	CHECK_OK(syscall_renameat2(P("b"), P("c"), RENAME_EXCHANGE));
	file_is(P("b"), "a", 1);
	file_is(P("c"), "b", 1);
	CHECK_ERR(syscall_renameat2(P("b"), P("none"), RENAME_EXCHANGE),
		  ENOENT);

	/* a file and a directory, across two parents */
	CHECK_OK(mkdir(P("p1"), 0755));
	CHECK_OK(mkdir(P("p2"), 0755));
	write_file(P("p1/f"), "file", 4);
	CHECK_OK(mkdir(P("p2/d"), 0755));
	write_file(P("p2/d/inside"), "in", 2);
	f = stat_of(P("p1/f"));
	d = stat_of(P("p2/d"));
	CHECK_OK(syscall_renameat2(P("p1/f"), P("p2/d"), RENAME_EXCHANGE));
	st = stat_of(P("p1/f"));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_ino, d.st_ino);
	st = stat_of(P("p2/d"));
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_ino, f.st_ino);
	file_is(P("p2/d"), "file", 4);
	file_is(P("p1/f/inside"), "in", 2);
	CHECK_EQ(stat_of(P("p1")).st_nlink, 3);
	CHECK_EQ(stat_of(P("p2")).st_nlink, 2);
	CHECK_EQ(stat_of(P("p1/f/..")).st_ino, stat_of(P("p1")).st_ino);
	CHECK_ERR(syscall_renameat2(P("c"), P("b"),
				    RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL);
}

static void check_mkdir_rmdir(void)
{
	struct stat st;

	CHECK_OK(mkdir(P("d"), 0750));
	st = stat_of(P("d"));
	CHECK_EQ(st.st_mode, S_IFDIR | 0750);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK_EQ(stat_of(workdir).st_nlink, 3);
	CHECK_ERR(mkdir(P("d"), 0755), EEXIST);
	CHECK_OK(mkdir(P("d/e"), 0755));
	CHECK_EQ(stat_of(P("d")).st_nlink, 3);
	write_file(P("file"), "", 0);
	CHECK_ERR(mkdir(P("file/x"), 0755), ENOTDIR);
	CHECK_ERR(rmdir(P("d")), ENOTEMPTY);
	CHECK_ERR(rmdir(P("file")), ENOTDIR);
	CHECK_ERR(rmdir(P("none")), ENOENT);
	CHECK_OK(rmdir(P("d/e")));
	CHECK_EQ(stat_of(P("d")).st_nlink, 2);
	CHECK_OK(rmdir(P("d")));
	CHECK_ERR(lstat(P("d"), &st), ENOENT);
	CHECK_EQ(stat_of(workdir).st_nlink, 2);
	/* an open directory that is removed lists nothing */
	{
		struct dirent *e;
		DIR *dir;

		CHECK_OK(mkdir(P("gone"), 0755));
		dir = opendir(P("gone"));
		CHECK(dir != NULL);
		CHECK_OK(rmdir(P("gone")));
		while ((e = readdir(dir)))
			CHECK(strcmp(e->d_name, ".") == 0 ||
			      strcmp(e->d_name, "..") == 0);
		closedir(dir);
		CHECK_ERR(mkdir(P("gone/x"), 0755), ENOENT);
	}
}

static void check_symlink_readlink(void)
{
	char target[4001], buf[4096];
	struct stat st;

	write_file(P("target-file"), "T", 1);
	CHECK_OK(symlink("target-file", P("l")));
	st = stat_of(P("l"));
	CHECK(S_ISLNK(st.st_mode));
	CHECK_EQ(st.st_size, 11);
	CHECK_EQ(readlink(P("l"), buf, sizeof(buf)), 11);
	CHECK(memcmp(buf, "target-file", 11) == 0);
	CHECK_EQ(readlink(P("l"), buf, 4), 4);		/* truncated, no error */
	CHECK(memcmp(buf, "targ", 4) == 0);
	CHECK_OK(stat(P("l"), &st));
	CHECK(S_ISREG(st.st_mode));
	file_is(P("l"), "T", 1);
	CHECK_ERR(symlink("x", P("l")), EEXIST);
	CHECK_ERR(readlink(P("target-file"), buf, sizeof(buf)), EINVAL);

	for (size_t i = 0; i < 4000; i++)
		target[i] = i % 100 == 99 ? '/' : (char)('a' + i % 26);
	target[4000] = '\0';
	CHECK_OK(symlink(target, P("long")));
	CHECK_EQ(readlink(P("long"), buf, sizeof(buf)), 4000);
	CHECK(memcmp(buf, target, 4000) == 0);
	CHECK_EQ(stat_of(P("long")).st_size, 4000);

	CHECK_OK(symlink("dangling", P("dang")));
	CHECK_ERR(stat(P("dang"), &st), ENOENT);
	CHECK_OK(unlink(P("l")));
	file_is(P("target-file"), "T", 1);
}

static void check_fifo_socket_nodes(void)
{
	char buf[8];
	struct stat st;
	int r, w;

	CHECK_OK(mkfifo(P("fifo"), 0640));
	st = stat_of(P("fifo"));
	CHECK(S_ISFIFO(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0640);
	r = xopen(P("fifo"), O_RDONLY | O_NONBLOCK, 0);
	w = xopen(P("fifo"), O_WRONLY | O_NONBLOCK, 0);
	CHECK_EQ(write(w, "pipe", 4), 4);
	CHECK_EQ(read(r, buf, sizeof(buf)), 4);
	CHECK(memcmp(buf, "pipe", 4) == 0);
	CHECK_OK(close(w));
	CHECK_OK(close(r));

	CHECK_OK(mknod(P("sock"), S_IFSOCK | 0600, 0));
	st = stat_of(P("sock"));
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0600);

	CHECK_OK(mknod(P("reg"), S_IFREG | 0600, 0));
	CHECK(S_ISREG(stat_of(P("reg")).st_mode));

	if (geteuid() == 0) {
		CHECK_OK(mknod(P("null"), S_IFCHR | 0666, makedev(1, 3)));
		st = stat_of(P("null"));
		CHECK(S_ISCHR(st.st_mode));
		CHECK_EQ(major(st.st_rdev), 1);
		CHECK_EQ(minor(st.st_rdev), 3);
		CHECK_OK(mknod(P("blk"), S_IFBLK | 0600, makedev(7, 42)));
		st = stat_of(P("blk"));
		CHECK(S_ISBLK(st.st_mode));
		CHECK_EQ(st.st_rdev, makedev(7, 42));
	}
	CHECK_ERR(mknod(P("sock"), S_IFSOCK | 0600, 0), EEXIST);
}

static void check_readdir(void)
{
	struct names *l = calloc(1, sizeof(*l));
	char name[32];
	DIR *d;

	CHECK(l != NULL);
	for (int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "file-%03d", i);
		write_file(P(name), "", 0);
	}
	CHECK_OK(mkdir(P("subdir"), 0755));
	CHECK_OK(symlink("x", P("link")));
	d = opendir(workdir);
	CHECK(d != NULL);
	read_rest(d, l, 256);
	CHECK_EQ(l->n, 154);
	CHECK_EQ(count_name(l, "."), 1);
	CHECK_EQ(count_name(l, ".."), 1);
	for (int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "file-%03d", i);
		CHECK_EQ(count_name(l, name), 1);
	}
	for (int i = 0; i < l->n; i++) {
		if (strcmp(l->name[i], "subdir") == 0 ||
		    strcmp(l->name[i], ".") == 0 ||
		    strcmp(l->name[i], "..") == 0)
			CHECK_EQ(l->type[i], DT_DIR);
		else if (strcmp(l->name[i], "link") == 0)
			CHECK_EQ(l->type[i], DT_LNK);
		else
			CHECK_EQ(l->type[i], DT_REG);
	}
	/* rewinddir starts over */
	rewinddir(d);
	l->n = 0;
	read_rest(d, l, 256);
	CHECK_EQ(l->n, 154);
	closedir(d);
	free(l);
}

/*
 * telldir() positions are the filesystem's offsets: seekdir() to one must
 * resume after the same entry, also when the directory changed since.
 */
static void check_telldir_seekdir(void)
{
	struct names *first = calloc(1, sizeof(*first));
	struct names *rest = calloc(1, sizeof(*rest));
	struct names *again = calloc(1, sizeof(*again));
	char name[32];
	long pos;
	DIR *d;

	CHECK(first && rest && again);
	for (int i = 0; i < 80; i++) {
		snprintf(name, sizeof(name), i % 2 ? "t%02d" : "s%02d", i);
		write_file(P(name), "", 0);
	}
	d = opendir(workdir);
	CHECK(d != NULL);
	read_rest(d, first, 30);
	CHECK_EQ(first->n, 30);
	pos = telldir(d);
	CHECK_EQ(pos, first->pos[29]);
	read_rest(d, rest, 256);
	CHECK_EQ(first->n + rest->n, 82);

	/* seek back: the same tail */
	seekdir(d, pos);
	read_rest(d, again, 256);
	CHECK_EQ(again->n, rest->n);
	for (int i = 0; i < rest->n; i++)
		CHECK(strcmp(again->name[i], rest->name[i]) == 0);

	/* seek to an earlier position */
	seekdir(d, first->pos[9]);
	again->n = 0;
	read_rest(d, again, 1);
	CHECK_EQ(again->n, 1);
	CHECK(strcmp(again->name[0], first->name[10]) == 0);

	/* change the directory, then resume at pos: every entry that stayed
	 * put shows up exactly once over both halves */
	for (int i = 1; i < 80; i += 4) {
		snprintf(name, sizeof(name), "t%02d", i);
		CHECK_OK(unlink(P(name)));
	}
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "new%02d", i);
		write_file(P(name), "", 0);
	}
	seekdir(d, pos);
	again->n = 0;
	read_rest(d, again, 256);
	for (int i = 0; i < 80; i += 2) {
		snprintf(name, sizeof(name), "s%02d", i);
		if (count_name(first, name) + count_name(again, name) != 1)
			printf("# %s seen %d + %d times\n", name,
			       count_name(first, name),
			       count_name(again, name));
		CHECK_EQ(count_name(first, name) + count_name(again, name), 1);
	}
	for (int i = 0; i < again->n; i++) {
		CHECK_EQ(count_name(again, again->name[i]), 1);
		CHECK_EQ(count_name(first, again->name[i]), 0);
	}
	for (int i = 0; i < 20; i++) {		/* new ones: at most once */
		snprintf(name, sizeof(name), "new%02d", i);
		CHECK(count_name(again, name) <= 1);
	}
	closedir(d);
	free(first);
	free(rest);
	free(again);
}

static void check_statvfs(void)
{
	struct statvfs sv, sv2;
	int fd;

	CHECK_OK(statvfs(mountpoint, &sv));
	CHECK_EQ(sv.f_namemax, 255);
	CHECK(sv.f_bsize > 0);
	CHECK(sv.f_frsize > 0);
	CHECK(sv.f_blocks > 0);
	CHECK(sv.f_bfree <= sv.f_blocks);
	CHECK(sv.f_bavail <= sv.f_bfree);
	CHECK(sv.f_files > 0);
	write_file(P("f"), "x", 1);
	fd = xopen(P("f"), O_RDONLY, 0);
	CHECK_OK(fstatvfs(fd, &sv2));
	CHECK_EQ(sv2.f_fsid, sv.f_fsid);
	CHECK_EQ(sv2.f_blocks, sv.f_blocks);
	CHECK_OK(close(fd));
}

static void check_xattr(void)
{
	static unsigned char big[65536], back[65536];
	char buf[256], list[1024];
	ssize_t n;

	write_file(P("f"), "x", 1);
	CHECK_EQ(listxattr(P("f"), list, sizeof(list)), 0);
	CHECK_OK(setxattr(P("f"), "user.mime", "text/plain", 10, 0));
	CHECK_OK(setxattr(P("f"), "user.empty", "", 0, 0));
	CHECK_EQ(getxattr(P("f"), "user.mime", NULL, 0), 10);
	CHECK_EQ(getxattr(P("f"), "user.mime", buf, sizeof(buf)), 10);
	CHECK(memcmp(buf, "text/plain", 10) == 0);
	CHECK_ERR(getxattr(P("f"), "user.mime", buf, 5), ERANGE);
	CHECK_EQ(getxattr(P("f"), "user.empty", buf, sizeof(buf)), 0);
	CHECK_ERR(getxattr(P("f"), "user.none", buf, sizeof(buf)), ENODATA);

	n = listxattr(P("f"), NULL, 0);
	CHECK_EQ(n, sizeof("user.mime") + sizeof("user.empty"));
	CHECK_EQ(listxattr(P("f"), list, sizeof(list)), n);
	CHECK_ERR(listxattr(P("f"), list, 3), ERANGE);
	{
		bool mime = false, empty = false;

		for (char *p = list; p < list + n; p += strlen(p) + 1) {
			mime |= strcmp(p, "user.mime") == 0;
			empty |= strcmp(p, "user.empty") == 0;
		}
		CHECK(mime && empty);
	}

	CHECK_ERR(setxattr(P("f"), "user.mime", "x", 1, XATTR_CREATE), EEXIST);
	CHECK_ERR(setxattr(P("f"), "user.new", "x", 1, XATTR_REPLACE),
		  ENODATA);
	CHECK_OK(setxattr(P("f"), "user.mime", "text/html", 9, XATTR_REPLACE));
	CHECK_EQ(getxattr(P("f"), "user.mime", buf, sizeof(buf)), 9);
	CHECK_OK(setxattr(P("f"), "user.new", "y", 1, XATTR_CREATE));

	CHECK_OK(removexattr(P("f"), "user.mime"));
	CHECK_ERR(getxattr(P("f"), "user.mime", buf, sizeof(buf)), ENODATA);
	CHECK_ERR(removexattr(P("f"), "user.mime"), ENODATA);

	fill(big, sizeof(big), 3);
	CHECK_OK(setxattr(P("f"), "user.big", big, sizeof(big), 0));
	CHECK_EQ(getxattr(P("f"), "user.big", back, sizeof(back)), sizeof(big));
	CHECK(memcmp(big, back, sizeof(big)) == 0);

	/* on a directory, and through an fd */
	CHECK_OK(mkdir(P("d"), 0755));
	CHECK_OK(setxattr(P("d"), "user.dir", "1", 1, 0));
	CHECK_EQ(getxattr(P("d"), "user.dir", buf, sizeof(buf)), 1);
	{
		int fd = xopen(P("f"), O_RDONLY, 0);

		CHECK_OK(fsetxattr(fd, "user.fd", "2", 1, 0));
		CHECK_EQ(fgetxattr(fd, "user.fd", buf, sizeof(buf)), 1);
		CHECK_OK(close(fd));
	}

	/* trusted.* is root's, as on ext4: kept, read back, removed */
	if (geteuid() == 0) {
		CHECK_OK(setxattr(P("f"), "trusted.x", "v", 1, 0));
		CHECK_EQ(getxattr(P("f"), "trusted.x", buf, sizeof(buf)), 1);
		CHECK_OK(removexattr(P("f"), "trusted.x"));
		CHECK_ERR(getxattr(P("f"), "trusted.x", buf, sizeof(buf)),
			  ENODATA);
	}
}

static void check_fallocate(void)
{
	unsigned char buf[8192];
	struct stat st;
	int fd;

	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	CHECK_OK(fallocate(fd, 0, 0, MiB));
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, MiB);
	CHECK_OK(fsync(fd));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_blocks >= MiB / 512);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ(pread_all(fd, buf, sizeof(buf), MiB - (off_t)sizeof(buf)),
		 sizeof(buf));
	CHECK(all_zero(buf, sizeof(buf)));
	CHECK_EQ(pwrite(fd, "abc", 3, 10), 3);
	CHECK_OK(fallocate(fd, 0, 0, 4096));		/* inside: keeps data */
	CHECK_EQ(pread_all(fd, buf, 3, 10), 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, MiB);
	CHECK_ERR(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * MiB), EOPNOTSUPP);
	CHECK_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			    4096), EOPNOTSUPP);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, MiB);
	CHECK_OK(close(fd));
}

static void check_mmap_shared(void)
{
	const size_t len = 256 * KiB;
	unsigned char *map, *buf = malloc(len), *want = malloc(len);
	int fd, fd2;

	CHECK(buf && want);
	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	CHECK_OK(ftruncate(fd, (off_t)len));
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED);
	fill(want, len, 7);
	memcpy(map, want, len);
	CHECK_OK(msync(map, len, MS_SYNC));
	CHECK_EQ(pread_all(fd, buf, len, 0), len);
	CHECK(memcmp(buf, want, len) == 0);

	/* a write() shows in the mapping */
	CHECK_EQ(pwrite(fd, "written", 7, 1000), 7);
	memcpy(want + 1000, "written", 7);
	CHECK(memcmp(map + 1000, "written", 7) == 0);
	CHECK_OK(munmap(map, len));
	CHECK_OK(close(fd));

	/* what a fresh open reads */
	fd2 = xopen(P("f"), O_RDONLY, 0);
	CHECK_EQ(pread_all(fd2, buf, len + 1, 0), len);
	CHECK(memcmp(buf, want, len) == 0);
	/* and a read-only mapping of it */
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd2, 0);
	CHECK(map != MAP_FAILED);
	CHECK(memcmp(map, want, len) == 0);
	CHECK_OK(munmap(map, len));
	CHECK_OK(close(fd2));
	free(buf);
	free(want);
}

static void check_fsync(void)
{
	int fd, dfd;

	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	CHECK_EQ(write(fd, "durable", 7), 7);
	CHECK_OK(fsync(fd));
	CHECK_EQ(pwrite(fd, "D", 1, 0), 1);
	CHECK_OK(fdatasync(fd));
	CHECK_EQ(stat_of(P("f")).st_size, 7);
	CHECK_OK(close(fd));
	file_is(P("f"), "Durable", 7);
	dfd = xopen(workdir, O_RDONLY | O_DIRECTORY, 0);
	CHECK_OK(fsync(dfd));
	CHECK_OK(fdatasync(dfd));
	CHECK_OK(close(dfd));
	fd = xopen(P("f"), O_RDONLY, 0);	/* fsync on a read-only fd */
	CHECK_OK(fsync(fd));
	CHECK_OK(close(fd));
	fd = xopen(workdir, O_RDONLY | O_DIRECTORY, 0);
	CHECK_OK(syncfs(fd));
	CHECK_OK(close(fd));
}

static void check_unlink_open_file(void)
{
	static unsigned char a[100 * 1024], b[100 * 1024];
	struct stat st;
	DIR *d;
	struct dirent *e;
	int fd;

	fill(a, sizeof(a), 9);
	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	pwrite_all(fd, a, sizeof(a), 0);
	CHECK_OK(unlink(P("f")));
	CHECK_ERR(lstat(P("f"), &st), ENOENT);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(st.st_size, sizeof(a));
	CHECK_EQ(pread_all(fd, b, sizeof(b), 0), sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK_EQ(pwrite(fd, "more", 4, sizeof(a)), 4);
	CHECK_EQ(pread_all(fd, b, 10, sizeof(a)), 4);
	CHECK(memcmp(b, "more", 4) == 0);
	CHECK_OK(fsync(fd));
	CHECK_OK(ftruncate(fd, 10));
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 10);
	/* the name can be reused meanwhile */
	write_file(P("f"), "new", 3);
	file_is(P("f"), "new", 3);
	CHECK_EQ(pread_all(fd, b, sizeof(b), 0), 10);
	CHECK(memcmp(a, b, 10) == 0);
	CHECK_OK(close(fd));
	CHECK_OK(unlink(P("f")));
	d = opendir(workdir);
	CHECK(d != NULL);
	while ((e = readdir(d)))
		CHECK(e->d_name[0] == '.');
	closedir(d);
}

static void check_chmod_chown(void)
{
	struct stat st;
	int fd;

	write_file(P("f"), "x", 1);
	CHECK_OK(chmod(P("f"), 04751));
	CHECK_EQ(stat_of(P("f")).st_mode, S_IFREG | 04751);
	fd = xopen(P("f"), O_RDONLY, 0);
	CHECK_OK(fchmod(fd, 0600));
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_mode, S_IFREG | 0600);
	CHECK_OK(close(fd));
	CHECK_OK(mkdir(P("d"), 0700));
	CHECK_OK(chmod(P("d"), 01777));
	CHECK_EQ(stat_of(P("d")).st_mode, S_IFDIR | 01777);
	if (geteuid() != 0)
		return;
	CHECK_OK(chown(P("f"), 1234, 2345));
	st = stat_of(P("f"));
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 2345);
	CHECK_OK(lchown(P("f"), (uid_t)-1, 0));
	st = stat_of(P("f"));
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 0);

	/* a setgid directory hands its group down */
	CHECK_OK(mkdir(P("sg"), 0755));
	CHECK_OK(chown(P("sg"), 0, 2345));
	CHECK_OK(chmod(P("sg"), 02775));
	write_file(P("sg/file"), "", 0);
	CHECK_EQ(stat_of(P("sg/file")).st_gid, 2345);
	CHECK_OK(mkdir(P("sg/sub"), 0755));
	st = stat_of(P("sg/sub"));
	CHECK_EQ(st.st_gid, 2345);
	CHECK(st.st_mode & S_ISGID);
}

static void check_large_offsets(void)
{
	unsigned char data[4096], back[4096];
	struct stat st;
	int fd;

	fill(data, sizeof(data), 5);
	fd = xopen(P("f"), O_RDWR | O_CREAT, 0644);
	pwrite_all(fd, data, sizeof(data), 5 * GiB);
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 5 * GiB + (off_t)sizeof(data));
	CHECK_EQ(pread_all(fd, back, sizeof(back), 5 * GiB), sizeof(back));
	CHECK(memcmp(data, back, sizeof(data)) == 0);
	memset(back, 0xff, sizeof(back));
	CHECK_EQ(pread_all(fd, back, sizeof(back), 4 * GiB), sizeof(back));
	CHECK(all_zero(back, sizeof(back)));
	CHECK_EQ(lseek(fd, 0, SEEK_END), 5 * GiB + (off_t)sizeof(data));
	CHECK_OK(fsync(fd));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_blocks < 1024);
	CHECK_OK(close(fd));
}

/* === running ============================================================ */

struct check {
	const char *name;
	void (*fn)(void);
};

static const struct check checks[] = {
	{ "mount_root", check_mount_root },
	{ "open_creat_excl", check_open_creat_excl },
	{ "o_trunc", check_o_trunc },
	{ "o_append", check_o_append },
	{ "read_write_random", check_read_write_random },
	{ "lseek", check_lseek },
	{ "ftruncate", check_ftruncate },
	{ "fstat_fields", check_fstat_fields },
	{ "utimensat", check_utimensat },
	{ "link_unlink", check_link_unlink },
	{ "rename", check_rename },
	{ "renameat2", check_renameat2 },
	{ "mkdir_rmdir", check_mkdir_rmdir },
	{ "symlink_readlink", check_symlink_readlink },
	{ "fifo_socket_nodes", check_fifo_socket_nodes },
	{ "readdir", check_readdir },
	{ "telldir_seekdir", check_telldir_seekdir },
	{ "statvfs", check_statvfs },
	{ "xattr", check_xattr },
	{ "fallocate", check_fallocate },
	{ "mmap_shared", check_mmap_shared },
	{ "fsync", check_fsync },
	{ "unlink_open_file", check_unlink_open_file },
	{ "chmod_chown", check_chmod_chown },
	{ "large_offsets", check_large_offsets },
};

#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) && errno != ENOENT)
		printf("# cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc < 3)
		return true;
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

/* Runs one check in MOUNTPOINT/NAME; true if it passed. */
static bool run_one(const struct check *c, size_t k)
{
	volatile bool ok = false;

	snprintf(workdir, sizeof(workdir), "%s/%s", mountpoint, c->name);
	fflush(stdout);
	if (setjmp(fail_jump) == 0) {
		if (mkdir(workdir, 0755))
			fail_(__FILE__, __LINE__, workdir, errno);
		c->fn();
		ok = true;
	}
	nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("%s %zu - %s\n", ok ? "ok" : "not ok", k, c->name);
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	size_t planned = 0, k = 0;
	bool all_ok = true;
	struct stat st;

	if (argc < 2 || stat(argv[1], &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "usage: syscalls MOUNTPOINT [CHECK...]\n");
		return 2;
	}
	mountpoint = argv[1];
	umask(0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < NCHECKS; i++)
		planned += selected(checks[i].name, argc, argv);
	printf("1..%zu\n", planned);
	for (size_t i = 0; i < NCHECKS; i++)
		if (selected(checks[i].name, argc, argv))
			all_ok &= run_one(&checks[i], ++k);
	return all_ok ? 0 : 1;
}
