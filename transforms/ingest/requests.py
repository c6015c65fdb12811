"""Request logs to parsed REQUESTS frames.

Two raw forms, one set of rules:

- `parse_otel_fields`: OpenTelemetry GenAI JSON Lines (docs/raw-formats.md, "Request logs"), as
  the lake's reader gives them: per line, whether it is JSON, whether it is an object, and the
  value of each key of `OTEL_FIELDS` as JSON text (`lake.json_lines.scan_json_fields`; prompt and
  completion fields are never read). The JSON values are typed here (`json_string`, ...).
- `parse_canonical_requests`: the canonical columns as CSV or Parquet.

Both end in `check_requests`, the one place the meaning of a request is judged (tokens,
latencies, end before start, status, node and tier against the inventory). The pipeline then
calls `classify(parsed, REQUESTS, day, day_column="completed_at")`.
"""

from collections.abc import Mapping, Sequence

import polars as pl

from transforms.bounds import MAX_LATENCY_S, MAX_REQUEST_TOKENS, MAX_RESPONSE_BYTES, out_of_range
from transforms.contracts import REQUESTS, STATUSES
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import first_reason, parse_utc
from transforms.inventory import Inventory

# The keys the parser reads, with the contract column each feeds and the JSON type it must have
# (docs/raw-formats.md). Every other key of a line (gen_ai.input.messages, prompt, ...) is never
# extracted.
OTEL_FIELDS: dict[str, tuple[str, str]] = {
    "time": ("arrived_at", "string"),
    "gen_ai.response.id": ("request_id", "string"),
    "server.address": ("node_id", "string"),
    "gen_ai.request.model": ("model", "string"),
    "inferledger.tier": ("tier", "string"),
    "inferledger.tenant.id": ("tenant_id", "string"),
    "gen_ai.usage.input_tokens": ("input_tokens", "integer"),
    "gen_ai.usage.cache_read.input_tokens": ("cached_input_tokens", "integer"),
    "gen_ai.usage.output_tokens": ("output_tokens", "integer"),
    "gen_ai.latency.time_in_queue": ("queue_s", "number"),
    "gen_ai.latency.time_to_first_token": ("ttft_s", "number"),
    "gen_ai.latency.time_in_model_prefill": ("prefill_s", "number"),
    "gen_ai.latency.time_in_model_decode": ("decode_s", "number"),
    "gen_ai.latency.e2e": ("completed_at", "number"),
    "http.response.body.size": ("response_bytes", "integer"),
    "error.type": ("status", "string"),
}
OTEL_REQUIRED = ("time", "gen_ai.response.id", "server.address", "gen_ai.request.model", "inferledger.tier",
                 "inferledger.tenant.id", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                 "gen_ai.latency.e2e")
# Contract column -> the key an operator sees in an OTel line, for messages.
OTEL_NAMES = {col: key for key, (col, _) in OTEL_FIELDS.items() if col not in ("arrived_at", "completed_at", "status")}

LATENCY_COLUMNS = ("queue_s", "ttft_s", "prefill_s", "decode_s")
COUNT_COLUMNS = ("input_tokens", "cached_input_tokens", "output_tokens", "response_bytes")


# --- JSON Lines: typed values of the fields the reader extracted ---------------------------------------

def json_present(raw: pl.Expr) -> pl.Expr:
    """The key holds a value (absent keys and JSON `null` are both 'no value')."""
    return raw.is_not_null() & (raw != "null")


def json_kind(raw: pl.Expr) -> pl.Expr:
    """What a JSON value is, from its first character, for messages: string, object, array,
    boolean, null or number."""
    first = raw.str.head(1)
    return (pl.when(first == '"').then(pl.lit("a string"))
            .when(first == "{").then(pl.lit("an object"))
            .when(first == "[").then(pl.lit("an array"))
            .when(first.is_in(["t", "f"])).then(pl.lit("a boolean"))
            .when(first == "n").then(pl.lit("null"))
            .otherwise(pl.format("the number {}", raw.str.head(32))))


def json_string(raw: pl.Expr) -> pl.Expr:
    """A JSON string value, unescaped; null for anything else. DuckDB re-serialized the value, so
    only strings with a backslash need a real JSON decode, and those are valid JSON."""
    is_string = raw.str.starts_with('"')
    escaped = pl.when(is_string & raw.str.contains("\\", literal=True)).then(raw).str.json_decode(pl.String)
    plain = raw.str.strip_prefix('"').str.strip_suffix('"')
    return pl.when(is_string).then(pl.coalesce(escaped, plain))


def json_integer(raw: pl.Expr) -> pl.Expr:
    """A JSON integer literal as Int64; null for strings, fractions, exponents and out-of-range values."""
    return pl.when(raw.str.contains(r"^-?[0-9]+$")).then(raw.cast(pl.Int64, strict=False))


def json_number(raw: pl.Expr) -> pl.Expr:
    """A finite JSON number as Float64; null for strings, NaN, Infinity and overflow."""
    x = pl.when(raw.str.contains(r"^-?[0-9]")).then(raw.cast(pl.Float64, strict=False))
    return pl.when(x.is_finite()).then(x)


_JSON_READERS = {"string": json_string, "integer": json_integer, "number": json_number}


def json_field_checks(fields: Mapping[str, str], required: Sequence[str]) -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    """The checks every JSON Lines parser makes, in priority order, on `lake.json_lines` output
    whose typed values are in columns `_v:<key>`: the line is a JSON object; each key holds its JSON
    type (`fields`: key -> string, integer or number); the `required` keys have a value."""
    checks: list[tuple[pl.Expr, str, pl.Expr | str]] = [
        (~pl.col("_json_valid"), "malformed_record", "line is not valid JSON; write one JSON object per line"),
        (~pl.col("_json_object"), "malformed_record",
         "line is valid JSON but not an object; write one JSON object per line"),
    ]
    for key, kind in fields.items():
        raw = pl.col(key)
        wrong = json_present(raw) & pl.col(f"_v:{key}").is_null()
        # The message is read only where the check fails: its text is built there alone (a `then`
        # branch is computed on every row; `json_kind` of every value of 16 keys was 0.3 CPU-s a
        # million requests).
        checks.append((wrong, "invalid_value",
                       pl.format(f"`{key}` must be a {'finite ' if kind == 'number' else ''}JSON {kind}, found {{}}; "
                                 "fix the exporter", json_kind(pl.when(wrong).then(raw)))))
    for key in required:
        checks.append((~json_present(pl.col(key)), "missing_required_field",
                       f"required key `{key}` is missing or null; fill it in the exporter"))
    return checks


# --- the shared judgement of a request ----------------------------------------------------------

def request_value_checks(names: Mapping[str, str] | None = None) -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    """Checks on the values of a REQUESTS-shaped frame, in priority order: counts and latencies
    not negative, latencies finite, end not before start, cached tokens within input tokens,
    status an allowed value. `names` maps a column to the field name the source used (for
    messages); unmapped columns are named as in the contract."""
    names = dict(names or {})
    n = lambda c: names.get(c, c)  # noqa: E731
    checks: list[tuple[pl.Expr, str, pl.Expr | str]] = []
    for c in COUNT_COLUMNS:
        checks.append((pl.col(c) < 0, "negative_value",
                       pl.format(f"`{n(c)}` is {{}}; a count cannot be negative, fix the exporter", pl.col(c))))
        bound, unit = (MAX_RESPONSE_BYTES, "bytes") if c == "response_bytes" else (MAX_REQUEST_TOKENS, "tokens")
        checks.append(out_of_range(pl.col(c), bound, f"`{n(c)}`", unit, "fix the exporter"))
    for c in LATENCY_COLUMNS:
        checks.append((pl.col(c) < 0, "negative_value",
                       pl.format(f"`{n(c)}` is {{}} s; a latency cannot be negative, fix the exporter", pl.col(c))))
        checks.append((~pl.col(c).is_finite(), "invalid_value",
                       pl.format(f"`{n(c)}` is {{}} s, not a plausible latency; fix the exporter", pl.col(c))))
        checks.append(out_of_range(pl.col(c), MAX_LATENCY_S, f"`{n(c)}`", "s", "fix the exporter's clock or unit"))
    ends_first = pl.col("completed_at") < pl.col("arrived_at")
    when_text = lambda c: pl.when(ends_first).then(pl.col(c)).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")  # noqa: E731
    checks += [
        (ends_first, "end_before_start",
         pl.format("completed {} before it arrived {}; check the end time or the e2e latency",
                   when_text("completed_at"), when_text("arrived_at"))),
        (pl.col("cached_input_tokens") > pl.col("input_tokens"), "invalid_value",
         pl.format(f"`{n('cached_input_tokens')}` {{}} exceeds `{n('input_tokens')}` {{}}; "
                   "cached tokens are part of the prompt, fix the exporter",
                   pl.col("cached_input_tokens"), pl.col("input_tokens"))),
        (~pl.col("status").is_in(list(STATUSES)), "invalid_value",
         pl.format(f"`{n('status')}` {{}} is not one of {', '.join(STATUSES)}", pl.col("status"))),
    ]
    return checks


def check_requests(parsed: pl.LazyFrame, inventory: Inventory, site_id: str, *,
                   names: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """Judge a REQUESTS-shaped parsed frame delivered in the raw folder of `site_id`: the value
    checks of `request_value_checks`, then the node (in the inventory, and of this site) and the
    tier (in the inventory). `site_id` and `pool_id` are taken from the node in the inventory;
    a file that states them differently is rejected as `invalid_value`. A null
    `cached_input_tokens` becomes 0 (unknown means none, per the contract)."""
    names = dict(names or {})
    node_key = names.get("node_id", "node_id")
    nodes = inventory.nodes_frame().select("node_id", pl.col("site_id").alias("_node_site"),
                                           pl.col("pool_id").alias("_node_pool"), pl.col("role").alias("_node_role"))
    tiers = inventory.tier_ids
    node, tier = pl.col("node_id"), pl.col("tier")
    reference_checks = [
        (node.is_not_null() & pl.col("_node_site").is_null(), "unknown_node",
         pl.format(f"node {{}} (`{node_key}`) is not in the inventory; add it to inventory.yaml `nodes:` "
                   "or fix the exporter", node)),
        (pl.col("_node_site") != pl.lit(site_id), "unknown_node",
         pl.format(f"node {{}} belongs to site {{}}, not {site_id}; deliver its records in the raw folder of site {{}}",
                   node, pl.col("_node_site"), pl.col("_node_site"))),
        (pl.col("_node_role") == "infrastructure", "node_runs_no_requests",
         pl.format(f"node {{}} (`{node_key}`) is an infrastructure node of the inventory (no GPUs, or `role: "
                   "infrastructure`): it runs no request; fix the exporter's node name, or the node's role in "
                   "inventory.yaml", node)),
        (pl.col("site_id") != pl.col("_node_site"), "invalid_value",
         pl.format("`site_id` {} contradicts the inventory (node {} is in site {}); fix or drop the column",
                   pl.col("site_id"), node, pl.col("_node_site"))),
        (pl.col("pool_id") != pl.col("_node_pool"), "invalid_value",
         pl.format("`pool_id` {} contradicts the inventory (node {} is in pool {}); fix or drop the column",
                   pl.col("pool_id"), node, pl.col("_node_pool"))),
        (tier.is_not_null() & ~tier.is_in(tiers), "unknown_tier",
         pl.format(f"tier {{}} (`{names.get('tier', 'tier')}`) is not in the inventory (known: {', '.join(tiers)}); "
                   "add it to inventory.yaml `tiers:` or fix the exporter", tier)),
    ]
    return (
        parsed.with_columns(pl.col("cached_input_tokens").fill_null(0))
        .join(nodes, on="node_id", how="left", maintain_order="left")
        .with_columns(first_reason(request_value_checks(names) + reference_checks))
        .with_columns(pl.col("_node_site").alias("site_id"), pl.col("_node_pool").alias("pool_id"))
        .select(*REQUESTS.names, "_source_file", "_source_row", "_reason", "_detail")
    )


# --- the two parsers ----------------------------------------------------------------------------

def _status_from_error_type(error_type: pl.Expr) -> pl.Expr:
    """docs/raw-formats.md: null -> ok; `cancelled`; `timeout`; anything else -> error."""
    return (pl.when(error_type.is_null()).then(pl.lit("ok"))
            .when(error_type.is_in(["cancelled", "timeout"])).then(error_type)
            .otherwise(pl.lit("error")))


def parse_otel_fields(fields: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """The `OTEL_FIELDS` of OTel GenAI JSON Lines (`lake.json_lines.scan_json_fields` of the files,
    or `extract_json_fields` of their lines) of the raw folder of `site_id` to a parsed REQUESTS
    frame.

    `arrived_at` is `time` (RFC 3339, any offset, converted to UTC; no offset is `bad_timestamp`),
    `completed_at` is `time` + `gen_ai.latency.e2e` (s, rounded to the microsecond). Token counts
    must be JSON integers, latencies (s) finite JSON numbers, text fields JSON strings: a value of
    another type (a quoted number included) is `invalid_value`. An absent or null
    `gen_ai.usage.cache_read.input_tokens` is 0. Invalid JSON and non-object lines are
    `malformed_record`."""
    kinds = {key: kind for key, (_, kind) in OTEL_FIELDS.items()}
    typed = fields.with_columns(_JSON_READERS[kind](pl.col(key)).alias(f"_v:{key}") for key, kind in kinds.items())

    v = lambda key: pl.col(f"_v:{key}")  # noqa: E731
    time_text, e2e = v("time"), v("gen_ai.latency.e2e")
    # Computed once as columns: the checks below read them several times.
    typed = typed.with_columns(
        parse_utc(time_text).alias("arrived_at"),
        pl.when(e2e.abs() <= MAX_LATENCY_S).then((e2e * 1e6).round().cast(pl.Int64)).alias("_e2e_us"),
    )
    arrived, e2e_us = pl.col("arrived_at"), pl.col("_e2e_us")
    columns = [col_expr.alias(col) for col, col_expr in (
        ("request_id", v("gen_ai.response.id")),
        ("node_id", v("server.address")),
        ("model", v("gen_ai.request.model")),
        ("tier", v("inferledger.tier")),
        ("tenant_id", v("inferledger.tenant.id")),
        ("arrived_at", arrived),
        ("completed_at", arrived + pl.duration(microseconds=e2e_us)),
        ("queue_s", v("gen_ai.latency.time_in_queue")),
        ("ttft_s", v("gen_ai.latency.time_to_first_token")),
        ("prefill_s", v("gen_ai.latency.time_in_model_prefill")),
        ("decode_s", v("gen_ai.latency.time_in_model_decode")),
        ("input_tokens", v("gen_ai.usage.input_tokens")),
        ("cached_input_tokens", v("gen_ai.usage.cache_read.input_tokens")),
        ("output_tokens", v("gen_ai.usage.output_tokens")),
        ("response_bytes", v("http.response.body.size")),
        ("status", _status_from_error_type(v("error.type"))),
        ("site_id", pl.lit(None, pl.String)),
        ("pool_id", pl.lit(None, pl.String)),
    )]
    unreadable_time = time_text.is_not_null() & arrived.is_null()
    # Parsed again without an offset only where unreadable, to say why (a full second parse costs).
    naive_time = parse_utc(pl.when(unreadable_time).then(time_text), naive_is_utc=True)
    checks = json_field_checks(kinds, OTEL_REQUIRED) + [
        (naive_time.is_not_null(), "bad_timestamp",
         pl.format("`time` {} has no UTC offset; write RFC 3339 with Z or ±hh:mm", time_text.str.head(40))),
        (unreadable_time, "bad_timestamp",
         pl.format("`time` {} is not an RFC 3339 timestamp; write e.g. 2026-11-28T14:03:07.250-05:00",
                   time_text.str.head(40))),
        (e2e < 0, "end_before_start",
         pl.format("`gen_ai.latency.e2e` is {} s: the request ends before it starts; fix the exporter", e2e)),
        (e2e.is_not_null() & e2e_us.is_null(), "invalid_value",
         pl.format("`gen_ai.latency.e2e` is {} s, not a plausible latency; fix the exporter", e2e)),
    ]
    parsed = (
        typed.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"))
        .with_columns(first_reason(checks))
        .select(*columns, "_source_file", "_source_row", "_reason", "_detail")
    )
    return check_requests(parsed, inventory, site_id, names=OTEL_NAMES)


def parse_canonical_requests(raw: pl.LazyFrame, inventory: Inventory, site_id: str) -> pl.LazyFrame:
    """Canonical REQUESTS columns (`scan_csv_text` or `scan_parquet_files` output) of the raw
    folder of `site_id` to a parsed frame. Timestamps must carry an offset; `site_id` and
    `pool_id` may be omitted (taken from the node); `cached_input_tokens` may be omitted (0)."""
    parsed = parse_canonical(raw, REQUESTS, defaults={"cached_input_tokens": pl.lit(0, pl.Int64)})
    return check_requests(parsed, inventory, site_id)

