/* fcgi: the FastCGI wire format, without I/O: an incremental reader of one
 * request's records (bytes in, parameters and body out), and the records
 * an answer is written in. Pure, so that it can be fuzzed.
 *
 * Lifecycle of a reader: FCGI_BEGIN until BEGIN_REQUEST, FCGI_PARAMS until
 * the empty PARAMS record, FCGI_STDIN until the empty STDIN record, then
 * FCGI_DONE; FCGI_FAILED (error says why) or FCGI_ABORTED end it early.
 * Parameters beyond FCGI_PARAMS_MAX are read and dropped, so that the
 * request can still be answered (params_over).
 * Bytes after FCGI_DONE are not consumed. */
#ifndef COMET_FCGI_H
#define COMET_FCGI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define FCGI_HEADER_LEN 8
#define FCGI_RECORD_MAX 65535
/* An empty STDOUT record (the stream's end) and END_REQUEST. */
#define FCGI_END_LEN 24
/* The parameters (request headers and CGI variables) of one request. */
#define FCGI_PARAMS_MAX (256 * 1024)

enum fcgi_state { FCGI_BEGIN, FCGI_PARAMS, FCGI_STDIN, FCGI_DONE, FCGI_FAILED, FCGI_ABORTED };

struct fcgi_in {
	enum fcgi_state state;
	uint16_t id;		/* the request's id, from BEGIN_REQUEST */
	struct buf params;	/* name-value pairs, raw, until the empty record */
	char **env;		/* "NAME=value", NULL-terminated, from FCGI_STDIN on */
	struct buf body;	/* STDIN content, at most body_max bytes of it */
	size_t body_max;
	uint64_t body_seen;	/* STDIN bytes seen, kept or not */
	bool params_over;	/* the parameters passed FCGI_PARAMS_MAX: read and
				 * dropped, the request is to be refused (431) */
	const char *error;	/* FCGI_FAILED: what was wrong, for the log */
};

void fcgi_in_init(struct fcgi_in *in, size_t body_max);
void fcgi_in_free(struct fcgi_in *in);
/* Consumes the whole records at the start of p; returns how many bytes.
 * The rest, an incomplete record, is to be passed again with more. */
size_t fcgi_in_parse(struct fcgi_in *in, const char *p, size_t n);
/* The body was longer than body_max (the excess was dropped). */
bool fcgi_in_overflow(const struct fcgi_in *in);
/* The parameters were longer than FCGI_PARAMS_MAX: env is NULL. */
bool fcgi_in_params_over(const struct fcgi_in *in);

/* The value of NAME in a "NAME=value" list, or NULL. */
const char *fcgi_env_get(char *const *env, const char *name);

void fcgi_header(unsigned char *h, int type, uint16_t id, size_t len);
/* The FCGI_END_LEN bytes that end request id (application status 0). */
void fcgi_end(unsigned char *e, uint16_t id);
/* p as STDOUT records for request id, and with last the end, into b. */
void fcgi_stdout(struct buf *b, uint16_t id, const char *p, size_t n, bool last);

#define FCGI_STDOUT_TYPE 6

#endif
