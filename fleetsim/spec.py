"""The demo fleet: sites, pools, tiers and models, and how the fleet grows with traffic.

`FleetSpec` is plain data with realistic defaults. `Fleet` is the spec sized for a number of
requests per day: node counts per pool (a pool adds a node per `requests_per_node_day` of its
traffic, never fewer than `min_nodes`), the inventory (a dict ready for YAML, validated by
`transforms.inventory`) and the nodes' static properties. Nothing here draws random numbers:
the inventory depends on the spec and the request count only, never on the seed or the day.
"""

import math
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class SiteSpec:
    id: str
    kind: str  # metro | remote | cloud
    cooling: str  # liquid | air | provider
    design_pue: float
    timezone: str
    tariff: str | None
    pue_swing: float  # half-range of the hourly PUE around design, with outdoor temperature
    traffic_timezone: str  # zone of the users whose day shapes the site's traffic


@dataclass(frozen=True)
class PoolSpec:
    id: str
    site: str
    gpu_model: str  # inventory gpu_model
    dcgm_model_name: str  # DCGM `modelName` label
    node_prefix: str  # node ids are <prefix>-01, -02, ...
    tiers: tuple[str, ...]
    gpus: int
    gpu_tdp_w: float
    gpu_idle_frac: float  # GPU power at zero load / TDP
    gpu_max_frac: float  # GPU power at full batch / TDP
    host_idle_w: float  # CPUs, memory, fans, NICs at idle (whole node)
    host_dynamic_w: float  # extra host power at full load
    nameplate_w: float
    reserved_kw: float  # colocation reservation per node (metro only)
    node_meter: str | None  # redfish | ipmi | None (rented: DCGM only)
    requests_per_node_day: int  # the pool adds a node per this many requests a day
    min_nodes: int
    layout: dict[str, tuple[int, int]]  # model -> (GPUs per replica, replicas) on each node (profiles.py)
    models: dict[str, float]  # model -> share of the pool's requests
    server_cost: float | None  # purchase price of a node (owned pools), reporting currency
    hourly_price: float | None = None  # cloud on-demand price per node-hour
    cloud_instance_type: str | None = None

    @property
    def idle_w(self) -> float:
        return self.gpus * self.gpu_tdp_w * self.gpu_idle_frac + self.host_idle_w


@dataclass(frozen=True)
class TierSpec:
    id: str
    share: float  # share of all requests
    routing: dict[str, float]  # pool -> share of the tier's requests
    ttft_p95_s: float
    e2e_p95_s: float
    price_in: float  # list price per million input tokens
    price_out: float  # per million output tokens
    idle_policy: str
    reserved_pools: tuple[str, ...]
    input_median: float  # prompt tokens, lognormal median
    input_sigma: float
    output_median: float
    output_sigma: float
    timeout_s: float  # the gateway gives up after this
    night_floor: float  # traffic at the quietest hour / at the busiest
    peak_hour: float  # local hour of the busiest traffic
    peak_width_h: float
    bursts: int  # traffic bursts per node and day (batch jobs, retry storms, launches)
    burst_share: float  # share of the node's requests of the tier arriving in bursts
    burst_minutes: tuple[int, int]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    params_b: float
    output_factor: float = 1.0  # reasoning models write longer answers


# Per (GPU model, served model): prefill speed of a replica (prompt tokens/s), orders of
# magnitude from public vLLM benchmarks. Decode speed and power come from the performance
# profiles (profiles.csv, profiles.py).
PREFILL_TPS: dict[tuple[str, str], float] = {
    ("H200", "llama-3.1-8b-instruct"): 26000,
    ("H200", "llama-3.1-70b-instruct"): 6500,
    ("H200", "qwen3-32b"): 11000,
    ("H200", "gpt-oss-120b"): 12000,
    ("L40S", "llama-3.1-8b-instruct"): 9000,
    ("L40S", "deepseek-r1-distill-qwen-14b"): 5200,
    ("H100", "llama-3.1-8b-instruct"): 22000,
    ("H100", "llama-3.1-70b-instruct"): 5400,
}

SITES = (
    SiteSpec("metro-east", "metro", "liquid", 1.15, "America/New_York", "nyiso-zone-j", 0.03, "America/New_York"),
    SiteSpec("remote-plains", "remote", "air", 1.45, "America/Chicago", "plains-tou", 0.09, "America/Chicago"),
    # A cloud region bills energy inside the instance price; its users are on the east coast.
    SiteSpec("cloud-use1", "cloud", "provider", 1.2, "UTC", None, 0.0, "America/New_York"),
)

# Node counts grow with traffic: `requests_per_node_day` is what one node serves with its diurnal
# peak hour at ~70% of its capacity at the tier objectives (premium: ~55%, kept warm with ~2x
# headroom), from the profiles; tests/test_fleetsim_capacity.py checks it on the demo day.
POOLS = (
    PoolSpec("premium-h200", "metro-east", "H200", "NVIDIA H200", "m-h200", ("premium",), 8, 700, 0.17, 0.93,
             448, 900, 10200, 10.2, "redfish", 145_000, 2,
             {"llama-3.1-70b-instruct": (2, 4)}, {"llama-3.1-70b-instruct": 1.0},
             server_cost=298_000),
    PoolSpec("standard-l40s", "remote-plains", "L40S", "NVIDIA L40S", "r-l40s-std", ("standard",), 4, 350, 0.17, 0.92,
             182, 260, 2400, 0.0, "ipmi", 150_000, 2,
             {"llama-3.1-8b-instruct": (1, 4)}, {"llama-3.1-8b-instruct": 1.0},
             server_cost=61_500),
    PoolSpec("batch-l40s", "remote-plains", "L40S", "NVIDIA L40S", "r-l40s-bat", ("batch",), 4, 350, 0.17, 0.92,
             182, 260, 2400, 0.0, "ipmi", 25_000, 1,
             {"deepseek-r1-distill-qwen-14b": (1, 4)}, {"deepseek-r1-distill-qwen-14b": 1.0},
             server_cost=58_900),
    PoolSpec("cloud-h100", "cloud-use1", "H100", "NVIDIA H100 80GB HBM3", "c-h100", ("premium", "standard"), 8, 700,
             0.16, 0.92, 400, 850, 10200, 0.0, None, 210_000, 1,
             {"llama-3.1-70b-instruct": (4, 2)}, {"llama-3.1-70b-instruct": 1.0},
             server_cost=None, hourly_price=55.04, cloud_instance_type="p5.48xlarge"),
)

# List prices per million tokens near public ones (Llama-3.1-8B ~0.18-0.20 $/M, 70B ~0.88-0.90 $/M,
# gpt-oss-120b 0.15/0.60 at Together and Fireworks, late 2025): standard between the 8B and the
# 70B it mixes, batch half of that, premium a real-time markup over the 70B-class price.
TIERS = (
    TierSpec("premium", 0.40, {"premium-h200": 0.88, "cloud-h100": 0.12}, 1.0, 20, 1.20, 3.60, "reserved",
             ("premium-h200",),
             input_median=900, input_sigma=0.9, output_median=220, output_sigma=0.75, timeout_s=60,
             night_floor=0.30, peak_hour=13.0, peak_width_h=4.5, bursts=1, burst_share=0.01, burst_minutes=(5, 12)),
    TierSpec("standard", 0.57, {"standard-l40s": 0.64, "cloud-h100": 0.36}, 2.0, 40, 0.30, 0.90, "pro_rata", (),
             input_median=1200, input_sigma=1.0, output_median=300, output_sigma=0.8, timeout_s=120,
             night_floor=0.10, peak_hour=15.0, peak_width_h=4.0, bursts=2, burst_share=0.015, burst_minutes=(8, 20)),
    TierSpec("batch", 0.03, {"batch-l40s": 1.0}, 60, 3600, 0.10, 0.30, "pro_rata", (),
             input_median=2600, input_sigma=0.8, output_median=480, output_sigma=0.7, timeout_s=3600,
             night_floor=0.04, peak_hour=11.0, peak_width_h=3.5, bursts=4, burst_share=0.10, burst_minutes=(30, 90)),
)

MODELS = (
    ModelSpec("llama-3.1-8b-instruct", 8),
    ModelSpec("llama-3.1-70b-instruct", 70),
    ModelSpec("qwen3-32b", 32),
    ModelSpec("mixtral-8x7b-instruct", 46.7),
    ModelSpec("deepseek-r1-distill-qwen-14b", 14, output_factor=3.0),
    ModelSpec("gpt-oss-120b", 117),
)

_TENANT_NAMES = ("acme northwind contoso globex initech umbrella stark wayne hooli vandelay soylent tyrell "
                 "cyberdyne wonka oscorp aperture monarch dunder pied-piper massive").split()
_TENANT_TRADES = ("health", "bank", "insure", "legal", "retail", "media", "travel", "edu", "labs", "gov")
# Trades whose tenants buy the premium (real-time) tier.
PREMIUM_TRADES = frozenset({"health", "bank", "insure", "legal"})


@dataclass(frozen=True)
class FleetSpec:
    """The simulated fleet. Defaults: the demo fleet of docs/raw-formats.md's examples."""

    sites: tuple[SiteSpec, ...] = SITES
    pools: tuple[PoolSpec, ...] = POOLS
    tiers: tuple[TierSpec, ...] = TIERS
    models: tuple[ModelSpec, ...] = MODELS
    tenants: int = 60
    zipf_s: float = 1.1  # tenant size ~ 1 / rank^s
    dcgm_interval_s: int = 30
    bmc_interval_s: int = 60  # IPMI sdr dumps and Redfish polls
    facility_interval_min: int = 15
    currency: str = "USD"
    valid_from: date = date(2020, 1, 1)
    colocation_price_kw_month: float = 184.0
    cabinet_price_month: float = 1850.0
    cross_connects: int = 2
    cross_connect_price: float = 350.0
    demand_rate_kw: float = 12.5
    customer_charge: float = 450.0
    energy_tax_rate: float = 0.0625
    egress_price_gb: float = 0.09
    commitment_discount: float = 0.40  # effective price cut of the committed cloud node
    useful_life_months: int = 60
    expansion_day: date | None = None  # the node entering service; None: the simulated day

    def pool(self, pool_id: str) -> PoolSpec:
        return next(p for p in self.pools if p.id == pool_id)

    def site(self, site_id: str) -> SiteSpec:
        return next(s for s in self.sites if s.id == site_id)

    def tenant_ids(self) -> list[str]:
        names = [f"{n}-{t}" for t in _TENANT_TRADES for n in _TENANT_NAMES]
        # Interleave trades so the first tenants (the largest) are of every trade.
        order = sorted(range(len(names)), key=lambda i: (i % len(_TENANT_NAMES), i // len(_TENANT_NAMES)))
        return [names[i] for i in order][: self.tenants]

    def pool_requests(self, requests: int) -> dict[str, int]:
        """Requests per pool, summing exactly to `requests`."""
        raw = {p.id: 0.0 for p in self.pools}
        for t in self.tiers:
            for pool, share in t.routing.items():
                raw[pool] += requests * t.share * share
        return largest_remainder(raw, requests)

    def node_counts(self, requests: int) -> dict[str, int]:
        """Nodes per pool for `requests` a day: one per `requests_per_node_day`, at least `min_nodes`."""
        return {p.id: max(p.min_nodes, math.ceil(n / p.requests_per_node_day))
                for p, n in zip(self.pools, self.pool_requests(requests).values(), strict=True)}


def largest_remainder(raw: dict[str, float], total: int) -> dict[str, int]:
    """Integers proportional to `raw`, summing exactly to `total`."""
    scale = total / sum(raw.values()) if sum(raw.values()) else 0.0
    exact = {k: v * scale for k, v in raw.items()}
    out = {k: int(math.floor(v)) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (out[k] - exact[k], k))[: total - sum(out.values())]:
        out[k] += 1
    return out


@dataclass(frozen=True)
class Node:
    id: str
    index: int  # fleet-wide, stable for a given spec and size
    pool: PoolSpec
    site: SiteSpec
    number: int  # 1-based within the pool
    cloud_resource_id: str | None = None

    @property
    def owned(self) -> bool:
        return self.site.kind != "cloud"


@dataclass
class Fleet:
    """A FleetSpec sized for a number of requests a day."""

    spec: FleetSpec
    requests: int
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def build(cls, spec: FleetSpec, requests: int) -> "Fleet":
        fleet = cls(spec, requests)
        counts = spec.node_counts(requests)
        for pool in spec.pools:
            width = max(2, len(str(counts[pool.id])))
            for k in range(1, counts[pool.id] + 1):
                rid = f"i-0c1a0d{k:010x}" if spec.site(pool.site).kind == "cloud" else None
                fleet.nodes.append(Node(f"{pool.node_prefix}-{k:0{width}d}", len(fleet.nodes), pool,
                                        spec.site(pool.site), k, rid))
        return fleet

    def pool_nodes(self, pool_id: str) -> list[Node]:
        return [n for n in self.nodes if n.pool.id == pool_id]

    def site_nodes(self, site_id: str) -> list[Node]:
        return [n for n in self.nodes if n.site.id == site_id]

    def inventory(self) -> dict:
        """The inventory as a dict in the order of docs/inventory.md."""
        s = self.spec
        meters = []
        for n in self.nodes:
            if n.pool.node_meter == "redfish":
                meters.append({"id": f"{n.id}/bmc", "scope": "node", "site": n.site.id, "source": "redfish",
                               "node": n.id, "sensor": "TotalPower"})
            elif n.pool.node_meter == "ipmi":
                meters.append({"id": f"{n.id}/bmc", "scope": "node", "site": n.site.id, "source": "ipmi",
                               "node": n.id, "sensor": "Sys Power"})
        meters += [{"id": f"{x.id}/facility", "scope": "facility", "site": x.id, "source": "facility_csv"}
                   for x in s.sites if x.kind == "metro"]
        nodes = []
        for n in self.nodes:
            p = n.pool
            d = {"id": n.id, "pool": p.id, "gpus": p.gpus, "gpu_tdp_w": p.gpu_tdp_w, "idle_w": round(p.idle_w),
                 "nameplate_w": p.nameplate_w}
            if p.reserved_kw:
                d["reserved_kw"] = p.reserved_kw
            if n.cloud_resource_id:
                d["cloud_resource_id"] = n.cloud_resource_id
            nodes.append(d)
        return {
            "version": 1,
            "currency": s.currency,
            "valid_from": s.valid_from,
            "sites": [{"id": x.id, "kind": x.kind, "cooling": x.cooling, "design_pue": x.design_pue,
                       "timezone": x.timezone, **({"tariff": x.tariff} if x.tariff else {})} for x in s.sites],
            "pools": [{"id": p.id, "site": p.site, "gpu_model": p.gpu_model, "tiers": list(p.tiers)} for p in s.pools],
            "nodes": nodes,
            "meters": meters,
            "tariffs": [
                {"id": "nyiso-zone-j", "kind": "market", "currency": s.currency,
                 "market_price_file": "prices/nyiso-zone-j.csv", "adder_per_kwh": 0.045},
                {"id": "plains-tou", "kind": "time_of_use", "currency": s.currency, "periods": [
                    {"name": name, "days": days, "start": a, "end": b, "price_per_kwh": price}
                    for name, days, a, b, price in TOU_PERIODS]},
            ],
            "tiers": [{"id": t.id, "ttft_p95_s": t.ttft_p95_s, "e2e_p95_s": t.e2e_p95_s,
                       "price_per_m_input_tokens": t.price_in, "price_per_m_output_tokens": t.price_out,
                       "idle_policy": t.idle_policy,
                       **({"reserved_pools": list(t.reserved_pools)} if t.reserved_pools else {})}
                      for t in s.tiers],
            "models": [{"id": m.id, "params_b": m.params_b} for m in s.models],
        }


# The remote site's time-of-use tariff (local time): the invoice bills these rates.
TOU_PERIODS = (
    ("on_peak", "weekdays", "14:00", "20:00", 0.14),
    ("off_peak", "weekdays", "00:00", "14:00", 0.065),
    ("off_peak", "weekdays", "20:00", "24:00", 0.065),
    ("off_peak", "weekends", "00:00", "24:00", 0.065),
)
