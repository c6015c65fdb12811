"""Physical bounds of each unit, declared once.

A value outside them is not a measurement or a charge but a unit or parsing error (mJ read as
J, cents as dollars, `1e308` from a broken exporter). The parsers quarantine such a record as
`out_of_range` (`out_of_range` below builds their check), the quality suites
(`transforms/quality/suites.py`) hold the lake to the same bounds, and the inventory
(`transforms/inventory.py`) refuses them in its own numbers. Change a bound here and all three
follow. NaN and +/-Inf are outside every bound.
"""

import polars as pl


# --- power and energy (W, J) ---------------------------------------------------------------
# A GPU or node meter may briefly read above nameplate (PSU transients, sensor error), never 1.5
# times it: the limit of a GPU meter is 1.5 x the GPU's TDP, of a node meter 1.5 x the node's
# nameplate (inventory `gpu_tdp_w`, `nameplate_w`).
NAMEPLATE_MULTIPLE = 1.5
# A node meter reading below this share of the node's `idle_w` is warned about (a quality warning,
# not a quarantine): idle is measured within a few per cent (the demo fleet's node meters read down
# to 97.4 % of it), a sub-component rail read as node power far below it (Harvard FASRC
# holygpu8a11101's `Sys Power`, 20 W).
IDLE_FLOOR = 0.9
IDLE_RULE = (f"A node meter reads at least {IDLE_FLOOR:.0%} of the node's idle power (inventory `idle_w`): far below "
             "it, the sensor is likely a sub-component rail (name the whole-node input with the meter's `sensor:`) or "
             "`idle_w` is too high; examples are (reading W, floor W).")
# The planner's full-load power of a node, fitted on the ledger (transforms/planning/ledger.py: idle + the
# measured IT energy above idle per busy node-equivalent-hour), is physical up to this multiple of its
# nameplate (inventory `nameplate_w`, the rated input power): above it, the load it was fitted on is small
# (a capacity per node set too high, or a pool far below capacity on a concave power curve): reported.
FITTED_FULL_LOAD_NAMEPLATE_MULTIPLE = 1.0
# Any meter without a nameplate in the inventory (PDU, facility): no single meter of a site
# carries more than a large power plant's output. Also bounds a facility interval's average
# power (its energy over its length).
MAX_METER_W = 1e9
# A cumulative energy counter (DCGM since boot, Redfish TotalEnergy since manufacture): a meter
# at MAX_METER_W for a century. The real Redfish mock-up reads 325,675 kWh (1.2e12 J).
MAX_COUNTER_J = MAX_METER_W * 100 * 365.25 * 86_400
# An interval reading's length (facility meters): a month; longer "intervals" are typing errors.
MAX_INTERVAL_S = 31 * 24 * 3600

# --- requests (tokens, bytes, seconds) -----------------------------------------------------
# Ten times the longest context window served today (10 M tokens), per request.
MAX_REQUEST_TOKENS = 100_000_000
# Suspicious but possible (a warning of the requests suite, not quarantined).
MAX_INPUT_TOKENS = 2_000_000
MAX_OUTPUT_TOKENS = 1_000_000
# One response body: a terabyte.
MAX_RESPONSE_BYTES = 1_000_000_000_000
# A latency longer than this is not a request but a broken clock; it also keeps
# `arrival + e2e` inside the range of a microsecond timestamp.
MAX_LATENCY_S = 1e9

# --- money (in the line's or asset's currency) ---------------------------------------------
MAX_BILL_LINE = 10_000_000.0  # one bill line, either sign
MAX_ENERGY_PRICE_PER_KWH = 5.0  # an energy line's amount / kWh, either sign; the inventory's tariffs too
MAX_ASSET_COST = 10_000_000.0  # one asset's acquisition cost (and salvage value)
MAX_USEFUL_LIFE_MONTHS = 240
MAX_PRICE_PER_M_TOKENS = 10_000.0  # a tier's list price per million tokens
MAX_REQUEST_COST = 1_000.0  # fully loaded cost of one request (a warning of the facts' suite)

# --- the inventory's own numbers -----------------------------------------------------------
MAX_NODE_W = 200_000.0  # nameplate, idle or one GPU's TDP of a node (64 GPUs of 2 kW with room)
MAX_MODEL_PARAMS_B = 100_000.0  # parameters of a model, billions


def _text(bound: pl.Expr | float) -> pl.Expr:
    return pl.lit(f"{bound:,.10g}") if isinstance(bound, (int, float)) else bound.cast(pl.String)


def out_of_range(value: pl.Expr, high: pl.Expr | float, what: pl.Expr | str, unit: str, fix: str, *,
                 low: pl.Expr | float | None = None, shown: pl.Expr | None = None) -> tuple[pl.Expr, str, pl.Expr]:
    """A parser check (for `first_reason`): `value` NaN, infinite, above `high` or below `low`
    (default: no lower bound) is `out_of_range`. The detail reads "<what> <shown> is outside
    [<low>, <high>] <unit>; <fix>", `shown` (default `value`) being the text the record held."""
    bad = ~value.is_finite() | (value > high)
    if low is not None:
        bad = bad | (value < low)
    text = value.cast(pl.String) if shown is None else shown
    what = pl.lit(what) if isinstance(what, str) else what
    # Formatted only where the check fails (a `then` branch runs on every row).
    return (bad, "out_of_range",
            pl.when(bad).then(pl.format(f"{{}} {{}} is outside [{{}}, {{}}] {unit}; {fix}", what, text.str.slice(0, 40),
                                        pl.lit("-inf") if low is None else _text(low), _text(high))))
