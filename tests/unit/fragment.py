"""The doc fragment baseful.branching.placement, generated from module_utils/options.py (ansible-test needs
a doc fragment's DOCUMENTATION to be a literal). `python3 tests/unit/fragment.py` rewrites the file;
test_documentation.py fails while the file is not what this makes."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FRAGMENT = REPO / "plugins" / "doc_fragments" / "placement.py"
HEADER = '''# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/options.py by tests/unit/fragment.py: edit that, then run this.

from __future__ import annotations


class ModuleDocFragment:
    # Placement of databases and branches on the Docker host, and the Docker connection
    # (named and behaving as in community.docker's modules).
    DOCUMENTATION = r"""
'''
FOOTER = '''requirements:
  - docker (Docker SDK for Python) >= 7.0
  - "The modules run on the Docker host, as root or with C(become: true), because they manage data directories owned by uid 999."
notes:
  - All modules of the collection are in the action group C(baseful.branching.branching), so
    C(module_defaults) can set these options once for a play.
"""
'''


class IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as the collection's other documentation writes them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def fragment_text() -> str:
    sys.path.insert(0, str(REPO / "build" / "pytest-collections"))
    from ansible_collections.baseful.branching.plugins.module_utils.options import PLACEMENT_OPTIONS, documented
    return HEADER + yaml.dump({"options": documented(PLACEMENT_OPTIONS)}, Dumper=IndentedDumper, sort_keys=False,
                              width=110) + FOOTER


if __name__ == "__main__":
    FRAGMENT.write_text(fragment_text())
    print(f"wrote {FRAGMENT}")
