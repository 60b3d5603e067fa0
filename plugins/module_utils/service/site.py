# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of the service shares: where things live (Placement), the store, the runtime, the
host storage and the manifests (Site), and what a module reports (Outcome)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.manifest import Manifests
from ansible_collections.baseful.branching.plugins.module_utils.model import PortRange, parse_port_range
from ansible_collections.baseful.branching.plugins.module_utils.runtime import Runtime
from ansible_collections.baseful.branching.plugins.module_utils.service.ports import port_free as bind_probe
from ansible_collections.baseful.branching.plugins.module_utils.storage import HostStorage
from ansible_collections.baseful.branching.plugins.module_utils.store import Store


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

    def after_adoption(self, adopted: List[str]) -> "Outcome":
        """This outcome, preceded by the adoption that came before it."""
        self.actions[:0] = adopted
        self.changed = self.changed or bool(adopted)
        return self


class Site:
    """One run's view of a Docker host. The store is opened on first use, after the input is validated,
    so refused input creates nothing; check mode opens an in-memory copy of it (Store read_only)."""

    def __init__(self, placement: Placement, runtime: Runtime, check_mode: bool, storage: Optional[HostStorage] = None,
                 port_free: Optional[Callable[[str, int], bool]] = None):
        self.placement = placement
        self.runtime = runtime
        self.check_mode = check_mode
        self.storage = storage or HostStorage()
        self.port_free = port_free or bind_probe  # whether another process holds a host port (a test's own probe)
        self.manifests = Manifests(placement.data_root, placement.state_dir)
        self._store: Optional[Store] = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.placement.state_dir, read_only=self.check_mode, mirror=self.manifests)
        return self._store

    def secret_file(self, database: str) -> str:
        return os.path.join(self.store.secret_dir, f"{database}.password")

    def verifier_file(self, database: str) -> str:
        """The database's SCRAM verifier, which every branch's server stores for its user (its endpoint's
        pooler logs in with it: service/endpoints.py)."""
        return os.path.join(self.store.secret_dir, f"{database}.verifier")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
