/* The web server's side of FastCGI, for the unit tests: requests as a web
 * server sends them, and answers read back. */
#ifndef COMET_WIRE_H
#define COMET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

void wire_record(struct buf *b, int type, uint16_t id, const char *content, size_t n);
/* BEGIN_REQUEST (responder), params (name, value, ..., NULL), the body and
 * the empty records that end both. */
void wire_request(struct buf *b, uint16_t id, const char *const *params,
		  const char *body, size_t n);
/* The STDOUT content of the whole records in p into out; *ended once
 * END_REQUEST is among them. Returns the bytes consumed. */
long wire_answer(const char *p, size_t n, struct buf *out, bool *ended);

/* What wire_scan saw, added to on each call: for the tests that count the
 * records that end a request (each must come exactly once). */
struct wire_seen {
	int records;		/* whole records */
	int stdout_ends;	/* empty STDOUT records: the end of the answer */
	int end_requests;	/* END_REQUEST records */
};
/* wire_answer, counting into *seen. */
long wire_scan(const char *p, size_t n, struct buf *out, struct wire_seen *seen);

#endif
