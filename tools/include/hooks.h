/*
 * hooks.h - the environment variables that only tests may use.
 *
 * Two variables change what phifs does in ways no production mount may
 * allow: PHIFS_KDF_N makes mkfs protect a passphrase with a weak scrypt
 * cost (so a test suite can make hundreds of filesystems), and
 * PHIFS_FAULT_DIR wraps every region in a fault-injecting backend, and
 * PHIFS_SYSLOG_SOCKET puts a socket of the test's own in place of
 * /dev/log for audit_syslog = local (so that a test runs its own
 * syslog daemon on a machine that has one, or none).  They
 * are read through tool_test_env() alone, which honours them only in a
 * build configured with -Dtest_hooks=true (scripts/test.sh does that).
 * In any other build the variable is ignored, with one warning on stderr
 * so that nobody believes it took effect.
 *
 * The same hooks.c is compiled twice, with PHIFS_TEST_HOOKS 1 and 0, so
 * that the unit tests check both builds whatever the option says.
 */
#ifndef PHIFS_HOOKS_H
#define PHIFS_HOOKS_H

/* 1 if this build honours the test hooks, else 0. */
int tool_test_hooks(void);

/*
 * getenv(name) for one of the test hooks ("PHIFS_KDF_N",
 * "PHIFS_FAULT_DIR", "PHIFS_SYSLOG_SOCKET") in a build with test hooks; NULL in a build without
 * them, after a warning on stderr the first time a set variable is
 * ignored.  Any other name is a programming error (assert).
 */
const char *tool_test_env(const char *name);

#endif
