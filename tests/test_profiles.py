"""Performance profiles: the importers on the real ML.ENERGY and Splitwise samples (exact counts,
one value checked by hand each), the canonical CSV's ingest with its quarantine, and the command."""

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lake.store import FLEET, Lake
from pipelines.cli import main
from pipelines.ingest import ingest_partition
from transforms.contracts import PERFORMANCE_PROFILES
from transforms.ingest.profiles import import_mlenergy, import_splitwise

REAL = Path(__file__).parent / "data" / "real"
MLENERGY = REAL / "mlenergy_leaderboard_v3" / "lm-arena-chat.json"
SPLITWISE = REAL / "splitwise_perf_model" / "perf_model.csv"
DAY = date(2026, 12, 1)


def test_mlenergy_one_configuration_one_row():
    rows = import_mlenergy(json.loads(MLENERGY.read_text()))
    # 328 configurations; two pairs share an operating point (Qwen3-30B-A3B on 2 H100, max_num_seqs 256
    # and 512, at two parallelisms): the faster of each pair is kept -> 326 rows.
    assert rows.height == 326
    assert rows.columns == PERFORMANCE_PROFILES.names
    assert rows["source"].unique().to_list() == ["reference"]
    assert rows["ttft_p95_s"].null_count() == 326  # the leaderboard measures no TTFT
    # Qwen3-14B on one B200 at max_num_seqs 8 (the file's first configuration): 1,086.71 tokens/s,
    # 759.95 W (data_parallel 1: the totals are one replica's), ITL p95 9.68 ms -> 0.699 J per output token.
    r = rows.filter(pl.col("model") == "Qwen/Qwen3-14B", pl.col("gpu_model") == "B200", pl.col("batch") == 8)
    assert r.select("gpus_per_replica", "output_tokens_per_s", "power_w", "itl_p95_ms").rows() == [
        (1, 1086.7107231801174, 759.9467920298994, 9.683607009355912)]
    assert "measured mean batch 7.94" in r["basis"].item()
    assert r["power_w"].item() / r["output_tokens_per_s"].item() == pytest.approx(0.6993091867226764)


def test_splitwise_batch_sweep_of_a100():
    rows = import_splitwise(pl.read_csv(SPLITWISE))
    # The batch sweep (prompt 512, output 128) of the A100 groups with measured power: Llama2-70B at
    # tensor parallelism 2, 4, 8 and BLOOM-176B at 8, 5 batches each with power > 0 -> 20 rows. H100
    # (power 0.0 in every run) and power-capped H100 are left out.
    assert rows.height == 20
    assert rows["gpu_model"].unique().to_list() == ["A100"]
    # Llama2-70B, A100, TP 4, batch 8: five runs of token_time 45.52118558946293, 45.799124882351165,
    # 45.44203550331148, 46.40421304232111, 46.19978459306267 ms -> mean 45.873268722... ms;
    # throughput 8 x 1000 / 45.8732687 = 174.3935 tokens/s; power 0.6147 x 400 W x 4 GPUs = 983.52 W;
    # TTFT the worst prompt_time 1,263.49 ms; ITL the worst token_time 46.404 ms.
    r = rows.filter(pl.col("model") == "llama2-70b", pl.col("gpus_per_replica") == 4, pl.col("batch") == 8)
    mean_ms = (45.52118558946293 + 45.799124882351165 + 45.44203550331148 + 46.40421304232111
               + 46.19978459306267) / 5
    assert r.select("output_tokens_per_s", "power_w", "ttft_p95_s", "itl_p95_ms").rows() == [
        (pytest.approx(8000 / mean_ms, rel=1e-12), pytest.approx(983.52), pytest.approx(1.2634878129465503),
         46.40421304232111)]


def test_canonical_profiles_are_ingested_and_bad_rows_quarantined(tmp_path, small_inventory):
    raw, lake = tmp_path / "raw", Lake(tmp_path / "lake")
    (raw / "profiles").mkdir(parents=True)
    header = ",".join(PERFORMANCE_PROFILES.names)
    (raw / "profiles" / "bench.csv").write_text(
        header + "\n"
        "H200,llama-3.1-70b-instruct,4,32,1500.5,2400,0.8,25,measured,our bench\n"    # row 1: kept
        "H200,llama-3.1-70b-instruct,4,64,0,2400,,,measured,\n"                        # row 2: no throughput
        "H200,llama-3.1-70b-instruct,0,16,900,2000,,,measured,\n"                      # row 3: 0 GPUs
        "L40S,qwen3-32b,2,16,400,600,,,guessed,\n"                                     # row 4: unknown source
        "L40S,qwen3-32b,2,8,250,560,,-3,assumed,scaled from H100 by TFLOPS\n")        # row 5: negative ITL
    (raw / "profiles" / "notes.txt").write_text("not a profile\n")
    out = ingest_partition("performance_profiles", DAY, None, raw, lake, small_inventory)
    assert (out.rows_read, out.rows_accepted) == (5, 1)
    assert out.by_reason == {"out_of_range": 3, "invalid_value": 1}
    assert list(out.ignored) == ["profiles/notes.txt"]
    kept = pl.read_parquet(lake.partition_file("performance_profiles", DAY))
    assert kept.select("gpu_model", "batch", "output_tokens_per_s", "power_w", "source").rows() == [
        ("H200", 32, 1500.5, 2400.0, "measured")]
    q = pl.read_parquet(lake.partition_file("quarantine", DAY, FLEET, name="performance_profiles")).sort("source_row")
    assert q.select("source_file", "source_row", "reason").rows() == [
        ("profiles/bench.csv", 2, "out_of_range"), ("profiles/bench.csv", 3, "out_of_range"),
        ("profiles/bench.csv", 4, "invalid_value"), ("profiles/bench.csv", 5, "out_of_range")]
    assert q["detail"][0].startswith("output_tokens_per_s 0.0 tokens/s is not above 0")


def test_no_profile_folder_is_an_empty_partition(tmp_path, small_inventory):
    out = ingest_partition("performance_profiles", DAY, None, tmp_path / "raw", Lake(tmp_path / "lake"),
                           small_inventory)
    assert (out.rows_read, out.canonical_rows) == (0, 0)


def test_import_profile_command_writes_what_the_ingest_reads(tmp_path, small_inventory, capsys):
    raw = tmp_path / "raw"
    assert main(["import-profile", "mlenergy", str(MLENERGY), "--raw", str(raw)]) == 0
    assert main(["import-profile", "splitwise", str(SPLITWISE), "--out", str(raw / "profiles" / "sw.csv")]) == 0
    out = ingest_partition("performance_profiles", DAY, None, raw, Lake(tmp_path / "lake"), small_inventory)
    assert (out.rows_read, out.rows_accepted, out.rows_quarantined) == (346, 346, 0)  # 326 + 20
    assert main(["import-profile", "splitwise", str(MLENERGY), "--out", str(tmp_path / "x.csv")]) == 1
    assert "cannot be read as a splitwise profile" in capsys.readouterr().err
