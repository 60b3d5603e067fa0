# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The metadata file <state_dir>/state.db (its schema and migrations: schema.py) and the locks beside it
(locks.py). Knows nothing of Docker.

Ports and the default flag are guarded by the schema itself (UNIQUE(port) and a partial unique
index on the default), so two processes can never both win; locks only keep one process at a
time working on one branch, and keep a database from being removed under a branch operation.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from typing import Iterable, Iterator, List, Optional, Protocol

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.locks import Locks
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    DELETING,
    READY,
    RUNNING,
    STOPPED,
    BranchRecord,
    DatabaseRecord,
)
from ansible_collections.baseful.branching.plugins.module_utils.schema import (
    BUSY_TIMEOUT_SECONDS,
    check_version,
    enable_wal,
    migrate,
)


class Mirror(Protocol):
    """Told of every committed change of a record, so that the host keeps a copy beside the data
    (manifest.py); the store knows nothing of what it does with it."""

    def database_changed(self, record: DatabaseRecord, store_id: str) -> None: ...

    def database_removed(self, name: str) -> None: ...

    def branch_changed(self, record: BranchRecord) -> None: ...

    def branch_removed(self, database: str, name: str) -> None: ...


_BRANCH_COLUMNS = [f.name for f in fields(BranchRecord)]
_DATABASE_COLUMNS = [f.name for f in fields(DatabaseRecord)]
_SETTLED = (RUNNING, STOPPED)  # branch statuses that end work in progress


class Store:
    """read_only (check mode, info): the file is copied into memory and never written; a state_dir that
    does not exist yet reads as an empty store, and locks are not taken. So check mode runs the same
    code as a real run (adoption included) against a copy that is thrown away.

    A file that SQLite cannot read whole (corrupt, truncated mid-page) is refused, never repaired or
    replaced: its records may be the only ones of something."""

    def __init__(self, state_dir: str, read_only: bool = False, mirror: Optional[Mirror] = None):
        self.state_dir = state_dir
        self.read_only = read_only
        self.mirror = None if read_only else mirror
        self.path = os.path.join(state_dir, "state.db")
        self.lock_dir = os.path.join(state_dir, "locks")
        self.secret_dir = os.path.join(state_dir, "secrets")
        self.locks = Locks(self.lock_dir, read_only)
        if read_only:
            self.db = sqlite3.connect(":memory:", isolation_level=None)
            self.db.row_factory = sqlite3.Row
            if os.path.exists(self.path):
                source = self._open_checked(f"file:{self.path}?mode=ro", uri=True)
                try:
                    source.backup(self.db)
                finally:
                    source.close()
            migrate(self.db)
            return
        try:
            for directory in (state_dir, self.lock_dir, self.secret_dir):
                os.makedirs(directory, mode=0o700, exist_ok=True)
                os.chmod(directory, 0o700)
        except OSError as error:
            raise InputError("state_dir", f"{state_dir!r} cannot hold the metadata ({error.strerror}); "
                             "use a directory the modules can create and write, as root") from None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        self.db = self._open_checked(self.path)
        self.db.execute("PRAGMA foreign_keys = ON")
        enable_wal(self.db)
        migrate(self.db)

    def _open_checked(self, target: str, uri: bool = False) -> sqlite3.Connection:
        connection = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            check_version(connection)
            verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as error:
            connection.close()
            raise self._unreadable(str(error)) from None
        if verdict != "ok":
            connection.close()
            raise self._unreadable(verdict)
        return connection

    def _unreadable(self, why: str) -> BranchingError:
        return BranchingError(f"state_dir: {self.path} is not readable metadata ({why}); nothing was changed. "
                              "Restore it from a backup, or move it aside: the next run rebuilds the records "
                              "from the manifests under data_root")

    @property
    def store_id(self) -> str:
        return self.db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock at once, so reads inside it are current."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # databases

    def database(self, name: str) -> Optional[DatabaseRecord]:
        row = self.db.execute("SELECT * FROM databases WHERE name = ?", (name,)).fetchone()
        return DatabaseRecord(**dict(row)) if row else None

    def databases(self) -> List[DatabaseRecord]:
        return [DatabaseRecord(**dict(r)) for r in self.db.execute("SELECT * FROM databases ORDER BY name")]

    def add_database(self, record: DatabaseRecord) -> None:
        with self.transaction() as db:
            db.execute(f"INSERT INTO databases ({', '.join(_DATABASE_COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in _DATABASE_COLUMNS)})", asdict(record))
        self._database_changed(record.name)

    def set_database_status(self, name: str, status: str) -> None:
        if status == READY and self.mirror is not None:
            self._database_changed(name, status=status)  # ahead of the commit too: see _branch_changed
        with self.transaction() as db:
            db.execute("UPDATE databases SET status = ? WHERE name = ?", (status, name))
        self._database_changed(name)

    def remove_database(self, name: str) -> None:
        names = [b.name for b in self.branches(name)]
        with self.transaction() as db:
            db.execute("DELETE FROM branches WHERE database = ?", (name,))
            db.execute("DELETE FROM databases WHERE name = ?", (name,))
        if self.mirror is not None:
            for branch in names:
                self.mirror.branch_removed(name, branch)
            self.mirror.database_removed(name)

    # branches

    def branch(self, database: str, name: str) -> Optional[BranchRecord]:
        row = self.db.execute("SELECT * FROM branches WHERE database = ? AND name = ?", (database, name)).fetchone()
        return _branch(row) if row else None

    def branches(self, database: Optional[str] = None) -> List[BranchRecord]:
        """Branches of one database or of all, default first, then by name."""
        where, args = ("WHERE database = ?", (database,)) if database else ("", ())
        rows = self.db.execute(f"SELECT * FROM branches {where} ORDER BY database, is_default DESC, name", args)
        return [_branch(r) for r in rows]

    def default_branch(self, database: str) -> Optional[str]:
        row = self.db.execute("SELECT name FROM branches WHERE database = ? AND is_default = 1", (database,)).fetchone()
        return row["name"] if row else None

    def used_ports(self) -> List[int]:
        return [r[0] for r in self.db.execute(
            "SELECT port FROM branches UNION SELECT endpoint_port FROM databases WHERE endpoint_port IS NOT NULL")]

    def set_endpoint(self, database: str, **values) -> None:
        """The endpoint's columns of a database record (endpoint_port, endpoint_image, endpoint_container)."""
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        with self.transaction() as db:
            db.execute(f"UPDATE databases SET {assignments} WHERE name = :_name", dict(values, _name=database))
        self._database_changed(database)

    def set_database_mask(self, database: str, mask: Optional[str]) -> None:
        """The masking rules a database's new branches get (masking.py: JSON)."""
        with self.transaction() as db:
            db.execute("UPDATE databases SET mask = ? WHERE name = ?", (mask, database))
        self._database_changed(database)

    def reserve_endpoint_port(self, database: str, candidate_ports: Iterable[int], **values) -> int:
        """Records the endpoint on the first candidate port that no branch or other endpoint holds."""
        return self._first_port_held(
            candidate_ports, lambda port: self.set_endpoint(database, endpoint_port=port, **values), None)

    def reserve_branch(self, record: BranchRecord, candidate_ports: Iterable[int]) -> BranchRecord:
        """Insert a 'creating' record holding the first candidate port no other record holds."""
        return self._first_port_held(candidate_ports, lambda port: self.insert_branch(replace(record, port=port)),
                                     record)

    def move_branch_port(self, record: BranchRecord, candidate_ports: Iterable[int]) -> BranchRecord:
        """A branch that has not served yet moves to the first candidate port no other record holds."""
        return self._first_port_held(
            candidate_ports, lambda port: self.update_branch(record.database, record.name, port=port), record)

    def _first_port_held(self, candidate_ports: Iterable[int], hold, record: Optional[BranchRecord]):
        """`hold(port)` for each candidate until one is no other record's (the UNIQUE(port) constraint and the
        triggers that extend it to endpoints decide); the record on it, or the port where there is no record."""
        for port in candidate_ports:
            try:
                hold(port)
                return replace(record, port=port) if record is not None else port
            except sqlite3.IntegrityError as error:
                if "branches.port" not in str(error) and "endpoint_port" not in str(error):
                    raise
        raise BranchingError("port_range: no free port is left in the range; widen port_range or delete branches")

    def port_holder(self, port: int) -> Optional[str]:
        """What records `port`: 'branch <name> of database <db>' or 'the endpoint of database <db>'."""
        row = self.db.execute("SELECT database, name FROM branches WHERE port = ?", (port,)).fetchone()
        if row:
            return f"branch {row['name']!r} of database {row['database']!r}"
        row = self.db.execute("SELECT name FROM databases WHERE endpoint_port = ?", (port,)).fetchone()
        return f"the endpoint of database {row['name']!r}" if row else None

    def insert_branch(self, record: BranchRecord) -> None:
        with self.transaction() as db:
            db.execute(f"INSERT INTO branches ({', '.join(_BRANCH_COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in _BRANCH_COLUMNS)})", asdict(record))
        self._branch_changed(record.database, record.name)

    def update_branch(self, database: str, name: str, **values) -> None:
        if values.get("status") in _SETTLED and self.mirror is not None:
            self._branch_changed(database, name, **values)  # ahead of the commit too: see _branch_changed
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        with self.transaction() as db:
            db.execute(f"UPDATE branches SET {assignments} WHERE database = :_db AND name = :_name",
                       dict(values, _db=database, _name=name))
        self._branch_changed(database, name)

    def mark_database_deleting(self, database: str) -> None:
        """The database and every branch of it 'deleting', in one transaction: a removal killed half-way
        leaves all of them marked or none."""
        with self.transaction() as db:
            db.execute("UPDATE databases SET status = ? WHERE name = ?", (DELETING, database))
            db.execute("UPDATE branches SET status = ? WHERE database = ?", (DELETING, database))
        self._database_changed(database)
        for branch in self.branches(database):
            self._branch_changed(database, branch.name)

    def set_default(self, database: str, name: str) -> None:
        previous = self.default_branch(database)
        with self.transaction() as db:
            db.execute("UPDATE branches SET is_default = 0 WHERE database = ? AND is_default = 1", (database,))
            switched = db.execute("UPDATE branches SET is_default = 1 WHERE database = ? AND name = ?", (database, name))
            if switched.rowcount != 1:
                raise BranchingError(f"name: branch {name!r} of database {database!r} does not exist; "
                                     "the default branch is unchanged")
        for branch in dict.fromkeys(b for b in (previous, name) if b is not None):
            self._branch_changed(database, branch)

    def remove_branch(self, database: str, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM branches WHERE database = ? AND name = ?", (database, name))
        if self.mirror is not None:
            self.mirror.branch_removed(database, name)

    # The mirror is told after each commit; a change that settles a record (work in progress done: running,
    # stopped, ready) is told before its commit as well. A process killed between the two then leaves the
    # manifest a step ahead (settled) rather than behind (still 'creating'), and a manifest that says
    # 'creating' is only ever one whose work truly did not finish: adopting it may remove what it names,
    # adopting a settled one never does.

    def _branch_changed(self, database: str, name: str, **ahead) -> None:
        if self.mirror is not None:
            record = self.branch(database, name)
            if record is not None:
                self.mirror.branch_changed(replace(record, **ahead) if ahead else record)

    def _database_changed(self, name: str, **ahead) -> None:
        if self.mirror is not None:
            record = self.database(name)
            if record is not None:
                self.mirror.database_changed(replace(record, **ahead) if ahead else record, self.store_id)

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # locks: <state_dir>/locks (locks.py); none are taken by a read-only store

    def lock(self, key: str, shared: bool = False, timeout: float = 600.0):
        return self.locks.lock(key, shared, timeout)

    def slot(self, key: str, slots: int, timeout: float = 3600.0):
        return self.locks.slot(key, slots, timeout)

    def held(self, key: str) -> bool:
        return self.locks.held(key)


def _branch(row: sqlite3.Row) -> BranchRecord:
    values = dict(row)
    values["is_default"] = bool(values["is_default"])
    values["protected"] = bool(values["protected"])
    return BranchRecord(**values)
