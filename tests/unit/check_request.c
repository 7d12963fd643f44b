/* Unit tests: request parsing (pure). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "suites.h"

static const struct req_limits lim = { 25, 120, 65536 };

static int sub(const char *q, struct req_sub *r, struct req_error *e)
{
	return request_sub(q, NULL, NULL, &lim, r, e);
}

/* Each of bad, after "channel=a&", is refused with 400. */
static void refused(const char *const *bad, size_t n)
{
	struct req_sub r;
	struct req_error e;
	for (size_t i = 0; i < n; i++) {
		char q[128];
		snprintf(q, sizeof q, "channel=a&%s", bad[i]);
		ck_assert_msg(sub(q, &r, &e) == -1, "accepted %s", q);
		ck_assert_int_eq(e.status, 400);
	}
}

START_TEST(endpoint_last_segment)
{
	ck_assert_int_eq(request_endpoint("/comet/sub", ""), REQ_EP_SUB);
	ck_assert_int_eq(request_endpoint("/app/comet.fcgi", "/pub"), REQ_EP_PUB);
	ck_assert_int_eq(request_endpoint("/stats", NULL), REQ_EP_STATS);
	ck_assert_int_eq(request_endpoint("/comet/sub/", NULL), REQ_EP_UNKNOWN);
	ck_assert_int_eq(request_endpoint("/comet/subx", NULL), REQ_EP_UNKNOWN);
	ck_assert_int_eq(request_endpoint(NULL, NULL), REQ_EP_UNKNOWN);
	ck_assert_int_eq(request_endpoint("/comet", "/nope"), REQ_EP_UNKNOWN);
}
END_TEST

START_TEST(sub_defaults)
{
	struct req_sub r;
	struct req_error e;
	ck_assert_int_eq(sub("channel=chat", &r, &e), 0);
	ck_assert_int_eq(r.nchan, 1);
	ck_assert_str_eq(r.chan[0], "chat");
	ck_assert_int_eq(r.since, -1);
	ck_assert_int_eq(r.timeout, 25);
	ck_assert_int_eq(r.limit, 100);
	ck_assert_str_eq(r.callback, "");
	ck_assert(!r.stream);
}
END_TEST

START_TEST(sub_channels_repeated_and_commas)
{
	struct req_sub r;
	struct req_error e;
	ck_assert_int_eq(sub("channel=a,b&channel=c&channel=a&x=1", &r, &e), 0);
	ck_assert_int_eq(r.nchan, 3);
	ck_assert_str_eq(r.chan[0], "a");
	ck_assert_str_eq(r.chan[1], "b");
	ck_assert_str_eq(r.chan[2], "c");
	ck_assert_int_eq(sub("channel=a%2Cb%3Ac", &r, &e), 0);
	ck_assert_int_eq(r.nchan, 2);
	ck_assert_str_eq(r.chan[1], "b:c");
}
END_TEST

START_TEST(sub_channel_errors)
{
	struct req_sub r;
	struct req_error e;
	const char *bad[] = { "", "since=1", "channel=", "channel=a,,b", "channel=a,",
			      "channel=a%20b", "channel=%C3%A9", "channel=a/b", "channel=a%00" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(sub(bad[i], &r, &e) == -1, "accepted %s", bad[i]);
		ck_assert_int_eq(e.status, 400);
	}
	char q[8192] = "channel=";
	for (int i = 0; i < 33; i++)
		sprintf(q + strlen(q), "%sc%d", i ? "," : "", i);
	ck_assert_int_eq(sub(q, &r, &e), -1);
	ck_assert_str_eq(e.msg, "at most 32 channels in one request");
	char longname[200] = "channel=";
	memset(longname + 8, 'x', 129);
	ck_assert_int_eq(sub(longname, &r, &e), -1);
	longname[8 + 128] = '\0';
	ck_assert_int_eq(sub(longname, &r, &e), 0);
}
END_TEST

START_TEST(sub_since)
{
	struct req_sub r;
	struct req_error e;
	ck_assert_int_eq(sub("channel=a&since=0", &r, &e), 0);
	ck_assert_int_eq(r.since, 0);
	ck_assert_int_eq(sub("channel=a&since=9223372036854775807", &r, &e), 0);
	ck_assert(r.since == INT64_MAX);
	const char *bad[] = { "since=-1", "since=abc", "since=", "since=1.5", "since=+3",
			      "since=9223372036854775808", "since=99999999999999999999999",
			      "since=1&since=2" };
	refused(bad, sizeof bad / sizeof bad[0]);
}
END_TEST

START_TEST(sub_last_event_id)
{
	struct req_sub r;
	struct req_error e;
	ck_assert_int_eq(request_sub("channel=a", "41", NULL, &lim, &r, &e), 0);
	ck_assert_int_eq(r.since, 41);
	/* since wins over the header */
	ck_assert_int_eq(request_sub("channel=a&since=7", "41", NULL, &lim, &r, &e), 0);
	ck_assert_int_eq(r.since, 7);
	ck_assert_int_eq(request_sub("channel=a", "x", NULL, &lim, &r, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_int_eq(request_sub("channel=a", NULL, "text/event-stream", &lim, &r, &e), 0);
	ck_assert(r.stream);
}
END_TEST

START_TEST(sub_timeout_limit_callback)
{
	struct req_sub r;
	struct req_error e;
	ck_assert_int_eq(sub("channel=a&timeout=0&limit=1", &r, &e), 0);
	ck_assert_int_eq(r.timeout, 0);
	ck_assert_int_eq(r.limit, 1);
	ck_assert_int_eq(sub("channel=a&timeout=99999999999999999999&limit=5000", &r, &e), 0);
	ck_assert_int_eq(r.timeout, 120);
	ck_assert_int_eq(r.limit, 1000);
	ck_assert_int_eq(sub("channel=a&limit=0", &r, &e), -1);
	ck_assert_int_eq(sub("channel=a&timeout=-1", &r, &e), -1);
	ck_assert_int_eq(sub("channel=a&callback=jQuery123_456.cb$", &r, &e), 0);
	ck_assert_str_eq(r.callback, "jQuery123_456.cb$");
	const char *bad[] = { "callback=", "callback=1a", "callback=a(b)", "callback=alert(1)//",
			      "callback=%3Cscript%3E", "callback=a%0Ab" };
	refused(bad, sizeof bad / sizeof bad[0]);
}
END_TEST

START_TEST(malformed_query)
{
	struct req_sub r;
	struct req_error e;
	const char *bad[] = { "channel=a&x=%zz", "channel=a&x=%4", "channel=a%", "%=1&channel=a" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(sub(bad[i], &r, &e) == -1, "accepted %s", bad[i]);
		ck_assert_int_eq(e.status, 400);
	}
	ck_assert_int_eq(sub("&&channel=a&&=&x", &r, &e), 0);
}
END_TEST

START_TEST(media_types)
{
	char t[REQ_TYPE_LEN + 1];
	bool ok;
	struct req_error e;
	ck_assert_int_eq(request_media_type(NULL, t, &ok, &e), 0);
	ck_assert_str_eq(t, "text/plain");
	ck_assert_int_eq(request_media_type("Application/JSON; charset=UTF-8", t, &ok, &e), 0);
	ck_assert_str_eq(t, "application/json");
	ck_assert(ok);
	ck_assert_int_eq(request_media_type("text/plain;charset=\"iso-8859-1\"", t, &ok, &e), 0);
	ck_assert(!ok);
	ck_assert_int_eq(request_media_type("text", t, &ok, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(request_media_type("a/b/c", t, &ok, &e), -1);
	ck_assert_int_eq(request_media_type("te\"xt/plain", t, &ok, &e), -1);
}
END_TEST

START_TEST(pub_raw_body)
{
	struct req_pub p;
	struct req_error e;
	char body[] = "{\"a\":1}";
	ck_assert_int_eq(request_pub("channel=c", "application/json", body, 7, 100, &p, &e), 0);
	ck_assert_str_eq(p.chan, "c");
	ck_assert_str_eq(p.type, "application/json");
	ck_assert_int_eq(p.len, 7);
	ck_assert_int_eq(request_pub("", "text/plain", body, 7, 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_int_eq(request_pub("channel=c", "text/plain", body, 7, 6, &p, &e), -1);
	ck_assert_int_eq(e.status, 413);
	char bad[] = "a\xff";
	ck_assert_int_eq(request_pub("channel=c", "text/plain", bad, 2, 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 415);
	char nul[] = "a\0b";
	ck_assert_int_eq(request_pub("channel=c", NULL, nul, 3, 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(request_pub("channel=c&channel=d", NULL, body, 7, 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_int_eq(request_pub("channel=c", NULL, NULL, 0, 100, &p, &e), 0);
	ck_assert_int_eq(p.len, 0);
}
END_TEST

/* The one check every publisher's message goes through. */
START_TEST(message_check)
{
	struct req_error e;
	ck_assert_int_eq(request_message("chat", "text/plain", "hi", 2, 100, &e), 0);
	ck_assert_int_eq(request_message("chat", "application/json", "{\"a\":1}", 7, 100, &e), 0);
	ck_assert_int_eq(request_message("bad name", "text/plain", "hi", 2, 100, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_int_eq(request_message("", "text/plain", "hi", 2, 100, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_int_eq(request_message("chat", "application/x-www-form-urlencoded", "a", 1, 100,
					 &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(request_message("chat", "text/plain", "hi", 2, 1, &e), -1);
	ck_assert_int_eq(e.status, 413);
	ck_assert_int_eq(request_message("chat", "text/plain", "a\0b", 3, 100, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(request_message("chat", "text/plain", "\xff", 1, 100, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(request_message("chat", "application/json", "{not", 4, 100, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(request_message("chat", "application/json", "\"\\u0000\"", 8, 100, &e),
			 -1);
	ck_assert_int_eq(e.status, 415);
	/* The body bound by Content-Type: a form triples, JSON may be a batch. */
	ck_assert_int_eq(request_body_max("text/plain", 100), 100);
	ck_assert_int_eq(request_body_max("application/x-www-form-urlencoded", 100), 4396);
	ck_assert_int_eq(request_body_max("application/json; charset=utf-8", 100),
			 REQ_BATCH_BODY_MAX);
	ck_assert_int_eq(request_body_max(NULL, 100), REQ_BATCH_BODY_MAX);
	ck_assert_int_eq(request_body_max(NULL, 2000000), 6004096);
}
END_TEST

START_TEST(pub_form_body)
{
	struct req_pub p;
	struct req_error e;
	char body[] = "channel=chat&data=h%C3%A9+there&type=text%2Fhtml";
	ck_assert_int_eq(request_pub(NULL, "application/x-www-form-urlencoded", body,
				     strlen(body), 100, &p, &e), 0);
	ck_assert_str_eq(p.chan, "chat");
	ck_assert_str_eq(p.type, "text/html");
	ck_assert_int_eq(p.len, strlen("h\xc3\xa9 there"));
	ck_assert(memcmp(p.data, "h\xc3\xa9 there", p.len) == 0);

	char b2[] = "data=x";
	ck_assert_int_eq(request_pub("channel=q", "application/x-www-form-urlencoded", b2,
				     strlen(b2), 100, &p, &e), 0);
	ck_assert_str_eq(p.chan, "q");
	ck_assert_str_eq(p.type, "text/plain");

	char b3[] = "channel=chat";
	ck_assert_int_eq(request_pub(NULL, "application/x-www-form-urlencoded", b3,
				     strlen(b3), 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 400);
	char b4[] = "channel=chat&data=%zz";
	ck_assert_int_eq(request_pub(NULL, "application/x-www-form-urlencoded", b4,
				     strlen(b4), 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 400);
	char b5[] = "channel=chat&data=%FF";
	ck_assert_int_eq(request_pub(NULL, "application/x-www-form-urlencoded", b5,
				     strlen(b5), 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 415);
	char b6[] = "channel=chat&data=x";
	ck_assert_int_eq(request_pub("channel=other", "application/x-www-form-urlencoded", b6,
				     strlen(b6), 100, &p, &e), -1);
	ck_assert_int_eq(e.status, 400);
}
END_TEST

START_TEST(request_channel_one)
{
	char c[REQ_CHANNEL_LEN + 1];
	struct req_error e;
	ck_assert_int_eq(request_channel("channel=x", c, &e), 0);
	ck_assert_str_eq(c, "x");
	ck_assert_int_eq(request_channel("channel=x&channel=y", c, &e), -1);
	ck_assert_int_eq(request_channel("", c, &e), -1);
	ck_assert_int_eq(request_channel("channel=a,b", c, &e), -1);
	ck_assert_int_eq(e.status, 400);
}
END_TEST

START_TEST(json_nul_escape)
{
	ck_assert(request_json_nul("[\"a\\u0000\"]", 11));
	ck_assert(!request_json_nul("[\"a\\\\u0000\"]", 12));	/* an escaped backslash */
	ck_assert(!request_json_nul("\\u000", 5));	/* cut short */
	ck_assert(request_json_nul("\\u0000", 6));
	ck_assert(!request_json_nul("\\", 1));
}
END_TEST

Suite *request_suite(void)
{
	Suite *s = suite_create("request");
	TCase *t = tcase_create("parse");
	tcase_add_test(t, endpoint_last_segment);
	tcase_add_test(t, sub_defaults);
	tcase_add_test(t, sub_channels_repeated_and_commas);
	tcase_add_test(t, sub_channel_errors);
	tcase_add_test(t, sub_since);
	tcase_add_test(t, sub_last_event_id);
	tcase_add_test(t, sub_timeout_limit_callback);
	tcase_add_test(t, malformed_query);
	tcase_add_test(t, media_types);
	tcase_add_test(t, pub_raw_body);
	tcase_add_test(t, pub_form_body);
	tcase_add_test(t, message_check);
	tcase_add_test(t, request_channel_one);
	tcase_add_test(t, json_nul_escape);
	suite_add_tcase(s, t);
	return s;
}
