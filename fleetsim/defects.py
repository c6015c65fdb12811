"""The defects injected when `defects=True` (fleetsim/README.md, "Defects"): which node carries
which, how each is planted in its file, and what the ingest must quarantine for them.

Every draw comes from the node's own `defects` stream, in the order the node's files are
written (GPU telemetry, then the request log), so the files stay byte-identical.
"""

import numpy as np

from fleetsim.logs import LINE_CONFLICT, LINE_TRUNCATED, LinePlan
from fleetsim.power import DcgmDefects
from fleetsim.spec import Fleet
from fleetsim.traffic import STATUS_OK, NodeRequests

# At fixed counts.
EXACT_DUPLICATES = 3
BLANK_ENERGY_SAMPLES = 3
BMC_GAP_MINUTES = 20
BMC_GAP_START_MINUTE = 158  # 02:38 UTC, as in the Harvard dump


def defect_targets(fleet: Fleet) -> dict[str, dict]:
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


def gpu_defects(defects: dict, gpus: int, n_scrapes: int, rng: np.random.Generator) -> DcgmDefects:
    """A node's DCGM defects: a GPU whose energy counter restarts 55% into the day, and scrapes
    whose energy field holds DCGM's blank value."""
    out = DcgmDefects()
    if defects.get("gpu_reboot"):
        out.reboot_gpu = min(3, gpus - 1)
        out.reboot_at_scrape = int(n_scrapes * 0.55)
    if defects.get("blank_energy"):
        gpu = min(5, gpus - 1)
        picks = np.sort(rng.choice(np.arange(10, n_scrapes - 10), defects["blank_energy"], replace=False))
        out.blank_energy = [(gpu, int(k)) for k in picks]
    return out


def bmc_gap(defects: dict) -> tuple[int, int] | None:
    """The first and last minute of the day whose IPMI `Timestamp:` blocks carry no sensor line."""
    if not defects.get("bmc_gap"):
        return None
    return BMC_GAP_START_MINUTE, BMC_GAP_START_MINUTE + defects["bmc_gap"] - 1


def plant_log_defects(defects: dict, reqs: NodeRequests, plan: LinePlan,
                      rng: np.random.Generator) -> list[tuple[str, int]]:
    """The log shipper's defects, planted in `plan` (and a negated output token count in `reqs`)
    on ok requests drawn at random: (kind, request row) of each, whose line numbers are known
    once every line is inserted."""
    ok_rows = np.flatnonzero((reqs.status == STATUS_OK) & (reqs.output_tokens > 1))
    picks = iter(rng.permutation(ok_rows)) if len(ok_rows) >= 10 else iter(())
    planted: list[tuple[str, int]] = []
    if defects.get("negative_output_tokens") and (r := next(picks, None)) is not None:
        reqs.output_tokens[r] = -reqs.output_tokens[r]
        planted.append(("negative_output_tokens", int(r)))
    if defects.get("malformed_line") and (r := next(picks, None)) is not None:
        plan.kind[r] = LINE_TRUNCATED
        planted.append(("malformed_line", int(r)))
    for _ in range(defects.get("exact_duplicates", 0)):
        if (r := next(picks, None)) is not None:
            at = int(np.flatnonzero(plan.row == r)[0])
            plan.insert_after(min(len(plan.row) - 1, at + int(rng.integers(1, 40))), int(r))
            planted.append(("exact_duplicate", int(r)))
    if defects.get("conflicting_duplicate") and (r := next(picks, None)) is not None:
        at = int(np.flatnonzero(plan.row == r)[0])
        plan.insert_after(min(len(plan.row) - 1, at + int(rng.integers(1, 40))), int(r), LINE_CONFLICT)
        planted.append(("conflicting_duplicate", int(r)))
    return planted


def count_defects(defect_log: list[dict]) -> dict[str, int]:
    """Defects by kind; a BMC gap counts its blocks."""
    counts: dict[str, int] = {}
    for d in defect_log:
        counts[d["kind"]] = counts.get(d["kind"], 0) + (d.get("blocks", 1))
    return counts


def expected_quarantine(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """What the ingest must quarantine for the defects `counts`, by dataset and reason."""
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
    return expected
