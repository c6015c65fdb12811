"""Request-log parsers: OTel GenAI JSON Lines and canonical CSV/Parquet, exact numbers.

Every case runs the pipeline's path: parser -> classify -> accepted / quarantined / audit, and
checks per file that `rows_read` is the number of non-blank lines and equals accepted +
quarantined (nothing lost).

Throughput (skipped unless asked): INFERLEDGER_BENCH_ROWS=1500000 .venv/bin/pytest
tests/test_ingest_requests.py -k throughput -s
"""

import json
import os
import time
from datetime import date, datetime, timedelta, UTC
from pathlib import Path

import polars as pl
import pytest

from lake.inventory import load_inventory
from lake.json_lines import extract_json_fields
from lake.readers import scan_csv_text, scan_parquet_files, scan_text_lines
from lake.store import Lake
from pipelines import ingest as pipeline_ingest
from transforms.contracts import REQUESTS
from transforms.ingest.common import REASONS, accepted, audit, classify, quarantined
from transforms.ingest.requests import OTEL_FIELDS, parse_canonical_requests, parse_otel_fields

DATA = Path(__file__).parent / "data"
INV = load_inventory(DATA / "inventory_small.yaml")
DAY = date(2026, 11, 28)
SITE = "metro-east"
FOLDER = f"{DAY.isoformat()}/{SITE}/requests"
PARSED_COLUMNS = [*REQUESTS.names, "_source_file", "_source_row", "_reason", "_detail"]
SECRET_PROMPT = "SECRET-PROMPT: the patient's HIV status is positive"


def parse_otel_lines(raw_lines: pl.LazyFrame, inventory, site_id: str) -> pl.LazyFrame:
    """The production parser on request-log lines read line by line (`scan_json_fields` reads a
    clean file whole, to the same frame: tests/test_ingest_json_files.py)."""
    return parse_otel_fields(extract_json_fields(raw_lines, list(OTEL_FIELDS)), inventory, site_id)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def record(**changes) -> dict:
    """A valid request of node m-h200-01 (metro-east, pool premium-h200); `changes` override keys,
    a value of `...` removes the key."""
    rec = {
        "time": "2026-11-28T10:00:00Z",
        "gen_ai.response.id": "chatcmpl-0001",
        "server.address": "m-h200-01",
        "gen_ai.request.model": "llama-3.1-70b-instruct",
        "gen_ai.operation.name": "chat",
        "inferledger.tier": "premium",
        "inferledger.tenant.id": "acme-health",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.latency.time_in_queue": 0.012,
        "gen_ai.latency.time_to_first_token": 0.25,
        "gen_ai.latency.time_in_model_prefill": 0.238,
        "gen_ai.latency.time_in_model_decode": 7.5,
        "gen_ai.latency.e2e": 7.75,
        "http.response.body.size": 1832,
        "error.type": None,
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]}],
    }
    for k, v in changes.items():
        if v is ...:
            rec.pop(k, None)
        else:
            rec[k] = v
    return rec


def line(**changes) -> str:
    return json.dumps(record(**changes))


def write(root: Path, name: str, lines: list[str], folder: str = FOLDER) -> Path:
    path = root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(parsed: pl.LazyFrame, day: date = DAY) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The pipeline's path after a parser: (accepted rows, quarantine, audit), audit identity checked."""
    classified = classify(parsed, REQUESTS, day, day_column="completed_at").collect().lazy()
    rows = accepted(classified, REQUESTS).collect()
    quarantine = quarantined(classified, REQUESTS).collect()
    counts = audit(classified, REQUESTS).collect()
    assert (counts["rows_read"] == counts["rows_accepted"] + counts["rows_quarantined"]).all()
    assert counts["rows_quarantined"].sum() == quarantine.height
    assert set(quarantine["reason"]) <= set(REASONS)
    return rows, quarantine, counts


def ingest_jsonl(root: Path, files: dict[str, list[str]], site: str = SITE, day: date = DAY):
    """Write `files` under the site's requests folder, parse and judge them; every non-blank line
    of every file is counted in the audit."""
    paths = [write(root, name, lines, f"{day.isoformat()}/{site}/requests") for name, lines in files.items()]
    rows, quarantine, counts = ingest(parse_otel_lines(scan_text_lines(paths, root), INV, site), day)
    non_blank = {f"{day.isoformat()}/{site}/requests/{n}": sum(1 for x in ls if x.strip()) for n, ls in files.items()}
    assert dict(zip(counts["source_file"], counts["rows_read"], strict=True)) == non_blank
    return rows, quarantine, counts


def reasons(quarantine: pl.DataFrame) -> list[tuple[int, str]]:
    return list(quarantine.select("source_row", "reason").iter_rows())


def detail_of(quarantine: pl.DataFrame, row: int) -> str:
    return quarantine.filter(pl.col("source_row") == row)["detail"].item()


# --- shape ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("parser, raw", [
    (parse_otel_lines, scan_text_lines([], Path("."))),
    (parse_canonical_requests, scan_csv_text([], Path("."))),
])
def test_parsers_return_the_parsed_shape_even_without_files(parser, raw):
    out = parser(raw, INV, SITE).collect()
    assert out.columns == PARSED_COLUMNS
    assert out.height == 0
    assert dict(out.select(REQUESTS.names).schema) == dict(REQUESTS.schema)
    assert out.schema["_source_row"] == pl.Int64


# --- OTel JSON Lines: values --------------------------------------------------------------------

def test_a_clean_line_becomes_one_exact_request(tmp_path):
    rows, quarantine, counts = ingest_jsonl(tmp_path, {"m-h200-01.jsonl": [
        line(time="2026-11-28T10:00:00.125-05:00", **{"gen_ai.latency.e2e": 1.234567}),
    ]})
    assert quarantine.height == 0
    assert rows.to_dicts() == [{
        "request_id": "chatcmpl-0001", "node_id": "m-h200-01", "model": "llama-3.1-70b-instruct",
        "tier": "premium", "tenant_id": "acme-health",
        "arrived_at": utc(2026, 11, 28, 15, 0, 0, 125000), "completed_at": utc(2026, 11, 28, 15, 0, 1, 359567),
        "queue_s": 0.012, "ttft_s": 0.25, "prefill_s": 0.238, "decode_s": 7.5,
        "input_tokens": 1200, "cached_input_tokens": 512, "output_tokens": 300, "response_bytes": 1832,
        "status": "ok", "site_id": "metro-east", "pool_id": "premium-h200",
    }]
    assert counts.rows() == [("requests", f"{FOLDER}/m-h200-01.jsonl", 1, 1, 0, "read", None)]


def test_status_from_error_type_and_optional_keys(tmp_path):
    rows, quarantine, _ = ingest_jsonl(tmp_path, {"a.jsonl": [
        line(**{"gen_ai.response.id": "r-ok", "error.type": None}),
        line(**{"gen_ai.response.id": "r-cancelled", "error.type": "cancelled"}),
        line(**{"gen_ai.response.id": "r-timeout", "error.type": "timeout"}),
        line(**{"gen_ai.response.id": "r-error", "error.type": "vllm.engine.EngineDeadError"}),
        # Optional keys absent: no cache key -> 0 cached tokens; latencies and size unknown.
        line(**{"gen_ai.response.id": "r-minimal", "error.type": ..., "gen_ai.usage.cache_read.input_tokens": ...,
                "gen_ai.latency.time_in_queue": ..., "gen_ai.latency.time_to_first_token": None,
                "gen_ai.latency.time_in_model_prefill": ..., "gen_ai.latency.time_in_model_decode": ...,
                "http.response.body.size": ...}),
    ]})
    assert quarantine.height == 0
    # Rows keep the file's order (REQUESTS.raw_order).
    assert rows.select("request_id", "status").rows() == [("r-ok", "ok"), ("r-cancelled", "cancelled"),
                                                          ("r-timeout", "timeout"), ("r-error", "error"),
                                                          ("r-minimal", "ok")]
    minimal = rows.filter(pl.col("request_id") == "r-minimal").row(0, named=True)
    assert [minimal[c] for c in ("cached_input_tokens", "queue_s", "ttft_s", "response_bytes")] == [0, None, None, None]


def test_escaped_strings_are_decoded(tmp_path):
    rows, _, _ = ingest_jsonl(tmp_path, {"a.jsonl": [
        '{"time": "2026-11-28T10:00:00Z", "gen_ai.response.id": "r-\\"quoted\\"-\\u00e9", '
        '"server.address": "m-h200-01", "gen_ai.request.model": "m\\/x", "inferledger.tier": "premium", '
        '"inferledger.tenant.id": "caf\\u00e9", '
        '"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2, "gen_ai.latency.e2e": 0.5}',
    ]})
    assert rows.select("request_id", "model", "tenant_id").row(0) == ('r-"quoted"-é', "m/x", "café")


# --- OTel JSON Lines: one fixture per defect --------------------------------------------------------

def bad(**changes) -> str:
    """A line of request `r-x` with `changes` (keys with dots, so given as a dict)."""
    return line(**{"gen_ai.response.id": "r-x", **changes})


def bad_literal(key: str, literal: str) -> str:
    """A line of request `r-x` whose `key` holds `literal`, written as is (not valid for json.dumps)."""
    rec = record(**{"gen_ai.response.id": "r-x"})
    return json.dumps({**rec, key: "@@"}).replace('"@@"', literal)


DEFECTS = {
    "malformed_json": ('{"time": "2026-11-28T10:00:00Z", "gen_ai.response.id": "r-x", "gen_ai.usage.inp',
                       "malformed_record"),
    "not_an_object": ('["chatcmpl-0002", 1200, 300]', "malformed_record"),
    "missing_required_field": (bad(**{"gen_ai.usage.output_tokens": ...}), "missing_required_field"),
    "negative_tokens": (bad(**{"gen_ai.usage.input_tokens": -5}), "negative_value"),
    "negative_latency": (bad(**{"gen_ai.latency.time_in_queue": -0.1}), "negative_value"),
    "end_before_start": (bad(**{"gen_ai.latency.e2e": -0.5}), "end_before_start"),
    "unknown_node": (bad(**{"server.address": "m-h200-99"}), "unknown_node"),
    "node_of_another_site": (bad(**{"server.address": "r-l40s-std-01"}), "unknown_node"),
    "unknown_tier": (bad(**{"inferledger.tier": "gold"}), "unknown_tier"),
    "timestamp_without_offset": (bad(time="2026-11-28T10:00:00"), "bad_timestamp"),
    "timestamp_unreadable": (bad(time="28/11/2026 10:00"), "bad_timestamp"),
    "completed_on_another_day": (bad(time="2026-11-28T23:59:59Z", **{"gen_ai.latency.e2e": 2.5}),
                                 "outside_partition_day"),
    "string_where_int_belongs": (bad(**{"gen_ai.usage.output_tokens": "300"}), "invalid_value"),
    "fraction_where_int_belongs": (bad(**{"gen_ai.usage.input_tokens": 12.5}), "invalid_value"),
    "object_where_int_belongs": (bad(**{"gen_ai.usage.input_tokens": {"n": 1}}), "invalid_value"),
    "array_where_string_belongs": (line(**{"gen_ai.response.id": ["r-x"]}), "invalid_value"),
    "cached_above_input": (bad(**{"gen_ai.usage.cache_read.input_tokens": 1201}), "invalid_value"),
    # JSON that DuckDB accepts and Polars' json_decode would refuse for the whole file.
    "nan_latency": (bad_literal("gen_ai.latency.e2e", "NaN"), "invalid_value"),
    "infinite_latency": (bad_literal("gen_ai.latency.time_in_queue", "Infinity"), "invalid_value"),
    "integer_beyond_int64": (bad_literal("http.response.body.size", "99999999999999999999"), "invalid_value"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_lands_in_quarantine_and_nothing_else_is_lost(tmp_path, defect):
    bad, reason = DEFECTS[defect]
    rows, quarantine, counts = ingest_jsonl(tmp_path, {f"{defect}.jsonl": [line(), "", bad]})
    assert rows["request_id"].to_list() == ["chatcmpl-0001"]
    assert reasons(quarantine) == [(3, reason)]  # the blank line 2 is not a record, its number is kept
    assert counts.select("rows_read", "rows_accepted", "rows_quarantined").row(0) == (2, 1, 1)


def test_details_name_the_field_and_what_to_do(tmp_path):
    _, quarantine, _ = ingest_jsonl(tmp_path, {"a.jsonl": [
        DEFECTS["malformed_json"][0],
        DEFECTS["missing_required_field"][0].replace("r-x", "r-2"),
        DEFECTS["negative_tokens"][0].replace("r-x", "r-3"),
        DEFECTS["node_of_another_site"][0].replace("r-x", "r-4"),
        DEFECTS["timestamp_without_offset"][0].replace("r-x", "r-5"),
        DEFECTS["string_where_int_belongs"][0].replace("r-x", "r-6"),
        DEFECTS["unknown_tier"][0].replace("r-x", "r-7"),
        DEFECTS["end_before_start"][0].replace("r-x", "r-8"),
    ]})
    assert [detail_of(quarantine, r) for r in range(1, 9)] == [
        "line is not valid JSON; write one JSON object per line",
        "required key `gen_ai.usage.output_tokens` is missing or null; fill it in the exporter",
        "`gen_ai.usage.input_tokens` is -5; a count cannot be negative, fix the exporter",
        "node r-l40s-std-01 belongs to site remote-plains, not metro-east; deliver its records in the raw folder "
        "of site remote-plains",
        "`time` 2026-11-28T10:00:00 has no UTC offset; write RFC 3339 with Z or ±hh:mm",
        "`gen_ai.usage.output_tokens` must be a JSON integer, found a string; fix the exporter",
        "tier gold (`inferledger.tier`) is not in the inventory (known: premium, standard, batch); add it to "
        "inventory.yaml `tiers:` or fix the exporter",
        "`gen_ai.latency.e2e` is -0.5 s: the request ends before it starts; fix the exporter",
    ]
    assert quarantine.filter(pl.col("source_row") == 2)["record_key"].item() == "r-2"


def test_wrong_json_types_name_what_was_found_on_their_line_only(tmp_path):
    """A value of the wrong JSON type is named in the message of its own line (the message is built
    only where the check fails): a string, an object, an array, a boolean and numbers (a fraction;
    a 33-digit integer, shown cut to its first 32 characters; NaN, which DuckDB's JSON dialect
    reads, not finite) where the key wants another type. Line 1 is valid: accepted, no message.
    The same messages as before the change (checked on the previous code)."""
    _, quarantine, counts = ingest_jsonl(tmp_path, {"a.jsonl": [
        line(**{"gen_ai.response.id": "r-1"}),
        line(**{"gen_ai.response.id": "r-2", "gen_ai.usage.input_tokens": "1200"}),
        line(**{"gen_ai.response.id": "r-3", "server.address": {"host": "m-h200-01"}}),
        line(**{"gen_ai.response.id": "r-4", "inferledger.tier": ["premium"]}),
        line(**{"gen_ai.response.id": "r-5", "inferledger.tenant.id": True}),
        line(**{"gen_ai.response.id": "r-6", "gen_ai.usage.output_tokens": 300.5}),
        line(**{"gen_ai.response.id": "r-7", "gen_ai.request.model": 123456789012345678901234567890123}),
        line(**{"gen_ai.response.id": "r-8", "gen_ai.latency.time_in_queue": "0.01"}),
        line(**{"gen_ai.response.id": "r-9"}).replace('"gen_ai.latency.e2e": 7.75', '"gen_ai.latency.e2e": NaN'),
    ]})
    assert counts.select("rows_read", "rows_accepted", "rows_quarantined").row(0) == (9, 1, 8)
    assert [detail_of(quarantine, r) for r in range(2, 10)] == [
        "`gen_ai.usage.input_tokens` must be a JSON integer, found a string; fix the exporter",
        "`server.address` must be a JSON string, found an object; fix the exporter",
        "`inferledger.tier` must be a JSON string, found an array; fix the exporter",
        "`inferledger.tenant.id` must be a JSON string, found a boolean; fix the exporter",
        "`gen_ai.usage.output_tokens` must be a JSON integer, found the number 300.5; fix the exporter",
        "`gen_ai.request.model` must be a JSON string, found the number 12345678901234567890123456789012; "
        "fix the exporter",
        "`gen_ai.latency.time_in_queue` must be a finite JSON number, found a string; fix the exporter",
        "`gen_ai.latency.e2e` must be a finite JSON number, found the number NaN; fix the exporter",
    ]


def test_conflicting_duplicate_id_quarantines_every_copy(tmp_path):
    rows, quarantine, counts = ingest_jsonl(tmp_path, {"a.jsonl": [
        line(), line(**{"gen_ai.response.id": "r-2"}), line(**{"gen_ai.usage.output_tokens": 301}),
    ]})
    assert rows["request_id"].to_list() == ["r-2"]
    assert reasons(quarantine) == [(1, "conflicting_duplicate"), (3, "conflicting_duplicate")]
    assert counts.select("rows_read", "rows_accepted", "rows_quarantined").row(0) == (3, 1, 2)


def test_exact_duplicate_line_keeps_the_first_copy(tmp_path):
    rows, quarantine, _ = ingest_jsonl(tmp_path, {"a.jsonl": [line(), line(**{"gen_ai.response.id": "r-2"}), line()]})
    assert rows["request_id"].to_list() == ["chatcmpl-0001", "r-2"]
    assert reasons(quarantine) == [(3, "exact_duplicate")]


def test_exact_duplicate_across_files_and_offsets_keeps_the_first_file(tmp_path):
    # The same request written twice, with its arrival in two offsets: the same instant, an exact copy.
    rows, quarantine, counts = ingest_jsonl(tmp_path, {
        "a.jsonl": [line(time="2026-11-28T10:00:00Z")],
        "b.jsonl": [line(time="2026-11-28T05:00:00-05:00")],
    })
    assert rows.height == 1
    assert quarantine.select("source_file", "source_row", "reason").rows() == [
        (f"{FOLDER}/b.jsonl", 1, "exact_duplicate")]
    assert counts.select("rows_read", "rows_accepted", "rows_quarantined").rows() == [(1, 1, 0), (1, 0, 1)]


@pytest.mark.parametrize("text, expected", [
    ("2026-11-28T15:30:00.250+05:30", utc(2026, 11, 28, 10, 0, 0, 250000)),
    ("2026-11-28T05:00:00-05:00", utc(2026, 11, 28, 10, 0, 0)),
    ("2026-11-27T23:00:00.000001-11:00", utc(2026, 11, 28, 10, 0, 0, 1)),
    ("2026-11-28 10:00:00+00:00", utc(2026, 11, 28, 10, 0, 0)),
])
def test_offset_timestamps_are_converted_to_exact_utc_and_accepted(tmp_path, text, expected):
    rows, quarantine, _ = ingest_jsonl(tmp_path, {"a.jsonl": [line(time=text)]})
    assert quarantine.height == 0
    assert rows.select("arrived_at", "completed_at").row(0) == (expected, expected + timedelta(seconds=7.75))


def test_a_file_of_hostile_lines_never_fails_the_parse(tmp_path):
    deep = "[" * 5000 + "]" * 5000
    lines = [
        line(),
        line(**{"gen_ai.response.id": "r-deep"})[:-1] + f', "gen_ai.output.messages": {deep}}}',  # deep nesting
        line(**{"gen_ai.response.id": "r-comma"})[:-1] + ", }",  # trailing comma: DuckDB accepts it
        # a byte-order mark inside the file (files concatenated): stripped
        "\ufeff" + line(**{"gen_ai.response.id": "r-bom"}),
        "null", "12", '"text"', "{}", "{", "}", "\t ",
    ]
    rows, quarantine, counts = ingest_jsonl(tmp_path, {"a.jsonl": lines})
    assert sorted(rows["request_id"]) == ["chatcmpl-0001", "r-bom", "r-comma", "r-deep"]
    assert reasons(quarantine) == [(5, "malformed_record"), (6, "malformed_record"),
                                   (7, "malformed_record"), (8, "missing_required_field"), (9, "malformed_record"),
                                   (10, "malformed_record")]
    assert counts.select("rows_read", "rows_accepted", "rows_quarantined").row(0) == (10, 4, 6)


# --- privacy ------------------------------------------------------------------------------------------

SECRETS = {
    "gen_ai.input.messages": [{"role": "user",
                               "parts": [{"type": "text", "content": "SECRET-INPUT-MESSAGES diagnosis"}]}],
    "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "SECRET-OUTPUT-MESSAGES"}]}],
    "gen_ai.system_instructions": [{"type": "text", "content": "SECRET-SYSTEM-INSTRUCTIONS"}],
    "gen_ai.prompt": "SECRET-GEN-AI-PROMPT account 4111-1111",
    "gen_ai.completion": "SECRET-GEN-AI-COMPLETION",
    "prompt": "SECRET-PLAIN-PROMPT",
    "completion": "SECRET-PLAIN-COMPLETION",
}


def test_only_the_documented_keys_are_extracted(tmp_path):
    raw = scan_text_lines([write(tmp_path, "a.jsonl", [json.dumps({**record(), **SECRETS})])], tmp_path)
    fields = extract_json_fields(raw, list(OTEL_FIELDS)).collect()
    assert fields.columns == ["_source_file", "_source_row", "_json_valid", "_json_object", *OTEL_FIELDS]
    assert not any("SECRET" in str(v) for v in fields.row(0))
    assert fields["gen_ai.response.id"].item() == '"chatcmpl-0001"'  # values stay JSON text until typed


def test_prompt_and_completion_text_never_reach_parquet(tmp_path):
    with_text = lambda **kw: json.dumps({**record(**kw), **SECRETS})  # noqa: E731
    lines = [
        with_text(),
        with_text(**{"gen_ai.response.id": "r-neg", "gen_ai.usage.output_tokens": -1}),
        with_text(**{"gen_ai.response.id": "r-tier", "inferledger.tier": "gold"}),
        with_text(**{"gen_ai.response.id": "r-type", "gen_ai.usage.input_tokens": "SECRET-IN-A-TOKEN-FIELD"}),
        with_text(**{"gen_ai.response.id": "r-time", "time": "2026-11-28T10:00:00"}),
        with_text()[:-40],  # a truncated line full of text: malformed
        with_text(),  # exact duplicate
    ]
    raw = scan_text_lines([write(tmp_path, "a.jsonl", lines)], tmp_path)
    classified = classify(parse_otel_lines(raw, INV, SITE), REQUESTS, DAY, day_column="completed_at").collect().lazy()
    outputs = {"accepted": accepted(classified, REQUESTS).collect(),
               "quarantine": quarantined(classified, REQUESTS).collect(),
               "audit": audit(classified, REQUESTS).collect()}
    assert (outputs["accepted"].height, outputs["quarantine"].height) == (1, 6)
    secrets = [s.encode() for s in ["SECRET-", "4111-1111", "diagnosis"]]
    for name, frame in outputs.items():
        for compression in ("uncompressed", "zstd"):
            path = tmp_path / f"{name}-{compression}.parquet"
            frame.write_parquet(path, compression=compression)
            data = path.read_bytes()
            assert not [s for s in secrets if s in data], (name, compression)
            if compression == "uncompressed" and name != "audit":
                assert b"chatcmpl-0001" in data  # the check can see text: the ids are there


# --- canonical CSV and Parquet -------------------------------------------------------------------

CANONICAL_HEADER = ("request_id,node_id,model,tier,tenant_id,arrived_at,completed_at,queue_s,ttft_s,prefill_s,"
                    "decode_s,input_tokens,output_tokens,response_bytes,status")


def test_canonical_csv_fills_site_pool_and_cache_and_applies_the_same_checks(tmp_path):
    rows_text = [
        CANONICAL_HEADER,
        "c-1,m-h200-01,llama-3.1-70b-instruct,premium,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:02.5Z,0.01,0.2,0.19,2.3,100,40,900,ok",
        "c-2, m-h200-01 ,qwen3-32b,premium,acme,2026-11-28T05:00:00-05:00,2026-11-28T10:00:01+00:00,,,,,50,5,,timeout",
        "c-3,m-h200-01,m,premium,acme,2026-11-28T10:00:00,2026-11-28T10:00:01Z,,,,,1,1,,ok",
        "c-4,m-h200-01,m,premium,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:01Z,,,,,-1,1,,ok",
        "c-5,m-h200-01,m,premium,acme,2026-11-28T10:00:05Z,2026-11-28T10:00:01Z,,,,,1,1,,ok",
        "c-6,m-h200-01,m,premium,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:01Z,,,,,1,1,,finished",
        "c-7,r-l40s-std-01,m,standard,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:01Z,,,,,1,1,,ok",
        "c-8,m-h200-01,m,gold,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:01Z,,,,,1,1,,ok",
        "c-9,m-h200-01,m,premium,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:01Z,inf,,,,1,1,,ok",
        "c-10,m-h200-01,m,premium,acme,2026-11-28T10:00:00Z,2026-11-28T10:00:01Z,,,,,1,,,ok",
    ]
    path = write(tmp_path, "requests-2026-11-28.csv", rows_text, f"{DAY.isoformat()}/{SITE}/canonical")
    rows, quarantine, counts = ingest(parse_canonical_requests(scan_csv_text([path], tmp_path), INV, SITE))
    assert rows.select("request_id", "node_id", "arrived_at", "completed_at", "cached_input_tokens", "status",
                       "site_id", "pool_id").rows() == [
        ("c-1", "m-h200-01", utc(2026, 11, 28, 10), utc(2026, 11, 28, 10, 0, 2, 500000), 0, "ok", "metro-east",
         "premium-h200"),
        ("c-2", "m-h200-01", utc(2026, 11, 28, 10), utc(2026, 11, 28, 10, 0, 1), 0, "timeout", "metro-east",
         "premium-h200"),
    ]
    assert reasons(quarantine) == [(3, "bad_timestamp"), (4, "negative_value"), (5, "end_before_start"),
                                   (6, "invalid_value"), (7, "unknown_node"), (8, "unknown_tier"), (9, "invalid_value"),
                                   (10, "missing_required_field")]
    assert counts.select("rows_read", "rows_accepted", "rows_quarantined").row(0) == (10, 2, 8)
    assert detail_of(quarantine, 5) == ("completed 2026-11-28T10:00:01Z before it arrived 2026-11-28T10:00:05Z; "
                                        "check the end time or the e2e latency")
    assert detail_of(quarantine, 6) == "`status` finished is not one of ok, error, cancelled, timeout"


def test_canonical_parquet_keeps_its_columns_and_checks_site_and_pool(tmp_path):
    folder = tmp_path / DAY.isoformat() / SITE / "canonical"
    folder.mkdir(parents=True)
    at = utc(2026, 11, 28, 12)
    frame = pl.DataFrame({
        "request_id": ["p-1", "p-2", "p-3"], "node_id": ["m-h200-01"] * 3, "model": ["m"] * 3,
        "tier": ["premium"] * 3, "tenant_id": ["t"] * 3, "arrived_at": [at] * 3,
        "completed_at": [at.replace(second=3)] * 3, "input_tokens": [10, 20, 30],
        "cached_input_tokens": [None, 5, 40], "output_tokens": [1, 2, 3], "status": ["ok"] * 3,
        "site_id": ["metro-east", "remote-plains", None], "pool_id": [None, None, "premium-h200"],
    })
    frame.write_parquet(folder / "requests.parquet")
    rows, quarantine, _ = ingest(parse_canonical_requests(scan_parquet_files([folder / "requests.parquet"], tmp_path),
                                                          INV, SITE))
    assert rows.select("request_id", "cached_input_tokens", "completed_at", "site_id", "pool_id").rows() == [
        ("p-1", 0, utc(2026, 11, 28, 12, 0, 3), "metro-east", "premium-h200")]
    # p-2 states another site than its node's; p-3 caches more tokens than its prompt has.
    assert reasons(quarantine) == [(2, "invalid_value"), (3, "invalid_value")]
    assert detail_of(quarantine, 2) == ("`site_id` remote-plains contradicts the inventory (node m-h200-01 is in site "
                                        "metro-east); fix or drop the column")


def test_otel_and_canonical_agree_on_the_same_request(tmp_path):
    otel = write(tmp_path, "a.jsonl", [line()])
    canon = write(tmp_path, "requests.csv", [
        "request_id,node_id,model,tier,tenant_id,arrived_at,completed_at,queue_s,ttft_s,prefill_s,decode_s,"
        "input_tokens,cached_input_tokens,output_tokens,response_bytes,status",
        "chatcmpl-0001,m-h200-01,llama-3.1-70b-instruct,premium,acme-health,2026-11-28T10:00:00Z,"
        "2026-11-28T10:00:07.75Z,0.012,0.25,0.238,7.5,1200,512,300,1832,ok",
    ], f"{DAY.isoformat()}/{SITE}/canonical")
    a = parse_otel_lines(scan_text_lines([otel], tmp_path), INV, SITE).collect()
    b = parse_canonical_requests(scan_csv_text([canon], tmp_path), INV, SITE).collect()
    assert a.select(REQUESTS.names).equals(b.select(REQUESTS.names))
    assert a["_reason"].to_list() == b["_reason"].to_list() == [None]


# --- throughput (on demand) -------------------------------------------------------------------------

def _generated_log(path: Path, n: int) -> None:
    """`n` valid request lines with prompt and completion text, written column-wise."""
    i = pl.int_range(n, eager=True).alias("i")
    local_s = 3600 + pl.col("i") * 82_000 // n  # local time +01:00, so UTC stays on the day
    f = pl.DataFrame(i).with_columns(
        ("2026-11-28T" + (local_s // 3600).cast(pl.String).str.zfill(2) + ":"
         + (local_s % 3600 // 60).cast(pl.String).str.zfill(2) + ":" + (local_s % 60).cast(pl.String).str.zfill(2)
         + "." + (pl.col("i") % 1000).cast(pl.String).str.zfill(3) + "+01:00").alias("t"))
    text = json.dumps(SECRETS)[1:-1]
    num = lambda e: e.cast(pl.String)  # noqa: E731
    lines = f.select(pl.concat_str([
        pl.lit('{"time":"'), pl.col("t"), pl.lit('","gen_ai.response.id":"chatcmpl-'), num(pl.col("i")),
        pl.lit('","server.address":"m-h200-01","gen_ai.request.model":"llama-3.1-70b-instruct",'
               '"gen_ai.operation.name":"chat","inferledger.tier":"premium","inferledger.tenant.id":"tenant-'),
        num(pl.col("i") % 97), pl.lit('","gen_ai.usage.input_tokens":'), num(pl.col("i") % 8000 + 10),
        pl.lit(',"gen_ai.usage.cache_read.input_tokens":'), num(pl.col("i") % 10),
        pl.lit(',"gen_ai.usage.output_tokens":'), num(pl.col("i") % 900 + 1),
        pl.lit(',"gen_ai.latency.time_in_queue":0.004,"gen_ai.latency.time_to_first_token":0.21,'
               '"gen_ai.latency.time_in_model_prefill":0.2,"gen_ai.latency.time_in_model_decode":3.1,'
               '"gen_ai.latency.e2e":3.315,"http.response.body.size":'), num(pl.col("i") % 9000 + 100),
        pl.lit(',"error.type":null,' + text + "}"),
    ]).alias("line"))
    path.parent.mkdir(parents=True, exist_ok=True)
    lines.write_csv(path, include_header=False, quote_style="never")


@pytest.mark.skipif(not os.environ.get("INFERLEDGER_BENCH_ROWS"), reason="set INFERLEDGER_BENCH_ROWS to measure")
def test_throughput(tmp_path):
    n = int(os.environ["INFERLEDGER_BENCH_ROWS"])
    path = tmp_path / FOLDER / "bench.jsonl"
    _generated_log(path, n)
    raw = scan_text_lines([path], tmp_path)
    started = time.perf_counter()
    parsed = parse_otel_lines(raw, INV, SITE).collect()
    parse_s = time.perf_counter() - started
    judged = classify(parsed.lazy(), REQUESTS, DAY, day_column="completed_at").collect()
    total_s = time.perf_counter() - started
    assert judged.height == n and judged["_reason"].null_count() == n
    print(f"\n{n:,} lines, {path.stat().st_size / 2**20:,.0f} MiB: parse {parse_s:.2f} s ({n / parse_s:,.0f} rows/s), "
          f"parse + classify {total_s:.2f} s ({n / total_s:,.0f} rows/s)")


def test_duplicate_verdicts_through_the_lake_equal_the_judgement_in_memory(tmp_path, monkeypatch):
    """`ingest_partition` judges the parse's scratch files as a plan and applies the duplicate
    verdicts by row index, one file per scratch group here: the lake's rows and quarantine equal
    `classify` collected in memory, exact copies (across files) and conflicting copies included."""
    files = {
        "a.jsonl": [line(), line(**{"gen_ai.response.id": "r-2"}), line(**{"gen_ai.response.id": "r-3"})],
        "b.jsonl": [line(**{"gen_ai.response.id": "r-4"}), line(), line(**{"gen_ai.response.id": "r-3",
                                                                             "gen_ai.usage.output_tokens": 9})],
        "c.jsonl": [line(**{"gen_ai.response.id": "r-2"}), line(**{"gen_ai.response.id": "r-5"}), line()],
    }
    paths = [write(tmp_path / "raw", name, lines) for name, lines in files.items()]
    monkeypatch.setattr(pipeline_ingest, "GROUP_BYTES", 1)  # every file a scratch group of its own
    lake = Lake(tmp_path / "lake")
    out = pipeline_ingest.ingest_partition("requests", DAY, SITE, tmp_path / "raw", lake, INV)
    rows, quarantine, _ = ingest(parse_otel_lines(scan_text_lines(paths, tmp_path / "raw"), INV, SITE))
    assert out.by_reason == {"conflicting_duplicate": 2, "exact_duplicate": 3}
    assert pl.read_parquet(out.paths["canonical"]).equals(rows)
    assert pl.read_parquet(out.paths["quarantine"]).equals(quarantine)
    assert quarantine.select("source_file", "source_row", "reason").rows() == [
        (f"{FOLDER}/a.jsonl", 3, "conflicting_duplicate"), (f"{FOLDER}/b.jsonl", 2, "exact_duplicate"),
        (f"{FOLDER}/b.jsonl", 3, "conflicting_duplicate"), (f"{FOLDER}/c.jsonl", 1, "exact_duplicate"),
        (f"{FOLDER}/c.jsonl", 3, "exact_duplicate")]
