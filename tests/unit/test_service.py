"""The service against a fake runtime (tests/unit/fake_runtime.py) and a real store, real manifests and
real data directories in a temporary directory, the way kubernetes.core tests its service layer: each
planned action does what the plan says, check mode does nothing, and a failure leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import timedelta

import pytest

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, CopyFailed, InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import now, parse_port_range, timestamp
from ansible_collections.baseful.branching.plugins.module_utils.plan import NO_ENDPOINT, BranchRequest, EndpointRequest
from ansible_collections.baseful.branching.plugins.module_utils.service import Placement, Service
from ansible_collections.baseful.branching.plugins.module_utils.storage import HostStorage


class UnownedStorage(HostStorage):
    """Data directories as the test's own user makes them (HostStorage hands them to uid 999)."""

    def make_data_dir(self, path: str) -> None:
        os.makedirs(path, mode=0o700)


def no_other_process(address: str, port: int) -> bool:
    """The host's ports as the test sees them: no other process holds any (the machine's own may, a demo's)."""
    return True


def service(host, check_mode: bool = False) -> Service:
    return Service(host["placement"], host["runtime"], check_mode=check_mode, storage=UnownedStorage(),
                   port_free=no_other_process)


def run(host, operation, check_mode: bool = False):
    current = service(host, check_mode)
    try:
        return operation(current)
    finally:
        current.close()


def make_database(host, name: str = "inventory", endpoint: EndpointRequest = NO_ENDPOINT):
    """A database without an endpoint, unless asked (test_endpoint.py covers the endpoint)."""
    return run(host, lambda s: s.apply_database(name, "present", "postgres:18", "postgres", None, None, endpoint))


def apply(host, check_mode: bool = False, **request):
    return run(host, lambda s: s.apply_branch(BranchRequest(database="inventory", **request)), check_mode)


def records(host):
    path = os.path.join(host["placement"].state_dir, "state.db")
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT name, status, port, is_default FROM branches").fetchall())


def test_a_new_database_has_a_running_default_protected_production(host):
    made = make_database(host)
    assert made.changed and made.actions == ["create_database", "create_branch"]
    production = made.values["branch"]
    assert (production["status"], production["is_default"], production["protected"]) == ("running", True, True)
    assert records(host) == [("production", "running", 54320, 1)]
    spec = next(iter(host["runtime"].containers.values()))["spec"]
    assert (spec.port, spec.bind_address, spec.network) == (54320, "127.0.0.1", "baseful")
    assert os.path.isdir(production["data_dir"])
    again = make_database(host)
    assert not again.changed and again.actions == []


def test_a_branch_is_copied_by_the_fastest_correct_method_and_reapplied_unchanged(host):
    make_database(host)
    made = apply(host, name="dev")
    assert made.actions == ["create"] and made.values["copy_result"]["method"] == "physical"  # no reflinks in tmp
    worker = [c for c in host["runtime"].calls if c[0] == "run_worker"]
    assert worker == [("run_worker", "dev", "container:c1")]  # in the source's network namespace
    assert made.values["branch"]["port"] == 54321 and made.values["branch"]["parent"] == "production"
    assert os.path.exists(os.path.join(made.values["branch"]["data_dir"], "PG_VERSION"))
    assert apply(host, name="dev").actions == []


def test_check_mode_plans_and_touches_nothing(host):
    make_database(host)
    before = (records(host), dict(host["runtime"].containers), sorted(os.listdir(host["placement"].data_root + "/inventory")))
    predicted = apply(host, check_mode=True, name="dev")
    assert predicted.changed and predicted.actions == ["create"]
    assert predicted.after["parent"] == "production"
    assert (records(host), dict(host["runtime"].containers),
            sorted(os.listdir(host["placement"].data_root + "/inventory"))) == before


def test_a_failed_copy_leaves_no_record_container_or_data_directory(host):
    make_database(host)
    host["runtime"].worker = lambda script, environment, target: (1, "basebackup=1\n", "FATAL: no")
    with pytest.raises(CopyFailed, match="copy of branch 'dev' failed: basebackup exited 1"):
        apply(host, name="dev")
    assert records(host) == [("production", "running", 54320, 1)]
    assert [c["spec"].branch for c in host["runtime"].containers.values()] == ["production"]
    assert sorted(os.listdir(os.path.join(host["placement"].data_root, "inventory"))) == [".baseful", "production"]
    assert sorted(os.listdir(os.path.join(host["placement"].data_root, "inventory", ".baseful", "branches"))) == \
        ["production.json"]


def test_stop_start_delete_and_a_lost_container_recreated(host):
    make_database(host)
    dev = apply(host, name="dev").values["branch"]
    assert apply(host, name="dev", state="stopped").actions == ["stop"]
    assert apply(host, name="dev", state="started").actions == ["start"]
    host["runtime"].remove(dev["container_id"])
    repaired = apply(host, name="dev", state="started")
    assert repaired.actions == ["recreate_container"] and repaired.values["branch"]["port"] == dev["port"]
    deleted = apply(host, name="dev", state="absent")
    assert deleted.actions == ["delete"] and not os.path.exists(dev["data_dir"])
    assert records(host) == [("production", "running", 54320, 1)]
    assert not os.path.exists(os.path.join(host["placement"].data_root, "inventory", ".baseful", "branches", "dev.json"))


def test_reset_keeps_name_and_port_and_copies_again(host):
    make_database(host)
    dev = apply(host, name="dev").values["branch"]
    reset = apply(host, name="dev", reset=True)
    assert reset.actions == ["reset"] and reset.values["branch"]["port"] == dev["port"]
    assert reset.values["copy_result"]["method"] == "physical"


def test_switch_then_the_root_branch_still_cannot_go(host):
    make_database(host)
    apply(host, name="dev")
    assert apply(host, name="dev", state="default").actions == ["set_default"]
    with pytest.raises(InputError, match="^state: branch 'production' is the root branch"):
        apply(host, name="production", state="absent")
    assert [r[0] for r in records(host) if r[3]] == ["dev"]


def test_a_database_whose_create_died_is_cleaned_and_made_again(host):
    host["runtime"].ready_fails = True
    with pytest.raises(BranchingError):
        make_database(host)
    assert records(host) == [] and host["runtime"].containers == {}
    assert not os.path.exists(os.path.join(host["placement"].data_root, "inventory"))  # its own, and empty
    host["runtime"].ready_fails = False
    assert make_database(host).actions == ["create_database", "create_branch"]


def test_database_absent_removes_exactly_what_its_records_name(host):
    make_database(host)
    apply(host, name="dev")
    foreign = os.path.join(host["placement"].data_root, "inventory", "notes.txt")
    with open(foreign, "w", encoding="utf-8") as handle:
        handle.write("someone else's\n")
    removed = run(host, lambda s: s.apply_database("inventory", "absent", "postgres:18", "postgres", None, None))
    assert removed.actions == ["delete_database"] and host["runtime"].containers == {}
    assert records(host) == []
    assert sorted(os.listdir(os.path.join(host["placement"].data_root, "inventory"))) == ["notes.txt"]
    assert not os.path.exists(os.path.join(host["placement"].state_dir, "secrets", "inventory.password"))


def test_a_port_given_that_another_branch_holds_is_refused(host):
    make_database(host)
    with pytest.raises(InputError, match="^port: 54320 is already used by branch 'production'"):
        apply(host, name="dev", port=54320)
    assert records(host) == [("production", "running", 54320, 1)]


def test_a_chosen_port_another_state_dir_binds_first_moves_on_and_an_asked_one_is_refused(host):
    """Two state_dirs on one host pick from the same free ports; the one whose container binds second gets
    Docker's refusal. A port the run chose moves to the next free one; a port the user asked for is an error
    that leaves nothing behind."""
    make_database(host)
    host["runtime"].bound_elsewhere = {54321, 54322}
    made = apply(host, name="dev")
    assert made.values["branch"]["port"] == 54323
    assert records(host) == [("dev", "running", 54323, 0), ("production", "running", 54320, 1)]
    assert [c[2] for c in host["runtime"].calls if c[0].startswith("create_container") and c[1] == "dev"] == \
        [54321, 54322, 54323]
    manifest = os.path.join(host["placement"].data_root, "inventory", ".baseful", "branches", "dev.json")
    with open(manifest, encoding="utf-8") as handle:
        assert '"port": 54323' in handle.read()
    with pytest.raises(InputError, match="^port: 54322 is taken"):
        apply(host, name="qa", port=54322)
    assert records(host) == [("dev", "running", 54323, 0), ("production", "running", 54320, 1)]
    assert not os.path.exists(os.path.join(host["placement"].data_root, "inventory", "qa"))


def test_a_daemon_that_does_not_see_data_root_is_refused_and_the_probe_leaves_nothing(host):
    host["runtime"].blind = True
    with pytest.raises(InputError, match="^docker_host: the Docker daemon does not see data_root"):
        make_database(host)
    assert not os.path.exists(host["placement"].data_root)  # the probe's directories are gone again
    assert records(host) == [] and host["runtime"].containers == {}
    host["runtime"].blind = False
    make_database(host)
    probes = [c[1] for c in host["runtime"].calls if c[0] == "sees_path"]
    assert len(probes) == 2 and all(os.path.dirname(p) == host["placement"].data_root for p in probes)
    assert sorted(os.listdir(host["placement"].data_root)) == ["inventory"]


def test_a_copied_state_dir_on_the_same_data_root_expires_nothing_of_the_original(host):
    """A copy Y of state_dir X holds X's records; X still lives, so Y's sweep must leave X's branches alone."""
    make_database(host)
    apply(host, name="dev", ttl_seconds=60)
    copy = host["tmp"] / "copied-state"
    shutil.copytree(host["placement"].state_dir, copy)
    other = dict(host, placement=Placement(str(copy), host["placement"].data_root,
                                           port_range=parse_port_range("54320-54330")))
    with sqlite3.connect(copy / "state.db") as db:
        db.execute("UPDATE branches SET expires_at = ? WHERE name = 'dev'", (timestamp(now() - timedelta(hours=1)),))
    swept = run(other, lambda s: s.expire())
    assert swept.values["expired"] == [] and not swept.changed
    assert [r[0] for r in records(host)] == ["dev", "production"]
    assert any(c["spec"].branch == "dev" for c in host["runtime"].containers.values())
