#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: branch
short_description: Create, start, stop, switch, reset or delete a branch of a PostgreSQL database
version_added: 0.1.0
description:
  - A branch is an isolated, writable copy of a database in its own Docker container on its own host port,
    with its data directory under O(data_root).
  - A new branch is copied from O(source) (the default branch unless named) and started.
    Applying an existing branch again reconnects to it without copying and reports no change.
author:
  - baseful.branching maintainers (@baseful-branching)
extends_documentation_fragment:
  - baseful.branching.attributes
  - baseful.branching.placement
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  database:
    description: Name of the database the branch belongs to; it must exist (M(baseful.branching.database)).
    type: str
    required: true
  name:
    description:
      - Name of the branch; 1 to 31 characters, a lower-case letter first, then lower-case letters, digits, C(_) or C(-).
    type: str
    required: true
  state:
    description:
      - V(present) the branch exists (created and started if new; an existing one is left running or stopped).
      - V(started) it exists and runs; a branch whose container was removed is recreated from its data directory.
      - V(stopped) it exists and its container is stopped; the port stays reserved.
      - V(absent) container, data directory and record are deleted. Refused for the default and for protected branches.
      - V(default) it exists, runs, and is the default branch of the database (exactly one is); the previous
        default stays as it is.
    type: str
    choices: [present, started, stopped, absent, default]
    default: present
  source:
    description:
      - Branch of the same database to copy from, on creation and on O(reset). It must be running.
      - Defaults to the default branch on creation, and to the recorded parent on reset.
    type: str
  copy:
    description:
      - What is copied. V(all) schema and data, V(schema) structure only, V(empty) a blank database
        with the same name, owner and encoding.
      - Defaults to V(all) on creation and to the recorded mode on reset.
    type: str
    choices: [all, schema, empty]
  copy_method:
    description:
      - How it is copied, on creation and on O(reset). Defaults to V(auto) on creation and to the recorded method on reset.
      - V(snapshot) clones the source's data directory copy-on-write (reflinks on XFS or btrfs under O(data_root)),
        in constant time whatever the size; a running source is frozen (docker pause) for the milliseconds the
        clone takes, and the branch starts through ordinary crash recovery.
      - V(physical) streams C(pg_basebackup) with its WAL from the running source straight into the branch's data
        directory (a stopped source is copied as files), at disk speed.
      - V(dump) streams C(pg_dump) into C(pg_restore), the only method for O(copy=schema) and O(copy=empty).
      - V(auto) picks V(snapshot) for a full copy where O(data_root) supports reflinks, else V(physical) for a full copy,
        else V(dump). An explicit method that cannot serve the request is refused with the reason.
      - V(dump) reads from a running source; V(snapshot) and V(physical) also copy a stopped one.
    type: str
    choices: [auto, snapshot, physical, dump]
  ttl:
    description:
      - A lease, as seconds or a number with C(s), C(m), C(h) or C(d) (V(300), V(15m), V(2h)).
        The branch expires that long after it was last applied and is removed by M(baseful.branching.branch_expire).
      - Re-applying the branch renews the lease; the renewal alone does not count as a change.
      - V(none) removes the lease (RV(branch.expires_at) becomes null); leaving O(ttl) out keeps the lease as it is.
    type: str
  port:
    description:
      - Host port of the branch, inside O(port_range) and free. Allocated from the range if omitted.
      - Changing it on an existing branch recreates its container on the new port; the data is kept.
    type: int
  protected:
    description:
      - A protected branch cannot be deleted or reset.
      - C(production) is the root branch of its database; it is always protected (V(false) is refused), is never
        deleted or reset, and goes only with its database (O(baseful.branching.database#module:state=absent)).
    type: bool
  reset:
    description:
      - Re-copy the branch from its source, keeping its name and port. Refused for protected branches and for C(production).
      - Every run with V(true) resets again, so use it in a task you run on purpose.
    type: bool
    default: false
  migrations:
    description:
      - SQL files to apply to the branch, as absolute paths on the Docker host; a directory stands for its C(*.sql)
        files in name order (not its subdirectories). Files run in the order given, each in its own transaction
        with C(ON_ERROR_STOP), through the psql of the branch's own image on its local socket.
      - A migration is known by its file name, so each name may be given once. A file the branch has had is not
        run again; one whose contents changed since it was applied is refused by name before anything runs.
      - On a new or reset branch they run after the copy and before the branch serves (RV(branch.status) says
        V(running) only then). A file that fails is rolled back and named with the failed statement; a new branch
        is then removed, a reset one stays V(resetting) (the next apply resets it again), and an existing one keeps
        the files before it.
      - A new branch has had what its source had (O(copy=all) and O(copy=schema); O(copy=empty) none), so only
        files new to the source run; a stopped branch is started for its migrations and stopped again.
      - Statements that cannot run inside a transaction block (C(CREATE INDEX CONCURRENTLY), C(VACUUM)) are
        refused by PostgreSQL there.
      - Check mode lists the files that would run (RV(migrations_applied)).
    type: list
    elements: path
    default: []
  mask:
    description:
      - Masking rules for a new or reset copy, as C(table.column) or C(schema.table.column) (schema C(public) if
        not named; names as the catalog spells them) mapped to a rule. They add to the database's own
        (M(baseful.branching.database) O(baseful.branching.database#module:mask)) and win over them column by column.
      - V(null) NULL. V(redact) a fixed marker of the column's type (C(REDACTED) for text, 0, false, the epoch, the
        first label of an enum, an empty array or JSON object). V(hash) an HMAC-SHA-256 of the value shaped to the
        column (hex text, an integer, a uuid, bytea), keyed per database (the key is kept in O(state_dir), never in a
        branch), so equal values stay equal across tables and branches and joins still match.
        V(fake_email) C(user-<16 hex of that HMAC>@example.com). V(fake_name) a first and a last name chosen by it.
        C(keep_prefix:N) the first N characters, then C(*) for each other one. C(sql:<expression>) any SQL
        expression over the row's columns (no C(;); names resolve in C(pg_catalog) only, so qualify your own
        functions). NULL stays NULL under every rule but C(sql:).
      - The copy is masked on a sealed server, with no network and no published port; the branch's own container
        (its port, and its route through the database's endpoint) exists only once masking is done. The masked
        tables are then rewritten (C(VACUUM FULL), indexes and TOAST too), statistics gathered anew and
        C(pg_statistic) rewritten, materialized views refreshed, the server stopped cleanly and its WAL replaced
        with C(pg_resetwal), and the copy's server logs and C(pg_stat_statements) files emptied, so its data
        directory holds no byte of an original masked value. Triggers, rules and foreign-key actions do not fire
        while it runs. A failure is reported by its SQLSTATE alone, since PostgreSQL's message could quote a value.
      - A table or column that does not exist, or a rule that does not fit the column, is refused, naming O(mask),
        before anything is made. That covers V(null) on C(NOT NULL); V(redact), V(fake_name) or C(keep_prefix) on a column of a
        unique index, or V(hash) where it is too narrow not to collide; text rules on other types; a generated,
        identity or partition-key column; an expression the server cannot plan; the two sides of a foreign key
        masked differently (masking does not cascade, so give both V(hash), or the referencing side V(null)). It is
        checked against the source when that runs, else against the copy before it serves.
      - A copy of a masked branch is masked too (RV(branch.masked)); it only applies the rules its source did not
        (a snapshot of a masked branch costs what any snapshot does). A reset applies the branch's rules again,
        or these where given.
      - An existing branch keeps the rules its data has had; asking it for other ones is refused unless O(reset=true).
    type: dict
  unmasked:
    description:
      - Leave out the masking rules of the database (O(baseful.branching.database#module:mask)) for this new or
        reset copy. Refused where the source is masked, since a copy of masked data stays masked.
    type: bool
    default: false
  filter:
    description:
      - A subset of the source's rows for a new or reset copy, as C(table) or C(schema.table) (schema C(public) if
        not named) mapped to an SQL condition over the table's columns (no C(;)), as mirrord's C(copy.tables) filters.
      - Those tables copy the rows that match; with O(copy=all) every other table copies whole, with O(copy=schema)
        none (O(copy=empty) takes no table and is refused with it). A table with inheritance children filters its own
        rows; a partitioned table, the rows of all its partitions.
      - Foreign keys stay valid. Before they are made, the copy leaves out every row that references a row it does
        not hold, following the constraints until none is left. A row whose parent was filtered out goes, then the
        rows that referenced it. V(left_out) in RV(copy_result) says how many rows each constraint (C(schema.table.constraint)) left out.
        Those rows are copied and deleted on the branch before it serves; for values that must never reach a
        branch, use O(mask).
      - Served by the V(dump) method, which O(copy_method=auto) picks (a reset of a branch made by V(snapshot) or
        V(physical) too), from a running source. It is streamed through the copy worker with no temporary file on the
        host. Every part of the copy reads one snapshot of the source, whose tables stay locked in ACCESS SHARE mode
        until the copy ends, as C(pg_dump) holds them, so the subset is consistent while the source keeps serving.
      - Under O(copy=schema) the sequences the filtered tables own are set past their rows.
      - A partitioned table and one of its partitions both filtered, or a partitioned table with foreign-table
        partitions, are refused.
      - A table that does not exist, or a condition the source cannot plan, is refused naming O(filter) before
        anything is made. An existing branch keeps the rows it has; another filter is refused unless O(reset=true).
        A reset copies with the branch's filter again, or this one where given.
    type: dict
seealso:
  - module: baseful.branching.database
  - module: baseful.branching.branch_info
  - module: baseful.branching.branch_expire
notes:
  - A long copy can run under Ansible C(async) with C(poll); RV(copy_result) reports its method, duration and size.
"""

EXAMPLES = r"""
- name: A branch to debug against, reused when it exists, gone 15 minutes after the last run
  baseful.branching.branch:
    database: inventory
    name: my-debug-session
    ttl: 15m
  register: debug_branch

- name: Point the application at it
  ansible.builtin.debug:
    msg: "DATABASE_URL={{ debug_branch.branch.url }}"

- name: Structure only, for a migration test
  baseful.branching.branch:
    database: inventory
    name: migration-check
    copy: schema

- name: A branch for a pull request, with its migrations applied before anyone uses it
  baseful.branching.branch:
    database: inventory
    name: pr-42
    ttl: 2d
    migrations:
      - /srv/checkout/db/migrations  # its *.sql files, in name order
  register: pr_branch

- name: Stop a branch; its port stays reserved
  baseful.branching.branch:
    database: inventory
    name: my-debug-session
    state: stopped

- name: Make staging the default branch
  baseful.branching.branch:
    database: inventory
    name: staging
    state: default

- name: Throw away what was done on the branch and copy it again
  baseful.branching.branch:
    database: inventory
    name: my-debug-session
    reset: true

- name: Delete it
  baseful.branching.branch:
    database: inventory
    name: my-debug-session
    state: absent
"""

RETURN = r"""
actions:
  description:
    - What was done, or in check mode would be done, in order. Among V(cleanup), V(create), V(reset),
      V(recreate_container), V(start), V(migrate), V(stop), V(set_default), V(set_protected), V(set_ttl), V(delete).
  returned: always
  type: list
  elements: str
  sample: [create]
branch:
  description: The branch after the run.
  returned: when the branch exists after the run (in check mode, when it exists already)
  type: dict
  contains:
    name:
      description: Branch name.
      type: str
    database:
      description: Database name.
      type: str
    status:
      description:
        - What Docker reports now, V(running), V(stopped) or V(missing) (container gone), or V(creating) / V(resetting) /
          V(deleting) while work is in progress.
        - V(resetting) also after a reset that failed; the next apply resets the branch again.
      type: str
    is_default:
      description: Whether it is the default branch.
      type: bool
    protected:
      description: Whether it is protected from deletion and reset.
      type: bool
    host:
      description: Host address clients dial.
      type: str
    port:
      description: Host port.
      type: int
    url:
      description: Connection URL C(postgresql://user:password@host:port/database). It holds the password.
      type: str
    container_name:
      description: Name of the Docker container.
      type: str
    container_id:
      description: Id of the Docker container.
      type: str
    parent:
      description: Branch it was copied from (V(external) when seeded from a URL), or null.
      type: str
    copy_mode:
      description: V(all), V(schema) or V(empty); null for a branch made empty by initdb.
      type: str
    copy_method:
      description: Method that filled it.
      type: str
    created_at:
      description: Creation time, ISO 8601 UTC.
      type: str
    expires_at:
      description: End of the lease, ISO 8601 UTC, or null.
      type: str
    ttl:
      description: Lease length in seconds, or null.
      type: int
    data_dir:
      description: Data directory on the Docker host.
      type: str
    data_dir_exists:
      description: Whether the data directory is there.
      type: bool
    size_bytes:
      description: Disk used by the data directory.
      type: int
    copy_progress:
      description:
        - Only while the branch is V(creating) or V(resetting) (see it with M(baseful.branching.branch_info) from
          another terminal or task, for example while this module runs under C(async)); null otherwise.
        - V(method); V(bytes) in the branch's data directory so far; V(expected_bytes), the source's data directory,
          for V(snapshot) and V(physical) (null for V(dump), whose size on disk is not the source's); V(percent) of
          it, at most 99 until the copy is done; V(run_alive), whether the run making the branch is still alive (it
          holds the branch's lock; after a run that died, the next apply cleans up); V(copying), whether a copy
          worker (V(physical), V(dump)) runs, and V(worker_started_at), Docker's start time of that worker.
      type: dict
    migrations:
      description:
        - The migrations the branch has had, in order - V(file) (its name), V(checksum) (SHA-256 of its contents),
          V(applied_at) (ISO 8601 UTC). A copy starts with its source's list.
      type: list
      elements: dict
    masked:
      description: Whether the branch's data was masked (by its own rules or its source's).
      type: bool
    mask:
      description:
        - The rules its data has had, its source's among them, column (C(schema.table.column)) to rule name; an
          C(sql:) rule shows as V(sql).
      type: dict
    filter:
      description: The row filter its copy took, table (C(schema.table)) to condition; empty for a whole copy.
      type: dict
  sample:
    name: my-debug-session
    database: inventory
    status: running
    is_default: false
    protected: false
    host: 127.0.0.1
    port: 54321
    url: postgresql://postgres:********@127.0.0.1:54321/inventory
    container_name: baseful-inventory-my-debug-session-x1y2z3
    container_id: 4c1f0e...
    parent: production
    copy_mode: all
    copy_method: snapshot
    created_at: "2026-11-23T12:00:00+00:00"
    expires_at: "2026-11-23T12:15:00+00:00"
    ttl: 900
    data_dir: /var/lib/baseful/data/inventory/my-debug-session
    data_dir_exists: true
    size_bytes: 40321024
migrations_applied:
  description:
    - Names of the migration files this run applied, in order; in check mode, those it would apply.
  returned: always
  type: list
  elements: str
  sample: [0042_add_sku_index.sql]
copy_result:
  description:
    - How the branch was filled, when a copy ran - V(method), V(seconds), V(bytes) (size of the branch's data directory
      after the copy), V(ready_seconds) (from the start of the copy to a server
      that accepts connections), and for V(snapshot) V(source_pause_ms), how long a running source was frozen (null
      when the source was stopped); for a filtered copy (O(filter)) V(left_out), how many rows each foreign key left
      out, by constraint name.
  returned: when a copy ran
  type: dict
  sample: {method: snapshot, seconds: 0.21, bytes: 40321024, ready_seconds: 0.74, source_pause_ms: 38.5}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baseful.branching.plugins.module_utils.common import run, shared_argument_spec
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    BRANCH_STATES,
    COPY_METHODS,
    COPY_MODES,
    parse_ttl,
)
from ansible_collections.baseful.branching.plugins.module_utils.plan import BranchRequest

# The module's options; a unit test holds DOCUMENTATION to them.
ARGUMENT_SPEC = shared_argument_spec(
    database=dict(type="str", required=True),
    name=dict(type="str", required=True),
    state=dict(type="str", choices=list(BRANCH_STATES), default="present"),
    source=dict(type="str"),
    copy=dict(type="str", choices=list(COPY_MODES)),
    copy_method=dict(type="str", choices=list(COPY_METHODS)),
    ttl=dict(type="str"),
    port=dict(type="int"),
    protected=dict(type="bool"),
    reset=dict(type="bool", default=False),
    migrations=dict(type="list", elements="path", default=[]),
    mask=dict(type="dict"),
    unmasked=dict(type="bool", default=False),
    filter=dict(type="dict"),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params

    def apply(service):
        return service.apply_branch(BranchRequest(
            database=p["database"], name=p["name"], state=p["state"], source=p["source"], copy_mode=p["copy"],
            copy_method=p["copy_method"], ttl_seconds=parse_ttl(p["ttl"]), port=p["port"],
            protected=p["protected"], reset=p["reset"], mask=p["mask"], unmasked=p["unmasked"],
            filter=p["filter"]),
            migrations=p["migrations"])

    run(module, apply)


if __name__ == "__main__":
    main()
