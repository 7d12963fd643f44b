/* The unit test runner: every suite, forked per test. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
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

char *test_small_fs(int kb)
{
	char *d = test_tmpdir();
	char opt[32];
	snprintf(opt, sizeof opt, "size=%dk", kb);
	if (mount("tmpfs", d, "tmpfs", 0, opt) < 0) {
		fprintf(stderr, "cannot mount a tmpfs (%s): skipping a full-disk test\n",
			strerror(errno));
		test_rmtree(d);
		free(d);
		return NULL;
	}
	return d;
}

void test_small_fs_end(char *dir)
{
	umount2(dir, MNT_DETACH);
	test_rmtree(dir);
	free(dir);
}

void test_fill(const char *dir)
{
	char name[4200];
	snprintf(name, sizeof name, "%s/fill", dir);
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	static const char block[4096];
	while (fd >= 0 && write(fd, block, sizeof block) > 0)
		;
	if (fd >= 0)
		close(fd);
}

void test_unfill(const char *dir)
{
	char name[4200];
	snprintf(name, sizeof name, "%s/fill", dir);
	unlink(name);
}

int main(void)
{
	/* With a PostgreSQL to use (check_pglog.py starts one), the shared
	 * log's suite, alone. */
	if (getenv("COMET_TEST_PG")) {
		SRunner *pg = srunner_create(pglog_suite());
		srunner_run_all(pg, CK_NORMAL);
		int failed = srunner_ntests_failed(pg);
		srunner_free(pg);
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	SRunner *sr = srunner_create(request_suite());
	srunner_add_suite(sr, conf_suite());
	srunner_add_suite(sr, msglog_suite());
	srunner_add_suite(sr, json_suite());
	srunner_add_suite(sr, waiter_suite());
	srunner_add_suite(sr, misc_suite());
	srunner_add_suite(sr, fcgi_suite());
	srunner_add_suite(sr, conn_suite());
	srunner_add_suite(sr, hub_suite());
	srunner_add_suite(sr, commit_suite());
	srunner_add_suite(sr, handler_suite());
	srunner_add_suite(sr, pusher_suite());
	srunner_add_suite(sr, jwtauth_suite());
	srunner_add_suite(sr, mercure_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
