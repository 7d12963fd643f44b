/* conn: one request and its answer channel, over FastCGI (a heap
 * FCGX_Request from libfcgi) or CGI (the process's environment, stdin and
 * stdout).
 *
 * Lifecycle: made by the accepting thread; owned by whoever holds it next
 * (the handler, then the hub when held); ended exactly once, by conn_close
 * or conn_finish, after an answer or when the peer went away. A request to
 * be held is parked first (conn_park): its body has been read, libfcgi's
 * buffers and parameters are freed, and from then on its answer is written
 * as FastCGI records on the bare socket, each send one write(). */
#ifndef COMET_CONN_H
#define COMET_CONN_H

#include <fcgiapp.h>
#include <stddef.h>

struct conn;

struct conn *conn_fcgx(FCGX_Request *r, unsigned long id);
struct conn *conn_cgi(char **envp, unsigned long id);

unsigned long conn_id(const struct conn *c);
/* A request parameter; NULL when absent or once the request is parked. */
const char *conn_param(const struct conn *c, const char *name);

/* Reads up to n bytes of the request body: bytes read, 0 at its end, -1. */
long conn_read(struct conn *c, char *buf, size_t n);
/* Reads and drops what is left of the body (at most `max` bytes). */
void conn_drain(struct conn *c, size_t max);

/* Reads the body to its end and lets go of everything but the socket:
 * a held request costs a few dozen bytes here, not libfcgi's ~17 KB. */
void conn_park(struct conn *c);

/* Writes all of p: 0 or -1 (peer gone, or not reading for 5 s). */
int conn_send(struct conn *c, const void *p, size_t n);

/* The descriptor that turns readable when the web server hangs up; -1 when
 * there is none (CGI). Only meaningful once parked. */
int conn_fd(const struct conn *c);

/* Ends the request, answered or not (the peer may be gone), and frees c. */
void conn_close(struct conn *c);
/* Sends the last bytes of the answer and ends the request, in one write
 * when parked; frees c. */
void conn_finish(struct conn *c, const void *p, size_t n);
/* conn_finish for a parked request, but leaves closing its socket to the
 * caller: returns the descriptor to close (-1 when there is none). A
 * fan-out writes every answer before it pays for any close, and the web
 * server, which has the whole answer, closes first. The caller must close
 * it before it next waits on events for it. */
int conn_finish_open(struct conn *c, const void *p, size_t n);

#endif
