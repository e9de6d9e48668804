/*
 * s3_xml.c - reading the XML an S3 server sends back, with expat.
 *
 * One small walker (walk_parse()) turns a document into two events:
 * "element at PATH opened" and "element at PATH closed with TEXT", PATH
 * being the names from the root joined by '/'
 * ("ListBucketResult/Contents/Key").  Each reply kind is a pair of
 * handlers over those events plus a check of what was required.
 *
 * The server is not trusted to send sane XML: a document type
 * declaration (and so any entity) stops the parse, nesting is limited to
 * WALK_DEPTH, an element's text to WALK_TEXT_MAX bytes, and any expat
 * error, truncation included, is -EBADMSG.  Namespaces are not
 * processed: S3 puts its elements in a default namespace, so the names
 * arrive bare.
 */
#include "s3_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#define WALK_DEPTH 16
#define WALK_PATH_MAX 256
#define WALK_TEXT_MAX 4096

struct walk;

typedef int walk_start_fn(struct walk *w, const char *path);
typedef int walk_end_fn(struct walk *w, const char *path, const char *text);

struct walk {
	XML_Parser parser;
	char path[WALK_PATH_MAX];
	size_t plen[WALK_DEPTH + 1];	/* path length at each depth */
	int depth;
	struct buf text;		/* text of the element being read */
	walk_start_fn *start;		/* may be NULL */
	walk_end_fn *end;
	void *ctx;
	int rc;				/* first failure, stops the parse */
};

static void walk_fail(struct walk *w, int rc)
{
	if (w->rc == 0)
		w->rc = rc;
	XML_StopParser(w->parser, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name,
			     const XML_Char **attrs)
{
	struct walk *w = ud;
	size_t n = strlen(name), at = w->plen[w->depth];
	int rc;

	(void)attrs;
	if (w->rc)
		return;
	if (w->depth >= WALK_DEPTH || at + n + 2 > sizeof(w->path)) {
		walk_fail(w, -EBADMSG);
		return;
	}
	if (at)
		w->path[at++] = '/';
	memcpy(w->path + at, name, n + 1);
	w->plen[++w->depth] = at + n;
	buf_reset(&w->text);
	rc = w->start ? w->start(w, w->path) : 0;
	if (rc)
		walk_fail(w, rc);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct walk *w = ud;
	int rc;

	(void)name;	/* expat has checked that it matches the start */
	if (w->rc)
		return;
	rc = w->end(w, w->path, buf_data(&w->text));
	buf_reset(&w->text);
	w->path[w->plen[--w->depth]] = '\0';
	if (rc)
		walk_fail(w, rc);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct walk *w = ud;
	int rc;

	if (w->rc)
		return;
	rc = buf_add(&w->text, s, (size_t)len);
	if (rc)
		walk_fail(w, rc == -E2BIG ? -EBADMSG : rc);
}

/* No DTDs: they are how entity-expansion attacks start, and S3 never
 * sends one. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name,
			       const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	walk_fail(ud, -EBADMSG);
}

static int walk_parse(const char *xml, size_t len, walk_start_fn *start,
		      walk_end_fn *end, void *ctx)
{
	struct walk w = { .start = start, .end = end, .ctx = ctx };
	enum XML_Status st;

	if (len > INT_MAX)
		return -EBADMSG;
	w.parser = XML_ParserCreate("UTF-8");
	if (!w.parser)
		return -ENOMEM;
	buf_init(&w.text, WALK_TEXT_MAX);
	XML_SetUserData(w.parser, &w);
	XML_SetElementHandler(w.parser, on_start, on_end);
	XML_SetCharacterDataHandler(w.parser, on_text);
	XML_SetStartDoctypeDeclHandler(w.parser, on_doctype);
	st = XML_Parse(w.parser, xml, (int)len, XML_TRUE);
	if (st != XML_STATUS_OK && w.rc == 0)
		w.rc = XML_GetErrorCode(w.parser) == XML_ERROR_NO_MEMORY ?
			-ENOMEM : -EBADMSG;
	XML_ParserFree(w.parser);
	buf_release(&w.text);
	return w.rc;
}

/* Copy text into a fixed field; text that does not fit is cut. */
static void set_field(char *dst, size_t size, const char *text)
{
	snprintf(dst, size, "%s", text);
}

/* A decimal uint64 with optional surrounding whitespace, nothing else. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	bool digits = false;

	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
		digits = true;
	}
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	if (!digits || *s)
		return -EBADMSG;
	*out = v;
	return 0;
}

/* "true"/"false", as S3 writes them, with optional whitespace. */
static int parse_bool(const char *s, bool *out)
{
	char word[8];

	if (sscanf(s, " %7s", word) != 1)
		return -EBADMSG;
	if (strcmp(word, "true") == 0)
		*out = true;
	else if (strcmp(word, "false") == 0)
		*out = false;
	else
		return -EBADMSG;
	return 0;
}

/* ---- ListObjectsV2 -------------------------------------------------- */

struct list_ctx {
	s3_xml_key_fn *fn;
	void *ctx;
	struct s3_list_page *page;
	char key[1100];		/* S3 keys are at most 1024 bytes */
	uint64_t size;
	bool have_key, have_size, seen_truncated;
};

static int list_start(struct walk *w, const char *path)
{
	struct list_ctx *c = w->ctx;

	if (strcmp(path, "ListBucketResult/Contents") == 0)
		c->have_key = c->have_size = false;
	return 0;
}

static int list_contents_end(struct list_ctx *c)
{
	int rc;

	if (!c->have_key || !c->have_size)
		return -EBADMSG;
	c->page->nkeys++;
	rc = c->fn ? c->fn(c->ctx, c->key, c->size) : 0;
	return rc;
}

static int list_end(struct walk *w, const char *path, const char *text)
{
	struct list_ctx *c = w->ctx;

	if (strncmp(path, "ListBucketResult", 16) != 0)
		return -EBADMSG;
	path += 16;
	if (strcmp(path, "/Contents/Key") == 0) {
		if (strlen(text) >= sizeof(c->key) || !text[0])
			return -EBADMSG;
		strcpy(c->key, text);
		c->have_key = true;
	} else if (strcmp(path, "/Contents/Size") == 0) {
		c->have_size = true;
		return parse_u64(text, &c->size);
	} else if (strcmp(path, "/Contents") == 0) {
		return list_contents_end(c);
	} else if (strcmp(path, "/IsTruncated") == 0) {
		c->seen_truncated = true;
		return parse_bool(text, &c->page->truncated);
	} else if (strcmp(path, "/NextContinuationToken") == 0) {
		free(c->page->next_token);
		c->page->next_token = strdup(text);
		if (!c->page->next_token)
			return -ENOMEM;
	}
	return 0;
}

int backend_s3_xml_list(const char *xml, size_t len, s3_xml_key_fn *fn,
			void *ctx, struct s3_list_page *page)
{
	struct list_ctx *c;
	int rc;

	memset(page, 0, sizeof(*page));
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->ctx = ctx;
	c->page = page;
	rc = walk_parse(xml, len, list_start, list_end, c);
	if (rc == 0 && !c->seen_truncated)
		rc = -EBADMSG;	/* not a list (or not one we understand) */
	if (rc == 0 && page->truncated &&
	    (!page->next_token || !page->next_token[0]))
		rc = -EBADMSG;
	free(c);
	return rc;
}

void backend_s3_list_page_release(struct s3_list_page *page)
{
	free(page->next_token);
	page->next_token = NULL;
}

/* ---- Error ---------------------------------------------------------- */

/* The region in "...; the region 'us-east-1' is wrong; expecting
 * 'eu-west-1'", for servers that send no <Region>. */
static void region_from_message(struct s3_xml_error *err)
{
	const char *p = strstr(err->message, "expecting '");
	const char *q;

	if (!p)
		return;
	p += strlen("expecting '");
	q = strchr(p, '\'');
	if (q && (size_t)(q - p) < sizeof(err->region)) {
		memcpy(err->region, p, (size_t)(q - p));
		err->region[q - p] = '\0';
	}
}

static void error_field(struct s3_xml_error *err, const char *path,
			const char *text)
{
	if (strcmp(path, "Error/Code") == 0)
		set_field(err->code, sizeof(err->code), text);
	else if (strcmp(path, "Error/Message") == 0)
		set_field(err->message, sizeof(err->message), text);
	else if (strcmp(path, "Error/Region") == 0)
		set_field(err->region, sizeof(err->region), text);
	else if (strcmp(path, "Error/BucketName") == 0)
		set_field(err->bucket, sizeof(err->bucket), text);
}

static int error_finish(struct s3_xml_error *err, const char *root, int rc)
{
	if (rc)
		return rc;
	if (strcmp(root, "Error") != 0 || !err->code[0])
		return -EBADMSG;
	if (!err->region[0])
		region_from_message(err);
	return 0;
}

/* An <Error>, or (for CompleteMultipartUpload) another root: the root
 * element's name is kept to tell which. */
struct error_ctx {
	struct s3_xml_error *err;
	char root[64];
};

static int error_doc_start(struct walk *w, const char *path)
{
	struct error_ctx *c = w->ctx;

	if (!strchr(path, '/'))
		set_field(c->root, sizeof(c->root), path);
	return 0;
}

static int error_doc_end(struct walk *w, const char *path, const char *text)
{
	struct error_ctx *c = w->ctx;

	error_field(c->err, path, text);
	return 0;
}

int backend_s3_xml_error(const char *xml, size_t len, struct s3_xml_error *err)
{
	struct error_ctx c = { .err = err };
	int rc;

	memset(err, 0, sizeof(*err));
	rc = walk_parse(xml, len, error_doc_start, error_doc_end, &c);
	return error_finish(err, c.root, rc);
}

/* ---- multipart ------------------------------------------------------ */

struct upload_ctx {
	char *id;
	bool root_ok;
};

static int upload_start(struct walk *w, const char *path)
{
	struct upload_ctx *c = w->ctx;

	if (strcmp(path, "InitiateMultipartUploadResult") == 0)
		c->root_ok = true;
	return 0;
}

static int upload_end(struct walk *w, const char *path, const char *text)
{
	struct upload_ctx *c = w->ctx;

	if (strcmp(path, "InitiateMultipartUploadResult/UploadId") != 0)
		return 0;
	free(c->id);
	c->id = strdup(text);
	return c->id ? 0 : -ENOMEM;
}

int backend_s3_xml_upload_id(const char *xml, size_t len, char **id)
{
	struct upload_ctx c = { 0 };
	int rc;

	*id = NULL;
	rc = walk_parse(xml, len, upload_start, upload_end, &c);
	if (rc == 0 && (!c.root_ok || !c.id || !c.id[0]))
		rc = -EBADMSG;
	if (rc == 0)
		*id = c.id;
	else
		free(c.id);
	return rc;
}

int backend_s3_xml_complete(const char *xml, size_t len,
			    struct s3_xml_error *err)
{
	struct error_ctx c = { .err = err };
	int rc;

	memset(err, 0, sizeof(*err));
	rc = walk_parse(xml, len, error_doc_start, error_doc_end, &c);
	if (rc)
		return rc;
	if (strcmp(c.root, "CompleteMultipartUploadResult") == 0)
		return 0;
	rc = error_finish(err, c.root, 0);
	return rc ? rc : 1;
}

/* ---- DeleteResult --------------------------------------------------- */

struct del_ctx {
	s3_xml_del_fn *fn;
	void *ctx;
	size_t deleted;
	bool root_ok;
	char key[1100];
	char code[64];
};

static int del_start(struct walk *w, const char *path)
{
	struct del_ctx *c = w->ctx;

	if (strcmp(path, "DeleteResult") == 0)
		c->root_ok = true;
	else if (strcmp(path, "DeleteResult/Error") == 0)
		c->key[0] = c->code[0] = '\0';
	return 0;
}

static int del_end(struct walk *w, const char *path, const char *text)
{
	struct del_ctx *c = w->ctx;

	if (strcmp(path, "DeleteResult/Deleted") == 0)
		c->deleted++;
	else if (strcmp(path, "DeleteResult/Error/Key") == 0)
		set_field(c->key, sizeof(c->key), text);
	else if (strcmp(path, "DeleteResult/Error/Code") == 0)
		set_field(c->code, sizeof(c->code), text);
	else if (strcmp(path, "DeleteResult/Error") == 0)
		return c->fn ? c->fn(c->ctx, c->key, c->code) : 0;
	return 0;
}

int backend_s3_xml_delete_result(const char *xml, size_t len, s3_xml_del_fn *fn,
				 void *ctx, size_t *ndeleted)
{
	struct del_ctx *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->ctx = ctx;
	rc = walk_parse(xml, len, del_start, del_end, c);
	if (rc == 0 && !c->root_ok)
		rc = -EBADMSG;
	if (rc == 0 && ndeleted)
		*ndeleted = c->deleted;
	free(c);
	return rc;
}
