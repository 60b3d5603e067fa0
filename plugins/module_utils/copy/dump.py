# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logical copy: pg_dump streamed into pg_restore, run with the target image's client tools.

The pipeline runs in a short-lived worker container on the host network: no PostgreSQL client on
the host, no temporary file, versions that match the target. Every stage of every pipe writes its
exit status; a missing or non-zero status fails the copy, and stderr never enters the SQL stream.
"""

from __future__ import annotations

import json
import time
from typing import Dict, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.baseful.branching.plugins.module_utils.copy import CopyJob, CopyResult, Situation
from ansible_collections.baseful.branching.plugins.module_utils.errors import CopyFailed
from ansible_collections.baseful.branching.plugins.module_utils.runtime import SECRET_IN_CONTAINER

# Roles are cluster-wide, so an 'all' or 'schema' copy of a managed branch brings them along
# (with their password hashes); the superuser exists already in the target, so its CREATE ROLE
# is the one line left out (pg_dumpall emits it unquoted or quoted depending on the name).
GLOBALS = """
{ PGPASSWORD="$SRC_PASSWORD" pg_dumpall --dbname="$SRC" --globals-only --no-tablespaces; \
  echo "globals_dump=$?" >>"$rc"; } \
 | { grep -v -x -F -e "CREATE ROLE $SUPERUSER;" -e "CREATE ROLE \\"$SUPERUSER\\";"; s=$?; \
     [ "$s" -le 1 ] && s=0; echo "globals_filter=$s" >>"$rc"; } \
 | { PGPASSWORD="$DST_PASSWORD" psql --dbname="$DST_ADMIN" -X -q -v ON_ERROR_STOP=1 >/dev/null; \
     echo "globals_restore=$?" >>"$rc"; }
"""
DATA = """
{ PGPASSWORD="$SRC_PASSWORD" pg_dump --dbname="$SRC" --format=custom $DUMP_ARGS; echo "dump=$?" >>"$rc"; } \
 | { PGPASSWORD="$DST_PASSWORD" pg_restore --dbname="$RESTORE_DB" --exit-on-error $RESTORE_ARGS; \
     echo "restore=$?" >>"$rc"; }
"""
# A filtered copy (subset.py) reads the source in several sessions, all on one snapshot that a session held open
# for the whole copy exports (pg_dump --snapshot, SET TRANSACTION SNAPSHOT): a consistent copy of a source that keeps
# serving. Sections: pre-data (makes the database and its tables), the data of every table not filtered (copy: all),
# each filtered table's rows, the orphans' removal (its counts on stdout), then post-data (indexes, constraints).
# The tables the copy reads, held (ACCESS SHARE, as pg_dump holds them) while the snapshot is: a TRUNCATE or a rewrite
# on the source waits for the copy instead of leaving it an empty table.
LOCK_TABLES = """DO $baseful$ DECLARE t regclass; BEGIN
FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')
  AND c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog', 'information_schema') LOOP
  EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', t);
END LOOP; END $baseful$;"""
SNAPSHOT_OPEN = """
export PGOPTIONS='-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=0'
export PGCONNECT_TIMEOUT=30
fifo="$(mktemp -u)"; mkfifo "$fifo"; exec 3<>"$fifo"; rm -f "$fifo"
snap="$(mktemp)"
{ PGPASSWORD="$SRC_PASSWORD" psql -X -q -At -v ON_ERROR_STOP=1 --dbname="$SRC" <&3 >"$snap"; \\
  echo "snapshot=$?" >>"$rc"; } &
holder=$!
printf '%s\\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' "$LOCK_TABLES" 'SELECT pg_export_snapshot();' >&3
for _ in $(seq 6000); do [ -s "$snap" ] && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.05; done
SNAPSHOT="$(head -n 1 "$snap")"
"""
SECTIONS = """
{ PGPASSWORD="$SRC_PASSWORD" pg_dump --dbname="$SRC" --snapshot="$SNAPSHOT" --format=custom --section=pre-data \
    $PRE_DATA_ARGS; echo "pre_dump=$?" >>"$rc"; } \
 | { PGPASSWORD="$DST_PASSWORD" pg_restore --dbname="$RESTORE_DB" --exit-on-error $RESTORE_ARGS; \
     echo "pre_restore=$?" >>"$rc"; }
if [ "$COPY_MODE" = all ]; then
  set --
  i=1; while [ "$i" -le "$EXCLUDED" ]; do eval "pattern=\\$EXCLUDED_$i"; set -- "$@" "--exclude-table-data=$pattern"; \
    i=$((i + 1)); done
  { PGPASSWORD="$SRC_PASSWORD" pg_dump --dbname="$SRC" --snapshot="$SNAPSHOT" --format=custom --section=data "$@"; \
    echo "data_dump=$?" >>"$rc"; } \
   | { PGPASSWORD="$DST_PASSWORD" pg_restore --dbname="$DST_DB" --exit-on-error; echo "data_restore=$?" >>"$rc"; }
fi
i=1
while [ "$i" -le "$COPIES" ]; do
  eval "out=\\$COPY_OUT_$i; in=\\$COPY_IN_$i"
  { PGPASSWORD="$SRC_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 --dbname="$SRC" \
      -c 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' -c "SET TRANSACTION SNAPSHOT '$SNAPSHOT'" -c "$out" \
      -c 'COMMIT'; echo "rows_out_$i=$?" >>"$rc"; } \
   | { PGPASSWORD="$DST_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 --dbname="$DST_DB" -c "$in"; \
       echo "rows_in_$i=$?" >>"$rc"; }
  i=$((i + 1))
done
i=1; while [ "$i" -le "$ORPHANS_PARTS" ]; do eval "printf '%s' \\"\\$ORPHANS_$i\\""; i=$((i + 1)); done \\
 | PGPASSWORD="$DST_PASSWORD" psql -X -q -At -v ON_ERROR_STOP=1 --dbname="$DST_DB" -f -
echo "orphans=$?" >>"$rc"
{ PGPASSWORD="$SRC_PASSWORD" pg_dump --dbname="$SRC" --snapshot="$SNAPSHOT" --format=custom --section=post-data; \
  echo "post_dump=$?" >>"$rc"; } \
 | { PGPASSWORD="$DST_PASSWORD" pg_restore --dbname="$DST_DB" --exit-on-error; echo "post_restore=$?" >>"$rc"; }
printf 'COMMIT;\n\\q\n' >&3
wait "$holder"; exec 3>&-; rm -f "$snap"
"""
ENVIRONMENT_PART = 100_000
# Each password reaches only the processes that talk to its server, through their environment:
# never a command line (visible in ps), and the managed password is never offered to an external
# server. An external URL's password is cut out of the URL and comes in as SRC_PASSWORD.
PROLOGUE = f"""
rc=$(mktemp)
DST_PASSWORD="$(cat {SECRET_IN_CONTAINER})"
if [ -z "${{SRC_IS_EXTERNAL:-}}" ]; then SRC_PASSWORD="$DST_PASSWORD"; fi
"""
EPILOGUE = """
cat "$rc"; rm -f "$rc"
"""


def dump_script(job: CopyJob) -> (str, Dict[str, str], list):
    """The worker's script, its environment and the stages whose status it must report."""
    target = job.target.conninfo
    source, source_password = split_password(job.source.url) if job.source.url else (job.source.conninfo, None)
    env = {
        "SRC": source,
        "SUPERUSER": job.user,
        "DST_ADMIN": f"{target} dbname=postgres",
        "DUMP_ARGS": "--schema-only" if job.mode == "schema" else "",
    }
    parts, stages = [PROLOGUE], []
    if job.mode == "empty":
        return "", env, stages
    if job.source.managed:
        # Same database name on both sides: recreate it from the dump, which keeps its encoding,
        # locale, owner, settings and privileges.
        parts.append(GLOBALS)
        stages += ["globals_dump", "globals_filter", "globals_restore"]
        env.update(RESTORE_DB=env["DST_ADMIN"], RESTORE_ARGS="--create --clean --if-exists")
    else:
        # An external server's roles are not ours to copy: objects land owned by our user.
        env.update(RESTORE_DB=f"{target} dbname={job.dbname}", RESTORE_ARGS="--no-owner --no-privileges",
                   SRC_IS_EXTERNAL="1", SRC_PASSWORD=source_password or "")
    if job.subset is None:
        parts.append(DATA)
        stages += ["dump", "restore"]
    else:
        parts += [SNAPSHOT_OPEN, SECTIONS]
        env.update(_subset_environment(job), DST_DB=f"{target} dbname={job.dbname}", COPY_MODE=job.mode)
        stages += ["snapshot", "pre_dump", "pre_restore"] + (["data_dump", "data_restore"] if job.mode == "all" else [])
        stages += [f"rows_{way}_{i}" for i in range(1, len(job.subset.copies) + 1) for way in ("out", "in")]
        stages += ["orphans", "post_dump", "post_restore"]
    parts.append(EPILOGUE)
    return "".join(parts), env, stages


def _subset_environment(job: CopyJob) -> Dict[str, str]:
    """The filtered copy's statements and patterns, one variable each (never through the script's text)."""
    subset = job.subset
    # One variable holds at most 128 KiB (Linux's MAX_ARG_STRLEN): the orphans' SQL comes in parts.
    parts = [subset.orphans[start:start + ENVIRONMENT_PART] for start in range(0, len(subset.orphans), ENVIRONMENT_PART)]
    env = {"EXCLUDED": str(len(subset.excluded)), "COPIES": str(len(subset.copies)), "ORPHANS_PARTS": str(len(parts)),
           "LOCK_TABLES": LOCK_TABLES, "PRE_DATA_ARGS": "--no-blobs" if job.mode == "schema" else ""}
    env.update({f"ORPHANS_{i}": part for i, part in enumerate(parts, 1)})
    env.update({f"EXCLUDED_{i}": pattern for i, pattern in enumerate(subset.excluded, 1)})
    for i, (out, into) in enumerate(subset.copies, 1):
        env.update({f"COPY_OUT_{i}": out, f"COPY_IN_{i}": into})
    return env


def left_out(output: str) -> Optional[Dict[str, int]]:
    """How many rows each foreign key left out of a filtered copy, from the worker's output."""
    for line in output.splitlines():
        if line.startswith("left_out="):
            return json.loads(line[len("left_out="):])
    return None


def split_password(url: str) -> Tuple[str, Optional[str]]:
    """The URL without its password, and the password (percent-decoded), for libpq's environment."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    user = f"{parts.username}@" if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment)), unquote(parts.password)


def check_stages(output: str, stages: list) -> Dict[str, int]:
    reported = {}
    for line in output.splitlines():
        name, _sep, status = line.partition("=")
        if name in stages and status.strip().lstrip("-").isdigit():
            reported[name] = int(status)
    failed = [f"{s} exited {reported[s]}" if s in reported else f"{s} reported no status" for s in stages
              if reported.get(s) != 0]
    if failed:
        raise CopyFailed("; ".join(failed))
    return reported


class DumpCopy:
    copies_per_source = None  # no limit of its own
    name = "dump"
    fills_data_dir = False  # restores into a running, freshly initialised server
    needs_running_source = True

    @staticmethod
    def serves(situation: Situation) -> bool:
        return True  # any mode, any major, any source

    def run(self, job: CopyJob, runtime, storage) -> CopyResult:
        started = time.monotonic()
        script, env, stages = dump_script(job)
        if stages:
            code, stdout, stderr = runtime.run_worker(job.image, job.database, job.branch, script, env,
                                                      job.password_file,
                                                      target_dir=job.target.data_dir if job.target_mounted else None)
            try:
                check_stages(stdout, stages)
            except CopyFailed as error:
                detail = stderr.strip().splitlines()[-3:]
                raise CopyFailed(f"copy of branch {job.branch!r} failed: {error}: {' | '.join(detail)}") from error
            if code != 0:
                raise CopyFailed(f"copy of branch {job.branch!r} failed: worker exited {code}: {stderr.strip()[-300:]}")
            if job.subset is not None:
                return CopyResult(self.name, time.monotonic() - started, storage.size(job.target.data_dir),
                                  {"left_out": left_out(stdout) or {}})
        return CopyResult(self.name, time.monotonic() - started, storage.size(job.target.data_dir))


METHOD = DumpCopy()
