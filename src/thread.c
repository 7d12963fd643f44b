/* thread: detached helper threads. */
#include "config.h"

#include <pthread.h>

#include "thread.h"

int thread_spawn(void *(*fn)(void *), void *arg, size_t stack_kb)
{
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, stack_kb * 1024);
	int rc = pthread_create(&t, &at, fn, arg);
	pthread_attr_destroy(&at);
	return rc;
}
