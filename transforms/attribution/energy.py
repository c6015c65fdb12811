"""Steps 1 and 4 of docs/attribution.md: IT energy per node and slot, facility overhead per site-hour.

**Node energy.** Every meter a node is measured by becomes a set of *intervals* `[a, b)`
(microseconds since the day's start) that tile the whole day, each with an energy (J) and a
method. Energy inside an interval is spread evenly in time, so a slot's energy is the sum of
its overlaps — the same as evaluating the meter's cumulative curve at the slot bounds by
linear interpolation and differencing, without subtracting large counter values. Intervals:

- between consecutive samples of a meter: the counter difference (`measured_counter`), or
  for gauges the trapezoid of the two powers (`measured_gauge`); `interpolated` when the
  interval is longer than twice the meter's normal (median) interval.
- longer than `gap_limit_s`: a counter still measures the total, spread evenly
  (`interpolated`); a gauge gap is `estimated` at idle power.
- a counter reset (`counter_reset`, or any decrease) ends a segment. The interval across it
  is integrated from the gauge (trapezoid) when both samples carry a power, because the gauge
  covers the whole interval; otherwise the post-reset value, the energy since the reboot (the
  seconds before the reboot are lost, so it is flagged `interpolated`). Across a reset and a
  long gap: `estimated` at idle.
- edges of the day before the first / after the last sample: within `gap_limit_s`, the power
  of the adjacent interval (`interpolated`, or worse if that interval is); beyond it the whole
  edge is `estimated` at idle, as a gap is.

A node is measured by its node-scope meter when one has usable data (two samples or more;
several: the one with most samples, then the smallest id), else by the sum of its GPU meters
(every GPU meter of the inventory, those without data estimated), else not at all: every slot
`estimated` at `idle_w`. Idle power is the node's `idle_w` (whole node); a GPU-sum node's
gaps are estimated at `idle_w / gpu meters` per GPU, so a node whose GPU exporter is down
gets exactly `idle_w`, host included, although its measured slots are GPU power only.
Within a meter, counters are preferred to gauges: a meter with two counter samples or more
is read from its counter only. A slot's method is the worst of what produced it:
`estimated` > `interpolated` > `measured_gauge` > `measured_counter`.

**Overhead.** Per site and UTC hour, facility energy minus IT energy from the site's
facility meters (interval readings split across hours by time) when every facility meter of
the site covers the hour exactly once; otherwise `IT x (design_pue - 1)`. Spread over the
hour's node-slots by IT energy.
"""

import polars as pl

from transforms.attribution.grid import SlotGrid
from transforms.contracts import UTC_US

METHODS = ("measured_counter", "measured_gauge", "interpolated", "estimated")  # best to worst
_COUNTER, _GAUGE, _INTERPOLATED, _ESTIMATED = range(len(METHODS))
_US = 1_000_000
_DAY_US = 86_400 * _US
_HOUR_US = 3_600 * _US


def _us_since_start(grid: SlotGrid, ts: pl.Expr) -> pl.Expr:
    return (ts - pl.lit(grid.start, UTC_US)).dt.total_microseconds()


def _stable_sum(x: pl.Expr) -> pl.Expr:
    """A group's sum in a fixed order. The parallel engine adds partial sums in any order,
    which changes the last bits between runs, and a rerun must give byte-identical numbers;
    a cumulative sum is sequential (the optimizer drops a sort before a plain sum)."""
    return x.sort().cum_sum().last()


def _usable(x: str) -> pl.Expr:
    """A reading value attribution can use: present, finite, not negative."""
    return pl.when(pl.col(x).is_finite() & (pl.col(x) >= 0)).then(pl.col(x))


def _readings_near_day(readings: pl.LazyFrame, meters: pl.LazyFrame, grid: SlotGrid, gap_us: int) -> pl.LazyFrame:
    """GPU and node meter readings near the day: `meter_id, scope, node_id` (from the
    inventory), `t` (us since the day's start), `p` (W), `c` (J) and `reset`. Samples further
    off the day than a gap can bridge cannot inform it."""
    inv = meters.filter(pl.col("scope").is_in(["node", "gpu"])).select("meter_id", "scope", "node_id")
    return (readings.select("meter_id", "ts", "power_w", "energy_j", "counter_reset")
            .join(inv, on="meter_id", how="inner")
            .select("meter_id", "scope", "node_id", _us_since_start(grid, pl.col("ts")).alias("t"),
                    _usable("power_w").alias("p"), _usable("energy_j").alias("c"),
                    pl.col("counter_reset").fill_null(False).alias("reset"))
            .filter(pl.col("t").is_between(-gap_us, _DAY_US + gap_us)))


def _chosen_meters(near: pl.LazyFrame, nodes: pl.LazyFrame, meters: pl.LazyFrame) -> pl.LazyFrame:
    """The meters each node is measured by: `node_id, meter_id, kind` (`counter`, `gauge`, or
    null where the meter has no usable data), `share` (W estimated for the meter where it has
    no data). `meter_id` is null for a node with no usable meter. One small row per meter."""
    kinds = (near.group_by("meter_id", "scope", "node_id")
             .agg(pl.col("c").count().alias("n_c"), pl.col("p").count().alias("n_p"))
             .with_columns(pl.when(pl.col("n_c") >= 2).then(pl.lit("counter"))
                           .when(pl.col("n_p") >= 2).then(pl.lit("gauge")).alias("kind"),
                           pl.when(pl.col("n_c") >= 2).then("n_c").otherwise("n_p").alias("n"))
             .filter(pl.col("kind").is_not_null()))
    node_meter = (kinds.filter(pl.col("scope") == "node")
                  .sort("node_id", "n", "meter_id", descending=[False, True, False])
                  .unique("node_id", keep="first", maintain_order=True)
                  .select("node_id", "meter_id"))
    idle = nodes.select("node_id", pl.col("idle_w").cast(pl.Float64))
    by_node = idle.join(node_meter, on="node_id", how="inner").with_columns(pl.col("idle_w").alias("share"))
    gpu_nodes = (kinds.filter(pl.col("scope") == "gpu").select("node_id").unique()
                 .join(node_meter, on="node_id", how="anti"))
    by_gpus = (meters.filter(pl.col("scope") == "gpu").select("node_id", "meter_id")
               .join(gpu_nodes, on="node_id", how="semi").join(idle, on="node_id", how="inner")
               .with_columns((pl.col("idle_w") / pl.len().over("node_id")).alias("share")))
    unmetered = (idle.join(node_meter, on="node_id", how="anti").join(gpu_nodes, on="node_id", how="anti")
                 .with_columns(pl.lit(None, pl.String).alias("meter_id"), pl.col("idle_w").alias("share")))
    cols = ["node_id", "meter_id", "share"]
    return (pl.concat([by_node.select(cols), by_gpus.select(cols), unmetered.select(cols)])
            .join(kinds.select("meter_id", "kind"), on="meter_id", how="left"))


def _meter_intervals(near: pl.LazyFrame, chosen: pl.LazyFrame, gap_us: int) -> pl.LazyFrame:
    """Intervals tiling the day for every chosen meter: `node_id, a, b` (us), `energy_j`, `rank`.
    One pass over the samples: each sample yields the interval to the next sample and, on
    the meter's first and last interval, the edge of the day beside it."""
    value = pl.when(pl.col("kind") == "counter").then(pl.col("c")).otherwise(pl.col("p"))
    s = (near.join(chosen.filter(pl.col("kind").is_not_null()).select("meter_id", "share", "kind"),
                   on="meter_id", how="inner")
         .filter(value.is_not_null())
         .sort("meter_id", "t")
         .with_columns(*(pl.col(x).shift(-1).over("meter_id").alias(f"{x}1") for x in ("t", "p", "c", "reset")),
                       pl.col("t").shift(-2).over("meter_id").is_null().alias("last"),
                       pl.col("t").shift(1).over("meter_id").is_null().alias("first"))
         .filter(pl.col("t1").is_not_null()))
    dt = pl.col("t1") - pl.col("t")
    dt_s = dt.cast(pl.Float64) / _US
    counter = pl.col("kind") == "counter"
    reset = pl.col("reset1") | (pl.col("c1") < pl.col("c"))
    long, slow = dt > gap_us, dt > 2 * dt.median().over("meter_id")
    trapezoid = (pl.col("p") + pl.col("p1")) / 2 * dt_s
    both_p = pl.col("p").is_not_null() & pl.col("p1").is_not_null()
    energy = (pl.when(counter & ~reset).then(pl.col("c1") - pl.col("c"))
              .when(long).then(pl.col("share") * dt_s)
              .when(both_p).then(trapezoid)
              .otherwise(pl.col("c1")))  # counter reset, no gauge: the energy since the reboot
    rank = (pl.when(counter & ~reset).then(pl.when(long | slow).then(_INTERPOLATED).otherwise(_COUNTER))
            .when(long).then(_ESTIMATED)
            .when(both_p).then(pl.when(slow).then(_INTERPOLATED).otherwise(_GAUGE))
            .otherwise(_INTERPOLATED))
    s = s.with_columns(energy.alias("e"), rank.cast(pl.Int8).alias("r")).with_columns((pl.col("e") / dt_s).alias("w"))

    # Each sample row yields its interval (0) and, for the meter's first / last interval, the
    # edge of the day before (1) / after (2) it: within the gap limit at the adjacent
    # interval's power, else the whole edge at idle.
    day0, day1 = pl.lit(0, pl.Int64), pl.lit(_DAY_US, pl.Int64)
    which = pl.col("which")
    a = pl.when(which == 2).then(pl.col("t1")).when(which == 1).then(day0).otherwise(pl.col("t"))
    b = pl.when(which == 2).then(day1).when(which == 1).then(pl.col("t")).otherwise(pl.col("t1"))
    edge_len = pl.col("b") - pl.col("a")
    near_edge = edge_len <= gap_us
    sampled = (s.join(pl.LazyFrame({"which": pl.Series([0, 1, 2], dtype=pl.Int8)}), how="cross")
               .filter((which == 0) | ((which == 1) & pl.col("first")) | ((which == 2) & pl.col("last")))
               .with_columns(a.alias("a"), b.alias("b"))
               .select("node_id", "a", "b",
                       pl.when(which == 0).then(pl.col("e"))
                       .when(near_edge).then(pl.col("w") * edge_len.cast(pl.Float64) / _US)
                       .otherwise(pl.col("share") * edge_len.cast(pl.Float64) / _US).alias("energy_j"),
                       pl.when(which == 0).then(pl.col("r"))
                       .when(near_edge).then(pl.max_horizontal("r", pl.lit(_INTERPOLATED, pl.Int8)))
                       .otherwise(pl.lit(_ESTIMATED, pl.Int8)).alias("rank")))
    # Chosen meters without usable samples, and unmetered nodes: idle all day.
    silent = chosen.filter(pl.col("kind").is_null()).select(
        "node_id", day0.alias("a"), day1.alias("b"), (pl.col("share") * 86_400.0).alias("energy_j"),
        pl.lit(_ESTIMATED, pl.Int8).alias("rank"))
    return pl.concat([sampled, silent])


def node_slot_energy(readings: pl.LazyFrame, nodes: pl.LazyFrame, meters: pl.LazyFrame, grid: SlotGrid, *,
                     gap_limit_s: float = 300.0) -> pl.LazyFrame:
    """IT energy of every inventory node in every slot of the day: `node_id, slot` (Int32),
    `it_energy_j` (Float64, J), `energy_method` (measured_counter, measured_gauge,
    interpolated, estimated). Exactly one row per node and slot, sorted by both.

    `readings`: canonical power_readings of the day (any scopes; facility and PDU meters are
    ignored), `nodes`: `Inventory.nodes_frame()` (`node_id`, `idle_w` in W), `meters`:
    `Inventory.meters_frame()`. Sample intervals longer than `gap_limit_s` seconds are gaps."""
    if not gap_limit_s > 0:
        raise ValueError(f"gap_limit_s must be a positive number of seconds, not {gap_limit_s!r}")
    gap_us = round(gap_limit_s * _US)
    slot_us = grid.slot_s * _US
    near = _readings_near_day(readings, meters, grid, gap_us)
    intervals = _meter_intervals(near, _chosen_meters(near, nodes, meters), gap_us).filter(
        (pl.col("b") > pl.col("a")) & (pl.col("b") > 0) & (pl.col("a") < _DAY_US))
    a, b, k = pl.col("a"), pl.col("b"), pl.col("slot").cast(pl.Int64)
    per_slot = (intervals
                .with_columns(pl.int_ranges(a.clip(lower_bound=0) // slot_us,
                                            (b.clip(upper_bound=_DAY_US) + slot_us - 1) // slot_us,
                                            dtype=pl.Int32).alias("slot"))
                .explode("slot")
                .with_columns((pl.col("energy_j") * (pl.min_horizontal(b, (k + 1) * slot_us)
                                                     - pl.max_horizontal(a, k * slot_us)).cast(pl.Float64)
                               / (b - a).cast(pl.Float64)).alias("energy_j"))
                .group_by("node_id", "slot")
                .agg(_stable_sum(pl.col("energy_j")).alias("it_energy_j"), pl.col("rank").max()))
    return (nodes.select("node_id").join(grid.slots().select("slot"), how="cross")
            .join(per_slot, on=["node_id", "slot"], how="left")
            .select("node_id", "slot", "it_energy_j",
                    pl.col("rank").replace_strict(dict(enumerate(METHODS)), return_dtype=pl.String)
                    .alias("energy_method"))
            .sort("node_id", "slot"))


def _slots_per_hour(grid: SlotGrid) -> int:
    if 3600 % grid.slot_s:
        raise ValueError(f"slot length {grid.slot_s} s does not divide an hour; site-hour overhead needs slots "
                         "that nest in UTC hours (use e.g. 60, 300 or 900)")
    return 3600 // grid.slot_s


def _hour_of_slot(grid: SlotGrid) -> pl.Expr:
    return pl.lit(grid.start, UTC_US) + pl.duration(hours=pl.col("slot") // _slots_per_hour(grid))


def site_hour_overhead(node_energy: pl.LazyFrame, nodes: pl.LazyFrame, readings: pl.LazyFrame,
                       meters: pl.LazyFrame, sites: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """Facility overhead per site and UTC hour, for every site with nodes: `site_id, hour`
    (UTC), `it_energy_j`, `facility_energy_j`, `overhead_j` (J), `pue`, `pue_method`
    (`measured` | `design_pue`), `overhead_clamped`.

    `measured` when every facility meter of the site (`meters`, scope facility) has interval
    readings covering the hour exactly once (a reading's interval of `interval_s` ending at
    `ts` that straddles hours is split by time; gaps or overlaps fall back): facility = metered
    energy, overhead = facility - IT clamped at 0 (`overhead_clamped`), pue = facility / IT (null
    when IT is 0; below 1 where clamped).
    Otherwise `design_pue`: overhead = IT x (design_pue - 1), facility = IT + overhead."""
    it = (node_energy.join(nodes.select("node_id", "site_id"), on="node_id", how="inner")
          .group_by("site_id", _hour_of_slot(grid).alias("hour"))
          .agg(_stable_sum(pl.col("it_energy_j"))))
    hours = pl.LazyFrame({"hour": pl.datetime_range(grid.start, grid.end, "1h", closed="left", time_unit="us",
                                                    eager=True)})
    frame = nodes.select("site_id").unique().join(hours, how="cross")

    fac_meters = meters.filter(pl.col("scope") == "facility").select("meter_id", "site_id")
    n_meters = fac_meters.group_by("site_id").agg(pl.len().alias("n_meters"))
    # A reading covers [a, b): its interval of `interval_s` ending at `ts`, in us since the day's start.
    a, b, h = pl.col("a"), pl.col("b"), pl.col("h").cast(pl.Int64)
    per_meter_hour = (
        readings.select("meter_id", "ts", _usable("interval_energy_j").alias("e"), pl.col("interval_s"))
        .join(fac_meters, on="meter_id", how="inner")
        .filter(pl.col("e").is_not_null() & (pl.col("interval_s") > 0))
        .with_columns(_us_since_start(grid, pl.col("ts")).alias("b"))
        .with_columns((b - (pl.col("interval_s") * _US).round(0).cast(pl.Int64)).alias("a"))
        .filter((b > 0) & (a < _DAY_US))
        .with_columns(pl.int_ranges(a.clip(lower_bound=0) // _HOUR_US,
                                    (b.clip(upper_bound=_DAY_US) + _HOUR_US - 1) // _HOUR_US,
                                    dtype=pl.Int32).alias("h"))
        .explode("h")
        .with_columns((pl.min_horizontal(b, (h + 1) * _HOUR_US) - pl.max_horizontal(a, h * _HOUR_US))
                      .alias("covered"))
        .group_by("site_id", "meter_id", "h")
        .agg(_stable_sum(pl.col("e") * pl.col("covered").cast(pl.Float64) / (b - a).cast(pl.Float64)),
             pl.col("covered").sum()))
    metered = (per_meter_hour
               .group_by("site_id", "h")
               .agg(_stable_sum(pl.col("e")).alias("metered_j"),
                    (pl.col("covered") == _HOUR_US).sum().alias("complete"))
               .join(n_meters, on="site_id", how="inner")
               .select("site_id", (pl.lit(grid.start, UTC_US) + pl.duration(hours=pl.col("h"))).alias("hour"),
                       "metered_j", (pl.col("complete") == pl.col("n_meters")).alias("measured")))

    it_j, fac_j = pl.col("it_energy_j"), pl.col("metered_j")
    measured = pl.col("measured").fill_null(False)
    design_overhead = it_j * (pl.col("design_pue") - 1)
    return (frame
            .join(it, on=["site_id", "hour"], how="left")
            .join(metered, on=["site_id", "hour"], how="left")
            .join(sites.select("site_id", "design_pue"), on="site_id", how="left")
            .with_columns(it_j.fill_null(0.0))
            .select("site_id", "hour", "it_energy_j",
                    pl.when(measured).then(fac_j).otherwise(it_j + design_overhead).alias("facility_energy_j"),
                    pl.when(measured).then(pl.max_horizontal(fac_j - it_j, 0.0)).otherwise(design_overhead)
                    .alias("overhead_j"),
                    pl.when(measured).then(pl.when(it_j > 0).then(fac_j / it_j)).otherwise(pl.col("design_pue"))
                    .alias("pue"),
                    pl.when(measured).then(pl.lit("measured")).otherwise(pl.lit("design_pue")).alias("pue_method"),
                    (measured & (fac_j < it_j)).fill_null(False).alias("overhead_clamped"))
            .sort("site_id", "hour"))


def attach_overhead(node_energy: pl.LazyFrame, nodes: pl.LazyFrame, site_hours: pl.LazyFrame,
                    grid: SlotGrid) -> pl.LazyFrame:
    """`node_energy` with `overhead_j` (J): the node-slot's share, by IT energy, of its
    site-hour's overhead (0 when the hour's IT energy is 0), and the hour's `pue_method`.
    The node-slots of a site-hour carry exactly its `overhead_j`."""
    hourly = site_hours.select("site_id", "hour", pl.col("it_energy_j").alias("_site_it"),
                               pl.col("overhead_j").alias("_site_overhead"), "pue_method")
    return (node_energy.join(nodes.select("node_id", "site_id"), on="node_id", how="left")
            .with_columns(_hour_of_slot(grid).alias("hour"))
            .join(hourly, on=["site_id", "hour"], how="left")
            .with_columns(pl.when(pl.col("_site_it") > 0)
                          .then(pl.col("it_energy_j") * pl.col("_site_overhead") / pl.col("_site_it"))
                          .otherwise(0.0).alias("overhead_j"))
            .select(*node_energy.collect_schema().names(), "overhead_j", "pue_method")
            .sort("node_id", "slot"))
