/* conn: one request and its answer, over FastCGI (a socket this process
 * accepted, read and written without ever blocking) or CGI (the process's
 * environment, stdin and stdout, blocking: a CGI process serves no one else).
 *
 * Lifecycle: the server loop makes a FastCGI conn for an accepted socket and
 * feeds it with conn_fill as bytes arrive, until the request is whole
 * (parameters and body); then whoever holds it answers it: the handler, the
 * commit thread, or the hub for a held request (conn_park first drops what
 * only reading needed). Output goes through a queue: what the socket does
 * not take at once waits there (conn_pending) and conn_flush writes more of
 * it when the socket drains, which only the hub waits for. conn_close ends
 * the request in whatever state it is, exactly once. */
#ifndef COMET_CONN_H
#define COMET_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct conn;

enum conn_fill { CONN_MORE, CONN_READY, CONN_GONE };

/* fd: an accepted, non-blocking socket. body_max: body bytes kept; more
 * are read and dropped (conn_body says so). */
struct conn *conn_fcgi(int fd, unsigned long id, size_t body_max);
struct conn *conn_cgi(char **envp, unsigned long id, size_t body_max);

/* Reads what the socket has: CONN_READY once the request is whole,
 * CONN_MORE to be called again when the socket is readable, CONN_GONE when
 * the peer left or broke the protocol (conn_error says how, or NULL). */
enum conn_fill conn_fill(struct conn *c);
const char *conn_error(const struct conn *c);
/* A request has begun on it (there is a request to answer). */
bool conn_begun(const struct conn *c);

unsigned long conn_id(const struct conn *c);
/* The request's parameters were too large to keep (none are there): it is
 * to be refused, 431. */
bool conn_params_over(const struct conn *c);
/* A request parameter; NULL when absent or once the request is parked. */
const char *conn_param(const struct conn *c, const char *name);
/* The request body (CGI: read now, up to CONTENT_LENGTH); *overflow when it
 * was longer than body_max. NULL when it could not be read whole. */
const struct buf *conn_body(struct conn *c, bool *overflow);

/* Drops the parameters and the body: a held request keeps its socket and
 * its output queue only. */
void conn_park(struct conn *c);

/* Sends p as answer bytes: written, or queued for conn_flush. 0, or -1
 * when the peer is gone. */
int conn_send(struct conn *c, const void *p, size_t n);
/* conn_send of the last bytes, and the end of the request. */
int conn_answer(struct conn *c, const void *p, size_t n);
/* Bytes queued and not yet written. */
size_t conn_pending(const struct conn *c);
/* Writes more of the queue: 0, or -1 when the peer is gone. */
int conn_flush(struct conn *c);

/* The socket (-1 for CGI): readable when the web server hangs up, writable
 * when a queue can move. */
int conn_fd(const struct conn *c);

/* Ends the request (with its end records when they can go out at once),
 * closes the socket and frees c. */
void conn_close(struct conn *c);
/* Frees c but leaves its socket open: returns it for the caller to close
 * (-1 for CGI). A fan-out writes every answer before it pays for a close;
 * the web server, which has the whole answer, closes first. */
int conn_release(struct conn *c);

#endif
