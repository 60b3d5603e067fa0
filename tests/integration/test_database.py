"""baseful.branching.database: create, idempotence, check mode, images, seeding, removal."""

from __future__ import annotations

import stat
import subprocess
import time

import psycopg
import pytest

from conftest import connect, query, snapshot


def test_present_creates_network_secret_and_protected_default_production(ansible, dbname, image17, docker_client, workdir):
    result = ansible.run("database", name=dbname, image=image17)
    assert result["changed"] is True
    assert result["actions"] == ["create_database", "create_branch", "create_endpoint"]
    production = result["branch"]
    assert (production["name"], production["status"], production["is_default"], production["protected"]) == \
        ("production", "running", True, True)
    assert result["database"]["pg_major"] == 17 and result["database"]["default_branch"] == "production"

    assert docker_client.networks.list(names=["baseful"])
    container = docker_client.containers.get(production["container_name"])
    assert container.name.startswith(f"baseful-{dbname}-production-") and len(container.name.rsplit("-", 1)[1]) == 6
    assert container.labels["managed-by"] == "baseful"
    assert container.labels["baseful.database"] == dbname and container.labels["baseful.branch"] == "production"
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert container.attrs["HostConfig"]["PortBindings"]["5432/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(production["port"])}]
    assert "baseful" in container.attrs["NetworkSettings"]["Networks"]
    assert production["data_dir"] == str(workdir / "state" / "data" / dbname / "production")
    env = container.attrs["Config"]["Env"]
    assert not any(e.startswith("POSTGRES_PASSWORD=") for e in env)
    assert any(e.startswith("POSTGRES_PASSWORD_FILE=") for e in env)

    secret = workdir / "state" / "secrets" / f"{dbname}.password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((workdir / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((workdir / "state" / "state.db").stat().st_mode) == 0o600
    password = secret.read_text()
    assert len(password) >= 24 and password in production["url"]
    assert password not in str(container.attrs)
    assert query(production["url"], "SELECT current_database(), current_user") == [(dbname, "postgres")]
    assert query(production["url"], "SHOW password_encryption") == [("scram-sha-256",)]


def test_second_apply_changes_nothing(ansible, database, dbname, image17):
    again = ansible.run("database", name=dbname, image=image17)
    assert again["changed"] is False and again["actions"] == []
    assert again["database"]["default_branch"] == "production"


def test_check_mode_predicts_and_touches_nothing(ansible, dbname, image17, docker_client, workdir):
    before = snapshot(docker_client, workdir)
    predicted = ansible.run("database", check=True, diff=True, name=dbname, image=image17)
    assert predicted["changed"] is True and predicted["actions"] == ["create_database", "create_branch", "create_endpoint"]
    assert predicted["diff"]["before"] == {} and predicted["diff"]["after"]["default_branch"] == "production"
    assert snapshot(docker_client, workdir) == before
    assert not (workdir / "state").exists()
    real = ansible.run("database", name=dbname, image=image17)
    assert real["actions"] == predicted["actions"]


def test_absent_removes_every_branch_container_data_and_record(ansible, database, dbname, docker_client, workdir):
    branch = ansible.run("branch", database=dbname, name="feature")
    assert branch["changed"], branch.get("msg")
    check = ansible.run("database", check=True, name=dbname, state="absent")
    assert check["changed"] and docker_client.containers.list(all=True, filters={"label": f"baseful.database={dbname}"})

    removed = ansible.run("database", name=dbname, state="absent")
    assert removed["changed"] is True
    assert docker_client.containers.list(all=True, filters={"label": f"baseful.database={dbname}"}) == []
    assert not (workdir / "state" / "data" / dbname).exists()
    assert not (workdir / "state" / "secrets" / f"{dbname}.password").exists()
    info = ansible.run("branch_info")
    assert info["branches"] == []
    assert ansible.run("database", name=dbname, state="absent")["changed"] is False


def test_image_picks_the_major_version(ansible, dbname, image15):
    result = ansible.run("database", name=dbname, image=image15)
    assert result["database"]["pg_major"] == 15
    assert query(result["branch"]["url"], "SHOW server_version_num")[0][0].startswith("15")


def test_image_without_postgresql_is_refused_and_nothing_is_left(ansible, dbname, docker_client, workdir, tmp_path):
    (tmp_path / "hello.txt").write_text("no server here\n")
    subprocess.run(f"tar -C {tmp_path} -c hello.txt | docker import - baseful-test/no-postgres:1", shell=True,
                   check=True, capture_output=True)
    result = ansible.run("database", name=dbname, image="baseful-test/no-postgres:1")
    assert result["failed"] and result["msg"].startswith("image: 'baseful-test/no-postgres:1' has no PostgreSQL server")
    assert docker_client.containers.list(all=True, filters={"label": f"baseful.database={dbname}"}) == []
    assert docker_client.containers.list(all=True, filters={"ancestor": "baseful-test/no-postgres:1"}) == []
    assert ansible.run("branch_info")["branches"] == []

    missing = ansible.run("database", name=dbname, image="baseful-test/does-not-exist:1")
    assert missing["failed"] and missing["msg"].startswith("image: 'baseful-test/does-not-exist:1' is not present")


def test_source_url_seeds_production_from_an_external_server(ansible, dbname, image17, docker_client, workdir):
    data = workdir / "external"
    data.mkdir()
    # tmpfs over the image's VOLUMEs: an anonymous volume, even one removed with the container, would show up
    # in another worker's check that no test leaves a volume behind
    volumes = docker_client.images.get(image17).attrs["Config"].get("Volumes") or {}
    external = docker_client.containers.run(
        image17, detach=True, name=f"bf-external-{dbname}", tmpfs=dict.fromkeys(volumes, ""),
        environment={"POSTGRES_PASSWORD": "ext pass/@:1", "POSTGRES_DB": "shop"},
        ports={"5432/tcp": ("127.0.0.1", None)}, labels={"baseful-test": "external"})
    try:
        external.reload()
        port = int(external.attrs["NetworkSettings"]["Ports"]["5432/tcp"][0]["HostPort"])
        url = f"postgresql://postgres:ext%20pass%2F%40%3A1@127.0.0.1:{port}/shop"
        for _attempt in range(200):
            try:
                with connect(url) as conn:
                    conn.execute("CREATE ROLE shop_owner")
                    conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
                    conn.execute("ALTER TABLE items OWNER TO shop_owner")
                    conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 250) g")
                break
            except psycopg.OperationalError:  # not ready yet
                time.sleep(0.2)
        result = ansible.run("database", name=dbname, image=image17, source_url=url)
        assert result["changed"], result.get("msg")
        assert result["copy_result"]["method"] == "dump" and result["branch"]["parent"] == "external"
        production = result["branch"]["url"]
        assert query(production, "SELECT count(*), max(name) FROM items") == [(250, "item 99")]
        assert query(production, "SELECT tableowner FROM pg_tables WHERE tablename = 'items'") == [("postgres",)]
        assert "ext pass" not in str(result)
    finally:
        external.remove(force=True, v=True)  # the test's own server: its image declares a VOLUME


@pytest.mark.parametrize("name", ["Inventory", "my db", "../etc", "a;b", "", "x" * 32, "1abc", "caf\u00e9"])
def test_bad_database_names_are_refused_and_nothing_changes(ansible, name, image17, docker_client, workdir):
    before = snapshot(docker_client, workdir)
    result = ansible.run("database", name=name, image=image17)
    assert result["failed"] and result["msg"].startswith("name: ") and "not a valid name" in result["msg"]
    assert snapshot(docker_client, workdir) == before


def test_docker_unreachable_is_one_clear_sentence(ansible, dbname, image17):
    result = ansible.run("database", name=dbname, image=image17, docker_host="unix:///nonexistent/docker.sock")
    assert result["failed"] and result["msg"].startswith("docker_host: Docker is not reachable at unix:///nonexistent")


def test_a_daemon_that_does_not_see_data_root_is_refused_naming_docker_host(
        ansible, dbname, image17, docker_client, workdir):
    """The module runs where the Docker daemon's host does not have data_root as the module sees it, as with a
    daemon on another machine or in a VM: here the module has a mount namespace of its own with a tmpfs over
    data_root, which the daemon cannot see. Refused naming docker_host; nothing is made on either side."""
    data_root = workdir / "not-on-the-daemons-host"
    data_root.mkdir()
    inside = workdir / "inside.txt"
    # in the namespace: the tmpfs, the playbook, then what the module left in data_root as it sees it
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'root=$0 seen=$1; shift; mount -t tmpfs tmpfs "$root" && "$@"; status=$?; ls -A "$root" > "$seen"; '
               'exit $status',
               str(data_root), str(inside)]
    task = {"baseful.branching.database": {"name": dbname, "image": image17, "data_root": str(data_root)}}
    result = ansible.play([task], wrapper=wrapper)[0]
    assert result.get("failed"), result
    assert result["msg"].startswith("docker_host: the Docker daemon does not see data_root "
                                    f"{data_root}"), result["msg"]
    assert inside.read_text() == ""  # the probe's directory is gone again, in the module's view
    assert list(data_root.iterdir()) == []  # and in the daemon's
    assert docker_client.containers.list(all=True, filters={"label": f"baseful.database={dbname}"}) == []
    assert ansible.run("branch_info", data_root=str(data_root))["branches"] == []
    made = ansible.run("database", name=dbname, image=image17, data_root=str(data_root))  # seen here: made
    assert made["changed"] and not made.get("failed"), made.get("msg")
