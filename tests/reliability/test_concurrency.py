"""8 forks creating 8 branches of one database at once while a second ansible-playbook switches the
default: every branch made, all ports distinct, exactly one default, PRAGMA integrity_check ok.
Five rounds, each on a fresh database."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess

import pytest
import yaml

from conftest import PORT_RANGE, _remove_containers_under, json_report, playbook_env

FORKS = 8
ROUNDS = 5


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_parallel_forks_and_a_concurrent_switch(ansible, database, dbname, placement, workdir, tally, round_):
    hosts = {f"fork{n}": {"ansible_connection": "local", "branch_name": f"par-{n}"} for n in range(FORKS)}
    (workdir / "forks.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    create = [{"hosts": "all", "gather_facts": False,
               "tasks": [{"baseful.branching.branch": dict(placement, database=dbname, name="{{ branch_name }}")}]}]
    switch = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
               "tasks": [{"baseful.branching.branch": dict(placement, database=dbname, name="switcher",
                                                           state="default")}]}]
    (workdir / "create.yml").write_text(yaml.safe_dump(create))
    (workdir / "switch.yml").write_text(yaml.safe_dump(switch))
    tally.record("concurrency", tried=FORKS + 1, held=0)
    env = playbook_env()
    forks = subprocess.Popen(["ansible-playbook", "-i", str(workdir / "forks.yml"), "-f", str(FORKS),
                              str(workdir / "create.yml")], env=env, stdout=subprocess.PIPE, text=True)
    switched = subprocess.run(["ansible-playbook", "-i", "localhost,", str(workdir / "switch.yml")], env=env,
                              capture_output=True, text=True, check=False)
    out, _err = forks.communicate(timeout=600)
    results = json_report(out)["plays"][0]["tasks"][0]["hosts"]
    failures = {host: r.get("msg") for host, r in results.items() if r.get("failed")}
    assert forks.returncode == 0 and not failures, failures
    assert switched.returncode == 0, switched.stdout[-2000:]
    assert sorted(r["branch"]["name"] for r in results.values()) == sorted(f"par-{n}" for n in range(FORKS))

    branches = ansible.run("branch_info", database=dbname)["branches"]
    assert len(branches) == FORKS + 2
    collisions = len(branches) - len({b["port"] for b in branches})
    tally.record("concurrency", tried=0, held=collisions)  # counted before the assert: a collision must show
    assert collisions == 0
    assert [b["name"] for b in branches if b["is_default"]] == ["switcher"]
    assert all(b["status"] == "running" for b in branches)
    with sqlite3.connect(f"file:{placement['state_dir']}/state.db?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    database_dir = workdir / "state" / "data" / dbname
    names = sorted(b["name"] for b in branches)
    assert sorted(p.name for p in database_dir.iterdir() if p.name != ".baseful") == names
    assert sorted(p.stem for p in (database_dir / ".baseful" / "branches").iterdir()) == names  # one manifest each


STATE_DIRS = 6


def test_databases_of_several_state_dirs_made_at_once_share_one_new_network(workdir, image17, docker_client, tally):
    """Six state_dirs on one host (six teams, six playbooks) each make a database at the same moment, on a
    network none of them has seen and from one port range: every run succeeds, exactly one network of that
    name exists (Docker's own duplicate check races, and a name two networks share cannot be used), and the
    six production branches have six ports (a chosen port another run binds first moves on)."""
    network = f"bft-{secrets.token_hex(3)}"
    hosts = {f"team{n}": {"ansible_connection": "local", "team_state_dir": str(workdir / f"state{n}"),
                          "team_database": f"team{n}"} for n in range(STATE_DIRS)}
    (workdir / "teams.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = [{"hosts": "all", "gather_facts": False,
             "tasks": [{"baseful.branching.database": {
                 "name": "{{ team_database }}", "image": image17, "state_dir": "{{ team_state_dir }}",
                 "network": network, "port_range": PORT_RANGE}}]}]
    (workdir / "teams-play.yml").write_text(yaml.safe_dump(play))
    env = playbook_env()
    tally.record("concurrency", tried=STATE_DIRS, held=0)
    try:
        done = subprocess.run(["ansible-playbook", "-i", str(workdir / "teams.yml"), "-f", str(STATE_DIRS),
                               str(workdir / "teams-play.yml")], env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        results = json_report(done.stdout)["plays"][0]["tasks"][0]["hosts"]
        failures = {host: r.get("msg") for host, r in results.items() if r.get("failed")}
        made = docker_client.networks.list(names=[network])
        ports = [r["branch"]["port"] for r in results.values() if not r.get("failed")]
        # a duplicate network counts as a collision, and so does a port two teams were given
        tally.record("concurrency", tried=0, held=max(len(made) - 1, 0) + len(ports) - len(set(ports)))
        assert not failures and done.returncode == 0, failures
        assert [n.name for n in made] == [network]
        assert len(set(ports)) == STATE_DIRS, ports
    finally:
        _remove_containers_under(docker_client, str(workdir))
        for made_here in docker_client.networks.list(names=[network]):
            made_here.remove()
