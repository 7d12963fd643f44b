/* Unit tests: the Mercure hub's pure logic (topic selectors and URI
 * templates, authorization, the publish form, ids, events, the subscribe
 * query, where the JWT is). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mercure.h"
#include "suites.h"

#define M(sel, topic) ck_assert_msg(mercure_match(sel, topic), "%s should match %s", sel, topic)
#define NM(sel, topic) ck_assert_msg(!mercure_match(sel, topic), "%s should not match %s", sel, topic)

START_TEST(selector_exact_and_any)
{
	M("*", "https://example.com/foo");
	M("*", "");
	M("https://example.com/foo", "https://example.com/foo");
	NM("https://example.com/foo", "https://example.com/foo/");
	NM("https://example.com/foo", "https://example.com/Foo");
	M("bar", "bar");
	M("", "");
	NM("", "a");
	/* A template is also its own exact string. */
	M("https://example.com/books/{id}", "https://example.com/books/{id}");
	/* "*" is the wildcard only alone. */
	NM("https://example.com/*", "https://example.com/foo");
}
END_TEST

START_TEST(selector_simple_templates)
{
	const char *b = "https://example.com/books/{id}";
	M(b, "https://example.com/books/1");
	M(b, "https://example.com/books/the-title_2.0~x");
	M(b, "https://example.com/books/a%20b");
	M(b, "https://example.com/books/1,2");	/* a list's comma */
	M(b, "https://example.com/books/");	/* the variable may be undefined */
	NM(b, "https://example.com/books");
	NM(b, "https://example.com/books/1/2");	/* {id} never crosses '/' */
	NM(b, "https://example.com/books/a b");
	NM(b, "https://example.com/books/a=b");	/* '=' only in named forms */
	NM(b, "https://example.com/books/%2");	/* a broken triplet */
	NM(b, "https://example.com/books/1?x");
	NM(b, "http://example.com/books/1");
	NM(b, "https://example.com/books/1 ");
	/* Literal text around and between expressions. */
	const char *d = "{scheme}://{+host}/demo/books/{id}.jsonld";
	M(d, "https://example.com/demo/books/1.jsonld");
	M(d, "http://localhost:3000/demo/books/1.jsonld");
	NM(d, "https://example.com/demo/books/1.json");
	NM(d, "https://example.com/demo/books/1/2.jsonld");
	M("https://example.com/{a}{b}", "https://example.com/xy");
	M("{a}-{b}", "x-y-z");	/* {a} takes "x-y": '-' is unreserved */
	M("{a}", "");
	/* The name is never looked at. */
	M("https://example.com/users/{user}/books/{book}",
	  "https://example.com/users/kevin/books/42");
	NM("https://example.com/users/{user}/books/{book}",
	   "https://example.com/users/kevin/42");
	/* A prefix modifier does not bound the length, as in the hub. */
	M("https://example.com/{id:3}", "https://example.com/abcdef");
}
END_TEST

START_TEST(selector_operators)
{
	/* {+var}: reserved characters too, so it crosses '/', '?', '#'. */
	M("https://example.com/{+path}", "https://example.com/a/b/c?x=1#f");
	M("https://example.com/{+path}", "https://example.com/");
	NM("https://example.com/{+path}", "https://example.com/a b");
	NM("https://example.com/{+path}", "https://example.com/a\"b");
	/* {#var}: "#" then the reserved class. */
	M("https://example.com/page{#frag}", "https://example.com/page#a/b");
	M("https://example.com/page{#frag}", "https://example.com/page");
	NM("https://example.com/page{#frag}", "https://example.com/pagex");
	/* {.var}, {/var}, {;var}. */
	M("https://example.com/file{.ext}", "https://example.com/file.json");
	M("https://example.com/file{.ext}", "https://example.com/file");
	M("https://example.com{/seg}", "https://example.com/x");
	M("https://example.com{/seg}", "https://example.com");
	NM("https://example.com{/seg}", "https://example.com/x/y");
	M("https://example.com{/a,b}", "https://example.com/x/y");
	NM("https://example.com{/a,b}", "https://example.com/x/y/z");
	M("https://example.com{/seg*}", "https://example.com/x/y/z");
	M("https://example.com/m{;p}", "https://example.com/m;p=1");
	M("https://example.com/m{;a,b}", "https://example.com/m;a=1;b");
	/* {?var} and {&var}: named, so '=' is in, but '&' only as the
	 * separator of several variables. */
	const char *q = "https://example.com/users/foo/{?topic}";
	M(q, "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1");
	M(q, "https://example.com/users/foo/");
	M(q, "https://example.com/users/foo/?x=1");	/* the name is not checked */
	NM(q, "https://example.com/users/foo/?topic=https://example.com/books/1");
	NM(q, "https://example.com/users/foo/?a=1&b=2");
	M("https://example.com/s{?a,b}", "https://example.com/s?a=1&b=2");
	NM("https://example.com/s{?a,b}", "https://example.com/s?a=1&b=2&c=3");
	M("https://example.com/s{?a*}", "https://example.com/s?a=1&b=2&c=3");
	M("https://example.com/s?x=1{&y}", "https://example.com/s?x=1&y=2");
	/* The subscription events' template of the hub's documentation. */
	M("/.well-known/mercure/subscriptions{/topic}{/subscriber}",
	  "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fa/urn%3Auuid%3A1");
	M("/.well-known/mercure/subscriptions{/topic}{/subscriber}",
	  "/.well-known/mercure/subscriptions");
}
END_TEST

START_TEST(selector_not_templates)
{
	/* What is not a valid template is a plain string: exact only. */
	const char *bad[] = {
		"https://example.com/{id",	/* unclosed */
		"https://example.com/{}",	/* no variable */
		"https://example.com/{=id}",	/* a reserved operator */
		"https://example.com/{|id}",
		"https://example.com/{a b}",
		"https://example.com/{a.}",
		"https://example.com/{.a..b}",
		"https://example.com/{a:0}",
		"https://example.com/{a:10000}",
		"https://example.com/{a*:3}",
		"https://example.com/{a,}",
		"https://example.com/a b/{id}",	/* a space in a literal */
		"https://example.com/<{id}>",
		"https://example.com/%zz/{id}",
		"https://example.com/}{id}",
		"https://example.com/\xff/{id}",	/* not UTF-8 */
		"https://example.com/\xc2\x85/{id}",	/* a C1 control */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct mercure_selector s;
		char err[128];
		ck_assert_int_eq(mercure_selector_compile(&s, bad[i], err, sizeof err), 0);
		ck_assert_msg(s.kind == MERCURE_SEL_EXACT, "%s compiled as a template", bad[i]);
		ck_assert(mercure_selector_match(&s, bad[i]));
		mercure_selector_free(&s);
	}
	NM("https://example.com/{id", "https://example.com/1");
	NM("https://example.com/a b/{id}", "https://example.com/a b/1");
	/* Valid ones, for contrast: a %XX in a name, dots inside one, a
	 * prefix, ucschar literals. */
	M("https://example.com/{a%20b}", "https://example.com/x");
	M("https://example.com/{a.b}", "https://example.com/x");
	M("https://example.com/{a:9999}", "https://example.com/x");
	M("https://example.com/%2F{id}", "https://example.com/%2Fx");
	NM("https://example.com/%2F{id}", "https://example.com//x");
	M("https://example.com/\xc3\xa9t\xc3\xa9/{id}", "https://example.com/\xc3\xa9t\xc3\xa9/1");
	NM("https://example.com/\xc3\xa9t\xc3\xa9/{id}", "https://example.com/ete/1");
}
END_TEST

START_TEST(selector_limits)
{
	struct mercure_selector s;
	char err[128];
	char *t = malloc(MERCURE_TOPIC_MAX + 2);
	memset(t, 'a', MERCURE_TOPIC_MAX + 1);
	t[MERCURE_TOPIC_MAX + 1] = '\0';
	ck_assert_int_eq(mercure_selector_compile(&s, t, err, sizeof err), -1);
	t[MERCURE_TOPIC_MAX] = '\0';
	ck_assert_int_eq(mercure_selector_compile(&s, t, err, sizeof err), 0);
	mercure_selector_free(&s);
	/* One expression of 500 variables compiles past MERCURE_PROG_MAX. */
	struct buf b = BUF_INIT;
	buf_adds(&b, "{a");
	for (int i = 0; i < 500; i++)
		buf_adds(&b, ",a");
	buf_adds(&b, "}");
	ck_assert_int_eq(mercure_selector_compile(&s, buf_str(&b), err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "complex"));
	ck_assert(!mercure_match(buf_str(&b), "x"));
	buf_free(&b);
	free(t);
}
END_TEST

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

START_TEST(selector_linear_time)
{
	/* 400 expressions that can all be empty, against 2048 bytes that
	 * almost match: a backtracking matcher would never end. */
	struct buf b = BUF_INIT;
	for (int i = 0; i < 400; i++)
		buf_adds(&b, "{a}");
	buf_adds(&b, "!");
	struct mercure_selector s;
	char err[128];
	ck_assert_int_eq(mercure_selector_compile(&s, buf_str(&b), err, sizeof err), 0);
	ck_assert_int_eq(s.kind, MERCURE_SEL_TEMPLATE);
	char *topic = malloc(MERCURE_TOPIC_MAX + 1);
	memset(topic, 'a', MERCURE_TOPIC_MAX);
	topic[MERCURE_TOPIC_MAX] = '\0';
	double t0 = now_ms();
	ck_assert(!mercure_selector_match(&s, topic));
	topic[MERCURE_TOPIC_MAX - 1] = '!';
	ck_assert(mercure_selector_match(&s, topic));
	ck_assert_msg(now_ms() - t0 < 2000, "took %.0f ms", now_ms() - t0);
	mercure_selector_free(&s);
	free(topic);
	buf_free(&b);
}
END_TEST

static struct mercure_selectors sels(const char *const *v, size_t n)
{
	struct mercure_selectors s;
	char err[128];
	ck_assert_int_eq(mercure_selectors_compile(&s, v, n, err, sizeof err), 0);
	return s;
}

START_TEST(authorization)
{
	const char *all[] = { "*" };
	const char *books[] = { "https://example.com/books/{id}", "https://example.com/news" };
	const char *none[] = { NULL };
	struct mercure_selectors s_all = sels(all, 1), s_books = sels(books, 2);
	struct mercure_selectors s_none = sels(none, 0);
	const char *t1[] = { "https://example.com/books/1" };
	const char *t2[] = { "https://example.com/books/1", "https://example.com/users/2" };
	const char *t3[] = { "https://example.com/books/1", "https://example.com/news" };

	ck_assert(mercure_can_publish(&s_all, t2, 2));
	ck_assert(mercure_can_publish(&s_books, t1, 1));
	ck_assert(mercure_can_publish(&s_books, t3, 2));
	ck_assert(!mercure_can_publish(&s_books, t2, 2));	/* every topic, not one */
	ck_assert(!mercure_can_publish(&s_none, t1, 1));	/* [] or absent: nothing */
	ck_assert(!mercure_can_publish(NULL, t1, 1));
	ck_assert(!mercure_can_publish(&s_all, t1, 0));

	/* The protocol's example (section Subscribers): subscribed to every
	 * book, allowed the private updates whose alternate topic names the
	 * user. */
	const char *req[] = { "https://example.com/books/{id}" };
	const char *claim[] = { "https://example.com/users/foo/{?topic}" };
	struct mercure_selectors s_req = sels(req, 1), s_claim = sels(claim, 1);
	const char *u_mine[] = { "https://example.com/books/1",
		"https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1" };
	const char *u_other[] = { "https://example.com/books/2",
		"https://example.com/users/bar/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F2" };
	ck_assert(mercure_delivers(&s_req, &s_claim, u_mine, 2, true));
	ck_assert(!mercure_delivers(&s_req, &s_claim, u_other, 2, true));
	ck_assert(mercure_delivers(&s_req, &s_claim, u_other, 2, false));
	ck_assert(!mercure_delivers(&s_req, NULL, u_mine, 2, true));	/* no JWT */
	ck_assert(mercure_delivers(&s_req, NULL, u_mine, 2, false));
	ck_assert(mercure_can_receive(NULL, u_mine, 2, false));
	ck_assert(!mercure_can_receive(&s_none, u_mine, 2, true));
	ck_assert(mercure_can_receive(&s_all, u_mine, 2, true));
	/* Authorized by a topic the subscriber did not ask for, and asked by
	 * another: delivered (the hub's MatchTopics). */
	const char *u_split[] = { "https://example.com/books/9", "https://example.com/secret" };
	const char *claim2[] = { "https://example.com/secret" };
	struct mercure_selectors s_claim2 = sels(claim2, 1);
	ck_assert(mercure_delivers(&s_req, &s_claim2, u_split, 2, true));
	/* Not asked for at all: never, whatever the claim. */
	const char *u_nobook[] = { "https://example.com/secret" };
	ck_assert(!mercure_delivers(&s_req, &s_all, u_nobook, 1, false));

	/* Which requested selector: the first that one topic matches. */
	const char *req3[] = { "https://example.com/a", "https://example.com/books/{id}", "*" };
	struct mercure_selectors s_req3 = sels(req3, 3);
	ck_assert_int_eq(mercure_subscribed(&s_req3, t2, 2), 1);
	ck_assert_int_eq(mercure_subscribed(&s_req, u_nobook, 1), -1);
	ck_assert_int_eq(mercure_subscribed(&s_req3, u_nobook, 1), 2);
	ck_assert_int_eq(mercure_subscribed(NULL, t1, 1), -1);

	char err[128];
	const char *many[MERCURE_MAX_TOPICS + 1];
	for (size_t i = 0; i <= MERCURE_MAX_TOPICS; i++)
		many[i] = "x";
	struct mercure_selectors s_many;
	ck_assert_int_eq(mercure_selectors_compile(&s_many, many, MERCURE_MAX_TOPICS + 1,
						   err, sizeof err), -1);
	ck_assert_int_eq(mercure_selectors_compile(&s_many, many, MERCURE_MAX_TOPICS,
						   err, sizeof err), 0);
	mercure_selectors_free(&s_many);

	mercure_selectors_free(&s_all);
	mercure_selectors_free(&s_books);
	mercure_selectors_free(&s_none);
	mercure_selectors_free(&s_req);
	mercure_selectors_free(&s_claim);
	mercure_selectors_free(&s_claim2);
	mercure_selectors_free(&s_req3);
}
END_TEST

static int pub(const char *body, struct mercure_update *u, char *err)
{
	return mercure_publish_parse(body, strlen(body), u, err, 160);
}

START_TEST(publish_form)
{
	struct mercure_update u;
	char err[160];
	ck_assert_int_eq(pub("topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=%7B%22a%22%3A+1%7D",
			     &u, err), 0);
	ck_assert_uint_eq(u.ntopics, 1);
	ck_assert_str_eq(u.topics[0], "https://example.com/books/1");
	ck_assert_str_eq(u.data, "{\"a\": 1}");
	ck_assert_uint_eq(u.data_len, 8);
	ck_assert(!u.private_update);
	ck_assert_ptr_null(u.id);
	ck_assert_ptr_null(u.type);
	ck_assert_uint_eq(u.retry, 0);
	mercure_update_free(&u);

	/* Everything, repeated topics in order, the first of the others,
	 * empty pairs and unknown fields skipped, names decoded too. */
	ck_assert_int_eq(pub("&&topic=a&top%69c=b&data=1&data=2&private=on&id=urn%3Ax&id=y"
			     "&type=t&type=u&retry=5000&retry=1&foo=bar&topic=c&", &u, err), 0);
	ck_assert_uint_eq(u.ntopics, 3);
	ck_assert_str_eq(u.topics[0], "a");
	ck_assert_str_eq(u.topics[1], "b");
	ck_assert_str_eq(u.topics[2], "c");
	ck_assert_str_eq(u.data, "1");
	ck_assert(u.private_update);
	ck_assert_str_eq(u.id, "urn:x");
	ck_assert_str_eq(u.type, "t");
	ck_assert_uint_eq(u.retry, 5000);
	mercure_update_free(&u);

	/* private is on whatever its value, none included. */
	const char *priv[] = { "topic=a&private", "topic=a&private=", "topic=a&private=off",
			       "topic=a&private=0" };
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(pub(priv[i], &u, err), 0);
		ck_assert_msg(u.private_update, "%s", priv[i]);
		mercure_update_free(&u);
	}
	/* Empty id, type and retry are as absent; an empty topic is a topic. */
	ck_assert_int_eq(pub("topic=&id=&type=&retry=", &u, err), 0);
	ck_assert_uint_eq(u.ntopics, 1);
	ck_assert_str_eq(u.topics[0], "");
	ck_assert_ptr_null(u.id);
	ck_assert_ptr_null(u.type);
	ck_assert_uint_eq(u.retry, 0);
	ck_assert_str_eq(u.data, "");
	mercure_update_free(&u);
	/* A name without '=' has an empty value, as in Go's ParseQuery. */
	ck_assert_int_eq(pub("topic", &u, err), 0);
	ck_assert_uint_eq(u.ntopics, 1);
	ck_assert_str_eq(u.topics[0], "");
	mercure_update_free(&u);
	ck_assert_int_eq(pub("topic=a&retry=18446744073709551615&data=x+y%0Az", &u, err), 0);
	ck_assert_uint_eq(u.retry, UINT64_MAX);
	ck_assert_str_eq(u.data, "x y\nz");
	mercure_update_free(&u);
}
END_TEST

START_TEST(publish_refused)
{
	struct {
		const char *body;
		int status;
		const char *says;
	} cases[] = {
		{ "", 400, "Missing \"topic\"" },
		{ "data=x", 400, "Missing \"topic\"" },
		{ "topic=a%zz", 400, "not a form" },
		{ "topic=a%2", 400, "not a form" },
		{ "topic=a;b", 400, "not a form" },
		{ "topic=a&data=x;y", 400, "not a form" },
		{ "topic=a&retry=abc", 400, "Invalid \"retry\"" },
		{ "topic=a&retry=-1", 400, "Invalid \"retry\"" },
		{ "topic=a&retry=+1", 400, "Invalid \"retry\"" },
		{ "topic=a&retry=18446744073709551616", 400, "Invalid \"retry\"" },
		{ "topic=a&retry=5%00", 400, "Invalid \"retry\"" },
		{ "topic=a&type=t%00", 400, "type" },
		{ "topic=a&id=x%0Aevent:+forged", 400, "id" },
		{ "topic=a&id=x%0D", 400, "id" },
		{ "topic=a&id=x%00", 400, "id" },
		{ "topic=a&type=x%0Adata:+forged", 400, "type" },
		{ "topic=a%FF", 400, "UTF-8" },
		{ "topic=a%00b", 400, "UTF-8" },
		{ "topic=a&data=%C0%AF", 400, "UTF-8" },
		{ "topic=a&data=x%00y", 400, "UTF-8" },
		{ "topic=https%3A%2F%2Fhub.example%2F.well-known%2Fmercure%2Fsubscriptions%2Fx", 403,
		  "reserved" },
		{ "topic=a&topic=/.well-known/mercure", 403, "reserved" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct mercure_update u;
		char err[160] = "";
		int rc = pub(cases[i].body, &u, err);
		ck_assert_msg(rc == cases[i].status, "%s: %d", cases[i].body, rc);
		ck_assert_msg(strstr(err, cases[i].says), "%s: %s", cases[i].body, err);
		ck_assert_uint_eq(u.ntopics, 0);
		ck_assert_ptr_null(u.store);
	}
	/* Limits: topics per update and bytes per field. */
	struct buf b = BUF_INIT;
	for (int i = 0; i < MERCURE_MAX_TOPICS; i++)
		buf_adds(&b, "topic=t&");
	struct mercure_update u;
	char err[160];
	ck_assert_int_eq(mercure_publish_parse(b.p, b.len, &u, err, sizeof err), 0);
	ck_assert_uint_eq(u.ntopics, MERCURE_MAX_TOPICS);
	mercure_update_free(&u);
	buf_adds(&b, "topic=t");
	ck_assert_int_eq(mercure_publish_parse(b.p, b.len, &u, err, sizeof err), 400);
	ck_assert_ptr_nonnull(strstr(err, "more than"));
	buf_reset(&b);
	buf_adds(&b, "topic=");
	for (int i = 0; i <= MERCURE_TOPIC_MAX; i++)
		buf_addc(&b, 'x');
	ck_assert_int_eq(mercure_publish_parse(b.p, b.len, &u, err, sizeof err), 400);
	buf_reset(&b);
	buf_adds(&b, "topic=a&id=");
	for (int i = 0; i <= MERCURE_ID_MAX; i++)
		buf_addc(&b, 'x');
	ck_assert_int_eq(mercure_publish_parse(b.p, b.len, &u, err, sizeof err), 400);
	/* A body with a NUL byte in it, not just an escaped one. */
	ck_assert_int_eq(mercure_publish_parse("topic=a\0b", 9, &u, err, sizeof err), 400);
	buf_free(&b);
}
END_TEST

static int counting_random(void *ctx, unsigned char *out, size_t n)
{
	int *calls = ctx;
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(i * 0x11 + *calls);
	(*calls)++;
	return 0;
}

static int failing_random(void *ctx, unsigned char *out, size_t n)
{
	return -1;
}

START_TEST(update_ids)
{
	char urn[MERCURE_UUID_URN_LEN + 1];
	unsigned char zero[16] = { 0 }, ones[16];
	memset(ones, 0xff, sizeof ones);
	mercure_uuid_urn(zero, urn);
	ck_assert_str_eq(urn, "urn:uuid:00000000-0000-4000-8000-000000000000");
	mercure_uuid_urn(ones, urn);
	ck_assert_str_eq(urn, "urn:uuid:ffffffff-ffff-4fff-bfff-ffffffffffff");

	struct mercure_update u;
	char err[160];
	int calls = 0;
	ck_assert_int_eq(pub("topic=a", &u, err), 0);
	ck_assert_int_eq(mercure_assign_id(&u, counting_random, &calls), 0);
	ck_assert_str_eq(u.id, "urn:uuid:00112233-4455-4677-8899-aabbccddeeff");
	ck_assert_int_eq(calls, 1);
	/* Assigned once. */
	ck_assert_int_eq(mercure_assign_id(&u, counting_random, &calls), 0);
	ck_assert_int_eq(calls, 1);
	mercure_update_free(&u);
	/* The publisher's own is kept. */
	ck_assert_int_eq(pub("topic=a&id=%23mine", &u, err), 0);
	ck_assert_int_eq(mercure_assign_id(&u, failing_random, NULL), 0);
	ck_assert_str_eq(u.id, "#mine");
	mercure_update_free(&u);
	ck_assert_int_eq(pub("topic=a", &u, err), 0);
	ck_assert_int_eq(mercure_assign_id(&u, failing_random, NULL), -1);
	ck_assert_ptr_null(u.id);
	ck_assert_int_eq(mercure_assign_id(&u, mercure_random_default, NULL), 0);
	ck_assert_int_eq(strlen(u.id), MERCURE_UUID_URN_LEN);
	ck_assert_int_eq(u.id[23], '4');
	ck_assert_ptr_nonnull(strchr("89ab", u.id[28]));
	mercure_update_free(&u);
}
END_TEST

static void render_is(const char *id, const char *type, uint64_t retry, const char *data,
		      const char *want)
{
	struct buf b = BUF_INIT;
	ck_assert_int_eq(mercure_event_render(&b, id, type, retry, data, strlen(data)), 0);
	ck_assert_str_eq(buf_str(&b), want);
	buf_free(&b);
}

START_TEST(event_render)
{
	render_is("urn:uuid:1", NULL, 0, "{\"a\":1}", "id: urn:uuid:1\ndata: {\"a\":1}\n\n");
	render_is("x", "book", 5000, "hi",
		  "event: book\nretry: 5000\nid: x\ndata: hi\n\n");
	render_is("x", "", 0, "", "id: x\ndata: \n\n");
	/* Lines end at CRLF, CR or LF, one data: line each. */
	render_is("x", NULL, 0, "a\r\nb\rc\nd", "id: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
	render_is("x", NULL, 0, "a\n", "id: x\ndata: a\ndata: \n\n");
	render_is("x", NULL, 0, "a\r\n\nb", "id: x\ndata: a\ndata: \ndata: b\n\n");
	render_is("x", NULL, 0, "\r\r", "id: x\ndata: \ndata: \ndata: \n\n");
	render_is("x", NULL, 0, "data: x", "id: x\ndata: data: x\n\n");
	render_is(NULL, NULL, 0, "a", "data: a\n\n");
	/* An id or type that would forge fields: nothing written. */
	struct buf b = BUF_INIT;
	buf_adds(&b, "before");
	ck_assert_int_eq(mercure_event_render(&b, "x\ndata: forged", NULL, 0, "a", 1), -1);
	ck_assert_int_eq(mercure_event_render(&b, "x", "t\rretry: 1", 0, "a", 1), -1);
	ck_assert_str_eq(buf_str(&b), "before");
	/* Data is taken by length. */
	buf_reset(&b);
	ck_assert_int_eq(mercure_event_render(&b, "x", NULL, 0, "abc", 2), 0);
	ck_assert_str_eq(buf_str(&b), "id: x\ndata: ab\n\n");
	buf_free(&b);
}
END_TEST

START_TEST(subscribe_query)
{
	struct mercure_sub s;
	char err[160];
	ck_assert_int_eq(mercure_subscribe_parse(
		"topic=https%3A%2F%2Fexample.com%2Ffoo&topic=bar"
		"&topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D&lastEventID=urn%3Auuid%3Ax",
		NULL, &s, err, sizeof err), 0);
	ck_assert_uint_eq(s.ntopics, 3);
	ck_assert_uint_eq(s.sel.n, 3);
	ck_assert_str_eq(s.topics[0], "https://example.com/foo");
	ck_assert_str_eq(s.topics[1], "bar");
	ck_assert_int_eq(s.sel.v[2].kind, MERCURE_SEL_TEMPLATE);
	ck_assert_str_eq(s.last_event_id, "urn:uuid:x");
	ck_assert(!s.earliest);
	ck_assert_ptr_null(s.authorization);
	const char *t[] = { "https://example.com/books/7" };
	ck_assert_int_eq(mercure_subscribed(&s.sel, t, 1), 2);
	mercure_sub_free(&s);

	/* The header first, when not empty; then the first lastEventID. */
	ck_assert_int_eq(mercure_subscribe_parse("topic=a&lastEventID=q", "h", &s, err,
						 sizeof err), 0);
	ck_assert_str_eq(s.last_event_id, "h");
	mercure_sub_free(&s);
	ck_assert_int_eq(mercure_subscribe_parse("topic=a&lastEventID=q&lastEventID=r", "", &s,
						 err, sizeof err), 0);
	ck_assert_str_eq(s.last_event_id, "q");
	mercure_sub_free(&s);
	ck_assert_int_eq(mercure_subscribe_parse("topic=a&lastEventID=&lastEventID=r", NULL, &s,
						 err, sizeof err), 0);
	ck_assert_ptr_null(s.last_event_id);
	mercure_sub_free(&s);
	ck_assert_int_eq(mercure_subscribe_parse("topic=a&lastEventID=earliest", NULL, &s, err,
						 sizeof err), 0);
	ck_assert(s.earliest);
	ck_assert_str_eq(s.last_event_id, MERCURE_EARLIEST);
	mercure_sub_free(&s);
	ck_assert_int_eq(mercure_subscribe_parse("topic=a", "earliest", &s, err, sizeof err), 0);
	ck_assert(s.earliest);
	mercure_sub_free(&s);
	ck_assert_int_eq(mercure_subscribe_parse("topic=a", NULL, &s, err, sizeof err), 0);
	ck_assert_ptr_null(s.last_event_id);
	ck_assert(!s.earliest);
	mercure_sub_free(&s);

	/* Malformed pairs are dropped, as r.URL.Query() drops them. */
	ck_assert_int_eq(mercure_subscribe_parse("topic=a%zz&topic=b;c&topic=d&authorization=j"
						 "&authorization=k", NULL, &s, err, sizeof err), 0);
	ck_assert_uint_eq(s.ntopics, 1);
	ck_assert_str_eq(s.topics[0], "d");
	ck_assert_str_eq(s.authorization, "j");
	ck_assert_int_eq(s.nauthorization, 2);
	mercure_sub_free(&s);

	/* Refusals, each 400. */
	const char *bad[] = { "", NULL, "lastEventID=x", "topic=a%zz", "topic=%FF",
			      "topic=a&lastEventID=x%0Ay" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ck_assert_int_eq(mercure_subscribe_parse(bad[i], NULL, &s, err, sizeof err), 400);
		ck_assert_ptr_null(s.store);
	}
	ck_assert_int_eq(mercure_subscribe_parse("", NULL, &s, err, sizeof err), 400);
	ck_assert_str_eq(err, "Missing \"topic\" parameter.");
	struct buf b = BUF_INIT;
	for (int i = 0; i <= MERCURE_MAX_TOPICS; i++)
		buf_adds(&b, "topic=t&");
	ck_assert_int_eq(mercure_subscribe_parse(buf_str(&b), NULL, &s, err, sizeof err), 400);
	ck_assert_ptr_nonnull(strstr(err, "Too many"));
	buf_reset(&b);
	buf_adds(&b, "topic=%7Ba");
	for (int i = 0; i < 500; i++)
		buf_adds(&b, ",a");
	buf_adds(&b, "%7D");
	ck_assert_int_eq(mercure_subscribe_parse(buf_str(&b), NULL, &s, err, sizeof err), 400);
	ck_assert_ptr_nonnull(strstr(err, "complex"));
	buf_reset(&b);
	for (int i = 0; i <= MERCURE_ID_MAX; i++)
		buf_addc(&b, 'i');
	ck_assert_int_eq(mercure_subscribe_parse("topic=a", buf_str(&b), &s, err, sizeof err),
			 400);
	buf_free(&b);
}
END_TEST

START_TEST(token_place)
{
	const char *tok;
	size_t len;
	ck_assert_int_eq(mercure_token_find("Bearer abc.def.ghi", "q", 1, "mercureAuthorization=c",
					    &tok, &len), MERCURE_TOKEN_HEADER);
	ck_assert_int_eq(len, 11);
	ck_assert(strncmp(tok, "abc.def.ghi", len) == 0);
	ck_assert_int_eq(mercure_token_find("bearer \t x.y.z  ", NULL, 0, NULL, &tok, &len),
			 MERCURE_TOKEN_HEADER);
	ck_assert(len == 5 && strncmp(tok, "x.y.z", 5) == 0);
	/* A header that is there counts, even when bad: no falling back. */
	ck_assert_int_eq(mercure_token_find("Basic abc", "q", 1, NULL, &tok, &len),
			 MERCURE_TOKEN_BAD);
	ck_assert_int_eq(mercure_token_find("Bearer", NULL, 0, NULL, &tok, &len),
			 MERCURE_TOKEN_BAD);
	ck_assert_int_eq(mercure_token_find("Bearer   ", NULL, 0, NULL, &tok, &len),
			 MERCURE_TOKEN_BAD);
	ck_assert_int_eq(mercure_token_find("Bearerx.y.z", NULL, 0, NULL, &tok, &len),
			 MERCURE_TOKEN_BAD);
	/* Then the query parameter, exactly once. */
	ck_assert_int_eq(mercure_token_find(NULL, "q.r.s", 1, "mercureAuthorization=c", &tok,
					    &len), MERCURE_TOKEN_QUERY);
	ck_assert_str_eq(tok, "q.r.s");
	ck_assert_int_eq(mercure_token_find("", "q.r.s", 2, NULL, &tok, &len), MERCURE_TOKEN_BAD);
	ck_assert_int_eq(mercure_token_find(NULL, "", 1, NULL, &tok, &len), MERCURE_TOKEN_BAD);
	/* Then the cookie. */
	ck_assert_int_eq(mercure_token_find(NULL, NULL, 0,
					    "a=1; mercureAuthorization=c.d.e; b=2", &tok, &len),
			 MERCURE_TOKEN_COOKIE);
	ck_assert(len == 5 && strncmp(tok, "c.d.e", 5) == 0);
	ck_assert_int_eq(mercure_token_find(NULL, NULL, 0, "mercureAuthorization=\"c.d.e\"",
					    &tok, &len), MERCURE_TOKEN_COOKIE);
	ck_assert(len == 5 && strncmp(tok, "c.d.e", 5) == 0);
	ck_assert_int_eq(mercure_token_find(NULL, NULL, 0, "xmercureAuthorization=1; "
					    "mercureAuthorizationx=2", &tok, &len),
			 MERCURE_TOKEN_NONE);
	ck_assert_int_eq(mercure_token_find(NULL, NULL, 0, "mercureAuthorization=; a=b", &tok,
					    &len), MERCURE_TOKEN_BAD);
	ck_assert_int_eq(mercure_token_find(NULL, NULL, 0, "mercureAuthorization=1;"
					    "mercureAuthorization=2", &tok, &len),
			 MERCURE_TOKEN_COOKIE);
	ck_assert(len == 1 && *tok == '1');
	ck_assert_int_eq(mercure_token_find(NULL, NULL, 0, NULL, &tok, &len), MERCURE_TOKEN_NONE);
	ck_assert_ptr_null(tok);
}
END_TEST

Suite *mercure_suite(void)
{
	Suite *s = suite_create("mercure");
	TCase *t = tcase_create("mercure");
	tcase_add_test(t, selector_exact_and_any);
	tcase_add_test(t, selector_simple_templates);
	tcase_add_test(t, selector_operators);
	tcase_add_test(t, selector_not_templates);
	tcase_add_test(t, selector_limits);
	tcase_add_test(t, selector_linear_time);
	tcase_add_test(t, authorization);
	tcase_add_test(t, publish_form);
	tcase_add_test(t, publish_refused);
	tcase_add_test(t, update_ids);
	tcase_add_test(t, event_render);
	tcase_add_test(t, subscribe_query);
	tcase_add_test(t, token_place);
	suite_add_tcase(s, t);
	return s;
}
