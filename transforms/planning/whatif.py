"""What-ifs in one line (docs/planning.md, "What-if grammar"), priced by the same program.

    what-if  := clause (";" clause)*
    clause   := TIER "->" "pool" POOL           all of TIER's demand to POOL
              | TIER "->" "site" SITE           TIER's demand only to pools of SITE
              | "move" TIER "to" NAME           NAME a site (its pools) or a pool
              | "retire" N "node"["s"] "of" POOL    POOL has N nodes fewer available
              | "add" N "node"["s"] "of" POOL       POOL has N nodes more available

Names are single words as the inputs spell them; keywords are case-insensitive. `parse_what_if`
is pure text; `apply_what_if` checks the names against the inputs and returns the changed inputs.
"""

import re
from dataclasses import dataclass

from transforms.planning.inputs import PlanInputs

_NAME = r"([A-Za-z0-9_.:-]+)"
_ROUTE = re.compile(rf"^{_NAME}\s*->\s*(pool|site)\s+{_NAME}$", re.IGNORECASE)
_MOVE = re.compile(rf"^move\s+{_NAME}\s+to\s+{_NAME}$", re.IGNORECASE)
_NODES = re.compile(rf"^(retire|add)\s+(\d+)\s+nodes?\s+of\s+{_NAME}$", re.IGNORECASE)
GRAMMAR = ("TIER -> pool POOL | TIER -> site SITE | move TIER to SITE-OR-POOL | retire N nodes of POOL | "
           "add N nodes of POOL, clauses separated by ';'")


class WhatIfError(ValueError):
    """A what-if that cannot be read or does not match the inputs; the message says what to write."""


@dataclass(frozen=True)
class Route:
    """Route `tier` only to `target`: a pool (`kind` "pool"), a site's pools ("site") or either ("any")."""

    tier: str
    kind: str
    target: str


@dataclass(frozen=True)
class ChangeNodes:
    """`delta` nodes more (add) or fewer (retire, negative) available in `pool`."""

    pool: str
    delta: int


def parse_what_if(text: str) -> tuple[Route | ChangeNodes, ...]:
    """The clauses of a one-line what-if, or a `WhatIfError` naming the clause and the grammar."""
    clauses = [c.strip() for c in text.split(";")]
    if not any(clauses):
        raise WhatIfError(f"empty what-if; write one of: {GRAMMAR}")
    parsed: list[Route | ChangeNodes] = []
    for i, clause in enumerate(clauses, start=1):
        if m := _ROUTE.match(clause):
            parsed.append(Route(m[1], m[2].lower(), m[3]))
        elif m := _MOVE.match(clause):
            parsed.append(Route(m[1], "any", m[2]))
        elif m := _NODES.match(clause):
            parsed.append(ChangeNodes(m[3], int(m[2]) * (-1 if m[1].lower() == "retire" else 1)))
        else:
            raise WhatIfError(f"what-if clause {i} {clause!r} is not understood; write one of: {GRAMMAR}")
    return tuple(parsed)


def apply_what_if(inputs: PlanInputs, clauses: tuple[Route | ChangeNodes, ...]) -> PlanInputs:
    """The inputs with the what-if's routing restrictions and node changes."""
    pools = {p.name: p for p in inputs.pools}
    sites = {s.name for s in inputs.sites}
    tiers = {t.name for t in inputs.tiers}
    allowed = dict(inputs.routing_allowed)
    delta = dict.fromkeys(pools, 0)
    for clause in clauses:
        if isinstance(clause, ChangeNodes):
            if clause.pool not in pools:
                raise WhatIfError(f"what-if names pool {clause.pool!r}; the pools are {sorted(pools)}")
            delta[clause.pool] += clause.delta
            continue
        if clause.tier not in tiers:
            raise WhatIfError(f"what-if names tier {clause.tier!r}; the tiers are {sorted(tiers)}")
        if clause.tier in allowed:
            raise WhatIfError(f"what-if routes tier {clause.tier!r} twice; keep one clause for it")
        as_pool = clause.kind in ("pool", "any") and clause.target in pools
        as_site = clause.kind in ("site", "any") and clause.target in sites
        if not (as_pool or as_site):
            known = {"pool": sorted(pools), "site": sorted(sites), "any": sorted(pools) + sorted(sites)}[clause.kind]
            raise WhatIfError(f"what-if names {clause.kind if clause.kind != 'any' else 'site or pool'} "
                              f"{clause.target!r}; known: {known}")
        allowed[clause.tier] = ((clause.target,) if as_pool
                                else tuple(sorted(p for p in pools if pools[p].site == clause.target)))
    changed = []
    for name, pool in pools.items():
        available = pool.nodes_available + delta[name]
        if available < pool.redundancy_min:
            raise WhatIfError(f"what-if leaves pool {name!r} {available} nodes, under its redundancy minimum "
                              f"{pool.redundancy_min}; retire fewer")
        changed.append(pool if not delta[name] else _with_nodes(pool, available))
    return inputs.with_(pools=tuple(changed), routing_allowed=tuple(sorted(allowed.items())))


def _with_nodes(pool, available: int):
    return type(pool)(**{**pool.__dict__, "nodes_available": available})
