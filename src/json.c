/* json: a strict JSON validator and the batch body's parser, by hand and
 * without recursion, so that any body can be fed to them (make fuzz). */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"

/* A scan's answer when the text is not JSON. */
#define NONE SIZE_MAX

/* RFC 8259's whitespace, and SQLite's: not \f or \v. */
static size_t ws(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

/* The four hex digits at s, which scan_string checked. */
static unsigned hex4(const char *s)
{
	char h[5] = { s[0], s[1], s[2], s[3], '\0' };
	return (unsigned)strtoul(h, NULL, 16);
}

/* The end of the string that opens at p[i] (a '"'), or NONE. */
static size_t scan_string(const char *p, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"')
			return i + 1;
		if (c < 0x20)
			return NONE;
		if (c != '\\')
			continue;
		if (++i == n)
			return NONE;
		c = (unsigned char)p[i];
		if (c == 'u') {
			if (n - i <= 4)
				return NONE;
			for (int k = 1; k <= 4; k++)
				if (!isxdigit((unsigned char)p[i + k]))
					return NONE;
			i += 4;
		} else if (!memchr("\"\\/bfnrt", c, 8)) {
			return NONE;
		}
	}
	return NONE;
}

/* One or more digits from p[i]. */
static size_t digits(const char *p, size_t n, size_t i)
{
	size_t start = i;
	while (i < n && p[i] >= '0' && p[i] <= '9')
		i++;
	return i > start ? i : NONE;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? from p[i]; whatever
 * follows is the caller's to judge ("01" is "0" followed by garbage). */
static size_t scan_number(const char *p, size_t n, size_t i)
{
	if (p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if ((i = digits(p, n, i)) == NONE)
		return NONE;
	if (i < n && p[i] == '.' && (i = digits(p, n, i + 1)) == NONE)
		return NONE;
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		i = digits(p, n, i);
	}
	return i;
}

/* A string, number, true, false or null from p[i] (i < n). */
static size_t scan_scalar(const char *p, size_t n, size_t i)
{
	static const char *const word[] = { "true", "false", "null" };
	if (p[i] == '"')
		return scan_string(p, n, i);
	if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9'))
		return scan_number(p, n, i);
	for (int k = 0; k < 3; k++) {
		size_t len = strlen(word[k]);
		if (n - i >= len && memcmp(p + i, word[k], len) == 0)
			return i + len;
	}
	return NONE;
}

/* An object member's key and colon from p[i]: where its value starts. */
static size_t scan_key(const char *p, size_t n, size_t i)
{
	if (i == n || p[i] != '"' || (i = scan_string(p, n, i)) == NONE)
		return NONE;
	i = ws(p, n, i);
	if (i == n || p[i] != ':')
		return NONE;
	return ws(p, n, i + 1);
}

bool json_valid(const char *p, size_t n)
{
	/* Whether each open container is an object, outermost first: nesting
	 * is followed here rather than by recursion, so that no body can
	 * exhaust a thread's stack. */
	bool object[JSON_MAX_DEPTH];
	int depth = 0;
	size_t i = ws(p, n, 0);
	for (;;) {
		/* A value starts at i. */
		if (i == n)
			return false;
		if (p[i] == '[' || p[i] == '{') {
			bool obj = p[i] == '{';
			if (depth == JSON_MAX_DEPTH)
				return false;
			object[depth++] = obj;
			i = ws(p, n, i + 1);
			if (i < n && p[i] == (obj ? '}' : ']')) {
				depth--;
				i++;
			} else {
				if (obj && (i = scan_key(p, n, i)) == NONE)
					return false;
				continue;
			}
		} else if ((i = scan_scalar(p, n, i)) == NONE) {
			return false;
		}
		/* A value ended at i: the end of the text, of its container,
		 * or a comma and the next value. */
		for (;;) {
			i = ws(p, n, i);
			if (depth == 0)
				return i == n;
			if (i == n)
				return false;
			bool obj = object[depth - 1];
			if (p[i] == (obj ? '}' : ']')) {
				depth--;
				i++;
				continue;
			}
			if (p[i] != ',')
				return false;
			i = ws(p, n, i + 1);
			if (obj && (i = scan_key(p, n, i)) == NONE)
				return false;
			break;
		}
	}
}

/* What follows is only ever run on text json_valid accepted, and relies
 * on it: every string, container and value ends before the text does. */

/* The end of the value that starts at p[i]. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
	if (p[i] != '[' && p[i] != '{')
		return scan_scalar(p, n, i);
	size_t depth = 0;
	for (;;) {
		char c = p[i];
		if (c == '"') {
			i = scan_string(p, n, i);
			continue;
		}
		i++;
		if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' || c == '}') && --depth == 0)
			return i;
	}
}

size_t json_ws(const char *p, size_t n, size_t i)
{
	return ws(p, n, i);
}

size_t json_skip(const char *p, size_t n, size_t i)
{
	return skip_value(p, n, i);
}

void json_iter_init(struct json_iter *it, const char *p, size_t i)
{
	it->i = i;
	it->object = p[i] == '{';
}

bool json_iter_next(struct json_iter *it, const char *p, size_t n, size_t *key, size_t *val)
{
	/* it->i is at the opening bracket, or at the comma or closing bracket
	 * that follows the last value returned. */
	char c = p[it->i];
	if (c == '}' || c == ']')
		return false;
	size_t i = ws(p, n, it->i + 1);
	if (p[i] == '}' || p[i] == ']') {
		it->i = i;
		return false;
	}
	*key = SIZE_MAX;
	if (it->object) {
		*key = i;
		i = scan_key(p, n, i);
	}
	*val = i;
	it->i = ws(p, n, skip_value(p, n, i));
	return true;
}

/* The character at p[*i] inside a string, moving *i past it: a raw byte
 * (*raw set), or the code point an escape stands for. A surrogate pair's
 * two escapes are one code point; a surrogate escape without its pair is
 * returned as it is, for the caller to refuse. */
static unsigned next_char(const char *p, size_t end, size_t *i, bool *raw)
{
	*raw = p[*i] != '\\';
	if (*raw)
		return (unsigned char)p[(*i)++];
	char c = p[*i + 1];
	*i += 2;
	if (c != 'u') {
		static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
		const char *k = strchr(from, c);
		return (unsigned char)(k ? to[k - from] : c);
	}
	unsigned cp = hex4(p + *i);
	*i += 4;
	if (cp >= 0xd800 && cp <= 0xdbff && *i + 6 <= end && p[*i] == '\\' && p[*i + 1] == 'u') {
		unsigned lo = hex4(p + *i + 2);
		if (lo >= 0xdc00 && lo <= 0xdfff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			*i += 6;
		}
	}
	return cp;
}

/* Escapes are decoded: "\u0063hannel" is "channel", as RFC 8259 and
 * SQLite since 3.45 have it (3.40 compared the raw text). */
bool json_key_is(const char *p, size_t n, size_t i, const char *name)
{
	size_t end = scan_string(p, n, i) - 1;
	for (i++; i < end; name++) {
		bool raw;
		unsigned c = next_char(p, end, &i, &raw);
		if (*name == '\0' || c != (unsigned char)*name)
			return false;
	}
	return *name == '\0';
}

static char *own(struct json_batch *b, size_t size)
{
	b->owned = xrealloc(b->owned, (size_t)(b->nowned + 1) * sizeof *b->owned);
	return b->owned[b->nowned++] = xmalloc(size);
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t json_string_room(const char *p, size_t n, size_t i)
{
	/* No escape is longer unescaped, so the string's length in the text,
	 * less its two quotes, and a NUL are room enough. */
	return scan_string(p, n, i) - i - 1;
}

bool json_string_text(const char *p, size_t n, size_t i, char *o, size_t *len, unsigned *bad)
{
	size_t end = scan_string(p, n, i) - 1, k = 0;
	for (i++; i < end;) {
		bool raw;
		unsigned c = next_char(p, end, &i, &raw);
		if (raw) {
			o[k++] = (char)c;
		} else if (c == 0 || (c >= 0xd800 && c <= 0xdfff)) {
			*bad = c;
			return false;
		} else {
			k += put_utf8(o + k, c);
		}
	}
	o[k] = '\0';
	*len = k;
	return true;
}

/* The text of the string at p[i], unescaped, owned by b; *len gets its
 * length. NULL when an escape is not text: *bad then gets it. */
static char *unescape(struct json_batch *b, const char *p, size_t n, size_t i, size_t *len,
		      unsigned *bad)
{
	char *o = own(b, json_string_room(p, n, i));
	return json_string_text(p, n, i, o, len, bad) ? o : NULL;
}

enum { F_CHANNEL, F_TYPE, F_DATA, NFIELD };
static const char *const field_name[NFIELD] = { "channel", "type", "data" };

/* Where each field's value starts in the object at p[i] (NONE: absent);
 * returns the object's end. Of duplicate keys the first counts, as with
 * SQLite's value->>'$.channel'. */
static size_t fields(const char *p, size_t n, size_t i, size_t *at)
{
	for (int f = 0; f < NFIELD; f++)
		at[f] = NONE;
	i = ws(p, n, i + 1);
	while (p[i] != '}') {
		size_t key = i;
		i = scan_key(p, n, i);
		for (int f = 0; f < NFIELD; f++)
			if (at[f] == NONE && json_key_is(p, n, key, field_name[f]))
				at[f] = i;
		i = ws(p, n, skip_value(p, n, i));
		if (p[i] == ',')
			i = ws(p, n, i + 1);
	}
	return i + 1;
}

/* err: "batch element k (counting from 0)" and then what fmt says. */
static int refuse(char *err, size_t errlen, int k, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int refuse(char *err, size_t errlen, int k, const char *fmt, ...)
{
	int used = snprintf(err, errlen, "batch element %d (counting from 0)", k);
	if (used >= 0 && (size_t)used < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + used, errlen - (size_t)used, fmt, ap);
		va_end(ap);
	}
	return JSON_ESHAPE;
}

/* Batch element b->n, the value at p[*i]: appended to b, *i moved past it;
 * or JSON_ESHAPE and err. */
static int element(struct json_batch *b, const char *p, size_t n, size_t *i,
		   char *err, size_t errlen)
{
	int k = b->n;
	if (p[*i] != '{')
		return refuse(err, errlen, k,
			      " is not an object {\"channel\", \"data\", \"type\"?}");
	size_t at[NFIELD];
	*i = fields(p, n, *i, at);
	if (at[F_CHANNEL] == NONE || p[at[F_CHANNEL]] != '"')
		return refuse(err, errlen, k, " needs a \"channel\" that is a string");
	if (at[F_TYPE] != NONE && p[at[F_TYPE]] != '"')
		return refuse(err, errlen, k, " has a \"type\" that is not a string");
	if (at[F_DATA] == NONE)
		return refuse(err, errlen, k, " needs \"data\"");

	b->msg = xrealloc(b->msg, (size_t)(k + 1) * sizeof *b->msg);
	struct msglog_msg *m = &b->msg[b->n++];
	*m = (struct msglog_msg){ NULL, NULL, NULL, 0, NULL };
	bool text = p[at[F_DATA]] == '"';
	size_t len;
	unsigned bad = 0;
	int f = F_CHANNEL;
	if (!(m->channel = unescape(b, p, n, at[f], &len, &bad)))
		goto not_text;
	f = F_TYPE;
	if (at[f] == NONE)
		m->type = text ? "text/plain" : "application/json";
	else if (!(m->type = unescape(b, p, n, at[f], &len, &bad)))
		goto not_text;
	f = F_DATA;
	if (text) {
		if (!(m->data = unescape(b, p, n, at[f], &m->len, &bad)))
			goto not_text;
		return 0;
	}
	if (strcmp(m->type, "application/json") != 0)
		return refuse(err, errlen, k, ": data of type %s must be a string", m->type);
	m->len = skip_value(p, n, at[f]) - at[f];
	char *d = own(b, m->len + 1);
	memcpy(d, p + at[f], m->len);
	d[m->len] = '\0';
	m->data = d;
	return 0;
not_text:
	if (bad == 0)
		return refuse(err, errlen, k, " has \\u0000 in its \"%s\"", field_name[f]);
	return refuse(err, errlen, k, " has an unpaired surrogate \\u%04X in its \"%s\": "
		      "not Unicode text", bad, field_name[f]);
}

int json_batch_parse(const char *body, size_t len, int max, struct json_batch *out,
		     char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!json_valid(body, len)) {
		snprintf(err, errlen, "the batch is not valid JSON");
		return JSON_EINVAL;
	}
	int rc = 0;
	size_t i = ws(body, len, 0);
	if (body[i] == '[') {
		i = ws(body, len, i + 1);
		while (rc == 0 && body[i] != ']') {
			if (out->n == max) {
				snprintf(err, errlen, "a batch holds at most %d messages", max);
				rc = JSON_ESHAPE;
			} else if ((rc = element(out, body, len, &i, err, errlen)) == 0) {
				i = ws(body, len, i);
				if (body[i] == ',')
					i = ws(body, len, i + 1);
			}
		}
	}
	if (rc == 0 && out->n == 0) {
		snprintf(err, errlen, "the batch must be a non-empty JSON array");
		rc = JSON_ESHAPE;
	}
	if (rc < 0)
		json_batch_free(out);
	return rc;
}

void json_batch_free(struct json_batch *b)
{
	for (int i = 0; i < b->nowned; i++)
		free(b->owned[i]);
	free(b->owned);
	free(b->msg);
	memset(b, 0, sizeof *b);
}
