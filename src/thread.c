/* thread: starting and joining the program's threads. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "thread.h"

static int start(pthread_t *id, void *(*fn)(void *), void *arg, size_t stack_kb, bool detached)
{
	pthread_attr_t at;
	pthread_attr_init(&at);
	if (detached)
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, stack_kb * 1024);
	int rc = pthread_create(id, &at, fn, arg);
	pthread_attr_destroy(&at);
	return rc;
}

int thread_spawn(void *(*fn)(void *), void *arg, size_t stack_kb)
{
	pthread_t id;
	return start(&id, fn, arg, stack_kb, true);
}

int thread_start(struct thread *t, void *(*fn)(void *), void *arg, size_t stack_kb)
{
	int rc = start(&t->id, fn, arg, stack_kb, false);
	t->started = rc == 0;
	return rc;
}

bool thread_join(struct thread *t, long long deadline_ms)
{
	if (!t->started)
		return true;
	int rc;
	if (deadline_ms) {
		struct timespec ts = { (time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000 };
		rc = pthread_timedjoin_np(t->id, NULL, &ts);
	} else {
		rc = pthread_join(t->id, NULL);
	}
	if (rc == 0)
		t->started = false;
	return rc == 0;
}
