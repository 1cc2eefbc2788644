"""IDX files, the format of MNIST and Fashion-MNIST (plain or gzip-compressed).

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, each
dimension as uint32) followed by the array. Debian's ``dataset-fashion-mnist`` installs them in
``/usr/share/datasets/fashion-mnist/``.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from milvus_hash.errors import expected

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` is decompressed)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise expected("path", "a readable IDX file", f"{path} ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise expected("path", "an IDX file (magic 0x0000, a known type code)", f"{path}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_TYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise expected("path", f"{int(np.prod(dims)) * dtype.itemsize} bytes of data for shape {dims}",
                       f"{len(body)} bytes in {path}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def load_fashion_mnist(directory: str | Path = FASHION_MNIST_DIR, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (n, 28, 28)`` and labels ``int64 (n,)`` of Fashion-MNIST's train or test split."""
    if split not in ("train", "test"):
        raise expected("split", "'train' or 'test'", repr(split))
    directory = Path(directory)
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for part in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        for name in (f"{prefix}-{part}.gz", f"{prefix}-{part}"):
            if (directory / name).exists():
                found[part] = directory / name
                break
        else:
            raise FileNotFoundError(
                f"{directory / (prefix + '-' + part)}[.gz] not found; on Debian: apt-get install dataset-fashion-mnist")
    return read_idx(found["images-idx3-ubyte"]), read_idx(found["labels-idx1-ubyte"]).astype(np.int64)
