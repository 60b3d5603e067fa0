"""The module killed with SIGKILL at every step of a create (for each copy method: before the copy,
in the middle of it, after it, before the record), of a reset and of a delete; then the same task run
again. It must converge to one correct branch with no stray container, data directory, lock or record,
and the source untouched.

The kill comes from the engine's injection points (plugins/module_utils/faults.py): the real module
process, run by ansible-playbook, dies by SIGKILL exactly there. Each case first checks the evidence
that the run died where it was meant to (a record still 'creating', a worker still copying, the source
still frozen, ...), so a point that is never reached fails the test instead of passing it."""

from __future__ import annotations

import fcntl
import secrets
import shutil
from pathlib import Path

import pytest

from conftest import PORT_RANGE, XFS_WITH_REFLINKS, Ansible, connect, loop_filesystem, port_in_use, query

SCALE = 20  # pgbench scale: ~300 MB, so a physical or dump copy is still running when the timer fires
SOURCE_CHECKSUM = "SELECT count(*), sum(abalance), (SELECT count(*) FROM marker) FROM pgbench_accounts"
FAULT = "BASEFUL_INJECT_FAULT"


@pytest.fixture(scope="module")
def site(docker_client, image17):
    """One XFS (reflink) data root and one loaded database for every case of the module."""
    workdir = Path(f"/tmp/bf-rf-{secrets.token_hex(3)}")
    try:
        with loop_filesystem(workdir / "xfs", "6G", XFS_WITH_REFLINKS, docker_client, str(workdir)) as mount:
            placement = {"state_dir": str(workdir / "state"), "data_root": str(mount / "data"),
                         "port_range": PORT_RANGE}
            ansible = Ansible(workdir, placement)
            name = f"rf{secrets.token_hex(3)}"
            production = ansible.run("database", name=name, image=image17)
            assert not production.get("failed"), production.get("msg")
            source = docker_client.containers.get(production["branch"]["container_id"])
            loaded = source.exec_run(["pgbench", "-i", "-q", "-s", str(SCALE), name], user="postgres")
            assert loaded.exit_code == 0, loaded.output[-500:]
            url = production["branch"]["url"]
            with connect(url) as conn:
                conn.execute("CREATE TABLE marker (note text)")
                conn.execute("INSERT INTO marker VALUES ('source')")
                conn.execute("CHECKPOINT")
            yield {"ansible": ansible, "name": name, "placement": placement, "production": production["branch"],
                   "checksum": query(url, SOURCE_CHECKSUM), "workdir": workdir}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def killed_at(site, point: str, module: str = "branch", **args) -> dict:
    """Runs the module (branch: of the site's database) with the injection point armed; it must die by SIGKILL."""
    if module == "branch":
        args = dict(database=site["name"], **args)
    task = {f"baseful.branching.{module}": args, "environment": {FAULT: point}}
    result = site["ansible"].play([task])[0]
    assert result.get("failed") and "rc" in result and result["rc"] in (-9, 137), \
        f"the module was meant to die at {point}, but: {str(result)[:600]}"
    return result


def record_of(site, name: str):
    import sqlite3
    with sqlite3.connect(f"file:{site['placement']['state_dir']}/state.db?mode=ro", uri=True) as db:
        row = db.execute("SELECT status FROM branches WHERE database = ? AND name = ?", (site["name"], name)).fetchone()
    return row[0] if row else None


def containers_of(client, site, name: str) -> list:
    return client.containers.list(all=True, filters={"label": [f"baseful.database={site['name']}", f"baseful.branch={name}"]})


def data_dir(site, name: str) -> Path:
    return Path(site["placement"]["data_root"]) / site["name"] / name


def assert_no_lock_held(site) -> None:
    for lock in Path(site["placement"]["state_dir"], "locks").iterdir():
        with open(lock, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a dead run still held it


def assert_converged(site, client, present: dict) -> None:
    """`present` maps the branch names that must exist to their port (None: any)."""
    info = site["ansible"].run("branch_info", database=site["name"])
    branches = {b["name"]: b for b in info["branches"]}
    assert set(branches) == {"production", *present}, branches.keys()
    assert all(b["status"] == "running" for b in branches.values()), [(b["name"], b["status"]) for b in branches.values()]
    for name, port in present.items():
        if port is not None:
            assert branches[name]["port"] == port
    labelled = client.containers.list(all=True, filters={"label": f"baseful.database={site['name']}"})
    servers = [c for c in labelled if c.labels["baseful.role"] == "branch"]
    assert sorted(c.labels["baseful.branch"] for c in servers) == sorted(branches), "stray or missing container"
    assert all(c.status == "running" for c in servers)
    others = [(c.labels["baseful.role"], c.status) for c in labelled if c not in servers]
    assert others == [("endpoint", "running")], f"stray or missing container: {others}"
    [endpoint] = info["endpoints"]
    assert endpoint["in_sync"], endpoint  # the routes are the records', whatever the run died doing
    database_dir = Path(site["placement"]["data_root"]) / site["name"]
    on_disk = sorted(p.name for p in database_dir.iterdir() if p.name != ".baseful")
    assert on_disk == sorted(branches), f"stray data directory: {on_disk}"
    manifests = sorted(p.stem for p in (database_dir / ".baseful" / "branches").iterdir())
    assert manifests == sorted(branches), f"manifests out of step with the branches: {manifests}"
    assert_no_lock_held(site)
    source = client.containers.get(site["production"]["container_id"])
    assert source.status == "running"
    assert query(site["production"]["url"], SOURCE_CHECKSUM) == site["checksum"], "the source changed"
    for name in present:
        assert query(branches[name]["url"], SOURCE_CHECKSUM) == site["checksum"]


def evidence(site, client, name: str, point: str, method: str) -> None:
    """Where the run died, as seen from outside."""
    status = record_of(site, name)
    containers = containers_of(client, site, name)
    workers = [c for c in containers if c.labels.get("baseful.role") == "worker"]
    source = client.containers.get(site["production"]["container_id"])
    if point in ("reset:marked", "delete:marked"):
        assert [c.labels["baseful.role"] for c in containers] == ["branch"] and data_dir(site, name).exists()
    elif point.startswith("copy@"):
        assert workers and workers[0].status == "running", "the kill came after the copy, not in it"
    elif point == "copy" and method == "snapshot":
        assert source.status == "paused", "the kill came outside the source's freeze"
    elif point == "create:reserved":
        assert status == "creating" and not data_dir(site, name).exists()
    elif point == "fill:data_dir":
        assert not any(data_dir(site, name).iterdir())
    elif point == "fill:copied":
        assert (data_dir(site, name) / "PG_VERSION").exists() and not containers
    elif point in ("fill:container", "fill:ready"):
        assert [c.labels["baseful.role"] for c in containers] == ["branch"]
    elif point in ("delete:containers", "database:containers"):
        assert not containers and data_dir(site, name).exists()
    elif point == "database:marked":
        assert [c.labels["baseful.role"] for c in containers] == ["branch"] and status == "deleting"
    elif point in ("delete:data", "database:data"):
        assert not data_dir(site, name).exists() and status == "deleting"
    else:
        raise AssertionError(f"no evidence is checked for the injection point {point!r}: add it here")


CREATE = [
    ("snapshot", "create:reserved"), ("snapshot", "fill:data_dir"), ("snapshot", "copy"), ("snapshot", "fill:copied"),
    ("snapshot", "fill:container"), ("snapshot", "fill:ready"),
    ("physical", "fill:data_dir"), ("physical", "copy@0.4"), ("physical", "fill:copied"), ("physical", "fill:ready"),
    ("dump", "fill:data_dir"), ("dump", "fill:container"), ("dump", "copy@1.5"), ("dump", "fill:ready"),
]


@pytest.mark.parametrize("method, point", CREATE)
def test_create_killed_then_run_again_makes_one_correct_branch(site, docker_client, tally, method, point):
    name = f"c-{method[:4]}-{point.split('@')[0].replace(':', '-')}"
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, name=name, copy_method=method)
    assert record_of(site, name) == "creating"
    evidence(site, docker_client, name, point, method)
    progress = site["ansible"].run("branch_info", database=site["name"], name=name)["branches"][0]["copy_progress"]
    if point == "create:reserved":
        assert progress is None  # no data directory yet
    else:
        assert progress["method"] == method
        if method != "dump":
            assert progress["expected_bytes"] > 100_000_000 and 0 <= progress["percent"] <= 99, progress
        assert progress["run_alive"] is False  # the run was killed: its lock went with it
        if not point.startswith("copy"):  # no worker outlives these points (one may outlive a kill mid-copy)
            assert progress["copying"] is False, progress

    again = site["ansible"].run("branch", database=site["name"], name=name, copy_method=method)
    assert again["changed"] and again["actions"] == ["cleanup", "create"], again.get("msg")
    assert again["copy_result"]["method"] == method
    assert_converged(site, docker_client, {name: None})
    assert site["ansible"].run("branch", database=site["name"], name=name, state="absent")["changed"]
    assert_converged(site, docker_client, {})
    tally.record("faults", tried=0, held=1)


# The run after the kill: the same task again (reset: true), or any other apply (state: started).
RESET = [("snapshot", "reset:marked", "reset"), ("snapshot", "delete:containers", "started"),
         ("snapshot", "copy", "reset"), ("physical", "copy@0.4", "started"), ("dump", "copy@1.5", "reset"),
         ("snapshot", "fill:ready", "started")]


@pytest.mark.parametrize("method, point, rerun", RESET)
def test_reset_killed_then_run_again_resets_keeping_name_and_port(site, docker_client, tally, method, point, rerun):
    name = f"r-{method[:4]}-{point.split('@')[0].replace(':', '-')}"
    made = site["ansible"].run("branch", database=site["name"], name=name, copy_method=method, ttl="2h")
    assert not made.get("failed"), made.get("msg")
    port = made["branch"]["port"]
    with connect(made["branch"]["url"]) as conn:
        conn.execute("INSERT INTO marker VALUES ('written on the branch, to be discarded by the reset')")
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, name=name, reset=True, copy_method=method)
    assert record_of(site, name) == "resetting"
    evidence(site, docker_client, name, point, method)
    info = site["ansible"].run("branch_info", database=site["name"], name=name)["branches"]
    assert [(b["status"], b["port"]) for b in info] == [("resetting", port)]

    follow_up = {"reset": True} if rerun == "reset" else {"state": "started"}
    again = site["ansible"].run("branch", database=site["name"], name=name, copy_method=method, **follow_up)
    assert again["changed"] and again["actions"] == ["reset"], again.get("msg")
    assert again["branch"]["port"] == port and again["branch"]["ttl"] == 7200
    assert_converged(site, docker_client, {name: port})  # the marker row written on the branch is gone
    assert site["ansible"].run("branch", database=site["name"], name=name, state="absent")["changed"]
    tally.record("faults", tried=0, held=1)


@pytest.mark.parametrize("point", ["delete:marked", "delete:containers", "delete:data"])
def test_delete_killed_then_run_again_leaves_nothing(site, docker_client, tally, point):
    name = f"d-{point.replace(':', '-')}"
    made = site["ansible"].run("branch", database=site["name"], name=name)
    assert not made.get("failed"), made.get("msg")
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, name=name, state="absent")
    assert record_of(site, name) == "deleting"
    evidence(site, docker_client, name, point, "snapshot")

    again = site["ansible"].run("branch", database=site["name"], name=name, state="absent")
    assert again["changed"] and again["actions"] == ["cleanup"], again
    assert_converged(site, docker_client, {})
    assert site["ansible"].run("branch", database=site["name"], name=name, state="absent")["changed"] is False
    tally.record("faults", tried=0, held=1)


# The database module's own steps: its create makes the production branch with the same steps as a
# branch (empty: initdb by the image; seeded: a dump from source_url, here the site's database), and
# its state: absent marks every branch 'deleting', removes the containers, then the data, then the record.
DATABASE_CREATE = [("empty", "create:reserved"), ("empty", "fill:data_dir"), ("empty", "fill:container"),
                   ("empty", "fill:ready"), ("seeded", "copy@1.5"), ("seeded", "fill:ready")]


def assert_database_converged(site, client, name: str, exists: bool) -> None:
    """One running production branch and nothing else of the database, or nothing of it at all."""
    labelled = client.containers.list(all=True, filters={"label": f"baseful.database={name}"})
    root = Path(site["placement"]["data_root"]) / name
    secret = Path(site["placement"]["state_dir"]) / "secrets" / f"{name}.password"
    names = [b["name"] for b in site["ansible"].run("branch_info")["branches"] if b["database"] == name]
    if exists:
        assert names == ["production"]
        assert sorted((c.labels["baseful.role"], c.status) for c in labelled) == [("branch", "running"),
                                                                                  ("endpoint", "running")], "stray container"
        assert sorted(p.name for p in root.iterdir()) == [".baseful", "production"], "stray data directory"
        assert sorted(p.name for p in (root / ".baseful" / "branches").iterdir()) == ["production.json"]
        assert secret.stat().st_mode & 0o777 == 0o600
    else:
        assert names == [] and labelled == [] and not root.exists() and not secret.exists()
    assert_no_lock_held(site)
    assert query(site["production"]["url"], SOURCE_CHECKSUM) == site["checksum"], "the source changed"


@pytest.mark.parametrize("seed, point", DATABASE_CREATE)
def test_database_create_killed_then_run_again_makes_one_correct_database(site, docker_client, image17, tally, seed,
                                                                          point):
    name = f"k{secrets.token_hex(3)}"
    args = {"name": name, "image": image17}
    if seed == "seeded":
        args["source_url"] = site["production"]["url"]
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, module="database", **args)
    view = dict(site, name=name)
    assert record_of(view, "production") == "creating"
    evidence(view, docker_client, "production", point, "dump")

    again = site["ansible"].run("database", **args)
    assert again["changed"] and again["actions"][:3] == ["cleanup", "create_database", "create_branch"], again.get("msg")
    assert_database_converged(site, docker_client, name, exists=True)
    if seed == "seeded":
        assert query(again["branch"]["url"], SOURCE_CHECKSUM) == site["checksum"]
    assert site["ansible"].run("database", **args)["changed"] is False
    assert site["ansible"].run("database", name=name, state="absent")["changed"]
    assert_database_converged(site, docker_client, name, exists=False)
    tally.record("faults", tried=0, held=1)


@pytest.mark.parametrize("point, rerun", [("database:marked", "absent"), ("database:containers", "present"),
                                          ("database:data", "absent")])
def test_database_delete_killed_then_run_again_finishes_it(site, docker_client, image17, tally, point, rerun):
    name = f"k{secrets.token_hex(3)}"
    made = site["ansible"].run("database", name=name, image=image17)
    assert not made.get("failed"), made.get("msg")
    assert not site["ansible"].run("branch", database=name, name="feature").get("failed")
    with connect(made["branch"]["url"]) as conn:
        conn.execute("CREATE TABLE doomed (id int)")
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, module="database", name=name, state="absent")
    view = dict(site, name=name)
    assert record_of(view, "production") == "deleting" and record_of(view, "feature") == "deleting"
    evidence(view, docker_client, "production", point, "snapshot")
    if point == "database:data":  # the data is gone; the manifests go with the records, last
        assert sorted(p.name for p in (Path(site["placement"]["data_root"]) / name).iterdir()) == [".baseful"]

    again = site["ansible"].run("database", name=name, image=image17, state=rerun)
    assert again["changed"], again.get("msg")
    if rerun == "present":  # the removal asked for is finished first, then the database is made anew
        assert again["actions"][:2] == ["cleanup", "create_database"]
        assert query(again["branch"]["url"], "SELECT to_regclass('doomed') IS NULL") == [(True,)]
    assert_database_converged(site, docker_client, name, exists=rerun == "present")
    site["ansible"].run("database", name=name, state="absent")
    assert_database_converged(site, docker_client, name, exists=False)
    tally.record("faults", tried=0, held=1)


# The endpoint's switch: the records say the new default, the routes are written with a mark that a switch is
# under way, then the pooler pauses, reloads and resumes. Killed after the mark (and, with a timer, while the
# pooler is being switched), the next apply finishes the switch.
@pytest.mark.parametrize("point", ["switch:marked", "switch:marked@0.02"])
def test_a_switch_killed_then_run_again_leaves_exactly_one_route_to_the_default(ansible, database, dbname, tally, point):
    endpoint = database["database"]["endpoint"]
    with connect(database["branch"]["url"]) as conn:
        conn.execute("CREATE TABLE whoami (branch text); INSERT INTO whoami VALUES ('production')")
    feature = ansible.run("branch", database=dbname, name="feature")
    with connect(feature["branch"]["url"]) as conn:
        conn.execute("UPDATE whoami SET branch = 'feature'")
    tally.record("faults", tried=1, held=0)
    killed_at({"ansible": ansible, "name": dbname}, point, name="feature", state="default")
    live = ansible.run("branch_info", database=dbname)["endpoints"][0]
    if "@" not in point:  # died before the pooler was told: it still routes to production, and says so
        assert live["switch_pending"] is True and live["in_sync"] is False
        assert query(endpoint["url"], "SELECT branch FROM whoami") == [("production",)]

    again = ansible.run("branch", database=dbname, name="feature", state="default")
    assert not again.get("failed") and again["actions"] == [], again
    assert "switch_pause_ms" in again  # the switch left half-done is finished
    live = ansible.run("branch_info", database=dbname)["endpoints"][0]
    assert live["in_sync"] and not live["switch_pending"]
    assert live["routes"] == {dbname: "feature", f"{dbname}.feature": "feature", f"{dbname}.production": "production"}
    config = (Path(ansible.placement["state_dir"]) / ".endpoints" / dbname / "pgbouncer.ini").read_text()
    assert len([line for line in config.splitlines() if line.startswith(f"{dbname} = ")]) == 1
    for _session in range(5):  # every new session, not only the first, lands on the default
        assert query(endpoint["url"], "SELECT branch FROM whoami") == [("feature",)]
    assert ansible.run("branch", database=dbname, name="feature", state="default")["changed"] is False
    tally.record("faults", tried=0, held=1)


MIGRATIONS = {"001_runs.sql": "CREATE TABLE runs (file text); INSERT INTO runs VALUES ('001');\n",
              "002_more.sql": "INSERT INTO runs VALUES ('002'); ALTER TABLE marker ADD COLUMN seen bool;\n"}


@pytest.mark.parametrize("point", ["migrate:file", "migrate:recorded"])
def test_migrations_killed_then_run_again_make_one_branch_that_had_each_file_once(site, docker_client, tally, point):
    """A new branch killed before or after its first migration committed is never left serving half-migrated: its
    record stays 'creating', and the next run makes it anew with every file run exactly once."""
    name = f"m-{point.replace(':', '-')}"
    folder = site["workdir"] / f"migrations-{name}"
    folder.mkdir()
    for file, text in MIGRATIONS.items():
        (folder / file).write_text(text)
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, name=name, migrations=[str(folder)])
    assert record_of(site, name) == "creating"
    info = site["ansible"].run("branch_info", database=site["name"], name=name)["branches"]
    assert [b["status"] for b in info] == ["creating"]

    again = site["ansible"].run("branch", database=site["name"], name=name, migrations=[str(folder)])
    assert again["actions"] == ["cleanup", "create", "migrate"], again.get("msg")
    assert again["migrations_applied"] == sorted(MIGRATIONS)
    assert query(again["branch"]["url"], "SELECT string_agg(file, ',' ORDER BY file) FROM runs") == [("001,002",)]
    assert [m["file"] for m in again["branch"]["migrations"]] == sorted(MIGRATIONS)
    assert_converged(site, docker_client, {name: None})
    assert query(site["production"]["url"], SOURCE_CHECKSUM) == site["checksum"]
    assert site["ansible"].run("branch", database=site["name"], name=name, state="absent")["changed"]
    assert_converged(site, docker_client, {})
    tally.record("faults", tried=0, held=1)


def test_merge_killed_after_its_rehearsal_is_finished_by_the_next_run(site, docker_client, tally):
    """Killed between the rehearsal (its copy removed) and applying to `into`: `into` has had nothing, and the next
    run rehearses again and applies each file once. `into` is a branch of production, so production stays as it is."""
    folder = site["workdir"] / "migrations-merge"
    folder.mkdir()
    for file, text in MIGRATIONS.items():
        (folder / file).write_text(text)
    ansible, database = site["ansible"], site["name"]
    assert not ansible.run("branch", database=database, name="m-into").get("failed")
    made = ansible.run("branch", database=database, name="m-pr", source="m-into", migrations=[str(folder)])
    assert made["migrations_applied"] == sorted(MIGRATIONS), made.get("msg")
    tally.record("faults", tried=1, held=0)
    killed_at(site, "merge:rehearsed", module="branch_merge", database=database, name="m-pr")
    views = {b["name"]: b for b in ansible.run("branch_info", database=database)["branches"]}
    assert sorted(views) == ["m-into", "m-pr", "production"] and views["m-into"]["migrations"] == []

    merged = ansible.run("branch_merge", database=database, name="m-pr")
    assert merged["actions"] == ["rehearse", "migrate"] and merged["identical"], merged.get("msg")
    assert query(views["m-into"]["url"], "SELECT string_agg(file, ',' ORDER BY file) FROM runs") == [("001,002",)]
    assert_converged(site, docker_client, {"m-into": None, "m-pr": None})
    for branch in ("m-pr", "m-into"):
        assert ansible.run("branch", database=database, name=branch, state="absent")["changed"]
    assert_converged(site, docker_client, {})
    tally.record("faults", tried=0, held=1)


def test_a_file_committed_but_not_recorded_is_never_run_again(site, docker_client, tally):
    """Killed after a file committed on an existing branch and before its record said so: the branch's own history
    (baseful.migrations, written in the file's transaction) says it ran, so the next run records it and runs only the
    file after it. A data migration shows any second run."""
    ansible, database, name = site["ansible"], site["name"], "m-committed"
    folder = site["workdir"] / f"migrations-{name}"
    folder.mkdir()
    (folder / "001_table.sql").write_text("CREATE TABLE tally (n int);\n")
    made = ansible.run("branch", database=database, name=name, migrations=[str(folder)])
    assert made["migrations_applied"] == ["001_table.sql"], made.get("msg")
    (folder / "002_count.sql").write_text("INSERT INTO tally VALUES (1);\n")
    (folder / "003_more.sql").write_text("INSERT INTO tally VALUES (10);\n")
    tally.record("faults", tried=1, held=0)
    killed_at(site, "migrate:committed", name=name, migrations=[str(folder)])
    url = made["branch"]["url"]
    assert query(url, "SELECT sum(n) FROM tally") == [(1,)]  # 002 committed, 003 never began
    recorded = ansible.run("branch_info", database=database, name=name)["branches"][0]["migrations"]
    assert [m["file"] for m in recorded] == ["001_table.sql"]  # the kill came before the record

    predicted = ansible.run("branch", check=True, database=database, name=name, migrations=[str(folder)])
    assert predicted["migrations_applied"] == ["003_more.sql"], predicted
    again = ansible.run("branch", database=database, name=name, migrations=[str(folder)])
    assert again["actions"] == ["migrate"] and again["migrations_applied"] == ["003_more.sql"], again.get("msg")
    assert query(url, "SELECT sum(n) FROM tally") == [(11,)]  # 002 ran once
    assert [m["file"] for m in again["branch"]["migrations"]] == ["001_table.sql", "002_count.sql", "003_more.sql"]
    assert query(url, "SELECT string_agg(file, ',' ORDER BY file) FROM baseful.migrations") == \
        [("001_table.sql,002_count.sql,003_more.sql",)]
    assert ansible.run("branch", database=database, name=name, migrations=[str(folder)])["changed"] is False
    assert ansible.run("branch", database=database, name=name, state="absent")["changed"]
    assert_converged(site, docker_client, {})
    tally.record("faults", tried=0, held=1)


MASK = {"pgbench_accounts.filler": "redact", "marker.note": "hash"}


@pytest.mark.parametrize("point", ["mask:checked@1.0", "mask:applied", "fill:unsealed"])
def test_masking_killed_leaves_no_unmasked_branch_reachable(site, docker_client, tally, point):
    """Killed while its copy is masked (mid-UPDATE: the psql in the sealed container goes on without its run), after
    masking, or after the WAL was replaced: the only server of the branch is its sealed one, with no network and no
    published port, no route of the endpoint leads to it, and the next run makes the branch anew, masked."""
    name = f"k-{point.split('@')[0].replace(':', '-')}"
    tally.record("faults", tried=1, held=0)
    killed_at(site, point, name=name, mask=MASK)
    assert record_of(site, name) == "creating"
    containers = containers_of(docker_client, site, name)
    assert [c.labels["baseful.role"] for c in containers] == ["sealed"], [c.labels for c in containers]
    sealed = containers[0].attrs["HostConfig"]
    assert sealed["NetworkMode"] == "none" and not sealed.get("PortBindings"), sealed
    info = site["ansible"].run("branch_info", database=site["name"])
    [view] = [b for b in info["branches"] if b["name"] == name]
    assert view["status"] == "creating" and not port_in_use(view["port"])
    [endpoint] = info["endpoints"]
    assert name not in endpoint["routes"].values(), endpoint["routes"]

    again = site["ansible"].run("branch", database=site["name"], name=name, mask=MASK)
    assert again["actions"] == ["cleanup", "create"], again.get("msg")
    branch = again["branch"]
    assert branch["masked"] and query(branch["url"], "SELECT note <> 'source' FROM marker") == [(True,)]
    assert query(branch["url"], "SELECT count(*) FROM pgbench_accounts WHERE filler <> 'REDACTED'") == [(0,)]
    assert site["ansible"].run("branch", database=site["name"], name=name, state="absent")["changed"]
    assert_converged(site, docker_client, {})
    tally.record("faults", tried=0, held=1)
