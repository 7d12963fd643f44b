/* comet-fcgi: Comet (long-poll and streaming server push) as a FastCGI or
 * CGI application over a SQLite message log. Command line and start-up. */
#include "config.h"

#include <fcgiapp.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "commit.h"
#include "conf.h"
#include "handler.h"
#include "log.h"
#include "msglog.h"
#include "notify.h"
#include "request.h"
#include "server.h"
#include "user.h"

static void usage(FILE *f)
{
	fputs("Usage: comet-fcgi                    FastCGI (listen socket on fd 0) or CGI\n"
	      "       comet-fcgi --listen ADDR      FastCGI on HOST:PORT, :PORT or a socket path\n"
	      "       comet-fcgi publish [--type TYPE] CHANNEL [DATA]\n"
	      "                                     append a message (DATA or stdin) and wake\n"
	      "                                     subscribers; prints {\"id\",\"channel\",\"time\"}\n"
	      "       comet-fcgi --help | --version\n"
	      "\n"
	      "Endpoints (last path segment): sub, pub, stats. See comet-fcgi(8).\n"
	      "\n"
	      "Environment (also NAME = value lines in the file named by COMET_CONFIG):\n", f);
	conf_print_help(f);
}

static const char *env_lookup(const char *name, void *arg)
{
	return getenv(name);
}

/* A publish run as another user than the one whose database it is would
 * leave files (-wal, -shm, -notify) that user cannot open, and lock the web
 * server out: refused, naming who to run it as. */
static int check_owner(const char *db, char *err, size_t errlen)
{
	char dir[4096], owner[64], me[64];
	struct stat st;
	user_dir(db, dir, sizeof dir);
	/* The file's owner, or for a new file the directory's (not a shared
	 * sticky one like /tmp, where anyone makes files of their own). */
	if (stat(db, &st) != 0 && (stat(dir, &st) != 0 || (st.st_mode & S_ISVTX)))
		return 0;
	if (st.st_uid == geteuid())
		return 0;
	user_name(st.st_uid, owner, sizeof owner);
	user_name(geteuid(), me, sizeof me);
	if (st.st_uid == 0)
		/* Never "run it as root": the log is root's because the web
		 * server ran the program as root, and that is what to fix. */
		snprintf(err, errlen, "%.200s belongs to root, and this runs as %s: the web server ran "
			 "comet-fcgi as root, which it should not. Run the web server's comet-fcgi "
			 "as its user (server.username, User=), give it the log's directory "
			 "(sudo chown -R %s: %.200s), then publish as that user: sudo -u %s "
			 "comet-fcgi publish ...", db, me, me, dir, me);
	else
		snprintf(err, errlen, "%s belongs to %s, and this runs as %s: files made here now "
			 "would lock %s out. Run it as its owner: sudo -u %s comet-fcgi publish ...",
			 db, owner, me, owner, owner);
	return -1;
}

/* The command line's answer: the acknowledgement on stdout, or why not. */
static void cli_done(struct commit_job *job, int status, const char *body, size_t len)
{
	int *rc = job->arg;
	if (status < 300) {
		printf("%.*s\n", (int)len, body);
		*rc = 0;
	} else {
		fprintf(stderr, "comet-fcgi: %s\n", body);
	}
}

static int cli_publish(struct app *a, int argc, char **argv)
{
	char err[1200], local[4096];
	const char *ctype = "text/plain";
	int i = 0;
	if (i + 1 < argc && strcmp(argv[i], "--type") == 0) {
		ctype = argv[i + 1];
		i += 2;
	}
	if (i >= argc || argc - i > 2) {
		usage(stderr);
		return 2;
	}
	const char *chan = argv[i];
	if (!request_channel_valid(chan, strlen(chan))) {
		fprintf(stderr, "comet-fcgi: a channel name is 1 to 128 of A-Z a-z 0-9 _ - . : @\n");
		return 2;
	}
	struct buf data = BUF_INIT;
	if (i + 1 < argc) {
		buf_adds(&data, argv[i + 1]);
	} else {
		char chunk[65536];
		size_t n;
		while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
			buf_add(&data, chunk, n);
	}
	char type[REQ_TYPE_LEN + 1];
	bool charset_ok;
	struct req_error e;
	int rc = 1;
	struct commit *c;
	if (request_media_type(ctype, type, &charset_ok, &e) < 0 || !charset_ok) {
		fprintf(stderr, "comet-fcgi: --type: %s\n", charset_ok ? e.msg : "UTF-8 only");
	} else if (request_message(chan, type, data.p ? data.p : "", data.len,
				   a->conf.max_message, &e) < 0) {
		if (e.status == 413)
			fprintf(stderr, "comet-fcgi: message too large (COMET_MAX_MESSAGE is %ld)\n",
				a->conf.max_message);
		else
			fprintf(stderr, "comet-fcgi: %s\n", e.msg);
	} else if (check_owner(msglog_local_path(a->conf.db, a->conf.state_dir, local,
							   sizeof local), err, sizeof err) < 0 ||
		   handler_open(a, err, sizeof err) < 0 ||
		   commit_start(&c, &a->conf, a->notify, NULL, false, err, sizeof err) < 0) {
		fprintf(stderr, "comet-fcgi: %s\n", err);
	} else {
		/* The same write path as an HTTP publish, run here at once. */
		struct commit_job *job = xcalloc(1, sizeof *job);
		snprintf(job->chan, sizeof job->chan, "%s", chan);
		snprintf(job->type, sizeof job->type, "%s", type);
		job->body = data;
		data = (struct buf)BUF_INIT;
		job->one = (struct msglog_msg){ job->chan, job->type, job->body.p ? job->body.p : "",
						 job->body.len, NULL };
		job->msg = &job->one;
		job->n = 1;
		job->done = cli_done;
		job->arg = &rc;
		commit_submit(c, job);
		commit_close(c);
	}
	buf_free(&data);
	return rc;
}

int main(int argc, char **argv)
{
	static struct app a;
	char err[512];

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("comet-fcgi %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (conf_load(&a.conf, env_lookup, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "comet-fcgi: %s\n", err);
		return 2;
	}
	if (handler_keys(&a, err, sizeof err) < 0) {
		fprintf(stderr, "comet-fcgi: %s\n", err);
		return 2;
	}
	/* Memory freed is kept for reuse, not handed back per request: each
	 * munmap, or madvise of a thread's heap shrinking, stops the CPUs of
	 * every other thread (a TLB shootdown). With 8,000 subscribers held,
	 * glibc's defaults shrank a heap ~150 times a second under publishing
	 * (tests/bench/results/2026-12-02-trim.md). Buffers up to 32 MiB come
	 * from the heaps; a heap gives back what is free at its top beyond
	 * 8 MiB, after a burst. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	a.started_ms = clock_wall_ms();
	/* A client that went away must cost an EPIPE, never the process. */
	signal(SIGPIPE, SIG_IGN);

	/* The command line tells its own user, on its own stderr. */
	if (argc > 1 && strcmp(argv[1], "publish") == 0)
		return cli_publish(&a, argc - 2, argv + 2);
	if (log_open(a.conf.log, err, sizeof err) < 0) {
		fprintf(stderr, "comet-fcgi: %s\n", err);
		return 2;
	}

	/* Before FCGX_Init, which then leaves SIGTERM alone, and before any
	 * other thread, so that every thread has these signals blocked. */
	if (server_signals(&a) < 0) {
		fprintf(stderr, "comet-fcgi: cannot set up signal handling\n");
		return 1;
	}
	if (FCGX_Init() != 0) {
		fprintf(stderr, "comet-fcgi: FCGX_Init failed\n");
		return 1;
	}
	int listen_fd = 0;
	if (argc > 1 && strcmp(argv[1], "--listen") == 0 && argc == 3) {
		/* Room for the herd of re-subscribes a fan-out brings (the
		 * kernel caps it at net.core.somaxconn; see README). */
		listen_fd = FCGX_OpenSocket(argv[2], 65535);
		if (listen_fd < 0) {
			fprintf(stderr, "comet-fcgi: cannot listen on %s\n", argv[2]);
			return 1;
		}
	} else if (argc > 1) {
		usage(stderr);
		return 2;
	} else if (FCGX_IsCGI()) {
		if (!getenv("GATEWAY_INTERFACE") && !getenv("REQUEST_METHOD")) {
			fputs("comet-fcgi: not started by a web server; see --help\n", stderr);
			return 2;
		}
		/* Open early so a CGI request answers 503 with the reason logged. */
		if (handler_open(&a, err, sizeof err) < 0)
			log_msg("error", 0, "%s", err);
		return server_cgi(&a);
	}
	if (handler_open(&a, err, sizeof err) < 0)
		log_msg("error", 0, "%s (will retry per request)", err);
	return server_fastcgi(&a, listen_fd);
}
