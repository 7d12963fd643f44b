/* jwtauth: verification of the JWTs of the Mercure protocol (HS256 with a
 * secret, RS256 or ES256 with a PEM public key) by libjwt and jansson, and
 * the reading of their "mercure" claim. No logging; no I/O but the read
 * of a key file by jwtauth_key_load.
 *
 * (Not "jwt.h": that is libjwt's header, which a file of ours by the same
 * name would hide from every file compiled with -Isrc, the unit tests'.)
 *
 * A token is refused, before any parsing, when longer than
 * JWTAUTH_TOKEN_MAX or not three base64url parts (no padding, nothing
 * else: libjwt's own decoder stops quietly at the first foreign character,
 * so a valid RS256 or ES256 token with "!", "=" or "@@@@" appended passes
 * it, as tested); then when its header or payload
 * is not JSON, nests deeper than JWTAUTH_MAX_DEPTH, holds a NUL or a
 * duplicate key; when its signature does not verify with the key; when its
 * alg is not the key's (so neither "none" nor an HS256 token keyed with the
 * text of the RSA public key passes: libjwt 1.10 takes the algorithm from
 * the token's header); when exp is past (valid while now < exp, as the hub's
 * golang-jwt has it) or nbf is to come (valid from now >= nbf), either one
 * not a number; when its claim is not of the protocol's shape or has more
 * than MERCURE_MAX_TOPICS selectors in a list or one longer than
 * MERCURE_TOPIC_MAX. The audience, issuer and typ (beyond libjwt's own
 * check that typ, when present, is "JWT") are not checked, as the hub
 * 0.x does not.
 *
 * Why the nesting scan: libjwt 1.10 parses header and payload with
 * jansson, which recurses up to its limit of 2048 levels: measured here,
 * parsing and freeing that deep take 128 to 256 KB of stack, and
 * jwt_get_grants_json's re-serialisation some 300 bytes a level (a
 * 256 KB thread, the hub's, dies below 1000 levels), all from a token of
 * 3 KB. With the scan first, a bomb costs a pass over at most 8 KB, and
 * jwt_get_grants_json is not used; jwtauth_verify runs in a 64 KB stack
 * (tested).
 * HS256's signature comparison is libjwt's: constant-time only from
 * Debian's 1.10.2-1+deb12u1 (CVE-2024-25189).
 *
 * The claim (authorization.go): "mercure": {"publish": [selectors],
 * "subscribe": [selectors], "payload": any}, or the same under
 * "https://mercure.rocks/", which then wins. An absent claim or list, or a
 * null one, is an empty list; payload is not kept (it only serves the
 * subscription events this hub does not publish).
 */
#ifndef COMET_JWTAUTH_H
#define COMET_JWTAUTH_H

#include <stddef.h>
#include <stdint.h>

#define JWTAUTH_TOKEN_MAX 8192	/* bytes of a compact JWS */
#define JWTAUTH_MAX_DEPTH 32	/* nesting of arrays and objects in header and payload */
/* RFC 7518 3.2: an HS256 key MUST have at least the hash's 256 bits (the
 * hub's documentation says so too, docs/UPGRADE.md). */
#define JWTAUTH_SECRET_MIN 32
#define JWTAUTH_RSA_MIN_BITS 2048
#define JWTAUTH_KEY_FILE_MAX 65536

enum jwtauth_alg { JWTAUTH_HS256 = 1, JWTAUTH_RS256, JWTAUTH_ES256 };

struct jwtauth_key {
	enum jwtauth_alg alg;
	unsigned char *material;	/* the secret, or the public key as PEM; NUL after len */
	size_t len;
};

/* From the COMET_MERCURE_JWT_KEY setting: an absolute path (starting
 * with '/') names a PEM public key file, and PEM text itself ("-----BEGIN")
 * is taken too: an RSA key of at least 2048 bits selects RS256, an EC key
 * on P-256 ES256, anything else is refused. Any other value is the HS256
 * secret, at least JWTAUTH_SECRET_MIN bytes. Returns 0, or -1 with err
 * (for a message naming the setting). */
int jwtauth_key_load(struct jwtauth_key *k, const char *setting, char *err, size_t errlen);
void jwtauth_key_free(struct jwtauth_key *k);
const char *jwtauth_alg_name(enum jwtauth_alg alg);

struct jwtauth_claims {
	const char **publish;	/* mercure.publish, npublish selectors */
	size_t npublish;
	const char **subscribe;	/* mercure.subscribe */
	size_t nsubscribe;
	/* 0 without exp; else exp rounded down to the second: a subscription
	 * on this token ends then (the protocol: "MUST be closed"). */
	int64_t exp;
	char *store;		/* the strings */
};

/* Verifies token[0..len) at time now_s (Unix seconds). Returns 0 with
 * out filled (jwtauth_claims_free it), or -1 with err, out empty: the
 * request is then answered 401. */
int jwtauth_verify(const struct jwtauth_key *k, const char *token, size_t len,
		   int64_t now_s, struct jwtauth_claims *out, char *err, size_t errlen);
void jwtauth_claims_free(struct jwtauth_claims *c);

#endif
