/* replica: this host's copy of a log shared by several hosts (pglog), the
 * SQLite file its readers read. Each function runs within a call on the
 * copy's connection (sqlconn_enter ... sqlconn_leave). */
#ifndef COMET_REPLICA_H
#define COMET_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "msgtypes.h"
#include "pglog.h"

struct sqlconn;

/* Brings the copy up to the shared log's newest commit, reading it on the
 * connection role names. Returns how many messages and marks were copied
 * (a new last id or a copy made anew counts one), or MSGLOG_EUNAVAIL. With
 * upto, stops without asking the shared log once the copy holds that id: a
 * publisher whose commit the follower copied first. */
int replica_copy(struct sqlconn *c, struct pglog *pg, enum pglog_role role, int64_t upto,
		 char *err, size_t errlen);
/* Writes the follower's notifications carried whole, applied in order
 * while each is right after what the copy holds (its id, revision and
 * log); the first that is not stops it, and is left to replica_copy.
 * *held gets the id the copy holds then. Returns how many messages and
 * marks were applied, or MSGLOG_EUNAVAIL. */
int replica_apply(struct sqlconn *c, const struct pglog_writes *ws, int64_t *held,
		  char *err, size_t errlen);
/* A publish to the shared log: committed there (acknowledged from then
 * on), with the retention keep and keep_seconds, then copied here, so that
 * this host's readers see it at once; a copy that fails or waits more than
 * a moment for the copy's lock is left to the follower. ids, acks and
 * ack_at as msglog_append. Returns 0 or MSGLOG_EUNAVAIL. */
int replica_append(struct sqlconn *c, struct pglog *pg, const struct msglog_msg *m, int n,
		   int64_t now_ms, long keep, long keep_seconds, int64_t *ids, struct buf *acks,
		   struct msglog_item *ack_at, char *err, size_t errlen);

#endif
