/* reply: answer building. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "reply.h"

const char *reply_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

void reply_text(struct buf *out, int status, const char *body, size_t n, const char *headers)
{
	buf_printf(out, "Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		   "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		   "X-Content-Type-Options: nosniff\r\n%s\r\n",
		   status, reply_reason(status), n, headers ? headers : "");
	buf_add(out, body, n);
}

void reply_json(struct buf *out, int status, const char *body, size_t n,
		const char *callback, const char *headers)
{
	bool jsonp = callback && *callback;
	size_t len = n + (jsonp ? strlen(callback) + 3 : 0);
	buf_printf(out,
		   "Status: %d %s\r\n"
		   "Content-Type: %s\r\n"
		   "Content-Length: %zu\r\n"
		   "Cache-Control: no-store\r\n"
		   "X-Content-Type-Options: nosniff\r\n"
		   "%s\r\n",
		   status, reply_reason(status),
		   jsonp ? "application/javascript; charset=utf-8"
			 : "application/json; charset=utf-8",
		   len, headers ? headers : "");
	if (jsonp) {
		buf_adds(out, callback);
		buf_addc(out, '(');
	}
	buf_add(out, body, n);
	if (jsonp)
		buf_adds(out, ");");
}

void reply_json_string(struct buf *out, const char *s)
{
	buf_addc(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf_addc(out, '\\');
			buf_addc(out, (char)c);
		} else if (c < 0x20) {
			buf_printf(out, "\\u%04x", c);
		} else {
			buf_addc(out, (char)c);
		}
	}
	buf_addc(out, '"');
}

void reply_error(struct buf *out, int status, const char *msg,
		 const char *callback, const char *headers)
{
	struct buf body = BUF_INIT, hdr = BUF_INIT;
	buf_adds(&body, "{\"error\":");
	reply_json_string(&body, msg);
	buf_printf(&body, ",\"status\":%d}", status);
	if (status == 401)
		buf_adds(&hdr, "WWW-Authenticate: Bearer realm=\"comet\"\r\n");
	if (status == 503)
		buf_adds(&hdr, "Retry-After: 1\r\n");
	if (headers)
		buf_adds(&hdr, headers);
	reply_json(out, status, body.p, body.len, callback, hdr.len ? hdr.p : NULL);
	buf_free(&body);
	buf_free(&hdr);
}

void reply_sub(struct buf *out, int64_t last_id, const char *items, size_t n,
	       bool more, bool gap, bool reset)
{
	buf_printf(out, "{\"last_id\":%lld,\"messages\":[", (long long)last_id);
	buf_add(out, items, n);
	buf_printf(out, "],\"more\":%s%s%s}", more ? "true" : "false",
		   gap ? ",\"gap\":true" : "", reset ? ",\"reset\":true" : "");
}

void reply_sse_start(struct buf *out, const char *headers, long retry_ms)
{
	/* No Content-Length: the stream ends when the program ends it.
	 * X-Accel-Buffering: no asks proxies in front not to buffer it. */
	buf_printf(out,
		   "Status: 200 OK\r\n"
		   "Content-Type: text/event-stream; charset=utf-8\r\n"
		   "Cache-Control: no-store\r\n"
		   "X-Accel-Buffering: no\r\n"
		   "X-Content-Type-Options: nosniff\r\n"
		   "%s\r\n"
		   "retry: %ld\n\n",
		   headers ? headers : "", retry_ms);
}

void reply_sse_event(struct buf *out, const char *name, int64_t id, const char *json, size_t n)
{
	if (name && *name)
		buf_printf(out, "event: %s\n", name);
	buf_printf(out, "id: %lld\ndata: ", (long long)id);
	buf_add(out, json, n);
	buf_adds(out, "\n\n");
}
