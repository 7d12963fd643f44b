/* msglog: the SQLite message log.
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
 * Messages are rendered with SQLite's JSON functions, never by hand. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "msglog.h"
#include "pglog.h"
#include "request.h"
#include "user.h"

/* data is embedded as JSON for the JSON types (request_json_type), which
 * were checked to be JSON when published; other types as a string. */
#define RENDER "json_object('id',id,'channel',channel,'time',time,'type',type," \
	"'data',CASE WHEN type IN ('application/json','application/x-pusher-event+json'," \
	"'application/x-comet-presence+json','application/x-mercure-update+json') " \
	"THEN json(data) ELSE data END)"

enum {
	S_BEGIN, S_BEGIN_IMMEDIATE, S_COMMIT, S_ROLLBACK, S_SEQ, S_INSERT,
	S_CHAN_INC, S_CHAN_N, S_CHAN_SUB, S_CHAN_DROP, S_AGE_OLDEST, S_AGE_COUNTS, S_CHAN_GC,
	S_KEEP_CUT, S_MARK, S_DEL_CHAN_UPTO, S_AGE_CUT, S_AGE_MARK, S_AGE_DEL,
	S_SINCE, S_MARKS_AFTER, S_INFO, S_CHAN_MAX, S_COUNT,
	S_ACK, S_COPIED, S_COPIED_SET, S_COPY_INSERT, S_SEQ_SET, S_SEQ_NEW,
	S_PRES_INC, S_PRES_DEC, S_PRES_GC, S_MEMBER_GONE_AT, S_MEMBER_ADD, S_MEMBER_BACK,
	S_MEMBER_LEFT, S_MEMBER_EXPIRED, S_MEMBER_DEL, S_OWNER_BEAT, S_OWNERS, S_OWNER_DEL,
	S_OWNER_SUBS_DEL, S_MEMBER_ORPHANS, S_MEMBERS, S_MEMBER_COUNTS, S_MEMBER_IDS,
	S_PRESENCE_CHANNELS, S_FIND_ORIGIN,
	S_NSTMT
};

static const char *const sql[S_NSTMT] = {
	[S_BEGIN] = "BEGIN",
	[S_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SEQ] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name='msg'),0)",
	/* No RETURNING on the publish path: SQLite collects RETURNING rows in
	 * an ephemeral table with a page cache of its own, allocated and freed
	 * per statement (about 90 KB each time). */
	[S_INSERT] = "INSERT INTO msg(channel,time,type,data,origin) VALUES(?1,?2,?3,?4,?5)",
	[S_CHAN_INC] = "INSERT INTO chan(name,n) VALUES(?1,1) "
		       "ON CONFLICT(name) DO UPDATE SET n=n+1",
	[S_CHAN_N] = "SELECT n FROM chan WHERE name=?1",
	[S_CHAN_SUB] = "UPDATE chan SET n=n-?2 WHERE name=?1",
	[S_CHAN_DROP] = "DELETE FROM chan WHERE name=?1",
	[S_AGE_OLDEST] = "SELECT time FROM msg ORDER BY id LIMIT 1",
	[S_AGE_COUNTS] = "UPDATE chan SET n=n-d.c FROM (SELECT channel,count(*) AS c FROM msg "
			 "WHERE id<=?1 GROUP BY channel) AS d WHERE chan.name=d.channel",
	[S_CHAN_GC] = "DELETE FROM chan WHERE n<=0",
	/* The newest of the k oldest messages of a channel: ?2 is k - 1. */
	[S_KEEP_CUT] = "SELECT id FROM msg WHERE channel=?1 ORDER BY id LIMIT 1 OFFSET ?2",
	[S_MARK] = "INSERT INTO dropped(channel,id) VALUES(?1,?2) "
		   "ON CONFLICT(channel) DO UPDATE SET id=max(id,excluded.id)",
	[S_DEL_CHAN_UPTO] = "DELETE FROM msg WHERE channel=?1 AND id<=?2",
	[S_AGE_CUT] = "SELECT max(id) FROM (SELECT id,time FROM msg ORDER BY id LIMIT "
		      "256) WHERE time<?1",
	[S_AGE_MARK] = "INSERT INTO dropped(channel,id) SELECT channel,max(id) FROM msg "
		       "WHERE id<=?1 GROUP BY channel "
		       "ON CONFLICT(channel) DO UPDATE SET id=max(id,excluded.id)",
	[S_AGE_DEL] = "DELETE FROM msg WHERE id<=?1",
	[S_SINCE] = "SELECT id,channel," RENDER ",origin FROM msg WHERE id>?1 ORDER BY id LIMIT ?2",
	[S_MARKS_AFTER] = "SELECT channel,id FROM dropped WHERE id>?1",
	[S_INFO] = "SELECT json_object('channel',?1,'last_id',coalesce(max(id),0),"
		   "'first_id',coalesce(min(id),0),'messages',count(*)) "
		   "FROM msg WHERE channel=?1",
	[S_CHAN_MAX] = "SELECT max(id),count(*) FROM msg WHERE channel=?1",
	[S_COUNT] = "SELECT count(*) FROM msg",
	/* A host's copy of a shared log (see copy_changes). */
	[S_ACK] = "SELECT json_object('id',?1,'channel',?2,'time',?3)",
	[S_COPIED] = "SELECT id,rev,log FROM copied",
	[S_COPIED_SET] = "INSERT INTO copied(one,id,rev,log) VALUES(1,?1,?2,?3) "
			 "ON CONFLICT(one) DO UPDATE SET id=excluded.id,rev=excluded.rev,"
			 "log=excluded.log",
	[S_COPY_INSERT] = "INSERT INTO msg(id,channel,time,type,data,origin) "
			  "VALUES(?1,?2,?3,?4,?5,?6)",
	[S_SEQ_SET] = "UPDATE sqlite_sequence SET seq=?1 WHERE name='msg'",
	[S_SEQ_NEW] = "INSERT INTO sqlite_sequence(name,seq) SELECT 'msg',?1 "
		      "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name='msg')",
	/* Presence (see msglog_presence). */
	[S_PRES_INC] = "INSERT INTO presence(channel,member,owner,subs) VALUES(?1,?2,?3,1) "
		       "ON CONFLICT DO UPDATE SET subs=subs+1",
	[S_PRES_DEC] = "UPDATE presence SET subs=subs-1 WHERE channel=?1 AND member=?2 AND owner=?3",
	[S_PRES_GC] = "DELETE FROM presence WHERE subs<=0",
	[S_MEMBER_GONE_AT] = "SELECT coalesce(gone,-1) FROM member WHERE channel=?1 AND member=?2",
	[S_MEMBER_ADD] = "INSERT INTO member(channel,member,info,gone) VALUES(?1,?2,?3,NULL)",
	[S_MEMBER_BACK] = "UPDATE member SET gone=NULL WHERE channel=?1 AND member=?2",
	[S_MEMBER_LEFT] = "UPDATE member SET gone=?3 WHERE channel=?1 AND member=?2 AND gone IS "
			  "NULL AND NOT EXISTS (SELECT 1 FROM presence WHERE channel=?1 AND "
			  "member=?2)",
	[S_MEMBER_EXPIRED] = "SELECT channel,member,info FROM member WHERE gone<=?1 LIMIT 256",
	[S_MEMBER_DEL] = "DELETE FROM member WHERE channel=?1 AND member=?2",
	[S_OWNER_BEAT] = "INSERT INTO owner(owner,seen) VALUES(?1,?2) "
			 "ON CONFLICT DO UPDATE SET seen=excluded.seen",
	[S_OWNERS] = "SELECT owner,seen FROM owner",
	[S_OWNER_DEL] = "DELETE FROM owner WHERE owner=?1",
	[S_OWNER_SUBS_DEL] = "DELETE FROM presence WHERE owner=?1",
	[S_MEMBER_ORPHANS] = "UPDATE member SET gone=?1 WHERE gone IS NULL AND NOT EXISTS "
			     "(SELECT 1 FROM presence p WHERE p.channel=member.channel AND "
			     "p.member=member.member)",
	[S_MEMBERS] = "SELECT json_group_array(json_object('id',member,'info',json(info))) "
		      "FROM (SELECT member,info FROM member WHERE channel=?1 ORDER BY member)",
	[S_MEMBER_COUNTS] = "SELECT (SELECT count(*) FROM member WHERE channel=?1),"
			    "(SELECT coalesce(sum(subs),0) FROM presence WHERE channel=?1)",
	[S_FIND_ORIGIN] = "SELECT max(id) FROM msg WHERE channel=?1 AND origin=?2",
	[S_MEMBER_IDS] = "SELECT json_group_array(json_object('id',member)) "
			 "FROM (SELECT member FROM member WHERE channel=?1 ORDER BY member)",
	[S_PRESENCE_CHANNELS] = "SELECT channel,count(*),(SELECT coalesce(sum(subs),0) FROM "
				"presence p WHERE p.channel=m.channel) FROM member m WHERE "
				"substr(channel,1,length(?1))=?1 GROUP BY channel ORDER BY channel "
				"LIMIT 10000",
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

struct msglog {
	sqlite3 *db;		/* NULL after letting go of a replaced file, until reopened */
	/* A log shared by several hosts: db is this host's copy of it, which
	 * readers read; writes go to pg and are then copied. */
	struct pglog *pg;
	char *path;
	bool sync_full;
	bool reader;		/* MSGLOG_READER */
	bool read_only;		/* the file opened read-only, last time */
	long retain, retain_seconds;
	int64_t deadline;	/* clock_mono_ms() when this call stops waiting for locks */
	int64_t wait_until;	/* msglog_wait_until's, for the next call; 0: none */
	/* Held through every call, so that another connection of the process
	 * may close db between calls (let_go). */
	pthread_mutex_t mu;
	bool let_go;		/* set by another connection: close db when the call ends */
	struct msglog *next;	/* in `everyone` */
	sqlite3_stmt *st[S_NSTMT];
	sqlite3_stmt *rd[REQ_MAX_CHANNELS + 1];	/* by channel count */
	sqlite3_stmt *gap[REQ_MAX_CHANNELS + 1];
};

/* SQLite's errno after a failed open is that of its last attempt (a
 * read-only retry, often ENOENT), so why the database cannot be written is
 * found out here: the directory first, then each of its files. */
static void not_writable(const struct msglog *l, const char *what, const char *msg,
			 char *err, size_t errlen)
{
	const char *p = l->path;
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
static int fail(struct msglog *l, int rc, const char *what, char *err, size_t errlen)
{
	const char *p = l->path;
	const char *msg = l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc);
	int e = l->db ? sqlite3_system_errno(l->db) : 0;
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
		not_writable(l, what, msg, err, errlen);
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
	const struct msglog *l = arg;
	int64_t left = l->deadline - clock_mono_ms();
	if (left <= 0)
		return 0;
	/* 0.1, 0.2, 0.4 ... ms, then every 20 ms: a short lock (a shared
	 * log's copy is written by the publisher and the follower in turn, a
	 * fraction of a millisecond each) costs little, a long one few
	 * wake-ups. */
	int64_t us = tries < 8 ? 100 << tries : 20000;
	/* A copy's lock is only ever held for one copy: looked at every
	 * millisecond, so that a message is not held up behind a long sleep. */
	if (l->pg && us > 1000)
		us = 1000;
	if (us > left * 1000)
		us = left * 1000;
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
	return 1;
}

/* Every call that may meet a lock starts here. */
static void begin_call(struct msglog *l)
{
	l->deadline = clock_mono_ms() + MSGLOG_BUSY_MS;
	if (l->wait_until && l->wait_until < l->deadline)
		l->deadline = l->wait_until;
	l->wait_until = 0;
}

void msglog_wait_until(struct msglog *l, int64_t mono_ms)
{
	l->wait_until = mono_ms;
}

static sqlite3_stmt *stmt(struct msglog *l, int which, char *err, size_t errlen)
{
	if (!l->st[which]) {
		int rc = sqlite3_prepare_v3(l->db, sql[which], -1, SQLITE_PREPARE_PERSISTENT,
					    &l->st[which], NULL);
		if (rc != SQLITE_OK) {
			fail(l, rc, "prepare", err, errlen);
			return NULL;
		}
	}
	return l->st[which];
}

/* Runs a statement that returns no rows of interest. */
static int exec1(struct msglog *l, int which, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(l, which, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(l, rc, sql[which], err, errlen);
	return 0;
}

static void rollback(struct msglog *l)
{
	char ignored[64];
	if (!sqlite3_get_autocommit(l->db))
		exec1(l, S_ROLLBACK, ignored, sizeof ignored);
}

/* One-row integer query: *out gets column 0, or dflt when no row/NULL. */
static int int_query(struct msglog *l, sqlite3_stmt *s, int64_t dflt, int64_t *out,
		     char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	*out = dflt;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(l, rc, "query", err, errlen);
	return 0;
}

static int seq(struct msglog *l, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(l, S_SEQ, err, errlen);
	return s ? int_query(l, s, 0, out, err, errlen) : MSGLOG_EUNAVAIL;
}

static int pragma(struct msglog *l, const char *q, char *err, size_t errlen)
{
	int rc = sqlite3_exec(l->db, q, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(l, rc, q, err, errlen);
}

static int user_version(struct msglog *l, int64_t *v, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(l->db, "PRAGMA user_version", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(l, rc, "user_version", err, errlen);
	rc = int_query(l, s, 0, v, err, errlen);
	sqlite3_finalize(s);
	if (rc == 0 && *v > MSGLOG_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this program's (%d): "
			 "upgrade comet-fcgi or set COMET_DB to another file", l->path,
			 (long long)*v, MSGLOG_SCHEMA_VERSION);
		rc = MSGLOG_EUNAVAIL;
	}
	return rc;
}

static int init_schema(struct msglog *l, char *err, size_t errlen)
{
	/* Current already (every open but the first): no write lock, so that
	 * an open does not wait behind another process's long write. */
	int64_t v;
	if (user_version(l, &v, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (v == MSGLOG_SCHEMA_VERSION)
		return 0;
	if (pragma(l, "BEGIN IMMEDIATE", err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* Again under the lock: another process may have migrated meanwhile. */
	int rc = user_version(l, &v, err, errlen);
	/* One step per version, all in this transaction. */
	if (rc == 0 && v < 1)
		rc = pragma(l, schema_v1, err, errlen);
	if (rc == 0 && v < 2)
		rc = pragma(l, migrate_v2, err, errlen);
	if (rc == 0 && v < 3)
		rc = pragma(l, migrate_v3, err, errlen);
	if (rc == 0)
		rc = pragma(l, "COMMIT", err, errlen);
	if (rc < 0)
		rollback(l);
	return rc;
}

/* The connections of this process, for let_go. */
static pthread_mutex_t everyone_mu = PTHREAD_MUTEX_INITIALIZER;
static struct msglog *everyone;

/* Whether the file this connection has open is no longer the one its path
 * names (renamed over, or deleted). SQLite compares the inode it opened
 * with stat(path): exact, where a stat of our own at open could race. */
static bool moved(struct msglog *l)
{
	int m = 0;
	return l->db && sqlite3_file_control(l->db, "main", SQLITE_FCNTL_HAS_MOVED, &m) ==
		SQLITE_OK && m;
}

static void disconnect(struct msglog *l)
{
	for (int i = 0; i < S_NSTMT; i++) {
		sqlite3_finalize(l->st[i]);
		l->st[i] = NULL;
	}
	for (int i = 0; i <= REQ_MAX_CHANNELS; i++) {
		sqlite3_finalize(l->rd[i]);
		sqlite3_finalize(l->gap[i]);
		l->rd[i] = l->gap[i] = NULL;
	}
	/* SQLite closes a file that moved without checkpointing it and leaves
	 * its -wal and -shm under the path, where the next opener would take
	 * the old file's pages in the -wal for its own. Checkpointed into the
	 * old file and emptied (through the old file's own descriptor) they
	 * are harmless. While another connection still reads the old file
	 * this fails; the last one to close does it. */
	if (moved(l))
		sqlite3_exec(l->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	sqlite3_close_v2(l->db);
	l->db = NULL;
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

/* Opens l->path: the connection settings, and the schema made or brought
 * up to date. */
static int open_path(struct msglog *l, char *err, size_t errlen)
{
	if (old_file_in_use(l->path)) {
		snprintf(err, errlen, "%s was replaced or deleted while open, and a connection "
			 "still has the old file open, sharing %s-wal and -shm with whatever "
			 "opens the path now: waiting for it to end; restart comet-fcgi if this "
			 "lasts (fuser %s-shm lists the processes)", l->path, l->path, l->path);
		return MSGLOG_EUNAVAIL;
	}
	int rc = sqlite3_open_v2(l->path, &l->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		fail(l, rc, "open", err, errlen);
		disconnect(l);
		return MSGLOG_EUNAVAIL;
	}
	sqlite3_extended_result_codes(l->db, 1);
	sqlite3_busy_handler(l->db, busy, l);
	/* SQLite falls back to reading when it may not write: a writer
	 * refuses it here, rather than at the first publish; a reader reads. */
	l->read_only = sqlite3_db_readonly(l->db, "main") == 1;
	if (l->read_only && !l->reader) {
		not_writable(l, "open", "opened read-only", err, errlen);
		disconnect(l);
		return MSGLOG_EUNAVAIL;
	}
	if (pragma(l, "PRAGMA journal_mode=WAL", err, errlen) < 0 ||
	    pragma(l, l->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
		   err, errlen) < 0 ||
	    pragma(l, "PRAGMA cache_size=-1024", err, errlen) < 0 ||
	    init_schema(l, err, errlen) < 0 ||
	    (l->pg && pragma(l, copy_schema, err, errlen) < 0)) {
		disconnect(l);
		return MSGLOG_EUNAVAIL;
	}
	return 0;
}

/* l's file was replaced or deleted: l and every connection of this process
 * still on that file let go of it (see above). */
static void let_go(struct msglog *l)
{
	disconnect(l);
	pthread_mutex_lock(&everyone_mu);
	for (struct msglog *o = everyone; o; o = o->next) {
		if (o == l || strcmp(o->path, l->path) != 0)
			continue;
		/* Never waits: o's owner may be the one waiting for us. */
		if (pthread_mutex_trylock(&o->mu) == 0) {
			if (moved(o))
				disconnect(o);
			pthread_mutex_unlock(&o->mu);
		} else {
			__atomic_store_n(&o->let_go, true, __ATOMIC_SEQ_CST);
		}
	}
	pthread_mutex_unlock(&everyone_mu);
}

/* Reopens the path after l's file moved. */
static int relocate(struct msglog *l, char *err, size_t errlen)
{
	let_go(l);
	return open_path(l, err, errlen);
}

/* Starts a call: takes l, arms the lock-wait deadline, reopens the path if
 * the file was let go, and when check (a read) is set, follows a file
 * moved since: one stat per call. Holds l->mu until leave, unless it fails. */
static int enter(struct msglog *l, bool check, char *err, size_t errlen)
{
	pthread_mutex_lock(&l->mu);
	begin_call(l);
	int rc = 0;
	if (!l->db)
		rc = open_path(l, err, errlen);
	else if (check && moved(l))
		rc = relocate(l, err, errlen);
	if (rc < 0)
		pthread_mutex_unlock(&l->mu);
	return rc;
}

static void leave(struct msglog *l)
{
	if (__atomic_exchange_n(&l->let_go, false, __ATOMIC_SEQ_CST) && moved(l))
		disconnect(l);
	pthread_mutex_unlock(&l->mu);
}

const char *msglog_local_path(const char *db, const char *state_dir, char *buf, size_t n)
{
	if (!pglog_is_uri(db))
		return db;
	snprintf(buf, n, "%s/copy.db", state_dir);
	return buf;
}

bool msglog_read_only(const struct msglog *l)
{
	return l->read_only;
}

int msglog_open(struct msglog **out, const char *db, const char *state_dir, int flags,
		char *err, size_t errlen)
{
	struct msglog *l = xcalloc(1, sizeof *l);
	char local[4096];
	l->retain = 1000;
	l->retain_seconds = 86400;
	l->path = xstrdup(msglog_local_path(db, state_dir, local, sizeof local));
	if (pglog_is_uri(db))
		pglog_open(&l->pg, db, state_dir);
	l->sync_full = flags & MSGLOG_SYNC_FULL;
	l->reader = flags & MSGLOG_READER;
	pthread_mutex_init(&l->mu, NULL);
	begin_call(l);
	if (open_path(l, err, errlen) < 0) {
		pthread_mutex_destroy(&l->mu);
		pglog_close(l->pg);
		free(l->path);
		free(l);
		return MSGLOG_EUNAVAIL;
	}
	pthread_mutex_lock(&everyone_mu);
	l->next = everyone;
	everyone = l;
	pthread_mutex_unlock(&everyone_mu);
	*out = l;
	return 0;
}

void msglog_close(struct msglog *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&everyone_mu);
	for (struct msglog **p = &everyone; *p; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&everyone_mu);
	disconnect(l);
	pglog_close(l->pg);
	pthread_mutex_destroy(&l->mu);
	free(l->path);
	free(l);
}

void msglog_retention(struct msglog *l, long count, long seconds)
{
	l->retain = count;
	l->retain_seconds = seconds;
}

/* Counts the message just added to chan and drops the channel's oldest
 * beyond the per-channel limit (one, in the steady state). */
static int trim_count(struct msglog *l, const char *chan, char *err, size_t errlen)
{
	sqlite3_stmt *inc = stmt(l, S_CHAN_INC, err, errlen);
	sqlite3_stmt *cnt = stmt(l, S_CHAN_N, err, errlen);
	if (!inc || !cnt)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(inc, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_text(cnt, 1, chan, -1, SQLITE_STATIC);
	int64_t n;
	if (int_query(l, inc, 0, &n, err, errlen) < 0 || int_query(l, cnt, 0, &n, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (n <= l->retain)
		return 0;
	int64_t k = n - l->retain, cut, ignored;
	sqlite3_stmt *s = stmt(l, S_KEEP_CUT, err, errlen);
	sqlite3_stmt *m = stmt(l, S_MARK, err, errlen);
	sqlite3_stmt *d = stmt(l, S_DEL_CHAN_UPTO, err, errlen);
	sqlite3_stmt *sub = stmt(l, S_CHAN_SUB, err, errlen);
	if (!s || !m || !d || !sub)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, k - 1);
	if (int_query(l, s, 0, &cut, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(m, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(m, 2, cut);
	sqlite3_bind_text(d, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(d, 2, cut);
	sqlite3_bind_text(sub, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sub, 2, k);
	if (int_query(l, m, 0, &ignored, err, errlen) < 0 ||
	    int_query(l, d, 0, &ignored, err, errlen) < 0 ||
	    int_query(l, sub, 0, &ignored, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	return 0;
}

/* Drops messages older than the age limit, oldest first, a bounded number
 * per call so that no publish pays for a long backlog at once. Only the
 * oldest message is looked at unless it has expired. */
static int trim_age(struct msglog *l, int64_t now_ms, char *err, size_t errlen)
{
	int64_t cutoff = now_ms - (int64_t)l->retain_seconds * 1000, oldest;
	sqlite3_stmt *o = stmt(l, S_AGE_OLDEST, err, errlen);
	if (!o || int_query(l, o, INT64_MAX, &oldest, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (oldest >= cutoff)
		return 0;
	sqlite3_stmt *s = stmt(l, S_AGE_CUT, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_int64(s, 1, cutoff);
	int64_t cut;
	if (int_query(l, s, 0, &cut, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (cut == 0)
		return 0;
	sqlite3_stmt *m = stmt(l, S_AGE_MARK, err, errlen);
	sqlite3_stmt *c = stmt(l, S_AGE_COUNTS, err, errlen);
	sqlite3_stmt *d = stmt(l, S_AGE_DEL, err, errlen);
	sqlite3_stmt *gc = stmt(l, S_CHAN_GC, err, errlen);
	if (!m || !c || !d || !gc)
		return MSGLOG_EUNAVAIL;
	int64_t ignored;
	sqlite3_bind_int64(m, 1, cut);
	sqlite3_bind_int64(c, 1, cut);
	sqlite3_bind_int64(d, 1, cut);
	if (int_query(l, m, 0, &ignored, err, errlen) < 0 ||
	    int_query(l, c, 0, &ignored, err, errlen) < 0 ||
	    int_query(l, d, 0, &ignored, err, errlen) < 0 ||
	    int_query(l, gc, 0, &ignored, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	return 0;
}

/* One message appended within the caller's write transaction, with the
 * channel's count limit applied; its id into *id. */
static int insert_one(struct msglog *l, const struct msglog_msg *m, int64_t now_ms, int64_t *id,
		      char *err, size_t errlen)
{
	sqlite3_stmt *ins = stmt(l, S_INSERT, err, errlen);
	if (!ins)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(ins, 1, m->channel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, now_ms);
	sqlite3_bind_text(ins, 3, m->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, m->data, (int)m->len, SQLITE_STATIC);
	if (m->origin)
		sqlite3_bind_text(ins, 5, m->origin, -1, SQLITE_STATIC);
	int rc = sqlite3_step(ins);
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	if (rc != SQLITE_DONE)
		return fail(l, rc, "insert", err, errlen);
	*id = sqlite3_last_insert_rowid(l->db);
	return trim_count(l, m->channel, err, errlen);
}

/* An append that found the path naming another file: not committed, or
 * committed into a file the log no longer is (not acknowledged). */
#define MOVED 1

static int append_once(struct msglog *l, const struct msglog_msg *m, int n, int64_t now_ms,
		       int64_t *ids, struct buf *acks, struct msglog_item *ack_at,
		       char *err, size_t errlen)
{
	if (exec1(l, S_BEGIN_IMMEDIATE, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	size_t acks_len = acks->len;
	int result = MSGLOG_EUNAVAIL;
	for (int i = 0; i < n; i++) {
		if (insert_one(l, &m[i], now_ms, &ids[i], err, errlen) < 0)
			goto undo;
		if (i)
			buf_addc(acks, ',');
		size_t at = acks->len;
		/* Channel names are A-Z a-z 0-9 _ - . : @ (msglog.h): nothing
		 * in them needs escaping. */
		buf_printf(acks, "{\"id\":%lld,\"channel\":\"%s\",\"time\":%lld}",
			   (long long)ids[i], m[i].channel, (long long)now_ms);
		if (ack_at)
			ack_at[i] = (struct msglog_item){ ids[i], at, acks->len - at };
	}
	if (trim_age(l, now_ms, err, errlen) < 0)
		goto undo;
	/* Checked under the write lock, right before the commit, and again
	 * after it: a file renamed over or deleted during the commit took it
	 * into a file nobody will read again. That append is retried on the
	 * new file; a connection still reading the old one might deliver it
	 * too, under another id: delivered twice, never lost. */
	if (moved(l)) {
		result = MOVED;
		goto undo;
	}
	if (exec1(l, S_COMMIT, err, errlen) < 0)
		goto undo;
	if (moved(l)) {
		acks->len = acks_len;
		return MOVED;
	}
	return 0;
undo:
	rollback(l);
	acks->len = acks_len;
	return result;
}

/* Copying a shared log: each call brings this host's copy up to the
 * shared log's newest commit, in id order, in transactions of at most
 * COPY_ROWS messages. The copy's write lock is taken before the shared log
 * is read, so that a message is read from PostgreSQL once per host, by
 * whichever process (the follower, or the publisher itself) gets there
 * first; the other finds nothing left to read. */
#define COPY_ROWS 1000
#define COPY_WAIT_MS 100

static int bind_step(struct msglog *l, sqlite3_stmt *s, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(l, rc, "copy", err, errlen);
}

static int copied(struct msglog *l, int64_t *id, int64_t *rev, char *log, size_t loglen,
		  char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(l, S_COPIED, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	*id = 0;
	*rev = -1;
	log[0] = '\0';
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*rev = sqlite3_column_int64(s, 1);
		snprintf(log, loglen, "%s", (const char *)sqlite3_column_text(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(l, rc, "copy", err, errlen);
}

static int apply_changes(struct msglog *l, const struct pglog_changes *c, char *err, size_t errlen)
{
	if (c->behind && pragma(l, "DELETE FROM msg; DELETE FROM dropped; DELETE FROM chan",
				err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* A copy keeps no per-channel counts (chan): they serve retention,
	 * which the shared log does; the copy applies its marks. */
	sqlite3_stmt *ins = stmt(l, S_COPY_INSERT, err, errlen);
	sqlite3_stmt *mark = stmt(l, S_MARK, err, errlen);
	sqlite3_stmt *del = stmt(l, S_DEL_CHAN_UPTO, err, errlen);
	sqlite3_stmt *seq_set = stmt(l, S_SEQ_SET, err, errlen);
	sqlite3_stmt *seq_new = stmt(l, S_SEQ_NEW, err, errlen);
	sqlite3_stmt *done = stmt(l, S_COPIED_SET, err, errlen);
	if (!ins || !mark || !del || !seq_set || !seq_new || !done)
		return MSGLOG_EUNAVAIL;
	for (int i = 0; i < c->nrows; i++) {
		const struct pglog_row *r = &c->rows[i];
		sqlite3_bind_int64(ins, 1, r->id);
		sqlite3_bind_text(ins, 2, r->channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, r->time);
		sqlite3_bind_text(ins, 4, r->type, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, r->data, (int)r->len, SQLITE_STATIC);
		if (r->origin)
			sqlite3_bind_text(ins, 6, r->origin, -1, SQLITE_STATIC);
		if (bind_step(l, ins, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
	}
	for (int i = 0; i < c->nmarks; i++) {
		const struct msglog_mark *k = &c->marks[i];
		sqlite3_bind_text(mark, 1, k->channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(mark, 2, k->id);
		sqlite3_bind_text(del, 1, k->channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(del, 2, k->id);
		if (bind_step(l, mark, err, errlen) < 0 || bind_step(l, del, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
	}
	/* The copy's newest id is the shared log's, even when that message
	 * was dropped before it could be copied (last_id in answers). */
	sqlite3_bind_int64(seq_set, 1, c->last_id);
	sqlite3_bind_int64(seq_new, 1, c->last_id);
	sqlite3_bind_int64(done, 1, c->last_id);
	sqlite3_bind_int64(done, 2, c->rev);
	sqlite3_bind_text(done, 3, c->log, -1, SQLITE_STATIC);
	if (bind_step(l, seq_set, err, errlen) < 0 || bind_step(l, seq_new, err, errlen) < 0 ||
	    bind_step(l, done, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	return 0;
}

/* Returns how many messages and marks were copied, or MSGLOG_EUNAVAIL.
 * With upto, stops without asking the shared log once the copy holds that
 * id: a publisher whose commit the follower copied first. */
static int copy_changes(struct msglog *l, enum pglog_role role, int64_t upto,
			char *err, size_t errlen)
{
	int total = 0;
	bool more = true;
	while (more) {
		int64_t id, rev;
		char log[40];
		if (exec1(l, S_BEGIN_IMMEDIATE, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
		if (copied(l, &id, &rev, log, sizeof log, err, errlen) < 0) {
			rollback(l);
			return MSGLOG_EUNAVAIL;
		}
		if (upto && id >= upto)
			return exec1(l, S_COMMIT, err, errlen) < 0 ? MSGLOG_EUNAVAIL : total;
		struct pglog_changes c;
		memset(&c, 0, sizeof c);
		if (pglog_changes(l->pg, role, log[0] ? log : NULL, id, rev, COPY_ROWS, &c,
				  err, errlen) < 0 ||
		    apply_changes(l, &c, err, errlen) < 0 ||
		    exec1(l, S_COMMIT, err, errlen) < 0) {
			pglog_changes_free(&c);
			rollback(l);
			return MSGLOG_EUNAVAIL;
		}
		total += c.nrows + c.nmarks + (c.behind || c.last_id != id);
		more = c.more;
		pglog_changes_free(&c);
	}
	return total;
}

/* A publish to a shared log: committed there (acknowledged from then on),
 * then copied here, so that this host's readers see it at once. A failed
 * copy is left to the follower. */
static int append_shared(struct msglog *l, const struct msglog_msg *m, int n, int64_t now_ms,
			 int64_t *ids, struct buf *acks, struct msglog_item *ack_at,
			 char *err, size_t errlen)
{
	int64_t first;
	if (pglog_append(l->pg, m, n, now_ms, l->retain, l->retain_seconds, &first,
			 err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_stmt *s = stmt(l, S_ACK, err, errlen);
	for (int i = 0; i < n; i++) {
		ids[i] = first + i;
		if (i)
			buf_addc(acks, ',');
		size_t at = acks->len;
		/* Rendered by SQLite, as a local log's acks are. */
		if (s) {
			sqlite3_bind_int64(s, 1, ids[i]);
			sqlite3_bind_text(s, 2, m[i].channel, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, now_ms);
			if (sqlite3_step(s) == SQLITE_ROW)
				buf_add(acks, sqlite3_column_text(s, 0),
					(size_t)sqlite3_column_bytes(s, 0));
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
		}
		if (acks->len == at)
			buf_printf(acks, "{\"id\":%lld}", (long long)ids[i]);
		if (ack_at)
			ack_at[i] = (struct msglog_item){ ids[i], at, acks->len - at };
	}
	/* The copy's lock is held across reads of PostgreSQL, which a cut
	 * network can stall for seconds: an acknowledged publish waits for it
	 * a little, then leaves the copying to the follower. */
	char ignored[256];
	msglog_wait_until(l, clock_mono_ms() + COPY_WAIT_MS);
	begin_call(l);
	copy_changes(l, PGLOG_WRITER, first + n - 1, ignored, sizeof ignored);
	return 0;
}

int msglog_append(struct msglog *l, const struct msglog_msg *m, int n, int64_t now_ms,
		  int64_t *ids, struct buf *acks, struct msglog_item *ack_at,
		  char *err, size_t errlen)
{
	if (enter(l, false, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = 0;
	/* Validate before taking the write lock. */
	for (int i = 0; i < n && rc == 0; i++) {
		if (request_json_type(m[i].type) &&
		    !json_valid(m[i].data, m[i].len)) {
			snprintf(err, errlen, "message %d of %d is not valid JSON", i + 1, n);
			rc = MSGLOG_EINVAL;
		} else if (!request_channel_valid(m[i].channel, strlen(m[i].channel))) {
			snprintf(err, errlen, "message %d of %d has an invalid channel name", i + 1, n);
			rc = MSGLOG_EINVAL;
		}
	}
	if (rc == 0 && l->pg) {
		rc = append_shared(l, m, n, now_ms, ids, acks, ack_at, err, errlen);
		leave(l);
		return rc;
	}
	if (rc == 0)
		rc = append_once(l, m, n, now_ms, ids, acks, ack_at, err, errlen);
	/* Once on the file the path names now: a second move meanwhile is
	 * not chased. */
	if (rc == MOVED) {
		rc = relocate(l, err, errlen);
		if (rc == 0)
			rc = append_once(l, m, n, now_ms, ids, acks, ack_at, err, errlen);
	}
	if (rc == MOVED) {
		snprintf(err, errlen, "%s was replaced or deleted while open, twice during one "
			 "append: not appended; whatever replaces it should stop", l->path);
		rc = MSGLOG_EUNAVAIL;
	}
	leave(l);
	return rc;
}

/* The per-channel-count statements are made on first use. */
static sqlite3_stmt *by_count(struct msglog *l, sqlite3_stmt **cache, int n,
			      const char *head, const char *tail, char *err, size_t errlen)
{
	if (cache[n])
		return cache[n];
	struct buf q = BUF_INIT;
	buf_adds(&q, head);
	for (int i = 0; i < n; i++)
		buf_adds(&q, i ? ",?" : "?");
	buf_adds(&q, tail);
	int rc = sqlite3_prepare_v3(l->db, q.p, -1, SQLITE_PREPARE_PERSISTENT, &cache[n], NULL);
	buf_free(&q);
	if (rc != SQLITE_OK) {
		fail(l, rc, "prepare", err, errlen);
		return NULL;
	}
	return cache[n];
}

static int read_rows(struct msglog *l, const char *const *chans, int nchan, int64_t since,
		     int limit, struct msglog_page *pg, char *err, size_t errlen)
{
	sqlite3_stmt *s = by_count(l, l->rd, nchan,
				   "SELECT id," RENDER " FROM msg WHERE channel IN (",
				   ") AND id>? AND (origin IS NULL OR origin IS NOT ?) "
				   "ORDER BY id LIMIT ?", err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	for (int i = 0; i < nchan; i++)
		sqlite3_bind_text(s, i + 1, chans[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, nchan + 1, since);
	if (pg->exclude)
		sqlite3_bind_text(s, nchan + 2, pg->exclude, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, nchan + 3, limit + 1);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(s, 1);
		if (pg->count == limit ||
		    (pg->count && pg->max_bytes && pg->items.len + len + 1 > pg->max_bytes)) {
			pg->more = true;
			break;
		}
		if (pg->count)
			buf_addc(&pg->items, ',');
		if (pg->count == pg->cap) {
			pg->cap = pg->cap ? pg->cap * 2 : 16;
			pg->item = xrealloc(pg->item, (size_t)pg->cap * sizeof *pg->item);
		}
		struct msglog_item *it = &pg->item[pg->count++];
		it->id = pg->last_id = sqlite3_column_int64(s, 0);
		it->off = pg->items.len;
		it->len = len;
		buf_add(&pg->items, sqlite3_column_text(s, 1), it->len);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(l, rc, "read", err, errlen);
	/* Whether messages after the cursor were dropped does not depend on
	 * where this page was cut. */
	if (since == 0)
		return 0;
	s = by_count(l, l->gap, nchan, "SELECT 1 FROM dropped WHERE channel IN (",
		     ") AND id>? LIMIT 1", err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	for (int i = 0; i < nchan; i++)
		sqlite3_bind_text(s, i + 1, chans[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, nchan + 1, since);
	int64_t g;
	if (int_query(l, s, 0, &g, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	pg->gap = g == 1;
	return 0;
}

static int read_page(struct msglog *l, const char *const *chans, int nchan, int64_t since,
		     int limit, struct msglog_page *pg, char *err, size_t errlen)
{
	buf_reset(&pg->items);
	pg->count = 0;
	pg->more = pg->gap = pg->reset = pg->ahead = false;
	if (nchan < 1 || nchan > REQ_MAX_CHANNELS) {
		snprintf(err, errlen, "read: %d channels", nchan);
		return MSGLOG_EUNAVAIL;
	}
	/* One read transaction: the messages and last_id from one snapshot. */
	if (exec1(l, S_BEGIN, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = seq(l, &pg->log_last, err, errlen);
	pg->last_id = pg->log_last;
	/* A cursor ahead of a copy came from a host that copied sooner: it
	 * waits for this copy to catch up. Ahead of a log of its own, the
	 * cursor is from a log since made anew. */
	if (rc == 0 && since > pg->log_last && l->pg) {
		pg->last_id = since;
		pg->ahead = true;
	}
	else if (rc == 0 && since > pg->log_last)
		pg->reset = true;
	else if (rc == 0 && since >= 0) {
		rc = read_rows(l, chans, nchan, since, limit, pg, err, errlen);
		/* Not cut by limit: the cursor moves to the newest id read. */
		if (!pg->more)
			pg->last_id = pg->log_last;
	}
	if (rc == 0)
		rc = exec1(l, S_COMMIT, err, errlen);
	if (rc < 0) {
		rollback(l);
		buf_reset(&pg->items);
		pg->count = 0;
	}
	return rc;
}

int msglog_read(struct msglog *l, const char *const *chans, int nchan, int64_t since,
		int limit, struct msglog_page *pg, char *err, size_t errlen)
{
	if (enter(l, true, err, errlen) < 0) {
		buf_reset(&pg->items);
		pg->count = 0;
		return MSGLOG_EUNAVAIL;
	}
	int rc = read_page(l, chans, nchan, since, limit, pg, err, errlen);
	leave(l);
	return rc;
}

void msglog_page_free(struct msglog_page *pg)
{
	buf_free(&pg->items);
	free(pg->item);
	pg->item = NULL;
	pg->cap = 0;
}

static int since_rows(struct msglog *l, int64_t after, int max, struct msglog_batch *b,
		      char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	sqlite3_stmt *s = stmt(l, S_SINCE, err, errlen);
	sqlite3_stmt *mk = stmt(l, S_MARKS_AFTER, err, errlen);
	if (!s || !mk || exec1(l, S_BEGIN, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = seq(l, &b->last_id, err, errlen);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(s, 1, after);
	sqlite3_bind_int(s, 2, max);
	b->rows = xcalloc((size_t)max, sizeof *b->rows);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct msglog_row *r = &b->rows[b->n++];
		r->id = sqlite3_column_int64(s, 0);
		r->channel = xstrdup((const char *)sqlite3_column_text(s, 1));
		r->jsonlen = (size_t)sqlite3_column_bytes(s, 2);
		r->json = xstrndup((const char *)sqlite3_column_text(s, 2), r->jsonlen);
		if (sqlite3_column_type(s, 3) != SQLITE_NULL)
			r->origin = xstrdup((const char *)sqlite3_column_text(s, 3));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		rc = fail(l, rc, "since", err, errlen);
		goto out;
	}
	if (b->n == max) {
		b->full = true;
		b->last_id = b->rows[b->n - 1].id;
	}
	sqlite3_bind_int64(mk, 1, after);
	int cap = 0;
	while ((rc = sqlite3_step(mk)) == SQLITE_ROW) {
		if (b->nmarks == cap) {
			cap = cap ? cap * 2 : 8;
			b->marks = xrealloc(b->marks, (size_t)cap * sizeof *b->marks);
		}
		b->marks[b->nmarks].channel = xstrdup((const char *)sqlite3_column_text(mk, 0));
		b->marks[b->nmarks++].id = sqlite3_column_int64(mk, 1);
	}
	sqlite3_reset(mk);
	rc = rc == SQLITE_DONE ? exec1(l, S_COMMIT, err, errlen) : fail(l, rc, "marks", err, errlen);
out:
	if (rc < 0) {
		rollback(l);
		msglog_batch_free(b);
	}
	return rc;
}

int msglog_since(struct msglog *l, int64_t after, int max, struct msglog_batch *b,
		 char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = since_rows(l, after, max, b, err, errlen);
	leave(l);
	return rc;
}

void msglog_batch_free(struct msglog_batch *b)
{
	for (int i = 0; i < b->n; i++) {
		free(b->rows[i].channel);
		free(b->rows[i].json);
		free(b->rows[i].origin);
	}
	for (int i = 0; i < b->nmarks; i++)
		free(b->marks[i].channel);
	free(b->rows);
	free(b->marks);
	memset(b, 0, sizeof *b);
}

static int chan_info(struct msglog *l, const char *chan, struct buf *json,
		     char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(l, S_INFO, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, chan, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		buf_add(json, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_ROW ? 0 : fail(l, rc, "info", err, errlen);
}

int msglog_info(struct msglog *l, const char *chan, struct buf *json,
		char *err, size_t errlen)
{
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = chan_info(l, chan, json, err, errlen);
	leave(l);
	return rc;
}

static int delete_chan(struct msglog *l, const char *chan, int64_t *deleted,
		       char *err, size_t errlen)
{
	*deleted = 0;
	sqlite3_stmt *s = stmt(l, S_CHAN_MAX, err, errlen);
	if (!s || exec1(l, S_BEGIN_IMMEDIATE, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, chan, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int64_t top = 0;
	if (rc == SQLITE_ROW) {
		top = sqlite3_column_int64(s, 0);
		*deleted = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW) {
		fail(l, rc, "delete", err, errlen);
		goto undo;
	}
	if (top > 0) {
		sqlite3_stmt *m = stmt(l, S_MARK, err, errlen);
		sqlite3_stmt *d = stmt(l, S_DEL_CHAN_UPTO, err, errlen);
		int64_t ignored;
		if (!m || !d)
			goto undo;
		sqlite3_bind_text(m, 1, chan, -1, SQLITE_STATIC);
		sqlite3_bind_int64(m, 2, top);
		sqlite3_bind_text(d, 1, chan, -1, SQLITE_STATIC);
		sqlite3_bind_int64(d, 2, top);
		sqlite3_stmt *z = stmt(l, S_CHAN_DROP, err, errlen);
		if (!z)
			goto undo;
		sqlite3_bind_text(z, 1, chan, -1, SQLITE_STATIC);
		if (int_query(l, m, 0, &ignored, err, errlen) < 0 ||
		    int_query(l, d, 0, &ignored, err, errlen) < 0 ||
		    int_query(l, z, 0, &ignored, err, errlen) < 0)
			goto undo;
	}
	/* As an append: nothing done in a file the path no longer names. */
	if (moved(l)) {
		snprintf(err, errlen, "%s was replaced or deleted during a DELETE: not done; "
			 "try again", l->path);
		goto undo;
	}
	if (exec1(l, S_COMMIT, err, errlen) < 0)
		goto undo;
	return 0;
undo:
	rollback(l);
	*deleted = 0;
	return MSGLOG_EUNAVAIL;
}

int msglog_delete(struct msglog *l, const char *chan, int64_t *deleted,
		  char *err, size_t errlen)
{
	*deleted = 0;
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc;
	if (l->pg) {
		rc = pglog_delete(l->pg, chan, deleted, err, errlen) < 0 ? MSGLOG_EUNAVAIL : 0;
		char ignored[256];
		if (rc == 0)
			copy_changes(l, PGLOG_WRITER, 0, ignored, sizeof ignored);
	} else {
		rc = delete_chan(l, chan, deleted, err, errlen);
	}
	leave(l);
	return rc;
}

int msglog_sync(struct msglog *l, char *err, size_t errlen)
{
	if (!l->pg)
		return 0;
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = copy_changes(l, PGLOG_WRITER, 0, err, errlen);
	leave(l);
	return rc < 0 ? MSGLOG_EUNAVAIL : 0;
}

/* ------------------------------------------------------------------ presence
 *
 * A member is on a presence channel while it has a subscription there
 * (presence rows, counted by owner: the process holding them) or its last
 * one ended less than the grace ago (member.gone). Its arrival and its
 * departure are messages in the channel's log, appended in the same
 * transaction as the change they tell of, so that a reader of any snapshot
 * finds the members and the messages in step (msglog_members). */

static int text_query(struct msglog *l, sqlite3_stmt *s, struct buf *out, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		buf_add(out, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(l, rc, "query", err, errlen);
}

/* The message telling of member joining or leaving channel. */
static int presence_event(struct msglog *l, const char *channel, const char *member,
			  const char *info, bool join, int64_t now_ms, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(l->db, "SELECT json_object('event',?1,'member',"
				    "json_object('id',?2,'info',json(?3)))", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(l, rc, "presence", err, errlen);
	sqlite3_bind_text(s, 1, join ? "join" : "leave", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, member, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, info, -1, SQLITE_STATIC);
	struct buf data = BUF_INIT;
	rc = text_query(l, s, &data, err, errlen);
	sqlite3_finalize(s);
	int64_t id;
	struct msglog_msg m = { channel, MSGLOG_PRESENCE_TYPE, data.p ? data.p : "", data.len,
				NULL };
	if (rc == 0)
		rc = insert_one(l, &m, now_ms, &id, err, errlen);
	buf_free(&data);
	return rc;
}

static int bound_exec(struct msglog *l, int which, const char *a, const char *b, const char *c,
		      int64_t n, char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(l, which, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	if (a)
		sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(s, 1, n);
	if (b)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	if (c)
		sqlite3_bind_text(s, 3, c, -1, SQLITE_STATIC);
	else if (a && b)
		sqlite3_bind_int64(s, 3, n);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(l, rc, sql[which], err, errlen);
}

static int presence_change(struct msglog *l, const struct msglog_member *m, const char *owner,
			   int delta, int64_t now_ms, char *err, size_t errlen)
{
	if (delta < 0)
		return bound_exec(l, S_PRES_DEC, m->channel, m->id, owner, 0, err, errlen) < 0 ||
		       exec1(l, S_PRES_GC, err, errlen) < 0 ||
		       bound_exec(l, S_MEMBER_LEFT, m->channel, m->id, NULL, now_ms, err, errlen) < 0
		       ? MSGLOG_EUNAVAIL : 0;
	/* The owner is known from its first subscription on, so that it is
	 * found out if it ends without letting go. */
	sqlite3_stmt *beat = stmt(l, S_OWNER_BEAT, err, errlen);
	if (!beat)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(beat, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(beat, 2, now_ms);
	if (bind_step(l, beat, err, errlen) < 0 ||
	    bound_exec(l, S_PRES_INC, m->channel, m->id, owner, 0, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_stmt *g = stmt(l, S_MEMBER_GONE_AT, err, errlen);
	if (!g)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(g, 1, m->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(g, 2, m->id, -1, SQLITE_STATIC);
	int64_t gone;
	if (int_query(l, g, -2, &gone, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (gone == -2)
		return bound_exec(l, S_MEMBER_ADD, m->channel, m->id, m->info, 0, err, errlen) < 0 ||
		       presence_event(l, m->channel, m->id, m->info, true, now_ms, err, errlen) < 0
		       ? MSGLOG_EUNAVAIL : 1;
	/* Back within the grace: no leave, no new join. */
	if (gone >= 0)
		return bound_exec(l, S_MEMBER_BACK, m->channel, m->id, NULL, 0, err, errlen);
	return 0;
}

/* Runs fn in one transaction of l (begin: S_BEGIN for a read snapshot,
 * S_BEGIN_IMMEDIATE for a write); its result, or MSGLOG_EUNAVAIL. */
static int in_txn(struct msglog *l, int begin, int (*fn)(struct msglog *, void *, char *, size_t),
		  void *arg, char *err, size_t errlen)
{
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = exec1(l, begin, err, errlen);
	if (rc == 0)
		rc = fn(l, arg, err, errlen);
	if (rc >= 0 && exec1(l, S_COMMIT, err, errlen) < 0)
		rc = MSGLOG_EUNAVAIL;
	if (rc < 0)
		rollback(l);
	leave(l);
	return rc;
}

struct change {
	const struct msglog_member *m;
	int n;
	const char *owner;
	int delta;
	int64_t now_ms;
};

static int change_all(struct msglog *l, void *arg, char *err, size_t errlen)
{
	struct change *c = arg;
	int told = 0;
	for (int i = 0; i < c->n; i++) {
		int rc = presence_change(l, &c->m[i], c->owner, c->delta, c->now_ms, err, errlen);
		if (rc < 0)
			return rc;
		told += rc;
	}
	return told;
}

struct reap {
	const char *self;
	int64_t now_ms, grace_ms, dead_ms;
	bool (*alive)(const char *owner, void *arg);
	void *arg;
};

/* A shared log's presence is PostgreSQL's; what it appended (told) is
 * copied here before the call returns, as a publish's is. */
static int shared_told(struct msglog *l, int rc, int told, char *err, size_t errlen)
{
	char ignored[256];
	if (rc == 0 && told > 0)
		copy_changes(l, PGLOG_WRITER, 0, ignored, sizeof ignored);
	leave(l);
	return rc < 0 ? MSGLOG_EUNAVAIL : told;
}

int msglog_presence(struct msglog *l, const struct msglog_member *m, int n, const char *owner,
		    int delta, int64_t now_ms, char *err, size_t errlen)
{
	if (l->pg) {
		int told = 0;
		if (enter(l, true, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
		int rc = pglog_presence(l->pg, m, n, owner, delta, now_ms, l->retain,
					l->retain_seconds, &told, err, errlen);
		return shared_told(l, rc, told, err, errlen);
	}
	struct change c = { m, n, owner, delta, now_ms };
	return in_txn(l, S_BEGIN_IMMEDIATE, change_all, &c, err, errlen);
}

static int shared_reap(struct msglog *l, struct reap *r, char *err, size_t errlen)
{
	struct pglog_owner *o;
	int n, told = 0;
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = pglog_owners(l->pg, &o, &n, err, errlen);
	if (rc == 0) {
		const char *dead[n + 1];
		int ndead = 0;
		for (int i = 0; i < n; i++)
			if ((!r->self || strcmp(o[i].owner, r->self) != 0) &&
			    (o[i].seen < r->now_ms - r->dead_ms ||
			     (r->alive && !r->alive(o[i].owner, r->arg))))
				dead[ndead++] = o[i].owner;
		rc = pglog_presence_reap(l->pg, r->self, r->now_ms, r->grace_ms, dead, ndead,
					 l->retain, l->retain_seconds, &told, err, errlen);
		pglog_owners_free(o, n);
	}
	return shared_told(l, rc, told, err, errlen);
}

static int reap_all(struct msglog *l, void *arg, char *err, size_t errlen)
{
	struct reap *r = arg;
	sqlite3_stmt *s = stmt(l, S_OWNER_BEAT, err, errlen);
	if (r->self && s) {
		sqlite3_bind_text(s, 1, r->self, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, r->now_ms);
		if (bind_step(l, s, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
	}
	/* Owners that ended (however they ended) let go of their subscriptions. */
	sqlite3_stmt *o = stmt(l, S_OWNERS, err, errlen);
	if (!o)
		return MSGLOG_EUNAVAIL;
	struct buf dead = BUF_INIT;
	int rc;
	while ((rc = sqlite3_step(o)) == SQLITE_ROW) {
		const char *who = (const char *)sqlite3_column_text(o, 0);
		int64_t seen = sqlite3_column_int64(o, 1);
		if ((r->self && strcmp(who, r->self) == 0))
			continue;
		if (seen < r->now_ms - r->dead_ms || (r->alive && !r->alive(who, r->arg)))
			buf_add(&dead, who, strlen(who) + 1);
	}
	sqlite3_reset(o);
	if (rc != SQLITE_DONE) {
		buf_free(&dead);
		return fail(l, rc, "owners", err, errlen);
	}
	for (size_t at = 0; at < dead.len; at += strlen(dead.p + at) + 1)
		if (bound_exec(l, S_OWNER_SUBS_DEL, dead.p + at, NULL, NULL, 0, err, errlen) < 0 ||
		    bound_exec(l, S_OWNER_DEL, dead.p + at, NULL, NULL, 0, err, errlen) < 0) {
			buf_free(&dead);
			return MSGLOG_EUNAVAIL;
		}
	buf_free(&dead);
	if (bound_exec(l, S_MEMBER_ORPHANS, NULL, NULL, NULL, r->now_ms, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* Members gone longer than the grace leave, oldest first. */
	sqlite3_stmt *x = stmt(l, S_MEMBER_EXPIRED, err, errlen);
	if (!x)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_int64(x, 1, r->now_ms - r->grace_ms);
	struct buf left = BUF_INIT;
	while ((rc = sqlite3_step(x)) == SQLITE_ROW)
		for (int col = 0; col < 3; col++) {
			const char *v = (const char *)sqlite3_column_text(x, col);
			buf_add(&left, v, strlen(v) + 1);
		}
	sqlite3_reset(x);
	sqlite3_clear_bindings(x);
	if (rc != SQLITE_DONE) {
		buf_free(&left);
		return fail(l, rc, "members", err, errlen);
	}
	int told = 0;
	for (size_t at = 0; at < left.len;) {
		const char *ch = left.p + at, *id = ch + strlen(ch) + 1, *info = id + strlen(id) + 1;
		at = (size_t)(info + strlen(info) + 1 - left.p);
		if (bound_exec(l, S_MEMBER_DEL, ch, id, NULL, 0, err, errlen) < 0 ||
		    presence_event(l, ch, id, info, false, r->now_ms, err, errlen) < 0) {
			buf_free(&left);
			return MSGLOG_EUNAVAIL;
		}
		told++;
	}
	buf_free(&left);
	return told;
}

int msglog_presence_reap(struct msglog *l, const char *self, int64_t now_ms, int64_t grace_ms,
			 int64_t dead_ms, bool (*alive)(const char *owner, void *arg), void *arg,
			 char *err, size_t errlen)
{
	struct reap r = { self, now_ms, grace_ms, dead_ms, alive, arg };
	if (l->pg)
		return shared_reap(l, &r, err, errlen);
	return in_txn(l, S_BEGIN_IMMEDIATE, reap_all, &r, err, errlen);
}

struct find {
	const char *channel, *origin;
	int64_t *id, *log_last;
};

static int find_origin(struct msglog *l, void *arg, char *err, size_t errlen)
{
	struct find *f = arg;
	if (seq(l, f->log_last, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (!f->origin)
		return 0;
	sqlite3_stmt *s = stmt(l, S_FIND_ORIGIN, err, errlen);
	if (!s)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, f->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, f->origin, -1, SQLITE_STATIC);
	return int_query(l, s, -1, f->id, err, errlen);
}

int msglog_find_origin(struct msglog *l, const char *channel, const char *origin, int64_t *id,
		       int64_t *log_last, char *err, size_t errlen)
{
	struct find f = { channel, origin, id, log_last };
	*id = -1;
	return in_txn(l, S_BEGIN, find_origin, &f, err, errlen);
}

int msglog_presence_channels(struct msglog *l, const char *prefix,
			      struct msglog_presence_count **out, int *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	if (l->pg) {
		int rc = pglog_presence_channels(l->pg, prefix, out, n, err, errlen);
		leave(l);
		return rc < 0 ? MSGLOG_EUNAVAIL : 0;
	}
	sqlite3_stmt *s = stmt(l, S_PRESENCE_CHANNELS, err, errlen);
	int rc = SQLITE_ERROR, cap = 0;
	if (s) {
		sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (*n == cap) {
				cap = cap ? 2 * cap : 16;
				*out = xrealloc(*out, (size_t)cap * sizeof **out);
			}
			(*out)[(*n)++] = (struct msglog_presence_count){
				xstrdup((const char *)sqlite3_column_text(s, 0)),
				(long)sqlite3_column_int64(s, 1), (long)sqlite3_column_int64(s, 2) };
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	leave(l);
	if (s && rc == SQLITE_DONE)
		return 0;
	msglog_presence_counts_free(*out, *n);
	*out = NULL;
	*n = 0;
	return s ? fail(l, rc, "presence", err, errlen) : MSGLOG_EUNAVAIL;
}

void msglog_presence_counts_free(struct msglog_presence_count *c, int n)
{
	for (int i = 0; i < n; i++)
		free(c[i].channel);
	free(c);
}

struct members {
	const char *channel;
	bool ids;
	struct buf *out;
	int64_t *last_id;
	long *count, *subs;
};

static int members_of(struct msglog *l, void *arg, char *err, size_t errlen)
{
	struct members *m = arg;
	sqlite3_stmt *s = stmt(l, m->ids ? S_MEMBER_IDS : S_MEMBERS, err, errlen);
	sqlite3_stmt *c = stmt(l, S_MEMBER_COUNTS, err, errlen);
	if (!s || !c || seq(l, m->last_id, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(s, 1, m->channel, -1, SQLITE_STATIC);
	if (text_query(l, s, m->out, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	sqlite3_bind_text(c, 1, m->channel, -1, SQLITE_STATIC);
	int rc = sqlite3_step(c);
	*m->count = rc == SQLITE_ROW ? (long)sqlite3_column_int64(c, 0) : 0;
	*m->subs = rc == SQLITE_ROW ? (long)sqlite3_column_int64(c, 1) : 0;
	sqlite3_reset(c);
	sqlite3_clear_bindings(c);
	return rc == SQLITE_ROW ? 0 : fail(l, rc, "members", err, errlen);
}

int msglog_members(struct msglog *l, const char *channel, bool ids, struct buf *members,
		   int64_t *last_id, long *count, long *subs, char *err, size_t errlen)
{
	if (l->pg) {
		if (enter(l, true, err, errlen) < 0)
			return MSGLOG_EUNAVAIL;
		int rc = pglog_members(l->pg, channel, ids, members, last_id, count, subs, err,
				       errlen);
		leave(l);
		return rc < 0 ? MSGLOG_EUNAVAIL : 0;
	}
	/* One snapshot: the members as of the log's last id. */
	struct members m = { channel, ids, members, last_id, count, subs };
	return in_txn(l, S_BEGIN, members_of, &m, err, errlen);
}

bool msglog_shared(const struct msglog *l)
{
	return l->pg != NULL;
}

int msglog_follow(struct msglog *l, int timeout_ms, char *err, size_t errlen)
{
	if (!l->pg)
		return 0;
	bool news;
	if (pglog_wait(l->pg, timeout_ms, &news, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	/* Without news, the timed safety check: one small query. */
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = copy_changes(l, PGLOG_FOLLOWER, 0, err, errlen);
	leave(l);
	return rc;
}

void msglog_idle(struct msglog *l)
{
	pthread_mutex_lock(&l->mu);
	pglog_idle(l->pg);
	pthread_mutex_unlock(&l->mu);
}

static int counts(struct msglog *l, int64_t *messages, int64_t *last_id,
		  char *err, size_t errlen)
{
	sqlite3_stmt *s = stmt(l, S_COUNT, err, errlen);
	if (!s || exec1(l, S_BEGIN, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = int_query(l, s, 0, messages, err, errlen);
	if (rc == 0)
		rc = seq(l, last_id, err, errlen);
	if (rc == 0)
		rc = exec1(l, S_COMMIT, err, errlen);
	if (rc < 0)
		rollback(l);
	return rc;
}

int msglog_counts(struct msglog *l, int64_t *messages, int64_t *last_id,
		  char *err, size_t errlen)
{
	if (enter(l, true, err, errlen) < 0)
		return MSGLOG_EUNAVAIL;
	int rc = counts(l, messages, last_id, err, errlen);
	leave(l);
	return rc;
}
