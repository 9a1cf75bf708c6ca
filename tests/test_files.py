"""Atomic file writing: whole files or none, JSON with numpy values."""

import numpy as np
import pytest

from dmlkit.files import atomic_write, atomic_write_json, atomic_write_text


def test_json_writer_handles_numpy(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.int64(3)})
    assert (tmp_path / "m.json").read_text().count("0.5") == 1


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write(path, lambda fh: fh.write(b"old"))

    def crash(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old" and [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_a_new_file_gets_the_permissions_of_a_plain_write(tmp_path):
    import os

    umask = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o640
    (tmp_path / "new.txt").chmod(0o604)
    atomic_write_text(tmp_path / "new.txt", "y")  # an existing file keeps its mode
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o604
