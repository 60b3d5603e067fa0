"""The planner: desired branch against recorded and live state -> actions, before and after."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.masking import decode as decode_rules
from ansible_collections.baseful.branching.plugins.module_utils.masking import rule_names
from ansible_collections.baseful.branching.plugins.module_utils.migrations import decode
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    CREATING,
    DELETING,
    MISSING,
    NO_LEASE,
    RESETTING,
    RUNNING,
    STOPPED,
    BranchRecord,
)
from ansible_collections.baseful.branching.plugins.module_utils.plan import (
    CLEANUP,
    CREATE,
    DELETE,
    RECREATE_CONTAINER,
    RESET,
    SET_DEFAULT,
    SET_PROTECTED,
    SET_TTL,
    START,
    STOP,
    ActualBranch,
    BranchRequest,
    plan_branch,
)

DB = "inventory"
NAMES = ["production", "feature", "staging"]


def record(name: str = "feature", status: str = RUNNING, **values) -> BranchRecord:
    base = {"database": DB, "name": name, "status": status, "is_default": False, "protected": False,
            "host": "127.0.0.1", "port": 54321, "container_name": f"baseful-{DB}-{name}-abc123",
            "data_dir": f"/data/{DB}/{name}", "created_at": "2024-01-01T00:00:00+00:00", "container_id": "c0ffee",
            "parent": "production", "copy_mode": "all", "copy_method": "dump"}
    return BranchRecord(**{**base, **values})


def view(rec: BranchRecord, status: str | None = None, **changes) -> dict:
    result = {"name": rec.name, "status": status or rec.status, "is_default": rec.is_default,
              "protected": rec.protected, "port": rec.port, "parent": rec.parent, "copy_mode": rec.copy_mode,
              "copy_method": rec.copy_method, "ttl": rec.ttl_seconds,
              "migrations": [entry.file for entry in decode(rec.migrations)], "masked": bool(rec.mask),
              "mask": rule_names(decode_rules(rec.mask)), "filter": json.loads(rec.filter or "{}")}
    result.update(changes)
    return result


def request(name: str = "feature", **values) -> BranchRequest:
    return BranchRequest(database=DB, name=name, **values)


def existing(rec: BranchRecord, container_status: str | None = None, **values) -> ActualBranch:
    return ActualBranch(record=rec, container_status=container_status or rec.status, **values)


NOTHING = ActualBranch(record=None)


def plan(req, actual, default="production", names=tuple(NAMES)):
    return plan_branch(req, actual, default, list(names))


# ------------------------------------------------------------------ create

@pytest.mark.parametrize("state, actions, status, is_default", [
    ("present", [CREATE], RUNNING, False),
    ("started", [CREATE], RUNNING, False),
    ("stopped", [CREATE, STOP], STOPPED, False),
    ("default", [CREATE, SET_DEFAULT], RUNNING, True),
])
def test_create_a_new_branch(state, actions, status, is_default):
    result = plan(request("new", state=state), NOTHING)
    assert result.actions == actions
    assert result.changed
    assert result.source == "production"
    assert result.before == {}
    assert result.after == {"name": "new", "status": status, "is_default": is_default, "protected": False,
                            "port": None, "parent": "production", "copy_mode": "all", "copy_method": "auto",
                            "ttl": None}


def test_create_carries_every_requested_option_into_after():
    req = request("new", source="staging", copy_mode="schema", copy_method="dump", ttl_seconds=3600, port=54330,
                  protected=True)
    result = plan(req, NOTHING)
    assert result.actions == [CREATE]
    assert result.source == "staging"
    assert result.after == {"name": "new", "status": RUNNING, "is_default": False, "protected": True, "port": 54330,
                            "parent": "staging", "copy_mode": "schema", "copy_method": "dump", "ttl": 3600}


def test_create_copies_from_the_current_default_when_no_source_is_named():
    assert plan(request("new"), NOTHING, default="staging").source == "staging"


def test_create_from_an_unknown_source_is_refused_listing_the_branches():
    with pytest.raises(InputError) as caught:
        plan(request("new", source="nosuch"), NOTHING)
    assert caught.value.parameter == "source"
    assert "'nosuch' does not exist in database 'inventory'" in str(caught.value)
    assert "existing branches: feature, production, staging" in str(caught.value)


def test_create_without_any_branch_to_copy_from_is_refused():
    with pytest.raises(InputError, match=r"^source: branch None does not exist .*existing branches: none$"):
        plan(request("new"), NOTHING, default=None, names=[])


def test_create_from_itself_is_refused():
    with pytest.raises(InputError) as caught:
        plan(request("new", source="new"), NOTHING)
    assert caught.value.parameter == "source"


def test_reset_of_a_branch_that_does_not_exist_is_refused():
    with pytest.raises(InputError, match=r"^reset: branch 'new' does not exist yet"):
        plan(request("new", reset=True), NOTHING)


# ------------------------------------------------------------------ existing: idempotence, start, stop

@pytest.mark.parametrize("status, state", [
    (RUNNING, "present"), (RUNNING, "started"), (STOPPED, "present"), (STOPPED, "stopped"),
])
def test_existing_branch_in_the_wanted_state_needs_nothing(status, state):
    rec = record(status=status, ttl_seconds=600, protected=True)
    result = plan(request(state=state, ttl_seconds=600, protected=True, port=54321), existing(rec))
    assert result.actions == []
    assert not result.changed
    assert result.before == result.after == view(rec)
    assert result.source is None


def test_reconnect_without_options_keeps_recorded_ones():
    rec = record(ttl_seconds=600, protected=True, copy_mode="schema")
    result = plan(request(), existing(rec))  # ttl/protected/port None: keep what is recorded
    assert result.actions == []
    assert result.after == view(rec)


def test_start_a_stopped_branch():
    rec = record(status=STOPPED)
    result = plan(request(state="started"), existing(rec))
    assert result.actions == [START]
    assert result.before == view(rec, STOPPED)
    assert result.after == view(rec, RUNNING)


def test_stop_a_running_branch():
    rec = record()
    result = plan(request(state="stopped"), existing(rec))
    assert result.actions == [STOP]
    assert result.before["status"] == RUNNING
    assert result.after == view(rec, STOPPED)


def test_live_container_status_wins_over_the_recorded_one():
    rec = record(status=RUNNING)  # recorded running, but Docker says it is stopped
    result = plan(request(state="started"), existing(rec, container_status=STOPPED))
    assert result.actions == [START]
    assert result.before["status"] == STOPPED


# ------------------------------------------------------------------ default, protected, ttl

def test_make_a_running_branch_the_default():
    rec = record()
    result = plan(request(state="default"), existing(rec))
    assert result.actions == [SET_DEFAULT]
    assert result.before["is_default"] is False
    assert result.after == view(rec, is_default=True)


def test_make_a_stopped_branch_the_default_starts_it_first():
    rec = record(status=STOPPED)
    result = plan(request(state="default"), existing(rec))
    assert result.actions == [START, SET_DEFAULT]
    assert result.after == view(rec, RUNNING, is_default=True)


def test_the_default_branch_stays_default_without_actions():
    rec = record(is_default=True)
    result = plan(request(state="default"), existing(rec), default="feature")
    assert result.actions == []
    assert result.after == result.before


@pytest.mark.parametrize("was, wanted", [(False, True), (True, False)])
def test_set_protected(was, wanted):
    rec = record(protected=was)
    result = plan(request(protected=wanted), existing(rec))
    assert result.actions == [SET_PROTECTED]
    assert result.before["protected"] is was
    assert result.after == view(rec, protected=wanted)


@pytest.mark.parametrize("was", [None, 60])
def test_set_ttl(was):
    rec = record(ttl_seconds=was)
    result = plan(request(ttl_seconds=3600), existing(rec))
    assert result.actions == [SET_TTL]
    assert result.before["ttl"] == was
    assert result.after == view(rec, ttl=3600)


def test_several_changes_in_executor_order():
    rec = record(status=STOPPED, protected=False, ttl_seconds=None)
    result = plan(request(state="default", protected=True, ttl_seconds=60), existing(rec))
    assert result.actions == [START, SET_DEFAULT, SET_PROTECTED, SET_TTL]
    assert result.after == view(rec, RUNNING, is_default=True, protected=True, ttl=60)


def test_planning_does_not_mutate_the_record():
    rec = record(status=STOPPED)
    snapshot = replace(rec)
    plan(request(state="default", protected=True, ttl_seconds=60, port=54322), existing(rec))
    assert rec == snapshot


# ------------------------------------------------------------------ reset

@pytest.mark.parametrize("status, state, actions", [
    (RUNNING, "present", [RESET]),
    (STOPPED, "present", [RESET]),
    (MISSING, "started", [RESET]),
    (RUNNING, "stopped", [RESET, STOP]),
])
def test_reset_recopies_from_the_parent(status, state, actions):
    rec = record(parent="staging", copy_mode="schema", copy_method="dump")
    result = plan(request(state=state, reset=True), existing(rec, container_status=status))
    assert result.actions == actions
    assert result.source == "staging"
    assert result.before == view(rec, status)
    assert result.after == view(rec, STOPPED if state == "stopped" else RUNNING)


def test_reset_may_change_source_and_copy_mode_and_keeps_the_port():
    rec = record(parent="staging", copy_mode="schema", copy_method="dump")
    result = plan(request(reset=True, source="production", copy_mode="all"), existing(rec))
    assert result.actions == [RESET]
    assert result.source == "production"
    assert result.after == view(rec, parent="production", copy_mode="all", copy_method="dump", port=54321)


def test_reset_without_a_recorded_parent_uses_the_default():
    rec = record(parent=None, copy_mode=None, copy_method=None)
    result = plan(request(reset=True), existing(rec))
    assert result.source == "production"
    assert result.after["copy_mode"] == "all" and result.after["copy_method"] == "auto"


def test_reset_of_a_protected_branch_is_refused():
    rec = record(protected=True)
    with pytest.raises(InputError, match=r"^reset: branch 'feature' is protected and cannot be reset"):
        plan(request(reset=True), existing(rec))


def test_reset_that_also_unprotects_is_still_refused():
    # protection is lifted in its own run first, never in the same breath as the reset
    with pytest.raises(InputError, match=r"^reset: "):
        plan(request(reset=True, protected=False), existing(record(protected=True)))


def test_reset_of_the_default_branch_is_refused():
    # a failed re-copy would leave the database without a default, so the default is never reset
    rec = record(parent=None)
    with pytest.raises(InputError, match=r"^reset: branch 'feature' is the default branch of database 'inventory' "
                                         r"and cannot be reset"):
        plan(request(reset=True), existing(rec), default="feature")


def test_reset_from_itself_is_refused():
    with pytest.raises(InputError, match=r"^source: .*itself"):
        plan(request(reset=True, source="feature"), existing(record()))


def test_reset_whose_parent_was_deleted_is_refused():
    rec = record(parent="gone")
    with pytest.raises(InputError, match=r"^source: branch 'gone' does not exist"):
        plan(request(reset=True), existing(rec))


# ------------------------------------------------------------------ repair: container gone, port change

@pytest.mark.parametrize("state, status", [("present", RUNNING), ("started", RUNNING), ("stopped", STOPPED)])
def test_missing_container_is_recreated_from_the_data_directory(state, status):
    rec = record()
    result = plan(request(state=state), existing(rec, container_status=MISSING))
    assert result.actions == [RECREATE_CONTAINER]
    assert result.before == view(rec, MISSING)
    assert result.after == view(rec, status)


def test_missing_container_and_lost_data_directory_is_an_error():
    rec = record()
    with pytest.raises(InputError) as caught:
        plan(request(state="started"), existing(rec, container_status=MISSING, data_dir_exists=False))
    assert caught.value.parameter == "name"
    assert "lost its data directory /data/inventory/feature" in str(caught.value)
    assert "state: absent" in str(caught.value) and "reset: true" in str(caught.value)


def test_lost_data_directory_can_still_be_reset():
    rec = record()
    result = plan(request(reset=True), existing(rec, container_status=MISSING, data_dir_exists=False))
    assert result.actions == [RESET]


@pytest.mark.parametrize("state", ["present", "started", "stopped", "default"])
def test_a_running_container_over_a_lost_data_directory_is_an_error_not_ok(state):
    """The server may still answer from open files; it is not the branch any more."""
    with pytest.raises(InputError, match=r"^name: branch 'feature' has lost its data directory"):
        plan(request(state=state), existing(record(), container_status=RUNNING, data_dir_exists=False))


@pytest.mark.parametrize("state, actions, status", [
    ("present", [RESET], RUNNING),
    ("started", [RESET], RUNNING),
    ("stopped", [RESET, STOP], STOPPED),
])
def test_a_reset_that_died_half_way_is_done_again_keeping_the_branch(state, actions, status):
    rec = record(status=RESETTING, port=54329, ttl_seconds=3600, parent="staging")
    result = plan(request(state=state), existing(rec, container_status=MISSING, data_dir_exists=False),
                  names=NAMES)
    assert result.actions == actions
    assert result.source == "staging"  # the source the dead reset was copying from
    assert result.after["port"] == 54329 and result.after["ttl"] == 3600 and result.after["status"] == status


def test_a_reset_that_died_half_way_can_be_deleted():
    rec = record(status=RESETTING)
    result = plan(request(state="absent"), existing(rec, container_status=MISSING, data_dir_exists=False))
    assert result.actions == [DELETE]


def test_port_change_recreates_the_container():
    rec = record(port=54321)
    result = plan(request(port=54325), existing(rec))
    assert result.actions == [RECREATE_CONTAINER]
    assert result.before["port"] == 54321
    assert result.after == view(rec, port=54325)


def test_port_change_and_stop_recreates_a_stopped_container():
    rec = record(port=54321)
    result = plan(request(port=54325, state="stopped"), existing(rec))
    assert result.actions == [RECREATE_CONTAINER]
    assert result.after == view(rec, STOPPED, port=54325)


def test_port_change_with_lost_data_directory_is_an_error():
    with pytest.raises(InputError, match=r"^name: .*lost its data directory"):
        plan(request(port=54325), existing(record(), data_dir_exists=False))


# ------------------------------------------------------------------ absent

def test_delete_an_ordinary_branch():
    rec = record()
    result = plan(request(state="absent"), existing(rec))
    assert result.actions == [DELETE]
    assert result.before == view(rec)
    assert result.after == {}


def test_delete_a_branch_whose_container_is_gone():
    rec = record()
    result = plan(request(state="absent"), existing(rec, container_status=MISSING, data_dir_exists=False))
    assert result.actions == [DELETE]
    assert result.before["status"] == MISSING


def test_deleting_the_default_branch_is_refused():
    rec = record(is_default=True)
    with pytest.raises(InputError) as caught:
        plan(request(state="absent"), existing(rec), default="feature")
    assert caught.value.parameter == "name"
    assert "is the default branch of database 'inventory' and cannot be deleted" in str(caught.value)


def test_deleting_a_protected_branch_is_refused():
    rec = record(protected=True)
    with pytest.raises(InputError) as caught:
        plan(request(state="absent"), existing(rec))
    assert caught.value.parameter == "name"
    assert "is protected and cannot be deleted" in str(caught.value)


@pytest.mark.parametrize("asked, flags, parameter, phrase", [
    # deleting it, even unprotected (by an older version, or by hand in the store) and not the default
    ({"state": "absent"}, {"protected": True}, "state", "database state: absent"),
    ({"state": "absent"}, {"protected": False}, "state", "database state: absent"),
    ({"protected": False}, {"protected": True, "is_default": True}, "protected", "stays protected"),
    ({"reset": True}, {"protected": False}, "reset", "cannot be reset"),  # by its name, not its flags
])
def test_the_root_branch_cannot_go_be_unprotected_or_reset(asked, flags, parameter, phrase):
    rec = record(name="production", parent=None, **flags)
    default = "production" if flags.get("is_default") else "feature"
    with pytest.raises(InputError) as caught:
        plan(request("production", **asked), existing(rec), default=default)
    assert caught.value.parameter == parameter
    assert "root branch" in str(caught.value) and phrase in str(caught.value)


def test_protecting_production_again_is_no_change():
    rec = record(name="production", protected=True, is_default=True, parent=None)
    assert plan(request("production", protected=True), existing(rec), default="production").actions == []


def test_ttl_none_removes_a_lease():
    rec = record(ttl_seconds=600, expires_at="2026-01-01T00:10:00+00:00")
    result = plan(request(ttl_seconds=NO_LEASE), existing(rec))
    assert result.actions == [SET_TTL]
    assert result.before["ttl"] == 600 and result.after["ttl"] is None


def test_ttl_none_on_a_branch_without_a_lease_changes_nothing():
    assert plan(request(ttl_seconds=NO_LEASE), existing(record())).actions == []


def test_a_new_branch_with_ttl_none_has_no_lease():
    assert plan(request("new", ttl_seconds=NO_LEASE), NOTHING).after["ttl"] is None


def test_deleting_a_missing_branch_changes_nothing():
    result = plan(request("ghost", state="absent"), NOTHING)
    assert result.actions == []
    assert not result.changed
    assert result.before == result.after == {}


def test_deleting_a_missing_branch_with_stray_containers_cleans_them():
    result = plan(request("ghost", state="absent"), ActualBranch(record=None, stray_containers=2))
    assert result.actions == [CLEANUP]
    assert result.before == result.after == {}


# ------------------------------------------------------------------ cleanup of crashed work

@pytest.mark.parametrize("status", [CREATING, DELETING])
def test_half_made_branch_is_cleaned_up_and_made_again(status):
    rec = record(status=status)
    result = plan(request(state="started"), existing(rec, container_status=MISSING))
    assert result.actions == [CLEANUP, CREATE]
    assert result.before == {}  # an unfinished record is not a branch
    assert result.after["status"] == RUNNING and result.after["parent"] == "production"


@pytest.mark.parametrize("status", [CREATING, DELETING])
def test_half_made_branch_is_cleaned_up_on_absent(status):
    # even when the crashed record carries flags that would otherwise refuse a delete
    rec = record(status=status, protected=True, is_default=True)
    result = plan(request(state="absent"), existing(rec, container_status=RUNNING), default="feature")
    assert result.actions == [CLEANUP]
    assert result.before == result.after == {}


def test_stray_containers_without_a_record_are_cleaned_before_create():
    result = plan(request("new", state="stopped"), ActualBranch(record=None, stray_containers=1))
    assert result.actions == [CLEANUP, CREATE, STOP]


def test_half_made_branch_with_a_bad_source_is_refused_before_cleanup():
    with pytest.raises(InputError, match=r"^source: "):
        plan(request(source="nosuch"), existing(record(status=CREATING)))


@pytest.mark.parametrize("source, message", [("feature", "cannot be copied from itself"), ("nope", "does not exist")])
def test_a_wrong_source_is_refused_even_when_no_copy_would_use_it(source, message):
    with pytest.raises(InputError, match=rf"^source: .*{message}"):
        plan(request(source=source, state="started"), existing(record()))
