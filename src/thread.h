/* thread: the program's threads. The hub, its doorbell watcher and the
 * write thread are owned: started joinable, told to stop, and joined (a
 * timed join, so that shutdown keeps its bound whatever a thread waits
 * for). The signal thread and the follower are detached: the first ends
 * the process, the second holds nothing a process's end loses (its copies
 * are transactions, its lock goes with the process). All have small
 * stacks: none recurses or keeps big frames. */
#ifndef COMET_THREAD_H
#define COMET_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct thread {
	pthread_t id;
	bool started;		/* and not yet joined */
};

/* Starts fn(arg) detached with a stack of stack_kb KiB; 0 or an errno. */
int thread_spawn(void *(*fn)(void *), void *arg, size_t stack_kb);
/* Starts fn(arg) joinable, into t; 0 or an errno. */
int thread_start(struct thread *t, void *(*fn)(void *), void *arg, size_t stack_kb);
/* Joins t, waiting at most until the CLOCK_REALTIME time deadline_ms (0:
 * for ever); true when it has ended (or was never started). */
bool thread_join(struct thread *t, long long deadline_ms);

#endif
