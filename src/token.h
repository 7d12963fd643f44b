/* token: access tokens for private channels (names starting "private-"):
 * "<expiry>.<hex HMAC-SHA256(key, "<channel>:<expiry>")>", expiry in Unix
 * seconds. Pure but for libcrypto: strings and the time in, a verdict out. */
#ifndef COMET_TOKEN_H
#define COMET_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX 85	/* 20 digits, '.', 64 hex digits */

bool token_private(const char *channel);

/* Writes the token for channel until expiry into out (TOKEN_MAX + 1). */
void token_make(const char *key, const char *channel, int64_t expiry, char *out);

/* True when tok grants channel at time now (not expired, right HMAC). */
bool token_valid(const char *key, const char *channel, const char *tok, int64_t now);

#endif
