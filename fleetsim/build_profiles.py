"""Build `fleetsim/profiles.csv`, the demo fleet's performance profiles, from the ML.ENERGY
leaderboard v3 (`lm-arena-chat.json`, or the subset in tests/data/real/mlenergy_profiles_sample/).

    python -m fleetsim.build_profiles tests/data/real/mlenergy_profiles_sample/lm-arena-chat-subset.json

One row per (gpu_model, model, gpus_per_replica, batch), batch 1, 2, 4, ... up to the row's cap,
in the canonical profile CSV (docs/raw-formats.md, "Performance profiles"). The rules:

- **reference**: an ML.ENERGY configuration measured at `max_num_seqs` = batch (8 and above;
  the first configuration of the file when several share it): `output_throughput_tokens_per_sec`,
  `avg_power_watts` (all its GPUs), `p95_itl_ms`, as published.
- **assumed, below batch 8**: the configuration at batch 8 extended down: per-stream speed
  x (8 / b)^0.1 (decode is memory-bound: a smaller batch reads the same weights, each stream a
  little faster), power = idle + (P8 - idle) x sqrt(b / 8), idle = 17% of TDP per GPU.
- **assumed, hardware without a public profile** (H200, L40S) or a model ML.ENERGY did not
  measure (Mixtral, DeepSeek-R1-Distill-Qwen-14B, gpt-oss-120b): a measured configuration
  scaled by the ratio of memory bandwidth of the GPUs serving a replica (decode throughput)
  and of their TDP (power), and for another model by its bytes read per token; each row's
  `basis` states its source configuration and factors.
- The batch cap of a row: the KV-cache memory left next to the weights for ~1,500-token
  contexts (L40S 48 GB), or the largest measured point (256).
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).with_name("profiles.csv")
HEADER = ("gpu_model,model,gpus_per_replica,batch,output_tokens_per_s,power_w,ttft_p95_s,itl_p95_ms,"
          "source,basis")
TDP_W = {"H100": 700.0, "H200": 700.0, "B200": 1000.0, "L40S": 350.0}
BANDWIDTH_TBS = {"H100": 3.35, "H200": 4.8, "B200": 8.0, "L40S": 0.864}
IDLE_FRAC = 0.17
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Target:
    gpu_model: str
    model: str
    gpus_per_replica: int
    cap: int  # largest batch
    source: tuple[str, str, int]  # ML.ENERGY (model_id, gpu_model, num_gpus)
    model_factor: float = 1.0  # throughput factor for another model than the source's
    model_note: str = ""


TARGETS = (
    Target("H100", "llama-3.1-8b-instruct", 1, 256, ("meta-llama/Llama-3.1-8B-Instruct", "H100", 1)),
    Target("H100", "llama-3.1-70b-instruct", 4, 256, ("meta-llama/Llama-3.1-70B-Instruct", "H100", 4)),
    Target("H100", "qwen3-32b", 2, 256, ("Qwen/Qwen3-32B", "H100", 2)),
    Target("H100", "mixtral-8x7b-instruct", 2, 256, ("Qwen/Qwen3-32B", "H100", 2), 1.0,
           "Mixtral 8x7B (12.9B of 46.7B parameters active) taken as a 32B dense model"),
    Target("B200", "llama-3.1-8b-instruct", 1, 256, ("meta-llama/Llama-3.1-8B-Instruct", "B200", 1)),
    Target("B200", "llama-3.1-70b-instruct", 2, 256, ("meta-llama/Llama-3.1-70B-Instruct", "B200", 2)),
    Target("B200", "qwen3-32b", 1, 256, ("Qwen/Qwen3-32B", "B200", 1)),
    Target("H200", "llama-3.1-8b-instruct", 1, 256, ("meta-llama/Llama-3.1-8B-Instruct", "H100", 1)),
    Target("H200", "llama-3.1-70b-instruct", 2, 256, ("meta-llama/Llama-3.1-70B-Instruct", "H100", 4)),
    Target("H200", "qwen3-32b", 1, 128, ("Qwen/Qwen3-32B", "H100", 2)),
    Target("H200", "gpt-oss-120b", 1, 64, ("Qwen/Qwen3-30B-A3B-Instruct-2507", "H100", 1), round(3.3 / 5.1, 4),
           "gpt-oss-120b x (3.3B / 5.1B active parameters)"),
    Target("L40S", "llama-3.1-8b-instruct", 1, 64, ("meta-llama/Llama-3.1-8B-Instruct", "H100", 1)),
    Target("L40S", "deepseek-r1-distill-qwen-14b", 1, 32, ("Qwen/Qwen3-14B", "H100", 1), 1.0,
           "DeepSeek-R1-Distill-Qwen-14B taken as Qwen3-14B (both 14.8B dense)"),
)


def _measured(configs: list[dict], source: tuple[str, str, int]) -> dict[int, dict]:
    """The source configuration's points by max_num_seqs (the first of the file for each)."""
    out: dict[int, dict] = {}
    for c in configs:
        if (c["model_id"], c["gpu_model"], c["num_gpus"]) == source and c["max_num_seqs"] not in out:
            out[c["max_num_seqs"]] = c
    if 8 not in out:
        raise ValueError(f"ML.ENERGY has no configuration {source} at max_num_seqs 8")
    return out


def target_rows(t: Target, configs: list[dict]) -> list[tuple]:
    """(batch, output_tokens_per_s, power_w, itl_p95_ms, source, basis) of one target."""
    model_id, src_gpu, src_gpus = t.source
    points = _measured(configs, t.source)
    speed = (BANDWIDTH_TBS[t.gpu_model] * t.gpus_per_replica) / (BANDWIDTH_TBS[src_gpu] * src_gpus) * t.model_factor
    watts = (TDP_W[t.gpu_model] * t.gpus_per_replica) / (TDP_W[src_gpu] * src_gpus)
    config = f"ML.ENERGY v3 lm-arena-chat {model_id} {src_gpu} x{src_gpus} TP{points[8]['tensor_parallel']}"
    scaled = speed != 1.0 or watts != 1.0
    rule = (f"; throughput x {speed:.4f} ({t.gpus_per_replica} {t.gpu_model} {BANDWIDTH_TBS[t.gpu_model]} TB/s / "
            f"{src_gpus} {src_gpu} {BANDWIDTH_TBS[src_gpu]} TB/s"
            + (f" x {t.model_factor}" if t.model_factor != 1.0 else "") + f"), power x {watts:.4f} (TDP)"
            if scaled else "")
    note = f"; {t.model_note}" if t.model_note else ""
    idle = IDLE_FRAC * TDP_W[src_gpu] * src_gpus
    rows = []
    for b in (b for b in BATCHES if b <= t.cap):
        if b >= 8:
            if b not in points:
                continue
            p = points[b]
            tput, power, itl = p["output_throughput_tokens_per_sec"], p["avg_power_watts"], p["p95_itl_ms"]
            extra = f" max_num_seqs {b}"
        else:
            p8 = points[8]
            tput = p8["output_throughput_tokens_per_sec"] * b / 8 * (8 / b) ** 0.1
            power = idle + (p8["avg_power_watts"] - idle) * (b / 8) ** 0.5
            itl = p8["p95_itl_ms"] / (8 / b) ** 0.1
            extra = f" max_num_seqs 8 extended to batch {b} (speed x (8/b)^0.1, power idle + (P8 - idle) x sqrt(b/8))"
        source = "reference" if b >= 8 and not scaled and not t.model_note else "assumed"
        rows.append((b, tput * speed, power * watts, itl / speed, source, config + extra + rule + note))
    return rows


def build(configs: list[dict]) -> str:
    lines = [HEADER]
    for t in TARGETS:
        for b, tput, power, itl, source, basis in target_rows(t, configs):
            lines.append(f"{t.gpu_model},{t.model},{t.gpus_per_replica},{b},{tput:.1f},{power:.1f},,{itl:.2f},"
                         f"{source},\"{basis}\"")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    configs = json.loads(Path(argv[0]).read_text())["configurations"]
    OUT.write_text(build(configs))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
