/* handler: one request from endpoint to answer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "clock.h"
#include "handler.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "waiter.h"

/* What is read and dropped of a body that is refused before it is read. */
#define DRAIN_MAX (1u << 20)

static const char *param(struct conn *c, const char *name)
{
	return conn_param(c, name);
}

static void send_and_close(struct conn *c, struct buf *out)
{
	if (conn_send(c, out->p, out->len) < 0)
		conn_abort(c);
	else
		conn_close(c);
	buf_free(out);
}

static void error(struct conn *c, int status, const char *msg, const char *callback,
		  const char *headers)
{
	struct buf out = BUF_INIT;
	reply_error(&out, status, msg, callback, headers);
	send_and_close(c, &out);
}

static void unavailable(struct conn *c, const char *why, const char *callback)
{
	log_msg("error", conn_id(c), "storage unavailable: %s", why);
	error(c, 503, "storage unavailable, try again", callback, NULL);
}

static void json(struct conn *c, int status, struct buf *body, const char *callback)
{
	struct buf out = BUF_INIT;
	reply_json(&out, status, body->p, body->len, callback, NULL);
	buf_free(body);
	send_and_close(c, &out);
}

int handler_open(struct app *a, char *err, size_t errlen)
{
	if (!a->notify && notify_open(&a->notify, a->conf.db, err, errlen) < 0)
		return -1;
	if (!a->log) {
		if (msglog_open(&a->log, a->conf.db, a->conf.sync_full, err, errlen) < 0)
			return -1;
		msglog_retention(a->log, a->conf.retain, a->conf.retain_seconds);
	}
	return 0;
}

static void sub(struct app *a, struct conn *c, const char *method)
{
	char err[256];
	if (strcmp(method, "GET") != 0) {
		error(c, 405, "use GET", NULL, "Allow: GET\r\n");
		return;
	}
	struct req_limits lim = { a->conf.timeout, a->conf.max_timeout, a->conf.max_message };
	struct req_sub r;
	struct req_error e;
	if (request_sub(param(c, "QUERY_STRING"), param(c, "HTTP_LAST_EVENT_ID"),
			param(c, "HTTP_ACCEPT"), &lim, &r, &e) < 0) {
		error(c, e.status, e.msg, r.callback, NULL);
		return;
	}
	for (int i = 0; i < r.nchan; i++)
		if (strncmp(r.chan[i], "private-", 8) == 0) {
			error(c, 403, "private channels are not enabled", r.callback, NULL);
			return;
		}
	if (handler_open(a, err, sizeof err) < 0) {
		unavailable(c, err, r.callback);
		return;
	}
	const char *names[REQ_MAX_CHANNELS];
	for (int i = 0; i < r.nchan; i++)
		names[i] = r.chan[i];
	struct msglog_page pg = { 0 };
	if (msglog_read(a->log, names, r.nchan, r.since, r.limit, &pg, err, sizeof err) < 0) {
		msglog_page_free(&pg);
		unavailable(c, err, r.callback);
		return;
	}
	if (pg.count || pg.gap || pg.reset || r.timeout == 0) {
		struct buf body = BUF_INIT;
		reply_sub(&body, pg.last_id, pg.items.p, pg.items.len, pg.more, pg.gap, pg.reset);
		notify_delivered(a->notify, (uint64_t)pg.count);
		msglog_page_free(&pg);
		json(c, 200, &body, r.callback);
		return;
	}
	msglog_page_free(&pg);
	/* Held: the body (empty for GET) is read to its end first, so that the
	 * connection turns readable only when the web server hangs up. */
	conn_drain(c, DRAIN_MAX);
	if (!a->hub && hub_start(&a->hub, &a->conf, a->notify, a->threaded,
				 err, sizeof err) < 0) {
		unavailable(c, err, r.callback);
		return;
	}
	struct waiter *w = waiter_new(names, r.nchan);
	w->conn = c;
	w->cursor = r.since >= 0 ? r.since : pg.log_last;
	w->checked = pg.log_last;
	w->limit = r.limit;
	w->callback = r.callback[0] ? xstrdup(r.callback) : NULL;
	w->deadline = clock_mono_ms() + (int64_t)r.timeout * 1000;
	hub_submit(a->hub, w);
	if (!a->threaded)
		hub_run(a->hub);
}

/* Reads the whole body, at most max bytes. Returns 0, or a status. */
static int read_body(struct conn *c, long max, struct buf *body)
{
	const char *cl = param(c, "CONTENT_LENGTH");
	int64_t want = -1;
	if (cl && *cl && !request_id(cl, strlen(cl), &want))
		return 400;
	if (want > max) {
		conn_drain(c, DRAIN_MAX);
		return 413;
	}
	for (;;) {
		buf_reserve(body, 65536);
		long got = conn_read(c, body->p + body->len, 65536);
		if (got < 0)
			return -1;
		if (got == 0)
			break;
		body->len += (size_t)got;
		body->p[body->len] = '\0';
		if ((long)body->len > max) {
			conn_drain(c, DRAIN_MAX);
			return 413;
		}
	}
	if (want >= 0 && (int64_t)body->len != want)
		return -1;
	return 0;
}

static void publish(struct app *a, struct conn *c)
{
	char err[256];
	const char *ctype = param(c, "CONTENT_TYPE");
	char type[REQ_TYPE_LEN + 1];
	bool charset_ok;
	struct req_error e;
	long max = a->conf.max_message;
	/* A form encodes each byte in up to three. */
	if (request_media_type(ctype, type, &charset_ok, &e) == 0 &&
	    strcmp(type, "application/x-www-form-urlencoded") == 0)
		max = max * 3 + 4096;
	struct buf body = BUF_INIT;
	int st = read_body(c, max, &body);
	if (st != 0) {
		buf_free(&body);
		if (st < 0)
			conn_abort(c);	/* the client went away mid-body */
		else
			error(c, st, st == 413 ? "message too large" : "bad Content-Length",
			      NULL, NULL);
		return;
	}
	struct req_pub p;
	if (request_pub(param(c, "QUERY_STRING"), ctype, body.p, body.len,
			a->conf.max_message, &p, &e) < 0) {
		buf_free(&body);
		error(c, e.status, e.msg, NULL, NULL);
		return;
	}
	if (strncmp(p.chan, "private-", 8) == 0 && !a->conf.token_key) {
		buf_free(&body);
		error(c, 403, "private channels are not enabled", NULL, NULL);
		return;
	}
	if (handler_open(a, err, sizeof err) < 0) {
		buf_free(&body);
		unavailable(c, err, NULL);
		return;
	}
	struct msglog_msg m = { p.chan, p.type, p.data, p.len };
	int64_t id;
	struct buf ack = BUF_INIT;
	int rc = msglog_append(a->log, &m, 1, clock_wall_ms(), &id, &ack, err, sizeof err);
	buf_free(&body);
	if (rc == MSGLOG_EINVAL) {
		buf_free(&ack);
		error(c, 415, "the message is not valid JSON", NULL, NULL);
		return;
	}
	if (rc < 0) {
		buf_free(&ack);
		unavailable(c, err, NULL);
		return;
	}
	notify_bump(a->notify);
	notify_published(a->notify, 1);
	json(c, 201, &ack, NULL);
}

static void pub(struct app *a, struct conn *c, const char *method)
{
	char err[256];
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	bool del = strcmp(method, "DELETE") == 0;
	if (!get && !post && !del) {
		error(c, 405, "use POST to publish, GET for channel info, DELETE to drop",
		      NULL, "Allow: GET, POST, DELETE\r\n");
		return;
	}
	int st = auth_publish(param(c, "HTTP_AUTHORIZATION"), param(c, "REMOTE_ADDR"),
			      a->conf.publish_key);
	if (st) {
		error(c, st, st == 401 ? "a valid publish key is required (Authorization: Bearer)"
				       : "allowed from loopback only: no publish key is configured",
		      NULL, NULL);
		return;
	}
	if (post) {
		publish(a, c);
		return;
	}
	char chan[REQ_CHANNEL_LEN + 1];
	struct req_error e;
	if (request_channel(param(c, "QUERY_STRING"), chan, &e) < 0) {
		error(c, e.status, e.msg, NULL, NULL);
		return;
	}
	if (handler_open(a, err, sizeof err) < 0) {
		unavailable(c, err, NULL);
		return;
	}
	struct buf body = BUF_INIT;
	int rc;
	if (get) {
		rc = msglog_info(a->log, chan, &body, err, sizeof err);
	} else {
		int64_t n;
		rc = msglog_delete(a->log, chan, &n, err, sizeof err);
		buf_adds(&body, "{\"channel\":");
		reply_json_string(&body, chan);
		buf_printf(&body, ",\"deleted\":%lld}", (long long)n);
	}
	if (rc < 0) {
		buf_free(&body);
		unavailable(c, err, NULL);
		return;
	}
	json(c, 200, &body, NULL);
}

static void stats(struct app *a, struct conn *c, const char *method)
{
	char err[256];
	if (strcmp(method, "GET") != 0) {
		error(c, 405, "use GET", NULL, "Allow: GET\r\n");
		return;
	}
	int st = auth_publish(param(c, "HTTP_AUTHORIZATION"), param(c, "REMOTE_ADDR"),
			      a->conf.publish_key);
	if (st) {
		error(c, st, st == 401 ? "a valid publish key is required (Authorization: Bearer)"
				       : "allowed from loopback only: no publish key is configured",
		      NULL, NULL);
		return;
	}
	int64_t messages, last_id;
	if (handler_open(a, err, sizeof err) < 0 ||
	    msglog_counts(a->log, &messages, &last_id, err, sizeof err) < 0) {
		unavailable(c, err, NULL);
		return;
	}
	struct notify_stats ns;
	notify_stats(a->notify, &ns);
	struct buf body = BUF_INIT;
	buf_printf(&body, "{\"version\":\"%s\",\"uptime\":%lld,\"messages\":%lld,"
		   "\"last_id\":%lld,\"waiting\":%lld,\"published\":%llu,\"delivered\":%llu}",
		   PACKAGE_VERSION, (long long)((clock_wall_ms() - a->started_ms) / 1000),
		   (long long)messages, (long long)last_id, (long long)ns.waiting,
		   (unsigned long long)ns.published, (unsigned long long)ns.delivered);
	json(c, 200, &body, NULL);
}

void handler_serve(struct app *a, struct conn *c)
{
	const char *method = param(c, "REQUEST_METHOD");
	if (!method)
		method = "GET";
	switch (request_endpoint(param(c, "SCRIPT_NAME"), param(c, "PATH_INFO"))) {
	case REQ_EP_SUB:
		sub(a, c, method);
		break;
	case REQ_EP_PUB:
		pub(a, c, method);
		break;
	case REQ_EP_STATS:
		stats(a, c, method);
		break;
	default:
		error(c, 404, "unknown endpoint: the path must end in /sub, /pub or /stats",
		      NULL, NULL);
		break;
	}
}
