"""The inventory of a hand-built day (tests that write a day's frames by hand and compute its
figures by hand: capacity, energy method shares, infrastructure nodes): USD, valid from
2026-01-01, every site on one flat tariff of 0.1 per kWh, tiers idle pro rata. A test writes
its own sites, pools, nodes and meters; `hand_inventory` adds what they all share."""

HEADER = """
version: 1
currency: USD
valid_from: 2026-01-01
"""
FLAT_TARIFF = """tariffs:
  - id: flat
    kind: time_of_use
    currency: USD
    periods: [{name: all, start: "00:00", end: "24:00", price_per_kwh: 0.1}]
"""


def tier(name: str, ttft_p95_s, e2e_p95_s, per_m_input, per_m_output) -> str:
    """One tier's YAML line, idle policy pro rata (the numbers as written: 1.0 stays `1.0`)."""
    return (f"  - {{id: {name}, ttft_p95_s: {ttft_p95_s}, e2e_p95_s: {e2e_p95_s}, price_per_m_input_tokens: "
            f"{per_m_input}, price_per_m_output_tokens: {per_m_output},\n     idle_policy: pro_rata}}\n")


def hand_inventory(fleet: str, tiers: list[str], models: dict[str, int]) -> str:
    """An inventory's YAML text: the shared header, `fleet` (the test's own `sites:`, `pools:`,
    `nodes:`, `meters:` sections, each line ending in a newline), the flat tariff, `tiers` (from
    `tier`) and `models` (id: billions of parameters)."""
    return (HEADER + fleet.lstrip("\n") + FLAT_TARIFF + "tiers:\n" + "".join(tiers) + "models:\n"
            + "".join(f"  - {{id: {m}, params_b: {b}}}\n" for m, b in models.items()))
