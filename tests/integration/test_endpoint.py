"""The endpoint with real PgBouncer, real servers and real clients (psycopg, pgbench): routes, SCRAM, a switch
under load with no failed transaction, reset and stop behind a stable URL, repair, removal."""

from __future__ import annotations

import re
import stat
import threading
import time
from pathlib import Path

import docker
import psycopg
import pytest

from conftest import connect, query

MARK = "CREATE TABLE whoami (branch text); INSERT INTO whoami VALUES ('{}')"


def endpoint_of(result: dict) -> dict:
    endpoint = result["database"]["endpoint"]
    assert endpoint is not None, result
    return endpoint


def branch_url(endpoint_url: str, route: str) -> str:
    return endpoint_url.rsplit("/", 1)[0] + "/" + route


def whoami(url: str) -> str:
    return query(url, "SELECT branch FROM whoami")[0][0]


def test_the_endpoint_routes_the_database_to_its_default_and_every_branch_by_name(
        ansible, database, dbname, docker_client, workdir):
    endpoint = endpoint_of(database)
    with connect(database["branch"]["url"]) as conn:
        conn.execute(MARK.format("production"))
    feature = ansible.run("branch", database=dbname, name="feature")
    assert not feature.get("failed"), feature.get("msg")
    with connect(feature["branch"]["url"]) as conn:
        conn.execute("UPDATE whoami SET branch = 'feature'")

    assert endpoint["host"] == "127.0.0.1" and endpoint["url"].endswith(f"@127.0.0.1:{endpoint['port']}/{dbname}")
    assert whoami(endpoint["url"]) == "production"
    assert feature["branch"]["endpoint_url"] == branch_url(endpoint["url"], f"{dbname}.feature")
    assert whoami(feature["branch"]["endpoint_url"]) == "feature"
    assert whoami(branch_url(endpoint["url"], f"{dbname}.production")) == "production"
    assert query(endpoint["url"], "SELECT current_database(), current_user") == [(dbname, "postgres")]
    # prepared statements pass through transaction pooling (max_prepared_statements)
    with psycopg.connect(endpoint["url"], autocommit=True, prepare_threshold=0) as conn:
        for _attempt in range(3):
            assert conn.execute("SELECT count(*) FROM stock WHERE product_id < %s", (10,)).fetchone() == (9,)
    wrong = re.sub(r"(postgresql://[^:]+:)[^@]+@", r"\1wrong@", endpoint["url"])
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        connect(wrong)

    # the container, as the image contract says
    container = docker_client.containers.get(endpoint["container_name"])
    assert re.fullmatch(rf"baseful-{dbname}-endpoint-[a-z0-9]{{6}}", container.name)
    labels = container.labels
    assert (labels["managed-by"], labels["baseful.database"], labels["baseful.role"]) == ("baseful", dbname, "endpoint")
    config = container.attrs["Config"]
    assert config["Entrypoint"] == ["pgbouncer"] and config["User"] == "999:999"
    published = [{"HostIp": "127.0.0.1", "HostPort": str(endpoint["port"])}]
    assert container.attrs["HostConfig"]["PortBindings"]["6432/tcp"] == published
    [mount] = [m for m in container.attrs["Mounts"] if m["Type"] == "bind"]
    assert mount["RW"] is False
    password = (workdir / "state" / "secrets" / f"{dbname}.password").read_text()
    assert password not in str(container.attrs)
    for name in ("pgbouncer.ini", "userlist.txt"):
        path = Path(mount["Source"]) / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == 999
        assert password not in path.read_text()
    assert password not in container.logs().decode()

    info = ansible.run("branch_info", database=dbname)
    [live] = info["endpoints"]
    assert live["status"] == "running" and live["in_sync"] is True
    assert live["routes"] == {dbname: "production", f"{dbname}.feature": "feature", f"{dbname}.production": "production"}
    assert ansible.run("database", name=dbname, image=database["database"]["image"])["changed"] is False


PGBENCH_SECONDS = 24
SWITCHES = 6


def test_a_switch_under_load_fails_no_transaction_and_new_sessions_land_on_the_new_default(
        ansible, database, dbname, docker_client):
    """pgbench through the endpoint, a new connection per transaction (-C), while the default moves back and
    forth between two branches: not one transaction fails, and each session opened after a switch is on the
    new default."""
    endpoint = endpoint_of(database)
    production = docker_client.containers.get(database["branch"]["container_name"])
    assert production.exec_run(["pgbench", "-i", "-q", "-s", "2", dbname], user="postgres").exit_code == 0
    with connect(database["branch"]["url"]) as conn:
        conn.execute(MARK.format("production"))
    feature = ansible.run("branch", database=dbname, name="feature")
    with connect(feature["branch"]["url"]) as conn:
        conn.execute("UPDATE whoami SET branch = 'feature'")

    # pgbench runs in production's image on the host network, against the endpoint's published port
    password = re.search(r"postgresql://[^:]+:([^@]+)@", endpoint["url"]).group(1)
    volumes = docker_client.images.get(database["database"]["image"]).attrs["Config"].get("Volumes") or {}
    bench = docker_client.containers.run(
        database["database"]["image"], ["pgbench", "-C", "-c", "4", "-j", "2", "-T", str(PGBENCH_SECONDS), "-n",
                                        "-h", "127.0.0.1", "-p", str(endpoint["port"]), "-U", "postgres", dbname],
        entrypoint=[], environment={"PGPASSWORD": password}, network_mode="host", detach=True,
        labels={"managed-by": "baseful-test"},  # tmpfs over the image's VOLUMEs: no anonymous volume, even for a while
        mounts=[docker.types.Mount(path, None, type="tmpfs") for path in volumes])
    pauses, landed = [], []
    try:
        time.sleep(3)
        for turn in range(SWITCHES):
            target = "feature" if turn % 2 == 0 else "production"
            switched = ansible.run("branch", database=dbname, name=target, state="default")
            assert switched["changed"] and switched["actions"] == ["set_default"], switched.get("msg")
            pauses.append(switched["switch_pause_ms"])
            landed.append((target, whoami(endpoint["url"])))
            time.sleep(1.5)
        assert bench.wait(timeout=PGBENCH_SECONDS + 60)["StatusCode"] == 0
        output = bench.logs().decode()
    finally:
        bench.remove(force=True, v=True)
    processed = int(re.search(r"number of transactions actually processed: (\d+)", output).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", output)
    assert processed > 100, output
    assert failed is None or failed.group(1) == "0", output
    assert landed == [(target, target) for target, _seen in landed]
    assert all(isinstance(pause, float) and 0 <= pause < 10_000 for pause in pauses), pauses
    again = ansible.run("branch", database=dbname, name=landed[-1][0], state="default")
    assert again["changed"] is False and "switch_pause_ms" not in again


def test_an_open_transaction_delays_a_switch_no_longer_than_its_bound_and_finishes_where_it_began(
        ansible, database, dbname):
    endpoint = endpoint_of(database)
    with connect(database["branch"]["url"]) as conn:
        conn.execute(MARK.format("production"))
    feature = ansible.run("branch", database=dbname, name="feature")
    with connect(feature["branch"]["url"]) as conn:
        conn.execute("UPDATE whoami SET branch = 'feature'")
    with psycopg.connect(endpoint["url"], connect_timeout=10) as held:  # a transaction left open by a client
        assert held.execute("SELECT branch FROM whoami").fetchone() == ("production",)
        started = time.monotonic()
        switched = ansible.run("branch", database=dbname, name="feature", state="default")
        assert switched["switch_drained"] is False and switched["switch_pause_ms"] >= 10_000
        assert time.monotonic() - started < 60
        assert held.execute("SELECT branch FROM whoami").fetchone() == ("production",)  # still where it began
        held.commit()
    assert whoami(endpoint["url"]) == "feature"


def test_reset_stop_and_start_keep_the_routes_true_behind_the_same_urls(ansible, dbname, image17_hardened, workdir):
    """With the hardened image (scram-sha-256 for every host connection): the branch's endpoint URL works
    after a reset; a stopped default branch gives clients a PgBouncer error at once; started, it serves again."""
    made = ansible.run("database", name=dbname, image=image17_hardened)
    assert not made.get("failed"), made.get("msg")
    endpoint = endpoint_of(made)
    feature = ansible.run("branch", database=dbname, name="feature")
    url = feature["branch"]["endpoint_url"]
    with connect(url) as conn:
        conn.execute("CREATE TABLE scratch (id int)")
    reset = ansible.run("branch", database=dbname, name="feature", reset=True)
    assert reset["changed"] and reset["branch"]["endpoint_url"] == url, reset.get("msg")
    assert query(url, "SELECT to_regclass('scratch') IS NULL") == [(True,)]

    ansible.run("branch", database=dbname, name="feature", state="default")
    stopped = ansible.run("branch", database=dbname, name="feature", state="stopped")
    assert stopped["changed"], stopped.get("msg")
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="branch feature is stopped, start it"):
        connect(endpoint["url"])
    assert time.monotonic() - started < 5, "a stopped default must answer at once, not after a wait"
    assert query(branch_url(endpoint["url"], f"{dbname}.production"), "SELECT 1") == [(1,)]
    assert ansible.run("branch", database=dbname, name="feature", state="started")["changed"]
    assert query(endpoint["url"], "SELECT to_regclass('scratch') IS NULL") == [(True,)]
    deleted = ansible.run("branch", database=dbname, name="production", state="default")
    assert not deleted.get("failed") and ansible.run("branch", database=dbname, name="feature", state="absent")["changed"]
    info = ansible.run("branch_info", database=dbname)["endpoints"][0]
    assert info["in_sync"] and info["routes"] == {dbname: "production", f"{dbname}.production": "production"}


def test_an_endpoint_removed_or_killed_by_hand_is_repaired_on_its_pinned_port(ansible, database, dbname, docker_client):
    endpoint = endpoint_of(database)
    image = database["database"]["image"]
    docker_client.containers.get(endpoint["container_name"]).remove(force=True)
    assert ansible.run("branch_info", database=dbname)["endpoints"][0]["status"] == "missing"
    predicted = ansible.run("database", check=True, name=dbname, image=image)
    assert predicted["actions"] == ["recreate_endpoint"]
    repaired = ansible.run("database", name=dbname, image=image)
    assert repaired["actions"] == ["recreate_endpoint"], repaired.get("msg")
    assert endpoint_of(repaired)["port"] == endpoint["port"]
    assert query(endpoint["url"], "SELECT 1") == [(1,)]

    docker_client.containers.get(endpoint["container_name"]).kill()
    killed = ansible.run("database", name=dbname, image=image)
    assert killed["actions"] == ["start_endpoint"], killed.get("msg")
    assert query(endpoint["url"], "SELECT 1") == [(1,)]
    assert ansible.run("database", name=dbname, image=image)["changed"] is False


def test_endpoint_false_removes_only_the_endpoint_and_a_missing_image_is_refused_before_anything(
        ansible, database, dbname, docker_client, workdir, image17):
    endpoint = endpoint_of(database)
    removed = ansible.run("database", name=dbname, image=image17, endpoint=False, diff=True)
    assert removed["actions"] == ["remove_endpoint"] and removed["database"]["endpoint"] is None
    assert removed["diff"]["before"]["endpoint"]["port"] == endpoint["port"] and removed["diff"]["after"]["endpoint"] is None
    assert not docker_client.containers.list(all=True, filters={"name": endpoint["container_name"]})
    assert query(database["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]
    assert ansible.run("branch", database=dbname, name="feature")["branch"]["endpoint_url"] is None

    other = f"{dbname}x"
    refused = ansible.run("database", name=other, image=image17, endpoint_image="baseful/no-such-pgbouncer:0")
    assert refused["failed"] and refused["msg"].startswith("endpoint_image: 'baseful/no-such-pgbouncer:0' is not present")
    assert "endpoint: false" in refused["msg"]
    assert not docker_client.containers.list(all=True, filters={"label": f"baseful.database={other}"})
    assert not (workdir / "state" / "data" / other).exists()
    assert not (workdir / "state" / "secrets" / f"{other}.password").exists()


def test_parallel_branch_runs_leave_every_route_in_place(ansible, database, dbname):
    """Branch runs of one database run in parallel; each writes the routes once it holds the endpoint's lock."""
    names = [f"par{n}" for n in range(3)]
    results = {}

    def make(name):
        results[name] = ansible.run("branch", database=dbname, name=name)

    threads = [threading.Thread(target=make, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not r.get("failed") for r in results.values()), results
    live = ansible.run("branch_info", database=dbname)["endpoints"][0]
    assert live["in_sync"] and set(live["routes"]) == {dbname, f"{dbname}.production"} | {f"{dbname}.{n}" for n in names}
    for name in names:
        assert query(results[name]["branch"]["endpoint_url"], "SELECT count(*) FROM stock") == [(500,)]
