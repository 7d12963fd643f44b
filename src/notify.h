/* notify: wake-ups across processes on one database. A small file next to
 * the database ("<db>-notify") is mapped shared by every process; its
 * sequence word is bumped after every commit and waited on as a futex. A
 * futex holds no lock, so a process killed at any instant (even kill -9)
 * cannot wedge the others; a waker killed between its commit and its bump
 * only delays delivery until the next bump or the waiter's own timeout,
 * which re-reads the log.
 *
 * The file also holds totals for stats: messages published and delivered,
 * subscribers dropped for not reading, requests ended by reason,
 * and one slot per live process with its counts of held subscribers and of
 * answers still being written (a dead process's slot is recognised by its
 * pid and reused). */
#ifndef COMET_NOTIFY_H
#define COMET_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

struct notify;

/* Answers are counted by status (these; the last count is of others) and
 * publish-to-commit latency in these buckets (cumulative, microseconds). */
#define NOTIFY_NSTATUS 12
#define NOTIFY_NBUCKETS 13
/* Requests ended by the hub, by reason (hub.h, enum hub_end). */
#define NOTIFY_NENDS 6
extern const int notify_statuses[NOTIFY_NSTATUS];
extern const int64_t notify_buckets_us[NOTIFY_NBUCKETS];

struct notify_stats {
	uint64_t published, delivered, dropped;
	int64_t waiting, draining, queued;
	uint64_t ends[NOTIFY_NENDS];
	uint64_t answers[NOTIFY_NSTATUS + 1];
	uint64_t storage_errors;
	uint64_t commit_le[NOTIFY_NBUCKETS], commit_count, commit_sum_us;
};

int notify_open(struct notify **out, const char *db_path, char *err, size_t errlen);
void notify_close(struct notify *n);

/* After a commit: wake every process waiting on this database. */
void notify_bump(struct notify *n);
uint32_t notify_seq(struct notify *n);
/* Blocks until the sequence is no longer `seen` (may return early). */
void notify_wait(struct notify *n, uint32_t seen);
/* Wakes every notify_wait without moving the sequence (a thread that is to
 * end; the others look, find nothing new, and wait again). */
void notify_wake(struct notify *n);

/* This process's held subscribers, and answers it is still writing. */
void notify_waiting(struct notify *n, int delta);
void notify_draining(struct notify *n, int delta);
void notify_ended(struct notify *n, int reason);
void notify_published(struct notify *n, uint64_t count);
void notify_delivered(struct notify *n, uint64_t count);
void notify_dropped(struct notify *n, uint64_t count);
/* n may be NULL (a request answered before the notify file could open). */
void notify_answer(struct notify *n, int status);
void notify_storage_error(struct notify *n);
void notify_commit_latency(struct notify *n, int64_t us);
/* This process's writes (publishes, DELETEs, ...) waiting for the log. */
void notify_queued(struct notify *n, int delta);
void notify_stats(struct notify *n, struct notify_stats *st);

#endif
