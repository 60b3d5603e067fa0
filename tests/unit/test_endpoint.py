"""The endpoint: its routes and configuration (pure), its plan, and the service keeping it true to the records
against the fake runtime, with a real store and real files."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.endpoint.config import (
    Route,
    parse_version,
    render_auth_file,
    render_config,
    route_name,
    routes,
)
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import DatabaseRecord
from ansible_collections.baseful.branching.plugins.module_utils.plan import EndpointRequest
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret
from ansible_collections.baseful.branching.plugins.module_utils.store import Store
from ansible_collections.baseful.branching.tests.unit.test_service import apply, make_database, run

WITH_ENDPOINT = EndpointRequest()


# routes and configuration


def test_the_database_name_routes_to_the_default_and_a_dotted_name_to_each_branch():
    found = routes("inventory", [("production", "c-prod", False, True), ("feature", "c-feat", True, True),
                                 ("old", "c-old", False, False)])
    assert found == [Route("inventory", "feature", "c-feat"), Route("inventory.feature", "feature", "c-feat"),
                     Route("inventory.old", "old", None), Route("inventory.production", "production", "c-prod")]
    assert route_name("inventory") == "inventory" and route_name("inventory", "dev") == "inventory.dev"


def test_the_configuration_pools_transactions_authenticates_with_scram_and_holds_no_password():
    text = render_config("inventory", "postgres", [Route("inventory", "production", "c-prod"),
                                                   Route("inventory.old", "old", None)])
    assert "inventory = host=c-prod port=5432 dbname=inventory" in text
    # refused at once by the pooler itself, saying why, rather than a wait for a server that is not there
    assert "inventory.old = host=127.0.0.1 port=6432 dbname='branch old is stopped, start it'" in text
    for setting in ("auth_type = scram-sha-256", "pool_mode = transaction", "admin_users = postgres",
                    "unix_socket_dir =", "listen_port = 6432"):
        assert setting in text.splitlines()
    assert "password" not in text
    assert render_auth_file("postgres", "SCRAM-SHA-256$4096:abc$def:ghi") == '"postgres" "SCRAM-SHA-256$4096:abc$def:ghi"\n'


@pytest.mark.parametrize("output, version", [("PgBouncer 1.24.1\nlibevent 2.1.12-stable", (1, 24)),
                                             ("PgBouncer 1.26.0", (1, 26)), ("sh: pgbouncer: not found", None)])
def test_the_version_is_read_from_pgbouncer_itself(output, version):
    assert parse_version(output) == version


# the plan


def record(**endpoint) -> DatabaseRecord:
    return DatabaseRecord("inventory", "postgres:18", 18, "postgres", "/secret", "now", **endpoint)


RECORDED = dict(endpoint_port=54330, endpoint_image=WITH_ENDPOINT.image, endpoint_container="baseful-inventory-endpoint-x")


@pytest.mark.parametrize("request_, recorded, status, actions", [
    (WITH_ENDPOINT, {}, "missing", [P.CREATE_ENDPOINT]),
    (WITH_ENDPOINT, RECORDED, "running", []),
    (WITH_ENDPOINT, RECORDED, "missing", [P.RECREATE_ENDPOINT]),  # removed by hand: repaired on its pinned port
    (WITH_ENDPOINT, RECORDED, "stopped", [P.START_ENDPOINT]),
    (EndpointRequest(port=54331), RECORDED, "running", [P.RECREATE_ENDPOINT]),
    (EndpointRequest(port=54330), RECORDED, "running", []),
    (EndpointRequest(image="other/pgbouncer:1"), RECORDED, "running", [P.RECREATE_ENDPOINT]),
    (EndpointRequest(enabled=False), RECORDED, "running", [P.REMOVE_ENDPOINT]),
    (EndpointRequest(enabled=False), {}, "missing", []),
])
def test_the_endpoint_is_planned_from_its_record_and_its_container(request_, recorded, status, actions):
    assert P.plan_endpoint(request_, record(**recorded), status) == actions


def test_an_endpoint_whose_files_are_gone_is_made_again_even_while_it_runs():
    assert P.plan_endpoint(WITH_ENDPOINT, record(**RECORDED), "running", files_present=False) == [P.RECREATE_ENDPOINT]


def test_a_database_made_before_verifiers_were_kept_gives_every_server_one_when_its_endpoint_comes(host):
    make_database(host, endpoint=EndpointRequest(enabled=False))
    apply(host, name="feature", state="stopped")
    secrets_dir = os.path.join(host["placement"].state_dir, "secrets")
    os.remove(os.path.join(secrets_dir, "inventory.verifier"))  # as a database of an older version has none
    calls = host["runtime"].calls
    before = len(calls)
    assert make_database(host, endpoint=WITH_ENDPOINT).actions == ["create_endpoint"]
    given = [c for c in calls[before:] if c[0] == "set_password"]
    assert len(given) == 2  # production, and the stopped branch, started for it
    assert host["runtime"].status([i for i, c in host["runtime"].containers.items()
                                   if c["labels"]["baseful.branch"] == "feature"][0]) == "stopped"
    assert read_secret(os.path.join(secrets_dir, "inventory.verifier")).startswith("SCRAM-SHA-256$")


# the service


def endpoint_container(host):
    return [c for c in host["runtime"].containers.values() if c["labels"]["baseful.role"] == "endpoint"]


def test_a_new_database_has_an_endpoint_whose_files_are_the_endpoints_own_and_hold_no_password(host):
    made = make_database(host, endpoint=WITH_ENDPOINT)
    assert made.actions == ["create_database", "create_branch", "create_endpoint"]
    endpoint = made.values["database"]["endpoint"]
    assert endpoint["port"] == 54321 and endpoint["url"].endswith("@127.0.0.1:54321/inventory")
    assert made.values["branch"]["endpoint_url"].endswith("@127.0.0.1:54321/inventory.production")
    [container] = endpoint_container(host)
    directory = container["spec"].config_dir
    for level in (directory, os.path.dirname(directory)):
        assert stat.S_IMODE(os.stat(level).st_mode) == 0o700
    password = read_secret(os.path.join(host["placement"].state_dir, "secrets", "inventory.password"))
    for name in ("pgbouncer.ini", "userlist.txt"):
        path = os.path.join(directory, name)
        mode = os.stat(path)
        assert stat.S_IMODE(mode.st_mode) == 0o600 and mode.st_uid == 999
        assert password not in open(path, encoding="utf-8").read()
    assert "SCRAM-SHA-256$" in open(os.path.join(directory, "userlist.txt"), encoding="utf-8").read()
    # production's server was given the verifier the endpoint checks clients against
    assert ("set_password", made.values["branch"]["container_id"]) in host["runtime"].calls
    again = make_database(host, endpoint=WITH_ENDPOINT)
    assert not again.changed and again.actions == []


def test_a_database_whose_endpoint_image_cannot_be_had_is_refused_and_nothing_is_made(host):
    host["runtime"].pooler = None
    with pytest.raises(InputError, match="^endpoint_image: "):
        make_database(host, endpoint=WITH_ENDPOINT)
    assert host["runtime"].containers == {}
    assert not os.path.exists(os.path.join(host["placement"].data_root, "inventory"))
    with sqlite3.connect(os.path.join(host["placement"].state_dir, "state.db")) as db:
        assert db.execute("SELECT count(*) FROM databases").fetchone()[0] == 0


def test_an_endpoint_removed_by_hand_is_made_again_on_its_pinned_port(host):
    port = make_database(host, endpoint=WITH_ENDPOINT).values["database"]["endpoint"]["port"]
    [container] = endpoint_container(host)
    host["runtime"].remove(container["spec"].name)
    assert run(host, lambda s: s.apply_database("inventory", "present", "postgres:18", "postgres", None, None,
                                                WITH_ENDPOINT), check_mode=True).actions == ["recreate_endpoint"]
    repaired = make_database(host, endpoint=WITH_ENDPOINT)
    assert repaired.actions == ["recreate_endpoint"]
    [again] = endpoint_container(host)
    assert again["spec"].port == port and again["spec"].name == container["spec"].name


def test_a_switch_repoints_the_default_route_through_the_pooler_and_other_changes_reload_it(host):
    make_database(host, endpoint=WITH_ENDPOINT)
    calls = host["runtime"].calls
    apply(host, name="feature")
    assert calls[-1][0] == "reload_endpoint"  # a new route
    switched = apply(host, name="feature", state="default")
    assert switched.values["switch_pause_ms"] == 1.0 and switched.values["switch_drained"] is True
    assert calls[-1][0] == "switch_route" and calls[-1][3] == "inventory"
    directory = endpoint_container(host)[0]["spec"].config_dir
    text = open(os.path.join(directory, "pgbouncer.ini"), encoding="utf-8").read()
    [feature] = [i for i, c in host["runtime"].containers.items() if c["labels"]["baseful.branch"] == "feature"]
    assert f"inventory = host={host['runtime'].address(feature, 'baseful')} port=5432" in text  # its address, not name
    before = len(calls)
    assert not apply(host, name="feature", state="default").changed
    assert not [c for c in calls[before:] if c[0] in ("switch_route", "reload_endpoint")]  # nothing moved


def test_a_run_killed_during_a_switch_leaves_a_mark_the_next_run_finishes(host):
    make_database(host, endpoint=WITH_ENDPOINT)
    apply(host, name="feature", state="default")
    directory = endpoint_container(host)[0]["spec"].config_dir
    open(os.path.join(directory, ".switching"), "w", encoding="utf-8").close()  # as a run killed mid-switch leaves it
    apply(host, name="feature", state="default")
    assert host["runtime"].calls[-1][0] == "switch_route"
    assert not os.path.exists(os.path.join(directory, ".switching"))


def test_endpoint_false_removes_the_endpoint_and_keeps_the_branches(host):
    make_database(host, endpoint=WITH_ENDPOINT)
    apply(host, name="feature")
    removed = make_database(host, endpoint=EndpointRequest(enabled=False))
    assert removed.actions == ["remove_endpoint"] and removed.values["database"]["endpoint"] is None
    assert endpoint_container(host) == []
    assert {c["spec"].branch for c in host["runtime"].containers.values()} == {"production", "feature"}
    assert not os.path.exists(os.path.join(host["placement"].state_dir, "endpoints", "inventory"))


def test_a_branch_never_takes_the_endpoints_port_even_when_the_store_alone_decides(host):
    port = make_database(host, endpoint=WITH_ENDPOINT).values["database"]["endpoint"]["port"]
    store = Store(host["placement"].state_dir)
    try:
        assert port in store.used_ports()
        assert store.port_holder(port) == "the endpoint of database 'inventory'"
        taken = store.branches("inventory")[0]
        with pytest.raises(sqlite3.IntegrityError, match="branches.port"):
            store.update_branch("inventory", taken.name, port=port)  # the trigger, not the allocator, refuses
    finally:
        store.close()
    with pytest.raises(InputError, match=f"^port: {port} is already used by the endpoint of database 'inventory'"):
        apply(host, name="feature", port=port)
