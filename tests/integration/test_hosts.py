"""Many Docker hosts, one inventory: the provision playbook run by its FQCN against an inventory of two hosts
reached over SSH, as a user runs it for a fleet. An sshd this test starts on 127.0.0.1 lets in a user of its
own, who becomes root with sudo; the two hosts are two SSH aliases of this machine, each with its own
state_dir, data_root and port_range, provisioned in one `ansible-playbook -f 2` run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import PORTS, WORKER, json_report, playbook_env, query

HOSTS = ("dock-a", "dock-b")


@pytest.fixture
def ssh_host(workdir):
    """(user, port, private key) of an sshd on 127.0.0.1 that lets a test-made user in by key; the user may
    sudo to root without a password. Everything made for it (user, sudoers entry, keys, the daemon) goes
    afterwards."""
    user = f"bfssh{WORKER}{workdir.name[-6:]}"
    home, port = workdir / "ssh-home", PORTS[-1]
    sudoers = Path(f"/etc/sudoers.d/{user}")
    privsep = Path("/run/sshd")  # Debian's sshd wants its privilege separation directory
    made_privsep = not privsep.exists()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "client_key")], check=True)
    # password "*": no password, and not locked (sshd without PAM refuses a locked account even a key)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", "--password", "*", user],
                   check=True)
    daemon = None
    try:
        (home / ".ssh").mkdir(parents=True)
        shutil.copy(workdir / "client_key.pub", home / ".ssh" / "authorized_keys")
        subprocess.run(["chown", "-R", f"{user}:{user}", str(home)], check=True)
        os.chmod(workdir, 0o755)  # the user must reach its home below the test's directory
        sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        privsep.mkdir(mode=0o755, exist_ok=True)
        (workdir / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {workdir / 'host_key'}\nPidFile {workdir / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"AllowUsers {user}\n")
        daemon = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(workdir / "sshd_config")],
                                  stdout=subprocess.DEVNULL, stderr=open(workdir / "sshd.log", "wb"))  # noqa: SIM115
        for _attempt in range(100):
            if subprocess.run(["ssh", *ssh_options(port, workdir / "client_key"), f"{user}@127.0.0.1", "true"],
                              capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"sshd did not let {user} in: {(workdir / 'sshd.log').read_text()[-2000:]}")
        yield user, port, workdir / "client_key"
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=30)
        sudoers.unlink(missing_ok=True)
        # Ansible's SSH control masters keep sessions open a while: they end with the user's processes,
        # and only then can the user go.
        subprocess.run(["pkill", "-u", user], check=False)
        for _attempt in range(100):
            if subprocess.run(["userdel", user], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the test's user {user} could not be removed")
        if made_privsep:
            privsep.rmdir()


def ssh_options(port: int, key: Path) -> list:
    return ["-p", str(port), "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


def provision(workdir: Path, inventory: Path, check: bool = False) -> dict:
    env = playbook_env(ANSIBLE_HOST_KEY_CHECKING="False")  # the inventory's interpreter wins over the env's
    command = ["ansible-playbook", "baseful.branching.provision", "-i", str(inventory), "-f", "2",
               "-e", "baseful_hosts=dbhosts", "-e", "baseful_become=true", *(["--check"] if check else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False, cwd=workdir)
    assert "{" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    report = json_report(done.stdout)
    assert done.returncode == 0, json.dumps(report["stats"]) + done.stdout[-3000:]
    return report


def test_two_hosts_over_ssh_are_provisioned_in_one_run_each_with_its_own_placement(
        ssh_host, workdir, image17, docker_client, ansible):
    user, port, key = ssh_host
    ranges = {"dock-a": (PORTS[100], PORTS[149]), "dock-b": (PORTS[150], PORTS[198])}
    hosts = {}
    for name in HOSTS:
        low, high = ranges[name]
        hosts[name] = {"ansible_host": "127.0.0.1", "ansible_port": port,
                       "baseful_placement": {"state_dir": str(workdir / name / "state"),
                                             "data_root": str(workdir / name / "data"), "port_range": f"{low}-{high}"}}
    inventory = workdir / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"dbhosts": {"hosts": hosts, "vars": {
        "ansible_user": user, "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": " ".join(ssh_options(port, key)[4:]),
        # the Python that has the Docker SDK, as root on the Docker host after become
        "ansible_python_interpreter": shutil.which("python3"),
        "baseful_databases": [{"name": "fleet", "image": image17, "endpoint_image": os.environ["BASEFUL_ENDPOINT_IMAGE"],
                               "branches": [{"name": "dev"}]}]}}}))

    first = provision(workdir, inventory)
    assert {h: s["changed"] > 0 and s["failures"] == 0 for h, s in first["stats"].items()} == dict.fromkeys(HOSTS, True)
    for name in HOSTS:
        low, high = ranges[name]
        placement = hosts[name]["baseful_placement"]
        branches = ansible.run("branch_info", database="fleet", **placement)["branches"]
        assert sorted(b["name"] for b in branches) == ["dev", "production"], name
        assert all(low <= b["port"] <= high and b["status"] == "running" for b in branches), (name, branches)
        for branch in branches:
            assert query(branch["url"], "SELECT current_database()") == [("fleet",)]
            container = docker_client.containers.get(branch["container_id"])
            assert container.labels["baseful.state_dir"] == os.path.realpath(placement["state_dir"])
            assert branch["data_dir"].startswith(placement["data_root"] + "/")
        assert (workdir / name / "state" / "state.db").stat().st_uid == 0  # written as root, through sudo

    again = provision(workdir, inventory)
    assert {h: (s["changed"], s["failures"]) for h, s in again["stats"].items()} == dict.fromkeys(HOSTS, (0, 0))
    checked = provision(workdir, inventory, check=True)
    assert {h: s["changed"] for h, s in checked["stats"].items()} == dict.fromkeys(HOSTS, 0)
