# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning: the desired branch against what the metadata and Docker say -> actions.

Nothing here touches Docker, SQLite or the file system, so unit tests cover every decision.
Check mode is 'plan, do not apply'; diff mode shows the plan's before and after.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.endpoint.config import DEFAULT_ENDPOINT_IMAGE
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.masking import decode as decode_rules
from ansible_collections.baseful.branching.plugins.module_utils.masking import rule_names, to_apply, wanted_rules
from ansible_collections.baseful.branching.plugins.module_utils.migrations import (
    Applied,
    MigrationFile,
    decode,
    inherited,
    pending,
)
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    DELETING,
    MISSING,
    NO_LEASE,
    PRODUCTION,
    READY,
    RESETTING,
    RUNNING,
    STOPPED,
    BranchRecord,
    DatabaseRecord,
    diff_view,
)
from ansible_collections.baseful.branching.plugins.module_utils.subset import decode as decode_filter

# Actions, in the order the executor runs them.
CLEANUP = "cleanup"  # remove what a crashed create/reset/delete left behind
CREATE = "create"  # new container + data directory + copy from source
RESET = "reset"  # re-copy from source, keeping name and port
RECREATE_CONTAINER = "recreate_container"  # container gone or port changed; data kept
START = "start"
MIGRATE = "migrate"  # the request's migrations the branch has not had (on a new or reset branch, before it serves)
STOP = "stop"
SET_DEFAULT = "set_default"
SET_PROTECTED = "set_protected"
SET_TTL = "set_ttl"
DELETE = "delete"
# A database's own actions.
CREATE_DATABASE = "create_database"
SET_MASK = "set_mask"  # the masking rules its new branches get
CREATE_BRANCH = "create_branch"  # its production branch
DELETE_DATABASE = "delete_database"
# A database's endpoint's.
CREATE_ENDPOINT = "create_endpoint"
RECREATE_ENDPOINT = "recreate_endpoint"  # removed or killed by hand (repaired on its pinned port), or asked to move
START_ENDPOINT = "start_endpoint"
REMOVE_ENDPOINT = "remove_endpoint"


@dataclass(frozen=True)
class BranchRequest:
    database: str
    name: str
    state: str = "present"
    source: Optional[str] = None
    copy_mode: Optional[str] = None  # None: 'all' for a new branch, the recorded mode on reset
    copy_method: Optional[str] = None  # None: 'auto' for a new branch, the recorded method on reset
    ttl_seconds: Optional[int] = None
    port: Optional[int] = None
    protected: Optional[bool] = None
    reset: bool = False
    migrations: Tuple[MigrationFile, ...] = ()
    mask: Optional[Dict[str, str]] = None  # masking.parse_rules's; None: not asked (a reset keeps the recorded rules)
    unmasked: bool = False  # the database's masking rules do not apply to this branch
    filter: Optional[Dict[str, str]] = None  # subset.parse_filter's; None: not asked (a reset keeps the recorded one)


@dataclass(frozen=True)
class ActualBranch:
    """A branch as found: its record (None if none) and its container's live status."""

    record: Optional[BranchRecord]
    container_status: Optional[str] = None  # running | stopped | missing
    data_dir_exists: bool = True
    stray_containers: int = 0  # labelled containers of this branch that the record does not name


@dataclass
class Plan:
    actions: List[str] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    source: Optional[str] = None
    migrations: List[MigrationFile] = field(default_factory=list)  # to run, in order (plan_migrations)
    migrations_had: List[Applied] = field(default_factory=list)  # what the branch has had before they run
    mask: Optional[Dict[str, str]] = None  # the rules a new copy's data will have had (plan_masking), its source's too
    mask_now: Dict[str, str] = field(default_factory=dict)  # those that masking the new copy applies
    mask_had: Dict[str, str] = field(default_factory=dict)  # those its source's data has had already
    filter: Dict[str, str] = field(default_factory=dict)  # a new copy's row filter (plan_filter)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def plan_branch(request: BranchRequest, actual: ActualBranch, default_branch: Optional[str],
                branch_names: List[str], recorded_names: Optional[List[str]] = None) -> Plan:
    """branch_names: the branches a copy can come from (running or stopped); recorded_names: every
    record, whatever its status (defaults to branch_names)."""
    record = actual.record
    in_progress = record is not None and record.status in (CREATING, DELETING)
    if in_progress:
        record = None  # a crashed create or delete is cleaned up; the branch is made anew if wanted
    plan = Plan(before=diff_view(record, actual.container_status))
    _refuse_root_changes(request)

    if request.state == "absent":
        return _plan_absent(request, actual, record, default_branch, plan, in_progress)
    if request.source is not None and (request.source == request.name
                                       or request.source not in (recorded_names or branch_names)):
        _source_for(request, None, branch_names)  # refused even where no copy needs the source

    if in_progress or (record is None and actual.stray_containers):
        plan.actions.append(CLEANUP)
    if record is None:
        return _plan_create(request, default_branch, branch_names, plan)
    return _plan_existing(request, actual, record, default_branch, branch_names, plan)


def _refuse_root_changes(request: BranchRequest) -> None:
    """production is the root branch (DESIGN.md): it goes only with its database, and stays protected."""
    if request.name != PRODUCTION:
        return
    go_with_database = ("it goes only with its database (baseful.branching.database state: absent)")
    if request.state == "absent":
        raise InputError("state", f"branch {PRODUCTION!r} is the root branch of database {request.database!r} and "
                         f"cannot be deleted; {go_with_database}")
    if request.protected is False:
        raise InputError("protected", f"branch {PRODUCTION!r} is the root branch of database {request.database!r} "
                         f"and stays protected; {go_with_database}")
    if request.reset:
        raise InputError("reset", f"branch {PRODUCTION!r} is the root branch of database {request.database!r}; it is "
                         "copied from nothing, so it cannot be reset")


def _plan_absent(request, actual, record, default_branch, plan, in_progress) -> Plan:
    if record is not None:
        if record.name == default_branch:
            raise InputError("name", f"branch {record.name!r} is the default branch of database "
                             f"{record.database!r} and cannot be deleted; make another branch the default first")
        if record.protected:
            raise InputError("name", f"branch {record.name!r} of database {record.database!r} is protected "
                             "and cannot be deleted; set protected: false first")
        plan.actions.append(DELETE)
    elif in_progress or actual.stray_containers:
        plan.actions.append(CLEANUP)
    return plan


def _source_for(request: BranchRequest, fallback: Optional[str], branch_names: List[str]) -> str:
    source = request.source or fallback
    if source is None or source not in branch_names:
        raise InputError("source", f"branch {source!r} does not exist in database {request.database!r}; "
                         f"existing branches: {', '.join(sorted(branch_names)) or 'none'}")
    if source == request.name:
        raise InputError("source", f"branch {request.name!r} cannot be copied from itself")
    return source


def _plan_create(request, default_branch, branch_names, plan) -> Plan:
    if request.reset:
        raise InputError("reset", f"branch {request.name!r} does not exist yet; there is nothing to reset")
    plan.source = _source_for(request, default_branch, branch_names)
    plan.actions.append(CREATE)
    if request.state == "stopped":
        plan.actions.append(STOP)
    if request.state == "default":
        plan.actions.append(SET_DEFAULT)
    plan.after = {
        "name": request.name,
        "status": STOPPED if request.state == "stopped" else RUNNING,
        "is_default": request.state == "default",
        "protected": bool(request.protected),
        "port": request.port,  # None: allocated from port_range
        "parent": plan.source,
        "copy_mode": request.copy_mode or "all",
        "copy_method": request.copy_method or "auto",
        "ttl": request.ttl_seconds or None,
    }
    return plan


def _plan_existing(request, actual, record, default_branch, branch_names, plan) -> Plan:
    after = replace(record)
    status = actual.container_status
    if record.status == RESETTING:
        request = replace(request, reset=True)  # a reset that died half-way is done again first
    elif not request.reset and not actual.data_dir_exists:
        remedy = ("recreate the database (baseful.branching.database state: absent, then present)"
                  if record.is_default or record.protected else "delete it (state: absent) or reset it (reset: true)")
        raise InputError("name", f"branch {record.name!r} has lost its data directory {record.data_dir}; "
                         f"it cannot be recovered: {remedy}")
    if request.reset:
        if record.protected:
            raise InputError("reset", f"branch {record.name!r} is protected and cannot be reset; "
                             "set protected: false first")
        if record.name == default_branch:
            raise InputError("reset", f"branch {record.name!r} is the default branch of database "
                             f"{record.database!r} and cannot be reset; make another branch the default first")
        plan.source = _source_for(request, record.parent or default_branch, branch_names)
        plan.actions.append(RESET)
        after.parent = plan.source
        after.copy_mode = request.copy_mode or record.copy_mode or "all"
        after.copy_method = request.copy_method or record.copy_method or "auto"
        status = RUNNING
    elif status == MISSING or (request.port is not None and request.port != record.port):
        plan.actions.append(RECREATE_CONTAINER)
        # A port change keeps a stopped branch stopped unless asked otherwise; a lost container is
        # brought back running, as a new branch would be.
        keep_stopped = request.state == "present" and status == STOPPED
        status = STOPPED if request.state == "stopped" or keep_stopped else RUNNING
    if request.port is not None:
        after.port = request.port

    wants_running = request.state in ("started", "default")
    if wants_running and status != RUNNING:
        plan.actions.append(START)
        status = RUNNING
    elif request.state == "stopped" and status == RUNNING:
        plan.actions.append(STOP)
        status = STOPPED

    if request.state == "default" and record.name != default_branch:
        plan.actions.append(SET_DEFAULT)
        after.is_default = True
    if request.protected is not None and request.protected != record.protected:
        plan.actions.append(SET_PROTECTED)
        after.protected = request.protected
    wanted_ttl = None if request.ttl_seconds == NO_LEASE else request.ttl_seconds
    if request.ttl_seconds is not None and wanted_ttl != record.ttl_seconds:
        plan.actions.append(SET_TTL)
        after.ttl_seconds = wanted_ttl
    plan.after = diff_view(after, status)
    return plan


# Actions that give the branch a server of its own anew or again; migrations run after them.
_SERVES = (CLEANUP, CREATE, RESET, RECREATE_CONTAINER, START)


def plan_migrations(plan: Plan, request: BranchRequest, record: Optional[BranchRecord],
                    source: Optional[BranchRecord]) -> Plan:
    """The request's migrations that the branch will not have had once the planned copy (if any) is done: a new
    or reset branch has had what its source had (migrations.inherited), an existing one what its record says.
    MIGRATE goes after the actions that give it a server and before a stop or a switch, so a branch is never
    made the default before its migrations ran. `source`: the record of plan.source."""
    if request.state == "absent" or not (request.migrations or plan.actions):
        return plan
    copying = CREATE in plan.actions or RESET in plan.actions
    if copying:
        had = inherited(source.migrations if source else None, plan.after.get("copy_mode") or "all", source is not None)
    else:
        had = decode(record.migrations if record else None)
    plan.migrations, plan.migrations_had = pending(request.migrations, had, request.name), had
    if plan.migrations:
        position = max((plan.actions.index(a) + 1 for a in _SERVES if a in plan.actions), default=0)
        plan.actions.insert(position, MIGRATE)
    if plan.after:
        plan.after["migrations"] = [entry.file for entry in had] + [m.name for m in plan.migrations]
    return plan


def plan_masking(plan: Plan, request: BranchRequest, record: Optional[BranchRecord], source: Optional[BranchRecord],
                 defaults: Dict[str, str]) -> Plan:
    """The masking rules of a new or reset copy: the database's `defaults` (unless the branch says unmasked) with
    the branch's own over them, or on a reset without `mask` the rules the branch had; plus its source's, which its
    data has had already. A copy: empty takes no table, so none. An existing branch keeps its data's rules: other
    ones need a new copy (reset)."""
    if request.state == "absent":
        return plan
    if request.name == PRODUCTION:
        if request.mask or request.unmasked:
            parameter = "mask" if request.mask else "unmasked"
            raise InputError(parameter, f"branch {PRODUCTION!r} holds the original data of database "
                             f"{request.database!r}; masking rules go on its branches")
        return plan
    had = decode_rules(record.mask) if record is not None else {}
    if CREATE not in plan.actions and RESET not in plan.actions:
        differs = request.mask is not None and any(had.get(key) != rule for key, rule in request.mask.items())
        if differs or (request.unmasked and had):
            parameter = "mask" if differs else "unmasked"
            raise InputError(parameter, f"branch {request.name!r} exists with {_rules_said(had)}; its data cannot be "
                             "masked otherwise in place: add reset: true to copy it again with these rules")
        return plan
    if (plan.after.get("copy_mode") or "all") == "empty":
        if request.mask:
            raise InputError("mask", "mask rewrites the rows a copy takes and copy: empty takes no table; use copy: "
                             "schema or copy: all")
        plan.mask, plan.mask_now, plan.mask_had = {}, {}, {}  # no table of the source comes: the database's rules skip it
        plan.after.update(masked=False, mask={})
        return plan
    inherited = decode_rules(source.mask) if source is not None else {}
    if request.unmasked and inherited:
        raise InputError("unmasked", f"source branch {source.name!r} is masked ({_rules_said(inherited)}) and a copy "
                         "of it is masked too; copy an unmasked branch")
    if RESET in plan.actions and request.mask is None and not request.unmasked:
        wanted = had
    else:
        wanted = wanted_rules(defaults, request.mask or {}, request.unmasked)
    plan.mask = dict(sorted(dict(inherited, **wanted).items()))
    plan.mask_now, plan.mask_had = to_apply(wanted, inherited), inherited
    if plan.after:
        plan.after.update(masked=bool(plan.mask), mask=rule_names(plan.mask))
    return plan


def plan_filter(plan: Plan, request: BranchRequest, record: Optional[BranchRecord]) -> Plan:
    """The row filter of a new or reset copy: the request's, or on a reset without one the branch's own. An existing
    branch keeps the rows it has: another filter needs a new copy (reset)."""
    if request.state == "absent":
        return plan
    had = decode_filter(record.filter) if record is not None else {}
    if CREATE not in plan.actions and RESET not in plan.actions:
        if request.filter is not None and request.filter != had:
            raise InputError("filter", f"branch {request.name!r} exists with {_filter_said(had)}; its rows cannot be "
                             "filtered otherwise in place: add reset: true to copy it again with this filter")
        return plan
    plan.filter = had if RESET in plan.actions and request.filter is None else dict(request.filter or {})
    if plan.filter and request.copy_method is None and plan.after.get("copy_method") in ("snapshot", "physical"):
        plan.after["copy_method"] = "auto"  # the recorded method copies whole data directories: auto picks dump
    mode = plan.after.get("copy_mode") or "all"
    if plan.filter and mode == "empty":
        raise InputError("filter", "filter selects the rows a copy takes and copy: empty takes no table; use copy: "
                         "schema (only the filtered tables' rows) or copy: all")
    if plan.after:
        plan.after["filter"] = plan.filter
    return plan


def _filter_said(conditions: Dict[str, str]) -> str:
    return "filter " + ", ".join(f"{key}: {condition}" for key, condition in conditions.items()) if conditions \
        else "no filter"


def _rules_said(rules: Dict[str, str]) -> str:
    return "masking rules " + ", ".join(f"{key}: {rule}" for key, rule in rule_names(rules).items()) if rules \
        else "no masking rules"


@dataclass(frozen=True)
class DatabaseRequest:
    name: str
    state: str = "present"
    image: str = "postgres:18"
    user: str = "postgres"
    password_differs: bool = False  # a password was given and it is not the one kept
    mask: Optional[Dict[str, str]] = None  # masking rules for its new branches; None: leave them as they are


def plan_database(request: DatabaseRequest, record: Optional[DatabaseRecord], production_recorded: bool,
                  containers: int) -> Plan:
    """The database's own actions. An existing, ready database plans nothing here: its production branch is
    then planned like any branch. A record left 'creating' or 'deleting' by a run that died is cleaned up
    (exactly what its records name) and, for present, the database is made anew."""
    if request.state == "absent":
        if record is None and not containers:
            return Plan()
        return Plan([DELETE_DATABASE], before={"name": request.name})
    actions = []
    if record is not None and record.status != READY:
        actions.append(CLEANUP)
        record = None
    if record is None:
        return Plan(actions + [CREATE_DATABASE, CREATE_BRANCH], after={
            "name": request.name, "image": request.image, "user": request.user, "branches": [PRODUCTION],
            "default_branch": PRODUCTION, "mask": rule_names(request.mask or {})})
    for parameter, wanted, actual in (("image", request.image, record.image), ("user", request.user, record.user)):
        if wanted != actual:
            raise InputError(parameter, f"database {request.name!r} exists with {parameter} {actual!r}; changing it "
                             f"to {wanted!r} is not supported: create a new database instead")
    if request.password_differs:
        raise InputError("password", f"database {request.name!r} exists with another password; changing the "
                         "password of an existing database is not supported")
    if not production_recorded:
        raise BranchingError(f"name: database {request.name!r} has lost its production branch: neither state_dir "
                             "nor data_root has a record of it; nothing was changed. Restore it from a backup, "
                             "or remove the database (state: absent) to start again")
    had = decode_rules(record.mask)
    if request.mask is not None and request.mask != had:
        return Plan([SET_MASK], before={"mask": rule_names(had)}, after={"mask": rule_names(request.mask)})
    return Plan()


@dataclass(frozen=True)
class EndpointRequest:
    enabled: bool = True
    port: Optional[int] = None  # None: the recorded one, else allocated from port_range
    image: str = DEFAULT_ENDPOINT_IMAGE


DEFAULT_ENDPOINT = EndpointRequest()
NO_ENDPOINT = EndpointRequest(enabled=False)


def plan_endpoint(request: EndpointRequest, record: DatabaseRecord, container_status: str,
                  files_present: bool = True) -> List[str]:
    """The endpoint's actions for a ready database: made, moved to another port or image, repaired on its pinned
    port when its container is gone (or its configuration is: a state_dir lost, the container's mount is of a
    directory that is no more), started when it was stopped, or removed."""
    recorded = record.endpoint_port is not None
    if not request.enabled:
        return [REMOVE_ENDPOINT] if recorded or record.endpoint_container else []
    if not recorded:
        return [CREATE_ENDPOINT]
    moved = request.port not in (None, record.endpoint_port) or request.image != record.endpoint_image
    if moved or container_status == MISSING or not files_present:
        return [RECREATE_ENDPOINT]
    if container_status == STOPPED:
        return [START_ENDPOINT]
    return []


def endpoint_diff(record: Optional[DatabaseRecord], request: Optional[EndpointRequest] = None) -> Optional[dict]:
    """The endpoint as --diff shows it: the record's, or what `request` makes of it."""
    if request is not None:
        if not request.enabled:
            return None
        port = request.port if request.port is not None else (record.endpoint_port if record else None)
        return {"port": port, "image": request.image}
    if record is None or record.endpoint_port is None:
        return None
    return {"port": record.endpoint_port, "image": record.endpoint_image}
