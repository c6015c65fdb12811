"""The planner's core (docs/planning.md): a mixed-integer program over the cost model, solved by HiGHS.

Pure: frames and dataclasses in, a `Plan` out. `plan(inputs)` solves the day (operational) or
fleet (strategic) horizon; `what_if(inputs, text)` solves it again under a one-line what-if;
`calibrate(inputs, nodes, routing)` prices the actual fleet and routing with the same cost model.
"""

from transforms.planning.costs import INSTALLED_SCHEMA, NODES_SCHEMA, ROUTING_SCHEMA, calibrate, price
from transforms.planning.inputs import (CAPACITY_SCHEMA, DEMAND_SCHEMA, PRICE_SCHEMA, ROUND_TRIP_SCHEMA,
                                        HardwareOption, PlanInputError, PlanInputs, Pool, Site, Tier)
from transforms.planning.highs import MIP_REL_GAP, solve
from transforms.planning.model import PlanInfeasible, build
from transforms.planning.solution import Plan, read_plan
from transforms.planning.whatif import WhatIfError, apply_what_if, parse_what_if


def plan(inputs: PlanInputs, time_limit_s: float = 300.0, mip_rel_gap: float = MIP_REL_GAP) -> Plan:
    """The least-cost plan of the inputs (checked first), to HiGHS's relative gap `mip_rel_gap`."""
    checked = inputs.check()
    return read_plan(checked, solve(build(checked), time_limit_s, mip_rel_gap))


def what_if(inputs: PlanInputs, text: str, time_limit_s: float = 300.0, mip_rel_gap: float = MIP_REL_GAP) -> Plan:
    """The least-cost plan once the one-line what-if `text` is imposed (transforms/planning/whatif.py)."""
    return plan(apply_what_if(inputs.check(), parse_what_if(text)), time_limit_s, mip_rel_gap)


__all__ = ["MIP_REL_GAP", "CAPACITY_SCHEMA", "DEMAND_SCHEMA", "INSTALLED_SCHEMA", "NODES_SCHEMA", "PRICE_SCHEMA",
           "ROUND_TRIP_SCHEMA", "ROUTING_SCHEMA", "HardwareOption", "Plan", "PlanInfeasible", "PlanInputError",
           "PlanInputs", "Pool", "Site", "Tier", "WhatIfError", "apply_what_if", "build", "calibrate", "parse_what_if",
           "plan", "price", "read_plan", "solve", "what_if"]
