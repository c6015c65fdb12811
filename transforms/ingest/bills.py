"""Bill parsers: FOCUS cloud bills, electricity and colocation invoices, canonical cost lines.

Each `parse_*` turns the text frame of `lake.readers.scan_csv_text` (or a canonical
Parquet scan) into a parsed `cost_lines` frame (see `common.py`): contract columns, null where
unreadable, plus `_source_file`, `_source_row`, `_reason`, `_detail`. The pipeline then calls
`classify(parsed, COST_LINES, day)` without a day column: bills carry their own charge
periods and are partitioned by the day they were delivered.

Decisions that hold for every bill:

- A CSV line with no value at all (a blank line, `,,,`) is not a record, as blank lines of
  text formats are not: it is neither read nor counted.
- Columns a format does not name are ignored; columns it names but the file lacks are null.
- Amounts are read as decimals; a spreadsheet rendering `$10,000.00 ` (leading `$`,
  thousands grouped by commas in threes, spaces) is read as 10000.00. Anything else that is
  not a finite number rejects the line as `invalid_value`, never a silent null.
- A charge period must end after it starts (`end_before_start` otherwise, zero length
  included: such a charge cannot be spread over time).
- Currencies are ISO 4217 codes of `ISO_CURRENCIES`, compared case-insensitively and stored in
  upper case; anything else is `unknown_currency`.
- The folder's site must be an inventory site (`unknown_site` otherwise).
"""

import polars as pl

from transforms.bounds import MAX_BILL_LINE, MAX_ENERGY_PRICE_PER_KWH, out_of_range
from transforms.contracts import COST_TYPES, COST_LINES, UTC_US
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import (column_missing, currency_check, decimal, field, first_reason, parse_utc, raw_text,
                                      unreadable)
from transforms.inventory import Inventory

# FOCUS 1.0, 1.1 and 1.2 column ids. The stable line id hashes these fields only: custom
# `x_` columns and non-FOCUS columns (the real 1.0 sample's `Id`) are not part of a charge.
FOCUS_COLUMNS = tuple(sorted("""
    AvailabilityZone BilledCost BillingAccountId BillingAccountName BillingAccountType
    BillingCurrency BillingPeriodEnd BillingPeriodStart CapacityReservationId
    CapacityReservationStatus ChargeCategory ChargeClass ChargeDescription ChargeFrequency
    ChargePeriodEnd ChargePeriodStart CommitmentDiscountCategory CommitmentDiscountId
    CommitmentDiscountName CommitmentDiscountQuantity CommitmentDiscountStatus
    CommitmentDiscountType CommitmentDiscountUnit ConsumedQuantity ConsumedUnit ContractedCost
    ContractedUnitPrice EffectiveCost InvoiceId InvoiceIssuerName ListCost ListUnitPrice
    PricingCategory PricingCurrency PricingCurrencyContractedUnitPrice
    PricingCurrencyEffectiveCost PricingCurrencyListUnitPrice PricingQuantity PricingUnit
    ProviderName PublisherName RegionId RegionName ResourceId ResourceName ResourceType
    ServiceCategory ServiceName ServiceSubcategory SkuId SkuMeter SkuPriceDetails SkuPriceId
    SubAccountId SubAccountName SubAccountType Tags
""".split()))

# The FOCUS columns a line cannot do without, and what each is (a file whose header lacks one
# has every line quarantined naming the column, not "a required field is empty").
FOCUS_REQUIRED = {
    "ChargePeriodStart": "FOCUS 1.0 column ChargePeriodStart: start of the charge period, UTC",
    "ChargePeriodEnd": "FOCUS 1.0 column ChargePeriodEnd: end of the charge period, UTC, exclusive",
    "BilledCost": "FOCUS 1.0 column BilledCost: the amount invoiced, in BillingCurrency",
    "EffectiveCost": "FOCUS 1.0 column EffectiveCost: the amortized cost, in BillingCurrency; never assumed "
                     "equal to BilledCost",
    "BillingCurrency": "FOCUS 1.0 column BillingCurrency: the ISO 4217 code of the costs",
}

CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
COMPUTE_SERVICE_CATEGORIES = ("compute", "ai and machine learning")

ELECTRICITY_COLUMNS = ("invoice_id", "line_no", "account", "period_start", "period_end", "line_type",
                       "tou_period", "quantity", "unit", "rate", "amount", "currency", "peak_at")
ELECTRICITY_COST_TYPES = {"energy": "energy", "demand": "demand", "fixed": "other", "tax": "other"}
COLOCATION_COLUMNS = ("invoice_id", "line_no", "period_start", "period_end", "item", "quantity", "unit",
                      "unit_price", "amount", "currency")
SOURCES = ("focus", "electricity_invoice", "colocation_invoice", "canonical")
# The invoice columns a line cannot do without (the others may be left out of the header: empty).
INVOICE_REQUIRED = ("invoice_id", "line_no", "period_start", "period_end", "amount", "currency")

# Invoices state amount = quantity x rate rounded to the cent; allow that rounding, not more.
CENT = 0.01 + 1e-9


def _ts_text(col: str) -> pl.Expr:
    return pl.col(col).dt.to_string("%Y-%m-%dT%H:%M:%SZ")


# --- checks every bill line gets --------------------------------------------------------------

def amount_bounds(billed: str, effective: str | None = None) -> list[tuple[pl.Expr, str, pl.Expr]]:
    """`out_of_range` checks of a line's amounts (named as the format names them) and, for an
    energy line in kWh, of its price per kWh (amount / quantity)."""
    fix = "check the amount's unit (cents or thousands read as units?) or split the charge"
    out = [out_of_range(pl.col(c), MAX_BILL_LINE, pl.lit(f"`{name}`"), "per line", fix, low=-MAX_BILL_LINE)
           for c, name in (("billed_amount", billed), ("effective_amount", effective)) if name]
    kwh = (pl.col("cost_type") == "energy") & (pl.col("unit").str.to_lowercase() == "kwh") & (pl.col("quantity") > 0)
    out.append(out_of_range(
        pl.when(kwh).then(pl.col("billed_amount") / pl.col("quantity")), MAX_ENERGY_PRICE_PER_KWH,
        pl.format(f"energy line: `{billed}` / kWh = {{}} / {{}}: price", "billed_amount", "quantity"), "per kWh",
        "check the quantity's unit (kWh) and the amount", low=-MAX_ENERGY_PRICE_PER_KWH))
    return out


def cost_line_checks(inventory: Inventory, site_id: str | None) -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    """Judgements shared by every bill family, in priority order: the folder's site is an
    inventory site and the line's site is the folder's; cost type and currency are known; the
    charge period ends after it starts."""
    folder_known = site_id in inventory.site_ids
    return [
        (pl.lit(not folder_known), "unknown_site",
         f"the bill's folder names site {site_id!r}, which is not in the inventory; deliver it under "
         f"<day>/<site_id>/ of one of: {', '.join(inventory.site_ids)}"),
        (pl.col("site_id").is_not_null() & (pl.col("site_id") != pl.lit(site_id, pl.String)), "unknown_site",
         pl.format(f"line is billed to site {{}} but was delivered in the folder of site {site_id!r}; "
                   "deliver it in its own site's folder", pl.col("site_id"))),
        (pl.col("cost_type").is_not_null() & ~pl.col("cost_type").is_in(list(COST_TYPES)), "invalid_value",
         pl.format(f"cost_type {{}} is not one of {', '.join(COST_TYPES)}", pl.col("cost_type"))),
        currency_check(),
        (pl.col("period_end") <= pl.col("period_start"), "end_before_start",
         pl.format("charge period ends at {} but starts at {}; a charge period must end after it starts",
                   _ts_text("period_end"), _ts_text("period_start"))),
    ]


def _finish(parsed: pl.LazyFrame, checks: list, inventory: Inventory, site_id: str | None) -> pl.LazyFrame:
    """Apply the format's own checks, then the shared ones, and keep the parsed-frame columns."""
    return (
        parsed.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"))
        .with_columns(first_reason(checks))
        .with_columns(first_reason(cost_line_checks(inventory, site_id)))
        .select(*[pl.col(c.name).cast(c.dtype) for c in COST_LINES.columns],
                "_source_file", "_source_row", "_reason", "_detail")
    )


# --- FOCUS ----------------------------------------------------------------------------------

def _focus_time(text: pl.Expr) -> pl.Expr:
    """FOCUS date-times to UTC: RFC 3339 (offsets converted), `YYYY-MM-DD HH:MM:SS` without
    offset (UTC per the specification), and dates `YYYY-MM-DD`, `M/D/YY`, `M/D/YYYY` (UTC
    midnight; the FOCUS 1.2 SaaS examples write `5/1/25`)."""
    def midnight(fmt: str, pattern: str) -> pl.Expr:
        d = pl.when(text.str.contains(pattern)).then(text).str.to_date(fmt, strict=False)
        return d.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")

    return pl.coalesce(
        parse_utc(text, naive_is_utc=True),
        midnight("%Y-%m-%d", r"^\d{4}-\d\d-\d\d$"),
        midnight("%m/%d/%y", r"^\d{1,2}/\d{1,2}/\d{2}$"),
        midnight("%m/%d/%Y", r"^\d{1,2}/\d{1,2}/\d{4}$"),
    )


def stable_hex_id(text: pl.Expr) -> pl.Expr:
    """A 16-hex-digit id of a text, the same on every machine and Polars version: two 32-bit
    MurmurHash3 (x86, seed 0, the hash the Iceberg specification fixes for bucketing) of the
    text and of the text salted. Polars' own `hash` may change between versions."""
    halves = [text._mm3_hash(), (pl.lit("inferledger/") + text)._mm3_hash()]
    digits = []
    for h in halves:
        u = h.reinterpret(signed=False).cast(pl.Int64)
        for k in range(7, -1, -1):
            digits.append(((u // 16**k) % 16).replace_strict(list(range(16)), list("0123456789abcdef"),
                                                              return_dtype=pl.String))
    return pl.concat_str(digits)


def _focus_line_id() -> pl.Expr:
    """Stable id of a FOCUS row: hash of its non-null FOCUS fields as `Name=value` (so a column
    added to a later export, or absent, does not change the id of rows that leave it empty).
    Identical rows of one file are distinct charges (the FOCUS 1.2 example 'with 2 resources'
    bills two identical lines, and the bill's total counts both): the n-th copy in a file gets
    `-n`. The same row delivered again in another file gets the same id and is collapsed by
    `classify` as an exact duplicate."""
    fields = pl.concat_str([pl.lit(f"{n}=") + field(n) for n in FOCUS_COLUMNS], separator="\x1f", ignore_nulls=True)
    base = stable_hex_id(fields)
    nth = pl.int_range(1, pl.len() + 1).over(["_source_file", base], order_by="_source_row")
    return pl.when(nth == 1).then(base).otherwise(pl.format("{}-{}", base, nth))


def _focus_enum(text: pl.Expr, allowed: tuple[str, ...]) -> pl.Expr:
    """The specification's spelling of an enumerated value, matched case-insensitively
    (`Usage-based` -> `Usage-Based`); null when not allowed."""
    return text.str.to_lowercase().replace_strict({a.lower(): a for a in allowed}, default=None, return_dtype=pl.String)


def parse_focus(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None) -> pl.LazyFrame:
    """A FOCUS 1.0/1.1/1.2 cost and usage export (text columns named by FOCUS column ids) to a
    parsed `cost_lines` frame of site `site_id` (the folder the file was delivered in).

    Reader: `scan_csv_text(paths, root, null_values=["NULL"])` or without `null_values`: this
    parser itself reads `NULL` and `null` (any case; the FOCUS 1.2 examples write `null`) and
    empty values as null, so the result does not depend on the reader option.

    Mapping: `billed_amount` = BilledCost, `effective_amount` = EffectiveCost (both in
    BillingCurrency; PricingCurrency, e.g. `Token`, is not read). EffectiveCost is mandatory in
    every FOCUS version read here; when absent the line is quarantined (`missing_required_field`),
    never defaulted to BilledCost, which would count a commitment purchase twice.
    `quantity`/`unit` = ConsumedQuantity/ConsumedUnit, or PricingQuantity/PricingUnit where no
    consumed quantity is stated (taken as a pair). `charge_category` = ChargeCategory in the
    specification's spelling (unknown values are `invalid_value`). `cost_type`: `egress` when
    ServiceCategory is Networking and the unit is GB; `cloud_compute` for ChargeCategory Usage of
    ServiceCategory Compute or AI and Machine Learning; `other` otherwise (case-insensitive).
    `line_id`: see `_focus_line_id`. Column ids are matched exactly, else in any case
    (`SkuPriceid`); other columns (`Id`, `x_*`) are ignored. Amounts in the billing currency;
    times UTC."""
    t = raw_text(raw, FOCUS_COLUMNS, null_words=("null",), any_case=True, required=tuple(FOCUS_REQUIRED))
    consumed = field("ConsumedQuantity").is_not_null()
    charge_category = _focus_enum(field("ChargeCategory"), CHARGE_CATEGORIES)
    unit = pl.when(consumed).then(field("ConsumedUnit")).otherwise(field("PricingUnit"))
    service_category = field("ServiceCategory").str.to_lowercase()
    cost_type = (
        pl.when((service_category == "networking") & (unit.str.to_lowercase() == "gb")).then(pl.lit("egress"))
        .when(service_category.is_in(COMPUTE_SERVICE_CATEGORIES) & (charge_category == "Usage"))
        .then(pl.lit("cloud_compute"))
        .otherwise(pl.lit("other"))
    )
    parsed = t.with_columns(
        pl.lit("focus").alias("source"),
        _focus_line_id().alias("line_id"),
        pl.lit(site_id, pl.String).alias("site_id"),
        field("ResourceId").alias("resource_id"),
        _focus_time(field("ChargePeriodStart")).alias("period_start"),
        _focus_time(field("ChargePeriodEnd")).alias("period_end"),
        cost_type.alias("cost_type"),
        decimal(field("BilledCost")).alias("billed_amount"),
        decimal(field("EffectiveCost")).alias("effective_amount"),
        field("BillingCurrency").str.to_uppercase().alias("currency"),
        decimal(pl.when(consumed).then(field("ConsumedQuantity")).otherwise(field("PricingQuantity"))).alias("quantity"),
        unit.alias("unit"),
        field("ServiceName").alias("service_name"),
        charge_category.alias("charge_category"),
        pl.lit(None, pl.String).alias("tou_period"),
        pl.lit(None, UTC_US).alias("peak_at"),
    )
    ts_detail = "`{}` {} is not a date-time FOCUS allows (RFC 3339 UTC, e.g. 2024-09-01T00:00:00Z); fix the export"
    num_detail = "`{}` {} is not a number; write a plain decimal (e.g. 1234.56)"
    checks = [
        (unreadable("ChargePeriodStart", pl.col("period_start")), "bad_timestamp",
         pl.format(ts_detail, pl.lit("ChargePeriodStart"), field("ChargePeriodStart"))),
        (unreadable("ChargePeriodEnd", pl.col("period_end")), "bad_timestamp",
         pl.format(ts_detail, pl.lit("ChargePeriodEnd"), field("ChargePeriodEnd"))),
        (unreadable("BilledCost", pl.col("billed_amount")), "invalid_value",
         pl.format(num_detail, pl.lit("BilledCost"), field("BilledCost"))),
        (unreadable("EffectiveCost", pl.col("effective_amount")), "invalid_value",
         pl.format(num_detail, pl.lit("EffectiveCost"), field("EffectiveCost"))),
        *amount_bounds("BilledCost", "EffectiveCost"),
        (consumed & pl.col("quantity").is_null(), "invalid_value",
         pl.format(num_detail, pl.lit("ConsumedQuantity"), field("ConsumedQuantity"))),
        (~consumed & unreadable("PricingQuantity", pl.col("quantity")), "invalid_value",
         pl.format(num_detail, pl.lit("PricingQuantity"), field("PricingQuantity"))),
        (unreadable("ChargeCategory", pl.col("charge_category")), "invalid_value",
         pl.format(f"ChargeCategory {{}} is not one of {', '.join(CHARGE_CATEGORIES)}", field("ChargeCategory"))),
        # After the values' own checks, before the contract's "required field is empty".
        *(column_missing(c, hint) for c, hint in FOCUS_REQUIRED.items()),
    ]
    return _finish(parsed, checks, inventory, site_id)


# --- invoices -------------------------------------------------------------------------------

def _local_day_start_utc(text: pl.Expr, tz: str) -> pl.Expr:
    """A local date `YYYY-MM-DD` to the UTC instant its day starts in zone `tz` (DST-correct;
    where midnight does not exist, a DST change at 00:00, the day starts at 01:00)."""
    d = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
    at = [(d + pl.duration(hours=h)).dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
          for h in (0, 1)]
    return pl.coalesce(at).dt.convert_time_zone("UTC")


def _site_zone(inventory: Inventory, site_id: str | None) -> str:
    # An unknown folder site rejects every line (`unknown_site`); UTC only keeps parsing going.
    return inventory.site(site_id).timezone if site_id in inventory.site_ids else "UTC"


def _invoice_columns(tz: str, price_col: str) -> list[pl.Expr]:
    """Columns both invoice formats share: line id, period, quantity, unit, amounts, currency."""
    return [
        pl.format("{}:{}", field("invoice_id"), field("line_no")).alias("line_id"),
        _local_day_start_utc(field("period_start"), tz).alias("period_start"),
        _local_day_start_utc(field("period_end"), tz).alias("period_end"),
        decimal(field("quantity")).alias("quantity"),
        field("unit").alias("unit"),
        decimal(field(price_col)).alias("_price"),
        decimal(field("amount")).alias("billed_amount"),
        decimal(field("amount")).alias("effective_amount"),
        field("currency").str.to_uppercase().alias("currency"),
        pl.lit(None, pl.String).alias("resource_id"),
        pl.lit("Usage").alias("charge_category"),
    ]


def _invoice_checks(price_col: str, layout: str) -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    date_detail = "`{}` {} is not a valid local date YYYY-MM-DD; write the invoice period as the invoice states it"
    num_detail = "`{}` {} is not a number; write a plain decimal (e.g. 1234.56)"
    expected = pl.col("quantity") * pl.col("_price")
    return [
        ((field("invoice_id").is_null() | field("line_no").is_null())
         & ~pl.col("_missing_invoice_id") & ~pl.col("_missing_line_no"), "missing_required_field",
         "`invoice_id` or `line_no` is empty; both make the line id, fill them in the export"),
        *[(unreadable(c, pl.col(c)), "bad_timestamp", pl.format(date_detail, pl.lit(c), field(c)))
          for c in ("period_start", "period_end")],
        *[(unreadable(c, pl.col(p)), "invalid_value", pl.format(num_detail, pl.lit(c), field(c)))
          for c, p in (("quantity", "quantity"), (price_col, "_price"), ("amount", "billed_amount"))],
        *amount_bounds("amount"),
        (pl.col("quantity") < 0, "negative_value",
         pl.format("quantity {} is negative; a billed quantity cannot be (state a credit as a negative "
                   f"{price_col} and amount)", field("quantity"))),
        ((pl.col("billed_amount") - expected).abs() > CENT, "invalid_value",
         pl.format(f"amount {{}} differs from quantity x {price_col} = {{}} x {{}} = {{}} by more than a cent; "
                   "correct the invoice line", field("amount"), field("quantity"), field(price_col),
                   expected.round(6))),
        *(column_missing(c, f"the {layout} invoice's header, docs/raw-formats.md") for c in INVOICE_REQUIRED),
    ]


def parse_electricity_invoice(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None) -> pl.LazyFrame:
    """Electricity invoice lines (`invoice_id,line_no,account,period_start,period_end,line_type,
    tou_period,quantity,unit,rate,amount,currency,peak_at`) of site `site_id` to a parsed
    `cost_lines` frame.

    `period_start`/`period_end` are local dates in the site's time zone (end exclusive), turned
    into the UTC instants their days start. `line_type` energy -> `energy`, demand -> `demand`,
    fixed and tax -> `other` (also `service_name`); `peak_at` RFC 3339 with offset -> UTC.
    `line_id` = `<invoice_id>:<line_no>`; billed = effective = `amount` (currency). Where both
    `quantity` and `rate` are stated, `amount` must equal quantity x rate within a cent
    (`invalid_value`); a line may leave `rate` empty (a tax or fixed line stated as an amount
    only), and a tax line stating its base as quantity and its percentage as a fraction rate is
    checked like any other. Quantities cannot be negative (`negative_value`)."""
    tz = _site_zone(inventory, site_id)
    t = raw_text(raw, ELECTRICITY_COLUMNS, required=(*INVOICE_REQUIRED, "line_type"))
    line_type = field("line_type").str.to_lowercase()
    parsed = t.with_columns(
        *_invoice_columns(tz, "rate"),
        pl.lit("electricity_invoice").alias("source"),
        pl.lit(site_id, pl.String).alias("site_id"),
        line_type.replace_strict(ELECTRICITY_COST_TYPES, default=None, return_dtype=pl.String).alias("cost_type"),
        line_type.alias("service_name"),
        field("tou_period").alias("tou_period"),
        parse_utc(field("peak_at")).alias("peak_at"),
    )
    checks = [
        (field("line_type").is_null() & ~pl.col("_missing_line_type"), "missing_required_field",
         f"`line_type` is empty; write one of {', '.join(ELECTRICITY_COST_TYPES)}"),
        (pl.col("cost_type").is_null() & field("line_type").is_not_null(), "invalid_value",
         pl.format(f"line_type {{}} is not one of {', '.join(ELECTRICITY_COST_TYPES)}", field("line_type"))),
        (unreadable("peak_at", pl.col("peak_at")), "bad_timestamp",
         pl.format("`peak_at` {} is not an RFC 3339 timestamp with offset (e.g. 2026-11-28T14:15:00-05:00)",
                   field("peak_at"))),
        *_invoice_checks("rate", "electricity"),
        column_missing("line_type", "the electricity invoice's header, docs/raw-formats.md"),
    ]
    return _finish(parsed, checks, inventory, site_id)


def parse_colocation_invoice(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None) -> pl.LazyFrame:
    """Colocation invoice lines (`invoice_id,line_no,period_start,period_end,item,quantity,unit,
    unit_price,amount,currency`) of site `site_id` to a parsed `cost_lines` frame: cost type
    `colocation`, `service_name` = item (`power_commit` in kW-month, `space` in cabinet-month,
    `cross_connect` each, ...). Periods, line id, amounts and the quantity x unit_price check
    as for electricity invoices."""
    tz = _site_zone(inventory, site_id)
    t = raw_text(raw, COLOCATION_COLUMNS, required=INVOICE_REQUIRED)
    parsed = t.with_columns(
        *_invoice_columns(tz, "unit_price"),
        pl.lit("colocation_invoice").alias("source"),
        pl.lit(site_id, pl.String).alias("site_id"),
        pl.lit("colocation").alias("cost_type"),
        field("item").alias("service_name"),
        pl.lit(None, pl.String).alias("tou_period"),
        pl.lit(None, UTC_US).alias("peak_at"),
    )
    return _finish(parsed, _invoice_checks("unit_price", "colocation"), inventory, site_id)


# --- canonical ------------------------------------------------------------------------------

def parse_canonical_cost_lines(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None) -> pl.LazyFrame:
    """Canonical cost lines (the contract's own columns, CSV text or typed Parquet) of the folder
    of site `site_id`. A line without `site_id` is the folder's; without `source`, `canonical`.
    Timestamps need an offset. Then the checks of every bill: `source` one of the bill families,
    the line's site the folder's, cost type and currency known, period in order."""
    parsed = parse_canonical(raw, COST_LINES, defaults={"site_id": pl.lit(site_id, pl.String),
                                                             "source": pl.lit("canonical")})
    parsed = parsed.with_columns(pl.col("currency").str.to_uppercase(),
                                 pl.col("site_id").fill_null(pl.lit(site_id, pl.String)))
    checks = [(pl.col("source").is_not_null() & ~pl.col("source").is_in(list(SOURCES)), "invalid_value",
               pl.format(f"source {{}} is not one of {', '.join(SOURCES)}", pl.col("source"))),
              *amount_bounds("billed_amount", "effective_amount"),
              (~pl.col("quantity").is_finite(), "out_of_range",
               pl.format("`quantity` {} is not a finite number; write the billed quantity", pl.col("quantity")))]
    return (parsed.with_columns(first_reason(checks))
            .with_columns(first_reason(cost_line_checks(inventory, site_id))))
