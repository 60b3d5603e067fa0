"""The FQCN playbooks and the expiry role, run as a user runs them."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
import time

import pytest

from conftest import connect, json_report, playbook_env, query


def playbook(name: str, *extra: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", name, *extra], env=playbook_env(**(env or {})), capture_output=True,
                          text=True, check=False, timeout=600)


def task_results(done: subprocess.CompletedProcess) -> dict:
    report = json_report(done.stdout)
    return {task["task"]["name"]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]}


def test_branch_playbook_prints_the_url_and_writes_an_env_file(database, dbname, placement, workdir):
    env_file = workdir / "branch.env"
    args = ["-e", f"database={dbname}", "-e", "name=pr-1234", "-e", "ttl=2h", "-e", f"env_file={env_file}",
            "-e", f"state_dir={placement['state_dir']}", "-e", f"port_range={placement['port_range']}"]
    done = playbook("baseful.branching.branch", *args)
    assert done.returncode == 0, done.stdout[-2000:]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(values) == {"DATABASE_URL", "DATABASE_ENDPOINT_URL"}  # the branch itself, and through the endpoint
    url = values["DATABASE_URL"]
    assert url.startswith("postgresql://postgres:")
    assert values["DATABASE_ENDPOINT_URL"].endswith(f"/{dbname}.pr-1234")
    for each in values.values():
        assert query(each, "SELECT count(*) FROM stock") == [(500,)]
    shown = json.dumps(task_results(done)["Show the branch"])
    assert "pr-1234" in shown and url.rsplit(":", 1)[1].split("/")[0] in shown

    again = playbook("baseful.branching.branch", *args)
    stats = json_report(again.stdout)["stats"]["localhost"]
    assert again.returncode == 0 and stats["changed"] == 0

    refused = playbook("baseful.branching.branch", "-e", f"database={dbname}", "-e", "name=production",
                       "-e", "state=absent", "-e", f"state_dir={placement['state_dir']}")
    assert refused.returncode != 0
    assert "is the root branch" in json.dumps(task_results(refused)["Report what failed"]), refused.stdout


@pytest.fixture
def root_crontab(crontab_to_itself):
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    yield
    if saved.returncode == 0:
        subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True, check=False)


def test_expiry_role_schedules_every_minute_a_command_that_really_expires(
        ansible, database, dbname, placement, workdir, root_crontab, docker_client):
    script, log = workdir / "baseful-expire", workdir / "expire.log"
    role_vars = {"baseful_expiry_state_dir": placement["state_dir"], "baseful_expiry_script": str(script),
                 "baseful_expiry_log": str(log), "baseful_expiry_logrotate": False}
    apply_role = [{"ansible.builtin.include_role": {"name": "baseful.branching.expiry"}, "vars": role_vars}]
    assert not ansible.play([dict(t) for t in apply_role])[0].get("failed"), ansible.last_output[-2000:]

    entries = [line for line in subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=True).stdout
               .splitlines() if line.strip() and not line.startswith("#")]
    scheduled = [line for line in entries if str(script) in line]
    assert len(scheduled) == 1
    fields = scheduled[0].split(None, 5)
    assert fields[:5] == ["*"] * 5

    short = ansible.run("branch", database=dbname, name="lease-1s", ttl="1s")["branch"]
    time.sleep(1.5)
    # What cron runs, run the way cron runs it: through sh, with cron's bare environment.
    ran = subprocess.run(["sh", "-c", fields[5]], env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
                         capture_output=True, text=True, check=False, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "lease-1s" in log.read_text() and " rc=0 " in log.read_text()
    assert [b["name"] for b in ansible.run("branch_info", database=dbname)["branches"]] == ["production"]
    assert docker_client.containers.list(all=True, filters={"id": short["container_id"]}) == []

    again = ansible.play([dict(t) for t in apply_role])[0]
    assert again["changed"] is False
    role_vars["baseful_expiry_state"] = "absent"
    ansible.play([dict(t) for t in apply_role])
    assert str(script) not in subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False).stdout
    assert not script.exists()
    assert shlex.split(fields[5])[0] == str(script)


def test_dump_restore_role_copies_through_the_engine(ansible, database, dbname, placement, image15, image17):
    def copy(source: dict, target: dict, **extra) -> dict:
        """Applies the role; 'failed' is true when any of its tasks failed."""
        role = {"ansible.builtin.include_role": {"name": "baseful.branching.dump_restore"},
                "vars": dict({"baseful_placement": placement, "baseful_dump_restore_source": source,
                              "baseful_dump_restore_target": target}, **extra)}
        results = ansible.play([role])
        return {"failed": any(r.get("failed") for r in results), "tasks": len(results)}

    created = copy({"database": dbname, "branch": "production"}, {"database": dbname, "branch": "copy-target"})
    assert not created.get("failed"), ansible.last_output[-2000:]
    target_url = ansible.run("branch_info", database=dbname, name="copy-target")["branches"][0]["url"]
    assert query(target_url, "SELECT count(*) FROM stock") == [(500,)]

    with connect(target_url) as conn:
        conn.execute("DELETE FROM stock")
    with connect(database["branch"]["url"]) as conn:
        conn.execute("UPDATE stock SET stock_quantity = 7 WHERE product_id = 1")
    recopied = copy({"database": dbname, "branch": "production"}, {"database": dbname, "branch": "copy-target"})
    assert not recopied.get("failed"), ansible.last_output[-2000:]
    assert query(target_url, "SELECT count(*), min(stock_quantity) FROM stock") == [(500, 7)]

    refused = copy({"url": target_url}, {"url": target_url})
    assert refused.get("failed") and "not supported" in ansible.last_output

    # An upgrade by dump: a PostgreSQL 15 database seeds a new PostgreSQL 17 one.
    old_name, new_name = f"{dbname}o", f"{dbname}n"
    old = ansible.run("database", name=old_name, image=image15)["branch"]
    with connect(old["url"]) as conn:
        conn.execute("CREATE TABLE legacy AS SELECT g AS id FROM generate_series(1, 321) g")
    seeded = copy({"url": old["url"]}, {"database": new_name, "image": image17})
    assert not seeded.get("failed"), ansible.last_output[-2000:]
    production = ansible.run("branch_info", database=new_name)["branches"][0]
    assert query(production["url"], "SELECT count(*), current_setting('server_version_num')::int / 10000 FROM legacy") \
        == [(321, 17)]
    for name in (old_name, new_name):
        assert ansible.run("database", name=name, state="absent")["changed"]
