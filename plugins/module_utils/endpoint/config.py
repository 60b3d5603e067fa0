# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A database's endpoint as PgBouncer reads it: its routes and the two files it is given. Pure: nothing here
touches Docker or the file system, so unit tests cover every route and setting.

Routes: the database's own name goes to the default branch; `<database>.<branch>` goes to that branch (a branch
name never holds a dot, so the two never meet). A stopped branch's route answers at once with an error that
says so (FATAL: no such database: branch <name> is stopped, start it). Each route names the address of the
branch's container on the Docker network (service/endpoints.py says why not its name), and the branch server's
database of the same name as ours.

Authentication is SCRAM throughout, with no password in either file: the auth file holds the database's SCRAM
verifier, which PgBouncer checks clients against, and since every branch's server stores that same verifier
(Verifiers, service/endpoints.py), PgBouncer logs in to the servers with the keys the client's own SCRAM
exchange proved (PgBouncer's SCRAM pass-through)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

# The default endpoint_image: CloudNativePG's PgBouncer image (Debian, rebuilt with each PgBouncer release).
DEFAULT_ENDPOINT_IMAGE = "ghcr.io/cloudnative-pg/pgbouncer:1.25.2"
OLDEST_PGBOUNCER = (1, 21)  # max_prepared_statements: prepared statements through transaction pooling
LISTEN_PORT = 6432
CONFIG_IN_CONTAINER = "/etc/baseful-endpoint"
CONFIG_FILE, AUTH_FILE = "pgbouncer.ini", "userlist.txt"
ROUTE_SEPARATOR = "."
VERSION_PATTERN = re.compile(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Route:
    """A database name clients dial, and the branch server it reaches (None: the branch has no server now)."""

    name: str
    branch: str
    host: Optional[str]


def route_name(database: str, branch: Optional[str] = None) -> str:
    """The database name a client gives the endpoint: the database's own for its default branch, else
    `<database>.<branch>`."""
    return database if branch is None else f"{database}{ROUTE_SEPARATOR}{branch}"


def routes(database: str, branches: Iterable[Tuple[str, Optional[str], bool, bool]]) -> List[Route]:
    """branches: (name, server address, is_default, serving) for each settled branch. The default's route first,
    then one per branch by name. A branch that is not serving (stopped) keeps its route with no host: PgBouncer
    then refuses it at once, instead of making its clients wait on a server that is not there."""
    found = sorted(branches)
    result = [Route(route_name(database), name, container if serving else None)
              for name, container, is_default, serving in found if is_default]
    result += [Route(route_name(database, name), name, container if serving else None)
               for name, container, _is_default, serving in found]
    return result


def render_config(database: str, user: str, route_list: List[Route]) -> str:
    """pgbouncer.ini. Transaction pooling, as managed poolers run it: a switch waits only for open transactions,
    and prepared statements still work (max_prepared_statements). Nothing is written to disk inside the
    container: logs go to its standard error, there is no pid file and no Unix socket."""
    lines = ["; Written by baseful.branching; every apply rewrites it from the records.", "[databases]"]
    for route in route_list:
        if route.host is None:
            # The pooler itself, asked for a database it does not have: the login fails at once with a message
            # that says why, and PgBouncer hands it to the client (a server that cannot be reached would keep the
            # client waiting until client_login_timeout).
            lines.append(f"{route.name} = host=127.0.0.1 port={LISTEN_PORT} dbname='{stopped_message(database, route.branch)}'")
        else:
            lines.append(f"{route.name} = host={route.host} port=5432 dbname={database}")
    lines += [
        "",
        "[pgbouncer]",
        "listen_addr = *",
        f"listen_port = {LISTEN_PORT}",
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {CONFIG_IN_CONTAINER}/{AUTH_FILE}",
        f"admin_users = {user}",
        "pool_mode = transaction",
        "max_prepared_statements = 200",
        "default_pool_size = 20",
        "max_client_conn = 1000",
        # JDBC and some drivers send it at start-up; PgBouncer would otherwise refuse the connection.
        "ignore_startup_parameters = extra_float_digits",
        # A branch's container gets a new address when it is made again (reset, repair): look it up again soon.
        "dns_max_ttl = 1",
        "server_connect_timeout = 5",
        "server_login_retry = 1",
        "log_connections = 0",
        "log_disconnections = 0",
        "stats_period = 600",
        "",
    ]
    return "\n".join(lines)


def stopped_message(database: str, branch: str) -> str:
    """At most 63 characters: PgBouncer cuts a database name there."""
    return f"branch {branch} is stopped, start it"


def render_auth_file(user: str, verifier: str) -> str:
    return f'"{user}" "{verifier}"\n'


def parse_version(output: str) -> Optional[Tuple[int, int]]:
    match = VERSION_PATTERN.search(output)
    return (int(match.group(1)), int(match.group(2))) if match else None
