# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical copy: pg_basebackup with streamed WAL, straight into the branch's data directory.

The worker shares the source container's network namespace, so it reaches the server on
127.0.0.1, where initdb's pg_hba has its replication rule; it authenticates as the database's user
with its password (read from the mounted password file into the environment, never a command line),
so the copy works whether that rule says trust or asks for a password (POSTGRES_INITDB_ARGS
--auth-host=scram-sha-256, as operators harden it). No rule of the source is changed. A stopped
source is consistent on disk already and is copied as files. No backup manifest: nothing verifies
a branch against one, and its checksums cost CPU the copy needs.
"""

from __future__ import annotations

import time

from ansible_collections.baseful.branching.plugins.module_utils.copy import CopyJob, CopyResult, Situation
from ansible_collections.baseful.branching.plugins.module_utils.copy.dump import check_stages
from ansible_collections.baseful.branching.plugins.module_utils.errors import CopyFailed
from ansible_collections.baseful.branching.plugins.module_utils.runtime import SECRET_IN_CONTAINER, TARGET_IN_WORKER

BASEBACKUP = f"""
PGPASSWORD="$(cat {SECRET_IN_CONTAINER})" pg_basebackup --pgdata={TARGET_IN_WORKER} --wal-method=stream \
  --checkpoint=fast --no-manifest --no-password --host=127.0.0.1 --port=5432 --username="$SUPERUSER"
echo "basebackup=$?"
"""


class PhysicalCopy:
    name = "physical"
    fills_data_dir = True
    needs_running_source = False
    # One at a time per source, others wait their turn: concurrent base backups' fast checkpoints
    # can recycle a WAL segment before another backup's temporary slot reserves it ("requested WAL
    # segment has already been removed"), and each holds two of the source's max_wal_senders.
    copies_per_source = 1

    @staticmethod
    def serves(situation: Situation) -> bool:
        return situation.mode == "all" and situation.same_major and not situation.external_source \
            and not situation.filtered

    def run(self, job: CopyJob, runtime, storage) -> CopyResult:
        started = time.monotonic()
        if job.source.running:
            code, stdout, stderr = runtime.run_worker(
                job.image, job.database, job.branch, BASEBACKUP, {"SUPERUSER": job.user}, job.password_file,
                network_mode=f"container:{job.source.container}", target_dir=job.target.data_dir)
            try:
                check_stages(stdout, ["basebackup"])
            except CopyFailed as error:
                raise CopyFailed(f"copy of branch {job.branch!r} failed: {error}: {stderr.strip()[-300:]}") from error
        else:
            storage.copy_tree(job.source.data_dir, job.target.data_dir, reflink="auto")
            storage.forget_running_server(job.target.data_dir)
        return CopyResult(self.name, time.monotonic() - started, storage.size(job.target.data_dir))


METHOD = PhysicalCopy()
