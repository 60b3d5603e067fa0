"""Secrets and exposure: where a password may appear (a branch's `url`, which the user asked for) and
where it must not (docker inspect, container logs, other module results, --diff, -vvv output and
Ansible's log file), file modes, port bindings, and SCRAM on host connections.

One lifecycle is run as a user would, with -vvv, --diff and ANSIBLE_LOG_PATH: an 'upstream' database,
a database seeded from upstream's URL (an external source with a password of its own), a dump branch,
branch_info, a reset, and a delete. Every check then reads what that run produced."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from conftest import PORT_RANGE, _remove_containers_under, json_report, query


def walk(value, path=""):
    """(path, string) for every string inside a JSON-like value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


@pytest.fixture(scope="module")
def lifecycle(docker_client, image17):
    workdir = Path(f"/tmp/bf-rx-{secrets.token_hex(3)}")
    workdir.mkdir()
    placement = {"state_dir": str(workdir / "state"),
                 "port_range": PORT_RANGE}
    upstream, name = f"up{secrets.token_hex(3)}", f"rx{secrets.token_hex(3)}"
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "module_defaults": {"group/baseful.branching.branching": placement},
             "tasks": [
                 {"name": "upstream", "baseful.branching.database": {"name": upstream, "image": image17}, "register": "up"},
                 {"name": "seeded", "baseful.branching.database": {"name": name, "image": image17,
                                                                   "source_url": "{{ up.branch.url }}"}},
                 {"name": "dump branch", "baseful.branching.branch": {"database": name, "name": "dev", "copy_method": "dump"}},
                 {"name": "info", "baseful.branching.branch_info": {"database": name}},
                 {"name": "reset", "baseful.branching.branch": {"database": name, "name": "dev", "reset": True}},
                 {"name": "second", "baseful.branching.branch": {"database": name, "name": "gone"}},
                 {"name": "delete", "baseful.branching.branch": {"database": name, "name": "gone", "state": "absent"}},
                 {"name": "expire", "baseful.branching.branch_expire": {}},
             ]}]
    (workdir / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOG_PATH=str(workdir / "ansible.log"),
               ANSIBLE_PYTHON_INTERPRETER=shutil.which("python3"))
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    try:
        verbose = subprocess.run(["ansible-playbook", "-i", "localhost,", "-vvv", "--diff", str(workdir / "play.yml")],
                                 env=env, capture_output=True, text=True, check=False)
        assert verbose.returncode == 0, verbose.stdout[-3000:]
        # The same results as data, from a second, quiet run of the read-only and idempotent tasks.
        env_json = dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
        quiet = subprocess.run(["ansible-playbook", "-i", "localhost,", "--diff", str(workdir / "play.yml")],
                               env=env_json, capture_output=True, text=True, check=True)
        results = [t["hosts"]["localhost"] for t in json_report(quiet.stdout)["plays"][0]["tasks"]]
        secrets_dir = workdir / "state" / "secrets"
        passwords = {p.stem: p.read_text() for p in secrets_dir.glob("*.password")}
        verifiers = {p.stem: p.read_text() for p in secrets_dir.glob("*.verifier")}
        containers = docker_client.containers.list(all=True, filters={"label": "managed-by=baseful"}, ignore_removed=True)
        mine = [c for c in containers if c.labels.get("baseful.database") in (upstream, name)]
        yield {"workdir": workdir, "placement": placement, "verbose": verbose.stdout + verbose.stderr,
               "log": (workdir / "ansible.log").read_text(), "results": results, "passwords": passwords,
               "verifiers": verifiers,
               "containers": mine, "name": name, "upstream": upstream}
    finally:
        _remove_containers_under(docker_client, str(workdir))
        shutil.rmtree(workdir, ignore_errors=True)


def only_in_urls(text: str, password: str) -> bool:
    """Every occurrence of the password is the password part of a postgresql:// URL."""
    in_urls = len(re.findall(r"postgresql://[a-z_][a-z0-9_]*:" + re.escape(password) + "@", text))
    return text.count(password) == in_urls


def test_passwords_appear_in_output_and_logs_only_inside_urls(lifecycle, tally):
    assert len(lifecycle["passwords"]) == 2
    for password in lifecycle["passwords"].values():
        for where in ("verbose", "log"):
            tally.record("exposure", tried=1, held=0)
            assert password in lifecycle[where] or where == "log", "the run printed no URL at all: the check is blind"
            assert only_in_urls(lifecycle[where], password), f"a password outside a URL in the {where} output"
            assert not any(v in lifecycle[where] for v in lifecycle["verifiers"].values()), f"a verifier in {where}"
            tally.record("exposure", tried=0, held=1)


def test_module_results_hold_a_password_only_in_url_and_never_in_diff(lifecycle, tally):
    for result in lifecycle["results"]:
        tally.record("exposure", tried=1, held=0)
        for path, text in walk(result):
            for password in lifecycle["passwords"].values():
                if password in text:
                    assert path.endswith((".url", ".endpoint_url")) and "diff" not in path, f"password at {path}"
            for verifier in lifecycle["verifiers"].values():  # the endpoint's SCRAM verifier is never returned
                assert verifier not in text, f"verifier at {path}"
        tally.record("exposure", tried=0, held=1)


def test_docker_inspect_and_container_logs_hold_no_password(lifecycle, tally):
    roles = sorted(c.labels["baseful.role"] for c in lifecycle["containers"])
    assert roles == ["branch"] * 3 + ["endpoint"] * 2  # upstream and seeded production, dev; an endpoint each
    assert len(lifecycle["verifiers"]) == 2
    for container in lifecycle["containers"]:
        tally.record("exposure", tried=1, held=0)
        inspected = json.dumps(container.attrs)
        logs = container.logs().decode(errors="replace")
        for secret in [*lifecycle["passwords"].values(), *lifecycle["verifiers"].values()]:
            assert secret not in inspected and secret not in logs, container.name
        if container.labels["baseful.role"] == "branch":
            assert any(e.startswith("POSTGRES_PASSWORD_FILE=") for e in container.attrs["Config"]["Env"])
        else:  # the endpoint's configuration is a read-only mount, and it runs as no root
            assert all(not m["RW"] for m in container.attrs["Mounts"] if m["Type"] == "bind")
            assert container.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
        tally.record("exposure", tried=0, held=1)


def test_ports_bind_to_loopback(lifecycle, tally):
    for container in lifecycle["containers"]:
        tally.record("exposure", tried=1, held=0)
        [bindings] = container.attrs["HostConfig"]["PortBindings"].values()
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        tally.record("exposure", tried=0, held=1)


def test_state_dir_is_0700_and_every_state_and_secret_file_0600(lifecycle, tally):
    state = lifecycle["workdir"] / "state"
    for path in [state, *state.rglob("*")]:
        if "data" in path.relative_to(state).parts[:1]:
            continue  # data directories: PostgreSQL's own rules (0700, checked below)
        tally.record("exposure", tried=1, held=0)
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, f"{path} is {oct(stat.S_IMODE(path.stat().st_mode))}"
        tally.record("exposure", tried=0, held=1)
    for data_dir in (state / "data" / lifecycle["name"]).iterdir():
        tally.record("exposure", tried=1, held=0)
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        tally.record("exposure", tried=0, held=1)
    manifests = state / "data" / lifecycle["name"] / ".baseful"
    assert (manifests / "database.json").is_file(), "no manifest: the check below would be blind"
    for path in manifests.rglob("*"):  # the manifests beside the data: 0700 directories, 0600 files, no secret
        tally.record("exposure", tried=1, held=0)
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
        if path.is_file():
            assert not any(password in path.read_text() for password in lifecycle["passwords"].values()), path
        tally.record("exposure", tried=0, held=1)


def test_host_connections_use_scram(lifecycle, tally):
    info = next(r for r in lifecycle["results"] if "branches" in r and r.get("branches"))
    for branch in info["branches"]:
        tally.record("exposure", tried=1, held=0)
        url = branch["url"]
        # This very connection, made from the host, authenticated by SCRAM (system_user: PostgreSQL 16+).
        assert query(url, "SELECT system_user") == [("scram-sha-256:postgres",)]
        # Every host rule is SCRAM but the image's loopback-only trust inside the container's own network
        # namespace, which no connection from outside the container can match.
        rules = query(url, "SELECT address, auth_method FROM pg_hba_file_rules WHERE starts_with(type, 'host')")
        assert all(auth == "scram-sha-256" or address in ("127.0.0.1", "::1") for address, auth in rules), rules
        assert query(url, "SELECT starts_with(rolpassword, 'SCRAM-SHA-256$') FROM pg_authid WHERE rolname = current_user") == [(True,)]
        wrong = re.sub(r"://([^:]+):[^@]+@", r"://\1:not-the-password@", url)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong, connect_timeout=5).close()
        tally.record("exposure", tried=0, held=1)


def test_bind_address_moves_the_port_and_the_url(ansible, dbname, image17, docker_client, tally):
    tally.record("exposure", tried=1, held=0)
    result = ansible.run("database", name=dbname, image=image17, bind_address="127.0.0.2")
    assert not result.get("failed"), result.get("msg")
    container = docker_client.containers.get(result["branch"]["container_id"])
    assert container.attrs["HostConfig"]["PortBindings"]["5432/tcp"][0]["HostIp"] == "127.0.0.2"
    assert "@127.0.0.2:" in result["branch"]["url"] and query(result["branch"]["url"], "SELECT 1") == [(1,)]
    tally.record("exposure", tried=0, held=1)
