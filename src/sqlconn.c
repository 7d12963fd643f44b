/* sqlconn: one connection to the SQLite log's file (sqlconn.h says what
 * it covers and its lifecycle).
 *
 * Schema (user_version 1):
 *   msg(id INTEGER PRIMARY KEY AUTOINCREMENT, channel, time, type, data)
 *     AUTOINCREMENT so that an id is never given twice, even after the
 *     newest messages were deleted; index (channel, id) serves
 *     "channel IN (...) AND id > ?" directly.
 *   dropped(channel PRIMARY KEY, id): the newest id retention or DELETE
 *     removed from that channel; a reader whose cursor is below it has a gap.
 * Added in user_version 2:
 *   chan(name PRIMARY KEY, n): how many messages each channel holds, kept
 *     in step by every insert and delete, so that the per-channel count
 *     limit costs one lookup per publish instead of a walk of the index.
 * Added in user_version 3: origin, presence, member, owner (migrate_v3). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "sqlconn.h"
#include "user.h"

/* The connection's own statements. */
enum { S_BEGIN = SQLCONN_STMT_CONN, S_BEGIN_IMMEDIATE, S_COMMIT, S_ROLLBACK, S_END };
_Static_assert(S_END <= SQLCONN_STMT_MSG, "sqlconn's statements overlap sqlmsg's");

static const char *const sql[] = {
	[S_BEGIN - SQLCONN_STMT_CONN] = "BEGIN",
	[S_BEGIN_IMMEDIATE - SQLCONN_STMT_CONN] = "BEGIN IMMEDIATE",
	[S_COMMIT - SQLCONN_STMT_CONN] = "COMMIT",
	[S_ROLLBACK - SQLCONN_STMT_CONN] = "ROLLBACK",
};

/* What a host's copy of a shared log adds: how far it has copied. */
static const char copy_schema[] =
	"CREATE TABLE IF NOT EXISTS copied(one INTEGER PRIMARY KEY CHECK (one = 1),"
	" id INTEGER NOT NULL, rev INTEGER NOT NULL, log TEXT NOT NULL)";

static const char schema_v1[] =
	"CREATE TABLE msg(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" channel TEXT NOT NULL, time INTEGER NOT NULL,"
	" type TEXT NOT NULL, data TEXT NOT NULL);"
	"CREATE INDEX msg_channel_id ON msg(channel, id);"
	"CREATE TABLE dropped(channel TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX dropped_id ON dropped(id);"
	"PRAGMA user_version=1;";

/* Version 1 to 2: per-channel counts. */
static const char migrate_v2[] =
	"CREATE TABLE chan(name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO chan SELECT channel, count(*) FROM msg GROUP BY channel;"
	"PRAGMA user_version=2;";

/* Version 2 to 3: each message's origin (the publisher's connection, not
 * to be delivered back to it); presence: the subscriptions of each member
 * of a presence channel by owner (a process), the members (gone: when its
 * last subscription ended, the grace running), and the owners' last
 * signs of life. */
static const char migrate_v3[] =
	"ALTER TABLE msg ADD COLUMN origin TEXT;"
	"CREATE TABLE presence(channel TEXT NOT NULL, member TEXT NOT NULL, owner TEXT NOT NULL,"
	" subs INTEGER NOT NULL, PRIMARY KEY(channel, member, owner)) WITHOUT ROWID;"
	"CREATE INDEX presence_owner ON presence(owner);"
	"CREATE TABLE member(channel TEXT NOT NULL, member TEXT NOT NULL, info TEXT NOT NULL,"
	" gone INTEGER, PRIMARY KEY(channel, member)) WITHOUT ROWID;"
	"CREATE INDEX member_gone ON member(gone);"
	"CREATE TABLE owner(owner TEXT PRIMARY KEY, seen INTEGER NOT NULL) WITHOUT ROWID;"
	"PRAGMA user_version=3;";

/* SQLite's errno after a failed open is that of its last attempt (a
 * read-only retry, often ENOENT), so why the database cannot be written is
 * found out here: the directory first, then each of its files. */
static void not_writable(const struct sqlconn *c, const char *what, const char *msg,
			 char *err, size_t errlen)
{
	const char *p = c->path;
	char me[64];
	user_name(geteuid(), me, sizeof me);
	char dir[4096], file[4200];
	user_dir(p, dir, sizeof dir);
	snprintf(file, sizeof file, "%s", dir);
	int e = faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0 ? errno : 0;
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (int i = 0; !e && i < 3; i++) {
		snprintf(file, sizeof file, "%s%s", p, suffix[i]);
		if (faccessat(AT_FDCWD, file, R_OK | W_OK, AT_EACCESS) < 0 && errno != ENOENT)
			e = errno;
	}
	struct stat st;
	if (e == ENOENT)
		snprintf(err, errlen, "%s: its directory %s does not exist (%.40s: %s): create it "
			 "for the user the program runs as, %s: install -d -o %s %s",
			 p, dir, what, msg, me, me, dir);
	else if (e == EROFS)
		snprintf(err, errlen, "%s is on a read-only filesystem (%.40s: %s): remount it "
			 "read-write or set COMET_DB to a writable place", p, what, msg);
	else if (e && stat(file, &st) == 0)
		snprintf(err, errlen, "%s: not writable by %s, the user the program runs as "
			 "(%.40s: %s; %s: %s, owner uid %u, mode %03o): chown -R %s %s, or set "
			 "COMET_DB to a place it may write",
			 p, me, what, msg, file, strerror(e), (unsigned)st.st_uid,
			 (unsigned)st.st_mode & 07777, me, dir);
	else
		snprintf(err, errlen, "%s: cannot open it for writing as %s (%.40s: %s%s%s)",
			 p, me, what, msg, e ? ": " : "", e ? strerror(e) : "");
}

/* err for a storage failure: what went wrong with which file, and what to
 * do about it (these go to the log, for whoever runs the program). what is
 * the step that failed, shortened: it may be a whole SQL script. */
int sqlconn_fail(struct sqlconn *c, int rc, const char *what, char *err, size_t errlen)
{
	const char *p = c->path;
	const char *msg = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
	int e = c->db ? sqlite3_system_errno(c->db) : 0;
	char os[160] = "";
	if (e)
		snprintf(os, sizeof os, ": %s", strerror(e));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(err, errlen, "database is locked by another process for more than %d s: "
			 "%s (%.40s: %s); end that process's transaction (fuser %s lists "
			 "who has the file open)", MSGLOG_BUSY_MS / 1000, p, what, msg, p);
		break;
	case SQLITE_FULL:
		snprintf(err, errlen, "disk full writing %s (%.40s: %s%s): free space on its "
			 "filesystem", p, what, msg, os);
		break;
	case SQLITE_IOERR:
		if (e == ENOSPC || e == EDQUOT)
			snprintf(err, errlen, "disk full writing %s (%.40s: %s%s): free space on "
				 "its filesystem%s", p, what, msg, os,
				 e == EDQUOT ? " or raise the quota" : "");
		else
			snprintf(err, errlen, "I/O error on %s (%.40s: %s%s): check the disk and "
				 "the kernel log (dmesg)", p, what, msg, os);
		break;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		not_writable(c, what, msg, err, errlen);
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		snprintf(err, errlen, "%s is damaged or not a comet-fcgi database (%.40s: %s): "
			 "stop comet-fcgi and move it aside with its -wal and -shm (a new one "
			 "is made), or restore a backup", p, what, msg);
		break;
	case SQLITE_NOMEM:
		snprintf(err, errlen, "out of memory using %s (%.40s)", p, what);
		break;
	default:
		snprintf(err, errlen, "%s: %.40s: %s (%d)", p, what, msg, rc);
	}
	return MSGLOG_EUNAVAIL;
}

/* SQLite's own busy timeout starts again for every statement that meets a
 * lock, so a call of several (BEGIN IMMEDIATE, the inserts, COMMIT, the
 * schema check of an open) could wait a multiple of it. This handler waits
 * until one deadline per call instead. */
static int busy(void *arg, int tries)
{
	const struct sqlconn *c = arg;
	int64_t left = c->deadline - clock_mono_ms();
	if (left <= 0)
		return 0;
	/* 0.1, 0.2, 0.4 ... ms, then every 20 ms: a short lock (a shared
	 * log's copy is written by the publisher and the follower in turn, a
	 * fraction of a millisecond each) costs little, a long one few
	 * wake-ups. */
	int64_t us = tries < 8 ? 100 << tries : 20000;
	/* A copy's lock is only ever held for one copy: looked at every
	 * millisecond, so that a message is not held up behind a long sleep. */
	if (c->copy && us > 1000)
		us = 1000;
	if (us > left * 1000)
		us = left * 1000;
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
	return 1;
}

/* Every call that may meet a lock starts here (sqlconn_enter). */
void sqlconn_begin_call(struct sqlconn *c)
{
	c->deadline = clock_mono_ms() + MSGLOG_BUSY_MS;
	if (c->wait_until && c->wait_until < c->deadline)
		c->deadline = c->wait_until;
	c->wait_until = 0;
}

void sqlconn_wait_until(struct sqlconn *c, int64_t mono_ms)
{
	c->wait_until = mono_ms;
}

sqlite3_stmt *sqlconn_prepare(struct sqlconn *c, int which, const char *q,
			      char *err, size_t errlen)
{
	int rc = sqlite3_prepare_v3(c->db, q, -1, SQLITE_PREPARE_PERSISTENT, &c->st[which], NULL);
	if (rc != SQLITE_OK) {
		sqlconn_fail(c, rc, "prepare", err, errlen);
		return NULL;
	}
	return c->st[which];
}

/* Runs one of the transaction statements. */
static int exec1(struct sqlconn *c, int which, char *err, size_t errlen)
{
	const char *q = sql[which - SQLCONN_STMT_CONN];
	sqlite3_stmt *s = sqlconn_stmt(c, which, q, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sqlconn_fail(c, rc, q, err, errlen);
	return 0;
}

void sqlconn_rollback(struct sqlconn *c)
{
	char ignored[64];
	if (!sqlite3_get_autocommit(c->db))
		exec1(c, S_ROLLBACK, ignored, sizeof ignored);
}

int sqlconn_int(struct sqlconn *c, sqlite3_stmt *s, int64_t dflt, int64_t *out,
		char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	*out = dflt;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlconn_fail(c, rc, "query", err, errlen);
	return 0;
}

int sqlconn_exec(struct sqlconn *c, const char *q, char *err, size_t errlen)
{
	int rc = sqlite3_exec(c->db, q, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sqlconn_fail(c, rc, q, err, errlen);
}

static int user_version(struct sqlconn *c, int64_t *v, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sqlconn_fail(c, rc, "user_version", err, errlen);
	rc = sqlconn_int(c, s, 0, v, err, errlen);
	sqlite3_finalize(s);
	if (rc == 0 && *v > MSGLOG_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this program's (%d): "
			 "upgrade comet-fcgi or set COMET_DB to another file", c->path,
			 (long long)*v, MSGLOG_SCHEMA_VERSION);
		rc = MSGLOG_EUNAVAIL;
	}
	return rc;
}

static int init_schema(struct sqlconn *c, char *err, size_t errlen)
{
	/* Current already (every open but the first): no write lock, so that
	 * an open does not wait behind another process's long write. */
	int64_t v;
	if (user_version(c, &v, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (v == MSGLOG_SCHEMA_VERSION)
		return 0;
	if (sqlconn_exec(c, "BEGIN IMMEDIATE", err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* Again under the lock: another process may have migrated meanwhile. */
	int rc = user_version(c, &v, err, errlen);
	/* One step per version, all in this transaction. */
	if (rc == 0 && v < 1)
		rc = sqlconn_exec(c, schema_v1, err, errlen);
	if (rc == 0 && v < 2)
		rc = sqlconn_exec(c, migrate_v2, err, errlen);
	if (rc == 0 && v < 3)
		rc = sqlconn_exec(c, migrate_v3, err, errlen);
	if (rc == 0)
		rc = sqlconn_exec(c, "COMMIT", err, errlen);
	if (rc < 0)
		sqlconn_rollback(c);
	return rc;
}

/* The connections of this process, for let_go. */
static pthread_mutex_t everyone_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sqlconn *everyone;

/* Renamed over, or deleted. SQLite compares the inode it opened
 * with stat(path): exact, where a stat of our own at open could race. */
bool sqlconn_moved(struct sqlconn *c)
{
	int m = 0;
	return c->db && sqlite3_file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED, &m) ==
		SQLITE_OK && m;
}

static void disconnect(struct sqlconn *c)
{
	for (int i = 0; i < SQLCONN_NSTMT; i++) {
		sqlite3_finalize(c->st[i]);
		c->st[i] = NULL;
	}
	/* SQLite closes a file that moved without checkpointing it and leaves
	 * its -wal and -shm under the path, where the next opener would take
	 * the old file's pages in the -wal for its own. Checkpointed into the
	 * old file and emptied (through the old file's own descriptor) they
	 * are harmless. While another connection still reads the old file
	 * this fails; the last one to close does it. */
	if (sqlconn_moved(c))
		sqlite3_exec(c->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	sqlite3_close_v2(c->db);
	c->db = NULL;
}

/*
 * A file replaced or deleted under running connections. SQLite names the
 * -wal and -shm files after the path, not after the file: a connection
 * that opened the new file while another still has the old one would share
 * the old file's -wal and -shm with it, read the old log's pages as the new
 * file's and write into them (tried: a new connection to a replacement
 * file sees the rows of the file it replaced). Moving to the new file is
 * still the right answer, rather than refusing until a restart: the
 * publishers must reach the log the path names, and with mod_fcgid some
 * processes start afresh on the new file anyway. So the path is opened
 * again only when no connection anywhere still uses it for another file:
 *   - A connection that finds its file moved (every append before and
 *     after its commit, every read once) closes, and so does every
 *     connection of this process still on the old file (let_go); one in
 *     the middle of a call closes itself when the call ends. Each empties
 *     the old file's -wal as it closes (disconnect).
 *   - Any open (the first one too: a process started meanwhile) first asks
 *     whether the -shm is in use while the file the path names is not
 *     (old_file_in_use); then it answers MSGLOG_EUNAVAIL, and the next
 *     call tries again. Other processes' connections notice on their next
 *     call; one that stays idle keeps everyone at 503, and the error says
 *     to restart it.
 * Then every connection ends up on the file the path names, a deleted one
 * made again empty; readers see a log behind their cursors (reset). What
 * this cannot cover: a process killed while on the old file leaves its
 * -wal pages for the next opener. Replace a database with comet-fcgi
 * stopped, together with its -wal and -shm.
 */

struct file_id {
	bool exists;
	unsigned maj, min;
	unsigned long long ino;
	bool held;		/* a lock on this device and inode */
	bool held_ino;		/* a lock on this inode number, any device */
};

static void identify(const char *path, struct file_id *f)
{
	struct stat st;
	memset(f, 0, sizeof *f);
	if (stat(path, &st) == 0) {
		f->exists = true;
		f->maj = major(st.st_dev);
		f->min = minor(st.st_dev);
		f->ino = (unsigned long long)st.st_ino;
	}
}

/* Marks which files any process, this one included, holds a POSIX or OFD
 * lock on, from /proc/locks: opening the files to ask fcntl would drop
 * this process's own POSIX locks on them when closed. */
static void find_locks(struct file_id *f, int n)
{
	FILE *in = fopen("/proc/locks", "re");
	if (!in)
		return;
	char line[256];
	while (fgets(line, sizeof line, in)) {
		if (strstr(line, "->"))
			continue;	/* a process waiting for a lock, not holding one */
		char *save, *t;
		for (t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
			unsigned maj, min;
			unsigned long long ino;
			int end = 0;
			if (sscanf(t, "%x:%x:%llu%n", &maj, &min, &ino, &end) != 3 || t[end])
				continue;
			for (int i = 0; i < n; i++) {
				if (!f[i].exists || f[i].ino != ino)
					continue;
				f[i].held_ino = true;
				f[i].held |= maj == f[i].maj && min == f[i].min;
			}
			break;
		}
	}
	fclose(in);
}

/* Whether a connection still uses path's -shm for a file path no longer
 * names: every WAL connection holds a lock on the -shm, and a shared lock
 * on its database file, from before it takes the first until after it
 * drops it. The -shm counts as held only on the exact device and inode,
 * the database file on its inode number alone: where a filesystem shows
 * other device numbers in /proc/locks than stat gives (btrfs subvolumes,
 * overlayfs), this never refuses, as before. */
static bool old_file_in_use(const char *path)
{
	size_t n = strlen(path) + 5;
	char *shm = xmalloc(n);
	snprintf(shm, n, "%s-shm", path);
	struct file_id f[2];
	bool stale = false;
	/* /proc/locks is not read in one piece: a connection opening meanwhile
	 * can be seen with its -shm lock and not yet its file's. Only what
	 * lasts counts. */
	for (int tries = 0; tries < 3; tries++) {
		if (tries)
			sqlite3_sleep(10);
		identify(path, &f[0]);
		identify(shm, &f[1]);
		find_locks(f, 2);
		stale = f[1].held && !f[0].held_ino;
		if (!stale)
			break;
	}
	free(shm);
	return stale;
}

/* Opens c->path: the connection settings, and the schema made or brought
 * up to date. */
static int open_path(struct sqlconn *c, char *err, size_t errlen)
{
	if (old_file_in_use(c->path)) {
		snprintf(err, errlen, "%s was replaced or deleted while open, and a connection "
			 "still has the old file open, sharing %s-wal and -shm with whatever "
			 "opens the path now: waiting for it to end; restart comet-fcgi if this "
			 "lasts (fuser %s-shm lists the processes)", c->path, c->path, c->path);
		return MSGLOG_EUNAVAIL;
	}
	int rc = sqlite3_open_v2(c->path, &c->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sqlconn_fail(c, rc, "open", err, errlen);
		disconnect(c);
		return MSGLOG_EUNAVAIL;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_handler(c->db, busy, c);
	/* SQLite falls back to reading when it may not write: a writer
	 * refuses it here, rather than at the first publish; a reader reads. */
	c->read_only = sqlite3_db_readonly(c->db, "main") == 1;
	if (c->read_only && !c->reader) {
		not_writable(c, "open", "opened read-only", err, errlen);
		disconnect(c);
		return MSGLOG_EUNAVAIL;
	}
	if (sqlconn_exec(c, "PRAGMA journal_mode=WAL", err, errlen) < 0 ||
	    sqlconn_exec(c, c->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
			 err, errlen) < 0 ||
	    sqlconn_exec(c, "PRAGMA cache_size=-1024", err, errlen) < 0 ||
	    init_schema(c, err, errlen) < 0 ||
	    (c->copy && sqlconn_exec(c, copy_schema, err, errlen) < 0)) {
		disconnect(c);
		return MSGLOG_EUNAVAIL;
	}
	return 0;
}

/* c's file was replaced or deleted: c and every connection of this process
 * still on that file let go of it (see above). */
static void let_go(struct sqlconn *c)
{
	disconnect(c);
	pthread_mutex_lock(&everyone_mu);
	for (struct sqlconn *o = everyone; o; o = o->next) {
		if (o == c || strcmp(o->path, c->path) != 0)
			continue;
		/* Never waits: o's owner may be the one waiting for us. */
		if (pthread_mutex_trylock(&o->mu) == 0) {
			if (sqlconn_moved(o))
				disconnect(o);
			pthread_mutex_unlock(&o->mu);
		} else {
			__atomic_store_n(&o->let_go, true, __ATOMIC_SEQ_CST);
		}
	}
	pthread_mutex_unlock(&everyone_mu);
}

int sqlconn_relocate(struct sqlconn *c, char *err, size_t errlen)
{
	let_go(c);
	return open_path(c, err, errlen);
}

int sqlconn_enter(struct sqlconn *c, bool check, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	sqlconn_begin_call(c);
	int rc = 0;
	if (!c->db)
		rc = open_path(c, err, errlen);
	else if (check && sqlconn_moved(c))
		rc = sqlconn_relocate(c, err, errlen);
	if (rc < 0)
		pthread_mutex_unlock(&c->mu);
	return rc;
}

void sqlconn_leave(struct sqlconn *c)
{
	if (__atomic_exchange_n(&c->let_go, false, __ATOMIC_SEQ_CST) && sqlconn_moved(c))
		disconnect(c);
	pthread_mutex_unlock(&c->mu);
}


int sqlconn_open(struct sqlconn **out, const char *path, int flags, char *err, size_t errlen)
{
	struct sqlconn *c = xcalloc(1, sizeof *c);
	c->path = xstrdup(path);
	c->sync_full = flags & SQLCONN_SYNC_FULL;
	c->reader = flags & SQLCONN_READER;
	c->copy = flags & SQLCONN_COPY;
	pthread_mutex_init(&c->mu, NULL);
	sqlconn_begin_call(c);
	if (open_path(c, err, errlen) < 0) {
		pthread_mutex_destroy(&c->mu);
		free(c->path);
		free(c);
		return MSGLOG_EUNAVAIL;
	}
	pthread_mutex_lock(&everyone_mu);
	c->next = everyone;
	everyone = c;
	pthread_mutex_unlock(&everyone_mu);
	*out = c;
	return 0;
}

void sqlconn_close(struct sqlconn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&everyone_mu);
	for (struct sqlconn **p = &everyone; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&everyone_mu);
	disconnect(c);
	pthread_mutex_destroy(&c->mu);
	free(c->path);
	free(c);
}

int sqlconn_step(struct sqlconn *c, sqlite3_stmt *s, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sqlconn_fail(c, rc, what, err, errlen);
}

int sqlconn_begin(struct sqlconn *c, bool write, char *err, size_t errlen)
{
	return exec1(c, write ? S_BEGIN_IMMEDIATE : S_BEGIN, err, errlen);
}

int sqlconn_commit(struct sqlconn *c, char *err, size_t errlen)
{
	return exec1(c, S_COMMIT, err, errlen);
}

int sqlconn_txn(struct sqlconn *c, bool write,
		int (*fn)(struct sqlconn *, void *, char *, size_t), void *arg,
		char *err, size_t errlen)
{
	int rc = sqlconn_begin(c, write, err, errlen);
	if (rc == 0)
		rc = fn(c, arg, err, errlen);
	if (rc >= 0 && sqlconn_commit(c, err, errlen) < 0)
		rc = MSGLOG_EUNAVAIL;
	if (rc < 0)
		sqlconn_rollback(c);
	return rc;
}
