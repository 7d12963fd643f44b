/* Unit tests: the log shared by hosts, on a real PostgreSQL (COMET_TEST_PG,
 * a URI; tests/unit/check_pglog.py starts a cluster of its own and runs
 * this suite alone). Two hosts are two state directories. */
#include "config.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "msglog.h"
#include "pglog.h"
#include "suites.h"

static const char *uri;
static char *host_a, *host_b;

static PGconn *admin(void);
static void admin_exec(PGconn *c, const char *sql);

/* Every test starts from an empty database: the program makes its schema
 * again at its first connection. */
static void setup(void)
{
	uri = getenv("COMET_TEST_PG");
	ck_assert_msg(uri != NULL, "COMET_TEST_PG is not set");
	/* What a failed test may have left, first: commits that wait for a
	 * standby (and hold what the tables' drop would wait for). */
	PGconn *c = admin();
	admin_exec(c, "ALTER SYSTEM RESET synchronous_standby_names");
	admin_exec(c, "SELECT pg_reload_conf()");
	PQfinish(c);
	c = PQconnectdb(uri);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, "SET client_min_messages = warning; "
			     "DROP TABLE IF EXISTS comet_state, comet_msg, comet_chan, "
			     "comet_dropped, comet_presence, comet_member, comet_owner; DROP FUNCTION IF EXISTS comet_publish, comet_append, "
			     "comet_write, comet_delete");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	host_a = test_tmpdir();
	host_b = test_tmpdir();
}

static void teardown(void)
{
	test_rmtree(host_a);
	test_rmtree(host_b);
	free(host_a);
	free(host_b);
}

static struct msglog *open_on(const char *state_dir)
{
	struct msglog *l;
	char err[256];
	ck_assert_msg(msglog_open(&l, uri, state_dir, false, err, sizeof err) == 0, "%s", err);
	return l;
}

static int64_t add(struct msglog *l, const char *chan, const char *data, struct buf *ack)
{
	struct msglog_msg m = { chan, "text/plain", data, strlen(data), NULL };
	int64_t id;
	char err[256];
	ck_assert_msg(msglog_append(l, &m, 1, clock_wall_ms(), &id, ack, NULL, err,
				    sizeof err) == 0, "%s", err);
	return id;
}

static int64_t add_at(struct msglog *l, const char *chan, int64_t now_ms)
{
	struct msglog_msg m = { chan, "text/plain", "m", 1, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[256];
	ck_assert_msg(msglog_append(l, &m, 1, now_ms, &id, &ack, NULL, err, sizeof err) == 0,
		      "%s", err);
	buf_free(&ack);
	return id;
}

static void rd(struct msglog *l, const char *chan, int64_t since, struct msglog_page *pg)
{
	const char *names[1] = { chan };
	char err[256];
	memset(pg, 0, sizeof *pg);
	ck_assert_msg(msglog_read(l, names, 1, since, 100, pg, err, sizeof err) == 0, "%s", err);
}

/* How many messages of chan after since l's copy holds (a page: 100 at
 * most). */
static int count_on(struct msglog *l, const char *chan, int64_t since)
{
	struct msglog_page pg;
	rd(l, chan, since, &pg);
	int n = pg.count;
	msglog_page_free(&pg);
	return n;
}

/* Copies what host b has not seen yet, as its follower would. */
static int follow(struct msglog *b)
{
	char err[256];
	int n = msglog_follow(b, 0, err, sizeof err);
	ck_assert_msg(n >= 0, "%s", err);
	return n;
}

/* Lets host b's follower copy until its copy holds id: the notification
 * of a publish may come after a read that copied it already (the next
 * follow then has nothing to do), so one follow is not enough. */
static int follow_until(struct msglog *b, int64_t id)
{
	char err[256];
	int total = 0;
	for (int64_t until = clock_mono_ms() + 10000; clock_mono_ms() < until;) {
		int64_t messages, last;
		ck_assert_msg(msglog_counts(b, &messages, &last, err, sizeof err) == 0, "%s", err);
		if (last >= id)
			return total;
		int n = msglog_follow(b, 1000, err, sizeof err);
		ck_assert_msg(n >= 0, "%s", err);
		total += n;
	}
	ck_abort_msg("the copy did not reach id %lld", (long long)id);
	return -1;
}

START_TEST(test_publish_copies_to_every_host)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	ck_assert(msglog_shared(a));
	struct buf ack = BUF_INIT;
	int64_t first = add(a, "chat", "one", &ack);
	add(a, "chat", "two", &ack);
	ck_assert_int_eq(first, 1);
	/* The ack has a local log's shape. */
	ck_assert_msg(strncmp(ack.p, "{\"id\":1,\"channel\":\"chat\",\"time\":", 32) == 0, "%s",
		      ack.p);
	/* The publishing host reads its own publish at once. */
	struct msglog_page pa, pb;
	rd(a, "chat", 0, &pa);
	ck_assert_int_eq(pa.count, 2);
	ck_assert_int_eq(pa.last_id, 2);
	/* The other host after its follower copied: the same answer. */
	follow(b);	/* the new connection: LISTEN */
	follow(b);
	rd(b, "chat", 0, &pb);
	ck_assert_int_eq(pb.count, 2);
	ck_assert_int_eq(pb.items.len, pa.items.len);
	ck_assert(memcmp(pb.items.p, pa.items.p, pa.items.len) == 0);
	/* Copied once: nothing new the next time. */
	ck_assert_int_eq(follow(b), 0);
	msglog_page_free(&pa);
	msglog_page_free(&pb);
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

START_TEST(test_batch_ids_and_one_sequence_across_hosts)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	struct msglog_msg m[3] = {
		{ "x", "text/plain", "1", 1, NULL }, { "y", "application/json", "{\"k\":2}", 7, NULL },
		{ "x", "text/plain", "3", 1, NULL },
	};
	int64_t ids[3];
	struct msglog_item at[3];
	struct buf acks = BUF_INIT;
	char err[256];
	ck_assert_msg(msglog_append(a, m, 3, 1000, ids, &acks, at, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_int_eq(ids[0], 1);
	ck_assert_int_eq(ids[2], 3);
	ck_assert(strncmp(acks.p + at[1].off, "{\"id\":2,\"channel\":\"y\",\"time\":1000}",
			  at[1].len) == 0);
	/* The next id on the other host follows on. */
	struct buf ack = BUF_INIT;
	ck_assert_int_eq(add(b, "x", "4", &ack), 4);
	struct msglog_page pg;
	rd(a, "y", 0, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert_msg(strstr(pg.items.p, "\"data\":{\"k\":2}") != NULL, "%s", pg.items.p);
	msglog_page_free(&pg);
	/* A JSON message that is not JSON is refused before PostgreSQL. */
	struct msglog_msg bad = { "y", "application/json", "{", 1, NULL };
	ck_assert_int_eq(msglog_append(a, &bad, 1, 1000, ids, &acks, NULL, err, sizeof err),
			 MSGLOG_EINVAL);
	buf_free(&acks);
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

START_TEST(test_retention_and_delete_reach_the_copies)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	msglog_retention(a, 2, 86400);
	struct buf ack = BUF_INIT;
	for (int i = 0; i < 5; i++)
		add(a, "r", "m", &ack);
	follow(b);
	follow(b);
	struct msglog_page pg;
	rd(b, "r", 1, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert_int_eq(pg.item[0].id, 4);
	ck_assert(pg.gap);
	msglog_page_free(&pg);
	/* DELETE on b: a's copy empties on a's next copy, with a gap for a
	 * cursor below what went. a's follower listens before, so that it is
	 * its notification (one that names no id) that makes it read. */
	follow(a);
	int64_t deleted;
	char err[256];
	ck_assert_msg(msglog_delete(b, "r", &deleted, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(deleted, 2);
	int n = msglog_follow(a, 5000, err, sizeof err);
	ck_assert_msg(n > 0, "copied %d: %s", n, n < 0 ? err : "nothing");
	rd(a, "r", 3, &pg);
	ck_assert_int_eq(pg.count, 0);
	ck_assert(pg.gap);
	ck_assert_int_eq(pg.last_id, 5);
	msglog_page_free(&pg);
	/* msglog_since, what a hub reads, sees the marks too. */
	struct msglog_batch bt;
	ck_assert_msg(msglog_since(a, 0, 100, &bt, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(bt.n, 0);
	ck_assert_int_eq(bt.last_id, 5);
	ck_assert_int_ge(bt.nmarks, 1);
	msglog_batch_free(&bt);
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

/* Count retention of batches that put a channel a few over (found under a
 * constant limit) and many over (by offset): the newest keep stay, in
 * every copy. */
START_TEST(test_count_retention_of_batches)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	msglog_retention(a, 2, 86400);
	static const int sizes[] = { 1, 3, 5, 1, 12, 10 };
	int64_t last = 0, seen = 0;
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		struct msglog_msg m[12];
		int64_t ids[12];
		struct buf acks = BUF_INIT;
		char err[256];
		for (int i = 0; i < sizes[k]; i++) {
			m[i] = (struct msglog_msg){ i % 4 == 3 ? "other" : "r", "text/plain", "m", 1,
						    NULL };
			seen += i % 4 != 3;
		}
		ck_assert_msg(msglog_append(a, m, sizes[k], clock_wall_ms(), ids, &acks, NULL, err,
					    sizeof err) == 0, "%s", err);
		buf_free(&acks);
		last = ids[sizes[k] - 1];
		follow_until(b, last);
		/* The two newest of r, by id, and nothing else of it. */
		int64_t want[2], n = 0;
		for (int i = sizes[k] - 1; i >= 0 && n < 2; i--)
			if (strcmp(m[i].channel, "r") == 0)
				want[n++] = ids[i];
		struct msglog *on[2] = { a, b };
		for (int h = 0; h < 2; h++) {
			struct msglog_page pg;
			rd(on[h], "r", 0, &pg);
			ck_assert_int_eq(pg.count, seen < 2 ? seen : 2);
			if (n == 2) {
				ck_assert_int_eq(pg.item[0].id, want[1]);
				ck_assert_int_eq(pg.item[1].id, want[0]);
			}
			msglog_page_free(&pg);
		}
	}
	msglog_close(a);
	msglog_close(b);
}
END_TEST

/* Age retention on the writes' own clocks (10 s): a write looks at the
 * oldest message only when comet_state.oldest, a bound on its time, may
 * have expired, and that bound is neither lost when unknown nor left
 * behind when it is made exact. */
START_TEST(test_age_retention_by_the_writes_clocks)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	msglog_retention(a, 1000, 10);
	const int64_t t0 = 1000000;
	add_at(a, "old", t0);
	add_at(a, "mid", t0 + 4000);
	/* A bound not known (dropped, or a schema 8 log) is looked for. */
	PGconn *c = PQconnectdb(uri);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, "UPDATE comet_state SET oldest = NULL");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(r);
	int64_t id = add_at(a, "new", t0 + 10500);
	follow_until(b, id);
	ck_assert_int_eq(count_on(b, "old", 0), 0);
	ck_assert_int_eq(count_on(b, "mid", 0), 1);
	/* After dropping, the next write finds the oldest again, not its own
	 * time: mid goes once it is 10 s old, not 10 s after that write. */
	add_at(a, "new", t0 + 11000);
	id = add_at(a, "new", t0 + 14001);
	follow_until(b, id);
	ck_assert_int_eq(count_on(b, "mid", 0), 0);
	ck_assert_int_eq(count_on(b, "new", 0), 3);
	/* A write from a clock behind lowers the bound; the next write looks
	 * at the oldest (by id) again, finds it current and makes the bound
	 * exact, dropping nothing: age goes by id, as with SQLite. */
	add_at(a, "new", t0 + 14200);
	add_at(b, "behind", t0 + 2000);
	r = PQexec(c, "SELECT oldest FROM comet_state");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "1002000");
	PQclear(r);
	id = add_at(a, "new", t0 + 14500);
	follow_until(b, id);
	ck_assert_int_eq(count_on(b, "new", 0), 5);
	ck_assert_int_eq(count_on(b, "behind", 0), 1);
	r = PQexec(c, "SELECT oldest FROM comet_state");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "1010500");
	PQclear(r);
	PQfinish(c);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

/* The hosts taking turns, retention leaving marks: after every publish the
 * publisher's copy reads as one made only by reading the shared log, and in
 * the end so does the other host's; a follower finds nothing left to copy
 * of its own host's publishes. */
START_TEST(test_copies_agree_however_made)
{
	char *host_c = test_tmpdir();
	struct msglog *a = open_on(host_a), *b = open_on(host_b), *c = open_on(host_c);
	msglog_retention(a, 3, 86400);
	msglog_retention(b, 3, 86400);
	struct buf ack = BUF_INIT;
	follow(a);	/* the new connections: LISTEN */
	follow(c);
	static const char *const order = "aabaabbbab";
	int64_t last = 0;
	for (int i = 0; order[i]; i++) {
		struct msglog *pub = order[i] == 'a' ? a : b;
		const char *chan = i % 3 ? "i" : "j";
		char data[16];
		snprintf(data, sizeof data, "m%d", i);
		last = add(pub, chan, data, &ack);
		int64_t id = last;
		/* Only a published since a's last copy: nothing left. */
		if (order[i] == 'a' && i > 3 && order[i - 1] == 'a')
			ck_assert_int_eq(follow(a), 0);
		/* The publisher reads at once what c, which only follows the
		 * shared log, reads after copying. */
		follow_until(c, id);
		struct msglog_page mine, ref;
		rd(pub, chan, 1, &mine);
		rd(c, chan, 1, &ref);
		ck_assert_int_eq(mine.count, ref.count);
		ck_assert_int_eq(mine.gap, ref.gap);
		ck_assert_int_eq(mine.last_id, ref.last_id);
		ck_assert_uint_eq(mine.items.len, ref.items.len);
		/* An empty page may have no buffer at all. */
		ck_assert(ref.items.len == 0 ||
			  memcmp(mine.items.p, ref.items.p, ref.items.len) == 0);
		msglog_page_free(&mine);
		msglog_page_free(&ref);
	}
	/* A notification that came before an earlier one's is held back a
	 * moment: one follow need not have copied everything. */
	follow_until(a, last);
	follow_until(b, last);
	/* i lost 2, 3 and 5 to retention; j only 1, the cursor. */
	const char *chans[2] = { "i", "j" };
	for (int k = 0; k < 2; k++) {
		struct msglog_page pa, pb, pc;
		rd(a, chans[k], 1, &pa);
		rd(b, chans[k], 1, &pb);
		rd(c, chans[k], 1, &pc);
		ck_assert_int_eq(pc.count, 3);
		ck_assert_int_eq(pc.gap, k == 0);
		const struct msglog_page *mine[2] = { &pa, &pb };
		for (int h = 0; h < 2; h++) {
			ck_assert_int_eq(mine[h]->count, pc.count);
			ck_assert_int_eq(mine[h]->gap, pc.gap);
			ck_assert_uint_eq(mine[h]->items.len, pc.items.len);
			ck_assert(memcmp(mine[h]->items.p, pc.items.p, pc.items.len) == 0);
		}
		msglog_page_free(&pa);
		msglog_page_free(&pb);
		msglog_page_free(&pc);
	}
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
	msglog_close(c);
	test_rmtree(host_c);
	free(host_c);
}
END_TEST

START_TEST(test_log_made_anew_empties_the_copy)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	struct buf ack = BUF_INIT;
	for (int i = 0; i < 3; i++)
		add(a, "n", "old", &ack);
	follow(b);
	follow(b);
	/* The database is made anew under the running hosts. */
	PGconn *c = PQconnectdb(uri);
	PGresult *r = PQexec(c, "DROP TABLE comet_state, comet_msg, comet_chan, comet_dropped");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	/* The first publish meets the missing table (503, the connection is
	 * made again), the second makes the new log. */
	struct msglog_msg m = { "n", "text/plain", "new", 3, NULL };
	int64_t id;
	char err[256];
	int rc = msglog_append(a, &m, 1, 1000, &id, &ack, NULL, err, sizeof err);
	if (rc != 0)
		ck_assert_msg(msglog_append(a, &m, 1, 1000, &id, &ack, NULL, err, sizeof err) == 0,
			      "%s", err);
	ck_assert_int_eq(id, 1);
	/* b's follower meets the missing table too, connects again and
	 * finds another log: at most three turns. */
	int copied = 0;
	for (int i = 0; i < 3 && copied <= 0; i++)
		copied = msglog_follow(b, 0, err, sizeof err);
	ck_assert_msg(copied > 0, "%s", err);
	struct msglog_page pg;
	rd(b, "n", 0, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert_int_eq(pg.last_id, 1);
	ck_assert_msg(strstr(pg.items.p, "\"new\"") != NULL, "%s", pg.items.p);
	msglog_page_free(&pg);
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

START_TEST(test_unreachable_server_named_without_password)
{
	struct msglog *l;
	char err[512];
	const char *down = "postgresql://comet:SECRET@127.0.0.1:1/comet";
	ck_assert_msg(msglog_open(&l, down, host_a, false, err, sizeof err) == 0, "%s", err);
	struct msglog_msg m = { "c", "text/plain", "x", 1, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	ck_assert_int_eq(msglog_append(l, &m, 1, 1000, &id, &ack, NULL, err, sizeof err),
			 MSGLOG_EUNAVAIL);
	ck_assert_msg(strstr(err, "127.0.0.1") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "SECRET") == NULL, "%s", err);
	ck_assert_msg(strchr(err, '\n') == NULL, "%s", err);
	ck_assert_int_eq(ack.len, 0);
	buf_free(&ack);
	msglog_close(l);
}
END_TEST

/* A host opens at most PGLOG_SLOTS writer connections: one more waits for
 * a slot, then fails naming the bound; an idle one lets its slot go. */
/* A publish of its own thread, which may wait for a writer slot (or its
 * commit for a standby). */
struct waiting {
	struct msglog *l;
	int rc;
	bool done;
	char err[256];
};

static void *append_waiting(void *arg)
{
	struct waiting *w = arg;
	struct msglog_msg m = { "s", "text/plain", "x", 1, NULL };
	struct buf ack = BUF_INIT;
	int64_t id;
	w->rc = msglog_append(w->l, &m, 1, 1000, &id, &ack, NULL, w->err, sizeof w->err);
	buf_free(&ack);
	__atomic_store_n(&w->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

START_TEST(test_writer_connections_bounded_per_host)
{
	struct msglog *w[PGLOG_SLOTS + 1];
	struct buf ack = BUF_INIT;
	for (int i = 0; i < PGLOG_SLOTS; i++) {
		w[i] = open_on(host_a);
		add(w[i], "s", "x", &ack);
	}
	w[PGLOG_SLOTS] = open_on(host_a);
	struct msglog_msg m = { "s", "text/plain", "x", 1, NULL };
	int64_t id;
	char err[256];
	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(msglog_append(w[PGLOG_SLOTS], &m, 1, 1000, &id, &ack, NULL, err,
				       sizeof err), MSGLOG_EUNAVAIL);
	ck_assert_int_ge(clock_mono_ms() - t0, 4900);
	ck_assert_msg(strstr(err, "busy") != NULL, "%s", err);
	/* Another host's slots are its own. */
	struct msglog *other = open_on(host_b);
	add(other, "s", "x", &ack);
	/* Idle with nobody waiting: every slot stays held (a publish after a
	 * pause does not connect again). */
	msglog_idle(w[0]);
	char slots[4096];
	snprintf(slots, sizeof slots, "%s/pg-slots", host_a);
	int fd = open(slots, O_RDWR);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < PGLOG_SLOTS; i++) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = i,
				    .l_len = 1 };
		ck_assert_int_eq(fcntl(fd, F_OFD_GETLK, &fl), 0);
		ck_assert_msg(fl.l_type != F_UNLCK, "slot %d was let go", i);
	}
	close(fd);
	/* With a publish waiting for a slot, the idle one lets its slot go. */
	struct waiting wt = { .l = w[PGLOG_SLOTS] };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, append_waiting, &wt), 0);
	while (!__atomic_load_n(&wt.done, __ATOMIC_SEQ_CST)) {
		msglog_idle(w[0]);
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	pthread_join(t, NULL);
	ck_assert_msg(wt.rc == 0, "%s", wt.err);
	for (int i = 0; i <= PGLOG_SLOTS; i++)
		msglog_close(w[i]);
	msglog_close(other);
	buf_free(&ack);
}
END_TEST

/* A writer that waited for comet_state's row (msglog_lock) commits what it
 * then appends; an append refused after the wait gives the row up at once,
 * so that another host's publish does not wait for the server's timeout. */
START_TEST(test_lock_then_append_and_let_go)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	struct buf ack = BUF_INIT;
	char err[256];
	ck_assert_msg(msglog_lock(a, err, sizeof err) == 0, "%s", err);
	int64_t one = add(a, "k", "one", &ack);
	follow(b);
	struct msglog_page pg;
	rd(b, "k", 0, &pg);
	ck_assert_int_eq(pg.count, 1);
	msglog_page_free(&pg);
	ck_assert_msg(msglog_lock(a, err, sizeof err) == 0, "%s", err);
	struct msglog_msg bad = { "k", "application/json", "{", 1, NULL };
	int64_t id;
	ck_assert_int_eq(msglog_append(a, &bad, 1, clock_wall_ms(), &id, &ack, NULL, err,
				       sizeof err), MSGLOG_EINVAL);
	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(add(b, "k", "two", &ack), one + 1);
	ck_assert_int_lt(clock_mono_ms() - t0, 2000);
	ck_assert_int_eq(add(a, "k", "three", &ack), one + 2);
	rd(a, "k", 0, &pg);
	ck_assert_int_eq(pg.count, 3);
	msglog_page_free(&pg);
	msglog_close(a);
	msglog_close(b);
	buf_free(&ack);
}
END_TEST

/* One value of a query on the test's own connection. */
static char *query1(const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	int st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	char *v = xstrdup(st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
	return v;
}

/* A database an older version made (schema 5: comet_publish, no
 * comet_append) is brought up to date by the first connection of this one,
 * keeps its messages, and what the older version calls still works. */
START_TEST(test_older_schema_brought_up_to_date)
{
	struct msglog *a = open_on(host_a);
	struct buf ack = BUF_INIT;
	int64_t one = add(a, "u", "one", &ack);
	msglog_close(a);
	free(query1("UPDATE comet_state SET version = 5"));
	free(query1("DROP FUNCTION comet_append"));
	free(query1("DROP FUNCTION comet_write"));
	free(query1("ALTER TABLE comet_state DROP COLUMN oldest"));
	free(query1("CREATE OR REPLACE FUNCTION comet_publish(ch text[], ty text[], da bytea[], "
		    "og text[], now_ms bigint, keep bigint, keep_ms bigint) RETURNS bigint "
		    "LANGUAGE sql AS $$ SELECT -1::bigint $$"));
	a = open_on(host_a);
	ck_assert_int_eq(add(a, "u", "two", &ack), one + 1);
	char *v = query1("SELECT version FROM comet_state");
	ck_assert_str_eq(v, "9");
	free(v);
	v = query1("SELECT comet_publish('{u}', '{text/plain}', '{three}', '{NULL}', 1, 1000, "
		   "86400000)");
	ck_assert_str_eq(v, "3");
	free(v);
	follow(a);
	struct msglog_page pg;
	rd(a, "u", 0, &pg);
	ck_assert_int_eq(pg.count, 3);
	msglog_page_free(&pg);
	msglog_close(a);
	buf_free(&ack);
}
END_TEST

/* A publish whose host's copy holds everything before it is copied without
 * reading the shared log back: with comet_dropped locked (which every read
 * of changes scans, and a publish that retention leaves alone never
 * touches), it is answered and readable on its host at once. */
START_TEST(test_own_publish_copied_without_reading_back)
{
	struct msglog *a = open_on(host_a);
	struct buf ack = BUF_INIT;
	add(a, "own", "one", &ack);	/* a new copy: read from the shared log */
	PGconn *k = PQconnectdb(uri);
	ck_assert_msg(PQstatus(k) == CONNECTION_OK, "%s", PQerrorMessage(k));
	PGresult *r = PQexec(k, "BEGIN; LOCK TABLE comet_dropped IN ACCESS EXCLUSIVE MODE");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(k));
	PQclear(r);
	/* A read back would wait for the lock until the statement timeout,
	 * then leave the message to the follower. */
	int64_t two = add(a, "own", "two", &ack);
	struct msglog_page pg;
	rd(a, "own", 0, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert_int_eq(pg.last_id, two);
	msglog_page_free(&pg);
	PQfinish(k);
	buf_free(&ack);
	msglog_close(a);
}
END_TEST

/* Another host's DELETE between two publishes gives no id: the second
 * publish finds its copy at the id before its own but a revision behind,
 * and reads the DELETE's mark back before its own message. */
START_TEST(test_own_publish_after_another_hosts_delete)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	struct buf ack = BUF_INIT;
	add(a, "d", "one", &ack);
	int64_t deleted;
	char err[256];
	ck_assert_msg(msglog_delete(b, "d", &deleted, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(deleted, 1);
	int64_t two = add(a, "d", "two", &ack);
	struct msglog_page pg;
	rd(a, "d", 0, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert_int_eq(pg.item[0].id, two);
	msglog_page_free(&pg);
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

/* A small publish reaches another host's copy from its notification alone:
 * with comet_dropped locked (every read of changes scans it), b's follower
 * copies a's publish, its bytes and origin as they were sent, and a bigger
 * batch than a notification carries is read back once the lock goes. */
START_TEST(test_follower_copies_from_the_notification)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	struct buf ack = BUF_INIT;
	char err[256];
	add(a, "n", "one", &ack);
	follow(b);	/* LISTEN */
	follow(b);	/* a new copy: read from the shared log */
	PGconn *k = PQconnectdb(uri);
	ck_assert_msg(PQstatus(k) == CONNECTION_OK, "%s", PQerrorMessage(k));
	PGresult *r = PQexec(k, "BEGIN; LOCK TABLE comet_dropped IN ACCESS EXCLUSIVE MODE");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(k));
	PQclear(r);
	static const char data[] = "caf\xc3\xa9 \\ \"q\" \x01\n{}";
	struct msglog_msg m[2] = {
		{ "n", "text/plain", data, sizeof data - 1, "sock.1" },
		{ "n2", "application/json", "[1]", 3, NULL },
	};
	int64_t ids[2];
	ck_assert_msg(msglog_append(a, m, 2, 1234, ids, &ack, NULL, err, sizeof err) == 0, "%s",
		      err);
	int n = msglog_follow(b, 5000, err, sizeof err);
	ck_assert_msg(n >= 2, "copied %d: %s", n, n < 0 ? err : "");
	const char *chans[2] = { "n", "n2" };
	for (int i = 0; i < 2; i++) {
		struct msglog_page pa, pb;
		rd(a, chans[i], 0, &pa);
		rd(b, chans[i], 0, &pb);
		ck_assert_int_eq(pb.count, i ? 1 : 2);
		ck_assert_int_eq(pb.last_id, ids[1]);
		ck_assert_uint_eq(pb.items.len, pa.items.len);
		ck_assert(memcmp(pb.items.p, pa.items.p, pa.items.len) == 0);
		msglog_page_free(&pa);
		msglog_page_free(&pb);
	}
	int64_t found, log_last;
	ck_assert_msg(msglog_find_origin(b, "n", "sock.1", &found, &log_last, err,
					 sizeof err) == 0, "%s", err);
	ck_assert_int_eq(found, ids[0]);
	/* What a notification carries, seen by a listener of the test's own:
	 * a small write whole, a bigger one only its last id, revision and
	 * log. */
	PGconn *lis = PQconnectdb(uri);
	ck_assert_msg(PQstatus(lis) == CONNECTION_OK, "%s", PQerrorMessage(lis));
	PQclear(PQexec(lis, "LISTEN comet"));
	static char big[1500];
	memset(big, 'b', sizeof big);
	struct msglog_msg two[2] = {
		{ "n", "text/plain", "small", 5, NULL },
		{ "n", "text/plain", big, sizeof big, NULL },	/* 3,000 bytes in hex */
	};
	PQclear(PQexec(k, "ROLLBACK"));
	for (int i = 0; i < 2; i++) {
		int64_t id;
		ck_assert_msg(msglog_append(a, &two[i], 1, 1234, &id, &ack, NULL, err,
					    sizeof err) == 0, "%s", err);
		PGnotify *nt = NULL;
		for (int64_t until = clock_mono_ms() + 10000; !nt && clock_mono_ms() < until;) {
			struct pollfd pf = { PQsocket(lis), POLLIN, 0 };
			poll(&pf, 1, 1000);
			PQconsumeInput(lis);
			nt = PQnotifies(lis);
		}
		ck_assert_ptr_nonnull(nt);
		char named[32];
		snprintf(named, sizeof named, "%lld", (long long)id);
		if (i == 0)
			ck_assert_msg(strncmp(nt->extra, named, strlen(named)) == 0 &&
				      nt->extra[strlen(named)] == ' ', "%s", nt->extra);
		else	/* "last rev log" */
			ck_assert_msg(strncmp(nt->extra, named, strlen(named)) == 0 &&
				      nt->extra[strlen(named)] == ' ' && !strchr(nt->extra, '\n') &&
				      strlen(nt->extra) < 80, "%s", nt->extra);
		PQfreemem(nt);
	}
	PQfinish(lis);
	/* 101 messages: the notification names the last id only. */
	struct msglog_msg many[101];
	int64_t many_ids[101];
	for (int i = 0; i < 101; i++)
		many[i] = (struct msglog_msg){ "big", "text/plain", "x", 1, NULL };
	ck_assert_msg(msglog_append(a, many, 101, 1234, many_ids, &ack, NULL, err,
				    sizeof err) == 0, "%s", err);
	ck_assert_int_gt(msglog_follow(b, 5000, err, sizeof err), 0);
	struct msglog_page pg;
	rd(b, "big", many_ids[0], &pg);	/* a page holds 100 at most */
	ck_assert_int_eq(pg.count, 100);
	ck_assert_int_eq(pg.last_id, many_ids[100]);
	msglog_page_free(&pg);
	PQfinish(k);
	buf_free(&ack);
	msglog_close(a);
	msglog_close(b);
}
END_TEST

/* Each write's notification is sent by a transaction of its own, so a
 * later write's may come first: the follower holds it back a moment and
 * applies both when the earlier one comes, without reading PostgreSQL
 * (comet_dropped, which every read scans, is locked: a read would wait
 * until the statement timeout). The two are made up by the test, ids the
 * shared log has not given out: only the notifications are looked at. */
START_TEST(test_notifications_out_of_order_applied_without_reading)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b);
	struct buf ack = BUF_INIT;
	int64_t one = add(a, "g", "one", &ack);
	follow_until(b, one);
	char *log = query1("SELECT log FROM comet_state");
	char *rev = query1("SELECT rev FROM comet_state");
	PGconn *k = PQconnectdb(uri);
	ck_assert_msg(PQstatus(k) == CONNECTION_OK, "%s", PQerrorMessage(k));
	PGconn *lock = PQconnectdb(uri);
	ck_assert_msg(PQstatus(lock) == CONNECTION_OK, "%s", PQerrorMessage(lock));
	PGresult *r = PQexec(lock, "BEGIN; LOCK TABLE comet_dropped IN ACCESS EXCLUSIVE MODE");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(lock));
	PQclear(r);
	for (int i = 2; i >= 1; i--) {
		char note[256], sql[512];
		/* "last rev log time n nmarks", then "two" or "three" in hex */
		snprintf(note, sizeof note, "%lld %lld %s 1234 1 0\n1 10 %d -1\ngtext/plain%s",
			 (long long)(one + i), atoll(rev) + i, log, i == 1 ? 3 : 5,
			 i == 1 ? "74776f" : "7468726565");
		char *q = PQescapeLiteral(k, note, strlen(note));
		snprintf(sql, sizeof sql, "SELECT pg_notify('comet', %s)", q);
		PQfreemem(q);
		r = PQexec(k, sql);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(k));
		PQclear(r);
	}
	follow_until(b, one + 2);
	struct msglog_page pg;
	rd(b, "g", one, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert_msg(strstr(pg.items.p, "\"two\"") && strstr(pg.items.p, "\"three\""), "%.*s",
		      (int)pg.items.len, pg.items.p);
	msglog_page_free(&pg);
	PQfinish(lock);
	PQfinish(k);
	free(log);
	free(rev);
	msglog_close(a);
	msglog_close(b);
	buf_free(&ack);
}
END_TEST

struct joining {
	struct msglog *l;
	int rc;
	char err[256];
};

static void *join_waiting(void *arg)
{
	struct joining *j = arg;
	struct msglog_member m = { "presence-x", "ann", "{}" };
	j->rc = msglog_presence(j->l, &m, 1, "a:1", 1, clock_wall_ms(), j->err, sizeof j->err);
	return NULL;
}

/* Two hosts' first subscriptions of one member at the same moment: the
 * one that inserts the member second finds it there (it waited on the
 * other's insert), and still counts its own subscription. The other
 * host's insert is the test's, held open until the join waits on it. */
START_TEST(test_presence_join_at_once_on_two_hosts)
{
	struct msglog *a = open_on(host_a);
	struct buf ack = BUF_INIT;
	add(a, "warm", "x", &ack);	/* the schema */
	PGconn *k = PQconnectdb(uri), *su = admin();
	ck_assert_msg(PQstatus(k) == CONNECTION_OK, "%s", PQerrorMessage(k));
	admin_exec(k, "BEGIN");
	admin_exec(k, "INSERT INTO comet_member VALUES ('presence-x', 'ann', '{}', NULL)");
	struct joining j = { .l = a };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, join_waiting, &j), 0);
	for (int64_t until = clock_mono_ms() + 10000;;) {
		PGresult *r = PQexec(su, "SELECT count(*) FROM pg_stat_activity"
				     " WHERE wait_event_type = 'Lock' AND application_name = 'comet-fcgi'");
		int n = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (n > 0)
			break;
		ck_assert_msg(clock_mono_ms() < until, "the join did not wait for the other insert");
	}
	admin_exec(k, "COMMIT");
	pthread_join(t, NULL);
	ck_assert_msg(j.rc >= 0, "%s", j.err);
	char *subs = query1("SELECT subs FROM comet_presence WHERE owner = 'a:1'");
	ck_assert_str_eq(subs, "1");
	free(subs);
	PQfinish(k);
	PQfinish(su);
	msglog_close(a);
	buf_free(&ack);
}
END_TEST

/* The superuser's connection (settings of the server). */
static PGconn *admin(void)
{
	const char *ci = getenv("COMET_TEST_PG_ADMIN");
	ck_assert_msg(ci != NULL, "COMET_TEST_PG_ADMIN is not set");
	PGconn *c = PQconnectdb(ci);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void admin_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
		      PQerrorMessage(c));
	PQclear(r);
}

/* Backends waiting for a synchronous standby to confirm their commit. */
static int waiting_for_standby(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	int n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

/* A commit that needs a standby no one runs waits until the setting goes:
 * the stand-in for a disk (or a standby) slow to confirm. Returns once a
 * commit does wait (the setting reaches the server's processes in turn). */
static void standby_required(PGconn *c, bool on)
{
	admin_exec(c, on ? "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" :
		   "ALTER SYSTEM RESET synchronous_standby_names");
	admin_exec(c, "SELECT pg_reload_conf()");
	if (!on)
		return;
	/* A probe commits until one waits (then waits on, nobody to answer). */
	PGconn *probe = admin();
	for (int64_t until = clock_mono_ms() + 10000;;) {
		ck_assert_int_eq(PQsendQuery(probe, "SELECT pg_logical_emit_message(true, 'p', '')"),
				 1);
		for (bool answered = false; !answered;) {
			ck_assert_msg(clock_mono_ms() < until, "commits do not wait for the standby");
			if (waiting_for_standby(c) > 0) {
				PQfinish(probe);
				return;
			}
			PQconsumeInput(probe);
			while (!answered && !PQisBusy(probe)) {
				PGresult *r = PQgetResult(probe);
				answered = r == NULL;
				PQclear(r);
			}
		}
	}
}

/* A follow of its own thread (struct waiting, as append_waiting's). */
static void *follow_waiting(void *arg)
{
	struct waiting *f = arg;
	f->rc = msglog_follow(f->l, 0, f->err, sizeof f->err);
	__atomic_store_n(&f->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* A commit that waits for a synchronous standby waits as long as the
 * standby is away, beyond any statement timeout: the publish is refused
 * after a bound (as one that waited for the row is), and its server
 * process is told to stop waiting rather than left behind. Told so, the
 * server commits on the primary alone (with a WARNING), and so does one an
 * administrator cancels: either way the write is not acknowledged, and no
 * host is told of it or gives it out until a later flush. */
START_TEST(test_publish_waiting_for_a_standby_refused_in_time)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b), *b2 = open_on(host_b);
	struct buf ack = BUF_INIT;
	add(a, "d", "to delete", &ack);
	int64_t one = add(a, "w", "one", &ack);
	follow_until(b, one);
	PGconn *su = admin();
	standby_required(su, true);
	struct msglog_msg m = { "w", "text/plain", "two", 3, NULL };
	int64_t id;
	char err[256];
	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(msglog_append(a, &m, 1, clock_wall_ms(), &id, &ack, NULL, err,
				       sizeof err), MSGLOG_EUNAVAIL);
	int64_t took = clock_mono_ms() - t0;
	ck_assert_msg(took >= 5900 && took < 9000, "refused after %lld ms", (long long)took);
	ck_assert_msg(strstr(err, "synchronous standby") != NULL, "%s", err);
	/* Only the probe of standby_required still waits. */
	for (int64_t until = clock_mono_ms() + 5000; waiting_for_standby(su) > 1;)
		ck_assert_msg(clock_mono_ms() < until, "the publish's server process still waits");
	/* A DELETE's commit waits alike, and is bounded alike (as presence's
	 * calls are: the same call). */
	int64_t gone;
	t0 = clock_mono_ms();
	ck_assert_int_eq(msglog_delete(a, "d", &gone, err, sizeof err), MSGLOG_EUNAVAIL);
	took = clock_mono_ms() - t0;
	ck_assert_msg(took >= 5900 && took < 9000, "DELETE refused after %lld ms", (long long)took);
	ck_assert_msg(strstr(err, "synchronous standby") != NULL, "%s", err);
	for (int64_t until = clock_mono_ms() + 5000; waiting_for_standby(su) > 1;)
		ck_assert_msg(clock_mono_ms() < until, "the DELETE's server process still waits");
	/* An administrator cancels the next one's wait. */
	struct waiting wt = { .l = a };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, append_waiting, &wt), 0);
	for (int64_t until = clock_mono_ms() + 5000; waiting_for_standby(su) < 2;)
		ck_assert_msg(clock_mono_ms() < until, "the publish did not wait for the standby");
	admin_exec(su, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
		   " WHERE wait_event = 'SyncRep' AND application_name = 'comet-fcgi'");
	pthread_join(t, NULL);
	ck_assert_int_eq(wt.rc, MSGLOG_EUNAVAIL);
	ck_assert_msg(strstr(wt.err, "cancelled") != NULL, "%s", wt.err);
	/* b hears of neither (a notification would come within the second),
	 * and its own look (the safety check) waits for the standby too and
	 * gives up. */
	ck_assert_int_eq(msglog_follow(b, 1000, err, sizeof err), MSGLOG_EUNAVAIL);
	ck_assert_msg(strstr(err, "synchronous standby") != NULL, "%s", err);
	ck_assert_int_eq(count_on(b2, "w", one), 0);
	ck_assert_int_eq(count_on(b2, "s", 0), 0);
	ck_assert_int_eq(count_on(b2, "d", 0), 1);
	standby_required(su, false);
	/* Refused, yet committed on the primary: their ids are taken, and
	 * the next publish's flush puts them on disk (and in the copies). */
	int64_t four = add(a, "w", "four", &ack);
	ck_assert_int_eq(four, one + 3);
	follow_until(b, four);
	ck_assert_int_eq(count_on(b2, "w", one), 2);	/* two, four */
	ck_assert_int_eq(count_on(b2, "s", 0), 1);	/* append_waiting's */
	ck_assert_int_eq(count_on(b2, "d", 0), 0);	/* the DELETE, committed on the primary */
	PQfinish(su);
	msglog_close(a);
	msglog_close(b);
	msglog_close(b2);
	buf_free(&ack);
}
END_TEST

/* A publish holds comet_state's row for its write, not while its commit
 * waits for the disk (or a synchronous standby): another host writes
 * meanwhile. And until that wait is over no host gives the write out: it
 * is not acknowledged, and another host's read of changes, which sees it
 * committed, waits too before its copy takes it. */
START_TEST(test_row_let_go_before_the_flush_and_nothing_given_out_before_it)
{
	struct msglog *a = open_on(host_a), *b = open_on(host_b), *b2 = open_on(host_b);
	struct buf ack = BUF_INIT;
	int64_t one = add(a, "d", "one", &ack);
	follow_until(b, one);
	PGconn *su = admin();
	/* append_waiting publishes on channel s. */
	standby_required(su, true);
	struct waiting wt = { .l = a };
	pthread_t t, tf;
	ck_assert_int_eq(pthread_create(&t, NULL, append_waiting, &wt), 0);
	/* a's publish has written and waits: its write, committed, moved the
	 * state on while nobody holds the row. */
	for (int64_t until = clock_mono_ms() + 10000; waiting_for_standby(su) < 2;)
		ck_assert_msg(clock_mono_ms() < until, "the publish did not wait for the standby");
	admin_exec(su, "BEGIN");
	PGresult *r = PQexec(su, "SELECT last_id FROM comet_state FOR UPDATE NOWAIT");
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "the row is held: %s",
		      PQerrorMessage(su));
	ck_assert_int_eq(strtoll(PQgetvalue(r, 0, 0), NULL, 10), one + 1);
	PQclear(r);
	admin_exec(su, "ROLLBACK");
	ck_assert(!__atomic_load_n(&wt.done, __ATOMIC_SEQ_CST));
	/* b's follower looks (no notification came): it waits as well, and
	 * its copy does not hold the write. */
	struct waiting fw = { .l = b };
	ck_assert_int_eq(pthread_create(&tf, NULL, follow_waiting, &fw), 0);
	for (int64_t until = clock_mono_ms() + 10000;
	     waiting_for_standby(su) < 3 && !__atomic_load_n(&fw.done, __ATOMIC_SEQ_CST);)
		ck_assert_msg(clock_mono_ms() < until, "the follower neither read nor waited");
	ck_assert_int_eq(count_on(b2, "s", 0), 0);
	ck_assert(!__atomic_load_n(&wt.done, __ATOMIC_SEQ_CST));
	standby_required(su, false);
	pthread_join(t, NULL);
	pthread_join(tf, NULL);
	ck_assert_msg(wt.rc == 0, "%s", wt.err);
	ck_assert_msg(fw.rc >= 0, "%s", fw.err);
	follow_until(b, one + 1);
	ck_assert_int_eq(count_on(b2, "s", 0), 1);
	PQfinish(su);
	msglog_close(a);
	msglog_close(b);
	msglog_close(b2);
	buf_free(&ack);
}
END_TEST

Suite *pglog_suite(void)
{
	Suite *s = suite_create("pglog");
	TCase *t = tcase_create("shared");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_publish_copies_to_every_host);
	tcase_add_test(t, test_batch_ids_and_one_sequence_across_hosts);
	tcase_add_test(t, test_retention_and_delete_reach_the_copies);
	tcase_add_test(t, test_age_retention_by_the_writes_clocks);
	tcase_add_test(t, test_count_retention_of_batches);
	tcase_add_test(t, test_copies_agree_however_made);
	tcase_add_test(t, test_log_made_anew_empties_the_copy);
	tcase_add_test(t, test_unreachable_server_named_without_password);
	tcase_add_test(t, test_writer_connections_bounded_per_host);
	tcase_add_test(t, test_lock_then_append_and_let_go);
	tcase_add_test(t, test_older_schema_brought_up_to_date);
	tcase_add_test(t, test_own_publish_copied_without_reading_back);
	tcase_add_test(t, test_own_publish_after_another_hosts_delete);
	tcase_add_test(t, test_follower_copies_from_the_notification);
	tcase_add_test(t, test_notifications_out_of_order_applied_without_reading);
	tcase_add_test(t, test_presence_join_at_once_on_two_hosts);
	tcase_add_test(t, test_publish_waiting_for_a_standby_refused_in_time);
	tcase_add_test(t, test_row_let_go_before_the_flush_and_nothing_given_out_before_it);
	suite_add_tcase(s, t);
	return s;
}
