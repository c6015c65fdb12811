"""The night with the lake on an object store against the lake on local disk (issue 20): the same
raw day, `inferledger run --date D` (ingest, attribution, marts, publish, every check) into a
fresh lake on local disk and into a fresh lake on a local S3 server (moto in server mode on
127.0.0.1, `tests/servers.py`), alternately, each in a fresh subprocess; prints the wall times,
their ratio (goal: within 1.5x), the CPU time of each run's processes and of the moto server
(its own Python work, which a store such as S3 or MinIO does elsewhere), and whether the marts
and facts are byte-identical.

    .venv/bin/python bench/bench_lake_store.py [--requests 1000000] [--repeat 1] [--json bench/out/lake_store.json]

The day is `marts_digest.py --bench`'s (fleetsim, seed 7, 2026-10-31, invoices), cached in
`bench/out/lake_store/raw-<N>/`. moto keeps its objects in memory (a 1 M day's lake is ~1 GB).
"""

import argparse
import collections
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

import fleetsim  # noqa: E402
from lake.store import Lake  # noqa: E402
from tests.servers import moto_server, new_bucket  # noqa: E402
from warehouse.tables import DAILY  # noqa: E402

DAY = date(2026, 10, 31)
OUT = BENCH_DIR / "out" / "lake_store"


def _digests(lake: Lake) -> dict[str, str]:
    paths = {t.name: lake.mart_path(t.name, DAY) for t in DAILY}
    paths["request_costs"] = lake.partition_file("request_costs", DAY)
    out = {}
    for name, path in paths.items():
        with lake.open_read(path) as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pid() -> int:
    """The moto server: this process's one child still running."""
    return int(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()[0])


REQUEST = re.compile(r'"(?:\x1b\[[\d;]*m)*(GET|PUT|POST|HEAD|DELETE) ([^ ?"]*)(\?[^ "]*)? HTTP')


def _area(path: str, query: str) -> str:
    """The lake's top folder a request is about (`request_costs`, `marts`, `_scratch`...)."""
    key = path.split("/", 3)[3] if path.count("/") >= 3 else ""
    if not key and "prefix=" in query:
        key = query.split("prefix=", 1)[1].split("&", 1)[0].replace("%2F", "/").split("/", 1)[-1]
    return key.split("/", 1)[0] or "(bucket)"


def requests_in(log: Path, start: int) -> dict[str, collections.Counter]:
    """The S3 requests in moto's log from byte `start`: by kind (GET, LIST, PUT...), and by kind
    and lake folder."""
    kinds, areas = collections.Counter(), collections.Counter()
    with open(log, "rb") as f:
        f.seek(start)
        for line in f.read().decode(errors="replace").splitlines():
            m = REQUEST.search(line)
            if not m:
                continue
            method, path, query = m.group(1), m.group(2), m.group(3) or ""
            kind = "LIST" if method == "GET" and ("list-type" in query or path.rstrip("/").count("/") <= 1) else method
            kind = "PUT part" if method == "PUT" and "partNumber" in query else kind
            kinds[kind] += 1
            areas[f"{kind} {_area(path, query)}"] += 1
    return {"kinds": kinds, "areas": areas}


def _io_of(pid: int) -> tuple[int, int]:
    """Bytes a process read and wrote through system calls (sockets included): /proc/PID/io."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["rchar"]), int(io["wchar"])


def _run(raw: Path, lake: str, warehouse: Path, env: dict, cpu: list[float]) -> float:
    started, cpu0 = time.perf_counter(), _cpu_children()
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--date", DAY.isoformat(), "--raw", str(raw),
                          "--lake", lake, "--warehouse", str(warehouse)], capture_output=True, text=True, env=env,
                         cwd=REPO)
    seconds = time.perf_counter() - started
    cpu.append(_cpu_children() - cpu0)
    if run.returncode != 0:
        sys.exit(f"inferledger run --lake {lake} failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n"
                 f"{run.stderr[-3000:]}")
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=float, default=1e6)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", type=Path, default=BENCH_DIR / "out" / "lake_store.json")
    p.add_argument("--moto-cpus", help="pin the moto server to these CPUs (taskset -c, e.g. 1)")
    args = p.parse_args()
    log = OUT / "moto.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    n = int(args.requests)
    raw = OUT / f"raw-{n}"
    if not (raw / "DONE").exists():
        shutil.rmtree(raw, ignore_errors=True)
        fleetsim.simulate(raw, DAY, requests=n, seed=7, invoices=True)
        (raw / "DONE").write_text("ok\n")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    times: dict[str, list[float]] = {"local": [], "s3": []}
    cpu: dict[str, list[float]] = {"local": [], "s3": [], "moto": []}
    same, counted = [], []
    with moto_server(log, args.moto_cpus) as endpoint:
        server = _server_pid()
        for i in range(args.repeat):
            work = OUT / "work"
            shutil.rmtree(work, ignore_errors=True)
            store = new_bucket(endpoint)
            (work / "tmp").mkdir(parents=True)  # each run a fresh worker: its scratch (and object cache) new
            env["TMPDIR"] = str(work / "tmp")
            times["local"].append(_run(raw, str(work / "lake"), work / "local" / "w.duckdb", env, cpu["local"]))
            moto0, io0, log0 = _cpu_of(server), _io_of(server), log.stat().st_size
            times["s3"].append(_run(raw, store.uri(), work / "s3" / "w.duckdb", {**env, **store.env}, cpu["s3"]))
            cpu["moto"].append(_cpu_of(server) - moto0)
            io1 = _io_of(server)
            counted.append({**requests_in(log, log0), "bytes_to_store": io1[0] - io0[0],
                            "bytes_from_store": io1[1] - io0[1]})
            os.environ.update(store.env)
            same.append(_digests(Lake(work / "lake")) == _digests(Lake(store.uri())))
            print(f"run {i + 1}: local {times['local'][-1]:.1f} s ({cpu['local'][-1]:.1f} s CPU), s3 "
                  f"{times['s3'][-1]:.1f} s ({cpu['s3'][-1]:.1f} s CPU, moto {cpu['moto'][-1]:.1f} s CPU), ratio "
                  f"{times['s3'][-1] / times['local'][-1]:.2f}, marts and facts identical: {same[-1]}")
            c = counted[-1]
            print(f"  S3 requests: {dict(sorted(c['kinds'].items()))}; to the store "
                  f"{c['bytes_to_store'] / 1e6:.0f} MB, "
                  f"from it {c['bytes_from_store'] / 1e6:.0f} MB")
            print("  by folder: " + ", ".join(f"{k} {v}" for k, v in sorted(c["areas"].items())))
            shutil.rmtree(work, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["s3"] / best["local"]
    print(f"{n:,} requests: best local {best['local']:.1f} s, best s3 {best['s3']:.1f} s, ratio {ratio:.2f} "
          f"(goal <= 1.5: {'met' if ratio <= 1.5 else 'missed'})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"requests": n, "times": times, "cpu": cpu, "ratio": ratio, "identical": same,
                                    "s3_requests": counted},
                                    indent=2))
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
