# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy-on-write clone of the source's data directory.

A running source is frozen (docker pause: the cgroup freezer) for the length of the clone, which
on a reflink filesystem costs metadata only; the clone is then exactly what a crash at that
instant would leave on disk, and the branch starts through ordinary crash recovery. The pause is
measured and returned as `source_pause_ms`.
"""

from __future__ import annotations

import time

from ansible_collections.baseful.branching.plugins.module_utils.copy import CopyJob, CopyResult, Situation
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point


class SnapshotCopy:
    # One freeze of a source at a time (docker refuses to pause a paused container), and a paused
    # source whose slot is free is known to be a dead run's freeze (Service thaws it).
    copies_per_source = 1
    name = "snapshot"
    fills_data_dir = True
    needs_running_source = False

    @staticmethod
    def serves(situation: Situation) -> bool:
        return situation.mode == "all" and situation.same_major and not situation.external_source \
            and not situation.filtered and situation.copy_on_write

    def run(self, job: CopyJob, runtime, storage) -> CopyResult:
        started = time.monotonic()
        paused_ms = None
        if job.source.running:
            # Every branch replays the WAL written since the source's last checkpoint and rewrites
            # those pages in its own copy: a checkpoint first keeps the clone's pages shared and its
            # recovery short. It costs the source I/O, not a stall.
            runtime.checkpoint(job.source.container, job.user)
            with runtime.paused(job.source.container) as pause:
                injection_point("copy")
                storage.copy_tree(job.source.data_dir, job.target.data_dir, reflink="always")
            paused_ms = pause.milliseconds
        else:
            storage.copy_tree(job.source.data_dir, job.target.data_dir, reflink="always")
        storage.forget_running_server(job.target.data_dir)
        return CopyResult(self.name, time.monotonic() - started, storage.size(job.target.data_dir),
                          {"source_pause_ms": paused_ms})


METHOD = SnapshotCopy()
