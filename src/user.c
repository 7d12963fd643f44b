/* user: user names and directories for messages. */
#include "config.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "user.h"

const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd pw, *found = NULL;
	char scratch[1024];
	if (getpwuid_r(uid, &pw, scratch, sizeof scratch, &found) == 0 && found)
		snprintf(buf, n, "%s", pw.pw_name);
	else
		snprintf(buf, n, "%u", (unsigned)uid);
	return buf;
}

const char *user_dir(const char *path, char *buf, size_t n)
{
	snprintf(buf, n, "%s", path);
	char *slash = strrchr(buf, '/');
	if (!slash)
		snprintf(buf, n, ".");
	else
		slash[slash == buf] = '\0';	/* "/x" is in "/" */
	return buf;
}
