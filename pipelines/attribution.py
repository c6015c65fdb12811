"""One day of attribution against the lake: read the canonical inputs, run the transforms,
check conservation, write the eight outputs as one commit. Plain Python (no Dagster): the asset and
the CLI call `attribute_partition`.
"""

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from lake.bills import day_bill_lines
from lake.store import Lake
from settings import default
from transforms.attribution.day import DayInputs, day_outputs, finish_day, share_day
from transforms.attribution.grid import SlotGrid
from transforms.attribution.reconcile import ENERGY_RELATIVE_TOLERANCE, MONEY_TOLERANCE, conservation_failures
from transforms.contracts import ASSETS, FX_RATES, MARKET_PRICES, POWER_READINGS, REQUESTS
from transforms.inventory import Inventory

# Lake datasets written per day by the attribution, in the order they are written.
OUTPUTS = ("request_costs", "node_slots", "pool_idle", "site_hours", "true_up", "unattributed", "reconciliation",
           "totals")


# zstd level of `request_costs` (the other outputs are small and keep the lake's default, 3):
# at 10 M requests level 1 takes ~1.6 CPU-s less to write for a 1% larger file (916 vs 905 MiB).
FACTS_ZSTD_LEVEL = 1


def day_commit(day: date) -> str:
    """The commit of a day's outputs (`Lake.batch`): `<lake>/_commits/attribution/date=D.json`."""
    return f"attribution/date={day.isoformat()}"


class ConservationError(RuntimeError):
    """Attribution lost or invented money or energy: the day is not published."""


@dataclass
class AttributionOutcome:
    day: date
    requests: int = 0
    totals: list[dict] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    unattributed: float = 0.0


class MissingInput(RuntimeError):
    """An input the day's attribution needs was not ingested."""


def _scan(files: list[Path], schema: pl.Schema) -> pl.LazyFrame:
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(files, schema=schema, hive_partitioning=False)


def load_day_inputs(lake: Lake, inventory: Inventory, day: date) -> DayInputs:
    """The day's requests (and the next day's, when ingested: `DayInputs.next_day_requests`) and
    readings; the bill lines touching the day, whenever delivered, each bill in its latest
    delivery (`lake.bills.day_bill_lines`); the latest asset register
    delivered on or before the day (`Lake.delivered_days`: not a day whose ingest found none);
    the day's hourly prices of the inventory's market tariffs (None when no tariff is a market
    one); every reference exchange rate ever delivered (`fx_rates`, the latest delivery of a date
    and currency wins: the rate of a day is a fact of that day, whenever the file came)."""
    requests = _scan(lake.day_files("requests", day), REQUESTS.schema)
    # The next day's log, when ingested: its requests in flight at midnight occupy this day too.
    next_files = lake.day_files("requests", day + timedelta(days=1))
    next_day = _scan(next_files, REQUESTS.schema) if next_files else None
    readings = _scan(lake.day_files("power_readings", day), POWER_READINGS.schema)

    cost_lines = day_bill_lines(lake, day)

    # The register in force is the latest one delivered on or before the day: a day without a
    # delivery has an empty partition (its ingest found no file), which is not a register.
    in_force = [d for d in lake.delivered_days("assets") if d <= day]
    assets = (_scan(lake.day_files("assets", in_force[-1]), ASSETS.schema) if in_force
              else pl.LazyFrame(schema=ASSETS.schema))

    market_prices = None
    if any(t.kind == "market" for t in inventory.tariffs):
        if not lake.has_partition("market_prices", day):
            raise MissingInput(f"{lake.partition_dir('market_prices', day)}: the market prices of {day} are not "
                               f"ingested; ingest the day first (`inferledger ingest --date {day}`)")
        market_prices = _scan(lake.day_files("market_prices", day), MARKET_PRICES.schema)
    return DayInputs(requests, readings, cost_lines, assets, market_prices, fx_rates=delivered_fx_rates(lake),
                     next_day_requests=next_day)


def delivered_fx_rates(lake: Lake) -> pl.LazyFrame:
    """Every delivered rate, one per date and currency (the latest delivery; partitions are named
    `date=<delivery day>`, so their paths sort by delivery)."""
    files = [f for d in lake.days("fx_rates") for f in lake.day_files("fx_rates", d)]
    if not files:
        return pl.LazyFrame(schema=FX_RATES.schema)
    return (pl.scan_parquet(files, schema=FX_RATES.schema, hive_partitioning=False, include_file_paths="_file")
            .sort("_file").group_by("date", "currency", maintain_order=True).last()
            .select(FX_RATES.names).sort("date", "currency"))


def attribute_partition(day: date, lake: Lake, inventory: Inventory, *, slot_s: int = default("slot_s"),
                        weight: str = default("weight"), gap_limit_s: float = default("gap_limit_s"),
                        morsel_rows: int = default("morsel_rows")) -> AttributionOutcome:
    """Attribute `day` (slots of `slot_s` seconds, shared by `weight`, meter gaps up to
    `gap_limit_s` seconds interpolated; the requests streamed `morsel_rows` rows at a time: smaller
    morsels keep the facts' Parquet sink small, settings/__init__.py); raises ConservationError
    (writing nothing) when any source line or total does not add up to a cent (1e-9 relative for
    energy)."""
    started = time.perf_counter()
    grid = SlotGrid(day, slot_s)
    shared = share_day(load_day_inputs(lake, inventory, day), inventory, grid,
                       weight=weight, gap_limit_s=gap_limit_s)
    # The request-sized frames are never held: the per-request shares are a plan over the
    # lake's requests, run once for the pool-tier sums (inside `finish_day`) and once more
    # streaming into the facts file; memory stays bounded by the node-slot frames.
    facts_file = lake.scratch()
    try:
        with pl.Config(streaming_chunk_size=morsel_rows):
            facts, pool_idle = finish_day(shared, shared.per_request, inventory, weight=weight)
            facts.sink_parquet(facts_file, engine="streaming", compression="zstd",
                               compression_level=FACTS_ZSTD_LEVEL, statistics=True)
        out = day_outputs(shared, pl.scan_parquet(facts_file), pool_idle)
        small = [name for name in OUTPUTS if name != "request_costs"]
        frames = dict(zip(small, pl.collect_all([getattr(out, name) for name in small]), strict=True))
        n_requests = pl.scan_parquet(facts_file).select(pl.len()).collect().item()
        _check_conservation(day, frames)
        result = AttributionOutcome(day, requests=n_requests, totals=frames["totals"].to_dicts())
        # The eight outputs of the day are one commit: a reader sees all of the previous run's or
        # all of this one's, whenever the process is killed (lake.commits).
        with lake.batch(day_commit(day)) as batch:
            batch.adopt(facts_file, "request_costs", day)
            for name in small:
                batch.write(frames[name], name, day)
            result.paths = dict(zip(OUTPUTS, map(str, batch.commit()), strict=True))
    finally:
        facts_file.unlink(missing_ok=True)
    result.unattributed = float(frames["unattributed"].filter(pl.col("currency") == inventory.currency)["amount"].sum())
    result.seconds = time.perf_counter() - started
    return result


def _check_conservation(day: date, frames: dict[str, pl.DataFrame]) -> None:
    failures = conservation_failures(frames["reconciliation"])
    totals = frames["totals"]
    off = totals.filter(
        pl.when(pl.col("unit") != "J")
        .then((pl.col("requests_difference").abs() > MONEY_TOLERANCE)
              | (pl.col("idle_difference").abs() > MONEY_TOLERANCE))
        .otherwise((pl.col("requests_difference").abs()
                    > ENERGY_RELATIVE_TOLERANCE * pl.col("source_amount").abs().clip(lower_bound=1.0))
                   | (pl.col("idle_difference").abs()
                      > ENERGY_RELATIVE_TOLERANCE * pl.col("source_amount").abs().clip(lower_bound=1.0))))
    if failures.height or off.height:
        lines = [f"  {r['source']} {r['line_id']} {r['component']}: source {r['source_amount']:.6f}, requests "
                 f"{r['to_requests']:.6f}, idle {r['to_idle']:.6f}, unattributed {r['unattributed']:.6f}, "
                 f"difference {r['difference']:.6f}" for r in failures.head(20).iter_rows(named=True)]
        lines += [f"  total {r['component']}: lines say requests {r['to_requests']:.6f} / idle {r['to_idle']:.6f}, "
                  f"facts hold {r['in_requests']:.6f} / {r['in_idle']:.6f}" for r in off.iter_rows(named=True)]
        raise ConservationError(f"attribution of {day} does not conserve ({failures.height} line(s), "
                                f"{off.height} total(s)); nothing was written:\n" + "\n".join(lines))

