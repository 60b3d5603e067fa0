# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A branch's lifecycle: observe it, plan it (plan.py), then run each planned action through the
method of the same name. Check mode stops after the plan.

A create writes its record ('creating') before anything else exists, so a failure or a crash leaves a
record that names every piece to clean up, and only those pieces are ever removed."""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.copy import Endpoint
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.masking import decode as decode_rules
from ansible_collections.baseful.branching.plugins.module_utils.masking import encode as encode_rules
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    DELETING,
    RESETTING,
    RUNNING,
    STOPPED,
    BranchRecord,
    DatabaseRecord,
    connection_host,
    lease_end,
    now,
    timestamp,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import container_name
from ansible_collections.baseful.branching.plugins.module_utils.service.compare import Comparison
from ansible_collections.baseful.branching.plugins.module_utils.service.endpoints import Endpoints
from ansible_collections.baseful.branching.plugins.module_utils.service.filler import Filler
from ansible_collections.baseful.branching.plugins.module_utils.service.masking import Masking
from ansible_collections.baseful.branching.plugins.module_utils.service.merge import Merge
from ansible_collections.baseful.branching.plugins.module_utils.service.migrations import Migrations
from ansible_collections.baseful.branching.plugins.module_utils.service.ports import Ports
from ansible_collections.baseful.branching.plugins.module_utils.service.recovery import Recovery
from ansible_collections.baseful.branching.plugins.module_utils.service.site import Outcome
from ansible_collections.baseful.branching.plugins.module_utils.service.subsets import Subsets
from ansible_collections.baseful.branching.plugins.module_utils.service.views import Views
from ansible_collections.baseful.branching.plugins.module_utils.subset import encode as encode_filter

# Actions after which the branch's server is another process (or none): its pooled connections are not trusted.
SERVER_REPLACED = {P.RESET, P.RECREATE_CONTAINER, P.START, P.STOP}


class Step:
    """One planned action's inputs: the database, the request, the plan, and the record as it is now."""

    def __init__(self, database: DatabaseRecord, request: P.BranchRequest, plan: P.Plan, record: Optional[BranchRecord]):
        self.database, self.request, self.plan, self.record = database, request, plan, record
        self.copy_result: Optional[dict] = None
        self.subset = None  # subset.Subset of a filtered copy


class BranchExecutor:
    def __init__(self, site):
        self.site = site
        self.ports = Ports(site)
        self.filler = Filler(site, self.ports)
        self.recovery = Recovery(site)
        self.endpoints = Endpoints(site, self.ports)
        self.views = Views(site, self.endpoints)
        self.migrations = Migrations(site)
        self.masking = Masking(site)
        self.subsets = Subsets(site)
        self.comparison = Comparison(site)
        self.merge = Merge(site, self)
        self.actions: Dict[str, Callable[[Step], Optional[BranchRecord]]] = {
            P.CLEANUP: self.cleanup, P.CREATE: self.create, P.RESET: self.reset,
            P.RECREATE_CONTAINER: self.recreate_container, P.START: self.start, P.MIGRATE: self.migrate,
            P.STOP: self.stop,
            P.SET_DEFAULT: self.set_default, P.SET_PROTECTED: self.set_protected, P.SET_TTL: self.set_ttl,
            P.DELETE: self.delete,
        }

    def apply(self, database: DatabaseRecord, request: P.BranchRequest) -> Outcome:
        site = self.site
        store = site.store
        if not site.check_mode:
            self.recovery.dead_runs(database.name, request.name)
        record = store.branch(database.name, request.name)
        if request.migrations and request.state != "absent":
            record = self._with_server_history(database, record)
        actual = self._observe(database.name, request.name, record)
        records = store.branches(database.name)
        names = [b.name for b in records if b.status in (RUNNING, STOPPED)]
        plan = P.plan_branch(request, actual, store.default_branch(database.name), names, [b.name for b in records])
        source = store.branch(database.name, plan.source) if plan.source else None
        P.plan_migrations(plan, request, actual.record, source)
        P.plan_masking(plan, request, actual.record, source, decode_rules(database.mask))
        P.plan_filter(plan, request, actual.record)
        subset = self._check_against_source(database, plan, source)
        outcome = Outcome(plan.changed, list(plan.actions), plan.before, plan.after,
                          values={"migrations_applied": [migration.name for migration in plan.migrations]})
        if site.check_mode:
            if record is not None and request.state != "absent" and P.CREATE not in plan.actions:
                outcome.values["branch"] = self.views.branch(database, record)
            return outcome
        step = Step(database, request, plan, record)
        step.subset = subset
        try:
            for action in plan.actions:
                step.record = self.actions[action](step)
        except BaseException:
            self._sync_routes_after_failure(database)
            raise
        replaced = [request.name] if set(plan.actions) & SERVER_REPLACED else []
        switch = self.endpoints.sync(database, replaced)
        if switch is not None:
            outcome.values["switch_pause_ms"] = switch.pause_ms
            outcome.values["switch_drained"] = switch.drained
        if step.copy_result is not None:
            outcome.values["copy_result"] = step.copy_result
        if step.record is not None and request.state != "absent":
            outcome.values["branch"] = self.views.branch(database, self._renew_lease(step.record))
        return outcome

    # one method per planned action; each returns the record as it is afterwards (None once it is gone)

    def cleanup(self, step: Step) -> None:
        self.recovery.discard(step.database.name, step.request.name, step.record)

    def create(self, step: Step) -> BranchRecord:
        request, database = step.request, step.database
        source = self.site.store.branch(database.name, step.plan.source)
        record, step.copy_result = self.create_branch(
            database, request.name, self.filler.source_endpoint(database, source), request.copy_mode or "all",
            request.copy_method or "auto", port=request.port, ttl=request.ttl_seconds or None, is_default=False,
            protected=bool(request.protected), parent=step.plan.source, plan=step.plan, subset=step.subset)
        return record

    def reset(self, step: Step) -> BranchRecord:
        database, record, request, store = step.database, step.record, step.request, self.site.store
        endpoint = self.filler.source_endpoint(database, store.branch(database.name, step.plan.source))
        mode = request.copy_mode or record.copy_mode or "all"
        method = self.filler.method(database, endpoint, mode, step.plan.after.get("copy_method") or "auto",
                                    filtered=bool(step.plan.filter))
        port = request.port or record.port
        if port != record.port:
            self.ports.check_free(port, exclude=record)
        store.update_branch(database.name, record.name, status=RESETTING, parent=step.plan.source,
                            copy_mode=mode, copy_method=method.name, port=port, mask=encode_rules(step.plan.mask),
                            filter=encode_filter(step.plan.filter))
        record = store.branch(database.name, record.name)
        injection_point("reset:marked")
        try:
            self.recovery.discard_contents(database.name, record)
            step.copy_result = self.filler.fill(database, record, endpoint, mode, method,
                                                prepare=self._before_serving(database, endpoint, mode, step.plan),
                                                sealed=self._sealed_with(database, step.plan), subset=step.subset)
        except BaseException:
            # The branch keeps its record (name, port, lease) as 'resetting': the next apply resets it again.
            self.recovery.discard_contents(database.name, record)
            raise
        return store.branch(database.name, record.name)

    def recreate_container(self, step: Step) -> BranchRecord:
        database, record, runtime, store = step.database, step.record, self.site.runtime, self.site.store
        port = step.request.port or record.port
        if port != record.port:
            self.ports.check_free(port, exclude=record)
        runtime.remove(record.container_id or record.container_name)
        running = step.plan.after["status"] == RUNNING or P.START in step.plan.actions
        container_id = runtime.create_container(self.filler.spec(database, record, port), start=running)
        store.update_branch(database.name, record.name, container_id=container_id, port=port,
                            status=RUNNING if running else STOPPED)
        if running:
            runtime.wait_ready(container_id, database.user, database.name)
        return store.branch(database.name, record.name)

    def start(self, step: Step) -> BranchRecord:
        database, record, runtime = step.database, step.record, self.site.runtime
        container = record.container_id or record.container_name
        runtime.start(container, record.port)
        runtime.wait_ready(container, database.user, database.name)
        return self._update(step, status=RUNNING)

    def migrate(self, step: Step) -> BranchRecord:
        """On a branch that serves already (a new or reset one had them before it served: create, reset)."""
        if P.CREATE not in step.plan.actions and P.RESET not in step.plan.actions:
            self.migrations.run_on_existing(step.database, step.record, step.plan.migrations, step.plan.migrations_had)
        return self.site.store.branch(step.database.name, step.request.name)

    def stop(self, step: Step) -> BranchRecord:
        self.site.runtime.stop(step.record.container_id or step.record.container_name)
        return self._update(step, status=STOPPED)

    def set_default(self, step: Step) -> BranchRecord:
        self.site.store.set_default(step.database.name, step.request.name)
        return self.site.store.branch(step.database.name, step.request.name)

    def set_protected(self, step: Step) -> BranchRecord:
        return self._update(step, protected=int(step.request.protected))

    def set_ttl(self, step: Step) -> BranchRecord:
        # ttl: none (NO_LEASE) removes the lease; another ttl is renewed from now by _renew_lease.
        return self._update(step, ttl_seconds=step.request.ttl_seconds or None, expires_at=None)

    def delete(self, step: Step) -> None:
        self.site.store.update_branch(step.database.name, step.request.name, status=DELETING)
        injection_point("delete:marked")
        self.recovery.discard(step.database.name, step.request.name, step.record)

    # shared with the database's lifecycle

    def create_branch(self, database: DatabaseRecord, name: str, source: Optional[Endpoint], mode: str,
                      method_name: str, port: Optional[int], ttl: Optional[int], is_default: bool,
                      protected: bool, parent: Optional[str] = None, plan: Optional[P.Plan] = None,
                      subset=None) -> Tuple[BranchRecord, Optional[dict]]:
        """A new branch, filled from `source` (None: a fresh server); returns its record and the copy's result.
        `plan`: the branch's plan, whose masking and migrations run before it serves; `subset`: a filtered copy's."""
        site = self.site
        method = self.filler.method(database, source, mode, method_name, filtered=bool(plan and plan.filter)) \
            if source is not None else None
        data_dir = site.placement.data_dir(database.name, name)
        if site.storage.exists(data_dir):
            # No record and no manifest claims it (adoption would have): not ours to replace or remove.
            raise InputError("name", f"data directory {data_dir} exists but no record or manifest makes it a branch of "
                             f"database {database.name!r}; nothing was changed: move it away, or choose another name "
                             "or data_root")
        moment = now()
        record = BranchRecord(
            database=database.name, name=name, status=CREATING, is_default=is_default, protected=protected,
            host=connection_host(site.placement.bind_address), port=0,
            container_name=container_name(database.name, name), data_dir=data_dir, created_at=timestamp(moment),
            parent=parent or ("external" if source is not None and not source.managed else None),
            copy_mode=mode if source is not None else None, copy_method=method.name if method else None,
            ttl_seconds=ttl, expires_at=lease_end(ttl, moment), mask=encode_rules(plan.mask) if plan else None,
            filter=encode_filter(plan.filter) if plan else None,
        )
        if port:
            self.ports.check_free(port, exclude=None)
        record = site.store.reserve_branch(record, [port] if port else self.ports.free())
        try:
            injection_point("create:reserved")
            result = self.filler.fill(database, record, source, mode, method, movable_port=not port,
                                      prepare=self._before_serving(database, source, mode, plan),
                                      sealed=self._sealed_with(database, plan), subset=subset)
        except BaseException:
            self.recovery.discard(database.name, name, site.store.branch(database.name, name) or record)
            raise
        return site.store.branch(database.name, name), result

    # helpers

    def _before_serving(self, database: DatabaseRecord, source: Optional[Endpoint], mode: str,
                        plan: Optional[P.Plan]) -> Callable[[BranchRecord], None]:
        """What a new or reset server gets before its record says it serves: the database's verifier where it was
        initialised anew (no source, an external one, or copy: empty, which copies no roles; every copy of a
        managed branch brings it along), then its masking (on its sealed server), then its migrations, recorded after
        what its source had."""
        def prepare(record: BranchRecord) -> None:
            if source is None or not source.managed or mode == "empty":
                self.endpoints.give_verifier(database, record.container_id or record.container_name)
            if plan is not None:
                then = (f"the branch stays {RESETTING} and the next apply resets it again" if P.RESET in plan.actions
                        else "the branch was not made")
                if plan.mask_now:
                    self.masking.apply(database, record, plan.mask_now, plan.mask_had, then)
                self.migrations.run(database, record, plan.migrations, plan.migrations_had, then)
        return prepare

    def _sealed_with(self, database: DatabaseRecord, plan: Optional[P.Plan]) -> Optional[str]:
        """The masking key file a copy that is to be masked is sealed with (made on first use); None: no masking."""
        return self.masking.key(database.name) if plan is not None and plan.mask_now else None

    def _check_against_source(self, database: DatabaseRecord, plan: P.Plan, source: Optional[BranchRecord]):
        """Masking rules and a filter checked against a running source before anything is made (check mode too; a
        stopped source's copy has its rules checked on its sealed server; a filtered copy needs a running source).
        Returns what a filtered copy runs."""
        if source is None or not (plan.mask_now or plan.filter):
            return None
        container = source.container_id or source.container_name
        if self.site.runtime.status(container) != RUNNING:
            return None
        where = f"source branch {source.name!r}"
        if plan.mask_now:
            self.masking.check(database, container, plan.mask_now, where, plan.mask_had)
        if plan.filter:
            return self.subsets.prepare(database, container, plan.filter, plan.after.get("copy_mode") or "all", where)
        return None

    def _sync_routes_after_failure(self, database: DatabaseRecord) -> None:
        """The routes follow the records whatever became of the run's actions (a failed create leaves no route to
        what it removed); the failure being raised is the one to report."""
        try:
            self.endpoints.sync(database)
        except Exception:  # noqa: BLE001 -- the next apply syncs again
            pass

    def _with_server_history(self, database: DatabaseRecord, record: Optional[BranchRecord]) -> Optional[BranchRecord]:
        """The record with the files its server had and it does not list (a run killed between a file's commit and
        its record), written down where this is not check mode: bookkeeping, like a lease's renewal."""
        reconciled = self.migrations.reconciled(database, record)
        if reconciled is not record and not self.site.check_mode:
            self.site.store.update_branch(database.name, record.name, migrations=reconciled.migrations)
        return reconciled

    def _update(self, step: Step, **values) -> BranchRecord:
        self.site.store.update_branch(step.database.name, step.request.name, **values)
        return self.site.store.branch(step.database.name, step.request.name)

    def _observe(self, database: str, name: str, record: Optional[BranchRecord]) -> P.ActualBranch:
        known = {record.container_id, record.container_name} if record else set()
        strays = [c for c in self.site.runtime.labelled(database, name) if c.id not in known and c.name not in known]
        if record is None:
            return P.ActualBranch(None, stray_containers=len(strays))
        status = self.site.runtime.status(record.container_id or record.container_name)
        return P.ActualBranch(record, status, self.site.storage.is_data_dir(record.data_dir), len(strays))

    def _renew_lease(self, record: BranchRecord) -> BranchRecord:
        """Applying a branch with a lease renews it; bookkeeping, so it does not count as a change."""
        if record.ttl_seconds:
            self.site.store.update_branch(record.database, record.name, expires_at=lease_end(record.ttl_seconds, now()))
            return self.site.store.branch(record.database, record.name)
        return record
