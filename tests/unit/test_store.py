"""The metadata file: migrations, port reservation, the one default, permissions, read-only, locks.

Real SQLite files and real flocks in tmp_path; several tests use real processes (fork) because the
guarantees are about processes racing, which one process cannot show.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, replace

import pytest

from ansible_collections.baseful.branching.plugins.module_utils.errors import (
    BranchingError,
)
from ansible_collections.baseful.branching.plugins.module_utils.locks import host_lock
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    RESETTING,
    RUNNING,
    BranchRecord,
    DatabaseRecord,
)
from ansible_collections.baseful.branching.plugins.module_utils.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from ansible_collections.baseful.branching.plugins.module_utils.store import Store

FORK = multiprocessing.get_context("fork")
PORTS = range(54320, 54340)


def database(name: str = "inventory") -> DatabaseRecord:
    return DatabaseRecord(name=name, image="postgres:17", pg_major=17, user="postgres",
                          password_file=f"/state/secrets/{name}.password", created_at="2024-01-01T00:00:00+00:00")


def branch(name: str, db: str = "inventory", **values) -> BranchRecord:
    base = {"database": db, "name": name, "status": CREATING, "is_default": False, "protected": False,
            "host": "127.0.0.1", "port": 0, "container_name": f"baseful-{db}-{name}-abc123",
            "data_dir": f"/data/{db}/{name}", "created_at": "2024-01-01T00:00:00+00:00"}
    return BranchRecord(**{**base, **values})


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "state")


@pytest.fixture
def store(state_dir):
    opened = Store(state_dir)
    opened.add_database(database())
    yield opened
    opened.close()


def user_version(path: str) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA user_version").fetchone()[0]
    finally:
        connection.close()


def tables(connection: sqlite3.Connection) -> set:
    return {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}


# ------------------------------------------------------------------ migrations

def test_new_store_is_migrated_to_the_current_schema(state_dir):
    store = Store(state_dir)
    assert SCHEMA_VERSION >= 1
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {"databases", "branches", "one_default_per_database"} <= tables(store.db)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity() == "ok"
    store.close()


def test_migrating_an_up_to_date_file_is_a_no_op(state_dir):
    first = Store(state_dir)
    first.add_database(database())
    first.reserve_branch(branch("production"), PORTS)
    schema = sorted(r[0] for r in first.db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
    assert migrate(first.db) == SCHEMA_VERSION  # returns the version found: nothing left to do
    first.close()

    again = Store(state_dir)
    assert again.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sorted(r[0] for r in again.db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")) == schema
    assert [b.name for b in again.branches()] == ["production"]
    assert again.database("inventory") == database()
    again.close()


def test_an_empty_existing_file_is_migrated_from_version_zero(state_dir):
    os.makedirs(state_dir)
    sqlite3.connect(os.path.join(state_dir, "state.db")).close()
    assert user_version(os.path.join(state_dir, "state.db")) == 0
    store = Store(state_dir)
    assert store.branches() == []
    store.close()
    assert user_version(os.path.join(state_dir, "state.db")) == SCHEMA_VERSION


def test_a_version_1_file_keeps_its_rows_and_rules_and_learns_resetting(state_dir):
    """Files written by 0.1.0 (schema 1) are rebuilt in place: rows, the unique port and the one
    default survive, and a record can then say 'resetting'."""
    os.makedirs(state_dir)
    path = os.path.join(state_dir, "state.db")
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    old.execute("INSERT INTO databases VALUES ('inventory', 'postgres:17', 17, 'postgres', '/s/p', 't')")
    old.execute("INSERT INTO branches (database, name, status, is_default, protected, host, port, container_name, "
                "data_dir, created_at) VALUES ('inventory', 'production', 'running', 1, 1, '127.0.0.1', 54320, "
                "'baseful-inventory-production-abc123', '/d/p', 't')")
    old.commit()
    with pytest.raises(sqlite3.IntegrityError):
        old.execute("UPDATE branches SET status = 'resetting'")
    old.close()

    store = Store(state_dir)
    assert user_version(path) == SCHEMA_VERSION
    assert [(b.name, b.status, b.port, b.is_default) for b in store.branches()] == [("production", RUNNING, 54320, True)]
    store.reserve_branch(branch("dev"), [54321])
    store.update_branch("inventory", "dev", status=RESETTING)
    assert store.branch("inventory", "dev").status == RESETTING
    with pytest.raises(BranchingError):
        store.reserve_branch(branch("other"), [54320])  # the port is still unique
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("UPDATE branches SET is_default = 1 WHERE name = 'dev'")  # still one default
    assert store.integrity() == "ok"
    store.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_from_a_newer_collection_is_refused(state_dir, read_only):
    Store(state_dir).close()
    path = os.path.join(state_dir, "state.db")
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(BranchingError, match=r"^state_dir: the metadata file has schema version \d+, newer"):
        Store(state_dir, read_only=read_only)
    assert user_version(path) == SCHEMA_VERSION + 1  # left as found


def test_concurrent_first_open_waits_for_the_journal_switch(state_dir):
    """A new file is switched to WAL; SQLite refuses that switch at once (no busy wait) while another
    connection holds a write lock, as happens when several runs open a new state_dir together."""
    os.makedirs(state_dir, mode=0o700)
    path = os.path.join(state_dir, "state.db")
    sqlite3.connect(path).close()
    locked, release_after = threading.Event(), 0.3

    def hold_write_lock():
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(release_after)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    assert locked.wait(5)
    started = time.monotonic()
    try:
        store = Store(state_dir)
    finally:
        holder.join()
    assert time.monotonic() - started >= release_after * 0.5  # it waited rather than failed
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


# ------------------------------------------------------------------ permissions and read-only

def test_state_dir_and_file_are_private(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o755)
    os.chmod(state_dir, 0o755)  # an existing, too open directory is tightened
    old_umask = os.umask(0o022)
    try:
        Store(str(state_dir)).close()
    finally:
        os.umask(old_umask)
    for directory in (state_dir, state_dir / "locks", state_dir / "secrets"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory
    assert stat.S_IMODE(os.stat(state_dir / "state.db").st_mode) == 0o600


def test_read_only_store_on_a_missing_state_dir_creates_nothing(tmp_path):
    state_dir = tmp_path / "absent" / "state"
    store = Store(str(state_dir), read_only=True)
    assert store.databases() == []
    assert store.branches() == []
    assert store.default_branch("inventory") is None
    with store.lock("inventory"):
        pass
    store.close()
    assert not (tmp_path / "absent").exists()


def test_read_only_store_reads_an_existing_file_and_never_writes_it(store, state_dir):
    store.reserve_branch(branch("production", status=RUNNING, is_default=True), PORTS)
    store.close()
    before = set(os.listdir(state_dir))
    with open(os.path.join(state_dir, "state.db"), "rb") as handle:
        content = handle.read()
    reader = Store(state_dir, read_only=True)
    assert [b.name for b in reader.branches("inventory")] == ["production"]
    assert reader.default_branch("inventory") == "production"
    # check mode writes (adoption) go to the in-memory copy only
    reader.add_database(database("other"))
    assert [d.name for d in reader.databases()] == ["inventory", "other"]
    with reader.lock("inventory"):
        pass
    reader.close()
    assert not os.listdir(os.path.join(state_dir, "locks"))  # no lock file taken read-only
    assert {"state.db", "locks", "secrets"} <= before
    with open(os.path.join(state_dir, "state.db"), "rb") as handle:
        assert handle.read() == content
    assert [d.name for d in Store(state_dir).databases()] == ["inventory"]


# ------------------------------------------------------------------ records

def test_records_round_trip(store):
    record = branch("feature", status=RUNNING, protected=True, parent="production", copy_mode="schema",
                    copy_method="dump", ttl_seconds=60, expires_at="2024-01-01T00:01:00+00:00", container_id="c0ffee")
    record = store.reserve_branch(record, [54330])
    assert store.branch("inventory", "feature") == record
    store.update_branch("inventory", "feature", status="stopped", ttl_seconds=None)
    updated = store.branch("inventory", "feature")
    assert (updated.status, updated.ttl_seconds) == ("stopped", None)
    assert asdict(updated) == dict(asdict(record), status="stopped", ttl_seconds=None)
    store.remove_branch("inventory", "feature")
    assert store.branch("inventory", "feature") is None


def test_branches_are_listed_default_first(store):
    store.add_database(database("billing"))
    for name in ("beta", "alpha", "production"):
        store.reserve_branch(branch(name), PORTS)
    store.reserve_branch(branch("production", db="billing", container_name="c-billing"), PORTS)
    store.set_default("inventory", "production")
    assert [b.name for b in store.branches("inventory")] == ["production", "alpha", "beta"]
    assert [(b.database, b.name) for b in store.branches()] == [
        ("billing", "production"), ("inventory", "production"), ("inventory", "alpha"), ("inventory", "beta")]


def test_removing_a_database_removes_its_branches(store):
    store.add_database(database("billing"))
    store.reserve_branch(branch("production"), PORTS)
    store.reserve_branch(branch("production", db="billing", container_name="c-billing"), PORTS)
    store.remove_database("inventory")
    assert store.database("inventory") is None
    assert [(b.database, b.name) for b in store.branches()] == [("billing", "production")]


def test_a_branch_needs_its_database(store):
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.reserve_branch(branch("orphan", db="nosuch"), PORTS)


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as db:
        db.execute("DELETE FROM databases")
        raise RuntimeError("boom")
    assert store.database("inventory") == database()


# ------------------------------------------------------------------ ports

def test_reserve_branch_hands_out_distinct_ports_skipping_taken_ones(store):
    first = store.reserve_branch(branch("a"), PORTS)
    second = store.reserve_branch(branch("b"), PORTS)
    assert (first.port, second.port) == (54320, 54321)
    store.remove_branch("inventory", "a")
    assert store.reserve_branch(branch("c"), PORTS).port == 54320  # a freed port is reused
    assert store.reserve_branch(branch("d"), [54321, 54322, 54325]).port == 54322
    assert sorted(store.used_ports()) == [54320, 54321, 54322]
    assert store.branch("inventory", "d").status == CREATING


def test_reserve_branch_fails_clearly_when_the_range_is_full(store):
    store.reserve_branch(branch("a"), [54320])
    with pytest.raises(BranchingError, match=r"^port_range: no free port is left"):
        store.reserve_branch(branch("b"), [54320])
    assert store.branch("inventory", "b") is None


def test_reserve_branch_does_not_mistake_a_duplicate_name_for_a_taken_port(store):
    store.reserve_branch(branch("a"), PORTS)
    with pytest.raises(sqlite3.IntegrityError, match="branches.database, branches.name"):
        store.reserve_branch(branch("a", container_name="other"), PORTS)
    assert store.used_ports() == [54320]


def _reserve_in_child(state_dir: str, index: int, barrier, results) -> None:
    barrier.wait(10)
    child = Store(state_dir)
    if index == 0 and child.database("inventory") is None:
        child.add_database(database())
    deadline = time.monotonic() + 10
    while child.database("inventory") is None and time.monotonic() < deadline:
        time.sleep(0.005)
    record = child.reserve_branch(branch(f"b{index}"), PORTS)
    results.put((index, record.port))
    child.close()


@pytest.mark.parametrize("trial", range(4))
def test_parallel_processes_never_share_a_port(tmp_path, trial):
    """Eight processes open a brand-new state_dir at the same moment and each reserve a port."""
    state_dir = str(tmp_path / "state")
    barrier, results = FORK.Barrier(8), FORK.Queue()
    workers = [FORK.Process(target=_reserve_in_child, args=(state_dir, i, barrier, results)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:  # the queue holds a few bytes: joining before reading cannot block
        worker.join(30)
    assert [w.exitcode for w in workers] == [0] * 8
    reported = dict(results.get(timeout=5) for _worker in workers)
    assert sorted(reported.values()) == list(range(54320, 54328))
    store = Store(state_dir)
    assert sorted(store.used_ports()) == sorted(reported.values())
    assert {b.name: b.port for b in store.branches("inventory")} == {f"b{i}": p for i, p in reported.items()}
    store.close()


# ------------------------------------------------------------------ the one default

def test_set_default_leaves_exactly_one_default(store):
    for name in ("production", "feature", "staging"):
        store.reserve_branch(branch(name), PORTS)
    store.set_default("inventory", "production")
    for name in ("feature", "staging", "staging", "production"):
        store.set_default("inventory", name)
        assert store.default_branch("inventory") == name
        flags = {b.name: b.is_default for b in store.branches("inventory")}
        assert [n for n, is_default in flags.items() if is_default] == [name]


def test_defaults_are_per_database(store):
    store.add_database(database("billing"))
    store.reserve_branch(branch("production"), PORTS)
    store.reserve_branch(branch("production", db="billing", container_name="c-billing"), PORTS)
    store.set_default("inventory", "production")
    store.set_default("billing", "production")
    assert store.default_branch("inventory") == store.default_branch("billing") == "production"


def test_set_default_to_an_unknown_branch_is_refused_and_keeps_the_old_default(store):
    store.reserve_branch(branch("production"), PORTS)
    store.set_default("inventory", "production")
    with pytest.raises(BranchingError, match="branch 'nosuch' of database 'inventory' does not exist"):
        store.set_default("inventory", "nosuch")
    assert store.default_branch("inventory") == "production"


def test_the_schema_refuses_two_defaults(store):
    store.reserve_branch(branch("production", is_default=True), PORTS)
    with pytest.raises(sqlite3.IntegrityError, match="branches.database"):
        store.reserve_branch(branch("feature", is_default=True), PORTS)
    store.reserve_branch(branch("feature"), PORTS)
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("UPDATE branches SET is_default = 1 WHERE name = 'feature'")
    assert store.default_branch("inventory") == "production"
    assert store.db.execute("SELECT count(*) FROM branches WHERE is_default = 1").fetchone()[0] == 1


def test_the_schema_refuses_unknown_statuses(store):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        store.reserve_branch(branch("x", status="missing"), PORTS)


# ------------------------------------------------------------------ locks

def refused(store: Store, key: str, shared: bool = False, timeout: float = 0.1) -> BranchingError:
    """Tries the lock; returns the error that refused it, fails the test if it was granted."""
    try:
        with store.lock(key, shared=shared, timeout=timeout):
            pass
    except BranchingError as error:
        return error
    pytest.fail(f"the lock on {key} was granted while another holder has it")


def granted(store: Store, key: str, shared: bool = False, timeout: float = 0.1) -> None:
    with store.lock(key, shared=shared, timeout=timeout):
        pass


def test_an_exclusive_lock_blocks_a_second_taker(store):
    with store.lock("inventory/feature"):
        assert os.path.exists(os.path.join(store.lock_dir, "inventory@feature.lock"))
        started = time.monotonic()
        error = refused(store, "inventory/feature", timeout=0.2)
        assert time.monotonic() - started >= 0.2  # it waited for the timeout before giving up
        assert str(error).startswith("timed out after 0s waiting for the lock on inventory/feature")
        granted(store, "inventory/other")  # other keys are independent
    granted(store, "inventory/feature")  # released on exit


def test_shared_locks_coexist_and_exclude_an_exclusive_one(store):
    with store.lock("inventory", shared=True), store.lock("inventory", shared=True, timeout=0.2):
        assert "timed out" in str(refused(store, "inventory"))
    with store.lock("inventory"):
        assert "timed out" in str(refused(store, "inventory", shared=True))


def test_held_tells_whether_a_live_holder_has_the_lock_without_taking_it_for_long(store):
    assert store.held("inventory/feature") is False  # never locked: no lock file
    with store.lock("inventory/feature"):
        assert store.held("inventory/feature") is True
        assert Store(store.state_dir, read_only=True).held("inventory/feature") is True
        assert store.held("inventory/other") is False
    assert store.held("inventory/feature") is False
    granted(store, "inventory/feature")  # the probe left nothing held


def test_a_lock_is_released_when_the_body_raises(store):
    with pytest.raises(ValueError), store.lock("inventory"):
        raise ValueError("boom")
    granted(store, "inventory")


def _hold_lock(state_dir: str, key: str, held, release) -> None:
    child = Store(state_dir)
    with child.lock(key):
        held.set()
        release.wait(30)


def test_a_lock_held_by_another_process(store, state_dir):
    held, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(state_dir, "inventory", held, release))
    holder.start()
    try:
        assert held.wait(10)
        assert str(refused(store, "inventory", timeout=0.2)).endswith("another run is working on it")
        release.set()
        holder.join(10)
        assert holder.exitcode == 0
        granted(store, "inventory", timeout=2)
    finally:
        release.set()
        holder.join(10)


def test_the_kernel_drops_the_lock_of_a_killed_process(store, state_dir):
    held, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(state_dir, "inventory", held, release))
    holder.start()
    assert held.wait(10)
    with pytest.raises(BranchingError), store.lock("inventory", timeout=0.1):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert holder.exitcode == -signal.SIGKILL
    with store.lock("inventory", timeout=2):
        pass


def test_the_host_lock_is_one_for_every_state_dir_and_user(tmp_path, monkeypatch):
    """The lock Docker-wide work takes (the network): another process waits while it is held, and a lock file
    someone else made, read-only to us, serves as well. (The other process is a new program, not a fork: a
    fork would share this process's lock.)"""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    taker = ("import sys; sys.path[:0] = sys.argv[2:]; "
             "from ansible_collections.baseful.branching.plugins.module_utils.locks import host_lock\n"
             "with host_lock(sys.argv[1]): print('taken')")
    try:
        key = f"network-test-{os.getpid()}"
        with host_lock(key):
            waiting = subprocess.Popen([sys.executable, "-c", taker, key, *sys.path], stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            assert waiting.poll() is None  # held here, so the other process waits
        assert waiting.communicate(timeout=10)[0] == "taken\n"
        path = tmp_path / f"baseful-{key}.lock"
        path.chmod(0o444)
        with host_lock(key):
            pass
    finally:
        tempfile.tempdir = None


def test_slots_admit_that_many_holders_and_make_the_next_wait(tmp_path):
    import threading

    first, second = Store(str(tmp_path / "state")), Store(str(tmp_path / "state"))
    with first.slot("inventory/production#physical", 2) as one, second.slot("inventory/production#physical", 2) as two:
        assert {one, two} == {0, 1}
        third = Store(str(tmp_path / "state"))
        with pytest.raises(BranchingError, match="timed out after 0s waiting for one of 2 copy slots"):
            with third.slot("inventory/production#physical", 2, timeout=0.3):
                pass
    got = []
    holder = Store(str(tmp_path / "state"))
    with holder.slot("k", 1):
        waiter = threading.Thread(target=lambda: got.append(Store(str(tmp_path / "state")).slot("k", 1).__enter__()))
        waiter.start()
        waiter.join(0.3)
        assert got == []  # still waiting while the only slot is held
    waiter.join(5)
    assert got == [0]


def test_marking_a_database_deleting_marks_all_its_branches_and_no_other(store):
    store.add_database(database("other"))
    for name, db in (("production", "inventory"), ("dev", "inventory"), ("production", "other")):
        store.reserve_branch(branch(name, db, status="running"), PORTS)
    store.mark_database_deleting("inventory")
    assert sorted((b.database, b.name, b.status) for b in store.branches()) == [
        ("inventory", "dev", "deleting"), ("inventory", "production", "deleting"), ("other", "production", "running")]


# ------------------------------------------------------------------ schema 3, damaged files, the mirror

def test_a_version_2_file_learns_database_status_and_a_store_id(state_dir):
    os.makedirs(state_dir)
    path = os.path.join(state_dir, "state.db")
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.executescript(MIGRATIONS[1] + "PRAGMA user_version = 2;")
    old.execute("INSERT INTO databases VALUES ('inventory', 'postgres:17', 17, 'postgres', '/s/p', 't')")
    old.commit()
    old.close()
    store = Store(state_dir)
    assert store.database("inventory").status == "ready"
    assert len(store.store_id) == 32
    store.set_database_status("inventory", "deleting")
    assert store.database("inventory").status == "deleting"
    with pytest.raises(sqlite3.IntegrityError):
        store.set_database_status("inventory", "bogus")
    store.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated mid-page"])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_damaged_file_is_refused_and_left_as_found(state_dir, damage, read_only):
    store = Store(state_dir)
    store.add_database(database())
    for number in range(200):  # enough rows for several pages
        store.reserve_branch(branch(f"b{number}"), [55000 + number])
    store.close()
    path = os.path.join(state_dir, "state.db")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(path, "rb") as handle:
        content = handle.read()
    damaged = (content[:100] + os.urandom(len(content) - 100)) if damage == "garbage" else content[:len(content) // 2 + 123]
    with open(path, "wb") as handle:
        handle.write(damaged)
    with pytest.raises(BranchingError, match=r"^state_dir: .*state\.db is not readable metadata .*nothing was changed"):
        Store(state_dir, read_only=read_only)
    with open(path, "rb") as handle:
        assert handle.read() == damaged


class RecordingMirror:
    def __init__(self):
        self.calls = []

    def database_changed(self, record, store_id):
        self.calls.append(("database", record.name, record.status, store_id))

    def database_removed(self, name):
        self.calls.append(("database_removed", name))

    def branch_changed(self, record):
        self.calls.append(("branch", record.name, record.status, record.is_default))

    def branch_removed(self, database, name):
        self.calls.append(("branch_removed", name))


def test_every_committed_change_reaches_the_mirror(state_dir):
    mirror = RecordingMirror()
    store = Store(state_dir, mirror=mirror)
    store.add_database(database())
    store.reserve_branch(branch("production", status=RUNNING, is_default=True), [54320])
    store.reserve_branch(branch("dev", status=RUNNING), [54321])
    store.update_branch("inventory", "dev", status="stopped")
    store.set_default("inventory", "dev")
    store.remove_branch("inventory", "production")
    store.mark_database_deleting("inventory")
    store.remove_database("inventory")
    sid = store.store_id
    assert mirror.calls == [
        ("database", "inventory", "ready", sid),
        ("branch", "production", RUNNING, True),
        ("branch", "dev", RUNNING, False),
        ("branch", "dev", "stopped", False), ("branch", "dev", "stopped", False),  # settling: ahead, then after
        ("branch", "production", RUNNING, False), ("branch", "dev", "stopped", True),
        ("branch_removed", "production"),
        ("database", "inventory", "deleting", sid), ("branch", "dev", "deleting", True),
        ("branch_removed", "dev"), ("database_removed", "inventory"),
    ]


def test_a_change_that_settles_a_record_reaches_the_mirror_before_its_commit(state_dir):
    """Killed between the two, the manifest is a step ahead (settled), never behind (still in progress)."""
    seen = []

    class CommitWatcher(RecordingMirror):
        def branch_changed(self, record):
            committed = Store(state_dir, read_only=True).branch(record.database, record.name)
            seen.append((record.status, committed.status if committed else None))

        def database_changed(self, record, store_id):
            committed = Store(state_dir, read_only=True).database(record.name)
            seen.append((record.status, committed.status if committed else None))

    store = Store(state_dir, mirror=CommitWatcher())
    store.add_database(replace(database(), status="creating"))
    store.reserve_branch(branch("production", status="creating", is_default=True), [54320])
    seen.clear()
    store.update_branch("inventory", "production", status=RUNNING)
    store.set_database_status("inventory", "ready")
    store.update_branch("inventory", "production", status="deleting")
    assert seen == [(RUNNING, "creating"), (RUNNING, RUNNING), ("ready", "creating"), ("ready", "ready"),
                    ("deleting", "deleting")]  # a destructive mark is mirrored only once committed


def test_a_read_only_store_tells_no_mirror(state_dir):
    Store(state_dir).close()
    mirror = RecordingMirror()
    reader = Store(state_dir, read_only=True, mirror=mirror)
    reader.add_database(database())
    assert mirror.calls == []
