"""Every copy method against images a user may run: PostgreSQL 18 with the official image's 18 layout
(PGDATA /var/lib/postgresql/18/docker under VOLUME /var/lib/postgresql) and a hardened 17 whose
pg_hba asks for a password on every host connection, 127.0.0.1 and replication included. Snapshot
runs on an XFS loop filesystem (reflinks). The suite's autouse check counts Docker volumes around
every test: none may be left, whatever VOLUME the image declares."""

from __future__ import annotations

import pytest

from conftest import connect, query

CHECKSUM = "SELECT count(*), sum(stock_quantity), md5(string_agg(product_id::text || ':' || stock_quantity, ',' " \
           "ORDER BY product_id)) FROM stock"


def image_config(client, image: str) -> dict:
    return client.images.get(image).attrs["Config"]


@pytest.mark.parametrize("image_fixture", ["image18", "image17_hardened"])
def test_every_copy_method_on_the_image(request, image_fixture, on_xfs, dbname, docker_client):
    image = request.getfixturevalue(image_fixture)
    config = image_config(docker_client, image)
    pgdata = dict(item.partition("=")[::2] for item in config["Env"])["PGDATA"]
    assert config.get("Volumes"), "the stand-in must declare a VOLUME, as the official image does"
    made = on_xfs.run("database", name=dbname, image=image)
    assert not made.get("failed"), made.get("msg")
    production = made["branch"]
    container = docker_client.containers.get(production["container_id"])
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts[pgdata]["Source"] == production["data_dir"], "the data directory is mounted at the image's PGDATA"
    assert not [m for m in container.attrs["Mounts"] if m["Type"] == "volume"], "an anonymous volume was made"
    if image_fixture == "image18":
        assert pgdata == "/var/lib/postgresql/18/docker" and "/var/lib/postgresql" in config["Volumes"]
        assert made["database"]["pg_major"] == 18
    else:
        hba = container.exec_run(["sh", "-c", 'grep -E "^host +(all|replication) +all +127" "$PGDATA/pg_hba.conf"'],
                                 user="postgres").output.decode()
        assert hba.count("scram-sha-256") == 2 and "trust" not in hba, hba  # the test would be vacuous on trust
    with connect(production["url"]) as conn:
        conn.execute("CREATE TABLE stock (product_id int PRIMARY KEY, stock_quantity int NOT NULL)")
        conn.execute("INSERT INTO stock SELECT g, g % 89 FROM generate_series(1, 5000) g")
    expected = query(production["url"], CHECKSUM)
    for name, method in (("auto", None), ("phys", "physical"), ("snap", "snapshot"), ("logical", "dump")):
        result = on_xfs.run("branch", database=dbname, name=name, **({"copy_method": method} if method else {}))
        assert result.get("changed"), (name, result.get("msg"))
        assert query(result["branch"]["url"], CHECKSUM) == expected, name
    stopped = on_xfs.run("branch", database=dbname, name="phys", state="stopped")
    assert stopped["actions"] == ["stop"]
    from_stopped = on_xfs.run("branch", database=dbname, name="phys-copy", source="phys", copy_method="physical")
    assert query(from_stopped["branch"]["url"], CHECKSUM) == expected
    removed = on_xfs.run("database", name=dbname, state="absent")
    assert removed["changed"] and docker_client.containers.list(all=True, filters={"label": f"baseful.database={dbname}"}) == []
