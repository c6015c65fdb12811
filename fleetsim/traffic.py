"""Requests of one node for one UTC day, as numpy columns (no per-request Python).

Arrivals follow each tier's day in its users' local time (a floor at night, a peak in the
afternoon), with slow noise and bursts (batch jobs, retry storms). Tokens are lognormal per
tier and model. Latencies follow vLLM's phases: a queue when the node's work exceeds its
replicas' batch slots (a fluid backlog per minute), prefill at the GPU's prompt speed, decode at
the performance profile's per-stream speed at the batch the model's replicas run. Times are integer
milliseconds from the start of the day, so queue + prefill <= ttft and ttft + decode <= e2e
hold exactly, and every request arrives and completes inside the day.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, UTC
from zoneinfo import ZoneInfo

import numpy as np

from fleetsim.profiles import ReplicaGroup, replica_groups
from fleetsim.spec import PREFILL_TPS, PREMIUM_TRADES, Fleet, FleetSpec, Node, PoolSpec, TierSpec, largest_remainder

DAY_MS = 86_400_000
MINUTES = 1440

STATUS_OK, STATUS_ERROR, STATUS_CANCELLED, STATUS_TIMEOUT = 0, 1, 2, 3
ERROR_TYPES = ("500", "503", "ContextWindowExceededError")
OPERATIONS = ("chat", "text_completion")


def local_hours(day: date, tz: str) -> np.ndarray:
    """Local hour of day (fractional) at the start of each UTC minute of `day`."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    offsets = np.array([(start + timedelta(hours=h)).astimezone(zone).utcoffset().total_seconds() / 3600
                        for h in range(24)])
    minutes = np.arange(MINUTES)
    return (minutes / 60 + np.repeat(offsets, 60)) % 24


def diurnal(hours: np.ndarray, tier: TierSpec) -> np.ndarray:
    d = np.abs(hours - tier.peak_hour)
    d = np.minimum(d, 24 - d)
    return tier.night_floor + (1 - tier.night_floor) * np.exp(-0.5 * (d / tier.peak_width_h) ** 2)


def arrival_profile(day: date, node: Node, tier: TierSpec, rng: np.random.Generator) -> np.ndarray:
    """Probability of each UTC minute of the day for one node's requests of one tier."""
    base = diurnal(local_hours(day, node.site.traffic_timezone), tier)
    # Slow noise: a lognormal factor per 10 minutes, smoothed.
    noise = np.exp(rng.normal(0, 0.18, MINUTES // 10 + 2))
    noise = np.convolve(noise, np.ones(3) / 3, mode="same")
    base = base * np.repeat(noise, 10)[:MINUTES]
    p = base / base.sum() * (1 - tier.burst_share)
    if tier.bursts and tier.burst_share:
        # Bursts start where traffic is (business hours for batch jobs).
        starts = rng.choice(MINUTES, size=tier.bursts, p=base ** 2 / (base ** 2).sum())
        mass = rng.uniform(0.5, 1.5, tier.bursts)
        mass = mass / mass.sum() * tier.burst_share
        for s, m in zip(starts, mass, strict=True):
            length = int(rng.integers(tier.burst_minutes[0], tier.burst_minutes[1] + 1))
            lo, hi = int(s), min(MINUTES, int(s) + length)
            p[lo:hi] += m / (hi - lo)
    return p / p.sum()


@dataclass
class NodeRequests:
    """One node's requests of a day, sorted by completion (the order a log shipper writes)."""

    node: Node
    arrival_ms: np.ndarray  # int64, ms since 00:00 UTC of the day
    seq: np.ndarray  # int64, per node and day, in arrival order (part of the request id)
    tier: np.ndarray  # int8, index into spec.tiers
    model: np.ndarray  # int8, index into spec.models
    tenant: np.ndarray  # int16, index into spec.tenant_ids()
    operation: np.ndarray  # int8, index into OPERATIONS
    input_tokens: np.ndarray  # int64
    cached_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    queue_ms: np.ndarray  # int64
    ttft_ms: np.ndarray  # int64, -1: no first token (error, or cancelled before it)
    prefill_ms: np.ndarray  # int64
    decode_ms: np.ndarray  # int64
    e2e_ms: np.ndarray  # int64
    response_bytes: np.ndarray  # int64
    status: np.ndarray  # int8
    error_type: np.ndarray  # int8, index into ERROR_TYPES, -1 when not an error

    def __len__(self) -> int:
        return len(self.arrival_ms)

    @property
    def gpu_start_ms(self) -> np.ndarray:
        return self.arrival_ms + self.queue_ms

    @property
    def end_ms(self) -> np.ndarray:
        return self.arrival_ms + self.e2e_ms

    def take(self, idx: np.ndarray) -> "NodeRequests":
        return NodeRequests(self.node, **{k: v[idx] for k, v in self.__dict__.items() if k != "node"})


def tenant_weights(fleet: Fleet, rng: np.random.Generator) -> list[np.ndarray]:
    """Per tier: the probability of each tenant (Zipf-like sizes; premium only for trades that
    buy it). Drawn once per simulation so a tenant is as big on every node."""
    names = fleet.spec.tenant_ids()
    out = []
    for tier in fleet.spec.tiers:
        eligible = np.array([tier.id != "premium" or n.rsplit("-", 1)[1] in PREMIUM_TRADES for n in names])
        rank = np.empty(len(names))
        rank[rng.permutation(len(names))] = np.arange(1, len(names) + 1)
        w = np.where(eligible, rank ** -fleet.spec.zipf_s, 0.0)
        out.append(w / w.sum())
    return out


def split_requests(fleet: Fleet, day: date, seed: int) -> dict[str, dict[str, int]]:
    """Requests per node and tier, summing exactly to `fleet.requests`."""
    spec = fleet.spec
    raw = {(p, t.id): fleet.requests * t.share * s for t in spec.tiers for p, s in t.routing.items()}
    exact = largest_remainder({f"{p}|{t}": v for (p, t), v in raw.items()}, fleet.requests)
    rng = np.random.default_rng([seed, day.toordinal(), 0xB0A7])
    out: dict[str, dict[str, int]] = {n.id: {} for n in fleet.nodes}
    weights = {p.id: rng.uniform(0.85, 1.15, len(fleet.pool_nodes(p.id))) for p in spec.pools}
    for key in sorted(exact):
        pool, tier = key.split("|")
        nodes = fleet.pool_nodes(pool)
        w = weights[pool] / weights[pool].sum()
        for node, k in zip(nodes, rng.multinomial(exact[key], w), strict=True):
            out[node.id][tier] = int(k)
    return out




def generate_node_requests(fleet: Fleet, node: Node, day: date, per_tier: dict[str, int],
                           tenants: list[np.ndarray], rng: np.random.Generator) -> NodeRequests:
    """Every request `node` serves on `day`; `per_tier` gives how many of each tier. The draws
    come from `rng` in a fixed order: arrivals, workload, vLLM phases, endings, sizes."""
    spec = fleet.spec
    arrived = _arrivals(spec, node, day, per_tier, rng)
    if arrived is None:
        return _empty(node)
    arrival, tier = arrived
    n = len(arrival)
    work = _workload(spec, node.pool, tier, tenants, rng)
    t = _vllm_phases(spec, node.pool, arrival, work, rng)
    status, error_type = _endings(spec, tier, work, t, rng)

    response_bytes = np.where(
        status == STATUS_ERROR, rng.integers(150, 300, n),
        np.round(work.output_tokens * np.exp(rng.normal(np.log(4.1), 0.1, n))) + 350).astype(np.int64)

    # Every request completes inside the day: the few that would finish after midnight
    # arrived a little earlier instead (the log shipper files a request by its completion day).
    arrival = np.minimum(arrival, DAY_MS - 1 - t.e2e_ms - rng.integers(0, 3000, n))
    arrival = np.maximum(arrival, 0)

    seq = np.arange(n, dtype=np.int64)
    order = np.lexsort((arrival, arrival + t.e2e_ms))
    reqs = NodeRequests(node, arrival, seq, tier, work.model, work.tenant, work.operation, work.input_tokens,
                        work.cached, work.output_tokens, t.queue_ms, t.ttft_ms, t.prefill_ms, t.decode_ms, t.e2e_ms,
                        response_bytes, status, error_type)
    return reqs.take(order)


def _arrivals(spec: FleetSpec, node: Node, day: date, per_tier: dict[str, int],
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Arrival times (ms of the day) and tier indices of the node's requests, in arrival order;
    None when it has none."""
    tier_ids = [t.id for t in spec.tiers]
    arrival_parts, tier_parts = [], []
    for tier_id, n in per_tier.items():
        if n == 0:
            continue
        tier = spec.tiers[tier_ids.index(tier_id)]
        counts = rng.multinomial(n, arrival_profile(day, node, tier, rng))
        minute = np.repeat(np.arange(MINUTES, dtype=np.int64), counts)
        arrival_parts.append(minute * 60_000 + rng.integers(0, 60_000, n))
        tier_parts.append(np.full(n, tier_ids.index(tier_id), dtype=np.int8))
    if not arrival_parts:
        return None
    arrival = np.concatenate(arrival_parts)
    order = np.argsort(arrival, kind="stable")
    return arrival[order], np.concatenate(tier_parts)[order]


@dataclass
class _Workload:
    """Who sent each request and what it asked: model, tenant, operation and tokens."""

    model: np.ndarray
    tenant: np.ndarray
    operation: np.ndarray
    input_tokens: np.ndarray
    cached: np.ndarray
    output_tokens: np.ndarray


def _workload(spec: FleetSpec, pool: PoolSpec, tier: np.ndarray, tenants: list[np.ndarray],
              rng: np.random.Generator) -> _Workload:
    """Model (the pool's mix), tenant (the tier's sizes), lognormal tokens per tier and model,
    prefix-cache hits and the operation of each request."""
    n = len(tier)
    model_ids = [m.id for m in spec.models]
    pool_models = list(pool.models)
    model_w = np.array([pool.models[m] for m in pool_models])
    local_model = rng.choice(len(pool_models), size=n, p=model_w / model_w.sum())
    model = np.array([model_ids.index(m) for m in pool_models], dtype=np.int8)[local_model]
    tenant = np.empty(n, dtype=np.int16)
    for t in np.unique(tier):
        sel = tier == t
        tenant[sel] = rng.choice(len(tenants[t]), size=int(sel.sum()), p=tenants[t])

    t_in_med = np.array([t.input_median for t in spec.tiers])[tier]
    t_in_sig = np.array([t.input_sigma for t in spec.tiers])[tier]
    t_out_med = np.array([t.output_median for t in spec.tiers])[tier]
    t_out_sig = np.array([t.output_sigma for t in spec.tiers])[tier]
    out_factor = np.array([m.output_factor for m in spec.models])[model]
    input_tokens = np.clip(np.round(np.exp(rng.normal(np.log(t_in_med), t_in_sig))), 8, 32_000).astype(np.int64)
    output_tokens = np.clip(np.round(np.exp(rng.normal(np.log(t_out_med * out_factor), t_out_sig))),
                            1, 8192).astype(np.int64)
    is_batch = np.array([t.id == "batch" for t in spec.tiers])[tier]
    hit = rng.random(n) < np.where(is_batch, 0.25, 0.45)
    cached = np.where(hit, (input_tokens * rng.uniform(0.3, 0.95, n) // 16) * 16, 0).astype(np.int64)
    operation = np.where(is_batch & (rng.random(n) < 0.3), 1, 0).astype(np.int8)
    return _Workload(model, tenant, operation, input_tokens, cached, output_tokens)


@dataclass
class _Timings:
    """Each request's phases, integer milliseconds: queue + prefill <= ttft, ttft + decode + the
    network <= e2e."""

    queue_ms: np.ndarray
    prefill_ms: np.ndarray
    ttft_ms: np.ndarray
    decode_ms: np.ndarray
    net_ms: np.ndarray
    e2e_ms: np.ndarray


def _vllm_phases(spec: FleetSpec, pool: PoolSpec, arrival: np.ndarray, work: _Workload,
                 rng: np.random.Generator) -> _Timings:
    """vLLM's phases of every request: prefill at the replica's prompt speed, decode at the
    profile's per-stream speed at the batch its replicas run, a queue when all their slots are
    full (`fleetsim.profiles`: each model's replicas on the node batch up to their limit)."""
    n = len(arrival)
    prefill_tps = np.array([PREFILL_TPS.get((pool.gpu_model, m.id), 5000.0) for m in spec.models])[work.model]
    prefill_s = (work.input_tokens - work.cached) / prefill_tps * np.exp(rng.normal(0, 0.15, n)) + 0.004
    minute = arrival // 60_000
    jitter = np.exp(rng.normal(0, 0.12, n))
    stream_tps, wait_s = np.ones(n), np.zeros(n)
    for g in replica_groups(spec, pool):
        sel = np.flatnonzero(work.model == g.model_index)
        if len(sel):
            stream_tps[sel], wait_s[sel] = _replica_group_phases(g, minute[sel], prefill_s[sel],
                                                                 work.output_tokens[sel], jitter[sel])
    queue_ms = np.round((wait_s * rng.uniform(0.6, 1.4, n) + rng.exponential(0.012, n)) * 1000).astype(np.int64)
    prefill_ms = np.maximum(1, np.round(prefill_s * 1000)).astype(np.int64)
    ttft_ms = queue_ms + prefill_ms + rng.integers(1, 8, n)
    decode_ms = np.round((work.output_tokens - 1) / stream_tps * 1000).astype(np.int64)
    net_ms = rng.integers(2, 25, n)
    return _Timings(queue_ms, prefill_ms, ttft_ms, decode_ms, net_ms, ttft_ms + decode_ms + net_ms)


def _replica_group_phases(g: ReplicaGroup, minute: np.ndarray, prefill_s: np.ndarray, output_tokens: np.ndarray,
                          jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-stream decode speed and queue wait (s) of one model's requests on a node, per minute
    as a fluid: the requests in flight are the minute's work / 60 s, spread over the replicas
    (the batch), capped at their slots; work beyond the slots waits (Lindley's recursion)."""
    slots = g.replicas * g.max_batch
    stream = g.curve.stream_speed(1.0) / jitter
    for _ in range(4):  # the per-stream speed depends on the batch, the batch on the speed
        service_s = prefill_s + (output_tokens - 1) / stream
        in_flight = np.bincount(minute, weights=service_s, minlength=MINUTES) / 60.0
        stream = g.curve.stream_speed(np.minimum(in_flight, slots) / g.replicas)[minute] / jitter
    service_s = prefill_s + (output_tokens - 1) / stream
    excess = np.bincount(minute, weights=service_s, minlength=MINUTES) - slots * 60.0
    total = np.cumsum(excess)
    backlog = total - np.minimum(0.0, np.minimum.accumulate(total))
    wait_s = np.concatenate([[0.0], backlog[:-1]])[minute] / slots
    return stream, wait_s


def _endings(spec: FleetSpec, tier: np.ndarray, work: _Workload, t: _Timings,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """How each request ended: ok, an error before the first token, a client cancel part-way
    through the answer, or a timeout at the tier's gateway limit. Cuts the tokens and phases of
    those that did not end well (`work` and `t`, in place); returns status and error type."""
    n = len(tier)
    # Precedence: past the tier's limit it is a timeout (the gateway closes), else an error
    # before the first token, else a client cancel part-way through the answer.
    status = np.zeros(n, dtype=np.int8)
    error_type = np.full(n, -1, dtype=np.int8)
    u = rng.random(n)
    timeout_ms = (np.array([x.timeout_s for x in spec.tiers]) * 1000).astype(np.int64)[tier]
    stall = rng.random(n) < 0.0008  # a stream that hangs until the gateway gives up
    e2e_ms = np.where(stall, np.maximum(t.e2e_ms, timeout_ms), t.e2e_ms)
    to = e2e_ms >= timeout_ms
    p_error = np.array([0.002 if x.id == "premium" else 0.004 for x in spec.tiers])[tier]
    p_cancel = 0.006 + 0.05 * (t.queue_ms > 5000)  # people give up on long waits
    err = ~to & (u < p_error)
    cancel = ~to & ~err & (u < p_error + p_cancel)

    status[err] = STATUS_ERROR
    error_type[err] = rng.choice(len(ERROR_TYPES), size=int(err.sum()), p=[0.6, 0.25, 0.15])
    part = np.round(t.prefill_ms * rng.uniform(0, 1, n)).astype(np.int64)
    prefill_ms = np.where(err, part, t.prefill_ms)
    output_tokens = np.where(err, 0, work.output_tokens)
    decode_ms = np.where(err, 0, t.decode_ms)
    e2e_ms = np.where(err, t.queue_ms + part + t.net_ms, e2e_ms)

    status[cancel] = STATUS_CANCELLED
    kept = rng.uniform(0.0, 0.9, n)
    output_tokens = np.where(cancel, np.floor(output_tokens * kept), output_tokens).astype(np.int64)
    decode_ms = np.where(cancel, np.round(decode_ms * kept).astype(np.int64), decode_ms)
    e2e_ms = np.where(cancel, t.ttft_ms + decode_ms + t.net_ms, e2e_ms)

    # Timeouts end at the limit; the tokens generated by then were sent.
    status[to] = STATUS_TIMEOUT
    ttft_ms = t.ttft_ms
    reached = ttft_ms < timeout_ms
    decode_room = np.maximum(0, timeout_ms - ttft_ms)
    produced = np.floor(output_tokens * np.minimum(1.0, decode_room / np.maximum(decode_ms, 1)))
    work.output_tokens = np.where(to, np.where(reached, produced, 0), output_tokens).astype(np.int64)
    t.queue_ms = np.where(to, np.minimum(t.queue_ms, timeout_ms), t.queue_ms)
    t.prefill_ms = np.where(to, np.minimum(prefill_ms, timeout_ms - t.queue_ms), prefill_ms)
    t.decode_ms = np.where(to, np.where(reached, decode_room, 0), decode_ms)
    t.e2e_ms = np.where(to, timeout_ms, e2e_ms)
    no_token = err | ((cancel | to) & (work.output_tokens == 0)) | (to & ~reached)
    t.ttft_ms = np.where(no_token, -1, ttft_ms)
    return status, error_type


def _empty(node: Node) -> NodeRequests:
    i64, i8 = np.zeros(0, np.int64), np.zeros(0, np.int8)
    return NodeRequests(node, i64, i64, i8, i8, np.zeros(0, np.int16), i8, i64, i64, i64, i64, i64, i64, i64,
                        i64, i64, i8, i8)
