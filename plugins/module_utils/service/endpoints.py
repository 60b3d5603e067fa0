# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A database's endpoint: one PgBouncer container (endpoint/config.py says what it is given) that keeps its
routes true to the records. Every branch run ends with `sync`, which writes the routes the records now call for
and makes the pooler take them: a changed default route through PAUSE, RELOAD and RESUME, any other change
through a reload. What a database asks of its endpoint (on, port, image) is planned by plan.plan_endpoint.

Files, under <state_dir>/endpoints/<database>/ (0700, the endpoint's uid): pgbouncer.ini and userlist.txt
(0600), each written whole; `.switching` marks a switch under way, so that the one after a killed run resumes
the route it may have left paused. The database's SCRAM verifier is kept as <state_dir>/secrets/<db>.verifier."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Iterable, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.endpoint.config import (
    AUTH_FILE,
    CONFIG_FILE,
    render_auth_file,
    render_config,
    route_name,
    routes,
)
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, PortTaken
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    MISSING,
    RUNNING,
    STOPPED,
    DatabaseRecord,
    connection_host,
    postgres_url,
    scram_verifier,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import (
    ENDPOINT_ROLE,
    ENDPOINT_UID,
    EndpointSpec,
    Switch,
    container_name,
)
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret, remove_secret, write_secret

SWITCH_WAIT_SECONDS = 10  # the longest a switch waits for open transactions of the default route
SWITCHING = ".switching"


class Endpoints:
    def __init__(self, site, ports):
        self.site = site
        self.ports = ports

    # where things are

    def config_dir(self, database: str) -> str:
        # A dot first: a database's name starts with a letter, so this is never a database's data directory even
        # where data_root is state_dir itself.
        return os.path.join(self.site.placement.state_dir, ".endpoints", database)

    def verifier_file(self, database: str) -> str:
        return self.site.verifier_file(database)

    def kept_verifier(self, record: DatabaseRecord) -> Optional[str]:
        return read_secret(self.verifier_file(record.name)) or None

    def verifier(self, record: DatabaseRecord) -> str:
        """The database's SCRAM verifier. Made from its password the first time a database run asks for it (its
        create; a database made before verifiers were kept, or whose state_dir was lost), given to every
        branch's server (a stopped one started for it and stopped again) and only then kept: PgBouncer's SCRAM
        pass-through needs each server to store this very verifier (same salt and iterations, not only the same
        password), and a run killed half-way leaves none kept, so the next one gives them all a new one. Called
        under the database's exclusive lock, since it starts and stops branches."""
        kept = self.kept_verifier(record)
        if kept:
            return kept
        made = scram_verifier(read_secret(record.password_file) or "")
        if not self.site.check_mode:
            self._give_every_server(record, made)
            write_secret(self.verifier_file(record.name), made)
        return made

    def _give_every_server(self, record: DatabaseRecord, verifier: str) -> None:
        runtime = self.site.runtime
        for branch in self.site.store.branches(record.name):
            container = branch.container_id or branch.container_name
            status = runtime.status(container) if branch.status in (RUNNING, STOPPED) else MISSING
            if status == MISSING:
                continue
            if status == STOPPED:
                runtime.start(container, branch.port)
            try:
                if status == STOPPED:
                    runtime.wait_ready(container, record.user, record.name)
                if not runtime.set_password(container, record.user, verifier):
                    raise BranchingError(f"branch {branch.name!r} of database {record.name!r} refused the endpoint's "
                                         "SCRAM verifier through its local socket; nothing is routed to it until it "
                                         "takes it (apply the database again)")
            finally:
                if status == STOPPED:
                    runtime.stop(container)

    def give_verifier(self, record: DatabaseRecord, container: str) -> None:
        """A branch whose server was initialised anew (a fresh or empty copy, which copies no roles) takes the
        kept verifier."""
        kept = self.kept_verifier(record)
        if kept and not self.site.runtime.set_password(container, record.user, kept):
            raise BranchingError(f"container {container} refused the endpoint's SCRAM verifier through its local socket")

    # what the modules return

    def view(self, record: DatabaseRecord, password: str) -> Optional[dict]:
        if record.endpoint_port is None:
            return None
        host = connection_host(self.site.placement.bind_address)
        status = self.site.runtime.status(record.endpoint_container)
        url = postgres_url(record.user, password, host, record.endpoint_port, record.name)
        return {"host": host, "port": record.endpoint_port, "url": url, "status": status,
                "container_name": record.endpoint_container, "image": record.endpoint_image}

    def branch_url(self, record: DatabaseRecord, branch: str, password: str) -> Optional[str]:
        if record.endpoint_port is None:
            return None
        host = connection_host(self.site.placement.bind_address)
        return postgres_url(record.user, password, host, record.endpoint_port, route_name(record.name, branch))

    def routes_now(self, record: DatabaseRecord) -> dict:
        """What the endpoint's configuration routes: client database name -> branch (None: not serving)."""
        text = read_secret(os.path.join(self.config_dir(record.name), CONFIG_FILE)) or ""
        by_address = {address: name for name, address in self._addresses(record).items()}
        found = {}
        for line in text.split("[pgbouncer]")[0].splitlines():
            name, _sep, target = line.partition(" = ")
            if target:
                host = dict(part.split("=", 1) for part in target.split() if "=" in part).get("host")
                found[name] = by_address.get(host)
        return found

    def switch_pending(self, record: DatabaseRecord) -> bool:
        """Whether a switch was begun and not seen through (its run was killed): the pooler may still route the
        database's name to the former default."""
        return os.path.exists(os.path.join(self.config_dir(record.name), SWITCHING))

    def routes_wanted(self, record: DatabaseRecord) -> dict:
        """What the records call for, in the form of routes_now."""
        return {route.name: route.branch if route.host else None
                for route in routes(record.name, self._settled(record))}

    def _settled(self, record: DatabaseRecord) -> list:
        """(name, address, is_default, serving) of each settled branch. A route names its server by the address
        Docker gives its container on the network now, not by the container's name: the resolver PgBouncer is
        built with (c-ares) keeps answers for the TTL Docker's DNS gives them (10 minutes), and a container made
        anew under the same name (reset, repair) or started again takes another address, which another
        database's container may have been given meanwhile."""
        addresses = self._addresses(record)
        return [(b.name, addresses.get(b.name), b.is_default, b.name in addresses)
                for b in self.site.store.branches(record.name) if b.status in (RUNNING, STOPPED)]

    def _addresses(self, record: DatabaseRecord) -> dict:
        """Branch name -> its running container's address on the network."""
        runtime, network = self.site.runtime, self.site.placement.network
        found = {}
        for branch in self.site.store.branches(record.name):
            if branch.status == RUNNING:
                address = runtime.address(branch.container_id or branch.container_name, network)
                if address:
                    found[branch.name] = address
        return found

    # a database's endpoint, as it asks

    def apply(self, record: DatabaseRecord, request: P.EndpointRequest) -> List[str]:
        """Makes the endpoint what `request` asks (on or off, port, image), repairs a container removed, stopped
        or left mounting lost files, and removes endpoint containers of this database and state_dir that its
        record does not name (left by a run killed between making one and recording it, or by an older store);
        returns the actions, which check mode only plans. Run by a database apply, under its exclusive lock."""
        site = self.site
        strays = self._strays(record)
        status = site.runtime.status(record.endpoint_container) if record.endpoint_container else MISSING
        files = os.path.isfile(os.path.join(self.config_dir(record.name), CONFIG_FILE))
        actions = ([P.CLEANUP] if strays else []) + P.plan_endpoint(request, record, status, files)
        if site.check_mode or not actions:
            return actions
        for stray in strays:
            site.runtime.remove(stray)
        if P.REMOVE_ENDPOINT in actions:
            self.remove(record)
        elif P.CREATE_ENDPOINT in actions or P.RECREATE_ENDPOINT in actions:
            site.runtime.pooler_version(request.image)  # can be had: checked before the working one goes
            self.make(record, request)
        elif P.START_ENDPOINT in actions:
            self.write_files(self.site.store.database(record.name))  # fresh routes before it serves again
            site.runtime.start(record.endpoint_container, record.endpoint_port)
        return actions

    def _strays(self, record: DatabaseRecord) -> List[str]:
        return [c.id for c in self.site.runtime.labelled(record.name)
                if c.role == ENDPOINT_ROLE and c.name != record.endpoint_container]

    def make(self, record: DatabaseRecord, request: P.EndpointRequest) -> DatabaseRecord:
        """Records the endpoint (its port pinned, its container named) before the container exists, so that a
        run killed between the two leaves a record the next apply finishes; then writes its files and starts it."""
        store = self.site.store
        name = record.endpoint_container or container_name(record.name, "endpoint")
        image = request.image
        if record.endpoint_port is not None and (request.port in (None, record.endpoint_port)):
            store.set_endpoint(record.name, endpoint_image=image, endpoint_container=name)
        elif request.port is not None:
            self.ports.check_free(request.port, None, "endpoint_port", exclude_endpoint=record.name)
            store.set_endpoint(record.name, endpoint_port=request.port, endpoint_image=image, endpoint_container=name)
        else:
            store.reserve_endpoint_port(record.name, self.ports.free(), endpoint_image=image, endpoint_container=name)
        chosen_here = request.port is None and record.endpoint_port is None
        record = store.database(record.name)
        injection_point("endpoint:recorded")
        self.verifier(record)
        self.write_files(record)
        tried = set()
        while True:
            try:
                self._start_container(record)
                return record
            except PortTaken:
                # Another state_dir's container, or another process, bound it first: a port chosen here moves on.
                if not chosen_here:
                    raise
                tried.add(record.endpoint_port)
                store.reserve_endpoint_port(record.name, (p for p in self.ports.free() if p not in tried))
                record = store.database(record.name)

    def _start_container(self, record: DatabaseRecord) -> None:
        """The endpoint's container, made anew under its recorded name on its pinned port (the one it replaces is
        the record's own)."""
        runtime, placement = self.site.runtime, self.site.placement
        runtime.remove(record.endpoint_container)
        runtime.create_endpoint(EndpointSpec(name=record.endpoint_container, image=record.endpoint_image,
                                             database=record.name, bind_address=placement.bind_address,
                                             port=record.endpoint_port, config_dir=self.config_dir(record.name),
                                             network=placement.network))

    def remove(self, record: DatabaseRecord) -> None:
        """The endpoint's container (the one its record names, and any other labelled for this database's
        endpoint and state_dir), its files and its columns of the record; the branches and their data are not
        touched."""
        runtime = self.site.runtime
        for stray in self._strays(record):
            runtime.remove(stray)
        runtime.remove(record.endpoint_container)
        self.site.store.set_endpoint(record.name, endpoint_port=None, endpoint_image=None, endpoint_container=None)
        self._remove_files(record.name)

    def forget(self, record: DatabaseRecord) -> None:
        """A database's removal: its endpoint's container (the record's, whatever its labels say), files and
        verifier; done before the record goes, so a removal killed half-way still names them."""
        self.site.runtime.remove(record.endpoint_container)
        self._remove_files(record.name)
        remove_secret(self.verifier_file(record.name))

    def _remove_files(self, database: str) -> None:
        """Only the files this collection writes there, then the directory if that left it empty."""
        directory = self.config_dir(database)
        for name in (CONFIG_FILE, AUTH_FILE, SWITCHING):
            remove_secret(os.path.join(directory, name))
        try:
            os.rmdir(directory)
        except OSError:
            pass  # missing, or holding something else, which stays

    # routes kept true

    def sync(self, record: DatabaseRecord, replaced: Iterable[str] = (),
             wait_seconds: int = SWITCH_WAIT_SECONDS) -> Optional[Switch]:
        """Writes the routes the records call for; a running pooler takes them, through a switch where the
        default route moved (its pause is returned); a stopped one (a Docker daemon restart: the pooler is not
        restarted by Docker, since the addresses of its routes may have moved) is started once its routes are
        true again. `replaced`: branches whose server was stopped, started or made anew, whose routes' pooled
        server connections are closed (RECONNECT) rather than trusted. Takes the endpoint's own lock: branch
        runs of one database run in parallel, and each writes what the store says once it holds the lock."""
        if record.endpoint_port is None or self.site.check_mode:
            return None
        store = self.site.store
        with store.lock(f"{record.name}#endpoint"):
            record = store.database(record.name)
            if record is None or record.endpoint_port is None or not self.kept_verifier(record):
                return None  # no endpoint, or one whose verifier a database apply makes first
            directory = self.config_dir(record.name)
            lost = not os.path.isfile(os.path.join(directory, CONFIG_FILE))
            before = self.routes_now(record).get(route_name(record.name))
            marker = os.path.join(directory, SWITCHING)
            auth_before = read_secret(os.path.join(directory, AUTH_FILE))
            changed = self.write_files(record)
            after = self.routes_now(record).get(route_name(record.name))
            runtime = self.site.runtime
            status = runtime.status(record.endpoint_container)
            if status == RUNNING and not lost and read_secret(os.path.join(directory, AUTH_FILE)) != auth_before:
                # A new verifier (a password reset on adoption): the pooler takes it before the admin console is
                # asked for anything with the new password.
                runtime.reload_endpoint(record.endpoint_container)
                time.sleep(0.2)
            if lost and status != MISSING:
                # Its files were lost with a state_dir: the container mounts a directory that is no more, and is
                # made again on the same port to mount the new one.
                self._start_container(record)
                return None
            if status == STOPPED:
                runtime.start(record.endpoint_container, record.endpoint_port)
                remove_secret(marker)  # a pooler that starts reads its routes whole, paused for nothing
                return None
            if status != RUNNING:
                return None  # a missing pooler is made again by the database's next apply
            default = store.branch(record.name, store.default_branch(record.name) or "")
            moved = (before != after and after is not None) or os.path.exists(marker)
            if moved and default is not None and default.status == RUNNING:
                _write(marker, after or "")
                injection_point("switch:marked")
                # The password from this host's file, through the exec's environment: a branch container's own
                # mount of it may be of a file since replaced (a state_dir lost and its password reset).
                switch = runtime.switch_route(default.container_id or default.container_name,
                                              record.endpoint_container, route_name(record.name), record.user,
                                              wait_seconds, password=read_secret(record.password_file) or "")
                remove_secret(marker)
                return switch
            stale = [route for route, branch in self.routes_now(record).items() if branch in set(replaced)]
            via = self._running_branch(record)
            if stale and via is not None:
                runtime.endpoint_admin(via, record.endpoint_container, record.user,
                                       ["RELOAD"] + [f'RECONNECT "{route}"' for route in stale],
                                       password=read_secret(record.password_file) or "")
            elif changed or stale or os.path.exists(marker):
                runtime.reload_endpoint(record.endpoint_container)
            if os.path.exists(marker):
                runtime.resume_endpoint(record.endpoint_container)  # no server to switch from: resume all
                remove_secret(marker)
            return None

    def _running_branch(self, record: DatabaseRecord) -> Optional[str]:
        """A running branch container to reach the admin console from: the default's, else any."""
        running = [b for b in self.site.store.branches(record.name) if b.status == RUNNING]
        return (running[0].container_id or running[0].container_name) if running else None

    def write_files(self, record: DatabaseRecord) -> bool:
        """pgbouncer.ini and userlist.txt as the records call for now; whether either changed."""
        directory = self.config_dir(record.name)
        for level in (os.path.dirname(directory), directory):  # makedirs gives its mode to the last level only
            os.makedirs(level, mode=0o700, exist_ok=True)
            os.chmod(level, 0o700)
        os.chown(directory, ENDPOINT_UID, ENDPOINT_UID)
        wanted = {CONFIG_FILE: render_config(record.name, record.user, routes(record.name, self._settled(record))),
                  AUTH_FILE: render_auth_file(record.user, self.kept_verifier(record) or self.verifier(record))}
        changed = False
        for name, text in wanted.items():
            path = os.path.join(directory, name)
            if read_secret(path) != text:
                _write(path, text)
                changed = True
        return changed


def _write(path: str, text: str) -> None:
    """Whole or not at all (a temporary file renamed over the old one), 0600 and the endpoint's own."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.chown(temporary, ENDPOINT_UID, ENDPOINT_UID)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise
