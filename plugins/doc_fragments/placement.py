# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import yaml

from ansible_collections.baseful.branching.plugins.module_utils.options import PLACEMENT_OPTIONS, documented


class ModuleDocFragment:
    # Placement of databases and branches on the Docker host, and the Docker connection
    # (named and behaving as in community.docker's modules).
    # The options are PLACEMENT_OPTIONS, the same declaration the argument spec is made from.
    DOCUMENTATION = yaml.safe_dump({"options": documented(PLACEMENT_OPTIONS)}, sort_keys=False, width=1000) + r"""
requirements:
  - docker (Docker SDK for Python) >= 7.0
  - "The modules run on the Docker host, as root or with C(become: true), because they manage data directories owned by uid 999."
notes:
  - All modules of the collection are in the action group C(baseful.branching.branching), so
    C(module_defaults) can set these options once for a play.
"""
