"""Failure drills: every suite passes its clean fixture, and each mutation of one expectation
family fails exactly the checks named (and nothing else)."""

from datetime import date, datetime, timedelta, UTC
from pathlib import Path

import polars as pl
import pytest

from transforms.contracts import ASSETS, COST_LINES, POWER_READINGS, REQUESTS
from transforms.quality import SUITES, SuiteContext, catalog, validate_frame
from transforms.quality.suites import REQUEST_COSTS_COLUMNS

DAY = date(2026, 11, 24)


def at(h: int, m: int = 0, s: float = 0.0) -> datetime:
    return datetime(2026, 11, 24, h, m, tzinfo=UTC) + timedelta(seconds=s)


def requests_frame() -> pl.DataFrame:
    return REQUESTS.conform(pl.LazyFrame({
        "request_id": ["r1", "r2", "r3"], "node_id": ["m-h200-01", "r-l40s-std-01", "c-h100-01"],
        "model": ["qwen3-32b", "llama-3.1-8b-instruct", "mixtral-8x7b-instruct"],
        "tier": ["premium", "standard", "batch"], "tenant_id": ["t1", "t2", "t3"],
        "arrived_at": [at(0, 0, 1), at(12), at(23, 59)], "completed_at": [at(0, 0, 3), at(12, 0, 9), at(23, 59, 59)],
        "queue_s": [0.01, None, 0.2], "ttft_s": [0.1, 0.5, None], "prefill_s": [0.05, 0.3, None],
        "decode_s": [1.8, 8.0, None], "input_tokens": [1000, 2000, 300], "cached_input_tokens": [0, 500, 0],
        "output_tokens": [200, 800, 0], "response_bytes": [900, 3500, None], "status": ["ok", "ok", "timeout"],
        "site_id": ["metro-east", "remote-plains", "cloud-use1"],
        "pool_id": ["premium-h200", "standard-l40s", "cloud-h100"],
    })).collect()


def power_frame() -> pl.DataFrame:
    return POWER_READINGS.conform(pl.LazyFrame({
        "meter_id": ["c-h100-01/gpu3", "c-h100-01/gpu3", "m-h200-01/bmc", "metro-east/facility"],
        "scope": ["gpu", "gpu", "node", "facility"],
        "site_id": ["cloud-use1", "cloud-use1", "metro-east", "metro-east"],
        "node_id": ["c-h100-01", "c-h100-01", "m-h200-01", None], "gpu_index": [3, 3, None, None],
        "ts": [at(0, 0, 1), at(0, 0, 31), at(10), at(0, 15)], "power_w": [106.0, 640.0, 3200.0, None],
        "energy_j": [1.5e11, 1.5e11 + 9000, None, None], "interval_energy_j": [None, None, None, 5.6e6],
        "interval_s": [None, None, None, 900.0], "counter_reset": [False, False, False, False],
        "source": ["dcgm", "dcgm", "redfish", "facility_csv"],
    })).collect()


def cost_frame() -> pl.DataFrame:
    month = [datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 12, 1, 6, tzinfo=UTC)]
    return COST_LINES.conform(pl.LazyFrame({
        "source": ["focus", "focus", "electricity_invoice", "electricity_invoice"],
        "line_id": ["a1", "a2", "INV-1/1", "INV-1/2"],
        "site_id": ["cloud-use1", "cloud-use1", "remote-plains", "remote-plains"],
        "resource_id": ["i-0c1a0d0000000001", None, None, None],
        "period_start": [at(0), at(0), month[0], month[0]], "period_end": [at(1), at(1), month[1], month[1]],
        "cost_type": ["cloud_compute", "other", "energy", "demand"], "billed_amount": [55.04, -1.5, 236.47, 112.5],
        "effective_amount": [33.02, -1.5, 236.47, 112.5], "currency": ["USD"] * 4, "quantity": [1.0, 0.0, 3638.0, 9.0],
        "unit": ["Hours", "Hours", "kWh", "kW"], "service_name": ["EC2", "Support", "Energy", "Demand"],
        "charge_category": ["Usage", "Credit", "Usage", "Usage"], "tou_period": [None, None, "on_peak", None],
        "peak_at": [None, None, None, at(15)],
    })).collect()


def assets_frame() -> pl.DataFrame:
    return ASSETS.conform(pl.LazyFrame({
        "asset_id": ["FA-1", "FA-2"], "node_id": ["m-h200-01", "r-l40s-std-01"],
        "acquisition_cost": [289231.61, 25781.24],
        "currency": ["USD", "USD"], "in_service_date": [date(2024, 12, 23), date(2024, 7, 18)],
        "useful_life_months": [60, 60], "salvage_value": [14461.58, 1289.06],
        "method": ["straight_line", "declining_balance"],
        "disposal_date": [None, date(2026, 10, 10)], "site_id": ["metro-east", "remote-plains"],
    })).collect()


def request_costs_frame() -> pl.DataFrame:
    req = requests_frame()
    money = {"energy_cost": [0.001, 0.002, 0.0], "demand_cost": [0.0, 0.01, 0.0],
             "amortization_cost": [0.02, 0.01, 0.0], "cloud_cost": [0.0, 0.0, 0.4], "fixed_cost": [0.001, 0.0, 0.0],
             "egress_cost": [0.0, 0.0, 1e-7]}
    direct = [sum(v[i] for v in money.values()) for i in range(3)]
    return req.with_columns(
        pl.lit(DAY).alias("date"), pl.Series("it_energy_j", [3000.0, 9000.0, 0.0]),
        pl.Series("overhead_energy_j", [450.0, 4050.0, 0.0]),
        pl.Series("energy_kwh", [3450 / 3.6e6, 13050 / 3.6e6, 0.0]),
        *[pl.Series(k, v) for k, v in money.items()], pl.Series("direct_cost", direct),
        pl.Series("idle_share", [0.01, 0.002, 0.0]),
        pl.Series("fully_loaded_cost", [direct[0] + 0.01, direct[1] + 0.002, direct[2]]),
        pl.lit("USD").alias("currency"), pl.Series("occupied_s", [2.0, 9.0, 0.0]), pl.lit("time").alias("weight"),
        pl.Series("energy_method", ["measured", "interpolated", "none"]),
        pl.Series("pue_method", ["measured", "design_pue", "none"]),
        pl.Series("idle_policy", ["reserved", "pro_rata", "pro_rata"]),
        pl.lit(0.0).alias("estimated_energy_j"), pl.Series("interpolated_energy_j", [0.0, 13050.0, 0.0]),
        pl.lit(0.0).alias("infrastructure_cost"),
    ).select(list(REQUEST_COSTS_COLUMNS))


def nodes_frame(inv) -> pl.DataFrame:
    return inv.nodes_frame().collect()


FIXTURES = {"requests": requests_frame, "power_readings": power_frame, "cost_lines": cost_frame,
            "assets": assets_frame, "request_costs": request_costs_frame}


def run(suite, frame, inventory, previous=None):
    return validate_frame(suite, frame, SuiteContext(inventory=inventory, day=DAY, previous_rows=previous))


def failures(result) -> dict[str, str]:
    return {r.name: r.severity for r in result.results if not r.success}


def set_row(col: str, value, row: int = 0):
    """A mutation: `col` of row `row` set to `value` (type kept)."""
    def mutate(df: pl.DataFrame) -> pl.DataFrame:
        s = df[col].to_list()
        s[row] = value
        return df.with_columns(pl.Series(col, s, dtype=df.schema[col]))
    return mutate


def dup_row(df: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([df, df.head(1)])


E, W = "error", "warning"
# (suite, mutation, {check: severity} that must fail, and only those)
DRILLS = {
    # requests ------------------------------------------------------------------------------
    "requests-negative-tokens": ("requests", set_row("output_tokens", -5), {"requests.output_tokens.non_negative": E}),
    "requests-negative-input": ("requests", set_row("input_tokens", -1),
                                {"requests.input_tokens.non_negative": E,
                                 "requests.cached_input_tokens.within_input": E}),
    "requests-huge-output": ("requests", set_row("output_tokens", 5_000_000),
                             {"requests.output_tokens.within_bounds": W}),
    "requests-cached-above-input": ("requests", set_row("cached_input_tokens", 5000),
                                    {"requests.cached_input_tokens.within_input": E}),
    "requests-missing-column": ("requests", lambda df: df.drop("tenant_id"),
                                {"requests.schema.columns": E, "requests.tenant_id.type": E,
                                 "requests.tenant_id.not_null": E}),
    "requests-extra-column": ("requests", lambda df: df.with_columns(pl.lit("x").alias("prompt")),
                              {"requests.schema.columns": E}),
    "requests-wrong-type": ("requests", lambda df: df.with_columns(pl.col("output_tokens").cast(pl.Float64)),
                            {"requests.output_tokens.type": E}),
    "requests-naive-timestamp": ("requests",
                                 lambda df: df.with_columns(pl.col("arrived_at").dt.replace_time_zone(None)),
                                 {"requests.arrived_at.type": E, "requests.completed_at.not_before_arrival": E,
                                  "requests.arrived_at.within_a_day_before": W}),
    "requests-null-tenant": ("requests", set_row("tenant_id", None), {"requests.tenant_id.not_null": E}),
    "requests-duplicate-id": ("requests", dup_row, {"requests.key.unique": E}),
    "requests-unknown-status": ("requests", set_row("status", "done"), {"requests.status.allowed": E}),
    "requests-unknown-tier": ("requests", set_row("tier", "gold"), {"requests.tier.known": E}),
    "requests-unknown-node": ("requests", set_row("node_id", "x-99"), {"requests.node_id.known": E}),
    "requests-unknown-model": ("requests", set_row("model", "gpt-9"), {"requests.model.known": W}),
    "requests-next-day": ("requests", set_row("completed_at", at(0) + timedelta(days=1, seconds=5), row=2),
                          {"requests.completed_at.inside_partition_day": E}),
    "requests-completed-before-arrival": ("requests", set_row("arrived_at", at(13)),
                                          {"requests.completed_at.not_before_arrival": E}),
    "requests-negative-ttft": ("requests", set_row("ttft_s", -0.1), {"requests.ttft_s.non_negative": E}),
    # Past the parser's `out_of_range` (transforms/bounds.py): beyond any context window, a clock in decades.
    "requests-tokens-beyond-any-context": ("requests", set_row("output_tokens", 200_000_000),
                                           {"requests.output_tokens.in_range": E,
                                            "requests.output_tokens.within_bounds": W}),
    "requests-decode-of-decades": ("requests", set_row("decode_s", 2e9), {"requests.decode_s.in_range": E}),
    # power readings ------------------------------------------------------------------------
    "power-50kw-gpu": ("power_readings", set_row("power_w", 50_000.0),
                       {"power_readings.power_w.within_gpu_nameplate": E}),
    "power-node-over-nameplate": ("power_readings", set_row("power_w", 20_000.0, row=2),
                                  {"power_readings.power_w.within_node_nameplate": E}),
    # m-h200-01's idle_w is 1,400 W: the floor is 0.9 x 1,400 = 1,260 W; 1,259 W is below it, 1,260 W is not.
    "power-node-below-idle": ("power_readings", set_row("power_w", 1259.0, row=2),
                              {"power_readings.power_w.not_below_node_idle": W}),
    "power-node-at-idle-floor": ("power_readings", set_row("power_w", 1260.0, row=2), {}),
    "power-negative": ("power_readings", set_row("power_w", -3.0), {"power_readings.power_w.non_negative": E}),
    "power-negative-interval-energy": ("power_readings", set_row("interval_energy_j", -1.0, row=3),
                                       {"power_readings.interval_energy_j.non_negative": E}),
    "power-duplicate-key": ("power_readings", dup_row, {"power_readings.key.unique": E}),
    "power-unknown-meter": ("power_readings", set_row("meter_id", "c-h100-01/gpu9"),
                            {"power_readings.meter_id.known": E}),
    "power-unknown-scope": ("power_readings", set_row("scope", "rack", row=3), {"power_readings.scope.allowed": E}),
    "power-unknown-source": ("power_readings", set_row("source", "snmp", row=2), {"power_readings.source.allowed": E}),
    "power-next-day": ("power_readings", set_row("ts", at(0) + timedelta(days=1, seconds=2), row=2),
                       {"power_readings.ts.inside_partition_day": E}),
    "power-interval-of-yesterday": ("power_readings", set_row("ts", at(0), row=3),
                                    {"power_readings.interval_start.inside_partition_day": E}),
    "power-no-measurement": ("power_readings", lambda df: set_row("energy_j", None)(set_row("power_w", None)(df)),
                             {"power_readings.power_w.has_measurement": E}),
    "power-zero-interval": ("power_readings", set_row("interval_s", 0.0, row=3),
                            {"power_readings.interval_s.positive": E}),
    "power-null-site": ("power_readings", set_row("site_id", None, row=2), {"power_readings.site_id.not_null": E}),
    "power-null-gpu-index-is-fine": ("power_readings", set_row("gpu_index", None), {}),
    "power-infinite-facility-power": ("power_readings", set_row("power_w", float("inf"), row=3),
                                      {"power_readings.power_w.in_range": E}),
    # 1e308 kWh read as J overflows to +Inf: an infinite mean power over the interval.
    "power-infinite-interval-energy": ("power_readings", set_row("interval_energy_j", float("inf"), row=3),
                                       {"power_readings.interval_power_w.in_range": E}),
    "power-interval-of-a-year": ("power_readings", set_row("interval_s", 365 * 86400.0, row=3),
                                 {"power_readings.interval_s.in_range": E,
                                  "power_readings.interval_start.inside_partition_day": E}),
    # cost lines ----------------------------------------------------------------------------
    "cost-currency-mismatch": ("cost_lines", set_row("currency", "EUR"), {"cost_lines.currency.reporting_currency": W}),
    "cost-unknown-cost-type": ("cost_lines", set_row("cost_type", "gpu"), {"cost_lines.cost_type.allowed": E}),
    "cost-unknown-charge-category": ("cost_lines", set_row("charge_category", "Refund"),
                                     {"cost_lines.charge_category.allowed": E}),
    "cost-unknown-source": ("cost_lines", set_row("source", "sap"), {"cost_lines.source.allowed": E}),
    "cost-unknown-site": ("cost_lines", set_row("site_id", "mars"), {"cost_lines.site_id.known": E}),
    "cost-period-reversed": ("cost_lines", set_row("period_end", at(0)), {"cost_lines.period_end.after_start": E}),
    "cost-future-period": ("cost_lines", lambda df: set_row("period_end", at(0) + timedelta(days=3))(
        set_row("period_start", at(0) + timedelta(days=2))(df)), {"cost_lines.period_start.not_after_delivery": W}),
    "cost-absurd-amount": ("cost_lines", set_row("billed_amount", 5e10), {"cost_lines.billed_amount.within_bounds": E}),
    "cost-negative-usage": ("cost_lines", set_row("billed_amount", -55.04),
                            {"cost_lines.billed_amount.non_negative_charge": W}),
    "cost-negative-quantity": ("cost_lines", set_row("quantity", -1.0), {"cost_lines.quantity.non_negative": W}),
    "cost-energy-price-in-cents": ("cost_lines", set_row("billed_amount", 23647.0, row=2),
                                   {"cost_lines.energy_price.within_bounds": E}),
    "cost-duplicate-key": ("cost_lines", dup_row, {"cost_lines.key.unique": E}),
    "cost-null-amount": ("cost_lines", set_row("effective_amount", None), {"cost_lines.effective_amount.not_null": E}),
    # assets --------------------------------------------------------------------------------
    "assets-currency-mismatch": ("assets", set_row("currency", "EUR"), {"assets.currency.reporting_currency": W}),
    "assets-negative-cost": ("assets", set_row("acquisition_cost", -10.0),
                             {"assets.acquisition_cost.within_bounds": E, "assets.salvage_value.within_cost": E}),
    "assets-salvage-above-cost": ("assets", set_row("salvage_value", 1e6), {"assets.salvage_value.within_cost": E}),
    "assets-zero-life": ("assets", set_row("useful_life_months", 0), {"assets.useful_life_months.within_bounds": E}),
    "assets-disposed-before-service": ("assets", set_row("disposal_date", date(2024, 1, 1), row=1),
                                       {"assets.disposal_date.not_before_service": E}),
    "assets-unknown-method": ("assets", set_row("method", "sum_of_years"), {"assets.method.allowed": E}),
    "assets-unknown-node": ("assets", set_row("node_id", "x-1"), {"assets.node_id.known": E}),
    "assets-negative-salvage": ("assets", set_row("salvage_value", -5.0), {"assets.salvage_value.non_negative": E}),
    "assets-null-in-service": ("assets", set_row("in_service_date", None), {"assets.in_service_date.not_null": E}),
    "assets-duplicate-id": ("assets", dup_row, {"assets.key.unique": E}),
    # attributed facts ----------------------------------------------------------------------
    "facts-negative-tokens": ("request_costs", set_row("output_tokens", -1),
                              {"request_costs.output_tokens.non_negative": E}),
    "facts-negative-cost": ("request_costs", set_row("cloud_cost", -0.5, row=2),
                            {"request_costs.cloud_cost.non_negative": E}),
    "facts-loaded-below-direct": ("request_costs", set_row("fully_loaded_cost", 0.0),
                                  {"request_costs.fully_loaded_cost.covers_direct": E}),
    "facts-absurd-cost": ("request_costs",
                          lambda df: set_row("fully_loaded_cost", 5000.0)(set_row("idle_share", 5000.0)(df)),
                          {"request_costs.fully_loaded_cost.within_bounds": W}),
    "facts-costed-twice": ("request_costs", dup_row, {"request_costs.key.unique": E}),
    "facts-currency": ("request_costs", set_row("currency", "EUR"), {"request_costs.currency.reporting_currency": E}),
    "facts-energy-method": ("request_costs", set_row("energy_method", "guessed"),
                            {"request_costs.energy_method.allowed": E}),
    "facts-pue-method": ("request_costs", set_row("pue_method", "nameplate"), {"request_costs.pue_method.allowed": E}),
    "facts-other-day": ("request_costs", set_row("date", date(2026, 11, 23)), {"request_costs.date.partition_day": E}),
    # A request in flight at midnight has a row in the day before its completion (issue 16,
    # item 3); two days later is no day it could touch.
    "facts-completed-two-days-later": ("request_costs", set_row("completed_at", at(0) + timedelta(days=2)),
                                       {"request_costs.completed_at.on_partition_day_or_next": E}),
    "facts-null-cost": ("request_costs", set_row("direct_cost", None), {"request_costs.direct_cost.not_null": E}),
    "facts-unknown-tier": ("request_costs", set_row("tier", "gold"), {"request_costs.tier.known": E}),
}


def drilled(suite: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """The suite's clean fixture and each of its failure drills (DRILLS) that keeps its schema (the
    drills that drop or retype a column stand apart)."""
    clean = FIXTURES[suite]()
    return clean, [m for m in (mutate(FIXTURES[suite]()) for s, mutate, _ in DRILLS.values() if s == suite)
                   if m.schema == clean.schema]


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_clean_fixture_passes_every_expectation(suite, small_inventory):
    res = run(suite, FIXTURES[suite](), small_inventory)
    assert failures(res) == {}, res.results
    assert [r.name for r in res.results] == [c.name for c in catalog(suite)]


@pytest.mark.parametrize("drill", sorted(DRILLS))
def test_mutation_fails_the_named_checks(drill, small_inventory):
    suite, mutate, expected = DRILLS[drill]
    res = run(suite, mutate(FIXTURES[suite]()), small_inventory)
    assert failures(res) == expected
    assert res.success == (E not in expected.values())


def test_every_suite_has_a_failure_drill_per_family():
    # A family is the rule of a check (non_negative, known, allowed, unique, within_bounds, ...);
    # schema families are drilled on requests, the row count in its own test below.
    drilled = {name for _, _, exp in DRILLS.values() for name in exp}
    for suite in FIXTURES:
        families = {c.name.split(".")[-1] for c in catalog(suite)} - {"columns", "type", "vs_previous_day"}
        hit = {n.split(".")[-1] for n in drilled if n.startswith(suite + ".")}
        assert families - hit == set(), suite


def test_failure_report_names_count_and_examples(small_inventory):
    df = power_frame().pipe(set_row("power_w", 50_000.0))
    r = run("power_readings", df, small_inventory).result("power_readings.power_w.within_gpu_nameplate")
    assert (r.success, r.unexpected_count, r.examples, r.severity) == (False, 1, [[1050.0, 50000.0]], "error")


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_row_count_against_previous_day_warns(suite, small_inventory):
    frame = FIXTURES[suite]()
    assert failures(run(suite, frame, small_inventory, previous=frame.height)) == {}
    assert failures(run(suite, frame, small_inventory, previous=frame.height * 10)) == {
        f"{suite}.row_count.vs_previous_day": W}
    assert failures(run(suite, frame, small_inventory, previous=1)) == ({f"{suite}.row_count.vs_previous_day": W}
                                                                        if frame.height > 5 else {})


def test_inventory_nodes_suite(small_inventory):
    nodes = nodes_frame(small_inventory)
    assert failures(run("inventory", nodes, small_inventory)) == {}
    drills = {
        "inventory.key.unique": pl.concat([nodes, nodes.head(1)]),
        "inventory.gpus.within_bounds": nodes.with_columns(pl.lit(65, pl.Int16).alias("gpus")),
        "inventory.nameplate_w.covers_gpus": nodes.with_columns(pl.lit(1000.0).alias("nameplate_w")),
        "inventory.pool_id.known": nodes.with_columns(pl.lit("nowhere").alias("pool_id")),
    }
    for name, frame in drills.items():
        assert name in failures(run("inventory", frame, small_inventory)), name


def test_empty_partition_passes_and_missing_columns_fail_cleanly(small_inventory):
    for suite in FIXTURES:
        empty = FIXTURES[suite]().clear()
        assert failures(run(suite, empty, small_inventory)) == {}, suite
    res = run("power_readings", power_frame().drop("scope", "interval_s"), small_inventory)
    assert not res.success and "power_readings.schema.columns" in failures(res)


def test_names_do_not_depend_on_the_context(small_inventory):
    for suite, build in SUITES.items():
        placeholder = [c.name for c in catalog(suite)]
        real = [c.name for c in build(SuiteContext(inventory=small_inventory, day=DAY, previous_rows=10))]
        assert placeholder == real and len(set(real)) == len(real), suite
        assert all(n.startswith(suite + ".") for n in real)


def test_every_expectation_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "data-quality.md").read_text()
    for suite in SUITES:
        for c in catalog(suite):
            if c.name.endswith((".type", ".not_null")):
                assert f"`{suite}.<column>.{c.name.split('.')[-1]}`" in doc and c.name.split(".")[1] in doc, c.name
            else:
                assert f"| `{c.name}` | {c.severity} |" in doc, f"{c.name} missing from docs/data-quality.md"
