/* hub: parked requests, wake-ups and deadlines of one process. */
#include "config.h"

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
#include "conn.h"
#include "hub.h"
#include "log.h"
#include "msglog.h"
#include "reply.h"
#include "thread.h"
#include "request.h"

/* Rows read from the log per round; a longer backlog takes more rounds. */
#define BATCH_ROWS 1000

struct hub {
	const struct conf *conf;
	struct notify *notify;
	struct msglog *log;		/* the hub thread's own connection */
	struct waiter_set *set;
	struct waiter_queue queue;
	int ep;
	int bell;			/* eventfd rung by the watcher */
	int stopfd;			/* eventfd: shut down */
	int stopping, stopped;		/* set by the hub thread; read by hub_stop */
	uint32_t seen;			/* sequence value the watcher starts from */
	int64_t pos;			/* the log is dispatched through this id */
	long inflight;			/* submitted and not yet ended */
	int *closing;			/* answered sockets match() closes last */
	size_t nclosing, capclosing;
	/* Within one match(): the last answer rendered, and what it was
	 * rendered from. Waiters that matched the same messages from the same
	 * place get the same bytes (no JSONP callback, no extra headers). */
	struct buf shared, shared_items;
	int64_t shared_last;
	bool shared_more, shared_gap, shared_ok;
	bool threaded;			/* runs for ever in its own thread */
	int stop_requested;		/* set by hub_stop before it rings */
	/* The submitting thread's own: */
	bool owed;			/* pushed onto an empty queue, not rung */
	int unrung;			/* hand-overs since the last ring */
	unsigned long submitted;	/* hand-overs in all */
};

/* At most this many hand-overs wait for one ring (a bound on how late the
 * hub sees a subscriber in a long burst of them). */
#define HANDOVER_BATCH 64

static char tag_queue, tag_bell, tag_stop;	/* epoll tags besides waiters */

static void *watch_main(void *arg)
{
	struct hub *h = arg;
	uint32_t seen = h->seen;
	for (;;) {
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

static void *hub_main(void *arg)
{
	hub_run(arg);
	return NULL;
}

int hub_start(struct hub **out, const struct conf *conf, struct notify *n,
	      bool threaded, char *err, size_t errlen)
{
	struct hub *h = xcalloc(1, sizeof *h);
	h->conf = conf;
	h->notify = n;
	h->threaded = threaded;
	/* Read before any waiter is handed over: a commit the hand-over's
	 * re-check cannot see has its bump after this, so it rings. */
	h->seen = notify_seq(n);
	h->set = waiter_set_new();
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	h->bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->ep < 0 || h->bell < 0 || h->stopfd < 0 || waiter_queue_init(&h->queue) < 0) {
		snprintf(err, errlen, "hub: %s", strerror(errno));
		return -1;
	}
	if (msglog_open(&h->log, conf->db, conf->sync_full, err, errlen) < 0)
		return -1;
	msglog_retention(h->log, conf->retain, conf->retain_seconds);
	struct epoll_event ev = { .events = EPOLLIN };
	ev.data.ptr = &tag_queue;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, h->queue.efd, &ev);
	ev.data.ptr = &tag_bell;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, h->bell, &ev);
	ev.data.ptr = &tag_stop;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, h->stopfd, &ev);
	/* SQLite needs about 100 KB of stack; the watcher almost none. */
	int rc = thread_spawn(watch_main, h, 64);
	if (rc == 0 && threaded)
		rc = thread_spawn(hub_main, h, 256);
	if (rc) {
		snprintf(err, errlen, "hub: pthread_create: %s", strerror(rc));
		return -1;
	}
	*out = h;
	return 0;
}

/* A burst of subscribes reaches the hub with one wake-up, not one each: a
 * wake-up of the hub also preempts this thread, and the herd of
 * re-subscribes after a fan-out must be accepted as fast as it comes (see
 * listen-backlog in lighttpd/comet-fcgi.conf). Delaying the ring is safe:
 * a waiter's re-check in adopt() covers commits between its check and its
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

/* Takes w out of the set; the caller ends its request, and the close of
 * its socket (held by no one else) takes it out of epoll. */
static void retire(struct hub *h, struct waiter *w)
{
	if (w->parked)
		waiter_unpark(h->set, w);
	notify_waiting(h->notify, -1);
}

static void finished(struct hub *h, struct waiter *w)
{
	waiter_free(w);
	__atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
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

/* Answers a long-poll with what w has collected, and ends it. With
 * in_round (match()) its socket is closed by close_answered() and its
 * answer may be shared with the others of the round. */
static void answer_as(struct hub *h, struct waiter *w, int64_t last_id, bool gap, bool reset,
		      bool in_round)
{
	struct buf out = BUF_INIT;
	bool plain = in_round && !reset && !w->callback && !w->headers;
	const struct buf *ans = render(h, w, last_id, gap, reset, plain, &out);
	if (in_round) {
		int fd = conn_finish_open(w->conn, ans->p, ans->len);
		if (fd >= 0) {
			if (h->nclosing == h->capclosing) {
				h->capclosing = h->capclosing ? 2 * h->capclosing : 256;
				h->closing = xrealloc(h->closing, h->capclosing * sizeof *h->closing);
			}
			h->closing[h->nclosing++] = fd;
		}
	} else {
		conn_finish(w->conn, ans->p, ans->len);
	}
	w->conn = NULL;
	buf_free(&out);
	notify_delivered(h->notify, (uint64_t)w->nmatch);
	finished(h, w);
}

static void answer(struct hub *h, struct waiter *w, int64_t last_id, bool gap, bool reset)
{
	answer_as(h, w, last_id, gap, reset, false);
}

/* Ends a round of answer_as(.., in_round): closes the sockets it left open
 * (before the next epoll_wait, which could otherwise report events of
 * them for freed waiters) and forgets the shared answer. */
static void close_answered(struct hub *h)
{
	for (size_t i = 0; i < h->nclosing; i++)
		close(h->closing[i]);
	h->nclosing = 0;
	h->shared_ok = false;
}

/* Ends w's request as it stands (a stream that has run its course, whose
 * EventSource resumes from its Last-Event-ID; or a peer that is gone). */
static void end_request(struct hub *h, struct waiter *w)
{
	conn_close(w->conn);
	w->conn = NULL;
	finished(h, w);
}

/* Writes a stream's pending events (w->items); false when the peer is gone. */
static bool flush_stream(struct hub *h, struct waiter *w)
{
	bool ok = w->items.len == 0 || conn_send(w->conn, w->items.p, w->items.len) == 0;
	notify_delivered(h->notify, (uint64_t)w->nmatch);
	if (w->nmatch)
		w->cursor = w->last_match;
	buf_reset(&w->items);
	w->nmatch = 0;
	w->more = false;
	return ok;
}

static void fail(struct hub *h, struct waiter *w, const char *why)
{
	struct buf out = BUF_INIT;
	log_msg("error", conn_id(w->conn), "storage unavailable: %s", why);
	if (w->stream) {
		end_request(h, w);	/* headers went out already; the client resumes */
		return;
	}
	reply_error(&out, 503, "storage unavailable", w->callback, w->headers);
	conn_finish(w->conn, out.p, out.len);
	w->conn = NULL;
	buf_free(&out);
	finished(h, w);
}

/* Ends a retired waiter that has nothing new: an empty answer (its
 * cursor moved to what this process has read), or the end of its stream. */
static void release(struct hub *h, struct waiter *w)
{
	if (w->stream)
		end_request(h, w);
	else
		answer(h, w, h->pos > w->cursor ? h->pos : w->cursor, false, false);
}

/* Adds one message to what w will be sent. */
static void add_message(struct waiter *w, int64_t id, const char *json, size_t n)
{
	if (w->stream) {
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
	char meta[64];
	int n = snprintf(meta, sizeof meta, "{\"last_id\":%lld}", (long long)last_id);
	reply_sse_event(&w->items, name, id, meta, (size_t)n);
}

/* Catches w up with the log from its cursor: true when w was answered (a
 * long-poll) or ended (a stream that is gone or reset); false when it is
 * to be parked, with w->checked set. A stream is sent what it missed. */
static bool catch_up(struct hub *h, struct waiter *w)
{
	char err[256];
	const char *names[REQ_MAX_CHANNELS];
	waiter_names(w, names);
	for (;;) {
		struct msglog_page pg = { 0 };
		if (msglog_read(h->log, names, w->nchan, w->cursor,
				w->stream ? REQ_MAX_LIMIT : w->limit, &pg, err, sizeof err) < 0) {
			msglog_page_free(&pg);
			fail(h, w, err);
			return true;
		}
		if (!w->stream) {
			if (pg.count || pg.gap || pg.reset) {
				buf_add(&w->items, pg.items.p, pg.items.len);
				w->nmatch = pg.count;
				w->more = pg.more;
				answer(h, w, pg.last_id, pg.gap, pg.reset);
				msglog_page_free(&pg);
				return true;
			}
			w->checked = pg.log_last;
			msglog_page_free(&pg);
			return false;
		}
		if (pg.reset) {
			meta_event(w, "reset", pg.last_id, pg.last_id);
			flush_stream(h, w);
			msglog_page_free(&pg);
			end_request(h, w);
			return true;
		}
		if (pg.gap)
			meta_event(w, "gap", w->cursor, pg.last_id);
		for (int i = 0; i < pg.count; i++)
			add_message(w, pg.item[i].id, pg.items.p + pg.item[i].off, pg.item[i].len);
		bool ok = flush_stream(h, w);
		w->cursor = pg.last_id;
		bool more = pg.more;
		w->checked = pg.log_last;
		msglog_page_free(&pg);
		if (!ok) {
			end_request(h, w);
			return true;
		}
		if (!more)
			return false;
	}
}

/* A waiter handed over by the accepting thread, which found nothing for it
 * in the log through w->checked (a stream: has sent nothing yet). */
static void adopt(struct hub *h, struct waiter *w)
{
	if (h->stopping) {
		release(h, w);
		return;
	}
	/* With nothing parked, h->pos may lag doorbells that found nobody; and a
	 * round may have passed w->checked. Either way read again for w. */
	if (w->stream || waiter_count(h->set) == 0 || h->pos > w->checked) {
		if (catch_up(h, w))
			return;
		if (waiter_count(h->set) == 0)
			h->pos = w->checked;
	}
	waiter_park(h->set, w, w->deadline);
	int fd = conn_fd(w->conn);
	if (fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		ev.data.ptr = w;
		epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev);
	}
	notify_waiting(h->notify, 1);
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

static void match(struct hub *h, const struct msglog_batch *b)
{
	struct waiter *touched = NULL;
	for (int r = 0; r < b->n; r++) {
		const struct msglog_row *row = &b->rows[r];
		for (struct waiter_link *l = waiter_on(h->set, row->channel); l; l = l->next) {
			struct waiter *w = l->w;
			if (row->id <= w->cursor)
				continue;
			if (w->nmatch == w->limit) {
				w->more = true;
				continue;
			}
			if (w->nmatch == 0) {
				w->touched_next = touched;
				touched = w;
			}
			add_message(w, row->id, row->json, row->jsonlen);
		}
	}
	while (touched) {
		struct waiter *w = touched;
		touched = w->touched_next;
		bool gap = has_gap(w, b);
		if (w->stream) {
			if (gap) {
				struct buf events = w->items;
				w->items = (struct buf)BUF_INIT;
				meta_event(w, "gap", w->cursor, b->last_id);
				buf_add(&w->items, events.p, events.len);
				buf_free(&events);
			}
			if (!flush_stream(h, w)) {
				retire(h, w);
				end_request(h, w);
			}
			continue;
		}
		retire(h, w);
		answer_as(h, w, w->more ? w->last_match : b->last_id, gap, false, true);
	}
	close_answered(h);
}

static void collect(struct waiter *w, void *arg)
{
	struct waiter **list = arg;
	w->touched_next = *list;
	*list = w;
}

/* Takes every parked waiter out of the set; returns them as a list. */
static struct waiter *retire_all(struct hub *h)
{
	struct waiter *list = NULL;
	waiter_each(h->set, collect, &list);
	for (struct waiter *w = list; w; w = w->touched_next)
		retire(h, w);
	return list;
}

/* The log is behind what this process dispatched: it was replaced. */
static void reset_all(struct hub *h, int64_t last_id)
{
	for (struct waiter *w = retire_all(h), *next; w; w = next) {
		next = w->touched_next;
		if (w->stream) {
			meta_event(w, "reset", last_id, last_id);
			flush_stream(h, w);
			end_request(h, w);
		} else {
			answer(h, w, last_id, false, true);
		}
	}
}

/* Reads what was committed after h->pos and answers whom it concerns. */
static void deliver(struct hub *h)
{
	char err[256];
	while (waiter_count(h->set) > 0) {
		struct msglog_batch b;
		if (msglog_since(h->log, h->pos, BATCH_ROWS, &b, err, sizeof err) < 0) {
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

static int64_t next_beat(const struct hub *h, const struct waiter *w, int64_t now)
{
	int64_t beat = now + (int64_t)h->conf->keepalive * 1000;
	return beat < w->end ? beat : w->end;
}

static void expire(struct hub *h)
{
	int64_t now = clock_mono_ms();
	if (waiter_next_deadline(h->set) > now)
		return;
	/* The timed re-check: whatever a killed publisher committed without
	 * ringing is found here, once for the process. */
	deliver(h);
	struct waiter *w;
	while ((w = waiter_expired(h->set, now))) {
		if (w->stream && now < w->end) {
			/* A named event, so that no proxy and no FcgidIOTimeout
			 * sees the stream fall silent, and so that a client can
			 * tell a dead connection from a quiet channel (EventSource
			 * hands it only to listeners of "ping"). */
			static const char beat[] = "event: ping\ndata: {}\n\n";
			if (conn_send(w->conn, beat, sizeof beat - 1) == 0) {
				waiter_park(h->set, w, next_beat(h, w, now));
				continue;
			}
			retire(h, w);
			end_request(h, w);
			continue;
		}
		retire(h, w);
		release(h, w);
	}
}

/* Shutdown: one last read of the log, then everyone is answered. */
static void stop_all(struct hub *h)
{
	deliver(h);
	for (struct waiter *w = retire_all(h), *next; w; w = next) {
		next = w->touched_next;
		release(h, w);
	}
	__atomic_store_n(&h->stopped, 1, __ATOMIC_SEQ_CST);
}

void hub_stop(struct hub *h, int timeout_ms)
{
	uint64_t one = 1;
	/* Takes in whatever the submitting thread has not rung for yet; it
	 * rings itself for anything it hands over after the flag is set. */
	__atomic_store_n(&h->stop_requested, 1, __ATOMIC_SEQ_CST);
	waiter_queue_ring(&h->queue);
	if (write(h->stopfd, &one, sizeof one) < 0)
		return;
	struct timespec tick = { 0, 5 * 1000 * 1000 };
	for (int waited = 0; waited < timeout_ms && !__atomic_load_n(&h->stopped, __ATOMIC_SEQ_CST);
	     waited += 5)
		nanosleep(&tick, NULL);
}

static void hangup(struct hub *h, struct waiter *w)
{
	retire(h, w);
	end_request(h, w);
}

void hub_run(struct hub *h)
{
	struct epoll_event ev[256];
	while (h->threaded || __atomic_load_n(&h->inflight, __ATOMIC_SEQ_CST) > 0) {
		int64_t next = waiter_next_deadline(h->set), now = clock_mono_ms();
		int timeout = next == INT64_MAX ? -1
			      : next <= now ? 0
			      : next - now > INT_MAX ? INT_MAX : (int)(next - now);
		int n = epoll_wait(h->ep, ev, 256, timeout);
		bool bell = false, stop = false;
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
			} else {
				hangup(h, p);
			}
		}
		/* Waiters are ended only after the whole batch: an event later in
		 * it may belong to one of them. */
		if (stop && !h->stopping) {
			h->stopping = 1;
			stop_all(h);
		}
		if (bell)
			deliver(h);
		expire(h);
	}
}
