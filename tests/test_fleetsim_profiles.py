"""The demo fleet's performance profiles (fleetsim/profiles.csv) and how the simulator uses them:
the file is what fleetsim/build_profiles.py makes of the real ML.ENERGY sample, in the canonical
profile CSV; interpolation, batch limits and a node's power follow the profile (hand-computed)."""

import csv
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from fleetsim import simulate
from fleetsim.build_profiles import HEADER, build
from fleetsim.power import SECONDS, node_power
from fleetsim.profiles import PROFILES_CSV, load_profiles, max_batch, p95_output_tokens, replica_groups
from fleetsim.spec import Fleet, FleetSpec
from fleetsim.traffic import NodeRequests
from lake.raw import UNCLAIMED_BY, raw_listing

SAMPLE = Path(__file__).parent / "data" / "real" / "mlenergy_profiles_sample" / "lm-arena-chat-subset.json"


def rows() -> list[dict]:
    with open(PROFILES_CSV, newline="") as f:
        return list(csv.DictReader(f))


def test_the_shipped_profiles_are_the_builders_output_of_the_real_ml_energy_sample():
    configs = json.loads(SAMPLE.read_text())["configurations"]
    assert len(configs) == 74
    assert build(configs) == PROFILES_CSV.read_text()
    by_key = {(r["gpu_model"], r["model"], r["gpus_per_replica"], r["batch"]): r for r in rows()}
    # A measured point as published: Llama-3.1-70B on 4 x H100 (TP 4) at max_num_seqs 128,
    # 3,876.27 tokens/s at 2,183.8 W: 2183.8 / 3876.3 = 0.5634 J per output token.
    ref = by_key["H100", "llama-3.1-70b-instruct", "4", "128"]
    src = next(c for c in configs if c["model_id"] == "meta-llama/Llama-3.1-70B-Instruct"
               and c["gpu_model"] == "H100" and c["max_num_seqs"] == 128)
    assert (ref["output_tokens_per_s"], ref["power_w"], ref["source"]) == ("3876.3", "2183.8", "reference")
    assert round(src["output_throughput_tokens_per_sec"], 1) == 3876.3 and round(src["avg_power_watts"], 1) == 2183.8
    assert float(ref["power_w"]) / float(ref["output_tokens_per_s"]) == pytest.approx(0.5634, abs=1e-4)
    # Scaled (no public H200 profile): the same model on 2 x H200 (TP 2) at batch 8 = H100 TP 4 at
    # batch 8 (469.7 tokens/s, 1,765.4 W) x bandwidth 2 x 4.8 / (4 x 3.35) = 0.716418 -> 336.5
    # tokens/s, power x TDP 2 x 700 / (4 x 700) = 0.5 -> 882.7 W.
    h200 = by_key["H200", "llama-3.1-70b-instruct", "2", "8"]
    assert (h200["output_tokens_per_s"], h200["power_w"], h200["source"]) == ("336.5", "882.7", "assumed")
    assert "x 0.7164" in h200["basis"] and "power x 0.5000" in h200["basis"]


def test_profiles_follow_the_canonical_format_and_cover_every_replica_of_the_demo_fleet():
    assert PROFILES_CSV.read_text().splitlines()[0] == HEADER
    table = rows()
    assert len(table) == 109
    for r in table:
        assert int(r["gpus_per_replica"]) >= 1 and int(r["batch"]) >= 1
        assert float(r["output_tokens_per_s"]) > 0 and float(r["power_w"]) > 0
        assert r["ttft_p95_s"] == "" and float(r["itl_p95_ms"]) > 0
        assert r["source"] in {"measured", "reference", "assumed"} and r["basis"]
    assert {r["source"] for r in table} == {"reference", "assumed"}
    keys = {(r["gpu_model"], r["model"], int(r["gpus_per_replica"])) for r in table}
    spec = FleetSpec()
    for pool in spec.pools:
        assert set(pool.layout) == set(pool.models), pool.id
        for model, (gpr, _) in pool.layout.items():
            assert (pool.gpu_model, model, gpr) in keys
        assert sum(gpr * n for gpr, n in pool.layout.values()) == pool.gpus


def test_a_curve_interpolates_between_batch_points_and_idles_at_zero():
    c = load_profiles()["H100", "llama-3.1-8b-instruct", 1]
    # Batch 8: 1,069.6 tokens/s, 486.4 W; batch 16: 1,953.6 tokens/s, 513.3 W. At 12, halfway:
    # (1069.6 + 1953.6) / 2 = 1,511.6 tokens/s, 125.97 per stream; (486.4 + 513.3) / 2 = 499.85 W.
    assert float(c.throughput(12)) == pytest.approx(1511.6)
    assert float(c.stream_speed(12)) == pytest.approx(1511.6 / 12)
    assert float(c.power(12, 119.0)) == pytest.approx(499.85)
    # Batch 1: 164.6 tokens/s, 248.9 W; half a request in flight: half the tokens, power halfway
    # from idle 119 W: (119 + 248.9) / 2 = 183.95 W; a lone stream decodes at batch 1's speed.
    assert float(c.throughput(0.5)) == pytest.approx(82.3)
    assert float(c.power(0.5, 119.0)) == pytest.approx(183.95)
    assert float(c.power(0.0, 119.0)) == 119.0 and float(c.stream_speed(0.2)) == pytest.approx(164.6)


def test_the_batch_limit_is_the_largest_batch_meeting_the_strictest_tier_objective():
    spec = FleetSpec()
    premium = spec.pool("premium-h200")
    # Premium: TTFT 1 s, E2E 20 s; output tokens lognormal, median 220, sigma 0.75: p95 =
    # 220 x e^1.2337 = 220 x 3.4338 = 755.4 tokens, to decode in 19 s: >= 39.76 tokens/s per stream.
    # Llama-3.1-70B on 2 x H200: batch 8 336.5 / 8 = 42.06 (meets), batch 16 618.0 / 16 = 38.63
    # (misses): 8.
    assert p95_output_tokens(spec, "premium", "llama-3.1-70b-instruct") == pytest.approx(755.4, abs=0.05)
    assert max_batch(spec, premium, "llama-3.1-70b-instruct") == 8
    # Standard (E2E 40 s, TTFT 2 s, median 300, sigma 0.8: p95 300 x e^1.3159 = 1,118.5 tokens -> >= 29.43 tokens/s):
    # the 8B on an L40S at batch 16 decodes 503.8 / 16 = 31.49 per stream, at 32 874.6 / 32 = 27.33.
    assert max_batch(spec, spec.pool("standard-l40s"), "llama-3.1-8b-instruct") == 16
    # The rented pool serves premium and standard: the stricter (premium) sets it. 70B on 4 x H100:
    # batch 32 1486.7 / 32 = 46.46 (meets 39.76), 64 2510.5 / 64 = 39.23 (misses): 32.
    assert max_batch(spec, spec.pool("cloud-h100"), "llama-3.1-70b-instruct") == 32


def _requests(node, start_s: float, end_s: float, n: int, model_index: int) -> NodeRequests:
    i64 = np.zeros(n, np.int64)
    ms = np.full(n, int(start_s * 1000), np.int64)
    e2e = np.full(n, int((end_s - start_s) * 1000), np.int64)
    return NodeRequests(node, ms, np.arange(n, dtype=np.int64), np.zeros(n, np.int8), np.full(n, model_index, np.int8),
                        np.zeros(n, np.int16), np.zeros(n, np.int8), i64 + 100, i64, i64 + 100, i64, i64 + 50, i64 + 40,
                        e2e - 60, e2e, i64 + 500, np.zeros(n, np.int8), np.full(n, -1, np.int8))


def test_a_nodes_gpus_draw_the_profiles_power_at_the_batch_each_replica_runs():
    spec = FleetSpec()
    fleet = Fleet.build(spec, 10_000)
    node = fleet.pool_nodes("standard-l40s")[0]
    (group,) = replica_groups(spec, node.pool)  # 4 replicas of the 8B, one L40S each
    # 16 requests in flight from 10,000 s to 20,000 s: 16 / 4 replicas = batch 4 on each GPU, at
    # the L40S 8B profile's 189.4 W; idle otherwise: 17% x 350 W = 59.5 W per GPU.
    reqs = _requests(node, 10_000, 20_000, 16, group.model_index)
    p = node_power(reqs, np.random.default_rng(1), spec)
    busy, idle = slice(10_100, 19_900), slice(30_000, 80_000)
    assert p.gpu_w.shape == (4, SECONDS)
    assert p.gpu_w[:, busy].sum(axis=0).mean() == pytest.approx(4 * 189.4, rel=0.02)  # 757.6 W
    assert p.gpu_w[:, idle].sum(axis=0).mean() == pytest.approx(4 * 59.5, rel=0.02)  # 238.0 W
    # The host adds its idle 182 W, and with the GPUs at (757.6 - 238) / (4 x (0.92 x 350 - 59.5))
    # = 0.5049 of their dynamic range, 0.5049 x 260 = 131.3 W more: 757.6 + 182 + 131.3 = 1,070.9 W.
    assert p.node_w[busy].mean() == pytest.approx(1070.9, rel=0.02)
    assert p.node_w[idle].mean() == pytest.approx(238.0 + 182.0, rel=0.02)


def test_every_simulated_day_writes_the_profiles_outside_the_day_folder(tmp_path):
    s = simulate(tmp_path, date(2026, 11, 24), requests=2_000, seed=3, defects=False)
    path = tmp_path / "profiles" / "demo.csv"
    assert path.read_bytes() == PROFILES_CSV.read_bytes()
    assert s.files["profiles"] == 1 and s.records["profiles"] == 109


def test_the_profiles_folder_is_outside_what_a_days_ingest_lists(tmp_path):
    """`<raw>/profiles/` sits beside `prices/`, outside the day folders: today's ingest neither
    reads it nor lists it as unclaimed (the fleet-wide listing covers `<raw>/<day>/` only)."""
    day = date(2026, 11, 24)
    simulate(tmp_path, day, requests=2_000, seed=3, defects=False)
    sites = ["cloud-use1", "metro-east", "remote-plains"]
    listing = raw_listing(UNCLAIMED_BY, tmp_path, day, None, sites=sites)
    named = [*listing.ignored, *listing.unclaimed,
             *(Path(p).relative_to(tmp_path).as_posix() for _, paths in listing.sources for p in paths)]
    assert (tmp_path / "profiles" / "demo.csv").is_file()
    assert named == ["2026-11-24/_fleet/assets/asset_register_2026-11-24.csv"], named
