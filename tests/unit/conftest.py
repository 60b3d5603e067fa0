"""Unit-test setup: import the collection from this working tree, not from an installed copy.

`ansible_collections.baseful.branching` must resolve to the repository itself, so at import time
this file makes build/pytest-collections/ansible_collections/baseful/branching a symlink to the
repository root and puts build/pytest-collections first on sys.path. Where the tree already is
ansible_collections/baseful/branching (ansible-test units runs from such a copy, with its own
collection loader), there is nothing to do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "build" / "pytest-collections"
NAMESPACE = COLLECTIONS / "ansible_collections" / "baseful"
LINK = NAMESPACE / "branching"


def _link_working_tree() -> None:
    NAMESPACE.mkdir(parents=True, exist_ok=True)
    if LINK.is_symlink() and Path(os.path.realpath(LINK)) == REPO:
        return
    if LINK.is_symlink() or LINK.exists():
        LINK.unlink()
    tmp = NAMESPACE / f".branching-{os.getpid()}"
    tmp.symlink_to(os.path.relpath(REPO, NAMESPACE), target_is_directory=True)  # survives a move
    os.replace(tmp, LINK)  # atomic: parallel pytest runs never see a missing link


def _put_first_on_path() -> None:
    entry = str(COLLECTIONS)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
    package = sys.modules.get("ansible_collections")
    if package is None:
        import ansible_collections as package
    path = getattr(package, "__path__", None)
    ours = str(COLLECTIONS / "ansible_collections")
    # A namespace package recomputes __path__ from sys.path; a regular package (an `ansible`
    # release that ships ansible_collections/__init__.py) needs our tree added explicitly.
    if isinstance(path, list) and ours not in path:
        path.insert(0, ours)
    for name in [m for m in sys.modules if m == "ansible_collections.baseful" or m.startswith("ansible_collections.baseful.")]:
        del sys.modules[name]  # anything imported earlier from elsewhere is forgotten


if REPO.parent.parent.name != "ansible_collections":
    _link_working_tree()
    _put_first_on_path()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def host(tmp_path):
    """A Docker host for the service's tests: a placement under tmp_path and a fake runtime."""
    from ansible_collections.baseful.branching.plugins.module_utils.model import parse_port_range
    from ansible_collections.baseful.branching.plugins.module_utils.service import Placement
    from ansible_collections.baseful.branching.tests.unit.fake_runtime import FakeRuntime

    return {"placement": Placement(str(tmp_path / "state"), str(tmp_path / "data"),
                                   port_range=parse_port_range("54320-54330")),
            "runtime": FakeRuntime(), "tmp": tmp_path}
