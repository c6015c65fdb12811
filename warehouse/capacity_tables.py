"""The declarations of the capacity marts (`warehouse.capacity` fills them; docs/capacity.md), kept
beside `warehouse.tables`, which places them after `idle_by_pool_day` (`with_capacity_tables`,
through `warehouse.table`; made with the class of the tables given, so this module imports neither)."""

MONEY = "in the reporting currency"
_CAP_SOURCE = ("Where the capacity comes from: telemetry (the knee seen in the day's load vs latency), "
               "telemetry_lower_bound (no load bucket missed the objective: the highest one that met it), "
               "profile_reference / profile_measured / profile_assumed (a performance profile), mixed (models of "
               "different sources), unknown (neither: no figure, never invented).")
_SURPLUS = {
    "surplus_energy_cost": f"Energy of the surplus nodes at idle power (inventory idle_w) x the hour's energy cost per "
                           f"IT joule of the pool (PUE overhead included), {MONEY}.",
    "surplus_amortization_cost": f"Surplus nodes x the hour's amortization per powered node, {MONEY}.",
    "surplus_cloud_cost": f"Surplus nodes x the hour's cloud rent per powered node, {MONEY}.",
    "surplus_fixed_cost": f"Surplus nodes x the hour's fixed site cost (colocation) per powered node, {MONEY}.",
    "surplus_cost": f"Sum of the four surplus costs: the over-provisioning cost (demand charges left out), {MONEY}.",
}
_CUR = {"currency": "ISO 4217 code of the money columns (the inventory's reporting currency)."}


def with_capacity_tables(tables: list) -> list:
    """`tables` with the capacity marts after `idle_by_pool_day`."""
    new = capacity_tables(next(t for t in tables if t.name == "idle_by_pool_day"))
    return [u for t in tables for u in ([t, *new] if t.name == "idle_by_pool_day" else [t])]


def capacity_tables(idle_by_pool_day) -> list:
    Table = type(idle_by_pool_day)  # noqa: N806 (warehouse.table.Table)
    return [_hourly(Table), _daily(Table), _efficiency(Table)]


def _hourly(Table):  # noqa: N803 (warehouse.table.Table)
    return Table(
        "capacity_by_pool_hour",
        "Capacity utilization per pool and hour (DOMAIN.md section 8): the load served against the capacity of "
        "the nodes powered at the strictest latency objective of the tiers served, the nodes that load needed, "
        "and the surplus and its cost. Not the same as idle (idle_by_pool_hour: no request running): a node "
        "running one request where it could batch sixty is not idle, but mostly surplus. docs/capacity.md.",
        {
            "date": "UTC day.", "hour": "Start of the UTC hour.", "pool_id": "Pool.",
            "site_id": "Site of the pool.",
            "demand_output_tokens_per_s": "Output tokens decoded in the hour / 3600 (tokens spread over each "
                                          "request's decode interval).",
            "demand_in_flight": "Requests running on the pool's nodes, averaged over the hour.",
            "capacity_output_tokens_per_s_per_node": "Output tokens/s one node sustains within the objectives "
                                                     "(models weighted by their demand); null when unknown.",
            "capacity_in_flight_per_node": "Requests in flight one node sustains within the objectives.",
            "capacity_source": _CAP_SOURCE,
            "objective_tiers": "The tiers whose objectives bind the capacity (comma-separated).",
            "nodes_powered": "Nodes powered in the hour (node-slots / slots of the hour).",
            "utilization": "demand / (capacity per node x nodes powered), 0-1 (above 1: over capacity).",
            "safety_margin": "Headroom kept per node (inventory pools[].safety_margin, default 0.2).",
            "redundancy_min_nodes": "Nodes kept on whatever the load (pools[].redundancy_min_nodes, default 1).",
            "nodes_needed": "max(redundancy minimum, ceil(demand / (capacity per node x (1 - safety margin)))); "
                            "null when the capacity is unknown.",
            "surplus_nodes": "nodes_powered - nodes_needed, at least 0; null when unknown.",
            **_SURPLUS,
            "pool_energy_cost": f"Energy cost of the pool's node-slots in the hour, {MONEY}.",
            "pool_amortization_cost": f"Amortization of the pool's node-slots in the hour, {MONEY}.",
            "pool_cloud_cost": f"Cloud rent of the pool's node-slots in the hour, {MONEY}.",
            "pool_fixed_cost": f"Fixed site cost of the pool's node-slots in the hour, {MONEY}.",
            "pool_cost": f"Energy, demand, amortization, cloud and fixed cost of the pool's node-slots in the "
                         f"hour, {MONEY}.",
            **_CUR,
        },
        ("date", "pool_id", "hour"), daily=True,
    )


def _daily(Table):  # noqa: N803 (warehouse.table.Table)
    return Table(
        "overprovisioning_by_pool_day",
        "Over-provisioning per pool and day: the surplus node-hours of capacity_by_pool_hour and their cost by "
        "component, as a share of the pool's cost, and what sizing the pool once for the day's peak would still "
        "leave powered and unneeded. docs/capacity.md.",
        {
            "date": "UTC day.", "pool_id": "Pool.", "site_id": "Site of the pool.",
            "capacity_source": "The hours' capacity source (mixed when they differ); see capacity_by_pool_hour.",
            "node_hours_powered": "Sum of nodes powered over the hours.",
            "node_hours_needed": "Sum of nodes needed over the hours whose capacity is known.",
            "surplus_node_hours": "Sum of surplus nodes over the hours (hour by hour).",
            **{k: v.replace("Surplus nodes x the hour's", "Over the day: surplus nodes x each hour's")
               for k, v in _SURPLUS.items()},
            "pool_cost": f"The pool's cost of the day (energy, demand, amortization, cloud, fixed), {MONEY}.",
            "surplus_cost_share": "surplus_cost / pool_cost, 0-1.",
            "peak_hour": "Hour with the most nodes needed (the first such).",
            "peak_nodes_needed": "Nodes needed in the peak hour.",
            "peak_nodes_powered": "Most nodes powered in an hour.",
            "surplus_node_hours_at_peak_sizing": "Sum over the hours of nodes powered - peak nodes needed (at "
                                                 "least 0): the surplus even a pool sized for the day's peak has.",
            "surplus_cost_at_peak_sizing": f"Cost of those node-hours at each hour's surplus cost per node, "
                                           f"{MONEY}.",
            "capacity_unknown_hours": "Hours whose capacity is unknown: their surplus is not counted (the sums "
                                      "of needed and surplus are then over the known hours).",
            **_CUR,
        },
        ("date", "pool_id"), daily=True,
    )


def _efficiency(Table):  # noqa: N803 (warehouse.table.Table)
    return Table(
        "efficiency_by_model_pool_day",
        "Energy efficiency per model and pool and day (DOMAIN.md section 8): the measured IT joules per output "
        "token at the batch the pool ran, against the performance profile's at that batch. docs/capacity.md.",
        {
            "date": "UTC day.", "model": "Model.", "pool_id": "Pool.", "site_id": "Site of the pool.",
            "gpu_model": "GPU model of the pool.",
            "output_tokens": "Output tokens of the requests completed in the day.",
            "gpus_per_replica": "GPUs per replica of the matching profile (null: no profile).",
            "replicas_per_node": "Replicas one node runs (GPUs of the node // gpus_per_replica).",
            "observed_batch": "Mean requests in flight per replica over the node-minutes that ran the model "
                              "(per node when no profile matched).",
            "measured_it_j_per_output_token": "IT energy attributed to the requests / their output tokens, J "
                                              "(whole node: host power included, profiles count GPUs only).",
            "profile_j_per_output_token": "The profile's power / throughput at the observed batch, J, "
                                          "interpolated linearly between its neighbouring batches.",
            "profile_point": "exact, interpolated, below_range or above_range (the nearest point's figure, not "
                             "extrapolated); null without a profile.",
            "profile_source": "measured, reference or assumed (the profile's source).",
            "gap_j_per_output_token": "measured - profile, J per output token.",
            "measured_to_profile": "measured / profile (1 = as the profile).",
        },
        ("date", "pool_id", "model"), daily=True,
    )
