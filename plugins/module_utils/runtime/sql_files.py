# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL run in a branch's own container: the part of DockerRuntime (runtime/docker.py) that applies migrations,
reads the catalogs and dumps the schema with the client tools of the branch's image, over its local socket, so the
host needs no PostgreSQL client or driver and the client always matches the server."""

from __future__ import annotations

import io
import json
import re
import secrets
import tarfile
import time
from typing import Optional, Sequence, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError
from ansible_collections.baseful.branching.plugins.module_utils.runtime import SECRET_IN_CONTAINER

PASSWORD = f'PGPASSWORD="$(cat {SECRET_IN_CONTAINER} 2>/dev/null)"; export PGPASSWORD\n'

# The files given, in order, in one transaction (a failed statement rolls back every one of them), stopped at the
# first error, whose statement psql echoes (--echo-errors). The password, for a socket an operator made ask for one,
# comes from the mounted file through the environment; the files' paths come as arguments, never through a shell.
RUN_FILES = PASSWORD + '''exec psql -X -q --echo-errors -v ON_ERROR_STOP=1 --single-transaction -U "$BASEFUL_USER" \\
  -d "$BASEFUL_DB" "$@" >/dev/null
'''
# One read-only query whose one row is a JSON document.
QUERY = PASSWORD + '''printf '%s\\n' "$BASEFUL_SQL" | exec psql -X -q -At -v ON_ERROR_STOP=1 -U "$BASEFUL_USER" \\
  -d "$BASEFUL_DB" -c 'SET default_transaction_read_only = on' -f -
'''
# A script, statement by statement (VACUUM runs in none), stopped at the first error.
RUN_SCRIPT = PASSWORD + '''printf '%s\\n' "$BASEFUL_SQL" | exec psql -X -q -v ON_ERROR_STOP=1 -U "$BASEFUL_USER" \\
  -d "$BASEFUL_DB" -f - >/dev/null
'''
# One statement planned, not run, in a read-only session that waits at most 5 s for a lock or for planning (a source
# keeps serving, and planning folds constant expressions): -c sends it as it is, without psql's own commands; an
# expression holds no ';' (masking.parse_rule, subset.parse_filter).
EXPLAIN = PASSWORD + '''exec psql -X -q -v ON_ERROR_STOP=1 -U "$BASEFUL_USER" -d "$BASEFUL_DB" \\
  -c 'SET default_transaction_read_only = on' -c 'SET lock_timeout = 5000' -c 'SET statement_timeout = 5000' \\
  -c "SET search_path = ${BASEFUL_SEARCH_PATH:-DEFAULT}" -c "EXPLAIN (COSTS OFF) $BASEFUL_SQL" >/dev/null
'''
DUMP_SCHEMA = PASSWORD + '''exec pg_dump --schema-only --exclude-schema=baseful -U "$BASEFUL_USER" -d "$BASEFUL_DB"
'''


class SqlFiles:
    """Mixed into DockerRuntime: uses its client."""

    def run_sql_files(self, name_or_id: str, user: str, dbname: str, files: Sequence[Tuple[str, bytes]]) -> Tuple[bool, str]:
        """Runs SQL files (name, bytes) in order on the branch's server, all in one transaction; whether it committed,
        and what psql said (with each file named as given, not by its place in the container)."""
        container = self.client.containers.get(name_or_id)
        directory = f"/tmp/baseful-migration-{secrets.token_hex(6)}"
        container.put_archive("/tmp", _archive(directory[len("/tmp/"):], files))
        arguments = [part for position, (name, _sql) in enumerate(files)
                     for part in ("-f", f"{directory}/{position}/{name}")]
        try:
            result = container.exec_run(["sh", "-c", RUN_FILES, "sh", *arguments], user="postgres", demux=True,
                                        environment={"BASEFUL_USER": user, "BASEFUL_DB": dbname})
        finally:
            # root's: the archive's files are root's, in a directory with the sticky bit
            container.exec_run(["rm", "-rf", "--", directory], user="root")
        stdout, stderr = ((part or b"").decode(errors="replace") for part in result.output)
        said = re.sub(re.escape(directory) + r"/\d+/", "", stderr + stdout)
        return result.exit_code == 0, said

    def query_json(self, name_or_id: str, user: str, dbname: str, sql: str):
        """The JSON document the one row of a read-only query `sql` holds."""
        return json.loads(self._client_tool(name_or_id, QUERY, user, dbname, {"BASEFUL_SQL": sql}, "a catalog query"))

    def run_script(self, name_or_id: str, user: str, dbname: str, sql: str) -> Tuple[bool, str]:
        return self._said(name_or_id, RUN_SCRIPT, user, dbname, sql)

    def explain(self, name_or_id: str, user: str, dbname: str, statement: str,
                catalog_only: bool = False) -> Tuple[bool, str]:
        return self._said(name_or_id, EXPLAIN, user, dbname, statement,
                          {"BASEFUL_SEARCH_PATH": "pg_catalog, pg_temp"} if catalog_only else {})

    def _said(self, name_or_id: str, script: str, user: str, dbname: str, sql: str,
              environment: Optional[dict] = None) -> Tuple[bool, str]:
        result = self.client.containers.get(name_or_id).exec_run(
            ["sh", "-c", script], user="postgres", demux=True,
            environment=dict(environment or {}, BASEFUL_USER=user, BASEFUL_DB=dbname, BASEFUL_SQL=sql))
        stdout, stderr = ((part or b"").decode(errors="replace") for part in result.output)
        return result.exit_code == 0, (stderr + stdout).strip()

    def dump_schema(self, name_or_id: str, user: str, dbname: str) -> str:
        """pg_dump --schema-only of the branch's database."""
        return self._client_tool(name_or_id, DUMP_SCHEMA, user, dbname, {}, "pg_dump --schema-only")

    def _client_tool(self, name_or_id: str, script: str, user: str, dbname: str, environment: dict, what: str) -> str:
        result = self.client.containers.get(name_or_id).exec_run(
            ["sh", "-c", script], user="postgres", demux=True,
            environment=dict(environment, BASEFUL_USER=user, BASEFUL_DB=dbname))
        stdout, stderr = ((part or b"").decode(errors="replace") for part in result.output)
        if result.exit_code != 0:
            raise BranchingError(f"{what} in container {name_or_id} failed: {stderr.strip()[-300:]}")
        return stdout


def psql_error(said: str) -> str:
    """The first ERROR line of what psql said, without its 'psql:<file>:<line>:' prefix (the lines after it, DETAIL
    and HINT, are sentences of their own); else its last line."""
    lines = [line for line in said.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            return " ".join(line[line.index("ERROR:"):].split())[:300]
    return " ".join(lines[-1].split())[:300] if lines else "psql said nothing"


def _archive(directory: str, files: Sequence[Tuple[str, bytes]]) -> bytes:
    """A tar stream of `directory`/<position>/<name> for each file, readable by the server's user."""
    buffer = io.BytesIO()
    moment = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folders = [directory] + [f"{directory}/{position}" for position in range(len(files))]
        for folder in folders:
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, 0o755, moment
            archive.addfile(entry)
        for position, (name, sql) in enumerate(files):
            member = tarfile.TarInfo(f"{directory}/{position}/{name}")
            member.size, member.mode, member.mtime = len(sql), 0o644, moment
            archive.addfile(member, io.BytesIO(sql))
    return buffer.getvalue()
