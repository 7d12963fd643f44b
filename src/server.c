/* server: accept loops. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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

/* A connection whose request is still arriving. Every one has the same
 * time limit, so the list, in order of arrival, is in order of deadline. */
struct reading {
	struct conn *c;
	int64_t deadline;
	struct reading *prev, *next;
};

static char tag_listen;		/* the epoll tag of the listening socket */

/* A signal to the process's end, at most (SIGTERM within 2 s). */
#define STOP_MS 1900

/* Connections accepted per readiness of the listening socket, so that
 * requests already arriving get their turn during a herd. */
#define ACCEPT_BATCH 256
/* After running out of descriptors, accepting pauses this long. */
#define ACCEPT_PAUSE_MS 100

struct loop {
	struct app *a;
	int ep, listen_fd;
	size_t body_max;
	struct reading head;	/* sentinel of the circular list */
	unsigned long next_id;
	int64_t paused_until;	/* accepting paused (out of descriptors) */
};

static void unlink_reading(struct loop *l, struct reading *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, conn_fd(r->c), NULL);
	free(r);
}

/* A whole request: served on this thread, which reads it from the log,
 * answers it or hands it to the hub or the group commit; none of them
 * waits on the client. */
static void serve(struct loop *l, struct conn *c)
{
	struct app *a = l->a;
	int idle = SERVE_IDLE;
	if (!__atomic_compare_exchange_n(&a->state, &idle, SERVE_BUSY, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		conn_close(c);	/* exiting: the web server retries elsewhere */
		return;
	}
	handler_serve(a, c);
	__atomic_store_n(&a->state, SERVE_IDLE, __ATOMIC_SEQ_CST);
}

/* Reads what arrived for c; serves it when whole. r: its entry, if any. */
static void feed(struct loop *l, struct conn *c, struct reading *r)
{
	enum conn_fill f = conn_fill(c);
	if (f == CONN_MORE && !r) {
		r = xcalloc(1, sizeof *r);
		r->c = c;
		r->deadline = clock_mono_ms() + l->a->conf.body_timeout * 1000;
		r->prev = l->head.prev;
		r->next = &l->head;
		r->prev->next = r;
		l->head.prev = r;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = r };
		epoll_ctl(l->ep, EPOLL_CTL_ADD, conn_fd(c), &ev);
	}
	if (f == CONN_MORE)
		return;
	if (r)
		unlink_reading(l, r);
	if (f == CONN_READY) {
		serve(l, c);
		return;
	}
	if (conn_error(c)) {
		char why[160];
		log_escape(why, sizeof why, conn_error(c));
		log_msg("error", conn_id(c), "FastCGI: %s", why);
	}
	conn_close(c);
}

static void accept_some(struct loop *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_msg("error", 0, "accept: %s: pausing %d ms", strerror(errno),
					ACCEPT_PAUSE_MS);
				epoll_ctl(l->ep, EPOLL_CTL_DEL, l->listen_fd, NULL);
				l->paused_until = clock_mono_ms() + ACCEPT_PAUSE_MS;
			}
			return;
		}
		/* Most requests are whole by the time they are accepted. */
		feed(l, conn_fcgi(fd, ++l->next_id, l->body_max), NULL);
	}
}

static void listen_again(struct loop *l)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_listen };
	epoll_ctl(l->ep, EPOLL_CTL_ADD, l->listen_fd, &ev);
	l->paused_until = 0;
}

/* Requests whose time to arrive is up: 408, when there is a request to
 * answer; what did arrive is read first, so that the close is clean. */
static void expire(struct loop *l, int64_t now)
{
	while (l->head.next != &l->head && l->head.next->deadline <= now) {
		struct reading *r = l->head.next;
		struct conn *c = r->c;
		enum conn_fill f = conn_fill(c);
		unlink_reading(l, r);
		if (f == CONN_READY) {
			serve(l, c);
		} else if (f == CONN_MORE && conn_begun(c)) {
			log_msg("notice", conn_id(c), "request body not complete after %ld s: 408",
				l->a->conf.body_timeout);
			handler_refuse(l->a, c, 408,
				       "the request body did not arrive in time (COMET_BODY_TIMEOUT)");
		} else {
			conn_close(c);
		}
	}
}

int server_fastcgi(struct app *a, int listen_fd)
{
	char err[256];
	struct loop l = { .a = a, .listen_fd = listen_fd };
	a->threaded = true;
	a->follows = true;
	l.head.next = l.head.prev = &l.head;
	l.body_max = handler_body_max(&a->conf);
	l.ep = epoll_create1(EPOLL_CLOEXEC);
	int fl = fcntl(listen_fd, F_GETFL);
	if (l.ep < 0 || fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		log_msg("error", 0, "listening socket: %s", strerror(errno));
		return 1;
	}
	if (hub_start(&a->hub, &a->conf, true, err, sizeof err) < 0) {
		log_msg("error", 0, "%s", err);
		return 1;
	}
	/* Opened now, not at the first request: a shared log's copy is kept
	 * up to date from the start. A failure is told again per request. */
	if (handler_open(a, err, sizeof err) < 0)
		log_msg("error", 0, "%s", err);
	listen_again(&l);
	struct epoll_event ev[64];
	for (;;) {
		/* Hand-overs of this turn reach the hub with one ring. */
		if (hub_owes(a->hub))
			hub_flush(a->hub);
		int64_t now = clock_mono_ms(), next = INT64_MAX;
		if (l.head.next != &l.head)
			next = l.head.next->deadline;
		if (l.paused_until && l.paused_until < next)
			next = l.paused_until;
		int timeout = next == INT64_MAX ? -1 : next <= now ? 0 : (int)(next - now);
		int n = epoll_wait(l.ep, ev, 64, timeout);
		if (n < 0 && errno != EINTR) {
			log_msg("error", 0, "epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr == &tag_listen) {
				accept_some(&l);
			} else {
				struct reading *r = ev[i].data.ptr;
				feed(&l, r->c, r);
			}
		}
		now = clock_mono_ms();
		if (l.paused_until && l.paused_until <= now)
			listen_again(&l);
		expire(&l, now);
	}
}

int server_cgi(struct app *a)
{
	a->threaded = false;
	a->follows = true;
	handler_serve(a, conn_cgi(environ, 1, handler_body_max(&a->conf)));
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
	long long deadline = clock_wall_ms() + STOP_MS;
	log_msg("notice", 0, "signal %d: answering held requests and exiting", sig);
	/* In order: no new request (the one being served, which takes
	 * microseconds, finishes first); every write handed over committed and
	 * answered; every held request answered and what slow sockets still
	 * take written; the threads joined. Whatever is left at the deadline
	 * (a publish waiting for a lock held elsewhere: not acknowledged, so
	 * not lost) goes with the process. */
	struct timespec tick = { 0, 1000 * 1000 };
	int idle = SERVE_IDLE;
	while (!__atomic_compare_exchange_n(&a->state, &idle, SERVE_EXITING, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
	       clock_wall_ms() < deadline) {
		idle = SERVE_IDLE;
		nanosleep(&tick, NULL);
	}
	struct commit *c = __atomic_load_n(&a->commit, __ATOMIC_SEQ_CST);
	bool committed = !c || commit_end(c, deadline);
	struct hub *h = __atomic_load_n(&a->hub, __ATOMIC_SEQ_CST);
	/* A commit still running may yet hand the hub an answer: the hub is
	 * then joined but not freed. */
	if (h)
		hub_end(h, deadline, committed);
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
