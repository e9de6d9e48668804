/*
 * test_s3.c - the s3 driver's pieces, white-box through backend/s3_int.h
 * (signing, encoding, XML, the error table), and its public face through
 * backend.h (credentials, endpoint checks, messages, and requests to a
 * small scripted HTTP server on 127.0.0.1 for retries and replies that a
 * real server will not produce on demand).
 *
 * The SigV4 vectors are AWS's published ones: the "get-vanilla" family of
 * the Signature Version 4 test suite (credentials AKIDEXAMPLE, service
 * "service") and the S3 examples of "Signature Calculations for the
 * Authorization Header" (AKIAIOSFODNN7EXAMPLE, examplebucket).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "phi.h"
#include "s3_int.h"
#include "test.h"

#define EMPTY_SHA \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- helpers -------------------------------------------------------- */

static const char *encoded(const char *s, bool keep_slash)
{
	static char out[512];
	struct buf b;

	buf_init(&b, SIZE_MAX);
	ASSERT_OK(backend_s3_uri_encode(&b, s, keep_slash));
	snprintf(out, sizeof(out), "%s", (const char *)buf_data(&b));
	buf_release(&b);
	return out;
}

struct signed_parts {
	char creq[2048];
	char sts[512];
	char sig[S3_SHA256_HEX];
	char auth[512];
};

static void sign_all(const struct s3_sign_input *in, const char *ak,
		     const char *sk, struct signed_parts *out)
{
	struct buf creq, sts, auth;
	unsigned char key[32];

	buf_init(&creq, SIZE_MAX);
	buf_init(&sts, SIZE_MAX);
	buf_init(&auth, SIZE_MAX);
	ASSERT_OK(backend_s3_canonical_request(&creq, NULL, in));
	ASSERT_OK(backend_s3_string_to_sign(&sts, in, buf_data(&creq)));
	backend_s3_signing_key(sk, in->amz_date, in->region, in->service, key);
	backend_s3_signature(key, buf_data(&sts), out->sig);
	ASSERT_OK(backend_s3_authorization(&auth, in, ak, sk));
	snprintf(out->creq, sizeof(out->creq), "%s",
		 (const char *)buf_data(&creq));
	snprintf(out->sts, sizeof(out->sts), "%s",
		 (const char *)buf_data(&sts));
	snprintf(out->auth, sizeof(out->auth), "%s",
		 (const char *)buf_data(&auth));
	buf_release(&creq);
	buf_release(&sts);
	buf_release(&auth);
}

/* ---- hashing and encoding ------------------------------------------- */

TEST(hashes)
{
	char h[S3_SHA256_HEX], m[S3_MD5_B64];

	backend_s3_sha256_hex("", 0, h);
	ASSERT_STREQ(h, EMPTY_SHA);
	backend_s3_sha256_hex("Welcome to Amazon S3.", 21, h);
	ASSERT_STREQ(h, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e"
		     "42034a8b803f8b072");
	backend_s3_md5_base64("", 0, m);
	ASSERT_STREQ(m, "1B2M2Y8AsgTpgAmY7PhCfg==");
}

TEST(uri_encode_keys)
{
	ASSERT_STREQ(encoded("a b", true), "a%20b");
	ASSERT_STREQ(encoded("a+b", true), "a%2Bb");
	ASSERT_STREQ(encoded("a~b_c-d.e", true), "a~b_c-d.e");
	ASSERT_STREQ(encoded("dir/sub/obj", true), "dir/sub/obj");
	ASSERT_STREQ(encoded("dir/sub/obj", false), "dir%2Fsub%2Fobj");
	ASSERT_STREQ(encoded("test$file.text", true), "test%24file.text");
	/* UTF-8 bytes each encoded, uppercase hex */
	ASSERT_STREQ(encoded("\xc3\xbc\xe2\x82\xac", true),
		     "%C3%BC%E2%82%AC");
	ASSERT_STREQ(encoded("*=&?%#", true), "%2A%3D%26%3F%25%23");
	ASSERT_STREQ(encoded("", true), "");
}

TEST(query_string_sorted_and_encoded)
{
	const struct s3_param p[] = {
		{ "prefix", "clinic/a b" },
		{ "list-type", "2" },
		{ "continuation-token", "1/x+y=" },
		{ "max-keys", "1000" },
	};
	const struct s3_param up[] = { { "uploads", NULL } };
	const struct s3_param part[] = { { "uploadId", "abc" },
					 { "partNumber", "7" } };
	struct buf b;

	buf_init(&b, SIZE_MAX);
	ASSERT_OK(backend_s3_query_string(&b, p, 4));
	ASSERT_STREQ(buf_data(&b), "continuation-token=1%2Fx%2By%3D&"
		     "list-type=2&max-keys=1000&prefix=clinic%2Fa%20b");
	buf_reset(&b);
	ASSERT_OK(backend_s3_query_string(&b, up, 1));
	ASSERT_STREQ(buf_data(&b), "uploads=");
	buf_reset(&b);
	ASSERT_OK(backend_s3_query_string(&b, part, 2));
	ASSERT_STREQ(buf_data(&b), "partNumber=7&uploadId=abc");
	buf_reset(&b);
	ASSERT_OK(backend_s3_query_string(&b, NULL, 0));
	ASSERT_STREQ(buf_data(&b), "");
	buf_release(&b);
}

/* ---- Signature Version 4: the AWS test suite ------------------------ */

#define SUITE_AK "AKIDEXAMPLE"
#define SUITE_SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static const struct s3_header suite_headers[] = {
	{ "Host", "example.amazonaws.com" },
	{ "X-Amz-Date", "20150830T123600Z" },
};

static struct s3_sign_input suite_input(const char *method, const char *q)
{
	return (struct s3_sign_input){
		.method = method, .uri = "/", .query = q,
		.headers = suite_headers, .nheaders = 2,
		.payload_hash = EMPTY_SHA, .amz_date = "20150830T123600Z",
		.region = "us-east-1", .service = "service",
	};
}

TEST(sigv4_get_vanilla)
{
	struct s3_sign_input in = suite_input("GET", "");
	struct signed_parts sp;

	sign_all(&in, SUITE_AK, SUITE_SK, &sp);
	ASSERT_STREQ(sp.creq, "GET\n/\n\n"
		     "host:example.amazonaws.com\n"
		     "x-amz-date:20150830T123600Z\n\n"
		     "host;x-amz-date\n" EMPTY_SHA);
	ASSERT_STREQ(sp.sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n"
		     "20150830/us-east-1/service/aws4_request\n"
		     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c2"
		     "5292927e63");
	ASSERT_STREQ(sp.sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a226095"
		     "6d9b8aae1d763fbf31");
	ASSERT_STREQ(sp.auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
		     "20150830/us-east-1/service/aws4_request,SignedHeaders="
		     "host;x-amz-date,Signature=5fa00fa31553b73ebf1942676e86"
		     "291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(sigv4_post_vanilla)
{
	struct s3_sign_input in = suite_input("POST", "");
	struct signed_parts sp;

	sign_all(&in, SUITE_AK, SUITE_SK, &sp);
	ASSERT_STREQ(sp.sig, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e"
		     "37dddb68e92efbe5d6b");
}

TEST(sigv4_get_vanilla_query_order)
{
	const struct s3_param p[] = { { "Param2", "value2" },
				      { "Param1", "value1" } };
	struct signed_parts sp;
	struct s3_sign_input in;
	struct buf q;

	buf_init(&q, SIZE_MAX);
	ASSERT_OK(backend_s3_query_string(&q, p, 2));
	ASSERT_STREQ(buf_data(&q), "Param1=value1&Param2=value2");
	in = suite_input("GET", buf_data(&q));
	sign_all(&in, SUITE_AK, SUITE_SK, &sp);
	ASSERT_STREQ(sp.sig, "b97d918cfa904a5beff61c982a1b6f458b799221646efd"
		     "99d3219ec94cdf2500");
	buf_release(&q);
}

/* The key derivation example of the SigV4 documentation. */
TEST(sigv4_signing_key)
{
	unsigned char key[32];
	char hex[65];

	backend_s3_signing_key(SUITE_SK, "20150830T123600Z", "us-east-1",
			       "iam", key);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	ASSERT_STREQ(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86"
		     "da6ed3c154a4b9");
}

/* ---- Signature Version 4: the S3 examples --------------------------- */

#define EX_AK "AKIAIOSFODNN7EXAMPLE"
#define EX_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EX_HOST "examplebucket.s3.amazonaws.com"
#define EX_DATE "20130524T000000Z"

TEST(sigv4_s3_get_object)
{
	const struct s3_header h[] = {
		{ "x-amz-date", EX_DATE },
		{ "Range", "bytes=0-9" },
		{ "host", EX_HOST },
		{ "x-amz-content-sha256", EMPTY_SHA },
	};
	struct s3_sign_input in = {
		.method = "GET", .uri = "/test.txt", .query = "",
		.headers = h, .nheaders = 4, .payload_hash = EMPTY_SHA,
		.amz_date = EX_DATE, .region = "us-east-1", .service = "s3",
	};
	struct signed_parts sp;

	sign_all(&in, EX_AK, EX_SK, &sp);
	ASSERT_STREQ(sp.creq, "GET\n/test.txt\n\n"
		     "host:examplebucket.s3.amazonaws.com\n"
		     "range:bytes=0-9\n"
		     "x-amz-content-sha256:" EMPTY_SHA "\n"
		     "x-amz-date:20130524T000000Z\n\n"
		     "host;range;x-amz-content-sha256;x-amz-date\n"
		     EMPTY_SHA);
	ASSERT_STREQ(sp.sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
		     "20130524/us-east-1/s3/aws4_request\n"
		     "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc4"
		     "3964946972");
	ASSERT_STREQ(sp.auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE"
		     "/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;"
		     "range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb8"
		     "7c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb4"
		     "1");
}

TEST(sigv4_s3_put_object)
{
	static const char body[] = "Welcome to Amazon S3.";
	char sha[S3_SHA256_HEX];
	struct s3_header h[5] = {
		{ "Host", EX_HOST },
		{ "Date", "Fri, 24 May 2013 00:00:00 GMT" },
		{ "x-amz-date", EX_DATE },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
		{ "x-amz-content-sha256", sha },
	};
	struct s3_sign_input in = {
		.method = "PUT", .query = "", .headers = h, .nheaders = 5,
		.payload_hash = sha, .amz_date = EX_DATE,
		.region = "us-east-1", .service = "s3",
	};
	struct signed_parts sp;
	struct buf uri;

	buf_init(&uri, SIZE_MAX);
	ASSERT_OK(buf_add(&uri, "/", 1));
	ASSERT_OK(backend_s3_uri_encode(&uri, "test$file.text", true));
	in.uri = buf_data(&uri);
	backend_s3_sha256_hex(body, strlen(body), sha);
	sign_all(&in, EX_AK, EX_SK, &sp);
	ASSERT_STREQ(sp.creq, "PUT\n/test%24file.text\n\n"
		     "date:Fri, 24 May 2013 00:00:00 GMT\n"
		     "host:examplebucket.s3.amazonaws.com\n"
		     "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba"
		     "87d2b6b4b4e99e42034a8b803f8b072\n"
		     "x-amz-date:20130524T000000Z\n"
		     "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
		     "date;host;x-amz-content-sha256;x-amz-date;"
		     "x-amz-storage-class\n"
		     "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b"
		     "803f8b072");
	ASSERT_STREQ(sp.sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
		     "20130524/us-east-1/s3/aws4_request\n"
		     "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b41"
		     "58342019d");
	ASSERT_STREQ(sp.sig, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a"
		     "1b5971af0ece108bd");
	buf_release(&uri);
}

static void s3_bucket_example(const struct s3_param *p, size_t n,
			      const char *want_query, const char *want_sig)
{
	const struct s3_header h[] = {
		{ "Host", EX_HOST },
		{ "x-amz-date", EX_DATE },
		{ "x-amz-content-sha256", EMPTY_SHA },
	};
	struct s3_sign_input in = {
		.method = "GET", .uri = "/", .headers = h, .nheaders = 3,
		.payload_hash = EMPTY_SHA, .amz_date = EX_DATE,
		.region = "us-east-1", .service = "s3",
	};
	struct signed_parts sp;
	struct buf q;

	buf_init(&q, SIZE_MAX);
	ASSERT_OK(backend_s3_query_string(&q, p, n));
	ASSERT_STREQ(buf_data(&q), want_query);
	in.query = buf_data(&q);
	sign_all(&in, EX_AK, EX_SK, &sp);
	ASSERT_STREQ(sp.sig, want_sig);
	buf_release(&q);
}

TEST(sigv4_s3_get_lifecycle)
{
	const struct s3_param p[] = { { "lifecycle", NULL } };

	s3_bucket_example(p, 1, "lifecycle=", "fea454ca298b7da1c68078a5d1bdbf"
			  "bbe0d65c699e0f91ac7a200a0136783543");
}

TEST(sigv4_s3_list_objects)
{
	const struct s3_param p[] = { { "prefix", "J" }, { "max-keys", "2" } };

	s3_bucket_example(p, 2, "max-keys=2&prefix=J", "34b48302e7b5fa45bde80"
			  "84f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(sigv4_s3_presigned_get)
{
	const struct s3_header h[] = { { "host", EX_HOST } };
	struct s3_sign_input in = {
		.method = "GET", .uri = "/test.txt", .query = "",
		.headers = h, .nheaders = 1, .amz_date = EX_DATE,
		.region = "us-east-1", .service = "s3",
	};
	struct buf url;

	buf_init(&url, SIZE_MAX);
	ASSERT_OK(backend_s3_presign(&url, "https://" EX_HOST, &in, 86400,
				     EX_AK, EX_SK));
	ASSERT_STREQ(buf_data(&url), "https://examplebucket.s3.amazonaws.com"
		     "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
		     "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
		     "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		     "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&"
		     "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330d"
		     "a4c265957d157751f604d404");
	buf_release(&url);
}

TEST(sigv4_header_values_trimmed)
{
	const struct s3_header h[] = {
		{ "host", "h" },
		{ "X-Amz-Meta-A", "  a   b \t c  " },
		{ "x-amz-date", EX_DATE },
	};
	struct s3_sign_input in = {
		.method = "GET", .uri = "/", .query = "", .headers = h,
		.nheaders = 3, .payload_hash = EMPTY_SHA, .amz_date = EX_DATE,
		.region = "r", .service = "s3",
	};
	struct buf creq, sh;

	buf_init(&creq, SIZE_MAX);
	buf_init(&sh, SIZE_MAX);
	ASSERT_OK(backend_s3_canonical_request(&creq, &sh, &in));
	ASSERT_TRUE(strstr(buf_data(&creq), "\nx-amz-meta-a:a b c\n") != NULL);
	ASSERT_STREQ(buf_data(&sh), "host;x-amz-date;x-amz-meta-a");
	buf_release(&creq);
	buf_release(&sh);
}

TEST(amz_date_format)
{
	char d[17];

	backend_s3_amz_date(1369353600, d);	/* 2013-05-24 00:00:00 UTC */
	ASSERT_STREQ(d, "20130524T000000Z");
}

/* ---- XML ------------------------------------------------------------ */

struct seen {
	char keys[8][64];
	uint64_t sizes[8];
	int n;
};

static int see_key(void *ctx, const char *key, uint64_t size)
{
	struct seen *s = ctx;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
		s->sizes[s->n] = size;
	}
	s->n++;
	return 0;
}

static const char list_truncated[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>bkt</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
	"<MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
	"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
	"</NextContinuationToken>\n"
	"  <Contents><Key>p/a&amp;b</Key><LastModified>2009-10-12T17:50:30.000Z"
	"</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;"
	"</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass>"
	"</Contents>\n"
	"  <Contents><Key>p/c</Key><Size>0</Size></Contents>\n"
	"</ListBucketResult>";

TEST(xml_list_with_token)
{
	struct s3_list_page page;
	struct seen s = { 0 };

	ASSERT_OK(backend_s3_xml_list(list_truncated, strlen(list_truncated),
			      see_key, &s, &page));
	ASSERT_EQ(s.n, 2);
	ASSERT_STREQ(s.keys[0], "p/a&b");
	ASSERT_EQ(s.sizes[0], 434234u);
	ASSERT_STREQ(s.keys[1], "p/c");
	ASSERT_EQ(s.sizes[1], 0u);
	ASSERT_TRUE(page.truncated);
	ASSERT_EQ(page.nkeys, 2u);
	ASSERT_STREQ(page.next_token,
		     "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	backend_s3_list_page_release(&page);
	ASSERT_TRUE(page.next_token == NULL);
}

TEST(xml_list_last_page_and_empty)
{
	static const char last[] =
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>x</Key><Size>5</Size></Contents>"
		"</ListBucketResult>";
	static const char empty[] =
		"<?xml version=\"1.0\"?><ListBucketResult xmlns=\"x\">"
		"<Name>b</Name><KeyCount>0</KeyCount>"
		"<IsTruncated>false</IsTruncated></ListBucketResult>";
	struct s3_list_page page;
	struct seen s = { 0 };

	ASSERT_OK(backend_s3_xml_list(last, strlen(last), see_key, &s, &page));
	ASSERT_EQ(s.n, 1);
	ASSERT_TRUE(!page.truncated);
	ASSERT_TRUE(page.next_token == NULL);
	backend_s3_list_page_release(&page);
	s.n = 0;
	ASSERT_OK(backend_s3_xml_list(empty, strlen(empty), see_key, &s,
				      &page));
	ASSERT_EQ(s.n, 0);
	ASSERT_EQ(page.nkeys, 0u);
	backend_s3_list_page_release(&page);
}

static void list_bad(const char *xml)
{
	struct s3_list_page page;
	struct seen s = { 0 };

	ASSERT_ERR(backend_s3_xml_list(xml, strlen(xml), see_key, &s, &page),
		   -EBADMSG);
	backend_s3_list_page_release(&page);
}

TEST(xml_list_malformed)
{
	/* truncated without a token: could never be continued */
	list_bad("<ListBucketResult><IsTruncated>true</IsTruncated>"
		 "</ListBucketResult>");
	list_bad("<ListBucketResult><IsTruncated>maybe</IsTruncated>"
		 "</ListBucketResult>");
	list_bad("<ListBucketResult><IsTruncated>false</IsTruncated>"
		 "<Contents><Key>k</Key><Size>12x</Size></Contents>"
		 "</ListBucketResult>");
	list_bad("<ListBucketResult><IsTruncated>false</IsTruncated>"
		 "<Contents><Key>k</Key></Contents></ListBucketResult>");
	list_bad("<ListBucketResult><IsTruncated>false</IsTruncated>"
		 "<Contents><Key>k</Key><Size>99999999999999999999999</Size>"
		 "</Contents></ListBucketResult>");
	list_bad("<Error><Code>AccessDenied</Code></Error>");
	list_bad("");
	list_bad("not xml at all");
	list_bad("<ListBucketResult><IsTruncated>false</IsTruncated>"
		 "</ListBucketResult><extra/>");
}

/* Every cut of a valid document is refused, and none crashes. */
TEST(xml_list_every_truncation)
{
	size_t n = strlen(list_truncated);

	for (size_t len = 0; len < n; len++) {
		struct s3_list_page page;
		struct seen s = { 0 };
		int rc = backend_s3_xml_list(list_truncated, len, see_key, &s,
					     &page);

		backend_s3_list_page_release(&page);
		if (rc != -EBADMSG)
			test_diag("cut at %zu of %zu", len, n);
		ASSERT_ERR(rc, -EBADMSG);
	}
}

TEST(xml_refuses_dtd_depth_and_size)
{
	static const char laughs[] =
		"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
		"<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>&lol2;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>";
	char deep[1024] = "<ListBucketResult>", big[8192];
	struct s3_xml_error e;

	list_bad(laughs);
	for (int i = 0; i < 40; i++)
		strcat(deep, "<a>");
	list_bad(deep);
	snprintf(big, sizeof(big), "<Error><Code>X</Code><Message>%05000d"
		 "</Message></Error>", 0);
	ASSERT_ERR(backend_s3_xml_error(big, strlen(big), &e), -EBADMSG);
}

static void error_doc(const char *code, const char *extra,
		      struct s3_xml_error *e)
{
	char xml[1024];

	snprintf(xml, sizeof(xml), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		 "\n<Error><Code>%s</Code><Message>m</Message>%s"
		 "<RequestId>4442587FB7D0A2F9</RequestId></Error>", code,
		 extra);
	ASSERT_OK(backend_s3_xml_error(xml, strlen(xml), e));
}

TEST(xml_error_codes)
{
	static const char *const codes[] = {
		"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
		"NoSuchKey", "SlowDown", "RequestTimeTooSkewed",
		"InternalError",
	};
	struct s3_xml_error e;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		error_doc(codes[i], "", &e);
		ASSERT_STREQ(e.code, codes[i]);
		ASSERT_STREQ(e.message, "m");
		ASSERT_STREQ(e.region, "");
	}
	error_doc("NoSuchBucket", "<BucketName>nope</BucketName>", &e);
	ASSERT_STREQ(e.code, "NoSuchBucket");
	ASSERT_STREQ(e.bucket, "nope");
}

TEST(xml_error_wrong_region)
{
	/* AWS: a <Region> element */
	static const char aws[] =
		"<Error><Code>AuthorizationHeaderMalformed</Code><Message>The "
		"authorization header is malformed; the region 'us-east-1' is "
		"wrong; expecting 'eu-west-1'</Message><Region>eu-west-1"
		"</Region></Error>";
	/* a server that only says it in the message */
	static const char words[] =
		"<Error><Code>AuthorizationHeaderMalformed</Code><Message>The "
		"authorization header is malformed; the region 'us-east-1' is "
		"wrong; expecting 'region-b'</Message></Error>";
	struct s3_xml_error e;

	ASSERT_OK(backend_s3_xml_error(aws, strlen(aws), &e));
	ASSERT_STREQ(e.region, "eu-west-1");
	ASSERT_OK(backend_s3_xml_error(words, strlen(words), &e));
	ASSERT_STREQ(e.code, "AuthorizationHeaderMalformed");
	ASSERT_STREQ(e.region, "region-b");
}

TEST(xml_error_malformed)
{
	static const char *const bad[] = {
		"", "<Error>", "<Error><Code>X</Code>",
		"<Error><Message>no code</Message></Error>",
		"<NotError><Code>X</Code></NotError>",
		"<html><body>400 Bad Request</body></html>",
		"<Error><Code>X</Code></Error",
	};
	struct s3_xml_error e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_ERR(backend_s3_xml_error(bad[i], strlen(bad[i]), &e),
			   -EBADMSG);
}

TEST(xml_initiate_multipart)
{
	static const char ok[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws."
		"com/doc/2006-03-01/\"><Bucket>example-bucket</Bucket>"
		"<Key>example-object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpb"
		"mcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
		"</InitiateMultipartUploadResult>";
	static const char none[] = "<InitiateMultipartUploadResult><Bucket>b"
				   "</Bucket></InitiateMultipartUploadResult>";
	static const char other[] = "<X><UploadId>u</UploadId></X>";
	char *id = (char *)1;

	ASSERT_OK(backend_s3_xml_upload_id(ok, strlen(ok), &id));
	ASSERT_STREQ(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIH"
		     "VwbG9hZA");
	free(id);
	ASSERT_ERR(backend_s3_xml_upload_id(none, strlen(none), &id), -EBADMSG);
	ASSERT_TRUE(id == NULL);
	ASSERT_ERR(backend_s3_xml_upload_id(other, strlen(other), &id),
		   -EBADMSG);
	ASSERT_ERR(backend_s3_xml_upload_id(ok, 40, &id), -EBADMSG);
}

TEST(xml_complete_multipart)
{
	static const char ok[] =
		"<CompleteMultipartUploadResult><Location>x</Location>"
		"<Bucket>b</Bucket><Key>k</Key><ETag>\"3858f62230ac3c915f300c6"
		"64312c11f-9\"</ETag></CompleteMultipartUploadResult>";
	static const char err200[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>"
		"InternalError</Code><Message>We encountered an internal error."
		" Please try again.</Message></Error>";
	static const char part[] =
		"<Error><Code>InvalidPart</Code><Message>One or more of the "
		"specified parts could not be found.</Message></Error>";
	struct s3_xml_error e;

	ASSERT_OK(backend_s3_xml_complete(ok, strlen(ok), &e));
	ASSERT_EQ(backend_s3_xml_complete(err200, strlen(err200), &e), 1);
	ASSERT_STREQ(e.code, "InternalError");
	ASSERT_EQ(backend_s3_xml_complete(part, strlen(part), &e), 1);
	ASSERT_STREQ(e.code, "InvalidPart");
	ASSERT_ERR(backend_s3_xml_complete(ok, strlen(ok) - 5, &e), -EBADMSG);
	ASSERT_ERR(backend_s3_xml_complete("<Foo/>", 6, &e), -EBADMSG);
	ASSERT_ERR(backend_s3_xml_complete("", 0, &e), -EBADMSG);
}

struct del_seen {
	int n;
	char key[64], code[64];
};

static int see_del(void *ctx, const char *key, const char *code)
{
	struct del_seen *d = ctx;

	d->n++;
	snprintf(d->key, sizeof(d->key), "%s", key);
	snprintf(d->code, sizeof(d->code), "%s", code);
	return 0;
}

TEST(xml_delete_result)
{
	static const char xml[] =
		"<DeleteResult xmlns=\"x\"><Deleted><Key>a</Key></Deleted>"
		"<Deleted><Key>b</Key></Deleted><Error><Key>c</Key><Code>"
		"AccessDenied</Code><Message>Access Denied</Message></Error>"
		"</DeleteResult>";
	struct del_seen d = { 0 };
	size_t deleted = 0;

	ASSERT_OK(backend_s3_xml_delete_result(xml, strlen(xml), see_del, &d,
				       &deleted));
	ASSERT_EQ(deleted, 2u);
	ASSERT_EQ(d.n, 1);
	ASSERT_STREQ(d.key, "c");
	ASSERT_STREQ(d.code, "AccessDenied");
	ASSERT_OK(backend_s3_xml_delete_result("<DeleteResult/>", 15, see_del,
					       &d, &deleted));
	ASSERT_EQ(deleted, 0u);
	ASSERT_ERR(backend_s3_xml_delete_result(xml, 30, see_del, &d, NULL),
		   -EBADMSG);
}

/* ---- the error table ------------------------------------------------ */

static int map(long status, const char *code, char *msg)
{
	struct s3_failure f = {
		.status = status, .code = code, .expected_region = "",
		.signing_region = "us-east-1", .bucket = "x", .attempts = 1,
	};

	return backend_s3_error_map(&f, "b", msg, 512);
}

TEST(error_table_codes)
{
	char msg[512];

	ASSERT_ERR(map(403, "AccessDenied", msg), PHI_EAUTH);
	ASSERT_STREQ(msg, "region b: access denied: check credentials_file");
	ASSERT_ERR(map(403, "InvalidAccessKeyId", msg), PHI_EAUTH);
	ASSERT_TRUE(strstr(msg, "check credentials_file") != NULL);
	ASSERT_ERR(map(403, "SignatureDoesNotMatch", msg), PHI_EAUTH);
	ASSERT_TRUE(strstr(msg, "region b: ") == msg);
	ASSERT_ERR(map(404, "NoSuchBucket", msg), PHI_ENOBUCKET);
	ASSERT_STREQ(msg, "region b: no such bucket 'x': create it or fix the "
		     "url");
	ASSERT_ERR(map(404, "NoSuchKey", msg), -ENOENT);
	ASSERT_ERR(map(404, "", msg), -ENOENT);
	ASSERT_ERR(map(403, "", msg), PHI_EAUTH);	/* HEAD: no body */
	ASSERT_ERR(map(416, "InvalidRange", msg), -ERANGE);
	ASSERT_ERR(map(503, "SlowDown", msg), PHI_EUNREACHABLE);
	ASSERT_ERR(map(503, "", msg), PHI_EUNREACHABLE);
	ASSERT_ERR(map(429, "", msg), PHI_EUNREACHABLE);
	ASSERT_ERR(map(500, "InternalError", msg), -EIO);
	ASSERT_ERR(map(400, "InvalidArgument", msg), -EIO);
	ASSERT_TRUE(strstr(msg, "InvalidArgument") != NULL);
	ASSERT_ERR(map(501, "NotImplemented", msg), -ENOTSUP);
	ASSERT_ERR(map(301, "PermanentRedirect", msg), PHI_ECONFIG);
	ASSERT_ERR(map(400, "EntityTooLarge", msg), -EFBIG);
}

TEST(error_table_region_and_clock)
{
	struct s3_failure f = {
		.status = 400, .code = "AuthorizationHeaderMalformed",
		.expected_region = "eu-west-1", .signing_region = "us-east-1",
		.bucket = "x", .attempts = 1,
	};
	char msg[512];

	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)), PHI_EAUTH);
	ASSERT_STREQ(msg, "region b: the server expects signing region "
		     "'eu-west-1', not 'us-east-1': set region = eu-west-1");
	f.expected_region = "";
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)), PHI_EAUTH);
	ASSERT_TRUE(strstr(msg, "us-east-1") != NULL);

	f = (struct s3_failure){ .status = 403, .code = "RequestTimeTooSkewed",
				 .expected_region = "", .signing_region = "r",
				 .bucket = "x", .skew = -7 * 60 - 5 };
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)),
		   PHI_ECLOCKSKEW);
	ASSERT_STREQ(msg, "region b: clock is 7 minutes off the server's: fix "
		     "the system clock");
	f.skew = 16 * 60;
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)),
		   PHI_ECLOCKSKEW);
	ASSERT_TRUE(strstr(msg, "16 minutes") != NULL);
}

TEST(error_table_transport)
{
	struct s3_failure f = { .curl_code = CURLE_COULDNT_CONNECT,
				.os_errno = ECONNREFUSED, .code = "",
				.expected_region = "", .signing_region = "r",
				.bucket = "x", .attempts = 1 };
	char msg[512];

	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)),
		   PHI_EUNREACHABLE);
	ASSERT_STREQ(msg, "region b: unreachable (connection refused)");
	f.curl_code = CURLE_OPERATION_TIMEDOUT;
	f.attempts = 5;
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)),
		   PHI_EUNREACHABLE);
	ASSERT_STREQ(msg, "region b: unreachable (timed out, 5 tries)");
	f.curl_code = CURLE_COULDNT_RESOLVE_HOST;
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)),
		   PHI_EUNREACHABLE);
	f.curl_code = CURLE_PEER_FAILED_VERIFICATION;
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)), PHI_ETLS);
	ASSERT_TRUE(strstr(msg, "region b: TLS verification failed") == msg);
	ASSERT_TRUE(strstr(msg, "set ca_file") != NULL);
	f.curl_code = CURLE_SSL_CACERT_BADFILE;
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)), PHI_ETLS);
	f.curl_code = CURLE_UNSUPPORTED_PROTOCOL;
	ASSERT_ERR(backend_s3_error_map(&f, "b", msg, sizeof(msg)), -EIO);
}

TEST(error_retryable)
{
	struct s3_failure f = { .code = "" };

	f.status = 500;
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f.status = 503;
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f.status = 429;
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f.status = 501;
	ASSERT_TRUE(!backend_s3_error_retryable(&f));
	f.status = 400;
	ASSERT_TRUE(!backend_s3_error_retryable(&f));
	f.status = 403;
	ASSERT_TRUE(!backend_s3_error_retryable(&f));
	f.status = 404;
	ASSERT_TRUE(!backend_s3_error_retryable(&f));
	f.status = 503;
	f.code = "SlowDown";
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f = (struct s3_failure){ .code = "", .curl_code = CURLE_RECV_ERROR };
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f.curl_code = CURLE_OPERATION_TIMEDOUT;
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f.curl_code = CURLE_COULDNT_CONNECT;
	ASSERT_TRUE(backend_s3_error_retryable(&f));
	f.curl_code = CURLE_PEER_FAILED_VERIFICATION;
	ASSERT_TRUE(!backend_s3_error_retryable(&f));
	f.curl_code = CURLE_COULDNT_RESOLVE_HOST;
	ASSERT_TRUE(!backend_s3_error_retryable(&f));
}

/* ---- credentials ---------------------------------------------------- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	ASSERT_TRUE(f != NULL);
	fputs(text, f);
	fclose(f);
	ASSERT_OK(chmod(path, mode));
}

TEST(credentials_file)
{
	char path[4200], err[512] = "", *ak = NULL, *sk = NULL;

	snprintf(path, sizeof(path), "%s/creds", test_tmpdir());
	write_file(path, "# phifs region b\n[default]\n"
		   "access_key_id = test:tester\n"
		   "  secret_access_key=  s3cr3t/with+chars= \n", 0600);
	ASSERT_OK(backend_s3_load_credentials(path, &ak, &sk, err,
					      sizeof(err)));
	ASSERT_STREQ(ak, "test:tester");
	ASSERT_STREQ(sk, "s3cr3t/with+chars=");
	backend_s3_credentials_free(ak, sk);

	write_file(path, "aws_access_key_id=AK\naws_secret_access_key=SK\n",
		   0400);
	ASSERT_OK(backend_s3_load_credentials(path, &ak, &sk, err,
					      sizeof(err)));
	ASSERT_STREQ(ak, "AK");
	ASSERT_STREQ(sk, "SK");
	backend_s3_credentials_free(ak, sk);
}

TEST(credentials_file_refused)
{
	char path[4200], err[512] = "", *ak = (char *)1, *sk = (char *)1;

	snprintf(path, sizeof(path), "%s/creds", test_tmpdir());
	write_file(path, "access_key_id = AK\nsecret_access_key = TOPSECRET\n",
		   0644);
	ASSERT_ERR(backend_s3_load_credentials(path, &ak, &sk, err,
					       sizeof(err)), PHI_ECONFIG);
	ASSERT_TRUE(ak == NULL && sk == NULL);
	ASSERT_TRUE(strstr(err, "group or others") != NULL);
	ASSERT_TRUE(strstr(err, "chmod 600") != NULL);
	ASSERT_TRUE(strstr(err, "TOPSECRET") == NULL);
	ASSERT_OK(chmod(path, 0640));
	ASSERT_ERR(backend_s3_load_credentials(path, &ak, &sk, err,
					       sizeof(err)), PHI_ECONFIG);

	write_file(path, "access_key_id = AK\n", 0600);
	ASSERT_ERR(backend_s3_load_credentials(path, &ak, &sk, err,
					       sizeof(err)), PHI_ECONFIG);
	ASSERT_TRUE(strstr(err, "secret_access_key") != NULL);
	write_file(path, "access_key_id AK\nsecret_access_key = TOPSECRET\n",
		   0600);
	ASSERT_ERR(backend_s3_load_credentials(path, &ak, &sk, err,
					       sizeof(err)), PHI_ECONFIG);
	ASSERT_TRUE(strstr(err, ":1:") != NULL);
	ASSERT_TRUE(strstr(err, "TOPSECRET") == NULL);

	snprintf(path, sizeof(path), "%s/none", test_tmpdir());
	ASSERT_ERR(backend_s3_load_credentials(path, &ak, &sk, err,
					       sizeof(err)), -ENOENT);
	ASSERT_ERR(backend_s3_load_credentials(test_tmpdir(), &ak, &sk, err,
					       sizeof(err)), PHI_ECONFIG);
}

TEST(credentials_environment)
{
	char err[512] = "", *ak = NULL, *sk = NULL;

	setenv("AWS_ACCESS_KEY_ID", "envak", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsk", 1);
	ASSERT_OK(backend_s3_load_credentials(NULL, &ak, &sk, err,
					      sizeof(err)));
	ASSERT_STREQ(ak, "envak");
	ASSERT_STREQ(sk, "envsk");
	backend_s3_credentials_free(ak, sk);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	ASSERT_ERR(backend_s3_load_credentials("", &ak, &sk, err,
					       sizeof(err)), PHI_ECONFIG);
	ASSERT_TRUE(strstr(err, "AWS_SECRET_ACCESS_KEY") != NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
}

/* ---- open ----------------------------------------------------------- */

/* A copy of v (NULL: unset) into *field, which backend_region_release()
 * frees. */
static void set_str(char **field, const char *v)
{
	free(*field);
	*field = v ? strdup(v) : NULL;
	ASSERT_TRUE(!v || *field);
}

/* A region's settings as tools/ hands them over: every string owned. */
static struct backend_region config(const char *endpoint)
{
	struct backend_region r;

	backend_region_init(&r);
	snprintf(r.name, sizeof(r.name), "b");
	set_str(&r.url, "s3://bkt");
	set_str(&r.endpoint, endpoint);
	set_str(&r.region, "r1");
	set_str(&r.access_key, "AK");
	set_str(&r.secret_key, "SK");
	return r;
}

static int try_open(const char *endpoint, int allow_http, char *err)
{
	struct backend_region cfg = config(endpoint);
	struct backend *be = NULL;
	int rc;

	cfg.allow_http = allow_http;
	rc = backend_s3_open(&be, &cfg, err, 512);
	if (rc == 0) {
		ASSERT_STREQ(backend_name(be), "s3");
		backend_close(be);
	} else {
		ASSERT_TRUE(be == NULL);
	}
	backend_region_release(&cfg);
	return rc;
}

TEST(loopback_hosts)
{
	ASSERT_TRUE(backend_s3_host_is_loopback("127.0.0.1"));
	ASSERT_TRUE(backend_s3_host_is_loopback("127.255.3.4"));
	ASSERT_TRUE(backend_s3_host_is_loopback("::1"));
	ASSERT_TRUE(backend_s3_host_is_loopback("[::1]"));
	ASSERT_TRUE(backend_s3_host_is_loopback("localhost"));
	ASSERT_TRUE(backend_s3_host_is_loopback("LocalHost"));
	ASSERT_TRUE(!backend_s3_host_is_loopback("128.0.0.1"));
	ASSERT_TRUE(!backend_s3_host_is_loopback("10.0.0.1"));
	ASSERT_TRUE(!backend_s3_host_is_loopback("localhost.example.com"));
	ASSERT_TRUE(!backend_s3_host_is_loopback("127.0.0.1.nip.io"));
	ASSERT_TRUE(!backend_s3_host_is_loopback("::2"));
	ASSERT_TRUE(!backend_s3_host_is_loopback(""));
}

TEST(http_refused_unless_loopback)
{
	char err[512] = "";

	ASSERT_ERR(try_open("http://s3.example.com", 0, err), -EINVAL);
	ASSERT_TRUE(strstr(err, "region b: ") == err);
	ASSERT_TRUE(strstr(err, "allow_http") != NULL);
	ASSERT_ERR(try_open("http://10.1.2.3:9000/", 0, err), -EINVAL);
	ASSERT_OK(try_open("http://s3.example.com", 1, err));
	ASSERT_OK(try_open("http://127.0.0.1:18000", 0, err));
	ASSERT_OK(try_open("http://127.9.9.9", 0, err));
	ASSERT_OK(try_open("http://[::1]:9000/", 0, err));
	ASSERT_OK(try_open("http://localhost:9000", 0, err));
	ASSERT_OK(try_open("https://s3.example.com", 0, err));
	ASSERT_OK(try_open(NULL, 0, err));	/* AWS for the region */
}

TEST(bad_endpoints_and_settings)
{
	struct backend_region cfg = config("https://h");
	struct backend *be = NULL;
	char err[512] = "";

	ASSERT_ERR(try_open("ftp://h", 0, err), -EINVAL);
	ASSERT_ERR(try_open("s3.example.com", 0, err), -EINVAL);
	ASSERT_ERR(try_open("https://h/path", 0, err), -EINVAL);
	ASSERT_ERR(try_open("https://user:pw@h", 0, err), -EINVAL);
	ASSERT_ERR(try_open("https://[::1", 0, err), -EINVAL);
	ASSERT_ERR(try_open("https://", 0, err), -EINVAL);
	set_str(&cfg.secret_key, "");
	ASSERT_ERR(backend_s3_open(&be, &cfg, err, sizeof(err)), -EINVAL);
	ASSERT_TRUE(strstr(err, "credentials") != NULL);
	set_str(&cfg.secret_key, "SK");
	set_str(&cfg.url, NULL);
	ASSERT_ERR(backend_s3_open(&be, &cfg, err, sizeof(err)), -EINVAL);
	ASSERT_TRUE(be == NULL);
	set_str(&cfg.url, "dir:/srv/a");
	ASSERT_ERR(backend_s3_open(&be, &cfg, err, sizeof(err)), -EINVAL);
	ASSERT_TRUE(strstr(err, "region b: ") == err);
	ASSERT_TRUE(be == NULL);
	backend_region_release(&cfg);
}

TEST(region_settings_release)
{
	struct backend_region r = config("https://h");

	set_str(&r.credentials_file, "/etc/phifs/s3.key");
	set_str(&r.gc_credentials_file, "/etc/phifs/gc.key");
	set_str(&r.ca_file, "/etc/phifs/ca.pem");
	r.path_style = 1;
	r.max_attempts = 3;
	backend_region_release(&r);
	ASSERT_TRUE(r.url == NULL && r.endpoint == NULL && r.region == NULL);
	ASSERT_TRUE(r.credentials_file == NULL && r.ca_file == NULL &&
		    r.gc_credentials_file == NULL);
	ASSERT_TRUE(r.access_key == NULL && r.secret_key == NULL);
	ASSERT_STREQ(r.name, "");
	ASSERT_EQ(r.path_style, -1);
	ASSERT_EQ(r.max_attempts, 0);
	backend_region_release(&r);	/* as new: nothing left to free */
	backend_region_release(NULL);
}

TEST(open_region_dispatch)
{
	struct backend_region r;
	struct backend *be = NULL;
	char url[4200], path[4200], err[512] = "";

	backend_region_init(&r);
	snprintf(r.name, sizeof(r.name), "a");
	snprintf(url, sizeof(url), "dir:%s", test_tmpdir());
	set_str(&r.url, url);
	ASSERT_OK(backend_open_region(&be, &r, err, sizeof(err)));
	ASSERT_STREQ(backend_name(be), "dir");
	ASSERT_STREQ(backend_last_error(be), "");
	backend_close(be);
	backend_region_release(&r);

	snprintf(path, sizeof(path), "%s/creds", test_tmpdir());
	write_file(path, "access_key_id = AK\nsecret_access_key = SK\n", 0600);
	snprintf(r.name, sizeof(r.name), "b");
	set_str(&r.url, "s3://bkt/clinic");
	set_str(&r.region, "r1");
	set_str(&r.endpoint, "http://127.0.0.1:9");
	set_str(&r.credentials_file, path);
	ASSERT_OK(backend_open_region(&be, &r, err, sizeof(err)));
	ASSERT_STREQ(backend_name(be), "s3");
	ASSERT_STREQ(backend_last_error(be), "");
	backend_close(be);

	ASSERT_OK(chmod(path, 0644));
	ASSERT_ERR(backend_open_region(&be, &r, err, sizeof(err)),
		   PHI_ECONFIG);
	ASSERT_TRUE(strstr(err, "region b: credentials file") == err);
	ASSERT_TRUE(be == NULL);
	/* credentials the settings hold are used as they are */
	set_str(&r.access_key, "AK");
	set_str(&r.secret_key, "SK");
	ASSERT_OK(backend_open_region(&be, &r, err, sizeof(err)));
	ASSERT_STREQ(backend_name(be), "s3");
	backend_close(be);
	set_str(&r.url, "s3://B");
	ASSERT_ERR(backend_open_region(&be, &r, err, sizeof(err)), -EINVAL);
	ASSERT_TRUE(strstr(err, "region b: url: ") == err);
	backend_region_release(&r);
}

/* ---- a scripted server on 127.0.0.1 --------------------------------- */

/*
 * Answers one request per canned reply, in order, on as many connections
 * as the client opens, and records each request's first line.  Replies
 * are whole HTTP responses; Content-Length is added from the body.
 */
struct fake {
	int lfd, port;
	pthread_t thread;
	const char *const *replies;	/* "STATUS\nBODY" each */
	int nreplies, served;
	char lines[16][160];		/* request lines seen */
	char auth_seen[16];		/* 1 if an Authorization came */
};

/* Read one request (headers and Content-Length body); 0 at EOF. */
static int read_request(int fd, struct fake *f)
{
	char buf[65536];
	size_t got = 0;
	char *end = NULL;
	long clen = 0;

	while (!end) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			return 0;
		got += (size_t)n;
		buf[got] = '\0';
		if (buf[0] == 0x16)
			return 0;	/* a TLS ClientHello: hang up */
		end = strstr(buf, "\r\n\r\n");
	}
	if (f->served < 16) {
		sscanf(buf, "%159[^\r]", f->lines[f->served]);
		f->auth_seen[f->served] = strstr(buf, "\nAuthorization: ") !=
					  NULL;
	}
	{
		char *cl = strcasestr(buf, "\ncontent-length:");

		if (cl && cl < end)
			clen = strtol(cl + 16, NULL, 10);
	}
	for (long left = clen - (long)(got - (size_t)(end + 4 - buf));
	     left > 0;) {
		ssize_t n = recv(fd, buf, sizeof(buf) < (size_t)left ?
				 sizeof(buf) : (size_t)left, 0);

		if (n <= 0)
			return 0;
		left -= n;
	}
	return 1;
}

static void send_reply(int fd, const char *reply, int head)
{
	char out[8192];
	const char *body = strchr(reply, '\n');
	int status = atoi(reply);
	size_t blen = body ? strlen(body + 1) : 0;
	int n = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: "
			 "%zu\r\nETag: \"e%d\"\r\nDate: Fri, 24 May 2013 "
			 "00:00:00 GMT\r\n\r\n%s", status, blen, status,
			 head || !body ? "" : body + 1);

	(void)!write(fd, out, (size_t)n);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	while (f->served < f->nreplies) {
		int fd = accept(f->lfd, NULL, NULL);

		if (fd < 0)
			break;
		while (f->served < f->nreplies && read_request(fd, f)) {
			int head = strncmp(f->lines[f->served < 16 ?
					   f->served : 15], "HEAD", 4) == 0;

			send_reply(fd, f->replies[f->served], head);
			f->served++;
		}
		close(fd);
	}
	return NULL;
}

static void fake_start(struct fake *f, const char *const *replies, int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	memset(f, 0, sizeof(*f));
	f->replies = replies;
	f->nreplies = n;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_TRUE(f->lfd >= 0);
	ASSERT_OK(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_OK(listen(f->lfd, 8));
	ASSERT_OK(getsockname(f->lfd, (struct sockaddr *)&a, &alen));
	f->port = ntohs(a.sin_port);
	ASSERT_OK(pthread_create(&f->thread, NULL, fake_main, f));
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

static struct backend *open_fake(const struct fake *f, unsigned attempts)
{
	struct backend_region cfg = config(NULL);
	struct backend *be = NULL;
	char url[64], err[512];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->port);
	set_str(&cfg.endpoint, url);
	set_str(&cfg.url, "s3://bkt/pre");
	cfg.max_attempts = attempts;
	set_str(&cfg.secret_key, "TOPSECRETKEY");
	ASSERT_OK(backend_s3_open(&be, &cfg, err, sizeof(err)));
	backend_region_release(&cfg);
	return be;
}

TEST(fake_retries_5xx_then_succeeds)
{
	static const char *const replies[] = {
		"503\n<Error><Code>SlowDown</Code></Error>",
		"500\n",
		"200\nhello",
	};
	struct fake f;
	struct backend *be;
	struct buf out;

	fake_start(&f, replies, 3);
	be = open_fake(&f, 5);
	buf_init(&out, 1024);
	ASSERT_OK(backend_get(be, "k/1", 0, 0, &out));
	ASSERT_STREQ(buf_data(&out), "hello");
	fake_stop(&f);
	ASSERT_EQ(f.served, 3);
	ASSERT_STREQ(f.lines[0], "GET /bkt/pre/k/1 HTTP/1.1");
	ASSERT_TRUE(f.auth_seen[0] && f.auth_seen[2]);
	buf_release(&out);
	backend_close(be);
}

TEST(fake_never_retries_4xx)
{
	static const char *const replies[] = {
		"403\n<Error><Code>SignatureDoesNotMatch</Code><Message>The "
		"request signature we calculated does not match</Message>"
		"</Error>",
	};
	struct fake f;
	struct backend *be;

	fake_start(&f, replies, 1);
	be = open_fake(&f, 5);
	ASSERT_ERR(backend_put(be, "k", "x", 1), PHI_EAUTH);
	fake_stop(&f);
	ASSERT_EQ(f.served, 1);
	ASSERT_STREQ(f.lines[0], "PUT /bkt/pre/k HTTP/1.1");
	ASSERT_TRUE(strstr(backend_last_error(be), "region b: signature "
			   "rejected") == backend_last_error(be));
	ASSERT_TRUE(strstr(backend_last_error(be), "TOPSECRETKEY") == NULL);
	backend_close(be);
}

TEST(fake_gives_up_after_max_attempts)
{
	static const char *const replies[] = { "503\n", "503\n", "503\n" };
	struct fake f;
	struct backend *be;
	uint64_t size = 7;

	fake_start(&f, replies, 3);
	be = open_fake(&f, 3);
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	ASSERT_EQ(size, 7u);
	fake_stop(&f);
	ASSERT_EQ(f.served, 3);
	ASSERT_TRUE(strstr(backend_last_error(be), "after 3 tries") != NULL);
	backend_close(be);
}

TEST(fake_range_replies)
{
	static const char *const replies[] = {
		"416\n<Error><Code>InvalidRange</Code></Error>",
		"206\nbcd",
		"200\nabcdef",	/* a server that ignored Range */
		"404\n<Error><Code>NoSuchKey</Code></Error>",
	};
	struct fake f;
	struct backend *be;
	struct buf out;

	fake_start(&f, replies, 4);
	be = open_fake(&f, 1);
	buf_init(&out, 1024);
	ASSERT_OK(buf_add(&out, ">", 1));
	ASSERT_OK(backend_get(be, "k", 100, 10, &out));
	ASSERT_STREQ(buf_data(&out), ">");
	ASSERT_OK(backend_get(be, "k", 1, 3, &out));
	ASSERT_STREQ(buf_data(&out), ">bcd");
	ASSERT_OK(backend_get(be, "k", 2, 2, &out));
	ASSERT_STREQ(buf_data(&out), ">bcdcd");
	ASSERT_ERR(backend_get(be, "k", 0, 0, &out), -ENOENT);
	ASSERT_STREQ(buf_data(&out), ">bcdcd");
	fake_stop(&f);
	ASSERT_STREQ(backend_last_error(be), "");	/* a miss is no failure */
	buf_release(&out);
	backend_close(be);
}

static int count_key(void *ctx, const char *key, uint64_t size)
{
	(void)key;
	(void)size;
	++*(int *)ctx;
	return 0;
}

TEST(fake_malformed_replies)
{
	static const char *const replies[] = {
		"200\n<ListBucketResult><IsTruncated>true</IsTruncated>",
		"400\n<html><body>400 Bad Request</body></html>",
		"200\n<html>hello</html>",
	};
	struct fake f;
	struct backend *be;
	int n = 0;

	fake_start(&f, replies, 3);
	be = open_fake(&f, 1);
	ASSERT_ERR(backend_list(be, "", count_key, &n), -EIO);
	ASSERT_EQ(n, 0);
	ASSERT_TRUE(strstr(backend_last_error(be), "unexpected reply to "
			   "ListObjectsV2") != NULL);
	ASSERT_ERR(backend_put(be, "k", "xy", 2), -EIO);
	ASSERT_STREQ(backend_last_error(be), "region b: request refused (400, "
		     "no error code)");
	backend_close(be);

	/* a multipart upload whose start makes no sense */
	{
		struct backend_region cfg = config(NULL);
		char url[64], err[512];

		snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
		set_str(&cfg.endpoint, url);
		cfg.multipart_threshold = 1;
		ASSERT_OK(backend_s3_open(&be, &cfg, err, sizeof(err)));
		backend_region_release(&cfg);
	}
	ASSERT_ERR(backend_put(be, "k", "xy", 2), -EIO);
	ASSERT_TRUE(strstr(backend_last_error(be), "unexpected reply to "
			   "InitiateMultipartUpload") != NULL);
	fake_stop(&f);
	ASSERT_STREQ(f.lines[2], "POST /bkt/k?uploads= HTTP/1.1");
	backend_close(be);
}

TEST(fake_clock_skew)
{
	static const char *const replies[] = {
		"403\n<Error><Code>RequestTimeTooSkewed</Code><Message>The "
		"difference between the request time and the current time is "
		"too large.</Message></Error>",
	};
	struct fake f;
	struct backend *be;
	const char *msg;

	fake_start(&f, replies, 1);
	be = open_fake(&f, 5);
	ASSERT_ERR(backend_put(be, "k", "x", 1), PHI_ECLOCKSKEW);
	fake_stop(&f);
	ASSERT_EQ(f.served, 1);
	/* the fake's Date is in 2013: years, in minutes */
	msg = backend_last_error(be);
	ASSERT_TRUE(strncmp(msg, "region b: clock is ", 19) == 0);
	ASSERT_TRUE(strstr(msg, " minutes off the server's: fix the system "
			   "clock") != NULL);
	backend_close(be);
}

TEST(fake_head_failure_explained)
{
	static const char *const replies[] = {
		"400\n",	/* HEAD: no body, no reason */
		"400\n<Error><Code>AuthorizationHeaderMalformed</Code><Message>"
		"The authorization header is malformed; the region 'r1' is "
		"wrong; expecting 'zz-9'</Message></Error>",
	};
	struct fake f;
	struct backend *be;
	uint64_t size;

	fake_start(&f, replies, 2);
	be = open_fake(&f, 5);
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EAUTH);
	fake_stop(&f);
	ASSERT_STREQ(f.lines[0], "HEAD /bkt/pre/k HTTP/1.1");
	ASSERT_STREQ(f.lines[1], "GET /bkt/pre/k HTTP/1.1");
	ASSERT_STREQ(backend_last_error(be), "region b: the server expects "
		     "signing region 'zz-9', not 'r1': set region = zz-9");
	backend_close(be);
}

TEST(tls_failure)
{
	static const char *const replies[] = { "200\n" };
	struct backend_region cfg = config(NULL);
	struct backend *be = NULL;
	char url[64], err[512], ca[4200];
	struct fake f;
	uint64_t size;

	fake_start(&f, replies, 1);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", f.port);
	set_str(&cfg.endpoint, url);
	ASSERT_OK(backend_s3_open(&be, &cfg, err, sizeof(err)));
	ASSERT_ERR(backend_head(be, "k", &size), PHI_ETLS);
	ASSERT_TRUE(strstr(backend_last_error(be), "region b: TLS") ==
		    backend_last_error(be));
	ASSERT_TRUE(strstr(backend_last_error(be), "set ca_file") != NULL);
	backend_close(be);

	snprintf(ca, sizeof(ca), "%s/no-such-ca.pem", test_tmpdir());
	set_str(&cfg.ca_file, ca);
	ASSERT_OK(backend_s3_open(&be, &cfg, err, sizeof(err)));
	ASSERT_ERR(backend_head(be, "k", &size), PHI_ETLS);
	backend_close(be);
	fake_stop(&f);
	backend_region_release(&cfg);
}

TEST(unreachable_is_quick)
{
	struct backend_region cfg = config("http://127.0.0.1:1");
	struct backend *be = NULL;
	char err[512];
	uint64_t size;

	cfg.max_attempts = 2;
	set_str(&cfg.secret_key, "TOPSECRETKEY");
	ASSERT_OK(backend_s3_open(&be, &cfg, err, sizeof(err)));
	backend_region_release(&cfg);
	ASSERT_ERR(backend_head(be, "k", &size), PHI_EUNREACHABLE);
	ASSERT_STREQ(backend_last_error(be),
		     "region b: unreachable (connection refused, 2 tries)");
	backend_close(be);
}

TEST_MAIN(
	TEST_ENTRY(hashes),
	TEST_ENTRY(uri_encode_keys),
	TEST_ENTRY(query_string_sorted_and_encoded),
	TEST_ENTRY(sigv4_get_vanilla),
	TEST_ENTRY(sigv4_post_vanilla),
	TEST_ENTRY(sigv4_get_vanilla_query_order),
	TEST_ENTRY(sigv4_signing_key),
	TEST_ENTRY(sigv4_s3_get_object),
	TEST_ENTRY(sigv4_s3_put_object),
	TEST_ENTRY(sigv4_s3_get_lifecycle),
	TEST_ENTRY(sigv4_s3_list_objects),
	TEST_ENTRY(sigv4_s3_presigned_get),
	TEST_ENTRY(sigv4_header_values_trimmed),
	TEST_ENTRY(amz_date_format),
	TEST_ENTRY(xml_list_with_token),
	TEST_ENTRY(xml_list_last_page_and_empty),
	TEST_ENTRY(xml_list_malformed),
	TEST_ENTRY(xml_list_every_truncation),
	TEST_ENTRY(xml_refuses_dtd_depth_and_size),
	TEST_ENTRY(xml_error_codes),
	TEST_ENTRY(xml_error_wrong_region),
	TEST_ENTRY(xml_error_malformed),
	TEST_ENTRY(xml_initiate_multipart),
	TEST_ENTRY(xml_complete_multipart),
	TEST_ENTRY(xml_delete_result),
	TEST_ENTRY(error_table_codes),
	TEST_ENTRY(error_table_region_and_clock),
	TEST_ENTRY(error_table_transport),
	TEST_ENTRY(error_retryable),
	TEST_ENTRY(credentials_file),
	TEST_ENTRY(credentials_file_refused),
	TEST_ENTRY(credentials_environment),
	TEST_ENTRY(loopback_hosts),
	TEST_ENTRY(http_refused_unless_loopback),
	TEST_ENTRY(bad_endpoints_and_settings),
	TEST_ENTRY(region_settings_release),
	TEST_ENTRY(open_region_dispatch),
	TEST_ENTRY(fake_retries_5xx_then_succeeds),
	TEST_ENTRY(fake_never_retries_4xx),
	TEST_ENTRY(fake_gives_up_after_max_attempts),
	TEST_ENTRY(fake_range_replies),
	TEST_ENTRY(fake_malformed_replies),
	TEST_ENTRY(fake_clock_skew),
	TEST_ENTRY(fake_head_failure_explained),
	TEST_ENTRY(tls_failure),
	TEST_ENTRY(unreachable_is_quick),
)
