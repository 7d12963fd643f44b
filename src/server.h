/* server: the ways the program receives requests: FastCGI on a listening
 * socket (fd 0 from the web server, or one it opened for --listen), every
 * connection read by one event loop that never waits on any one client (a
 * request is served once it has arrived whole, or answered 408 when its
 * body does not arrive within COMET_BODY_TIMEOUT); or one CGI request. */
#ifndef COMET_SERVER_H
#define COMET_SERVER_H

#include "handler.h"

/* Accepts for ever (until the listening socket fails). Returns an exit code. */
int server_fastcgi(struct app *a, int listen_fd);
/* Serves the one CGI request in the environment. Returns an exit code. */
int server_cgi(struct app *a);

/* Blocks SIGTERM, SIGINT and SIGHUP in every thread and starts the thread
 * that takes them: it answers every held request, lets a request in
 * progress (a publish) finish, and exits within about 2 s. Call before
 * any other thread starts. */
int server_signals(struct app *a);

#endif
