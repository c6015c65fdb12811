"""Simulate one UTC day of the demo fleet into a raw directory (docs/raw-formats.md).

Work is split by node: a node's requests, power and meter files depend only on (seed, day,
node), drawn from their own random streams, so nodes can be simulated in any order or in
parallel processes and the files stay byte-identical. Site-level files (facility meter,
bills, register, prices) are written after, from the nodes' small per-interval totals.
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

from fleetsim import bills
from fleetsim.logs import LINE_CONFLICT, LINE_TRUNCATED, LinePlan, request_ids, write_request_log
from fleetsim.power import SECONDS, DcgmDefects, node_power, write_dcgm, write_ipmi_sdr, write_redfish
from fleetsim.spec import Fleet, FleetSpec, Node, largest_remainder
from fleetsim.text import COMPRESSION_SUFFIX
from fleetsim.traffic import STATUS_OK, generate_node_requests, tenant_weights

FAMILIES = ("inventory", "prices", "requests", "dcgm", "ipmi", "redfish", "facility", "focus", "electricity",
            "colocation", "assets")

# Defects injected when `defects=True`, at fixed counts.
EXACT_DUPLICATES = 3
BLANK_ENERGY_SAMPLES = 3
BMC_GAP_MINUTES = 20
BMC_GAP_START_MINUTE = 158  # 02:38 UTC, as in the Harvard dump


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
            rows.append(f"valid lines with a local UTC offset (converted, not quarantined): {self.local_offset_lines:,}")
        rows.append("invoices: " + ("written for the month" if self.invoices else "not this day (see fleetsim/README.md)"))
        return "\n".join(rows)


@dataclass
class _NodeJob:
    fleet: Fleet
    node: Node
    day: date
    seed: int
    per_tier: dict[str, int]
    tenants: list[np.ndarray]
    out_dir: Path
    defects: dict
    compress: str | None = None


@dataclass
class _NodeResult:
    node_id: str
    requests: int
    files: dict[str, list[str]]
    records: dict[str, int]
    lines: dict[str, int]
    node_energy_15min_j: np.ndarray
    egress_bytes_hour: np.ndarray
    local_offset_lines: int
    defect_log: list[dict]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _simulate_node(job: _NodeJob) -> _NodeResult:
    node, day, spec = job.node, job.day, job.fleet.spec
    streams = [np.random.default_rng(s) for s in
               np.random.SeedSequence([job.seed, day.toordinal(), node.index]).spawn(6)]
    r_traffic, r_power, r_dcgm, r_bmc, r_logs, r_defects = streams
    site_dir = job.out_dir / day.isoformat() / node.site.id
    files: dict[str, list[str]] = {}
    records: dict[str, int] = {}
    lines: dict[str, int] = {}
    log: list[dict] = []

    def add(family: str, path: Path, n_records: int, n_lines: int) -> None:
        files.setdefault(family, []).append(_rel(path, job.out_dir))
        records[family] = records.get(family, 0) + n_records
        lines[family] = lines.get(family, 0) + n_lines

    reqs = generate_node_requests(job.fleet, node, day, job.per_tier, job.tenants, r_traffic)
    power = node_power(reqs, r_power)

    # --- GPU telemetry ---
    n_scrapes = SECONDS // spec.dcgm_interval_s
    dcgm_defects = DcgmDefects()
    if job.defects.get("gpu_reboot"):
        dcgm_defects.reboot_gpu = min(3, node.pool.gpus - 1)
        dcgm_defects.reboot_at_scrape = int(n_scrapes * 0.55)
    if job.defects.get("blank_energy"):
        gpu = min(5, node.pool.gpus - 1)
        picks = np.sort(r_defects.choice(np.arange(10, n_scrapes - 10), job.defects["blank_energy"], replace=False))
        dcgm_defects.blank_energy = [(gpu, int(k)) for k in picks]
    path = site_dir / "dcgm" / f"dcgm_{node.id}_{day.isoformat()}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    rec, ln = write_dcgm(path, day, power, spec.dcgm_interval_s, r_dcgm, dcgm_defects)
    add("dcgm", path, rec, ln)
    if dcgm_defects.reboot_gpu is not None:
        log.append({"kind": "gpu_counter_reset", "file": _rel(path, job.out_dir),
                    "meter_id": f"{node.id}/gpu{dcgm_defects.reboot_gpu}", "scrape": dcgm_defects.reboot_at_scrape})
    for gpu, k in dcgm_defects.blank_energy:
        log.append({"kind": "dcgm_blank_energy", "file": _rel(path, job.out_dir), "meter_id": f"{node.id}/gpu{gpu}",
                    "scrape": k})

    # --- node BMC ---
    if node.pool.node_meter == "ipmi":
        gap = None
        if job.defects.get("bmc_gap"):
            gap = (BMC_GAP_START_MINUTE, BMC_GAP_START_MINUTE + job.defects["bmc_gap"] - 1)
        path = site_dir / "ipmi" / f"ipmi_sdr_{node.id}_{day.isoformat()}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec, ln = write_ipmi_sdr(path, day, power, spec.bmc_interval_s, r_bmc, gap)
        add("ipmi", path, rec, ln)
        if gap:
            log.append({"kind": "bmc_gap", "file": _rel(path, job.out_dir), "meter_id": f"{node.id}/bmc",
                        "blocks": gap[1] - gap[0] + 1, "first_block": gap[0]})
    elif node.pool.node_meter == "redfish":
        path = site_dir / "redfish" / f"redfish_{node.id}_{day.isoformat()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec, ln = write_redfish(path, day, power, spec.bmc_interval_s, r_bmc)
        add("redfish", path, rec, ln)

    # --- request log, with the shipper's defects ---
    n = len(reqs)
    plan = LinePlan.plain(n)
    ids = request_ids(reqs, day, r_logs)
    ok_rows = np.flatnonzero((reqs.status == STATUS_OK) & (reqs.output_tokens > 1))
    picks = iter(r_defects.permutation(ok_rows)) if len(ok_rows) >= 10 else iter(())
    path = site_dir / "requests" / f"{node.id}.jsonl{COMPRESSION_SUFFIX[job.compress] if job.compress else ''}"
    rel = _rel(path, job.out_dir)
    pending: list[tuple[str, int]] = []  # (kind, request row); line numbers found after insertion
    if job.defects.get("negative_output_tokens") and (r := next(picks, None)) is not None:
        reqs.output_tokens[r] = -reqs.output_tokens[r]
        pending.append(("negative_output_tokens", int(r)))
    if job.defects.get("malformed_line") and (r := next(picks, None)) is not None:
        plan.kind[r] = LINE_TRUNCATED
        pending.append(("malformed_line", int(r)))
    for _ in range(job.defects.get("exact_duplicates", 0)):
        if (r := next(picks, None)) is not None:
            at = int(np.flatnonzero(plan.row == r)[0])
            plan.insert_after(min(len(plan.row) - 1, at + int(r_defects.integers(1, 40))), int(r))
            pending.append(("exact_duplicate", int(r)))
    if job.defects.get("conflicting_duplicate") and (r := next(picks, None)) is not None:
        at = int(np.flatnonzero(plan.row == r)[0])
        plan.insert_after(min(len(plan.row) - 1, at + int(r_defects.integers(1, 40))), int(r), LINE_CONFLICT)
        pending.append(("conflicting_duplicate", int(r)))
    local_tz = node.site.timezone if job.defects.get("local_offset") else None
    path.parent.mkdir(parents=True, exist_ok=True)
    written = write_request_log(path, reqs, plan, spec, day, r_logs, ids=ids, local_tz=local_tz,
                                with_cache_field=node.site.kind != "cloud")
    add("requests", path, written, written)
    for kind, r in pending:
        at = (np.flatnonzero(plan.row == r) + 1).tolist()
        log.append({"kind": kind, "file": rel, "lines": at, "request_id": ids[r]})

    egress = np.bincount(np.minimum(reqs.end_ms // 3_600_000, 23), weights=reqs.response_bytes.clip(0), minlength=24)
    return _NodeResult(node.id, n, files, records, lines, power.energy_per_interval_j(900), egress,
                       written if local_tz else 0, log)


def _defect_targets(fleet: Fleet) -> dict[str, dict]:
    """Which node carries which defect: the first node of a pool, so they are easy to find."""
    def first(pool: str, k: int = 0) -> str | None:
        nodes = fleet.pool_nodes(pool)
        return nodes[min(k, len(nodes) - 1)].id if nodes else None

    targets: dict[str, dict] = {}
    for node_id, kind, value in (
        (first("premium-h200"), "gpu_reboot", 1),
        (first("premium-h200"), "negative_output_tokens", 1),
        (first("premium-h200", 1), "local_offset", 1),
        (first("cloud-h100"), "blank_energy", BLANK_ENERGY_SAMPLES),
        (first("cloud-h100"), "conflicting_duplicate", 1),
        (first("batch-l40s"), "bmc_gap", BMC_GAP_MINUTES),
        (first("batch-l40s"), "malformed_line", 1),
        (first("standard-l40s"), "exact_duplicates", EXACT_DUPLICATES),
    ):
        if node_id:
            targets.setdefault(node_id, {})[kind] = value
    return targets


def _split_requests(fleet: Fleet, day: date, seed: int) -> dict[str, dict[str, int]]:
    """Requests per node and tier, summing exactly to `fleet.requests`."""
    spec = fleet.spec
    raw = {(p, t.id): fleet.requests * t.share * s for t in spec.tiers for p, s in t.routing.items()}
    exact = largest_remainder({f"{p}|{t}": v for (p, t), v in raw.items()}, fleet.requests)
    rng = np.random.default_rng([seed, day.toordinal(), 0xB0A7])
    out: dict[str, dict[str, int]] = {n.id: {} for n in fleet.nodes}
    weights = {p.id: rng.uniform(0.85, 1.15, len(fleet.pool_nodes(p.id))) for p in spec.pools}
    for key in sorted(exact):
        pool, tier = key.split("|")
        nodes = fleet.pool_nodes(pool)
        w = weights[pool] / weights[pool].sum()
        for node, k in zip(nodes, rng.multinomial(exact[key], w)):
            out[node.id][tier] = int(k)
    return out


def write_inventory(path: Path, fleet: Fleet) -> int:
    from transforms.inventory import parse_inventory

    text = ("# The demo fleet, written by fleetsim (python -m fleetsim). Sized for "
            f"{fleet.requests:,} requests a day.\n"
            + yaml.safe_dump(fleet.inventory(), sort_keys=False, default_flow_style=None, width=140))
    parse_inventory(text, path)  # the simulator never writes an inventory the pipeline rejects
    path.write_text(text)
    return len(fleet.nodes)


def simulate(out_dir: Path, day: date, *, requests: int = 50_000, seed: int = 7, spec: FleetSpec | None = None,
             defects: bool = True, invoices: bool | None = None, workers: int | None = None,
             progress: Callable[[int, int, int], None] | None = None,
             compress: str | None = None) -> SimulationSummary:
    """Write one UTC day of the fleet's raw exports under `out_dir` (docs/raw-formats.md):
    `inventory.yaml`, `prices/<tariff>.csv` (merged with months already there) and
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

    files: dict[str, list[str]] = {f: [] for f in FAMILIES}
    records = dict.fromkeys(FAMILIES, 0)
    lines = dict.fromkeys(FAMILIES, 0)

    def add(family: str, path: Path, n_records: int, n_lines: int | None = None) -> None:
        files[family].append(_rel(path, out_dir))
        records[family] += n_records
        lines[family] += n_records + 1 if n_lines is None else n_lines  # CSV: rows + header

    inv = out_dir / "inventory.yaml"
    n_nodes = write_inventory(inv, fleet)
    add("inventory", inv, n_nodes, len(inv.read_text().splitlines()))

    targets = _defect_targets(fleet) if defects else {}
    split = _split_requests(fleet, day, seed)
    tenants = tenant_weights(fleet, np.random.default_rng([seed, 0x7E4A47]))
    jobs = [_NodeJob(fleet, n, day, seed, split[n.id], tenants, out_dir, targets.get(n.id, {}), compress)
            for n in fleet.nodes]
    if workers is None:
        workers = 1 if requests < 1_000_000 else min(2, os.cpu_count() or 1)
    results: list[_NodeResult] = []
    request_lines = 0

    def collect(res: _NodeResult) -> None:
        nonlocal request_lines
        results.append(res)
        for fam, paths in res.files.items():
            files[fam] += paths
            records[fam] += res.records[fam]
            lines[fam] += res.lines[fam]
        request_lines += res.records.get("requests", 0)
        if progress:
            progress(len(results), len(jobs), request_lines)

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for res in pool.map(_simulate_node, jobs):
                collect(res)
    else:
        for job in jobs:
            collect(_simulate_node(job))

    by_id = {r.node_id: r for r in results}
    facts: dict = {}

    # --- sites: facility meter and site energy (IT x PUE) ---
    site_kwh_15 = bills.sites_energy_kwh(spec, fleet, day, seed, {k: r.node_energy_15min_j for k, r in by_id.items()})
    for site in spec.sites:  # metro sites meter the whole facility
        if site.kind == "metro" and site.id in site_kwh_15:
            path = day_dir / site.id / "facility" / f"{site.id}_facility_{day.isoformat()}.csv"
            add("facility", path, bills.write_facility(path, site, f"{site.id}/facility", day, site_kwh_15[site.id], 15))

    # --- cloud bill (daily export) ---
    for site in spec.sites:
        if site.kind == "cloud" and fleet.site_nodes(site.id):
            path = day_dir / site.id / "focus" / f"focus_{site.id}_{day.isoformat()}.csv"
            egress = {n.id: by_id[n.id].egress_bytes_hour for n in fleet.site_nodes(site.id)}
            add("focus", path, bills.write_focus(path, fleet, site, day, egress))

    # --- asset register (daily ERP snapshot) ---
    path = day_dir / "_fleet" / "assets" / f"asset_register_{day.isoformat()}.csv"
    n_assets, asset_facts = bills.write_asset_register(path, fleet, day, seed)
    add("assets", path, n_assets)
    facts.update(asset_facts)

    # --- market prices (top level, merged across days) ---
    for site in spec.sites:
        if site.kind == "metro" and site.tariff:
            path = out_dir / "prices" / f"{site.tariff}.csv"
            add("prices", path, bills.write_prices(path, bills.market_prices(day, site.timezone, seed)))

    # --- monthly invoices: remote sites buy from a utility, metro sites rent colocation ---
    last_of_month = (day + timedelta(days=1)).day == 1
    write_invoices = invoices if invoices is not None else last_of_month
    for site in spec.sites if write_invoices else ():
        if site.kind == "remote" and site.id in site_kwh_15:
            path = day_dir / site.id / "electricity" / bills.electricity_invoice_name(day)
            inv_facts = bills.write_electricity_invoice(path, fleet, site, day, site_kwh_15[site.id], seed)
            add("electricity", path, inv_facts.rows)
            facts["electricity_invoice"] = {"kwh": round(inv_facts.kwh, 1), "demand_kw": inv_facts.demand_kw,
                                            "peak_at": inv_facts.peak_at,
                                            "peak_on_simulated_day": inv_facts.peak_on_simulated_day}
        if site.kind == "metro" and fleet.site_nodes(site.id):
            path = day_dir / site.id / "colocation" / f"COLO-ME-{day:%Y%m}.csv"
            add("colocation", path, bills.write_colocation_invoice(path, fleet, site, day))
    facts["site_kwh"] = {s: round(float(v.sum()), 1) for s, v in site_kwh_15.items()}

    # --- summary ---
    defect_log = [d for r in results for d in r.defect_log]
    counts: dict[str, int] = {}
    for d in defect_log:
        counts[d["kind"]] = counts.get(d["kind"], 0) + (d.get("blocks", 1))
    expected: dict[str, dict[str, int]] = {}
    req_q = {"exact_duplicate": counts.get("exact_duplicate", 0),
             "conflicting_duplicate": 2 * counts.get("conflicting_duplicate", 0),
             "malformed_record": counts.get("malformed_line", 0),
             "negative_value": counts.get("negative_output_tokens", 0)}
    pow_q = {"sensor_not_supported": counts.get("dcgm_blank_energy", 0),
             "sensor_no_reading": counts.get("bmc_gap", 0)}
    for ds, q in (("requests", req_q), ("power_readings", pow_q)):
        if any(q.values()):
            expected[ds] = {k: v for k, v in q.items() if v}
    all_files = [out_dir / f for fam in FAMILIES for f in files[fam]]
    return SimulationSummary(
        out_dir=out_dir, day=day, seed=seed, requests=requests,
        nodes={p.id: len(fleet.pool_nodes(p.id)) for p in spec.pools},
        files={f: len(v) for f, v in files.items() if v}, records={f: v for f, v in records.items() if files[f]},
        lines={f: v for f, v in lines.items() if files[f]},
        bytes=sum(p.stat().st_size for p in all_files), seconds=round(time.perf_counter() - started, 2),
        defects=counts, defect_log=defect_log, expected_quarantine=expected,
        local_offset_lines=sum(r.local_offset_lines for r in results), invoices=bool(write_invoices), facts=facts)
