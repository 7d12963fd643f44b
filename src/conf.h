/* conf: the program's settings, one table of name, type, default, bounds and
 * help; read from the environment and from the optional COMET_CONFIG file. */
#ifndef COMET_CONF_H
#define COMET_CONF_H

#include <stdbool.h>
#include <stdio.h>

struct conf {
	char *db;
	char *state_dir;
	long timeout, max_timeout;
	long keepalive, stream_max;
	char *publish_key, *token_key;
	long max_message;
	long retain, retain_seconds;
	char *cors_origin;
	long body_timeout, output_max;
	bool sync_full;
	bool publish_loopback;
	long presence_grace;
	char *pusher_app_id, *pusher_key, *pusher_secret;
};

/* Looks a variable up; getenv by default, a table in the tests. */
typedef const char *(*conf_lookup_fn)(const char *name, void *arg);

/* Fills c from defaults, then the COMET_CONFIG file (if lookup gives one),
 * then lookup. Returns 0, or -1 with err naming the variable at fault. */
int conf_load(struct conf *c, conf_lookup_fn lookup, void *arg,
	      char *err, size_t errlen);
void conf_free(struct conf *c);

/* One line per setting: name, default, bounds and help (for --help). */
void conf_print_help(FILE *f);

/* The names in the table, NULL-terminated order; for the docs check. */
const char *conf_name(int i);

#endif
