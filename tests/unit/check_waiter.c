/* Unit tests: the waiter set (channel index, deadlines on an injected
 * clock) and the hand-over queue. */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "waiter.h"

static struct waiter *mk(const char *a, const char *b)
{
	const char *names[2] = { a, b };
	return waiter_new(names, b ? 2 : 1);
}

static int count_on(struct waiter_set *s, const char *chan)
{
	int n = 0;
	for (struct waiter_link *l = waiter_on(s, chan); l; l = l->next)
		n++;
	return n;
}

START_TEST(index_by_channel)
{
	struct waiter_set *s = waiter_set_new();
	struct waiter *w1 = mk("a", "b"), *w2 = mk("b", NULL), *w3 = mk("c", NULL);
	waiter_park(s, w1, 100);
	waiter_park(s, w2, 100);
	waiter_park(s, w3, 100);
	ck_assert_int_eq(waiter_count(s), 3);
	ck_assert_int_eq(count_on(s, "a"), 1);
	ck_assert_int_eq(count_on(s, "b"), 2);
	ck_assert_int_eq(count_on(s, "zzz"), 0);
	ck_assert_ptr_eq(waiter_on(s, "a")->w, w1);
	waiter_unpark(s, w1);
	ck_assert_int_eq(count_on(s, "a"), 0);
	ck_assert_int_eq(count_on(s, "b"), 1);
	ck_assert_ptr_eq(waiter_on(s, "b")->w, w2);
	waiter_unpark(s, w1);	/* twice is harmless */
	ck_assert_int_eq(waiter_count(s), 2);
	waiter_unpark(s, w2);
	waiter_unpark(s, w3);
	ck_assert_int_eq(waiter_count(s), 0);
	const char *names[2];
	waiter_names(w1, names);
	ck_assert_str_eq(names[1], "b");
	waiter_free(w1);
	waiter_free(w2);
	waiter_free(w3);
	waiter_set_free(s);
}
END_TEST

START_TEST(many_channels_grow)
{
	struct waiter_set *s = waiter_set_new();
	enum { N = 5000 };
	struct waiter **w = malloc(N * sizeof *w);
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "ch%d", i);
		w[i] = mk(name, "shared");
		waiter_park(s, w[i], i);
	}
	ck_assert_int_eq(count_on(s, "shared"), N);
	for (int i = 0; i < N; i += 97) {
		snprintf(name, sizeof name, "ch%d", i);
		ck_assert_int_eq(count_on(s, name), 1);
		ck_assert_ptr_eq(waiter_on(s, name)->w, w[i]);
	}
	for (int i = 0; i < N; i++) {
		waiter_unpark(s, w[i]);
		waiter_free(w[i]);
	}
	ck_assert_int_eq(count_on(s, "shared"), 0);
	free(w);
	waiter_set_free(s);
}
END_TEST

/* Deadlines on an injected clock: expiry in deadline order, none early. */
START_TEST(deadlines_in_order)
{
	struct waiter_set *s = waiter_set_new();
	enum { N = 1000 };
	struct waiter *w[N];
	srand(7);
	for (int i = 0; i < N; i++) {
		w[i] = mk("a", NULL);
		waiter_park(s, w[i], 1000 + rand() % 5000);
	}
	/* Some leave early (answered or hung up). */
	for (int i = 0; i < N; i += 3)
		waiter_unpark(s, w[i]);
	ck_assert_int_eq(waiter_next_deadline(s) >= 1000, 1);
	ck_assert_ptr_null(waiter_expired(s, 999));
	int64_t last = 0;
	int got = 0;
	for (int64_t now = 1000; now <= 7000; now += 250) {
		struct waiter *x;
		while ((x = waiter_expired(s, now))) {
			ck_assert(x->deadline <= now);
			ck_assert(x->deadline >= last);
			ck_assert(!x->parked);
			last = x->deadline;
			got++;
		}
		ck_assert(waiter_next_deadline(s) > now);
	}
	ck_assert_int_eq(got, N - (N + 2) / 3);
	ck_assert_int_eq(waiter_count(s), 0);
	ck_assert(waiter_next_deadline(s) == INT64_MAX);
	for (int i = 0; i < N; i++)
		waiter_free(w[i]);
	waiter_set_free(s);
}
END_TEST

START_TEST(queue_hand_over)
{
	struct waiter_queue q;
	ck_assert_int_eq(waiter_queue_init(&q), 0);
	ck_assert_ptr_null(waiter_queue_take(&q));
	struct waiter *a = mk("a", NULL), *b = mk("b", NULL);
	waiter_queue_push(&q, &a->q);
	waiter_queue_push(&q, &b->q);
	struct waiter_qlink *l = waiter_queue_take(&q);
	ck_assert_ptr_eq(WAITER_OF(l), a);
	ck_assert_ptr_eq(WAITER_OF(l->next), b);
	ck_assert_ptr_null(b->q.next);
	ck_assert_ptr_null(waiter_queue_take(&q));
	waiter_free(a);
	waiter_free(b);
	waiter_queue_destroy(&q);
}
END_TEST

static bool rung(const struct waiter_queue *q)
{
	struct pollfd p = { .fd = q->efd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* Only the push onto an empty queue rings; a quiet push says it owes one. */
START_TEST(queue_rings_once_per_burst)
{
	struct waiter_queue q;
	ck_assert_int_eq(waiter_queue_init(&q), 0);
	struct waiter *a = mk("a", NULL), *b = mk("b", NULL), *c = mk("c", NULL);
	ck_assert(waiter_queue_push_quiet(&q, &a->q));
	ck_assert(!rung(&q));
	ck_assert(!waiter_queue_push_quiet(&q, &b->q));
	waiter_queue_ring(&q);
	ck_assert(rung(&q));
	struct waiter_qlink *l = waiter_queue_take(&q);
	ck_assert(!rung(&q));
	ck_assert_ptr_eq(WAITER_OF(l), a);
	ck_assert_ptr_eq(WAITER_OF(l->next), b);
	waiter_queue_push(&q, &c->q);
	ck_assert(rung(&q));
	ck_assert_ptr_eq(WAITER_OF(waiter_queue_take(&q)), c);
	waiter_free(a);
	waiter_free(b);
	waiter_free(c);
	waiter_queue_destroy(&q);
}
END_TEST

Suite *waiter_suite(void)
{
	Suite *s = suite_create("waiter");
	TCase *t = tcase_create("set");
	tcase_add_test(t, index_by_channel);
	tcase_add_test(t, many_channels_grow);
	tcase_add_test(t, deadlines_in_order);
	tcase_add_test(t, queue_hand_over);
	tcase_add_test(t, queue_rings_once_per_burst);
	suite_add_tcase(s, t);
	return s;
}
