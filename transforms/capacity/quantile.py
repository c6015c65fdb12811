"""Exact `quantile(0.95, "linear")` from a few of a group's values (docs/capacity.md).

Polars' linear quantile of a group of `nn` non-null values and `nc` nulls takes the position
`float_idx = (nn - 1) * q + off`, the values at positions `floor(float_idx)` and `ceil(float_idx)`
(non-null ranks `r_lo`, `r_hi` = those minus `off`), and returns `lower` when they are equal, else
`(float_idx - floor(float_idx)) * (upper - lower) + lower`. `off` is where the release puts the
non-null values: Polars 2.1 sorts the nulls first and counts them (`off = nc`), Polars 2.2 drops them
(`off = 0`); the two choose the same values but round the proportion differently (2.95 - 2 is not
0.95). `NULLS_IN_RANK` asks the installed Polars once which it does. The same float operations on
the same two values give the same bits, so the p95 needs only the values of ranks `r_lo` and up: the
top `nn - r_lo` (about 5%) of each group, or a count per distinct value (`linear_quantile`).
tests/test_capacity_chunked.py holds this equal to Polars' own to the bit.
"""

import polars as pl

P95 = 0.95


def _nulls_in_rank() -> bool:
    """Whether the installed Polars counts a group's nulls in its linear quantile's position (module
    docstring): [null, null, 0, 0.25] gives (2.95 - 2) * 0.25 = 0.23750000000000004 if it does,
    0.95 * 0.25 = 0.2375 if not."""
    probe = pl.DataFrame({"g": [0] * 4, "v": [None, None, 0.0, 0.25]}, schema={"g": pl.Int64, "v": pl.Float64})
    return probe.group_by("g").agg(pl.col("v").quantile(P95, "linear"))["v"][0] != 0.2375


NULLS_IN_RANK = _nulls_in_rank()


def quantile_ranks(stats: pl.LazyFrame, q: float = P95) -> pl.LazyFrame:
    """`stats` (`nn`, `nc` per group) with `fidx`, `r_lo`, `r_hi` (module docstring)."""
    off = pl.col("nc") if NULLS_IN_RANK else pl.lit(0, pl.Int64)
    fidx = (pl.col("nn").cast(pl.Float64) - 1.0) * q + off.cast(pl.Float64)
    return stats.with_columns(fidx.alias("fidx")).with_columns(
        (pl.col("fidx").floor().cast(pl.Int64) - off).alias("r_lo"),
        (pl.col("fidx").ceil().cast(pl.Int64) - off).alias("r_hi"))


def linear_quantile(values: pl.LazyFrame, stats: pl.LazyFrame, keys: list[str], name: str,
                    q: float = P95) -> pl.LazyFrame:
    """Per group of `stats` (`keys`, `nn` non-null values, `nc` nulls, `below`: how many of its non-null
    values are smaller than every value listed in `values`): Polars' linear `q`-quantile, as `name`
    (null for a group without a non-null value). `values`: `keys`, `v` (non-null), `n` (how many
    values equal `v`); it must list every value of ranks `below` and up to the quantile's."""
    s = quantile_ranks(stats, q)
    end = pl.col("n").cum_sum().over(keys) + pl.col("below")
    ranked = (values.join(s.select(*keys, "below", "r_lo", "r_hi"), on=keys).sort(*keys, "v")
              .with_columns(end.alias("end")).with_columns((pl.col("end") - pl.col("n")).alias("start")))

    def at(rank: str) -> pl.Expr:
        return pl.col("v").filter((pl.col("start") <= pl.col(rank)) & (pl.col(rank) < pl.col("end"))).first()

    picked = ranked.group_by(keys).agg(at("r_lo").alias("lo"), at("r_hi").alias("hi"))
    lo, hi = pl.col("lo"), pl.col("hi")
    prop = pl.col("fidx") - pl.col("fidx").floor()
    return (s.join(picked, on=keys, how="left")
            .select(*keys, pl.when(lo == hi).then(lo).otherwise(prop * (hi - lo) + lo).alias(name)))
