"""Power meter readings, every raw format, to parsed frames of the POWER_READINGS contract.

Each parser is `parse_X(raw, inventory, site_id) -> parsed LazyFrame` (see `common`): the
contract's columns, `_source_file`, `_source_row`, `_reason`, `_detail`, and `_measure` for
DCGM and Redfish, whose records each carry one measure (power or energy) of a canonical row.
The pipeline then calls `classify(parsed, POWER_READINGS, day, day_column="ts")`.

| parser | raw frame (lake.readers, lake.json_lines) | files |
|---|---|---|
| parse_dcgm_prometheus | scan_text_lines | `<site>/dcgm/*.prom` |
| parse_ipmi_sdr | scan_text_lines | `<site>/ipmi/ipmi_sdr_<host>_*.txt` |
| parse_redfish_sensors | scan_redfish_sensors | `<site>/redfish/redfish_<host>_*.jsonl` |
| parse_facility_csv | scan_csv_text | `<site>/facility/*.csv` |
| parse_canonical_power | scan_csv_text or scan_parquet_files | `<site>/canonical/power_readings*` |
"""

import polars as pl

from transforms.bounds import MAX_COUNTER_J, MAX_INTERVAL_S, MAX_METER_W, out_of_range
from transforms.contracts import POWER_READINGS
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import first_reason, parse_utc
from transforms.ingest.power_bmc import parse_ipmi_sdr, parse_redfish_sensors
from transforms.ingest.power_dcgm import parse_dcgm_prometheus
from transforms.ingest.power_meters import J_PER_KWH, finish, other_site, unjudged
from transforms.inventory import Inventory

__all__ = ["parse_dcgm_prometheus", "parse_ipmi_sdr", "parse_redfish_sensors", "parse_facility_csv",
           "parse_canonical_power"]

FACILITY_COLUMNS = ("meter_id", "interval_start", "interval_minutes", "kwh")
# Columns a canonical file may leave out: the meter's inventory values fill them.
INVENTORY_DEFAULTS = ("scope", "site_id", "node_id", "gpu_index")
MAX_INTERVAL_MINUTES = MAX_INTERVAL_S / 60
METER_W_FIX = "check the export's unit; no meter of one site carries that much"


def parse_facility_csv(raw: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """Parse `scan_csv_text` of facility meter interval CSVs (`meter_id,interval_start,
    interval_minutes,kwh`) into interval readings: `ts` = interval end in UTC (`interval_start`
    carries the site's local offset), `interval_s` = minutes x 60, `interval_energy_j` =
    kWh x 3.6e6 J. The meter must be a facility meter of this site."""
    schema = raw.collect_schema()
    text = {c: (pl.col(c).str.strip_chars() if c in schema else pl.lit(None, pl.String)) for c in FACILITY_COLUMNS}
    meters = inventory.meters_frame().select("meter_id", pl.col("scope").alias("_scope"), "site_id")
    rows = (
        raw.with_columns(*(e.alias(f"_{c}") for c, e in text.items()))
        .with_columns(
            pl.col("_meter_id").alias("meter_id"),
            parse_utc(pl.col("_interval_start")).alias("_start"),
            pl.col("_interval_minutes").cast(pl.Float64, strict=False).alias("_minutes"),
            pl.col("_kwh").cast(pl.Float64, strict=False).alias("_kwh_value"),
        )
        .join(meters, on="meter_id", how="left")
    )
    minutes, kwh = pl.col("_minutes"), pl.col("_kwh_value")
    ok_minutes = pl.when(minutes.is_between(0, MAX_INTERVAL_MINUTES, closed="right")).then(minutes)
    # The interval's average power: the bound of any meter holds a facility meter too.
    mean_w = kwh * J_PER_KWH / (ok_minutes * 60.0)
    empty = {c: pl.col(f"_{c}").fill_null("") == "" for c in FACILITY_COLUMNS}
    checks = [
        *((empty[c], "missing_required_field", f"`{c}` is empty; the interval file needs {', '.join(FACILITY_COLUMNS)}")
          for c in FACILITY_COLUMNS),
        (pl.col("_scope").is_null(), "unknown_meter",
         pl.format("meter {} is not in the inventory; add it under `meters:` (scope facility)", "meter_id")),
        (pl.col("_scope") != "facility", "unknown_meter",
         pl.format("meter {} is a {} meter, not a facility meter; correct the meter id", "meter_id", "_scope")),
        other_site(site_id),
        (pl.col("_start").is_null(), "bad_timestamp",
         pl.format("`interval_start` {} is not RFC 3339 with a UTC offset",
                   pl.col("_interval_start").str.slice(0, 40))),
        out_of_range(minutes, MAX_INTERVAL_MINUTES, "`interval_minutes`", "minutes",
                     "write the interval's length in minutes", shown=pl.col("_interval_minutes")),
        (ok_minutes.is_null(), "invalid_value",
         pl.format(f"`interval_minutes` {{}} is not a number of minutes in (0, {MAX_INTERVAL_MINUTES:g}]",
                   pl.col("_interval_minutes").str.slice(0, 40))),
        (kwh.is_null() | kwh.is_nan() | kwh.is_infinite(), "invalid_value",
         pl.format("`kwh` {} is not a number", pl.col("_kwh").str.slice(0, 40))),
        (kwh < 0, "negative_value", pl.format("`kwh` is negative ({}); a facility meter interval cannot be", "_kwh")),
        out_of_range(mean_w, MAX_METER_W, pl.format("meter {} `kwh` {} over {} minutes: mean power", "meter_id", "_kwh",
                                                    "_interval_minutes"), "W", METER_W_FIX),
    ]
    parsed = unjudged(rows).with_columns(first_reason(checks)).with_columns(
        pl.when(pl.col("_scope") == "facility").then(pl.col("_scope")).alias("scope"),
        pl.lit(None, pl.String).alias("node_id"),
        pl.lit(None, pl.Int16).alias("gpu_index"),
        (pl.col("_start") + pl.duration(microseconds=(ok_minutes * 60e6).round(0).cast(pl.Int64))).alias("ts"),
        pl.lit(None, pl.Float64).alias("power_w"),
        pl.lit(None, pl.Float64).alias("energy_j"),
        (kwh * J_PER_KWH).alias("interval_energy_j"),
        (ok_minutes * 60.0).alias("interval_s"),
        pl.lit(False).alias("counter_reset"),
        pl.lit("facility_csv").alias("source"),
    )
    return finish(parsed)


def parse_canonical_power(raw: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """Parse the canonical power_readings columns (`scan_csv_text` or `scan_parquet_files`).

    Columns the file lacks take the meter's inventory values (scope, site_id, node_id,
    gpu_index), `source` "canonical" and `counter_reset` False (also where a cell is empty;
    `accepted` recomputes resets). The meter must be in the inventory and of this site."""
    meters = inventory.meters_frame().join(inventory.meter_power_limits().select("meter_id", "power_limit_w"),
                                           on="meter_id", how="left").select(
        pl.col("meter_id").alias("_meter_key"), *(pl.col(c).alias(f"_inv_{c}") for c in INVENTORY_DEFAULTS),
        pl.col("power_limit_w").fill_null(MAX_METER_W).alias("_power_limit_w"))
    schema = raw.collect_schema()
    key = pl.col("meter_id").cast(pl.String).str.strip_chars() if "meter_id" in schema else pl.lit(None, pl.String)
    keyed = raw.with_columns(key.alias("_meter_key")).join(meters, on="_meter_key", how="left")
    defaults = {c: pl.col(f"_inv_{c}") for c in INVENTORY_DEFAULTS}
    parsed = parse_canonical(keyed, POWER_READINGS, defaults={
        **defaults, "source": pl.lit("canonical"), "counter_reset": pl.lit(False)})
    inventory_site = meters.select(pl.col("_meter_key").alias("meter_id"), "_inv_site_id", "_power_limit_w")
    meter = pl.format("meter {}", "meter_id")
    checks = [
        (pl.col("_inv_site_id").is_null() & pl.col("meter_id").is_not_null(), "unknown_meter",
         pl.format("meter {} is not in the inventory; add it under `meters:` or correct the id", "meter_id")),
        (pl.col("site_id") != pl.col("_inv_site_id"), "invalid_value",
         pl.format("`site_id` {} disagrees with the inventory (meter {} is at site {})",
                   "site_id", "meter_id", "_inv_site_id")),
        other_site(site_id),
        out_of_range(pl.col("power_w"), pl.col("_power_limit_w"), pl.format("{} `power_w`", meter), "W",
                     "check the unit (W); a GPU or node meter's limit is its nameplate's in the inventory, "
                     "any other meter's the bound of any meter"),
        out_of_range(pl.col("energy_j"), MAX_COUNTER_J, pl.format("{} `energy_j`", meter), "J", "check the unit (J)"),
        out_of_range(pl.col("interval_s"), MAX_INTERVAL_S, pl.format("{} `interval_s`", meter), "s",
                     "write the interval's length in seconds"),
        out_of_range(pl.col("interval_energy_j") / pl.col("interval_s"), MAX_METER_W,
                     pl.format("{} `interval_energy_j` / `interval_s`", meter), "W", METER_W_FIX),
    ]
    judged = (parsed.join(inventory_site, on="meter_id", how="left")
              .with_columns(first_reason(checks))
              .with_columns(pl.col("counter_reset").fill_null(False)))
    return finish(judged)
