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
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "hub.h"
#include "log.h"
#include "msglog.h"
#include "reply.h"
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
	uint32_t seen;			/* sequence value the watcher starts from */
	int64_t pos;			/* the log is dispatched through this id */
	long inflight;			/* submitted and not yet ended */
	bool threaded;			/* runs for ever in its own thread */
};

static char tag_queue, tag_bell;	/* epoll tags besides waiters */

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

static int spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	/* Neither thread recurses or keeps big frames; SQLite needs ~100 KB. */
	pthread_attr_setstacksize(&at, 256 * 1024);
	int rc = pthread_create(&t, &at, fn, arg);
	pthread_attr_destroy(&at);
	return rc;
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
	if (h->ep < 0 || h->bell < 0 || waiter_queue_init(&h->queue) < 0) {
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
	int rc = spawn(watch_main, h);
	if (rc == 0 && threaded)
		rc = spawn(hub_main, h);
	if (rc) {
		snprintf(err, errlen, "hub: pthread_create: %s", strerror(rc));
		return -1;
	}
	*out = h;
	return 0;
}

void hub_submit(struct hub *h, struct waiter *w)
{
	__atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
	waiter_queue_push(&h->queue, w);
}

void hub_answer(struct waiter *w, int64_t last_id, bool gap, bool reset)
{
	struct buf body = BUF_INIT, out = BUF_INIT;
	reply_sub(&body, last_id, w->items.p, w->items.len, w->more, gap, reset);
	reply_json(&out, 200, body.p, body.len, w->callback, NULL);
	if (conn_send(w->conn, out.p, out.len) < 0)
		conn_abort(w->conn);
	else
		conn_close(w->conn);
	w->conn = NULL;
	buf_free(&body);
	buf_free(&out);
}

/* Takes w out of the set and of epoll; the caller ends its request. */
static void retire(struct hub *h, struct waiter *w)
{
	if (w->parked)
		waiter_unpark(h->set, w);
	int fd = conn_fd(w->conn);
	if (fd >= 0)
		epoll_ctl(h->ep, EPOLL_CTL_DEL, fd, NULL);
	notify_waiting(h->notify, -1);
}

static void finished(struct hub *h, struct waiter *w)
{
	waiter_free(w);
	__atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
}

static void answer(struct hub *h, struct waiter *w, int64_t last_id, bool gap, bool reset)
{
	notify_delivered(h->notify, (uint64_t)w->nmatch);
	hub_answer(w, last_id, gap, reset);
	finished(h, w);
}

static void fail(struct hub *h, struct waiter *w, const char *why)
{
	struct buf out = BUF_INIT;
	log_msg("error", conn_id(w->conn), "storage unavailable: %s", why);
	reply_error(&out, 503, "storage unavailable", w->callback, NULL);
	if (conn_send(w->conn, out.p, out.len) < 0)
		conn_abort(w->conn);
	else
		conn_close(w->conn);
	buf_free(&out);
	finished(h, w);
}

/* A waiter handed over by the accepting thread, which found nothing for it
 * in the log through w->checked. */
static void adopt(struct hub *h, struct waiter *w)
{
	char err[256];
	/* With nothing parked, h->pos may lag doorbells that found nobody; and a
	 * round may have passed w->checked. Either way read again for w. */
	if (waiter_count(h->set) == 0 || h->pos > w->checked) {
		const char *names[REQ_MAX_CHANNELS];
		struct msglog_page pg = { 0 };
		waiter_names(w, names);
		if (msglog_read(h->log, names, w->nchan, w->cursor, w->limit, &pg,
				err, sizeof err) < 0) {
			msglog_page_free(&pg);
			fail(h, w, err);
			return;
		}
		if (pg.count || pg.gap || pg.reset) {
			buf_add(&w->items, pg.items.p, pg.items.len);
			w->nmatch = pg.count;
			w->more = pg.more;
			answer(h, w, pg.last_id, pg.gap, pg.reset);
			msglog_page_free(&pg);
			return;
		}
		w->checked = pg.log_last;
		if (waiter_count(h->set) == 0)
			h->pos = pg.log_last;
		msglog_page_free(&pg);
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
			if (w->nmatch++)
				buf_addc(&w->items, ',');
			else {
				w->touched_next = touched;
				touched = w;
			}
			buf_add(&w->items, row->json, row->jsonlen);
			w->last_match = row->id;
		}
	}
	while (touched) {
		struct waiter *w = touched;
		touched = w->touched_next;
		retire(h, w);
		answer(h, w, w->more ? w->last_match : b->last_id, has_gap(w, b), false);
	}
}

static void reset_one(struct waiter *w, void *arg)
{
	struct waiter **list = arg;
	w->touched_next = *list;
	*list = w;
}

/* The log is behind what this process dispatched: it was replaced. */
static void reset_all(struct hub *h, int64_t last_id)
{
	struct waiter *list = NULL;
	waiter_each(h->set, reset_one, &list);
	while (list) {
		struct waiter *w = list;
		list = w->touched_next;
		retire(h, w);
		answer(h, w, last_id, false, true);
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
		retire(h, w);
		answer(h, w, h->pos > w->cursor ? h->pos : w->cursor, false, false);
	}
}

static void hangup(struct hub *h, struct waiter *w)
{
	retire(h, w);
	conn_abort(w->conn);
	w->conn = NULL;
	finished(h, w);
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
		bool bell = false;
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;
			if (p == &tag_queue) {
				for (struct waiter *w = waiter_queue_take(&h->queue), *wn; w; w = wn) {
					wn = w->qnext;
					adopt(h, w);
				}
			} else if (p == &tag_bell) {
				uint64_t v;
				if (read(h->bell, &v, sizeof v) < 0 && errno != EAGAIN)
					log_msg("error", 0, "doorbell: %s", strerror(errno));
				bell = true;
			} else {
				hangup(h, p);
			}
		}
		if (bell)
			deliver(h);
		expire(h);
	}
}
