/* Unit tests: the SQLite log, on real files in a temporary directory. */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "msglog.h"
#include "suites.h"

static char *dir;
static char path[4200];

static void setup(void)
{
	dir = test_tmpdir();
	snprintf(path, sizeof path, "%s/comet.db", dir);
}

static void teardown(void)
{
	test_rmtree(dir);
	free(dir);
}

static struct msglog *open_log(void)
{
	struct msglog *l;
	char err[256];
	ck_assert_msg(msglog_open(&l, path, NULL, false, err, sizeof err) == 0, "%s", err);
	return l;
}

static int64_t add(struct msglog *l, const char *chan, const char *type, const char *data,
		   int64_t now)
{
	struct msglog_msg m = { chan, type, data, strlen(data), NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[256];
	ck_assert_msg(msglog_append(l, &m, 1, now, &id, &ack, NULL, err, sizeof err) == 0, "%s", err);
	buf_free(&ack);
	return id;
}

static void rd(struct msglog *l, const char *chans, int64_t since, int limit,
	       struct msglog_page *pg)
{
	const char *names[32];
	char copy[512];
	int n = 0;
	snprintf(copy, sizeof copy, "%s", chans);
	for (char *s = strtok(copy, ","); s; s = strtok(NULL, ","))
		names[n++] = s;
	char err[256];
	ck_assert_msg(msglog_read(l, names, n, since, limit, pg, err, sizeof err) == 0, "%s", err);
}

START_TEST(append_and_read)
{
	struct msglog *l = open_log();
	struct msglog_msg m = { "chat", "application/json", "{\"text\": \"hi\"}", 14, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[256];
	ck_assert_int_eq(msglog_append(l, &m, 1, 1763700000123, &id, &ack, NULL, err, sizeof err), 0);
	ck_assert_int_eq(id, 1);
	ck_assert_str_eq(buf_str(&ack), "{\"id\":1,\"channel\":\"chat\",\"time\":1763700000123}");
	buf_free(&ack);
	ck_assert_int_eq(add(l, "chat", "text/plain", "say \"x\"\n", 5), 2);

	struct msglog_page pg = { 0 };
	rd(l, "chat", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert_int_eq(pg.last_id, 2);
	ck_assert(!pg.more && !pg.gap && !pg.reset);
	ck_assert_str_eq(buf_str(&pg.items),
		"{\"id\":1,\"channel\":\"chat\",\"time\":1763700000123,\"type\":\"application/json\","
		"\"data\":{\"text\":\"hi\"}},"
		"{\"id\":2,\"channel\":\"chat\",\"time\":5,\"type\":\"text/plain\","
		"\"data\":\"say \\\"x\\\"\\n\"}");
	/* From now: no messages, the cursor is the newest id. */
	rd(l, "chat", -1, 100, &pg);
	ck_assert_int_eq(pg.count, 0);
	ck_assert_int_eq(pg.last_id, 2);
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(several_channels_one_cursor)
{
	struct msglog *l = open_log();
	add(l, "a", "text/plain", "1", 1);
	add(l, "b", "text/plain", "2", 1);
	add(l, "c", "text/plain", "3", 1);
	add(l, "a", "text/plain", "4", 1);
	add(l, "c", "text/plain", "5", 1);
	struct msglog_page pg = { 0 };
	rd(l, "a,b", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 3);
	ck_assert_int_eq(pg.last_id, 5);	/* past the last returned (4) */
	ck_assert_ptr_nonnull(strstr(buf_str(&pg.items), "\"id\":2"));
	rd(l, "a,b", 2, 100, &pg);
	ck_assert_int_eq(pg.count, 1);
	rd(l, "a,b", 4, 100, &pg);
	ck_assert_int_eq(pg.count, 0);
	ck_assert_int_eq(pg.last_id, 5);
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(limit_and_more)
{
	struct msglog *l = open_log();
	for (int i = 0; i < 5; i++)
		add(l, "a", "text/plain", "x", 1);
	struct msglog_page pg = { 0 };
	rd(l, "a", 0, 2, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert(pg.more);
	ck_assert_int_eq(pg.last_id, 2);
	rd(l, "a", 2, 2, &pg);
	ck_assert_int_eq(pg.last_id, 4);
	ck_assert(pg.more);
	rd(l, "a", 4, 2, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert(!pg.more);
	ck_assert_int_eq(pg.last_id, 5);
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(reset_when_cursor_ahead)
{
	struct msglog *l = open_log();
	add(l, "a", "text/plain", "x", 1);
	struct msglog_page pg = { 0 };
	rd(l, "a", 9, 10, &pg);
	ck_assert(pg.reset);
	ck_assert_int_eq(pg.last_id, 1);
	ck_assert_int_eq(pg.count, 0);
	rd(l, "a", 1, 10, &pg);
	ck_assert(!pg.reset);
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(retention_by_count_and_gap)
{
	struct msglog *l = open_log();
	msglog_retention(l, 3, 86400);
	for (int i = 0; i < 5; i++)
		add(l, "a", "text/plain", "x", 1);
	add(l, "b", "text/plain", "y", 1);
	struct msglog_page pg = { 0 };
	rd(l, "a", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 3);	/* 3, 4, 5 kept */
	ck_assert(!pg.gap);		/* since=0: everything retained */
	rd(l, "a", 1, 100, &pg);
	ck_assert(pg.gap);		/* 2 was dropped */
	ck_assert_int_eq(pg.count, 3);
	rd(l, "a", 2, 100, &pg);
	ck_assert(!pg.gap);
	rd(l, "b", 1, 100, &pg);	/* b lost nothing */
	ck_assert(!pg.gap);
	rd(l, "a,b", 1, 100, &pg);
	ck_assert(pg.gap);
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(retention_by_age)
{
	struct msglog *l = open_log();
	msglog_retention(l, 1000, 60);
	add(l, "a", "text/plain", "old", 1000);
	add(l, "b", "text/plain", "old", 2000);
	add(l, "a", "text/plain", "new", 61001);	/* 1000 is now older than 60 s */
	struct msglog_page pg = { 0 };
	rd(l, "a,b", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert_ptr_null(strstr(buf_str(&pg.items), "\"id\":1,"));
	rd(l, "a", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 1);
	rd(l, "b", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 1);
	add(l, "c", "text/plain", "x", 62001);		/* b's message goes */
	rd(l, "b", 1, 100, &pg);
	ck_assert_int_eq(pg.count, 0);
	ck_assert(pg.gap);
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(ids_never_reused_and_delete)
{
	struct msglog *l = open_log();
	add(l, "a", "text/plain", "1", 1);
	add(l, "a", "text/plain", "2", 1);
	char err[256];
	int64_t n;
	ck_assert_int_eq(msglog_delete(l, "a", &n, err, sizeof err), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(add(l, "a", "text/plain", "3", 1), 3);
	struct msglog_page pg = { 0 };
	rd(l, "a", 1, 100, &pg);
	ck_assert(pg.gap);
	ck_assert_int_eq(pg.count, 1);
	struct buf info = BUF_INIT;
	ck_assert_int_eq(msglog_info(l, "a", &info, err, sizeof err), 0);
	ck_assert_str_eq(buf_str(&info),
			 "{\"channel\":\"a\",\"last_id\":3,\"first_id\":3,\"messages\":1}");
	buf_reset(&info);
	ck_assert_int_eq(msglog_info(l, "none", &info, err, sizeof err), 0);
	ck_assert_str_eq(buf_str(&info),
			 "{\"channel\":\"none\",\"last_id\":0,\"first_id\":0,\"messages\":0}");
	buf_free(&info);
	int64_t count, last;
	ck_assert_int_eq(msglog_counts(l, &count, &last, err, sizeof err), 0);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(last, 3);
	msglog_page_free(&pg);
	msglog_close(l);
	/* Reopening keeps everything. */
	l = open_log();
	ck_assert_int_eq(add(l, "a", "text/plain", "4", 1), 4);
	msglog_close(l);
}
END_TEST

START_TEST(invalid_json_refused)
{
	struct msglog *l = open_log();
	struct msglog_msg m = { "a", "application/json", "{a:1}", 5, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[256];
	ck_assert_int_eq(msglog_append(l, &m, 1, 1, &id, &ack, NULL, err, sizeof err), MSGLOG_EINVAL);
	ck_assert_int_eq(ack.len, 0);
	int64_t count, last;
	ck_assert_int_eq(msglog_counts(l, &count, &last, err, sizeof err), 0);
	ck_assert_int_eq(count, 0);
	msglog_close(l);
}
END_TEST

START_TEST(batch_since)
{
	struct msglog *l = open_log();
	msglog_retention(l, 2, 86400);
	for (int i = 0; i < 4; i++)
		add(l, "a", "text/plain", "x", 1);
	add(l, "b", "application/json", "[1, 2]", 1);
	struct msglog_batch b;
	char err[256];
	ck_assert_int_eq(msglog_since(l, 1, 2, &b, err, sizeof err), 0);
	ck_assert_int_eq(b.n, 2);
	ck_assert(b.full);
	ck_assert_int_eq(b.rows[0].id, 3);
	ck_assert_int_eq(b.last_id, 4);
	ck_assert_int_eq(b.nmarks, 1);
	ck_assert_str_eq(b.marks[0].channel, "a");
	ck_assert_int_eq(b.marks[0].id, 2);
	msglog_batch_free(&b);
	ck_assert_int_eq(msglog_since(l, 4, 100, &b, err, sizeof err), 0);
	ck_assert_int_eq(b.n, 1);
	ck_assert(!b.full);
	ck_assert_int_eq(b.last_id, 5);
	ck_assert_str_eq(b.rows[0].channel, "b");
	ck_assert_str_eq(b.rows[0].json, "{\"id\":5,\"channel\":\"b\",\"time\":1,"
			 "\"type\":\"application/json\",\"data\":[1,2]}");
	msglog_batch_free(&b);
	msglog_close(l);
}
END_TEST

/* Several processes publishing at once: every id given once, none lost. */
START_TEST(concurrent_publishers)
{
	enum { PROCS = 4, EACH = 50 };
	struct msglog *l = open_log();
	msglog_close(l);
	for (int p = 0; p < PROCS; p++) {
		if (fork() == 0) {
			struct msglog *cl;
			char err[256];
			if (msglog_open(&cl, path, NULL, false, err, sizeof err) < 0)
				_exit(1);
			int64_t prev = 0;
			for (int i = 0; i < EACH; i++) {
				char data[32];
				snprintf(data, sizeof data, "%d-%d", p, i);
				struct msglog_msg m = { "c", "text/plain", data, strlen(data), NULL };
				int64_t id;
				struct buf ack = BUF_INIT;
				if (msglog_append(cl, &m, 1, 1, &id, &ack, NULL, err, sizeof err) < 0 ||
				    id <= prev)
					_exit(2);
				prev = id;
				buf_free(&ack);
			}
			msglog_close(cl);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int st;
		wait(&st);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	l = open_log();
	msglog_retention(l, 100000, 86400);
	struct msglog_page pg = { 0 };
	rd(l, "c", 0, 1000, &pg);
	ck_assert_int_eq(pg.count, PROCS * EACH);
	ck_assert_int_eq(pg.last_id, PROCS * EACH);
	for (int p = 0; p < PROCS; p++)
		for (int i = 0; i < EACH; i++) {
			char needle[48];
			snprintf(needle, sizeof needle, "\"data\":\"%d-%d\"", p, i);
			ck_assert_ptr_nonnull(strstr(buf_str(&pg.items), needle));
		}
	msglog_page_free(&pg);
	msglog_close(l);
}
END_TEST

START_TEST(unavailable_storage)
{
	struct msglog *l;
	char err[256];
	ck_assert_int_eq(msglog_open(&l, "/nonexistent-dir/x/comet.db", NULL, false, err, sizeof err),
			 MSGLOG_EUNAVAIL);
	ck_assert_msg(strstr(err, "/nonexistent-dir/x/comet.db: its directory "
			     "/nonexistent-dir/x does not exist") && strstr(err, "create it"),
		      "%s", err);
}
END_TEST

/* Opened by a user who may not write there (the directory, or the file
 * itself, which SQLite would quietly open read-only): the error names the
 * file, the user and what to do. */
static void open_as_nobody(const char *db, char *err, size_t errlen)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	if (fork() == 0) {
		struct msglog *l;
		char e[512] = "";
		close(fds[0]);
		if (setgid(65534) == 0 && setuid(65534) == 0 &&
		    msglog_open(&l, db, NULL, false, e, sizeof e) == MSGLOG_EUNAVAIL &&
		    write(fds[1], e, strlen(e)) > 0)
			_exit(0);
		_exit(1);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	int st;
	wait(&st);
}

START_TEST(not_writable)
{
	char err[512];
	open_as_nobody(path, err, sizeof err);
	if (!*err) {
		fprintf(stderr, "not_writable: cannot run as uid 65534 here: skipped\n");
		return;
	}
	ck_assert_msg(strstr(err, path) && strstr(err, "not writable by nobody") &&
		      strstr(err, "chown -R nobody"), "%s", err);
	/* The directory may be entered now, but the file is root's. */
	msglog_close(open_log());
	ck_assert_int_eq(chmod(dir, 0777), 0);
	open_as_nobody(path, err, sizeof err);
	ck_assert_msg(strstr(err, "not writable by nobody") && strstr(err, "owner uid 0"),
		      "%s", err);
}
END_TEST

START_TEST(disk_full)
{
	char *fs = test_small_fs(512);
	if (!fs)
		return;
	char db[4200];
	snprintf(db, sizeof db, "%s/comet.db", fs);
	struct msglog *l;
	char err[512];
	ck_assert_msg(msglog_open(&l, db, NULL, false, err, sizeof err) == 0, "%s", err);
	add(l, "a", "text/plain", "before", 1);
	test_fill(fs);
	static char big[60000];
	memset(big, 'x', sizeof big);
	struct msglog_msg m = { "a", "text/plain", big, sizeof big, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++)
		rc = msglog_append(l, &m, 1, 2, &id, &ack, NULL, err, sizeof err);
	ck_assert_int_eq(rc, MSGLOG_EUNAVAIL);
	ck_assert_msg(strstr(err, "disk full writing") && strstr(err, db) &&
		      strstr(err, "free space"), "%s", err);
	test_unfill(fs);
	buf_reset(&ack);
	ck_assert_msg(msglog_append(l, &m, 1, 3, &id, &ack, NULL, err, sizeof err) == 0, "%s", err);
	buf_free(&ack);
	msglog_close(l);
	test_small_fs_end(fs);
}
END_TEST

/* Another process's connection, as a test stands in for one: SQLite
 * directly, since msglog never holds a transaction across calls. */
static sqlite3 *other_begin(const char *how)
{
	sqlite3 *o;
	ck_assert_int_eq(sqlite3_open(path, &o), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(o, how, NULL, NULL, NULL), SQLITE_OK);
	return o;
}

static void other_end(sqlite3 *o)
{
	sqlite3_exec(o, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(o);
}

/* An append against a write lock held elsewhere fails after one busy
 * timeout in all (not one per statement), and a wait_until before that
 * shortens it; reads and opens go on meanwhile. */
START_TEST(locked_database)
{
	struct msglog *l = open_log();
	add(l, "a", "text/plain", "before", 1);
	sqlite3 *o = other_begin("BEGIN IMMEDIATE");
	struct msglog_msg m = { "a", "application/json", "{\"n\":1}", 7, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[512];
	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(msglog_append(l, &m, 1, 2, &id, &ack, NULL, err, sizeof err),
			 MSGLOG_EUNAVAIL);
	int64_t took = clock_mono_ms() - t0;
	ck_assert_msg(took >= MSGLOG_BUSY_MS - 50 && took < MSGLOG_BUSY_MS + 1000,
		      "took %lld ms", (long long)took);
	ck_assert_msg(strstr(err, "locked by another process") && strstr(err, path), "%s", err);
	ck_assert_int_eq(ack.len, 0);

	t0 = clock_mono_ms();
	msglog_wait_until(l, t0 + 300);
	ck_assert_int_eq(msglog_append(l, &m, 1, 2, &id, &ack, NULL, err, sizeof err),
			 MSGLOG_EUNAVAIL);
	took = clock_mono_ms() - t0;
	ck_assert_msg(took >= 250 && took < 1000, "took %lld ms", (long long)took);

	t0 = clock_mono_ms();
	struct msglog *l2 = open_log();
	struct msglog_page pg = { 0 };
	rd(l2, "a", 0, 10, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert_int_lt(clock_mono_ms() - t0, 1000);
	other_end(o);
	ck_assert_int_eq(add(l, "a", "text/plain", "after", 3), 2);
	msglog_page_free(&pg);
	msglog_close(l2);
	msglog_close(l);
}
END_TEST

/* The database deleted under two connections of a process (as the commit
 * thread's and the hub's): an append goes to a new file at the path, never
 * into the deleted one, and the other connection reads the new file, its
 * cursor now ahead of the log (reset). */
START_TEST(deleted_file)
{
	struct msglog *l = open_log(), *r = open_log();
	for (int i = 0; i < 3; i++)
		add(l, "a", "text/plain", "old", 1);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(add(l, "a", "text/plain", "new", 2), 1);
	struct msglog_page pg = { 0 };
	struct msglog *fresh = open_log();
	rd(fresh, "a", 0, 10, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert_ptr_nonnull(strstr(buf_str(&pg.items), "\"data\":\"new\""));
	rd(r, "a", 3, 10, &pg);
	ck_assert(pg.reset);
	ck_assert_int_eq(pg.last_id, 1);
	msglog_page_free(&pg);
	msglog_close(fresh);
	msglog_close(r);
	msglog_close(l);
}
END_TEST

/* Makes another log file with n messages on channel b and renames it over
 * the database. */
static void replace_db(int n)
{
	char other[4300];
	snprintf(other, sizeof other, "%s/other.db", dir);
	struct msglog *o;
	char err[512];
	ck_assert_msg(msglog_open(&o, other, NULL, false, err, sizeof err) == 0, "%s", err);
	for (int i = 0; i < n; i++)
		add(o, "b", "text/plain", "replacement", 1);
	msglog_close(o);
	ck_assert_int_eq(rename(other, path), 0);
}

/* The database renamed over: a read sees the new file (not the old one's
 * -wal pages), and so does the next append. */
START_TEST(replaced_file)
{
	struct msglog *l = open_log(), *r = open_log();
	for (int i = 0; i < 3; i++)
		add(l, "a", "text/plain", "old", 1);
	replace_db(5);
	struct msglog_page pg = { 0 };
	rd(r, "a,b", 0, 10, &pg);
	ck_assert_int_eq(pg.count, 5);
	ck_assert_ptr_null(strstr(buf_str(&pg.items), "\"old\""));
	ck_assert_int_eq(add(l, "a", "text/plain", "new", 2), 6);
	struct msglog *fresh = open_log();
	rd(fresh, "a", 0, 10, &pg);
	ck_assert_int_eq(pg.count, 1);
	ck_assert_int_eq(pg.last_id, 6);
	msglog_page_free(&pg);
	msglog_close(fresh);
	msglog_close(r);
	msglog_close(l);
}
END_TEST

/* While another connection (as of another process) still has the old file
 * open, sharing the path's -wal and -shm, nothing opens the new file: an
 * append and an open answer unavailable, saying why; once it is closed,
 * both go to the new file. */
START_TEST(replaced_file_still_open_elsewhere)
{
	struct msglog *l = open_log();
	add(l, "a", "text/plain", "old", 1);
	sqlite3 *o = other_begin("BEGIN");
	ck_assert_int_eq(sqlite3_exec(o, "SELECT count(*) FROM msg; COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	replace_db(2);
	struct msglog_msg m = { "a", "text/plain", "x", 1, NULL };
	int64_t id;
	struct buf ack = BUF_INIT;
	char err[512];
	ck_assert_int_eq(msglog_append(l, &m, 1, 2, &id, &ack, NULL, err, sizeof err),
			 MSGLOG_EUNAVAIL);
	ck_assert_msg(strstr(err, path) && strstr(err, "replaced or deleted while open"),
		      "%s", err);
	ck_assert_int_eq(ack.len, 0);
	struct msglog *fresh;
	ck_assert_int_eq(msglog_open(&fresh, path, NULL, false, err, sizeof err), MSGLOG_EUNAVAIL);
	sqlite3_close(o);
	ck_assert_msg(msglog_append(l, &m, 1, 2, &id, &ack, NULL, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(id, 3);
	fresh = open_log();
	struct msglog_page pg = { 0 };
	rd(fresh, "a,b", 0, 10, &pg);
	ck_assert_int_eq(pg.count, 3);
	ck_assert_ptr_null(strstr(buf_str(&pg.items), "\"old\""));
	msglog_page_free(&pg);
	buf_free(&ack);
	msglog_close(fresh);
	msglog_close(l);
}
END_TEST

static bool only_alive(const char *owner, void *arg)
{
	return strcmp(owner, (const char *)arg) == 0;
}

/* Presence: one join however many subscriptions, none again for one back
 * within the grace, one leave once the last ended longer than the grace
 * ago or its owner died; the members as of a log id; origin passed over. */
START_TEST(presence_joins_and_leaves)
{
	struct msglog *l = open_log();
	char err[256];
	struct msglog_member ann = { "presence-room", "7", "{\"name\":\"Ann\"}" };
	struct msglog_member bob = { "presence-room", "8", "{\"name\":\"Bob\"}" };
	ck_assert_int_eq(msglog_presence(l, &ann, 1, "p1", 1, 1000, err, sizeof err), 1);
	ck_assert_int_eq(msglog_presence(l, &ann, 1, "p2", 1, 1001, err, sizeof err), 0);
	ck_assert_int_eq(msglog_presence(l, &bob, 1, "p2", 1, 1002, err, sizeof err), 1);
	struct buf members = BUF_INIT;
	int64_t last;
	long count, subs;
	ck_assert_msg(msglog_members(l, "presence-room", false, &members, &last, &count, &subs, err,
				     sizeof err) == 0, "%s", err);
	ck_assert_str_eq(buf_str(&members), "[{\"id\":\"7\",\"info\":{\"name\":\"Ann\"}},"
			 "{\"id\":\"8\",\"info\":{\"name\":\"Bob\"}}]");
	ck_assert_int_eq(last, 2);
	ck_assert_int_eq(count, 2);
	ck_assert_int_eq(subs, 3);
	struct msglog_page pg = { 0 };
	rd(l, "presence-room", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 2);
	ck_assert_msg(strstr(pg.items.p, "\"type\":\"application/x-comet-presence+json\","
			     "\"data\":{\"event\":\"join\",\"member\":{\"id\":\"7\",\"info\":"
			     "{\"name\":\"Ann\"}}}"), "%s", pg.items.p);
	msglog_page_free(&pg);
	/* Ann's two subscriptions end; one comes back within the grace. */
	ck_assert_int_eq(msglog_presence(l, &ann, 1, "p1", -1, 2000, err, sizeof err), 0);
	ck_assert_int_eq(msglog_presence(l, &ann, 1, "p2", -1, 2000, err, sizeof err), 0);
	ck_assert_int_eq(msglog_presence_reap(l, "p2", 2500, 1000, 60000, NULL, NULL, err,
					      sizeof err), 0);
	ck_assert_int_eq(msglog_presence(l, &ann, 1, "p1", 1, 2600, err, sizeof err), 0);
	ck_assert_int_eq(msglog_presence(l, &ann, 1, "p1", -1, 2700, err, sizeof err), 0);
	ck_assert_int_eq(msglog_presence_reap(l, "p2", 3600, 1000, 60000, NULL, NULL, err,
					      sizeof err), 0);
	ck_assert_int_eq(msglog_presence_reap(l, "p2", 3700, 1000, 60000, NULL, NULL, err,
					      sizeof err), 1);
	/* Bob's owner dies: he goes after the grace. */
	ck_assert_int_eq(msglog_presence_reap(l, "p9", 4000, 1000, 60000, only_alive, "p9", err,
					      sizeof err), 0);
	ck_assert_int_eq(msglog_presence_reap(l, "p9", 5001, 1000, 60000, only_alive, "p9", err,
					      sizeof err), 1);
	buf_reset(&members);
	ck_assert(msglog_members(l, "presence-room", false, &members, &last, &count, &subs, err,
				 sizeof err) == 0);
	ck_assert_str_eq(buf_str(&members), "[]");
	ck_assert_int_eq(last, 4);
	rd(l, "presence-room", 2, 100, &pg);
	ck_assert_msg(strstr(pg.items.p, "\"event\":\"leave\",\"member\":{\"id\":\"7\"") &&
		      strstr(pg.items.p, "\"event\":\"leave\",\"member\":{\"id\":\"8\""),
		      "%s", pg.items.p);
	msglog_page_free(&pg);
	/* A message of an origin is passed over for a reader of that origin. */
	struct msglog_msg m = { "c", "text/plain", "hi", 2, "1.2" };
	int64_t id;
	struct buf ack = BUF_INIT;
	ck_assert(msglog_append(l, &m, 1, 6000, &id, &ack, NULL, err, sizeof err) == 0);
	pg = (struct msglog_page){ .exclude = "1.2" };
	rd(l, "c", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 0);
	pg.exclude = "3.4";
	rd(l, "c", 0, 100, &pg);
	ck_assert_int_eq(pg.count, 1);
	msglog_page_free(&pg);
	buf_free(&ack);
	buf_free(&members);
	msglog_close(l);
}
END_TEST

Suite *msglog_suite(void)
{
	Suite *s = suite_create("msglog");
	TCase *t = tcase_create("log");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, append_and_read);
	tcase_add_test(t, several_channels_one_cursor);
	tcase_add_test(t, limit_and_more);
	tcase_add_test(t, reset_when_cursor_ahead);
	tcase_add_test(t, retention_by_count_and_gap);
	tcase_add_test(t, retention_by_age);
	tcase_add_test(t, ids_never_reused_and_delete);
	tcase_add_test(t, invalid_json_refused);
	tcase_add_test(t, batch_since);
	tcase_add_test(t, concurrent_publishers);
	tcase_add_test(t, unavailable_storage);
	tcase_add_test(t, not_writable);
	tcase_add_test(t, disk_full);
	tcase_add_test(t, locked_database);
	tcase_add_test(t, deleted_file);
	tcase_add_test(t, replaced_file);
	tcase_add_test(t, replaced_file_still_open_elsewhere);
	tcase_add_test(t, presence_joins_and_leaves);
	suite_add_tcase(s, t);
	return s;
}
