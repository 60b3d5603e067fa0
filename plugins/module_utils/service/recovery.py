# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a branch's pieces, and what a run killed on another branch left running. Everything here
removes only what a record names, or containers labelled for this database and state_dir."""

from __future__ import annotations

from typing import Optional

from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.locks import LockBusy
from ansible_collections.baseful.branching.plugins.module_utils.model import BranchRecord
from ansible_collections.baseful.branching.plugins.module_utils.runtime import WORKER_ROLE, copy_slot


class Recovery:
    def __init__(self, site):
        self.site = site

    def discard(self, database: str, name: str, record: Optional[BranchRecord]) -> None:
        """Removes every piece of a branch: containers (its own and any labelled stray), data, record."""
        if record is None:
            self.remove_labelled(database, name)
            return
        self.discard_contents(database, record)
        injection_point("delete:data")
        self.site.store.remove_branch(database, name)

    def discard_contents(self, database: str, record: BranchRecord) -> None:
        """Containers (the record's and any labelled stray, copy workers among them) and the data directory."""
        self.remove_labelled(database, record.name)
        self.site.runtime.remove(record.container_id or record.container_name)
        injection_point("delete:containers")
        self.site.storage.remove(record.data_dir)

    def remove_labelled(self, database: str, name: Optional[str] = None) -> None:
        runtime = self.site.runtime
        for container in runtime.labelled(database, name):
            runtime.remove(container.id)

    def dead_runs(self, database: str, own_branch: str) -> None:
        """What a run killed on another branch leaves running: a source frozen for a snapshot (freezes are
        taken only under the source's snapshot slot, so a paused branch whose slot can be had is orphaned)
        and a copy worker still copying (its branch's lock is free once its run is dead). This run's own
        branch is cleaned up by its plan."""
        store, runtime = self.site.store, self.site.runtime
        for container in runtime.labelled(database):
            if container.paused:
                with store.slot(copy_slot(database, container.branch, "snapshot"), 1):
                    runtime.thaw(container.id)
            elif container.role == WORKER_ROLE and container.branch != own_branch:
                try:
                    with store.lock(f"{database}/{container.branch}", timeout=0):
                        runtime.remove(container.id)
                except LockBusy:
                    pass  # a live run is copying
