# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint's pooler on Docker: the part of DockerRuntime (runtime/docker.py) that runs PgBouncer.

Any image with `pgbouncer` on its PATH serves: the entry point, the command and the user are set here, and the
configuration is a directory mounted read-only, so the image's own start-up scripts never run. The admin
console is reached from a branch's container over the Docker network, with the psql of the branch's image and
the password file mounted there: the pooler image needs no client of its own."""

from __future__ import annotations

import re
import time
from typing import Optional, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.endpoint.config import (
    CONFIG_FILE,
    CONFIG_IN_CONTAINER,
    LISTEN_PORT,
    OLDEST_PGBOUNCER,
    parse_version,
)
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.runtime import (
    ENDPOINT_ROLE,
    ENDPOINT_UID,
    LABEL_DATABASE,
    LABEL_ROLE,
    MANAGED_BY,
    PROBE_ROLE,
    EndpointSpec,
    Switch,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime.answers import explain, refuse_taken_port

try:
    from docker.errors import APIError, DockerException, ImageNotFound
    from docker.types import Mount
except ImportError:  # HAS_DOCKER says so; the module reports missing_required_lib
    pass

NO_IMAGE = ("set endpoint_image to an image with pgbouncer {oldest} or later on its PATH that this Docker host has "
            "or can pull, or endpoint: false for a database without an endpoint; nothing was changed")
# One admin session pauses the route (PAUSE returns once its open transactions are done), reloads and resumes
# it, timing each command (psql's \\timing): their sum is how long the route's clients waited. A watchdog ends the
# session when the wait runs out; RELOAD and RESUME then follow in a session of their own, so clients wait at
# most that long, and a transaction still open finishes on the branch it began on.
SWITCH = f'''PGPASSWORD="$BASEFUL_PASSWORD"; export PGPASSWORD
conn="host=$ENDPOINT port={LISTEN_PORT} user=$BASEFUL_USER dbname=pgbouncer connect_timeout=10"
commands="$(mktemp)"; trap 'rm -f "$commands"' EXIT
printf '%s\\n' '\\timing on' "PAUSE \\"$ROUTE\\";" 'RELOAD;' "RESUME \\"$ROUTE\\";" >"$commands"
began=$(date +%s)
psql -X -w -At -v ON_ERROR_STOP=1 "$conn" -f "$commands" & session=$!
# the watchdog's output goes nowhere: an open standard output would keep the exec (and this run) waiting for it
( sleep "$WAIT"; kill "$session" ) >/dev/null 2>&1 & watchdog=$!
if wait "$session"; then kill "$watchdog" 2>/dev/null; echo drained=yes; exit 0; fi
kill "$watchdog" 2>/dev/null
# the wait ran out, or PAUSE itself failed (a route the pooler did not have yet): reload and resume either way
if [ $(( $(date +%s) - began )) -ge "$WAIT" ]; then echo drained=no; else echo drained=failed; fi
printf '%s\\n' '\\timing on' 'RELOAD;' | psql -X -w -At -v ON_ERROR_STOP=1 "$conn" -f -; reloaded=$?
# resumed whatever became of the reload: clients are never left paused
printf '%s\\n' '\\timing on' "RESUME \\"$ROUTE\\";" | psql -X -w -At "$conn" -f - 2>/dev/null || true
[ "$reloaded" -eq 0 ] || exit 3
'''


# Commands for the admin console, one per line from the environment; each runs whatever the one before it said.
ADMIN = f'''PGPASSWORD="$BASEFUL_PASSWORD"; export PGPASSWORD
printf '%s\\n' "$COMMANDS" | psql -X -w -At -v ON_ERROR_STOP=1 \\
  "host=$ENDPOINT port={LISTEN_PORT} user=$BASEFUL_USER dbname=pgbouncer connect_timeout=10" -f -
'''


class PoolerContainers:
    """Mixed into DockerRuntime: uses its client, scope, _find and _volume_covers."""

    def pooler_version(self, image: str) -> Optional[Tuple[int, int]]:
        """The PgBouncer version the image runs; refuses an image that cannot be had or runs none, naming
        endpoint_image. None: an endpoint of this very image already runs on this host, which proves it (each was
        checked when it was made), and no probe container is spent on it."""
        oldest = ".".join(map(str, OLDEST_PGBOUNCER))
        try:
            found = self.client.images.get(image)
        except ImageNotFound:
            try:
                found = self.client.images.pull(image)
            except (APIError, DockerException) as error:
                raise InputError("endpoint_image", f"{image!r} is not present on the Docker host and cannot be "
                                 f"pulled ({explain(error)}); " + NO_IMAGE.format(oldest=oldest)) from error
        except (APIError, DockerException) as error:
            raise InputError("endpoint_image", f"{image!r} is not a valid image reference ({explain(error)}); "
                             + NO_IMAGE.format(oldest=oldest)) from error
        # The list call's own summaries (no inspect of each container) carry the image id.
        running = self.client.api.containers(filters={"label": [f"{MANAGED_BY}=baseful", f"{LABEL_ROLE}={ENDPOINT_ROLE}"],
                                                      "status": "running"})
        if any(summary.get("ImageID") == found.id for summary in running):
            return None
        probe, output = None, b""
        try:
            probe = self.client.containers.create(image, ["pgbouncer", "--version"], entrypoint=[], user=str(ENDPOINT_UID),
                                                  network_mode="none", mounts=self._volume_covers(image, []),
                                                  labels={MANAGED_BY: "baseful", LABEL_ROLE: PROBE_ROLE, **self.scope})
            probe.start()
            probe.wait(timeout=60)
            output = probe.logs(stdout=True, stderr=True)
        except (APIError, DockerException) as error:
            output = explain(error).encode()
        finally:
            if probe is not None:
                probe.remove(force=True, v=True)
        version = parse_version(output.decode(errors="replace"))
        if version is None or version < OLDEST_PGBOUNCER:
            said = f"PgBouncer {version[0]}.{version[1]}" if version else repr(output[-120:].decode(errors='replace').strip())
            raise InputError("endpoint_image", f"{image!r} does not run pgbouncer {oldest} or later ('pgbouncer "
                             f"--version' said {said}); " + NO_IMAGE.format(oldest=oldest))
        return version

    def create_endpoint(self, spec: EndpointSpec, start: bool = True) -> str:
        labels = {MANAGED_BY: "baseful", LABEL_DATABASE: spec.database, LABEL_ROLE: ENDPOINT_ROLE, **self.scope}
        mounts = [Mount(CONFIG_IN_CONTAINER, spec.config_dir, type="bind", read_only=True)]
        self.remove(spec.name)  # a leftover of a run that died between create and record
        container = None
        try:
            container = self.client.containers.create(
                spec.image, [f"{CONFIG_IN_CONTAINER}/{CONFIG_FILE}"], entrypoint=["pgbouncer"], name=spec.name,
                user=f"{ENDPOINT_UID}:{ENDPOINT_UID}", labels=labels, environment={},
                ports={f"{LISTEN_PORT}/tcp": (spec.bind_address, spec.port)},
                mounts=mounts + self._volume_covers(spec.image, mounts), network=spec.network,
                # Not restarted by Docker: after a daemon restart its routes may name addresses Docker has since
                # given to other branches, so it serves again only once an apply or the expiry job rewrote them.
                restart_policy={"Name": "no"}, detach=True,
                log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
            )
            if start:
                container.start()
        except APIError as error:
            if container is not None:
                container.remove(force=True, v=True)
            refuse_taken_port(error, spec.port, f"the endpoint of database {spec.database!r}", "endpoint_port")
            raise BranchingError(f"could not start the endpoint of database {spec.database!r} on port "
                                 f"{spec.port}: {explain(error)}") from error
        self._wait_listening(container.id, spec)
        return container.id

    def _wait_listening(self, container_id: str, spec: EndpointSpec, timeout: float = 30.0) -> None:
        """PgBouncer reads its configuration before it listens: a container that is still running a moment
        after start took it; one that exited says why."""
        deadline = time.monotonic() + timeout
        while True:
            container = self._find(container_id)
            if container is None or container.status in ("exited", "dead"):
                logs = self.log_tail(container_id, 5).strip()
                raise BranchingError(f"the endpoint of database {spec.database!r} exited as it started: {logs}")
            if "listening on" in self.log_tail(container_id, 20):
                return
            if time.monotonic() > deadline:
                raise BranchingError(f"the endpoint of database {spec.database!r} did not listen within "
                                     f"{timeout:.0f}s: {self.log_tail(container_id, 5).strip()}")
            time.sleep(0.05)

    def address(self, name_or_id: str, network: str) -> Optional[str]:
        """The running container's address on `network`; None when it is not running there."""
        container = self._find(name_or_id)
        if container is None or container.status != "running":
            return None
        return ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(network, {}).get("IPAddress") or None

    def resume_endpoint(self, name_or_id: str) -> None:
        """SIGUSR2: PgBouncer resumes every paused database (RESUME without the admin console)."""
        container = self._find(name_or_id)
        if container is not None and container.status == "running":
            container.kill(signal="SIGUSR2")

    def reload_endpoint(self, name_or_id: str) -> None:
        """SIGHUP: PgBouncer reads its configuration again; changed routes apply to new server connections, and
        a server connection to a route's former branch closes once its transaction is done."""
        container = self._find(name_or_id)
        if container is not None and container.status == "running":
            container.kill(signal="SIGHUP")

    def endpoint_admin(self, via: str, endpoint: str, user: str, commands, password: str = "") -> None:
        """Runs admin console commands (RELOAD, RECONNECT <route>, ...) from the running branch container `via`."""
        result = self.client.containers.get(via).exec_run(
            ["sh", "-c", ADMIN], user="postgres", demux=True,
            environment={"ENDPOINT": endpoint, "BASEFUL_USER": user, "BASEFUL_PASSWORD": password,
                         "COMMANDS": "\n".join(f"{c};" for c in commands)})
        if result.exit_code != 0:
            stderr = (result.output[1] or b"").decode(errors="replace")
            raise BranchingError(f"the endpoint {endpoint} did not take its new routes ({stderr.strip()[-300:]}); the "
                                 "next apply repoints it")

    def switch_route(self, via: str, endpoint: str, route: str, user: str, wait_seconds: int,
                     password: str = "") -> Switch:
        result = self.client.containers.get(via).exec_run(
            ["sh", "-c", SWITCH], user="postgres", demux=True,
            environment={"ENDPOINT": endpoint, "ROUTE": route, "BASEFUL_USER": user, "WAIT": str(wait_seconds),
                         "BASEFUL_PASSWORD": password})
        stdout, stderr = ((part or b"").decode(errors="replace") for part in result.output)
        if result.exit_code != 0:
            raise BranchingError(f"the endpoint {endpoint} did not take its new routes (RELOAD failed: "
                                 f"{stderr.strip()[-300:]}); the next apply repoints it")
        drained, timed_out = "drained=yes" in stdout, "drained=no" in stdout
        waited = sum(float(ms) for ms in re.findall(r"^Time: ([0-9.]+) ms", stdout, re.MULTILINE))
        return Switch(pause_ms=round(waited + (wait_seconds * 1000 if timed_out else 0), 1), drained=drained)
