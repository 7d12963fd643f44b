/* msglog: the front of the message log (msglog.h): each public call takes
 * the connection and goes to the SQLite log of this host (sqlmsg,
 * sqlpresence) or, when the log is shared (l->pg), to PostgreSQL (pglog)
 * and then this host's copy of it (replica).
 *
 * Lifecycle: msglog_open opens the file on this host (the log, or the
 * copy) and, for a shared log, pglog's connections, which open at first
 * need; every call runs between sqlconn_enter and sqlconn_leave;
 * msglog_close closes both. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json.h"
#include "msglog.h"
#include "pglog.h"
#include "replica.h"
#include "request.h"
#include "sqlconn.h"
#include "sqlmsg.h"
#include "sqlpresence.h"

struct msglog {
	struct sqlconn *c;	/* the log's file, or this host's copy of a shared log */
	/* A log shared by several hosts: writes go to pg and are then copied
	 * into c, which readers read. */
	struct pglog *pg;
	long retain, retain_seconds;
	/* The follower's: writes notifications carried that came before the
	 * one the copy needs next (held until gap_until, or until a write
	 * before them is known to have been announced without its messages),
	 * and the newest id announced so meanwhile. */
	struct pglog_writes pending;
	int64_t gap_until, announced;
};

const char *msglog_local_path(const char *db, const char *state_dir, char *buf, size_t n)
{
	if (!pglog_is_uri(db))
		return db;
	snprintf(buf, n, "%s/copy.db", state_dir);
	return buf;
}

bool msglog_read_only(const struct msglog *l)
{
	return l->c->read_only;
}

int msglog_open(struct msglog **out, const char *db, const char *state_dir, int flags,
		char *err, size_t errlen)
{
	struct msglog *l = xcalloc(1, sizeof *l);
	char local[4096];
	l->retain = 1000;
	l->retain_seconds = 86400;
	const char *path = msglog_local_path(db, state_dir, local, sizeof local);
	if (pglog_is_uri(db))
		pglog_open(&l->pg, db, state_dir);
	int f = (flags & MSGLOG_SYNC_FULL ? SQLCONN_SYNC_FULL : 0) |
		(flags & MSGLOG_READER ? SQLCONN_READER : 0) | (l->pg ? SQLCONN_COPY : 0);
	if (sqlconn_open(&l->c, path, f, err, errlen) < 0) {
		pglog_close(l->pg);
		free(l);
		return MSGLOG_EUNAVAIL;
	}
	*out = l;
	return 0;
}

void msglog_close(struct msglog *l)
{
	if (!l)
		return;
	sqlconn_close(l->c);
	pglog_close(l->pg);
	pglog_writes_free(&l->pending);
	free(l);
}

void msglog_retention(struct msglog *l, long count, long seconds)
{
	l->retain = count;
	l->retain_seconds = seconds;
}

void msglog_wait_until(struct msglog *l, int64_t mono_ms)
{
	sqlconn_wait_until(l->c, mono_ms);
}

int msglog_lock(struct msglog *l, char *err, size_t errlen)
{
	return l->pg ? pglog_lock(l->pg, err, errlen) : 0;
}

int msglog_append(struct msglog *l, const struct msglog_msg *m, int n, int64_t now_ms,
		  int64_t *ids, struct buf *acks, struct msglog_item *ack_at,
		  char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, false, err, errlen) < 0) {
		pglog_unlock(l->pg);
		return MSGLOG_EUNAVAIL;
	}
	int rc = 0;
	/* Validate before taking the write lock. */
	for (int i = 0; i < n && rc == 0; i++) {
		if (request_json_type(m[i].type) &&
		    !json_valid(m[i].data, m[i].len)) {
			snprintf(err, errlen, "message %d of %d is not valid JSON", i + 1, n);
			rc = MSGLOG_EINVAL;
		} else if (!request_channel_valid(m[i].channel, strlen(m[i].channel))) {
			snprintf(err, errlen, "message %d of %d has an invalid channel name", i + 1, n);
			rc = MSGLOG_EINVAL;
		}
	}
	if (rc == 0 && l->pg)
		rc = replica_append(l->c, l->pg, m, n, now_ms, l->retain, l->retain_seconds, ids,
				    acks, ack_at, err, errlen);
	else if (rc == 0)
		rc = sqlmsg_append(l->c, m, n, now_ms, l->retain, l->retain_seconds, ids, acks,
				   ack_at, err, errlen);
	if (rc != 0)
		pglog_unlock(l->pg);
	sqlconn_leave(l->c);
	return rc;
}

int msglog_read(struct msglog *l, const char *const *chans, int nchan, int64_t since,
		int limit, struct msglog_page *pg, char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, true, err, errlen) < 0) {
		buf_reset(&pg->items);
		pg->count = 0;
		return MSGLOG_EUNAVAIL;
	}
	int rc = sqlmsg_read(l->c, chans, nchan, since, limit, pg, err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

void msglog_page_free(struct msglog_page *pg)
{
	buf_free(&pg->items);
	free(pg->item);
	pg->item = NULL;
	pg->cap = 0;
}

int msglog_since(struct msglog *l, int64_t after, int max, struct msglog_batch *b,
		 char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlmsg_since(l->c, after, max, b, err, errlen);
	sqlconn_leave(l->c);
	if (rc < 0)
		msglog_batch_free(b);
	return rc;
}

void msglog_batch_free(struct msglog_batch *b)
{
	for (int i = 0; i < b->n; i++) {
		free(b->rows[i].channel);
		free(b->rows[i].json);
		free(b->rows[i].origin);
	}
	for (int i = 0; i < b->nmarks; i++)
		free(b->marks[i].channel);
	free(b->rows);
	free(b->marks);
	memset(b, 0, sizeof *b);
}

int msglog_info(struct msglog *l, const char *chan, struct buf *json,
		char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlmsg_info(l->c, chan, json, err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

int msglog_delete(struct msglog *l, const char *chan, int64_t *deleted,
		  char *err, size_t errlen)
{
	*deleted = 0;
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc;
	if (l->pg) {
		rc = pglog_delete(l->pg, chan, deleted, err, errlen) < 0 ? MSGLOG_EUNAVAIL : 0;
		char ignored[256];
		if (rc == 0)
			replica_copy(l->c, l->pg, PGLOG_WRITER, 0, ignored, sizeof ignored);
	} else {
		rc = sqlmsg_delete(l->c, chan, deleted, err, errlen);
	}
	sqlconn_leave(l->c);
	return rc;
}

int msglog_sync(struct msglog *l, char *err, size_t errlen)
{
	if (!l->pg)
		return 0;
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = replica_copy(l->c, l->pg, PGLOG_WRITER, 0, err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

/* A shared log's presence is PostgreSQL's; what it appended (told) is
 * copied here before the call returns, as a publish's is. Ends the call. */
static int shared_told(struct msglog *l, int rc, int told, char *err, size_t errlen)
{
	char ignored[256];
	if (rc == 0 && told > 0)
		replica_copy(l->c, l->pg, PGLOG_WRITER, 0, ignored, sizeof ignored);
	sqlconn_leave(l->c);
	return rc < 0 ? MSGLOG_EUNAVAIL : told;
}

int msglog_presence(struct msglog *l, const struct msglog_member *m, int n, const char *owner,
		    int delta, int64_t now_ms, char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (l->pg) {
		int told = 0;
		int rc = pglog_presence(l->pg, m, n, owner, delta, now_ms, l->retain,
					l->retain_seconds, &told, err, errlen);
		return shared_told(l, rc, told, err, errlen);
	}
	int rc = sqlpresence_change(l->c, m, n, owner, delta, now_ms, l->retain, err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

/* The owners the shared log knows of that have ended are found out here,
 * as sqlpresence does for a log of one host, and let go there. */
static int shared_reap(struct msglog *l, const char *self, int64_t now_ms, int64_t grace_ms,
		       int64_t dead_ms, bool (*alive)(const char *owner, void *arg), void *arg,
		       char *err, size_t errlen)
{
	struct pglog_owner *o;
	int n, told = 0;
	int rc = pglog_owners(l->pg, &o, &n, err, errlen);
	if (rc == 0) {
		const char *dead[n + 1];
		int ndead = 0;
		for (int i = 0; i < n; i++)
			if ((!self || strcmp(o[i].owner, self) != 0) &&
			    (o[i].seen < now_ms - dead_ms || (alive && !alive(o[i].owner, arg))))
				dead[ndead++] = o[i].owner;
		rc = pglog_presence_reap(l->pg, self, now_ms, grace_ms, dead, ndead,
					 l->retain, l->retain_seconds, &told, err, errlen);
		pglog_owners_free(o, n);
	}
	return shared_told(l, rc, told, err, errlen);
}

int msglog_presence_reap(struct msglog *l, const char *self, int64_t now_ms, int64_t grace_ms,
			 int64_t dead_ms, bool (*alive)(const char *owner, void *arg), void *arg,
			 char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (l->pg)
		return shared_reap(l, self, now_ms, grace_ms, dead_ms, alive, arg, err, errlen);
	int rc = sqlpresence_reap(l->c, self, now_ms, grace_ms, dead_ms, alive, arg, l->retain,
				  err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

int msglog_find_origin(struct msglog *l, const char *channel, const char *origin, int64_t *id,
		       int64_t *log_last, char *err, size_t errlen)
{
	*id = -1;
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlmsg_find_origin(l->c, channel, origin, id, log_last, err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

int msglog_presence_channels(struct msglog *l, const char *prefix,
			      struct msglog_presence_count **out, int *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc;
	if (l->pg)
		rc = pglog_presence_channels(l->pg, prefix, out, n, err, errlen) < 0 ?
			MSGLOG_EUNAVAIL : 0;
	else
		rc = sqlpresence_channels(l->c, prefix, out, n, err, errlen);
	sqlconn_leave(l->c);
	if (rc < 0 && !l->pg) {
		msglog_presence_counts_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

void msglog_presence_counts_free(struct msglog_presence_count *c, int n)
{
	for (int i = 0; i < n; i++)
		free(c[i].channel);
	free(c);
}

int msglog_members(struct msglog *l, const char *channel, bool ids, struct buf *members,
		   int64_t *last_id, long *count, long *subs, char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc;
	if (l->pg)
		rc = pglog_members(l->pg, channel, ids, members, last_id, count, subs, err,
				   errlen) < 0 ? MSGLOG_EUNAVAIL : 0;
	else
		rc = sqlpresence_members(l->c, channel, ids, members, last_id, count, subs,
					 err, errlen);
	sqlconn_leave(l->c);
	return rc;
}

bool msglog_shared(const struct msglog *l)
{
	return l->pg != NULL;
}

/* A write's notification may come a moment after a later one's (each is
 * sent by a transaction of its own, committed in any order): how long the
 * follower waits for it before reading the writes from PostgreSQL. */
#define FOLLOW_GAP_MS 20

int msglog_follow(struct msglog *l, int timeout_ms, char *err, size_t errlen)
{
	if (!l->pg)
		return 0;
	bool news;
	int64_t upto, bare;
	struct pglog_writes *ws = &l->pending;
	int64_t now = clock_mono_ms();
	if (ws->n && l->gap_until - now < timeout_ms)
		timeout_ms = l->gap_until > now ? (int)(l->gap_until - now) : 0;
	int rc = pglog_wait(l->pg, timeout_ms, &news, &upto, &bare, ws, err, errlen);
	/* Without news, the timed safety check: one small query. News of
	 * commits this host's publishers have copied already, or that the
	 * notifications carried whole, asks nothing. */
	if (rc < 0 || sqlconn_enter(l->c, true, err, errlen) < 0) {
		pglog_writes_free(ws);
		l->gap_until = 0;
		return MSGLOG_EUNAVAIL;
	}
	int applied = 0;
	int64_t held = 0;
	bool read = !news || !upto;
	if (bare > l->announced)
		l->announced = bare;
	if (ws->n) {
		char ignored[256];
		applied = replica_apply(l->c, ws, &held, ignored, sizeof ignored);
		if (applied < 0)
			applied = 0, read = true;	/* replica_copy reads them */
		else
			pglog_writes_drop(ws, held);
	}
	if (ws->n && !read) {
		/* A gap before the first held back: read at once if a write
		 * in it was announced without its messages, else after a
		 * moment. */
		if (!l->gap_until)
			l->gap_until = clock_mono_ms() + FOLLOW_GAP_MS;
		read = l->announced >= ws->w[0].rows[0].id - 1 || clock_mono_ms() >= l->gap_until;
	} else if (!read) {
		read = held < upto;
	}
	rc = 0;
	if (read) {
		/* Up to what was announced and held back (nothing to read if
		 * the copy holds it: this host's publishers copied it);
		 * without news, or on a DELETE's, everything. */
		int64_t target = news && upto ? upto : 0;
		for (int i = 0; i < ws->n && target; i++)
			if (ws->w[i].last_id > target)
				target = ws->w[i].last_id;
		rc = replica_copy(l->c, l->pg, PGLOG_FOLLOWER, target, err, errlen);
		pglog_writes_free(ws);
	}
	if (!ws->n)
		l->gap_until = l->announced = 0;
	sqlconn_leave(l->c);
	return rc < 0 ? rc : rc + applied;
}

void msglog_idle(struct msglog *l)
{
	/* Not a call on the file: held only so as not to close the writer
	 * connection under a call of another thread. */
	pthread_mutex_lock(&l->c->mu);
	pglog_idle(l->pg);
	pthread_mutex_unlock(&l->c->mu);
}

int msglog_counts(struct msglog *l, int64_t *messages, int64_t *last_id,
		  char *err, size_t errlen)
{
	if (sqlconn_enter(l->c, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = sqlmsg_counts(l->c, messages, last_id, err, errlen);
	sqlconn_leave(l->c);
	return rc;
}
