/* Unit tests: UTF-8, access rule, answers, log escaping, cross-process
 * wake-up, memory given back. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "log.h"
#include "notify.h"
#include "reply.h"
#include "suites.h"
#include "token.h"
#include "utf8.h"

START_TEST(utf8)
{
	ck_assert(utf8_valid("", 0));
	ck_assert(utf8_valid("hello", 5));
	ck_assert(utf8_valid("h\xc3\xa9", 3));
	ck_assert(utf8_valid("\xe2\x82\xac", 3));
	ck_assert(utf8_valid("\xf0\x9f\x98\x80", 4));
	ck_assert(!utf8_valid("\xc3", 1));		/* truncated */
	ck_assert(!utf8_valid("\xc0\xaf", 2));		/* overlong */
	ck_assert(!utf8_valid("\xe0\x80\xaf", 3));	/* overlong */
	ck_assert(!utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	ck_assert(!utf8_valid("\xff", 1));
	ck_assert(!utf8_valid("a\0b", 3));
	ck_assert(!utf8_valid("\xe2\x82", 2));
}
END_TEST

START_TEST(publish_access)
{
	ck_assert(auth_loopback("127.0.0.1"));
	ck_assert(auth_loopback("127.1.2.3"));
	ck_assert(auth_loopback("::1"));
	ck_assert(auth_loopback("::ffff:127.0.0.1"));
	ck_assert(!auth_loopback("10.0.0.1"));
	ck_assert(!auth_loopback("127.0.0.1.evil"));
	ck_assert(!auth_loopback(NULL));
	/* No key: closed, unless loopback is let in. */
	ck_assert_int_eq(auth_publish(NULL, "127.0.0.1", NULL, false), 403);
	ck_assert_int_eq(auth_publish(NULL, "127.0.0.1", NULL, true), 0);
	ck_assert_int_eq(auth_publish(NULL, "192.0.2.1", NULL, true), 403);
	/* A key: required from everywhere, loopback or not. */
	ck_assert_int_eq(auth_publish(NULL, "127.0.0.1", "k3y", true), 401);
	ck_assert_int_eq(auth_publish("Bearer k3", "127.0.0.1", "k3y", false), 401);
	ck_assert_int_eq(auth_publish("Bearer k3yy", "127.0.0.1", "k3y", false), 401);
	ck_assert_int_eq(auth_publish("Basic k3y", "192.0.2.1", "k3y", false), 401);
	ck_assert_int_eq(auth_publish("Bearer k3y", "192.0.2.1", "k3y", false), 0);
	ck_assert_int_eq(auth_publish("bearer k3y", "192.0.2.1", "k3y", false), 0);
	ck_assert(auth_equal("", ""));
	ck_assert(!auth_equal("a", ""));
}
END_TEST

START_TEST(answers)
{
	struct buf b = BUF_INIT;
	reply_error(&b, 401, "no \"key\"", NULL, NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Status: 401 Unauthorized\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "WWW-Authenticate: Bearer"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Cache-Control: no-store\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "\r\n\r\n{\"error\":\"no \\\"key\\\"\",\"status\":401}"));
	buf_reset(&b);
	reply_error(&b, 503, "x", NULL, "Allow: GET\r\n");
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Retry-After: 1\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Allow: GET\r\n"));
	buf_reset(&b);
	reply_json(&b, 200, "{}", 2, "cb", NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "application/javascript"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "Content-Length: 7\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_str(&b), "\r\n\r\ncb({});"));
	buf_reset(&b);
	reply_sub(&b, 42, "", 0, false, true, false);
	ck_assert_str_eq(buf_str(&b), "{\"last_id\":42,\"messages\":[],\"more\":false,\"gap\":true}");
	buf_free(&b);
}
END_TEST

START_TEST(log_escaping)
{
	char out[64];
	log_escape(out, sizeof out, "a\nb\x1b[31m\\");
	ck_assert_str_eq(out, "a\\x0ab\\x1b[31m\\x5c");
	log_escape(out, 8, "abcdefghijkl");
	ck_assert_int_lt(strlen(out), 8);
}
END_TEST

/* A process blocked in notify_wait wakes when another process bumps; a
 * killed waiter leaves nothing that blocks later bumps. */
START_TEST(wake_across_processes)
{
	char *dir = test_tmpdir();
	char db[4200];
	snprintf(db, sizeof db, "%s/comet.db", dir);
	struct notify *n;
	char err[256];
	ck_assert_msg(notify_open(&n, db, err, sizeof err) == 0, "%s", err);
	int ready[2];
	ck_assert_int_eq(pipe(ready), 0);
	pid_t victim = fork();
	if (victim == 0) {
		uint32_t s = notify_seq(n);
		notify_waiting(n, 1);
		if (write(ready[1], "v", 1) != 1)
			_exit(3);
		for (;;)
			notify_wait(n, s);
	}
	pid_t child = fork();
	if (child == 0) {
		uint32_t s = notify_seq(n);
		notify_waiting(n, 1);
		if (write(ready[1], "c", 1) != 1)
			_exit(3);
		while (notify_seq(n) == s)
			notify_wait(n, s);
		_exit(0);
	}
	char c;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	struct notify_stats st;
	notify_stats(n, &st);
	ck_assert_int_eq(st.waiting, 2);
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);
	notify_stats(n, &st);
	ck_assert_int_eq(st.waiting, 1);	/* the dead one no longer counts */
	notify_bump(n);
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);	/* Check's timeout guards a hang */
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	notify_published(n, 3);
	notify_stats(n, &st);
	ck_assert_int_eq(st.published, 3);
	notify_close(n);
	test_rmtree(dir);
	free(dir);
}
END_TEST

/* On a full disk notify_open fails with a message, instead of mapping
 * pages without blocks behind them (SIGBUS at the first write): a new
 * file, and a sparse one as an older version left it. */
START_TEST(notify_disk_full)
{
	char *fs = test_small_fs(128);
	if (!fs)
		return;
	char db[4200], file[4300];
	snprintf(db, sizeof db, "%s/comet.db", fs);
	snprintf(file, sizeof file, "%s-notify", db);
	test_fill(fs);
	struct notify *n;
	char err[512];
	ck_assert_int_eq(notify_open(&n, db, err, sizeof err), -1);
	ck_assert_msg(strstr(err, file) && strstr(err, strerror(ENOSPC)) &&
		      strstr(err, "free disk space"), "%s", err);
	test_unfill(fs);
	unlink(file);
	int fd = open(file, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(ftruncate(fd, 40000), 0);
	close(fd);
	test_fill(fs);
	ck_assert_int_eq(notify_open(&n, db, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "free disk space"), "%s", err);
	test_unfill(fs);
	ck_assert_msg(notify_open(&n, db, err, sizeof err) == 0, "%s", err);
	notify_bump(n);
	notify_close(n);
	test_small_fs_end(fs);
}
END_TEST

START_TEST(tokens)
{
	char t[TOKEN_MAX + 1];
	/* Same as PHP's hash_hmac('sha256', "private-room:2000000000", 'secret'). */
	token_make("secret", "private-room", 2000000000, t);
	ck_assert_str_eq(t, "2000000000.80ee23b72ad39ea12846f4a726cd25207dc7120903c70ae4261c131b224a39b7");
	ck_assert(token_valid("secret", "private-room", t, 1999999999));
	ck_assert(!token_valid("secret", "private-room", t, 2000000000));	/* expired */
	ck_assert(!token_valid("secret", "private-other", t, 1));
	ck_assert(!token_valid("other", "private-room", t, 1));
	char upper[TOKEN_MAX + 1];
	for (size_t i = 0; i <= strlen(t); i++)
		upper[i] = (t[i] >= 'a' && t[i] <= 'f') ? (char)(t[i] - 32) : t[i];
	ck_assert(token_valid("secret", "private-room", upper, 1));
	ck_assert(!token_valid("secret", "private-room", "2000000000", 1));
	ck_assert(!token_valid("secret", "private-room", "x.abc", 1));
	ck_assert(!token_valid("secret", "private-room", "2000000000.", 1));
	t[strlen(t) - 1] ^= 1;
	ck_assert(!token_valid("secret", "private-room", t, 1));
	ck_assert(token_private("private-x"));
	ck_assert(!token_private("privatex"));
}
END_TEST

static void free_big(size_t mib)
{
	for (size_t i = 0; i < mib; i++) {
		struct buf b = BUF_INIT;
		buf_reserve(&b, (1u << 20) - 1);
		buf_free(&b);
	}
}

START_TEST(give_back)
{
	free_big(8);		/* whatever was counted before: now at least 8 MiB */
	ck_assert(buf_give_back());
	ck_assert(!buf_give_back());
	/* Small buffers never count, however many. */
	for (int i = 0; i < 1000; i++) {
		struct buf b = BUF_INIT;
		buf_reserve(&b, 32000);
		buf_free(&b);
	}
	ck_assert(!buf_give_back());
	free_big(7);
	ck_assert(!buf_give_back());
	/* A buffer outgrowing its large blocks counts them too. */
	struct buf b = BUF_INIT;
	char chunk[4096] = { 0 };
	while (b.len < (4u << 20))
		buf_add(&b, chunk, sizeof chunk);
	ck_assert(buf_give_back());
	buf_free(&b);
}
END_TEST

Suite *misc_suite(void)
{
	Suite *s = suite_create("misc");
	TCase *t = tcase_create("misc");
	tcase_set_timeout(t, 10);
	tcase_add_test(t, utf8);
	tcase_add_test(t, publish_access);
	tcase_add_test(t, answers);
	tcase_add_test(t, log_escaping);
	tcase_add_test(t, tokens);
	tcase_add_test(t, wake_across_processes);
	tcase_add_test(t, notify_disk_full);
	tcase_add_test(t, give_back);
	suite_add_tcase(s, t);
	return s;
}
