"""Migrations and schema comparison, the pure parts: which files run in which order, what a branch has had, where
MIGRATE goes in a plan, and how two catalog readings and two dumps compare."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.baseful.branching.plugins.module_utils import plan as P
from ansible_collections.baseful.branching.plugins.module_utils.compare import (
    KINDS,
    changes,
    normalised_ddl,
    row_changes,
    unified,
)
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.migrations import (
    Applied,
    MigrationFile,
    decode,
    encode,
    failed_file,
    failure_summary,
    history_sql,
    inherited,
    order,
    pending,
    reconcile,
)
from ansible_collections.baseful.branching.plugins.module_utils.model import RUNNING, STOPPED, BranchRecord
from ansible_collections.baseful.branching.plugins.module_utils.storage import HostStorage


def migration(name: str, sql: str = "SELECT 1;") -> MigrationFile:
    return MigrationFile(name, f"/srv/m/{name}", sql.encode())


def had(*names: str, sql: str = "SELECT 1;") -> list:
    return [Applied(name, hashlib.sha256(sql.encode()).hexdigest(), "2026-12-05T10:00:00+00:00") for name in names]


def test_a_directory_runs_its_sql_files_in_name_order_and_a_file_as_given():
    found = order([("/m", ["/m/010_b.sql", "/m/002_a.sql", "/m/README.md", "/m/001_z.sql"]),
                   ("/extra/zz_first.sql", ["/extra/zz_first.sql"])])
    assert found == [("001_z.sql", "/m/001_z.sql"), ("002_a.sql", "/m/002_a.sql"), ("010_b.sql", "/m/010_b.sql"),
                     ("zz_first.sql", "/extra/zz_first.sql")]


def test_a_name_given_twice_is_refused_naming_both_paths():
    with pytest.raises(InputError, match=r"^migrations: two files are named '001.sql' \(/a/001.sql and /b/001.sql\)"):
        order([("/a", ["/a/001.sql"]), ("/b", ["/b/001.sql"])])


def test_pending_skips_what_was_had_and_refuses_a_changed_file():
    wanted = [migration("001.sql"), migration("002.sql"), migration("003.sql")]
    assert [m.name for m in pending(wanted, had("002.sql"), "pr")] == ["001.sql", "003.sql"]
    assert pending(wanted, had("001.sql", "002.sql", "003.sql"), "pr") == []
    with pytest.raises(InputError, match=r"^migrations: 002.sql was applied to branch 'pr' with checksum \w{12} and "
                                         r"has changed since"):
        pending(wanted, had("002.sql", sql="SELECT 2;"), "pr")


def test_records_round_trip_and_copies_inherit_only_a_managed_schema():
    entries = had("001.sql", "002.sql")
    assert decode(encode(entries)) == entries and decode(None) == [] and decode("") == []
    assert inherited(encode(entries), "all", True) == entries == inherited(encode(entries), "schema", True)
    assert inherited(encode(entries), "empty", True) == [] == inherited(encode(entries), "all", False)


def test_a_failure_is_reported_on_one_line():
    said = "psql:002.sql:3: ERROR:  column \"x\" does not exist\nLINE 1: ALTER TABLE t DROP x;\n\n"
    assert failure_summary(said) == 'psql:002.sql:3: ERROR:  column "x" does not exist | LINE 1: ALTER TABLE t DROP x;'
    assert len(failure_summary("x" * 5000)) == 600


def test_storage_reads_the_files_and_refuses_what_is_not_there(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "002.sql").write_bytes(b"SELECT 2;")
    (tmp_path / "m" / "001.sql").write_bytes(b"SELECT 1;")
    (tmp_path / "m" / "sub.sql").mkdir()  # a directory is not a migration, whatever its name
    files = HostStorage().migration_files([str(tmp_path / "m")])
    assert [(f.name, f.sql) for f in files] == [("001.sql", b"SELECT 1;"), ("002.sql", b"SELECT 2;")]
    assert files[0].checksum == hashlib.sha256(b"SELECT 1;").hexdigest()
    for bad, says in (([str(tmp_path / "none")], "is not a file or directory"), (["m/001.sql"], "not an absolute path"),
                      ([""], "not an absolute path")):
        with pytest.raises(InputError, match="^migrations: .*" + says):
            HostStorage().migration_files(bad)


def test_kept_files_are_written_whole_once_and_read_back(tmp_path):
    storage, path = HostStorage(), str(tmp_path / "kept" / "abc.sql")
    assert storage.read_kept(path) is None
    storage.keep_file(path, b"SELECT 1;")
    storage.keep_file(path, b"other")  # content-addressed: what is there stays
    assert storage.read_kept(path) == b"SELECT 1;"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and oct(os.stat(tmp_path / "kept").st_mode & 0o777) == "0o700"
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["abc.sql"]


def record(name: str = "feature", migrations=None, **values) -> BranchRecord:
    base = dict(database="db", name=name, status=RUNNING, is_default=False, protected=False, host="127.0.0.1",
                port=54321, container_name=f"baseful-db-{name}-abcdef", data_dir=f"/d/db/{name}",
                created_at="2026-12-05T10:00:00+00:00", parent="production", copy_mode="all",
                copy_method="snapshot", migrations=encode(migrations or []))
    base.update(values)
    return BranchRecord(**base)


def planned(request: P.BranchRequest, existing, source=None, status=RUNNING) -> P.Plan:
    actual = P.ActualBranch(existing, status if existing else None)
    plan = P.plan_branch(request, actual, "production", ["production", "feature"], ["production", "feature"])
    return P.plan_migrations(plan, request, existing, source)


def test_a_new_branch_runs_after_its_copy_what_its_source_has_not_had_and_before_a_stop_or_switch():
    source = record("production", had("001.sql"))
    files = (migration("001.sql"), migration("002.sql"))
    plan = planned(P.BranchRequest("db", "new", migrations=files), None, source)
    assert plan.actions == [P.CREATE, P.MIGRATE] and [m.name for m in plan.migrations] == ["002.sql"]
    assert plan.migrations_had == had("001.sql") and plan.after["migrations"] == ["001.sql", "002.sql"]
    assert planned(P.BranchRequest("db", "new", state="stopped", migrations=files), None, source).actions == \
        [P.CREATE, P.MIGRATE, P.STOP]
    assert planned(P.BranchRequest("db", "new", state="default", migrations=files), None, source).actions == \
        [P.CREATE, P.MIGRATE, P.SET_DEFAULT]
    empty = planned(P.BranchRequest("db", "new", copy_mode="empty", migrations=files), None, source)
    assert [m.name for m in empty.migrations] == ["001.sql", "002.sql"]  # an empty copy has had nothing


def test_an_existing_branch_runs_only_new_files_after_a_start_and_nothing_when_it_had_them_all():
    files = (migration("001.sql"), migration("002.sql"))
    existing = record(migrations=had("001.sql"))
    plan = planned(P.BranchRequest("db", "feature", state="started", migrations=files), existing, status=STOPPED)
    assert plan.actions == [P.START, P.MIGRATE] and [m.name for m in plan.migrations] == ["002.sql"]
    assert plan.before["migrations"] == ["001.sql"] and plan.after["migrations"] == ["001.sql", "002.sql"]
    stopped = planned(P.BranchRequest("db", "feature", migrations=files), existing, status=STOPPED)
    assert stopped.actions == [P.MIGRATE]  # present keeps it stopped: the executor starts it for the files only
    done = planned(P.BranchRequest("db", "feature", migrations=files), record(migrations=had("001.sql", "002.sql")))
    assert done.actions == [] and not done.changed
    reset = planned(P.BranchRequest("db", "feature", reset=True, migrations=files), existing, record("production"))
    assert reset.actions == [P.RESET, P.MIGRATE] and [m.name for m in reset.migrations] == ["001.sql", "002.sql"]


def test_a_changed_file_is_refused_in_the_plan():
    with pytest.raises(InputError, match="^migrations: 001.sql was applied to branch 'feature'"):
        planned(P.BranchRequest("db", "feature", migrations=(migration("001.sql", "DROP TABLE t;"),)),
                record(migrations=had("001.sql")))


def test_changes_speak_from_the_branch_side_in_kind_order():
    ours = {"table": {"public.orders": "table", "public.stock": "table"},
            "column": {"public.stock.sku": "text", "public.stock.qty": "bigint"},
            "index": {"public.orders_i": "CREATE INDEX ..."}}
    theirs = {"table": {"public.stock": "table", "public.old": "table"},
              "column": {"public.stock.qty": "integer"}}
    assert [(c["kind"], c["name"], c["change"], c["detail"]) for c in changes(ours, theirs)] == [
        ("table", "public.old", "removed", "table"),
        ("table", "public.orders", "added", "table"),
        ("column", "public.stock.qty", "changed", "integer -> bigint"),
        ("column", "public.stock.sku", "added", "text"),
        ("index", "public.orders_i", "added", "CREATE INDEX ..."),
    ]
    assert changes(ours, ours) == [] and KINDS.index("table") < KINDS.index("column") < KINDS.index("index")


def test_rows_per_table_of_either_side():
    assert row_changes({"a": 5, "b": 1}, {"a": 3, "c": 2}) == [
        {"table": "a", "rows": 5, "against_rows": 3, "difference": 2},
        {"table": "b", "rows": 1, "against_rows": None, "difference": None},
        {"table": "c", "rows": None, "against_rows": 2, "difference": None}]


def test_two_dumps_of_one_schema_compare_equal_whatever_their_comments_settings_and_restrict_keys():
    one = ("--\n-- PostgreSQL database dump\n--\n\\restrict AbC123\nSET statement_timeout = 0;\n"
           "SELECT pg_catalog.set_config('search_path', '', false);\n\nCREATE TABLE public.t (\n    id integer\n);\n"
           "\\unrestrict AbC123\n")
    other = one.replace("AbC123", "XyZ789").replace("-- PostgreSQL database dump", "-- Dumped from 17.6")
    assert normalised_ddl(one) == normalised_ddl(other) == ["CREATE TABLE public.t (\n", "    id integer\n", ");\n"]
    assert unified(normalised_ddl(one), normalised_ddl(other), "a", "b") == ""
    grown = normalised_ddl(one.replace("    id integer\n", "    id integer,\n    note text\n"))
    assert unified(normalised_ddl(one), grown, "db/production", "db/pr") == (
        "--- db/production\n+++ db/pr\n@@ -1,3 +1,4 @@\n CREATE TABLE public.t (\n-    id integer\n+    id integer,\n"
        "+    note text\n );\n")


def test_the_history_rows_are_written_first_with_names_that_cannot_be_read_as_sql():
    sql = history_sql([migration("001_a.sql"), migration("x'); DROP TABLE t; --.sql")]).decode()
    assert sql.startswith("CREATE SCHEMA IF NOT EXISTS baseful;\nCREATE TABLE IF NOT EXISTS baseful.migrations")
    assert "DROP TABLE" not in sql and "ON CONFLICT" not in sql  # a second run of a file fails on the first's row
    assert sql.count("convert_from('\\x") == 2 and bytes.fromhex("3030315f612e73716c") == b"001_a.sql"
    assert "'\\x3030315f612e73716c'::bytea" in sql and hashlib.sha256(b"SELECT 1;").hexdigest() in sql


def test_what_the_server_had_and_the_record_lacks_is_added_after_the_record():
    record, server = had("001.sql", "002.sql"), had("001.sql", "003.sql", "002.sql")
    assert [e.file for e in reconcile(record, server)] == ["001.sql", "002.sql", "003.sql"]
    assert reconcile(record, []) == record and reconcile([], server) == server


def test_the_failed_file_is_found_in_psqls_report():
    said = "psql:002_b.sql:3: ERROR:  boom"
    assert failed_file(said, ["001_a.sql", "002_b.sql"]) == "002_b.sql"
    assert failed_file("server closed the connection", ["001_a.sql", "002_b.sql"]) == "001_a.sql, 002_b.sql"


def test_secrets_in_a_schema_dump_are_hidden():
    dump = ("CREATE USER MAPPING FOR postgres SERVER remote OPTIONS (\n    \"user\" 'app',\n    password 'it''s secret'\n);\n"
            "CREATE SUBSCRIPTION s CONNECTION 'host=h password=pw' PUBLICATION p WITH (connect = false);\n")
    text = "".join(normalised_ddl(dump))
    assert "secret" not in text and "pw" not in text and "'app'" in text
    assert "    password '********'\n" in text and "CONNECTION '********' PUBLICATION p" in text


def test_a_link_among_the_migrations_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "secret").write_text("not SQL")
    (tmp_path / "m" / "001.sql").symlink_to(tmp_path / "secret")
    with pytest.raises(InputError, match="^migrations: .*001.sql is a symbolic link"):
        HostStorage().migration_files([str(tmp_path / "m")])
