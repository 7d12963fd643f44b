/* Unit tests: the group commit, run by hand (commit_queue, commit_poll)
 * with publishers on real socket pairs and a real log. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "commit.h"
#include "conf.h"
#include "conn.h"
#include "msglog.h"
#include "notify.h"
#include "otherdb.h"
#include "suites.h"
#include "wire.h"

static char *dir;
static char db[4200];
static struct conf conf;
static struct notify *note;
static struct commit *com;

static const char *lookup(const char *name, void *arg)
{
	return strcmp(name, "COMET_DB") == 0 ? db : NULL;
}

static void setup(void)
{
	char err[512];
	dir = test_tmpdir();
	snprintf(db, sizeof db, "%s/comet.db", dir);
	ck_assert_msg(conf_load(&conf, lookup, NULL, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(notify_open(&note, db, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(commit_start(&com, &conf, note, NULL, false, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
	commit_close(com);
	notify_close(note);
	conf_free(&conf);
	test_rmtree(dir);
	free(dir);
}

/* A publish of data on chan as type, validated as the handler would not:
 * the commit must cope with what msglog_append refuses. */
static struct commit_job *job(int *client, const char *chan, const char *type, const char *data)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	const char *params[] = { "REQUEST_METHOD", "POST", NULL };
	struct buf b = BUF_INIT;
	wire_request(&b, 1, params, NULL, 0);
	ck_assert_int_eq(write(sv[1], b.p, b.len), (ssize_t)b.len);
	buf_free(&b);
	struct commit_job *j = xcalloc(1, sizeof *j);
	j->conn = conn_fcgi(sv[0], 1, 1024);
	ck_assert_int_eq(conn_fill(j->conn), CONN_READY);
	snprintf(j->chan, sizeof j->chan, "%s", chan);
	snprintf(j->type, sizeof j->type, "%s", type);
	buf_adds(&j->body, data);
	j->one = (struct msglog_msg){ j->chan, j->type, j->body.p, j->body.len, NULL };
	j->msg = &j->one;
	j->n = 1;
	*client = sv[1];
	return j;
}

/* The whole answer client was sent (the commit ends every request). */
static char *answer(int client)
{
	struct buf raw = BUF_INIT, out = BUF_INIT;
	char chunk[4096];
	ssize_t got;
	bool ended = false;
	while ((got = read(client, chunk, sizeof chunk)) > 0)
		buf_add(&raw, chunk, (size_t)got);
	wire_answer(raw.p, raw.len, &out, &ended);
	ck_assert_msg(ended, "no end of request");
	close(client);
	buf_free(&raw);
	return out.p ? out.p : xstrdup("");
}

START_TEST(one_refused_job_does_not_fail_its_group)
{
	int c1, c2, c3;
	commit_queue(com, job(&c1, "a", "text/plain", "one"));
	commit_queue(com, job(&c2, "a", "application/json", "{not json"));
	commit_queue(com, job(&c3, "b", "application/json", "{\"n\":3}"));
	commit_poll(com);
	char *a1 = answer(c1), *a2 = answer(c2), *a3 = answer(c3);
	ck_assert_msg(strstr(a1, "Status: 201") && strstr(a1, "\"id\":1,"), "%s", a1);
	ck_assert_msg(strstr(a2, "Status: 415"), "%s", a2);
	ck_assert_msg(strstr(a3, "Status: 201") && strstr(a3, "\"id\":2,"), "%s", a3);
	ck_assert_int_eq(commit_pending(com), 0);
	struct notify_stats st;
	notify_stats(note, &st);
	ck_assert_int_eq(st.published, 2);
	free(a1);
	free(a2);
	free(a3);
}
END_TEST

/* The wake-up word when a publisher was answered. */
static uint32_t seq_at_answer;
static int answered_status;

static void record_answer(struct commit_job *j, int status, const char *body, size_t len)
{
	(void)j;
	(void)body;
	(void)len;
	answered_status = status;
	seq_at_answer = notify_seq(note);
}

/* A publisher is answered before the hub is woken for the subscribers: a
 * web server that reads a thousand subscribers' answers first would hold
 * the publisher's 201 behind them all. */
START_TEST(publisher_answered_before_subscribers_are_woken)
{
	struct commit_job *j = xcalloc(1, sizeof *j);
	j->done = record_answer;
	snprintf(j->chan, sizeof j->chan, "a");
	snprintf(j->type, sizeof j->type, "text/plain");
	buf_adds(&j->body, "one");
	j->one = (struct msglog_msg){ j->chan, j->type, j->body.p, j->body.len, NULL };
	j->msg = &j->one;
	j->n = 1;
	uint32_t before = notify_seq(note);
	commit_queue(com, j);
	commit_poll(com);
	ck_assert_int_eq(answered_status, 201);
	ck_assert_uint_eq(seq_at_answer, before);
	ck_assert_uint_ne(notify_seq(note), before);
}
END_TEST

/* A database locked elsewhere fails the whole group at once, within one
 * busy timeout: 503 with Retry-After for each. */
START_TEST(locked_database_refuses_the_group_within_the_busy_timeout)
{
	int c[4];
	char err[512];
	struct msglog *l;
	ck_assert_msg(msglog_open(&l, db, NULL, false, err, sizeof err) == 0, "%s", err);
	msglog_close(l);
	void *other = otherdb_begin(db, "BEGIN IMMEDIATE");
	ck_assert_ptr_nonnull(other);
	for (int i = 0; i < 4; i++)
		commit_queue(com, job(&c[i], "a", "text/plain", "x"));
	int64_t t0 = clock_mono_ms();
	commit_poll(com);
	int64_t took = clock_mono_ms() - t0;
	ck_assert_msg(took < MSGLOG_BUSY_MS + 1000, "took %lld ms", (long long)took);
	for (int i = 0; i < 4; i++) {
		char *a = answer(c[i]);
		ck_assert_msg(strstr(a, "Status: 503") && strstr(a, "Retry-After:"), "%s", a);
		free(a);
	}
	otherdb_end(other);
	ck_assert_int_eq(commit_pending(com), 0);
}
END_TEST

Suite *commit_suite(void)
{
	Suite *s = suite_create("commit");
	TCase *t = tcase_create("commit");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, one_refused_job_does_not_fail_its_group);
	tcase_add_test(t, locked_database_refuses_the_group_within_the_busy_timeout);
	tcase_add_test(t, publisher_answered_before_subscribers_are_woken);
	suite_add_tcase(s, t);
	return s;
}
