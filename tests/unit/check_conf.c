/* Unit tests: the settings table and loader. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "suites.h"

/* A tiny environment: NULL-terminated name, value pairs. */
static const char *lookup(const char *name, void *arg)
{
	const char **kv = arg;
	for (; kv && kv[0]; kv += 2)
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	return NULL;
}

START_TEST(defaults)
{
	struct conf c;
	char err[256];
	ck_assert_int_eq(conf_load(&c, lookup, NULL, err, sizeof err), 0);
	ck_assert_int_eq(c.timeout, 25);
	ck_assert_int_eq(c.max_timeout, 120);
	ck_assert_int_eq(c.keepalive, 15);
	ck_assert_int_eq(c.stream_max, 300);
	ck_assert_int_eq(c.max_message, 65536);
	ck_assert_int_eq(c.retain, 1000);
	ck_assert_int_eq(c.retain_seconds, 86400);
	ck_assert_ptr_null(c.publish_key);
	ck_assert(!c.sync_full);
	ck_assert_ptr_nonnull(strstr(c.db, "comet.db"));
	conf_free(&c);
}
END_TEST

START_TEST(environment_and_errors)
{
	struct conf c;
	char err[256];
	const char *ok[] = { "COMET_TIMEOUT", "5", "COMET_SYNC", "full",
			     "COMET_PUBLISH_KEY", "k", NULL };
	ck_assert_int_eq(conf_load(&c, lookup, ok, err, sizeof err), 0);
	ck_assert_int_eq(c.timeout, 5);
	ck_assert(c.sync_full);
	ck_assert_str_eq(c.publish_key, "k");
	conf_free(&c);

	const char *bad[][3] = {
		{ "COMET_TIMEOUT", "abc", "COMET_TIMEOUT" },
		{ "COMET_TIMEOUT", "-1", "COMET_TIMEOUT" },
		{ "COMET_MAX_MESSAGE", "0", "COMET_MAX_MESSAGE" },
		{ "COMET_RETAIN", "99999999999999999999999", "COMET_RETAIN" },
		{ "COMET_SYNC", "sometimes", "COMET_SYNC" },
		{ "COMET_PUBLISH_KEY", "", "COMET_PUBLISH_KEY" },
		{ "COMET_TIMEOUT", "500", "COMET_TIMEOUT" },	/* above max timeout */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *env[] = { bad[i][0], bad[i][1], NULL };
		ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), -1);
		ck_assert_msg(strncmp(err, bad[i][2], strlen(bad[i][2])) == 0, "%s", err);
		conf_free(&c);
	}
}
END_TEST

START_TEST(config_file)
{
	char *dir = test_tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/comet.conf", dir);
	FILE *f = fopen(path, "w");
	fputs("# comment\n\nCOMET_TIMEOUT = 7\nCOMET_DB = \"/x/y.db\"\n"
	      "COMET_RETAIN=3\n", f);
	fclose(f);
	struct conf c;
	char err[512];
	/* The environment wins over the file. */
	const char *env[] = { "COMET_CONFIG", path, "COMET_RETAIN", "4", NULL };
	ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), 0);
	ck_assert_int_eq(c.timeout, 7);
	ck_assert_str_eq(c.db, "/x/y.db");
	ck_assert_int_eq(c.retain, 4);
	conf_free(&c);

	f = fopen(path, "w");
	fputs("COMET_NOPE = 1\n", f);
	fclose(f);
	ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "COMET_NOPE"));
	conf_free(&c);
	f = fopen(path, "w");
	fputs("COMET_TIMEOUT = x\n", f);
	fclose(f);
	ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), -1);
	ck_assert_msg(strncmp(err, "COMET_TIMEOUT", 13) == 0, "%s", err);
	conf_free(&c);
	const char *missing[] = { "COMET_CONFIG", "/nonexistent/comet.conf", NULL };
	ck_assert_int_eq(conf_load(&c, lookup, missing, err, sizeof err), -1);
	ck_assert_msg(strncmp(err, "COMET_CONFIG", 12) == 0, "%s", err);
	conf_free(&c);
	test_rmtree(dir);
	free(dir);
}
END_TEST

Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *t = tcase_create("load");
	tcase_add_test(t, defaults);
	tcase_add_test(t, environment_and_errors);
	tcase_add_test(t, config_file);
	suite_add_tcase(s, t);
	return s;
}
