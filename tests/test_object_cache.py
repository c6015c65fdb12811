"""A worker's cache of the lake's immutable objects (`lake.object_cache`): least recently used
copies go past the bound, recent ones stay, and the cache never changes what a reader sees: the
manifests, read from the store, decide (a rewrite by another worker is read, not the old copy)."""

import os
import time
from datetime import date
from pathlib import Path

import polars as pl

from lake.object_cache import ObjectCache
from lake.objects import ObjectLake


def _file(path: Path, size: int) -> Path:
    path.write_bytes(b"x" * size)
    return path


def test_least_recently_used_copies_go_past_the_bound(tmp_path):
    cache = ObjectCache(tmp_path / "objects", max_bytes=450, min_age_s=0)
    a = cache.put("b/p/a.parquet", _file(tmp_path / "a", 100))
    b = cache.put("b/p/b.parquet", _file(tmp_path / "b", 200))
    now = time.time()
    os.utime(a, (now - 100, now - 100))
    os.utime(b, (now - 50, now - 50))
    assert cache.get("b/p/a.parquet") == a  # used now: b is the least recently used
    cache.put("b/p/c.parquet", _file(tmp_path / "c", 300))
    # 100 + 200 + 300 = 600 > 450: b (200) goes, 600 - 200 = 400 <= 450: a and c stay.
    assert not b.exists() and a.exists() and cache.get("b/p/b.parquet") is None
    assert sorted(p.name for p in (tmp_path / "objects/b/p").iterdir()) == ["a.parquet", "c.parquet"]
    assert (tmp_path / "a").exists()  # the written file itself is the caller's (a hard link was cached)


def test_copies_used_recently_stay_beyond_the_bound(tmp_path):
    cache = ObjectCache(tmp_path / "objects", max_bytes=150, min_age_s=600)
    cache.put("k/1", _file(tmp_path / "1", 100))
    cache.put("k/2", _file(tmp_path / "2", 100))  # 200 > 150, but both used in the last 600 s
    assert cache.get("k/1") and cache.get("k/2")
    assert ObjectCache(tmp_path / "objects", max_bytes=0).get("k/1") is None  # 0: the cache is off


def test_readers_follow_the_manifests_not_the_cache(s3_server, tmp_path):
    """Worker A writes and reads its object from its cache; worker B (its own scratch) rewrites
    the file; A then reads B's object from the store (1 + 2 = 3, then 10 + 20 = 30), and its own
    old copy is never given again."""
    day = date(2030, 1, 1)
    a = ObjectLake(s3_server.uri(), scratch=tmp_path / "a")
    b = ObjectLake(s3_server.uri(), scratch=tmp_path / "b")
    a.write(pl.DataFrame({"x": [1, 2]}), "totals", day)
    mine = a.partition_file("totals", day)
    assert str(mine).startswith(str(tmp_path / "a" / "objects")) and pl.read_parquet(mine)["x"].sum() == 3
    assert a.relative(mine) == "totals/date=2030-01-01/part-0.parquet"
    assert a.stamp(mine)[2] == a.stamp(b.partition_file("totals", day))[2]  # the same object, by its name
    b.write(pl.DataFrame({"x": [10, 20]}), "totals", day)
    theirs = a.partition_file("totals", day)
    assert str(theirs).startswith("s3://") and pl.read_parquet(theirs)["x"].sum() == 30
    # Downloaded for DuckDB through A's cache: then A reads it locally too; the same bytes.
    out = a.local_copies([theirs], tmp_path / "duck")[0]
    assert out == tmp_path / "duck" / "totals/date=2030-01-01/part-0.parquet"
    assert pl.read_parquet(out)["x"].sum() == 30
    local = a.partition_file("totals", day)
    assert str(local).startswith(str(tmp_path / "a")) and Path(local).read_bytes() == out.read_bytes()
