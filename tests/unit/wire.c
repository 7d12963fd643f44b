/* The web server's side of FastCGI, for the unit tests. */
#include "config.h"

#include <string.h>

#include "wire.h"

void wire_record(struct buf *b, int type, uint16_t id, const char *content, size_t n)
{
	unsigned char h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8), (unsigned char)id,
			       (unsigned char)(n >> 8), (unsigned char)n, 0, 0 };
	buf_add(b, h, sizeof h);
	if (n)
		buf_add(b, content, n);
}

static void nv_len(struct buf *b, size_t n)
{
	if (n < 128) {
		buf_addc(b, (char)n);
		return;
	}
	unsigned char l[4] = { (unsigned char)(0x80 | (n >> 24)), (unsigned char)(n >> 16),
			       (unsigned char)(n >> 8), (unsigned char)n };
	buf_add(b, l, 4);
}

void wire_request(struct buf *b, uint16_t id, const char *const *params,
		  const char *body, size_t n)
{
	wire_record(b, 1, id, "\0\1\0\0\0\0\0\0", 8);
	struct buf p = BUF_INIT;
	for (int i = 0; params[i]; i += 2) {
		nv_len(&p, strlen(params[i]));
		nv_len(&p, strlen(params[i + 1]));
		buf_adds(&p, params[i]);
		buf_adds(&p, params[i + 1]);
	}
	/* In records of at most 100 bytes, as a web server may split them. */
	for (size_t off = 0; off < p.len; off += 100)
		wire_record(b, 4, id, p.p + off, p.len - off < 100 ? p.len - off : 100);
	wire_record(b, 4, id, NULL, 0);
	for (size_t off = 0; off < n; off += 65535)
		wire_record(b, 5, id, body + off, n - off < 65535 ? n - off : 65535);
	wire_record(b, 5, id, NULL, 0);
	buf_free(&p);
}

long wire_scan(const char *p, size_t n, struct buf *out, struct wire_seen *seen)
{
	size_t used = 0;
	while (n - used >= 8) {
		const unsigned char *h = (const unsigned char *)p + used;
		size_t len = ((size_t)h[4] << 8) | h[5], total = 8 + len + h[6];
		if (n - used < total)
			break;
		seen->records++;
		if (h[1] == 6 && len)
			buf_add(out, p + used + 8, len);
		else if (h[1] == 6)
			seen->stdout_ends++;
		else if (h[1] == 3)
			seen->end_requests++;
		used += total;
	}
	return (long)used;
}

long wire_answer(const char *p, size_t n, struct buf *out, bool *ended)
{
	struct wire_seen seen = { 0, 0, 0 };
	long used = wire_scan(p, n, out, &seen);
	if (seen.end_requests)
		*ended = true;
	return used;
}
