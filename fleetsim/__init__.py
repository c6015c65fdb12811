"""The demo fleet simulator: raw exports of an AI-inference fleet, deterministic by seed.

`simulate(out_dir, day)` writes one UTC day in the formats of docs/raw-formats.md; see
fleetsim/README.md for what is simulated, the injected defects and the invoice rule.
"""

from fleetsim.simulate import SimulationSummary, simulate
from fleetsim.spec import Fleet, FleetSpec

__all__ = ["Fleet", "FleetSpec", "SimulationSummary", "simulate"]
