"""baseful.branching.branch: the Baseful and mirrord flows, copy modes, check mode, diff, errors."""

from __future__ import annotations

import os
import socket
import time

import pytest

from conftest import connect, query, snapshot


def test_baseful_flow_create_list_stop_start_switch_delete(ansible, database, dbname, docker_client, workdir):
    created = ansible.run("branch", database=dbname, name="staging")
    assert created["changed"] and created["actions"] == ["create"], created.get("msg")
    staging = created["branch"]
    assert (staging["status"], staging["is_default"], staging["parent"], staging["copy_mode"], staging["copy_method"]) == \
        ("running", False, "production", "all", "physical")  # auto on a data_root without reflinks
    assert staging["port"] != database["branch"]["port"]
    assert query(staging["url"], "SELECT count(*), sum(stock_quantity) FROM stock") == [(500, 50000)]
    assert query(staging["url"].replace("postgres:", "app_reader:", 1).split("@")[0].rsplit(":", 1)[0]
                 + ":reader-secret@" + staging["url"].split("@")[1], "SELECT count(*) FROM stock") == [(500,)]

    listed = ansible.run("branch_info", database=dbname)["branches"]
    assert [b["name"] for b in listed] == ["production", "staging"]
    required = {"name", "database", "status", "is_default", "protected", "host", "port", "url", "container_name",
                "container_id", "parent", "copy_mode", "copy_method", "created_at", "expires_at", "data_dir"}
    assert all(required <= set(b) for b in listed)

    stopped = ansible.run("branch", database=dbname, name="staging", state="stopped")
    assert stopped["actions"] == ["stop"] and stopped["branch"]["status"] == "stopped"
    assert docker_client.containers.get(staging["container_id"]).status == "exited"
    assert ansible.run("branch", database=dbname, name="staging", state="stopped")["changed"] is False

    started = ansible.run("branch", database=dbname, name="staging", state="started")
    assert started["actions"] == ["start"] and started["branch"]["port"] == staging["port"]
    assert query(started["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]

    switched = ansible.run("branch", database=dbname, name="staging", state="default")
    assert switched["actions"] == ["set_default"]
    listed = ansible.run("branch_info", database=dbname)["branches"]
    assert [(b["name"], b["is_default"]) for b in listed] == [("staging", True), ("production", False)]

    refused = ansible.run("branch", database=dbname, name="staging", state="absent")
    assert refused["failed"] and refused["msg"].startswith("name: branch 'staging' is the default branch")
    refused = ansible.run("branch", database=dbname, name="production", state="absent")
    assert refused["failed"] and refused["msg"].startswith("state: branch 'production' is the root branch")

    ansible.run("branch", database=dbname, name="production", state="default")
    deleted = ansible.run("branch", database=dbname, name="staging", state="absent")
    assert deleted["changed"] and deleted["actions"] == ["delete"]
    labels = [f"baseful.database={dbname}", "baseful.branch=staging"]
    assert docker_client.containers.list(all=True, filters={"label": labels}) == []
    assert not os.path.exists(staging["data_dir"])
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production"]
    assert ansible.run("branch", database=dbname, name="staging", state="absent")["changed"] is False


def test_mirrord_flow_isolation_and_reconnect_by_name(ansible, database, dbname):
    first = ansible.run("branch", database=dbname, name="my-debug-session", ttl="300")
    url = first["branch"]["url"]
    with connect(url) as conn:
        conn.execute("UPDATE stock SET stock_quantity = 1, reserved_quantity = 99 WHERE product_id = 1")
    assert query(url, "SELECT stock_quantity, reserved_quantity FROM stock WHERE product_id = 1") == [(1, 99)]
    assert query(database["branch"]["url"], "SELECT stock_quantity FROM stock WHERE product_id = 1") == [(100,)]

    again = ansible.run("branch", database=dbname, name="my-debug-session", ttl="300")
    assert again["changed"] is False and "copy_result" not in again
    assert again["branch"]["container_id"] == first["branch"]["container_id"]
    assert query(url, "SELECT stock_quantity FROM stock WHERE product_id = 1") == [(1,)]
    assert again["branch"]["expires_at"] >= first["branch"]["expires_at"]


def test_schema_copy_has_structure_without_rows(ansible, database, dbname):
    result = ansible.run("branch", database=dbname, name="migration-check", copy="schema")
    assert result["branch"]["copy_mode"] == "schema", result.get("msg")
    url = result["branch"]["url"]
    assert query(url, "SELECT count(*) FROM stock") == [(0,)]
    assert query(url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'stock' ORDER BY 1") == \
        [("product_id",), ("reserved_quantity",), ("stock_quantity",)]


def test_empty_copy_is_a_blank_database_with_same_name_owner_encoding(ansible, database, dbname):
    result = ansible.run("branch", database=dbname, name="blank", copy="empty")
    url = result["branch"]["url"]
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    describe = ("SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate "
                "FROM pg_database WHERE datname = current_database()")
    assert query(url, describe) == query(database["branch"]["url"], describe)


def test_ttl_lease_expires_and_branch_expire_removes_it(ansible, database, dbname, docker_client):
    short = ansible.run("branch", database=dbname, name="short-lived", ttl="1s")
    assert short["branch"]["ttl"] == 1 and short["branch"]["expires_at"]
    keep = ansible.run("branch", database=dbname, name="long-lived", ttl="2h")
    assert keep["changed"]
    time.sleep(2.1)
    listed = ansible.run("branch_expire", check=True)
    assert [e["name"] for e in listed["expired"]] == ["short-lived"] and listed["changed"]
    assert docker_client.containers.get(short["branch"]["container_id"]).status == "running"
    expired = ansible.run("branch_expire", database=dbname)
    assert [e["name"] for e in expired["expired"]] == ["short-lived"]
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production", "long-lived"]
    assert ansible.run("branch_expire")["changed"] is False

    unleased = ansible.run("branch", database=dbname, name="long-lived", ttl="none", diff=True)
    assert unleased["actions"] == ["set_ttl"] and unleased["diff"]["before"]["ttl"] == 7200
    assert unleased["branch"]["ttl"] is None and unleased["branch"]["expires_at"] is None
    assert unleased["diff"]["after"]["ttl"] is None
    assert ansible.run("branch", database=dbname, name="long-lived", ttl="none")["changed"] is False
    assert ansible.run("branch", database=dbname, name="long-lived")["branch"]["expires_at"] is None


def test_reset_discards_changes_and_keeps_name_and_port(ansible, database, dbname):
    first = ansible.run("branch", database=dbname, name="scratch")["branch"]
    with connect(first["url"]) as conn:
        conn.execute("DELETE FROM stock")
    reset = ansible.run("branch", database=dbname, name="scratch", reset=True)
    assert reset["actions"] == ["reset"] and reset["copy_result"]["method"] == first["copy_method"] == "physical"
    assert reset["branch"]["port"] == first["port"] and reset["branch"]["name"] == "scratch"
    assert query(reset["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]

    refused = ansible.run("branch", database=dbname, name="production", reset=True)
    assert refused["failed"] and refused["msg"].startswith("reset: branch 'production' is the root branch")


def test_check_mode_predicts_create_and_touches_nothing(ansible, database, dbname, docker_client, workdir):
    before = snapshot(docker_client, workdir)
    predicted = ansible.run("branch", check=True, diff=True, database=dbname, name="feature-x")
    assert predicted["changed"] and predicted["actions"] == ["create"]
    assert predicted["diff"]["before"] == {} and predicted["diff"]["after"]["parent"] == "production"
    assert snapshot(docker_client, workdir) == before
    real = ansible.run("branch", diff=True, database=dbname, name="feature-x")
    assert real["actions"] == predicted["actions"]

    predicted_stop = ansible.run("branch", check=True, diff=True, database=dbname, name="feature-x", state="stopped")
    assert predicted_stop["actions"] == ["stop"]
    assert (predicted_stop["diff"]["before"]["status"], predicted_stop["diff"]["after"]["status"]) == ("running", "stopped")
    assert docker_client.containers.get(real["branch"]["container_id"]).status == "running"
    assert ansible.run("branch", database=dbname, name="feature-x", state="stopped")["actions"] == ["stop"]


def test_missing_container_is_reported_and_started_recreates_it(ansible, database, dbname, docker_client):
    branch = ansible.run("branch", database=dbname, name="fragile")["branch"]
    docker_client.containers.get(branch["container_id"]).remove(force=True)
    info = ansible.run("branch_info", database=dbname, name="fragile")["branches"]
    assert info[0]["status"] == "missing"
    repaired = ansible.run("branch", database=dbname, name="fragile", state="started")
    assert repaired["actions"] == ["recreate_container"]
    assert repaired["branch"]["port"] == branch["port"] and repaired["branch"]["status"] == "running"
    assert query(repaired["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]


def test_failed_copy_leaves_nothing_and_source_untouched(ansible, database, dbname, docker_client, workdir):
    # A CHECK constraint whose function reads a table restored later: a classic dump that does not restore.
    with connect(database["branch"]["url"]) as conn:
        conn.execute("CREATE TABLE zlimits (v int)")
        conn.execute("INSERT INTO zlimits VALUES (0)")
        conn.execute("CREATE FUNCTION public.above_limit(x int) RETURNS bool LANGUAGE sql AS "
                     "$$ SELECT x > coalesce((SELECT min(v) FROM public.zlimits), 1000) $$")
        conn.execute("CREATE TABLE orders (qty int CHECK (public.above_limit(qty)))")
        conn.execute("INSERT INTO orders VALUES (5)")
    source_rows = query(database["branch"]["url"], "SELECT count(*) FROM stock")
    before = snapshot(docker_client, workdir)
    failed = ansible.run("branch", database=dbname, name="doomed", copy_method="dump")
    assert failed["failed"] and "copy of branch 'doomed' failed" in failed["msg"] and "restore exited 1" in failed["msg"]
    assert snapshot(docker_client, workdir)["containers"] == before["containers"]
    assert not (workdir / "state" / "data" / dbname / "doomed").exists()
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production"]
    assert query(database["branch"]["url"], "SELECT count(*) FROM stock") == source_rows


@pytest.mark.parametrize("args, parameter", [
    ({"name": "Bad Name"}, "name"),
    ({"name": "../x"}, "name"),
    ({"name": "a;drop"}, "name"),
    ({"name": "ok", "database": "nope"}, "database"),
    ({"name": "ok", "source": "nope"}, "source"),
    ({"name": "ok", "ttl": "soon"}, "ttl"),
    ({"name": "ok", "ttl": "0"}, "ttl"),
    ({"name": "ok", "ttl": "3651d"}, "ttl"),
    ({"name": "ok", "port": 80}, "port"),
    ({"name": "ok", "copy_method": "snapshot"}, "copy_method"),
    ({"name": "ok", "reset": True}, "reset"),
    ({"name": "ok", "port_range": "9-3"}, "port_range"),
    ({"name": "ok", "bind_address": "localhost; rm"}, "bind_address"),
    ({"name": "production", "reset": True}, "reset"),
])
def test_bad_input_is_one_sentence_naming_the_parameter_and_changes_nothing(ansible, database, dbname, docker_client,
                                                                            workdir, args, parameter):
    args = dict({"database": dbname}, **args)
    before = snapshot(docker_client, workdir)
    result = ansible.run("branch", **args)
    assert result["failed"] and result["msg"].startswith(f"{parameter}: "), result["msg"]
    assert "\n" not in result["msg"]
    assert snapshot(docker_client, workdir) == before


def test_port_taken_by_another_process(ansible, database, dbname, placement):
    low = int(placement["port_range"].split("-")[0])
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    free_port_in_range = next(p for p in range(low + 50, low + 150) if _bindable(p))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port_in_range))
        holder.listen()
        refused = ansible.run("branch", database=dbname, name="pinned", port=free_port_in_range)
        assert refused["failed"] and refused["msg"] == (
            f"port: {free_port_in_range} is already taken on 127.0.0.1 by another process")
    taken.close()
    used = ansible.run("branch", database=dbname, name="pinned2", port=database["branch"]["port"])
    assert used["failed"] and used["msg"].startswith(f"port: {database['branch']['port']} is already used by branch 'production'")
    pinned = ansible.run("branch", database=dbname, name="pinned", port=free_port_in_range)
    assert pinned["branch"]["port"] == free_port_in_range


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_two_state_dirs_on_one_docker_host_never_touch_each_other(ansible, database, dbname, workdir, placement,
                                                                  image17, docker_client):
    from conftest import Ansible
    other = Ansible(workdir, dict(placement, state_dir=str(workdir / "other-state")))
    twin = other.run("database", name=dbname, image=image17)
    assert twin["changed"], twin.get("msg")
    mine = ansible.run("branch", database=dbname, name="twin-check")
    assert mine["changed"] and mine["actions"] == ["create"]
    assert other.run("database", name=dbname, state="absent")["changed"]
    assert docker_client.containers.get(database["branch"]["container_id"]).status == "running"
    assert docker_client.containers.get(mine["branch"]["container_id"]).status == "running"
    assert query(database["branch"]["url"], "SELECT count(*) FROM stock") == [(500,)]


def test_state_dir_that_is_a_file_is_one_clear_sentence(ansible, dbname, image17, workdir):
    (workdir / "plain-file").write_text("not a directory\n")
    result = ansible.run("database", name=dbname, image=image17, state_dir=str(workdir / "plain-file"))
    assert result["failed"] and result["msg"] == (
        f"state_dir: '{workdir / 'plain-file'}' cannot be a directory: {workdir / 'plain-file'} is a file")
