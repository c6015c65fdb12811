"""Inventory and rate cards: sites, pools, nodes, meters, tariffs, tiers and models.

One YAML document (`parse_inventory`; `lake.inventory` reads the file), validated as it is
parsed. Every mistake is reported at once, each with its
place in the file (`nodes[3].pool`) and what to do, so an operator fixes the file in
one pass. Frames of the inventory (`nodes_frame`, `meters_frame`) feed the ingest
joins (node -> site/pool, meter -> scope).
"""

from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms.bounds import (MAX_ENERGY_PRICE_PER_KWH, MAX_LATENCY_S, MAX_MODEL_PARAMS_B, MAX_NODE_W,
                               MAX_PRICE_PER_M_TOKENS, NAMEPLATE_MULTIPLE)
from transforms.price_formats import price_format_problems, shared_price_file_problems


class InventoryError(ValueError):
    """The inventory file is invalid; the message lists every problem found."""


class _Strict(BaseModel):
    # NaN and +/-Inf (YAML `.nan`, `.inf`) are refused in every number: no cost survives them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Site(_Strict):
    id: str
    kind: Literal["metro", "remote", "cloud"]
    cooling: Literal["liquid", "air", "provider"]
    design_pue: float = Field(ge=1.0, le=3.0, description="Facility energy / IT energy when no facility meter exists.")
    timezone: str
    tariff: str | None = Field(None, description="Tariff id pricing this site's energy; "
                                                 "null for cloud sites (energy is in the bill).")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r} (use e.g. 'America/New_York' or 'UTC')") from None
        return v


class Pool(_Strict):
    id: str
    site: str
    gpu_model: str
    tiers: list[str] = Field(description="Tiers this pool serves.")
    # Capacity planning (docs/capacity.md): nodes needed = max(redundancy minimum, ceil(demand / (capacity per node
    # x (1 - safety margin)))).
    safety_margin: float = Field(0.2, ge=0, lt=1, description="Share of a node's capacity kept as headroom.")
    redundancy_min_nodes: int = Field(1, ge=0, le=10_000, description="Nodes the pool keeps on whatever the load.")
    capacity_min_samples: int = Field(30, ge=1, le=1_000_000, description="Node-minutes a load bucket needs before "
                                      "its latency decides the pool's capacity.")
    gpus_per_replica: int | None = Field(None, ge=1, le=64, description="GPUs one model replica runs on (default: "
                                         "the smallest of the matching performance profiles' that fits a node).")


class Node(_Strict):
    id: str
    pool: str | None = Field(None, description="Pool of a serving node; an infrastructure node may have none.")
    site: str | None = Field(None, description="Site of an infrastructure node without a pool (else its pool's).")
    gpus: int = Field(ge=0, le=64)
    gpu_tdp_w: float | None = Field(None, gt=0, le=MAX_NODE_W, description="Nameplate power of one GPU, W.")
    role: Literal["serving", "infrastructure"] | None = Field(
        None, description="infrastructure (routers, gateways, CPU servers: run no request) by default for 0 GPUs.")
    serves: list[str] = Field([], description="Pools an infrastructure node serves (default: its site's GPU pools).")
    idle_w: float = Field(ge=0, le=MAX_NODE_W,
                          description="Node power when idle (whole node), W; used to estimate long meter gaps.")
    nameplate_w: float = Field(gt=0, le=MAX_NODE_W, description="Node nameplate power (whole node), W.")
    reserved_kw: float = Field(0.0, ge=0, le=MAX_NODE_W / 1000,
                               description="Power reserved for the node in its colocation contract, kW.")
    cloud_resource_id: str | None = Field(None, description="FOCUS ResourceId of a rented node.")
    gpu_telemetry: Literal["dcgm", "none"] = "dcgm"

    @property
    def infrastructure(self) -> bool:
        """Runs no request: its costs are spread over the pools it serves (docs/attribution.md)."""
        return self.role == "infrastructure" or (self.role is None and self.gpus == 0)


class Meter(_Strict):
    id: str
    scope: Literal["node", "pdu", "facility"]
    site: str
    source: Literal["ipmi", "redfish", "facility_csv", "canonical"]
    node: str | None = None
    sensor: str | None = Field(None, description="IPMI sensor name or Redfish sensor Id read as node power.")

    @model_validator(mode="after")
    def _node_scope_has_node(self):
        if self.scope == "node" and not self.node:
            raise ValueError("a meter of scope 'node' needs `node:` (the node it measures)")
        return self


class TouPeriod(_Strict):
    name: str
    days: Literal["weekdays", "weekends", "all"] = "all"
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local start time HH:MM (inclusive).")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$",
                     description="Local end time HH:MM (exclusive); 24:00 for midnight.")
    price_per_kwh: float = Field(ge=-MAX_ENERGY_PRICE_PER_KWH, le=MAX_ENERGY_PRICE_PER_KWH)


class PriceColumns(_Strict):
    hour: str = Field(min_length=1, description="Column holding the start of the hour.")
    price: str = Field(min_length=1, description="Column holding the price.")


class Tariff(_Strict):
    id: str
    kind: Literal["time_of_use", "market"]
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    periods: list[TouPeriod] = []
    market_price_file: str | None = Field(None, description="Hourly price CSV, relative to the raw directory.")
    market_price_format: Literal["canonical", "energinet_elspot", "hourly_csv"] = Field(
        "canonical", description="canonical (hour_utc, price_per_kwh), energinet_elspot or hourly_csv.")
    market_price_area: str | None = Field(None, pattern=r"^\S+$", description="energinet_elspot: the PriceArea read.")
    market_price_columns: PriceColumns | None = None
    market_price_separator: str | None = Field(None, min_length=1, max_length=1, pattern=r'^[^"\r\n]$')
    market_price_decimal: Literal[".", ","] | None = None
    market_price_unit: Literal["kWh", "MWh"] | None = None
    market_price_timezone: str | None = None
    adder_per_kwh: float = Field(0.0, ge=-MAX_ENERGY_PRICE_PER_KWH, le=MAX_ENERGY_PRICE_PER_KWH,
                                 description="Fixed adder on market prices (network fees, taxes), per kWh.")

    @model_validator(mode="after")
    def _shape(self):
        if self.kind == "time_of_use" and not self.periods:
            raise ValueError("a time_of_use tariff needs `periods:`")
        if self.kind == "market" and not self.market_price_file:
            raise ValueError("a market tariff needs `market_price_file:`")
        problems = price_format_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def price_separator(self) -> str:
        """The field separator of the price file: `;` for Energinet's export, else `,` unless named."""
        return ";" if self.market_price_format == "energinet_elspot" else (self.market_price_separator or ",")


class Tier(_Strict):
    id: str
    ttft_p95_s: float = Field(gt=0, le=MAX_LATENCY_S,
                              description="Latency objective: 95th percentile time to first token, s.")
    e2e_p95_s: float = Field(gt=0, le=MAX_LATENCY_S,
                             description="Latency objective: 95th percentile end-to-end latency, s.")
    price_per_m_input_tokens: float = Field(ge=0, le=MAX_PRICE_PER_M_TOKENS)
    price_per_m_output_tokens: float = Field(ge=0, le=MAX_PRICE_PER_M_TOKENS)
    idle_policy: Literal["pro_rata", "reserved"]
    reserved_pools: list[str] = []


class Model(_Strict):
    id: str
    params_b: float = Field(gt=0, le=MAX_MODEL_PARAMS_B, description="Parameters, billions.")


# The frame `Inventory.meter_power_limits` returns.
METER_LIMITS_SCHEMA = {"meter_id": pl.String, "scope": pl.String, "power_limit_w": pl.Float64, "idle_w": pl.Float64}

class Inventory(_Strict):
    version: int = 1
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="Reporting currency (ISO 4217).")
    valid_from: date
    valid_to: date | None = None
    sites: list[Site]
    pools: list[Pool]
    nodes: list[Node]
    meters: list[Meter] = []
    tariffs: list[Tariff] = []
    tiers: list[Tier]
    models: list[Model]

    @model_validator(mode="after")
    def _references(self):
        problems: list[str] = []

        def unique(kind, items):
            seen = set()
            for i, it in enumerate(items):
                if it.id in seen:
                    problems.append(f"{kind}[{i}].id: duplicate id {it.id!r}; ids must be unique")
                seen.add(it.id)
            return seen

        sites, pools, nodes = unique("sites", self.sites), unique("pools", self.pools), unique("nodes", self.nodes)
        unique("meters", self.meters)
        tariffs, tiers = unique("tariffs", self.tariffs), unique("tiers", self.tiers)
        unique("models", self.models)

        def ref(where, value, known, kind):
            if value is not None and value not in known:
                problems.append(f"{where}: unknown {kind} {value!r}; known: {', '.join(sorted(known)) or 'none'}")

        for i, s in enumerate(self.sites):
            ref(f"sites[{i}].tariff", s.tariff, tariffs, "tariff")
            if s.kind != "cloud" and s.tariff is None:
                problems.append(f"sites[{i}].tariff: site {s.id!r} is not a cloud site and needs a tariff")
        for i, p in enumerate(self.pools):
            ref(f"pools[{i}].site", p.site, sites, "site")
            for t in p.tiers:
                ref(f"pools[{i}].tiers", t, tiers, "tier")
        for i, n in enumerate(self.nodes):
            ref(f"nodes[{i}].pool", n.pool, pools, "pool")
            ref(f"nodes[{i}].site", n.site, sites, "site")
            if n.gpus * (n.gpu_tdp_w or 0) > n.nameplate_w:
                problems.append(f"nodes[{i}].nameplate_w: {n.nameplate_w} W is below its GPUs' TDP "
                                f"({n.gpus} x {n.gpu_tdp_w} W)")
        problems += node_role_problems(self)
        for i, m in enumerate(self.meters):
            ref(f"meters[{i}].site", m.site, sites, "site")
            ref(f"meters[{i}].node", m.node, nodes, "node")
        problems += shared_price_file_problems(self.tariffs)
        for i, t in enumerate(self.tiers):
            for p in t.reserved_pools:
                ref(f"tiers[{i}].reserved_pools", p, pools, "pool")
        if self.valid_to is not None and self.valid_to < self.valid_from:
            problems.append("valid_to: earlier than valid_from")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- lookups ---------------------------------------------------------------
    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(f"site {site_id!r} is not in the inventory; known: {', '.join(self.site_ids)}")

    def sites_frame(self) -> pl.LazyFrame:
        """site_id, kind, cooling, design_pue (facility / IT energy), timezone (IANA), tariff."""
        cols = {"site_id": "id", "kind": "kind", "cooling": "cooling", "design_pue": "design_pue",
                "timezone": "timezone", "tariff": "tariff"}
        return pl.LazyFrame({c: [getattr(s, a) for s in self.sites] for c, a in cols.items()},
                            schema={c: pl.Float64 if c == "design_pue" else pl.String for c in cols})

    def node_site(self, node: Node) -> str:
        """The site of a node: its pool's, or (an infrastructure node without a pool) its own."""
        return next((p.site for p in self.pools if p.id == node.pool), node.site)

    def nodes_frame(self) -> pl.LazyFrame:
        """node_id, pool_id, site_id, gpus, gpu_tdp_w, idle_w, nameplate_w, reserved_kw, cloud_resource_id,
        role (serving, infrastructure). Infrastructure nodes have 0 GPUs or `role: infrastructure`
        and may have no pool (null pool_id and gpu_tdp_w)."""
        return pl.LazyFrame(
            {
                "node_id": [n.id for n in self.nodes],
                "pool_id": [n.pool for n in self.nodes],
                "site_id": [self.node_site(n) for n in self.nodes],
                "gpus": [n.gpus for n in self.nodes],
                "gpu_tdp_w": [n.gpu_tdp_w for n in self.nodes],
                "idle_w": [n.idle_w for n in self.nodes],
                "nameplate_w": [n.nameplate_w for n in self.nodes],
                "reserved_kw": [n.reserved_kw for n in self.nodes],
                "cloud_resource_id": [n.cloud_resource_id for n in self.nodes],
                "role": ["infrastructure" if n.infrastructure else "serving" for n in self.nodes],
            },
            schema_overrides={"gpus": pl.Int16, "cloud_resource_id": pl.String, "pool_id": pl.String,
                              "gpu_tdp_w": pl.Float64},
        )

    def served_pools(self) -> pl.LazyFrame:
        """`node_id, pool_id`: the pools each infrastructure node serves (`serves:`, default every
        pool of its site with a serving node)."""
        serving = {n.pool for n in self.nodes if not n.infrastructure}
        rows = [(n.id, p) for n in self.nodes if n.infrastructure
                for p in (n.serves or [p.id for p in self.pools if p.site == self.node_site(n) and p.id in serving])]
        return pl.LazyFrame(rows, schema={"node_id": pl.String, "pool_id": pl.String}, orient="row")

    def meters_frame(self) -> pl.LazyFrame:
        """meter_id, scope, site_id, node_id, gpu_index, source, sensor: declared meters plus one
        implicit GPU meter `<node>/gpu<i>` per GPU of every node with DCGM telemetry."""
        rows = [(m.id, m.scope, m.site, m.node, None, m.source, m.sensor) for m in self.meters]
        rows += [(f"{n.id}/gpu{i}", "gpu", self.node_site(n), n.id, i, "dcgm", None)
                 for n in self.nodes if n.gpu_telemetry == "dcgm" for i in range(n.gpus)]
        cols = ["meter_id", "scope", "site_id", "node_id", "gpu_index", "source", "sensor"]
        return pl.LazyFrame(rows, schema={c: (pl.Int16 if c == "gpu_index" else pl.String) for c in cols}, orient="row")

    def meter_power_limits(self) -> pl.LazyFrame:  # columns and types: METER_LIMITS_SCHEMA
        """`meter_id, scope, power_limit_w, idle_w` of every GPU and node meter: NAMEPLATE_MULTIPLE
        (transforms/bounds.py) x the GPU's TDP (gpu) or the node's nameplate (node), in W; the
        node's `idle_w` for a node meter (null for a GPU meter)."""
        nodes = self.nodes_frame().select("node_id", "gpu_tdp_w", "nameplate_w", "idle_w")
        limit = pl.when(pl.col("scope") == "gpu").then("gpu_tdp_w").otherwise("nameplate_w") * NAMEPLATE_MULTIPLE
        idle = pl.when(pl.col("scope") == "node").then("idle_w")
        return (self.meters_frame().filter(pl.col("scope").is_in(["gpu", "node"]))
                .select("meter_id", "scope", "node_id").join(nodes, on="node_id", how="left")
                .select("meter_id", "scope", limit.alias("power_limit_w"), idle.alias("idle_w")))

    @property
    def site_ids(self) -> list[str]:
        return [s.id for s in self.sites]

    @property
    def tier_ids(self) -> list[str]:
        return [t.id for t in self.tiers]


def node_role_problems(inv: Inventory) -> list[str]:
    """What is wrong with the nodes' roles: a serving node needs GPUs, their TDP and a pool; an
    infrastructure node a pool or a site, and pools to serve (of its site, with serving nodes)."""
    problems = []
    serving = {n.pool for n in inv.nodes if not n.infrastructure}
    pool_site = {p.id: p.site for p in inv.pools}
    for i, n in enumerate(inv.nodes):
        at = f"nodes[{i}]"
        if not n.infrastructure:
            if n.gpus == 0 or n.gpu_tdp_w is None or n.pool is None:
                problems.append(f"{at}: serving node {n.id!r} needs `pool:`, `gpus:` (1 or more) and `gpu_tdp_w:`; "
                                "a node that runs no request is `role: infrastructure` (docs/inventory.md)")
            if n.serves or n.site:
                problems.append(f"{at}: `serves:` and `site:` are for infrastructure nodes; {n.id!r} serves requests "
                                "in its pool")
            continue
        site = pool_site.get(n.pool, n.site)
        if site is None:
            problems.append(f"{at}: infrastructure node {n.id!r} needs `site:` (or `pool:`)")
            continue
        if n.pool is not None and n.site is not None and n.site != site:
            problems.append(f"{at}.site: {n.site!r} but its pool {n.pool!r} is in site {site!r}; give one of them")
        for p in n.serves:
            if p in pool_site and (pool_site[p] != site or p not in serving):
                problems.append(f"{at}.serves: pool {p!r} is in site {pool_site[p]!r} or has no serving node; an "
                                f"infrastructure node serves pools of its own site ({site!r}) with serving nodes")
            elif p not in pool_site:
                problems.append(f"{at}.serves: unknown pool {p!r}; known: {', '.join(sorted(pool_site)) or 'none'}")
        if not n.serves and not any(s == site and p in serving for p, s in pool_site.items()):
            problems.append(f"{at}: infrastructure node {n.id!r} has no pool with serving nodes in site {site!r} to "
                            "spread its costs over; list them in `serves:` or move it")
    return problems


# Pydantic error types of a number outside its bounds (transforms/bounds.py) or not finite.
_NUMBER_ERRORS = {"finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against docs/inventory.md)"
        elif e["type"] in _NUMBER_ERRORS:
            msg += f" (found {e['input']!r}); write a finite number in the key's range (docs/inventory.md)"
        for m in msg.split("\n"):
            lines.append(f"  - {loc + ': ' if loc and not m.startswith(loc) else ''}{m}")
    return f"{path}: {len(lines)} problem(s) in the inventory:\n" + "\n".join(lines)


def parse_inventory(text: str, path: Path | str = "<inventory>") -> Inventory:
    path = Path(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InventoryError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: expected a mapping with sites, pools, nodes, tiers and models at the top")
    try:
        return Inventory.model_validate(data)
    except ValidationError as e:
        raise InventoryError(_format_errors(path, e)) from None
