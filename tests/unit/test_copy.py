"""The copy engine's pure parts: which method serves a request, the dump worker's script, and the
check that every stage of its pipelines reported success."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.baseful.branching.plugins.module_utils.copy import (
    CopyJob,
    Endpoint,
    Situation,
    _why_not,
    check_request,
    choose_method,
    method_for,
    method_names,
)
from ansible_collections.baseful.branching.plugins.module_utils.copy.dump import (
    check_stages,
    dump_script,
)
from ansible_collections.baseful.branching.plugins.module_utils.errors import (
    CopyFailed,
    InputError,
)
from ansible_collections.baseful.branching.plugins.module_utils.runtime import (
    SECRET_IN_CONTAINER,
)

SITUATIONS = list(itertools.product(("all", "schema", "empty"), (True, False), (True, False), (True, False)))
SITUATION_IDS = [f"{m}-{'same' if s else 'other'}major-{'ext' if e else 'managed'}-{'cow' if c else 'nocow'}"
                 for m, s, e, c in SITUATIONS]


# ------------------------------------------------------------------ choose_method

def test_every_registered_method_has_its_file_and_is_the_one_auto_picks_somewhere():
    """The registry names a file per method whose METHOD carries that name, and every method is auto's choice
    in some situation: a registered method that nothing can reach is dead."""
    picked = {choose_method("auto", mode, same, external, cow) for mode, same, external, cow in SITUATIONS}
    names = method_names()
    for name in names:
        method = method_for(name)
        assert method.name == name and callable(method.run) and callable(method.serves)
        assert isinstance(method.fills_data_dir, bool) and isinstance(method.needs_running_source, bool)
    assert picked == set(names) and len(names) == len(set(names))
    assert names == sorted(names, key=["snapshot", "physical", "dump"].index)  # fastest first


def expected_auto(mode, same_major, external, cow):
    full_local_copy = mode == "all" and same_major and not external
    if full_local_copy and cow:
        return "snapshot"
    return "physical" if full_local_copy else "dump"


@pytest.mark.parametrize("mode, same_major, external, cow", SITUATIONS, ids=SITUATION_IDS)
def test_auto_picks_the_fastest_correct_method(mode, same_major, external, cow):
    assert choose_method("auto", mode, same_major, external, cow) == expected_auto(mode, same_major, external, cow)
    assert choose_method("dump", mode, same_major, external, cow) == "dump"


@pytest.mark.parametrize("method", ["snapshot", "physical"])
@pytest.mark.parametrize("mode, same_major, external, cow", SITUATIONS, ids=SITUATION_IDS)
def test_an_explicit_method_serves_exactly_where_it_is_correct(method, mode, same_major, external, cow):
    full_local_copy = mode == "all" and same_major and not external
    serves = full_local_copy and (cow or method == "physical")
    if serves:
        assert choose_method(method, mode, same_major, external, cow) == method
        return
    with pytest.raises(InputError) as caught:
        choose_method(method, mode, same_major, external, cow)
    assert caught.value.parameter == "copy_method"
    assert str(caught.value).startswith(f"copy_method: {method!r} cannot serve this copy (")


@pytest.mark.parametrize("method, mode, same_major, external, cow, reason", [
    ("snapshot", "schema", True, False, True, "copy 'schema' needs a logical copy; snapshot copies whole data"),
    ("physical", "empty", True, False, True, "copy 'empty' needs a logical copy; physical copies whole data"),
    ("snapshot", "all", True, True, True, "the source is an external server"),
    ("physical", "all", True, True, False, "the source is an external server"),
    ("snapshot", "all", False, False, True, "different PostgreSQL major versions"),
    ("physical", "all", False, False, True, "different PostgreSQL major versions"),
    ("snapshot", "all", True, False, False, "data_root does not support reflinks, as XFS with reflink=1 and btrfs do"),
])
def test_refusal_explains_why_the_method_cannot_serve(method, mode, same_major, external, cow, reason):
    with pytest.raises(InputError) as caught:
        choose_method(method, mode, same_major, external, cow)
    message = str(caught.value)
    assert message.startswith(f"copy_method: {method!r} cannot serve this copy (")
    assert reason in message
    usable = "physical, dump" if mode == "all" and same_major and not external else "dump"
    assert message.endswith(f"use one of: auto, {usable}")


def test_why_not_reasons_in_order_of_precedence():
    # a filter is the first reason, the copy mode the next, then an external source, then the major version
    assert _why_not("physical", Situation("all", True, False, True, filtered=True)).startswith(
        "filter selects rows, which only a logical copy does")
    assert "needs a logical copy" in _why_not("snapshot", Situation("schema", False, True, False))
    assert _why_not("snapshot", Situation("all", False, True, False)) == "the source is an external server"
    assert _why_not("physical", Situation("all", False, False, True)) == ("source and target run different PostgreSQL "
                                                                          "major versions")
    assert _why_not("snapshot", Situation("all", True, False, False)) == \
        "data_root does not support reflinks, as XFS with reflink=1 and btrfs do"


def test_a_filtered_copy_is_served_by_dump_alone():
    assert choose_method("auto", "all", True, False, True, filtered=True) == "dump"
    assert choose_method("auto", "schema", True, False, True, filtered=True) == "dump"
    with pytest.raises(InputError, match=r"^copy_method: 'snapshot' cannot serve this copy \(filter selects rows"):
        choose_method("snapshot", "all", True, False, True, filtered=True)
    with pytest.raises(InputError, match=r"^copy_method: 'physical' cannot serve this copy \(filter selects rows"):
        check_request(None, "physical", filtered=True)
    check_request(None, "dump", filtered=True)


def test_unknown_method_is_refused():
    with pytest.raises(InputError, match=r"^copy_method: 'rsync' cannot serve this copy"):
        choose_method("rsync", "all", True, False, True)


# ------------------------------------------------------------------ dump_script

PASSWORD = "Sup3r$ecret'pw"
TARGET = Endpoint(conninfo="host=127.0.0.1 port=54322 user=postgres", container="baseful-inventory-feature-x")
MANAGED = Endpoint(conninfo="host=127.0.0.1 port=54321 user=postgres dbname=inventory", pg_major=17)
EXTERNAL = Endpoint(url=f"postgresql://app:{PASSWORD}@db.example.com:5432/shop", pg_major=15)


def job(mode: str = "all", source: Endpoint = MANAGED) -> CopyJob:
    return CopyJob(database="inventory", branch="feature", mode=mode, image="postgres:17", pg_major=17,
                   user="postgres", dbname="inventory", password_file="/state/secrets/inventory.password",
                   source=source, target=TARGET)


def test_managed_source_copies_roles_and_recreates_the_database():
    script, env, stages = dump_script(job("all", MANAGED))
    assert stages == ["globals_dump", "globals_filter", "globals_restore", "dump", "restore"]
    assert "pg_dumpall" in script and "--globals-only" in script
    assert "--exit-on-error" in script and "ON_ERROR_STOP=1" in script
    assert env["SRC"] == MANAGED.conninfo
    assert env["SUPERUSER"] == "postgres"
    assert env["DUMP_ARGS"] == ""
    assert env["DST_ADMIN"] == f"{TARGET.conninfo} dbname=postgres"
    assert env["RESTORE_DB"] == env["DST_ADMIN"]
    assert env["RESTORE_ARGS"].split() == ["--create", "--clean", "--if-exists"]


def test_external_source_is_restored_without_its_owners_or_roles():
    script, env, stages = dump_script(job("all", EXTERNAL))
    assert stages == ["dump", "restore"]
    assert "pg_dumpall" not in script and "globals" not in script
    # the URL's password never reaches a command line: it is cut out and passed by environment only
    assert env["SRC"] == "postgresql://app@db.example.com:5432/shop"
    assert env["SRC_PASSWORD"] == PASSWORD and env["SRC_IS_EXTERNAL"] == "1"
    assert PASSWORD not in script
    assert env["RESTORE_DB"] == f"{TARGET.conninfo} dbname=inventory"
    assert env["RESTORE_ARGS"].split() == ["--no-owner", "--no-privileges"]
    assert "--create" not in env["RESTORE_ARGS"]


@pytest.mark.parametrize("source", [MANAGED, EXTERNAL], ids=["managed", "external"])
def test_schema_mode_dumps_the_schema_only(source):
    script, env, stages = dump_script(job("schema", source))
    assert env["DUMP_ARGS"] == "--schema-only"
    assert "$DUMP_ARGS" in script
    assert stages[-2:] == ["dump", "restore"]


@pytest.mark.parametrize("source", [MANAGED, EXTERNAL], ids=["managed", "external"])
def test_empty_mode_runs_nothing(source):
    script, _env, stages = dump_script(job("empty", source))
    assert script == ""
    assert stages == []


@pytest.mark.parametrize("mode", ["all", "schema"])
@pytest.mark.parametrize("source", [MANAGED, EXTERNAL], ids=["managed", "external"])
def test_every_stage_reports_its_exit_status_and_no_secret_is_in_the_script(mode, source):
    script, _env, stages = dump_script(job(mode, source))
    for stage in stages:
        assert f'echo "{stage}=$?" >>"$rc"' in script or f'echo "{stage}=$s" >>"$rc"' in script, stage
    assert PASSWORD not in script
    assert "postgresql://" not in script  # the URL reaches the worker through its environment only
    assert f"$(cat {SECRET_IN_CONTAINER})" in script  # the password is read inside the container
    assert "2>&1" not in script  # stderr never joins the SQL stream


# ------------------------------------------------------------------ check_stages

STAGES = ["globals_dump", "globals_filter", "globals_restore", "dump", "restore"]


def test_all_stages_zero_is_success():
    output = "NOTICE: something\n" + "\n".join(f"{s}=0" for s in STAGES) + "\n"
    assert check_stages(output, STAGES) == dict.fromkeys(STAGES, 0)


def test_no_stages_needs_no_output():
    assert check_stages("", []) == {}


@pytest.mark.parametrize("failing, status", [("dump", "1"), ("globals_filter", "2"), ("restore", "-1"),
                                             ("globals_restore", "141")])
def test_a_non_zero_stage_fails_the_copy_naming_it(failing, status):
    output = "\n".join(f"{s}={status if s == failing else 0}" for s in STAGES)
    with pytest.raises(CopyFailed) as caught:
        check_stages(output, STAGES)
    assert str(caught.value) == f"{failing} exited {int(status)}"


def test_a_stage_without_a_status_fails_the_copy_naming_it():
    output = "\n".join(f"{s}=0" for s in STAGES if s != "restore")
    with pytest.raises(CopyFailed, match=r"^restore reported no status$"):
        check_stages(output, STAGES)


def test_every_failed_stage_is_named():
    with pytest.raises(CopyFailed) as caught:
        check_stages("dump=2\nrestore=\nother=0\n", ["dump", "restore"])
    assert str(caught.value) == "dump exited 2; restore reported no status"


@pytest.mark.parametrize("garbage", ["dump=ok", "dump=", "dump", "dump = 0x", "xdump=0", "dump=0 extra"])
def test_a_garbled_status_counts_as_missing(garbage):
    with pytest.raises(CopyFailed, match=r"^dump reported no status$"):
        check_stages(f"{garbage}\nrestore=0\n", ["dump", "restore"])


# ------------------------------------------------------------------ the script, run with stand-in tools

STUB = """#!/bin/sh
# stand-in for {tool}: logs its arguments and stdin, then exits as told
echo "$*" >"$LOG/{tool}.args"
{body}
exit "${{RC_{var}:-0}}"
"""
BODIES = {
    "pg_dumpall": 'printf "CREATE ROLE postgres;\\nALTER ROLE postgres WITH SUPERUSER;\\nCREATE ROLE app;\\n"',
    "pg_dump": 'echo "DUMPED DATA"',
    "pg_restore": 'cat >"$LOG/pg_restore.stdin"',
    "psql": 'cat >"$LOG/psql.stdin"',
}


@pytest.fixture
def tools(tmp_path) -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for tool, body in BODIES.items():
        path = bin_dir / tool
        path.write_text(STUB.format(tool=tool, body=body, var=tool.upper()))
        path.chmod(0o755)
    return tmp_path


def run_script(tools: Path, copy_job: CopyJob, **exit_codes) -> subprocess.CompletedProcess:
    script, env, _stages = dump_script(copy_job)
    environment = dict(env, PATH=f"{tools / 'bin'}:{os.environ['PATH']}", LOG=str(tools / "log"),
                       **{f"RC_{tool.upper()}": str(code) for tool, code in exit_codes.items()})
    return subprocess.run(["sh", "-c", script], check=False, env=environment, capture_output=True, text=True, timeout=20)


def test_script_runs_every_stage_and_filters_the_superuser_role(tools):
    done = run_script(tools, job("all", MANAGED))
    assert done.returncode == 0, done.stderr
    assert check_stages(done.stdout, STAGES) == dict.fromkeys(STAGES, 0)
    restored_globals = (tools / "log" / "psql.stdin").read_text().splitlines()
    assert restored_globals == ["ALTER ROLE postgres WITH SUPERUSER;", "CREATE ROLE app;"]
    assert (tools / "log" / "pg_restore.stdin").read_text() == "DUMPED DATA\n"
    assert "--create --clean --if-exists" in (tools / "log" / "pg_restore.args").read_text()
    assert "--globals-only" in (tools / "log" / "pg_dumpall.args").read_text()


def test_script_passes_schema_only_to_pg_dump(tools):
    done = run_script(tools, job("schema", EXTERNAL))
    assert check_stages(done.stdout, ["dump", "restore"]) == {"dump": 0, "restore": 0}
    passwordless = "postgresql://app@db.example.com:5432/shop"
    assert (tools / "log" / "pg_dump.args").read_text().split() == [f"--dbname={passwordless}", "--format=custom",
                                                                    "--schema-only"]
    assert not (tools / "log" / "pg_dumpall.args").exists()


@pytest.mark.parametrize("tool, stage", [("pg_dump", "dump"), ("pg_restore", "restore"),
                                         ("pg_dumpall", "globals_dump"), ("psql", "globals_restore")])
def test_a_failure_anywhere_in_a_pipe_is_caught(tools, tool, stage):
    # the pipe's last process succeeds, so the shell's own status would hide a failing first stage
    done = run_script(tools, job("all", MANAGED), **{tool: 3})
    with pytest.raises(CopyFailed, match=rf"(^|; ){stage} exited 3($|;)"):
        check_stages(done.stdout, STAGES)
