/* handler: one request from endpoint to answer. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "clock.h"
#include "commit.h"
#include "fcgi.h"
#include "follow.h"
#include "handler.h"
#include "json.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "token.h"
#include "utf8.h"
#include "waiter.h"

static const char *param(struct conn *c, const char *name)
{
	return conn_param(c, name);
}

/* One request being served: what every answer to it needs. */
struct req {
	struct app *a;
	struct conn *c;
	const char *method;
	struct buf headers;	/* CORS headers, if any */
	const char *callback;	/* JSONP, once parsed */
};

static const char *hdrs(struct req *q)
{
	return q->headers.len ? q->headers.p : NULL;
}

/* The whole answer; the hub writes what the socket does not take at once. */
static void send_and_close(struct req *q, int status, struct buf *out)
{
	notify_answer(q->a->notify, status);
	hub_answer(q->a->hub, q->c, out->p, out->len);
	buf_free(out);
}

static void error(struct req *q, int status, const char *msg, const char *extra)
{
	struct buf out = BUF_INIT, h = BUF_INIT;
	buf_adds(&h, buf_str(&q->headers));
	if (extra)
		buf_adds(&h, extra);
	reply_error(&out, status, msg, q->callback, h.len ? h.p : NULL);
	buf_free(&h);
	send_and_close(q, status, &out);
}

/* The storage failure last logged: a misconfiguration is told once (and
 * again when it changes, or comes back after the log opened), not with
 * every request it refuses. The reading loop's alone. */
static char told[512];

static void unavailable(struct req *q, const char *why)
{
	char path[160], query[160];
	log_escape(path, sizeof path, param(q->c, "SCRIPT_NAME"));
	log_escape(query, sizeof query, param(q->c, "QUERY_STRING"));
	if (strncmp(told, why, sizeof told - 1) != 0) {
		log_msg("error", conn_id(q->c), "%s %s?%s: storage unavailable: %s",
			q->method, path, query, why);
		snprintf(told, sizeof told, "%s", why);
	}
	notify_storage_error(q->a->notify);
	if (q->a->log && msglog_read_only(q->a->log))
		error(q, 503, "storage unavailable: the log's file is read-only for this program "
		      "(its log says which file and why)", NULL);
	else
		error(q, 503, "storage unavailable, try again", NULL);
}

static void json(struct req *q, int status, struct buf *body)
{
	struct buf out = BUF_INIT;
	reply_json(&out, status, body->p, body->len, q->callback, hdrs(q));
	buf_free(body);
	send_and_close(q, status, &out);
}

/* CORS answer headers when the request's Origin is one configured in
 * COMET_CORS_ORIGIN (space- or comma-separated, or "*"). The echoed origin
 * is the configured string, never the client's bytes. */
static void cors(struct req *q)
{
	const char *allowed = q->a->conf.cors_origin, *origin = param(q->c, "HTTP_ORIGIN");
	if (!allowed || !origin)
		return;
	size_t olen = strlen(origin);
	for (const char *p = allowed; *p;) {
		size_t n = strcspn(p, " ,");
		if (n == 1 && *p == '*') {
			buf_adds(&q->headers, "Access-Control-Allow-Origin: *\r\n");
			return;
		}
		if (n && n == olen && strncmp(p, origin, n) == 0) {
			buf_adds(&q->headers, "Access-Control-Allow-Origin: ");
			buf_add(&q->headers, p, n);
			buf_adds(&q->headers, "\r\nVary: Origin\r\n");
			return;
		}
		p += n;
		p += strspn(p, " ,");
	}
}

static void preflight(struct req *q, const char *allow)
{
	struct buf out = BUF_INIT;
	buf_printf(&out, "Status: 204 No Content\r\nAllow: %s\r\n", allow);
	if (q->headers.len)
		buf_printf(&out, "%sAccess-Control-Allow-Methods: %s\r\n"
			   "Access-Control-Allow-Headers: Authorization, Content-Type, "
			   "Last-Event-ID, Cache-Control\r\n"
			   "Access-Control-Max-Age: 86400\r\n", q->headers.p, allow);
	buf_adds(&out, "\r\n");
	send_and_close(q, 204, &out);
}

/* Method check shared by the endpoints; OPTIONS is answered here. */
static bool method_ok(struct req *q, const char *allow)
{
	if (strcmp(q->method, "OPTIONS") == 0) {
		preflight(q, allow);
		return false;
	}
	size_t n = strlen(q->method);
	for (const char *p = allow; *p;) {
		size_t k = strcspn(p, ", ");
		if (k == n && strncmp(p, q->method, n) == 0)
			return true;
		p += k;
		p += strspn(p, ", ");
	}
	char extra[96];
	snprintf(extra, sizeof extra, "Allow: %s, OPTIONS\r\n", allow);
	error(q, 405, "method not allowed here; see the Allow header", extra);
	return false;
}

static bool access_ok(struct req *q)
{
	int st = auth_publish(param(q->c, "HTTP_AUTHORIZATION"), param(q->c, "REMOTE_ADDR"),
			      q->a->conf.publish_key, q->a->conf.publish_loopback);
	if (st == 401)
		error(q, 401, "a valid publish key is required (Authorization: Bearer)", NULL);
	else if (st && q->a->conf.publish_loopback)
		error(q, 403, "allowed from loopback only: no publish key is configured", NULL);
	else if (st)
		error(q, 403, "publishing is closed: no publish key is configured "
		      "(COMET_PUBLISH_KEY)", NULL);
	return st == 0;
}

int handler_open(struct app *a, char *err, size_t errlen)
{
	char local[4096];
	if (!a->notify &&
	    notify_open(&a->notify, msglog_local_path(a->conf.db, a->conf.state_dir, local,
						      sizeof local), err, errlen) < 0)
		return -1;
	if (a->follows && follow_start(&a->conf, a->notify, err, errlen) < 0)
		return -1;
	if (!a->log) {
		if (msglog_open(&a->log, a->conf.db, a->conf.state_dir,
				(a->conf.sync_full ? MSGLOG_SYNC_FULL : 0) | MSGLOG_READER,
				err, errlen) < 0)
			return -1;
		told[0] = '\0';
		msglog_retention(a->log, a->conf.retain, a->conf.retain_seconds);
	}
	return 0;
}

/* Every private channel asked for needs a valid token of its own. */
static bool private_ok(struct req *q, const struct req_sub *r)
{
	int64_t now = clock_wall_ms() / 1000;
	for (int i = 0; i < r->nchan; i++) {
		if (!token_private(r->chan[i]))
			continue;
		if (!q->a->conf.token_key) {
			error(q, 403, "private channels are not enabled (no COMET_TOKEN_KEY)", NULL);
			return false;
		}
		bool ok = false;
		for (int t = 0; t < r->ntoken && !ok; t++)
			ok = token_valid(q->a->conf.token_key, r->chan[i], r->token[t], now);
		if (!ok) {
			char msg[REQ_CHANNEL_LEN + 64];
			snprintf(msg, sizeof msg, "a valid, unexpired token is required for %s",
				 r->chan[i]);
			error(q, 403, msg, NULL);
			return false;
		}
	}
	return true;
}

/* The write thread, started at its first job. */
static bool commit_ready(struct req *q, char *err, size_t errlen)
{
	struct app *a = q->a;
	return a->commit || commit_start(&a->commit, &a->conf, a->notify, a->hub, a->threaded,
					 err, errlen) == 0;
}

/* Hands the request to the hub to be held; the hub answers it. With sync
 * (its cursor is ahead of this host's copy of a shared log), it goes by
 * way of the write thread, which brings the copy up to the shared log
 * first. */
static void hold(struct req *q, const struct req_sub *r, int64_t cursor, int64_t checked,
		 bool sync)
{
	char err[256];
	struct app *a = q->a;
	if ((!a->hub && hub_start(&a->hub, &a->conf, a->threaded, err, sizeof err) < 0) ||
	    hub_attach(a->hub, a->notify, err, sizeof err) < 0 ||
	    (sync && !commit_ready(q, err, sizeof err))) {
		if (r->stream) {	/* its header block is out already */
			log_msg("error", conn_id(q->c), "%s", err);
			conn_close(q->c);
		} else {
			unavailable(q, err);
		}
		return;
	}
	const char *names[REQ_MAX_CHANNELS];
	for (int i = 0; i < r->nchan; i++)
		names[i] = r->chan[i];
	struct waiter *w = waiter_new(names, r->nchan);
	int64_t now = clock_mono_ms();
	conn_park(q->c);
	w->conn = q->c;
	w->cursor = cursor;
	w->checked = checked;
	w->callback = r->callback[0] ? xstrdup(r->callback) : NULL;
	w->headers = q->headers.len ? xstrdup(q->headers.p) : NULL;
	if (r->stream) {
		w->stream = true;
		w->limit = INT_MAX;
		w->end = now + (int64_t)a->conf.stream_max * 1000;
		int64_t beat = now + (int64_t)a->conf.keepalive * 1000;
		w->deadline = beat < w->end ? beat : w->end;
	} else {
		w->limit = r->limit;
		w->deadline = now + (int64_t)r->timeout * 1000;
	}
	if (sync) {
		struct commit_job *job = xcalloc(1, sizeof *job);
		job->kind = COMMIT_SYNC;
		job->waiter = w;
		commit_submit(a->commit, job);
	} else {
		hub_submit(a->hub, w);
	}
	if (!a->threaded)
		hub_run(a->hub);
}

static void sub(struct req *q)
{
	char err[256];
	struct app *a = q->a;
	if (!method_ok(q, "GET"))
		return;
	struct req_limits lim = { a->conf.timeout, a->conf.max_timeout, a->conf.max_message };
	struct req_sub r;
	struct req_error e;
	int rc = request_sub(param(q->c, "QUERY_STRING"), param(q->c, "HTTP_LAST_EVENT_ID"),
			     param(q->c, "HTTP_ACCEPT"), &lim, &r, &e);
	q->callback = r.callback[0] ? r.callback : NULL;
	if (rc < 0) {
		error(q, e.status, e.msg, NULL);
		return;
	}
	if (!private_ok(q, &r))
		return;
	if (handler_open(a, err, sizeof err) < 0) {
		unavailable(q, err);
		return;
	}
	const char *names[REQ_MAX_CHANNELS];
	for (int i = 0; i < r.nchan; i++)
		names[i] = r.chan[i];
	/* An answer stays within the output bound (more: true says there is
	 * more to ask for). */
	struct msglog_page pg = { .max_bytes = (size_t)a->conf.output_max };
	/* A stream from a cursor sends its backlog from the hub; only "from
	 * now" needs the log's position here. */
	int64_t since = r.stream && r.since >= 0 ? -1 : r.since;
	if (msglog_read(a->log, names, r.nchan, since, r.limit, &pg, err, sizeof err) < 0) {
		msglog_page_free(&pg);
		unavailable(q, err);
		return;
	}
	int64_t log_last = pg.log_last;
	if (r.stream) {
		msglog_page_free(&pg);
		struct buf out = BUF_INIT;
		reply_sse_start(&out, hdrs(q), 2000);
		notify_answer(a->notify, 200);
		if (conn_send(q->c, out.p, out.len) < 0) {
			buf_free(&out);
			conn_close(q->c);
			return;
		}
		buf_free(&out);
		/* The page read for "from now" only; the hub reads from a cursor. */
		bool ahead = r.since > log_last && msglog_shared(a->log);
		hold(q, &r, r.since >= 0 ? r.since : log_last, -1, ahead);
		return;
	}
	if (pg.ahead) {
		msglog_page_free(&pg);
		hold(q, &r, r.since, -1, true);
		return;
	}
	if (pg.count || pg.gap || pg.reset || r.timeout == 0) {
		struct buf body = BUF_INIT;
		reply_sub(&body, pg.last_id, pg.items.p, pg.items.len, pg.more, pg.gap, pg.reset);
		notify_delivered(a->notify, (uint64_t)pg.count);
		msglog_page_free(&pg);
		json(q, 200, &body);
		return;
	}
	msglog_page_free(&pg);
	hold(q, &r, r.since >= 0 ? r.since : log_last, log_last, false);
}

/* The request body, at most max bytes, into body: 0, or a status. */
static int read_body(struct conn *c, long max, struct buf *body)
{
	const char *cl = param(c, "CONTENT_LENGTH");
	int64_t want = -1;
	bool over;
	if (cl && *cl && !request_id(cl, strlen(cl), &want))
		return 400;
	const struct buf *b = conn_body(c, &over);
	if (!b)
		return -1;
	if (over || want > max || (long)b->len > max)
		return 413;
	if (want >= 0 && (int64_t)b->len != want)
		return 400;
	buf_add(body, b->p, b->len);
	buf_str(body);
	return 0;
}

size_t handler_body_max(const struct conf *c)
{
	return (size_t)request_body_max(NULL, c->max_message);
}

static bool is_batch(const char *query, const char *type, const struct buf *body)
{
	char chan[REQ_CHANNEL_LEN + 1];
	struct req_error e;
	if (strcmp(type, "application/json") != 0 || request_channel(query, chan, &e) == 0)
		return false;
	size_t i = 0;
	while (i < body->len && strchr(" \t\r\n", body->p[i]))
		i++;
	return i < body->len && body->p[i] == '[';
}

/* Hands a checked job to the write thread, which answers it. */
static void submit(struct req *q, struct commit_job *job)
{
	char err[256];
	struct app *a = q->a;
	if (!commit_ready(q, err, sizeof err)) {
		commit_job_free(job);
		unavailable(q, err);
		return;
	}
	job->conn = q->c;
	job->headers = q->headers.len ? xstrdup(q->headers.p) : NULL;
	commit_submit(a->commit, job);
}

/* Many messages in one POST, appended in one transaction. */
static void publish_batch(struct req *q, struct commit_job *job)
{
	char err[256];
	struct buf *body = &job->body;
	/* \u0000 is refused like a body that is not UTF-8 text, before
	 * parsing (json_batch_parse refuses it too, naming the element). */
	if (!utf8_valid(body->p, body->len) || request_json_nul(body->p, body->len)) {
		commit_job_free(job);
		error(q, 415, "the batch must be UTF-8 JSON without \\u0000", NULL);
		return;
	}
	int rc = json_batch_parse(body->p, body->len, REQ_MAX_LIMIT, &job->parsed, err,
				  sizeof err);
	if (rc < 0) {
		commit_job_free(job);
		error(q, rc == JSON_ESHAPE ? 400 : 415, err, NULL);
		return;
	}
	struct json_batch *b = &job->parsed;
	job->types = xcalloc((size_t)b->n, sizeof *job->types);
	int st = 0;
	const char *why = NULL;
	for (int i = 0; i < b->n && !st; i++) {
		struct msglog_msg *m = &b->msg[i];
		bool charset_ok;
		struct req_error e;
		if (request_media_type(m->type, job->types[i], &charset_ok, &e) < 0 || !charset_ok)
			st = 415, why = "a type is not a usable media type";
		else if (request_message(m->channel, job->types[i], m->data, m->len,
					 q->a->conf.max_message, &e) < 0)
			st = e.status, why = e.msg;
		m->type = job->types[i];
	}
	if (st) {
		commit_job_free(job);
		error(q, st, why, NULL);
		return;
	}
	job->batch = true;
	job->msg = b->msg;
	job->n = b->n;
	submit(q, job);
}

static void publish(struct req *q)
{
	char err[256];
	struct app *a = q->a;
	const char *ctype = param(q->c, "CONTENT_TYPE");
	char type[REQ_TYPE_LEN + 1];
	bool charset_ok;
	struct req_error e;
	long max = request_body_max(ctype, a->conf.max_message);
	bool typed = request_media_type(ctype, type, &charset_ok, &e) == 0;
	struct commit_job *job = xcalloc(1, sizeof *job);
	int st = read_body(q->c, max, &job->body);
	if (st != 0) {
		commit_job_free(job);
		if (st < 0)
			conn_close(q->c);	/* the client went away mid-body */
		else
			error(q, st, st == 413 ? "message too large"
				     : "bad Content-Length, or a body of another length", NULL);
		return;
	}
	if (handler_open(a, err, sizeof err) < 0) {
		commit_job_free(job);
		unavailable(q, err);
		return;
	}
	if (typed && charset_ok && is_batch(param(q->c, "QUERY_STRING"), type, &job->body)) {
		publish_batch(q, job);
		return;
	}
	struct req_pub p;
	if (request_pub(param(q->c, "QUERY_STRING"), ctype, job->body.p, job->body.len,
			a->conf.max_message, &p, &e) < 0) {
		commit_job_free(job);
		error(q, e.status, e.msg, NULL);
		return;
	}
	memcpy(job->chan, p.chan, sizeof job->chan);
	memcpy(job->type, p.type, sizeof job->type);
	job->one = (struct msglog_msg){ job->chan, job->type, p.data, p.len, NULL };
	job->msg = &job->one;
	job->n = 1;
	submit(q, job);
}

static void pub(struct req *q)
{
	char err[256];
	if (!method_ok(q, "GET, POST, DELETE") || !access_ok(q))
		return;
	if (strcmp(q->method, "POST") == 0) {
		publish(q);
		return;
	}
	char chan[REQ_CHANNEL_LEN + 1];
	struct req_error e;
	if (request_channel(param(q->c, "QUERY_STRING"), chan, &e) < 0) {
		error(q, e.status, e.msg, NULL);
		return;
	}
	if (handler_open(q->a, err, sizeof err) < 0) {
		unavailable(q, err);
		return;
	}
	if (strcmp(q->method, "DELETE") == 0) {
		struct commit_job *job = xcalloc(1, sizeof *job);
		job->kind = COMMIT_DELETE;
		memcpy(job->chan, chan, sizeof job->chan);
		submit(q, job);
		return;
	}
	struct buf body = BUF_INIT;
	int rc = msglog_info(q->a->log, chan, &body, err, sizeof err);
	if (rc < 0) {
		buf_free(&body);
		unavailable(q, err);
		return;
	}
	json(q, 200, &body);
}

/* What stats and metrics report: false when the request was answered
 * already (not allowed, or storage unavailable). */
static bool counts(struct req *q, int64_t *messages, int64_t *last_id, struct notify_stats *ns)
{
	char err[256];
	if (!method_ok(q, "GET") || !access_ok(q))
		return false;
	if (handler_open(q->a, err, sizeof err) < 0 ||
	    msglog_counts(q->a->log, messages, last_id, err, sizeof err) < 0) {
		unavailable(q, err);
		return false;
	}
	notify_stats(q->a->notify, ns);
	return true;
}

static void stats(struct req *q)
{
	struct app *a = q->a;
	int64_t messages, last_id;
	struct notify_stats ns;
	if (!counts(q, &messages, &last_id, &ns))
		return;
	struct buf body = BUF_INIT;
	buf_printf(&body, "{\"version\":\"%s\",\"uptime\":%lld,\"messages\":%lld,"
		   "\"last_id\":%lld,\"waiting\":%lld,\"draining\":%lld,\"published\":%llu,"
		   "\"delivered\":%llu,\"dropped\":%llu}",
		   PACKAGE_VERSION, (long long)((clock_wall_ms() - a->started_ms) / 1000),
		   (long long)messages, (long long)last_id, (long long)ns.waiting,
		   (long long)ns.draining,
		   (unsigned long long)ns.published, (unsigned long long)ns.delivered,
		   (unsigned long long)ns.dropped);
	json(q, 200, &body);
}

/* The Prometheus text exposition format, version 0.0.4. */
static void metric(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics(struct req *q)
{
	struct app *a = q->a;
	int64_t messages, last_id;
	struct notify_stats ns;
	if (!counts(q, &messages, &last_id, &ns))
		return;
	struct buf b = BUF_INIT, out = BUF_INIT;
	metric(&b, "comet_waiting", "gauge", "Subscribers held now, all processes on this database.");
	buf_printf(&b, "comet_waiting %lld\n", (long long)ns.waiting);
	metric(&b, "comet_draining", "gauge",
	       "Answers still being written to slow clients, all processes on this database.");
	buf_printf(&b, "comet_draining %lld\n", (long long)ns.draining);
	metric(&b, "comet_requests_ended_total", "counter",
	       "Held requests ended, by reason (answered, expired, failed, hungup, dropped, "
	       "shutdown).");
	for (int i = 0; i < HUB_NEND; i++)
		buf_printf(&b, "comet_requests_ended_total{reason=\"%s\"} %llu\n", hub_end_names[i],
			   (unsigned long long)ns.ends[i]);
	metric(&b, "comet_log_messages", "gauge", "Messages in the log.");
	buf_printf(&b, "comet_log_messages %lld\n", (long long)messages);
	metric(&b, "comet_log_last_id", "gauge", "Id of the newest message.");
	buf_printf(&b, "comet_log_last_id %lld\n", (long long)last_id);
	metric(&b, "comet_published_total", "counter", "Messages published.");
	buf_printf(&b, "comet_published_total %llu\n", (unsigned long long)ns.published);
	metric(&b, "comet_delivered_total", "counter", "Messages sent to subscribers.");
	buf_printf(&b, "comet_delivered_total %llu\n", (unsigned long long)ns.delivered);
	metric(&b, "comet_dropped_total", "counter",
	       "Subscribers disconnected for leaving output unread.");
	buf_printf(&b, "comet_dropped_total %llu\n", (unsigned long long)ns.dropped);
	metric(&b, "comet_storage_errors_total", "counter",
	       "Requests and publish groups refused because storage was unavailable.");
	buf_printf(&b, "comet_storage_errors_total %llu\n", (unsigned long long)ns.storage_errors);
	metric(&b, "comet_answers_total", "counter", "Answers by HTTP status.");
	for (int i = 0; i < NOTIFY_NSTATUS; i++)
		buf_printf(&b, "comet_answers_total{status=\"%d\"} %llu\n", notify_statuses[i],
			   (unsigned long long)ns.answers[i]);
	buf_printf(&b, "comet_answers_total{status=\"other\"} %llu\n",
		   (unsigned long long)ns.answers[NOTIFY_NSTATUS]);
	metric(&b, "comet_publish_commit_seconds", "histogram",
	       "Time from a publish's arrival to its commit.");
	for (int i = 0; i < NOTIFY_NBUCKETS; i++)
		buf_printf(&b, "comet_publish_commit_seconds_bucket{le=\"%g\"} %llu\n",
			   (double)notify_buckets_us[i] / 1e6, (unsigned long long)ns.commit_le[i]);
	buf_printf(&b, "comet_publish_commit_seconds_bucket{le=\"+Inf\"} %llu\n"
		   "comet_publish_commit_seconds_sum %.6f\n"
		   "comet_publish_commit_seconds_count %llu\n",
		   (unsigned long long)ns.commit_count, (double)ns.commit_sum_us / 1e6,
		   (unsigned long long)ns.commit_count);
	metric(&b, "comet_uptime_seconds", "gauge", "Seconds since this process started.");
	buf_printf(&b, "comet_uptime_seconds %lld\n",
		   (long long)((clock_wall_ms() - a->started_ms) / 1000));
	buf_printf(&out, "Status: 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		   "Cache-Control: no-store\r\n%s\r\n", buf_str(&q->headers));
	buf_add(&out, b.p, b.len);
	buf_free(&b);
	send_and_close(q, 200, &out);
}

void handler_serve(struct app *a, struct conn *c)
{
	struct req q = { a, c, param(c, "REQUEST_METHOD"), BUF_INIT, NULL };
	if (!q.method)
		q.method = "GET";
	if (conn_params_over(c)) {
		log_msg("notice", conn_id(c), "request headers and parameters larger than %d KB: 431",
			FCGI_PARAMS_MAX / 1024);
		error(&q, 431, "the request's headers and parameters are too large", NULL);
		buf_free(&q.headers);
		return;
	}
	cors(&q);
	switch (request_endpoint(param(c, "SCRIPT_NAME"), param(c, "PATH_INFO"))) {
	case REQ_EP_SUB:
		sub(&q);
		break;
	case REQ_EP_PUB:
		pub(&q);
		break;
	case REQ_EP_STATS:
		stats(&q);
		break;
	case REQ_EP_METRICS:
		metrics(&q);
		break;
	default:
		error(&q, 404, "unknown endpoint: the path must end in /sub, /pub, /stats or /metrics", NULL);
		break;
	}
	buf_free(&q.headers);
}

void handler_refuse(struct app *a, struct conn *c, int status, const char *msg)
{
	struct req q = { a, c, param(c, "REQUEST_METHOD"), BUF_INIT, NULL };
	cors(&q);
	error(&q, status, msg, NULL);
	buf_free(&q.headers);
}
