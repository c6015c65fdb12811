"""Checks on what the ingest kept of its sources: plain Polars on a partition's ingest audit and
quarantine (and, for interval meters, its canonical readings), beside the GX suites.

A suite checks the rows that were accepted; it cannot see the rows that were not. A FOCUS
bill without `BilledCost` is wholly quarantined and leaves a partition that passes every
expectation, with the cloud cost gone. These checks look at what was lost, per raw file and per
input family (all files of one folder of a site, e.g. `<day>/cloud-use1/focus/`):

- `<dataset>.sources.not_lost` (error): no file and no folder lost more than half of its
  records (LOST_SHARE) to quarantine. Not lost: an exact copy of a record already accepted
  (a file delivered twice is all `exact_duplicate`) and a device saying it has no reading
  (`sensor_not_supported`, `sensor_no_reading`: attribution fills those gaps and flags them;
  see NOT_LOST). An unreadable file (`unreadable_file`) is one record, lost.
- `power_readings.sources.have_readings` (warning): a file most of whose records are sensors
  without a reading (a BMC that stopped answering): attribution estimates that meter's energy.
- `<dataset>.files.ignored` (warning): files under the raw day that no source reads (wrong
  suffix, unknown folder or site, a link out of the raw root), with the audit's reason.
- `power_readings.intervals.no_overlap` (error): no two interval readings of one meter overlap
  (a facility meter's overlapping hours would fall back to the design PUE unnoticed).

Each returns an `ExpectationResult` named like the suites' expectations, so the Dagster checks,
`inferledger check-data` and `python -m pipelines.suites` report them as they report GX's. The
partition's frames are read by `lake.datasets.partition_sources`; `judge_sources` judges them.
"""

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from transforms.quality.runner import EXAMPLES, ExpectationResult
from transforms.quality.suites import Severity

# A file or folder fails when strictly more than this share of its records (exact duplicates set
# aside) was lost: "wholly or mostly". The demo day loses at most 4 records of 28,753 in a site's
# request logs; the real Harvard IPMI dump holygpu8a11101 has 30 of 60 blocks without a reading,
# which are not lost (NOT_LOST) and would sit exactly at the threshold if they were.
LOST_SHARE = 0.5
# Quarantine reasons that lose nothing: a copy of an accepted record, or the device reporting
# that it has no reading (a gap of the meter, which attribution interpolates or estimates and
# flags; a DCGM GPU without the energy counter reports every energy sample as not supported,
# half of its file's records).
DUPLICATE = "exact_duplicate"
NO_READING = ("sensor_not_supported", "sensor_no_reading")
NOT_LOST = (DUPLICATE, *NO_READING)
DATASETS = ("requests", "power_readings", "cost_lines", "assets", "market_prices", "fx_rates",
            "performance_profiles")
UTC_TEXT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class SourceCheck:
    """A check of a partition's sources: `name` as the suites name theirs."""

    name: str
    severity: Severity
    description: str


@dataclass(frozen=True)
class PartitionSources:
    """What the ingest of one dataset's partition left: its audit (one row per raw file:
    `source_file, rows_read, rows_accepted, rows_quarantined` and, when recorded, `status`,
    `status_detail`), its quarantine counted by `source_file, reason` (`n`, and the first
    `detail` of the reason in that file), and its canonical rows (a lazy scan)."""

    audit: pl.DataFrame
    reasons: pl.DataFrame
    canonical: pl.LazyFrame | None = None


def catalog(dataset: str) -> list[SourceCheck]:
    """The source checks of `dataset` (requests, power_readings, cost_lines, assets, market_prices,
    fx_rates)."""
    out = [SourceCheck(f"{dataset}.sources.not_lost", "error",
                       f"No raw file and no folder of a site lost more than {LOST_SHARE:.0%} of its records to "
                       "quarantine (exact duplicates and sensors without a reading set aside); "
                       "examples name the file or folder, the reasons and the fix."),
           SourceCheck(f"{dataset}.files.ignored", "warning",
                       "No file under the raw day that no source reads; examples name the file and why.")]
    if dataset == "power_readings":
        out += [SourceCheck(f"{dataset}.sources.have_readings", "warning",
                            f"No file with more than {LOST_SHARE:.0%} of its records sensors without a reading "
                            "(attribution estimates that meter's energy)."),
                SourceCheck(f"{dataset}.intervals.no_overlap", "error",
                            "No two interval readings of one meter overlap (the site's hours would fall back to "
                            "the design PUE); examples name the meter and both intervals.")]
    return out


def mostly(records: str) -> pl.Expr:
    """`records` (a count column of `source_losses`) is more than LOST_SHARE of the records read,
    exact duplicates set aside."""
    return pl.col(records) > LOST_SHARE * (pl.col("read") - pl.col("duplicates"))


def source_losses(sources: PartitionSources) -> pl.DataFrame:
    """Per raw file and per folder (`level` file | folder, `source`): records `read`, `duplicates`,
    `no_reading`, `lost` and `reasons` (lost records by reason, most first, as text), `fix` (the
    quarantine detail of the file's most common lost reason, or the audit's status detail)."""
    audit, reasons = sources.audit, sources.reasons
    kept = reasons.group_by("source_file").agg(
        pl.col("n").filter(pl.col("reason") == DUPLICATE).sum().alias("duplicates"),
        pl.col("n").filter(pl.col("reason").is_in(NO_READING)).sum().alias("no_reading"))
    lost = (reasons.filter(~pl.col("reason").is_in(NOT_LOST))
            .sort(["source_file", "n", "reason"], descending=[False, True, False])
            .group_by("source_file", maintain_order=True)
            .agg(pl.col("n").sum().alias("lost"), pl.format("{} {}", "reason", "n").str.join(", ").alias("reasons"),
                 pl.col("detail").first().alias("fix")))
    per_reason = kept.join(lost, on="source_file", how="left")
    status = pl.col("status_detail") if "status_detail" in audit.columns else pl.lit(None, pl.String)
    if "status" in audit.columns:
        audit = audit.filter(pl.col("status") != "ignored")  # nothing read, nothing lost: `files.ignored` lists them
    files = (audit.select("source_file", pl.col("rows_read").alias("read"), status.alias("status_detail"))
             .join(per_reason, on="source_file", how="left")
             .with_columns(pl.col("duplicates", "no_reading", "lost").fill_null(0),
                           pl.col("reasons").fill_null(""),
                           pl.coalesce("fix", "status_detail").alias("fix"))
             .select(pl.lit("file").alias("level"), pl.col("source_file").alias("source"),
                     pl.col("source_file").str.replace(r"[^/]*$", "").alias("folder"),
                     "read", "duplicates", "no_reading", "lost", "reasons", "fix"))
    folders = (files.group_by("folder", maintain_order=True)
               .agg(pl.len().alias("files"), pl.col("read", "duplicates", "no_reading", "lost").sum(),
                    mostly("lost").sum().alias("files_lost"))
               .select(pl.lit("folder").alias("level"), pl.col("folder").alias("source"), "folder", "read",
                       "duplicates", "no_reading", "lost",
                       pl.format("{} of {} file(s) mostly lost", "files_lost", "files").alias("reasons"),
                       pl.lit(None, pl.String).alias("fix")))
    return pl.concat([folders, files.sort("source")], how="vertical_relaxed")


def _result(check: SourceCheck, unexpected: int, examples: list, observed) -> ExpectationResult:
    return ExpectationResult(name=check.name, severity=check.severity, success=unexpected == 0,
                             unexpected_count=unexpected, examples=examples, observed=observed,
                             description=check.description)


def not_lost(check: SourceCheck, losses: pl.DataFrame) -> ExpectationResult:
    """Files (and folders) that lost more than LOST_SHARE of their records; the unexpected count
    is the number of such files. Examples: the first EXAMPLES such files, each with its reasons
    and fix, then each such folder."""
    failed = losses.filter(mostly("lost"))
    folders = failed.filter(pl.col("level") == "folder")
    files = failed.filter(pl.col("level") == "file")
    examples = [f"{r['source']}: {r['lost']:,} of {r['read']:,} records quarantined ({r['reasons']}); fix: {r['fix']}; "
                "then re-run the day's ingest" for r in files.head(EXAMPLES).iter_rows(named=True)]
    examples += [f"folder {r['source']} as a whole: {r['lost']:,} of {r['read']:,} records lost, {r['reasons']}"
                 for r in folders.iter_rows(named=True)]
    return _result(check, files.height, examples, failed.drop("folder").to_dicts() if failed.height else None)


def have_readings(check: SourceCheck, losses: pl.DataFrame) -> ExpectationResult:
    """Files more than LOST_SHARE of whose records are sensors without a reading."""
    silent = losses.filter((pl.col("level") == "file") & mostly("no_reading"))
    examples = [f"{r['source']}: {r['no_reading']:,} of {r['read']:,} records without a reading; check the BMC or "
                "exporter (attribution estimates the meter's energy meanwhile)"
                for r in silent.head(EXAMPLES).iter_rows(named=True)]
    return _result(check, silent.height, examples, None)


def ignored(check: SourceCheck, audit: pl.DataFrame) -> ExpectationResult:
    """Audit rows of status `ignored`: files no source reads, with the audit's reason."""
    if "status" not in audit.columns:
        return _result(check, 0, [], None)
    rows = audit.filter(pl.col("status") == "ignored").sort("source_file")
    examples = [f"{r['source_file']}: {r['status_detail'] or 'no source reads this file'}"
                for r in rows.head(EXAMPLES).iter_rows(named=True)]
    return _result(check, rows.height, examples, None)


def overlapping_intervals(readings: pl.LazyFrame) -> pl.DataFrame:
    """Interval readings (`interval_s` set) of one meter whose interval `[ts - interval_s, ts)`
    starts before the meter's previous interval ends: `meter_id`, `start`, `end` and the previous
    reading's `prev_start`, `prev_end`, in meter and time order."""
    length = pl.duration(microseconds=(pl.col("interval_s") * 1e6).round(0).cast(pl.Int64))
    return (readings.filter(pl.col("interval_s").is_not_null())
            .select("meter_id", (pl.col("ts") - length).alias("start"), pl.col("ts").alias("end"))
            .sort("meter_id", "end", "start")
            .with_columns(pl.col("start", "end").shift(1).over("meter_id").name.prefix("prev_"))
            .filter(pl.col("start") < pl.col("prev_end"))
            .collect())


def no_overlap(check: SourceCheck, readings: pl.LazyFrame | None) -> ExpectationResult:
    hits = overlapping_intervals(readings) if readings is not None else pl.DataFrame()
    fmt = lambda v: v.strftime(UTC_TEXT)  # noqa: E731
    examples = [f"meter {r['meter_id']}: interval {fmt(r['start'])}-{fmt(r['end'])} overlaps "
                f"{fmt(r['prev_start'])}-{fmt(r['prev_end'])}; two exports cover the same time: withdraw or correct "
                "one and re-run the day (until then these hours use the design PUE)"
                for r in hits.head(EXAMPLES).iter_rows(named=True)]
    return _result(check, hits.height, examples, None)


def judge_sources(dataset: str, sources: PartitionSources) -> list[ExpectationResult]:
    """Every source check of `dataset` on one partition's audit, quarantine and readings."""
    losses = source_losses(sources)
    run: dict[str, Callable[[SourceCheck], ExpectationResult]] = {
        "not_lost": lambda c: not_lost(c, losses),
        "ignored": lambda c: ignored(c, sources.audit),
        "have_readings": lambda c: have_readings(c, losses),
        "no_overlap": lambda c: no_overlap(c, sources.canonical),
    }
    return [run[c.name.rsplit(".", 1)[1]](c) for c in catalog(dataset)]
