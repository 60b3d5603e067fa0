"""Adoption against a real store and real manifests in a temporary directory, and a fake runtime: what
the host has and the store lacks is recorded again, nothing is removed, and what is not ours is refused."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.manifest import Manifests
from ansible_collections.baseful.branching.plugins.module_utils.model import BranchRecord, DatabaseRecord
from ansible_collections.baseful.branching.plugins.module_utils.runtime import Container
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret
from ansible_collections.baseful.branching.plugins.module_utils.service.adoption import ADOPT, Adoption
from ansible_collections.baseful.branching.plugins.module_utils.store import Store


class FakeRuntime:
    """Containers by id with a status; a password check that knows the servers' password; resets recorded."""

    def __init__(self):
        self.containers = {}
        self.server_password = None
        self.resets, self.started, self.stopped = [], [], []
        self.refuse_reset = False

    def add(self, branch: BranchRecord, status: str = "running") -> None:
        self.containers[branch.container_id] = SimpleNamespace(
            id=branch.container_id, name=branch.container_name, status=status,
            labels={"baseful.database": branch.database, "baseful.branch": branch.name, "baseful.role": "branch"})

    def _view(self, container) -> Container:
        return Container(container.id, container.name, "exited" if container.status == "stopped" else container.status,
                         container.labels)

    def labelled(self, database, branch=None):
        return [self._view(c) for c in self.containers.values() if c.labels["baseful.database"] == database
                and (branch is None or c.labels["baseful.branch"] == branch)]

    def status(self, name_or_id):
        container = self.containers.get(name_or_id)
        return "missing" if container is None else container.status

    def run_worker(self, image, database, branch, script, environment, password_file, **_):
        return 0, "auth=0\n" if read_secret(password_file) == self.server_password else "auth=2\n", ""

    def set_password(self, name_or_id, user, verifier):
        if self.refuse_reset:
            return False
        assert verifier.startswith("SCRAM-SHA-256$4096:") and self.containers[name_or_id].status == "running"
        self.resets.append(name_or_id)
        return True

    def start(self, name_or_id, port):
        self.started.append(name_or_id)
        self.containers[name_or_id].status = "running"

    def wait_ready(self, *_):
        pass

    def stop(self, name_or_id):
        self.stopped.append(name_or_id)
        self.containers[name_or_id].status = "stopped"


@pytest.fixture
def host(tmp_path):
    """A database with production (running), dev (running) and qa (stopped), recorded and mirrored."""
    state_dir, data_root = str(tmp_path / "state"), str(tmp_path / "data")
    manifests = Manifests(data_root, state_dir)
    store = Store(state_dir, mirror=manifests)
    runtime = FakeRuntime()
    record = DatabaseRecord("inventory", "postgres:18", 18, "postgres", os.path.join(state_dir, "secrets",
                            "inventory.password"), "2026-01-01T00:00:00+00:00")
    store.add_database(record)
    for number, (name, status) in enumerate((("production", "running"), ("dev", "running"), ("qa", "stopped"))):
        branch = BranchRecord("inventory", name, status, name == "production", name == "production", "127.0.0.1",
                              54320 + number, f"baseful-inventory-{name}-abc12{number}",
                              os.path.join(data_root, "inventory", name), "2026-01-01T00:00:00+00:00",
                              container_id=f"id-{name}", parent=None if name == "production" else "production",
                              copy_mode="all", copy_method="snapshot", ttl_seconds=3600 if name == "qa" else None)
        store.insert_branch(branch)
        runtime.add(branch, status)
        os.makedirs(branch.data_dir)
    store.close()
    return SimpleNamespace(state_dir=state_dir, data_root=data_root, runtime=runtime, tmp=tmp_path)


def adoption(host, state_dir=None, check_mode=False):
    state_dir = state_dir or host.state_dir
    manifests = Manifests(host.data_root, state_dir)
    store = Store(state_dir, read_only=check_mode, mirror=manifests)
    secret_dir = os.path.join(state_dir, "secrets")
    return Adoption(store, manifests, host.runtime, check_mode, lambda name: os.path.join(secret_dir, f"{name}.password"))


def test_a_lost_store_is_rebuilt_from_the_manifests_and_labels(host):
    original = Store(host.state_dir)
    before = [original.branch("inventory", n) for n in ("production", "dev", "qa")]
    original.close()
    shutil.rmtree(host.state_dir)
    host.runtime.server_password = "given"
    adopt = adoption(host)
    assert adopt.needed("inventory")
    assert adopt.reconcile("inventory", password="given") == [ADOPT]
    assert [adopt.store.branch("inventory", n) for n in ("production", "dev", "qa")] == before
    assert adopt.store.database("inventory").status == "ready"
    assert read_secret(adopt.store.database("inventory").password_file) == "given"
    assert host.runtime.resets == []  # the given password authenticates: nothing reset
    assert not adopt.needed("inventory") and adopt.reconcile("inventory") == []
    manifest = adopt.manifests.database("inventory")
    assert manifest.store_id == adopt.store.store_id and manifest.state_dir == os.path.realpath(host.state_dir)


def test_a_manifest_another_run_is_writing_is_not_read_as_a_record(host):
    """A concurrent run's half-written temporary file (the CI failure of 2026-12-01: a switch read one) is
    neither a branch nor an unreadable manifest; the records around it read as they are."""
    branches = os.path.join(host.data_root, "inventory", ".baseful", "branches")
    for unfinished in (".tmp-abc123.partial", ".tmp-def456.json"):  # today's name and the one before it
        with open(os.path.join(branches, unfinished), "w", encoding="utf-8") as handle:
            handle.write('{"format": 1, "kind": "bra')
    manifests = Manifests(host.data_root, host.state_dir)
    assert [b.name for b in manifests.branches("inventory")] == ["dev", "production", "qa"]
    assert not adoption(host).needed("inventory")


def test_check_mode_adopts_in_memory_only(host):
    shutil.rmtree(host.state_dir)
    adopt = adoption(host, check_mode=True)
    assert adopt.reconcile("inventory") == [ADOPT]
    assert [b.name for b in adopt.store.branches("inventory")] == ["production", "dev", "qa"]
    assert not os.path.exists(host.state_dir)
    assert host.runtime.resets == [] and host.runtime.started == []


def test_no_password_known_resets_it_on_every_branch_with_a_container(host):
    shutil.rmtree(host.state_dir)
    host.runtime.server_password = "lost"
    adopt = adoption(host)
    adopt.reconcile("inventory")
    kept = read_secret(adopt.store.database("inventory").password_file)
    assert kept and kept != "lost"
    assert host.runtime.resets == ["id-production", "id-dev", "id-qa"]
    assert host.runtime.started == host.runtime.stopped == ["id-qa"]  # stopped again, as it was
    assert host.runtime.status("id-qa") == "stopped"


def test_a_password_no_branch_takes_is_one_sentence_naming_password(host):
    shutil.rmtree(host.state_dir)
    host.runtime.server_password = "lost"
    host.runtime.refuse_reset = True
    with pytest.raises(InputError) as caught:
        adoption(host).reconcile("inventory", password="wrong")
    assert caught.value.parameter == "password"


def test_an_older_store_adopts_what_was_made_since_and_keeps_its_default(host):
    old = host.tmp / "old-state"
    shutil.copytree(host.state_dir, old)
    current = adoption(host)
    later = BranchRecord("inventory", "later", "running", False, False, "127.0.0.1", 54330, "baseful-inventory-later-x",
                         os.path.join(host.data_root, "inventory", "later"), "2026-01-02T00:00:00+00:00",
                         container_id="id-later", parent="dev", copy_mode="all", copy_method="snapshot")
    current.store.insert_branch(later)
    host.runtime.add(later)
    current.store.set_default("inventory", "later")
    current.store.close()
    shutil.rmtree(host.state_dir)
    shutil.copytree(old, host.state_dir)
    adopt = adoption(host)
    assert adopt.reconcile("inventory") == [ADOPT]
    assert adopt.store.branch("inventory", "later").parent == "dev"
    assert adopt.store.default_branch("inventory") == "production"  # the store's default stands
    assert not adopt.manifests.branches("inventory")[1].is_default  # and the manifests now say so too
    assert host.runtime.resets == []


def test_another_live_state_dir_on_the_same_data_root_is_refused_and_nothing_is_written(host):
    other = str(host.tmp / "other-state")
    listing = sorted(os.walk(host.data_root))
    with pytest.raises(InputError) as caught:
        adoption(host, state_dir=other).reconcile("inventory")
    assert caught.value.parameter == "data_root" and host.state_dir in str(caught.value)
    assert sorted(os.walk(host.data_root)) == listing


def test_a_manifest_whose_state_dir_is_gone_is_adopted_by_the_new_one(host):
    shutil.rmtree(host.state_dir)
    host.runtime.server_password = None
    other = str(host.tmp / "new-state")
    adopt = adoption(host, state_dir=other)
    assert adopt.reconcile("inventory") == [ADOPT]
    assert adopt.manifests.database("inventory").state_dir == os.path.realpath(other)


def test_a_directory_without_a_manifest_is_refused_for_a_new_database(host):
    os.makedirs(os.path.join(host.data_root, "someone", "pgdata"))
    adopt = adoption(host)
    with pytest.raises(InputError, match=r"^data_root: .*someone exists and holds no baseful.branching manifest"):
        adopt.reconcile("someone")
    assert adopt.reconcile("someone", unmanifested=False) == []  # a removal leaves it alone
    assert os.path.isdir(os.path.join(host.data_root, "someone", "pgdata"))


def test_a_port_another_record_holds_refuses_the_adoption_whole(host):
    shutil.rmtree(host.state_dir)
    store = Store(host.state_dir)
    store.add_database(DatabaseRecord("billing", "postgres:18", 18, "postgres", "/s", "t"))
    store.insert_branch(BranchRecord("billing", "production", "running", True, True, "127.0.0.1", 54321,
                                     "baseful-billing-production-q", "/d", "t"))
    store.close()
    adopt = adoption(host)
    with pytest.raises(BranchingError, match=r"^port: branch 'dev' .* 54321"):
        adopt.reconcile("inventory")
    assert adopt.store.database("inventory") is None and adopt.store.branches("inventory") == []


def test_records_made_before_manifests_are_backfilled(host):
    shutil.rmtree(os.path.join(host.data_root, "inventory", ".baseful"))
    adopt = adoption(host)
    assert adopt.reconcile("inventory") == []
    assert [b.name for b in adopt.manifests.branches("inventory")] == ["dev", "production", "qa"]


def test_a_branch_a_live_run_holds_is_not_adopted(host):
    """A delete removes the record first and the manifest after it, under the branch's lock: in between, its
    manifest is no lost record."""
    adopt = adoption(host)
    adopt.store.remove_branch("inventory", "dev")
    from ansible_collections.baseful.branching.plugins.module_utils.manifest import _write
    _write(os.path.join(host.data_root, "inventory", ".baseful", "branches", "dev.json"),
           {"format": 1, "kind": "branch", "database": "inventory", "name": "dev", "status": "deleting",
            "is_default": False, "protected": False, "host": "127.0.0.1", "port": 54321,
            "container_name": "c", "data_dir": os.path.join(host.data_root, "inventory", "dev"), "created_at": "t"})
    with adopt.store.lock("inventory/dev"):
        assert adopt.reconcile("inventory") == []
    assert adopt.reconcile("inventory") == [ADOPT]  # once no run holds it, it is a record to rebuild
    assert adopt.store.branch("inventory", "dev").status == "deleting"


def test_with_every_branch_stopped_the_root_is_started_to_check_the_password(host):
    shutil.rmtree(host.state_dir)
    for container in host.runtime.containers.values():
        container.status = "stopped"
    host.runtime.server_password = "given"
    adoption(host).reconcile("inventory", password="given")
    assert host.runtime.started == host.runtime.stopped == ["id-production"] and host.runtime.resets == []
    assert all(c.status == "stopped" for c in host.runtime.containers.values())


def test_a_copy_of_a_database_directory_is_refused_not_adopted(host):
    shutil.copytree(os.path.join(host.data_root, "inventory"), os.path.join(host.data_root, "backup_inventory"))
    shutil.rmtree(host.state_dir)
    adopt = adoption(host)
    with pytest.raises(InputError, match=r"^data_root: .*backup_inventory holds the manifest of database 'inventory'"):
        adopt.reconcile("backup_inventory")
    assert adopt.ours(["backup_inventory", "inventory"]) == ["inventory"]
    assert adopt.store.database("backup_inventory") is None


def test_a_branch_manifest_that_describes_other_data_is_refused(host):
    record = Store(host.state_dir, read_only=True).branch("inventory", "dev")
    elsewhere = BranchRecord(**dict(vars(record), name="stray", data_dir="/somewhere/else"))
    Manifests(host.data_root, host.state_dir).branch_changed(elsewhere)
    with pytest.raises(InputError, match=r"^data_root: the manifest of branch 'stray' .* a copy"):
        adoption(host).reconcile("inventory")


def test_an_older_store_naming_another_incarnation_of_a_branch_is_refused(host):
    old = host.tmp / "old-state"
    shutil.copytree(host.state_dir, old)
    current = adoption(host)
    current.store.remove_branch("inventory", "dev")  # dev deleted, then made again
    again = BranchRecord("inventory", "dev", "running", False, False, "127.0.0.1", 54325, "baseful-inventory-dev-new",
                         os.path.join(host.data_root, "inventory", "dev"), "2026-02-01T00:00:00+00:00", container_id="id-new")
    current.store.insert_branch(again)
    current.store.close()
    shutil.rmtree(host.state_dir)
    shutil.copytree(old, host.state_dir)
    adopt = adoption(host)
    assert adopt.needed("inventory")
    with pytest.raises(BranchingError, match=r"^state_dir: the record of branch 'dev' .* state.db is an older copy"):
        adopt.reconcile("inventory")


def test_within_one_incarnation_the_stricter_of_store_and_host_wins(host):
    first = adoption(host)
    first.store.update_branch("inventory", "qa", expires_at="2026-01-02T00:00:00+00:00")  # the old lease
    first.store.close()
    old = host.tmp / "old-state"
    shutil.copytree(host.state_dir, old)
    current = adoption(host)
    current.store.update_branch("inventory", "dev", protected=1)
    current.store.update_branch("inventory", "qa", expires_at="2099-01-01T00:00:00+00:00")
    current.store.close()
    shutil.rmtree(host.state_dir)
    shutil.copytree(old, host.state_dir)
    adopt = adoption(host)
    assert adopt.needed("inventory")
    assert adopt.reconcile("inventory") == []  # nothing adopted: records corrected
    assert adopt.store.branch("inventory", "dev").protected
    assert adopt.store.branch("inventory", "qa").expires_at == "2099-01-01T00:00:00+00:00"
    assert not adopt.needed("inventory")


def test_a_store_the_manifests_do_not_name_claims_them(host):
    moved = str(host.tmp / "moved-state")
    shutil.move(host.state_dir, moved)
    adopt = adoption(host, state_dir=moved)
    assert adopt.needed("inventory")
    assert adopt.reconcile("inventory") == []
    assert adopt.manifests.database("inventory").state_dir == os.path.realpath(moved)
    assert not adopt.needed("inventory")
