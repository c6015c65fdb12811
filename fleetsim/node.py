"""One node's files of the day: its GPU telemetry (DCGM), its node meter (IPMI or Redfish) and
its request log, with the defects it carries.

A node's files depend only on (seed, day, node), drawn from six random streams of its own, so
nodes can be simulated in any order or in parallel processes and the files stay byte-identical.
"""

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from fleetsim.defects import bmc_gap, gpu_defects, plant_log_defects
from fleetsim.logs import LinePlan, request_ids, write_request_log
from fleetsim.power import SECONDS, NodePower, node_power, write_dcgm, write_ipmi_sdr, write_redfish
from fleetsim.spec import Fleet, Node
from fleetsim.text import COMPRESSION_SUFFIX
from fleetsim.traffic import NodeRequests, generate_node_requests


@dataclass
class FileTally:
    """Files written under `root`, by family (as paths relative to it), with the records (what the
    ingest reads as rows) and the physical lines they hold."""

    root: Path
    files: dict[str, list[str]] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add(self, family: str, path: Path, n_records: int, n_lines: int | None = None) -> None:
        """Count a file written; `n_lines` by default the records and a header line (CSV)."""
        self.files.setdefault(family, []).append(self.relative(path))
        self.records[family] = self.records.get(family, 0) + n_records
        self.lines[family] = self.lines.get(family, 0) + (n_records + 1 if n_lines is None else n_lines)

    def merge(self, other: "FileTally") -> None:
        for family, paths in other.files.items():
            self.files.setdefault(family, []).extend(paths)
            self.records[family] = self.records.get(family, 0) + other.records[family]
            self.lines[family] = self.lines.get(family, 0) + other.lines[family]


@dataclass
class NodeJob:
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
class NodeResult:
    node_id: str
    requests: int
    written: FileTally
    node_energy_15min_j: np.ndarray
    egress_bytes_hour: np.ndarray
    local_offset_lines: int
    defect_log: list[dict]


def simulate_node(job: NodeJob) -> NodeResult:
    """Write `job.node`'s files of the day under `job.out_dir`; return what the site-level files
    need from them (energy per 15 minutes, egress bytes per hour) and what was written."""
    node, day = job.node, job.day
    streams = [np.random.default_rng(s) for s in
               np.random.SeedSequence([job.seed, day.toordinal(), node.index]).spawn(6)]
    r_traffic, r_power, r_dcgm, r_bmc, r_logs, r_defects = streams
    site_dir = job.out_dir / day.isoformat() / node.site.id
    written = FileTally(job.out_dir)
    log: list[dict] = []

    reqs = generate_node_requests(job.fleet, node, day, job.per_tier, job.tenants, r_traffic)
    power = node_power(reqs, r_power, job.fleet.spec)
    _write_gpu_telemetry(job, power, site_dir, r_dcgm, r_defects, written, log)
    _write_node_meter(job, power, site_dir, r_bmc, written, log)
    local_offset_lines = _write_request_log(job, reqs, site_dir, r_logs, r_defects, written, log)

    egress = np.bincount(np.minimum(reqs.end_ms // 3_600_000, 23), weights=reqs.response_bytes.clip(0), minlength=24)
    return NodeResult(node.id, len(reqs), written, power.energy_per_interval_j(900), egress, local_offset_lines, log)


def _write_gpu_telemetry(job: NodeJob, power: NodePower, site_dir: Path, r_dcgm: np.random.Generator,
                         r_defects: np.random.Generator, written: FileTally, log: list[dict]) -> None:
    """The node's DCGM scrapes, with its GPU defects (a counter reset, blank energy samples)."""
    node, day, spec = job.node, job.day, job.fleet.spec
    defects = gpu_defects(job.defects, node.pool.gpus, SECONDS // spec.dcgm_interval_s, r_defects)
    path = site_dir / "dcgm" / f"dcgm_{node.id}_{day.isoformat()}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    rec, ln = write_dcgm(path, day, power, spec.dcgm_interval_s, r_dcgm, defects)
    written.add("dcgm", path, rec, ln)
    if defects.reboot_gpu is not None:
        log.append({"kind": "gpu_counter_reset", "file": written.relative(path),
                    "meter_id": f"{node.id}/gpu{defects.reboot_gpu}", "scrape": defects.reboot_at_scrape})
    for gpu, k in defects.blank_energy:
        log.append({"kind": "dcgm_blank_energy", "file": written.relative(path), "meter_id": f"{node.id}/gpu{gpu}",
                    "scrape": k})


def _write_node_meter(job: NodeJob, power: NodePower, site_dir: Path, r_bmc: np.random.Generator,
                      written: FileTally, log: list[dict]) -> None:
    """The node's BMC power: `ipmitool sdr` dumps (with a gap where the node carries one) or
    Redfish Sensor polls, as its pool's `node_meter` says."""
    node, day, spec = job.node, job.day, job.fleet.spec
    if node.pool.node_meter == "ipmi":
        gap = bmc_gap(job.defects)
        path = site_dir / "ipmi" / f"ipmi_sdr_{node.id}_{day.isoformat()}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec, ln = write_ipmi_sdr(path, day, power, spec.bmc_interval_s, r_bmc, gap)
        written.add("ipmi", path, rec, ln)
        if gap:
            log.append({"kind": "bmc_gap", "file": written.relative(path), "meter_id": f"{node.id}/bmc",
                        "blocks": gap[1] - gap[0] + 1, "first_block": gap[0]})
    elif node.pool.node_meter == "redfish":
        path = site_dir / "redfish" / f"redfish_{node.id}_{day.isoformat()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rec, ln = write_redfish(path, day, power, spec.bmc_interval_s, r_bmc)
        written.add("redfish", path, rec, ln)


def _write_request_log(job: NodeJob, reqs: NodeRequests, site_dir: Path, r_logs: np.random.Generator,
                       r_defects: np.random.Generator, written: FileTally, log: list[dict]) -> int:
    """The node's request log (compressed when the job says so), with the shipper's defects.
    Returns its lines written with a local UTC offset (every line, on the node that carries
    that defect; else 0)."""
    node, day = job.node, job.day
    plan = LinePlan.plain(len(reqs))
    ids = request_ids(reqs, day, r_logs)
    planted = plant_log_defects(job.defects, reqs, plan, r_defects)
    path = site_dir / "requests" / f"{node.id}.jsonl{COMPRESSION_SUFFIX[job.compress] if job.compress else ''}"
    local_tz = node.site.timezone if job.defects.get("local_offset") else None
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = write_request_log(path, reqs, plan, job.fleet.spec, day, r_logs, ids=ids, local_tz=local_tz,
                              with_cache_field=node.site.kind != "cloud")
    written.add("requests", path, lines, lines)
    for kind, r in planted:
        at = (np.flatnonzero(plan.row == r) + 1).tolist()
        log.append({"kind": kind, "file": written.relative(path), "lines": at, "request_id": ids[r]})
    return lines if local_tz else 0
