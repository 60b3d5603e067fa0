#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: branch_info
short_description: List the branches of one database or of all, with their live status
version_added: 0.1.0
description:
  - Reads the metadata and asks Docker for each branch's status now. Changes nothing.
  - A branch whose container was removed by hand is reported V(missing); O(state_dir) that does not exist reads as no branches.
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
options:
  database:
    description: Only the branches of this database. All databases if omitted.
    type: str
  name:
    description: Only the branch of this name.
    type: str
seealso:
  - module: baseful.branching.branch
"""

EXAMPLES = r"""
- name: Every branch of inventory, default first
  baseful.branching.branch_info:
    database: inventory
  register: inventory_branches

- name: Connection URL of the default branch
  ansible.builtin.debug:
    msg: "{{ inventory_branches.branches[0].url }}"
"""

RETURN = r"""
branches:
  description:
    - The branches, grouped by database, each database's default first, then by name.
    - Each has the fields of RV(baseful.branching.branch#module:branch).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: production, database: inventory, status: running, is_default: true, protected: true, port: 54320,
       url: "postgresql://postgres:********@127.0.0.1:54320/inventory"}
endpoints:
  description:
    - The endpoint of each database listed that has one, as Docker and its configuration have it now.
    - C(status) is its container's (running, stopped, missing); C(routes) maps each database name a client may
      give the endpoint to the branch it reaches (null where that branch is stopped); C(in_sync) says whether the
      routes are those the records call for and the pooler has taken them (false after a run was killed
      half-way; the next apply repairs it); C(switch_pending) says a switch was begun and not seen through.
  returned: always
  type: list
  elements: dict
  sample:
    - {database: inventory, host: 127.0.0.1, port: 54321, status: running, in_sync: true, switch_pending: false,
       url: "postgresql://postgres:********@127.0.0.1:54321/inventory",
       routes: {inventory: production, inventory.production: production, inventory.feature: feature}}
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
    database=dict(type="str"),
    name=dict(type="str"),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    run(module, lambda service: service.info(p["database"], p["name"]), read_only=True)


if __name__ == "__main__":
    main()
