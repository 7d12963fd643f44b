/* sqlpresence: presence on the SQLite log: who is on each presence
 * channel, their subscriptions by owner (a process), and the join and
 * leave messages, on a connection within a call (sqlconn_enter).
 *
 * A member is on a presence channel while it has a subscription there
 * (presence rows, counted by owner: the process holding them) or its last
 * one ended less than the grace ago (member.gone). Its arrival and its
 * departure are messages in the channel's log, appended in the same
 * transaction as the change they tell of, so that a reader of any snapshot
 * finds the members and the messages in step (sqlpresence_members). */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sqlconn.h"
#include "sqlmsg.h"
#include "sqlpresence.h"

enum {
	S_PRES_INC = SQLCONN_STMT_PRESENCE, S_PRES_DEC, S_PRES_GC, S_MEMBER_GONE_AT, S_MEMBER_ADD,
	S_MEMBER_BACK, S_MEMBER_LEFT, S_MEMBER_EXPIRED, S_MEMBER_DEL, S_OWNER_BEAT, S_OWNERS,
	S_OWNER_DEL, S_OWNER_SUBS_DEL, S_MEMBER_ORPHANS, S_MEMBERS, S_MEMBER_COUNTS, S_MEMBER_IDS,
	S_PRESENCE_CHANNELS, S_END
};
_Static_assert(S_END <= SQLCONN_STMT_REPLICA, "sqlpresence's statements overlap replica's");

#define Q(s) [s - SQLCONN_STMT_PRESENCE]
static const char *const sql[S_END - SQLCONN_STMT_PRESENCE] = {
	Q(S_PRES_INC) = "INSERT INTO presence(channel,member,owner,subs) VALUES(?1,?2,?3,1) "
			"ON CONFLICT DO UPDATE SET subs=subs+1",
	Q(S_PRES_DEC) = "UPDATE presence SET subs=subs-1 WHERE channel=?1 AND member=?2 AND owner=?3",
	Q(S_PRES_GC) = "DELETE FROM presence WHERE subs<=0",
	Q(S_MEMBER_GONE_AT) = "SELECT coalesce(gone,-1) FROM member WHERE channel=?1 AND member=?2",
	Q(S_MEMBER_ADD) = "INSERT INTO member(channel,member,info,gone) VALUES(?1,?2,?3,NULL)",
	Q(S_MEMBER_BACK) = "UPDATE member SET gone=NULL WHERE channel=?1 AND member=?2",
	Q(S_MEMBER_LEFT) = "UPDATE member SET gone=?3 WHERE channel=?1 AND member=?2 AND gone IS "
			   "NULL AND NOT EXISTS (SELECT 1 FROM presence WHERE channel=?1 AND "
			   "member=?2)",
	Q(S_MEMBER_EXPIRED) = "SELECT channel,member,info FROM member WHERE gone<=?1 LIMIT 256",
	Q(S_MEMBER_DEL) = "DELETE FROM member WHERE channel=?1 AND member=?2",
	Q(S_OWNER_BEAT) = "INSERT INTO owner(owner,seen) VALUES(?1,?2) "
			  "ON CONFLICT DO UPDATE SET seen=excluded.seen",
	Q(S_OWNERS) = "SELECT owner,seen FROM owner",
	Q(S_OWNER_DEL) = "DELETE FROM owner WHERE owner=?1",
	Q(S_OWNER_SUBS_DEL) = "DELETE FROM presence WHERE owner=?1",
	Q(S_MEMBER_ORPHANS) = "UPDATE member SET gone=?1 WHERE gone IS NULL AND NOT EXISTS "
			      "(SELECT 1 FROM presence p WHERE p.channel=member.channel AND "
			      "p.member=member.member)",
	Q(S_MEMBERS) = "SELECT json_group_array(json_object('id',member,'info',json(info))) "
		       "FROM (SELECT member,info FROM member WHERE channel=?1 ORDER BY member)",
	Q(S_MEMBER_COUNTS) = "SELECT (SELECT count(*) FROM member WHERE channel=?1),"
			     "(SELECT coalesce(sum(subs),0) FROM presence WHERE channel=?1)",
	Q(S_MEMBER_IDS) = "SELECT json_group_array(json_object('id',member)) "
			  "FROM (SELECT member FROM member WHERE channel=?1 ORDER BY member)",
	Q(S_PRESENCE_CHANNELS) = "SELECT channel,count(*),(SELECT coalesce(sum(subs),0) FROM "
				 "presence p WHERE p.channel=m.channel) FROM member m WHERE "
				 "substr(channel,1,length(?1))=?1 GROUP BY channel ORDER BY channel "
				 "LIMIT 10000",
};
#undef Q

static sqlite3_stmt *stmt(struct sqlconn *c, int which, char *err, size_t errlen)
{
	return sqlconn_stmt(c, which, sql[which - SQLCONN_STMT_PRESENCE], err, errlen);
}

static int text_query(struct sqlconn *c, sqlite3_stmt *s, struct buf *out,
		      char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		buf_add(out, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
		: sqlconn_fail(c, rc, "query", err, errlen);
}

/* The message telling of member joining or leaving channel. */
static int presence_event(struct sqlconn *c, const char *channel, const char *member,
			  const char *info, bool join, int64_t now_ms, long keep,
			  char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(c->db, "SELECT json_object('event',?1,'member',"
				    "json_object('id',?2,'info',json(?3)))", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sqlconn_fail(c, rc, "presence", err, errlen);
	sqlite3_bind_text(s, 1, join ? "join" : "leave", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, member, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, info, -1, SQLITE_STATIC);
	struct buf data = BUF_INIT;
	rc = text_query(c, s, &data, err, errlen);
	sqlite3_finalize(s);
	int64_t id;
	struct msglog_msg m = { channel, MSGLOG_PRESENCE_TYPE, data.p ? data.p : "", data.len,
				NULL };
	if (rc == 0)
		rc = sqlmsg_insert(c, &m, now_ms, keep, &id, err, errlen);
	buf_free(&data);
	return rc;
}

/* Runs statement which, which takes no parameters. */
static int exec1(struct sqlconn *c, int which, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, which, err, errlen);
	return s ? sqlconn_step(c, s, sql[which - SQLCONN_STMT_PRESENCE], err, errlen)
		 : MSGLOG_EUNAVAIL;
}

/* Runs statement which with text parameters a, b, t where given, and n
 * for ?1 when a is not, or for ?3 when a and b are and t is not. */
static int bound_exec(struct sqlconn *c, int which, const char *a, const char *b, const char *t,
		      int64_t n, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, which, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	if (a)
		sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(s, 1, n);
	if (b)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	if (t)
		sqlite3_bind_text(s, 3, t, -1, SQLITE_STATIC);
	else if (a && b)
		sqlite3_bind_int64(s, 3, n);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0
		: sqlconn_fail(c, rc, sql[which - SQLCONN_STMT_PRESENCE], err, errlen);
}

static int presence_change(struct sqlconn *c, const struct msglog_member *m, const char *owner,
			   int delta, int64_t now_ms, long keep, char *err, size_t errlen)
{
	if (delta < 0)
		return bound_exec(c, S_PRES_DEC, m->channel, m->id, owner, 0, err, errlen) < 0 ||
		       exec1(c, S_PRES_GC, err, errlen) < 0 ||
		       bound_exec(c, S_MEMBER_LEFT, m->channel, m->id, NULL, now_ms, err, errlen) < 0
		       ? MSGLOG_EUNAVAIL : 0;
	/* The owner is known from its first subscription on, so that it is
	 * found out if it ends without letting go. */
	sqlite3_stmt *beat = stmt(c, S_OWNER_BEAT, err, errlen);
	if (!beat)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(beat, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(beat, 2, now_ms);
	if (sqlconn_step(c, beat, "copy", err, errlen) < 0 ||
	    bound_exec(c, S_PRES_INC, m->channel, m->id, owner, 0, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_stmt *g = stmt(c, S_MEMBER_GONE_AT, err, errlen);
	if (!g)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(g, 1, m->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(g, 2, m->id, -1, SQLITE_STATIC);
	int64_t gone;
	if (sqlconn_int(c, g, -2, &gone, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (gone == -2)
		return bound_exec(c, S_MEMBER_ADD, m->channel, m->id, m->info, 0, err, errlen) < 0 ||
		       presence_event(c, m->channel, m->id, m->info, true, now_ms, keep,
				      err, errlen) < 0
		       ? MSGLOG_EUNAVAIL : 1;
	/* Back within the grace: no leave, no new join. */
	if (gone >= 0)
		return bound_exec(c, S_MEMBER_BACK, m->channel, m->id, NULL, 0, err, errlen);
	return 0;
}

struct change {
	const struct msglog_member *m;
	int n;
	const char *owner;
	int delta;
	int64_t now_ms;
	long keep;
};

static int change_all(struct sqlconn *c, void *arg, char *err, size_t errlen)
{
	struct change *ch = arg;
	int told = 0;
	for (int i = 0; i < ch->n; i++) {
		int rc = presence_change(c, &ch->m[i], ch->owner, ch->delta, ch->now_ms, ch->keep,
					 err, errlen);
		if (rc < 0)
			return rc;
		told += rc;
	}
	return told;
}

int sqlpresence_change(struct sqlconn *c, const struct msglog_member *m, int n, const char *owner,
		       int delta, int64_t now_ms, long keep, char *err, size_t errlen)
{
	struct change ch = { m, n, owner, delta, now_ms, keep };
	return sqlconn_txn(c, true, change_all, &ch, err, errlen);
}

struct reap {
	const char *self;
	int64_t now_ms, grace_ms, dead_ms;
	bool (*alive)(const char *owner, void *arg);
	void *arg;
	long keep;
};

static int reap_all(struct sqlconn *c, void *arg, char *err, size_t errlen)
{
	struct reap *r = arg;
	sqlite3_stmt *s = stmt(c, S_OWNER_BEAT, err, errlen);
	if (r->self && s) {
		sqlite3_bind_text(s, 1, r->self, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, r->now_ms);
		if (sqlconn_step(c, s, "copy", err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
	}
	/* Owners that ended (however they ended) let go of their subscriptions. */
	sqlite3_stmt *o = stmt(c, S_OWNERS, err, errlen);
	if (!o)
		return MSGLOG_EUNAVAIL;
	struct buf dead = BUF_INIT;
	int rc;
	while ((rc = sqlite3_step(o)) == SQLITE_ROW) {
		const char *who = (const char *)sqlite3_column_text(o, 0);
		int64_t seen = sqlite3_column_int64(o, 1);
		if ((r->self && strcmp(who, r->self) == 0))
			continue;
		if (seen < r->now_ms - r->dead_ms || (r->alive && !r->alive(who, r->arg)))
			buf_add(&dead, who, strlen(who) + 1);
	}
	sqlite3_reset(o);
	if (rc != SQLITE_DONE) {
		buf_free(&dead);
		return sqlconn_fail(c, rc, "owners", err, errlen);
	}
	for (size_t at = 0; at < dead.len; at += strlen(dead.p + at) + 1)
		if (bound_exec(c, S_OWNER_SUBS_DEL, dead.p + at, NULL, NULL, 0, err, errlen) < 0 ||
		    bound_exec(c, S_OWNER_DEL, dead.p + at, NULL, NULL, 0, err, errlen) < 0) {
			buf_free(&dead);
			return MSGLOG_EUNAVAIL;
		}
	buf_free(&dead);
	if (bound_exec(c, S_MEMBER_ORPHANS, NULL, NULL, NULL, r->now_ms, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* Members gone longer than the grace leave, oldest first. */
	sqlite3_stmt *x = stmt(c, S_MEMBER_EXPIRED, err, errlen);
	if (!x)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_int64(x, 1, r->now_ms - r->grace_ms);
	struct buf left = BUF_INIT;
	while ((rc = sqlite3_step(x)) == SQLITE_ROW)
		for (int col = 0; col < 3; col++) {
			const char *v = (const char *)sqlite3_column_text(x, col);
			buf_add(&left, v, strlen(v) + 1);
		}
	sqlite3_reset(x);
	sqlite3_clear_bindings(x);
	if (rc != SQLITE_DONE) {
		buf_free(&left);
		return sqlconn_fail(c, rc, "members", err, errlen);
	}
	int told = 0;
	for (size_t at = 0; at < left.len;) {
		const char *ch = left.p + at, *id = ch + strlen(ch) + 1, *info = id + strlen(id) + 1;
		at = (size_t)(info + strlen(info) + 1 - left.p);
		if (bound_exec(c, S_MEMBER_DEL, ch, id, NULL, 0, err, errlen) < 0 ||
		    presence_event(c, ch, id, info, false, r->now_ms, r->keep, err, errlen) < 0) {
			buf_free(&left);
			return MSGLOG_EUNAVAIL;
		}
		told++;
	}
	buf_free(&left);
	return told;
}

int sqlpresence_reap(struct sqlconn *c, const char *self, int64_t now_ms, int64_t grace_ms,
		     int64_t dead_ms, bool (*alive)(const char *owner, void *arg), void *arg,
		     long keep, char *err, size_t errlen)
{
	struct reap r = { self, now_ms, grace_ms, dead_ms, alive, arg, keep };
	return sqlconn_txn(c, true, reap_all, &r, err, errlen);
}

int sqlpresence_channels(struct sqlconn *c, const char *prefix,
			 struct msglog_presence_count **out, int *n, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(c, S_PRESENCE_CHANNELS, err, errlen);
	int rc = SQLITE_ERROR, cap = 0;
	if (s) {
		sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (*n == cap) {
				cap = cap ? 2 * cap : 16;
				*out = xrealloc(*out, (size_t)cap * sizeof **out);
			}
			(*out)[(*n)++] = (struct msglog_presence_count){
				xstrdup((const char *)sqlite3_column_text(s, 0)),
				(long)sqlite3_column_int64(s, 1), (long)sqlite3_column_int64(s, 2) };
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	if (s && rc == SQLITE_DONE)
		return 0;
	return s ? sqlconn_fail(c, rc, "presence", err, errlen) : MSGLOG_EUNAVAIL;
}

struct members {
	const char *channel;
	bool ids;
	struct buf *out;
	int64_t *last_id;
	long *count, *subs;
};

static int members_of(struct sqlconn *c, void *arg, char *err, size_t errlen)
{
	struct members *m = arg;
	sqlite3_stmt *s = stmt(c, m->ids ? S_MEMBER_IDS : S_MEMBERS, err, errlen);
	sqlite3_stmt *cnt = stmt(c, S_MEMBER_COUNTS, err, errlen);
	if (!s || !cnt || sqlmsg_last_id(c, m->last_id, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, m->channel, -1, SQLITE_STATIC);
	if (text_query(c, s, m->out, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(cnt, 1, m->channel, -1, SQLITE_STATIC);
	int rc = sqlite3_step(cnt);
	*m->count = rc == SQLITE_ROW ? (long)sqlite3_column_int64(cnt, 0) : 0;
	*m->subs = rc == SQLITE_ROW ? (long)sqlite3_column_int64(cnt, 1) : 0;
	sqlite3_reset(cnt);
	sqlite3_clear_bindings(cnt);
	return rc == SQLITE_ROW ? 0 : sqlconn_fail(c, rc, "members", err, errlen);
}

int sqlpresence_members(struct sqlconn *c, const char *channel, bool ids, struct buf *members,
			int64_t *last_id, long *count, long *subs, char *err, size_t errlen)
{
	/* One snapshot: the members as of the log's last id. */
	struct members m = { channel, ids, members, last_id, count, subs };
	return sqlconn_txn(c, false, members_of, &m, err, errlen);
}

