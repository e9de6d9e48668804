/*
 * crypt_int.h - what the files of crypt/ share and nobody else sees.
 */
#ifndef CRYPT_INT_H
#define CRYPT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "crypt.h"

#define CRYPT_KEY_LEN 32
#define CRYPT_NONCE_LEN 12
#define CRYPT_TAG_LEN 16

/*
 * The master keys of every generation 0..gen, and the subkeys derived
 * once from generation 0's.  Lives alone in its own mlock()ed,
 * MADV_DONTDUMP page (crypt__key_alloc), so nothing else shares the
 * page's fate.  gen only grows, and only once master[gen] is written
 * (crypt_handoff_open(), while other threads seal): a reader loads it
 * once and uses what it loaded.
 */
struct crypt_key {
	uint8_t master[CRYPT_MAX_GENS][CRYPT_KEY_LEN];
	_Atomic uint32_t gen;			/* the newest, which seals */
	uint8_t hash_key[CRYPT_KEY_LEN];	/* crypt_block_hash() */
};

/* The OpenSSL algorithms, fetched once per process; never freed. */
struct crypt_algs {
	EVP_KDF *hkdf;
	EVP_KDF *scrypt;
	EVP_CIPHER *gcm;
	EVP_MAC *hmac;
};

/* The fetched algorithms, or NULL if OpenSSL lacks one of them. */
const struct crypt_algs *crypt__algs(void);

/* A zeroed key in its own locked page; 0 or a negative errno. */
int crypt__key_alloc(struct crypt_key **out);

/* A zeroed, locked, undumpable page of at least 4096 bytes for secrets;
 * 0 or a negative errno.  crypt__page_free() wipes its first used bytes
 * and returns it. */
int crypt__page_alloc(void **out);
void crypt__page_free(void *p, size_t used);

/* Derive the subkeys of k from k->master[0]; 0 or -ENOMEM. */
int crypt__key_finish(struct crypt_key *k);

/*
 * HKDF-SHA256 (extract and expand) of ikm with salt (may be NULL, saltlen
 * 0) and info = label, a NUL byte, then extra[0..extralen) (extra may be
 * NULL).  Writes outlen bytes.  Returns 0, -EINVAL if label and extra do
 * not fit the info buffer, or -ENOMEM.
 */
int crypt__hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
		size_t saltlen, const char *label, const void *extra,
		size_t extralen, uint8_t *out, size_t outlen);

/* HMAC-SHA256 of data under a 32-byte key; 0 or -ENOMEM. */
int crypt__hmac(const uint8_t key[CRYPT_KEY_LEN], const void *data,
		size_t len, uint8_t out[32]);

/* One piece of associated data. */
struct crypt_span {
	const void *p;
	size_t n;
};

/*
 * AES-256-GCM of in[0..len) into out (which may equal in), with the
 * associated data aad[0..naad) taken in order.  Returns 0 or -ENOMEM.
 */
int crypt__gcm_seal(const uint8_t key[CRYPT_KEY_LEN],
		    const uint8_t nonce[CRYPT_NONCE_LEN],
		    const struct crypt_span *aad, int naad, const void *in,
		    size_t len, void *out, uint8_t tag[CRYPT_TAG_LEN]);

/*
 * The reverse.  out is written before the tag is known to verify: on
 * PHI_EAUTHFAIL the caller must discard (and wipe) it.  Returns 0,
 * PHI_EAUTHFAIL or -ENOMEM.
 */
int crypt__gcm_open(const uint8_t key[CRYPT_KEY_LEN],
		    const uint8_t nonce[CRYPT_NONCE_LEN],
		    const struct crypt_span *aad, int naad, const void *in,
		    size_t len, void *out, const uint8_t tag[CRYPT_TAG_LEN]);

static inline void crypt__put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void crypt__put_be64(uint8_t *p, uint64_t v)
{
	crypt__put_be32(p, (uint32_t)(v >> 32));
	crypt__put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t crypt__get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t crypt__get_be64(const uint8_t *p)
{
	return (uint64_t)crypt__get_be32(p) << 32 | crypt__get_be32(p + 4);
}

#endif
