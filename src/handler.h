/* handler: serves one request: picks the endpoint, checks access, parses
 * (request.c), reads or appends (msglog.c), and answers at once or hands
 * the request to the hub to be held. Logs what goes wrong, once. */
#ifndef COMET_HANDLER_H
#define COMET_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "conn.h"
#include "commit.h"
#include "hub.h"
#include "jwtauth.h"
#include "msglog.h"
#include "notify.h"

struct app {
	struct conf conf;
	struct msglog *log;	/* the accepting thread's connection; NULL until it opens */
	struct notify *notify;
	struct hub *hub;	/* started when the first request is held */
	struct commit *commit;	/* started at the first publish */
	bool threaded;		/* FastCGI: the hub gets a thread; CGI: runs inline */
	bool follows;		/* serving (not the command line): may follow a shared log */
	int64_t started_ms;
	int state;		/* SERVE_IDLE, SERVE_BUSY or SERVE_EXITING (atomic) */
	struct jwtauth_key mercure_key;	/* loaded by handler_keys when configured */
};

enum { SERVE_IDLE, SERVE_BUSY, SERVE_EXITING };

/* Loads the keys the settings name (COMET_MERCURE_JWT_KEY); 0, or -1 with
 * err naming the setting. At start: a bad value stops the program. */
int handler_keys(struct app *a, char *err, size_t errlen);
/* Opens the log and the notify file; 0, or -1 with err. Retried per request. */
int handler_open(struct app *a, char *err, size_t errlen);

/* Serves c; c is ended by the time this returns, or handed to the hub. */
void handler_serve(struct app *a, struct conn *c);
/* Answers c with a JSON error and ends it (a body too slow: 408). */
void handler_refuse(struct app *a, struct conn *c, int status, const char *msg);
/* The longest request body any endpoint reads (longer ones are refused). */
size_t handler_body_max(const struct conf *c);

#endif
