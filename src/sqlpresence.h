/* sqlpresence: presence on the SQLite log (a log of one host): members of
 * presence channels, their subscriptions by owner, and the join and leave
 * messages appended with each change. Each function runs within a call on
 * the connection (sqlconn_enter ... sqlconn_leave) in one transaction of
 * its own; keep is the per-channel count limit the join and leave
 * messages are appended under. Results as msglog.h says of
 * msglog_presence, msglog_presence_reap, msglog_members and
 * msglog_presence_channels. */
#ifndef COMET_SQLPRESENCE_H
#define COMET_SQLPRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgtypes.h"

struct sqlconn;

int sqlpresence_change(struct sqlconn *c, const struct msglog_member *m, int n, const char *owner,
		       int delta, int64_t now_ms, long keep, char *err, size_t errlen);
int sqlpresence_reap(struct sqlconn *c, const char *self, int64_t now_ms, int64_t grace_ms,
		     int64_t dead_ms, bool (*alive)(const char *owner, void *arg), void *arg,
		     long keep, char *err, size_t errlen);
int sqlpresence_members(struct sqlconn *c, const char *channel, bool ids, struct buf *members,
			int64_t *last_id, long *count, long *subs, char *err, size_t errlen);
/* On a failure *out holds what was read so far, for
 * msglog_presence_counts_free. */
int sqlpresence_channels(struct sqlconn *c, const char *prefix,
			 struct msglog_presence_count **out, int *n, char *err, size_t errlen);

#endif
