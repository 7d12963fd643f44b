/* sqlconn: one connection to the SQLite log's file: opening it, the schema,
 * the statements kept prepared, the waits for other processes' locks, and
 * following the file when it is replaced or deleted.
 *
 * The private header of the SQLite storage: the only header that includes
 * sqlite3.h, and only the storage files (msglog, sqlmsg, sqlpresence,
 * replica, sqlconn) include it.
 *
 * Lifecycle: sqlconn_open opens the path and joins the process's list of
 * connections; every call on it runs between sqlconn_enter and
 * sqlconn_leave, which hold its mutex, arm the lock-wait deadline and
 * reopen the path when the file was let go; sqlconn_close leaves the list
 * and closes. A connection is used by one thread at a time; another
 * connection of the process may close its file between calls (let go). */
#ifndef COMET_SQLCONN_H
#define COMET_SQLCONN_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgtypes.h"

/* The statements a connection keeps prepared, each made on first use and
 * finalized when the connection lets go of its file. Each module numbers
 * its own from its base and checks with a static assertion that they stay
 * below the next base. */
#define SQLCONN_STMT_CONN 0		/* sqlconn's: the transactions */
#define SQLCONN_STMT_MSG 4		/* sqlmsg's, its reads by channel count included */
#define SQLCONN_STMT_PRESENCE 96	/* sqlpresence's */
#define SQLCONN_STMT_REPLICA 120	/* replica's */
#define SQLCONN_NSTMT 128

struct sqlconn {
	sqlite3 *db;		/* NULL after letting go of a replaced file, until reopened */
	char *path;
	bool sync_full;
	bool reader;		/* SQLCONN_READER */
	bool copy;		/* SQLCONN_COPY */
	bool read_only;		/* the file opened read-only, last time */
	int64_t deadline;	/* clock_mono_ms() when this call stops waiting for locks */
	int64_t wait_until;	/* sqlconn_wait_until's, for the next call; 0: none */
	/* Held through every call, so that another connection of the process
	 * may close db between calls (let_go). */
	pthread_mutex_t mu;
	bool let_go;		/* set by another connection: close db when the call ends */
	struct sqlconn *next;	/* in the process's list of connections */
	sqlite3_stmt *st[SQLCONN_NSTMT];
};

/* sqlconn_open's flags: fsync every commit; a connection that only reads,
 * which serves a file it may not write rather than refuse it; a host's
 * copy of a shared log (how far it has copied is kept in the file, and its
 * lock, only ever held for one copy, is looked at every millisecond). */
#define SQLCONN_SYNC_FULL 1
#define SQLCONN_READER 2
#define SQLCONN_COPY 4

/* Opens path, making the file and its schema if need be. Returns 0 or
 * MSGLOG_EUNAVAIL (err says why and what to do). */
int sqlconn_open(struct sqlconn **out, const char *path, int flags, char *err, size_t errlen);
void sqlconn_close(struct sqlconn *c);

/* Starts a call: takes c, arms the lock-wait deadline, reopens the path if
 * the file was let go, and when check (a read) is set, follows a file
 * moved since: one stat per call. Holds c until sqlconn_leave, unless it
 * fails. */
int sqlconn_enter(struct sqlconn *c, bool check, char *err, size_t errlen);
void sqlconn_leave(struct sqlconn *c);
/* Arms the lock-wait deadline again, within a call. */
void sqlconn_begin_call(struct sqlconn *c);
/* The next call stops waiting for locks at mono_ms if that comes first. */
void sqlconn_wait_until(struct sqlconn *c, int64_t mono_ms);
/* Whether the file c has open is no longer the one its path names. */
bool sqlconn_moved(struct sqlconn *c);
/* c's file moved: c and every connection of this process still on it let
 * go of it, and c opens the path again. */
int sqlconn_relocate(struct sqlconn *c, char *err, size_t errlen);

/* err for a storage failure with SQLite's code rc, naming the file and
 * what to do; what is the step that failed. Returns MSGLOG_EUNAVAIL. */
int sqlconn_fail(struct sqlconn *c, int rc, const char *what, char *err, size_t errlen);

/* Statement which of the cache, prepared from sql on first use; NULL (err
 * filled) when it cannot be. */
sqlite3_stmt *sqlconn_prepare(struct sqlconn *c, int which, const char *sql,
			      char *err, size_t errlen);
static inline sqlite3_stmt *sqlconn_stmt(struct sqlconn *c, int which, const char *sql,
					 char *err, size_t errlen)
{
	return c->st[which] ? c->st[which] : sqlconn_prepare(c, which, sql, err, errlen);
}
/* Runs a script (no rows of interest, nothing bound). */
int sqlconn_exec(struct sqlconn *c, const char *q, char *err, size_t errlen);
/* Steps s once and resets it and its bindings: 0 on a row or the end, else
 * the failure named what. */
int sqlconn_step(struct sqlconn *c, sqlite3_stmt *s, const char *what, char *err, size_t errlen);
/* One-row integer query: *out gets column 0, or dflt when no row/NULL. */
int sqlconn_int(struct sqlconn *c, sqlite3_stmt *s, int64_t dflt, int64_t *out,
		char *err, size_t errlen);

/* Transactions: a read snapshot (BEGIN) or a write (BEGIN IMMEDIATE). */
int sqlconn_begin(struct sqlconn *c, bool write, char *err, size_t errlen);
int sqlconn_commit(struct sqlconn *c, char *err, size_t errlen);
/* Rolls back the transaction open, if any. */
void sqlconn_rollback(struct sqlconn *c);
/* fn in one transaction (within a call): its result, or MSGLOG_EUNAVAIL
 * (rolled back). */
int sqlconn_txn(struct sqlconn *c, bool write,
		int (*fn)(struct sqlconn *, void *, char *, size_t), void *arg,
		char *err, size_t errlen);

#endif
