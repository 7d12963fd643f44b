/* buf: a growable byte buffer and allocation helpers. */
#include "config.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Bytes of large buffers freed or outgrown since buf_give_back last gave
 * memory back. Answers of many sizes, made and freed in a burst, leave the
 * heaps full of holes that stay resident (seen: 22 MB free beside 56 MB in
 * use, under 200 streams that never read); the heaps are kept, their free
 * pages are not. */
#define BIG_BUFFER 65536
#define GIVE_BACK_AFTER (8u << 20)
static size_t big_freed;

static void released(size_t cap)
{
	if (cap >= BIG_BUFFER)
		__atomic_add_fetch(&big_freed, cap, __ATOMIC_RELAXED);
}

bool buf_give_back(void)
{
	if (__atomic_load_n(&big_freed, __ATOMIC_RELAXED) < GIVE_BACK_AFTER)
		return false;
	__atomic_store_n(&big_freed, 0, __ATOMIC_RELAXED);
	malloc_trim(0);
	return true;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("comet-fcgi: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) {
		fputs("comet-fcgi: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs("comet-fcgi: out of memory\n", stderr);
		abort();
	}
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

void buf_free(struct buf *b)
{
	released(b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	released(b->cap);
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *buf_str(struct buf *b)
{
	if (!b->p)
		buf_reserve(b, 0), b->p[0] = '\0';
	return b->p;
}
