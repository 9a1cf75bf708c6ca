import random

import numpy as np
import pytest
import torch

from dmlkit.errors import DmlkitError
from dmlkit.training import checkpoint as ck


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    ck.save_checkpoint(path, {"w": torch.arange(3), "epoch": 2})
    state = ck.load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, {"epoch": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("crash while pickling")

    with pytest.raises(RuntimeError, match="crash while pickling"):
        ck.save_checkpoint(path, {"epoch": 2, "bad": Boom()})
    assert ck.load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DmlkitError, match="checkpoint not found: .*nope.pt"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DmlkitError, match="cannot load checkpoint .*junk.pt"):
        ck.load_checkpoint(junk)


def test_rng_state_round_trip():
    state = ck.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def _flip_a_byte_in_tensor_data(path, size):
    """Flip one byte inside the stored tensor of ``size`` bytes (a zip member under data/), as a disk error would."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if "/data/" in i.filename and i.file_size == size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    raw[info.header_offset + 30 + name_len + extra_len + size // 2] ^= 0xFF  # the local header's extra pads to 64
    path.write_bytes(bytes(raw))


def test_flipped_bytes_in_tensor_data_are_refused(tmp_path):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, {"w": torch.arange(1000, dtype=torch.float32), "epoch": 2, "rng": ck.rng_state()})
    assert ck.load_checkpoint(path)["epoch"] == 2
    _flip_a_byte_in_tensor_data(path, 4000)
    assert not torch.equal(torch.load(path, weights_only=False)["w"], torch.arange(1000.0))  # torch loads it
    with pytest.raises(DmlkitError, match=r"last\.pt is damaged: its content does not match the digest"):
        ck.load_checkpoint(path)


def test_the_digest_covers_every_kind_of_entry():
    state = {"a": torch.zeros(3, dtype=torch.bfloat16), "b": np.arange(4), "c": [1, (2.0, "x")], "d": None}
    digest = ck.state_digest(state)
    assert ck.state_digest(dict(state)) == digest and ck.state_digest({**state, "digest": "old"}) == digest
    for changed in ({"a": torch.ones(3, dtype=torch.bfloat16)}, {"b": np.arange(1, 5)}, {"c": [1, (2.5, "x")]}):
        assert ck.state_digest({**state, **changed}) != digest
