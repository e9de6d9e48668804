/*
 * crypt.h - keys, key slots, the superblock, and sealing blocks into
 * objects.
 *
 * This module owns every secret of phifs and every byte format that
 * protects data leaving the machine:
 *
 *   - the master key (struct crypt_key): 256 random bits, held in memory
 *     that is mlock()ed (never swapped) and madvise(MADV_DONTDUMP)ed
 *     (never in a core dump), wiped when freed.  No function here logs,
 *     returns or stores it in the clear;
 *   - keys derived from it with HKDF-SHA256: one per object (salt = the
 *     filesystem id, info = a label and the object id), one for the
 *     deduplication hash, one for the superblock MAC;
 *   - the sealed frame: a block compressed with zstd (or kept raw when that
 *     does not shrink it) and encrypted with AES-256-GCM, whose associated
 *     data binds the filesystem id and the object id, so a swapped,
 *     replayed or foreign object fails to open;
 *   - the superblock: a small object in every region, readable without a
 *     key, whose key slots wrap the master key (a passphrase through
 *     scrypt, or a key file through HKDF) and whose MAC, under a key
 *     derived from the master key, proves nothing else in it was altered.
 *     Adding or removing a slot rewrites only the superblock; data is
 *     never re-encrypted;
 *   - key generations: crypt_super_rotate() makes a new master key that
 *     seals everything from then on, and keeps the older ones (encrypted
 *     under the new one) to open what they sealed.  A struct crypt_key
 *     holds every generation of its filesystem; a frame names the one
 *     that sealed it.
 *
 * Errors.  Functions return 0 (or a documented non-negative value) on
 * success and a negative code on failure: a negative errno, or one of
 * PHI_EBADKEY (no key slot opens with this passphrase or key file),
 * PHI_EAUTHFAIL (an object fails authentication: tampered, swapped, other
 * filesystem, other key), PHI_ECORRUPT (malformed input, or a superblock
 * whose MAC fails), PHI_EVERSION (a format version this build cannot
 * read).  -ENOMEM also stands for an internal failure of the crypto
 * library, which in practice only fails to allocate.  Out-parameters are
 * set only on success.
 *
 * Threads.  Every function may be called from any thread at the same
 * time, provided no two threads use the same struct buf at once.  A
 * struct crypt_key may be shared by all threads: it is read-only once
 * made, but for crypt_handoff_open(), which adds a generation while
 * others seal and unseal with it; crypt_key_free() must not race with
 * its use.
 *
 * Fork.  Memory locks are not inherited by a child process: make or
 * unlock the master key after daemonizing, not before.
 *
 * Calls nothing of phifs but common/ (phi.h, buf.h); uses OpenSSL 3
 * (libcrypto) and zstd.
 */
#ifndef CRYPT_H
#define CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "phi.h"

/* ------------------------------------------------------------------ */
/* Process and keys                                                    */
/* ------------------------------------------------------------------ */

/*
 * Keep secrets out of core dumps for the whole process: marks it not
 * dumpable (prctl PR_SET_DUMPABLE 0, which also keeps other processes of
 * the same user from ptrace()ing it and makes /proc/PID owned by root)
 * and sets RLIMIT_CORE to 0.  The mount calls it once, early.  Returns 0
 * or the negative errno of the first step that failed (both are tried).
 */
int crypt_harden_process(void);

/*
 * The master keys of one filesystem, one per generation (0 when made,
 * one more at each crypt_super_rotate()), in locked, undumpable memory.
 * The newest seals; every one opens what it sealed.  Opaque.
 */
struct crypt_key;

/* How many generations a filesystem can have: rotations stop there. */
#define CRYPT_MAX_GENS 32

/* The generation that seals: the newest k holds. */
uint32_t crypt_key_generation(const struct crypt_key *k);

/*
 * Make a new random master key (OpenSSL's CSPRNG), generation 0, into
 * *out.  Returns 0,
 * -ENOMEM, -EIO if the random generator fails, or the negative errno of
 * mlock() (-ENOMEM or -EPERM when RLIMIT_MEMLOCK is too low: each key
 * locks one page).  Free with crypt_key_free().
 */
int crypt_key_new_random(struct crypt_key **out);

/* Wipe and free k.  NULL is a no-op. */
void crypt_key_free(struct crypt_key *k);

/*
 * Fill out with n bytes from OpenSSL's CSPRNG (filesystem ids, key
 * files).  Returns 0 or -EIO.
 */
int crypt_random_bytes(void *out, size_t n);

/*
 * A fresh opaque object name: 128 random bits as 32 lowercase hex digits
 * and a NUL.  Returns 0 or -EIO (out untouched).
 */
int crypt_random_id(char out[33]);

/*
 * The deduplication hash of a block: HMAC-SHA256 of data under a key
 * derived from mk, never a plain hash, so equal blocks of two filesystems
 * (or a guessed document) cannot be recognised from their hashes.  Stable
 * for one filesystem: the key derives from generation 0's master key.  Returns 0 or -ENOMEM (out untouched).
 */
int crypt_block_hash(const struct crypt_key *mk, const void *data,
		     size_t len, uint8_t out[32]);

/*
 * The SHA-256 of data[0..len) into out: a plain hash, for chaining
 * objects whose plaintext only the key holder reads (the audit trail's
 * segments).  Returns 0 or -ENOMEM (out untouched).
 */
int crypt_sha256(const void *data, size_t len, uint8_t out[32]);

/*
 * Names that only the key holder can read.  An object name the regions
 * see must say nothing, yet recovery must learn from a listing which
 * object is which (a journal segment, its sequence number and time).
 * crypt_name_encode() encrypts a 16-byte plaintext with AES-256 (one
 * block, a keyed permutation) under HKDF(master key of generation 0,
 * salt = fsid, "phifs object names v1") into 32 lowercase hex digits and
 * a NUL (names keep the first generation's key: a listing must be read
 * the same way before and after a rotation, and a name holds no
 * content, only a kind, a sequence number and a time);
 * crypt_name_decode() reverses it.  The caller puts a check value into
 * the plaintext to tell a name of this filesystem from anything else.
 * Returns 0, -EINVAL (decode: not 32 hex digits) or -ENOMEM.
 */
int crypt_name_encode(const struct crypt_key *mk, const uint8_t fsid[16],
		      const uint8_t plain[16], char out[33]);
int crypt_name_decode(const struct crypt_key *mk, const uint8_t fsid[16],
		      const char *name, uint8_t plain[16]);

/* Bytes of a block record's mask (crypt_block_rec_mask()). */
#define CRYPT_BLOCK_REC_MASK 20

/*
 * The mask of a block record.  A block's record in the local store names
 * its sealed copy (pack, offset and length of the frame), its plaintext
 * length and the CRC-32C of its plaintext.  Kept bare, the lengths would
 * give every file's exact size, and the checksum would confirm a guess
 * of a block's content; they are kept XORed with CRYPT_BLOCK_REC_MASK
 * bytes of HKDF(master key of generation 0, salt = fsid, "phifs block
 * records v1" NUL ino || blk || pack), all big-endian: the pack's id is
 * random and a pack holds one recorded version of a block at most, so
 * no two versions of a block share a mask.  Generation 0's key, as
 * names: records are compared across copies of the filesystem and
 * rotations.  Returns 0 or -ENOMEM.
 */
int crypt_block_rec_mask(const struct crypt_key *mk, const uint8_t fsid[16],
			 uint64_t ino, uint64_t blk, const uint8_t pack[16],
			 uint8_t mask[CRYPT_BLOCK_REC_MASK]);

/* ------------------------------------------------------------------ */
/* Sealed frames                                                       */
/* ------------------------------------------------------------------ */

/*
 * Frame format, version 2 (integers big-endian):
 *
 *	offset	size	field
 *	0	4	magic "PHIS"
 *	4	1	format version (2)
 *	5	1	flags: zero
 *	6	12	nonce, random per seal
 *	18	4	key generation (version 3; zero in version 2)
 *	22	4	zero
 *	26	8	payload length n: a size class, crypt_pad_size()
 *	34	n	ciphertext of the payload:
 *			  0   1  flags: bit 0 = the data is a zstd frame
 *			  1   8  plaintext length (before compression)
 *			  9   8  data length d
 *			  17  d  the data: the zstd frame (then d < the
 *				 plaintext length), or the plaintext itself
 *				 when compression did not shrink it
 *			  17+d   zeros up to n
 *	34+n	16	GCM tag
 *
 * So a frame, and an object made of frames, tells who holds it only its
 * size class, never a file's size: of a 1,000-byte file synced alone the
 * region sees one frame of at most 1,074 bytes (the class 1,024 and 50).
 * Version 1 frames, which regions keep from before, had the flags at 5,
 * the plaintext length at 18, and n exactly the data length; they still
 * unseal.  A frame sealed under generation 0 is version 2, so that a
 * phifs from before rotation reads it; a later generation writes version
 * 3, the same layout with the generation at 18 (which that older phifs
 * refuses as a version it does not know).
 *
 * Key: HKDF-SHA256(ikm = the master key of the frame's generation,
 *		    salt = fsid, info = "phifs object v1" NUL object_id),
 *		    32 bytes.
 * AAD: the 34 header bytes || fsid (16 bytes) || object_id (its bytes).
 * So every header field is authenticated, and an object opened under
 * another name, another filesystem or another key fails its tag.  The
 * payload length makes a truncated object (a cut download) malformed
 * rather than forged: it is told from tampering without the key.
 */
#define CRYPT_FRAME_HEADER 34
#define CRYPT_FRAME_OVERHEAD (CRYPT_FRAME_HEADER + 16)
#define CRYPT_FRAME_VERSION 2	/* generation 0; 3 for the others */

/* The largest plaintext crypt_seal() takes (blocks are up to 16 MiB;
 * metadata snapshots may be larger). */
#define CRYPT_SEAL_MAX ((size_t)1 << 30)

/* Object ids are 1..CRYPT_ID_MAX bytes, NUL-terminated. */
#define CRYPT_ID_MAX 255

/*
 * The size class of len bytes (Padmé): len rounded up so that only its
 * top floor(log2(floor(log2 len))) + 1 bits vary, and at least 256.  The
 * cost is below 3.2 % from 64 KiB up and below 6.3 % from 256 bytes up.
 */
size_t crypt_pad_size(size_t len);

/*
 * The largest frame crypt_seal() can append for len bytes of plaintext
 * (compression never makes it larger: the raw form is the fallback), or
 * SIZE_MAX for len above CRYPT_SEAL_MAX.
 */
size_t crypt_seal_bound(size_t len);

/*
 * Set the zstd level for every later crypt_seal() in the process
 * (default 3).  Returns 0, or -EINVAL if zstd has no such level.
 */
int crypt_set_level(int level);

/*
 * Compress, encrypt and append one frame for plain[0..len) to out,
 * sealed for the object named object_id of the filesystem fsid.
 *
 * Returns 0; -EINVAL if len > CRYPT_SEAL_MAX or object_id is empty or
 * longer than CRYPT_ID_MAX; -E2BIG if out's cap is too small (reserve
 * crypt_seal_bound(len)); -ENOMEM; -EIO if the random generator fails.
 * On failure out keeps its previous contents.  plain may be NULL when
 * len is 0; it must not point into out (out may move as it grows).
 */
int crypt_seal(const struct crypt_key *mk, const uint8_t fsid[16],
	       const char *object_id, const void *plain, size_t len,
	       struct buf *out);

/*
 * crypt_seal() in two halves, so that a pack's frames can be compressed
 * side by side before their places in it, which their object ids name,
 * are known.
 *
 * crypt_seal_prepare() compresses plain[0..len) into the cleartext of a
 * frame at frame (room for crypt_seal_bound(len)) and sets *framelen: the
 * size the frame will have.  Returns 0, or -EINVAL if len >
 * CRYPT_SEAL_MAX.  What it leaves at frame is plaintext: never let it out
 * unsealed.
 *
 * crypt_seal_finish() encrypts such a frame in place for object_id, as
 * crypt_seal() would have: the result is the same form, opened by
 * crypt_unseal().  Returns 0; -EINVAL if object_id is empty or too long,
 * or frame[0..framelen) is not what crypt_seal_prepare() made (or was
 * finished already: a frame is never encrypted twice); PHI_EAUTHFAIL if
 * the frame names a key generation mk does not hold; -EIO if the random
 * generator or the cipher fails, and then the frame is wiped.
 */
int crypt_seal_prepare(const struct crypt_key *mk, const void *plain,
		       size_t len, void *frame, size_t *framelen);
int crypt_seal_finish(const struct crypt_key *mk, const uint8_t fsid[16],
		      const char *object_id, void *frame, size_t framelen);

/*
 * Check, decrypt and decompress the frame frame[0..len) and append the
 * plaintext to out.  object_id and fsid must be those it was sealed for.
 *
 * Returns 0; PHI_EAUTHFAIL if the tag does not verify (a bit flipped, or
 * another object id, filesystem id or master key) or the frame names a
 * generation mk does not hold; PHI_ECORRUPT if the
 * frame is malformed (bad magic, truncated, unknown flags, lengths that
 * contradict each other, a payload that does not decompress to the
 * stated length); PHI_EVERSION for a format version this build does not
 * know; -EINVAL for a bad object_id; -E2BIG if the plaintext does not fit
 * under out's cap; -ENOMEM.  Nothing unauthenticated is ever left in
 * out: on failure out keeps its previous contents.  frame must not point
 * into out.
 */
int crypt_unseal(const struct crypt_key *mk, const uint8_t fsid[16],
		 const char *object_id, const void *frame, size_t len,
		 struct buf *out);

/* ------------------------------------------------------------------ */
/* Sectors of the local store                                          */
/* ------------------------------------------------------------------ */

/*
 * The local store keeps files in sectors of CRYPT_SECTOR bytes, each
 * sealed on its own with AES-256-GCM:
 *
 * Key: HKDF-SHA256(ikm = the master key of the sector's generation,
 *		    salt = fsid, info = "phifs local sectors v1" NUL
 *		    cache_id), 32 bytes.  cache_id is random per cache.
 * Nonce: salt (4 bytes) || counter (8 bytes), big-endian.  The caller
 *	   never uses one counter twice under one cache_id.
 * AAD: inode (8 bytes) || the sector's number in its file (8 bytes).
 * Tag: CRYPT_SECTOR_TAG bytes, kept by the caller beside the sector.
 */
#define CRYPT_SECTOR 4096
#define CRYPT_SECTOR_TAG 16

/* The keys of one cache's sectors, in locked, undumpable memory. */
struct crypt_local;

/*
 * Keys for the sectors of the cache cache_id of filesystem fsid, derived
 * from mk as they are needed (mk must outlive the object, and may gain
 * generations meanwhile).  Returns 0 or a negative errno.
 */
int crypt_local_new(const struct crypt_key *mk, const uint8_t fsid[16],
		    const uint8_t cache_id[16], struct crypt_local **out);
void crypt_local_free(struct crypt_local *l);

struct crypt_sector {
	uint64_t index;		/* the sector's number in its file */
	uint64_t counter;	/* } the nonce */
	uint32_t salt;		/* } */
	uint32_t gen;		/* key generation: seal sets it, open reads */
	uint8_t tag[CRYPT_SECTOR_TAG];	/* seal sets it, open checks it */
	const void *in;		/* CRYPT_SECTOR bytes */
	void *out;		/* CRYPT_SECTOR bytes; may be in itself */
};

/*
 * Encrypt s[0..n) of inode ino under the newest generation.
 * Returns 0 or -ENOMEM.
 */
int crypt_local_seal(struct crypt_local *l, uint64_t ino,
		     struct crypt_sector *s, size_t n);

/*
 * Check and decrypt s[0..n) of inode ino, in order.  Returns 0;
 * PHI_EAUTHFAIL at the first sector whose tag does not hold (or whose
 * generation l cannot derive), with its index in s in *failed (if not
 * NULL) and its out wiped, the sectors before it opened and those after
 * it untouched; or -ENOMEM.
 */
int crypt_local_open(struct crypt_local *l, uint64_t ino,
		     struct crypt_sector *s, size_t n, size_t *failed);

/*
 * Metadata records of the local store (LMDB).
 *
 * A name becomes a key that says nothing, yet is found again:
 * crypt_local_name() is HMAC-SHA256 under HKDF(master key of generation
 * 0, salt = fsid, "phifs local names v1" NUL cache_id) of len(9) ||
 * domain (1) || parent (8, big-endian) || name, cut to CRYPT_LOCAL_NAME
 * bytes.  Generation 0's key, so that a rotation does not move every
 * name; the domain keeps apart names of different tables.
 *
 * A value is sealed as: generation (4) || nonce (12) || AES-256-GCM
 * ciphertext || tag (16), under HKDF(master key of that generation, salt
 * = fsid, "phifs local metadata v1" NUL cache_id) with the caller's aad
 * (the record's key, so that a value moved to another key fails).  The
 * nonce is synthetic: HMAC-SHA256 under a key of its own ("phifs local
 * metadata nonces v1") of len(aad) || aad || value, cut to 12 bytes.  It
 * repeats only where aad and value do, and then the sealed bytes are
 * alike too: no counter to keep across crashes, and nothing learnt but
 * that a record went back to a value it held before.
 */
#define CRYPT_LOCAL_NAME 16
#define CRYPT_LOCAL_VALUE_OVERHEAD 32
/* The keyed hash of name in parent, for domain (a table).  0 or -ENOMEM. */
int crypt_local_name(struct crypt_local *l, uint8_t domain, uint64_t parent,
		     const void *name, size_t len,
		     uint8_t out[CRYPT_LOCAL_NAME]);
/* Seal in[0..len) into out (len + CRYPT_LOCAL_VALUE_OVERHEAD bytes)
 * under the newest generation.  0 or -ENOMEM. */
int crypt_local_seal_value(struct crypt_local *l, const void *aad,
			   size_t aadlen, const void *in, size_t len,
			   void *out);
/* Open in[0..len) into out (len - CRYPT_LOCAL_VALUE_OVERHEAD bytes).
 * 0, PHI_EAUTHFAIL (tag, aad or a generation l lacks), PHI_ECORRUPT
 * (too short), -ENOMEM. */
int crypt_local_open_value(struct crypt_local *l, const void *aad,
			   size_t aadlen, const void *in, size_t len,
			   void *out);

/* ------------------------------------------------------------------ */
/* Superblock and key slots                                            */
/* ------------------------------------------------------------------ */

/*
 * Superblock format, version 3 (integers big-endian), always
 * CRYPT_SUPER_SIZE bytes:
 *
 *	offset	size	field
 *	0	8	magic "PHIFSSB" and a NUL
 *	8	4	format version (3)
 *	12	16	filesystem id
 *	28	4	block size
 *	32	8	creation time, seconds since the epoch (signed)
 *	40	1	number of slots in use
 *	41	3	zero
 *	44	8	serial: 1 when made, one more at each edit, so that
 *			of two copies of one filesystem's superblock the
 *			newer is known (scrub and repair spread the newest)
 *	52	4	key generation g of the master key the slots open
 *	56	8	zero
 *	64	8*352	key slots 0..7, in place: a slot keeps its number
 *	2880	12	chain nonce     } the master keys of generations
 *	2892	992	chain           } 0..g-1, 32 bytes each, then zeros,
 *	3884	16	chain tag       } AES-256-GCM under HKDF(master key g,
 *					  salt = fsid, "phifs key chain v1"),
 *					  AAD fsid || g; all zero when g = 0
 *	3900	32	HMAC-SHA256 of bytes 0..3900 under HKDF(master key g,
 *			salt = fsid, "phifs superblock mac v1")
 *
 * A key slot (352 bytes; all zero when empty):
 *
 *	0	1	type: 1 passphrase, 2 key file, 3 recovery code
 *	1	1	flags: 1 = sealed slot (below); 0 = direct slot
 *	2	2	zero
 *	4	8	scrypt N   } passphrase slots; zero for the others
 *	12	4	scrypt r   }
 *	16	4	scrypt p   }
 *	20	32	salt, random per slot
 *	52	12	nonce
 *	64	32	direct slot: the master key; sealed slot: the slot's
 *			X25519 private key; encrypted with AES-256-GCM
 *			under the KEK
 *	96	16	GCM tag
 *	112	8	when the slot was added, seconds since the epoch
 *			(0: unknown, a slot carried over from format 1)
 *	120	64	label: up to CRYPT_LABEL_MAX bytes of text (no control
 *			characters), then NUL bytes
 *	184	8	zero
 *	192	32	sealed slot: the slot's X25519 public key
 *	224	32	  an ephemeral X25519 public key
 *	256	12	  nonce
 *	268	32	  master key g, AES-256-GCM under HKDF(the X25519
 *			  secret of the two, salt = fsid, "phifs slot seal
 *			  v1" NUL public key || ephemeral key), AAD fsid || g
 *	300	16	  its tag
 *	316	32	  commitment: HMAC-SHA256 under HKDF(KEK, salt,
 *			  "phifs slot commit v1") of fsid || public key ||
 *			  HKDF(master key 0, salt = fsid, "phifs key root
 *			  v1"), checked at unlock: whoever can write the
 *			  superblock but lacks the secret cannot seal a key
 *			  of their own to the slot
 *	348	4	zero (all of 192..352 for a direct slot)
 *
 * Sealed slots are what makes rotation possible: crypt_super_rotate(),
 * holding the master key but no slot's secret, seals the new master key
 * to every slot's public key, while the private key only that slot's
 * secret unwraps stays as it was.  Every slot written since format 3 is
 * sealed; a direct slot (carried over from format 1 or 2) wraps master
 * key 0 itself and can exist only while g is 0.
 *
 * KEK of a passphrase slot: scrypt(passphrase, salt, N, r, p), 32 bytes.
 * KEK of a key-file slot: HKDF-SHA256(ikm = the file's bytes, salt,
 * "phifs keyfile kek v1"), 32 bytes.  KEK of a recovery slot:
 * HKDF-SHA256(ikm = the 32-byte recovery secret, salt, "phifs recovery
 * kek v1").  AAD of the wrap: slot bytes 0..52 (type, KDF parameters,
 * salt) || fsid, so a slot cannot be moved to another filesystem nor its
 * parameters changed (nor a sealed slot made direct); its time, label
 * and public key are covered by the MAC.
 *
 * Older formats are read too, as generation 0 with direct slots.
 * Format 2 (CRYPT_SUPER_SIZE_V2 bytes, written before rotation): slots of
 * the first 192 bytes above, no generation, no chain, the MAC at 1600
 * over bytes 0..1600.  Format 1 (CRYPT_SUPER_SIZE_V1 bytes, written
 * before key management): the same header without the serial (taken as
 * 0), slots of the first 112 bytes above from offset 44, the MAC at 940
 * over bytes 0..940.  Every edit writes format 3: an edited older
 * superblock grows to CRYPT_SUPER_SIZE bytes, its slots keep their
 * numbers and wraps (format-1 slots with no time and no label).
 */
#define CRYPT_SUPER_VERSION 3
#define CRYPT_MAX_SLOTS 8
#define CRYPT_SUPER_SIZE 3932
#define CRYPT_SUPER_SIZE_V2 1632
#define CRYPT_SUPER_SIZE_V1 972

/* Whether len is the size of a superblock of some format. */
static inline int crypt_super_size_known(size_t len)
{
	return len == CRYPT_SUPER_SIZE || len == CRYPT_SUPER_SIZE_V2 ||
	       len == CRYPT_SUPER_SIZE_V1;
}

/* The longest slot label, in bytes. */
#define CRYPT_LABEL_MAX 63

/* The largest block size a superblock may record. */
#define CRYPT_MAX_BLOCK ((uint32_t)16 << 20)

/* Key files must hold at least this many bytes. */
#define CRYPT_KEYFILE_MIN 32

/*
 * scrypt parameters.  n is a power of two, 2 <= n <= 2^22; 1 <= r <= 32;
 * 1 <= p <= 16; the memory they need, about 128 * n * r bytes, is at
 * most 2 GiB.
 */
struct crypt_kdf_params {
	uint64_t n;
	uint32_t r, p;
};

/* Parameters that take about one second on the machines phifs targets. */
void crypt_kdf_default(struct crypt_kdf_params *p);

enum crypt_slot_type {
	CRYPT_SLOT_EMPTY = 0,
	CRYPT_SLOT_PASSPHRASE = 1,
	CRYPT_SLOT_KEYFILE = 2,
	CRYPT_SLOT_RECOVERY = 3,
};

struct crypt_slot_info {
	enum crypt_slot_type type;
	int sealed;			/* 1: a sealed slot; 0: direct */
	struct crypt_kdf_params kdf;	/* passphrase slots; else zero */
	int64_t added;			/* seconds since the epoch; 0 unknown */
	char label[CRYPT_LABEL_MAX + 1];	/* NUL-terminated; "" none */
};

/* What a superblock says, readable without a key. */
struct crypt_super_info {
	uint32_t version;	/* 1, 2 or CRYPT_SUPER_VERSION */
	uint8_t fsid[16];
	uint32_t block_size;	/* 1..CRYPT_MAX_BLOCK */
	int64_t created;	/* seconds since the epoch */
	uint64_t serial;	/* 0 for format 1 */
	uint32_t generation;	/* of the master key; 0 before format 3 */
	int nslots;		/* slots in use */
	struct crypt_slot_info slots[CRYPT_MAX_SLOTS];
};

/*
 * Append a new superblock (format 3, serial 1, generation 0) without key
 * slots to out, MACed under mk, which must be of generation 0.  Taken
 * from info: fsid, block_size, created; the rest is ignored.  Add at least one slot before storing it: a superblock
 * without one can never be unlocked.
 *
 * Returns 0; -EINVAL if block_size is 0 or above CRYPT_MAX_BLOCK; -E2BIG
 * or -ENOMEM from out (then unchanged).
 */
int crypt_super_create(const struct crypt_key *mk,
		       const struct crypt_super_info *info, struct buf *out);

/*
 * Read the superblock sb[0..len) without a key into *info.  Checks its
 * structure only; its MAC needs the master key (the unlock functions
 * check it).  Reads formats 1 to 3.  Returns 0, PHI_ECORRUPT
 * (wrong size, bad magic, bad fields), or PHI_EVERSION.
 */
int crypt_super_parse(const void *sb, size_t len,
		      struct crypt_super_info *info);

/*
 * Add a key slot that opens with the passphrase pass[0..plen) (any
 * bytes, not necessarily NUL-terminated) to the superblock that sb holds,
 * and nothing else, using the scrypt parameters *p (crypt_kdf_default()
 * for real use); the slot records the time now and no label.  Takes as
 * long as the KDF.  mk must be the filesystem's master key: the MAC is
 * checked before and rewritten after.
 *
 * Every edit (this one, and all below) rewrites sb in place as format 3
 * with the serial one higher: an older superblock grows to
 * CRYPT_SUPER_SIZE bytes, so sb's cap must allow that (else -E2BIG).
 * mk must be of sb's generation (else -ESTALE: sb is older or newer than
 * mk's newest); the slot added is sealed.
 *
 * Returns the number of the slot used (0..CRYPT_MAX_SLOTS-1); -EINVAL
 * for an empty passphrase or parameters outside the limits above;
 * -ENOSPC if every slot is in use; PHI_ECORRUPT / PHI_EVERSION as
 * crypt_super_parse(), or PHI_ECORRUPT if the MAC fails under mk (sb
 * altered, or mk is another filesystem's key); -ENOMEM; -EIO.  On failure
 * sb is unchanged.
 */
int crypt_super_add_passphrase(struct buf *sb, const struct crypt_key *mk,
			       const char *pass, size_t plen,
			       const struct crypt_kdf_params *p);

/*
 * As crypt_super_add_passphrase(), for a slot that opens with the key file
 * whose contents are kf[0..kflen); kflen >= CRYPT_KEYFILE_MIN, else
 * -EINVAL.  A key file should be random (crypt_random_bytes()); it goes
 * through HKDF, not a slow KDF.
 */
int crypt_super_add_keyfile(struct buf *sb, const struct crypt_key *mk,
			    const void *kf, size_t kflen);

/*
 * Empty slot number slot of the superblock in sb (in place).  Returns 0;
 * -ENOENT if that slot is empty or out of range; -EPERM if it is the last
 * slot in use (removing it would lock everyone out); PHI_ECORRUPT /
 * PHI_EVERSION as for adding.  On failure sb is unchanged.
 */
int crypt_super_remove_slot(struct buf *sb, const struct crypt_key *mk,
			    int slot);

/* What a new slot opens with, and what it records. */
struct crypt_slot_new {
	enum crypt_slot_type type;	/* not CRYPT_SLOT_EMPTY */
	const void *secret;	/* passphrase bytes; key file contents
				   (>= CRYPT_KEYFILE_MIN); recovery secret
				   (CRYPT_RECOVERY_SECRET bytes) */
	size_t len;
	struct crypt_kdf_params kdf;	/* passphrase slots only */
	int64_t added;		/* when, seconds since the epoch */
	const char *label;	/* NULL or "" for none; at most
				   CRYPT_LABEL_MAX bytes, no byte below
				   0x20 nor 0x7f */
};

/*
 * Add the slot ns to the superblock in sb, in the lowest free number.
 * Returns that number; -EINVAL for an argument outside the limits of
 * struct crypt_slot_new; the rest as crypt_super_add_passphrase().
 */
int crypt_super_add_slot(struct buf *sb, const struct crypt_key *mk,
			 const struct crypt_slot_new *ns);

/*
 * Put ns in place of the slot in use numbered slot (a changed
 * passphrase keeps its slot's number).  Returns 0; -ENOENT if that slot
 * is empty or out of range; the rest as crypt_super_add_slot().
 */
int crypt_super_replace_slot(struct buf *sb, const struct crypt_key *mk,
			     int slot, const struct crypt_slot_new *ns);

/*
 * Rotate the master key of the superblock in sb (in place): a new random
 * master key of generation g + 1 is sealed to every slot's public key,
 * and the keys of generations 0..g go into the chain under it.  *out is
 * set to the keys of the new superblock (all generations; the new one
 * seals).  No slot's secret is needed, and none changes.  What an older
 * copy of the superblock opens (with a slot it held, perhaps removed
 * since) is at most master key g: nothing sealed after the rotation.
 *
 * Returns 0; -EPERM if some slot is direct (carried over from format 1
 * or 2: it wraps master key 0 itself, and only its secret could make it
 * sealed, crypt_super_replace_slot()); -EOVERFLOW if g + 1 would reach
 * CRYPT_MAX_GENS; the rest as crypt_super_add_passphrase().  On failure
 * sb is unchanged and *out is not set.
 */
int crypt_super_rotate(struct buf *sb, const struct crypt_key *mk,
		       struct crypt_key **out);

/*
 * Try every slot of the type type of sb[0..len) with secret[0..slen)
 * (a passphrase, a key file's contents, a recovery secret); on the first
 * that opens, check the MAC, set *out to the master key and, when slot
 * is not NULL, *slot to that slot's number.  Returns as
 * crypt_super_unlock_passphrase(); PHI_EBADKEY for a secret too short
 * for its type.
 */
int crypt_super_unlock(const void *sb, size_t len, enum crypt_slot_type type,
		       const void *secret, size_t slen, struct crypt_key **out,
		       int *slot);

/*
 * Handing a new key generation to a running mount.  The mount makes a
 * receiver (an X25519 key pair in locked memory) and publishes its public
 * key; `phifs key rotate`, having rotated the superblock, seals the new
 * master key to it (crypt_handoff_seal()); the mount opens that and adds
 * the generation to the key it seals with (crypt_handoff_open()), once
 * the new superblock proves the key genuine.  The message (integers
 * big-endian, CRYPT_HANDOFF_SIZE bytes):
 *
 *	0	32	ephemeral X25519 public key
 *	32	12	nonce
 *	44	4	the generation g
 *	48	32	master key g, AES-256-GCM under HKDF(X25519 secret,
 *			salt = fsid, "phifs key handoff v1" NUL receiver's
 *			public key || ephemeral key), AAD bytes 0..48 || fsid
 *	80	16	GCM tag
 */
#define CRYPT_HANDOFF_PUB 32
#define CRYPT_HANDOFF_SIZE 96

struct crypt_receiver;

/*
 * A new receiver into *out and its public key into pub.  Returns 0,
 * -ENOMEM, -EIO, or the errno of mlock() (as crypt_key_new_random()).
 */
int crypt_receiver_new(struct crypt_receiver **out,
		       uint8_t pub[CRYPT_HANDOFF_PUB]);

/* Wipe and free r.  NULL is a no-op. */
void crypt_receiver_free(struct crypt_receiver *r);

/*
 * Seal the newest master key of k (and its generation) for the receiver
 * whose public key is pub, into out.  Returns 0, -EINVAL if k is of
 * generation 0 (there is nothing to hand over), PHI_EAUTHFAIL for a
 * public key that is no X25519 key, -ENOMEM or -EIO.
 */
int crypt_handoff_seal(const struct crypt_key *k, const uint8_t fsid[16],
		       const uint8_t pub[CRYPT_HANDOFF_PUB],
		       uint8_t out[CRYPT_HANDOFF_SIZE]);

/*
 * Open msg with r and adopt the key it holds, if the superblock
 * sb[0..sblen) is of its generation, its MAC verifies under it, and its
 * chain holds every key k holds (so only someone who had them made it:
 * sealing to r needs only r's public key).  The keys between k's newest
 * and the new one come from that chain too (a mount that missed a
 * handoff catches up).  The new generation becomes k's newest: from then
 * on every crypt_seal() with k uses it.  *gen is set to it.  Returns 0;
 * PHI_EAUTHFAIL if msg was not sealed for r (or was altered); -ESTALE if
 * its generation is not newer than k's; PHI_ECORRUPT if sb is not a
 * superblock of that generation under that key, or its chain is not k's
 * keys; -ENOMEM.  On failure k is unchanged.
 */
int crypt_handoff_open(const struct crypt_receiver *r, const uint8_t fsid[16],
		       const uint8_t msg[CRYPT_HANDOFF_SIZE], const void *sb,
		       size_t sblen, struct crypt_key *k, uint32_t *gen);

/*
 * The tag a mount publishes with its receiver's public key, so that
 * rotate seals the new key only to a receiver that a holder of the
 * filesystem's keys made: HMAC-SHA256 under HKDF(master key gen, salt =
 * fsid, "phifs key handoff receiver v1") of pub || gen.
 * crypt_handoff_pub_tag() writes it; crypt_handoff_pub_check() checks
 * one.  Return 0; PHI_EAUTHFAIL if k lacks generation gen or the tag
 * does not match; -ENOMEM.
 */
int crypt_handoff_pub_tag(const struct crypt_key *k, uint32_t gen,
			  const uint8_t fsid[16],
			  const uint8_t pub[CRYPT_HANDOFF_PUB], uint8_t tag[32]);
int crypt_handoff_pub_check(const struct crypt_key *k, uint32_t gen,
			    const uint8_t fsid[16],
			    const uint8_t pub[CRYPT_HANDOFF_PUB],
			    const uint8_t tag[32]);

/*
 * Recovery codes.  A recovery secret is 256 random bits, shown to a
 * person once as CRYPT_RECOVERY_GROUPS groups of 4 characters of
 * Crockford's base32 (0-9 and A-Z without I, L, O, U) joined by '-': 13
 * groups carry the 256 bits (and 4 zero bits), the last group is a check
 * of 20 bits (the first bits of SHA-256("phifs recovery check v1" NUL
 * secret)), so that a mistyped code is told apart from a wrong one.
 */
#define CRYPT_RECOVERY_SECRET 32
#define CRYPT_RECOVERY_GROUPS 14
#define CRYPT_RECOVERY_TEXT (CRYPT_RECOVERY_GROUPS * 5)	/* with NUL */

/* The text of secret into out (NUL-terminated).  Returns 0 or -ENOMEM. */
int crypt_recovery_format(const uint8_t secret[CRYPT_RECOVERY_SECRET],
			  char out[CRYPT_RECOVERY_TEXT]);

/*
 * The secret a typed recovery code text[0..len) holds.  Case, spaces and
 * dashes do not matter, and O reads as 0, I and L as 1.  Returns 0;
 * -EINVAL if the text is not shaped like a recovery code (not 56
 * base32 characters); -EILSEQ if it is, but its check fails (a typo);
 * -ENOMEM.  secret is set only on success.
 */
int crypt_recovery_parse(const char *text, size_t len,
			 uint8_t secret[CRYPT_RECOVERY_SECRET]);

/*
 * Try every passphrase slot of sb[0..len) with pass[0..plen); on the
 * first that opens, check the superblock's MAC and set *out to the master
 * key (free it with crypt_key_free()).  Takes as long as one KDF per
 * passphrase slot tried.
 *
 * Returns 0; PHI_EBADKEY if no slot opens (including when there is no
 * passphrase slot); PHI_ECORRUPT if sb is malformed, or a slot opens but
 * the MAC fails (something in the superblock was altered); PHI_EVERSION;
 * -ENOMEM (also when the KDF cannot get its memory); mlock() errors as
 * crypt_key_new_random().
 */
int crypt_super_unlock_passphrase(const void *sb, size_t len,
				  const char *pass, size_t plen,
				  struct crypt_key **out);

/*
 * As crypt_super_unlock_passphrase(), with the key-file slots and the
 * key file's contents kf[0..kflen).  A key file shorter than
 * CRYPT_KEYFILE_MIN bytes is PHI_EBADKEY.
 */
int crypt_super_unlock_keyfile(const void *sb, size_t len, const void *kf,
			       size_t kflen, struct crypt_key **out);

/*
 * Whether sb[0..len) is a whole, unaltered superblock of the filesystem
 * whose master key is mk: crypt_super_parse() and its MAC under mk's key
 * of sb's generation (an older copy, from before a rotation, still
 * verifies).  For checking the copies the regions hold.  Returns 0;
 * -ESTALE if sb is of a newer generation than mk holds (a rotation made
 * since mk was unlocked: it is newer, and only a slot's secret can check
 * it); PHI_ECORRUPT (wrong size, bad fields, or a MAC that fails:
 * damaged, altered, or another filesystem's); PHI_EVERSION; -ENOMEM.
 */
int crypt_super_verify(const void *sb, size_t len, const struct crypt_key *mk);

#endif
