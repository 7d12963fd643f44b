/* Unit tests: the FastCGI record reader, fed whole, byte by byte, and
 * broken; and the records an answer is written in. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fcgi.h"
#include "suites.h"
#include "wire.h"

static struct fcgi_in feed_all(const struct buf *b, size_t body_max, size_t step)
{
	struct fcgi_in in;
	fcgi_in_init(&in, body_max);
	struct buf pending = BUF_INIT;
	for (size_t off = 0; off < b->len; off += step) {
		size_t n = b->len - off < step ? b->len - off : step;
		buf_add(&pending, b->p + off, n);
		size_t used = fcgi_in_parse(&in, pending.p, pending.len);
		memmove(pending.p, pending.p + used, pending.len - used);
		pending.len -= used;
	}
	buf_free(&pending);
	return in;
}

START_TEST(whole_request)
{
	struct buf b = BUF_INIT;
	char longv[300];
	memset(longv, 'v', sizeof longv - 1);
	longv[sizeof longv - 1] = '\0';
	const char *params[] = { "REQUEST_METHOD", "POST", "QUERY_STRING", "channel=a",
				 "HTTP_X_LONG", longv, NULL };
	wire_request(&b, 7, params, "hello", 5);
	for (size_t step = 1; step <= b.len; step = step * 3 + 1) {
		struct fcgi_in in = feed_all(&b, 1024, step);
		ck_assert_int_eq(in.state, FCGI_DONE);
		ck_assert_int_eq(in.id, 7);
		ck_assert_str_eq(fcgi_env_get(in.env, "REQUEST_METHOD"), "POST");
		ck_assert_str_eq(fcgi_env_get(in.env, "QUERY_STRING"), "channel=a");
		ck_assert_str_eq(fcgi_env_get(in.env, "HTTP_X_LONG"), longv);
		ck_assert_ptr_null(fcgi_env_get(in.env, "REQUEST"));
		ck_assert_uint_eq(in.body.len, 5);
		ck_assert_int_eq(memcmp(in.body.p, "hello", 5), 0);
		ck_assert(!fcgi_in_overflow(&in));
		fcgi_in_free(&in);
	}
	buf_free(&b);
}
END_TEST

START_TEST(body_over_the_bound_is_counted_not_kept)
{
	struct buf b = BUF_INIT;
	const char *params[] = { "REQUEST_METHOD", "POST", NULL };
	wire_request(&b, 1, params, "0123456789", 10);
	struct fcgi_in in = feed_all(&b, 4, 3);
	ck_assert_int_eq(in.state, FCGI_DONE);
	ck_assert(fcgi_in_overflow(&in));
	ck_assert_uint_eq(in.body.len, 4);
	ck_assert_uint_eq(in.body_seen, 10);
	fcgi_in_free(&in);
	buf_free(&b);
}
END_TEST

START_TEST(stalled_request_waits)
{
	struct buf b = BUF_INIT;
	const char *params[] = { "REQUEST_METHOD", "POST", NULL };
	wire_request(&b, 1, params, "0123456789", 10);
	/* Everything but the empty STDIN record that ends the body. */
	b.len -= 8;
	struct fcgi_in in = feed_all(&b, 100, 5);
	ck_assert_int_eq(in.state, FCGI_STDIN);
	fcgi_in_free(&in);
	buf_free(&b);
}
END_TEST

START_TEST(broken_input_fails_cleanly)
{
	unsigned char bad_version[8] = { 2, 1, 0, 1, 0, 0, 0, 0 };
	struct fcgi_in in;
	fcgi_in_init(&in, 10);
	fcgi_in_parse(&in, (char *)bad_version, 8);
	ck_assert_int_eq(in.state, FCGI_FAILED);
	fcgi_in_free(&in);

	/* STDIN before BEGIN_REQUEST. */
	unsigned char stdin_first[8] = { 1, 5, 0, 1, 0, 0, 0, 0 };
	fcgi_in_init(&in, 10);
	fcgi_in_parse(&in, (char *)stdin_first, 8);
	ck_assert_int_eq(in.state, FCGI_FAILED);
	fcgi_in_free(&in);

	/* A name length past the end of the parameters. */
	struct buf b = BUF_INIT;
	wire_record(&b, 1, 1, "\0\1\0\0\0\0\0\0", 8);
	wire_record(&b, 4, 1, "\x7f\x01" "AB", 4);
	wire_record(&b, 4, 1, NULL, 0);
	fcgi_in_init(&in, 10);
	fcgi_in_parse(&in, b.p, b.len);
	ck_assert_int_eq(in.state, FCGI_FAILED);
	ck_assert_ptr_nonnull(in.error);
	fcgi_in_free(&in);
	buf_free(&b);

	/* The role of an authorizer. */
	wire_record(&b, 1, 1, "\0\2\0\0\0\0\0\0", 8);
	fcgi_in_init(&in, 10);
	fcgi_in_parse(&in, b.p, b.len);
	ck_assert_int_eq(in.state, FCGI_FAILED);
	fcgi_in_free(&in);
	buf_free(&b);

	/* ABORT_REQUEST. */
	wire_record(&b, 1, 1, "\0\1\0\0\0\0\0\0", 8);
	wire_record(&b, 2, 1, NULL, 0);
	fcgi_in_init(&in, 10);
	fcgi_in_parse(&in, b.p, b.len);
	ck_assert_int_eq(in.state, FCGI_ABORTED);
	fcgi_in_free(&in);
	buf_free(&b);
}
END_TEST

/* Whatever the socket's reads cut a request into, the reader ends with
 * the same request: split in two at every byte, and followed by the first
 * bytes of another (never taken for this one's). */
START_TEST(split_at_every_byte)
{
	struct buf b = BUF_INIT, next = BUF_INIT;
	const char *params[] = { "REQUEST_METHOD", "GET", "QUERY_STRING", "channel=a&since=4",
				 NULL };
	wire_request(&b, 1, params, NULL, 0);
	wire_request(&next, 1, params, NULL, 0);
	size_t whole = b.len;
	buf_add(&b, next.p, 11);
	for (size_t cut = 0; cut <= whole; cut++) {
		struct fcgi_in in;
		fcgi_in_init(&in, 100);
		size_t used = fcgi_in_parse(&in, b.p, cut);
		struct buf rest = BUF_INIT;
		buf_add(&rest, b.p + used, b.len - used);
		used += fcgi_in_parse(&in, rest.p, rest.len);
		ck_assert_msg(in.state == FCGI_DONE, "cut at %zu: state %d", cut, in.state);
		ck_assert_uint_eq(used, whole);
		ck_assert_str_eq(fcgi_env_get(in.env, "QUERY_STRING"), "channel=a&since=4");
		fcgi_in_free(&in);
		buf_free(&rest);
	}
	buf_free(&b);
	buf_free(&next);
}
END_TEST

/* Parameters beyond the bound are read and dropped, the request read to
 * its end: it can be answered (431) instead of cut off. */
START_TEST(params_over_the_bound_are_dropped_not_fatal)
{
	struct buf b = BUF_INIT;
	size_t n = FCGI_PARAMS_MAX + 1000;
	char *huge = malloc(n + 1);
	memset(huge, 'q', n);
	huge[n] = '\0';
	const char *params[] = { "REQUEST_METHOD", "GET", "QUERY_STRING", huge, NULL };
	wire_request(&b, 5, params, "body", 4);
	for (size_t step = 1000; step <= b.len; step *= 7) {
		struct fcgi_in in = feed_all(&b, 100, step);
		ck_assert_int_eq(in.state, FCGI_DONE);
		ck_assert_int_eq(in.id, 5);
		ck_assert(fcgi_in_params_over(&in));
		ck_assert_ptr_null(fcgi_env_get(in.env, "REQUEST_METHOD"));
		ck_assert_uint_eq(in.body_seen, 4);
		fcgi_in_free(&in);
	}
	free(huge);
	buf_free(&b);
}
END_TEST

START_TEST(answer_records)
{
	struct buf b = BUF_INIT;
	char *big = malloc(70000);
	memset(big, 'x', 70000);
	fcgi_stdout(&b, 3, big, 70000, true);
	struct buf out = BUF_INIT;
	bool ended = false;
	ck_assert_int_eq(wire_answer(b.p, b.len, &out, &ended), (long)b.len);
	ck_assert(ended);
	ck_assert_uint_eq(out.len, 70000);
	ck_assert_int_eq(memcmp(out.p, big, 70000), 0);
	free(big);
	buf_free(&b);
	buf_free(&out);
}
END_TEST

Suite *fcgi_suite(void)
{
	Suite *s = suite_create("fcgi");
	TCase *t = tcase_create("reader");
	tcase_add_test(t, whole_request);
	tcase_add_test(t, body_over_the_bound_is_counted_not_kept);
	tcase_add_test(t, stalled_request_waits);
	tcase_add_test(t, broken_input_fails_cleanly);
	tcase_add_test(t, answer_records);
	tcase_add_test(t, split_at_every_byte);
	tcase_add_test(t, params_over_the_bound_are_dropped_not_fatal);
	suite_add_tcase(s, t);
	return s;
}
