"""`inferledger plan`: the least-cost plan of a window of published days (docs/planning.md, "CLI").

Reads the window's ledger (warehouse/plan_inputs.py) and the options YAML, checks calibration
(the cost model on the actual nodes and routing against the ledger, within 5% per pool and in
total), solves the plan (or the what-if, or scores a training window's plan on a test window),
keeps its rows in the lake (`warehouse.plans.keep_plan`), prints them (`plan_output`) and
publishes the warehouse again so that finance reads the plan beside the ledger (unless
`--no-publish`). Exit 0 done, 1 inputs refused, no feasible plan, or the publish failed.
"""

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from rich.markup import escape

from lake.inventory import inventory_path, load_inventory
from pipelines.cli.output import console
from pipelines.cli.plan_output import print_plan
from pipelines.cli.runs import run_publish
from settings import Settings
from transforms.inventory import InventoryError
from transforms.planning import Plan, PlanInfeasible, PlanInputError, WhatIfError, calibrate, plan, what_if
from transforms.planning.backtest import backtest
from transforms.planning.ledger import (CALIBRATED, FromLedger, calibration, calibration_verdict, from_ledger,
                                       power_note, with_candidates)
from transforms.planning.options import PlanOptionsError, check_against, parse_options
from transforms.planning.tiers import cost_by_tier
from warehouse.plan_inputs import ledger_frames
from warehouse.plans import COMPONENTS, PlanRun, keep_plan, plan_frames

# The documented example for the demo fleet (package data of fleetsim).
EXAMPLE_OPTIONS = Path(__file__).resolve().parents[2] / "fleetsim" / "plan_options.yaml"


def parse_window(text: str) -> tuple[date, date]:
    """`D1..D2` (inclusive) or a single day."""
    first, _, last = text.partition("..")
    try:
        return date.fromisoformat(first), date.fromisoformat(last or first)
    except ValueError:
        raise PlanInputError(f"window {text!r}: write YYYY-MM-DD..YYYY-MM-DD") from None


def _window(args) -> tuple[date, date]:
    if args.window:
        return parse_window(args.window)
    return args.date, args.date


def _load(args, settings: Settings):
    options, inventory = _options_and_inventory(args, settings)
    first, last = _window(args)
    frames = ledger_frames(settings.lake, inventory, first, last, options.buckets)
    today = from_ledger(frames, options, "day")  # calibration: the actual fleet, the actual demand
    planned = today
    if args.horizon == "fleet":
        fleet = from_ledger(frames, options, "fleet")
        planned = replace(fleet, inputs=with_candidates(fleet.inputs, options.candidates))
    return today, planned, (first, last)


def _per_pool(data, today: pl.DataFrame, made) -> pl.DataFrame:
    costs = ["energy_cost", "rent_cost", "egress_cost", "amortization_cost"]
    now = today.group_by("pool").agg(node_hours_now=pl.col("nodes_on").sum(), cost_now=pl.sum_horizontal(costs).sum())
    planned = made.costs.group_by("pool").agg(node_hours_planned=pl.col("nodes_on").sum(),
                                              cost_planned=pl.col("total_cost").sum())
    ledger = data.ledger.select("pool", ledger=pl.sum_horizontal("energy_cost", "rent_cost", "egress_cost"))
    return (planned.join(now, on="pool", how="left").join(ledger, on="pool", how="left")
            .with_columns(pl.col("node_hours_now", "cost_now", "ledger").fill_null(0.0))
            .with_columns(savings=pl.col("cost_now") - pl.col("cost_planned"))
            .select("pool", "ledger", "cost_now", "cost_planned", "savings", "node_hours_now", "node_hours_planned")
            .sort("pool"))


def _options_and_inventory(args, settings: Settings):
    options_file = Path(args.options) if args.options else EXAMPLE_OPTIONS
    if not options_file.is_file():
        raise PlanOptionsError(f"{options_file}: options file not found; pass --options FILE "
                               f"(an example: {EXAMPLE_OPTIONS})")
    options = parse_options(options_file.read_text(), str(options_file))
    inventory = load_inventory(inventory_path(settings.raw, settings.inventory))
    check_against(options, str(options_file), {t.id for t in inventory.tiers}, {s.id for s in inventory.sites},
                  {p.id for p in inventory.pools})
    return options, inventory


def cmd_backtest(args, settings: Settings) -> int:
    """`--train D1..D2 --test D3..D4`: the day plan of the training days scored on the test days,
    kept as a run of kind backtest (the test window's routing, nodes, costs and misses)."""
    err = console(stderr=True)
    try:
        if not args.test:
            raise PlanInputError("--train needs --test D3..D4 (the later days the plan is scored on)")
        options, inventory = _options_and_inventory(args, settings)
        (t1, t2), (s1, s2) = parse_window(args.train), parse_window(args.test)
        train = from_ledger(ledger_frames(settings.lake, inventory, t1, t2, options.buckets), options)
        test = from_ledger(ledger_frames(settings.lake, inventory, s1, s2, options.buckets), options)
        scored, who, per_pool = backtest_run(train, test, f"backtest-{t1}-{t2}-on-{s1}-{s2}")
    except (PlanInputError, PlanOptionsError, InventoryError, PlanInfeasible) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return 1
    console().print(f"backtest: plan of {args.train} scored on {args.test}: ledger {who.ledger_cost:,.2f}, cost model "
                    f"on the actual fleet {who.today['total_cost']:,.2f}, plan {scored.objective:,.2f}",
                    markup=False)
    return _keep_and_publish(args, settings, scored, who, per_pool)


def backtest_run(train: FromLedger, test: FromLedger, run_id: str) -> tuple[Plan, PlanRun, pl.DataFrame]:
    """The day plan of `train` scored on `test` (`transforms.planning.backtest`) as a run of kind
    backtest: the training plan with the test window's routing, nodes and costs (objective: their
    total), today's cost model and the ledger of the test window, the verdicts of both windows
    (calibrated only when both are), and the per-pool table printed."""
    made = plan(train.inputs)
    result = backtest(made, test)
    hours = made.nodes["hour"]
    scored = replace(made, routing=result.routing, nodes=result.costs.select("pool", "hour", "nodes_on"),
                     costs=result.costs, objective=float(result.costs["total_cost"].sum()))
    verdicts = {name: calibration(data) for name, data in (("training", train), ("test", test))}
    today = calibration_today(test)
    who = PlanRun(run_id, datetime.now(UTC), today=_by_component(today), tiers=_tiers(test, test, scored, today),
                  kind="backtest", calibrated=all(bool(v["within"].all()) for v in verdicts.values()),
                  calibration="; ".join(f"{n}: {calibration_verdict(v)}" for n, v in verdicts.items())
                  + f"; {result.fallback_rows} test demand row(s) routed as actually (unseen in training)",
                  ledger_cost=result.ledger_cost, trained=(hours.min(), hours.max()))
    return scored, who, _per_pool(test, today, scored)


def cmd_plan(args, settings: Settings) -> int:
    if args.train:
        return cmd_backtest(args, settings)
    out, err = console(), console(stderr=True)
    try:
        data, planned, (first, last) = _load(args, settings)
        verdict = calibration(data)
        made = what_if(planned.inputs, args.what_if) if args.what_if else plan(planned.inputs)
        optimum = plan(planned.inputs) if args.what_if else made
    except (PlanInputError, PlanOptionsError, InventoryError, WhatIfError, PlanInfeasible) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return 1
    today = calibration_today(data)
    if args.horizon == "fleet":  # today's fleet carries its amortization (the ledger's) in this horizon
        today = (today.drop("amortization_cost")
                 .join(data.actual_nodes.collect().join(data.ledger.lazy().select("pool").collect(), on="pool")
                       .join(pl.DataFrame({"pool": [p.name for p in data.inputs.pools],
                                           "rate": [p.amortization_per_node_hour for p in data.inputs.pools]}),
                             on="pool")
                       .select("pool", "hour", amortization_cost=pl.col("nodes_on") * pl.col("rate")),
                       on=["pool", "hour"], how="left")
                 .with_columns(pl.col("amortization_cost").fill_null(0.0)))
    tag = hashlib.sha256(args.what_if.encode()).hexdigest()[:8] if args.what_if else ""
    run_id = f"{args.horizon}-{first}-{last}" + (f"-whatif-{tag}" if tag else "")
    who = PlanRun(run_id, datetime.now(UTC), args.what_if, _by_component(today), _tiers(data, planned, made, today),
                  kind="what_if" if args.what_if else "plan", calibrated=bool(verdict["within"].all()),
                  calibration=calibration_verdict(verdict), ledger_cost=float(data.ledger.select(
                      pl.sum_horizontal(CALIBRATED)).sum().item()))
    if args.horizon == "fleet":
        out.print(f"fleet horizon: planned for the demand x {planned.inputs.growth:g} (options' growth), today at x 1; "
                  "amortization counted on both sides", markup=False)
    if args.what_if:
        out.print(f"what-if {args.what_if!r}: {made.objective:,.4f} against the optimum {optimum.objective:,.4f} "
                  f"(+{made.objective - optimum.objective:,.4f}; gaps {made.mip_gap:.1e} and {optimum.mip_gap:.1e})",
                  markup=False)
    for note in (unknown_capacity_note(made.exclusions), power_note(data.power)):
        if note:
            out.print(note, markup=False)
    return _keep_and_publish(args, settings, made, who, _per_pool(data, today, made))


def _keep_and_publish(args, settings: Settings, made, who: PlanRun, per_pool: pl.DataFrame) -> int:
    """Print the run's tables, keep its rows in the lake, publish the warehouse (unless --no-publish)."""
    out = console()
    print_plan(plan_frames(made, who), per_pool, out, title=f"{who.kind} {who.run_id}")
    keep_plan(settings.lake, made, who)
    where = settings.lake if isinstance(settings.lake, str) else settings.lake.resolve()  # str: an object store
    out.print(f"plan kept in {where}/plans (run_id {who.run_id})", markup=False)
    if args.no_publish:
        out.print("not published (--no-publish): the next `inferledger publish` or nightly run publishes it",
                  markup=False)
        return 0
    meta = run_publish(settings, out=out)
    out.print(f"published version {meta['version']}: plan tables in {settings.warehouse.resolve()} "
              f"(SELECT * FROM plan_summary WHERE run_id = '{who.run_id}')", markup=False)
    return 0


def _by_component(today: pl.DataFrame) -> dict[str, float]:
    """Today's cost (per pool-hour, `calibrate`) by component and in total."""
    by = {c: float(today[c].sum()) for c in COMPONENTS if c != "total_cost"}
    return {**by, "total_cost": sum(by.values())}


def _tiers(data, planned, made, today: pl.DataFrame) -> pl.DataFrame:
    """Per tier and component: planned and today's cost, requests and the plan's objective risk."""
    routing = made.routing.lazy().select("hour", "tier", "model", "bucket", "pool", "share")
    plan_side = cost_by_tier(planned.inputs, made.costs, routing).rename({"cost": "planned_cost"})
    today_side = cost_by_tier(data.inputs, today, data.actual_routing).select("tier", "component", today_cost="cost")
    return (plan_side.join(today_side, on=["tier", "component"], how="full", coalesce=True)
            .join(data.requests, on="tier", how="left"))


def unknown_capacity_note(exclusions: pl.DataFrame) -> str | None:
    """One line naming the (pool, model, bucket) whose capacity is unknown (never planned on), or None."""
    unknown = (exclusions.filter(pl.col("excluded") == "capacity_unknown")
               .select(name=pl.format("{} {} ({})", "pool", "model", "bucket")).unique().sort("name"))
    if unknown.is_empty():
        return None
    return ("capacity unknown, nothing routed there by the plan (docs/capacity.md; add a profile or let the "
            "telemetry learn it): " + ", ".join(unknown.to_series()))


def calibration_today(data) -> pl.DataFrame:
    """Today's cost model per pool-hour (the actual nodes and routing), as the plan is priced."""
    return calibrate(data.inputs, data.actual_nodes, data.actual_routing).collect()
