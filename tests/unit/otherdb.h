/* Another process's connection to a database, as the unit tests stand in
 * for one: SQLite itself, holding a transaction across calls (which msglog
 * never does). */
#ifndef COMET_OTHERDB_H
#define COMET_OTHERDB_H

/* Opens path and runs how (e.g. "BEGIN IMMEDIATE"); NULL on failure. */
void *otherdb_begin(const char *path, const char *how);
/* Rolls back and closes. */
void otherdb_end(void *db);

#endif
