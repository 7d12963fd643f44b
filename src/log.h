/* log: one line per event, on stderr by default (which the web server puts
 * in its error log), or to syslog or a file of its own (COMET_LOG).
 * Requests are named by id; client strings go through log_escape. */
#ifndef COMET_LOG_H
#define COMET_LOG_H

#include <stddef.h>

/* Where lines go from now on: "stderr", "syslog" (facility daemon) or an
 * absolute file path, opened for appending (made 0640 when missing; opened
 * again when logrotate moved it away, looked at once a second at most).
 * Call before starting threads. 0, or -1 with err naming COMET_LOG. */
int log_open(const char *where, char *err, size_t errlen);

void log_msg(const char *level, unsigned long id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies at most n-1 bytes' worth of src, printable ASCII only (others as
 * \xNN), always terminated: safe to put in a log line. */
void log_escape(char *dst, size_t n, const char *src);

#endif
