/* Another process's connection to a database, for the unit tests. */
#include "config.h"

#include <sqlite3.h>
#include <stddef.h>

#include "otherdb.h"

void *otherdb_begin(const char *path, const char *how)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, how, NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

void otherdb_end(void *db)
{
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
}
