/*
 * cache_check.c - fsck of the local metadata, scrub and repair of the
 * regions, and garbage collection of history older than retention.
 *
 * Reports name inode numbers and object keys, never file names.
 */
#include "cache_int.h"
#include "backend.h"
#include "crypt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cache_say(cache_report_fn *fn, void *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(ctx, line);
}

/* --- fsck -------------------------------------------------------------- */

struct icount {
	uint64_t ino;
	uint32_t mode, nlink;
	uint64_t parent, size;
	uint32_t names;		/* entries naming it */
	uint32_t subdirs;	/* directories it holds */
};

static int cmp_ino(const void *a, const void *b)
{
	const struct icount *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static struct icount *find_ino(struct icount *v, size_t n, uint64_t ino)
{
	struct icount key = { .ino = ino };

	return n ? bsearch(&key, v, n, sizeof(*v), cmp_ino) : NULL;
}

/* What one fsck run reads and has found so far. */
struct fsck {
	struct cache *c;
	MDB_txn *txn;			/* the read transaction of the run */
	cache_report_fn *fn;
	void *ctx;
	struct icount *v;		/* every inode, in inode order */
	size_t n, cap;
	long problems;
	size_t mark;			/* opened records given back to */
};

/* Report one problem and count it. */
__attribute__((format(printf, 2, 3)))
static void fsck_problem(struct fsck *f, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cache_say(f->fn, f->ctx, "%s", line);
	f->problems++;
}

/* Append one inode to f->v, growing it as needed. */
static int fsck_add_inode(struct fsck *f, uint64_t ino,
			  const struct inode_rec *rec)
{
	if (f->n == f->cap) {
		size_t nc = f->cap ? 2 * f->cap : 1024;
		void *p = realloc(f->v, nc * sizeof(*f->v));

		if (!p)
			return -ENOMEM;
		f->v = p;
		f->cap = nc;
	}
	f->v[f->n++] = (struct icount){ ino, rec->mode, rec->nlink,
					rec->parent, rec->size, 0, 0 };
	return 0;
}

/* Open a record a raw cursor gave, in place: 0, or 1 and a problem
 * reported for one that fails its seal (*rc set when nothing can be
 * opened: no key). */
static int fsck_open(struct fsck *f, int jdb, MDB_val *k, MDB_val *d, int *rc)
{
	uint64_t at = k->mv_size >= 8 ? key_get_u64(k->mv_data) : 0;
	int r = cache_rec_open(f->c, jdb, k, d);

	if (r == 0)
		return 0;
	if (r == -EACCES || r == -ENOMEM)
		*rc = r;
	else
		fsck_problem(f, "%s: the record of %" PRIu64 " fails its "
			     "seal", jdb == JDB_INODES ? "inodes" :
			     jdb == JDB_DIRENTS ? "dirents" : jdb ==
			     JDB_COOKIES ? "dircookies" : "xattrs", at);
	return 1;
}

/* Read every inode record into f->v. */
static int fsck_load_inodes(struct fsck *f)
{
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	int rc;

	rc = cache_meta_err(mdb_cursor_open(f->txn, f->c->db_inodes, &cur));
	while (rc == 0 && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0) {
		struct inode_rec rec;

		cache_rec_release(f->mark);
		if (fsck_open(f, JDB_INODES, &k, &d, &rc))
			continue;
		if (k.mv_size != 8 || d.mv_size < sizeof(rec)) {
			fsck_problem(f, "inodes: a malformed record");
			continue;
		}
		memcpy(&rec, d.mv_data, sizeof(rec));
		rc = fsck_add_inode(f, key_get_u64(k.mv_data), &rec);
	}
	if (cur)	/* also when a record stopped the walk */
		mdb_cursor_close(cur);
	/* keys are big-endian: the cursor gave them in order already */
	return rc;
}

/* Report an entry whose twin, by cookie or by name, does not match it. */
static void fsck_twin(struct fsck *f, int pass, uint64_t parent,
		      const struct dirent_rec *dr, const MDB_val *d)
{
	int twin = pass ? JDB_DIRENTS : JDB_COOKIES;
	uint8_t tk[8 + CACHE_NAME_MAX];
	MDB_val tkey = { 0, tk }, tval;
	struct dirent_rec tw = { 0 };

	/* the twin: by cookie for a name, by name for a cookie */
	key_put_u64(tk, parent);
	if (pass == 0) {
		key_put_u64(tk + 8, dr->cookie);
		tkey.mv_size = 16;
	} else {
		size_t nl = d->mv_size - sizeof(*dr);

		if (nl == 0 || nl > CACHE_NAME_MAX) {
			fsck_problem(f, "directory %" PRIu64 ": readdir entry "
			    "for inode %" PRIu64 " has a name of %zu bytes",
			    parent, dr->ino, nl);
			return;
		}
		memcpy(tk + 8, (uint8_t *)d->mv_data + sizeof(*dr), nl);
		tkey.mv_size = 8 + nl;
	}
	if (cache_rec_get(f->c, f->txn, twin, &tkey, &tval) == 0 &&
	    tval.mv_size >= sizeof(tw))
		memcpy(&tw, tval.mv_data, sizeof(tw));
	if (tw.ino != dr->ino)
		fsck_problem(f, "directory %" PRIu64 ": entry for inode %"
		    PRIu64 " has no matching %s entry", parent, dr->ino,
		    pass ? "name" : "readdir");
}

/* Check one entry by name against its inodes and count it for nlink. */
static void fsck_entry(struct fsck *f, uint64_t parent,
		       const struct dirent_rec *dr)
{
	struct icount *ic = find_ino(f->v, f->n, dr->ino);
	struct icount *pc = find_ino(f->v, f->n, parent);

	if (!pc || !S_ISDIR(pc->mode))
		fsck_problem(f, "entry in %" PRIu64 ", which is no directory",
		    parent);
	if (!ic) {
		fsck_problem(f, "directory %" PRIu64 " names inode %" PRIu64
		    ", which does not exist", parent, dr->ino);
		return;
	}
	if ((ic->mode & S_IFMT) != dr->type)
		fsck_problem(f, "directory %" PRIu64 ": type of inode %"
		    PRIu64 " differs from its entry", parent, dr->ino);
	ic->names++;
	if (!S_ISDIR(ic->mode))
		return;
	if (pc)
		pc->subdirs++;
	if (ic->parent != parent)
		fsck_problem(f, "directory %" PRIu64 " has parent %" PRIu64
		    ", is in %" PRIu64, dr->ino, ic->parent, parent);
}

/* Walk the entries by name (pass 0) or by readdir cookie (pass 1). */
static int fsck_entries(struct fsck *f, int pass)
{
	MDB_dbi dbi = pass ? f->c->db_cookies : f->c->db_dirents;
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	int rc;

	rc = cache_meta_err(mdb_cursor_open(f->txn, dbi, &cur));
	while (rc == 0 && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0) {
		struct dirent_rec dr;
		uint64_t parent;

		cache_rec_release(f->mark);
		if (fsck_open(f, pass ? JDB_COOKIES : JDB_DIRENTS, &k, &d,
			      &rc))
			continue;
		if (k.mv_size < 9 || d.mv_size < sizeof(dr)) {
			fsck_problem(f, "%s: a malformed entry",
			    pass ? "dircookies" : "dirents");
			continue;
		}
		memcpy(&dr, d.mv_data, sizeof(dr));
		parent = key_get_u64(k.mv_data);
		fsck_twin(f, pass, parent, &dr, &d);
		if (pass == 0)
			fsck_entry(f, parent, &dr);
	}
	if (cur)	/* also when a record stopped the walk */
		mdb_cursor_close(cur);
	return rc;
}

/* Compare each inode's link count with the entries found for it. */
static void fsck_link_counts(struct fsck *f)
{
	struct icount *root;

	for (size_t i = 0; i < f->n; i++) {
		struct icount *ic = &f->v[i];
		uint32_t want = S_ISDIR(ic->mode) ? 2 + ic->subdirs : ic->names;
		uint8_t ok[8];
		MDB_val okey = { 8, ok }, oval;

		if (ic->ino == CACHE_ROOT_INO || ic->nlink == want)
			continue;
		key_put_u64(ok, ic->ino);
		/* unlinked while open: nlink 0 and an orphan */
		if (ic->nlink == 0 && ic->names == 0 &&
		    mdb_get(f->txn, f->c->db_orphans, &okey, &oval) == 0)
			continue;
		fsck_problem(f, "inode %" PRIu64 ": link count %u, but %u "
		    "found", ic->ino, ic->nlink, want);
	}
	if (f->n == 0)
		return;
	root = find_ino(f->v, f->n, CACHE_ROOT_INO);
	if (!root || root->nlink != 2 + root->subdirs)
		fsck_problem(f, "the root directory is missing or its link "
		    "count is wrong");
}

/* Report block map entries that lie outside every regular file. */
static int fsck_blocks(struct fsck *f)
{
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	int rc;

	rc = cache_meta_err(mdb_cursor_open(f->txn, f->c->db_blocks, &cur));
	while (rc == 0 && mdb_cursor_get(cur, &k, &d, MDB_NEXT) == 0) {
		uint64_t ino, blk;
		struct icount *ic;

		if (k.mv_size != 16 || d.mv_size != sizeof(struct block_rec)) {
			fsck_problem(f, "blocks: a malformed entry");
			continue;
		}
		ino = key_get_u64(k.mv_data);
		blk = key_get_u64((uint8_t *)k.mv_data + 8);
		ic = find_ino(f->v, f->n, ino);
		if (!ic || !S_ISREG(ic->mode) ||
		    blk * f->c->block_size >= ic->size)
			fsck_problem(f, "inode %" PRIu64 ": block %" PRIu64
			    " is mapped but not part of a file", ino, blk);
	}
	if (cur)	/* also when a record stopped the walk */
		mdb_cursor_close(cur);
	return rc;
}

long cache_fsck(struct cache *c, cache_report_fn *fn, void *ctx)
{
	struct fsck f = { .c = c, .fn = fn, .ctx = ctx };
	int rc;

	f.txn = cache_meta_read_begin(c, &rc);
	if (!f.txn)
		return rc;
	f.mark = cache_rec_mark();
	rc = fsck_load_inodes(&f);
	for (int pass = 0; rc == 0 && pass < 2; pass++)
		rc = fsck_entries(&f, pass);
	if (rc == 0)
		fsck_link_counts(&f);
	if (rc == 0 && c->have_blockdbs)
		rc = fsck_blocks(&f);
	cache_meta_read_end(f.txn);
	free(f.v);
	return rc ? rc : f.problems;
}

/* --- object sets --------------------------------------------------------- */

struct keyset {
	char (*k)[48];
	size_t n, cap;
};

static int keyset_add(struct keyset *s, const char *key)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		void *p = realloc(s->k, cap * sizeof(*s->k));

		if (!p)
			return -ENOMEM;
		s->k = p;
		s->cap = cap;
	}
	snprintf(s->k[s->n++], sizeof(s->k[0]), "%s", key);
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void keyset_sort(struct keyset *s)
{
	size_t w = 0;

	if (s->n)
		qsort(s->k, s->n, sizeof(*s->k), cmp_key);
	for (size_t i = 0; i < s->n; i++)
		if (w == 0 || strcmp(s->k[w - 1], s->k[i]))
			memmove(s->k[w++], s->k[i], sizeof(s->k[0]));
	s->n = w;
}

static int keyset_has(const struct keyset *s, const char *key)
{
	return s->n && bsearch(key, s->k, s->n, sizeof(*s->k), cmp_key);
}

static int list_add(void *ctx, const char *key, uint64_t size)
{
	(void)size;
	if (strlen(key) >= 48)
		return 0;
	return keyset_add(ctx, key);
}

/* --- scrub ------------------------------------------------------------- */

/* Put the good copy of name into region i, which lacks it or holds a
 * bad one.  0 or the region's code (reported). */
static int repair_copy(const struct cache_scrub_args *a, int i,
		       const char *name, const void *good, size_t len,
		       struct cache_scrub_result *out)
{
	int rc = backend_put(a->regions[i], name, good, len);

	if (rc == 0) {
		out->repaired++;
		cache_say(a->report, a->ctx, "region %s: %s repaired from a good "
		    "copy", a->names[i], name);
	} else {
		cache_say(a->report, a->ctx, "region %s: %s could not be repaired: "
		    "%s", a->names[i], name,
		    backend_last_error(a->regions[i])[0] ?
		    backend_last_error(a->regions[i]) : phi_strerror(rc));
	}
	return rc;
}

/* Fetch, check and (with repair) mend one object in every region. */
static void scrub_one(const struct cache_scrub_args *a, const char *name,
		      struct buf *good, struct buf *copy, struct buf *scratch,
		      int *incomplete, struct cache_scrub_result *out)
{
	int state[BACKEND_REPLICA_MAX] = { 0 };	/* 1 ok, 2 bad, 3 none */
	int have_good = 0;

	out->objects++;
	for (int i = 0; i < a->nregions; i++) {
		int r;

		buf_reset(copy);
		r = backend_get(a->regions[i], name, 0, 0, copy);
		if (r == -ENOENT) {
			state[i] = 3;
			continue;
		}
		if (r) {
			cache_say(a->report, a->ctx, "region %s: cannot read %s: %s",
			    a->names[i], name, phi_strerror(r));
			out->unreadable++;
			incomplete[i] = 1;
			continue;
		}
		out->bytes += buf_len(copy);
		r = cache_check_object(a->key, a->fsid, name, copy, scratch);
		state[i] = r ? 2 : 1;
		if (r == 0 && !have_good) {
			buf_reset(good);
			if (buf_add(good, buf_data(copy), buf_len(copy)) == 0)
				have_good = 1;
		}
	}
	for (int i = 0; i < a->nregions; i++) {
		if (state[i] < 2)
			continue;
		if (state[i] == 2)
			out->bad++;
		else
			out->missing++;
		cache_say(a->report, a->ctx, "region %s: %s %s", a->names[i], name,
		    state[i] == 2 ? "fails authentication" : "is missing");
		if (!a->repair || !have_good ||
		    repair_copy(a, i, name, buf_data(good), buf_len(good),
				out))
			incomplete[i] = 1;
	}
	if (!have_good) {
		out->lost++;
		cache_say(a->report, a->ctx, "%s has no good copy in any region",
		    name);
	}
}

/*
 * Whether copy is a superblock of this filesystem, whole under a->key,
 * with a higher serial (crypt.h) than a->superblock: a key change made
 * while this machine's copy was older.  Such a copy is never replaced by
 * the older one.
 */
static int copy_is_newer(const struct cache_scrub_args *a,
			 const struct buf *copy, uint64_t *serial,
			 uint64_t *mine)
{
	struct crypt_super_info here, there;
	int rc;

	if (crypt_super_parse(a->superblock, a->superblock_len, &here) ||
	    crypt_super_parse(buf_data(copy), buf_len(copy), &there) ||
	    memcmp(here.fsid, there.fsid, 16) != 0)
		return 0;
	/* one of a newer key generation than a->key (a rotation since) is
	 * newer, though only a slot's secret can check it */
	rc = crypt_super_verify(buf_data(copy), buf_len(copy), a->key);
	if (rc && rc != -ESTALE)
		return 0;
	*serial = there.serial;
	*mine = here.serial;
	return there.serial > here.serial;
}

/*
 * The superblock of each region against a->superblock, the copy that
 * opened the key.  Last, so that a repair stores it only into a region
 * that received everything else: a region without one is refused by
 * mount, which is better than one accepted while it lacks objects.  The
 * newest copy wins: a region's copy with a higher serial is reported,
 * never overwritten.
 */
static void scrub_superblocks(const struct cache_scrub_args *a,
			      struct buf *copy, int *incomplete,
			      struct cache_scrub_result *out)
{
	out->objects++;
	for (int i = 0; i < a->nregions; i++) {
		int r;

		buf_reset(copy);
		r = backend_get(a->regions[i], "superblock", 0, 0, copy);
		if (r && r != -ENOENT) {
			cache_say(a->report, a->ctx, "region %s: cannot read "
			    "superblock: %s", a->names[i], phi_strerror(r));
			out->unreadable++;
			incomplete[i] = 1;
			continue;
		}
		if (r == 0) {
			out->bytes += buf_len(copy);
			uint64_t theirs, mine;

			if (buf_len(copy) == a->superblock_len &&
			    memcmp(buf_data(copy), a->superblock,
				   a->superblock_len) == 0)
				continue;
			out->bad++;
			if (copy_is_newer(a, copy, &theirs, &mine)) {
				cache_say(a->report, a->ctx, "region %s: "
				    "superblock is newer than the one that "
				    "opens the key (serial %llu, not %llu); "
				    "left as it is", a->names[i],
				    (unsigned long long)theirs,
				    (unsigned long long)mine);
				continue;
			}
		} else {
			out->missing++;
		}
		cache_say(a->report, a->ctx, "region %s: superblock %s", a->names[i],
		    r ? "is missing" : "differs from the one that opens the "
		    "key");
		if (!a->repair) {
			incomplete[i] = 1;
		} else if (incomplete[i]) {
			cache_say(a->report, a->ctx, "region %s: superblock not "
			    "stored, because the region still lacks objects",
			    a->names[i]);
		} else if (repair_copy(a, i, "superblock", a->superblock,
				       a->superblock_len, out)) {
			incomplete[i] = 1;
		}
	}
}

int cache_scrub(const struct cache_scrub_args *a,
		struct cache_scrub_result *out)
{
	/* packs, metadata, legal holds, audit segments (sealed under
	 * their keys too) */
	static const char *const prefixes[] = { "d/", "m/", "h/", "a/" };
	int incomplete[BACKEND_REPLICA_MAX] = { 0 };
	struct keyset all = { 0 };
	struct buf good, copy, scratch;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < a->nregions; i++)
		for (size_t p = 0; p < sizeof(prefixes) / sizeof(*prefixes);
		     p++) {
			int r = backend_list(a->regions[i], prefixes[p],
					     list_add, &all);

			if (r) {
				cache_say(a->report, a->ctx, "region %s: cannot list "
				    "its objects: %s", a->names[i],
				    phi_strerror(r));
				rc = r;
			}
		}
	if (rc) {
		free(all.k);
		return rc;
	}
	keyset_sort(&all);
	buf_init(&good, SIZE_MAX);
	buf_init(&copy, SIZE_MAX);
	buf_init(&scratch, SIZE_MAX);
	for (size_t k = 0; k < all.n; k++) {
		scrub_one(a, all.k[k], &good, &copy, &scratch, incomplete,
			  out);
		if (a->progress)
			a->progress(a->ctx, "objects", k + 1, all.n);
	}
	if (a->superblock)
		scrub_superblocks(a, &copy, incomplete, out);
	for (int i = 0; i < a->nregions; i++)
		if (incomplete[i])
			out->unmended |= 1u << i;
	buf_release(&good);
	buf_release(&copy);
	buf_release(&scratch);
	free(all.k);
	return 0;
}

/* --- the local record of a region's health --------------------------- */

static int mended_txn(struct cache *c, MDB_txn *txn, void *arg)
{
	const char *name = arg;
	MDB_val key = { strlen(name), (void *)name }, val;
	struct region_rec rr;
	MDB_cursor *cur;
	int rc;

	rc = mdb_get(txn, c->db_regions, &key, &val);
	if (rc == MDB_NOTFOUND || (rc == 0 && val.mv_size != sizeof(rr)))
		return 0;
	if (rc)
		return cache_meta_err(rc);
	memcpy(&rr, val.mv_data, sizeof(rr));
	rr.fails = 0;
	rr.down = 0;
	rc = mdb_put(txn, c->db_regions, &key, &(MDB_val){ sizeof(rr), &rr },
		     0);
	if (rc == 0)
		rc = mdb_cursor_open(txn, c->db_repair, &cur);
	if (rc)
		return cache_meta_err(rc);
	while (rc == 0 && mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0)
		if (key.mv_size == 12 &&
		    ((uint8_t *)key.mv_data)[11] == rr.bit)
			rc = mdb_cursor_del(cur, 0);
	mdb_cursor_close(cur);
	return cache_meta_err(rc);
}

int cache_region_mended(struct cache *c, const char *region)
{
	if (c->rdonly)
		return -EROFS;
	if (!c->have_blockdbs)
		return 0;
	return cache_meta_write(c, mended_txn, (void *)region);
}

/* --- gc ---------------------------------------------------------------- */

/* Add the pack keys block records of a journal plaintext point to. */
static int collect_packs(const uint8_t *d, size_t len, struct keyset *out)
{
	const uint8_t *p = d + 40, *end = d + len;
	uint64_t count;

	if (len < 40 || memcmp(d, "PHIJ", 4))
		return PHI_ECORRUPT;
	count = cache_journal_get_be(d + 32, 8);
	for (uint64_t i = 0; i < count; i++) {
		size_t klen, vlen;

		if (end - p < 8)
			return PHI_ECORRUPT;
		klen = (size_t)p[2] << 8 | p[3];
		vlen = (size_t)p[4] << 24 | (size_t)p[5] << 16 |
		       (size_t)p[6] << 8 | p[7];
		if ((size_t)(end - p - 8) < klen + vlen)
			return PHI_ECORRUPT;
		if (p[0] == JDB_BLOCKS && p[1] == 1 &&
		    vlen == sizeof(struct block_rec)) {
			struct block_rec br;
			char key[PACK_KEY_LEN + 1];

			memcpy(&br, p + 8 + klen, sizeof(br));
			cache_pack_key(br.pack, key);
			if (keyset_add(out, key))
				return -ENOMEM;
		}
		p += 8 + klen + vlen;
	}
	return 0;
}

/* Read a metadata object from the first region that has a good copy. */
static int read_meta(const struct cache_gc_args *a, const char *name,
		     struct buf *plain)
{
	struct buf raw;
	int rc = -ENOENT;

	buf_init(&raw, SIZE_MAX);
	for (int i = 0; i < a->nregions; i++) {
		buf_reset(&raw);
		buf_reset(plain);
		rc = backend_get(a->regions[i], name, 0, 0, &raw);
		if (rc == 0)
			rc = crypt_unseal(a->key, a->fsid, name,
					  buf_data(&raw), buf_len(&raw), plain);
		if (rc == 0)
			break;
	}
	buf_release(&raw);
	return rc;
}

struct lease_ctx {
	const struct cache_gc_args *a;
	struct keyset keys;
	int64_t newest;
};

static int lease_time(const struct cache_gc_args *a, const char *key,
		      int64_t *t)
{
	uint8_t plain[16];

	if (strncmp(key, "l/", 2) || strlen(key) != 34 ||
	    crypt_name_decode(a->key, a->fsid, key + 2, plain) ||
	    plain[0] != 'L')
		return -EINVAL;
	*t = (int64_t)cache_journal_get_be(plain + 8, 8);
	return 0;
}

#define LEASE_KEEP_MS (3600 * 1000ll)	/* lease objects younger stay */

/* What one gc run gathered from the regions' histories. */
struct gc {
	const struct cache_gc_args *a;
	struct cache_gc_result *out;
	struct cache_moment *all;	/* every region's history, by key */
	size_t n;
	size_t base;		/* the snapshot kept moments start from, or
				 * SIZE_MAX: all history is kept */
	struct keyset live;	/* packs a kept moment names */
	struct keyset old;	/* packs an older moment names */
	struct keyset kept;	/* of those, packs rules and holds keep */
	uint64_t meta_from;	/* metadata from this moment on stays */
	char what[96];		/* progress in the region gc_region() is in */
	uint64_t done, total;
};

/* One more object of the region looked at, for a->progress. */
static void gc_step(struct gc *g)
{
	g->done++;
	if (g->a->progress)
		g->a->progress(g->a->ctx, g->what, g->done, g->total);
}

/* Add the moments of v whose keys g->all lacks to it. */
static int gc_merge(struct gc *g, const struct cache_moment *v, size_t nv)
{
	for (size_t k = 0; k < nv; k++) {
		size_t j;

		for (j = 0; j < g->n; j++)
			if (strcmp(g->all[j].key, v[k].key) == 0)
				break;
		if (j < g->n)
			continue;
		if (!(g->n & (g->n + 1)) || g->n == 0) {
			void *p = realloc(g->all, (2 * g->n + 2) *
					  sizeof(*g->all));

			if (!p)
				return -ENOMEM;
			g->all = p;
		}
		g->all[g->n++] = v[k];
	}
	return 0;
}

/* Gather the union of every region's history into g->all. */
static int gc_history(struct gc *g)
{
	const struct cache_gc_args *a = g->a;

	for (int i = 0; i < a->nregions; i++) {
		struct cache_moment *v;
		size_t nv;
		int r = cache_history_list(a->regions[i], a->key, a->fsid, &v,
					   &nv);

		if (r) {
			cache_say(a->report, a->ctx, "region %s: cannot list its "
			    "history: %s; nothing deleted", a->names[i],
			    phi_strerror(r));
			return r;
		}
		r = gc_merge(g, v, nv);
		free(v);
		if (r)
			return r;
	}
	return 0;
}

/* The newest snapshot at or before keep_after_ms, or SIZE_MAX. */
static size_t gc_base(const struct gc *g)
{
	size_t base = SIZE_MAX;

	for (size_t i = 0; i < g->n; i++)
		if (g->all[i].snapshot &&
		    g->all[i].time_ms <= g->a->keep_after_ms &&
		    (base == SIZE_MAX || g->all[i].seq > g->all[base].seq))
			base = i;
	return base;
}

static int cmp_seq(const void *x, const void *y)
{
	const struct cache_moment *a = x, *b = y;

	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int kept_add(void *ctx, const char *pack_key)
{
	return keyset_add(ctx, pack_key);
}

/* Metadata from the snapshot at or before the moment the oldest version
 * rules and holds keep began stays too, so that restore reaches it. */
static void gc_meta_from(struct gc *g, uint64_t oldest)
{
	g->meta_from = g->all[g->base].seq;
	if (oldest >= g->meta_from)
		return;
	g->meta_from = 0;	/* no snapshot before it: keep all */
	for (size_t i = 0; i < g->n; i++)
		if (g->all[i].snapshot && g->all[i].seq <= oldest)
			g->meta_from = g->all[i].seq;
}

/*
 * Gather the packs kept moments name (live) and older ones name (old),
 * oldest moment first; with rules or holds, replay every moment to learn
 * which old packs they keep (kept).
 */
static int gc_collect(struct gc *g)
{
	const struct cache_gc_args *a = g->a;
	struct keep *k = NULL;
	struct buf plain;
	int rc = 0;

	if (g->base == SIZE_MAX) {
		cache_say(a->report, a->ctx, "all history is younger than "
		    "retention: no metadata or packs to delete");
		return 0;
	}
	if (a->nkeep) {
		rc = cache_keep_new(a->keep, a->nkeep, a->now_ms, kept_add,
				    &g->kept, &k);
		if (rc)
			return rc;
	}
	buf_init(&plain, SIZE_MAX);
	for (size_t i = 0; i < g->n && rc == 0; i++) {
		int keep = g->all[i].seq >= g->all[g->base].seq;
		int r = read_meta(a, g->all[i].key, &plain);

		if (a->progress)
			a->progress(a->ctx, "metadata objects", i + 1, g->n);
		if (r == 0)
			r = collect_packs(buf_data(&plain), buf_len(&plain),
					  keep ? &g->live : &g->old);
		if (r == 0 && k)
			r = cache_keep_apply(k, buf_data(&plain),
					     buf_len(&plain));
		if (r && (keep || k)) {
			cache_say(a->report, a->ctx, "%s, needed by a kept "
			    "moment%s, cannot be read (%s): nothing deleted",
			    g->all[i].key, keep ? "" : " or to apply "
			    "retention rules and holds", phi_strerror(r));
			rc = r;
		}
	}
	buf_release(&plain);
	if (rc == 0)
		gc_meta_from(g, k ? cache_keep_oldest(k) : UINT64_MAX);
	cache_keep_free(k);
	return rc;
}

/* Delete from region i the packs only moments before the base name. */
static void gc_packs(struct gc *g, int i, const struct keyset *packs)
{
	const struct cache_gc_args *a = g->a;
	uint64_t size;

	for (size_t k = 0; k < packs->n && g->base != SIZE_MAX; k++) {
		const char *key = packs->k[k];

		gc_step(g);
		if (keyset_has(&g->live, key))
			continue;
		if (!keyset_has(&g->old, key)) {
			g->out->kept_unreferenced++;
			continue;
		}
		if (keyset_has(&g->kept, key)) {
			g->out->kept_by_rules++;
			continue;
		}
		g->out->packs_deleted++;
		if (!a->dry_run && backend_del(a->regions[i], key) &&
		    backend_head(a->regions[i], key, &size) == 0)
			cache_say(a->report, a->ctx, "region %s: cannot "
			    "delete %s: %s", a->names[i], key,
			    backend_last_error(a->regions[i]));
	}
}

/* Delete from region i the metadata objects older than the base. */
static void gc_meta(struct gc *g, int i)
{
	for (size_t k = 0; k < g->n && g->base != SIZE_MAX; k++) {
		gc_step(g);
		if (g->all[k].seq >= g->meta_from)
			continue;
		g->out->meta_deleted++;
		g->out->bytes_deleted += g->all[k].size;
		if (!g->a->dry_run)
			backend_del(g->a->regions[i], g->all[k].key);
	}
}

/* Delete region i's leases older than LEASE_KEEP_MS, but the newest. */
static void gc_leases(struct gc *g, int i, const struct keyset *leases)
{
	const struct cache_gc_args *a = g->a;
	int64_t newest = INT64_MIN, t;

	for (size_t k = 0; k < leases->n; k++)
		if (lease_time(a, leases->k[k], &t) == 0 && t > newest)
			newest = t;
	for (size_t k = 0; k < leases->n; k++) {
		int64_t now = (int64_t)time(NULL) * 1000;

		gc_step(g);
		if (lease_time(a, leases->k[k], &t) || t == newest ||
		    now - t < LEASE_KEEP_MS)
			continue;
		g->out->leases_deleted++;
		if (!a->dry_run)
			backend_del(a->regions[i], leases->k[k]);
	}
}

/* Delete from region i what retention lets go; skip it if unlistable. */
static void gc_region(struct gc *g, int i)
{
	const struct cache_gc_args *a = g->a;
	struct keyset packs = { 0 }, leases = { 0 };
	int r = backend_list(a->regions[i], "d/", list_add, &packs);

	if (r == 0)
		r = backend_list(a->regions[i], "l/", list_add, &leases);
	if (r) {
		cache_say(a->report, a->ctx, "region %s: cannot list: %s",
		    a->names[i], phi_strerror(r));
	} else {
		snprintf(g->what, sizeof(g->what), "objects of region %s",
			 a->names[i]);
		g->done = 0;
		g->total = (g->base != SIZE_MAX ? packs.n + g->n : 0) +
			   leases.n;
		/* packs first: an interrupted run leaves no metadata that
		 * names a deleted pack */
		gc_packs(g, i, &packs);
		gc_meta(g, i);
		gc_leases(g, i, &leases);
	}
	free(packs.k);
	free(leases.k);
}

/* The audit trail's oldest segments, in each region; none while a
 * hold stands. */
static void gc_audit(const struct cache_gc_args *a, struct cache_gc_result *out)
{
	for (size_t k = 0; k < a->nkeep; k++)
		if (a->keep[k].period_ms == INT64_MAX)
			out->audit_held = 1;
	if (out->audit_held || a->audit_keep_after_ms <= 0)
		return;
	for (int i = 0; i < a->nregions; i++) {
		uint64_t n = 0;
		int r = cache_audit_region_gc(a->regions[i], a->key, a->fsid,
					      a->audit_keep_after_ms,
					      a->dry_run, &n);

		out->audit_deleted += n;
		if (r)
			cache_say(a->report, a->ctx, "region %s: cannot delete "
			    "old audit segments: %s", a->names[i],
			    phi_strerror(r));
	}
}

int cache_gc(const struct cache_gc_args *a, struct cache_gc_result *out)
{
	struct gc g = { .a = a, .out = out };
	int rc;

	memset(out, 0, sizeof(*out));
	rc = gc_history(&g);
	if (rc)
		goto out;
	if (g.n)
		qsort(g.all, g.n, sizeof(*g.all), cmp_seq);
	g.base = gc_base(&g);
	rc = gc_collect(&g);
	keyset_sort(&g.live);
	keyset_sort(&g.old);
	keyset_sort(&g.kept);
	for (int i = 0; i < a->nregions && rc == 0; i++)
		gc_region(&g, i);
	if (rc == 0)
		gc_audit(a, out);
out:
	free(g.live.k);
	free(g.old.k);
	free(g.kept.k);
	free(g.all);
	return rc;
}
