/* log: error-log lines, to stderr (default), syslog or a file (COMET_LOG). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

enum { TO_STDERR, TO_SYSLOG, TO_FILE };

/* Set once by log_open before other threads start; the file's descriptor
 * and its rotation check change under mu. */
static int dest = TO_STDERR;
static char path[4096];
static int fd = -1;
static int64_t checked_ms;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int open_file(void)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open(const char *where, char *err, size_t errlen)
{
	if (fd >= 0) {
		close(fd);
		fd = -1;
	}
	if (!where || strcmp(where, "stderr") == 0) {
		dest = TO_STDERR;
		return 0;
	}
	if (strcmp(where, "syslog") == 0) {
		openlog("comet-fcgi", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		dest = TO_SYSLOG;
		return 0;
	}
	if (strlen(where) >= sizeof path) {
		snprintf(err, errlen, "COMET_LOG: the path is too long");
		return -1;
	}
	snprintf(path, sizeof path, "%s", where);
	int f = open_file();
	if (f < 0) {
		snprintf(err, errlen, "COMET_LOG: cannot open %.200s for appending: %s (make it, or "
			 "its directory, writable by the user the program runs as)", where,
			 strerror(errno));
		return -1;
	}
	fd = f;
	checked_ms = clock_mono_ms();
	dest = TO_FILE;
	return 0;
}

/* logrotate moved the file away (or removed it): write to a new one at the
 * path. Looked at no more than once a second; under mu. */
static void follow_rotation(void)
{
	int64_t now = clock_mono_ms();
	if (now - checked_ms < 1000)
		return;
	checked_ms = now;
	struct stat a, b;
	if (stat(path, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		return;
	int f = open_file();
	if (f < 0)
		return;		/* keep writing where we can */
	close(fd);
	fd = f;
}

static int priority(const char *level)
{
	if (strcmp(level, "error") == 0)
		return LOG_ERR;
	if (strcmp(level, "warning") == 0)
		return LOG_WARNING;
	if (strcmp(level, "notice") == 0)
		return LOG_NOTICE;
	return LOG_INFO;
}

void log_msg(const char *level, unsigned long id, const char *fmt, ...)
{
	char line[1024];
	int n = 0;
	if (dest == TO_FILE) {
		/* Nobody stamps the lines for us here (the web servers' error
		 * logs and syslog do): local time, to the millisecond. */
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = (int)strftime(line, 64, "%Y-%m-%d %H:%M:%S", &tm);
		n += snprintf(line + n, sizeof line - (size_t)n, ".%03ld ", ts.tv_nsec / 1000000);
	}
	int head = n;		/* syslog names the program and pid itself */
	n += id ? snprintf(line + n, sizeof line - (size_t)n, "comet-fcgi[%d]: %s: request %lu: ",
			   (int)getpid(), level, id)
		: snprintf(line + n, sizeof line - (size_t)n, "comet-fcgi[%d]: %s: ",
			   (int)getpid(), level);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (dest == TO_SYSLOG) {
		const char *msg = strchr(line + head, ' ');
		syslog(priority(level), "%s", msg ? msg + 1 : line);
		return;
	}
	/* One write per line, so lines of concurrent processes do not mix. */
	size_t len = strlen(line);
	line[len++] = '\n';
	if (dest == TO_FILE) {
		pthread_mutex_lock(&mu);
		follow_rotation();
		ssize_t w = write(fd, line, len);
		pthread_mutex_unlock(&mu);
		if (w >= 0)
			return;
		/* A full disk or the like: the line goes where it would have
		 * gone without COMET_LOG rather than nowhere. */
	}
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

void log_escape(char *dst, size_t n, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (!n)
		return;
	for (; src && *src && o + 5 < n; src++) {
		unsigned char c = (unsigned char)*src;
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
}
