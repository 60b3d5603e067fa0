"""The reliability suite shares the integration suite's fixtures (real Docker, real PostgreSQL, the
installed collection driven through ansible-playbook) and adds a tally: every test records what it
injected or tried and what held, and the session writes the totals to build/reliability.json and
prints them as the table of tests/reliability/README.md (under xdist, the workers' counts are summed
by the controller)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
# The integration suite's fixtures, re-exported so that pytest finds them here too.
from conftest import (  # noqa: E402
    Ansible,
    _remove_containers_under,
    ansible,
    connect,
    crontab_to_itself,
    database,
    dbname,
    docker_client,
    docker_daemon,
    endpoint_image,
    image15,
    image17,
    image17_hardened,
    image18,
    no_volume_left_behind,
    placement,
    pytest_collection_modifyitems,
    pytest_configure,
    query,
    snapshot,
    workdir,
)

__all__ = ["Ansible", "_remove_containers_under", "ansible", "connect", "crontab_to_itself", "database", "dbname",
           "docker_client", "docker_daemon", "endpoint_image", "image15", "image17", "image17_hardened", "image18",
           "no_volume_left_behind", "placement", "pytest_collection_modifyitems", "pytest_configure", "query", "snapshot",
           "workdir", "tally"]

REPO = Path(__file__).resolve().parents[2]
ROWS = [
    ("faults", "faults injected", "survived"),
    ("state_lost", "state lost or foreign", "every row intact"),
    ("concurrency", "concurrent runs", "collisions"),
    ("bad_input", "bad inputs tried", "refused"),
    ("exposure", "exposure checks", "passed"),
]


class Tally:
    def __init__(self):
        self.counts = defaultdict(lambda: [0, 0])

    def record(self, kind: str, tried: int = 1, held: int = 1) -> None:
        self.counts[kind][0] += tried
        self.counts[kind][1] += held

    def table(self) -> str:
        lines = ["| what | tried | outcome |", "|---|---|---|"]
        for kind, tried, held in ROWS:
            done, ok = self.counts.get(kind, (0, 0))
            lines.append(f"| {tried} | {done} | {held}: {ok} |")
        return "\n".join(lines)


TALLY = Tally()


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_sessionfinish(session):
    # An xdist worker hands its counts to the controller, which prints the table.
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["tally"] = dict(TALLY.counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for kind, (tried, held) in node.workeroutput.get("tally", {}).items():
        TALLY.record(kind, tried, held)


def pytest_terminal_summary(terminalreporter):
    if not TALLY.counts:
        return
    out = REPO / "build" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({kind: {"tried": c[0], "held": c[1]} for kind, c in TALLY.counts.items()}, indent=2) + "\n")
    terminalreporter.write_line("")
    terminalreporter.write_line("reliability (also in build/reliability.json):")
    for line in TALLY.table().splitlines():
        terminalreporter.write_line(line)
