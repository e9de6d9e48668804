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
 * The copy is always format 3: edit_begin() lifts an older superblock
 * into it (header, then each slot's 112 or 192 bytes, which keep their
 * wraps: the wrap's associated data is the same in every format), and
 * edit_commit() raises the serial.
 *
 * Rotation.  A sealed slot holds an X25519 key pair: the private key
 * wrapped under the slot's KEK, the public key in the clear, and the
 * master key sealed to the public key (an ephemeral key pair, HKDF of
 * their shared secret, AES-256-GCM).  So crypt_super_rotate(), which
 * knows the master key and no slot's secret, can seal a new master key
 * to every slot, and what a slot removed earlier could open (in an old
 * copy of the superblock) stays the old key.  The older keys ride in the
 * chain, encrypted under the newest.
 *
 * Every KEK, private key and shared secret lives on the stack and is
 * wiped before return; an unwrapped master key is decrypted straight
 * into its locked page.
 */
#include "crypt_int.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "phi.h"

#define SB_MAGIC "PHIFSSB"		/* and its NUL: 8 bytes */
#define OFF_SB_VERSION 8
#define OFF_SB_FSID 12
#define OFF_SB_BSIZE 28
#define OFF_SB_CREATED 32
#define OFF_SB_NSLOTS 40
#define OFF_SB_SERIAL 44	/* format 2 on */
#define OFF_SB_GEN 52		/* format 3 */
#define OFF_SB_SLOTS 64
#define SLOT_SIZE 352
#define OFF_SB_CHAIN (OFF_SB_SLOTS + CRYPT_MAX_SLOTS * SLOT_SIZE)
#define CHAIN_KEYS ((CRYPT_MAX_GENS - 1) * CRYPT_KEY_LEN)
#define CHAIN_SIZE (CRYPT_NONCE_LEN + CHAIN_KEYS + CRYPT_TAG_LEN)
#define OFF_SB_MAC (OFF_SB_CHAIN + CHAIN_SIZE)
#define SLOT_V2_SIZE 192	/* format 2 */
#define OFF_V2_MAC (OFF_SB_SLOTS + CRYPT_MAX_SLOTS * SLOT_V2_SIZE)
#define OFF_V1_SLOTS 44		/* format 1 */
#define SLOT_V1_SIZE 112
#define OFF_V1_MAC (OFF_V1_SLOTS + CRYPT_MAX_SLOTS * SLOT_V1_SIZE)

#define SL_TYPE 0
#define SL_FLAGS 1		/* format 3 */
#define SLF_SEALED 0x01
#define SL_N 4
#define SL_R 12
#define SL_P 16
#define SL_SALT 20
#define SL_NONCE 52		/* also the length of the slot's AAD */
#define SL_WRAP 64
#define SL_TAG 96
#define SL_ADDED 112		/* format 2 */
#define SL_LABEL 120
#define SL_LABEL_LEN 64
#define SL_END 184
#define SX_PUB 192		/* sealed slots */
#define SX_EPH 224
#define SX_NONCE 256
#define SX_WRAP 268
#define SX_TAG 300
#define SX_COMMIT 316
#define SX_END 348
#define SALT_LEN 32
#define X25519_LEN 32

static_assert(OFF_SB_MAC + 32 == CRYPT_SUPER_SIZE, "superblock layout");
static_assert(OFF_V2_MAC + 32 == CRYPT_SUPER_SIZE_V2, "format 2 layout");
static_assert(OFF_V1_MAC + 32 == CRYPT_SUPER_SIZE_V1, "format 1 layout");
static_assert(SL_TAG + CRYPT_TAG_LEN == SLOT_V1_SIZE, "slot layout");
static_assert(SL_END + 8 == SLOT_V2_SIZE, "slot layout");
static_assert(SX_PUB == SLOT_V2_SIZE && SX_END + 4 == SLOT_SIZE,
	      "sealed slot layout");
static_assert(SX_TAG == SX_WRAP + CRYPT_KEY_LEN, "sealed slot layout");
static_assert(CRYPT_LABEL_MAX < SL_LABEL_LEN, "label and its NUL");

static const char LABEL_MAC[] = "phifs superblock mac v1";
static const char LABEL_KEYFILE[] = "phifs keyfile kek v1";
static const char LABEL_RECOVERY[] = "phifs recovery kek v1";
static const char LABEL_SLOT_SEAL[] = "phifs slot seal v1";
static const char LABEL_CHAIN[] = "phifs key chain v1";
static const char LABEL_COMMIT[] = "phifs slot commit v1";
static const char LABEL_ROOT[] = "phifs key root v1";

/* Where the slots and the MAC of a superblock of format version v lie. */
static size_t slots_off(uint32_t v)
{
	return v == 1 ? OFF_V1_SLOTS : OFF_SB_SLOTS;
}

static size_t slot_size(uint32_t v)
{
	return v == 1 ? SLOT_V1_SIZE : v == 2 ? SLOT_V2_SIZE : SLOT_SIZE;
}

static size_t mac_off(uint32_t v)
{
	return v == 1 ? OFF_V1_MAC : v == 2 ? OFF_V2_MAC : OFF_SB_MAC;
}

/* The key generation of a superblock of format version v. */
static uint32_t sb_gen(const uint8_t *sb, uint32_t v)
{
	return v == CRYPT_SUPER_VERSION ? crypt__get_be32(sb + OFF_SB_GEN) : 0;
}

static const uint8_t *slot_at(const uint8_t *sb, uint32_t v, int i)
{
	return sb + slots_off(v) + (size_t)i * slot_size(v);
}

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

static bool label_char_ok(uint8_t c)
{
	return c >= 0x20 && c != 0x7f;
}

/* A label field: text, then NUL bytes to its end. */
static int label_parse(const uint8_t *l, char out[CRYPT_LABEL_MAX + 1])
{
	size_t n = 0;

	while (n < SL_LABEL_LEN && l[n])
		if (!label_char_ok(l[n++]))
			return PHI_ECORRUPT;
	if (n > CRYPT_LABEL_MAX || !all_zero(l + n, SL_LABEL_LEN - n))
		return PHI_ECORRUPT;
	memcpy(out, l, n);
	out[n] = '\0';
	return 0;
}

static int slot_parse(const uint8_t *s, uint32_t v,
		      struct crypt_slot_info *si)
{
	memset(si, 0, sizeof(*si));
	if (s[SL_TYPE] == CRYPT_SLOT_EMPTY)
		return all_zero(s, slot_size(v)) ? 0 : PHI_ECORRUPT;
	if (v != 1) {
		si->added = (int64_t)crypt__get_be64(s + SL_ADDED);
		if (label_parse(s + SL_LABEL, si->label) ||
		    !all_zero(s + SL_END, SLOT_V2_SIZE - SL_END))
			return PHI_ECORRUPT;
	}
	if (v == CRYPT_SUPER_VERSION) {
		if (s[SL_FLAGS] & ~SLF_SEALED)
			return PHI_ECORRUPT;
		si->sealed = s[SL_FLAGS] & SLF_SEALED;
		if (si->sealed ? !all_zero(s + SX_END, SLOT_SIZE - SX_END) :
		    !all_zero(s + SX_PUB, SLOT_SIZE - SX_PUB))
			return PHI_ECORRUPT;
	}
	switch (s[SL_TYPE]) {
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
	case CRYPT_SLOT_RECOVERY:
		if (v == 1 || !all_zero(s + SL_N, SL_SALT - SL_N))
			return PHI_ECORRUPT;
		break;
	default:
		return PHI_ECORRUPT;
	}
	if ((v != CRYPT_SUPER_VERSION && s[SL_FLAGS]) ||
	    !all_zero(s + SL_FLAGS + 1, SL_N - SL_FLAGS - 1))
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

	if (len < OFF_SB_FSID || memcmp(b, SB_MAGIC, 8) != 0)
		return PHI_ECORRUPT;
	in.version = crypt__get_be32(b + OFF_SB_VERSION);
	if (in.version < 1 || in.version > CRYPT_SUPER_VERSION)
		return PHI_EVERSION;
	if (len != mac_off(in.version) + 32)
		return PHI_ECORRUPT;
	memcpy(in.fsid, b + OFF_SB_FSID, 16);
	in.block_size = crypt__get_be32(b + OFF_SB_BSIZE);
	in.created = (int64_t)crypt__get_be64(b + OFF_SB_CREATED);
	in.nslots = b[OFF_SB_NSLOTS];
	in.serial = 0;
	in.generation = sb_gen(b, in.version);
	if (in.version != 1) {
		size_t z = in.version == 2 ? OFF_SB_GEN : OFF_SB_GEN + 4;

		in.serial = crypt__get_be64(b + OFF_SB_SERIAL);
		if (!all_zero(b + z, OFF_SB_SLOTS - z))
			return PHI_ECORRUPT;
	}
	if (in.generation >= CRYPT_MAX_GENS ||
	    (in.version == CRYPT_SUPER_VERSION && in.generation == 0 &&
	     !all_zero(b + OFF_SB_CHAIN, CHAIN_SIZE)))
		return PHI_ECORRUPT;
	if (in.block_size == 0 || in.block_size > CRYPT_MAX_BLOCK ||
	    !all_zero(b + OFF_SB_NSLOTS + 1, 3))
		return PHI_ECORRUPT;
	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		rc = slot_parse(slot_at(b, in.version, i), in.version,
				&in.slots[i]);
		if (rc < 0)
			return rc;
		used += in.slots[i].type != CRYPT_SLOT_EMPTY;
		/* a direct slot opens master key 0 only */
		if (in.slots[i].type != CRYPT_SLOT_EMPTY &&
		    !in.slots[i].sealed && in.generation)
			return PHI_ECORRUPT;
	}
	if (used != in.nslots)
		return PHI_ECORRUPT;
	*info = in;
	return 0;
}

/* The MAC of sb[0..mac_off(v)) under the superblock key of master. */
static int mac_with(const uint8_t master[CRYPT_KEY_LEN], const uint8_t *sb,
		    uint32_t v, uint8_t mac[32])
{
	uint8_t key[CRYPT_KEY_LEN];
	int rc;

	rc = crypt__hkdf(master, CRYPT_KEY_LEN, sb + OFF_SB_FSID,
			 16, LABEL_MAC, NULL, 0, key, sizeof(key));
	if (rc == 0)
		rc = crypt__hmac(key, sb, mac_off(v), mac);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* The MAC of sb[0..mac_off(v)) under the master key of sb's generation
 * (-ESTALE if mk does not hold it: a rotation since mk was unlocked). */
static int super_mac(const struct crypt_key *mk, const uint8_t *sb,
		     uint32_t v, uint8_t mac[32])
{
	uint32_t g = sb_gen(sb, v);

	if (g > mk->gen)
		return -ESTALE;
	return mac_with(mk->master[g], sb, v, mac);
}

static int super_check_mac(const struct crypt_key *mk, const uint8_t *sb,
			   uint32_t v)
{
	uint8_t mac[32];
	int rc;

	rc = super_mac(mk, sb, v, mac);
	if (rc == 0 && CRYPTO_memcmp(mac, sb + mac_off(v), 32) != 0)
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
		rc = super_check_mac(mk, sb, info.version);
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
	if (info->block_size == 0 || info->block_size > CRYPT_MAX_BLOCK ||
	    mk->gen != 0)
		return -EINVAL;
	memset(sb, 0, sizeof(sb));
	memcpy(sb, SB_MAGIC, 8);
	crypt__put_be32(sb + OFF_SB_VERSION, CRYPT_SUPER_VERSION);
	memcpy(sb + OFF_SB_FSID, info->fsid, 16);
	crypt__put_be32(sb + OFF_SB_BSIZE, info->block_size);
	crypt__put_be64(sb + OFF_SB_CREATED, (uint64_t)info->created);
	crypt__put_be64(sb + OFF_SB_SERIAL, 1);
	rc = super_mac(mk, sb, CRYPT_SUPER_VERSION, sb + OFF_SB_MAC);
	if (rc == 0)
		rc = buf_add(out, sb, sizeof(sb));
	return rc;
}

/* Lift the superblock old of format v (1 or 2) into sb, format 3 of
 * generation 0 with direct slots, without its MAC. */
static void lift(const uint8_t *old, uint32_t v, uint8_t sb[CRYPT_SUPER_SIZE])
{
	memset(sb, 0, CRYPT_SUPER_SIZE);
	memcpy(sb, old, slots_off(v));
	crypt__put_be32(sb + OFF_SB_VERSION, CRYPT_SUPER_VERSION);
	for (int i = 0; i < CRYPT_MAX_SLOTS; i++)
		memcpy(sb + OFF_SB_SLOTS + i * SLOT_SIZE, slot_at(old, v, i),
		       slot_size(v));
}

/* Copy the superblock in b to sb, as format 3, if it parses, its MAC
 * holds and it is of mk's newest generation (-ESTALE if older). */
static int edit_begin(const struct buf *b, const struct crypt_key *mk,
		      uint8_t sb[CRYPT_SUPER_SIZE],
		      struct crypt_super_info *info)
{
	int rc;

	assert(mk);
	rc = crypt_super_parse(buf_data(b), buf_len(b), info);
	if (rc == 0)
		rc = super_check_mac(mk, buf_data(b), info->version);
	if (rc == 0 && info->generation != mk->gen)
		rc = -ESTALE;
	if (rc)
		return rc;
	if (info->version != CRYPT_SUPER_VERSION)
		lift(buf_data(b), info->version, sb);
	else
		memcpy(sb, buf_data(b), CRYPT_SUPER_SIZE);
	return 0;
}

/* Set the slot count, raise the serial, MAC the copy (under mk's key of
 * the copy's generation) and write it over b, which grows when it held
 * an older format (-E2BIG or -ENOMEM: unchanged). */
static int edit_commit(struct buf *b, const struct crypt_key *mk,
		       uint8_t sb[CRYPT_SUPER_SIZE], int nslots)
{
	int rc;

	sb[OFF_SB_NSLOTS] = (uint8_t)nslots;
	crypt__put_be64(sb + OFF_SB_SERIAL,
			crypt__get_be64(sb + OFF_SB_SERIAL) + 1);
	rc = super_mac(mk, sb, CRYPT_SUPER_VERSION, sb + OFF_SB_MAC);
	if (rc == 0 && buf_len(b) < CRYPT_SUPER_SIZE)
		rc = buf_reserve(b, CRYPT_SUPER_SIZE - buf_len(b));
	if (rc)
		return rc;
	memcpy(buf_mut(b), sb, CRYPT_SUPER_SIZE);
	buf_setlen(b, CRYPT_SUPER_SIZE);
	return 0;
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
		       const char *label, uint8_t kek[CRYPT_KEY_LEN])
{
	return crypt__hkdf(kf, kflen, salt, SALT_LEN, label, NULL, 0,
			   kek, CRYPT_KEY_LEN);
}

/* The secret that opens a slot: a passphrase, a key file's bytes, or a
 * recovery secret. */
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
		return keyfile_kek(sec->p, sec->n, slot + SL_SALT,
				   LABEL_KEYFILE, kek);
	if (sec->type == CRYPT_SLOT_RECOVERY)
		return keyfile_kek(sec->p, sec->n, slot + SL_SALT,
				   LABEL_RECOVERY, kek);
	kp.n = crypt__get_be64(slot + SL_N);
	kp.r = crypt__get_be32(slot + SL_R);
	kp.p = crypt__get_be32(slot + SL_P);
	return scrypt_kek(sec->p, sec->n, slot + SL_SALT, &kp, kek);
}

/* The X25519 public key of priv. */
static int x25519_public(const uint8_t priv[X25519_LEN],
			 uint8_t pub[X25519_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL,
						   priv, X25519_LEN);
	size_t n = X25519_LEN;
	int rc = -ENOMEM;

	if (k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 &&
	    n == X25519_LEN)
		rc = 0;
	EVP_PKEY_free(k);
	return rc;
}

/* The X25519 shared secret of priv and peer's public key; PHI_EAUTHFAIL
 * for a peer key that gives none (a small-order point: altered). */
static int x25519_shared(const uint8_t priv[X25519_LEN],
			 const uint8_t peer[X25519_LEN],
			 uint8_t out[X25519_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL,
						   priv, X25519_LEN);
	EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL,
						  peer, X25519_LEN);
	EVP_PKEY_CTX *ctx = k && p ? EVP_PKEY_CTX_new(k, NULL) : NULL;
	size_t n = X25519_LEN;
	int rc = -ENOMEM;

	if (ctx && EVP_PKEY_derive_init(ctx) == 1) {
		rc = PHI_EAUTHFAIL;
		if (EVP_PKEY_derive_set_peer(ctx, p) == 1 &&
		    EVP_PKEY_derive(ctx, out, &n) == 1 && n == X25519_LEN &&
		    !all_zero(out, X25519_LEN))
			rc = 0;
	}
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(p);
	EVP_PKEY_free(k);
	return rc;
}

/* The key that seals master key gen to the sealed slot s, from the
 * X25519 secret of its public key and the ephemeral one. */
static int seal_key(const uint8_t *s, const uint8_t *fsid,
		    const uint8_t shared[X25519_LEN],
		    uint8_t key[CRYPT_KEY_LEN])
{
	return crypt__hkdf(shared, X25519_LEN, fsid, 16, LABEL_SLOT_SEAL,
			   s + SX_PUB, 2 * X25519_LEN, key, CRYPT_KEY_LEN);
}

/* Seal master (of generation gen) to the public key of the sealed slot
 * s, with a fresh ephemeral key pair and nonce. */
static int slot_seal_master(uint8_t *s, const uint8_t *fsid,
			    const uint8_t master[CRYPT_KEY_LEN], uint32_t gen)
{
	uint8_t eph[X25519_LEN], shared[X25519_LEN], key[CRYPT_KEY_LEN];
	uint8_t g[4];
	struct crypt_span aad[2] = { { fsid, 16 }, { g, 4 } };
	int rc;

	crypt__put_be32(g, gen);
	rc = crypt_random_bytes(eph, sizeof(eph));
	if (rc == 0)
		rc = x25519_public(eph, s + SX_EPH);
	if (rc == 0)
		rc = x25519_shared(eph, s + SX_PUB, shared);
	if (rc == 0)
		rc = seal_key(s, fsid, shared, key);
	if (rc == 0)
		rc = crypt_random_bytes(s + SX_NONCE, CRYPT_NONCE_LEN);
	if (rc == 0)
		rc = crypt__gcm_seal(key, s + SX_NONCE, aad, 2, master,
				     CRYPT_KEY_LEN, s + SX_WRAP, s + SX_TAG);
	OPENSSL_cleanse(eph, sizeof(eph));
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* Open the master key of generation gen sealed to the sealed slot s,
 * whose private key is priv, into out. */
static int slot_open_master(const uint8_t *s, const uint8_t *fsid,
			    const uint8_t priv[X25519_LEN], uint32_t gen,
			    uint8_t out[CRYPT_KEY_LEN])
{
	uint8_t shared[X25519_LEN], key[CRYPT_KEY_LEN], g[4];
	struct crypt_span aad[2] = { { fsid, 16 }, { g, 4 } };
	int rc;

	crypt__put_be32(g, gen);
	rc = x25519_shared(priv, s + SX_EPH, shared);
	if (rc == 0)
		rc = seal_key(s, fsid, shared, key);
	if (rc == 0)
		rc = crypt__gcm_open(key, s + SX_NONCE, aad, 2, s + SX_WRAP,
				     CRYPT_KEY_LEN, out, s + SX_TAG);
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* The key that encrypts the chain of a superblock whose newest master
 * key is master. */
static int chain_key(const uint8_t *sb, const uint8_t master[CRYPT_KEY_LEN],
		     uint8_t key[CRYPT_KEY_LEN])
{
	return crypt__hkdf(master, CRYPT_KEY_LEN, sb + OFF_SB_FSID, 16,
			   LABEL_CHAIN, NULL, 0, key, CRYPT_KEY_LEN);
}

/* Put k's master keys 0..k->gen-1 into the chain of sb (format 3, of
 * generation k->gen >= 1), encrypted under master key k->gen. */
static int chain_seal(uint8_t *sb, const struct crypt_key *k)
{
	uint8_t key[CRYPT_KEY_LEN], keys[CHAIN_KEYS], g[4];
	uint8_t *c = sb + OFF_SB_CHAIN;
	struct crypt_span aad[2] = { { sb + OFF_SB_FSID, 16 }, { g, 4 } };
	int rc;

	crypt__put_be32(g, k->gen);
	memset(keys, 0, sizeof(keys));
	memcpy(keys, k->master, (size_t)k->gen * CRYPT_KEY_LEN);
	rc = crypt_random_bytes(c, CRYPT_NONCE_LEN);
	if (rc == 0)
		rc = chain_key(sb, k->master[k->gen], key);
	if (rc == 0)
		rc = crypt__gcm_seal(key, c, aad, 2, keys, CHAIN_KEYS,
				     c + CRYPT_NONCE_LEN,
				     c + CRYPT_NONCE_LEN + CHAIN_KEYS);
	OPENSSL_cleanse(keys, sizeof(keys));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* Decrypt the chain of sb (generation gen >= 1, whose master key is
 * master) into keys: master keys 0..gen-1, then zeros.  PHI_ECORRUPT if
 * it fails its tag (the caller opened master key gen: sb was altered). */
static int chain_decrypt(const uint8_t *sb, uint32_t gen,
			 const uint8_t master[CRYPT_KEY_LEN],
			 uint8_t keys[CHAIN_KEYS])
{
	uint8_t key[CRYPT_KEY_LEN], g[4];
	const uint8_t *c = sb + OFF_SB_CHAIN;
	struct crypt_span aad[2] = { { sb + OFF_SB_FSID, 16 }, { g, 4 } };
	int rc;

	crypt__put_be32(g, gen);
	rc = chain_key(sb, master, key);
	if (rc == 0)
		rc = crypt__gcm_open(key, c, aad, 2, c + CRYPT_NONCE_LEN,
				     CHAIN_KEYS, keys,
				     c + CRYPT_NONCE_LEN + CHAIN_KEYS);
	if (rc == PHI_EAUTHFAIL)
		rc = PHI_ECORRUPT;
	if (rc)
		OPENSSL_cleanse(keys, CHAIN_KEYS);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* Open the chain of sb (generation gen, whose master key k holds) into
 * k->master[0..gen-1].  Nothing to do for generation 0. */
static int chain_open(const uint8_t *sb, uint32_t gen, struct crypt_key *k)
{
	uint8_t keys[CHAIN_KEYS];
	int rc;

	if (gen == 0)
		return 0;
	rc = chain_decrypt(sb, gen, k->master[gen], keys);
	if (rc == 0)
		memcpy(k->master, keys, (size_t)gen * CRYPT_KEY_LEN);
	OPENSSL_cleanse(keys, sizeof(keys));
	return rc;
}

/*
 * The commitment of a sealed slot to its filesystem's first master key.
 * Sealing to a public key needs no secret, so without it whoever can
 * write the superblock could seal a master key of their own to a slot
 * (and MAC the superblock under it), and the slot's secret would then
 * open that key.  The commitment is an HMAC, under a key derived from
 * the slot's KEK, of the slot's public key and a fingerprint of master
 * key 0 (which never changes): only the secret's holder could make it,
 * and a substituted key fails it.  ckey: HKDF(KEK, salt, "phifs slot
 * commit v1"); root: HKDF(master key 0, fsid, "phifs key root v1").
 */
static int slot_commit_key(const uint8_t kek[CRYPT_KEY_LEN], const uint8_t *s,
			   uint8_t ckey[CRYPT_KEY_LEN])
{
	return crypt__hkdf(kek, CRYPT_KEY_LEN, s + SL_SALT, SALT_LEN,
			   LABEL_COMMIT, NULL, 0, ckey, CRYPT_KEY_LEN);
}

static int slot_commit(const uint8_t ckey[CRYPT_KEY_LEN], const uint8_t *s,
		       const uint8_t *fsid, const struct crypt_key *k,
		       uint8_t out[32])
{
	uint8_t msg[16 + X25519_LEN + CRYPT_KEY_LEN];
	int rc;

	memcpy(msg, fsid, 16);
	memcpy(msg + 16, s + SX_PUB, X25519_LEN);
	rc = crypt__hkdf(k->master[0], CRYPT_KEY_LEN, fsid, 16, LABEL_ROOT,
			 NULL, 0, msg + 16 + X25519_LEN, CRYPT_KEY_LEN);
	if (rc == 0)
		rc = crypt__hmac(ckey, msg, sizeof(msg), out);
	OPENSSL_cleanse(msg, sizeof(msg));
	return rc;
}

/* Fill the slot at s: header, fresh salt and nonce, a key pair whose
 * private key is wrapped under the KEK, its commitment, the newest master
 * key of mk sealed to it, time and label (checked by new_slot_ok()). */
static int slot_fill(uint8_t *s, const uint8_t *fsid,
		     const struct crypt_key *mk,
		     const struct crypt_slot_new *ns)
{
	struct slot_secret sec = { ns->type, ns->secret, ns->len };
	struct crypt_span aad[2] = { { s, SL_NONCE }, { fsid, 16 } };
	uint8_t kek[CRYPT_KEY_LEN], priv[X25519_LEN], ckey[CRYPT_KEY_LEN];
	uint32_t gen = crypt_key_generation(mk);
	int rc;

	memset(s, 0, SLOT_SIZE);
	s[SL_TYPE] = (uint8_t)ns->type;
	s[SL_FLAGS] = SLF_SEALED;
	if (ns->type == CRYPT_SLOT_PASSPHRASE) {
		crypt__put_be64(s + SL_N, ns->kdf.n);
		crypt__put_be32(s + SL_R, ns->kdf.r);
		crypt__put_be32(s + SL_P, ns->kdf.p);
	}
	crypt__put_be64(s + SL_ADDED, (uint64_t)ns->added);
	if (ns->label)
		memcpy(s + SL_LABEL, ns->label, strlen(ns->label));
	rc = crypt_random_bytes(s + SL_SALT, SALT_LEN);
	if (rc == 0)
		rc = crypt_random_bytes(s + SL_NONCE, CRYPT_NONCE_LEN);
	if (rc == 0)
		rc = crypt_random_bytes(priv, sizeof(priv));
	if (rc == 0)
		rc = x25519_public(priv, s + SX_PUB);
	if (rc == 0)
		rc = slot_kek(&sec, s, kek);
	if (rc == 0)
		rc = crypt__gcm_seal(kek, s + SL_NONCE, aad, 2, priv,
				     X25519_LEN, s + SL_WRAP, s + SL_TAG);
	if (rc == 0)
		rc = slot_commit_key(kek, s, ckey);
	if (rc == 0)
		rc = slot_commit(ckey, s, fsid, mk, s + SX_COMMIT);
	if (rc == 0)
		rc = slot_seal_master(s, fsid, mk->master[gen], gen);
	OPENSSL_cleanse(kek, sizeof(kek));
	OPENSSL_cleanse(ckey, sizeof(ckey));
	OPENSSL_cleanse(priv, sizeof(priv));
	return rc;
}

static bool new_slot_ok(const struct crypt_slot_new *ns)
{
	size_t n;

	if (!ns->secret)
		return false;
	if (ns->label) {
		n = strlen(ns->label);
		if (n > CRYPT_LABEL_MAX)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!label_char_ok((uint8_t)ns->label[i]))
				return false;
	}
	switch (ns->type) {
	case CRYPT_SLOT_PASSPHRASE:
		return ns->len > 0 && kdf_params_ok(&ns->kdf);
	case CRYPT_SLOT_KEYFILE:
		return ns->len >= CRYPT_KEYFILE_MIN;
	case CRYPT_SLOT_RECOVERY:
		return ns->len == CRYPT_RECOVERY_SECRET;
	default:
		return false;
	}
}

/* Fill slot number slot (free_slot() when negative) with ns. */
static int super_put(struct buf *b, const struct crypt_key *mk, int slot,
		     const struct crypt_slot_new *ns)
{
	uint8_t sb[CRYPT_SUPER_SIZE];
	struct crypt_super_info info;
	int nslots, rc;

	if (!new_slot_ok(ns))
		return -EINVAL;
	rc = edit_begin(b, mk, sb, &info);
	if (rc < 0)
		return rc;
	nslots = info.nslots;
	if (slot < 0) {
		slot = free_slot(&info);
		if (slot < 0)
			return slot;
		nslots++;
	} else if (slot >= CRYPT_MAX_SLOTS ||
		   info.slots[slot].type == CRYPT_SLOT_EMPTY) {
		return -ENOENT;
	}
	rc = slot_fill(sb + OFF_SB_SLOTS + slot * SLOT_SIZE, sb + OFF_SB_FSID,
		       mk, ns);
	if (rc == 0)
		rc = edit_commit(b, mk, sb, nslots);
	OPENSSL_cleanse(sb, sizeof(sb));
	return rc < 0 ? rc : slot;
}

int crypt_super_add_slot(struct buf *sb, const struct crypt_key *mk,
			 const struct crypt_slot_new *ns)
{
	return super_put(sb, mk, -1, ns);
}

int crypt_super_replace_slot(struct buf *sb, const struct crypt_key *mk,
			     int slot, const struct crypt_slot_new *ns)
{
	int rc;

	if (slot < 0)
		return -ENOENT;
	rc = super_put(sb, mk, slot, ns);
	return rc < 0 ? rc : 0;
}

int crypt_super_add_passphrase(struct buf *sb, const struct crypt_key *mk,
			       const char *pass, size_t plen,
			       const struct crypt_kdf_params *p)
{
	struct crypt_slot_new ns = { CRYPT_SLOT_PASSPHRASE, pass, plen,
				     { 0, 0, 0 }, (int64_t)time(NULL), NULL };

	if (!p)
		return -EINVAL;
	ns.kdf = *p;
	return super_put(sb, mk, -1, &ns);
}

int crypt_super_add_keyfile(struct buf *sb, const struct crypt_key *mk,
			    const void *kf, size_t kflen)
{
	struct crypt_slot_new ns = { CRYPT_SLOT_KEYFILE, kf, kflen,
				     { 0, 0, 0 }, (int64_t)time(NULL), NULL };

	return super_put(sb, mk, -1, &ns);
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

int crypt_super_rotate(struct buf *b, const struct crypt_key *mk,
		       struct crypt_key **out)
{
	uint8_t sb[CRYPT_SUPER_SIZE];
	struct crypt_super_info info;
	struct crypt_key *nk = NULL;
	uint32_t g;
	int rc;

	rc = edit_begin(b, mk, sb, &info);
	if (rc < 0)
		return rc;
	g = info.generation;
	for (int i = 0; i < CRYPT_MAX_SLOTS && rc == 0; i++)
		if (info.slots[i].type != CRYPT_SLOT_EMPTY &&
		    !info.slots[i].sealed)
			rc = -EPERM;
	if (rc == 0 && g + 1 >= CRYPT_MAX_GENS)
		rc = -EOVERFLOW;
	if (rc == 0)
		rc = crypt__key_alloc(&nk);
	if (rc == 0) {
		memcpy(nk->master, mk->master, (size_t)(g + 1) * CRYPT_KEY_LEN);
		nk->gen = g + 1;
		rc = crypt_random_bytes(nk->master[g + 1], CRYPT_KEY_LEN);
	}
	if (rc == 0)
		rc = crypt__key_finish(nk);
	crypt__put_be32(sb + OFF_SB_GEN, g + 1);
	for (int i = 0; i < CRYPT_MAX_SLOTS && rc == 0; i++)
		if (info.slots[i].type != CRYPT_SLOT_EMPTY)
			rc = slot_seal_master(sb + OFF_SB_SLOTS + i * SLOT_SIZE,
					      sb + OFF_SB_FSID,
					      nk->master[g + 1], g + 1);
	if (rc == 0)
		rc = chain_seal(sb, nk);
	if (rc == 0)
		rc = edit_commit(b, nk, sb, info.nslots);
	OPENSSL_cleanse(sb, sizeof(sb));
	if (rc < 0) {
		crypt_key_free(nk);
		return rc;
	}
	*out = nk;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Handing a new generation to a running mount                          */
/* ------------------------------------------------------------------ */

static const char LABEL_HANDOFF[] = "phifs key handoff v1";
static const char LABEL_RECEIVER[] = "phifs key handoff receiver v1";

#define HO_EPH 0
#define HO_NONCE 32
#define HO_GEN 44
#define HO_KEY 48
#define HO_TAG 80
static_assert(HO_TAG + CRYPT_TAG_LEN == CRYPT_HANDOFF_SIZE, "handoff");

struct crypt_receiver {
	uint8_t priv[X25519_LEN];
	uint8_t pub[X25519_LEN];
};

int crypt_receiver_new(struct crypt_receiver **out,
		       uint8_t pub[CRYPT_HANDOFF_PUB])
{
	struct crypt_receiver *r;
	int rc;

	rc = crypt__page_alloc((void **)&r);
	if (rc < 0)
		return rc;
	rc = crypt_random_bytes(r->priv, sizeof(r->priv));
	if (rc == 0)
		rc = x25519_public(r->priv, r->pub);
	if (rc < 0) {
		crypt_receiver_free(r);
		return rc;
	}
	memcpy(pub, r->pub, X25519_LEN);
	*out = r;
	return 0;
}

void crypt_receiver_free(struct crypt_receiver *r)
{
	crypt__page_free(r, sizeof(*r));
}

/* The key of a handoff message from the X25519 secret of its two keys. */
static int handoff_key(const uint8_t shared[X25519_LEN],
		       const uint8_t *fsid, const uint8_t *pub,
		       const uint8_t *eph, uint8_t key[CRYPT_KEY_LEN])
{
	uint8_t both[2 * X25519_LEN];
	int rc;

	memcpy(both, pub, X25519_LEN);
	memcpy(both + X25519_LEN, eph, X25519_LEN);
	rc = crypt__hkdf(shared, X25519_LEN, fsid, 16, LABEL_HANDOFF, both,
			 sizeof(both), key, CRYPT_KEY_LEN);
	return rc;
}

int crypt_handoff_seal(const struct crypt_key *k, const uint8_t fsid[16],
		       const uint8_t pub[CRYPT_HANDOFF_PUB],
		       uint8_t out[CRYPT_HANDOFF_SIZE])
{
	uint8_t eph[X25519_LEN], shared[X25519_LEN], key[CRYPT_KEY_LEN];
	uint8_t m[CRYPT_HANDOFF_SIZE];
	struct crypt_span aad[2] = { { m, HO_KEY }, { fsid, 16 } };
	uint32_t gen = crypt_key_generation(k);
	int rc;

	if (gen == 0)
		return -EINVAL;
	crypt__put_be32(m + HO_GEN, gen);
	rc = crypt_random_bytes(eph, sizeof(eph));
	if (rc == 0)
		rc = x25519_public(eph, m + HO_EPH);
	if (rc == 0)
		rc = x25519_shared(eph, pub, shared);
	if (rc == 0)
		rc = handoff_key(shared, fsid, pub, m + HO_EPH, key);
	if (rc == 0)
		rc = crypt_random_bytes(m + HO_NONCE, CRYPT_NONCE_LEN);
	if (rc == 0)
		rc = crypt__gcm_seal(key, m + HO_NONCE, aad, 2, k->master[gen],
				     CRYPT_KEY_LEN, m + HO_KEY, m + HO_TAG);
	if (rc == 0)
		memcpy(out, m, sizeof(m));
	OPENSSL_cleanse(eph, sizeof(eph));
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(m, sizeof(m));
	return rc;
}

int crypt_handoff_pub_tag(const struct crypt_key *k, uint32_t gen,
			  const uint8_t fsid[16],
			  const uint8_t pub[CRYPT_HANDOFF_PUB], uint8_t tag[32])
{
	uint8_t key[CRYPT_KEY_LEN], msg[CRYPT_HANDOFF_PUB + 4];
	int rc;

	if (gen > crypt_key_generation(k))
		return PHI_EAUTHFAIL;
	memcpy(msg, pub, CRYPT_HANDOFF_PUB);
	crypt__put_be32(msg + CRYPT_HANDOFF_PUB, gen);
	rc = crypt__hkdf(k->master[gen], CRYPT_KEY_LEN, fsid, 16,
			 LABEL_RECEIVER, NULL, 0, key, sizeof(key));
	if (rc == 0)
		rc = crypt__hmac(key, msg, sizeof(msg), tag);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int crypt_handoff_pub_check(const struct crypt_key *k, uint32_t gen,
			    const uint8_t fsid[16],
			    const uint8_t pub[CRYPT_HANDOFF_PUB],
			    const uint8_t tag[32])
{
	uint8_t want[32];
	int rc = crypt_handoff_pub_tag(k, gen, fsid, pub, want);

	if (rc == 0 && CRYPTO_memcmp(want, tag, 32) != 0)
		rc = PHI_EAUTHFAIL;
	return rc;
}

int crypt_handoff_open(const struct crypt_receiver *r, const uint8_t fsid[16],
		       const uint8_t msg[CRYPT_HANDOFF_SIZE], const void *sb,
		       size_t sblen, struct crypt_key *k, uint32_t *gen)
{
	uint8_t shared[X25519_LEN], key[CRYPT_KEY_LEN], mac[32];
	uint8_t newk[CRYPT_KEY_LEN], keys[CHAIN_KEYS];
	struct crypt_span aad[2] = { { msg, HO_KEY }, { fsid, 16 } };
	struct crypt_super_info info;
	uint32_t g = crypt__get_be32(msg + HO_GEN), have = k->gen;
	int rc;

	memset(keys, 0, sizeof(keys));
	rc = x25519_shared(r->priv, msg + HO_EPH, shared);
	if (rc == 0)
		rc = handoff_key(shared, fsid, r->pub, msg + HO_EPH, key);
	if (rc == 0)
		rc = crypt__gcm_open(key, msg + HO_NONCE, aad, 2, msg + HO_KEY,
				     CRYPT_KEY_LEN, newk, msg + HO_TAG);
	if (rc == 0 && (g <= have || g >= CRYPT_MAX_GENS))
		rc = -ESTALE;
	/* the superblock must be of that generation and MACed under it ... */
	if (rc == 0)
		rc = crypt_super_parse(sb, sblen, &info);
	if (rc == 0 && (info.generation != g ||
			memcmp(info.fsid, fsid, 16) != 0))
		rc = PHI_ECORRUPT;
	if (rc == 0)
		rc = mac_with(newk, sb, info.version, mac);
	if (rc == 0 && CRYPTO_memcmp(mac, (const uint8_t *)sb +
				     mac_off(info.version), 32) != 0)
		rc = PHI_ECORRUPT;
	/* ... and chain every key k holds: only a holder of them made it
	 * (sealing to the receiver needs nothing but its public key) */
	if (rc == 0)
		rc = chain_decrypt(sb, g, newk, keys);
	if (rc == 0 && CRYPTO_memcmp(keys, k->master,
				     (size_t)(have + 1) * CRYPT_KEY_LEN) != 0)
		rc = PHI_ECORRUPT;
	if (rc == 0) {
		/* past the generation anyone reads: write, then publish */
		memcpy(k->master[have + 1], keys + (have + 1) * CRYPT_KEY_LEN,
		       (size_t)(g - have - 1) * CRYPT_KEY_LEN);
		memcpy(k->master[g], newk, CRYPT_KEY_LEN);
		k->gen = g;	/* sealing moves to it */
		*gen = g;
	}
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(newk, sizeof(newk));
	OPENSSL_cleanse(keys, sizeof(keys));
	return rc;
}

/* ------------------------------------------------------------------ */
/* Unlocking                                                           */
/* ------------------------------------------------------------------ */

/*
 * Open the slot at s (sealed or direct, as si says) into k->master[gen],
 * and for a sealed slot its commitment key into ckey (checked once the
 * chain gave master key 0: slot_commit()).  PHI_EAUTHFAIL when the
 * secret is not this slot's; k->master[gen] then holds garbage the caller
 * overwrites or wipes.
 */
static int slot_open(const uint8_t *s, const struct crypt_slot_info *si,
		     const uint8_t *fsid, const struct slot_secret *sec,
		     uint32_t gen, struct crypt_key *k,
		     uint8_t ckey[CRYPT_KEY_LEN])
{
	struct crypt_span aad[2] = { { s, SL_NONCE }, { fsid, 16 } };
	uint8_t kek[CRYPT_KEY_LEN], priv[X25519_LEN];
	int rc;

	rc = slot_kek(sec, s, kek);
	if (rc == 0 && !si->sealed)
		rc = crypt__gcm_open(kek, s + SL_NONCE, aad, 2, s + SL_WRAP,
				     CRYPT_KEY_LEN, k->master[gen],
				     s + SL_TAG);
	else if (rc == 0)
		rc = crypt__gcm_open(kek, s + SL_NONCE, aad, 2, s + SL_WRAP,
				     X25519_LEN, priv, s + SL_TAG);
	/* the slot's own wrap held: a failure past it is an alteration */
	if (rc == 0 && si->sealed &&
	    slot_open_master(s, fsid, priv, gen, k->master[gen]) != 0)
		rc = PHI_ECORRUPT;
	if (rc == 0 && si->sealed)
		rc = slot_commit_key(kek, s, ckey);
	OPENSSL_cleanse(kek, sizeof(kek));
	OPENSSL_cleanse(priv, sizeof(priv));
	return rc;
}

/* Try the slots of sec's type in order; on the first that opens, read
 * the chain, finish the key and check the MAC.  The number of the slot,
 * or a code. */
static int super_unlock(const uint8_t *sb, const struct crypt_super_info *info,
			const struct slot_secret *sec, struct crypt_key *k)
{
	const uint8_t *fsid = sb + OFF_SB_FSID;
	uint32_t gen = info->generation;

	for (int i = 0; i < CRYPT_MAX_SLOTS; i++) {
		const uint8_t *s = slot_at(sb, info->version, i);
		uint8_t ckey[CRYPT_KEY_LEN], c[32];
		int rc;

		if (info->slots[i].type != sec->type)
			continue;
		rc = slot_open(s, &info->slots[i], fsid, sec, gen, k, ckey);
		if (rc == PHI_EAUTHFAIL)
			continue;
		k->gen = gen;
		if (rc == 0)
			rc = chain_open(sb, gen, k);
		if (rc == 0 && info->slots[i].sealed) {
			rc = slot_commit(ckey, s, fsid, k, c);
			if (rc == 0 && CRYPTO_memcmp(c, s + SX_COMMIT, 32))
				rc = PHI_ECORRUPT;	/* another key */
		}
		OPENSSL_cleanse(ckey, sizeof(ckey));
		if (rc == 0)
			rc = crypt__key_finish(k);
		if (rc == 0)
			rc = super_check_mac(k, sb, info->version);
		return rc < 0 ? rc : i;
	}
	return PHI_EBADKEY;
}

static int unlock_with(const void *sb, size_t len,
		       const struct slot_secret *sec, struct crypt_key **out,
		       int *slot)
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
	if (slot)
		*slot = rc;
	*out = k;
	return 0;
}

int crypt_super_unlock(const void *sb, size_t len, enum crypt_slot_type type,
		       const void *secret, size_t slen, struct crypt_key **out,
		       int *slot)
{
	struct slot_secret sec = { type, secret, slen };
	size_t min = type == CRYPT_SLOT_KEYFILE ? CRYPT_KEYFILE_MIN :
		     type == CRYPT_SLOT_RECOVERY ? CRYPT_RECOVERY_SECRET : 1;

	if (!secret || slen < min ||
	    (type == CRYPT_SLOT_RECOVERY && slen != CRYPT_RECOVERY_SECRET))
		return PHI_EBADKEY;
	return unlock_with(sb, len, &sec, out, slot);
}

int crypt_super_unlock_passphrase(const void *sb, size_t len,
				  const char *pass, size_t plen,
				  struct crypt_key **out)
{
	return crypt_super_unlock(sb, len, CRYPT_SLOT_PASSPHRASE, pass, plen,
				  out, NULL);
}

int crypt_super_unlock_keyfile(const void *sb, size_t len, const void *kf,
			       size_t kflen, struct crypt_key **out)
{
	return crypt_super_unlock(sb, len, CRYPT_SLOT_KEYFILE, kf, kflen, out,
				  NULL);
}

/* ------------------------------------------------------------------ */
/* Recovery codes                                                      */
/* ------------------------------------------------------------------ */

static const char B32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define RC_DATA_CHARS 52	/* 256 bits and 4 zero bits */
#define RC_CHARS (CRYPT_RECOVERY_GROUPS * 4)

/* The 20 check bits of secret. */
static int recovery_check(const uint8_t *secret, uint32_t *out)
{
	static const char label[] = "phifs recovery check v1";
	uint8_t in[sizeof(label) + CRYPT_RECOVERY_SECRET], md[32];
	unsigned int mdlen = 0;
	int rc = -ENOMEM;

	memcpy(in, label, sizeof(label));
	memcpy(in + sizeof(label), secret, CRYPT_RECOVERY_SECRET);
	if (EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL) == 1) {
		*out = (uint32_t)md[0] << 12 | (uint32_t)md[1] << 4 |
		       md[2] >> 4;
		rc = 0;
	}
	OPENSSL_cleanse(in, sizeof(in));
	OPENSSL_cleanse(md, sizeof(md));
	return rc;
}

/* Bit i (from the most significant of byte 0) of p. */
static unsigned bit_at(const uint8_t *p, size_t i)
{
	return p[i / 8] >> (7 - i % 8) & 1;
}

int crypt_recovery_format(const uint8_t secret[CRYPT_RECOVERY_SECRET],
			  char out[CRYPT_RECOVERY_TEXT])
{
	uint8_t sym[RC_CHARS];
	uint32_t check;
	size_t o = 0;
	int rc;

	rc = recovery_check(secret, &check);
	if (rc)
		return rc;
	for (size_t c = 0; c < RC_DATA_CHARS; c++) {
		unsigned v = 0;

		for (size_t b = 0; b < 5; b++) {
			size_t i = c * 5 + b;

			v = v << 1 | (i < 256 ? bit_at(secret, i) : 0);
		}
		sym[c] = (uint8_t)v;
	}
	for (size_t c = 0; c < 4; c++)
		sym[RC_DATA_CHARS + c] = (uint8_t)(check >> (15 - 5 * c) & 31);
	for (size_t c = 0; c < RC_CHARS; c++) {
		if (c && c % 4 == 0)
			out[o++] = '-';
		out[o++] = B32[sym[c]];
	}
	out[o] = '\0';
	OPENSSL_cleanse(sym, sizeof(sym));
	return 0;
}

/* The value of a typed base32 character; -1 if it is none. */
static int b32_value(char ch)
{
	const char *p;

	if (ch >= 'a' && ch <= 'z')
		ch = (char)(ch - 'a' + 'A');
	if (ch == 'O')
		ch = '0';
	else if (ch == 'I' || ch == 'L')
		ch = '1';
	p = ch ? strchr(B32, ch) : NULL;
	return p ? (int)(p - B32) : -1;
}

/* The symbols of text into sym; -EINVAL unless there are RC_CHARS. */
static int recovery_symbols(const char *text, size_t len, uint8_t *sym)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int v;

		if (text[i] == '-' || text[i] == ' ')
			continue;
		v = b32_value(text[i]);
		if (v < 0 || n == RC_CHARS)
			return -EINVAL;
		sym[n++] = (uint8_t)v;
	}
	return n == RC_CHARS ? 0 : -EINVAL;
}

int crypt_recovery_parse(const char *text, size_t len,
			 uint8_t secret[CRYPT_RECOVERY_SECRET])
{
	uint8_t sym[RC_CHARS], sec[CRYPT_RECOVERY_SECRET] = { 0 };
	uint32_t want = 0, check;
	int rc;

	rc = recovery_symbols(text, len, sym);
	for (size_t c = 0; rc == 0 && c < RC_DATA_CHARS; c++)
		for (size_t b = 0; b < 5; b++) {
			size_t i = c * 5 + b;
			unsigned v = sym[c] >> (4 - b) & 1;

			if (i < 256)
				sec[i / 8] |= (uint8_t)(v << (7 - i % 8));
			else if (v)
				rc = -EILSEQ;	/* the pad bits are zero */
		}
	for (size_t c = 0; rc == 0 && c < 4; c++)
		want = want << 5 | sym[RC_DATA_CHARS + c];
	if (rc == 0)
		rc = recovery_check(sec, &check);
	if (rc == 0 && check != want)
		rc = -EILSEQ;
	if (rc == 0)
		memcpy(secret, sec, sizeof(sec));
	OPENSSL_cleanse(sym, sizeof(sym));
	OPENSSL_cleanse(sec, sizeof(sec));
	return rc;
}
