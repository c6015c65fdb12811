"""Node power from the BMC: `ipmitool sdr` text dumps and Redfish Sensor polls, one file per host."""

import polars as pl

from transforms.bounds import MAX_COUNTER_J, NAMEPLATE_MULTIPLE, out_of_range
from transforms.ingest.common import first_reason, parse_utc
from transforms.ingest.power_meters import J_PER_KWH, finish, host_checks, host_from_file, node_meters, unjudged
from transforms.inventory import Inventory

# Node power sensors read when the meter names none, in order of preference (the first with a Watts
# reading in the file wins): the whole chassis's input, then the system's input under its vendors'
# names, and a single supply's output last (one of several PSUs on most servers). Never a
# sub-component rail (`CPU Power`, `Mem Power`, `Sys Fan Pwr`, `PSU1 DC Out Pwr`, `GPU Board Power`):
# they are not in the list. On Harvard FASRC's Lenovo GPU node holygpu8a11101 `Sys Power` reads
# 20 W (the system board) beside `Chassis Power` 450 W; on its other nodes `Sys Power` is the only
# one present and equals the PSUs' AC inputs. A meter's `sensor:` in the inventory overrides it.
IPMI_DEFAULT_SENSORS = ("Chassis Power", "Total Power", "Pwr Consumption", "Sys Power", "PSU Power")
REDFISH_POWER_SENSOR = "TotalPower"
REDFISH_ENERGY_SENSOR = "TotalEnergy"
NODE_POWER_FIX = (f"above {NAMEPLATE_MULTIPLE} x the node's nameplate; check the sensor's unit (W) and the meter's "
                  "`sensor:`, or the node's `nameplate_w` in the inventory")


def _with_limits(meters: pl.LazyFrame, inventory: Inventory) -> pl.LazyFrame:
    return meters.join(inventory.meter_power_limits().select("meter_id", "power_limit_w"), on="meter_id", how="left")


def _sensor_lines(lines: pl.LazyFrame) -> pl.LazyFrame:
    """`name | value unit | status` lines: `_sensor`, `_value` (text) and `_watts` (a Watts reading)."""
    return lines.select(
        "_source_file", "_block",
        pl.col("line").str.extract(r"^([^|]*)\|", 1).str.strip_chars().alias("_sensor"),
        pl.col("line").str.extract(r"^[^|]*\|([^|]*)", 1).str.strip_chars().alias("_value"),
    ).with_columns(
        pl.col("_value").str.extract(r"^([-+]?\d+(?:\.\d+)?)\s+Watts$", 1).cast(pl.Float64).alias("_watts"))


def parse_ipmi_sdr(raw: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """Parse `scan_text_lines` of `ipmitool sdr` dumps (`ipmi_sdr_<host>_*.txt`) into node power readings.

    A record is one `Timestamp: YYYY-MM-DD HH:MM:SS UTC` block (`_source_row` is the line of
    `Timestamp:`; lines before the first one form one malformed record). The host's meter is
    its node meter with source ipmi; its `sensor:` names the power sensor read (W -> `power_w`),
    by default the first of IPMI_DEFAULT_SENSORS with a Watts reading in the file. A block
    without a reading of that sensor is `sensor_no_reading` (BMC silent, `no reading`)."""
    lines = raw.with_columns(
        pl.col("line").str.strip_chars_start().str.starts_with("Timestamp:").alias("_is_ts")
    ).with_columns(pl.col("_is_ts").cast(pl.Int64).cum_sum().over("_source_file", order_by="_source_row")
                   .alias("_block"))
    # Read twice below (sensor lines, blocks): cached, so the files are read and numbered once
    # (remote-plains at 10M: 2.4 s -> 1.2 s).
    lines = lines.cache()
    # Only lines that may name the power sensor (a default one, or one a meter names) are parsed:
    # a plain substring test keeps every such line and drops most of a dump cheaply.
    named = [m.sensor.strip() for m in inventory.meters if m.source == "ipmi" and m.sensor and m.sensor.strip()]
    candidates = sorted({*IPMI_DEFAULT_SENSORS, *named})
    sensors = _sensor_lines(lines.filter(~pl.col("_is_ts") & pl.col("line").str.contains_any(candidates)))
    rank = pl.col("_sensor").replace_strict({s: i for i, s in enumerate(IPMI_DEFAULT_SENSORS)}, default=None,
                                            return_dtype=pl.Int32)
    default_sensor = (
        sensors.filter(pl.col("_watts").is_not_null()).with_columns(rank.alias("_rank"))
        .filter(pl.col("_rank").is_not_null())
        .group_by("_source_file").agg(pl.col("_sensor").sort_by("_rank").first().alias("_default_sensor"))
    )
    readings = sensors.unique(["_source_file", "_block", "_sensor"], keep="first", maintain_order=True)
    blocks = (
        lines.group_by("_source_file", "_block")
        .agg(pl.col("_source_row").min(), pl.col("line").filter(pl.col("_is_ts")).first().alias("_ts_line"))
        .with_columns(host_from_file("ipmi_sdr_", "txt").alias("_host"))
        .join(_with_limits(node_meters(inventory, "ipmi"), inventory), on="_host", how="left")
        .join(default_sensor, on="_source_file", how="left")
        .with_columns(pl.coalesce("_sensor", "_default_sensor").alias("_sensor"))
        .join(readings, on=["_source_file", "_block", "_sensor"], how="left")
    )
    stamp = pl.col("_ts_line").str.extract(r"^\s*Timestamp:\s*(.*?)\s*$", 1).str.replace(r"\s*(?:UTC|GMT)$", "+00:00")
    blocks = blocks.with_columns(parse_utc(stamp).alias("ts"))
    checks = [
        (pl.col("_block") == 0, "malformed_record",
         "lines before the first `Timestamp:` line; every sample of an sdr dump starts with one"),
        *host_checks("ipmi", site_id, "ipmi_sdr_<host>_<anything>.txt"),
        (pl.col("ts").is_null(), "bad_timestamp",
         "the `Timestamp:` line is not `Timestamp: YYYY-MM-DD HH:MM:SS UTC`; fix the collector"),
        (pl.col("_sensor").is_null(), "sensor_no_reading",
         pl.format(f"no default power sensor ({', '.join(IPMI_DEFAULT_SENSORS)}) has a Watts reading in this file; "
                   "set `sensor:` on meter {}", "meter_id")),
        (pl.col("_watts").is_null(), "sensor_no_reading",
         pl.format("sensor `{}` gave no Watts reading in this sample ({})", "_sensor",
                   pl.col("_value").str.slice(0, 40).fill_null("no line"))),
        (pl.col("_watts") < 0, "negative_value", pl.format("sensor `{}` reads {}", "_sensor", "_value")),
        out_of_range(pl.col("_watts"), pl.col("power_limit_w"),
                     pl.format("node meter {} sensor `{}`", "meter_id", "_sensor"), "W", NODE_POWER_FIX),
    ]
    parsed = unjudged(blocks).with_columns(first_reason(checks)).with_columns(
        pl.lit(None, pl.Int16).alias("gpu_index"),
        pl.col("_watts").alias("power_w"),
        pl.lit(None, pl.Float64).alias("energy_j"),
        pl.lit(None, pl.Float64).alias("interval_energy_j"),
        pl.lit(None, pl.Float64).alias("interval_s"),
        pl.lit(False).alias("counter_reset"),
        pl.lit("ipmi").alias("source"),
    )
    return finish(parsed)


def parse_redfish_sensors(polls: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """Parse Redfish Sensor polls (`redfish_<host>_*.jsonl`) into node power readings. `polls` is one
    row per line with its Sensor fields as text, as `lake.json_lines.scan_redfish_sensors` reads them
    (`_source_file`, `_source_row`, `_json_ok`: the line is a JSON object; `_id`, `_reading` as JSON
    text, `_units`, `_time`).

    A record is a line whose `Id` is the host meter's power sensor (`sensor:`, default
    TotalPower; `ReadingUnits` W -> `power_w`, `_measure` "power") or TotalEnergy (kW.h,
    cumulative -> `energy_j` in J, `_measure` "energy"), and any line that is not a JSON object
    with an `Id`. Other sensors of the host are not records and are not counted; every line of
    a host without a redfish meter is one (`unknown_node` / `unknown_meter`). `ReadingTime` must
    carry a UTC offset; it is converted to UTC."""
    power_sensor = pl.coalesce("_sensor", pl.lit(REDFISH_POWER_SENSOR))
    is_power, is_energy = pl.col("_id") == power_sensor, pl.col("_id") == REDFISH_ENERGY_SENSOR
    polls = (
        polls.with_columns(host_from_file("redfish_", "jsonl").alias("_host"))
        .join(_with_limits(node_meters(inventory, "redfish"), inventory), on="_host", how="left")
        .filter(~pl.col("_json_ok") | pl.col("_id").is_null() | pl.col("meter_id").is_null() | is_power | is_energy)
        .with_columns(pl.when(is_energy & ~is_power).then(pl.lit("energy")).otherwise(pl.lit("power"))
                      .alias("_measure"),
                      pl.col("_reading").cast(pl.Float64, strict=False).alias("_v"),
                      parse_utc(pl.col("_time")).alias("ts"))
    )
    v, power = pl.col("_v"), pl.col("_measure") == "power"
    unit = pl.when(power).then(pl.lit("W")).otherwise(pl.lit("kW.h"))
    checks = [
        (~pl.col("_json_ok") | pl.col("_id").is_null(), "malformed_record",
         "not a JSON object with an `Id`; each line must be one Redfish Sensor resource"),
        *host_checks("redfish", site_id, "redfish_<host>_<anything>.jsonl"),
        (pl.col("_time").is_null(), "missing_required_field",
         pl.format("sensor {} has no `ReadingTime`; the poller must keep the BMC's reading time", "_id")),
        (pl.col("ts").is_null(), "bad_timestamp",
         pl.format("`ReadingTime` {} is not RFC 3339 with a UTC offset", pl.col("_time").str.slice(0, 40))),
        (pl.col("_reading").is_null() | (pl.col("_reading") == "null"), "sensor_no_reading",
         pl.format("sensor {} has no `Reading`", "_id")),
        (v.is_null() | v.is_nan() | v.is_infinite(), "invalid_value",
         pl.format("sensor {} `Reading` {} is not a finite number", "_id", pl.col("_reading").str.slice(0, 40))),
        (pl.col("_units").fill_null("") != unit, "invalid_value",
         pl.format("sensor {} reads in `{}`, expected `{}`", "_id", pl.col("_units").fill_null("none"), unit)),
        (v < 0, "negative_value", pl.format("sensor {} reads {}", "_id", "_reading")),
        out_of_range(pl.when(power).then(v), pl.col("power_limit_w"),
                     pl.format("node meter {} sensor {}", "meter_id", "_id"), "W", NODE_POWER_FIX,
                     shown=pl.col("_reading")),
        out_of_range(pl.when(~power).then(v), MAX_COUNTER_J / J_PER_KWH,
                     pl.format("node meter {} sensor {}", "meter_id", "_id"), "kW.h",
                     "check the sensor's unit (kW.h)", shown=pl.col("_reading")),
    ]
    parsed = unjudged(polls).with_columns(first_reason(checks)).with_columns(
        pl.lit(None, pl.Int16).alias("gpu_index"),
        pl.when(power).then(v).alias("power_w"),
        pl.when(~power).then(v * J_PER_KWH).alias("energy_j"),
        pl.lit(None, pl.Float64).alias("interval_energy_j"),
        pl.lit(None, pl.Float64).alias("interval_s"),
        pl.lit(False).alias("counter_reset"),
        pl.lit("redfish").alias("source"),
    )
    return finish(parsed, measure=True)
