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
from typing import List, Sequence

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError, MigrationFailed
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.migrations import (
    Applied,
    MigrationFile,
    encode,
    failure_summary,
)
from ansible_collections.baseful.branching.plugins.module_utils.model import (
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
            had: Sequence[Applied], then: str = "the files before it stay applied") -> List[str]:
        """Runs `files` in order on the branch's running server after what it `had`, records each as it commits
        (the record's list is `had` and those), and returns their names. `then`: what a failure leaves, for its
        report."""
        runtime, store = self.site.runtime, self.site.store
        container = record.container_id or record.container_name
        applied = list(had)
        store.update_branch(database.name, record.name, migrations=encode(applied))
        for migration in files:
            self.site.storage.keep_file(self.kept_path(migration.checksum), migration.sql)
            injection_point("migrate:file")
            committed, said = runtime.run_sql_file(container, database.user, database.name, migration.name,
                                                   migration.sql)
            if not committed:
                raise MigrationFailed(f"{migration.name} failed on branch {record.name!r} of database "
                                      f"{database.name!r} and was rolled back ({failure_summary(said)}); {then}")
            applied.append(Applied(migration.name, migration.checksum, timestamp(now())))
            store.update_branch(database.name, record.name, migrations=encode(applied))
            injection_point("migrate:recorded")
        return [migration.name for migration in files]

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
                        had: Sequence[Applied]) -> List[str]:
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
            return self.run(database, record, files, had)
        finally:
            if stopped:
                runtime.stop(container)
