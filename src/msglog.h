/* msglog: the durable message log, one SQLite file in WAL mode. Every
 * message gets the next id of one sequence shared by all channels; retention
 * drops old messages per channel (count) and overall (age) and leaves a mark
 * per channel so that readers behind it are told of the gap.
 *
 * The front of the storage: each call takes the connection and goes to the
 * SQLite log (sqlmsg, sqlpresence over sqlconn, the private layer that
 * alone includes sqlite3.h) or, for a shared log, to PostgreSQL (pglog)
 * and this host's copy of it (replica). Callers include this header only.
 * A struct msglog is one connection: use it from one thread at a time.
 *
 * Storage errors return MSGLOG_EUNAVAIL with err naming the file and what
 * to do, for the log; nothing here logs. One call waits for locks other
 * processes hold at most MSGLOG_BUSY_MS in all.
 *
 * A database file replaced or deleted while open is followed: every
 * connection of every process lets go of the old file and opens the path
 * again (making it anew if it was deleted), and an append caught by the
 * change is retried once on the new file. Nothing is acknowledged into a
 * file the path no longer names; until every connection has let go, calls
 * answer MSGLOG_EUNAVAIL (sqlconn.c says why). */
#ifndef COMET_MSGLOG_H
#define COMET_MSGLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "msgtypes.h"	/* the messages, pages, batches and return codes */

struct msglog;

/* db is a SQLite file, or a postgresql:// URI naming a log shared by several
 * hosts: then this host's copy of it, which every read reads, lives in
 * state_dir (msglog_local_path), and writes go to PostgreSQL and are
 * copied back before they return. */
int msglog_open(struct msglog **out, const char *db, const char *state_dir, int flags,
		char *err, size_t errlen);
/* msglog_open's flags: fsync every commit (COMET_SYNC=full); a connection
 * that only reads (subscribers, info, stats), which serves a file it may
 * not write rather than refuse it. */
#define MSGLOG_SYNC_FULL 1
#define MSGLOG_READER 2
/* The file last opened read-only (a writer refuses it: msglog_read_only
 * says why the refusal, for a short answer to a publisher). */
bool msglog_read_only(const struct msglog *l);
/* The file on this host that holds db's messages (db itself, or the copy);
 * the wake-up file sits beside it. */
const char *msglog_local_path(const char *db, const char *state_dir, char *buf, size_t n);
bool msglog_shared(const struct msglog *l);
/* For a shared log: waits up to timeout_ms for news of it (a new connection
 * counts as news) and copies what is new here. Returns how many changes
 * were copied (readers should look), 0, or MSGLOG_EUNAVAIL. One process
 * per host does this: the follower. A log of one host returns 0 at once. */
int msglog_follow(struct msglog *l, int timeout_ms, char *err, size_t errlen);
/* The newest message of channel whose origin is origin (a Mercure update
 * by its id), into *id (-1: none; origin NULL: not looked for), and the
 * log's last id in the same snapshot. */
int msglog_find_origin(struct msglog *l, const char *channel, const char *origin, int64_t *id,
		       int64_t *log_last, char *err, size_t errlen);
/* Presence (struct msglog_member, MSGLOG_PRESENCE_TYPE: msgtypes.h).
 * A subscription of each of the n members begins (delta 1) or ends (-1),
 * held by owner (a process): a member's first appends its join, and a
 * member back within the grace joins again silently. Returns how many
 * messages were appended, or MSGLOG_EUNAVAIL. */
int msglog_presence(struct msglog *l, const struct msglog_member *m, int n, const char *owner,
		    int delta, int64_t now_ms, char *err, size_t errlen);
/* self (when not NULL) is alive now; owners not seen for dead_ms, or that
 * alive (when not NULL) says have ended, let go of their subscriptions;
 * members without a subscription for grace_ms leave (their leave message
 * appended). Returns how many left, or MSGLOG_EUNAVAIL. */
int msglog_presence_reap(struct msglog *l, const char *self, int64_t now_ms, int64_t grace_ms,
			 int64_t dead_ms, bool (*alive)(const char *owner, void *arg), void *arg,
			 char *err, size_t errlen);
/* The members of channel as a JSON array [{"id", "info"}, ...] (with ids,
 * [{"id"}, ...]), the log's last id in the same snapshot (the join and
 * leave messages up to it are reflected), how many members and
 * subscriptions. */
int msglog_members(struct msglog *l, const char *channel, bool ids, struct buf *members,
		   int64_t *last_id, long *count, long *subs, char *err, size_t errlen);
/* The presence channels whose name starts with prefix, with their counts. */
int msglog_presence_channels(struct msglog *l, const char *prefix,
			      struct msglog_presence_count **out, int *n, char *err, size_t errlen);
void msglog_presence_counts_free(struct msglog_presence_count *c, int n);
/* Brings this host's copy of a shared log up to the shared log now (the
 * publishers' connection; a log of one host: nothing). Returns how many
 * messages and marks it copied (0 or more), or MSGLOG_EUNAVAIL. */
int msglog_sync(struct msglog *l, char *err, size_t errlen);
/* Lets go of what an idle log holds that others need (a shared log's
 * writer connection, when another process of the host waits for one). */
void msglog_idle(struct msglog *l);
void msglog_close(struct msglog *l);
void msglog_retention(struct msglog *l, long count, long seconds);
/* The next call stops waiting for locks at mono_ms (clock_mono_ms) if that
 * comes before its own MSGLOG_BUSY_MS: a publish that already waited in a
 * queue is not made to wait a whole busy timeout again. */
void msglog_wait_until(struct msglog *l, int64_t mono_ms);

/* With a shared log: waits for the right to write next (pglog_lock), so
 * that the caller can gather what arrived meanwhile into the msglog_append
 * that must follow. 0 (also with a SQLite log: nothing to do), or -1. */
int msglog_lock(struct msglog *l, char *err, size_t errlen);

/* Appends n messages in one transaction (all or none); MSGLOG_EINVAL when a
 * message is refused (JSON that is not valid, a channel name outside
 * request_channel_valid's rule). ids[i] gets each
 * id; acks gets each {"id","channel","time"} object, comma-separated, and
 * ack_at (when not NULL) where each one is in acks. */
int msglog_append(struct msglog *l, const struct msglog_msg *m, int n, int64_t now_ms,
		  int64_t *ids, struct buf *acks, struct msglog_item *ack_at,
		  char *err, size_t errlen);

/* Messages on chans after since (since -1: none, just the position). */
int msglog_read(struct msglog *l, const char *const *chans, int nchan, int64_t since,
		int limit, struct msglog_page *pg, char *err, size_t errlen);
void msglog_page_free(struct msglog_page *pg);

int msglog_since(struct msglog *l, int64_t after, int max, struct msglog_batch *b,
		 char *err, size_t errlen);
void msglog_batch_free(struct msglog_batch *b);

/* {"channel","last_id","first_id","messages"} */
int msglog_info(struct msglog *l, const char *chan, struct buf *json,
		char *err, size_t errlen);
int msglog_delete(struct msglog *l, const char *chan, int64_t *deleted,
		  char *err, size_t errlen);
int msglog_counts(struct msglog *l, int64_t *messages, int64_t *last_id,
		  char *err, size_t errlen);

#endif
