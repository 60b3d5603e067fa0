"""baseful.branching.branch_diff and branch_merge on real schema changes: the diff in both directions, the merge
rehearsed on a throwaway copy, applied once, and never carrying the branch's rows."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from conftest import connect, json_report, playbook_env, query, snapshot

SCHEMA_CHANGES = {
    "001_stock.sql": "ALTER TABLE stock ADD COLUMN sku text NOT NULL DEFAULT 'unknown';\n"
                     "ALTER TABLE stock DROP COLUMN reserved_quantity;\n"
                     "ALTER TABLE stock ALTER COLUMN stock_quantity TYPE bigint;\n",
    "002_orders.sql": "CREATE TYPE order_state AS ENUM ('new', 'paid');\n"
                      "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
                      "  product_id int NOT NULL REFERENCES stock (product_id), state order_state NOT NULL DEFAULT 'new',\n"
                      "  quantity int NOT NULL CHECK (quantity > 0));\n"
                      "CREATE INDEX orders_product ON orders (product_id);\n"
                      "CREATE SEQUENCE invoice_numbers START 1000;\n",
    "003_logic.sql": "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n"
                     "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();\n"
                     "CREATE VIEW open_orders AS SELECT id, product_id FROM orders WHERE state = 'new';\n"
                     "ALTER TABLE orders ENABLE ROW LEVEL SECURITY;\n"
                     "CREATE POLICY own_orders ON orders FOR SELECT TO app_reader USING (quantity < 100);\n"
                     "CREATE EXTENSION pgcrypto;\n",
}
EXPECTED = [
    ("extension", "pgcrypto", "added"),
    ("type", "public.order_state", "added"),
    ("table", "public.orders", "added"),
    ("column", "public.orders.id", "added"),
    ("column", "public.orders.product_id", "added"),
    ("column", "public.orders.quantity", "added"),
    ("column", "public.orders.state", "added"),
    ("column", "public.stock.reserved_quantity", "removed"),
    ("column", "public.stock.sku", "added"),
    ("column", "public.stock.stock_quantity", "changed"),
    ("constraint", "public.orders.orders_pkey", "added"),
    ("constraint", "public.orders.orders_product_id_fkey", "added"),
    ("constraint", "public.orders.orders_quantity_check", "added"),
    ("index", "public.orders_product", "added"),
    ("view", "public.open_orders", "added"),
    ("sequence", "public.invoice_numbers", "added"),
    ("function", "public.touch()", "added"),
    ("trigger", "public.orders.orders_touch", "added"),
    ("policy", "public.orders.own_orders", "added"),
]
OPPOSITE = {"added": "removed", "removed": "added", "changed": "changed"}
SCHEMA = "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, column_name) " \
         "FROM information_schema.columns WHERE table_schema = 'public'"
ROWS = "SELECT count(*), sum(stock_quantity) FROM stock"


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", name, *extra], env=playbook_env(), capture_output=True, text=True,
                          check=False, timeout=600)


def execute(url: str, sql: str) -> None:
    with connect(url) as conn:
        conn.execute(sql)


def migrations(workdir: Path, files: dict, folder: str = "migrations") -> str:
    directory = workdir / folder
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return str(directory)


def test_diff_names_every_kind_of_change_in_both_directions(ansible, database, dbname, workdir):
    made = ansible.run("branch", database=dbname, name="pr-7", migrations=[migrations(workdir, SCHEMA_CHANGES)])
    assert made["actions"] == ["create", "migrate"], made.get("msg")
    with_rows = ansible.run("branch", database=dbname, name="pr-7")["branch"]["url"]
    execute(with_rows, "INSERT INTO orders (product_id, quantity) SELECT g, 1 FROM generate_series(1, 25) g")

    diff = ansible.run("branch_diff", database=dbname, name="pr-7", data=True)
    assert not diff.get("failed"), diff.get("msg")
    assert diff["changed"] is False and diff["against"] == "production" and diff["identical"] is False
    assert [(c["kind"], c["name"], c["change"]) for c in diff["changes"]] == EXPECTED
    details = {c["name"]: c["detail"] for c in diff["changes"]}
    assert details["public.stock.stock_quantity"] == "integer NOT NULL -> bigint NOT NULL"
    assert details["public.orders.id"] == "bigint NOT NULL GENERATED ALWAYS AS IDENTITY"
    assert details["public.orders.orders_product_id_fkey"] == "FOREIGN KEY (product_id) REFERENCES stock(product_id)"
    assert details["public.order_state"] == "enum ('new', 'paid')"
    assert details["public.orders.own_orders"] == "permissive for select to app_reader using ((quantity < 100))"
    assert diff["diff"].startswith(f"--- {dbname}/production\n+++ {dbname}/pr-7\n")
    assert "\n+CREATE TABLE public.orders (\n" in diff["diff"]
    assert "\n-    reserved_quantity integer DEFAULT 0 NOT NULL" in diff["diff"]
    assert "\n+CREATE POLICY own_orders ON public.orders FOR SELECT TO app_reader USING ((quantity < 100));\n" in diff["diff"]
    assert {r["table"]: (r["rows"], r["against_rows"], r["difference"]) for r in diff["rows"]} == \
        {"public.orders": (25, None, None), "public.stock": (500, 500, 0)}

    # the other way round: what the branch added, production lacks
    back = ansible.run("branch_diff", database=dbname, name="production", against="pr-7")
    assert [(c["kind"], c["name"], c["change"]) for c in back["changes"]] == \
        [(kind, name, OPPOSITE[change]) for kind, name, change in EXPECTED]
    assert "\n-CREATE TABLE public.orders (\n" in back["diff"] and "rows" not in back

    same = ansible.run("branch", database=dbname, name="same")
    alike = ansible.run("branch_diff", database=dbname, name="same")
    assert (alike["identical"], alike["changes"], alike["diff"]) == (True, [], ""), alike

    refused = ansible.run("branch_diff", database=dbname, name="production")
    assert refused["failed"] and refused["msg"].startswith("against: branch 'production' of database"), refused
    ansible.run("branch", database=dbname, name="same", state="stopped")
    refused = ansible.run("branch_diff", database=dbname, name="pr-7", against="same")
    assert refused["failed"] and refused["msg"].startswith("against: branch 'same' of database") \
        and "stopped" in refused["msg"], refused
    refused = ansible.run("branch_diff", database=dbname, name="nope")
    assert refused["failed"] and refused["msg"].startswith("name: branch 'nope' does not exist"), refused
    assert same["branch"]["port"]


def test_merge_rehearses_then_applies_migrations_only_once_and_never_rows(ansible, database, dbname, docker_client,
                                                                          workdir):
    production = database["branch"]["url"]
    branch = ansible.run("branch", database=dbname, name="pr-8", migrations=[migrations(workdir, SCHEMA_CHANGES)])
    execute(branch["branch"]["url"], "INSERT INTO orders (product_id, quantity) VALUES (1, 2)")
    execute(branch["branch"]["url"], "UPDATE stock SET stock_quantity = 0")  # rows on the branch: never merged
    rows_before = query(production, ROWS)

    before = snapshot(docker_client, workdir)
    predicted = ansible.run("branch_merge", check=True, diff=True, database=dbname, name="pr-8")
    assert predicted["changed"] and predicted["actions"] == ["rehearse", "migrate"], predicted
    assert predicted["migrations_applied"] == sorted(SCHEMA_CHANGES) and predicted["identical"] is False
    assert predicted["diff"]["after"]["migrations"] == sorted(SCHEMA_CHANGES)
    assert snapshot(docker_client, workdir) == before

    merged = ansible.run("branch_merge", database=dbname, name="pr-8")
    assert merged["changed"] and merged["actions"] == ["rehearse", "migrate"], merged.get("msg")
    assert merged["into"] == "production" and merged["migrations_applied"] == sorted(SCHEMA_CHANGES)
    assert merged["identical"] is True and merged["changes"] == [] and merged["diff"] == "", merged["changes"]
    assert merged["rehearsal"]["branch"].startswith("rehearsal-") and merged["rehearsal"]["copy_method"] == "physical"
    assert query(production, SCHEMA) == query(branch["branch"]["url"], SCHEMA)
    assert query(production, ROWS) == rows_before and query(production, "SELECT count(*) FROM orders") == [(0,)]
    views = {b["name"]: b for b in ansible.run("branch_info", database=dbname)["branches"]}
    assert sorted(views) == ["pr-8", "production"]  # the rehearsal copy is gone, container and data with it
    assert [m["file"] for m in views["production"]["migrations"]] == sorted(SCHEMA_CHANGES)
    assert views["production"]["protected"] and views["production"]["is_default"]  # protection does not forbid it
    assert not docker_client.containers.list(all=True, filters={"label": ["baseful.branch=" + merged["rehearsal"]["branch"]]})
    assert not (workdir / "state" / "data" / dbname / merged["rehearsal"]["branch"]).exists()

    again = ansible.run("branch_merge", database=dbname, name="pr-8")
    assert again["changed"] is False and again["actions"] == [] and again["identical"] is True, again

    # a branch of production now has had the merged files: a pull request on top of it only brings its own
    more = migrations(workdir, {"004_note.sql": "ALTER TABLE orders ADD COLUMN note text;\n"}, "more")
    child = ansible.run("branch", database=dbname, name="pr-9", migrations=[migrations(workdir, {}), more])
    assert child["migrations_applied"] == ["004_note.sql"], child
    assert ansible.run("branch_merge", database=dbname, name="pr-9")["migrations_applied"] == ["004_note.sql"]


def test_a_failed_rehearsal_leaves_into_untouched(ansible, database, dbname, docker_client, workdir):
    production = database["branch"]["url"]
    files = {"001_note.sql": "ALTER TABLE stock ADD COLUMN note text;\n",
             "002_floor.sql": "ALTER TABLE stock ADD CONSTRAINT stock_floor CHECK (stock_quantity >= 10);\n"}
    made = ansible.run("branch", database=dbname, name="pr-10", migrations=[migrations(workdir, files)])
    assert made["migrations_applied"] == sorted(files), made.get("msg")
    execute(production, "UPDATE stock SET stock_quantity = 5 WHERE product_id = 42")  # only production breaks the floor
    checksum = "SELECT md5(string_agg(s::text, ',' ORDER BY product_id)) FROM stock s"
    schema_before, rows_before = query(production, SCHEMA), query(production, checksum)
    failed = ansible.run("branch_merge", database=dbname, name="pr-10", into="production")
    assert failed["failed"], failed
    assert failed["msg"].startswith("migrations: 002_floor.sql failed on branch 'rehearsal-"), failed["msg"]
    assert "stock_floor" in failed["msg"] and failed["msg"].endswith("nothing was applied to 'production'")
    assert query(production, SCHEMA) == schema_before
    assert query(production, checksum) == rows_before
    views = {b["name"]: b for b in ansible.run("branch_info", database=dbname)["branches"]}
    assert sorted(views) == ["pr-10", "production"] and views["production"]["migrations"] == []
    assert not [c.name for c in docker_client.containers.list(all=True, filters={"label": f"baseful.database={dbname}"})
                if "rehearsal" in c.name]


def test_pull_request_playbook_branch_migrate_report_merge_teardown(ansible, database, dbname, placement, workdir):
    folder = migrations(workdir, SCHEMA_CHANGES)
    report, env_file = workdir / "report.md", workdir / "pr.env"
    common = ["-e", f"database={dbname}", "-e", "pr=51", "-e", f"state_dir={placement['state_dir']}",
              "-e", f"port_range={placement['port_range']}"]
    args = common + ["-e", f"migrations={folder}", "-e", f"report={report}", "-e", f"env_file={env_file}"]
    done = playbook("baseful.branching.pull_request", *args)
    assert done.returncode == 0, done.stdout[-3000:]
    text = report.read_text()
    assert text.startswith(f"## Schema of `{dbname}/pr-51` against `production`\n"), text
    assert "Migrations the branch has had: `001_stock.sql`, `002_orders.sql`, `003_logic.sql`.\n" in text
    assert f"{len(EXPECTED)} schema changes:" in text and "| column | `public.stock.reserved_quantity` | removed |" in text
    assert "```diff\n--- " in text and "+CREATE TABLE public.orders (" in text
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert query(values["DATABASE_URL"], "SELECT count(*) FROM orders") == [(0,)]
    assert values["DATABASE_ENDPOINT_URL"].endswith(f"/{dbname}.pr-51")
    branch = ansible.run("branch_info", database=dbname, name="pr-51")["branches"][0]
    assert branch["ttl"] == 2 * 86400 and branch["parent"] == "production"

    again = playbook("baseful.branching.pull_request", *args)
    assert again.returncode == 0 and json_report(again.stdout)["stats"]["localhost"]["changed"] == 0
    assert report.read_text() == text

    merged = playbook("baseful.branching.pull_request", *common, "-e", "state=merged", "-e", f"report={report}")
    assert merged.returncode == 0, merged.stdout[-3000:]
    assert "No schema changes." in report.read_text()
    assert "Merged into `production`: `001_stock.sql`, `002_orders.sql`, `003_logic.sql`." in report.read_text()
    assert query(database["branch"]["url"], "SELECT to_regclass('orders')::text") == [("orders",)]

    gone = playbook("baseful.branching.pull_request", *common, "-e", "state=absent")
    assert gone.returncode == 0, gone.stdout[-3000:]
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production"]
