#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: branch_expire
short_description: Remove branches whose lease has run out
version_added: 0.1.0
description:
  - Deletes every branch whose C(expires_at) has passed, in one database or in all, exactly as
    M(baseful.branching.branch) with O(baseful.branching.branch#module:state=absent) would.
  - Default and protected branches are never removed; they are listed under RV(kept).
  - The C(expiry) role runs this module every minute from the host's scheduler.
author:
  - baseful.branching maintainers (@baseful-branching)
extends_documentation_fragment:
  - baseful.branching.attributes
  - baseful.branching.placement
attributes:
  check_mode:
    support: full
    details: Lists the branches that would be removed.
  diff_mode:
    support: none
options:
  database:
    description: Only this database. All databases if omitted.
    type: str
seealso:
  - module: baseful.branching.branch
"""

EXAMPLES = r"""
- name: Remove expired branches everywhere
  baseful.branching.branch_expire:

- name: What would go in inventory
  baseful.branching.branch_expire:
    database: inventory
  check_mode: true
"""

RETURN = r"""
expired:
  description: Branches removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: dict
  sample: [{database: inventory, name: my-debug-session, expires_at: "2026-11-23T12:15:00+00:00"}]
errors:
  description: Expired branches that could not be removed, with the error; the others are removed all the same.
  returned: always
  type: list
  elements: dict
  sample: [{database: inventory, name: pr-1, error: "could not ..."}]
kept:
  description: Expired branches left in place because they are the default or protected.
  returned: always
  type: list
  elements: dict
  sample: [{database: inventory, name: staging, reason: default}]
actions:
  description: One V(delete) per removed branch.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baseful.branching.plugins.module_utils.common import run, shared_argument_spec

# The module's options; a unit test holds DOCUMENTATION to them.
ARGUMENT_SPEC = shared_argument_spec(database=dict(type="str"))


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run(module, lambda service: service.expire(module.params["database"]))


if __name__ == "__main__":
    main()
