/* request: pure parsing of what a request carries (path, query string,
 * headers, body) into plain structs, or a status and a message for a person.
 * No I/O, no globals: it can be fuzzed and unit-tested on its own. */
#ifndef COMET_REQUEST_H
#define COMET_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQ_MAX_CHANNELS 32
#define REQ_CHANNEL_LEN 128
#define REQ_CALLBACK_LEN 64
#define REQ_TYPE_LEN 127
#define REQ_TOKEN_LEN 96
#define REQ_MAX_LIMIT 1000
/* Presence and Pusher authorizations one subscription may carry. */
#define REQ_MAX_AUTH 8
#define REQ_PTOKEN_LEN 1500	/* a presence token (member.h, MEMBER_TOKEN_MAX) */
#define REQ_AUTH_LEN 160	/* a Pusher auth string "<key>:<hex>" */
#define REQ_CHANNEL_DATA_LEN 1024
#define REQ_SOCKET_ID_LEN 40
#define REQ_DEFAULT_LIMIT 100

enum req_endpoint {
	REQ_EP_UNKNOWN, REQ_EP_SUB, REQ_EP_PUB, REQ_EP_STATS, REQ_EP_METRICS,
	REQ_EP_PRESENCE, REQ_EP_WHISPER, REQ_EP_MERCURE,
	REQ_EP_PUSHER,		/* a path with /apps/: the Pusher HTTP API */
};

struct req_error {
	int status;
	const char *msg;
};

struct req_limits {
	long timeout, max_timeout;	/* seconds */
	long max_message;		/* bytes */
};

struct req_sub {
	int nchan;
	char chan[REQ_MAX_CHANNELS][REQ_CHANNEL_LEN + 1];
	int64_t since;			/* -1: from now (the next message) */
	long timeout;			/* seconds, already capped */
	int limit;
	char callback[REQ_CALLBACK_LEN + 1];	/* "" when none */
	bool stream;			/* Accept: text/event-stream */
	int ntoken;			/* private-channel tokens, as given */
	char token[REQ_MAX_CHANNELS][REQ_TOKEN_LEN + 1];
	int nptoken;			/* presence tokens (two dots), as given */
	char ptoken[REQ_MAX_AUTH][REQ_PTOKEN_LEN + 1];
	/* A subscriber of the Pusher protocol (Laravel Echo): its connection
	 * ("" when none), and the auth strings (and presence channel_data)
	 * its app's /broadcasting/auth gave, as given. */
	char socket_id[REQ_SOCKET_ID_LEN + 1];
	int nauth, ncdata;
	char auth[REQ_MAX_AUTH][REQ_AUTH_LEN + 1];
	char cdata[REQ_MAX_AUTH][REQ_CHANNEL_DATA_LEN + 1];
};

struct req_pub {
	char chan[REQ_CHANNEL_LEN + 1];
	char type[REQ_TYPE_LEN + 1];	/* media type, lower case, no parameters */
	const char *data;		/* points into the caller's body */
	size_t len;
};

/* The endpoint is the last segment of SCRIPT_NAME + PATH_INFO, or the
 * Pusher HTTP API when that path holds /apps/ (request_pusher_path: the
 * path from /apps/ on, which the caller frees; NULL when none). */
enum req_endpoint request_endpoint(const char *script_name, const char *path_info);
char *request_pusher_path(const char *script_name, const char *path_info);

/* True when c is a valid channel name of n bytes. */
bool request_channel_valid(const char *c, size_t n);

/* GET .../sub. Any argument but lim, out and err may be NULL. */
int request_sub(const char *query, const char *last_event_id, const char *accept,
		const struct req_limits *lim, struct req_sub *out, struct req_error *err);

/* GET or DELETE .../pub: exactly one channel in the query. */
int request_channel(const char *query, char chan[REQ_CHANNEL_LEN + 1],
		    struct req_error *err);

/* POST .../pub. A form body is decoded in place, so body must be writable;
 * out->data then points into it. */
int request_pub(const char *query, const char *content_type, char *body, size_t len,
		long max_message, struct req_pub *out, struct req_error *err);

/* The one check of a message to be appended, whoever publishes it (a POST,
 * an element of a batch, the command line): the channel name rule, a
 * stored media type (lower case, no parameters, not a form), at most
 * max_message bytes, UTF-8 text without NUL, and for application/json
 * valid JSON without \u0000. 0, or -1 with err (400, 413 or 415). */
int request_message(const char *chan, const char *type, const char *data, size_t len,
		    long max_message, struct req_error *err);
/* The types whose messages are JSON, checked when published and embedded
 * as JSON in answers: application/json and the program's own event types
 * (Pusher events, presence). */
bool request_json_type(const char *type);
#define REQ_PUSHER_TYPE "application/x-pusher-event+json"

/* The largest body a publish of this Content-Type may carry (a form
 * encodes each byte in up to three; a JSON body may be a batch of many
 * messages); with ctype NULL, the largest of any. */
long request_body_max(const char *ctype, long max_message);
#define REQ_BATCH_BODY_MAX (4L << 20)

/* Content-Type to a stored media type. Returns 0, or -1 with err (415). */
int request_media_type(const char *ct, char out[REQ_TYPE_LEN + 1], bool *charset_ok,
		       struct req_error *err);

/* True when JSON text s holds the escape \u0000 (a NUL in a string). */
bool request_json_nul(const char *s, size_t n);

/* Parses a message id (decimal, 0 .. INT64_MAX). */
bool request_id(const char *s, size_t n, int64_t *out);

#endif
