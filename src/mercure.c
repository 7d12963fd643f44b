/* mercure: topic selectors (URI templates compiled to a small automaton),
 * authorization verdicts, the publish form, ids, events and the subscribe
 * query of the Mercure protocol. */
#include "config.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "mercure.h"
#include "urlenc.h"
#include "reply.h"
#include "utf8.h"

/* -- URI templates --------------------------------------------------------
 *
 * A template compiles to steps of a nondeterministic automaton that
 * accepts exactly the strings the hub's regular expression accepts:
 * literal bytes one by one, and per expression
 *
 *	( first? chars ( sep chars ){0,n-1 | any} )?
 *
 * where chars is (class byte | %XX)*, the class depending on the operator
 * (see mercure.h). A match runs every live state at once over the topic's
 * bytes (Thompson's construction), so its cost is the topic's length
 * times the live states, whatever the template. */

enum { OP_BYTE, OP_CLASS, OP_HEX, OP_SPLIT, OP_JMP, OP_MATCH };

/* The classes of an expression's characters. */
enum { CLS_U, CLS_U_NAMED, CLS_UR };

struct op {
	unsigned char code;
	unsigned char arg;	/* OP_BYTE: the byte; OP_CLASS: the class */
	unsigned short x, y;	/* OP_SPLIT: both; OP_JMP: x */
};

struct mercure_prog {
	size_t n;
	struct op op[];
};

/* The steps one chars loop takes, and one further "sep chars". */
#define CHARS_STEPS 8
#define MORE_STEPS (2 + CHARS_STEPS)

struct comp {
	struct op *op;	/* MERCURE_PROG_MAX of them */
	size_t n;	/* counts on past the end: the size the template needs */
};

static void emit(struct comp *c, int code, int arg, size_t x, size_t y)
{
	if (c->n < MERCURE_PROG_MAX)
		c->op[c->n] = (struct op){ (unsigned char)code, (unsigned char)arg,
					   (unsigned short)x, (unsigned short)y };
	c->n++;
}

static void emit_chars(struct comp *c, int cls)
{
	size_t l = c->n;
	emit(c, OP_SPLIT, 0, l + 1, l + CHARS_STEPS);
	emit(c, OP_SPLIT, 0, l + 2, l + 4);
	emit(c, OP_CLASS, cls, 0, 0);
	emit(c, OP_JMP, 0, l, 0);
	emit(c, OP_BYTE, '%', 0, 0);
	emit(c, OP_HEX, 0, 0, 0);
	emit(c, OP_HEX, 0, 0, 0);
	emit(c, OP_JMP, 0, l, 0);
}

struct expr {
	char op;		/* 0 for a simple expression, else + # . / ; ? & */
	size_t nvars;
	bool first_explode, any_explode;
};

static void emit_expr(struct comp *c, const struct expr *e)
{
	char first = 0, sep = ',';
	bool named = false;
	int cls;
	switch (e->op) {
	case '+':
		break;
	case '#':
		first = '#';
		break;
	case '.': case '/':
		first = sep = e->op;
		break;
	case ';':
		first = sep = ';';
		named = true;
		break;
	case '?': case '&':
		first = e->op;
		sep = '&';
		named = true;
		break;
	}
	bool reserved = e->op == '+' || e->op == '#';
	bool more = e->nvars > 1 || e->first_explode;
	bool unbounded = e->any_explode;
	size_t nmore = unbounded ? 1 : e->nvars - 1;
	size_t size = 1 + (first ? 1 : 0) + CHARS_STEPS +
		      (more ? nmore * MORE_STEPS + (unbounded ? 1 : 0) : 0);
	size_t end = c->n + size;

	emit(c, OP_SPLIT, 0, c->n + 1, end);
	if (first)
		emit(c, OP_BYTE, first, 0, 0);
	cls = reserved ? CLS_UR : named || e->first_explode ? CLS_U_NAMED : CLS_U;
	emit_chars(c, cls);
	if (!more)
		return;
	cls = reserved ? CLS_UR : named || e->any_explode ? CLS_U_NAMED : CLS_U;
	for (size_t k = 0; k < nmore; k++) {
		size_t l = c->n;
		emit(c, OP_SPLIT, 0, l + 1, end);
		emit(c, OP_BYTE, sep, 0, 0);
		emit_chars(c, cls);
		if (unbounded)
			emit(c, OP_JMP, 0, l, 0);
	}
}

static bool is_hex(unsigned char b)
{
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

static bool is_alnum(unsigned char b)
{
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

static bool in_class(int cls, unsigned char b)
{
	if (is_alnum(b) || b == '-' || b == '.' || b == '_' || b == '~')
		return true;
	if (b == ',')
		return true;
	if (cls == CLS_U_NAMED)
		return b == '=';
	return cls == CLS_UR && b != 0 && strchr(":/?#[]@!$&'()*+;=", b) != NULL;
}

/* Decodes the UTF-8 character at s (strictly: no overlong form, no
 * surrogate, nothing past U+10FFFF); its length, or 0 when invalid. */
static size_t utf8_char(const unsigned char *s, unsigned long *cp)
{
	size_t n;
	unsigned long c = s[0], min;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, c &= 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, c &= 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, c &= 0x07, min = 0x10000;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* RFC 6570's literals beyond ASCII: ucschar and iprivate. */
static bool literal_wide(unsigned long c)
{
	if (c < 0x10000)
		return (c >= 0xa0 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xf8ff) ||
		       (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xffef);
	return (c & 0xffff) <= 0xfffd && !(c >= 0xe0000 && c < 0xe1000);
}

static bool literal_ascii(unsigned char b)
{
	return b == '!' || b == '#' || b == '$' || (b >= '&' && b <= ';') || b == '=' ||
	       (b >= '?' && b <= '[') || b == ']' || b == '_' || (b >= 'a' && b <= 'z') ||
	       b == '~';
}

static bool varchar(unsigned char b)
{
	return is_alnum(b) || b == '_';
}

/* Parses one expression from just after its '{'; *pos ends after its '}'.
 * False when it is not valid. */
static bool parse_expr(const unsigned char *s, size_t *pos, struct expr *e)
{
	size_t i = *pos;
	*e = (struct expr){ 0 };
	if (s[i] && strchr("+#./;?&", s[i]))
		e->op = (char)s[i++];
	else if (s[i] && strchr("=,!@|", s[i]))
		return false;	/* RFC 6570's operators reserved for later */
	for (;;) {
		/* A variable name: varchars and %XX, with single dots inside. */
		size_t start = i;
		for (;;) {
			if (varchar(s[i])) {
				i++;
			} else if (s[i] == '%' && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
				i += 3;
			} else if (s[i] == '.') {
				if (i == start || s[i - 1] == '.')
					return false;
				i++;
			} else {
				break;
			}
		}
		if (i == start || s[i - 1] == '.')
			return false;
		bool explode = false;
		if (s[i] == '*') {
			explode = true;
			i++;
		} else if (s[i] == ':') {
			/* A prefix length, 1 to 9999, which matching ignores. */
			size_t d = ++i;
			if (s[i] < '1' || s[i] > '9')
				return false;
			while (s[i] >= '0' && s[i] <= '9' && i - d < 4)
				i++;
			if (s[i] >= '0' && s[i] <= '9')
				return false;
		}
		if (e->nvars == 0)
			e->first_explode = explode;
		e->any_explode |= explode;
		e->nvars++;
		if (s[i] == '}') {
			*pos = i + 1;
			return true;
		}
		if (s[i] != ',')
			return false;
		i++;
	}
}

/* Compiles the template t into c; false when t is not a valid template
 * (c->n may then be anything). */
static bool compile_template(const char *t, struct comp *c)
{
	const unsigned char *s = (const unsigned char *)t;
	size_t i = 0;
	while (s[i]) {
		if (s[i] == '{') {
			struct expr e;
			i++;
			if (!parse_expr(s, &i, &e))
				return false;
			emit_expr(c, &e);
		} else if (s[i] == '%') {
			if (!is_hex(s[i + 1]) || !is_hex(s[i + 2]))
				return false;
			for (int k = 0; k < 3; k++)
				emit(c, OP_BYTE, s[i++], 0, 0);
		} else if (s[i] < 0x80) {
			if (!literal_ascii(s[i]))
				return false;
			emit(c, OP_BYTE, s[i++], 0, 0);
		} else {
			unsigned long cp;
			size_t n = utf8_char(s + i, &cp);
			if (n == 0 || !literal_wide(cp))
				return false;
			while (n--)
				emit(c, OP_BYTE, s[i++], 0, 0);
		}
	}
	emit(c, OP_MATCH, 0, 0, 0);
	return true;
}

/* The scratch of one match: two lists of live states, a stack for
 * following the empty moves, and each state's last step seen. */
struct run {
	const struct op *op;
	unsigned short *cur, *next, *stack;
	size_t ncur, nnext;
	unsigned *seen;
	unsigned step;
};

static void add_state(struct run *r, size_t pc)
{
	size_t sp = 0;
	r->stack[sp++] = (unsigned short)pc;
	while (sp > 0) {
		pc = r->stack[--sp];
		if (r->seen[pc] == r->step)
			continue;
		r->seen[pc] = r->step;
		const struct op *o = &r->op[pc];
		if (o->code == OP_JMP) {
			r->stack[sp++] = o->x;
		} else if (o->code == OP_SPLIT) {
			r->stack[sp++] = o->y;
			r->stack[sp++] = o->x;
		} else {
			r->next[r->nnext++] = (unsigned short)pc;
		}
	}
}

/* Small programs run on the stack; 512 states take 6 KB of it. */
#define RUN_STACK_STATES 512

static bool prog_match(const struct mercure_prog *p, const char *topic)
{
	unsigned short small16[4 * RUN_STACK_STATES + 1];
	unsigned small32[RUN_STACK_STATES];
	unsigned short *s16 = small16;
	unsigned *s32 = small32;
	/* Each list holds a state at most once; a state is expanded at most
	 * once per step and pushes at most two: 2n + 1 bounds the stack. */
	if (p->n > RUN_STACK_STATES) {
		s16 = xmalloc((4 * p->n + 1) * sizeof *s16);
		s32 = xmalloc(p->n * sizeof *s32);
	}
	memset(s32, 0, p->n * sizeof *s32);
	struct run r = { p->op, s16, s16 + p->n, s16 + 2 * p->n, 0, 0, s32, 1 };
	add_state(&r, 0);
	for (const unsigned char *b = (const unsigned char *)topic; *b && r.nnext > 0; b++) {
		unsigned short *t = r.cur;
		r.cur = r.next;
		r.ncur = r.nnext;
		r.next = t;
		r.nnext = 0;
		r.step++;
		for (size_t k = 0; k < r.ncur; k++) {
			const struct op *o = &p->op[r.cur[k]];
			if ((o->code == OP_BYTE && o->arg == *b) ||
			    (o->code == OP_CLASS && in_class(o->arg, *b)) ||
			    (o->code == OP_HEX && is_hex(*b)))
				add_state(&r, r.cur[k] + 1u);
		}
	}
	bool match = false;
	for (size_t k = 0; k < r.nnext && !match; k++)
		match = p->op[r.next[k]].code == OP_MATCH;
	if (s16 != small16) {
		free(s16);
		free(s32);
	}
	return match;
}

/* -- Selectors ------------------------------------------------------------ */

int mercure_selector_compile(struct mercure_selector *s, const char *text,
			     char *err, size_t errlen)
{
	*s = (struct mercure_selector){ MERCURE_SEL_EXACT, NULL, NULL };
	size_t len = strlen(text);
	if (len > MERCURE_TOPIC_MAX) {
		snprintf(err, errlen, "a topic selector is longer than %d bytes",
			 MERCURE_TOPIC_MAX);
		return -1;
	}
	if (strcmp(text, "*") == 0) {
		s->kind = MERCURE_SEL_ANY;
	} else if (strchr(text, '{')) {
		/* Without a '{' a valid template is its own literal: the exact
		 * comparison says all. */
		struct comp c = { xmalloc(MERCURE_PROG_MAX * sizeof(struct op)), 0 };
		if (compile_template(text, &c)) {
			if (c.n > MERCURE_PROG_MAX) {
				free(c.op);
				snprintf(err, errlen, "a URI template is too complex to match "
					 "(over %d steps)", MERCURE_PROG_MAX);
				return -1;
			}
			s->prog = xmalloc(sizeof *s->prog + c.n * sizeof(struct op));
			s->prog->n = c.n;
			memcpy(s->prog->op, c.op, c.n * sizeof(struct op));
			s->kind = MERCURE_SEL_TEMPLATE;
		}
		free(c.op);
	}
	s->text = xstrndup(text, len);
	return 0;
}

void mercure_selector_free(struct mercure_selector *s)
{
	free(s->text);
	free(s->prog);
	s->text = NULL;
	s->prog = NULL;
}

bool mercure_selector_match(const struct mercure_selector *s, const char *topic)
{
	if (s->kind == MERCURE_SEL_ANY || strcmp(s->text, topic) == 0)
		return true;
	return s->kind == MERCURE_SEL_TEMPLATE && prog_match(s->prog, topic);
}

bool mercure_match(const char *selector, const char *topic)
{
	struct mercure_selector s;
	char err[128];
	if (mercure_selector_compile(&s, selector, err, sizeof err) < 0)
		return false;
	bool m = mercure_selector_match(&s, topic);
	mercure_selector_free(&s);
	return m;
}

int mercure_selectors_compile(struct mercure_selectors *out, const char *const *texts,
			      size_t n, char *err, size_t errlen)
{
	out->v = NULL;
	out->n = 0;
	if (n > MERCURE_MAX_TOPICS) {
		snprintf(err, errlen, "more than %d topic selectors", MERCURE_MAX_TOPICS);
		return -1;
	}
	if (n == 0)
		return 0;
	out->v = xcalloc(n, sizeof *out->v);
	for (size_t i = 0; i < n; i++) {
		if (mercure_selector_compile(&out->v[i], texts[i], err, errlen) < 0) {
			mercure_selectors_free(out);
			return -1;
		}
		out->n++;
	}
	return 0;
}

void mercure_selectors_free(struct mercure_selectors *s)
{
	for (size_t i = 0; i < s->n; i++)
		mercure_selector_free(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* -- Authorization --------------------------------------------------------- */

static bool any_match(const struct mercure_selectors *sel, const char *const *topics,
		      size_t ntopics)
{
	return mercure_subscribed(sel, topics, ntopics) >= 0;
}

bool mercure_can_publish(const struct mercure_selectors *publish,
			 const char *const *topics, size_t ntopics)
{
	/* No update is without a topic: none at all is refused rather than
	 * allowed by an empty "every". */
	if (!publish || ntopics == 0)
		return false;
	for (size_t t = 0; t < ntopics; t++)
		if (!any_match(publish, &topics[t], 1))
			return false;
	return true;
}

bool mercure_can_receive(const struct mercure_selectors *subscribe,
			 const char *const *topics, size_t ntopics, bool private_update)
{
	return !private_update || (subscribe && any_match(subscribe, topics, ntopics));
}

int mercure_subscribed(const struct mercure_selectors *requested,
		       const char *const *topics, size_t ntopics)
{
	if (!requested)
		return -1;
	for (size_t i = 0; i < requested->n; i++)
		for (size_t t = 0; t < ntopics; t++)
			if (mercure_selector_match(&requested->v[i], topics[t]))
				return (int)i;
	return -1;
}

bool mercure_delivers(const struct mercure_selectors *requested,
		      const struct mercure_selectors *subscribe,
		      const char *const *topics, size_t ntopics, bool private_update)
{
	return mercure_subscribed(requested, topics, ntopics) >= 0 &&
	       mercure_can_receive(subscribe, topics, ntopics, private_update);
}

/* -- Forms ------------------------------------------------------------------ */

/* Decodes s[0..n) in place and NUL-terminates it (s[n] is the copy's own
 * '&' or NUL); its new length, or -1 on a bad %-escape. */
static long form_decode(char *s, size_t n)
{
	long len = urlenc_decode(s, n);
	if (len >= 0)
		s[len] = '\0';
	return len;
}

struct form {
	char *p, *end;	/* what is left of a writable, NUL-terminated copy */
};

/* The next name=value pair, decoded in place: 1, 0 at the end, or -1 for
 * a pair Go's url.ParseQuery refuses (a ';' in it, a bad %-escape). */
static int form_next(struct form *f, char **name, char **value, size_t *vlen)
{
	for (;;) {
		if (f->p >= f->end)
			return 0;
		char *pair = f->p;
		char *amp = memchr(pair, '&', (size_t)(f->end - pair));
		char *stop = amp ? amp : f->end;
		f->p = stop + 1;
		if (stop == pair)
			continue;
		if (memchr(pair, ';', (size_t)(stop - pair)))
			return -1;
		char *eq = memchr(pair, '=', (size_t)(stop - pair));
		char *v = eq ? eq + 1 : stop;
		size_t vraw = (size_t)(stop - v);
		long nl = form_decode(pair, (size_t)((eq ? eq : stop) - pair));
		if (nl < 0)
			return -1;
		long vl;
		if (eq) {
			vl = form_decode(v, vraw);
		} else {
			/* No '=': the value is empty, the name's own NUL. */
			v = pair + nl;
			vl = 0;
		}
		if (vl < 0)
			return -1;
		*name = pair;
		*value = v;
		*vlen = (size_t)vl;
		return 1;
	}
}

static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return status;
}

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* A topic: at most MERCURE_TOPIC_MAX bytes of UTF-8, no NUL. */
static bool topic_ok(const char *v, size_t n)
{
	return n <= MERCURE_TOPIC_MAX && utf8_valid(v, n);
}

/* One more topic of a form: 0, or 400 with err (worded as the Mercure hub
 * words it for a subscription). */
static int add_topic(const char **topics, size_t *n, const char *value, size_t vlen,
		     bool subscription, char *err, size_t errlen)
{
	if (*n == MERCURE_MAX_TOPICS)
		return fail(err, errlen, 400, subscription ? "Too many \"topic\" parameters "
			    "(at most %d)." : "more than %d topics", MERCURE_MAX_TOPICS);
	if (!topic_ok(value, vlen))
		return fail(err, errlen, 400, "topic %zu is not UTF-8 text of at most %d bytes",
			    *n + 1, MERCURE_TOPIC_MAX);
	topics[(*n)++] = value;
	return 0;
}

static bool parse_retry(const char *s, uint64_t *out)
{
	uint64_t r = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (r > (UINT64_MAX - d) / 10)
			return false;
		r = r * 10 + d;
	}
	*out = r;
	return true;
}

int mercure_publish_parse(const char *body, size_t len, struct mercure_update *out,
			  char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->data = "";
	out->store = xmalloc(len + 1);
	memcpy(out->store, body, len);
	out->store[len] = '\0';
	out->topics = xcalloc(MERCURE_MAX_TOPICS, sizeof *out->topics);
	struct form f = { out->store, out->store + len };
	/* id, type and retry as given, with their decoded lengths: a %00
	 * would end them early as C strings. */
	const char *id = NULL, *type = NULL, *retry = NULL;
	size_t id_len = 0, type_len = 0, retry_len = 0;
	bool have_data = false;
	char *name, *value;
	size_t vlen;
	int rc, status = 0;
	while ((rc = form_next(&f, &name, &value, &vlen)) != 0) {
		if (rc < 0) {
			status = fail(err, errlen, 400, "the body is not a form "
				      "(application/x-www-form-urlencoded)");
			goto refused;
		}
		if (strcmp(name, "topic") == 0) {
			status = add_topic(out->topics, &out->ntopics, value, vlen,
					   false, err, errlen);
			if (status)
				goto refused;
		} else if (strcmp(name, "data") == 0 && !have_data) {
			have_data = true;
			out->data = value;
			out->data_len = vlen;
		} else if (strcmp(name, "private") == 0) {
			out->private_update = true;
		} else if (strcmp(name, "id") == 0 && !id) {
			id = value;
			id_len = vlen;
		} else if (strcmp(name, "type") == 0 && !type) {
			type = value;
			type_len = vlen;
		} else if (strcmp(name, "retry") == 0 && !retry) {
			retry = value;
			retry_len = vlen;
		}
	}
	if (out->ntopics == 0) {
		status = fail(err, errlen, 400, "Missing \"topic\" parameter");
		goto refused;
	}
	if (!utf8_valid(out->data, out->data_len)) {
		status = fail(err, errlen, 400, "data is not UTF-8 text (or holds a NUL)");
		goto refused;
	}
	if (id_len > 0) {
		if (id_len > MERCURE_ID_MAX || !utf8_valid(id, id_len) || has_crlf(id)) {
			status = fail(err, errlen, 400, "id must be UTF-8 text of at most %d "
				      "bytes, without CR or LF", MERCURE_ID_MAX);
			goto refused;
		}
		out->id = id;
	}
	if (type_len > 0) {
		if (type_len > MERCURE_TYPE_MAX || !utf8_valid(type, type_len) ||
		    has_crlf(type)) {
			status = fail(err, errlen, 400, "type must be UTF-8 text of at most %d "
				      "bytes, without CR or LF", MERCURE_TYPE_MAX);
			goto refused;
		}
		out->type = type;
	}
	if (retry_len > 0 && (strlen(retry) != retry_len || !parse_retry(retry, &out->retry))) {
		status = fail(err, errlen, 400, "Invalid \"retry\" parameter");
		goto refused;
	}
	for (size_t t = 0; t < out->ntopics; t++) {
		if (strstr(out->topics[t], MERCURE_RESERVED)) {
			status = fail(err, errlen, 403, "topic %zu is in the hub's reserved "
				      "namespace (%s)", t + 1, MERCURE_RESERVED);
			goto refused;
		}
	}
	return 0;
refused:
	mercure_update_free(out);
	return status;
}

void mercure_update_free(struct mercure_update *u)
{
	free(u->topics);
	free(u->store);
	memset(u, 0, sizeof *u);
	u->data = "";
}

int mercure_random_default(void *ctx, unsigned char *out, size_t n)
{
	return n <= (size_t)0x7fffffff && RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}

void mercure_uuid_urn(const unsigned char rnd[16], char out[MERCURE_UUID_URN_LEN + 1])
{
	unsigned char b[16];
	memcpy(b, rnd, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);	/* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	snprintf(out, MERCURE_UUID_URN_LEN + 1,
		 "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

int mercure_assign_id(struct mercure_update *u, mercure_random_fn rnd, void *ctx)
{
	unsigned char r[16];
	if (u->id)
		return 0;
	if (rnd(ctx, r, sizeof r) < 0)
		return -1;
	mercure_uuid_urn(r, u->gen_id);
	u->id = u->gen_id;
	return 0;
}

/* -- Events ------------------------------------------------------------------ */

int mercure_event_render(struct buf *out, const char *id, const char *type,
			 uint64_t retry, const char *data, size_t len)
{
	if ((id && has_crlf(id)) || (type && has_crlf(type)))
		return -1;
	if (type && *type)
		buf_printf(out, "event: %s\n", type);
	if (retry > 0)
		buf_printf(out, "retry: %llu\n", (unsigned long long)retry);
	if (id)
		buf_printf(out, "id: %s\n", id);
	buf_adds(out, "data: ");
	size_t from = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\r' && data[i] != '\n')
			continue;
		buf_add(out, data + from, i - from);
		buf_adds(out, "\ndata: ");
		if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
			i++;
		from = i + 1;
	}
	buf_add(out, data + from, len - from);
	buf_adds(out, "\n\n");
	return 0;
}

/* -- Subscribing -------------------------------------------------------------- */

/* -- Stored updates ------------------------------------------------------- */

void mercure_update_store(const struct mercure_update *u, struct buf *out)
{
	buf_adds(out, "{\"id\":");
	reply_json_string(out, u->id);
	buf_adds(out, ",\"topics\":[");
	for (size_t i = 0; i < u->ntopics; i++) {
		if (i)
			buf_addc(out, ',');
		reply_json_string(out, u->topics[i]);
	}
	buf_adds(out, "],\"data\":");
	/* data may hold NUL-free text of any length: escaped as a string. */
	char *d = xstrndup(u->data, u->data_len);
	reply_json_string(out, d);
	free(d);
	buf_printf(out, ",\"private\":%s,\"type\":", u->private_update ? "true" : "false");
	if (u->type)
		reply_json_string(out, u->type);
	else
		buf_adds(out, "null");
	buf_printf(out, ",\"retry\":%llu}", (unsigned long long)u->retry);
}

void mercure_filter_free(struct mercure_filter *f)
{
	mercure_selectors_free(&f->requested);
	mercure_selectors_free(&f->subscribe);
}

#define NONE ((size_t)-1)

/* The string at p[i] decoded, or NULL (not a string, not text). */
static char *string_at(const char *p, size_t n, size_t i, size_t *len)
{
	if (i == NONE || p[i] != '"')
		return NULL;
	char *s = xmalloc(json_string_room(p, n, i));
	unsigned bad;
	if (!json_string_text(p, n, i, s, len, &bad)) {
		free(s);
		return NULL;
	}
	return s;
}

bool mercure_event_for(const struct mercure_filter *f, const char *msg, size_t len,
		       struct buf *out)
{
	size_t key, val, data = NONE, i = json_ws(msg, len, 0);
	if (i >= len || msg[i] != '{')
		return false;
	struct json_iter it;
	json_iter_init(&it, msg, i);
	while (json_iter_next(&it, msg, len, &key, &val))
		if (json_key_is(msg, len, key, "data"))
			data = val;
	if (data == NONE || msg[data] != '{')
		return false;
	size_t at[6] = { NONE, NONE, NONE, NONE, NONE, NONE };
	static const char *const names[6] = { "id", "topics", "data", "private", "type", "retry" };
	json_iter_init(&it, msg, data);
	while (json_iter_next(&it, msg, len, &key, &val))
		for (int k = 0; k < 6; k++)
			if (json_key_is(msg, len, key, names[k]))
				at[k] = val;
	if (at[1] == NONE || msg[at[1]] != '[')
		return false;
	const char *topics[MERCURE_MAX_TOPICS];
	char *owned[MERCURE_MAX_TOPICS];
	size_t nt = 0, n;
	json_iter_init(&it, msg, at[1]);
	while (json_iter_next(&it, msg, len, &key, &val) && nt < MERCURE_MAX_TOPICS) {
		char *t = string_at(msg, len, val, &n);
		if (t)
			topics[nt] = owned[nt] = t, nt++;
	}
	bool priv = at[3] != NONE && msg[at[3]] == 't';
	bool ok = nt && mercure_delivers(&f->requested, &f->subscribe, topics, nt, priv);
	if (ok) {
		size_t idlen, dlen = 0, tlen;
		char *id = string_at(msg, len, at[0], &idlen);
		char *body = string_at(msg, len, at[2], &dlen);
		char *type = string_at(msg, len, at[4], &tlen);
		uint64_t retry = at[5] != NONE ? strtoull(msg + at[5], NULL, 10) : 0;
		ok = mercure_event_render(out, id, type, retry, body ? body : "", dlen) == 0;
		free(id);
		free(body);
		free(type);
	}
	for (size_t k = 0; k < nt; k++)
		free(owned[k]);
	return ok;
}

int mercure_subscribe_parse(const char *query, const char *last_event_id_header,
			    struct mercure_sub *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	size_t qlen = query ? strlen(query) : 0;
	size_t hlen = last_event_id_header ? strlen(last_event_id_header) : 0;
	/* The query, then a copy of the header, each NUL-terminated. */
	out->store = xmalloc(qlen + hlen + 2);
	if (qlen)
		memcpy(out->store, query, qlen);
	out->store[qlen] = '\0';
	char *header = out->store + qlen + 1;
	if (hlen)
		memcpy(header, last_event_id_header, hlen);
	header[hlen] = '\0';
	out->topics = xcalloc(MERCURE_MAX_TOPICS, sizeof *out->topics);

	struct form f = { out->store, out->store + qlen };
	const char *param_id = NULL;
	char *name, *value;
	size_t vlen;
	int rc, status;
	while ((rc = form_next(&f, &name, &value, &vlen)) != 0) {
		/* r.URL.Query() drops a malformed pair without a word. */
		if (rc < 0)
			continue;
		if (strcmp(name, "topic") == 0) {
			status = add_topic(out->topics, &out->ntopics, value, vlen,
					   true, err, errlen);
			if (status)
				goto refused;
		} else if (strcmp(name, "lastEventID") == 0 && !param_id) {
			param_id = value;
		} else if (strcmp(name, "authorization") == 0) {
			if (out->nauthorization++ == 0)
				out->authorization = value;
		}
	}
	if (out->ntopics == 0) {
		status = fail(err, errlen, 400, "Missing \"topic\" parameter.");
		goto refused;
	}
	/* The header first, when not empty (subscribe.go, retrieveLastEventID). */
	const char *last = *header ? header : param_id && *param_id ? param_id : NULL;
	if (last) {
		size_t n = strlen(last);
		if (n > MERCURE_ID_MAX || !utf8_valid(last, n) || has_crlf(last)) {
			status = fail(err, errlen, 400, "the last event id must be UTF-8 text "
				      "of at most %d bytes", MERCURE_ID_MAX);
			goto refused;
		}
		out->last_event_id = last;
		out->earliest = strcmp(last, MERCURE_EARLIEST) == 0;
	}
	if (mercure_selectors_compile(&out->sel, out->topics, out->ntopics, err, errlen) < 0) {
		status = 400;
		goto refused;
	}
	return 0;
refused:
	mercure_sub_free(out);
	return status;
}

void mercure_sub_free(struct mercure_sub *s)
{
	mercure_selectors_free(&s->sel);
	free(s->topics);
	free(s->store);
	memset(s, 0, sizeof *s);
}

/* -- The JWT's place ------------------------------------------------------------ */

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The value of the cookie named name in a Cookie header, quotes removed;
 * the first when there are several, as Go's Request.Cookie. */
static bool cookie_value(const char *cookies, const char *name, const char **v, size_t *n)
{
	size_t nl = strlen(name);
	const char *p = cookies;
	while (*p) {
		while (is_space(*p) || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		if (!end)
			end = p + strlen(p);
		if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			const char *s = p + nl + 1, *e = end;
			while (e > s && is_space(e[-1]))
				e--;
			if (e - s >= 2 && *s == '"' && e[-1] == '"')
				s++, e--;
			*v = s;
			*n = (size_t)(e - s);
			return true;
		}
		p = end;
	}
	return false;
}

enum mercure_token_src mercure_token_find(const char *authorization, const char *query_token,
					  int nquery, const char *cookies,
					  const char **tok, size_t *len)
{
	*tok = NULL;
	*len = 0;
	if (authorization && *authorization) {
		if (strncasecmp(authorization, "Bearer", 6) != 0 || !is_space(authorization[6]))
			return MERCURE_TOKEN_BAD;
		const char *s = authorization + 6;
		while (is_space(*s))
			s++;
		const char *e = s + strlen(s);
		while (e > s && is_space(e[-1]))
			e--;
		if (e == s)
			return MERCURE_TOKEN_BAD;
		*tok = s;
		*len = (size_t)(e - s);
		return MERCURE_TOKEN_HEADER;
	}
	if (nquery > 0) {
		if (nquery != 1 || !query_token || !*query_token)
			return MERCURE_TOKEN_BAD;
		*tok = query_token;
		*len = strlen(query_token);
		return MERCURE_TOKEN_QUERY;
	}
	if (cookies && cookie_value(cookies, MERCURE_COOKIE, tok, len))
		return *len ? MERCURE_TOKEN_COOKIE : MERCURE_TOKEN_BAD;
	return MERCURE_TOKEN_NONE;
}
