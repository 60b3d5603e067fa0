# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules return for a database and a branch: the record, Docker's status now, the data
directory's size and, during a copy, where it is."""

from __future__ import annotations

from ansible_collections.baseful.branching.plugins.module_utils.masking import decode as decode_rules
from ansible_collections.baseful.branching.plugins.module_utils.masking import rule_names
from ansible_collections.baseful.branching.plugins.module_utils.migrations import decode
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    RESETTING,
    RUNNING,
    STOPPED,
    BranchRecord,
    BranchView,
    DatabaseRecord,
    postgres_url,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import WORKER_ROLE
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret
from ansible_collections.baseful.branching.plugins.module_utils.subset import decode as decode_filter


class Views:
    def __init__(self, site, endpoints):
        self.site = site
        self.endpoints = endpoints

    def password(self, database: DatabaseRecord) -> str:
        """The kept password; empty where none is kept yet (check mode of a database being adopted)."""
        return read_secret(database.password_file) or ""

    def database(self, record: DatabaseRecord) -> dict:
        store = self.site.store
        return {"name": record.name, "image": record.image, "pg_major": record.pg_major, "user": record.user,
                "created_at": record.created_at, "default_branch": store.default_branch(record.name),
                "branches": [b.name for b in store.branches(record.name)],
                "endpoint": self.endpoints.view(record, self.password(record)),
                "mask": rule_names(decode_rules(record.mask))}

    def endpoint_live(self, record: DatabaseRecord) -> dict:
        """The endpoint as Docker and its configuration have it now, against what the records call for."""
        endpoints = self.endpoints
        routes, pending = endpoints.routes_now(record), endpoints.switch_pending(record)
        return dict(endpoints.view(record, self.password(record)), database=record.name, routes=routes,
                    switch_pending=pending, in_sync=routes == endpoints.routes_wanted(record) and not pending)

    def branch(self, database: DatabaseRecord, record: BranchRecord) -> dict:
        status = record.status
        if status in (RUNNING, STOPPED):
            status = self.site.runtime.status(record.container_id or record.container_name)
        storage = self.site.storage
        exists = storage.is_data_dir(record.data_dir)
        apparent, allocated = storage.sizes(record.data_dir) if exists else (None, None)
        return BranchView(
            name=record.name, database=record.database, status=status, is_default=record.is_default,
            protected=record.protected, host=record.host, port=record.port,
            url=postgres_url(database.user, self.password(database), record.host, record.port, database.name),
            container_name=record.container_name, container_id=record.container_id, parent=record.parent,
            copy_mode=record.copy_mode, copy_method=record.copy_method, created_at=record.created_at,
            expires_at=record.expires_at, data_dir=record.data_dir, ttl=record.ttl_seconds,
            size_bytes=allocated, data_dir_exists=exists,
            copy_progress=self.copy_progress(record, apparent) if record.status in (CREATING, RESETTING) and exists else None,
            endpoint_url=self.endpoints.branch_url(database, record.name, self.password(database)),
            migrations=[entry.as_dict() for entry in decode(record.migrations)],
            masked=bool(record.mask), mask=rule_names(decode_rules(record.mask)), filter=decode_filter(record.filter),
        ).as_dict()

    def copy_progress(self, record: BranchRecord, done: int) -> dict:
        """Where a copy still under way is: `done`, the bytes of the branch's data directory so far,
        against its source's for a file copy (a restored dump's size on disk is not its source's), whether
        the run making it is alive (it holds the branch's lock; a dead one is cleaned up by the next apply),
        and whether a copy worker runs."""
        store, storage = self.site.store, self.site.storage
        source = store.branch(record.database, record.parent) \
            if record.parent and record.copy_method in ("snapshot", "physical") else None
        expected = storage.size(source.data_dir) if source is not None and storage.is_data_dir(source.data_dir) else None
        workers = [c for c in self.site.runtime.labelled(record.database, record.name)
                   if c.role == WORKER_ROLE and c.running]
        return {"method": record.copy_method, "bytes": done, "expected_bytes": expected,
                "percent": min(99, 100 * done // expected) if expected else None,
                # A database's create or removal locks the database alone, a branch's run the branch too.
                "run_alive": store.held(f"{record.database}/{record.name}") or store.held(record.database),
                "copying": bool(workers),
                "worker_started_at": workers[0].started_at if workers else None}
