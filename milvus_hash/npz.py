"""Reading ``.npz`` files without pickle, with one-line errors.

``np.load(..., allow_pickle=False)`` refuses object arrays with numpy's advice to load them with
pickle, and a file that is no archive with numpy's own words or a plain array; :func:`read_npz`
turns each into an :class:`~milvus_hash.errors.InvalidInputError` naming the argument.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .errors import expected


def read_npz(path: str | os.PathLike, *, argument: str, what: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path``; an unreadable file, one that is no archive
    or one that holds Python objects (they load only through pickle) raises naming ``argument``,
    ``what`` was expected and why the file is not it."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise expected(argument, what, f"{str(path)!r} ({_reason(exc)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise expected(argument, what, f"{str(path)!r} (a single .npy array, not an .npz archive)")
    try:
        with data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise expected(argument, what, f"{str(path)!r} ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    if "Object arrays cannot be loaded" in str(exc):
        return "it holds Python objects, which load only through pickle: refused"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    return f"not a readable .npz archive: {type(exc).__name__}"


__all__ = ["read_npz"]
