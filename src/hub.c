/* hub: parked requests, wake-ups, deadlines and slow sockets of one process. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hub.h"
#include "log.h"
#include "msglog.h"
#include "reply.h"
#include "thread.h"
#include "request.h"

/* Rows read from the log per round; a longer backlog takes more rounds. */
#define BATCH_ROWS 1000
/* What lagging streams may read of their backlogs in one turn of the hub,
 * all together, in COMET_OUTPUT_MAX: a turn stays short (a wake-up or a
 * new subscriber waits at most that), and the rest goes on next turn. */
#define TURN_BACKLOG 4

struct hub {
	const struct conf *conf;
	struct notify *notify;		/* from hub_attach; NULL before */
	struct msglog *log;		/* the hub thread's own connection, opened at need */
	struct waiter_set *set;
	struct waiter_queue queue;
	int ep;
	int bell;			/* eventfd rung by the watcher */
	int stopfd;			/* eventfd: shut down */
	int stopping, stopped;		/* set by the hub thread; read by hub_stop */
	uint32_t seen;			/* sequence value the watcher starts from */
	int64_t pos;			/* the log is dispatched through this id */
	long inflight;			/* submitted and not yet ended */
	int64_t (*now)(void);
	size_t output_max;
	bool in_round;			/* within match(): answered sockets close last */
	size_t turn_left;		/* backlog bytes streams may still read this turn */
	struct waiter *ended;		/* ended this turn, freed at its end */
	int *closing;			/* ... these */
	size_t nclosing, capclosing;
	/* Within one match(): the last answer rendered, and what it was
	 * rendered from. Waiters that matched the same messages from the same
	 * place get the same bytes (no JSONP callback, no extra headers). */
	struct buf shared, shared_items;
	int64_t shared_last;
	/* Within one match(): the event of message ev_id as this program's
	 * own event streams are sent it, rendered for the first stream and
	 * copied for the others. */
	struct buf ev;
	int64_t ev_id;
	long in_state[WAITER_NSTATES];	/* waiters in each state now */
	unsigned long ends[HUB_NEND];	/* requests ended, by reason */
	bool shared_more, shared_gap, shared_ok;
	bool threaded;			/* runs for ever in its own thread */
	int stop_requested;		/* set by hub_stop before it rings */
	int quit;			/* the threads end now (hub_end) */
	hub_presence_fn presence;	/* hub_set_presence */
	void *presence_arg;
	struct thread thread, watcher;
	/* The submitting thread's own: */
	bool owed;			/* pushed onto an empty queue, not rung */
	int unrung;			/* hand-overs since the last ring */
	unsigned long submitted;	/* hand-overs in all */
};

const char *const hub_end_names[HUB_NEND] = {
	[HUB_ANSWERED] = "answered", [HUB_EXPIRED] = "expired", [HUB_FAILED] = "failed",
	[HUB_HUNGUP] = "hungup", [HUB_DROPPED] = "dropped", [HUB_SHUTDOWN] = "shutdown",
};
_Static_assert(HUB_NEND == NOTIFY_NENDS, "notify counts every end reason");

/* At most this many hand-overs wait for one ring (a bound on how late the
 * hub sees a subscriber in a long burst of them). */
#define HANDOVER_BATCH 64

static char tag_queue, tag_bell, tag_stop;	/* epoll tags besides waiters */

static void *watch_main(void *arg)
{
	struct hub *h = arg;
	uint32_t seen = h->seen;
	while (!__atomic_load_n(&h->quit, __ATOMIC_SEQ_CST)) {
		notify_wait(h->notify, seen);
		uint32_t now = notify_seq(h->notify);
		if (now != seen) {
			uint64_t one = 1;
			seen = now;
			if (write(h->bell, &one, sizeof one) < 0 && errno != EAGAIN)
				log_msg("error", 0, "doorbell: %s", strerror(errno));
		}
	}
	return NULL;
}

/* The hub's thread: until told to quit, or once stopping, until every
 * request it holds has ended (answers still being written included). */
static void *hub_main(void *arg)
{
	struct hub *h = arg;
	while (!__atomic_load_n(&h->quit, __ATOMIC_SEQ_CST) &&
	       !(__atomic_load_n(&h->stopped, __ATOMIC_SEQ_CST) && hub_inflight(h) == 0))
		hub_poll(h, h->stopping ? 100 : -1);
	return NULL;
}

/* The hub's descriptors and memory; its threads have ended. */
static void hub_free(struct hub *h)
{
	if (h->ep >= 0)
		close(h->ep);
	if (h->bell >= 0)
		close(h->bell);
	if (h->stopfd >= 0)
		close(h->stopfd);
	waiter_queue_destroy(&h->queue);
	waiter_set_free(h->set);
	msglog_close(h->log);
	buf_free(&h->shared);
	buf_free(&h->shared_items);
	buf_free(&h->ev);
	free(h->closing);
	free(h);
}

int hub_start(struct hub **out, const struct conf *conf, bool threaded,
	      char *err, size_t errlen)
{
	struct hub *h = xcalloc(1, sizeof *h);
	h->conf = conf;
	h->threaded = threaded;
	h->now = clock_mono_ms;
	h->output_max = (size_t)conf->output_max;
	h->set = waiter_set_new();
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	h->bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->queue.efd = -1;
	if (h->ep < 0 || h->bell < 0 || h->stopfd < 0 || waiter_queue_init(&h->queue) < 0) {
		snprintf(err, errlen, "hub: %s", strerror(errno));
		hub_free(h);
		return -1;
	}
	struct epoll_event ev = { .events = EPOLLIN };
	ev.data.ptr = &tag_queue;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, h->queue.efd, &ev);
	ev.data.ptr = &tag_bell;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, h->bell, &ev);
	ev.data.ptr = &tag_stop;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, h->stopfd, &ev);
	/* SQLite needs about 100 KB of stack. */
	int rc = threaded ? thread_start(&h->thread, hub_main, h, 256) : 0;
	if (rc) {
		snprintf(err, errlen, "hub: pthread_create: %s", strerror(rc));
		hub_free(h);
		return -1;
	}
	*out = h;
	return 0;
}

int hub_attach(struct hub *h, struct notify *n, char *err, size_t errlen)
{
	if (h->notify)
		return 0;
	/* Read before any waiter is handed over: a commit the hand-over's
	 * re-check cannot see has its bump after this, so it rings. */
	h->seen = notify_seq(n);
	h->notify = n;
	/* The watcher needs almost no stack. */
	int rc = thread_start(&h->watcher, watch_main, h, 64);
	if (rc) {
		h->notify = NULL;
		snprintf(err, errlen, "hub: pthread_create: %s", strerror(rc));
		return -1;
	}
	return 0;
}

void hub_set_presence(struct hub *h, hub_presence_fn fn, void *arg)
{
	h->presence_arg = arg;
	__atomic_store_n(&h->presence, fn, __ATOMIC_SEQ_CST);
}

/* A subscriber with presence members begins or ends being counted. */
static void presence(struct hub *h, struct waiter *w, int delta)
{
	hub_presence_fn fn = __atomic_load_n(&h->presence, __ATOMIC_SEQ_CST);
	if (!w->nmembers || !fn || w->joined == (delta > 0))
		return;
	w->joined = delta > 0;
	fn(h->presence_arg, w->members, w->nmembers, delta);
}

void hub_set_clock(struct hub *h, int64_t (*now)(void))
{
	h->now = now;
}

long hub_inflight(const struct hub *h)
{
	return __atomic_load_n(&h->inflight, __ATOMIC_SEQ_CST);
}

/* A burst of subscribes reaches the hub with one wake-up, not one each: a
 * wake-up of the hub also preempts this thread, and the herd of
 * re-subscribes after a fan-out must be accepted as fast as it comes (see
 * listen-backlog in lighttpd/comet-fcgi.conf). Delaying the ring is safe:
 * a waiter's re-check in settle() covers commits between its check and its
 * adoption however late that is, and the delay is bounded by hub_flush
 * and HANDOVER_BATCH. A stream is rung at once: it is sent its backlog on
 * adoption. */
void hub_submit(struct hub *h, struct waiter *w)
{
	bool stream = w->stream;
	__atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
	if (waiter_queue_push_quiet(&h->queue, &w->q))
		h->owed = true;
	h->unrung++;
	h->submitted++;
	if (stream || !h->threaded || h->unrung >= HANDOVER_BATCH ||
	    __atomic_load_n(&h->stop_requested, __ATOMIC_SEQ_CST))
		hub_flush(h);
}

void hub_submit_any(struct hub *h, struct waiter *w)
{
	__atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
	waiter_queue_push(&h->queue, &w->q);
}

void hub_answer(struct hub *h, struct conn *c, const void *p, size_t n)
{
	if (conn_answer(c, p, n) < 0 || conn_pending(c) == 0 || !h) {
		conn_close(c);
		return;
	}
	/* A waiter without channels: the hub only drains it. Rung at once,
	 * and safe from any thread (the queue is the lock). */
	struct waiter *w = waiter_new(NULL, 0);
	w->conn = c;
	__atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
	waiter_queue_push(&h->queue, &w->q);
}

bool hub_owes(const struct hub *h)
{
	return h->owed;
}

unsigned long hub_submitted(const struct hub *h)
{
	return h->submitted;
}

void hub_flush(struct hub *h)
{
	if (h->owed)
		waiter_queue_ring(&h->queue);
	h->owed = false;
	h->unrung = 0;
}

/* The hub thread's connection to the log, opened at first need (a hub that
 * only drains answers needs none). */
static struct msglog *hub_log(struct hub *h, char *err, size_t errlen)
{
	if (!h->log) {
		if (msglog_open(&h->log, h->conf->db, h->conf->state_dir,
				(h->conf->sync_full ? MSGLOG_SYNC_FULL : 0) | MSGLOG_READER,
				err, errlen) < 0)
			return NULL;
		msglog_retention(h->log, h->conf->retain, h->conf->retain_seconds);
	}
	return h->log;
}

/* The moves move() allows. A waiter leaves NEW once, for good; LISTENING
 * and BACKLOG go to each other and on (a stream falls behind and catches
 * up); DRAINING only re-arms its timer or ends; nothing leaves ENDED. */
static const bool legal[WAITER_NSTATES][WAITER_NSTATES] = {
	[WAITER_NEW] = { [WAITER_LISTENING] = true, [WAITER_BACKLOG] = true,
			 [WAITER_DRAINING] = true, [WAITER_ENDED] = true },
	[WAITER_LISTENING] = { [WAITER_LISTENING] = true, [WAITER_BACKLOG] = true,
			       [WAITER_DRAINING] = true, [WAITER_ENDED] = true },
	[WAITER_BACKLOG] = { [WAITER_LISTENING] = true, [WAITER_BACKLOG] = true,
			     [WAITER_DRAINING] = true, [WAITER_ENDED] = true },
	[WAITER_DRAINING] = { [WAITER_DRAINING] = true, [WAITER_ENDED] = true },
};

/* The process-wide gauges a state counts in: held subscribers (waiting)
 * and answers still being written (draining). */
static void gauge(struct hub *h, enum waiter_state st, int delta)
{
	h->in_state[st] += delta;
	if (!h->notify)
		return;
	if (st == WAITER_LISTENING || st == WAITER_BACKLOG)
		notify_waiting(h->notify, delta);
	else if (st == WAITER_DRAINING)
		notify_draining(h->notify, delta);
}

/* The one way a waiter changes state: out of the set where the old state
 * kept it, counted in the new one, and parked as the new state needs
 * (LISTENING by channel and deadline, BACKLOG and DRAINING by deadline). */
static void move(struct hub *h, struct waiter *w, enum waiter_state to, int64_t deadline)
{
	enum waiter_state from = w->state;
	assert(legal[from][to]);
	if (w->parked)
		waiter_unpark(h->set, w);
	gauge(h, from, -1);
	gauge(h, to, 1);
	w->state = to;
	if (to == WAITER_LISTENING)
		waiter_park(h->set, w, deadline);
	else if (to == WAITER_BACKLOG || to == WAITER_DRAINING)
		waiter_park_timer(h->set, w, deadline);
}

/* Watches w's socket for hang-ups and, with out, for room to write. */
static void watch(struct hub *h, struct waiter *w, bool out)
{
	int fd = conn_fd(w->conn);
	if (fd < 0 || (w->watched && w->want_out == out))
		return;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0) };
	ev.data.ptr = w;
	epoll_ctl(h->ep, w->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
	w->watched = true;
	w->want_out = out;
}

/* The one way out: ends w's request. Answered in a round of match(), the
 * socket is closed by close_answered(), after every answer of the round
 * is written. The close takes the socket out of epoll. w itself is freed
 * at the end of the turn, so that whatever else of the turn still points
 * at it sees WAITER_ENDED. */
static void end(struct hub *h, struct waiter *w, enum hub_end why)
{
	assert(why == HUB_HUNGUP || why == HUB_DROPPED || why == HUB_FAILED ||
	       conn_pending(w->conn) == 0);
	move(h, w, WAITER_ENDED, 0);
	presence(h, w, -1);
	h->ends[why]++;
	if (h->notify)
		notify_ended(h->notify, why);
	if (why == HUB_DROPPED) {
		log_msg("notice", conn_id(w->conn),
			"dropped: %zu bytes unread for %ld s (COMET_OUTPUT_MAX, COMET_KEEPALIVE)",
			conn_pending(w->conn), h->conf->keepalive);
		if (h->notify)
			notify_dropped(h->notify, 1);
	}
	if (why != HUB_HUNGUP && why != HUB_DROPPED && h->in_round && conn_fd(w->conn) >= 0) {
		if (h->nclosing == h->capclosing) {
			h->capclosing = h->capclosing ? 2 * h->capclosing : 256;
			h->closing = xrealloc(h->closing, h->capclosing * sizeof *h->closing);
		}
		h->closing[h->nclosing++] = conn_release(w->conn);
	} else {
		conn_close(w->conn);
	}
	w->conn = NULL;
	w->ended_next = h->ended;
	h->ended = w;
	__atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
}

/* A keepalive interval from now: a stream's next ping, and when a waiter
 * whose output waits is looked at again (no progress by then drops it). */
static int64_t beat_after(const struct hub *h, int64_t now)
{
	return now + (int64_t)h->conf->keepalive * 1000;
}

/* The next beat of a stream, or its end. */
static int64_t next_beat(const struct hub *h, const struct waiter *w, int64_t now)
{
	int64_t beat = beat_after(h, now);
	return w->stream && w->end < beat ? w->end : beat;
}

/* Answered, with the rest of the answer waiting for the socket; why: the
 * end to count once it is written. */
static void drain(struct hub *h, struct waiter *w, enum hub_end why)
{
	w->why = (int)why;
	w->moved_at = h->now();
	move(h, w, WAITER_DRAINING, beat_after(h, w->moved_at));
	watch(h, w, true);
}

/* Sends the last bytes of w's answer (and the end of the request). */
static void finish(struct hub *h, struct waiter *w, const void *p, size_t n, enum hub_end why)
{
	if (conn_answer(w->conn, p, n) < 0)
		end(h, w, HUB_HUNGUP);
	else if (conn_pending(w->conn) == 0)
		end(h, w, why);
	else
		drain(h, w, why);
}

/* The answer for w, rendered into out, or the one rendered last in this
 * round when w's is the same (plain: no callback, headers or reset). */
static const struct buf *render(struct hub *h, struct waiter *w, int64_t last_id, bool gap,
				bool reset, bool plain, struct buf *out)
{
	if (plain && h->shared_ok && h->shared_last == last_id && h->shared_more == w->more &&
	    h->shared_gap == gap && h->shared_items.len == w->items.len &&
	    (w->items.len == 0 || memcmp(h->shared_items.p, w->items.p, w->items.len) == 0))
		return &h->shared;
	struct buf body = BUF_INIT;
	reply_sub(&body, last_id, w->items.p, w->items.len, w->more, gap, reset);
	reply_json(out, 200, body.p, body.len, w->callback, w->headers);
	buf_free(&body);
	if (plain) {
		buf_reset(&h->shared);
		buf_add(&h->shared, out->p, out->len);
		buf_reset(&h->shared_items);
		buf_add(&h->shared_items, w->items.p, w->items.len);
		h->shared_last = last_id;
		h->shared_more = w->more;
		h->shared_gap = gap;
		h->shared_ok = true;
	}
	return out;
}

/* Answers a long-poll with what w has collected. */
static void answer(struct hub *h, struct waiter *w, int64_t last_id, bool gap, bool reset,
		   enum hub_end why)
{
	struct buf out = BUF_INIT;
	bool plain = h->in_round && !reset && !w->callback && !w->headers;
	const struct buf *ans = render(h, w, last_id, gap, reset, plain, &out);
	if (h->notify)
		notify_delivered(h->notify, (uint64_t)w->nmatch);
	notify_answer(h->notify, 200);
	finish(h, w, ans->p, ans->len, why);
	buf_free(&out);
}

/* Ends a round of answers: closes the sockets it left open (before the
 * next epoll_wait, which could otherwise report events of them for freed
 * waiters) and forgets the shared answer. */
static void close_answered(struct hub *h)
{
	for (size_t i = 0; i < h->nclosing; i++)
		close(h->closing[i]);
	h->nclosing = 0;
	h->shared_ok = false;
}

/* Sends bytes on w's socket, or queues them; with output that had been
 * written through, the time it started to wait. */
static int send_more(struct hub *h, struct waiter *w, const char *p, size_t n)
{
	bool was_idle = conn_pending(w->conn) == 0;
	int rc = conn_send(w->conn, p, n);
	if (was_idle && conn_pending(w->conn) > 0)
		w->moved_at = h->now();
	return rc;
}

/* Writes a stream's pending events (w->items); false when w was ended. */
static bool flush_stream(struct hub *h, struct waiter *w)
{
	int rc = send_more(h, w, w->items.p, w->items.len);
	if (h->notify)
		notify_delivered(h->notify, (uint64_t)w->nmatch);
	if (w->nmatch)
		w->cursor = w->last_match;
	/* The events are in the socket or its queue now: a large round's
	 * buffer is not kept for the next. */
	if (w->items.cap > 65536)
		buf_free(&w->items);
	else
		buf_reset(&w->items);
	/* A round of large events for many streams is one long turn. */
	buf_give_back();
	w->nmatch = 0;
	w->more = false;
	if (rc < 0) {
		end(h, w, HUB_HUNGUP);
		return false;
	}
	if (conn_pending(w->conn) > h->output_max) {
		end(h, w, HUB_DROPPED);
		return false;
	}
	watch(h, w, conn_pending(w->conn) > 0);
	return true;
}

static void fail(struct hub *h, struct waiter *w, const char *why)
{
	log_msg("error", conn_id(w->conn), "storage unavailable: %s", why);
	notify_storage_error(h->notify);
	if (w->stream) {
		end(h, w, HUB_FAILED);	/* headers went out already; the client resumes */
		return;
	}
	struct buf out = BUF_INIT;
	reply_error(&out, 503, "storage unavailable", w->callback, w->headers);
	notify_answer(h->notify, 503);
	finish(h, w, out.p, out.len, HUB_FAILED);
	buf_free(&out);
}

/* Ends a waiter that has nothing new: an empty answer (its cursor moved to
 * what this process has read), or the end of its stream. */
static void release(struct hub *h, struct waiter *w, enum hub_end why)
{
	if (w->stream)
		finish(h, w, NULL, 0, why);
	else
		answer(h, w, h->pos > w->cursor ? h->pos : w->cursor, false, false, why);
}

/* Adds one message to what w will be sent; ev: the message's event as
 * rendered for an earlier stream of the round, or NULL. */
static void add_message(struct waiter *w, int64_t id, const char *json, size_t n,
			const struct buf *ev)
{
	if (w->render) {
		if (!w->render(w->render_arg, json, n, &w->items))
			return;
	} else if (w->stream && ev) {
		buf_add(&w->items, ev->p, ev->len);
	} else if (w->stream) {
		reply_sse_event(&w->items, "", id, json, n);
	} else {
		if (w->nmatch)
			buf_addc(&w->items, ',');
		buf_add(&w->items, json, n);
	}
	w->nmatch++;
	w->last_match = id;
}

/* An event that is not a message: gap (messages after the cursor were
 * dropped) or reset (the cursor is ahead of the log; id moves it back). */
static void meta_event(struct waiter *w, const char *name, int64_t id, int64_t last_id)
{
	/* Another protocol's stream has no such events: after a reset it
	 * ends, and its client comes back. */
	if (w->render)
		return;
	char meta[64];
	int n = snprintf(meta, sizeof meta, "{\"last_id\":%lld}", (long long)last_id);
	reply_sse_event(&w->items, name, id, meta, (size_t)n);
}

/* A stream behind the log: it waits for its socket, parked by deadline
 * only, and reads what it missed from the log when the socket drains. One
 * whose socket still has room (it only used up its turn) goes on at the
 * next turn: a socket with a little room may never report more. */
static void backlog(struct hub *h, struct waiter *w)
{
	w->resume = conn_pending(w->conn) == 0;
	if (w->resume)
		w->beat_due = w->deadline;
	move(h, w, WAITER_BACKLOG, w->resume ? h->now() : w->deadline);
	watch(h, w, !w->resume);
}

/* Parked by channel: waits for messages. */
static void listen(struct hub *h, struct waiter *w)
{
	move(h, w, WAITER_LISTENING, w->deadline);
	watch(h, w, conn_pending(w->conn) > 0);
}

enum caught { CAUGHT_ENDED, CAUGHT_BEHIND, CAUGHT_UP };

/* Catches w up with the log from its cursor. CAUGHT_ENDED: w was answered
 * (a long-poll) or ended; CAUGHT_BEHIND: a stream whose socket has enough
 * to write for now; CAUGHT_UP: nothing newer, w->checked set. */
static enum caught catch_up(struct hub *h, struct waiter *w)
{
	char err[256];
	const char *names[REQ_MAX_CHANNELS];
	struct msglog *log = hub_log(h, err, sizeof err);
	if (!log) {
		fail(h, w, err);
		return CAUGHT_ENDED;
	}
	waiter_names(w, names);
	/* A stream reads in pages of half its output bound, and only while
	 * its socket keeps up: its queue never holds much more than that. */
	size_t low = h->output_max / 2;
	/* At most this much per call, and per turn for all streams together
	 * (TURN_BACKLOG), so that streams reading long backlogs take turns
	 * with each other and a turn stays short for everyone else. */
	size_t budget = h->output_max;
	if (w->stream && h->turn_left == 0)
		return CAUGHT_BEHIND;
	for (;;) {
		size_t queued = conn_pending(w->conn);
		size_t room = low > queued ? low - queued : 1;
		struct msglog_page pg = { .max_bytes = w->stream ? room : h->output_max,
					  .exclude = w->exclude };
		if (msglog_read(log, names, w->nchan, w->cursor,
				w->stream ? REQ_MAX_LIMIT : w->limit, &pg, err, sizeof err) < 0) {
			msglog_page_free(&pg);
			fail(h, w, err);
			return CAUGHT_ENDED;
		}
		/* Ahead even of the shared log: a cursor from a log since made
		 * anew (msglog_sync ran after the request came). */
		if (pg.ahead && w->synced) {
			pg.reset = true;
			pg.last_id = pg.log_last;
		}
		if (!w->stream) {
			if (pg.count || pg.gap || pg.reset) {
				buf_add(&w->items, pg.items.p, pg.items.len);
				w->nmatch = pg.count;
				w->more = pg.more;
				answer(h, w, pg.last_id, pg.gap, pg.reset, HUB_ANSWERED);
				msglog_page_free(&pg);
				return CAUGHT_ENDED;
			}
			w->checked = pg.log_last;
			msglog_page_free(&pg);
			return CAUGHT_UP;
		}
		if (pg.reset) {
			meta_event(w, "reset", pg.last_id, pg.last_id);
			msglog_page_free(&pg);
			if (flush_stream(h, w))
				finish(h, w, NULL, 0, HUB_ANSWERED);
			return CAUGHT_ENDED;
		}
		if (pg.gap)
			meta_event(w, "gap", w->cursor, pg.last_id);
		for (int i = 0; i < pg.count; i++)
			add_message(w, pg.item[i].id, pg.items.p + pg.item[i].off, pg.item[i].len,
				    NULL);
		bool more = pg.more;
		int64_t last = pg.last_id;
		size_t got = pg.items.len;
		w->checked = pg.log_last;
		msglog_page_free(&pg);
		if (!flush_stream(h, w))
			return CAUGHT_ENDED;
		w->cursor = last;
		if (!more)
			return CAUGHT_UP;
		budget = budget > got ? budget - got : 0;
		h->turn_left = h->turn_left > got ? h->turn_left - got : 0;
		if (conn_pending(w->conn) >= low || budget == 0 || h->turn_left == 0)
			return CAUGHT_BEHIND;
	}
}

/* Brings w up to date with the log, then parks it to wait for messages.
 * A long-poll the accepting thread found nothing for through w->checked
 * needs no read of its own unless a round has passed that point since. */
static void settle(struct hub *h, struct waiter *w)
{
	/* With nothing listening, h->pos may lag doorbells that found nobody;
	 * and a round may have passed w->checked. Either way read again. */
	if (w->stream || waiter_listening(h->set) == 0 || h->pos > w->checked) {
		switch (catch_up(h, w)) {
		case CAUGHT_ENDED:
			return;
		case CAUGHT_BEHIND:
			backlog(h, w);
			return;
		case CAUGHT_UP:
			break;
		}
		if (waiter_listening(h->set) == 0)
			h->pos = w->checked;
	}
	listen(h, w);
}

/* A request handed over: a subscriber to hold, or an answer to drain. */
static void adopt(struct hub *h, struct waiter *w)
{
	if (w->nchan == 0) {
		drain(h, w, HUB_ANSWERED);
		return;
	}
	if (h->stopping) {
		release(h, w, HUB_SHUTDOWN);
		return;
	}
	presence(h, w, 1);
	settle(h, w);
}

/* The socket has room, or an error to tell. */
static void writable(struct hub *h, struct waiter *w)
{
	if (w->state == WAITER_ENDED)
		return;
	size_t before = conn_pending(w->conn);
	if (conn_flush(w->conn) < 0) {
		end(h, w, HUB_HUNGUP);
		return;
	}
	size_t left = conn_pending(w->conn);
	if (left < before)
		w->moved_at = h->now();
	switch (w->state) {
	case WAITER_DRAINING:
		if (left == 0)
			end(h, w, (enum hub_end)w->why);
		break;
	case WAITER_BACKLOG:
		if (left < h->output_max / 2)
			settle(h, w);
		break;
	case WAITER_LISTENING:
		if (left == 0)
			watch(h, w, false);
		break;
	default:
		assert(!"a waiter in epoll is adopted and not ended");
	}
}

static bool has_gap(const struct waiter *w, const struct msglog_batch *b)
{
	for (int m = 0; m < b->nmarks; m++)
		for (int i = 0; i < w->nchan; i++)
			if (b->marks[m].id > w->cursor &&
			    strcmp(b->marks[m].channel, w->links[i].name) == 0)
				return true;
	return false;
}

static void touch(struct waiter *w, struct waiter **touched)
{
	if (w->touched)
		return;
	w->touched = true;
	w->touched_next = *touched;
	*touched = w;
}

/* The row's event for this program's own streams, rendered once a round. */
static const struct buf *event_of(struct hub *h, const struct msglog_row *row)
{
	if (h->ev_id != row->id) {
		buf_reset(&h->ev);
		reply_sse_event(&h->ev, "", row->id, row->json, row->jsonlen);
		h->ev_id = row->id;
	}
	return &h->ev;
}

/* Answers every listening waiter that a batch of new messages, or of
 * messages dropped after its cursor (retention, DELETE), concerns. */
static void match(struct hub *h, const struct msglog_batch *b)
{
	struct waiter *touched = NULL;
	for (int r = 0; r < b->n; r++) {
		const struct msglog_row *row = &b->rows[r];
		for (struct waiter_link *l = waiter_on(h->set, row->channel); l; l = l->next) {
			struct waiter *w = l->w;
			if (row->id <= w->cursor || w->more)
				continue;
			/* Not back to the connection that published it. */
			if (w->exclude && row->origin && strcmp(row->origin, w->exclude) == 0)
				continue;
			touch(w, &touched);
			/* A long-poll's answer, and what a stream is sent in one
			 * round, stay within the output bound; the rest waits in
			 * the log (more: true; a stream falls behind). */
			size_t queued = conn_pending(w->conn);
			size_t size = queued + w->items.len + row->jsonlen + (w->stream ? 64 : 1);
			if (w->nmatch == w->limit ||
			    (size > h->output_max && (w->nmatch || queued))) {
				w->more = true;
				continue;
			}
			add_message(w, row->id, row->json, row->jsonlen,
				    w->stream && !w->render ? event_of(h, row) : NULL);
		}
	}
	h->ev_id = 0;
	if (h->ev.cap > 65536)
		buf_free(&h->ev);
	for (int m = 0; m < b->nmarks; m++)
		for (struct waiter_link *l = waiter_on(h->set, b->marks[m].channel); l; l = l->next)
			if (b->marks[m].id > l->w->cursor)
				touch(l->w, &touched);
	h->in_round = true;
	while (touched) {
		struct waiter *w = touched;
		touched = w->touched_next;
		w->touched = false;
		bool gap = has_gap(w, b);
		if (w->stream) {
			if (gap) {
				struct buf events = w->items;
				w->items = (struct buf)BUF_INIT;
				meta_event(w, "gap", w->cursor, b->last_id);
				buf_add(&w->items, events.p, events.len);
				buf_free(&events);
			}
			bool behind = w->more;
			if (flush_stream(h, w) && behind)
				backlog(h, w);
			continue;
		}
		answer(h, w, w->more ? w->last_match : b->last_id, gap, false, HUB_ANSWERED);
	}
	h->in_round = false;
	close_answered(h);
}

static void collect(struct waiter *w, void *arg)
{
	struct waiter **list = arg;
	if (w->state == WAITER_DRAINING)
		return;
	w->touched_next = *list;
	*list = w;
}

/* Every waiter that waits for messages, as a list (each move() takes it
 * out of the set). Those draining an answer go on draining. */
static struct waiter *all_waiting(struct hub *h)
{
	struct waiter *list = NULL;
	waiter_each(h->set, collect, &list);
	return list;
}

/* The log is behind what this process dispatched: it was replaced. */
static void reset_all(struct hub *h, int64_t last_id)
{
	for (struct waiter *w = all_waiting(h), *next; w; w = next) {
		next = w->touched_next;
		if (w->stream) {
			meta_event(w, "reset", last_id, last_id);
			if (flush_stream(h, w))
				finish(h, w, NULL, 0, HUB_ANSWERED);
		} else {
			answer(h, w, last_id, false, true, HUB_ANSWERED);
		}
	}
}

/* Reads what was committed after h->pos and answers whom it concerns. */
static void deliver(struct hub *h)
{
	char err[256];
	while (waiter_listening(h->set) > 0) {
		struct msglog_batch b;
		struct msglog *log = hub_log(h, err, sizeof err);
		if (!log || msglog_since(log, h->pos, BATCH_ROWS, &b, err, sizeof err) < 0) {
			/* Waiters stay parked; the next doorbell or deadline retries. */
			log_msg("error", 0, "reading the log: %s", err);
			return;
		}
		if (b.last_id < h->pos) {
			reset_all(h, b.last_id);
			h->pos = b.last_id;
			msglog_batch_free(&b);
			return;
		}
		match(h, &b);
		h->pos = b.last_id;
		bool again = b.full;
		msglog_batch_free(&b);
		if (!again)
			return;
	}
}

/* A keepalive interval passed for w. */
static void beat(struct hub *h, struct waiter *w, int64_t now)
{
	bool stuck = conn_pending(w->conn) > 0 &&
		     now - w->moved_at >= (int64_t)h->conf->keepalive * 1000;
	if (w->state == WAITER_DRAINING) {
		if (stuck)
			end(h, w, HUB_DROPPED);
		else
			move(h, w, WAITER_DRAINING, beat_after(h, now));
		return;
	}
	if (!w->stream || now >= w->end) {
		release(h, w, HUB_EXPIRED);
		return;
	}
	if (stuck) {
		end(h, w, HUB_DROPPED);
		return;
	}
	if (w->state == WAITER_BACKLOG) {
		w->deadline = next_beat(h, w, now);
		move(h, w, WAITER_BACKLOG, w->deadline);
		return;
	}
	/* An event EventSource hands only to listeners of "ping": the page
	 * can tell a dead connection from a quiet channel, and no proxy and no
	 * FcgidIOTimeout sees the stream fall silent. */
	static const char ping[] = "event: ping\ndata: {}\n\n";
	const char *p = w->ping ? w->ping : ping;
	if (send_more(h, w, p, strlen(p)) < 0) {
		end(h, w, HUB_HUNGUP);
		return;
	}
	w->deadline = next_beat(h, w, now);
	listen(h, w);
}

static void expire(struct hub *h)
{
	int64_t now = h->now();
	if (waiter_next_deadline(h->set) > now)
		return;
	/* The timed re-check: whatever a killed publisher committed without
	 * ringing is found here, once for the process. */
	deliver(h);
	struct waiter *w, *resumed = NULL;
	while ((w = waiter_expired(h->set, now))) {
		if (w->resume) {
			w->turn_next = resumed;
			resumed = w;
		} else {
			beat(h, w, now);
		}
	}
	/* After the loop: a stream that goes on now may be due again now. */
	for (struct waiter *wn; resumed; resumed = wn) {
		wn = resumed->turn_next;
		resumed->resume = false;
		resumed->deadline = resumed->beat_due;
		settle(h, resumed);
	}
}

/* Shutdown: one last read of the log, then everyone is answered. */
static void stop_all(struct hub *h)
{
	deliver(h);
	for (struct waiter *w = all_waiting(h), *next; w; w = next) {
		next = w->touched_next;
		release(h, w, HUB_SHUTDOWN);
	}
	__atomic_store_n(&h->stopped, 1, __ATOMIC_SEQ_CST);
}

void hub_stop(struct hub *h)
{
	uint64_t one = 1;
	/* Takes in whatever the submitting thread has not rung for yet; it
	 * rings itself for anything it hands over after the flag is set. */
	__atomic_store_n(&h->stop_requested, 1, __ATOMIC_SEQ_CST);
	waiter_queue_ring(&h->queue);
	if (write(h->stopfd, &one, sizeof one) < 0)
		log_msg("error", 0, "hub: stop: %s", strerror(errno));
}

bool hub_end(struct hub *h, long long deadline_ms, bool free_it)
{
	hub_stop(h);
	bool done = thread_join(&h->thread, deadline_ms);
	if (!done) {
		/* What is still being written to slow sockets is given up. */
		uint64_t one = 1;
		__atomic_store_n(&h->quit, 1, __ATOMIC_SEQ_CST);
		if (write(h->stopfd, &one, sizeof one) < 0)
			log_msg("error", 0, "hub: stop: %s", strerror(errno));
		thread_join(&h->thread, 0);
	}
	__atomic_store_n(&h->quit, 1, __ATOMIC_SEQ_CST);
	if (h->notify)
		notify_wake(h->notify);
	thread_join(&h->watcher, 0);
	if (free_it)
		hub_free(h);
	return done;
}

void hub_poll(struct hub *h, int max_wait_ms)
{
	struct epoll_event ev[256];
	int64_t next = waiter_next_deadline(h->set), now = h->now();
	int timeout = next == INT64_MAX ? -1
		      : next <= now ? 0
		      : next - now > INT_MAX ? INT_MAX : (int)(next - now);
	if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms))
		timeout = max_wait_ms;
	int n = epoll_wait(h->ep, ev, 256, timeout);
	bool bell = false, stop = false;
	h->turn_left = TURN_BACKLOG * h->output_max;
	struct waiter *out = NULL;
	for (int i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;
		if (p == &tag_queue) {
			for (struct waiter_qlink *l = waiter_queue_take(&h->queue), *ln; l; l = ln) {
				ln = l->next;
				adopt(h, WAITER_OF(l));
			}
		} else if (p == &tag_stop) {
			uint64_t v;
			if (read(h->stopfd, &v, sizeof v) < 0 && errno != EAGAIN)
				log_msg("error", 0, "stop: %s", strerror(errno));
			stop = true;
		} else if (p == &tag_bell) {
			uint64_t v;
			if (read(h->bell, &v, sizeof v) < 0 && errno != EAGAIN)
				log_msg("error", 0, "doorbell: %s", strerror(errno));
			bell = true;
		} else if (((struct waiter *)p)->state == WAITER_ENDED) {
			continue;
		} else if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			/* The request was read to its end: anything more from the
			 * web server is its hang-up (or an abort). */
			end(h, p, HUB_HUNGUP);
		} else if (ev[i].events & EPOLLOUT) {
			struct waiter *w = p;
			w->turn_next = out;
			out = w;
		}
	}
	if (stop && !h->stopping) {
		h->stopping = 1;
		stop_all(h);
	}
	/* New messages before more of anyone's backlog: a wake-up never
	 * waits behind the sockets that have room. */
	if (bell)
		deliver(h);
	for (struct waiter *w = out, *wn; w; w = wn) {
		wn = w->turn_next;
		writable(h, w);
	}
	expire(h);
	while (h->ended) {
		struct waiter *w = h->ended;
		h->ended = w->ended_next;
		waiter_free(w);
	}
	/* Between turns: what a burst of large answers freed goes back. */
	buf_give_back();
}

void hub_run(struct hub *h)
{
	while (h->threaded || hub_inflight(h) > 0)
		hub_poll(h, -1);
}
