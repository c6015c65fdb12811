"""`inferledger check-data` (`make check-data`): the CI data-quality gate on the demo day, the
real samples and the published warehouse; it names each failed expectation with counts and
examples and exits 1 on an error."""

import json
import shutil
from pathlib import Path

import polars as pl

from lake.store import Lake
from pipelines.cli import main

REAL = Path(__file__).resolve().parent / "data" / "real"


def test_passes_on_the_demo_day_and_reports_each_real_sample(demo_warehouse, tmp_path, capsys):
    out = tmp_path / "check.json"
    # as `make check-data`
    code = main(["check-data", "--raw", str(demo_warehouse["raw"]), "--lake", str(demo_warehouse["lake"]),
                 "--warehouse", str(demo_warehouse["warehouse"]), "--json", str(out),
                 "--real", str(REAL), "--real-inventory", str(REAL.parent / "inventory_small.yaml")])
    shown = capsys.readouterr().out
    assert code == 0, shown
    for batch in ("requests/date=2026-11-24/site=metro-east", "request_costs/date=2026-11-24", "focus_sample_data_v1.0",
                  "focus_spec_v1.2_examples", "harvard_fasrc_ipmi_sdr", "azure_llm_inference_2023/code",
                  "mooncake_fast25_traces/conversation", "marts_equal_sources",
                  # the source checks of every ingest audit of the day (nothing lost, nothing ignored)
                  "ingest_audit/date=2026-11-24/site=cloud-use1/cost_lines",
                  "ingest_audit/date=2026-11-24/site=_fleet/assets"):
        assert batch in shown, batch
    result = json.loads(out.read_text())
    assert result["errors"] == 0
    batches = {(s["suite"], s["partition"]): s for s in result["suites"]}
    assert batches[("cost_lines", "focus_sample_data_v1.0")]["rows"] == 1000
    assert batches[("requests", "azure_llm_inference_2023/conv")]["rows"] == 19_366
    assert batches[("power_readings.sources", "ingest_audit/date=2026-11-24/site=remote-plains/power_readings")][
        "success"]
    # The real FOCUS sample's usage corrections are warnings, named with their count.
    assert ("cost_lines.billed_amount.non_negative_charge on focus_sample_data_v1.0: 12 unexpected"
            in " ".join(shown.split()))
    assert {c["name"] for c in result["warehouse_checks"]} >= {"marts_equal_sources", "pue_within_bounds", "freshness"}


def test_fails_naming_the_expectation_with_counts_and_examples(demo_warehouse, tmp_path, capsys):
    lake = tmp_path / "lake"
    shutil.copytree(demo_warehouse["lake"], lake)
    day = demo_warehouse["day"]
    # Negative tokens past the quarantine: written straight into the canonical lake.
    part = lake / "requests" / f"date={day}" / "site=metro-east" / "part-0.parquet"
    rows = pl.read_parquet(part)
    rows = rows.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(-5).otherwise(pl.col("output_tokens"))
                             .alias("output_tokens"))
    Lake(lake).write(rows, "requests", day, "metro-east")
    code = main(["check-data", "--raw", str(demo_warehouse["raw"]), "--lake", str(lake), "--no-real",
                 "--warehouse", str(tmp_path / "none.duckdb"), "--json", str(tmp_path / "check.json")])
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 1
    assert ("error requests.output_tokens.non_negative on requests/date=2026-11-24/site=metro-east: "
            "1 unexpected, e.g. [-5]") in shown
    assert json.loads((tmp_path / "check.json").read_text())["errors"] >= 1
