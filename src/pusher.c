/* pusher: the Pusher Channels HTTP API's signature rule, bodies, routes,
 * auth strings and answers, each rule with where it was read. */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "json.h"
#include "member.h"
#include "pusher.h"
#include "urlenc.h"
#include "reply.h"
#include "request.h"
#include "utf8.h"

#define NONE SIZE_MAX

static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return status;
}

/* How many of s's len bytes to show, at most max, not cutting a UTF-8
 * character: the message is sent back as JSON text. */
static int shown(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return (int)len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return (int)max;
}

bool pusher_channel_valid(const char *c, size_t n)
{
	if (n < 1 || n > PUSHER_CHANNEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || (ch && strchr("_-=@,.;", ch))))
			return false;
	}
	return true;
}

bool pusher_channel_presence(const char *c)
{
	return strncmp(c, "presence-", 9) == 0;
}

bool pusher_socket_id_valid(const char *s)
{
	size_t a = strspn(s, "0123456789");
	if (a == 0 || s[a] != '.')
		return false;
	size_t b = strspn(s + a + 1, "0123456789");
	return b > 0 && s[a + 1 + b] == '\0';
}

static void hex(const unsigned char *md, unsigned n, char *out)
{
	static const char digit[] = "0123456789abcdef";
	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = digit[md[i] >> 4];
		out[2 * i + 1] = digit[md[i] & 15];
	}
	out[2 * n] = '\0';
}

void pusher_hmac_hex(const char *secret, const char *msg, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, len, md, &n);
	hex(md, n, out);
}

static void md5_hex(const char *p, size_t len, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_Digest(p, len, md, &n, EVP_md5(), NULL);
	hex(md, n, out);
}

/* Lower-case copy of at most outlen - 1 bytes of s: hex digits compare
 * case-insensitively. */
static void lower(const char *s, char *out, size_t outlen)
{
	size_t i = 0;
	for (; s[i] && i + 1 < outlen; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	out[i] = '\0';
}

/* The query string, decoded. Pusher's rule (rest-api.md, "Generating
 * authentication signatures"): the parameters "sorted by key, with keys
 * converted to lowercase, then joined as in the query string", and "the
 * string must not be URL-escaped" (its example signs "name=Something
 * else"): so the values are signed decoded. The libraries agree on the
 * wire: pusher-http-php signs raw values (src/Pusher.php,
 * build_auth_query_params) that Guzzle then sends %-encoded (guzzle
 * src/Client.php: http_build_query with PHP_QUERY_RFC3986, "," as %2C);
 * pusher-http-node signs and sends the same unencoded string
 * (lib/requests.js, createSignedQueryString). '+' is a space, as in form
 * encoding, PHP's parse_str (Laravel Reverb's verifier) and request.c. */
struct param {
	char *k, *v;
	size_t klen, vlen;
};

struct query {
	char *copy;
	int n;
	struct param p[PUSHER_PARAMS_MAX];
};

/* In place; false for a '%' not followed by two hex digits. */
static bool url_decode(char *s, size_t *n)
{
	long len = urlenc_decode(s, *n);
	if (len < 0)
		return false;
	*n = (size_t)len;
	return true;
}

static int param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->k, y->k, n);
	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void query_free(struct query *q)
{
	free(q->copy);
	q->copy = NULL;
	q->n = 0;
}

/* Splits, decodes, lower-cases the keys and sorts them. Returns 0 or 400;
 * q is to be freed either way. */
static int query_parse(const char *query, struct query *q, char *err, size_t errlen)
{
	q->n = 0;
	q->copy = xstrdup(query ? query : "");
	char *s = q->copy, *end = s + strlen(s);
	while (s < end) {
		char *amp = memchr(s, '&', (size_t)(end - s));
		char *e = amp ? amp : end;
		if (e > s) {	/* "a=1&&b=2" holds no empty parameter */
			if (q->n == PUSHER_PARAMS_MAX)
				return fail(err, errlen, 400, "more than %d query parameters",
					    PUSHER_PARAMS_MAX);
			struct param *p = &q->p[q->n++];
			char *eq = memchr(s, '=', (size_t)(e - s));
			p->k = s;
			p->klen = (size_t)((eq ? eq : e) - s);
			p->v = eq ? eq + 1 : e;
			p->vlen = (size_t)(e - p->v);
			if (!url_decode(p->k, &p->klen) || !url_decode(p->v, &p->vlen))
				return fail(err, errlen, 400,
					    "the query has a %% not followed by two hex digits");
			if (p->klen == 0)
				return fail(err, errlen, 400, "the query has a parameter with no name");
			if (!utf8_valid(p->k, p->klen) || !utf8_valid(p->v, p->vlen))
				return fail(err, errlen, 400,
					    "a query parameter is not UTF-8 text (or holds a NUL)");
			for (size_t i = 0; i < p->klen; i++)
				if (p->k[i] >= 'A' && p->k[i] <= 'Z')
					p->k[i] = (char)(p->k[i] - 'A' + 'a');
			/* Decoding never lengthens, so these NULs land on the
			 * key's own bytes or its '=', and on the value's own
			 * bytes or the '&' after it. */
			p->k[p->klen] = '\0';
			p->v[p->vlen] = '\0';
		}
		s = e + 1;
	}
	qsort(q->p, (size_t)q->n, sizeof q->p[0], param_cmp);
	for (int i = 1; i < q->n; i++)
		if (param_cmp(&q->p[i - 1], &q->p[i]) == 0)
			return fail(err, errlen, 400,
				    "the query gives %.*s twice (keys are compared in lower case)",
				    shown(q->p[i].k, q->p[i].klen, 64), q->p[i].k);
	return 0;
}

static const char *query_get(const struct query *q, const char *key)
{
	for (int i = 0; i < q->n; i++)
		if (strcmp(q->p[i].k, key) == 0)
			return q->p[i].v;
	return NULL;
}

static void to_sign(const char *method, const char *path, const struct query *q, struct buf *out)
{
	buf_reset(out);
	buf_adds(out, method);
	buf_addc(out, '\n');
	buf_adds(out, path);
	buf_addc(out, '\n');
	bool first = true;
	for (int i = 0; i < q->n; i++) {
		if (strcmp(q->p[i].k, "auth_signature") == 0)
			continue;
		if (!first)
			buf_addc(out, '&');
		first = false;
		buf_add(out, q->p[i].k, q->p[i].klen);
		buf_addc(out, '=');
		buf_add(out, q->p[i].v, q->p[i].vlen);
	}
	buf_str(out);
}

int pusher_string_to_sign(const char *method, const char *path, const char *query,
			  struct buf *out, char *err, size_t errlen)
{
	struct query q;
	int rc = query_parse(query, &q, err, errlen);
	if (rc == 0)
		to_sign(method, path, &q, out);
	query_free(&q);
	return rc;
}

/* s in double quotes, written as a C or JSON string literal would be, so
 * that the newlines of a string to sign show as \n. */
static void quote(struct buf *out, const char *s)
{
	buf_addc(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n')
			buf_adds(out, "\\n");
		else if (c == '"' || c == '\\')
			buf_printf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_printf(out, "\\u%04x", c);
		else
			buf_addc(out, (char)c);
	}
	buf_addc(out, '"');
}

/* The 401s name what is wrong the way Pusher's own answers do (quoted in
 * pusher-http-go issue 91 and pusher-http-ruby issue 49), the string to
 * sign included: it holds nothing secret, and is what a library author
 * needs to see. */
static int check(const struct pusher_app *app, const char *method, const char *path,
		 const struct query *q, const char *body, size_t len, int64_t now,
		 char *err, size_t errlen)
{
	static const char *const required[] = {
		"auth_key", "auth_timestamp", "auth_version", "auth_signature",
	};
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
		if (!query_get(q, required[i]))
			return fail(err, errlen, 401, "%s is missing from the query", required[i]);
	if (!auth_equal(query_get(q, "auth_key"), app->key))
		return fail(err, errlen, 401, "unknown auth_key");
	if (strcmp(query_get(q, "auth_version"), "1.0") != 0)
		return fail(err, errlen, 401, "auth_version must be 1.0");
	const char *ts = query_get(q, "auth_timestamp");
	int64_t t;
	if (!request_id(ts, strlen(ts), &t))
		return fail(err, errlen, 401, "auth_timestamp must be Unix time in seconds");
	if ((t > now ? t - now : now - t) > PUSHER_TIMESTAMP_SKEW)
		return fail(err, errlen, 401,
			    "timestamp expired: auth_timestamp %lld is not within %d s of the "
			    "server's time, %lld", (long long)t, PUSHER_TIMESTAMP_SKEW,
			    (long long)now);
	const char *md5 = query_get(q, "body_md5");
	if (len > 0 && !md5)
		return fail(err, errlen, 401, "body_md5 is missing from the query (the body is not empty)");

	struct buf s = BUF_INIT;
	to_sign(method, path, q, &s);
	char want[65], given[65];
	pusher_hmac_hex(app->secret, s.p, s.len, want);
	const char *sig = query_get(q, "auth_signature");
	lower(sig, given, sizeof given);
	/* A longer signature is wrong; the copy must not make it right. */
	bool ok = strlen(sig) == 64 && auth_equal(given, want);
	if (!ok) {
		struct buf shown = BUF_INIT;
		quote(&shown, s.p);
		fail(err, errlen, 401, "invalid signature: expected the hex HMAC-SHA256 of %s "
		     "with the app's secret", shown.p);
		buf_free(&shown);
	}
	buf_free(&s);
	if (!ok)
		return 401;

	if (md5) {
		char have[33], sent[33];
		md5_hex(body ? body : "", body ? len : 0, have);
		lower(md5, sent, sizeof sent);
		if (strlen(md5) != 32 || strcmp(sent, have) != 0)
			return fail(err, errlen, 401, "body_md5 is not the MD5 of the body (%s)", have);
	}
	return 0;
}

int pusher_verify(const struct pusher_app *app, const char *method, const char *path,
		  const char *query, const char *body, size_t len, int64_t now,
		  char *err, size_t errlen)
{
	struct query q;
	int rc = query_parse(query, &q, err, errlen);
	if (rc == 0)
		rc = check(app, method, path, &q, body, len, now, err, errlen);
	query_free(&q);
	return rc;
}

/* "/apps/<id>/" and then what follows, or NULL. */
static const char *app_rest(const char *app_id, const char *path)
{
	if (strncmp(path, "/apps/", 6) != 0)
		return NULL;
	path += 6;
	size_t n = strlen(app_id);
	if (n == 0 || strncmp(path, app_id, n) != 0 || path[n] != '/')
		return NULL;
	return path + n + 1;
}

static int route_method(struct pusher_route *out, const char *method, const char *want,
			char *err, size_t errlen)
{
	if (strcmp(method, want) == 0)
		return 0;
	out->allow = want;
	return fail(err, errlen, 405, "this resource takes %s only", want);
}

int pusher_route(const char *app_id, const char *method, const char *path,
		 struct pusher_route *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *rest = app_rest(app_id, path);
	if (!rest)
		return fail(err, errlen, 404, "no such resource: the API is /apps/<this app's id>/...");
	if (strcmp(rest, "events") == 0) {
		out->ep = PUSHER_EVENTS;
		return route_method(out, method, "POST", err, errlen);
	}
	if (strcmp(rest, "batch_events") == 0) {
		out->ep = PUSHER_BATCH_EVENTS;
		return route_method(out, method, "POST", err, errlen);
	}
	if (strcmp(rest, "channels") == 0) {
		out->ep = PUSHER_CHANNELS;
		return route_method(out, method, "GET", err, errlen);
	}
	if (strncmp(rest, "channels/", 9) != 0)
		return fail(err, errlen, 404, "no such resource");
	const char *name = rest + 9, *slash = strchr(name, '/');
	size_t n = slash ? (size_t)(slash - name) : strlen(name);
	if (n == 0)
		return fail(err, errlen, 404, "no such resource: no channel name");
	if (!slash)
		out->ep = PUSHER_CHANNEL;
	else if (strcmp(slash, "/users") == 0)
		out->ep = PUSHER_USERS;
	else
		return fail(err, errlen, 404, "no such resource");
	int rc = route_method(out, method, "GET", err, errlen);
	if (rc)
		return rc;
	if (!pusher_channel_valid(name, n))
		return fail(err, errlen, 400, "a channel name is 1 to %d of A-Z a-z 0-9 _ - = @ , . ;",
			    PUSHER_CHANNEL_MAX);
	memcpy(out->channel, name, n);
	out->channel[n] = '\0';
	if (out->ep == PUSHER_USERS && !pusher_channel_presence(out->channel))
		return fail(err, errlen, 400, "only presence channels have users");
	return 0;
}

int pusher_info_parse(const char *s, size_t n, unsigned *out, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		unsigned bit;
	} attr[] = {
		{ "user_count", PUSHER_INFO_USER_COUNT },
		{ "subscription_count", PUSHER_INFO_SUBSCRIPTION_COUNT },
	};
	*out = 0;
	size_t i = 0;
	while (n > 0 && i <= n) {
		const char *a = s + i, *comma = memchr(a, ',', n - i);
		size_t len = (size_t)((comma ? comma : s + n) - a);
		size_t k = 0;
		while (k < 2 && !(strlen(attr[k].name) == len && memcmp(attr[k].name, a, len) == 0))
			k++;
		if (k == 2)
			return fail(err, errlen, 400,
				    "info names user_count and subscription_count, not \"%.*s\"",
				    shown(a, len, 64), a);
		*out |= attr[k].bit;
		i += len + 1;
	}
	return 0;
}

int pusher_get_parse(const struct pusher_route *r, const char *query, struct pusher_get *out,
		     char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	struct query q;
	int rc = query_parse(query, &q, err, errlen);
	if (rc || r->ep == PUSHER_USERS)
		goto done;
	const char *info = query_get(&q, "info");
	if (info && (rc = pusher_info_parse(info, strlen(info), &out->info, err, errlen)))
		goto done;
	if (r->ep == PUSHER_CHANNELS) {
		const char *prefix = query_get(&q, "filter_by_prefix");
		size_t n = prefix ? strlen(prefix) : 0;
		if (n > 0 && !pusher_channel_valid(prefix, n)) {
			rc = fail(err, errlen, 400, "no channel name starts with that filter_by_prefix");
			goto done;
		}
		if (n > 0)
			memcpy(out->prefix, prefix, n + 1);
		if (out->info & PUSHER_INFO_SUBSCRIPTION_COUNT)
			rc = fail(err, errlen, 400, "GET channels answers user_count only");
		else if ((out->info & PUSHER_INFO_USER_COUNT) && !pusher_channel_presence(out->prefix))
			rc = fail(err, errlen, 400, "user_count needs filter_by_prefix=presence-");
	} else if ((out->info & PUSHER_INFO_USER_COUNT) && !pusher_channel_presence(r->channel)) {
		rc = fail(err, errlen, 400, "only presence channels have a user_count");
	}
done:
	query_free(&q);
	return rc;
}

/* Bodies. The texts an event points to are owned by its pusher_events. */

static char *own(struct pusher_events *e, size_t size)
{
	e->owned = xrealloc(e->owned, (size_t)(e->nowned + 1) * sizeof *e->owned);
	return e->owned[e->nowned++] = xmalloc(size);
}

void pusher_events_free(struct pusher_events *e)
{
	for (int i = 0; i < e->nowned; i++)
		free(e->owned[i]);
	free(e->owned);
	free(e->ev);
	memset(e, 0, sizeof *e);
}

/* err: "batch event k (counting from 0): " in a batch (k >= 0), then what
 * fmt says. */
static int refuse(char *err, size_t errlen, int status, int k, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int refuse(char *err, size_t errlen, int status, int k, const char *fmt, ...)
{
	int used = k < 0 ? 0 : snprintf(err, errlen, "batch event %d (counting from 0): ", k);
	if (used >= 0 && (size_t)used < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + used, errlen - (size_t)used, fmt, ap);
		va_end(ap);
	}
	return status;
}

enum { F_NAME, F_DATA, F_CHANNEL, F_CHANNELS, F_SOCKET_ID, F_INFO, NFIELD };
static const char *const field_name[NFIELD] = {
	"name", "data", "channel", "channels", "socket_id", "info",
};

/* The value of each field of the object at p[i] (NONE: absent), or -1 for
 * a field given twice: JSON leaves duplicates open and readers differ
 * (JSON.parse and PHP keep the last, SQLite and json.c the first), so
 * which one was meant cannot be known. */
static int fields(const char *p, size_t n, size_t i, size_t *at, int *dup)
{
	for (int f = 0; f < NFIELD; f++)
		at[f] = NONE;
	struct json_iter it;
	size_t key, val;
	json_iter_init(&it, p, i);
	while (json_iter_next(&it, p, n, &key, &val))
		for (int f = 0; f < NFIELD; f++)
			if (json_key_is(p, n, key, field_name[f])) {
				if (at[f] != NONE) {
					*dup = f;
					return -1;
				}
				at[f] = val;
			}
	return 0;
}

/* The string at p[i], as text owned by e; NULL (and err) when an escape
 * is not text. */
static char *text(struct pusher_events *e, const char *p, size_t n, size_t i, size_t *len,
		  int k, const char *what, char *err, size_t errlen)
{
	char *o = own(e, json_string_room(p, n, i));
	unsigned bad;
	if (json_string_text(p, n, i, o, len, &bad))
		return o;
	if (bad == 0)
		refuse(err, errlen, 400, k, "%s holds \\u0000", what);
	else
		refuse(err, errlen, 400, k, "%s holds a lone surrogate \\u%04X: not Unicode text",
		       what, bad);
	return NULL;
}

static size_t code_points(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

static bool is_null(const char *p, size_t at)
{
	return at == NONE || p[at] == 'n';
}

/* The channel named by the string at p[at], appended to ev unless it is
 * there already (Pusher answers per "unique channel"). */
static int add_channel(struct pusher_events *e, struct pusher_event *ev, const char *p, size_t n,
		       size_t at, int k, char *err, size_t errlen)
{
	if (p[at] != '"')
		return refuse(err, errlen, 400, k, "a channel name must be a string");
	size_t len;
	char *c = text(e, p, n, at, &len, k, "a channel name", err, errlen);
	if (!c)
		return 400;
	if (!pusher_channel_valid(c, len))
		return refuse(err, errlen, 400, k, "\"%.*s\" is not a channel name: 1 to %d of "
			      "A-Z a-z 0-9 _ - = @ , . ;", shown(c, len, 64), c,
			      PUSHER_CHANNEL_MAX);
	for (int i = 0; i < ev->nchannel; i++)
		if (strcmp(ev->channel[i], c) == 0)
			return 0;
	if (ev->nchannel == PUSHER_CHANNELS_MAX)
		return refuse(err, errlen, 400, k, "an event goes to at most %d channels",
			      PUSHER_CHANNELS_MAX);
	ev->channel[ev->nchannel++] = c;
	return 0;
}

/* Event k (-1 outside a batch), the object at p[i]. */
static int event(struct pusher_events *e, struct pusher_event *ev, const char *p, size_t n,
		 size_t i, int k, size_t max_data, char *err, size_t errlen)
{
	memset(ev, 0, sizeof *ev);
	if (p[i] != '{')
		return refuse(err, errlen, 400, k, "an event is an object {\"name\", \"data\", %s}",
			      k < 0 ? "\"channel\" or \"channels\"" : "\"channel\"");
	size_t at[NFIELD];
	int dup;
	if (fields(p, n, i, at, &dup) < 0)
		return refuse(err, errlen, 400, k, "\"%s\" is given twice", field_name[dup]);

	size_t len;
	if (at[F_NAME] == NONE || p[at[F_NAME]] != '"')
		return refuse(err, errlen, 400, k, "\"name\" must be a string");
	char *name = text(e, p, n, at[F_NAME], &len, k, "the name", err, errlen);
	if (!name)
		return 400;
	size_t cp = code_points(name, len);
	if (cp == 0 || cp > PUSHER_NAME_MAX)
		return refuse(err, errlen, 400, k, "an event name is 1 to %d characters",
			      PUSHER_NAME_MAX);
	ev->name = name;

	if (at[F_DATA] == NONE || p[at[F_DATA]] != '"')
		return refuse(err, errlen, 400, k, "\"data\" must be a string (JSON-encode "
			      "anything else into one, as Pusher's libraries do)");
	char *data = text(e, p, n, at[F_DATA], &ev->len, k, "the data", err, errlen);
	if (!data)
		return 400;
	if (ev->len > max_data)
		return refuse(err, errlen, 413, k, "the data is %zu bytes, more than %zu",
			      ev->len, max_data);
	ev->data = data;

	ev->channel = (const char **)own(e, PUSHER_CHANNELS_MAX * sizeof *ev->channel);
	bool one = at[F_CHANNEL] != NONE, many = at[F_CHANNELS] != NONE;
	if (k >= 0 && many)
		return refuse(err, errlen, 400, k, "a batch event names one \"channel\"");
	if (one && many)
		return refuse(err, errlen, 400, k, "give \"channel\" or \"channels\", not both");
	int rc;
	if (one) {
		if ((rc = add_channel(e, ev, p, n, at[F_CHANNEL], k, err, errlen)))
			return rc;
	} else if (many) {
		if (p[at[F_CHANNELS]] != '[')
			return refuse(err, errlen, 400, k, "\"channels\" must be an array of names");
		struct json_iter it;
		size_t key, val;
		json_iter_init(&it, p, at[F_CHANNELS]);
		while (json_iter_next(&it, p, n, &key, &val))
			if ((rc = add_channel(e, ev, p, n, val, k, err, errlen)))
				return rc;
	}
	if (ev->nchannel == 0)
		return refuse(err, errlen, 400, k, "the event names no channel");

	if (!is_null(p, at[F_SOCKET_ID])) {
		const char *sid = p[at[F_SOCKET_ID]] == '"' ?
			text(e, p, n, at[F_SOCKET_ID], &len, k, "socket_id", err, errlen) : NULL;
		if (!sid || !pusher_socket_id_valid(sid))
			return refuse(err, errlen, 400, k, "socket_id must be a string of digits, "
				      "a dot and digits (\"123.456\")");
		ev->socket_id = sid;
	}
	if (!is_null(p, at[F_INFO])) {
		if (p[at[F_INFO]] != '"')
			return refuse(err, errlen, 400, k, "info must be a comma-separated string");
		const char *info = text(e, p, n, at[F_INFO], &len, k, "info", err, errlen);
		if (!info)
			return 400;
		char why[128];
		if (pusher_info_parse(info, len, &ev->info, why, sizeof why))
			return refuse(err, errlen, 400, k, "%s", why);
		e->info = true;
	}
	return 0;
}

/* The body, checked: UTF-8 JSON. 0 or 400. */
static int body_ok(const char *body, size_t len, char *err, size_t errlen)
{
	if (!utf8_valid(body, len))
		return fail(err, errlen, 400, "the body is not UTF-8 text (or holds a NUL byte)");
	if (!json_valid(body, len))
		return fail(err, errlen, 400, "the body is not JSON");
	return 0;
}

const char *pusher_client_event(const char *body, size_t len, struct buf *out)
{
	if (len > PUSHER_DATA_MAX)
		return "a client event is at most 10 KB";
	if (!body || !utf8_valid(body, len) || !json_valid(body, len) ||
	    request_json_nul(body, len))
		return "a client event is UTF-8 JSON {\"event\": \"client-...\", \"data\": ...}";
	size_t i = json_ws(body, len, 0), name = NONE, data = NONE, key, val;
	if (body[i] != '{')
		return "a client event is an object {\"event\": \"client-...\", \"data\": ...}";
	struct json_iter it;
	json_iter_init(&it, body, i);
	while (json_iter_next(&it, body, len, &key, &val)) {
		if (json_key_is(body, len, key, "event"))
			name = val;
		else if (json_key_is(body, len, key, "data"))
			data = val;
	}
	if (name == NONE || body[name] != '"' || data == NONE)
		return "a client event needs \"event\" (a string) and \"data\"";
	char *ev = xmalloc(json_string_room(body, len, name));
	size_t n;
	unsigned bad;
	bool ok = json_string_text(body, len, name, ev, &n, &bad) && strncmp(ev, "client-", 7) == 0 &&
		  code_points(ev, n) <= PUSHER_NAME_MAX;
	free(ev);
	if (!ok)
		return "a client event's name starts with client- (at most 200 characters)";
	buf_adds(out, "{\"event\":");
	buf_add(out, body + name, json_skip(body, len, name) - name);
	buf_adds(out, ",\"data\":");
	buf_add(out, body + data, json_skip(body, len, data) - data);
	buf_addc(out, '}');
	return NULL;
}

int pusher_events_parse(const char *body, size_t len, size_t max_data,
			struct pusher_events *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	int rc = body_ok(body, len, err, errlen);
	if (rc)
		return rc;
	out->ev = xcalloc(1, sizeof *out->ev);
	rc = event(out, &out->ev[0], body, len, json_ws(body, len, 0), -1, max_data, err, errlen);
	if (rc) {
		pusher_events_free(out);
		return rc;
	}
	out->n = 1;
	return 0;
}

int pusher_batch_parse(const char *body, size_t len, size_t max_data,
		       struct pusher_events *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->batch = true;
	int rc = body_ok(body, len, err, errlen);
	if (rc)
		return rc;
	size_t i = json_ws(body, len, 0), at = NONE, key, val;
	struct json_iter it;
	if (body[i] == '{') {
		json_iter_init(&it, body, i);
		while (json_iter_next(&it, body, len, &key, &val))
			if (json_key_is(body, len, key, "batch")) {
				if (at != NONE)
					return fail(err, errlen, 400, "\"batch\" is given twice");
				at = val;
			}
	}
	if (at == NONE || body[at] != '[')
		return fail(err, errlen, 400, "the body is {\"batch\": [events]}");
	out->ev = xcalloc(PUSHER_BATCH_MAX, sizeof *out->ev);
	json_iter_init(&it, body, at);
	while (rc == 0 && json_iter_next(&it, body, len, &key, &val)) {
		if (out->n == PUSHER_BATCH_MAX)
			rc = fail(err, errlen, 400, "a batch holds at most %d events",
				  PUSHER_BATCH_MAX);
		else if ((rc = event(out, &out->ev[out->n], body, len, val, out->n, max_data,
				     err, errlen)) == 0)
			out->n++;
	}
	if (rc == 0 && out->n == 0)
		rc = fail(err, errlen, 400, "the batch holds no event");
	if (rc)
		pusher_events_free(out);
	return rc;
}

bool pusher_channel_auth_valid(const char *key, const char *secret, const char *socket_id,
			       const char *channel, const char *channel_data, const char *auth)
{
	/* Neither may hold a ':', or one signed string would stand for more
	 * than one (socket, channel, channel_data). */
	if (!pusher_socket_id_valid(socket_id) || !pusher_channel_valid(channel, strlen(channel)))
		return false;
	struct buf s = BUF_INIT;
	buf_printf(&s, "%s:%s", socket_id, channel);
	if (channel_data && *channel_data)
		buf_printf(&s, ":%s", channel_data);
	char mac[65];
	pusher_hmac_hex(secret, s.p, s.len, mac);
	buf_reset(&s);
	buf_printf(&s, "%s:%s", key, mac);

	/* The key part compares as it stands, the hex part in lower case. */
	size_t klen = strlen(key), alen = strlen(auth);
	char *given = xstrdup(auth);
	if (alen > klen)
		lower(auth + klen, given + klen, alen - klen + 1);
	bool ok = auth_equal(given, s.p);
	free(given);
	buf_free(&s);
	return ok;
}

void pusher_member_free(struct pusher_member *m)
{
	free(m->id);
	free(m->info);
	m->id = m->info = NULL;
}

int pusher_member_parse(const char *cd, size_t len, struct pusher_member *out,
			char *err, size_t errlen)
{
	struct member m;
	memset(out, 0, sizeof *out);
	if (member_parse(cd, len, "user_id", "user_info", &m, err, errlen) < 0)
		return -1;
	out->id = m.id;
	/* Pusher's info is absent rather than null. */
	if (strcmp(m.info, "null") == 0)
		free(m.info);
	else
		out->info = m.info;
	return 0;
}

static const struct pusher_channel_state *state_of(const char *name,
						   const struct pusher_channel_state *ch, int nch)
{
	for (int i = 0; i < nch; i++)
		if (ch[i].name && strcmp(ch[i].name, name) == 0)
			return &ch[i];
	return NULL;
}

/* {"user_count": N?, "subscription_count": N?}: what info asks for and the
 * channel has. */
static void attributes(struct buf *out, const char *name, unsigned info,
		       const struct pusher_channel_state *st)
{
	const char *sep = "";
	buf_addc(out, '{');
	if ((info & PUSHER_INFO_USER_COUNT) && pusher_channel_presence(name)) {
		buf_printf(out, "\"user_count\":%ld", st ? st->user_count : 0);
		sep = ",";
	}
	if (info & PUSHER_INFO_SUBSCRIPTION_COUNT)
		buf_printf(out, "%s\"subscription_count\":%ld", sep,
			   st ? st->subscription_count : 0);
	buf_addc(out, '}');
}

void pusher_render_events(struct buf *out, const struct pusher_events *e,
			  const struct pusher_channel_state *ch, int nch)
{
	if (!e->info || e->n == 0) {
		buf_adds(out, "{}");
		return;
	}
	if (e->batch) {
		buf_adds(out, "{\"batch\":[");
		for (int i = 0; i < e->n; i++) {
			const char *c = e->ev[i].channel[0];
			if (i)
				buf_addc(out, ',');
			attributes(out, c, e->ev[i].info, state_of(c, ch, nch));
		}
		buf_adds(out, "]}");
		return;
	}
	const struct pusher_event *ev = &e->ev[0];
	buf_adds(out, "{\"channels\":{");
	for (int i = 0; i < ev->nchannel; i++) {
		const char *c = ev->channel[i];
		if (i)
			buf_addc(out, ',');
		reply_json_string(out, c);
		buf_addc(out, ':');
		attributes(out, c, ev->info, state_of(c, ch, nch));
	}
	buf_adds(out, "}}");
}

static bool occupied(const struct pusher_channel_state *st)
{
	return st && (st->subscription_count > 0 || st->user_count > 0);
}

void pusher_render_channels(struct buf *out, const struct pusher_get *q,
			    const struct pusher_channel_state *ch, int nch)
{
	size_t plen = strlen(q->prefix);
	bool first = true;
	buf_adds(out, "{\"channels\":{");
	for (int i = 0; i < nch; i++) {
		if (!ch[i].name || !occupied(&ch[i]) || strncmp(ch[i].name, q->prefix, plen) != 0)
			continue;
		if (!first)
			buf_addc(out, ',');
		first = false;
		reply_json_string(out, ch[i].name);
		buf_addc(out, ':');
		attributes(out, ch[i].name, q->info & PUSHER_INFO_USER_COUNT, &ch[i]);
	}
	buf_adds(out, "}}");
}

void pusher_render_channel(struct buf *out, const struct pusher_route *r,
			   const struct pusher_get *q, const struct pusher_channel_state *st)
{
	buf_printf(out, "{\"occupied\":%s", occupied(st) ? "true" : "false");
	if ((q->info & PUSHER_INFO_USER_COUNT) && pusher_channel_presence(r->channel))
		buf_printf(out, ",\"user_count\":%ld", st ? st->user_count : 0);
	if (q->info & PUSHER_INFO_SUBSCRIPTION_COUNT)
		buf_printf(out, ",\"subscription_count\":%ld", st ? st->subscription_count : 0);
	buf_addc(out, '}');
}

void pusher_render_users(struct buf *out, const char *const *ids, int n)
{
	buf_adds(out, "{\"users\":[");
	for (int i = 0; i < n; i++) {
		buf_adds(out, i ? ",{\"id\":" : "{\"id\":");
		reply_json_string(out, ids[i]);
		buf_addc(out, '}');
	}
	buf_adds(out, "]}");
}
