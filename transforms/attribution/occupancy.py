"""Occupancy: who shares each node-slot, and each request's share of every slot cost.

A request occupies its node over one or more *segments* `[s, e)` (seconds since the day's
start) with a weight *density* `d`: 1 for time weighting; tokens per second of the prefill
or decode window for token weighting. A node-slot's total weight is
`W_k = ∫_slot Σ d`, and a request's share of that slot's cost `C_k` is `∫_slot d / W_k · C_k`.

Nothing here makes a row per request per slot: with `q_k = C_k / W_k` and its per-node
prefix sum `Q`, a segment over slots `a..b` costs
`d · [(end_a - s)·q_a + (e - start_b)·q_b + slot_s·(Q_b - Q_{a+1})]` — two joins per
segment, so the cost grows with requests + slots, not their product.
"""

from typing import Literal

import polars as pl

from transforms.attribution.grid import SlotGrid, fsum

Weight = Literal["time", "tokens"]


def request_segments(requests: pl.LazyFrame, grid: SlotGrid, weight: Weight = "time") -> pl.LazyFrame:
    """Occupancy segments of the day's requests: `request_id, node_id, s, e, density`
    (seconds since the day's start, clipped to the day; empty segments dropped).

    GPU start is `arrived_at + queue_s` (queue unknown: arrival), capped at completion.
    `tokens`: the prefill window `[gpu_start, +prefill_s)` at `input_tokens / prefill_s` and the
    decode window `[prefill end, +decode_s)` at `output_tokens / decode_s`, both clipped to
    completion; a request without both phase timings gets `(input + output) / duration` over
    its whole window, and one with no tokens density 1 (it still occupies the node)."""
    if weight not in ("time", "tokens"):
        raise ValueError(f"weight must be 'time' or 'tokens', not {weight!r}")
    t0 = grid.seconds_since_start(pl.col("arrived_at"))
    end = grid.seconds_since_start(pl.col("completed_at"))
    start = pl.min_horizontal(t0 + pl.col("queue_s").fill_null(0.0).clip(lower_bound=0.0), end)
    base = requests.select("request_id", "node_id", start.alias("_s"), end.alias("_e"),
                           "prefill_s", "decode_s", "input_tokens", "output_tokens")
    if weight == "time":
        segs = base.select("request_id", "node_id", pl.col("_s").alias("s"), pl.col("_e").alias("e"),
                           pl.lit(1.0).alias("density"))
    else:
        phased = (pl.col("prefill_s") > 0) & (pl.col("decode_s") > 0)
        dur = pl.col("_e") - pl.col("_s")
        tokens = (pl.col("input_tokens") + pl.col("output_tokens")).cast(pl.Float64)
        whole = base.filter(~phased.fill_null(False)).select(
            "request_id", "node_id", pl.col("_s").alias("s"), pl.col("_e").alias("e"),
            pl.when((tokens > 0) & (dur > 0)).then(tokens / dur).otherwise(1.0).alias("density"))
        ph = base.filter(phased.fill_null(False))
        p_end = pl.min_horizontal(pl.col("_s") + pl.col("prefill_s"), pl.col("_e"))
        prefill = ph.select("request_id", "node_id", pl.col("_s").alias("s"), p_end.alias("e"),
                            (pl.col("input_tokens").cast(pl.Float64) / pl.col("prefill_s")).alias("density"))
        decode = ph.select("request_id", "node_id", p_end.alias("s"),
                           pl.min_horizontal(p_end + pl.col("decode_s"), pl.col("_e")).alias("e"),
                           (pl.col("output_tokens").cast(pl.Float64) / pl.col("decode_s")).alias("density"))
        segs = pl.concat([whole, prefill, decode])
    return (segs.with_columns(pl.col("s").clip(0.0, 86400.0), pl.col("e").clip(0.0, 86400.0))
            .filter((pl.col("e") > pl.col("s")) & (pl.col("density") > 0)))


def _slot_span(segments: pl.LazyFrame, slot_s: int) -> pl.LazyFrame:
    """First and last slot a segment overlaps (`a`, `b`, inclusive)."""
    return segments.with_columns(
        (pl.col("s") // slot_s).cast(pl.Int32).alias("a"),
        ((pl.col("e") / slot_s).ceil().cast(pl.Int32) - 1).alias("b"),
    )


def slot_weights(segments: pl.LazyFrame, node_slots: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """`node_slots` (`node_id, slot`, one row per node and slot) with `active` (Int64: segments
    overlapping the slot, exact) and `weight` (Float64: `W_k`). A slot is occupied iff `active > 0`."""
    slot_s = grid.slot_s
    spans = _slot_span(segments, slot_s)
    one = pl.col("a") == pl.col("b")
    # A segment's weight in its first and last slot, exactly; its interior slots each get
    # d * slot_s, through a difference array (+d after the first slot, -d at the last).
    edges = pl.concat([
        spans.select("node_id", pl.col("a").alias("slot"),
                     (pl.col("density") * (pl.when(one).then(pl.col("e")).otherwise((pl.col("a") + 1) * slot_s)
                                           - pl.col("s"))).alias("edge")),
        spans.filter(~one).select("node_id", pl.col("b").alias("slot"),
                                  (pl.col("density") * (pl.col("e") - pl.col("b") * slot_s)).alias("edge")),
    ]).group_by("node_id", "slot").agg(pl.col("edge").pipe(fsum))
    interior = pl.concat([
        spans.filter(~one).select("node_id", (pl.col("a") + 1).alias("slot"), pl.col("density").alias("d")),
        spans.filter(~one).select("node_id", pl.col("b").alias("slot"), (-pl.col("density")).alias("d")),
    ]).group_by("node_id", "slot").agg(pl.col("d").pipe(fsum))
    # Exact count of segments overlapping each slot (difference array over [a, b]).
    counts = pl.concat([
        spans.select("node_id", pl.col("a").alias("slot"), pl.lit(1, pl.Int64).alias("n")),
        spans.select("node_id", (pl.col("b") + 1).alias("slot"), pl.lit(-1, pl.Int64).alias("n")),
    ]).group_by("node_id", "slot").agg(pl.col("n").sum())
    return (
        node_slots.join(edges, on=["node_id", "slot"], how="left")
        .join(interior, on=["node_id", "slot"], how="left")
        .join(counts, on=["node_id", "slot"], how="left")
        .with_columns(pl.col("edge", "d", "n").fill_null(0))
        .sort("node_id", "slot")
        .with_columns(
            pl.col("n").cum_sum().over("node_id").alias("active"),
            (pl.col("edge") + slot_s * pl.col("d").cum_sum().over("node_id")).alias("weight"),
        )
        .with_columns(pl.when(pl.col("active") > 0).then(pl.col("weight").clip(lower_bound=0.0)).otherwise(0.0)
                      .alias("weight"))
        .drop("edge", "d", "n")
    )


def share_slot_costs(segments: pl.LazyFrame, node_slots: pl.LazyFrame, components: list[str],
                     grid: SlotGrid) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Split every node-slot amount in `components` (columns of `node_slots`, one row per node
    and slot) between the segments active in the slot, by weight.

    Returns `(request_shares, node_slots_out)`: `request_shares` has `request_id` and one
    column per component (summed over the request's segments); `node_slots_out` is
    `node_slots` with `active`, `weight`, `occupied`, and `idle_<component>` (the whole
    amount of an unoccupied slot, 0 otherwise). Per component,
    `Σ request shares + Σ idle = Σ node-slot amounts`."""
    slot_s = grid.slot_s
    weighted = slot_weights(segments, node_slots, grid).with_columns((pl.col("active") > 0).alias("occupied"))
    q = [pl.when(pl.col("occupied")).then(pl.col(c) / pl.col("weight")).otherwise(0.0).alias(f"_q_{c}")
         for c in components]
    rates = weighted.with_columns(q).with_columns(
        (pl.col(f"_q_{c}").cum_sum().over("node_id") - pl.col(f"_q_{c}")).alias(f"_Q_{c}") for c in components)
    node_out = rates.with_columns(
        pl.when(pl.col("occupied")).then(0.0).otherwise(pl.col(c)).alias(f"idle_{c}") for c in components
    ).drop([f"_q_{c}" for c in components] + [f"_Q_{c}" for c in components])

    lookup = rates.select("node_id", "slot", *[f"_q_{c}" for c in components], *[f"_Q_{c}" for c in components])
    at_a = lookup.rename({"slot": "a", **{f"_q_{c}": f"qa_{c}" for c in components}, **{f"_Q_{c}": f"Qa_{c}" for c in components}})
    at_b = lookup.rename({"slot": "b", **{f"_q_{c}": f"qb_{c}" for c in components}, **{f"_Q_{c}": f"Qb_{c}" for c in components}})
    spans = _slot_span(segments, slot_s).join(at_a, on=["node_id", "a"], how="left").join(at_b, on=["node_id", "b"], how="left")
    same = pl.col("a") == pl.col("b")
    first = (pl.col("a") + 1) * slot_s - pl.col("s")
    last = pl.col("e") - pl.col("b") * slot_s
    shares = [
        (pl.col("density") * pl.when(same).then((pl.col("e") - pl.col("s")) * pl.col(f"qa_{c}")).otherwise(
            first * pl.col(f"qa_{c}") + last * pl.col(f"qb_{c}")
            + slot_s * (pl.col(f"Qb_{c}") - pl.col(f"Qa_{c}") - pl.col(f"qa_{c}")))).alias(c)
        for c in components
    ]
    request_shares = spans.select("request_id", *shares).group_by("request_id").agg(pl.col(components).pipe(fsum))
    return request_shares, node_out
