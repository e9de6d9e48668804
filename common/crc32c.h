/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of a block in the local
 * store.
 *
 * It guards against accidents (a flipped bit on the disk, a write torn by
 * a power loss), not against an adversary: what leaves the machine is
 * authenticated by AES-GCM instead.  CRC-32C is what btrfs and ext4 use
 * for the same purpose, and x86-64 computes it in hardware (SSE 4.2),
 * which phi_crc32c() uses when the processor has it.
 *
 * Thread safety: may be called from any thread.
 */
#ifndef PHI_CRC32C_H
#define PHI_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * The CRC-32C of len bytes at data, continuing from crc (0 to start):
 * phi_crc32c(phi_crc32c(0, a, n), b, m) equals the CRC of a then b.
 * phi_crc32c(0, "123456789", 9) is 0xe3069283.
 */
uint32_t phi_crc32c(uint32_t crc, const void *data, size_t len);

/* The same, always by the portable table (for tests of the fast path). */
uint32_t phi_crc32c_table(uint32_t crc, const void *data, size_t len);

#endif
