/* The Check suites of the unit tests, one per module. */
#ifndef COMET_SUITES_H
#define COMET_SUITES_H

#include <check.h>

Suite *request_suite(void);
Suite *conf_suite(void);
Suite *msglog_suite(void);
Suite *json_suite(void);
Suite *waiter_suite(void);
Suite *misc_suite(void);
Suite *fcgi_suite(void);
Suite *conn_suite(void);
Suite *hub_suite(void);
Suite *commit_suite(void);
Suite *handler_suite(void);
Suite *pglog_suite(void);
Suite *pusher_suite(void);
Suite *jwtauth_suite(void);
Suite *mercure_suite(void);

/* A fresh empty directory for a test's files; removed by the caller. */
char *test_tmpdir(void);
void test_rmtree(const char *dir);
/* A fresh tmpfs of kb KB, for full-disk tests; NULL (the test skips) where
 * mounting is not allowed. */
char *test_small_fs(int kb);
void test_small_fs_end(char *dir);
/* Fills dir's filesystem with a file "fill"; test_unfill removes it. */
void test_fill(const char *dir);
void test_unfill(const char *dir);

#endif
