"""DCGM exporter scrapes (Prometheus text exposition) to GPU power readings."""

import polars as pl

from transforms.bounds import NAMEPLATE_MULTIPLE, out_of_range
from transforms.contracts import UTC_US
from transforms.ingest.common import first_reason
from transforms.ingest.power_meters import finish, other_site, unjudged
from transforms.inventory import Inventory

# The two fields read, and which measure of a canonical row each sample carries.
DCGM_MEASURES = {"DCGM_FI_DEV_POWER_USAGE": "power", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy"}

# DCGM "blank" values (not supported / no data): int64 fields from DCGM_INT64_BLANK (the energy
# counter), fp64 fields from DCGM_FP64_BLANK (power). Both are tested on both measures: no real
# reading comes near either.
INT64_BLANK_MIN = 9223372036854775792
FP64_BLANK = (140737488355328.0, 140737488355331.0)

_METRIC = r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)"
_SAMPLE = r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{(?P<_labels>[^}]*)\})?\s+(?P<_value>\S+)(?:\s+(?P<_ts>\S+))?\s*$"
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def _label(name: str) -> pl.Expr:
    return pl.col("_labels").str.extract(rf'(?:^|,)\s*{name}\s*=\s*"([^"]*)"', 1)


# The shape of nearly every exporter line: `name{labels} value timestamp`, single spaces, nothing
# before or after. Its fields are plain splits there; any other line goes through the regular
# expressions, whose capture groups cost 2.5 s on the 3 M samples of a 10 M-request day's site.
_PLAIN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\} \S+ \S+$"


def sample_fields(lines: pl.LazyFrame, *, plain_splits: bool = True) -> pl.LazyFrame:
    """The lines (`scan_text_lines`) that are samples of the DCGM_MEASURES, with `_metric`, and
    `_labels`, `_value`, `_ts` as `_SAMPLE` extracts them (null where it does not match).
    `plain_splits=False` runs the regular expressions on every line: the same result
    (tests/test_ingest_dcgm_fields.py), slower."""
    line = pl.col("line")
    # A plain substring test first drops most lines (the other metrics) cheaply; a comment line
    # (`#` first, after any whitespace) names no metric. A line that names a measure but does not
    # start with a metric name (a stray byte before it, say) is kept with a null `_metric`: it is
    # a damaged sample, judged malformed, never silently not a record.
    lf = lines.filter(line.str.contains_any(list(DCGM_MEASURES)) & ~line.str.strip_chars_start().str.starts_with("#"))
    sample = pl.col("_metric").is_in(list(DCGM_MEASURES)) | pl.col("_metric").is_null()
    if not plain_splits:
        return (lf.with_columns(line.str.extract(_METRIC, 1).alias("_metric"))
                .filter(sample)
                .with_columns(line.str.extract_groups(_SAMPLE).alias("_sample")).unnest("_sample"))
    plain = pl.col("_plain")
    other = pl.when(~plain).then(line)  # null on plain lines: the regular expressions skip them
    name_rest = line.str.splitn("{", 2)
    return (
        lf.with_columns(line.str.contains(_PLAIN).alias("_plain"))
        .with_columns(pl.when(plain).then(name_rest.struct[0]).otherwise(other.str.extract(_METRIC, 1))
                      .alias("_metric"))
        .filter(sample)
        .with_columns(other.str.extract_groups(_SAMPLE).alias("_sample"),
                      pl.when(plain).then(name_rest.struct[1].str.splitn("}", 2)).alias("_labels_rest"))
        .with_columns(pl.col("_labels_rest").struct[1].str.strip_prefix(" ").str.splitn(" ", 2).alias("_value_ts"))
        .with_columns(pl.coalesce(pl.col("_labels_rest").struct[0], pl.col("_sample").struct["_labels"])
                      .alias("_labels"),
                      pl.coalesce(pl.col("_value_ts").struct[0], pl.col("_sample").struct["_value"]).alias("_value"),
                      pl.coalesce(pl.col("_value_ts").struct[1], pl.col("_sample").struct["_ts"]).alias("_ts"))
        .drop("_plain", "_sample", "_labels_rest", "_value_ts")
    )


def parse_dcgm_prometheus(raw: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """Parse `scan_text_lines` of DCGM exporter `.prom` scrapes into power readings.

    A record is one sample of `DCGM_FI_DEV_POWER_USAGE` (W -> `power_w`, `_measure` "power") or
    `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` (mJ since boot -> `energy_j` in J, `_measure`
    "energy"); comment lines and other metrics are not records and are not counted in
    `rows_read`. Meter `<Hostname>/gpu<gpu>`, a GPU meter of the inventory; sample time in
    ms since the Unix epoch -> UTC us. `accepted` joins the two measures of one meter and
    instant into one row and sets `counter_reset`."""
    gpu_meters = inventory.meters_frame().filter(pl.col("scope") == "gpu").select(
        "meter_id", "scope", "site_id", "node_id", "gpu_index").join(
        inventory.meter_power_limits().select("meter_id", "power_limit_w"), on="meter_id", how="left")
    samples = (
        sample_fields(raw)
        .with_columns(_label("Hostname").alias("_host"), _label("gpu").alias("_gpu"))
        .with_columns(
            pl.format("{}/gpu{}", "_host", "_gpu").alias("meter_id"),
            pl.col("_metric").replace_strict(DCGM_MEASURES, return_dtype=pl.String).alias("_measure"),
            pl.col("_value").cast(pl.Float64, strict=False).alias("_v"),
            pl.col("_ts").cast(pl.Int64, strict=False).alias("_ms"),
        )
        .join(gpu_meters, on="meter_id", how="left", maintain_order="left")
    )
    v, ms = pl.col("_v"), pl.col("_ms")
    power, energy = pl.col("_measure") == "power", pl.col("_measure") == "energy"
    checks = [
        (pl.col("_value").is_null() | pl.col("_host").is_null() | pl.col("_gpu").is_null(), "malformed_record",
         "not a Prometheus sample `name{labels} value timestamp` with `Hostname` and `gpu` labels; "
         "export the DCGM exporter's /metrics text unchanged"),
        (pl.col("scope").is_null(), "unknown_meter",
         pl.format("GPU meter {} is not in the inventory (node {} with GPU {} and DCGM telemetry); "
                   "add the node or correct the exporter's Hostname label", "meter_id", "_host", "_gpu")),
        other_site(site_id),
        (pl.col("_ts").is_null(), "bad_timestamp",
         "the sample has no timestamp; export scrapes with their millisecond timestamps"),
        (~ms.is_between(0, _MAX_MS).fill_null(False), "bad_timestamp",
         pl.format("timestamp {} is not milliseconds since the Unix epoch", pl.col("_ts").str.slice(0, 40))),
        (v.is_null() | v.is_nan() | v.is_infinite(), "invalid_value",
         pl.format("{} value {} is not a finite number", "_metric", pl.col("_value").str.slice(0, 40))),
        ((v >= float(INT64_BLANK_MIN)) | v.is_between(*FP64_BLANK), "sensor_not_supported",
         pl.format("{} reported DCGM's blank value {} (field not supported or no data on this GPU)",
                   "_metric", "_value")),
        (v < 0, "negative_value", pl.format("{} is negative ({})", "_metric", "_value")),
        out_of_range(pl.when(power).then(v), pl.col("power_limit_w"), pl.format("GPU meter {} power", "meter_id"), "W",
                     f"above {NAMEPLATE_MULTIPLE} x the GPU's TDP; check the exporter's unit (W) or the node's "
                     "`gpu_tdp_w` in the inventory", shown=pl.col("_value")),
    ]
    parsed = unjudged(samples).with_columns(first_reason(checks)).with_columns(
        pl.when(ms.is_between(0, _MAX_MS)).then(ms * 1000).cast(UTC_US).alias("ts"),
        pl.when(power).then(v).alias("power_w"),
        pl.when(energy).then(v / 1000.0).alias("energy_j"),
        pl.lit(None, pl.Float64).alias("interval_energy_j"),
        pl.lit(None, pl.Float64).alias("interval_s"),
        pl.lit(False).alias("counter_reset"),
        pl.lit("dcgm").alias("source"),
    )
    return finish(parsed, measure=True, in_order=True)  # lines in file order, kept by every step above
