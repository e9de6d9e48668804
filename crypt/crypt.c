/*
 * crypt.c - process hardening, the master key's memory, and the
 * primitives the rest of crypt/ is built from (HKDF, HMAC, AES-256-GCM,
 * random bytes).
 *
 * Invariants:
 *   - a struct crypt_key lives alone in one page that is mlock()ed and
 *     MADV_DONTDUMP; crypt_key_free() wipes it before unmapping;
 *   - every stack or heap copy of key material made here (derived keys,
 *     HKDF info) is wiped with OPENSSL_cleanse() before it goes out of
 *     scope; OpenSSL wipes its own contexts when they are freed;
 *   - algorithms are fetched once per process (crypt__algs()), because a
 *     fetch takes a lock and a lookup that would otherwise run per block.
 */
#include "crypt_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* Labels of the derived keys: distinct, versioned, never reused. */
static const char LABEL_HASH[] = "phifs block hash v1";

/* OpenSSL's params take char *, never writing through it. */
static char digest_sha256[] = "SHA256";

int crypt_harden_process(void)
{
	struct rlimit none = { 0, 0 };
	int rc = 0;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		rc = -errno;
	if (setrlimit(RLIMIT_CORE, &none) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* ------------------------------------------------------------------ */

static struct crypt_algs algs;
static bool algs_ok;
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;

static void algs_fetch(void)
{
	algs.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	algs.scrypt = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	algs.gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	algs.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	algs_ok = algs.hkdf && algs.scrypt && algs.gcm && algs.hmac;
}

const struct crypt_algs *crypt__algs(void)
{
	pthread_once(&algs_once, algs_fetch);
	return algs_ok ? &algs : NULL;
}

/* ------------------------------------------------------------------ */

static size_t key_page_size(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return page > 0 ? (size_t)page : 4096;
}

int crypt__key_alloc(struct crypt_key **out)
{
	static_assert(sizeof(struct crypt_key) <= 4096, "key fits a page");
	return crypt__page_alloc((void **)out);
}

int crypt__page_alloc(void **out)
{
	size_t size = key_page_size();
	void *p;
	int rc;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (mlock(p, size) < 0) {
		rc = -errno;
		goto fail;
	}
	if (madvise(p, size, MADV_DONTDUMP) < 0) {
		rc = -errno;
		munlock(p, size);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	munmap(p, size);
	return rc;
}

int crypt__key_finish(struct crypt_key *k)
{
	return crypt__hkdf(k->master[0], CRYPT_KEY_LEN, NULL, 0,
			   LABEL_HASH, NULL, 0, k->hash_key,
			   sizeof(k->hash_key));
}

int crypt_key_new_random(struct crypt_key **out)
{
	struct crypt_key *k;
	int rc;

	rc = crypt__key_alloc(&k);
	if (rc < 0)
		return rc;
	rc = crypt_random_bytes(k->master[0], CRYPT_KEY_LEN);
	if (rc == 0)
		rc = crypt__key_finish(k);
	if (rc < 0) {
		crypt_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

uint32_t crypt_key_generation(const struct crypt_key *k)
{
	return k->gen;
}

void crypt__page_free(void *p, size_t used)
{
	size_t size = key_page_size();

	if (!p)
		return;
	OPENSSL_cleanse(p, used);
	munlock(p, size);
	munmap(p, size);
}

void crypt_key_free(struct crypt_key *k)
{
	crypt__page_free(k, sizeof(*k));
}

/* ------------------------------------------------------------------ */

int crypt_random_bytes(void *out, size_t n)
{
	/* RAND_bytes() takes an int; ids and keys are far below that */
	while (n > 0) {
		int chunk = n > (1u << 30) ? 1 << 30 : (int)n;

		if (RAND_bytes(out, chunk) != 1)
			return -EIO;
		out = (unsigned char *)out + chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

int crypt_random_id(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[16];

	if (crypt_random_bytes(raw, sizeof(raw)) < 0)
		return -EIO;
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

int crypt_block_hash(const struct crypt_key *mk, const void *data,
		     size_t len, uint8_t out[32])
{
	assert(mk);
	return crypt__hmac(mk->hash_key, data, len, out);
}

int crypt_sha256(const void *data, size_t len, uint8_t out[32])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		return -ENOMEM;
	memcpy(out, md, 32);
	return 0;
}

/* ------------------------------------------------------------------ */

int crypt__hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
		size_t saltlen, const char *label, const void *extra,
		size_t extralen, uint8_t *out, size_t outlen)
{
	const struct crypt_algs *a = crypt__algs();
	uint8_t info[64 + CRYPT_ID_MAX];
	size_t lablen = strlen(label), infolen = lablen + 1 + extralen;
	OSSL_PARAM params[5], *p = params;
	EVP_KDF_CTX *ctx;
	int rc = -ENOMEM;

	if (!a)
		return -ENOMEM;
	if (lablen >= 64 || extralen > CRYPT_ID_MAX)
		return -EINVAL;
	memcpy(info, label, lablen + 1);
	if (extralen)
		memcpy(info + lablen + 1, extra, extralen);

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						digest_sha256, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)ikm, ikmlen);
	if (salt)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							 (void *)salt, saltlen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
						 infolen);
	*p = OSSL_PARAM_construct_end();

	ctx = EVP_KDF_CTX_new(a->hkdf);
	if (ctx && EVP_KDF_derive(ctx, out, outlen, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

int crypt__hmac(const uint8_t key[CRYPT_KEY_LEN], const void *data,
		size_t len, uint8_t out[32])
{
	const struct crypt_algs *a = crypt__algs();
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx;
	size_t outl = 0;
	int rc = -ENOMEM;

	if (!a)
		return -ENOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest_sha256, 0);
	params[1] = OSSL_PARAM_construct_end();
	ctx = EVP_MAC_CTX_new(a->hmac);
	if (ctx && EVP_MAC_init(ctx, key, CRYPT_KEY_LEN, params) == 1 &&
	    EVP_MAC_update(ctx, data, len) == 1 &&
	    EVP_MAC_final(ctx, out, &outl, 32) == 1 && outl == 32)
		rc = 0;
	EVP_MAC_CTX_free(ctx);
	return rc;
}

/* ------------------------------------------------------------------ */

/* EVP_*Update() counts in int: feed large buffers in pieces. */
#define GCM_CHUNK ((size_t)1 << 30)

static int gcm_start(EVP_CIPHER_CTX **ctxp, bool enc,
		     const uint8_t key[CRYPT_KEY_LEN],
		     const uint8_t nonce[CRYPT_NONCE_LEN],
		     const struct crypt_span *aad, int naad)
{
	const struct crypt_algs *a = crypt__algs();
	EVP_CIPHER_CTX *ctx;
	int outl;

	if (!a)
		return -ENOMEM;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* AES-256-GCM's default IV length is the 12 bytes we use */
	if (EVP_CipherInit_ex2(ctx, a->gcm, key, nonce, enc, NULL) != 1)
		goto fail;
	for (int i = 0; i < naad; i++) {
		if (aad[i].n > INT_MAX ||
		    EVP_CipherUpdate(ctx, NULL, &outl, aad[i].p,
				     (int)aad[i].n) != 1)
			goto fail;
	}
	*ctxp = ctx;
	return 0;
fail:
	EVP_CIPHER_CTX_free(ctx);
	return -ENOMEM;
}

static int gcm_run(EVP_CIPHER_CTX *ctx, const void *in, size_t len,
		   void *out)
{
	const unsigned char *src = in;
	unsigned char *dst = out;
	int outl;

	while (len > 0) {
		size_t chunk = len < GCM_CHUNK ? len : GCM_CHUNK;

		if (EVP_CipherUpdate(ctx, dst, &outl, src, (int)chunk) != 1 ||
		    (size_t)outl != chunk)
			return -ENOMEM;
		src += chunk;
		dst += chunk;
		len -= chunk;
	}
	return 0;
}

int crypt__gcm_seal(const uint8_t key[CRYPT_KEY_LEN],
		    const uint8_t nonce[CRYPT_NONCE_LEN],
		    const struct crypt_span *aad, int naad, const void *in,
		    size_t len, void *out, uint8_t tag[CRYPT_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	unsigned char end[16];
	int rc, outl;

	rc = gcm_start(&ctx, true, key, nonce, aad, naad);
	if (rc < 0)
		return rc;
	rc = gcm_run(ctx, in, len, out);
	if (rc == 0 && (EVP_EncryptFinal_ex(ctx, end, &outl) != 1 ||
			EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG,
					    CRYPT_TAG_LEN, tag) != 1))
		rc = -ENOMEM;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int crypt__gcm_open(const uint8_t key[CRYPT_KEY_LEN],
		    const uint8_t nonce[CRYPT_NONCE_LEN],
		    const struct crypt_span *aad, int naad, const void *in,
		    size_t len, void *out, const uint8_t tag[CRYPT_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	unsigned char end[16];
	int rc, outl;

	rc = gcm_start(&ctx, false, key, nonce, aad, naad);
	if (rc < 0)
		return rc;
	rc = gcm_run(ctx, in, len, out);
	if (rc == 0 && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
					   CRYPT_TAG_LEN, (void *)tag) != 1)
		rc = -ENOMEM;
	/* the one failure of a well-formed decryption: the tag */
	if (rc == 0 && EVP_DecryptFinal_ex(ctx, end, &outl) != 1)
		rc = PHI_EAUTHFAIL;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Object names                                                        */
/* ------------------------------------------------------------------ */

static const char LABEL_NAME[] = "phifs object names v1";

/* One AES-256 block, encrypted or decrypted, under the name key. */
static int name_block(const struct crypt_key *mk, const uint8_t fsid[16],
		      const uint8_t in[16], uint8_t out[16], int enc)
{
	uint8_t key[CRYPT_KEY_LEN];
	EVP_CIPHER_CTX *ctx;
	int n = 0, rc = -ENOMEM;

	if (crypt__hkdf(mk->master[0], CRYPT_KEY_LEN, fsid, 16, LABEL_NAME,
			NULL, 0, key, sizeof(key)))
		return -ENOMEM;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_ecb(), NULL, key, NULL,
				     enc) == 1 &&
	    EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
	    EVP_CipherUpdate(ctx, out, &n, in, 16) == 1 && n == 16)
		rc = 0;
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int crypt_name_encode(const struct crypt_key *mk, const uint8_t fsid[16],
		      const uint8_t plain[16], char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t c[16];
	int rc = name_block(mk, fsid, plain, c, 1);

	if (rc)
		return rc;
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[c[i] >> 4];
		out[2 * i + 1] = hex[c[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

static const char LABEL_BLOCK_REC[] = "phifs block records v1";

int crypt_block_rec_mask(const struct crypt_key *mk, const uint8_t fsid[16],
			 uint64_t ino, uint64_t blk, const uint8_t pack[16],
			 uint8_t mask[CRYPT_BLOCK_REC_MASK])
{
	uint8_t where[32];

	crypt__put_be64(where, ino);
	crypt__put_be64(where + 8, blk);
	memcpy(where + 16, pack, 16);
	return crypt__hkdf(mk->master[0], CRYPT_KEY_LEN, fsid, 16,
			   LABEL_BLOCK_REC, where, sizeof(where), mask,
			   CRYPT_BLOCK_REC_MASK) ? -ENOMEM : 0;
}

int crypt_name_decode(const struct crypt_key *mk, const uint8_t fsid[16],
		      const char *name, uint8_t plain[16])
{
	uint8_t c[16];

	for (int i = 0; i < 16; i++) {
		int hi = name[2 * i], lo = hi ? name[2 * i + 1] : 0;

		hi = hi >= '0' && hi <= '9' ? hi - '0' :
		     hi >= 'a' && hi <= 'f' ? hi - 'a' + 10 : -1;
		lo = lo >= '0' && lo <= '9' ? lo - '0' :
		     lo >= 'a' && lo <= 'f' ? lo - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -EINVAL;
		c[i] = (uint8_t)(hi << 4 | lo);
	}
	if (name[32] != '\0')
		return -EINVAL;
	return name_block(mk, fsid, c, plain, 0);
}
