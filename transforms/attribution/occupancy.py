"""Occupancy: who shares each node-slot, and each request's share of every slot cost.

A request occupies its node over one or more *segments* `[s, e)` (seconds since the day's
start) with a weight *density* `d`: 1 for time weighting; tokens per second of the prefill
or decode window for token weighting. A node-slot's total weight is
`W_k = ∫_slot Σ d`; its occupied share `u_k` is the part of the slot the union of the segments
covers (`_union_events`; the rest of the slot is idle, DOMAIN 3.3), and a request's share of the
slot's cost `C_k` is `∫_slot d / W_k · C_k · u_k`; `C_k - C_k · u_k` is idle.

Nothing here makes a row per request per slot: with `q_k = C_k · u_k / W_k` and its per-node
exclusive prefix sum `Q`, a segment over slots `a..b` costs
`d · [(end_a - s)·q_a + (e - start_b)·q_b + slot_s·(Q_b - Q_{a+1})]` — lookups (by
position, `dense_lookup`) near its first and last slot, so the cost grows with requests +
slots, not their product.

`Q` adds `q_k` up over *covered* slots only, those some segment spans from end to end: only
they are ever interior to a segment. A slot that only short segments touch may have a tiny
`W_k` (a 1 µs request alone in it) and so a huge `q_k`; in the prefix sum it would swallow
the last digits of every later difference on the node (issue 21).
"""

from typing import Literal

import polars as pl

from transforms.attribution.grid import SlotGrid, fsum, materialize

Weight = Literal["time", "tokens"]
# Weights are added up as decimals (`fsum`: exact, in any row order) of weight x 2^20: a power
# of two scales exactly, and a 1 µs weight keeps all its digits, not the 12 that 18 decimal
# places leave it (issue 21). A slot's weight stays far below 1e20 / 2^20 ≈ 9.5e13.
WEIGHT_SCALE = 2.0 ** 20
# Interior densities too, unscaled (their +d and -d must cancel exactly; a density is tokens per second).
DECIMAL = pl.Decimal(38, 18)
# Polars' row index type (UInt32, or UInt64 in its 64-bit build): the dtype of lookup positions.
IDX = pl.get_index_type()


def gpu_start() -> pl.Expr:
    """When a request started on the GPU: `arrived_at + queue_s` (queue unknown or negative:
    arrival), never after `completed_at`; a UTC datetime to the microsecond."""
    queue_us = (pl.col("queue_s").fill_null(0.0).clip(lower_bound=0.0) * 1e6).round(0).cast(pl.Int64)
    return pl.min_horizontal(pl.col("arrived_at") + pl.duration(microseconds=queue_us), pl.col("completed_at"))


def request_segments(requests: pl.LazyFrame, grid: SlotGrid, weight: Weight = "time",
                     keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """Occupancy segments of the day's requests: `request_id, node_id, s, e, density` and the
    request columns in `keep` (seconds since the day's start, clipped to the day).

    GPU start is `arrived_at + queue_s` (queue unknown: arrival), capped at completion.
    `time`: one segment per request, every request (a request with no duration has `e == s`
    and shares nothing). `tokens`: the prefill window `[gpu_start, +prefill_s)` at
    `input_tokens / prefill_s` and the decode window `[prefill end, +decode_s)` at
    `output_tokens / decode_s`, both clipped to completion; a request without both phase
    timings gets `(input + output) / duration` over its whole window, and one with no tokens
    density 1 (it still occupies the node); empty segments are dropped."""
    if weight not in ("time", "tokens"):
        raise ValueError(f"weight must be 'time' or 'tokens', not {weight!r}")
    keep = tuple(c for c in keep if c not in ("request_id", "node_id"))
    t0 = grid.seconds_since_start(pl.col("arrived_at"))
    end = grid.seconds_since_start(pl.col("completed_at"))
    start = pl.min_horizontal(t0 + pl.col("queue_s").fill_null(0.0).clip(lower_bound=0.0), end)
    ids = ["request_id", "node_id", *keep]
    # Clipped to the day and snapped to whole microseconds, the resolution of the timestamps,
    # so that slot arithmetic on them is exact (see `_slot_span`).
    clip = [((pl.col(c).clip(0.0, 86400.0) * 1e6).round(0) * 1e-6).alias(c) for c in ("s", "e")]
    if weight == "time":
        return (requests.select(*ids, start.alias("s"), end.alias("e"), pl.lit(1.0).alias("density"))
                .with_columns(clip).with_columns(pl.max_horizontal("s", "e").alias("e")))
    base = requests.select(*ids, start.alias("_s"), end.alias("_e"), "prefill_s", "decode_s",
                           pl.col("input_tokens").alias("_in"), pl.col("output_tokens").alias("_out"))
    phased = (pl.col("prefill_s") > 0) & (pl.col("decode_s") > 0)
    dur = pl.col("_e") - pl.col("_s")
    tokens = (pl.col("_in") + pl.col("_out")).cast(pl.Float64)
    whole = base.filter(~phased.fill_null(False)).select(
        *ids, pl.col("_s").alias("s"), pl.col("_e").alias("e"),
        pl.when((tokens > 0) & (dur > 0)).then(tokens / dur).otherwise(1.0).alias("density"))
    ph = base.filter(phased.fill_null(False))
    p_end = pl.min_horizontal(pl.col("_s") + pl.col("prefill_s"), pl.col("_e"))
    prefill = ph.select(*ids, pl.col("_s").alias("s"), p_end.alias("e"),
                        (pl.col("_in").cast(pl.Float64) / pl.col("prefill_s")).alias("density"))
    decode = ph.select(*ids, p_end.alias("s"), pl.min_horizontal(p_end + pl.col("decode_s"), pl.col("_e")).alias("e"),
                       (pl.col("_out").cast(pl.Float64) / pl.col("decode_s")).alias("density"))
    return (pl.concat([whole, prefill, decode]).with_columns(clip)
            .filter((pl.col("e") > pl.col("s")) & (pl.col("density") > 0)))


def _slot_span(segments: pl.LazyFrame, slot_s: int) -> pl.LazyFrame:
    """First and last slot a segment overlaps (`a`, `b`, inclusive), in exact integer
    microseconds: float division by a constant goes through a reciprocal in some Polars
    kernels, and 180 s / 60 s must be slot 3, never 2.999... -> 2."""
    slot_us = slot_s * 1_000_000
    s_us = (pl.col("s") * 1e6).round(0).cast(pl.Int64)
    e_us = (pl.col("e") * 1e6).round(0).cast(pl.Int64)
    return segments.with_columns(
        (s_us // slot_us).cast(pl.Int32).alias("a"),
        ((e_us - 1) // slot_us).cast(pl.Int32).alias("b"),
    )


def node_index(nodes: list[str], column: str = "node_id") -> pl.Expr:
    """Position (Int64) of `column` in the sorted list `nodes`, null for a value not in it: an
    integer key for group-bys and `gather`s in place of hashing the node's string."""
    if not nodes:
        return pl.lit(None, pl.Int64)
    return pl.col(column).cast(pl.Enum(nodes), strict=False).to_physical().cast(pl.Int64)


def _nodes_of(frame: pl.LazyFrame | pl.DataFrame) -> list[str]:
    return frame.lazy().select(pl.col("node_id").drop_nulls().unique().sort()).collect()["node_id"].to_list()


def slot_weights(segments: pl.LazyFrame, node_slots: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """`node_slots` (`node_id, slot`, one row per node and slot) with `active` (Int64: segments
    overlapping the slot, exact), `weight` (Float64: `W_k`), `_covering` (Int64: segments
    spanning the whole slot, exact), `occupied_s` (seconds of the slot the segments' union
    covers, from exact µs) and `occupied_share` (`occupied_s / slot_s`). A slot is occupied iff
    `active > 0`.
    The segments are grouped on integer keys (`node_index`, slot): no string hashing per segment."""
    slot_s = grid.slot_s
    nodes = _nodes_of(node_slots)
    spans = (_slot_span(segments.filter(pl.col("e") > pl.col("s")), slot_s)
             .select(node_index(nodes).alias("_n"), "s", "e", "density", "a", "b")
             .filter(pl.col("_n").is_not_null()))
    one = pl.col("a") == pl.col("b")
    # A segment's weight in its first and last slot, exactly (`edge`); its interior slots each
    # get d * slot_s, through a difference array (`d`: +d after the first slot, -d at the last),
    # added up as decimals so that it is exactly 0 again where no segment spans the slot (in
    # floats +d1 +d2 -d1 -d2 can leave a residue, weight that no segment holds); the exact counts
    # of segments overlapping each slot (`n`: +1 at the first slot, -1 after the last) and
    # spanning it (`c`: +1 after the first slot, -1 at the last), through two more. One group-by
    # over all of them: each sum only sees its own rows.
    f64, none = pl.Float64, pl.lit(None, pl.Float64)

    # The four kinds of event, made from one read of the spans (`_ev`: 0 first slot, 1 after the
    # last, and for a segment over several slots 2 its last slot, 3 after its first), not one read
    # per kind: each read of the spans re-read and re-segmented the requests.
    ev, a, b = pl.col("_ev"), pl.col("a"), pl.col("b")
    events = (spans.with_columns(pl.int_ranges(0, pl.when(one).then(2).otherwise(4), dtype=pl.Int8).alias("_ev"))
              .explode("_ev")
              .select("_n", pl.when(ev == 0).then(a).when(ev == 1).then(b + 1).when(ev == 2).then(b).otherwise(a + 1)
                      .alias("slot"),
                      pl.when(ev == 0)
                      .then((pl.col("density") * (pl.when(one).then(pl.col("e")).otherwise((a + 1) * slot_s)
                                                  - pl.col("s"))).cast(f64))
                      .when(ev == 2).then((pl.col("density") * (pl.col("e") - b * slot_s)).cast(f64))
                      .otherwise(none).alias("edge"),
                      pl.when(ev == 2).then((-pl.col("density")).cast(f64)).when(ev == 3)
                      .then(pl.col("density").cast(f64)).otherwise(none).alias("d"),
                      pl.when(ev == 0).then(1).when(ev == 1).then(-1).otherwise(0).cast(pl.Int64).alias("n"),
                      pl.when(ev == 2).then(-1).when(ev == 3).then(1).otherwise(0).cast(pl.Int64).alias("c")))
    sums = events.group_by("_n", "slot").agg(fsum(pl.col("edge"), WEIGHT_SCALE), pl.col("d").cast(DECIMAL).sum(),
                                             pl.col("n", "c").sum())
    spanning = slot_s * pl.col("d").cum_sum().over("node_id").cast(f64)
    occupied_us = pl.col("_u") + slot_s * 1_000_000 * pl.col("_k").cum_sum().over("node_id")
    return (
        node_slots.with_columns(node_index(nodes).alias("_n"))
        .join(sums, on=["_n", "slot"], how="left")
        .join(_union_events(spans, slot_s), on=["_n", "slot"], how="left")
        .with_columns(pl.col("edge", "d", "n", "c", "_u", "_k").fill_null(0))
        .sort("node_id", "slot")
        .with_columns(pl.col("n").cum_sum().over("node_id").alias("active"),
                      pl.col("c").cum_sum().over("node_id").alias("_covering"),
                      (pl.col("edge") + spanning).alias("weight"),
                      (occupied_us.cast(f64) * 1e-6).alias("occupied_s"),
                      (occupied_us.cast(f64) / (slot_s * 1_000_000)).alias("occupied_share"))
        .with_columns(pl.when(pl.col("active") > 0).then(pl.col("weight").clip(lower_bound=0.0)).otherwise(0.0)
                      .alias("weight"))
        .drop("edge", "d", "n", "c", "_u", "_k", "_n")
    )


def _union_events(spans: pl.LazyFrame, slot_s: int) -> pl.LazyFrame:
    """Per (node index `_n`, slot): the exact integer microseconds of the slot that the union of
    the segments covers, as difference events: `_u` the partial coverage of a merged interval's
    first and last slot, `_k` +1 after its first slot and -1 at its last (the slots between are
    covered whole). Overlapping segments are merged first (sorted by start, a new interval
    wherever a start lies beyond every earlier end), so a second covered by several requests
    counts once. The node is folded into the key (`_n * K + µs`, `K` above a day's µs) so one
    sort and one running maximum serve every node at once."""
    slot_us, day = slot_s * 1_000_000, 86_400_000_001
    us = [(pl.col("_n") * day + (pl.col(c) * 1e6).round(0).cast(pl.Int64)).alias(c) for c in ("s", "e")]
    # Sorted by start, an interval begins at a row whose start lies beyond the running maximum
    # end of the rows before it, and ends (at that running maximum) on the row before the next
    # begins: two filters in row order give the intervals' starts and ends, paired by position,
    # with no group-by over the requests (one group per merged interval cost a hash table).
    reach = pl.col("e").cum_max()
    begins = (pl.col("s") > reach.shift(1)).fill_null(True)
    ends = begins.shift(-1).fill_null(True)
    merged = (spans.select(*us).sort("s")
              .select(pl.col("s").filter(begins), reach.filter(ends).alias("e"))
              .select((pl.col("s") // day).alias("_n"), pl.col("s") % day, pl.col("e") % day)
              .with_columns((pl.col("s") // slot_us).cast(pl.Int32).alias("a"),
                            ((pl.col("e") - 1) // slot_us).cast(pl.Int32).alias("b")))
    # Each merged interval's events from one read of `merged` (`_ev`: 0 its first slot, and for an
    # interval over several slots 1 its last slot, 2 after its first), not one read per kind: a
    # concat of three selects planned the sort and the merge twice (the streaming engine cached
    # only two of the three reads), half the stage's CPU at 10 M requests.
    first = pl.min_horizontal(pl.col("e"), (pl.col("a").cast(pl.Int64) + 1) * slot_us) - pl.col("s")
    ev, i64 = pl.col("_ev"), pl.Int64
    return (merged.with_columns(pl.int_ranges(0, pl.when(pl.col("a") < pl.col("b")).then(3).otherwise(1),
                                              dtype=pl.Int8).alias("_ev"))
            .explode("_ev")
            .select("_n", pl.when(ev == 0).then(pl.col("a")).when(ev == 1).then(pl.col("b")).otherwise(pl.col("a") + 1)
                    .alias("slot"),
                    pl.when(ev == 0).then(first).when(ev == 1).then(pl.col("e") - pl.col("b").cast(i64) * slot_us)
                    .otherwise(0).alias("_u"),
                    pl.when(ev == 0).then(0).when(ev == 1).then(-1).otherwise(1).cast(i64).alias("_k"))
            .group_by("_n", "slot").agg(pl.col("_u", "_k").sum()))


def slot_rates(segments: pl.LazyFrame, node_slots: pl.LazyFrame, components: list[str], grid: SlotGrid,
               flags: tuple[str, ...] = ()) -> pl.LazyFrame:
    """`node_slots` (one row per node and slot, with the amounts in `components` and boolean
    `flags`) with `active`, `weight`, `occupied`, `occupied_s`, `occupied_share`,
    `idle_<component>` (the amount less its occupied share: the whole amount of an unoccupied
    slot) and the lookups `segment_shares` reads: per component the
    rate `_q_<c> = amount x occupied_share / weight` and its exclusive per-node prefix `_Q_<c>` over covered
    slots (those a segment spans whole: no other slot is ever interior to a segment); per flag
    its exclusive prefix count `_F_<f>`. Node-slot sized: collect it once, then read it twice."""
    weighted = slot_weights(segments, node_slots, grid).with_columns((pl.col("active") > 0).alias("occupied"))
    # The occupied share of a slot's amount goes to its requests, the rest is idle: `C·u` and
    # `C - C·u` (u = occupied seconds / slot seconds; exactly 1.0 for a slot occupied throughout,
    # whose amount then goes to its requests whole, as before).
    busy = {c: pl.col(c) * pl.col("occupied_share") for c in components}
    q = [pl.when(pl.col("occupied")).then(busy[c] / pl.col("weight")).otherwise(0.0).alias(f"_q_{c}")
         for c in components]
    covered = [pl.when(pl.col("_covering") > 0).then(pl.col(f"_q_{c}")).otherwise(0.0) for c in components]
    return weighted.with_columns(q).with_columns(
        *[(x.cum_sum().over("node_id") - x).alias(f"_Q_{c}") for x, c in zip(covered, components, strict=True)],
        *[(pl.col(f).cast(pl.Int32).cum_sum().over("node_id") - pl.col(f).cast(pl.Int32)).alias(f"_F_{f}")
          for f in flags],
        *[pl.when(pl.col("occupied")).then(pl.col(c) - busy[c]).otherwise(pl.col(c)).alias(f"idle_{c}")
          for c in components],
    ).drop("_covering")


def node_slots_out(rates: pl.LazyFrame) -> pl.LazyFrame:
    """`slot_rates` without its lookup columns: what the day reports per node-slot."""
    return rates.select(pl.exclude("^_[qQF]_.*$"))


def dense_lookup(rates: pl.LazyFrame | pl.DataFrame, n_slots: int, columns: list) -> tuple[list[str], pl.DataFrame]:
    """`rates` (`node_id, slot`, ...) laid out densely, row `node_index * n_slots + slot` for
    every node of `rates` and every slot (null where `rates` has no row), with `columns`
    (names or expressions): lookups by `gather` instead of joins on (node_id, slot)."""
    r = rates.lazy().select("node_id", "slot", *columns).collect()
    nodes = _nodes_of(r)
    full = (pl.DataFrame({"node_id": pl.Series(nodes, dtype=pl.String)})
            .join(pl.DataFrame({"slot": pl.int_range(0, n_slots, dtype=r.schema["slot"], eager=True)}), how="cross")
            .sort("node_id", "slot"))
    return nodes, full.join(r, on=["node_id", "slot"], how="left", maintain_order="left")


def segment_shares(segments: pl.LazyFrame, rates: pl.LazyFrame, components: list[str], grid: SlotGrid,
                   flags: tuple[str, ...] = (), *, unit_density: bool = False) -> pl.LazyFrame:
    """`segments` with one column per component (its share; 0 for an empty segment) and, per
    flag, `n_<flag>`: how many of the slots it occupies have the flag. Each segment looks the
    node-slot `rates` up at its first (a) and last (b) slot by position (`dense_lookup`):
    no join, no hashing of the segment's node_id beyond one Enum cast. `unit_density`: every
    density is 1 (time weighting), so the multiplication by it (exact) is skipped."""
    slot_s, n = grid.slot_s, grid.n_slots
    cols = [*[f"_q_{c}" for c in components], *[f"_Q_{c}" for c in components], *[f"_F_{f}" for f in flags],
            *[pl.col(f).cast(pl.Int32).alias(f"_f_{f}") for f in flags]]
    nodes, table = dense_lookup(rates, n, cols)
    empty = pl.col("e") <= pl.col("s")
    spans = (_slot_span(segments, slot_s)
             .with_columns(pl.when(empty).then(None).otherwise(pl.col("a")).alias("a"),
                           pl.when(empty).then(None).otherwise(pl.col("b")).alias("b"),
                           node_index(nodes).alias("_n"))
             # Positions in Polars' own index type: a gather by Int64 converts and bounds-checks its
             # indexes anew each time (40-odd gathers a segment).
             .with_columns((pl.col("_n") * n + pl.col("a")).cast(IDX).alias("_ia"),
                           (pl.col("_n") * n + pl.col("b")).cast(IDX).alias("_ib"),
                           # where the interior begins: a + 1 (b when the segment has one slot, unused then)
                           (pl.col("_n") * n + pl.min_horizontal(pl.col("a") + 1, pl.col("b"))).cast(IDX)
                           .alias("_ia1")))

    def at(name: str, end: str) -> pl.Expr:
        return pl.lit(table[name]).gather(pl.col(f"_i{end}"))

    same = pl.col("a") == pl.col("b")
    first = (pl.col("a") + 1) * slot_s - pl.col("s")
    last = pl.col("e") - pl.col("b") * slot_s
    def weighted(x: pl.Expr) -> pl.Expr:
        return x if unit_density else pl.col("density") * x

    # The rate at the first slot, read by both branches below, gathered once into a column: the
    # streaming engine does not share a repeated subexpression, and gathered it twice.
    spans = spans.with_columns(at(f"_q_{c}", "a").alias(f"_qa_{c}") for c in components)
    shares = [
        weighted(pl.when(same).then((pl.col("e") - pl.col("s")) * pl.col(f"_qa_{c}")).otherwise(
            first * pl.col(f"_qa_{c}") + last * at(f"_q_{c}", "b")
            + slot_s * (at(f"_Q_{c}", "b") - at(f"_Q_{c}", "a1")))).fill_null(0.0).alias(c)
        for c in components
    ]
    counts = [(at(f"_F_{f}", "b") - at(f"_F_{f}", "a") + at(f"_f_{f}", "b")).fill_null(0).alias(f"n_{f}")
              for f in flags]
    return spans.select(*segments.collect_schema().names(), *shares, *counts)


def share_node_slots(requests: pl.LazyFrame, node_slot_costs: pl.LazyFrame, components: list[str], grid: SlotGrid,
                     weight: Weight = "time", *, keep: tuple[str, ...] = (),
                     flags: tuple[str, ...] = ()) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Steps 2 and 3 of docs/attribution.md: every node-slot amount in `components` split between
    the requests active in the slot by `weight`, in the slot's occupied share (the seconds of the
    slot the union of their windows covers); the rest of the slot, and a slot no request
    occupies, is idle.

    `requests`: `request_id, node_id, arrived_at, completed_at, queue_s` (and `prefill_s,
    decode_s, input_tokens, output_tokens` for `tokens`) and the columns in `keep`.
    `node_slot_costs`: one row per node and slot, with the amounts in `components` and the
    boolean `flags`. Returns `(per_request, node_slots)`, lazy:

    - `per_request`: one row per request, every request: `request_id, node_id`, the `keep`
      columns, its share of each component (0 when it occupied nothing), `n_<flag>` (the slots
      it occupies with the flag) and `occupied_s` (seconds its segments cover);
    - `node_slots`: `node_slot_costs` with `active`, `weight`, `occupied`, `occupied_s`,
      `occupied_share` and `idle_<component>` (`node_slots_out`).

    Per component, `Σ per_request + Σ idle = Σ node_slot_costs`. The slot rates are collected
    here once (node-slot sized: both frames read them); the per-request frame is a plan over
    `requests`, never a row per request and slot."""
    segments = request_segments(requests, grid, weight, keep=keep if weight == "time" else ())
    (rates,) = materialize(slot_rates(segments, node_slot_costs, components, grid, flags=flags))
    shares = segment_shares(segments, rates, components, grid, flags=flags, unit_density=weight == "time")
    if weight == "time":  # one segment per request, its row carried through
        per_request = shares.with_columns((pl.col("e") - pl.col("s")).alias("occupied_s")).drop("s", "e", "density")
    else:  # a segment per phase: summed per request, joined back to every request
        counts = [pl.col(*[f"n_{f}" for f in flags]).fill_null(0)] if flags else []
        per_request = (requests.select(*dict.fromkeys(("request_id", "node_id", *keep)))
                       .join(request_totals(shares, components, flags).drop("node_id"), on="request_id", how="left",
                             maintain_order="left")
                       .with_columns(pl.col(*components, "occupied_s").fill_null(0.0), *counts))
    return per_request, node_slots_out(rates)


def request_totals(segment_shares: pl.LazyFrame, components: list[str], flags: tuple[str, ...] = (),
                   keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """One row per request from its segments (the `tokens` weighting makes two): component
    shares and flag counts summed, `occupied_s` the seconds its segments cover, `keep` columns
    taken from its first segment."""
    return segment_shares.group_by("request_id").agg(
        pl.col("node_id", *keep).first(),
        *[fsum(pl.col(c)).alias(c) for c in components],
        *[pl.col(f"n_{f}").sum() for f in flags],
        fsum(pl.col("e") - pl.col("s")).alias("occupied_s"),
    )
