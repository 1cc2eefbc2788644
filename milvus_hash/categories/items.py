"""Items given to a client, by explicit keyword: ``ids=``, ``images=``, ``codes=`` or ``features=``.

Exactly one keyword names what the values are; nothing is guessed from a dtype (a batch of 8-bit
images and a batch of library codes are both ``uint8``).

- ``ids``: stored ids, an int or a sequence of ints;
- ``images``: image file paths, PIL images or ``uint8`` arrays: one ``HxW`` or ``HxWxC`` (C = 1, 3
  or 4) array is one image, an ``(n, H, W)`` or ``(n, H, W, C)`` array is n images; or a list of any
  of these;
- ``codes``: library codes ``uint8 (n, L // 8)`` (or one ``(L // 8,)``);
- ``features``: feature vectors ``float (n, d)`` (or one ``(d,)``) of the library's backbone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import expected

KINDS = ("ids", "images", "codes", "features")


def one_kind(argument: str, **given) -> tuple[str, object]:
    """The one keyword of ``given`` (ids, images, codes, features) that is not None, and its value."""
    named = [(k, v) for k, v in given.items() if v is not None]
    if len(named) != 1:
        received = "none of them" if not named else " and ".join(f"{k}=" for k, _ in named)
        raise expected(argument, "exactly one of " + ", ".join(f"{k}=" for k in KINDS), received)
    return named[0]


def as_ids(values, argument: str) -> np.ndarray:
    """``int64 (n,)`` from an int or a sequence of ints (n >= 1)."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.size == 0:
        raise expected(argument, "at least one id", "none")
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise expected(argument, "stored ids: an int or a sequence of ints", f"{arr.dtype} array of shape {arr.shape}")
    return arr.astype(np.int64)


def as_images(values, argument: str) -> tuple[list, list[str]]:
    """``(PIL images, sources)``: a path's source is the path, an in-memory image's is ""."""
    from PIL import Image

    from ..features.images import open_image

    if isinstance(values, np.ndarray):
        if values.ndim == 2 or (values.ndim == 3 and values.shape[-1] in (1, 3, 4)):
            values = [values]
        elif values.ndim in (3, 4):
            values = list(values)
    elif isinstance(values, (str, Path)) or hasattr(values, "convert"):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise expected(argument, "image paths, PIL images or uint8 arrays (HxW or HxWxC), or a list of them",
                       "none" if isinstance(values, (list, tuple)) else type(values).__name__)
    images, sources = [], []
    for i, v in enumerate(values):
        if isinstance(v, (str, Path)):
            path = Path(v).expanduser()
            if not path.is_file():
                raise expected(f"{argument}[{i}]", "an existing image file", f"{str(v)!r}, which is no file")
            try:
                images.append(open_image(path))
            except (OSError, ValueError) as exc:
                raise expected(f"{argument}[{i}]", "an image file", f"{str(v)!r} ({exc})") from exc
            sources.append(str(v))
        elif hasattr(v, "convert"):
            images.append(v)
            sources.append("")
        elif isinstance(v, np.ndarray) and v.dtype == np.uint8 and (
                v.ndim == 2 or (v.ndim == 3 and v.shape[-1] in (1, 3, 4))):
            images.append(Image.fromarray(v[..., 0] if v.ndim == 3 and v.shape[-1] == 1 else v))
            sources.append("")
        else:
            what = f"{v.dtype} array of shape {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
            raise expected(f"{argument}[{i}]", "an image path, a PIL image or a uint8 array HxW or HxWxC", what)
    return images, sources


def as_rows(values, argument: str, *, width: int | None, dtype_kind: str, what: str) -> np.ndarray:
    """A 2-D array of rows from one row or many, checked for its dtype kind (``"B"``: uint8 only)
    and width."""
    arr = np.asarray(values)
    arr = arr[None, :] if arr.ndim == 1 else arr
    if arr.size == 0:
        raise expected(argument, f"at least one row of {what}", "none")
    kind_ok = arr.dtype == np.uint8 if dtype_kind == "B" else arr.dtype.kind in dtype_kind
    if not kind_ok or arr.ndim != 2 or (width is not None and arr.shape[1] != width):
        shape = f"(n, {width})" if width is not None else "(n, d)"
        raise expected(argument, f"{what}, shape {shape}", f"{arr.dtype} array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


__all__ = ["KINDS", "as_ids", "as_images", "as_rows", "one_kind"]
