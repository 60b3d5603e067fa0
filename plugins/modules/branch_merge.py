#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: branch_merge
short_description: Apply a branch's migrations to its parent, rehearsed on a throwaway copy first
version_added: 0.1.0
description:
  - Applies to O(into) (the branch's parent unless named) the migrations branch O(name) has had
    (M(baseful.branching.branch) O(baseful.branching.branch#module:migrations)) that O(into) has not had yet, in the
    order the branch had them.
  - First they are rehearsed on a throwaway copy of O(into) (a branch named C(rehearsal-<random>), copied as a new
    branch would be, with a one-hour lease so that the expiry job removes it if the run is killed); it is removed as
    soon as the rehearsal is over. A file that fails there stops the merge, and O(into) is not touched.
  - Then they are applied to O(into), each in its own transaction, and recorded on it; afterwards the two schemas are
    compared as M(baseful.branching.branch_diff) does, and RV(identical) says whether they now agree (RV(changes)
    lists what does not, such as objects made on the branch by hand rather than by a migration).
  - Only migrations are merged. Rows written or changed on the branch are never copied to O(into).
  - Protection does not forbid a merge (it guards deletion and reset); O(into) may be the default branch.
  - Re-running it changes nothing. Check mode lists the files that would be applied (RV(migrations_applied)).
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
    details: Before and after list the migrations O(into) has had.
options:
  database:
    description: Name of the database both branches belong to.
    type: str
    required: true
  name:
    description: The branch whose migrations are merged. It must be running.
    type: str
    required: true
  into:
    description: The branch they are applied to; defaults to the branch's parent. It must be running.
    type: str
  migrations:
    description:
      - Where to find the files to apply, as absolute paths of SQL files or directories on the Docker host (as for
        M(baseful.branching.branch)). A file is taken from here where one of its name is given, else from the copy
        kept under O(state_dir) when it ran on the branch; either way its checksum must be the one recorded.
      - Needed only where the branch had its migrations under another O(state_dir).
    type: list
    elements: path
    default: []
seealso:
  - module: baseful.branching.branch
  - module: baseful.branching.branch_diff
"""

EXAMPLES = r"""
- name: The pull request was approved - apply its migrations to production
  baseful.branching.branch_merge:
    database: inventory
    name: pr-42
    into: production
  register: merged

- name: Say what is still different
  ansible.builtin.debug:
    msg: "{{ merged.changes }}"
  when: not merged.identical
"""

RETURN = r"""
into:
  description: The branch the migrations were applied to.
  returned: always
  type: str
  sample: production
migrations_applied:
  description: Names of the files applied to O(into), in order; in check mode, those that would be.
  returned: always
  type: list
  elements: str
  sample: [0042_add_sku_index.sql]
rehearsal:
  description: The throwaway copy the files ran on first - V(branch) (its name), V(copy_method), V(seconds).
  returned: when files were applied
  type: dict
  sample: {branch: rehearsal-5f2c9a01, copy_method: snapshot, seconds: 2.4}
identical:
  description: Whether the schemas of the branch and O(into) agree after the merge.
  returned: always
  type: bool
changes:
  description: What still differs between the branch and O(into), as RV(baseful.branching.branch_diff#module:changes).
  returned: always
  type: list
  elements: dict
diff:
  description: The unified diff of the two schemas after the merge, as RV(baseful.branching.branch_diff#module:diff).
  returned: always
  type: str
actions:
  description: V(rehearse) and V(migrate) when files were applied (or would be, in check mode); else empty.
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
    into=dict(type="str"),
    migrations=dict(type="list", elements="path", default=[]),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    run(module, lambda service: service.merge(p["database"], p["name"], p["into"], p["migrations"]))


if __name__ == "__main__":
    main()
