"""The backtest (issue 18, item 5): a plan made on a training window, scored on a later window.

`backtest(train, test)`: the day-horizon plan of the training window (`from_ledger` of its days)
gives, per pool and UTC hour of day, the nodes to keep on (the most the plan kept at that hour on
any training day) and the routing shares (the mean of the plan's shares at that hour of day, per
tier and model, normalized). They are applied to the test window's actual demand and priced with
the test window's own rates (`price`): the projected cost, against the ledger's actual cost of the
test window and the cost model on its actual fleet. An **objective miss** is a test pool-hour whose
routed load exceeds the planned nodes (`over_capacity`): demand the planned capacity would not
have served within the objectives. A (tier, model) the training plan never saw keeps its actual
routing in the test window (said in `fallback_rows`).
"""

from dataclasses import dataclass

import polars as pl

from transforms.planning.costs import calibrate, price
from transforms.planning.inputs import PlanInputs
from transforms.planning.ledger import CALIBRATED, FromLedger
from transforms.planning.pairs import demand, routing_pairs
from transforms.planning.solution import Plan


@dataclass(frozen=True)
class Backtest:
    nodes_by_hour_of_day: pl.DataFrame  # pool, hour_of_day, nodes_on
    costs: pl.DataFrame  # the plan on the test window, per pool-hour (`price`)
    misses: pl.DataFrame  # pool, hour, nodes_on, busy_nodes of the test pool-hours over the planned capacity
    ledger_cost: float  # the ledger's energy + rent + egress of the test window
    today_cost: float  # the cost model on the test window's actual fleet and routing
    planned_cost: float  # the plan applied to the test window
    fallback_rows: int  # test demand rows routed as they actually were (the training plan had no share)
    routing: pl.DataFrame  # the routing applied to the test window, as `Plan.routing` (plan_routing's rows)

    @property
    def savings(self) -> float:
        return self.today_cost - self.planned_cost


def _hod(col: str = "hour") -> pl.Expr:
    return pl.col(col).dt.hour().alias("hour_of_day")


def backtest(training_plan: Plan, test: FromLedger) -> Backtest:
    """Score `training_plan` (a day-horizon plan of the training window) on the `test` window."""
    by_hod = (training_plan.nodes.lazy().group_by("pool", _hod()).agg(nodes_on=pl.col("nodes_on").max())
              .sort("pool", "hour_of_day"))
    shares = (training_plan.routing.lazy().group_by(_hod(), "tier", "model", "bucket", "pool")
              .agg(share=pl.col("share").mean())
              .with_columns(share=pl.col("share") / pl.col("share").sum().over("hour_of_day", "tier", "model",
                                                                                  "bucket")))
    demand = test.inputs.demand.filter(pl.col("output_tokens_per_s") > 0).with_columns(_hod())
    planned = demand.join(shares, on=["hour_of_day", "tier", "model", "bucket"], how="inner")
    unseen = demand.join(shares.select("hour_of_day", "tier", "model", "bucket").unique(),
                         on=["hour_of_day", "tier", "model", "bucket"], how="anti")
    fallback = test.actual_routing.join(unseen.select("hour", "tier", "model", "bucket"),
                                        on=["hour", "tier", "model", "bucket"], how="inner")
    routing = pl.concat([planned.select("hour", "tier", "model", "bucket", "pool", "share"),
                         fallback.select("hour", "tier", "model", "bucket", "pool", "share")])
    nodes = (test.inputs.prices.select("hour").unique().with_columns(_hod())
             .join(by_hod, on="hour_of_day").select("pool", "hour", "nodes_on"))
    costs = price(test.inputs, nodes, routing).collect()
    today = calibrate(test.inputs, test.actual_nodes, test.actual_routing).collect()
    misses = costs.filter(pl.col("over_capacity")).select("pool", "hour", "nodes_on", "busy_nodes")
    return Backtest(by_hod.collect(), costs, misses, float(test.ledger.select(pl.sum_horizontal(CALIBRATED)).sum()
                                                           .item()),
                    float(today.select(pl.sum_horizontal(CALIBRATED)).sum().item()),
                    float(costs.select(pl.sum_horizontal(CALIBRATED)).sum().item()),
                    unseen.select(pl.len()).collect().item(), routed(test.inputs, routing))


def routed(inputs: PlanInputs, routing: pl.LazyFrame) -> pl.DataFrame:
    """`routing` (hour, tier, model, bucket, pool, share) with the output tokens/s it routes and the
    node-equivalents they keep busy (at the pair's capacity at the objective, else its best point:
    as `price` loads them), in `Plan.routing`'s columns."""
    pairs = routing_pairs(inputs).select("tier", "model", "bucket", "pool", "capacity_at_objective", "capacity_max")
    return (routing.join(demand(inputs), on=["hour", "tier", "model", "bucket"])
            .join(pairs, on=["tier", "model", "bucket", "pool"], how="left")
            .with_columns(output_tokens_per_s=pl.col("output_tokens_per_s") * pl.col("share"))
            .select("hour", "tier", "model", "bucket", "pool", "share", "output_tokens_per_s",
                    busy_nodes=pl.col("output_tokens_per_s") / pl.coalesce("capacity_at_objective", "capacity_max"))
            .sort("hour", "tier", "model", "bucket", "pool").collect())
