/* server: accept loops. */
#include "config.h"

#include <fcgiapp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "thread.h"
#include "commit.h"
#include "hub.h"

extern char **environ;

static bool pending(int listen_fd)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

int server_fastcgi(struct app *a, int listen_fd)
{
	a->threaded = true;
	bool handed_over = false;	/* the last request was held */
	for (unsigned long id = 1;; id++) {
		/* The hub is rung for a burst of hand-overs when the burst is
		 * over: when this thread is about to wait for a connection, or
		 * serves anything but another subscriber (at most
		 * HANDOVER_BATCH of those, see hub.c). */
		if (a->hub && hub_owes(a->hub) && (!handed_over || !pending(listen_fd)))
			hub_flush(a->hub);
		/* A fresh request per connection: a held one stays parked in the
		 * hub while this thread accepts the next. */
		FCGX_Request *r = xmalloc(sizeof *r);
		if (FCGX_InitRequest(r, listen_fd, 0) != 0) {
			free(r);
			log_msg("error", 0, "FCGX_InitRequest failed");
			return 1;
		}
		int rc = FCGX_Accept_r(r);
		if (rc < 0) {
			free(r);
			log_msg("notice", 0, "accept ended (%d): exiting", rc);
			return 0;
		}
		struct conn *c = conn_fcgx(r, id);
		int idle = SERVE_IDLE;
		if (!__atomic_compare_exchange_n(&a->state, &idle, SERVE_BUSY, false,
						 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			conn_close(c);	/* exiting: the web server retries elsewhere */
			continue;
		}
		unsigned long before = a->hub ? hub_submitted(a->hub) : 0;
		handler_serve(a, c);
		handed_over = a->hub && hub_submitted(a->hub) != before;
		__atomic_store_n(&a->state, SERVE_IDLE, __ATOMIC_SEQ_CST);
	}
}

int server_cgi(struct app *a)
{
	a->threaded = false;
	handler_serve(a, conn_cgi(environ, 1));
	return 0;
}

static void *stopper(void *arg)
{
	struct app *a = arg;
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	while (sigwait(&set, &sig) != 0)
		;
	int64_t start = clock_mono_ms();
	log_msg("notice", 0, "signal %d: answering held requests and exiting", sig);
	struct hub *h = __atomic_load_n(&a->hub, __ATOMIC_SEQ_CST);
	if (h)
		hub_stop(h, 1500);
	/* A request in progress, and the publishes handed to the group commit,
	 * finish first; no new request is taken meanwhile. */
	struct timespec tick = { 0, 5 * 1000 * 1000 };
	bool exiting = false;
	while (clock_mono_ms() - start < 1900) {
		int idle = SERVE_IDLE;
		if (!exiting)
			exiting = __atomic_compare_exchange_n(&a->state, &idle, SERVE_EXITING, false,
							      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		struct commit *c = __atomic_load_n(&a->commit, __ATOMIC_SEQ_CST);
		if (exiting && (!c || commit_pending(c) == 0))
			break;
		nanosleep(&tick, NULL);
	}
	_exit(0);
}

int server_signals(struct app *a)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return thread_spawn(stopper, a, 64) ? -1 : 0;
}
