/* follow: keeps this host's copy of a shared log in step with it. One
 * thread per process waits for the host's follower lock; the process that
 * holds it (the follower) listens to the shared log and copies each new
 * commit, then rings the host's wake-up word so every process reads it. */
#ifndef COMET_FOLLOW_H
#define COMET_FOLLOW_H

#include <stddef.h>

#include "conf.h"
#include "notify.h"

/* Starts the thread for a shared log (once per process); for a log of one
 * host, does nothing. 0, or -1 with err. */
int follow_start(const struct conf *conf, struct notify *n, char *err, size_t errlen);

#endif
