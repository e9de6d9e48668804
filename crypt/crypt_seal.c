/*
 * crypt_seal.c - blocks into sealed frames and back (format in crypt.h).
 *
 * Sealing writes straight into the caller's buffer: zstd compresses into
 * the payload's place, and AES-GCM encrypts there in place, so a 16 MiB
 * block costs no temporary copy.  When compression would not shrink the
 * block (zstd runs out of the len - 1 bytes it is given), the plaintext
 * is encrypted raw instead; compression failing for any reason only
 * costs space, never a seal.
 *
 * Frames are sealed in format version 2, whose clear header tells only
 * the payload's size class (crypt_pad_size()): the flags and both lengths
 * are encrypted with the data, and zeros pad it to its class.  Version 3
 * is version 2 with the key generation in the header (written from
 * generation 1 on).  Version 1 frames, which the regions keep from
 * before, still unseal.
 *
 * Unsealing checks everything that can be checked without the key first
 * (magic, version, flags, lengths), so a cut or garbled object is
 * PHI_ECORRUPT and only a well-formed one that fails its tag is
 * PHI_EAUTHFAIL.  No unauthenticated byte stays in the caller's buffer:
 * a payload is decrypted into out's reserved room and committed only
 * once the tag verifies (wiped otherwise); a compressed one is then
 * moved aside and decompressed into out.  A temporary is used for a
 * version 1 compressed payload, and when out may not hold the payload
 * whole.
 *
 * Each thread keeps one zstd compression and one decompression context
 * (thread-specific data, freed when the thread exits): making a context
 * per block would allocate and clear a few hundred KiB each time.
 */
#include "crypt_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <zstd.h>
#include <zstd_errors.h>

#define FRAME_MAGIC "PHIS"
#define FLAG_ZSTD 0x01
#define OFF_VERSION 4
#define OFF_FLAGS 5
#define OFF_NONCE 6
#define OFF_PLEN 18
#define OFF_GEN 18		/* version 3 */
#define OFF_CLEN 26

/* Version 2: the payload's plaintext begins with an inner header. */
#define FRAME_V1 1
#define FRAME_V3 3		/* CRYPT_FRAME_VERSION with a generation */
#define IN_FLAGS 0		/* FLAG_ZSTD */
#define IN_PLEN 1		/* plaintext length, before compression */
#define IN_DLEN 9		/* stored data length (zstd frame or raw) */
#define IN_HEADER 17		/* then the data, then zeros to the class */
#define PAD_MIN 256		/* the smallest size class */

static const char LABEL_OBJECT[] = "phifs object v1";

static atomic_int seal_level = 3;

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;
static bool zstd_keys_ok;

static void cctx_free(void *p)
{
	ZSTD_freeCCtx(p);
}

static void dctx_free(void *p)
{
	ZSTD_freeDCtx(p);
}

static void zstd_keys_make(void)
{
	zstd_keys_ok = pthread_key_create(&cctx_key, cctx_free) == 0 &&
		       pthread_key_create(&dctx_key, dctx_free) == 0;
}

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *c;

	pthread_once(&zstd_once, zstd_keys_make);
	if (!zstd_keys_ok)
		return NULL;
	c = pthread_getspecific(cctx_key);
	if (!c) {
		c = ZSTD_createCCtx();
		if (c && pthread_setspecific(cctx_key, c) != 0) {
			ZSTD_freeCCtx(c);
			c = NULL;
		}
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *d;

	pthread_once(&zstd_once, zstd_keys_make);
	if (!zstd_keys_ok)
		return NULL;
	d = pthread_getspecific(dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		if (d && pthread_setspecific(dctx_key, d) != 0) {
			ZSTD_freeDCtx(d);
			d = NULL;
		}
	}
	return d;
}

int crypt_set_level(int level)
{
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return -EINVAL;
	atomic_store(&seal_level, level);
	return 0;
}

/*
 * Padmé (Nikitin et al., "Reducing metadata leakage from encrypted files
 * and communication with PURBs", PETS 2019): keep the top
 * floor(log2(E)) + 1 bits of a length whose highest bit is bit E and
 * round the rest up, so a class leaks O(log log len) bits and costs at
 * most 2^(E - S) - 1 bytes: 3.1 % from 64 KiB up, 6.3 % below, and
 * below PAD_MIN everything is one class.
 */
size_t crypt_pad_size(size_t len)
{
	unsigned e, s;
	size_t mask;

	if (len <= PAD_MIN)
		return PAD_MIN;
	e = 63u - (unsigned)__builtin_clzll((unsigned long long)len);
	s = 32u - (unsigned)__builtin_clz(e);	/* floor(log2(e)) + 1 */
	mask = ((size_t)1 << (e - s)) - 1;
	if (len > SIZE_MAX - mask)
		return SIZE_MAX;
	return (len + mask) & ~mask;
}

size_t crypt_seal_bound(size_t len)
{
	if (len > CRYPT_SEAL_MAX)
		return SIZE_MAX;
	return crypt_pad_size(len + IN_HEADER) + CRYPT_FRAME_OVERHEAD;
}

static int check_id(const char *object_id, size_t *idlen)
{
	size_t n = object_id ? strnlen(object_id, CRYPT_ID_MAX + 1) : 0;

	if (n == 0 || n > CRYPT_ID_MAX)
		return -EINVAL;
	*idlen = n;
	return 0;
}

/* The key of one object under master key generation gen of mk. */
static int object_key(const struct crypt_key *mk, uint32_t gen,
		      const uint8_t fsid[16], const char *object_id,
		      size_t idlen, uint8_t key[CRYPT_KEY_LEN])
{
	if (gen > mk->gen)
		return PHI_EAUTHFAIL;	/* a key this holder never had */
	return crypt__hkdf(mk->master[gen], CRYPT_KEY_LEN, fsid, 16,
			   LABEL_OBJECT, object_id, idlen, key,
			   CRYPT_KEY_LEN);
}

/* Compressed size of src in dst, or 0 if that would not be smaller. */
static size_t compress_into(void *dst, const void *src, size_t len)
{
	ZSTD_CCtx *c;
	size_t n;

	if (len < 2)
		return 0;
	c = thread_cctx();
	if (!c)
		return 0;
	n = ZSTD_compressCCtx(c, dst, len - 1, src, len,
			      atomic_load(&seal_level));
	return ZSTD_isError(n) ? 0 : n;
}

/*
 * Lay plain[0..len) out as the cleartext of a version 2 frame (version 3
 * from generation 1 on) at frame (room for crypt_seal_bound(len)): the
 * header without its nonce, then the data, compressed when that shrinks
 * it, after the inner header in the payload's place, and the zeros of its
 * size class.  seal_frame() encrypts it in place.
 */
static void lay_out_frame(const struct crypt_key *mk, const void *plain,
			  size_t len, uint8_t *frame, size_t *framelen)
{
	uint8_t *payload = frame + CRYPT_FRAME_HEADER;
	size_t dlen = compress_into(payload + IN_HEADER, plain, len), clen;
	uint32_t gen = crypt_key_generation(mk);	/* once: it may grow */
	bool zipped = dlen > 0;

	if (!zipped) {
		dlen = len;
		if (len)
			memcpy(payload + IN_HEADER, plain, len);
	}
	clen = crypt_pad_size(IN_HEADER + dlen);
	payload[IN_FLAGS] = zipped ? FLAG_ZSTD : 0;
	crypt__put_be64(payload + IN_PLEN, len);
	crypt__put_be64(payload + IN_DLEN, dlen);
	memset(payload + IN_HEADER + dlen, 0, clen - IN_HEADER - dlen);
	memcpy(frame, FRAME_MAGIC, 4);
	frame[OFF_VERSION] = gen ? FRAME_V3 : CRYPT_FRAME_VERSION;
	frame[OFF_FLAGS] = 0;
	memset(frame + OFF_NONCE, 0, CRYPT_NONCE_LEN);
	crypt__put_be32(frame + OFF_GEN, gen);
	crypt__put_be32(frame + OFF_GEN + 4, 0);
	crypt__put_be64(frame + OFF_CLEN, clen);
	*framelen = CRYPT_FRAME_HEADER + clen + CRYPT_TAG_LEN;
}

/* Encrypt the frame lay_out_frame() made, in place, for object_id: a
 * fresh nonce, the object's key under the generation its header names. */
static int seal_frame(const struct crypt_key *mk, const uint8_t fsid[16],
		      const char *object_id, size_t idlen, uint8_t *frame)
{
	uint8_t key[CRYPT_KEY_LEN], *payload = frame + CRYPT_FRAME_HEADER;
	uint32_t gen = crypt__get_be32(frame + OFF_GEN);
	size_t clen = (size_t)crypt__get_be64(frame + OFF_CLEN);
	struct crypt_span aad[3] = {
		{ frame, CRYPT_FRAME_HEADER }, { fsid, 16 },
		{ object_id, idlen },
	};
	int rc = crypt_random_bytes(frame + OFF_NONCE, CRYPT_NONCE_LEN);

	if (rc == 0)
		rc = object_key(mk, gen, fsid, object_id, idlen, key);
	if (rc == 0)
		rc = crypt__gcm_seal(key, frame + OFF_NONCE, aad, 3, payload,
				     clen, payload, payload + clen);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int crypt_seal(const struct crypt_key *mk, const uint8_t fsid[16],
	       const char *object_id, const void *plain, size_t len,
	       struct buf *out)
{
	size_t idlen, olen = buf_len(out), bound, framelen;
	uint8_t *frame;
	int rc;

	assert(mk && fsid && (plain || len == 0));
	rc = check_id(object_id, &idlen);
	if (rc < 0)
		return rc;
	if (len > CRYPT_SEAL_MAX)
		return -EINVAL;
	bound = crypt_seal_bound(len);
	rc = buf_reserve(out, bound);
	if (rc < 0)
		return rc;
	frame = (uint8_t *)buf_mut(out) + olen;
	lay_out_frame(mk, plain, len, frame, &framelen);
	rc = seal_frame(mk, fsid, object_id, idlen, frame);
	if (rc < 0) {
		/* the room may hold compressed plaintext */
		OPENSSL_cleanse(frame, bound);
		return rc;
	}
	buf_setlen(out, olen + framelen);
	return 0;
}

int crypt_seal_prepare(const struct crypt_key *mk, const void *plain,
		       size_t len, void *frame, size_t *framelen)
{
	assert(mk && frame && framelen && (plain || len == 0));
	if (len > CRYPT_SEAL_MAX)
		return -EINVAL;
	lay_out_frame(mk, plain, len, frame, framelen);
	return 0;
}

int crypt_seal_finish(const struct crypt_key *mk, const uint8_t fsid[16],
		      const char *object_id, void *frame, size_t framelen)
{
	static const uint8_t unset[CRYPT_NONCE_LEN];
	const uint8_t *f = frame;
	size_t idlen;
	int rc;

	assert(mk && fsid && frame);
	rc = check_id(object_id, &idlen);
	if (rc < 0)
		return rc;
	/* only what lay_out_frame() made, once: anything else would be
	 * sealed with a header that does not describe it */
	if (framelen < CRYPT_FRAME_OVERHEAD || memcmp(f, FRAME_MAGIC, 4) ||
	    memcmp(f + OFF_NONCE, unset, CRYPT_NONCE_LEN) ||
	    (f[OFF_VERSION] != CRYPT_FRAME_VERSION &&
	     f[OFF_VERSION] != FRAME_V3) ||
	    crypt__get_be64(f + OFF_CLEN) !=
	    framelen - CRYPT_FRAME_OVERHEAD)
		return -EINVAL;
	rc = seal_frame(mk, fsid, object_id, idlen, frame);
	if (rc < 0)
		OPENSSL_cleanse(frame, framelen);
	return rc;
}

/* ------------------------------------------------------------------ */

/* What unseal needs from a frame that passed the structural checks;
 * from version 2 on, plen and zipped are known only once it is opened. */
struct frame_view {
	const uint8_t *head, *payload, *tag;
	uint64_t plen, clen;
	uint32_t gen;		/* of the master key that sealed it */
	bool zipped;
	uint8_t version;	/* 1, or 2 for versions 2 and 3 */
};

static int frame_parse(const void *frame, size_t len, struct frame_view *v)
{
	const uint8_t *f = frame;
	uint8_t flags;

	if (len < CRYPT_FRAME_OVERHEAD || memcmp(f, FRAME_MAGIC, 4) != 0)
		return PHI_ECORRUPT;
	v->version = f[OFF_VERSION];
	v->gen = 0;
	if (v->version == FRAME_V3) {
		/* version 2 with the generation where it had zeros */
		v->gen = crypt__get_be32(f + OFF_GEN);
		if (v->gen == 0 || v->gen >= CRYPT_MAX_GENS)
			return PHI_ECORRUPT;
		v->version = CRYPT_FRAME_VERSION;
		if (crypt__get_be32(f + OFF_GEN + 4))
			return PHI_ECORRUPT;
	} else if (v->version != FRAME_V1 &&
		   v->version != CRYPT_FRAME_VERSION) {
		return PHI_EVERSION;
	}
	flags = f[OFF_FLAGS];
	if (flags & ~FLAG_ZSTD)
		return PHI_ECORRUPT;
	v->zipped = flags & FLAG_ZSTD;
	v->plen = v->gen ? 0 : crypt__get_be64(f + OFF_PLEN);
	v->clen = crypt__get_be64(f + OFF_CLEN);
	if (v->plen > CRYPT_SEAL_MAX ||
	    v->clen != len - CRYPT_FRAME_OVERHEAD)
		return PHI_ECORRUPT;	/* truncated, padded or lying */
	if (v->version == CRYPT_FRAME_VERSION) {
		/* everything but the class is inside */
		if (flags || v->plen || v->clen < PAD_MIN ||
		    v->clen != crypt_pad_size(v->clen))
			return PHI_ECORRUPT;
	} else if (v->zipped ? v->clen >= v->plen : v->clen != v->plen) {
		return PHI_ECORRUPT;
	}
	v->head = f;
	v->payload = f + CRYPT_FRAME_HEADER;
	v->tag = v->payload + v->clen;
	return 0;
}

static int open_payload(const uint8_t key[CRYPT_KEY_LEN],
			const uint8_t fsid[16], const char *object_id,
			size_t idlen, const struct frame_view *v, void *dst)
{
	struct crypt_span aad[3] = {
		{ v->head, CRYPT_FRAME_HEADER }, { fsid, 16 },
		{ object_id, idlen },
	};

	return crypt__gcm_open(key, v->head + OFF_NONCE, aad, 3, v->payload,
			       v->clen, dst, v->tag);
}

/* Decompress an authenticated zstd payload into out's reserved room. */
static int unzip_into(struct buf *out, const void *src, size_t clen,
		      size_t plen)
{
	size_t olen = buf_len(out), n;
	ZSTD_DCtx *d = thread_dctx();
	uint8_t *dst;
	int rc;

	if (!d)
		return -ENOMEM;
	rc = buf_reserve(out, plen);
	if (rc < 0)
		return rc;
	dst = (uint8_t *)buf_mut(out) + olen;
	n = ZSTD_decompressDCtx(d, dst, plen, src, clen);
	if (ZSTD_isError(n) || n != plen) {
		/* authentic yet undecodable: a bug of the writer, or worse */
		OPENSSL_cleanse(dst, plen);
		return ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ?
		       -ENOMEM : PHI_ECORRUPT;
	}
	buf_setlen(out, olen + plen);
	return 0;
}

static int unseal_zipped(const uint8_t key[CRYPT_KEY_LEN],
			 const uint8_t fsid[16], const char *object_id,
			 size_t idlen, const struct frame_view *v,
			 struct buf *out)
{
	uint8_t *tmp = malloc(v->clen);
	int rc;

	if (!tmp)
		return -ENOMEM;
	rc = open_payload(key, fsid, object_id, idlen, v, tmp);
	if (rc == 0)
		rc = unzip_into(out, tmp, v->clen, v->plen);
	OPENSSL_clear_free(tmp, v->clen);
	return rc;
}

static int unseal_raw(const uint8_t key[CRYPT_KEY_LEN],
		      const uint8_t fsid[16], const char *object_id,
		      size_t idlen, const struct frame_view *v,
		      struct buf *out)
{
	size_t olen = buf_len(out);
	uint8_t *dst;
	int rc;

	rc = buf_reserve(out, v->plen);
	if (rc < 0)
		return rc;
	dst = (uint8_t *)buf_mut(out) + olen;
	rc = open_payload(key, fsid, object_id, idlen, v, dst);
	if (rc < 0) {
		OPENSSL_cleanse(dst, v->plen);
		return rc;
	}
	buf_setlen(out, olen + v->plen);
	return 0;
}

/* The inner header of an opened version 2 payload of clen bytes: 0 with
 * *zipped, *plen and *dlen, or PHI_ECORRUPT when it contradicts itself
 * (an authentic payload: a writer's bug). */
static int inner_header(const uint8_t *p, size_t clen, bool *zipped,
			uint64_t *plen, uint64_t *dlen)
{
	*zipped = p[IN_FLAGS] & FLAG_ZSTD;
	*plen = crypt__get_be64(p + IN_PLEN);
	*dlen = crypt__get_be64(p + IN_DLEN);
	if ((p[IN_FLAGS] & ~FLAG_ZSTD) || *plen > CRYPT_SEAL_MAX ||
	    *dlen > clen - IN_HEADER ||
	    (*zipped ? *dlen >= *plen : *dlen != *plen))
		return PHI_ECORRUPT;
	return 0;
}

/*
 * Open a version 2 payload, check its inner header, and put its data
 * into out.  It is opened straight into out's free room, where stored
 * data only moves down over the header: a block read back costs no
 * second buffer (fresh memory faults in page by page, which costs more
 * than the decryption).  Compressed data is copied out of the way (it
 * is the smaller part) and inflated into out; into a temporary when out
 * may not hold the payload whole.
 */
static int unseal_v2(const uint8_t key[CRYPT_KEY_LEN],
		     const uint8_t fsid[16], const char *object_id,
		     size_t idlen, const struct frame_view *v, struct buf *out)
{
	size_t olen = buf_len(out), tlen = v->clen;
	uint64_t plen, dlen;
	uint8_t *p, *tmp = NULL;
	bool zipped;
	int rc;

	if (buf_reserve(out, v->clen) == 0) {
		p = (uint8_t *)buf_mut(out) + olen;
		rc = open_payload(key, fsid, object_id, idlen, v, p);
		if (rc == 0)
			rc = inner_header(p, v->clen, &zipped, &plen, &dlen);
		if (rc == 0 && !zipped) {
			memmove(p, p + IN_HEADER, dlen);
			OPENSSL_cleanse(p + dlen, v->clen - dlen);
			buf_setlen(out, olen + dlen);
			return 0;
		}
		if (rc == 0) {
			tlen = dlen;
			tmp = malloc(tlen);
			if (tmp)
				memcpy(tmp, p + IN_HEADER, dlen);
			else
				rc = -ENOMEM;
		}
		OPENSSL_cleanse(p, v->clen);
		if (rc < 0)
			return rc;
		rc = unzip_into(out, tmp, dlen, plen);
	} else {
		tmp = malloc(tlen);
		if (!tmp)
			return -ENOMEM;
		rc = open_payload(key, fsid, object_id, idlen, v, tmp);
		if (rc == 0)
			rc = inner_header(tmp, v->clen, &zipped, &plen, &dlen);
		if (rc == 0)
			rc = zipped ? unzip_into(out, tmp + IN_HEADER, dlen,
						 plen) :
				buf_add(out, tmp + IN_HEADER, dlen);
	}
	OPENSSL_clear_free(tmp, tlen);
	return rc;
}

int crypt_unseal(const struct crypt_key *mk, const uint8_t fsid[16],
		 const char *object_id, const void *frame, size_t len,
		 struct buf *out)
{
	struct frame_view v;
	uint8_t key[CRYPT_KEY_LEN];
	size_t idlen;
	int rc;

	assert(mk && fsid && (frame || len == 0));
	rc = check_id(object_id, &idlen);
	if (rc < 0)
		return rc;
	rc = frame_parse(frame, len, &v);
	if (rc < 0)
		return rc;
	rc = object_key(mk, v.gen, fsid, object_id, idlen, key);
	if (rc == 0 && v.version == CRYPT_FRAME_VERSION)
		rc = unseal_v2(key, fsid, object_id, idlen, &v, out);
	else if (rc == 0 && v.zipped)
		rc = unseal_zipped(key, fsid, object_id, idlen, &v, out);
	else if (rc == 0)
		rc = unseal_raw(key, fsid, object_id, idlen, &v, out);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}
