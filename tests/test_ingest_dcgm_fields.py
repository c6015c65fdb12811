"""DCGM scrapes: `sample_fields` splits lines of the plain shape `name{labels} value timestamp`
and sends every other line through the regular expressions. Both ways must give the same
fields for every line: these tests hold the fast path equal to the regular expressions alone,
on awkward lines and on generated ones, and through the whole parser on a real-shaped scrape.
"""

import warnings

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

from tests.conftest import examples
from transforms.ingest.power_dcgm import DCGM_MEASURES, sample_fields

POWER, ENERGY = list(DCGM_MEASURES)
LABELS = 'gpu="0",UUID="GPU-34c2",device="nvidia0",modelName="NVIDIA L40S",Hostname="r-01"'


def fields(lines: list[str], *, plain_splits: bool) -> pl.DataFrame:
    frame = pl.LazyFrame({"_source_file": ["f.prom"] * len(lines), "_source_row": list(range(1, len(lines) + 1)),
                          "line": lines},
                         schema={"_source_file": pl.String, "_source_row": pl.Int64, "line": pl.String})
    return sample_fields(frame, plain_splits=plain_splits).collect()


def same_both_ways(lines: list[str]) -> pl.DataFrame:
    fast, slow = fields(lines, plain_splits=True), fields(lines, plain_splits=False)
    assert fast.columns == slow.columns
    assert fast.rows() == slow.rows(), lines
    return fast


AWKWARD = [
    f"{POWER}{{{LABELS}}} 57.333000 1793404807521",                 # plain
    f"{ENERGY}{{{LABELS}}} 80535935619654 1793404807521",           # plain
    f"  {POWER}{{{LABELS}}} 57.3 1793404807521",                    # leading spaces
    f"{POWER} {{{LABELS}}} 57.3 1793404807521",                     # space before the labels
    f"{POWER}{{{LABELS}}}  57.3\t1793404807521  ",                  # tabs, double and trailing spaces
    f"{POWER}{{{LABELS}}} 57.3",                                    # no timestamp
    f"{POWER} 57.3 1793404807521",                                  # no labels
    f"{POWER}{{}} 57.3 1793404807521",                              # empty labels
    f"{POWER}{{{LABELS}}} 57.3 1793404807521 extra",                # a field too many
    f"{POWER}{{{LABELS}}}57.3 1793404807521",                       # no space after the labels
    f"{POWER}{{{LABELS} 57.3 1793404807521",                        # unclosed labels
    f'{POWER}{{a="{{x",Hostname="ü-テ"}} 1 2',                      # a brace and non-ASCII in the labels
    f'{POWER}{{a="x}}",Hostname="h"}} 1 2',                         # a closing brace inside a label value
    f"{POWER}_EXTRA{{{LABELS}}} 1 2",                               # another metric with the name as prefix
    f"DCGM_FI_DEV_GPU_UTIL{{{LABELS}}} 0 1793404807521",            # another metric
    f"# HELP {POWER} Power draw (in W).",                           # comments naming the metric
    f"# TYPE {POWER} gauge",
    f" # {POWER}{{{LABELS}}} 1 2",                                  # a comment after a space
    f"{POWER}{{{LABELS}}} NaN 1793404807521",                       # values the parser judges later
    f"{POWER}{{{LABELS}}} 1.5e3 -17",
    "",
]


def test_awkward_lines_give_the_regex_fields():
    got = same_both_ways(AWKWARD)
    by_line = {r["line"]: r for r in got.iter_rows(named=True)}
    plain = by_line[AWKWARD[0]]
    assert (plain["_metric"], plain["_labels"], plain["_value"], plain["_ts"]) == (
        POWER, LABELS, "57.333000", "1793404807521")
    assert by_line[AWKWARD[6]]["_labels"] is None and by_line[AWKWARD[6]]["_value"] == "57.3"
    assert by_line[AWKWARD[11]]["_labels"] == 'a="{x",Hostname="ü-テ"'
    assert by_line[AWKWARD[10]]["_value"] is None  # unclosed labels: not a sample (malformed_record later)
    # Comments and other metrics are not samples; the other lines all are (of the two measures).
    assert got.height == len(AWKWARD) - 6


label_text = st.text(alphabet=st.sampled_from(list('ab=",{} \tü1_:.-')), max_size=12)
token = st.text(alphabet=st.sampled_from(list("0123456789.eE-+xN a\t")), max_size=8)
space = st.sampled_from(["", " ", "  ", "\t"])
generated_line = st.builds(
    lambda lead, name, sep, labels, has_labels, gap, value, gap2, ts, tail:
        f"{lead}{name}{sep}{'{' + labels + '}' if has_labels else ''}{gap}{value}{gap2}{ts}{tail}",
    space, st.sampled_from([POWER, ENERGY, POWER + "_X", "#", "DCGM_FI_DEV_GPU_UTIL"]), space, label_text,
    st.booleans(), space, token, space, token, space)
# Lines of (nearly) the plain shape: labels and values may still hold a brace, a space or a tab.
near_plain_line = st.builds(lambda name, labels, value, ts: f"{name}{{{labels}}} {value} {ts}",
                            st.sampled_from([POWER, ENERGY, POWER + "_X"]), label_text, token, token)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.one_of(generated_line, near_plain_line), max_size=10))
def test_generated_lines_give_the_regex_fields(lines):
    same_both_ways(lines)


def test_generated_lines_take_both_paths():
    """The generator makes plain lines and others (else the test above would prove little)."""
    with warnings.catch_warnings():  # `.example()` is meant for exploring, which this is
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        lines = [near_plain_line.example() for _ in range(200)] + [generated_line.example() for _ in range(200)]
    plain = pl.Series(lines).str.contains(r"^[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\} \S+ \S+$")
    assert 20 <= plain.sum() <= 380
