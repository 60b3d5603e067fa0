# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service the modules call: validate the request, take the locks, adopt what the host has and the
store lacks, and dispatch to the part that does the work.

    databases.py  a database's lifecycle (planned by plan.plan_database)
    executor.py   a branch's lifecycle: one method per action plan.plan_branch returns
    filler.py     the copy method and the order of data directory, copy and container
    ports.py      port allocation
    views.py      what the modules return
    recovery.py   removing a branch's pieces; what a dead run left running
    adoption.py   records rebuilt from the manifests beside the data
    site.py       what the parts share (placement, store, runtime, storage, manifests)
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from typing import List, Optional, Sequence

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.copy import check_request
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.locks import LockBusy
from ansible_collections.baseful.branching.plugins.module_utils.masking import parse_rules
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    READY,
    BranchRecord,
    DatabaseRecord,
    now,
    validate_image,
    validate_name,
    validate_password,
    validate_port,
    validate_role,
    validate_source_url,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import Runtime
from ansible_collections.baseful.branching.plugins.module_utils.service.adoption import Adoption
from ansible_collections.baseful.branching.plugins.module_utils.service.databases import DatabaseLifecycle
from ansible_collections.baseful.branching.plugins.module_utils.service.executor import BranchExecutor
from ansible_collections.baseful.branching.plugins.module_utils.service.site import Outcome, Placement, Site
from ansible_collections.baseful.branching.plugins.module_utils.storage import HostStorage
from ansible_collections.baseful.branching.plugins.module_utils.subset import parse_filter

__all__ = ["Outcome", "Placement", "Service"]


class Service:
    def __init__(self, placement: Placement, runtime: Runtime, check_mode: bool = False,
                 storage: Optional[HostStorage] = None, port_free=None):
        self.site = Site(placement, runtime, check_mode, storage, port_free)
        self.branches = BranchExecutor(self.site)
        self.databases = DatabaseLifecycle(self.site, self.branches)

    @property
    def store(self):
        return self.site.store

    @property
    def adoption(self) -> Adoption:
        site = self.site
        return Adoption(site.store, site.manifests, site.runtime, site.check_mode, site.secret_file, site.verifier_file)

    def close(self) -> None:
        self.site.close()

    def apply_database(self, name: str, state: str, image: str, user: str, password: Optional[str],
                       source_url: Optional[str], endpoint: P.EndpointRequest = P.DEFAULT_ENDPOINT,
                       mask: Optional[dict] = None) -> Outcome:
        """`mask`: the masking rules every new branch but production gets (None: leave them as they are)."""
        validate_name("name", name)
        rules = parse_rules(mask) if mask is not None else None
        if rules is not None and state == "absent":
            raise InputError("mask", "mask applies to the branches of a database that stays and state: absent removes "
                             "it; ask for one")
        validate_role("user", user)
        if state == "present":  # every input is checked, used or not (endpoint: false)
            validate_image(image)
            validate_image(endpoint.image, "endpoint_image")
            validate_port(endpoint.port, self.site.placement.port_range, "endpoint_port")
        validate_password(password)
        validate_source_url(source_url)
        if source_url is not None and state == "absent":
            raise InputError("source_url", "source_url seeds a new database and state: absent removes it; ask for one")
        with self.store.lock(name):
            adopted = self.adoption.reconcile(name, password, unmanifested=state == "present")
            record = self.store.database(name)
            # Compared only where it decides something: an existing, ready database being applied present.
            differs = state == "present" and password is not None and not adopted and record is not None \
                and record.status == READY and password != self.branches.views.password(record)
            request = P.DatabaseRequest(name, state, image, user, password_differs=differs, mask=rules)
            return self.databases.apply(request, password, source_url, adopted, endpoint)

    def apply_branch(self, request: P.BranchRequest, migrations: Sequence[str] = ()) -> Outcome:
        """`migrations`: paths of SQL files and directories on this host, read (and checksummed) here, once."""
        validate_name("database", request.database)
        validate_name("name", request.name)
        validate_port(request.port, self.site.placement.port_range)
        if request.source is not None:
            validate_name("source", request.source)
        if request.filter is not None:
            request = replace(request, filter=parse_filter(request.filter))
        check_request(request.copy_mode, request.copy_method, bool(request.filter))
        if request.reset and request.state == "absent":
            raise InputError("reset", "reset: true copies the branch again and state: absent deletes it; ask for one")
        if migrations and request.state == "absent":
            raise InputError("migrations", "migrations run on a branch that stays and state: absent deletes it; "
                             "ask for one")
        for parameter, given in (("mask", request.mask is not None), ("unmasked", request.unmasked),
                                 ("filter", request.filter is not None)):
            if given and request.state == "absent":
                raise InputError(parameter, f"{parameter} shapes a copy that stays and state: absent deletes the branch; "
                                 "ask for one")
        if request.mask is not None:
            request = replace(request, mask=parse_rules(request.mask))
        if migrations:
            request = replace(request, migrations=tuple(self.site.storage.migration_files(migrations)))
        adopted = self._adopt(request.database)
        with self.store.lock(request.database, shared=True), self.store.lock(f"{request.database}/{request.name}"):
            outcome = self.branches.apply(self._database(request.database), request)
        return outcome.after_adoption(adopted)

    def info(self, database: Optional[str] = None, name: Optional[str] = None) -> Outcome:
        """Read-only: what the host has and the store lacks is adopted into the store's in-memory copy only,
        so the view is the host's."""
        if database is not None:
            validate_name("database", database)
        if name is not None:
            validate_name("name", name)
        for found in self._sweep(database):
            self.adoption.reconcile(found)
        if database is not None:
            self._database(database)
        databases = {d.name: d for d in self.store.databases()}
        views = self.branches.views
        return Outcome(values={"branches": [views.branch(databases[b.database], b)
                                            for b in self.store.branches(database) if name is None or b.name == name],
                               "endpoints": [views.endpoint_live(d) for d in databases.values()
                                             if d.endpoint_port is not None and database in (None, d.name)]})

    def diff(self, database: str, name: str, against: Optional[str] = None, data: bool = False) -> Outcome:
        """Read-only: branch `name`'s schema against `against` (its parent unless named)."""
        validate_name("database", database)
        validate_name("name", name)
        if against is not None:
            validate_name("against", against)
        self.adoption.reconcile(database)  # into the store's in-memory copy only (read-only), as info does
        record = self._database(database)
        branch = self._branch(database, name, "name")
        comparison = self.branches.comparison
        return Outcome(values=comparison.compare(record, branch, comparison.against_of(record, branch, against), data))

    def merge(self, database: str, name: str, into: Optional[str] = None, migrations: Sequence[str] = ()) -> Outcome:
        """Branch `name`'s migrations that `into` (its parent unless named) has not had: rehearsed, applied,
        compared (service/merge.py). `migrations`: where to find their files, before those kept in state_dir."""
        validate_name("database", database)
        validate_name("name", name)
        if into is not None:
            validate_name("into", into)
        given = self.site.storage.migration_files(migrations) if migrations else []
        adopted = self._adopt(database)
        store, merge, comparison = self.store, self.branches.merge, self.branches.comparison
        with store.lock(database, shared=True):
            record = self._database(database)
            target = comparison.against_of(record, self._branch(database, name, "name"), into, "into")
            with ExitStack() as held:  # in name order, so two merges in opposite directions never wait on each other
                for key in sorted({name, target.name}):
                    held.enter_context(store.lock(f"{database}/{key}"))
                if not self.site.check_mode:
                    self.branches.recovery.dead_runs(database, name)  # a source a killed rehearsal left frozen
                # read again under the branches' locks: either may have gone or stopped meanwhile
                found = {parameter: self._branch(database, key, parameter)
                         for key, parameter in ((name, "name"), (target.name, "into"))}
                for parameter, found_branch in found.items():
                    comparison.require_running(record, found_branch, parameter, "a merge reads and writes running servers")
                runner = self.branches.migrations
                branch, target = (runner.reconciled(record, found[parameter]) for parameter in ("name", "into"))
                files = runner.contents(merge.to_merge(record, branch, target), given, name)
                outcome = merge.merge(record, branch, target, files)
                compared = comparison.compare(record, branch, store.branch(database, target.name))
                outcome.values.update({key: compared[key] for key in ("identical", "changes", "diff")})
        return outcome.after_adoption(adopted)

    def expire(self, database: Optional[str] = None) -> Outcome:
        if database is not None:
            validate_name("database", database)
        for found in self._sweep(database):
            self._adopt(found)  # a lease the host knows of runs out even when the store lost it
        if database is not None:
            self._database(database)
        # Only this state_dir's own: a store that also records another live state_dir's database (a copy of it)
        # must not expire that one's branches.
        mine = set(self.adoption.ours([d.name for d in self.store.databases()])) if database is None else {database}
        due = [b for b in self.store.branches(database) if b.database in mine and b.expired(now())]
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
        self._heal_routes(mine, outcome)
        return outcome

    def _heal_routes(self, databases, outcome: Outcome) -> None:
        """The expiry job runs every minute: it also rewrites endpoint routes that no longer match Docker and
        starts a pooler a Docker daemon restart left stopped (it gives containers new addresses), so an
        endpoint heals without anyone re-applying. A database another run holds is left to that run; one
        database's trouble is reported and stops nothing."""
        if self.site.check_mode:
            return
        for name in sorted(databases):
            record = self.store.database(name)
            if record is None or record.endpoint_port is None:
                continue
            try:
                with self.store.lock(name, shared=True, timeout=0):
                    self.branches.endpoints.sync(record)
            except LockBusy:
                continue
            except BranchingError as error:
                outcome.values["errors"].append({"database": name, "name": "endpoint", "error": str(error)})

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
            result = self.branches.apply(self._database(database), P.BranchRequest(database, name, state="absent"))
            return result.changed

    def _adopt(self, database: str) -> List[str]:
        """Adopts what the host has of `database` and the store lacks, under the database's exclusive lock
        (taken only when there is something to adopt, so branch runs stay parallel); refuses what is foreign."""
        self.adoption.refuse_foreign(database)
        if not self.adoption.needed(database):
            return []
        with self.store.lock(database):
            return self.adoption.reconcile(database)

    def _sweep(self, database: Optional[str]) -> List[str]:
        """The database asked for, or every database under data_root this state_dir may adopt."""
        if database is not None:
            return [database]
        return self.adoption.ours(self.site.manifests.database_names())

    def _branch(self, database: str, name: str, parameter: str) -> BranchRecord:
        record = self.store.branch(database, name)
        if record is None:
            raise InputError(parameter, f"branch {name!r} does not exist in database {database!r}")
        return record

    def _database(self, name: str) -> DatabaseRecord:
        record = self.store.database(name)
        if record is None:
            raise InputError("database", f"database {name!r} does not exist; create it with baseful.branching.database")
        return record
