/* hub: the per-process owner of every held request. One thread waits in
 * epoll on: the hand-over queue, a doorbell rung by a watcher thread when
 * the shared sequence moves (a commit in any process), the web server's end
 * of each parked request (hang-up), and the earliest deadline. On the
 * doorbell it reads the new messages from the log once for the whole
 * process and answers every waiter they match; at a deadline it re-reads
 * the log once, then answers the expired waiters empty.
 *
 * Ownership: hub_submit takes the waiter and its request; the hub ends both. */
#ifndef COMET_HUB_H
#define COMET_HUB_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "notify.h"
#include "waiter.h"

struct hub;

/* threaded: the hub runs in a thread of its own; otherwise the caller
 * runs it with hub_run (CGI: one request, then exit). */
int hub_start(struct hub **out, const struct conf *conf, struct notify *n,
	      bool threaded, char *err, size_t errlen);
void hub_submit(struct hub *h, struct waiter *w);
/* Hand-overs may wait to be rung for: the submitting thread calls
 * hub_flush, when hub_owes, before it waits for anything itself. */
bool hub_owes(const struct hub *h);
void hub_flush(struct hub *h);
/* Hand-overs so far (the submitting thread's count). */
unsigned long hub_submitted(const struct hub *h);
/* Runs the loop until every submitted waiter has been answered. */
void hub_run(struct hub *h);

/* Shutdown: answers every held long-poll (empty, so clients come back at
 * once) and ends every stream, now and for any handed over later. Returns
 * when that is done, or after timeout_ms. */
void hub_stop(struct hub *h, int timeout_ms);

#endif
