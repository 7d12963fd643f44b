/* token: HMAC-SHA256 channel tokens. */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "request.h"
#include "token.h"

bool token_private(const char *channel)
{
	return strncmp(channel, "private-", 8) == 0;
}

static void mac_hex(const char *key, const char *channel, const char *expiry, char *hex)
{
	char msg[REQ_CHANNEL_LEN + 32];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int len = snprintf(msg, sizeof msg, "%s:%s", channel, expiry);
	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, (size_t)len,
	     mac, &n);
	for (unsigned i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	hex[2 * n] = '\0';
}

void token_make(const char *key, const char *channel, int64_t expiry, char *out)
{
	char e[24], hex[2 * EVP_MAX_MD_SIZE + 1];
	snprintf(e, sizeof e, "%lld", (long long)expiry);
	mac_hex(key, channel, e, hex);
	snprintf(out, TOKEN_MAX + 1, "%.20s.%.64s", e, hex);
}

bool token_valid(const char *key, const char *channel, const char *tok, int64_t now)
{
	const char *dot = strchr(tok, '.');
	int64_t expiry;
	if (!dot || !request_id(tok, (size_t)(dot - tok), &expiry) || expiry <= now)
		return false;
	char e[24], hex[2 * EVP_MAX_MD_SIZE + 1], given[2 * EVP_MAX_MD_SIZE + 1];
	snprintf(e, sizeof e, "%.*s", (int)(dot - tok), tok);
	mac_hex(key, channel, e, hex);
	/* Hex digits compare case-insensitively; lower-case the given ones. */
	size_t i = 0;
	for (const char *p = dot + 1; *p && i < sizeof given - 1; p++, i++)
		given[i] = (*p >= 'A' && *p <= 'F') ? (char)(*p - 'A' + 'a') : *p;
	given[i] = '\0';
	return auth_equal(given, hex);
}
