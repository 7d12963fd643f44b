/* trivial-fcgi: the cheapest possible FastCGI responder, the baseline for the
 * publish-rate benchmark. It reads each request's body (as comet-fcgi does)
 * and answers 201 {"id":1} to every POST. A GET is answered 200 with the same
 * body, only so that the harness (tests/harness/server.py), which waits for
 * GET /comet/stats to answer 200, can start it from the shipped lighttpd
 * configuration.
 *
 *   gcc -O2 -o trivial-fcgi trivial-fcgi.c -lfcgi
 *
 * Run by the web server with the listening socket on fd 0 (lighttpd
 * bin-path, spawn-fcgi), like comet-fcgi. */
#include <fcgiapp.h>
#include <string.h>

int main(void)
{
	FCGX_Request r;
	char junk[4096];
	if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&r) >= 0) {
		while (FCGX_GetStr(junk, sizeof junk, r.in) > 0)
			;
		const char *m = FCGX_GetParam("REQUEST_METHOD", r.envp);
		int get = m && strcmp(m, "GET") == 0;
		FCGX_PutS(get ? "Status: 200 OK\r\n" : "Status: 201 Created\r\n", r.out);
		FCGX_PutS("Content-Type: application/json\r\n"
			  "Content-Length: 8\r\n"
			  "\r\n"
			  "{\"id\":1}", r.out);
		FCGX_Finish_r(&r);
	}
	return 0;
}
