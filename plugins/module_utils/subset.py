# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filtered subsets, pure: what `filter` may say, whether it fits the source (from one catalog query), and the SQL a
dump copy (copy/dump.py) runs for it.

`filter` maps `[schema.]table` (schema `public` unless named) to an SQL condition over the table's columns, as
mirrord's copy.tables filters do. Those tables copy the rows that match it; with copy: all every other table copies
whole, with copy: schema none. Foreign keys stay valid: before the foreign keys are made, the copy leaves out every
row that references a row it does not hold, following the constraints until none is left (a row whose parent was
filtered out goes, then the rows that referenced it...). How many rows each constraint left out is reported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.masking import qualified_name, quote_ident, quote_literal


@dataclass(frozen=True)
class Table:
    schema: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def table_of(key) -> Table:
    """`[schema.]table`."""
    return Table(*qualified_name(key, 2, "filter", "table", "table or schema.table"))


def parse_filter(value) -> Dict[str, str]:
    """`filter` as given -> {schema.table: condition}, keys canonical and sorted."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("filter", f"{value!r} is not a mapping; give table: condition pairs, as "
                         "{orders: \"created_at > now() - interval '30 days'\"}")
    conditions: Dict[str, str] = {}
    for key, condition in value.items():
        table = table_of(key)
        if table.key in conditions:
            raise InputError("filter", f"table {table.key!r} is named twice; give it one condition")
        text = condition.strip() if isinstance(condition, str) else ""
        if not text or ";" in text or "\x00" in text:
            raise InputError("filter", f"the condition for {key!r} must be one SQL condition over the table's "
                             "columns, without ';', as \"region = 'eu'\"")
        conditions[table.key] = text
    return dict(sorted(conditions.items()))


def encode(conditions: Dict[str, str]) -> Optional[str]:
    return json.dumps(conditions, sort_keys=True) if conditions else None


def decode(text: Optional[str]) -> Dict[str, str]:
    return json.loads(text) if text else {}


def catalog_query(tables: List[Table]) -> str:
    """One read-only query: each filtered table as found (relkind; its columns a COPY writes, generated ones left
    out; its leaf partitions, whose rows the whole-table dump must leave out), and every validated foreign key of
    the database, the columns of both sides in order."""
    wanted = json.dumps([{"s": t.schema, "t": t.name} for t in tables])
    return f"""
WITH wanted AS (SELECT * FROM json_to_recordset({quote_literal(wanted)}::json) AS w(s text, t text)),
found AS (
  SELECT w.s, w.t, quote_ident(w.s) || '.' || quote_ident(w.t) AS name, r.oid AS relid, r.relkind::text AS relkind,
         (SELECT json_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = r.oid
          AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns,
         (WITH RECURSIVE tree AS (SELECT r.oid AS relid UNION SELECT i.inhrelid FROM pg_inherits i
                                  JOIN tree ON i.inhparent = tree.relid WHERE r.relkind = 'p')
          SELECT coalesce(json_agg(json_build_array(n2.nspname, c2.relname)), '[]') FROM tree
          JOIN pg_class c2 ON c2.oid = tree.relid JOIN pg_namespace n2 ON n2.oid = c2.relnamespace
          WHERE c2.relkind = 'r' AND c2.oid <> r.oid) AS partitions,
         (WITH RECURSIVE tree AS (SELECT r.oid AS relid UNION SELECT i.inhrelid FROM pg_inherits i
                                  JOIN tree ON i.inhparent = tree.relid WHERE r.relkind = 'p')
          SELECT count(*) FROM tree JOIN pg_class c2 ON c2.oid = tree.relid WHERE c2.relkind = 'f') AS foreign_partitions,
         (SELECT coalesce(jsonb_agg(quote_ident(n2.nspname) || '.' || quote_ident(c2.relname)), '[]')
          FROM pg_partition_tree(r.oid) AS tree JOIN pg_class c2 ON c2.oid = tree.relid
          JOIN pg_namespace n2 ON n2.oid = c2.relnamespace WHERE c2.oid <> r.oid) ||
         (SELECT coalesce(jsonb_agg(quote_ident(n2.nspname) || '.' || quote_ident(c2.relname)), '[]')
          FROM pg_partition_ancestors(r.oid) AS up JOIN pg_class c2 ON c2.oid = up.relid
          JOIN pg_namespace n2 ON n2.oid = c2.relnamespace WHERE c2.oid <> r.oid) AS family,
         (SELECT coalesce(json_agg(json_build_array(d.objid::regclass::text, quote_ident(a.attname))), '[]')
          FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
          JOIN pg_class q ON q.oid = d.objid
          WHERE d.classid = 'pg_class'::regclass AND d.refobjid = r.oid AND d.deptype IN ('a', 'i')
            AND q.relkind = 'S') AS sequences
  FROM wanted w
  LEFT JOIN pg_namespace n ON n.nspname = w.s
  LEFT JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = w.t),
keys AS (
  SELECT k.conname AS name, quote_ident(cn.nspname) || '.' || quote_ident(c.relname) AS child,
         c.relkind::text AS child_kind, quote_ident(pn.nspname) || '.' || quote_ident(p.relname) AS parent,
         p.relkind::text AS parent_kind,
         (SELECT json_agg(quote_ident(a.attname) ORDER BY o.i) FROM unnest(k.conkey) WITH ORDINALITY AS o(n, i)
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = o.n) AS child_columns,
         (SELECT json_agg(quote_ident(a.attname) ORDER BY o.i) FROM unnest(k.confkey) WITH ORDINALITY AS o(n, i)
          JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = o.n) AS parent_columns
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
  JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
  WHERE k.contype = 'f' AND k.convalidated AND k.conparentid = 0 AND c.relpersistence <> 't'
    AND cn.nspname NOT IN ('pg_catalog', 'information_schema'))
SELECT json_build_object(
  'tables', (SELECT coalesce(json_agg(found ORDER BY s, t), '[]') FROM found),
  'foreign_keys', (SELECT coalesce(json_agg(keys ORDER BY child, name), '[]') FROM keys),
  'all_tables', (SELECT coalesce(json_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname) ORDER BY 1), '[]')
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't'))
"""


def check(conditions: Dict[str, str], catalog: dict, where: str) -> Dict[str, dict]:
    """Refuses, naming filter, a table that is not there or is no table; returns each filtered table's entry."""
    found = {f"{entry['s']}.{entry['t']}": entry for entry in catalog["tables"]}
    for key in conditions:
        entry = found.get(key) or {}
        if entry.get("relid") is None:
            raise InputError("filter", f"table {key!r} does not exist in {where}; name a table as schema.table or table "
                             "(schema public)")
        if entry.get("relkind") not in ("r", "p"):
            raise InputError("filter", f"{key!r} in {where} is not a table (relkind {entry.get('relkind')}); filter the "
                             "tables it reads")
        if entry.get("foreign_partitions"):
            raise InputError("filter", f"partitioned table {key!r} in {where} has foreign-table partitions, whose rows a "
                             "copy would write to the server they live on; filter its other partitions one by one")
        for other in conditions:
            if other != key and found.get(other, {}).get("name") in entry["family"]:
                raise InputError("filter", f"{key!r} and {other!r} in {where} are a partitioned table and one of its "
                                 "partitions, whose rows would be copied twice; filter one of them")
    return found


def trial_select(key: str, condition: str) -> str:
    """What checks a condition against a server without reading a row (Runtime.explain plans it)."""
    return f"SELECT 1 FROM {table_of(key).sql} WHERE ({condition})"


def copy_out(key: str, condition: str, entry: dict) -> str:
    """The rows of a filtered table the copy keeps, as COPY writes them (its own rows: ONLY, where it has
    inheritance children; a partitioned table's rows are its partitions')."""
    only = "ONLY " if entry["relkind"] == "r" else ""
    return f"COPY (SELECT {', '.join(entry['columns'])} FROM {only}{table_of(key).sql} WHERE ({condition})) TO STDOUT"


def copy_in(key: str, entry: dict) -> str:
    return f"COPY {table_of(key).sql} ({', '.join(entry['columns'])}) FROM STDIN"


def excluded_data(conditions: Dict[str, str], found: Dict[str, dict]) -> List[str]:
    """pg_dump --exclude-table-data patterns (exact names, quoted) of every filtered table and its leaf partitions."""
    def pattern(schema: str, name: str) -> str:
        return '"{}"."{}"'.format(schema.replace('"', '""'), name.replace('"', '""'))

    patterns = []
    for key in conditions:
        table = table_of(key)
        patterns.append(pattern(table.schema, table.name))
        patterns += [pattern(schema, name) for schema, name in found[key]["partitions"]]
    return patterns


def orphans(conditions: Dict[str, str], found: Dict[str, dict], catalog: dict, copy_mode: str) -> str:
    """A DO block, run on the target before its foreign keys are made: leaves out every row a validated foreign key
    would refuse (its parent row not copied), constraint by constraint, again while any row went (a child that lost
    rows may be a parent), and records how many each constraint left out in temporary table left_out. Only keys
    that can lose rows come along: those whose parent lost rows or got none (copy: schema), a filtered table's
    partitions and partitioned ancestors among them, and the keys of their children in turn. Under copy: schema the
    sequences the filtered tables own then follow their rows, so the branch's next insert takes a new value."""
    reduced = {name for key in conditions for name in [found[key]["name"], *found[key]["family"]]}
    if copy_mode == "schema":
        reduced |= set(catalog["all_tables"])
    reaching, keys = set(reduced), []
    pending = list(catalog["foreign_keys"])
    while True:  # the keys whose parent can lose rows, until no new table can
        taken = [key for key in pending if key["parent"] in reaching]
        if not taken:
            break
        pending = [key for key in pending if key["parent"] not in reaching]
        keys += taken
        reaching |= {key["child"] for key in taken}
    compact = [{"n": key["name"], "c": key["child"], "o": "ONLY " if key["child_kind"] == "r" else "",
                "p": key["parent"], "q": "ONLY " if key["parent_kind"] == "r" else "",
                "cc": key["child_columns"], "pc": key["parent_columns"]} for key in keys]
    sequences = [f"SELECT setval('{sequence.replace(chr(39), chr(39) * 2)}', coalesce(max({column}), 1), "
                 f"max({column}) IS NOT NULL) FROM {found[key]['name']};"
                 for key in conditions for sequence, column in found[key]["sequences"]] if copy_mode == "schema" else []
    return f"""CREATE TEMPORARY TABLE left_out (constraint_name text, rows bigint);
DO $baseful$
DECLARE
  keys json := {quote_literal(json.dumps(compact))}::json;
  reduced text[] := ARRAY(SELECT json_array_elements_text({quote_literal(json.dumps(sorted(reduced)))}::json));
  fk json;
  statement text;
  gone bigint;
  again boolean := true;
BEGIN
  WHILE again LOOP
    again := false;
    FOR fk IN SELECT * FROM json_array_elements(keys) LOOP
      CONTINUE WHEN NOT (fk->>'p') = ANY (reduced);
      SELECT format('DELETE FROM %s%s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s%s p WHERE %s)', fk->>'o', fk->>'c',
                    string_agg(format('c.%s IS NOT NULL', child), ' AND '), fk->>'q', fk->>'p',
                    string_agg(format('p.%s = c.%s', parent, child), ' AND '))
        INTO statement
        FROM json_array_elements_text(fk->'cc') WITH ORDINALITY AS cc(child, i)
        JOIN json_array_elements_text(fk->'pc') WITH ORDINALITY AS pc(parent, j) ON i = j;
      EXECUTE statement;
      GET DIAGNOSTICS gone = ROW_COUNT;
      IF gone > 0 THEN
        again := true;
        reduced := array_append(reduced, fk->>'c');
        INSERT INTO left_out VALUES ((fk->>'c') || '.' || (fk->>'n'), gone);
      END IF;
    END LOOP;
  END LOOP;
END
$baseful$;
{chr(10).join(sequences)}
SELECT 'left_out=' || coalesce(json_object_agg(constraint_name, rows), '{{}}') FROM
  (SELECT constraint_name, sum(rows) AS rows FROM left_out GROUP BY constraint_name) AS counted;
"""


@dataclass(frozen=True)
class Subset:
    """What a dump copy needs to copy a subset (copy/dump.py): the data the whole-table dump leaves out, each filtered
    table's COPY out of the source and into the target, and the orphans' removal."""

    excluded: tuple
    copies: tuple  # (COPY ... TO STDOUT, COPY ... FROM STDIN) per filtered table
    orphans: str


def subset(conditions: Dict[str, str], catalog: dict, copy_mode: str) -> Subset:
    found = {f"{entry['s']}.{entry['t']}": entry for entry in catalog["tables"]}
    return Subset(tuple(excluded_data(conditions, found)),
                  tuple((copy_out(key, condition, found[key]), copy_in(key, found[key]))
                        for key, condition in conditions.items()),
                  orphans(conditions, found, catalog, copy_mode))
