"""The pictures behind stored items, for the web page and the contact sheets: which file an item's
row points to, whether it may be served, and its thumbnail (made once, then cached).

A row written by ``ingest`` records where its image was read (``origin``: the file's absolute path)
and the folder the source was read from (``root``). A file is served only when its real path (every
symbolic link resolved) lies inside one of the allowed roots: the roots recorded in the rows, or
those given (``serve --root``, for collections ingested before roots were recorded). A symbolic link
out of its root, a ``..`` and an absolute path elsewhere are refused; so is what is not a regular
file. An item without a picture of its own (an IDX image) gets none.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 160


class FileRefused(Exception):
    """An item's file may not be served (outside the allowed roots, missing, not an image)."""


@dataclass(frozen=True)
class Origin:
    """Where an item's picture is: ``path`` (as recorded) and the ``root`` it was ingested from."""

    path: str
    root: str | None


def origin_of(metadata: dict) -> Origin | None:
    """The recorded picture of a row's metadata, or None (nothing recorded)."""
    path = metadata.get("origin") if isinstance(metadata, dict) else None
    if not isinstance(path, str) or not path:
        return None
    root = metadata.get("root")
    return Origin(path, root if isinstance(root, str) and root else None)


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


class Files:
    """The allowed roots and a thumbnail cache (memory, and ``cache_dir`` on disk when given)."""

    def __init__(self, roots=(), *, cache_dir: str | Path | None = None, memory_items: int = 4096,
                 size: int = THUMB_SIZE):
        self.extra_roots = [_real(r) for r in roots]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.size = int(size)
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._limit = int(memory_items)
        self._lock = threading.Lock()

    def resolve(self, origin: Origin) -> Path:
        """The real path of ``origin`` if it may be served, else :class:`FileRefused` (saying why)."""
        if not Path(origin.path).is_absolute():
            raise FileRefused("its recorded path is not absolute")
        real = _real(origin.path)
        roots = list(self.extra_roots) + ([_real(origin.root)] if origin.root else [])
        if not roots:
            raise FileRefused("no source root is recorded for it (serve --root DIR allows a folder)")
        if not any(real == r or r in real.parents for r in roots):
            raise FileRefused("its file is outside the folders it was ingested from")
        if not real.is_file():
            raise FileRefused("its file is missing or not a regular file")
        return real

    def thumbnail(self, origin: Origin) -> bytes:
        """A JPEG thumbnail (longest side ``size``) of an allowed file; cached by path, size and
        modification time, so an edited file gets a new one."""
        real = self.resolve(origin)
        st = real.stat()
        key = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{self.size}".encode()).hexdigest()[:32]
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        data = None
        disk = self.cache_dir / f"{key}.jpg" if self.cache_dir is not None else None
        if disk is not None and disk.is_file():
            data = disk.read_bytes()
        if data is None:
            data = make_thumbnail(real, self.size)
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, disk)
        with self._lock:
            self._memory[key] = data
            while len(self._memory) > self._limit:
                self._memory.popitem(last=False)
        return data


def make_thumbnail(path: str | Path, size: int = THUMB_SIZE) -> bytes:
    """JPEG bytes of the image at ``path`` scaled to fit ``size`` x ``size`` (small images are
    enlarged without smoothing, so a 28 x 28 glyph stays sharp). :class:`FileRefused` when it is not
    an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / max(w, h)
            resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)
            out = io.BytesIO()
            im.save(out, "JPEG", quality=85)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FileRefused(f"its file is not a readable image ({type(exc).__name__})") from exc


__all__ = ["FileRefused", "Files", "Origin", "THUMB_SIZE", "make_thumbnail", "origin_of"]
