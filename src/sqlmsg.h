/* sqlmsg: the messages of the SQLite log (a log of one host, or a host's
 * copy of a shared one): append with retention, read, since, info, DELETE,
 * counts. Each function runs within a call on the connection
 * (sqlconn_enter ... sqlconn_leave), some within the caller's transaction,
 * the others in one of their own. Results as msglog.h says of the msglog_
 * function of the same name; keep and keep_seconds are the retention
 * (msglog_retention). */
#ifndef COMET_SQLMSG_H
#define COMET_SQLMSG_H

#include <stddef.h>
#include <stdint.h>

#include "msgtypes.h"

struct sqlconn;

/* Within the caller's transaction: */
/* One message appended with the channel's count limit applied; its id
 * into *id. */
int sqlmsg_insert(struct sqlconn *c, const struct msglog_msg *m, int64_t now_ms, long keep,
		  int64_t *id, char *err, size_t errlen);
/* Drops chan's messages up to upto, leaving the mark that tells readers
 * behind it of the gap (what names the step in err). */
int sqlmsg_drop(struct sqlconn *c, const char *chan, int64_t upto, const char *what,
		char *err, size_t errlen);
/* The newest id the log has given. */
int sqlmsg_last_id(struct sqlconn *c, int64_t *out, char *err, size_t errlen);

/* In a transaction of their own: */
/* Appends n messages (validated already) in one transaction, retried once
 * on the file the path names now when the file moved (sqlconn.c says
 * why). */
int sqlmsg_append(struct sqlconn *c, const struct msglog_msg *m, int n, int64_t now_ms,
		  long keep, long keep_seconds, int64_t *ids, struct buf *acks,
		  struct msglog_item *ack_at, char *err, size_t errlen);
int sqlmsg_read(struct sqlconn *c, const char *const *chans, int nchan, int64_t since,
		int limit, struct msglog_page *pg, char *err, size_t errlen);
/* On a failure b holds what was read so far, for msglog_batch_free. */
int sqlmsg_since(struct sqlconn *c, int64_t after, int max, struct msglog_batch *b,
		 char *err, size_t errlen);
int sqlmsg_info(struct sqlconn *c, const char *chan, struct buf *json, char *err, size_t errlen);
int sqlmsg_delete(struct sqlconn *c, const char *chan, int64_t *deleted,
		  char *err, size_t errlen);
int sqlmsg_counts(struct sqlconn *c, int64_t *messages, int64_t *last_id,
		  char *err, size_t errlen);
int sqlmsg_find_origin(struct sqlconn *c, const char *channel, const char *origin, int64_t *id,
		       int64_t *log_last, char *err, size_t errlen);

#endif
