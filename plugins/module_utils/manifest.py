# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests: a copy of every record kept on the host beside the data it describes, so that the
metadata can always be rebuilt from the host (DESIGN.md, 'Data safety').

    <data_root>/<database>/.baseful/database.json        the database's record, its owner (state_dir, store id)
    <data_root>/<database>/.baseful/branches/<name>.json  each branch's record

Never inside PGDATA (a copy of a data directory must not carry its source's manifest), no secret in
them, files 0600 and directories 0700, each written whole (a temporary file renamed over the old one).
The Store tells this mirror of every committed change; adoption (adoption.py) reads it back.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from typing import List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError
from ansible_collections.baseful.branching.plugins.module_utils.model import BranchRecord, DatabaseRecord

FORMAT = 1
MANIFEST_DIR = ".baseful"  # a branch name starts with a letter, so it can never be this


@dataclass
class DatabaseManifest:
    record: DatabaseRecord
    state_dir: str  # the state_dir whose store owns the database
    store_id: str


class Manifests:
    def __init__(self, data_root: str, state_dir: str):
        self.data_root = data_root
        self.state_dir = os.path.realpath(state_dir)

    def database_dir(self, database: str) -> str:
        return os.path.join(self.data_root, database)

    def data_dir(self, database: str, branch: str) -> str:
        """Where a branch's data directory is, beside its manifest."""
        return os.path.join(self.data_root, database, branch)

    def _dir(self, database: str) -> str:
        return os.path.join(self.data_root, database, MANIFEST_DIR)

    def _branch_file(self, database: str, name: str) -> str:
        return os.path.join(self._dir(database), "branches", f"{name}.json")

    # Mirror: what the Store calls after each commit

    def database_changed(self, record: DatabaseRecord, store_id: str) -> None:
        _write(os.path.join(self._dir(record.name), "database.json"),
               {"format": FORMAT, "kind": "database", "state_dir": self.state_dir, "store_id": store_id,
                **asdict(record)})

    def database_removed(self, name: str) -> None:
        _remove_file(os.path.join(self._dir(name), "database.json"))
        for directory in (os.path.join(self._dir(name), "branches"), self._dir(name), self.database_dir(name)):
            _remove_empty_dir(directory)

    def branch_changed(self, record: BranchRecord) -> None:
        _write(self._branch_file(record.database, record.name),
               {"format": FORMAT, "kind": "branch", **asdict(record)})

    def branch_removed(self, database: str, name: str) -> None:
        _remove_file(self._branch_file(database, name))

    # reading back

    def database(self, name: str) -> Optional[DatabaseManifest]:
        values = _read(os.path.join(self._dir(name), "database.json"))
        if values is None:
            return None
        return DatabaseManifest(_record(DatabaseRecord, values), values.get("state_dir", ""),
                                values.get("store_id", ""))

    def database_names(self) -> List[str]:
        """The databases under data_root that have a manifest."""
        if not os.path.isdir(self.data_root):
            return []
        return sorted(entry for entry in os.listdir(self.data_root)
                      if os.path.isfile(os.path.join(self._dir(entry), "database.json")))

    def branches(self, database: str) -> List[BranchRecord]:
        directory = os.path.join(self._dir(database), "branches")
        if not os.path.isdir(directory):
            return []
        found = []
        for entry in sorted(os.listdir(directory)):
            # another run may be writing one now: its temporary file starts with a dot and is not a record yet
            if entry.endswith(".json") and not entry.startswith("."):
                values = _read(os.path.join(directory, entry))
                if values is not None:
                    found.append(_record(BranchRecord, values))
        return found

    def unmanifested(self, database: str) -> bool:
        """Whether <data_root>/<database> holds anything but no database manifest: data this collection
        did not make (or cannot vouch for), which nothing may replace or remove."""
        directory = self.database_dir(database)
        if not os.path.isdir(directory):
            return os.path.lexists(directory)
        return bool(os.listdir(directory)) and self.database(database) is None

    def owner_elsewhere(self, manifest: DatabaseManifest) -> Optional[str]:
        """The other state_dir that still holds the records of this database, if any. A manifest that names
        a state_dir which no longer has a metadata file (moved, lost) is ours to adopt."""
        other = manifest.state_dir
        if not other or os.path.realpath(other) == self.state_dir:
            return None
        return other if os.path.exists(os.path.join(other, "state.db")) else None


def _record(kind, values: dict):
    names = {f.name for f in fields(kind)}
    record = kind(**{k: v for k, v in values.items() if k in names})
    if kind is BranchRecord:
        record.is_default, record.protected = bool(record.is_default), bool(record.protected)
    return record


def _read(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise BranchingError(f"data_root: the manifest {path} cannot be read ({error}); nothing was changed. "
                             "Restore it, or move it aside if it does not belong to this collection") from None
    if not isinstance(values, dict) or values.get("format") != FORMAT:
        raise BranchingError(f"data_root: {path} is not a manifest this version of baseful.branching reads; "
                             "nothing was changed")
    return values


def _write(path: str, values: dict) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_dir(directory)  # the rename itself survives a power loss
    except BaseException:
        _remove_file(temporary)
        raise


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _remove_empty_dir(path: str) -> None:
    try:
        os.rmdir(path)
    except (FileNotFoundError, OSError):
        pass  # not empty: something else lives there, and stays
