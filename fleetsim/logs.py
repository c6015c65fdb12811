"""Request log lines (OTel GenAI JSON Lines with vLLM latencies), built column-wise.

Each line carries fake prompt and completion text (`gen_ai.input.messages`,
`gen_ai.output.messages`, structured as the OTel GenAI conventions describe them) so the
ingest can prove it drops them. A *plan* lists which request each line shows and how the
log shipper mangled it (a defect), so defects cost no per-line Python either.
"""

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from fleetsim.spec import FleetSpec
from fleetsim.text import clock_strings, decimal_text, hex_strings, line_sink, uint_octets, write_lines_to
from fleetsim.traffic import ERROR_TYPES, OPERATIONS, STATUS_CANCELLED, STATUS_TIMEOUT, NodeRequests

LINE_NORMAL, LINE_TRUNCATED, LINE_CONFLICT = 0, 1, 2
CHUNK_ROWS = 100_000

PROMPTS = (
    "Summarise the attached discharge note for the patient's GP in plain language.",
    "Draft a reply to the customer asking why their card payment was declined twice.",
    "Extract the policy number, insured name and claim amount from this letter.",
    "Translate the following product description into Spanish and German.",
    "Write a unit test for the function below and explain the edge cases.",
    "Classify these 20 support tickets by urgency: low, medium or high.",
    "Explain the difference between a Roth IRA and a traditional IRA to a new client.",
    "Rewrite this paragraph so a twelve-year-old understands it.",
    "List the contract clauses that mention termination or renewal, with section numbers.",
    "Generate five headline variants for a spring travel campaign.",
    "What are the common side effects of metformin, and when should I call a doctor?",
    "Review this SQL query for performance problems: SELECT * FROM orders o JOIN ...",
    "Summarise yesterday's incident channel into a timeline with owners.",
    'Answer as JSON with keys "sentiment" and "topics" for the review below.',
    "Compare the two quarterly reports and list the three biggest changes.",
    "Propose a study plan for the bar exam over twelve weeks.",
)
ANSWERS = (
    "Here is a short summary in plain language: the patient was admitted with chest pain...",
    "Thank you for reaching out. I looked into the two declined payments and...",
    "Policy number: PX-2291-774; insured: J. Rivera; claim amount: 4,210.00 USD.",
    "Descripción: Una mochila ligera e impermeable... Beschreibung: Ein leichter Rucksack...",
    "def test_parse_empty():\n    assert parse('') == []\n# Edge cases: empty input, unicode...",
    "1. Ticket 4412 - high: payment outage; 2. Ticket 4413 - low: typo on invoice...",
    "The main difference is when you pay tax: contributions to a Roth IRA are made after tax...",
    "Plants make their own food using sunlight, like a tiny kitchen inside each leaf.",
    "Section 12.1 (Termination for convenience), Section 12.4 (Renewal), Section 18.2...",
    "1. Spring into somewhere new 2. Your April escape starts here 3. Bloom where you roam...",
    "Common side effects include nausea and stomach upset; call your doctor if you notice...",
    'Avoid SELECT *: the join on "customer_id" has no index, so the planner scans...',
    "09:12 alert fired (owner: SRE on call); 09:20 rollback started; 09:41 resolved...",
    '{"sentiment": "positive", "topics": ["battery life", "screen"]}',
    "Revenue grew 14% quarter on quarter, gross margin fell 2 points, and headcount...",
    "Weeks 1-4: contracts and torts; weeks 5-8: constitutional law; weeks 9-12: practice exams.",
)
SYSTEM_PROMPT = "You are a careful, concise assistant."


def _json_text(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


@dataclass
class LinePlan:
    """Which request each line of a file shows (`row`) and how (`kind`)."""

    row: np.ndarray
    kind: np.ndarray

    @classmethod
    def plain(cls, n: int) -> "LinePlan":
        return cls(np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int8))

    def insert_after(self, position: int, row: int, kind: int = LINE_NORMAL) -> None:
        self.row = np.insert(self.row, position + 1, row)
        self.kind = np.insert(self.kind, position + 1, kind)


def request_ids(reqs: NodeRequests, day: date, rng: np.random.Generator) -> pl.Series:
    """`chatcmpl-` + 32 hex digits: 6 random octets, then day, node and sequence, each scrambled
    by a bijection (an odd multiplier modulo 2^bits), so ids look random yet never collide."""
    n = len(reqs)
    octets = np.concatenate([
        rng.integers(0, 256, (n, 6), dtype=np.uint8),
        uint_octets(np.full(n, (day.toordinal() * 0x9E3779) % (1 << 24)), 3),
        uint_octets(np.full(n, (reqs.node.index * 0x85EBCB) % (1 << 24)), 3),
        uint_octets((reqs.seq.astype(np.uint64) * np.uint64(0x9E3779B1)) % np.uint64(1 << 32), 4),
    ], axis=1)
    return "chatcmpl-" + hex_strings(octets)


def time_strings(arrival_ms: np.ndarray, day: date, local_tz: str | None) -> pl.Series:
    """RFC 3339 arrival times: UTC with `Z`, or local time with its offset (`-05:00`)."""
    if local_tz is None:
        return f"{day.isoformat()}T" + clock_strings(arrival_ms) + "Z"
    zone = ZoneInfo(local_tz)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    offset_min = np.array([int((start + timedelta(hours=h)).astimezone(zone).utcoffset().total_seconds() // 60)
                           for h in range(24)])[np.minimum(arrival_ms // 3_600_000, 23)]
    local = arrival_ms + offset_min * 60_000
    day_shift = np.floor_divide(local, 86_400_000)
    clock = clock_strings(local - day_shift * 86_400_000)
    dates = {s: (day + timedelta(days=int(s))).isoformat() for s in np.unique(day_shift)}
    offsets = {o: f"{'-' if o < 0 else '+'}{abs(o) // 60:02d}:{abs(o) % 60:02d}" for o in np.unique(offset_min)}
    frame = pl.DataFrame({"shift": day_shift, "off": offset_min, "clock": clock})
    return frame.select(pl.concat_str([
        pl.col("shift").replace_strict(dates, return_dtype=pl.String), pl.lit("T"), pl.col("clock"),
        pl.col("off").replace_strict(offsets, return_dtype=pl.String)])).to_series()


def write_request_log(path: Path, reqs: NodeRequests, plan: LinePlan, spec: FleetSpec, day: date,
                      rng: np.random.Generator, *, ids: pl.Series, local_tz: str | None = None,
                      with_cache_field: bool = True) -> int:
    """Write the lines of `plan` (`ids`: the request ids, from `request_ids`); returns the number
    of lines. Rented nodes run a vLLM that does not report prefix-cache hits
    (`with_cache_field=False`: the optional key is absent)."""
    prompt_pick = rng.integers(0, len(PROMPTS), len(reqs))
    answer_pick = prompt_pick  # the answer goes with its prompt
    tier_names = pl.Series([t.id for t in spec.tiers])
    model_names = pl.Series([m.id for m in spec.models])
    tenant_names = pl.Series(spec.tenant_ids())
    prompts = pl.Series([_json_text(p) for p in PROMPTS])
    answers = pl.Series([_json_text(a) for a in ANSWERS])
    written = 0
    with line_sink(path) as sink:  # plain, or compressed as the suffix says (an empty plan: an empty file)
        for lo in range(0, len(plan.row), CHUNK_ROWS):
            rows, kinds = plan.row[lo: lo + CHUNK_ROWS], plan.kind[lo: lo + CHUNK_ROWS]
            r = reqs.take(rows)
            conflict = kinds == LINE_CONFLICT
            out_tokens = np.where(conflict, r.output_tokens + 7, r.output_tokens)
            body = np.where(conflict, r.response_bytes + 29, r.response_bytes)
            f = pl.DataFrame({
                "time": time_strings(r.arrival_ms, day, local_tz),
                "id": ids.gather(rows),
                "model": model_names.gather(r.model),
                "op": pl.Series(OPERATIONS).gather(r.operation),
                "tier": tier_names.gather(r.tier),
                "tenant": tenant_names.gather(r.tenant),
                "in": r.input_tokens, "cached": r.cached_tokens, "out": out_tokens,
                "queue": r.queue_ms, "ttft": r.ttft_ms, "prefill": r.prefill_ms, "decode": r.decode_ms, "e2e": r.e2e_ms,
                "bytes": body, "status": r.status, "err": r.error_type,
                "prompt": prompts.gather(prompt_pick[rows]), "answer": answers.gather(answer_pick[rows]),
                "kind": kinds,
            })
            sec = lambda c: decimal_text(pl.col(c), 3)  # noqa: E731 - ms as seconds
            error = (pl.when(pl.col("status") == STATUS_CANCELLED).then(pl.lit('"cancelled"'))
                     .when(pl.col("status") == STATUS_TIMEOUT).then(pl.lit('"timeout"'))
                     .when(pl.col("err") >= 0)
                     .then(pl.lit('"') + pl.col("err").cast(pl.Int64).clip(0)
                           .replace_strict(dict(enumerate(ERROR_TYPES)), return_dtype=pl.String) + '"')
                     .otherwise(pl.lit("null")))
            finish = (pl.when(pl.col("status") == STATUS_TIMEOUT).then(pl.lit("length"))
                      .when(pl.col("status") == STATUS_CANCELLED).then(pl.lit("abort")).otherwise(pl.lit("stop")))
            output = (pl.when(pl.col("out") > 0)
                      .then(pl.concat_str([pl.lit('[{"role":"assistant","parts":[{"type":"text","content":"'),
                                           pl.col("answer"), pl.lit('"}],"finish_reason":"'), finish, pl.lit('"}]')]))
                      .otherwise(pl.lit("[]")))
            line = pl.concat_str([
                pl.lit('{"time":"'), pl.col("time"),
                pl.lit('","gen_ai.response.id":"'), pl.col("id"),
                pl.lit(f'","server.address":"{reqs.node.id}","gen_ai.request.model":"'), pl.col("model"),
                pl.lit('","gen_ai.operation.name":"'), pl.col("op"),
                pl.lit('","inferledger.tier":"'), pl.col("tier"),
                pl.lit('","inferledger.tenant.id":"'), pl.col("tenant"),
                pl.lit('","gen_ai.usage.input_tokens":'), pl.col("in").cast(pl.String),
                *([pl.lit(',"gen_ai.usage.cache_read.input_tokens":'), pl.col("cached").cast(pl.String)]
                  if with_cache_field else []),
                pl.lit(',"gen_ai.usage.output_tokens":'), pl.col("out").cast(pl.String),
                pl.lit(',"gen_ai.latency.time_in_queue":'), sec("queue"),
                pl.lit(',"gen_ai.latency.time_to_first_token":'),
                pl.when(pl.col("ttft") >= 0).then(sec("ttft")).otherwise(pl.lit("null")),
                pl.lit(',"gen_ai.latency.time_in_model_prefill":'), sec("prefill"),
                pl.lit(',"gen_ai.latency.time_in_model_decode":'), sec("decode"),
                pl.lit(',"gen_ai.latency.e2e":'), sec("e2e"),
                pl.lit(',"http.response.body.size":'), pl.col("bytes").cast(pl.String),
                pl.lit(',"error.type":'), error,
                pl.lit(f',"gen_ai.input.messages":[{{"role":"system","parts":[{{"type":"text","content":"{SYSTEM_PROMPT}"}}]}},'
                       '{"role":"user","parts":[{"type":"text","content":"'), pl.col("prompt"),
                pl.lit('"}]}],"gen_ai.output.messages":'), output, pl.lit("}"),
            ])
            # A truncated write: the shipper lost the end of the line.
            line = (pl.when(pl.col("kind") == LINE_TRUNCATED).then(line.str.slice(0, line.str.len_chars() // 2))
                    .otherwise(line))
            written += write_lines_to(sink, f.select(line.alias("l")))
    return written
