/* replica: this host's copy of a log shared by several hosts, in the
 * SQLite file every reader of the host reads: copied from PostgreSQL
 * (pglog) in id order, and a publish to the shared log copied here before
 * it is answered.
 *
 * Each copy brings the copy up to the shared log's newest commit, in
 * transactions of at most COPY_ROWS messages. The copy's write lock is
 * taken before the shared log is read, so that a message is read from
 * PostgreSQL once per host, by whichever process (the follower, or the
 * publisher itself) gets there first; the other finds nothing left to
 * read. The table copied (sqlconn.c) says how far the copy has got: a
 * write that comes right after it (same log, the next id and revision),
 * whether a publisher's own or one a notification carried, is applied as
 * it is, reading nothing. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "pglog.h"
#include "replica.h"
#include "sqlconn.h"
#include "sqlmsg.h"

#define COPY_ROWS 1000
#define COPY_WAIT_MS 100

enum {
	S_ACK = SQLCONN_STMT_REPLICA, S_COPIED, S_COPIED_SET, S_COPY_INSERT, S_SEQ_SET, S_SEQ_NEW,
	S_END
};
_Static_assert(S_END <= SQLCONN_NSTMT, "replica's statements overlap the end");

#define Q(s) [s - SQLCONN_STMT_REPLICA]
static const char *const sql[S_END - SQLCONN_STMT_REPLICA] = {
	Q(S_ACK) = "SELECT json_object('id',?1,'channel',?2,'time',?3)",
	Q(S_COPIED) = "SELECT id,rev,log FROM copied",
	Q(S_COPIED_SET) = "INSERT INTO copied(one,id,rev,log) VALUES(1,?1,?2,?3) "
			  "ON CONFLICT(one) DO UPDATE SET id=excluded.id,rev=excluded.rev,"
			  "log=excluded.log",
	Q(S_COPY_INSERT) = "INSERT INTO msg(id,channel,time,type,data,origin) "
			   "VALUES(?1,?2,?3,?4,?5,?6)",
	Q(S_SEQ_SET) = "UPDATE sqlite_sequence SET seq=?1 WHERE name='msg'",
	Q(S_SEQ_NEW) = "INSERT INTO sqlite_sequence(name,seq) SELECT 'msg',?1 "
		       "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name='msg')",
};
#undef Q

static sqlite3_stmt *stmt(struct sqlconn *c, int which, char *err, size_t errlen)
{
	return sqlconn_stmt(c, which, sql[which - SQLCONN_STMT_REPLICA], err, errlen);
}

static int copied(struct sqlconn *c, int64_t *id, int64_t *rev, char *log, size_t loglen,
		  char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, S_COPIED, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	*id = 0;
	*rev = -1;
	log[0] = '\0';
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*rev = sqlite3_column_int64(s, 1);
		snprintf(log, loglen, "%s", (const char *)sqlite3_column_text(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
		: sqlconn_fail(c, rc, "copy", err, errlen);
}

static int apply_changes(struct sqlconn *c, const struct pglog_changes *ch,
			 char *err, size_t errlen)
{
	if (ch->behind && sqlconn_exec(c, "DELETE FROM msg; DELETE FROM dropped; DELETE FROM chan",
				       err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* A copy keeps no per-channel counts (chan): they serve retention,
	 * which the shared log does; the copy applies its marks. */
	sqlite3_stmt *ins = stmt(c, S_COPY_INSERT, err, errlen);
	sqlite3_stmt *seq_set = stmt(c, S_SEQ_SET, err, errlen);
	sqlite3_stmt *seq_new = stmt(c, S_SEQ_NEW, err, errlen);
	sqlite3_stmt *done = stmt(c, S_COPIED_SET, err, errlen);
	if (!ins || !seq_set || !seq_new || !done)
		return MSGLOG_EUNAVAIL;
	for (int i = 0; i < ch->nrows; i++) {
		const struct pglog_row *r = &ch->rows[i];
		sqlite3_bind_int64(ins, 1, r->id);
		sqlite3_bind_text(ins, 2, r->channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, r->time);
		sqlite3_bind_text(ins, 4, r->type, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, r->data, (int)r->len, SQLITE_STATIC);
		if (r->origin)
			sqlite3_bind_text(ins, 6, r->origin, -1, SQLITE_STATIC);
		if (sqlconn_step(c, ins, "copy", err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
	}
	for (int i = 0; i < ch->nmarks; i++) {
		const struct msglog_mark *k = &ch->marks[i];
		if (sqlmsg_drop(c, k->channel, k->id, "copy", err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
	}
	/* The copy's newest id is the shared log's, even when that message
	 * was dropped before it could be copied (last_id in answers). */
	sqlite3_bind_int64(seq_set, 1, ch->last_id);
	sqlite3_bind_int64(seq_new, 1, ch->last_id);
	sqlite3_bind_int64(done, 1, ch->last_id);
	sqlite3_bind_int64(done, 2, ch->rev);
	sqlite3_bind_text(done, 3, ch->log, -1, SQLITE_STATIC);
	if (sqlconn_step(c, seq_set, "copy", err, errlen) < 0 ||
	    sqlconn_step(c, seq_new, "copy", err, errlen) < 0 ||
	    sqlconn_step(c, done, "copy", err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	return 0;
}

int replica_copy(struct sqlconn *c, struct pglog *pg, enum pglog_role role, int64_t upto,
		 char *err, size_t errlen)
{
	int total = 0;
	bool more = true;
	while (more) {
		int64_t id, rev;
		char log[40];
		if (sqlconn_begin(c, true, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
		if (copied(c, &id, &rev, log, sizeof log, err, errlen) < 0) {
			sqlconn_rollback(c);
			return MSGLOG_EUNAVAIL;
		}
		if (upto && id >= upto)
			return sqlconn_commit(c, err, errlen) < 0 ? MSGLOG_EUNAVAIL : total;
		struct pglog_changes ch;
		memset(&ch, 0, sizeof ch);
		if (pglog_changes(pg, role, log[0] ? log : NULL, id, rev, COPY_ROWS, &ch,
				  err, errlen) < 0 ||
		    apply_changes(c, &ch, err, errlen) < 0 ||
		    sqlconn_commit(c, err, errlen) < 0) {
			pglog_changes_free(&ch);
			sqlconn_rollback(c);
			return MSGLOG_EUNAVAIL;
		}
		total += ch.nrows + ch.nmarks + (ch.behind || ch.last_id != id);
		more = ch.more;
		pglog_changes_free(&ch);
	}
	return total;
}

int replica_apply(struct sqlconn *c, const struct pglog_writes *ws, int64_t *held,
		  char *err, size_t errlen)
{
	int64_t id, rev;
	*held = 0;
	char log[40];
	int total = 0;
	if (sqlconn_begin(c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (copied(c, &id, &rev, log, sizeof log, err, errlen) < 0)
		goto undo;
	for (int i = 0; i < ws->n; i++) {
		const struct pglog_changes *w = &ws->w[i];
		if (strcmp(log, w->log) != 0)
			break;
		if (id >= w->last_id)
			continue;	/* this host's publisher copied it */
		if (id != w->rows[0].id - 1 || rev != w->rev - 1)
			break;	/* something came between: read it */
		if (apply_changes(c, w, err, errlen) < 0)
			goto undo;
		id = w->last_id;
		rev = w->rev;
		total += w->nrows + w->nmarks;
	}
	if (sqlconn_commit(c, err, errlen) < 0)
		goto undo;
	*held = id;
	return total;
undo:
	sqlconn_rollback(c);
	return MSGLOG_EUNAVAIL;
}

int replica_append(struct sqlconn *c, struct pglog *pg, const struct msglog_msg *m, int n,
		   int64_t now_ms, long keep, long keep_seconds, int64_t *ids, struct buf *acks,
		   struct msglog_item *ack_at, char *err, size_t errlen)
{
	struct pglog_appended a;
	if (pglog_append(pg, m, n, now_ms, keep, keep_seconds, &a, err, errlen) < 0) {
		pglog_appended_free(&a);
		return MSGLOG_EUNAVAIL;
	}
	int64_t first = a.first;
	sqlite3_stmt *s = stmt(c, S_ACK, err, errlen);
	for (int i = 0; i < n; i++) {
		ids[i] = first + i;
		if (i)
			buf_addc(acks, ',');
		size_t at = acks->len;
		/* Rendered by SQLite, as a local log's acks are. */
		if (s) {
			sqlite3_bind_int64(s, 1, ids[i]);
			sqlite3_bind_text(s, 2, m[i].channel, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, now_ms);
			if (sqlite3_step(s) == SQLITE_ROW)
				buf_add(acks, sqlite3_column_text(s, 0),
					(size_t)sqlite3_column_bytes(s, 0));
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
		}
		if (acks->len == at)
			buf_printf(acks, "{\"id\":%lld}", (long long)ids[i]);
		if (ack_at)
			ack_at[i] = (struct msglog_item){ ids[i], at, acks->len - at };
	}
	/* The copy's lock is held across reads of PostgreSQL, which a cut
	 * network can stall for seconds: an acknowledged publish waits for it
	 * a little, then leaves the copying to the follower. */
	char ignored[256];
	sqlconn_wait_until(c, clock_mono_ms() + COPY_WAIT_MS);
	sqlconn_begin_call(c);
	/* Most often the follower has copied the writes before this one by
	 * the time it commits: then the publish is applied as it was sent, as
	 * a write a notification carried would be, and nothing is read back.
	 * The rows point into m (never freed here). */
	struct pglog_row *rows = xcalloc((size_t)n, sizeof *rows);
	for (int i = 0; i < n; i++)
		rows[i] = (struct pglog_row){ first + i, now_ms, (char *)m[i].channel,
					      (char *)m[i].type, (char *)m[i].data, m[i].len,
					      (char *)m[i].origin };
	struct pglog_changes w = { .rows = rows, .nrows = n, .marks = a.marks,
				   .nmarks = a.nmarks, .last_id = first + n - 1, .rev = a.rev };
	snprintf(w.log, sizeof w.log, "%s", a.log);
	struct pglog_writes own = { &w, 1, 1 };
	int64_t held;
	if (replica_apply(c, &own, &held, ignored, sizeof ignored) >= 0 && held < w.last_id)
		replica_copy(c, pg, PGLOG_WRITER, w.last_id, ignored, sizeof ignored);
	free(rows);
	pglog_appended_free(&a);
	return 0;
}
