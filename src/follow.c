/* follow: the follower thread (see follow.h).
 *
 * Lifecycle: started with the hub's wake-up word; blocks in flock() on
 * <state dir>/follower.lock until it holds it. The kernel lets the lock go
 * when its holder dies, however it dies, so the next process in line takes
 * over at once and copies from where the copy ends (the copy records how
 * far it got, in the same transaction as what it copied). The holder then
 * follows until its process ends: it waits for NOTIFY on its own
 * connection, at most FOLLOW_CHECK_MS (the timed safety check, one small
 * query), and after a failure tries again every FOLLOW_RETRY_MS, logging
 * only when the state changes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "follow.h"
#include "log.h"
#include "msglog.h"
#include "pglog.h"
#include "thread.h"

#define FOLLOW_CHECK_MS 5000
#define FOLLOW_RETRY_MS 500
#define FOLLOW_TELL_MS 60000

struct follow {
	const struct conf *conf;
	struct notify *notify;
	int lock_fd;
};

static void *follow_main(void *arg)
{
	struct follow *f = arg;
	/* Blocks until this process is the host's follower; a failure (not
	 * an interruption) is told once and tried again. */
	bool told_lock = false;
	while (flock(f->lock_fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		if (!told_lock)
			log_msg("error", 0, "follower: flock: %s (trying again every %d ms)",
				strerror(errno), FOLLOW_RETRY_MS);
		told_lock = true;
		poll(NULL, 0, FOLLOW_RETRY_MS);
	}
	char err[512], told[512] = "";
	int64_t told_at = 0;
	struct msglog *l = NULL;
	for (;;) {
		int rc;
		if (!l && msglog_open(&l, f->conf->db, f->conf->state_dir, f->conf->sync_full ? MSGLOG_SYNC_FULL : 0,
				      err, sizeof err) < 0)
			rc = MSGLOG_EUNAVAIL;
		else
			rc = msglog_follow(l, FOLLOW_CHECK_MS, err, sizeof err);
		if (rc > 0)
			notify_bump(f->notify);
		if (rc >= 0 && told[0]) {
			log_msg("info", 0, "follower: the shared log is reachable again; copying");
			told[0] = '\0';
		}
		/* Told when it starts failing, then once a minute while it
		 * lasts, not at every try. */
		if (rc < 0 && (!told[0] || clock_mono_ms() - told_at >= FOLLOW_TELL_MS)) {
			log_msg("error", 0, "follower: %s; held subscribers wait, trying "
				"again every %d ms", err, FOLLOW_RETRY_MS);
			snprintf(told, sizeof told, "%s", err);
			told_at = clock_mono_ms();
			notify_storage_error(f->notify);
		}
		if (rc < 0)
			poll(NULL, 0, FOLLOW_RETRY_MS);
	}
	return NULL;
}

int follow_start(const struct conf *conf, struct notify *n, char *err, size_t errlen)
{
	static bool started;
	if (!pglog_is_uri(conf->db) || started)
		return 0;
	struct buf path = BUF_INIT;
	buf_printf(&path, "%s/follower.lock", conf->state_dir);
	int fd = open(path.p, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s (COMET_STATE_DIR must be a directory this user "
			 "may write)", path.p, strerror(errno));
		buf_free(&path);
		return -1;
	}
	buf_free(&path);
	struct follow *f = xcalloc(1, sizeof *f);
	f->conf = conf;
	f->notify = n;
	f->lock_fd = fd;
	/* libpq and SQLite both need more than the smallest stacks. */
	int rc = thread_spawn(follow_main, f, 256);
	if (rc) {
		snprintf(err, errlen, "follower: pthread_create: %s", strerror(rc));
		close(fd);
		free(f);
		return -1;
	}
	started = true;
	return 0;
}
