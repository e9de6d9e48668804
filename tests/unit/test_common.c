/*
 * test_common.c - common/: phi_crc32c() (crc32c.h), struct buf (buf.h),
 * and error strings, logging and the clock (phi.h), through those headers
 * only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "hist.h"
#include "phi.h"
#include "test.h"

TEST(crc32c_check_values)
{
	static const uint8_t zeros[32], ones[32] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	/* the standard check value, and RFC 3720's test vectors */
	ASSERT_EQ(phi_crc32c(0, "123456789", 9), 0xe3069283u);
	ASSERT_EQ(phi_crc32c_table(0, "123456789", 9), 0xe3069283u);
	ASSERT_EQ(phi_crc32c(0, zeros, 32), 0x8a9136aau);
	ASSERT_EQ(phi_crc32c(0, ones, 32), 0x62a8ab43u);
	ASSERT_EQ(phi_crc32c(0, "", 0), 0u);
}

TEST(crc32c_fast_path_matches_table)
{
	size_t size = 70000;
	uint8_t *d = malloc(size + 8);
	uint32_t seed = 12345;

	ASSERT_TRUE(d != NULL);
	for (size_t i = 0; i < size + 8; i++) {
		seed = seed * 1103515245u + 12345u;
		d[i] = (uint8_t)(seed >> 16);
	}
	/* every alignment and a spread of lengths */
	for (size_t a = 0; a < 8; a++)
		for (size_t len = 0; len < size; len = len * 3 + 1)
			ASSERT_EQ(phi_crc32c(0, d + a, len),
				  phi_crc32c_table(0, d + a, len));
	/* continuing equals one pass */
	ASSERT_EQ(phi_crc32c(phi_crc32c(0, d, 1000), d + 1000, size - 1000),
		  phi_crc32c(0, d, size));
	/* one flipped bit changes it */
	uint32_t before = phi_crc32c(0, d, 65536);
	d[4321] ^= 0x10;
	ASSERT_NE(phi_crc32c(0, d, 65536), before);
	free(d);
}

/* ---- buf ------------------------------------------------------------ */

/* The contents are always followed by a NUL that the length leaves out,
 * binary zeros inside included. */
TEST(buf_nul_after_contents)
{
	struct buf b;

	buf_init(&b, 100);
	ASSERT_TRUE(buf_data(&b) != NULL);
	ASSERT_STREQ(buf_data(&b), "");
	ASSERT_TRUE(buf_mut(&b) == NULL);	/* nothing reserved yet */
	ASSERT_OK(buf_add(&b, "a\0b", 3));
	ASSERT_EQ(buf_len(&b), 3u);
	ASSERT_TRUE(memcmp(buf_data(&b), "a\0b", 4) == 0);
	ASSERT_OK(buf_add(&b, "cd", 2));
	ASSERT_EQ(buf_len(&b), 5u);
	ASSERT_EQ(((const char *)buf_data(&b))[5], '\0');
	buf_setlen(&b, 1);
	ASSERT_STREQ(buf_data(&b), "a");
	ASSERT_OK(buf_add(&b, "", 0));
	ASSERT_EQ(buf_len(&b), 1u);
	buf_release(&b);
	ASSERT_TRUE(buf_mut(&b) == NULL);
	ASSERT_EQ(buf_len(&b), 0u);
	ASSERT_STREQ(buf_data(&b), "");
}

/* Reserving makes room without changing the contents; bytes written into
 * the room count once buf_setlen() commits them. */
TEST(buf_reserve_then_commit)
{
	struct buf b;
	char *p;

	buf_init(&b, SIZE_MAX);
	ASSERT_OK(buf_reserve(&b, 0));
	ASSERT_TRUE(buf_mut(&b) != NULL);
	ASSERT_EQ(buf_len(&b), 0u);
	ASSERT_OK(buf_add(&b, "head", 4));
	ASSERT_OK(buf_reserve(&b, 1000));
	ASSERT_EQ(buf_len(&b), 4u);
	ASSERT_STREQ(buf_data(&b), "head");
	p = (char *)buf_mut(&b) + buf_len(&b);
	memset(p, 'x', 1000);
	buf_setlen(&b, 1004);
	ASSERT_EQ(buf_len(&b), 1004u);
	ASSERT_TRUE(memcmp(buf_data(&b), "head", 4) == 0);
	ASSERT_EQ(((const char *)buf_data(&b))[1003], 'x');
	ASSERT_EQ(((const char *)buf_data(&b))[1004], '\0');
	buf_reset(&b);
	ASSERT_EQ(buf_len(&b), 0u);
	ASSERT_STREQ(buf_data(&b), "");
	buf_release(&b);
}

/* A request past the cap fails with -E2BIG and changes nothing, even one
 * so large that adding it to the length would wrap around. */
TEST(buf_refusal_changes_nothing)
{
	struct buf b;

	buf_init(&b, 0);
	ASSERT_OK(buf_add(&b, "", 0));
	ASSERT_ERR(buf_add(&b, "x", 1), -E2BIG);
	ASSERT_ERR(buf_reserve(&b, 1), -E2BIG);
	ASSERT_EQ(buf_len(&b), 0u);
	buf_release(&b);

	buf_init(&b, SIZE_MAX);
	ASSERT_OK(buf_add(&b, "abc", 3));
	ASSERT_ERR(buf_reserve(&b, SIZE_MAX), -E2BIG);
	ASSERT_ERR(buf_reserve(&b, SIZE_MAX - 2), -E2BIG);
	ASSERT_ERR(buf_add(&b, "abc", SIZE_MAX), -E2BIG);
	ASSERT_EQ(buf_len(&b), 3u);
	ASSERT_STREQ(buf_data(&b), "abc");
	buf_release(&b);

	buf_init(&b, 8);
	ASSERT_OK(buf_add(&b, "12345", 5));
	ASSERT_ERR(buf_add(&b, "6789", 4), -E2BIG);
	ASSERT_EQ(buf_len(&b), 5u);
	ASSERT_STREQ(buf_data(&b), "12345");
	ASSERT_OK(buf_add(&b, "678", 3));	/* exactly the cap */
	ASSERT_STREQ(buf_data(&b), "12345678");
	buf_release(&b);
}

/* ---- phi_strerror() ------------------------------------------------- */

static const int phi_codes[] = {
	PHI_ECORRUPT, PHI_ENOFS, PHI_EEXISTFS, PHI_EBUSYFS, PHI_EVERSION,
	PHI_ECONFIG, PHI_ELATCHED, PHI_EUNREACHABLE, PHI_EAUTH, PHI_EBADKEY,
	PHI_EAUTHFAIL, PHI_ENOBUCKET, PHI_ECLOCKSKEW, PHI_ETLS, PHI_EREPLACED,
};
#define NCODES (sizeof(phi_codes) / sizeof(phi_codes[0]))

/* Every phifs code has a message of its own, one line, and none of them
 * is an errno's. */
TEST(strerror_every_phi_code)
{
	const char *msg[NCODES];

	for (size_t i = 0; i < NCODES; i++) {
		msg[i] = phi_strerror(phi_codes[i]);
		ASSERT_TRUE(phi_codes[i] <= -PHI_ERR_BASE);
		ASSERT_TRUE(msg[i] != NULL && msg[i][0] != '\0');
		ASSERT_TRUE(strchr(msg[i], '\n') == NULL);
		ASSERT_TRUE(strcmp(msg[i], "unknown error") != 0);
		for (size_t j = 0; j < i; j++) {
			ASSERT_NE(phi_codes[j], phi_codes[i]);
			ASSERT_TRUE(strcmp(msg[j], msg[i]) != 0);
		}
		for (int e = 1; e < 134; e++)
			ASSERT_TRUE(strcmp(msg[i], strerror(e)) != 0);
	}
}

/* A negative errno reads as strerror() says; anything else is unknown. */
TEST(strerror_errno_and_unknown)
{
	static const int errs[] = { EIO, ENOENT, ENOSPC, EACCES, E2BIG,
				    ENAMETOOLONG, ETIMEDOUT };
	char msg[128];

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		ASSERT_STREQ(phi_strerror(-errs[i]), strerror(errs[i]));
	/* strerror() of an errno glibc does not know lives only until the
	 * next call: keep a copy */
	snprintf(msg, sizeof(msg), "%s", phi_strerror(-(PHI_ERR_BASE - 1)));
	ASSERT_STREQ(msg, strerror(PHI_ERR_BASE - 1));
	ASSERT_STREQ(phi_strerror(-PHI_ERR_BASE), "unknown error");
	ASSERT_STREQ(phi_strerror(-(PHI_ERR_BASE + 999)), "unknown error");
	ASSERT_STREQ(phi_strerror(EIO), "unknown error");
}

/* ---- logging -------------------------------------------------------- */

static struct {
	int calls;
	enum phi_log_level level;
	char msg[4096];
} seen;

static void capture(enum phi_log_level level, const char *msg)
{
	seen.calls++;
	seen.level = level;
	snprintf(seen.msg, sizeof(seen.msg), "%s", msg);
}

static int side_effects;

static int count_evaluation(void)
{
	return side_effects++;
}

/* PHI_LOG() drops a message above the threshold without evaluating its
 * arguments; one at or below it reaches the sink, formatted. */
TEST(log_threshold_and_sink)
{
	int saved = phi_log_threshold;

	memset(&seen, 0, sizeof(seen));
	side_effects = 0;
	phi_log_set_sink(capture);
	phi_log_threshold = PHI_LOG_WARNING;
	PHI_LOG(PHI_LOG_INFO, "info %d", count_evaluation());
	PHI_LOG(PHI_LOG_DEBUG, "debug %d", count_evaluation());
	ASSERT_EQ(side_effects, 0);
	ASSERT_EQ(seen.calls, 0);
	PHI_LOG(PHI_LOG_WARNING, "cannot upload object %s: %d", "0a1b",
		count_evaluation());
	ASSERT_EQ(side_effects, 1);
	ASSERT_EQ(seen.calls, 1);
	ASSERT_EQ(seen.level, PHI_LOG_WARNING);
	ASSERT_STREQ(seen.msg, "cannot upload object 0a1b: 0");
	PHI_LOG(PHI_LOG_ERR, "inode %llu", 42ull);
	ASSERT_EQ(seen.calls, 2);
	ASSERT_EQ(seen.level, PHI_LOG_ERR);
	ASSERT_STREQ(seen.msg, "inode 42");
	phi_log_threshold = saved;
	phi_log_set_sink(NULL);
}

/* A message longer than the line buffer is cut, not overrun. */
TEST(log_long_message_is_cut)
{
	static char big[3000];

	memset(big, 'm', sizeof(big) - 1);
	memset(&seen, 0, sizeof(seen));
	phi_log_set_sink(capture);
	phi_log_write(PHI_LOG_ERR, "%s", big);
	phi_log_set_sink(NULL);
	ASSERT_EQ(seen.calls, 1);
	ASSERT_TRUE(strlen(seen.msg) > 0);
	ASSERT_TRUE(strlen(seen.msg) < sizeof(big) - 1);
	ASSERT_TRUE(strncmp(seen.msg, big, strlen(seen.msg)) == 0);
}

/* Read the whole (small) file at path into buf, NUL-terminated. */
static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ASSERT_TRUE(fd >= 0);
	n = read(fd, buf, size - 1);
	close(fd);
	ASSERT_TRUE(n >= 0);
	buf[n] = '\0';
	return (size_t)n;
}

/* Check one line "YYYY-MM-DDTHH:MM:SS.mmmZ phifs[PID]: " and return what
 * follows it. */
static const char *after_stamp(const char *line)
{
	char want[64];
	int n;

	for (int i = 0; i < 23; i++) {
		if (i == 4 || i == 7)
			ASSERT_EQ(line[i], '-');
		else if (i == 10)
			ASSERT_EQ(line[i], 'T');
		else if (i == 13 || i == 16)
			ASSERT_EQ(line[i], ':');
		else if (i == 19)
			ASSERT_EQ(line[i], '.');
		else
			ASSERT_TRUE(line[i] >= '0' && line[i] <= '9');
	}
	ASSERT_EQ(line[23], 'Z');
	n = snprintf(want, sizeof(want), " phifs[%ld]: ", (long)getpid());
	ASSERT_TRUE(strncmp(line + 24, want, (size_t)n) == 0);
	return line + 24 + n;
}

/* A log file gets one whole line per message, stamped, appended to what
 * was there; a message too long for a line is cut but ends the line. */
TEST(log_to_file_lines)
{
	static char path[4200], all[16384], big[3000];
	const char *rest, *nl;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/phifs.log", test_tmpdir());
	fd = phi_log_open_file(path);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(fstat(fd, &st));
	ASSERT_EQ(st.st_mode & 0777, 0600u);
	ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_TRUE(write(fd, "earlier\n", 8) == 8);
	phi_log_to_fd(fd);
	PHI_LOG(PHI_LOG_WARNING, "region %s down", "b");
	memset(big, 'z', sizeof(big) - 1);
	phi_log_write(PHI_LOG_ERR, "%s", big);
	phi_log_set_sink(NULL);
	close(fd);

	slurp(path, all, sizeof(all));
	ASSERT_TRUE(strncmp(all, "earlier\n", 8) == 0);
	rest = after_stamp(all + 8);
	ASSERT_TRUE(strncmp(rest, "warning: region b down\n", 23) == 0);
	rest = after_stamp(rest + 23);
	ASSERT_TRUE(strncmp(rest, "error: zzz", 10) == 0);
	nl = strchr(rest, '\n');
	ASSERT_TRUE(nl != NULL);
	ASSERT_EQ(nl[1], '\0');			/* the last line, ended */
	ASSERT_EQ(strspn(rest + 7, "z"), (size_t)(nl - rest - 7));
}

/* Anything but a regular file is refused with -EINVAL, a FIFO without a
 * reader at once instead of blocking; an existing file keeps its mode. */
TEST(log_open_file_refuses_non_files)
{
	char path[4200];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/dir", test_tmpdir());
	ASSERT_OK(mkdir(path, 0755));
	ASSERT_ERR(phi_log_open_file(path), -EINVAL);
	snprintf(path, sizeof(path), "%s/fifo", test_tmpdir());
	ASSERT_OK(mkfifo(path, 0600));
	ASSERT_ERR(phi_log_open_file(path), -EINVAL);
	snprintf(path, sizeof(path), "%s/none/phifs.log", test_tmpdir());
	ASSERT_ERR(phi_log_open_file(path), -ENOENT);

	snprintf(path, sizeof(path), "%s/kept.log", test_tmpdir());
	fd = open(path, O_CREAT | O_WRONLY, 0640);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(fchmod(fd, 0640));
	close(fd);
	fd = phi_log_open_file(path);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(fstat(fd, &st));
	ASSERT_EQ(st.st_mode & 0777, 0640u);
	close(fd);
}

/* ---- clock ---------------------------------------------------------- */

TEST(now_is_wall_clock)
{
	struct timespec a, t, b;

	clock_gettime(CLOCK_REALTIME, &a);
	t = phi_now();
	clock_gettime(CLOCK_REALTIME, &b);
	ASSERT_TRUE(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
	ASSERT_TRUE(a.tv_sec < t.tv_sec ||
		    (a.tv_sec == t.tv_sec && a.tv_nsec <= t.tv_nsec));
	ASSERT_TRUE(t.tv_sec < b.tv_sec ||
		    (t.tv_sec == b.tv_sec && t.tv_nsec <= b.tv_nsec));
}

/* A deadline is the monotonic clock plus the interval, normalized: a
 * sum of nanoseconds that crosses a second carries into tv_sec. */
TEST(mono_deadline_carries_into_seconds)
{
	for (uint64_t ns = 0; ns < 3000000000ull; ns += 299999999ull) {
		uint64_t before = phi_mono_ns();
		struct timespec d = phi_mono_deadline(ns);
		uint64_t at = (uint64_t)d.tv_sec * 1000000000ull +
			      (uint64_t)d.tv_nsec;

		ASSERT_TRUE(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		ASSERT_TRUE(at >= before + ns);
		ASSERT_TRUE(at <= phi_mono_ns() + ns);
	}
}

TEST(hist_buckets_are_cumulative_upper_bounds)
{
	static struct phi_hist h;	/* zero: empty and ready */
	struct phi_hist_snap s;

	phi_hist_read(&h, &s);
	ASSERT_EQ(s.cum[PHI_HIST_BUCKETS], 0);
	for (int i = 1; i < PHI_HIST_BUCKETS; i++)
		ASSERT_TRUE(phi_hist_bounds_ns[i] > phi_hist_bounds_ns[i - 1]);
	phi_hist_add(&h, 0);				/* first bucket */
	phi_hist_add(&h, phi_hist_bounds_ns[0]);	/* on the bound: in */
	phi_hist_add(&h, phi_hist_bounds_ns[0] + 1);	/* the next one */
	phi_hist_add(&h, phi_hist_bounds_ns[PHI_HIST_BUCKETS - 1] + 1);
	phi_hist_read(&h, &s);
	ASSERT_EQ(s.cum[0], 2);
	ASSERT_EQ(s.cum[1], 3);
	ASSERT_EQ(s.cum[PHI_HIST_BUCKETS - 1], 3);
	ASSERT_EQ(s.cum[PHI_HIST_BUCKETS], 4);		/* +Inf: all */
	ASSERT_EQ(s.sum_ns, 2 * phi_hist_bounds_ns[0] + 1 +
		  phi_hist_bounds_ns[PHI_HIST_BUCKETS - 1] + 1);
}

TEST_MAIN(TEST_ENTRY(crc32c_check_values),
	  TEST_ENTRY(crc32c_fast_path_matches_table),
	  TEST_ENTRY(buf_nul_after_contents),
	  TEST_ENTRY(buf_reserve_then_commit),
	  TEST_ENTRY(buf_refusal_changes_nothing),
	  TEST_ENTRY(strerror_every_phi_code),
	  TEST_ENTRY(strerror_errno_and_unknown),
	  TEST_ENTRY(log_threshold_and_sink),
	  TEST_ENTRY(log_long_message_is_cut),
	  TEST_ENTRY(log_to_file_lines),
	  TEST_ENTRY(log_open_file_refuses_non_files),
	  TEST_ENTRY(now_is_wall_clock),
	  TEST_ENTRY(mono_deadline_carries_into_seconds),
	  TEST_ENTRY(hist_buckets_are_cumulative_upper_bounds))
