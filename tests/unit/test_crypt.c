/*
 * test_crypt.c - keys, sealed frames, the superblock, through crypt.h only.
 *
 * Byte offsets used for tampering come from the formats documented in
 * crypt.h, which are part of its contract.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypt.h"
#include "crypt_v1_frames.h"
#include "test.h"

#define MIB ((size_t)1 << 20)

static const uint8_t FSID[16] = "0123456789abcdef";
static const uint8_t FSID2[16] = "0123456789abcdeF";

/* Small scrypt parameters: tests need the code path, not the cost. */
static const struct crypt_kdf_params FAST = { 1u << 10, 8, 1 };

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct crypt_key *new_key(void)
{
	struct crypt_key *k = NULL;

	ASSERT_OK(crypt_key_new_random(&k));
	ASSERT_TRUE(k != NULL);
	return k;
}

static uint8_t *random_data(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	ASSERT_TRUE(p != NULL);
	ASSERT_OK(crypt_random_bytes(p, n));
	return p;
}

/* Letter-like text: compresses well, like most clinical documents. */
static char *text_data(size_t n)
{
	char *p = malloc(n + 64), *q = p;
	unsigned line = 0;

	ASSERT_TRUE(p != NULL);
	while ((size_t)(q - p) < n)
		q += sprintf(q, "Line %u: blood pressure within normal range.\n",
			     line++);
	return p;
}

/* Seal then unseal len bytes; return the frame's length.  want_zstd
 * (0 or 1; -1: either) is told by the size: a raw frame is exactly the
 * bound, a compressed one smaller. */
static size_t round_trip(const struct crypt_key *mk, const void *data,
			 size_t len, int want_zstd)
{
	struct buf frame, plain;
	size_t flen;

	buf_init(&frame, SIZE_MAX);
	buf_init(&plain, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", data, len, &frame));
	flen = buf_len(&frame);
	ASSERT_TRUE(flen <= crypt_seal_bound(len));
	ASSERT_TRUE(memcmp(buf_data(&frame), "PHIS", 4) == 0);
	ASSERT_EQ(((const uint8_t *)buf_data(&frame))[4],
		  CRYPT_FRAME_VERSION);
	ASSERT_EQ(((const uint8_t *)buf_data(&frame))[5], 0);	/* inside */
	ASSERT_EQ(flen - CRYPT_FRAME_OVERHEAD,
		  crypt_pad_size(flen - CRYPT_FRAME_OVERHEAD));
	if (want_zstd == 0)
		ASSERT_EQ(flen, crypt_seal_bound(len));
	ASSERT_OK(crypt_unseal(mk, FSID, "obj-1", buf_data(&frame), flen,
			       &plain));
	ASSERT_EQ(buf_len(&plain), len);
	ASSERT_TRUE(len == 0 || memcmp(buf_data(&plain), data, len) == 0);
	buf_release(&frame);
	buf_release(&plain);
	return flen;
}

TEST(seal_empty)
{
	struct crypt_key *mk = new_key();

	ASSERT_EQ(round_trip(mk, NULL, 0, 0),
		  (size_t)CRYPT_FRAME_OVERHEAD + 256);
	crypt_key_free(mk);
}

TEST(seal_one_byte)
{
	struct crypt_key *mk = new_key();

	ASSERT_EQ(round_trip(mk, "x", 1, 0),
		  (size_t)CRYPT_FRAME_OVERHEAD + 256);
	crypt_key_free(mk);
}

TEST(seal_text_compresses)
{
	struct crypt_key *mk = new_key();
	char *text = text_data(4096);
	size_t flen = round_trip(mk, text, 4096, 1);

	test_diag("4 KiB of text seals into %zu bytes", flen);
	ASSERT_TRUE(flen < 4096 / 4);
	free(text);
	crypt_key_free(mk);
}

TEST(seal_random_stored_raw)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(MIB);

	ASSERT_EQ(round_trip(mk, data, MIB, 0), crypt_seal_bound(MIB));
	free(data);
	crypt_key_free(mk);
}

TEST(seal_16mib)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(16 * MIB);
	char *text = text_data(16 * MIB);

	round_trip(mk, data, 16 * MIB, 0);
	ASSERT_TRUE(round_trip(mk, text, 16 * MIB, 1) < 16 * MIB / 4);
	free(text);
	free(data);
	crypt_key_free(mk);
}

/* The size classes: at least 256, Padmé above, a few percent at most. */
TEST(pad_size_classes)
{
	ASSERT_EQ(crypt_pad_size(0), 256u);
	ASSERT_EQ(crypt_pad_size(256), 256u);
	ASSERT_EQ(crypt_pad_size(257), 272u);
	ASSERT_EQ(crypt_pad_size(1017), 1024u);
	ASSERT_EQ(crypt_pad_size(MIB), (size_t)MIB);
	ASSERT_EQ(crypt_pad_size(MIB + 1), (size_t)MIB + 32768);
	for (size_t len = 200; len < 4 * MIB; len = len * 9 / 8 + 1) {
		size_t c = crypt_pad_size(len);

		ASSERT_TRUE(c >= len && crypt_pad_size(c) == c);
		ASSERT_TRUE(len < 256 || c - len < len / 16 + 1);
		ASSERT_TRUE(len < 65536 || c - len < len / 32 + 1);
	}
}

/* Files of sizes within one class make frames a region cannot tell
 * apart: the same length and the same clear header but for the nonce. */
TEST(sizes_within_a_class_look_alike)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(1000);
	struct buf a, b;

	buf_init(&a, SIZE_MAX);
	buf_init(&b, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", data, 1000, &a));
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", data, 990, &b));
	ASSERT_EQ(buf_len(&a), buf_len(&b));
	ASSERT_EQ(buf_len(&a), (size_t)CRYPT_FRAME_OVERHEAD + 1024);
	ASSERT_TRUE(memcmp(buf_data(&a), buf_data(&b), 6) == 0);
	ASSERT_TRUE(memcmp((const uint8_t *)buf_data(&a) + 18,
			   (const uint8_t *)buf_data(&b) + 18, 16) == 0);
	buf_release(&a);
	buf_release(&b);
	free(data);
	crypt_key_free(mk);
}

/* What older regions hold: version 1 frames, raw and compressed, still
 * unseal, and still fail under another name. */
TEST(version_1_frames_still_open)
{
	static const char raw[] =
		"Patient 0001: blood pressure within normal range.";
	struct crypt_key *mk = NULL;
	struct buf out;
	char *text = text_data(8124);

	ASSERT_OK(crypt_super_unlock_keyfile(V1_SUPER, sizeof(V1_SUPER),
					     V1_KEYFILE, sizeof(V1_KEYFILE),
					     &mk));
	ASSERT_EQ(V1_FRAME_RAW[4], 1);
	buf_init(&out, SIZE_MAX);
	ASSERT_OK(crypt_unseal(mk, FSID, "m/v1-raw", V1_FRAME_RAW,
			       sizeof(V1_FRAME_RAW), &out));
	ASSERT_EQ(buf_len(&out), sizeof(raw) - 1);
	ASSERT_TRUE(memcmp(buf_data(&out), raw, sizeof(raw) - 1) == 0);
	buf_reset(&out);
	ASSERT_OK(crypt_unseal(mk, FSID, "m/v1-zstd", V1_FRAME_ZSTD,
			       sizeof(V1_FRAME_ZSTD), &out));
	ASSERT_EQ(buf_len(&out), 8124u);
	ASSERT_TRUE(memcmp(buf_data(&out), text, 8124) == 0);
	buf_reset(&out);
	ASSERT_ERR(crypt_unseal(mk, FSID, "m/v1-zstd", V1_FRAME_RAW,
				sizeof(V1_FRAME_RAW), &out), PHI_EAUTHFAIL);
	buf_release(&out);
	free(text);
	crypt_key_free(mk);
}

/* Both directions append, leaving earlier contents alone. */
TEST(seal_appends)
{
	struct crypt_key *mk = new_key();
	struct buf frame, plain;
	size_t first;

	buf_init(&frame, SIZE_MAX);
	buf_init(&plain, SIZE_MAX);
	ASSERT_OK(buf_add(&frame, "hdr", 3));
	ASSERT_OK(crypt_seal(mk, FSID, "a", "hello", 5, &frame));
	first = buf_len(&frame);
	ASSERT_OK(crypt_seal(mk, FSID, "b", "world", 5, &frame));
	ASSERT_OK(buf_add(&plain, "> ", 2));
	ASSERT_OK(crypt_unseal(mk, FSID, "a",
			       (const char *)buf_data(&frame) + 3, first - 3,
			       &plain));
	ASSERT_OK(crypt_unseal(mk, FSID, "b",
			       (const char *)buf_data(&frame) + first,
			       buf_len(&frame) - first, &plain));
	ASSERT_STREQ(buf_data(&plain), "> helloworld");
	buf_release(&frame);
	buf_release(&plain);
	crypt_key_free(mk);
}

/* A frame opens the same into a buffer with room for its whole payload
 * (opened in place) and into one capped at the plaintext's length (into
 * a temporary), raw or compressed, after what the buffer held. */
static void unseal_both_ways(const struct crypt_key *mk, const void *data,
			     size_t len)
{
	struct buf frame, wide, tight;

	buf_init(&frame, SIZE_MAX);
	buf_init(&wide, SIZE_MAX);
	buf_init(&tight, len + 2);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", data, len, &frame));
	ASSERT_OK(buf_add(&wide, "> ", 2));
	ASSERT_OK(buf_add(&tight, "> ", 2));
	ASSERT_OK(crypt_unseal(mk, FSID, "obj-1", buf_data(&frame),
			       buf_len(&frame), &wide));
	ASSERT_OK(crypt_unseal(mk, FSID, "obj-1", buf_data(&frame),
			       buf_len(&frame), &tight));
	ASSERT_EQ(buf_len(&wide), len + 2);
	ASSERT_EQ(buf_len(&tight), len + 2);
	ASSERT_TRUE(memcmp(buf_data(&wide), "> ", 2) == 0);
	ASSERT_TRUE(memcmp((const char *)buf_data(&wide) + 2, data, len) == 0);
	ASSERT_TRUE(memcmp(buf_data(&tight), buf_data(&wide), len + 2) == 0);
	ASSERT_EQ(((const char *)buf_data(&wide))[len + 2], '\0');
	buf_release(&frame);
	buf_release(&wide);
	buf_release(&tight);
}

TEST(unseal_in_place_or_through_a_temporary)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(MIB);
	char *text = text_data(MIB);

	unseal_both_ways(mk, data, MIB);	/* raw */
	unseal_both_ways(mk, text, MIB);	/* compressed */
	unseal_both_ways(mk, "x", 1);
	free(text);
	free(data);
	crypt_key_free(mk);
}

/* Flip one bit at off; unseal must fail with a code that says why, and
 * leave out as it was. */
static void expect_tamper_fails(const struct crypt_key *mk,
				const struct buf *frame, size_t off)
{
	size_t len = buf_len(frame);
	uint8_t *copy = malloc(len);
	struct buf out;
	int rc;

	ASSERT_TRUE(copy != NULL && off < len);
	memcpy(copy, buf_data(frame), len);
	copy[off] ^= 0x01;
	buf_init(&out, SIZE_MAX);
	ASSERT_OK(buf_add(&out, "keep", 4));
	rc = crypt_unseal(mk, FSID, "obj-1", copy, len, &out);
	if (off == 4)	/* the version byte: 2 becomes 3, whose header
			   then names generation 0, which only 2 may */
		ASSERT_TRUE(rc == PHI_EVERSION || rc == PHI_ECORRUPT);
	else if (rc != PHI_EAUTHFAIL)
		ASSERT_ERR(rc, PHI_ECORRUPT);
	ASSERT_STREQ(buf_data(&out), "keep");
	buf_release(&out);
	free(copy);
}

static void tamper_all(const struct crypt_key *mk, const void *data,
		       size_t len)
{
	struct buf frame;
	size_t flen, offs[] = { 0, 3, 4, 5, 6, 17, 18, 25, 26, 33, 34 };

	buf_init(&frame, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", data, len, &frame));
	flen = buf_len(&frame);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		expect_tamper_fails(mk, &frame, offs[i]);
	expect_tamper_fails(mk, &frame, (CRYPT_FRAME_HEADER + flen) / 2);
	expect_tamper_fails(mk, &frame, flen - 17);	/* last payload */
	expect_tamper_fails(mk, &frame, flen - 16);	/* tag */
	expect_tamper_fails(mk, &frame, flen - 1);
	buf_release(&frame);
}

TEST(tamper_detected)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(4096);
	char *text = text_data(4096);

	tamper_all(mk, data, 4096);	/* raw */
	tamper_all(mk, text, 4096);	/* compressed */
	free(text);
	free(data);
	crypt_key_free(mk);
}

/* Seal "obj-1" of FSID under mk with text, for the mix-up tests. */
static void seal_text(const struct crypt_key *mk, struct buf *frame)
{
	char *text = text_data(4096);

	buf_init(frame, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", text, 4096, frame));
	free(text);
}

TEST(other_object_id)
{
	struct crypt_key *mk = new_key();
	struct buf frame, out;

	seal_text(mk, &frame);
	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(crypt_unseal(mk, FSID, "obj-2", buf_data(&frame),
				buf_len(&frame), &out), PHI_EAUTHFAIL);
	ASSERT_ERR(crypt_unseal(mk, FSID, "obj-", buf_data(&frame),
				buf_len(&frame), &out), PHI_EAUTHFAIL);
	ASSERT_EQ(buf_len(&out), 0u);
	buf_release(&frame);
	buf_release(&out);
	crypt_key_free(mk);
}

TEST(other_fsid)
{
	struct crypt_key *mk = new_key();
	struct buf frame, out;

	seal_text(mk, &frame);
	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(crypt_unseal(mk, FSID2, "obj-1", buf_data(&frame),
				buf_len(&frame), &out), PHI_EAUTHFAIL);
	ASSERT_EQ(buf_len(&out), 0u);
	buf_release(&frame);
	buf_release(&out);
	crypt_key_free(mk);
}

TEST(other_key)
{
	struct crypt_key *mk = new_key(), *other = new_key();
	struct buf frame, out;

	seal_text(mk, &frame);
	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(crypt_unseal(other, FSID, "obj-1", buf_data(&frame),
				buf_len(&frame), &out), PHI_EAUTHFAIL);
	ASSERT_EQ(buf_len(&out), 0u);
	buf_release(&frame);
	buf_release(&out);
	crypt_key_free(other);
	crypt_key_free(mk);
}

static void expect_corrupt(const struct crypt_key *mk, const void *frame,
			   size_t len)
{
	struct buf out;

	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(crypt_unseal(mk, FSID, "obj-1", frame, len, &out),
		   PHI_ECORRUPT);
	ASSERT_EQ(buf_len(&out), 0u);
	buf_release(&out);
}

TEST(truncated_or_padded)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(4096);
	struct buf frames[2];

	seal_text(mk, &frames[0]);
	buf_init(&frames[1], SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", data, 4096, &frames[1]));
	for (int i = 0; i < 2; i++) {
		const uint8_t *f = buf_data(&frames[i]);
		size_t len = buf_len(&frames[i]);

		expect_corrupt(mk, f, len - 1);
		expect_corrupt(mk, f, len - 16);
		expect_corrupt(mk, f, len / 2);
		expect_corrupt(mk, f, CRYPT_FRAME_HEADER);
		expect_corrupt(mk, f, 10);
		expect_corrupt(mk, f, 0);
		ASSERT_OK(buf_add(&frames[i], "", 1));	/* one byte more */
		expect_corrupt(mk, buf_data(&frames[i]), len + 1);
		buf_release(&frames[i]);
	}
	expect_corrupt(mk, "garbage garbage garbage garbage garbage garbage "
		       "garbage", 55);
	free(data);
	crypt_key_free(mk);
}

/* The two halves give what crypt_seal() gives: the same size for the
 * same input, opened by crypt_unseal() under the id finish was given
 * only; and finish takes nothing but what prepare made. */
TEST(seal_in_two_halves)
{
	struct crypt_key *mk = new_key();
	char *text = text_data(8192);
	uint8_t *data = random_data(5000);
	struct {
		const void *p;
		size_t len;
	} in[] = { { text, 8192 }, { data, 5000 }, { NULL, 0 } };
	struct buf whole, plain;

	buf_init(&plain, SIZE_MAX);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		size_t bound = crypt_seal_bound(in[i].len), flen = 0;
		uint8_t *f = malloc(bound);

		ASSERT_TRUE(f != NULL);
		ASSERT_OK(crypt_seal_prepare(mk, in[i].p, in[i].len, f,
					     &flen));
		ASSERT_TRUE(flen <= bound);
		buf_init(&whole, SIZE_MAX);
		ASSERT_OK(crypt_seal(mk, FSID, "d/p@0", in[i].p, in[i].len,
				     &whole));
		ASSERT_EQ(flen, buf_len(&whole));
		buf_release(&whole);
		/* a length other than the one prepare gave */
		ASSERT_ERR(crypt_seal_finish(mk, FSID, "d/p@0", f, flen + 1),
			   -EINVAL);
		ASSERT_ERR(crypt_seal_finish(mk, FSID, "", f, flen), -EINVAL);
		ASSERT_OK(crypt_seal_finish(mk, FSID, "d/p@0", f, flen));
		ASSERT_ERR(crypt_unseal(mk, FSID, "d/p@1", f, flen, &plain),
			   PHI_EAUTHFAIL);
		buf_reset(&plain);
		ASSERT_OK(crypt_unseal(mk, FSID, "d/p@0", f, flen, &plain));
		ASSERT_EQ(buf_len(&plain), in[i].len);
		ASSERT_TRUE(in[i].len == 0 ||
			    memcmp(buf_data(&plain), in[i].p, in[i].len) == 0);
		buf_reset(&plain);
		/* sealed once already (its nonce is set), or not a frame */
		ASSERT_ERR(crypt_seal_finish(mk, FSID, "d/p@0", f, flen),
			   -EINVAL);
		ASSERT_OK(crypt_seal_prepare(mk, in[i].p, in[i].len, f,
					     &flen));
		f[0] ^= 1;
		ASSERT_ERR(crypt_seal_finish(mk, FSID, "d/p@0", f, flen),
			   -EINVAL);
		free(f);
	}
	buf_release(&plain);
	free(text);
	free(data);
	crypt_key_free(mk);
}

TEST(bad_arguments)
{
	struct crypt_key *mk = new_key();
	char long_id[CRYPT_ID_MAX + 2];
	struct buf out;

	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(crypt_seal(mk, FSID, "", "x", 1, &out), -EINVAL);
	ASSERT_ERR(crypt_seal(mk, FSID, long_id, "x", 1, &out), -EINVAL);
	long_id[CRYPT_ID_MAX] = '\0';	/* exactly the maximum */
	ASSERT_OK(crypt_seal(mk, FSID, long_id, "x", 1, &out));
	buf_release(&out);

	/* a cap too small for the frame: -E2BIG, out unchanged */
	buf_init(&out, 100);
	ASSERT_OK(buf_add(&out, "ab", 2));
	ASSERT_ERR(crypt_seal(mk, FSID, "o", "0123456789012345678901234567"
			      "890123456789012345678901234567890123456789",
			      70, &out), -E2BIG);
	ASSERT_STREQ(buf_data(&out), "ab");
	ASSERT_ERR(crypt_set_level(1000), -EINVAL);
	ASSERT_OK(crypt_set_level(19));
	ASSERT_OK(crypt_set_level(3));
	buf_release(&out);
	crypt_key_free(mk);
}

TEST(nonce_is_random)
{
	struct crypt_key *mk = new_key();
	struct buf a, b;

	seal_text(mk, &a);
	seal_text(mk, &b);
	ASSERT_EQ(buf_len(&a), buf_len(&b));
	ASSERT_TRUE(memcmp(buf_data(&a), buf_data(&b), buf_len(&a)) != 0);
	ASSERT_TRUE(memcmp((const uint8_t *)buf_data(&a) + 6,
			   (const uint8_t *)buf_data(&b) + 6, 12) != 0);
	buf_release(&a);
	buf_release(&b);
	crypt_key_free(mk);
}

TEST(block_hash_keyed)
{
	struct crypt_key *k1 = new_key(), *k2 = new_key();
	uint8_t h1[32], h1b[32], h2[32], h3[32];

	ASSERT_OK(crypt_block_hash(k1, "block", 5, h1));
	ASSERT_OK(crypt_block_hash(k1, "block", 5, h1b));
	ASSERT_OK(crypt_block_hash(k2, "block", 5, h2));
	ASSERT_OK(crypt_block_hash(k1, "bloCk", 5, h3));
	ASSERT_TRUE(memcmp(h1, h1b, 32) == 0);
	ASSERT_TRUE(memcmp(h1, h2, 32) != 0);
	ASSERT_TRUE(memcmp(h1, h3, 32) != 0);
	ASSERT_OK(crypt_block_hash(k1, NULL, 0, h3));
	crypt_key_free(k1);
	crypt_key_free(k2);
}

TEST(random_ids)
{
	char a[33], b[33];

	ASSERT_OK(crypt_random_id(a));
	ASSERT_OK(crypt_random_id(b));
	ASSERT_EQ(strlen(a), 32u);
	ASSERT_EQ(strspn(a, "0123456789abcdef"), 32u);
	ASSERT_EQ(strspn(b, "0123456789abcdef"), 32u);
	ASSERT_TRUE(strcmp(a, b) != 0);
}

TEST(harden_process)
{
	struct rlimit rl;

	ASSERT_OK(crypt_harden_process());
	ASSERT_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	ASSERT_OK(getrlimit(RLIMIT_CORE, &rl));
	ASSERT_EQ(rl.rlim_cur, 0u);
	/* LeakSanitizer must ptrace this process at exit: undo */
	ASSERT_OK(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
	crypt_key_free(NULL);
}

/* ------------------------------------------------------------------ */

static void new_super(const struct crypt_key *mk, struct buf *sb)
{
	struct crypt_super_info info = { 0 };

	memcpy(info.fsid, FSID, 16);
	info.block_size = 1u << 20;
	info.created = 1700000000;
	buf_init(sb, 4096);
	ASSERT_OK(crypt_super_create(mk, &info, sb));
	ASSERT_EQ(buf_len(sb), (size_t)CRYPT_SUPER_SIZE);
}

/* What mk sealed, key opens. */
static void assert_same_key(const struct crypt_key *mk,
			    const struct crypt_key *key)
{
	struct buf frame, out;
	uint8_t h1[32], h2[32];

	buf_init(&frame, SIZE_MAX);
	buf_init(&out, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "sb-test", "secret note", 11, &frame));
	ASSERT_OK(crypt_unseal(key, FSID, "sb-test", buf_data(&frame),
			       buf_len(&frame), &out));
	ASSERT_STREQ(buf_data(&out), "secret note");
	ASSERT_OK(crypt_block_hash(mk, "x", 1, h1));
	ASSERT_OK(crypt_block_hash(key, "x", 1, h2));
	ASSERT_TRUE(memcmp(h1, h2, 32) == 0);
	buf_release(&frame);
	buf_release(&out);
}

TEST(super_passphrase)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	struct crypt_super_info info;
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.nslots, 0);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "correct horse", 13,
					     &FAST), 0);
	ASSERT_EQ(buf_len(&sb), (size_t)CRYPT_SUPER_SIZE);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.version, (uint32_t)CRYPT_SUPER_VERSION);
	ASSERT_TRUE(memcmp(info.fsid, FSID, 16) == 0);
	ASSERT_EQ(info.block_size, 1u << 20);
	ASSERT_EQ(info.created, 1700000000);
	ASSERT_EQ(info.nslots, 1);
	ASSERT_EQ(info.slots[0].type, CRYPT_SLOT_PASSPHRASE);
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"correct horse", 13, &k));
	assert_same_key(mk, k);
	crypt_key_free(k);
	buf_release(&sb);
	crypt_key_free(mk);
}

TEST(super_wrong_passphrase)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "correct horse", 13,
					     &FAST), 0);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 "correct hors", 12, &k),
		   PHI_EBADKEY);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 "Correct horse", 13, &k),
		   PHI_EBADKEY);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 "", 0, &k), PHI_EBADKEY);
	ASSERT_TRUE(k == NULL);
	/* no key-file slot at all */
	ASSERT_ERR(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb),
					      FSID, 16, &k), PHI_EBADKEY);
	ASSERT_ERR(crypt_super_add_passphrase(&sb, mk, "", 0, &FAST),
		   -EINVAL);
	buf_release(&sb);
	crypt_key_free(mk);
}

TEST(super_keyfile)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	uint8_t *kf = random_data(64), *other = random_data(64);
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_ERR(crypt_super_add_keyfile(&sb, mk, kf, 31), -EINVAL);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, kf, 64), 0);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					     64, &k));
	assert_same_key(mk, k);
	crypt_key_free(k);
	k = NULL;
	ASSERT_ERR(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb),
					      other, 64, &k), PHI_EBADKEY);
	ASSERT_ERR(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					      63, &k), PHI_EBADKEY);
	ASSERT_ERR(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					      16, &k), PHI_EBADKEY);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 (const char *)kf, 64, &k),
		   PHI_EBADKEY);
	ASSERT_TRUE(k == NULL);
	free(kf);
	free(other);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* Both slots open; removing one leaves the other; the last stays. */
TEST(super_two_slots_and_remove)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	uint8_t *kf = random_data(32);
	struct crypt_super_info info;
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &FAST), 0);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, kf, 32), 1);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.nslots, 2);
	ASSERT_EQ(info.slots[1].type, CRYPT_SLOT_KEYFILE);
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"pw", 2, &k));
	assert_same_key(mk, k);
	crypt_key_free(k);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					     32, &k));
	assert_same_key(mk, k);
	crypt_key_free(k);

	ASSERT_ERR(crypt_super_remove_slot(&sb, mk, 5), -ENOENT);
	ASSERT_ERR(crypt_super_remove_slot(&sb, mk, 8), -ENOENT);
	ASSERT_ERR(crypt_super_remove_slot(&sb, mk, -1), -ENOENT);
	ASSERT_OK(crypt_super_remove_slot(&sb, mk, 0));
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.nslots, 1);
	ASSERT_EQ(info.slots[0].type, CRYPT_SLOT_EMPTY);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 "pw", 2, &k), PHI_EBADKEY);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					     32, &k));
	crypt_key_free(k);
	ASSERT_ERR(crypt_super_remove_slot(&sb, mk, 1), -EPERM);
	/* a freed slot is reused; slot numbers do not move */
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw2", 3, &FAST), 0);
	ASSERT_OK(crypt_super_remove_slot(&sb, mk, 1));
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"pw2", 3, &k));
	assert_same_key(mk, k);
	crypt_key_free(k);
	free(kf);
	buf_release(&sb);
	crypt_key_free(mk);
}

TEST(super_slots_full)
{
	struct crypt_key *mk = new_key();
	uint8_t kf[32] = "a key file of thirty-two bytes!";
	struct buf sb;

	new_super(mk, &sb);
	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		kf[0] = (uint8_t)i;
		ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, kf, 32), i);
	}
	ASSERT_ERR(crypt_super_add_keyfile(&sb, mk, kf, 32), -ENOSPC);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* An edit needs the filesystem's own key: the MAC is checked first. */
TEST(super_edit_needs_key)
{
	struct crypt_key *mk = new_key(), *other = new_key();
	uint8_t kf[32] = "a key file of thirty-two bytes!";
	uint8_t before[CRYPT_SUPER_SIZE];
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, kf, 32), 0);
	memcpy(before, buf_data(&sb), buf_len(&sb));
	ASSERT_ERR(crypt_super_add_keyfile(&sb, other, kf, 32),
		   PHI_ECORRUPT);
	ASSERT_ERR(crypt_super_remove_slot(&sb, other, 0), PHI_ECORRUPT);
	ASSERT_TRUE(memcmp(before, buf_data(&sb), buf_len(&sb)) == 0);
	buf_release(&sb);
	crypt_key_free(other);
	crypt_key_free(mk);
}

/* The block size (offset 28..31) is outside every slot: only the MAC
 * catches its change. */
TEST(super_block_size_altered)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	struct crypt_super_info info;
	struct buf sb;
	uint8_t *b;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &FAST), 0);
	b = buf_mut(&sb);
	ASSERT_EQ(b[29], 0x10);		/* 1 MiB, big-endian */
	b[29] = 0x20;			/* 2 MiB: still a valid size */
	ASSERT_OK(crypt_super_parse(b, buf_len(&sb), &info));
	ASSERT_EQ(info.block_size, 2u << 20);
	ASSERT_ERR(crypt_super_unlock_passphrase(b, buf_len(&sb), "pw", 2,
						 &k), PHI_ECORRUPT);
	ASSERT_TRUE(k == NULL);
	b[29] = 0x10;
	b[35] ^= 1;			/* creation time */
	ASSERT_ERR(crypt_super_unlock_passphrase(b, buf_len(&sb), "pw", 2,
						 &k), PHI_ECORRUPT);
	b[35] ^= 1;
	b[CRYPT_SUPER_SIZE - 1] ^= 1;	/* the MAC itself */
	ASSERT_ERR(crypt_super_unlock_passphrase(b, buf_len(&sb), "pw", 2,
						 &k), PHI_ECORRUPT);
	b[CRYPT_SUPER_SIZE - 1] ^= 1;
	ASSERT_OK(crypt_super_unlock_passphrase(b, buf_len(&sb), "pw", 2,
						&k));
	crypt_key_free(k);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* A slot's KDF parameters are bound to its wrap: weakening N, or moving
 * the slot to another filesystem, makes it not open. */
TEST(super_slot_bound)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	struct crypt_super_info info = { 0 };
	struct buf sb, sb2;
	uint8_t *b;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &FAST), 0);
	b = buf_mut(&sb);
	b[64 + 4 + 6] ^= 0x06;		/* N = 2^10 becomes 2^9 */
	ASSERT_OK(crypt_super_parse(b, buf_len(&sb), &info));
	ASSERT_EQ(info.slots[0].kdf.n, 1u << 9);
	ASSERT_ERR(crypt_super_unlock_passphrase(b, buf_len(&sb), "pw", 2,
						 &k), PHI_EBADKEY);
	b[64 + 4 + 6] ^= 0x06;

	/* the same slot in another filesystem's superblock */
	memcpy(info.fsid, FSID2, 16);
	info.block_size = 1u << 20;
	buf_init(&sb2, 4096);
	ASSERT_OK(crypt_super_create(mk, &info, &sb2));
	ASSERT_EQ(crypt_super_add_keyfile(&sb2, mk,
					  "0123456789abcdef0123456789abcdef",
					  32), 0);
	memcpy((uint8_t *)buf_mut(&sb2) + 64, b + 64, 192);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb2),
						 buf_len(&sb2), "pw", 2, &k),
		   PHI_EBADKEY);
	buf_release(&sb2);
	buf_release(&sb);
	crypt_key_free(mk);
}

TEST(super_parse_garbage)
{
	struct crypt_key *mk = new_key();
	struct crypt_super_info info;
	uint8_t *junk = random_data(CRYPT_SUPER_SIZE);
	struct crypt_key *k = NULL;
	struct buf sb;
	uint8_t *b;

	ASSERT_ERR(crypt_super_parse(junk, CRYPT_SUPER_SIZE, &info),
		   PHI_ECORRUPT);
	ASSERT_ERR(crypt_super_parse(junk, 10, &info), PHI_ECORRUPT);
	ASSERT_ERR(crypt_super_parse(NULL, 0, &info), PHI_ECORRUPT);
	ASSERT_ERR(crypt_super_unlock_passphrase(junk, CRYPT_SUPER_SIZE, "pw",
						 2, &k), PHI_ECORRUPT);
	new_super(mk, &sb);
	ASSERT_ERR(crypt_super_parse(buf_data(&sb), buf_len(&sb) - 1, &info),
		   PHI_ECORRUPT);
	b = buf_mut(&sb);
	b[40] = 1;			/* claims a slot it does not have */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[40] = 0;
	b[64] = 9;			/* unknown slot type */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[64] = 0;
	b[60] = 1;			/* reserved bytes after the serial */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[60] = 0;
	b[31] = 0;
	b[29] = 0;			/* block size 0 */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[29] = 0x10;
	b[11] = 4;			/* a later format */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_EVERSION);
	b[11] = 1;			/* format 1 is 972 bytes, not 3932 */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[11] = 2;			/* format 2 is 1632 */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[11] = 3;
	ASSERT_OK(crypt_super_parse(b, buf_len(&sb), &info));
	free(junk);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* A region's copy: whole and unaltered under this filesystem's key. */
TEST(super_verify)
{
	struct crypt_key *mk = new_key(), *other = new_key();
	uint8_t *kf = random_data(64);
	struct buf sb;
	uint8_t *b;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, kf, 64), 0);
	ASSERT_OK(crypt_super_verify(buf_data(&sb), buf_len(&sb), mk));
	/* truncated, as a torn copy in a region */
	ASSERT_ERR(crypt_super_verify(buf_data(&sb), 100, mk), PHI_ECORRUPT);
	ASSERT_ERR(crypt_super_verify(buf_data(&sb), 0, mk), PHI_ECORRUPT);
	/* another filesystem's key */
	ASSERT_ERR(crypt_super_verify(buf_data(&sb), buf_len(&sb), other),
		   PHI_ECORRUPT);
	/* one flipped bit in a slot's salt parses, but fails the MAC */
	b = buf_mut(&sb);
	b[64 + 30] ^= 1;
	ASSERT_ERR(crypt_super_verify(b, buf_len(&sb), mk), PHI_ECORRUPT);
	b[64 + 30] ^= 1;
	b[11] = 4;
	ASSERT_ERR(crypt_super_verify(b, buf_len(&sb), mk), PHI_EVERSION);
	b[11] = 3;
	ASSERT_OK(crypt_super_verify(b, buf_len(&sb), mk));
	free(kf);
	buf_release(&sb);
	crypt_key_free(other);
	crypt_key_free(mk);
}

TEST(kdf_params_round_trip)
{
	static const struct crypt_kdf_params ps[] = {
		{ 1u << 10, 8, 1 }, { 1u << 11, 4, 2 }, { 1u << 8, 1, 3 },
	};
	static const struct crypt_kdf_params bad[] = {
		{ 1000, 8, 1 }, { 1, 8, 1 }, { 1u << 10, 0, 1 },
		{ 1u << 10, 8, 0 }, { 1u << 23, 1, 1 }, { 1u << 22, 8, 1 },
	};
	struct crypt_key *mk = new_key(), *k = NULL;
	struct crypt_kdf_params def;
	struct crypt_super_info info;
	char pw[2] = "0";
	struct buf sb;

	new_super(mk, &sb);
	for (int i = 0; i < 3; i++) {
		pw[0] = (char)('0' + i);
		ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, pw, 1, &ps[i]),
			  i);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_ERR(crypt_super_add_passphrase(&sb, mk, "pw", 2,
						      &bad[i]), -EINVAL);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(info.slots[i].kdf.n, ps[i].n);
		ASSERT_EQ(info.slots[i].kdf.r, ps[i].r);
		ASSERT_EQ(info.slots[i].kdf.p, ps[i].p);
	}
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"2", 1, &k));
	crypt_key_free(k);
	crypt_kdf_default(&def);
	ASSERT_TRUE(def.n >= 1u << 17 && def.n <= 1u << 20);
	ASSERT_EQ(def.r, 8u);
	ASSERT_EQ(def.p, 1u);
	buf_release(&sb);
	crypt_key_free(mk);
}

/*
 * A format-1 superblock, as phifs wrote it before key management (made
 * by that code with FSID, block size 1 MiB, created 1700000000): slot 0
 * opens with the key file KF1 (32 bytes), slot 1 with the passphrase
 * "old pass" under FAST.
 */
static const char KF1[] = "0123456789abcdef0123456789abcdef";
static const uint8_t SB_V1[CRYPT_SUPER_SIZE_V1] = {
	0x50, 0x48, 0x49, 0x46, 0x53, 0x53, 0x42, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62,
	0x63, 0x64, 0x65, 0x66, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x65, 0x53, 0xf1, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x3d, 0x70, 0xf5, 0x46, 0x0d, 0x58, 0xcb, 0xb2,
	0xec, 0x13, 0x60, 0x21, 0x04, 0xea, 0x50, 0x0c, 0x26, 0xe2, 0x3b, 0x3b,
	0x9c, 0x36, 0x47, 0xe4, 0x99, 0xa1, 0xa2, 0x27, 0xe3, 0x0f, 0xa6, 0x36,
	0x0f, 0x61, 0xb5, 0xbd, 0xf3, 0x33, 0xc6, 0x46, 0xe6, 0xb1, 0xe6, 0x4a,
	0xba, 0x98, 0x71, 0x11, 0xfc, 0xf0, 0x30, 0x70, 0xdd, 0xe4, 0x16, 0x46,
	0xe6, 0xa5, 0x94, 0x9c, 0xd7, 0x74, 0xbd, 0xc7, 0x61, 0xd0, 0x19, 0x23,
	0x54, 0xc4, 0x11, 0xc6, 0x5d, 0x32, 0x9a, 0x7b, 0x41, 0x3d, 0x5c, 0x3d,
	0xb0, 0x03, 0xfb, 0xfc, 0x71, 0x88, 0x65, 0xef, 0xf1, 0x75, 0x29, 0x0a,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
	0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0xa9, 0xd4, 0xce, 0x27,
	0x5b, 0x64, 0x6b, 0x9c, 0xe9, 0x9d, 0x79, 0x22, 0x25, 0x2d, 0x31, 0x66,
	0xd4, 0x35, 0x67, 0x81, 0x35, 0xca, 0x7d, 0x72, 0x02, 0x52, 0x5b, 0x51,
	0xe3, 0x1e, 0xfc, 0x23, 0x66, 0xd8, 0x18, 0xbf, 0xe6, 0xc1, 0x33, 0xda,
	0x8a, 0x1f, 0xf6, 0x19, 0x53, 0x7b, 0xa9, 0x54, 0x12, 0xc8, 0x3a, 0x90,
	0xae, 0x19, 0x07, 0x70, 0x45, 0x73, 0x68, 0x49, 0x2b, 0x5c, 0xb9, 0x42,
	0xae, 0xf6, 0xd7, 0xd5, 0x7c, 0xcc, 0x3b, 0x3f, 0x08, 0x8d, 0xaf, 0xde,
	0x97, 0x94, 0xf7, 0x03, 0x06, 0x7f, 0xbe, 0x7d, 0x0a, 0xae, 0x09, 0x3f,
	0xd8, 0xa3, 0xc7, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x9a, 0xde, 0xfa, 0xef, 0xcc, 0xc9, 0x8a, 0xd2,
	0x11, 0x0c, 0x22, 0xb0, 0x25, 0x06, 0x54, 0xec, 0x90, 0x68, 0x0f, 0x6f,
	0xa7, 0xe1, 0x3a, 0x77, 0xa2, 0x99, 0x00, 0x91, 0xdc, 0x23, 0x2b, 0xdc,
};

/* Filesystems made before still open, and their first edit lifts them to
 * format 2 with the same key and slot numbers. */
TEST(super_format1_read_and_lifted)
{
	struct crypt_key *k = NULL, *k2 = NULL;
	struct crypt_super_info info;
	struct buf sb;
	int slot = -1;

	ASSERT_OK(crypt_super_parse(SB_V1, sizeof(SB_V1), &info));
	ASSERT_EQ(info.version, 1u);
	ASSERT_EQ(info.serial, 0u);
	ASSERT_EQ(info.nslots, 2);
	ASSERT_EQ(info.slots[0].type, CRYPT_SLOT_KEYFILE);
	ASSERT_EQ(info.slots[1].type, CRYPT_SLOT_PASSPHRASE);
	ASSERT_EQ(info.slots[1].added, 0);
	ASSERT_STREQ(info.slots[1].label, "");
	ASSERT_OK(crypt_super_unlock(SB_V1, sizeof(SB_V1), CRYPT_SLOT_PASSPHRASE,
				     "old pass", 8, &k, &slot));
	ASSERT_EQ(slot, 1);
	ASSERT_OK(crypt_super_verify(SB_V1, sizeof(SB_V1), k));
	ASSERT_ERR(crypt_super_unlock_passphrase(SB_V1, sizeof(SB_V1), "old",
						 3, &k2), PHI_EBADKEY);

	/* a buffer capped at the old size cannot take the lifted one */
	buf_init(&sb, CRYPT_SUPER_SIZE_V1);
	ASSERT_OK(buf_add(&sb, SB_V1, sizeof(SB_V1)));
	ASSERT_ERR(crypt_super_add_passphrase(&sb, k, "new", 3, &FAST), -E2BIG);
	ASSERT_EQ(buf_len(&sb), (size_t)CRYPT_SUPER_SIZE_V1);
	buf_release(&sb);

	buf_init(&sb, CRYPT_SUPER_SIZE);
	ASSERT_OK(buf_add(&sb, SB_V1, sizeof(SB_V1)));
	ASSERT_EQ(crypt_super_add_passphrase(&sb, k, "new", 3, &FAST), 2);
	ASSERT_EQ(buf_len(&sb), (size_t)CRYPT_SUPER_SIZE);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.version, (uint32_t)CRYPT_SUPER_VERSION);
	ASSERT_EQ(info.serial, 1u);
	ASSERT_EQ(info.block_size, 1u << 20);
	ASSERT_EQ(info.created, 1700000000);
	ASSERT_TRUE(memcmp(info.fsid, FSID, 16) == 0);
	ASSERT_EQ(info.nslots, 3);
	ASSERT_EQ(info.slots[0].added, 0);
	ASSERT_TRUE(info.slots[2].added > 1700000000);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), KF1,
					     32, &k2));
	assert_same_key(k, k2);
	crypt_key_free(k2);
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"old pass", 8, &k2));
	crypt_key_free(k2);
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"new", 3, &k2));
	assert_same_key(k, k2);
	crypt_key_free(k2);
	buf_release(&sb);
	crypt_key_free(k);
}

/* Labels and times are kept, checked, and covered by the MAC; the serial
 * rises with every edit. */
TEST(super_slot_meta_and_serial)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	struct crypt_slot_new ns = { CRYPT_SLOT_PASSPHRASE, "pw", 2, FAST,
				     1750000000, "front desk" };
	struct crypt_super_info info;
	char longl[CRYPT_LABEL_MAX + 2];
	struct buf sb;
	uint8_t *b;

	new_super(mk, &sb);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.serial, 1u);
	ASSERT_EQ(crypt_super_add_slot(&sb, mk, &ns), 0);
	ns.label = "ctrl\x01";
	ASSERT_ERR(crypt_super_add_slot(&sb, mk, &ns), -EINVAL);
	memset(longl, 'x', sizeof(longl) - 1);
	longl[sizeof(longl) - 1] = '\0';
	ns.label = longl;
	ASSERT_ERR(crypt_super_add_slot(&sb, mk, &ns), -EINVAL);
	longl[CRYPT_LABEL_MAX] = '\0';	/* exactly the longest */
	ASSERT_EQ(crypt_super_add_slot(&sb, mk, &ns), 1);
	ns.type = CRYPT_SLOT_EMPTY;
	ASSERT_ERR(crypt_super_add_slot(&sb, mk, &ns), -EINVAL);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.serial, 3u);
	ASSERT_STREQ(info.slots[0].label, "front desk");
	ASSERT_EQ(info.slots[0].added, 1750000000);
	ASSERT_STREQ(info.slots[1].label, longl);
	ASSERT_OK(crypt_super_remove_slot(&sb, mk, 1));
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.serial, 4u);

	/* label (slot 0 at 64, label at 120) and time are under the MAC */
	b = buf_mut(&sb);
	b[64 + 120] = 'F';
	ASSERT_OK(crypt_super_parse(b, buf_len(&sb), &info));
	ASSERT_ERR(crypt_super_verify(b, buf_len(&sb), mk), PHI_ECORRUPT);
	ASSERT_ERR(crypt_super_unlock_passphrase(b, buf_len(&sb), "pw", 2,
						 &k), PHI_ECORRUPT);
	b[64 + 120] = 'f';
	b[64 + 119] ^= 1;
	ASSERT_ERR(crypt_super_verify(b, buf_len(&sb), mk), PHI_ECORRUPT);
	b[64 + 119] ^= 1;
	b[64 + 120 + 20] = 'x';		/* text after the label's NUL */
	ASSERT_ERR(crypt_super_parse(b, buf_len(&sb), &info), PHI_ECORRUPT);
	b[64 + 120 + 20] = 0;
	b[47] ^= 1;			/* the serial */
	ASSERT_ERR(crypt_super_verify(b, buf_len(&sb), mk), PHI_ECORRUPT);
	b[47] ^= 1;
	ASSERT_OK(crypt_super_verify(b, buf_len(&sb), mk));
	buf_release(&sb);
	crypt_key_free(mk);
}

/* A changed passphrase keeps the slot's number; the old one no longer
 * opens. */
TEST(super_replace_slot)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	struct crypt_slot_new ns = { CRYPT_SLOT_PASSPHRASE, "new", 3, FAST,
				     1750000000, "nurse" };
	struct crypt_super_info info;
	struct buf sb;
	int slot = -1;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, KF1, 32), 0);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "old", 3, &FAST), 1);
	ASSERT_ERR(crypt_super_replace_slot(&sb, mk, 2, &ns), -ENOENT);
	ASSERT_ERR(crypt_super_replace_slot(&sb, mk, -1, &ns), -ENOENT);
	ASSERT_ERR(crypt_super_replace_slot(&sb, mk, 8, &ns), -ENOENT);
	ASSERT_OK(crypt_super_replace_slot(&sb, mk, 1, &ns));
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.nslots, 2);
	ASSERT_STREQ(info.slots[1].label, "nurse");
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 "old", 3, &k), PHI_EBADKEY);
	ASSERT_OK(crypt_super_unlock(buf_data(&sb), buf_len(&sb),
				     CRYPT_SLOT_PASSPHRASE, "new", 3, &k,
				     &slot));
	ASSERT_EQ(slot, 1);
	assert_same_key(mk, k);
	crypt_key_free(k);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* A recovery code prints, reads back (however typed), catches typos, and
 * opens only its own slot kind. */
TEST(recovery_code)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	uint8_t *secret = random_data(CRYPT_RECOVERY_SECRET);
	uint8_t back[CRYPT_RECOVERY_SECRET];
	struct crypt_slot_new ns = { CRYPT_SLOT_RECOVERY, secret,
				     CRYPT_RECOVERY_SECRET, { 0, 0, 0 },
				     1750000000, "safe" };
	struct crypt_super_info info;
	char text[CRYPT_RECOVERY_TEXT], typed[CRYPT_RECOVERY_TEXT];
	struct buf sb;
	int slot = -1;

	ASSERT_OK(crypt_recovery_format(secret, text));
	ASSERT_EQ(strlen(text), (size_t)CRYPT_RECOVERY_TEXT - 1);
	ASSERT_EQ(text[4], '-');
	ASSERT_OK(crypt_recovery_parse(text, strlen(text), back));
	ASSERT_TRUE(memcmp(back, secret, sizeof(back)) == 0);
	/* lower case, no dashes, O for 0 */
	{
		size_t n = 0;

		for (const char *p = text; *p; p++)
			if (*p != '-')
				typed[n++] = (char)(*p == '0' ? 'o' :
					(*p >= 'A' && *p <= 'Z') ?
					*p - 'A' + 'a' : *p);
		memset(back, 0, sizeof(back));
		ASSERT_OK(crypt_recovery_parse(typed, n, back));
		ASSERT_TRUE(memcmp(back, secret, sizeof(back)) == 0);
	}
	/* one character changed: a typo, not another code */
	memcpy(typed, text, sizeof(text));
	typed[6] = typed[6] == '2' ? '3' : '2';
	ASSERT_ERR(crypt_recovery_parse(typed, strlen(typed), back), -EILSEQ);
	ASSERT_ERR(crypt_recovery_parse(text, strlen(text) - 1, back), -EINVAL);
	ASSERT_ERR(crypt_recovery_parse("correct horse", 13, back), -EINVAL);
	ASSERT_ERR(crypt_recovery_parse("", 0, back), -EINVAL);

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &FAST), 0);
	ns.len = 31;
	ASSERT_ERR(crypt_super_add_slot(&sb, mk, &ns), -EINVAL);
	ns.len = CRYPT_RECOVERY_SECRET;
	ASSERT_EQ(crypt_super_add_slot(&sb, mk, &ns), 1);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.slots[1].type, CRYPT_SLOT_RECOVERY);
	ASSERT_OK(crypt_super_unlock(buf_data(&sb), buf_len(&sb),
				     CRYPT_SLOT_RECOVERY, secret,
				     CRYPT_RECOVERY_SECRET, &k, &slot));
	ASSERT_EQ(slot, 1);
	assert_same_key(mk, k);
	crypt_key_free(k);
	/* the secret as a passphrase or a key file opens nothing */
	ASSERT_ERR(crypt_super_unlock(buf_data(&sb), buf_len(&sb),
				      CRYPT_SLOT_KEYFILE, secret,
				      CRYPT_RECOVERY_SECRET, &k, NULL),
		   PHI_EBADKEY);
	ASSERT_ERR(crypt_super_unlock(buf_data(&sb), buf_len(&sb),
				      CRYPT_SLOT_PASSPHRASE, text,
				      strlen(text), &k, NULL), PHI_EBADKEY);
	secret[0] ^= 1;
	ASSERT_ERR(crypt_super_unlock(buf_data(&sb), buf_len(&sb),
				      CRYPT_SLOT_RECOVERY, secret,
				      CRYPT_RECOVERY_SECRET, &k, NULL),
		   PHI_EBADKEY);
	free(secret);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* Informational figures; nothing here is asserted on time. */
/* ------------------------------------------------------------------ */
/* Key generations                                                     */
/* ------------------------------------------------------------------ */

/* Seal text for object "gen-test" under mk. */
static void seal_note(const struct crypt_key *mk, const char *text,
		      struct buf *frame)
{
	buf_init(frame, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "gen-test", text, strlen(text) + 1,
			     frame));
}

/* What key makes of frame: 0 and the text in out, or the code. */
static int open_note(const struct crypt_key *key, const struct buf *frame,
		     char *out, size_t len)
{
	struct buf b;
	int rc;

	buf_init(&b, SIZE_MAX);
	rc = crypt_unseal(key, FSID, "gen-test", buf_data(frame),
			  buf_len(frame), &b);
	if (rc == 0)
		snprintf(out, len, "%s", (const char *)buf_data(&b));
	buf_release(&b);
	return rc;
}

/* A superblock with a passphrase slot "front desk" (0) and a key-file
 * slot (1), both sealed. */
static void two_slot_super(const struct crypt_key *mk, const uint8_t *kf,
			   struct buf *sb)
{
	struct crypt_super_info info;

	new_super(mk, sb);
	ASSERT_EQ(crypt_super_add_passphrase(sb, mk, "front desk", 10, &FAST),
		  0);
	ASSERT_EQ(crypt_super_add_keyfile(sb, mk, kf, 64), 1);
	ASSERT_OK(crypt_super_parse(buf_data(sb), buf_len(sb), &info));
	ASSERT_EQ(info.generation, 0u);
	ASSERT_TRUE(info.slots[0].sealed && info.slots[1].sealed);
}

/* A block record's mask depends on the key, the filesystem, and each
 * part of the record's place (inode, block, pack); the same place gives
 * the same mask (a record is read in another process than made it). */
TEST(block_rec_mask)
{
	struct crypt_key *mk = new_key(), *other = new_key();
	uint8_t pack[16] = "pack id 16 bytes";
	uint8_t m[CRYPT_BLOCK_REC_MASK], again[CRYPT_BLOCK_REC_MASK];
	uint8_t v[6][CRYPT_BLOCK_REC_MASK];

	ASSERT_OK(crypt_block_rec_mask(mk, FSID, 7, 3, pack, m));
	ASSERT_OK(crypt_block_rec_mask(mk, FSID, 7, 3, pack, again));
	ASSERT_TRUE(memcmp(m, again, sizeof(m)) == 0);
	ASSERT_OK(crypt_block_rec_mask(other, FSID, 7, 3, pack, v[0]));
	ASSERT_OK(crypt_block_rec_mask(mk, FSID2, 7, 3, pack, v[1]));
	ASSERT_OK(crypt_block_rec_mask(mk, FSID, 8, 3, pack, v[2]));
	ASSERT_OK(crypt_block_rec_mask(mk, FSID, 7, 4, pack, v[3]));
	ASSERT_OK(crypt_block_rec_mask(mk, FSID, 3, 7, pack, v[4]));
	pack[15] ^= 1;
	ASSERT_OK(crypt_block_rec_mask(mk, FSID, 7, 3, pack, v[5]));
	for (int i = 0; i < 6; i++) {
		ASSERT_TRUE(memcmp(v[i], m, sizeof(m)) != 0);
		for (int j = 0; j < i; j++)
			ASSERT_TRUE(memcmp(v[i], v[j], sizeof(m)) != 0);
	}
	crypt_key_free(other);
	crypt_key_free(mk);
}

/* After a rotation every slot opens the new key, which opens old and new
 * frames; the old key, and an old copy of the superblock, open only what
 * was sealed before. */
TEST(super_rotate)
{
	struct crypt_key *mk = new_key(), *k1 = NULL, *k = NULL;
	uint8_t *kf = random_data(64);
	struct crypt_super_info info;
	struct buf sb, old, f0, f1;
	uint8_t plain[16] = "name plaintext", n0[33], n1[33];
	char text[64];

	two_slot_super(mk, kf, &sb);
	buf_init(&old, 4096);
	ASSERT_OK(buf_add(&old, buf_data(&sb), buf_len(&sb)));
	seal_note(mk, "before", &f0);
	ASSERT_EQ(((const uint8_t *)buf_data(&f0))[4], 2);

	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	ASSERT_EQ(crypt_key_generation(k1), 1u);
	ASSERT_EQ(buf_len(&sb), (size_t)CRYPT_SUPER_SIZE);
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.generation, 1u);
	ASSERT_EQ(info.serial, 4u);
	ASSERT_EQ(info.nslots, 2);
	seal_note(k1, "after", &f1);
	ASSERT_EQ(((const uint8_t *)buf_data(&f1))[4], 3);

	/* each slot opens generation 1, which opens both frames */
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"front desk", 10, &k));
	ASSERT_EQ(crypt_key_generation(k), 1u);
	ASSERT_OK(open_note(k, &f0, text, sizeof(text)));
	ASSERT_STREQ(text, "before");
	ASSERT_OK(open_note(k, &f1, text, sizeof(text)));
	ASSERT_STREQ(text, "after");
	assert_same_key(k1, k);
	crypt_key_free(k);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					     64, &k));
	ASSERT_OK(open_note(k, &f1, text, sizeof(text)));
	crypt_key_free(k);

	/* the old key and the old copy open the old frame only */
	ASSERT_ERR(open_note(mk, &f1, text, sizeof(text)), PHI_EAUTHFAIL);
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&old), buf_len(&old),
						"front desk", 10, &k));
	ASSERT_EQ(crypt_key_generation(k), 0u);
	ASSERT_OK(open_note(k, &f0, text, sizeof(text)));
	ASSERT_ERR(open_note(k, &f1, text, sizeof(text)), PHI_EAUTHFAIL);
	crypt_key_free(k);

	/* the old copy still verifies under the new keys; the new one is
	 * newer than the old key (not damaged); an edit goes to the newest
	 * generation only */
	ASSERT_OK(crypt_super_verify(buf_data(&old), buf_len(&old), k1));
	ASSERT_ERR(crypt_super_verify(buf_data(&sb), buf_len(&sb), mk),
		   -ESTALE);
	ASSERT_ERR(crypt_super_add_keyfile(&old, k1, kf, 64), -ESTALE);
	ASSERT_ERR(crypt_super_add_keyfile(&sb, mk, kf, 64), -ESTALE);

	/* a slot added after the rotation opens generation 1 too */
	ASSERT_EQ(crypt_super_add_passphrase(&sb, k1, "night shift", 11,
					     &FAST), 2);
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"night shift", 11, &k));
	ASSERT_OK(open_note(k, &f1, text, sizeof(text)));
	crypt_key_free(k);

	/* names keep generation 0's key: a listing reads the same */
	ASSERT_OK(crypt_name_encode(mk, FSID, plain, (char *)n0));
	ASSERT_OK(crypt_name_encode(k1, FSID, plain, (char *)n1));
	ASSERT_STREQ((char *)n0, (char *)n1);

	/* and so do block records: one reads the same */
	{
		static const uint8_t pack[16] = "pack id 16 bytes";
		uint8_t m0[CRYPT_BLOCK_REC_MASK], m1[CRYPT_BLOCK_REC_MASK];

		ASSERT_OK(crypt_block_rec_mask(mk, FSID, 7, 3, pack, m0));
		ASSERT_OK(crypt_block_rec_mask(k1, FSID, 7, 3, pack, m1));
		ASSERT_TRUE(memcmp(m0, m1, sizeof(m0)) == 0);
	}

	buf_release(&f0);
	buf_release(&f1);
	buf_release(&old);
	buf_release(&sb);
	free(kf);
	crypt_key_free(k1);
	crypt_key_free(mk);
}

/* A slot removed before a rotation opens, in the copy from before, the
 * old key only: nothing sealed since. */
TEST(super_rotate_shuts_out_a_removed_slot)
{
	struct crypt_key *mk = new_key(), *k1 = NULL, *k = NULL;
	uint8_t *kf = random_data(64);
	struct buf sb, old, f1;
	char text[64];

	two_slot_super(mk, kf, &sb);
	buf_init(&old, 4096);
	ASSERT_OK(buf_add(&old, buf_data(&sb), buf_len(&sb)));
	ASSERT_OK(crypt_super_remove_slot(&sb, mk, 1));
	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	seal_note(k1, "after", &f1);
	ASSERT_ERR(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					      64, &k), PHI_EBADKEY);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&old), buf_len(&old),
					     kf, 64, &k));
	ASSERT_EQ(crypt_key_generation(k), 0u);
	ASSERT_ERR(open_note(k, &f1, text, sizeof(text)), PHI_EAUTHFAIL);
	crypt_key_free(k);
	buf_release(&f1);
	buf_release(&old);
	buf_release(&sb);
	free(kf);
	crypt_key_free(k1);
	crypt_key_free(mk);
}

/* Every generation up to the last opens what it sealed; then rotation
 * stops with -EOVERFLOW and leaves the superblock as it was. */
TEST(super_rotate_to_the_last_generation)
{
	struct crypt_key *k = new_key(), *next = NULL, *u = NULL;
	uint8_t *kf = random_data(64);
	struct buf sb, frames[CRYPT_MAX_GENS];
	char text[64], want[64];
	size_t len;

	new_super(k, &sb);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, k, kf, 64), 0);
	for (uint32_t g = 0; g < CRYPT_MAX_GENS; g++) {
		snprintf(want, sizeof(want), "generation %u", g);
		seal_note(k, want, &frames[g]);
		if (g + 1 == CRYPT_MAX_GENS)
			break;
		ASSERT_OK(crypt_super_rotate(&sb, k, &next));
		crypt_key_free(k);
		k = next;
	}
	len = buf_len(&sb);
	ASSERT_ERR(crypt_super_rotate(&sb, k, &next), -EOVERFLOW);
	ASSERT_EQ(buf_len(&sb), len);
	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), kf,
					     64, &u));
	ASSERT_EQ(crypt_key_generation(u), (uint32_t)CRYPT_MAX_GENS - 1);
	for (uint32_t g = 0; g < CRYPT_MAX_GENS; g++) {
		snprintf(want, sizeof(want), "generation %u", g);
		ASSERT_OK(open_note(u, &frames[g], text, sizeof(text)));
		ASSERT_STREQ(text, want);
		buf_release(&frames[g]);
	}
	crypt_key_free(u);
	buf_release(&sb);
	free(kf);
	crypt_key_free(k);
}

/* An altered chain, generation or public key of a rotated superblock is
 * corrupt, not a wrong passphrase. */
TEST(super_rotate_altered)
{
	static const size_t chain = 64 + CRYPT_MAX_SLOTS * 352;
	static const size_t offs[] = {
		chain + 12 + 5,			/* the chain */
		55,				/* the generation */
		64 + 192 + 7,			/* slot 0's public key */
		64 + 268 + 3,			/* slot 0's sealed master */
		64 + 316 + 9,			/* slot 0's commitment */
	};
	struct crypt_key *mk = new_key(), *k1 = NULL, *k = NULL;
	uint8_t *kf = random_data(64);
	struct buf sb;

	two_slot_super(mk, kf, &sb);
	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint8_t *b = buf_mut(&sb);
		int rc;

		b[offs[i]] ^= 0x01;
		rc = crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						   "front desk", 10, &k);
		ASSERT_TRUE(rc == PHI_ECORRUPT);
		ASSERT_TRUE(k == NULL);
		b[offs[i]] ^= 0x01;
	}
	ASSERT_OK(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						"front desk", 10, &k));
	crypt_key_free(k);
	buf_release(&sb);
	free(kf);
	crypt_key_free(k1);
	crypt_key_free(mk);
}

/* A running mount's key takes the new generation from a handoff, and
 * only a genuine one: sealed for its receiver, matching the superblock,
 * whose chain holds the keys the mount has. */
TEST(handoff_to_a_running_mount)
{
	struct crypt_key *mk = new_key(), *k1 = NULL, *k2 = NULL;
	struct crypt_key *evil = new_key(), *e1 = NULL;
	struct crypt_receiver *r = NULL, *other = NULL;
	uint8_t pub[CRYPT_HANDOFF_PUB], opub[CRYPT_HANDOFF_PUB];
	uint8_t msg[CRYPT_HANDOFF_SIZE], bad[CRYPT_HANDOFF_SIZE], tag[32];
	uint8_t *kf = random_data(64);
	struct buf sb, old, forged, f1;
	uint32_t gen = 99;
	char text[64];

	two_slot_super(mk, kf, &sb);
	buf_init(&old, 4096);
	ASSERT_OK(buf_add(&old, buf_data(&sb), buf_len(&sb)));
	ASSERT_OK(crypt_receiver_new(&r, pub));
	ASSERT_OK(crypt_receiver_new(&other, opub));
	ASSERT_ERR(crypt_handoff_seal(mk, FSID, pub, msg), -EINVAL);

	/* the receiver's public key, tagged by the mount, checked by rotate */
	ASSERT_OK(crypt_handoff_pub_tag(mk, 0, FSID, pub, tag));
	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	ASSERT_OK(crypt_handoff_pub_check(k1, 0, FSID, pub, tag));
	ASSERT_ERR(crypt_handoff_pub_check(k1, 0, FSID, opub, tag),
		   PHI_EAUTHFAIL);
	ASSERT_ERR(crypt_handoff_pub_check(k1, 0, FSID2, pub, tag),
		   PHI_EAUTHFAIL);
	ASSERT_ERR(crypt_handoff_pub_check(mk, 1, FSID, pub, tag),
		   PHI_EAUTHFAIL);

	/* two rotations while the mount missed the first */
	ASSERT_OK(crypt_super_rotate(&sb, k1, &k2));
	seal_note(k1, "sealed under generation 1", &f1);
	ASSERT_OK(crypt_handoff_seal(k2, FSID, pub, msg));

	/* not for this receiver, altered, with an older superblock, or for
	 * another filesystem */
	ASSERT_ERR(crypt_handoff_open(other, FSID, msg, buf_data(&sb),
				      buf_len(&sb), mk, &gen), PHI_EAUTHFAIL);
	memcpy(bad, msg, sizeof(bad));
	bad[50] ^= 1;
	ASSERT_ERR(crypt_handoff_open(r, FSID, bad, buf_data(&sb),
				      buf_len(&sb), mk, &gen), PHI_EAUTHFAIL);
	ASSERT_ERR(crypt_handoff_open(r, FSID, msg, buf_data(&old),
				      buf_len(&old), mk, &gen), PHI_ECORRUPT);
	ASSERT_ERR(crypt_handoff_open(r, FSID2, msg, buf_data(&sb),
				      buf_len(&sb), mk, &gen), PHI_EAUTHFAIL);

	/* a key of someone else's making, with a superblock of theirs that
	 * MACs under it: its chain is not the mount's keys */
	two_slot_super(evil, kf, &forged);
	ASSERT_OK(crypt_super_rotate(&forged, evil, &e1));
	ASSERT_OK(crypt_handoff_seal(e1, FSID, pub, bad));
	ASSERT_ERR(crypt_handoff_open(r, FSID, bad, buf_data(&forged),
				      buf_len(&forged), mk, &gen),
		   PHI_ECORRUPT);
	ASSERT_EQ(crypt_key_generation(mk), 0u);
	ASSERT_EQ(gen, 99u);

	ASSERT_OK(crypt_handoff_open(r, FSID, msg, buf_data(&sb), buf_len(&sb),
				     mk, &gen));
	ASSERT_EQ(gen, 2u);
	ASSERT_EQ(crypt_key_generation(mk), 2u);
	ASSERT_OK(open_note(mk, &f1, text, sizeof(text)));	/* caught up */
	ASSERT_STREQ(text, "sealed under generation 1");
	buf_release(&f1);
	seal_note(mk, "sealed by the mount", &f1);
	ASSERT_EQ(((const uint8_t *)buf_data(&f1))[4], 3);
	ASSERT_OK(open_note(k2, &f1, text, sizeof(text)));
	ASSERT_STREQ(text, "sealed by the mount");
	ASSERT_ERR(crypt_handoff_open(r, FSID, msg, buf_data(&sb), buf_len(&sb),
				      mk, &gen), -ESTALE);

	buf_release(&f1);
	buf_release(&forged);
	buf_release(&old);
	buf_release(&sb);
	crypt_receiver_free(other);
	crypt_receiver_free(r);
	free(kf);
	crypt_key_free(e1);
	crypt_key_free(evil);
	crypt_key_free(k2);
	crypt_key_free(k1);
	crypt_key_free(mk);
}

/*
 * A format-2 superblock, as phifs wrote it before rotation (made by that
 * code with FSID, block size 1 MiB, created 1700000000): slot 0 opens
 * with the key file KF1, slot 1 ("front desk") with the passphrase "old
 * pass" under FAST.
 */
static const uint8_t SB_V2[CRYPT_SUPER_SIZE_V2] = {
	0x50, 0x48, 0x49, 0x46, 0x53, 0x53, 0x42, 0x00, 0x00, 0x00, 0x00, 0x02,
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62,
	0x63, 0x64, 0x65, 0x66, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x65, 0x53, 0xf1, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x89, 0x42, 0x13, 0x6f, 0xfd, 0xd3, 0xfa, 0xc4, 0x7d, 0xf1, 0xf0, 0x5b,
	0x01, 0xdd, 0x52, 0xa5, 0x13, 0x8b, 0xc0, 0x46, 0xeb, 0xe8, 0x22, 0x2f,
	0xc0, 0x83, 0x97, 0x28, 0xb9, 0x10, 0x09, 0x96, 0x5d, 0x18, 0xa6, 0x49,
	0x91, 0x1b, 0x2b, 0x12, 0x63, 0xe8, 0xa0, 0x45, 0x2a, 0x75, 0x54, 0xea,
	0x51, 0x81, 0xdc, 0x4b, 0x6b, 0xc6, 0x9c, 0xb9, 0xdd, 0xcd, 0xea, 0xa6,
	0xc0, 0x60, 0x19, 0x27, 0x19, 0x07, 0x56, 0x21, 0x3a, 0x85, 0xcf, 0x90,
	0x3d, 0x21, 0xeb, 0xaa, 0x55, 0x1e, 0x11, 0xd0, 0x46, 0xe9, 0xcc, 0xd4,
	0x23, 0xdd, 0x24, 0x18, 0xb7, 0x4c, 0x74, 0xeb, 0x00, 0x00, 0x00, 0x00,
	0x65, 0x53, 0xf1, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01,
	0xbc, 0x76, 0x76, 0x2d, 0x0f, 0xd5, 0x24, 0x78, 0xc2, 0x1e, 0xed, 0xa8,
	0x02, 0xe3, 0x00, 0xab, 0x00, 0xe8, 0xff, 0xc5, 0xcc, 0x05, 0x03, 0x27,
	0x58, 0x67, 0xbe, 0xd9, 0x3c, 0x65, 0x23, 0x9f, 0xb7, 0xc2, 0xd6, 0x05,
	0x12, 0x95, 0xf0, 0x5d, 0x1a, 0xb2, 0x57, 0x76, 0x56, 0xd9, 0x6e, 0x5d,
	0x54, 0x89, 0x80, 0xb3, 0xd6, 0xb9, 0xa4, 0xa2, 0x05, 0xd0, 0x0c, 0x70,
	0x5a, 0xb2, 0xfb, 0x3c, 0x0e, 0x58, 0xdd, 0x39, 0x4d, 0xe0, 0xdb, 0x42,
	0x60, 0xd8, 0x34, 0xcd, 0xfa, 0x12, 0xe4, 0x0b, 0x3a, 0x43, 0x8b, 0x66,
	0xaa, 0xa7, 0x3e, 0x0a, 0xd4, 0x8d, 0xaf, 0x33, 0x00, 0x00, 0x00, 0x00,
	0x65, 0x53, 0xf1, 0x64, 0x66, 0x72, 0x6f, 0x6e, 0x74, 0x20, 0x64, 0x65,
	0x73, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x31, 0xf6, 0x47, 0x36, 0x18, 0x59, 0xbf, 0x7a,
	0xd5, 0xce, 0xf9, 0x03, 0x50, 0x26, 0x8f, 0x35, 0x8d, 0xef, 0x43, 0x7e,
	0xb1, 0xc3, 0x51, 0xb1, 0x1e, 0x5e, 0x91, 0x1b, 0xaf, 0x34, 0x71, 0x48
};

/* It opens as generation 0 with direct slots; rotation waits until each
 * slot is made again (sealed) with its secret. */
TEST(super_format2_read_and_rotated)
{
	struct crypt_slot_new ns = { CRYPT_SLOT_PASSPHRASE, "old pass", 8,
				     { 1u << 10, 8, 1 }, 1700000100,
				     "front desk" };
	struct crypt_slot_new nk = { CRYPT_SLOT_KEYFILE, KF1, 32,
				     { 0, 0, 0 }, 1700000050, NULL };
	struct crypt_key *k = NULL, *k1 = NULL, *u = NULL;
	struct crypt_super_info info;
	struct buf sb, f0;
	char text[64];
	int slot;

	ASSERT_OK(crypt_super_parse(SB_V2, sizeof(SB_V2), &info));
	ASSERT_EQ(info.version, 2u);
	ASSERT_EQ(info.generation, 0u);
	ASSERT_TRUE(!info.slots[0].sealed && !info.slots[1].sealed);
	ASSERT_STREQ(info.slots[1].label, "front desk");
	ASSERT_OK(crypt_super_unlock(SB_V2, sizeof(SB_V2),
				     CRYPT_SLOT_PASSPHRASE, "old pass", 8, &k,
				     &slot));
	ASSERT_EQ(slot, 1);
	seal_note(k, "format 2", &f0);

	buf_init(&sb, CRYPT_SUPER_SIZE);
	ASSERT_OK(buf_add(&sb, SB_V2, sizeof(SB_V2)));
	ASSERT_ERR(crypt_super_rotate(&sb, k, &k1), -EPERM);
	ASSERT_EQ(buf_len(&sb), (size_t)CRYPT_SUPER_SIZE_V2);
	ASSERT_OK(crypt_super_replace_slot(&sb, k, 1, &ns));
	ASSERT_OK(crypt_super_parse(buf_data(&sb), buf_len(&sb), &info));
	ASSERT_EQ(info.version, (uint32_t)CRYPT_SUPER_VERSION);
	ASSERT_TRUE(!info.slots[0].sealed && info.slots[1].sealed);
	ASSERT_ERR(crypt_super_rotate(&sb, k, &k1), -EPERM);
	ASSERT_OK(crypt_super_replace_slot(&sb, k, 0, &nk));
	ASSERT_OK(crypt_super_rotate(&sb, k, &k1));

	ASSERT_OK(crypt_super_unlock_keyfile(buf_data(&sb), buf_len(&sb), KF1,
					     32, &u));
	ASSERT_EQ(crypt_key_generation(u), 1u);
	ASSERT_OK(open_note(u, &f0, text, sizeof(text)));
	ASSERT_STREQ(text, "format 2");
	crypt_key_free(u);
	buf_release(&f0);
	buf_release(&sb);
	crypt_key_free(k1);
	crypt_key_free(k);
}

/* A version-3 frame names a generation from 1 up to the last, then
 * zeros: anything else there is malformed; a version-2 frame relabelled
 * as one of generation 1 fails its tag. */
TEST(frame_generation_field)
{
	struct crypt_key *mk = new_key(), *k1 = NULL;
	uint8_t *kf = random_data(64);
	struct buf sb, f, out;
	uint8_t *b;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_keyfile(&sb, mk, kf, 64), 0);
	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	buf_init(&f, SIZE_MAX);
	ASSERT_OK(crypt_seal(k1, FSID, "obj-1", "note", 4, &f));
	b = buf_mut(&f);
	ASSERT_EQ(b[4], 3);
	ASSERT_EQ(b[21], 1);		/* generation 1, big-endian at 18 */
	b[21] = 0;
	expect_corrupt(k1, b, buf_len(&f));
	b[18] = 0xff;			/* far past the last generation */
	b[21] = 1;
	expect_corrupt(k1, b, buf_len(&f));
	b[18] = 0;
	b[21] = CRYPT_MAX_GENS;
	expect_corrupt(k1, b, buf_len(&f));
	b[21] = 1;
	b[24] = 1;			/* the zeros after it */
	expect_corrupt(k1, b, buf_len(&f));
	b[24] = 0;
	buf_init(&out, SIZE_MAX);
	ASSERT_OK(crypt_unseal(k1, FSID, "obj-1", b, buf_len(&f), &out));
	buf_release(&out);
	buf_release(&f);

	/* generation 0's frame, its header made to say generation 1 */
	buf_init(&f, SIZE_MAX);
	ASSERT_OK(crypt_seal(mk, FSID, "obj-1", "note", 4, &f));
	b = buf_mut(&f);
	ASSERT_EQ(b[4], 2);
	b[4] = 3;
	b[21] = 1;
	buf_init(&out, SIZE_MAX);
	ASSERT_ERR(crypt_unseal(k1, FSID, "obj-1", b, buf_len(&f), &out),
		   PHI_EAUTHFAIL);
	buf_release(&out);
	buf_release(&f);
	buf_release(&sb);
	free(kf);
	crypt_key_free(k1);
	crypt_key_free(mk);
}

/* --- what someone who can write the superblock, but holds no secret,
 * can do: the formats of crypt.h, written here by hand --------------- */

/* HKDF-SHA256 with info = label, NUL, extra (as crypt.h's formats). */
static void hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
		 size_t saltlen, const char *label, const uint8_t *extra,
		 size_t extralen, uint8_t out[32])
{
	static char sha256[] = "SHA256";
	uint8_t info[128];
	size_t n = strlen(label) + 1;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[5];

	ASSERT_TRUE(ctx != NULL && n + extralen <= sizeof(info));
	memcpy(info, label, n);
	if (extralen)
		memcpy(info + n, extra, extralen);
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						sha256, 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)ikm, ikmlen);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						 (void *)salt, saltlen);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
						 n + extralen);
	p[4] = OSSL_PARAM_construct_end();
	ASSERT_EQ(EVP_KDF_derive(ctx, out, 32, p), 1);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

/* Seal key to the public key of the slot at s (generation 0), in place. */
static void forge_slot_seal(uint8_t *s, const uint8_t key[32])
{
	uint8_t eph[32], shared[32], wk[32], both[64], g[4] = { 0 };
	EVP_PKEY *e, *peer;
	EVP_PKEY_CTX *ctx;
	EVP_CIPHER_CTX *c;
	size_t n = 32;
	int len;

	ASSERT_OK(crypt_random_bytes(eph, sizeof(eph)));
	e = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, eph, 32);
	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, s + 192, 32);
	ASSERT_TRUE(e && peer);
	ASSERT_EQ(EVP_PKEY_get_raw_public_key(e, s + 224, &n), 1);
	ctx = EVP_PKEY_CTX_new(e, NULL);
	n = 32;
	ASSERT_TRUE(ctx && EVP_PKEY_derive_init(ctx) == 1 &&
		    EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
		    EVP_PKEY_derive(ctx, shared, &n) == 1);
	memcpy(both, s + 192, 32);
	memcpy(both + 32, s + 224, 32);
	hkdf(shared, 32, FSID, 16, "phifs slot seal v1", both, 64, wk);
	ASSERT_OK(crypt_random_bytes(s + 256, 12));
	c = EVP_CIPHER_CTX_new();
	ASSERT_TRUE(c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, wk,
					    s + 256) == 1 &&
		    EVP_EncryptUpdate(c, NULL, &len, FSID, 16) == 1 &&
		    EVP_EncryptUpdate(c, NULL, &len, g, 4) == 1 &&
		    EVP_EncryptUpdate(c, s + 268, &len, key, 32) == 1 &&
		    EVP_EncryptFinal_ex(c, s + 268 + len, &len) == 1 &&
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
					s + 300) == 1);
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(e);
}

/* MAC the superblock sb (format 3, generation 0) under key. */
static void forge_mac(uint8_t *sb, const uint8_t key[32])
{
	uint8_t mk[32];
	unsigned int n = 32;

	hkdf(key, 32, FSID, 16, "phifs superblock mac v1", NULL, 0, mk);
	ASSERT_TRUE(HMAC(EVP_sha256(), mk, 32, sb, CRYPT_SUPER_SIZE - 32,
			 sb + CRYPT_SUPER_SIZE - 32, &n) != NULL);
}

/*
 * Someone who can write the superblock (a region's operator, on a
 * machine that takes it from the regions) seals a master key of their
 * own to slot 0's public key and MACs the superblock under it: the
 * passphrase must not open their key: the slot's commitment to the
 * filesystem's first key fails.  (Checked once by hand that, with the
 * commitment's check taken out of super_unlock(), the passphrase opens
 * the forged superblock: the forging itself is right.)
 */
TEST(super_slot_cannot_be_given_another_key)
{
	struct crypt_key *mk = new_key(), *k = NULL;
	uint8_t theirs[32], *b;
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "front desk", 10, &FAST),
		  0);
	ASSERT_OK(crypt_random_bytes(theirs, sizeof(theirs)));
	b = buf_mut(&sb);
	forge_slot_seal(b + 64, theirs);
	forge_mac(b, theirs);
	ASSERT_ERR(crypt_super_unlock_passphrase(buf_data(&sb), buf_len(&sb),
						 "front desk", 10, &k),
		   PHI_ECORRUPT);
	ASSERT_TRUE(k == NULL);
	buf_release(&sb);
	crypt_key_free(mk);
}

/* ------------------------------------------------------------------ */
/* Sectors of the local store                                          */
/* ------------------------------------------------------------------ */

static const uint8_t CACHE1[16] = "cache-one-16byte";
static const uint8_t CACHE2[16] = "cache-two-16byte";

/* n sectors of plain sealed into ct (both n * CRYPT_SECTOR bytes), for
 * inode 7 from sector first, counters from ctr. */
static void seal_sectors(struct crypt_local *l, const uint8_t *plain,
			 uint8_t *ct, struct crypt_sector *s, size_t n,
			 uint64_t first, uint64_t ctr)
{
	for (size_t i = 0; i < n; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].index = first + i;
		s[i].counter = ctr + i;
		s[i].salt = 0x5a5a0001;
		s[i].in = plain + i * CRYPT_SECTOR;
		s[i].out = ct + i * CRYPT_SECTOR;
	}
	ASSERT_OK(crypt_local_seal(l, 7, s, n));
}

/* Open s[0..n) (sealed by seal_sectors()) from ct into out. */
static int open_sectors(struct crypt_local *l, uint64_t ino,
			struct crypt_sector *s, size_t n, const uint8_t *ct,
			uint8_t *out, size_t *failed)
{
	for (size_t i = 0; i < n; i++) {
		s[i].in = ct + i * CRYPT_SECTOR;
		s[i].out = out + i * CRYPT_SECTOR;
	}
	return crypt_local_open(l, ino, s, n, failed);
}

TEST(local_sectors_round_trip)
{
	struct crypt_key *mk = new_key();
	struct crypt_local *l = NULL;
	uint8_t *plain = random_data(8 * CRYPT_SECTOR);
	uint8_t *ct = malloc(8 * CRYPT_SECTOR), *out = malloc(8 * CRYPT_SECTOR);
	struct crypt_sector s[8];

	ASSERT_OK(crypt_local_new(mk, FSID, CACHE1, &l));
	seal_sectors(l, plain, ct, s, 8, 100, 1);
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(s[i].gen, 0u);
		ASSERT_TRUE(memcmp(ct + i * CRYPT_SECTOR, plain + i * CRYPT_SECTOR,
				   CRYPT_SECTOR) != 0);
	}
	ASSERT_OK(open_sectors(l, 7, s, 8, ct, out, NULL));
	ASSERT_TRUE(memcmp(out, plain, 8 * CRYPT_SECTOR) == 0);

	/* in place, both ways */
	memcpy(out, plain, 8 * CRYPT_SECTOR);
	for (int i = 0; i < 8; i++)
		s[i].in = s[i].out = out + i * CRYPT_SECTOR;
	ASSERT_OK(crypt_local_seal(l, 7, s, 8));
	ASSERT_TRUE(memcmp(out, ct, 8 * CRYPT_SECTOR) == 0);	/* same nonces */
	ASSERT_OK(crypt_local_open(l, 7, s, 8, NULL));
	ASSERT_TRUE(memcmp(out, plain, 8 * CRYPT_SECTOR) == 0);

	/* the same plaintext under another counter looks different */
	s[0].counter = 99;
	s[0].in = plain;
	s[0].out = out;
	ASSERT_OK(crypt_local_seal(l, 7, s, 1));
	ASSERT_TRUE(memcmp(out, ct, CRYPT_SECTOR) != 0);

	crypt_local_free(l);
	crypt_key_free(mk);
	free(plain);
	free(ct);
	free(out);
}

/* A sector opens only in its place, under its nonce, in its cache, with
 * its bytes: whatever else changes fails the tag and leaves no
 * plaintext behind, and the sectors before it are opened. */
TEST(local_sectors_bound_to_their_place)
{
	struct crypt_key *mk = new_key(), *other = new_key();
	struct crypt_local *l = NULL, *l2 = NULL, *lf = NULL, *lk = NULL;
	uint8_t *plain = random_data(4 * CRYPT_SECTOR);
	uint8_t *ct = malloc(4 * CRYPT_SECTOR), *out = malloc(4 * CRYPT_SECTOR);
	struct crypt_sector s[4], t[4];
	size_t failed = 99;

	ASSERT_OK(crypt_local_new(mk, FSID, CACHE1, &l));
	ASSERT_OK(crypt_local_new(mk, FSID, CACHE2, &l2));
	ASSERT_OK(crypt_local_new(mk, FSID2, CACHE1, &lf));
	ASSERT_OK(crypt_local_new(other, FSID, CACHE1, &lk));
	seal_sectors(l, plain, ct, s, 4, 0, 1000);

	/* another inode */
	memcpy(t, s, sizeof(s));
	ASSERT_ERR(open_sectors(l, 8, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 0u);
	/* sectors 1 and 2 swapped */
	memcpy(t, s, sizeof(s));
	t[1].index = 2;
	t[2].index = 1;
	memset(out, 0xee, 4 * CRYPT_SECTOR);
	ASSERT_ERR(open_sectors(l, 7, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 1u);
	ASSERT_TRUE(memcmp(out, plain, CRYPT_SECTOR) == 0);
	for (size_t i = CRYPT_SECTOR; i < 2 * CRYPT_SECTOR; i++)
		ASSERT_EQ(out[i], 0);			/* wiped */
	ASSERT_EQ(out[2 * CRYPT_SECTOR], 0xee);	/* untouched */
	/* another counter, another salt, another generation */
	memcpy(t, s, sizeof(s));
	t[3].counter++;
	ASSERT_ERR(open_sectors(l, 7, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 3u);
	memcpy(t, s, sizeof(s));
	t[2].salt ^= 1;
	ASSERT_ERR(open_sectors(l, 7, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 2u);
	memcpy(t, s, sizeof(s));
	t[0].gen = 1;		/* mk has no generation 1 */
	ASSERT_ERR(open_sectors(l, 7, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 0u);
	/* another cache, filesystem or key */
	memcpy(t, s, sizeof(s));
	ASSERT_ERR(open_sectors(l2, 7, t, 4, ct, out, NULL), PHI_EAUTHFAIL);
	ASSERT_ERR(open_sectors(lf, 7, t, 4, ct, out, NULL), PHI_EAUTHFAIL);
	ASSERT_ERR(open_sectors(lk, 7, t, 4, ct, out, NULL), PHI_EAUTHFAIL);
	/* a flipped bit in a sector, or in its tag */
	ct[2 * CRYPT_SECTOR + 17] ^= 0x10;
	ASSERT_ERR(open_sectors(l, 7, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 2u);
	ct[2 * CRYPT_SECTOR + 17] ^= 0x10;
	t[3].tag[15] ^= 1;
	ASSERT_ERR(open_sectors(l, 7, t, 4, ct, out, &failed), PHI_EAUTHFAIL);
	ASSERT_EQ(failed, 3u);
	t[3].tag[15] ^= 1;
	ASSERT_OK(open_sectors(l, 7, t, 4, ct, out, NULL));
	ASSERT_TRUE(memcmp(out, plain, 4 * CRYPT_SECTOR) == 0);

	crypt_local_free(l);
	crypt_local_free(l2);
	crypt_local_free(lf);
	crypt_local_free(lk);
	crypt_key_free(mk);
	crypt_key_free(other);
	free(plain);
	free(ct);
	free(out);
}

/* After a rotation the mount's key seals under the new generation, and
 * still opens what the old one sealed; the old key opens only that. */
TEST(local_sectors_across_a_rotation)
{
	struct crypt_key *mk = new_key(), *k1 = NULL;
	struct crypt_local *l0 = NULL, *l1 = NULL;
	uint8_t *plain = random_data(2 * CRYPT_SECTOR);
	uint8_t *ct = malloc(2 * CRYPT_SECTOR), *out = malloc(2 * CRYPT_SECTOR);
	struct crypt_sector s[2], t[2];
	struct buf sb;

	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &FAST), 0);
	ASSERT_OK(crypt_local_new(mk, FSID, CACHE1, &l0));
	seal_sectors(l0, plain, ct, s, 1, 0, 1);
	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	ASSERT_OK(crypt_local_new(k1, FSID, CACHE1, &l1));
	memset(&s[1], 0, sizeof(s[1]));
	s[1].index = 1;
	s[1].counter = 2;
	s[1].in = plain + CRYPT_SECTOR;
	s[1].out = ct + CRYPT_SECTOR;
	ASSERT_OK(crypt_local_seal(l1, 7, &s[1], 1));
	ASSERT_EQ(s[0].gen, 0u);
	ASSERT_EQ(s[1].gen, 1u);

	memcpy(t, s, sizeof(s));
	ASSERT_OK(open_sectors(l1, 7, t, 2, ct, out, NULL));
	ASSERT_TRUE(memcmp(out, plain, 2 * CRYPT_SECTOR) == 0);
	memcpy(t, s, sizeof(s));
	ASSERT_OK(open_sectors(l0, 7, t, 1, ct, out, NULL));
	ASSERT_ERR(open_sectors(l0, 7, &t[1], 1, ct + CRYPT_SECTOR, out, NULL),
		   PHI_EAUTHFAIL);
	/* the generation is bound: the new sector under the old key's
	 * generation number fails */
	t[1].gen = 0;
	ASSERT_ERR(open_sectors(l1, 7, &t[1], 1, ct + CRYPT_SECTOR, out, NULL),
		   PHI_EAUTHFAIL);

	crypt_local_free(l0);
	crypt_local_free(l1);
	crypt_key_free(mk);
	crypt_key_free(k1);
	buf_release(&sb);
	free(plain);
	free(ct);
	free(out);
}

/* Names of the local metadata: found again, told apart by parent, name
 * and cache, the same after a rotation.  Values: open only under their
 * key (aad), unaltered, with the generation that sealed them. */
TEST(local_metadata_names_and_values)
{
	struct crypt_key *mk = new_key(), *k1 = NULL;
	struct crypt_local *l = NULL, *l2 = NULL, *l1 = NULL;
	uint8_t a[CRYPT_LOCAL_NAME], b[CRYPT_LOCAL_NAME];
	static const char value[] = "Patient Doe, DOB 1970-01-01";
	uint8_t sealed[sizeof(value) + CRYPT_LOCAL_VALUE_OVERHEAD];
	uint8_t sealed1[sizeof(value) + CRYPT_LOCAL_VALUE_OVERHEAD];
	char out[sizeof(value)];
	struct buf sb;

	ASSERT_OK(crypt_local_new(mk, FSID, CACHE1, &l));
	ASSERT_OK(crypt_local_new(mk, FSID, CACHE2, &l2));
	ASSERT_OK(crypt_local_name(l, 0, 1, "Doe^John", 8, a));
	ASSERT_OK(crypt_local_name(l, 0, 1, "Doe^John", 8, b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
	ASSERT_OK(crypt_local_name(l, 0, 2, "Doe^John", 8, b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) != 0);
	ASSERT_OK(crypt_local_name(l, 0, 1, "Doe^Joan", 8, b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) != 0);
	ASSERT_OK(crypt_local_name(l2, 0, 1, "Doe^John", 8, b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) != 0);
	ASSERT_OK(crypt_local_name(l, 1, 1, "Doe^John", 8, b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) != 0);	/* another domain */

	ASSERT_OK(crypt_local_seal_value(l, "k1", 2, value,
					 sizeof(value), sealed));
	ASSERT_TRUE(memmem(sealed, sizeof(sealed), "Doe", 3) == NULL);
	/* the nonce follows aad and value: alike only where both are */
	ASSERT_OK(crypt_local_seal_value(l, "k1", 2, value, sizeof(value),
					 sealed1));
	ASSERT_TRUE(memcmp(sealed, sealed1, sizeof(sealed)) == 0);
	ASSERT_OK(crypt_local_seal_value(l, "k2", 2, value, sizeof(value),
					 sealed1));
	ASSERT_TRUE(memcmp(sealed + 4, sealed1 + 4, 12) != 0);
	ASSERT_OK(crypt_local_open_value(l, "k1", 2, sealed, sizeof(sealed),
					 out));
	ASSERT_TRUE(memcmp(out, value, sizeof(value)) == 0);
	ASSERT_ERR(crypt_local_open_value(l, "k2", 2, sealed, sizeof(sealed),
					  out), PHI_EAUTHFAIL);
	ASSERT_ERR(crypt_local_open_value(l2, "k1", 2, sealed,
					  sizeof(sealed), out), PHI_EAUTHFAIL);
	sealed[20] ^= 4;
	ASSERT_ERR(crypt_local_open_value(l, "k1", 2, sealed, sizeof(sealed),
					  out), PHI_EAUTHFAIL);
	sealed[20] ^= 4;
	ASSERT_ERR(crypt_local_open_value(l, "k1", 2, sealed, 31, out),
		   PHI_ECORRUPT);

	/* a rotation: names stay, new values seal under generation 1,
	 * old ones still open; the old key opens only the old ones */
	new_super(mk, &sb);
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &FAST), 0);
	ASSERT_OK(crypt_super_rotate(&sb, mk, &k1));
	ASSERT_OK(crypt_local_new(k1, FSID, CACHE1, &l1));
	ASSERT_OK(crypt_local_name(l1, 0, 1, "Doe^John", 8, b));
	ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
	ASSERT_OK(crypt_local_seal_value(l1, "k1", 2, value,
					 sizeof(value), sealed1));
	ASSERT_OK(crypt_local_open_value(l1, "k1", 2, sealed, sizeof(sealed),
					 out));
	ASSERT_OK(crypt_local_open_value(l1, "k1", 2, sealed1,
					 sizeof(sealed1), out));
	ASSERT_TRUE(memcmp(out, value, sizeof(value)) == 0);
	ASSERT_ERR(crypt_local_open_value(l, "k1", 2, sealed1,
					  sizeof(sealed1), out), PHI_EAUTHFAIL);

	crypt_local_free(l);
	crypt_local_free(l2);
	crypt_local_free(l1);
	crypt_key_free(mk);
	crypt_key_free(k1);
	buf_release(&sb);
}

/* Sealing and opening 1 MiB as local sectors, in calls of 32 sectors
 * (a FUSE read of 128 KiB). */
static void measure_sectors(const struct crypt_key *mk, uint8_t *data)
{
	struct crypt_sector s[MIB / CRYPT_SECTOR];
	struct crypt_local *l = NULL;
	uint8_t *ct = malloc(MIB);
	const size_t per = 32, n = MIB / CRYPT_SECTOR;
	const int rounds = 64;
	double t0, ts, to;

	ASSERT_OK(crypt_local_new(mk, FSID, CACHE1, &l));
	t0 = now_s();
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i += per)
			seal_sectors(l, data + i * CRYPT_SECTOR,
				     ct + i * CRYPT_SECTOR, &s[i], per, i,
				     i + 1);
	ts = now_s() - t0;
	t0 = now_s();
	for (int r = 0; r < rounds; r++) {
		if (r)	/* opened in place: seal again, untimed */
			for (size_t i = 0; i < n; i += per) {
				to = now_s();
				seal_sectors(l, data + i * CRYPT_SECTOR,
					     ct + i * CRYPT_SECTOR, &s[i], per,
					     i, i + 1);
				t0 += now_s() - to;
			}
		for (size_t i = 0; i < n; i += per)
			ASSERT_OK(open_sectors(l, 7, &s[i], per,
					       ct + i * CRYPT_SECTOR,
					       ct + i * CRYPT_SECTOR, NULL));
	}
	to = now_s() - t0;
	test_diag("local sectors, %zu per call: seal %.0f MB/s, open %.0f MB/s",
		  per, rounds * (double)MIB / ts / 1e6,
		  rounds * (double)MIB / to / 1e6);
	crypt_local_free(l);
	free(ct);
}

TEST(measure)
{
	struct crypt_key *mk = new_key();
	uint8_t *data = random_data(MIB);
	char *text = text_data(MIB);
	struct crypt_kdf_params def;
	struct buf sb, frame, out;
	const int rounds = 32;
	double t0, ts, tu;

	crypt_kdf_default(&def);
	new_super(mk, &sb);
	t0 = now_s();
	ASSERT_EQ(crypt_super_add_passphrase(&sb, mk, "pw", 2, &def), 0);
	test_diag("scrypt N=2^%d r=%u p=%u (%llu MiB): %.2f s",
		  __builtin_ctzll(def.n), def.r, def.p,
		  (unsigned long long)(128 * def.n * def.r >> 20),
		  now_s() - t0);
	buf_release(&sb);

	buf_init(&frame, SIZE_MAX);
	buf_init(&out, SIZE_MAX);
	for (int kind = 0; kind < 2; kind++) {
		const void *src = kind ? (const void *)text : data;

		t0 = now_s();
		for (int i = 0; i < rounds; i++) {
			buf_reset(&frame);
			ASSERT_OK(crypt_seal(mk, FSID, "m", src, MIB, &frame));
		}
		ts = now_s() - t0;
		t0 = now_s();
		for (int i = 0; i < rounds; i++) {
			buf_reset(&out);
			ASSERT_OK(crypt_unseal(mk, FSID, "m", buf_data(&frame),
					       buf_len(&frame), &out));
		}
		tu = now_s() - t0;
		test_diag("1 MiB %s blocks: seal %.0f MB/s, unseal %.0f MB/s "
			  "(frame %zu bytes)", kind ? "text" : "random",
			  rounds * (double)MIB / ts / 1e6,
			  rounds * (double)MIB / tu / 1e6, buf_len(&frame));
	}
	t0 = now_s();
	for (int i = 0; i < 10000; i++) {
		buf_reset(&frame);
		ASSERT_OK(crypt_seal(mk, FSID, "m", "x", 1, &frame));
	}
	test_diag("1-byte seal (HKDF + GCM per object): %.1f us",
		  (now_s() - t0) / 10000 * 1e6);
	buf_release(&frame);
	measure_sectors(mk, data);
	buf_release(&out);
	free(text);
	free(data);
	crypt_key_free(mk);
}

TEST_MAIN(
	TEST_ENTRY(seal_empty),
	TEST_ENTRY(pad_size_classes),
	TEST_ENTRY(sizes_within_a_class_look_alike),
	TEST_ENTRY(version_1_frames_still_open),
	TEST_ENTRY(seal_one_byte),
	TEST_ENTRY(seal_text_compresses),
	TEST_ENTRY(seal_random_stored_raw),
	TEST_ENTRY(seal_16mib),
	TEST_ENTRY(seal_appends),
	TEST_ENTRY(unseal_in_place_or_through_a_temporary),
	TEST_ENTRY(tamper_detected),
	TEST_ENTRY(other_object_id),
	TEST_ENTRY(other_fsid),
	TEST_ENTRY(other_key),
	TEST_ENTRY(truncated_or_padded),
	TEST_ENTRY(frame_generation_field),
	TEST_ENTRY(seal_in_two_halves),
	TEST_ENTRY(bad_arguments),
	TEST_ENTRY(nonce_is_random),
	TEST_ENTRY(block_hash_keyed),
	TEST_ENTRY(random_ids),
	TEST_ENTRY(harden_process),
	TEST_ENTRY(super_passphrase),
	TEST_ENTRY(super_wrong_passphrase),
	TEST_ENTRY(super_keyfile),
	TEST_ENTRY(super_two_slots_and_remove),
	TEST_ENTRY(super_slots_full),
	TEST_ENTRY(super_edit_needs_key),
	TEST_ENTRY(super_block_size_altered),
	TEST_ENTRY(super_slot_bound),
	TEST_ENTRY(super_parse_garbage),
	TEST_ENTRY(super_format1_read_and_lifted),
	TEST_ENTRY(super_slot_meta_and_serial),
	TEST_ENTRY(super_replace_slot),
	TEST_ENTRY(recovery_code),
	TEST_ENTRY(super_verify),
	TEST_ENTRY(kdf_params_round_trip),
	TEST_ENTRY(block_rec_mask),
	TEST_ENTRY(super_rotate),
	TEST_ENTRY(super_rotate_shuts_out_a_removed_slot),
	TEST_ENTRY(super_rotate_to_the_last_generation),
	TEST_ENTRY(super_rotate_altered),
	TEST_ENTRY(super_format2_read_and_rotated),
	TEST_ENTRY(handoff_to_a_running_mount),
	TEST_ENTRY(super_slot_cannot_be_given_another_key),
	TEST_ENTRY(local_sectors_round_trip),
	TEST_ENTRY(local_sectors_bound_to_their_place),
	TEST_ENTRY(local_sectors_across_a_rotation),
	TEST_ENTRY(local_metadata_names_and_values),
	TEST_ENTRY(measure),
)
