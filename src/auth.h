/* auth: who may publish, read channel info, delete and read stats and
 * metrics: the holder of the publish key (Bearer, compared in constant
 * time); with no key configured, nobody, unless loopback clients are let
 * in (COMET_PUBLISH_LOOPBACK=on: unsafe behind a reverse proxy on the same
 * host, where every visitor looks like loopback). Pure: strings in, status
 * out. */
#ifndef COMET_AUTH_H
#define COMET_AUTH_H

#include <stdbool.h>

bool auth_loopback(const char *remote_addr);

/* Returns 0 when allowed, else 401 (missing or wrong key) or 403. */
int auth_publish(const char *authorization, const char *remote_addr, const char *key,
		 bool loopback);

/* Equal strings, in time that depends only on their lengths. */
bool auth_equal(const char *a, const char *b);

#endif
