/* conf: the settings table and its loader. Every setting exists once, in
 * `table` below; --help, the README check and the loader all read it. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "conf.h"
#include "log.h"

#ifndef COMET_DEFAULT_CONFIG
#define COMET_DEFAULT_CONFIG "/etc/comet-fcgi/comet-fcgi.conf"
#endif
#ifndef COMET_DEFAULT_DB
#define COMET_DEFAULT_DB "/var/lib/comet-fcgi/comet.db"
#endif
#ifndef COMET_DEFAULT_STATE_DIR
#define COMET_DEFAULT_STATE_DIR "/var/lib/comet-fcgi"
#endif

enum conf_type { CONF_INT, CONF_STR, CONF_BOOL_ENUM };

struct conf_def {
	const char *name;
	enum conf_type type;
	const char *def;	/* NULL: unset */
	long min, max;		/* CONF_INT bounds */
	const char *choices;	/* CONF_BOOL_ENUM: "false-word|true-word" */
	size_t off;
	const char *help;
};

#define OFF(f) offsetof(struct conf, f)

static const struct conf_def table[] = {
	{ "COMET_DB", CONF_STR, COMET_DEFAULT_DB, 0, 0, NULL, OFF(db),
	  "the message log: a SQLite file, or a postgresql:// URI shared by several hosts" },
	{ "COMET_STATE_DIR", CONF_STR, COMET_DEFAULT_STATE_DIR, 0, 0, NULL, OFF(state_dir),
	  "with PostgreSQL, this host's own files (wake-up word, local copy of the log)" },
	{ "COMET_LOG", CONF_STR, "stderr", 0, 0, NULL, OFF(log),
	  "where log lines go: stderr (the web server's error log), syslog, or a file path" },
	{ "COMET_TIMEOUT", CONF_INT, "25", 0, 3600, NULL, OFF(timeout),
	  "seconds a long-poll waits when the request gives no timeout" },
	{ "COMET_MAX_TIMEOUT", CONF_INT, "120", 0, 3600, NULL, OFF(max_timeout),
	  "largest timeout a request may ask for; larger ones are capped" },
	{ "COMET_KEEPALIVE", CONF_INT, "15", 1, 3600, NULL, OFF(keepalive),
	  "seconds between keepalive ping events on an event stream" },
	{ "COMET_STREAM_MAX", CONF_INT, "300", 1, 86400, NULL, OFF(stream_max),
	  "seconds an event stream stays open before the client resumes" },
	{ "COMET_PUBLISH_KEY", CONF_STR, NULL, 0, 0, NULL, OFF(publish_key),
	  "Bearer key for publishing, info, DELETE, stats, metrics; unset: closed" },
	{ "COMET_TOKEN_KEY", CONF_STR, NULL, 0, 0, NULL, OFF(token_key),
	  "HMAC key for private- channel tokens; unset: private channels refused" },
	{ "COMET_MAX_MESSAGE", CONF_INT, "65536", 1, 16777216, NULL, OFF(max_message),
	  "largest message body in bytes" },
	{ "COMET_RETAIN", CONF_INT, "1000", 1, 100000000, NULL, OFF(retain),
	  "messages kept per channel" },
	{ "COMET_RETAIN_SECONDS", CONF_INT, "86400", 1, 3153600000L, NULL, OFF(retain_seconds),
	  "seconds a message is kept" },
	{ "COMET_CORS_ORIGIN", CONF_STR, NULL, 0, 0, NULL, OFF(cors_origin),
	  "origin allowed to subscribe cross-origin; unset: no CORS headers" },
	{ "COMET_PUBLISH_LOOPBACK", CONF_BOOL_ENUM, "off", 0, 0, "off|on", OFF(publish_loopback),
	  "on: loopback clients may publish without a key (unsafe behind a local proxy)" },
	{ "COMET_BODY_TIMEOUT", CONF_INT, "10", 1, 3600, NULL, OFF(body_timeout),
	  "seconds a request body may take to arrive; slower ones are answered 408" },
	{ "COMET_OUTPUT_MAX", CONF_INT, "1048576", 16384, 1073741824, NULL, OFF(output_max),
	  "bytes a subscriber may leave unread before it is disconnected" },
	{ "COMET_SYNC", CONF_BOOL_ENUM, "normal", 0, 0, "normal|full", OFF(sync_full),
	  "normal survives any process crash; full also survives power loss" },
	{ "COMET_PRESENCE_GRACE", CONF_INT, "30", 0, 3600, NULL, OFF(presence_grace),
	  "seconds a presence member stays after its last subscription ends" },
	{ "COMET_PUSHER_APP_ID", CONF_STR, NULL, 0, 0, NULL, OFF(pusher_app_id),
	  "the Pusher HTTP API's app id (with the key and the secret; unset: off)" },
	{ "COMET_PUSHER_KEY", CONF_STR, NULL, 0, 0, NULL, OFF(pusher_key),
	  "the Pusher app key (PUSHER_APP_KEY of a Laravel app)" },
	{ "COMET_PUSHER_SECRET", CONF_STR, NULL, 0, 0, NULL, OFF(pusher_secret),
	  "the Pusher app secret, which signs API requests and channel auth" },
	{ "COMET_MERCURE_JWT_KEY", CONF_STR, NULL, 0, 0, NULL, OFF(mercure_jwt_key),
	  "the Mercure hub's JWT key: an HS256 secret, or a PEM public key file (unset: off)" },
	{ "COMET_MERCURE_ANONYMOUS", CONF_BOOL_ENUM, "off", 0, 0, "off|on", OFF(mercure_anonymous),
	  "on: Mercure subscribers without a JWT get the public updates" },
};

#define NTABLE (sizeof table / sizeof table[0])

/* The settings conf_reread replaces while the program runs: the keys, read
 * only by the request path (handler.c), one thread. A setting another
 * thread reads (the hub's, the commit thread's, the follower's) must not be
 * added here. */
static const char *const live_names[] = { "COMET_PUBLISH_KEY", "COMET_TOKEN_KEY" };

static bool is_live(const struct conf_def *d)
{
	for (size_t i = 0; i < sizeof live_names / sizeof live_names[0]; i++)
		if (strcmp(live_names[i], d->name) == 0)
			return true;
	return false;
}

const char *conf_name(int i)
{
	return i >= 0 && (size_t)i < NTABLE ? table[i].name : NULL;
}

void conf_print_help(FILE *f)
{
	for (size_t i = 0; i < NTABLE; i++) {
		const struct conf_def *d = &table[i];
		fprintf(f, "  %-22s %s\n", d->name, d->help);
		if (d->type == CONF_INT)
			fprintf(f, "  %-22s default %s, from %ld to %ld\n", "",
				d->def, d->min, d->max);
		else if (d->type == CONF_BOOL_ENUM)
			fprintf(f, "  %-22s %s, default %s\n", "", d->choices, d->def);
		else
			fprintf(f, "  %-22s default %s\n", "", d->def ? d->def : "unset");
	}
}

static int set_value(struct conf *c, const struct conf_def *d, const char *v,
		     const char *origin, char *err, size_t errlen)
{
	char *base = (char *)c;
	switch (d->type) {
	case CONF_INT: {
		const char *p = v;
		long n = 0;
		bool ok = *p != '\0';
		for (; *p && ok; p++) {
			if (*p < '0' || *p > '9' || n > (d->max - (*p - '0')) / 10)
				ok = false;
			else
				n = n * 10 + (*p - '0');
		}
		if (!ok || n < d->min || n > d->max) {
			snprintf(err, errlen, "%s%s: '%.40s' is not a whole number from %ld to %ld",
				 d->name, origin, v, d->min, d->max);
			return -1;
		}
		*(long *)(base + d->off) = n;
		return 0;
	}
	case CONF_STR: {
		char **slot = (char **)(base + d->off);
		if (*v == '\0') {
			snprintf(err, errlen, "%s%s: empty value (leave it unset instead)",
				 d->name, origin);
			return -1;
		}
		free(*slot);
		*slot = xstrdup(v);
		return 0;
	}
	case CONF_BOOL_ENUM: {
		const char *bar = strchr(d->choices, '|');
		size_t flen = (size_t)(bar - d->choices);
		bool *slot = (bool *)(base + d->off);
		if (strlen(v) == flen && strncmp(v, d->choices, flen) == 0)
			*slot = false;
		else if (strcmp(v, bar + 1) == 0)
			*slot = true;
		else {
			snprintf(err, errlen, "%s%s: '%.40s' is not one of %s",
				 d->name, origin, v, d->choices);
			return -1;
		}
		return 0;
	}
	}
	return -1;
}

static const struct conf_def *find(const char *name, size_t n)
{
	for (size_t i = 0; i < NTABLE; i++)
		if (strlen(table[i].name) == n && strncmp(table[i].name, name, n) == 0)
			return &table[i];
	return NULL;
}

static void trim(char **s, char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' ||
			   (*e)[-1] == '\r' || (*e)[-1] == '\n'))
		(*e)--;
}

/* "NAME = value" lines; '#' starts a comment line; a value may be quoted. */
static int load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "COMET_CONFIG: cannot open %.200s: %s",
			 path, strerror(errno));
		return -1;
	}
	char line[4096];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		char *s = line, *e = line + strlen(line);
		trim(&s, &e);
		if (s == e || *s == '#')
			continue;
		char *eq = memchr(s, '=', (size_t)(e - s));
		if (!eq) {
			snprintf(err, errlen, "COMET_CONFIG: %.200s:%d: expected NAME = value",
				 path, lineno);
			rc = -1;
			break;
		}
		char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
		trim(&ks, &ke);
		trim(&vs, &ve);
		if (ve - vs >= 2 && (*vs == '"' || *vs == '\'') && ve[-1] == *vs)
			vs++, ve--;
		const struct conf_def *d = find(ks, (size_t)(ke - ks));
		if (!d) {
			snprintf(err, errlen, "COMET_CONFIG: %.200s:%d: unknown setting '%.*s'",
				 path, lineno, (int)(ke - ks > 64 ? 64 : ke - ks), ks);
			rc = -1;
			break;
		}
		*ve = '\0';
		char origin[256];
		snprintf(origin, sizeof origin, " (%.200s:%d)", path, lineno);
		rc = set_value(c, d, vs, origin, err, errlen);
	}
	fclose(f);
	return rc;
}

/* Defaults, then the file (if any), then lookup: c is zeroed first. */
static int load_values(struct conf *c, conf_lookup_fn lookup, void *arg, const char *file,
		       char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < NTABLE; i++)
		if (table[i].def && set_value(c, &table[i], table[i].def, "", err, errlen) < 0)
			return -1;
	if (file && *file && load_file(c, file, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < NTABLE; i++) {
		const char *v = lookup(table[i].name, arg);
		if (v && set_value(c, &table[i], v, "", err, errlen) < 0)
			return -1;
	}
	if (c->timeout > c->max_timeout) {
		snprintf(err, errlen, "COMET_TIMEOUT: %ld is above COMET_MAX_TIMEOUT (%ld)",
			 c->timeout, c->max_timeout);
		return -1;
	}
	if (c->keepalive > c->stream_max) {
		snprintf(err, errlen, "COMET_KEEPALIVE: %ld is above COMET_STREAM_MAX (%ld)",
			 c->keepalive, c->stream_max);
		return -1;
	}
	if (strcmp(c->log, "stderr") != 0 && strcmp(c->log, "syslog") != 0 && c->log[0] != '/') {
		snprintf(err, errlen, "COMET_LOG: '%.40s' is not stderr, syslog or an absolute "
			 "file path", c->log);
		return -1;
	}
	return 0;
}

static struct conf_stamp stamp(const char *path)
{
	struct conf_stamp s = { 0 };
	struct stat st;
	if (stat(path, &st) != 0)
		return s;
	s.exists = true;
	s.dev = (unsigned long long)st.st_dev;
	s.ino = (unsigned long long)st.st_ino;
	s.size = (unsigned long long)st.st_size;
	s.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	s.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	return s;
}

static bool same_stamp(const struct conf_stamp *a, const struct conf_stamp *b)
{
	if (a->exists != b->exists)
		return false;
	return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
			      a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns);
}

int conf_load(struct conf *c, conf_lookup_fn lookup, void *arg,
	      char *err, size_t errlen)
{
	/* The file the package installs (with the keys, which PHP reads from
	 * it too), unless COMET_CONFIG names another or none (""). */
	const char *named = lookup("COMET_CONFIG", arg);
	const char *file = named;
	if (!file && access(COMET_DEFAULT_CONFIG, F_OK) == 0)
		file = COMET_DEFAULT_CONFIG;
	/* Looked at before it is read: a change while it is read is a change. */
	struct conf_stamp was = { 0 };
	const char *watched = named ? (*named ? named : NULL) : COMET_DEFAULT_CONFIG;
	if (watched)
		was = stamp(watched);
	if (load_values(c, lookup, arg, file, err, errlen) < 0)
		return -1;
	if (watched) {
		c->watch.path = xstrdup(watched);
		c->watch.applied = was;
	}
	return 0;
}

static bool same_value(const struct conf *a, const struct conf *b, const struct conf_def *d)
{
	const char *pa = (const char *)a + d->off, *pb = (const char *)b + d->off;
	switch (d->type) {
	case CONF_INT:
		return *(const long *)pa == *(const long *)pb;
	case CONF_BOOL_ENUM:
		return *(const bool *)pa == *(const bool *)pb;
	case CONF_STR: {
		const char *x = *(char *const *)pa, *y = *(char *const *)pb;
		return x == y || (x && y && strcmp(x, y) == 0);
	}
	}
	return false;
}

int conf_reread(struct conf *c, conf_lookup_fn lookup, void *arg,
		int64_t mono_ms, int64_t wall_ms, char *note, size_t notelen)
{
	struct conf_watch *w = &c->watch;
	note[0] = '\0';
	if (!w->path || (w->looked && mono_ms - w->checked_ms < 1000))
		return 0;
	w->looked = true;
	w->checked_ms = mono_ms;
	struct conf_stamp now = stamp(w->path);
	if (same_stamp(&now, &w->applied)) {
		w->has_pending = false;
		return 0;
	}
	/* A file being written (an editor's or a shell's truncate, then
	 * write) must not be taken half-way: only a change that is a second
	 * old, or seen unchanged a second later. */
	bool settled = (w->has_pending && same_stamp(&now, &w->pending)) ||
		       (now.exists && wall_ms - now.mtime_ns / 1000000 >= 1000);
	if (!settled) {
		w->pending = now;
		w->has_pending = true;
		return 0;
	}
	w->has_pending = false;
	w->applied = now;
	bool was_bad = w->bad;
	w->bad = true;		/* until it is read whole */
	if (!now.exists) {
		snprintf(note, notelen, "COMET_CONFIG: %.200s is gone: every setting keeps the "
			 "value it has (read again when the file is back)", w->path);
		return -1;
	}
	struct conf fresh;
	char err[512];
	if (load_values(&fresh, lookup, arg, w->path, err, sizeof err) < 0) {
		conf_free(&fresh);
		snprintf(note, notelen, "%s: the settings file changed and cannot be used; every "
			 "setting keeps the value it has (read again when the file changes)", err);
		return -1;
	}
	struct buf live = BUF_INIT, later = BUF_INIT;
	for (size_t i = 0; i < NTABLE; i++) {
		const struct conf_def *d = &table[i];
		if (same_value(c, &fresh, d))
			continue;
		if (!is_live(d)) {
			buf_printf(&later, "%s%s", later.len ? ", " : "", d->name);
			continue;
		}
		char *base = (char *)c, *fbase = (char *)&fresh;
		switch (d->type) {
		case CONF_STR: {
			/* The key's old text goes now: nobody holds it (the
			 * request path reads keys only while serving). */
			char **slot = (char **)(base + d->off), **from = (char **)(fbase + d->off);
			free(*slot);
			*slot = *from;
			*from = NULL;
			break;
		}
		case CONF_INT:
			*(long *)(base + d->off) = *(long *)(fbase + d->off);
			break;
		case CONF_BOOL_ENUM:
			*(bool *)(base + d->off) = *(bool *)(fbase + d->off);
			break;
		}
		buf_printf(&live, "%s%s", live.len ? ", " : "", d->name);
	}
	conf_free(&fresh);
	if (live.len || later.len)
		snprintf(note, notelen, "settings file %.200s read again:%s%s%s%s%s", w->path,
			 live.len ? " now in effect: " : "", buf_str(&live),
			 live.len && later.len ? ";" : "",
			 later.len ? " changed, in effect at the next start: " : "", buf_str(&later));
	else if (was_bad)
		snprintf(note, notelen, "settings file %.200s read again: usable, nothing changed",
			 w->path);
	w->bad = false;
	buf_free(&live);
	buf_free(&later);
	return 1;
}

static const char *env_lookup(const char *name, void *arg)
{
	return getenv(name);
}

void conf_refresh(struct conf *c)
{
	char note[1024];
	int r = conf_reread(c, env_lookup, NULL, clock_mono_ms(), clock_wall_ms(), note,
			    sizeof note);
	if (r < 0)
		log_msg("error", 0, "%s", note);
	else if (r > 0 && note[0])
		log_msg("notice", 0, "%s", note);
}

void conf_free(struct conf *c)
{
	for (size_t i = 0; i < NTABLE; i++)
		if (table[i].type == CONF_STR) {
			char **slot = (char **)((char *)c + table[i].off);
			free(*slot);
			*slot = NULL;
		}
	free(c->watch.path);
	c->watch.path = NULL;
}
