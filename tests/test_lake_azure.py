"""The lake on Azure Blob Storage (`az://`, issue 20): Azurite, Microsoft's emulator
(tests/azurite.py), holds the lake; the night on it gives the bytes of the night on local disk, a
writer killed before its manifest leaves nothing a reader sees, and both PyArrow (listings,
manifests) and Polars (the Parquet) find the account from the standard Azure variables alone.
The rules of `lake/object_stores.py` that need no server are tested first."""

import base64
import hashlib
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fleetsim
from lake.object_stores import (AZURITE_ACCOUNT, AZURITE_ENDPOINT, AZURITE_KEY, StoreConfigError, _blob_authority,
                                azure_account, filesystem, parquet_metadata)
from lake.objects import MANIFEST, TOKEN, ObjectLake
from lake.store import Lake
from pipelines.cli import main
from tests.azurite import AzureStore, azurite_server, new_container
from tests.conftest import examples
from tests.days import day_digests, lake_sha
from warehouse.tables import DAILY

DAY = date(2026, 11, 24)
ROOT = Path(__file__).resolve().parents[1]
AZURE_VARS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
              "AZURE_STORAGE_ENDPOINT", "AZURE_ALLOW_HTTP")


# --- the variables, without a server --------------------------------------------------------------


def test_a_connection_string_names_the_account_key_and_endpoint():
    portal = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5==;EndpointSuffix=core.windows.net"
    assert azure_account({"AZURE_STORAGE_CONNECTION_STRING": portal}) == (
        azure_account({"AZURE_STORAGE_ACCOUNT_NAME": "acme", "AZURE_STORAGE_ACCOUNT_KEY": "a2V5==",
                       "AZURE_STORAGE_ENDPOINT": "https://acme.blob.core.windows.net"}))
    account = azure_account({"AZURE_STORAGE_CONNECTION_STRING": portal})
    assert (account.name, account.key) == ("acme", "a2V5==")  # the base64 key keeps its `=`
    assert _blob_authority(account) == ("https", ".blob.core.windows.net")  # PyArrow: <account><authority>
    dev = azure_account({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert (dev.name, dev.key, dev.endpoint) == (AZURITE_ACCOUNT, AZURITE_KEY, AZURITE_ENDPOINT)
    assert _blob_authority(dev) == ("http", "127.0.0.1:10000")  # path-style: <authority>/<account>
    assert _blob_authority(azure_account({"AZURE_STORAGE_ACCOUNT_NAME": "acme"})) is None  # Azure's own hosts
    assert azure_account({"AZURE_STORAGE_ACCOUNT_NAME": "acme"}).key is None  # the default (managed) identity


@settings(max_examples=examples(50), deadline=None)
@given(name=st.from_regex(r"[a-z0-9]{3,24}", fullmatch=True), key=st.binary(min_size=1, max_size=64),
       protocol=st.sampled_from(["http", "https"]),
       suffix=st.sampled_from(["core.windows.net", "core.chinacloudapi.cn"]), order=st.permutations(range(4)))
def test_any_portal_connection_string_gives_its_account_in_any_order(name, key, protocol, suffix, order):
    """The four fields in any order, a base64 key whatever its `=` padding: the account, its key,
    and the blob endpoint <protocol>://<name>.blob.<suffix> (PyArrow: authority .blob.<suffix>)."""
    b64 = base64.b64encode(key).decode()
    fields = [f"DefaultEndpointsProtocol={protocol}", f"AccountName={name}", f"AccountKey={b64}",
              f"EndpointSuffix={suffix}"]
    account = azure_account({"AZURE_STORAGE_CONNECTION_STRING": ";".join(fields[i] for i in order) + ";"})
    assert (account.name, account.key, account.endpoint) == (name, b64, f"{protocol}://{name}.blob.{suffix}")
    assert _blob_authority(account) == (protocol, f".blob.{suffix}")


def test_what_cannot_reach_a_store_is_refused_naming_the_variable():
    with pytest.raises(StoreConfigError, match="neither AZURE_STORAGE_CONNECTION_STRING nor AZURE_STORAGE_ACCOUNT"):
        filesystem("az://lake/prefix", {})
    with pytest.raises(StoreConfigError, match="names no AccountName"):
        azure_account({"AZURE_STORAGE_CONNECTION_STRING": "AccountKey=a2V5;BlobEndpoint=http://h/acme"})
    with pytest.raises(StoreConfigError, match="write `Key=Value` pairs"):
        azure_account({"AZURE_STORAGE_CONNECTION_STRING": "acme"})
    with pytest.raises(StoreConfigError, match="is not account acme's"):
        _blob_authority(azure_account({"AZURE_STORAGE_ACCOUNT_NAME": "acme",
                                       "AZURE_STORAGE_ENDPOINT": "https://other.blob.core.windows.net"}))
    with pytest.raises(StoreConfigError, match="gs:// .*not supported.*s3://bucket/prefix with "
                                               "AWS_ENDPOINT_URL=https://storage.googleapis.com"):
        filesystem("gs://bucket/lake", {})
    with pytest.raises(ValueError, match="use one of az://, s3:// or a local directory; gs:// is not supported"):
        Lake("gs://bucket/lake")


def test_the_variables_polars_reads_are_set_from_a_connection_string_and_an_operators_own_win():
    env = {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "AZURE_STORAGE_ACCOUNT_KEY": "mine"}
    filesystem("az://lake", env)
    assert env["AZURE_STORAGE_ACCOUNT_NAME"] == AZURITE_ACCOUNT and env["AZURE_STORAGE_ENDPOINT"] == AZURITE_ENDPOINT
    assert env["AZURE_ALLOW_HTTP"] == "true" and env["AZURE_STORAGE_ACCOUNT_KEY"] == "mine"


# --- on Azurite -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite():
    with azurite_server() as endpoint:
        yield endpoint


def _clear_azure_variables(monkeypatch) -> None:
    """None of the Azure variables, and each restored after the test (also those the lake sets
    from a connection string: set then deleted here, monkeypatch restores their absence)."""
    for k in AZURE_VARS:
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)


@pytest.fixture
def az_store(azurite, monkeypatch) -> AzureStore:
    """A new container, and this test's environment naming it by a connection string only."""
    _clear_azure_variables(monkeypatch)
    store = new_container(azurite)
    for k, v in store.env.items():
        monkeypatch.setenv(k, v)
    return store




@pytest.mark.azurite
def test_the_night_on_azurite_gives_the_local_disk_bytes(az_store, tmp_path):
    """A 400-request demo-fleet day (seed 7, invoices) run as `inferledger run` does, on local disk
    and on az://: the 16 daily marts and the facts byte-identical, the same files by the layout's
    names, and the warehouse published from the store answers as the local one."""
    raw = tmp_path / "raw"
    fleetsim.simulate(raw, DAY, requests=400, seed=7, invoices=True)
    for lake, out in ((str(tmp_path / "lake"), "local"), (az_store.uri(), "az")):
        assert main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", lake, "--warehouse",
                     str(tmp_path / out / "inferledger.duckdb")]) == 0
    local, az = Lake(tmp_path / "lake"), Lake(az_store.uri())
    assert isinstance(az, ObjectLake) and az.scheme == "az"
    assert day_digests(az) == day_digests(local) and len(day_digests(az)) == len(DAILY) + 1
    local_files = sorted(p.relative_to(tmp_path / "lake").as_posix() for p in (tmp_path / "lake").rglob("*.parquet")
                         if not p.relative_to(tmp_path / "lake").as_posix().startswith("_"))
    assert sorted(k.removeprefix("lake/").removesuffix(MANIFEST) + ".parquet"
                  for k in az_store.keys("lake/") if k.endswith(MANIFEST)) == local_files
    with (duckdb.connect(str(tmp_path / "az" / "inferledger.duckdb"), read_only=True) as con,
          duckdb.connect(str(tmp_path / "local" / "inferledger.duckdb"), read_only=True) as ref):
        for name in [*(t.name for t in DAILY), "request_costs"]:
            sql = f"SELECT * FROM {name}"
            assert con.execute(sql).fetchall() == ref.execute(sql).fetchall(), name


KILLED_WRITER = """
import os, signal, sys
import polars as pl
from datetime import date
from lake.objects import ObjectLake
ObjectLake.commit = lambda self, target, data: os.kill(os.getpid(), signal.SIGKILL)  # dies before its manifest
ObjectLake(sys.argv[1]).write(pl.DataFrame({"x": [10, 20, 30]}), "totals", date(2030, 1, 1))
"""


@pytest.mark.azurite
def test_a_writer_killed_before_its_manifest_on_azure_leaves_nothing_visible(az_store, tmp_path):
    lake = Lake(az_store.uri())
    day = date(2030, 1, 1)
    lake.write(pl.DataFrame({"x": [1, 2, 3]}), "totals", day)  # committed: 1 + 2 + 3 = 6
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, lake.root], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len([k for k in az_store.keys("lake/totals/") if TOKEN.search(k)]) == 2  # the orphan is there...
    assert pl.read_parquet(lake.partition_file("totals", day))["x"].sum() == 6  # ...and no reader sees it
    uri = lake.write(pl.DataFrame({"x": [10, 20, 30]}), "totals", day)  # the rerun: 10 + 20 + 30 = 60
    # The committed object (its local copy in this worker's cache: `stamp` names the object).
    assert [lake.stamp(p) for p in lake.day_files("totals", day)] == [lake.stamp(uri)]
    assert pl.read_parquet(uri)["x"].sum() == 60
    assert parquet_metadata(uri).num_rows == 3  # the footer, through PyArrow's AzureFileSystem
    local = Lake(tmp_path).write(pl.DataFrame({"x": [10, 20, 30]}), "totals", day)
    assert lake_sha(lake, uri) == hashlib.sha256(local.read_bytes()).hexdigest()
    assert len(ObjectLake(lake.root, retention_s=0).collect_garbage()) == 2  # the orphan and the superseded
    assert [k for k in az_store.keys("lake/totals/") if TOKEN.search(k)] == [uri.split("/", 3)[3]]


@pytest.mark.azurite
def test_the_account_variables_alone_reach_azurite(azurite, monkeypatch, tmp_path):
    """AZURE_STORAGE_ACCOUNT_NAME, _KEY and _ENDPOINT, no connection string, no AZURE_ALLOW_HTTP:
    the same listings as a local lake, and Polars reads what was written (4 + 5 = 9)."""
    _clear_azure_variables(monkeypatch)
    store = new_container(azurite)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", azurite)
    lakes = Lake(tmp_path), Lake(store.uri("other"))
    d1 = date(2030, 1, 1)
    for lake in lakes:
        lake.write(pl.DataFrame({"x": [4, 5]}), "requests", d1, "west")
        lake.write(pl.DataFrame({"x": [4, 5]}), "requests", d1, "east")
    local, az = lakes
    assert [az.relative(p) for p in az.day_files("requests", d1)] == [local.relative(p) for p in local.day_files(
        "requests", d1)] == ["requests/date=2030-01-01/site=east/part-0.parquet",
                             "requests/date=2030-01-01/site=west/part-0.parquet"]
    assert az.sites("requests", d1) == ["east", "west"] and az.days("requests") == [d1]
    assert pl.read_parquet(az.partition_file("requests", d1, "west"))["x"].sum() == 9


@pytest.mark.azurite
def test_a_missing_container_is_an_error_not_an_empty_lake(az_store):
    with pytest.raises(FileNotFoundError, match="az://no-such-container/lake: the object store has no bucket "
                                                r"\(container\) no-such-container.*AZURE_STORAGE_\* variables"):
        Lake("az://no-such-container/lake")
