/* Unit tests: the Mercure JWTs (jwtauth.c), and what libjwt 1.10 itself
 * does with the tokens that jwtauth refuses before or after it. Keys are
 * made here at test time; none is committed. */
#include "config.h"

#include <errno.h>
#include <jwt.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "jwtauth.h"
#include "mercure.h"
#include "suites.h"

#define NOW 1700000000
#define SECRET "!ChangeThisMercureHubJWTSecretKey!"

/* The demo token of the hub's documentation (docs/getting-started.md of
 * dunglas/mercure), HS256 with the key above. */
#define DOC_TOKEN \
	"eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdLCJzdWJzY3JpYmUiOlsiaHR0" \
	"cHM6Ly9leGFtcGxlLmNvbS9teS1wcml2YXRlLXRvcGljIiwie3NjaGVtZX06Ly97K2hvc3R9L2RlbW8vYm9v" \
	"a3Mve2lkfS5qc29ubGQiLCIvLndlbGwta25vd24vbWVyY3VyZS9zdWJzY3JpcHRpb25zey90b3BpY317L3N1" \
	"YnNjcmliZXJ9Il0sInBheWxvYWQiOnsidXNlciI6Imh0dHBzOi8vZXhhbXBsZS5jb20vdXNlcnMvZHVuZ2xh" \
	"cyIsInJlbW90ZUFkZHIiOiIxMjcuMC4wLjEifX19.KKPIikwUzRuB3DTpVw6ajzwSChwFw5omBMmMcWKiDcM"

static void b64url(struct buf *out, const void *p, size_t n)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *s = p;
	unsigned long acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | s[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			buf_addc(out, abc[(acc >> bits) & 63]);
		}
	}
	if (bits > 0)
		buf_addc(out, abc[(acc << (6 - bits)) & 63]);
}

/* header.payload.HMAC-SHA256(secret), made by hand: any header at all. */
static char *hs_token(const void *secret, size_t slen, const char *header,
		      const void *payload, size_t plen)
{
	struct buf b = BUF_INIT;
	b64url(&b, header, strlen(header));
	buf_addc(&b, '.');
	b64url(&b, payload, plen);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)b.p, b.len, mac, &n);
	buf_addc(&b, '.');
	b64url(&b, mac, n);
	char *t = strdup(buf_str(&b));
	buf_free(&b);
	return t;
}

static char *hs(const char *payload)
{
	return hs_token(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload,
			strlen(payload));
}

static struct jwtauth_key hs_key(void)
{
	struct jwtauth_key k;
	char err[256];
	ck_assert_msg(jwtauth_key_load(&k, SECRET, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(k.alg, JWTAUTH_HS256);
	return k;
}

static int verify(const struct jwtauth_key *k, const char *tok, struct jwtauth_claims *c,
		  char *err)
{
	return jwtauth_verify(k, tok, strlen(tok), NOW, c, err, 256);
}

static void refused(const struct jwtauth_key *k, const char *tok, const char *says)
{
	struct jwtauth_claims c;
	char err[256] = "";
	ck_assert_msg(verify(k, tok, &c, err) == -1, "accepted: %.80s", tok);
	ck_assert_msg(strstr(err, says), "%s: %s", says, err);
	ck_assert_ptr_null(c.publish);
	ck_assert_ptr_null(c.store);
}

START_TEST(doc_vector)
{
	struct jwtauth_key k = hs_key();
	struct jwtauth_claims c;
	char err[256];
	ck_assert_msg(verify(&k, DOC_TOKEN, &c, err) == 0, "%s", err);
	ck_assert_uint_eq(c.npublish, 1);
	ck_assert_str_eq(c.publish[0], "*");
	ck_assert_uint_eq(c.nsubscribe, 3);
	ck_assert_str_eq(c.subscribe[0], "https://example.com/my-private-topic");
	ck_assert_str_eq(c.subscribe[1], "{scheme}://{+host}/demo/books/{id}.jsonld");
	ck_assert_str_eq(c.subscribe[2], "/.well-known/mercure/subscriptions{/topic}{/subscriber}");
	ck_assert_int_eq(c.exp, 0);
	/* The claims feed the selectors. */
	struct mercure_selectors sub;
	ck_assert_int_eq(mercure_selectors_compile(&sub, c.subscribe, c.nsubscribe, err,
						   sizeof err), 0);
	const char *t[] = { "https://example.com/demo/books/1.jsonld" };
	ck_assert(mercure_can_receive(&sub, t, 1, true));
	mercure_selectors_free(&sub);
	jwtauth_claims_free(&c);
	/* Taken by length: a cookie's value is not NUL-terminated. */
	char *longer = malloc(strlen(DOC_TOKEN) + 10);
	sprintf(longer, "%s; a=b", DOC_TOKEN);
	ck_assert_int_eq(jwtauth_verify(&k, longer, strlen(DOC_TOKEN), NOW, &c, err, sizeof err),
			 0);
	jwtauth_claims_free(&c);
	free(longer);
	/* Another secret: refused. */
	struct jwtauth_key other;
	ck_assert_int_eq(jwtauth_key_load(&other, SECRET "x", err, sizeof err), 0);
	refused(&other, DOC_TOKEN, "signature");
	jwtauth_key_free(&other);
	jwtauth_key_free(&k);
}
END_TEST

START_TEST(claims_shape)
{
	struct jwtauth_key k = hs_key();
	struct jwtauth_claims c;
	char err[256];
	char *t;

	/* No claim, an empty one, null lists: all empty, none an error. */
	const char *empty[] = { "{}", "{\"mercure\":{}}", "{\"mercure\":null}",
				"{\"mercure\":{\"publish\":null,\"subscribe\":[]}}",
				"{\"sub\":\"x\",\"mercure\":{\"payload\":{\"a\":[1,{\"b\":2}]}}}" };
	for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
		t = hs(empty[i]);
		ck_assert_msg(verify(&k, t, &c, err) == 0, "%s: %s", empty[i], err);
		ck_assert_uint_eq(c.npublish, 0);
		ck_assert_uint_eq(c.nsubscribe, 0);
		jwtauth_claims_free(&c);
		free(t);
	}
	/* The namespaced claim wins over "mercure". */
	t = hs("{\"mercure\":{\"publish\":[\"a\"]},\"https://mercure.rocks/\":{\"publish\":[\"b\"]}}");
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	ck_assert_uint_eq(c.npublish, 1);
	ck_assert_str_eq(c.publish[0], "b");
	jwtauth_claims_free(&c);
	free(t);
	/* Not the protocol's shape. */
	const char *bad[] = {
		"{\"mercure\":\"*\"}", "{\"mercure\":[\"*\"]}", "{\"mercure\":{\"publish\":\"*\"}}",
		"{\"mercure\":{\"publish\":[1]}}", "{\"mercure\":{\"subscribe\":[\"a\",null]}}",
		"{\"mercure\":{\"publish\":{\"0\":\"*\"}}}",
		"{\"https://mercure.rocks/\":true,\"mercure\":{\"publish\":[\"*\"]}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		t = hs(bad[i]);
		refused(&k, t, "mercure");
		free(t);
	}
	/* 256 selectors pass, 257 do not; nor a selector of 2049 bytes. */
	struct buf p = BUF_INIT;
	buf_adds(&p, "{\"mercure\":{\"subscribe\":[\"a\"");
	for (int i = 1; i < MERCURE_MAX_TOPICS; i++)
		buf_adds(&p, ",\"a\"");
	buf_adds(&p, "]}}");
	t = hs(buf_str(&p));
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	ck_assert_uint_eq(c.nsubscribe, MERCURE_MAX_TOPICS);
	jwtauth_claims_free(&c);
	free(t);
	p.len -= 3;
	buf_adds(&p, ",\"a\"]}}");
	t = hs(buf_str(&p));
	refused(&k, t, "at most 256");
	free(t);
	buf_reset(&p);
	buf_adds(&p, "{\"mercure\":{\"publish\":[\"");
	for (int i = 0; i <= MERCURE_TOPIC_MAX; i++)
		buf_addc(&p, 'x');
	buf_adds(&p, "\"]}}");
	t = hs(buf_str(&p));
	refused(&k, t, "bytes");
	free(t);
	buf_free(&p);
	jwtauth_key_free(&k);
}
END_TEST

START_TEST(times)
{
	struct jwtauth_key k = hs_key();
	struct jwtauth_claims c;
	char err[256], payload[128];
	char *t;

	snprintf(payload, sizeof payload, "{\"exp\":%d,\"nbf\":%d}", NOW + 60, NOW - 60);
	t = hs(payload);
	ck_assert_msg(verify(&k, t, &c, err) == 0, "%s", err);
	ck_assert_int_eq(c.exp, NOW + 60);
	jwtauth_claims_free(&c);
	free(t);
	/* Valid while now < exp: expired at exp itself. */
	snprintf(payload, sizeof payload, "{\"exp\":%d}", NOW);
	t = hs(payload);
	refused(&k, t, "expired");
	free(t);
	snprintf(payload, sizeof payload, "{\"exp\":%d}", NOW + 1);
	t = hs(payload);
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	jwtauth_claims_free(&c);
	free(t);
	/* Fractional seconds, as lcobucci/jwt writes them for Symfony. */
	snprintf(payload, sizeof payload, "{\"exp\":%d.25}", NOW);
	t = hs(payload);
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	ck_assert_int_eq(c.exp, NOW);
	jwtauth_claims_free(&c);
	free(t);
	snprintf(payload, sizeof payload, "{\"exp\":%d.75}", NOW - 1);
	t = hs(payload);
	refused(&k, t, "expired");
	free(t);
	snprintf(payload, sizeof payload, "{\"exp\":1e300}");
	t = hs(payload);
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	ck_assert_int_eq(c.exp, INT64_MAX);
	jwtauth_claims_free(&c);
	free(t);
	/* nbf: valid from nbf on. */
	snprintf(payload, sizeof payload, "{\"nbf\":%d}", NOW);
	t = hs(payload);
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	jwtauth_claims_free(&c);
	free(t);
	snprintf(payload, sizeof payload, "{\"nbf\":%d}", NOW + 1);
	t = hs(payload);
	refused(&k, t, "not valid yet");
	free(t);
	/* Not numbers; null is as absent. */
	const char *odd[] = { "{\"exp\":\"2100000000\"}", "{\"exp\":true}", "{\"nbf\":[1]}" };
	for (size_t i = 0; i < 3; i++) {
		t = hs(odd[i]);
		refused(&k, t, "not a number");
		free(t);
	}
	t = hs("{\"exp\":null}");
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	ck_assert_int_eq(c.exp, 0);
	jwtauth_claims_free(&c);
	free(t);
	jwtauth_key_free(&k);
}
END_TEST

START_TEST(alg_none)
{
	struct jwtauth_key k = hs_key();
	struct buf b = BUF_INIT;
	b64url(&b, "{\"alg\":\"none\"}", 14);
	buf_addc(&b, '.');
	b64url(&b, "{\"mercure\":{\"publish\":[\"*\"]}}", 29);
	buf_addc(&b, '.');
	char *none = strdup(buf_str(&b));
	refused(&k, none, "unsigned");
	/* A signature of sorts does not help. */
	buf_adds(&b, "c2lnbmF0dXJl");
	refused(&k, buf_str(&b), "alg none");
	/* libjwt 1.10 itself: with a key, alg none is refused... */
	jwt_t *jwt = NULL;
	ck_assert_int_eq(jwt_decode(&jwt, none, k.material, (int)k.len), EINVAL);
	ck_assert_ptr_null(jwt);
	/* ...but with no key (or an empty one) an unsigned token decodes:
	 * jwtauth never passes an empty key (jwtauth_key_load refuses one). */
	ck_assert_int_eq(jwt_decode(&jwt, none, NULL, 0), 0);
	ck_assert_ptr_nonnull(jwt);
	ck_assert_int_eq(jwt_get_alg(jwt), JWT_ALG_NONE);
	jwt_free(jwt);
	ck_assert_int_eq(jwt_decode(&jwt, none, (const unsigned char *)"", 0), 0);
	jwt_free(jwt);
	/* Other spellings and algorithms. */
	const char *heads[] = { "{\"alg\":\"None\"}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS512\"}",
				"{\"alg\":\"RS256\"}", "{\"typ\":\"JWT\"}", "{\"alg\":256}" };
	for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
		char *t = hs_token(SECRET, strlen(SECRET), heads[i], "{}", 2);
		refused(&k, t, "alg");
		free(t);
	}
	free(none);
	buf_free(&b);
	jwtauth_key_free(&k);
}
END_TEST

START_TEST(hostile_tokens)
{
	struct jwtauth_key k = hs_key();
	char *good = hs("{\"mercure\":{\"publish\":[\"*\"]}}");
	struct jwtauth_claims c;
	char err[256];
	ck_assert_int_eq(verify(&k, good, &c, err), 0);
	jwtauth_claims_free(&c);

	/* Past the length cap: refused before anything is parsed. */
	char *huge = malloc(JWTAUTH_TOKEN_MAX + 2);
	memset(huge, 'A', JWTAUTH_TOKEN_MAX + 1);
	huge[JWTAUTH_TOKEN_MAX + 1] = '\0';
	refused(&k, huge, "longer than");
	free(huge);

	/* Not three base64url parts. */
	struct buf b = BUF_INIT;
	const char *syntax[] = { "", "abc", "a.b", "a.b.c.d", "..", ".e30.c2ln", "e30..c2ln" };
	for (size_t i = 0; i < sizeof syntax / sizeof *syntax; i++) {
		struct jwtauth_claims cc;
		ck_assert_int_eq(verify(&k, syntax[i], &cc, err), -1);
	}
	buf_printf(&b, "%s.junk", good);	/* libjwt would ignore ".junk" */
	refused(&k, buf_str(&b), "three parts");
	buf_reset(&b);
	buf_printf(&b, "%s=", good);	/* padding */
	refused(&k, buf_str(&b), "base64url");
	buf_reset(&b);
	buf_printf(&b, "%s", good);
	b.p[3] = '+';	/* base64, not base64url */
	refused(&k, buf_str(&b), "base64url");
	b.p[3] = '!';
	refused(&k, buf_str(&b), "base64url");
	buf_reset(&b);
	buf_printf(&b, "%s", good);
	b.p[b.len - 2] = b.p[b.len - 2] == 'A' ? 'B' : 'A';	/* another signature */
	refused(&k, buf_str(&b), "signature");
	buf_reset(&b);
	buf_printf(&b, "%sAA", good);	/* 4n + 1 characters */
	refused(&k, buf_str(&b), "base64url");

	/* Payloads that are not one JSON object, or are hostile ones. */
	const char *payloads[] = { "{", "[1]", "\"x\"", "1", "{\"a\":1}x", "{\"a\":1,\"a\":2}",
				   "{\"mercure\":{\"publish\":[\"a\"]},\"mercure\":{\"publish\":[\"*\"]}}",
				   "{\"a\":\"\\u0000\"}", "{\"a\":\"\xff\"}" };
	for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
		char *t = hs(payloads[i]);
		refused(&k, t, "payload");
		free(t);
	}
	/* A raw NUL inside, where a C parser would stop reading. */
	char *t = hs_token(SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", "{}\0{\"x\":1}", 11);
	refused(&k, t, "payload");
	free(t);
	/* A header that is not an object, or has alg twice. */
	t = hs_token(SECRET, strlen(SECRET), "[\"HS256\"]", "{}", 2);
	refused(&k, t, "header");
	free(t);
	t = hs_token(SECRET, strlen(SECRET), "{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", 2);
	refused(&k, t, "header");
	free(t);
	/* typ other than JWT: libjwt 1.10 refuses it (RFC 9068's at+jwt too). */
	t = hs_token(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{}", 2);
	refused(&k, t, "signature");
	free(t);
	t = hs_token(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{}", 2);
	ck_assert_int_eq(verify(&k, t, &c, err), 0);
	jwtauth_claims_free(&c);
	free(t);

	/* Nesting: JWTAUTH_MAX_DEPTH passes, one more does not, and a bomb
	 * as deep as 8 KB allows costs a scan, no recursion. */
	buf_reset(&b);
	buf_adds(&b, "{\"mercure\":{\"payload\":");
	for (int i = 2; i < JWTAUTH_MAX_DEPTH; i++)
		buf_addc(&b, '[');
	for (int i = 2; i < JWTAUTH_MAX_DEPTH; i++)
		buf_addc(&b, ']');
	buf_adds(&b, "}}");
	t = hs(buf_str(&b));
	ck_assert_msg(verify(&k, t, &c, err) == 0, "%s", err);
	jwtauth_claims_free(&c);
	free(t);
	buf_reset(&b);
	buf_adds(&b, "{\"mercure\":{\"payload\":");
	for (int i = 1; i < JWTAUTH_MAX_DEPTH; i++)
		buf_addc(&b, '[');
	for (int i = 1; i < JWTAUTH_MAX_DEPTH; i++)
		buf_addc(&b, ']');
	buf_adds(&b, "}}");
	t = hs(buf_str(&b));
	refused(&k, t, "nesting");
	free(t);
	buf_reset(&b);
	for (int i = 0; i < 5000; i++)
		buf_addc(&b, '[');
	t = hs(buf_str(&b));
	ck_assert_int_lt(strlen(t), JWTAUTH_TOKEN_MAX);
	refused(&k, t, "nesting");
	free(t);
	/* Brackets inside strings are not nesting. */
	buf_reset(&b);
	buf_adds(&b, "{\"a\":\"");
	for (int i = 0; i < 100; i++)
		buf_adds(&b, "[{\\\"");
	buf_adds(&b, "\"}");
	t = hs(buf_str(&b));
	ck_assert_msg(verify(&k, t, &c, err) == 0, "%s", err);
	jwtauth_claims_free(&c);
	free(t);

	buf_free(&b);
	free(good);
	jwtauth_key_free(&k);
}
END_TEST

/* jansson parses, frees and writes JSON by recursion: at its own limit
 * of 2048 levels a parse needs more than 128 KB of stack, and a 64 KB
 * thread dies below 1000. libjwt hands it any header and payload;
 * jwtauth's scan stops at JWTAUTH_MAX_DEPTH first, so a bomb costs no
 * stack (without the scan this test dies of SIGSEGV). */
struct bomb_run {
	const struct jwtauth_key *k;
	char *tokens[4];
	int rc[4];
};

static void *bomb_thread(void *arg)
{
	struct bomb_run *r = arg;
	for (int i = 0; i < 4; i++) {
		struct jwtauth_claims c;
		char err[256];
		r->rc[i] = jwtauth_verify(r->k, r->tokens[i], strlen(r->tokens[i]), NOW, &c, err,
					  sizeof err);
		jwtauth_claims_free(&c);
	}
	return NULL;
}

START_TEST(nesting_bomb_small_stack)
{
	struct jwtauth_key k = hs_key();
	struct bomb_run r = { &k, { NULL }, { 0 } };
	struct buf b = BUF_INIT;
	for (int i = 0; i < 2047; i++)
		buf_addc(&b, '[');
	for (int i = 0; i < 2047; i++)
		buf_addc(&b, ']');
	r.tokens[0] = hs(buf_str(&b));
	buf_reset(&b);
	buf_adds(&b, "{\"mercure\":{\"payload\":");
	for (int i = 0; i < 1000; i++)
		buf_addc(&b, '{'), buf_adds(&b, "\"a\":");
	buf_adds(&b, "1");
	for (int i = 0; i < 1002; i++)
		buf_addc(&b, '}');
	r.tokens[1] = hs(buf_str(&b));
	buf_reset(&b);
	buf_adds(&b, "{\"alg\":\"HS256\",\"x\":");
	for (int i = 0; i < 2040; i++)
		buf_addc(&b, '[');
	for (int i = 0; i < 2040; i++)
		buf_addc(&b, ']');
	buf_addc(&b, '}');
	r.tokens[2] = hs_token(SECRET, strlen(SECRET), buf_str(&b), "{}", 2);
	r.tokens[3] = hs("{\"mercure\":{\"publish\":[\"*\"]}}");
	pthread_attr_t at;
	pthread_t t;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 64 * 1024);
	for (int i = 0; i < 4; i++)
		ck_assert_int_lt(strlen(r.tokens[i]), JWTAUTH_TOKEN_MAX);
	ck_assert_int_eq(pthread_create(&t, &at, bomb_thread, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&at);
	ck_assert_int_eq(r.rc[0], -1);
	ck_assert_int_eq(r.rc[1], -1);
	ck_assert_int_eq(r.rc[2], -1);
	ck_assert_int_eq(r.rc[3], 0);
	for (int i = 0; i < 4; i++)
		free(r.tokens[i]);
	buf_free(&b);
	jwtauth_key_free(&k);
}
END_TEST

/* -- Public keys, made now ---------------------------------------------- */

static EVP_PKEY *make_rsa(int bits)
{
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
	ck_assert(ctx && EVP_PKEY_keygen_init(ctx) == 1);
	ck_assert(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1);
	ck_assert(EVP_PKEY_keygen(ctx, &pk) == 1);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static EVP_PKEY *make_ec(int nid)
{
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	ck_assert(ctx && EVP_PKEY_keygen_init(ctx) == 1);
	ck_assert(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, nid) == 1);
	ck_assert(EVP_PKEY_keygen(ctx, &pk) == 1);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static char *pem_of(EVP_PKEY *pk, bool priv)
{
	BIO *bio = BIO_new(BIO_s_mem());
	ck_assert(priv ? PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1
		       : PEM_write_bio_PUBKEY(bio, pk) == 1);
	char *p;
	long n = BIO_get_mem_data(bio, &p);
	char *s = strndup(p, (size_t)n);
	BIO_free(bio);
	return s;
}

/* A token signed by libjwt's own encoder. */
static char *libjwt_token(jwt_alg_t alg, const char *keypem, const char *grants)
{
	jwt_t *jwt;
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_set_alg(jwt, alg, (const unsigned char *)keypem, (int)strlen(keypem)), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, grants), 0);
	char *t = jwt_encode_str(jwt);
	ck_assert_ptr_nonnull(t);
	jwt_free(jwt);
	return t;
}

static char *write_temp(const char *dir, const char *name, const char *text)
{
	char *path = malloc(4200);
	snprintf(path, 4200, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

START_TEST(key_settings)
{
	struct jwtauth_key k;
	char err[256];
	ck_assert_int_eq(jwtauth_key_load(&k, "", err, sizeof err), -1);
	ck_assert_int_eq(jwtauth_key_load(&k, NULL, err, sizeof err), -1);
	ck_assert_int_eq(jwtauth_key_load(&k, "!ChangeMe!", err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "at least 32"));
	ck_assert_int_eq(jwtauth_key_load(&k, "0123456789abcdef0123456789abcdef", err,
					  sizeof err), 0);
	ck_assert_int_eq(k.alg, JWTAUTH_HS256);
	jwtauth_key_free(&k);

	char *dir = test_tmpdir();
	EVP_PKEY *rsa = make_rsa(2048), *ec = make_ec(NID_X9_62_prime256v1);
	EVP_PKEY *small = make_rsa(1024), *p384 = make_ec(NID_secp384r1);
	char *rsa_pub = pem_of(rsa, false), *ec_pub = pem_of(ec, false);
	char *path = write_temp(dir, "rsa.pem", rsa_pub);
	ck_assert_msg(jwtauth_key_load(&k, path, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(k.alg, JWTAUTH_RS256);
	ck_assert_str_eq((const char *)k.material, rsa_pub);
	jwtauth_key_free(&k);
	free(path);
	/* Extra text around the key is dropped: only the key is kept. */
	struct buf b = BUF_INIT;
	buf_printf(&b, "a comment\n%s\ntrailing\n", ec_pub);
	path = write_temp(dir, "ec.pem", buf_str(&b));
	ck_assert_msg(jwtauth_key_load(&k, path, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(k.alg, JWTAUTH_ES256);
	ck_assert_uint_eq(k.len, strlen(ec_pub));
	jwtauth_key_free(&k);
	free(path);
	/* The PEM text itself. */
	ck_assert_int_eq(jwtauth_key_load(&k, rsa_pub, err, sizeof err), 0);
	ck_assert_int_eq(k.alg, JWTAUTH_RS256);
	jwtauth_key_free(&k);
	/* Refused: a private key, a short RSA key, another curve, no file,
	 * a file that is no key. */
	char *priv = pem_of(rsa, true), *small_pub = pem_of(small, false);
	char *p384_pub = pem_of(p384, false);
	const char *names[] = { "priv.pem", "small.pem", "p384.pem", "junk.pem" };
	const char *texts[] = { priv, small_pub, p384_pub, "-----BEGIN PUBLIC KEY-----\nAAAA\n" };
	const char *says[] = { "no PEM public key", "1024 bits", "neither RSA", "no PEM" };
	for (int i = 0; i < 4; i++) {
		path = write_temp(dir, names[i], texts[i]);
		ck_assert_int_eq(jwtauth_key_load(&k, path, err, sizeof err), -1);
		ck_assert_msg(strstr(err, says[i]) && strstr(err, path), "%s", err);
		free(path);
	}
	ck_assert_int_eq(jwtauth_key_load(&k, "/nonexistent/key.pem", err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "No such file"));

	buf_free(&b);
	free(priv);
	free(small_pub);
	free(p384_pub);
	free(rsa_pub);
	free(ec_pub);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p384);
	test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(rs256_es256)
{
	EVP_PKEY *rsa = make_rsa(2048), *rsa2 = make_rsa(2048), *ec = make_ec(NID_X9_62_prime256v1);
	char *rsa_priv = pem_of(rsa, true), *rsa_pub = pem_of(rsa, false);
	char *rsa2_priv = pem_of(rsa2, true);
	char *ec_priv = pem_of(ec, true), *ec_pub = pem_of(ec, false);
	struct jwtauth_key rk, ek;
	struct jwtauth_claims c;
	char err[256];
	ck_assert_int_eq(jwtauth_key_load(&rk, rsa_pub, err, sizeof err), 0);
	ck_assert_int_eq(jwtauth_key_load(&ek, ec_pub, err, sizeof err), 0);
	const char *grants = "{\"mercure\":{\"publish\":[\"https://example.com/{+p}\"]}}";

	char *rt = libjwt_token(JWT_ALG_RS256, rsa_priv, grants);
	ck_assert_msg(verify(&rk, rt, &c, err) == 0, "%s", err);
	ck_assert_str_eq(c.publish[0], "https://example.com/{+p}");
	jwtauth_claims_free(&c);
	char *et = libjwt_token(JWT_ALG_ES256, ec_priv, grants);
	ck_assert_msg(verify(&ek, et, &c, err) == 0, "%s", err);
	jwtauth_claims_free(&c);
	/* Each with the other's key, or another key of the same kind. */
	refused(&ek, rt, "alg RS256");
	refused(&rk, et, "alg ES256");
	char *rt2 = libjwt_token(JWT_ALG_RS256, rsa2_priv, grants);
	refused(&rk, rt2, "signature");
	/* RS384 with the RSA key: the alg is the key's, exactly. */
	char *rt384 = libjwt_token(JWT_ALG_RS384, rsa_priv, grants);
	refused(&rk, rt384, "alg RS384");

	/* Key confusion: an HS256 token whose secret is the public key's
	 * PEM text, which anybody can have. libjwt verifies it... */
	char *forged = hs_token(rk.material, rk.len, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
				grants, strlen(grants));
	jwt_t *jwt = NULL;
	ck_assert_int_eq(jwt_decode(&jwt, forged, rk.material, (int)rk.len), 0);
	ck_assert_int_eq(jwt_get_alg(jwt), JWT_ALG_HS256);
	jwt_free(jwt);
	/* ...jwtauth does not. */
	refused(&rk, forged, "alg HS256, the key is for RS256");
	free(forged);

	/* Junk after a valid RS256 or ES256 token: libjwt's base64 decoder
	 * stops at the first foreign character, and the signature verifies... */
	struct buf b = BUF_INIT;
	const char *junk[] = { "@@@@", "!", "=", "==" };
	for (int i = 0; i < 4; i++) {
		buf_reset(&b);
		buf_printf(&b, "%s%s", rt, junk[i]);
		ck_assert_int_eq(jwt_decode(&jwt, buf_str(&b), rk.material, (int)rk.len), 0);
		jwt_free(jwt);
		/* ...jwtauth takes base64url and nothing else. */
		refused(&rk, buf_str(&b), "base64url");
		buf_reset(&b);
		buf_printf(&b, "%s%s", et, junk[i]);
		ck_assert_int_eq(jwt_decode(&jwt, buf_str(&b), ek.material, (int)ek.len), 0);
		jwt_free(jwt);
		refused(&ek, buf_str(&b), "base64url");
	}
	buf_reset(&b);
	buf_printf(&b, "%s.junk", rt);
	refused(&rk, buf_str(&b), "three parts");
	/* An ES256 signature of the wrong length. */
	buf_reset(&b);
	buf_add(&b, et, strrchr(et, '.') - et);
	buf_adds(&b, ".AAAA");
	refused(&ek, buf_str(&b), "signature");

	buf_free(&b);
	free(rt);
	free(rt2);
	free(rt384);
	free(et);
	jwtauth_key_free(&rk);
	jwtauth_key_free(&ek);
	free(rsa_priv);
	free(rsa_pub);
	free(rsa2_priv);
	free(ec_priv);
	free(ec_pub);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(ec);
}
END_TEST

Suite *jwtauth_suite(void)
{
	Suite *s = suite_create("jwtauth");
	TCase *t = tcase_create("jwtauth");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, doc_vector);
	tcase_add_test(t, claims_shape);
	tcase_add_test(t, times);
	tcase_add_test(t, alg_none);
	tcase_add_test(t, hostile_tokens);
	tcase_add_test(t, nesting_bomb_small_stack);
	tcase_add_test(t, key_settings);
	tcase_add_test(t, rs256_es256);
	suite_add_tcase(s, t);
	return s;
}
