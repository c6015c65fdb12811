"""Restatement: what a publish changed in days already published, and what each day showed first
(DOMAIN.md section 7: finance sees both what a day showed first and what it shows now).

Each publish records, per published day, what the day showed (`published/amounts/`: per money
component, the day's source amount and its split to requests, idle and unattributed, from the
attribution's `totals`) and which lake partitions it was computed from (`published/inputs/`:
dataset, partition file and the SHA-256 of its bytes; the bill deliveries touching the day
included, `lake.bills`). The next publish compares: an amount that differs by a cent or more
(rounded to cents) is a **restatement** row, naming the raw files whose ingest changed the day's
inputs since (the ingest audit's files of the partitions that are new or rewritten). The rows
of every publish are kept (`restatements/<version>.parquet`), as is each day's
`cost_by_tier_day` as first published (`first_published/cost_by_tier_day/date=D.parquet`).
These records are the warehouse's history: they live beside the published file, under
`history/` (`history_dir`), not in the lake, whose data they do not change.

Nothing is written until the version is published (`Pending.commit`): a publish that fails its
checks records nothing, and the next one finds the same changes. A publish with nothing new
adds no row.

    <warehouse dir>/history/published/{amounts,inputs}/date=D.parquet
    <warehouse dir>/history/restatements/<version>.parquet
    <warehouse dir>/history/first_published/cost_by_tier_day/date=D.parquet
"""

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from lake import files
from lake.bills import bill_index, deliveries_touching
from lake.store import FLEET, Lake
from transforms.attribution.grid import COMPONENTS

MONEY_COMPONENTS = (*COMPONENTS, "egress_cost")
MEASURES = ("cost", "to_requests", "to_idle", "unattributed")  # the day's source amount, and where it went
AMOUNTS = pl.Schema({"date": pl.Date, "component": pl.String, "measure": pl.String, "amount": pl.Float64,
                     "currency": pl.String, "version": pl.String})
INPUTS = pl.Schema({"date": pl.Date, "dataset": pl.String, "partition": pl.String, "size": pl.Int64,
                    "mtime_ns": pl.Int64, "sha256": pl.String})
RESTATEMENTS = pl.Schema({
    "date": pl.Date, "component": pl.String, "measure": pl.String, "amount_before": pl.Float64,
    "amount_after": pl.Float64, "difference": pl.Float64, "currency": pl.String, "caused_by": pl.String,
    "version_before": pl.String, "version_after": pl.String, "restated_at": pl.Datetime("us", "UTC")})
FIRST_EXTRA = pl.Schema({"first_version": pl.String, "first_published_at": pl.Datetime("us", "UTC")})
NO_INPUT_CHANGED = "(no input changed: the method, the inventory or the settings did)"


def history_dir(warehouse: Path) -> Path:
    """Where the publishes of the warehouse file `warehouse` keep their history."""
    return Path(warehouse).parent / "history"


def day_amounts(lake: Lake, day: date, currency: str, version: str) -> pl.DataFrame:
    """What `day` shows: per money component, its `cost` (source amount) and the amounts `to_requests`,
    `to_idle` and `unattributed` (the attribution's `totals`)."""
    totals = pl.scan_parquet(lake.partition_file("totals", day)).filter(pl.col("component").is_in(MONEY_COMPONENTS))
    return (totals.rename({"source_amount": "cost"})
            .unpivot(index="component", on=list(MEASURES), variable_name="measure", value_name="amount")
            .with_columns(pl.lit(day).alias("date"), pl.lit(currency).alias("currency"),
                          pl.lit(version).alias("version"))
            .select(AMOUNTS.names()).sort("component", "measure").collect())


def _file_row(day: date, dataset: str, path: "Path | str", lake: Lake, known: dict[tuple, str]) -> dict:
    """A partition file read by `day`, with the SHA-256 of its bytes (taken from `known`, the
    previous record, while its size and modification time are unchanged: a re-ingest rewrites
    the same bytes, which must not read as a change)."""
    (size, mtime_ns, *_), rel = lake.stamp(path), lake.relative(path)
    digest = known.get((rel, size, mtime_ns))
    if digest is None:
        h = hashlib.sha256()
        with lake.open_read(path) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = h.hexdigest()
    return {"date": day, "dataset": dataset, "partition": rel, "size": size, "mtime_ns": mtime_ns,
            "sha256": digest}


def day_inputs(lake: Lake, day: date, index: pl.DataFrame, registers: list[date],
               previous: pl.DataFrame) -> pl.DataFrame:
    """The lake partitions `day` was computed from: its requests, readings and market prices, the
    asset register in force (`registers`: `Lake.delivered_days("assets")`), and every bill
    delivery touching it (`index`: `lake.bills.bill_index`); `previous`: the record of its
    previous publish (its digests are reused)."""
    known = {(r[0], r[1], r[2]): r[3] for r in previous.select("partition", "size", "mtime_ns", "sha256").iter_rows()}
    found = [(ds, f) for ds in ("requests", "power_readings", "market_prices") for f in lake.day_files(ds, day)]
    in_force = [d for d in registers if d <= day]
    found += [("assets", f) for f in (lake.day_files("assets", in_force[-1]) if in_force else [])]
    found += [("cost_lines", f) for f in deliveries_touching(index, day, day)["file"]]
    rows = [_file_row(day, ds, f, lake, known) for ds, f in found]
    return pl.DataFrame(rows, schema=INPUTS).sort("dataset", "partition")


def _audit_files(lake: Lake, changed: pl.DataFrame) -> list[str]:
    """The raw files the ingest read into the `changed` partitions (`<dataset>/date=D[/site=S]/...`)."""
    names = set()
    for dataset, partition in changed.select("dataset", "partition").iter_rows():
        parts = Path(partition).parts
        site = parts[2].removeprefix("site=") if parts[2].startswith("site=") else FLEET
        audit = lake.partition_file("ingest_audit", date.fromisoformat(parts[1].removeprefix("date=")), site, dataset)
        if lake.exists(audit):
            read = pl.read_parquet(audit).filter((pl.col("dataset") == dataset) & (pl.col("status") != "ignored"))
            names.update(read["source_file"].to_list())
    return sorted(names)


def _causes(lake: Lake, before: pl.DataFrame, now: pl.DataFrame) -> str:
    changed = now.join(before, on=["dataset", "partition", "sha256"], how="anti")
    gone = before.join(now, on=["dataset", "partition"], how="anti")
    names = _audit_files(lake, changed)
    names += [f"{p} (no longer read)" for p in gone["partition"]]
    return "; ".join(names) if names else NO_INPUT_CHANGED


def _read(path: Path, schema: pl.Schema) -> pl.DataFrame:
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=schema)


@dataclass
class Pending:
    """What a publish will record once its version is in place (`commit`)."""

    restatements: pl.DataFrame
    amounts: dict[date, pl.DataFrame] = field(default_factory=dict)
    inputs: dict[date, pl.DataFrame] = field(default_factory=dict)
    first_published: dict[date, pl.DataFrame] = field(default_factory=dict)
    version: str = ""

    def commit(self, history: Path) -> None:
        if self.restatements.height:
            files.write_parquet(Path(history, "restatements", f"{self.version}.parquet"), self.restatements)
        for day, frame in self.first_published.items():
            files.write_parquet(_first_path(history, day), frame)
        for day, frame in self.amounts.items():
            files.write_parquet(Path(history, "published", "amounts", f"date={day}.parquet"), frame)
        for day, frame in self.inputs.items():
            files.write_parquet(Path(history, "published", "inputs", f"date={day}.parquet"), frame)


def _first_path(history: Path, day: date) -> Path:
    return Path(history, "first_published", "cost_by_tier_day", f"date={day}.parquet")


def pending(lake: Lake, history: Path, days: list[date], currency: str, version: str,
            published_at: datetime) -> Pending:
    """Compare each of `days` (about to be published as `version`) with what it showed at its
    previous publish recorded in `history` (`history_dir`); the restatement rows, and the records
    to write: a day's amounts when first published or restated (so `version_before` names the
    publication that first showed them), its inputs when a file of them changed."""
    index, registers = bill_index(lake), lake.delivered_days("assets")
    out = Pending(pl.DataFrame(schema=RESTATEMENTS), version=version)
    rows = []
    for day in days:
        previous = _read(Path(history, "published", "inputs", f"date={day}.parquet"), INPUTS)
        inputs = day_inputs(lake, day, index, registers, previous)
        if not inputs.equals(previous):
            out.inputs[day] = inputs
        if not _first_path(history, day).exists():
            out.first_published[day] = pl.read_parquet(lake.mart_path("cost_by_tier_day", day)).with_columns(
                pl.lit(version).alias("first_version"), pl.lit(published_at, FIRST_EXTRA["first_published_at"])
                .alias("first_published_at"))
        now = day_amounts(lake, day, currency, version)
        before = _read(Path(history, "published", "amounts", f"date={day}.parquet"), AMOUNTS)
        if before.is_empty():
            out.amounts[day] = now
            continue
        diff = (before.join(now, on=["component", "measure"], how="full", coalesce=True, suffix="_after")
                .with_columns(pl.col("amount").fill_null(0.0).alias("amount_before"),
                              pl.col("amount_after").fill_null(0.0))
                .filter(pl.col("amount_before").round(2) != pl.col("amount_after").round(2)))
        if diff.is_empty():
            continue
        out.amounts[day] = now
        rows.append(diff.select(
            pl.lit(day).alias("date"), "component", "measure", "amount_before", "amount_after",
            (pl.col("amount_after") - pl.col("amount_before")).alias("difference"),
            pl.coalesce("currency_after", "currency").alias("currency"),
            pl.lit(_causes(lake, previous, inputs)).alias("caused_by"),
            pl.lit(before["version"][0]).alias("version_before"), pl.lit(version).alias("version_after"),
            pl.lit(published_at, RESTATEMENTS["restated_at"]).alias("restated_at")))
    if rows:
        out.restatements = pl.concat(rows).cast(RESTATEMENTS).sort("date", "component", "measure")
    return out


def history_tables(history: Path, new: Pending) -> dict[str, pl.DataFrame]:
    """The tables `restatements` (every publish's rows, this one's included) and
    `cost_by_tier_day_first_published` (each day's rows as first published) of a version."""
    kept = sorted(Path(history, "restatements").glob("*.parquet"))
    restated = pl.concat([*(pl.read_parquet(f) for f in kept), new.restatements], how="vertical_relaxed")
    firsts = sorted(Path(history, "first_published", "cost_by_tier_day").glob("date=*.parquet"))
    first = [pl.read_parquet(f) for f in firsts] + list(new.first_published.values())
    # Never empty: every published day has its first-published rows (written by this publish or before).
    return {"restatements": restated.cast(RESTATEMENTS),
            "cost_by_tier_day_first_published": pl.concat(first, how="vertical_relaxed")}
