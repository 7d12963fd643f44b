/* json: strict JSON validation and the parsing of a batch publish body,
 * pure functions shared by the storage backends, the handler and the fuzzer.
 *
 * No I/O, no locks, no logging: input in, struct out. */
#ifndef COMET_JSON_H
#define COMET_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "msgtypes.h"	/* struct msglog_msg, which a batch is made of */

/* Deepest nesting of arrays and objects json_valid accepts: SQLite's
 * (JSON_MAX_DEPTH), so that what one accepts the other does. */
#define JSON_MAX_DEPTH 2000

/* json_batch_parse's refusals; err then says why, for the client. */
#define JSON_EINVAL (-1)	/* the body is not JSON (415) */
#define JSON_ESHAPE (-2)	/* JSON, but not a batch of messages (400) */

/* Whether p[0..n) is one JSON value (RFC 8259), with whitespace around it
 * and nesting at most JSON_MAX_DEPTH deep: what SQLite 3.40's json_valid()
 * accepts, but for two things refused here: a NUL byte anywhere (SQLite
 * stops reading at it), and an object key that is an array or object
 * ending in a string, {["a"]:1}, which SQLite 3.40 takes for a string key
 * (and json() then renders as garbage). Like SQLite's, it does not check
 * that the bytes are UTF-8 (utf8_valid does). */
bool json_valid(const char *p, size_t n);

/* Walking a text that json_valid accepted, and only such a text: these
 * rely on every string and container in it being closed before its end.
 * Offsets index p[0..n); each names where a value or a key starts. */

/* The first offset at or after i that is not whitespace. */
size_t json_ws(const char *p, size_t n, size_t i);
/* The offset just past the value that starts at p[i]. */
size_t json_skip(const char *p, size_t n, size_t i);

/* The members of an object, or the elements of an array, in order. */
struct json_iter {
	size_t i;
	bool object;
};
/* p[i] is the container's opening bracket. */
void json_iter_init(struct json_iter *it, const char *p, size_t i);
/* The next member: *key gets its key's offset (SIZE_MAX in an array),
 * *val its value's. False past the last. */
bool json_iter_next(struct json_iter *it, const char *p, size_t n, size_t *key, size_t *val);

/* Whether the string at p[i] is name, its escapes decoded. */
bool json_key_is(const char *p, size_t n, size_t i, const char *name);
/* Bytes enough for json_string_text of the string at p[i], NUL included. */
size_t json_string_room(const char *p, size_t n, size_t i);
/* The string at p[i], unescaped (UTF-8) into out, NUL-terminated; *len
 * gets its length. False when an escape is not text, \u0000 or a
 * surrogate without its pair: *bad then gets its code point. Raw bytes
 * are copied as they stand (utf8_valid is the caller's to apply). */
bool json_string_text(const char *p, size_t n, size_t i, char *out, size_t *len,
		      unsigned *bad);

/* A batch publish body: a JSON array of {"channel", "data", "type"?}.
 * Each element becomes a message: data that is a JSON string is stored as
 * its text, unescaped (type defaults to text/plain); any other JSON value
 * is stored as its JSON text, exactly as it stands in the body (type
 * defaults to application/json, and another type is refused). An element
 * that is not an object (a string holding JSON text included) is refused,
 * never parsed. Of duplicate keys the first counts. A string escape that
 * is not text (\u0000, or a surrogate without its pair) is refused rather
 * than stored as invalid UTF-8.
 *
 * msg[i].channel, .type and .data are NUL-terminated and hold no other NUL
 * byte; they and msg are owned by the batch until json_batch_free. */
struct json_batch {
	struct msglog_msg *msg;
	int n;
	char **owned;
	int nowned;
};

/* At most max elements. Returns 0, JSON_EINVAL or JSON_ESHAPE (err names
 * the element, counting from 0, and why); on a refusal out is empty. */
int json_batch_parse(const char *body, size_t len, int max, struct json_batch *out,
		     char *err, size_t errlen);
void json_batch_free(struct json_batch *b);

#endif
