/* waiter: held subscribers. A waiter is one parked request: its channels,
 * its cursor, its deadline. The set indexes parked waiters by channel (to
 * wake them by channel) and by deadline (a heap, to time them out); it is
 * owned by one thread, the hub's, and takes no lock. The queue is how other
 * threads hand a waiter to the hub: the only lock here.
 *
 * Lifecycle: the accepting thread makes a waiter after finding nothing new
 * for the request and pushes it on the queue; from then on the hub owns it
 * and the request. The hub parks it in the set; it leaves the set when a
 * message on one of its channels arrives, when its deadline passes, or when
 * the web server hangs up; then the hub answers (or drops) the request and
 * frees the waiter. Times are milliseconds on a clock the caller supplies. */
#ifndef COMET_WAITER_H
#define COMET_WAITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct waiter_chan;
struct waiter;

/* A member of a presence channel this subscription makes present (owned
 * strings: its channel, id, and info as JSON text). */
struct waiter_member {
	char *channel, *id, *info;
};

/* The link of anything handed from one thread to another through a
 * waiter_queue (held requests; also publish jobs): embed it, and get back
 * to the container with container_of-style arithmetic. */
struct waiter_qlink {
	struct waiter_qlink *next;
};

struct waiter_link {
	struct waiter_link *prev, *next;	/* waiters of the same channel */
	struct waiter_chan *ch;
	struct waiter *w;
	const char *name;
};

/* Where a waiter is in the hub (hub.c says who moves it when). */
enum waiter_state {
	WAITER_NEW,		/* handed over, not yet adopted */
	WAITER_LISTENING,	/* parked by channel and deadline: waits for messages */
	WAITER_BACKLOG,		/* a stream sent part of its backlog: waits for its socket */
	WAITER_DRAINING,	/* answered: waits for its socket to take the rest */
	WAITER_ENDED,		/* request ended; the waiter is being freed */
	WAITER_NSTATES
};

struct waiter {
	void *conn;		/* the parked request, opaque here */
	enum waiter_state state;
	int64_t cursor;		/* answer with messages after this id */
	int64_t checked;	/* the log was found empty for it through this id */
	int64_t deadline;
	int limit;
	char *callback;		/* JSONP, or NULL */
	char *headers;		/* extra answer header lines (CORS), or NULL */
	bool stream;		/* an event stream: answered many times */
	int64_t end;		/* a stream's end of life */
	size_t heap_idx;
	bool parked;		/* in the deadline heap */
	bool indexed;		/* parked by channel too */
	int why;		/* DRAINING: the end to count once written (hub.h) */
	char *exclude;		/* messages of this origin are not sent (its socket_id) */
	/* A stream of another protocol (Mercure): render appends a message's
	 * event for it to out, or passes the message over (false); ping is
	 * its keepalive; render_free frees render_arg with the waiter. */
	bool (*render)(void *arg, const char *json, size_t n, struct buf *out);
	void *render_arg;
	void (*render_free)(void *arg);
	const char *ping;
	struct waiter_member *members;	/* presence: who this subscription is */
	int nmembers;
	bool joined;		/* its members were counted present (the hub's) */
	bool synced;		/* this host's copy of a shared log was brought up to
				 * it after the request came: a cursor still ahead is
				 * from a log made anew (reset) */
	bool watched;		/* its socket is in the hub's epoll set */
	bool want_out;		/* ... for writability too */
	int64_t moved_at;	/* when output last moved (or began to wait) */
	bool resume;		/* a lagging stream to go on with next turn */
	int64_t beat_due;	/* ... and its deadline meanwhile */
	struct waiter_qlink q;	/* queue link */

	/* Scratch for the hub while it matches one batch against the set. */
	struct waiter *touched_next;
	struct waiter *turn_next;	/* the hub's lists of one turn: writable, resumed */
	struct waiter *ended_next;	/* ended this turn */
	int nmatch;
	bool touched;
	bool more;
	int64_t last_match;
	struct buf items;

	int nchan;
	struct waiter_link links[];
};

struct waiter_set;

/* A waiter on nchan channels (names are copied). */
struct waiter *waiter_new(const char *const *chans, int nchan);
void waiter_free(struct waiter *w);
/* The channel names, for re-reading the log for this waiter. */
void waiter_names(const struct waiter *w, const char **out);

struct waiter_set *waiter_set_new(void);
void waiter_set_free(struct waiter_set *s);
/* Waiters parked (by deadline), and those of them parked by channel. */
size_t waiter_count(const struct waiter_set *s);
size_t waiter_listening(const struct waiter_set *s);

/* Parks w by channel and deadline. */
void waiter_park(struct waiter_set *s, struct waiter *w, int64_t deadline);
/* Parks w by deadline only: it waits for something else than messages. */
void waiter_park_timer(struct waiter_set *s, struct waiter *w, int64_t deadline);
void waiter_unpark(struct waiter_set *s, struct waiter *w);
/* The first link of the waiters on channel name, or NULL. */
struct waiter_link *waiter_on(struct waiter_set *s, const char *name);
/* The earliest deadline, or INT64_MAX when the set is empty. */
int64_t waiter_next_deadline(const struct waiter_set *s);
/* Unparks and returns a waiter whose deadline is <= now, or NULL. */
struct waiter *waiter_expired(struct waiter_set *s, int64_t now);
/* Calls fn on every parked waiter (it must not unpark). */
void waiter_each(struct waiter_set *s, void (*fn)(struct waiter *, void *), void *arg);

/* The waiter a queue link belongs to. */
#define WAITER_OF(link) ((struct waiter *)((char *)(link) - offsetof(struct waiter, q)))

struct waiter_queue {
	pthread_mutex_t mu;
	struct waiter_qlink *head, *tail;
	int efd;		/* eventfd: rung when the queue stops being empty */
};

int waiter_queue_init(struct waiter_queue *q);
void waiter_queue_destroy(struct waiter_queue *q);
/* Appends l and rings if the queue was empty. */
void waiter_queue_push(struct waiter_queue *q, struct waiter_qlink *l);
/* Appends l without ringing; true if the queue was empty, when the caller
 * owes a waiter_queue_ring (the reader may not look before it). */
bool waiter_queue_push_quiet(struct waiter_queue *q, struct waiter_qlink *l);
void waiter_queue_ring(struct waiter_queue *q);
/* Takes everything queued, oldest first (linked by next), or NULL. */
struct waiter_qlink *waiter_queue_take(struct waiter_queue *q);

#endif
