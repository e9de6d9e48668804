/*
 * test_audit.c - audit/: the event format, patient folders, the text and
 * JSON forms and query times, through audit.h only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "phi.h"
#include "test.h"

static struct audit_event sample(void)
{
	struct audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.ino = 0x0102030405060708ull;
	ev.kind = AUDIT_RENAME;
	ev.err = EACCES;
	ev.time_ns = 1764979200123456789ull;
	ev.uid = 1000;
	ev.gid = 100;
	ev.pid = 4242;
	ev.flags = 2;
	ev.bytes_read = 7;
	ev.bytes_written = 1ull << 40;
	ev.s[AUDIT_S_COMM] = "cat";
	ev.s[AUDIT_S_USER] = "alice";
	ev.s[AUDIT_S_PATH] = "/Patients/Doe^Jane/a b";
	ev.s[AUDIT_S_PATH2] = "/Patients/Doe^Jane/c";
	ev.s[AUDIT_S_PATIENT] = "Doe^Jane";
	return ev;
}

TEST(encode_decode_round_trip)
{
	struct audit_event ev = sample(), back;
	uint8_t rec[AUDIT_REC_MAX];
	char buf[AUDIT_REC_MAX];
	int len = audit_encode(&ev, rec, sizeof(rec));

	ASSERT_TRUE(len > 56);
	/* the inode first, little-endian, as cache.h requires */
	ASSERT_EQ(rec[0], 0x08);
	ASSERT_EQ(rec[7], 0x01);
	ASSERT_OK(audit_decode(rec, (size_t)len, &back, buf, sizeof(buf)));
	ASSERT_EQ(back.ino, ev.ino);
	ASSERT_EQ(back.kind, AUDIT_RENAME);
	ASSERT_EQ(back.err, EACCES);
	ASSERT_EQ(back.time_ns, ev.time_ns);
	ASSERT_EQ(back.uid, 1000);
	ASSERT_EQ(back.gid, 100);
	ASSERT_EQ(back.pid, 4242);
	ASSERT_EQ(back.flags, 2);
	ASSERT_EQ(back.bytes_read, 7);
	ASSERT_EQ(back.bytes_written, 1ull << 40);
	ASSERT_STREQ(back.s[AUDIT_S_COMM], "cat");
	ASSERT_STREQ(back.s[AUDIT_S_GROUP], "");	/* NULL was given */
	ASSERT_STREQ(back.s[AUDIT_S_PATH], "/Patients/Doe^Jane/a b");
	ASSERT_STREQ(back.s[AUDIT_S_PATH2], "/Patients/Doe^Jane/c");
	ASSERT_STREQ(back.s[AUDIT_S_PATIENT], "Doe^Jane");
}

TEST(decode_refuses_cut_and_unknown_records)
{
	struct audit_event ev = sample(), back;
	uint8_t rec[AUDIT_REC_MAX];
	char buf[AUDIT_REC_MAX];
	int len = audit_encode(&ev, rec, sizeof(rec));

	for (int cut = 0; cut < len; cut += 7)
		ASSERT_ERR(audit_decode(rec, (size_t)cut, &back, buf,
					sizeof(buf)), PHI_ECORRUPT);
	rec[8] = 2;	/* a version this build does not know */
	ASSERT_ERR(audit_decode(rec, (size_t)len, &back, buf, sizeof(buf)),
		   PHI_ECORRUPT);
	ASSERT_ERR(audit_encode(&ev, rec, 60), -ENOSPC);
}

TEST(decode_skips_strings_it_does_not_know)
{
	struct audit_event ev = sample(), back;
	uint8_t rec[AUDIT_REC_MAX];
	char buf[AUDIT_REC_MAX];
	int len = audit_encode(&ev, rec, sizeof(rec));

	/* one more string, as a later writer may add */
	rec[10] = AUDIT_S_END + 1;
	rec[len] = 3;
	rec[len + 1] = 0;
	memcpy(rec + len + 2, "new", 3);
	ASSERT_OK(audit_decode(rec, (size_t)len + 5, &back, buf, sizeof(buf)));
	ASSERT_STREQ(back.s[AUDIT_S_PATIENT], "Doe^Jane");
}

TEST(patients_by_glob)
{
	struct audit_patients p;
	char out[256];

	ASSERT_OK(audit_patients_parse("/Patients/*", &p));
	ASSERT_EQ(p.depth, 2);
	ASSERT_EQ(audit_patient_of(&p, "/Patients/Doe^Jane/x/y", out,
				   sizeof(out)), 1);
	ASSERT_STREQ(out, "Doe^Jane");
	ASSERT_EQ(audit_patient_of(&p, "/Patients/Doe^Jane", out,
				   sizeof(out)), 1);
	ASSERT_STREQ(out, "Doe^Jane");
	ASSERT_EQ(audit_patient_of(&p, "/Patients", out, sizeof(out)), 0);
	ASSERT_STREQ(out, "");
	ASSERT_EQ(audit_patient_of(&p, "/Other/Doe/x", out, sizeof(out)), 0);
	ASSERT_EQ(audit_patient_of(&p, "/Patients/.hidden/x", out,
				   sizeof(out)), 0);
	ASSERT_OK(audit_patients_parse("/Clinic/*/Patients/P*", &p));
	ASSERT_EQ(audit_patient_of(&p, "/Clinic/North/Patients/P17/scan",
				   out, sizeof(out)), 1);
	ASSERT_STREQ(out, "P17");
	ASSERT_EQ(audit_patient_of(&p, "/Clinic/North/Patients/Q1/scan",
				   out, sizeof(out)), 0);
}

TEST(patients_by_depth_and_bad_specs)
{
	struct audit_patients p;
	char out[256];

	ASSERT_OK(audit_patients_parse("1", &p));
	ASSERT_EQ(audit_patient_of(&p, "/Smith/notes.txt", out, sizeof(out)),
		  1);
	ASSERT_STREQ(out, "Smith");
	ASSERT_EQ(audit_patient_of(&p, "/", out, sizeof(out)), 0);
	ASSERT_OK(audit_patients_parse(NULL, &p));
	ASSERT_EQ(audit_patient_of(&p, "/Smith/x", out, sizeof(out)), 0);
	ASSERT_ERR(audit_patients_parse("Patients", &p), -EINVAL);
	ASSERT_ERR(audit_patients_parse("0", &p), -EINVAL);
	ASSERT_ERR(audit_patients_parse("33", &p), -EINVAL);
	ASSERT_ERR(audit_patients_parse("/", &p), -EINVAL);
	ASSERT_ERR(audit_patients_parse("/a//b", &p), -EINVAL);
}

TEST(formats_text_and_json)
{
	struct audit_event ev = sample();
	char out[8192];

	ev.s[AUDIT_S_DETAIL] = "say \"hi\"\n";
	audit_format(&ev, 9, 0, out, sizeof(out));
	ASSERT_TRUE(strncmp(out, "2025-12-06T00:00:00.123456789Z rename "
			    "EACCES uid=1000", 46) == 0);
	/* one line, fields split at spaces */
	ASSERT_TRUE(strstr(out, " path=/Patients/Doe^Jane/a\\x20b ") != NULL);
	ASSERT_TRUE(strchr(out, '\n') == out + strlen(out) - 1);
	audit_format(&ev, 9, 1, out, sizeof(out));
	ASSERT_TRUE(strncmp(out, "{\"seq\":9,\"time\":\"2025-12-06T00:00:00."
			    "123456789Z\"", 45) == 0);
	ASSERT_TRUE(strstr(out, "\"detail\":\"say \\\"hi\\\"\\u000a\"") !=
		    NULL);
	ASSERT_TRUE(strstr(out, "\"errno\":13,") != NULL);
	ASSERT_TRUE(strchr(out, '\n') == out + strlen(out) - 1);
}

TEST(syslog_message_is_rfc5424)
{
	struct audit_event ev = sample();
	static char out[AUDIT_FHIR_MAX];
	const char *sd;
	int n;

	ev.s[AUDIT_S_HOST] = "clinic1";
	ev.s[AUDIT_S_PATH] = "/Patients/a\"b]c\\d\ne\xff";
	n = audit_format_syslog(&ev, 9, 77, out, sizeof(out));
	ASSERT_TRUE(n > 0);
	ASSERT_EQ((size_t)n, strlen(out));
	/* a refusal: authpriv.warning; UTC to the microsecond */
	ASSERT_TRUE(strncmp(out, "<84>1 2025-12-06T00:00:00.123456Z clinic1 "
			    "phifs 77 rename [phifs@32473 seq=\"9\" "
			    "errno=\"13\" uid=\"1000\" gid=\"100\" "
			    "pid=\"4242\" ino=\"72623859790382856\" "
			    "bytes_read=\"7\" bytes_written=\"1099511627776\""
			    " process=\"cat\" user=\"alice\" ", 218) == 0);
	/* '"', ']' and '\' escaped; a newline and a byte that is not UTF-8
	 * as U+FFFD; strings that are empty left out */
	ASSERT_TRUE(strstr(out, " path=\"/Patients/a\\\"b\\]c\\\\d\xef\xbf\xbd"
			   "e\xef\xbf\xbd\" ") != NULL);
	ASSERT_TRUE(strstr(out, " group=\"") == NULL);
	ASSERT_TRUE(strstr(out, " host=\"") == NULL);	/* HOSTNAME has it */
	/* then the text line, without its newline */
	sd = strstr(out, "\"] 2025-12-06T00:00:00.123456789Z rename EACCES ");
	ASSERT_TRUE(sd != NULL);
	ASSERT_TRUE(strchr(out, '\n') == NULL);

	/* a success: authpriv.notice; no host: the NILVALUE */
	ev.err = 0;
	ev.s[AUDIT_S_HOST] = NULL;
	ASSERT_TRUE(audit_format_syslog(&ev, 1, 77, out, sizeof(out)) > 0);
	ASSERT_TRUE(strncmp(out, "<85>1 2025-12-06T00:00:00.123456Z - phifs 77 "
			    "rename [", 53) == 0);
	/* too small: refused, never cut */
	ASSERT_ERR(audit_format_syslog(&ev, 1, 77, out, 200), -ENOSPC);
}

/* How many times needle is in hay. */
static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static char fhir_out[AUDIT_FHIR_MAX];

static const char *fhir(const struct audit_event *ev)
{
	int n = audit_format_fhir(ev, fhir_out, sizeof(fhir_out));

	ASSERT_TRUE(n > 0);
	ASSERT_EQ((size_t)n, strlen(fhir_out));
	/* one line: NDJSON */
	ASSERT_TRUE(strchr(fhir_out, '\n') == fhir_out + n - 1);
	return fhir_out;
}

TEST(fhir_resource_fields)
{
	struct audit_event ev = sample();
	const char *out;

	ev.s[AUDIT_S_HOST] = "ward7";
	ev.s[AUDIT_S_GROUP] = "staff";
	out = fhir(&ev);
	ASSERT_TRUE(strncmp(out, "{\"resourceType\":\"AuditEvent\",\"type\":"
			    "{\"system\":\"http://dicom.nema.org/resources/"
			    "ontology/DCM\",\"code\":\"110110\",\"display\":"
			    "\"Patient Record\"}", 131) == 0);
	ASSERT_TRUE(strstr(out, "{\"code\":\"rename\",\"display\":\"rename\"}"));
	ASSERT_TRUE(strstr(out, ",\"action\":\"U\","));
	ASSERT_TRUE(strstr(out, ",\"recorded\":\"2025-12-06T00:00:00."
			   "123456789Z\","));
	/* a refusal is a minor failure, with the errno's name and text */
	ASSERT_TRUE(strstr(out, ",\"outcome\":\"4\",\"outcomeDesc\":"
			   "\"EACCES: Permission denied\""));
	/* the user asked, the process did it, both on the host */
	ASSERT_TRUE(strstr(out, "\"who\":{\"identifier\":{\"type\":{\"text\":"
			   "\"uid\"},\"value\":\"1000\"},\"display\":"
			   "\"alice\"},\"name\":\"alice\",\"requestor\":true,"
			   "\"network\":{\"address\":\"ward7\",\"type\":\"1\"}"));
	ASSERT_TRUE(strstr(out, "\"role\":[{\"text\":\"group staff (gid "
			   "100)\"}]"));
	ASSERT_TRUE(strstr(out, "\"who\":{\"identifier\":{\"type\":{\"text\":"
			   "\"process ID\"},\"value\":\"4242\"},\"display\":"
			   "\"cat\"},\"name\":\"cat\",\"requestor\":false"));
	ASSERT_TRUE(strstr(out, "\"source\":{\"site\":\"ward7\",\"observer\":"
			   "{\"display\":\"phifs on ward7\"},\"type\":[{"
			   "\"system\":\"http://terminology.hl7.org/"
			   "CodeSystem/security-source-type\",\"code\":\"4\","
			   "\"display\":\"Application Server\"}]}"));
	/* the old and new names, the inode, and the patient once */
	ASSERT_TRUE(strstr(out, "{\"what\":{\"identifier\":{\"type\":{\"text\":"
			   "\"inode\"},\"value\":\"72623859790382856\"},"
			   "\"display\":\"/Patients/Doe^Jane/a b\"}"));
	ASSERT_TRUE(strstr(out, "{\"what\":{\"display\":\"/Patients/Doe^Jane/"
			   "c\"}"));
	ASSERT_EQ(count(out, "\"role\":{\"system\":\"http://terminology.hl7."
			"org/CodeSystem/object-role\",\"code\":\"1\","
			"\"display\":\"Patient\"}"), 1);
	ASSERT_TRUE(strstr(out, "\"code\":\"1\",\"display\":\"Person\"}"));
	ASSERT_TRUE(strstr(out, "\"name\":\"Doe^Jane\"}]}\n"));
	/* FHIR has no empty strings and no empty arrays */
	ASSERT_EQ(count(out, "\"\""), 0);
	ASSERT_EQ(count(out, "[]"), 0);
}

TEST(fhir_actions_and_types_per_kind)
{
	static const struct {
		enum audit_kind kind;
		uint32_t flags;
		uint64_t written;
		const char *action, *type;
	} want[] = {
		{ AUDIT_OPEN, O_RDONLY, 0, "R", "110110" },
		{ AUDIT_OPEN, O_RDWR, 0, "U", "110110" },
		{ AUDIT_RELEASE, 0, 0, "R", "110110" },
		{ AUDIT_RELEASE, 0, 5, "U", "110110" },
		{ AUDIT_CREATE, 0, 0, "C", "110110" },
		{ AUDIT_MKDIR, 0, 0, "C", "110110" },
		{ AUDIT_TRUNCATE, 0, 0, "U", "110110" },
		{ AUDIT_CHMOD, 0, 0, "U", "110110" },
		{ AUDIT_UNLINK, 0, 0, "D", "110110" },
		{ AUDIT_RMDIR, 0, 0, "D", "110110" },
		{ AUDIT_QUERY, 0, 0, "E", "110112" },
		{ AUDIT_RESTORE, 0, 0, "E", "110106" },
		{ AUDIT_RECOVER, 0, 0, "E", "110107" },
		{ AUDIT_MOUNT, 0, 0, "E", "110100" },
		{ AUDIT_KEY_ADD, 0, 0, "E", "110113" },
		{ AUDIT_GC, 0, 0, "E", "110100" },
	};
	char s[64];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct audit_event ev = sample();
		const char *out;

		ev.kind = want[i].kind;
		ev.flags = want[i].flags;
		ev.bytes_written = want[i].written;
		ev.err = 0;
		out = fhir(&ev);
		snprintf(s, sizeof(s), ",\"action\":\"%s\",", want[i].action);
		ASSERT_TRUE(strstr(out, s) != NULL);
		snprintf(s, sizeof(s), "\"code\":\"%s\"", want[i].type);
		ASSERT_TRUE(strstr(out, s) != NULL);
		ASSERT_TRUE(strstr(out, ",\"outcome\":\"0\",\"agent\""));
		snprintf(s, sizeof(s), "\"code\":\"%s\"",
			 audit_kind_name(want[i].kind));
		ASSERT_TRUE(strstr(out, s) != NULL);
	}
}

TEST(fhir_outcomes_patients_and_commands)
{
	struct audit_event ev = sample();
	const char *out;

	ev.err = EIO;		/* phifs failed: serious */
	out = fhir(&ev);
	ASSERT_TRUE(strstr(out, "\"outcome\":\"8\",\"outcomeDesc\":\"EIO: "
			   "Input/output error\""));
	/* outside patient folders no patient; a move into one names it */
	ev.s[AUDIT_S_PATIENT] = NULL;
	out = fhir(&ev);
	ASSERT_TRUE(strstr(out, "\"display\":\"Patient\"") == NULL);
	ASSERT_TRUE(strstr(out, "Person") == NULL);
	ev.s[AUDIT_S_PATIENT2] = "Roe^Rick";
	out = fhir(&ev);
	ASSERT_EQ(count(out, "\"display\":\"Patient\""), 1);
	ASSERT_TRUE(strstr(out, "\"name\":\"Roe^Rick\""));
	/* a command with no path: what it did, no inode, no path */
	memset(&ev, 0, sizeof(ev));
	ev.kind = AUDIT_UNMOUNT;
	ev.s[AUDIT_S_DETAIL] = "unmounted";
	out = fhir(&ev);
	ASSERT_TRUE(strstr(out, "\"subtype\":[{\"system\":\"http://dicom.nema."
			   "org/resources/ontology/DCM\",\"code\":\"110121\","
			   "\"display\":\"Application Stop\"}"));
	ASSERT_TRUE(strstr(out, "\"entity\":[{\"type\":"));
	ASSERT_TRUE(strstr(out, "\"description\":\"unmounted\"}]}\n"));
	ASSERT_TRUE(strstr(out, "\"what\"") == NULL);
	ASSERT_TRUE(strstr(out, "\"observer\":{\"display\":\"phifs\"}"));
	ASSERT_EQ(count(out, "\"\""), 0);
	ASSERT_ERR(audit_format_fhir(&ev, fhir_out, 100), -ENOSPC);
}

/* Quotes, control bytes, UTF-8 and bytes that are not UTF-8. */
TEST(fhir_escapes_every_string)
{
	struct audit_event ev = sample();
	const char *out;

	ev.kind = AUDIT_CREATE;
	ev.s[AUDIT_S_PATH] = "/P/\"q\"\\\x01\t\xc3\xa9\xff\xed\xa0\x80"
			     "\xf0\x9f\x98\x80";
	ev.s[AUDIT_S_COMM] = "a\"b";
	ev.s[AUDIT_S_DETAIL] = "\x7f";
	out = fhir(&ev);
	/* é and the emoji as they are; 0xff and the surrogate (3 bytes)
	 * as U+FFFD each */
	ASSERT_TRUE(strstr(out, "\"display\":\"/P/\\\"q\\\"\\\\\\u0001\\u0009"
			   "\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\xf0\x9f\x98"
			   "\x80\"}"));
	/* and the bytes themselves, so that nothing is lost */
	ASSERT_TRUE(strstr(out, "{\"type\":\"path bytes\",\"valueBase64Binary"
			   "\":\"L1AvInEiXAEJw6n/7aCA8J+YgA==\"}"));
	ASSERT_TRUE(strstr(out, "\"name\":\"a\\\"b\""));
	ASSERT_TRUE(strstr(out, "\"description\":\"\\u007f\""));
	/* valid UTF-8 needs no bytes */
	ev.s[AUDIT_S_PATH] = "/P/\xc3\xa9";
	out = fhir(&ev);
	ASSERT_TRUE(strstr(out, "path bytes") == NULL);
	/* a cut sequence at the end */
	ev.s[AUDIT_S_PATH] = "/P/\xe2\x82";
	out = fhir(&ev);
	ASSERT_TRUE(strstr(out, "\"display\":\"/P/\\ufffd\\ufffd\""));
}

/* A kind added after a reader was built decodes, named "?". */
TEST(unknown_kinds_decode)
{
	struct audit_event ev = sample(), back;
	uint8_t rec[AUDIT_REC_MAX];
	char buf[AUDIT_REC_MAX];
	int len;

	ev.kind = (enum audit_kind)200;
	len = audit_encode(&ev, rec, sizeof(rec));
	ASSERT_OK(audit_decode(rec, (size_t)len, &back, buf, sizeof(buf)));
	ASSERT_STREQ(audit_kind_name(back.kind), "?");
	ASSERT_STREQ(back.s[AUDIT_S_PATH], "/Patients/Doe^Jane/a b");
	ASSERT_STREQ(audit_kind_name(AUDIT_KEY_REMOVE), "key-remove");
	ASSERT_STREQ(audit_kind_name(AUDIT_KEY_ROTATE), "key-rotate");
	ASSERT_STREQ(audit_kind_name(AUDIT_REPAIR), "fsck-repair");
	ASSERT_TRUE(strstr(fhir(&back), "\"action\":\"E\""));
}

TEST(query_times)
{
	uint64_t ns;

	ASSERT_OK(audit_parse_time("@1764979200", &ns));
	ASSERT_EQ(ns, 1764979200000000000ull);
	ASSERT_OK(audit_parse_time("2025-12-06", &ns));
	ASSERT_EQ(ns, 1764979200000000000ull);
	ASSERT_OK(audit_parse_time("2025-12-06T01:02:03Z", &ns));
	ASSERT_EQ(ns, (1764979200ull + 3723) * 1000000000ull);
	ASSERT_OK(audit_parse_time("2025-12-06T01:02", &ns));
	ASSERT_EQ(ns, (1764979200ull + 3720) * 1000000000ull);
	ASSERT_ERR(audit_parse_time("yesterday", &ns), -EINVAL);
	ASSERT_ERR(audit_parse_time("@", &ns), -EINVAL);
	ASSERT_ERR(audit_parse_time("2025-12-06T", &ns), -EINVAL);
}

/* A child that names itself what the parent writes to it, then says so. */
static void child_main(int in, int out)
{
	char name[16];
	ssize_t n;

	while ((n = read(in, name, sizeof(name) - 1)) > 0) {
		name[n] = '\0';
		prctl(PR_SET_NAME, name);
		if (write(out, "k", 1) != 1)
			break;
	}
	_exit(0);
}

static void child_rename(int to, int from, const char *name)
{
	char k;

	ASSERT_EQ(write(to, name, strlen(name)), (ssize_t)strlen(name));
	ASSERT_EQ(read(from, &k, 1), 1);
}

/* The name is the process's now: after a rename, and "" once it is gone,
 * though the name was asked for before. */
TEST(process_names_are_never_stale)
{
	int down[2], up[2];
	char name[64];
	pid_t pid;

	ASSERT_OK(pipe(down));
	ASSERT_OK(pipe(up));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		child_main(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	child_rename(down[1], up[0], "first");
	audit_comm(pid, name, sizeof(name));
	ASSERT_STREQ(name, "first");
	audit_comm(pid, name, sizeof(name));
	ASSERT_STREQ(name, "first");
	child_rename(down[1], up[0], "second");
	audit_comm(pid, name, sizeof(name));
	ASSERT_STREQ(name, "second");
	close(down[1]);		/* the child exits */
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	close(up[0]);
	audit_comm(pid, name, sizeof(name));
	ASSERT_STREQ(name, "");
	audit_comm(getpid(), name, sizeof(name));
	ASSERT_TRUE(name[0] != '\0');
}

TEST_MAIN(TEST_ENTRY(encode_decode_round_trip),
	  TEST_ENTRY(decode_refuses_cut_and_unknown_records),
	  TEST_ENTRY(decode_skips_strings_it_does_not_know),
	  TEST_ENTRY(patients_by_glob),
	  TEST_ENTRY(patients_by_depth_and_bad_specs),
	  TEST_ENTRY(formats_text_and_json),
	  TEST_ENTRY(syslog_message_is_rfc5424),
	  TEST_ENTRY(fhir_resource_fields),
	  TEST_ENTRY(fhir_actions_and_types_per_kind),
	  TEST_ENTRY(fhir_outcomes_patients_and_commands),
	  TEST_ENTRY(fhir_escapes_every_string),
	  TEST_ENTRY(unknown_kinds_decode),
	  TEST_ENTRY(query_times),
	  TEST_ENTRY(process_names_are_never_stale))
