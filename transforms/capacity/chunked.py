"""The day's load, latency buckets and output-token percentiles, a group of nodes at a time
(docs/capacity.md, "Memory"), in memory bounded by the group, not the day.

The request facts are read in node groups of about `chunk_rows` facts (contiguous ranges of the sorted
node names: the facts files are written node by node, so a range's filter skips the other row
groups). Pass 1, per group: the per node-minute load (`node_minute_load`: small, nodes x 1,440 rows),
the latency samples counted per node-minute (rows, non-null TTFT, non-null E2E), the served (pool,
model, tier), a count per distinct output-token figure of the ok answers, and per latency a count
per (bucket, bin) (`_bin`: the float's sign, exponent and 18 first mantissa bits) with the bin's least
and greatest value. The load and counts of every group give each bucket (pool, model, load bucket)
its samples, mean load and how many latency values it has, so the rank of its p95
(`quantile.quantile_ranks`) and the bins holding the two values at that rank (`_target_bins`). Where
each of those bins holds one distinct value, the value is the bin's own; otherwise pass 2 reads the
groups' latency samples again and keeps only the values in those bins (`_values_in`). The p95 from
them (`quantile.linear_quantile`) has the bits of Polars' own over every sample; the output tokens'
comes from their counts.
"""

from datetime import date

import numpy as np
import polars as pl

from transforms.capacity.learn import load_bucket
from transforms.capacity.load import as_strings, encode_with, exact_mean, key_values, latency_samples, node_minute_load
from transforms.capacity.quantile import linear_quantile, quantile_ranks

CHUNK_ROWS = 2_000_000  # facts per node group: about 0.6 GB at the explode of their minutes
MINUTE_KEYS = ["pool_id", "model", "node_id", "minute"]
BUCKET = ["pool_id", "model", "bucket"]
LATENCIES = ("ttft_s", "e2e_s")
BIN_SHIFT = 34  # of a double's 64 bits, the bin keeps the 30 highest (`_bin`)


def node_groups(counts: pl.DataFrame, chunk_rows: int) -> list[tuple[str, str]]:
    """Ranges (first, last node name) of consecutive sorted nodes holding about `chunk_rows` facts each
    (a node is never split; one with more facts is a group of its own), from the facts per node
    (`node_id`, `len`)."""
    counts = counts.drop_nulls("node_id").sort("node_id")
    grouped = counts.with_columns(((pl.col("len").cum_sum() - pl.col("len")) // max(chunk_rows, 1)).alias("g"))
    return grouped.group_by("g").agg(pl.col("node_id").min(), pl.col("node_id").max().alias("last")).sort("g") \
        .select("node_id", "last").rows()


def _in_group(facts: pl.LazyFrame, first: str, last: str, with_nulls: bool) -> pl.LazyFrame:
    in_range = pl.col("node_id").is_between(pl.lit(first), pl.lit(last))
    return facts.filter(in_range | pl.col("node_id").is_null() if with_nulls else in_range)


def _bin(values: pl.Series) -> pl.Series:
    """A bin of each (non-null) float, in the floats' order: its sign, exponent and 18 first mantissa
    bits (262,144 bins an octave: a latency in milliseconds below 262 s has a bin of its own), -0.0
    with 0.0."""
    bits = (values.to_numpy() + 0.0).view(np.int64)
    return pl.Series((bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))) >> BIN_SHIFT, dtype=pl.Int64)


def _at_buckets(samples: pl.LazyFrame, minutes: pl.LazyFrame) -> pl.LazyFrame:
    """The latency samples at their node-minute's bucket (samples of a node-minute without load dropped,
    as `learn._bucket_stats` drops them)."""
    return samples.join(minutes, on=MINUTE_KEYS, how="inner")


def _binned(at_buckets: pl.LazyFrame, c: str) -> pl.LazyFrame:
    """The non-null values `v` of latency `c` at their bucket (`BUCKET`), with their `bin`."""
    return (at_buckets.select(*BUCKET, pl.col(c).alias("v")).drop_nulls("v")
            .with_columns(pl.col("v").map_batches(_bin, return_dtype=pl.Int64).alias("bin")))


def _pass1(parts: list[pl.LazyFrame], day: date) -> tuple[pl.DataFrame, ...]:
    """Load, per sampled node-minute its bucket and sample counts, pairs, output-token counts and, per
    latency, the count of its values per (bucket, bin), of every node group."""
    got: list[list[pl.DataFrame]] = [[], [], [], [], *[[] for _ in LATENCIES]]
    for part in parts:
        ok = part.filter(pl.col("completed_at").dt.date() == day, pl.col("status") == "ok")
        load, samples, pairs, tokens = pl.collect_all([
            node_minute_load(part, day), latency_samples(part, day), part.select("pool_id", "model", "tier").unique(),
            ok.group_by("pool_id", "model", "tier", "output_tokens").agg(pl.len().alias("n"))])
        minutes = load.lazy().select(*MINUTE_KEYS, load_bucket(pl.col("in_flight")).alias("bucket"))
        at = _at_buckets(samples.lazy(), minutes).collect()
        counts, *hists = pl.collect_all([
            at.lazy().group_by(*MINUTE_KEYS, "bucket").agg(pl.len().alias("n"),
                                                           *[pl.col(c).count().alias(f"n_{c}") for c in LATENCIES]),
            *[_binned(at.lazy(), c).group_by(*BUCKET, "bin").agg(pl.len().alias("n"), pl.col("v").min().alias("v_min"),
                                                                 pl.col("v").max().alias("v_max"))
              for c in LATENCIES]])
        for into, frame in zip(got, [load, counts, pairs, tokens, *hists], strict=True):
            into.append(frame)
    load, counts, pairs, tokens, *hists = (pl.concat(f) for f in got)
    tokens = tokens.group_by("pool_id", "model", "tier", "output_tokens").agg(pl.col("n").sum())
    hists = [h.group_by(*BUCKET, "bin").agg(pl.col("n").sum().cast(pl.Int64), pl.col("v_min").min(),
                                            pl.col("v_max").max()) for h in hists]
    return load.sort(MINUTE_KEYS), counts, pairs.unique(), tokens, *hists


def _bucket_counts(load: pl.LazyFrame, counts: pl.LazyFrame) -> pl.LazyFrame:
    """Per bucket with samples: `samples` (its node-minutes with a sample), `tokens_s`, `in_flight` (their
    means, as `learn._bucket_stats`) and, per latency, how many values (`nn_`) and nulls (`nc_`) it has."""
    return counts.join(load, on=MINUTE_KEYS, how="inner").group_by(BUCKET).agg(
        pl.len().cast(pl.Int64).alias("samples"), exact_mean(pl.col("output_tokens_per_s")).alias("tokens_s"),
        exact_mean(pl.col("in_flight")).alias("in_flight"),
        *[pl.col(f"n_{c}").sum().alias(f"nn_{c}") for c in LATENCIES],
        *[(pl.col("n") - pl.col(f"n_{c}")).sum().alias(f"nc_{c}") for c in LATENCIES])


def _target_bins(hist: pl.LazyFrame, ranks: pl.LazyFrame) -> pl.LazyFrame:
    """Per bucket: the bins holding its values of ranks `r_lo` and `r_hi` (`lo_bin`, `hi_bin`),
    `below`, how many of its values lie in lower bins, and `known`: both bins hold one distinct value
    (their values are then the bins' own, without reading the facts again)."""
    end = pl.col("n").cum_sum().over(BUCKET)
    ranked = (hist.join(ranks.select(*BUCKET, "r_lo", "r_hi"), on=BUCKET).sort(*BUCKET, "bin")
              .with_columns(end.alias("end")).with_columns((pl.col("end") - pl.col("n")).alias("start")))

    def holding(rank: str) -> pl.Expr:
        return (pl.col("start") <= pl.col(rank)) & (pl.col(rank) < pl.col("end"))

    return ranked.group_by(BUCKET).agg(pl.col("bin").filter(holding("r_lo")).first().alias("lo_bin"),
                                       pl.col("bin").filter(holding("r_hi")).first().alias("hi_bin"),
                                       pl.col("start").filter(holding("r_lo")).first().alias("below"),
                                       (pl.col("v_min") == pl.col("v_max")).filter(holding("r_lo") | holding("r_hi"))
                                       .all().alias("known"))


def _values_in(parts: list[pl.LazyFrame], day: date, minutes: pl.DataFrame,
               targets: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Pass 2: per latency, the values of each bucket in its target bins (`_target_bins`)."""
    got: dict[str, list[pl.DataFrame]] = {c: [] for c in LATENCIES}
    for part in parts:
        at = _at_buckets(latency_samples(part, day), minutes.lazy())
        frames = pl.collect_all([
            _binned(at, c).join(targets[c].lazy(), on=BUCKET)
            .filter(pl.col("bin") >= pl.col("lo_bin"), pl.col("bin") <= pl.col("hi_bin")).select(*BUCKET, "v")
            for c in LATENCIES])
        for c, frame in zip(LATENCIES, frames, strict=True):
            got[c].append(frame)
    return {c: pl.concat(got[c]) for c in LATENCIES}


def _target_values(parts: list[pl.LazyFrame], day: date, minutes: pl.DataFrame, targets: dict[str, pl.DataFrame],
                   hists: list[pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Per latency, the values (`v`, `n`) of each bucket's target bins: from the counts where each bin
    holds one distinct value, else from a second pass over the facts (`_values_in`)."""
    out = {}
    for c, hist in zip(LATENCIES, hists, strict=True):
        known = hist.join(targets[c].filter("known"), on=BUCKET).filter(
            pl.col("bin").is_between(pl.col("lo_bin"), pl.col("hi_bin"))).select(*BUCKET, pl.col("v_min").alias("v"),
                                                                                  pl.col("n").cast(pl.UInt32))
        out[c] = known
    unknown = {c: targets[c].filter(~pl.col("known")) for c in LATENCIES}
    if any(t.height for t in unknown.values()):
        second = _values_in(parts, day, minutes, unknown)
        out = {c: pl.concat([out[c], second[c].group_by(BUCKET + ["v"]).agg(pl.len().alias("n"))]) for c in LATENCIES}
    return out


def chunked_inputs(facts: pl.LazyFrame, day: date, chunk_rows: int = CHUNK_ROWS,
                   ) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """From the day's facts (FACT_COLUMNS): the load (sorted on its keys, node, pool and model as Enums
    of their sorted names: `load.encode_keys`), the bucket statistics (`learn.learned_from_buckets`'
    input), the served pairs, and the p95 of output tokens per (pool, model, tier) and per (pool,
    model) of the ok answers completed in the day; all in memory, none larger than nodes x 1,440."""
    values, counts = pl.collect_all([key_values(facts), facts.group_by("node_id").len()])
    groups = node_groups(counts, chunk_rows) or [("", "")]
    parts = [encode_with(_in_group(facts, first, last, i == 0), values.row(0))
             for i, (first, last) in enumerate(groups)]
    load, counts, pairs, tokens, *hists = _pass1(parts, day)
    minutes = load.select(*MINUTE_KEYS, load_bucket(pl.col("in_flight")).alias("bucket"))
    sampled = _bucket_counts(load.lazy(), counts.lazy()).collect()
    ranks = {c: quantile_ranks(sampled.lazy().select(*BUCKET, pl.col(f"nn_{c}").alias("nn"),
                                                     pl.col(f"nc_{c}").alias("nc"))).collect() for c in LATENCIES}
    targets = {c: _target_bins(h.lazy(), ranks[c].lazy()).collect() for c, h in zip(LATENCIES, hists, strict=True)}
    values = _target_values(parts, day, minutes, targets, hists)
    p95 = [linear_quantile(values[c].lazy(),
                           ranks[c].lazy().select(*BUCKET, "nn", "nc").join(targets[c].lazy().select(*BUCKET, "below"),
                                                                            on=BUCKET, how="left"),
                           BUCKET, f"{c[:-2]}_p95_s")
           for c in LATENCIES]
    stats = sampled.lazy().select(*BUCKET, "samples", "tokens_s", "in_flight").join(p95[0], on=BUCKET) \
        .join(p95[1], on=BUCKET)
    return (load.lazy(), as_strings(stats), as_strings(pairs.lazy()),
            *(as_strings(p) for p in _output_p95(tokens.lazy())))


def _output_p95(tokens: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The p95 of output tokens per (pool, model, tier) (`tier_p95`) and per (pool, model) (`pool_p95`)
    from the counts per distinct figure (`output_tokens`, `n`)."""
    out = []
    for keys, name in ((["pool_id", "model", "tier"], "tier_p95"), (["pool_id", "model"], "pool_p95")):
        hist = tokens.group_by(*keys, "output_tokens").agg(pl.col("n").sum().cast(pl.Int64))
        stats = hist.group_by(keys).agg(pl.col("n").filter(pl.col("output_tokens").is_not_null()).sum().alias("nn"),
                                        pl.col("n").filter(pl.col("output_tokens").is_null()).sum().alias("nc"),
                                        pl.lit(0, pl.Int64).alias("below"))
        values = hist.drop_nulls("output_tokens").select(*keys, pl.col("output_tokens").cast(pl.Float64).alias("v"),
                                                         "n")
        out.append(linear_quantile(values, stats, keys, name))
    return out[0], out[1]
