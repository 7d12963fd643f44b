/* conf: the program's settings, one table of name, type, default, bounds and
 * help; read from the environment and from the optional COMET_CONFIG file. */
#ifndef COMET_CONF_H
#define COMET_CONF_H

#include <stdbool.h>
#include <stdint.h>
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
	char *mercure_jwt_key;
	bool mercure_anonymous;
	char *log;		/* COMET_LOG: "stderr", "syslog" or a file path */

	/* The settings file, for conf_reread: its path (COMET_CONFIG's, or the
	 * default one even while it does not exist; NULL with COMET_CONFIG=""),
	 * and what stat() said of it when it was last read and last looked at. */
	struct conf_watch {
		char *path;
		bool looked;		/* checked_ms is set */
		int64_t checked_ms;	/* monotonic time of the last stat */
		struct conf_stamp {
			bool exists;
			unsigned long long dev, ino, size;
			int64_t mtime_ns, ctime_ns;
		} applied, pending;	/* read last; changed, not read yet */
		bool has_pending;
		bool bad;		/* the last read failed (said once) */
	} watch;
};

/* Looks a variable up; getenv by default, a table in the tests. */
typedef const char *(*conf_lookup_fn)(const char *name, void *arg);

/* Fills c from defaults, then the COMET_CONFIG file (if lookup gives one),
 * then lookup. Returns 0, or -1 with err naming the variable at fault. */
int conf_load(struct conf *c, conf_lookup_fn lookup, void *arg,
	      char *err, size_t errlen);
void conf_free(struct conf *c);

/* The settings that take effect without a restart: the keys
 * (COMET_PUBLISH_KEY, COMET_TOKEN_KEY). When the settings file changed
 * (stat() looked at no more than once a second: mono_ms), and the change
 * is complete (its mtime at least 1 s before wall_ms, or the same change
 * seen a second later), the file is read again with the same precedence
 * (defaults, file, environment) and those settings are replaced; every
 * other setting keeps its value until the next start.
 *   0: nothing to do;
 *   1: re-read; note says what changed (keys by name only, and the
 *      settings that differ now but wait for a restart), or is empty;
 *  -1: the new file is bad (or gone): every setting keeps its value and
 *      note says why. Said once per change of the file, so a caller may
 *      log every -1.
 * Not thread-safe: call it from the one thread that reads the keys (the
 * request path), which must not hold a key's pointer across calls. */
int conf_reread(struct conf *c, conf_lookup_fn lookup, void *arg,
		int64_t mono_ms, int64_t wall_ms, char *note, size_t notelen);
/* conf_reread with the environment and the clocks; logs what it says. */
void conf_refresh(struct conf *c);

/* One line per setting: name, default, bounds and help (for --help). */
void conf_print_help(FILE *f);

/* The names in the table, NULL-terminated order; for the docs check. */
const char *conf_name(int i);

#endif
