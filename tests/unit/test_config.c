/*
 * test_config.c - phi_config_load() and phi_parse_size(), through
 * config.h only.  Every rejected file is checked for the return code, the
 * exact "FILE:LINE: KEY: message" text and a fully released config.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "phi.h"
#include "test.h"

/* Two lines: the smallest file that loads. */
#define FS "[filesystem]\ncache_dir = /var/cache/phifs\n"

#define BAD_SIZE "(use a number with K, M, G or T)"
#define BAD_BLOCK "must be a power of two from 4K to 16M"
#define BAD_BOOL "(use true/false, yes/no, on/off or 1/0)"
#define BAD_NAME "bad region name (use 1 to 64 of A-Z a-z 0-9 _ . -)"

static char ini_path[4200];

/* Write text to phifs.ini in the case's directory; returns its path. */
static const char *write_ini(const char *text)
{
	FILE *f;

	snprintf(ini_path, sizeof(ini_path), "%s/phifs.ini", test_tmpdir());
	f = fopen(ini_path, "w");
	ASSERT_TRUE(f != NULL);
	ASSERT_TRUE(fputs(text, f) >= 0);
	ASSERT_OK(fclose(f));
	return ini_path;
}

static void load_ok(const char *text, struct phi_config *cfg)
{
	char err[512] = "";
	int rc = phi_config_load(cfg, write_ini(text), err, sizeof(err));

	ASSERT_STREQ(err, "");
	ASSERT_OK(rc);
}

static void assert_released(const struct phi_config *cfg)
{
	ASSERT_TRUE(cfg->path == NULL);
	ASSERT_TRUE(cfg->cache_dir == NULL);
	ASSERT_EQ(cfg->nregions, 0);
}

/* Load path expecting want_rc and the message path + tail. */
static void expect_path_error(const char *path, int want_rc, const char *tail)
{
	struct phi_config cfg;
	char err[512], want[4800];

	ASSERT_ERR(phi_config_load(&cfg, path, err, sizeof(err)), want_rc);
	snprintf(want, sizeof(want), "%s%s", path, tail);
	ASSERT_STREQ(err, want);
	assert_released(&cfg);
}

static void expect_error(const char *text, const char *tail)
{
	expect_path_error(write_ini(text), PHI_ECONFIG, tail);
}

TEST(minimal_file_gets_defaults)
{
	struct phi_config cfg;

	load_ok(FS, &cfg);
	ASSERT_STREQ(cfg.path, ini_path);
	ASSERT_STREQ(cfg.cache_dir, "/var/cache/phifs");
	ASSERT_EQ(cfg.cache_size, 20ULL << 30);
	ASSERT_EQ(cfg.block_size, 1u << 20);
	ASSERT_TRUE(cfg.key_file == NULL);
	ASSERT_EQ(cfg.seal_delay_ms, 5000);
	ASSERT_EQ(cfg.seal_quiet_ms, 100);
	ASSERT_EQ(cfg.uploaders, 4);
	ASSERT_EQ(cfg.seal_threads, 0);
	ASSERT_EQ(cfg.pack_size, 4u << 20);
	ASSERT_EQ(cfg.dirty_limit, 0);
	ASSERT_EQ(cfg.metadata_interval_ms, 30000);
	ASSERT_EQ(cfg.retention_ms, 30ULL * 86400 * 1000);
	ASSERT_EQ(cfg.nregions, 0);
	phi_config_release(&cfg);
	assert_released(&cfg);
}

TEST(sealing_keys_load)
{
	struct phi_config cfg;

	load_ok(FS "key_file = /etc/phifs//clinic.key/\n"
		"seal_delay = 500ms\n"
		"seal_quiet = 0\n"
		"uploaders = 64\n"
		"seal_threads = 16\n"
		"pack_size = 64K\n"
		"dirty_limit = 1G\n", &cfg);
	ASSERT_STREQ(cfg.key_file, "/etc/phifs//clinic.key");
	ASSERT_EQ(cfg.seal_delay_ms, 500);
	ASSERT_EQ(cfg.seal_quiet_ms, 0);
	ASSERT_EQ(cfg.uploaders, 64);
	ASSERT_EQ(cfg.seal_threads, 16);
	ASSERT_EQ(cfg.pack_size, 64u << 10);
	ASSERT_EQ(cfg.dirty_limit, 1ULL << 30);
	phi_config_release(&cfg);
	assert_released(&cfg);
	ASSERT_TRUE(cfg.key_file == NULL);
	load_ok(FS "uploaders = 1\npack_size = 64MiB\ndirty_limit = 0\n",
		&cfg);
	ASSERT_EQ(cfg.uploaders, 1);
	ASSERT_EQ(cfg.pack_size, 64u << 20);
	ASSERT_EQ(cfg.dirty_limit, 0);
	phi_config_release(&cfg);
}

TEST(seal_delay_spellings)
{
	static const struct {
		const char *text;
		unsigned ms;
	} cases[] = {
		{ "5", 5000 }, { "5s", 5000 }, { "500ms", 500 },
		{ "2m", 120000 }, { "1h", 3600000 }, { "1ms", 1 },
		{ "3S", 3000 }, { "250MS", 250 }, { "3600s", 3600000 },
	};
	struct phi_config cfg;
	char text[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), FS "seal_delay = %s\n",
			 cases[i].text);
		load_ok(text, &cfg);
		ASSERT_EQ(cfg.seal_delay_ms, cases[i].ms);
		phi_config_release(&cfg);
	}
}

TEST(full_file_loads)
{
	struct phi_config cfg;
	const struct backend_region *a, *b;

	load_ok("; phifs configuration\n"
		"[filesystem]\n"
		"cache_dir = /srv/cache/\n"
		"cache_size = 64G\n"
		"block_size = 4M\n"
		"\n"
		"[region local]\n"
		"url = dir:/srv/objects\n"
		"[region s3.eu-1]\n"
		"url = s3://phifs-bucket/clinic\n"
		"endpoint = https://s3.example.com\n"
		"region = eu-west-1\n"
		"path_style = yes\n"
		"allow_http = off\n"
		"credentials_file = /etc/phifs/s3.key\n"
		"ca_file = /etc/phifs/ca.pem\n"
		"gc_credentials_file = /etc/phifs/gc.key\n", &cfg);
	ASSERT_STREQ(cfg.cache_dir, "/srv/cache");
	ASSERT_EQ(cfg.cache_size, 64ULL << 30);
	ASSERT_EQ(cfg.block_size, 4u << 20);
	ASSERT_EQ(cfg.nregions, 2);
	a = &cfg.regions[0];
	b = &cfg.regions[1];
	ASSERT_STREQ(a->name, "local");
	ASSERT_EQ(cfg.region_line[0], 7);
	ASSERT_STREQ(a->url, "dir:/srv/objects");
	ASSERT_TRUE(a->endpoint == NULL && a->credentials_file == NULL);
	ASSERT_EQ(a->path_style, -1);
	ASSERT_EQ(a->allow_http, 0);
	ASSERT_STREQ(b->name, "s3.eu-1");
	ASSERT_EQ(cfg.region_line[1], 9);
	ASSERT_STREQ(b->url, "s3://phifs-bucket/clinic");
	ASSERT_STREQ(b->endpoint, "https://s3.example.com");
	ASSERT_STREQ(b->region, "eu-west-1");
	ASSERT_EQ(b->path_style, 1);
	ASSERT_EQ(b->allow_http, 0);
	ASSERT_STREQ(b->credentials_file, "/etc/phifs/s3.key");
	ASSERT_STREQ(b->ca_file, "/etc/phifs/ca.pem");
	ASSERT_STREQ(b->gc_credentials_file, "/etc/phifs/gc.key");
	phi_config_release(&cfg);
}

TEST(layout_indent_comments_crlf_bom)
{
	struct phi_config cfg;

	/* Indented keys must not become continuations of the previous
	 * value, and a header behind a byte order mark still counts. */
	load_ok("\xEF\xBB\xBF[filesystem]   ; the one filesystem\r\n"
		"\tcache_dir = /c ; inline comment\r\n"
		"    # a comment\r\n"
		"    cache_size = 1G\r\n"
		"[region a]\r\n"
		"  url = dir:/o\r\n"
		"  allow_http = TRUE\r\n", &cfg);
	ASSERT_STREQ(cfg.cache_dir, "/c");
	ASSERT_EQ(cfg.cache_size, 1ULL << 30);
	ASSERT_EQ(cfg.nregions, 1);
	ASSERT_STREQ(cfg.regions[0].url, "dir:/o");
	ASSERT_EQ(cfg.regions[0].allow_http, 1);
	phi_config_release(&cfg);
}

TEST(cache_dir_trailing_slashes)
{
	static const char *const cases[][2] = {
		{ "/srv/cache///", "/srv/cache" }, { "/", "/" },
		{ "///", "/" }, { "/a/b", "/a/b" },
	};
	struct phi_config cfg;
	char text[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[filesystem]\ncache_dir = %s\n",
			 cases[i][0]);
		load_ok(text, &cfg);
		ASSERT_STREQ(cfg.cache_dir, cases[i][1]);
		phi_config_release(&cfg);
	}
}

TEST(bool_spellings)
{
	static const char *const words[][2] = {
		{ "true", "false" }, { "yes", "no" }, { "on", "off" },
		{ "1", "0" }, { "Yes", "OFF" },
	};
	struct phi_config cfg;
	char text[256];

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		snprintf(text, sizeof(text), FS "[region r]\nurl = dir:/o\n"
			 "path_style = %s\nallow_http = %s\n", words[i][0],
			 words[i][1]);
		load_ok(text, &cfg);
		ASSERT_EQ(cfg.regions[0].path_style, 1);
		ASSERT_EQ(cfg.regions[0].allow_http, 0);
		phi_config_release(&cfg);
	}
}

TEST(block_size_limits_accepted)
{
	struct phi_config cfg;

	load_ok(FS "block_size = 4K\ncache_size = 64K\n", &cfg);
	ASSERT_EQ(cfg.block_size, 4096);
	ASSERT_EQ(cfg.cache_size, 65536);
	phi_config_release(&cfg);
	load_ok(FS "block_size = 16MiB\ncache_size = 256M\n", &cfg);
	ASSERT_EQ(cfg.block_size, 16u << 20);
	phi_config_release(&cfg);
}

TEST(region_name_64_chars)
{
	/* longer than inih's 49-character section buffer */
	static const char name[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"
				   "NOPQRSTUVWXYZ0123456789_.-";
	struct phi_config cfg;
	char text[512];

	ASSERT_EQ(strlen(name), 64);
	snprintf(text, sizeof(text), FS "[region %s]\nurl = dir:/o\n", name);
	load_ok(text, &cfg);
	ASSERT_STREQ(cfg.regions[0].name, name);
	phi_config_release(&cfg);
}

TEST(max_regions_accepted)
{
	struct phi_config cfg;
	char text[4096];
	size_t n = snprintf(text, sizeof(text), FS);

	for (int i = 0; i < PHI_MAX_REGIONS; i++)
		n += snprintf(text + n, sizeof(text) - n,
			      "[region r%d]\nurl = dir:/o/%d\n", i, i);
	load_ok(text, &cfg);
	ASSERT_EQ(cfg.nregions, PHI_MAX_REGIONS);
	ASSERT_STREQ(cfg.regions[15].url, "dir:/o/15");
	phi_config_release(&cfg);
}

TEST(missing_file)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/absent.ini", test_tmpdir());
	expect_path_error(path, -ENOENT,
			  ": cannot read: No such file or directory");
}

TEST(file_is_a_directory)
{
	expect_path_error(test_tmpdir(), -EISDIR, ": cannot read: Is a directory");
}

/* Neither may hang or spin: a FIFO blocked the open until a writer came,
 * and /dev/zero fed the reader NUL bytes for ever. */
TEST(file_not_regular)
{
	char fifo[4200];

	expect_path_error("/dev/null", PHI_ECONFIG,
			  ": not a regular file (it is a character device)");
	expect_path_error("/dev/zero", PHI_ECONFIG,
			  ": not a regular file (it is a character device)");
	snprintf(fifo, sizeof(fifo), "%s/fifo.ini", test_tmpdir());
	ASSERT_OK(mkfifo(fifo, 0600));
	alarm(30);	/* a hang fails the case instead of the whole run */
	expect_path_error(fifo, PHI_ECONFIG,
			  ": not a regular file (it is a FIFO)");
	alarm(0);
}

/* A NUL byte cut the value ("5\0s" was read as "5") and everything after
 * it on the line. */
TEST(nul_byte_refused)
{
	static const char text[] = FS "seal_delay = 5\0s\n";
	FILE *f;

	snprintf(ini_path, sizeof(ini_path), "%s/phifs.ini", test_tmpdir());
	f = fopen(ini_path, "w");
	ASSERT_TRUE(f != NULL);
	ASSERT_EQ(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	ASSERT_OK(fclose(f));
	expect_path_error(ini_path, PHI_ECONFIG, ":3: NUL byte in the line "
			  "(a configuration is a text file)");
}

/* Whether the file sets block_size: only then may it differ from the
 * filesystem's (tool_check_block_size()). */
TEST(block_size_line_recorded)
{
	struct phi_config cfg;

	load_ok(FS, &cfg);
	ASSERT_EQ(cfg.block_size_line, 0);
	ASSERT_EQ(cfg.block_size, 1u << 20);
	phi_config_release(&cfg);
	load_ok(FS "cache_size = 1G\nblock_size = 64K\n", &cfg);
	ASSERT_EQ(cfg.block_size_line, 4);
	ASSERT_EQ(cfg.block_size, 64u << 10);
	phi_config_release(&cfg);
}

TEST(format_size)
{
	static const struct {
		uint64_t v;
		const char *want;
	} cases[] = {
		{ 0, "0" }, { 4097, "4097" }, { 4096, "4K" }, { 65536, "64K" },
		{ 1536 << 10, "1536K" }, { 1 << 20, "1M" },
		{ 20ULL << 30, "20G" }, { 3ULL << 40, "3T" },
		{ 2048ULL << 40, "2048T" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		phi_format_size(cases[i].v, buf, sizeof(buf));
		ASSERT_STREQ(buf, cases[i].want);
	}
}

TEST(unreadable_file)
{
	const char *path = write_ini(FS);

	if (geteuid() == 0)
		TEST_SKIP("root reads any file");
	ASSERT_OK(chmod(path, 0));
	expect_path_error(path, -EACCES, ": cannot read: Permission denied");
}

TEST(syntax_error)
{
	expect_error("[filesystem]\ncache_dir /var/cache\n",
		     ":2: syntax error (expected KEY = VALUE or [SECTION])");
}

TEST(syntax_error_before_key_error)
{
	/* inih finds the syntax error, the handler the later bad key */
	expect_error("[filesystem]\nnonsense\ncache_size = x\n",
		     ":2: syntax error (expected KEY = VALUE or [SECTION])");
}

TEST(first_error_wins)
{
	expect_error("[filesystem]\ncache_size = x\nblock_size = y\nfoo\n",
		     ":2: cache_size: bad size 'x' " BAD_SIZE);
}

TEST(header_without_bracket)
{
	expect_error("[filesystem\ncache_dir = /c\n",
		     ":1: section header has no ']'");
}

TEST(header_with_trailing_text)
{
	expect_error("[filesystem] cache\ncache_dir = /c\n",
		     ":1: unexpected text after ']'");
}

TEST(unknown_section)
{
	expect_error(FS "\n[cache]\nsize = 1G\n",
		     ":4: [cache]: unknown section (use [filesystem], "
		     "[region NAME] or [retention])");
	expect_error("[Filesystem]\ncache_dir = /c\n",
		     ":1: [Filesystem]: unknown section (use [filesystem], "
		     "[region NAME] or [retention])");
}

TEST(empty_section_is_still_checked)
{
	expect_error(FS "[bogus]\n", ":3: [bogus]: unknown section (use "
		     "[filesystem], [region NAME] or [retention])");
	expect_error(FS "[region a]\n", ":3: [region a]: url is required");
}

TEST(unknown_key)
{
	expect_error(FS "cache_dri = /x\n", ":3: cache_dri: unknown key");
	expect_error(FS "Cache_Size = 1G\n", ":3: Cache_Size: unknown key");
	expect_error(FS "url = dir:/o\n", ":3: url: unknown key");
	expect_error(FS "[region a]\nurl = dir:/o\ncache_size = 1G\n",
		     ":5: cache_size: unknown key");
}

TEST(key_outside_section)
{
	expect_error("cache_dir = /c\n" FS,
		     ":1: cache_dir: not in a section (put it under "
		     "[filesystem] or [region NAME])");
}

TEST(missing_key_name)
{
	expect_error(FS "= 1G\n", ":3: missing key before '='");
}

TEST(duplicate_key)
{
	expect_error(FS "cache_size = 1G\n\ncache_size = 2G\n",
		     ":5: cache_size: duplicate key (first set on line 3)");
	expect_error(FS "[region a]\nurl = dir:/a\nurl = dir:/b\n",
		     ":5: url: duplicate key (first set on line 4)");
}

TEST(same_key_in_two_regions)
{
	struct phi_config cfg;

	load_ok(FS "[region a]\nurl = dir:/a\n[region b]\nurl = dir:/b\n",
		&cfg);
	ASSERT_STREQ(cfg.regions[1].url, "dir:/b");
	phi_config_release(&cfg);
}

TEST(duplicate_region)
{
	expect_error(FS "[region a]\nurl = dir:/a\n[region a]\nurl = dir:/b\n",
		     ":5: [region a]: duplicate region (first on line 3)");
}

TEST(duplicate_filesystem)
{
	expect_error(FS "[filesystem]\ncache_size = 1G\n",
		     ":3: [filesystem]: duplicate section (first on line 1)");
}

TEST(bad_size)
{
	expect_error(FS "cache_size = x\n",
		     ":3: cache_size: bad size 'x' " BAD_SIZE);
	expect_error(FS "cache_size = 1.5G\n",
		     ":3: cache_size: bad size '1.5G' " BAD_SIZE);
	expect_error(FS "block_size = -4K\n",
		     ":3: block_size: bad size '-4K' " BAD_SIZE);
}

TEST(size_zero)
{
	expect_error(FS "cache_size = 0\n",
		     ":3: cache_size: size must not be 0");
	expect_error(FS "block_size = 0K\n",
		     ":3: block_size: size must not be 0");
}

TEST(block_size_rules)
{
	expect_error(FS "block_size = 12K\n", ":3: block_size: " BAD_BLOCK);
	expect_error(FS "block_size = 2K\n", ":3: block_size: " BAD_BLOCK);
	expect_error(FS "block_size = 32M\n", ":3: block_size: " BAD_BLOCK);
	expect_error(FS "block_size = 8G\n", ":3: block_size: " BAD_BLOCK);
	expect_error(FS "block_size = 4097\n", ":3: block_size: " BAD_BLOCK);
}

TEST(cache_size_below_16_blocks)
{
	expect_error(FS "cache_size = 8M\n", ":3: cache_size: must be at "
		     "least 16 * block_size (16M)");
	expect_error(FS "cache_size = 1G\nblock_size = 128M\n",
		     ":4: block_size: " BAD_BLOCK);
	expect_error(FS "cache_size = 63M\n\nblock_size = 4M\n",
		     ":3: cache_size: must be at least 16 * block_size (64M)");
}

TEST(missing_cache_dir)
{
	expect_error("[filesystem]\ncache_size = 1G\n",
		     ": [filesystem]: cache_dir is required");
}

TEST(missing_filesystem_section)
{
	expect_error("[region a]\nurl = dir:/o\n",
		     ": [filesystem]: section is missing");
	expect_error("", ": [filesystem]: section is missing");
	expect_error("; only a comment\n", ": [filesystem]: section is missing");
}

TEST(relative_paths)
{
	expect_error("[filesystem]\ncache_dir = var/cache\n",
		     ":2: cache_dir: must be an absolute path");
	expect_error(FS "[region a]\nurl = dir:/o\n"
		     "credentials_file = s3.key\n",
		     ":5: credentials_file: must be an absolute path");
}

TEST(bad_region_name)
{
	expect_error(FS "[region a/b]\n", ":3: [region a/b]: " BAD_NAME);
	expect_error(FS "[region  a]\n", ":3: [region  a]: " BAD_NAME);
	expect_error(FS "[region a b]\n", ":3: [region a b]: " BAD_NAME);
	expect_error(FS "[region é]\n", ":3: [region é]: " BAD_NAME);
	expect_error(FS "[region]\n",
		     ":3: [region]: a region needs a name ([region NAME])");
	expect_error(FS "[region ]\n",
		     ":3: [region ]: a region needs a name ([region NAME])");
	expect_error(FS "[regions]\n", ":3: [regions]: unknown section "
		     "(use [filesystem], [region NAME] or [retention])");
}

TEST(region_name_65_chars)
{
	char text[512], want[512];
	char name[66];

	memset(name, 'x', 65);
	name[65] = '\0';
	snprintf(text, sizeof(text), FS "[region %s]\nurl = dir:/o\n", name);
	snprintf(want, sizeof(want), ":3: [region %s]: " BAD_NAME, name);
	expect_error(text, want);
}

TEST(region_without_url)
{
	expect_error(FS "[region a]\nurl = dir:/a\n\n[region b]\n"
		     "endpoint = https://s3.example.com\n",
		     ":6: [region b]: url is required");
}

TEST(bad_region_url)
{
	expect_error(FS "[region a]\nurl = ftp://host/x\n", ":4: url: unknown "
		     "scheme (use dir:/PATH or s3://BUCKET/PREFIX)");
	expect_error(FS "[region a]\nurl = dir:objects\n", ":4: url: dir: "
		     "needs an absolute path (dir:/srv/phifs/region-a)");
	expect_error(FS "[region a]\nurl = s3://Bucket\n", ":4: url: bad "
		     "bucket name (3-63 characters: lowercase letters, "
		     "digits, '.' and '-')");
}

TEST(url_secret_not_echoed)
{
	expect_error(FS "[region a]\nurl = s3://AKIA:hunter2@bucket/p\n",
		     ":4: url: credentials do not belong in the url; use "
		     "credentials_file");
}

TEST(bad_bool)
{
	expect_error(FS "[region a]\nurl = dir:/o\nallow_http = maybe\n",
		     ":5: allow_http: bad boolean 'maybe' " BAD_BOOL);
	expect_error(FS "[region a]\nurl = dir:/o\npath_style = 2\n",
		     ":5: path_style: bad boolean '2' " BAD_BOOL);
}

TEST(too_many_regions)
{
	char text[4096];
	size_t n = snprintf(text, sizeof(text), FS);

	for (int i = 0; i <= PHI_MAX_REGIONS; i++)
		n += snprintf(text + n, sizeof(text) - n,
			      "[region r%d]\nurl = dir:/o/%d\n", i, i);
	/* the 17th header is on line 3 + 2 * 16 */
	expect_error(text, ":35: [region r16]: too many regions (at most 16)");
}

TEST(empty_value)
{
	expect_error(FS "cache_size =\n", ":3: cache_size: empty value");
	expect_error(FS "cache_size = ; nothing\n",
		     ":3: cache_size: empty value");
	expect_error(FS "[region a]\nurl = \n", ":4: url: empty value");
}

TEST(line_too_long)
{
	char text[1024], value[400];

	memset(value, 'a', 300);
	value[300] = '\0';
	snprintf(text, sizeof(text), FS "endpoint = /%s\ncache_size = x\n",
		 value);
	expect_error(text, ":3: line too long (at most 197 characters)");
}

TEST(line_numbers_count_every_line)
{
	expect_error("# header comment\n\n[filesystem]\n; note\n\n"
		     "  cache_dir = /c\r\n\r\n\tblock_size = 3\n",
		     ":8: block_size: " BAD_BLOCK);
}

TEST(key_file_must_be_absolute)
{
	expect_error(FS "key_file = clinic.key\n",
		     ":3: key_file: must be an absolute path");
	expect_error(FS "key_file =\n", ":3: key_file: empty value");
}

TEST(bad_seal_delay)
{
	static const char *const bad[] = {
		"x", "1.5s", "-1s", "5 s", "5sec", "1d", "s", "ms5",
		"99999999999999999999ms",
	};
	char text[256], want[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), FS "seal_delay = %s\n", bad[i]);
		snprintf(want, sizeof(want), ":3: seal_delay: bad duration "
			 "'%s' (use a number with ms, s, m or h)", bad[i]);
		expect_error(text, want);
	}
	expect_error(FS "seal_delay = 0\n",
		     ":3: seal_delay: must be from 1ms to 1h");
	expect_error(FS "seal_delay = 0ms\n",
		     ":3: seal_delay: must be from 1ms to 1h");
	expect_error(FS "seal_delay = 61m\n",
		     ":3: seal_delay: must be from 1ms to 1h");
	expect_error(FS "seal_delay = 3600001ms\n",
		     ":3: seal_delay: must be from 1ms to 1h");
}

TEST(bad_seal_quiet)
{
	expect_error(FS "seal_quiet = soon\n", ":3: seal_quiet: bad duration "
		     "'soon' (use a number with ms, s, m or h)");
	expect_error(FS "seal_quiet = 61s\n",
		     ":3: seal_quiet: must be from 0 to 1m");
	expect_error(FS "seal_quiet = 60001ms\n",
		     ":3: seal_quiet: must be from 0 to 1m");
}

TEST(bad_uploaders)
{
	expect_error(FS "uploaders = 0\n",
		     ":3: uploaders: must be from 1 to 64");
	expect_error(FS "uploaders = 65\n",
		     ":3: uploaders: must be from 1 to 64");
	expect_error(FS "seal_threads = 17\n",
		     ":3: seal_threads: must be from 0 (one per core) to 16");
	expect_error(FS "seal_threads = -1\n",
		     ":3: seal_threads: bad number '-1'");
	expect_error(FS "uploaders = four\n",
		     ":3: uploaders: bad number 'four'");
	expect_error(FS "uploaders = -1\n", ":3: uploaders: bad number '-1'");
	expect_error(FS "uploaders = 4.0\n",
		     ":3: uploaders: bad number '4.0'");
	expect_error(FS "uploaders = 99999999999\n",
		     ":3: uploaders: bad number '99999999999'");
}

TEST(bad_pack_size)
{
	expect_error(FS "pack_size = 32K\n",
		     ":3: pack_size: must be from 64K to 64M");
	expect_error(FS "pack_size = 65M\n",
		     ":3: pack_size: must be from 64K to 64M");
	expect_error(FS "pack_size = 0\n", ":3: pack_size: size must not be 0");
	expect_error(FS "pack_size = big\n",
		     ":3: pack_size: bad size 'big' " BAD_SIZE);
}

TEST(bad_dirty_limit)
{
	expect_error(FS "dirty_limit = 512K\n", ":3: dirty_limit: must be 0 "
		     "(cache_size/4) or at least block_size");
	expect_error(FS "cache_size = 1G\ndirty_limit = 1G\n",
		     ":4: dirty_limit: must be below cache_size");
	expect_error(FS "dirty_limit = x\n",
		     ":3: dirty_limit: bad size 'x' " BAD_SIZE);
}

TEST(error_is_one_line_and_fits)
{
	struct phi_config cfg;
	char err[24];

	ASSERT_ERR(phi_config_load(&cfg, write_ini(FS "cache_size = x\n"),
				   err, sizeof(err)), PHI_ECONFIG);
	ASSERT_EQ(strlen(err), sizeof(err) - 1);
	ASSERT_TRUE(strchr(err, '\n') == NULL);
	ASSERT_ERR(phi_config_load(&cfg, ini_path, NULL, 0), PHI_ECONFIG);
	assert_released(&cfg);
}

/* Capture what phi_config_print_help() writes to stdout. */
static void capture_help(char *buf, size_t len)
{
	char path[4200];
	int saved, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/help.txt", test_tmpdir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(fd >= 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	ASSERT_TRUE(saved >= 0);
	ASSERT_TRUE(dup2(fd, STDOUT_FILENO) >= 0);
	phi_config_print_help();
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	n = pread(fd, buf, len - 1, 0);
	close(fd);
	ASSERT_TRUE(n > 0);
	buf[n] = '\0';
}

TEST(help_lists_every_key)
{
	static const char *const want[] = {
		"[filesystem]", "[region NAME]", "cache_dir", "cache_size",
		"20G", "block_size", "1M", "url", "endpoint", "region",
		"path_style", "allow_http", "credentials_file", "ca_file",
		"gc_credentials_file", "key_file", "seal_delay", "5s",
		"seal_quiet", "100ms",
		"uploaders", "pack_size", "4M", "dirty_limit", "TIME",
		"metadata_interval", "30s", "retention", "30d", "PERIOD",
		"log_file", "metrics_listen", "metrics_allow_remote", "ADDR",
		"mountpoint", NULL,
	};
	char out[8192];

	capture_help(out, sizeof(out));
	for (const char *const *w = want; *w; w++) {
		if (!strstr(out, *w))
			test_diag("help lacks %s", *w);
		ASSERT_TRUE(strstr(out, *w) != NULL);
	}
}

static void expect_size(const char *s, uint64_t want)
{
	uint64_t v = 42;

	if (phi_parse_size(s, &v) != 0)
		test_diag("phi_parse_size(\"%s\") refused", s);
	ASSERT_OK(phi_parse_size(s, &v));
	ASSERT_EQ(v, want);
}

static void expect_bad_size(const char *s)
{
	uint64_t v = 42;

	if (phi_parse_size(s, &v) == 0)
		test_diag("phi_parse_size(\"%s\") accepted", s);
	ASSERT_ERR(phi_parse_size(s, &v), -EINVAL);
	ASSERT_EQ(v, 42);	/* untouched on failure */
}

TEST(parse_size_plain)
{
	expect_size("0", 0);
	expect_size("4096", 4096);
	expect_size("007", 7);
	expect_size("4096B", 4096);
	expect_size("18446744073709551615", UINT64_MAX);
}

TEST(parse_size_suffixes)
{
	expect_size("1K", 1024);
	expect_size("512k", 512 << 10);
	expect_size("1M", 1 << 20);
	expect_size("1MiB", 1 << 20);
	expect_size("1MB", 1 << 20);
	expect_size("1mib", 1 << 20);
	expect_size("20g", 20ULL << 30);
	expect_size("20GB", 20ULL << 30);
	expect_size("2T", 2ULL << 40);
	expect_size("16777215T", 16777215ULL << 40);
}

TEST(parse_size_rejects)
{
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "1 K", "1.5G", "1,5G", "0x10",
		"1X", "1KK", "1MiBx", "1Mi", "1iB", "M", "KiB", "1P", "1E",
		"18446744073709551616", "99999999999999999999",
		"16777216T", "17179869184G", "18014398509481984K",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad_size(bad[i]);
}

static void expect_duration(const char *s, uint64_t want)
{
	uint64_t v = 42;

	if (phi_parse_duration(s, &v) != 0)
		test_diag("phi_parse_duration(\"%s\") refused", s);
	ASSERT_OK(phi_parse_duration(s, &v));
	ASSERT_EQ(v, want);
}

TEST(parse_duration)
{
	static const char *const bad[] = {
		"", " 1", "1 ", "+1", "-1", "1.5", "1x", "1mss", "h", "1sm",
		"18446744073709551616", "18446744073709552s",
	};
	uint64_t v = 42;

	expect_duration("0", 0);
	expect_duration("7", 7000);
	expect_duration("7s", 7000);
	expect_duration("7ms", 7);
	expect_duration("7m", 420000);
	expect_duration("7h", 25200000);
	expect_duration("18446744073709551615ms", UINT64_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (phi_parse_duration(bad[i], &v) == 0)
			test_diag("phi_parse_duration(\"%s\") accepted", bad[i]);
		ASSERT_ERR(phi_parse_duration(bad[i], &v), -EINVAL);
		ASSERT_EQ(v, 42);
	}
}

TEST(metrics_keys_load)
{
	static const char *const loopback[] = {
		"127.0.0.1:9101", "127.8.9.10:1", "localhost:65535",
		"[::1]:9101", "[::ffff:127.0.0.1]:80", NULL,
	};
	struct phi_config cfg;
	struct phi_listen l;
	char text[256];

	load_ok(FS, &cfg);
	ASSERT_TRUE(cfg.metrics_listen == NULL);
	ASSERT_EQ(cfg.metrics_allow_remote, 0);
	phi_config_release(&cfg);
	for (const char *const *a = loopback; *a; a++) {
		snprintf(text, sizeof(text), FS "metrics_listen = %s\n", *a);
		load_ok(text, &cfg);
		ASSERT_STREQ(cfg.metrics_listen, *a);
		ASSERT_TRUE(phi_parse_listen(*a, &l) == NULL);
		ASSERT_EQ(l.loopback, 1);
		phi_config_release(&cfg);
	}
	load_ok(FS "metrics_listen = 0.0.0.0:9101\n"
		"metrics_allow_remote = yes\n", &cfg);
	ASSERT_EQ(cfg.metrics_allow_remote, 1);
	ASSERT_TRUE(phi_parse_listen(cfg.metrics_listen, &l) == NULL);
	ASSERT_EQ(l.loopback, 0);
	ASSERT_EQ(l.addr.ss_family, AF_INET);
	phi_config_release(&cfg);
	load_ok(FS "metrics_allow_remote = true\n"
		"metrics_listen = [2001:db8::1]:9101\n", &cfg);
	ASSERT_TRUE(phi_parse_listen(cfg.metrics_listen, &l) == NULL);
	ASSERT_EQ(l.addr.ss_family, AF_INET6);
	ASSERT_EQ(l.loopback, 0);
	phi_config_release(&cfg);
}

TEST(syslog_keys)
{
	struct phi_config cfg;
	struct phi_syslog d;

	load_ok(FS, &cfg);
	ASSERT_TRUE(cfg.audit_syslog == NULL);
	ASSERT_TRUE(cfg.audit_syslog_ca_file == NULL);
	phi_config_release(&cfg);
	load_ok(FS "audit_syslog = local\n", &cfg);
	ASSERT_STREQ(cfg.audit_syslog, "local");
	phi_config_release(&cfg);
	load_ok(FS "audit_syslog = tls://audit.example.org:6514\n"
		"audit_syslog_ca_file = /etc/phifs/ca.pem\n", &cfg);
	ASSERT_TRUE(phi_parse_syslog(cfg.audit_syslog, &d) == NULL);
	ASSERT_EQ(d.tls, 1);
	ASSERT_STREQ(d.host, "audit.example.org");
	ASSERT_STREQ(d.port, "6514");
	ASSERT_STREQ(cfg.audit_syslog_ca_file, "/etc/phifs/ca.pem");
	ASSERT_TRUE(cfg.audit_syslog_cert_file == NULL);
	phi_config_release(&cfg);
	load_ok(FS "audit_syslog = tls://10.0.0.5:6514\n"
		"audit_syslog_cert_file = /etc/phifs/c.pem\n"
		"audit_syslog_key_file = /etc/phifs/c.key\n", &cfg);
	ASSERT_STREQ(cfg.audit_syslog_cert_file, "/etc/phifs/c.pem");
	ASSERT_STREQ(cfg.audit_syslog_key_file, "/etc/phifs/c.key");
	phi_config_release(&cfg);
	ASSERT_TRUE(phi_parse_syslog("tls://[::1]:514", &d) == NULL);
	ASSERT_STREQ(d.host, "::1");
	ASSERT_TRUE(phi_parse_syslog("local", &d) == NULL);
	ASSERT_EQ(d.tls, 0);
}

#define SYSLOG_PORT "use tls://HOST:PORT with a port from 1 to 65535"

TEST(bad_syslog_keys)
{
	expect_error(FS "audit_syslog = udp://127.0.0.1:514\n",
		     ":3: audit_syslog: bad value 'udp://127.0.0.1:514' (use "
		     "local or tls://HOST:PORT)");
	expect_error(FS "audit_syslog = tls://127.0.0.1\n",
		     ":3: audit_syslog: bad value 'tls://127.0.0.1' ("
		     SYSLOG_PORT ")");
	expect_error(FS "audit_syslog = tls://h:65536\n",
		     ":3: audit_syslog: bad value 'tls://h:65536' ("
		     SYSLOG_PORT ")");
	expect_error(FS "audit_syslog = tls://a b:514\n",
		     ":3: audit_syslog: bad value 'tls://a b:514' (bad host "
		     "(use tls://HOST:PORT, HOST a name or an address, [IPv6] "
		     "in brackets))");
	expect_error(FS "audit_syslog = LOCAL\n",
		     ":3: audit_syslog: bad value 'LOCAL' (use local or "
		     "tls://HOST:PORT)");
	expect_error(FS "audit = off\n\naudit_syslog = local\n",
		     ":5: audit_syslog: forwards the audit trail, but audit "
		     "is off (set audit = on or remove audit_syslog)");
	expect_error(FS "audit_syslog = local\n"
		     "audit_syslog_ca_file = /etc/ca.pem\n",
		     ":4: audit_syslog_ca_file: is for audit_syslog = "
		     "tls://HOST:PORT only");
	expect_error(FS "audit_syslog = tls://h:1\n"
		     "audit_syslog_key_file = /etc/k.pem\n",
		     ":4: audit_syslog_key_file: needs audit_syslog_cert_file "
		     "too");
	expect_error(FS "audit_syslog = tls://h:1\n"
		     "audit_syslog_cert_file = /etc/c.pem\n",
		     ":4: audit_syslog_cert_file: needs audit_syslog_key_file "
		     "too");
	expect_error(FS "audit_syslog_cert_file = /etc/c.pem\n"
		     "audit_syslog_key_file = /etc/k.pem\n",
		     ":3: audit_syslog_cert_file: is for audit_syslog = "
		     "tls://HOST:PORT only");
	expect_error(FS "audit_syslog_ca_file = ca.pem\n",
		     ":3: audit_syslog_ca_file: must be an absolute path");
}

#define NOT_LOOPBACK "is not a loopback address (127.0.0.1, [::1]); set " \
	"metrics_allow_remote = true to let other machines read the metrics"
#define BAD_PORT "bad port (use HOST:PORT with a port from 1 to 65535)"
#define BAD_HOST "bad host (use a numeric address, [IPv6] or localhost, " \
	"then :PORT)"

TEST(bad_metrics_keys)
{
	expect_error(FS "metrics_listen = 192.168.1.5:9101\n",
		     ":3: metrics_listen: '192.168.1.5:9101' " NOT_LOOPBACK);
	expect_error(FS "metrics_listen = 0.0.0.0:9101\n\n"
		     "metrics_allow_remote = false\n",
		     ":3: metrics_listen: '0.0.0.0:9101' " NOT_LOOPBACK);
	expect_error(FS "\nmetrics_listen = [::]:9101\n",
		     ":4: metrics_listen: '[::]:9101' " NOT_LOOPBACK);
	expect_error(FS "metrics_listen = 127.0.0.1:0\n",
		     ":3: metrics_listen: " BAD_PORT);
	expect_error(FS "metrics_listen = 127.0.0.1:65536\n",
		     ":3: metrics_listen: " BAD_PORT);
	expect_error(FS "metrics_listen = 127.0.0.1:http\n",
		     ":3: metrics_listen: " BAD_PORT);
	expect_error(FS "metrics_listen = 127.0.0.1:\n",
		     ":3: metrics_listen: " BAD_PORT);
	expect_error(FS "metrics_listen = 127.0.0.1\n",
		     ":3: metrics_listen: bad address (use HOST:PORT, e.g. "
		     "127.0.0.1:9101)");
	expect_error(FS "metrics_listen = prometheus.example:9101\n",
		     ":3: metrics_listen: " BAD_HOST);
	expect_error(FS "metrics_listen = [::1:9101\n",
		     ":3: metrics_listen: " BAD_HOST);
	expect_error(FS "metrics_listen = [::1x]:9101\n",
		     ":3: metrics_listen: bad IPv6 address (use [ADDRESS]:PORT, "
		     "e.g. [::1]:9101)");
	expect_error(FS "metrics_allow_remote = maybe\n",
		     ":3: metrics_allow_remote: bad boolean 'maybe' " BAD_BOOL);
}

TEST(log_file_loads)
{
	struct phi_config cfg;

	load_ok(FS, &cfg);
	ASSERT_TRUE(cfg.log_file == NULL);
	phi_config_release(&cfg);
	load_ok(FS "log_file = /var/log/phifs/clinic.log\n", &cfg);
	ASSERT_STREQ(cfg.log_file, "/var/log/phifs/clinic.log");
	phi_config_release(&cfg);
	expect_error(FS "log_file = phifs.log\n",
		     ":3: log_file: must be an absolute path");
}

TEST(mountpoint_loads)
{
	struct phi_config cfg;

	load_ok(FS, &cfg);
	ASSERT_TRUE(cfg.mountpoint == NULL);
	phi_config_release(&cfg);
	load_ok(FS "mountpoint = /srv/records/\n", &cfg);
	ASSERT_STREQ(cfg.mountpoint, "/srv/records");
	phi_config_release(&cfg);
	expect_error(FS "mountpoint = records\n",
		     ":3: mountpoint: must be an absolute path");
}

TEST(history_keys_load)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} periods[] = {
		{ "30d", 30ULL * 86400000 }, { "12h", 43200000 },
		{ "90m", 5400000 }, { "45s", 45000 }, { "45", 45000 },
		{ "1s", 1000 }, { "2D", 2ULL * 86400000 },
		{ "36500d", 36500ULL * 86400000 },
	};
	struct phi_config cfg;
	char text[256];

	load_ok(FS "metadata_interval = 2s\nretention = 7d\n", &cfg);
	ASSERT_EQ(cfg.metadata_interval_ms, 2000);
	ASSERT_EQ(cfg.retention_ms, 7ULL * 86400000);
	phi_config_release(&cfg);
	load_ok(FS "metadata_interval = 100ms\n", &cfg);
	ASSERT_EQ(cfg.metadata_interval_ms, 100);
	phi_config_release(&cfg);
	load_ok(FS "metadata_interval = 1h\n", &cfg);
	ASSERT_EQ(cfg.metadata_interval_ms, 3600000);
	phi_config_release(&cfg);
	for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
		snprintf(text, sizeof(text), FS "retention = %s\n",
			 periods[i].text);
		load_ok(text, &cfg);
		ASSERT_EQ(cfg.retention_ms, periods[i].ms);
		phi_config_release(&cfg);
	}
}

TEST(bad_history_keys)
{
	expect_error(FS "metadata_interval = 99ms\n",
		     ":3: metadata_interval: must be from 100ms to 1h");
	expect_error(FS "metadata_interval = 61m\n",
		     ":3: metadata_interval: must be from 100ms to 1h");
	expect_error(FS "metadata_interval = 1d\n",
		     ":3: metadata_interval: bad duration '1d' (use a number "
		     "with ms, s, m or h)");
	expect_error(FS "retention = 0\n",
		     ":3: retention: must be from 1s to 36500d");
	expect_error(FS "retention = 999ms\n",
		     ":3: retention: must be from 1s to 36500d");
	expect_error(FS "retention = 36501d\n",
		     ":3: retention: must be from 1s to 36500d");
	expect_error(FS "retention = 1x\n",
		     ":3: retention: bad period '1x' (use a number with s, m, "
		     "h, d, w or y)");
	expect_error(FS "retention = -1d\n",
		     ":3: retention: bad period '-1d' (use a number with s, "
		     "m, h, d, w or y)");
	expect_error(FS "retention = 1.5d\n",
		     ":3: retention: bad period '1.5d' (use a number with s, "
		     "m, h, d, w or y)");
	expect_error(FS "retention = 101y\n",
		     ":3: retention: must be from 1s to 36500d");
}

TEST(retention_rules)
{
	struct phi_config cfg;

	load_ok(FS "retention = 30d\n[retention]\n/Patients = 10y\n"
		"/Scratch/ = 7d\n/ = 2w\n", &cfg);
	ASSERT_EQ(cfg.nrules, 3);
	ASSERT_STREQ(cfg.rules[0].path, "/Patients");
	ASSERT_EQ(cfg.rules[0].period_ms, 3650ULL * 86400000);
	ASSERT_EQ(cfg.rules[0].line, 5);
	ASSERT_STREQ(cfg.rules[1].path, "/Scratch");
	ASSERT_EQ(cfg.rules[1].period_ms, 7ULL * 86400000);
	ASSERT_STREQ(cfg.rules[2].path, "/");
	ASSERT_EQ(cfg.rules[2].period_ms, 14ULL * 86400000);
	phi_config_release(&cfg);
	/* the section may come first, and be empty */
	load_ok("[retention]\n" FS, &cfg);
	ASSERT_EQ(cfg.nrules, 0);
	phi_config_release(&cfg);
}

TEST(bad_retention_rules)
{
	expect_error(FS "[retention]\nPatients = 1y\n",
		     ":4: Patients: a path in the filesystem must start with "
		     "'/'");
	expect_error(FS "[retention]\n/a//b = 1y\n",
		     ":4: /a//b: use a plain path: no empty, '.' or '..' parts");
	expect_error(FS "[retention]\n/a/../b = 1y\n",
		     ":4: /a/../b: use a plain path: no empty, '.' or '..' "
		     "parts");
	expect_error(FS "[retention]\n/a = 1y\n/a/ = 2y\n",
		     ":5: /a/: duplicate path (first on line 4)");
	expect_error(FS "[retention]\n/a = soon\n",
		     ":4: /a: bad period 'soon' (use a number with s, m, h, d, "
		     "w or y)");
	expect_error(FS "[retention]\n/a = 0\n",
		     ":4: /a: must be from 1s to 36500d");
	expect_error(FS "[retention]\n/a =\n", ":4: /a: empty value");
	expect_error(FS "[retention]\n[retention]\n",
		     ":4: [retention]: duplicate section (first on line 3)");
}

TEST(parse_period)
{
	static const char *const bad[] = {
		"", "d", "1 d", "-1d", "1dd", "1x", "1.5d", "1yy",
		"213503982334602d",
	};
	uint64_t v = 42;

	ASSERT_OK(phi_parse_period("3d", &v));
	ASSERT_EQ(v, 3ULL * 86400000);
	ASSERT_OK(phi_parse_period("2h", &v));
	ASSERT_EQ(v, 7200000);
	ASSERT_OK(phi_parse_period("5", &v));
	ASSERT_EQ(v, 5000);
	ASSERT_OK(phi_parse_period("250ms", &v));
	ASSERT_EQ(v, 250);
	ASSERT_OK(phi_parse_period("2w", &v));
	ASSERT_EQ(v, 14ULL * 86400000);
	ASSERT_OK(phi_parse_period("10y", &v));
	ASSERT_EQ(v, 3650ULL * 86400000);
	v = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (phi_parse_period(bad[i], &v) == 0)
			test_diag("phi_parse_period(\"%s\") accepted", bad[i]);
		ASSERT_ERR(phi_parse_period(bad[i], &v), -EINVAL);
		ASSERT_EQ(v, 42);
	}
	/* TIME does not take days: seal_delay = 1d stays a bad duration */
	ASSERT_ERR(phi_parse_duration("1d", &v), -EINVAL);
}

/* 2026-11-29T10:00:00Z */
#define T0 INT64_C(1795946400000)

static void expect_moment(const char *s, int64_t want)
{
	int64_t v = 42;

	if (phi_parse_moment(s, T0, &v) != 0)
		test_diag("phi_parse_moment(\"%s\") refused", s);
	ASSERT_OK(phi_parse_moment(s, T0, &v));
	if (v != want)
		test_diag("phi_parse_moment(\"%s\")", s);
	ASSERT_EQ(v, want);
}

TEST(parse_moment_utc_and_offsets)
{
	expect_moment("2026-11-29T10:00:00Z", T0);
	expect_moment("2026-11-29t10:00:00z", T0);
	expect_moment("2026-11-29 10:00:00Z", T0);
	expect_moment("2026-11-29T10:00Z", T0);
	expect_moment("2026-11-29T10:00:00.250Z", T0 + 250);
	expect_moment("2026-11-29T10:00:00.2Z", T0 + 200);
	expect_moment("2026-11-29T10:00:00,25Z", T0 + 250);
	expect_moment("2026-11-29T10:00:00.999999999Z", T0 + 999);
	expect_moment("2026-11-29T11:00:00+01:00", T0);
	expect_moment("2026-11-29T11:30:00+0130", T0);
	expect_moment("2026-11-29T05:00:00-05", T0);
	expect_moment("2026-11-29T05:00:00-05:00", T0);
	expect_moment("1970-01-01T00:00:00Z", 0);
	expect_moment("2028-02-29T00:00:00Z", INT64_C(1835395200000));
}

TEST(parse_moment_local_time)
{
	const char *old = getenv("TZ");
	char saved[256] = "";

	if (old)
		snprintf(saved, sizeof(saved), "%s", old);
	/* POSIX rules, so that no zoneinfo file is needed: CET/CEST */
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	expect_moment("2026-11-29T11:00:00", T0);
	expect_moment("2026-11-29T11:00", T0);
	expect_moment("2026-11-29 11:00:00.500", T0 + 500);
	expect_moment("2026-11-30", T0 + 13 * 3600000LL);
	/* summer time: two hours ahead */
	expect_moment("2026-07-01T12:00:00", INT64_C(1782900000000));
	setenv("TZ", "UTC0", 1);
	tzset();
	expect_moment("2026-11-29T10:00:00", T0);
	if (old)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
}

TEST(parse_moment_relative)
{
	expect_moment("now", T0);
	expect_moment("NOW", T0);
	expect_moment("-90s", T0 - 90000);
	expect_moment("-30m", T0 - 1800000);
	expect_moment("-2h", T0 - 7200000);
	expect_moment("-3d", T0 - 3 * 86400000LL);
	expect_moment("-500ms", T0 - 500);
	expect_moment("-2w", T0 - 14 * 86400000LL);
}

TEST(parse_moment_rejects)
{
	static const char *const bad[] = {
		"", "yesterday", "-90", "-", "-2x", "--2h", "+2h", "-2 h",
		"2026", "2026-11", "2026-11-29T", "2026-11-29X10:00:00Z",
		"2026-13-01", "2026-00-10", "2026-02-29", "2026-11-31",
		"2026-11-00", "1969-12-31T23:59:59Z", "2026-11-29T24:00:00Z",
		"2026-11-29T10:60:00Z", "2026-11-29T10:00:60Z",
		"2026-11-29T10Z", "2026-11-29T10:00:00.Z",
		"2026-11-29T10:00:00.1234567890Z", "2026-11-29T10:00:00+24:00",
		"2026-11-29T10:00:00+01:60", "2026-11-29T10:00:00+1",
		"2026-11-29T10:00:00+01:00x", "2026-11-29T10:00:00 Z",
		"26-11-29", "2026/11/29", "2026-1-29", "x2026-11-29",
	};
	int64_t v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (phi_parse_moment(bad[i], T0, &v) == 0)
			test_diag("phi_parse_moment(\"%s\") accepted", bad[i]);
		ASSERT_ERR(phi_parse_moment(bad[i], T0, &v), -EINVAL);
		ASSERT_EQ(v, 42);
	}
	/* further back than the epoch */
	ASSERT_ERR(phi_parse_moment("-36500d", T0, &v), -EINVAL);
}

TEST(format_moment)
{
	char out[32];
	int64_t back = 0;

	phi_format_moment(T0 + 120, out);
	ASSERT_STREQ(out, "2026-11-29T10:00:00.120Z");
	phi_format_moment(0, out);
	ASSERT_STREQ(out, "1970-01-01T00:00:00.000Z");
	phi_format_moment(T0 + 3 * 86400000LL + 59999, out);
	ASSERT_STREQ(out, "2026-12-02T10:00:59.999Z");
	ASSERT_OK(phi_parse_moment(out, 0, &back));
	ASSERT_EQ(back, T0 + 3 * 86400000LL + 59999);
}

TEST_MAIN(
	TEST_ENTRY(minimal_file_gets_defaults),
	TEST_ENTRY(sealing_keys_load),
	TEST_ENTRY(seal_delay_spellings),
	TEST_ENTRY(full_file_loads),
	TEST_ENTRY(layout_indent_comments_crlf_bom),
	TEST_ENTRY(cache_dir_trailing_slashes),
	TEST_ENTRY(bool_spellings),
	TEST_ENTRY(block_size_limits_accepted),
	TEST_ENTRY(region_name_64_chars),
	TEST_ENTRY(max_regions_accepted),
	TEST_ENTRY(missing_file),
	TEST_ENTRY(file_is_a_directory),
	TEST_ENTRY(file_not_regular),
	TEST_ENTRY(nul_byte_refused),
	TEST_ENTRY(block_size_line_recorded),
	TEST_ENTRY(format_size),
	TEST_ENTRY(unreadable_file),
	TEST_ENTRY(syntax_error),
	TEST_ENTRY(syntax_error_before_key_error),
	TEST_ENTRY(first_error_wins),
	TEST_ENTRY(header_without_bracket),
	TEST_ENTRY(header_with_trailing_text),
	TEST_ENTRY(unknown_section),
	TEST_ENTRY(empty_section_is_still_checked),
	TEST_ENTRY(unknown_key),
	TEST_ENTRY(key_outside_section),
	TEST_ENTRY(missing_key_name),
	TEST_ENTRY(duplicate_key),
	TEST_ENTRY(same_key_in_two_regions),
	TEST_ENTRY(duplicate_region),
	TEST_ENTRY(duplicate_filesystem),
	TEST_ENTRY(bad_size),
	TEST_ENTRY(size_zero),
	TEST_ENTRY(block_size_rules),
	TEST_ENTRY(cache_size_below_16_blocks),
	TEST_ENTRY(missing_cache_dir),
	TEST_ENTRY(missing_filesystem_section),
	TEST_ENTRY(relative_paths),
	TEST_ENTRY(bad_region_name),
	TEST_ENTRY(region_name_65_chars),
	TEST_ENTRY(region_without_url),
	TEST_ENTRY(bad_region_url),
	TEST_ENTRY(url_secret_not_echoed),
	TEST_ENTRY(bad_bool),
	TEST_ENTRY(too_many_regions),
	TEST_ENTRY(empty_value),
	TEST_ENTRY(line_too_long),
	TEST_ENTRY(line_numbers_count_every_line),
	TEST_ENTRY(key_file_must_be_absolute),
	TEST_ENTRY(bad_seal_delay),
	TEST_ENTRY(bad_seal_quiet),
	TEST_ENTRY(bad_uploaders),
	TEST_ENTRY(bad_pack_size),
	TEST_ENTRY(bad_dirty_limit),
	TEST_ENTRY(error_is_one_line_and_fits),
	TEST_ENTRY(log_file_loads),
	TEST_ENTRY(metrics_keys_load),
	TEST_ENTRY(bad_metrics_keys),
	TEST_ENTRY(syslog_keys),
	TEST_ENTRY(bad_syslog_keys),
	TEST_ENTRY(mountpoint_loads),
	TEST_ENTRY(history_keys_load),
	TEST_ENTRY(bad_history_keys),
	TEST_ENTRY(retention_rules),
	TEST_ENTRY(bad_retention_rules),
	TEST_ENTRY(parse_period),
	TEST_ENTRY(parse_moment_utc_and_offsets),
	TEST_ENTRY(parse_moment_local_time),
	TEST_ENTRY(parse_moment_relative),
	TEST_ENTRY(parse_moment_rejects),
	TEST_ENTRY(format_moment),
	TEST_ENTRY(help_lists_every_key),
	TEST_ENTRY(parse_size_plain),
	TEST_ENTRY(parse_size_suffixes),
	TEST_ENTRY(parse_size_rejects),
	TEST_ENTRY(parse_duration),
)
