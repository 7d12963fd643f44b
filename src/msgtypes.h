/* msgtypes: the values the message log hands its callers and its backends
 * hand each other: messages, pages, batches, presence members and counts,
 * and the log's return codes and limits. Types only, no functions: json.h,
 * pglog.h and the SQLite layers include this rather than msglog.h. */
#ifndef COMET_MSGTYPES_H
#define COMET_MSGTYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Return codes: 0, or one of these; err then says why, for the log. */
#define MSGLOG_EUNAVAIL (-1)	/* storage unavailable: busy, full, I/O (503) */
#define MSGLOG_EINVAL (-2)	/* a message is not what its type says (415) */

#define MSGLOG_SCHEMA_VERSION 3

/* How long one call waits in all for locks another process holds. */
#define MSGLOG_BUSY_MS 5000

struct msglog_msg {
	const char *channel;
	const char *type;
	const char *data;
	size_t len;
	/* The publisher's connection (a Pusher socket_id), never delivered to
	 * a subscriber that gives the same: NULL for none. */
	const char *origin;
};

/* One answer's worth of messages for a set of channels. */
struct msglog_item {
	int64_t id;
	size_t off, len;	/* its JSON object within items */
};
struct msglog_page {
	size_t max_bytes;	/* in: the items stop short of this (but hold one); 0: no bound */
	const char *exclude;	/* in: messages of this origin are passed over; NULL: none */
	struct buf items;	/* the messages' JSON objects, comma-separated */
	struct msglog_item *item;	/* each of them */
	int count, cap;
	int64_t last_id;	/* the cursor for the next request */
	int64_t log_last;	/* newest id of the log in the snapshot read */
	bool more, gap, reset;
	bool ahead;		/* the cursor is ahead of this host's copy of a shared
				 * log: msglog_sync, then ahead again means reset */
};

/* Every message after a position, all channels: what a process dispatches
 * to its waiters after a wake-up. */
struct msglog_row {
	int64_t id;
	char *channel;
	char *json;
	size_t jsonlen;
	char *origin;		/* NULL: none */
};
struct msglog_mark {
	char *channel;
	int64_t id;		/* messages of channel up to id were dropped */
};
struct msglog_batch {
	struct msglog_row *rows;
	int n;
	struct msglog_mark *marks;
	int nmarks;
	int64_t last_id;	/* the batch covers (after, last_id] */
	bool full;		/* max rows were read: read again from last_id */
};

/* Presence: a member of a presence channel (its id, and its info as JSON
 * text), and the type of the messages that tell of its arrival and its
 * departure: {"event": "join"|"leave", "member": {"id", "info"}}. */
struct msglog_member {
	const char *channel, *id, *info;
};
#define MSGLOG_PRESENCE_TYPE "application/x-comet-presence+json"

/* A presence channel and its counts (msglog_presence_channels). */
struct msglog_presence_count {
	char *channel;
	long members, subs;
};

#endif
