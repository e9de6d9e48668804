/*
 * crypt_super.c - the superblock and its key slots (format in crypt.h).
 *
 * The superblock is readable by anyone (crypt_super_parse()) because the
 * mount must learn its slots' KDF parameters before it has a key.  What
 * protects it:
 *   - each slot's wrap is AES-256-GCM with the slot's type, KDF
 *     parameters and salt and the filesystem id as associated data, so a
 *     slot cannot be weakened (smaller N) or moved to another filesystem;
 *   - the MAC at the end, under a key derived from the master key, covers
 *     everything else (block size, creation time, the slot table), so it
 *     is checked right after a slot opens, and before any edit.
 *
 * Edits work on a stack copy of the superblock (edit_begin/edit_commit):
 * parse, check the MAC, change the copy, MAC it again, then copy it back
 * over the caller's buffer, so a failure leaves the buffer as it was.
 * Every KEK lives on the stack and is wiped before return; an unwrapped
 * master key is decrypted straight into its locked page.
 */
#include "crypt_int.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#define SB_MAGIC "PHIFSSB"		/* and its NUL: 8 bytes */
#define OFF_SB_VERSION 8
#define OFF_SB_FSID 12
#define OFF_SB_BSIZE 28
#define OFF_SB_CREATED 32
#define OFF_SB_NSLOTS 40
#define OFF_SB_SLOTS 44
#define SLOT_SIZE 112
#define OFF_SB_MAC (OFF_SB_SLOTS + CRYPT_MAX_SLOTS * SLOT_SIZE)

#define SL_TYPE 0
#define SL_N 4
#define SL_R 12
#define SL_P 16
#define SL_SALT 20
#define SL_NONCE 52		/* also the length of the slot's AAD */
#define SL_WRAP 64
#define SL_TAG 96
#define SALT_LEN 32

static_assert(OFF_SB_MAC + 32 == CRYPT_SUPER_SIZE, "superblock layout");
static_assert(SL_TAG + CRYPT_TAG_LEN == SLOT_SIZE, "slot layout");

static const char LABEL_MAC[] = "phifs superblock mac v1";
static const char LABEL_KEYFILE[] = "phifs keyfile kek v1";

/* The bound the header promises on scrypt's memory, 128 * n * r. */
#define KDF_MEM_MAX ((uint64_t)2 << 30)

void crypt_kdf_default(struct crypt_kdf_params *p)
{
	/*
	 * Measured with OpenSSL 3.0 on the 2-vCPU reference machine
	 * (MEASURED.md): N = 2^17 took 0.43 s, N = 2^18 0.88 s, N = 2^19
	 * 2.26 s, all with r = 8, p = 1.  N = 2^18 is the one near a
	 * second; it needs 128 * N * r = 256 MiB while it runs.
	 */
	p->n = (uint64_t)1 << 18;
	p->r = 8;
	p->p = 1;
}

static bool kdf_params_ok(const struct crypt_kdf_params *p)
{
	if (p->n < 2 || p->n > ((uint64_t)1 << 22) || (p->n & (p->n - 1)))
		return false;
	if (p->r < 1 || p->r > 32 || p->p < 1 || p->p > 16)
		return false;
	return 128 * p->n * p->r <= KDF_MEM_MAX;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int slot_parse(const uint8_t *s, struct crypt_slot_info *si)
{
	memset(si, 0, sizeof(*si));
	switch (s[SL_TYPE]) {
	case CRYPT_SLOT_EMPTY:
		return all_zero(s, SLOT_SIZE) ? 0 : PHI_ECORRUPT;
	case CRYPT_SLOT_PASSPHRASE:
		si->kdf.n = crypt__get_be64(s + SL_N);
		si->kdf.r = crypt__get_be32(s + SL_R);
		si->kdf.p = crypt__get_be32(s + SL_P);
		if (!kdf_params_ok(&si->kdf))
			return PHI_ECORRUPT;
		break;
	case CRYPT_SLOT_KEYFILE:
		if (!all_zero(s + SL_N, SL_SALT - SL_N))
			return PHI_ECORRUPT;
		break;
	default:
		return PHI_ECORRUPT;
	}
	if (!all_zero(s + 1, SL_N - 1))
		return PHI_ECORRUPT;
	si->type = s[SL_TYPE];
	return 0;
}

int crypt_super_parse(const void *sb, size_t len,
		      struct crypt_super_info *info)
{
	const uint8_t *b = sb;
	struct crypt_super_info in;
	int used = 0, rc;

	if (len != CRYPT_SUPER_SIZE || memcmp(b, SB_MAGIC, 8) != 0)
		return PHI_ECORRUPT;
	in.version = crypt__get_be32(b + OFF_SB_VERSION);
	if (in.version != CRYPT_SUPER_VERSION)
		return PHI_EVERSION;
	memcpy(in.fsid, b + OFF_SB_FSID, 16);
	in.block_size = crypt__get_be32(b + OFF_SB_BSIZE);
	in.created = (int64_t)crypt__get_be64(b + OFF_SB_CREATED);
	in.nslots = b[OFF_SB_NSLOTS];
	if (in.block_size == 0 || in.block_size > CRYPT_MAX_BLOCK ||
	    !all_zero(b + OFF_SB_NSLOTS + 1, OFF_SB_SLOTS - OFF_SB_NSLOTS - 1))
		return PHI_ECORRUPT;
	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		rc = slot_parse(b + OFF_SB_SLOTS + i * SLOT_SIZE,
				&in.slots[i]);
		if (rc < 0)
			return rc;
		used += in.slots[i].type != CRYPT_SLOT_EMPTY;
	}
	if (used != in.nslots)
		return PHI_ECORRUPT;
	*info = in;
	return 0;
}

/* The MAC of sb[0..OFF_SB_MAC) under the master key's superblock key. */
static int super_mac(const struct crypt_key *mk, const uint8_t *sb,
		     uint8_t mac[32])
{
	uint8_t key[CRYPT_KEY_LEN];
	int rc;

	rc = crypt__hkdf(mk->master, sizeof(mk->master), sb + OFF_SB_FSID,
			 16, LABEL_MAC, NULL, 0, key, sizeof(key));
	if (rc == 0)
		rc = crypt__hmac(key, sb, OFF_SB_MAC, mac);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

static int super_check_mac(const struct crypt_key *mk, const uint8_t *sb)
{
	uint8_t mac[32];
	int rc;

	rc = super_mac(mk, sb, mac);
	if (rc == 0 && CRYPTO_memcmp(mac, sb + OFF_SB_MAC, 32) != 0)
		rc = PHI_ECORRUPT;
	return rc;
}

int crypt_super_verify(const void *sb, size_t len, const struct crypt_key *mk)
{
	struct crypt_super_info info;
	int rc;

	assert(mk);
	rc = crypt_super_parse(sb, len, &info);
	if (rc == 0)
		rc = super_check_mac(mk, sb);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Creating and editing                                                */
/* ------------------------------------------------------------------ */

int crypt_super_create(const struct crypt_key *mk,
		       const struct crypt_super_info *info, struct buf *out)
{
	uint8_t sb[CRYPT_SUPER_SIZE];
	int rc;

	assert(mk && info);
	if (info->block_size == 0 || info->block_size > CRYPT_MAX_BLOCK)
		return -EINVAL;
	memset(sb, 0, sizeof(sb));
	memcpy(sb, SB_MAGIC, 8);
	crypt__put_be32(sb + OFF_SB_VERSION, CRYPT_SUPER_VERSION);
	memcpy(sb + OFF_SB_FSID, info->fsid, 16);
	crypt__put_be32(sb + OFF_SB_BSIZE, info->block_size);
	crypt__put_be64(sb + OFF_SB_CREATED, (uint64_t)info->created);
	rc = super_mac(mk, sb, sb + OFF_SB_MAC);
	if (rc == 0)
		rc = buf_add(out, sb, sizeof(sb));
	return rc;
}

/* Copy the superblock in b to sb if it parses and its MAC holds. */
static int edit_begin(const struct buf *b, const struct crypt_key *mk,
		      uint8_t sb[CRYPT_SUPER_SIZE],
		      struct crypt_super_info *info)
{
	int rc;

	assert(mk);
	rc = crypt_super_parse(buf_data(b), buf_len(b), info);
	if (rc == 0)
		rc = super_check_mac(mk, buf_data(b));
	if (rc == 0)
		memcpy(sb, buf_data(b), CRYPT_SUPER_SIZE);
	return rc;
}

/* Set the slot count, MAC the copy and write it over b. */
static int edit_commit(struct buf *b, const struct crypt_key *mk,
		       uint8_t sb[CRYPT_SUPER_SIZE], int nslots)
{
	int rc;

	sb[OFF_SB_NSLOTS] = (uint8_t)nslots;
	rc = super_mac(mk, sb, sb + OFF_SB_MAC);
	if (rc == 0)
		memcpy(buf_mut(b), sb, CRYPT_SUPER_SIZE);
	return rc;
}

static int free_slot(const struct crypt_super_info *info)
{
	for (int i = 0; i < CRYPT_MAX_SLOTS; i++)
		if (info->slots[i].type == CRYPT_SLOT_EMPTY)
			return i;
	return -ENOSPC;
}

static int scrypt_kek(const char *pass, size_t plen, const uint8_t *salt,
		      const struct crypt_kdf_params *kp,
		      uint8_t kek[CRYPT_KEY_LEN])
{
	const struct crypt_algs *a = crypt__algs();
	uint64_t n = kp->n, maxmem;
	uint32_t r = kp->r, p = kp->p;
	OSSL_PARAM params[7];
	EVP_KDF_CTX *ctx;
	int rc = -ENOMEM;

	if (!a)
		return -ENOMEM;
	/* what OpenSSL's scrypt allocates, 128 r (N + 2 + p), and slack */
	maxmem = 128 * (uint64_t)r * (n + 2 + p) + (1u << 20);
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
						      (void *)pass, plen);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						      (void *)salt, SALT_LEN);
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
						&maxmem);
	params[6] = OSSL_PARAM_construct_end();
	ctx = EVP_KDF_CTX_new(a->scrypt);
	if (ctx && EVP_KDF_derive(ctx, kek, CRYPT_KEY_LEN, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

static int keyfile_kek(const void *kf, size_t kflen, const uint8_t *salt,
		       uint8_t kek[CRYPT_KEY_LEN])
{
	return crypt__hkdf(kf, kflen, salt, SALT_LEN, LABEL_KEYFILE, NULL, 0,
			   kek, CRYPT_KEY_LEN);
}

/* The secret that opens a slot: a passphrase or a key file's bytes. */
struct slot_secret {
	enum crypt_slot_type type;
	const void *p;
	size_t n;
};

static int slot_kek(const struct slot_secret *sec, const uint8_t *slot,
		    uint8_t kek[CRYPT_KEY_LEN])
{
	struct crypt_kdf_params kp;

	if (sec->type == CRYPT_SLOT_KEYFILE)
		return keyfile_kek(sec->p, sec->n, slot + SL_SALT, kek);
	kp.n = crypt__get_be64(slot + SL_N);
	kp.r = crypt__get_be32(slot + SL_R);
	kp.p = crypt__get_be32(slot + SL_P);
	return scrypt_kek(sec->p, sec->n, slot + SL_SALT, &kp, kek);
}

/* Fill the empty slot at s: header, fresh salt and nonce, wrapped key. */
static int slot_fill(uint8_t *s, const uint8_t *fsid,
		     const struct crypt_key *mk, const struct slot_secret *sec,
		     const struct crypt_kdf_params *kp)
{
	struct crypt_span aad[2] = { { s, SL_NONCE }, { fsid, 16 } };
	uint8_t kek[CRYPT_KEY_LEN];
	int rc;

	memset(s, 0, SLOT_SIZE);
	s[SL_TYPE] = (uint8_t)sec->type;
	if (kp) {
		crypt__put_be64(s + SL_N, kp->n);
		crypt__put_be32(s + SL_R, kp->r);
		crypt__put_be32(s + SL_P, kp->p);
	}
	rc = crypt_random_bytes(s + SL_SALT, SALT_LEN);
	if (rc == 0)
		rc = crypt_random_bytes(s + SL_NONCE, CRYPT_NONCE_LEN);
	if (rc == 0)
		rc = slot_kek(sec, s, kek);
	if (rc == 0)
		rc = crypt__gcm_seal(kek, s + SL_NONCE, aad, 2, mk->master,
				     CRYPT_KEY_LEN, s + SL_WRAP, s + SL_TAG);
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

static int super_add(struct buf *b, const struct crypt_key *mk,
		     const struct slot_secret *sec,
		     const struct crypt_kdf_params *kp)
{
	uint8_t sb[CRYPT_SUPER_SIZE];
	struct crypt_super_info info;
	int slot, rc;

	rc = edit_begin(b, mk, sb, &info);
	if (rc < 0)
		return rc;
	slot = free_slot(&info);
	if (slot < 0)
		return slot;
	rc = slot_fill(sb + OFF_SB_SLOTS + slot * SLOT_SIZE, sb + OFF_SB_FSID,
		       mk, sec, kp);
	if (rc == 0)
		rc = edit_commit(b, mk, sb, info.nslots + 1);
	return rc < 0 ? rc : slot;
}

int crypt_super_add_passphrase(struct buf *sb, const struct crypt_key *mk,
			       const char *pass, size_t plen,
			       const struct crypt_kdf_params *p)
{
	struct slot_secret sec = { CRYPT_SLOT_PASSPHRASE, pass, plen };

	if (!pass || plen == 0 || !p || !kdf_params_ok(p))
		return -EINVAL;
	return super_add(sb, mk, &sec, p);
}

int crypt_super_add_keyfile(struct buf *sb, const struct crypt_key *mk,
			    const void *kf, size_t kflen)
{
	struct slot_secret sec = { CRYPT_SLOT_KEYFILE, kf, kflen };

	if (!kf || kflen < CRYPT_KEYFILE_MIN)
		return -EINVAL;
	return super_add(sb, mk, &sec, NULL);
}

int crypt_super_remove_slot(struct buf *b, const struct crypt_key *mk,
			    int slot)
{
	uint8_t sb[CRYPT_SUPER_SIZE];
	struct crypt_super_info info;
	int rc;

	rc = edit_begin(b, mk, sb, &info);
	if (rc < 0)
		return rc;
	if (slot < 0 || slot >= CRYPT_MAX_SLOTS ||
	    info.slots[slot].type == CRYPT_SLOT_EMPTY)
		return -ENOENT;
	if (info.nslots == 1)
		return -EPERM;
	memset(sb + OFF_SB_SLOTS + slot * SLOT_SIZE, 0, SLOT_SIZE);
	return edit_commit(b, mk, sb, info.nslots - 1);
}

/* ------------------------------------------------------------------ */
/* Unlocking                                                           */
/* ------------------------------------------------------------------ */

/*
 * Unwrap the slot at s into k->master.  PHI_EAUTHFAIL when the secret is
 * not this slot's; k->master then holds garbage the caller overwrites or
 * wipes.
 */
static int slot_open(const uint8_t *s, const uint8_t *fsid,
		     const struct slot_secret *sec, struct crypt_key *k)
{
	struct crypt_span aad[2] = { { s, SL_NONCE }, { fsid, 16 } };
	uint8_t kek[CRYPT_KEY_LEN];
	int rc;

	rc = slot_kek(sec, s, kek);
	if (rc == 0)
		rc = crypt__gcm_open(kek, s + SL_NONCE, aad, 2, s + SL_WRAP,
				     CRYPT_KEY_LEN, k->master, s + SL_TAG);
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

/* Try the slots of sec's type in order; on the first that opens, finish
 * the key and check the MAC. */
static int super_unlock(const uint8_t *sb, const struct crypt_super_info *info,
			const struct slot_secret *sec, struct crypt_key *k)
{
	const uint8_t *fsid = sb + OFF_SB_FSID;

	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		const uint8_t *s = sb + OFF_SB_SLOTS + i * SLOT_SIZE;
		int rc;

		if (info->slots[i].type != sec->type)
			continue;
		rc = slot_open(s, fsid, sec, k);
		if (rc == PHI_EAUTHFAIL)
			continue;
		if (rc == 0)
			rc = crypt__key_finish(k);
		if (rc == 0)
			rc = super_check_mac(k, sb);
		return rc;
	}
	return PHI_EBADKEY;
}

static int unlock_with(const void *sb, size_t len,
		       const struct slot_secret *sec, struct crypt_key **out)
{
	struct crypt_super_info info;
	struct crypt_key *k;
	int rc;

	rc = crypt_super_parse(sb, len, &info);
	if (rc < 0)
		return rc;
	rc = crypt__key_alloc(&k);
	if (rc < 0)
		return rc;
	rc = super_unlock(sb, &info, sec, k);
	if (rc < 0) {
		crypt_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

int crypt_super_unlock_passphrase(const void *sb, size_t len,
				  const char *pass, size_t plen,
				  struct crypt_key **out)
{
	struct slot_secret sec = { CRYPT_SLOT_PASSPHRASE, pass, plen };

	if (!pass || plen == 0)
		return PHI_EBADKEY;
	return unlock_with(sb, len, &sec, out);
}

int crypt_super_unlock_keyfile(const void *sb, size_t len, const void *kf,
			       size_t kflen, struct crypt_key **out)
{
	struct slot_secret sec = { CRYPT_SLOT_KEYFILE, kf, kflen };

	if (!kf || kflen < CRYPT_KEYFILE_MIN)
		return PHI_EBADKEY;
	return unlock_with(sb, len, &sec, out);
}
