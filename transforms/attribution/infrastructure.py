"""Infrastructure nodes: routers, gateways and CPU servers of the inventory (`role:
infrastructure`, or no GPUs), which run no request. Their slot costs are shared infrastructure
of the pools they serve (docs/attribution.md, "Infrastructure nodes").

Every infrastructure node gets its node-slots like any node: energy from its meters (or
estimated at `idle_w`), its share of the site's overhead, its asset's depreciation, its fixed
share by `reserved_kw`, the cloud lines of its resource id. Then each of its slots is split in
equal parts among the serving nodes of the pools it serves, onto the same slot: a served
node-slot takes `1 / n` of it (n = serving nodes of the served pools), so each pool gets its
share of the served pools' node-slots. From there the amount is a cost of that node-slot like
any other: shared by its requests by occupancy, or idle where the node is idle.

- Energy (`spread_energy`): before pricing, so the served node's site-slot price applies (an
  infrastructure node serves pools of its own site: the same price). The served node-slots
  carry what they received in `infra_it_energy_j` and `infra_overhead_j`.
- Allocations (`spread_allocations`): amortization, cloud and fixed-cost allocations of an
  infrastructure node become allocations of its served nodes, `amount / n` each over the same
  slots, and are reconciled as any allocation.
- Energy conservation (`reconcile_energy_lines`): each infrastructure node's meter energy is
  its own line, to requests where the served node-slots were occupied, else to idle.
"""

import polars as pl

from transforms.attribution.grid import SlotGrid, fsum
from transforms.attribution.reconcile import RECONCILIATION, allocations_to_node_slots
from transforms.inventory import Inventory

ENERGY = ("it_energy_j", "overhead_j")


def served_nodes(inventory: Inventory) -> pl.LazyFrame:
    """`infra_node_id, node_id, n`: each infrastructure node and the serving nodes of the pools it
    serves (`n` of them)."""
    nodes = inventory.nodes_frame().filter(pl.col("role") == "serving").select("node_id", "pool_id")
    return (inventory.served_pools().rename({"node_id": "infra_node_id"})
            .join(nodes, on="pool_id").select("infra_node_id", "node_id")
            .with_columns(pl.len().over("infra_node_id").cast(pl.Float64).alias("n"))
            .sort("infra_node_id", "node_id"))


def spread_energy(energy: pl.LazyFrame, pairs: pl.LazyFrame, carried: tuple[str, ...] = ()) -> pl.LazyFrame:
    """The serving nodes' node-slot energy (`node_id, slot, it_energy_j, overhead_j, ...`) with
    each infrastructure node's slot energy added in equal parts to its served nodes' same slot;
    `infra_it_energy_j`, `infra_overhead_j` hold what was added (0 for a node serving alone).
    `carried`: more energy columns split the same way (the energy of each method). A served
    node-slot keeps its own `energy_method` and `pue_method`."""
    amounts = [*ENERGY, *carried]
    infra = pairs.select("infra_node_id").unique()
    received = (energy.join(infra, left_on="node_id", right_on="infra_node_id", how="semi")
                .rename({"node_id": "infra_node_id"})
                .join(pairs, on="infra_node_id")
                .group_by("node_id", "slot")
                .agg(*[fsum(pl.col(c) / pl.col("n")).alias(f"_in_{c}") for c in amounts]))
    return (energy.join(infra, left_on="node_id", right_on="infra_node_id", how="anti")
            .join(received, on=["node_id", "slot"], how="left")
            .with_columns(pl.col(f"_in_{c}").fill_null(0.0) for c in amounts)
            .with_columns(*[(pl.col(c) + pl.col(f"_in_{c}")).alias(c) for c in amounts],
                          *[pl.col(f"_in_{c}").alias(f"infra_{c}") for c in ENERGY])
            .drop(f"_in_{c}" for c in amounts)
            .sort("node_id", "slot"))


def infrastructure_energy(energy: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """The infrastructure nodes' own node-slot energy (`node_id, slot, it_energy_j, overhead_j`)."""
    return energy.join(pairs.select("infra_node_id").unique(), left_on="node_id", right_on="infra_node_id",
                       how="semi").select("node_id", "slot", *ENERGY)


def spread_allocations(allocations: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """`allocations` (`source, line_id, component, node_id, slot_from, slot_to, amount`) with each
    allocation of an infrastructure node replaced by one per served node, `amount / n`, over the
    same slots."""
    infra = pairs.select("infra_node_id").unique().collect()["infra_node_id"]
    if infra.is_empty():  # the same frame, to the last bit, for a fleet without infrastructure nodes
        return allocations
    own = allocations.filter(~pl.col("node_id").is_in(infra.implode()))
    return pl.concat([own, _moved_allocations(allocations, pairs)])


def _moved_allocations(allocations: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """The allocations of infrastructure nodes, as `spread_allocations` places them on served nodes."""
    return (allocations.join(pairs, left_on="node_id", right_on="infra_node_id")
            .with_columns(pl.col("node_id_right").alias("node_id"), (pl.col("amount") / pl.col("n")).alias("amount"))
            .select(allocations.collect_schema().names()))


def infrastructure_costs(costs: pl.LazyFrame, electricity: pl.LazyFrame, allocations: pl.LazyFrame,
                         pairs: pl.LazyFrame) -> pl.LazyFrame:
    """`costs` (node-slot costs of `spread_energy`'s frame) with `infrastructure_cost`: the part of
    the node-slot's money that came from infrastructure nodes (already within its components). Its
    electricity (energy, demand and fixed invoice lines, each shared by energy within a site-slot)
    in the proportion of the energy it received, plus the infrastructure allocations (`allocations`
    before `spread_allocations`) placed on it."""
    money = [c for c in ("energy_cost", "demand_cost", "fixed_cost") if c in electricity.collect_schema().names()]
    spread = allocations_to_node_slots(_moved_allocations(allocations, pairs), costs.select("node_id", "slot"),
                                       ["amortization_cost", "cloud_cost", "fixed_cost"])
    energy, received = pl.sum_horizontal(ENERGY), pl.sum_horizontal(f"infra_{c}" for c in ENERGY)
    elec = pl.sum_horizontal(f"_e_{c}" for c in money).fill_null(0.0)
    return (costs.join(electricity.select("node_id", "slot", *[pl.col(c).alias(f"_e_{c}") for c in money]),
                       on=["node_id", "slot"], how="left")
            .join(spread.select("node_id", "slot", pl.sum_horizontal("amortization_cost", "cloud_cost", "fixed_cost")
                                .alias("_alloc")), on=["node_id", "slot"], how="left")
            .with_columns((pl.when(energy > 0).then(elec * received / energy).otherwise(0.0)
                           + pl.col("_alloc").fill_null(0.0)).alias("infrastructure_cost"))
            .drop("_alloc", *[f"_e_{c}" for c in money]))


def reconcile_energy_lines(infra_energy: pl.LazyFrame, pairs: pl.LazyFrame, node_out: pl.LazyFrame,
                           grid: SlotGrid) -> pl.LazyFrame:
    """`RECONCILIATION` rows of each infrastructure node's energy (IT: `node_energy`; its overhead
    share: `facility_overhead`), in J: each slot's energy in equal parts to its served node-slots,
    to requests by their occupied share (docs/attribution.md, step 3), the rest to idle."""
    occupied = (pairs.join(node_out.select("node_id", "slot", "occupied_share"), on="node_id")
                .group_by("infra_node_id", "slot")
                .agg((pl.col("occupied_share") / pl.col("n")).pipe(fsum).alias("frac")))
    per_slot = infra_energy.join(occupied, left_on=["node_id", "slot"], right_on=["infra_node_id", "slot"], how="left")
    day = grid.day.isoformat()
    rows = [per_slot.group_by("node_id").agg(
        pl.col(col).pipe(fsum).alias("source_amount"),
        (pl.col(col) * pl.col("frac").fill_null(0.0)).pipe(fsum).alias("to_requests"),
        (pl.col(col) * (1 - pl.col("frac").fill_null(0.0))).pipe(fsum).alias("to_idle"),
    ).select(pl.lit(source).alias("source"), (pl.col("node_id") + f":{day}").alias("line_id"),
             pl.lit(col).alias("component"), pl.lit("J").alias("unit"), "source_amount", "to_requests", "to_idle",
             pl.lit(0.0).alias("unattributed"))
        for col, source in (("it_energy_j", "node_energy"), ("overhead_j", "facility_overhead"))]
    return (pl.concat(rows)
            .with_columns((pl.col("source_amount") - pl.col("to_requests") - pl.col("to_idle")).alias("difference"),
                          pl.lit(None, pl.String).alias("source_currency"),  # energy: no currency
                          pl.lit(None, pl.Float64).alias("source_currency_amount"),
                          pl.lit(None, pl.Float64).alias("fx_rate"))
            .select(pl.col(n).cast(t) for n, t in RECONCILIATION.items()))
