# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adoption: records rebuilt from the host when the store lacks what the host has.

The store can be lost (state_dir removed or moved), corrupt (refused by the Store; once moved aside the
next run starts empty) or older than the host (restored from a backup). Each branch and database keeps a
manifest beside its data (manifest.py) and its containers carry labels, so what the store lacks is
recorded again: nothing is copied, nothing is removed, and the run reports the action `adopt`. In check
mode the same happens in the store's in-memory copy, so the prediction is the real run's.

What belongs to another state_dir that still holds its records is refused; what has no manifest at all
was not made by this collection and is refused too. Neither is ever removed.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.manifest import Manifests
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    PRODUCTION,
    BranchRecord,
    DatabaseRecord,
    scram_verifier,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import BRANCH_ROLE, SECRET_IN_CONTAINER
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret, write_secret
from ansible_collections.baseful.branching.plugins.module_utils.store import Store

ADOPT = "adopt"
# Over the published port, as a client of the host connects (a host rule of pg_hba decides, not the
# socket's): whether the password authenticates.
AUTH_PROBE = ('PGPASSWORD="$(cat "$SECRET")" psql -X -q -w -At --dbname="$DSN" -c "SELECT 1" >/dev/null; '
              'echo "auth=$?"')


class Adoption:
    def __init__(self, store: Store, manifests: Manifests, runtime, check_mode: bool, secret_file, verifier_file=None):
        self.store = store
        self.manifests = manifests
        self.runtime = runtime
        self.check_mode = check_mode
        self.secret_file = secret_file  # database name -> path of its password file under state_dir
        self.verifier_file = verifier_file  # database name -> path of its SCRAM verifier

    def refuse_foreign(self, database: str, unmanifested: bool = True) -> None:
        """Refuses a database whose data another state_dir still records, or (`unmanifested`) whose directory
        under data_root this collection did not make; changes nothing."""
        manifest = self.manifests.database(database)
        directory = self.manifests.database_dir(database)
        if manifest is None:
            if unmanifested and self.store.database(database) is None and self.manifests.unmanifested(database):
                raise InputError("data_root", f"{directory} exists and holds no baseful.branching manifest, so it was "
                                 f"not made for database {database!r} by this collection; nothing was changed: move "
                                 "it away, or choose another data_root")
            return
        if manifest.record.name != database:
            raise InputError("data_root", f"{directory} holds the manifest of database {manifest.record.name!r}, not "
                             f"{database!r}: a copy of another database's directory, which nothing adopts or removes; "
                             "nothing was changed: move it away")
        owner = self.manifests.owner_elsewhere(manifest)
        if owner is not None:
            raise InputError("data_root", f"database {database!r} under {self.manifests.data_root} belongs to the "
                             f"state_dir {owner}, which still holds its records; nothing was changed: use that "
                             "state_dir, or another data_root for this one")

    def ours(self, names: List[str]) -> List[str]:
        """The databases of `names` that this state_dir may adopt: a sweep over data_root (branch_info and
        branch_expire without a database) passes over another state_dir's instead of failing on it."""
        kept = []
        for name in names:
            try:
                self.refuse_foreign(name)
                self._branch_manifests(name)
            except InputError:
                continue
            kept.append(name)
        return kept

    def needed(self, database: str) -> bool:
        """Whether reconcile has anything to do for `database` (a cheap look, no lock): the host has records the
        store lacks or that disagree with it, or the manifests do not yet name this store as their owner."""
        manifest = self.manifests.database(database)
        if manifest is None:
            return False
        if self.store.database(database) is None or self._unclaimed(manifest):
            return True
        recorded = {b.name: b for b in self.store.branches(database)}
        return any(b.name not in recorded or _disagree(recorded[b.name], b) for b in self._branch_manifests(database))

    def reconcile(self, database: str, password: Optional[str] = None, unmanifested: bool = True) -> List[str]:
        """Adopts what the host has of `database` and the store lacks; returns [ADOPT] or []. Call it under
        the database's exclusive lock. `unmanifested`: refuse a directory of that name that is not ours (a
        removal leaves it alone instead)."""
        self.refuse_foreign(database, unmanifested)
        manifest = self.manifests.database(database)
        record = self.store.database(database)
        if manifest is None:
            if record is not None and not self.check_mode:
                self._backfill(record)
            return []
        adopted_database = record is None
        if adopted_database:
            record = DatabaseRecord(**dict(vars(manifest.record), password_file=self.secret_file(database)))
        recorded = {b.name: b for b in self.store.branches(database)}
        # A branch whose lock a live run holds is being changed by it (a delete removes the record, then the
        # manifest): its manifest is not a record the store lost, nor one that disagrees with it.
        on_host = [b for b in self._branch_manifests(database) if not self.store.held(f"{database}/{b.name}")]
        missing = [b for b in on_host if b.name not in recorded]
        for branch in on_host:
            if branch.name in recorded:
                self._merge(recorded[branch.name], branch)
        if not adopted_database and not missing:
            if not self.check_mode and self._unclaimed(manifest):
                self.manifests.database_changed(record, self.store.store_id)  # ours now: say so
            return []
        branches = [self._adoptable(b) for b in missing]
        self._refuse_clashes(database, branches)
        if adopted_database:
            self.store.add_database(record)
        for branch in branches:
            self.store.insert_branch(branch)
        if not self.check_mode:
            self._backfill(record)  # the manifests now say what the store says (one default, ours)
            if adopted_database:
                self._settle_password(record, password)
        return [ADOPT]

    def _unclaimed(self, manifest) -> bool:
        return manifest.state_dir != self.manifests.state_dir or manifest.store_id != self.store.store_id

    def _branch_manifests(self, database: str) -> List[BranchRecord]:
        """The branch manifests of `database`, each of which must describe the data directory beside it; one
        that names another database or place is a copy, and nothing is adopted or removed on its word."""
        found = self.manifests.branches(database)
        for branch in found:
            expected = self.manifests.data_dir(database, branch.name)
            if branch.database != database or os.path.realpath(branch.data_dir) != os.path.realpath(expected):
                raise InputError("data_root", f"the manifest of branch {branch.name!r} under "
                                 f"{self.manifests.database_dir(database)} describes {branch.data_dir} of database "
                                 f"{branch.database!r}, not the data beside it ({expected}): a copy, which nothing "
                                 "adopts or removes; nothing was changed: move it away")
        return found

    def _merge(self, record: BranchRecord, manifest: BranchRecord) -> None:
        """A record the store has and the host describes too. Another incarnation (a branch deleted and made
        again since this store was written: an older copy of state.db) is refused, since acting on it would act
        on the newer branch's data; within one incarnation the stricter of the two wins, protection and the
        later lease, so an older store never lets a branch go that the host says to keep."""
        if not _same_incarnation(record, manifest):
            raise BranchingError(
                f"state_dir: the record of branch {record.name!r} of database {record.database!r} is of another "
                f"branch than the one under data_root (made {record.created_at} as {record.container_name}, against "
                f"{manifest.created_at} as {manifest.container_name}): state.db is an older copy; nothing was "
                "changed. Move state.db aside to have it rebuilt from data_root")
        stricter = _stricter(record, manifest)
        if stricter:
            self.store.update_branch(record.database, record.name, **stricter)

    def _backfill(self, record: DatabaseRecord) -> None:
        """Manifests for records made before they were kept: from now on the host can rebuild them."""
        self.manifests.database_changed(record, self.store.store_id)
        for branch in self.store.branches(record.name):
            self.manifests.branch_changed(branch)

    def _adoptable(self, branch: BranchRecord) -> BranchRecord:
        """The manifest's record, with its container as Docker has it now (recreated since, or gone), and no
        second default where the store already has one (an older store's default stands)."""
        containers = [c for c in self.runtime.labelled(branch.database, branch.name)
                      if c.role == BRANCH_ROLE and c.branch == branch.name]
        if containers:
            branch.container_id, branch.container_name = containers[0].id, containers[0].name
        if branch.is_default and self.store.default_branch(branch.database) is not None:
            branch.is_default = False
        return branch

    def _refuse_clashes(self, database: str, branches: List[BranchRecord]) -> None:
        by_port = {b.port: b for b in self.store.branches()}
        for branch in branches:
            holder = by_port.get(branch.port)
            if holder is not None:
                raise BranchingError(f"port: branch {branch.name!r} of database {database!r} found under data_root "
                                     f"runs on port {branch.port}, which the store records for branch "
                                     f"{holder.name!r} of database {holder.database!r}; nothing was adopted: delete "
                                     "the stale record's branch, or restore the matching state_dir")
            by_port[branch.port] = branch

    # the password of an adopted database

    def _settle_password(self, record: DatabaseRecord, password: Optional[str]) -> None:
        """The one given as `password`, else the one kept under state_dir, if it authenticates; else a new one
        (the given one, or generated) set through the local socket of every branch whose container exists.
        A stopped branch is started for it and stopped again."""
        path = record.password_file
        candidate = password if password is not None else read_secret(path)
        branches = self.store.branches(record.name)
        status = {b.name: self.runtime.status(b.container_id or b.container_name) for b in branches}
        reachable = [b for b in branches if status[b.name] in ("running", "stopped")]
        if not reachable:
            if candidate is None:
                raise InputError("password", f"database {record.name!r} was adopted from data_root, but no password "
                                 "of it is kept under state_dir and none of its branches has a container to set one "
                                 "in; give the database's password as password")
            write_secret(path, candidate)
            return
        root = next((b for b in reachable if b.name == PRODUCTION), reachable[0])
        if candidate is not None:
            write_secret(path, candidate)
            with self._running(record, root, status[root.name]):
                if self._authenticates(record, root):
                    return
        wanted = password if password is not None else secrets.token_urlsafe(24)
        write_secret(path, wanted)  # kept first: no branch may take a password that nobody keeps
        # One verifier for every branch, kept too: the endpoint's pooler logs in with it (service/endpoints.py).
        verifier = scram_verifier(wanted)
        if self.verifier_file is not None:
            write_secret(self.verifier_file(record.name), verifier)
        for branch in reachable:
            with self._running(record, branch, status[branch.name]) as container:
                if not self.runtime.set_password(container, record.user, verifier):
                    raise InputError("password", f"database {record.name!r} was adopted from data_root, but "
                                     f"{'the password given' if password is not None else 'no known password'} "
                                     f"authenticates as {record.user!r} and branch {branch.name!r} refuses a reset "
                                     "through its local socket; give the database's current password as password")

    @contextmanager
    def _running(self, record: DatabaseRecord, branch: BranchRecord, status: str) -> Iterator[str]:
        """The branch's container, running for the body; one that was stopped is stopped again."""
        container = branch.container_id or branch.container_name
        if status == "stopped":
            self.runtime.start(container, branch.port)
            self.runtime.wait_ready(container, record.user, record.name)
        try:
            yield container
        finally:
            if status == "stopped":
                self.runtime.stop(container)

    def _authenticates(self, record: DatabaseRecord, branch: BranchRecord) -> bool:
        dsn = f"host={branch.host} port={branch.port} user={record.user} dbname=postgres connect_timeout=10"
        code, stdout, _stderr = self.runtime.run_worker(record.image, record.name, branch.name, AUTH_PROBE,
                                                        {"DSN": dsn, "SECRET": SECRET_IN_CONTAINER},
                                                        record.password_file)
        return code == 0 and "auth=0" in stdout


def _disagree(record: BranchRecord, manifest: BranchRecord) -> bool:
    """Whether reconcile must look at a recorded branch: another incarnation, or a manifest stricter than it."""
    return not _same_incarnation(record, manifest) or bool(_stricter(record, manifest))


def _same_incarnation(record: BranchRecord, manifest: BranchRecord) -> bool:
    return (record.created_at, record.container_name) == (manifest.created_at, manifest.container_name)


def _stricter(record: BranchRecord, manifest: BranchRecord) -> dict:
    """What the manifest keeps that the record would let go: protection, and a later lease (or none)."""
    stricter = {}
    if manifest.protected and not record.protected:
        stricter["protected"] = True
    if record.expires_at is not None and (manifest.expires_at is None or manifest.expires_at > record.expires_at):
        stricter.update(ttl_seconds=manifest.ttl_seconds, expires_at=manifest.expires_at)
    return stricter
