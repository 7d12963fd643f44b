/* server: accept loops. */
#include "config.h"

#include <fcgiapp.h>
#include <stdlib.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "server.h"

extern char **environ;

int server_fastcgi(struct app *a, int listen_fd)
{
	a->threaded = true;
	for (unsigned long id = 1;; id++) {
		/* A fresh request per connection: a held one stays parked in the
		 * hub while this thread accepts the next. */
		FCGX_Request *r = xmalloc(sizeof *r);
		if (FCGX_InitRequest(r, listen_fd, 0) != 0) {
			free(r);
			log_msg("error", 0, "FCGX_InitRequest failed");
			return 1;
		}
		int rc = FCGX_Accept_r(r);
		if (rc < 0) {
			free(r);
			log_msg("notice", 0, "accept ended (%d): exiting", rc);
			return 0;
		}
		handler_serve(a, conn_fcgx(r, id));
	}
}

int server_cgi(struct app *a)
{
	a->threaded = false;
	handler_serve(a, conn_cgi(environ, 1));
	return 0;
}
