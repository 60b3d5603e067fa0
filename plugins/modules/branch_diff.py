#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: branch_diff
short_description: Compare the schema of a branch with another branch of the same database
version_added: 0.1.0
description:
  - Reads the schema of branch O(name) and of O(against) (its parent unless named) from their running servers and
    says what differs, object by object, and as a unified diff of their schema DDL. Changes nothing.
  - Objects compared, in every schema but PostgreSQL's own (and not those an extension brings) - schemas,
    extensions (their version), enum and domain types, tables, columns (type, collation, nullability, default,
    identity, generated expression), constraints, indexes, views and materialized views, sequences, functions and
    procedures, triggers and row-level security policies. Each is read as the definition PostgreSQL itself
    recreates it from (C(pg_get_constraintdef), C(pg_get_indexdef), C(pg_get_functiondef), ...), so a change is
    any change of that definition.
  - The catalog query and C(pg_dump --schema-only) run in each branch's own container with the client tools of
    its image, so the Docker host needs no PostgreSQL client or driver.
author:
  - baseful.branching maintainers (@baseful-branching)
extends_documentation_fragment:
  - baseful.branching.attributes
  - baseful.branching.placement
attributes:
  check_mode:
    support: full
    details: The module never changes anything.
  diff_mode:
    support: none
    details: The module's own RV(diff) is its result.
options:
  database:
    description: Name of the database both branches belong to.
    type: str
    required: true
  name:
    description: The branch whose changes are reported (for example a pull request's). It must be running.
    type: str
    required: true
  against:
    description:
      - The branch it is compared with. Defaults to the branch's parent (the branch it was copied from). It must be
        running.
    type: str
  data:
    description:
      - Also count the rows of every table on both branches (RV(rows)); exact counts, so this reads every table.
    type: bool
    default: false
seealso:
  - module: baseful.branching.branch
  - module: baseful.branching.branch_merge
"""

EXAMPLES = r"""
- name: What the pull request's migrations change, against production
  baseful.branching.branch_diff:
    database: inventory
    name: pr-42
    against: production
  register: schema_diff

- name: Fail the pipeline if the branch dropped a column
  ansible.builtin.assert:
    that: schema_diff.changes | selectattr('kind', 'equalto', 'column') | selectattr('change', 'equalto', 'removed')
          | list | length == 0

- name: Write the diff for review
  ansible.builtin.copy:
    content: "{{ schema_diff.diff }}"
    dest: /tmp/pr-42.schema.diff
    mode: "0644"
"""

RETURN = r"""
name:
  description: The branch compared.
  returned: always
  type: str
  sample: pr-42
against:
  description: The branch it was compared with.
  returned: always
  type: str
  sample: production
identical:
  description: Whether the two schemas have the same objects with the same definitions.
  returned: always
  type: bool
  sample: false
changes:
  description:
    - Each object that differs, by kind (in the order of the description) then name. V(kind) is one of V(schema),
      V(extension), V(type), V(table), V(column), V(constraint), V(index), V(view), V(sequence), V(function),
      V(trigger), V(policy); V(name) is schema-qualified (a column's and a constraint's, trigger's or policy's after
      its table's, C(public.orders.quantity)); V(change) is V(added) (the branch has it, O(against) not),
      V(removed) (the other way round) or V(changed); V(detail) is the definition (for V(changed), the one of
      O(against), C(->), then the branch's).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: column, name: public.orders.note, change: added, detail: text}
    - {kind: index, name: public.orders_product, change: added,
       detail: "CREATE INDEX orders_product ON public.orders USING btree (product_id)"}
diff:
  description:
    - A unified diff from O(against)'s schema to the branch's, of C(pg_dump --schema-only) without comments, session
      settings and blank lines. Empty when the dumps are the same.
  returned: always
  type: str
rows:
  description:
    - With O(data=true), each table of either branch - V(table), V(rows) on the branch, V(against_rows), and their
      V(difference) (null where the table is on one side only).
  returned: when O(data=true)
  type: list
  elements: dict
  sample:
    - {table: public.orders, rows: 1200, against_rows: 1000, difference: 200}
actions:
  description: Always empty; the module changes nothing.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baseful.branching.plugins.module_utils.common import run, shared_argument_spec

# The module's options; a unit test holds DOCUMENTATION to them.
ARGUMENT_SPEC = shared_argument_spec(
    database=dict(type="str", required=True),
    name=dict(type="str", required=True),
    against=dict(type="str"),
    data=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    run(module, lambda service: service.diff(p["database"], p["name"], p["against"], p["data"]), read_only=True)


if __name__ == "__main__":
    main()
