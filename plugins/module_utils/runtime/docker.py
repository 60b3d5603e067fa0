# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Runtime (runtime/__init__.py) on Docker, through the Docker SDK for Python. Knows nothing of
SQLite or planning; returns neutral values, never an SDK object."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.errors import (
    BranchingError,
    InputError,
)
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.locks import host_lock
from ansible_collections.baseful.branching.plugins.module_utils.masking import KEY_IN_CONTAINER
from ansible_collections.baseful.branching.plugins.module_utils.model import MISSING, RUNNING, STOPPED
from ansible_collections.baseful.branching.plugins.module_utils.runtime import (
    BRANCH_ROLE,
    LABEL_BRANCH,
    LABEL_DATABASE,
    LABEL_ROLE,
    LABEL_STATE_DIR,
    MANAGED_BY,
    PROBE_ROLE,
    SEALED_ROLE,
    SECRET_IN_CONTAINER,
    TARGET_IN_WORKER,
    WORKER_ROLE,
    Container,
    ContainerSpec,
    Pause,
    container_name,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime.answers import explain, refuse_taken_port
from ansible_collections.baseful.branching.plugins.module_utils.runtime.connection import DockerConnection
from ansible_collections.baseful.branching.plugins.module_utils.runtime.pooler import PoolerContainers
from ansible_collections.baseful.branching.plugins.module_utils.runtime.sql_files import SqlFiles

try:
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound
    from docker.types import Mount
except ImportError:  # HAS_DOCKER says so; the module reports missing_required_lib
    pass

PGDATA = "/var/lib/postgresql/data"  # the official image's through 17, and where an image names none
READY_TIMEOUT_SECONDS = 120
# A sealed server's settings over the copy's own (ContainerSpec.sealed). Placeholders of modules it may not load are
# taken as they are. Its WAL is replaced once it stops, so it need not survive a crash of the host (full pages).
SEALED_SETTINGS = ("listen_addresses=127.0.0.1", "logging_collector=off", "log_statement=none",
                   "log_min_duration_statement=-1", "log_min_duration_sample=-1", "log_transaction_sample_rate=0",
                   "log_min_error_statement=panic", "log_min_messages=fatal", "debug_print_parse=off",
                   "debug_print_rewritten=off", "debug_print_plan=off", "archive_mode=off", "full_page_writes=off",
                   "pg_stat_statements.track=none", "pg_stat_statements.save=off", "auto_explain.log_min_duration=-1",
                   "pgaudit.log=none")
SEALED_SETTINGS_FROM = {17: ("summarize_wal=off",)}  # WAL summaries (17 on) are of WAL that is then replaced
# About a second of polls every 20 ms, in one exec; wait_ready repeats it until its deadline.
READY_POLL = ('for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 -U "$1" -d "$2" && exit 0; '
              'sleep 0.02; done; exit 1')


class DockerRuntime(PoolerContainers, SqlFiles):
    def __init__(self, connection: DockerConnection, state_dir: str = ""):
        self.connection = connection
        self.client = connection.client()
        self._untimed = None
        # Containers carry the state_dir they belong to, so two state_dirs on one Docker host
        # never take each other's containers for strays.
        self.scope = {LABEL_STATE_DIR: state_dir} if state_dir else {}
        self._layouts: Dict[str, Tuple[str, List[str]]] = {}

    @property
    def untimed(self):
        """A client without a read timeout: a copy's exec says nothing until it is done."""
        if self._untimed is None:
            self._untimed = self.connection.client(timeout=None)
        return self._untimed

    # images

    def ensure_image(self, image: str) -> None:
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        except (APIError, DockerException) as error:
            raise InputError("image", f"{image!r} is not a valid image reference ({explain(error)})") from error
        try:
            self.client.images.pull(image)
        except (APIError, DockerException) as error:
            raise InputError("image", f"{image!r} is not present on the Docker host and cannot be pulled "
                             f"({explain(error)})") from error

    def image_layout(self, image: str) -> Tuple[str, List[str]]:
        """The image's PGDATA (from 18 on the official image keeps it in /var/lib/postgresql/<major>/docker)
        and the VOLUMEs it declares."""
        if image not in self._layouts:
            config = self.client.images.get(image).attrs.get("Config") or {}
            environment = dict(item.partition("=")[::2] for item in config.get("Env") or [])
            self._layouts[image] = (environment.get("PGDATA") or PGDATA, sorted(config.get("Volumes") or {}))
        return self._layouts[image]

    def _volume_covers(self, image: str, mounts: List) -> List:
        """A tmpfs over each VOLUME of the image that no mount of ours covers: Docker would otherwise make an
        anonymous volume there for every container, and keep it after the container is gone."""
        taken = {mount["Target"] for mount in mounts}
        return [Mount(path, None, type="tmpfs") for path in self.image_layout(image)[1] if path not in taken]

    def postgres_major(self, image: str) -> int:
        """The PostgreSQL major version the image runs; refuses an image without PostgreSQL."""
        self.ensure_image(image)
        try:
            exit_code, output = self._run_once(image, ["postgres", "--version"], PROBE_ROLE)
            if exit_code != 0:
                raise InputError("image", f"{image!r} has no PostgreSQL server: 'postgres --version' exited "
                                 f"{exit_code} ({output[-200:].decode(errors='replace').strip()})")
        except (APIError, DockerException) as error:
            raise InputError("image", f"{image!r} has no PostgreSQL server: 'postgres --version' failed "
                             f"({explain(error)})") from error
        match = re.search(rb"\(PostgreSQL\) (\d+)", output)
        if not match:
            raise InputError("image", f"{image!r} has no PostgreSQL server: 'postgres --version' said "
                             f"{output[:80]!r}")
        return int(match.group(1))

    def _run_once(self, image: str, command: List[str], role: str, mounts: Optional[List] = None, user: str = "",
                  labels: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        """`command` in a container of `image` without network, to its end: its exit status and output.
        create/start/remove rather than run(remove=True): that leaves the container behind when it cannot start,
        which is exactly the case of an image without PostgreSQL."""
        mounts = mounts or []
        container = None
        try:
            container = self.client.containers.create(
                image, command, entrypoint=[], network_mode="none", user=user or None,
                mounts=mounts + self._volume_covers(image, mounts),
                labels={MANAGED_BY: "baseful", LABEL_ROLE: role, **(labels or {}), **self.scope})
            container.start()
            exit_code = container.wait(timeout=600).get("StatusCode")
            return exit_code, container.logs(stdout=True, stderr=True)
        finally:
            if container is not None:
                container.remove(force=True, v=True)

    def reset_wal(self, image: str, data_dir: str, database: str, branch: str) -> None:
        pgdata = self.image_layout(image)[0]
        exit_code, output = self._run_once(image, ["pg_resetwal", "-D", pgdata], WORKER_ROLE,
                                           [Mount(pgdata, data_dir, type="bind")], user="postgres",
                                           labels={LABEL_DATABASE: database, LABEL_BRANCH: branch})
        if exit_code != 0:
            raise BranchingError(f"pg_resetwal on {data_dir} exited {exit_code}: "
                                 f"{output[-300:].decode(errors='replace').strip()}")

    # networks

    def ensure_network(self, name: str) -> None:
        # The daemon's own duplicate check races (two creates at once both succeed, even with
        # check_duplicate, before API 1.44), and a name that matches two networks can no longer be used:
        # runs from different state_dirs on one host take turns on a lock that belongs to no state_dir.
        with host_lock(f"network-{name}"):
            if not self.client.networks.list(names=[name]):
                try:
                    self.client.networks.create(name, driver="bridge", labels={MANAGED_BY: "baseful"},
                                                check_duplicate=True)
                except APIError as error:
                    if error.status_code != 409:  # created meanwhile by a run on another host
                        raise

    def sees_path(self, image: str, path: str) -> bool:
        # Docker refuses to create a container whose bind mount's source its host lacks: a container is
        # created and removed again, never started.
        try:
            probe = self.client.containers.create(
                image, ["true"], entrypoint=[], network_mode="none",
                mounts=[Mount("/baseful-probe", path, type="bind", read_only=True)] + self._volume_covers(image, []),
                labels={MANAGED_BY: "baseful", LABEL_ROLE: PROBE_ROLE, **self.scope})
        except APIError as error:
            if "bind source path does not exist" in explain(error):
                return False
            raise BranchingError(f"could not ask the Docker daemon whether it sees {path}: {explain(error)}") from error
        probe.remove(force=True, v=True)
        return True

    # containers

    def create_container(self, spec: ContainerSpec, start: bool = True) -> str:
        labels = {MANAGED_BY: "baseful", LABEL_DATABASE: spec.database, LABEL_BRANCH: spec.branch,
                  LABEL_ROLE: SEALED_ROLE if spec.sealed else BRANCH_ROLE, **self.scope}
        pgdata = self.image_layout(spec.image)[0]
        environment = dict(spec.environment, POSTGRES_USER=spec.user, POSTGRES_DB=spec.dbname,
                           POSTGRES_PASSWORD_FILE=SECRET_IN_CONTAINER, PGDATA=pgdata)
        mounts = [Mount(pgdata, spec.data_dir, type="bind"),
                  Mount(SECRET_IN_CONTAINER, spec.password_file, type="bind", read_only=True)]
        if spec.sealed:
            # TCP on the container's own loopback only (readiness is polled there); no restart policy, so a daemon
            # restart never brings a half-masked server back; the copy's configuration may not log what masking
            # sends, nor archive the WAL that held the originals, which is replaced once it is done.
            settings = SEALED_SETTINGS + tuple(setting for major, extra in SEALED_SETTINGS_FROM.items()
                                               if (spec.pg_major or 0) >= major for setting in extra)
            placement = dict(network_mode="none", command=["postgres"] + [
                part for setting in settings + (f"unix_socket_directories=/var/run/postgresql,{pgdata}",)
                for part in ("-c", setting)])
            if spec.key_file:
                mounts.append(Mount(KEY_IN_CONTAINER, spec.key_file, type="bind", read_only=True))
        else:
            placement = dict(ports={"5432/tcp": (spec.bind_address, spec.port)}, network=spec.network,
                             restart_policy={"Name": "unless-stopped"})
        self.remove(spec.name)  # a leftover of a run that died between create and record
        container = None
        try:
            container = self.client.containers.create(
                spec.image, name=spec.name, labels=labels, environment=environment,
                mounts=mounts + self._volume_covers(spec.image, mounts), stop_signal="SIGINT", shm_size="256m",
                detach=True, **placement)
            if start:
                container.start()
        except APIError as error:
            if container is not None:
                container.remove(force=True, v=True)
            refuse_taken_port(error, spec.port)
            raise BranchingError(f"could not start the container for branch {spec.branch!r} on port "
                                 f"{spec.port}: {explain(error)}") from error
        return container.id

    def status(self, name_or_id: Optional[str]) -> str:
        container = self._find(name_or_id)
        if container is None:
            return MISSING
        # paused: frozen for a snapshot, and still the running server it was
        return RUNNING if container.status in ("running", "restarting", "paused") else STOPPED

    def start(self, name_or_id: str, port: int) -> None:
        try:
            container = self.client.containers.get(name_or_id)
            if container.status == "paused":
                container.unpause()
                return
            container.start()
        except APIError as error:
            refuse_taken_port(error, port)
            raise BranchingError(f"could not start container {name_or_id} on port {port}: "
                                 f"{explain(error)}") from error

    def log_tail(self, name_or_id: Optional[str], lines: int = 50) -> str:
        container = self._find(name_or_id)
        return container.logs(tail=lines).decode(errors="replace") if container is not None else ""

    def thaw(self, name_or_id: str) -> None:
        container = self._find(name_or_id)
        if container is not None and container.status == "paused":
            container.unpause()

    def stop(self, name_or_id: str) -> None:
        container = self._find(name_or_id)
        if container is not None and container.status != "exited":
            container.stop(timeout=30)

    def remove(self, name_or_id: Optional[str]) -> None:
        container = self._find(name_or_id)
        if container is not None:
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass

    def labelled(self, database: str, branch: Optional[str] = None) -> List[Container]:
        filters = [f"{MANAGED_BY}=baseful", f"{LABEL_DATABASE}={database}"]
        filters += [f"{key}={value}" for key, value in self.scope.items()]
        if branch:
            filters.append(f"{LABEL_BRANCH}={branch}")
        # ignore_removed: a container removed between Docker's list and the SDK's inspect of each entry
        # (a copy worker finishing in a parallel run) is simply not there, not an error.
        return [Container(c.id, c.name, c.status, dict(c.labels), (c.attrs.get("State") or {}).get("StartedAt"))
                for c in self.client.containers.list(all=True, filters={"label": filters}, ignore_removed=True)]

    def wait_ready(self, name_or_id: str, user: str, dbname: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Polls pg_isready over TCP inside the container: the entrypoint's initdb server is socket-only,
        so TCP readiness means the real server is up. The poll loops inside one exec, because each
        exec costs the daemon more than PostgreSQL takes to start."""
        deadline = time.monotonic() + timeout
        while True:
            container = self._find(name_or_id)
            if container is None or container.status in ("exited", "dead"):
                logs = self.log_tail(name_or_id, 5).strip()
                raise BranchingError(f"PostgreSQL in container {name_or_id} exited before it was ready: {logs}")
            if container.status == "running":
                try:
                    if container.exec_run(["sh", "-c", READY_POLL, "sh", user, dbname]).exit_code == 0:
                        return
                except APIError as error:
                    if error.status_code != 409:  # 409: it stopped meanwhile; the next round says how
                        raise
            if time.monotonic() > deadline:
                raise BranchingError(f"PostgreSQL in container {name_or_id} was not ready after {timeout:.0f}s")
            time.sleep(0.1)

    def run_worker(self, image: str, database: str, branch: str, script: str, environment: Dict[str, str],
                   password_file: str, network_mode: str = "host", target_dir: Optional[str] = None) -> Tuple[int, str, str]:
        """Runs a shell script as postgres in a short-lived container of `image`. On the host network
        (the default) it reaches published branch ports and external URLs exactly as the host does;
        with network_mode 'container:<id>' it shares a source's loopback. Values come in through the
        exec environment, which `docker inspect` does not show."""
        labels = {MANAGED_BY: "baseful", LABEL_DATABASE: database, LABEL_BRANCH: branch, LABEL_ROLE: WORKER_ROLE,
                  **self.scope}
        mounts = [Mount(SECRET_IN_CONTAINER, password_file, type="bind", read_only=True)]
        if target_dir:
            mounts.append(Mount(TARGET_IN_WORKER, target_dir, type="bind"))
        worker = self.client.containers.create(
            image, entrypoint=["sleep", "infinity"], command=[], name=container_name(database, branch) + "-copy",
            labels=labels, network_mode=network_mode, detach=True, user="postgres",
            mounts=mounts + self._volume_covers(image, mounts),
        )
        try:
            worker.start()
            injection_point("copy")
            result = self.untimed.containers.get(worker.id).exec_run(
                ["sh", "-c", script], environment=environment, demux=True, user="postgres")
            stdout, stderr = result.output
            return result.exit_code, (stdout or b"").decode(errors="replace"), (stderr or b"").decode(errors="replace")
        finally:
            worker.remove(force=True, v=True)

    def checkpoint(self, name_or_id: str, user: str) -> None:
        result = self._local_psql(name_or_id, user, "CHECKPOINT")
        if result.exit_code != 0:
            raise BranchingError(f"CHECKPOINT on {name_or_id} failed: {result.output.decode(errors='replace').strip()[-300:]}")

    def set_password(self, name_or_id: str, user: str, verifier: str) -> bool:
        """Sets `user`'s password to the SCRAM `verifier` through the server's local socket (trust or peer
        there, as initdb makes it); whether the server took it."""
        sql = "\\getenv verifier BASEFUL_VERIFIER\nALTER ROLE :\"user\" PASSWORD :'verifier';"
        return self._local_psql(name_or_id, user, sql, {"BASEFUL_VERIFIER": verifier}).exit_code == 0

    def _local_psql(self, name_or_id: str, user: str, sql: str, environment: Optional[Dict[str, str]] = None):
        """psql on the server's local socket, as postgres, reading `sql` from its standard input (so psql
        variables work); the database's password is at hand (the mounted file, through the environment) for
        a socket that asks for one. Values come in through the exec environment, never a command line."""
        script = (f'PGPASSWORD="$(cat {SECRET_IN_CONTAINER} 2>/dev/null)"; export PGPASSWORD; '
                  'printf "%s\\n" "$BASEFUL_SQL" | psql -X -q -v ON_ERROR_STOP=1 -U "$BASEFUL_USER" -d postgres '
                  '-v user="$BASEFUL_USER" -f -')
        return self.client.containers.get(name_or_id).exec_run(
            ["sh", "-c", script], user="postgres",
            environment=dict(environment or {}, BASEFUL_USER=user, BASEFUL_SQL=sql))

    @contextmanager
    def paused(self, name_or_id: str) -> Iterator[Pause]:
        """Freezes a container's processes for the body and measures for how long."""
        container = self.client.containers.get(name_or_id)
        pause = Pause()
        started = time.monotonic()  # the freeze begins inside pause(): count it from before
        container.pause()
        try:
            yield pause
        finally:
            try:
                container.unpause()
            finally:
                pause.milliseconds = round((time.monotonic() - started) * 1000, 1)

    def _find(self, name_or_id: Optional[str]):
        if not name_or_id:
            return None
        try:
            return self.client.containers.get(name_or_id)
        except NotFound:
            return None
