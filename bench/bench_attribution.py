"""Benchmark of the attribution step alone (issue 3): the lake's Parquet in, per-request cost facts
out as Parquet, against energy-only references a user might write instead (bench/references.py).

    .venv/bin/python bench/bench_attribution.py [--sizes 1e6,1e7,3e7] [--cases full,pandas,polars]
        [--repeat N] [--profile [SIZES]] [--timeout 900] [--mem-limit-gib 16] [--json PATH]

For each size (requests a day) the synthetic lake `bench/out/lake-<N>` is generated once
(bench/synth_lake.py) and reused. Every case then runs in a fresh subprocess, so the peak
memory it reports (its own VmHWM) is the case's alone:

- `full`: `pipelines.attribution.attribute_partition` — every cost type, true-ups,
  reconciliation and conservation checks, the eight outputs written to the lake as Parquet;
- `pandas`, `polars`: IT energy alone (bench/references.py), Parquet to Parquet.

A child runs under `RLIMIT_AS` (`--mem-limit-gib`) and is killed after `--timeout` seconds; a
case that hits either is recorded as did not finish, with the reason. Timings exclude
interpreter start and imports (the case's call alone); peak memory is the whole child's. The
CPU other processes used meanwhile is recorded with each case (`others`), and the hash of
the code under test (`source`).
`--profile` adds a `profile` child per size: the full attribution with every collect (each
`materialize` stage of transforms/attribution/, the collect of the outputs), every sink
and every lake write timed, with its peak resident memory, by wrapping Polars' and the lake's
entry points in that process only (transforms/ and pipelines/ are untouched).

Prints a table (size, case, seconds, requests/s, peak MiB, time ratio to the full attribution)
and the goals of issue 3, and writes `bench/out/attribution.json`.
"""

import argparse
import json
import linecache
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, UTC
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from fingerprint import code_fingerprint  # noqa: E402

OUT_DIR = BENCH_DIR / "out"
CASES = ("full", "pandas", "polars")
GIB = 1 << 30

# Goals of issue 3 (the 2-core machine).
GOAL_RPS_AT_10M = 3_000_000
GOAL_PEAK_GIB = {10_000_000: 1.5, 100_000_000: 4.0}
GOAL_FASTER_AT = (10_000_000, 30_000_000)


# --- children ------------------------------------------------------------------------------------

def _rss_mib() -> dict:
    """Current and peak resident memory of this process (MiB), from /proc."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                fields[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss_mib": round(fields["VmRSS"], 1), "peak_mib": round(fields["VmHWM"], 1)}


def _reset_peak() -> None:
    """Restart the peak resident memory (VmHWM) at the current RSS (Linux `clear_refs` 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_full(n: int) -> dict:
    from synth_lake import BenchLake  # noqa: PLC0415 (child process only: the parent stays small)

    from pipelines.attribution import attribute_partition  # noqa: PLC0415 (child process only: the parent stays small)

    bench = BenchLake(OUT_DIR / f"lake-{n}", n)
    inventory = bench.inventory()
    started = time.perf_counter()
    out = attribute_partition(bench.day, bench.lake, inventory)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": out.requests}


def run_reference(name: str, n: int) -> dict:
    from references import REFERENCES  # noqa: PLC0415 (child process only: the parent stays small)
    from synth_lake import BenchLake  # noqa: PLC0415 (child process only: the parent stays small)

    bench = BenchLake(OUT_DIR / f"lake-{n}", n)
    target = bench.root / f"reference-{name}.parquet"
    started = time.perf_counter()
    rows = REFERENCES[name](bench.files("requests"), bench.files("power_readings"), bench.day, target)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def run_profile(n: int) -> dict:
    """The full attribution with every collect, sink and lake write timed, with its peak
    resident memory (see the module docstring). Only Polars' and the lake's entry points are
    wrapped, so the profile follows whatever shape transforms/ and pipelines/ have."""
    import polars as pl  # noqa: PLC0415 (child process only: the parent stays small)
    from synth_lake import BenchLake  # noqa: PLC0415 (child process only: the parent stays small)

    import pipelines.attribution as attribution  # noqa: PLC0415 (child process only: the parent stays small)
    from lake.store import Lake  # noqa: PLC0415 (child process only: the parent stays small)

    stages: list[dict] = []
    repo = str(BENCH_DIR.parent) + os.sep

    def call_site() -> str:
        """`file:line code` of the project code that asked (not Polars, not this file)."""
        f = sys._getframe(2)
        while f and (f.f_code.co_name == "materialize" or os.sep + "polars" + os.sep in f.f_code.co_filename
                     or f.f_code.co_filename == __file__):
            f = f.f_back
        if f is None:
            return "?"
        where = f.f_code.co_filename.removeprefix(repo)
        return f"{where}:{f.f_lineno} {linecache.getline(f.f_code.co_filename, f.f_lineno).strip()}"

    depth = [0]

    def timed(kind: str, fn, label=None):
        def wrapper(*args, **kwargs):
            if depth[0]:  # inside a timed call (a lake write sinking a frame): the outer one counts
                return fn(*args, **kwargs)
            site = label(*args) if label else call_site()
            _reset_peak()
            depth[0] += 1
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                depth[0] -= 1
            seconds = time.perf_counter() - started
            frames = [f for f in (result if isinstance(result, list) else [result]) if isinstance(f, pl.DataFrame)]
            stages.append({"kind": kind, "stage": site, "seconds": round(seconds, 3),
                           "rows": [f.height for f in frames],
                           "result_mib": round(sum(f.estimated_size() for f in frames) / 2**20, 1), **_rss_mib()})
            return result
        return wrapper

    pl.collect_all = timed("collect_all", pl.collect_all)
    pl.LazyFrame.collect = timed("collect", pl.LazyFrame.collect)
    pl.LazyFrame.sink_parquet = timed("sink", pl.LazyFrame.sink_parquet)
    Lake.write = timed("write", Lake.write, label=lambda self, lf, dataset, *a: f"Lake.write {dataset}")
    if hasattr(Lake, "adopt"):
        Lake.adopt = timed("write", Lake.adopt, label=lambda self, path, dataset, *a: f"Lake.adopt {dataset}")
    # Building the inputs only plans scans (its collects, if any, are timed inside it).
    attribution.load_day_inputs = timed("inputs", attribution.load_day_inputs, label=lambda *a: "load_day_inputs")

    bench = BenchLake(OUT_DIR / f"lake-{n}", n)
    inventory = bench.inventory()
    started = time.perf_counter()
    out = attribution.attribute_partition(bench.day, bench.lake, inventory)
    seconds = time.perf_counter() - started
    # Each stage restarted the peak (clear_refs), so the run's peak is the largest stage peak.
    peak = max([s["peak_mib"] for s in stages] + [_rss_mib()["peak_mib"]])
    return {"seconds": seconds, "rows": out.requests, "stages": stages, "peak_mib": peak}


def run_check(n: int) -> dict:
    """How the references' energy compares with the engine's `it_energy_j` per request."""
    import polars as pl  # noqa: PLC0415 (child process only: the parent stays small)
    from synth_lake import BenchLake  # noqa: PLC0415 (child process only: the parent stays small)

    bench = BenchLake(OUT_DIR / f"lake-{n}", n)
    facts = pl.scan_parquet(bench.files("request_costs")).select("request_id", pl.col("it_energy_j").alias("engine"))
    out = {"engine_total_j": facts.select(pl.col("engine").sum()).collect().item()}
    for name in ("pandas", "polars"):
        path = bench.root / f"reference-{name}.parquet"
        if not path.exists():
            continue
        rel = (pl.col("it_energy_j") / pl.col("engine") - 1).abs()
        j = (facts.join(pl.scan_parquet(path), on="request_id", how="left").filter(pl.col("engine") > 0)
             .select(pl.col("it_energy_j").sum().alias("total_j"), rel.median().alias("median_rel_diff"),
                     rel.quantile(0.99).alias("p99_rel_diff"), pl.col("it_energy_j").null_count().alias("missing"))
             .collect().row(0, named=True))
        out[name] = j
    return out


def run_lake(n: int, seed: int, regenerate: bool) -> dict:
    from synth_lake import GENERATOR_CODE, ensure_lake  # noqa: PLC0415 (child process only: the parent stays small)

    bench = ensure_lake(n, OUT_DIR, seed=seed, regenerate=regenerate, log=lambda m: print(m, flush=True))
    return {"root": str(bench.root), **bench.manifest, "generator_now": code_fingerprint(*GENERATOR_CODE)}


def child_main(args: argparse.Namespace) -> None:
    source = source_fingerprint()
    if args.mem_limit_gib:
        limit = int(args.mem_limit_gib * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if args.case == "lake":
        result = run_lake(args.n, args.seed, args.regenerate)
    elif args.case == "full":
        result = run_full(args.n)
    elif args.case == "profile":
        result = run_profile(args.n)
    elif args.case == "check":
        result = run_check(args.n)
    else:
        result = run_reference(args.case, args.n)
    import polars as pl  # noqa: PLC0415 (child process only: the parent stays small)

    # This process's own peak RSS: a child's ru_maxrss also counts its parent's RSS at fork.
    result.setdefault("peak_mib", _rss_mib()["peak_mib"])
    result["polars_version"] = pl.__version__
    result["source"] = source if source_fingerprint() == source else f"{source}, changed during the run"
    Path(args.result).write_text(json.dumps(result))


# --- the parent ----------------------------------------------------------------------------------

def run_case(case: str, n: int, *, timeout_s: float, mem_limit_gib: float, seed: int = 7,
             regenerate: bool = False) -> dict:
    """Run one case in a fresh interpreter; its time, rows and peak RSS, or why it did not finish.
    Peak RSS is the child's VmHWM at its end; for a child that did not finish, its `ru_maxrss`
    (which may include this small parent's RSS at fork)."""
    result_path = OUT_DIR / f".result-{case}-{n}.json"
    log_path = OUT_DIR / f"{case}-{n}.log"
    result_path.unlink(missing_ok=True)
    source = source_fingerprint()
    cmd = [sys.executable, __file__, "--case", case, "--n", str(n), "--result", str(result_path),
           "--mem-limit-gib", str(mem_limit_gib), "--seed", str(seed), *(["--regenerate"] if regenerate else [])]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH_DIR.parent)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        started, busy_before = time.perf_counter(), _cpu_busy_s()
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, not all children's
        wall, busy = time.perf_counter() - started, _cpu_busy_s() - busy_before
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    # CPU the rest of the machine used meanwhile, as a share of all its CPUs: other work on a
    # 2-core box skews every figure, so it is recorded with each one.
    others = max(0.0, busy - usage.ru_utime - usage.ru_stime) / (wall * (os.cpu_count() or 1))
    row = {"case": case, "requests": n, "peak_mib": round(usage.ru_maxrss / 1024, 1), "process_s": round(wall, 2),
           "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "other_load": round(others, 3), "source": source}
    if timed_out.is_set():
        return {**row, "finished": False, "reason": f"timeout after {timeout_s:.0f} s"}
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text().strip().splitlines()[-3:]
        oom = any(s in " ".join(tail) for s in ("MemoryError", "memory allocation", "Cannot allocate", "bad_alloc"))
        why = (f"out of memory (address space limited to {mem_limit_gib:g} GiB)" if oom
               else f"exit status {proc.returncode}")
        return {**row, "finished": False, "reason": f"{why}: {' | '.join(tail)[-300:]} (log: {log_path})"}
    result = json.loads(result_path.read_text())
    result_path.unlink()
    row = {**row, "finished": True, **result}
    if "seconds" in result:
        row["requests_per_s"] = round(n / result["seconds"])
    return row


def _cpu_busy_s() -> float:
    """Seconds of CPU the whole machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _fmt_size(n: int) -> str:
    return f"{n / 1e6:g}M"


def print_table(rows: list[dict]) -> None:
    full = {r["requests"]: r for r in rows if r["case"] == "full" and r["finished"]}
    print(f"\n{'size':>6} {'case':<8} {'seconds':>9} {'requests/s':>12} {'peak MiB':>10} {'x full':>8} {'others':>7}")
    for r in rows:
        if r["case"] not in CASES:
            continue
        if not r["finished"]:
            print(f"{_fmt_size(r['requests']):>6} {r['case']:<8} {'DNF':>9} {'-':>12} {r['peak_mib']:>10,.0f} "
                  f"{'-':>8} {r['other_load']:>7.0%}  {r['reason'][:90]}")
            continue
        base = full.get(r["requests"])
        ratio = f"{r['seconds'] / base['seconds']:.2f}" if base else "-"
        print(f"{_fmt_size(r['requests']):>6} {r['case']:<8} {r['seconds']:>9.2f} {r['requests_per_s']:>12,} "
              f"{r['peak_mib']:>10,.0f} {ratio:>8} {r['other_load']:>7.0%}")


def evaluate_goals(rows: list[dict]) -> list[dict]:
    """The goals of issue 3 that this run measured, each met or not."""
    by = {(r["requests"], r["case"]): r for r in rows}
    goals = []
    for n in GOAL_FASTER_AT:
        full = by.get((n, "full"))
        for ref in ("pandas", "polars"):
            other = by.get((n, ref))
            if full and other:
                met = full["finished"] and (not other["finished"] or full["seconds"] < other["seconds"])
                said = lambda r: f"{r['seconds']:.1f} s" if r["finished"] else "did not finish"  # noqa: E731
                goals.append({"goal": f"full faster than {ref} (energy only) at {_fmt_size(n)}", "met": met,
                              "measured": f"full {said(full)} vs {ref} {said(other)}"})
    full = by.get((10_000_000, "full"))
    if full:
        rps = full.get("requests_per_s") or 0
        goals.append({"goal": f">= {GOAL_RPS_AT_10M / 1e6:g} M requests/s at 10M", "met": rps >= GOAL_RPS_AT_10M,
                      "measured": f"{rps / 1e6:.2f} M requests/s"})
    for n, gib in GOAL_PEAK_GIB.items():
        full = by.get((n, "full"))
        if full:
            goals.append({"goal": f"peak memory < {gib:g} GiB at {_fmt_size(n)}",
                          "met": full["finished"] and full["peak_mib"] < gib * 1024,
                          "measured": f"{full['peak_mib'] / 1024:.2f} GiB"})
    return goals


def print_profile(n: int, profile: dict) -> None:
    print(f"\nprofile of the full attribution at {_fmt_size(n)}: {profile['seconds']:.2f} s, "
          f"peak {profile['peak_mib']:,.0f} MiB")
    print(f"{'seconds':>8} {'share':>6} {'peak MiB':>9} {'RSS after':>9} {'result MiB':>10} {'rows':>11}  stage")
    for s in profile["stages"]:
        rows = ",".join(f"{r:,}" for r in s["rows"][:2]) + (",…" if len(s["rows"]) > 2 else "")
        print(f"{s['seconds']:>8.2f} {s['seconds'] / profile['seconds']:>6.1%} {s['peak_mib']:>9,.0f} "
              f"{s['rss_mib']:>9,.0f} {s['result_mib']:>10,.1f} {rows:>11}  {s['stage'][:110]}")
    rest = profile["seconds"] - sum(s["seconds"] for s in profile["stages"])
    print(f"{rest:>8.2f} {rest / profile['seconds']:>6.1%} {'':>9} {'':>9} {'':>10} {'':>11}  "
          "everything else (planning, inventory frames, checks)")


def source_fingerprint() -> str:
    """A short hash of the code under test, to tie figures to a version of it and to notice
    the code changing during a run."""
    return code_fingerprint("transforms", "pipelines", "fleetsim")


def measure(case: str, n: int, args: argparse.Namespace) -> dict:
    """`case` run `--repeat` times, each in a fresh child: the median time, the largest peak."""
    runs = []
    for _ in range(args.repeat):
        runs.append(run_case(case, n, timeout_s=args.timeout, mem_limit_gib=args.mem_limit_gib, seed=args.seed))
        if not runs[-1]["finished"]:
            return runs[-1]
    seconds = sorted(r["seconds"] for r in runs)
    median = seconds[len(seconds) // 2] if len(seconds) % 2 else sum(seconds[len(seconds) // 2 - 1:][:2]) / 2
    return {**runs[0], "seconds": round(median, 3), "requests_per_s": round(n / median),
            "peak_mib": max(r["peak_mib"] for r in runs), "runs_s": [round(r["seconds"], 3) for r in runs],
            "other_load": max(r["other_load"] for r in runs)}


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e6,1e7,3e7", help="requests a day, comma-separated (1e8 allowed)")
    ap.add_argument("--cases", default=",".join(CASES), help="full, pandas, polars (comma-separated)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (fresh child each); the median is reported")
    ap.add_argument("--profile", nargs="?", const="all", metavar="SIZES",
                    help="also a stage breakdown of the full attribution (at every size, or at SIZES)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a case is killed (default 15 min)")
    ap.add_argument("--mem-limit-gib", type=float, default=16.0, help="address-space limit of each case, GiB (0: none)")
    ap.add_argument("--profile-mem-limit-gib", type=float, help="the same for the profile (default: --mem-limit-gib)")
    ap.add_argument("--json", type=Path, default=OUT_DIR / "attribution.json", help="where to write the results")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--regenerate", action="store_true", help="build the lakes again even when present")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        child_main(args)
        return

    sizes = _sizes(args.sizes)
    profile_sizes = set(sizes if args.profile == "all" else _sizes(args.profile or ""))
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(CASES)}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    lakes: dict[int, dict] = {}
    profiles: dict[int, dict] = {}
    for n in sizes:
        # The lake is generated (or found) in a child too: this process stays small.
        lake = run_case("lake", n, timeout_s=24 * 3600, mem_limit_gib=0, seed=args.seed, regenerate=args.regenerate)
        if not lake["finished"]:
            sys.exit(f"could not generate the lake for {n:,} requests: {lake['reason']}")
        lakes[n] = {k: lake[k] for k in ("root", "generator", "nodes", "nodes_by_pool", "rows", "bytes", "generated_s")}
        print(f"lake for {_fmt_size(n)} requests/day: {lake['root']} ({lake['nodes']} nodes, "
              f"generated in {lake['generated_s']} s)", flush=True)
        if lake.get("generator") != lake["generator_now"]:
            print(f"  note: generated by other code than today's (generator {lake.get('generator')}, now "
                  f"{lake['generator_now']}); reused as its schemas fit, --regenerate rebuilds it", flush=True)
        for case in cases:
            r = measure(case, n, args)
            rows.append(r)
            busy = (f"  (other processes used {r['other_load']:.0%} of the CPUs meanwhile)" if r["other_load"] > 0.05
                    else "")
            print(f"  {case:<8} " + (f"{r['seconds']:8.2f} s  {r['requests_per_s']:>12,} req/s  "
                                     f"{r['peak_mib']:>8,.0f} MiB peak"
                                     if r["finished"] else f"did not finish: {r['reason']}") + busy, flush=True)
        full_done = any(r["finished"] for r in rows if r["case"] == "full" and r["requests"] == n)
        if full_done and any(c in cases for c in ("pandas", "polars")):
            check = run_case("check", n, timeout_s=args.timeout, mem_limit_gib=0)
            if check["finished"]:
                agreement = {k: check[k] for k in ("engine_total_j", "pandas", "polars") if k in check}
                lakes[n]["reference_agreement"] = agreement
                for ref in ("pandas", "polars"):
                    if ref in agreement:
                        a = agreement[ref]
                        print(f"  {ref} energy vs the engine's it_energy_j: total "
                              f"{a['total_j'] / agreement['engine_total_j'] - 1:+.2%}, per request median |diff| "
                              f"{a['median_rel_diff']:.1%}, p99 {a['p99_rel_diff']:.1%}, {a['missing']:,} missing",
                              flush=True)
        if n in profile_sizes:
            limit = args.mem_limit_gib if args.profile_mem_limit_gib is None else args.profile_mem_limit_gib
            p = run_case("profile", n, timeout_s=args.timeout, mem_limit_gib=limit)
            if p["finished"]:
                profiles[n] = p
                print_profile(n, p)
            else:
                print(f"  profile did not finish: {p['reason']}")

    print_table(rows)
    sources = sorted({r["source"] for r in rows + list(profiles.values()) if r.get("source")})
    print(f"\ncode under test (transforms/, pipelines/, fleetsim/): {', '.join(sources) or '-'}")
    if len(sources) > 1:
        print("WARNING: the code changed between or during cases; figures of different versions are mixed")
    if any(r["other_load"] > 0.05 for r in rows):
        print("WARNING: other processes used the CPUs during some cases (column `others`): their times are inflated")
    goals = evaluate_goals(rows)
    if goals:
        print("\ngoals (issue 3):")
        for g in goals:
            print(f"  [{'met' if g['met'] else 'MISSED'}] {g['goal']}: {g['measured']}")
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "polars": next((r["polars_version"] for r in rows if r.get("polars_version")), None),
                    "mem_limit_gib": args.mem_limit_gib, "timeout_s": args.timeout, "repeat": args.repeat},
        "source": sources, "results": rows, "goals": goals, "lakes": {str(k): v for k, v in lakes.items()},
        "profiles": {str(k): v for k, v in profiles.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
