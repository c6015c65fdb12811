"""`inferledger check-data`: the data-quality gate of CI (`make check-data`).

Runs every Great Expectations suite (transforms/quality) on a lake day, on real public samples
(when their folder is given: the Makefile passes the repository's, tests/data/real) ingested as
the pipeline ingests them, and the warehouse SQL checks (warehouse/checks.py) on the published
file; prints one readable report, writes the results as JSON, and fails (exit 1) on any
error-severity failure. Warnings are reported, never fatal.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from rich.table import Table

from lake.json_lines import extract_json_fields
from lake.readers import scan_csv_text, scan_text_lines
from pipelines.suites import run_suites
from transforms.contracts import COST_LINES, POWER_READINGS, REQUESTS
from transforms.ingest.bills import parse_focus
from transforms.ingest.common import accepted, classify
from transforms.ingest.power import parse_ipmi_sdr
from transforms.ingest.traces import MOONCAKE_KEYS, ThroughputModel, adapt_azure_trace, adapt_mooncake_trace
from transforms.inventory import Inventory
from transforms.quality import SuiteContext, SuiteResult, validate_frame
from warehouse.access import open_warehouse
from warehouse.checks import checks, run_checks
from warehouse.connection import DuckDBLimits


@dataclass
class CheckDataReport:
    suites: list[SuiteResult] = field(default_factory=list)
    warehouse: list = field(default_factory=list)  # warehouse.checks.CheckOutcome
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return (sum(len(r.errors) for r in self.suites)
                + sum(1 for o in self.warehouse if not o.passed and o.severity == "error"))

    def as_dict(self) -> dict:
        return {"errors": self.errors, "seconds": round(self.seconds, 2),
                "suites": [r.as_dict() for r in self.suites],
                "warehouse_checks": [vars(o) for o in self.warehouse]}


def _ingested(parsed: pl.LazyFrame, contract, day: date, day_column: str | None) -> pl.DataFrame:
    """A parser's rows as the ingest accepts them (quarantined rows set aside)."""
    judged = classify(parsed, contract, day, day_column=day_column).collect().lazy()
    return accepted(judged, contract).collect()


# The sensor each Harvard FASRC host is read from: the parser's default (transforms/ingest/power_bmc.py,
# IPMI_DEFAULT_SENSORS) for two, `Sys Power` named in the inventory for the third.
FASRC_SENSORS = {"lichtmandce04": None, "holygpu2c0701": "Sys Power", "holygpu8a11101": None}


def bmc_sample_inventory(source: str, sensors: dict[str, str | None]) -> Inventory:
    """A one-site fleet for public BMC samples: each host has one node meter read from `source`
    (`sensor` per host; None for the parser's default). Used for the Harvard FASRC IPMI sample."""
    return Inventory.model_validate({
        "currency": "USD", "valid_from": "2019-01-01",
        "sites": [{"id": "mghpcc", "kind": "remote", "cooling": "liquid", "design_pue": 1.2,
                   "timezone": "America/New_York", "tariff": "flat"}],
        "pools": [{"id": "hpc", "site": "mghpcc", "gpu_model": "A100", "tiers": ["batch"]}],
        "nodes": [{"id": h, "pool": "hpc", "gpus": 4, "gpu_tdp_w": 400, "idle_w": 300, "nameplate_w": 3000}
                  for h in sensors],
        "meters": [{"id": f"{h}/bmc", "scope": "node", "site": "mghpcc", "source": source, "node": h, "sensor": s}
                   for h, s in sensors.items()],
        "tariffs": [{"id": "flat", "kind": "time_of_use", "currency": "USD",
                     "periods": [{"name": "all", "start": "00:00", "end": "24:00", "price_per_kwh": 0.1}]}],
        "tiers": [{"id": "batch", "ttft_p95_s": 60, "e2e_p95_s": 3600, "price_per_m_input_tokens": 0.3,
                   "price_per_m_output_tokens": 1.2, "idle_policy": "pro_rata"}],
        "models": [{"id": "m", "params_b": 8}],
    })


def real_sample_results(real_root: Path, inventory: Inventory) -> list[SuiteResult]:
    """The suites on each real sample: FOCUS 1.0 and 1.2 bills (cost_lines), IPMI power
    (power_readings), the Azure 2023 and Mooncake traces (requests)."""
    out = []
    delivery = date(2026, 11, 24)
    for name, files in (("focus_sample_data_v1.0", ["focus_sample.csv"]),
                        ("focus_spec_v1.2_examples",
                         sorted(p.name for p in (real_root / "focus_spec_v1.2_examples").glob("*.csv")))):
        root = real_root / name
        lines = _ingested(parse_focus(scan_csv_text([root / f for f in files], root, null_values=["NULL"]), inventory,
                                      "cloud-use1"), COST_LINES, delivery, None)
        out.append(validate_frame("cost_lines", lines, SuiteContext(inventory=inventory, day=delivery), partition=name))
    ipmi_root, ipmi_inv, ipmi_day = (real_root / "harvard_fasrc_ipmi_sdr", bmc_sample_inventory("ipmi", FASRC_SENSORS),
                                     date(2025, 6, 3))
    readings = _ingested(parse_ipmi_sdr(scan_text_lines(sorted(ipmi_root.glob("ipmi_sdr_*.txt")), ipmi_root), ipmi_inv,
                                        "mghpcc"), POWER_READINGS, ipmi_day, "ts")
    out.append(validate_frame("power_readings", readings, SuiteContext(inventory=ipmi_inv, day=ipmi_day),
                              partition="harvard_fasrc_ipmi_sdr"))
    placement = {"node_id": "c-h100-01", "model": "llama-3.1-70b-instruct", "tier": "standard",
                 "tenant_id": "trace-replay", "throughput": ThroughputModel(), "inventory": inventory}
    azure = real_root / "azure_llm_inference_2023"
    for trace in ("code", "conv"):
        rows = _ingested(adapt_azure_trace(scan_csv_text([azure / f"AzureLLMInferenceTrace_{trace}.csv"], azure),
                                           **placement), REQUESTS, date(2023, 11, 16), "completed_at")
        out.append(validate_frame("requests", rows, SuiteContext(inventory=inventory, day=date(2023, 11, 16)),
                                  partition=f"azure_llm_inference_2023/{trace}"))
    moon, start = real_root / "mooncake_fast25_traces", date(2026, 11, 28)
    trace = extract_json_fields(scan_text_lines([moon / "conversation_trace.jsonl"], moon), MOONCAKE_KEYS)
    rows = _ingested(adapt_mooncake_trace(trace, start=datetime(2026, 11, 28, 12, tzinfo=UTC), **placement),
                     REQUESTS, start, "completed_at")
    out.append(validate_frame("requests", rows, SuiteContext(inventory=inventory, day=start),
                              partition="mooncake_fast25_traces/conversation"))
    return out


def check_data(lake: Path, day: date, inventory: Inventory, warehouse: Path | None, *, real_root: Path | None,
               real_inventory: Inventory | None, max_age_days: int, batch_rows: int,
               limits: DuckDBLimits) -> CheckDataReport:
    """Every suite on `day` of `lake` (`batch_rows` rows at a time), on the samples under
    `real_root` (placed by `real_inventory`, else `inventory`) when given, and the warehouse
    checks on `warehouse` when given (freshness warning beyond `max_age_days` days)."""
    started = time.perf_counter()
    report = CheckDataReport()
    report.suites = run_suites(lake, day, inventory, batch_rows=batch_rows)
    if real_root is not None:
        report.suites += real_sample_results(real_root, real_inventory or inventory)
    if warehouse is not None:
        con = open_warehouse(warehouse, limits)
        try:
            report.warehouse = run_checks(con, checks(max_age_days))
        finally:
            con.close()
    report.seconds = time.perf_counter() - started
    return report


def print_report(report: CheckDataReport, console) -> None:
    t = Table(title="Data quality: Great Expectations suites", title_justify="left")
    # The batch (the partition or sample to look at) is never cut; a long suite name folds.
    fit = {"batch": {"no_wrap": True}, "suite": {"overflow": "fold"}}
    for col in ("suite", "batch", "rows", "expectations", "errors", "warnings", "seconds"):
        t.add_column(col, justify="left" if col in ("suite", "batch") else "right", **fit.get(col, {}))
    for r in report.suites:
        t.add_row(r.suite, r.partition, f"{r.rows:,}", str(len(r.results)),
                  f"[red]{len(r.errors)}[/red]" if r.errors else "0", str(len(r.warnings)), f"{r.seconds:.1f}")
    console.print(t)
    if report.warehouse:
        w = Table(title="Warehouse checks (DuckDB SQL on the published file)", title_justify="left")
        for col in ("check", "severity", "result", "rows"):
            w.add_column(col, justify="right" if col == "rows" else "left")
        for o in report.warehouse:
            w.add_row(o.name, o.severity,
                      "pass" if o.passed else ("[red]FAIL[/red]" if o.severity == "error" else "warn"),
                      str(o.unexpected_count))
        console.print(w)
    failed = [(r.suite, r.partition, e) for r in report.suites for e in r.errors + r.warnings]
    for _, batch, e in failed:
        kind = "[red]error[/red]" if e.severity == "error" else "[yellow]warning[/yellow]"
        count = e.unexpected_count if e.unexpected_count is not None else e.observed
        console.print(f"{kind} {e.name} on {batch}: {count} unexpected"
                      + (f", e.g. {e.examples[:3]}" if e.examples else "") + (f" ({e.error})" if e.error else ""))
    for o in report.warehouse:
        if not o.passed:
            kind = "[red]error[/red]" if o.severity == "error" else "[yellow]warning[/yellow]"
            console.print(f"{kind} warehouse check {o.name}: {o.unexpected_count} row(s), e.g. {o.examples[:2]}")
    console.print(f"{len(report.suites)} batch(es), {sum(len(r.results) for r in report.suites):,} expectations, "
                  f"{len(report.warehouse)} warehouse checks: {report.errors} error(s) in {report.seconds:.1f} s")


def write_json(report: CheckDataReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=1, default=str))
    return path
