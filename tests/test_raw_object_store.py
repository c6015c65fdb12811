"""The raw drop on an object store (issue 20, `lake.raw_store`): a worker's mirror follows the
store (new, replaced and withdrawn objects), keeps the store's times, and lists for each ingest
what the same drop on local disk lists. The night from it: tests/test_lake_object_store.py."""

import os
from datetime import date
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from lake.inventory import InventoryError
from lake.raw import UNCLAIMED_BY, raw_listing
from lake.raw_store import RawMirror, delivered, mirrored
from lake.readers import relative_name
from pipelines.resources import RawInputs

DAY = date(2030, 3, 4)


def _put(store, key: str, data: bytes) -> None:
    with store.fs().open_output_stream(f"{store.bucket}/{key}", compression=None) as f:  # the bytes as given
        f.write(data)


def _upload(store, local: Path, prefix: str) -> None:
    pafs.copy_files(str(local), f"{store.bucket}/{prefix}", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=store.fs())


def test_a_mirror_follows_the_drop(s3_server, tmp_path):
    _put(s3_server, "raw/2030-03-04/east/requests/a.jsonl.gz", b"\x1f\x8b gzip bytes as delivered")
    _put(s3_server, "raw/2030-03-04/east/requests/b.jsonl", b'{"x": 1}\n')
    mirror = RawMirror(s3_server.uri("raw"), scratch=tmp_path)
    root = mirror.sync("2030-03-04/east")
    a, b = root / "2030-03-04/east/requests/a.jsonl.gz", root / "2030-03-04/east/requests/b.jsonl"
    assert a.read_bytes() == b"\x1f\x8b gzip bytes as delivered" and b.read_bytes() == b'{"x": 1}\n'
    info = s3_server.fs().get_file_info(f"{s3_server.bucket}/raw/2030-03-04/east/requests/b.jsonl")
    assert b.stat().st_mtime_ns == info.mtime_ns  # the store's time: raw_fingerprint sees a replacement
    kept = a.stat().st_ino
    _put(s3_server, "raw/2030-03-04/east/requests/b.jsonl", b'{"x": 2}\n{"x": 3}\n')  # replaced (longer)
    s3_server.fs().delete_file(f"{s3_server.bucket}/raw/2030-03-04/east/requests/a.jsonl.gz")  # withdrawn
    _put(s3_server, "raw/2030-03-04/east/requests/c.jsonl", b"")  # new
    mirror.sync("2030-03-04/east")
    assert not a.exists() and b.read_bytes() == b'{"x": 2}\n{"x": 3}\n'
    assert sorted(p.name for p in b.parent.iterdir()) == ["b.jsonl", "c.jsonl"]
    c = b.parent / "c.jsonl"
    before = (c.stat().st_ino, b.stat().st_ino)
    mirror.sync("2030-03-04/east")  # nothing changed: nothing downloaded again
    assert (c.stat().st_ino, b.stat().st_ino) == before and kept  # same files
    assert mirror.days() == [DAY] and delivered(s3_server.uri("raw"), DAY)
    assert not delivered(s3_server.uri("raw"), date(2030, 3, 5))


def _drop(raw: Path) -> None:
    """A day with two sites' request logs, a stray folder, a file directly in the day's folder and
    a fleet-wide asset register; `profiles/` and the inventory beside."""
    files = {"2030-03-04/east/requests/n1.jsonl": '{"a": 1}\n', "2030-03-04/west/requests/n2.jsonl.zst": "zst",
             "2030-03-04/east/dcgm/n1.prom": "x 1\n", "2030-03-04/east/notes/readme.txt": "hi",
             "2030-03-04/stray.csv": "a,b\n", "2030-03-04/north/requests/n3.jsonl": "{}\n",
             "2030-03-04/_fleet/assets/register.csv": "id\n", "profiles/h200.csv": "gpu_model\n",
             "inventory.yaml": "sites: []\n"}
    for name, text in files.items():
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_text(text)


def _named(listing, raw: Path) -> tuple:
    return ([(s.folder, s.patterns, [relative_name(p, raw) for p in ps]) for s, ps in listing.sources],
            listing.ignored, listing.unclaimed, listing.missing)


def test_each_ingest_lists_from_the_mirror_what_it_lists_from_local_disk(s3_server, tmp_path):
    """The fleet-wide ingest mirrors the day without the inventory sites' data (it lists their
    folders, never their files: the unclaimed `north/` and `notes/` are read); each site's
    ingest mirrors its own folder; each lists what it lists from the drop on local disk."""
    local = tmp_path / "local"
    _drop(local)
    _upload(s3_server, local, "raw")
    sites = ["east", "west"]
    uri = s3_server.uri("raw")
    root = mirrored(uri, DAY, None, sites=sites, mirror=RawMirror(uri, scratch=tmp_path / "w"))
    assert (root / "inventory.yaml").read_text() == "sites: []\n" and (root / "profiles/h200.csv").exists()
    assert (root / "2030-03-04/east/requests").is_dir() and not os.listdir(root / "2030-03-04/east/requests")
    for dataset in (UNCLAIMED_BY, "fx_rates", "performance_profiles"):
        assert _named(raw_listing(dataset, root, DAY, None, sites), root) == _named(
            raw_listing(dataset, local, DAY, None, sites), local), dataset
    assert set(raw_listing(UNCLAIMED_BY, root, DAY, None, sites).unclaimed) == {
        "2030-03-04/stray.csv", "2030-03-04/north/requests/n3.jsonl", "2030-03-04/east/notes/readme.txt"}
    for site in sites:
        root = mirrored(uri, DAY, site, sites=sites, mirror=RawMirror(uri, scratch=tmp_path / "w"))
        for dataset in ("requests", "power_readings"):
            assert _named(raw_listing(dataset, root, DAY, site, sites), root) == _named(
                raw_listing(dataset, local, DAY, site, sites), local), (site, dataset)
    assert (root / "2030-03-04/west/requests/n2.jsonl.zst").read_text() == "zst"
    # The fleet-wide ingest again: the sites' files mirrored since stay (it neither reads nor removes them).
    mirrored(uri, DAY, None, sites=sites, mirror=RawMirror(uri, scratch=tmp_path / "w"))
    assert (root / "2030-03-04/east/requests/n1.jsonl").read_text() == '{"a": 1}\n'


def test_a_drop_without_its_inventory_is_named_by_its_uri(s3_server):
    with pytest.raises(InventoryError, match=rf"{s3_server.uri('empty')}/inventory.yaml: no inventory file in the raw "
                                             "drop on the object store; upload it there or set INFERLEDGER_INVENTORY"):
        RawInputs(root=s3_server.uri("empty")).inventory()
