"""The first partition day is a setting (INFERLEDGER_FIRST_DAY, default 2024-01-01): the code
location's partitions start there, and a command for an earlier day is one line naming it."""

from datetime import date

import dagster as dg
import pytest

import fleetsim
import settings as st
from pipelines.cli import main
from pipelines.location import code_location

DAY = date(2023, 11, 16)  # the Azure 2023 trace's day, before the default first day
SITES = ("cloud-use1", "metro-east", "remote-plains")


def first_keys(defs: dg.Definitions) -> dict[str, str]:
    out = {}
    for job in ("ingest_day_site", "attribute_day"):
        keys = defs.resolve_job_def(job).partitions_def
        multi = isinstance(keys, dg.MultiPartitionsDefinition)
        daily = keys.get_partitions_def_for_dimension("date") if multi else keys
        out[job] = daily.get_first_partition_key()
    return out


def test_the_partitions_start_on_the_setting():
    assert st.default("first_day") == date(2024, 1, 1)
    assert first_keys(code_location(st.defaults())) == {"ingest_day_site": "2024-01-01", "attribute_day": "2024-01-01"}
    moved = code_location(st.resolve({"INFERLEDGER_FIRST_DAY": "2023-11-16"}))
    assert first_keys(moved) == {"ingest_day_site": "2023-11-16", "attribute_day": "2023-11-16"}
    # Every partitioned asset moved with the jobs; the schedule and sensors target the new jobs.
    graph = moved.resolve_asset_graph()
    starts = {k.to_user_string(): graph.get(k).partitions_def for k in graph.get_all_asset_keys()}
    assert {k for k, p in starts.items() if p is None} == {"warehouse", "report"}
    assert moved.resolve_schedule_def("nightly").job_name == "ingest_day_site"
    assert {s.name for s in moved.sensors} == {"downstream", "late_data"}
    with pytest.raises(st.SettingError, match=r"INFERLEDGER_FIRST_DAY='16/11/2023': write a date as YYYY-MM-DD"):
        st.resolve({"INFERLEDGER_FIRST_DAY": "16/11/2023"})


def test_a_day_before_the_first_is_one_line_naming_the_setting(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("INFERLEDGER_FIRST_DAY", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    paths = ["--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake")]
    expected = ("error: 2023-11-16 is before the first day the pipeline has partitions for, 2024-01-01 "
                "(INFERLEDGER_FIRST_DAY): set INFERLEDGER_FIRST_DAY=2023-11-16 or earlier to run it "
                "(docs/operations.md, \"Settings\")")
    for command in (["run", "--date", DAY.isoformat()], ["ingest", "--date", DAY.isoformat()],
                    ["attribute", "--date", DAY.isoformat()]):
        with pytest.raises(SystemExit) as e:
            main([*command, *paths])
        assert e.value.code == 2
        said = capsys.readouterr()  # run prints on stdout, ingest and attribute on stderr
        assert (said.out + said.err).strip() == expected, command
    assert main(["backfill", "--from", DAY.isoformat(), "--to", "2023-11-17", *paths]) == 2
    assert capsys.readouterr().out.strip() == expected


def test_a_day_from_the_first_on_is_ingested(tmp_path, monkeypatch, capsys):
    """INFERLEDGER_FIRST_DAY=2023-11-16: that day is the first partition (ingested, every site of
    the simulated fleet); 2023-11-15, one day earlier, is still refused."""
    monkeypatch.setenv("INFERLEDGER_FIRST_DAY", DAY.isoformat())
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("INFERLEDGER_INVENTORY", raising=False)
    fleetsim.simulate(tmp_path / "raw", DAY, requests=200, seed=7)
    paths = ["--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake")]
    assert main(["ingest", "--date", DAY.isoformat(), *paths]) == 0
    for dataset in ("requests", "power_readings", "cost_lines"):
        assert sorted(p.name for p in (tmp_path / "lake" / dataset / f"date={DAY}").iterdir()) == [
            f"site={s}" for s in SITES], dataset
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["ingest", "--date", "2023-11-15", *paths])
    assert "2023-11-15 is before the first day the pipeline has partitions for, 2023-11-16" in capsys.readouterr().err
