"""Trace adapters: the real Azure 2023 and Mooncake FAST'25 traces as request logs, exact numbers.

Expected sums and timestamps were computed from the files with Python's csv and json modules,
independently of the adapters; latencies and cached tokens below are worked by hand.
"""

from datetime import date, datetime, timedelta, UTC
from pathlib import Path

import polars as pl
import pytest

from lake.inventory import load_inventory
from lake.json_lines import extract_json_fields
from lake.readers import scan_csv_text, scan_text_lines
from transforms.contracts import REQUESTS
from transforms.ingest.common import accepted, audit, classify, quarantined
from transforms.ingest.traces import (
    MOONCAKE_KEYS,
    ThroughputModel,
    adapt_azure_trace,
    adapt_mooncake_trace,
    cached_prefix_tokens,
)

DATA = Path(__file__).parent / "data"
REAL = DATA / "real"
AZURE = REAL / "azure_llm_inference_2023"
MOONCAKE = REAL / "mooncake_fast25_traces"
INV = load_inventory(DATA / "inventory_small.yaml")
MODEL = ThroughputModel()  # 10,000 prefill tokens/s, 40 decode tokens/s, no queue
PLACEMENT = {"node_id": "c-h100-01", "model": "llama-3.1-70b-instruct", "tier": "standard", "tenant_id": "trace-replay"}
START = datetime(2026, 11, 28, 12, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ingest(parsed: pl.LazyFrame, day: date) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The pipeline's path after a parser: (accepted rows, quarantine, audit), audit identity checked."""
    classified = classify(parsed, REQUESTS, day, day_column="completed_at").collect().lazy()
    rows = accepted(classified, REQUESTS).collect()
    quarantine = quarantined(classified, REQUESTS).collect()
    counts = audit(classified, REQUESTS).collect()
    assert (counts["rows_read"] == counts["rows_accepted"] + counts["rows_quarantined"]).all()
    return rows, quarantine, counts


def azure(*names: str, **kwargs) -> pl.LazyFrame:
    raw = scan_csv_text([AZURE / f"AzureLLMInferenceTrace_{n}.csv" for n in names], AZURE)
    return adapt_azure_trace(raw, **{**PLACEMENT, "throughput": MODEL, "inventory": INV, **kwargs})


def mooncake(**kwargs) -> pl.LazyFrame:
    raw = extract_json_fields(scan_text_lines([MOONCAKE / "conversation_trace.jsonl"], MOONCAKE), MOONCAKE_KEYS)
    return adapt_mooncake_trace(raw, **{**PLACEMENT, "throughput": MODEL, "start": START, "inventory": INV, **kwargs})


def summary(rows: pl.DataFrame) -> tuple:
    return (rows.height, rows["input_tokens"].sum(), rows["output_tokens"].sum(),
            rows["arrived_at"].min(), rows["arrived_at"].max())


# --- the throughput model -------------------------------------------------------------------------

def test_throughput_model_defaults_and_validation():
    assert (MODEL.prefill_tokens_per_s, MODEL.decode_tokens_per_s, MODEL.queue_s) == (10_000.0, 40.0, 0.0)
    with pytest.raises(ValueError, match="positive"):
        ThroughputModel(prefill_tokens_per_s=0)
    with pytest.raises(ValueError, match="queue_s"):
        ThroughputModel(queue_s=-1)


# --- Azure LLM inference trace 2023 ---------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("code", (8_819, 18_059_974, 245_896,
              utc(2023, 11, 16, 18, 17, 3, 979960), utc(2023, 11, 16, 19, 14, 19, 928016))),
    ("conv", (19_366, 22_361_870, 4_088_665,
              utc(2023, 11, 16, 18, 15, 46, 680590), utc(2023, 11, 16, 19, 14, 8, 402527))),
])
def test_azure_traces_load_whole_with_exact_counts_and_times(name, expected):
    rows, quarantine, counts = ingest(azure(name), date(2023, 11, 16))
    assert summary(rows) == expected
    assert quarantine.height == 0
    assert counts.rows() == [("requests", f"AzureLLMInferenceTrace_{name}.csv", expected[0], expected[0], 0, "read",
                              None)]
    assert rows["request_id"][0] == f"azure-{name}-000001"
    assert rows["request_id"][-1] == f"azure-{name}-{expected[0]:06d}"
    assert set(rows["site_id"]) == {"cloud-use1"} and set(rows["pool_id"]) == {"cloud-h100"}
    assert set(rows["cached_input_tokens"]) == {0} and set(rows["status"]) == {"ok"}


def test_azure_first_code_request_latency_by_hand():
    # Row 1: 2023-11-16 18:17:03.9799600, 4808 context tokens, 10 generated.
    # prefill = 4808 / 10000 = 0.4808 s; decode = 10 / 40 = 0.25 s; ttft = 0.4808 s; e2e = 0.7308 s.
    first = azure("code").filter(pl.col("_source_row") == 1).collect().row(0, named=True)
    assert (first["request_id"], first["input_tokens"], first["output_tokens"]) == ("azure-code-000001", 4808, 10)
    assert first["queue_s"] == 0.0
    assert first["prefill_s"] == pytest.approx(0.4808, abs=1e-12)
    assert first["decode_s"] == 0.25
    assert first["ttft_s"] == pytest.approx(0.4808, abs=1e-12)
    assert first["arrived_at"] == utc(2023, 11, 16, 18, 17, 3, 979960)
    assert first["completed_at"] == utc(2023, 11, 16, 18, 17, 4, 710760)


def test_azure_replayed_at_a_start_keeps_every_gap():
    rows, quarantine, _ = ingest(azure("code", "conv", start=datetime(2026, 11, 28, 9, tzinfo=UTC)),
                                 date(2026, 11, 28))
    assert quarantine.height == 0 and rows.height == 8_819 + 19_366
    first = {n: rows.filter(pl.col("request_id").str.starts_with(f"azure-{n}-"))["arrived_at"].min()
             for n in ("code", "conv")}
    # conv starts the hour (18:15:46.680590); code starts 77.299370 s later (18:17:03.979960).
    assert first == {"conv": utc(2026, 11, 28, 9), "code": utc(2026, 11, 28, 9, 1, 17, 299370)}


def test_azure_defects_and_explicit_placement(tmp_path):
    (tmp_path / "AzureLLMInferenceTrace_mini.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,100,4\n"
        "16/11/2023 18:17,100,4\n"
        "2023-11-16 18:17:05.0000000,1e3,4\n"
        "2023-11-16 18:17:06.0000000,,4\n"
        "2023-11-16 18:17:07.0000000,100,-4\n")
    raw = scan_csv_text([tmp_path / "AzureLLMInferenceTrace_mini.csv"], tmp_path)
    throughput = ThroughputModel(prefill_tokens_per_s=1000, decode_tokens_per_s=8, queue_s=0.5)
    parsed = adapt_azure_trace(raw, **PLACEMENT, throughput=throughput, site_id="lab", pool_id="lab-h100")
    rows, quarantine, _ = ingest(parsed, date(2023, 11, 16))
    assert list(quarantine.select("source_row", "reason").iter_rows()) == [
        (2, "bad_timestamp"), (3, "invalid_value"), (4, "missing_required_field"), (5, "negative_value")]
    # 100 / 1000 = 0.1 s prefill, ttft 0.5 + 0.1 = 0.6 s, decode 4 / 8 = 0.5 s, e2e 1.1 s.
    assert rows.select("request_id", "site_id", "pool_id", "ttft_s", "decode_s", "completed_at").row(0) == (
        "azure-mini-000001", "lab", "lab-h100", 0.6, 0.5, utc(2023, 11, 16, 18, 17, 5, 79960))


def test_placement_errors_are_raised_not_quarantined():
    raw = scan_csv_text([AZURE / "AzureLLMInferenceTrace_code.csv"], AZURE)
    with pytest.raises(ValueError, match="placement"):
        adapt_azure_trace(raw, **PLACEMENT, throughput=MODEL)
    with pytest.raises(ValueError, match="not in the inventory"):
        adapt_azure_trace(raw, **{**PLACEMENT, "node_id": "nope"}, throughput=MODEL, inventory=INV)
    with pytest.raises(ValueError, match="tier 'gold'"):
        adapt_azure_trace(raw, **{**PLACEMENT, "tier": "gold"}, throughput=MODEL, inventory=INV)
    with pytest.raises(ValueError, match="timezone-aware"):
        adapt_azure_trace(raw, **PLACEMENT, throughput=MODEL, inventory=INV, start=datetime(2026, 11, 28))


# --- Mooncake FAST'25 conversation trace ------------------------------------------------------------

def test_mooncake_trace_loads_whole_with_exact_counts_times_and_cache():
    rows, quarantine, counts = ingest(mooncake(), date(2026, 11, 28))
    assert summary(rows) == (12_031, 144_793_823, 4_122_048, START, START + timedelta(milliseconds=3_536_999))
    assert rows["cached_input_tokens"].sum() == 54_098_411
    assert quarantine.height == 0
    assert counts.rows() == [("requests", "conversation_trace.jsonl", 12_031, 12_031, 0, "read", None)]
    assert (rows["cached_input_tokens"] <= rows["input_tokens"]).all()


def test_mooncake_cached_tokens_and_latency_of_hand_checked_lines():
    rows = mooncake().filter(pl.col("_source_row").is_in([1, 2, 138, 262])).collect()
    got = {r["request_id"]: (r["input_tokens"], r["cached_input_tokens"]) for r in rows.iter_rows(named=True)}
    assert got == {
        "mooncake-conversation-000001": (6758, 0),  # blocks 0..13, all new
        "mooncake-conversation-000002": (7322, 512),  # [0, 14..27]: block 0 seen on line 1
        "mooncake-conversation-000138": (7833, 7168),  # [0, 14..26, 3868, 3869]: 14 blocks seen (line 2)
        "mooncake-conversation-000262": (1902, 1902),  # [0, 975, 976, 977] = line 41: 4 x 512 = 2048, capped
    }
    # Line 138 at 48,000 ms: prefill (7833 - 7168) / 10000 = 0.0665 s, decode 374 / 40 = 9.35 s, e2e 9.4165 s.
    line = rows.filter(pl.col("_source_row") == 138).row(0, named=True)
    assert line["prefill_s"] == pytest.approx(0.0665, abs=1e-12) and line["decode_s"] == 9.35
    assert line["arrived_at"] == utc(2026, 11, 28, 12, 0, 48)
    assert line["completed_at"] == utc(2026, 11, 28, 12, 0, 57, 416500)


def test_mooncake_defects_land_in_quarantine(tmp_path):
    (tmp_path / "mini_trace.jsonl").write_text("\n".join([
        '{"timestamp": 0, "input_length": 1000, "output_length": 10, "hash_ids": [7, 8]}',
        '{"timestamp": 5, "input_length": 600, "output_length": 10, "hash_ids": [7, 9]}',
        '{"timestamp": 6, "input_length": 600, "output_length": 10, "hash_ids": ["7"]}',
        '{"timestamp": 7, "input_length": 600, "output_length": 10, "hash_ids": [7, 9]',
        '{"timestamp": 8, "input_length": "600", "output_length": 10, "hash_ids": []}',
        '{"input_length": 600, "output_length": 10, "hash_ids": []}',
        '{"timestamp": 9, "input_length": 600, "output_length": 10, "hash_ids": []}',
    ]) + "\n")
    raw = extract_json_fields(scan_text_lines([tmp_path / "mini_trace.jsonl"], tmp_path), MOONCAKE_KEYS)
    rows, quarantine, _ = ingest(adapt_mooncake_trace(raw, **PLACEMENT, throughput=MODEL, start=START, inventory=INV),
                                 START.date())
    assert list(quarantine.select("source_row", "reason").iter_rows()) == [
        (3, "invalid_value"), (4, "malformed_record"), (5, "invalid_value"), (6, "missing_required_field")]
    assert rows.select("request_id", "cached_input_tokens").rows() == [
        ("mooncake-mini-000001", 0), ("mooncake-mini-000002", 512), ("mooncake-mini-000007", 0)]


def test_cached_prefix_tokens_per_file_and_capped():
    frame = pl.LazyFrame({
        "_source_file": ["a", "a", "a", "b"], "_source_row": [1, 2, 3, 1],
        "blocks": [[1, 2], [1, 2, 3], [2, 2, 4], [1]], "input_tokens": [1024, 1500, 700, 512],
    })
    out = cached_prefix_tokens(frame, "blocks", "input_tokens").collect()
    # a/2: blocks 1 and 2 seen on a/1 -> 1024. a/3: block 2 twice, both seen -> 1024, capped at 700.
    # b/1: another file, another cache -> 0.
    assert out["cached_input_tokens"].to_list() == [0, 1024, 700, 0]
