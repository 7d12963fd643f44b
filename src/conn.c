/* conn: FastCGI and CGI requests behind one interface. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"

/* A blocking write to a web server that stopped reading must not stall the
 * hub for long; past this the request is dropped. */
#define SEND_TIMEOUT_SEC 5

/* FastCGI record types and the largest content of one record. */
#define FCGI_END_REQUEST_TYPE 3
#define FCGI_STDOUT_TYPE 6
#define FCGI_RECORD_MAX 65535

struct conn {
	FCGX_Request *req;	/* FastCGI until parked; NULL for CGI and parked */
	char **envp;		/* NULL once parked */
	int fd;			/* parked FastCGI: the socket; else -1 */
	uint16_t request_id;	/* parked FastCGI */
	bool bounded;		/* FastCGI: SO_SNDTIMEO set */
	size_t sent;		/* FastCGI, unparked: bytes handed to libfcgi */
	unsigned long id;
};

struct conn *conn_fcgx(FCGX_Request *r, unsigned long id)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->req = r;
	c->envp = r->envp;
	c->fd = -1;
	c->id = id;
	return c;
}

/* Before a write that may block: bounds it (see SEND_TIMEOUT_SEC). Set only
 * when needed, as most answers fit the socket buffer and never block, and
 * a burst of subscribes should cost no more syscalls than it must. */
static void bound_writes(int fd)
{
	struct timeval tv = { SEND_TIMEOUT_SEC, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

struct conn *conn_cgi(char **envp, unsigned long id)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->envp = envp;
	c->fd = -1;
	c->id = id;
	return c;
}

unsigned long conn_id(const struct conn *c)
{
	return c->id;
}

const char *conn_param(const struct conn *c, const char *name)
{
	return c->envp ? FCGX_GetParam(name, c->envp) : NULL;
}

long conn_read(struct conn *c, char *buf, size_t n)
{
	if (n > (1u << 30))
		n = 1u << 30;
	if (c->req) {
		int got = FCGX_GetStr(buf, (int)n, c->req->in);
		if (got == 0 && FCGX_GetError(c->req->in))
			return -1;
		return got;
	}
	if (c->fd >= 0)
		return 0;	/* parked: the body was read to its end */
	for (;;) {
		ssize_t got = read(STDIN_FILENO, buf, n);
		if (got < 0 && errno == EINTR)
			continue;
		return got;
	}
}

void conn_drain(struct conn *c, size_t max)
{
	char junk[4096];
	long got;
	while (max > 0 && (got = conn_read(c, junk, max < sizeof junk ? max : sizeof junk)) > 0)
		max -= (size_t)got;
}

void conn_park(struct conn *c)
{
	if (!c->req)
		return;
	conn_drain(c, (size_t)1 << 20);
	c->fd = c->req->ipcFd;
	c->request_id = (uint16_t)c->req->requestId;
	/* Frees the streams (8 KB in, 8 KB out, 512 B err) and the parameters,
	 * keeping the socket open (close = 0). */
	FCGX_Free(c->req, 0);
	free(c->req);
	c->req = NULL;
	c->envp = NULL;
}

/* Tries without blocking first; only the rest of an answer larger than the
 * free socket buffer is written blocking, with the bound set. */
static int write_all(int fd, const char *p, size_t n)
{
	for (;;) {
		ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == ENOTSOCK)
			break;	/* CGI: stdout may be a pipe */
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
		if (n == 0)
			return 0;
		bound_writes(fd);
		break;
	}
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void record_header_at(unsigned char *h, int type, uint16_t id, size_t len)
{
	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0;
	h[7] = 0;
}

static void record_header(struct buf *b, int type, uint16_t id, size_t len)
{
	unsigned char h[8];
	record_header_at(h, type, id, len);
	buf_add(b, h, sizeof h);
}

/* The end of a request: an empty STDOUT record (the stream's end), then
 * END_REQUEST with application status 0 and REQUEST_COMPLETE. */
#define END_RECORDS_LEN 24
static void end_records(unsigned char *e, uint16_t id)
{
	memset(e, 0, END_RECORDS_LEN);
	record_header_at(e, FCGI_STDOUT_TYPE, id, 0);
	record_header_at(e + 8, FCGI_END_REQUEST_TYPE, id, 8);
}

/* p as FastCGI STDOUT records, and with last the stream's end and the
 * request's end, into b. */
static void records(struct conn *c, struct buf *b, const char *p, size_t n, bool last)
{
	while (n > 0) {
		size_t len = n < FCGI_RECORD_MAX ? n : FCGI_RECORD_MAX;
		record_header(b, FCGI_STDOUT_TYPE, c->request_id, len);
		buf_add(b, p, len);
		p += len;
		n -= len;
	}
	if (last) {
		unsigned char e[END_RECORDS_LEN];
		end_records(e, c->request_id);
		buf_add(b, e, sizeof e);
	}
}

static int send_parked(struct conn *c, const void *p, size_t n, bool last)
{
	struct buf b = BUF_INIT;
	size_t done = 0;
	if (n > 0 && n <= FCGI_RECORD_MAX) {
		/* The usual answer, one record and the ends, gathered from where
		 * they lie in one system call; anything left over goes below. */
		unsigned char head[8], tail[END_RECORDS_LEN];
		record_header_at(head, FCGI_STDOUT_TYPE, c->request_id, n);
		end_records(tail, c->request_id);
		struct iovec iov[3] = {
			{ head, sizeof head }, { (void *)p, n }, { tail, sizeof tail },
		};
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = last ? 3 : 2 };
		size_t total = sizeof head + n + (last ? sizeof tail : 0);
		ssize_t w;
		do
			w = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w >= 0 && (size_t)w == total)
			return 0;
		if (w < 0 && errno != EAGAIN)
			return -1;
		done = w > 0 ? (size_t)w : 0;
	}
	buf_reserve(&b, n + 32);
	records(c, &b, p, n, last);
	int rc = write_all(c->fd, b.p + done, b.len - done);
	buf_free(&b);
	return rc;
}

int conn_send(struct conn *c, const void *p, size_t n)
{
	if (c->fd >= 0)
		return send_parked(c, p, n, false);
	if (c->req) {
		/* What fits the smallest socket buffer of a fresh connection
		 * cannot block; past that, bound the writes. */
		if (!c->bounded && (c->sent += n) > 4096) {
			bound_writes(c->req->ipcFd);
			c->bounded = true;
		}
		if (FCGX_PutStr(p, (int)n, c->req->out) != (int)n ||
		    FCGX_FFlush(c->req->out) < 0)
			return -1;
		return 0;
	}
	return write_all(STDOUT_FILENO, p, n);
}

int conn_fd(const struct conn *c)
{
	return c->fd;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		/* The end records even when the peer is gone: a web server that
		 * only half-closed (lighttpd's tcp-fin-propagate) expects them and
		 * logs an error without; to a closed peer they cost an EPIPE. */
		send_parked(c, NULL, 0, true);
		close(c->fd);
	} else if (c->req) {
		/* Detached: close at once instead of lingering up to 2 s for the
		 * peer to close first; nothing more is read, so no answer data
		 * can be lost by it. */
		FCGX_Detach(c->req);
		FCGX_Finish_r(c->req);
		/* A web server that asked to keep the connection gets it closed:
		 * the request object is not reused. */
		if (c->req->ipcFd >= 0)
			close(c->req->ipcFd);
		free(c->req);
	}
	free(c);
}

int conn_finish_open(struct conn *c, const void *p, size_t n)
{
	if (c->fd < 0) {
		conn_finish(c, p, n);
		return -1;
	}
	int fd = c->fd;
	send_parked(c, p, n, true);
	free(c);
	return fd;
}

void conn_finish(struct conn *c, const void *p, size_t n)
{
	if (c->fd >= 0) {
		send_parked(c, p, n, true);
		close(c->fd);
		free(c);
		return;
	}
	/* The rest of the body first: a web server still sending it (even the
	 * empty end of an absent one) into a closed socket fails the request
	 * (mod_proxy_fcgi answers 503 on that EPIPE). */
	if (c->req)
		conn_drain(c, (size_t)1 << 20);
	conn_send(c, p, n);
	conn_close(c);
}
