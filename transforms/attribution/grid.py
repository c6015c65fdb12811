"""The slot grid of one UTC day, and the two ways every step keeps its numbers and its memory
in hand: exact sums (`fsum`) and frames collected once where several steps read them
(`materialize`)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, UTC

import polars as pl

from transforms.contracts import UTC_US

COMPONENTS = ("energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost")


@dataclass(frozen=True)
class SlotGrid:
    """Day `day` cut into slots of `slot_s` seconds; slot k covers [start + k*slot_s, start + (k+1)*slot_s)."""

    day: date
    slot_s: int = 60

    def __post_init__(self):
        if self.slot_s <= 0 or 86400 % self.slot_s:
            raise ValueError(f"slot length {self.slot_s} s must be a positive divisor of 86400 (e.g. 60, 300, 900)")

    @property
    def n_slots(self) -> int:
        return 86400 // self.slot_s

    @property
    def start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    def seconds_since_start(self, ts: pl.Expr) -> pl.Expr:
        """Seconds (Float64) from the day's start to `ts` (a UTC datetime expression)."""
        return (ts - pl.lit(self.start, UTC_US)).dt.total_microseconds().cast(pl.Float64) * 1e-6

    def slot_of(self, ts: pl.Expr) -> pl.Expr:
        """Slot index (Int32) containing `ts`; may fall outside [0, n) for times off the day."""
        us = (ts - pl.lit(self.start, UTC_US)).dt.total_microseconds()
        return (us // (self.slot_s * 1_000_000)).cast(pl.Int32)

    def slot_start(self, slot: pl.Expr) -> pl.Expr:
        return pl.lit(self.start, UTC_US) + pl.duration(seconds=slot.cast(pl.Int64) * self.slot_s)

    def slots(self) -> pl.LazyFrame:
        """One row per slot: `slot` (Int32), `slot_start` (UTC)."""
        return pl.LazyFrame({"slot": pl.int_range(0, self.n_slots, dtype=pl.Int32, eager=True)}).with_columns(
            self.slot_start(pl.col("slot")).alias("slot_start"))


def fsum(values: pl.Expr, scale: float = 1.0) -> pl.Expr:
    """Sum of floats that does not depend on row order: exact decimal addition (18 decimal
    places, magnitudes below 1e20), back to Float64. Polars' float sums follow row order, and
    hash joins and group-bys order rows differently on every run; this keeps re-runs
    byte-identical. `scale` lifts tiny quantities (costs per joule) clear of the last place."""
    if scale == 1.0:
        return values.cast(pl.Decimal(38, 18)).sum().cast(pl.Float64)
    return (values * scale).cast(pl.Decimal(38, 18)).sum().cast(pl.Float64) / scale


def materialize(*frames: pl.LazyFrame) -> list[pl.LazyFrame]:
    """Collect frames read by several later steps, together, once (left lazy, Polars would plan
    them again for every reader)."""
    return [f.lazy() for f in pl.collect_all(list(frames), engine="streaming")]
