/*
 * buf.c - the growable byte buffer.
 *
 * Invariants: len_ <= room_ <= max_; when data_ is not NULL it holds
 * room_ + 1 bytes and data_[len_] == '\0'.  Growth doubles, so appending
 * byte by byte stays linear, but never allocates past the cap.
 */
#include "buf.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Keeps room_ + 1 (the NUL) and the doubling below from overflowing. */
#define BUF_HARD_MAX (SIZE_MAX / 2 - 1)

void buf_init(struct buf *b, size_t max)
{
	b->data_ = NULL;
	b->len_ = 0;
	b->room_ = 0;
	b->max_ = max < BUF_HARD_MAX ? max : BUF_HARD_MAX;
}

void buf_release(struct buf *b)
{
	free(b->data_);
	buf_init(b, b->max_);
}

void buf_reset(struct buf *b)
{
	buf_setlen(b, 0);
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t need, room;
	unsigned char *p;

	if (n > b->max_ - b->len_)
		return -E2BIG;
	need = b->len_ + n;
	if (need <= b->room_ && b->data_)
		return 0;
	room = b->room_ < 32 ? 64 : b->room_ * 2;
	if (room < need)
		room = need;
	if (room > b->max_)
		room = b->max_;
	p = realloc(b->data_, room + 1);
	if (!p)
		return -ENOMEM;
	p[b->len_] = '\0';
	b->data_ = p;
	b->room_ = room;
	return 0;
}

int buf_add(struct buf *b, const void *data, size_t n)
{
	int rc = buf_reserve(b, n);

	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data_ + b->len_, data, n);
	b->len_ += n;
	b->data_[b->len_] = '\0';
	return 0;
}

const void *buf_data(const struct buf *b)
{
	return b->data_ ? (const void *)b->data_ : "";
}

void *buf_mut(struct buf *b)
{
	return b->data_;
}

size_t buf_len(const struct buf *b)
{
	return b->len_;
}

void buf_setlen(struct buf *b, size_t len)
{
	assert(len <= b->room_);
	if (!b->data_)
		return;		/* len is 0: nothing was ever reserved */
	b->len_ = len;
	b->data_[len] = '\0';
}
