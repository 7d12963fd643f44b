/* member: presence members from tokens and channel_data. */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "json.h"
#include "member.h"
#include "request.h"
#include "utf8.h"

#define NONE SIZE_MAX

bool member_presence_channel(const char *channel)
{
	return strncmp(channel, "presence-", 9) == 0;
}

static int refuse(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static size_t code_points(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

void member_free(struct member *m)
{
	free(m->id);
	free(m->info);
	m->id = m->info = NULL;
}

int member_parse(const char *js, size_t len, const char *id_key, const char *info_key,
		 struct member *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (len > MEMBER_JSON_MAX)
		return refuse(err, errlen, "a member is %zu bytes of JSON, more than %d", len,
			      MEMBER_JSON_MAX);
	if (!utf8_valid(js, len) || !json_valid(js, len) || request_json_nul(js, len))
		return refuse(err, errlen, "a member is UTF-8 JSON");
	size_t i = json_ws(js, len, 0), id = NONE, info = NONE, key, val;
	if (js[i] != '{')
		return refuse(err, errlen, "a member is an object {\"%s\", \"%s\"?}", id_key, info_key);
	struct json_iter it;
	json_iter_init(&it, js, i);
	while (json_iter_next(&it, js, len, &key, &val)) {
		size_t *f = json_key_is(js, len, key, id_key) ? &id :
			    json_key_is(js, len, key, info_key) ? &info : NULL;
		if (f && *f != NONE)
			return refuse(err, errlen, "a member gives %s twice",
				      f == &id ? id_key : info_key);
		if (f)
			*f = val;
	}
	if (id == NONE || (js[id] != '"' && js[id] != '-' && (js[id] < '0' || js[id] > '9')))
		return refuse(err, errlen, "a member needs a %s, a string or a number", id_key);
	size_t n;
	if (js[id] == '"') {
		out->id = xmalloc(json_string_room(js, len, id));
		unsigned bad;
		if (!json_string_text(js, len, id, out->id, &n, &bad)) {
			member_free(out);
			return refuse(err, errlen, "%s is not text (\\u%04X)", id_key, bad);
		}
	} else {
		n = json_skip(js, len, id) - id;
		out->id = xstrndup(js + id, n);
	}
	size_t cp = code_points(out->id, n);
	if (cp == 0 || cp > MEMBER_ID_MAX) {
		member_free(out);
		return refuse(err, errlen, "%s is 1 to %d characters", id_key, MEMBER_ID_MAX);
	}
	out->info = info != NONE ? xstrndup(js + info, json_skip(js, len, info) - info)
				 : xstrdup("null");
	return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(char c)
{
	const char *p = c ? strchr(b64url, c) : NULL;
	return p ? (int)(p - b64url) : -1;
}

/* base64url without padding to bytes; false on a stray character. */
static bool b64url_decode(const char *s, size_t n, struct buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(s[i]);
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_addc(out, (char)(acc >> bits & 0xff));
		}
	}
	return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

static void b64url_encode(const char *s, size_t n, struct buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | (unsigned char)s[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			buf_addc(out, b64url[acc >> bits & 63]);
		}
	}
	if (bits)
		buf_addc(out, b64url[acc << (6 - bits) & 63]);
}

static void mac_hex(const char *key, const char *channel, const char *expiry, size_t elen,
		    const char *member, size_t mlen, char hex[65])
{
	struct buf msg = BUF_INIT;
	buf_printf(&msg, "%s:%.*s:%.*s", channel, (int)elen, expiry, (int)mlen, member);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg.p, msg.len, mac, &n);
	for (unsigned i = 0; i < n && i < 32; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	hex[64] = '\0';
	buf_free(&msg);
}

int member_from_token(const char *key, const char *channel, const char *tok, int64_t now,
		      struct member *out)
{
	memset(out, 0, sizeof *out);
	const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	int64_t expiry;
	if (!key || !d2 || strlen(tok) > MEMBER_TOKEN_MAX ||
	    !request_id(tok, (size_t)(d1 - tok), &expiry) || expiry <= now)
		return -1;
	char hex[65], given[65];
	mac_hex(key, channel, tok, (size_t)(d1 - tok), d1 + 1, (size_t)(d2 - d1 - 1), hex);
	size_t i = 0;
	for (const char *p = d2 + 1; *p && i < sizeof given - 1; p++, i++)
		given[i] = (*p >= 'A' && *p <= 'F') ? (char)(*p - 'A' + 'a') : *p;
	given[i] = '\0';
	if (!auth_equal(given, hex))
		return -1;
	struct buf js = BUF_INIT;
	char err[128];
	int rc = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &js) &&
		 member_parse(js.p ? js.p : "", js.len, "id", "info", out, err, sizeof err) == 0
		 ? 0 : -1;
	buf_free(&js);
	return rc;
}

void member_make_token(const char *key, const char *channel, int64_t expiry,
		       const char *member_json, char *out, size_t outlen)
{
	char e[24], hex[65];
	int elen = snprintf(e, sizeof e, "%lld", (long long)expiry);
	struct buf m = BUF_INIT;
	b64url_encode(member_json, strlen(member_json), &m);
	mac_hex(key, channel, e, (size_t)elen, m.p ? m.p : "", m.len, hex);
	snprintf(out, outlen, "%s.%.*s.%s", e, (int)m.len, m.p ? m.p : "", hex);
	buf_free(&m);
}
