/* thread: the program's helper threads (hub, doorbell watcher, signals)
 * are detached and have small stacks: none recurses or keeps big frames. */
#ifndef COMET_THREAD_H
#define COMET_THREAD_H

#include <stddef.h>

/* Starts fn(arg) detached with a stack of stack_kb KiB; 0 or an errno. */
int thread_spawn(void *(*fn)(void *), void *arg, size_t stack_kb);

#endif
