/* urlenc: application/x-www-form-urlencoded text decoded in place (query
 * strings, form bodies). Pure: no allocation, no state. */
#ifndef COMET_URLENC_H
#define COMET_URLENC_H

#include <stddef.h>

/* Decodes s[0..n) in place: '+' is a space, %XX a byte. Returns the new
 * length (at most n), or -1 for a '%' not followed by two hex digits. */
long urlenc_decode(char *s, size_t n);

#endif
