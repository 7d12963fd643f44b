/* user: who the program runs as, named for messages that tell an admin
 * what to change ("chown -R www-data ..."). */
#ifndef COMET_USER_H
#define COMET_USER_H

#include <stddef.h>
#include <sys/types.h>

/* The name of uid, or its number when it has none, into buf. */
const char *user_name(uid_t uid, char *buf, size_t n);

#endif
