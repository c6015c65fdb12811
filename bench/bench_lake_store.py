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
import hashlib
import json
import os
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
    args = p.parse_args()
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
    same = []
    with moto_server() as endpoint:
        server = _server_pid()
        for i in range(args.repeat):
            work = OUT / "work"
            shutil.rmtree(work, ignore_errors=True)
            store = new_bucket(endpoint)
            times["local"].append(_run(raw, str(work / "lake"), work / "local" / "w.duckdb", env, cpu["local"]))
            moto0 = _cpu_of(server)
            times["s3"].append(_run(raw, store.uri(), work / "s3" / "w.duckdb", {**env, **store.env}, cpu["s3"]))
            cpu["moto"].append(_cpu_of(server) - moto0)
            os.environ.update(store.env)
            same.append(_digests(Lake(work / "lake")) == _digests(Lake(store.uri())))
            print(f"run {i + 1}: local {times['local'][-1]:.1f} s ({cpu['local'][-1]:.1f} s CPU), s3 "
                  f"{times['s3'][-1]:.1f} s ({cpu['s3'][-1]:.1f} s CPU, moto {cpu['moto'][-1]:.1f} s CPU), ratio "
                  f"{times['s3'][-1] / times['local'][-1]:.2f}, marts and facts identical: {same[-1]}")
            shutil.rmtree(work, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["s3"] / best["local"]
    print(f"{n:,} requests: best local {best['local']:.1f} s, best s3 {best['s3']:.1f} s, ratio {ratio:.2f} "
          f"(goal <= 1.5: {'met' if ratio <= 1.5 else 'missed'})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"requests": n, "times": times, "cpu": cpu, "ratio": ratio, "identical": same},
                                    indent=2))
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
