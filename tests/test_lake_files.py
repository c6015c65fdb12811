"""The one atomic write (lake/files.py): what every writer of the product relies on."""

import errno
import pickle
import subprocess
import sys

import polars as pl
import pytest

from lake.files import NoSpaceLeft, link_into_place, staging, write_atomically, write_parquet, write_text


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "a" / "f.txt"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "f.txt"
    write_text(target, "old")

    def half(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomically(target, half)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".f.txt.{pid}-0123.tmp"
    stale.write_text("left by a killed writer")
    alive = tmp_path / ".f.txt.1-0123.tmp"  # pid 1 runs: not ours to remove
    alive.write_text("another writer's")
    write_text(tmp_path / "f.txt", "x")
    assert not stale.exists() and alive.exists()


def test_a_full_disk_names_the_file(tmp_path):
    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(NoSpaceLeft) as e:
        write_atomically(tmp_path / "f.parquet", full)
    assert str(e.value).startswith(f"no space left on device writing {tmp_path / 'f.parquet'}: free space on that disk")
    again = pickle.loads(pickle.dumps(NoSpaceLeft("x", "write elsewhere")))  # crosses process boundaries
    assert isinstance(again, NoSpaceLeft) and "write elsewhere" in str(again)


def test_a_new_file_only_never_replaces(tmp_path):
    target = tmp_path / "f.txt"
    write_atomically(target, lambda tmp: tmp.write_text("first"), replace=False)
    with pytest.raises(FileExistsError):
        write_atomically(target, lambda tmp: tmp.write_text("second"), replace=False)
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_staged_files_replace_their_targets_only_together(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write_text(a, "old a")
    write_text(b, "old b")
    with pytest.raises(RuntimeError), staging() as stage:
        stage.write(a, lambda tmp: tmp.write_text("new a"))
        raise RuntimeError("the second table fails")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    with staging() as stage:
        tmp = stage.write(a, lambda tmp: tmp.write_text("new a"))
        assert tmp.read_text() == "new a" and a.read_text() == "old a"  # readable before the commit
        stage.write(b, lambda tmp: tmp.write_text("new b"))
        stage.commit()
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_parquet_of_a_frame_or_a_lazy_frame(tmp_path):
    frame = pl.DataFrame({"x": [1, 2]})
    write_parquet(tmp_path / "e.parquet", frame)
    write_parquet(tmp_path / "l.parquet", frame.lazy())
    assert pl.read_parquet(tmp_path / "e.parquet").equals(pl.read_parquet(tmp_path / "l.parquet"))


def test_linking_into_place_keeps_the_old_inode_for_a_reader(tmp_path):
    v1, v2, published = tmp_path / "v1", tmp_path / "v2", tmp_path / "p"
    v1.write_text("one")
    v2.write_text("two")
    link_into_place(v1, published)
    with open(published) as reader:
        link_into_place(v2, published)
        assert reader.read() == "one"
    assert published.read_text() == "two" and published.stat().st_ino == v2.stat().st_ino
