"""Performance profiles: what one replica of a model does at each batch (`profiles.csv`).

A replica is `gpus_per_replica` GPUs serving one model (tensor parallel); a node of G GPUs runs
the replicas its pool's layout gives (`PoolSpec.layout`). At batch b (requests in flight on the
replica) it writes `throughput(b)` output tokens per second in all, so each stream decodes at
`throughput(b) / b`, and its GPUs draw `power_w(b)`. Between the profile's batch points both are
interpolated linearly; below batch 1 the power falls linearly to the GPUs' idle power at batch
0. The replica's batch limit (`max_batch`) is the largest batch point at which the strictest
tier it serves still meets its objective for a long answer: TTFT objective + the tier's 95th
percentile of output tokens / per-stream speed <= the E2E objective.

The file is the canonical performance-profile CSV (docs/raw-formats.md, "Performance
profiles"), written to `<raw>/profiles/demo.csv` with every simulated day.
"""

import csv
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from fleetsim.spec import FleetSpec, PoolSpec

PROFILES_CSV = Path(__file__).with_name("profiles.csv")
Z95 = 1.6449  # the normal distribution's 95th percentile


@dataclass(frozen=True)
class Curve:
    """One (gpu_model, model, gpus_per_replica) profile."""

    gpu_model: str
    model: str
    gpus_per_replica: int
    batch: np.ndarray  # float64, increasing, from 1
    tokens_per_s: np.ndarray
    power_w: np.ndarray  # the replica's GPUs together

    def throughput(self, b: np.ndarray | float) -> np.ndarray:
        """Output tokens per second of the replica at batch `b` (0 at 0, linear up to batch 1)."""
        b = np.asarray(b, dtype=np.float64)
        return np.where(b < 1, b * self.tokens_per_s[0], np.interp(b, self.batch, self.tokens_per_s))

    def stream_speed(self, b: np.ndarray | float) -> np.ndarray:
        """Decode tokens per second of each stream at batch `b` (a lone stream's below 1)."""
        b = np.maximum(np.asarray(b, dtype=np.float64), 1.0)
        return np.interp(b, self.batch, self.tokens_per_s) / b

    def power(self, b: np.ndarray | float, idle_w: float) -> np.ndarray:
        """The replica's GPU power (W) at batch `b`, `idle_w` at 0."""
        return np.interp(np.asarray(b, dtype=np.float64), np.concatenate([[0.0], self.batch]),
                         np.concatenate([[idle_w], self.power_w]))


@cache
def load_profiles(path: Path = PROFILES_CSV) -> dict[tuple[str, str, int], Curve]:
    """Every profile of the CSV by (gpu_model, model, gpus_per_replica)."""
    points: dict[tuple[str, str, int], list[tuple[int, float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["gpu_model"], row["model"], int(row["gpus_per_replica"]))
            points.setdefault(key, []).append((int(row["batch"]), float(row["output_tokens_per_s"]),
                                               float(row["power_w"])))
    out = {}
    for key, pts in points.items():
        pts.sort()
        a = np.array(pts, dtype=np.float64)
        out[key] = Curve(*key, a[:, 0], a[:, 1], a[:, 2])
    return out


def curve(pool: PoolSpec, model: str) -> Curve:
    gpr = pool.layout[model][0]
    key = (pool.gpu_model, model, gpr)
    profiles = load_profiles()
    if key not in profiles:
        raise KeyError(f"{PROFILES_CSV.name} has no profile for {key} (pool {pool.id}); add its rows")
    return profiles[key]


def p95_output_tokens(spec: FleetSpec, tier_id: str, model: str) -> float:
    tier = next(t for t in spec.tiers if t.id == tier_id)
    factor = next(m.output_factor for m in spec.models if m.id == model)
    return tier.output_median * factor * math.exp(Z95 * tier.output_sigma)


def max_batch(spec: FleetSpec, pool: PoolSpec, model: str) -> int:
    """The largest profile batch at which every tier of the pool meets its E2E objective for a
    95th-percentile answer (TTFT at its objective, then decode at the per-stream speed); 1 if none."""
    c = curve(pool, model)
    ok = np.ones(len(c.batch), dtype=bool)
    for tier in (t for t in spec.tiers if t.id in pool.tiers):
        e2e = tier.ttft_p95_s + p95_output_tokens(spec, tier.id, model) / c.stream_speed(c.batch)
        ok &= e2e <= tier.e2e_p95_s
    return int(c.batch[ok].max()) if ok.any() else 1


@dataclass(frozen=True)
class ReplicaGroup:
    """The replicas of one model on a node of a pool: `replicas` x `gpus_per_replica` GPUs,
    from GPU index `first_gpu` on."""

    model: str
    model_index: int  # index into spec.models
    replicas: int
    gpus_per_replica: int
    first_gpu: int
    max_batch: int
    curve: Curve

    @property
    def capacity_tokens_per_s(self) -> float:
        """Output tokens per second of the group at its batch limit."""
        return self.replicas * float(self.curve.throughput(self.max_batch))


def replica_groups(spec: FleetSpec, pool: PoolSpec) -> list[ReplicaGroup]:
    """A node's replica groups, in the order of the pool's layout (GPUs assigned in that order)."""
    model_ids = [m.id for m in spec.models]
    groups, gpu = [], 0
    for model, (gpr, replicas) in pool.layout.items():
        groups.append(ReplicaGroup(model, model_ids.index(model), replicas, gpr, gpu, max_batch(spec, pool, model),
                                   curve(pool, model)))
        gpu += gpr * replicas
    if gpu != pool.gpus:
        raise ValueError(f"pool {pool.id}: layout uses {gpu} GPUs, nodes have {pool.gpus}")
    return groups


def node_capacity_tokens_per_s(spec: FleetSpec, pool: PoolSpec) -> float:
    """Output tokens per second one node of the pool serves at its replicas' batch limits."""
    return sum(g.capacity_tokens_per_s for g in replica_groups(spec, pool))
