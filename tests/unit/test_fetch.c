/*
 * test_fetch.c - fetching evicted blocks back without holding the file's
 * lock across the regions, through cache.h, over two dir: regions each
 * behind a fault-injecting backend.
 *
 * A slow region (latency_ms on every get) keeps a fetch under way while
 * the test does something else to the same file.  Order is told by the
 * fault backend's count of gets still under way
 * (backend_fault_busy()), never by a clock: an operation that had to
 * wait for the fetch returns only after that count fell to zero.  The
 * filesystem, its regions and the asserting helpers are shared with
 * test_seal.c and test_admin.c (seal_test.h).
 */
#include "backend.h"
#include "cache.h"
#include "cache_admin.h"
#include "crypt.h"
#include "phi.h"
#include "seal_test.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BS BLOCK_SIZE		/* a block of the filesystem env_init() makes */

/* Long enough that what must not wait for the get is done well before
 * it, on a loaded machine under a sanitizer too. */
#define SLOW_MS 3000

/* Every get from either region takes ms (0: none). */
static void slow_gets(struct env *e, unsigned ms)
{
	struct backend_fault f = { 0 };

	f.latency_ms = ms;
	f.ops_mask = BACKEND_OP_GET;
	for (int i = 0; i < 2; i++)
		backend_fault_set(e->fault[i], ms ? &f : NULL);
}

/* Gets from the regions under way now. */
static unsigned long gets_busy(struct env *e)
{
	return backend_fault_busy(e->fault[0], BACKEND_OP_GET) +
	       backend_fault_busy(e->fault[1], BACKEND_OP_GET);
}

static unsigned long gets_made(struct env *e)
{
	return backend_fault_calls(e->fault[0], BACKEND_OP_GET) +
	       backend_fault_calls(e->fault[1], BACKEND_OP_GET);
}

/* Until a get is under way (a fetch has dropped the file's lock and
 * reached the regions); fails after a minute rather than hang. */
static void wait_for_get(struct env *e)
{
	for (int i = 0; i < 60000 && gets_busy(e) == 0; i++)
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
	ASSERT_EQ(gets_busy(e), 1);
}

static void resize(struct cache *c, uint64_t ino, uint64_t size)
{
	struct stat in = { 0 }, out;

	in.st_size = (off_t)size;
	ASSERT_OK(cache_setattr(c, ino, CACHE_SET_SIZE, &in, &out));
	ASSERT_EQ(out.st_size, (off_t)size);
}

/* A read of one block on a thread of its own. */
struct reader {
	struct cache *c;
	uint64_t ino, off;
	unsigned char buf[BS];
	size_t got;
	int rc;
	pthread_t t;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->rc = try_get(r->c, r->ino, r->off, r->buf, sizeof(r->buf),
			&r->got);
	return NULL;
}

static void reader_start(struct reader *r, struct cache *c, uint64_t ino,
			 uint64_t blk)
{
	memset(r, 0, sizeof(*r));
	r->c = c;
	r->ino = ino;
	r->off = blk * BS;
	ASSERT_OK(pthread_create(&r->t, NULL, reader_main, r));
}

static void reader_join(struct reader *r)
{
	ASSERT_OK(pthread_join(r->t, NULL));
	ASSERT_OK(r->rc);
}

/* A file of three blocks of seed's bytes, replicated and evicted. */
static uint64_t evicted_file(struct env *e, unsigned char *data, unsigned seed)
{
	uint64_t ino = mkfile(e->c, "f");

	fill(data, 3 * BS, seed);
	put(e->c, ino, 0, data, 3 * BS);
	sync_ok(e);
	ASSERT_TRUE(cache_evict(e->c, UINT64_MAX) >= 3 * BS);
	return ino;
}

/* --- cases ------------------------------------------------------------- */

/*
 * While a read waits for a region to send a block of the file, a stat of
 * the file and a read of a block of it that is here do not wait.
 */
TEST(stat_and_resident_read_pass_a_fetch)
{
	static unsigned char data[3 * BS], buf[BS];
	static struct reader r;
	struct env e;
	struct stat st;
	size_t got;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	ino = evicted_file(&e, data, 1);
	ASSERT_OK(get(e.c, ino, 2 * BS, buf, BS, &got));	/* resident */
	ASSERT_EQ(got, BS);
	slow_gets(&e, SLOW_MS);
	reader_start(&r, e.c, ino, 0);
	wait_for_get(&e);

	ASSERT_OK(cache_getattr(e.c, ino, &st));
	ASSERT_EQ(gets_busy(&e), 1);	/* done, the get still under way */
	ASSERT_EQ(st.st_size, 3 * BS);
	memset(buf, 0, sizeof(buf));
	ASSERT_OK(get(e.c, ino, 2 * BS, buf, BS, &got));
	ASSERT_EQ(gets_busy(&e), 1);
	ASSERT_EQ(got, BS);
	ASSERT_TRUE(memcmp(buf, data + 2 * BS, BS) == 0);

	reader_join(&r);
	ASSERT_EQ(r.got, BS);
	ASSERT_TRUE(memcmp(r.buf, data, BS) == 0);
	slow_gets(&e, 0);
	expect(e.c, ino, data, sizeof(data));
	env_done(&e);
}

/*
 * A write that replaces a block whole while the block is being fetched
 * does not wait for the fetch, and the fetched (older) bytes never land
 * over it: the read that started first, and every read after, shows the
 * write, locally and once sealed, evicted and fetched again.
 */
TEST(whole_block_write_during_a_fetch_wins)
{
	static unsigned char data[3 * BS], fresh[BS];
	static struct reader r;
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	ino = evicted_file(&e, data, 2);
	fill(fresh, sizeof(fresh), 3);
	slow_gets(&e, SLOW_MS);
	reader_start(&r, e.c, ino, 1);
	wait_for_get(&e);

	put(e.c, ino, BS, fresh, BS);
	ASSERT_EQ(gets_busy(&e), 1);	/* done, the get still under way */

	reader_join(&r);
	ASSERT_EQ(r.got, BS);
	ASSERT_TRUE(memcmp(r.buf, fresh, BS) == 0);
	slow_gets(&e, 0);
	memcpy(data + BS, fresh, BS);
	expect(e.c, ino, data, sizeof(data));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) >= 3 * BS);
	expect(e.c, ino, data, sizeof(data));
	env_close(&e);
	env_open(&e);
	expect(e.c, ino, data, sizeof(data));
	env_done(&e);
}

/*
 * A truncate that cuts a block being fetched, and a grow after it, do not
 * wait for the fetch, and the cut block reads back as zeros: what the
 * fetch brings is not written into the file's hole.
 */
TEST(truncate_during_a_fetch_leaves_no_stale_block)
{
	static unsigned char data[3 * BS], zeros[BS];
	static struct reader r;
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	ino = evicted_file(&e, data, 4);
	slow_gets(&e, SLOW_MS);
	reader_start(&r, e.c, ino, 1);
	wait_for_get(&e);

	resize(e.c, ino, BS);
	ASSERT_EQ(gets_busy(&e), 1);	/* done, the get still under way */
	resize(e.c, ino, 3 * BS);
	ASSERT_EQ(gets_busy(&e), 1);

	reader_join(&r);
	ASSERT_EQ(r.got, BS);
	ASSERT_TRUE(memcmp(r.buf, zeros, BS) == 0);
	slow_gets(&e, 0);
	memset(data + BS, 0, 2 * BS);
	expect(e.c, ino, data, sizeof(data));
	sync_ok(&e);
	cache_evict(e.c, UINT64_MAX);
	expect(e.c, ino, data, sizeof(data));
	env_close(&e);
	env_open(&e);
	expect(e.c, ino, data, sizeof(data));
	env_done(&e);
}

/*
 * A second read of a block being fetched waits for that fetch instead of
 * asking the regions again, and sees what it brought.
 */
TEST(second_reader_waits_for_the_fetch_under_way)
{
	static unsigned char data[3 * BS];
	static struct reader r1, r2;
	struct env e;
	unsigned long before;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	ino = evicted_file(&e, data, 5);
	before = gets_made(&e);
	slow_gets(&e, SLOW_MS);
	reader_start(&r1, e.c, ino, 0);
	wait_for_get(&e);
	reader_start(&r2, e.c, ino, 0);

	reader_join(&r1);
	reader_join(&r2);
	ASSERT_EQ(gets_made(&e) - before, 1);
	ASSERT_EQ(r1.got, BS);
	ASSERT_EQ(r2.got, BS);
	ASSERT_TRUE(memcmp(r1.buf, data, BS) == 0);
	ASSERT_TRUE(memcmp(r2.buf, data, BS) == 0);
	env_done(&e);
}

/*
 * A debug build stops a call to a region made with a lock held (the
 * count cache/ keeps through phi_lock_note()), so that the tests above,
 * and every other, would catch a fetch under the node lock again.
 */
/* Evict everything and reopen with read_ahead ra. */
static void cold(struct env *e, int ra)
{
	ASSERT_TRUE(cache_evict(e->c, UINT64_MAX) > 0);
	env_close(e);
	e->cfg.read_ahead = ra;
	env_open(e);
}

/*
 * A file read in order gets each of its packs whole, the read-ahead
 * threads the packs past the reader's: after the read of block 0, the
 * gets of the next packs are made without the reader, and reading on
 * makes none.  No ranged get at all: one get per pack, every other block
 * from memory.  A read out of order gets its frame alone.
 */
#define SEQ_BLOCKS 48		/* three packs of env_init()'s 1 MiB, or more */

static void read_block(struct cache *c, struct cache_file *f, uint64_t b,
		       const unsigned char *want)
{
	static unsigned char buf[BS];
	size_t got;

	ASSERT_OK(read_file(c, f, b * BS, buf, BS, &got));
	ASSERT_EQ(got, (size_t)BS);
	ASSERT_TRUE(memcmp(buf, want, BS) == 0);
}

/* Read blocks [from, to) of ino in order, checking them against data
 * (the whole file's); the gets made meanwhile. */
static unsigned long read_in_order(struct env *e, uint64_t ino,
				   const unsigned char *data, uint64_t from,
				   uint64_t to)
{
	unsigned long before = gets_made(e);
	struct cache_file *f;

	ASSERT_OK(cache_file_open(e->c, ino, 0, &f));
	for (uint64_t b = from; b < to; b++)
		read_block(e->c, f, b, data + b * BS);
	cache_file_release(e->c, f);
	return gets_made(e) - before;
}

static uint64_t packs_got_whole(struct env *e)
{
	struct cache_counters k;

	cache_counters(e->c, &k);
	return k.packs_fetched_whole;
}

TEST(sequential_read_gets_whole_packs_ahead)
{
	static unsigned char data[SEQ_BLOCKS * BS];
	struct cache_counters k;
	struct cache_file *f;
	unsigned long before;
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.seal_delay_ms = 3600 * 1000;	/* sealed by sync_ok() alone */
	env_open(&e);
	ino = mkfile(e.c, "f");
	fill(data, sizeof(data), 4);
	put(e.c, ino, 0, data, sizeof(data));
	sync_ok(&e);
	cold(&e, 0);			/* the default window: 16 blocks */

	before = gets_made(&e);
	ASSERT_OK(cache_file_open(e.c, ino, 0, &f));
	read_block(e.c, f, 0, data);
	/* block 0's pack, and the next one, past the window, ahead */
	for (int i = 0; i < 60000 && (gets_made(&e) - before < 2 ||
				      gets_busy(&e)); i++)
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
	ASSERT_EQ(gets_made(&e) - before, 2);
	for (uint64_t b = 1; b < SEQ_BLOCKS; b++)
		read_block(e.c, f, b, data + b * BS);
	cache_file_release(e.c, f);
	cache_counters(e.c, &k);
	ASSERT_TRUE(k.packs_fetched_whole >= 3);
	ASSERT_EQ(gets_made(&e) - before, k.packs_fetched_whole);
	ASSERT_EQ(k.frames_from_memory,
		  SEQ_BLOCKS - k.packs_fetched_whole);

	/* evicted, read out of order: from the packs still in memory */
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	ASSERT_EQ(read_in_order(&e, ino, data, 30, 31), 0);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.frames_from_memory,
		  SEQ_BLOCKS - k.packs_fetched_whole + 1);

	cold(&e, 0);			/* out of order: a frame, no pack */
	ASSERT_EQ(read_in_order(&e, ino, data, 30, 31), 1);
	ASSERT_EQ(packs_got_whole(&e), 0);
	env_done(&e);
}

/*
 * A file whose blocks were sealed a pack each (here: a sync after each
 * block written) gets no pack whole when read in order: each would bring
 * mostly other files' data.  One ranged get per block.
 */
TEST(blocks_a_pack_each_read_in_order_come_alone)
{
	static unsigned char data[4 * BS];
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	ino = mkfile(e.c, "f");
	fill(data, sizeof(data), 5);
	for (uint64_t b = 0; b < 4; b++) {
		put(e.c, ino, b * BS, data + b * BS, BS);
		sync_ok(&e);
	}
	cold(&e, 0);
	ASSERT_EQ(read_in_order(&e, ino, data, 0, 4), 4);
	ASSERT_EQ(packs_got_whole(&e), 0);
	env_done(&e);
}

/*
 * A pack larger than a slot (written when pack_size was larger) is tried
 * whole once, found too large, and never again: one failed get in each
 * region, then one ranged get per block.
 */
TEST(a_pack_too_large_for_memory_is_tried_whole_once)
{
	static unsigned char data[SEQ_BLOCKS * 6 * BS];
	const uint64_t nblk = sizeof(data) / BS;
	struct env e;
	uint64_t ino;

	env_init(&e, 1ull << 30);
	env_close(&e);
	e.cfg.pack_size = 32 * MiB;		/* one pack of 18 MiB */
	e.cfg.seal_delay_ms = 3600 * 1000;
	env_open(&e);
	ino = mkfile(e.c, "f");
	fill(data, sizeof(data), 6);
	put(e.c, ino, 0, data, sizeof(data));
	sync_ok(&e);
	ASSERT_TRUE(cache_evict(e.c, UINT64_MAX) > 0);
	env_close(&e);
	e.cfg.pack_size = 1 * MiB;		/* slots of 16 MiB on */
	e.cfg.read_ahead = 0;
	env_open(&e);
	/* the whole get, refused in each region, and a frame per block */
	ASSERT_EQ(read_in_order(&e, ino, data, 0, nblk), nblk + 2);
	ASSERT_EQ(packs_got_whole(&e), 0);
	env_done(&e);
}

/*
 * Small files written together share a pack; read back cold, the first
 * one's fetch is a ranged get of its frame, the second one's gets the
 * pack whole, and the others' blocks come from memory
 * (cache_packget.c).  With read_ahead off, each costs a get.
 */
#define LETTERS 24
#define LETTER (4 * KiB)

/* n files of size bytes each (file i's at data + i * size), sealed by
 * sync_ok()'s pass alone, not by the sealer's timer, so that no pack is
 * cut early. */
static void write_files(struct env *e, int n, size_t size, unsigned seed,
			uint64_t *ino, unsigned char *data)
{
	char name[32];

	env_close(e);
	e->cfg.seal_delay_ms = 3600 * 1000;
	env_open(e);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%03d", i);
		ino[i] = mkfile(e->c, name);
		fill(data + (size_t)i * size, size, seed + (unsigned)i);
		put(e->c, ino[i], 0, data + (size_t)i * size, size);
	}
	sync_ok(e);
}

/* LETTERS files of one block in one pack. */
static void write_letters(struct env *e, uint64_t ino[LETTERS],
			  unsigned char data[LETTERS][LETTER])
{
	write_files(e, LETTERS, LETTER, 100, ino, data[0]);
}

TEST(small_files_read_cold_share_a_get_of_their_pack)
{
	static unsigned char data[LETTERS][LETTER];
	struct cache_counters k;
	uint64_t ino[LETTERS];
	unsigned long before;
	struct env e;

	env_init(&e, 1ull << 30);
	write_letters(&e, ino, data);
	cold(&e, 0);			/* the default */
	before = gets_made(&e);
	for (int i = 0; i < LETTERS; i++)
		expect(e.c, ino[i], data[i], LETTER);
	cache_counters(e.c, &k);
	ASSERT_EQ(gets_made(&e) - before, 2);	/* a frame, then the pack */
	ASSERT_EQ(k.packs_fetched_whole, 1);
	ASSERT_EQ(k.frames_from_memory, LETTERS - 2);

	cold(&e, -1);			/* off: a get per letter */
	before = gets_made(&e);
	for (int i = 0; i < LETTERS; i++)
		expect(e.c, ino[i], data[i], LETTER);
	ASSERT_EQ(gets_made(&e) - before, LETTERS);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.packs_fetched_whole, 0);
	env_done(&e);
}

/*
 * A series of one-block files (slices of a CT study) spread over several
 * packs, read back cold in order: the first pack as above (a frame, then
 * the pack whole), then each next pack whole at its first fetch, by the
 * reader or ahead of it by a read-ahead thread: one get per pack, and
 * one more.  Single slices opened far apart get their frames alone.
 */
#define SLICES 128		/* of BS: about 16 to a pack of 1 MiB */

TEST(a_series_read_in_order_gets_each_next_pack_whole_at_once)
{
	static unsigned char data[SLICES][BS];
	struct cache_counters k;
	uint64_t ino[SLICES];
	unsigned long before;
	struct env e;

	env_init(&e, 1ull << 30);
	write_files(&e, SLICES, BS, 300, ino, data[0]);
	cold(&e, 0);
	before = gets_made(&e);
	for (int i = 0; i < SLICES; i++)
		expect(e.c, ino[i], data[i], BS);
	cache_counters(e.c, &k);
	ASSERT_TRUE(k.packs_fetched_whole >= SLICES / 17);
	ASSERT_EQ(gets_made(&e) - before, k.packs_fetched_whole + 1);
	ASSERT_TRUE(k.frames_from_memory >= SLICES - 1 - k.packs_fetched_whole);

	/* 40 apart: never two in one pack; none read after its pack's
	 * first, so none is got whole */
	cold(&e, 0);
	before = gets_made(&e);
	for (int i = 0; i < SLICES; i += 40)
		expect(e.c, ino[i], data[i], BS);
	ASSERT_EQ(gets_made(&e) - before, (SLICES + 39) / 40);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.packs_fetched_whole, 0);
	env_done(&e);
}

struct letter_reader {
	struct cache *c;
	const uint64_t *ino;
	unsigned char (*data)[LETTER];
	int first, step, bad;
};

static void *read_letters(void *arg)
{
	struct letter_reader *r = arg;
	unsigned char buf[LETTER];
	size_t got;

	for (int i = r->first; i < LETTERS; i += r->step)
		if (try_get(r->c, r->ino[i], 0, buf, LETTER, &got) ||
		    got != LETTER || memcmp(buf, r->data[i], LETTER))
			r->bad++;
	return NULL;
}

/* Readers of a pack being got wait for that get rather than ask the
 * regions too: one get of the pack, whatever the readers. */
TEST(readers_of_one_pack_at_once_wait_for_its_one_get)
{
	static unsigned char data[LETTERS][LETTER];
	struct letter_reader r[4];
	struct cache_counters k;
	uint64_t ino[LETTERS];
	unsigned long before;
	pthread_t t[4];
	struct env e;

	env_init(&e, 1ull << 30);
	write_letters(&e, ino, data);
	cold(&e, 0);
	before = gets_made(&e);
	expect(e.c, ino[0], data[0], LETTER);	/* the first: a frame */
	slow_gets(&e, SLOW_MS);
	r[0] = (struct letter_reader){ e.c, ino, data, 1, LETTERS, 0 };
	ASSERT_EQ(pthread_create(&t[0], NULL, read_letters, &r[0]), 0);
	wait_for_get(&e);		/* the pack's get is under way */
	for (int i = 1; i < 4; i++) {
		r[i] = (struct letter_reader){ e.c, ino, data, 1 + i, 3, 0 };
		ASSERT_EQ(pthread_create(&t[i], NULL, read_letters, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ASSERT_EQ(r[i].bad, 0);
	}
	slow_gets(&e, 0);
	cache_counters(e.c, &k);
	ASSERT_EQ(gets_made(&e) - before, 2);
	ASSERT_EQ(k.packs_fetched_whole, 1);
	ASSERT_EQ(k.frames_from_memory, LETTERS - 2);
	env_done(&e);
}

/*
 * Once the first letter is read, region a's copies are damaged: the
 * fault backend flips the byte in the middle of whatever a get returns.
 * The pack got whole from a (the healthy region first) for the second
 * letter is kept, the flip being past that letter's frame; the letter
 * whose frame holds the flip fails its check from memory, the pack is
 * dropped, that letter's frame fails in a too and comes from b, and the
 * next letter gets the pack whole again, from b now.  Every letter reads
 * back right, and a is recorded for repair.
 */
TEST(a_damaged_pack_in_memory_is_dropped_and_the_block_got_again)
{
	static unsigned char data[LETTERS][LETTER];
	struct backend_fault f = { 0 };
	struct cache_counters k;
	uint64_t ino[LETTERS];
	struct env e;

	env_init(&e, 1ull << 30);
	write_letters(&e, ino, data);
	cold(&e, 0);
	expect(e.c, ino[0], data[0], LETTER);
	f.corrupt_get = 1;
	backend_fault_set(e.fault[0], &f);
	for (int i = 1; i < LETTERS; i++)
		expect(e.c, ino[i], data[i], LETTER);
	cache_counters(e.c, &k);
	ASSERT_EQ(k.packs_fetched_whole, 2);
	/* not from memory: the first two, the damaged one, the reload's */
	ASSERT_EQ(k.frames_from_memory, LETTERS - 4);
	expect_a_recorded_bad(&e);
	env_done(&e);
}

TEST(region_call_with_a_lock_held_stops_a_debug_build)
{
	struct backend *dir;
	uint64_t size;
	int status;
	pid_t pid;

#ifdef NDEBUG
	TEST_SKIP("release build: locks are not counted");
#endif
	ASSERT_OK(backend_dir_open(&dir, test_tmpdir()));
	ASSERT_EQ(phi_locks_held(), 0);
	ASSERT_EQ(backend_head(dir, "none", &size), -ENOENT);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
		phi_lock_note(1);
		backend_head(dir, "none", &size);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(WTERMSIG(status), SIGABRT);
	phi_lock_note(1);
	phi_lock_note(-1);
	ASSERT_EQ(backend_head(dir, "none", &size), -ENOENT);
	backend_close(dir);
}

TEST_MAIN(
	TEST_ENTRY(stat_and_resident_read_pass_a_fetch),
	TEST_ENTRY(whole_block_write_during_a_fetch_wins),
	TEST_ENTRY(truncate_during_a_fetch_leaves_no_stale_block),
	TEST_ENTRY(second_reader_waits_for_the_fetch_under_way),
	TEST_ENTRY(sequential_read_gets_whole_packs_ahead),
	TEST_ENTRY(blocks_a_pack_each_read_in_order_come_alone),
	TEST_ENTRY(a_pack_too_large_for_memory_is_tried_whole_once),
	TEST_ENTRY(small_files_read_cold_share_a_get_of_their_pack),
	TEST_ENTRY(a_series_read_in_order_gets_each_next_pack_whole_at_once),
	TEST_ENTRY(readers_of_one_pack_at_once_wait_for_its_one_get),
	TEST_ENTRY(a_damaged_pack_in_memory_is_dropped_and_the_block_got_again),
	TEST_ENTRY(region_call_with_a_lock_held_stops_a_debug_build),
)
