"""The shared shape of every parser's output, and the one place rows are judged.

A parser turns raw records into a *parsed* frame: the contract's columns (null where
unreadable) plus four bookkeeping columns:

- `_source_file` (str): the raw file, relative to the raw directory;
- `_source_row` (Int64): 1-based line or data row in that file;
- `_reason` (str | null): why the row cannot be accepted, a code from `REASONS`;
- `_detail` (str | null): what was wrong and how to fix it, for a person.

`classify` adds the contract-level judgements (required fields, partition day,
duplicates). `accepted`, `quarantined` and `audit` then split one classified frame
three ways, so `rows_read = rows_accepted + rows_quarantined` holds by construction.
The canonical CSV/Parquet form of a contract is read by `canonical.parse_canonical`.
"""

from datetime import date, datetime, timedelta, UTC

import numpy as np
import polars as pl

from transforms.contracts import INGEST_AUDIT, QUARANTINE, UTC_US, Contract

BOOKKEEPING = ["_source_file", "_source_row", "_reason", "_detail"]

# Reason codes. Parsers may only use these; docs/data-contracts.md explains each.
REASONS = {
    "malformed_record": "The line or row could not be read as a record of its format "
                        "(invalid JSON, wrong field count).",
    "unreadable_file": "The whole file could not be read as its format (damaged or mislabelled compression, a CSV that "
                       "cannot be parsed, not Parquet): one row, line 0, stands for the file; "
                       "its records are not read.",
    "missing_required_field": "A field the contract requires is absent or empty.",
    "invalid_value": "A field holds a value of the wrong type or outside its allowed set.",
    "out_of_range": "A number outside the physical bounds of its unit (transforms/bounds.py), NaN or infinite.",
    "negative_value": "A count, size or amount that cannot be negative is negative.",
    "end_before_start": "The record ends before it starts.",
    "bad_timestamp": "A timestamp could not be parsed, or has no UTC offset where the format requires one.",
    "outside_partition_day": "The record belongs to another UTC day than the raw folder it was delivered in.",
    "unknown_node": "The node (or host) is not in the inventory.",
    "node_runs_no_requests": "A request logged on an infrastructure node (a router, gateway or CPU server of the "
                             "inventory, which runs no request).",
    "unknown_meter": "The meter is not in the inventory.",
    "unknown_site": "The site is not in the inventory.",
    "unknown_tier": "The tier is not in the inventory.",
    "unknown_currency": "The currency is not an ISO 4217 code this product accepts.",
    "sensor_not_supported": "The device reported a 'not supported' / blank sentinel instead of a reading.",
    "sensor_no_reading": "The sensor gave no reading (BMC did not answer, 'no reading', 'Not Readable').",
    "exact_duplicate": "An identical copy of an accepted record (collapsed; the first copy is kept).",
    "conflicting_duplicate": "Several records share a key with different values; "
                             "none is kept until the source is corrected.",
}

# ISO 4217 codes accepted in bills and the register (active codes that matter to operators;
# extend here when an operator bills in another currency).
ISO_CURRENCIES = frozenset(
    ("USD EUR GBP JPY CNY CHF CAD AUD NZD SEK NOK DKK PLN CZK HUF INR KRW SGD HKD TWD BRL MXN ZAR AED SAR "
     "ILS TRY").split()
)


def reject(reason: str, detail: pl.Expr | str) -> tuple[pl.Expr, pl.Expr]:
    """Literal helpers for parsers: `(reason_expr, detail_expr)`."""
    assert reason in REASONS, reason
    return pl.lit(reason), detail if isinstance(detail, pl.Expr) else pl.lit(detail)


def first_reason(checks: list[tuple[pl.Expr, str, pl.Expr | str]]) -> list[pl.Expr]:
    """Given `(condition, reason, detail)` checks in priority order, return expressions that set
    `_reason`/`_detail` to the first failing check, keeping any reason already set."""
    reason = pl.col("_reason")
    detail = pl.col("_detail")
    for cond, code, msg in reversed(checks):
        assert code in REASONS, code
        msg_expr = msg if isinstance(msg, pl.Expr) else pl.lit(msg)
        reason = pl.when(pl.col("_reason").is_null() & cond.fill_null(False)).then(pl.lit(code)).otherwise(reason)
        detail = pl.when(pl.col("_reason").is_null() & cond.fill_null(False)).then(msg_expr).otherwise(detail)
    return [reason.alias("_reason"), detail.alias("_detail")]


def parse_utc(expr: pl.Expr, *, naive_is_utc: bool = False) -> pl.Expr:
    """RFC 3339 / ISO 8601 strings to UTC microseconds. Offsets (`Z`, `+01:00`) are converted;
    a space instead of `T` is accepted. Strings without an offset become null unless
    `naive_is_utc` (formats whose specification says UTC, e.g. FOCUS).

    The usual shape, `2026-11-28T14:03:07.250Z`, is read first with a literal `Z` (43% less CPU:
    no rewriting, no offset to parse); only the strings it cannot read take the general path,
    which gives the same instant for that shape (a hypothesis test holds the two equal)."""
    usual = expr.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", strict=False).dt.replace_time_zone("UTC")
    return pl.coalesce(usual, _parse_utc_general(pl.when(usual.is_null()).then(expr), naive_is_utc=naive_is_utc))


def _parse_utc_general(expr: pl.Expr, *, naive_is_utc: bool = False) -> pl.Expr:
    s = expr.str.strip_chars().str.replace(r"^(\d{4}-\d\d-\d\d)[ ]", "${1}T").str.replace(r"[zZ]$", "+00:00")
    aware = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", time_unit="us", strict=False)
    if not naive_is_utc:
        return aware
    naive = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False).dt.replace_time_zone("UTC")
    return pl.coalesce(aware, naive)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def empty_parsed(contract: Contract) -> pl.LazyFrame:
    return pl.LazyFrame(schema={**contract.schema, "_source_file": pl.String, "_source_row": pl.Int64,
                                "_reason": pl.String, "_detail": pl.String})


def unreadable_rows(contract: Contract, files: dict[str, str]) -> pl.LazyFrame:
    """One parsed row per raw file that could not be read as its format at all (`files`: name ->
    why and the fix): line 0 (the whole file), reason `unreadable_file`, every field null."""
    names = sorted(files)
    return pl.concat([empty_parsed(contract), pl.LazyFrame(
        {"_source_file": names, "_source_row": [0] * len(names), "_reason": ["unreadable_file"] * len(names),
         "_detail": [f"`{n.rsplit('/', 1)[-1]}` {files[n]}" for n in names]},
        schema={"_source_file": pl.String, "_source_row": pl.Int64, "_reason": pl.String, "_detail": pl.String})],
        how="diagonal")


def identifier_columns(contract: Contract) -> list[str]:
    """The text columns that name something (the key, `*_id`, model, tier), where a value read with
    bytes that were not UTF-8 would name a new thing (a tenant `acme\ufffd`). `site_id` and
    `pool_id` always come from the inventory."""
    return [c.name for c in contract.columns if c.dtype == pl.String and c.name not in ("site_id", "pool_id")
            and (c.name in contract.key or c.name.endswith("_id") or c.name in ("model", "tier"))]


def undecodable(contract: Contract) -> list[pl.Expr]:
    """`_reason`/`_detail` set to `invalid_value` where an identifier column holds U+FFFD, the
    character the readers put for bytes that were not UTF-8 (`lake/readers.py` reads text
    lossily so that one bad byte costs a record, not the file). It overrides a parser's reason:
    such a value is neither a known node nor a new tenant, its bytes are wrong. The pipeline
    applies it to the rows of groups holding a file decoded lossily (`pipelines.ingest`)."""
    reason, detail = pl.col("_reason"), pl.col("_detail")
    for c in reversed(identifier_columns(contract)):
        bad = pl.col(c).str.contains("\ufffd", literal=True).fill_null(False)
        reason = pl.when(bad).then(pl.lit("invalid_value")).otherwise(reason)
        detail = pl.when(bad).then(pl.format(
            f"`{c}` {{}} holds bytes that are not UTF-8 (shown as \ufffd); deliver the file encoded as UTF-8",
            pl.col(c).str.head(60))).otherwise(detail)
    return [reason.alias("_reason"), detail.alias("_detail")]


def classify(parsed: pl.LazyFrame, contract: Contract, day: date, *, day_column: str | None = None,
             day_time: pl.Expr | None = None) -> pl.LazyFrame:
    """Add the contract's judgements to a parser's output, in this order: required fields present;
    `day_column` (or the time `day_time` computes from it) inside the partition's UTC day; then,
    among rows still valid, duplicates of the
    contract key: identical copies after the first become `exact_duplicate`, keys with differing
    copies become `conflicting_duplicate` (every copy)."""
    start, end = day_bounds(day)
    checks = [(pl.col(c).is_null(), "missing_required_field",
               f"required field `{c}` is empty; fill it in the source or fix the exporter") for c in contract.required]
    if day_column:
        when = pl.col(day_column) if day_time is None else day_time
        outside = ~when.is_between(pl.lit(start, UTC_US), pl.lit(end, UTC_US), closed="left")
        # The text is formatted only where the check fails (a `then` branch runs on every row).
        checks.append((outside, "outside_partition_day",
                       pl.format(f"`{day_column}` {{}} is not on {day.isoformat()} UTC; "
                                 "deliver it in the raw folder of its own day",
                                 pl.when(outside).then(pl.col(day_column)).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))))
    flagged = parsed.with_columns(first_reason(checks))

    # A parser whose records each carry one measure of a wide row (DCGM: power and energy samples
    # of one GPU at one instant) adds `_measure`; it is part of the duplicate key, and `accepted`
    # joins the measures of one key into one row.
    key = [*contract.key, *(["_measure"] if "_measure" in parsed.collect_schema() else [])]
    order = ["_source_file", "_source_row"]
    ok = pl.col("_reason").is_null()
    # Most keys occur once. The keys valid rows repeat are found first, and only the rows
    # carrying them are judged (a window over every row of a 10-million-row day costs more than
    # the rest of the classification). A streaming group-by on a 64-bit hash of the key finds the
    # candidates (8 bytes a row, where the keys themselves are 30-byte strings: memory follows
    # the day far less); the exact group-by on the key runs on the candidates alone, so a hash
    # collision costs time, never a verdict.
    key_hash = pl.struct(key).hash(seed=0).alias("_key_hash")
    valid = flagged.filter(ok).with_columns(key_hash)
    clash = (valid.group_by("_key_hash").agg(pl.len().alias("_copies")).filter(pl.col("_copies") > 1)
             .select("_key_hash").collect(engine="streaming"))
    if clash.is_empty():
        return flagged
    repeated = (valid.join(clash.lazy(), on="_key_hash", how="semi").group_by(key).agg(pl.len().alias("_copies"))
                .filter(pl.col("_copies") > 1).select(key).collect(engine="streaming"))
    if repeated.is_empty():
        return flagged
    # The verdicts name their rows by position in `parsed` (a row index, the same on every read of
    # the same plan), so applying them is a lookup of a few integers, not a join of every row on
    # its key and origin: the result stays a plan the caller may read several times, cheaply.
    indexed = flagged.with_row_index("_row")
    row_hash = pl.struct(contract.names).hash(seed=0)
    key_text = pl.concat_str([pl.col(k).cast(pl.String) for k in contract.key], separator="|")
    variants = row_hash.n_unique().over(key)
    nth = pl.int_range(pl.len()).over(key, order_by=order)
    verdicts = (
        indexed.filter(ok).join(repeated.lazy(), on=key, how="semi")
        .select("_row",
                pl.when(variants > 1).then(pl.lit("conflicting_duplicate"))
                .when(nth > 0).then(pl.lit("exact_duplicate")).alias("_dup_reason"),
                pl.when(variants > 1)
                .then(pl.format("key {} appears with different values; correct the source so one version remains",
                                key_text))
                .when(nth > 0).then(pl.format("identical copy of key {} collapsed", key_text)).alias("_dup_detail"))
        .filter(pl.col("_dup_reason").is_not_null())
        .collect()
    )
    if verdicts.is_empty():  # repeated keys always give one, but a lookup needs a row to find
        return flagged
    verdicts = verdicts.sort("_row")
    hit = pl.col("_row").is_in(verdicts.get_column("_row").implode())
    return (
        indexed
        .with_columns(pl.when(hit).then(_row_lookup(verdicts, "_dup_reason")).otherwise(pl.col("_reason"))
                      .alias("_reason"),
                      pl.when(hit).then(_row_lookup(verdicts, "_dup_detail")).otherwise(pl.col("_detail"))
                      .alias("_detail"))
        .drop("_row")
    )


def _row_lookup(table: pl.DataFrame, column: str) -> pl.Expr:
    """`table[column]` of the row whose `_row` (sorted, unique) equals this row's `_row`; null
    where there is none. A binary search per batch: `replace_strict` and a left join would do
    the same but hold the whole frame (or cost a join of every row) in the streaming engine."""
    keys = table.get_column("_row").to_numpy()
    values = table.get_column(column)

    def look(batch: pl.Series) -> pl.Series:
        rows = batch.to_numpy()
        pos = np.searchsorted(keys, rows).clip(0, len(keys) - 1)
        found = keys[pos] == rows
        if not found.any():
            return pl.repeat(None, len(batch), dtype=values.dtype, eager=True).alias(batch.name)
        return pl.select(pl.when(pl.Series(found)).then(values.gather(pos))).to_series().alias(batch.name)

    return pl.col("_row").map_batches(look, return_dtype=values.dtype, is_elementwise=True)


def accepted(classified: pl.LazyFrame, contract: Contract) -> pl.LazyFrame:
    """Canonical rows, in the contract's column order and types, sorted by key (or, for a
    contract with `raw_order`, in the raw files' order), so that a rerun writes the same bytes.
    Records carrying one `_measure` each are joined into one row per key (first non-null value
    of every column)."""
    rows = classified.filter(pl.col("_reason").is_null())
    if "_measure" in classified.collect_schema():
        rest = [c for c in contract.names if c not in contract.key]
        rows = rows.group_by(list(contract.key)).agg(pl.col(rest).drop_nulls().first())
    rows = contract.conform(rows)
    if contract.order is not None:
        rows = rows.sort(contract.order)
    if contract.name == "power_readings":
        # A cumulative counter that falls restarted (reboot): flag it so attribution starts a new
        # segment. Judged against the meter's previous sample of the same day.
        prev = pl.col("energy_j").forward_fill().shift(1).over("meter_id", order_by="ts")
        rows = rows.with_columns(
            (pl.col("counter_reset") | (pl.col("energy_j") < prev).fill_null(False)).alias("counter_reset"))
    return rows


def quarantined(classified: pl.LazyFrame, contract: Contract) -> pl.LazyFrame:
    """Rejected rows: where they came from and why; never the raw text."""
    key_text = pl.concat_str([pl.col(k).cast(pl.String) for k in contract.key], separator="|")
    return (
        classified.filter(pl.col("_reason").is_not_null())
        .select(
            pl.lit(contract.name).alias("dataset"),
            pl.col("_source_file").alias("source_file"),
            pl.col("_source_row").cast(pl.Int64).alias("source_row"),
            key_text.alias("record_key"),
            pl.col("_reason").alias("reason"),
            pl.col("_detail").fill_null(pl.col("_reason")).alias("detail"),
        )
        .sort(["source_file", "source_row", "reason"])
        .pipe(QUARANTINE.conform)
    )


def audit(classified: pl.LazyFrame, contract: Contract, files: list[str] | None = None,
          ignored: list[tuple[str, str, str]] | None = None) -> pl.LazyFrame:
    """Rows read, accepted and quarantined per raw file, and its `status`: `read`, or
    `unreadable` when its one row is the `unreadable_file` row (read 1, quarantined 1) with its
    `status_detail`. `files` adds a zero row for every file read that held no record, and
    `ignored` (dataset, entry, why) a row of status `ignored` (nothing read) for each entry the
    ingest lists but does not read, so each delivered file is accounted for."""
    ok = pl.col("_reason").is_null()
    whole = pl.col("_reason") == "unreadable_file"
    counts = classified.group_by(pl.col("_source_file").alias("source_file")).agg(
        pl.len().cast(pl.Int64).alias("rows_read"),
        ok.sum().cast(pl.Int64).alias("rows_accepted"),
        (~ok).sum().cast(pl.Int64).alias("rows_quarantined"),
        pl.col("_detail").filter(whole).first().alias("status_detail"))
    if files:
        counts = (pl.LazyFrame({"source_file": sorted(set(files))}, schema={"source_file": pl.String})
                  .join(counts, on="source_file", how="full", coalesce=True)
                  .with_columns(pl.col("rows_read", "rows_accepted", "rows_quarantined").fill_null(0)))
    counts = counts.with_columns(
        pl.lit(contract.name).alias("dataset"),
        pl.when(pl.col("status_detail").is_null()).then(pl.lit("read")).otherwise(pl.lit("unreadable")).alias("status"))
    if ignored:
        dataset, entry, why = zip(*ignored, strict=True)
        counts = pl.concat([counts.pipe(INGEST_AUDIT.conform), pl.LazyFrame(
            {"dataset": dataset, "source_file": entry, "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0,
             "status": "ignored",
             "status_detail": [f"`{e.rsplit('/', 1)[-1]}` {w}" for e, w in zip(entry, why, strict=True)]},
            schema=INGEST_AUDIT.schema)])
    return counts.sort("dataset", "source_file").pipe(INGEST_AUDIT.conform)


# --- reading text fields of CSV inputs (bills, register) -----------------------------------

def field(name: str) -> pl.Expr:
    """A raw column as selected by `raw_text`."""
    return pl.col(f"_raw_{name}")


def raw_text(frame: pl.LazyFrame, names: tuple[str, ...], *, null_words: tuple[str, ...] = (),
             any_case: bool = False, required: tuple[str, ...] = ()) -> pl.LazyFrame:
    """The columns `names` of a raw text frame as trimmed text under `_raw_<name>`, plus
    `_source_file` and `_source_row`. Empty values and `null_words` (compared case-insensitively)
    are null; columns the file lacks are null; other columns are dropped. With `any_case`, columns
    named in another case (`SkuPriceid`) also fill `name` where the exact column is empty (files
    of one scan may spell it differently). Rows with no value in any column of the file (blank
    CSV lines, which the CSV reader returns as rows) are dropped. For each of `required`,
    `_missing_<name>` is True on the rows of a file whose header lacks the column (`column_missing`
    then names it), not only where its cell is empty."""
    schema = frame.collect_schema()
    data = [c for c in schema.names() if c not in ("_source_file", "_source_row") and not c.startswith("_absent_")]

    def clean(c: str) -> pl.Expr:
        s = pl.col(c).cast(pl.String).str.strip_chars()
        blank = (s == "") | s.str.to_lowercase().is_in([w.lower() for w in null_words])
        return pl.when(~blank).then(s)

    def text(n: str) -> pl.Expr:
        sources = [c for c in data if c == n] + [c for c in data if any_case and c != n and c.lower() == n.lower()]
        return pl.coalesce([clean(c) for c in sources]) if sources else pl.lit(None, pl.String)

    not_blank = pl.any_horizontal([pl.col(c).cast(pl.String).str.strip_chars().fill_null("") != "" for c in data]) \
        if data else pl.lit(False)

    def absent(n: str) -> pl.Expr:
        spelt = [c for c in data if c == n or (any_case and c.lower() == n.lower())]
        if not spelt:
            return pl.lit(True)
        marks = [pl.col(f"_absent_{c}").fill_null(False) for c in spelt if f"_absent_{c}" in schema]
        return pl.all_horizontal(marks) if len(marks) == len(spelt) else pl.lit(False)

    return frame.filter(not_blank).select(
        pl.col("_source_file"),
        pl.col("_source_row").cast(pl.Int64),
        *[text(n).alias(f"_raw_{n}") for n in names],
        *[absent(n).alias(f"_missing_{n}") for n in required],
    )


def column_missing(name: str, hint: str) -> tuple[pl.Expr, str, pl.Expr]:
    """A `first_reason` check: the file's header lacks column `name` (`raw_text(..., required=)`),
    said as such, with what the column is (`hint`), rather than as an empty field on every row."""
    return (pl.col(f"_missing_{name}"), "missing_required_field",
            pl.format(f"column `{name}` is missing from {{}}; add it ({hint})", pl.col("_source_file")))


def decimal(text: pl.Expr) -> pl.Expr:
    """A decimal number from text (null when unreadable or not finite). Tolerates a leading `$`
    and thousands grouped by commas in threes (`$10,000.00 `), as spreadsheets render money;
    a comma in any other place (a decimal comma) stays unreadable rather than guessed."""
    s = text.str.strip_chars().str.replace(r"^([+-]?)\$", "${1}")
    s = pl.when(s.str.contains(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")).then(s.str.replace_all(",", "")).otherwise(s)
    v = s.cast(pl.Float64, strict=False)
    return pl.when(v.is_finite()).then(v)


def unreadable(name: str, value: pl.Expr) -> pl.Expr:
    """The raw field `name` holds text but its parsed `value` is null."""
    return field(name).is_not_null() & value.is_null()


def currency_check() -> tuple[pl.Expr, str, pl.Expr]:
    """`unknown_currency` when column `currency` (upper-cased by the parsers) is not an accepted
    ISO 4217 code."""
    return (pl.col("currency").is_not_null() & ~pl.col("currency").is_in(sorted(ISO_CURRENCIES)),
            "unknown_currency",
            pl.format("currency {} is not an ISO 4217 code this product accepts; bill in an ISO currency "
                      "(or add the code to ISO_CURRENCIES in transforms/ingest/common.py)", pl.col("currency")))
