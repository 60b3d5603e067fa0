"""A fake Runtime (plugins/module_utils/runtime) for the service's unit tests: containers are entries in a
dict, a copy worker's script is answered by a callable, and every call is recorded."""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import PortTaken
from ansible_collections.baseful.branching.plugins.module_utils.model import MISSING, RUNNING, STOPPED
from ansible_collections.baseful.branching.plugins.module_utils.runtime import (
    LABEL_BRANCH,
    LABEL_DATABASE,
    LABEL_ROLE,
    Container,
    ContainerSpec,
    EndpointSpec,
    Pause,
    Switch,
)


def basebackup_ok(script: str, environment: dict, target_dir: Optional[str]) -> tuple:
    """A copy worker that does what pg_basebackup or pg_dump would report."""
    if "pg_basebackup" in script and target_dir:
        with open(os.path.join(target_dir, "PG_VERSION"), "w", encoding="utf-8") as handle:
            handle.write("18\n")
        return 0, "basebackup=0\n", ""
    if "auth=" in script:
        return 0, "auth=0\n", ""
    stages = ("globals_dump", "globals_filter", "globals_restore", "dump", "restore")
    return 0, "".join(f"{stage}=0\n" for stage in stages), ""


class FakeRuntime:
    def __init__(self, major: int = 18):
        self.major = major
        self.containers: Dict[str, dict] = {}
        self.calls: List[tuple] = []
        self.worker: Callable = basebackup_ok
        self.ready_fails = False
        self.blind = False  # a daemon on another host: it does not see this host's data_root
        self.bound_elsewhere: set = set()  # ports another state_dir's container binds first (Docker refuses them)
        self.pooler = (1, 24)  # the PgBouncer version of every endpoint image; None: no image to be had
        self._ids = itertools.count(1)

    # what the service sees

    def postgres_major(self, image: str) -> int:
        self.calls.append(("postgres_major", image))
        return self.major

    def ensure_network(self, name: str) -> None:
        self.calls.append(("ensure_network", name))

    def sees_path(self, image: str, path: str) -> bool:
        self.calls.append(("sees_path", path))
        return os.path.isdir(path) and not self.blind

    def create_container(self, spec: ContainerSpec, start: bool = True) -> str:
        if start and spec.port in self.bound_elsewhere:
            self.calls.append(("create_container refused", spec.branch, spec.port))
            raise PortTaken(spec.port, f"{spec.port} is taken by another process on the host")
        identifier = f"c{next(self._ids)}"
        self.containers[identifier] = {"spec": spec, "state": "running" if start else "created",
                                       "labels": {LABEL_DATABASE: spec.database, LABEL_BRANCH: spec.branch,
                                                  LABEL_ROLE: "branch"}}
        self.calls.append(("create_container", spec.branch, spec.port, start))
        return identifier

    def status(self, name_or_id: Optional[str]) -> str:
        container = self._find(name_or_id)
        if container is None:
            return MISSING
        return RUNNING if container["state"] in ("running", "paused") else STOPPED

    def start(self, name_or_id: str, port: int) -> None:
        self._find(name_or_id)["state"] = "running"
        self.calls.append(("start", name_or_id))

    def stop(self, name_or_id: str) -> None:
        container = self._find(name_or_id)
        if container is not None:
            container["state"] = "exited"
        self.calls.append(("stop", name_or_id))

    def remove(self, name_or_id: Optional[str]) -> None:
        for identifier, container in list(self.containers.items()):
            if name_or_id in (identifier, container["spec"].name):
                del self.containers[identifier]
                self.calls.append(("remove", identifier))

    def thaw(self, name_or_id: str) -> None:
        container = self._find(name_or_id)
        if container is not None and container["state"] == "paused":
            container["state"] = "running"

    def labelled(self, database: str, branch: Optional[str] = None) -> List[Container]:
        return [Container(identifier, c["spec"].name, c["state"], dict(c["labels"]))
                for identifier, c in self.containers.items() if c["labels"][LABEL_DATABASE] == database
                and (branch is None or c["labels"][LABEL_BRANCH] == branch)]

    def wait_ready(self, name_or_id: str, user: str, dbname: str) -> None:
        if self.ready_fails:
            from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError
            raise BranchingError(f"PostgreSQL in container {name_or_id} exited before it was ready: fake")
        self.calls.append(("wait_ready", name_or_id))

    def log_tail(self, name_or_id: Optional[str], lines: int = 50) -> str:
        return ""

    def run_worker(self, image, database, branch, script, environment, password_file, network_mode="host",
                   target_dir=None):
        self.calls.append(("run_worker", branch, network_mode))
        return self.worker(script, environment, target_dir)

    def checkpoint(self, name_or_id: str, user: str) -> None:
        self.calls.append(("checkpoint", name_or_id))

    def set_password(self, name_or_id: str, user: str, verifier: str) -> bool:
        self.calls.append(("set_password", name_or_id))
        return True

    @contextmanager
    def paused(self, name_or_id: str):
        container = self._find(name_or_id)
        container["state"] = "paused"
        try:
            yield Pause()
        finally:
            container["state"] = "running"

    # the endpoint's pooler

    def pooler_version(self, image: str):
        self.calls.append(("pooler_version", image))
        if self.pooler is None:
            from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
            raise InputError("endpoint_image", f"{image!r} is not present on the Docker host and cannot be pulled")
        return self.pooler

    def create_endpoint(self, spec: EndpointSpec, start: bool = True) -> str:
        if spec.port in self.bound_elsewhere:
            raise PortTaken(spec.port, f"{spec.port} is taken by another process on the host")
        identifier = f"c{next(self._ids)}"
        self.containers[identifier] = {"spec": spec, "state": "running" if start else "created",
                                       "labels": {LABEL_DATABASE: spec.database, LABEL_BRANCH: None,
                                                  LABEL_ROLE: "endpoint"}}
        self.calls.append(("create_endpoint", spec.database, spec.port))
        return identifier

    def address(self, name_or_id: str, network: str):
        """A running container's address: its id, as the fake has no network."""
        for identifier, container in self.containers.items():
            if name_or_id in (identifier, container["spec"].name) and container["state"] == "running":
                return f"10.0.0.{identifier[1:]}"
        return None

    def resume_endpoint(self, name_or_id: str) -> None:
        self.calls.append(("resume_endpoint", name_or_id))

    def reload_endpoint(self, name_or_id: str) -> None:
        self.calls.append(("reload_endpoint", name_or_id))

    def endpoint_admin(self, via: str, endpoint: str, user: str, commands, password: str = "") -> None:
        self.calls.append(("endpoint_admin", via, tuple(commands)))

    def switch_route(self, via: str, endpoint: str, route: str, user: str, wait_seconds: int, password: str = "") -> Switch:
        self.calls.append(("switch_route", via, endpoint, route))
        return Switch(pause_ms=1.0, drained=True)

    def _find(self, name_or_id: Optional[str]) -> Optional[dict]:
        for identifier, container in self.containers.items():
            if name_or_id in (identifier, container["spec"].name):
                return container
        return None
