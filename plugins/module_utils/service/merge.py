# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A merge: the migrations a branch has had and `into` (its parent unless named) has not, rehearsed on a throwaway
copy of `into` and, once they all passed there, applied to `into` itself and recorded; then the two schemas are
compared. Only migrations travel: rows written on the branch never do.

The rehearsal copy is a branch of its own (`rehearsal-<random>`, copied from `into` as a new branch would be, with a
one-hour lease): a run killed during the rehearsal leaves a branch that the expiry job removes, never a container or
directory no record names. It is removed as soon as the rehearsal is over, whatever became of it."""

from __future__ import annotations

import secrets
import time
from typing import List

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.migrations import Applied, MigrationFile, decode
from ansible_collections.baseful.branching.plugins.module_utils.model import DELETING, BranchRecord, DatabaseRecord
from ansible_collections.baseful.branching.plugins.module_utils.service.site import Outcome

REHEARSAL_PREFIX = "rehearsal-"
REHEARSAL_LEASE_SECONDS = 3600
REHEARSE, MIGRATE = "rehearse", P.MIGRATE


class Merge:
    def __init__(self, site, executor):
        self.site = site
        self.executor = executor

    def to_merge(self, database: DatabaseRecord, branch: BranchRecord, into: BranchRecord) -> List[Applied]:
        """The branch's migrations that `into` has not had, in the branch's order; refuses a file both had with other
        contents (the two would not mean the same schema)."""
        had = {entry.file: entry.checksum for entry in decode(into.migrations)}
        result = []
        for entry in decode(branch.migrations):
            if entry.file not in had:
                result.append(entry)
            elif had[entry.file] != entry.checksum:
                raise InputError("name", f"{entry.file} was applied to branch {branch.name!r} with checksum "
                                 f"{entry.checksum[:12]} and to {into.name!r} with {had[entry.file][:12]}; the two "
                                 f"branches ran different files of one name, so nothing of {branch.name!r} is merged")
        return result

    def merge(self, database: DatabaseRecord, branch: BranchRecord, into: BranchRecord,
              files: List[MigrationFile]) -> Outcome:
        """Rehearses `files` on a copy of `into`, applies them to `into` and compares. Under the database's shared
        lock and both branches' own (Service.merge)."""
        outcome = Outcome(bool(files), [REHEARSE, MIGRATE] if files else [],
                          before={"into": into.name, "migrations": [e.file for e in decode(into.migrations)]},
                          values={"into": into.name, "migrations_applied": [f.name for f in files]})
        outcome.after = dict(outcome.before, migrations=outcome.before["migrations"] + [f.name for f in files])
        if self.site.check_mode or not files:
            return outcome
        outcome.values["rehearsal"] = self.rehearse(database, into, files)
        injection_point("merge:rehearsed")
        into = self.site.store.branch(database.name, into.name)
        # all in one transaction: `into` has them all or none, whatever its rows came to since the rehearsal's copy
        self.executor.migrations.run_on_existing(database, into, files, decode(into.migrations),
                                                 then=f"nothing was applied to {into.name!r}", together=True)
        return outcome

    def rehearse(self, database: DatabaseRecord, into: BranchRecord, files: List[MigrationFile]) -> dict:
        """The files on a new copy of `into` that is removed again; its name and how long it took."""
        started = time.monotonic()
        name = REHEARSAL_PREFIX + secrets.token_hex(4)
        store, executor = self.site.store, self.executor
        with store.lock(f"{database.name}/{name}"):
            record, copied = executor.create_branch(
                database, name, executor.filler.source_endpoint(database, into), "all", "auto", port=None,
                ttl=REHEARSAL_LEASE_SECONDS, is_default=False, protected=False, parent=into.name)
            try:
                executor.migrations.run(database, record, files, decode(into.migrations),
                                        then=f"nothing was applied to {into.name!r}", together=True)
            finally:
                store.update_branch(database.name, name, status=DELETING)
                executor.recovery.discard(database.name, name, store.branch(database.name, name))
        return {"branch": name, "copy_method": (copied or {}).get("method"),
                "seconds": round(time.monotonic() - started, 3)}
