# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A branch's schema against another's (compare.py reads and compares): what branch_diff returns and what a merge
checks afterwards. Read-only: both servers must be running, and nothing is started, stopped or written."""

from __future__ import annotations

from typing import Optional

from ansible_collections.baseful.branching.plugins.module_utils.compare import (
    CATALOG_QUERY,
    ROWS_QUERY,
    changes,
    normalised_ddl,
    row_changes,
    unified,
)
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import RUNNING, STOPPED, BranchRecord, DatabaseRecord


class Comparison:
    def __init__(self, site):
        self.site = site

    def against_of(self, database: DatabaseRecord, record: BranchRecord, against: Optional[str],
                   parameter: str = "against") -> BranchRecord:
        """The branch to compare with: `against`, else the branch's parent."""
        name = against or record.parent
        if name is None or name == "external":
            raise InputError(parameter, f"branch {record.name!r} of database {database.name!r} has no parent branch "
                             f"to compare with; name one with {parameter}")
        if name == record.name:
            raise InputError(parameter, f"branch {record.name!r} cannot be compared with itself")
        other = self.site.store.branch(database.name, name)
        if other is None:
            names = ", ".join(b.name for b in self.site.store.branches(database.name))
            raise InputError(parameter, f"branch {name!r} does not exist in database {database.name!r}; existing "
                             f"branches: {names}")
        return other

    def compare(self, database: DatabaseRecord, record: BranchRecord, against: BranchRecord, data: bool = False) -> dict:
        """identical, changes, diff (and rows, with `data`) of `record`'s schema against `against`'s."""
        ours, theirs = (self._read(database, branch, data, parameter)
                        for branch, parameter in ((record, "name"), (against, "against")))
        found = changes(ours["catalog"], theirs["catalog"])
        result = {"name": record.name, "against": against.name, "identical": not found, "changes": found,
                  "diff": unified(theirs["ddl"], ours["ddl"], f"{database.name}/{against.name}",
                                  f"{database.name}/{record.name}")}
        if data:
            result["rows"] = row_changes(ours["rows"], theirs["rows"])
        return result

    def require_running(self, database: DatabaseRecord, branch: BranchRecord, parameter: str, why: str) -> None:
        """Refuses, naming `parameter`, a branch whose record or container is not running; `why` it must be."""
        runtime = self.site.runtime
        status = runtime.status(branch.container_id or branch.container_name) \
            if branch.status in (RUNNING, STOPPED) else branch.status
        if status != RUNNING:
            raise InputError(parameter, f"branch {branch.name!r} of database {database.name!r} is {status}; {why}: "
                             "start it first (state: started)")

    def _read(self, database: DatabaseRecord, branch: BranchRecord, data: bool, parameter: str) -> dict:
        self.require_running(database, branch, parameter, "a schema is read from a running server")
        runtime = self.site.runtime
        container = branch.container_id or branch.container_name
        reading = {"catalog": runtime.query_json(container, database.user, database.name, CATALOG_QUERY),
                   "ddl": normalised_ddl(runtime.dump_schema(container, database.user, database.name))}
        if data:
            reading["rows"] = runtime.query_json(container, database.user, database.name, ROWS_QUERY)
        return reading
