"""baseful.branching.branch mask: every rule on real data; no byte of an original masked value left in the branch's
data directory (heap, indexes, TOAST, statistics, WAL) with each copy method; a masked branch's copies and resets stay
masked; the database's rules and unmasked; bad rules refused with nothing made."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import connect, json_report, playbook_env, query, snapshot

# Every original value of a masked column holds this marker, and nothing else in the database does: the data directory
# of a masked branch must not hold it anywhere.
MARKER = b"Qx7ORIG"
ROWS = 3000
RULES = {
    "customers.email": "fake_email",
    "customers.full_name": "fake_name",
    "public.customers.phone": "keep_prefix:4",
    "customers.ssn": "redact",
    "customers.note": None,  # YAML's null: the rule null
    "customers.token": "hash",
    "customers.bio": "sql:md5(bio)",
    "customers.status": "redact",
    "logins.token": "hash",
    "logins.ip": "redact",
    "visits.email": "hash",
}
SETUP = [
    "CREATE TYPE status AS ENUM ('new', 'active', 'closed')",
    # bio is stored out of line and uncompressed (EXTERNAL), so its original bytes sit in the TOAST table as they are
    "CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE NOT NULL, full_name text NOT NULL, "
    "phone varchar(24), ssn char(11), note text, token text, bio text, status status NOT NULL, balance int NOT NULL)",
    "ALTER TABLE customers ALTER COLUMN bio SET STORAGE EXTERNAL",
    "CREATE INDEX customers_name ON customers (full_name)",
    "CREATE TABLE logins (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id), token text, "
    "ip inet)",
    "CREATE TABLE audit (changed_at timestamptz DEFAULT now(), old_email text)",
    # an audit trigger would copy the originals elsewhere: it must not fire while masking
    "CREATE FUNCTION audit_email() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO audit (old_email) VALUES (OLD.email); RETURN NEW; END $$",
    "CREATE TRIGGER audit_email AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION audit_email()",
    # enabled ALWAYS or REPLICA, a trigger or rule fires even for a replica, as masking runs
    "ALTER TABLE customers ENABLE ALWAYS TRIGGER audit_email",
    "CREATE RULE audit_names AS ON UPDATE TO customers DO ALSO INSERT INTO audit (old_email) VALUES (OLD.full_name)",
    "ALTER TABLE customers ENABLE REPLICA RULE audit_names",
    # a partitioned table: its parent's statistics are of every partition's rows
    "CREATE TABLE visits (email text, at date NOT NULL) PARTITION BY RANGE (at)",
    "CREATE TABLE visits_2025 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE visits_2026 PARTITION OF visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    f"INSERT INTO visits SELECT 'visitor' || (g % 7) || '.Qx7ORIG@visits.test', date '2025-03-01' + g / 10 "
    f"FROM generate_series(1, {ROWS}) g",
    f"""INSERT INTO customers SELECT g, 'user' || g || '.Qx7ORIG@corp.test', 'Name' || g || ' Qx7ORIG',
       '+49-Qx7ORIG-' || g, 'Qx7ORIG' || lpad(g::text, 4, '0'), 'note Qx7ORIG ' || g, 'tok-Qx7ORIG-' || g,
       'BIO-Qx7ORIG-' || g || repeat(md5(g::text), 80), (ARRAY['new', 'active', 'closed'])[1 + g % 3]::status, g
       FROM generate_series(1, {ROWS}) g""",
    f"""INSERT INTO logins (customer_id, token, ip) SELECT g, 'tok-Qx7ORIG-' || g, ('10.1.' || (g / 250) || '.' ||
       (g % 250))::inet FROM generate_series(1, {ROWS}) g""",
    "CREATE MATERIALIZED VIEW customer_emails AS SELECT id, email FROM customers",
    "CREATE VIEW customer_names AS SELECT id, full_name FROM customers",
    # statistics keep most common values and histogram bounds: originals, until gathered again
    "ANALYZE",
]


def make_customers(url: str) -> None:
    with connect(url) as conn:
        for statement in SETUP:
            conn.execute(statement)
        conn.execute("CHECKPOINT")


def files_holding(data_dir: str, needle: bytes = MARKER) -> list:
    """The files of a data directory (as root reads them) that hold `needle` anywhere in their bytes."""
    found = []
    for root, _dirs, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        found.append(os.path.relpath(path, data_dir))
    return sorted(found)


def hmac_hex(key_file: Path, value: str) -> str:
    key = bytes.fromhex(key_file.read_text().strip())
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def log_an_original(client, production: dict) -> None:
    """Production's server logs to files in its data directory, and one of them quotes an original value."""
    with connect(production["url"]) as conn:
        conn.execute("ALTER SYSTEM SET logging_collector = on")
    client.containers.get(production["container_id"]).restart(timeout=30)
    for _attempt in range(100):
        try:
            with connect(production["url"]) as conn:
                conn.execute("SELECT 'logged Qx7ORIG'::int")
        except psycopg.errors.InvalidTextRepresentation:
            break
        except psycopg.OperationalError:
            time.sleep(0.2)
    assert any("log/" in path for path in files_holding(production["data_dir"])), "no server log quotes the original"


def test_every_rule_leaves_no_original_byte_with_each_copy_method(on_xfs, dbname, image17, workdir, docker_client):
    production = on_xfs.run("database", name=dbname, image=image17)["branch"]
    make_customers(production["url"])
    log_an_original(docker_client, production)

    branches = {}
    for method in ("snapshot", "physical", "dump"):
        made = on_xfs.run("branch", diff=True, database=dbname, name=f"masked-{method}", copy_method=method, mask=RULES)
        assert made["changed"] and made["actions"] == ["create"], made.get("msg")
        branch = branches[method] = made["branch"]
        assert branch["status"] == "running" and branch["copy_method"] == method
        assert branch["masked"] is True
        assert branch["mask"]["public.customers.bio"] == "sql" and branch["mask"]["public.customers.note"] == "null"
        assert made["diff"]["after"]["masked"] is True and made["diff"]["after"]["mask"] == branch["mask"]
        assert files_holding(branch["data_dir"]) == [], f"{method}: originals left in the data directory"

    key_file = workdir / "state" / "secrets" / f"{dbname}.mask-key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    expected_token = hmac_hex(key_file, "tok-Qx7ORIG-7")
    for method, branch in branches.items():
        url = branch["url"]
        row = query(url, "SELECT email, full_name, phone, ssn, note, token, bio, status::text, balance FROM customers "
                         "WHERE id = 7")[0]
        email, name, phone, ssn, note, token, bio, status, balance = row
        assert re.fullmatch(r"user-[0-9a-f]{16}@example\.com", email), (method, email)
        assert email == "user-" + hmac_hex(key_file, "user7.Qx7ORIG@corp.test")[:16] + "@example.com"
        assert re.fullmatch(r"[A-Z][A-Za-z]+ [A-Z][A-Za-z]+", name), (method, name)
        assert phone == "+49-" + "*" * (len("+49-Qx7ORIG-7") - 4)
        assert ssn == "REDACTED   "  # char(11), padded as the type pads
        assert note is None
        assert token == expected_token  # the key's HMAC, shaped to text
        assert bio == hashlib.md5(("BIO-Qx7ORIG-7" + hashlib.md5(b"7").hexdigest() * 80).encode()).hexdigest()
        assert status == "new" and balance == 7  # the enum's first label; unmasked columns as they were
        # equal values stay equal across tables: a join on the hashed token still matches every row
        assert query(url, "SELECT count(*) FROM customers c JOIN logins l ON l.token = c.token") == [(ROWS,)]
        assert query(url, "SELECT count(DISTINCT ip), min(ip)::text FROM logins") == [(1, "0.0.0.0/32")]
        assert query(url, "SELECT count(DISTINCT email), count(*) FROM customers") == [(ROWS, ROWS)]
        # the trigger and the rule did not fire, and are enabled as they were; the materialized view and the view
        # show masked rows
        assert query(url, "SELECT count(*) FROM audit") == [(0,)]
        assert query(url, "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'audit_email'") == [("A",)]
        assert query(url, "SELECT ev_enabled::text FROM pg_rewrite WHERE rulename = 'audit_names'") == [("R",)]
        assert query(url, "SELECT count(*) FROM customer_emails WHERE email LIKE '%%Qx7ORIG%%'") == [(0,)]
        assert query(url, "SELECT count(*) FROM customer_names WHERE full_name LIKE '%%Qx7ORIG%%'") == [(0,)]
        assert query(url, "SELECT tablename, attname FROM pg_stats WHERE most_common_vals::text LIKE '%%Qx7ORIG%%' "
                          "OR histogram_bounds::text LIKE '%%Qx7ORIG%%'") == []
        # indexes rebuilt from masked rows answer as the heap does
        assert query(url, "SELECT id FROM customers WHERE email = %s", email) == [(7,)]
        assert query(url, "SELECT count(*) FROM customers WHERE full_name = %s", name)[0][0] >= 1

    # production keeps every original and its trigger
    assert query(production["url"], "SELECT email, token FROM customers WHERE id = 7") == \
        [("user7.Qx7ORIG@corp.test", "tok-Qx7ORIG-7")]
    assert production["masked"] is False and production["mask"] == {}

    again = on_xfs.run("branch", database=dbname, name="masked-snapshot", mask=RULES)
    assert again["changed"] is False and again["actions"] == [], again.get("msg")


@pytest.mark.parametrize("image_fixture, method", [("image15", "physical"), ("image18", "dump"),
                                                   ("image17_hardened", "physical"), ("image17_hardened", "dump")])
def test_masking_on_every_major_and_a_hardened_image(request, ansible, dbname, image_fixture, method):
    """PostgreSQL 15's and 18's images (18 keeps PGDATA elsewhere), and one whose pg_hba asks for passwords."""
    production = ansible.run("database", name=dbname, image=request.getfixturevalue(image_fixture))["branch"]
    make_customers(production["url"])
    made = ansible.run("branch", database=dbname, name="masked", copy_method=method, mask=RULES)
    assert made["actions"] == ["create"] and made["branch"]["masked"], made.get("msg")
    assert files_holding(made["branch"]["data_dir"]) == []
    assert query(made["branch"]["url"], "SELECT count(*) FROM customers c JOIN logins l ON l.token = c.token "
                                        "WHERE c.email LIKE 'user-%%@example.com'") == [(ROWS,)]


def test_copies_and_resets_of_a_masked_branch_stay_masked(on_xfs, dbname, image17):
    production = on_xfs.run("database", name=dbname, image=image17)["branch"]
    make_customers(production["url"])
    masked = on_xfs.run("branch", database=dbname, name="masked", mask={"customers.email": "hash"})["branch"]
    email_7 = query(masked["url"], "SELECT email FROM customers WHERE id = 7")[0][0]

    # a copy of a masked branch is masked without masking again: a plain snapshot
    child = on_xfs.run("branch", database=dbname, name="child", source="masked")
    assert child["actions"] == ["create"] and child["copy_result"]["method"] == "snapshot", child.get("msg")
    assert child["branch"]["masked"] is True and child["branch"]["mask"] == {"public.customers.email": "hash"}
    assert query(child["branch"]["url"], "SELECT email FROM customers WHERE id = 7") == [(email_7,)]
    assert files_holding(child["branch"]["data_dir"], b"@corp.test") == []

    # its own rules add to its source's
    grandchild = on_xfs.run("branch", database=dbname, name="grandchild", source="child",
                            mask={"customers.full_name": "redact", "customers.email": "hash"})["branch"]
    assert grandchild["mask"] == {"public.customers.email": "hash", "public.customers.full_name": "redact"}
    assert query(grandchild["url"], "SELECT email, full_name FROM customers WHERE id = 7") == [(email_7, "REDACTED")]

    # unmasked cannot undo a masked source's masking
    refused = on_xfs.run("branch", database=dbname, name="clear", source="masked", unmasked=True)
    assert refused.get("failed") and refused["msg"].startswith("unmasked: source branch 'masked' is masked"), refused
    # other rules on an existing branch need a new copy
    refused = on_xfs.run("branch", database=dbname, name="masked", mask={"customers.email": "redact"})
    assert refused.get("failed") and refused["msg"].startswith("mask: branch 'masked' exists with masking rules"), refused

    # a reset copies production again and masks it again with the recorded rules
    with connect(masked["url"]) as conn:
        conn.execute("UPDATE customers SET email = 'written.Qx7ORIG@later.test' WHERE id = 1")
    reset = on_xfs.run("branch", database=dbname, name="masked", reset=True)
    assert reset["actions"] == ["reset"] and reset["branch"]["masked"] is True, reset.get("msg")
    assert query(masked["url"], "SELECT email FROM customers WHERE id = 7") == [(email_7,)]
    assert files_holding(masked["data_dir"], b"@corp.test") == []
    assert files_holding(masked["data_dir"], b"@later.test") == []

    # a reset with other rules takes them instead
    other = on_xfs.run("branch", database=dbname, name="masked", reset=True, mask={"customers.full_name": "redact"})
    assert other["branch"]["mask"] == {"public.customers.full_name": "redact"}, other.get("msg")
    assert query(masked["url"], "SELECT email, full_name FROM customers WHERE id = 7") == \
        [("user7.Qx7ORIG@corp.test", "REDACTED")]


def test_database_rules_reach_every_new_branch_but_production_and_unmasked(ansible, dbname, image17):
    made = ansible.run("database", diff=True, name=dbname, image=image17, mask={"customers.email": "fake_email"})
    assert made["database"]["mask"] == {"public.customers.email": "fake_email"}, made.get("msg")
    production = made["branch"]
    make_customers(production["url"])

    # the database's rules, a branch's own over them column by column
    branch = ansible.run("branch", database=dbname, name="dev", mask={"customers.full_name": "redact"})["branch"]
    assert branch["mask"] == {"public.customers.email": "fake_email", "public.customers.full_name": "redact"}
    assert query(branch["url"], "SELECT email LIKE 'user-%%@example.com', full_name FROM customers WHERE id = 3") == \
        [(True, "REDACTED")]
    assert files_holding(branch["data_dir"], b"@corp.test") == []

    # an empty copy takes no table: the database's rules pass it by
    blank = ansible.run("branch", database=dbname, name="blank", copy="empty")
    assert blank["actions"] == ["create"] and blank["branch"]["masked"] is False, blank.get("msg")

    clear = ansible.run("branch", database=dbname, name="clear", unmasked=True)["branch"]
    assert clear["masked"] is False
    assert query(clear["url"], "SELECT email FROM customers WHERE id = 3") == [("user3.Qx7ORIG@corp.test",)]

    # production holds the originals: no rules go on it
    refused = ansible.run("branch", database=dbname, name="production", mask={"customers.email": "hash"})
    assert refused.get("failed") and refused["msg"].startswith("mask: branch 'production' holds the original data")

    # changing the database's rules is a change of its own, shown in the diff; existing branches keep theirs
    changed = ansible.run("database", diff=True, name=dbname, image=image17, mask={"customers.email": "hash"})
    assert changed["changed"] and changed["actions"][0] == "set_mask", changed.get("msg")
    assert changed["diff"]["before"]["mask"] == {"public.customers.email": "fake_email"}
    assert changed["diff"]["after"]["mask"] == {"public.customers.email": "hash"}
    same = ansible.run("database", name=dbname, image=image17, mask={"customers.email": "hash"})
    assert same["changed"] is False, same
    assert ansible.run("branch_info", database=dbname, name="dev")["branches"][0]["mask"]["public.customers.email"] \
        == "fake_email"


def test_bad_rules_are_refused_naming_mask_with_nothing_made(ansible, dbname, image17, docker_client, workdir):
    production = ansible.run("database", name=dbname, image=image17)["branch"]
    make_customers(production["url"])
    before = snapshot(docker_client, workdir)
    cases = {
        "no_such_table.email": ("hash", "mask: table 'public.no_such_table' does not exist"),
        "customers.no_such_column": ("hash", "mask: table 'public.customers' in source branch 'production' has no "
                                             "column 'no_such_column'"),
        "customers.email": ("null", "mask: rule 'null' does not fit column 'public.customers.email' (text) in source "
                                    "branch 'production': it is NOT NULL"),
        "customers.balance": ("fake_email", "mask: rule 'fake_email' does not fit column 'public.customers.balance' "
                                            "(integer)"),
        "customers.id": ("redact", "mask: rule 'redact' does not fit column 'public.customers.id' (integer) in source "
                                   "branch 'production': it is part of a unique index"),
        "logins.customer_id": ("hash", "mask: foreign key 'logins_customer_id_fkey' in source branch 'production' joins "
                                       "'public.logins.customer_id' to 'public.customers.id', which would no longer "
                                       "match (hash against not masked)"),
        "visits.at": ("redact", "mask: rule 'redact' does not fit column 'public.visits.at' (date) in source branch "
                                "'production': it is the table's partition key"),
        "customers.ip": ("hash", "mask: table 'public.customers' in source branch 'production' has no column 'ip'"),
        "logins.ip": ("fake_name", "mask: rule 'fake_name' does not fit column 'public.logins.ip' (inet)"),
        "customer_names.full_name": ("hash", "mask: 'public.customer_names' in source branch 'production' is not a "
                                             "table"),
        "customers.bio": ("sql:no_such_function(bio)", "mask: rule 'sql:no_such_function(bio)' for 'public.customers.bio' "
                                                       "does not fit source branch 'production'"),
        "customers.note": ("sql:1; DROP TABLE customers", "mask: rule 'sql:1; DROP TABLE customers' for "
                                                          "'customers.note' needs one SQL expression"),
        "customers.phone": ("keep_prefix:x", "mask: rule 'keep_prefix:x' for 'customers.phone' needs a number"),
        "customers.ssn": ("scramble", "mask: 'scramble' for 'customers.ssn' is not a masking rule; use one of"),
        "a.b.c.d": ("hash", "mask: 'a.b.c.d' does not name a column"),
    }
    tasks = [{"baseful.branching.branch": {"database": dbname, "name": "bad", "mask": {key: rule}}}
             for key, (rule, _message) in cases.items()]
    for check in (True, False):
        results = ansible.play([dict(task) for task in tasks], check=check)
        for (key, (_rule, message)), refused in zip(cases.items(), results):
            assert refused.get("failed") and refused["msg"].startswith(message), (key, check, refused.get("msg"))
    assert snapshot(docker_client, workdir) == before
    assert query(production["url"], "SELECT count(*) FROM customers") == [(ROWS,)]


def test_an_inventory_and_the_branch_playbook_declare_masks_and_filters(ansible, dbname, image17, placement, workdir):
    """The provision role passes a database's rules and each branch's mask, unmasked and filter; a second run changes
    nothing. The branch playbook takes them as extra vars."""
    variables = workdir / "inventory-vars.json"
    variables.write_text(json.dumps({
        "baseful_placement": placement,
        "baseful_databases": [{"name": dbname, "image": image17, "mask": {"customers.email": "fake_email"},
                               "branches": [{"name": "eu", "filter": {"customers": "id <= 10"},
                                             "mask": {"customers.full_name": "redact"}},
                                            {"name": "clear", "unmasked": True}]}]}))

    def provision() -> dict:
        done = subprocess.run(["ansible-playbook", "baseful.branching.provision", "-e", f"@{variables}"],
                              env=playbook_env(), capture_output=True, text=True, check=False, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:]
        return json_report(done.stdout)["stats"]["localhost"]

    # masking rules name tables: the inventory's branches come once production has them
    make_customers(ansible.run("database", name=dbname, image=image17)["branch"]["url"])
    assert provision()["changed"] == 2  # the database's rules, then its branches
    assert provision()["changed"] == 0
    eu, clear = (ansible.run("branch_info", database=dbname, name=name)["branches"][0] for name in ("eu", "clear"))
    assert eu["mask"] == {"public.customers.email": "fake_email", "public.customers.full_name": "redact"}
    assert eu["filter"] == {"public.customers": "id <= 10"} and eu["copy_method"] == "dump"
    assert query(eu["url"], "SELECT count(*), min(full_name), bool_and(email LIKE 'user-%%') FROM customers") == \
        [(10, "REDACTED", True)]
    assert clear["masked"] is False
    assert query(clear["url"], "SELECT email FROM customers WHERE id = 1") == [("user1.Qx7ORIG@corp.test",)]

    done = subprocess.run(["ansible-playbook", "baseful.branching.branch", "-e", json.dumps({
        "database": dbname, "name": "pb", "mask": {"customers.email": "hash"}, "filter": {"customers": "id = 2"},
        "baseful_placement": placement})], env=playbook_env(), capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, [line for line in done.stdout.splitlines() if '"msg"' in line]
    pb = ansible.run("branch_info", database=dbname, name="pb")["branches"][0]
    assert pb["mask"] == {"public.customers.email": "hash"} and pb["filter"] == {"public.customers": "id = 2"}
    assert query(pb["url"], "SELECT count(*) FROM customers") == [(1,)]
