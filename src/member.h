/* member: who a presence subscription is. A member is an id and its info
 * (JSON), from a comet-fcgi presence token
 * "<expiry>.<member>.<hex HMAC-SHA256(token key, "<channel>:<expiry>:<member>")>"
 * whose <member> is base64url (no padding) of {"id": string|number,
 * "info": any?}, or from a Pusher channel_data {"user_id", "user_info"?}
 * (pusher.c checks its auth string). Pure but for libcrypto. */
#ifndef COMET_MEMBER_H
#define COMET_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBER_ID_MAX 128	/* characters (code points) of an id */
#define MEMBER_JSON_MAX 1024	/* bytes of the member's JSON */
/* A presence token: expiry, base64url of MEMBER_JSON_MAX bytes, hex. */
#define MEMBER_TOKEN_MAX (20 + 1 + (MEMBER_JSON_MAX * 4 + 2) / 3 + 1 + 64)

struct member {
	char *id;	/* a string's text, or a number's JSON text as written */
	char *info;	/* the info's JSON text as written; "null" when absent */
};

bool member_presence_channel(const char *channel);

/* The member of the object json[0..len) (at most MEMBER_JSON_MAX bytes of
 * UTF-8 JSON) with keys id_key and info_key. Returns 0, or -1 and err. */
int member_parse(const char *json, size_t len, const char *id_key, const char *info_key,
		 struct member *out, char *err, size_t errlen);
void member_free(struct member *m);

/* The member a presence token grants channel at now (Unix seconds): 0, or
 * -1 (not a presence token for channel, expired, wrong HMAC, bad member). */
int member_from_token(const char *key, const char *channel, const char *tok, int64_t now,
		      struct member *out);
/* A presence token for member_json (tests, and what comet.php makes). */
void member_make_token(const char *key, const char *channel, int64_t expiry,
		       const char *member_json, char *out, size_t outlen);

#endif
