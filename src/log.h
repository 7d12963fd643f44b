/* log: one line per event on stderr, which the web server puts in its error
 * log. Requests are named by id; client strings go through log_escape. */
#ifndef COMET_LOG_H
#define COMET_LOG_H

#include <stddef.h>

void log_msg(const char *level, unsigned long id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies at most n-1 bytes' worth of src, printable ASCII only (others as
 * \xNN), always terminated: safe to put in a log line. */
void log_escape(char *dst, size_t n, const char *src);

#endif
