# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masking a new copy (masking.py's rules): checked against a server's catalog, then applied on the branch's sealed
server (Filler.fill), which no client can reach until the data directory holds no original byte of what it masks."""

from __future__ import annotations

import os
import secrets
from typing import Dict, Tuple

from ansible_collections.baseful.branching.plugins.module_utils import masking
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.model import BranchRecord, DatabaseRecord
from ansible_collections.baseful.branching.plugins.module_utils.runtime.sql_files import psql_error
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret

KEY_BYTES = 32


class Masking:
    def __init__(self, site):
        self.site = site

    def key_file(self, database: str) -> str:
        return os.path.join(self.site.store.secret_dir, f"{database}.mask-key")

    def key(self, database: str) -> bytes:
        """The database's HMAC key for `hash`, `fake_email` and `fake_name`: made on first use (0600, in state_dir,
        never in a branch) and the same for every branch after, so equal values stay equal across them. Two runs
        that make it at once keep the first one's (a link is made only where no file is)."""
        path = self.key_file(database)
        if read_secret(path) is None:
            draft = f"{path}.{secrets.token_hex(6)}"
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(KEY_BYTES))
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                os.remove(draft)
        return bytes.fromhex(read_secret(path).strip())

    def check(self, database: DatabaseRecord, container: str, rules: Dict[str, str], where: str) -> Tuple[dict, dict]:
        """Refuses, naming mask, what does not fit the server in `container` (`where` says which, for the message):
        a missing table or column, a rule of another type, an sql rule the server cannot plan. Reads only."""
        runtime = self.site.runtime
        columns = [masking.column_of(key) for key in rules]
        catalog = runtime.query_json(container, database.user, database.name, masking.catalog_query(columns))
        found = masking.check(rules, catalog, where)
        for key, rule in rules.items():
            if rule.startswith("sql:"):
                planned, said = runtime.explain(container, database.user, database.name, masking.trial_update(key, rule))
                if not planned:
                    raise InputError("mask", f"rule {rule!r} for {key!r} does not fit {where}: {psql_error(said)}")
        return catalog, found

    def apply(self, database: DatabaseRecord, record: BranchRecord, rules: Dict[str, str], then: str) -> None:
        """Masks the branch's data on its sealed server. What psql says on failure is shown without the key's pads."""
        container = record.container_id or record.container_name
        where = f"the copy made for branch {record.name!r}"
        catalog, columns = self.check(database, container, rules, where)
        key = self.key(database.name)
        injection_point("mask:checked")
        masked, said = self.site.runtime.run_script(container, database.user, database.name,
                                                    masking.script(rules, catalog, columns, key))
        if not masked:
            for pad in masking.hmac_pads(key):
                said = said.replace(pad[3:-8], "********")
            raise BranchingError(f"mask: masking {where} failed ({psql_error(said)}); {then}")
        injection_point("mask:applied")
