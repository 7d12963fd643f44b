/* hub: the per-process owner of every held request and of every answer
 * still being written. One thread waits in epoll on: the hand-over queue, a
 * doorbell rung by a watcher thread when the shared sequence moves (a
 * commit in any process), the web server's end of each parked request
 * (hang-up, and writability while output waits), and the earliest
 * deadline. On the doorbell it reads the new messages from the log once for
 * the whole process and answers every waiter they match; at a deadline it
 * re-reads the log once, then answers the expired waiters empty.
 *
 * Lifecycle of a held request (waiter.h names the states): handed over
 * (NEW); adopted: caught up with the log from its cursor, then LISTENING
 * (parked by channel and deadline), or for a stream whose socket lags,
 * BACKLOG (it reads the rest from the log as its socket drains); answered:
 * ended at once, or DRAINING while its socket takes the rest. Every change
 * of state goes through one function, move() in hub.c, which refuses a
 * move its table does not allow, takes the waiter out of where the old
 * state kept it and keeps the counts of each state (waiting, draining);
 * every way out (enum hub_end) goes through end(), which counts it by
 * reason. A socket that takes nothing
 * for COMET_KEEPALIVE seconds while output waits is dropped; no waiter ever
 * holds more than about COMET_OUTPUT_MAX bytes unsent.
 *
 * Ownership: hub_submit and hub_answer take the request; the hub ends it. */
#ifndef COMET_HUB_H
#define COMET_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "conn.h"
#include "notify.h"
#include "waiter.h"

struct hub;

/* How a request leaves the hub, counted by reason (notify, metrics). */
enum hub_end {
	HUB_ANSWERED,	/* its whole answer was written */
	HUB_EXPIRED,	/* a long-poll's timeout or a stream's lifetime ran out */
	HUB_FAILED,	/* storage failed under it (a long-poll is answered 503) */
	HUB_HUNGUP,	/* the web server closed, or a write failed */
	HUB_DROPPED,	/* it left output unread for COMET_KEEPALIVE */
	HUB_SHUTDOWN,	/* answered (empty) or ended at shutdown */
	HUB_NEND
};
extern const char *const hub_end_names[HUB_NEND];

/* threaded: the hub runs in a thread of its own; otherwise the caller
 * runs it with hub_run (CGI: one request, then exit). */
int hub_start(struct hub **out, const struct conf *conf, bool threaded,
	      char *err, size_t errlen);
/* Before the first hub_submit: the wake-ups to follow (starts the watcher
 * thread). The submitting thread's; idempotent. */
int hub_attach(struct hub *h, struct notify *n, char *err, size_t errlen);
void hub_submit(struct hub *h, struct waiter *w);
/* hub_submit from any other thread (the commit thread hands on the
 * subscribers it synced for): rung at once. */
void hub_submit_any(struct hub *h, struct waiter *w);
/* Answers c with the whole of p, from any thread: what its socket does not
 * take at once is written by the hub as it drains. h may be NULL (CGI). */
void hub_answer(struct hub *h, struct conn *c, const void *p, size_t n);
/* Presence: fn(arg, members, n, delta) is called (on the hub's thread)
 * when a subscriber with members is adopted (delta 1) and when it ends
 * (-1). Set before the first such subscriber is handed over. */
typedef void (*hub_presence_fn)(void *arg, const struct waiter_member *m, int n, int delta);
void hub_set_presence(struct hub *h, hub_presence_fn fn, void *arg);
/* Hand-overs may wait to be rung for: the submitting thread calls
 * hub_flush, when hub_owes, before it waits for anything itself. */
bool hub_owes(const struct hub *h);
void hub_flush(struct hub *h);
/* Hand-overs so far (the submitting thread's count). */
unsigned long hub_submitted(const struct hub *h);
/* Runs the loop until every submitted waiter has been answered. */
void hub_run(struct hub *h);
/* One turn of the loop: waits at most max_wait_ms (-1: until the next
 * deadline) for events, handles them. For hub_run and the tests. */
void hub_poll(struct hub *h, int max_wait_ms);
/* Requests submitted and not yet ended. */
long hub_inflight(const struct hub *h);
/* The clock for deadlines (monotonic ms); the tests drive their own. */
void hub_set_clock(struct hub *h, int64_t (*now)(void));

/* Shutdown: the hub answers every held long-poll (empty, so clients come
 * back at once) and ends every stream, now and for any handed over later.
 * Returns at once; the hub's own thread does it. */
void hub_stop(struct hub *h);
/* hub_stop, then joins the hub's threads: once every request has ended
 * (answers to slow sockets written to their end), or at deadline_ms
 * (CLOCK_REALTIME milliseconds; 0: no deadline), when what is still being
 * written is given up. Frees h with free_it (nothing may hand it a request
 * any more). True when everything ended in time. */
bool hub_end(struct hub *h, long long deadline_ms, bool free_it);

#endif
