/* Unit tests: the settings table and loader. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "suites.h"

/* A tiny environment: NULL-terminated name, value pairs. COMET_CONFIG is
 * "" unless given: no settings file of this machine's (make install makes
 * one at the default path). */
static const char *lookup(const char *name, void *arg)
{
	const char **kv = arg;
	for (; kv && kv[0]; kv += 2)
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	return strcmp(name, "COMET_CONFIG") == 0 ? "" : NULL;
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
	ck_assert_str_eq(c.log, "stderr");
	conf_free(&c);
}
END_TEST

START_TEST(log_destination)
{
	struct conf c;
	char err[256];
	const char *ok[][2] = { { "COMET_LOG", "syslog" }, { "COMET_LOG", "/var/log/comet.log" },
				{ "COMET_LOG", "stderr" } };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		const char *env[] = { ok[i][0], ok[i][1], NULL };
		ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), 0);
		ck_assert_str_eq(c.log, ok[i][1]);
		conf_free(&c);
	}
	const char *bad[] = { "logs/comet.log", "journal", "STDERR" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *env[] = { "COMET_LOG", bad[i], NULL };
		ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), -1);
		ck_assert_msg(strncmp(err, "COMET_LOG", 9) == 0, "%s", err);
		conf_free(&c);
	}
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

/* Writes text to path with its mtime age_s seconds ago. */
static void write_aged(const char *path, const char *text, int age_s)
{
	/* Replaced by rename, as editors and install(1) do: a new inode. */
	char tmp[4300];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	struct timespec t[2];
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= age_s;
	t[1] = t[0];
	ck_assert_int_eq(utimensat(AT_FDCWD, tmp, t, 0), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static int64_t wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(reread_keys)
{
	char *dir = test_tmpdir();
	char path[4200], note[1024];
	snprintf(path, sizeof path, "%s/comet-fcgi.conf", dir);
	write_aged(path, "COMET_PUBLISH_KEY = first-key\nCOMET_TIMEOUT = 7\n", 60);
	struct conf c;
	char err[512];
	/* The token key comes from the environment, which wins over the file. */
	const char *env[] = { "COMET_CONFIG", path, "COMET_TOKEN_KEY", "from-env", NULL };
	ck_assert_int_eq(conf_load(&c, lookup, env, err, sizeof err), 0);
	ck_assert_str_eq(c.publish_key, "first-key");
	int64_t mono = 5000;

	/* Unchanged: nothing to do. */
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 0);

	/* A new key (and a timeout, which waits for a restart). */
	write_aged(path, "COMET_PUBLISH_KEY = second-key\nCOMET_TIMEOUT = 9\n"
		   "COMET_TOKEN_KEY = from-file\n", 30);
	/* At most one look a second. */
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono + 999, wall_now(), note, sizeof note), 0);
	ck_assert_str_eq(c.publish_key, "first-key");
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 1);
	ck_assert_str_eq(c.publish_key, "second-key");
	ck_assert_str_eq(c.token_key, "from-env");
	ck_assert_int_eq(c.timeout, 7);
	ck_assert_msg(strstr(note, "COMET_PUBLISH_KEY") && strstr(note, "COMET_TIMEOUT") &&
		      strstr(note, "next start"), "%s", note);
	ck_assert_msg(!strstr(note, "COMET_TOKEN_KEY"), "the environment's key did not change: %s", note);
	ck_assert_msg(!strstr(note, "second-key") && !strstr(note, "first-key"),
		      "a key's value in the log: %s", note);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 0);

	/* Being written just now: taken only once it has settled. */
	write_aged(path, "COMET_PUBLISH_KEY = third-key\n", 0);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 0);
	ck_assert_str_eq(c.publish_key, "second-key");
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 1);
	ck_assert_str_eq(c.publish_key, "third-key");

	/* A bad file: every value kept, said once. */
	write_aged(path, "COMET_PUBLISH_KEY = fourth-key\nCOMET_NOPE = 1\n", 30);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), -1);
	ck_assert_msg(strstr(note, "COMET_NOPE") && strstr(note, "keeps"), "%s", note);
	ck_assert_str_eq(c.publish_key, "third-key");
	for (int i = 0; i < 3; i++) {
		mono += 1000;
		ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 0);
	}
	write_aged(path, "COMET_PUBLISH_KEY = third-key\nCOMET_TIMEOUT = 0\n", 20);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 1);
	ck_assert_msg(strstr(note, "COMET_TIMEOUT") != NULL, "%s", note);
	/* A value against another: bad as well. */
	write_aged(path, "COMET_PUBLISH_KEY = fifth-key\nCOMET_KEEPALIVE = 400\n", 10);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), -1);
	ck_assert_msg(strstr(note, "COMET_KEEPALIVE") != NULL, "%s", note);
	ck_assert_str_eq(c.publish_key, "third-key");
	/* Mended: read again, and said so. */
	write_aged(path, "COMET_PUBLISH_KEY = third-key\nCOMET_TIMEOUT = 7\n", 5);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 1);
	ck_assert_msg(strstr(note, "usable") != NULL, "%s", note);

	/* Gone: kept, said once (once seen gone twice, a second apart). */
	ck_assert_int_eq(unlink(path), 0);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 0);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), -1);
	ck_assert_str_eq(c.publish_key, "third-key");
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 0);
	/* Back, without the key: the key is unset again (publishing closed). */
	write_aged(path, "COMET_TIMEOUT = 7\n", 30);
	mono += 1000;
	ck_assert_int_eq(conf_reread(&c, lookup, env, mono, wall_now(), note, sizeof note), 1);
	ck_assert_ptr_null(c.publish_key);
	conf_free(&c);

	/* COMET_CONFIG="": no file, nothing to look at. */
	const char *none[] = { "COMET_CONFIG", "", NULL };
	ck_assert_int_eq(conf_load(&c, lookup, none, err, sizeof err), 0);
	ck_assert_int_eq(conf_reread(&c, lookup, none, 1000, wall_now(), note, sizeof note), 0);
	ck_assert_int_eq(conf_reread(&c, lookup, none, 9000, wall_now(), note, sizeof note), 0);
	conf_free(&c);
	test_rmtree(dir);
	free(dir);
}
END_TEST

static char *slurp(const char *path)
{
	static char text[8192];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	return text;
}

START_TEST(log_to_file)
{
	char *dir = test_tmpdir();
	char path[4200], moved[4300], err[512];
	snprintf(path, sizeof path, "%s/comet-fcgi.log", dir);
	snprintf(moved, sizeof moved, "%s.1", path);
	ck_assert_int_eq(log_open("/nonexistent-dir/comet-fcgi.log", err, sizeof err), -1);
	ck_assert_msg(strncmp(err, "COMET_LOG", 9) == 0 && strstr(err, "/nonexistent-dir"), "%s", err);
	ck_assert_int_eq(log_open(path, err, sizeof err), 0);
	log_msg("error", 7, "first %d", 1);
	char *t = slurp(path);
	ck_assert_ptr_nonnull(t);
	/* 2026-12-03 12:00:00.123 comet-fcgi[42]: error: request 7: first 1 */
	ck_assert_msg(t[4] == '-' && t[10] == ' ' && t[19] == '.', "%s", t);
	ck_assert_msg(strstr(t, "]: error: request 7: first 1\n") != NULL, "%s", t);
	/* logrotate moves it away: the next line after a second goes to a new
	 * file at the path. */
	ck_assert_int_eq(rename(path, moved), 0);
	usleep(1100 * 1000);
	log_msg("notice", 0, "second");
	t = slurp(path);
	ck_assert_ptr_nonnull(t);
	ck_assert_msg(strstr(t, "notice: second") && !strstr(t, "first"), "%s", t);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777 & ~0640, 0);
	ck_assert_int_eq(log_open("stderr", err, sizeof err), 0);
	log_msg("notice", 0, "third");
	ck_assert_ptr_null(strstr(slurp(path), "third"));
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
	tcase_add_test(t, log_destination);
	tcase_add_test(t, reread_keys);
	tcase_add_test(t, log_to_file);
	suite_add_tcase(s, t);
	return s;
}
