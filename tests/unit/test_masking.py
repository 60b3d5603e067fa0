"""Masking and filtered subsets, pure: the rules and filters accepted, what a new copy gets, whether a rule fits its
column, the SQL that masks and the SQL a filtered copy runs; the sealed copy's scrubbing of files."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.baseful.branching.plugins.module_utils import masking, subset
from ansible_collections.baseful.branching.plugins.module_utils.copy import CopyJob, Endpoint
from ansible_collections.baseful.branching.plugins.module_utils.copy.dump import dump_script, left_out
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import RUNNING, BranchRecord
from ansible_collections.baseful.branching.plugins.module_utils.plan import (
    CREATE,
    RESET,
    ActualBranch,
    BranchRequest,
    plan_branch,
    plan_filter,
    plan_masking,
)
from ansible_collections.baseful.branching.plugins.module_utils.storage import HostStorage

DB = "shop"


def branch(name: str = "dev", **values) -> BranchRecord:
    base = {"database": DB, "name": name, "status": RUNNING, "is_default": False, "protected": False,
            "host": "127.0.0.1", "port": 54321, "container_name": f"baseful-{DB}-{name}-abc123",
            "data_dir": f"/data/{DB}/{name}", "created_at": "2026-01-01T00:00:00+00:00", "container_id": "c0ffee",
            "parent": "production", "copy_mode": "all", "copy_method": "snapshot"}
    return BranchRecord(**dict(base, **values))


def planned(request: BranchRequest, record=None, source=None, defaults=None):
    names = ["production", "dev", "masked"]
    result = plan_branch(request, ActualBranch(record, record.status if record else None), "production", names)
    plan_masking(result, request, record, source, defaults or {})
    return plan_filter(result, request, record)


def column(**values) -> dict:
    base = {"s": "public", "t": "users", "c": "email", "relid": 1, "relkind": "r", "attnum": 2, "not_null": False,
            "generated": False, "identity_always": False, "type_sql": "text", "base_type": "text", "category": "S",
            "typtype": "b", "max_length": None, "in_unique": False, "partition_key": False, "foreign_keys": []}
    return dict(base, **values)


# rules as given


def test_rules_are_keyed_by_schema_table_column_and_spelled_one_way():
    assert masking.parse_rules({"users.email": " hash ", "crm.people.name": None, "users.phone": "keep_prefix: 03",
                                "users.bio": "sql: md5(bio) "}) == {
        "crm.people.name": "null", "public.users.bio": "sql:md5(bio)", "public.users.email": "hash",
        "public.users.phone": "keep_prefix:3"}


@pytest.mark.parametrize("value, message", [
    ({"users": "hash"}, "mask: 'users' does not name a column"),
    ({"a.b.c.d": "hash"}, "mask: 'a.b.c.d' does not name a column"),
    ({"users..email": "hash"}, "mask: 'users..email' does not name a column"),
    ({"users.email": "scramble"}, "mask: 'scramble' for 'users.email' is not a masking rule; use one of: null,"),
    ({"users.email": 5}, "mask: 5 for 'users.email' is not a masking rule"),
    ({"users.email": "keep_prefix:-1"}, "mask: rule 'keep_prefix:-1' for 'users.email' needs a number"),
    ({"users.email": "keep_prefix:10001"}, "mask: rule 'keep_prefix:10001' for 'users.email' needs a number"),
    ({"users.email": "sql:"}, "mask: rule 'sql:' for 'users.email' needs one SQL expression"),
    ({"users.email": "sql:1; DROP TABLE users"}, "mask: rule 'sql:1; DROP TABLE users' for 'users.email' needs one"),
    ({"users.email": "hash", "public.users.email": "null"}, "mask: column 'public.users.email' is named twice"),
    ("users.email", "mask: 'users.email' is not a mapping"),
])
def test_bad_rules_are_refused_naming_mask(value, message):
    with pytest.raises(InputError, match="^" + re.escape(message)):
        masking.parse_rules(value)


def test_views_name_rules_without_an_expressions_text():
    assert masking.rule_names({"public.t.a": "sql:lower(a)", "public.t.b": "keep_prefix:2"}) == \
        {"public.t.a": "sql", "public.t.b": "keep_prefix:2"}


# what a new copy gets


def test_a_new_branch_gets_the_databases_rules_with_its_own_over_them():
    result = planned(BranchRequest(DB, "new", mask={"public.users.name": "redact", "public.users.email": "hash"}),
                     defaults={"public.users.email": "fake_email", "public.users.phone": "null"})
    assert result.actions == [CREATE]
    assert result.mask == result.mask_now == {"public.users.email": "hash", "public.users.name": "redact",
                                              "public.users.phone": "null"}
    assert result.after["masked"] is True and result.after["mask"]["public.users.email"] == "hash"


def test_unmasked_leaves_the_databases_rules_out_but_not_a_masked_sources():
    result = planned(BranchRequest(DB, "new", unmasked=True), defaults={"public.users.email": "hash"})
    assert result.mask == {} and result.after["masked"] is False
    masked_source = branch("masked", mask=json.dumps({"public.users.email": "hash"}))
    with pytest.raises(InputError, match="^unmasked: source branch 'masked' is masked"):
        planned(BranchRequest(DB, "new", source="masked", unmasked=True), source=masked_source)


def test_an_empty_copy_takes_no_table_and_so_no_rule():
    masked_source = branch("masked", mask=json.dumps({"public.users.email": "hash"}))
    empty = planned(BranchRequest(DB, "new", source="masked", copy_mode="empty", unmasked=True), source=masked_source,
                    defaults={"public.users.phone": "null"})
    assert empty.mask == empty.mask_now == {} and empty.after["masked"] is False
    with pytest.raises(InputError, match="^mask: mask rewrites the rows a copy takes and copy: empty takes no table"):
        planned(BranchRequest(DB, "new", copy_mode="empty", mask={"public.users.name": "redact"}))


def test_a_copy_of_a_masked_branch_applies_only_the_rules_its_source_did_not():
    masked_source = branch("masked", mask=json.dumps({"public.users.email": "hash"}))
    same = planned(BranchRequest(DB, "new", source="masked"), source=masked_source,
                   defaults={"public.users.email": "hash"})
    assert same.mask == {"public.users.email": "hash"} and same.mask_now == {}  # a plain snapshot, no sealing
    more = planned(BranchRequest(DB, "new", source="masked", mask={"public.users.name": "fake_name"}),
                   source=masked_source)
    assert more.mask == {"public.users.email": "hash", "public.users.name": "fake_name"}
    assert more.mask_now == {"public.users.name": "fake_name"} and more.mask_had == {"public.users.email": "hash"}


def test_a_reset_applies_the_branchs_rules_again_or_the_ones_given():
    rules = {"public.users.email": "hash"}
    record = branch(mask=json.dumps(rules))
    again = planned(BranchRequest(DB, "dev", reset=True), record=record, source=branch("production", parent=None))
    assert again.actions == [RESET] and again.mask == again.mask_now == rules
    other = planned(BranchRequest(DB, "dev", reset=True, mask={"public.users.name": "redact"}), record=record,
                    source=branch("production", parent=None))
    assert other.mask_now == {"public.users.name": "redact"}


def test_an_existing_branch_keeps_its_rules_and_production_has_none():
    record = branch(mask=json.dumps({"public.users.email": "hash"}))
    assert planned(BranchRequest(DB, "dev", mask={"public.users.email": "hash"}), record=record).actions == []
    with pytest.raises(InputError, match="^mask: branch 'dev' exists with masking rules public.users.email: hash; .*"
                                         "reset: true"):
        planned(BranchRequest(DB, "dev", mask={"public.users.email": "redact"}), record=record)
    with pytest.raises(InputError, match="^unmasked: branch 'dev' exists with masking rules"):
        planned(BranchRequest(DB, "dev", unmasked=True), record=record)
    with pytest.raises(InputError, match="^mask: branch 'production' holds the original data"):
        planned(BranchRequest(DB, "production", mask={"public.users.email": "hash"}), record=branch("production"))


# whether a rule fits its column


@pytest.mark.parametrize("rule, values, reason", [
    ("hash", {"generated": True}, "it is a generated column"),
    ("hash", {"identity_always": True}, "it is an identity column GENERATED ALWAYS"),
    ("redact", {"partition_key": True}, "it is the table's partition key"),
    ("null", {"not_null": True}, "it is NOT NULL"),
    ("redact", {"in_unique": True}, "it is part of a unique index and redact makes equal values"),
    ("fake_name", {"in_unique": True}, "it is part of a unique index and fake_name makes equal values"),
    ("keep_prefix:3", {"in_unique": True}, "it is part of a unique index and keep_prefix makes equal values"),
    ("hash", {"in_unique": True, "base_type": "int4", "category": "N"}, "too narrow for hashes not to collide"),
    ("hash", {"in_unique": True, "base_type": "varchar", "max_length": 12}, "too narrow for hashes not to collide"),
    ("hash", {"base_type": "date", "category": "D"}, "hash makes text, integers, uuid or bytea, not date"),
    ("fake_email", {"base_type": "int8", "category": "N"}, "fake_email makes text and the column is int8"),
    ("fake_email", {"base_type": "varchar", "max_length": 20}, "a fake address has 33 characters"),
    ("redact", {"base_type": "point", "category": "G"}, "redact has no marker for type point"),
])
def test_a_rule_that_does_not_fit_its_column_is_refused_with_the_reason(rule, values, reason):
    assert reason in masking.misfit(rule, column(**values))


@pytest.mark.parametrize("rule, values", [
    ("hash", {"in_unique": True}), ("fake_email", {"in_unique": True}), ("redact", {"typtype": "e", "category": "E"}),
    ("hash", {"in_unique": True, "base_type": "int8", "category": "N"}), ("null", {}), ("sql:lower(email)", {}),
    ("redact", {"base_type": "jsonb", "category": "U"}), ("keep_prefix:2", {"base_type": "varchar", "max_length": 5}),
])
def test_rules_that_fit(rule, values):
    assert masking.misfit(rule, column(**values)) is None


def test_the_two_sides_of_a_foreign_key_are_masked_alike():
    key = {"name": "orders_email_fkey", "pairs": [["public.orders.email", "public.users.email"]]}
    catalog = {"columns": [column(foreign_keys=[key]), column(t="orders", foreign_keys=[key])]}
    with pytest.raises(InputError, match="^mask: foreign key 'orders_email_fkey' in here joins 'public.orders.email' to "
                                         "'public.users.email', which would no longer match \\(not masked against hash\\)"):
        masking.check({"public.users.email": "hash"}, catalog, "here")
    masking.check({"public.users.email": "hash", "public.orders.email": "hash"}, catalog, "here")
    masking.check({"public.orders.email": "null"}, catalog, "here")  # a null reference is a valid one
    masking.check({"public.orders.email": "hash"}, catalog, "here", had={"public.users.email": "hash"})


def test_a_missing_table_or_column_or_a_view_is_refused():
    catalog = {"columns": [column(relid=None, attnum=None), column(t="v", relkind="v"), column(t="t", attnum=None)]}
    with pytest.raises(InputError, match="^mask: table 'public.users' does not exist in here"):
        masking.check({"public.users.email": "hash"}, catalog, "here")
    with pytest.raises(InputError, match="^mask: 'public.v' in here is not a table \\(relkind v\\)"):
        masking.check({"public.v.email": "hash"}, catalog, "here")
    with pytest.raises(InputError, match="^mask: table 'public.t' in here has no column 'email'"):
        masking.check({"public.t.email": "hash"}, catalog, "here")


# the SQL


def test_every_rule_keeps_nulls_and_casts_to_the_columns_type_and_no_key_is_in_the_sql():
    for rule in ("redact", "hash", "fake_email", "fake_name", "keep_prefix:2"):
        sql = masking.expression(rule, column(type_sql="character varying(40)", base_type="varchar", max_length=40),
                                 '"users"."email"')
        assert sql.startswith('CASE WHEN "users"."email" IS NULL THEN NULL ELSE (') and \
            sql.endswith(")::character varying(40) END"), sql
    assert masking.expression("sql:lower(email)", column(), '"users"."email"') == "(lower(email))"
    [update] = masking.updates({"public.users.email": "hash"}, {"public.users.email": column()})
    assert update.startswith('UPDATE "public"."users" SET "email" = ') and masking.KEY_IN_CONTAINER in update
    assert "pg_read_binary_file" in update and not re.search(r"\\x[0-9a-f]{64}", update)


def test_the_script_disables_what_would_fire_rewrites_and_forgets_the_statistics():
    catalog = {"firing": [{"table": "public.users", "kind": "TRIGGER", "name": "audit", "mode": "ALWAYS"}],
               "statistics_of": [11, 12], "rewrite": ["public.users"], "analyze": ["public.people"],
               "refresh": ["public.emails"]}
    lines = masking.script({"public.users.email": "hash"}, catalog, {"public.users.email": column()}).splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(start)) for start in (
        "SET session_replication_role = replica", "SET search_path = pg_catalog", "BEGIN",
        "ALTER TABLE public.users DISABLE TRIGGER audit", 'UPDATE "public"."users"',
        "ALTER TABLE public.users ENABLE ALWAYS TRIGGER audit", "COMMIT", "DELETE FROM pg_statistic WHERE starelid IN "
        "(11, 12)", "VACUUM (FULL, ANALYZE) public.users", "ANALYZE public.people",
        "REFRESH MATERIALIZED VIEW public.emails", "VACUUM FULL pg_statistic;", "CHECKPOINT")]
    assert order == sorted(order)
    assert lines[0] == "\\set VERBOSITY sqlstate"  # an error's message could quote an original value


# filtered subsets


def test_filters_are_keyed_by_schema_table_and_refused_naming_filter():
    assert subset.parse_filter({"orders": " total > 5 ", "crm.people": "true"}) == {
        "crm.people": "true", "public.orders": "total > 5"}
    for value, message in [({"a.b.c": "true"}, "filter: 'a.b.c' does not name a table"),
                           ({"orders": ""}, "filter: the condition for 'orders' must be one SQL condition"),
                           ({"orders": "true; DROP TABLE orders"}, "filter: the condition for 'orders' must be one"),
                           ({"orders": "a", "public.orders": "b"}, "filter: table 'public.orders' is named twice"),
                           (["orders"], "filter: ['orders'] is not a mapping")]:
        with pytest.raises(InputError, match="^" + re.escape(message)):
            subset.parse_filter(value)


def test_a_filter_is_for_a_new_or_reset_copy_of_all_or_schema():
    made = planned(BranchRequest(DB, "new", filter={"public.orders": "total > 5"}))
    assert made.filter == {"public.orders": "total > 5"} and made.after["filter"] == made.filter
    with pytest.raises(InputError, match="^filter: filter selects the rows a copy takes and copy: empty takes no table"):
        planned(BranchRequest(DB, "new", copy_mode="empty", filter={"public.orders": "true"}))
    record = branch(filter=json.dumps({"public.orders": "total > 5"}))
    assert planned(BranchRequest(DB, "dev", filter={"public.orders": "total > 5"}), record=record).actions == []
    with pytest.raises(InputError, match="^filter: branch 'dev' exists with filter public.orders: total > 5; .*reset"):
        planned(BranchRequest(DB, "dev", filter={"public.orders": "true"}), record=record)
    again = planned(BranchRequest(DB, "dev", reset=True), record=record, source=branch("production", parent=None))
    assert again.filter == {"public.orders": "total > 5"}


def shop_catalog() -> dict:
    def table(name: str, kind: str, columns: list, **values) -> dict:
        return dict({"s": "public", "t": name, "name": f"public.{name}", "relid": 1, "relkind": kind,
                     "columns": columns, "partitions": [], "family": [], "sequences": [], "foreign_partitions": 0},
                    **values)

    def key(name: str, child: str, parent: str, columns: list) -> dict:
        return {"name": name, "child": child, "child_kind": "r", "parent": parent, "parent_kind": "r",
                "child_columns": columns, "parent_columns": ["id"]}

    return {"tables": [table("users", "r", ["id", "region"], sequences=[["users_id_seq", "id"]]),
                       table("events", "p", ["id", "kind"], partitions=[["public", "events_2026"]],
                             family=["public.events_2026"])],
            "foreign_keys": [key("orders_user_fkey", "public.orders", "public.users", ["user_id"]),
                             key("lines_order_fkey", "public.lines", "public.orders", ["order_id"]),
                             key("notes_event_fkey", "public.notes", "public.events_2026", ["event_id"]),
                             key("tags_kind_fkey", "public.tags", "public.kinds", ["kind_id"])],
            "all_tables": ["public.events", "public.events_2026", "public.kinds", "public.lines", "public.orders",
                           "public.tags", "public.users"]}


def test_a_filtered_copy_leaves_out_orphans_along_the_foreign_keys_and_takes_generated_columns_out():
    catalog = shop_catalog()
    conditions = {"public.events": "kind = 'a'", "public.users": "region = 'eu'"}
    made = subset.subset(conditions, catalog, "all")
    assert made.excluded == ('"public"."events"', '"public"."events_2026"', '"public"."users"')
    assert made.copies == (
        ('COPY (SELECT id, kind FROM "public"."events" WHERE (kind = \'a\')) TO STDOUT',
         'COPY "public"."events" (id, kind) FROM STDIN'),
        ('COPY (SELECT id, region FROM ONLY "public"."users" WHERE (region = \'eu\')) TO STDOUT',
         'COPY "public"."users" (id, region) FROM STDIN'))
    keys = json.loads(re.search(r"keys json := '(.*?)'::json", made.orphans).group(1))
    # the keys that can lose rows: from the filtered tables (a partition's too) and on from their children; not tags
    assert [key["n"] for key in keys] == ["orders_user_fkey", "notes_event_fkey", "lines_order_fkey"]
    assert keys[0] == {"n": "orders_user_fkey", "c": "public.orders", "o": "ONLY ", "p": "public.users", "q": "ONLY ",
                       "cc": ["user_id"], "pc": ["id"]}
    assert '["public.events", "public.events_2026", "public.users"]' in made.orphans
    assert "setval" not in made.orphans  # copy: all brings the sequences with the data of the whole tables
    schema = subset.subset(conditions, catalog, "schema").orphans
    assert json.dumps(catalog["all_tables"]) in schema
    assert "SELECT setval('users_id_seq', coalesce(max(id), 1), max(id) IS NOT NULL) FROM public.users;" in schema


def test_a_filter_on_a_partitioned_table_and_its_partition_or_with_foreign_partitions_is_refused():
    catalog = shop_catalog()
    catalog["tables"].append(dict(catalog["tables"][1], t="events_2026", name="public.events_2026", relkind="r",
                                  partitions=[], family=["public.events"]))
    with pytest.raises(InputError, match="^filter: 'public.events' and 'public.events_2026' in here are a partitioned "
                                         "table and one of its partitions"):
        subset.check({"public.events": "true", "public.events_2026": "true"}, catalog, "here")
    catalog["tables"][1]["foreign_partitions"] = 1
    with pytest.raises(InputError, match="^filter: partitioned table 'public.events' in here has foreign-table "):
        subset.check({"public.events": "true"}, catalog, "here")


def test_a_filtered_dump_reads_one_snapshot_and_checks_every_stage():
    made = subset.subset({"public.users": "true"}, shop_catalog(), "schema")
    job = CopyJob(DB, "dev", "schema", "postgres:17", 17, "postgres", DB, "/secret", Endpoint(conninfo="host=a port=1"),
                  Endpoint(conninfo="host=b port=2"), subset=made)
    script, env, stages = dump_script(job)
    assert stages == ["globals_dump", "globals_filter", "globals_restore", "snapshot", "pre_dump", "pre_restore",
                      "rows_out_1", "rows_in_1", "orphans", "post_dump", "post_restore"]
    assert script.count('--snapshot="$SNAPSHOT"') == 3 and "SET TRANSACTION SNAPSHOT" in script
    assert env["COPY_OUT_1"] == made.copies[0][0] and env["PRE_DATA_ARGS"] == "--no-blobs"
    assert "LOCK TABLE %s IN ACCESS SHARE MODE" in env["LOCK_TABLES"]
    assert "statement_timeout=0" in script and "idle_in_transaction_session_timeout=0" in script
    assert "true" not in script  # conditions come through the environment, never the script's text
    assert left_out("dump=0\nleft_out={\"public.orders.orders_user_fkey\": 4}\n") == {"public.orders.orders_user_fkey": 4}


def test_a_large_orphans_script_comes_in_parts_no_variable_over_the_kernels_limit():
    catalog = shop_catalog()
    catalog["foreign_keys"] += [{"name": f"k{n}", "child": f"public.child_{n}", "child_kind": "r",
                                 "parent": "public.users", "parent_kind": "r", "child_columns": ["user_id"],
                                 "parent_columns": ["id"]} for n in range(3000)]
    made = subset.subset({"public.users": "true"}, catalog, "all")
    job = CopyJob(DB, "dev", "all", "postgres:17", 17, "postgres", DB, "/secret", Endpoint(conninfo="host=a port=1"),
                  Endpoint(conninfo="host=b port=2"), subset=made)
    _script, env, _stages = dump_script(job)
    parts = [env[f"ORPHANS_{n}"] for n in range(1, int(env["ORPHANS_PARTS"]) + 1)]
    assert len(parts) > 1 and all(len(part.encode()) < 128 * 1024 for part in parts)
    assert "".join(parts) == made.orphans


# scrubbing the sealed copy's files


def test_only_files_inside_the_data_directory_are_emptied(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "log" / "2026").mkdir(parents=True)
    outside.mkdir()
    (data / "log" / "a.log").write_text("x")
    (data / "log" / "2026" / "b.log").write_text("x")
    (data / "PG_VERSION").write_text("17")
    (outside / "keep").write_text("x")
    os.symlink(outside, data / "link")
    HostStorage().empty_within(str(data), ["log", "..", ".", "/etc", "link", "../outside", "nothing"])
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == ["PG_VERSION", "link", "log", "log/2026"]
    assert (outside / "keep").exists()
