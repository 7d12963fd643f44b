/* pusher: the Pusher Channels HTTP API as Pusher's server libraries speak it
 * (signed requests, the events and batch bodies, routes, channel
 * authorization strings, the answers). Pure: no I/O, no logging, no locks. */
#ifndef COMET_PUSHER_H
#define COMET_PUSHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Pusher's limits. Sources (pusher/docs, docs/channels/...):
 * library_auth_reference/rest-api.md (600 s, 100 channels, 10 events per
 * batch "on the multi-tenant clusters", 10KB of data, answered 413),
 * using_channels/channels.md (164 characters), using_channels/
 * presence-channels.md (user id 128 characters, user object 1KB); the event
 * name's 200 from pusher-http-node lib/pusher.js (trigger). */
#define PUSHER_TIMESTAMP_SKEW 600	/* seconds either side of now */
#define PUSHER_CHANNEL_MAX 164		/* bytes: the names are ASCII */
#define PUSHER_CHANNELS_MAX 100		/* channels of one event */
#define PUSHER_BATCH_MAX 10		/* events of one batch */
#define PUSHER_NAME_MAX 200		/* characters (code points) of an event name */
#define PUSHER_DATA_MAX 10240		/* bytes of an event's data on Pusher itself */
#define PUSHER_USER_ID_MAX 128		/* characters of a presence member's id */
#define PUSHER_CHANNEL_DATA_MAX 1024	/* bytes of a presence member's channel_data */
#define PUSHER_PARAMS_MAX 64		/* query parameters (ours: Pusher names none) */

/* What the configuration names (COMET_PUSHER_APP_ID, _KEY, _SECRET). */
struct pusher_app {
	const char *id, *key, *secret;
};

/* 1 to 164 of A-Z a-z 0-9 _ - = @ , . ; (channels.md). */
bool pusher_channel_valid(const char *c, size_t n);
bool pusher_channel_presence(const char *c);
/* ^[0-9]+\.[0-9]+$, as pusher-http-node and pusher-http-php check it. */
bool pusher_socket_id_valid(const char *s);

/* Lower-case hex HMAC-SHA256(secret, msg[0..len)) into hex (65 bytes). */
void pusher_hmac_hex(const char *secret, const char *msg, size_t len, char hex[65]);

/* The string a request's auth_signature signs: method, "\n", path, "\n",
 * and the query's parameters but auth_signature, each key=value decoded
 * (%XX, and '+' as a space), keys in lower case, sorted by key (bytes) and
 * joined with '&'. path starts at "/apps/" and is decoded (PATH_INFO);
 * query is raw (QUERY_STRING), NULL for none. Returns 0, or 400 when the
 * query is not well-formed (bad %-escape, not UTF-8, a key twice, an empty
 * key, more than PUSHER_PARAMS_MAX parameters). */
int pusher_string_to_sign(const char *method, const char *path, const char *query,
			  struct buf *out, char *err, size_t errlen);

/* Whether the request is the app's: auth_key is the app's key (compared in
 * constant time), auth_version 1.0, auth_timestamp within
 * PUSHER_TIMESTAMP_SKEW of now (Unix seconds), auth_signature the hex
 * HMAC-SHA256 of pusher_string_to_sign (constant time, either case), and
 * body_md5 the hex MD5 of body[0..len): required when len > 0, checked
 * whenever given. Returns 0, 400 (the query is not well-formed) or 401
 * (a missing or wrong auth_* or body_md5); err says which, for a person. */
int pusher_verify(const struct pusher_app *app, const char *method, const char *path,
		  const char *query, const char *body, size_t len, int64_t now,
		  char *err, size_t errlen);

enum pusher_endpoint {
	PUSHER_EVENTS,		/* POST /apps/<id>/events */
	PUSHER_BATCH_EVENTS,	/* POST /apps/<id>/batch_events */
	PUSHER_CHANNELS,	/* GET /apps/<id>/channels */
	PUSHER_CHANNEL,		/* GET /apps/<id>/channels/<channel> */
	PUSHER_USERS,		/* GET /apps/<id>/channels/<presence channel>/users */
};

struct pusher_route {
	enum pusher_endpoint ep;
	char channel[PUSHER_CHANNEL_MAX + 1];	/* "" but for CHANNEL and USERS */
	const char *allow;	/* after a 405: the one method the path takes */
};

/* path: from "/apps/" on, decoded. Returns 0; 404 for any other path,
 * another app's id included; 405 for another method (out->allow set); 400
 * for a channel name that is not one, or the users of a channel that is not
 * a presence channel (rest-api.md: "you will get a 400"). */
int pusher_route(const char *app_id, const char *method, const char *path,
		 struct pusher_route *out, char *err, size_t errlen);

/* The attributes an "info" list may ask for. */
#define PUSHER_INFO_USER_COUNT 1u
#define PUSHER_INFO_SUBSCRIPTION_COUNT 2u

/* Comma-separated attribute names to PUSHER_INFO_* bits; 0, or 400 for a
 * name that is neither. */
int pusher_info_parse(const char *s, size_t n, unsigned *out, char *err, size_t errlen);

/* The parameters of the GET endpoints. */
struct pusher_get {
	unsigned info;
	char prefix[PUSHER_CHANNEL_MAX + 1];	/* filter_by_prefix; "" when none */
};

/* Returns 0, or 400: user_count on GET channels without a filter_by_prefix
 * that starts with "presence-", user_count of a channel that is not a
 * presence channel, subscription_count on GET channels (which answers only
 * user_count), an unknown attribute, a prefix that no channel name could
 * start with, or a query that is not well-formed. The users endpoint takes
 * no parameter and ignores them. */
int pusher_get_parse(const struct pusher_route *r, const char *query, struct pusher_get *out,
		     char *err, size_t errlen);

/* One event as published: data is the string Pusher's API carries (the
 * libraries JSON-encode anything else into it), kept as its text. */
struct pusher_event {
	const char *name;
	const char *data;
	size_t len;		/* of data, which holds no NUL byte */
	const char **channel;	/* nchannel distinct names, in the order given */
	int nchannel;
	const char *socket_id;	/* the connection not to deliver to; NULL: none */
	unsigned info;		/* PUSHER_INFO_* its answer is to carry */
};

struct pusher_events {
	struct pusher_event *ev;
	int n;
	bool batch;		/* from batch_events: answered event by event */
	bool info;		/* some event asked for info */
	char **owned;
	int nowned;
};

/* POST .../events: {"name", "data", "channel" | "channels", "socket_id"?,
 * "info"?}, one event. POST .../batch_events: {"batch": [{"channel",
 * "name", "data", "socket_id"?, "info"?}, ...]}, 1 to PUSHER_BATCH_MAX. The
 * body must be UTF-8 JSON; a member these read given twice is refused, as
 * is a string escape that is not text (\u0000, a lone surrogate); other
 * members are ignored; socket_id and info may be null. Returns 0, 400 (err
 * says which event, counting from 0, and why) or 413 (data longer than
 * max_data bytes); on a refusal out is empty. */
int pusher_events_parse(const char *body, size_t len, size_t max_data,
			struct pusher_events *out, char *err, size_t errlen);
int pusher_batch_parse(const char *body, size_t len, size_t max_data,
		       struct pusher_events *out, char *err, size_t errlen);
void pusher_events_free(struct pusher_events *e);

/* A client event as Laravel Echo's whisper sends it to comet-fcgi:
 * {"event": "client-...", "data": any} (at most PUSHER_DATA_MAX bytes of
 * UTF-8 JSON; the name as Pusher limits it). Returns NULL with out
 * {"event": name, "data": data} (the message stored), or why not. */
const char *pusher_client_event(const char *body, size_t len, struct buf *out);

/* A private or presence subscription's auth string, as Laravel's
 * /broadcasting/auth returns it: "<key>:<hex HMAC-SHA256(secret,
 * "<socket_id>:<channel>[:<channel_data>]")>" (auth-signatures.md);
 * channel_data NULL or "" for none, as pusher-http-php treats "". Compared
 * in constant time; the hex in either case. False too for a socket_id or a
 * channel that is not one (with a ':' in either, one signed string would
 * stand for several subscriptions). */
bool pusher_channel_auth_valid(const char *key, const char *secret, const char *socket_id,
			       const char *channel, const char *channel_data, const char *auth);

/* A presence member from its channel_data {"user_id": string | number,
 * "user_info": any?}, at most PUSHER_CHANNEL_DATA_MAX bytes of UTF-8 JSON. */
struct pusher_member {
	char *id;	/* a string's text, or a number's JSON text as written */
	char *info;	/* user_info's JSON text as written; NULL: absent or null */
};

/* Returns 0, or -1 and err. */
int pusher_member_parse(const char *channel_data, size_t len, struct pusher_member *out,
			char *err, size_t errlen);
void pusher_member_free(struct pusher_member *m);

/* What the caller knows of a channel. Occupied: a subscription or a member. */
struct pusher_channel_state {
	const char *name;
	long user_count;		/* distinct members (presence channels) */
	long subscription_count;	/* subscriptions held */
};

/* The answers (bodies, 200 application/json). A channel the caller gives no
 * state for is unoccupied. */

/* Events: {} unless an event asked for info; then, for events,
 * {"channels": {"<channel>": {attributes}, ...}} over its distinct channels,
 * and for a batch {"batch": [{attributes}, ...]}, one per event (rest-api.md).
 * user_count goes only to presence channels. */
void pusher_render_events(struct buf *out, const struct pusher_events *e,
			  const struct pusher_channel_state *ch, int nch);
/* GET channels: {"channels": {"<name>": {} or {"user_count": N}}}, the
 * occupied channels of ch whose name starts with q->prefix, in ch's order. */
void pusher_render_channels(struct buf *out, const struct pusher_get *q,
			    const struct pusher_channel_state *ch, int nch);
/* GET channel: {"occupied": bool, "user_count"?, "subscription_count"?};
 * st NULL: nobody is on it. */
void pusher_render_channel(struct buf *out, const struct pusher_route *r,
			   const struct pusher_get *q, const struct pusher_channel_state *st);
/* GET users: {"users": [{"id": "<id>"}, ...]}. */
void pusher_render_users(struct buf *out, const char *const *ids, int n);

#endif
