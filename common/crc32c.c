/*
 * crc32c.c - CRC-32C, with the SSE 4.2 instruction where there is one and
 * a table (one byte a step) everywhere else.  Both give the same result:
 * test_common checks them against each other and the standard check
 * value.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u	/* 0x1edc6f41, bit-reflected */

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? c >> 1 ^ POLY : c >> 1;
		table[i] = c;
	}
}

static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t len)
{
	pthread_once(&table_once, table_init);
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ crc >> 8;
	return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return (uint32_t)c;
}

static int sse42;
static pthread_once_t sse42_once = PTHREAD_ONCE_INIT;

static void sse42_init(void)
{
	__builtin_cpu_init();
	sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

/* Asked once, whichever thread comes first (the sealer's crew computes
 * checksums side by side). */
static int have_sse42(void)
{
	pthread_once(&sse42_once, sse42_init);
	return sse42;
}
#else
static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	return crc_table(crc, p, len);
}

static int have_sse42(void)
{
	return 0;
}
#endif

uint32_t phi_crc32c(uint32_t crc, const void *data, size_t len)
{
	crc = ~crc;
	crc = have_sse42() ? crc_sse42(crc, data, len) :
			     crc_table(crc, data, len);
	return ~crc;
}

uint32_t phi_crc32c_table(uint32_t crc, const void *data, size_t len)
{
	return ~crc_table(~crc, data, len);
}
