/* jwtauth: Mercure's JWTs: strict syntax and shape first, then libjwt for
 * the signature, then the claims with jansson. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#include <openssl/ec.h>
#endif

#include "buf.h"
#include "jwtauth.h"
#include "mercure.h"

const char *jwtauth_alg_name(enum jwtauth_alg alg)
{
	switch (alg) {
	case JWTAUTH_HS256: return "HS256";
	case JWTAUTH_RS256: return "RS256";
	case JWTAUTH_ES256: return "ES256";
	}
	return "?";
}

static jwt_alg_t libjwt_alg(enum jwtauth_alg alg)
{
	switch (alg) {
	case JWTAUTH_HS256: return JWT_ALG_HS256;
	case JWTAUTH_RS256: return JWT_ALG_RS256;
	case JWTAUTH_ES256: return JWT_ALG_ES256;
	}
	return JWT_ALG_INVAL;
}

/* -- Keys ------------------------------------------------------------------- */

static bool ec_is_p256(EVP_PKEY *pk)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	char name[64];
	size_t n = 0;
	if (EVP_PKEY_get_group_name(pk, name, sizeof name, &n) != 1)
		return false;
	return OBJ_sn2nid(name) == NID_X9_62_prime256v1 || OBJ_txt2nid(name) == NID_X9_62_prime256v1;
#else
	EC_KEY *ec = EVP_PKEY_get1_EC_KEY(pk);
	bool p256 = ec && EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) == NID_X9_62_prime256v1;
	EC_KEY_free(ec);
	return p256;
#endif
}

/* The public key in pem[0..n): its algorithm, and the key again as
 * canonical PEM in k (only that key, whatever else the text held). */
static int load_pem(struct jwtauth_key *k, const char *pem, size_t n, char *err, size_t errlen)
{
	int rc = -1;
	BIO *in = BIO_new_mem_buf(pem, (int)n), *out = NULL;
	EVP_PKEY *pk = in ? PEM_read_bio_PUBKEY(in, NULL, NULL, NULL) : NULL;
	if (!pk) {
		snprintf(err, errlen, "no PEM public key (-----BEGIN PUBLIC KEY-----) in it; "
			 "openssl pkey -pubout gives one from a private key");
		goto done;
	}
	int type = EVP_PKEY_base_id(pk);
	if (type == EVP_PKEY_RSA) {
		if (EVP_PKEY_bits(pk) < JWTAUTH_RSA_MIN_BITS) {
			snprintf(err, errlen, "an RSA key of %d bits: at least %d are needed",
				 EVP_PKEY_bits(pk), JWTAUTH_RSA_MIN_BITS);
			goto done;
		}
		k->alg = JWTAUTH_RS256;
	} else if (type == EVP_PKEY_EC && ec_is_p256(pk)) {
		k->alg = JWTAUTH_ES256;
	} else {
		snprintf(err, errlen, "a public key that is neither RSA (RS256) nor EC on "
			 "P-256 (ES256)");
		goto done;
	}
	out = BIO_new(BIO_s_mem());
	char *p = NULL;
	long len;
	if (!out || PEM_write_bio_PUBKEY(out, pk) != 1 || (len = BIO_get_mem_data(out, &p)) <= 0) {
		snprintf(err, errlen, "cannot write the public key out again");
		goto done;
	}
	k->material = xmalloc((size_t)len + 1);
	memcpy(k->material, p, (size_t)len);
	k->material[len] = '\0';
	k->len = (size_t)len;
	rc = 0;
done:
	EVP_PKEY_free(pk);
	BIO_free(in);
	BIO_free(out);
	return rc;
}

int jwtauth_key_load(struct jwtauth_key *k, const char *setting, char *err, size_t errlen)
{
	*k = (struct jwtauth_key){ 0 };
	if (!setting || !*setting) {
		snprintf(err, errlen, "empty");
		return -1;
	}
	if (strncmp(setting, "-----BEGIN", 10) == 0)
		return load_pem(k, setting, strlen(setting), err, errlen);
	if (setting[0] == '/') {
		FILE *f = fopen(setting, "rb");
		if (!f) {
			snprintf(err, errlen, "%s: %s", setting, strerror(errno));
			return -1;
		}
		char *text = xmalloc(JWTAUTH_KEY_FILE_MAX + 1);
		size_t n = fread(text, 1, JWTAUTH_KEY_FILE_MAX + 1, f);
		bool bad = ferror(f);
		fclose(f);
		int rc = -1;
		if (bad)
			snprintf(err, errlen, "%s: cannot be read", setting);
		else if (n > JWTAUTH_KEY_FILE_MAX)
			snprintf(err, errlen, "%s: larger than %d bytes", setting,
				 JWTAUTH_KEY_FILE_MAX);
		else if ((rc = load_pem(k, text, n, err, errlen)) < 0) {
			char why[256];
			snprintf(why, sizeof why, "%s", err);
			snprintf(err, errlen, "%s: %s", setting, why);
		}
		free(text);
		return rc;
	}
	size_t n = strlen(setting);
	if (n < JWTAUTH_SECRET_MIN) {
		snprintf(err, errlen, "an HS256 secret of %zu bytes: at least %d are needed "
			 "(RFC 7518 3.2), or a path to a PEM public key", n, JWTAUTH_SECRET_MIN);
		return -1;
	}
	k->alg = JWTAUTH_HS256;
	k->material = (unsigned char *)xstrndup(setting, n);
	k->len = n;
	return 0;
}

void jwtauth_key_free(struct jwtauth_key *k)
{
	if (k->material)
		OPENSSL_cleanse(k->material, k->len);
	free(k->material);
	*k = (struct jwtauth_key){ 0 };
}

/* -- Tokens ------------------------------------------------------------------ */

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes the base64url s[0..n) (RFC 4648 section 5, unpadded, as RFC 7515
 * has it) into out; its length, or -1 for anything else. */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
	if (n % 4 == 1)
		return -1;
	unsigned long acc = 0;
	int bits = 0;
	long o = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6 | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

static bool b64url_only(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b64url_value((unsigned char)s[i]) < 0)
			return false;
	return n % 4 != 1;
}

/* Whether the JSON text p[0..n) holds no NUL and nests at most max deep;
 * the cheap look before any recursive parser is let at it. Whether it is
 * JSON at all is jansson's to say. */
static bool json_shallow(const unsigned char *p, size_t n, int max)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == 0)
			return false;
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return false;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return true;
}

static int refuse(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "invalid JWT: %s", why);
	return -1;
}

/* Decodes and parses one JSON object of the token. */
static json_t *part_json(const char *s, size_t n, unsigned char *scratch)
{
	long len = b64url_decode(s, n, scratch);
	if (len <= 0 || !json_shallow(scratch, (size_t)len, JWTAUTH_MAX_DEPTH))
		return NULL;
	json_error_t e;
	json_t *j = json_loadb((const char *)scratch, (size_t)len, JSON_REJECT_DUPLICATES, &e);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* exp or nbf: 0 when absent (or null), 1 with *v, -1 when not a number. */
static int numeric_date(json_t *claims, const char *name, double *v)
{
	json_t *j = json_object_get(claims, name);
	if (!j || json_is_null(j))
		return 0;
	if (!json_is_number(j))
		return -1;
	*v = json_number_value(j);
	return 1;
}

/* One list of the claim: NULL/absent is empty; else an array of strings,
 * at most MERCURE_MAX_TOPICS, each at most MERCURE_TOPIC_MAX bytes. Adds
 * the bytes its strings need to *bytes. */
static bool list_ok(json_t *list, size_t *bytes)
{
	if (!list || json_is_null(list))
		return true;
	if (!json_is_array(list) || json_array_size(list) > MERCURE_MAX_TOPICS)
		return false;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *s = json_array_get(list, i);
		if (!json_is_string(s) || json_string_length(s) > MERCURE_TOPIC_MAX)
			return false;
		*bytes += json_string_length(s) + 1;
	}
	return true;
}

static void list_copy(json_t *list, const char ***out, size_t *n, char **at)
{
	*out = NULL;
	*n = 0;
	if (!list || json_is_null(list) || json_array_size(list) == 0)
		return;
	*out = xcalloc(json_array_size(list), sizeof **out);
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *s = json_array_get(list, i);
		size_t len = json_string_length(s);
		memcpy(*at, json_string_value(s), len + 1);
		(*out)[(*n)++] = *at;
		*at += len + 1;
	}
}

static int read_claims(json_t *claims, int64_t now_s, struct jwtauth_claims *out,
		       char *err, size_t errlen)
{
	double exp = 0, nbf = 0;
	int has_exp = numeric_date(claims, "exp", &exp);
	int has_nbf = numeric_date(claims, "nbf", &nbf);
	if (has_exp < 0 || has_nbf < 0)
		return refuse(err, errlen, "exp or nbf is not a number");
	if (has_exp && !((double)now_s < exp))
		return refuse(err, errlen, "expired (exp)");
	if (has_nbf && (double)now_s < nbf)
		return refuse(err, errlen, "not valid yet (nbf)");

	json_t *claim = json_object_get(claims, "https://mercure.rocks/");
	if (!claim || json_is_null(claim))
		claim = json_object_get(claims, "mercure");
	json_t *publish = NULL, *subscribe = NULL;
	if (claim && !json_is_null(claim)) {
		if (!json_is_object(claim))
			return refuse(err, errlen, "the mercure claim is not an object");
		publish = json_object_get(claim, "publish");
		subscribe = json_object_get(claim, "subscribe");
	}
	size_t bytes = 0;
	if (!list_ok(publish, &bytes) || !list_ok(subscribe, &bytes)) {
		char why[160];
		snprintf(why, sizeof why, "mercure.publish and mercure.subscribe must be "
			 "arrays of at most %d strings of at most %d bytes",
			 MERCURE_MAX_TOPICS, MERCURE_TOPIC_MAX);
		return refuse(err, errlen, why);
	}
	char *at = out->store = bytes ? xmalloc(bytes) : NULL;
	list_copy(publish, &out->publish, &out->npublish, &at);
	list_copy(subscribe, &out->subscribe, &out->nsubscribe, &at);
	if (has_exp) {
		/* Rounded down; exp > now_s here, so above INT64_MIN. */
		out->exp = exp >= 9.2e18 ? INT64_MAX : (int64_t)exp;
		if ((double)out->exp > exp)
			out->exp--;
	}
	return 0;
}

int jwtauth_verify(const struct jwtauth_key *k, const char *token, size_t len,
		   int64_t now_s, struct jwtauth_claims *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!token || len == 0)
		return refuse(err, errlen, "empty");
	if (len > JWTAUTH_TOKEN_MAX) {
		char why[64];
		snprintf(why, sizeof why, "longer than %d bytes", JWTAUTH_TOKEN_MAX);
		return refuse(err, errlen, why);
	}
	const char *d1 = memchr(token, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
		return refuse(err, errlen, "not three parts separated by dots");
	size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
	size_t slen = len - (size_t)(d2 + 1 - token);
	if (slen == 0)
		return refuse(err, errlen, "unsigned (alg none is never accepted)");
	if (hlen == 0 || plen == 0 || !b64url_only(d2 + 1, slen))
		return refuse(err, errlen, "a part is empty or not base64url");

	/* The token, NUL-terminated for libjwt, then room for the decoded
	 * header or payload (shorter than their base64url). */
	char *copy = xmalloc(2 * len + 2);
	memcpy(copy, token, len);
	copy[len] = '\0';
	unsigned char *scratch = (unsigned char *)copy + len + 1;
	json_t *head = NULL, *claims = NULL;
	jwt_t *jwt = NULL;
	int rc = -1;

	head = part_json(token, hlen, scratch);
	if (!head) {
		rc = refuse(err, errlen, "the header is not a base64url JSON object (no "
			    "duplicate keys, no NUL, nesting within limits)");
		goto done;
	}
	/* The key decides the algorithm, never the token: compared before
	 * libjwt, which would verify an HS256 token with the text of a public
	 * key as the secret. RFC 7515 makes alg case-sensitive; libjwt is not. */
	const char *alg = json_string_value(json_object_get(head, "alg"));
	if (!alg || strcmp(alg, jwtauth_alg_name(k->alg)) != 0) {
		char why[96];
		snprintf(why, sizeof why, "alg %.16s%s, the key is for %s", alg ? alg : "missing",
			 alg && strlen(alg) > 16 ? "..." : "", jwtauth_alg_name(k->alg));
		rc = refuse(err, errlen, why);
		goto done;
	}
	claims = part_json(d1 + 1, plen, scratch);
	if (!claims) {
		rc = refuse(err, errlen, "the payload is not a base64url JSON object (no "
			    "duplicate keys, no NUL, nesting within limits)");
		goto done;
	}
	/* libjwt 1.10 verifies the signature with the algorithm of the header
	 * (checked above) and, with a key given, refuses alg none. Its own
	 * parse of what was checked above holds no surprise left. */
	if (jwt_decode(&jwt, copy, k->material, (int)k->len) != 0 || !jwt) {
		rc = refuse(err, errlen, "the signature does not verify (or libjwt "
			    "refused the header: a typ must be JWT)");
		goto done;
	}
	if (jwt_get_alg(jwt) != libjwt_alg(k->alg)) {
		rc = refuse(err, errlen, "libjwt read another alg than the header's");
		goto done;
	}
	rc = read_claims(claims, now_s, out, err, errlen);
done:
	if (rc < 0)
		jwtauth_claims_free(out);
	jwt_free(jwt);
	json_decref(head);
	json_decref(claims);
	free(copy);
	return rc;
}

void jwtauth_claims_free(struct jwtauth_claims *c)
{
	free(c->publish);
	free(c->subscribe);
	free(c->store);
	memset(c, 0, sizeof *c);
}
