# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine: one place that decides how a branch is filled, and the methods that do it.

A method declares whether it fills the data directory before the container starts (snapshot,
physical) or restores into a running, freshly initialised server (dump). `choose_method` is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
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


@dataclass
class CopyResult:
    method: str
    seconds: float
    bytes: Optional[int] = None
    extra: Dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        return dict({"method": self.method, "seconds": round(self.seconds, 3), "bytes": self.bytes}, **self.extra)


# The registry: every method, fastest first. Each names its file copy/<name>.py, whose METHOD says what it
# serves (`serves`), how it fills a branch (`fills_data_dir`, `needs_running_source`, `copies_per_source`) and
# runs it (`run(job, runtime, storage)`). Adding a method is its file plus its name here.
REGISTRY = ("snapshot", "physical", "dump")


@dataclass(frozen=True)
class Situation:
    """What decides which methods can serve a copy."""

    mode: str
    same_major: bool
    external_source: bool
    copy_on_write: bool


def method_for(name: str):
    return import_module(f"{__name__}.{name}").METHOD


def _serving(situation: Situation) -> List[str]:
    return [name for name in REGISTRY if method_for(name).serves(situation)]


IMPLEMENTED = REGISTRY  # kept for readers of 0.1.0's name


def check_request(mode: Optional[str], requested: Optional[str]) -> None:
    """Refuses up front, whatever the source, a method that cannot serve the copy mode."""
    if requested in REGISTRY and mode is not None and not method_for(requested).serves(Situation(mode, True, False, True)):
        raise InputError("copy_method", f"{requested!r} cannot serve this copy ({_why_not(requested, mode, True, False, True)}); "
                         f"use one of: auto, {', '.join(_serving(Situation(mode, True, False, True)))}")


def choose_method(requested: str, mode: str, same_major: bool, external_source: bool,
                  copy_on_write: bool) -> str:
    """The method that serves the request: `auto` picks the fastest correct one."""
    candidates = _serving(Situation(mode, same_major, external_source, copy_on_write))
    if requested == "auto":
        return candidates[0]
    if requested not in candidates:
        reason = _why_not(requested, mode, same_major, external_source, copy_on_write)
        raise InputError("copy_method", f"{requested!r} cannot serve this copy ({reason}); use one of: auto, "
                         f"{', '.join(candidates)}")
    return requested


def _why_not(method: str, mode: str, same_major: bool, external_source: bool, copy_on_write: bool) -> str:
    if mode != "all":
        return f"copy {mode!r} needs a logical copy; {method} copies whole data directories"
    if external_source:
        return "the source is an external server"
    if not same_major:
        return "source and target run different PostgreSQL major versions"
    if not copy_on_write:
        return "data_root does not support reflinks, as XFS with reflink=1 and btrfs do"
    return "unsupported"
