"""baseful.branching.branch migrations: SQL files applied to a branch before it serves, each in its own transaction,
recorded with checksums and never run twice; failures named by file and statement."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from conftest import json_report, playbook_env, query, snapshot

COLUMNS = ("SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) FROM information_schema.columns "
           "WHERE table_name = %s")
MIGRATIONS = {
    "001_stock_columns.sql": "ALTER TABLE stock ADD COLUMN sku text NOT NULL DEFAULT 'unknown';\n"
                             "ALTER TABLE stock DROP COLUMN reserved_quantity;\n",
    "002_orders.sql": "CREATE TABLE orders (id int PRIMARY KEY, product_id int NOT NULL REFERENCES stock (product_id),\n"
                      "  quantity int NOT NULL CHECK (quantity > 0));\n"
                      "CREATE INDEX orders_product ON orders (product_id);\n"
                      "INSERT INTO orders VALUES (1, 7, 3);\n",
    "003_available.sql": "CREATE FUNCTION available(p int) RETURNS int LANGUAGE sql STABLE AS $$\n"
                         "  SELECT stock_quantity - coalesce((SELECT sum(quantity) FROM orders WHERE product_id = p), 0)::int\n"
                         "  FROM stock WHERE product_id = p $$;\n",
}


def write(directory: Path, files: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_migrations_run_in_name_order_once_each_before_the_branch_serves(ansible, database, dbname, docker_client, workdir):
    folder = write(workdir / "migrations", dict(MIGRATIONS, **{"README.txt": "not SQL: never run"}))
    production = database["branch"]

    predicted = ansible.run("branch", check=True, database=dbname, name="pr-1", migrations=[str(folder)])
    assert predicted["changed"] and predicted["actions"] == ["create", "migrate"], predicted
    assert predicted["migrations_applied"] == sorted(MIGRATIONS)
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production"]

    made = ansible.run("branch", diff=True, database=dbname, name="pr-1", migrations=[str(folder)])
    assert made["changed"] and made["actions"] == ["create", "migrate"], made.get("msg")
    assert made["migrations_applied"] == sorted(MIGRATIONS)
    branch = made["branch"]
    assert branch["status"] == "running"
    assert [(m["file"], m["checksum"]) for m in branch["migrations"]] == \
        [(name, checksum(folder / name)) for name in sorted(MIGRATIONS)]
    assert made["diff"]["after"]["migrations"] == sorted(MIGRATIONS)
    assert query(branch["url"], COLUMNS, "stock") == [("product_id:integer,sku:text,stock_quantity:integer",)]
    assert query(branch["url"], "SELECT available(7), available(8), count(*) FROM orders") == [(97, 100, 1)]
    assert query(branch["url"], "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_product'") == [(1,)]
    # the branch's own history, written in each file's transaction
    assert query(branch["url"], "SELECT file, checksum FROM baseful.migrations ORDER BY file") == \
        [(name, checksum(folder / name)) for name in sorted(MIGRATIONS)]
    assert query(branch["url"], "SELECT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'") == [("stock",)]
    # the source is not touched
    assert query(production["url"], COLUMNS, "stock") == \
        [("product_id:integer,reserved_quantity:integer,stock_quantity:integer",)]
    assert query(production["url"], "SELECT to_regclass('orders')") == [(None,)]

    again = ansible.run("branch", database=dbname, name="pr-1", migrations=[str(folder)])
    assert again["changed"] is False and again["actions"] == [] and again["migrations_applied"] == []

    # a new file runs alone, once; the files before it keep their record
    write(folder, {"004_orders_note.sql": "ALTER TABLE orders ADD COLUMN note text;\n"})
    predicted = ansible.run("branch", check=True, database=dbname, name="pr-1", migrations=[str(folder)])
    assert predicted["actions"] == ["migrate"] and predicted["migrations_applied"] == ["004_orders_note.sql"]
    assert query(branch["url"], COLUMNS, "orders") == [("id:integer,product_id:integer,quantity:integer",)]
    added = ansible.run("branch", diff=True, database=dbname, name="pr-1", migrations=[str(folder)])
    assert added["actions"] == ["migrate"] and added["migrations_applied"] == ["004_orders_note.sql"]
    assert added["diff"]["before"]["migrations"] == sorted(MIGRATIONS)
    assert added["diff"]["after"]["migrations"] == sorted(MIGRATIONS) + ["004_orders_note.sql"]
    assert added["branch"]["migrations"][:3] == branch["migrations"]
    assert query(branch["url"], COLUMNS, "orders") == [("id:integer,note:text,product_id:integer,quantity:integer",)]

    # an applied file that changed is refused by name before anything runs
    (folder / "002_orders.sql").write_text(MIGRATIONS["002_orders.sql"] + "DROP TABLE orders;\n")
    before = snapshot(docker_client, workdir)
    refused = ansible.run("branch", database=dbname, name="pr-1", migrations=[str(folder)])
    assert refused["failed"] and refused["msg"].startswith("migrations: 002_orders.sql was applied to branch 'pr-1'"), refused
    assert snapshot(docker_client, workdir) == before
    assert query(branch["url"], "SELECT count(*) FROM orders") == [(1,)]
    (folder / "002_orders.sql").write_text(MIGRATIONS["002_orders.sql"])

    # a copy of the branch has had what its source had: only files new to both run
    write(folder, {"005_later.sql": "CREATE TABLE later (id int);\n"})
    child = ansible.run("branch", database=dbname, name="pr-1-child", source="pr-1", migrations=[str(folder)])
    assert child["actions"] == ["create", "migrate"] and child["migrations_applied"] == ["005_later.sql"], child
    assert [m["file"] for m in child["branch"]["migrations"]] == \
        sorted(MIGRATIONS) + ["004_orders_note.sql", "005_later.sql"]
    assert query(child["branch"]["url"], "SELECT count(*) FROM orders") == [(1,)]
    assert query(branch["url"], "SELECT to_regclass('later')") == [(None,)]
    # ... but an empty copy has had none
    empty = ansible.run("branch", database=dbname, name="pr-1-empty", source="pr-1", copy="empty")
    assert empty["branch"]["migrations"] == []

    # a stopped branch is started for its migrations and stopped again
    assert ansible.run("branch", database=dbname, name="pr-1", state="stopped")["actions"] == ["stop"]
    stopped = ansible.run("branch", database=dbname, name="pr-1", migrations=[str(folder)])
    assert stopped["actions"] == ["migrate"] and stopped["migrations_applied"] == ["005_later.sql"], stopped
    assert stopped["branch"]["status"] == "stopped"
    started = ansible.run("branch", database=dbname, name="pr-1", state="started")
    assert query(started["branch"]["url"], "SELECT to_regclass('later')::text") == [("later",)]

    # a reset copies the source again and runs the files again on the new copy
    reset = ansible.run("branch", database=dbname, name="pr-1", reset=True, migrations=[str(folder / "001_stock_columns.sql")])
    assert reset["actions"] == ["reset", "migrate"] and reset["migrations_applied"] == ["001_stock_columns.sql"], reset
    assert [m["file"] for m in reset["branch"]["migrations"]] == ["001_stock_columns.sql"]
    assert query(reset["branch"]["url"], "SELECT to_regclass('orders')") == [(None,)]
    assert query(reset["branch"]["url"], COLUMNS, "stock") == [("product_id:integer,sku:text,stock_quantity:integer",)]


def test_a_failing_migration_is_named_with_its_statement_and_leaves_no_branch(ansible, database, dbname, docker_client,
                                                                              workdir):
    folder = write(workdir / "migrations", MIGRATIONS)
    failing = "ALTER TABLE stock ADD COLUMN fine int;\n\nALTER TABLE stock DROP COLUMN no_such_column;\n"
    bad = write(workdir / "more", {"010_bad.sql": failing})
    before_rows = query(database["branch"]["url"], "SELECT count(*), sum(stock_quantity) FROM stock")

    failed = ansible.run("branch", database=dbname, name="pr-2", migrations=[str(folder), str(bad)])
    assert failed["failed"], failed
    message = failed["msg"]
    assert message.startswith("migrations: 010_bad.sql failed on branch 'pr-2'"), message
    assert "010_bad.sql:3" in message and "no_such_column" in message and "DROP COLUMN no_such_column" in message
    assert message.endswith("the branch was not made") and "\n" not in message
    assert str(workdir) not in message.split("(", 1)[1]  # the file is named, not its place in the container
    labels = [f"baseful.database={dbname}", "baseful.branch=pr-2"]
    assert docker_client.containers.list(all=True, filters={"label": labels}) == []
    assert not os.path.exists(workdir / "state" / "data" / dbname / "pr-2")
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production"]
    assert query(database["branch"]["url"], "SELECT count(*), sum(stock_quantity) FROM stock") == before_rows

    # on an existing branch the files before the failing one stay applied and recorded; the failing one is rolled back
    made = ansible.run("branch", database=dbname, name="pr-2")
    failed = ansible.run("branch", database=dbname, name="pr-2", migrations=[str(folder), str(bad)])
    assert failed["failed"] and failed["msg"].startswith("migrations: 010_bad.sql failed"), failed
    assert failed["msg"].endswith("the files before it stay applied")
    info = ansible.run("branch_info", database=dbname, name="pr-2")["branches"][0]
    assert [m["file"] for m in info["migrations"]] == sorted(MIGRATIONS)
    assert query(made["branch"]["url"], COLUMNS, "stock") == [("product_id:integer,sku:text,stock_quantity:integer",)]


def test_bad_migration_paths_are_refused_naming_migrations_and_change_nothing(ansible, database, dbname,
                                                                              docker_client, workdir):
    write(workdir / "a", {"001.sql": "SELECT 1;\n"})
    write(workdir / "b", {"001.sql": "SELECT 2;\n"})
    before = snapshot(docker_client, workdir)
    for paths, says in (([str(workdir / "nowhere.sql")], "is not a file or directory"),
                        (["relative/001.sql"], "is not an absolute path"),
                        ([str(workdir / "a"), str(workdir / "b")], "two files are named '001.sql'")):
        refused = ansible.run("branch", database=dbname, name="pr-3", migrations=paths)
        assert refused["failed"] and refused["msg"].startswith("migrations: ") and says in refused["msg"], refused
    refused = ansible.run("branch", database=dbname, name="production", state="absent", migrations=[str(workdir / "a")])
    assert refused["failed"] and refused["msg"].startswith("migrations: "), refused
    assert snapshot(docker_client, workdir) == before


def test_an_inventory_declares_the_migrations_of_its_branches(ansible, database, dbname, placement, workdir):
    """The provision role (an inventory's databases and branches) passes each branch's migrations; a second run
    with nothing new changes nothing."""
    folder = write(workdir / "migrations", MIGRATIONS)
    variables = workdir / "inventory-vars.json"
    variables.write_text(json.dumps({
        "baseful_placement": placement,
        "baseful_databases": [{"name": dbname, "image": database["database"]["image"],
                               "branches": [{"name": "staging", "migrations": [str(folder)]}]}]}))
    for expected_changes in (1, 0):
        done = subprocess.run(["ansible-playbook", "baseful.branching.provision", "-e", f"@{variables}"],
                              env=playbook_env(), capture_output=True, text=True, check=False, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:]
        assert json_report(done.stdout)["stats"]["localhost"]["changed"] == expected_changes
    staging = ansible.run("branch_info", database=dbname, name="staging")["branches"][0]
    assert [m["file"] for m in staging["migrations"]] == sorted(MIGRATIONS)
    assert query(staging["url"], "SELECT count(*) FROM orders") == [(1,)]
