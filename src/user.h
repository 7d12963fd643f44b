/* user: who the program runs as, and the directory it must be able to
 * write, named for messages that tell an admin what to change
 * ("install -d -o www-data /var/lib/comet-fcgi"). */
#ifndef COMET_USER_H
#define COMET_USER_H

#include <stddef.h>
#include <sys/types.h>

/* The name of uid, or its number when it has none, into buf. */
const char *user_name(uid_t uid, char *buf, size_t n);
/* The directory of path ("." for a bare name) into buf. */
const char *user_dir(const char *path, char *buf, size_t n);

#endif
