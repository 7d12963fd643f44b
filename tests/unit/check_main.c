/* The unit test runner: every suite, forked per test. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"

char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *t = malloc(4096);
	snprintf(t, 4096, "%s/comet-unit-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(t)) {
		perror("mkdtemp");
		abort();
	}
	return t;
}

void test_rmtree(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
	SRunner *sr = srunner_create(request_suite());
	srunner_add_suite(sr, conf_suite());
	srunner_add_suite(sr, msglog_suite());
	srunner_add_suite(sr, waiter_suite());
	srunner_add_suite(sr, misc_suite());
	srunner_add_suite(sr, fcgi_suite());
	srunner_add_suite(sr, hub_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
