# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A database's lifecycle, planned like a branch's (plan.plan_database): create it with its production
branch, or remove it whole. An existing database's production branch goes through the branch executor."""

from __future__ import annotations

import secrets
from typing import List, Optional

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.copy import Endpoint
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.masking import encode as encode_rules
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    PRODUCTION,
    READY,
    DatabaseRecord,
    now,
    timestamp,
)
from ansible_collections.baseful.branching.plugins.module_utils.secret import remove_secret, write_secret
from ansible_collections.baseful.branching.plugins.module_utils.service.executor import BranchExecutor
from ansible_collections.baseful.branching.plugins.module_utils.service.site import Outcome


class DatabaseLifecycle:
    def __init__(self, site, executor: BranchExecutor):
        self.site = site
        self.executor = executor

    def apply(self, request: P.DatabaseRequest, password: Optional[str], source_url: Optional[str],
              adopted: List[str], endpoint: P.EndpointRequest = P.DEFAULT_ENDPOINT) -> Outcome:
        site, name = self.site, request.name
        record = site.store.database(name)
        containers = len(site.runtime.labelled(name)) if request.state == "absent" and record is None else 0
        plan = P.plan_database(request, record, site.store.branch(name, PRODUCTION) is not None, containers)
        if request.state == "absent":
            if not plan.actions:
                return Outcome()
            before = {"name": name, "branches": [b.name for b in site.store.branches(name)]}
            if not site.check_mode:
                self.purge(name)
            return Outcome(True, adopted + plan.actions, before, {})
        endpoints = self.executor.endpoints
        if P.SET_MASK in plan.actions:
            # Rules for branches made from now on: those that exist keep what their data has had.
            if not site.check_mode:
                site.store.set_database_mask(name, encode_rules(request.mask))
            outcome = self.apply(P.DatabaseRequest(name, request.state, request.image, request.user,
                                                   request.password_differs), password, source_url, [], endpoint)
            outcome.changed = True
            outcome.actions.insert(0, P.SET_MASK)
            outcome.before["mask"], outcome.after["mask"] = plan.before["mask"], plan.after["mask"]
            return outcome.after_adoption(adopted)
        if P.CREATE_DATABASE not in plan.actions:
            # The endpoint first: production's run then routes through what it makes or repairs.
            endpoint_before = P.endpoint_diff(record)
            endpoint_actions = endpoints.apply(record, endpoint)
            record = site.store.database(name) or record
            outcome = self.executor.apply(record, P.BranchRequest(name, PRODUCTION, state="present"))
            if endpoint_actions:
                outcome.changed = True
                outcome.actions += endpoint_actions
                outcome.before.setdefault("endpoint", endpoint_before)
                outcome.after.setdefault("endpoint", P.endpoint_diff(record, endpoint))
            record = site.store.database(name) or record
            endpoints.sync(record)
            outcome.values["database"] = self.executor.views.database(record)
            return outcome.after_adoption(adopted)
        if endpoint.enabled:
            plan.actions.append(P.CREATE_ENDPOINT)
            plan.after["endpoint"] = P.endpoint_diff(None, endpoint)
        outcome = Outcome(True, plan.actions, {}, plan.after)
        if site.check_mode:
            outcome.values["database"] = plan.after
            return outcome
        if P.CLEANUP in plan.actions:
            self.purge(name)
        record, branch, copy_result = self.create(request, password, source_url, endpoint)
        if copy_result is not None:
            outcome.values["copy_result"] = copy_result
        outcome.values["database"] = self.executor.views.database(record)
        outcome.values["branch"] = self.executor.views.branch(record, branch)
        return outcome

    def create(self, request: P.DatabaseRequest, password: Optional[str], source_url: Optional[str],
               endpoint: P.EndpointRequest = P.NO_ENDPOINT):
        site, name = self.site, request.name
        pg_major = site.runtime.postgres_major(request.image)
        if endpoint.enabled:
            site.runtime.pooler_version(endpoint.image)  # refused before anything is made
            if endpoint.port is not None:
                self.executor.ports.check_free(endpoint.port, None, "endpoint_port")
        self._refuse_a_daemon_blind_to_data_root(request.image)
        site.runtime.ensure_network(site.placement.network)
        record = DatabaseRecord(name, request.image, pg_major, request.user, site.secret_file(name), timestamp(now()),
                                status=CREATING, mask=encode_rules(request.mask or {}))
        # Written before anything else exists: a run that dies from here on leaves a 'creating' record naming
        # every piece it made, and the next apply removes exactly those (and nothing under data_root it did not make).
        write_secret(record.password_file, password or secrets.token_urlsafe(24))
        site.store.add_database(record)
        try:
            source = Endpoint(url=source_url) if source_url else None
            branch, copy_result = self.executor.create_branch(record, PRODUCTION, source, "all", "auto", port=None,
                                                              ttl=None, is_default=True, protected=True)
            # Made now and given to production, whose roles (and this verifier with them) every later branch copies.
            self.executor.endpoints.verifier(record)
            if endpoint.enabled:
                self.executor.endpoints.make(record, endpoint)
            site.store.set_database_status(name, READY)
        except BaseException:
            self.purge(name)  # this run's own half-made database: its records name every piece
            raise
        return site.store.database(name), branch, copy_result

    def _refuse_a_daemon_blind_to_data_root(self, image: str) -> None:
        """Branches are bind mounts of this host's data_root: a daemon elsewhere (another machine, a VM) would
        mount whatever its own host has at that path. A directory of a unique name is made there and the
        daemon asked whether it finds it."""
        site = self.site
        with site.storage.probe_dir(site.placement.data_root) as probe:
            seen = site.runtime.sees_path(image, probe)
        if not seen:
            raise InputError("docker_host", f"the Docker daemon does not see data_root {site.placement.data_root} "
                             "as this host has it (a directory made there is missing on the daemon's host), so it "
                             "cannot mount the branches' data; run the modules on the Docker host itself, with "
                             "docker_host its own daemon; nothing was changed")

    def purge(self, name: str) -> None:
        """Containers labelled for this database and state_dir, the data directories its branch records name,
        the records, their manifests and the password file. Marked first: a run that dies half-way leaves a
        database whose next apply, present or absent, finishes the removal."""
        site = self.site
        site.store.mark_database_deleting(name)
        injection_point("database:marked")
        record = site.store.database(name)
        if record is not None:
            self.executor.endpoints.forget(record)
        self.executor.recovery.remove_labelled(name)
        injection_point("database:containers")
        for branch in site.store.branches(name):
            site.storage.remove(branch.data_dir)
        injection_point("database:data")
        site.store.remove_database(name)
        remove_secret(site.secret_file(name))
        remove_secret(self.executor.masking.key_file(name))  # a new database of this name gets a key of its own
