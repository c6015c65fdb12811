"""The plan options YAML (docs/planning.md, "Options"): what the ledger cannot say.

Where each tier's users are, the network round trip from each site to them, the sites' power caps,
the redundancy minimums that differ from the inventory's, the request-size buckets, the fleet
horizon's growth factor and its candidate hardware. `parse_options(text, where)` checks every key
and names the file, the key and the fix of the first problem (`PlanOptionsError`); nothing unknown
is ignored silently.
"""

from dataclasses import dataclass, field

import yaml

from transforms.planning.buckets import DEFAULT_BUCKETS, Bucket
from transforms.planning.inputs import HardwareOption


class PlanOptionsError(ValueError):
    """The options file cannot be used: the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Candidate:
    """A hardware option of the fleet horizon; its capacity is that of the existing pool
    `capacity_like` (same GPU model and models served), its cost and power its own."""

    option: HardwareOption
    capacity_like: str


@dataclass(frozen=True)
class PlanOptions:
    users: dict[str, str]
    round_trips_ms: dict[str, dict[str, float]]
    power_caps_kw: dict[str, float] = field(default_factory=dict)
    redundancy: dict[str, int] = field(default_factory=dict)
    growth: float = 1.0
    candidates: tuple[Candidate, ...] = ()
    headroom: float = 0.0  # share of each node's capacity the plan keeps free (0 = plan to the capacity)
    buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS  # request-size buckets by input + output tokens


_TOP = {"users", "round_trips_ms", "power_caps_kw", "redundancy", "growth", "candidates", "headroom", "buckets"}
_CANDIDATE = {"name", "site", "gpu_model", "max_nodes", "idle_w", "full_w", "pue", "capex", "life_hours",
              "hourly_price", "egress_per_gb", "response_bytes_per_token", "redundancy_min", "capacity_like"}
_REQUIRED = ("name", "site", "gpu_model", "max_nodes", "idle_w", "full_w", "pue", "capacity_like")


def _fail(where: str, key: str, problem: str, fix: str) -> PlanOptionsError:
    return PlanOptionsError(f"{where}: {key}: {problem}; {fix} (docs/planning.md, \"Options\")")


def _number(where: str, key: str, value, *, minimum: float = 0.0, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or value < minimum:
        kind = "an integer" if integer else "a number"
        raise _fail(where, key, f"{value!r} is not {kind} >= {minimum:g}", f"write {kind} >= {minimum:g}")
    return value


def _mapping(where: str, key: str, value) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, key, f"expected a mapping, got {type(value).__name__}", "write `name: value` lines")
    return value


def _candidate(where: str, i: int, raw) -> Candidate:
    key = f"candidates[{i}]"
    raw = _mapping(where, key, raw)
    unknown = sorted(set(raw) - _CANDIDATE)
    if unknown:
        raise _fail(where, f"{key}.{unknown[0]}", "unknown key", f"use only {', '.join(sorted(_CANDIDATE))}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise _fail(where, f"{key}.{missing[0]}", "missing", f"give {', '.join(_REQUIRED)}")
    nums = {k: _number(where, f"{key}.{k}", v, integer=k in ("max_nodes", "redundancy_min"),
                       minimum=1.0 if k in ("pue", "life_hours") else 0.0)
            for k, v in raw.items() if k not in ("name", "site", "gpu_model", "capacity_like")}
    option = HardwareOption(str(raw["name"]), str(raw["site"]), str(raw["gpu_model"]), **nums)
    return Candidate(option, str(raw["capacity_like"]))


def _buckets(where: str, raw) -> tuple[Bucket, ...]:
    """`- {name: small, max_tokens: 1000}` ... the last without `max_tokens`; bounds increasing."""
    if raw is None:
        return DEFAULT_BUCKETS
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "buckets", "expected a list of buckets", "write `- {name: small, max_tokens: 1000}` "
                    "lines, the last without max_tokens")
    out: list[Bucket] = []
    for i, item in enumerate(raw):
        key = f"buckets[{i}]"
        item = _mapping(where, key, item)
        if set(item) - {"name", "max_tokens"} or "name" not in item:
            raise _fail(where, key, f"keys {sorted(item)}", "give `name` and, but for the last, `max_tokens`")
        last = i == len(raw) - 1
        if last != ("max_tokens" not in item):
            raise _fail(where, f"{key}.max_tokens", "present on the last bucket" if last else "missing",
                        "every bucket but the last has max_tokens; the last takes every larger request")
        bound = None if last else int(_number(where, f"{key}.max_tokens", item["max_tokens"], minimum=1,
                                              integer=True))
        if bound is not None and out and bound <= out[-1].max_tokens:
            raise _fail(where, f"{key}.max_tokens", f"{bound} is not above {out[-1].max_tokens}",
                        "list the buckets from the smallest, bounds increasing")
        if str(item["name"]) in {b.name for b in out}:
            raise _fail(where, f"{key}.name", f"{item['name']!r} repeats", "name each bucket once")
        out.append(Bucket(str(item["name"]), bound))
    return tuple(out)


def parse_options(text: str, where: str) -> PlanOptions:
    """The options of YAML `text` read from `where` (a file name, for the messages)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PlanOptionsError(f"{where}: not YAML ({e}); fix the syntax") from None
    raw = _mapping(where, "(top level)", raw or {})
    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise _fail(where, unknown[0], "unknown key", f"use only {', '.join(sorted(_TOP))}")
    for key in ("users", "round_trips_ms"):
        if key not in raw:
            raise _fail(where, key, "missing", "every plan needs where each tier's users are and the round trips")
    users = {str(t): str(u) for t, u in _mapping(where, "users", raw["users"]).items()}
    rtts = {str(s): {str(u): float(_number(where, f"round_trips_ms.{s}.{u}", ms)) for u, ms in
                     _mapping(where, f"round_trips_ms.{s}", row).items()}
            for s, row in _mapping(where, "round_trips_ms", raw["round_trips_ms"]).items()}
    caps = {str(s): float(_number(where, f"power_caps_kw.{s}", kw, minimum=0.0))
            for s, kw in _mapping(where, "power_caps_kw", raw.get("power_caps_kw") or {}).items()}
    redundancy = {str(p): int(_number(where, f"redundancy.{p}", n, integer=True))
                  for p, n in _mapping(where, "redundancy", raw.get("redundancy") or {}).items()}
    growth = float(_number(where, "growth", raw.get("growth", 1.0)))
    headroom = float(_number(where, "headroom", raw.get("headroom", 0.0)))
    if headroom >= 1:
        raise _fail(where, "headroom", f"{headroom!r} is not below 1", "write the share kept free, 0 <= h < 1")
    candidates = raw.get("candidates") or []
    if not isinstance(candidates, list):
        raise _fail(where, "candidates", "expected a list", "write one `- {name: ..., ...}` per hardware option")
    return PlanOptions(users, rtts, caps, redundancy, growth,
                       tuple(_candidate(where, i, c) for i, c in enumerate(candidates)), headroom,
                       _buckets(where, raw.get("buckets")))


def check_against(options: PlanOptions, where: str, tiers: set[str], sites: set[str], pools: set[str]) -> None:
    """Names the first tier without users, site without a round trip to some tier's users, or an
    unknown site or pool."""
    for tier in sorted(tiers):
        if tier not in options.users:
            raise _fail(where, f"users.{tier}", "missing", f"say where tier {tier}'s users are (e.g. metro)")
    for site in sorted(sites | {c.option.site for c in options.candidates}):
        for users in sorted(set(options.users.values())):
            if users not in options.round_trips_ms.get(site, {}):
                raise _fail(where, f"round_trips_ms.{site}.{users}", "missing",
                            f"give the round trip in ms from site {site} to the {users} users")
    for site in options.power_caps_kw:
        if site not in sites | {c.option.site for c in options.candidates}:
            raise _fail(where, f"power_caps_kw.{site}", "unknown site", f"use one of {sorted(sites)}")
    for pool in options.redundancy:
        if pool not in pools:
            raise _fail(where, f"redundancy.{pool}", "unknown pool", f"use one of {sorted(pools)}")
    for c in options.candidates:
        if c.capacity_like not in pools:
            raise _fail(where, f"candidates.{c.option.name}.capacity_like", f"unknown pool {c.capacity_like!r}",
                        f"use one of {sorted(pools)}")
