# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migrations run on a branch (migrations.py says which and in what order): each file in its own transaction on the
branch's server, recorded on the branch as it commits, so a file that fails leaves the ones before it recorded
and itself rolled back. Each file's contents are kept under <state_dir>/migrations/<sha256>.sql (0600), so that a
merge (service/merge.py) can apply what a branch had to another without the checkout it came from.

A new or reset branch runs them before its record says it serves (Filler.fill's `prepare`): a failure there, or a
run killed there, leaves a branch that is made again, never one half-migrated and ready."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import List, Optional, Sequence

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError, MigrationFailed
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.migrations import (
    HISTORY_FILE,
    HISTORY_QUERY,
    Applied,
    MigrationFile,
    decode,
    encode,
    failed_file,
    failure_summary,
    history_sql,
    pending,
    reconcile,
)
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    RUNNING,
    STOPPED,
    BranchRecord,
    DatabaseRecord,
    now,
    timestamp,
)


class Migrations:
    def __init__(self, site):
        self.site = site

    def run(self, database: DatabaseRecord, record: BranchRecord, files: Sequence[MigrationFile],
            had: Sequence[Applied], then: str = "the files before it stay applied", together: bool = False) -> List[str]:
        """Runs on the branch's running server, in order, those of `files` it has not had (`had`, and what its
        server's history has besides: service docstring), each in a transaction of its own (`together`: all in one),
        records each as it commits (the record's list is what it had and those), and returns their names. `then`:
        what a failure leaves, for its report."""
        runtime, store = self.site.runtime, self.site.store
        container = record.container_id or record.container_name
        # Only where files are to run is the server asked (a copy without any keeps its source's list as it is).
        applied = reconcile(had, self.server_history(database, record)) if files else list(had)
        todo = pending(files, applied, record.name)
        store.update_branch(database.name, record.name, migrations=encode(applied))
        for batch in ([todo] if together and todo else [[migration] for migration in todo]):
            for migration in batch:
                self.site.storage.keep_file(self.kept_path(migration.checksum), migration.sql)
            injection_point("migrate:file")
            committed, said = runtime.run_sql_files(container, database.user, database.name,
                                                    [(HISTORY_FILE, history_sql(batch))]
                                                    + [(migration.name, migration.sql) for migration in batch])
            if not committed:
                names = [migration.name for migration in batch]
                raise MigrationFailed(f"{failed_file(said, names)} failed on branch {record.name!r} of database "
                                      f"{database.name!r} and {'all were' if len(batch) > 1 else 'was'} rolled back "
                                      f"({failure_summary(said)}); {then}")
            injection_point("migrate:committed")
            applied += [Applied(migration.name, migration.checksum, timestamp(now())) for migration in batch]
            store.update_branch(database.name, record.name, migrations=encode(applied))
            injection_point("migrate:recorded")
        return [migration.name for migration in todo]

    def server_history(self, database: DatabaseRecord, record: BranchRecord) -> List[Applied]:
        """What the branch's server says it has had (baseful.migrations), in the order it had them."""
        rows = self.site.runtime.query_json(record.container_id or record.container_name, database.user,
                                            database.name, HISTORY_QUERY)
        return [Applied(row["file"], row["checksum"], row["applied_at"]) for row in rows]

    def reconciled(self, database: DatabaseRecord, record: Optional[BranchRecord]) -> Optional[BranchRecord]:
        """The record with what its running server had and it does not list (a run killed between a file's commit
        and its record); as it is where the server is not running. Read-only: the next run of files records it."""
        if record is None or record.status != RUNNING \
                or self.site.runtime.status(record.container_id or record.container_name) != RUNNING:
            return record
        had = decode(record.migrations)
        merged = reconcile(had, self.server_history(database, record))
        return replace(record, migrations=encode(merged)) if len(merged) != len(had) else record

    def kept_path(self, checksum: str) -> str:
        return os.path.join(self.site.placement.state_dir, "migrations", f"{checksum}.sql")

    def contents(self, entries: Sequence[Applied], given: Sequence[MigrationFile], branch: str) -> List[MigrationFile]:
        """The files of `entries` (migrations a branch had), from `given` where one of that name is there, else as
        kept when they ran; each checked against the checksum recorded."""
        by_name = {migration.name: migration for migration in given}
        result = []
        for entry in entries:
            found = by_name.get(entry.file)
            if found is None:
                kept = self.site.storage.read_kept(self.kept_path(entry.checksum))
                found = MigrationFile(entry.file, self.kept_path(entry.checksum), kept) if kept is not None else None
            if found is None:
                raise InputError("migrations", f"the contents of {entry.file}, which branch {branch!r} had, are not kept "
                                 f"under {self.site.placement.state_dir}/migrations (it ran with another state_dir); "
                                 "give the file or its directory with migrations")
            if found.checksum != entry.checksum:
                raise InputError("migrations", f"{found.path} is not the {entry.file} branch {branch!r} had (checksum "
                                 f"{found.checksum[:12]}, recorded {entry.checksum[:12]})")
            result.append(found)
        return result

    def run_on_existing(self, database: DatabaseRecord, record: BranchRecord, files: Sequence[MigrationFile],
                        had: Sequence[Applied], then: str = "the files before it stay applied",
                        together: bool = False) -> List[str]:
        """The same on a branch that serves already; a stopped one is started for them and stopped again, as the
        state it was asked for says."""
        runtime = self.site.runtime
        container = record.container_id or record.container_name
        stopped = runtime.status(container) == STOPPED
        if stopped:
            runtime.start(container, record.port)
        try:
            if stopped:
                runtime.wait_ready(container, database.user, database.name)
            return self.run(database, record, files, had, then, together)
        finally:
            if stopped:
                runtime.stop(container)
