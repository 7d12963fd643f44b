/* log: error-log lines. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

void log_msg(const char *level, unsigned long id, const char *fmt, ...)
{
	char line[1024];
	int n = id ? snprintf(line, sizeof line, "comet-fcgi[%d]: %s: request %lu: ",
			      (int)getpid(), level, id)
		   : snprintf(line, sizeof line, "comet-fcgi[%d]: %s: ", (int)getpid(), level);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* One write per line, so lines of concurrent processes do not mix. */
	size_t len = 0;
	while (line[len])
		len++;
	line[len++] = '\n';
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
