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
#include "member.h"
#include "mercure.h"
#include "pusher.h"
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
			/* A listed origin (never "*") may send cookies: EventSource
			 * withCredentials, Mercure's mercureAuthorization. */
			buf_adds(&q->headers, "\r\nVary: Origin\r\n"
				 "Access-Control-Allow-Credentials: true\r\n");
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

static bool pusher_on(const struct app *a)
{
	return a->conf.pusher_app_id && a->conf.pusher_key && a->conf.pusher_secret;
}

/* Who a subscription is on its presence channels. */
struct grant {
	struct waiter_member m[REQ_MAX_CHANNELS];
	int n;
};

static void grant_free(struct grant *g)
{
	for (int i = 0; i < g->n; i++) {
		free(g->m[i].channel);
		free(g->m[i].id);
		free(g->m[i].info);
	}
	g->n = 0;
}

/* A presence channel's member: from a presence token, or from a Pusher
 * auth string and the channel_data it signs. */
static bool member_of(struct req *q, const struct req_sub *r, const char *ch, int64_t now,
		      struct member *m)
{
	const struct conf *cf = &q->a->conf;
	for (int t = 0; t < r->nptoken; t++)
		if (cf->token_key && member_from_token(cf->token_key, ch, r->ptoken[t], now, m) == 0)
			return true;
	if (!pusher_on(q->a) || !r->socket_id[0])
		return false;
	for (int a = 0; a < r->nauth; a++)
		for (int d = 0; d < r->ncdata; d++) {
			char err[128];
			struct pusher_member pm;
			if (!pusher_channel_auth_valid(cf->pusher_key, cf->pusher_secret, r->socket_id,
						       ch, r->cdata[d], r->auth[a]) ||
			    pusher_member_parse(r->cdata[d], strlen(r->cdata[d]), &pm, err,
						sizeof err) < 0)
				continue;
			m->id = pm.id;
			m->info = pm.info ? pm.info : xstrdup("null");
			return true;
		}
	return false;
}

/* Every private- and presence- channel asked for needs its authorization:
 * a token of its own (COMET_TOKEN_KEY), or the Pusher auth string its
 * app's /broadcasting/auth gave for this socket_id; a presence channel's
 * names the member, into g. False when refused (answered). */
static bool authorize(struct req *q, const struct req_sub *r, struct grant *g)
{
	const struct conf *cf = &q->a->conf;
	int64_t now = clock_wall_ms() / 1000;
	g->n = 0;
	/* The publish key (itself, never loopback alone) reads every channel,
	 * as nobody: the site's own code, not a member. */
	if (cf->publish_key && auth_publish(param(q->c, "HTTP_AUTHORIZATION"),
					    param(q->c, "REMOTE_ADDR"), cf->publish_key, false) == 0)
		return true;
	for (int i = 0; i < r->nchan; i++) {
		const char *ch = r->chan[i];
		bool pres = member_presence_channel(ch);
		if (!pres && !token_private(ch))
			continue;
		if (!cf->token_key && !pusher_on(q->a)) {
			error(q, 403, "private and presence channels are not enabled (no "
			      "COMET_TOKEN_KEY, no COMET_PUSHER_* keys)", NULL);
			grant_free(g);
			return false;
		}
		bool ok = false;
		if (pres) {
			struct member m;
			ok = member_of(q, r, ch, now, &m);
			if (ok)
				g->m[g->n++] = (struct waiter_member){ xstrdup(ch), m.id, m.info };
		}
		for (int t = 0; t < r->ntoken && !ok && !pres; t++)
			ok = cf->token_key && token_valid(cf->token_key, ch, r->token[t], now);
		for (int a = 0; a < r->nauth && !ok && !pres && pusher_on(q->a) && r->socket_id[0];
		     a++)
			ok = pusher_channel_auth_valid(cf->pusher_key, cf->pusher_secret, r->socket_id,
						       ch, NULL, r->auth[a]);
		if (!ok) {
			char msg[REQ_CHANNEL_LEN + 96];
			snprintf(msg, sizeof msg, "a valid, unexpired %s is required for %s",
				 pres ? "presence token (or Pusher auth and channel_data)"
				      : "token (or Pusher auth)", ch);
			error(q, 403, msg, NULL);
			grant_free(g);
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

/* Presence changes go to the write thread as jobs. */
static void presence_job(void *arg, const struct waiter_member *m, int n, int delta)
{
	struct app *a = arg;
	commit_submit(a->commit, commit_presence_job(m, n, delta));
}

/* The waiter for a request to be held (its socket parked, the grant's
 * members moved into it), or NULL when it could not be (answered). */
static struct waiter *new_waiter(struct req *q, const struct req_sub *r, int64_t cursor,
				 int64_t checked, bool sync, struct grant *g)
{
	char err[256];
	struct app *a = q->a;
	if ((!a->hub && hub_start(&a->hub, &a->conf, a->threaded, err, sizeof err) < 0) ||
	    hub_attach(a->hub, a->notify, err, sizeof err) < 0 ||
	    ((sync || g->n) && !commit_ready(q, err, sizeof err))) {
		grant_free(g);
		if (r->stream) {	/* its header block is out already */
			log_msg("error", conn_id(q->c), "%s", err);
			conn_close(q->c);
		} else {
			unavailable(q, err);
		}
		return NULL;
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
	w->exclude = r->socket_id[0] ? xstrdup(r->socket_id) : NULL;
	if (g->n) {
		hub_set_presence(a->hub, presence_job, a);
		w->members = xcalloc((size_t)g->n, sizeof *w->members);
		memcpy(w->members, g->m, (size_t)g->n * sizeof *w->members);
		w->nmembers = g->n;
		g->n = 0;
	}
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
	return w;
}

/* Hands w to the hub to be held; the hub answers it. With sync (its
 * cursor is ahead of this host's copy of a shared log), it goes by way of
 * the write thread, which brings the copy up to the shared log first. */
static void hand_over(struct req *q, struct waiter *w, bool sync)
{
	struct app *a = q->a;
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

static void hold(struct req *q, const struct req_sub *r, int64_t cursor, int64_t checked,
		 bool sync, struct grant *g)
{
	struct waiter *w = new_waiter(q, r, cursor, checked, sync, g);
	if (w)
		hand_over(q, w, sync);
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
	struct grant g;
	if (!authorize(q, &r, &g))
		return;
	if (handler_open(a, err, sizeof err) < 0) {
		grant_free(&g);
		unavailable(q, err);
		return;
	}
	const char *names[REQ_MAX_CHANNELS];
	for (int i = 0; i < r.nchan; i++)
		names[i] = r.chan[i];
	/* An answer stays within the output bound (more: true says there is
	 * more to ask for). */
	struct msglog_page pg = { .max_bytes = (size_t)a->conf.output_max,
				  .exclude = r.socket_id[0] ? r.socket_id : NULL };
	/* A stream from a cursor sends its backlog from the hub; only "from
	 * now" needs the log's position here. */
	int64_t since = r.stream && r.since >= 0 ? -1 : r.since;
	if (msglog_read(a->log, names, r.nchan, since, r.limit, &pg, err, sizeof err) < 0) {
		msglog_page_free(&pg);
		grant_free(&g);
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
			grant_free(&g);
			conn_close(q->c);
			return;
		}
		buf_free(&out);
		/* The page read for "from now" only; the hub reads from a cursor. */
		bool ahead = r.since > log_last && msglog_shared(a->log);
		hold(q, &r, r.since >= 0 ? r.since : log_last, -1, ahead, &g);
		return;
	}
	if (pg.ahead) {
		msglog_page_free(&pg);
		hold(q, &r, r.since, -1, true, &g);
		return;
	}
	if (pg.count || pg.gap || pg.reset || r.timeout == 0) {
		/* Answered at once, a presence subscription is there for a
		 * moment: its member comes (or stays) for the grace. */
		if (g.n && commit_ready(q, err, sizeof err)) {
			presence_job(a, g.m, g.n, 1);
			presence_job(a, g.m, g.n, -1);
		}
		grant_free(&g);
		struct buf body = BUF_INIT;
		reply_sub(&body, pg.last_id, pg.items.p, pg.items.len, pg.more, pg.gap, pg.reset);
		notify_delivered(a->notify, (uint64_t)pg.count);
		msglog_page_free(&pg);
		json(q, 200, &body);
		return;
	}
	msglog_page_free(&pg);
	hold(q, &r, r.since >= 0 ? r.since : log_last, log_last, false, &g);
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

static void read_log(struct req *q, commit_read_fn read, const char *chan, void *arg);

/* Channel info; a presence channel's counts its members and subscriptions. */
static int info_read(struct msglog *log, struct commit_job *job, struct buf *body,
		     char *err, size_t errlen)
{
	if (msglog_info(log, job->chan, body, err, errlen) < 0)
		return 503;
	if (!member_presence_channel(job->chan))
		return 200;
	struct buf ignored = BUF_INIT;
	int64_t last;
	long count, subs;
	int rc = msglog_members(log, job->chan, true, &ignored, &last, &count, &subs, err, errlen);
	buf_free(&ignored);
	if (rc < 0)
		return 503;
	if (body->len && body->p[body->len - 1] == '}') {
		body->len--;
		buf_printf(body, ",\"members\":%ld,\"subscriptions\":%ld}", count, subs);
	}
	return 200;
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
	read_log(q, info_read, chan, NULL);
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
	metric(&b, "comet_writes_queued", "gauge",
	       "Publishes and other writes waiting for the log now, all processes on this "
	       "database.");
	buf_printf(&b, "comet_writes_queued %lld\n", (long long)ns.queued);
	metric(&b, "comet_requests_ended_total", "counter",
	       "Held requests ended, by reason (answered, expired, failed, hungup, dropped, "
	       "shutdown).");
	for (int i = 0; i < HUB_NEND; i++)
		buf_printf(&b, "comet_requests_ended_total{reason=\"%s\"} %llu\n", hub_end_names[i],
			   (unsigned long long)ns.ends[i]);
	/* A shared log's presence is the server's: not asked for here, where
	 * nothing waits for it. */
	struct msglog_presence_count *pc;
	int npc;
	char err[256];
	if (!msglog_shared(a->log) &&
	    msglog_presence_channels(a->log, "", &pc, &npc, err, sizeof err) == 0) {
		long members = 0, subs = 0;
		for (int i = 0; i < npc; i++)
			members += pc[i].members, subs += pc[i].subs;
		msglog_presence_counts_free(pc, npc);
		metric(&b, "comet_presence_members", "gauge",
		       "Members on presence channels (in their grace included).");
		buf_printf(&b, "comet_presence_members %ld\n", members);
		metric(&b, "comet_presence_subscriptions", "gauge",
		       "Subscriptions held on presence channels, all processes.");
		buf_printf(&b, "comet_presence_subscriptions %ld\n", subs);
	}
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

/* ------------------------------------------------------------- presence */

/* A request's one presence (or private) channel and what authorizes it,
 * parsed as a subscription's query. False when answered (refused). */
static bool one_channel(struct req *q, struct req_sub *r, bool presence_only)
{
	struct app *a = q->a;
	struct req_limits lim = { 0, 0, a->conf.max_message };
	struct req_error e;
	if (request_sub(param(q->c, "QUERY_STRING"), NULL, NULL, &lim, r, &e) < 0) {
		error(q, e.status, e.msg, NULL);
		return false;
	}
	bool pres = member_presence_channel(r->chan[0]);
	if (r->nchan != 1 || (presence_only ? !pres : !pres && !token_private(r->chan[0]))) {
		error(q, 400, presence_only ? "one channel named presence-... is required"
		      : "one channel named private-... or presence-... is required", NULL);
		return false;
	}
	return true;
}

/* GET .../presence?channel=presence-x: the members as of a log id. */
/* Runs read against the log: here, or on the write thread for a shared
 * log (its server is not waited for on this thread), which answers. */
static void read_log(struct req *q, commit_read_fn read, const char *chan, void *arg)
{
	char err[256];
	struct app *a = q->a;
	struct commit_job *job = xcalloc(1, sizeof *job);
	job->kind = COMMIT_READ;
	job->read = read;
	job->read_arg = arg;
	snprintf(job->chan, sizeof job->chan, "%s", chan);
	if (handler_open(a, err, sizeof err) < 0) {
		commit_job_free(job);
		unavailable(q, err);
		return;
	}
	if (msglog_shared(a->log)) {
		submit(q, job);
		return;
	}
	struct buf body = BUF_INIT;
	int st = read(a->log, job, &body, err, sizeof err);
	commit_job_free(job);
	if (st == 503) {
		buf_free(&body);
		unavailable(q, err);
	} else if (st >= 300) {
		buf_free(&body);
		error(q, st, err, NULL);
	} else {
		json(q, st, &body);
	}
}

static int members_read(struct msglog *log, struct commit_job *job, struct buf *body,
			char *err, size_t errlen)
{
	struct buf members = BUF_INIT;
	int64_t last;
	long count, subs;
	if (msglog_members(log, job->chan, false, &members, &last, &count, &subs, err,
			   errlen) < 0) {
		buf_free(&members);
		return 503;
	}
	buf_adds(body, "{\"channel\":");
	reply_json_string(body, job->chan);
	buf_printf(body, ",\"last_id\":%lld,\"members\":", (long long)last);
	buf_add(body, members.p, members.len);
	buf_addc(body, '}');
	buf_free(&members);
	return 200;
}

static void presence_get(struct req *q)
{
	struct req_sub r;
	struct grant g = { .n = 0 };
	if (!method_ok(q, "GET") || !one_channel(q, &r, true))
		return;
	/* The publish key sees every channel; a subscriber its own. */
	if (!authorize(q, &r, &g))
		return;
	grant_free(&g);
	read_log(q, members_read, r.chan[0], NULL);
}

/* Client events: WHISPER_RATE a second per socket_id, in a burst of as
 * many (Pusher's limit), counted by the reading thread alone. */
#define WHISPER_RATE 10
#define WHISPER_SLOTS 1024
#define WHISPER_BODY_MAX (PUSHER_DATA_MAX + 512)
static struct {
	uint64_t hash;
	int64_t at;		/* ms of the last refill */
	int tokens;
} bucket[WHISPER_SLOTS];

static bool whisper_allowed(const char *sid, int64_t now)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = sid; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	typeof(bucket[0]) *b = &bucket[h % WHISPER_SLOTS];
	if (b->hash != h) {
		b->hash = h;
		b->tokens = WHISPER_RATE;
		b->at = now;
	}
	int64_t add = (now - b->at) * WHISPER_RATE / 1000;
	if (add > 0) {
		b->tokens = b->tokens + add > WHISPER_RATE ? WHISPER_RATE : b->tokens + (int)add;
		b->at = now;
	}
	if (b->tokens == 0)
		return false;
	b->tokens--;
	return true;
}

/* POST .../whisper?channel=private-x&socket_id=S&auth=...: a client event
 * {"event": "client-...", "data": any} to the channel's other subscribers
 * (never back to S), as Laravel Echo's whisper sends it. */
static void whisper(struct req *q)
{
	struct req_sub r;
	struct grant g = { .n = 0 };
	if (!method_ok(q, "POST") || !one_channel(q, &r, false))
		return;
	if (!r.socket_id[0]) {
		error(q, 400, "a client event needs the sender's socket_id", NULL);
		return;
	}
	if (!authorize(q, &r, &g))
		return;
	grant_free(&g);
	if (!whisper_allowed(r.socket_id, clock_mono_ms())) {
		error(q, 429, "more than 10 client events a second from this connection",
		      "Retry-After: 1\r\n");
		return;
	}
	struct commit_job *job = xcalloc(1, sizeof *job);
	int st = read_body(q->c, WHISPER_BODY_MAX, &job->body);
	const char *why = NULL;
	struct buf data = BUF_INIT;
	if (st == 0)
		why = pusher_client_event(job->body.p, job->body.len, &data);
	if (st || why) {
		commit_job_free(job);
		buf_free(&data);
		if (st < 0)
			conn_close(q->c);
		else
			error(q, st ? st : 400, st == 413 ? "a client event is at most 10 KB"
			      : st ? "bad Content-Length" : why, NULL);
		return;
	}
	memcpy(job->chan, r.chan[0], sizeof job->chan);
	snprintf(job->type, sizeof job->type, "%s", REQ_PUSHER_TYPE);
	buf_free(&job->body);
	job->body = data;
	job->parsed.owned = xcalloc(1, sizeof *job->parsed.owned);
	job->parsed.owned[0] = xstrdup(r.socket_id);
	job->parsed.nowned = 1;
	job->one = (struct msglog_msg){ job->chan, job->type, job->body.p, job->body.len,
					job->parsed.owned[0] };
	job->msg = &job->one;
	job->n = 1;
	submit(q, job);
}

/* ------------------------------------------------------ the Pusher API */

/* The counts of the presence channels among names (Pusher's user_count,
 * subscription_count): what this log knows of; others are unoccupied. */
static int pusher_states(struct msglog *log, const char *const *names, int n,
			 struct pusher_channel_state *st, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		st[i] = (struct pusher_channel_state){ names[i], 0, 0 };
		if (!member_presence_channel(names[i]))
			continue;
		struct buf ignored = BUF_INIT;
		int64_t last;
		int rc = msglog_members(log, names[i], true, &ignored, &last, &st[i].user_count,
					&st[i].subscription_count, err, errlen);
		buf_free(&ignored);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* POST .../apps/<id>/events and batch_events: one message per event and
 * channel, all in one transaction, never delivered back to socket_id. */
static void pusher_events(struct req *q, const struct pusher_route *rt, struct commit_job *job)
{
	char err[256];
	struct app *a = q->a;
	struct pusher_events ev;
	int st = rt->ep == PUSHER_EVENTS
		 ? pusher_events_parse(job->body.p, job->body.len, (size_t)a->conf.max_message,
				       &ev, err, sizeof err)
		 : pusher_batch_parse(job->body.p, job->body.len, (size_t)a->conf.max_message,
				      &ev, err, sizeof err);
	if (st) {
		commit_job_free(job);
		error(q, st, err, NULL);
		return;
	}
	/* Every message's strings are the job's (b->owned). */
	int total = 0;
	for (int i = 0; i < ev.n; i++)
		total += ev.ev[i].nchannel;
	struct json_batch *b = &job->parsed;
	b->msg = xcalloc((size_t)total, sizeof *b->msg);
	b->owned = xcalloc((size_t)(total + 2 * ev.n), sizeof *b->owned);
	const char *names[PUSHER_CHANNELS_MAX * PUSHER_BATCH_MAX];
	for (int i = 0; i < ev.n && !st; i++) {
		const struct pusher_event *e = &ev.ev[i];
		struct buf d = BUF_INIT;
		buf_adds(&d, "{\"event\":");
		reply_json_string(&d, e->name);
		buf_adds(&d, ",\"data\":");
		reply_json_string(&d, e->data);
		buf_addc(&d, '}');
		char *data = buf_str(&d) == d.p ? d.p : xstrdup("");
		b->owned[b->nowned++] = data;
		char *origin = e->socket_id ? xstrdup(e->socket_id) : NULL;
		if (origin)
			b->owned[b->nowned++] = origin;
		for (int c = 0; c < e->nchannel && !st; c++) {
			if (!request_channel_valid(e->channel[c], strlen(e->channel[c]))) {
				st = 400;
				snprintf(err, sizeof err, "comet-fcgi's channel names are 1 to 128 of "
					 "A-Z a-z 0-9 _ - . : @, not %.140s", e->channel[c]);
				break;
			}
			struct req_error re;
			if (request_message(e->channel[c], REQ_PUSHER_TYPE, data, d.len,
					    a->conf.max_message, &re) < 0) {
				st = re.status;
				snprintf(err, sizeof err, "%s%s%s", re.msg,
					 re.status == 400 ? ": " : "",
					 re.status == 400 ? e->channel[c] : "");
				break;
			}
			char *chan = b->owned[b->nowned++] = xstrdup(e->channel[c]);
			names[b->n] = chan;
			b->msg[b->n++] = (struct msglog_msg){ chan, REQ_PUSHER_TYPE, data, d.len,
							      origin };
		}
	}
	struct buf reply = BUF_INIT;
	if (!st && ev.info) {
		struct pusher_channel_state *cs = xcalloc((size_t)b->n + 1, sizeof *cs);
		if (handler_open(a, err, sizeof err) < 0 ||
		    pusher_states(a->log, names, b->n, cs, err, sizeof err) < 0)
			st = 503;
		else
			pusher_render_events(&reply, &ev, cs, b->n);
		free(cs);
	} else if (!st) {
		pusher_render_events(&reply, &ev, NULL, 0);
	}
	pusher_events_free(&ev);
	if (st) {
		buf_free(&reply);
		commit_job_free(job);
		if (st == 503)
			unavailable(q, err);
		else
			error(q, st, err, NULL);
		return;
	}
	job->reply = reply.p ? reply.p : xstrdup("{}");
	job->msg = b->msg;
	job->n = b->n;
	submit(q, job);
}

/* GET .../apps/<id>/channels, .../channels/<name>, .../channels/<name>/users:
 * from what the log knows of presence channels. */
struct pusher_query {
	struct pusher_route rt;
	struct pusher_get g;
};

static int pusher_read(struct msglog *log, struct commit_job *job, struct buf *body,
		       char *err, size_t errlen)
{
	const struct pusher_query *pq = job->read_arg;
	if (pq->rt.ep == PUSHER_CHANNELS) {
		struct msglog_presence_count *pc;
		int n;
		if (msglog_presence_channels(log, pq->g.prefix, &pc, &n, err, errlen) < 0)
			return 503;
		struct pusher_channel_state *cs = xcalloc((size_t)n + 1, sizeof *cs);
		for (int i = 0; i < n; i++)
			cs[i] = (struct pusher_channel_state){ pc[i].channel, pc[i].members, pc[i].subs };
		pusher_render_channels(body, &pq->g, cs, n);
		free(cs);
		msglog_presence_counts_free(pc, n);
	} else if (pq->rt.ep == PUSHER_CHANNEL) {
		const char *name = pq->rt.channel;
		struct pusher_channel_state cs;
		if (pusher_states(log, &name, 1, &cs, err, errlen) < 0)
			return 503;
		pusher_render_channel(body, &pq->rt, &pq->g,
				      cs.user_count || cs.subscription_count ? &cs : NULL);
	} else {
		struct buf ids = BUF_INIT;
		int64_t last;
		long count, subs;
		if (msglog_members(log, pq->rt.channel, true, &ids, &last, &count, &subs, err,
				   errlen) < 0) {
			buf_free(&ids);
			return 503;
		}
		buf_adds(body, "{\"users\":");
		buf_add(body, ids.p, ids.len);
		buf_addc(body, '}');
		buf_free(&ids);
	}
	return 200;
}

static void pusher_get(struct req *q, const struct pusher_route *rt)
{
	char err[256];
	struct pusher_query *pq = xcalloc(1, sizeof *pq);
	pq->rt = *rt;
	int st = pusher_get_parse(rt, param(q->c, "QUERY_STRING"), &pq->g, err, sizeof err);
	if (st) {
		free(pq);
		error(q, st, err, NULL);
		return;
	}
	read_log(q, pusher_read, rt->channel, pq);
}

/* The Pusher Channels HTTP API, signed as Pusher's libraries sign it. */
static void pusher_api(struct req *q)
{
	char err[256];
	struct app *a = q->a;
	if (!pusher_on(a)) {
		error(q, 404, "the Pusher HTTP API is off: set COMET_PUSHER_APP_ID, COMET_PUSHER_KEY "
		      "and COMET_PUSHER_SECRET", NULL);
		return;
	}
	char *path = request_pusher_path(param(q->c, "SCRIPT_NAME"), param(q->c, "PATH_INFO"));
	struct pusher_route rt;
	int st = pusher_route(a->conf.pusher_app_id, q->method, path, &rt, err, sizeof err);
	if (st == 405) {
		char allow[64];
		snprintf(allow, sizeof allow, "Allow: %s\r\n", rt.allow);
		error(q, 405, err, allow);
	} else if (st) {
		error(q, st, err, NULL);
	}
	if (st) {
		free(path);
		return;
	}
	struct commit_job *job = xcalloc(1, sizeof *job);
	if (strcmp(q->method, "POST") == 0) {
		st = read_body(q->c, request_body_max("application/json", a->conf.max_message),
			       &job->body);
		if (st) {
			free(path);
			commit_job_free(job);
			if (st < 0)
				conn_close(q->c);
			else
				error(q, st, st == 413 ? "request too large" : "bad Content-Length",
				      NULL);
			return;
		}
	}
	struct pusher_app app = { a->conf.pusher_app_id, a->conf.pusher_key,
				  a->conf.pusher_secret };
	st = pusher_verify(&app, q->method, path, param(q->c, "QUERY_STRING"), job->body.p,
			   job->body.len, clock_wall_ms() / 1000, err, sizeof err);
	free(path);
	if (st) {
		commit_job_free(job);
		error(q, st, err, NULL);
		return;
	}
	if (rt.ep == PUSHER_EVENTS || rt.ep == PUSHER_BATCH_EVENTS) {
		pusher_events(q, &rt, job);
		return;
	}
	commit_job_free(job);
	pusher_get(q, &rt);
}

/* ------------------------------------------------------------- Mercure */

int handler_keys(struct app *a, char *err, size_t errlen)
{
	char why[256];
	if (!a->conf.mercure_jwt_key || a->mercure_key.alg)
		return 0;
	if (jwtauth_key_load(&a->mercure_key, a->conf.mercure_jwt_key, why, sizeof why) < 0) {
		snprintf(err, errlen, "COMET_MERCURE_JWT_KEY: %s", why);
		return -1;
	}
	return 0;
}

/* The request's JWT verified (where mercure_token_find looks): 0 with
 * claims; 1 when there is none; -1 when answered 401. */
static int mercure_claims(struct req *q, const char *query_tok, int nquery,
			  struct jwtauth_claims *claims, enum mercure_token_src *src)
{
	const char *tok;
	size_t len;
	char err[256];
	*src = mercure_token_find(param(q->c, "HTTP_AUTHORIZATION"), query_tok, nquery,
				  param(q->c, "HTTP_COOKIE"), &tok, &len);
	if (*src == MERCURE_TOKEN_NONE)
		return 1;
	if (*src == MERCURE_TOKEN_BAD ||
	    jwtauth_verify(&q->a->mercure_key, tok, len, clock_wall_ms() / 1000, claims, err,
			   sizeof err) < 0) {
		if (*src == MERCURE_TOKEN_BAD)
			snprintf(err, sizeof err, "the JWT is not \"Bearer <token>\"");
		error(q, 401, err, "WWW-Authenticate: Bearer realm=\"mercure\"\r\n");
		return -1;
	}
	return 0;
}

/* A publish by cookie must come from an origin the site allows
 * (COMET_CORS_ORIGIN): a cookie goes with any page's form. */
static bool origin_allowed(struct req *q)
{
	const char *allowed = q->a->conf.cors_origin, *origin = param(q->c, "HTTP_ORIGIN");
	if (!origin)
		return false;
	size_t olen = strlen(origin);
	for (const char *p = allowed ? allowed : ""; *p;) {
		size_t n = strcspn(p, " ,");
		if ((n == 1 && *p == '*') || (n == olen && strncmp(p, origin, n) == 0))
			return true;
		p += n;
		p += strspn(p, " ,");
	}
	return false;
}

static void mercure_publish(struct req *q)
{
	char err[256];
	struct app *a = q->a;
	struct jwtauth_claims claims;
	enum mercure_token_src src;
	int rc = mercure_claims(q, NULL, 0, &claims, &src);
	if (rc < 0)
		return;
	if (rc > 0) {
		error(q, 401, "publishing needs a JWT (Authorization: Bearer, or the "
		      "mercureAuthorization cookie)", "WWW-Authenticate: Bearer realm=\"mercure\"\r\n");
		return;
	}
	struct mercure_selectors publish = { NULL, 0 };
	struct mercure_update u;
	memset(&u, 0, sizeof u);
	struct commit_job *job = xcalloc(1, sizeof *job);
	int st = src == MERCURE_TOKEN_COOKIE && !origin_allowed(q) ? 403 : 0;
	if (st)
		snprintf(err, sizeof err, "a publish by cookie must come from an allowed origin "
			 "(COMET_CORS_ORIGIN)");
	else if ((st = read_body(q->c, request_body_max("application/x-www-form-urlencoded",
							 a->conf.max_message), &job->body)) != 0)
		snprintf(err, sizeof err, "%s", st == 413 ? "update too large" : "bad Content-Length");
	else if ((st = mercure_publish_parse(job->body.p, job->body.len, &u, err, sizeof err)) != 0)
		;
	else if (mercure_selectors_compile(&publish, claims.publish, claims.npublish, err,
					   sizeof err) < 0 ||
		 !mercure_can_publish(&publish, u.topics, u.ntopics)) {
		st = 403;
		snprintf(err, sizeof err, "the JWT's mercure.publish claim does not cover every "
			 "topic of this update");
	} else if (mercure_assign_id(&u, mercure_random_default, NULL) < 0) {
		st = 503;
		snprintf(err, sizeof err, "no random bytes for an update id");
	}
	mercure_selectors_free(&publish);
	jwtauth_claims_free(&claims);
	struct buf data = BUF_INIT;
	struct req_error e;
	if (!st) {
		mercure_update_store(&u, &data);
		if (request_message(MERCURE_CHANNEL, MERCURE_TYPE, data.p, data.len,
				    a->conf.max_message, &e) < 0) {
			st = e.status;
			snprintf(err, sizeof err, "%s", e.msg);
		}
	}
	if (st) {
		buf_free(&data);
		mercure_update_free(&u);
		commit_job_free(job);
		if (st < 0)
			conn_close(q->c);
		else
			error(q, st, err, NULL);
		return;
	}
	snprintf(job->chan, sizeof job->chan, "%s", MERCURE_CHANNEL);
	snprintf(job->type, sizeof job->type, "%s", MERCURE_TYPE);
	job->parsed.owned = xcalloc(1, sizeof *job->parsed.owned);
	job->parsed.owned[0] = xstrdup(u.id);
	job->parsed.nowned = 1;
	job->reply = xstrdup(u.id);
	job->reply_text = true;
	mercure_update_free(&u);
	buf_free(&job->body);
	job->body = data;
	job->one = (struct msglog_msg){ job->chan, job->type, job->body.p, job->body.len,
					job->parsed.owned[0] };
	job->msg = &job->one;
	job->n = 1;
	submit(q, job);
}

static bool mercure_render(void *arg, const char *json, size_t n, struct buf *out)
{
	return mercure_event_for(arg, json, n, out);
}

static void mercure_render_free(void *arg)
{
	mercure_filter_free(arg);
	free(arg);
}

static void mercure_subscribe(struct req *q)
{
	char err[256];
	struct app *a = q->a;
	struct mercure_sub sub;
	if (mercure_subscribe_parse(param(q->c, "QUERY_STRING"), param(q->c, "HTTP_LAST_EVENT_ID"),
				    &sub, err, sizeof err) != 0) {
		mercure_sub_free(&sub);
		error(q, 400, err, NULL);
		return;
	}
	struct jwtauth_claims claims;
	memset(&claims, 0, sizeof claims);
	enum mercure_token_src src;
	int rc = mercure_claims(q, sub.authorization, sub.nauthorization, &claims, &src);
	if (rc < 0 || (rc > 0 && !a->conf.mercure_anonymous)) {
		if (rc > 0)
			error(q, 401, "subscribing needs a JWT here (COMET_MERCURE_ANONYMOUS is off)",
			      "WWW-Authenticate: Bearer realm=\"mercure\"\r\n");
		mercure_sub_free(&sub);
		return;
	}
	struct mercure_filter *f = xcalloc(1, sizeof *f);
	f->requested = sub.sel;
	sub.sel = (struct mercure_selectors){ NULL, 0 };
	if (rc == 0 && mercure_selectors_compile(&f->subscribe, claims.subscribe,
						 claims.nsubscribe, err, sizeof err) < 0) {
		jwtauth_claims_free(&claims);
		mercure_render_free(f);
		mercure_sub_free(&sub);
		error(q, 401, err, "WWW-Authenticate: Bearer realm=\"mercure\"\r\n");
		return;
	}
	int64_t exp = rc == 0 ? claims.exp : 0;
	jwtauth_claims_free(&claims);
	/* Where the stream starts: after the update the Last-Event-ID names,
	 * at the oldest retained one (earliest), else from now. */
	int64_t since = -1, log_last = 0;
	if (handler_open(a, err, sizeof err) < 0 ||
	    msglog_find_origin(a->log, MERCURE_CHANNEL, sub.earliest ? NULL : sub.last_event_id,
			       &since, &log_last, err, sizeof err) < 0) {
		mercure_render_free(f);
		mercure_sub_free(&sub);
		unavailable(q, err);
		return;
	}
	if (sub.earliest)
		since = 0;
	else if (since < 0)
		since = log_last;
	struct buf out = BUF_INIT, hdr = BUF_INIT;
	buf_add(&hdr, q->headers.p, q->headers.len);
	if (sub.last_event_id && !strpbrk(sub.last_event_id, "\r\n"))
		buf_printf(&hdr, "Last-Event-ID: %s\r\n", sub.last_event_id);
	reply_sse_start(&out, buf_str(&hdr), 2000);
	buf_free(&hdr);
	mercure_sub_free(&sub);
	notify_answer(a->notify, 200);
	if (conn_send(q->c, out.p, out.len) < 0) {
		buf_free(&out);
		mercure_render_free(f);
		conn_close(q->c);
		return;
	}
	buf_free(&out);
	struct req_sub r;
	memset(&r, 0, sizeof r);
	r.nchan = 1;
	snprintf(r.chan[0], sizeof r.chan[0], "%s", MERCURE_CHANNEL);
	r.stream = true;
	struct grant g = { .n = 0 };
	struct waiter *w = new_waiter(q, &r, since, -1, false, &g);
	if (!w) {
		mercure_render_free(f);
		return;
	}
	w->render = mercure_render;
	w->render_arg = f;
	w->render_free = mercure_render_free;
	/* The hub's own heartbeat, a comment: EventSource shows nothing. */
	w->ping = ":\n\n";
	/* The protocol: a subscription ends when its JWT expires. */
	if (exp) {
		int64_t left = exp * 1000 - clock_wall_ms();
		int64_t until = clock_mono_ms() + (left > 0 ? left : 0);
		if (until < w->end)
			w->end = until;
		if (w->end < w->deadline)
			w->deadline = w->end;
	}
	hand_over(q, w, false);
}

static void mercure(struct req *q)
{
	if (!q->a->conf.mercure_jwt_key) {
		error(q, 404, "the Mercure endpoint is off: set COMET_MERCURE_JWT_KEY", NULL);
		return;
	}
	if (!method_ok(q, "GET, POST"))
		return;
	if (strcmp(q->method, "POST") == 0)
		mercure_publish(q);
	else
		mercure_subscribe(q);
}

void handler_serve(struct app *a, struct conn *c)
{
	conf_refresh(&a->conf);	/* keys changed in the settings file (conf.h) */
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
	case REQ_EP_PRESENCE:
		presence_get(&q);
		break;
	case REQ_EP_WHISPER:
		whisper(&q);
		break;
	case REQ_EP_PUSHER:
		pusher_api(&q);
		break;
	case REQ_EP_MERCURE:
		mercure(&q);
		break;
	default:
		error(&q, 404, "unknown endpoint: the path must end in /sub, /pub, /presence, "
		      "/whisper, /stats or /metrics, or be the Pusher API's /apps/...", NULL);
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
