/*
 * crypt_local.c - the sectors of the local block store (format in
 * crypt.h, "Sectors of the local store").
 *
 * A cache seals every 4 KiB sector it keeps with AES-256-GCM under
 * HKDF(master key of generation g, salt = fsid, "phifs local sectors v1",
 * info = cache id).  The cache id is random per cache, so two caches of
 * one filesystem (a laptop and its replacement) never share a key, and
 * each may count its nonces from one.  The nonce is salt (32 bits, per
 * mount) || counter (64 bits, never reused by one cache: the cache
 * reserves counters with a synced commit before it uses them).  The
 * associated data binds the inode and the sector's number in its file,
 * so a sector copied to another place, or into another file, fails.
 *
 * The derived keys live in the object's own locked, undumpable page,
 * one per generation, derived on first use (a rotation while mounted
 * adds a generation).  Each call makes one EVP context, keys it once
 * and changes only the nonce from sector to sector: setting up a
 * context per 4 KiB would cost as much as the encryption.
 */
#include "crypt_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static const char LABEL_LOCAL[] = "phifs local sectors v1";
static const char LABEL_META[] = "phifs local metadata v1";
static const char LABEL_NAMES[] = "phifs local names v1";
static const char LABEL_NONCES[] = "phifs local metadata nonces v1";

enum { KIND_SECTORS, KIND_META, KIND_NONCE, KINDS };

struct crypt_local {
	const struct crypt_key *mk;
	uint8_t fsid[16];
	uint8_t cache_id[16];
	pthread_mutex_t lock;		/* derivation */
	_Atomic uint32_t have[KINDS];	/* bit g: key[kind][g] derived */
	_Atomic int have_names;
	uint8_t key[KINDS][CRYPT_MAX_GENS][CRYPT_KEY_LEN];
	uint8_t names[CRYPT_KEY_LEN];	/* generation 0's, for ever */
};

int crypt_local_new(const struct crypt_key *mk, const uint8_t fsid[16],
		    const uint8_t cache_id[16], struct crypt_local **out)
{
	struct crypt_local *l;
	int rc;

	static_assert(sizeof(struct crypt_local) <= 4096, "fits a page");
	static_assert(CRYPT_MAX_GENS <= 32, "have is 32 bits");
	rc = crypt__page_alloc((void **)&l);
	if (rc < 0)
		return rc;
	l->mk = mk;
	memcpy(l->fsid, fsid, 16);
	memcpy(l->cache_id, cache_id, 16);
	pthread_mutex_init(&l->lock, NULL);
	for (int k = 0; k < KINDS; k++)
		atomic_init(&l->have[k], 0);
	atomic_init(&l->have_names, 0);
	*out = l;
	return 0;
}

void crypt_local_free(struct crypt_local *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	crypt__page_free(l, sizeof(*l));
}

/* The key of kind for generation gen, derived on first use. */
static const uint8_t *kind_key(struct crypt_local *l, int kind,
			       uint32_t gen)
{
	const char *label = kind == KIND_SECTORS ? LABEL_LOCAL :
			    kind == KIND_META ? LABEL_META : LABEL_NONCES;
	const uint8_t *k = NULL;
	uint32_t bit;

	if (gen >= CRYPT_MAX_GENS || gen > crypt_key_generation(l->mk))
		return NULL;
	bit = (uint32_t)1 << gen;
	if (atomic_load_explicit(&l->have[kind], memory_order_acquire) & bit)
		return l->key[kind][gen];
	pthread_mutex_lock(&l->lock);
	if ((atomic_load(&l->have[kind]) & bit) ||
	    crypt__hkdf(l->mk->master[gen], CRYPT_KEY_LEN, l->fsid, 16,
			label, l->cache_id, 16, l->key[kind][gen],
			CRYPT_KEY_LEN) == 0) {
		atomic_fetch_or_explicit(&l->have[kind], bit,
					 memory_order_release);
		k = l->key[kind][gen];
	}
	pthread_mutex_unlock(&l->lock);
	return k;
}

static const uint8_t *local_key(struct crypt_local *l, uint32_t gen)
{
	return kind_key(l, KIND_SECTORS, gen);
}

static void sector_nonce(const struct crypt_sector *s,
			 uint8_t nonce[CRYPT_NONCE_LEN])
{
	crypt__put_be32(nonce, s->salt);
	crypt__put_be64(nonce + 4, s->counter);
}

static void sector_aad(uint64_t ino, const struct crypt_sector *s,
		       uint8_t aad[16])
{
	crypt__put_be64(aad, ino);
	crypt__put_be64(aad + 8, s->index);
}

/*
 * One sector through ctx, keyed already (key NULL) or keyed now.
 * Returns 0, PHI_EAUTHFAIL (open: the tag does not hold) or -ENOMEM.
 */
static int sector_run(EVP_CIPHER_CTX *ctx, const uint8_t *key, int enc,
		      uint64_t ino, struct crypt_sector *s)
{
	uint8_t nonce[CRYPT_NONCE_LEN], aad[16], end[16];
	int outl;

	sector_nonce(s, nonce);
	sector_aad(ino, s, aad);
	if (EVP_CipherInit_ex2(ctx, key ? crypt__algs()->gcm : NULL, key,
			       nonce, enc, NULL) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &outl, aad, sizeof(aad)) != 1)
		return -ENOMEM;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
				       CRYPT_SECTOR_TAG, s->tag) != 1)
		return -ENOMEM;
	if (EVP_CipherUpdate(ctx, s->out, &outl, s->in, CRYPT_SECTOR) != 1 ||
	    outl != CRYPT_SECTOR)
		return -ENOMEM;
	if (enc)
		return EVP_EncryptFinal_ex(ctx, end, &outl) == 1 &&
		       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG,
					   CRYPT_SECTOR_TAG, s->tag) == 1 ?
		       0 : -ENOMEM;
	return EVP_DecryptFinal_ex(ctx, end, &outl) == 1 ? 0 : PHI_EAUTHFAIL;
}

int crypt_local_seal(struct crypt_local *l, uint64_t ino,
		     struct crypt_sector *s, size_t n)
{
	uint32_t gen = crypt_key_generation(l->mk);
	const uint8_t *key = local_key(l, gen);
	EVP_CIPHER_CTX *ctx;
	int rc = 0;

	if (!key || !crypt__algs())
		return -ENOMEM;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		s[i].gen = gen;
		rc = sector_run(ctx, i == 0 ? key : NULL, 1, ino, &s[i]);
	}
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int crypt_local_open(struct crypt_local *l, uint64_t ino,
		     struct crypt_sector *s, size_t n, size_t *failed)
{
	EVP_CIPHER_CTX *ctx;
	uint32_t keyed = UINT32_MAX;
	int rc = 0;
	size_t i;

	if (!crypt__algs())
		return -ENOMEM;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	for (i = 0; i < n && rc == 0; i++) {
		const uint8_t *key = NULL;

		if (s[i].gen != keyed) {
			key = local_key(l, s[i].gen);
			if (!key) {
				rc = PHI_EAUTHFAIL;	/* a generation we lack */
				break;
			}
			keyed = s[i].gen;
		}
		rc = sector_run(ctx, key, 0, ino, &s[i]);
		if (rc == PHI_EAUTHFAIL)
			break;
	}
	if (rc == PHI_EAUTHFAIL) {
		OPENSSL_cleanse(s[i].out, CRYPT_SECTOR);
		if (failed)
			*failed = i;
	}
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Metadata records                                                    */
/* ------------------------------------------------------------------ */

/* HMAC-SHA256 under key of the pieces, each but the last preceded by its
 * length (8 bytes), so that no two lists of pieces hash alike. */
static int hmac_pieces(const uint8_t *key, const struct crypt_span *p,
		       size_t n, uint8_t mac[32])
{
	size_t len = 0, at = 0;
	uint8_t *msg;
	int rc;

	for (size_t i = 0; i < n; i++)
		len += 8 + p[i].n;
	msg = malloc(len ? len : 1);
	if (!msg)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n) {
			crypt__put_be64(msg + at, p[i].n);
			at += 8;
		}
		if (p[i].n)
			memcpy(msg + at, p[i].p, p[i].n);
		at += p[i].n;
	}
	rc = crypt__hmac(key, msg, at, mac);
	OPENSSL_cleanse(msg, len);
	free(msg);
	return rc;
}

int crypt_local_name(struct crypt_local *l, uint8_t domain, uint64_t parent,
		     const void *name, size_t len,
		     uint8_t out[CRYPT_LOCAL_NAME])
{
	uint8_t mac[32], head[9];
	struct crypt_span p[2] = { { head, sizeof(head) }, { name, len } };
	int rc = 0;

	if (!atomic_load_explicit(&l->have_names, memory_order_acquire)) {
		pthread_mutex_lock(&l->lock);
		if (!atomic_load(&l->have_names))
			rc = crypt__hkdf(l->mk->master[0], CRYPT_KEY_LEN,
					 l->fsid, 16, LABEL_NAMES,
					 l->cache_id, 16, l->names,
					 CRYPT_KEY_LEN);
		if (rc == 0)
			atomic_store_explicit(&l->have_names, 1,
					      memory_order_release);
		pthread_mutex_unlock(&l->lock);
		if (rc)
			return rc;
	}
	head[0] = domain;
	crypt__put_be64(head + 1, parent);
	rc = hmac_pieces(l->names, p, 2, mac);
	if (rc == 0)
		memcpy(out, mac, CRYPT_LOCAL_NAME);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

int crypt_local_seal_value(struct crypt_local *l, const void *aad,
			   size_t aadlen, const void *in, size_t len,
			   void *out)
{
	uint32_t gen = crypt_key_generation(l->mk);
	const uint8_t *key = kind_key(l, KIND_META, gen);
	const uint8_t *nkey = kind_key(l, KIND_NONCE, gen);
	struct crypt_span span = { aad, aadlen };
	struct crypt_span p[2] = { { aad, aadlen }, { in, len } };
	uint8_t *o = out, mac[32];
	int rc;

	if (!key || !nkey)
		return -ENOMEM;
	/* a synthetic nonce: the same only for the same aad and value,
	 * which then seal alike; no counter to lose in a crash */
	rc = hmac_pieces(nkey, p, 2, mac);
	if (rc)
		return rc;
	crypt__put_be32(o, gen);
	memcpy(o + 4, mac, CRYPT_NONCE_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	return crypt__gcm_seal(key, o + 4, &span, 1, in, len, o + 16,
			       o + 16 + len);
}

int crypt_local_open_value(struct crypt_local *l, const void *aad,
			   size_t aadlen, const void *in, size_t len,
			   void *out)
{
	const uint8_t *i = in;
	struct crypt_span span = { aad, aadlen };
	const uint8_t *key;
	size_t plen;
	int rc;

	if (len < CRYPT_LOCAL_VALUE_OVERHEAD)
		return PHI_ECORRUPT;
	plen = len - CRYPT_LOCAL_VALUE_OVERHEAD;
	key = kind_key(l, KIND_META, crypt__get_be32(i));
	if (!key)
		return PHI_EAUTHFAIL;
	rc = crypt__gcm_open(key, i + 4, &span, 1, i + 16, plen, out,
			     i + 16 + plen);
	if (rc)
		OPENSSL_cleanse(out, plen);
	return rc == -ENOMEM ? rc : rc ? PHI_EAUTHFAIL : 0;
}
