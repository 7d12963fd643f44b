/* sqlmsg: the messages of the SQLite log: append (with retention by count
 * and by age), read, since, info, DELETE and counts, each on a connection
 * within a call (sqlconn_enter). Messages are rendered with SQLite's JSON
 * functions, never by hand. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "request.h"
#include "sqlconn.h"
#include "sqlmsg.h"

/* data is embedded as JSON for the JSON types (request_json_type), which
 * were checked to be JSON when published; other types as a string. */
#define RENDER "json_object('id',id,'channel',channel,'time',time,'type',type," \
	"'data',CASE WHEN type IN ('application/json','application/x-pusher-event+json'," \
	"'application/x-comet-presence+json','application/x-mercure-update+json') " \
	"THEN json(data) ELSE data END)"

enum {
	S_SEQ = SQLCONN_STMT_MSG, S_INSERT, S_CHAN_INC, S_CHAN_N, S_CHAN_SUB, S_CHAN_DROP,
	S_AGE_OLDEST, S_AGE_COUNTS, S_CHAN_GC, S_KEEP_CUT, S_MARK, S_DEL_CHAN_UPTO, S_AGE_CUT,
	S_AGE_MARK, S_AGE_DEL, S_SINCE, S_MARKS_AFTER, S_INFO, S_CHAN_MAX, S_COUNT, S_FIND_ORIGIN,
	S_NSTMT,
	/* The reads of 1 to REQ_MAX_CHANNELS channels (by_count). */
	S_READ = S_NSTMT,
	S_GAP = S_READ + REQ_MAX_CHANNELS + 1,
	S_END = S_GAP + REQ_MAX_CHANNELS + 1
};
_Static_assert(S_END <= SQLCONN_STMT_PRESENCE, "sqlmsg's statements overlap sqlpresence's");

#define Q(s) [s - SQLCONN_STMT_MSG]
static const char *const sql[S_NSTMT - SQLCONN_STMT_MSG] = {
	Q(S_SEQ) = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name='msg'),0)",
	/* No RETURNING on the publish path: SQLite collects RETURNING rows in
	 * an ephemeral table with a page cache of its own, allocated and freed
	 * per statement (about 90 KB each time). */
	Q(S_INSERT) = "INSERT INTO msg(channel,time,type,data,origin) VALUES(?1,?2,?3,?4,?5)",
	Q(S_CHAN_INC) = "INSERT INTO chan(name,n) VALUES(?1,1) "
			"ON CONFLICT(name) DO UPDATE SET n=n+1",
	Q(S_CHAN_N) = "SELECT n FROM chan WHERE name=?1",
	Q(S_CHAN_SUB) = "UPDATE chan SET n=n-?2 WHERE name=?1",
	Q(S_CHAN_DROP) = "DELETE FROM chan WHERE name=?1",
	Q(S_AGE_OLDEST) = "SELECT time FROM msg ORDER BY id LIMIT 1",
	Q(S_AGE_COUNTS) = "UPDATE chan SET n=n-d.c FROM (SELECT channel,count(*) AS c FROM msg "
			  "WHERE id<=?1 GROUP BY channel) AS d WHERE chan.name=d.channel",
	Q(S_CHAN_GC) = "DELETE FROM chan WHERE n<=0",
	/* The newest of the k oldest messages of a channel: ?2 is k - 1. */
	Q(S_KEEP_CUT) = "SELECT id FROM msg WHERE channel=?1 ORDER BY id LIMIT 1 OFFSET ?2",
	Q(S_MARK) = "INSERT INTO dropped(channel,id) VALUES(?1,?2) "
		    "ON CONFLICT(channel) DO UPDATE SET id=max(id,excluded.id)",
	Q(S_DEL_CHAN_UPTO) = "DELETE FROM msg WHERE channel=?1 AND id<=?2",
	Q(S_AGE_CUT) = "SELECT max(id) FROM (SELECT id,time FROM msg ORDER BY id LIMIT "
		       "256) WHERE time<?1",
	Q(S_AGE_MARK) = "INSERT INTO dropped(channel,id) SELECT channel,max(id) FROM msg "
			"WHERE id<=?1 GROUP BY channel "
			"ON CONFLICT(channel) DO UPDATE SET id=max(id,excluded.id)",
	Q(S_AGE_DEL) = "DELETE FROM msg WHERE id<=?1",
	Q(S_SINCE) = "SELECT id,channel," RENDER ",origin FROM msg WHERE id>?1 ORDER BY id LIMIT ?2",
	Q(S_MARKS_AFTER) = "SELECT channel,id FROM dropped WHERE id>?1",
	Q(S_INFO) = "SELECT json_object('channel',?1,'last_id',coalesce(max(id),0),"
		    "'first_id',coalesce(min(id),0),'messages',count(*)) "
		    "FROM msg WHERE channel=?1",
	Q(S_CHAN_MAX) = "SELECT max(id),count(*) FROM msg WHERE channel=?1",
	Q(S_COUNT) = "SELECT count(*) FROM msg",
	Q(S_FIND_ORIGIN) = "SELECT max(id) FROM msg WHERE channel=?1 AND origin=?2",
};
#undef Q

static sqlite3_stmt *stmt(struct sqlconn *c, int which, char *err, size_t errlen)
{
	return sqlconn_stmt(c, which, sql[which - SQLCONN_STMT_MSG], err, errlen);
}

int sqlmsg_last_id(struct sqlconn *c, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, S_SEQ, err, errlen);
	return s ? sqlconn_int(c, s, 0, out, err, errlen) : MSGLOG_EUNAVAIL;
}

int sqlmsg_drop(struct sqlconn *c, const char *chan, int64_t upto, const char *what,
		char *err, size_t errlen)
{
	sqlite3_stmt *m = stmt(c, S_MARK, err, errlen);
	sqlite3_stmt *d = stmt(c, S_DEL_CHAN_UPTO, err, errlen);
	if (!m || !d)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(m, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(m, 2, upto);
	sqlite3_bind_text(d, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(d, 2, upto);
	return sqlconn_step(c, m, what, err, errlen) < 0 ||
	       sqlconn_step(c, d, what, err, errlen) < 0 ? MSGLOG_EUNAVAIL : 0;
}

/* Counts the message just added to chan and drops the channel's oldest
 * beyond the per-channel limit (one, in the steady state). */
static int trim_count(struct sqlconn *c, const char *chan, long keep, char *err, size_t errlen)
{
	sqlite3_stmt *inc = stmt(c, S_CHAN_INC, err, errlen);
	sqlite3_stmt *cnt = stmt(c, S_CHAN_N, err, errlen);
	if (!inc || !cnt)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(inc, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_text(cnt, 1, chan, -1, SQLITE_STATIC);
	int64_t n;
	if (sqlconn_int(c, inc, 0, &n, err, errlen) < 0 ||
	    sqlconn_int(c, cnt, 0, &n, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (n <= keep)
		return 0;
	int64_t k = n - keep, cut, ignored;
	sqlite3_stmt *s = stmt(c, S_KEEP_CUT, err, errlen);
	sqlite3_stmt *sub = stmt(c, S_CHAN_SUB, err, errlen);
	if (!s || !sub)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, k - 1);
	if (sqlconn_int(c, s, 0, &cut, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(sub, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sub, 2, k);
	if (sqlmsg_drop(c, chan, cut, "query", err, errlen) < 0 ||
	    sqlconn_int(c, sub, 0, &ignored, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	return 0;
}

/* Drops messages older than the age limit, oldest first, a bounded number
 * per call so that no publish pays for a long backlog at once. Only the
 * oldest message is looked at unless it has expired. */
static int trim_age(struct sqlconn *c, int64_t now_ms, long keep_seconds, char *err, size_t errlen)
{
	int64_t cutoff = now_ms - (int64_t)keep_seconds * 1000, oldest;
	sqlite3_stmt *o = stmt(c, S_AGE_OLDEST, err, errlen);
	if (!o || sqlconn_int(c, o, INT64_MAX, &oldest, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (oldest >= cutoff)
		return 0;
	sqlite3_stmt *s = stmt(c, S_AGE_CUT, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_int64(s, 1, cutoff);
	int64_t cut;
	if (sqlconn_int(c, s, 0, &cut, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (cut == 0)
		return 0;
	sqlite3_stmt *m = stmt(c, S_AGE_MARK, err, errlen);
	sqlite3_stmt *cnt = stmt(c, S_AGE_COUNTS, err, errlen);
	sqlite3_stmt *d = stmt(c, S_AGE_DEL, err, errlen);
	sqlite3_stmt *gc = stmt(c, S_CHAN_GC, err, errlen);
	if (!m || !cnt || !d || !gc)
		return MSGLOG_EUNAVAIL;
	int64_t ignored;
	sqlite3_bind_int64(m, 1, cut);
	sqlite3_bind_int64(cnt, 1, cut);
	sqlite3_bind_int64(d, 1, cut);
	if (sqlconn_int(c, m, 0, &ignored, err, errlen) < 0 ||
	    sqlconn_int(c, cnt, 0, &ignored, err, errlen) < 0 ||
	    sqlconn_int(c, d, 0, &ignored, err, errlen) < 0 ||
	    sqlconn_int(c, gc, 0, &ignored, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	return 0;
}

int sqlmsg_insert(struct sqlconn *c, const struct msglog_msg *m, int64_t now_ms, long keep,
		  int64_t *id, char *err, size_t errlen)
{
	sqlite3_stmt *ins = stmt(c, S_INSERT, err, errlen);
	if (!ins)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(ins, 1, m->channel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, now_ms);
	sqlite3_bind_text(ins, 3, m->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, m->data, (int)m->len, SQLITE_STATIC);
	if (m->origin)
		sqlite3_bind_text(ins, 5, m->origin, -1, SQLITE_STATIC);
	int rc = sqlite3_step(ins);
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	if (rc != SQLITE_DONE)
		return sqlconn_fail(c, rc, "insert", err, errlen);
	*id = sqlite3_last_insert_rowid(c->db);
	return trim_count(c, m->channel, keep, err, errlen);
}

/* An append that found the path naming another file: not committed, or
 * committed into a file the log no longer is (not acknowledged). */
#define MOVED 1

static int append_once(struct sqlconn *c, const struct msglog_msg *m, int n, int64_t now_ms,
		       long keep, long keep_seconds, int64_t *ids, struct buf *acks,
		       struct msglog_item *ack_at, char *err, size_t errlen)
{
	if (sqlconn_begin(c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	size_t acks_len = acks->len;
	int result = MSGLOG_EUNAVAIL;
	for (int i = 0; i < n; i++) {
		if (sqlmsg_insert(c, &m[i], now_ms, keep, &ids[i], err, errlen) < 0)
			goto undo;
		if (i)
			buf_addc(acks, ',');
		size_t at = acks->len;
		/* Channel names are A-Z a-z 0-9 _ - . : @ (msglog.h): nothing
		 * in them needs escaping. */
		buf_printf(acks, "{\"id\":%lld,\"channel\":\"%s\",\"time\":%lld}",
			   (long long)ids[i], m[i].channel, (long long)now_ms);
		if (ack_at)
			ack_at[i] = (struct msglog_item){ ids[i], at, acks->len - at };
	}
	if (trim_age(c, now_ms, keep_seconds, err, errlen) < 0)
		goto undo;
	/* Checked under the write lock, right before the commit, and again
	 * after it: a file renamed over or deleted during the commit took it
	 * into a file nobody will read again. That append is retried on the
	 * new file; a connection still reading the old one might deliver it
	 * too, under another id: delivered twice, never lost. */
	if (sqlconn_moved(c)) {
		result = MOVED;
		goto undo;
	}
	if (sqlconn_commit(c, err, errlen) < 0)
		goto undo;
	if (sqlconn_moved(c)) {
		acks->len = acks_len;
		return MOVED;
	}
	return 0;
undo:
	sqlconn_rollback(c);
	acks->len = acks_len;
	return result;
}

int sqlmsg_append(struct sqlconn *c, const struct msglog_msg *m, int n, int64_t now_ms,
		  long keep, long keep_seconds, int64_t *ids, struct buf *acks,
		  struct msglog_item *ack_at, char *err, size_t errlen)
{
	int rc = append_once(c, m, n, now_ms, keep, keep_seconds, ids, acks, ack_at, err, errlen);
	/* Once on the file the path names now: a second move meanwhile is
	 * not chased. */
	if (rc == MOVED) {
		rc = sqlconn_relocate(c, err, errlen);
		if (rc == 0)
			rc = append_once(c, m, n, now_ms, keep, keep_seconds, ids, acks, ack_at,
					 err, errlen);
	}
	if (rc == MOVED) {
		snprintf(err, errlen, "%s was replaced or deleted while open, twice during one "
			 "append: not appended; whatever replaces it should stop", c->path);
		rc = MSGLOG_EUNAVAIL;
	}
	return rc;
}

/* The per-channel-count statements (first: S_READ or S_GAP) are made on
 * first use. */
static sqlite3_stmt *by_count(struct sqlconn *c, int first, int n,
			      const char *head, const char *tail, char *err, size_t errlen)
{
	if (c->st[first + n])
		return c->st[first + n];
	struct buf q = BUF_INIT;
	buf_adds(&q, head);
	for (int i = 0; i < n; i++)
		buf_adds(&q, i ? ",?" : "?");
	buf_adds(&q, tail);
	sqlite3_stmt *s = sqlconn_prepare(c, first + n, q.p, err, errlen);
	buf_free(&q);
	return s;
}

static int read_rows(struct sqlconn *c, const char *const *chans, int nchan, int64_t since,
		     int limit, struct msglog_page *pg, char *err, size_t errlen)
{
	sqlite3_stmt *s = by_count(c, S_READ, nchan,
				   "SELECT id," RENDER " FROM msg WHERE channel IN (",
				   ") AND id>? AND (origin IS NULL OR origin IS NOT ?) "
				   "ORDER BY id LIMIT ?", err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	for (int i = 0; i < nchan; i++)
		sqlite3_bind_text(s, i + 1, chans[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, nchan + 1, since);
	if (pg->exclude)
		sqlite3_bind_text(s, nchan + 2, pg->exclude, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, nchan + 3, limit + 1);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(s, 1);
		if (pg->count == limit ||
		    (pg->count && pg->max_bytes && pg->items.len + len + 1 > pg->max_bytes)) {
			pg->more = true;
			break;
		}
		if (pg->count)
			buf_addc(&pg->items, ',');
		if (pg->count == pg->cap) {
			pg->cap = pg->cap ? pg->cap * 2 : 16;
			pg->item = xrealloc(pg->item, (size_t)pg->cap * sizeof *pg->item);
		}
		struct msglog_item *it = &pg->item[pg->count++];
		it->id = pg->last_id = sqlite3_column_int64(s, 0);
		it->off = pg->items.len;
		it->len = len;
		buf_add(&pg->items, sqlite3_column_text(s, 1), it->len);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlconn_fail(c, rc, "read", err, errlen);
	/* Whether messages after the cursor were dropped does not depend on
	 * where this page was cut. */
	if (since == 0)
		return 0;
	s = by_count(c, S_GAP, nchan, "SELECT 1 FROM dropped WHERE channel IN (",
		     ") AND id>? LIMIT 1", err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	for (int i = 0; i < nchan; i++)
		sqlite3_bind_text(s, i + 1, chans[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, nchan + 1, since);
	int64_t g;
	if (sqlconn_int(c, s, 0, &g, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	pg->gap = g == 1;
	return 0;
}

int sqlmsg_read(struct sqlconn *c, const char *const *chans, int nchan, int64_t since,
		     int limit, struct msglog_page *pg, char *err, size_t errlen)
{
	buf_reset(&pg->items);
	pg->count = 0;
	pg->more = pg->gap = pg->reset = pg->ahead = false;
	if (nchan < 1 || nchan > REQ_MAX_CHANNELS) {
		snprintf(err, errlen, "read: %d channels", nchan);
		return MSGLOG_EUNAVAIL;
	}
	/* One read transaction: the messages and last_id from one snapshot. */
	if (sqlconn_begin(c, false, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlmsg_last_id(c, &pg->log_last, err, errlen);
	pg->last_id = pg->log_last;
	/* A cursor ahead of a copy came from a host that copied sooner: it
	 * waits for this copy to catch up. Ahead of a log of its own, the
	 * cursor is from a log since made anew. */
	if (rc == 0 && since > pg->log_last && c->copy) {
		pg->last_id = since;
		pg->ahead = true;
	}
	else if (rc == 0 && since > pg->log_last)
		pg->reset = true;
	else if (rc == 0 && since >= 0) {
		rc = read_rows(c, chans, nchan, since, limit, pg, err, errlen);
		/* Not cut by limit: the cursor moves to the newest id read. */
		if (!pg->more)
			pg->last_id = pg->log_last;
	}
	if (rc == 0)
		rc = sqlconn_commit(c, err, errlen);
	if (rc < 0) {
		sqlconn_rollback(c);
		buf_reset(&pg->items);
		pg->count = 0;
	}
	return rc;
}

int sqlmsg_since(struct sqlconn *c, int64_t after, int max, struct msglog_batch *b,
		 char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	sqlite3_stmt *s = stmt(c, S_SINCE, err, errlen);
	sqlite3_stmt *mk = stmt(c, S_MARKS_AFTER, err, errlen);
	if (!s || !mk || sqlconn_begin(c, false, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlmsg_last_id(c, &b->last_id, err, errlen);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(s, 1, after);
	sqlite3_bind_int(s, 2, max);
	b->rows = xcalloc((size_t)max, sizeof *b->rows);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct msglog_row *r = &b->rows[b->n++];
		r->id = sqlite3_column_int64(s, 0);
		r->channel = xstrdup((const char *)sqlite3_column_text(s, 1));
		r->jsonlen = (size_t)sqlite3_column_bytes(s, 2);
		r->json = xstrndup((const char *)sqlite3_column_text(s, 2), r->jsonlen);
		if (sqlite3_column_type(s, 3) != SQLITE_NULL)
			r->origin = xstrdup((const char *)sqlite3_column_text(s, 3));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		rc = sqlconn_fail(c, rc, "since", err, errlen);
		goto out;
	}
	if (b->n == max) {
		b->full = true;
		b->last_id = b->rows[b->n - 1].id;
	}
	sqlite3_bind_int64(mk, 1, after);
	int cap = 0;
	while ((rc = sqlite3_step(mk)) == SQLITE_ROW) {
		if (b->nmarks == cap) {
			cap = cap ? cap * 2 : 8;
			b->marks = xrealloc(b->marks, (size_t)cap * sizeof *b->marks);
		}
		b->marks[b->nmarks].channel = xstrdup((const char *)sqlite3_column_text(mk, 0));
		b->marks[b->nmarks++].id = sqlite3_column_int64(mk, 1);
	}
	sqlite3_reset(mk);
	rc = rc == SQLITE_DONE ? sqlconn_commit(c, err, errlen)
			       : sqlconn_fail(c, rc, "marks", err, errlen);
out:
	if (rc < 0)
		sqlconn_rollback(c);
	return rc;
}

int sqlmsg_info(struct sqlconn *c, const char *chan, struct buf *json, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, S_INFO, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, chan, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		buf_add(json, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_ROW ? 0 : sqlconn_fail(c, rc, "info", err, errlen);
}

int sqlmsg_delete(struct sqlconn *c, const char *chan, int64_t *deleted,
		  char *err, size_t errlen)
{
	*deleted = 0;
	sqlite3_stmt *s = stmt(c, S_CHAN_MAX, err, errlen);
	if (!s || sqlconn_begin(c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, chan, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int64_t top = 0;
	if (rc == SQLITE_ROW) {
		top = sqlite3_column_int64(s, 0);
		*deleted = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW) {
		sqlconn_fail(c, rc, "delete", err, errlen);
		goto undo;
	}
	if (top > 0) {
		sqlite3_stmt *z = stmt(c, S_CHAN_DROP, err, errlen);
		int64_t ignored;
		if (!z)
			goto undo;
		sqlite3_bind_text(z, 1, chan, -1, SQLITE_STATIC);
		if (sqlmsg_drop(c, chan, top, "query", err, errlen) < 0 ||
		    sqlconn_int(c, z, 0, &ignored, err, errlen) < 0)
			goto undo;
	}
	/* As an append: nothing done in a file the path no longer names. */
	if (sqlconn_moved(c)) {
		snprintf(err, errlen, "%s was replaced or deleted during a DELETE: not done; "
			 "try again", c->path);
		goto undo;
	}
	if (sqlconn_commit(c, err, errlen) < 0)
		goto undo;
	return 0;
undo:
	sqlconn_rollback(c);
	*deleted = 0;
	return MSGLOG_EUNAVAIL;
}

struct find {
	const char *channel, *origin;
	int64_t *id, *log_last;
};

static int find_origin(struct sqlconn *c, void *arg, char *err, size_t errlen)
{
	struct find *f = arg;
	if (sqlmsg_last_id(c, f->log_last, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (!f->origin)
		return 0;
	sqlite3_stmt *s = stmt(c, S_FIND_ORIGIN, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, f->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, f->origin, -1, SQLITE_STATIC);
	return sqlconn_int(c, s, -1, f->id, err, errlen);
}

int sqlmsg_find_origin(struct sqlconn *c, const char *channel, const char *origin, int64_t *id,
		       int64_t *log_last, char *err, size_t errlen)
{
	struct find f = { channel, origin, id, log_last };
	return sqlconn_txn(c, false, find_origin, &f, err, errlen);
}

int sqlmsg_counts(struct sqlconn *c, int64_t *messages, int64_t *last_id,
		  char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, S_COUNT, err, errlen);
	if (!s || sqlconn_begin(c, false, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlconn_int(c, s, 0, messages, err, errlen);
	if (rc == 0)
		rc = sqlmsg_last_id(c, last_id, err, errlen);
	if (rc == 0)
		rc = sqlconn_commit(c, err, errlen);
	if (rc < 0)
		sqlconn_rollback(c);
	return rc;
}
