/* Unit tests: JSON validation and batch parsing (pure), checked against
 * SQLite's own JSON functions, which the log used before and renders with. */
#include "config.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "suites.h"

static bool valid(const char *s)
{
	return json_valid(s, strlen(s));
}

/* SQLite's json_valid() of p[0..n), which must hold no NUL byte. */
static bool sqlite_valid(sqlite3 *db, const char *p, size_t n)
{
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT json_valid(?1)", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, p, (int)n, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	bool ok = sqlite3_column_int(s, 0) == 1;
	sqlite3_finalize(s);
	return ok;
}

static const char *const good[] = {
	"0", "-0", "1", "-1", "10", "1.5", "-0.5", "0e0", "1E+5", "1e-5", "2.5E10",
	"123456789012345678901234567890", "true", "false", "null",
	"\"\"", "\"a\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u00E9\"",
	"\"\\ud83d\\ude00\"", "\"\\ud800\"", "\"\\udc00x\"",	/* lone surrogates: valid JSON */
	"\"\x7f\"", "\"\xc3\xa9\"", "\"\xff\"",	/* bytes are not checked for UTF-8 */
	"[]", "{}", "[1,2,3]", "{\"a\":1,\"b\":[true,{}]}", "{\"a\":1,\"a\":2}",
	" 1", "1 ", " \t\r\n[ 1 , { \"a\" : null } ]\n", "[[[[]]]]", "{\"\":\"\"}",
};

static const char *const bad[] = {
	"", " ", "\t\r\n",
	"01", "-01", "00", "+1", ".5", "1.", "-", "-.5", "1.e5", "1e", "1e+", "1E-",
	"0x10", "1.5.3", "1e5e3", "NaN", "Infinity", "-Infinity", "nul", "tru", "True",
	"nulll", "truex",
	"\"", "\"a", "a\"", "'a'", "\"\\x\"", "\"\\'\"", "\"\\U0041\"", "\"\\u12\"",
	"\"\\u12G4\"", "\"\\\"", "\"\x01\"", "\"\x1f\"", "\"a\tb\"", "\"a\nb\"",
	"[", "]", "[1,]", "[,1]", "[1 2]", "[1,,2]", "{", "{\"a\"}", "{\"a\":}",
	"{\"a\" 1}", "{\"a\":1,}", "{,}", "{1:2}", "{a:1}", "{\"a\":1 \"b\":2}",
	"[1]]", "[1]x", "1 2", "{}{}", "[] []", "\f1", "\v1", "1\f", "\xa0" "1",
	"\xef\xbb\xbf" "1",	/* a byte order mark is not whitespace */
};

START_TEST(validator_vectors)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(valid(good[i]), "refused %s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!valid(bad[i]), "accepted %s", bad[i]);
	/* An object key is a string, whatever SQLite 3.40 says: it takes an
	 * array or object that ends in a string for one. */
	static const char *const container_keys[] = {
		"{[\"a\"]:1}", "{[1,\"a\"]:1}", "{{\"k\":\"a\"}:1}", "[{\"x\":1,[\"a\"]:1}]",
	};
	for (size_t i = 0; i < sizeof container_keys / sizeof container_keys[0]; i++)
		ck_assert_msg(!valid(container_keys[i]), "accepted %s", container_keys[i]);
	/* A NUL byte ends nothing: it is refused wherever it stands (SQLite
	 * would read "[1]" and stop). */
	ck_assert(!json_valid("[1]\0", 4));
	ck_assert(!json_valid("\"a\0b\"", 5));
	ck_assert(!json_valid(" \0", 2));
	/* n bounds the text: what follows is not read. */
	ck_assert(json_valid("[1]]", 3));
	ck_assert(!json_valid("[1]", 2));
	ck_assert(!json_valid("\"\\u004", 6));
	ck_assert(!json_valid("tru", 3));
	ck_assert(!json_valid("-", 1));
	ck_assert(json_valid("1.5", 3) && !json_valid("1.5", 2));
}
END_TEST

/* depth nested arrays (or objects {"a": ...}) around a 1. */
static char *nested(int depth, bool objects, size_t *n)
{
	size_t cap = (size_t)depth * 6 + 2;
	char *s = malloc(cap);
	size_t k = 0;
	for (int i = 0; i < depth; i++)
		k += (size_t)snprintf(s + k, cap - k, "%s", objects ? "{\"a\":" : "[");
	s[k++] = '1';
	for (int i = 0; i < depth; i++)
		s[k++] = objects ? '}' : ']';
	s[k] = '\0';
	*n = k;
	return s;
}

START_TEST(depth_limit)
{
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	static const struct {
		int depth;
		bool ok;
	} cases[] = { { 1, true }, { 1999, true }, { JSON_MAX_DEPTH, true },
		      { JSON_MAX_DEPTH + 1, false }, { 100000, false } };
	for (int objects = 0; objects < 2; objects++) {
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			size_t n;
			char *s = nested(cases[i].depth, objects, &n);
			ck_assert_msg(json_valid(s, n) == cases[i].ok, "depth %d", cases[i].depth);
			if (cases[i].depth <= JSON_MAX_DEPTH + 1)
				ck_assert_msg(sqlite_valid(db, s, n) == cases[i].ok,
					      "SQLite, depth %d", cases[i].depth);
			free(s);
		}
	}
	/* A million open brackets: refused at the limit, not by the stack. */
	size_t n = 1000000;
	char *s = malloc(n);
	memset(s, '[', n);
	ck_assert(!json_valid(s, n));
	free(s);
	sqlite3_close(db);
}
END_TEST

/* Every string of up to three characters from these, and the vectors
 * above: json_valid answers what SQLite's json_valid() answers. */
START_TEST(agrees_with_sqlite)
{
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(sqlite_valid(db, good[i], strlen(good[i])), "SQLite refuses %s",
			      good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!sqlite_valid(db, bad[i], strlen(bad[i])), "SQLite accepts %s",
			      bad[i]);
	/* Every prefix too, from a buffer of just that size: reading past
	 * the end is seen by valgrind (make check-valgrind). */
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		for (size_t n = 0; n < strlen(good[i]); n++) {
			char *s = malloc(n ? n : 1);
			memcpy(s, good[i], n);
			ck_assert_msg(json_valid(s, n) == sqlite_valid(db, s, n), "%.*s", (int)n, s);
			free(s);
		}
	}
	static const char alphabet[] = "[]{}\",:\\ \n-+.0159eEtnu\x1f\x7f\xc3";
	/* Three digits in base na + 1, each a character or (0) none. */
	size_t na = sizeof alphabet - 1, total = (na + 1) * (na + 1) * (na + 1);
	for (size_t code = 0; code < total; code++) {
		char s[4];
		size_t n = 0;
		for (size_t c = code; c > 0; c /= na + 1)
			if (c % (na + 1))
				s[n++] = alphabet[c % (na + 1) - 1];
		ck_assert_msg(json_valid(s, n) == sqlite_valid(db, s, n), "%.*s: SQLite says %d",
			      (int)n, s, sqlite_valid(db, s, n));
	}
	sqlite3_close(db);
}
END_TEST

/* Parses body as a batch of at most 1000; returns the result and leaves err. */
static int parse(const char *body, struct json_batch *out, char *err)
{
	return json_batch_parse(body, strlen(body), 1000, out, err, 256);
}

/* body is refused with JSON_ESHAPE and a message holding says. */
static void refused(const char *body, const char *says)
{
	struct json_batch b;
	char err[256] = "";
	ck_assert_msg(parse(body, &b, err) == JSON_ESHAPE, "%s: %s", body, err);
	ck_assert_msg(strstr(err, says), "%s: %s", body, err);
	ck_assert_int_eq(b.n, 0);
	ck_assert_ptr_null(b.msg);
}

START_TEST(batch_shapes)
{
	struct json_batch b;
	char err[256];
	ck_assert_int_eq(parse("[{\"channel\":\"a\",\"data\":\"x\"},"
			       "{\"channel\":\"b\",\"data\":{\"n\":[1]}},"
			       "{\"channel\":\"c\",\"data\":\"<b>\",\"type\":\"text/html\"}]",
			       &b, err), 0);
	ck_assert_int_eq(b.n, 3);
	ck_assert_str_eq(b.msg[0].channel, "a");
	ck_assert_str_eq(b.msg[0].type, "text/plain");
	ck_assert_str_eq(b.msg[0].data, "x");
	ck_assert_int_eq(b.msg[0].len, 1);
	ck_assert_str_eq(b.msg[1].type, "application/json");
	ck_assert_str_eq(b.msg[1].data, "{\"n\":[1]}");
	ck_assert_str_eq(b.msg[2].type, "text/html");
	ck_assert_str_eq(b.msg[2].data, "<b>");
	json_batch_free(&b);

	/* Each refusal names its element, counting from 0. */
	static const struct {
		const char *body, *says;
	} bad_batch[] = {
		{ "[\"x\"]", "element 0 (counting from 0) is not an object" },
		{ "[\"\"]", "element 0 (counting from 0) is not an object" },
		{ "[[{\"channel\":\"a\",\"data\":1}]]", "element 0 (counting from 0) is not an object" },
		{ "[1]", "element 0 (counting from 0) is not an object" },
		{ "[null]", "element 0 (counting from 0) is not an object" },
		{ "[{\"channel\":\"a\",\"data\":1},{\"data\":1}]",
		  "element 1 (counting from 0) needs a \"channel\" that is a string" },
		{ "[{\"channel\":5,\"data\":1}]", "element 0 (counting from 0) needs a \"channel\"" },
		{ "[{\"channel\":null,\"data\":1}]", "element 0 (counting from 0) needs a \"channel\"" },
		{ "[{\"channel\":\"a\",\"data\":1,\"type\":[]}]",
		  "element 0 (counting from 0) has a \"type\" that is not a string" },
		{ "[{\"channel\":\"a\",\"data\":1,\"type\":null}]",
		  "element 0 (counting from 0) has a \"type\" that is not a string" },
		{ "[{\"channel\":\"a\"}]", "element 0 (counting from 0) needs \"data\"" },
		{ "[{\"channel\":\"a\",\"Data\":1}]", "element 0 (counting from 0) needs \"data\"" },
		{ "[{\"channel\":\"a\",\"data\":5,\"type\":\"text/plain\"}]",
		  "element 0 (counting from 0): data of type text/plain must be a string" },
		{ "[{\"channel\":\"a\",\"data\":{},\"type\":\"Application/JSON\"}]",
		  "element 0 (counting from 0): data of type Application/JSON must be a string" },
		{ "[]", "non-empty JSON array" },
		{ " [ ] ", "non-empty JSON array" },
		{ "{\"channel\":\"a\",\"data\":1}", "non-empty JSON array" },
		{ "\"[]\"", "non-empty JSON array" },
	};
	for (size_t i = 0; i < sizeof bad_batch / sizeof bad_batch[0]; i++)
		refused(bad_batch[i].body, bad_batch[i].says);

	static const char *const not_json[] = {
		"[{\"channel\":\"a\",", "", "[{\"channel\":\"a\",\"data\":01}]",
		"[{\"channel\":\"a\",\"data\":\"x\"}] x",
	};
	for (size_t i = 0; i < sizeof not_json / sizeof not_json[0]; i++) {
		ck_assert_int_eq(parse(not_json[i], &b, err), JSON_EINVAL);
		ck_assert_str_eq(err, "the batch is not valid JSON");
		ck_assert_int_eq(b.n, 0);
	}
}
END_TEST

/* A string element is refused as it stands, even when its text is a
 * message in JSON: it is never parsed again. */
START_TEST(batch_non_objects)
{
	refused("[{\"channel\":\"a\",\"data\":1},\"{\\\"channel\\\":\\\"a\\\",\\\"data\\\":1}\"]",
		"element 1 (counting from 0) is not an object");
	refused("[\"[{\\\"channel\\\":\\\"a\\\",\\\"data\\\":1}]\"]",
		"element 0 (counting from 0) is not an object");
	refused("[true]", "element 0 (counting from 0) is not an object");
	refused("[{\"channel\":\"a\",\"data\":1}, -1]",
		"element 1 (counting from 0) is not an object");
}
END_TEST

START_TEST(batch_string_escapes)
{
	struct json_batch b;
	char err[256];
	ck_assert_int_eq(parse("[{\"channel\":\"a\\u002db\",\"type\":\"text\\/plain\","
			       "\"data\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\"}]", &b, err), 0);
	ck_assert_str_eq(b.msg[0].channel, "a-b");
	ck_assert_str_eq(b.msg[0].type, "text/plain");
	ck_assert_str_eq(b.msg[0].data, "q\"b\\s/n\nt\tr\rb\bf\f");
	ck_assert_int_eq(b.msg[0].len, strlen("q\"b\\s/n\nt\tr\rb\bf\f"));
	json_batch_free(&b);

	/* One, two, three and four bytes of UTF-8, escaped and raw. */
	ck_assert_int_eq(parse("[{\"channel\":\"a\",\"data\":\"\\u0041\\u00e9\\u20AC"
			       "\\ud83d\\ude00|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]", &b, err), 0);
	ck_assert_str_eq(b.msg[0].data, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|"
			 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	json_batch_free(&b);
	/* The last pair of all: U+10FFFF. */
	ck_assert_int_eq(parse("[{\"channel\":\"a\",\"data\":\"\\uDBFF\\uDFFF\"}]", &b, err), 0);
	ck_assert_str_eq(b.msg[0].data, "\xf4\x8f\xbf\xbf");
	json_batch_free(&b);
}
END_TEST

/* SQLite stored an unpaired surrogate escape as three bytes that are not
 * UTF-8 (ED A0 80); here it is refused, naming the element and field. */
START_TEST(batch_lone_surrogates)
{
	static const struct {
		const char *body, *says;
	} cases[] = {
		{ "[{\"channel\":\"a\",\"data\":\"\\ud800\"}]",
		  "element 0 (counting from 0) has an unpaired surrogate \\uD800 in its \"data\"" },
		{ "[{\"channel\":\"a\",\"data\":\"x\"},{\"channel\":\"a\",\"data\":\"\\udc00x\"}]",
		  "element 1 (counting from 0) has an unpaired surrogate \\uDC00 in its \"data\"" },
		{ "[{\"channel\":\"a\",\"data\":\"\\ud800\\ud800\"}]", "surrogate \\uD800" },
		{ "[{\"channel\":\"a\",\"data\":\"\\ud800x\\udc00\"}]", "surrogate \\uD800" },
		{ "[{\"channel\":\"a\",\"data\":\"\\ude00\\ud83d\"}]", "surrogate \\uDE00" },
		{ "[{\"channel\":\"a\",\"data\":\"x\\uDBFF\"}]", "surrogate \\uDBFF" },
		{ "[{\"channel\":\"a\\ud800\",\"data\":\"x\"}]", "surrogate \\uD800 in its \"channel\"" },
		{ "[{\"channel\":\"a\",\"type\":\"\\udfff\",\"data\":\"x\"}]",
		  "surrogate \\uDFFF in its \"type\"" },
		{ "[{\"channel\":\"a\",\"data\":\"\\u0000\"}]",
		  "element 0 (counting from 0) has \\u0000 in its \"data\"" },
		{ "[{\"channel\":\"a\\u0000b\",\"data\":\"x\"}]", "has \\u0000 in its \"channel\"" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		refused(cases[i].body, cases[i].says);
	/* In data that is not a string, escapes are kept as they are: the
	 * stored JSON text is UTF-8 whatever it says. */
	struct json_batch b;
	char err[256];
	ck_assert_int_eq(parse("[{\"channel\":\"a\",\"data\":[\"\\ud800\"]}]", &b, err), 0);
	ck_assert_str_eq(b.msg[0].data, "[\"\\ud800\"]");
	json_batch_free(&b);
}
END_TEST

/* Data that is not a string is its exact JSON text from the body, inner
 * whitespace and escapes kept, the whitespace around it trimmed. */
START_TEST(batch_nested_data)
{
	struct json_batch b;
	char err[256];
	const char *body = "[ {\"data\" :  {\"a\" : [1, {\"b\": \"}]\\\"\"}], \"c\":null} ,"
			   "\"channel\":\"a\"} , {\"channel\":\"b\",\"data\":\n-1.5e3\n},"
			   "{\"channel\":\"c\",\"data\":null},{\"channel\":\"d\",\"data\":[]},"
			   "{\"channel\":\"e\",\"data\":false,\"type\":\"application/json\"}]";
	ck_assert_msg(parse(body, &b, err) == 0, "%s", err);
	ck_assert_int_eq(b.n, 5);
	ck_assert_str_eq(b.msg[0].data, "{\"a\" : [1, {\"b\": \"}]\\\"\"}], \"c\":null}");
	ck_assert_int_eq(b.msg[0].len, strlen(b.msg[0].data));
	ck_assert_str_eq(b.msg[0].channel, "a");
	ck_assert_str_eq(b.msg[1].data, "-1.5e3");
	ck_assert_str_eq(b.msg[2].data, "null");
	ck_assert_str_eq(b.msg[3].data, "[]");
	ck_assert_str_eq(b.msg[4].data, "false");
	for (int i = 0; i < b.n; i++) {
		ck_assert_str_eq(b.msg[i].type, "application/json");
		ck_assert(json_valid(b.msg[i].data, b.msg[i].len));
	}
	json_batch_free(&b);
	/* Nested as deep as json_valid allows. */
	size_t n;
	char *deep = nested(JSON_MAX_DEPTH - 2, false, &n);
	char *whole = malloc(n + 64);
	snprintf(whole, n + 64, "[{\"channel\":\"a\",\"data\":%s}]", deep);
	ck_assert_msg(parse(whole, &b, err) == 0, "%s", err);
	ck_assert_str_eq(b.msg[0].data, deep);
	json_batch_free(&b);
	free(whole);
	free(deep);
}
END_TEST

/* Of duplicate keys the first counts, as SQLite's value->>'$.channel'
 * answers (checked there in batch_agrees_with_sqlite). */
START_TEST(batch_duplicate_keys)
{
	struct json_batch b;
	char err[256];
	ck_assert_int_eq(parse("[{\"channel\":\"first\",\"data\":\"one\",\"type\":\"text/a\","
			       "\"channel\":\"second\",\"data\":2,\"type\":\"text/b\"}]", &b, err), 0);
	ck_assert_str_eq(b.msg[0].channel, "first");
	ck_assert_str_eq(b.msg[0].data, "one");
	ck_assert_str_eq(b.msg[0].type, "text/a");
	json_batch_free(&b);
	refused("[{\"channel\":5,\"channel\":\"a\",\"data\":1}]", "needs a \"channel\"");
	refused("[{\"channel\":\"a\",\"data\":{},\"type\":\"text/plain\","
		"\"type\":\"application/json\"}]",
		"data of type text/plain must be a string");
	/* A key is compared unescaped: this is "channel" twice. */
	ck_assert_int_eq(parse("[{\"\\u0063hannel\":\"first\",\"channel\":\"second\","
			       "\"dat\\u0061\":1}]", &b, err), 0);
	ck_assert_str_eq(b.msg[0].channel, "first");
	ck_assert_str_eq(b.msg[0].data, "1");
	json_batch_free(&b);
	refused("[{\"channel\\u0000\":\"a\",\"data\":1}]", "needs a \"channel\"");
	refused("[{\"channe\":\"a\",\"channels\":\"a\",\"data\":1}]", "needs a \"channel\"");
}
END_TEST

START_TEST(batch_max_count)
{
	struct json_batch b;
	char err[256];
	const char *three = "[{\"channel\":\"a\",\"data\":1},{\"channel\":\"b\",\"data\":2},"
			    "{\"channel\":\"c\",\"data\":3}]";
	ck_assert_int_eq(json_batch_parse(three, strlen(three), 3, &b, err, sizeof err), 0);
	ck_assert_int_eq(b.n, 3);
	ck_assert_str_eq(b.msg[2].channel, "c");
	json_batch_free(&b);
	ck_assert_int_eq(json_batch_parse(three, strlen(three), 2, &b, err, sizeof err), JSON_ESHAPE);
	ck_assert_str_eq(err, "a batch holds at most 2 messages");
	ck_assert_int_eq(b.n, 0);
	/* Counted before the element over the limit is looked at. */
	const char *over = "[{\"channel\":\"a\",\"data\":1},7]";
	ck_assert_int_eq(json_batch_parse(over, strlen(over), 1, &b, err, sizeof err), JSON_ESHAPE);
	ck_assert_str_eq(err, "a batch holds at most 1 messages");
	/* A message short of err's room is cut, never overrun. */
	char tiny[8];
	ck_assert_int_eq(json_batch_parse("[1]", 3, 5, &b, tiny, sizeof tiny), JSON_ESHAPE);
	ck_assert_str_eq(tiny, "batch e");
}
END_TEST

/* Each message is what the log's former SQL made of the same element:
 * channel and type by value->>, string data by value->>, other data by
 * value->, which SQLite re-renders without whitespace: json() of the text
 * kept here is the same. */
START_TEST(batch_agrees_with_sqlite)
{
	static const char *const bodies[] = {
		"[{\"channel\":\"a\",\"data\":\"x\"}]",
		"[{\"channel\":\"first\",\"data\":\"one\",\"channel\":\"second\",\"data\":2}]",
		("[{\"data\":{\"k\" : [1, 2.50, \"\\u00e9\"]},\"channel\":\"c\\/d\","
		 "\"type\":\"application/json\"}]"),
		"[{\"channel\":\"\\u00e9\\ud83d\\ude00\",\"data\":\" \\\\ \\\" \\n \\t \"}]",
		"[{\"channel\":\"a\",\"data\":-0.0e+1},{\"channel\":\"b\",\"data\":[ ]}]",
		"[{\"channel\":\"a\",\"data\":\"{\\\"x\\\":1}\",\"type\":\"application/json\"}]",
		"[{\"channel\":\"a\",\"type\":\"x\",\"type\":5,\"data\":\"y\"}]",
	};
	sqlite3 *db;
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
		"SELECT value->>'$.channel', value->>'$.type', json_type(value,'$.data'),"
		" CASE json_type(value,'$.data') WHEN 'text' THEN value->>'$.data'"
		" ELSE value->'$.data' END, CASE json_type(value,'$.data') WHEN 'text' THEN NULL"
		" ELSE json(?2) END FROM json_each(?1) WHERE key=?3",
		-1, &s, NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		struct json_batch b;
		char err[256];
		ck_assert_msg(parse(bodies[i], &b, err) == 0, "%s: %s", bodies[i], err);
		for (int k = 0; k < b.n; k++) {
			const struct msglog_msg *m = &b.msg[k];
			sqlite3_bind_text(s, 1, bodies[i], -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, m->data, (int)m->len, SQLITE_STATIC);
			sqlite3_bind_int(s, 3, k);
			ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
			const char *type = (const char *)sqlite3_column_text(s, 1);
			bool text = strcmp((const char *)sqlite3_column_text(s, 2), "text") == 0;
			ck_assert_str_eq(m->channel, (const char *)sqlite3_column_text(s, 0));
			ck_assert_str_eq(m->type, type ? type : text ? "text/plain" : "application/json");
			ck_assert_str_eq(text ? m->data : (const char *)sqlite3_column_text(s, 4),
					 (const char *)sqlite3_column_text(s, 3));
			sqlite3_reset(s);
		}
		json_batch_free(&b);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
}
END_TEST

/* The walker other modules read validated bodies with (pusher.c). */
START_TEST(walker)
{
	const char *p = " {\"a\" : [1, \"x\" ,{\"b\":null}], \"\\u0063\":\"d\\u00e9\", \"e\":{}} ";
	size_t n = strlen(p), key, val, i = json_ws(p, n, 0);
	ck_assert(json_valid(p, n));
	ck_assert_uint_eq(i, 1);
	struct json_iter it, inner;
	json_iter_init(&it, p, i);
	ck_assert(it.object);

	ck_assert(json_iter_next(&it, p, n, &key, &val));
	ck_assert(json_key_is(p, n, key, "a") && !json_key_is(p, n, key, "ab"));
	ck_assert_int_eq(p[val], '[');
	ck_assert_uint_eq(json_skip(p, n, val) - val, strlen("[1, \"x\" ,{\"b\":null}]"));
	json_iter_init(&inner, p, val);
	ck_assert(!inner.object);
	const char first[] = { '1', '"', '{' };
	for (int k = 0; k < 3; k++) {
		ck_assert(json_iter_next(&inner, p, n, &key, &val));
		ck_assert_uint_eq(key, SIZE_MAX);
		ck_assert_int_eq(p[val], first[k]);
	}
	ck_assert(!json_iter_next(&inner, p, n, &key, &val));
	ck_assert(!json_iter_next(&inner, p, n, &key, &val));	/* stays at the end */

	ck_assert(json_iter_next(&it, p, n, &key, &val));
	ck_assert(json_key_is(p, n, key, "c"));		/* its escape decoded */
	char out[16];
	size_t len;
	unsigned code;
	ck_assert_uint_ge(sizeof out, json_string_room(p, n, val));
	ck_assert(json_string_text(p, n, val, out, &len, &code));
	ck_assert_str_eq(out, "d\xc3\xa9");
	ck_assert_uint_eq(len, 3);

	ck_assert(json_iter_next(&it, p, n, &key, &val));
	ck_assert(json_key_is(p, n, key, "e"));
	json_iter_init(&inner, p, val);
	ck_assert(!json_iter_next(&inner, p, n, &key, &val));	/* {} is empty */
	ck_assert(!json_iter_next(&it, p, n, &key, &val));

	const char *q = "[ ]";
	json_iter_init(&inner, q, 0);
	ck_assert(!json_iter_next(&inner, q, 3, &key, &val));
	q = "\"a\\u0000b\"";
	ck_assert(!json_string_text(q, strlen(q), 0, out, &len, &code));
	ck_assert_uint_eq(code, 0);
	q = "\"\\udc00\"";
	ck_assert(!json_string_text(q, strlen(q), 0, out, &len, &code));
	ck_assert_uint_eq(code, 0xdc00);
}
END_TEST

Suite *json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *t = tcase_create("json");
	tcase_add_test(t, validator_vectors);
	tcase_add_test(t, depth_limit);
	tcase_add_test(t, agrees_with_sqlite);
	tcase_add_test(t, batch_shapes);
	tcase_add_test(t, batch_non_objects);
	tcase_add_test(t, batch_string_escapes);
	tcase_add_test(t, batch_lone_surrogates);
	tcase_add_test(t, batch_nested_data);
	tcase_add_test(t, batch_duplicate_keys);
	tcase_add_test(t, batch_max_count);
	tcase_add_test(t, batch_agrees_with_sqlite);
	tcase_add_test(t, walker);
	suite_add_tcase(s, t);
	return s;
}
