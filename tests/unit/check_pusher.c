/* Unit tests: the Pusher Channels HTTP API (pure), pinned by the vectors
 * Pusher publishes and by ones made with Pusher's own libraries. */
#include "config.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pusher.h"
#include "suites.h"

/* The credentials of Pusher's worked examples (pusher/docs,
 * docs/channels/library_auth_reference/rest-api.md and auth-signatures.md). */
#define KEY "278d425bdf160c739803"
#define SECRET "7ad3773142a6692b25b8"
#define TS 1353088179
static const struct pusher_app app = { "3", KEY, SECRET };

/* rest-api.md, "Worked authentication example": body, query and signature
 * as published there. */
static const char docs_body[] =
	"{\"name\":\"foo\",\"channels\":[\"project-3\"],\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}";
static const char docs_query[] =
	"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
	"&body_md5=ec365a775a4cd0599faeb73354201b6f"
	"&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
static const char docs_to_sign[] =
	"POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179"
	"&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f";

static char err[512];

static int verify(const char *method, const char *path, const char *query, const char *body,
		  int64_t now)
{
	err[0] = '\0';
	return pusher_verify(&app, method, path, query, body, body ? strlen(body) : 0, now,
			     err, sizeof err);
}

static void md5_hex(const char *p, size_t n, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_Digest(p, n, md, &len, EVP_md5(), NULL);
	for (unsigned i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* query with its auth_signature appended, made with secret by this
 * module's own rule (the published vectors below pin that rule). */
static char *sign_raw(const char *secret, const char *method, const char *path, const char *query)
{
	struct buf q = BUF_INIT, s = BUF_INIT;
	buf_adds(&q, query);
	ck_assert_int_eq(pusher_string_to_sign(method, path, query, &s, err, sizeof err), 0);
	char mac[65];
	pusher_hmac_hex(secret, s.p, s.len, mac);
	buf_printf(&q, "&auth_signature=%s", mac);
	buf_free(&s);
	return q.p;
}

/* The auth parameters, body_md5 when body is given, then extra; signed. */
static char *sign_with(const char *secret, const char *method, const char *path,
		       const char *extra, const char *body, long ts)
{
	struct buf q = BUF_INIT;
	buf_printf(&q, "auth_key=%s&auth_timestamp=%ld&auth_version=1.0", KEY, ts);
	if (body) {
		char md5[33];
		md5_hex(body, strlen(body), md5);
		buf_printf(&q, "&body_md5=%s", md5);
	}
	if (extra)
		buf_printf(&q, "&%s", extra);
	char *signed_q = sign_raw(secret, method, path, q.p);
	buf_free(&q);
	return signed_q;
}

static char *sign(const char *method, const char *path, const char *extra, const char *body,
		  long ts)
{
	return sign_with(SECRET, method, path, extra, body, ts);
}

START_TEST(docs_worked_example)
{
	char md5[33];
	md5_hex(docs_body, strlen(docs_body), md5);
	ck_assert_str_eq(md5, "ec365a775a4cd0599faeb73354201b6f");
	struct buf s = BUF_INIT;
	ck_assert_int_eq(pusher_string_to_sign("POST", "/apps/3/events", docs_query, &s,
					       err, sizeof err), 0);
	ck_assert_str_eq(s.p, docs_to_sign);
	char mac[65];
	pusher_hmac_hex(SECRET, s.p, s.len, mac);
	ck_assert_str_eq(mac, "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
	buf_free(&s);
	ck_assert_int_eq(verify("POST", "/apps/3/events", docs_query, docs_body, TS), 0);
}
END_TEST

/* Made with the npm package pusher 5.3.4 (pusher-http-node): its own
 * lib/requests.js createSignedQueryString with the docs' credentials and
 * Date.now frozen at TS; the queries are what it puts in the URL. */
START_TEST(node_library_vectors)
{
	ck_assert_int_eq(verify("GET", "/apps/3/channels",
		"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
		"&filter_by_prefix=presence-&info=user_count&auth_signature="
		"16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291", NULL, TS), 0);
	ck_assert_int_eq(verify("GET", "/apps/3/channels/presence-foobar",
		"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
		"&info=user_count,subscription_count&auth_signature="
		"377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d", NULL, TS), 0);
	ck_assert_int_eq(verify("GET", "/apps/3/channels/presence-foobar/users",
		"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
		"&auth_signature=5567dd30e7f8575e66be615d2aac3f608a0c311c31ddab8513a278b022e9597e",
		NULL, TS), 0);
	/* A body with a non-ASCII character: MD5 of its UTF-8 bytes. */
	ck_assert_int_eq(verify("POST", "/apps/3/events",
		"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
		"&body_md5=4fc7ecf6ccdc399ee0174ab5a19df0b7&auth_signature="
		"ac21241ed3687afab7802bd9220b9095f2dfb5cebf6a5ad08371743133503e31",
		"{\"name\":\"my-event\",\"data\":\"{\\\"message\\\":\\\"h\xc3\xa9llo\\\"}\","
		"\"channels\":[\"private-a\",\"presence-b\"],\"socket_id\":\"123.456\"}", TS), 0);
	ck_assert_int_eq(verify("POST", "/apps/3/batch_events",
		"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
		"&body_md5=250d930fed72f228ac05a4a8e70966c0&auth_signature="
		"38a09a2293bab66c112a508c9f2b1fb9ed7faba7d4a7a75dc0adbf0d0b8924ff",
		"{\"batch\":[{\"channel\":\"a\",\"name\":\"e1\",\"data\":\"1\"},"
		"{\"channel\":\"presence-b\",\"name\":\"e2\",\"data\":\"{\\\"x\\\":2}\","
		"\"info\":\"user_count\"}]}", TS), 0);
}
END_TEST

/* pusher-http-php signs the raw value (Pusher::build_auth_query_params,
 * run with TS: the same 377ee926... as node's) and Guzzle sends it
 * %-encoded (http_build_query, PHP_QUERY_RFC3986): the comma is %2C. */
START_TEST(php_library_wire_encoding)
{
	ck_assert_int_eq(verify("GET", "/apps/3/channels/presence-foobar",
		"auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
		"&info=user_count%2Csubscription_count&auth_signature="
		"377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d", NULL, TS), 0);
}
END_TEST

START_TEST(sorted_lowercased_decoded)
{
	/* Any order on the wire: the rule sorts. */
	ck_assert_int_eq(verify("POST", "/apps/3/events",
		"auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
		"&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_version=1.0"
		"&auth_timestamp=1353088179&auth_key=278d425bdf160c739803", docs_body, TS), 0);
	/* Keys in any case: the rule lower-cases them. */
	ck_assert_int_eq(verify("POST", "/apps/3/events",
		"AUTH_KEY=278d425bdf160c739803&Auth_Timestamp=1353088179&auth_version=1.0"
		"&BODY_MD5=ec365a775a4cd0599faeb73354201b6f"
		"&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
		docs_body, TS), 0);
	/* Encoded keys and values, empty parameters: signed decoded. */
	ck_assert_int_eq(verify("POST", "/apps/3/events",
		"auth%5Fkey=278d425bdf160c739803&&auth_timestamp=135308817%39&auth_version=1%2E0"
		"&body_md5=ec365a775a4cd0599faeb73354201b6f&"
		"&auth_signature=DA454824C97BA181A32CCC17A72625BA02771F50B50E1E7430E47A1F3F457E6C",
		docs_body, TS), 0);
	/* The docs' own example of the rule: "Name: Something else". */
	struct buf s = BUF_INIT;
	ck_assert_int_eq(pusher_string_to_sign("GET", "/apps/3/channels",
		"Name=Something+else&auth_key=foo", &s, err, sizeof err), 0);
	ck_assert_str_eq(s.p, "GET\n/apps/3/channels\nauth_key=foo&name=Something else");
	ck_assert_int_eq(pusher_string_to_sign("GET", "/p", "b=2&a=%20&c", &s, err, sizeof err), 0);
	ck_assert_str_eq(s.p, "GET\n/p\na= &b=2&c=");
	ck_assert_int_eq(pusher_string_to_sign("GET", "/p", NULL, &s, err, sizeof err), 0);
	ck_assert_str_eq(s.p, "GET\n/p\n");
	/* Sorted by bytes: "auth_key" < "auth_keys" < "auth_keyz". */
	ck_assert_int_eq(pusher_string_to_sign("GET", "/p", "auth_keyz=3&auth_keys=2&auth_key=1",
					       &s, err, sizeof err), 0);
	ck_assert_str_eq(s.p, "GET\n/p\nauth_key=1&auth_keys=2&auth_keyz=3");
	buf_free(&s);

	/* Extra parameters take part, as signed. */
	char *q = sign("GET", "/apps/3/channels", "filter_by_prefix=presence-&info=user_count",
		       NULL, TS);
	ck_assert_int_eq(verify("GET", "/apps/3/channels", q, NULL, TS), 0);
	free(q);
}
END_TEST

/* Replaces the first occurrence of from in q by to. */
static char *replace(const char *q, const char *from, const char *to)
{
	const char *at = strstr(q, from);
	ck_assert_ptr_nonnull(at);
	struct buf b = BUF_INIT;
	buf_add(&b, q, (size_t)(at - q));
	buf_adds(&b, to);
	buf_adds(&b, at + strlen(from));
	return b.p;
}

START_TEST(refusals_401)
{
	const char *path = "/apps/3/events";
	char *q;
	/* A wrong secret. */
	q = sign_with("not the secret", "POST", path, NULL, docs_body, TS);
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	ck_assert_ptr_nonnull(strstr(err, "invalid signature"));
	/* The string to sign is shown, JSON-quoted, for the library author. */
	ck_assert_ptr_nonnull(strstr(err, "\"POST\\n/apps/3/events\\nauth_key="));
	free(q);
	/* The signature of another method, path or query. */
	q = sign("GET", path, NULL, docs_body, TS);
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	free(q);
	q = sign("POST", "/apps/3/batch_events", NULL, docs_body, TS);
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	free(q);
	q = sign("GET", "/apps/3/channels", "info=user_count&filter_by_prefix=presence-", NULL, TS);
	char *t = replace(q, "presence-", "presence-a");
	ck_assert_int_eq(verify("GET", "/apps/3/channels", t, NULL, TS), 401);
	free(t);
	t = replace(q, "&info=user_count", "");
	ck_assert_int_eq(verify("GET", "/apps/3/channels", t, NULL, TS), 401);
	free(t);
	free(q);
	/* A signature with more after it, or cut short. */
	q = replace(docs_query, "3f457e6c", "3f457e6c0");
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	free(q);
	q = replace(docs_query, "3f457e6c", "3f457e6");
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	free(q);

	/* A changed body: the signature still holds, body_md5 does not. */
	char *body = replace(docs_body, "data", "dat\\u0061");
	ck_assert_int_eq(verify("POST", path, docs_query, body, TS), 401);
	ck_assert_ptr_nonnull(strstr(err, "body_md5"));
	free(body);
	/* A body with no body_md5; body_md5 of nothing for no body. */
	q = sign("POST", path, NULL, NULL, TS);
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	ck_assert_ptr_nonnull(strstr(err, "body_md5 is missing"));
	ck_assert_int_eq(verify("POST", path, q, NULL, TS), 0);
	free(q);
	q = sign("POST", path, NULL, "", TS);	/* body_md5 of "", d41d8cd9... */
	ck_assert_ptr_nonnull(strstr(q, "body_md5=d41d8cd98f00b204e9800998ecf8427e"));
	ck_assert_int_eq(verify("POST", path, q, "", TS), 0);
	ck_assert_int_eq(verify("POST", path, q, "x", TS), 401);
	free(q);

	/* Another key. */
	q = replace(docs_query, "auth_key=278d425bdf160c739803", "auth_key=278d425bdf160c739804");
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	ck_assert_ptr_nonnull(strstr(err, "auth_key"));
	free(q);
	q = replace(docs_query, "auth_key=278d425bdf160c739803", "auth_key=278d425bdf160c7398031");
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	free(q);
	/* Another version. */
	q = replace(docs_query, "auth_version=1.0", "auth_version=1.1");
	ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
	ck_assert_ptr_nonnull(strstr(err, "auth_version"));
	free(q);

	/* 600 s either side is in; 601 is out. */
	ck_assert_int_eq(verify("POST", path, docs_query, docs_body, TS + 600), 0);
	ck_assert_int_eq(verify("POST", path, docs_query, docs_body, TS - 600), 0);
	ck_assert_int_eq(verify("POST", path, docs_query, docs_body, TS + 601), 401);
	ck_assert_ptr_nonnull(strstr(err, "timestamp expired"));
	ck_assert_int_eq(verify("POST", path, docs_query, docs_body, TS - 601), 401);
	/* Timestamps that are not Unix seconds, signed as they stand. */
	static const char *const bad_ts[] = {
		"", "-1353088179", "%2B1353088179", "1353088179.0", "0x50a6", "+1353088179",
		"99999999999999999999999", "9223372036854775807", "01353088179x",
	};
	for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
		struct buf raw = BUF_INIT;
		buf_printf(&raw, "auth_key=%s&auth_timestamp=%s&auth_version=1.0", KEY, bad_ts[i]);
		q = sign_raw(SECRET, "GET", "/apps/3/channels", raw.p);
		ck_assert_msg(verify("GET", "/apps/3/channels", q, NULL, TS) == 401, "took %s",
			      bad_ts[i]);
		ck_assert_ptr_nonnull(strstr(err, "timestamp"));
		free(q);
		buf_free(&raw);
	}
	/* A leading zero is still the same second. */
	q = sign_raw(SECRET, "GET", "/apps/3/channels",
		     "auth_key=" KEY "&auth_timestamp=01353088179&auth_version=1.0");
	ck_assert_int_eq(verify("GET", "/apps/3/channels", q, NULL, TS), 0);
	free(q);

	/* Each auth parameter missing. */
	static const char *const param[] = {
		"auth_key=278d425bdf160c739803&", "auth_timestamp=1353088179&",
		"auth_version=1.0&",
		"&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
	};
	for (size_t i = 0; i < sizeof param / sizeof param[0]; i++) {
		q = replace(docs_query, param[i], "");
		ck_assert_int_eq(verify("POST", path, q, docs_body, TS), 401);
		ck_assert_ptr_nonnull(strstr(err, "missing"));
		free(q);
	}
	ck_assert_int_eq(verify("POST", path, NULL, docs_body, TS), 401);
	ck_assert_int_eq(verify("GET", "/apps/3/channels", "", NULL, TS), 401);
}
END_TEST

START_TEST(refusals_400)
{
	static const char *const bad[] = {
		"auth_key=%zz", "auth_key=%4", "auth_key=%", "a%=1",
		"auth_key=a&auth_key=a", "auth_key=a&AUTH_KEY=a", "=x", "=",
		"auth_key=%ff", "auth_key=%c3", "auth_key=%00", "a%00b=1", "k=\xff",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct buf q = BUF_INIT;
		buf_printf(&q, "%s&%s", docs_query, bad[i]);
		ck_assert_msg(verify("POST", "/apps/3/events", q.p, docs_body, TS) == 400,
			      "took %s", bad[i]);
		buf_free(&q);
	}
	/* Valid UTF-8 encoded is fine (and then fails only the signature). */
	struct buf q = BUF_INIT;
	buf_printf(&q, "%s&k=%%c3%%a9", docs_query);
	ck_assert_int_eq(verify("POST", "/apps/3/events", q.p, docs_body, TS), 401);
	/* At most PUSHER_PARAMS_MAX parameters. */
	buf_reset(&q);
	buf_adds(&q, docs_query);
	for (int i = 5; i < PUSHER_PARAMS_MAX; i++)
		buf_printf(&q, "&p%d=%d", i, i);
	ck_assert_int_eq(verify("POST", "/apps/3/events", q.p, docs_body, TS), 401);
	buf_adds(&q, "&one=more");
	ck_assert_int_eq(verify("POST", "/apps/3/events", q.p, docs_body, TS), 400);
	ck_assert_ptr_nonnull(strstr(err, "query parameters"));
	/* A huge value is only a wrong one. */
	buf_reset(&q);
	buf_adds(&q, docs_query);
	buf_adds(&q, "&huge=");
	for (int i = 0; i < 100000; i++)
		buf_adds(&q, "%41");
	ck_assert_int_eq(verify("POST", "/apps/3/events", q.p, docs_body, TS), 401);
	buf_free(&q);
}
END_TEST

static int route(const char *method, const char *path, struct pusher_route *r)
{
	return pusher_route("3", method, path, r, err, sizeof err);
}

START_TEST(routes)
{
	struct pusher_route r;
	ck_assert_int_eq(route("POST", "/apps/3/events", &r), 0);
	ck_assert_int_eq(r.ep, PUSHER_EVENTS);
	ck_assert_str_eq(r.channel, "");
	ck_assert_int_eq(route("POST", "/apps/3/batch_events", &r), 0);
	ck_assert_int_eq(r.ep, PUSHER_BATCH_EVENTS);
	ck_assert_int_eq(route("GET", "/apps/3/channels", &r), 0);
	ck_assert_int_eq(r.ep, PUSHER_CHANNELS);
	ck_assert_int_eq(route("GET", "/apps/3/channels/presence-x", &r), 0);
	ck_assert_int_eq(r.ep, PUSHER_CHANNEL);
	ck_assert_str_eq(r.channel, "presence-x");
	ck_assert_int_eq(route("GET", "/apps/3/channels/foo-bar_1234@=,.;", &r), 0);
	ck_assert_str_eq(r.channel, "foo-bar_1234@=,.;");
	ck_assert_int_eq(route("GET", "/apps/3/channels/presence-x/users", &r), 0);
	ck_assert_int_eq(r.ep, PUSHER_USERS);
	ck_assert_str_eq(r.channel, "presence-x");

	static const char *const missing[] = {
		"/apps/4/events", "/apps/33/events", "/apps//events", "/apps/3", "/apps/3/",
		"/apps/3/event", "/apps/3/events/", "/apps/3/Events", "/x/apps/3/events",
		"apps/3/events", "/apps/3/channels/", "/apps/3/channels//users",
		"/apps/3/channels/x/users/", "/apps/3/channels/x/members",
		"/apps/3/channels/x/users/y", "/apps/3/users/1/terminate_connections", "", "/",
	};
	for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
		ck_assert_msg(route("GET", missing[i], &r) == 404, "found %s", missing[i]);

	ck_assert_int_eq(route("GET", "/apps/3/events", &r), 405);
	ck_assert_str_eq(r.allow, "POST");
	ck_assert_int_eq(route("PUT", "/apps/3/batch_events", &r), 405);
	ck_assert_str_eq(r.allow, "POST");
	ck_assert_int_eq(route("POST", "/apps/3/channels", &r), 405);
	ck_assert_str_eq(r.allow, "GET");
	ck_assert_int_eq(route("DELETE", "/apps/3/channels/x", &r), 405);
	ck_assert_int_eq(route("get", "/apps/3/channels/x", &r), 405);

	ck_assert_int_eq(route("GET", "/apps/3/channels/a b", &r), 400);
	ck_assert_int_eq(route("GET", "/apps/3/channels/#server-to-user-1", &r), 400);
	ck_assert_int_eq(route("GET", "/apps/3/channels/caf\xc3\xa9", &r), 400);
	ck_assert_int_eq(route("GET", "/apps/3/channels/private-x/users", &r), 400);
	ck_assert_ptr_nonnull(strstr(err, "presence"));
	char path[300] = "/apps/3/channels/";
	memset(path + 17, 'c', PUSHER_CHANNEL_MAX);
	ck_assert_int_eq(route("GET", path, &r), 0);
	strcat(path, "c");
	ck_assert_int_eq(route("GET", path, &r), 400);
}
END_TEST

START_TEST(channel_and_socket_rules)
{
	ck_assert(pusher_channel_valid("foo-bar_1234@=,.;", 17));
	ck_assert(pusher_channel_valid("private-encrypted-x", 19));
	ck_assert(!pusher_channel_valid("", 0));
	ck_assert(!pusher_channel_valid("a:b", 3));
	ck_assert(!pusher_channel_valid("a/b", 3));
	ck_assert(!pusher_channel_valid("a\0b", 3));
	ck_assert(pusher_socket_id_valid("123.456"));
	ck_assert(pusher_socket_id_valid("0.0"));
	static const char *const bad[] = {
		"", ".", "1.", ".1", "1", "a.1", "1.a", "1.2.3", " 1.2", "1.2 ", "-1.2", "1,2",
		"\xd9\xa1.1",	/* an Arabic-Indic digit is not [0-9] */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!pusher_socket_id_valid(bad[i]), "took %s", bad[i]);
}
END_TEST

static int get(enum pusher_endpoint ep, const char *channel, const char *query,
	       struct pusher_get *g)
{
	struct pusher_route r = { .ep = ep };
	snprintf(r.channel, sizeof r.channel, "%s", channel);
	return pusher_get_parse(&r, query, g, err, sizeof err);
}

START_TEST(get_parameters)
{
	struct pusher_get g;
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "filter_by_prefix=presence-&info=user_count",
			     &g), 0);
	ck_assert_str_eq(g.prefix, "presence-");
	ck_assert_uint_eq(g.info, PUSHER_INFO_USER_COUNT);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "filter_by_prefix=presence-room", &g), 0);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", NULL, &g), 0);
	ck_assert_str_eq(g.prefix, "");
	ck_assert_uint_eq(g.info, 0);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "info=", &g), 0);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "info=user_count", &g), 400);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "info=user_count&filter_by_prefix=private-", &g),
			 400);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "info=subscription_count", &g), 400);
	ck_assert_int_eq(get(PUSHER_CHANNELS, "", "filter_by_prefix=a%20b", &g), 400);

	ck_assert_int_eq(get(PUSHER_CHANNEL, "presence-x", "info=user_count,subscription_count",
			     &g), 0);
	ck_assert_uint_eq(g.info, PUSHER_INFO_USER_COUNT | PUSHER_INFO_SUBSCRIPTION_COUNT);
	ck_assert_int_eq(get(PUSHER_CHANNEL, "x", "info=subscription_count", &g), 0);
	ck_assert_int_eq(get(PUSHER_CHANNEL, "x", "info=user_count", &g), 400);
	ck_assert_int_eq(get(PUSHER_CHANNEL, "x", "info=cache", &g), 400);
	ck_assert_int_eq(get(PUSHER_CHANNEL, "presence-x", "info=user_count,", &g), 400);
	ck_assert_int_eq(get(PUSHER_CHANNEL, "presence-x", "info=user_count&info=user_count",
			     &g), 400);
	ck_assert_int_eq(get(PUSHER_USERS, "presence-x", "info=anything&filter_by_prefix=%20",
			     &g), 0);
	ck_assert_int_eq(get(PUSHER_USERS, "presence-x", "%zz", &g), 400);
}
END_TEST

static int events(const char *body, struct pusher_events *e)
{
	err[0] = '\0';
	return pusher_events_parse(body, strlen(body), PUSHER_DATA_MAX, e, err, sizeof err);
}

static int batch(const char *body, struct pusher_events *e)
{
	err[0] = '\0';
	return pusher_batch_parse(body, strlen(body), PUSHER_DATA_MAX, e, err, sizeof err);
}

START_TEST(events_body)
{
	struct pusher_events e;
	ck_assert_int_eq(events(docs_body, &e), 0);
	ck_assert_int_eq(e.n, 1);
	ck_assert(!e.batch && !e.info);
	ck_assert_str_eq(e.ev[0].name, "foo");
	ck_assert_str_eq(e.ev[0].data, "{\"some\":\"data\"}");
	ck_assert_uint_eq(e.ev[0].len, 15);
	ck_assert_int_eq(e.ev[0].nchannel, 1);
	ck_assert_str_eq(e.ev[0].channel[0], "project-3");
	ck_assert_ptr_null(e.ev[0].socket_id);
	pusher_events_free(&e);

	/* "channel", socket_id, info, escapes, unknown members, whitespace. */
	ck_assert_int_eq(events(" {\"extra\":[1,{\"name\":2}],\"channel\":\"presence-\\u0061\","
				"\"name\":\"App\\\\Events\\\\Sent\",\"data\":\"caf\\u00e9 \\ud83d\\ude00\","
				"\"socket_id\":\"123.456\",\"info\":\"user_count,subscription_count\"}\n",
				&e), 0);
	ck_assert_str_eq(e.ev[0].channel[0], "presence-a");
	ck_assert_str_eq(e.ev[0].name, "App\\Events\\Sent");
	ck_assert_str_eq(e.ev[0].data, "caf\xc3\xa9 \xf0\x9f\x98\x80");
	ck_assert_str_eq(e.ev[0].socket_id, "123.456");
	ck_assert_uint_eq(e.ev[0].info, PUSHER_INFO_USER_COUNT | PUSHER_INFO_SUBSCRIPTION_COUNT);
	ck_assert(e.info);
	pusher_events_free(&e);

	/* Repeated channels count once, in the order first given. */
	ck_assert_int_eq(events("{\"name\":\"e\",\"data\":\"\",\"channels\":[\"b\",\"a\",\"b\"],"
				"\"socket_id\":null,\"info\":null}", &e), 0);
	ck_assert_int_eq(e.ev[0].nchannel, 2);
	ck_assert_str_eq(e.ev[0].channel[0], "b");
	ck_assert_str_eq(e.ev[0].channel[1], "a");
	ck_assert_str_eq(e.ev[0].data, "");
	ck_assert_ptr_null(e.ev[0].socket_id);
	ck_assert(!e.info);
	pusher_events_free(&e);

	/* 100 channels, and 101. */
	struct buf b = BUF_INIT;
	buf_adds(&b, "{\"name\":\"e\",\"data\":\"d\",\"channels\":[");
	for (int i = 0; i < PUSHER_CHANNELS_MAX; i++)
		buf_printf(&b, "%s\"c%d\"", i ? "," : "", i);
	ck_assert_int_eq(events(buf_str(&b), &e), 400);	/* not closed */
	buf_adds(&b, "]}");
	ck_assert_int_eq(events(b.p, &e), 0);
	ck_assert_int_eq(e.ev[0].nchannel, PUSHER_CHANNELS_MAX);
	pusher_events_free(&e);
	b.len -= 2;
	buf_adds(&b, ",\"c100\"]}");
	ck_assert_int_eq(events(b.p, &e), 400);
	ck_assert_ptr_nonnull(strstr(err, "at most 100 channels"));
	ck_assert_ptr_null(e.ev);

	/* A name of 200 characters, two bytes each, and of 201. */
	buf_reset(&b);
	buf_adds(&b, "{\"channel\":\"c\",\"data\":\"d\",\"name\":\"");
	for (int i = 0; i < PUSHER_NAME_MAX; i++)
		buf_adds(&b, "\xc3\xa9");
	buf_adds(&b, "\"}");
	ck_assert_int_eq(events(b.p, &e), 0);
	pusher_events_free(&e);
	b.len -= 2;
	buf_adds(&b, "x\"}");
	ck_assert_int_eq(events(b.p, &e), 400);
	ck_assert_ptr_nonnull(strstr(err, "name"));

	/* Data of PUSHER_DATA_MAX bytes, and one more: 413. */
	buf_reset(&b);
	buf_adds(&b, "{\"channel\":\"c\",\"name\":\"n\",\"data\":\"");
	for (int i = 0; i < PUSHER_DATA_MAX; i++)
		buf_addc(&b, 'd');
	buf_adds(&b, "\"}");
	ck_assert_int_eq(events(b.p, &e), 0);
	pusher_events_free(&e);
	b.len -= 2;
	buf_adds(&b, "d\"}");
	ck_assert_int_eq(events(b.p, &e), 413);
	/* Escapes count as what they stand for: 10240 bytes written as \u0064. */
	buf_reset(&b);
	buf_adds(&b, "{\"channel\":\"c\",\"name\":\"n\",\"data\":\"");
	for (int i = 0; i < PUSHER_DATA_MAX; i++)
		buf_adds(&b, "\\u0064");
	buf_adds(&b, "\"}");
	ck_assert_int_eq(events(b.p, &e), 0);
	ck_assert_uint_eq(e.ev[0].len, PUSHER_DATA_MAX);
	pusher_events_free(&e);
	/* A megabyte of data, and a megabyte of name. */
	buf_reset(&b);
	buf_adds(&b, "{\"channel\":\"c\",\"name\":\"n\",\"data\":\"");
	for (int i = 0; i < 1 << 20; i++)
		buf_addc(&b, 'd');
	buf_adds(&b, "\"}");
	ck_assert_int_eq(events(b.p, &e), 413);
	strstr(b.p, "\"name\"")[1] = 'x';	/* no name now */
	ck_assert_int_eq(events(b.p, &e), 400);
	buf_reset(&b);
	buf_adds(&b, "{\"channel\":\"c\",\"data\":\"d\",\"name\":\"");
	for (int i = 0; i < 1 << 20; i++)
		buf_addc(&b, 'n');
	buf_adds(&b, "\"}");
	ck_assert_int_eq(events(b.p, &e), 400);
	buf_free(&b);
	/* The caller's own cap. */
	ck_assert_int_eq(pusher_events_parse(docs_body, strlen(docs_body), 14, &e, err,
					     sizeof err), 413);
	ck_assert_int_eq(pusher_events_parse(docs_body, strlen(docs_body), 15, &e, err,
					     sizeof err), 0);
	pusher_events_free(&e);
}
END_TEST

START_TEST(events_refused)
{
	static const char *const bad[] = {
		/* not UTF-8 JSON, or cut short */
		"", " ", "{", "{\"name\":\"e\"", "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\"",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\"}}", "null", "[]", "\"x\"",
		"{\"name\":\"\xff\",\"data\":\"d\",\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"\xc3\",\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"\xed\xa0\x80\",\"channel\":\"c\"}",
		/* fields missing, or of the wrong type */
		"{}", "{\"data\":\"d\",\"channel\":\"c\"}", "{\"name\":\"e\",\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"d\"}", "{\"name\":1,\"data\":\"d\",\"channel\":\"c\"}",
		"{\"name\":\"\",\"data\":\"d\",\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":{\"a\":1},\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":null,\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":[\"c\"]}",
		"{\"name\":\"e\",\"data\":\"d\",\"channels\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channels\":[]}",
		"{\"name\":\"e\",\"data\":\"d\",\"channels\":[1]}",
		"{\"name\":\"e\",\"data\":\"d\",\"channels\":[null]}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"channels\":[\"c\"]}",
		/* channel names */
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"a b\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"#server-to-user-1\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channels\":[\"ok\",\"caf\\u00e9\"]}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"a\\u0000\"}",
		/* socket_id and info */
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":\"1.2.3\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":123.456}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":\"\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":\"users\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":[\"user_count\"]}",
		/* escapes that are not text */
		"{\"name\":\"e\",\"data\":\"a\\u0000b\",\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"\\ud800\",\"channel\":\"c\"}",
		"{\"name\":\"\\udc00x\",\"data\":\"d\",\"channel\":\"c\"}",
		/* a member given twice: which one was meant? */
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"name\":\"f\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"data\":\"d\",\"channel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"\\u0063hannel\":\"c\"}",
		"{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":null,\"socket_id\":\"1.1\"}",
	};
	struct pusher_events e;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(events(bad[i], &e) == 400, "took %s", bad[i]);
		ck_assert_msg(err[0] != '\0', "no reason for %s", bad[i]);
		ck_assert_ptr_null(e.ev);
		ck_assert_int_eq(e.n, 0);
	}
	/* A NUL byte in the body. */
	static const char nul[] = "{\"name\":\"e\",\"data\":\"d\0\",\"channel\":\"c\"}";
	ck_assert_int_eq(pusher_events_parse(nul, sizeof nul - 1, PUSHER_DATA_MAX, &e, err,
					     sizeof err), 400);
	ck_assert_int_eq(pusher_events_parse(nul, 22, PUSHER_DATA_MAX, &e, err, sizeof err), 400);
	ck_assert_int_eq(events("{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"data\":1}", &e),
			 400);
	ck_assert_ptr_nonnull(strstr(err, "\"data\" is given twice"));
}
END_TEST

START_TEST(batch_body)
{
	struct pusher_events e;
	ck_assert_int_eq(batch("{\"batch\":[{\"channel\":\"a\",\"name\":\"e1\",\"data\":\"1\"},"
			       "{\"channel\":\"presence-b\",\"name\":\"e2\",\"data\":\"{\\\"x\\\":2}\","
			       "\"info\":\"user_count\",\"socket_id\":\"1.2\"}]}", &e), 0);
	ck_assert(e.batch && e.info);
	ck_assert_int_eq(e.n, 2);
	ck_assert_str_eq(e.ev[0].channel[0], "a");
	ck_assert_str_eq(e.ev[0].name, "e1");
	ck_assert_str_eq(e.ev[0].data, "1");
	ck_assert_uint_eq(e.ev[0].info, 0);
	ck_assert_str_eq(e.ev[1].channel[0], "presence-b");
	ck_assert_str_eq(e.ev[1].data, "{\"x\":2}");
	ck_assert_str_eq(e.ev[1].socket_id, "1.2");
	ck_assert_uint_eq(e.ev[1].info, PUSHER_INFO_USER_COUNT);
	pusher_events_free(&e);

	struct buf b = BUF_INIT;
	buf_adds(&b, "{\"batch\":[");
	for (int i = 0; i < PUSHER_BATCH_MAX; i++)
		buf_printf(&b, "%s{\"channel\":\"c%d\",\"name\":\"n\",\"data\":\"%d\"}", i ? "," : "",
			   i, i);
	buf_adds(&b, "]}");
	ck_assert_int_eq(batch(b.p, &e), 0);
	ck_assert_int_eq(e.n, PUSHER_BATCH_MAX);
	ck_assert_str_eq(e.ev[9].channel[0], "c9");
	pusher_events_free(&e);
	b.len -= 2;
	buf_adds(&b, ",{\"channel\":\"c\",\"name\":\"n\",\"data\":\"d\"}]}");
	ck_assert_int_eq(batch(b.p, &e), 400);
	ck_assert_ptr_nonnull(strstr(err, "at most 10 events"));
	buf_free(&b);

	static const char *const bad[] = {
		"{\"batch\":[]}", "{}", "[]", "{\"batch\":{}}", "{\"batch\":null}",
		"{\"batch\":[{\"channel\":\"c\",\"name\":\"n\",\"data\":\"d\"}]",
		"{\"batch\":[],\"batch\":[]}",
		"{\"batch\":[{\"channel\":\"c\",\"name\":\"n\",\"data\":\"d\"},1]}",
		"{\"batch\":[{\"channels\":[\"c\"],\"name\":\"n\",\"data\":\"d\"}]}",
		"{\"batch\":[{\"channel\":\"c\",\"channels\":[\"c\"],\"name\":\"n\",\"data\":\"d\"}]}",
		"{\"batch\":[{\"name\":\"n\",\"data\":\"d\"}]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(batch(bad[i], &e) == 400, "took %s", bad[i]);
		ck_assert_ptr_null(e.ev);
	}
	/* The refusal names the event. */
	ck_assert_int_eq(batch("{\"batch\":[{\"channel\":\"c\",\"name\":\"n\",\"data\":\"d\"},"
			       "{\"channel\":\"c\",\"name\":\"n\",\"data\":\"d\",\"socket_id\":\"x\"}]}",
			       &e), 400);
	ck_assert_ptr_nonnull(strstr(err, "batch event 1 (counting from 0)"));
	static const char two[] = "{\"batch\":[{\"channel\":\"c\",\"name\":\"n\",\"data\":\"dd\"}]}";
	ck_assert_int_eq(pusher_batch_parse(two, strlen(two), 1, &e, err, sizeof err), 413);
	ck_assert_ptr_nonnull(strstr(err, "batch event 0"));
}
END_TEST

/* auth-signatures.md's worked examples, and ones from pusher 5.3.4's
 * authorizeChannel (npm). */
START_TEST(channel_auth)
{
	const char *priv = KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", NULL, priv));
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", "", priv));
	/* The docs print user_info {"name": "Mr. Channels"} but the published
	 * signature is of "Mr. Pusher", the docs' text before a rename (it is
	 * pusher-http-haskell's test vector too). */
	const char *docs_cd = "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Pusher\"}}";
	const char *docs_pres =
		KEY ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c";
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "presence-foobar", docs_cd,
					    docs_pres));
	/* pusher-http-node on the docs' text. */
	const char *node_cd = "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}";
	const char *node_pres =
		KEY ":31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "presence-foobar", node_cd,
					    node_pres));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "presence-foobar", node_cd,
					     docs_pres));
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "presence-foobar",
		"{\"user_id\":\"u\xc3\xa9\\\"1\"}",
		KEY ":abeb35b166753108a9171ed901d0af55c410ed223b8ac28fa8d6407c2cf48625"));

	/* Upper-case hex is the same signature; the key is not case-free. */
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", NULL,
		KEY ":58DF8B0C36D6982B82C3ECF6B4662E34FE8C25BBA48F5369F135BF843651C3A4"));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", NULL,
		"278D425BDF160C739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"));

	/* Any one thing changed. */
	ck_assert(!pusher_channel_auth_valid(KEY, "wrong secret", "1234.1234", "private-foobar",
					     NULL, priv));
	ck_assert(!pusher_channel_auth_valid("other", SECRET, "1234.1234", "private-foobar",
					     NULL, priv));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1235", "private-foobar", NULL, priv));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobaz", NULL, priv));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", "{}", priv));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "presence-foobar", NULL,
					     docs_pres));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "presence-foobar",
		"{\"user_id\":11,\"user_info\":{\"name\":\"Mr. Pusher\"}}", docs_pres));
	/* "1.1:a" + "b:c" and "1.1" + "a:b:c" would sign the same string. */
	struct buf sig = BUF_INIT;
	char mac[65];
	pusher_hmac_hex(SECRET, "1.1:private-a:b", 15, mac);
	buf_printf(&sig, "%s:%s", KEY, mac);
	ck_assert(pusher_channel_auth_valid(KEY, SECRET, "1.1", "private-a", "b", sig.p));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1.1", "private-a:b", NULL, sig.p));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1.1:private-a", "b", NULL, sig.p));
	buf_free(&sig);
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "", "private-foobar", NULL, priv));
	ck_assert(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "", NULL, priv));

	static const char *const bad[] = {
		"", ":", KEY, KEY ":",
		"58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
		KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a",
		KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a44",
		KEY "::58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
		KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4 ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar",
							 NULL, bad[i]), "took %s", bad[i]);
}
END_TEST

static int member(const char *cd, struct pusher_member *m)
{
	err[0] = '\0';
	return pusher_member_parse(cd, strlen(cd), m, err, sizeof err);
}

START_TEST(presence_member)
{
	struct pusher_member m;
	ck_assert_int_eq(member("{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}", &m), 0);
	ck_assert_str_eq(m.id, "10");
	ck_assert_str_eq(m.info, "{\"name\":\"Mr. Channels\"}");
	pusher_member_free(&m);
	ck_assert_int_eq(member(" { \"user_info\" : [1, 2,3] , \"user_id\" : \"u\\u00e9\\\"1\" } ",
				&m), 0);
	ck_assert_str_eq(m.id, "u\xc3\xa9\"1");
	ck_assert_str_eq(m.info, "[1, 2,3]");
	pusher_member_free(&m);
	ck_assert_int_eq(member("{\"user_id\":\"7\"}", &m), 0);
	ck_assert_str_eq(m.id, "7");
	ck_assert_ptr_null(m.info);
	pusher_member_free(&m);
	ck_assert_int_eq(member("{\"user_id\":-1.5e3,\"user_info\":null,\"other\":{}}", &m), 0);
	ck_assert_str_eq(m.id, "-1.5e3");
	ck_assert_ptr_null(m.info);
	pusher_member_free(&m);

	struct buf b = BUF_INIT;
	buf_adds(&b, "{\"user_id\":\"");
	for (int i = 0; i < PUSHER_USER_ID_MAX; i++)
		buf_adds(&b, "\xc3\xa9");
	buf_adds(&b, "\"}");
	ck_assert_int_eq(member(b.p, &m), 0);
	pusher_member_free(&m);
	b.len -= 2;
	buf_adds(&b, "x\"}");
	ck_assert_int_eq(member(b.p, &m), -1);
	ck_assert_ptr_null(m.id);
	/* channel_data of 1 KB, and more. */
	buf_reset(&b);
	buf_adds(&b, "{\"user_id\":1,\"user_info\":\"");
	while (b.len < PUSHER_CHANNEL_DATA_MAX - 2)
		buf_addc(&b, 'i');
	buf_adds(&b, "\"}");
	ck_assert_int_eq(member(b.p, &m), 0);
	pusher_member_free(&m);
	b.len -= 2;
	buf_adds(&b, "i\"}");
	ck_assert_int_eq(member(b.p, &m), -1);
	ck_assert_ptr_nonnull(strstr(err, "1024"));
	buf_free(&b);

	static const char *const bad[] = {
		"", "{", "{\"user_id\":1", "{\"user_id\":1}}", "[]", "1", "\"x\"", "null",
		"{}", "{\"user_info\":{}}", "{\"user_id\":null}", "{\"user_id\":true}",
		"{\"user_id\":{}}", "{\"user_id\":[1]}", "{\"user_id\":\"\"}",
		"{\"user_id\":\"a\\u0000\"}", "{\"user_id\":\"\\ud800\"}",
		"{\"user_id\":\"\xff\"}", "{\"user_id\":1,\"user_id\":2}",
		"{\"user_id\":1,\"user_info\":{},\"user_info\":{}}",
		"{\"user_id\":1,\"user_\\u0069d\":2}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(member(bad[i], &m) == -1, "took %s", bad[i]);
		ck_assert_msg(err[0] != '\0', "no reason for %s", bad[i]);
		ck_assert_ptr_null(m.id);
		ck_assert_ptr_null(m.info);
	}
}
END_TEST

START_TEST(answers)
{
	struct buf b = BUF_INIT;
	struct pusher_events e;
	const struct pusher_channel_state st[] = {
		{ "presence-foobar", 42, 51 },
		{ "another", 0, 13 },
		{ "empty", 0, 0 },
		{ "presence-another", 123, 140 },
		{ "private-x", 0, 2 },
	};

	ck_assert_int_eq(events(docs_body, &e), 0);
	pusher_render_events(&b, &e, st, 5);
	ck_assert_str_eq(b.p, "{}");
	pusher_events_free(&e);

	/* The shape of rest-api.md's example: user_count only where it applies. */
	ck_assert_int_eq(events("{\"name\":\"e\",\"data\":\"d\","
				"\"info\":\"subscription_count,user_count\","
				"\"channels\":[\"presence-foobar\",\"another\",\"nobody\"]}", &e), 0);
	buf_reset(&b);
	pusher_render_events(&b, &e, st, 5);
	ck_assert_str_eq(b.p, "{\"channels\":{"
			 "\"presence-foobar\":{\"user_count\":42,\"subscription_count\":51},"
			 "\"another\":{\"subscription_count\":13},"
			 "\"nobody\":{\"subscription_count\":0}}}");
	pusher_events_free(&e);
	ck_assert_int_eq(events("{\"name\":\"e\",\"data\":\"d\",\"info\":\"user_count\","
				"\"channels\":[\"presence-foobar\",\"another\"]}", &e), 0);
	buf_reset(&b);
	pusher_render_events(&b, &e, st, 5);
	ck_assert_str_eq(b.p, "{\"channels\":{\"presence-foobar\":{\"user_count\":42},"
			 "\"another\":{}}}");
	pusher_events_free(&e);

	/* A batch: {} without info, else one entry per event. */
	ck_assert_int_eq(batch("{\"batch\":[{\"channel\":\"a\",\"name\":\"n\",\"data\":\"d\"}]}", &e),
			 0);
	buf_reset(&b);
	pusher_render_events(&b, &e, st, 5);
	ck_assert_str_eq(b.p, "{}");
	pusher_events_free(&e);
	ck_assert_int_eq(batch("{\"batch\":["
			       "{\"channel\":\"presence-foobar\",\"name\":\"n\",\"data\":\"d\","
			       "\"info\":\"user_count,subscription_count\"},"
			       "{\"channel\":\"another\",\"name\":\"n\",\"data\":\"d\"},"
			       "{\"channel\":\"another\",\"name\":\"n\",\"data\":\"d\","
			       "\"info\":\"subscription_count\"}]}", &e), 0);
	buf_reset(&b);
	pusher_render_events(&b, &e, st, 5);
	ck_assert_str_eq(b.p, "{\"batch\":[{\"user_count\":42,\"subscription_count\":51},{},"
			 "{\"subscription_count\":13}]}");
	pusher_events_free(&e);

	/* GET channels: the occupied ones, filtered. */
	struct pusher_get g = { 0, "" };
	buf_reset(&b);
	pusher_render_channels(&b, &g, st, 5);
	ck_assert_str_eq(b.p, "{\"channels\":{\"presence-foobar\":{},\"another\":{},"
			 "\"presence-another\":{},\"private-x\":{}}}");
	g.info = PUSHER_INFO_USER_COUNT;
	strcpy(g.prefix, "presence-");
	buf_reset(&b);
	pusher_render_channels(&b, &g, st, 5);
	ck_assert_str_eq(b.p, "{\"channels\":{\"presence-foobar\":{\"user_count\":42},"
			 "\"presence-another\":{\"user_count\":123}}}");
	strcpy(g.prefix, "nothing-");
	buf_reset(&b);
	pusher_render_channels(&b, &g, st, 5);
	ck_assert_str_eq(b.p, "{\"channels\":{}}");

	/* GET channel. */
	struct pusher_route r = { .ep = PUSHER_CHANNEL, .channel = "presence-foobar" };
	g.info = 0;
	buf_reset(&b);
	pusher_render_channel(&b, &r, &g, &st[0]);
	ck_assert_str_eq(b.p, "{\"occupied\":true}");
	g.info = PUSHER_INFO_USER_COUNT | PUSHER_INFO_SUBSCRIPTION_COUNT;
	buf_reset(&b);
	pusher_render_channel(&b, &r, &g, &st[0]);
	ck_assert_str_eq(b.p, "{\"occupied\":true,\"user_count\":42,\"subscription_count\":51}");
	buf_reset(&b);
	pusher_render_channel(&b, &r, &g, NULL);
	ck_assert_str_eq(b.p, "{\"occupied\":false,\"user_count\":0,\"subscription_count\":0}");
	strcpy(r.channel, "empty");
	g.info = PUSHER_INFO_SUBSCRIPTION_COUNT;
	buf_reset(&b);
	pusher_render_channel(&b, &r, &g, &st[2]);
	ck_assert_str_eq(b.p, "{\"occupied\":false,\"subscription_count\":0}");

	/* GET users: ids are any text, escaped. */
	const char *ids[] = { "1", "u\xc3\xa9\"\\\n" };
	buf_reset(&b);
	pusher_render_users(&b, ids, 2);
	ck_assert_str_eq(b.p, "{\"users\":[{\"id\":\"1\"},{\"id\":\"u\xc3\xa9\\\"\\\\\\u000a\"}]}");
	buf_reset(&b);
	pusher_render_users(&b, NULL, 0);
	ck_assert_str_eq(b.p, "{\"users\":[]}");
	buf_free(&b);
}
END_TEST

Suite *pusher_suite(void)
{
	Suite *s = suite_create("pusher");
	TCase *t = tcase_create("pusher");
	tcase_add_test(t, docs_worked_example);
	tcase_add_test(t, node_library_vectors);
	tcase_add_test(t, php_library_wire_encoding);
	tcase_add_test(t, sorted_lowercased_decoded);
	tcase_add_test(t, refusals_401);
	tcase_add_test(t, refusals_400);
	tcase_add_test(t, routes);
	tcase_add_test(t, channel_and_socket_rules);
	tcase_add_test(t, get_parameters);
	tcase_add_test(t, events_body);
	tcase_add_test(t, events_refused);
	tcase_add_test(t, batch_body);
	tcase_add_test(t, channel_auth);
	tcase_add_test(t, presence_member);
	tcase_add_test(t, answers);
	suite_add_tcase(s, t);
	return s;
}
