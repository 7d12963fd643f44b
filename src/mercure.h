/* mercure: the pure logic of a Mercure hub, as the Mercure hub 0.x and
 * Symfony's Mercure component speak it: topic selectors, who may publish
 * and receive what, the publish form, update ids, the event-stream form of
 * an update, the subscribe query and where a request's JWT is. No I/O, no
 * logging: strings in, structs and verdicts out.
 *
 * Sources (read for facts, none copied): the protocol as the hub 0.x
 * documents it, spec/mercure.md of github.com/dunglas/mercure at tag
 * v0.24.2 (draft-dunglas-mercure-08, https://mercure.rocks/spec before the
 * 1.0 drafts), and that hub's code at the same tag: publish.go,
 * subscribe.go, subscriber.go, authorization.go, topicselector.go,
 * event.go, update.go; its URI templates are those of
 * github.com/yosida95/uritemplate v3.0.2 (parse.go, expression.go).
 *
 * What the endpoint answers, in the order the hub checks (the handler's
 * part; the functions below give the verdicts):
 *
 * | case                                                   | hub 0.x | here |
 * | ------------------------------------------------------ | ------- | ---- |
 * | publish or subscribe: a JWT that does not verify       | 401     | 401  |
 * |   (signature, alg, exp/nbf, syntax, claims' shape),    |         |      |
 * |   or an Authorization header not "Bearer <jws>"        |         |      |
 * | publish without any JWT                                | 401     | 401  |
 * | subscribe without any JWT, anonymous subscribers off   | 401     | 401  |
 * | publish: body not a form (bad %-escape, ';')           | 400     | 400  |
 * | publish: no topic field                                | 400     | 400  |
 * | publish: too many topics, a field too long, bad UTF-8  | 400     | 400  |
 * | publish: retry not a decimal unsigned 64-bit number    | 400     | 400  |
 * | publish: id or type holding CR, LF or NUL              | 400     | 400  |
 * | publish: JWT without mercure.publish, or with an empty | 401 (a) | 403  |
 * |   one, or a topic its selectors do not all cover       |         |      |
 * | publish: a topic holding "/.well-known/mercure"        | 403 (b) | 403  |
 * | publish: done                                          | 200, text/plain, the id |
 * | subscribe: no topic parameter                          | 400     | 400  |
 * | subscribe: too many topics, one too long, bad UTF-8,   | 400 (c) | 400  |
 * |   a URI template past MERCURE_PROG_MAX                 |         |      |
 * | subscribe: storage unavailable                         | 503     | 503  |
 * | subscribe: done: 200 text/event-stream, with a         |         |      |
 * |   Last-Event-ID response header when the request had   |         |      |
 * |   one (the id before the first event sent, or          |         |      |
 * |   "earliest")                                          |         |      |
 *
 * (a) The hub answers every authorization failure 401 (publish.go,
 * httpAuthorizationError in authorization.go); the protocol says a
 * publisher not allowed for every topic "MUST" get 403 (section
 * Authorization > Publishers) and 403 for any operation not allowed
 * ("SHOULD"), as this project's SPEC does: 403 here. Clients (Symfony's
 * Mercure component) take any non-2xx as a failure.
 * (b) Since hub 0.24.2 (security fixes #1259/#1260, which also brought the
 * CR/LF/NUL refusal and the 1000-element caps); the 1.0 drafts say 400.
 * (c) The hub caps topics at 1000 and nothing else; the limits here are
 * smaller (MERCURE_*), and the 1.0 drafts require 400 past any limit.
 */
#ifndef COMET_MERCURE_H
#define COMET_MERCURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MERCURE_MAX_TOPICS 256	/* of an update, a subscription, a JWT claim */
#define MERCURE_TOPIC_MAX 2048	/* bytes of one topic or selector */
#define MERCURE_ID_MAX 512	/* bytes of an update id or a Last-Event-ID */
#define MERCURE_TYPE_MAX 256	/* bytes of an event type */
#define MERCURE_PROG_MAX 4096	/* steps of one compiled URI template */
#define MERCURE_UUID_URN_LEN 45	/* "urn:uuid:" and 36 */
#define MERCURE_EARLIEST "earliest"
#define MERCURE_COOKIE "mercureAuthorization"
/* Only the hub's own updates (subscription events) may have a topic
 * holding this; a publisher's are refused (hub 0.24.2, publish.go). */
#define MERCURE_RESERVED "/.well-known/mercure"

/* -- Topic selectors ---------------------------------------------------
 *
 * A topic matches a selector, as the hub decides (topicselector.go):
 * 1. the selector is "*": always;
 * 2. the topic and the selector are the same bytes: always (so the
 *    template "https://a/{id}" matches the topic "https://a/{id}");
 * 3. the selector holds a '{' and is a valid RFC 6570 URI template: when
 *    the whole topic matches the regular expression the template
 *    compiles to (yosida95/uritemplate's Template.Regexp, anchored);
 * 4. otherwise never: a selector that is not a valid template is a plain
 *    string, compared by rule 2 only.
 *
 * The template grammar (as uritemplate's parser takes it): literals are
 * the RFC 6570 literal characters (no space, control, '"', '<', '>', '\',
 * '^', '`', '|', '}'; non-ASCII from ucschar/iprivate) and valid %XX
 * triplets; an expression is '{', an optional operator among + # . / ; ?
 * &, then variables separated by ',', each a name of [A-Za-z0-9_] and
 * %XX (dots inside, not first, last or doubled) with an optional explode
 * '*' or prefix ':1'..':9999', then '}'. The reserved operators = , ! @ |
 * and anything else make the selector a plain string (rule 4).
 *
 * Every RFC 6570 level (1 to 4) is matched, as the hub matches it, with
 * what its regular expressions imply (RFC 6570 defines expansion, not
 * matching):
 * - an expression matches the empty string (a variable may be undefined),
 *   and the variable's name is never checked: "{?topic}" matches "?x=1";
 * - {var}, {.var}, {/var}, {;var}, {?var}, {&var}: after the operator's
 *   first character (none, . / ; ? &), unreserved characters
 *   (A-Z a-z 0-9 - . _ ~), ',' and %XX triplets; with ; ? & (named) or an
 *   exploded first variable, '=' too; so {var} never matches '/', and
 *   "https://example.com/books/{id}" matches ".../books/1" and
 *   ".../books/", not ".../books/1/2";
 * - {+var} and {#var} (after '#'): unreserved and reserved characters
 *   (: / ? # [ ] @ ! $ & ' ( ) * + , ; =) and %XX, so they cross '/';
 * - several variables: the first value, then up to n-1 more each after
 *   the operator's separator (',' for none + #, else . / ; & as the
 *   operator), any number of them when a variable is exploded;
 * - prefix lengths are not enforced ("{var:3}" matches "abcdef"), as the
 *   hub's expression does not;
 * - bytes are compared: a literal's non-ASCII character matches its own
 *   UTF-8 bytes only, as the hub's rune-wise comparison does.
 * Matching is linear: a Thompson simulation of the compiled steps, never
 * backtracking; a template compiling to more than MERCURE_PROG_MAX steps
 * is refused (the hub has no such limit).
 */

struct mercure_prog;

enum mercure_sel_kind { MERCURE_SEL_EXACT, MERCURE_SEL_ANY, MERCURE_SEL_TEMPLATE };

struct mercure_selector {
	enum mercure_sel_kind kind;
	char *text;			/* owned copy of the selector */
	struct mercure_prog *prog;	/* MERCURE_SEL_TEMPLATE only */
};

struct mercure_selectors {
	struct mercure_selector *v;
	size_t n;
};

/* Compiles text (at most MERCURE_TOPIC_MAX bytes). Returns 0, or -1 with
 * err when it is too long or a template past MERCURE_PROG_MAX. */
int mercure_selector_compile(struct mercure_selector *s, const char *text,
			     char *err, size_t errlen);
void mercure_selector_free(struct mercure_selector *s);
bool mercure_selector_match(const struct mercure_selector *s, const char *topic);
/* One-off: compiles, matches, frees; false when selector does not compile. */
bool mercure_match(const char *selector, const char *topic);

/* Compiles n selectors (at most MERCURE_MAX_TOPICS); all or none. */
int mercure_selectors_compile(struct mercure_selectors *out, const char *const *texts,
			      size_t n, char *err, size_t errlen);
void mercure_selectors_free(struct mercure_selectors *s);

/* -- Authorization ------------------------------------------------------
 *
 * Publishing: every topic of the update must match one of the
 * publisher's mercure.publish selectors (a "*" among them allows all);
 * none (claim absent or []) allows nothing. The same for public and
 * private updates (the hub's backward compatibility with protocol 7, which
 * let public updates through, is off by default and not kept here).
 *
 * Receiving (subscriber.go, MatchTopics): the update reaches a subscriber
 * when one of its topics (canonical or alternate) matches one of the
 * selectors the subscriber asked for; a private one, only when besides
 * one of its topics, not necessarily the same, matches one of the
 * selectors of the subscriber's mercure.subscribe claim (none without a
 * JWT). An update is sent once however many topics and selectors match.
 */
bool mercure_can_publish(const struct mercure_selectors *publish,
			 const char *const *topics, size_t ntopics);
/* The claim's part: true for a public update; for a private one, whether
 * one of topics matches one of subscribe (NULL: no claim). */
bool mercure_can_receive(const struct mercure_selectors *subscribe,
			 const char *const *topics, size_t ntopics, bool private_update);
/* The index of the first requested selector that one of topics matches,
 * or -1. */
int mercure_subscribed(const struct mercure_selectors *requested,
		       const char *const *topics, size_t ntopics);
/* Both: whether the update is delivered to this subscriber. */
bool mercure_delivers(const struct mercure_selectors *requested,
		      const struct mercure_selectors *subscribe,
		      const char *const *topics, size_t ntopics, bool private_update);

/* -- Publishing ---------------------------------------------------------
 *
 * The body of a publish (application/x-www-form-urlencoded, parsed as Go's
 * url.ParseQuery does, which the hub's ParseForm uses: pairs split at '&',
 * empty ones skipped, a pair holding ';' or a bad %-escape refused, '+' a
 * space, names decoded too). Fields: topic (repeated, at least one, in
 * order: the first is the canonical topic), data, private (present with
 * any value or none: private, as the hub and the protocol say), id, type,
 * retry; of repeated data, id, type and retry the first counts; others
 * are ignored. Every field must be UTF-8 without NUL (stricter than the
 * hub, which stores any bytes); id and type without CR or LF, which would
 * forge event-stream fields. An empty id, type or retry is as absent.
 */
struct mercure_update {
	const char **topics;	/* ntopics, each NUL-terminated */
	size_t ntopics;
	const char *data;	/* "" when absent */
	size_t data_len;
	bool private_update;
	const char *id;		/* NULL until given or assigned */
	const char *type;	/* NULL when absent */
	uint64_t retry;		/* 0 when absent */
	char gen_id[MERCURE_UUID_URN_LEN + 1];
	char *store;		/* the decoded body, which the pointers point into */
};

/* Returns 0, or 400 or 403 (the status to answer) with err; out is then
 * empty. mercure_update_free either way. */
int mercure_publish_parse(const char *body, size_t len, struct mercure_update *out,
			  char *err, size_t errlen);
void mercure_update_free(struct mercure_update *u);

/* Fills out[0..n) with random bytes; 0, or -1 when it cannot. */
typedef int (*mercure_random_fn)(void *ctx, unsigned char *out, size_t n);
/* OpenSSL's RAND_bytes, for mercure_assign_id. */
int mercure_random_default(void *ctx, unsigned char *out, size_t n);

/* "urn:uuid:" and the version 4 UUID made of the 16 random bytes. The hub
 * made v4 UUIDs up to 0.21 and v7 (time-ordered) since 0.22: either is an
 * opaque IRI to clients. */
void mercure_uuid_urn(const unsigned char rnd[16], char out[MERCURE_UUID_URN_LEN + 1]);
/* Keeps the publisher's id; without one, u->id becomes a new
 * "urn:uuid:..." (in u->gen_id). 0, or -1 when rnd fails. */
int mercure_assign_id(struct mercure_update *u, mercure_random_fn rnd, void *ctx);

/* -- Event stream -------------------------------------------------------
 *
 * Appends one update as an event (event.go): "event: <type>\n" when type
 * is set and not empty, "retry: <n>\n" when retry > 0, "id: <id>\n" when
 * id is not NULL (the hub's always has one), then
 * "data: " and each line of data (lines end at CRLF, CR or LF, so "a\n"
 * gives "data: a\ndata: \n", and EventSource gives back "a\n" with CR
 * turned to LF), and an empty line. Returns 0, or -1 (nothing appended)
 * when id or type holds CR or LF. */
int mercure_event_render(struct buf *out, const char *id, const char *type,
			 uint64_t retry, const char *data, size_t len);

/* -- Stored updates -----------------------------------------------------
 *
 * An update lives in the log as a message of channel MERCURE_CHANNEL and
 * type MERCURE_TYPE whose data is the JSON object
 * {"id", "topics": [...], "data", "private", "type", "retry"} (type null
 * when absent, retry 0), its origin the update's id (so that a
 * Last-Event-ID finds it). */
#define MERCURE_CHANNEL "mercure"
#define MERCURE_TYPE "application/x-mercure-update+json"

/* The stored form of u (after mercure_assign_id). */
void mercure_update_store(const struct mercure_update *u, struct buf *out);

/* What a subscriber asked for and may see (either may be empty). */
struct mercure_filter {
	struct mercure_selectors requested;
	struct mercure_selectors subscribe;	/* its JWT's mercure.subscribe */
};
void mercure_filter_free(struct mercure_filter *f);

/* A message of the log as the program renders it ({"id", "channel",
 * "time", "type", "data": <stored update>}): its event for this
 * subscriber appended to out, true; false when the update is not for it
 * (or the message is not an update). */
bool mercure_event_for(const struct mercure_filter *f, const char *msg, size_t len,
		       struct buf *out);

/* -- Subscribing --------------------------------------------------------
 *
 * The query of a subscribe, as the hub reads r.URL.Query(): the same
 * parsing as a publish body, except that a malformed pair is skipped, not
 * refused. topic (repeated) is a selector each; lastEventID the first
 * one's; the Last-Event-ID request header, when not empty, comes before
 * it; "earliest" asks for every retained update. The legacy Last-Event-ID
 * query parameter (protocol 7) is not read, as the hub does not by
 * default. authorization is the JWT parameter, kept for
 * mercure_token_find. */
struct mercure_sub {
	struct mercure_selectors sel;	/* the requested topic selectors, compiled */
	const char **topics;		/* their text, in order */
	size_t ntopics;
	const char *last_event_id;	/* NULL when neither gives one */
	bool earliest;			/* last_event_id is "earliest" */
	const char *authorization;	/* the first authorization parameter, or NULL */
	int nauthorization;		/* how many there were */
	char *store;
};

/* Returns 0, or 400 with err. mercure_sub_free either way. */
int mercure_subscribe_parse(const char *query, const char *last_event_id_header,
			    struct mercure_sub *out, char *err, size_t errlen);
void mercure_sub_free(struct mercure_sub *s);

/* -- Where the JWT is ---------------------------------------------------
 *
 * In the protocol's order (authorization.go): the Authorization header
 * when present (it must then be "Bearer <jws>", the scheme's case aside;
 * nothing else is looked at), else the authorization query parameter when
 * present (exactly once), else the mercureAuthorization cookie. A cookie
 * on a POST is a CSRF risk: the hub then requires an Origin (or Referer)
 * among its publish origins, which the handler checks. */
enum mercure_token_src {
	MERCURE_TOKEN_NONE,
	MERCURE_TOKEN_HEADER,
	MERCURE_TOKEN_QUERY,
	MERCURE_TOKEN_COOKIE,
	MERCURE_TOKEN_BAD	/* the one that counts is malformed: 401 */
};

/* authorization: the header or NULL; query_token and nquery: from
 * mercure_sub (or NULL, 0); cookies: the Cookie header or NULL. On
 * HEADER, QUERY or COOKIE, *tok and *len give the token, pointing into
 * one of the arguments (not NUL-terminated when from the cookie). */
enum mercure_token_src mercure_token_find(const char *authorization, const char *query_token,
					  int nquery, const char *cookies,
					  const char **tok, size_t *len);

#endif
