# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filtered copies (subset.py): `filter` checked against the source's catalog before anything is made, and what the
dump copy then runs for it."""

from __future__ import annotations

from typing import Dict

from ansible_collections.baseful.branching.plugins.module_utils import subset
from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import DatabaseRecord
from ansible_collections.baseful.branching.plugins.module_utils.runtime.sql_files import psql_error


class Subsets:
    def __init__(self, site):
        self.site = site

    def prepare(self, database: DatabaseRecord, container: str, conditions: Dict[str, str], copy_mode: str,
                where: str) -> subset.Subset:
        """Refuses, naming filter, a table that is not there or a condition the source cannot plan (reading no row);
        returns what the copy runs."""
        runtime = self.site.runtime
        tables = [subset.table_of(key) for key in conditions]
        catalog = runtime.query_json(container, database.user, database.name, subset.catalog_query(tables))
        subset.check(conditions, catalog, where)
        for key, condition in conditions.items():
            planned, said = runtime.explain(container, database.user, database.name, subset.trial_select(key, condition))
            if not planned:
                raise InputError("filter", f"the condition for {key!r} does not fit {where}: {psql_error(said)}")
        return subset.subset(conditions, catalog, copy_mode)
