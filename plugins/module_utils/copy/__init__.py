# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine: one place that decides how a branch is filled, and the methods that do it.

A method declares whether it fills the data directory before the container starts (snapshot,
physical) or restores into a running, freshly initialised server (dump). `choose_method` is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy, as the host sees it. A managed branch is reached on its published port
    with the database's password file; an external source by its URL (a secret, passed by env)."""

    conninfo: Optional[str] = None  # libpq keywords without a password, for managed branches
    url: Optional[str] = None  # external PostgreSQL URL
    container: Optional[str] = None
    data_dir: Optional[str] = None
    pg_major: Optional[int] = None
    running: bool = True
    branch: Optional[str] = None

    @property
    def managed(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class CopyJob:
    database: str
    branch: str
    mode: str  # all | schema | empty
    image: str  # the target's image: its client tools do the work
    pg_major: int
    user: str
    dbname: str
    password_file: str
    source: Endpoint
    target: Endpoint
    # The target is a sealed server (ContainerSpec.sealed), reached through the socket it keeps in its data directory,
    # which the copy worker mounts at TARGET_IN_WORKER.
    target_mounted: bool = False
    subset: Optional[object] = None  # subset.Subset: a filtered copy (dump only)


@dataclass
class CopyResult:
    method: str
    seconds: float
    bytes: Optional[int] = None
    extra: Dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        return dict({"method": self.method, "seconds": round(self.seconds, 3), "bytes": self.bytes}, **self.extra)


@dataclass(frozen=True)
class Situation:
    """What decides which methods can serve a copy."""

    mode: str
    same_major: bool
    external_source: bool
    copy_on_write: bool
    filtered: bool = False  # rows selected by `filter`: only a logical copy can


def methods() -> tuple:
    """The registry: every copy method, fastest first. Each is its file copy/<name>.py, whose METHOD says what it
    serves (`serves`), how it fills a branch (`fills_data_dir`, `needs_running_source`, `copies_per_source`)
    and runs it (`run(job, runtime, storage)`); adding a method is its file plus its name in the two lines
    below. The imports are static, because Ansible ships to the managed host only the module_utils it sees
    imported, and late, because the methods import this module."""
    from ansible_collections.baseful.branching.plugins.module_utils.copy import dump, physical, snapshot
    return (snapshot.METHOD, physical.METHOD, dump.METHOD)


def method_names() -> List[str]:
    return [method.name for method in methods()]


def method_for(name: str):
    return next(method for method in methods() if method.name == name)


def _serving(situation: Situation) -> List[str]:
    return [method.name for method in methods() if method.serves(situation)]


def check_request(mode: Optional[str], requested: Optional[str], filtered: bool = False) -> None:
    """Refuses up front, whatever the source, a method that cannot serve the copy mode."""
    best_case = Situation(mode or "all", True, False, True, filtered)
    if requested in method_names() and (mode is not None or filtered) and not method_for(requested).serves(best_case):
        raise InputError("copy_method", f"{requested!r} cannot serve this copy ({_why_not(requested, best_case)}); "
                         f"use one of: auto, {', '.join(_serving(best_case))}")


def choose_method(requested: str, mode: str, same_major: bool, external_source: bool,
                  copy_on_write: bool, filtered: bool = False) -> str:
    """The method that serves the request: `auto` picks the fastest correct one."""
    situation = Situation(mode, same_major, external_source, copy_on_write, filtered)
    candidates = _serving(situation)
    if requested == "auto":
        return candidates[0]
    if requested not in candidates:
        raise InputError("copy_method", f"{requested!r} cannot serve this copy ({_why_not(requested, situation)}); "
                         f"use one of: auto, {', '.join(candidates)}")
    return requested


def _why_not(method: str, situation: Situation) -> str:
    mode, same_major, external_source, copy_on_write = (situation.mode, situation.same_major,
                                                        situation.external_source, situation.copy_on_write)
    if situation.filtered:
        return f"filter selects rows, which only a logical copy does; {method} copies whole data directories"
    if mode != "all":
        return f"copy {mode!r} needs a logical copy; {method} copies whole data directories"
    if external_source:
        return "the source is an external server"
    if not same_major:
        return "source and target run different PostgreSQL major versions"
    if not copy_on_write:
        return "data_root does not support reflinks, as XFS with reflink=1 and btrfs do"
    return "unsupported"
