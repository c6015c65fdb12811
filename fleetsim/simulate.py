"""Simulate one UTC day of the demo fleet into a raw directory (docs/raw-formats.md).

Work is split by node (`fleetsim.node`): a node's requests, power and meter files depend only on
(seed, day, node), drawn from their own random streams, so nodes can be simulated in any order
or in parallel processes and the files stay byte-identical. Site-level files (facility meter,
bills, register, prices: `fleetsim.sites`) are written after, from the nodes' small
per-interval totals.
"""

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml

from fleetsim.defects import count_defects, defect_targets, expected_quarantine
from fleetsim.profiles import PROFILES_CSV
from fleetsim.node import FileTally, NodeJob, NodeResult, simulate_node
from fleetsim.sites import write_site_files
from fleetsim.spec import Fleet, FleetSpec
from fleetsim.text import COMPRESSION_SUFFIX
from fleetsim.traffic import split_requests, tenant_weights
from transforms.inventory import parse_inventory

FAMILIES = ("inventory", "profiles", "prices", "requests", "dcgm", "ipmi", "redfish", "facility", "focus",
            "electricity", "colocation", "assets")


@dataclass
class SimulationSummary:
    """What one simulated day wrote. `records` counts what the ingest reads as rows (request
    lines, DCGM power/energy samples, IPMI `Timestamp:` blocks, Redfish lines, CSV data rows);
    `lines` counts every physical line. `defects` holds the injected defects by kind and
    `expected_quarantine` what the ingest must quarantine for them, by dataset and reason."""

    out_dir: Path
    day: date
    seed: int
    requests: int
    nodes: dict[str, int]
    files: dict[str, int]
    records: dict[str, int]
    lines: dict[str, int]
    bytes: int
    seconds: float
    defects: dict[str, int]
    defect_log: list[dict]
    expected_quarantine: dict[str, dict[str, int]]
    local_offset_lines: int
    invoices: bool
    facts: dict = field(default_factory=dict)

    def describe(self) -> str:
        rows = [f"fleetsim {self.day} seed {self.seed}: {self.requests:,} requests on "
                f"{sum(self.nodes.values())} nodes ({', '.join(f'{p} {n}' for p, n in self.nodes.items())})",
                f"{'family':<12}{'files':>7}{'records':>13}{'lines':>13}"]
        rows += [f"{f:<12}{self.files.get(f, 0):>7,}{self.records.get(f, 0):>13,}{self.lines.get(f, 0):>13,}"
                 for f in FAMILIES if self.files.get(f)]
        rows.append(f"{'total':<12}{sum(self.files.values()):>7,}{sum(self.records.values()):>13,}"
                    f"{sum(self.lines.values()):>13,}   {self.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s")
        if self.defects:
            rows.append("defects: " + ", ".join(f"{k} {v}" for k, v in self.defects.items()))
            rows.append("quarantine expected: " + "; ".join(
                f"{ds}: " + ", ".join(f"{r} {n}" for r, n in reasons.items())
                for ds, reasons in self.expected_quarantine.items()))
        if self.local_offset_lines:
            rows.append("valid lines with a local UTC offset (converted, not quarantined): "
                        f"{self.local_offset_lines:,}")
        rows.append("invoices: " + ("written for the month" if self.invoices
                                    else "not this day (see fleetsim/README.md)"))
        return "\n".join(rows)


def write_inventory(path: Path, fleet: Fleet) -> int:
    text = ("# The demo fleet, written by fleetsim (python -m fleetsim). Sized for "
            f"{fleet.requests:,} requests a day.\n"
            + yaml.safe_dump(fleet.inventory(), sort_keys=False, default_flow_style=None, width=140))
    parse_inventory(text, path)  # the simulator never writes an inventory the pipeline rejects
    path.write_text(text)
    return len(fleet.nodes)


def write_profiles(out_dir: Path) -> Path:
    """The fleet's performance profiles (`fleetsim/profiles.csv`, the canonical profile CSV) at
    `<raw>/profiles/demo.csv`: fleet-wide, outside the day folders, rewritten each day."""
    path = out_dir / "profiles" / "demo.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PROFILES_CSV.read_bytes())
    return path


def _simulate_nodes(jobs: list[NodeJob], workers: int, written: FileTally,
                    progress: Callable[[int, int, int], None] | None) -> list[NodeResult]:
    """Every node's files, in `workers` processes (spawned) or in this one; their results in the
    order of `jobs`, each counted in `written` and reported to `progress` as it comes."""
    results: list[NodeResult] = []
    request_lines = 0

    def collect(res: NodeResult) -> None:
        nonlocal request_lines
        results.append(res)
        written.merge(res.written)
        request_lines += res.written.records.get("requests", 0)
        if progress:
            progress(len(results), len(jobs), request_lines)

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for res in pool.map(simulate_node, jobs):
                collect(res)
    else:
        for job in jobs:
            collect(simulate_node(job))
    return results


def simulate(out_dir: Path, day: date, *, requests: int = 50_000, seed: int = 7, spec: FleetSpec | None = None,
             defects: bool = True, invoices: bool | None = None, workers: int | None = None,
             progress: Callable[[int, int, int], None] | None = None,
             compress: str | None = None) -> SimulationSummary:
    """Write one UTC day of the fleet's raw exports under `out_dir` (docs/raw-formats.md):
    `inventory.yaml`, `profiles/demo.csv` (the performance profiles the fleet is simulated from),
    `prices/<tariff>.csv` (merged with months already there) and
    `<day>/...` (replaced if it exists).

    `requests`: requests that day (10 thousand to 100 million); the fleet grows with it.
    `invoices`: write the month's electricity and colocation invoices in this day's folder;
    None (default) writes them only when `day` is the last day of its month.
    `workers`: processes simulating nodes; default 1 below a million requests, else 2.
    `progress(nodes_done, nodes_total, request_lines)` is called after each node.
    `compress`: "zstd" or "gzip" writes the request logs compressed (`<node>.jsonl.zst`,
    `.jsonl.gz`; a day of 100 million requests is ~120 GB plain); their content is the same bytes.
    Deterministic: the same arguments give byte-identical files."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    spec = spec or FleetSpec()
    if spec.expansion_day is None:
        spec = replace(spec, expansion_day=day)
    if requests < 1:
        raise ValueError(f"requests must be at least 1, got {requests}")
    if compress is not None and compress not in COMPRESSION_SUFFIX:
        raise ValueError(f"compress must be one of {sorted(COMPRESSION_SUFFIX)} or None, got {compress!r}")
    fleet = Fleet.build(spec, requests)
    day_dir = out_dir / day.isoformat()
    if day_dir.exists():
        shutil.rmtree(day_dir)
    day_dir.mkdir(parents=True)
    written = FileTally(out_dir)

    inv = out_dir / "inventory.yaml"
    n_nodes = write_inventory(inv, fleet)
    written.add("inventory", inv, n_nodes, len(inv.read_text().splitlines()))
    prof = write_profiles(out_dir)
    written.add("profiles", prof, len(prof.read_text().splitlines()) - 1)

    targets = defect_targets(fleet) if defects else {}
    split = split_requests(fleet, day, seed)
    tenants = tenant_weights(fleet, np.random.default_rng([seed, 0x7E4A47]))
    jobs = [NodeJob(fleet, n, day, seed, split[n.id], tenants, out_dir, targets.get(n.id, {}), compress)
            for n in fleet.nodes]
    if workers is None:
        workers = 1 if requests < 1_000_000 else min(2, os.cpu_count() or 1)
    results = _simulate_nodes(jobs, workers, written, progress)

    last_of_month = (day + timedelta(days=1)).day == 1
    write_invoices = invoices if invoices is not None else last_of_month
    facts = write_site_files(out_dir, day, fleet, seed, {r.node_id: r for r in results}, written, write_invoices)

    defect_log = [d for r in results for d in r.defect_log]
    counts = count_defects(defect_log)
    files = {f: len(written.files[f]) for f in FAMILIES if written.files.get(f)}
    all_files = [out_dir / f for fam in FAMILIES for f in written.files.get(fam, [])]
    return SimulationSummary(
        out_dir=out_dir, day=day, seed=seed, requests=requests,
        nodes={p.id: len(fleet.pool_nodes(p.id)) for p in spec.pools},
        files=files, records={f: written.records[f] for f in files}, lines={f: written.lines[f] for f in files},
        bytes=sum(p.stat().st_size for p in all_files), seconds=round(time.perf_counter() - started, 2),
        defects=counts, defect_log=defect_log, expected_quarantine=expected_quarantine(counts),
        local_offset_lines=sum(r.local_offset_lines for r in results), invoices=bool(write_invoices), facts=facts)
