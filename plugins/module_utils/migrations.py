# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A branch's migrations: the SQL files a `migrations` list names, in the order they run, and which of them a
branch has had. Pure: the files' bytes come from storage.HostStorage, the running from service/migrations.py.

A migration is known by its file name (not its path: CI checks a repository out anywhere), and a file applied is
never applied again; one that changed since it was applied is refused by name, before anything runs, as Flyway
and Rails refuse an edited migration. A branch's record keeps the files it has had, in order, with their
checksums: a copy of a branch starts with its source's list (its schema carries their work), an empty copy or a
seed from a URL with none."""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError

SUFFIX = ".sql"
# Each branch's database keeps the files it has had in baseful.migrations, written in the very transaction of each
# file: a file whose commit its run did not live to record (killed in between, or its psql outliving the run) is
# known as had by the next run, and a second run of it waits for the first's row and then fails on it, so no file
# ever runs twice. branch_diff leaves the schema out.
HISTORY_SCHEMA = "baseful"
HISTORY_FILE = "baseful-history.sql"
HISTORY_QUERY = r"""
SELECT to_regclass('baseful.migrations') IS NOT NULL AS baseful_history \gset
\if :baseful_history
SELECT coalesce(json_agg(json_build_object('file', file, 'checksum', checksum, 'applied_at', applied_at)
                         ORDER BY applied_at, file), '[]') FROM baseful.migrations;
\else
SELECT '[]';
\endif
"""


@dataclass(frozen=True)
class MigrationFile:
    """One SQL file to run: its name (what it is known by), where it was read and its bytes."""

    name: str
    path: str
    sql: bytes

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql).hexdigest()


@dataclass(frozen=True)
class Applied:
    """A migration a branch has had."""

    file: str
    checksum: str
    applied_at: str

    def as_dict(self) -> dict:
        return {"file": self.file, "checksum": self.checksum, "applied_at": self.applied_at}


def order(found: Iterable[Tuple[str, Sequence[str]]]) -> List[Tuple[str, str]]:
    """(name, path) of each file to run, in order: for each entry of `migrations`, as (the path given, the files
    it names: itself for a file, for a directory its regular files), a file as given, a directory's *.sql files
    in name order. A name met twice is refused: it would say which of two files a branch has had."""
    result, seen = [], {}
    for given, files in found:
        chosen = [given] if list(files) == [given] else sorted(f for f in files if f.endswith(SUFFIX))
        for path in sorted(chosen, key=posixpath.basename):
            name = posixpath.basename(path)
            if name in seen:
                raise InputError("migrations", f"two files are named {name!r} ({seen[name]} and {path}); a migration "
                                 "is known by its file name, so each name may be given once")
            seen[name] = path
            result.append((name, path))
    return result


def check_path(path) -> str:
    """An entry of `migrations` as a path this module can read: absolute (a module runs in a temporary
    directory), one line."""
    if not isinstance(path, str) or not path.startswith("/") or any(ord(c) < 32 for c in path):
        raise InputError("migrations", f"{path!r} is not an absolute path; give each SQL file or directory of SQL "
                         "files on the Docker host by its absolute path")
    return path


def pending(wanted: Sequence[MigrationFile], had: Sequence[Applied], branch: str) -> List[MigrationFile]:
    """The wanted files the branch has not had, in the given order; refuses one it had with other contents."""
    checksums = {entry.file: entry.checksum for entry in had}
    result = []
    for migration in wanted:
        before = checksums.get(migration.name)
        if before is None:
            result.append(migration)
        elif before != migration.checksum:
            raise InputError("migrations", f"{migration.name} was applied to branch {branch!r} with checksum "
                             f"{before[:12]} and has changed since (now {migration.checksum[:12]}, {migration.path}); "
                             "an applied migration is never run again: restore it, or put the change in a new file")
    return result


def decode(text: Optional[str]) -> List[Applied]:
    """A record's `migrations` column (JSON, a list of {file, checksum, applied_at}); none for an older one."""
    return [Applied(item["file"], item["checksum"], item["applied_at"]) for item in json.loads(text or "[]")]


def encode(had: Iterable[Applied]) -> str:
    return json.dumps([entry.as_dict() for entry in had], separators=(",", ":"))


def inherited(source_migrations: Optional[str], mode: str, managed_source: bool) -> List[Applied]:
    """What a new copy has had: its source's migrations where it copies the source's schema."""
    return decode(source_migrations) if managed_source and mode in ("all", "schema") else []


def failure_summary(output: str, limit: int = 600) -> str:
    """psql's report of a failed file, on one line: its 'psql:<file>:<line>: ERROR: ...' and the failed
    statement (psql --echo-errors), without the file's path inside the container."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    text = " | ".join(lines)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def history_sql(files: Sequence[MigrationFile]) -> bytes:
    """What runs first in the files' transaction: their rows in baseful.migrations (no ON CONFLICT: a second run of
    a file waits for the first's row and then fails). Names as hex, so that no name can be read as SQL."""
    rows = ",\n".join(f"  (convert_from('\\x{m.name.encode('utf-8', 'surrogateescape').hex()}'::bytea, 'UTF8'), "
                      f"'{m.checksum}')" for m in files)
    return (f"CREATE SCHEMA IF NOT EXISTS {HISTORY_SCHEMA};\n"
            f"CREATE TABLE IF NOT EXISTS {HISTORY_SCHEMA}.migrations (file text PRIMARY KEY, checksum text NOT NULL,\n"
            "  applied_at timestamptz NOT NULL DEFAULT clock_timestamp());\n"
            f"INSERT INTO {HISTORY_SCHEMA}.migrations (file, checksum) VALUES\n{rows};\n").encode()


def reconcile(had: Sequence[Applied], server: Sequence[Applied]) -> List[Applied]:
    """What a branch has had: its record's list, then what its server's history has that the list lacks."""
    known = {entry.file for entry in had}
    return list(had) + [entry for entry in server if entry.file not in known]


def failed_file(said: str, names: Sequence[str]) -> str:
    """Which of `names` psql's report says failed ('psql:<name>:<line>: ERROR: ...'), else all of them."""
    for name in names:
        if f"psql:{name}:" in said:
            return name
    return ", ".join(names)
