/* notify: the shared wake-up word and counters. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "user.h"
#include "notify.h"

#define NOTIFY_MAGIC 0x434f4d45u	/* "COME" */
#define NOTIFY_VERSION 1
#define NOTIFY_SLOTS 4096

struct slot {
	int32_t pid;
	int32_t waiting;
};

/* All-zero is a valid initial state, so concurrent creators need no lock. */
struct shared {
	uint32_t magic, version;
	uint32_t seq;		/* the futex word */
	uint32_t pad;
	uint64_t published, delivered;
	uint64_t dropped;	/* subscribers disconnected for not reading */
	uint64_t reserved[3];
	struct slot slots[NOTIFY_SLOTS];
	/* After the slots, so that a process of an older version, which maps
	 * less, finds everything it knows where it was. */
	uint64_t answers[NOTIFY_NSTATUS + 1];	/* by status; the last: others */
	uint64_t storage_errors;
	uint64_t commit_le[NOTIFY_NBUCKETS];	/* publishes committed within ... */
	uint64_t commit_count, commit_sum_us;
	int32_t draining[NOTIFY_SLOTS];	/* by slot, like slots[].waiting */
	uint64_t ends[NOTIFY_NENDS];
	int32_t queued[NOTIFY_SLOTS];	/* writes waiting for the log, by slot */
};

const int notify_statuses[NOTIFY_NSTATUS] = {
	200, 201, 204, 400, 401, 403, 404, 405, 408, 413, 415, 503,
};
const int64_t notify_buckets_us[NOTIFY_NBUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};

struct notify {
	struct shared *sh;
	struct slot *mine;	/* claimed on first use */
	int32_t pid;		/* the claimer's */
};

/* err for a failed step on the notify file: the file, the errno text and
 * what to do. */
static int failed(const char *path, const char *what, int e, char *err, size_t errlen)
{
	char me[64];
	user_name(geteuid(), me, sizeof me);
	if (e == ENOSPC || e == EDQUOT)
		snprintf(err, errlen, "disk full creating %s (%s: %s): free disk space on its "
			 "filesystem", path, what, strerror(e));
	else if (e == EACCES || e == EPERM)
		snprintf(err, errlen, "%s: not writable by %s, the user the program runs as "
			 "(%s: %s): chown %s it and its directory, or set COMET_DB to a place it "
			 "may write", path, me, what, strerror(e), me);
	else if (e == EROFS)
		snprintf(err, errlen, "%s is on a read-only filesystem (%s: %s): remount it "
			 "read-write or set COMET_DB to a writable place", path, what, strerror(e));
	else if (e == ENOENT) {
		char dir[4096];
		user_dir(path, dir, sizeof dir);
		snprintf(err, errlen, "%s: its directory %s does not exist: create it for the user "
			 "the program runs as, %s: install -d -o %s %s", path, dir, me, me, dir);
	} else
		snprintf(err, errlen, "%s: %s: %s", path, what, strerror(e));
	return -1;
}

int notify_open(struct notify **out, const char *db_path, char *err, size_t errlen)
{
	char *path = xmalloc(strlen(db_path) + 8);
	sprintf(path, "%s-notify", db_path);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		failed(path, "open", errno, err, errlen);
		free(path);
		return -1;
	}
	/* Blocks behind every page before it is mapped: a page of a sparse
	 * file that the disk has no room for would kill the process with
	 * SIGBUS at its first write instead of failing here. Allocating what
	 * is allocated already changes nothing, so every opener does it. */
	int e = posix_fallocate(fd, 0, sizeof(struct shared));
	if (e) {
		failed(path, "allocating its blocks", e, err, errlen);
		close(fd);
		free(path);
		return -1;
	}
	void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		failed(path, "mmap", errno, err, errlen);
		free(path);
		return -1;
	}
	struct shared *sh = p;
	uint32_t zero = 0;
	__atomic_compare_exchange_n(&sh->magic, &zero, NOTIFY_MAGIC, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sh->magic, __ATOMIC_SEQ_CST) != NOTIFY_MAGIC) {
		snprintf(err, errlen, "%s: not a comet-fcgi notify file: remove it (it holds "
			 "only wake-ups and counters) and start again", path);
		munmap(p, sizeof *sh);
		free(path);
		return -1;
	}
	free(path);
	struct notify *n = xcalloc(1, sizeof *n);
	n->sh = sh;
	*out = n;
	return 0;
}

void notify_close(struct notify *n)
{
	if (!n)
		return;
	if (n->mine) {
		__atomic_store_n(&n->mine->waiting, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&n->sh->draining[n->mine - n->sh->slots], 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&n->sh->queued[n->mine - n->sh->slots], 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&n->mine->pid, 0, __ATOMIC_SEQ_CST);
	}
	munmap(n->sh, sizeof *n->sh);
	free(n);
}

static long futex(uint32_t *addr, int op, uint32_t val)
{
	/* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
	return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

void notify_bump(struct notify *n)
{
	__atomic_add_fetch(&n->sh->seq, 1, __ATOMIC_SEQ_CST);
	futex(&n->sh->seq, FUTEX_WAKE, INT_MAX);
}

uint32_t notify_seq(struct notify *n)
{
	return __atomic_load_n(&n->sh->seq, __ATOMIC_SEQ_CST);
}

void notify_wait(struct notify *n, uint32_t seen)
{
	futex(&n->sh->seq, FUTEX_WAIT, seen);
}

void notify_wake(struct notify *n)
{
	futex(&n->sh->seq, FUTEX_WAKE, INT_MAX);
}

static bool alive(int32_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static struct slot *my_slot(struct notify *n)
{
	if (n->mine)
		return n->mine;
	n->pid = (int32_t)getpid();
	for (int i = 0; i < NOTIFY_SLOTS; i++) {
		struct slot *s = &n->sh->slots[i];
		int32_t p = __atomic_load_n(&s->pid, __ATOMIC_SEQ_CST);
		if ((p == 0 || (p != n->pid && !alive(p))) &&
		    __atomic_compare_exchange_n(&s->pid, &p, n->pid, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&s->waiting, 0, __ATOMIC_SEQ_CST);
			__atomic_store_n(&n->sh->draining[i], 0, __ATOMIC_SEQ_CST);
			__atomic_store_n(&n->sh->queued[i], 0, __ATOMIC_SEQ_CST);
			return n->mine = s;
		}
	}
	return NULL;	/* more live processes than slots: not counted */
}

void notify_waiting(struct notify *n, int delta)
{
	struct slot *s = my_slot(n);
	if (s)
		__atomic_add_fetch(&s->waiting, delta, __ATOMIC_SEQ_CST);
}

void notify_draining(struct notify *n, int delta)
{
	struct slot *s = my_slot(n);
	if (s)
		__atomic_add_fetch(&n->sh->draining[s - n->sh->slots], delta, __ATOMIC_SEQ_CST);
}

void notify_queued(struct notify *n, int delta)
{
	struct slot *s = my_slot(n);
	if (s)
		__atomic_add_fetch(&n->sh->queued[s - n->sh->slots], delta, __ATOMIC_SEQ_CST);
}

void notify_ended(struct notify *n, int reason)
{
	if (reason >= 0 && reason < NOTIFY_NENDS)
		__atomic_add_fetch(&n->sh->ends[reason], 1, __ATOMIC_RELAXED);
}

void notify_published(struct notify *n, uint64_t count)
{
	__atomic_add_fetch(&n->sh->published, count, __ATOMIC_SEQ_CST);
}

void notify_dropped(struct notify *n, uint64_t count)
{
	__atomic_add_fetch(&n->sh->dropped, count, __ATOMIC_SEQ_CST);
}

void notify_answer(struct notify *n, int status)
{
	if (!n)
		return;
	int i = 0;
	while (i < NOTIFY_NSTATUS && notify_statuses[i] != status)
		i++;
	__atomic_add_fetch(&n->sh->answers[i], 1, __ATOMIC_RELAXED);
}

void notify_storage_error(struct notify *n)
{
	if (n)
		__atomic_add_fetch(&n->sh->storage_errors, 1, __ATOMIC_RELAXED);
}

void notify_commit_latency(struct notify *n, int64_t us)
{
	if (!n)
		return;
	for (int i = 0; i < NOTIFY_NBUCKETS; i++)
		if (us <= notify_buckets_us[i])
			__atomic_add_fetch(&n->sh->commit_le[i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&n->sh->commit_count, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&n->sh->commit_sum_us, (uint64_t)(us > 0 ? us : 0), __ATOMIC_RELAXED);
}

void notify_delivered(struct notify *n, uint64_t count)
{
	__atomic_add_fetch(&n->sh->delivered, count, __ATOMIC_SEQ_CST);
}

void notify_stats(struct notify *n, struct notify_stats *st)
{
	st->published = __atomic_load_n(&n->sh->published, __ATOMIC_SEQ_CST);
	st->delivered = __atomic_load_n(&n->sh->delivered, __ATOMIC_SEQ_CST);
	st->dropped = __atomic_load_n(&n->sh->dropped, __ATOMIC_SEQ_CST);
	for (int i = 0; i <= NOTIFY_NSTATUS; i++)
		st->answers[i] = __atomic_load_n(&n->sh->answers[i], __ATOMIC_RELAXED);
	st->storage_errors = __atomic_load_n(&n->sh->storage_errors, __ATOMIC_RELAXED);
	for (int i = 0; i < NOTIFY_NBUCKETS; i++)
		st->commit_le[i] = __atomic_load_n(&n->sh->commit_le[i], __ATOMIC_RELAXED);
	st->commit_count = __atomic_load_n(&n->sh->commit_count, __ATOMIC_RELAXED);
	st->commit_sum_us = __atomic_load_n(&n->sh->commit_sum_us, __ATOMIC_RELAXED);
	for (int i = 0; i < NOTIFY_NENDS; i++)
		st->ends[i] = __atomic_load_n(&n->sh->ends[i], __ATOMIC_RELAXED);
	st->waiting = st->draining = st->queued = 0;
	for (int i = 0; i < NOTIFY_SLOTS; i++) {
		struct slot *s = &n->sh->slots[i];
		int32_t p = __atomic_load_n(&s->pid, __ATOMIC_SEQ_CST);
		if (p && alive(p)) {
			st->waiting += __atomic_load_n(&s->waiting, __ATOMIC_SEQ_CST);
			st->draining += __atomic_load_n(&n->sh->draining[i], __ATOMIC_SEQ_CST);
			st->queued += __atomic_load_n(&n->sh->queued[i], __ATOMIC_SEQ_CST);
		}
	}
}
