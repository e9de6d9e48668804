/*
 * buf.h - one growable byte buffer with a size cap.
 *
 * A struct buf is embedded by its owner (init/release), grows on demand
 * and refuses to hold more than the cap given to buf_init(): growth past
 * it fails with -E2BIG, so a peer that sends an endless object cannot
 * make us allocate without bound.  The contents are always followed by
 * one NUL byte (not counted in the length, not subject to the cap), so a
 * buffer that holds text can be read as a C string.
 *
 * Callers never touch the fields; they are here only so that the struct
 * can live on the stack or inside another struct.
 *
 * Thread safety: none; a buffer belongs to one thread at a time.
 */
#ifndef PHI_BUF_H
#define PHI_BUF_H

#include <stddef.h>

struct buf {
	unsigned char *data_;	/* NULL until the first growth */
	size_t len_;		/* bytes of contents */
	size_t room_;		/* bytes of contents that fit without growing */
	size_t max_;		/* the cap on len_ */
};

/* An empty buffer that will never hold more than max bytes.  Allocates
 * nothing.  Pass SIZE_MAX for "no cap beyond what memory allows". */
void buf_init(struct buf *b, size_t max);

/* Free the memory.  b is empty afterwards and may be used again with the
 * same cap, or re-initialised. */
void buf_release(struct buf *b);

/* Drop the contents, keep the memory. */
void buf_reset(struct buf *b);

/*
 * Make room for n more bytes after the contents.  Returns 0, -E2BIG if
 * the contents would then exceed the cap, or -ENOMEM.  On failure b is
 * unchanged.
 */
int buf_reserve(struct buf *b, size_t n);

/* Append n bytes from data.  Returns 0, -E2BIG or -ENOMEM; on failure
 * b is unchanged. */
int buf_add(struct buf *b, const void *data, size_t n);

/*
 * The contents, followed by a NUL byte.  Never NULL: an empty buffer gives
 * "".  Valid until the next call that grows, releases or sets the length
 * of b.
 */
const void *buf_data(const struct buf *b);

/*
 * The contents, writable in place, and the room reserved after them: a
 * caller may write up to the number of bytes it last reserved at
 * buf_mut(b) + buf_len(b) and then commit them with buf_setlen().  NULL
 * while nothing has ever been reserved.  Same lifetime as buf_data().
 */
void *buf_mut(struct buf *b);

/* The number of bytes of contents (the NUL after them not counted). */
size_t buf_len(const struct buf *b);

/* Set the length to len: shorter drops the tail, longer commits bytes
 * written into reserved room.  len beyond the reserved room is a bug
 * (assert). */
void buf_setlen(struct buf *b, size_t len);

#endif
