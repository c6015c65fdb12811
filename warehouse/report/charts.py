"""The report's charts as Vega-Lite specs (Vega-Altair), data inline.

Money axes use d3's `$` format, which vega-embed renders with the report currency's symbol
(`format_locale`); every quantitative axis names its unit.
"""

import altair as alt
import polars as pl

WIDTH, HEIGHT = 440, 240
MONEY, MONEY_SMALL, SHARE = "$,.2f", "$,.4f", ".0%"
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "CAD": "CA$", "AUD": "A$"}


def format_locale(currency: str) -> dict:
    """d3-format locale: thousands separators, the currency's symbol (else its ISO code) before amounts."""
    return {"decimal": ".", "thousands": ",", "grouping": [3],
            "currency": [CURRENCY_SYMBOLS.get(currency, f"{currency} "), ""]}


def _trend(df: pl.DataFrame, series: str, title: str, cur: str) -> alt.Chart:
    return alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=70)).encode(
        x=alt.X("day:O", title="Day (UTC)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cost_per_m_tokens:Q", title=f"Fully loaded cost per million tokens ({cur})",
                axis=alt.Axis(format=MONEY)),
        color=alt.Color(f"{series}:N", title=title),
        tooltip=[alt.Tooltip("day:O", title="day"), alt.Tooltip(f"{series}:N", title=title),
                 alt.Tooltip("cost_per_m_tokens:Q", title=f"per M tokens ({cur})", format=MONEY),
                 alt.Tooltip("tokens:Q", title="tokens", format=","),
                 alt.Tooltip("fully_loaded_cost:Q", title=f"fully loaded ({cur})", format=MONEY)],
    ).properties(width=WIDTH, height=HEIGHT)


def cost_per_m_tokens_by_tier(df: pl.DataFrame, cur: str) -> alt.Chart:
    return _trend(df, "tier", "Tier", cur)


def cost_per_m_tokens_by_pool(df: pl.DataFrame, cur: str) -> alt.Chart:
    return _trend(df, "pool_id", "Pool", cur)


def cost_per_query_by_tier(df: pl.DataFrame, cur: str) -> alt.Chart:
    long = df.unpivot(["direct", "fully loaded"], index=["tier", "requests"], variable_name="cost",
                      value_name="per_query")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("tier:N", title="Tier", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("cost:N", sort=["direct", "fully loaded"]),
        y=alt.Y("per_query:Q", title=f"Cost per query ({cur})", axis=alt.Axis(format=MONEY_SMALL)),
        color=alt.Color("cost:N", title="Cost", sort=["direct", "fully loaded"]),
        tooltip=["tier:N", "cost:N", alt.Tooltip("per_query:Q", title=f"per query ({cur})", format=MONEY_SMALL),
                 alt.Tooltip("requests:Q", format=",")],
    ).properties(width=WIDTH, height=HEIGHT)


def idle_share_by_pool_hour(df: pl.DataFrame, cur: str) -> alt.Chart:
    hours = df["hour"].n_unique()
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("utcyearmonthdatehours(hour):O", title="Hour (UTC)",
                axis=alt.Axis(format="%H:00" if hours <= 24 else "%d %b %H:00", labelAngle=-45, labelOverlap=True)),
        y=alt.Y("pool_id:N", title="Pool"),
        color=alt.Color("idle_cost_share:Q", title="Idle cost share (%)",
                        scale=alt.Scale(scheme="orangered", domain=[0, 1]), legend=alt.Legend(format=SHARE)),
        tooltip=[alt.Tooltip("utcyearmonthdatehours(hour):T", title="hour (UTC)", format="%Y-%m-%d %H:00"), "pool_id:N",
                 alt.Tooltip("idle_cost_share:Q", title="idle cost share", format=".1%"),
                 alt.Tooltip("idle_slot_share:Q", title="idle node-slots", format=".1%"),
                 alt.Tooltip("idle_cost:Q", title=f"idle cost ({cur})", format=MONEY),
                 alt.Tooltip("slot_cost:Q", title=f"capacity cost ({cur})", format=MONEY)],
    ).properties(width=max(WIDTH, 18 * hours), height=max(120, 40 * df["pool_id"].n_unique()))


def utilization_by_pool_hour(df: pl.DataFrame, cur: str) -> alt.Chart:
    hours = df["hour"].n_unique()
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("utcyearmonthdatehours(hour):O", title="Hour (UTC)",
                axis=alt.Axis(format="%H:00" if hours <= 24 else "%d %b %H:00", labelAngle=-45, labelOverlap=True)),
        y=alt.Y("pool_id:N", title="Pool"),
        color=alt.Color("utilization:Q", title="Utilization (served load / capacity, %)",
                        scale=alt.Scale(scheme="blues", domain=[0, 1], clamp=True), legend=alt.Legend(format=SHARE)),
        tooltip=[alt.Tooltip("utcyearmonthdatehours(hour):T", title="hour (UTC)", format="%Y-%m-%d %H:00"), "pool_id:N",
                 alt.Tooltip("utilization:Q", title="utilization", format=".1%"),
                 alt.Tooltip("capacity_source:N", title="capacity from"),
                 alt.Tooltip("demand_output_tokens_per_s:Q", title="demand (output tokens/s)", format=",.1f"),
                 alt.Tooltip("capacity_output_tokens_per_s_per_node:Q", title="capacity per node (tokens/s)",
                             format=",.1f"),
                 alt.Tooltip("nodes_powered:Q", title="nodes powered", format=",.2f"),
                 alt.Tooltip("nodes_needed:Q", title="nodes needed", format=",d"),
                 alt.Tooltip("surplus_cost:Q", title=f"surplus cost ({cur})", format=MONEY)],
    ).properties(width=max(WIDTH, 18 * hours), height=max(120, 40 * df["pool_id"].n_unique()))


def energy_per_token_by_model_pool(df: pl.DataFrame, cur: str) -> alt.Chart:
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("model:N", title="Model"),
        yOffset=alt.YOffset("pool_id:N"),
        x=alt.X("j_per_output_token:Q", title="Energy per output token (J, IT + overhead)",
                axis=alt.Axis(format=",.0f" if (df["j_per_output_token"].max() or 0) >= 10 else ",.2f")),
        color=alt.Color("pool_id:N", title="Pool"),
        tooltip=["model:N", "pool_id:N", alt.Tooltip("j_per_output_token:Q", title="J per output token", format=",.3f"),
                 alt.Tooltip("it_j_per_output_token:Q", title="IT J per output token", format=",.3f"),
                 alt.Tooltip("energy_estimated_share:Q", title="energy estimated", format=".0%"),
                 alt.Tooltip("energy_flag:N", title="flag"),
                 alt.Tooltip("output_tokens:Q", title="output tokens", format=",")],
    ).properties(width=WIDTH - 90, height=max(HEIGHT, 18 * df.height))  # room for model names


def pue_by_site_hour(df: pl.DataFrame, cur: str) -> alt.Chart:
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("hour:T", title="Hour (UTC)", scale=alt.Scale(type="utc"),
                axis=alt.Axis(format="%d %b %H:00", labelAngle=-45)),
        y=alt.Y("pue:Q", title="PUE (facility / IT energy, ratio)", scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".2f")),
        color=alt.Color("site_id:N", title="Site"),
        strokeDash=alt.StrokeDash("pue_method:N", title="PUE method", sort=["measured", "design_pue"],
                                  legend=alt.Legend(symbolType="stroke", symbolStrokeColor="#333",
                                                    symbolStrokeWidth=2)),
        detail="pue_method:N",
        tooltip=[alt.Tooltip("utcyearmonthdatehours(hour):T", title="hour (UTC)", format="%Y-%m-%d %H:00"),
                 "site_id:N", "pue_method:N", alt.Tooltip("pue:Q", format=".3f"),
                 alt.Tooltip("it_energy_kwh:Q", title="IT kWh", format=",.2f"),
                 alt.Tooltip("facility_energy_kwh:Q", title="facility kWh", format=",.2f")],
    ).properties(width=WIDTH, height=HEIGHT)


def margin_by_tier(df: pl.DataFrame, cur: str) -> alt.Chart:
    order = ["revenue", "fully loaded cost", "gross margin"]
    long = df.unpivot(order, index=["tier", "gross_margin_pct"], variable_name="measure", value_name="amount")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("tier:N", title="Tier", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("measure:N", sort=order),
        y=alt.Y("amount:Q", title=f"Amount ({cur})", axis=alt.Axis(format=MONEY)),
        color=alt.Color("measure:N", title="", sort=order,
                        scale=alt.Scale(domain=order, range=["#4c78a8", "#f58518", "#54a24b"])),
        tooltip=["tier:N", "measure:N", alt.Tooltip("amount:Q", title=cur, format=MONEY),
                 alt.Tooltip("gross_margin_pct:Q", title="gross margin % of revenue", format=".1%")],
    ).properties(width=WIDTH, height=HEIGHT)


def top_tenants(df: pl.DataFrame, cur: str) -> alt.Chart:
    long = df.unpivot(["direct", "idle"], index=["tenant_id", "tiers", "requests", "fully_loaded_cost", "revenue"],
                      variable_name="part", value_name="amount")
    order = df["tenant_id"].to_list()
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("tenant_id:N", title="Tenant", sort=order),
        x=alt.X("amount:Q", title=f"Fully loaded cost ({cur})", stack="zero", axis=alt.Axis(format=MONEY)),
        color=alt.Color("part:N", title="Cost", sort=["direct", "idle"]),
        order=alt.Order("part:N", sort="ascending"),
        tooltip=["tenant_id:N", "tiers:N", "part:N", alt.Tooltip("amount:Q", title=cur, format=MONEY),
                 alt.Tooltip("fully_loaded_cost:Q", title=f"fully loaded ({cur})", format=MONEY),
                 alt.Tooltip("revenue:Q", title=f"revenue ({cur})", format=MONEY),
                 alt.Tooltip("requests:Q", format=",")],
    ).properties(width=WIDTH, height=max(HEIGHT, 24 * df.height))


def reconciliation_by_component(df: pl.DataFrame, cur: str) -> alt.Chart:
    money = df.filter(pl.col("unit") == cur)
    order = ["to requests", "to idle", "unattributed"]
    long = money.unpivot(order, index=["component", "source_amount", "difference"], variable_name="went",
                         value_name="amount")
    bars = alt.Chart(long).mark_bar().encode(
        y=alt.Y("component:N", title="Cost component"),
        x=alt.X("amount:Q", title=f"Amount ({cur})", stack="zero", axis=alt.Axis(format=MONEY)),
        color=alt.Color("went:N", title="Allocated", sort=order),
        order=alt.Order("went:N", sort="descending"),
        tooltip=["component:N", "went:N", alt.Tooltip("amount:Q", title=cur, format=MONEY),
                 alt.Tooltip("source_amount:Q", title=f"sources ({cur})", format=MONEY),
                 alt.Tooltip("difference:Q", title=f"difference ({cur})", format=",.6f")],
    )
    sources = alt.Chart(money).mark_tick(color="black", thickness=2, size=22).encode(
        y="component:N", x=alt.X("source_amount:Q"),
        tooltip=["component:N", alt.Tooltip("source_amount:Q", title=f"sources ({cur})", format=MONEY)])
    return (bars + sources).properties(width=WIDTH, height=max(160, 34 * money.height))


def quarantine_by_reason(df: pl.DataFrame, cur: str) -> alt.Chart:
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("reason:N", title="Quarantine reason", sort="-x"),
        x=alt.X("rows:Q", title="Quarantined rows (records)", axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color("dataset:N", title="Input"),
        tooltip=["dataset:N", "reason:N", alt.Tooltip("rows:Q", format=","), "example:N"],
    ).properties(width=WIDTH, height=max(120, 26 * df.height))


# Chart id -> (frame it draws, builder, section title, what it answers).
CHARTS = {
    "cost-per-m-tokens-tier": ("cost_per_m_tokens_by_tier", cost_per_m_tokens_by_tier,
                               "Cost per million tokens by tier",
                               "Fully loaded cost / (input + output tokens), per day."),
    "cost-per-m-tokens-pool": ("cost_per_m_tokens_by_pool", cost_per_m_tokens_by_pool,
                               "Cost per million tokens by pool",
                               "Fully loaded cost / (input + output tokens) of the pool's requests, per day."),
    "cost-per-query-tier": ("cost_per_query_by_tier", cost_per_query_by_tier,
                            "Direct vs fully loaded cost per query by tier",
                            "Direct: energy, demand, hardware, cloud, fixed and egress cost. "
                            "Fully loaded adds the tier's share of idle capacity."),
    "idle-share-heatmap": ("idle_share_by_pool_hour", idle_share_by_pool_hour,
                           "Idle cost share by pool and hour",
                           "Share of each pool's capacity cost spent in node-slots with no request running."),
    "capacity-utilization": ("utilization_by_pool_hour", utilization_by_pool_hour,
                             "Capacity: utilization by pool and hour, and over-provisioning",
                             "Served output tokens/s / (capacity per node at the strictest objective of the tiers "
                             "served x nodes powered). Blank cells: capacity unknown (no profile, no knee in the "
                             "telemetry); never invented. Not the idle share above: a node running one request "
                             "where it could batch sixty is busy, yet mostly surplus."),
    "energy-per-token": ("energy_per_token_by_model_pool", energy_per_token_by_model_pool,
                         "Energy per output token by model and pool",
                         "IT + facility overhead energy attributed to requests / output tokens."),
    "pue-site-hour": ("pue_by_site_hour", pue_by_site_hour, "PUE by site and hour",
                      "Solid: measured by a facility meter; dashed: the site's design PUE (no meter)."),
    "margin-tier": ("margin_by_tier", margin_by_tier, "Revenue, cost and margin by tier",
                    "Revenue at list price of ok requests against fully loaded cost."),
    "top-tenants": ("top_tenants", top_tenants, "Top 10 tenants by fully loaded cost",
                    "Chargeback: direct cost plus the idle share their requests carry."),
    "reconciliation": ("conservation", reconciliation_by_component, "Reconciliation: sources vs allocated",
                       "Per money component: where each source went (bars) against the sources' total (black tick)."),
    "quarantine": ("quarantine_by_reason", quarantine_by_reason, "Quarantined input rows by reason",
                   "Records the ingest set aside, by input and reason (docs/data-contracts.md)."),
}
