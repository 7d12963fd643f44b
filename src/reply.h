/* reply: whole answers (CGI/FastCGI header block and body) built in a buffer
 * before any byte is written: JSON, JSONP and the JSON error shape. */
#ifndef COMET_REPLY_H
#define COMET_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

const char *reply_reason(int status);

/* body is JSON; with a callback the answer is `callback(body);` as
 * application/javascript. headers: extra "Name: value\r\n" lines or NULL. */
/* A text/plain answer (a Mercure update's id). */
void reply_text(struct buf *out, int status, const char *body, size_t n, const char *headers);
void reply_json(struct buf *out, int status, const char *body, size_t n,
		const char *callback, const char *headers);

/* {"error": msg, "status": status}, with the headers that status needs. */
void reply_error(struct buf *out, int status, const char *msg,
		 const char *callback, const char *headers);

/* The body of a subscribe answer: {"last_id","messages","more"} and
 * "gap"/"reset" only when true. items: message objects, comma-separated,
 * as rendered by the log. */
void reply_sub(struct buf *out, int64_t last_id, const char *items, size_t n,
	       bool more, bool gap, bool reset);

/* The start of an event stream: header block and the retry field. */
void reply_sse_start(struct buf *out, const char *headers, long retry_ms);
/* One event: "id: <id>\ndata: <json>\n\n"; name "" for a message. */
void reply_sse_event(struct buf *out, const char *name, int64_t id, const char *json, size_t n);

/* Appends s as a JSON string literal (quotes included). */
void reply_json_string(struct buf *out, const char *s);

#endif
