/* pglog: the shared message log in PostgreSQL (see pglog.h).
 *
 * Schema (comet_state.version 5), made (or brought up to date: every step
 * is idempotent) by the first connection that finds it missing or older,
 * under an advisory lock:
 *   comet_state(one, version, last_id, rev, log): one row; last_id and rev
 *     are bumped by every write and hold its row lock to the commit; log
 *     names this log, so that a copy of another (a database made anew)
 *     is recognised and made again.
 *   comet_msg(id, channel, time, type, data bytea, origin), index (channel,
 *     id); origin (version 3) is the publisher's connection, not delivered
 *     back to it.
 *   comet_chan(name, n): messages per channel, for the count limit.
 *   comet_dropped(channel, id, rev): as SQLite's dropped, plus the revision
 *     of the write that made the mark.
 *   comet_presence, comet_member, comet_owner (version 4): presence, as in
 *     the SQLite log (sqlpresence.c), shared by the hosts; its join and leave
 *     messages are appended by comet_publish in the same transaction.
 *   Version 5: comet_publish looks for a channel's oldest above its mark.
 *   Version 6: comet_append, which comet_publish now calls, also answers
 *     the revision, the log's name and the marks the publish made, so that
 *     the publisher's host can copy its own messages without reading them
 *     back (replica.c).
 *   Version 7: the notification of a small publish carries it whole, so
 *     that the other hosts' followers need not read it back either.
 *   Version 8: comet_write is comet_append without its notification: the
 *     write commits without waiting for the disk, a transaction committed
 *     durably follows (flush_sql), then its notification (note_sql);
 *     comet_append (presence, version-7 hosts) is comet_write and a
 *     notification naming the last id.
 *   Version 9: comet_state.oldest, at most the time of the message with
 *     the lowest id (NULL: not known), so that a write looks at the
 *     oldest message only when it may have expired: that index scan
 *     crossed every dead entry retention left at the head until VACUUM
 *     (68 us a write after 14,000 of them, against 7 freshly vacuumed);
 *     and a channel a few over its count finds its cut under a constant
 *     LIMIT, which PostgreSQL plans once, not every write.
 * Writes are functions (comet_write, comet_delete), so that a write is one
 * statement. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "pglog.h"

#define SCHEMA_VERSION 9
#define STR_(x) #x
#define STR(x) STR_(x)
#define LOCK_KEY "7270110011"	/* advisory lock for making the schema */
#define SLOT_WAIT_MS 5000

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS comet_state(one boolean PRIMARY KEY DEFAULT true CHECK (one),"
	" version int NOT NULL, last_id bigint NOT NULL, rev bigint NOT NULL,"
	" log text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text));"
	"INSERT INTO comet_state(version, last_id, rev) VALUES (0, 0, 0) ON CONFLICT DO NOTHING;"
	"CREATE TABLE IF NOT EXISTS comet_msg(id bigint PRIMARY KEY, channel text NOT NULL,"
	" time bigint NOT NULL, type text NOT NULL, data bytea NOT NULL);"
	"CREATE INDEX IF NOT EXISTS comet_msg_channel_id ON comet_msg(channel, id);"
	"CREATE TABLE IF NOT EXISTS comet_chan(name text PRIMARY KEY, n bigint NOT NULL);"
	"CREATE TABLE IF NOT EXISTS comet_dropped(channel text PRIMARY KEY, id bigint NOT NULL,"
	" rev bigint NOT NULL);"
	"CREATE INDEX IF NOT EXISTS comet_dropped_rev ON comet_dropped(rev);"
	"ALTER TABLE comet_msg ADD COLUMN IF NOT EXISTS origin text;"
	"ALTER TABLE comet_state ADD COLUMN IF NOT EXISTS oldest bigint;"
	"DROP FUNCTION IF EXISTS comet_publish(text[], text[], bytea[], bigint, bigint, bigint);"
	"CREATE TABLE IF NOT EXISTS comet_presence(channel text NOT NULL, member text NOT NULL,"
	" owner text NOT NULL, subs int NOT NULL, PRIMARY KEY (channel, member, owner));"
	"CREATE INDEX IF NOT EXISTS comet_presence_owner ON comet_presence(owner);"
	"CREATE TABLE IF NOT EXISTS comet_member(channel text NOT NULL, member text NOT NULL,"
	" info text NOT NULL, gone bigint, PRIMARY KEY (channel, member));"
	"CREATE INDEX IF NOT EXISTS comet_member_gone ON comet_member(gone);"
	"CREATE TABLE IF NOT EXISTS comet_owner(owner text PRIMARY KEY, seen bigint NOT NULL);"
	/* The count limit is applied per message as with SQLite: for each
	 * channel of the batch, the oldest beyond keep go, and the mark is the
	 * newest id dropped. Every message of a channel at or below its mark
	 * is gone (retention, DELETE and age all mark the newest they drop),
	 * so the oldest are looked for above it, not among the dead index
	 * entries of what went (until VACUUM, thousands a second). Age: up to
	 * 256 of the oldest per publish. */
	"CREATE OR REPLACE FUNCTION comet_write(ch text[], ty text[], da bytea[], og text[],"
	" now_ms bigint, keep bigint, keep_ms bigint)"
	" RETURNS TABLE(o_first bigint, o_rev bigint, o_log text, o_ch text, o_id bigint)"
	" LANGUAGE plpgsql AS $f$\n"
	"DECLARE many int := cardinality(ch); top bigint; r bigint; lg text; c text; k bigint;"
	" cut bigint; lo bigint; mc text[] := '{}'; mi bigint[] := '{}'; j int; mt text := '';"
	" od bigint;\n"
	"BEGIN\n"
	" UPDATE comet_state SET last_id = last_id + many, rev = rev + 1,"
	"  oldest = CASE WHEN oldest > now_ms THEN now_ms ELSE oldest END"
	"  RETURNING last_id, rev, log, oldest INTO top, r, lg, od;\n"
	" INSERT INTO comet_msg(id, channel, time, type, data, origin)"
	"  SELECT top - many + i, ch[i], now_ms, ty[i], da[i], og[i]"
	"  FROM generate_subscripts(ch, 1) AS i;\n"
	" FOR c, k IN SELECT x, count(*) FROM unnest(ch) AS x GROUP BY x LOOP\n"
	"  INSERT INTO comet_chan AS t(name, n) VALUES (c, k)"
	"   ON CONFLICT (name) DO UPDATE SET n = t.n + excluded.n RETURNING t.n INTO k;\n"
	"  IF k > keep THEN\n"
	"   lo := coalesce((SELECT id FROM comet_dropped WHERE channel = c), 0);\n"
	/* A few over, as a write of a message or a few makes them, are found
	 * under a constant LIMIT: PostgreSQL plans OFFSET k - keep - 1 anew
	 * for every write (50 us; its generic plan, costed as skipping a
	 * tenth of the channel, never wins), a constant limit once. */
	"   IF k - keep <= 8 THEN\n"
	"    SELECT (array_agg(id ORDER BY id))[k - keep] INTO cut FROM (SELECT id FROM comet_msg"
	"     WHERE channel = c AND id > lo ORDER BY id LIMIT 8) o;\n"
	"   ELSE\n"
	"    SELECT id INTO cut FROM comet_msg WHERE channel = c AND id > lo ORDER BY id"
	"     OFFSET k - keep - 1 LIMIT 1;\n"
	"   END IF;\n"
	"   DELETE FROM comet_msg WHERE channel = c AND id > lo AND id <= cut;\n"
	"   UPDATE comet_chan SET n = keep WHERE name = c;\n"
	"   INSERT INTO comet_dropped AS d VALUES (c, cut, r) ON CONFLICT (channel)"
	"    DO UPDATE SET id = greatest(d.id, excluded.id), rev = excluded.rev"
	"    RETURNING d.id INTO cut;\n"
	"   mc := mc || c;\n"
	"   mi := mi || cut;\n"
	"  END IF;\n"
	" END LOOP;\n"
	/* oldest, lowered to the time of every message written (NULL stays
	 * NULL), is a bound on the time of the one with the lowest id, which
	 * is what expires first: the oldest is looked at only when the bound
	 * may have expired, and the bound is made exact then (NULL after
	 * dropping some: the next write looks again). Deletes only raise the
	 * lowest id. A message above it may be older (hosts' clocks apart, a
	 * clock stepped back, a time taken before the wait for the row): once
	 * the bound is exact and the lowest goes by count or DELETE, such a
	 * message may stay past its age by up to that difference. */
	" IF od IS NULL OR od < now_ms - keep_ms THEN\n"
	"  SELECT time INTO k FROM comet_msg ORDER BY id LIMIT 1;\n"
	"  IF k < now_ms - keep_ms THEN\n"
	"   SELECT max(id) INTO cut FROM (SELECT id, time FROM comet_msg ORDER BY id LIMIT 256) o"
	"    WHERE time < now_ms - keep_ms;\n"
	"   WITH m AS (INSERT INTO comet_dropped AS d SELECT channel, max(id), r FROM comet_msg"
	"    WHERE id <= cut GROUP BY channel ON CONFLICT (channel)"
	"    DO UPDATE SET id = greatest(d.id, excluded.id), rev = excluded.rev"
	"    RETURNING d.channel, d.id)"
	"    SELECT mc || array_agg(m.channel), mi || array_agg(m.id) INTO mc, mi FROM m;\n"
	"   UPDATE comet_chan SET n = comet_chan.n - g.k FROM (SELECT channel, count(*) AS k"
	"    FROM comet_msg WHERE id <= cut GROUP BY channel) g WHERE comet_chan.name = g.channel;\n"
	"   DELETE FROM comet_msg WHERE id <= cut;\n"
	"   DELETE FROM comet_chan WHERE n <= 0;\n"
	"   k := NULL;\n"
	"  END IF;\n"
	"  IF k IS DISTINCT FROM od THEN\n"
	"   UPDATE comet_state SET oldest = k;\n"
	"  END IF;\n"
	" END IF;\n"
	/* What note_sql sends, but for the messages (which the caller has):
	 * the head of the notification, its marks, and the short form. */
	" FOR j IN 1 .. cardinality(mc) LOOP\n"
	"  mt := mt || octet_length(mc[j]) || ' ' || mi[j] || E'\\n' || mc[j];\n"
	" END LOOP;\n"
	" PERFORM set_config('comet.note', top || ' ' || r || ' ' || lg || ' ' || now_ms || ' '"
	"  || many || ' ' || cardinality(mc) || E'\\n\\t' || mt || E'\\t' || top || ' ' || r || ' '"
	"  || lg, false);\n"
	" o_first := top - many + 1;\n"
	" o_rev := r;\n"
	" o_log := lg;\n"
	" IF cardinality(mc) = 0 THEN\n"
	"  RETURN NEXT;\n"
	" END IF;\n"
	" FOR j IN 1 .. cardinality(mc) LOOP\n"
	"  o_ch := mc[j];\n"
	"  o_id := mi[j];\n"
	"  RETURN NEXT;\n"
	" END LOOP;\n"
	"END $f$;"
	/* comet_write and its notification naming the last id, in one
	 * transaction: what presence and a version-7 host call. */
	"CREATE OR REPLACE FUNCTION comet_append(ch text[], ty text[], da bytea[], og text[],"
	" now_ms bigint, keep bigint, keep_ms bigint)"
	" RETURNS TABLE(o_first bigint, o_rev bigint, o_log text, o_ch text, o_id bigint)"
	" LANGUAGE plpgsql AS $f$\n"
	"BEGIN\n"
	" FOR o_first, o_rev, o_log, o_ch, o_id IN SELECT * FROM comet_write(ch, ty, da, og,"
	"  now_ms, keep, keep_ms) LOOP\n"
	"  RETURN NEXT;\n"
	" END LOOP;\n"
	" PERFORM pg_notify('comet', (o_first + cardinality(ch) - 1)::text);\n"
	"END $f$;"
	/* What version 5 and presence call: the first id. */
	"CREATE OR REPLACE FUNCTION comet_publish(ch text[], ty text[], da bytea[], og text[],"
	" now_ms bigint, keep bigint, keep_ms bigint) RETURNS bigint LANGUAGE sql AS $f$"
	" SELECT o_first FROM comet_append(ch, ty, da, og, now_ms, keep, keep_ms) LIMIT 1 $f$;"
	/* The event of a member joining or leaving, as the SQLite log makes
	 * it. */
	"CREATE OR REPLACE FUNCTION comet_presence_event(ev text, mb text, inf text)"
	" RETURNS bytea LANGUAGE sql IMMUTABLE AS $f$"
	" SELECT convert_to(json_build_object('event', ev, 'member',"
	"  json_build_object('id', mb, 'info', inf::json))::text, 'UTF8') $f$;"
	"CREATE OR REPLACE FUNCTION comet_presence(ch text[], mb text[], inf text[], own text,"
	" delta int, now_ms bigint, keep bigint, keep_ms bigint) RETURNS int LANGUAGE plpgsql"
	" AS $f$\n"
	"DECLARE i int; g bigint; ec text[] := '{}'; ed bytea[] := '{}';\n"
	"BEGIN\n"
	" IF delta > 0 THEN\n"
	"  INSERT INTO comet_owner VALUES (own, now_ms)"
	"   ON CONFLICT (owner) DO UPDATE SET seen = excluded.seen;\n"
	" END IF;\n"
	" FOR i IN 1 .. coalesce(cardinality(ch), 0) LOOP\n"
	"  IF delta > 0 THEN\n"
	"   INSERT INTO comet_presence AS p VALUES (ch[i], mb[i], own, 1)"
	"    ON CONFLICT (channel, member, owner) DO UPDATE SET subs = p.subs + 1;\n"
	"   SELECT gone INTO g FROM comet_member WHERE channel = ch[i] AND member = mb[i];\n"
	/* Another host's join of the same member may insert it meanwhile:
	 * then that host tells of the join. */
	"   IF NOT FOUND THEN\n"
	"    INSERT INTO comet_member VALUES (ch[i], mb[i], inf[i], NULL) ON CONFLICT DO NOTHING;\n"
	"    IF FOUND THEN\n"
	"     ec := ec || ch[i];\n"
	"     ed := ed || comet_presence_event('join', mb[i], inf[i]);\n"
	"    END IF;\n"
	"   ELSIF g IS NOT NULL THEN\n"
	"    UPDATE comet_member SET gone = NULL WHERE channel = ch[i] AND member = mb[i];\n"
	"   END IF;\n"
	"  ELSE\n"
	"   UPDATE comet_presence SET subs = subs - 1"
	"    WHERE channel = ch[i] AND member = mb[i] AND owner = own;\n"
	"   DELETE FROM comet_presence WHERE channel = ch[i] AND member = mb[i] AND owner = own"
	"    AND subs <= 0;\n"
	"   UPDATE comet_member SET gone = now_ms WHERE channel = ch[i] AND member = mb[i]"
	"    AND gone IS NULL AND NOT EXISTS (SELECT 1 FROM comet_presence p"
	"    WHERE p.channel = ch[i] AND p.member = mb[i]);\n"
	"  END IF;\n"
	" END LOOP;\n"
	" IF cardinality(ec) > 0 THEN\n"
	"  PERFORM comet_publish(ec, array_fill('application/x-comet-presence+json'::text,"
	"   ARRAY[cardinality(ec)]), ed, array_fill(NULL::text, ARRAY[cardinality(ec)]),"
	"   now_ms, keep, keep_ms);\n"
	" END IF;\n"
	" RETURN cardinality(ec);\n"
	"END $f$;"
	"CREATE OR REPLACE FUNCTION comet_presence_reap(own text, now_ms bigint, grace_ms bigint,"
	" dead text[], keep bigint, keep_ms bigint) RETURNS int LANGUAGE plpgsql AS $f$\n"
	"DECLARE ec text[]; ed bytea[];\n"
	"BEGIN\n"
	" IF own IS NOT NULL THEN\n"
	"  INSERT INTO comet_owner VALUES (own, now_ms)"
	"   ON CONFLICT (owner) DO UPDATE SET seen = excluded.seen;\n"
	" END IF;\n"
	" DELETE FROM comet_presence WHERE owner = ANY (dead);\n"
	" DELETE FROM comet_owner WHERE owner = ANY (dead);\n"
	" UPDATE comet_member m SET gone = now_ms WHERE gone IS NULL AND NOT EXISTS"
	"  (SELECT 1 FROM comet_presence p WHERE p.channel = m.channel AND p.member = m.member);\n"
	" WITH l AS (DELETE FROM comet_member WHERE gone <= now_ms - grace_ms"
	"  RETURNING channel, member, info)"
	"  SELECT array_agg(channel), array_agg(comet_presence_event('leave', member, info))"
	"  INTO ec, ed FROM l;\n"
	" IF cardinality(ec) > 0 THEN\n"
	"  PERFORM comet_publish(ec, array_fill('application/x-comet-presence+json'::text,"
	"   ARRAY[cardinality(ec)]), ed, array_fill(NULL::text, ARRAY[cardinality(ec)]),"
	"   now_ms, keep, keep_ms);\n"
	" END IF;\n"
	" RETURN coalesce(cardinality(ec), 0);\n"
	"END $f$;"
	"CREATE OR REPLACE FUNCTION comet_delete(c text) RETURNS bigint LANGUAGE plpgsql AS $f$\n"
	"DECLARE r bigint; top bigint; k bigint;\n"
	"BEGIN\n"
	" UPDATE comet_state SET rev = rev + 1 RETURNING rev INTO r;\n"
	" SELECT max(id), count(*) INTO top, k FROM comet_msg WHERE channel = c;\n"
	" IF top IS NOT NULL THEN\n"
	"  INSERT INTO comet_dropped AS d VALUES (c, top, r) ON CONFLICT (channel)"
	"   DO UPDATE SET id = greatest(d.id, excluded.id), rev = excluded.rev;\n"
	"  DELETE FROM comet_msg WHERE channel = c;\n"
	"  DELETE FROM comet_chan WHERE name = c;\n"
	" END IF;\n"
	" PERFORM pg_notify('comet', '');\n"
	" RETURN k;\n"
	"END $f$;"
	"UPDATE comet_state SET version = " STR(SCHEMA_VERSION) ";";

struct pgconn {
	PGconn *c;
	int slot;		/* byte of the slot file locked, -1: none */
	int slot_fd;
	bool listening;
	bool locked;		/* the writer: in a transaction holding comet_state's row */
	/* Known to be on disk, as this connection learnt it: every write of
	 * the log up to this revision (commit records are flushed in order).
	 * Forgotten with the connection. */
	char durable_log[40];
	int64_t durable_rev;
	bool warned;		/* the server sent a WARNING (noticed) */
	bool told;		/* a notification sent, its answer not read yet */
};

struct pglog {
	char *uri, *slots_path;
	struct pgconn w, f;	/* writer, follower */
};

static void durable_at(struct pgconn *k, const char *log, int64_t rev)
{
	if (strcmp(k->durable_log, log) != 0)
		snprintf(k->durable_log, sizeof k->durable_log, "%s", log);
	else if (rev <= k->durable_rev)
		return;
	k->durable_rev = rev;
}

bool pglog_is_uri(const char *db)
{
	return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

void pglog_open(struct pglog **out, const char *uri, const char *state_dir)
{
	struct pglog *p = xcalloc(1, sizeof *p);
	p->uri = xstrdup(uri);
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/pg-slots", state_dir);
	p->slots_path = b.p;
	p->w.slot = p->f.slot = -1;
	p->w.slot_fd = p->f.slot_fd = -1;
	*out = p;
}

/* Closes k's connection, and with it all it knew; its slot stays. */
static void forget(struct pgconn *k)
{
	PQfinish(k->c);
	k->c = NULL;
	k->listening = false;
	k->locked = k->told = false;
	k->durable_log[0] = '\0';
	k->durable_rev = 0;
}

/* forget, and the slot let go too. */
static void drop(struct pgconn *k)
{
	forget(k);
	if (k->slot_fd >= 0)
		close(k->slot_fd);	/* lets the OFD lock go */
	k->slot_fd = -1;
	k->slot = -1;
}

void pglog_close(struct pglog *p)
{
	if (!p)
		return;
	drop(&p->w);
	drop(&p->f);
	free(p->uri);
	free(p->slots_path);
	free(p);
}

void pglog_idle(struct pglog *p)
{
	if (!p || !p->w.c)
		return;
	/* Kept while no other process of the host waits for a slot: a
	 * publish on a new connection waits tens of milliseconds for it. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = PGLOG_SLOTS,
			    .l_len = 1 };
	if (p->w.slot_fd >= 0 && fcntl(p->w.slot_fd, F_OFD_GETLK, &fl) == 0 &&
	    fl.l_type == F_UNLCK)
		return;
	drop(&p->w);
}

/* libpq's message for the last failure, on one line. */
static void pq_error(PGconn *c, const PGresult *r, const char *what, char *err, size_t errlen)
{
	const char *m = r ? PQresultErrorMessage(r) : c ? PQerrorMessage(c) : "out of memory";
	if (!m || !*m)
		m = c ? PQerrorMessage(c) : "unknown error";
	snprintf(err, errlen, "PostgreSQL %s%s%s: %s", what, c && PQhost(c) ? " at " : "",
		 c && PQhost(c) ? PQhost(c) : "", m);
	/* One line: libpq's messages hold newlines and tabs. */
	char *o = err;
	for (const char *s = err; *s; s++) {
		bool space = *s == '\n' || *s == '\r' || *s == '\t' || *s == ' ';
		if (!space)
			*o++ = *s;
		else if (o > err && o[-1] != ' ')
			*o++ = ' ';
	}
	while (o > err && o[-1] == ' ')
		o--;
	*o = '\0';
}

/* The byte after the slots: read-locked by every process of the host
 * waiting for a slot, so that an idle holder knows to let its slot go. */
static int wanted(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = PGLOG_SLOTS,
			    .l_len = 1 };
	return fcntl(fd, F_OFD_SETLK, &fl);
}

/* One of the host's PGLOG_SLOTS writer slots: an open-file-description
 * lock on one byte of the slot file, which the kernel lets go when the
 * process dies, however it dies. Waits for one at most SLOT_WAIT_MS. */
static int take_slot(struct pglog *p, struct pgconn *k, char *err, size_t errlen)
{
	if (k->slot_fd < 0) {
		k->slot_fd = open(p->slots_path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
		if (k->slot_fd < 0) {
			snprintf(err, errlen, "%s: %s (the state directory, COMET_STATE_DIR, must "
				 "be writable)", p->slots_path, strerror(errno));
			return -1;
		}
	}
	int64_t give_up = clock_mono_ms() + SLOT_WAIT_MS;
	for (int round = 0;; round++) {
		int start = (int)(getpid() % PGLOG_SLOTS);
		for (int i = 0; i < PGLOG_SLOTS; i++) {
			int s = (start + i) % PGLOG_SLOTS;
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
					    .l_start = s, .l_len = 1 };
			if (fcntl(k->slot_fd, F_OFD_SETLK, &fl) == 0) {
				k->slot = s;
				if (round)
					wanted(k->slot_fd, F_UNLCK);
				return 0;
			}
		}
		if (clock_mono_ms() >= give_up)
			break;
		if (!round)
			wanted(k->slot_fd, F_RDLCK);
		struct timespec ts = { 0, (round < 10 ? 1 : 5) * 1000000L };
		nanosleep(&ts, NULL);
	}
	wanted(k->slot_fd, F_UNLCK);
	snprintf(err, errlen, "all %d PostgreSQL connections of this host stayed busy for "
		 "%d ms", PGLOG_SLOTS, SLOT_WAIT_MS);
	return -1;
}

static int exec_ok(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int st = PQresultStatus(r);
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
	if (rc < 0)
		pq_error(c, r, what, err, errlen);
	PQclear(r);
	return rc;
}

static bool schema_current(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT to_regclass('comet_state') IS NOT NULL");
	bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!exists)
		return false;
	r = PQexec(c, "SELECT version FROM comet_state");
	bool current = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		atoi(PQgetvalue(r, 0, 0)) >= SCHEMA_VERSION;
	PQclear(r);
	return current;
}

static int ensure_schema(PGconn *c, char *err, size_t errlen)
{
	if (schema_current(c))
		return 0;
	/* Looked at again under the lock, in a transaction begun after it
	 * (one begun before would not see tables made meanwhile): another
	 * connection may have made it, and making it again would update
	 * comet_state, whose row lock that connection's first publish may
	 * hold (a deadlock). */
	if (exec_ok(c, "SELECT pg_advisory_lock(" LOCK_KEY ")", "schema", err, errlen) < 0)
		return -1;
	int rc = 0;
	if (!schema_current(c))
		rc = exec_ok(c, "BEGIN", "schema", err, errlen) < 0 ||
		     exec_ok(c, schema, "schema (the role needs CREATE on the database, or "
			     "its owner must make the tables)", err, errlen) < 0 ||
		     exec_ok(c, "COMMIT", "schema", err, errlen) < 0 ? -1 : 0;
	if (rc < 0)
		exec_ok(c, "ROLLBACK", "", (char[8]){ 0 }, 8);
	if (exec_ok(c, "SELECT pg_advisory_unlock(" LOCK_KEY ")", "schema", err, errlen) < 0)
		rc = -1;
	return rc;
}

static const char publish_sql[] =
	"SELECT o_first, o_rev, o_log, o_ch, o_id FROM comet_write($1, $2, $3, $4, $5, $6, $7)";
static const Oid publish_types[7] = { 1009, 1009, 1001, 1009, 20, 20, 20 };

/* The transaction after a write (or a read), committed durably: a record
 * in the WAL (a transactional logical message, which any role may write)
 * without which PostgreSQL would commit it without waiting for the disk (or
 * a synchronous standby). Its commit record comes after the write's (or
 * after those of the writes the read saw), so when it returns they are on
 * disk too, unless the server said WARNING: a wait for the standby
 * cancelled, the commit made on the primary only. */
static const char flush_sql[] = "SELECT pg_logical_emit_message(true, 'comet', '')";

/* The row every write takes in turn, taken before a group is made
 * (pglog_lock): prepared, so that it is not planned again each time. */
static const char lock_sql[] = "SELECT 1 FROM comet_state FOR UPDATE";

/* The notification of a write, sent once the flush after it has returned
 * (never with it: a cancelled wait for the standby would still deliver
 * it). It writes nothing to the WAL, so its commit does not wait for the
 * disk. The text (note_of) is the head and marks comet_write left in
 * comet.note around the messages ($1, NULL: too many), or its short form
 * when too big. */
#define NOTE_MESSAGES 100
#define NOTE_BYTES 2000
static const char note_sql[] =
	"SELECT pg_notify('comet', CASE WHEN octet_length(w) <= " STR(NOTE_BYTES) " THEN w"
	"  ELSE split_part(s, E'\\t', 3) END)"
	" FROM current_setting('comet.note') AS s,"
	" LATERAL (SELECT split_part(s, E'\\t', 1) || $1 || split_part(s, E'\\t', 2) AS w) x";
static const Oid note_types[1] = { 25 };

/* Everything a copy needs after ($1 id, $2 rev) of log $3, in one statement
 * and so one snapshot, one round trip (the bounds are scalar subqueries so
 * that they bound the index scans, in a generic plan too): first the state (kind 0: last id,
 * revision, the log's name, whether the copy must start again), then the
 * messages in id order (kind 1), at most $4 and no more after
 * PGLOG_READ_BYTES of data (but always one), then the marks made since
 * (kind 2). */
static const char changes_sql[] =
	"WITH s AS (SELECT last_id, rev, log, (last_id < $1 OR log IS DISTINCT FROM $3) AS anew"
	"  FROM comet_state),"
	" m AS (SELECT id, time, channel, type, data, origin FROM (SELECT c.*,"
	"  sum(length(c.data)) OVER (ORDER BY c.id) - length(c.data) AS before"
	"  FROM comet_msg c WHERE c.id > (SELECT CASE WHEN anew THEN 0 ELSE $1 END FROM s)"
	"  AND c.id <= (SELECT last_id FROM s) ORDER BY c.id LIMIT $4) w"
	"  WHERE before < " STR(PGLOG_READ_BYTES) ")"
	" SELECT 0 AS k, last_id AS id, rev AS t, log AS ch, anew::text AS ty, NULL::bytea AS d,"
	"  NULL::text AS o FROM s"
	" UNION ALL SELECT 1, id, time, channel, type, data, origin FROM m"
	" UNION ALL SELECT 2, d.id, 0, d.channel, NULL, NULL, NULL FROM comet_dropped d"
	"  WHERE d.rev > (SELECT CASE WHEN anew THEN -1 ELSE $2 END FROM s)"
	" ORDER BY 1, 2";
static const Oid changes_types[4] = { 20, 20, 25, 20 };

static int prepare(PGconn *c, const char *name, const char *sql, int n, const Oid *types,
		   char *err, size_t errlen)
{
	PGresult *r = PQprepare(c, name, sql, n, types);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc < 0)
		pq_error(c, r, "prepare", err, errlen);
	PQclear(r);
	return rc;
}

/* libpq prints the server's notices (and its FATAL at a shutdown) on
 * stderr, the web server's error log: what matters reaches the caller as
 * an error instead. A WARNING is remembered (the only one a flush gets is
 * that its wait for the standby was cancelled). */
static void noticed(void *arg, const PGresult *r)
{
	struct pgconn *k = arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev && strcmp(sev, "WARNING") == 0)
		k->warned = true;
}

static bool answer_by(struct pgconn *k, int64_t deadline);

/* The answer to the last notification sent (note_sql), read before the
 * connection is used again; false if it failed (the connection is then
 * made anew: the other hosts learn of the write at the next one, or at
 * their safety check). */
static bool settle(struct pgconn *k)
{
	if (!k->told)
		return true;
	k->told = false;
	bool ok = answer_by(k, clock_mono_ms() + 1000);
	PGresult *r;
	while (ok && (r = PQgetResult(k->c))) {
		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
	}
	return ok;
}

/* Connects k if it is not (and claims a slot first, for the writer). A
 * connection is tried once per call: the caller reports the failure and a
 * later call tries again. */
static int connect_to(struct pglog *p, struct pgconn *k, bool slotted, char *err, size_t errlen)
{
	/* An idle connection the server has since closed (a restart, a
	 * crash, a terminated backend) has its goodbye or EOF waiting, and
	 * libpq may not call it broken before it is used: a writer that has
	 * anything to read while idle is made anew, so that a publish is not
	 * sent into it and refused. (The follower's connection is read by
	 * pglog_wait, which finds its end.) */
	if (k->c && !settle(k))
		forget(k);
	struct pollfd pf = { k->c ? PQsocket(k->c) : -1, POLLIN, 0 };
	if (slotted && k->c && pf.fd >= 0 && poll(&pf, 1, 0) > 0)
		forget(k);
	if (k->c && PQstatus(k->c) == CONNECTION_OK)
		return 0;
	if (k->c)
		forget(k);
	if (slotted && k->slot < 0 && take_slot(p, k, err, errlen) < 0)
		return -1;
	/* Defaults the URI may override (keywords before dbname): bounded
	 * waits for a server that is gone without a word, and only a primary,
	 * since a standby can neither take writes nor send NOTIFY. */
	static const char *const keys[] = {
		"connect_timeout", "tcp_user_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "target_session_attrs", "application_name", "dbname", NULL
	};
	const char *vals[] = { "3", "5000", "5", "2", "2", "read-write", "comet-fcgi", p->uri,
			       NULL };
	k->c = PQconnectdbParams(keys, vals, 1);
	if (k->c)
		PQsetNoticeReceiver(k->c, noticed, k);
	if (PQstatus(k->c) != CONNECTION_OK) {
		pq_error(k->c, NULL, "connect", err, errlen);
		drop(k);
		return -1;
	}
	/* A writer holding comet_state's row between pglog_lock and its
	 * publish (a stopped or starved process) would stall every host:
	 * PostgreSQL ends such a session after a second. */
	/* A publish is acknowledged once a commit after it has waited for the
	 * disk: a role or database with synchronous_commit off would make
	 * that wait nothing. */
	if (exec_ok(k->c, "SET statement_timeout = 5000", "connect", err, errlen) < 0 ||
	    exec_ok(k->c, "SELECT set_config('synchronous_commit', 'on', false)"
		    " WHERE current_setting('synchronous_commit') = 'off'", "connect", err,
		    errlen) < 0 ||
	    (slotted && exec_ok(k->c, "SET idle_in_transaction_session_timeout = 1000",
				"connect", err, errlen) < 0) ||
	    ensure_schema(k->c, err, errlen) < 0 ||
	    prepare(k->c, "comet_write", publish_sql, 7, publish_types, err, errlen) < 0 ||
	    prepare(k->c, "comet_note", note_sql, 1, note_types, err, errlen) < 0 ||
	    prepare(k->c, "comet_flush", flush_sql, 0, NULL, err, errlen) < 0 ||
	    prepare(k->c, "comet_lock", lock_sql, 0, NULL, err, errlen) < 0 ||
	    prepare(k->c, "comet_changes", changes_sql, 4, changes_types, err, errlen) < 0) {
		drop(k);
		return -1;
	}
	return 0;
}

static char *copy_value(const PGresult *r, int row, int col, size_t *len);
static bool note_of(struct buf *b, const struct msglog_msg *m, int n);

/* A one-dimensional binary array of text (OID 25) or bytea (17). */
static void array_of(struct buf *b, unsigned oid, const struct msglog_msg *m, int n, int field)
{
	/* One dimension; the flag word says whether any element is NULL. */
	uint32_t head[5] = { htonl(1), htonl(field == 3 ? 1 : 0), htonl(oid), htonl((uint32_t)n),
			     htonl(1) };
	buf_add(b, head, sizeof head);
	for (int i = 0; i < n; i++) {
		const char *s = field == 0 ? m[i].channel : field == 1 ? m[i].type
				: field == 2 ? m[i].data : m[i].origin;
		if (!s) {
			uint32_t null = htonl(0xffffffffu);
			buf_add(b, &null, 4);
			continue;
		}
		size_t len = field == 2 ? m[i].len : strlen(s);
		uint32_t l = htonl((uint32_t)len);
		buf_add(b, &l, 4);
		buf_add(b, s, len);
	}
}

static int32_t be32(const char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | (unsigned char)p[i];
	return (int32_t)v;
}

static int64_t be64(const char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | (unsigned char)p[i];
	return (int64_t)v;
}

/* A failed statement may have left the connection in a failed
 * transaction, or broken: it is dropped, and the next call connects anew. */
static int failed(struct pgconn *k, PGresult *r, const char *what, char *err, size_t errlen)
{
	pq_error(k->c, r, what, err, errlen);
	PQclear(r);
	drop(k);
	return -1;
}

/* How long a publish waits for its answer: the statements' own bound
 * (statement_timeout) does not cover a commit waiting for a synchronous
 * standby, which waits as long as the standby is away. */
#define ANSWER_WAIT_MS 6000

/* Waits until libpq has a result for k without blocking, or gives up at
 * deadline: then the server is asked to cancel (a commit waiting for a
 * standby stops waiting: committed on the primary, not acknowledged here)
 * and false is returned. */
static bool answer_by(struct pgconn *k, int64_t deadline)
{
	while (PQisBusy(k->c)) {
		int64_t left = deadline - clock_mono_ms();
		struct pollfd pf = { PQsocket(k->c), POLLIN, 0 };
		if (left <= 0) {
			PGcancel *cn = PQgetCancel(k->c);
			char ignored[256];
			if (cn)
				PQcancel(cn, ignored, sizeof ignored);
			PQfreeCancel(cn);
			return false;
		}
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			deadline = 0;	/* cancelled and given up at once */
		else if (!PQconsumeInput(k->c))
			return true;	/* PQgetResult then says what failed */
	}
	return true;
}

/* sql with params on k, its answer waited for at most ANSWER_WAIT_MS, as
 * a publish's is: what DELETE and presence write commits waiting for the
 * disk (or a synchronous standby) too. Returns its one row, or NULL (err
 * filled, the connection dropped) if it failed, came late, or its wait for
 * the standby was cancelled (committed on the primary only). */
static PGresult *call_by(struct pgconn *k, const char *sql, int n, const char *const *vals,
			 const int *lens, const int *fmts, const char *what, char *err,
			 size_t errlen)
{
	k->warned = false;
	if (!PQsendQueryParams(k->c, sql, n, NULL, vals, lens, fmts, 0)) {
		failed(k, NULL, what, err, errlen);
		return NULL;
	}
	int64_t deadline = clock_mono_ms() + ANSWER_WAIT_MS;
	PGresult *out = NULL, *r;
	bool late = false;
	while (!(late = !answer_by(k, deadline)) && (r = PQgetResult(k->c))) {
		if (out)
			PQclear(r);
		else
			out = r;
	}
	bool row = PQresultStatus(out) == PGRES_TUPLES_OK && PQntuples(out) == 1;
	if (!late && row && !k->warned)
		return out;
	if (late)
		snprintf(err, errlen, "%s: not known to be on disk within %d ms (a commit waiting "
			 "for a synchronous standby?)", what, ANSWER_WAIT_MS);
	else if (row)
		snprintf(err, errlen, "%s: not known to be on disk (the server cancelled its wait "
			 "for a synchronous standby)", what);
	else
		pq_error(k->c, out, what, err, errlen);
	PQclear(out);
	drop(k);
	return NULL;
}

/* A read saw the state at revision rev, which may hold writes committed
 * and not yet on disk (another host's, its note still to come): unless rev
 * is known to be on disk, a transaction committed durably after the read
 * puts them there before anything read is given out. */
static int seen_durable(struct pgconn *k, const char *log, int64_t rev, const char *what,
			char *err, size_t errlen)
{
	if (strcmp(k->durable_log, log) == 0 && rev <= k->durable_rev)
		return 0;
	PGresult *r = call_by(k, "EXECUTE comet_flush", 0, NULL, NULL, NULL, what, err, errlen);
	if (!r)
		return -1;
	PQclear(r);
	durable_at(k, log, rev);
	return 0;
}

/* A write's transaction commits without waiting for the disk, so that the
 * row is held for the write alone, not for the flush too: the next host's
 * write then shares that flush. It is not acknowledged, nor notified, nor
 * read by anyone, until the flush after it has returned (write_commit,
 * seen_durable). */
#define WRITE_ASYNC "SET LOCAL synchronous_commit TO off"

int pglog_lock(struct pglog *p, char *err, size_t errlen)
{
	if (connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	PGresult *r = PQexec(p->w.c, "BEGIN; " WRITE_ASYNC "; EXECUTE comet_lock");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return failed(&p->w, r, "lock", err, errlen);
	PQclear(r);
	p->w.locked = true;
	return 0;
}

void pglog_unlock(struct pglog *p)
{
	if (!p || !p->w.locked)
		return;
	p->w.locked = false;
	PGresult *r = PQexec(p->w.c, "ROLLBACK");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		drop(&p->w);
	PQclear(r);
}

/* The write, its COMMIT and the flush after it (flush_sql) in one round
 * trip, begun here too unless pglog_lock began it; then its notification
 * (note_sql, with the messages or NULL), whose answer settle reads later.
 * Returns the write's rows, or NULL (err filled, the connection dropped)
 * unless the COMMIT's own answer says it committed and the flush's
 * transaction (committed at the sync) has returned without a WARNING. */
static PGresult *write_commit(struct pgconn *k, const char *const *vals, const int *lens,
			      const int *fmts, const char *note, char *err, size_t errlen)
{
	static const char *const begin[] = { "BEGIN", WRITE_ASYNC };
	int first = k->locked ? 2 : 0, n = 5 - first;
	k->locked = false;
	k->warned = false;
	bool sent = PQenterPipelineMode(k->c);
	for (int i = first; i < 2 && sent; i++)
		sent = PQsendQueryParams(k->c, begin[i], 0, NULL, NULL, NULL, NULL, 0);
	if (!sent || !PQsendQueryPrepared(k->c, "comet_write", 7, vals, lens, fmts, 1) ||
	    !PQsendQueryParams(k->c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsendQueryPrepared(k->c, "comet_flush", 0, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(k->c)) {
		failed(k, NULL, "publish", err, errlen);
		return NULL;
	}
	/* Each statement's results end with NULL; the first failure says
	 * why (NULL: the connection's). The flush's transaction commits at
	 * the sync: only then is it (and the write before it) on disk. */
	PGresult *out = NULL, *why = NULL, *r;
	bool ok = true, late = false;
	int64_t deadline = clock_mono_ms() + ANSWER_WAIT_MS;
	for (int i = 0; i <= n && ok; i++) {
		if (!answer_by(k, deadline)) {
			ok = false;
			late = true;
			break;
		}
		r = PQgetResult(k->c);
		bool write = i == n - 3, commit = i == n - 2, rows = write || i == n - 1;
		bool good = i == n ? PQresultStatus(r) == PGRES_PIPELINE_SYNC :
			rows ? PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 :
			PQresultStatus(r) == PGRES_COMMAND_OK &&
			(!commit || strcmp(PQcmdStatus(r), "COMMIT") == 0);
		if (!good) {
			ok = false;
			why = r;
			break;
		}
		if (write)
			out = r;
		else
			PQclear(r);
		if (i < n)
			while ((r = PQgetResult(k->c)))
				PQclear(r);
	}
	if (ok && !k->warned) {
		/* On disk: acknowledged even if its notification cannot be
		 * sent (the other hosts then learn of it at the next one, or at
		 * their safety check). */
		if (PQexitPipelineMode(k->c) &&
		    PQsendQueryPrepared(k->c, "comet_note", 1, &note, NULL, NULL, 0))
			k->told = true;
		else
			drop(k);
		return out;
	}
	if (late)
		snprintf(err, errlen, "publish: not known to be on disk within %d ms (a commit "
			 "waiting for a synchronous standby?)", ANSWER_WAIT_MS);
	else if (ok && k->warned)
		snprintf(err, errlen, "publish: not known to be on disk (the server cancelled "
			 "its wait for a synchronous standby)");
	else
		pq_error(k->c, why, "publish", err, errlen);
	PQclear(why);
	PQclear(out);
	drop(k);
	return NULL;
}

int pglog_append(struct pglog *p, const struct msglog_msg *m, int n, int64_t now_ms,
		 long keep, long keep_seconds, struct pglog_appended *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!p->w.locked && connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	struct buf a[5] = { BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT };
	array_of(&a[0], 25, m, n, 0);
	array_of(&a[1], 25, m, n, 1);
	array_of(&a[2], 17, m, n, 2);
	array_of(&a[3], 25, m, n, 3);
	char now[24], k[24], ks[24];
	snprintf(now, sizeof now, "%lld", (long long)now_ms);
	snprintf(k, sizeof k, "%ld", keep);
	snprintf(ks, sizeof ks, "%lld", (long long)keep_seconds * 1000);
	const char *vals[7] = { a[0].p, a[1].p, a[2].p, a[3].p, now, k, ks };
	int lens[7] = { (int)a[0].len, (int)a[1].len, (int)a[2].len, (int)a[3].len, 0, 0, 0 };
	int fmts[7] = { 1, 1, 1, 1, 0, 0, 0 };
	const char *note = note_of(&a[4], m, n) ? buf_str(&a[4]) : NULL;
	PGresult *r = write_commit(&p->w, vals, lens, fmts, note, err, errlen);
	for (int i = 0; i < 5; i++)
		buf_free(&a[i]);
	if (!r)
		return -1;
	/* Binary results: one row, or one per mark. */
	out->first = be64(PQgetvalue(r, 0, 0));
	out->rev = be64(PQgetvalue(r, 0, 1));
	snprintf(out->log, sizeof out->log, "%.*s", PQgetlength(r, 0, 2), PQgetvalue(r, 0, 2));
	int rows = PQntuples(r);
	out->marks = xcalloc((size_t)rows, sizeof *out->marks);
	for (int i = 0; i < rows; i++) {
		if (PQgetisnull(r, i, 3))
			continue;
		struct msglog_mark *mk = &out->marks[out->nmarks++];
		mk->channel = copy_value(r, i, 3, NULL);
		mk->id = be64(PQgetvalue(r, i, 4));
	}
	PQclear(r);
	durable_at(&p->w, out->log, out->rev);
	return 0;
}

void pglog_appended_free(struct pglog_appended *a)
{
	for (int i = 0; i < a->nmarks; i++)
		free(a->marks[i].channel);
	free(a->marks);
	memset(a, 0, sizeof *a);
}

/* A one-dimensional text[] in binary form (n strings, none NULL). */
static void text_array(struct buf *b, const char *const *v, int n)
{
	uint32_t head[5] = { htonl(1), 0, htonl(25), htonl((uint32_t)n), htonl(1) };
	buf_add(b, head, sizeof head);
	for (int i = 0; i < n; i++) {
		uint32_t l = htonl((uint32_t)strlen(v[i]));
		buf_add(b, &l, 4);
		buf_add(b, v[i], strlen(v[i]));
	}
}

/* Runs sql (one row, one int column) on the writer connection with
 * params, the array ones (arrays[i]) binary, bounded as call_by. */
static int call_int(struct pglog *p, const char *sql, int n, const char *const *vals,
		    const int *lens, const int *fmts, int64_t *out, const char *what,
		    char *err, size_t errlen)
{
	if (connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	PGresult *r = call_by(&p->w, sql, n, vals, lens, fmts, what, err, errlen);
	if (!r)
		return -1;
	*out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

int pglog_presence(struct pglog *p, const struct msglog_member *m, int n, const char *owner,
		   int delta, int64_t now_ms, long keep, long keep_seconds, int *told,
		   char *err, size_t errlen)
{
	const char *ch[n > 0 ? n : 1], *mb[n > 0 ? n : 1], *inf[n > 0 ? n : 1];
	for (int i = 0; i < n; i++)
		ch[i] = m[i].channel, mb[i] = m[i].id, inf[i] = m[i].info;
	struct buf a[3] = { BUF_INIT, BUF_INIT, BUF_INIT };
	text_array(&a[0], ch, n);
	text_array(&a[1], mb, n);
	text_array(&a[2], inf, n);
	char d[8], now[24], k[24], ks[24];
	snprintf(d, sizeof d, "%d", delta);
	snprintf(now, sizeof now, "%lld", (long long)now_ms);
	snprintf(k, sizeof k, "%ld", keep);
	snprintf(ks, sizeof ks, "%lld", (long long)keep_seconds * 1000);
	const char *vals[8] = { a[0].p, a[1].p, a[2].p, owner, d, now, k, ks };
	int lens[8] = { (int)a[0].len, (int)a[1].len, (int)a[2].len, 0, 0, 0, 0, 0 };
	int fmts[8] = { 1, 1, 1, 0, 0, 0, 0, 0 };
	int64_t v = 0;
	int rc = call_int(p, "SELECT comet_presence($1::text[], $2::text[], $3::text[], $4, $5, "
			  "$6, $7, $8)", 8, vals, lens, fmts, &v, "presence", err, errlen);
	for (int i = 0; i < 3; i++)
		buf_free(&a[i]);
	*told = (int)v;
	return rc;
}

int pglog_owners(struct pglog *p, struct pglog_owner **out, int *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	PGresult *r = PQexec(p->w.c, "SELECT owner, seen FROM comet_owner");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return failed(&p->w, r, "owners", err, errlen);
	*n = PQntuples(r);
	*out = xcalloc((size_t)*n + 1, sizeof **out);
	for (int i = 0; i < *n; i++)
		(*out)[i] = (struct pglog_owner){ xstrdup(PQgetvalue(r, i, 0)),
						  strtoll(PQgetvalue(r, i, 1), NULL, 10) };
	PQclear(r);
	return 0;
}

void pglog_owners_free(struct pglog_owner *o, int n)
{
	for (int i = 0; i < n; i++)
		free(o[i].owner);
	free(o);
}

int pglog_presence_reap(struct pglog *p, const char *self, int64_t now_ms, int64_t grace_ms,
			const char *const *dead, int ndead, long keep, long keep_seconds, int *told,
			char *err, size_t errlen)
{
	struct buf a = BUF_INIT;
	text_array(&a, dead, ndead);
	char now[24], g[24], k[24], ks[24];
	snprintf(now, sizeof now, "%lld", (long long)now_ms);
	snprintf(g, sizeof g, "%lld", (long long)grace_ms);
	snprintf(k, sizeof k, "%ld", keep);
	snprintf(ks, sizeof ks, "%lld", (long long)keep_seconds * 1000);
	const char *vals[6] = { self, now, g, a.p, k, ks };
	int lens[6] = { 0, 0, 0, (int)a.len, 0, 0 };
	int fmts[6] = { 0, 0, 0, 1, 0, 0 };
	int64_t v = 0;
	int rc = call_int(p, "SELECT comet_presence_reap($1, $2, $3, $4::text[], $5, $6)", 6, vals,
			  lens, fmts, &v, "presence", err, errlen);
	buf_free(&a);
	*told = (int)v;
	return rc;
}

int pglog_members(struct pglog *p, const char *channel, bool ids, struct buf *out,
		  int64_t *last_id, long *count, long *subs, char *err, size_t errlen)
{
	if (connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	/* One statement, one snapshot: the members as of last_id. */
	const char *sql = ids
		? "SELECT (SELECT last_id FROM comet_state), coalesce((SELECT json_agg(json_build_object("
		  "'id', member) ORDER BY member) FROM comet_member WHERE channel = $1), '[]'),"
		  " (SELECT count(*) FROM comet_member WHERE channel = $1),"
		  " (SELECT coalesce(sum(subs), 0) FROM comet_presence WHERE channel = $1),"
		  " (SELECT rev FROM comet_state), (SELECT log FROM comet_state)"
		: "SELECT (SELECT last_id FROM comet_state), coalesce((SELECT json_agg(json_build_object("
		  "'id', member, 'info', info::json) ORDER BY member) FROM comet_member WHERE"
		  " channel = $1), '[]'), (SELECT count(*) FROM comet_member WHERE channel = $1),"
		  " (SELECT coalesce(sum(subs), 0) FROM comet_presence WHERE channel = $1),"
		  " (SELECT rev FROM comet_state), (SELECT log FROM comet_state)";
	const char *vals[1] = { channel };
	PGresult *r = PQexecParams(p->w.c, sql, 1, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return failed(&p->w, r, "members", err, errlen);
	*last_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	buf_adds(out, PQgetvalue(r, 0, 1));
	*count = strtol(PQgetvalue(r, 0, 2), NULL, 10);
	*subs = strtol(PQgetvalue(r, 0, 3), NULL, 10);
	int64_t rev = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	char log[40];
	snprintf(log, sizeof log, "%s", PQgetvalue(r, 0, 5));
	PQclear(r);
	/* last_id is a cursor a subscriber goes on from. */
	return seen_durable(&p->w, log, rev, "members", err, errlen);
}

int pglog_presence_channels(struct pglog *p, const char *prefix,
			    struct msglog_presence_count **out, int *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	const char *vals[1] = { prefix };
	PGresult *r = PQexecParams(p->w.c,
		"SELECT m.channel, count(*), (SELECT coalesce(sum(subs), 0) FROM comet_presence p"
		" WHERE p.channel = m.channel) FROM comet_member m WHERE starts_with(m.channel, $1)"
		" GROUP BY m.channel ORDER BY m.channel LIMIT 10000", 1, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return failed(&p->w, r, "presence", err, errlen);
	*n = PQntuples(r);
	*out = xcalloc((size_t)*n + 1, sizeof **out);
	for (int i = 0; i < *n; i++)
		(*out)[i] = (struct msglog_presence_count){ xstrdup(PQgetvalue(r, i, 0)),
			strtol(PQgetvalue(r, i, 1), NULL, 10), strtol(PQgetvalue(r, i, 2), NULL, 10) };
	PQclear(r);
	return 0;
}

int pglog_delete(struct pglog *p, const char *chan, int64_t *deleted, char *err, size_t errlen)
{
	*deleted = 0;
	if (connect_to(p, &p->w, true, err, errlen) < 0)
		return -1;
	const char *vals[1] = { chan };
	PGresult *r = call_by(&p->w, "SELECT comet_delete($1)", 1, vals, NULL, NULL, "delete", err,
			      errlen);
	if (!r)
		return -1;
	*deleted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

static char *copy_value(const PGresult *r, int row, int col, size_t *len)
{
	size_t n = (size_t)PQgetlength(r, row, col);
	char *s = xmalloc(n + 1);
	memcpy(s, PQgetvalue(r, row, col), n);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}


int pglog_changes(struct pglog *p, enum pglog_role role, const char *after_log,
		  int64_t after_id, int64_t after_rev, int max, struct pglog_changes *c,
		  char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	struct pgconn *k = role == PGLOG_WRITER ? &p->w : &p->f;
	if (connect_to(p, k, role == PGLOG_WRITER, err, errlen) < 0)
		return -1;
	char id[24], rev[24], lim[24];
	snprintf(id, sizeof id, "%lld", (long long)after_id);
	snprintf(rev, sizeof rev, "%lld", (long long)after_rev);
	snprintf(lim, sizeof lim, "%d", max);
	const char *vals[4] = { id, rev, after_log, lim };
	/* Binary results: bytea as it is, bigint as 8 bytes. */
	PGresult *r = PQexecPrepared(k->c, "comet_changes", 4, vals, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 ||
	    be32(PQgetvalue(r, 0, 0)) != 0)
		return failed(k, r, "read", err, errlen);
	int64_t last = be64(PQgetvalue(r, 0, 1));
	c->last_id = last;
	c->rev = be64(PQgetvalue(r, 0, 2));
	snprintf(c->log, sizeof c->log, "%s", PQgetvalue(r, 0, 3));
	/* Made anew (or restored from an older backup): the copy starts
	 * again from nothing. */
	c->behind = PQgetvalue(r, 0, 4)[0] == 't';
	int n = PQntuples(r);
	c->rows = xcalloc((size_t)n, sizeof *c->rows);
	c->marks = xcalloc((size_t)n, sizeof *c->marks);
	for (int i = 1; i < n; i++) {
		if (be32(PQgetvalue(r, i, 0)) == 1) {
			struct pglog_row *w = &c->rows[c->nrows++];
			w->id = be64(PQgetvalue(r, i, 1));
			w->time = be64(PQgetvalue(r, i, 2));
			w->channel = copy_value(r, i, 3, NULL);
			w->type = copy_value(r, i, 4, NULL);
			w->data = copy_value(r, i, 5, &w->len);
			if (!PQgetisnull(r, i, 6))
				w->origin = copy_value(r, i, 6, NULL);
		} else {
			struct msglog_mark *m = &c->marks[c->nmarks++];
			m->id = be64(PQgetvalue(r, i, 1));
			m->channel = copy_value(r, i, 3, NULL);
		}
	}
	PQclear(r);
	if (seen_durable(k, c->log, c->rev, "read", err, errlen) < 0) {
		pglog_changes_free(c);
		return -1;
	}
	/* Cut short (or the newest were dropped meanwhile: then the next
	 * read finds nothing and moves to last). */
	if (c->nrows && c->rows[c->nrows - 1].id < last) {
		c->more = true;
		c->last_id = c->rows[c->nrows - 1].id;
	}
	return 0;
}

void pglog_changes_free(struct pglog_changes *c)
{
	for (int i = 0; i < c->nrows; i++) {
		free(c->rows[i].channel);
		free(c->rows[i].type);
		free(c->rows[i].data);
		free(c->rows[i].origin);
	}
	for (int i = 0; i < c->nmarks; i++)
		free(c->marks[i].channel);
	free(c->rows);
	free(c->marks);
	memset(c, 0, sizeof *c);
}

/* A notification's text, read from the front. */
struct cursor {
	const char *p, *end;
};

/* A decimal number followed by sep. */
static bool number(struct cursor *c, long long *v, char sep)
{
	char *e;
	if (c->p >= c->end || !(*c->p == '-' || (*c->p >= '0' && *c->p <= '9')))
		return false;
	errno = 0;
	*v = strtoll(c->p, &e, 10);
	if (errno || e >= c->end || *e != sep)
		return false;
	c->p = e + 1;
	return true;
}

/* n bytes as a string of their own (hex: 2n hex digits, decoded). */
static char *take_bytes(struct cursor *c, long long n, bool hex)
{
	long long want = hex ? 2 * n : n;
	if (n < 0 || want > c->end - c->p)
		return NULL;
	char *s = xmalloc((size_t)n + 1);
	for (long long i = 0; i < n; i++) {
		if (!hex) {
			s[i] = c->p[i];
			continue;
		}
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char h = c->p[2 * i + j];
			int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
			if (d < 0) {
				free(s);
				return NULL;
			}
			v = v * 16 + d;
		}
		s[i] = (char)v;
	}
	s[n] = '\0';
	c->p += want;
	return s;
}

/* The notification of a write (take_write reads it; note_sql puts it
 * together): the write whole if it is small, else the line "last rev log"
 * (a version-7 follower reads the last id from either). Small:
 * PostgreSQL's notification queue holds everything sent until every
 * listener has read it, and a listener stopped for minutes would fill it 4
 * times sooner with the 8,000 bytes a notification may carry. Here the
 * messages; false if there are too many. */
static bool note_of(struct buf *b, const struct msglog_msg *m, int n)
{
	static const char hex[] = "0123456789abcdef";
	buf_reset(b);
	for (int i = 0; i < n && i < NOTE_MESSAGES && b->len <= NOTE_BYTES; i++) {
		buf_printf(b, "%zu %zu %zu %ld\n", strlen(m[i].channel), strlen(m[i].type), m[i].len,
			   m[i].origin ? (long)strlen(m[i].origin) : -1L);
		buf_adds(b, m[i].channel);
		buf_adds(b, m[i].type);
		for (size_t j = 0; j < m[i].len && b->len <= NOTE_BYTES; j++) {
			unsigned char c = (unsigned char)m[i].data[j];
			buf_addc(b, hex[c >> 4]);
			buf_addc(b, hex[c & 15]);
		}
		if (m[i].origin)
			buf_adds(b, m[i].origin);
	}
	return n <= NOTE_MESSAGES && b->len <= NOTE_BYTES;
}

/* A write a notification carries whole (note_of): the line "last rev
 * log time n nmarks", then each message as a line of its lengths "channel
 * type data origin" (origin -1: none) followed by the channel, the type,
 * the data in hex and the origin, then each mark as the line "length id"
 * followed by its channel. False (w emptied) unless all of it reads. */
static bool take_write(const char *s, struct pglog_changes *w)
{
	struct cursor c = { s, s + strlen(s) };
	long long last, rev, time, n, nmarks;
	memset(w, 0, sizeof *w);
	if (!number(&c, &last, ' ') || !number(&c, &rev, ' '))
		return false;
	const char *sp = memchr(c.p, ' ', (size_t)(c.end - c.p));
	if (!sp || sp - c.p >= (long)sizeof w->log)
		return false;
	memcpy(w->log, c.p, (size_t)(sp - c.p));
	c.p = sp + 1;
	/* Every message and mark takes at least 8 bytes. */
	if (!number(&c, &time, ' ') || !number(&c, &n, ' ') || !number(&c, &nmarks, '\n') ||
	    n < 1 || nmarks < 0 || n + nmarks > (c.end - c.p) / 8 + 1 || last < n)
		return false;
	w->rows = xcalloc((size_t)n, sizeof *w->rows);
	w->marks = xcalloc((size_t)nmarks + 1, sizeof *w->marks);
	for (long long i = 0; i < n; i++) {
		long long lc, lt, ld, lo;
		struct pglog_row *r = &w->rows[w->nrows];
		if (!number(&c, &lc, ' ') || !number(&c, &lt, ' ') || !number(&c, &ld, ' ') ||
		    !number(&c, &lo, '\n'))
			goto bad;
		r->id = last - n + 1 + i;
		r->time = time;
		r->len = (size_t)ld;
		w->nrows++;
		if (!(r->channel = take_bytes(&c, lc, false)) ||
		    !(r->type = take_bytes(&c, lt, false)) || !(r->data = take_bytes(&c, ld, true)) ||
		    (lo >= 0 && !(r->origin = take_bytes(&c, lo, false))))
			goto bad;
	}
	for (long long i = 0; i < nmarks; i++) {
		long long lc, id;
		struct msglog_mark *m = &w->marks[w->nmarks];
		if (!number(&c, &lc, ' ') || !number(&c, &id, '\n'))
			goto bad;
		m->id = id;
		w->nmarks++;
		if (!(m->channel = take_bytes(&c, lc, false)))
			goto bad;
	}
	if (c.p != c.end)
		goto bad;
	w->last_id = last;
	w->rev = rev;
	return true;
bad:
	pglog_changes_free(w);
	return false;
}

void pglog_writes_drop(struct pglog_writes *ws, int64_t held)
{
	int kept = 0;
	for (int i = 0; i < ws->n; i++) {
		if (ws->w[i].last_id <= held)
			pglog_changes_free(&ws->w[i]);
		else
			ws->w[kept++] = ws->w[i];
	}
	ws->n = kept;
}

void pglog_writes_free(struct pglog_writes *ws)
{
	for (int i = 0; i < ws->n; i++)
		pglog_changes_free(&ws->w[i]);
	free(ws->w);
	memset(ws, 0, sizeof *ws);
}

/* Takes the notifications that came: *upto keeps the newest id they name,
 * or goes to 0 for one that names none (a DELETE); the writes they carry
 * whole go to ws, in commit order. */
static bool take_notifies(struct pgconn *k, int64_t *upto, int64_t *bare,
			  struct pglog_writes *ws)
{
	PGnotify *n;
	bool any = false;
	while ((n = PQnotifies(k->c))) {
		char *end;
		long long id = strtoll(n->extra, &end, 10);
		bool named = id > 0 && (!*end || *end == ' '), whole = false;
		if (named && *end == ' ') {
			if (ws->n == ws->cap) {
				ws->cap = ws->cap ? 2 * ws->cap : 16;
				ws->w = xrealloc(ws->w, (size_t)ws->cap * sizeof *ws->w);
			}
			long long rev;
			char log[40];
			int len = 0;
			/* A note is sent by a transaction committed durably after
			 * its write. */
			if (take_write(n->extra, &ws->w[ws->n])) {
				durable_at(k, ws->w[ws->n].log, ws->w[ws->n].rev);
				ws->n++;
				whole = true;
			} else if (sscanf(end, " %lld %39s%n", &rev, log, &len) == 2 && !end[len]) {
				durable_at(k, log, rev);
			}
		}
		if (named && !whole && id > *bare)
			*bare = id;
		/* In revision order: writes' notes commit in any order. */
		for (int i = ws->n - 1; i > 0 && ws->w[i].rev < ws->w[i - 1].rev; i--) {
			struct pglog_changes t = ws->w[i];
			ws->w[i] = ws->w[i - 1];
			ws->w[i - 1] = t;
		}
		if (!any)
			*upto = named ? id : 0;
		else if (*upto)
			*upto = named ? (id > *upto ? id : *upto) : 0;
		any = true;
		PQfreemem(n);
	}
	return any;
}

int pglog_wait(struct pglog *p, int timeout_ms, bool *news, int64_t *upto, int64_t *bare,
	       struct pglog_writes *ws, char *err, size_t errlen)
{
	*news = false;
	*upto = 0;
	*bare = 0;
	struct pgconn *k = &p->f;
	if (!k->listening) {
		if (connect_to(p, k, false, err, errlen) < 0)
			return -1;
		if (exec_ok(k->c, "LISTEN comet", "listen", err, errlen) < 0) {
			drop(k);
			return -1;
		}
		k->listening = true;
		*news = true;
		return 0;
	}
	/* Notifications may have come in with the last query's answer. */
	bool any = PQconsumeInput(k->c) && take_notifies(k, upto, bare, ws);
	if (!any) {
		struct pollfd pf = { PQsocket(k->c), POLLIN, 0 };
		if (poll(&pf, 1, timeout_ms) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (!PQconsumeInput(k->c)) {
			pq_error(k->c, NULL, "listen", err, errlen);
			drop(k);
			return -1;
		}
		any = take_notifies(k, upto, bare, ws);
	}
	*news = any;
	return 0;
}
