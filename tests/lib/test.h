/*
 * test.h - a small TAP harness for phifs unit tests.
 *
 *	TEST(sizes_parse)
 *	{
 *		uint64_t v;
 *
 *		ASSERT_OK(phi_parse_size("1M", &v));
 *		ASSERT_EQ(v, 1u << 20);
 *	}
 *
 *	TEST_MAIN(
 *		TEST_ENTRY(sizes_parse),
 *	)
 *
 * Cases are static functions listed once in TEST_MAIN, in the order they
 * run: a case written but not listed breaks the build (-Wunused-function)
 * instead of silently never running.  Output is TAP: "1..N", then one
 * "ok K - name" / "not ok K - name" / "ok K - name # SKIP why" per case,
 * diagnostics as "# " lines.  The program exits 0 when nothing failed,
 * 1 otherwise.  Arguments, if any, name the cases to run.
 *
 * A failed ASSERT_* prints file:line, the expressions and both values, and
 * longjmps back to the runner, so helpers may assert too; whatever the
 * case allocated up to then is not freed.  test_tmpdir() gives the case a
 * private directory under $TMPDIR (or /tmp), removed with its contents
 * when the case ends, however it ends.
 *
 * Everything here is static but the running case's state, which the one
 * .c file with TEST_MAIN defines: a program may be several .c files, and
 * helpers in any of them may assert (build with _GNU_SOURCE, or
 * _XOPEN_SOURCE >= 500, for nftw()).
 */
#ifndef PHI_TEST_H
#define PHI_TEST_H

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TEST(name) static void test_case_##name(void)
#define TEST_ENTRY(name) { #name, test_case_##name }
#define TEST_MAIN(...)							\
	struct test_now test_now_;					\
	int main(int argc, char **argv)					\
	{								\
		static const struct test_case cases[] = { __VA_ARGS__ };\
									\
		return test_main_(cases, sizeof(cases) / sizeof(cases[0]),\
				  argc, argv);				\
	}

/* An integer or pointer, widened so that any two compare exactly:
 * a negative number never equals an unsigned one, whatever the types. */
struct test_val {
	char kind;		/* 'i' signed, 'u' unsigned, 'p' pointer */
	bool neg;
	unsigned long long bits;
};

static inline struct test_val test_val_i_(long long v)
{
	return (struct test_val){ 'i', v < 0, (unsigned long long)v };
}

static inline struct test_val test_val_u_(unsigned long long v)
{
	return (struct test_val){ 'u', false, v };
}

static inline struct test_val test_val_p_(const volatile void *p)
{
	return (struct test_val){ 'p', false, (uintptr_t)p };
}

#define TEST_VAL_(x) _Generic((x),					\
	char: test_val_i_, signed char: test_val_i_, short: test_val_i_, \
	int: test_val_i_, long: test_val_i_, long long: test_val_i_,	\
	_Bool: test_val_u_, unsigned char: test_val_u_,			\
	unsigned short: test_val_u_, unsigned int: test_val_u_,		\
	unsigned long: test_val_u_, unsigned long long: test_val_u_,	\
	default: test_val_p_)(x)

#define ASSERT_EQ(a, b) test_assert_cmp_(TEST_VAL_(a), TEST_VAL_(b), true, \
	"ASSERT_EQ", #a, #b, __FILE__, __LINE__)
#define ASSERT_NE(a, b) test_assert_cmp_(TEST_VAL_(a), TEST_VAL_(b), false, \
	"ASSERT_NE", #a, #b, __FILE__, __LINE__)
#define ASSERT_OK(rc) test_assert_cmp_(TEST_VAL_(rc), test_val_i_(0), true, \
	"ASSERT_OK", #rc, NULL, __FILE__, __LINE__)
#define ASSERT_ERR(rc, expected) test_assert_cmp_(TEST_VAL_(rc),	\
	TEST_VAL_(expected), true, "ASSERT_ERR", #rc, #expected,	\
	__FILE__, __LINE__)
#define ASSERT_TRUE(x) test_assert_true_(!!(x), #x, __FILE__, __LINE__)
#define ASSERT_STREQ(a, b) test_assert_streq_((a), (b), #a, #b,	\
	__FILE__, __LINE__)
#define TEST_SKIP(why) test_skip_(why)
#define test_tmpdir() test_tmpdir_(__FILE__, __LINE__)

enum test_outcome { TEST_PASSED_, TEST_FAILED_, TEST_SKIPPED_ };

/* The running case; the harness is single-threaded.  One per program:
 * TEST_MAIN defines it, so that every file of the program shares it. */
struct test_now {
	jmp_buf jump;
	const char *name;	/* NULL outside a case */
	enum test_outcome outcome;
	char skip[256];
	char tmpdir[4096];	/* "" until test_tmpdir() is called */
};
extern struct test_now test_now_;

__attribute__((format(printf, 1, 2)))
static inline void test_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

__attribute__((noreturn))
static inline void test_end_(enum test_outcome outcome)
{
	if (!test_now_.name)
		abort();	/* asserted outside a case: nowhere to jump */
	test_now_.outcome = outcome;
	longjmp(test_now_.jump, 1);
}

static inline void test_print_val_(const char *expr, struct test_val v)
{
	if (v.kind == 'p')
		test_diag("  %s = %p", expr, (void *)(uintptr_t)v.bits);
	else if (v.neg)
		test_diag("  %s = %lld", expr, (long long)v.bits);
	else
		test_diag("  %s = %llu", expr, v.bits);
}

static inline void test_assert_cmp_(struct test_val a, struct test_val b,
				    bool want_equal, const char *macro,
				    const char *ea, const char *eb,
				    const char *file, int line)
{
	bool equal = a.neg == b.neg && a.bits == b.bits;

	if (equal == want_equal)
		return;
	if (eb) {
		test_diag("%s:%d: %s(%s, %s) failed", file, line, macro, ea,
			  eb);
		test_print_val_(ea, a);
		test_print_val_(eb, b);
	} else {
		/* ASSERT_OK: the other side is an implied 0 */
		test_diag("%s:%d: %s(%s) failed", file, line, macro, ea);
		test_print_val_(ea, a);
	}
	test_end_(TEST_FAILED_);
}

static inline void test_assert_true_(bool ok, const char *expr,
				     const char *file, int line)
{
	if (ok)
		return;
	test_diag("%s:%d: ASSERT_TRUE(%s) failed", file, line, expr);
	test_end_(TEST_FAILED_);
}

/* Strings go out quoted with newlines escaped, to keep TAP lines whole. */
static inline void test_print_str_(const char *expr, const char *s)
{
	fputs("#   ", stdout);
	fputs(expr, stdout);
	if (!s) {
		fputs(" = NULL\n", stdout);
		return;
	}
	fputs(" = \"", stdout);
	for (; *s; s++) {
		if (*s == '\n')
			fputs("\\n", stdout);
		else
			fputc(*s, stdout);
	}
	fputs("\"\n", stdout);
}

static inline void test_assert_streq_(const char *a, const char *b,
				      const char *ea, const char *eb,
				      const char *file, int line)
{
	if (a && b && strcmp(a, b) == 0)
		return;
	if (!a && !b)
		return;
	test_diag("%s:%d: ASSERT_STREQ(%s, %s) failed", file, line, ea, eb);
	test_print_str_(ea, a);
	test_print_str_(eb, b);
	test_end_(TEST_FAILED_);
}

__attribute__((noreturn))
static inline void test_skip_(const char *why)
{
	snprintf(test_now_.skip, sizeof(test_now_.skip), "%s", why);
	test_end_(TEST_SKIPPED_);
}

static inline const char *test_tmpdir_(const char *file, int line)
{
	const char *base = getenv("TMPDIR");
	int n;

	if (test_now_.tmpdir[0])
		return test_now_.tmpdir;
	if (!base || !base[0])
		base = "/tmp";
	n = snprintf(test_now_.tmpdir, sizeof(test_now_.tmpdir),
		     "%s/test-%s.XXXXXX", base, test_now_.name);
	if (n < 0 || (size_t)n >= sizeof(test_now_.tmpdir) ||
	    !mkdtemp(test_now_.tmpdir)) {
		test_diag("%s:%d: cannot make a directory under %s: %s",
			  file, line, base, strerror(errno));
		test_now_.tmpdir[0] = '\0';
		test_end_(TEST_FAILED_);
	}
	return test_now_.tmpdir;
}

static inline int test_rm_one_(const char *path, const struct stat *st,
			       int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) < 0)
		test_diag("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

static inline void test_rm_tmpdir_(void)
{
	if (!test_now_.tmpdir[0])
		return;
	nftw(test_now_.tmpdir, test_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
	test_now_.tmpdir[0] = '\0';
}

/* Runs one case; returns false if it failed. */
static inline bool test_run_one_(const struct test_case *c, size_t k)
{
	test_now_.name = c->name;
	test_now_.outcome = TEST_PASSED_;
	test_now_.skip[0] = '\0';
	fflush(stdout);
	if (setjmp(test_now_.jump) == 0)
		c->fn();
	test_rm_tmpdir_();
	test_now_.name = NULL;
	if (test_now_.outcome == TEST_SKIPPED_)
		printf("ok %zu - %s # SKIP %s\n", k, c->name, test_now_.skip);
	else
		printf("%s %zu - %s\n", test_now_.outcome == TEST_PASSED_ ?
		       "ok" : "not ok", k, c->name);
	fflush(stdout);
	return test_now_.outcome != TEST_FAILED_;
}

static inline bool test_selected_(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

static inline int test_main_(const struct test_case *cases, size_t n,
			     int argc, char **argv)
{
	size_t planned = 0, k = 0;
	bool all_ok = true;

	for (size_t i = 0; i < n; i++)
		planned += test_selected_(cases[i].name, argc, argv);
	printf("1..%zu\n", planned);
	for (size_t i = 0; i < n; i++)
		if (test_selected_(cases[i].name, argc, argv))
			all_ok &= test_run_one_(&cases[i], ++k);
	return all_ok ? 0 : 1;
}

#endif
