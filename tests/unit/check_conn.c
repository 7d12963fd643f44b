/* Unit tests: conn, one request and its answer, on real socket pairs whose
 * web-server end the test plays. Tables of how a request arrives (whole,
 * in pieces, cut, broken, with parameters over the bound) and of how an
 * answer leaves (sends and answers, through a socket that takes a little
 * at a time or one that is not read until the end, ended by an answer or
 * by a close): the answer's bytes arrive whole and in order, and the
 * records that end a request come exactly once, or not at all after a
 * record cut in the middle. CGI mode on stdin and stdout. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "fcgi.h"
#include "suites.h"
#include "wire.h"

static void socket_pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
}

/* Whatever the socket has now, added to raw; false once the peer closed. */
static bool drain(int fd, struct buf *raw)
{
	char chunk[65536];
	for (;;) {
		ssize_t got = read(fd, chunk, sizeof chunk);
		if (got > 0) {
			buf_add(raw, chunk, (size_t)got);
			continue;
		}
		return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
}

/* The request every table row sends, in whole or in part. */
static const char *const PARAMS[] = { "REQUEST_METHOD", "POST", "QUERY_STRING", "channel=a",
				      "CONTENT_TYPE", "text/plain", NULL };
#define BODY "hello world"

enum shape { WHOLE, NOT_BEGIN, SECOND_REQUEST, ABORTED };

/* The bytes of a request of the given shape. */
static void request_bytes(struct buf *b, enum shape shape)
{
	switch (shape) {
	case WHOLE:
		wire_request(b, 1, PARAMS, BODY, strlen(BODY));
		break;
	case NOT_BEGIN:
		wire_record(b, 4, 1, NULL, 0);
		break;
	case SECOND_REQUEST:
		wire_record(b, 1, 1, "\0\1\0\0\0\0\0\0", 8);
		wire_record(b, 4, 2, NULL, 0);
		break;
	case ABORTED:
		wire_record(b, 1, 1, "\0\1\0\0\0\0\0\0", 8);
		wire_record(b, 2, 1, NULL, 0);
		break;
	}
}

/* Writes len bytes of p to client, step bytes at a time (0: as much as
 * the socket takes), with a conn_fill after each write; returns the last
 * conn_fill, or CONN_MORE when none said otherwise. */
static enum conn_fill feed(struct conn *c, int client, const char *p, size_t len, size_t step)
{
	enum conn_fill got = CONN_MORE;
	size_t off = 0;
	while (off < len && got == CONN_MORE) {
		size_t n = step && len - off > step ? step : len - off;
		ssize_t w = write(client, p + off, n);
		ck_assert_msg(w > 0 || errno == EAGAIN, "write: %s", strerror(errno));
		if (w > 0)
			off += (size_t)w;
		got = conn_fill(c);
	}
	return got;
}

/* Bytes of a request sent: all of them (or a count, or all but -count). */
#define ALL LONG_MAX

/* How a request arrives, and what conn_fill and the conn make of it. */
static const struct fill_case {
	const char *name;
	enum shape shape;
	size_t step;		/* bytes per write and conn_fill; 0: all at once */
	long sent;		/* ALL, that many bytes, or (negative) all but that many */
	bool hangup;		/* the web server closes after what it sent */
	size_t body_max;
	enum conn_fill want;
	int begun;		/* conn_begun: 1, 0, or -1 not asked */
	bool error;		/* conn_error says why */
	bool overflow;		/* READY: the body was over body_max */
} fill_cases[] = {
	{ "whole", WHOLE, 0, ALL, false, 1024, CONN_READY, 1, false, false },
	{ "byte by byte", WHOLE, 1, ALL, false, 1024, CONN_READY, 1, false, false },
	{ "in 7-byte pieces", WHOLE, 7, ALL, false, 1024, CONN_READY, 1, false, false },
	{ "a body over body_max", WHOLE, 0, ALL, false, 4, CONN_READY, 1, false, true },
	{ "a body of exactly body_max", WHOLE, 3, ALL, false, 11, CONN_READY, 1, false, false },
	{ "nothing, then a hang-up", WHOLE, 0, 0, true, 1024, CONN_GONE, 0, false, false },
	{ "cut in the first header, waiting", WHOLE, 0, 4, false, 1024, CONN_MORE, 0, false,
	  false },
	{ "cut in the first header, then a hang-up", WHOLE, 0, 4, true, 1024, CONN_GONE, 0,
	  false, false },
	/* BEGIN_REQUEST is 16 bytes; then a parameters header and 4 of its
	 * content bytes. */
	{ "cut in a parameters record, waiting", WHOLE, 1, 16 + 8 + 4, false, 1024, CONN_MORE, 1,
	  false, false },
	{ "cut in a parameters record, then a hang-up", WHOLE, 0, 16 + 8 + 4, true, 1024,
	  CONN_GONE, 1, false, false },
	/* The body record's header and 3 of its 11 bytes; the empty STDIN
	 * record (8) does not come. */
	{ "cut in the body record, then a hang-up", WHOLE, 0, -(8 + 8), true, 1024, CONN_GONE, 1,
	  false, false },
	{ "all but the body's end, waiting", WHOLE, 0, -8, false, 1024, CONN_MORE, 1, false,
	  false },
	{ "a first record that is not BEGIN_REQUEST", NOT_BEGIN, 0, ALL, false, 1024, CONN_GONE,
	  -1, true, false },
	{ "a second request on the connection", SECOND_REQUEST, 0, ALL, false, 1024, CONN_GONE, 1,
	  true, false },
	{ "aborted by the web server", ABORTED, 0, ALL, false, 1024, CONN_GONE, 1, false, false },
};

START_TEST(request_arrives)
{
	const struct fill_case *t = &fill_cases[_i];
	int sv[2];
	socket_pair(sv);
	struct buf b = BUF_INIT;
	request_bytes(&b, t->shape);
	size_t len = t->sent == ALL ? b.len : t->sent < 0 ? b.len - (size_t)-t->sent : (size_t)t->sent;
	struct conn *c = conn_fcgi(sv[0], 1, t->body_max);
	enum conn_fill got = len ? feed(c, sv[1], b.p, len, t->step) : CONN_MORE;
	if (t->hangup) {
		close(sv[1]);
		sv[1] = -1;
		got = conn_fill(c);
	}
	ck_assert_msg(got == t->want, "%s: conn_fill %d, want %d", t->name, got, t->want);
	if (t->begun >= 0)
		ck_assert_msg(conn_begun(c) == (t->begun == 1), "%s: begun", t->name);
	ck_assert_msg((conn_error(c) != NULL) == t->error, "%s: error %s", t->name,
		      conn_error(c) ? conn_error(c) : "(none)");
	if (got == CONN_READY) {
		ck_assert(!conn_params_over(c));
		ck_assert_str_eq(conn_param(c, "QUERY_STRING"), "channel=a");
		ck_assert_ptr_null(conn_param(c, "HTTP_HOST"));
		bool over;
		const struct buf *body = conn_body(c, &over);
		ck_assert_msg(over == t->overflow, "%s: overflow", t->name);
		size_t want = t->overflow ? t->body_max : strlen(BODY);
		ck_assert_uint_eq(body->len, want);
		ck_assert_int_eq(memcmp(body->p, BODY, want), 0);
		/* Parked, a held request keeps its socket and nothing else. */
		conn_park(c);
		ck_assert_ptr_null(conn_param(c, "QUERY_STRING"));
		ck_assert_int_eq(conn_fd(c), sv[0]);
	}
	conn_close(c);
	if (sv[1] >= 0)
		close(sv[1]);
	buf_free(&b);
}
END_TEST

/* Parameters around FCGI_PARAMS_MAX, in one header or spread over many:
 * within it they are kept; beyond it the request is still read to its end
 * (so that it can be answered: the handler's 431) and none is kept. */
static const struct params_case {
	const char *name;
	size_t value;		/* bytes of each value */
	int count;		/* parameters of that size */
	bool over;
} params_cases[] = {
	{ "one large header within the bound", FCGI_PARAMS_MAX - 4096, 1, false },
	{ "one header just over the bound", FCGI_PARAMS_MAX, 1, true },
	{ "a 1 MB query string", 1 << 20, 1, true },
	{ "many headers that add up to over the bound", 8192, 40, true },
};

START_TEST(parameters_over_the_bound)
{
	const struct params_case *t = &params_cases[_i];
	int sv[2];
	socket_pair(sv);
	char *value = malloc(t->value + 1);
	memset(value, 'v', t->value);
	value[t->value] = '\0';
	const char *params[2 * 41 + 5] = { "REQUEST_METHOD", "GET", "QUERY_STRING", "channel=a" };
	char names[40][24];	/* "HTTP_X_PAD_" and any int */
	int k = 4;
	for (int i = 0; i < t->count; i++) {
		snprintf(names[i], sizeof names[i], "HTTP_X_PAD_%d", i);
		params[k++] = names[i];
		params[k++] = value;
	}
	params[k] = NULL;
	struct buf b = BUF_INIT;
	wire_request(&b, 1, params, NULL, 0);
	struct conn *c = conn_fcgi(sv[0], 1, 1024);
	enum conn_fill got = feed(c, sv[1], b.p, b.len, 0);
	ck_assert_msg(got == CONN_READY, "%s: conn_fill %d", t->name, got);
	ck_assert_msg(conn_params_over(c) == t->over, "%s: params over", t->name);
	if (t->over) {
		ck_assert_ptr_null(conn_param(c, "QUERY_STRING"));
	} else {
		ck_assert_str_eq(conn_param(c, "QUERY_STRING"), "channel=a");
		ck_assert_uint_eq(strlen(conn_param(c, names[0])), t->value);
	}
	/* Either way, the request can be answered. */
	ck_assert_int_eq(conn_answer(c, "Status: 431\r\n\r\n", 15), 0);
	conn_close(c);
	struct buf raw = BUF_INIT, out = BUF_INIT;
	struct wire_seen seen = { 0, 0, 0 };
	drain(sv[1], &raw);
	wire_scan(raw.p, raw.len, &out, &seen);
	ck_assert_int_eq(seen.end_requests, 1);
	ck_assert_uint_eq(out.len, 15);
	close(sv[1]);
	free(value);
	buf_free(&b);
	buf_free(&raw);
	buf_free(&out);
}
END_TEST

/* How an answer leaves. */
enum ending {
	BY_ANSWER,	/* conn_answer, then conn_close */
	BY_CLOSE,	/* conn_close once every send is written */
	CLOSE_CUT,	/* conn_close while a record is still queued */
};

static const struct out_case {
	const char *name;
	int sndbuf;		/* SO_SNDBUF of the program's end; 0: the default */
	size_t sends[4];	/* conn_send sizes, 0-terminated */
	size_t answer;		/* conn_answer's size (BY_ANSWER) */
	bool read_between;	/* the web server reads after every send */
	enum ending ending;
	bool queues;		/* some output had to wait (partial writes) */
	int ends;		/* end records expected: 1, or 0 after a cut */
} out_cases[] = {
	{ "a small answer", 0, { 0 }, 100, true, BY_ANSWER, false, 1 },
	{ "an empty answer", 0, { 0 }, 0, true, BY_ANSWER, false, 1 },
	{ "sends, then the answer", 0, { 10, 20000, 0 }, 5, true, BY_ANSWER, false, 1 },
	{ "an answer of several records", 4096, { 0 }, 200000, true, BY_ANSWER, true, 1 },
	{ "partial writes, read as they come", 4096, { 30000, 1, 70000, 0 }, 30000, true,
	  BY_ANSWER, true, 1 },
	{ "partial writes, read only at the end", 4096, { 30000, 1, 70000, 0 }, 30000, false,
	  BY_ANSWER, true, 1 },
	{ "sends, then a close", 4096, { 500, 70000, 0 }, 0, true, BY_CLOSE, true, 1 },
	{ "a close of a request never answered", 0, { 0 }, 0, true, BY_CLOSE, false, 1 },
	{ "a close with a record cut in the middle", 4096, { 100000, 0 }, 0, false, CLOSE_CUT,
	  true, 0 },
};

/* The web server reads what there is; the program writes more of its
 * queue. */
static void pump(struct conn *c, int client, struct buf *raw, bool *queued)
{
	*queued |= conn_pending(c) > 0;
	drain(client, raw);
	ck_assert_int_eq(conn_flush(c), 0);
}

START_TEST(answer_leaves)
{
	const struct out_case *t = &out_cases[_i];
	int sv[2];
	socket_pair(sv);
	struct buf req = BUF_INIT, raw = BUF_INIT, out = BUF_INIT, want = BUF_INIT;
	wire_request(&req, 1, PARAMS, NULL, 0);
	struct conn *c = conn_fcgi(sv[0], 1, 1024);
	ck_assert_int_eq(feed(c, sv[1], req.p, req.len, 0), CONN_READY);
	if (t->sndbuf)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &t->sndbuf, sizeof t->sndbuf);
	size_t total = t->answer;
	for (int i = 0; t->sends[i]; i++)
		total += t->sends[i];
	char *data = malloc(total + 1);
	for (size_t i = 0; i < total; i++)
		data[i] = (char)('a' + i % 23);
	size_t off = 0;
	bool queued = false;
	for (int i = 0; t->sends[i]; i++) {
		ck_assert_int_eq(conn_send(c, data + off, t->sends[i]), 0);
		off += t->sends[i];
		if (t->read_between)
			pump(c, sv[1], &raw, &queued);
	}
	if (t->ending == BY_ANSWER) {
		ck_assert_int_eq(conn_answer(c, data + off, t->answer), 0);
		off += t->answer;
		/* Ended: nothing more goes out. */
		ck_assert_int_eq(conn_send(c, "x", 1), -1);
		ck_assert_int_eq(conn_answer(c, "x", 1), -1);
	}
	buf_add(&want, data, off);
	queued |= conn_pending(c) > 0;
	if (t->ending != CLOSE_CUT) {
		for (int i = 0; i < 100000 && conn_pending(c); i++)
			pump(c, sv[1], &raw, &queued);
		ck_assert_uint_eq(conn_pending(c), 0);
	}
	conn_close(c);
	while (drain(sv[1], &raw))
		;
	struct wire_seen seen = { 0, 0, 0 };
	long used = wire_scan(raw.p, raw.len, &out, &seen);
	ck_assert_msg(queued == t->queues, "%s: queued %d", t->name, queued);
	ck_assert_msg(seen.end_requests == t->ends && seen.stdout_ends == t->ends,
		      "%s: %d END_REQUEST and %d empty STDOUT records, want %d of each", t->name,
		      seen.end_requests, seen.stdout_ends, t->ends);
	if (t->ending == CLOSE_CUT) {
		/* What went out is what was sent, up to where it stopped. */
		ck_assert_uint_lt(out.len, want.len);
		ck_assert(out.len == 0 || memcmp(out.p, want.p, out.len) == 0);
	} else {
		ck_assert_uint_eq((size_t)used, raw.len);
		ck_assert_uint_eq(out.len, want.len);
		ck_assert_msg(out.len == 0 || memcmp(out.p, want.p, out.len) == 0,
			      "%s: the answer's bytes differ", t->name);
	}
	close(sv[1]);
	free(data);
	buf_free(&req);
	buf_free(&raw);
	buf_free(&out);
	buf_free(&want);
}
END_TEST

/* A web server that went away: sending fails, and close still frees. */
START_TEST(peer_gone)
{
	int sv[2];
	socket_pair(sv);
	struct buf req = BUF_INIT;
	wire_request(&req, 1, PARAMS, NULL, 0);
	struct conn *c = conn_fcgi(sv[0], 1, 1024);
	ck_assert_int_eq(feed(c, sv[1], req.p, req.len, 0), CONN_READY);
	close(sv[1]);
	ck_assert_int_eq(conn_answer(c, "Status: 200 OK\r\n\r\n", 18), -1);
	conn_close(c);
	buf_free(&req);
}
END_TEST

/* conn_release hands the socket over open, the request freed. */
START_TEST(release_keeps_the_socket)
{
	int sv[2];
	socket_pair(sv);
	struct buf req = BUF_INIT, raw = BUF_INIT;
	wire_request(&req, 1, PARAMS, NULL, 0);
	struct conn *c = conn_fcgi(sv[0], 1, 1024);
	ck_assert_int_eq(feed(c, sv[1], req.p, req.len, 0), CONN_READY);
	ck_assert_int_eq(conn_answer(c, "ok", 2), 0);
	int fd = conn_release(c);
	ck_assert_int_eq(fd, sv[0]);
	ck_assert_int_eq(write(fd, "!", 1), 1);
	close(fd);
	while (drain(sv[1], &raw))
		;
	ck_assert_int_eq(raw.p[raw.len - 1], '!');
	close(sv[1]);
	buf_free(&req);
	buf_free(&raw);
}
END_TEST

/* CGI: the parameters are the environment, the body is CONTENT_LENGTH
 * bytes of stdin, the answer goes to stdout as it is (no records). */
static const struct cgi_case {
	const char *name;
	const char *content_length;	/* NULL: none */
	const char *stdin_bytes;
	size_t body_max;
	const char *body;		/* NULL: conn_body gives none */
	bool overflow;
} cgi_cases[] = {
	{ "a body", "5", "hello", 1024, "hello", false },
	{ "no body", NULL, "", 1024, "", false },
	{ "a body over body_max", "10", "0123456789", 4, "0123", true },
	{ "a body cut short", "10", "012", 1024, NULL, false },
	{ "stdin longer than CONTENT_LENGTH", "3", "abcdef", 1024, "abc", false },
};

START_TEST(cgi_request)
{
	const struct cgi_case *t = &cgi_cases[_i];
	int in[2], out[2];
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(write(in[1], t->stdin_bytes, strlen(t->stdin_bytes)),
			 (ssize_t)strlen(t->stdin_bytes));
	close(in[1]);
	int saved_in = dup(STDIN_FILENO), saved_out = dup(STDOUT_FILENO);
	dup2(in[0], STDIN_FILENO);
	dup2(out[1], STDOUT_FILENO);
	close(in[0]);
	close(out[1]);
	char method[] = "REQUEST_METHOD=POST", query[] = "QUERY_STRING=channel=a", cl[64];
	snprintf(cl, sizeof cl, "CONTENT_LENGTH=%s", t->content_length ? t->content_length : "");
	char *env[] = { method, query, t->content_length ? cl : NULL, NULL };
	struct conn *c = conn_cgi(env, 1, t->body_max);
	ck_assert(conn_begun(c));
	ck_assert_int_eq(conn_fd(c), -1);
	ck_assert(!conn_params_over(c));
	ck_assert_str_eq(conn_param(c, "QUERY_STRING"), "channel=a");
	bool over = false;
	const struct buf *body = conn_body(c, &over);
	if (t->body) {
		ck_assert_msg(body != NULL, "%s: no body", t->name);
		/* By length: the handler copies the body by its length. */
		ck_assert_uint_eq(body->len, strlen(t->body));
		ck_assert(body->len == 0 || memcmp(body->p, t->body, body->len) == 0);
		ck_assert_msg(over == t->overflow, "%s: overflow", t->name);
	} else {
		ck_assert_msg(body == NULL, "%s: a body", t->name);
	}
	static const char answer[] = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok";
	ck_assert_int_eq(conn_send(c, answer, 10), 0);
	ck_assert_int_eq(conn_answer(c, answer + 10, sizeof answer - 11), 0);
	conn_close(c);
	dup2(saved_out, STDOUT_FILENO);
	dup2(saved_in, STDIN_FILENO);
	close(saved_out);
	close(saved_in);
	char got[256];
	ssize_t n = read(out[0], got, sizeof got);
	close(out[0]);
	ck_assert_int_eq(n, (ssize_t)sizeof answer - 1);
	ck_assert_int_eq(memcmp(got, answer, sizeof answer - 1), 0);
}
END_TEST

#define ROWS(a) (int)(sizeof a / sizeof a[0])

Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *t = tcase_create("conn");
	tcase_set_timeout(t, 30);
	tcase_add_loop_test(t, request_arrives, 0, ROWS(fill_cases));
	tcase_add_loop_test(t, parameters_over_the_bound, 0, ROWS(params_cases));
	tcase_add_loop_test(t, answer_leaves, 0, ROWS(out_cases));
	tcase_add_test(t, peer_gone);
	tcase_add_test(t, release_keeps_the_socket);
	tcase_add_loop_test(t, cgi_request, 0, ROWS(cgi_cases));
	suite_add_tcase(s, t);
	return s;
}
