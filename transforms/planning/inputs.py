"""The planner's inputs (docs/planning.md, "Inputs"): tiers, pools, sites and four frames.

Pure data: the caller (the warehouse, later) reads them from the marts; tests build them by hand.
Every frame has an explicit schema below; `PlanInputs.check()` names the first thing wrong with
them (which frame, which key, and what to do) before any model is built.
"""

from dataclasses import dataclass, field, replace

import polars as pl

from transforms.contracts import UTC_US

# Demand: the mean output tokens per second of one hour (hour start, UTC) for a tier, a model and
# a request-size bucket (the bucket carries the input/output mix: the capacity profiles are
# measured per bucket).
DEMAND_SCHEMA = pl.Schema({"hour": UTC_US, "tier": pl.String, "model": pl.String, "bucket": pl.String,
                           "output_tokens_per_s": pl.Float64})
# Capacity of ONE node of a pool for a model and bucket at an operating point: the point's p95
# time to first token and end to end latency measured at the node (no network), and the output
# tokens per second the node sustains there. A few points per (pool, model, bucket): a tighter
# objective allows a lower throughput. A point with null latencies says the capacity at any objective
# is unknown: never planned on (`capacity_unknown`), its throughput only prices actual routing there.
CAPACITY_SCHEMA = pl.Schema({"pool": pl.String, "model": pl.String, "bucket": pl.String, "ttft_p95_s": pl.Float64,
                             "e2e_p95_s": pl.Float64, "output_tokens_per_s": pl.Float64})
# Network round trip from a site to a tier's users (ms), added to both latencies.
ROUND_TRIP_SCHEMA = pl.Schema({"site": pl.String, "users": pl.String, "rtt_ms": pl.Float64})
# The energy price of a site for each hour of the window (reporting currency per kWh).
PRICE_SCHEMA = pl.Schema({"site": pl.String, "hour": UTC_US, "price_per_kwh": pl.Float64})

HORIZONS = ("day", "fleet")


class PlanInputError(ValueError):
    """The inputs cannot make a plan: the message names the frame, the key and the fix."""


@dataclass(frozen=True)
class Tier:
    """A service tier: its p95 objectives (s) and where its users are (a `users` of the round trips)."""

    name: str
    ttft_p95_s: float
    e2e_p95_s: float
    users: str


@dataclass(frozen=True)
class Pool:
    """Nodes of one GPU model at one site, alike in cost and capacity.

    `idle_w` and `full_w`: one node's IT power (W) kept on with no load and at full load; power is
    linear in between (the node-equivalents busy). `pue`: the site's cooling overhead for this
    pool (liquid vs air). `rent_per_node_hour`: paid for every node-hour kept on (0 for owned).
    `amortization_per_node_hour`: capex / life hours, counted only in the fleet horizon (sunk
    within a day). `egress_per_gb` x `response_bytes_per_token` prices the responses' bytes.
    `nodes_available`: the nodes there (day horizon) or the most that may be bought or rented
    (fleet horizon). `redundancy_min`: nodes always kept on (in the fleet horizon, once the pool
    has any node)."""

    name: str
    site: str
    gpu_model: str
    nodes_available: int
    idle_w: float
    full_w: float
    pue: float
    rent_per_node_hour: float = 0.0
    amortization_per_node_hour: float = 0.0
    egress_per_gb: float = 0.0
    response_bytes_per_token: float = 0.0
    redundancy_min: int = 0


@dataclass(frozen=True)
class HardwareOption:
    """A candidate for the fleet horizon: `max_nodes` nodes of a GPU model at a site, bought
    (`capex` per node over `life_hours`) or rented (`hourly_price` per node-hour kept on), with
    its power, cooling (`pue`) and capacity profile (rows of the capacity frame under `name`)."""

    name: str
    site: str
    gpu_model: str
    max_nodes: int
    idle_w: float
    full_w: float
    pue: float
    capex: float = 0.0
    life_hours: float = 5 * 8760.0
    hourly_price: float = 0.0
    egress_per_gb: float = 0.0
    response_bytes_per_token: float = 0.0
    redundancy_min: int = 0

    def as_pool(self) -> Pool:
        return Pool(self.name, self.site, self.gpu_model, self.max_nodes, self.idle_w, self.full_w, self.pue,
                    rent_per_node_hour=self.hourly_price,
                    amortization_per_node_hour=self.capex / self.life_hours if self.capex else 0.0,
                    egress_per_gb=self.egress_per_gb, response_bytes_per_token=self.response_bytes_per_token,
                    redundancy_min=self.redundancy_min)


@dataclass(frozen=True)
class Site:
    """A site and its power cap: facility kW (IT kW x PUE) its pools may draw together; None: no cap."""

    name: str
    power_cap_kw: float | None = None


@dataclass(frozen=True)
class PlanInputs:
    """Everything one plan needs. `routing_allowed` (what-ifs): (tier, pools) restricting the
    pools a tier may be routed to; `growth`: the demand factor of the fleet horizon."""

    demand: pl.LazyFrame
    tiers: tuple[Tier, ...]
    pools: tuple[Pool, ...]
    sites: tuple[Site, ...]
    capacity: pl.LazyFrame
    round_trips: pl.LazyFrame
    prices: pl.LazyFrame
    horizon: str = "day"
    growth: float = 1.0
    routing_allowed: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def with_(self, **changes) -> "PlanInputs":
        return replace(self, **changes)

    def check(self) -> "PlanInputs":
        """The inputs, or a `PlanInputError` naming the first problem."""
        if self.horizon not in HORIZONS:
            raise PlanInputError(f"horizon {self.horizon!r}: use one of {', '.join(HORIZONS)}")
        for name, frame, schema in (("demand", self.demand, DEMAND_SCHEMA),
                                    ("capacity", self.capacity, CAPACITY_SCHEMA),
                                    ("round_trips", self.round_trips, ROUND_TRIP_SCHEMA),
                                    ("prices", self.prices, PRICE_SCHEMA)):
            got = frame.collect_schema()
            if dict(got) != dict(schema):
                raise PlanInputError(f"{name} frame has columns {dict(got)}; expected {dict(schema)} "
                                     f"(transforms/planning/inputs.py, {name.upper()} schema)")
        _unique("tier", [t.name for t in self.tiers])
        _unique("pool", [p.name for p in self.pools])
        _unique("site", [s.name for s in self.sites])
        sites = {s.name for s in self.sites}
        for p in self.pools:
            if p.site not in sites:
                raise PlanInputError(f"pool {p.name!r}: site {p.site!r} is not among the sites {sorted(sites)}; "
                                     "declare it as a Site")
            if not 0 <= p.redundancy_min <= p.nodes_available:
                raise PlanInputError(f"pool {p.name!r}: redundancy minimum {p.redundancy_min} is not within 0.."
                                     f"{p.nodes_available} nodes available; lower the minimum or add nodes")
            if p.idle_w < 0 or p.full_w < p.idle_w or p.pue < 1:
                raise PlanInputError(f"pool {p.name!r}: power idle {p.idle_w} W, full {p.full_w} W, PUE {p.pue}: "
                                     "need 0 <= idle <= full and PUE >= 1")
        if self.growth <= 0:
            raise PlanInputError(f"growth factor {self.growth}: must be > 0")
        _check_frames(self)
        return self


def _unique(kind: str, names: list[str]) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise PlanInputError(f"{kind} names repeat: {sorted(seen)}; each {kind} is declared once")


def _first(frame: pl.LazyFrame, problem: pl.Expr) -> dict | None:
    rows = frame.filter(problem).head(1).collect().to_dicts()
    return rows[0] if rows else None


def _check_frames(inputs: PlanInputs) -> None:
    """Keys unique, numbers in range, every name known, a price for every site and demand hour."""
    tiers = pl.LazyFrame({"tier": [t.name for t in inputs.tiers]}, schema={"tier": pl.String})
    pools = pl.LazyFrame({"pool": [p.name for p in inputs.pools], "site": [p.site for p in inputs.pools]},
                         schema={"pool": pl.String, "site": pl.String})
    checks = (
        ("demand", inputs.demand, pl.struct("hour", "tier", "model", "bucket").is_duplicated(),
         "a repeated (hour, tier, model, bucket): sum the rows first"),
        ("demand", inputs.demand, ~(pl.col("output_tokens_per_s") >= 0) | pl.any_horizontal(pl.all().is_null()),
         "output_tokens_per_s must be >= 0 and no value null"),
        ("demand", inputs.demand.join(tiers, on="tier", how="anti"), pl.lit(True),
         "its tier is not among the tiers; declare the Tier"),
        ("capacity", inputs.capacity.join(pools, on="pool", how="anti"), pl.lit(True),
         "its pool is not among the pools; declare the Pool or drop the rows"),
        ("capacity", inputs.capacity, ~(pl.col("output_tokens_per_s") > 0).fill_null(False)
         | ~(pl.col("ttft_p95_s") >= 0) | ~(pl.col("e2e_p95_s") >= pl.col("ttft_p95_s"))
         | (pl.col("ttft_p95_s").is_null() != pl.col("e2e_p95_s").is_null()),
         "need output_tokens_per_s > 0 and 0 <= ttft_p95_s <= e2e_p95_s (both null: capacity unknown)"),
        ("round_trips", inputs.round_trips, ~(pl.col("rtt_ms") >= 0) | pl.struct("site", "users").is_duplicated(),
         "need rtt_ms >= 0, one row per (site, users)"),
        ("prices", inputs.prices, pl.struct("site", "hour").is_duplicated() | ~(pl.col("price_per_kwh") >= 0),
         "need one price >= 0 per (site, hour)"),
        ("prices", inputs.demand.select("hour").unique().join(pools.select("site").unique(), how="cross")
         .join(inputs.prices, on=["site", "hour"], how="anti"), pl.lit(True),
         "no energy price for this site and demand hour; add it to the prices frame"),
    )
    for name, frame, problem, fix in checks:
        row = _first(frame, problem)
        if row is not None:
            raise PlanInputError(f"{name} frame, row {row}: {fix}")
    users = pl.LazyFrame({"users": sorted({t.users for t in inputs.tiers})}, schema={"users": pl.String})
    missing = _first(pools.select("site").unique().join(users, how="cross")
                     .join(inputs.round_trips, on=["site", "users"], how="anti").sort("site", "users"), pl.lit(True))
    if missing is not None:
        raise PlanInputError(f"round_trips frame: no round trip for site {missing['site']!r} to users "
                             f"{missing['users']!r}; add the row (rtt_ms)")
