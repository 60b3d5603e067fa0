"""snapshot, physical and dump: each makes a correct branch; auto picks each where it should;
a branch taken while pgbench writes to the source recovers, passes pg_amcheck and holds every
transaction committed before it began. Snapshot runs on XFS and btrfs loop filesystems (reflinks)."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import BTRFS, Ansible, loop_filesystem, query

CHECKSUM = "SELECT count(*), sum(stock_quantity), md5(string_agg(product_id::text || ':' || stock_quantity, ',' " \
           "ORDER BY product_id)) FROM stock"


@pytest.fixture
def on_btrfs(workdir, placement, docker_client) -> Ansible:
    with loop_filesystem(workdir / "btrfs", "3G", BTRFS, docker_client, str(workdir)) as mount:
        yield Ansible(workdir, dict(placement, data_root=str(mount)))


@pytest.fixture
def on_reflinks(request) -> Ansible:
    """The data root of the test's filesystem parameter: 'xfs' or 'btrfs'."""
    return request.getfixturevalue(f"on_{request.param}")


def make_database(ansible: Ansible, name: str, image: str) -> dict:
    production = ansible.run("database", name=name, image=image)["branch"]
    query_many(production["url"], [
        "CREATE TABLE stock (product_id int PRIMARY KEY, stock_quantity int NOT NULL)",
        "INSERT INTO stock SELECT g, g % 97 FROM generate_series(1, 20000) g",
    ])
    return production


def query_many(url: str, statements) -> None:
    from conftest import connect
    with connect(url) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.mark.parametrize("on_reflinks", ["xfs", "btrfs"], indirect=True)
def test_auto_picks_snapshot_on_reflink_and_every_method_copies_correctly(on_reflinks, dbname, image17):
    production = make_database(on_reflinks, dbname, image17)
    expected = query(production["url"], CHECKSUM)
    made = {}
    for name, method in (("auto-all", None), ("snap", "snapshot"), ("phys", "physical"), ("logical", "dump")):
        args = {"copy_method": method} if method else {}
        result = on_reflinks.run("branch", database=dbname, name=name, **args)
        assert result.get("changed"), result.get("msg")
        made[name] = result
        assert query(result["branch"]["url"], CHECKSUM) == expected, name
    assert made["auto-all"]["branch"]["copy_method"] == "snapshot"
    assert made["snap"]["copy_result"]["source_pause_ms"] is not None
    assert made["snap"]["copy_result"]["bytes"] > 0
    assert [made[n]["copy_result"]["method"] for n in ("snap", "phys", "logical")] == ["snapshot", "physical", "dump"]
    schema = on_reflinks.run("branch", database=dbname, name="structure", copy="schema")
    assert schema["branch"]["copy_method"] == "dump"


def test_auto_picks_physical_without_reflinks_and_refuses_snapshot(ansible, database, dbname):
    assert ansible.run("branch", database=dbname, name="auto-copy")["branch"]["copy_method"] == "physical"
    refused = ansible.run("branch", database=dbname, name="snap", copy_method="snapshot")
    assert refused["failed"] and refused["msg"] == (
        "copy_method: 'snapshot' cannot serve this copy (data_root does not support reflinks, as XFS with reflink=1 "
        "and btrfs do); "
        "use one of: auto, physical, dump")


def test_a_seed_from_another_major_version_is_a_dump(ansible, dbname, image15, image17):
    # Within a database every branch runs the database's image, so physical and snapshot never meet another
    # major (their refusal across majors is a unit test of choose_method); across majors only a URL seed
    # exists, and it is served by dump, with the rows arriving.
    production = ansible.run("database", name=dbname, image=image15)["branch"]
    query_many(production["url"], ["CREATE TABLE upgraded AS SELECT g FROM generate_series(1, 42) g"])
    seeded = ansible.run("database", name=f"{dbname}x", image=image17, source_url=production["url"])
    assert seeded["copy_result"]["method"] == "dump" and seeded["database"]["pg_major"] == 17
    assert query(seeded["branch"]["url"], "SELECT count(*) FROM upgraded") == [(42,)]


def test_stopped_source_is_copied_by_snapshot_and_physical(on_xfs, dbname, image17):
    production = make_database(on_xfs, dbname, image17)
    expected = query(production["url"], CHECKSUM)
    on_xfs.run("branch", database=dbname, name="base")
    assert on_xfs.run("branch", database=dbname, name="base", state="stopped")["changed"]
    for name, method in (("from-stopped-snap", "snapshot"), ("from-stopped-phys", "physical")):
        result = on_xfs.run("branch", database=dbname, name=name, source="base", copy_method=method)
        assert result.get("changed"), result.get("msg")
        assert result["copy_result"].get("source_pause_ms") is None
        assert query(result["branch"]["url"], CHECKSUM) == expected
    refused = on_xfs.run("branch", database=dbname, name="from-stopped-dump", source="base", copy_method="dump")
    assert refused["failed"] and refused["msg"].startswith("source: branch 'base' of database")


@pytest.mark.parametrize("on_reflinks, method", [("xfs", "snapshot"), ("xfs", "physical"), ("btrfs", "snapshot")],
                         indirect=["on_reflinks"])
def test_branch_taken_under_pgbench_load_recovers_and_holds_every_committed_transaction(
        on_reflinks, dbname, image17, docker_client, method):
    production = on_reflinks.run("database", name=dbname, image=image17)["branch"]
    source = docker_client.containers.get(production["container_id"])
    initialised = source.exec_run(["pgbench", "-i", "-s", "5", "-q", dbname], user="postgres")
    assert initialised.exit_code == 0, initialised.output.decode()[-1000:]
    load = subprocess.Popen(["docker", "exec", source.id, "su", "postgres", "-c",
                             f"pgbench -c 4 -j 2 -T 30 -n {dbname}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        subprocess.run(["sleep", "2"], check=True)
        committed_before = query(production["url"], "SELECT count(*) FROM pgbench_history")[0][0]
        assert committed_before > 0
        branch = on_reflinks.run("branch", database=dbname, name=f"under-load-{method[:4]}", copy_method=method)
        assert branch.get("changed"), branch.get("msg")
        assert load.poll() is None, "the load must still be running while the branch is taken"
    finally:
        load.terminate()
        load.wait(timeout=60)
    url = branch["branch"]["url"]
    assert query(url, "SELECT count(*) FROM pgbench_history")[0][0] >= committed_before
    balance = "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history)"
    assert query(url, balance) == [(True,)]
    target = docker_client.containers.get(branch["branch"]["container_id"])
    checked = target.exec_run(["pg_amcheck", "--install-missing", "--heapallindexed", "-U", "postgres", dbname],
                              user="postgres")
    assert checked.exit_code == 0, checked.output.decode()[-2000:]
    if method == "snapshot":
        assert branch["copy_result"]["source_pause_ms"] < 5000


def test_a_copy_runs_under_async_and_poll_and_reports_its_figures(ansible, database, dbname):
    task = {"baseful.branching.branch": {"database": dbname, "name": "in-background"}, "async": 300, "poll": 1,
            "register": "made"}
    result = ansible.play([task])[0]
    assert not result.get("failed"), result.get("msg")
    figures = result["copy_result"]
    assert figures["method"] == "physical" and figures["bytes"] > 10_000_000
    assert 0 < figures["seconds"] <= figures["ready_seconds"]
    assert query(result["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]
    dumped = ansible.run("branch", database=dbname, name="dumped", copy_method="dump")["copy_result"]
    assert dumped["method"] == "dump" and dumped["bytes"] > 10_000_000


def test_a_long_copy_shows_where_it_is_while_it_runs(ansible, database, dbname, docker_client):
    source = docker_client.containers.get(database["branch"]["container_id"])
    loaded = source.exec_run(["pgbench", "-i", "-q", "-s", "20", dbname], user="postgres")
    assert loaded.exit_code == 0, loaded.output.decode()[-500:]
    task = {"baseful.branching.branch": {"database": dbname, "name": "long", "copy_method": "dump"},
            "async": 600, "poll": 0, "register": "job"}
    job = ansible.play([task])[0]["ansible_job_id"]
    seen, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:  # what a second terminal sees while the copy runs
        branches = ansible.run("branch_info", database=dbname, name="long")["branches"]
        if branches and branches[0]["status"] != "creating":
            break
        if branches and branches[0]["copy_progress"]:
            seen.append(branches[0]["copy_progress"])
    waited = {"ansible.builtin.async_status": {"jid": job}, "register": "done", "until": "done.finished",
              "retries": 600, "delay": 1}
    finished = ansible.play([waited])[0]
    assert not finished.get("failed") and finished["branch"]["status"] == "running", finished.get("msg")
    assert finished["branch"]["copy_progress"] is None
    assert seen, "branch_info never saw the copy under way"
    assert all(p["method"] == "dump" and p["expected_bytes"] is None and p["percent"] is None for p in seen)
    assert all(p["run_alive"] for p in seen), seen
    assert any(p["copying"] and p["worker_started_at"] and p["bytes"] > 0 for p in seen), seen
