/* Unit tests: the hub, driven one turn at a time (hub_poll) on a clock the
 * test moves, with requests on real socket pairs whose web-server end the
 * test plays, and a real log. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "conn.h"
#include "hub.h"
#include "msglog.h"
#include "notify.h"
#include "suites.h"
#include "wire.h"

static char *dir;
static char db[4200];
static struct conf conf;
static struct hub *hub;
static struct msglog *log_;
static struct notify *note;
static int64_t fake_now;

static int64_t fake_clock(void)
{
	return fake_now;
}

static const char *lookup(const char *name, void *arg)
{
	if (strcmp(name, "COMET_DB") == 0)
		return db;
	if (strcmp(name, "COMET_OUTPUT_MAX") == 0)
		return "16384";
	return NULL;
}

static void setup(void)
{
	char err[256];
	dir = test_tmpdir();
	snprintf(db, sizeof db, "%s/comet.db", dir);
	ck_assert_msg(conf_load(&conf, lookup, NULL, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(msglog_open(&log_, db, NULL, false, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(notify_open(&note, db, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(hub_start(&hub, &conf, false, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(hub_attach(hub, note, err, sizeof err) == 0, "%s", err);
	fake_now = 1000000;
	hub_set_clock(hub, fake_clock);
}

static void teardown(void)
{
	/* The hub and its notify stay: its watcher thread waits on the notify
	 * word for ever (a hub lives as long as its process). */
	msglog_close(log_);
	conf_free(&conf);
	test_rmtree(dir);
	free(dir);
}

static int64_t publish(const char *chan, const char *data, size_t n)
{
	struct msglog_msg m = { chan, "text/plain", data, n, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[256];
	ck_assert_msg(msglog_append(log_, &m, 1, clock_wall_ms(), &id, &ack, NULL, err, sizeof err) == 0,
		      "%s", err);
	buf_free(&ack);
	notify_bump(note);
	return id;
}

/* A request read whole by a conn; *client is the web server's end. */
static struct conn *request(int *client, const char *query)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	const char *params[] = { "REQUEST_METHOD", "GET", "QUERY_STRING", query, NULL };
	struct buf b = BUF_INIT;
	wire_request(&b, 1, params, NULL, 0);
	ck_assert_int_eq(write(sv[1], b.p, b.len), (ssize_t)b.len);
	buf_free(&b);
	struct conn *c = conn_fcgi(sv[0], 1, 1024);
	ck_assert_int_eq(conn_fill(c), CONN_READY);
	*client = sv[1];
	return c;
}

static struct waiter *subscriber_on(int *client, const char **names, int n, int64_t cursor,
				    bool stream)
{
	struct conn *c = request(client, "channel=x");
	conn_park(c);
	struct waiter *w = waiter_new(names, n);
	w->conn = c;
	w->cursor = cursor;
	w->checked = -1;
	w->stream = stream;
	w->limit = stream ? 1 << 30 : 100;
	w->end = fake_now + 300000;
	w->deadline = fake_now + (stream ? 15000 : 25000);
	return w;
}

static struct waiter *subscriber(int *client, const char *chan, int64_t cursor, bool stream)
{
	const char *names[] = { chan };
	return subscriber_on(client, names, 1, cursor, stream);
}

/* Reads what the hub sent to client; true once the request has ended. */
static bool take(int client, struct buf *raw, struct buf *out)
{
	bool ended = false;
	char chunk[65536];
	ssize_t got;
	while ((got = read(client, chunk, sizeof chunk)) > 0)
		buf_add(raw, chunk, (size_t)got);
	long used = wire_answer(raw->p, raw->len, out, &ended);
	if (used > 0) {
		memmove(raw->p, raw->p + used, raw->len - (size_t)used);
		raw->len -= (size_t)used;
	}
	buf_str(out);
	return ended;
}

/* Turns the hub until client's request has ended (at most 2 s of turns:
 * the doorbell comes from the watcher thread). */
static bool until_answered(int client, struct buf *out)
{
	struct buf raw = BUF_INIT;
	bool ended = false;
	for (int i = 0; i < 200 && !ended; i++) {
		hub_poll(hub, 10);
		ended = take(client, &raw, out);
	}
	buf_free(&raw);
	return ended;
}

START_TEST(publish_answers_a_listener)
{
	int client;
	hub_submit(hub, subscriber(&client, "a", 0, false));
	hub_poll(hub, 0);
	ck_assert_int_eq(hub_inflight(hub), 1);
	struct buf out = BUF_INIT;
	ck_assert(!take(client, &(struct buf)BUF_INIT, &out));
	int64_t id = publish("a", "hi", 2);
	ck_assert(until_answered(client, &out));
	char want[64];
	snprintf(want, sizeof want, "\"messages\":[{\"id\":%lld,", (long long)id);
	ck_assert_msg(strstr(out.p, want) && strstr(out.p, "\"data\":\"hi\""), "%s", out.p);
	ck_assert_int_eq(hub_inflight(hub), 0);
	buf_free(&out);
	close(client);
}
END_TEST

START_TEST(deadline_answers_empty)
{
	int client;
	struct buf out = BUF_INIT, raw = BUF_INIT;
	hub_submit(hub, subscriber(&client, "a", 0, false));
	hub_poll(hub, 0);
	fake_now += 24999;
	hub_poll(hub, 0);
	ck_assert(!take(client, &raw, &out));
	fake_now += 1;
	hub_poll(hub, 0);
	ck_assert(take(client, &raw, &out));
	ck_assert_msg(strstr(out.p, "\"messages\":[]"), "%s", out.p);
	ck_assert_int_eq(hub_inflight(hub), 0);
	buf_free(&out);
	buf_free(&raw);
	close(client);
}
END_TEST

START_TEST(hangup_ends_at_once)
{
	int client;
	hub_submit(hub, subscriber(&client, "a", 0, false));
	hub_poll(hub, 0);
	ck_assert_int_eq(hub_inflight(hub), 1);
	close(client);
	hub_poll(hub, 100);
	ck_assert_int_eq(hub_inflight(hub), 0);
	struct notify_stats st;
	notify_stats(note, &st);
	ck_assert_int_eq(st.waiting, 0);
}
END_TEST

START_TEST(delete_tells_a_held_subscriber_of_the_gap)
{
	int client;
	char err[256];
	int64_t first = publish("a", "one", 3);
	hub_submit(hub, subscriber(&client, "a", first, false));
	hub_poll(hub, 0);
	/* Published and deleted before the hub reads: nothing to send, but
	 * what the subscriber missed is gone. */
	publish("a", "two", 3);
	int64_t n;
	ck_assert(msglog_delete(log_, "a", &n, err, sizeof err) == 0);
	notify_bump(note);
	struct buf out = BUF_INIT;
	ck_assert(until_answered(client, &out));
	ck_assert_msg(strstr(out.p, "\"messages\":[]") && strstr(out.p, "\"gap\":true"), "%s", out.p);
	buf_free(&out);
	close(client);
}
END_TEST

START_TEST(answer_drains_as_the_socket_takes_it)
{
	int client;
	struct conn *c = request(&client, "");
	size_t n = 600000;
	char *big = malloc(n);
	memset(big, 'z', n);
	hub_answer(hub, c, big, n);
	struct buf out = BUF_INIT, raw = BUF_INIT;
	bool ended = take(client, &raw, &out);
	ck_assert_msg(!ended, "a socket pair holds less than 600 KB");
	for (int i = 0; i < 1000 && !ended; i++) {
		hub_poll(hub, 10);
		ended = take(client, &raw, &out);
	}
	ck_assert(ended);
	ck_assert_uint_eq(out.len, n);
	ck_assert_int_eq(hub_inflight(hub), 0);
	free(big);
	buf_free(&out);
	buf_free(&raw);
	close(client);
}
END_TEST

/* A stream that never reads is dropped after a keepalive interval without
 * progress; a listener on the same channel is answered meanwhile. */
START_TEST(stream_that_does_not_read_is_dropped)
{
	int slow, fast;
	struct waiter *w = subscriber(&slow, "s", 0, true);
	int small = 4096;
	setsockopt(conn_fd(w->conn), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	hub_submit(hub, w);
	hub_submit(hub, subscriber(&fast, "s", 0, false));
	hub_poll(hub, 0);
	char msg[4000];
	memset(msg, 'm', sizeof msg);
	for (int i = 0; i < 20; i++)
		publish("s", msg, sizeof msg);
	struct buf out = BUF_INIT;
	ck_assert(until_answered(fast, &out));
	ck_assert_int_eq(hub_inflight(hub), 1);
	fake_now += 15000;
	hub_poll(hub, 0);
	ck_assert_int_eq(hub_inflight(hub), 0);
	struct notify_stats st;
	notify_stats(note, &st);
	ck_assert_int_eq(st.dropped, 1);
	buf_free(&out);
	close(slow);
	close(fast);
}
END_TEST

/* A backlog far over COMET_OUTPUT_MAX reaches a stream that reads it, in
 * order, without ever queueing much more than the bound. */
START_TEST(stream_reads_a_long_backlog_in_order)
{
	char msg[1000];
	memset(msg, 'b', sizeof msg);
	for (int i = 0; i < 200; i++)
		publish("s", msg, sizeof msg);
	int client;
	hub_submit(hub, subscriber(&client, "s", 0, true));
	struct buf out = BUF_INIT, raw = BUF_INIT;
	for (int i = 0; i < 2000 && !(out.p && strstr(out.p, "id: 200\n")); i++) {
		hub_poll(hub, 10);
		take(client, &raw, &out);
	}
	int64_t seen = 0;
	for (char *p = out.p; p && (p = strstr(p, "id: ")) != NULL; p += 4) {
		ck_assert_int_eq(atoll(p + 4), seen + 1);
		seen++;
	}
	ck_assert_int_eq(seen, 200);
	ck_assert_int_eq(hub_inflight(hub), 1);
	buf_free(&out);
	buf_free(&raw);
	close(client);
}
END_TEST

/* The ids and data of the events in a stream's output, as "id:data;...". */
static void events_seen(const char *out, char *got, size_t n)
{
	got[0] = '\0';
	for (const char *p = out; p && (p = strstr(p, "id: ")) != NULL; p += 4) {
		const char *d = strstr(p, "\"data\":\"");
		ck_assert_ptr_nonnull(d);
		size_t len = strlen(got);
		snprintf(got + len, n - len, "%lld:%.2s;", atoll(p + 4), d + 8);
	}
}

/* Streams of one round get each message's event rendered once and copied:
 * each still gets exactly the events of its own channels, in order, whose
 * id and data are that message's. */
START_TEST(streams_of_a_round_get_their_own_events)
{
	int64_t last = publish("a", "a0", 2);
	int ca, cab, cb;
	hub_submit(hub, subscriber(&ca, "a", last, true));
	hub_submit(hub, subscriber_on(&cab, (const char *[]){ "a", "b" }, 2, last, true));
	hub_submit(hub, subscriber(&cb, "b", last, true));
	hub_poll(hub, 0);
	ck_assert_int_eq(hub_inflight(hub), 3);
	int64_t a1 = publish("a", "a1", 2), b1 = publish("b", "b1", 2);
	int64_t a2 = publish("a", "a2", 2);
	struct buf out[3] = { BUF_INIT, BUF_INIT, BUF_INIT }, raw[3] = { BUF_INIT, BUF_INIT, BUF_INIT };
	int client[3] = { ca, cab, cb };
	char got[3][256], want[3][256];
	snprintf(want[0], sizeof want[0], "%lld:a1;%lld:a2;", (long long)a1, (long long)a2);
	snprintf(want[1], sizeof want[1], "%lld:a1;%lld:b1;%lld:a2;", (long long)a1, (long long)b1,
		 (long long)a2);
	snprintf(want[2], sizeof want[2], "%lld:b1;", (long long)b1);
	for (int i = 0; i < 200; i++) {
		hub_poll(hub, 10);
		bool all = true;
		for (int k = 0; k < 3; k++) {
			take(client[k], &raw[k], &out[k]);
			events_seen(out[k].p, got[k], sizeof got[k]);
			all = all && strlen(got[k]) >= strlen(want[k]);
		}
		if (all)
			break;
	}
	for (int k = 0; k < 3; k++) {
		ck_assert_str_eq(got[k], want[k]);
		buf_free(&out[k]);
		buf_free(&raw[k]);
		close(client[k]);
	}
}
END_TEST

/* The number of an ended request's socket, taken at once by the next
 * connection (as accept(2) does on the accepting thread), belongs to that
 * connection alone: a round that answered and closed the old one, and a
 * hang-up, leave nothing behind that reads, writes or closes the new one. */
START_TEST(socket_number_reused_at_once)
{
	int old_client, client;
	struct buf out = BUF_INIT, raw = BUF_INIT;
	struct waiter *a = subscriber(&old_client, "r", 0, false);
	int number = conn_fd(a->conn);
	hub_submit(hub, a);
	hub_poll(hub, 0);
	publish("r", "first", 5);
	ck_assert(until_answered(old_client, &out));
	ck_assert_msg(strstr(out.p, "\"data\":\"first\""), "%s", out.p);
	struct waiter *b = subscriber(&client, "r", 1, false);
	ck_assert_int_eq(conn_fd(b->conn), number);
	hub_submit(hub, b);
	hub_poll(hub, 0);
	/* The old peer going away now concerns nobody. */
	close(old_client);
	hub_poll(hub, 0);
	ck_assert_int_eq(hub_inflight(hub), 1);
	buf_reset(&out);
	publish("r", "second", 6);
	ck_assert(until_answered(client, &out));
	ck_assert_msg(strstr(out.p, "\"data\":\"second\"") && !strstr(out.p, "first"), "%s",
		      out.p);
	close(client);
	/* A hang-up ends its request; the number is taken again, at once. */
	struct waiter *c = subscriber(&client, "r", 2, false);
	number = conn_fd(c->conn);
	hub_submit(hub, c);
	hub_poll(hub, 0);
	close(client);
	hub_poll(hub, 100);
	ck_assert_int_eq(hub_inflight(hub), 0);
	struct waiter *d = subscriber(&client, "r", 2, false);
	ck_assert_int_eq(conn_fd(d->conn), number);
	hub_submit(hub, d);
	hub_poll(hub, 0);
	buf_reset(&out);
	publish("r", "third", 5);
	ck_assert(until_answered(client, &out));
	ck_assert_msg(strstr(out.p, "\"data\":\"third\""), "%s", out.p);
	buf_free(&out);
	buf_free(&raw);
	close(client);
}
END_TEST

static uint64_t ended(enum hub_end why)
{
	struct notify_stats st;
	notify_stats(note, &st);
	return st.ends[why];
}

/* A stream hears a ping every keepalive interval while nothing comes, and
 * ends (expired) at the end of its life. */
START_TEST(stream_pings_then_expires)
{
	int client;
	struct buf out = BUF_INIT, raw = BUF_INIT;
	struct waiter *w = subscriber(&client, "p", 0, true);
	w->end = fake_now + 40000;
	hub_submit(hub, w);
	hub_poll(hub, 0);
	uint64_t expired = ended(HUB_EXPIRED);
	fake_now += 15000;
	hub_poll(hub, 0);
	ck_assert(!take(client, &raw, &out));
	ck_assert_msg(strstr(out.p ? out.p : "", "event: ping\ndata: {}\n\n"), "%s", out.p);
	fake_now += 15000;
	hub_poll(hub, 0);
	fake_now += 10000;
	hub_poll(hub, 0);
	ck_assert(take(client, &raw, &out));
	ck_assert_int_eq(ended(HUB_EXPIRED), expired + 1);
	ck_assert_int_eq(hub_inflight(hub), 0);
	buf_free(&out);
	buf_free(&raw);
	close(client);
}
END_TEST

/* A cursor ahead of the log (a log made anew) is told reset at once. */
START_TEST(cursor_ahead_is_reset)
{
	int client;
	publish("q", "one", 3);
	hub_submit(hub, subscriber(&client, "q", 99, false));
	struct buf out = BUF_INIT;
	ck_assert(until_answered(client, &out));
	ck_assert_msg(strstr(out.p, "\"reset\":true") && strstr(out.p, "\"last_id\":1,"), "%s",
		      out.p);
	buf_free(&out);
	close(client);
}
END_TEST

/* Storage gone under a held long-poll: 503, counted as failed. */
START_TEST(storage_failure_answers_503)
{
	int client;
	char gone[4300];
	snprintf(gone, sizeof gone, "%s/nowhere/comet.db", dir);
	struct conf broken = conf;
	broken.db = gone;
	struct hub *h2;
	char err[256];
	ck_assert_msg(hub_start(&h2, &broken, false, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(hub_attach(h2, note, err, sizeof err) == 0, "%s", err);
	hub_set_clock(h2, fake_clock);
	struct waiter *w = subscriber(&client, "f", 0, false);
	uint64_t failed = ended(HUB_FAILED);
	hub_submit(h2, w);
	struct buf out = BUF_INIT, raw = BUF_INIT;
	bool done = false;
	for (int i = 0; i < 50 && !done; i++) {
		hub_poll(h2, 10);
		done = take(client, &raw, &out);
	}
	ck_assert(done);
	ck_assert_msg(strstr(out.p, "Status: 503"), "%s", out.p);
	ck_assert_int_eq(ended(HUB_FAILED), failed + 1);
	buf_free(&out);
	buf_free(&raw);
	close(client);
}
END_TEST

/* Shutdown answers every held long-poll (empty) and ends every stream,
 * counted as shutdown; what is handed over later is answered too. */
START_TEST(stop_answers_everyone)
{
	int lp, st, late;
	hub_submit(hub, subscriber(&lp, "z", 0, false));
	hub_submit(hub, subscriber(&st, "z", 0, true));
	hub_poll(hub, 0);
	uint64_t before = ended(HUB_SHUTDOWN);
	hub_stop(hub);
	hub_poll(hub, 0);
	struct buf out = BUF_INIT, raw = BUF_INIT;
	ck_assert(take(lp, &raw, &out));
	ck_assert_msg(strstr(out.p, "\"messages\":[]"), "%s", out.p);
	buf_reset(&out);
	buf_reset(&raw);
	ck_assert(take(st, &raw, &out));
	hub_submit(hub, subscriber(&late, "z", 0, false));
	hub_poll(hub, 0);
	buf_reset(&out);
	buf_reset(&raw);
	ck_assert(take(late, &raw, &out));
	ck_assert_int_eq(ended(HUB_SHUTDOWN), before + 3);
	ck_assert_int_eq(hub_inflight(hub), 0);
	buf_free(&out);
	buf_free(&raw);
	close(lp);
	close(st);
	close(late);
}
END_TEST

/* A hub on its own threads is stopped and joined: every held request
 * answered before hub_end returns, and the hub freed. */
START_TEST(threaded_hub_starts_and_ends)
{
	char err[256];
	struct hub *h;
	ck_assert_msg(hub_start(&h, &conf, true, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(hub_attach(h, note, err, sizeof err) == 0, "%s", err);
	int lp, st;
	hub_submit(h, subscriber(&lp, "t", 0, false));
	hub_submit(h, subscriber(&st, "t", 0, true));
	hub_flush(h);
	for (int i = 0; i < 200 && hub_inflight(h) != 2; i++)
		usleep(1000);
	ck_assert(hub_end(h, clock_wall_ms() + 5000, true));
	struct buf out = BUF_INIT, raw = BUF_INIT;
	ck_assert(take(lp, &raw, &out));
	ck_assert_msg(strstr(out.p, "\"messages\":[]"), "%s", out.p);
	buf_reset(&raw);
	ck_assert(take(st, &raw, &out));
	buf_free(&out);
	buf_free(&raw);
	close(lp);
	close(st);
}
END_TEST

Suite *hub_suite(void)
{
	Suite *s = suite_create("hub");
	TCase *t = tcase_create("hub");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, publish_answers_a_listener);
	tcase_add_test(t, deadline_answers_empty);
	tcase_add_test(t, hangup_ends_at_once);
	tcase_add_test(t, delete_tells_a_held_subscriber_of_the_gap);
	tcase_add_test(t, answer_drains_as_the_socket_takes_it);
	tcase_add_test(t, stream_that_does_not_read_is_dropped);
	tcase_add_test(t, stream_reads_a_long_backlog_in_order);
	tcase_add_test(t, streams_of_a_round_get_their_own_events);
	tcase_add_test(t, socket_number_reused_at_once);
	tcase_add_test(t, stream_pings_then_expires);
	tcase_add_test(t, cursor_ahead_is_reset);
	tcase_add_test(t, storage_failure_answers_503);
	tcase_add_test(t, stop_answers_everyone);
	tcase_add_test(t, threaded_hub_starts_and_ends);
	suite_add_tcase(s, t);
	return s;
}
