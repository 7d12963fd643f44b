#!/usr/bin/env python3
"""The shared log's unit tests (check_pglog.c) against a PostgreSQL of their
own: starts a cluster (harness.PostgreSQL), then runs check_comet with
COMET_TEST_PG set, which runs the pglog suite alone (COMET_TEST_PG_ADMIN: the
superuser, for settings of the server). Under the sanitizer
build the same binary is the sanitized one."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import harness  # noqa: E402


def main():
    if not harness.pg_bindir():
        print("SKIP: no PostgreSQL server programs (initdb); ./bootstrap installs them")
        return 77
    exe = os.path.join(os.environ.get("COMET_BUILD_DIR", os.getcwd()), "tests", "unit",
                       "check_comet")
    with harness.PostgreSQL(name="unit") as pg:
        admin = "host=%s port=%d user=%s dbname=comet" % (pg.sockdir, pg.port, pg.SUPERUSER)
        env = dict(os.environ, COMET_TEST_PG=pg.uri(), COMET_TEST_PG_ADMIN=admin,
                   CK_DEFAULT_TIMEOUT="60")
        return subprocess.run([exe], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
