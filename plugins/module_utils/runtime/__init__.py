# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime seam: what the engine needs from a container runtime, in neutral values.

`Runtime` is the interface; Docker (runtime/docker.py) is its one implementation, and the service's
unit tests drive a fake one. Nothing above this package sees a Docker SDK object.
"""

from __future__ import annotations

import secrets
import string
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Tuple

MANAGED_BY = "managed-by"
LABEL_DATABASE = "baseful.database"
LABEL_BRANCH = "baseful.branch"
LABEL_ROLE = "baseful.role"
LABEL_STATE_DIR = "baseful.state_dir"
SECRET_IN_CONTAINER = "/run/secrets/baseful-password"
TARGET_IN_WORKER = "/target"
BRANCH_ROLE, WORKER_ROLE, PROBE_ROLE, ENDPOINT_ROLE = "branch", "worker", "probe", "endpoint"
SEALED_ROLE = "sealed"  # a branch's server while it is masked: no network, no published port (ContainerSpec.sealed)
ENDPOINT_UID = 999  # the endpoint runs as the uid that owns the secrets (secret.py), never as root


@dataclass(frozen=True)
class Container:
    """A container as the engine sees it. `state` is the runtime's own word (running, paused, exited, ...)."""

    id: str
    name: str
    state: str
    labels: Dict[str, str] = field(default_factory=dict)
    started_at: Optional[str] = None

    @property
    def branch(self) -> Optional[str]:
        return self.labels.get(LABEL_BRANCH)

    @property
    def role(self) -> Optional[str]:
        return self.labels.get(LABEL_ROLE)

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass
class ContainerSpec:
    name: str
    image: str
    database: str
    branch: str
    bind_address: str
    port: int
    data_dir: str
    password_file: str
    user: str
    dbname: str
    network: str
    environment: Dict[str, str] = field(default_factory=dict)
    # Sealed: the server is made ready for its first clients (masked) where none can reach it: no network but its
    # own loopback, no published port, sockets only in its container and in its data directory (where a copy
    # worker that mounts it restores into it), and nothing of the session's work written to a log.
    sealed: bool = False
    key_file: Optional[str] = None  # a sealed server's masking key (masking.KEY_IN_CONTAINER), mounted read-only
    pg_major: Optional[int] = None


@dataclass
class EndpointSpec:
    """A database's pooler container: `config_dir` (its configuration, mounted read-only) and the host port."""

    name: str
    image: str
    database: str
    bind_address: str
    port: int
    config_dir: str
    network: str


@dataclass
class Switch:
    """What repointing a route cost: how long clients of it waited, and whether its open transactions ended
    within the bound (else they finish on the branch they began on)."""

    pause_ms: float
    drained: bool


@dataclass
class Pause:
    milliseconds: Optional[float] = None


class Runtime(Protocol):
    """Containers of branches, short-lived workers and the few server operations the engine runs inside them.
    Names or ids are accepted wherever a container is named; a missing container is not an error where the
    operation can say so (status MISSING, remove and thaw do nothing)."""

    def postgres_major(self, image: str) -> int: ...

    def ensure_network(self, name: str) -> None: ...

    def sees_path(self, image: str, path: str) -> bool:
        """Whether the daemon finds `path` on its own host, as bind mounts of this host's paths need."""

    def create_container(self, spec: ContainerSpec, start: bool = True) -> str: ...

    def status(self, name_or_id: Optional[str]) -> str: ...  # model.RUNNING | STOPPED | MISSING

    def start(self, name_or_id: str, port: int) -> None: ...

    def stop(self, name_or_id: str) -> None: ...

    def remove(self, name_or_id: Optional[str]) -> None: ...

    def thaw(self, name_or_id: str) -> None: ...

    def labelled(self, database: str, branch: Optional[str] = None) -> List[Container]: ...

    def wait_ready(self, name_or_id: str, user: str, dbname: str) -> None: ...

    def log_tail(self, name_or_id: Optional[str], lines: int = 50) -> str: ...

    def run_worker(self, image: str, database: str, branch: str, script: str, environment: Dict[str, str],
                   password_file: str, network_mode: str = "host",
                   target_dir: Optional[str] = None) -> Tuple[int, str, str]: ...

    def checkpoint(self, name_or_id: str, user: str) -> None: ...

    def reset_wal(self, image: str, data_dir: str, database: str, branch: str) -> None:
        """pg_resetwal on a cleanly stopped server's data directory: every WAL segment (recycled ones too) replaced
        by one new, empty segment."""

    def set_password(self, name_or_id: str, user: str, verifier: str) -> bool: ...

    def paused(self, name_or_id: str) -> AbstractContextManager: ...  # yields a Pause, measured on exit

    def run_sql_files(self, name_or_id: str, user: str, dbname: str, files: List[Tuple[str, bytes]]) -> Tuple[bool, str]:
        """SQL files (name, bytes), in order, in one transaction on the branch's server (runtime/sql_files.py);
        whether it committed, and what psql said."""

    def query_json(self, name_or_id: str, user: str, dbname: str, sql: str): ...

    def run_script(self, name_or_id: str, user: str, dbname: str, sql: str) -> Tuple[bool, str]:
        """A psql script, each statement in its own transaction unless it says otherwise; whether it ran to its end,
        and what psql said."""

    def explain(self, name_or_id: str, user: str, dbname: str, statement: str,
                catalog_only: bool = False) -> Tuple[bool, str]:
        """EXPLAIN `statement` (one statement) in a read-only session: whether the server took it, and what it said.
        catalog_only: names resolve in pg_catalog alone, as masking resolves them."""

    def dump_schema(self, name_or_id: str, user: str, dbname: str) -> str: ...

    # the endpoint's pooler (runtime/pooler.py)

    def pooler_version(self, image: str) -> Tuple[int, int]: ...

    def create_endpoint(self, spec: EndpointSpec, start: bool = True) -> str: ...

    def address(self, name_or_id: str, network: str) -> Optional[str]: ...

    def reload_endpoint(self, name_or_id: str) -> None: ...

    def resume_endpoint(self, name_or_id: str) -> None: ...

    def endpoint_admin(self, via: str, endpoint: str, user: str, commands: List[str], password: str = "") -> None: ...

    def switch_route(self, via: str, endpoint: str, route: str, user: str, wait_seconds: int,
                     password: str = "") -> Switch:
        """PAUSE route (waiting at most wait_seconds for its open transactions), RELOAD, RESUME route, through
        the admin console of `endpoint`, from the running branch container `via`."""


def container_name(database: str, branch: str) -> str:
    """baseful-<database>-<branch>-<6 random characters>; a database's endpoint is named for 'endpoint'."""
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _position in range(6))
    return f"baseful-{database}-{branch}-{suffix}"


def copy_slot(database: str, branch: str, method: str) -> str:
    """The Store.slot key that limits concurrent copies of one method from one source branch."""
    return f"{database}/{branch}#{method}"
