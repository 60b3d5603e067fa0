"""Integration fixtures: real Docker, real PostgreSQL, and the collection as installed by
`make install`, driven through ansible-playbook exactly as a user runs it.

The suites run in parallel under pytest-xdist (`make test`: one worker per core). What workers could
share is kept apart or taken in turns: each worker has its own port range and its own test directories;
a test that restarts the Docker daemon (marked restarts_docker) waits until it has the daemon to itself;
tests that change root's crontab take turns; and the check that the suite leaves no container behind runs
once, in the process that started the workers, over the whole run."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import docker
import psycopg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# pytest-xdist names its workers gw0, gw1, ...; a run without it is worker 0.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])


def _worker_port_range() -> range:
    """BASEFUL_TEST_PORT_RANGE (default 54400-54599) for worker 0; each next worker the same width above it,
    so that no two workers' branches ever want one port."""
    low, high = map(int, os.environ.get("BASEFUL_TEST_PORT_RANGE", "54400-54599").split("-"))
    width = high - low + 1
    return range(low + WORKER * width, high + WORKER * width + 1)


PORTS = _worker_port_range()
PORT_RANGE = f"{PORTS[0]}-{PORTS[-1]}"


def _image(major: int, variant: str = "") -> str:
    name = os.environ.get(f"BASEFUL_IMAGE_{major}" + (f"_{variant.upper()}" if variant else ""))
    if name:
        return name
    return subprocess.run([str(REPO / "tests/images/ensure.sh"), str(major), *([variant] if variant else [])],
                          check=True, text=True, capture_output=True).stdout.strip()


@pytest.fixture(scope="session", autouse=True)
def endpoint_image() -> str:
    """The endpoint's image for every database the suites make: the modules read BASEFUL_ENDPOINT_IMAGE where a
    task names none, as a user's controller may set it."""
    if not os.environ.get("BASEFUL_ENDPOINT_IMAGE"):
        os.environ["BASEFUL_ENDPOINT_IMAGE"] = subprocess.run(
            [str(REPO / "tests/images/ensure.sh"), "pgbouncer"], check=True, text=True, capture_output=True).stdout.strip()
    return os.environ["BASEFUL_ENDPOINT_IMAGE"]


@pytest.fixture(scope="session")
def image17() -> str:
    return _image(17)


@pytest.fixture(scope="session")
def image15() -> str:
    return _image(15)


@pytest.fixture(scope="session")
def image18() -> str:
    """PostgreSQL 18 with the official image's 18 layout: PGDATA /var/lib/postgresql/18/docker under
    VOLUME /var/lib/postgresql."""
    return _image(18)


@pytest.fixture(scope="session")
def image17_hardened() -> str:
    """PostgreSQL 17 initialised with scram-sha-256 for every host connection, 127.0.0.1 included."""
    return _image(17, "hardened")


@pytest.fixture(scope="session")
def docker_client():
    return docker.from_env()


def playbook_env(**extra: str) -> Dict[str, str]:
    """The environment every ansible-playbook of the suites runs in: ansible.builtin.json's report on stdout,
    and the suite's own Python (it has the Docker SDK) for the modules. ANSIBLE_ASYNC_DIR is spelled out:
    where HOME is not the user's home in the password database (a fresh HOME, as the README's commands are
    checked with), ansible-core 2.19's async wrapper writes under HOME while async_status looks under the
    other, and every async task reports "could not find job"."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_PYTHON_INTERPRETER=shutil.which("python3"),
               ANSIBLE_ASYNC_DIR=os.path.join(os.path.expanduser("~"), ".ansible_async"), **extra)
    env.pop("ANSIBLE_CALLBACK_RESULT_FORMAT", None)
    return env


def json_report(stdout: str) -> dict:
    """ansible.builtin.json's report, after whatever warnings ansible-playbook printed before it."""
    return json.loads(stdout[stdout.index("{"):])


class Ansible:
    """Runs tasks in a one-play playbook on localhost and returns each task's result."""

    def __init__(self, workdir: Path, placement: dict):
        self.workdir = workdir
        self.placement = placement

    def play(self, tasks: List[dict], check: bool = False, diff: bool = False, verbosity: int = 0,
             extra_env: Optional[Dict[str, str]] = None, wrapper: Optional[List[str]] = None) -> List[dict]:
        """`wrapper`: a command that runs ansible-playbook (its arguments appended), as unshare does."""
        for task in tasks:
            task.setdefault("ignore_errors", True)
        playbook = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
                     "module_defaults": {"group/baseful.branching.branching": self.placement},
                     "tasks": tasks}]
        path = self.workdir / f"play-{secrets.token_hex(4)}.yml"
        path.write_text(yaml.safe_dump(playbook))
        command = [*(wrapper or []), "ansible-playbook", "-i", "localhost,", str(path)]
        command += ["--check"] if check else []
        command += ["--diff"] if diff else []
        command += ["-" + "v" * verbosity] if verbosity else []
        env = playbook_env(ANSIBLE_NOCOLOR="1", **(extra_env or {}))
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        self.last_output = done.stdout + done.stderr
        try:
            report = json_report(done.stdout)
        except ValueError:
            raise AssertionError(f"ansible-playbook gave no JSON:\n{self.last_output[-3000:]}") from None
        return [task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]]

    def run(self, module: str, check: bool = False, diff: bool = False, **args) -> dict:
        return self.play([{f"baseful.branching.{module}": args}], check=check, diff=diff)[0]


@pytest.fixture
def workdir(tmp_path_factory) -> Path:
    # Short path: it ends up in container mounts and in messages.
    path = Path(f"/tmp/bf-it{WORKER}-{secrets.token_hex(3)}")
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def placement(workdir) -> dict:
    return {"state_dir": str(workdir / "state"), "port_range": PORT_RANGE}


@pytest.fixture
def ansible(workdir, placement, docker_client) -> Ansible:
    runner = Ansible(workdir, placement)
    yield runner
    _remove_containers_under(docker_client, str(workdir))


XFS_WITH_REFLINKS = ["mkfs.xfs", "-q", "-m", "reflink=1"]
BTRFS = ["mkfs.btrfs", "-q", "-f"]
EXT4 = ["mkfs.ext4", "-q", "-F"]


@contextmanager
def loop_filesystem(mount: Path, size: str, mkfs: List[str], client, containers_under: str) -> Iterator[Path]:
    """A filesystem made by `mkfs` in a loop file of `size` under /var/tmp, mounted at `mount` for the
    body. On the way out the containers whose mounts come from `containers_under` are removed first
    (they hold the filesystem busy), then it is unmounted and its file deleted."""
    image = Path(f"/var/tmp/bf-loop-{secrets.token_hex(3)}.img")
    mount.mkdir(parents=True)
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run([*mkfs, str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        _remove_containers_under(client, containers_under)
        subprocess.run(["umount", str(mount)], check=True)
        image.unlink()


@pytest.fixture
def on_xfs(workdir, placement, docker_client) -> Ansible:
    """The test's Ansible with its data_root on a reflink-capable XFS filesystem in a loop file, removed after it."""
    with loop_filesystem(workdir / "xfs", "3G", XFS_WITH_REFLINKS, docker_client, str(workdir)) as mount:
        yield Ansible(workdir, dict(placement, data_root=str(mount)))


def _remove_containers_under(client, root: str) -> None:
    """Removes the containers whose data or secrets come from this test's directory, whatever
    state the test left them in."""
    # ignore_removed: another worker may remove its own containers between the list and their inspection
    for container in client.containers.list(all=True, filters={"label": "managed-by=baseful"}, ignore_removed=True):
        if any(m.get("Source", "").startswith(root) for m in container.attrs.get("Mounts", [])):
            container.remove(force=True, v=True)


@pytest.fixture
def dbname() -> str:
    return f"it{secrets.token_hex(3)}"


@pytest.fixture
def database(ansible, dbname, image17) -> dict:
    """A database with a production branch holding a small inventory."""
    result = ansible.run("database", name=dbname, image=image17)
    assert not result.get("failed"), result.get("msg")
    with connect(result["branch"]["url"]) as conn:
        conn.execute("CREATE TABLE stock (product_id int PRIMARY KEY, stock_quantity int NOT NULL, "
                     "reserved_quantity int NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO stock SELECT g, 100, 0 FROM generate_series(1, 500) g")
        conn.execute("CREATE ROLE app_reader LOGIN PASSWORD 'reader-secret'")
        conn.execute("GRANT SELECT ON stock TO app_reader")
    return result


def connect(url: str):
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def query(url: str, sql: str, *args):
    with connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def snapshot(client, workdir: Path) -> dict:
    """Everything a run could change: containers, networks, files under the test directory."""
    labelled = client.containers.list(all=True, filters={"label": "managed-by=baseful"}, ignore_removed=True)
    containers = sorted((c.name, c.status) for c in labelled
                        if any(m.get("Source", "").startswith(str(workdir)) for m in c.attrs.get("Mounts", [])))
    files = {}
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and "/data/" not in str(path) and not path.name.startswith("play-") \
                and not path.name.endswith((".lock", "-wal", "-shm")):
            files[str(path)] = _content(path)
    data_dirs = sorted(str(p) for p in workdir.glob("state/data/*/*"))
    return {"containers": containers, "files": files, "data_dirs": data_dirs}


def _content(path: Path):
    """A file's bytes; for the metadata file, its rows and schema (a record made and removed again, or a
    checkpoint of SQLite's WAL, changes the file's pages but not what it holds)."""
    if path.name != "state.db":
        return path.read_bytes()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return "\n".join(db.iterdump())


@pytest.fixture(autouse=True)
def no_volume_left_behind(docker_client):
    """No container the collection makes (branch, probe, worker) may leave a Docker volume, whatever VOLUME its
    image declares: the count of volumes never grows across a test."""
    before = {v.name for v in docker_client.volumes.list()}
    yield
    grown = sorted({v.name for v in docker_client.volumes.list()} - before)
    assert not grown, f"Docker volumes left behind by this test: {grown}"


# ---------------------------------------------------------------- what parallel workers share


def _lock_file(name: str) -> int:
    return os.open(os.path.join(tempfile.gettempdir(), f"baseful-tests-{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)


@pytest.fixture(autouse=True)
def docker_daemon(request):
    """Every test shares the Docker daemon (a shared flock); one marked restarts_docker has it to itself (the
    exclusive flock): it waits for the tests the other workers are running, and holding the gate meanwhile
    keeps them from starting new ones, so it cannot starve."""
    exclusive = request.node.get_closest_marker("restarts_docker") is not None
    gate, daemon = _lock_file("gate"), _lock_file("docker")
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(daemon, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield
    finally:
        os.close(daemon)
        os.close(gate)


@pytest.fixture
def crontab_to_itself():
    """Root's crontab, for a test that changes it and compares it: one such test at a time."""
    lock = _lock_file("crontab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


class ContainerAudit:
    """Whatever the tests do, the run as a whole must leave no container it made. Counted in the process that
    runs the session (under xdist, the controller, before the first worker starts and after the last ends),
    so one worker's running containers are never taken for another's leftovers."""

    def pytest_sessionstart(self, session):
        self.before = None if hasattr(session.config, "workerinput") else _container_ids()

    def pytest_sessionfinish(self, session):
        if self.before is None:
            return
        left = [f"{c.name} ({c.image.tags or c.attrs['Config']['Image']})"
                for c in docker.from_env().containers.list(all=True, ignore_removed=True) if c.id not in self.before]
        if left:
            session.config.pluginmanager.get_plugin("terminalreporter").write_line(
                f"FAILED: containers left behind by the suite: {left}", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _container_ids() -> set:
    return {c.id for c in docker.from_env().containers.list(all=True, ignore_removed=True)}


FIRST = ("test_bad_input.py",)  # the longest tests, started first so that no worker is left with one at the end


def pytest_collection_modifyitems(items):
    """The longest first; then the rest; then the tests that wait for a turn (root's crontab, which the
    bad-input matrix holds for minutes; the Docker daemon to itself), when there is least to wait for."""
    def place(item) -> int:
        if item.path.name in FIRST:
            return 0
        if item.get_closest_marker("restarts_docker"):
            return 3
        return 2 if "crontab_to_itself" in getattr(item, "fixturenames", ()) else 1
    items.sort(key=place)  # stable: the rest keep their order


def pytest_configure(config):
    # This conftest serves the reliability suite too (it imports this function): one audit per run.
    if not config.pluginmanager.has_plugin("baseful-container-audit"):
        config.pluginmanager.register(ContainerAudit(), "baseful-container-audit")
    config.addinivalue_line("markers", "restarts_docker: the test restarts the Docker daemon; it runs alone")
