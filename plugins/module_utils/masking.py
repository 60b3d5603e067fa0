# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masking rules, pure: what `mask` may say, which rules a new copy gets, whether each fits its column (from one
catalog query) and the SQL that applies them. The service (service/masking.py) runs that SQL on a sealed server,
one no client can reach, and then leaves no original byte in the data directory (copy/sealing in service/filler.py).

A rule maps `[schema.]table.column` (schema `public` unless named) to one of:
    null            NULL
    redact          a fixed marker of the column's type ('REDACTED', 0, false, the epoch, the first enum label...)
    hash            HMAC-SHA-256 of the value under the database's own key, shaped to the type: equal values stay
                    equal across tables and branches of one database (joins still match), and no one without the
                    key (kept in state_dir, never in a branch) can test a guess against it
    fake_email      user-<16 hex of that HMAC>@example.com: the same address always becomes the same fake one
    fake_name       a first and a last name chosen by that HMAC
    keep_prefix:N   the first N characters, then '*' for each of the others
    sql:<expr>      any SQL expression over the row's columns
NULL stays NULL under every rule but sql."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError

SIMPLE_RULES = ("null", "redact", "hash", "fake_email", "fake_name")
RULE_FORMS = "null, redact, hash, fake_email, fake_name, keep_prefix:N or sql:<expression>"
KEEP_PREFIX_MAX = 10000
HASH_TYPES = ("int2", "int4", "int8", "uuid", "bytea")
FAKE_EMAIL_LENGTH = len("user-0123456789abcdef@example.com")
FIRST_NAMES = ("Ada", "Alan", "Barbara", "Carl", "Dana", "Edsger", "Frances", "Grace", "Hedy", "Ivan", "Jean", "Ken",
               "Linus", "Margaret", "Niklaus", "Olga", "Peter", "Radia", "Sophie", "Tim", "Ursula", "Vint", "Wendy",
               "Yukihiro")
LAST_NAMES = ("Allen", "Backus", "Cerf", "Dijkstra", "Estrin", "Floyd", "Goldberg", "Hamilton", "Hopper", "Iverson",
              "Kernighan", "Lamarr", "Liskov", "Lovelace", "McCarthy", "Perlman", "Ritchie", "Stonebraker", "Thompson",
              "Turing", "Wirth", "Wilson", "Zuse")
# The marker of `redact` for each base type (or type category, pg_type.typcategory) it fits.
REDACTED_BY_TYPE = {"date": "'epoch'", "timestamp": "'epoch'", "timestamptz": "'epoch'", "time": "'allballs'",
                    "timetz": "'allballs'", "interval": "'0'", "uuid": "'00000000-0000-0000-0000-000000000000'",
                    "bytea": "'\\x'", "json": "'{}'", "jsonb": "'{}'", "inet": "'0.0.0.0'", "cidr": "'0.0.0.0/32'",
                    "macaddr": "'00:00:00:00:00:00'", "macaddr8": "'00:00:00:00:00:00:00:00'", "tsvector": "''",
                    "money": "0", "xml": "'<redacted/>'"}
REDACTED_BY_CATEGORY = {"S": "'REDACTED'", "N": "0", "B": "false", "A": "'{}'"}


@dataclass(frozen=True)
class Column:
    schema: str
    table: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.table}.{self.name}"

    @property
    def table_sql(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def qualified_name(key, length: int, parameter: str, what: str, forms: str) -> List[str]:
    """`key` split at its dots into `length` names, schema `public` where it is left out; names as the catalog spells
    them (case matters), without quotes. Serves masking's columns and a filter's tables (subset.table_of)."""
    parts = key.split(".") if isinstance(key, str) else []
    if len(parts) == length - 1:
        parts.insert(0, "public")
    if len(parts) != length or not all(parts) or any(ord(c) < 32 for part in parts for c in part):
        raise InputError(parameter, f"{key!r} does not name a {what}; use {forms}")
    return parts


def column_of(key, parameter: str = "mask") -> Column:
    """`[schema.]table.column`."""
    return Column(*qualified_name(key, 3, parameter, "column", "table.column or schema.table.column"))


def parse_rule(key: str, value, parameter: str = "mask") -> str:
    """The rule in its canonical spelling. YAML's `null` (None) is the rule null."""
    if value is None:
        return "null"
    text = value.strip() if isinstance(value, str) else None
    if text in SIMPLE_RULES:
        return text
    if text and text.startswith("keep_prefix:"):
        count = text[len("keep_prefix:"):].strip()
        if count.isdigit() and int(count) <= KEEP_PREFIX_MAX:
            return f"keep_prefix:{int(count)}"
        raise InputError(parameter, f"rule {value!r} for {key!r} needs a number of characters to keep, 0 to "
                         f"{KEEP_PREFIX_MAX}, as keep_prefix:4")
    if text and text.startswith("sql:"):
        expression = text[len("sql:"):].strip()
        if not expression or ";" in expression or "\x00" in expression:
            raise InputError(parameter, f"rule {value!r} for {key!r} needs one SQL expression over the row's columns "
                             "after sql:, without ';', as sql:lower(email)")
        return f"sql:{expression}"
    raise InputError(parameter, f"{value!r} for {key!r} is not a masking rule; use one of: {RULE_FORMS}")


def parse_rules(value, parameter: str = "mask") -> Dict[str, str]:
    """`mask` as given -> {schema.table.column: rule}, keys canonical and sorted; refuses a column named twice."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(parameter, f"{value!r} is not a mapping; give table.column: rule pairs, as "
                         "{users.email: fake_email}")
    rules: Dict[str, str] = {}
    for key, rule in value.items():
        column = column_of(key, parameter)
        if column.key in rules:
            raise InputError(parameter, f"column {column.key!r} is named twice; give it one rule")
        rules[column.key] = parse_rule(key, rule, parameter)
    return dict(sorted(rules.items()))


def encode(rules: Dict[str, str]) -> Optional[str]:
    return json.dumps(rules, sort_keys=True) if rules else None


def decode(text: Optional[str]) -> Dict[str, str]:
    return json.loads(text) if text else {}


def rule_names(rules: Dict[str, str]) -> Dict[str, str]:
    """What a view shows: the rule's name (an sql rule's expression is left out: it may name what it hides)."""
    return {key: ("sql" if rule.startswith("sql:") else rule) for key, rule in rules.items()}


def wanted_rules(defaults: Dict[str, str], asked: Dict[str, str], unmasked: bool) -> Dict[str, str]:
    """The rules a new copy is meant to have: the database's defaults, which the branch's own override column by
    column; none when it says unmasked (a copy of a masked source keeps its source's all the same)."""
    return dict(sorted(({} if unmasked else dict(defaults, **asked)).items()))


def to_apply(wanted: Dict[str, str], inherited: Dict[str, str]) -> Dict[str, str]:
    """What masking a copy of a source that had `inherited` still has to do for `wanted`: the source's own data is
    masked already, and masking it the same way again would change nothing (hash) or mask a mask (fake_email)."""
    return {key: rule for key, rule in wanted.items() if inherited.get(key) != rule}


def catalog_query(columns: List[Column]) -> str:
    """One read-only query, with the search_path masking runs with (so types come schema-qualified): for each column
    asked for, what decides whether a rule fits it (None where the table or column does not exist) and the foreign
    keys it is part of; then the masked tables' family (their inheritance or partition ancestors and descendants):
    the tables whose rows the UPDATEs reach, to be rewritten, the others, to be analysed again, every oid whose
    statistics go (indexes too), the triggers and rules that fire even for a replica, and every populated
    materialized view, to be refreshed."""
    wanted = json.dumps([{"s": c.schema, "t": c.table, "c": c.name} for c in columns])
    return f"""SET search_path = pg_catalog, pg_temp;
WITH wanted AS (SELECT * FROM json_to_recordset({quote_literal(wanted)}::json) AS w(s text, t text, c text)),
found AS (
  SELECT w.s, w.t, w.c, r.oid AS relid, r.relkind::text AS relkind, a.attnum,
         a.attnotnull OR coalesce(t.typnotnull, false) AS not_null, a.attgenerated::text <> '' AS generated,
         a.attidentity::text = 'a' AS identity_always, format_type(a.atttypid, a.atttypmod) AS type_sql,
         coalesce(nullif(b.typname, ''), t.typname) AS base_type,
         coalesce(b.typcategory, t.typcategory)::text AS category,
         coalesce(b.typtype, t.typtype)::text AS typtype,
         CASE WHEN coalesce(b.typname, t.typname) IN ('varchar', 'bpchar') AND coalesce(nullif(t.typtypmod, -1),
              a.atttypmod) > 4 THEN coalesce(nullif(t.typtypmod, -1), a.atttypmod) - 4 END AS max_length,
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisunique AND a.attnum = ANY (i.indkey))
           AS in_unique,
         EXISTS (SELECT 1 FROM pg_partitioned_table p WHERE p.partrelid = r.oid AND a.attnum = ANY (p.partattrs))
           AS partition_key,
         (SELECT coalesce(json_agg(json_build_object('name', k.conname, 'pairs', (
                   SELECT json_agg(json_build_array(
                     cn.nspname || '.' || c.relname || '.' || ca.attname, pn.nspname || '.' || p.relname || '.' || pa.attname))
                   FROM unnest(k.conkey, k.confkey) AS u(child, parent)
                   JOIN pg_attribute ca ON ca.attrelid = k.conrelid AND ca.attnum = u.child
                   JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = u.parent))), '[]')
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
          JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
          WHERE k.contype = 'f' AND k.conparentid = 0 AND ((k.conrelid = r.oid AND a.attnum = ANY (k.conkey))
                OR (k.confrelid = r.oid AND a.attnum = ANY (k.confkey)))) AS foreign_keys
  FROM wanted w
  LEFT JOIN pg_namespace n ON n.nspname = w.s
  LEFT JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = w.t
  LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attname = w.c AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype),
descendants AS (
  WITH RECURSIVE tree AS (SELECT DISTINCT relid FROM found WHERE relid IS NOT NULL
                          UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid)
  SELECT relid FROM tree),
ancestors AS (
  WITH RECURSIVE tree AS (SELECT DISTINCT relid FROM found WHERE relid IS NOT NULL
                          UNION SELECT i.inhparent FROM pg_inherits i JOIN tree ON i.inhrelid = tree.relid)
  SELECT relid FROM tree),
family AS (
  SELECT c.oid, c.relkind, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
         c.oid IN (SELECT relid FROM descendants) AND c.relkind = 'r' AS rewritten
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid IN (SELECT relid FROM descendants UNION SELECT relid FROM ancestors))
SELECT json_build_object(
  'columns', (SELECT coalesce(json_agg(found ORDER BY s, t, c), '[]') FROM found),
  'rewrite', (SELECT coalesce(json_agg(name ORDER BY oid), '[]') FROM family WHERE rewritten),
  'analyze', (SELECT coalesce(json_agg(name ORDER BY oid), '[]') FROM family WHERE NOT rewritten),
  'statistics_of', (SELECT coalesce(json_agg(oid::bigint), '[]') FROM (SELECT oid FROM family
                    UNION SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM family)) AS related),
  'firing', (SELECT coalesce(json_agg(json_build_object(
               'table', f.name, 'kind', 'TRIGGER', 'name', quote_ident(g.tgname),
               'mode', CASE g.tgenabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END)), '[]')
             FROM pg_trigger g JOIN family f ON f.oid = g.tgrelid
             WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND g.tgenabled IN ('A', 'R'))::jsonb ||
            (SELECT coalesce(jsonb_agg(jsonb_build_object(
               'table', f.name, 'kind', 'RULE', 'name', quote_ident(w.rulename),
               'mode', CASE w.ev_enabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END)), '[]')
             FROM pg_rewrite w JOIN family f ON f.oid = w.ev_class
             WHERE w.rulename <> '_RETURN' AND w.ev_enabled IN ('A', 'R')),
  'refresh', (SELECT coalesce(json_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname) ORDER BY c.oid), '[]')
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'm' AND c.relispopulated))
"""


def check(rules: Dict[str, str], catalog: dict, where: str, had: Optional[Dict[str, str]] = None) -> Dict[str, dict]:
    """Refuses, naming mask, a column that is not there, a rule that does not fit it, or a foreign key whose two
    sides would no longer match; returns each column's catalog entry by key. `where`: the server the catalog is
    from, for the message; `had`: the rules the data has had already (a masked source's)."""
    found = {f"{entry['s']}.{entry['t']}.{entry['c']}": entry for entry in catalog["columns"]}
    for key, rule in rules.items():
        entry = found.get(key) or {}
        table = ".".join(key.split(".")[:2])
        if entry.get("relid") is None:
            raise InputError("mask", f"table {table!r} does not exist in {where}; name a table as schema.table.column "
                             "or table.column (schema public)")
        if entry.get("relkind") not in ("r", "p"):
            raise InputError("mask", f"{table!r} in {where} is not a table (relkind {entry.get('relkind')}); mask the "
                             "columns of the tables it reads")
        if entry.get("attnum") is None:
            raise InputError("mask", f"table {table!r} in {where} has no column {key.split('.')[2]!r}")
        reason = misfit(rule, entry)
        if reason:
            raise InputError("mask", f"rule {rule!r} does not fit column {key!r} ({entry['type_sql']}) in {where}: "
                             f"{reason}")
    _check_foreign_keys(rules, found, dict(had or {}, **rules), where)
    return found


def _check_foreign_keys(rules: Dict[str, str], found: Dict[str, dict], every: Dict[str, str], where: str) -> None:
    """Masking runs as a replica, so foreign keys are neither checked nor cascaded: the two sides of a key must be
    masked alike (a deterministic rule then keeps them matching), or the referencing side set to null."""
    for key in rules:
        for constraint in found[key]["foreign_keys"]:
            for child, parent in constraint["pairs"]:
                child_rule, parent_rule = every.get(child), every.get(parent)
                if child_rule == parent_rule or child_rule == "null":
                    continue
                raise InputError("mask", f"foreign key {constraint['name']!r} in {where} joins {child!r} to {parent!r}, "
                                 f"which would no longer match ({child_rule or 'not masked'} against "
                                 f"{parent_rule or 'not masked'}); give both the same rule (hash keeps them equal)")


def misfit(rule: str, column: dict) -> Optional[str]:
    """Why `rule` cannot be applied to `column` (a catalog entry), or None."""
    if column["generated"]:
        return "it is a generated column, computed from others; mask those"
    if column["identity_always"]:
        return "it is an identity column GENERATED ALWAYS, which an UPDATE cannot set"
    if column["partition_key"]:
        return "it is the table's partition key, which decides where each row lives"
    text = column["category"] == "S"
    base = column["base_type"]
    repeats = rule in ("redact", "fake_name") or rule.startswith("keep_prefix:")
    if column["in_unique"] and repeats:
        return f"it is part of a unique index and {rule.partition(':')[0]} makes equal values of different ones; use hash"
    if rule == "null":
        return "it is NOT NULL; use redact or hash" if column["not_null"] else None
    if rule == "redact":
        fits = text or base in REDACTED_BY_TYPE or column["category"] in REDACTED_BY_CATEGORY or column["typtype"] == "e"
        return None if fits else f"redact has no marker for type {base}; use null, hash or sql:<expression>"
    if rule == "hash":
        if not (text or base in HASH_TYPES):
            return f"hash makes text, integers, uuid or bytea, not {base}; use redact or sql:<expression>"
        narrow = base in ("int2", "int4") or (column["max_length"] is not None and column["max_length"] < 16)
        if column["in_unique"] and narrow:
            return "it is part of a unique index and too narrow for hashes not to collide; use a wider type or sql"
        return None
    if rule in ("fake_email", "fake_name") or rule.startswith("keep_prefix:"):
        if not text:
            return f"{rule.partition(':')[0]} makes text and the column is {base}"
        if rule == "fake_email" and column["max_length"] is not None and column["max_length"] < FAKE_EMAIL_LENGTH:
            return f"a fake address has {FAKE_EMAIL_LENGTH} characters and the column holds {column['max_length']}"
    return None


# Where the sealed server finds the database's key (mounted read-only: service/filler.py). The masking SQL reads it there
# and derives HMAC-SHA-256's padded keys (RFC 2104) from it with built-in functions only, so no statement, log or error
# ever holds the key, and no extension is needed.
KEY_IN_CONTAINER = "/run/secrets/baseful-mask-key"
KEY_ALIAS = "baseful_mask_key"
KEY_SOURCE = f"""(SELECT substring(varbit_send(bits # ('x' || repeat('36', 64))::bit(512)) FROM 5) AS inner_pad,
        substring(varbit_send(bits # ('x' || repeat('5c', 64))::bit(512)) FROM 5) AS outer_pad
 FROM (SELECT ('x' || rpad(btrim(convert_from(pg_read_binary_file({quote_literal(KEY_IN_CONTAINER)}), 'UTF8')),
                           128, '0'))::bit(512) AS bits) AS key_bits) AS {KEY_ALIAS}"""


def expression(rule: str, column: dict, value: str) -> str:
    """The SQL that masks `value` (the column, quoted) under `rule`, of the column's type; the key's padded forms are
    KEY_ALIAS's columns."""
    base, limit = column["base_type"], column["max_length"]
    digest = (f"sha256({KEY_ALIAS}.outer_pad || sha256({KEY_ALIAS}.inner_pad || "
              f"convert_to({value}::text, 'UTF8')))")
    hex_digest = f"encode({digest}, 'hex')"

    def fitted(text_sql: str) -> str:
        return f"left({text_sql}, {limit})" if limit is not None else text_sql

    if rule == "null":
        made = "NULL"
    elif rule == "redact":
        if column["typtype"] == "e":
            made = f"enum_first(NULL::{column['type_sql']})"
        elif column["category"] == "S":
            made = fitted("'REDACTED'")
        else:
            made = REDACTED_BY_TYPE.get(base) or REDACTED_BY_CATEGORY[column["category"]]
    elif rule == "hash":
        if base == "bytea":
            made = digest
        elif base == "uuid":
            made = f"left({hex_digest}, 32)::uuid"
        elif base in ("int2", "int4", "int8"):
            bound = {"int2": 32767, "int4": 2147483647, "int8": 9223372036854775807}[base]
            made = f"abs(('x' || left({hex_digest}, 15))::bit(60)::bigint % {bound})"
        else:
            made = fitted(hex_digest)
    elif rule == "fake_email":
        made = f"'user-' || left({hex_digest}, 16) || '@example.com'"
    elif rule == "fake_name":
        firsts, lasts = (f"(ARRAY[{', '.join(quote_literal(n) for n in names)}])" for names in (FIRST_NAMES, LAST_NAMES))
        made = fitted(f"{firsts}[1 + get_byte({digest}, 0) % {len(FIRST_NAMES)}] || ' ' || "
                      f"{lasts}[1 + get_byte({digest}, 1) % {len(LAST_NAMES)}]")
    elif rule.startswith("keep_prefix:"):
        count = int(rule.partition(":")[2])
        made = f"left({value}, {count}) || repeat('*', greatest(char_length({value}) - {count}, 0))"
    else:
        return f"({rule.partition(':')[2]})"
    return f"CASE WHEN {value} IS NULL THEN NULL ELSE ({made})::{column['type_sql']} END"


def updates(rules: Dict[str, str], columns: Dict[str, dict]) -> List[str]:
    """One UPDATE per table, every masked column of it at once, its rows joined to the key's one row."""
    by_table: Dict[str, List[str]] = {}
    for name, rule in rules.items():
        column = column_of(name)
        value = f"{quote_ident(column.table)}.{quote_ident(column.name)}"
        by_table.setdefault(column.table_sql, []).append(f"{quote_ident(column.name)} = {expression(rule, columns[name], value)}")
    return [f"UPDATE {table} SET {', '.join(sets)} FROM {KEY_SOURCE};" for table, sets in sorted(by_table.items())]


def trial_update(key: str, rule: str) -> str:
    """The UPDATE an sql rule makes, for EXPLAIN (Runtime.explain): planning it checks types, columns and functions
    against a server and executes nothing."""
    column = column_of(key)
    return f"UPDATE {column.table_sql} SET {quote_ident(column.name)} = ({rule.partition(':')[2]})"


# The masking session. As a replica, so user triggers and rules (ENABLE as usual) and foreign-key actions do not fire:
# an audit trigger would copy the originals elsewhere; those enabled ALWAYS or REPLICA are disabled for the UPDATEs and
# enabled again as they were. Whatever the copied configuration says: nothing of the session reaches a log or
# pg_stat_statements, no timeout cuts it short, and only pg_catalog resolves names, so no function of another schema
# can stand in for a built-in one (and see the key). The copy's prepared transactions are rolled back: they hold
# locks VACUUM FULL would wait on, and would bring their rows back if committed.
SESSION = """\\set VERBOSITY sqlstate
SET session_replication_role = replica;
SET search_path = pg_catalog, pg_temp;
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = panic;
SET log_min_messages = fatal;
SET pg_stat_statements.track = 'none';
SET auto_explain.log_min_duration = -1;
SET statement_timeout = 0;
SET lock_timeout = '10min';
SET idle_in_transaction_session_timeout = 0;
SELECT format('ROLLBACK PREPARED %L', gid) FROM pg_prepared_xacts WHERE database = current_database() \\gexec
"""


def script(rules: Dict[str, str], catalog: dict, columns: Dict[str, dict]) -> str:
    """The whole masking, for psql: the UPDATEs in one transaction; then every table they reached rewritten
    (VACUUM FULL: new files holding only the masked rows, indexes and TOAST rebuilt, the old files unlinked), the
    statistics of the tables' whole family deleted (ANALYZE alone keeps what it does not gather again, as a column
    with statistics target 0) and gathered anew from masked rows, pg_statistic rewritten, materialized views
    refreshed and analysed (they may hold originals too), and a checkpoint."""
    toggles = [(f"ALTER TABLE {f['table']} DISABLE {f['kind']} {f['name']};",
                f"ALTER TABLE {f['table']} ENABLE {f['mode']} {f['kind']} {f['name']};") for f in catalog["firing"]]
    oids = ", ".join(str(oid) for oid in catalog["statistics_of"]) or "0"
    lines = [SESSION, "BEGIN;", *(off for off, _on in toggles), *updates(rules, columns), *(on for _off, on in toggles),
             "COMMIT;",
             f"DELETE FROM pg_statistic WHERE starelid IN ({oids});",
             f"DELETE FROM pg_statistic_ext_data WHERE stxoid IN (SELECT oid FROM pg_statistic_ext WHERE stxrelid IN "
             f"({oids}));"]
    lines += [f"VACUUM (FULL, ANALYZE) {table};" for table in catalog["rewrite"]]
    lines += [f"ANALYZE {table};" for table in catalog["analyze"]]
    lines += [f"REFRESH MATERIALIZED VIEW {view}; ANALYZE {view};" for view in catalog["refresh"]]
    lines += ["VACUUM FULL pg_statistic;", "VACUUM FULL pg_statistic_ext_data;", "CHECKPOINT;"]
    return "\n".join(lines) + "\n"
