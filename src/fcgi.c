/* fcgi: FastCGI records, read incrementally and written. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fcgi.h"

enum {
	T_BEGIN_REQUEST = 1, T_ABORT_REQUEST = 2, T_END_REQUEST = 3, T_PARAMS = 4,
	T_STDIN = 5, T_STDOUT = FCGI_STDOUT_TYPE,
};
#define ROLE_RESPONDER 1

void fcgi_in_init(struct fcgi_in *in, size_t body_max)
{
	memset(in, 0, sizeof *in);
	in->state = FCGI_BEGIN;
	in->body_max = body_max;
}

void fcgi_in_free(struct fcgi_in *in)
{
	if (in->env) {
		for (char **e = in->env; *e; e++)
			free(*e);
		free(in->env);
	}
	buf_free(&in->params);
	buf_free(&in->body);
	in->env = NULL;
}

bool fcgi_in_params_over(const struct fcgi_in *in)
{
	return in->params_over;
}

bool fcgi_in_overflow(const struct fcgi_in *in)
{
	return in->body_seen > in->body_max;
}

static void failed(struct fcgi_in *in, const char *why)
{
	in->state = FCGI_FAILED;
	in->error = why;
}

/* A name or value length: one byte below 128, else four with the top bit. */
static bool nv_len(const unsigned char **p, const unsigned char *end, size_t *len)
{
	if (*p >= end)
		return false;
	if (**p < 128) {
		*len = *(*p)++;
		return true;
	}
	if (end - *p < 4)
		return false;
	*len = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) |
	       ((size_t)(*p)[2] << 8) | (*p)[3];
	*p += 4;
	return true;
}

/* The raw pairs into env; false when they are malformed. */
static bool params_to_env(struct fcgi_in *in)
{
	const unsigned char *p = (const unsigned char *)in->params.p;
	const unsigned char *end = p + in->params.len;
	size_t n = 0, cap = 16;
	char **env = xmalloc(cap * sizeof *env);
	while (p < end) {
		size_t nl, vl;
		if (!nv_len(&p, end, &nl) || !nv_len(&p, end, &vl) ||
		    nl > (size_t)(end - p) || vl > (size_t)(end - p) - nl || nl == 0)
			goto bad;
		if (n + 1 == cap) {
			cap *= 2;
			env = xrealloc(env, cap * sizeof *env);
		}
		char *e = xmalloc(nl + vl + 2);
		memcpy(e, p, nl);
		e[nl] = '=';
		memcpy(e + nl + 1, p + nl, vl);
		e[nl + vl + 1] = '\0';
		/* A NUL inside a name would make it another name. */
		if (memchr(e, '\0', nl)) {
			free(e);
			goto bad;
		}
		env[n++] = e;
		p += nl + vl;
	}
	env[n] = NULL;
	in->env = env;
	buf_free(&in->params);
	return true;
bad:
	env[n] = NULL;
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
	return false;
}

static void record(struct fcgi_in *in, int type, uint16_t id, const char *c, size_t len)
{
	if (id == 0)
		return;		/* management records (GET_VALUES): nothing we need */
	if (in->state == FCGI_BEGIN) {
		if (type != T_BEGIN_REQUEST || len < 8)
			return failed(in, "the first record is not BEGIN_REQUEST");
		if ((((unsigned char)c[0] << 8) | (unsigned char)c[1]) != ROLE_RESPONDER)
			return failed(in, "only the responder role is served");
		in->id = id;
		in->state = FCGI_PARAMS;
		return;
	}
	if (id != in->id)
		return failed(in, "a second request on one connection");
	if (type == T_ABORT_REQUEST) {
		in->state = FCGI_ABORTED;
		return;
	}
	if (in->state == FCGI_PARAMS && type == T_PARAMS) {
		if (len == 0) {
			if (!in->params_over && !params_to_env(in))
				return failed(in, "malformed parameters");
			in->state = FCGI_STDIN;
			return;
		}
		if (in->params_over)
			return;
		if (in->params.len + len > FCGI_PARAMS_MAX) {
			in->params_over = true;
			buf_free(&in->params);
			return;
		}
		buf_add(&in->params, c, len);
		return;
	}
	if (in->state == FCGI_STDIN && type == T_STDIN) {
		if (len == 0) {
			in->state = FCGI_DONE;
			return;
		}
		uint64_t seen = in->body_seen;
		in->body_seen += len;
		if (seen < in->body_max) {
			size_t keep = in->body_max - seen < len ? (size_t)(in->body_max - seen) : len;
			buf_add(&in->body, c, keep);
		}
		return;
	}
	failed(in, "a record out of order");
}

size_t fcgi_in_parse(struct fcgi_in *in, const char *p, size_t n)
{
	size_t used = 0;
	while (in->state != FCGI_DONE && in->state != FCGI_FAILED && in->state != FCGI_ABORTED &&
	       n - used >= FCGI_HEADER_LEN) {
		const unsigned char *h = (const unsigned char *)p + used;
		if (h[0] != 1) {
			failed(in, "not FastCGI version 1");
			break;
		}
		size_t len = ((size_t)h[4] << 8) | h[5];
		size_t total = FCGI_HEADER_LEN + len + h[6];
		if (n - used < total)
			break;
		record(in, h[1], (uint16_t)((h[2] << 8) | h[3]),
		       p + used + FCGI_HEADER_LEN, len);
		used += total;
	}
	return used;
}

const char *fcgi_env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

void fcgi_header(unsigned char *h, int type, uint16_t id, size_t len)
{
	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0;
	h[7] = 0;
}

void fcgi_end(unsigned char *e, uint16_t id)
{
	memset(e, 0, FCGI_END_LEN);
	fcgi_header(e, T_STDOUT, id, 0);
	fcgi_header(e + 8, T_END_REQUEST, id, 8);
}

void fcgi_stdout(struct buf *b, uint16_t id, const char *p, size_t n, bool last)
{
	unsigned char h[FCGI_HEADER_LEN];
	buf_reserve(b, n + (n / FCGI_RECORD_MAX + 1) * FCGI_HEADER_LEN + FCGI_END_LEN);
	while (n > 0) {
		size_t len = n < FCGI_RECORD_MAX ? n : FCGI_RECORD_MAX;
		fcgi_header(h, T_STDOUT, id, len);
		buf_add(b, h, sizeof h);
		buf_add(b, p, len);
		p += len;
		n -= len;
	}
	if (last) {
		unsigned char e[FCGI_END_LEN];
		fcgi_end(e, id);
		buf_add(b, e, sizeof e);
	}
}
