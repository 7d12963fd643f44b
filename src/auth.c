/* auth: publish-side access rule. */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "auth.h"

bool auth_loopback(const char *a)
{
	if (!a)
		return false;
	if (strcmp(a, "::1") == 0)
		return true;
	if (strncasecmp(a, "::ffff:", 7) == 0)
		a += 7;
	if (strncmp(a, "127.", 4) != 0)
		return false;
	/* The rest must look like an IPv4 address: digits and dots only. */
	int dots = 0;
	for (const char *p = a; *p; p++) {
		if (*p == '.')
			dots++;
		else if (*p < '0' || *p > '9')
			return false;
	}
	return dots == 3;
}

bool auth_equal(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	unsigned char diff = na != nb;
	for (size_t i = 0; i < nb; i++)
		diff |= (unsigned char)(b[i] ^ (i < na ? a[i] : 0));
	return diff == 0;
}

int auth_publish(const char *authorization, const char *remote_addr, const char *key,
		 bool loopback)
{
	if (!key)
		return loopback && auth_loopback(remote_addr) ? 0 : 403;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 401;
	const char *given = authorization + 7;
	while (*given == ' ')
		given++;
	return auth_equal(given, key) ? 0 : 401;
}
