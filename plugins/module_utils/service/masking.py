# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masking a new copy (masking.py's rules): checked against a server's catalog, then applied on the branch's sealed
server (Filler.fill), which no client can reach until the data directory holds no original byte of what it masks."""

from __future__ import annotations

import os
import re
import secrets
from typing import Dict, Optional, Tuple

from ansible_collections.baseful.branching.plugins.module_utils import masking
from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.faults import injection_point
from ansible_collections.baseful.branching.plugins.module_utils.model import BranchRecord, DatabaseRecord
from ansible_collections.baseful.branching.plugins.module_utils.runtime.sql_files import psql_error
from ansible_collections.baseful.branching.plugins.module_utils.secret import read_secret, write_secret

KEY_BYTES = 32


class Masking:
    def __init__(self, site):
        self.site = site

    def key_file(self, database: str) -> str:
        return os.path.join(self.site.store.secret_dir, f"{database}.mask-key")

    def key(self, database: str) -> str:
        """The database's HMAC key file for `hash`, `fake_email` and `fake_name`: made on first use (0600, readable by
        the image's postgres user, in state_dir, never in a branch) and the same for every branch after, so equal
        values stay equal across them. Two runs that make it at once keep the first one's (a link is made only where
        no file is). A file that is not a key is refused, never replaced: branches were masked with it."""
        path = self.key_file(database)
        if read_secret(path) is None:
            draft = f"{path}.{secrets.token_hex(6)}"
            write_secret(draft, secrets.token_hex(KEY_BYTES))
            with open(draft, "rb") as handle:
                os.fsync(handle.fileno())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                os.remove(draft)
        if not re.fullmatch(f"[0-9a-f]{{{2 * KEY_BYTES}}}", (read_secret(path) or "").strip()):
            raise BranchingError(f"state_dir: {path} is not a masking key ({2 * KEY_BYTES} hexadecimal digits); nothing "
                                 "was changed. Restore it from a backup, or move it aside to have a new one made (hashes "
                                 "of new masked branches then differ from those of existing ones)")
        return path

    def check(self, database: DatabaseRecord, container: str, rules: Dict[str, str], where: str,
              had: Optional[Dict[str, str]] = None) -> Tuple[dict, dict]:
        """Refuses, naming mask, what does not fit the server in `container` (`where` says which, for the message):
        a missing table or column, a rule of another type, an sql rule the server cannot plan. Reads only."""
        runtime = self.site.runtime
        columns = [masking.column_of(key) for key in rules]
        catalog = runtime.query_json(container, database.user, database.name, masking.catalog_query(columns))
        found = masking.check(rules, catalog, where, had)
        for key, rule in rules.items():
            if rule.startswith("sql:"):
                planned, said = runtime.explain(container, database.user, database.name, masking.trial_update(key, rule),
                                                catalog_only=True)
                if not planned:
                    raise InputError("mask", f"rule {rule!r} for {key!r} does not fit {where}: {psql_error(said)}")
        return catalog, found

    def apply(self, database: DatabaseRecord, record: BranchRecord, rules: Dict[str, str], had: Dict[str, str],
              then: str) -> None:
        """Masks the branch's data on its sealed server, which reads the key from its mounted file. A failure is
        reported by its SQLSTATE alone: PostgreSQL's message could quote an original value."""
        container = record.container_id or record.container_name
        where = f"the copy made for branch {record.name!r}"
        catalog, columns = self.check(database, container, rules, where, had)
        injection_point("mask:checked")
        masked, said = self.site.runtime.run_script(container, database.user, database.name,
                                                    masking.script(rules, catalog, columns))
        if not masked:
            raise BranchingError(f"mask: masking {where} failed ({psql_error(said)}, a PostgreSQL error code); {then}")
        injection_point("mask:applied")
