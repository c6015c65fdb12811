"""The warehouse's tables, declared once: name, meaning and the meaning and unit of every column.

`COMMENT ON` statements of the published file and `docs/data-dictionary.md` both come from
here (through the file: `warehouse.dictionary`). The SQL that fills each table lives in
`warehouse.mart_sql` (per-day marts) and `warehouse.version_file` (history-wide tables,
dimensions); what a declaration holds is `warehouse.table.Table`.
Money is in the reporting currency named by each row's `currency`; energy in kWh; times in UTC.
"""

from transforms.attribution.facts import REQUEST_COSTS_SCHEMA
from warehouse.table import Table, commented

MONEY = "in the reporting currency"


_DATE = {"date": "UTC day the row belongs to (the attributed partition)."}
_CUR = {"currency": "ISO 4217 code of the money columns (the inventory's reporting currency)."}
_COSTS = {
    "energy_cost": f"Energy cost: IT + overhead energy priced by tariff or market, trued up to the invoice, {MONEY}.",
    "demand_cost": f"Share of the electricity invoice's demand charge (set in the peak interval), {MONEY}.",
    "amortization_cost": f"Hardware depreciation of the day (asset register), by occupancy, {MONEY}.",
    "cloud_cost": f"FOCUS EffectiveCost of rented serving nodes, by occupancy, {MONEY}.",
    "fixed_cost": f"Colocation, space and other fixed site costs, by reserved kW then occupancy, {MONEY}.",
    "egress_cost": f"Cloud data transfer charges, by response bytes, {MONEY}.",
}

TABLES: list[Table] = [
    Table(
        "request_costs",
        "One row per request and day it touched: its energy and every cost type attributed to it, the "
        "share of idle capacity its tier carries, and the methods behind the numbers. A request in flight "
        "at midnight has a row in each day (that day's part of its cost; its total is the sum of its rows); "
        "it is counted on the day it completed (date = completed_at's UTC date). A view over the "
        "day's Parquet files published beside the warehouse file (versions/<version>/request_costs/).",
        commented(REQUEST_COSTS_SCHEMA, {  # the facts' columns: transforms.attribution.facts
            "request_id": "Request identifier as logged by the serving gateway (unique per day).",
            "node_id": "Serving node that ran the request.",
            "pool_id": "Pool of the node.",
            "site_id": "Site of the pool.",
            "tier": "Service tier of the request (see dim_tiers).",
            "tenant_id": "Customer or team the request is charged to.",
            "model": "Model that served the request.",
            "status": "Outcome: ok, error, cancelled or timeout.",
            "arrived_at": "When the request reached the gateway, UTC.",
            "completed_at": "When the last byte of the response was sent, UTC.",
            "input_tokens": "Prompt tokens, integer.",
            "cached_input_tokens": "Prompt tokens served from the prefix cache, integer.",
            "output_tokens": "Generated tokens, integer.",
            "response_bytes": "Response size, bytes (null when not logged).",
            "ttft_s": "Time to first token, seconds (null when not logged).",
            **_DATE,
            "it_energy_j": "IT energy of the node attributed to the request, joules.",
            "overhead_energy_j": "Facility overhead energy (cooling, power conversion) "
                                 "attributed to the request, joules.",
            "energy_kwh": "IT + overhead energy, kWh.",
            **_COSTS,
            "direct_cost": f"Sum of the six cost columns above, {MONEY}.",
            "idle_share": f"Share of idle capacity cost carried by the request under its tier's idle policy, {MONEY}.",
            "fully_loaded_cost": f"direct_cost + idle_share, {MONEY}.",
            **_CUR,
            "occupied_s": "Seconds the request occupied its node on this day (GPU start to completion, in the day).",
            "weight": "How requests shared a slot: time (overlap seconds) or tokens.",
            "energy_method": "measured, interpolated (short meter gap), "
                             "estimated (long gap: idle/nameplate power) or none.",
            "pue_method": "measured (facility meter) or design_pue (inventory), or none.",
            "idle_policy": "Idle policy applied to the request's tier on its pool: pro_rata, reserved or none.",
        }),
        ("date", "request_id"), kind="view", group="detail",
    ),
    Table(
        "cost_by_tier_day",
        "Per tier and day: volume, energy, cost per query and per million tokens, latency objective "
        "attainment, revenue at list price and gross margin.",
        {
            **_DATE,
            "tier": "Service tier.",
            "requests": "Requests completed in the day, all statuses (money columns also hold the day's part of "
                        "requests in flight at its midnights, counted on their completion day).",
            "ok_requests": "Requests with status ok.",
            "input_tokens": "Prompt tokens, all requests.",
            "cached_input_tokens": "Prompt tokens served from the prefix cache.",
            "output_tokens": "Generated tokens, all requests.",
            "it_energy_kwh": "IT energy attributed to the tier's requests, kWh.",
            "overhead_energy_kwh": "Facility overhead energy attributed to the tier's requests, kWh.",
            "energy_kwh": "it_energy_kwh + overhead_energy_kwh, kWh.",
            **_COSTS,
            "direct_cost": f"Sum of the six cost columns, {MONEY}.",
            "idle_cost": f"Idle capacity cost carried by the tier (sum of request idle shares), {MONEY}.",
            "fully_loaded_cost": f"direct_cost + idle_cost, {MONEY}.",
            "direct_cost_per_query": f"direct_cost / requests, {MONEY}.",
            "fully_loaded_cost_per_query": f"fully_loaded_cost / requests, {MONEY}.",
            "fully_loaded_cost_per_m_tokens": f"fully_loaded_cost per million tokens (input + output), {MONEY}.",
            "fully_loaded_cost_per_m_output_tokens": f"fully_loaded_cost per million output tokens, {MONEY}.",
            "ttft_p95_s": "95th percentile time to first token of ok requests, seconds.",
            "ttft_objective_s": "Tier's objective for the 95th percentile time to first token, seconds.",
            "ttft_attainment": "Share of ok requests with a time to first token within the objective, 0-1.",
            "e2e_p95_s": "95th percentile end-to-end latency (arrival to completion) of ok requests, seconds.",
            "e2e_objective_s": "Tier's objective for the 95th percentile end-to-end latency, seconds.",
            "e2e_attainment": "Share of ok requests completed within the end-to-end objective, 0-1.",
            "objectives_met": "True when both 95th percentiles are within the tier's objectives.",
            "revenue": f"List price x tokens of ok requests (input incl. cached at the input price), {MONEY}.",
            "gross_margin": f"revenue - fully_loaded_cost, {MONEY}.",
            "gross_margin_pct": "gross_margin / revenue (null without revenue).",
            **_CUR,
        },
        ("date", "tier"), daily=True,
    ),
    Table(
        "cost_by_tenant_day",
        "Per tenant, tier and day: the chargeback/showback lines of each day.",
        {
            **_DATE,
            "tenant_id": "Customer or team.",
            "tier": "Service tier.",
            "requests": "Requests completed in the day.",
            "input_tokens": "Prompt tokens.",
            "output_tokens": "Generated tokens.",
            "energy_kwh": "IT + overhead energy attributed, kWh.",
            "direct_cost": f"Direct cost of the tenant's requests, {MONEY}.",
            "idle_cost": f"Idle capacity cost carried by the tenant's requests, {MONEY}.",
            "fully_loaded_cost": f"direct_cost + idle_cost, {MONEY}.",
            "revenue": f"List price x tokens of ok requests, {MONEY}.",
            **_CUR,
        },
        ("date", "tenant_id", "tier"), daily=True,
    ),
    Table(
        "cost_by_tenant_month",
        "Per tenant, tier and calendar month: chargeback (fully loaded) and showback (direct) over the "
        "published days of the month.",
        {
            "month": "First day of the calendar month (UTC).",
            "tenant_id": "Customer or team.",
            "tier": "Service tier.",
            "days": "Published days of the month with requests of the tenant and tier.",
            "requests": "Requests completed in those days.",
            "input_tokens": "Prompt tokens.",
            "output_tokens": "Generated tokens.",
            "energy_kwh": "IT + overhead energy attributed, kWh.",
            "direct_cost": f"Showback: direct cost, {MONEY}.",
            "idle_cost": f"Idle capacity cost carried, {MONEY}.",
            "fully_loaded_cost": f"Chargeback: direct_cost + idle_cost, {MONEY}.",
            "revenue": f"List price x tokens of ok requests, {MONEY}.",
            "gross_margin": f"revenue - fully_loaded_cost, {MONEY}.",
            **_CUR,
        },
        ("month", "tenant_id", "tier"),
    ),
    Table(
        "cost_by_model_pool_day",
        "Per model, pool and day: energy per output token, cost per million tokens and the pool's utilization.",
        {
            **_DATE,
            "model": "Model.",
            "pool_id": "Pool that served it.",
            "site_id": "Site of the pool.",
            "gpu_model": "GPU model of the pool.",
            "requests": "Requests completed in the day.",
            "input_tokens": "Prompt tokens.",
            "output_tokens": "Generated tokens.",
            "it_energy_kwh": "IT energy attributed, kWh.",
            "energy_kwh": "IT + overhead energy attributed, kWh.",
            "it_j_per_output_token": "IT energy per output token, joules (null without output tokens).",
            "j_per_output_token": "IT + overhead energy per output token, joules.",
            "direct_cost": f"Direct cost, {MONEY}.",
            "fully_loaded_cost": f"Direct cost + idle share, {MONEY}.",
            "direct_cost_per_m_output_tokens": f"direct_cost per million output tokens, {MONEY}.",
            "fully_loaded_cost_per_m_tokens": f"fully_loaded_cost per million tokens (input + output), {MONEY}.",
            "pool_utilization": "Share of the pool's node-slots of the day with at least one request running, 0-1.",
            **_CUR,
        },
        ("date", "model", "pool_id"), daily=True,
    ),
    Table(
        "idle_by_pool_hour",
        "Idle capacity per pool and UTC hour: node-slots with no request, their energy and cost.",
        {
            **_DATE,
            "hour": "Start of the UTC hour.",
            "pool_id": "Pool.",
            "site_id": "Site of the pool.",
            "node_slots": "Node-slots in the hour (nodes x slots of the attribution's slot length).",
            "idle_slots": "Node-slots with no request running at all (the idle seconds of partly occupied slots "
                          "are in the idle amounts).",
            "idle_slot_share": "idle_slots / node_slots: share of node-slots wholly idle, 0-1.",
            "energy_kwh": "IT + overhead energy of the pool in the hour, kWh.",
            "idle_energy_kwh": "IT + overhead energy of its idle node-slots, kWh.",
            "slot_cost": f"Energy, demand, amortization, cloud and fixed cost of the pool in the hour, {MONEY}.",
            "idle_cost": f"The part of slot_cost in idle node-slots, {MONEY}.",
            "idle_cost_share": "idle_cost / slot_cost, 0-1 (null when slot_cost is 0).",
            **_CUR,
        },
        ("date", "hour", "pool_id"), daily=True,
    ),
    Table(
        "idle_by_pool_day",
        "Per pool and day: idle capacity cost by component and where it went under the idle policy.",
        {
            **_DATE,
            "pool_id": "Pool.",
            "site_id": "Site of the pool.",
            "idle_slots": "Node-slots with no request running at all (the idle seconds of partly occupied slots "
                          "are in the idle amounts).",
            "idle_energy_kwh": "IT + overhead energy of idle node-slots, kWh.",
            "idle_energy_cost": f"Energy cost of idle node-slots, {MONEY}.",
            "idle_demand_cost": f"Demand charge share of idle node-slots, {MONEY}.",
            "idle_amortization_cost": f"Depreciation of idle node-slots, {MONEY}.",
            "idle_cloud_cost": f"Cloud cost of idle node-slots, {MONEY}.",
            "idle_fixed_cost": f"Fixed site cost of idle node-slots, {MONEY}.",
            "idle_cost": f"Sum of the five idle cost columns, {MONEY}.",
            "absorbed": f"Idle cost carried by requests (their idle_share), {MONEY}.",
            "unabsorbed": f"Idle cost no request could carry (no request of an eligible tier that day), {MONEY}.",
            "policy": "pro_rata (all the pool's requests) or reserved (the reserving tiers).",
            "reserved_by": "Tiers reserving the pool, comma-separated (null when none).",
            **_CUR,
        },
        ("date", "pool_id"), daily=True,
    ),
    Table(
        "site_energy_hour",
        "Per site and UTC hour: IT and facility energy, PUE, the price paid and the energy cost.",
        {
            **_DATE,
            "site_id": "Site.",
            "hour": "Start of the UTC hour.",
            "it_energy_kwh": "Energy drawn by the site's serving nodes, kWh.",
            "overhead_energy_kwh": "Facility overhead energy (facility - IT), kWh.",
            "facility_energy_kwh": "IT + overhead energy, kWh "
                                   "(measured by the facility meter when pue_method is measured).",
            "pue": "facility / IT energy.",
            "pue_method": "measured (facility meter) or design_pue (inventory).",
            "overhead_clamped": "True when the facility meter read below the IT energy and overhead was set to 0.",
            "energy_cost": f"Energy cost of the hour after invoice true-up, {MONEY}.",
            "demand_cost": f"Demand charge share of the hour, {MONEY}.",
            "price_per_kwh": f"energy_cost / facility_energy_kwh: the effective price, {MONEY} per kWh "
                             "(null without energy).",
            **_CUR,
        },
        ("date", "site_id", "hour"), daily=True,
    ),
    Table(
        "energy_true_up", "Per site, day and time-of-use period: energy priced at the tariff against the invoice, "
        "and the factor applied.",
        {
            **_DATE,
            "site_id": "Site.",
            "tou_period": "Time-of-use period of the invoice line (or all).",
            "invoice_line_id": "Electricity invoice line the energy was trued up to.",
            "day_kwh": "Energy of the day in the period, kWh.",
            "tariff_cost": f"That energy at the tariff or market price, {MONEY}.",
            "invoiced_rate": f"The invoice line's amount per kWh, {MONEY} per kWh.",
            "energy_cost": f"Energy cost after true-up, {MONEY}.",
            "true_up_factor": "energy_cost / tariff_cost.",
        },
        ("date", "site_id", "tou_period", "invoice_line_id"), daily=True, group="reconciliation",
    ),
    Table(
        "reconciliation",
        "Per source line and day (a meter's energy, an invoice or FOCUS line, an asset's depreciation): "
        "the source amount against what went to requests, to idle capacity and to nobody.",
        {
            **_DATE,
            "source": "Source family: node_energy, facility_overhead, tariff, electricity_invoice, colocation_invoice, "
                      "focus, asset_register.",
            "line_id": "Source line: meter or node id, invoice or FOCUS line id, asset id.",
            "component": "Cost or energy component the line feeds.",
            "unit": "kWh for energy, else the reporting currency code.",
            "source_amount": "The line's amount for the day, in unit.",
            "to_requests": "Allocated to requests, in unit.",
            "to_idle": "Allocated to idle capacity, in unit.",
            "unattributed": "Matched nothing (kept, with a reason, in unattributed_costs), in unit.",
            "difference": "source_amount - to_requests - to_idle - unattributed, in unit.",
            "within_tolerance": "True when |difference| <= 0.01 (money) or 1e-9 relative (energy).",
        },
        ("date", "source", "line_id", "component"), daily=True, group="reconciliation",
    ),
    Table(
        "conservation_by_component",
        "Per component and day: the sources' total against the request facts and the idle node-slots.",
        {
            **_DATE,
            "component": "Cost or energy component.",
            "unit": "kWh for energy, else the reporting currency code.",
            "source_amount": "Sum of the component's source lines, in unit.",
            "to_requests": "Lines' allocations to requests, in unit.",
            "to_idle": "Lines' allocations to idle capacity, in unit.",
            "unattributed": "Lines' unattributed amounts, in unit.",
            "in_request_facts": "Sum of the component over request_costs, in unit.",
            "in_idle_slots": "Sum of the component's idle amounts over node-slots (their unoccupied seconds), in unit.",
        },
        ("date", "component"), daily=True, group="reconciliation",
    ),
    Table(
        "unattributed_costs",
        "Cost lines (or parts) that matched no serving node, request or site, with the reason.",
        {
            **_DATE,
            "source": "Source family.",
            "line_id": "Source line id.",
            "component": "Cost component.",
            "amount": f"Amount not attributed, {MONEY}.",
            **_CUR,
            "reason": "Why it matched nothing (e.g. unknown_resource, no_requests).",
            "service_name": "FOCUS ServiceName or invoice description (null when none).",
        },
        ("date", "source", "line_id", "component"), daily=True, group="reconciliation",
    ),
    Table(
        "quarantine_summary",
        "Per day, site, input and reason: input records set aside by the ingest, with an example to look at.",
        {
            **_DATE,
            "site_id": "Site of the input (_fleet for fleet-wide inputs).",
            "dataset": "Canonical input: requests, power_readings, cost_lines, assets or market_prices.",
            "reason": "Quarantine reason (docs/data-contracts.md).",
            "rows": "Records quarantined.",
            "example_file": "Raw file of the first such record.",
            "example_row": "Its row (line) number in that file, 1-based.",
        },
        ("date", "site_id", "dataset", "reason"), daily=True, group="quality",
    ),
    Table(
        "ingest_audit", "Per day, site and raw file: records read, accepted into the lake and quarantined "
        "(read = accepted + quarantined), and whether the file was read at all. Every file delivered under the day's "
        "raw folder is one row.",
        {
            **_DATE,
            "site_id": "Site of the input (_fleet for fleet-wide inputs, and for files no input's folder holds).",
            "dataset": "Canonical input; unclaimed for a file in no input's folder (an unknown folder or site folder).",
            "source_file": "Raw file, relative to the raw directory.",
            "rows_read": "Records read (1 for an unreadable file, 0 for an ignored one).",
            "rows_accepted": "Records accepted.",
            "rows_quarantined": "Records quarantined.",
            "status": "read; unreadable (the file could not be read as its format: damaged compression, a CSV that "
                      "cannot be parsed; one quarantined record, reason unreadable_file); ignored (not read: another "
                      "suffix or case, an unknown folder, a subfolder, a symlink out of the raw directory).",
            "status_detail": "Why the file is unreadable or ignored, and what to do (null when read).",
        },
        ("date", "site_id", "dataset", "source_file"), daily=True, group="quality",
    ),
    Table(
        "dim_sites", "Sites of the inventory.",
        {"site_id": "Site.", "kind": "metro, remote or cloud.", "cooling": "liquid, air or provider.",
         "design_pue": "Design PUE used when the site has no facility meter.",
         "timezone": "IANA time zone of the site.",
         "tariff": "Tariff pricing the site's energy (null for cloud sites)."},
        ("site_id",), group="dimensions",
    ),
    Table(
        "dim_pools", "Pools of the inventory.",
        {"pool_id": "Pool.", "site_id": "Site of the pool.", "gpu_model": "GPU model.",
         "tiers": "Tiers the pool serves, comma-separated.", "nodes": "Nodes in the pool.",
         "gpus": "GPUs in the pool."},
        ("pool_id",), group="dimensions",
    ),
    Table(
        "dim_nodes", "Serving nodes of the inventory.",
        {"node_id": "Node.", "pool_id": "Pool.", "site_id": "Site.", "gpus": "GPUs in the node.",
         "gpu_tdp_w": "Nameplate power of one GPU, W.", "idle_w": "Idle power of the node, W.",
         "nameplate_w": "Nameplate power of the node, W.",
         "reserved_kw": "Power reserved in the colocation contract, kW.",
         "cloud_resource_id": "FOCUS ResourceId of a rented node (null when owned)."},
        ("node_id",), group="dimensions",
    ),
    Table(
        "dim_tiers", "Service tiers: latency objectives, list prices and idle policy.",
        {"tier": "Tier.", "ttft_objective_s": "95th percentile time-to-first-token objective, seconds.",
         "e2e_objective_s": "95th percentile end-to-end latency objective, seconds.",
         "price_per_m_input_tokens": f"List price per million input tokens, {MONEY}.",
         "price_per_m_output_tokens": f"List price per million output tokens, {MONEY}.",
         "idle_policy": "pro_rata or reserved.",
         "reserved_pools": "Pools reserved by the tier, comma-separated (null when none).", **_CUR},
        ("tier",), group="dimensions",
    ),
    Table(
        "dim_models", "Models served.", {"model": "Model.", "params_b": "Parameters, billions."},
        ("model",), group="dimensions",
    ),
    Table(
        "dim_tenants", "Tenants seen in the published days.",
        {"tenant_id": "Customer or team.", "first_day": "First published day with a request of the tenant.",
         "last_day": "Last such day.", "requests": "Requests over the published days."},
        ("tenant_id",), group="dimensions",
    ),
    Table(
        "dim_calendar", "Every day from the first to the last published day.",
        {"date": "UTC day.", "month": "First day of its month.", "year": "Year.", "iso_week": "ISO week number.",
         "day_of_week": "Monday .. Sunday.", "is_weekend": "True on Saturday and Sunday.",
         "days_in_month": "Days in the month.", "published": "True when the day's marts are in this warehouse."},
        ("date",), group="dimensions",
    ),
    Table(
        "publication", "This warehouse file: when it was published, from which days, by which version of the code.",
        {"version": "Publication id (also the folder under versions/).", "published_at": "When it was published, UTC.",
         "first_day": "First published day.", "last_day": "Last published day.", "days": "Published days.",
         "requests": "Requests over the published days.",
         "storage_version": "DuckDB storage version the file is written in.",
         "inferledger_version": "Version of the code that published it."},
        group="about",
    ),
]

BY_NAME = {t.name: t for t in TABLES}
DAILY = [t for t in TABLES if t.daily]
