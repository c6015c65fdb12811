"""The site-level and fleet-wide files of a day, written after the nodes from their small
per-interval totals: the facility meter, the FOCUS cloud bill, the asset register, the market
prices and, when asked, the month's electricity and colocation invoices (`bills.py` writes each).
"""

from datetime import date
from pathlib import Path

import numpy as np

from fleetsim import bills
from fleetsim.node import FileTally, NodeResult
from fleetsim.spec import Fleet


def write_site_files(out_dir: Path, day: date, fleet: Fleet, seed: int, nodes: dict[str, NodeResult],
                     written: FileTally, invoices: bool) -> dict:
    """Write the day's site files under `out_dir` from the nodes' results (by node id, in the order
    they were simulated); returns the facts they were drawn from (asset register, electricity
    invoice, each site's energy in kWh)."""
    spec = fleet.spec
    day_dir = out_dir / day.isoformat()
    facts: dict = {}

    # --- sites: facility meter and site energy (IT x PUE) ---
    site_kwh_15 = bills.sites_energy_kwh(spec, fleet, day, seed, {k: r.node_energy_15min_j for k, r in nodes.items()})
    for site in spec.sites:  # metro sites meter the whole facility
        if site.kind == "metro" and site.id in site_kwh_15:
            path = day_dir / site.id / "facility" / f"{site.id}_facility_{day.isoformat()}.csv"
            written.add("facility", path,
                        bills.write_facility(path, site, f"{site.id}/facility", day, site_kwh_15[site.id], 15))

    # --- cloud bill (daily export) ---
    for site in spec.sites:
        if site.kind == "cloud" and fleet.site_nodes(site.id):
            path = day_dir / site.id / "focus" / f"focus_{site.id}_{day.isoformat()}.csv"
            egress = {n.id: nodes[n.id].egress_bytes_hour for n in fleet.site_nodes(site.id)}
            written.add("focus", path, bills.write_focus(path, fleet, site, day, egress))

    # --- asset register (daily ERP snapshot) ---
    path = day_dir / "_fleet" / "assets" / f"asset_register_{day.isoformat()}.csv"
    n_assets, asset_facts = bills.write_asset_register(path, fleet, day, seed)
    written.add("assets", path, n_assets)
    facts.update(asset_facts)

    # --- market prices (top level, merged across days) ---
    for site in spec.sites:
        if site.kind == "metro" and site.tariff:
            path = out_dir / "prices" / f"{site.tariff}.csv"
            written.add("prices", path, bills.write_prices(path, bills.market_prices(day, site.timezone, seed)))

    if invoices:
        facts.update(_write_invoices(day_dir, day, fleet, seed, site_kwh_15, written))
    facts["site_kwh"] = {s: round(float(v.sum()), 1) for s, v in site_kwh_15.items()}
    return facts


def _write_invoices(day_dir: Path, day: date, fleet: Fleet, seed: int, site_kwh_15: dict[str, np.ndarray],
                    written: FileTally) -> dict:
    """The month's invoices: remote sites buy from a utility, metro sites rent colocation.
    Returns the electricity invoice's facts."""
    facts: dict = {}
    for site in fleet.spec.sites:
        if site.kind == "remote" and site.id in site_kwh_15:
            path = day_dir / site.id / "electricity" / bills.electricity_invoice_name(day)
            inv_facts = bills.write_electricity_invoice(path, fleet, site, day, site_kwh_15[site.id], seed)
            written.add("electricity", path, inv_facts.rows)
            facts["electricity_invoice"] = {"kwh": round(inv_facts.kwh, 1), "demand_kw": inv_facts.demand_kw,
                                            "peak_at": inv_facts.peak_at,
                                            "peak_on_simulated_day": inv_facts.peak_on_simulated_day}
        if site.kind == "metro" and fleet.site_nodes(site.id):
            path = day_dir / site.id / "colocation" / f"COLO-ME-{day:%Y%m}.csv"
            written.add("colocation", path, bills.write_colocation_invoice(path, fleet, site, day))
    return facts
