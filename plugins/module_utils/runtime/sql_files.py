# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL run in a branch's own container: the part of DockerRuntime (runtime/docker.py) that applies migrations,
reads the catalogs and dumps the schema with the client tools of the branch's image, over its local socket, so the
host needs no PostgreSQL client or driver and the client always matches the server."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
from typing import Tuple

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError
from ansible_collections.baseful.branching.plugins.module_utils.runtime import SECRET_IN_CONTAINER

PASSWORD = f'PGPASSWORD="$(cat {SECRET_IN_CONTAINER} 2>/dev/null)"; export PGPASSWORD\n'

# One transaction per file (a failed statement rolls back the whole file), stopped at the first error, whose
# statement psql echoes (--echo-errors). The password, for a socket an operator made ask for one, comes from the
# mounted file through the environment.
RUN_FILE = PASSWORD + '''exec psql -X -q --echo-errors -v ON_ERROR_STOP=1 --single-transaction -U "$BASEFUL_USER" -d "$BASEFUL_DB" \\
  -f "$BASEFUL_DIR/$BASEFUL_FILE" >/dev/null
'''
# One read-only query whose one row is a JSON document.
QUERY = PASSWORD + '''printf '%s\\n' "$BASEFUL_SQL" | exec psql -X -q -At -v ON_ERROR_STOP=1 -U "$BASEFUL_USER" \\
  -d "$BASEFUL_DB" -c 'SET default_transaction_read_only = on' -f -
'''
DUMP_SCHEMA = PASSWORD + '''exec pg_dump --schema-only -U "$BASEFUL_USER" -d "$BASEFUL_DB"
'''


class SqlFiles:
    """Mixed into DockerRuntime: uses its client."""

    def run_sql_file(self, name_or_id: str, user: str, dbname: str, name: str, sql: bytes) -> Tuple[bool, str]:
        """Runs one SQL file on the branch's server in one transaction; whether it committed, and what psql said
        (with the file named as given, not by its place in the container)."""
        container = self.client.containers.get(name_or_id)
        directory = f"baseful-migration-{secrets.token_hex(6)}"
        container.put_archive("/tmp", _archive(directory, name, sql))
        try:
            result = container.exec_run(["sh", "-c", RUN_FILE], user="postgres", demux=True, environment={
                "BASEFUL_USER": user, "BASEFUL_DB": dbname, "BASEFUL_DIR": f"/tmp/{directory}", "BASEFUL_FILE": name})
        finally:
            # root's: the archive's files are root's, in a directory with the sticky bit
            container.exec_run(["rm", "-rf", "--", f"/tmp/{directory}"], user="root")
        stdout, stderr = ((part or b"").decode(errors="replace") for part in result.output)
        said = (stderr + stdout).replace(f"/tmp/{directory}/", "")
        return result.exit_code == 0, said

    def query_json(self, name_or_id: str, user: str, dbname: str, sql: str):
        """The JSON document the one row of a read-only query `sql` holds."""
        return json.loads(self._client_tool(name_or_id, QUERY, user, dbname, {"BASEFUL_SQL": sql}, "a catalog query"))

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


def _archive(directory: str, name: str, sql: bytes) -> bytes:
    """A tar stream of `directory`/`name`, readable by the server's user."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(directory)
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        archive.addfile(folder)
        member = tarfile.TarInfo(f"{directory}/{name}")
        member.size, member.mode, member.mtime = len(sql), 0o644, int(time.time())
        archive.addfile(member, io.BytesIO(sql))
    return buffer.getvalue()
