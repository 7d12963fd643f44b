/* utf8: strict UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF) for message bodies, which are stored as text. */
#ifndef COMET_UTF8_H
#define COMET_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..n) is valid UTF-8 and holds no NUL byte. */
bool utf8_valid(const char *s, size_t n);

#endif
