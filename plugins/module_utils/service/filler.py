# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filling a branch: the copy method that serves the request, then data directory, copy and container
in the order that method needs. Returns the copy's result; the caller records it."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable, Optional, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.copy import CopyJob, Endpoint, choose_method, method_for
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError, PortTaken
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    RUNNING,
    STOPPED,
    BranchRecord,
    DatabaseRecord,
    connection_host,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import TARGET_IN_WORKER, ContainerSpec, copy_slot
from ansible_collections.baseful.branching.plugins.module_utils.service.ports import Ports

NO_SPACE = "No space left on device"  # strerror(ENOSPC), as cp, pg_basebackup, PostgreSQL and Python report it


class Filler:
    def __init__(self, site, ports: Ports):
        self.site = site
        self.ports = ports

    def source_endpoint(self, database: DatabaseRecord, source: BranchRecord) -> Endpoint:
        container = source.container_id or source.container_name
        status = self.site.runtime.status(container)
        if status not in (RUNNING, STOPPED):
            raise InputError("source", f"branch {source.name!r} of database {database.name!r} is {status}; "
                             "repair it first (state: started)")
        return Endpoint(conninfo=self.conninfo(database, source.port, database.name), container=container,
                        data_dir=source.data_dir, pg_major=database.pg_major, running=status == RUNNING,
                        branch=source.name)

    def method(self, database: DatabaseRecord, source: Endpoint, mode: str, requested: str, filtered: bool = False):
        """The method that serves this copy; refuses one that cannot, before anything is made."""
        same_major, external = source.pg_major in (None, database.pg_major), not source.managed
        # The reflink probe writes two temporary files: only worth it where a snapshot could serve.
        copy_on_write = mode == "all" and same_major and not external and not filtered \
            and self.site.storage.reflink_supported(self.site.placement.data_root)
        method = method_for(choose_method(requested, mode, same_major, external, copy_on_write, filtered))
        if method.needs_running_source and not source.running:
            raise InputError("source", f"branch {source.branch!r} of database {database.name!r} is stopped; "
                             f"a {method.name} copy reads from a running server: start it first (state: started)")
        return method

    def fill(self, database: DatabaseRecord, record: BranchRecord, source: Optional[Endpoint], mode: str,
             method, movable_port: bool = False,
             prepare: Optional[Callable[[BranchRecord], None]] = None, sealed: Optional[str] = None,
             subset=None) -> Optional[dict]:
        """Data directory, copy and container in the order the method needs; then the record says 'running'.
        Snapshot and physical fill the data directory before the server starts (it then recovers);
        dump restores into a freshly initialised, running server. Returns the copy's result, if one ran.
        movable_port: the port was chosen here, not asked for, so another may take its place (_serve).
        prepare: work on the ready server (its record as it is then) before the record says it serves.
        sealed: the masking key file of a sealed server (_sealed), which only then gives way to the one that serves.
        subset: a filtered copy's statements (subset.Subset), for the dump method."""
        site = self.site
        started = time.monotonic()
        free_before = site.storage.free_bytes(site.placement.data_root)
        container_id = None
        result = None
        try:
            site.storage.make_data_dir(record.data_dir)
            injection_point("fill:data_dir")
            if method is not None and method.fills_data_dir:
                result = self._run(method, self._job(database, record, source, mode))
                injection_point("fill:copied")
            if sealed:
                container_id = self._sealed(database, record, sealed)
            else:
                container_id, record = self._serve(database, record, movable_port)
            injection_point("fill:container")
            site.runtime.wait_ready(container_id, database.user, database.name)
            if method is not None and not method.fills_data_dir:
                result = self._run(method, self._job(database, record, source, mode, bool(sealed), subset))
            injection_point("fill:ready")
            if prepare is not None:
                prepare(site.store.branch(database.name, record.name))
            if sealed:
                container_id, record = self._unseal(database, record, container_id, movable_port)
        except (BranchingError, OSError) as error:
            # A server that hits a full disk stops (a PANIC on WAL), and its client only sees the
            # connection drop: the branch's own log says why.
            if NO_SPACE not in str(error) and NO_SPACE not in self._log_tail_or_nothing(container_id):
                raise
            free = f"{free_before / 2**20:.0f} MiB were free when it began" if free_before is not None else "it was full"
            raise InputError("data_root", f"{site.placement.data_root} ran out of space while branch {record.name!r} "
                             f"was being copied ({free}); free space there or choose another data_root") from error
        if result is not None:
            result["ready_seconds"] = round(time.monotonic() - started, 3)
        site.store.update_branch(database.name, record.name, status=RUNNING)
        return result

    def _sealed(self, database: DatabaseRecord, record: BranchRecord, key_file: str) -> str:
        """The branch's server where no client reaches it (ContainerSpec.sealed), recorded as its container."""
        spec = self.spec(database, record, record.port)
        spec.sealed, spec.key_file = True, key_file
        container_id = self.site.runtime.create_container(spec)
        self.site.store.update_branch(database.name, record.name, container_id=container_id)
        return container_id

    def _unseal(self, database: DatabaseRecord, record: BranchRecord, sealed_id: str,
                movable_port: bool) -> Tuple[str, BranchRecord]:
        """The sealed server stopped cleanly (its shutdown checkpoint writes every page), its WAL replaced by one
        empty segment (pg_resetwal: the segments held the original rows, their masking's full pages among them,
        and recycled ones whatever the source wrote), the copy's server logs and query statistics emptied, then the
        branch's own container, published, in its place."""
        runtime = self.site.runtime
        logs = runtime.query_json(sealed_id, database.user, database.name,
                                  "SELECT to_json(current_setting('log_directory'))")
        runtime.stop(sealed_id)
        runtime.reset_wal(database.image, record.data_dir, database.name, record.name)
        # What the copy's server logged and pg_stat_statements kept, which could quote any value
        self.site.storage.empty_within(record.data_dir, [logs, "pg_stat_tmp"])
        self.site.storage.remove_file(record.data_dir, "pg_stat/pg_stat_statements.stat")
        injection_point("fill:unsealed")
        runtime.remove(sealed_id)
        container_id, record = self._serve(database, record, movable_port)
        runtime.wait_ready(container_id, database.user, database.name)
        return container_id, record

    def _serve(self, database: DatabaseRecord, record: BranchRecord, movable_port: bool) -> Tuple[str, BranchRecord]:
        """The branch's container, made and started, and the record as it then is. Another state_dir on this
        host (another team, another playbook) picks its ports from what is free too, and may bind the same
        one first: a port chosen here moves on to the next free one, a port asked for is refused."""
        site, tried = self.site, set()
        while True:
            try:
                container_id = site.runtime.create_container(self.spec(database, record, record.port))
            except PortTaken:
                if not movable_port:
                    raise
                tried.add(record.port)
                record = site.store.move_branch_port(record, (p for p in self.ports.free() if p not in tried))
                continue
            site.store.update_branch(database.name, record.name, container_id=container_id)
            return container_id, record

    def _job(self, database: DatabaseRecord, record: BranchRecord, source: Endpoint, mode: str,
             sealed: bool = False, subset=None) -> CopyJob:
        conninfo = f"host={TARGET_IN_WORKER} port=5432 user={database.user}" if sealed \
            else self.conninfo(database, record.port, dbname=None)
        return CopyJob(database.name, record.name, mode, database.image, database.pg_major, database.user,
                       database.name, database.password_file, source,
                       Endpoint(conninfo=conninfo, data_dir=record.data_dir, pg_major=database.pg_major),
                       target_mounted=sealed, subset=subset)

    def _run(self, method, job: CopyJob) -> dict:
        limited = method.copies_per_source and job.source.managed and job.source.running
        with self.site.store.slot(copy_slot(job.database, job.source.branch, method.name), method.copies_per_source) \
                if limited else nullcontext():
            return method.run(job, self.site.runtime, self.site.storage).as_dict()

    def spec(self, database: DatabaseRecord, record: BranchRecord, port: int) -> ContainerSpec:
        placement = self.site.placement
        return ContainerSpec(name=record.container_name, image=database.image, database=database.name,
                             branch=record.name, bind_address=placement.bind_address, port=port,
                             data_dir=record.data_dir, password_file=database.password_file, user=database.user,
                             dbname=database.name, network=placement.network, pg_major=database.pg_major)

    def conninfo(self, database: DatabaseRecord, port: int, dbname: Optional[str]) -> str:
        conninfo = f"host={connection_host(self.site.placement.bind_address)} port={port} user={database.user}"
        return f"{conninfo} dbname={dbname}" if dbname else conninfo

    def _log_tail_or_nothing(self, container_id: Optional[str]) -> str:
        try:
            return self.site.runtime.log_tail(container_id)
        except Exception:  # noqa: BLE001 -- only a hint; the error being handled must not be replaced
            return ""
