# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure values of the domain: names, leases, ports, branch records and their public view."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional
from urllib.parse import quote, urlsplit

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.masking import decode as decode_rules
from ansible_collections.baseful.branching.plugins.module_utils.masking import rule_names

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
ROLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TTL_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.ASCII)
TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
TTL_MAX_SECONDS = 3650 * 86400
NETWORK_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}", re.ASCII)
API_VERSION_PATTERN = re.compile(r"auto|\d{1,2}\.\d{1,3}", re.ASCII)
OLDEST_API_VERSION = (1, 24)  # the oldest the Docker SDK for Python speaks
TIMEOUT_RANGE = range(1, 86401)
PASSWORD_MAX_LENGTH = 1000

PRODUCTION = "production"
COPY_MODES = ("all", "schema", "empty")
COPY_METHODS = ("auto", "snapshot", "physical", "dump")
BRANCH_STATES = ("present", "started", "stopped", "absent", "default")

# Record statuses: 'creating', 'resetting' and 'deleting' mark work in progress; a record left in one
# of them by a crash is finished by the next apply: a create or delete is cleaned up (and a create made
# anew if wanted), a reset is done again, keeping the branch's name, port, lease and parent. Live
# statuses come from Docker.
IMAGE_MAX_LENGTH = 640  # name (255 at most), tag (128) and digest (sha512: 135)
CREATING, RESETTING, DELETING = "creating", "resetting", "deleting"
READY = "ready"  # a database whose create finished
RUNNING, STOPPED, MISSING = "running", "stopped", "missing"


def validate_name(parameter: str, value: Optional[str]) -> str:
    # fullmatch: '$' alone also matches before a trailing newline, which would let 'abc\n' through
    if value is None or not NAME_PATTERN.fullmatch(value):
        raise InputError(
            parameter,
            f"{value!r} is not a valid name; use 1 to 31 characters: a lower-case letter first, "
            "then lower-case letters, digits, '_' or '-'",
        )
    return value


def validate_role(parameter: str, value: str) -> str:
    if not ROLE_PATTERN.fullmatch(value or ""):
        raise InputError(
            parameter,
            f"{value!r} is not a valid PostgreSQL user name here; use a lower-case letter or '_' "
            "first, then lower-case letters, digits or '_' (at most 63)",
        )
    return value


def validate_network(value) -> None:
    if not isinstance(value, str) or not NETWORK_PATTERN.fullmatch(value):
        raise InputError("network", f"{value!r} is not a Docker network name; use 1 to 255 characters: a letter or "
                         "digit first, then letters, digits, '_', '.' or '-'")


def validate_docker_options(docker_host, api_version, timeout) -> None:
    # Its forms are the Docker SDK's to judge (docker.utils.parse_host, when the client is made); here
    # only what no form allows.
    if not isinstance(docker_host, str) or not docker_host or any(c.isspace() or ord(c) < 32 for c in docker_host):
        raise InputError("docker_host", f"{docker_host!r} is not a Docker daemon address; use unix:///path/to/docker.sock, "
                         "tcp://host:port or ssh://user@host")
    if not isinstance(api_version, str) or not API_VERSION_PATTERN.fullmatch(api_version) or (
            api_version != "auto" and tuple(int(part) for part in api_version.split(".")) < OLDEST_API_VERSION):
        raise InputError("api_version", f"{api_version!r} is not a Docker API version the Docker SDK speaks; use auto "
                         "(the default) or a version from 1.24 on, such as 1.41")
    if timeout not in TIMEOUT_RANGE:
        raise InputError("timeout", f"{timeout!r} is not a number of seconds from 1 to 86400")


def validate_image(value, parameter: str = "image") -> None:
    # The reference grammar is Docker's to judge (it answers 'invalid reference format'); here only what
    # no reference allows, and what the Docker SDK would not even send (an empty one).
    if not isinstance(value, str) or not value or len(value) > IMAGE_MAX_LENGTH \
            or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        example = "postgres:17" if parameter == "image" else "ghcr.io/cloudnative-pg/pgbouncer:1.25.2"
        raise InputError(parameter, f"{value!r} is not an image reference; use a name such as {example} or "
                         f"registry.example.com/team/{example.rpartition('/')[2]} (at most {IMAGE_MAX_LENGTH} "
                         "characters, no spaces)")


def validate_password(value: Optional[str]) -> None:
    """Never echoes the value: it is a secret, even when it is a bad one."""
    if value is None:
        return
    if not value or len(value) > PASSWORD_MAX_LENGTH or any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise InputError("password", f"the value given is not usable; use 1 to {PASSWORD_MAX_LENGTH} characters without "
                         "control characters (a newline would be cut off by the image's entrypoint), or omit it to "
                         "have one generated")


def validate_source_url(value: Optional[str]) -> None:
    """Never echoes the value: it may hold a password."""
    if value is None:
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        valid = parts.scheme in ("postgresql", "postgres") and bool(parts.hostname or "host=" in parts.query)
    except ValueError:
        valid = False
    if not valid:
        raise InputError("source_url", "the value given is not a PostgreSQL URL with a host; use "
                         "postgresql://user:password@host:port/dbname")


NO_LEASE = 0  # ttl: none, a branch whose lease is removed


def parse_ttl(value) -> Optional[int]:
    """Seconds of a lease: an integer number of seconds or '30s', '15m', '2h', '1d'; 'none' (NO_LEASE)
    removes it; None leaves it as it is."""
    if value is None:
        return None
    if str(value).strip().lower() == "none":
        return NO_LEASE
    match = TTL_PATTERN.match(str(value))
    seconds = int(match.group(1)) * TTL_UNITS[match.group(2)] if match else 0
    if seconds > TTL_MAX_SECONDS:
        raise InputError("ttl", f"{value!r} is longer than the longest lease, 3650d; omit ttl for a branch that never expires")
    if seconds <= 0:
        raise InputError(
            "ttl", f"{value!r} is not a duration; use a positive number of seconds or a number "
            "followed by s, m, h or d (for example 300, 30s, 15m, 2h), or none to remove the lease",
        )
    return seconds


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int

    def __contains__(self, port: int) -> bool:
        return self.low <= port <= self.high

    def __iter__(self):
        return iter(range(self.low, self.high + 1))

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


def parse_port_range(value: str) -> PortRange:
    match = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", str(value))
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if 1024 <= low <= high <= 65535:
            return PortRange(low, high)
    raise InputError("port_range", f"{value!r} is not a port range; use LOW-HIGH with 1024 <= LOW <= HIGH <= 65535")


def validate_port(port: Optional[int], ports: PortRange, parameter: str = "port") -> Optional[int]:
    if port is not None and port not in ports:
        raise InputError(parameter, f"{port} is outside port_range {ports}")
    return port


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def timestamp(moment: Optional[datetime]) -> Optional[str]:
    return moment.isoformat() if moment else None


def parse_timestamp(text: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(text) if text else None


def lease_end(ttl_seconds: Optional[int], applied_at: datetime) -> Optional[str]:
    return timestamp(applied_at + timedelta(seconds=ttl_seconds)) if ttl_seconds else None


def connection_host(bind_address: str) -> str:
    """The address a client on this host dials for a port published on bind_address."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind_address, bind_address)


def postgres_url(user: str, password: str, host: str, port: int, dbname: str) -> str:
    hostpart = f"[{host}]" if ":" in host else host
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{hostpart}:{port}/{quote(dbname, safe='')}"


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 7677, as libpq's
    PQencryptPasswordConn makes it): sent instead of the password, so no plaintext reaches the server's
    statement log."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass
class DatabaseRecord:
    name: str
    image: str
    pg_major: int
    user: str
    password_file: str
    created_at: str
    status: str = "ready"  # creating | ready | deleting
    # Its endpoint (endpoint/): the pooler's pinned host port, image and container name; no port, no endpoint.
    endpoint_port: Optional[int] = None
    endpoint_image: Optional[str] = None
    endpoint_container: Optional[str] = None
    mask: Optional[str] = None  # masking rules every new branch but production gets (masking.py: JSON)


@dataclass
class BranchRecord:
    database: str
    name: str
    status: str
    is_default: bool
    protected: bool
    host: str
    port: int
    container_name: str
    data_dir: str
    created_at: str
    container_id: Optional[str] = None
    parent: Optional[str] = None
    copy_mode: Optional[str] = None
    copy_method: Optional[str] = None
    ttl_seconds: Optional[int] = None
    expires_at: Optional[str] = None
    migrations: Optional[str] = None  # what it has had, in order (migrations.py: JSON)
    mask: Optional[str] = None  # the masking rules its data has had, its source's among them (masking.py: JSON)
    filter: Optional[str] = None  # the row filter its copy took (subset.py: JSON)

    def expired(self, moment: datetime) -> bool:
        end = parse_timestamp(self.expires_at)
        return end is not None and end <= moment


@dataclass
class BranchView:
    """What every module returns for a branch (DESIGN.md, 'Public surface')."""

    name: str
    database: str
    status: str
    is_default: bool
    protected: bool
    host: str
    port: int
    url: str
    container_name: str
    container_id: Optional[str]
    parent: Optional[str]
    copy_mode: Optional[str]
    copy_method: Optional[str]
    created_at: str
    expires_at: Optional[str]
    data_dir: str
    ttl: Optional[int] = None
    size_bytes: Optional[int] = None
    data_dir_exists: bool = True
    copy_progress: Optional[dict] = None
    endpoint_url: Optional[str] = None  # this branch through its database's endpoint, where it has one
    migrations: list = field(default_factory=list)  # what it has had, in order: {file, checksum, applied_at}
    masked: bool = False
    mask: dict = field(default_factory=dict)  # column -> the name of the rule its data has had
    filter: dict = field(default_factory=dict)  # table -> the condition its copy took rows by
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        result = asdict(self)
        result.update(result.pop("extra"))
        return result


def diff_view(record: Optional[BranchRecord], status: Optional[str] = None) -> dict:
    """The before/after shown by --diff: stable, secret-free fields only."""
    if record is None:
        return {}
    return {
        "name": record.name,
        "status": status or record.status,
        "is_default": record.is_default,
        "protected": record.protected,
        "port": record.port,
        "parent": record.parent,
        "copy_mode": record.copy_mode,
        "copy_method": record.copy_method,
        "ttl": record.ttl_seconds,
        "migrations": [entry["file"] for entry in json.loads(record.migrations or "[]")],
        "masked": bool(record.mask),
        "mask": rule_names(decode_rules(record.mask)),
        "filter": json.loads(record.filter or "{}"),
    }
