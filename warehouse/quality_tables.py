"""The declarations of `node_power_below_idle` and `requests_by_method_day` (`warehouse.mart_sql`
fills them), kept beside `warehouse.tables`, which places them after `ingest_audit` among the
quality tables."""

from transforms.bounds import IDLE_FLOOR
from warehouse.table import Table

NODE_POWER_BELOW_IDLE = Table(
    "node_power_below_idle",
    f"Per day and node meter whose readings sat below {IDLE_FLOOR:.0%} of the node's idle power (inventory "
    "`idle_w`), the input check power_readings.power_w.not_below_node_idle (a warning): the meter reads part of the "
    "node (an IPMI sensor of the system board, one PSU) or `idle_w` is set too high, so the node's energy and the "
    "estimate of its meter gaps are in doubt. The morning report names each with what to check.",
    {
        "date": "UTC day of the readings.",
        "site_id": "Site of the meter.",
        "node_id": "Node the meter measures.",
        "meter_id": "Node meter (inventory `meters[]`).",
        "meter_source": "Format the meter is read from: ipmi, redfish or canonical (inventory `source`).",
        "sensor": "Sensor the inventory names for the meter (`sensor:`: IPMI sensor name or Redfish sensor Id); "
                  "null when it names none (the format's default sensor was read).",
        "idle_w": "Node power when idle (inventory `idle_w`, whole node), W.",
        "floor_w": f"{IDLE_FLOOR:.0%} of idle_w: readings below it are counted, W.",
        "samples": "Readings of the meter on the day that carry a power (W).",
        "samples_below": "Of these, readings below floor_w.",
        "median_power_w": "Median reading of the day, W.",
        "min_power_w": "Lowest reading of the day, W.",
    },
    ("date", "site_id", "node_id", "meter_id"), daily=True, group="quality",
)

REQUESTS_BY_METHOD_DAY = Table(
    "requests_by_method_day",
    "Per day, energy method, sharing weight and idle policy: the day's request facts counted and summed once when "
    "the marts are built, so the morning report's methods tables (how each number was measured) read this instead "
    "of every request of its window.",
    {
        "date": "UTC day of the request facts (the attributed partition).",
        "energy_method": "How the requests' energy was obtained (request_costs.energy_method): measured, "
                         "interpolated, estimated or none.",
        "weight": "How requests shared a slot (request_costs.weight): time or tokens.",
        "idle_policy": "Idle policy of the requests' tier on their pool (request_costs.idle_policy).",
        "requests": "Requests completed in the day (a request in flight at midnight counts on its completion day).",
        "energy_kwh": "IT + overhead energy of the day's request facts, a request in flight's part of the day "
                      "included (exact sum of request_costs.energy_kwh), kWh.",
        "fully_loaded_cost": "Fully loaded cost of those facts (exact sum of request_costs.fully_loaded_cost), in the "
                             "reporting currency.",
        "currency": "ISO 4217 code of fully_loaded_cost (the inventory's reporting currency).",
    },
    ("date", "energy_method", "weight", "idle_policy"), daily=True, group="quality",
)
