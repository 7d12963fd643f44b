/* commit: the write thread (group commit, DELETE, shared-log syncs). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "commit.h"
#include "log.h"
#include "reply.h"
#include "thread.h"

struct commit {
	struct notify *notify;
	struct hub *hub;	/* writes what a publisher's socket does not take at once */
	struct msglog *log;	/* the commit thread's own connection */
	struct waiter_queue queue;
	struct waiter_qlink *later;	/* taken from the queue by a group, run after it */
	int64_t crowded_until;	/* grow groups until then (monotonic ms) */
	bool threaded;
	long pending;
	int quit;		/* commit_end: run what is queued, then end */
	struct thread thread;
	long grace_ms;		/* COMET_PRESENCE_GRACE */
	long presence;		/* presence subscriptions this process holds */
	int64_t reap_at;	/* the next reap (monotonic ms), 0: none due */
	int leaving;		/* reaps still due after the last subscription here */
	char owner[128];	/* this process, in the presence tables: host:pid */
	char told[512];		/* the last presence failure logged */
};

/* How often a process holding presence subscriptions tells the log it lives
 * and lets expired members leave; an owner not heard of for COMMIT_DEAD_MS
 * (and not known alive on this host) has ended, however it ended. */
#define COMMIT_REAP_MS 2000
#define COMMIT_DEAD_MS 30000

#define JOB_OF(link) ((struct commit_job *)((char *)(link) - offsetof(struct commit_job, q)))

void commit_job_free(struct commit_job *job)
{
	for (int i = 0; i < job->nmembers; i++) {
		free((char *)job->members[i].channel);
		free((char *)job->members[i].id);
		free((char *)job->members[i].info);
	}
	free(job->members);
	free(job->read_arg);
	buf_free(&job->body);
	json_batch_free(&job->parsed);
	free(job->types);
	free(job->headers);
	free(job->reply);
	free(job);
}

/* The one end of every job: freed and no longer counted as waiting
 * (commit_pending, and the comet_writes_queued gauge). */
static void job_gone(struct commit *c, struct commit_job *job)
{
	commit_job_free(job);
	__atomic_sub_fetch(&c->pending, 1, __ATOMIC_SEQ_CST);
	notify_queued(c->notify, -1);
}

void commit_after(struct notify *n, uint64_t messages)
{
	notify_bump(n);
	if (messages)
		notify_published(n, messages);
}

/* The one end of a job: answered (2xx: body is the JSON to send; else it
 * is the error for a person), counted, freed. */
static void job_done(struct commit *c, struct commit_job *job, int status, const char *body,
		     size_t len)
{
	notify_answer(c->notify, status);
	if (job->conn) {
		struct buf out = BUF_INIT;
		if (status < 300 && job->reply_text)
			reply_text(&out, status, body, len, job->headers);
		else if (status < 300)
			reply_json(&out, status, body, len, NULL, job->headers);
		else
			reply_error(&out, status, body, NULL, job->headers);
		hub_answer(c->hub, job->conn, out.p, out.len);
		buf_free(&out);
	} else if (job->done) {
		job->done(job, status, body, len);
	}
	job_gone(c, job);
}

static void refuse(struct commit *c, struct commit_job *job, int rc)
{
	if (rc == MSGLOG_EINVAL)
		job_done(c, job, 415, "a message of type application/json is not valid JSON", 0);
	else if (msglog_read_only(c->log))
		job_done(c, job, 503, "storage unavailable: the log's file is read-only for this "
			 "program (its log says which file and why)", 0);
	else
		job_done(c, job, 503, "storage unavailable, try again", 0);
}

/* Refuses the jobs of list with storage unavailable, logging once. */
static void refuse_all(struct commit *c, struct waiter_qlink *list, const char *why)
{
	int n = 0;
	for (struct waiter_qlink *l = list, *next; l; l = next, n++) {
		next = l->next;
		refuse(c, JOB_OF(l), MSGLOG_EUNAVAIL);
	}
	log_msg("error", 0, "publish: storage unavailable (%d refused): %s", n, why);
	notify_storage_error(c->notify);
}

/* A shared log's group is fixed when the right to write is granted, not
 * before: most of a publish's time there is the wait for other hosts'
 * commits, and what arrives meanwhile joins the group rather than waiting
 * for a transaction of its own. Only publishes queued right behind the
 * group's run join it (list is the tail of what was taken); the rest keeps
 * its order in c->later.
 *
 * Waiting first costs the row a round trip to this host while it is held,
 * so only a process that has lately had publishes queued behind a group
 * (CROWDED_MS) waits first: one that serves a request at a time (mod_fcgid)
 * never finds anything to add. */
#define CROWDED_MS 10000

static int grow(struct commit *c, struct waiter_qlink *list, char *err, size_t errlen)
{
	if (!msglog_shared(c->log) || clock_mono_ms() >= c->crowded_until)
		return 0;
	/* Refused when the wait fails: trying again would wait as long again. */
	if (msglog_lock(c->log, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	struct waiter_qlink *more = waiter_queue_take(&c->queue), *last = list;
	while (last->next)
		last = last->next;
	while (more && JOB_OF(more)->kind == COMMIT_PUBLISH) {
		last = last->next = more;
		more = more->next;
		last->next = NULL;
	}
	c->later = more;
	return 0;
}

/* Appends the publishes of list (linked by q.next) in one transaction and
 * answers them; returns the storage result. A publish waits for a lock
 * held elsewhere at most MSGLOG_BUSY_MS from its submission, however long
 * it queued behind a group that waited too. With tail (nothing taken
 * after list), publishes queued meanwhile may join (grow). */
static int commit_group(struct commit *c, struct waiter_qlink *list, bool tail, char *err,
			size_t errlen)
{
	if (tail && grow(c, list, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int total = 0;
	int64_t oldest = INT64_MAX;
	for (struct waiter_qlink *l = list; l; l = l->next) {
		total += JOB_OF(l)->n;
		if (JOB_OF(l)->queued_us / 1000 < oldest)
			oldest = JOB_OF(l)->queued_us / 1000;
	}
	struct msglog_msg *all = xcalloc((size_t)total, sizeof *all);
	int64_t *ids = xcalloc((size_t)total, sizeof *ids);
	struct msglog_item *at = xcalloc((size_t)total, sizeof *at);
	int k = 0;
	for (struct waiter_qlink *l = list; l; l = l->next) {
		memcpy(all + k, JOB_OF(l)->msg, (size_t)JOB_OF(l)->n * sizeof *all);
		k += JOB_OF(l)->n;
	}
	struct buf acks = BUF_INIT, body = BUF_INIT;
	msglog_wait_until(c->log, oldest + MSGLOG_BUSY_MS);
	int rc = msglog_append(c->log, all, total, clock_wall_ms(), ids, &acks, at, err, errlen);
	if (rc == 0) {
		bool several = list->next != NULL;	/* the jobs are freed as answered */
		k = 0;
		for (struct waiter_qlink *l = list, *next; l; l = next) {
			next = l->next;
			struct commit_job *job = JOB_OF(l);
			const struct msglog_item *first = &at[k], *last = &at[k + job->n - 1];
			const char *p = acks.p + first->off;
			size_t n = last->off + last->len - first->off;
			k += job->n;
			notify_commit_latency(c->notify, clock_mono_us() - job->queued_us);
			buf_reset(&body);
			if (job->reply) {
				job_done(c, job, 200, job->reply, strlen(job->reply));
				continue;
			}
			if (job->batch) {
				buf_adds(&body, "{\"messages\":[");
				buf_add(&body, p, n);
				buf_adds(&body, "]}");
				p = body.p;
				n = body.len;
			}
			job_done(c, job, 201, p, n);
		}
		/* The publishers' answers go out before the hub is woken: a web
		 * server that takes a thousand subscribers' answers first would
		 * hold a publisher's 201 behind all of them. */
		commit_after(c->notify, (uint64_t)total);
		/* Several publishes in the group, or others queued while it was
		 * written: this process has publishes that could wait together. */
		if (several || commit_pending(c) > 0)
			c->crowded_until = clock_mono_ms() + CROWDED_MS;
	}
	buf_free(&acks);
	buf_free(&body);
	free(all);
	free(ids);
	free(at);
	return rc;
}

/* Publishes, in one group; then, if one's content was refused, one by
 * one, until storage itself fails. */
static void publish_run(struct commit *c, struct waiter_qlink *list, bool tail)
{
	char err[512];
	int rc = commit_group(c, list, tail, err, sizeof err);
	if (rc == 0)
		return;
	if (rc == MSGLOG_EUNAVAIL) {
		refuse_all(c, list, err);
		return;
	}
	bool several = list->next != NULL;
	for (struct waiter_qlink *l = list, *next; l; l = next) {
		next = l->next;
		l->next = NULL;
		if (several)
			rc = commit_group(c, l, false, err, sizeof err);
		if (rc == 0)
			continue;
		if (rc == MSGLOG_EUNAVAIL) {
			l->next = next;
			refuse_all(c, l, err);
			return;
		}
		refuse(c, JOB_OF(l), rc);
	}
}

static void delete_one(struct commit *c, struct commit_job *job)
{
	char err[512];
	int64_t n;
	msglog_wait_until(c->log, job->queued_us / 1000 + MSGLOG_BUSY_MS);
	if (msglog_delete(c->log, job->chan, &n, err, sizeof err) < 0) {
		log_msg("error", job->conn ? conn_id(job->conn) : 0,
			"DELETE: storage unavailable: %s", err);
		notify_storage_error(c->notify);
		job_done(c, job, 503, "storage unavailable, try again", 0);
		return;
	}
	/* Held subscribers of the channel whose cursor is behind what went
	 * are told (gap), and what the copy took from other hosts on the
	 * way is news too: every process looks. */
	commit_after(c->notify, 0);
	struct buf body = BUF_INIT;
	buf_adds(&body, "{\"channel\":");
	reply_json_string(&body, job->chan);
	buf_printf(&body, ",\"deleted\":%lld}", (long long)n);
	job_done(c, job, 200, body.p, body.len);
	buf_free(&body);
}

/* A subscriber ahead of this host's copy: the copy is brought up to the
 * shared log, then the hub decides (reset if still ahead). When the shared
 * log cannot be reached, the subscriber waits for the copy as before. */
static void sync_one(struct commit *c, struct commit_job *job)
{
	char err[512];
	struct waiter *w = job->waiter;
	int rc = msglog_sync(c->log, err, sizeof err);
	if (rc >= 0)
		w->synced = true;
	else
		log_msg("notice", 0, "a cursor ahead of this host's copy waits for it: %s", err);
	/* What it copied may be news to subscribers of other processes: the
	 * follower, told of it, would now find it copied and wake nobody. */
	if (rc > 0)
		notify_bump(c->notify);
	hub_submit_any(c->hub, w);
	job_gone(c, job);
}

struct commit_job *commit_presence_job(const struct waiter_member *m, int n, int delta)
{
	struct commit_job *job = xcalloc(1, sizeof *job);
	job->kind = COMMIT_PRESENCE;
	job->delta = delta;
	job->nmembers = n;
	job->members = xcalloc((size_t)n, sizeof *job->members);
	for (int i = 0; i < n; i++)
		job->members[i] = (struct msglog_member){ xstrdup(m[i].channel), xstrdup(m[i].id),
							  xstrdup(m[i].info) };
	return job;
}

/* An owner on this host whose process is gone has ended at once. */
static bool owner_alive(const char *owner, void *arg)
{
	const char *self = arg, *colon = strrchr(owner, ':'), *mine = strrchr(self, ':');
	if (!colon || !mine || colon - owner != mine - self ||
	    strncmp(owner, self, (size_t)(colon - owner)) != 0)
		return true;
	long pid = strtol(colon + 1, NULL, 10);
	return pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static void presence_told(struct commit *c, int rc, const char *err)
{
	if (rc >= 0 || strcmp(c->told, err) == 0)
		return;
	log_msg("error", 0, "presence: %s", err);
	snprintf(c->told, sizeof c->told, "%s", err);
}

static void reap(struct commit *c)
{
	char err[512];
	int64_t now = clock_wall_ms();
	int rc = msglog_presence_reap(c->log, c->presence > 0 ? c->owner : NULL, now, c->grace_ms,
				      COMMIT_DEAD_MS, owner_alive, c->owner, err, sizeof err);
	presence_told(c, rc, err);
	if (rc > 0)
		commit_after(c->notify, (uint64_t)rc);
	c->reap_at = clock_mono_ms() + COMMIT_REAP_MS;
}

static void presence_one(struct commit *c, struct commit_job *job)
{
	char err[512];
	int rc = msglog_presence(c->log, job->members, job->nmembers, c->owner, job->delta,
				 clock_wall_ms(), err, sizeof err);
	presence_told(c, rc, err);
	if (rc > 0)
		commit_after(c->notify, (uint64_t)rc);
	c->presence += job->delta;
	if (c->presence <= 0)
		c->leaving = (int)(c->grace_ms / COMMIT_REAP_MS) + 2;
	/* A member whose last subscription here ended may leave after the
	 * grace: reaped then, even if nothing is held here any more. */
	if (job->delta < 0 && c->grace_ms <= COMMIT_REAP_MS)
		reap(c);
	else if (!c->reap_at)
		c->reap_at = clock_mono_ms() + COMMIT_REAP_MS;
	job_gone(c, job);
}

static void read_one(struct commit *c, struct commit_job *job)
{
	char err[512];
	struct buf body = BUF_INIT;
	int st = job->read(c->log, job, &body, err, sizeof err);
	if (st == 503) {
		log_msg("error", job->conn ? conn_id(job->conn) : 0, "storage unavailable: %s", err);
		notify_storage_error(c->notify);
		snprintf(err, sizeof err, "storage unavailable, try again");
	}
	if (st < 300)
		job_done(c, job, st, body.p ? body.p : "", body.len);
	else
		job_done(c, job, st, err, 0);
	buf_free(&body);
}

/* Every job queued, in order: runs of publishes as groups, the others in
 * their turn. */
static void commit_list(struct commit *c, struct waiter_qlink *list)
{
	for (;;) {
		if (!list) {
			list = c->later;
			c->later = NULL;
		}
		if (!list)
			break;
		struct commit_job *job = JOB_OF(list);
		if (job->kind != COMMIT_PUBLISH) {
			list = list->next;
			if (job->kind == COMMIT_DELETE)
				delete_one(c, job);
			else if (job->kind == COMMIT_PRESENCE)
				presence_one(c, job);
			else if (job->kind == COMMIT_READ)
				read_one(c, job);
			else
				sync_one(c, job);
			continue;
		}
		struct waiter_qlink *run = list, *last = list;
		while (last->next && JOB_OF(last->next)->kind == COMMIT_PUBLISH)
			last = last->next;
		list = last->next;
		last->next = NULL;
		publish_run(c, run, list == NULL);
	}
}

void commit_poll(struct commit *c)
{
	struct waiter_qlink *list = waiter_queue_take(&c->queue);
	if (list)
		commit_list(c, list);
}

/* After this long without a publish, the log lets go of what others may
 * need (a shared log's connection, one of a few per host). */
#define IDLE_MS 2000

static void *commit_main(void *arg)
{
	struct commit *c = arg;
	while (!__atomic_load_n(&c->quit, __ATOMIC_SEQ_CST)) {
		struct pollfd p = { c->queue.efd, POLLIN, 0 };
		int64_t now = clock_mono_ms();
		int wait = IDLE_MS;
		if (c->reap_at)
			wait = c->reap_at <= now ? 0 : c->reap_at - now < IDLE_MS
			       ? (int)(c->reap_at - now) : IDLE_MS;
		int n = poll(&p, 1, wait);
		if (n < 0 && errno != EINTR)
			log_msg("error", 0, "commit: poll: %s", strerror(errno));
		if (n == 0 && !c->reap_at)
			msglog_idle(c->log);
		commit_poll(c);
		/* Reaping goes on for one grace after the last subscription here
		 * ended, so that its members leave. */
		if (c->reap_at && clock_mono_ms() >= c->reap_at) {
			reap(c);
			if (c->presence <= 0 && c->leaving-- <= 0)
				c->reap_at = 0;
		}
	}
	commit_poll(c);
	return NULL;
}

int commit_start(struct commit **out, const struct conf *conf, struct notify *n,
		 struct hub *hub, bool threaded, char *err, size_t errlen)
{
	struct commit *c = xcalloc(1, sizeof *c);
	c->notify = n;
	c->hub = hub;
	c->threaded = threaded;
	c->grace_ms = conf->presence_grace * 1000;
	char host[64] = "";
	gethostname(host, sizeof host - 1);
	snprintf(c->owner, sizeof c->owner, "%s:%ld", host, (long)getpid());
	if (msglog_open(&c->log, conf->db, conf->state_dir, conf->sync_full ? MSGLOG_SYNC_FULL : 0,
			err, errlen) < 0) {
		free(c);
		return -1;
	}
	msglog_retention(c->log, conf->retain, conf->retain_seconds);
	if (waiter_queue_init(&c->queue) < 0) {
		snprintf(err, errlen, "commit: eventfd: %s", strerror(errno));
		msglog_close(c->log);
		free(c);
		return -1;
	}
	/* SQLite needs about 100 KB of stack. */
	int rc = threaded ? thread_start(&c->thread, commit_main, c, 256) : 0;
	if (rc) {
		snprintf(err, errlen, "commit: pthread_create: %s", strerror(rc));
		commit_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

void commit_queue(struct commit *c, struct commit_job *job)
{
	job->queued_us = clock_mono_us();
	__atomic_add_fetch(&c->pending, 1, __ATOMIC_SEQ_CST);
	notify_queued(c->notify, 1);
	waiter_queue_push(&c->queue, &job->q);
}

void commit_submit(struct commit *c, struct commit_job *job)
{
	commit_queue(c, job);
	if (!c->threaded)
		commit_poll(c);
}

bool commit_end(struct commit *c, long long deadline_ms)
{
	__atomic_store_n(&c->quit, 1, __ATOMIC_SEQ_CST);
	waiter_queue_ring(&c->queue);
	return thread_join(&c->thread, deadline_ms);
}

void commit_close(struct commit *c)
{
	if (!c)
		return;
	msglog_close(c->log);
	waiter_queue_destroy(&c->queue);
	free(c);
}

long commit_pending(struct commit *c)
{
	return __atomic_load_n(&c->pending, __ATOMIC_SEQ_CST);
}
