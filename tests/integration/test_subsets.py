"""baseful.branching.branch filter: a subset of the source's rows by a condition per table, copied by dump from one
snapshot; other tables whole (copy: all) or empty (copy: schema); every row whose parent was left out left out too,
following the foreign keys (self-references and partitions among them); bad filters refused with nothing made."""

from __future__ import annotations

from conftest import connect, query, snapshot

SETUP = [
    "CREATE TABLE regions (code text PRIMARY KEY, name text NOT NULL)",
    "INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Americas'), ('ap', 'Asia-Pacific')",
    "CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL REFERENCES regions (code), name text NOT NULL, "
    "name_length int GENERATED ALWAYS AS (length(name)) STORED)",
    "INSERT INTO customers (id, region, name) SELECT g, (ARRAY['eu', 'us', 'ap'])[1 + g % 3], 'customer ' || g "
    "FROM generate_series(1, 900) g",
    "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id), total int)",
    "INSERT INTO orders (customer_id, total) SELECT 1 + g % 900, g FROM generate_series(1, 3000) g",
    "CREATE TABLE order_lines (order_id int REFERENCES orders (id), line int, sku text, PRIMARY KEY (order_id, line))",
    "INSERT INTO order_lines SELECT o, l, 'sku-' || l FROM generate_series(1, 3000) o, generate_series(1, 2) l",
    # a hierarchy: every employee but the first reports to the one whose id is half theirs
    "CREATE TABLE employees (id int PRIMARY KEY, manager_id int REFERENCES employees (id), region text)",
    "INSERT INTO employees SELECT g, CASE WHEN g > 1 THEN g / 2 END, (ARRAY['eu', 'us'])[1 + g % 2] "
    "FROM generate_series(1, 200) g",
    "CREATE TABLE events (id int, kind text, at date NOT NULL, customer_id int REFERENCES customers (id)) "
    "PARTITION BY RANGE (at)",
    "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "INSERT INTO events SELECT g, (ARRAY['click', 'view'])[1 + g % 2], date '2025-06-01' + g * 2 / 3, 1 + g % 900 "
    "FROM generate_series(1, 600) g",
    "CREATE INDEX orders_total ON orders (total)",
]
FILTER = {"customers": "region = 'eu'", "public.employees": "region = 'eu' OR id = 1", "events": "kind = 'click'"}


def make_shop(url: str) -> None:
    with connect(url) as conn:
        for statement in SETUP:
            conn.execute(statement)


def counts(url: str) -> dict:
    tables = ("regions", "customers", "orders", "order_lines", "employees", "events", "events_2025", "events_2026")
    return {table: query(url, f"SELECT count(*) FROM {table}")[0][0] for table in tables}


def test_filtered_tables_take_matching_rows_and_foreign_keys_stay_valid(ansible, database, dbname):
    production = database["branch"]
    make_shop(production["url"])
    source = production["url"]
    # what the subset must hold, computed on the source
    eu_customers = query(source, "SELECT count(*) FROM customers WHERE region = 'eu'")[0][0]
    kept_orders = query(source, "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
                                "WHERE c.region = 'eu'")[0][0]
    kept_employees = query(source, """WITH RECURSIVE kept AS (
        SELECT id FROM employees WHERE id = 1
        UNION SELECT e.id FROM employees e JOIN kept ON e.manager_id = kept.id WHERE e.region = 'eu' OR e.id = 1)
        SELECT count(*) FROM kept""")[0][0]
    kept_events = query(source, "SELECT count(*) FROM events e JOIN customers c ON c.id = e.customer_id "
                                "WHERE e.kind = 'click' AND c.region = 'eu'")[0][0]

    predicted = ansible.run("branch", check=True, diff=True, database=dbname, name="eu", filter=FILTER)
    assert predicted["changed"] and predicted["actions"] == ["create"], predicted.get("msg")
    assert predicted["diff"]["after"]["filter"] == {"public.customers": "region = 'eu'",
                                                    "public.employees": "region = 'eu' OR id = 1",
                                                    "public.events": "kind = 'click'"}

    made = ansible.run("branch", diff=True, database=dbname, name="eu", filter=FILTER)
    assert made["changed"] and made["actions"] == ["create"], made.get("msg")
    assert made["copy_result"]["method"] == "dump"  # auto picks the one method that filters
    branch = made["branch"]
    assert branch["filter"] == predicted["diff"]["after"]["filter"]
    url = branch["url"]
    assert counts(url) == {"regions": 3, "customers": eu_customers, "orders": kept_orders,
                           "order_lines": 2 * kept_orders, "employees": kept_employees, "events": kept_events,
                           "events_2025": query(url, "SELECT count(*) FROM events WHERE at < '2026-01-01'")[0][0],
                           "events_2026": query(url, "SELECT count(*) FROM events WHERE at >= '2026-01-01'")[0][0]}
    assert 0 < kept_employees < query(source, "SELECT count(*) FROM employees WHERE region = 'eu' OR id = 1")[0][0]
    left_out = made["copy_result"]["left_out"]
    assert left_out["public.orders.orders_customer_id_fkey"] == 3000 - kept_orders
    assert left_out["public.order_lines.order_lines_order_id_fkey"] == 2 * (3000 - kept_orders)
    assert left_out["public.employees.employees_manager_id_fkey"] > 0
    assert left_out["public.events.events_customer_id_fkey"] > 0
    # every row matches its filter, and every foreign key was made and holds
    assert query(url, "SELECT count(*) FROM customers WHERE region <> 'eu'") == [(0,)]
    assert query(url, "SELECT count(*) FROM events WHERE kind <> 'click'") == [(0,)]
    assert query(url, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated") == \
        query(source, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated")
    assert query(url, "SELECT name_length FROM customers WHERE id = 3") == [(len("customer 3"),)]
    assert query(url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_total'") == [(1,)]
    # sequences come with the data of the tables copied whole
    assert query(url, "SELECT last_value FROM orders_id_seq") == [(3000,)]
    # the source is not touched
    assert counts(source)["customers"] == 900

    again = ansible.run("branch", database=dbname, name="eu", filter=FILTER)
    assert again["changed"] is False and again["actions"] == [], again.get("msg")
    refused = ansible.run("branch", database=dbname, name="eu", filter={"customers": "region = 'us'"})
    assert refused.get("failed") and refused["msg"].startswith("filter: branch 'eu' exists with filter"), refused

    # a reset copies with the branch's filter again
    with connect(url) as conn:
        conn.execute("INSERT INTO customers (id, region, name) VALUES (10000, 'us', 'written on the branch')")
    reset = ansible.run("branch", database=dbname, name="eu", reset=True)
    assert reset["actions"] == ["reset"] and reset["copy_result"]["method"] == "dump", reset.get("msg")
    assert counts(url)["customers"] == eu_customers


def test_copy_schema_takes_only_the_filtered_tables_rows(ansible, database, dbname):
    production = database["branch"]
    make_shop(production["url"])
    made = ansible.run("branch", database=dbname, name="few", copy="schema", filter={"regions": "code = 'eu'"})
    assert made["actions"] == ["create"], made.get("msg")
    assert counts(made["branch"]["url"]) == {"regions": 1, "customers": 0, "orders": 0, "order_lines": 0,
                                             "employees": 0, "events": 0, "events_2025": 0, "events_2026": 0}
    assert made["copy_result"]["left_out"] == {}

    # the sequences of the filtered tables follow their rows: the branch's next insert takes a new id
    orders = ansible.run("branch", database=dbname, name="orders", copy="schema",
                         filter={"regions": "true", "customers": "id <= 30", "orders": "customer_id <= 10"})
    url = orders["branch"]["url"]
    kept = query(url, "SELECT count(*), max(id) FROM orders")[0]
    assert kept[0] == query(production["url"], "SELECT count(*) FROM orders WHERE customer_id <= 10")[0][0] > 0
    assert query(url, "INSERT INTO orders (customer_id, total) VALUES (3, 1) RETURNING id")[0][0] > kept[1]

    # a branch made by snapshot or physical is reset with a filter by dump, which auto then picks
    whole = ansible.run("branch", database=dbname, name="whole", copy_method="physical")
    assert whole["copy_result"]["method"] == "physical", whole.get("msg")
    narrowed = ansible.run("branch", database=dbname, name="whole", reset=True, filter={"customers": "id <= 5"})
    assert narrowed["copy_result"]["method"] == "dump", narrowed.get("msg")
    assert query(narrowed["branch"]["url"], "SELECT count(*) FROM customers") == [(5,)]


def test_bad_filters_are_refused_naming_filter_with_nothing_made(ansible, database, dbname, docker_client, workdir):
    production = database["branch"]
    make_shop(production["url"])
    before = snapshot(docker_client, workdir)
    cases = [
        ({"filter": {"no_such": "true"}}, "filter: table 'public.no_such' does not exist in source branch 'production'"),
        ({"filter": {"customers": "no_such_column = 1"}}, "filter: the condition for 'public.customers' does not fit "
                                                          "source branch 'production'"),
        ({"filter": {"customers": "true; DROP TABLE customers"}}, "filter: the condition for 'customers' must be one "
                                                                  "SQL condition"),
        ({"filter": {"customers": ""}}, "filter: the condition for 'customers' must be one SQL condition"),
        ({"filter": {"a.b.c": "true"}}, "filter: 'a.b.c' does not name a table"),
        ({"filter": {"customers": "true"}, "copy": "empty"}, "filter: filter selects the rows a copy takes and copy: "
                                                             "empty takes no table"),
        ({"filter": {"customers": "true"}, "copy_method": "snapshot"}, "copy_method: 'snapshot' cannot serve this "
                                                                       "copy (filter selects rows"),
        ({"filter": {"customers": "true"}, "state": "absent"}, "filter: filter shapes a copy that stays"),
    ]
    tasks = [{"baseful.branching.branch": dict(args, database=dbname, name="bad")} for args, _message in cases]
    for check in (True, False):
        for (args, message), refused in zip(cases, ansible.play([dict(task) for task in tasks], check=check)):
            assert refused.get("failed") and refused["msg"].startswith(message), (args, check, refused.get("msg"))
    assert snapshot(docker_client, workdir) == before
    assert counts(production["url"])["customers"] == 900
