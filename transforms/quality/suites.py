"""Great Expectations 1.x suites, written in code: one per canonical dataset, the inventory's nodes and the
attributed facts.

A suite is a list of `Check`s: a stable name (`requests.output_tokens.non_negative`), a severity (`error` stops the
run, `warning` is reported) and the GX expectation. Its parameters come from a `SuiteContext` (the inventory, the
partition's day, the previous day's row count); its names never do, so Dagster can declare one asset check per name
before any data exists. Some expectations compare a row with reference data (a GPU reading with its TDP, an interval
with the partition's day): `prepare(suite, frame, ctx)` adds those reference columns (`power_limit_w`,
`interval_start`, ...) to the frame GX validates; GX still evaluates every row.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC as UTC_ZONE, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

import great_expectations.expectations as gxe
import polars as pl
from great_expectations.expectations.row_conditions import Column as Col

from transforms.bounds import (  # (the parsers quarantine outside the same bounds)
    MAX_ASSET_COST, MAX_BILL_LINE, MAX_COUNTER_J, MAX_ENERGY_PRICE_PER_KWH, MAX_INPUT_TOKENS, MAX_INTERVAL_S,
    MAX_LATENCY_S, MAX_METER_W, MAX_OUTPUT_TOKENS, MAX_REQUEST_COST, MAX_REQUEST_TOKENS, MAX_RESPONSE_BYTES,
    MAX_USEFUL_LIFE_MONTHS, NAMEPLATE_MULTIPLE, IDLE_FLOOR, IDLE_RULE)
from transforms.attribution.facts import REQUEST_COSTS_SCHEMA
from transforms.contracts import (
    ASSETS, COST_LINES, COST_TYPES, DEPRECIATION_METHODS, METER_SCOPES, POWER_READINGS, REQUESTS, STATUSES, Contract)
from transforms.inventory import METER_LIMITS_SCHEMA, Inventory

Severity = Literal["error", "warning"]
UTC = pl.Datetime("us", "UTC")

# Row count of a partition versus the same partition the day before.
ROW_COUNT_RATIO = (0.2, 5.0)
POWER_SOURCES = ("dcgm", "ipmi", "redfish", "facility_csv", "canonical")
BILL_SOURCES = ("focus", "electricity_invoice", "colocation_invoice", "canonical")
FOCUS_CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
CONVERTED = "; another is converted at the day's reference rate, or stays unattributed (`no_fx_rate`)"

REQUEST_COSTS_COLUMNS: dict[str, pl.DataType] = dict(REQUEST_COSTS_SCHEMA)  # declared by the facts' producer
REQUEST_COSTS_MONEY = ("energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost", "egress_cost",
                       "direct_cost", "idle_share", "fully_loaded_cost")
NODES_COLUMNS: dict[str, pl.DataType] = {
    "node_id": pl.String, "pool_id": pl.String, "site_id": pl.String, "gpus": pl.Int16, "gpu_tdp_w": pl.Float64,
    "idle_w": pl.Float64, "nameplate_w": pl.Float64, "reserved_kw": pl.Float64, "cloud_resource_id": pl.String,
    "role": pl.String}


@dataclass(frozen=True)
class Check:
    """One expectation of a suite: `name` is stable (`<suite>.<column|key|schema>.<rule>`)."""

    name: str
    severity: Severity
    description: str
    expectation: gxe.Expectation


@dataclass(frozen=True)
class SuiteContext:
    """What a suite's parameters depend on. `day`: the partition's UTC day; `previous_rows`: rows of the same
    partition the day before (None when there is none); `inventory`: allowed ids, nameplates and the reporting
    currency (None only to list the checks); `spill_dir`: where a large key check spills (None: system temp)."""

    inventory: Inventory | None = None
    day: date | None = None
    previous_rows: int | None = None
    spill_dir: Path | None = None

    def ids(self, kind: str) -> list[str]:
        inv = self.inventory
        if inv is None:
            return ["-"]
        if kind == "meters":
            return inv.meters_frame().select("meter_id").collect().to_series().to_list()
        return [x.id for x in getattr(inv, kind)]

    @property
    def currency(self) -> str:
        return self.inventory.currency if self.inventory else "XXX"

    @property
    def day_start(self) -> datetime:
        return datetime.combine(self.day or date(2000, 1, 1), time(), tzinfo=UTC_ZONE)

    @property
    def day_end(self) -> datetime:
        return self.day_start + timedelta(days=1)


def _gx_severity(severity: Severity) -> str:
    return "critical" if severity == "error" else "warning"


def check(name: str, severity: Severity, description: str, expectation: type[gxe.Expectation], **kwargs) -> Check:
    exp = expectation(**kwargs, severity=_gx_severity(severity), description=description, meta={"name": name})
    return Check(name, severity, description, exp)


# --- families shared by every suite ---------------------------------------------------------

_GX_TYPE = {pl.String: "str", pl.Int64: "int64", pl.Int32: "int32", pl.Int16: "int16", pl.Float64: "float64",
            pl.Boolean: "bool", pl.Date: "datetime64"}


def gx_type_name(dtype: pl.DataType) -> str:
    """The type GX observes on the pandas column a Polars column becomes (runner.to_pandas)."""
    return "Timestamp" if isinstance(dtype, pl.Datetime) else _GX_TYPE[dtype.base_type()]


def schema_checks(suite: str, columns: dict[str, pl.DataType], required: list[str]) -> list[Check]:
    # The reference columns `prepare` adds are expected too: they are not the dataset's.
    out = [check(f"{suite}.schema.columns", "error", "Exactly the contract's columns, no more, no fewer.",
                 gxe.ExpectTableColumnsToMatchSet, column_set=[*columns, *REFERENCE_COLUMNS.get(suite, ())],
                 exact_match=True)]
    out += [check(f"{suite}.{c}.type", "error", f"`{c}` has the contract's type ({t}).",
                  gxe.ExpectColumnValuesToBeOfType, column=c, type_=gx_type_name(t)) for c, t in columns.items()]
    out += [check(f"{suite}.{c}.not_null", "error", f"`{c}` is required.", gxe.ExpectColumnValuesToNotBeNull,
                  column=c) for c in required]
    return out


def contract_checks(suite: str, contract: Contract) -> list[Check]:
    return schema_checks(suite, dict(contract.schema), contract.required)


def key_check(suite: str, key: tuple[str, ...]) -> Check:
    desc = f"No two rows share the key ({', '.join(key)})."
    if len(key) == 1:
        return check(f"{suite}.key.unique", "error", desc, gxe.ExpectColumnValuesToBeUnique, column=key[0])
    return check(f"{suite}.key.unique", "error", desc, gxe.ExpectCompoundColumnsToBeUnique, column_list=list(key))


def row_count_check(suite: str, ctx: SuiteContext) -> Check:
    lo, hi = ROW_COUNT_RATIO
    desc = f"Rows within {lo}x-{hi}x of the same partition the day before (not judged without one)."
    if ctx.previous_rows:
        return check(f"{suite}.row_count.vs_previous_day", "warning", desc, gxe.ExpectTableRowCountToBeBetween,
                     min_value=int(ctx.previous_rows * lo), max_value=int(ctx.previous_rows * hi))
    return check(f"{suite}.row_count.vs_previous_day", "warning", desc, gxe.ExpectTableRowCountToBeBetween, min_value=0)


def dataset_checks(suite: str, contract: Contract, ctx: SuiteContext) -> list[Check]:
    """What the suite of every canonical dataset starts with: the contract's columns, types and
    required fields, its key unique, and the row count against the day before."""
    return [*contract_checks(suite, contract), key_check(suite, contract.key), row_count_check(suite, ctx)]


def non_negative(suite: str, columns, severity: Severity = "error") -> list[Check]:
    return [check(f"{suite}.{c}.non_negative", severity, f"`{c}` >= 0.", gxe.ExpectColumnValuesToBeBetween,
                  column=c, min_value=0) for c in columns]


def in_range(suite: str, bounds: dict[str, tuple[float, str]]) -> list[Check]:
    """`<suite>.<column>.in_range` (error): at most the bound of `transforms/bounds.py` the parsers
    quarantine above (`out_of_range`); an infinite value fails too. `bounds`: column -> (bound, unit)."""
    return [check(f"{suite}.{c}.in_range", "error", f"`{c}` <= {bound:,.10g} {unit} (`out_of_range` at ingest).",
                  gxe.ExpectColumnValuesToBeBetween, column=c, max_value=bound) for c, (bound, unit) in bounds.items()]


def reporting_currency(suite: str, ctx: SuiteContext, rows: str, note: str = "", severity: Severity = "error") -> Check:
    """`<suite>.currency.reporting_currency`: `rows` ("Every line is") in the inventory's currency."""
    return check(f"{suite}.currency.reporting_currency", severity,
                 f"{rows} in the inventory's reporting currency ({ctx.currency}){note}.",
                 gxe.ExpectColumnValuesToBeInSet, column="currency", value_set=[ctx.currency])


def allowed(suite: str, column: str, values, what: str, severity: Severity = "error", rule: str = "allowed") -> Check:
    return check(f"{suite}.{column}.{rule}", severity, f"`{column}` is {what}.", gxe.ExpectColumnValuesToBeInSet,
                 column=column, value_set=sorted(values))


def inside_day(suite: str, column: str, ctx: SuiteContext, *, or_next: bool = False, **kwargs) -> Check:
    """`column` on the partition's UTC day (or, `or_next`, the next: a request in flight at midnight)."""
    rule, what = ("on_partition_day_or_next", ", or the next (a request in flight at midnight)") if or_next else \
        ("inside_partition_day", "")
    return check(f"{suite}.{column}.{rule}", "error", f"`{column}` falls on the partition's UTC day{what}.",
                 gxe.ExpectColumnValuesToBeBetween, column=column, min_value=ctx.day_start,
                 max_value=ctx.day_end + timedelta(days=int(or_next)), strict_max=True, **kwargs)


def not_before(suite: str, name: str, later: str, earlier: str, strict: bool = False,
               severity: Severity = "error") -> Check:
    op = ">" if strict else ">="
    return check(f"{suite}.{name}", severity, f"`{later}` {op} `{earlier}`.",
                 gxe.ExpectColumnPairValuesAToBeGreaterThanB, column_A=later, column_B=earlier, or_equal=not strict,
                 ignore_row_if="either_value_is_missing")


# --- the suites ------------------------------------------------------------------------------

def requests_suite(ctx: SuiteContext) -> list[Check]:
    s = "requests"
    return [
        *dataset_checks(s, REQUESTS, ctx),
        *non_negative(s, ("input_tokens", "cached_input_tokens", "output_tokens", "response_bytes",
                          "queue_s", "ttft_s", "prefill_s", "decode_s")),
        check(f"{s}.input_tokens.within_bounds", "warning", f"At most {MAX_INPUT_TOKENS:,} prompt tokens.",
              gxe.ExpectColumnValuesToBeBetween, column="input_tokens", max_value=MAX_INPUT_TOKENS),
        check(f"{s}.output_tokens.within_bounds", "warning", f"At most {MAX_OUTPUT_TOKENS:,} generated tokens.",
              gxe.ExpectColumnValuesToBeBetween, column="output_tokens", max_value=MAX_OUTPUT_TOKENS),
        *in_range(s, {"input_tokens": (MAX_REQUEST_TOKENS, "tokens"), "output_tokens": (MAX_REQUEST_TOKENS, "tokens"),
                      "response_bytes": (MAX_RESPONSE_BYTES, "bytes"),
                      **dict.fromkeys(("queue_s", "ttft_s", "prefill_s", "decode_s"), (MAX_LATENCY_S, "s"))}),
        not_before(s, "cached_input_tokens.within_input", "input_tokens", "cached_input_tokens"),
        allowed(s, "status", STATUSES, "one of " + ", ".join(STATUSES)),
        allowed(s, "tier", ctx.ids("tiers"), "a tier of the inventory", rule="known"),
        allowed(s, "node_id", ctx.ids("nodes"), "a node of the inventory", rule="known"),
        allowed(s, "pool_id", ctx.ids("pools"), "a pool of the inventory", rule="known"),
        allowed(s, "site_id", ctx.ids("sites"), "a site of the inventory", rule="known"),
        allowed(s, "model", ctx.ids("models"), "a model of the inventory", severity="warning", rule="known"),
        inside_day(s, "completed_at", ctx),
        not_before(s, "completed_at.not_before_arrival", "completed_at", "arrived_at"),
        check(f"{s}.arrived_at.within_a_day_before", "warning", "Arrived at most one day before the partition's day.",
              gxe.ExpectColumnValuesToBeBetween, column="arrived_at", min_value=ctx.day_start - timedelta(days=1)),
    ]


def power_readings_suite(ctx: SuiteContext) -> list[Check]:
    s = "power_readings"
    gpu, node = Col("scope") == "gpu", Col("scope") == "node"
    m = NAMEPLATE_MULTIPLE
    return [
        *dataset_checks(s, POWER_READINGS, ctx),
        *non_negative(s, ("power_w", "energy_j", "interval_energy_j")),
        check(f"{s}.interval_s.positive", "error", "`interval_s` > 0.", gxe.ExpectColumnValuesToBeBetween,
              column="interval_s", min_value=0, strict_min=True),
        *in_range(s, {"power_w": (MAX_METER_W, "W"), "energy_j": (MAX_COUNTER_J, "J"),
                      "interval_power_w": (MAX_METER_W, "W (`interval_energy_j` / `interval_s`)"),
                      "interval_s": (MAX_INTERVAL_S, "s")}),
        check(f"{s}.power_w.within_gpu_nameplate", "error",
              f"A GPU meter reads at most {m} x the GPU's TDP (inventory `gpu_tdp_w`); "
              "examples are (limit W, reading W).", gxe.ExpectColumnPairValuesAToBeGreaterThanB,
              column_A="power_limit_w", column_B="power_w", or_equal=True, ignore_row_if="either_value_is_missing",
              row_condition=gpu),
        check(f"{s}.power_w.within_node_nameplate", "error",
              f"A node meter reads at most {m} x the node's nameplate (inventory `nameplate_w`); "
              "examples are (limit W, reading W).", gxe.ExpectColumnPairValuesAToBeGreaterThanB,
              column_A="power_limit_w", column_B="power_w", or_equal=True, ignore_row_if="either_value_is_missing",
              row_condition=node),
        check(f"{s}.power_w.not_below_node_idle", "warning", IDLE_RULE, gxe.ExpectColumnPairValuesAToBeGreaterThanB,
              column_A="power_w", column_B="idle_floor_w", or_equal=True, ignore_row_if="either_value_is_missing",
              row_condition=node),
        check(f"{s}.power_w.has_measurement", "error", "Every sample carries power, energy or interval energy.",
              gxe.ExpectColumnValuesToNotBeNull, column="power_w",
              row_condition=Col("energy_j").is_null() & Col("interval_energy_j").is_null()),
        allowed(s, "scope", METER_SCOPES, "one of " + ", ".join(METER_SCOPES)),
        allowed(s, "source", POWER_SOURCES, "one of " + ", ".join(POWER_SOURCES)),
        allowed(s, "meter_id", ctx.ids("meters"), "a meter of the inventory (GPU meters `<node>/gpu<i>`)",
                rule="known"),
        allowed(s, "site_id", ctx.ids("sites"), "a site of the inventory", rule="known"),
        inside_day(s, "ts", ctx, row_condition=Col("interval_s").is_null()),
        inside_day(s, "interval_start", ctx, row_condition=Col("interval_s").is_not_null()),
    ]


def cost_lines_suite(ctx: SuiteContext) -> list[Check]:
    s = "cost_lines"
    spent = Col("charge_category").is_in(["Usage", "Purchase", "Tax"])
    return [
        *dataset_checks(s, COST_LINES, ctx),
        reporting_currency(s, ctx, "Every line is", CONVERTED, severity="warning"),
        allowed(s, "source", BILL_SOURCES, "one of " + ", ".join(BILL_SOURCES)),
        allowed(s, "cost_type", COST_TYPES, "one of " + ", ".join(COST_TYPES)),
        allowed(s, "charge_category", FOCUS_CHARGE_CATEGORIES,
                "a FOCUS ChargeCategory (" + ", ".join(FOCUS_CHARGE_CATEGORIES) + ")"),
        allowed(s, "site_id", ctx.ids("sites"), "a site of the inventory", rule="known"),
        not_before(s, "period_end.after_start", "period_end", "period_start", strict=True),
        check(f"{s}.period_start.not_after_delivery", "warning",
              "No charge period starts after the day it was delivered.", gxe.ExpectColumnValuesToBeBetween,
              column="period_start", max_value=ctx.day_end, strict_max=True),
        *[check(f"{s}.{c}.within_bounds", "error", f"|`{c}`| <= {MAX_BILL_LINE:,.0f} per line.",
                gxe.ExpectColumnValuesToBeBetween, column=c, min_value=-MAX_BILL_LINE, max_value=MAX_BILL_LINE)
          for c in ("billed_amount", "effective_amount")],
        check(f"{s}.billed_amount.non_negative_charge", "warning",
              "Usage, Purchase and Tax lines are not negative (credits and adjustments may be).",
              gxe.ExpectColumnValuesToBeBetween, column="billed_amount", min_value=0, row_condition=spent),
        *non_negative(s, ("quantity",), severity="warning"),
        check(f"{s}.energy_price.within_bounds", "error",
              f"Energy lines in kWh price between -{MAX_ENERGY_PRICE_PER_KWH} and {MAX_ENERGY_PRICE_PER_KWH} per kWh "
              "(billed_amount / quantity).", gxe.ExpectColumnValuesToBeBetween, column="price_per_kwh",
              min_value=-MAX_ENERGY_PRICE_PER_KWH, max_value=MAX_ENERGY_PRICE_PER_KWH,
              row_condition=Col("price_per_kwh").is_not_null()),
    ]


def assets_suite(ctx: SuiteContext) -> list[Check]:
    s = "assets"
    return [
        *dataset_checks(s, ASSETS, ctx),
        reporting_currency(s, ctx, "Every asset is", CONVERTED, severity="warning"),
        check(f"{s}.acquisition_cost.within_bounds", "error", f"0 < acquisition cost <= {MAX_ASSET_COST:,.0f}.",
              gxe.ExpectColumnValuesToBeBetween, column="acquisition_cost", min_value=0, max_value=MAX_ASSET_COST,
              strict_min=True),
        *non_negative(s, ("salvage_value",)),
        not_before(s, "salvage_value.within_cost", "acquisition_cost", "salvage_value"),
        check(f"{s}.useful_life_months.within_bounds", "error", f"Useful life of 1 to {MAX_USEFUL_LIFE_MONTHS} months.",
              gxe.ExpectColumnValuesToBeBetween, column="useful_life_months", min_value=1,
              max_value=MAX_USEFUL_LIFE_MONTHS),
        not_before(s, "disposal_date.not_before_service", "disposal_date", "in_service_date"),
        allowed(s, "method", DEPRECIATION_METHODS, "one of " + ", ".join(DEPRECIATION_METHODS)),
        allowed(s, "node_id", ctx.ids("nodes"), "a node of the inventory", rule="known"),
        allowed(s, "site_id", ctx.ids("sites"), "a site of the inventory", rule="known"),
    ]


def inventory_nodes_suite(ctx: SuiteContext) -> list[Check]:
    s = "inventory"
    return [
        # pool_id and gpu_tdp_w are null on infrastructure nodes (the parser requires them of serving nodes).
        *schema_checks(s, NODES_COLUMNS,
                       ["node_id", "site_id", "gpus", "idle_w", "nameplate_w", "reserved_kw", "role"]),
        key_check(s, ("node_id",)),
        check(f"{s}.cloud_resource_id.unique", "error", "No two nodes rent the same cloud resource.",
              gxe.ExpectColumnValuesToBeUnique, column="cloud_resource_id"),
        check(f"{s}.gpus.within_bounds", "error", "0 (infrastructure) to 64 GPUs per node.",
              gxe.ExpectColumnValuesToBeBetween, column="gpus", min_value=0, max_value=64),
        check(f"{s}.gpu_tdp_w.within_bounds", "warning", "GPU TDP between 50 and 2,000 W.",
              gxe.ExpectColumnValuesToBeBetween, column="gpu_tdp_w", min_value=50, max_value=2000),
        not_before(s, "nameplate_w.covers_gpus", "nameplate_w", "gpus_tdp_w"),
        not_before(s, "idle_w.within_nameplate", "nameplate_w", "idle_w"),
        *non_negative(s, ("idle_w", "reserved_kw")),
        allowed(s, "pool_id", ctx.ids("pools"), "a pool of the inventory", rule="known"),
        allowed(s, "site_id", ctx.ids("sites"), "a site of the inventory", rule="known"),
    ]


def request_costs_suite(ctx: SuiteContext) -> list[Check]:
    s = "request_costs"
    energy = ("it_energy_j", "overhead_energy_j", "energy_kwh")
    return [
        *schema_checks(s, REQUEST_COSTS_COLUMNS, [c for c in REQUEST_COSTS_COLUMNS
                                                  if c not in ("response_bytes", "ttft_s")]),
        key_check(s, ("request_id",)),
        row_count_check(s, ctx),
        *non_negative(s, (*energy, *REQUEST_COSTS_MONEY, "occupied_s", "input_tokens", "cached_input_tokens",
                          "output_tokens")),
        check(f"{s}.fully_loaded_cost.within_bounds", "warning",
              f"A request costs at most {MAX_REQUEST_COST:,.0f} fully loaded.", gxe.ExpectColumnValuesToBeBetween,
              column="fully_loaded_cost", max_value=MAX_REQUEST_COST),
        not_before(s, "fully_loaded_cost.covers_direct", "fully_loaded_cost", "direct_cost"),
        reporting_currency(s, ctx, "Facts are"),
        allowed(s, "status", STATUSES, "one of " + ", ".join(STATUSES)),
        allowed(s, "tier", ctx.ids("tiers"), "a tier of the inventory", rule="known"),
        allowed(s, "energy_method", ("measured", "interpolated", "estimated", "none"),
                "measured, interpolated, estimated or none"),
        allowed(s, "pue_method", ("measured", "design_pue", "none"), "measured, design_pue or none"),
        allowed(s, "idle_policy", ("pro_rata", "reserved", "none"), "pro_rata, reserved or none"),
        allowed(s, "weight", ("time", "tokens"), "time or tokens"),
        inside_day(s, "completed_at", ctx, or_next=True),
        check(f"{s}.date.partition_day", "error", "`date` is the partition's day.", gxe.ExpectColumnValuesToBeBetween,
              column="date", min_value=datetime.combine(ctx.day or date(2000, 1, 1), time()),
              max_value=datetime.combine(ctx.day or date(2000, 1, 1), time())),
    ]


# --- reference columns the suites compare against ---------------------------------------------

def prepare(suite: str, frame: pl.LazyFrame, ctx: SuiteContext) -> pl.LazyFrame:
    """The frame GX validates: the dataset's rows with the reference columns its suite needs.
    A frame missing an input of a reference column gets it null (its schema checks fail)."""
    names = set(frame.collect_schema().names())
    if suite == "power_readings":
        if not {"meter_id", "scope", "ts", "interval_s", "interval_energy_j"} <= names:
            return frame.with_columns(pl.lit(None, UTC if c == "interval_start" else pl.Float64).alias(c)
                                      for c in REFERENCE_COLUMNS["power_readings"])
        limits = (ctx.inventory.meter_power_limits() if ctx.inventory else pl.LazyFrame(schema=METER_LIMITS_SCHEMA)
                  ).select("meter_id", "scope", "power_limit_w", (pl.col("idle_w") * IDLE_FLOOR).alias("idle_floor_w"))
        # The limit follows the meter id and the reading's own scope: a node meter mislabelled as
        # gpu gets no limit here and fails the `meter_id.known` or `scope` checks instead.
        return (frame.join(limits, on=["meter_id", "scope"], how="left", maintain_order="left")
                .with_columns((pl.col("ts") - pl.duration(microseconds=(pl.col("interval_s") * 1e6).cast(pl.Int64)))
                              .alias("interval_start"),
                              pl.when(pl.col("interval_s") > 0).then(pl.col("interval_energy_j") / pl.col("interval_s"))
                              .alias("interval_power_w")))
    if suite == "cost_lines":
        if not {"cost_type", "unit", "quantity", "billed_amount"} <= names:
            return frame.with_columns(pl.lit(None, pl.Float64).alias("price_per_kwh"))
        kwh = ((pl.col("cost_type") == "energy") & (pl.col("unit").str.to_lowercase() == "kwh")
               & (pl.col("quantity") > 0))
        return frame.with_columns(pl.when(kwh).then(pl.col("billed_amount") / pl.col("quantity"))
                                  .alias("price_per_kwh"))
    if suite == "inventory":
        return frame.with_columns((pl.col("gpus").cast(pl.Float64) * pl.col("gpu_tdp_w")).alias("gpus_tdp_w"))
    return frame


# Columns `prepare` adds: not part of the dataset, so the schema check ignores them.
REFERENCE_COLUMNS = {"power_readings": ("power_limit_w", "interval_start", "interval_power_w", "idle_floor_w"),
                     "cost_lines": ("price_per_kwh",), "inventory": ("gpus_tdp_w",)}

SUITES: dict[str, Callable[[SuiteContext], list[Check]]] = {
    "requests": requests_suite, "power_readings": power_readings_suite, "cost_lines": cost_lines_suite,
    "assets": assets_suite, "inventory": inventory_nodes_suite, "request_costs": request_costs_suite}


def catalog(suite: str) -> list[Check]:
    """The suite's checks with placeholder parameters: their names, severities and descriptions."""
    return SUITES[suite](SuiteContext())
