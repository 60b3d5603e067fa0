# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-line report a role gives when one of its module tasks fails: the roles hide module results
(they hold connection URLs with passwords) but not their error messages."""

from __future__ import annotations

import json
import re

from ansible_collections.baseful.branching.plugins.module_utils.common import shared_argument_spec

DOCUMENTATION = r"""
name: failure_message
short_description: One line saying which task failed, for which items, and why
version_added: 0.1.0
description:
  - "Turns the registered result of a failed task (a single result, or a loop's results) into one line,
    C(<task> failed: <item>: <message>; ...), for the roles' C(rescue) sections."
  - "A module message that starts with one of the module's parameter names (C(name: ...)) is reported under
    the role variable that fed that parameter, given in O(parameters)."
  - Item labels are quoted and runs of white space (newlines among them) in messages become one space, so the
    report is one line.
options:
  _input:
    description: The registered result of the failed task.
    type: dict
    required: true
  task:
    description: Name of the failed task.
    type: str
    required: true
  parameters:
    description: Module parameter name to role variable name.
    type: dict
    default: {}
  placement:
    description:
      - "Role variable holding the placement options (C(module_defaults) of the role's module tasks); a message
        about one of them, C(state_dir: ...), is reported as C(<placement>.state_dir: ...)."
    type: str
"""

EXAMPLES = r"""
- name: Report what failed
  ansible.builtin.fail:
    msg: "{{ provision_result | baseful.branching.failure_message(ansible_failed_task.name, {'name': 'baseful_databases[].name'}) }}"
"""

RETURN = r"""
_value:
  description:
    - "One line, for example C(Remove the databases failed: \"../etc\": baseful_teardown_databases: '../etc' is not a valid name ...)."
  type: str
"""

PARAMETER_PREFIX = re.compile(r"^([a-z_]+): ")
ARGUMENT_FORM = re.compile(r"^argument '([a-z_]+)'")  # AnsibleModule's own refusal of a value's type
PLACEMENT_OPTIONS = tuple(shared_argument_spec())


def _label(item) -> str:
    if isinstance(item, dict) and "name" in item:
        item = f"{item['database']}/{item['name']}" if "database" in item else item["name"]
    return json.dumps(str(item), ensure_ascii=False)


def _renamed(message: str, parameters: dict) -> str:
    found = PARAMETER_PREFIX.match(message)
    if found and found.group(1) in parameters:
        return f"{parameters[found.group(1)]}: {message[found.end():]}"
    found = ARGUMENT_FORM.match(message)
    if found and found.group(1) in parameters:
        return f"argument '{parameters[found.group(1)]}'{message[found.end():]}"
    return message


def failure_message(result: dict, task: str, parameters: dict = None, placement: str = None) -> str:
    parameters = dict(parameters or {})
    if placement:
        parameters.update({option: f"{placement}.{option}" for option in PLACEMENT_OPTIONS if option not in parameters})
    each = result.get("results") if isinstance(result.get("results"), list) else [result]
    failures = []
    for one in each:
        if not isinstance(one, dict) or not one.get("failed"):
            continue
        message = _renamed(" ".join(str(one.get("msg", "failed")).split()), parameters)  # one line, whatever it says
        failures.append(f"{_label(one['item'])}: {message}" if "item" in one else message)
    return f"{task} failed: {'; '.join(failures) or 'see above'}"


class FilterModule:
    def filters(self):
        return {"failure_message": failure_message}
