/* libFuzzer target for everything a request feeds in: the input is split at
 * NUL bytes into query string, Last-Event-ID, Accept, Content-Type,
 * Authorization, REMOTE_ADDR, path and body, and each parser and check is
 * run on them. Properties checked beyond "no crash, no sanitizer report":
 * accepted channels are valid names, accepted publishes are UTF-8 within
 * the size limit. The whole input is also fed to the FastCGI record reader,
 * in pieces whose size its first byte picks: it never consumes more than it
 * is given, never keeps more body than its bound, and a request it calls
 * whole has its parameters. The body, and the whole input, go to the JSON
 * validator, which must answer what SQLite's json_valid() does when the
 * text holds no NUL byte (but for one SQLite bug, container_key), and to
 * the batch parser, whose refusals leave nothing behind and whose messages
 * are UTF-8 when the body is. */
#include "config.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fcgi.h"
#include "json.h"
#include "request.h"
#include "token.h"
#include "utf8.h"

#define NFIELDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fcgi(const uint8_t *data, size_t size)
{
	struct fcgi_in in;
	fcgi_in_init(&in, 64);
	size_t step = size ? (size_t)data[0] % 37 + 1 : 1, fed = 0, held = 0;
	char *pending = malloc(size + 1);
	while (fed < size) {
		size_t n = size - fed < step ? size - fed : step;
		memcpy(pending + held, data + fed, n);
		held += n;
		fed += n;
		size_t used = fcgi_in_parse(&in, pending, held);
		if (used > held)
			abort();
		memmove(pending, pending + used, held - used);
		held -= used;
	}
	if (in.body.len > 64 || (in.state == FCGI_DONE && !in.env))
		abort();
	if (in.state == FCGI_DONE)
		fcgi_env_get(in.env, "QUERY_STRING");
	fcgi_in_free(&in);
	free(pending);
}

/* SQLite's json_valid() of p[0..n), which holds no NUL byte. */
static bool sqlite_json_valid(const char *p, size_t n)
{
	static sqlite3 *db;
	static sqlite3_stmt *s;
	if (!s && (sqlite3_open(":memory:", &db) != SQLITE_OK ||
		   sqlite3_prepare_v2(db, "SELECT json_valid(?1)", -1, &s, NULL) != SQLITE_OK))
		abort();
	sqlite3_bind_text(s, 1, p, (int)n, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW)
		abort();
	bool ok = sqlite3_column_int(s, 0) == 1;
	sqlite3_reset(s);
	return ok;
}

/* Whether text SQLite accepted has an array or object where an object key
 * belongs: SQLite 3.40 accepts {["a"]:1} (a key is checked by the last
 * value parsed, here "a"), json_valid rightly does not. */
static bool container_key(const char *p, size_t n)
{
	bool object[JSON_MAX_DEPTH + 1], key = false;
	int depth = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '"') {
			for (i++; i < n && p[i] != '"'; i++)
				i += p[i] == '\\';
			key = false;
		} else if (c == '[' || c == '{') {
			if (key || depth == JSON_MAX_DEPTH + 1)
				return key;
			object[depth++] = c == '{';
			key = c == '{';
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
			key = false;
		} else if (c == ',') {
			key = depth > 0 && object[depth - 1];
		}
	}
	return false;
}

static void fuzz_json(const char *p, size_t n)
{
	bool valid = json_valid(p, n);
	if (!memchr(p, '\0', n) && valid != sqlite_json_valid(p, n) &&
	    (valid || !container_key(p, n)))
		abort();
	struct json_batch b;
	char err[256] = "";
	int rc = json_batch_parse(p, n, 8, &b, err, sizeof err);
	if ((rc == JSON_EINVAL) != !valid || (rc != 0 && rc != JSON_EINVAL && rc != JSON_ESHAPE))
		abort();
	if (rc != 0 && (b.n != 0 || b.msg || !err[0]))
		abort();
	if (rc == 0 && (b.n < 1 || b.n > 8))
		abort();
	bool utf8 = utf8_valid(p, n);
	for (int i = 0; i < b.n; i++) {
		const struct msglog_msg *m = &b.msg[i];
		if (strlen(m->data) != m->len)
			abort();
		if (utf8 && (!utf8_valid(m->channel, strlen(m->channel)) ||
			     !utf8_valid(m->type, strlen(m->type)) || !utf8_valid(m->data, m->len)))
			abort();
	}
	json_batch_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_fcgi(data, size);
	fuzz_json((const char *)data, size);
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *f[NFIELDS] = { 0 };
	size_t flen[NFIELDS] = { 0 };
	char *p = copy, *end = copy + size;
	for (int i = 0; i < NFIELDS && p <= end; i++) {
		f[i] = p;
		char *nul = memchr(p, '\0', (size_t)(end - p));
		flen[i] = (size_t)((nul ? nul : end) - p);
		p = (nul ? nul : end) + 1;
		if (!nul)
			break;
	}
	const char *query = f[0], *leid = f[1], *accept = f[2], *ctype = f[3];
	const char *authz = f[4], *addr = f[5], *path = f[6];

	struct req_limits lim = { 25, 120, 1024 };
	struct req_sub *s = malloc(sizeof *s);
	struct req_error e;
	if (request_sub(query, leid, accept, &lim, s, &e) == 0) {
		if (s->nchan < 1 || s->nchan > REQ_MAX_CHANNELS)
			abort();
		for (int i = 0; i < s->nchan; i++)
			if (!request_channel_valid(s->chan[i], strlen(s->chan[i])))
				abort();
		for (int i = 0; i < s->ntoken; i++)
			for (int c = 0; c < s->nchan; c++)
				token_valid("k", s->chan[c], s->token[i], 1);
		if (s->limit < 1 || s->limit > REQ_MAX_LIMIT || s->timeout > 120 || s->since < -1)
			abort();
	} else if (e.status != 400 || !e.msg) {
		abort();
	}
	free(s);

	char chan[REQ_CHANNEL_LEN + 1];
	if (request_channel(query, chan, &e) == 0 && !request_channel_valid(chan, strlen(chan)))
		abort();

	if (f[7]) {
		size_t blen = flen[7];
		char *body = malloc(blen + 1);
		memcpy(body, f[7], blen);
		body[blen] = '\0';
		fuzz_json(body, blen);
		struct req_pub pub;
		if (request_pub(query, ctype, body, blen, 1024, &pub, &e) == 0) {
			if (pub.len > 1024 || !utf8_valid(pub.data, pub.len) ||
			    !request_channel_valid(pub.chan, strlen(pub.chan)))
				abort();
		} else if (e.status != 400 && e.status != 413 && e.status != 415) {
			abort();
		}
		free(body);
	}
	request_endpoint(path, query);
	auth_publish(authz, addr, "key", true);
	if (auth_publish(authz, addr, NULL, false) != 403)
		abort();
	auth_publish(authz, addr, NULL, true);
	free(copy);
	return 0;
}
