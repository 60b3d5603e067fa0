"""Faults from outside the module: a postmaster killed from the host, the Docker daemon restarted, a
container or a data directory removed by hand, a port taken by another process, a full disk."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time

import pytest

from conftest import EXT4, Ansible, connect, loop_filesystem, query, snapshot

CHECKSUM = "SELECT count(*), sum(stock_quantity) FROM stock"


def wait_until(predicate, timeout: float = 120.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 (the daemon or server is on its way back)
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true after {timeout:.0f}s: {predicate.__doc__ or predicate}")


def accepts(url: str) -> bool:
    """the server accepts connections"""
    return query(url, "SELECT 1") == [(1,)]


def test_postmaster_killed_from_the_host_comes_back_with_its_data(ansible, database, dbname, docker_client, tally):
    branch = ansible.run("branch", database=dbname, name="victim")["branch"]
    with connect(branch["url"]) as conn:
        conn.execute("UPDATE stock SET stock_quantity = 7 WHERE product_id <= 100")  # committed
    expected = query(branch["url"], CHECKSUM)
    container = docker_client.containers.get(branch["container_id"])
    restarts = container.attrs["RestartCount"]
    tally.record("faults", tried=1, held=0)
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)  # the postmaster is the container's PID 1

    def restarted():
        """the container was restarted by its policy and serves again"""
        container.reload()
        return container.attrs["RestartCount"] > restarts and container.status == "running" and accepts(branch["url"])
    wait_until(restarted)
    assert query(branch["url"], CHECKSUM) == expected
    info = ansible.run("branch_info", database=dbname, name="victim")["branches"][0]
    assert (info["status"], info["port"]) == ("running", branch["port"])
    tally.record("faults", tried=0, held=1)


def test_a_data_directory_removed_by_hand_is_an_error_not_an_empty_database(ansible, database, dbname, docker_client,
                                                                            tally):
    branch = ansible.run("branch", database=dbname, name="lost", state="stopped")["branch"]
    tally.record("faults", tried=1, held=0)
    shutil.rmtree(branch["data_dir"])
    info = ansible.run("branch_info", database=dbname, name="lost")["branches"][0]
    assert info["data_dir_exists"] is False
    for state in ("started", "present"):
        refused = ansible.run("branch", database=dbname, name="lost", state=state)
        assert refused["failed"] and refused["msg"] == (
            f"name: branch 'lost' has lost its data directory {branch['data_dir']}; it cannot be recovered: "
            "delete it (state: absent) or reset it (reset: true)")
    assert not os.path.exists(branch["data_dir"]), "an empty data directory was made in its place"
    assert docker_client.containers.get(branch["container_id"]).status == "exited"
    reset = ansible.run("branch", database=dbname, name="lost", reset=True)
    assert reset["changed"] and query(reset["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]
    tally.record("faults", tried=0, held=1)


def test_a_port_taken_by_another_process_is_skipped_at_allocation(ansible, database, dbname, placement, tally):
    low, high = (int(p) for p in placement["port_range"].split("-"))
    used = {b["port"] for b in ansible.run("branch_info")["branches"]}
    holders = []
    try:
        for port in range(low, high + 1):  # hold every free port but the last one of the range
            if port in used:
                continue
            holder = socket.socket()
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Docker binds: TIME_WAIT is no obstacle
            try:
                holder.bind(("127.0.0.1", port))
            except OSError:
                holder.close()
                continue
            holder.listen()
            holders.append(holder)
        last = holders.pop()
        last_port = last.getsockname()[1]
        last.close()
        tally.record("faults", tried=1, held=0)
        made = ansible.run("branch", database=dbname, name="squeezed")
        assert made["branch"]["port"] == last_port, made.get("msg")
        assert accepts(made["branch"]["url"])
        tally.record("faults", tried=0, held=1)
    finally:
        for holder in holders:
            holder.close()


def test_a_pinned_port_taken_before_start_is_one_sentence_naming_the_port(ansible, database, dbname, tally):
    branch = ansible.run("branch", database=dbname, name="parked", state="stopped")["branch"]
    tally.record("faults", tried=1, held=0)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT just after the stop
        squatter.bind(("127.0.0.1", branch["port"]))
        squatter.listen()
        refused = ansible.run("branch", database=dbname, name="parked", state="started")
        assert refused["failed"] and refused["msg"] == (
            f"port: {branch['port']} is taken by another process on the host, so the branch cannot start on it; "
            "stop that process or move the branch with port: <another free port>")
        info = ansible.run("branch_info", database=dbname, name="parked")["branches"][0]
        assert (info["status"], info["port"]) == ("stopped", branch["port"])
    started = ansible.run("branch", database=dbname, name="parked", state="started")
    assert started["changed"] and accepts(started["branch"]["url"])
    tally.record("faults", tried=0, held=1)


@pytest.fixture
def small_root(workdir, docker_client):
    """A 400 MB ext4 filesystem in a loop file: room for a source (~210 MB with its WAL), not for a copy of it."""
    with loop_filesystem(workdir / "small", "400M", EXT4, docker_client, str(workdir)) as mount:
        yield mount


@pytest.mark.parametrize("method", ["physical", "dump"])
def test_disk_full_during_a_copy_is_one_sentence_and_leaves_nothing(workdir, placement, small_root, image17, dbname,
                                                                    docker_client, method, tally):
    ansible = Ansible(workdir, dict(placement, data_root=str(small_root / "data")))
    production = ansible.run("database", name=dbname, image=image17)["branch"]
    with connect(production["url"]) as conn:
        conn.execute("CREATE TABLE stock AS SELECT g AS product_id, g % 97 AS stock_quantity, repeat('x', 200) AS pad "
                     "FROM generate_series(1, 400000) g")  # ~92 MB of rows, as much WAL again
        conn.execute("CHECKPOINT")
    expected = query(production["url"], CHECKSUM)
    before = snapshot(docker_client, workdir)
    tally.record("faults", tried=1, held=0)
    failed = ansible.run("branch", database=dbname, name="too-big", copy_method=method)
    assert failed["failed"]
    assert failed["msg"].startswith(f"data_root: {small_root / 'data'} ran out of space while branch 'too-big' was "
                                    "being copied ("), failed["msg"]
    assert failed["msg"].endswith("free space there or choose another data_root")
    assert snapshot(docker_client, workdir) == before, "the failed copy left something behind"
    assert not (small_root / "data" / dbname / "too-big").exists()
    assert query(production["url"], CHECKSUM) == expected
    with connect(production["url"]) as conn:
        conn.execute("INSERT INTO stock VALUES (0, 0, 'the source still takes writes')")
    tally.record("faults", tried=0, held=1)
