/* auth: who may publish, read channel info, delete and read stats: the
 * holder of the publish key (Bearer, compared in constant time), or, when no
 * key is configured, loopback clients only. Pure: strings in, status out. */
#ifndef COMET_AUTH_H
#define COMET_AUTH_H

#include <stdbool.h>

bool auth_loopback(const char *remote_addr);

/* Returns 0 when allowed, else 401 (missing or wrong key) or 403. */
int auth_publish(const char *authorization, const char *remote_addr, const char *key);

/* Equal strings, in time that depends only on their lengths. */
bool auth_equal(const char *a, const char *b);

#endif
