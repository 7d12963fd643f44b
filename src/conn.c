/* conn: FastCGI and CGI requests behind one interface. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"

/* A blocking write to a web server that stopped reading must not stall the
 * hub for long; past this the request is dropped. */
#define SEND_TIMEOUT_SEC 5

struct conn {
	FCGX_Request *req;	/* NULL: CGI */
	char **envp;
	unsigned long id;
};

struct conn *conn_fcgx(FCGX_Request *r, unsigned long id)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->req = r;
	c->envp = r->envp;
	c->id = id;
	struct timeval tv = { SEND_TIMEOUT_SEC, 0 };
	setsockopt(r->ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return c;
}

struct conn *conn_cgi(char **envp, unsigned long id)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->envp = envp;
	c->id = id;
	return c;
}

unsigned long conn_id(const struct conn *c)
{
	return c->id;
}

const char *conn_param(const struct conn *c, const char *name)
{
	return FCGX_GetParam(name, c->envp);
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

int conn_send(struct conn *c, const void *p, size_t n)
{
	if (c->req) {
		if (FCGX_PutStr(p, (int)n, c->req->out) != (int)n ||
		    FCGX_FFlush(c->req->out) < 0)
			return -1;
		return 0;
	}
	const char *s = p;
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int conn_fd(const struct conn *c)
{
	return c->req ? c->req->ipcFd : -1;
}

void conn_close(struct conn *c)
{
	if (c->req) {
		/* Detached: close at once instead of lingering up to 2 s for the
		 * peer to close first; the answer is complete, nothing more is
		 * read, so no response data can be lost by it. Even a dropped
		 * request gets its END_REQUEST record: a web server that only
		 * half-closed (lighttpd's tcp-fin-propagate) expects one, and
		 * logs an error without it; to a closed peer it costs an EPIPE. */
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

