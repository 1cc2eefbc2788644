"""IDX reading: round trip of written files, bad files, and the real Fashion-MNIST where installed."""

import gzip
import struct

import numpy as np
import pytest

from ingestion.idx import FASHION_MNIST_DIR, load_fashion_mnist, read_idx
from milvus_hash import InvalidInputError


def write_idx(path, arr, code):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, name):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    write_idx(tmp_path / name, imgs, 0x08)
    np.testing.assert_array_equal(read_idx(tmp_path / name), imgs)
    floats = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    write_idx(tmp_path / "f.idx", floats, 0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)


def test_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(InvalidInputError, match="an IDX file"):
        read_idx(tmp_path / "junk")
    write_idx(tmp_path / "short.idx", np.zeros((2, 2), dtype=np.uint8), 0x08)
    (tmp_path / "short.idx").write_bytes((tmp_path / "short.idx").read_bytes()[:-1])
    with pytest.raises(InvalidInputError, match="bytes of data"):
        read_idx(tmp_path / "short.idx")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    X, y = load_fashion_mnist(split="test")
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
