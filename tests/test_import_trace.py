"""`inferledger import-trace` (issue 16, "real exports without hand-work"): the real Azure 2023 and
Mooncake FAST'25 samples written as request logs in the raw layout, then ingested by the pipeline
with nothing quarantined. Figures by hand from the trace files (docs/trace-adapter.md's worked
examples) and the default throughput model (prefill 10,000 tokens/s, decode 40 tokens/s)."""

import csv
import json
import shutil
import tempfile
from datetime import date, datetime, timedelta, UTC
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.inventory import load_inventory
from lake.json_lines import extract_json_fields
from lake.readers import scan_text_lines
from lake.real_day import INVENTORY, PRICE_FILE, replay_prices
from lake.trace_logs import Replay, replayed_requests, write_request_logs
from pipelines.cli import main
from tests.conftest import examples
from transforms.contracts import REQUESTS
from transforms.ingest.requests import OTEL_FIELDS, parse_otel_fields

REAL = Path(__file__).parent / "data" / "real"
AZURE = [REAL / "azure_llm_inference_2023" / f"AzureLLMInferenceTrace_{n}.csv" for n in ("code", "conv")]
MOONCAKE = REAL / "mooncake_fast25_traces" / "conversation_trace.jsonl"
D, D1 = date(2025, 6, 3), date(2025, 6, 4)
MIDNIGHT = datetime(2025, 6, 4, tzinfo=UTC)
AZURE_LOG = f"{D}/mghpcc/requests/trace-azure-code-conv_holygpu8a11101.jsonl"
MOONCAKE_LOG = "{}/mghpcc/requests/trace-mooncake-conversation_holygpu2c0701.jsonl"


def _raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copyfile(INVENTORY, raw / "inventory.yaml")
    return raw


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _azure(raw: Path, *more: str) -> int:
    return main(["import-trace", "azure", *map(str, AZURE), "--node", "holygpu8a11101", "--date", D.isoformat(),
                 "--raw", str(raw), *more])


def _mooncake(raw: Path, *more: str) -> int:
    # Line 138 (offset 48 s) arrives at 23:59:07 + 48 s = 23:59:55 and runs 9.4165 s: past midnight.
    return main(["import-trace", "mooncake", str(MOONCAKE), "--node", "holygpu2c0701", "--date", D.isoformat(),
                 "--start", "23:59:07", "--tier", "batch", "--tenant", "kimi-replay", "--raw", str(raw), *more])


def test_azure_trace_keeps_its_time_of_day_on_the_chosen_day(tmp_path, capsys):
    raw = _raw(tmp_path)
    assert _azure(raw) == 0
    rows = _lines(raw / AZURE_LOG)
    assert len(rows) == 8_819 + 19_366  # both files, every row
    by_id = {r["gen_ai.response.id"]: r for r in rows}
    # Code row 1: 2023-11-16 18:17:03.979960 -> the same time of day on 2025-06-03; 4,808 prompt tokens,
    # 10 generated: prefill 4,808 / 10,000 = 0.4808 s, decode 10 / 40 = 0.25 s, e2e 0.7308 s.
    r = by_id["azure-20250603-holygpu8a11101-code-000001"]
    assert r["time"] == "2025-06-03T18:17:03.979960Z"
    assert (r["gen_ai.usage.input_tokens"], r["gen_ai.usage.output_tokens"]) == (4_808, 10)
    assert r["gen_ai.usage.cache_read.input_tokens"] == 0
    assert (r["gen_ai.latency.time_in_model_prefill"], r["gen_ai.latency.time_in_model_decode"]) == (0.4808, 0.25)
    assert r["gen_ai.latency.e2e"] == 0.7308 and r["gen_ai.latency.time_to_first_token"] == 0.4808
    assert (r["server.address"], r["inferledger.tier"], r["inferledger.tenant.id"], r["error.type"]) == (
        "holygpu8a11101", "standard", "azure-replay", None)
    # The first line is conv row 1, the trace's first arrival (18:15:46.680590): 374 in, 44 out,
    # e2e 0.0374 + 1.1 = 1.1374 s.
    first = rows[0]
    assert first["gen_ai.response.id"] == "azure-20250603-holygpu8a11101-conv-000001"
    assert first["time"] == "2025-06-03T18:15:46.680590Z" and first["gen_ai.latency.e2e"] == 1.1374
    assert not any(k in r for k in ("prompt", "gen_ai.input.messages", "http.response.body.size"))
    out = capsys.readouterr().out
    assert "28,185 requests" in out and AZURE_LOG in out and "2025-06-03 18:15:46.680590" in out


def test_azure_start_moves_the_first_arrival_and_keeps_every_gap(tmp_path):
    raw = _raw(tmp_path)
    assert _azure(raw, "--start", "02:08:08") == 0
    by_id = {r["gen_ai.response.id"]: r for r in _lines(raw / AZURE_LOG)}
    # conv row 1 arrives at 02:08:08; code row 1 arrived 77.299370 s after it in the trace.
    assert by_id["azure-20250603-holygpu8a11101-conv-000001"]["time"] == "2025-06-03T02:08:08.000000Z"
    assert by_id["azure-20250603-holygpu8a11101-code-000001"]["time"] == "2025-06-03T02:09:25.299370Z"


def _mooncake_before_midnight() -> int:
    """Oracle, straight from the JSONL: requests of the trace started at 23:59:07 that complete
    before midnight (cache hits: 512 tokens per block id seen on an earlier line, capped)."""
    seen: set[int] = set()
    start = MIDNIGHT - timedelta(seconds=53)
    count = 0
    for line in MOONCAKE.read_text().splitlines():
        r = json.loads(line)
        cached = min(512 * sum(h in seen for h in r["hash_ids"]), r["input_length"])
        seen.update(r["hash_ids"])
        e2e_us = round(((r["input_length"] - cached) / 10_000 + r["output_length"] / 40) * 1e6)
        count += start + timedelta(milliseconds=r["timestamp"], microseconds=e2e_us) < MIDNIGHT
    return count


def test_mooncake_requests_past_midnight_are_logged_on_their_completion_day(tmp_path, capsys):
    raw = _raw(tmp_path)
    assert _mooncake(raw) == 0
    day, next_day = _lines(raw / MOONCAKE_LOG.format(D)), _lines(raw / MOONCAKE_LOG.format(D1))
    assert len(day) + len(next_day) == 12_031
    assert len(day) == _mooncake_before_midnight()
    ends = lambda rows: [datetime.fromisoformat(r["time"]) + timedelta(seconds=r["gen_ai.latency.e2e"])  # noqa: E731
                         for r in rows]
    assert max(ends(day)) < MIDNIGHT <= min(ends(next_day))
    # Line 138: 7,833 input tokens of which 7,168 cached (14 blocks seen on line 2), 374 output:
    # prefill 665 / 10,000 = 0.0665 s, decode 374 / 40 = 9.35 s, e2e 9.4165 s: 23:59:55 to 00:00:04.4165.
    r = next(r for r in next_day if r["gen_ai.response.id"] == "mooncake-20250603-holygpu2c0701-conversation-000138")
    assert r["time"] == "2025-06-03T23:59:55.000000Z"
    assert (r["gen_ai.usage.input_tokens"], r["gen_ai.usage.cache_read.input_tokens"]) == (7_833, 7_168)
    assert (r["gen_ai.usage.output_tokens"], r["gen_ai.latency.e2e"]) == (374, 9.4165)
    out = capsys.readouterr().out
    assert f"{len(next_day):,} request(s) complete after 2025-06-03's midnight" in out


def test_an_existing_log_is_kept_unless_forced(tmp_path, capsys):
    raw = _raw(tmp_path)
    assert _azure(raw) == 0
    log = raw / AZURE_LOG
    log.write_text("kept\n")
    assert _azure(raw) == 1
    assert log.read_text() == "kept\n"
    assert "a request log of this name exists; add --force" in capsys.readouterr().err
    assert _azure(raw, "--force") == 0
    assert len(log.read_text().splitlines()) == 28_185


def test_a_node_or_tier_the_inventory_lacks_is_refused_naming_it(tmp_path, capsys):
    raw = _raw(tmp_path)
    assert main(["import-trace", "azure", str(AZURE[0]), "--node", "holygpu9x", "--date", D.isoformat(),
                 "--raw", str(raw)]) == 1
    err = capsys.readouterr().err
    assert "node 'holygpu9x' is not in the inventory" in err and "holygpu8a11101" in err
    assert "inventory.yaml" in err
    assert not (raw / D.isoformat()).exists()
    assert _azure(raw, "--tier", "gold") == 1
    assert "tier 'gold' is not in the inventory" in capsys.readouterr().err


def test_a_broken_trace_row_is_named_with_its_file_and_row(tmp_path, capsys):
    raw = _raw(tmp_path)
    trace = tmp_path / "AzureLLMInferenceTrace_code.csv"
    rows = list(csv.reader(AZURE[0].read_text().splitlines()))
    rows[3][1] = "many"  # data row 3: ContextTokens not an integer
    trace.write_text("\n".join(",".join(r) for r in rows[:6]) + "\n")
    assert main(["import-trace", "azure", str(trace), "--node", "holygpu8a11101", "--date", D.isoformat(),
                 "--raw", str(raw)]) == 1
    err = capsys.readouterr().err
    assert f"{trace} row 3: invalid_value: `ContextTokens` many is not an integer" in err
    assert "nothing written" in err and not (raw / D.isoformat()).exists()
    trace.write_text("time,prompt\n1,2\n")
    assert main(["import-trace", "azure", str(trace), "--node", "holygpu8a11101", "--date", D.isoformat(),
                 "--raw", str(raw)]) == 1
    assert "not an Azure LLM inference trace CSV: no column TIMESTAMP, ContextTokens, GeneratedTokens" in (
        capsys.readouterr().err)
    lines = tmp_path / "conversation_trace.jsonl"
    lines.write_text(MOONCAKE.read_text().splitlines()[0] + "\nnot json\n")
    assert main(["import-trace", "mooncake", str(lines), "--node", "holygpu2c0701", "--date", D.isoformat(),
                 "--raw", str(raw)]) == 1
    assert f"{lines} row 2: malformed_record: line is not valid JSON" in capsys.readouterr().err
    assert not (raw / D.isoformat()).exists()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Both traces imported (Mooncake across midnight), then `inferledger ingest` of D and D+1."""
    root = tmp_path_factory.mktemp("import-trace")
    raw, lake = _raw(root), root / "lake"
    (raw / PRICE_FILE).parent.mkdir()  # the site's market tariff: the hours of both days (Energinet's, replayed)
    (raw / PRICE_FILE).write_text(replay_prices(REAL / "energinet_elspot_dk2" / "Elspotprices.csv", [D, D1]))
    assert _azure(raw) == 0 and _mooncake(raw) == 0
    for day in (D, D1):
        assert main(["ingest", "--date", day.isoformat(), "--raw", str(raw), "--lake", str(lake)]) == 0
    return raw, lake


def test_the_pipeline_ingests_the_imported_logs_with_nothing_quarantined(ingested):
    raw, lake = ingested
    for day, logs in ((D, [AZURE_LOG, MOONCAKE_LOG.format(D)]), (D1, [MOONCAKE_LOG.format(D1)])):
        part = lake / "requests" / f"date={day}" / "site=mghpcc"
        accepted = pl.read_parquet(part / "*.parquet")
        assert accepted.height == sum(len((raw / log).read_text().splitlines()) for log in logs)
        quarantine = lake / "quarantine" / f"date={day}" / "site=mghpcc" / "requests.parquet"
        assert not quarantine.exists() or pl.read_parquet(quarantine).height == 0
    # The spot-checked requests read back exactly: code row 1 (e2e 0.7308 s) and Mooncake line 138.
    d = pl.read_parquet(lake / "requests" / f"date={D}" / "site=mghpcc" / "*.parquet")
    r = d.filter(pl.col("request_id") == "azure-20250603-holygpu8a11101-code-000001").row(0, named=True)
    assert r["completed_at"] == datetime(2025, 6, 3, 18, 17, 4, 710760, tzinfo=UTC)
    assert (r["prefill_s"], r["decode_s"], r["cached_input_tokens"], r["pool_id"]) == (0.4808, 0.25, 0, "mghpcc-gpu")
    d1 = pl.read_parquet(lake / "requests" / f"date={D1}" / "site=mghpcc" / "*.parquet")
    r = d1.filter(pl.col("request_id") == "mooncake-20250603-holygpu2c0701-conversation-000138").row(0, named=True)
    assert r["arrived_at"] == datetime(2025, 6, 3, 23, 59, 55, tzinfo=UTC)
    assert r["completed_at"] == datetime(2025, 6, 4, 0, 0, 4, 416500, tzinfo=UTC)


_INVENTORY = load_inventory(INVENTORY)
_ORIGIN = datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC)


@settings(max_examples=examples(25), deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 86_400_000_000), st.integers(0, 20_000), st.integers(0, 4_000)),
                     min_size=1, max_size=25),
       start=st.none() | st.times(), day=st.dates(date(2024, 1, 1), date(2030, 12, 31)))
def test_written_logs_read_back_as_the_replayed_requests(rows, start, day):
    """Whatever the trace, day and start: every request is written once, into the log of its
    completion day, and the ingest's parser reads the logs back to exactly the replayed rows
    (times to the microsecond, latencies bit for bit); gaps between arrivals are kept."""
    with tempfile.TemporaryDirectory() as d:
        trace = Path(d) / "AzureLLMInferenceTrace_code.csv"
        stamps = [(_ORIGIN + timedelta(microseconds=us)).strftime("%Y-%m-%d %H:%M:%S.%f") + "0" for us, _, _ in rows]
        trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                         + "".join(f"{t},{i},{o}\n" for t, (_, i, o) in zip(stamps, rows, strict=True)))
        replay = Replay("azure", day, "holygpu8a11101", "llama-3.1-70b-instruct", "standard", "azure-replay",
                        start=start.replace(tzinfo=None) if start else None)
        replayed = replayed_requests(replay, [trace], _INVENTORY)
        written = write_request_logs(replayed, Path(d) / "raw", replay, [trace])
        assert sum(w.requests for w in written) == len(rows)
        fields = extract_json_fields(scan_text_lines([w.path for w in written], Path(d)), list(OTEL_FIELDS))
        parsed = parse_otel_fields(fields, _INVENTORY, "mghpcc").collect()
    assert parsed["_reason"].null_count() == parsed.height
    by_day = parsed.with_columns(pl.col("_source_file").str.extract(r"raw/(\d{4}-\d\d-\d\d)/").alias("folder"))
    assert (by_day["folder"] == by_day["completed_at"].dt.date().cast(pl.String)).all()
    back = parsed.select(REQUESTS.names).sort("request_id")
    assert back.equals(replayed.select(REQUESTS.names).sort("request_id"))
    first = min(us for us, _, _ in rows)
    gaps = replayed.sort("request_id")["arrived_at"] - replayed["arrived_at"].min()
    assert gaps.dt.total_microseconds().to_list() == [us - first for us, _, _ in rows]
    expected_first = (datetime.combine(day, start, UTC) if start else
                      datetime.combine(day, (_ORIGIN + timedelta(microseconds=first)).time(), UTC))
    assert replayed["arrived_at"].min() == expected_first
