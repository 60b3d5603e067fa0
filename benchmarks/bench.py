"""make bench: time to a branch that accepts connections, per copy method, against the ways people
copy today, at several database sizes, all in one run on one XFS (reflink) data root.

Compared, for each size (pgbench data):
  baseful     Baseful's way: a new container, then `pg_dump | psql` from the source container
  hand-dump   the best hand-run logical copy: `pg_dump -Fd -j N` then `pg_restore -j N`
  dump        this collection, copy_method dump, through the module
  physical    this collection, copy_method physical, through the module
  snapshot    this collection, copy_method snapshot, through the module
  cp -a       a raw `cp -a --reflink=never` of the data directory: the disk's limit for a full copy
and, at the largest size: the source's worst commit latency while a snapshot is taken under
pgbench load, and the disk 10 snapshot branches use. Prints a table with ratios, writes
benchmarks/latest/results.json and benchmarks/latest/plot.png.

The endpoint (`--only endpoint` runs this part alone, keeping the rest of results.json): pgbench TPS
through the database's endpoint against the branch's own port, with persistent connections and with a
new connection per transaction (-C), as ratios; and the switch under pgbench -C load through the
endpoint: each switch's pause (p50 and max of `switch_pause_ms`) and the failed transactions. Writes
benchmarks/latest/endpoint.md and endpoint.png.

Masking (`--only masking`): a ~1 GB table of people (email, name, phone, national id, notes) on XFS: a plain
snapshot branch; a masked one (the same snapshot, then the four PII columns masked on the sealed server, the table
rewritten, statistics and WAL replaced); a snapshot of that masked branch (how DLE serves masked clones); a full dump
copy; and a filtered one (1% of the people). Writes benchmarks/latest/masking.md and masking.png.

Module times are the module's own `copy_result.ready_seconds` (copy start to a server accepting
connections), so Ansible's start-up is not counted; the wall time of the whole ansible call is
recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import docker
import psycopg

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("BENCH_WORKDIR", "/var/tmp/baseful-bench"))
SCALE_PER_GB = 68  # pgbench scale factor giving about 1 GB
PORTS = "54800-54899"


def sh(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, text=True, capture_output=True, **kwargs)


@contextmanager
def xfs_root(size_gb: int):
    image, mount = WORK / "xfs.img", WORK / "xfs"
    mount.mkdir(parents=True, exist_ok=True)
    sh("truncate", "-s", f"{size_gb}G", str(image))
    sh("mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image))
    sh("mount", "-o", "loop", str(image), str(mount))
    try:
        yield mount
    finally:
        client = docker.from_env()
        for container in client.containers.list(all=True):
            if any(m.get("Source", "").startswith(str(WORK)) for m in container.attrs.get("Mounts", [])):
                container.remove(force=True, v=True)
        sh("umount", str(mount))
        image.unlink()


class Module:
    """Calls a module of the installed collection the way a user's ad-hoc command does."""

    def __init__(self, placement: dict):
        self.placement = placement

    def __call__(self, module: str, **args) -> dict:
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_PYTHON_INTERPRETER=shutil.which("python3"))
        started = time.monotonic()
        done = subprocess.run(["ansible", "localhost", "-m", f"baseful.branching.{module}",
                               "-a", json.dumps(dict(self.placement, **args))],
                              env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        result = json.loads(done.stdout[done.stdout.index("{"):])["plays"][0]["tasks"][0]["hosts"]["localhost"]
        if result.get("failed"):
            raise RuntimeError(f"{module} {args}: {result.get('msg')}")
        result["wall_seconds"] = round(wall, 3)
        return result


def wait_ready(container, user="postgres") -> None:
    while container.exec_run(["pg_isready", "-q", "-h", "127.0.0.1", "-U", user]).exit_code != 0:
        container.reload()
        if container.status == "exited":
            raise RuntimeError(container.logs()[-500:])
        time.sleep(0.05)


def fresh_container(client, image: str, data_dir: Path, name: str, password: str):
    data_dir.mkdir(parents=True)
    os.chown(data_dir, 999, 999)
    container = client.containers.run(image, detach=True, name=name, network="baseful",
                                      environment={"POSTGRES_PASSWORD": password},
                                      mounts=[docker.types.Mount("/var/lib/postgresql/data", str(data_dir), type="bind")],
                                      labels={"baseful-bench": "1"})
    wait_ready(container)
    return container


def baseful_way(client, image, source, dbname, root: Path, password: str) -> float:
    """New container, then pg_dump | psql between the containers (Baseful's branch creation)."""
    name = f"bench-baseful-{secrets.token_hex(3)}"
    started = time.monotonic()
    target = fresh_container(client, image, root / name, name, password)
    target.exec_run(["createdb", "-U", "postgres", dbname])
    pipeline = (f"docker exec {source.id} pg_dump -U postgres {dbname} "
                f"| docker exec -i {target.id} psql -q -X -v ON_ERROR_STOP=1 -U postgres -d {dbname} >/dev/null")
    sh("bash", "-o", "pipefail", "-c", pipeline)
    seconds = time.monotonic() - started
    target.remove(force=True, v=True)
    shutil.rmtree(root / name)
    return seconds


def hand_dump(client, image, source, dbname, root: Path, password: str, jobs: int) -> float:
    """The best hand-run logical copy: directory-format dump and restore, both parallel."""
    name = f"bench-hand-{secrets.token_hex(3)}"
    started = time.monotonic()
    target = fresh_container(client, image, root / name, name, password)
    source.reload()
    host = source.attrs["NetworkSettings"]["Networks"]["baseful"]["IPAddress"]
    script = (f"set -e; createdb -U postgres {dbname}; "
              f"PGPASSWORD=\"$SRCPW\" pg_dump -h {host} -U postgres -Fd -j {jobs} -f /tmp/dump {dbname}; "
              f"pg_restore -U postgres -j {jobs} -d {dbname} /tmp/dump; rm -rf /tmp/dump")
    ran = target.exec_run(["sh", "-c", script], environment={"SRCPW": password}, user="postgres")
    if ran.exit_code != 0:
        raise RuntimeError(ran.output.decode()[-1000:])
    seconds = time.monotonic() - started
    target.remove(force=True, v=True)
    shutil.rmtree(root / name)
    return seconds


def raw_copy(data_dir: str, root: Path) -> float:
    target = root / f"bench-cp-{secrets.token_hex(3)}"
    started = time.monotonic()
    sh("cp", "-a", "--reflink=never", data_dir, str(target))
    seconds = time.monotonic() - started
    shutil.rmtree(target)
    return seconds


def stall_during_snapshot(module: Module, database: str, source, url: str) -> dict:
    """The worst commit latency a writer sees on the source while a snapshot is taken under load."""
    latencies: list[tuple[float, float]] = []
    stop = threading.Event()

    def writer():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_ticks (at timestamptz DEFAULT now())")
            while not stop.is_set():
                began = time.monotonic()
                conn.execute("INSERT INTO bench_ticks DEFAULT VALUES")
                latencies.append((began, time.monotonic() - began))

    load = subprocess.Popen(["docker", "exec", source.id, "su", "postgres", "-c",
                             f"pgbench -n -c 2 -j 2 -T 20 {database}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(3)
    before = [lat for _t, lat in latencies]
    window_start = time.monotonic()
    result = module("branch", database=database, name="stall-probe", copy_method="snapshot")
    window_end = time.monotonic()
    time.sleep(1)
    stop.set()
    thread.join()
    load.wait()
    module("branch", database=database, name="stall-probe", state="absent")
    during = [lat for t, lat in latencies if window_start <= t <= window_end]
    return {"source_pause_ms": result["copy_result"]["source_pause_ms"],
            "worst_commit_ms_during": round(max(during) * 1000, 1) if during else None,
            "worst_commit_ms_before": round(max(before) * 1000, 1) if before else None,
            "commits_during": len(during)}


def used_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def bench_size(size_gb: int, image: str, module: Module, root: Path, client, jobs: int) -> dict:
    database = f"bench{size_gb}g"
    production = module("database", name=database, image=image)["branch"]
    source = client.containers.get(production["container_id"])
    password = production["url"].split(":")[2].split("@")[0]
    loaded = source.exec_run(["pgbench", "-i", "-q", "-s", str(SCALE_PER_GB * size_gb), database], user="postgres")
    if loaded.exit_code != 0:
        raise RuntimeError(loaded.output.decode()[-1000:])
    with psycopg.connect(production["url"], autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    row = {"size_gb": size_gb, "database_bytes": db_bytes, "data_dir_bytes": None}
    row["baseful"] = round(baseful_way(client, image, source, database, root, password), 3)
    row["hand-dump"] = round(hand_dump(client, image, source, database, root, password, jobs), 3)
    for method in ("dump", "physical", "snapshot"):
        result = module("branch", database=database, name=f"m-{method}", copy_method=method)
        row[method] = result["copy_result"]["ready_seconds"]
        row[f"{method}_wall"] = result["wall_seconds"]
        module("branch", database=database, name=f"m-{method}", state="absent")
    row["cp -a"] = round(raw_copy(production["data_dir"], root), 3)
    row["data_dir_bytes"] = int(sh("du", "-sb", production["data_dir"]).stdout.split()[0])
    return row


ENDPOINT_SCALE = 10  # pgbench scale of the endpoint's database: ~150 MB, in memory
ENDPOINT_SECONDS = 20
SWITCHES = 10


def pgbench(client, image: str, port: int, password: str, dbname: str, *options: str) -> dict:
    """pgbench in the image, on the host network, against 127.0.0.1:port; its TPS and failed transactions."""
    volumes = client.images.get(image).attrs["Config"].get("Volumes") or {}
    container = client.containers.run(image, ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                              *options, dbname], entrypoint=[], network_mode="host", detach=True,
                                      environment={"PGPASSWORD": password}, labels={"baseful-bench": "1"},
                                      mounts=[docker.types.Mount(v, None, type="tmpfs") for v in volumes])
    try:
        status = container.wait()["StatusCode"]
        output = container.logs().decode()
    finally:
        container.remove(force=True, v=True)
    if status != 0:
        raise RuntimeError(output[-1000:])
    tps = float(output.split("tps = ")[1].split()[0])
    failed = output.split("number of failed transactions: ")[1].split()[0] if "failed transactions" in output else "0"
    processed = int(output.split("actually processed: ")[1].split()[0])
    return {"tps": tps, "failed": int(failed), "processed": processed}


def bench_endpoint(module: Module, client, image: str) -> dict:
    database = "benchep"
    made = module("database", name=database, image=image)
    production, endpoint = made["branch"], made["database"]["endpoint"]
    password = production["url"].split(":")[2].split("@")[0]
    source = client.containers.get(production["container_id"])
    loaded = source.exec_run(["pgbench", "-i", "-q", "-s", str(ENDPOINT_SCALE), database], user="postgres")
    if loaded.exit_code != 0:
        raise RuntimeError(loaded.output.decode()[-1000:])
    runs = {}
    seconds = ["-T", str(ENDPOINT_SECONDS), "-c", "4", "-j", "2"]
    for label, options in (("select-only", ["-S"]), ("tpc-b", []), ("select-only -C", ["-S", "-C"]),
                           ("tpc-b -C", ["-C"])):
        direct = pgbench(client, image, production["port"], password, database, *seconds, *options)
        pooled = pgbench(client, image, endpoint["port"], password, database, *seconds, *options)
        runs[label] = {"direct_tps": direct["tps"], "endpoint_tps": pooled["tps"],
                       "endpoint_over_direct": round(pooled["tps"] / direct["tps"], 3)}
        print(json.dumps({label: runs[label]}), flush=True)
    module("branch", database=database, name="other")
    load_seconds = SWITCHES * 3 + 10
    pauses, failures = [], []
    result: dict = {}

    def load():
        result.update(pgbench(client, image, endpoint["port"], password, database, "-C", "-T", str(load_seconds),
                              "-c", "4", "-j", "2"))

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(4)
    for turn in range(SWITCHES):
        switched = module("branch", database=database, name="other" if turn % 2 == 0 else "production", state="default")
        pauses.append(switched["switch_pause_ms"])
        if not switched["switch_drained"]:
            failures.append(turn)
        time.sleep(1)
    thread.join()
    module("database", name=database, state="absent")
    ordered = sorted(pauses)
    return {"pgbench": runs, "switch": {"count": SWITCHES, "pause_ms": pauses, "p50_ms": ordered[len(ordered) // 2],
                                        "max_ms": ordered[-1], "not_drained": len(failures),
                                        "transactions": result["processed"], "failed_transactions": result["failed"],
                                        "tps_under_switches": result["tps"]}}


def endpoint_table(endpoint: dict) -> str:
    lines = ["| pgbench, 4 clients | direct TPS | through the endpoint | endpoint / direct |", "|---|---|---|---|"]
    for label, run in endpoint["pgbench"].items():
        lines.append(f"| {label} | {run['direct_tps']:.0f} | {run['endpoint_tps']:.0f} | {run['endpoint_over_direct']:.2f}x |")
    switch = endpoint["switch"]
    lines += ["", f"{switch['count']} switches under pgbench -C load through the endpoint: pause p50 "
              f"{switch['p50_ms']:.1f} ms, max {switch['max_ms']:.1f} ms; {switch['transactions']} transactions, "
              f"{switch['failed_transactions']} failed."]
    return "\n".join(lines)


def endpoint_plot(endpoint: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    labels = list(endpoint["pgbench"])
    positions = range(len(labels))
    left.bar([p - 0.2 for p in positions], [endpoint["pgbench"][k]["direct_tps"] for k in labels], 0.4, label="direct")
    left.bar([p + 0.2 for p in positions], [endpoint["pgbench"][k]["endpoint_tps"] for k in labels], 0.4,
             label="endpoint")
    left.set_xticks(list(positions), labels, rotation=15)
    left.set_ylabel("TPS")
    left.set_title("pgbench: branch port vs endpoint")
    left.legend()
    pauses = endpoint["switch"]["pause_ms"]
    right.plot(range(1, len(pauses) + 1), pauses, "o-")
    right.set_xlabel("switch")
    right.set_ylabel("pause (ms)")
    right.set_title("switch pause under pgbench -C load")
    right.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


MASKING_ROWS = 4_500_000  # about 1 GB with its indexes
MASK = {"people.email": "fake_email", "people.full_name": "fake_name", "people.phone": "keep_prefix:4",
        "people.national_id": "hash"}


def bench_masking(module: Module) -> dict:
    database = "benchmask"
    production = module("database", name=database, image=module.image)["branch"]
    with psycopg.connect(production["url"], autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, full_name text NOT NULL, "
                     "phone text, national_id text, notes text, region text NOT NULL)")
        conn.execute(f"INSERT INTO people SELECT g, 'person' || g || '@corp.example', 'Person Number ' || g, "
                     f"'+49 170 ' || lpad(g::text, 8, '0'), 'ID-' || md5(g::text), repeat(md5(g::text), 2), "
                     f"(ARRAY['eu', 'us', 'ap'])[1 + g % 3] FROM generate_series(1, {MASKING_ROWS}) g")
        conn.execute("CREATE INDEX people_name ON people (full_name)")
        conn.execute("VACUUM ANALYZE people")
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    runs = {}
    for label, name, args in (("snapshot", "plain", {"copy_method": "snapshot"}),
                              ("masked snapshot", "masked", {"copy_method": "snapshot", "mask": MASK}),
                              ("snapshot of the masked branch", "masked-child", {"source": "masked"}),
                              ("dump", "dumped", {"copy_method": "dump"}),
                              ("dump, filtered to 1%", "subset", {"filter": {"people": "id % 100 = 0"}})):
        result = module("branch", database=database, name=name, **args)
        runs[label] = {"seconds": result["copy_result"]["ready_seconds"], "wall_seconds": result["wall_seconds"],
                       "method": result["copy_result"]["method"]}
        print(label, runs[label], flush=True)
    base = runs["snapshot"]["seconds"]
    for run in runs.values():
        run["over_snapshot"] = round(run["seconds"] / base, 1)
    return {"database_bytes": size, "rows": MASKING_ROWS, "columns_masked": len(MASK), "runs": runs}


def masking_table(masking: dict) -> str:
    lines = [f"{masking['database_bytes'] / 2**30:.2f} GB, {masking['rows']} rows, {masking['columns_masked']} columns "
             "masked", "", "| branch | method | seconds to ready | / plain snapshot |", "|---|---|---|---|"]
    for label, run in masking["runs"].items():
        lines.append(f"| {label} | {run['method']} | {run['seconds']:.2f} | {run['over_snapshot']:.1f}x |")
    return "\n".join(lines)


def masking_plot(masking: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 3.6))
    labels = list(masking["runs"])
    axes.barh(labels, [masking["runs"][k]["seconds"] for k in labels])
    axes.set_xscale("log")
    axes.invert_yaxis()
    axes.set_xlabel("seconds to a branch accepting connections (log)")
    axes.set_title(f"masked and filtered branches of a {masking['database_bytes'] / 2**30:.1f} GB database")
    axes.grid(True, axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main_masking(image: str) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    with xfs_root(12) as root:
        module = Module({"state_dir": str(WORK / "state-masking"), "data_root": str(root), "port_range": PORTS})
        module.image = image
        try:
            masking = bench_masking(module)
        finally:
            module("database", name="benchmask", state="absent")
    save_part("masking", masking, masking_plot, masking_table)


def table(rows: list[dict]) -> str:
    methods = ["baseful", "hand-dump", "dump", "physical", "snapshot", "cp -a"]
    lines = ["| size | " + " | ".join(methods) + " | baseful / snapshot | physical / cp -a | dump / hand-dump |",
             "|---|" + "---|" * (len(methods) + 3)]
    for row in rows:
        cells = [f"{row[m]:.2f} s" for m in methods]
        ratios = [row["baseful"] / row["snapshot"], row["physical"] / row["cp -a"], row["dump"] / row["hand-dump"]]
        lines.append(f"| {row['database_bytes'] / 2**30:.2f} GB | " + " | ".join(cells) + " | "
                     + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8.5, 4.2))
    sizes = [r["database_bytes"] / 2**30 for r in rows]
    for method, style in (("baseful", "o-"), ("hand-dump", "s-"), ("dump", "v-"), ("physical", "^-"),
                          ("cp -a", "x--"), ("snapshot", "D-")):
        axes.plot(sizes, [r[method] for r in rows], style, label=method)
    axes.set_yscale("log")
    axes.set_xlabel("database size (GB, pgbench)")
    axes.set_ylabel("seconds to a branch accepting connections")
    axes.set_title("baseful.branching: time to a ready branch")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1,5"), help="GB, comma separated")
    parser.add_argument("--image", default=os.environ.get("BENCH_IMAGE", "postgres:17"))
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--only", choices=["endpoint", "masking"],
                        help="run this part alone, keeping the rest of results.json")
    args = parser.parse_args()
    if args.only == "endpoint":
        return main_endpoint(args.image)
    if args.only == "masking":
        return main_masking(args.image)
    sizes = [int(s) for s in args.sizes.split(",")]
    jobs = os.cpu_count() or 2
    WORK.mkdir(parents=True, exist_ok=True)
    client = docker.from_env()
    results = {"machine": {"cpus": jobs, "image": args.image}, "rows": []}
    with xfs_root(4 * max(sizes) + 8) as root:
        placement = {"state_dir": str(WORK / "state"), "data_root": str(root), "port_range": PORTS}
        module = Module(placement)
        try:
            for size in sizes:
                row = bench_size(size, args.image, module, root, client, jobs)
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
                if size != max(sizes):
                    module("database", name=f"bench{size}g", state="absent")
            largest = f"bench{max(sizes)}g"
            production = module("branch_info", database=largest)["branches"][0]
            source = client.containers.get(production["container_id"])
            results["stall"] = stall_during_snapshot(module, largest, source, production["url"])
            # The disk the branches hold is what deleting them frees: measured with them and right
            # after they are gone, so the source's own WAL growth or recycling during their creation
            # is not credited to them (a baseline taken before them was, and came out negative).
            for n in range(args.snapshots):
                module("branch", database=largest, name=f"snap-{n}", copy_method="snapshot")
            sh("sync")
            with_branches = used_bytes(root)
            for n in range(args.snapshots):
                module("branch", database=largest, name=f"snap-{n}", state="absent")
            sh("sync")
            extra = with_branches - used_bytes(root)
            results["snapshots"] = {"count": args.snapshots, "extra_bytes": extra,
                                    "extra_percent_of_source": round(100 * extra / results["rows"][-1]["data_dir_bytes"], 2)}
        finally:
            module("database", name=f"bench{max(sizes)}g", state="absent")
    out = HERE / "latest"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results["rows"], out / "plot.png")
    (out / "table.md").write_text(table(results["rows"]) + "\n")
    print(table(results["rows"]))
    print(f"snapshot under pgbench load: {results['stall']}")
    print(f"{args.snapshots} snapshot branches: {results['snapshots']}")
    main_endpoint(args.image)
    main_masking(args.image)


def main_endpoint(image: str) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    module = Module({"state_dir": str(WORK / "state-endpoint"), "port_range": PORTS})
    try:
        endpoint = bench_endpoint(module, docker.from_env(), image)
    finally:
        module("database", name="benchep", state="absent")
    save_part("endpoint", endpoint, endpoint_plot, endpoint_table)


def save_part(name: str, part: dict, plot_to, table_of) -> None:
    """One part's figures into results.json (keeping the others'), its plot <name>.png and table <name>.md."""
    out = HERE / "latest"
    out.mkdir(exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = part
    path.write_text(json.dumps(results, indent=2) + "\n")
    plot_to(part, out / f"{name}.png")
    (out / f"{name}.md").write_text(table_of(part) + "\n")
    print(table_of(part))


if __name__ == "__main__":
    main()
