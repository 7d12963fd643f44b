/* commit: group commit. Publishes are handed to one thread per process,
 * which appends everything queued meanwhile in one transaction, wakes the
 * subscribers of every process once, and answers each publisher with its
 * own acknowledgements. Concurrent publishers share one commit; the
 * accepting thread never waits on the database lock.
 *
 * Ownership: commit_submit takes the job and its request; the commit
 * thread answers the request (201, or 503 when storage fails) and frees
 * both. Jobs arrive validated: a message that msglog_append refuses
 * would fail every job of its group, so the group is then retried job by
 * job; when storage is unavailable, every job of the group is refused at
 * once. */
#ifndef COMET_COMMIT_H
#define COMET_COMMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "conf.h"
#include "conn.h"
#include "hub.h"
#include "json.h"
#include "msglog.h"
#include "notify.h"
#include "request.h"
#include "waiter.h"

struct commit_job {
	struct waiter_qlink q;
	struct conn *conn;
	char *headers;		/* extra answer header lines (CORS), or NULL */
	bool batch;		/* answer with an array of acknowledgements */
	int64_t queued_us;	/* clock_mono_us() at commit_submit */
	int n;
	struct msglog_msg *msg;	/* n messages, pointing into what follows */
	struct buf body;	/* the request body (one message's data) */
	struct json_batch parsed;	/* a batch's messages */
	char (*types)[REQ_TYPE_LEN + 1];	/* a batch's media types */
	struct msglog_msg one;
	char chan[REQ_CHANNEL_LEN + 1];
	char type[REQ_TYPE_LEN + 1];
};

struct commit;

/* threaded: a thread of its own; otherwise commit_submit commits at once. */
/* hub: where answers go that a publisher's socket does not take at once
 * (NULL for CGI, whose writes block). */
int commit_start(struct commit **out, const struct conf *conf, struct notify *n,
		 struct hub *hub, bool threaded, char *err, size_t errlen);
void commit_submit(struct commit *c, struct commit_job *job);
/* The two halves of commit_submit, for the tests: queue jobs, then commit
 * everything queued as one group (what the commit thread does when woken). */
void commit_queue(struct commit *c, struct commit_job *job);
void commit_poll(struct commit *c);
/* Frees a commit that runs no thread (CGI, the tests). */
void commit_close(struct commit *c);
/* Jobs submitted and not yet answered. */
long commit_pending(struct commit *c);
void commit_job_free(struct commit_job *job);

#endif
