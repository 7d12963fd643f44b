/* commit: the one write path. Every write to the log (publishes, batches,
 * DELETE, the command line) is a job handed to one thread per process,
 * which appends every publish queued meanwhile in one transaction (group
 * commit), runs the other jobs in their turn, wakes the subscribers of
 * every process once per commit, and answers each job. The accepting
 * thread never waits on the database lock, nor on a shared log's server.
 *
 * Lifecycle of a job: made and checked by its publisher (request_message:
 * the one check), handed over with commit_submit (from then on the commit
 * thread owns it and its request), answered exactly once by job_done()
 * in commit.c (201/200, 415 for content the log refuses, 503 when storage
 * fails), then freed. A group whose append fails for one job's content is
 * retried job by job, so one bad job never fails the others; when storage
 * itself is unavailable every job of the group is refused at once.
 *
 * Presence jobs change who is on a presence channel (msglog_presence); the
 * same thread, while this process holds presence subscriptions, tells
 * the log it lives and lets members leave whose grace ran out, whoever
 * held them (msglog_presence_reap), every COMMIT_REAP_MS.
 *
 * A read job runs a query of a shared log's own tables (presence) on this
 * thread's connection and answers it.
 *
 * A sync job is not a write: a subscriber whose cursor is ahead of this
 * host's copy of a shared log waits here while the copy is brought up to
 * the shared log (what only this thread may wait for), then goes to the
 * hub, which tells it `reset` if the cursor is still ahead. */
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

enum commit_kind { COMMIT_PUBLISH, COMMIT_DELETE, COMMIT_SYNC, COMMIT_PRESENCE, COMMIT_READ };

struct commit_job;
/* A read of a shared log's own tables (presence), run on the write
 * thread's connection so that no other thread waits for the server:
 * fills body (200) or err and returns the status to answer. */
typedef int (*commit_read_fn)(struct msglog *log, struct commit_job *job, struct buf *body,
			      char *err, size_t errlen);

struct commit_job;
/* Where a job's answer goes when it has no request (the command line):
 * status, and the JSON body (an acknowledgement, or an error object). */
typedef void (*commit_done_fn)(struct commit_job *job, int status, const char *body,
			       size_t len);

struct commit_job {
	struct waiter_qlink q;
	enum commit_kind kind;
	struct conn *conn;	/* the request to answer, or NULL with done */
	commit_done_fn done;
	void *arg;		/* done's */
	char *headers;		/* extra answer header lines (CORS), or NULL */
	bool batch;		/* answer with an array of acknowledgements */
	char *reply;		/* answer 200 with this instead (the Pusher API's) */
	bool reply_text;	/* ... as text/plain (a Mercure update's id) */
	int64_t queued_us;	/* clock_mono_us() at commit_submit */
	int n;
	struct msglog_msg *msg;	/* n messages, pointing into what follows */
	struct buf body;	/* the request body (one message's data) */
	struct json_batch parsed;	/* a batch's messages */
	char (*types)[REQ_TYPE_LEN + 1];	/* a batch's media types */
	struct msglog_msg one;
	char chan[REQ_CHANNEL_LEN + 1];	/* a publish's, or the channel to DELETE */
	char type[REQ_TYPE_LEN + 1];
	struct waiter *waiter;	/* COMMIT_SYNC: the subscriber, for the hub */
	/* COMMIT_PRESENCE: subscriptions of these members begin (delta 1) or
	 * end (-1); no answer. */
	struct msglog_member *members;
	int nmembers, delta;
	commit_read_fn read;	/* COMMIT_READ */
	void *read_arg;		/* its own, freed with the job */
};

struct commit;

/* threaded: a thread of its own; otherwise commit_submit runs the job at
 * once. hub: where answers go that a socket does not take at once, and
 * where sync jobs' subscribers go (NULL for CGI and the command line). */
int commit_start(struct commit **out, const struct conf *conf, struct notify *n,
		 struct hub *hub, bool threaded, char *err, size_t errlen);
void commit_submit(struct commit *c, struct commit_job *job);
/* The two halves of commit_submit, for the tests: queue jobs, then run
 * everything queued (what the commit thread does when woken). */
void commit_queue(struct commit *c, struct commit_job *job);
void commit_poll(struct commit *c);
/* Frees a commit that runs no thread (CGI, the command line, the tests). */
void commit_close(struct commit *c);
/* Shutdown of a threaded commit: every job queued is run and answered and
 * the thread joined. At deadline_ms (CLOCK_REALTIME milliseconds; 0: none)
 * it stops waiting (a job waiting for a lock held elsewhere): false. c
 * stays valid (a job queued later, a held subscriber's presence ending as
 * the hub stops, is left undone) until the process ends. */
bool commit_end(struct commit *c, long long deadline_ms);
/* Jobs submitted and not yet answered. */
long commit_pending(struct commit *c);
void commit_job_free(struct commit_job *job);

/* What follows every commit, whoever made it: the subscribers of every
 * process on this log are woken, and the messages counted. */
void commit_after(struct notify *n, uint64_t messages);

/* A presence job for the n members of w (copied), delta 1 or -1. */
struct commit_job *commit_presence_job(const struct waiter_member *m, int n, int delta);

#endif
