# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The metadata file's schema and its migrations, in place and in order; PRAGMA user_version holds the
version. Entries of MIGRATIONS are history: never edit one, append."""

from __future__ import annotations

import sqlite3
import time
from typing import List

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError

BUSY_TIMEOUT_SECONDS = 60


def _branches_table(name: str, statuses: str) -> str:
    return f"""
    CREATE TABLE {name} (
        database TEXT NOT NULL REFERENCES databases(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({statuses})),
        is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
        protected INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1)),
        host TEXT NOT NULL,
        port INTEGER NOT NULL UNIQUE,
        container_name TEXT NOT NULL UNIQUE,
        container_id TEXT,
        parent TEXT,
        copy_mode TEXT,
        copy_method TEXT,
        ttl_seconds INTEGER,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        data_dir TEXT NOT NULL,
        PRIMARY KEY (database, name)
    );
    """


_ONE_DEFAULT = "CREATE UNIQUE INDEX one_default_per_database ON branches (database) WHERE is_default = 1;"

# Each entry migrates from version i to i + 1; the file records its version in PRAGMA user_version.
# Entries are history: never edit one, append.
MIGRATIONS = (
    """
    CREATE TABLE databases (
        name TEXT PRIMARY KEY,
        image TEXT NOT NULL,
        pg_major INTEGER NOT NULL,
        user TEXT NOT NULL,
        password_file TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """ + _branches_table("branches", "'creating', 'deleting', 'running', 'stopped'") + _ONE_DEFAULT,
    # 2: status 'resetting' (SQLite cannot alter a CHECK constraint: the table is rebuilt).
    _branches_table("branches_v2", "'creating', 'resetting', 'deleting', 'running', 'stopped'") + """
    INSERT INTO branches_v2 SELECT * FROM branches;
    DROP TABLE branches;
    ALTER TABLE branches_v2 RENAME TO branches;
    """ + _ONE_DEFAULT,
    # 3: a database's own status ('creating' and 'deleting' are written by the run doing that work, so crash
    # recovery keys on them and never on a branch being absent), and the store's identity, which every
    # manifest on the host names.
    """
    ALTER TABLE databases ADD COLUMN status TEXT NOT NULL DEFAULT 'ready'
        CHECK (status IN ('creating', 'ready', 'deleting'));
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    """,
    # 4: a database's endpoint (its PgBouncer): image, container and pinned port. A port is one record's
    # only, a branch's or an endpoint's: the triggers extend the branches' UNIQUE(port) across both tables,
    # with the message of that constraint, so allocation moves on to the next port either way.
    """
    ALTER TABLE databases ADD COLUMN endpoint_port INTEGER;
    ALTER TABLE databases ADD COLUMN endpoint_image TEXT;
    ALTER TABLE databases ADD COLUMN endpoint_container TEXT;
    CREATE UNIQUE INDEX one_endpoint_per_port ON databases (endpoint_port) WHERE endpoint_port IS NOT NULL;
    """ + "".join(f"""
    CREATE TRIGGER {name} BEFORE {event} WHEN {when}
    BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: {column}'); END;
    """ for name, event, when, column in (
        ("branch_port_not_an_endpoints", "INSERT ON branches",
         "EXISTS (SELECT 1 FROM databases WHERE endpoint_port = NEW.port)", "branches.port"),
        ("branch_port_moves_not_onto_an_endpoint", "UPDATE OF port ON branches",
         "EXISTS (SELECT 1 FROM databases WHERE endpoint_port = NEW.port)", "branches.port"),
        ("endpoint_port_not_a_branchs", "INSERT ON databases",
         "EXISTS (SELECT 1 FROM branches WHERE port = NEW.endpoint_port)", "databases.endpoint_port"),
        ("endpoint_port_moves_not_onto_a_branch", "UPDATE OF endpoint_port ON databases",
         "EXISTS (SELECT 1 FROM branches WHERE port = NEW.endpoint_port)", "databases.endpoint_port"),
    )),
    # 5: the migrations a branch has had (migrations.py): JSON, a list of {file, checksum, applied_at} in order.
    """
    ALTER TABLE branches ADD COLUMN migrations TEXT;
    """,
    # 6: masking rules (masking.py: JSON): those a branch's data has had, and a database's for its new branches; the
    # row filter a branch's copy took (subset.py: JSON).
    """
    ALTER TABLE branches ADD COLUMN mask TEXT;
    ALTER TABLE branches ADD COLUMN filter TEXT;
    ALTER TABLE databases ADD COLUMN mask TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def check_version(connection: sqlite3.Connection) -> int:
    """The file's schema version; a file newer than this code is refused, never read or written."""
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise BranchingError(f"state_dir: the metadata file has schema version {found}, newer than this "
                             f"collection understands ({SCHEMA_VERSION}); upgrade baseful.branching")
    return found


def enable_wal(connection: sqlite3.Connection) -> None:
    """Switch a new file to WAL. The switch needs an exclusive lock, and SQLite answers 'database is
    locked' at once instead of waiting when other processes open the same new file at that moment,
    so it is retried; once the file is in WAL (a persistent setting) it succeeds at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _statements(script: str) -> List[str]:
    """The statements of a script, whole: a trigger's body holds semicolons of its own."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION in place; returns the version found."""
    found = check_version(connection)
    for version in range(found, SCHEMA_VERSION):
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            if connection.execute("PRAGMA user_version").fetchone()[0] != version:
                continue  # another process migrated meanwhile
            for statement in _statements(MIGRATIONS[version]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
    return found
