/*
 * test_common.c - common/: phi_crc32c(), through crc32c.h only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
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

TEST_MAIN(TEST_ENTRY(crc32c_check_values),
	  TEST_ENTRY(crc32c_fast_path_matches_table))
