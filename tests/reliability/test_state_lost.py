"""State lost: the metadata removed, corrupted, truncated or replaced by an older copy; a second
state_dir on the same data_root; the root branch asked to go. Each case ends with every user row of
every branch intact, checked by query, and with nothing on the host removed that the collection's
records (rebuilt from the manifests beside the data) did not mark for deletion."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conftest import PORT_RANGE, Ansible, _remove_containers_under, connect, query

ROWS = "SELECT count(*), sum(quantity), md5(string_agg(id::text || ':' || note, ',' ORDER BY id)) FROM orders"


@pytest.fixture
def site(workdir, image17, docker_client):
    """A database (data_root beside, not under, state_dir) with production and two branches, each holding
    rows of its own; `expected` maps every branch to its rows."""
    placement = {"state_dir": str(workdir / "state"), "data_root": str(workdir / "data"),
                 "port_range": PORT_RANGE}
    ansible = Ansible(workdir, placement)
    try:
        name = f"sl{os.urandom(3).hex()}"
        made = ansible.run("database", name=name, image=image17)
        assert not made.get("failed"), made.get("msg")
        write(made["branch"]["url"], 300, "production")
        urls = {"production": made["branch"]["url"]}
        for branch, extra in (("dev", 7), ("qa", 11)):
            result = ansible.run("branch", database=name, name=branch, ttl="2h" if branch == "qa" else None)
            assert result.get("changed"), result.get("msg")
            write(result["branch"]["url"], extra, branch)
            urls[branch] = result["branch"]["url"]
        expected = {b: query(url, ROWS) for b, url in urls.items()}
        stopped = ansible.run("branch", database=name, name="qa", state="stopped")  # one branch stopped when state is lost
        assert stopped["actions"] == ["stop"]
        yield {"ansible": ansible, "name": name, "placement": placement, "expected": expected, "workdir": workdir,
               "image": image17, "password": Path(placement["state_dir"], "secrets", f"{name}.password").read_text()}
    finally:
        _remove_containers_under(docker_client, str(workdir))


def write(url: str, extra: int, note: str) -> None:
    with connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, quantity int, note text)")
        conn.execute("INSERT INTO orders SELECT g, g %% 13, %s FROM generate_series(1, %s) g "
                     "ON CONFLICT (id) DO UPDATE SET note = excluded.note", (note, 1000 + extra))


def host_state(client, site, role: str = None) -> dict:
    """What a refused or adopting run must leave exactly as it was: the containers (id and status; those of
    one `baseful.role` only where given), the database's directories and manifests, and the top level of every
    data directory (a running server changes files deeper down by itself)."""
    labels = [f"baseful.database={site['name']}"] + ([f"baseful.role={role}"] if role else [])
    containers = sorted((c.id, c.status) for c in client.containers.list(all=True, filters={"label": labels}))
    root = Path(site["placement"]["data_root"])
    files = sorted(str(p.relative_to(root)) for p in root.glob("*/*"))
    files += sorted(str(p.relative_to(root)) for p in root.glob("*/.baseful/**/*") if p.is_file())
    files += sorted(str(p.relative_to(root)) for p in root.glob("*/*/*") if ".baseful" not in p.parts)
    return {"containers": containers, "files": files}


def endpoint_containers(client, database: str) -> list:
    """(id, status, published host port) of each endpoint container of the database."""
    found = client.containers.list(all=True, filters={"label": [f"baseful.database={database}", "baseful.role=endpoint"]})
    return [(c.id, c.status, int(c.attrs["HostConfig"]["PortBindings"]["6432/tcp"][0]["HostPort"])) for c in found]


def assert_every_row_intact(site, ansible: Ansible = None) -> dict:
    """Every branch listed, each started and holding exactly its rows; returns the views by name."""
    ansible = ansible or site["ansible"]
    for branch in site["expected"]:
        started = ansible.run("branch", database=site["name"], name=branch, state="started")
        assert not started.get("failed"), started.get("msg")
    views = {b["name"]: b for b in ansible.run("branch_info", database=site["name"])["branches"]}
    assert set(views) == set(site["expected"]), views.keys()
    for branch, rows in site["expected"].items():
        assert query(views[branch]["url"], ROWS) == rows, branch
    return views


def test_a_removed_state_dir_is_adopted_with_every_branch_and_row(site, docker_client, tally):
    ansible, name = site["ansible"], site["name"]
    before, branches_before = host_state(docker_client, site), host_state(docker_client, site, "branch")
    endpoint_before = endpoint_containers(docker_client, name)
    assert len(endpoint_before) == 1, endpoint_before
    shutil.rmtree(site["placement"]["state_dir"])

    predicted = ansible.run("database", check=True, name=name, image=site["image"])
    assert predicted["changed"] and predicted["actions"][0] == "adopt", predicted
    assert not Path(site["placement"]["state_dir"], "state.db").exists()
    assert host_state(docker_client, site) == before  # check mode touched nothing, the endpoint included

    adopted = ansible.run("database", name=name, image=site["image"], password=site["password"])
    # the endpoint's files went with the state_dir: it is made again on its pinned port
    assert adopted["changed"] and adopted["actions"] == ["adopt", "recreate_endpoint"], adopted
    assert sorted(adopted["database"]["branches"]) == ["dev", "production", "qa"]
    # no branch copied, removed or recreated; the endpoint alone made anew, on the port it had
    assert host_state(docker_client, site, "branch") == branches_before
    endpoint_after = endpoint_containers(docker_client, name)
    assert len(endpoint_after) == 1 and endpoint_after[0][0] != endpoint_before[0][0], (endpoint_before, endpoint_after)
    assert endpoint_after[0][1:] == endpoint_before[0][1:] == ("running", adopted["database"]["endpoint"]["port"])
    assert Path(site["placement"]["state_dir"], "secrets", f"{name}.password").read_text() == site["password"]
    assert ansible.run("database", name=name, image=site["image"])["changed"] is False
    views = assert_every_row_intact(site)
    assert views["production"]["protected"] and views["production"]["is_default"]
    assert views["qa"]["ttl"] == 7200 and views["qa"]["expires_at"] and views["dev"]["parent"] == "production"
    assert site["password"] in views["dev"]["url"]  # the password given, which authenticates, was kept
    tally.record("state_lost")


def test_a_lost_password_is_reset_through_the_local_socket(site, docker_client, tally):
    ansible, name = site["ansible"], site["name"]
    shutil.rmtree(site["placement"]["state_dir"])
    adopted = ansible.run("branch", database=name, name="dev")  # any module adopts; this one with no password
    assert adopted["actions"] == ["adopt"] and not adopted.get("failed"), adopted
    kept = Path(site["placement"]["state_dir"], "secrets", f"{name}.password").read_text()
    assert kept != site["password"] and kept in adopted["branch"]["url"]
    assert query(adopted["branch"]["url"], ROWS) == site["expected"]["dev"]
    with pytest.raises(Exception, match="password authentication failed"):
        query(adopted["branch"]["url"].replace(kept, site["password"]), "SELECT 1")
    views = assert_every_row_intact(site)  # the stopped branch took the new password too
    assert all(kept in view["url"] for view in views.values())
    tally.record("state_lost")


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_a_damaged_state_db_is_refused_then_rebuilt_once_moved_aside(site, docker_client, damage, tally):
    ansible, name = site["ansible"], site["name"]
    path = Path(site["placement"]["state_dir"], "state.db")
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    content = path.read_bytes()
    damaged = content[:120] + bytes(b ^ 0x5A for b in content[120:]) if damage == "corrupted" \
        else content[:len(content) // 2 + 77]
    path.write_bytes(damaged)
    before = host_state(docker_client, site)
    for task in ({"database": {"name": name, "image": site["image"]}}, {"branch": {"database": name, "name": "fresh"}},
                 {"database": {"name": name, "state": "absent"}}, {"branch_info": {"database": name}}):
        (module, args), = task.items()
        refused = ansible.run(module, **args)
        assert refused.get("failed") and refused["msg"].startswith("state_dir: ") and "nothing was changed" in \
            refused["msg"], (module, refused.get("msg"))
    assert path.read_bytes() == damaged
    assert host_state(docker_client, site) == before
    path.rename(path.with_suffix(".damaged"))
    adopted = ansible.run("database", name=name, image=site["image"], password=site["password"])
    assert adopted["actions"] == ["adopt"], adopted
    assert_every_row_intact(site)
    tally.record("state_lost")


def test_a_state_db_emptied_to_nothing_is_rebuilt(site, tally):
    Path(site["placement"]["state_dir"], "state.db").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        Path(site["placement"]["state_dir"], "state.db" + suffix).unlink(missing_ok=True)
    adopted = site["ansible"].run("database", name=site["name"], image=site["image"])
    assert adopted["actions"] == ["adopt"], adopted
    assert_every_row_intact(site)
    tally.record("state_lost")


def test_an_older_copy_of_state_db_adopts_the_branches_made_since(site, docker_client, tally):
    ansible, name = site["ansible"], site["name"]
    path = Path(site["placement"]["state_dir"], "state.db")
    backup = site["workdir"] / "state.db.backup"
    with closing(sqlite3.connect(path)) as live, closing(sqlite3.connect(backup)) as copy:
        live.backup(copy)
    later = ansible.run("branch", database=name, name="later", source="dev")
    write(later["branch"]["url"], 23, "later")
    site["expected"]["later"] = query(later["branch"]["url"], ROWS)
    switched = ansible.run("branch", database=name, name="dev", state="default")
    assert switched["actions"] == ["set_default"]
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    shutil.copy(backup, path)

    listed = ansible.run("branch_info", database=name)["branches"]  # read-only: adopts in memory
    assert {b["name"] for b in listed} == {"production", "dev", "qa", "later"}
    with closing(sqlite3.connect(path)) as db:
        assert "later" not in {r[0] for r in db.execute("SELECT name FROM branches")}
    adopted = ansible.run("branch", database=name, name="later")
    assert adopted["actions"] == ["adopt"] and adopted["branch"]["parent"] == "dev", adopted
    # the older store's default stands (production); the manifests' later switch is not replayed
    views = assert_every_row_intact(site)
    assert [n for n, v in views.items() if v["is_default"]] == ["production"]
    assert ansible.run("branch", database=name, name="later")["changed"] is False
    tally.record("state_lost")


def test_a_second_state_dir_on_the_same_data_root_is_refused(site, docker_client, tally):
    name = site["name"]
    other = Ansible(site["workdir"], dict(site["placement"], state_dir=str(site["workdir"] / "other-state")))
    before = host_state(docker_client, site)
    for module, args in (("database", {"name": name, "image": site["image"]}), ("branch", {"database": name, "name": "x"}),
                         ("database", {"name": name, "state": "absent"})):
        refused = other.run(module, **args)
        assert refused.get("failed") and refused["msg"].startswith("data_root: ") and \
            site["placement"]["state_dir"] in refused["msg"], (module, refused.get("msg"))
    assert host_state(docker_client, site) == before
    assert_every_row_intact(site)
    tally.record("state_lost")


def test_the_root_branch_cannot_be_unprotected_deleted_or_reset(site, docker_client, tally):
    ansible, name = site["ansible"], site["name"]
    assert ansible.run("branch", database=name, name="dev", state="default")["actions"] == ["set_default"]
    for args, parameter in (({"protected": False}, "protected"), ({"state": "absent"}, "state"),
                            ({"reset": True}, "reset")):
        refused = ansible.run("branch", database=name, name="production", **args)
        expected = f"{parameter}: branch 'production' is the root branch"
        assert refused.get("failed") and refused["msg"].startswith(expected), refused.get("msg")
    again = ansible.run("database", name=name, image=site["image"])
    assert again["changed"] is False and again["actions"] == []
    views = assert_every_row_intact(site)
    assert views["production"]["protected"] and views["dev"]["is_default"]
    tally.record("state_lost")


def test_a_data_root_directory_the_collection_did_not_make_is_never_replaced(site, docker_client, tally):
    ansible = site["ansible"]
    foreign = Path(site["placement"]["data_root"], "someone")
    (foreign / "pgdata").mkdir(parents=True)
    (foreign / "pgdata" / "PG_VERSION").write_text("17\n")
    refused = ansible.run("database", name="someone", image=site["image"])
    assert refused.get("failed") and refused["msg"].startswith("data_root: ") and "no baseful.branching manifest" in \
        refused["msg"], refused.get("msg")
    assert (foreign / "pgdata" / "PG_VERSION").read_text() == "17\n"
    assert ansible.run("database", name="someone", state="absent")["changed"] is False
    assert (foreign / "pgdata" / "PG_VERSION").exists()
    assert_every_row_intact(site)
    tally.record("state_lost")


def test_a_database_adopted_after_its_state_dir_was_lost_is_removed_whole(site, docker_client, tally):
    ansible, name = site["ansible"], site["name"]
    shutil.rmtree(site["placement"]["state_dir"])
    removed = ansible.run("database", name=name, state="absent")
    assert removed["changed"] and removed["actions"] == ["adopt", "delete_database"], removed
    assert docker_client.containers.list(all=True, filters={"label": f"baseful.database={name}"}) == []
    assert not Path(site["placement"]["data_root"], name).exists()
    assert ansible.run("database", name=name, state="absent")["changed"] is False
    tally.record("state_lost")
