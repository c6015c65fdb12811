"""The program handed to HiGHS: column-wise sparse matrix, one solve per independent block.

In the day horizon nothing links two hours (nodes on, routing, power caps are all per hour), so
each hour is its own mixed-integer program: solved apart, the sum of the hours' optima is the
window's optimum, and HiGHS's branch and bound stays small. The gap stated is the window's:
(sum of the hours' objectives - sum of their dual bounds) / sum of objectives <= `mip_rel_gap`. So
the hours are solved from the least demand to the most, and an hour may stop once its own gap is
within the relative target OR within the gap the hours before it left unused (an hour proved at 0
gap banks its whole 0.1 %): the window's guarantee is the same, and the peak hours, whose last 0.01
% of proof took most of the time, stop at their root when the quiet hours have banked enough.
The fleet horizon links the hours through the nodes installed, and is one program.
"""

import time
from dataclasses import dataclass

import highspy
import numpy as np
import polars as pl

from transforms.planning.inputs import PlanInputError
from transforms.planning.model import PlanInfeasible, Program

# HiGHS stops when (objective - dual bound) / objective is within this: 0.1 % of the window's
# cost, fifty times finer than the cost model's own accuracy (calibration is held to 5 %); every
# plan states the gap it reached, and two plans closer than their gaps are not told apart.
# HiGHS's default, 1e-4, costs 5x the time at the peak hours of 100 pools (bench/README.md).
# Tests ask for tighter to check optimality.
MIP_REL_GAP = 1e-3


@dataclass(frozen=True)
class Solved:
    """The values of the program's columns (in `col` order), HiGHS's status (the worst block's),
    objective, relative MIP gap of the whole ((objective - dual bound) / objective) and the
    seconds HiGHS ran."""

    program: Program
    values: np.ndarray
    status: str
    objective: float
    mip_gap: float
    solve_time_s: float


def _columns(program: Program, by_hour: bool):
    """(cost, lower, upper, integer, block) arrays in `col` order; block: the hour's rank or 0."""
    x, n, fleet = program.x, program.n, program.fleet
    cost = np.concatenate([x["cost"].to_numpy(), n["cost"].to_numpy(),
                           np.column_stack([fleet["cost"].to_numpy(), np.zeros(fleet.height)]).ravel()])
    lower = np.concatenate([np.zeros(x.height), n["lower"].to_numpy().astype(float), np.zeros(2 * fleet.height)])
    upper = np.concatenate([np.ones(x.height), n["upper"].to_numpy().astype(float),
                            np.column_stack([fleet["nodes_available"].to_numpy().astype(float),
                                             np.ones(fleet.height)]).ravel()])
    integer = np.concatenate([np.zeros(x.height, bool), np.ones(n.height + 2 * fleet.height, bool)])
    if by_hour:
        rank = pl.col("hour").rank("dense").cast(pl.Int64) - 1
        hours = pl.concat([x.select("col", "hour"), n.select("col", "hour")]).sort("col").select(rank)
        block = hours.to_series().to_numpy()
    else:
        block = np.zeros(len(cost), np.int64)
    return cost, lower, upper, integer, block


def solve(program: Program, time_limit_s: float = 300.0, mip_rel_gap: float = MIP_REL_GAP) -> Solved:
    """Solve the program (per hour in the day horizon) within `time_limit_s` in all, the window to
    `mip_rel_gap` (module docstring)."""
    by_hour = program.fleet.height == 0
    cost, lower, upper, integer, col_block = _columns(program, by_hour)
    rows, cols, vals = (program.triplets[c].to_numpy() for c in ("row", "col", "value"))
    row_block = np.zeros(program.rows.height, np.int64)
    row_block[rows] = col_block[cols]
    row_lower, row_upper = program.rows["lower"].to_numpy(), program.rows["upper"].to_numpy()
    values = np.zeros(len(cost))
    objective = bound = elapsed = 0.0
    statuses = []
    for b in _quiet_first(program, col_block):
        c_idx, r_idx = np.flatnonzero(col_block == b), np.flatnonzero(row_block == b)
        c_map, r_map = np.full(len(cost), -1), np.full(len(row_block), -1)
        c_map[c_idx], r_map[r_idx] = np.arange(len(c_idx)), np.arange(len(r_idx))
        mask = row_block[rows] == b
        lp = _lp(cost[c_idx], lower[c_idx], upper[c_idx], integer[c_idx], row_lower[r_idx], row_upper[r_idx],
                 r_map[rows[mask]], c_map[cols[mask]], vals[mask])
        # the gap the hours solved so far left unused (>= 0: each met the target or used only what was banked)
        banked = max(0.0, mip_rel_gap * objective - (objective - bound))
        result = _run(lp, max(1.0, time_limit_s - elapsed), mip_rel_gap, banked)
        values[c_idx] = result[0]
        objective, bound, elapsed = objective + result[1], bound + result[2], elapsed + result[3]
        statuses.append(result[4])
    gap = 0.0 if abs(objective - bound) <= 1e-12 else (objective - bound) / max(abs(objective), 1e-12)
    status = next((s for s in statuses if s != "Optimal"), "Optimal")
    return Solved(program, values, status, objective, max(gap, 0.0), elapsed)


def _quiet_first(program: Program, col_block: np.ndarray) -> np.ndarray:
    """The blocks (hours), the least demand (output tokens/s routed, summed over its rows) first."""
    blocks = np.unique(col_block)
    if len(blocks) == 1:
        return blocks
    x = program.x
    demand = np.bincount(col_block[x["col"].to_numpy()], weights=x["output_tokens_per_s"].to_numpy(),
                         minlength=int(blocks.max()) + 1)
    return blocks[np.argsort(demand[blocks], kind="stable")]


def _lp(cost, lower, upper, integer, row_lower, row_upper, rows, cols, vals) -> highspy.HighsLp:
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(row_lower)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    order = np.lexsort((rows, cols))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=len(cost)))]).astype(np.int32)
    lp.a_matrix_.index_ = rows[order].astype(np.int32)
    lp.a_matrix_.value_ = vals[order].astype(float)
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in integer]
    return lp


def _run(lp: highspy.HighsLp, time_limit_s: float, mip_rel_gap: float, mip_abs_gap: float = 0.0):
    """(values, objective, dual bound, seconds, status) of one block, stopped at either gap."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", mip_rel_gap)
    h.setOptionValue("mip_abs_gap", float(mip_abs_gap))
    h.setOptionValue("time_limit", float(time_limit_s))
    h.passModel(lp)
    started = time.perf_counter()
    h.run()
    elapsed = time.perf_counter() - started
    model_status = h.getModelStatus()
    status = h.modelStatusToString(model_status)
    if model_status == highspy.HighsModelStatus.kInfeasible:
        raise PlanInfeasible("no plan serves all demand within the nodes available, the site power caps and the "
                             "redundancy minimums (HiGHS: infeasible); add nodes, raise a cap, lower a minimum or "
                             "relax the what-if")
    if model_status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kTimeLimit):
        raise PlanInputError(f"HiGHS stopped with status {status!r}")
    info = h.getInfo()
    values = np.asarray(h.getSolution().col_value)
    if values.size != lp.num_col_:
        raise PlanInfeasible(f"HiGHS found no feasible plan within {time_limit_s:.0f} s (status {status!r})")
    objective = float(info.objective_function_value)
    has_integers = any(i == highspy.HighsVarType.kInteger for i in lp.integrality_)
    bound = float(info.mip_dual_bound) if has_integers else objective
    return values, objective, bound, elapsed, status
