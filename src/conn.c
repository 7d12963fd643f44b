/* conn: FastCGI and CGI requests behind one interface. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "fcgi.h"

/* Bytes read from a socket per read() while a request comes in. */
#define READ_CHUNK 16384

struct conn {
	int fd;			/* FastCGI: the socket; CGI: -1 */
	unsigned long id;
	struct fcgi_in in;	/* FastCGI, until parked */
	struct buf raw;		/* FastCGI: bytes read and not yet parsed */
	const char *error;	/* why conn_fill said CONN_GONE */
	char **envp;		/* CGI */
	size_t body_max;
	struct buf cgi_body;	/* CGI */
	bool cgi_read, cgi_over;
	struct buf out;		/* FastCGI: records not yet written, from out_off */
	size_t out_off;
	bool ended;		/* the end records are written or queued */
};

struct conn *conn_fcgi(int fd, unsigned long id, size_t body_max)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->id = id;
	c->body_max = body_max;
	fcgi_in_init(&c->in, body_max);
	return c;
}

struct conn *conn_cgi(char **envp, unsigned long id, size_t body_max)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->fd = -1;
	c->id = id;
	c->envp = envp;
	c->body_max = body_max;
	return c;
}

unsigned long conn_id(const struct conn *c)
{
	return c->id;
}

const char *conn_error(const struct conn *c)
{
	return c->error;
}

bool conn_begun(const struct conn *c)
{
	return c->fd < 0 || c->in.state != FCGI_BEGIN;
}

/* Dropped bytes of an overlong body read before it is refused anyway. */
#define DISCARD_MAX (16u << 20)

enum conn_fill conn_fill(struct conn *c)
{
	for (;;) {
		buf_reserve(&c->raw, READ_CHUNK);
		ssize_t got = read(c->fd, c->raw.p + c->raw.len, READ_CHUNK);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return CONN_MORE;
		if (got <= 0) {
			c->error = got < 0 ? strerror(errno) : NULL;
			return CONN_GONE;
		}
		c->raw.len += (size_t)got;
		size_t used = fcgi_in_parse(&c->in, c->raw.p, c->raw.len);
		memmove(c->raw.p, c->raw.p + used, c->raw.len - used);
		c->raw.len -= used;
		switch (c->in.state) {
		case FCGI_DONE:
			buf_free(&c->raw);
			return CONN_READY;
		case FCGI_FAILED:
			c->error = c->in.error;
			return CONN_GONE;
		case FCGI_ABORTED:
			c->error = NULL;
			return CONN_GONE;
		default:
			if (c->in.body_seen > c->body_max + DISCARD_MAX)
				return CONN_READY;	/* 413 without reading the rest */
			/* A short read: the socket has nothing more for now. */
			if ((size_t)got < READ_CHUNK)
				return CONN_MORE;
		}
	}
}

bool conn_params_over(const struct conn *c)
{
	return c->fd >= 0 && fcgi_in_params_over(&c->in);
}

const char *conn_param(const struct conn *c, const char *name)
{
	if (c->fd < 0)
		return fcgi_env_get(c->envp, name);
	return fcgi_env_get(c->in.env, name);
}

/* CGI gives no end of the body but CONTENT_LENGTH: read that much. */
static void cgi_read_body(struct conn *c)
{
	c->cgi_read = true;
	const char *cl = conn_param(c, "CONTENT_LENGTH");
	unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
	char junk[4096];
	while (want > 0) {
		size_t room = c->cgi_body.len < c->body_max ? c->body_max - c->cgi_body.len : 0;
		char *to = junk;
		size_t n = sizeof junk;
		if (room) {
			buf_reserve(&c->cgi_body, room < 65536 ? room : 65536);
			to = c->cgi_body.p + c->cgi_body.len;
			n = room < 65536 ? room : 65536;
		}
		if (n > want)
			n = (size_t)want;
		ssize_t got = read(STDIN_FILENO, to, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			c->cgi_read = false;	/* cut short */
			return;
		}
		if (room)
			c->cgi_body.len += (size_t)got;
		else
			c->cgi_over = true;
		want -= (unsigned long long)got;
	}
	buf_str(&c->cgi_body);
}

const struct buf *conn_body(struct conn *c, bool *overflow)
{
	if (c->fd < 0) {
		if (!c->cgi_read)
			cgi_read_body(c);
		*overflow = c->cgi_over;
		return c->cgi_read ? &c->cgi_body : NULL;
	}
	*overflow = fcgi_in_overflow(&c->in);
	buf_str(&c->in.body);
	return &c->in.body;
}

void conn_park(struct conn *c)
{
	fcgi_in_free(&c->in);
	buf_free(&c->raw);
	buf_free(&c->cgi_body);
	c->envp = NULL;
}

size_t conn_pending(const struct conn *c)
{
	return c->out.len - c->out_off;
}

static bool gone(int e)
{
	return e != EAGAIN && e != EWOULDBLOCK && e != EINTR;
}

int conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return gone(errno) ? -1 : 0;
		c->out_off += (size_t)w;
	}
	/* A queue is the exception (a socket that was full): its memory goes
	 * back once it is written, not kept for the life of the request. */
	buf_free(&c->out);
	c->out_off = 0;
	return 0;
}

/* CGI: stdout is ours alone; a blocking write holds up no one else. */
static int cgi_write(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The usual case, nothing queued and an answer of one record: header,
 * bytes and end gathered from where they lie in one system call, and only
 * what the socket did not take copied into the queue. */
static int send_direct(struct conn *c, const char *p, size_t n, bool last)
{
	unsigned char head[FCGI_HEADER_LEN], tail[FCGI_END_LEN];
	fcgi_header(head, FCGI_STDOUT_TYPE, c->in.id, n);
	fcgi_end(tail, c->in.id);
	struct iovec iov[3] = { { head, sizeof head }, { (void *)p, n }, { tail, sizeof tail } };
	int k = n ? 0 : 2;
	struct msghdr m = { .msg_iov = iov + k, .msg_iovlen = (size_t)((last ? 3 : 2) - k) };
	ssize_t w;
	do
		w = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0 && gone(errno))
		return -1;
	size_t done = w > 0 ? (size_t)w : 0;
	for (size_t i = 0; i < m.msg_iovlen; i++) {
		struct iovec *v = &m.msg_iov[i];
		if (done >= v->iov_len) {
			done -= v->iov_len;
			continue;
		}
		buf_add(&c->out, (char *)v->iov_base + done, v->iov_len - done);
		done = 0;
	}
	return 0;
}

static int send_records(struct conn *c, const char *p, size_t n, bool last)
{
	if (c->ended)
		return -1;
	c->ended = last;
	if (c->fd < 0)
		return cgi_write(p, n);
	if (conn_pending(c) == 0 && n <= FCGI_RECORD_MAX)
		return send_direct(c, p, n, last);
	/* What was written goes before more is queued: the buffer holds
	 * what waits, not all that ever passed through it. */
	if (c->out_off) {
		memmove(c->out.p, c->out.p + c->out_off, conn_pending(c));
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	fcgi_stdout(&c->out, c->in.id, p, n, last);
	return conn_flush(c);
}

int conn_send(struct conn *c, const void *p, size_t n)
{
	return n ? send_records(c, p, n, false) : 0;
}

int conn_answer(struct conn *c, const void *p, size_t n)
{
	return send_records(c, p, n, true);
}

int conn_fd(const struct conn *c)
{
	return c->fd;
}

static void conn_free(struct conn *c)
{
	fcgi_in_free(&c->in);
	buf_free(&c->raw);
	buf_free(&c->cgi_body);
	buf_free(&c->out);
	free(c);
}

int conn_release(struct conn *c)
{
	int fd = c->fd;
	conn_free(c);
	return fd;
}

void conn_close(struct conn *c)
{
	/* The end records even when the peer may be gone: a web server that
	 * only half-closed (lighttpd's tcp-fin-propagate) expects them and logs
	 * an error without; to a closed peer they cost an EPIPE. Not after a
	 * record cut in the middle, where they would be read as its content. */
	if (c->fd >= 0 && !c->ended && conn_pending(c) == 0 && c->in.id)
		conn_answer(c, NULL, 0);
	if (c->fd >= 0)
		close(c->fd);
	conn_free(c);
}
