/* conn: one request and its answer channel, over FastCGI (a heap
 * FCGX_Request that may be parked and finished later from another thread)
 * or CGI (the process's environment, stdin and stdout).
 *
 * Lifecycle: made by the accepting thread; owned by whoever holds it next
 * (the handler, then the hub when parked); ended exactly once, by
 * conn_close, after an answer or when the peer went away. */
#ifndef COMET_CONN_H
#define COMET_CONN_H

#include <fcgiapp.h>
#include <stddef.h>

struct conn;

struct conn *conn_fcgx(FCGX_Request *r, unsigned long id);
struct conn *conn_cgi(char **envp, unsigned long id);

unsigned long conn_id(const struct conn *c);
const char *conn_param(const struct conn *c, const char *name);

/* Reads up to n bytes of the request body: bytes read, 0 at its end, -1. */
long conn_read(struct conn *c, char *buf, size_t n);
/* Reads and drops what is left of the body (at most `max` bytes). */
void conn_drain(struct conn *c, size_t max);

/* Writes all of p and flushes: 0 or -1 (peer gone). */
int conn_send(struct conn *c, const void *p, size_t n);

/* The descriptor that turns readable when the web server hangs up; -1 when
 * there is none (CGI). Only valid once the body has been read to its end. */
int conn_fd(const struct conn *c);

/* Ends the request, answered or not (the peer may be gone), and frees c. */
void conn_close(struct conn *c);

#endif
