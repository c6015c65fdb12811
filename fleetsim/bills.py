"""Money files: market prices, the facility meter, invoices, the FOCUS cloud bill, the asset register.

All small (rows per hour or per month, not per request), so plain Python writes them.
Amounts are rounded half-up to the cent and every invoice line states amount = quantity x
rate within that cent, as the ingest checks.
"""

import csv
import math
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta, UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from fleetsim.spec import TOU_PERIODS, Fleet, SiteSpec
from fleetsim.text import money, round_cents


def _csv(path: Path, header: list[str], rows: list[list]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return len(rows)


def _rfc3339(t: datetime) -> str:
    """Seconds precision; `Z` for UTC, the offset otherwise."""
    s = t.isoformat(timespec="seconds")
    return s.replace("+00:00", "Z") if t.utcoffset() == timedelta(0) and t.tzinfo is UTC else s


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def local_month_bounds(day: date, tz: str) -> tuple[date, date, datetime, datetime]:
    """The local calendar month of `day`: first date, first date of the next month, and the
    UTC instants they start."""
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    zone = ZoneInfo(tz)
    a = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    b = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
    return first, nxt, a, b


def pue_profile(site: SiteSpec, day: date, seconds: int, rng: np.random.Generator) -> np.ndarray:
    """PUE of each `seconds`-long interval of the UTC day: design PUE, higher on warm afternoons
    and in summer (cooling works harder), a little noise. Liquid cooling swings less than air."""
    n = 86_400 // seconds
    zone = ZoneInfo(site.timezone)
    start = day_start(day)
    hours = np.array([(start + timedelta(seconds=i * seconds)).astimezone(zone).hour
                      + (start + timedelta(seconds=i * seconds)).astimezone(zone).minute / 60 for i in range(n)])
    daily = 0.5 + 0.5 * np.cos(2 * np.pi * (hours - 15) / 24)
    season = 0.5 - 0.5 * np.cos(2 * np.pi * (day.timetuple().tm_yday - 15) / 365)
    return site.design_pue + site.pue_swing * (0.55 * season + 0.45 * daily - 0.5) * 2 + rng.normal(0, 0.004, n)


def site_energy_kwh(site: SiteSpec, day: date, node_energy_15min_j: list[np.ndarray],
                    rng: np.random.Generator) -> np.ndarray:
    """A site's facility energy per 15 minutes (kWh): its nodes' IT energy plus 2% for switches
    and storage and 0.25 kWh per 4 nodes of management network, times the hour's PUE."""
    it_kwh = sum(node_energy_15min_j) / 3.6e6
    it_kwh = it_kwh * 1.02 + 0.25 * len(node_energy_15min_j) / 4
    return it_kwh * pue_profile(site, day, 900, rng)


def sites_energy_kwh(spec, fleet, day: date, seed: int,
                     node_energy_15min_j: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`site_energy_kwh` of every owned site with nodes, from its nodes' 15-minute IT energy
    (by node id), with the sites' own random stream: the simulator and the benchmark's
    synthetic lake call this one function."""
    rng = np.random.default_rng([seed, day.toordinal(), 0x517E])
    return {site.id: site_energy_kwh(site, day, [node_energy_15min_j[n.id] for n in fleet.site_nodes(site.id)], rng)
            for site in spec.sites if site.kind != "cloud" and fleet.site_nodes(site.id)}


def write_facility(path: Path, site: SiteSpec, meter_id: str, day: date, facility_kwh: np.ndarray,
                   minutes: int) -> int:
    """Facility meter interval CSV, interval starts in the site's local time with its offset.
    The day's file holds the intervals that START on the UTC day (00:00 to 23:45); the ingest
    files an interval under the day it starts in."""
    zone = ZoneInfo(site.timezone)
    start = day_start(day)
    rows = [[meter_id, _rfc3339((start + timedelta(minutes=i * minutes)).astimezone(zone)), minutes,
             f"{kwh:.3f}"] for i, kwh in enumerate(facility_kwh)]
    return _csv(path, ["meter_id", "interval_start", "interval_minutes", "kwh"], rows)


# --- market prices ---------------------------------------------------------------------------

def market_prices(day: date, tz: str, seed: int) -> dict[str, float]:
    """Hourly day-ahead prices ($/kWh) covering the local month of `day`, keyed by RFC 3339 UTC
    hour. Deterministic per (seed, month), whichever day of the month asks."""
    _, _, a, b = local_month_bounds(day, tz)
    a, b = a - timedelta(days=1), b + timedelta(days=1)
    hours = int((b - a).total_seconds() // 3600)
    rng = np.random.default_rng([seed, 0x5EED, day.year, day.month])
    zone = ZoneInfo(tz)
    local_h = np.array([(a + timedelta(hours=h)).astimezone(zone).hour for h in range(hours)])
    shape = (0.032 + 0.022 * np.exp(-0.5 * ((local_h - 18) / 2.5) ** 2)
             + 0.008 * np.exp(-0.5 * ((local_h - 8) / 1.5) ** 2))
    daily = np.repeat(np.exp(rng.normal(0, 0.18, hours // 24 + 2)), 24)[:hours]
    price = shape * daily * np.exp(rng.normal(0, 0.08, hours))
    spikes = rng.random(hours) < 0.01
    price = np.where(spikes, price * rng.uniform(2.5, 6, hours), price)
    price = np.where(rng.random(hours) < 0.004, -rng.uniform(0.001, 0.01, hours), price)  # windy nights
    return {_rfc3339(a + timedelta(hours=h)): round(float(p), 5) for h, p in enumerate(price)}


def write_prices(path: Path, prices: dict[str, float]) -> int:
    """Merge with the rows already in the file (other months simulated before) and rewrite."""
    merged: dict[str, str] = {}
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                merged[row["hour_utc"]] = row["price_per_kwh"]
    merged.update({h: f"{p:.5f}" for h, p in prices.items()})
    return _csv(path, ["hour_utc", "price_per_kwh"], [[h, merged[h]] for h in sorted(merged)])


# --- electricity invoice (time of use + demand) ---------------------------------------------

@dataclass
class ElectricityInvoice:
    rows: int
    kwh: float
    demand_kw: float
    peak_at: str
    peak_on_simulated_day: bool


def _tou_period(t_local: datetime) -> tuple[str, float]:
    weekday = t_local.weekday() < 5
    hm = f"{t_local.hour:02d}:{t_local.minute:02d}"
    for name, days, a, b, price in TOU_PERIODS:
        if (days == "all" or (days == "weekdays") == weekday) and a <= hm < b:
            return name, price
    raise ValueError(f"no TOU period covers {t_local}")


def write_electricity_invoice(path: Path, fleet: Fleet, site: SiteSpec, day: date, site_kwh_15: np.ndarray,
                              seed: int) -> ElectricityInvoice:
    """The month's invoice of a time-of-use site. `site_kwh_15`: the simulated UTC day's site
    energy per 15 minutes (IT x PUE), which the invoice bills exactly; the month's other days
    repeat that day's local profile in hourly means, scaled by a day-to-day factor of 0.88-0.99."""
    spec = fleet.spec
    zone = ZoneInfo(site.timezone)
    first, nxt, a, b = local_month_bounds(day, site.timezone)
    start = day_start(day)
    rng = np.random.default_rng([seed, 0xE1EC, day.year, day.month])
    # Local quarter-hour -> kWh on the simulated day.
    profile = np.zeros(96)
    for i, kwh in enumerate(site_kwh_15):
        t = (start + timedelta(minutes=15 * i)).astimezone(zone)
        profile[(t.hour * 60 + t.minute) // 15] = kwh
    profile[profile == 0] = site_kwh_15.mean()  # a DST day has a missing or repeated local hour
    # Other days: the simulated day's profile in hourly means (a day not simulated has no
    # minute-level bursts to show), scaled by 0.88-0.99: the simulated day is the month's
    # busiest, so the demand peak the invoice bills lies on a day the lake holds.
    hourly = np.repeat(profile.reshape(24, 4).mean(axis=1), 4)
    day_factor = {first + timedelta(days=d): float(rng.uniform(0.88, 0.99)) for d in range((nxt - first).days)}
    energy = {"on_peak": 0.0, "off_peak": 0.0}
    peak_kw, peak_t, peak_sim = -1.0, a, False
    quarters = int((b - a).total_seconds() // 900)
    for q in range(quarters):
        t = a + timedelta(minutes=15 * q)
        idx = int((t - start).total_seconds() // 900)
        simulated = 0 <= idx < 96
        lt = t.astimezone(zone)
        kwh = site_kwh_15[idx] if simulated else hourly[(lt.hour * 60 + lt.minute) // 15] * day_factor[lt.date()]
        energy[_tou_period(lt)[0]] += kwh
        if kwh * 4 > peak_kw:
            peak_kw, peak_t, peak_sim = kwh * 4, t, simulated
    rates = {name: price for name, _, _, _, price in TOU_PERIODS}
    account = "ACCT-7731-0042"
    invoice_id = electricity_invoice_name(day).removesuffix(".csv")
    header = ["invoice_id", "line_no", "account", "period_start", "period_end", "line_type", "tou_period",
              "quantity", "unit", "rate", "amount", "currency", "peak_at"]
    rows, subtotal = [], 0.0

    def line(line_type, tou, qty, qty_text, unit, rate, peak=""):
        nonlocal subtotal
        amount = round_cents(qty * rate)
        subtotal += amount
        rows.append([invoice_id, len(rows) + 1, account, first.isoformat(), nxt.isoformat(), line_type, tou,
                     qty_text, unit, f"{rate:g}", money(amount), spec.currency, peak])

    for name in ("on_peak", "off_peak"):
        kwh = float(round(energy[name]))
        line("energy", name, kwh, f"{kwh:.0f}", "kWh", rates[name])
    demand = round(peak_kw, 1)
    peak_at = _rfc3339(peak_t.astimezone(zone))
    line("demand", "", demand, f"{demand:.1f}", "kW", spec.demand_rate_kw, peak_at)
    line("fixed", "", 1.0, "1", "month", spec.customer_charge)
    base = round_cents(subtotal)
    line("tax", "", base, money(base), spec.currency, spec.energy_tax_rate)
    _csv(path, header, rows)
    return ElectricityInvoice(len(rows), float(sum(energy.values())), float(demand), peak_at, bool(peak_sim))


def electricity_invoice_name(day: date) -> str:
    return f"PLN-{day:%Y%m}-4417.csv"


# --- colocation invoice ------------------------------------------------------------------------

def write_colocation_invoice(path: Path, fleet: Fleet, site: SiteSpec, day: date) -> int:
    spec = fleet.spec
    first, nxt, _, _ = local_month_bounds(day, site.timezone)
    nodes = fleet.site_nodes(site.id)
    commit_kw = round(sum(n.pool.reserved_kw for n in nodes), 1)
    cabinets = max(1, math.ceil(len(nodes) / 3))
    invoice_id = f"COLO-ME-{first:%Y%m}"
    items = [("power_commit", commit_kw, f"{commit_kw:.1f}", "kW-month", spec.colocation_price_kw_month),
             ("space", cabinets, str(cabinets), "cabinet-month", spec.cabinet_price_month),
             ("cross_connect", spec.cross_connects, str(spec.cross_connects), "each", spec.cross_connect_price)]
    rows = [[invoice_id, i + 1, first.isoformat(), nxt.isoformat(), item, qt, unit, f"{price:.2f}",
             money(q * price), spec.currency] for i, (item, q, qt, unit, price) in enumerate(items)]
    return _csv(path, ["invoice_id", "line_no", "period_start", "period_end", "item", "quantity", "unit",
                       "unit_price", "amount", "currency"], rows)


# --- FOCUS 1.2 cloud bill ---------------------------------------------------------------------

FOCUS_HEADER = [
    "BillingAccountId", "BillingAccountName", "BillingAccountType", "SubAccountId", "SubAccountName",
    "InvoiceId", "InvoiceIssuerName", "ProviderName", "PublisherName", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ServiceCategory", "ServiceSubcategory", "ServiceName", "ResourceId", "ResourceName", "ResourceType",
    "RegionId", "RegionName", "AvailabilityZone", "SkuId", "SkuPriceId", "PricingCategory", "PricingQuantity",
    "PricingUnit", "PricingCurrency", "ListUnitPrice", "ListCost", "ContractedUnitPrice", "ContractedCost",
    "BilledCost", "EffectiveCost", "BillingCurrency", "ConsumedQuantity", "ConsumedUnit",
    "CommitmentDiscountId", "CommitmentDiscountCategory", "CommitmentDiscountType", "CommitmentDiscountStatus",
    "Tags", "x_InstanceType",
]


def _dec(x: float) -> str:
    return f"{x:.10f}"


def write_focus(path: Path, fleet: Fleet, site: SiteSpec, day: date, egress_bytes: dict[str, np.ndarray]) -> int:
    """The day's FOCUS 1.2 cost and usage rows of the cloud account: one compute line per
    instance and hour (the first instance is covered by a savings plan: billed 0, effective
    the amortized rate), one data-transfer-out line per instance and hour (GB from the
    responses it sent), and two lines of services that serve no node (storage, logs)."""
    spec = fleet.spec
    nodes = fleet.site_nodes(site.id)
    start = day_start(day)
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    period = [_rfc3339(day_start(first)), _rfc3339(day_start(nxt))]
    account = ["884213370091", "inferledger-prod", "Management", "302718855410", "inference-cloud",
               f"INV-{first:%Y%m}-302718", "Amazon Web Services, Inc.", "AWS", "Amazon Web Services, Inc.", *period]
    region = ["us-east-1", "US East (N. Virginia)"]
    sp_arn = "arn:aws:savingsplans::302718855410:savingsplan/6f1c0e2a-1b7d-4c55-9a0e-5d3f8e0b4a21"
    rows = []
    for n in nodes:
        p = n.pool
        committed = n.number == 1
        list_price = p.hourly_price or 0.0
        eff = round(list_price * (1 - spec.commitment_discount), 10) if committed else list_price
        for h in range(24):
            a, b = start + timedelta(hours=h), start + timedelta(hours=h + 1)
            rows.append([*account, _rfc3339(a), _rfc3339(b), "Usage", "NULL",
                         f"${list_price:.2f} per On Demand Linux {p.cloud_instance_type} Instance Hour",
                         "Usage-Based", "Compute", "Virtual Machines", "Amazon Elastic Compute Cloud",
                         n.cloud_resource_id, n.id, "Instance", *region, "us-east-1a", "8CRX6QQ5M6B4TCZR",
                         "8CRX6QQ5M6B4TCZR.JRTCKXETXF", "Committed" if committed else "Standard",
                         "1", "Hours", "USD", _dec(list_price), _dec(list_price), _dec(list_price), _dec(list_price),
                         _dec(0.0 if committed else list_price), _dec(eff), spec.currency, "1", "Hours",
                         sp_arn if committed else "NULL", "Spend" if committed else "NULL",
                         "Savings Plan" if committed else "NULL", "Used" if committed else "NULL",
                         '{"pool": "cloud-h100", "team": "inference"}', p.cloud_instance_type])
        gb_per_hour = egress_bytes.get(n.id, np.zeros(24)) * 1.04 / 1e9  # headers and TLS on top of bodies
        for h in range(24):
            a, b = start + timedelta(hours=h), start + timedelta(hours=h + 1)
            gb = round(float(gb_per_hour[h]), 10)
            cost = gb * spec.egress_price_gb
            rows.append([*account, _rfc3339(a), _rfc3339(b), "Usage", "NULL",
                         f"${spec.egress_price_gb:.2f} per GB - US East (N. Virginia) data transfer to Internet",
                         "Usage-Based", "Networking", "Network Traffic", "Amazon Elastic Compute Cloud",
                         n.cloud_resource_id, n.id, "Instance", *region, "NULL", "9KMZWGZVTXKAJRFC",
                         "9KMZWGZVTXKAJRFC.JRTCKXETXF", "Standard", _dec(gb), "GB", "USD",
                         _dec(spec.egress_price_gb), _dec(cost), _dec(spec.egress_price_gb), _dec(cost), _dec(cost),
                         _dec(cost), spec.currency, _dec(gb), "GB", "NULL", "NULL", "NULL", "NULL",
                         '{"pool": "cloud-h100", "team": "inference"}', "NULL"])
    day_a, day_b = _rfc3339(start), _rfc3339(start + timedelta(days=1))
    storage_gb = 1840.5
    storage_cost = round(storage_gb * 0.023 / monthrange(day.year, day.month)[1], 10)
    rows.append([*account, day_a, day_b, "Usage", "NULL", "$0.023 per GB-Month of storage used in US East",
                 "Usage-Based", "Storage", "Object Storage", "Amazon Simple Storage Service",
                 "arn:aws:s3:::inferledger-model-weights", "inferledger-model-weights", "Bucket", *region, "NULL",
                 "WP9ANXZGBYYSGJEA", "WP9ANXZGBYYSGJEA.JRTCKXETXF", "Standard",
                 _dec(storage_gb / monthrange(day.year, day.month)[1]), "GB-Mo", "USD", "0.0230000000",
                 _dec(storage_cost), "0.0230000000", _dec(storage_cost), _dec(storage_cost), _dec(storage_cost),
                 spec.currency, _dec(storage_gb / monthrange(day.year, day.month)[1]), "GB-Mo",
                 "NULL", "NULL", "NULL", "NULL", '{"team": "ml-platform"}', "NULL"])
    logs_gb = 12.75
    rows.append([*account, day_a, day_b, "Usage", "NULL", "$0.50 per GB custom log data ingested",
                 "Usage-Based", "Management and Governance", "Observability", "AmazonCloudWatch",
                 "arn:aws:logs:us-east-1:302718855410:log-group:/inference/gateway", "/inference/gateway",
                 "Log Group", *region, "NULL", "8CT9EAPGDWGJW5X3", "8CT9EAPGDWGJW5X3.JRTCKXETXF", "Standard",
                 _dec(logs_gb), "GB", "USD", "0.5000000000", _dec(logs_gb * 0.5), "0.5000000000",
                 _dec(logs_gb * 0.5), _dec(logs_gb * 0.5), _dec(logs_gb * 0.5), spec.currency, _dec(logs_gb), "GB",
                 "NULL", "NULL", "NULL", "NULL", '{"team": "platform"}', "NULL"])
    return _csv(path, FOCUS_HEADER, rows)


# --- asset register ---------------------------------------------------------------------------

def write_asset_register(path: Path, fleet: Fleet, day: date, seed: int) -> tuple[int, dict]:
    """One asset per owned node (straight-line, 60 months; the batch pool declining-balance),
    the node entering service on `spec.expansion_day` (the last premium node), and on the
    first standard node a GPU set disposed after an RMA with its replacement. Returns
    (rows, facts about the special assets)."""
    spec = fleet.spec
    expansion = spec.expansion_day or day
    rng = np.random.default_rng([seed, 0xA55E7])
    header = ["asset_id", "description", "node_id", "acquisition_cost", "currency", "in_service_date",
              "useful_life_months", "salvage_value", "depreciation_method", "disposal_date"]
    rows, facts = [], {}
    next_id = iter(range(204_100, 10_000_000))
    premium = [n for n in fleet.nodes if n.owned and n.pool.id == "premium-h200"]
    for n in fleet.nodes:
        if not n.owned:
            continue
        p = n.pool
        cost = round(p.server_cost * float(rng.uniform(0.96, 1.05)), 2)
        in_service = expansion - timedelta(days=int(rng.integers(120, 900)))
        if premium and n.id == premium[-1].id:
            in_service = expansion
            facts["entering_service"] = {"node_id": n.id, "in_service_date": expansion.isoformat()}
        method, salvage = ("DB", 0.10) if p.id == "batch-l40s" else ("SL", 0.05)
        desc = {"H200": "HGX H200 8-GPU server, liquid-cooled", "L40S": "4x L40S inference server, 2U"}[p.gpu_model]
        if p.id == "standard-l40s" and n.number == 1:
            chassis, gpus = round(cost * 0.4, 2), round(cost * 0.6, 2)
            disposal = expansion - timedelta(days=45)
            rows.append([f"FA-{next(next_id)}", "2U server chassis, CPUs, memory, NICs", n.id, f"{chassis:.2f}",
                         spec.currency, in_service.isoformat(), spec.useful_life_months, f"{chassis * salvage:.2f}",
                         method, ""])
            old_id = f"FA-{next(next_id)}"
            rows.append([old_id, "GPU set 4x L40S (returned under RMA)", n.id, f"{gpus:.2f}", spec.currency,
                         in_service.isoformat(), spec.useful_life_months, f"{gpus * salvage:.2f}", method,
                         disposal.isoformat()])
            new_cost = round(gpus * 0.92, 2)
            new_id = f"FA-{next(next_id)}"
            rows.append([new_id, "GPU set 4x L40S (RMA replacement)", n.id, f"{new_cost:.2f}", spec.currency,
                         disposal.isoformat(), spec.useful_life_months, f"{new_cost * salvage:.2f}", method, ""])
            facts["disposed"] = {"asset_id": old_id, "node_id": n.id, "disposal_date": disposal.isoformat(),
                                 "replacement": new_id}
            continue
        rows.append([f"FA-{next(next_id)}", desc, n.id, f"{cost:.2f}", spec.currency, in_service.isoformat(),
                     spec.useful_life_months, f"{cost * salvage:.2f}", method, ""])
    return _csv(path, header, rows), facts
