/*
 * cache_sect.c - the bytes of the local store: each data file sealed in
 * sectors of 4 KiB (crypt.h, "Sectors of the local store"), or plain in
 * a cache that has no key or was made with local_seal off.  Every byte
 * of a data file is read and written here; the floors above see
 * plaintext at file offsets only.
 *
 * A sealed data file holds one group per block of the file, block b's
 * at b * G (integers big-endian):
 *
 *	T pages		entries: sector i of the block has three of 32
 *			bytes, slot k's at (3i + k) * 32:
 *			  0  8  counter (0: the slot is empty)
 *			  8  4  salt     } the nonce is salt || counter
 *			  12 4  key generation
 *			  16 16 tag
 *	S pages		slot 0 of each sector of the block, in order
 *	S pages		slot 1 likewise
 *	S pages		slot 2 likewise
 *
 * with S = block_size / 4096 and T = ceil(S * 96 / 4096).  A sector
 * reads from its non-empty slot with the highest counter, or as zeros if
 * all are empty.  So a block is a hole in the data file exactly when its
 * entries are, and evicting it punches its group.  A sector written once
 * takes slot 0 only; the other slots stay holes until it is rewritten.
 *
 * Nonces.  Counters come from one pool per cache, reserved by a synced
 * LMDB commit before any is used ("sect_next" in the super db, 2^32 at
 * a time), so no counter is used twice, across crashes too; the salt is
 * random per open, which keeps a cache copied or rolled back (a virtual
 * machine's snapshot) from repeating nonces with its own past.
 *
 * Torn writes.  A write never touches the slot that reads now (the
 * newest), nor the newest slot the data file has made durable (the
 * newest whose counter is below n->sect_floor, the counter pool's mark
 * at the node's last fdatasync); with three slots one is always left.
 * Its ciphertext is written before its entry.  So a kill -9 anywhere
 * in a write leaves the entries naming what the sector held before it
 * (the page cache outlives the process: nothing written is lost), and a
 * power loss leaves at least the last durable version whole, however
 * the disk tore the rest.  After one, a newest slot that fails while an
 * older one opens is a write torn before it was made durable:
 * cache_sect_settle() empties such entries in dirty blocks before the
 * mount serves anything (cache_blk_settle()).  Anywhere else a slot
 * that fails is damage.
 *
 * A node's floor is unknown when it is loaded (a killed daemon may have
 * left pages unsynced); the first write that finds a sector written
 * before then syncs the data file first.  A file written only once (a
 * scan, a letter) never pays for it.
 *
 * Every function taking a node runs under n->lock.
 */
#include "cache_int.h"
#include "crypt.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SECTOR CRYPT_SECTOR
#define ENTRY 32
#define SLOTS 3
#define ENTRIES (SLOTS * ENTRY)	/* the slots of a sector */
#define CHUNK 16		/* sectors per round: 64 KiB on the stack */
#define READ_CHUNK 64		/* sectors per round of a read (256 KiB of
				   data; 12 KiB more stack than CHUNK) */
#define RESERVE ((uint64_t)1 << 32)

struct entry {
	uint64_t counter;
	uint32_t salt;
	uint32_t gen;
	const uint8_t *tag;
};

static void entry_get(const uint8_t *p, struct entry *e)
{
	e->counter = key_get_u64(p);
	e->salt = (uint32_t)(key_get_u64(p + 8) >> 32);
	e->gen = (uint32_t)key_get_u64(p + 8);
	e->tag = p + 16;
}

static void entry_put(uint8_t *p, const struct crypt_sector *s)
{
	key_put_u64(p, s->counter);
	key_put_u64(p + 8, (uint64_t)s->salt << 32 | s->gen);
	memcpy(p + 16, s->tag, CRYPT_SECTOR_TAG);
}

/* The slot of the sector whose entries are at p with the highest counter
 * below limit, or -1. */
static int newest_below(const uint8_t *p, uint64_t limit)
{
	uint64_t best = 0;
	int k = -1;

	for (int i = 0; i < SLOTS; i++) {
		uint64_t ctr = key_get_u64(p + i * ENTRY);

		if (ctr > best && ctr < limit) {
			best = ctr;
			k = i;
		}
	}
	return k;
}

/* The slot that reads, or -1: the sector is a hole. */
static int newest(const uint8_t *p)
{
	return newest_below(p, UINT64_MAX);
}

/* The slot a write of the sector whose entries are at p goes to, given
 * the node's floor (see "Torn writes"): neither the newest nor the
 * newest durable, and of the others the oldest. */
static int target(const uint8_t *p, uint64_t floor)
{
	int now = newest(p), durable = newest_below(p, floor), k = 0;
	uint64_t oldest = UINT64_MAX;

	for (int i = 0; i < SLOTS; i++) {
		uint64_t ctr = key_get_u64(p + i * ENTRY);

		if (i != now && i != durable && ctr < oldest) {
			oldest = ctr;
			k = i;
		}
	}
	return k;
}

static uint64_t group_off(const struct cache *c, uint64_t blk)
{
	return blk * c->sect.group;
}

static uint64_t slot_off(const struct cache *c, uint64_t blk, uint64_t i,
			 int k)
{
	return group_off(c, blk) + c->sect.tag_bytes +
	       ((uint64_t)k * c->sect.spb + i) * SECTOR;
}

/* pread() all of len, zeros past the end of the file. */
static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	memset((char *)buf + done, 0, len - done);
	return 0;
}

/* pwrite() all of len; *wrote (if not NULL): the bytes written, also
 * when it fails part of the way. */
static int write_some(int fd, const void *buf, size_t len, uint64_t off,
		      size_t *wrote)
{
	size_t done = 0;
	int rc = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			break;
		}
		done += (size_t)w;
	}
	if (wrote)
		*wrote = done;
	return rc;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return write_some(fd, buf, len, off, NULL);
}

/* --- the counter pool ---------------------------------------------------- */

static int reserve_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	MDB_val k = { 9, (void *)"sect_next" }, v;
	uint64_t *limit = arg, next = 1;
	int rc = mdb_get(txn, c->db_super, &k, &v);

	if (rc == 0 && v.mv_size == sizeof(next))
		memcpy(&next, v.mv_data, sizeof(next));
	else if (rc != MDB_NOTFOUND)
		return rc ? cache_meta_err(rc) : PHI_ECORRUPT;
	if (next < *limit)
		next = *limit;	/* never below what this open used */
	*limit = next + RESERVE;
	v = (MDB_val){ sizeof(*limit), limit };
	return cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

/* Reserve the next RESERVE counters; sect.lock held.  The commit is
 * synced before any of them is used. */
static int reserve(struct cache *c)
{
	uint64_t limit = c->sect.limit;
	int rc = cache_meta_write(c, reserve_txn, &limit);

	if (rc == 0)
		rc = cache_meta_err(mdb_env_sync(c->env, 1));
	if (rc)
		return rc;
	c->sect.next = limit - RESERVE;
	c->sect.limit = limit;
	return 0;
}

/* n counters, the first in *first. */
static int take_counters(struct cache *c, size_t n, uint64_t *first)
{
	int rc = 0;

	pthread_mutex_lock(&c->sect.lock);
	if (c->sect.limit - c->sect.next < n)
		rc = reserve(c);
	if (rc == 0) {
		*first = c->sect.next;
		c->sect.next += n;
	}
	pthread_mutex_unlock(&c->sect.lock);
	return rc;
}

static uint64_t counter_mark(struct cache *c)
{
	uint64_t next;

	pthread_mutex_lock(&c->sect.lock);
	next = c->sect.next;
	pthread_mutex_unlock(&c->sect.lock);
	return next;
}

/* --- opening ----------------------------------------------------------- */

/* "sect_clean" is 1 from a clean close (everything synced), or from the
 * format of a cache with no data file yet, to the next read-write open,
 * which notes it (c->sect.unclean) and sets it to 0. */
static int put_clean(struct cache *c, MDB_txn *txn, uint64_t clean)
{
	MDB_val k = { 10, (void *)"sect_clean" }, v = { sizeof(clean), &clean };

	return cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

/* Add [lo, hi) to the owed ranges, merged, at most 8 (the two nearest
 * joined when there would be more). */
static void owe(struct cache *c, uint64_t lo, uint64_t hi)
{
	uint64_t (*o)[2] = c->sect.owed;
	int n = c->sect.nowed, i, j;

	if (lo < 1)
		lo = 1;		/* counters start at 1 */
	if (lo >= hi)
		return;
	o[n][0] = lo;
	o[n][1] = hi;
	n++;
	for (i = 1; i < n; i++)		/* by lo: few, insertion */
		for (j = i; j > 0 && o[j][0] < o[j - 1][0]; j--) {
			uint64_t t0 = o[j][0], t1 = o[j][1];

			o[j][0] = o[j - 1][0];
			o[j][1] = o[j - 1][1];
			o[j - 1][0] = t0;
			o[j - 1][1] = t1;
		}
	for (i = 1, j = 0; i < n; i++) {	/* overlapping ones merged */
		if (o[i][0] <= o[j][1]) {
			if (o[i][1] > o[j][1])
				o[j][1] = o[i][1];
		} else {
			j++;
			o[j][0] = o[i][0];
			o[j][1] = o[i][1];
		}
	}
	n = j + 1;
	while (n > 7) {			/* room for the next one */
		int best = 0;

		for (i = 1; i + 1 < n; i++)
			if (o[i + 1][0] - o[i][1] < o[best + 1][0] - o[best][1])
				best = i;
		o[best][1] = o[best + 1][1];
		for (i = best + 1; i + 1 < n; i++) {
			o[i][0] = o[i + 1][0];
			o[i][1] = o[i + 1][1];
		}
		n--;
	}
	c->sect.nowed = n;
}

/*
 * The checks a crash left owed (cache_sect_owed()).  "sect_mark" is the
 * counter mark of the last clean close: a session that ended unclean
 * used counters from there up to "sect_next" as it stood (its reserve),
 * and those ranges stay in "sect_owed" (pairs of 8 bytes) for good.
 */
static int owed_txn(struct cache *c, MDB_txn *txn)
{
	MDB_val k = { 9, (void *)"sect_owed" }, v;
	uint64_t mark = 1, next = 1;
	int rc = mdb_get(txn, c->db_super, &k, &v), have_mark;

	c->sect.nowed = 0;
	if (rc == 0 && (v.mv_size % 16 || v.mv_size > 7 * 16))
		return PHI_ECORRUPT;
	if (rc == 0) {
		c->sect.nowed = (int)(v.mv_size / 16);
		memcpy(c->sect.owed, v.mv_data, v.mv_size);
	} else if (rc != MDB_NOTFOUND) {
		return cache_meta_err(rc);
	}
	/* a store no clean close of this version marked: everything it
	 * wrote, as the check on every first read had it before */
	have_mark = cache_meta_super_get_u64(c, txn, "sect_mark", &mark) == 0;
	if (!c->sect.unclean && have_mark)
		return 0;
	if (!have_mark)
		mark = 1;
	if (cache_meta_super_get_u64(c, txn, "sect_next", &next))
		next = 1;
	owe(c, mark, next);
	v = (MDB_val){ (size_t)c->sect.nowed * 16, c->sect.owed };
	return c->sect.nowed ? cache_meta_err(mdb_put(txn, c->db_super, &k,
						      &v, 0)) : 0;
}

static int owe_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	const uint64_t *r = arg;
	MDB_val k = { 9, (void *)"sect_owed" }, v;

	owe(c, r[0], r[1]);
	v = (MDB_val){ (size_t)c->sect.nowed * 16, c->sect.owed };
	return c->sect.nowed ? cache_meta_err(mdb_put(txn, c->db_super, &k,
						      &v, 0)) : 0;
}

int cache_sect_owed(struct cache *c, int fd, uint64_t blk)
{
	uint8_t *p;
	int rc, owed = 0;

	if (!c->sect.sealed || !c->sect.keys)
		return 1;
	if (c->sect.nowed == 0)
		return 0;
	p = malloc(c->sect.tag_bytes);
	if (!p)
		return -ENOMEM;
	rc = read_full(fd, p, c->sect.tag_bytes, group_off(c, blk));
	for (uint32_t i = 0; rc == 0 && !owed && i < c->sect.spb; i++) {
		const uint8_t *e = p + (size_t)i * ENTRIES;
		int k = newest(e);
		uint64_t ctr = k < 0 ? 0 : key_get_u64(e + k * ENTRY);

		for (int r = 0; k >= 0 && r < c->sect.nowed; r++)
			if (ctr >= c->sect.owed[r][0] &&
			    ctr < c->sect.owed[r][1])
				owed = 1;
	}
	free(p);
	return rc ? rc : owed;
}

static int ensure_id_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	MDB_val k = { 8, (void *)"cache_id" }, v;
	uint64_t clean = 0;
	int rc;

	(void)arg;
	c->sect.unclean = cache_meta_super_get_u64(c, txn, "sect_clean",
						   &clean) != 0 || !clean;
	rc = owed_txn(c, txn);
	if (rc == 0)
		rc = put_clean(c, txn, 0);
	if (rc)
		return rc;
	rc = mdb_get(txn, c->db_super, &k, &v);
	if (rc == 0)
		return v.mv_size == sizeof(c->sect.cache_id) ?
		       (memcpy(c->sect.cache_id, v.mv_data, v.mv_size), 0) :
		       PHI_ECORRUPT;
	if (rc != MDB_NOTFOUND)
		return cache_meta_err(rc);
	rc = crypt_random_bytes(c->sect.cache_id, sizeof(c->sect.cache_id));
	v = (MDB_val){ sizeof(c->sect.cache_id), c->sect.cache_id };
	return rc ? rc : cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

static int clean_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	uint64_t mark = *(const uint64_t *)arg;
	MDB_val k = { 9, (void *)"sect_mark" }, v = { sizeof(mark), &mark };
	int rc = put_clean(c, txn, 1);

	/* every counter below the mark was used by a session that ended
	 * clean, or is owed */
	return rc ? rc : cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

int cache_sect_format(struct cache *c, MDB_txn *txn)
{
	uint64_t first = 1;	/* counters start at 1 */

	return clean_txn(c, txn, &first);
}

int cache_sect_closed_clean(struct cache *c)
{
	uint64_t mark;
	int rc;

	if (c->rdonly || !c->sect.keys)
		return 0;
	mark = counter_mark(c);
	rc = cache_meta_write(c, clean_txn, &mark);
	return rc ? rc : cache_meta_err(mdb_env_sync(c->env, 1));
}

void cache_sect_init(struct cache *c)
{
	pthread_mutex_init(&c->sect.lock, NULL);
}

static void geometry(struct cache *c)
{
	uint64_t spb = c->block_size / SECTOR;

	c->sect.spb = (uint32_t)spb;
	c->sect.tag_bytes = (uint32_t)((spb * ENTRIES + SECTOR - 1) /
				       SECTOR * SECTOR);
	c->sect.group = c->sect.tag_bytes + SLOTS * spb * SECTOR;
}

static int read_id(struct cache *c)
{
	MDB_val k = { 8, (void *)"cache_id" }, v;
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = mdb_get(txn, c->db_super, &k, &v);
	if (rc == 0 && v.mv_size == sizeof(c->sect.cache_id))
		memcpy(c->sect.cache_id, v.mv_data, v.mv_size);
	rc = rc == 0 ? (v.mv_size == sizeof(c->sect.cache_id) ? 0 :
			PHI_ECORRUPT) : cache_meta_err(rc);
	cache_meta_read_end(txn);
	return rc;
}

int cache_sect_open(struct cache *c, const struct crypt_key *key)
{
	uint32_t salt;
	int rc;

	if (c->rdonly)		/* reads only: no counters */
		rc = read_id(c);
	else
		rc = cache_meta_write(c, ensure_id_txn, NULL);
	if (rc == 0 && !c->rdonly)
		rc = crypt_random_bytes(&salt, sizeof(salt));
	if (rc == 0 && !c->rdonly) {
		c->sect.salt = salt;
		pthread_mutex_lock(&c->sect.lock);
		rc = reserve(c);
		pthread_mutex_unlock(&c->sect.lock);
	}
	if (rc == 0)
		rc = crypt_local_new(key, c->fsid, c->sect.cache_id,
				     &c->sect.keys);
	return rc;
}

void cache_sect_free(struct cache *c)
{
	crypt_local_free(c->sect.keys);
	c->sect.keys = NULL;
	pthread_mutex_destroy(&c->sect.lock);
}

/* --- reading ------------------------------------------------------------ */

/* Where sector sec's bytes [from, to) go in a read or come from in a
 * write of [off, off + len) through buf. */
struct piece {
	uint64_t sec;
	size_t from, to;
	size_t at;		/* in buf */
	int full;
};

static void piece_of(uint64_t sec, uint64_t off, size_t len,
		     struct piece *p)
{
	uint64_t so = sec * SECTOR, end = off + len;

	p->sec = sec;
	p->from = so < off ? (size_t)(off - so) : 0;
	p->to = so + SECTOR > end ? (size_t)(end - so) : SECTOR;
	p->at = (size_t)(so + p->from - off);
	p->full = p->from == 0 && p->to == SECTOR;
}

/* The sectors of [off, off + len) from the first one on that share its
 * block, at most max. */
static size_t chunk_of(const struct cache *c, uint64_t off, size_t len,
		       size_t max, uint64_t *sec)
{
	uint64_t first = off / SECTOR, last = (off + len - 1) / SECTOR;
	uint64_t in_blk = c->sect.spb - first % c->sect.spb;
	uint64_t n = last - first + 1;

	*sec = first;
	if (n > in_blk)
		n = in_blk;
	return n > max ? max : (size_t)n;
}

/*
 * Open the sectors of one block whose entries are ents, sectors
 * sec .. sec + n (n <= READ_CHUNK): read each newest slot into dst[j]
 * (NULL: skip) and decrypt it there.  Empty sectors are zeroed.  *bad:
 * the sector that failed.
 */
static int open_run(struct cache *c, int fd, uint64_t ino, uint64_t sec,
		    size_t n, const uint8_t *ents, uint8_t *const *dst,
		    uint64_t *bad)
{
	uint64_t blk = sec / c->sect.spb, i0 = sec % c->sect.spb;
	struct crypt_sector s[READ_CHUNK];
	size_t ns = 0, failed = 0;
	int rc = 0;

	assert(n <= READ_CHUNK);

	for (size_t j = 0; j < n && rc == 0; j++) {
		int k = newest(ents + j * ENTRIES);
		struct entry e;
		size_t run = 1;

		if (!dst[j])
			continue;
		if (k < 0) {
			memset(dst[j], 0, SECTOR);
			continue;
		}
		/* sectors next to each other in the same slot and in the
		 * destination are read in one go */
		while (j + run < n && dst[j + run] == dst[j] + run * SECTOR &&
		       newest(ents + (j + run) * ENTRIES) == k)
			run++;
		rc = read_full(fd, dst[j], run * SECTOR,
			       slot_off(c, blk, i0 + j, k));
		for (size_t r = 0; r < run; r++, ns++) {
			int kr = newest(ents + (j + r) * ENTRIES);

			entry_get(ents + (j + r) * ENTRIES + kr * ENTRY, &e);
			s[ns] = (struct crypt_sector){
				.index = sec + j + r, .counter = e.counter,
				.salt = e.salt, .gen = e.gen,
				.in = dst[j + r], .out = dst[j + r] };
			memcpy(s[ns].tag, e.tag, CRYPT_SECTOR_TAG);
		}
		j += run - 1;
	}
	if (rc == 0 && ns)
		rc = crypt_local_open(c->sect.keys, ino, s, ns, &failed);
	if (rc == PHI_EAUTHFAIL && bad)
		*bad = s[failed].index;
	return rc;
}

/*
 * A read of at least AHEAD_MIN of [off, off + len) that holds the start
 * of a block: ask the kernel to read ahead that block's entries and slot
 * 0, and the next block's.  Its own read-ahead cannot follow a sealed
 * file read in order (each read takes entries from the head of a group,
 * then sectors further on), and would read the empty slots 1 and 2
 * between groups.  A smaller read (a small file's only block, read whole
 * by the sealer) gives no sign that more will follow.
 */
#define AHEAD_MIN (128 << 10)

static void read_ahead(struct cache *c, int fd, uint64_t off, size_t len)
{
	uint64_t bs = c->block_size, blk = (off + bs - 1) / bs;

	if (len < AHEAD_MIN || blk * bs >= off + len)
		return;
	for (uint64_t b = blk; b < blk + 2; b++)
		posix_fadvise(fd, (off_t)group_off(c, b),
			      (off_t)(c->sect.tag_bytes +
				      (uint64_t)c->sect.spb * SECTOR),
			      POSIX_FADV_WILLNEED);
}

int cache_sect_read(struct cache *c, int fd, uint64_t ino, void *buf,
		    uint64_t off, size_t len, uint64_t *bad)
{
	/* one array: open_run() may read head and tail in one go */
	uint8_t ents[READ_CHUNK * ENTRIES], bounce[2 * SECTOR];
	uint8_t *head = bounce, *tail = bounce + SECTOR;

	if (!c->sect.sealed)
		return read_full(fd, buf, len, off);
	if (!c->sect.keys)
		return -EACCES;
	read_ahead(c, fd, off, len);
	while (len > 0) {
		uint8_t *dst[READ_CHUNK];
		struct piece p[READ_CHUNK];
		uint64_t sec;
		size_t n = chunk_of(c, off, len, READ_CHUNK, &sec), done;
		uint64_t blk = sec / c->sect.spb;
		int rc;

		rc = read_full(fd, ents, n * ENTRIES, group_off(c, blk) +
			       sec % c->sect.spb * ENTRIES);
		for (size_t j = 0; j < n; j++) {
			piece_of(sec + j, off, len, &p[j]);
			dst[j] = p[j].full ? (uint8_t *)buf + p[j].at :
				 j == 0 ? head : tail;
		}
		if (rc == 0)
			rc = open_run(c, fd, ino, sec, n, ents, dst, bad);
		if (rc) {
			OPENSSL_cleanse(bounce, sizeof(bounce));
			return rc;
		}
		for (size_t j = 0; j < n; j++)
			if (!p[j].full)
				memcpy((uint8_t *)buf + p[j].at,
				       dst[j] + p[j].from, p[j].to - p[j].from);
		done = p[n - 1].at + (p[n - 1].to - p[n - 1].from);
		buf = (uint8_t *)buf + done;
		off += done;
		len -= done;
	}
	OPENSSL_cleanse(bounce, sizeof(bounce));
	return 0;
}

/* --- writing ------------------------------------------------------------ */

int cache_sect_sync(struct cache *c, struct cnode *n)
{
	uint64_t mark = c->sect.sealed ? counter_mark(c) : 0;

	/* after a failed fdatasync the kernel may have dropped the pages:
	 * no later one could vouch for them (cache_latch()) */
	if (fdatasync(n->fd))
		return cache_latch(c, -errno);
	n->sect_floor = mark;
	n->sect_floor_known = 1;
	return 0;
}

/* Seal sectors sec .. sec + n of n's block from src[j] and write them and
 * their entries ents (read already). */
static int seal_run(struct cache *c, struct cnode *n, uint64_t sec,
		    size_t cnt, uint8_t *ents, const uint8_t *const *src)
{
	uint64_t blk = sec / c->sect.spb, i0 = sec % c->sect.spb, first;
	uint8_t ct[CHUNK * SECTOR];
	struct crypt_sector s[CHUNK];
	int slot[CHUNK], rc;

	if (!n->sect_floor_known) {
		for (size_t j = 0; j < cnt; j++)
			if (newest(ents + j * ENTRIES) >= 0) {
				rc = cache_sect_sync(c, n);
				if (rc)
					return rc;
				break;
			}
	}
	for (size_t j = 0; j < cnt; j++)
		slot[j] = target(ents + j * ENTRIES, n->sect_floor);
	rc = take_counters(c, cnt, &first);
	for (size_t j = 0; j < cnt && rc == 0; j++)
		s[j] = (struct crypt_sector){
			.index = sec + j, .counter = first + j,
			.salt = c->sect.salt, .in = src[j],
			.out = ct + j * SECTOR };
	if (rc == 0)
		rc = crypt_local_seal(c->sect.keys, n->ino, s, cnt);
	for (size_t j = 0, run; j < cnt && rc == 0; j += run) {
		for (run = 1; j + run < cnt && slot[j + run] == slot[j];
		     run++)
			;
		rc = write_full(n->fd, ct + j * SECTOR, run * SECTOR,
				slot_off(c, blk, i0 + j, slot[j]));
	}
	for (size_t j = 0; j < cnt && rc == 0; j++)
		entry_put(ents + j * ENTRIES + slot[j] * ENTRY, &s[j]);
	if (rc == 0)
		rc = write_full(n->fd, ents, cnt * ENTRIES,
				group_off(c, blk) + i0 * ENTRIES);
	return rc;
}

int cache_sect_write(struct cache *c, struct cnode *n, const void *buf,
		     uint64_t off, size_t len, uint64_t *bad, size_t *wrote)
{
	uint8_t ents[CHUNK * ENTRIES], bounce[2 * SECTOR];
	uint8_t *head = bounce, *tail = bounce + SECTOR;
	size_t total = 0;
	int rc = 0;

	if (!c->sect.sealed)
		return write_some(n->fd, buf, len, off, wrote);
	if (wrote)
		*wrote = 0;
	if (!c->sect.keys)
		return -EACCES;
	while (len > 0 && rc == 0) {
		const uint8_t *src[CHUNK];
		uint8_t *old[CHUNK];
		struct piece p[CHUNK];
		uint64_t sec;
		size_t cnt = chunk_of(c, off, len, CHUNK, &sec), done;
		uint64_t blk = sec / c->sect.spb;

		rc = read_full(n->fd, ents, cnt * ENTRIES, group_off(c, blk) +
			       sec % c->sect.spb * ENTRIES);
		/* a sector written in part keeps the rest of what it held */
		for (size_t j = 0; j < cnt; j++) {
			piece_of(sec + j, off, len, &p[j]);
			old[j] = p[j].full ? NULL : j == 0 ? head : tail;
		}
		if (rc == 0)
			rc = open_run(c, n->fd, n->ino, sec, cnt, ents, old,
				      bad);
		for (size_t j = 0; j < cnt && rc == 0; j++) {
			if (!p[j].full)
				memcpy(old[j] + p[j].from,
				       (const uint8_t *)buf + p[j].at,
				       p[j].to - p[j].from);
			src[j] = p[j].full ? (const uint8_t *)buf + p[j].at :
				 old[j];
		}
		if (rc == 0)
			rc = seal_run(c, n, sec, cnt, ents, src);
		if (rc)
			break;
		done = p[cnt - 1].at + (p[cnt - 1].to - p[cnt - 1].from);
		buf = (const uint8_t *)buf + done;
		off += done;
		len -= done;
		total += done;
	}
	OPENSSL_cleanse(bounce, sizeof(bounce));
	if (wrote)
		*wrote = total;
	return rc;
}

/* --- holes, cuts, eviction ----------------------------------------------- */

#define DATA_FILE_MAX ((uint64_t)1 << 44)	/* ext4 with 4 KiB blocks */

uint64_t cache_sect_max_size(const struct cache *c)
{
	if (!c->sect.sealed)
		return (uint64_t)INT64_MAX;
	return DATA_FILE_MAX / c->sect.group * c->block_size;
}

int cache_sect_has_data(struct cache *c, int fd, uint64_t blk)
{
	uint64_t at = c->sect.sealed ? group_off(c, blk) : blk * c->block_size;
	uint64_t len = c->sect.sealed ? c->sect.tag_bytes : c->block_size;
	off_t d = lseek(fd, (off_t)at, SEEK_DATA);

	return d >= 0 && (uint64_t)d < at + len;
}

/* Punch [off, off + len) of the data file; a file system that cannot
 * punch only keeps the space. */
static int punch(int fd, uint64_t off, uint64_t len)
{
	if (len && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     (off_t)off, (off_t)len) && errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

int cache_sect_allocate(struct cache *c, int fd, uint64_t off, uint64_t len)
{
	uint64_t bs = c->block_size;

	if (!c->sect.sealed)
		return fallocate(fd, 0, (off_t)off, (off_t)len) ? -errno : 0;
	/* the entries and slot 0 of every block the range touches: where
	 * a first write of each sector goes */
	for (uint64_t b = off / bs; len && b <= (off + len - 1) / bs; b++)
		if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)group_off(c, b),
			      (off_t)(c->sect.tag_bytes +
				      (uint64_t)c->sect.spb * SECTOR)))
			return -errno;
	return 0;
}

int cache_sect_punch(struct cache *c, int fd, uint64_t blk, uint64_t nblk)
{
	uint64_t per = c->sect.sealed ? c->sect.group : c->block_size;

	return punch(fd, blk * per, nblk * per);
}

/* Empty the entries of sectors i .. spb of block blk and punch their
 * slots. */
static int clear_from(struct cache *c, struct cnode *n, uint64_t blk,
		      uint64_t i)
{
	uint8_t ents[CHUNK * ENTRIES];
	uint64_t spb = c->sect.spb;
	int rc = 0;

	for (uint64_t at = i; at < spb && rc == 0; at += CHUNK) {
		size_t cnt = spb - at < CHUNK ? (size_t)(spb - at) : CHUNK;
		uint64_t eo = group_off(c, blk) + at * ENTRIES;
		int any = 0;

		rc = read_full(n->fd, ents, cnt * ENTRIES, eo);
		for (size_t j = 0; j < cnt * ENTRIES && !any; j++)
			any = ents[j] != 0;
		if (rc == 0 && any) {
			memset(ents, 0, cnt * ENTRIES);
			rc = write_full(n->fd, ents, cnt * ENTRIES, eo);
		}
	}
	for (int k = 0; k < SLOTS && rc == 0 && i < spb; k++)
		rc = punch(n->fd, slot_off(c, blk, i, k), (spb - i) * SECTOR);
	return rc;
}

/*
 * A torn write left by a power loss: in each sector of block blk whose
 * newest slot fails while an older one opens, empty the entries above
 * that one, so that the sector reads what it held before.  Returns how
 * many sectors, or a negative code.
 */
int cache_sect_settle(struct cache *c, int fd, uint64_t ino, uint64_t blk)
{
	uint8_t ents[ENTRIES], buf[SECTOR];
	uint64_t spb = c->sect.spb;
	int rc = 0, fixed = 0;

	for (uint64_t i = 0; i < spb && rc >= 0; i++) {
		uint64_t eo = group_off(c, blk) + i * ENTRIES;
		uint64_t sec = blk * spb + i;
		uint8_t *dst = buf, tried[ENTRIES];
		int k, got;

		rc = read_full(fd, ents, ENTRIES, eo);
		if (rc || newest(ents) < 0 ||
		    open_run(c, fd, ino, sec, 1, ents, &dst, NULL) !=
		    PHI_EAUTHFAIL)
			continue;
		/* drop the newest until one opens */
		memcpy(tried, ents, ENTRIES);
		do {
			memset(tried + newest(tried) * ENTRY, 0, ENTRY);
			got = newest(tried) >= 0 &&
			      open_run(c, fd, ino, sec, 1, tried, &dst,
				       NULL) == 0;
		} while (!got && newest(tried) >= 0);
		/* none opens: a first write torn (or damage, which a power
		 * loss cannot be told from); as in a plain store, where the
		 * lost bytes read as zeros, the sector reads as zeros */
		if (!got)
			PHI_LOG(PHI_LOG_WARNING, "inode %" PRIu64 ": local "
				"sector %" PRIu64 " of a block not yet sealed was "
				"lost with the power; it reads as zeros", ino,
				sec);
		for (k = 0; k < SLOTS; k++)
			if (key_get_u64(tried + k * ENTRY) == 0)
				memset(ents + k * ENTRY, 0, ENTRY);
		rc = write_full(fd, ents, ENTRIES, eo);
		if (rc == 0)
			fixed++;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc < 0 ? rc : fixed;
}

int cache_sect_grow(struct cache *c, struct cnode *n, uint64_t size)
{
	/* a sealed file's holes read as zeros without being made */
	if (!c->sect.sealed)
		return ftruncate(n->fd, (off_t)size) ? -errno : 0;
	return 0;
}

int cache_sect_cut(struct cache *c, struct cnode *n, uint64_t size)
{
	uint64_t bs = c->block_size, blk = size / bs, in = size % bs;
	uint64_t sec = size / SECTOR, part = size % SECTOR, bad;
	uint8_t old[SECTOR], zeros[SECTOR] = { 0 };
	int rc = 0;

	if (!c->sect.sealed)
		return ftruncate(n->fd, (off_t)size) ? -errno : 0;
	if (in) {
		/* the block the cut splits: the rest of the sector it splits
		 * reads as zeros (written only if it does not already), the
		 * sectors after it as holes */
		if (part)
			rc = cache_sect_read(c, n->fd, n->ino, old,
					     sec * SECTOR, SECTOR, &bad);
		if (rc == 0 && part &&
		    memcmp(old + part, zeros, SECTOR - part) != 0)
			rc = cache_sect_write(c, n, zeros, size,
					      (size_t)(SECTOR - part), &bad,
					      NULL);
		OPENSSL_cleanse(old, sizeof(old));
		if (rc == 0)
			rc = clear_from(c, n, blk, sec % c->sect.spb +
						   (part ? 1 : 0));
		blk++;
	}
	if (rc == 0 && ftruncate(n->fd, (off_t)group_off(c, blk)))
		rc = -errno;
	return rc;
}

/* --- turning a store sealed or plain -------------------------------------- */

/*
 * An open whose configuration wants the other kind of store converts
 * every data file, in two passes that a crash may interrupt anywhere:
 *
 *   1. each data/XX/INO is copied into INO.cv in the new form, synced,
 *      and renamed to INO.new; INO is then removed;
 *   2. once every file is converted (the super db's "local_seal" says
 *      so), each INO.new is renamed back to INO.
 *
 * "local_seal" is STORE_PLAIN or STORE_SEALED at rest, and during a
 * conversion the pass it is in, so that a file name always says which
 * form its bytes are in.
 */
enum { STORE_PLAIN, STORE_SEALED, TO_SEALED_1, TO_SEALED_2, TO_PLAIN_1,
       TO_PLAIN_2 };

static int state_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	MDB_val k = { 10, (void *)"local_seal" }, v = { sizeof(uint64_t), arg };

	return cache_meta_err(mdb_put(txn, c->db_super, &k, &v, 0));
}

static int set_state(struct cache *c, uint64_t state)
{
	int rc = cache_meta_write(c, state_txn, &state);

	return rc ? rc : cache_meta_err(mdb_env_sync(c->env, 1));
}

static int get_state(struct cache *c, uint64_t *state)
{
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (!txn)
		return rc;
	rc = cache_meta_super_get_u64(c, txn, "local_seal", state);
	cache_meta_read_end(txn);
	if (rc == PHI_ECORRUPT) {	/* absent: made before sealing */
		*state = STORE_PLAIN;
		rc = 0;
	}
	return rc;
}

/* The size the inode's record gives, or the data file's length. */
static uint64_t file_size(struct cache *c, uint64_t ino, int fd)
{
	struct inode_rec rec;
	struct stat st;
	MDB_txn *txn;
	int rc;

	txn = cache_meta_read_begin(c, &rc);
	if (txn) {
		rc = cache_inode_get(c, txn, ino, &rec, NULL, NULL);
		cache_meta_read_end(txn);
		if (rc == 0)
			return rec.size;
	}
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Read and write data files in the form sealed says (conversion only,
 * before any other thread runs). */
static void use_form(struct cache *c, int sealed, struct crypt_local *keys)
{
	c->sect.sealed = sealed;
	c->sect.keys = sealed ? keys : NULL;
}

/* Copy data file name (of ino, in dir) into name.cv in the other form,
 * and rename it name.new.  keys: the sealed side's. */
static int convert_file(struct cache *c, int dir, const char *name,
			uint64_t ino, struct crypt_local *keys, int to_sealed)
{
	uint64_t bs = c->block_size, size, bad;
	char cv[64], done[64];
	struct cnode out = { .ino = ino, .sect_floor_known = 1 };
	struct buf b;
	int in, rc = 0;

	snprintf(cv, sizeof(cv), "%" PRIu64 ".cv", ino);
	snprintf(done, sizeof(done), "%" PRIu64 ".new", ino);
	in = openat(dir, name, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out.fd = openat(dir, cv, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out.fd < 0) {
		close(in);
		return -errno;
	}
	buf_init(&b, SIZE_MAX);
	size = file_size(c, ino, in);
	rc = buf_reserve(&b, bs);
	for (uint64_t blk = 0; rc == 0 && blk * bs < size; blk++) {
		uint64_t len = size - blk * bs < bs ? size - blk * bs : bs;

		use_form(c, !to_sealed, keys);
		if (!cache_sect_has_data(c, in, blk))
			continue;
		rc = cache_sect_read(c, in, ino, buf_mut(&b), blk * bs, len,
				     &bad);
		use_form(c, to_sealed, keys);
		if (rc == PHI_EAUTHFAIL)
			PHI_LOG(PHI_LOG_ERR, "inode %" PRIu64 ": local sector "
				"%" PRIu64 " fails its seal: the store stays "
				"sealed (mount with local_seal = on and run "
				"phifs fsck --scrub)", ino, bad);
		else if (rc == 0)
			rc = cache_sect_write(c, &out, buf_mut(&b), blk * bs,
					      len, &bad, NULL);
	}
	use_form(c, 1, keys);
	if (rc == 0 && !to_sealed && ftruncate(out.fd, (off_t)size))
		rc = -errno;
	if (rc == 0 && fsync(out.fd))
		rc = -errno;
	OPENSSL_cleanse(buf_mut(&b), bs);
	buf_release(&b);
	close(in);
	close(out.fd);
	if (rc == 0 && renameat(dir, cv, dir, done))
		rc = -errno;
	if (rc == 0 && unlinkat(dir, name, 0))
		rc = -errno;
	if (rc)
		unlinkat(dir, cv, 0);
	return rc;
}

/* Pass 1 (to_sealed or not) or pass 2 over data/XX. */
static int convert_dir(struct cache *c, int dir, int pass,
		       struct crypt_local *keys, int to_sealed, uint64_t *files)
{
	DIR *d = fdopendir(dup(dir));
	struct dirent *e;
	int rc = 0;

	if (!d)
		return -errno;
	while (rc == 0 && (e = readdir(d))) {
		const char *dot = strchr(e->d_name, '.');
		char *end, full[64];
		uint64_t ino = strtoull(e->d_name, &end, 10);

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (pass == 1 && !dot && *end == '\0') {
			rc = convert_file(c, dir, e->d_name, ino, keys,
					  to_sealed);
			(*files)++;
		}
		else if (pass == 1 && strcmp(dot, ".cv") == 0)
			rc = unlinkat(dir, e->d_name, 0) ? -errno : 0;
		else if (pass == 2 && dot && strcmp(dot, ".new") == 0 &&
			 end == dot) {
			snprintf(full, sizeof(full), "%" PRIu64, ino);
			rc = renameat(dir, e->d_name, dir, full) ? -errno : 0;
		}
	}
	closedir(d);
	if (rc == 0 && fsync(dir))
		rc = -errno;
	return rc;
}

static int convert_pass(struct cache *c, int pass, struct crypt_local *keys,
			int to_sealed)
{
	uint64_t files = 0;
	int rc = 0;

	for (int i = 0; i < 256 && rc == 0; i++) {
		char name[8];
		int dir;

		snprintf(name, sizeof(name), "%02x", i);
		dir = openat(c->datafd, name, O_RDONLY | O_DIRECTORY |
			     O_CLOEXEC);
		if (dir < 0)
			return -errno;
		rc = convert_dir(c, dir, pass, keys, to_sealed, &files);
		close(dir);
	}
	if (rc == 0 && files)
		PHI_LOG(PHI_LOG_NOTICE, "the local store: %llu data files %s",
			(unsigned long long)files, to_sealed ? "sealed" :
			"turned to plaintext (local_seal = off)");
	return rc;
}

int cache_sect_start(struct cache *c, const struct crypt_key *key, int want)
{
	uint64_t state;
	int rc = get_state(c, &state);

	geometry(c);
	if (rc)
		return rc;
	c->sect.want = want;
	c->sect.state = state;
	if (!key && state != STORE_PLAIN) {
		/* a tool that edits metadata only: no byte of a data file
		 * reads or writes (-EACCES), nothing is converted */
		c->sect.sealed = 1;
		return 0;
	}
	if (!key || (c->rdonly && state == STORE_PLAIN))
		return 0;
	rc = cache_sect_open(c, key);
	/* a conversion under way holds files of both forms: none is read
	 * until cache_sect_convert() (read-write) ends it; the keys stay
	 * for it */
	c->sect.sealed = state != STORE_PLAIN;
	if (rc == 0 && c->rdonly && state != STORE_SEALED) {
		crypt_local_free(c->sect.keys);
		c->sect.keys = NULL;
	}
	return rc;
}

int cache_sect_settling(const struct cache *c)
{
	return c->sect.state == STORE_SEALED && c->sect.keys &&
	       c->sect.unclean && !c->rdonly;
}

int cache_sect_convert(struct cache *c)
{
	uint64_t state = c->sect.state, owed[2];
	struct crypt_local *keys = c->sect.keys;
	int rc = 0, to_sealed;

	if (c->rdonly || !keys)
		return 0;
	if (state == STORE_PLAIN && c->sect.want)
		state = TO_SEALED_1;
	else if (state == STORE_SEALED && !c->sect.want)
		state = TO_PLAIN_1;
	to_sealed = state == TO_SEALED_1 || state == TO_SEALED_2;
	/* what a conversion seals it copies from bytes no seal vouched
	 * for: owed a check like a crashed session's (cache_sect_owed()) */
	owed[0] = counter_mark(c);
	if (state == TO_SEALED_1 || state == TO_PLAIN_1) {
		rc = set_state(c, state);
		if (rc == 0)
			rc = convert_pass(c, 1, keys, to_sealed);
		if (rc == 0)
			rc = set_state(c, ++state);
	}
	if (rc == 0 && (state == TO_SEALED_2 || state == TO_PLAIN_2)) {
		rc = convert_pass(c, 2, keys, to_sealed);
		owed[1] = counter_mark(c);
		if (rc == 0 && to_sealed)
			rc = cache_meta_write(c, owe_txn, owed);
		if (rc == 0)
			rc = set_state(c, to_sealed ? STORE_SEALED :
					  STORE_PLAIN);
		state = to_sealed ? STORE_SEALED : STORE_PLAIN;
	}
	if (rc)
		PHI_LOG(PHI_LOG_ERR, "cannot convert the local store to %s: "
			"%s", to_sealed ? "sealed" : "plaintext",
			phi_strerror(rc));
	c->sect.state = state;
	c->sect.sealed = state != STORE_PLAIN;
	c->sect.keys = rc == 0 && state == STORE_SEALED ? keys : NULL;
	if (!c->sect.keys)
		crypt_local_free(keys);
	return rc;
}

/* --- where things are, for tests and reports ----------------------------- */

uint64_t cache_data_where(const struct cache *c, uint64_t off, int slot)
{
	uint64_t sec = off / SECTOR;

	if (!c->sect.sealed)
		return off;
	return slot_off(c, sec / c->sect.spb, sec % c->sect.spb, slot) +
	       off % SECTOR;
}

void cache_data_block(const struct cache *c, uint64_t blk, uint64_t *start,
		      uint64_t *len)
{
	*len = c->sect.sealed ? c->sect.group : c->block_size;
	*start = blk * *len;
}

int cache_store_sealed(const struct cache *c)
{
	return !c->sect.sealed ? 0 : c->sect.keys ? 1 : -1;
}
