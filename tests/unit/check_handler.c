/* Unit tests: the handler, one table of requests (method, path, query,
 * headers, body) and what each is answered (status, Content-Type, a key of
 * the JSON body or other text, a header there or not): every endpoint and
 * every error status of SPEC.md's "Errors" that needs no web server. Each
 * request comes over a real socket pair as a web server sends it, through
 * conn and handler_serve, to an app as CGI runs it (no threads of its own:
 * a publish is committed, a held request answered, before handler_serve
 * returns) on a fresh SQLite log in a temporary directory. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/evp.h>

#include "clock.h"
#include "conf.h"
#include "conn.h"
#include "fcgi.h"
#include "handler.h"
#include "jwtauth.h"
#include "pusher.h"
#include "suites.h"
#include "token.h"
#include "wire.h"

/* The settings a row runs with. */
enum setup {
	KEYED,		/* a publish key, a token key, the Pusher API's keys, one CORS
			 * origin, small bounds */
	CLOSED,		/* no publish key: publishing closed to everyone */
	LOOPBACK,	/* no publish key, COMET_PUBLISH_LOOPBACK=on */
	BROKEN,		/* KEYED, but the database's directory does not exist */
};

#define PUBLISH_KEY "k3y"
#define TOKEN_KEY "t0ken-key"
#define ORIGIN "https://good.example"
#define MAX_MESSAGE 256
#define STR(x) #x
#define XSTR(x) STR(x)
#define PUSHER_APP "1"
#define PUSHER_KEY "pk"
#define PUSHER_SECRET "ps"
#define MERCURE_KEY "a Mercure secret of at least 32 bytes"
#define MERCURE_PATH "/.well-known/mercure"

static char *dir;
static char db[4200];
static enum setup setup_now;
static struct app app;

static const char *lookup(const char *name, void *arg)
{
	static const char *const keyed[] = {
		"COMET_PUBLISH_KEY", PUBLISH_KEY, "COMET_TOKEN_KEY", TOKEN_KEY,
		"COMET_CORS_ORIGIN", ORIGIN, "COMET_MAX_MESSAGE", XSTR(MAX_MESSAGE),
		"COMET_PUSHER_APP_ID", PUSHER_APP, "COMET_PUSHER_KEY", PUSHER_KEY,
		"COMET_PUSHER_SECRET", PUSHER_SECRET, "COMET_MERCURE_JWT_KEY", MERCURE_KEY,
		/* A stream lives a second, so that the CGI-style hub ends it. */
		"COMET_STREAM_MAX", "1", "COMET_KEEPALIVE", "1", NULL
	};
	/* No settings file of this machine's. */
	if (strcmp(name, "COMET_CONFIG") == 0)
		return "";
	if (strcmp(name, "COMET_DB") == 0)
		return db;
	if (strcmp(name, "COMET_STATE_DIR") == 0)
		return dir;
	if (strcmp(name, "COMET_PUBLISH_LOOPBACK") == 0 && setup_now == LOOPBACK)
		return "on";
	for (int i = 0; (setup_now == KEYED || setup_now == BROKEN) && keyed[i]; i += 2)
		if (strcmp(name, keyed[i]) == 0)
			return keyed[i + 1];
	return NULL;
}

static void start(enum setup s)
{
	char err[256];
	setup_now = s;
	snprintf(db, sizeof db, s == BROKEN ? "%s/nowhere/comet.db" : "%s/comet.db", dir);
	ck_assert_msg(conf_load(&app.conf, lookup, NULL, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(handler_keys(&app, err, sizeof err) == 0, "%s", err);
	app.started_ms = clock_wall_ms();
}

static void setup(void)
{
	dir = test_tmpdir();
	memset(&app, 0, sizeof app);
}

static void teardown(void)
{
	if (app.hub)
		hub_end(app.hub, clock_wall_ms() + 5000, true);
	commit_close(app.commit);
	msglog_close(app.log);
	notify_close(app.notify);
	jwtauth_key_free(&app.mercure_key);
	conf_free(&app.conf);
	test_rmtree(dir);
	free(dir);
}

/* What a row adds to a request, besides its fields. */
enum extra {
	PLAIN,
	HUGE_HEADER,	/* a 300 KB header: over FCGI_PARAMS_MAX */
	TOKEN,		/* token= a valid one for the channel "private-x" */
	REFUSE_408,	/* handler_refuse(408), as the server loop does */
	SIGNED,		/* signed as Pusher's libraries sign (auth_*, body_md5) */
	OVER_MAX,	/* a body of COMET_MAX_MESSAGE bytes and one more */
	JWT,		/* Authorization: Bearer, a JWT that may publish and
			 * subscribe to every Mercure topic */
	BURST,		/* TOKEN, after as many client events as a second allows */
};

struct answer {
	int status;
	struct buf head, body;
};

/* The answer's status line, its header block and body (NUL-terminated). */
static void parse(const struct buf *out, struct answer *a)
{
	const char *p = out->p ? out->p : "", *end = strstr(p, "\r\n\r\n");
	ck_assert_msg(end != NULL, "no header block: %s", p);
	buf_add(&a->head, p, (size_t)(end - p) + 2);
	buf_str(&a->head);
	buf_add(&a->body, end + 4, out->len - (size_t)(end + 4 - p));
	buf_str(&a->body);
	ck_assert_msg(sscanf(p, "Status: %d", &a->status) == 1, "no Status line: %s", p);
}

/* One request through the handler; its whole answer. params: CGI names and
 * values, NULL-terminated; REMOTE_ADDR (127.0.0.1) and CONTENT_LENGTH
 * (the body's) are added unless given. */
static void serve(const char *const *params, const char *body, enum extra extra,
		  struct answer *a)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	const char *all[64];
	int n = 0;
	bool addr = false, length = false;
	for (int i = 0; params[i]; i += 2) {
		addr |= strcmp(params[i], "REMOTE_ADDR") == 0;
		length |= strcmp(params[i], "CONTENT_LENGTH") == 0;
		all[n++] = params[i];
		all[n++] = params[i + 1];
	}
	char cl[32], *huge = NULL;
	snprintf(cl, sizeof cl, "%zu", body ? strlen(body) : 0);
	if (!addr) {
		all[n++] = "REMOTE_ADDR";
		all[n++] = "127.0.0.1";
	}
	if (!length && body) {
		all[n++] = "CONTENT_LENGTH";
		all[n++] = cl;
	}
	if (extra == HUGE_HEADER) {
		huge = malloc(300 * 1024 + 1);
		memset(huge, 'h', 300 * 1024);
		huge[300 * 1024] = '\0';
		all[n++] = "HTTP_X_HUGE";
		all[n++] = huge;
	}
	all[n] = NULL;
	struct buf req = BUF_INIT;
	wire_request(&req, 1, all, body, body ? strlen(body) : 0);
	/* The web server writes while the program reads: a request may be
	 * more than the socket holds. */
	struct conn *c = conn_fcgi(sv[0], 1, handler_body_max(&app.conf));
	enum conn_fill fill = CONN_MORE;
	for (size_t off = 0; fill == CONN_MORE;) {
		ssize_t w = off < req.len ? write(sv[1], req.p + off, req.len - off) : 0;
		if (w > 0)
			off += (size_t)w;
		fill = conn_fill(c);
	}
	ck_assert_int_eq(fill, CONN_READY);
	if (extra == REFUSE_408)
		handler_refuse(&app, c, 408, "the request body did not arrive in time");
	else
		handler_serve(&app, c);
	/* Ended (the app runs as CGI does): the whole answer is there. */
	fcntl(sv[1], F_SETFL, 0);
	struct buf raw = BUF_INIT, out = BUF_INIT;
	char chunk[65536];
	ssize_t got;
	while ((got = read(sv[1], chunk, sizeof chunk)) > 0)
		buf_add(&raw, chunk, (size_t)got);
	struct wire_seen seen = { 0, 0, 0 };
	wire_scan(raw.p, raw.len, &out, &seen);
	ck_assert_int_eq(seen.end_requests, 1);
	parse(&out, a);
	close(sv[1]);
	free(huge);
	buf_free(&req);
	buf_free(&raw);
	buf_free(&out);
}

#define KEY "HTTP_AUTHORIZATION", "Bearer " PUBLISH_KEY
#define TEXT "CONTENT_TYPE", "text/plain"
#define JSON "CONTENT_TYPE", "application/json"
#define FORM "CONTENT_TYPE", "application/x-www-form-urlencoded"
#define FROM_AFAR "REMOTE_ADDR", "203.0.113.9"

/* The auth_* parameters (and body_md5) Pusher's libraries add to a
 * request's query, after what query holds. */
static void sign(const char *method, const char *path, const char *body, char *query,
		 size_t size)
{
	char err[256], sig[65];
	size_t n = strlen(query);
	n += (size_t)snprintf(query + n, size - n, "%sauth_key=" PUSHER_KEY "&auth_timestamp=%lld"
			      "&auth_version=1.0", n ? "&" : "",
			      (long long)(clock_wall_ms() / 1000));
	if (body) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned len;
		ck_assert(EVP_Digest(body, strlen(body), md, &len, EVP_md5(), NULL));
		n += (size_t)snprintf(query + n, size - n, "&body_md5=");
		for (unsigned i = 0; i < len; i++)
			n += (size_t)snprintf(query + n, size - n, "%02x", md[i]);
	}
	struct buf s = BUF_INIT;
	ck_assert_msg(pusher_string_to_sign(method, path, query, &s, err, sizeof err) == 0, "%s",
		      err);
	pusher_hmac_hex(PUSHER_SECRET, s.p, s.len, sig);
	snprintf(query + n, size - n, "&auth_signature=%s", sig);
	buf_free(&s);
}

static const struct handler_case {
	const char *name;
	enum setup setup;
	const char *method;
	const char *path;		/* SCRIPT_NAME */
	const char *query;
	const char *params[9];		/* more CGI names and values, NULL-terminated */
	const char *body;		/* NULL: none */
	enum extra extra;
	int status;
	const char *type;		/* the Content-Type starts so; NULL: none asked */
	const char *has;		/* in the body: a JSON key, or other text */
	const char *header;		/* in the header block; NULL: none asked */
	const char *lacks;		/* not in the header block */
} cases[] = {
	/* subscribe */
	{ "poll, nothing new", KEYED, "GET", "/comet/sub", "channel=a&timeout=0", { NULL }, NULL,
	  PLAIN, 200, "application/json", "\"last_id\":", "Cache-Control: no-store", NULL },
	{ "poll from 0", KEYED, "GET", "/sub", "channel=seeded&since=0&timeout=0", { NULL }, NULL,
	  PLAIN, 200, "application/json", "\"data\":\"seed\"", NULL, NULL },
	{ "two channels, comma-separated", KEYED, "GET", "/app/comet.fcgi/sub",
	  "channel=a,seeded&since=0&timeout=0", { NULL }, NULL, PLAIN, 200, "application/json",
	  "\"channel\":\"seeded\"", NULL, NULL },
	{ "JSONP", KEYED, "GET", "/comet/sub", "channel=a&timeout=0&callback=cb.x", { NULL }, NULL,
	  PLAIN, 200, "application/javascript", "cb.x({\"last_id\":", NULL, NULL },
	{ "held, then answered empty at its timeout", KEYED, "GET", "/comet/sub",
	  "channel=a&timeout=1", { NULL }, NULL, PLAIN, 200, "application/json",
	  "\"messages\":[]", NULL, NULL },
	{ "an event stream, to its end", KEYED, "GET", "/comet/sub", "channel=seeded&since=0",
	  { "HTTP_ACCEPT", "text/event-stream", NULL }, NULL, PLAIN, 200, "text/event-stream",
	  "retry: 2000", "X-Accel-Buffering: no", NULL },
	{ "a private channel with its token", KEYED, "GET", "/comet/sub",
	  "channel=private-x&timeout=0", { NULL }, NULL, TOKEN, 200, "application/json",
	  "\"last_id\":", NULL, NULL },
	{ "no channel: 400", KEYED, "GET", "/comet/sub", "timeout=0", { NULL }, NULL, PLAIN, 400,
	  "application/json", "\"error\":", NULL, NULL },
	{ "a bad channel name: 400", KEYED, "GET", "/comet/sub", "channel=no%20spaces", { NULL },
	  NULL, PLAIN, 400, "application/json", "\"status\":400", NULL, NULL },
	{ "limit 0: 400", KEYED, "GET", "/comet/sub", "channel=a&limit=0", { NULL }, NULL, PLAIN,
	  400, "application/json", "\"error\":", NULL, NULL },
	{ "a bad callback: 400", KEYED, "GET", "/comet/sub", "channel=a&callback=1x", { NULL },
	  NULL, PLAIN, 400, "application/json", "\"error\":", NULL, NULL },
	{ "a private channel without a token: 403", KEYED, "GET", "/comet/sub",
	  "channel=private-x&timeout=0", { NULL }, NULL, PLAIN, 403, "application/json",
	  "\"error\":", NULL, NULL },
	{ "a private channel, tokens off: 403", CLOSED, "GET", "/comet/sub",
	  "channel=private-x&timeout=0", { NULL }, NULL, PLAIN, 403, "application/json",
	  "\"status\":403", NULL, NULL },
	{ "POST to sub: 405", KEYED, "POST", "/comet/sub", "channel=a", { TEXT, NULL }, "x", PLAIN,
	  405, "application/json", "\"error\":", "Allow: GET, OPTIONS", NULL },
	{ "preflight of sub", KEYED, "OPTIONS", "/comet/sub", "", { "HTTP_ORIGIN", ORIGIN, NULL },
	  NULL, PLAIN, 204, NULL, "", "Access-Control-Allow-Methods: GET", NULL },
	{ "an allowed origin", KEYED, "GET", "/comet/sub", "channel=a&timeout=0",
	  { "HTTP_ORIGIN", ORIGIN, NULL }, NULL, PLAIN, 200, "application/json", "\"last_id\":",
	  "Access-Control-Allow-Origin: " ORIGIN, NULL },
	{ "another origin", KEYED, "GET", "/comet/sub", "channel=a&timeout=0",
	  { "HTTP_ORIGIN", "https://evil.example", NULL }, NULL, PLAIN, 200, "application/json",
	  "\"last_id\":", NULL, "Access-Control-Allow-Origin" },
	{ "storage unavailable: 503", BROKEN, "GET", "/comet/sub", "channel=a&timeout=0", { NULL },
	  NULL, PLAIN, 503, "application/json", "\"error\":", "Retry-After:", NULL },

	/* publish */
	{ "publish", KEYED, "POST", "/comet/pub", "channel=a", { KEY, TEXT, NULL }, "hi", PLAIN,
	  201, "application/json", "\"id\":", NULL, NULL },
	{ "publish JSON", KEYED, "POST", "/comet/pub", "channel=a", { KEY, JSON, NULL },
	  "{\"n\":1}", PLAIN, 201, "application/json", "\"channel\":\"a\"", NULL, NULL },
	{ "publish a form", KEYED, "POST", "/comet/pub", "",
	  { KEY, "CONTENT_TYPE", "application/x-www-form-urlencoded", NULL },
	  "channel=a&data=hi", PLAIN, 201, "application/json", "\"id\":", NULL, NULL },
	{ "a batch", KEYED, "POST", "/comet/pub", "", { KEY, JSON, NULL },
	  "[{\"channel\":\"a\",\"data\":\"x\"},{\"channel\":\"b\",\"data\":{\"n\":1}}]", PLAIN, 201,
	  "application/json", "\"messages\":[{\"id\":", NULL, NULL },
	{ "a batch with an element not an object: 400", KEYED, "POST", "/comet/pub", "",
	  { KEY, JSON, NULL }, "[{\"channel\":\"a\",\"data\":\"x\"},1]", PLAIN, 400,
	  "application/json", "\"error\":", NULL, NULL },
	{ "no channel: 400", KEYED, "POST", "/comet/pub", "", { KEY, TEXT, NULL }, "hi", PLAIN, 400,
	  "application/json", "\"error\":", NULL, NULL },
	{ "a bad Content-Length: 400", KEYED, "POST", "/comet/pub", "channel=a",
	  { KEY, TEXT, "CONTENT_LENGTH", "2x", NULL }, "hi", PLAIN, 400, "application/json",
	  "\"error\":", NULL, NULL },
	{ "a body shorter than its Content-Length: 400", KEYED, "POST", "/comet/pub", "channel=a",
	  { KEY, TEXT, "CONTENT_LENGTH", "5", NULL }, "hi", PLAIN, 400, "application/json",
	  "\"error\":", NULL, NULL },
	{ "no key: 401", KEYED, "POST", "/comet/pub", "channel=a", { TEXT, NULL }, "hi", PLAIN, 401,
	  "application/json", "\"error\":", "WWW-Authenticate: Bearer", NULL },
	{ "a wrong key: 401", KEYED, "POST", "/comet/pub", "channel=a",
	  { "HTTP_AUTHORIZATION", "Bearer nope", TEXT, NULL }, "hi", PLAIN, 401,
	  "application/json", "\"status\":401", "WWW-Authenticate: Bearer", NULL },
	{ "no key configured: 403", CLOSED, "POST", "/comet/pub", "channel=a", { TEXT, NULL },
	  "hi", PLAIN, 403, "application/json", "\"error\":", NULL, NULL },
	{ "loopback only, from afar: 403", LOOPBACK, "POST", "/comet/pub", "channel=a",
	  { TEXT, FROM_AFAR, NULL }, "hi", PLAIN, 403, "application/json", "\"error\":", NULL,
	  NULL },
	{ "loopback only, from loopback", LOOPBACK, "POST", "/comet/pub", "channel=a",
	  { TEXT, NULL }, "hi", PLAIN, 201, "application/json", "\"id\":", NULL, NULL },
	{ "PUT: 405", KEYED, "PUT", "/comet/pub", "channel=a", { KEY, TEXT, NULL }, "hi", PLAIN,
	  405, "application/json", "\"error\":", "Allow: GET, POST, DELETE, OPTIONS", NULL },
	{ "a message over COMET_MAX_MESSAGE: 413", KEYED, "POST", "/comet/pub", "channel=a",
	  { KEY, TEXT, NULL }, NULL, OVER_MAX, 413, "application/json", "\"status\":413", NULL, NULL },
	{ "JSON that is not: 415", KEYED, "POST", "/comet/pub", "channel=a", { KEY, JSON, NULL },
	  "{\"n\":", PLAIN, 415, "application/json", "\"error\":", NULL, NULL },
	{ "text that is not UTF-8: 415", KEYED, "POST", "/comet/pub", "channel=a",
	  { KEY, TEXT, NULL }, "caf\xe9", PLAIN, 415, "application/json", "\"status\":415", NULL,
	  NULL },
	{ "a batch that is not UTF-8: 415", KEYED, "POST", "/comet/pub", "", { KEY, JSON, NULL },
	  "[{\"channel\":\"a\",\"data\":\"\xff\"}]", PLAIN, 415, "application/json", "\"error\":",
	  NULL, NULL },
	{ "storage unavailable: 503", BROKEN, "POST", "/comet/pub", "channel=a", { KEY, TEXT, NULL },
	  "hi", PLAIN, 503, "application/json", "\"status\":503", "Retry-After:", NULL },
	{ "preflight of pub", KEYED, "OPTIONS", "/comet/pub", "", { "HTTP_ORIGIN", ORIGIN, NULL },
	  NULL, PLAIN, 204, NULL, "", "Access-Control-Allow-Origin: " ORIGIN, NULL },

	/* channel info and DELETE */
	{ "channel info", KEYED, "GET", "/comet/pub", "channel=seeded", { KEY, NULL }, NULL, PLAIN,
	  200, "application/json", "\"first_id\":", NULL, NULL },
	{ "DELETE", KEYED, "DELETE", "/comet/pub", "channel=seeded", { KEY, NULL }, NULL, PLAIN, 200,
	  "application/json", "\"deleted\":1", NULL, NULL },
	{ "DELETE without a channel: 400", KEYED, "DELETE", "/comet/pub", "", { KEY, NULL }, NULL,
	  PLAIN, 400, "application/json", "\"error\":", NULL, NULL },
	{ "DELETE without a key: 401", KEYED, "DELETE", "/comet/pub", "channel=seeded", { NULL },
	  NULL, PLAIN, 401, "application/json", "\"error\":", "WWW-Authenticate: Bearer", NULL },

	/* stats and metrics */
	{ "stats", KEYED, "GET", "/comet/stats", "", { KEY, NULL }, NULL, PLAIN, 200,
	  "application/json", "\"published\":1", NULL, NULL },
	{ "metrics", KEYED, "GET", "/comet/metrics", "", { KEY, NULL }, NULL, PLAIN, 200,
	  "text/plain; version=0.0.4", "comet_published_total 1\n", NULL, NULL },
	{ "stats without a key: 401", KEYED, "GET", "/comet/stats", "", { NULL }, NULL, PLAIN, 401,
	  "application/json", "\"error\":", "WWW-Authenticate: Bearer", NULL },
	{ "metrics, publishing closed: 403", CLOSED, "GET", "/comet/metrics", "", { NULL }, NULL,
	  PLAIN, 403, "application/json", "\"error\":", NULL, NULL },
	{ "POST to stats: 405", KEYED, "POST", "/comet/stats", "", { KEY, TEXT, NULL }, "x", PLAIN,
	  405, "application/json", "\"error\":", "Allow: GET, OPTIONS", NULL },
	{ "stats, storage unavailable: 503", BROKEN, "GET", "/comet/stats", "", { KEY, NULL }, NULL,
	  PLAIN, 503, "application/json", "\"error\":", "Retry-After:", NULL },

	/* presence and client events */
	{ "presence members", KEYED, "GET", "/comet/presence", "channel=presence-room",
	  { KEY, NULL }, NULL, PLAIN, 200, "application/json", "\"members\":", NULL, NULL },
	{ "presence of a channel that is not: 400", KEYED, "GET", "/comet/presence", "channel=a",
	  { KEY, NULL }, NULL, PLAIN, 400, "application/json", "\"error\":", NULL, NULL },
	{ "presence unauthorized: 403", KEYED, "GET", "/comet/presence", "channel=presence-room",
	  { NULL }, NULL, PLAIN, 403, "application/json", "\"error\":", NULL, NULL },
	{ "POST to presence: 405", KEYED, "POST", "/comet/presence", "channel=presence-room",
	  { KEY, TEXT, NULL }, "x", PLAIN, 405, "application/json", "\"error\":",
	  "Allow: GET, OPTIONS", NULL },
	{ "a client event", KEYED, "POST", "/comet/whisper", "channel=private-x&socket_id=1.2",
	  { JSON, NULL }, "{\"event\":\"client-typing\",\"data\":{\"a\":1}}", TOKEN, 201,
	  "application/json", "\"id\":", NULL, NULL },
	{ "a client event without socket_id: 400", KEYED, "POST", "/comet/whisper",
	  "channel=private-x", { JSON, NULL }, "{\"event\":\"client-typing\",\"data\":{}}",
	  TOKEN, 400, "application/json", "\"error\":", NULL, NULL },
	{ "a client event not named client-: 400", KEYED, "POST", "/comet/whisper",
	  "channel=private-x&socket_id=1.2", { JSON, NULL }, "{\"event\":\"typing\",\"data\":{}}",
	  TOKEN, 400, "application/json", "\"error\":", NULL, NULL },
	{ "a client event unauthorized: 403", KEYED, "POST", "/comet/whisper",
	  "channel=private-x&socket_id=1.2", { JSON, NULL },
	  "{\"event\":\"client-typing\",\"data\":{}}", PLAIN, 403, "application/json",
	  "\"error\":", NULL, NULL },
	/* A socket_id of its own: the rate is counted per process, and the
	 * rows may run in one (CK_FORK=no). */
	{ "client events over 10 a second: 429", KEYED, "POST", "/comet/whisper",
	  "channel=private-x&socket_id=9.9", { JSON, NULL },
	  "{\"event\":\"client-typing\",\"data\":{}}", BURST, 429, "application/json",
	  "\"error\":", "Retry-After:", NULL },

	/* the Pusher HTTP API */
	{ "Pusher: channels", KEYED, "GET", "/apps/" PUSHER_APP "/channels", "", { NULL }, NULL,
	  SIGNED, 200, "application/json", "\"channels\":", NULL, NULL },
	{ "Pusher: trigger an event", KEYED, "POST", "/apps/" PUSHER_APP "/events", "",
	  { JSON, NULL }, "{\"name\":\"e\",\"channels\":[\"a\"],\"data\":\"{}\"}", SIGNED, 200,
	  "application/json", "{}", NULL, NULL },
	{ "Pusher: unsigned: 401", KEYED, "GET", "/apps/" PUSHER_APP "/channels", "", { NULL },
	  NULL, PLAIN, 401, "application/json", "\"error\":", NULL, NULL },
	{ "Pusher: another app: 404", KEYED, "GET", "/apps/2/channels", "", { NULL }, NULL, SIGNED,
	  404, "application/json", "\"error\":", NULL, NULL },
	{ "Pusher: a wrong method: 405", KEYED, "POST", "/apps/" PUSHER_APP "/channels", "",
	  { JSON, NULL }, "{}", SIGNED, 405, "application/json", "\"error\":", "Allow: GET", NULL },
	/* Mercure */
	{ "Mercure: publish", KEYED, "POST", MERCURE_PATH, "", { FORM, NULL },
	  "topic=t&data=hi", JWT, 200, "text/plain", "urn:uuid:", NULL, NULL },
	{ "Mercure: subscribe, to the stream's end", KEYED, "GET", MERCURE_PATH,
	  "topic=t", { NULL }, NULL, JWT, 200, "text/event-stream", "", NULL,
	  NULL },
	{ "Mercure: a publish without a topic: 400", KEYED, "POST", MERCURE_PATH, "",
	  { FORM, NULL }, "data=hi", JWT, 400, "application/json", "\"error\":", NULL, NULL },
	{ "Mercure: a publish without a JWT: 401", KEYED, "POST", MERCURE_PATH, "",
	  { FORM, NULL }, "topic=t&data=hi", PLAIN, 401, "application/json",
	  "\"error\":", NULL, NULL },
	{ "Mercure: a JWT that is not: 401", KEYED, "GET", MERCURE_PATH, "topic=x",
	  { "HTTP_AUTHORIZATION", "Bearer a.b.c", NULL }, NULL, PLAIN, 401, "application/json",
	  "\"error\":", "WWW-Authenticate: Bearer realm=\"mercure\"", NULL },
	{ "Mercure: a subscriber without a JWT: 401", KEYED, "GET", MERCURE_PATH, "topic=x",
	  { NULL }, NULL, PLAIN, 401, "application/json", "\"error\":", NULL, NULL },
	{ "Mercure: PUT: 405", KEYED, "PUT", MERCURE_PATH, "", { FORM, NULL }, "data=hi", JWT, 405,
	  "application/json", "\"error\":", "Allow: GET, POST, OPTIONS", NULL },
	{ "Mercure: off: 404", CLOSED, "GET", MERCURE_PATH, "topic=x", { NULL }, NULL, PLAIN, 404,
	  "application/json", "\"error\":", NULL, NULL },

	{ "Pusher: off: 404", CLOSED, "GET", "/apps/" PUSHER_APP "/channels", "", { NULL }, NULL,
	  PLAIN, 404, "application/json", "\"error\":", NULL, NULL },

	/* anything else */
	{ "an unknown endpoint: 404", KEYED, "GET", "/comet/nope", "", { NULL }, NULL, PLAIN, 404,
	  "application/json", "\"status\":404", NULL, NULL },
	{ "headers over 256 KB: 431", KEYED, "GET", "/comet/sub", "channel=a&timeout=0", { NULL },
	  NULL, HUGE_HEADER, 431, "application/json", "\"status\":431", NULL, NULL },
	{ "a body too slow: 408", KEYED, "POST", "/comet/pub", "channel=a", { KEY, TEXT, NULL },
	  "hi", REFUSE_408, 408, "application/json", "\"status\":408", NULL, NULL },
};

/* "Bearer <a JWT that may publish and subscribe to every Mercure topic>",
 * to be freed. */
static char *mercure_bearer(void)
{
	jwt_t *jwt;
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)MERCURE_KEY,
				     (int)strlen(MERCURE_KEY)), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, "{\"mercure\":{\"publish\":[\"*\"],"
					     "\"subscribe\":[\"*\"]}}"), 0);
	char *tok = jwt_encode_str(jwt);
	jwt_free(jwt);
	struct buf b = BUF_INIT;
	buf_printf(&b, "Bearer %s", tok);
	free(tok);
	return b.p;
}

/* What the row's answer must be. */
static void check_answer(const struct handler_case *t, const struct answer *a)
{
	ck_assert_msg(a->status == t->status, "%s: %d, want %d\n%s\n%s", t->name, a->status,
		      t->status, a->head.p, a->body.p);
	if (t->type) {
		char want[128];
		snprintf(want, sizeof want, "\r\nContent-Type: %s", t->type);
		ck_assert_msg(strstr(a->head.p, want), "%s: not %s\n%s", t->name, t->type, a->head.p);
	}
	ck_assert_msg(strstr(a->body.p, t->has), "%s: no %s in\n%s", t->name, t->has, a->body.p);
	if (t->header)
		ck_assert_msg(strstr(a->head.p, t->header), "%s: no %s in\n%s", t->name, t->header,
			      a->head.p);
	if (t->lacks)
		ck_assert_msg(!strstr(a->head.p, t->lacks), "%s: %s in\n%s", t->name, t->lacks,
			      a->head.p);
	/* Every error is JSON naming its status (SPEC.md, Errors). */
	if (t->status >= 400) {
		char want[32];
		snprintf(want, sizeof want, "\"status\":%d", t->status);
		ck_assert_msg(strstr(a->body.p, "\"error\":") && strstr(a->body.p, want), "%s: %s",
			      t->name, a->body.p);
	}
}

static void answer_free(struct answer *a)
{
	buf_free(&a->head);
	buf_free(&a->body);
}

START_TEST(request_answered)
{
	const struct handler_case *t = &cases[_i];
	start(t->setup);
	struct answer a = { 0, BUF_INIT, BUF_INIT };
	if (t->setup == KEYED) {
		/* One message to read, count and delete. */
		const char *const seed[] = { "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/comet/pub",
					     "QUERY_STRING", "channel=seeded", KEY, TEXT, NULL };
		serve(seed, "seed", PLAIN, &a);
		ck_assert_msg(a.status == 201, "the seed: %d %s", a.status, a.body.p);
		answer_free(&a);
	}
	char *body = t->body ? xstrdup(t->body) : NULL, *bearer = NULL;
	if (t->extra == OVER_MAX) {
		body = xcalloc(MAX_MESSAGE + 2, 1);
		memset(body, 'x', MAX_MESSAGE + 1);
	}
	char query[1024];
	snprintf(query, sizeof query, "%s", t->query);
	if (t->extra == TOKEN || t->extra == BURST) {
		char tok[TOKEN_MAX + 1];
		token_make(TOKEN_KEY, "private-x", clock_wall_ms() / 1000 + 60, tok);
		snprintf(query, sizeof query, "%s&token=%s", t->query, tok);
	}
	if (t->extra == SIGNED)
		sign(t->method, t->path, body, query, sizeof query);
	const char *params[32] = { "REQUEST_METHOD", t->method, "SCRIPT_NAME", t->path,
				   "QUERY_STRING", query };
	int n = 6;
	if (t->extra == JWT) {
		bearer = mercure_bearer();
		params[n++] = "HTTP_AUTHORIZATION";
		params[n++] = bearer;
	}
	for (int i = 0; t->params[i]; i++)
		params[n++] = t->params[i];
	params[n] = NULL;
	for (int i = 0; t->extra == BURST && i < 10; i++) {
		serve(params, body, PLAIN, &a);
		ck_assert_msg(a.status == 201, "client event %d: %d %s", i, a.status, a.body.p);
		answer_free(&a);
	}
	serve(params, body, t->extra, &a);
	check_answer(t, &a);
	free(bearer);
	free(body);
	answer_free(&a);
}
END_TEST

Suite *handler_suite(void)
{
	Suite *s = suite_create("handler");
	TCase *t = tcase_create("handler");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_loop_test(t, request_answered, 0, (int)(sizeof cases / sizeof cases[0]));
	suite_add_tcase(s, t);
	return s;
}
