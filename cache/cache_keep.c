/*
 * cache_keep.c - which old versions retention rules and legal holds keep
 * from gc.
 *
 * gc (cache_check.c) reads every metadata object of the history, oldest
 * first, and hands each to cache_keep_apply().  This file replays their block
 * and name records into a model of the tree: where each block's sealed
 * copy is, and the names of each inode.  When a block's copy is replaced
 * or its file deleted, that version of the file ends; it is protected if
 * a rule covers the file (any of its paths, when the version began or
 * when it ended) and the version ended less than the rule's period ago,
 * or, for a hold, however long ago.  The packs protected versions are in
 * are kept, and so is the metadata from the snapshot before the oldest of
 * them began, so that versions and restore --at reach them.
 *
 * A file whose last name goes (unlinked while open, its blocks freed in
 * a later moment) keeps the longest rule over it then, for its versions
 * that end after that.
 *
 * A path whose folders the model cannot name (history that begins with
 * a segment, not a snapshot) counts as covered by every rule: keeping too
 * much is recoverable, deleting a held record is not.
 *
 * Names are held in this process's memory only, never written anywhere.
 */
#include "cache_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kblock {
	struct kblock *next;	/* hash chain */
	uint64_t ino, blk;
	uint8_t pack[16];
	uint64_t born;		/* the moment the version began */
	int64_t period;		/* the longest rule over it when it began */
	uint32_t mark;		/* the snapshot that last named it */
};

struct kname {
	struct kname *next;	/* chain of the (parent, name) table */
	struct kname *inext;	/* chain of the by-inode table */
	uint64_t parent, ino;
	uint32_t mark;
	uint16_t len;
	char name[];		/* len bytes and a NUL */
};

struct kgone {
	struct kgone *next;
	uint64_t ino;
	int64_t period;		/* the longest rule over its last name */
};

struct table {
	void **b;		/* buckets */
	size_t nb, n;		/* nb a power of two */
};

struct keep {
	const struct cache_keep_rule *rules;
	size_t nrules;
	int64_t now_ms;
	struct table blocks;	/* struct kblock by (ino, blk) */
	struct table names;	/* struct kname by (parent, name) */
	struct table byino;	/* struct kname by ino, through inext */
	struct table gone;	/* struct kgone by ino: files without a name */
	uint32_t mark;
	int64_t time_ms;	/* of the moment being applied */
	cache_keep_fn *fn;
	void *ctx;
	uint64_t oldest;	/* the oldest protected version's begin */
	struct kblock **put;	/* versions that begin in this moment */
	size_t nput, capput;
	char path[8192];	/* period_of()'s */
};

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_block(uint64_t ino, uint64_t blk)
{
	return mix(ino * 0x9E3779B97F4A7C15ull ^ blk);
}

static uint64_t hash_name(uint64_t parent, const char *name, size_t len)
{
	uint64_t h = mix(parent);

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 0x100000001b3ull;
	return mix(h);
}

static int table_init(struct table *t)
{
	t->nb = 1024;
	t->n = 0;
	t->b = calloc(t->nb, sizeof(*t->b));
	return t->b ? 0 : -ENOMEM;
}

/* The next-pointer of an entry of t: where it sits in the entry. */
typedef void **next_of_fn(void *e);
typedef uint64_t hash_of_fn(const void *e);

/* Double t's buckets once it holds twice as many entries as buckets. */
static void table_grow(struct table *t, next_of_fn *next, hash_of_fn *hash)
{
	size_t nb = t->nb * 2;
	void **b;

	if (t->n < 2 * t->nb || !(b = calloc(nb, sizeof(*b))))
		return;		/* no memory: longer chains, still right */
	for (size_t i = 0; i < t->nb; i++) {
		void *e = t->b[i];

		while (e) {
			void *after = *next(e);
			size_t j = hash(e) & (nb - 1);

			*next(e) = b[j];
			b[j] = e;
			e = after;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

static void **block_next(void *e)
{
	return (void **)&((struct kblock *)e)->next;
}

static uint64_t block_hash(const void *e)
{
	const struct kblock *k = e;

	return hash_block(k->ino, k->blk);
}

static void **name_next(void *e)
{
	return (void **)&((struct kname *)e)->next;
}

static uint64_t name_hash(const void *e)
{
	const struct kname *k = e;

	return hash_name(k->parent, k->name, k->len);
}

static void **ino_next(void *e)
{
	return (void **)&((struct kname *)e)->inext;
}

static uint64_t ino_hash(const void *e)
{
	return mix(((const struct kname *)e)->ino);
}

static struct kblock **block_slot(struct keep *k, uint64_t ino, uint64_t blk)
{
	struct kblock **p = (struct kblock **)&k->blocks.b[
		hash_block(ino, blk) & (k->blocks.nb - 1)];

	while (*p && ((*p)->ino != ino || (*p)->blk != blk))
		p = &(*p)->next;
	return p;
}

static struct kname **name_slot(struct keep *k, uint64_t parent,
				const char *name, size_t len)
{
	struct kname **p = (struct kname **)&k->names.b[
		hash_name(parent, name, len) & (k->names.nb - 1)];

	while (*p && ((*p)->parent != parent || (*p)->len != len ||
		      memcmp((*p)->name, name, len)))
		p = &(*p)->next;
	return p;
}

/* The first name of ino (a folder has one), or NULL. */
static struct kname *first_name(struct keep *k, uint64_t ino)
{
	struct kname *n = k->byino.b[mix(ino) & (k->byino.nb - 1)];

	while (n && n->ino != ino)
		n = n->inext;
	return n;
}

static void **gone_next(void *e)
{
	return (void **)&((struct kgone *)e)->next;
}

static uint64_t gone_hash(const void *e)
{
	return mix(((const struct kgone *)e)->ino);
}

static struct kgone **gone_slot(struct keep *k, uint64_t ino)
{
	struct kgone **p = (struct kgone **)&k->gone.b[
		mix(ino) & (k->gone.nb - 1)];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

static void unlink_ino(struct keep *k, struct kname *n)
{
	struct kname **p = (struct kname **)&k->byino.b[
		mix(n->ino) & (k->byino.nb - 1)];

	while (*p != n)
		p = &(*p)->inext;
	*p = n->inext;
}

/* --- rules --------------------------------------------------------------- */

/*
 * Does the path of folder dir, then "/" name (len bytes), lie under the
 * rule path r?  The path is built into buf from its end; -1 when a folder
 * on the way has no known name.
 */
static int path_of(struct keep *k, uint64_t dir, const char *name,
		   size_t len, char *buf, size_t size, const char **out)
{
	size_t at = size - 1;
	int depth = 0;

	buf[at] = '\0';
	for (;;) {
		struct kname *d;

		if (len + 1 > at)
			return -1;	/* deeper than any rule can name */
		at -= len;
		memcpy(buf + at, name, len);
		buf[--at] = '/';
		if (dir == CACHE_ROOT_INO)
			break;
		d = first_name(k, dir);
		if (!d || ++depth > 4096)
			return -1;
		dir = d->parent;
		name = d->name;
		len = d->len;
	}
	*out = buf + at;
	return 0;
}

static int under(const char *path, const char *rule)
{
	size_t n = strlen(rule);

	if (n == 1 && rule[0] == '/')
		return 1;
	return strncmp(path, rule, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

/* The longest period of the rules over any path of ino (0: none); for
 * a file without a name, over its last one. */
static int64_t period_of(struct keep *k, uint64_t ino)
{
	struct kgone *g;
	int64_t best = 0;

	if (!first_name(k, ino))
		return (g = *gone_slot(k, ino)) ? g->period : 0;

	for (struct kname *n = k->byino.b[mix(ino) & (k->byino.nb - 1)]; n;
	     n = n->inext) {
		const char *path;

		if (n->ino != ino)
			continue;
		if (path_of(k, n->parent, n->name, n->len, k->path,
			    sizeof(k->path), &path))
			path = NULL;	/* unknown: every rule */
		for (size_t i = 0; i < k->nrules; i++)
			if ((!path || under(path, k->rules[i].path)) &&
			    k->rules[i].period_ms > best)
				best = k->rules[i].period_ms;
	}
	return best;
}

/* The version b ends now: keep its pack if a rule still covers it. */
static int version_ends(struct keep *k, struct kblock *b)
{
	int64_t period = period_of(k, b->ino);
	char key[PACK_KEY_LEN + 1];

	if (b->period > period)
		period = b->period;
	if (period == 0 || (period != INT64_MAX &&
			    k->now_ms - k->time_ms >= period))
		return 0;
	if (b->born < k->oldest)
		k->oldest = b->born;
	cache_pack_key(b->pack, key);
	return k->fn(k->ctx, key);
}

/* --- replay ------------------------------------------------------------ */

int cache_keep_new(const struct cache_keep_rule *rules, size_t nrules,
	     int64_t now_ms, cache_keep_fn *fn, void *ctx, struct keep **out)
{
	struct keep *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->rules = rules;
	k->nrules = nrules;
	k->now_ms = now_ms;
	k->fn = fn;
	k->ctx = ctx;
	k->oldest = UINT64_MAX;
	if (table_init(&k->blocks) || table_init(&k->names) ||
	    table_init(&k->byino) || table_init(&k->gone)) {
		cache_keep_free(k);
		return -ENOMEM;
	}
	*out = k;
	return 0;
}

uint64_t cache_keep_oldest(const struct keep *k)
{
	return k->oldest;
}

void cache_keep_free(struct keep *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->blocks.nb && k->blocks.b; i++)
		for (struct kblock *b = k->blocks.b[i], *nx; b; b = nx) {
			nx = b->next;
			free(b);
		}
	for (size_t i = 0; i < k->names.nb && k->names.b; i++)
		for (struct kname *n = k->names.b[i], *nx; n; n = nx) {
			nx = n->next;
			free(n);
		}
	for (size_t i = 0; i < k->gone.nb && k->gone.b; i++)
		for (struct kgone *g = k->gone.b[i], *nx; g; g = nx) {
			nx = g->next;
			free(g);
		}
	for (size_t i = 0; i < k->nput; i++)
		free(k->put[i]);
	free(k->blocks.b);
	free(k->names.b);
	free(k->byino.b);
	free(k->gone.b);
	free(k->put);
	free(k);
}

/* One record of a metadata object. */
struct rec {
	int db, op;
	const uint8_t *key, *val;
	size_t klen, vlen;
};

/* The record at *p, moving *p past it; -1 when none is left, or
 * PHI_ECORRUPT. */
static int next_rec(const uint8_t **p, const uint8_t *end, struct rec *r)
{
	const uint8_t *q = *p;

	if (q == end)
		return -1;
	if (end - q < 8)
		return PHI_ECORRUPT;
	r->db = q[0];
	r->op = q[1];
	r->klen = (size_t)q[2] << 8 | q[3];
	r->vlen = (size_t)q[4] << 24 | (size_t)q[5] << 16 |
		  (size_t)q[6] << 8 | q[7];
	if ((size_t)(end - q - 8) < r->klen + r->vlen)
		return PHI_ECORRUPT;
	r->key = q + 8;
	r->val = r->key + r->klen;
	*p = r->val + r->vlen;
	return 0;
}

/* Block records: end the versions they replace; queue the new ones. */
static int apply_blocks(struct keep *k, const struct rec *r)
{
	uint64_t ino, blk;
	struct kblock **slot, *b;
	int rc;

	if (r->klen != 16 || (r->op == JOURNAL_OP_PUT &&
			      r->vlen != sizeof(struct block_rec)))
		return PHI_ECORRUPT;
	ino = key_get_u64(r->key);
	blk = key_get_u64(r->key + 8);
	slot = block_slot(k, ino, blk);
	b = *slot;
	if (b && r->op == JOURNAL_OP_PUT &&
	    memcmp(b->pack, r->val + offsetof(struct block_rec, pack),
		   16) == 0) {
		b->mark = k->mark;
		return 0;
	}
	if (b) {
		rc = version_ends(k, b);
		if (rc)
			return rc;
		*slot = b->next;
		k->blocks.n--;
		free(b);
	}
	if (r->op != JOURNAL_OP_PUT)
		return 0;
	if (k->nput == k->capput) {
		size_t cap = k->capput ? 2 * k->capput : 64;
		void *p = realloc(k->put, cap * sizeof(*k->put));

		if (!p)
			return -ENOMEM;
		k->put = p;
		k->capput = cap;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ino = ino;
	b->blk = blk;
	memcpy(b->pack, r->val + offsetof(struct block_rec, pack), 16);
	k->put[k->nput++] = b;
	return 0;
}

/*
 * Forget name n.  The last name of a file takes the rules over it along:
 * its blocks may be freed in a later moment.  0 or -ENOMEM.
 */
static int drop_name(struct keep *k, struct kname *n)
{
	uint64_t ino = n->ino;
	int64_t period = 0;
	struct kgone **slot;
	int others = 0;

	for (struct kname *o = k->byino.b[mix(ino) & (k->byino.nb - 1)]; o;
	     o = o->inext)
		others += o != n && o->ino == ino;
	if (!others)
		period = period_of(k, ino);
	unlink_ino(k, n);
	k->names.n--;
	k->byino.n--;
	free(n);
	if (period == 0)
		return 0;
	slot = gone_slot(k, ino);
	if (!*slot) {
		*slot = calloc(1, sizeof(**slot));
		if (!*slot)
			return -ENOMEM;
		(*slot)->ino = ino;
		k->gone.n++;
	}
	if (period > (*slot)->period)
		(*slot)->period = period;
	table_grow(&k->gone, gone_next, gone_hash);
	return 0;
}

static int apply_name(struct keep *k, const struct rec *r)
{
	const char *name = (const char *)r->key + 8;
	size_t len = r->klen - 8;
	struct kname **slot, *n;
	struct dirent_rec d;
	uint64_t parent;

	if (r->klen <= 8 || len > CACHE_NAME_MAX ||
	    (r->op == JOURNAL_OP_PUT && r->vlen != sizeof(d)))
		return PHI_ECORRUPT;
	parent = key_get_u64(r->key);
	slot = name_slot(k, parent, name, len);
	n = *slot;
	if (r->op == JOURNAL_OP_PUT)
		memcpy(&d, r->val, sizeof(d));
	if (n && r->op == JOURNAL_OP_PUT && n->ino == d.ino) {
		n->mark = k->mark;
		return 0;
	}
	if (n) {
		int rc;

		*slot = n->next;
		rc = drop_name(k, n);
		if (rc)
			return rc;
	}
	if (r->op != JOURNAL_OP_PUT)
		return 0;
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return -ENOMEM;
	n->parent = parent;
	n->ino = d.ino;
	n->mark = k->mark;
	n->len = (uint16_t)len;
	memcpy(n->name, name, len);
	n->name[len] = '\0';
	n->next = *slot;
	*slot = n;
	n->inext = k->byino.b[mix(n->ino) & (k->byino.nb - 1)];
	k->byino.b[mix(n->ino) & (k->byino.nb - 1)] = n;
	k->names.n++;
	k->byino.n++;
	table_grow(&k->names, name_next, name_hash);
	table_grow(&k->byino, ino_next, ino_hash);
	return 0;
}

/* A snapshot holds every record: what it does not name is gone. */
static int sweep(struct keep *k, int names)
{
	int rc = 0;

	for (size_t i = 0; i < (names ? k->names.nb : k->blocks.nb); i++) {
		void **p = &(names ? k->names.b : k->blocks.b)[i];

		while (*p && rc == 0) {
			if (names) {
				struct kname *n = *p;

				if (n->mark == k->mark) {
					p = (void **)&n->next;
					continue;
				}
				*p = n->next;
				rc = drop_name(k, n);
			} else {
				struct kblock *b = *p;

				if (b->mark == k->mark) {
					p = (void **)&b->next;
					continue;
				}
				rc = version_ends(k, b);
				*p = b->next;
				k->blocks.n--;
				free(b);
			}
		}
	}
	return rc;
}

int cache_keep_apply(struct keep *k, const uint8_t *d, size_t len)
{
	const uint8_t *end = d + len, *p;
	uint64_t seq;
	int snapshot, pass, rc = 0;
	struct rec r;

	if (len < JOURNAL_HEADER || memcmp(d, "PHIJ", 4) ||
	    (d[5] != 'S' && d[5] != 'J'))
		return PHI_ECORRUPT;
	snapshot = d[5] == 'S';
	seq = cache_journal_get_be(d + 8, 8);
	k->time_ms = (int64_t)cache_journal_get_be(d + 16, 8);
	k->mark++;
	/* Blocks first, against the names as they were; then the names;
	 * then the versions that begin here, under the names as they are. */
	for (pass = 0; pass < 2 && rc == 0; pass++) {
		p = d + JOURNAL_HEADER;
		while (rc == 0 && (rc = next_rec(&p, end, &r)) == 0)
			if (pass == 0 && r.db == JDB_BLOCKS)
				rc = apply_blocks(k, &r);
			else if (pass == 1 && r.db == JDB_DIRENTS)
				rc = apply_name(k, &r);
		if (rc == -1)
			rc = 0;
		if (rc == 0 && snapshot)
			rc = sweep(k, pass);
	}
	for (size_t i = 0; i < k->nput; i++) {
		struct kblock *b = k->put[i];
		struct kblock **slot = block_slot(k, b->ino, b->blk);

		k->put[i] = NULL;
		if (rc) {
			free(b);
			continue;
		}
		b->born = seq;
		b->mark = k->mark;
		b->period = period_of(k, b->ino);
		b->next = *slot;
		*slot = b;
		k->blocks.n++;
		table_grow(&k->blocks, block_next, block_hash);
	}
	k->nput = 0;
	return rc;
}
