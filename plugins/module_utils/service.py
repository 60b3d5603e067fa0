# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle of databases and branches: observe, plan (plan.py), then execute here.

Modules call this layer only. It owns the order of operations and the rule that a failure
half-way removes what it made: a record is written ('creating') before anything else exists, so
a crash leaves a record that names every piece to clean up.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.adoption import Adoption
from ansible_collections.baseful.branching.plugins.module_utils.copy import (
    CopyJob,
    Endpoint,
    check_request,
    choose_method,
    method_for,
)
from ansible_collections.baseful.branching.plugins.module_utils.copy.files import reflink_supported, tree_size, tree_sizes
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.manifest import Manifests
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    DELETING,
    PRODUCTION,
    READY,
    RESETTING,
    RUNNING,
    STOPPED,
    BranchRecord,
    BranchView,
    DatabaseRecord,
    PortRange,
    connection_host,
    lease_end,
    now,
    parse_port_range,
    postgres_url,
    timestamp,
    validate_image,
    validate_name,
    validate_password,
    validate_port,
    validate_role,
    validate_source_url,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import (
    LABEL_BRANCH,
    LABEL_ROLE,
    ContainerSpec,
    DockerConnection,
    DockerRuntime,
    container_name,
    copy_slot,
)
from ansible_collections.baseful.branching.plugins.module_utils.secret import (
    POSTGRES_UID,
    read_secret,
    remove_secret,
    write_secret,
)
from ansible_collections.baseful.branching.plugins.module_utils.store import LockBusy, Store

NO_SPACE = "No space left on device"  # strerror(ENOSPC), as cp, pg_basebackup, PostgreSQL and Python report it


@dataclass
class Placement:
    state_dir: str = "/var/lib/baseful"
    data_root: Optional[str] = None
    network: str = "baseful"
    bind_address: str = "127.0.0.1"
    port_range: PortRange = field(default_factory=lambda: parse_port_range("54320-54999"))

    def __post_init__(self):
        self.state_dir = os.path.abspath(self.state_dir)
        self.data_root = os.path.abspath(self.data_root or os.path.join(self.state_dir, "data"))

    def data_dir(self, database: str, branch: str) -> str:
        return os.path.join(self.data_root, database, branch)


@dataclass
class Outcome:
    """What a module reports: whether anything changed, the actions, and the diff."""

    changed: bool = False
    actions: List[str] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    values: Dict[str, object] = field(default_factory=dict)


class Service:
    def __init__(self, placement: Placement, connection: DockerConnection, check_mode: bool = False,
                 runtime: Optional[DockerRuntime] = None):
        self.placement = placement
        self.check_mode = check_mode
        self.runtime = runtime or DockerRuntime(connection, placement.state_dir)
        self._store: Optional[Store] = None
        self.manifests = Manifests(placement.data_root, placement.state_dir)

    @property
    def store(self) -> Store:
        """Opened on first use, after the input is validated, so refused input creates nothing. Every
        committed change of a record is mirrored into its manifest under data_root."""
        if self._store is None:
            self._store = Store(self.placement.state_dir, read_only=self.check_mode, mirror=self.manifests)
        return self._store

    @property
    def adoption(self) -> Adoption:
        return Adoption(self.store, self.manifests, self.runtime, self.check_mode, self._secret_file)

    def _secret_file(self, database: str) -> str:
        return os.path.join(self.store.secret_dir, f"{database}.password")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # ---------------------------------------------------------------- databases

    def apply_database(self, name: str, state: str, image: str, user: str, password: Optional[str],
                       source_url: Optional[str]) -> Outcome:
        validate_name("name", name)
        validate_role("user", user)
        if state == "present":
            validate_image(image)
        validate_password(password)
        validate_source_url(source_url)
        if source_url is not None and state == "absent":
            raise InputError("source_url", "source_url seeds a new database and state: absent removes it; ask for one")
        with self.store.lock(name):
            adopted = self.adoption.reconcile(name, password, unmanifested=state == "present")
            if state == "absent":
                return self._remove_database(name, adopted)
            return self._ensure_database(name, image, user, password, source_url, adopted)

    def _ensure_database(self, name, image, user, password, source_url, adopted: List[str]) -> Outcome:
        record = self.store.database(name)
        cleanup = []
        if record is not None and record.status != READY:
            # The run that was creating or removing this database died: finish removing what its records
            # name, then make it anew. Keyed on the status that run wrote, never on something being absent.
            cleanup = [P.CLEANUP]
            if not self.check_mode:
                self._purge_database(name)
            record = None
        if record is not None:
            for parameter, wanted, actual in (("image", image, record.image), ("user", user, record.user)):
                if wanted != actual:
                    raise InputError(parameter, f"database {name!r} exists with {parameter} {actual!r}; changing it "
                                     f"to {wanted!r} is not supported: create a new database instead")
            if password is not None and not adopted and password != self._password(record):
                raise InputError("password", f"database {name!r} exists with another password; changing the "
                                 "password of an existing database is not supported")
            if self.store.branch(name, PRODUCTION) is None:
                raise BranchingError(f"name: database {name!r} has lost its production branch: neither state_dir "
                                     "nor data_root has a record of it; nothing was changed. Restore it from a backup, "
                                     "or remove the database (state: absent) to start again")
            outcome = self._apply_branch(record, P.BranchRequest(name, PRODUCTION, state="present"))
            outcome.actions[:0] = adopted
            outcome.changed = outcome.changed or bool(adopted)
            outcome.values["database"] = self._database_view(record)
            return outcome
        after = {"name": name, "image": image, "user": user, "branches": [PRODUCTION], "default_branch": PRODUCTION}
        outcome = Outcome(True, cleanup + ["create_database", "create_branch"], {}, after)
        if self.check_mode:
            outcome.values["database"] = after
            return outcome
        pg_major = self.runtime.postgres_major(image)
        self.runtime.ensure_network(self.placement.network)
        record = DatabaseRecord(name, image, pg_major, user, self._secret_file(name), timestamp(now()), status=CREATING)
        # Written before anything else exists: a run that dies from here on leaves a 'creating' record naming
        # every piece it made, and the next apply removes exactly those (and nothing under data_root it did not make).
        write_secret(record.password_file, password or secrets.token_urlsafe(24))
        self.store.add_database(record)
        try:
            source = Endpoint(url=source_url) if source_url else None
            branch = self._create_branch(record, PRODUCTION, source, "all", "auto", port=None, ttl=None,
                                         is_default=True, protected=True, outcome=outcome)
            self.store.set_database_status(name, READY)
        except BaseException:
            self._purge_database(name)  # this run's own half-made database: its records name every piece
            raise
        record = self.store.database(name)
        outcome.values["database"] = self._database_view(record)
        outcome.values["branch"] = self._view(record, branch).as_dict()
        return outcome

    def _remove_database(self, name: str, adopted: List[str]) -> Outcome:
        """Removes what the records of `name` name, after adopting what the host has of it; a directory under
        data_root without a manifest is not this collection's, and stays."""
        record = self.store.database(name)
        branches = self.store.branches(name)
        if record is None and not self.runtime.labelled(name):
            return Outcome()
        outcome = Outcome(True, adopted + ["delete_database"], {"name": name, "branches": [b.name for b in branches]}, {})
        if not self.check_mode:
            self._purge_database(name)
        return outcome

    def _purge_database(self, name: str) -> None:
        """Containers labelled for this database and state_dir, the data directories its branch records name,
        the records, their manifests and the password file. Marked first: a run that dies half-way leaves a
        database whose next apply, present or absent, finishes the removal."""
        self.store.mark_database_deleting(name)
        injection_point("database:marked")
        for container in self.runtime.labelled(name):
            self.runtime.remove(container.id)
        injection_point("database:containers")
        for branch in self.store.branches(name):
            _remove_tree(branch.data_dir)
        injection_point("database:data")
        self.store.remove_database(name)
        remove_secret(self._secret_file(name))

    # ---------------------------------------------------------------- branches

    def apply_branch(self, request: P.BranchRequest) -> Outcome:
        validate_name("database", request.database)
        validate_name("name", request.name)
        validate_port(request.port, self.placement.port_range)
        if request.source is not None:
            validate_name("source", request.source)
        check_request(request.copy_mode, request.copy_method)
        if request.reset and request.state == "absent":
            raise InputError("reset", "reset: true copies the branch again and state: absent deletes it; ask for one")
        adopted = self._adopt(request.database)
        with self.store.lock(request.database, shared=True), self.store.lock(f"{request.database}/{request.name}"):
            database = self._database(request.database)
            outcome = self._apply_branch(database, request)
        outcome.actions[:0] = adopted
        outcome.changed = outcome.changed or bool(adopted)
        return outcome

    def _adopt(self, database: str) -> List[str]:
        """Adopts what the host has of `database` and the store lacks, under the database's exclusive lock
        (taken only when there is something to adopt, so branch runs stay parallel); refuses what is foreign."""
        self.adoption.refuse_foreign(database)
        if not self.adoption.needed(database):
            return []
        with self.store.lock(database):
            return self.adoption.reconcile(database)

    def _apply_branch(self, database: DatabaseRecord, request: P.BranchRequest) -> Outcome:
        if not self.check_mode:
            self._recover_dead_runs(database.name, request.name)
        record = self.store.branch(database.name, request.name)
        actual = self._observe(database.name, request.name, record)
        default = self.store.default_branch(database.name)
        records = self.store.branches(database.name)
        names = [b.name for b in records if b.status in (RUNNING, STOPPED)]
        plan = P.plan_branch(request, actual, default, names, [b.name for b in records])
        outcome = Outcome(plan.changed, list(plan.actions), plan.before, plan.after)
        if self.check_mode:
            if record is not None and request.state != "absent" and P.CREATE not in plan.actions:
                outcome.values["branch"] = self._view(database, record).as_dict()
            return outcome
        for action in plan.actions:
            record = self._execute(action, database, request, record, plan, outcome)
        if record is not None and request.state != "absent":
            record = self._renew_lease(record)
            outcome.values["branch"] = self._view(database, record).as_dict()
        return outcome

    def _execute(self, action: str, database: DatabaseRecord, request: P.BranchRequest,
                 record: Optional[BranchRecord], plan: P.Plan, outcome: Outcome) -> Optional[BranchRecord]:
        name = request.name
        if action == P.CLEANUP:
            self._discard(database.name, name, record)
            return None
        if action == P.CREATE:
            source = self.store.branch(database.name, plan.source)
            return self._create_branch(database, name, self._source_endpoint(database, source),
                                       request.copy_mode or "all", request.copy_method or "auto",
                                       port=request.port, ttl=request.ttl_seconds or None, is_default=False,
                                       protected=bool(request.protected), outcome=outcome, parent=plan.source)
        if action == P.RESET:
            return self._reset(database, record, request, plan, outcome)
        if action == P.RECREATE_CONTAINER:
            port = request.port or record.port
            if port != record.port:
                self._check_port_free(port, exclude=record)
            self.runtime.remove(record.container_id or record.container_name)
            spec = self._spec(database, name, record.container_name, port, record.data_dir)
            running = plan.after["status"] == RUNNING or P.START in plan.actions
            container_id = self.runtime.create_container(spec, start=running)
            self.store.update_branch(database.name, name, container_id=container_id, port=port,
                                     status=RUNNING if running else STOPPED)
            if running:
                self.runtime.wait_ready(container_id, database.user, database.name)
        elif action == P.START:
            self.runtime.start(record.container_id or record.container_name, record.port)
            self.runtime.wait_ready(record.container_id or record.container_name, database.user, database.name)
            self.store.update_branch(database.name, name, status=RUNNING)
        elif action == P.STOP:
            self.runtime.stop(record.container_id or record.container_name)
            self.store.update_branch(database.name, name, status=STOPPED)
        elif action == P.SET_DEFAULT:
            self.store.set_default(database.name, name)
        elif action == P.SET_PROTECTED:
            self.store.update_branch(database.name, name, protected=int(request.protected))
        elif action == P.SET_TTL:
            # ttl: none (NO_LEASE) removes the lease; another ttl is renewed from now by _renew_lease.
            self.store.update_branch(database.name, name, ttl_seconds=request.ttl_seconds or None,
                                     expires_at=None)
        elif action == P.DELETE:
            self.store.update_branch(database.name, name, status=DELETING)
            injection_point("delete:marked")
            self._discard(database.name, name, record)
            return None
        return self.store.branch(database.name, name)

    def _create_branch(self, database: DatabaseRecord, name: str, source: Optional[Endpoint], mode: str,
                       method_name: str, port: Optional[int], ttl: Optional[int], is_default: bool,
                       protected: bool, outcome: Outcome, parent: Optional[str] = None) -> BranchRecord:
        method = self._copy_method(database, source, mode, method_name) if source is not None else None
        data_dir = self.placement.data_dir(database.name, name)
        if os.path.lexists(data_dir):
            # No record and no manifest claims it (adoption would have): not ours to replace or remove.
            raise InputError("name", f"data directory {data_dir} exists but no record or manifest makes it a branch of "
                             f"database {database.name!r}; nothing was changed: move it away, or choose another name "
                             "or data_root")
        moment = now()
        record = BranchRecord(
            database=database.name, name=name, status=CREATING, is_default=is_default, protected=protected,
            host=connection_host(self.placement.bind_address), port=0,
            container_name=container_name(database.name, name), data_dir=data_dir, created_at=timestamp(moment),
            parent=parent or ("external" if source is not None and not source.managed else None),
            copy_mode=mode if source is not None else None, copy_method=method.name if method else None,
            ttl_seconds=ttl, expires_at=lease_end(ttl, moment),
        )
        if port:
            self._check_port_free(port, exclude=None)
        record = self.store.reserve_branch(record, [port] if port else self._free_ports())
        try:
            injection_point("create:reserved")
            self._fill(database, record, source, mode, method, outcome)
        except BaseException:
            self._discard(database.name, name, record)
            raise
        return self.store.branch(database.name, name)

    def _copy_method(self, database: DatabaseRecord, source: Endpoint, mode: str, requested: str):
        """The method that serves this copy; refuses one that cannot, before anything is made."""
        same_major, external = source.pg_major in (None, database.pg_major), not source.managed
        # The reflink probe writes two temporary files: only worth it where a snapshot could serve.
        copy_on_write = mode == "all" and same_major and not external and reflink_supported(self.placement.data_root)
        method = method_for(choose_method(requested, mode, same_major, external, copy_on_write))
        if method.needs_running_source and not source.running:
            raise InputError("source", f"branch {source.branch!r} of database {database.name!r} is stopped; "
                             f"a {method.name} copy reads from a running server: start it first (state: started)")
        return method

    def _fill(self, database, record, source, mode, method, outcome) -> None:
        """Data directory, copy and container in the order the method needs; then the record says 'running'.
        Snapshot and physical fill the data directory before the server starts (it then recovers);
        dump restores into a freshly initialised, running server."""
        started = time.monotonic()
        free_before = shutil.disk_usage(self.placement.data_root).free if os.path.isdir(self.placement.data_root) else None
        container_id = None
        try:
            os.makedirs(record.data_dir, mode=0o700)
            os.chown(record.data_dir, POSTGRES_UID, POSTGRES_UID)
            injection_point("fill:data_dir")
            job = None
            if method is not None:
                job = CopyJob(database.name, record.name, mode, database.image, database.pg_major, database.user,
                              database.name, database.password_file, source,
                              Endpoint(conninfo=self._conninfo(database, record.port, dbname=None),
                                       data_dir=record.data_dir, pg_major=database.pg_major))
            if job is not None and method.fills_data_dir:
                outcome.values["copy_result"] = self._run_copy(method, job)
                injection_point("fill:copied")
            spec = self._spec(database, record.name, record.container_name, record.port, record.data_dir)
            container_id = self.runtime.create_container(spec)
            self.store.update_branch(database.name, record.name, container_id=container_id)
            injection_point("fill:container")
            self.runtime.wait_ready(container_id, database.user, database.name)
            if job is not None and not method.fills_data_dir:
                outcome.values["copy_result"] = self._run_copy(method, job)
            injection_point("fill:ready")
        except (BranchingError, OSError) as error:
            # A server that hits a full disk stops (a PANIC on WAL), and its client only sees the
            # connection drop: the branch's own log says why.
            if NO_SPACE not in str(error) and NO_SPACE not in self._log_tail_or_nothing(container_id):
                raise
            free = f"{free_before / 2**20:.0f} MiB were free when it began" if free_before is not None else "it was full"
            raise InputError("data_root", f"{self.placement.data_root} ran out of space while branch {record.name!r} "
                             f"was being copied ({free}); free space there or choose another data_root") from error
        if job is not None:
            outcome.values["copy_result"]["ready_seconds"] = round(time.monotonic() - started, 3)
        self.store.update_branch(database.name, record.name, status=RUNNING)

    def _run_copy(self, method, job: CopyJob) -> dict:
        limited = method.copies_per_source and job.source.managed and job.source.running
        with self.store.slot(copy_slot(job.database, job.source.branch, method.name), method.copies_per_source) \
                if limited else nullcontext():
            return method.run(job, self.runtime).as_dict()

    def _reset(self, database, record, request, plan, outcome) -> BranchRecord:
        source = self.store.branch(database.name, plan.source)
        endpoint = self._source_endpoint(database, source)
        mode = request.copy_mode or record.copy_mode or "all"
        method = self._copy_method(database, endpoint, mode, request.copy_method or record.copy_method or "auto")
        port = request.port or record.port
        if port != record.port:
            self._check_port_free(port, exclude=record)
        self.store.update_branch(database.name, record.name, status=RESETTING, parent=plan.source,
                                 copy_mode=mode, copy_method=method.name, port=port)
        record = self.store.branch(database.name, record.name)
        injection_point("reset:marked")
        try:
            self._discard_contents(database.name, record)
            self._fill(database, record, endpoint, mode, method, outcome)
        except BaseException:
            # The branch keeps its record (name, port, lease) as 'resetting': the next apply resets it again.
            self._discard_contents(database.name, record)
            raise
        return self.store.branch(database.name, record.name)

    def _discard(self, database: str, name: str, record: Optional[BranchRecord]) -> None:
        """Removes every piece of a branch: containers (its own and any labelled stray), data, record."""
        if record is None:
            self._remove_labelled(database, name)
            return
        self._discard_contents(database, record)
        injection_point("delete:data")
        self.store.remove_branch(database, name)

    def _discard_contents(self, database: str, record: BranchRecord) -> None:
        """Containers (the record's and any labelled stray, copy workers among them) and the data directory."""
        self._remove_labelled(database, record.name)
        self.runtime.remove(record.container_id or record.container_name)
        injection_point("delete:containers")
        _remove_tree(record.data_dir)

    def _log_tail_or_nothing(self, container_id: Optional[str]) -> str:
        try:
            return self.runtime.log_tail(container_id)
        except Exception:  # noqa: BLE001 -- only a hint; the error being handled must not be replaced
            return ""

    def _remove_labelled(self, database: str, name: str) -> None:
        for container in self.runtime.labelled(database, name):
            self.runtime.remove(container.id)

    def _recover_dead_runs(self, database: str, own_branch: str) -> None:
        """What a run killed on another branch leaves running: a source frozen for a snapshot (freezes are
        taken only under the source's snapshot slot, so a paused branch whose slot can be had is orphaned)
        and a copy worker still copying (its branch's lock is free once its run is dead). This run's own
        branch is cleaned up by its plan."""
        for container in self.runtime.labelled(database):
            branch = container.labels.get(LABEL_BRANCH)
            if container.status == "paused":
                with self.store.slot(copy_slot(database, branch, "snapshot"), 1):
                    self.runtime.thaw(container.id)
            elif container.labels.get(LABEL_ROLE) == "worker" and branch != own_branch:
                try:
                    with self.store.lock(f"{database}/{branch}", timeout=0):
                        self.runtime.remove(container.id)
                except LockBusy:
                    pass  # a live run is copying

    # ---------------------------------------------------------------- reading

    def info(self, database: Optional[str] = None, name: Optional[str] = None) -> Outcome:
        """Read-only: what the host has and the store lacks is adopted into the store's in-memory copy only,
        so the view is the host's."""
        if database is not None:
            validate_name("database", database)
        if name is not None:
            validate_name("name", name)
        for found in [database] if database is not None else self.adoption.ours(self.manifests.database_names()):
            self.adoption.reconcile(found)
        if database is not None:
            self._database(database)
        databases = {d.name: d for d in self.store.databases()}
        return Outcome(values={"branches": [self._view(databases[b.database], b).as_dict()
                                            for b in self.store.branches(database) if name is None or b.name == name]})

    def expire(self, database: Optional[str] = None) -> Outcome:
        if database is not None:
            validate_name("database", database)
        for found in [database] if database is not None else self.adoption.ours(self.manifests.database_names()):
            self._adopt(found)  # a lease the host knows of runs out even when the store lost it
        if database is not None:
            self._database(database)
        due = [b for b in self.store.branches(database) if b.expired(now())]
        outcome = Outcome(values={"expired": [], "kept": [], "errors": []})
        for branch in due:
            try:
                removed = self._expire_one(branch.database, branch.name, outcome)
            except BranchingError as error:  # one branch's trouble does not stop the sweep
                outcome.values["errors"].append({"database": branch.database, "name": branch.name, "error": str(error)})
                continue
            if removed:
                outcome.changed = True
                outcome.actions.append(P.DELETE)
                outcome.values["expired"].append({"database": branch.database, "name": branch.name,
                                                  "expires_at": branch.expires_at})
        return outcome

    def _expire_one(self, database: str, name: str, outcome: Outcome) -> bool:
        """Deletes one branch if, read again under its lock, its lease is still over: a run that renewed
        it, or made it the default or protected, since the sweep began wins."""
        with self.store.lock(database, shared=True), self.store.lock(f"{database}/{name}"):
            record = self.store.branch(database, name)
            if record is None or not record.expired(now()):
                return False
            if record.is_default or record.protected:
                outcome.values["kept"].append({"database": database, "name": name,
                                               "reason": "default" if record.is_default else "protected"})
                return False
            result = self._apply_branch(self._database(database), P.BranchRequest(database, name, state="absent"))
            return result.changed

    # ---------------------------------------------------------------- helpers

    def _database(self, name: str) -> DatabaseRecord:
        record = self.store.database(name)
        if record is None:
            raise InputError("database", f"database {name!r} does not exist; create it with baseful.branching.database")
        return record

    def _observe(self, database: str, name: str, record: Optional[BranchRecord]) -> P.ActualBranch:
        known = {record.container_id, record.container_name} if record else set()
        strays = [c for c in self.runtime.labelled(database, name) if c.id not in known and c.name not in known]
        if record is None:
            return P.ActualBranch(None, stray_containers=len(strays))
        status = self.runtime.status(record.container_id or record.container_name)
        return P.ActualBranch(record, status, os.path.isdir(record.data_dir), len(strays))

    def _source_endpoint(self, database: DatabaseRecord, source: BranchRecord) -> Endpoint:
        container = source.container_id or source.container_name
        status = self.runtime.status(container)
        if status not in (RUNNING, STOPPED):
            raise InputError("source", f"branch {source.name!r} of database {database.name!r} is {status}; "
                             "repair it first (state: started)")
        return Endpoint(conninfo=self._conninfo(database, source.port, database.name), container=container,
                        data_dir=source.data_dir, pg_major=database.pg_major, running=status == RUNNING,
                        branch=source.name)

    def _conninfo(self, database: DatabaseRecord, port: int, dbname: Optional[str]) -> str:
        conninfo = f"host={connection_host(self.placement.bind_address)} port={port} user={database.user}"
        return f"{conninfo} dbname={dbname}" if dbname else conninfo

    def _spec(self, database: DatabaseRecord, branch: str, name: str, port: int, data_dir: str) -> ContainerSpec:
        return ContainerSpec(name=name, image=database.image, database=database.name, branch=branch,
                             bind_address=self.placement.bind_address, port=port, data_dir=data_dir,
                             password_file=database.password_file, user=database.user, dbname=database.name,
                             network=self.placement.network)

    def _free_ports(self) -> Iterable[int]:
        used = set(self.store.used_ports())
        return (p for p in self.placement.port_range if p not in used and _port_free(self.placement.bind_address, p))

    def _check_port_free(self, port: int, exclude: Optional[BranchRecord]) -> None:
        holders = [b for b in self.store.branches() if b.port == port and b is not exclude
                   and (exclude is None or (b.database, b.name) != (exclude.database, exclude.name))]
        if holders:
            raise InputError("port", f"{port} is already used by branch {holders[0].name!r} of database "
                             f"{holders[0].database!r}")
        if not _port_free(self.placement.bind_address, port):
            raise InputError("port", f"{port} is already taken on {self.placement.bind_address} by another process")

    def _renew_lease(self, record: BranchRecord) -> BranchRecord:
        """Applying a branch with a lease renews it; bookkeeping, so it does not count as a change."""
        if record.ttl_seconds:
            self.store.update_branch(record.database, record.name, expires_at=lease_end(record.ttl_seconds, now()))
            return self.store.branch(record.database, record.name)
        return record

    def _password(self, database: DatabaseRecord) -> str:
        """The kept password; empty where none is kept yet (check mode of a database being adopted)."""
        return read_secret(database.password_file) or ""

    def _database_view(self, record: DatabaseRecord) -> dict:
        return {"name": record.name, "image": record.image, "pg_major": record.pg_major, "user": record.user,
                "created_at": record.created_at, "default_branch": self.store.default_branch(record.name),
                "branches": [b.name for b in self.store.branches(record.name)]}

    def _view(self, database: DatabaseRecord, record: BranchRecord) -> BranchView:
        status = record.status
        if status in (RUNNING, STOPPED):
            status = self.runtime.status(record.container_id or record.container_name)
        exists = os.path.isdir(record.data_dir)
        apparent, allocated = tree_sizes(record.data_dir) if exists else (None, None)
        return BranchView(
            name=record.name, database=record.database, status=status, is_default=record.is_default,
            protected=record.protected, host=record.host, port=record.port,
            url=postgres_url(database.user, self._password(database), record.host, record.port, database.name),
            container_name=record.container_name, container_id=record.container_id, parent=record.parent,
            copy_mode=record.copy_mode, copy_method=record.copy_method, created_at=record.created_at,
            expires_at=record.expires_at, data_dir=record.data_dir, ttl=record.ttl_seconds,
            size_bytes=allocated, data_dir_exists=exists,
            copy_progress=self._copy_progress(record, apparent) if record.status in (CREATING, RESETTING) and exists else None,
        )

    def _copy_progress(self, record: BranchRecord, done: int) -> dict:
        """Where a copy still under way is: `done`, the bytes of the branch's data directory so far,
        against its source's for a file copy (a restored dump's size on disk is not its source's), whether
        the run making it is alive (it holds the branch's lock; a dead one is cleaned up by the next apply),
        and whether a copy worker runs."""
        source = self.store.branch(record.database, record.parent) \
            if record.parent and record.copy_method in ("snapshot", "physical") else None
        expected = tree_size(source.data_dir) if source is not None and os.path.isdir(source.data_dir) else None
        workers = [c for c in self.runtime.labelled(record.database, record.name)
                   if c.labels.get(LABEL_ROLE) == "worker" and c.status == "running"]
        return {"method": record.copy_method, "bytes": done, "expected_bytes": expected,
                "percent": min(99, 100 * done // expected) if expected else None,
                # A database's create or removal locks the database alone, a branch's run the branch too.
                "run_alive": self.store.held(f"{record.database}/{record.name}") or self.store.held(record.database),
                "copying": bool(workers),
                "worker_started_at": workers[0].attrs["State"]["StartedAt"] if workers else None}


def _remove_tree(path: str) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path)


def _port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
