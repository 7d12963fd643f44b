/* pglog: the message log shared by several hosts, in PostgreSQL. The only
 * module that includes libpq-fe.h; replica keeps each host's readable copy.
 *
 * One row (comet_state) holds the newest id and a revision; every write
 * (publish or DELETE) updates it first, so its row lock orders the writers:
 * ids are handed out in commit order, gap-free, and a reader of any snapshot
 * that sees id N sees every id below it. Retention and DELETE leave marks
 * (comet_dropped) stamped with the revision that made them, so a copy learns
 * what was dropped since it last looked. Each write sends NOTIFY comet: a
 * publish's names its last id (and carries a small one whole), a DELETE's
 * names none.
 *
 * A publish holds the row for its write only: it commits without waiting
 * for the disk, and a second transaction, committed durably, follows it;
 * the publish is acknowledged when that returns without a WARNING (the
 * write is on disk then, or on a synchronous standby: commit records are
 * flushed in order), and only then is its notification sent. A read of
 * changes that may have seen a write not yet known to be on disk commits
 * such a transaction too before it returns. So every host gives out only
 * what a crash, or a failover to a synchronous standby, keeps.
 *
 * Two connections, both opened at first need and again after any failure:
 * the writer (publish, DELETE, and reading changes for the publisher), one
 * of a bounded number per host (PGLOG_SLOTS, claimed with a lock on a byte
 * of a file in the state directory, kept while idle until another process
 * of the host waits for one: pglog_idle), and the
 * follower's, which LISTENs. Nothing here logs: errors fill err, naming the
 * server (never the URI, which may hold a password). */
#ifndef COMET_PGLOG_H
#define COMET_PGLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "msgtypes.h"

/* Writer connections one host opens at most, all its processes together. */
#define PGLOG_SLOTS 8
/* One read of changes stops after this much message data. */
#define PGLOG_READ_BYTES 4194304

struct pglog;

enum pglog_role { PGLOG_WRITER, PGLOG_FOLLOWER };

struct pglog_row {
	int64_t id, time;
	char *channel, *type, *data;
	size_t len;
	char *origin;		/* NULL: none */
};

/* What changed after (id, rev): rows (id, last_id] in id order, and every
 * mark made after rev; read in one snapshot. */
struct pglog_changes {
	struct pglog_row *rows;
	int nrows;
	struct msglog_mark *marks;
	int nmarks;
	int64_t last_id;	/* the copy holds every id up to this after applying */
	int64_t rev;
	bool more;		/* cut at max rows: ask again from last_id */
	bool behind;		/* another log than the copy's, or behind it: made anew */
	char log[40];		/* the log's name */
};

bool pglog_is_uri(const char *db);
void pglog_open(struct pglog **out, const char *uri, const char *state_dir);
void pglog_close(struct pglog *p);
/* The writer has been idle a while: closes its connection and lets its
 * slot go if another process of the host is waiting for one. */
void pglog_idle(struct pglog *p);

/* Begins the writer's transaction and waits for comet_state's row, which
 * orders every write of every host: what a caller gathers meanwhile goes
 * into the one pglog_append that follows (or pglog_unlock gives it up).
 * Returns 0 or -1 (nothing held). */
int pglog_lock(struct pglog *p, char *err, size_t errlen);
void pglog_unlock(struct pglog *p);
/* What a publish did, for its host's copy: the first id (the others
 * follow it), the revision of its write, the log's name, and the marks
 * retention made in that write (each channel's newest id dropped). */
struct pglog_appended {
	int64_t first, rev;
	char log[40];
	struct msglog_mark *marks;
	int nmarks;
};

/* Appends n messages in one transaction, with retention (under pglog_lock:
 * in its transaction, committed here); *out says what it did (freed with
 * pglog_appended_free, also after a failure). Returns 0 or -1. */
int pglog_append(struct pglog *p, const struct msglog_msg *m, int n, int64_t now_ms,
		 long keep, long keep_seconds, struct pglog_appended *out, char *err, size_t errlen);
void pglog_appended_free(struct pglog_appended *a);
int pglog_delete(struct pglog *p, const char *chan, int64_t *deleted,
		 char *err, size_t errlen);
/* Presence (as msglog_presence and msglog_presence_reap, on the shared
 * tables; *told gets how many join or leave messages were appended). */
int pglog_presence(struct pglog *p, const struct msglog_member *m, int n, const char *owner,
		   int delta, int64_t now_ms, long keep, long keep_seconds, int *told,
		   char *err, size_t errlen);
struct pglog_owner {
	char *owner;
	int64_t seen;
};
int pglog_owners(struct pglog *p, struct pglog_owner **out, int *n, char *err, size_t errlen);
void pglog_owners_free(struct pglog_owner *o, int n);
int pglog_presence_reap(struct pglog *p, const char *self, int64_t now_ms, int64_t grace_ms,
			const char *const *dead, int ndead, long keep, long keep_seconds, int *told,
			char *err, size_t errlen);
int pglog_members(struct pglog *p, const char *channel, bool ids, struct buf *out,
		  int64_t *last_id, long *count, long *subs, char *err, size_t errlen);
int pglog_presence_channels(struct pglog *p, const char *prefix,
			    struct msglog_presence_count **out, int *n, char *err, size_t errlen);

/* after_log: the log the copy was made from (NULL: none yet). */
int pglog_changes(struct pglog *p, enum pglog_role role, const char *after_log,
		  int64_t after_id, int64_t after_rev, int max, struct pglog_changes *c,
		  char *err, size_t errlen);
void pglog_changes_free(struct pglog_changes *c);

/* The writes notifications carried whole (small publishes), in commit
 * order: each as pglog_changes would read it, rows (last_id - nrows,
 * last_id] and the marks it made, at revision rev. */
struct pglog_writes {
	struct pglog_changes *w;
	int n, cap;
};
void pglog_writes_free(struct pglog_writes *ws);
/* Frees the writes a copy that holds every id up to held has. */
void pglog_writes_drop(struct pglog_writes *ws, int64_t held);

/* The follower's connection: LISTENs, then waits up to timeout_ms for a
 * notification; *news tells whether one came (or the connection is new,
 * when anything may have been missed), and *upto the newest id they name
 * (a publish's commit names its last id): a copy that holds it has all they
 * announce, marks included. 0: not known. The writes they carried whole
 * are added to *ws (which the caller empties first, and frees with
 * pglog_writes_free), in revision order; *bare gets the newest id named
 * by a notification that did not carry its write (0: none). Returns 0 or
 * -1. */
int pglog_wait(struct pglog *p, int timeout_ms, bool *news, int64_t *upto, int64_t *bare,
	       struct pglog_writes *ws, char *err, size_t errlen);

#endif
