"""The Docker daemon restarted under running branches: each that was running runs again on its own
port with its data; a stopped one stays stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import docker
import pytest

from .test_host_faults import CHECKSUM, accepts, wait_until
from conftest import connect, query


def _restart_docker_daemon() -> None:
    """Stops dockerd (its containers stop with it) and starts it again as it was started."""
    active = shutil.which("systemctl") and subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False)
    if active and active.returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True)
        return
    pid = int(subprocess.run(["pidof", "dockerd"], check=True, capture_output=True, text=True).stdout.split()[0])
    command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    environment = dict(entry.split(b"=", 1) for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in entry)
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=90)
    with open("/var/log/dockerd.log", "ab") as log:
        subprocess.Popen(command, env=environment, stdout=log, stderr=log, start_new_session=True)
    wait_until(lambda: docker.from_env().ping(), timeout=90)  # the client asks the version as it is made


@pytest.mark.restarts_docker
def test_docker_daemon_restarted_every_running_branch_runs_again_on_its_port(ansible, database, dbname, tally):
    running = ansible.run("branch", database=dbname, name="survivor")["branch"]
    stopped = ansible.run("branch", database=dbname, name="sleeper", state="stopped")["branch"]
    with connect(running["url"]) as conn:
        conn.execute("UPDATE stock SET stock_quantity = 3 WHERE product_id = 1")
    expected = {b["name"]: query(b["url"], CHECKSUM) for b in (database["branch"], running)}
    tally.record("faults", tried=1, held=0)
    _restart_docker_daemon()
    for branch in (database["branch"], running):
        wait_until(lambda url=branch["url"]: accepts(url))
        assert query(branch["url"], CHECKSUM) == expected[branch["name"]]
    info = {b["name"]: b for b in ansible.run("branch_info", database=dbname)["branches"]}
    assert {n: (b["status"], b["port"]) for n, b in info.items()} == {
        "production": ("running", database["branch"]["port"]), "survivor": ("running", running["port"]),
        "sleeper": ("stopped", stopped["port"])}
    # The endpoint is not restarted by Docker (its routes name addresses that may have moved among the branches);
    # the expiry job, run every minute, rewrites them and starts it.
    endpoint = database["database"]["endpoint"]
    assert ansible.run("branch_info", database=dbname)["endpoints"][0]["status"] == "stopped"
    healed = ansible.run("branch_expire", database=dbname)
    assert not healed.get("failed"), healed.get("msg")
    live = ansible.run("branch_info", database=dbname)["endpoints"][0]
    assert live["status"] == "running" and live["in_sync"], live
    assert query(endpoint["url"], CHECKSUM) == expected["production"]
    assert query(running["endpoint_url"], CHECKSUM) == expected["survivor"]
    tally.record("faults", tried=0, held=1)
