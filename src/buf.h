/* buf: a growable byte buffer, used to build whole answers before any byte
 * of them is written, so that an error never leaves a partial write. */
#ifndef COMET_BUF_H
#define COMET_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *p;
	size_t len, cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Always NUL-terminated after any call above (the NUL is not counted). */
const char *buf_str(struct buf *b);
/* Gives the free pages of the heaps back to the system (malloc_trim) once
 * 8 MiB of large buffers have been freed since it last did; true if it did.
 * The hub calls it, between answers: each time costs every thread a TLB
 * flush, so never per request but per 8 MiB of large answers. */
bool buf_give_back(void);

/* Allocation that never returns NULL: out of memory is fatal, as in most
 * servers, since no request can be answered correctly without memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
