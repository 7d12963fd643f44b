/* request: pure parsing of request parameters into structs. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "json.h"
#include "request.h"
#include "urlenc.h"
#include "utf8.h"

#define FAIL(st, m) do { err->status = (st); err->msg = (m); return -1; } while (0)

char *request_pusher_path(const char *script_name, const char *path_info)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, script_name ? script_name : "");
	buf_adds(&b, path_info ? path_info : "");
	const char *apps = b.p ? strstr(b.p, "/apps/") : NULL;
	char *out = apps ? xstrdup(apps) : NULL;
	buf_free(&b);
	return out;
}

enum req_endpoint request_endpoint(const char *script_name, const char *path_info)
{
	char *pusher = request_pusher_path(script_name, path_info);
	free(pusher);
	if (pusher)
		return REQ_EP_PUSHER;
	const char *seg = NULL;
	size_t n = 0;
	/* PATH_INFO wins when it has a segment of its own. */
	const char *parts[2] = { path_info, script_name };
	for (int i = 0; i < 2 && !seg; i++) {
		const char *p = parts[i];
		if (!p || !*p)
			continue;
		const char *slash = strrchr(p, '/');
		seg = slash ? slash + 1 : p;
		n = strlen(seg);
	}
	if (!seg)
		return REQ_EP_UNKNOWN;
	if (n == 3 && memcmp(seg, "sub", 3) == 0)
		return REQ_EP_SUB;
	if (n == 3 && memcmp(seg, "pub", 3) == 0)
		return REQ_EP_PUB;
	if (n == 5 && memcmp(seg, "stats", 5) == 0)
		return REQ_EP_STATS;
	if (n == 7 && memcmp(seg, "metrics", 7) == 0)
		return REQ_EP_METRICS;
	if (n == 8 && memcmp(seg, "presence", 8) == 0)
		return REQ_EP_PRESENCE;
	if (n == 7 && memcmp(seg, "whisper", 7) == 0)
		return REQ_EP_WHISPER;
	if (n == 7 && memcmp(seg, "mercure", 7) == 0)
		return REQ_EP_MERCURE;
	return REQ_EP_UNKNOWN;
}

bool request_channel_valid(const char *c, size_t n)
{
	if (n < 1 || n > REQ_CHANNEL_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		      ch == '.' || ch == ':' || ch == '@'))
			return false;
	}
	return true;
}

bool request_id(const char *s, size_t n, int64_t *out)
{
	if (n == 0 || n > 19)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > (uint64_t)INT64_MAX)
		return false;
	*out = (int64_t)v;
	return true;
}

/* Decimal digits to a long, saturating at cap; false when not all digits. */
static bool digits_capped(const char *s, size_t n, long cap, long *out)
{
	if (n == 0)
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v < cap)
			v = v * 10 + (s[i] - '0');
	}
	*out = v < cap ? v : cap;
	return true;
}

/* One key=value pair of an urlencoded string, decoded in place. */
struct pair {
	char *k, *v;
	size_t klen, vlen;
};

/* Returns 1 with a pair, 0 at the end, -1 when malformed. */
static int next_pair(char **cur, char *end, struct pair *p)
{
	for (;;) {
		if (*cur >= end)
			return 0;
		char *s = *cur;
		char *amp = memchr(s, '&', (size_t)(end - s));
		char *e = amp ? amp : end;
		*cur = amp ? amp + 1 : end;
		if (e == s)
			continue;	/* "a=1&&b=2" */
		char *eq = memchr(s, '=', (size_t)(e - s));
		p->k = s;
		p->klen = (size_t)((eq ? eq : e) - s);
		p->v = eq ? eq + 1 : e;
		p->vlen = (size_t)(e - p->v);
		long kl = urlenc_decode(p->k, p->klen);
		long vl = urlenc_decode(p->v, p->vlen);
		if (kl < 0 || vl < 0)
			return -1;
		p->klen = (size_t)kl;
		p->vlen = (size_t)vl;
		return 1;
	}
}

static bool key_is(const struct pair *p, const char *k)
{
	size_t n = strlen(k);
	return p->klen == n && memcmp(p->k, k, n) == 0;
}

static bool has_nul(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

/* Adds the comma-separated channel names in v to out, skipping repeats. */
static int add_channels(const char *v, size_t n, char (*chan)[REQ_CHANNEL_LEN + 1],
			int *nchan, struct req_error *err)
{
	size_t i = 0;
	for (;;) {
		const char *c = v + i;
		const char *comma = memchr(c, ',', n - i);
		size_t len = (size_t)((comma ? comma : v + n) - c);
		if (!request_channel_valid(c, len))
			FAIL(400, "a channel name is 1 to 128 of A-Z a-z 0-9 _ - . : @");
		bool dup = false;
		for (int k = 0; k < *nchan && !dup; k++)
			dup = strlen(chan[k]) == len && memcmp(chan[k], c, len) == 0;
		if (!dup) {
			if (*nchan == REQ_MAX_CHANNELS)
				FAIL(400, "at most 32 channels in one request");
			memcpy(chan[*nchan], c, len);
			chan[*nchan][len] = '\0';
			(*nchan)++;
		}
		if (!comma)
			return 0;
		i = (size_t)(comma - v) + 1;
	}
}

/* Comma-separated tokens "<expiry>.<hex>"; checked later, by token.c. */
static int add_tokens(const char *v, size_t n, struct req_sub *out, struct req_error *err)
{
	size_t i = 0;
	while (i <= n) {
		const char *t = v + i;
		const char *comma = memchr(t, ',', n - i);
		size_t len = (size_t)((comma ? comma : v + n) - t);
		const char *dot = memchr(t, '.', len);
		if (dot && memchr(dot + 1, '.', len - (size_t)(dot + 1 - t))) {
			/* A presence token: <expiry>.<member, base64url>.<hex>. */
			if (len > REQ_PTOKEN_LEN || strspn(t, "0123456789.abcdefghijklmnopqrstuvwxyz"
					"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") < len)
				FAIL(400, "a presence token is <expiry>.<member>.<hex HMAC>");
			if (out->nptoken == REQ_MAX_AUTH)
				FAIL(400, "at most 8 presence tokens in one request");
			memcpy(out->ptoken[out->nptoken], t, len);
			out->ptoken[out->nptoken++][len] = '\0';
		} else if (len < 3 || len > REQ_TOKEN_LEN ||
			   strspn(t, "0123456789.abcdefABCDEF") < len) {
			FAIL(400, "a token is <expiry>.<hex HMAC>");
		} else {
			if (out->ntoken == REQ_MAX_CHANNELS)
				FAIL(400, "at most 32 tokens in one request");
			memcpy(out->token[out->ntoken], t, len);
			out->token[out->ntoken++][len] = '\0';
		}
		if (!comma)
			break;
		i = (size_t)(comma - v) + 1;
	}
	return 0;
}

static bool callback_valid(const char *s, size_t n)
{
	if (n < 1 || n > REQ_CALLBACK_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     c == '_' || c == '$';
		bool rest = alpha || (c >= '0' && c <= '9') || c == '.';
		if (i == 0 ? !alpha : !rest)
			return false;
	}
	return true;
}

/* Copies the query so it can be decoded in place. */
static char *dup_query(const char *q, size_t *n)
{
	*n = q ? strlen(q) : 0;
	return xstrndup(q ? q : "", *n);
}

int request_sub(const char *query, const char *last_event_id, const char *accept,
		const struct req_limits *lim, struct req_sub *out, struct req_error *err)
{
	memset(out, 0, sizeof *out);
	out->since = -1;
	out->timeout = lim->timeout < lim->max_timeout ? lim->timeout : lim->max_timeout;
	out->limit = REQ_DEFAULT_LIMIT;
	out->stream = accept && strstr(accept, "text/event-stream") != NULL;

	size_t qn;
	char *q = dup_query(query, &qn), *cur = q;
	bool seen_since = false, seen_timeout = false, seen_limit = false, seen_cb = false;
	struct pair p;
	int r, rc = 0;
	while ((r = next_pair(&cur, q + qn, &p)) > 0) {
		if (has_nul(p.k, p.klen) || has_nul(p.v, p.vlen)) {
			r = -1;
			break;
		}
		bool *seen = NULL;
		if (key_is(&p, "token")) {
			if (add_tokens(p.v, p.vlen, out, err) < 0) {
				rc = -1;
				break;
			}
			continue;
		} else if (key_is(&p, "channel")) {
			if (add_channels(p.v, p.vlen, out->chan, &out->nchan, err) < 0) {
				rc = -1;
				break;
			}
			continue;
		} else if (key_is(&p, "auth") || key_is(&p, "channel_data")) {
			bool auth = key_is(&p, "auth");
			int *k = auth ? &out->nauth : &out->ncdata;
			if (*k == REQ_MAX_AUTH ||
			    p.vlen > (auth ? REQ_AUTH_LEN : REQ_CHANNEL_DATA_LEN)) {
				err->status = 400;
				err->msg = "at most 8 auth and channel_data of 1 KB each";
				rc = -1;
				break;
			}
			char *to = auth ? out->auth[*k] : out->cdata[*k];
			memcpy(to, p.v, p.vlen);
			to[p.vlen] = '\0';
			(*k)++;
			continue;
		} else if (key_is(&p, "socket_id")) {
			if (out->socket_id[0] || p.vlen == 0 || p.vlen > REQ_SOCKET_ID_LEN ||
			    strspn(p.v, "0123456789.") < p.vlen) {
				err->status = 400;
				err->msg = "socket_id is <digits>.<digits>, once";
				rc = -1;
				break;
			}
			memcpy(out->socket_id, p.v, p.vlen);
			out->socket_id[p.vlen] = '\0';
			continue;
		} else if (key_is(&p, "since")) {
			seen = &seen_since;
		} else if (key_is(&p, "timeout")) {
			seen = &seen_timeout;
		} else if (key_is(&p, "limit")) {
			seen = &seen_limit;
		} else if (key_is(&p, "callback")) {
			seen = &seen_cb;
		} else {
			continue;	/* unknown parameters, e.g. cache busters */
		}
		if (*seen) {
			err->status = 400;
			err->msg = "a parameter is given twice";
			rc = -1;
			break;
		}
		*seen = true;
		if (seen == &seen_since) {
			if (!request_id(p.v, p.vlen, &out->since)) {
				err->status = 400;
				err->msg = "since must be a message id: a whole number from 0";
				rc = -1;
				break;
			}
		} else if (seen == &seen_timeout) {
			if (!digits_capped(p.v, p.vlen, lim->max_timeout, &out->timeout)) {
				err->status = 400;
				err->msg = "timeout must be a whole number of seconds";
				rc = -1;
				break;
			}
		} else if (seen == &seen_limit) {
			long l;
			if (!digits_capped(p.v, p.vlen, REQ_MAX_LIMIT, &l) || l < 1) {
				err->status = 400;
				err->msg = "limit must be a whole number from 1 to 1000";
				rc = -1;
				break;
			}
			out->limit = (int)l;
		} else {
			if (!callback_valid(p.v, p.vlen)) {
				err->status = 400;
				err->msg = "callback must match [A-Za-z_$][A-Za-z0-9_$.]{0,63}";
				rc = -1;
				break;
			}
			memcpy(out->callback, p.v, p.vlen);
			out->callback[p.vlen] = '\0';
		}
	}
	free(q);
	if (rc < 0)
		return -1;
	if (r < 0)
		FAIL(400, "malformed query string");
	if (out->nchan == 0)
		FAIL(400, "channel is required");
	if (!seen_since && last_event_id && *last_event_id &&
	    !request_id(last_event_id, strlen(last_event_id), &out->since))
		FAIL(400, "Last-Event-ID must be a message id");
	return 0;
}

int request_channel(const char *query, char chan[REQ_CHANNEL_LEN + 1],
		    struct req_error *err)
{
	size_t qn;
	char *q = dup_query(query, &qn), *cur = q;
	struct pair p;
	int r, n = 0;
	chan[0] = '\0';
	while ((r = next_pair(&cur, q + qn, &p)) > 0) {
		if (!key_is(&p, "channel"))
			continue;
		if (n++ || !request_channel_valid(p.v, p.vlen))
			break;
		memcpy(chan, p.v, p.vlen);
		chan[p.vlen] = '\0';
	}
	free(q);
	if (r < 0)
		FAIL(400, "malformed query string");
	if (n == 0)
		FAIL(400, "channel is required");
	if (n > 1)
		FAIL(400, "exactly one channel is allowed here");
	if (!chan[0])
		FAIL(400, "a channel name is 1 to 128 of A-Z a-z 0-9 _ - . : @");
	return 0;
}

static bool token_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("!#$&-^_.+", c) != NULL;
}

int request_media_type(const char *ct, char out[REQ_TYPE_LEN + 1], bool *charset_ok,
		       struct req_error *err)
{
	*charset_ok = true;
	if (!ct || !*ct) {
		strcpy(out, "text/plain");
		return 0;
	}
	const char *p = ct;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t o = 0;
	int slashes = 0;
	for (; *p && *p != ';' && *p != ' ' && *p != '\t'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '/')
			slashes++;
		else if (!token_char(c) || c == '\0')
			FAIL(415, "malformed Content-Type");
		if (o == REQ_TYPE_LEN)
			FAIL(415, "Content-Type is too long");
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (slashes != 1 || out[0] == '/' || out[o - 1] == '/')
		FAIL(415, "malformed Content-Type");
	/* Parameters: only charset matters; bodies are stored as UTF-8 text. */
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (strncasecmp(p, "charset=", 8) == 0) {
			const char *v = p + 8;
			size_t n = strcspn(v, "; \t");
			if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
				v++, n -= 2;
			*charset_ok = (n == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
				      (n == 4 && strncasecmp(v, "utf8", 4) == 0) ||
				      (n == 8 && strncasecmp(v, "us-ascii", 8) == 0);
		}
		p += strcspn(p, ";");
	}
	return 0;
}

static bool is_form(const char *type)
{
	return strcmp(type, "application/x-www-form-urlencoded") == 0;
}

int request_pub(const char *query, const char *content_type, char *body, size_t len,
		long max_message, struct req_pub *out, struct req_error *err)
{
	memset(out, 0, sizeof *out);
	bool charset_ok;
	char qchan[REQ_CHANNEL_LEN + 1] = "";
	struct req_error cerr;
	bool have_qchan = request_channel(query, qchan, &cerr) == 0;
	if (!have_qchan && strcmp(cerr.msg, "channel is required") != 0) {
		*err = cerr;
		return -1;
	}
	if (request_media_type(content_type, out->type, &charset_ok, err) < 0)
		return -1;
	if (!charset_ok)
		FAIL(415, "the body must be UTF-8 (charset=utf-8)");

	if (!is_form(out->type)) {
		if (!have_qchan)
			FAIL(400, "channel is required");
		strcpy(out->chan, qchan);
		out->data = body ? body : "";
		out->len = body ? len : 0;
	} else {
		char *cur = body;
		struct pair p;
		int r;
		bool have_data = false, have_type = false, have_fchan = false;
		strcpy(out->type, "text/plain");
		while ((r = next_pair(&cur, body + len, &p)) > 0) {
			if (key_is(&p, "channel")) {
				if (have_fchan || have_qchan)
					FAIL(400, "exactly one channel is allowed here");
				if (!request_channel_valid(p.v, p.vlen))
					FAIL(400, "a channel name is 1 to 128 of A-Z a-z 0-9 _ - . : @");
				memcpy(out->chan, p.v, p.vlen);
				out->chan[p.vlen] = '\0';
				have_fchan = true;
			} else if (key_is(&p, "data")) {
				if (have_data)
					FAIL(400, "a parameter is given twice");
				out->data = p.v;
				out->len = p.vlen;
				have_data = true;
			} else if (key_is(&p, "type")) {
				char t[REQ_TYPE_LEN + 1];
				if (have_type)
					FAIL(400, "a parameter is given twice");
				if (has_nul(p.v, p.vlen) || p.vlen > REQ_TYPE_LEN)
					FAIL(415, "malformed type");
				memcpy(t, p.v, p.vlen);
				t[p.vlen] = '\0';
				if (request_media_type(t, out->type, &charset_ok, err) < 0)
					return -1;
				if (!charset_ok)
					FAIL(415, "the body must be UTF-8 (charset=utf-8)");
				if (is_form(out->type))
					FAIL(415, "type may not be a form");
				have_type = true;
			}
		}
		if (r < 0)
			FAIL(400, "malformed form body");
		if (have_qchan)
			strcpy(out->chan, qchan);
		else if (!have_fchan)
			FAIL(400, "channel is required");
		if (!have_data)
			FAIL(400, "the form field data is required");
	}
	if (!out->data)
		out->data = "";
	return request_message(out->chan, out->type, out->data, out->len, max_message, err);
}

int request_message(const char *chan, const char *type, const char *data, size_t len,
		    long max_message, struct req_error *err)
{
	if (!request_channel_valid(chan, strlen(chan)))
		FAIL(400, "a channel name is 1 to 128 of A-Z a-z 0-9 _ - . : @");
	if (!*type || is_form(type))
		FAIL(415, "a message's type must be a media type, not a form");
	if ((long)len > max_message)
		FAIL(413, "message too large");
	if (!utf8_valid(data, len))
		FAIL(415, "the message must be UTF-8 text without NUL bytes");
	if (request_json_type(type) && (!json_valid(data, len) || request_json_nul(data, len)))
		FAIL(415, "a message of a JSON type must be valid JSON without \\u0000");
	return 0;
}

bool request_json_type(const char *type)
{
	return strcmp(type, "application/json") == 0 || strcmp(type, REQ_PUSHER_TYPE) == 0 ||
	       strcmp(type, "application/x-comet-presence+json") == 0 ||
	       strcmp(type, "application/x-mercure-update+json") == 0;
}

long request_body_max(const char *ctype, long max_message)
{
	char type[REQ_TYPE_LEN + 1];
	bool charset_ok;
	struct req_error e;
	long form = max_message * 3 + 4096;
	long json = max_message > REQ_BATCH_BODY_MAX ? max_message : REQ_BATCH_BODY_MAX;
	if (!ctype)
		return form > json ? form : json;
	if (request_media_type(ctype, type, &charset_ok, &e) < 0)
		return max_message;
	if (is_form(type))
		return form;
	if (strcmp(type, "application/json") == 0)
		return json;
	return max_message;
}

bool request_json_nul(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
			return true;
		i++;	/* the escaped character, whatever it is */
	}
	return false;
}
