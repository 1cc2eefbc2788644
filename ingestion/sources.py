"""Where images come from: an image folder, a CSV/JSONL manifest, or IDX files.

A source lists :class:`Item` s in a deterministic order and opens each as a PIL image. Every item has
a stable ``key``: the source's *name* (by default the folder's name, or the manifest's or IDX file's),
then the path relative to the folder or manifest (``letters/Q/x.png``), or ``name#index`` for IDX.
Its Milvus id is derived from the key (:func:`item_id`), so a rerun finds the same ids: ingestion is
idempotent and resumable, and ``--shard I/N`` splits a source by key without any coordination
between workers. Two folders of the same name give the same keys: ingestion notices when such a key
already holds a different image from elsewhere and refuses to merge them (give one a ``name``).
With content ids (:func:`content_id`, ``ingest --ids content``) the id is the image file's SHA-256
instead: the same image is stored once, whatever its path.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from milvus_hash.errors import expected
from milvus_hash.features.images import check_regular_file, open_image

from .idx import read_idx

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_ID_MASK = (1 << 63) - 1


def _text(name: str) -> str:
    """A file name as valid UTF-8 text: bytes the file system gave that are not UTF-8 (decoded by
    Python as surrogates) written as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def item_id(key: str) -> int:
    """Stable non-negative int64 id of a source key (first 63 bits of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") & _ID_MASK


def content_id(digest: str) -> int:
    """The non-negative int64 id of an image's content: the first 63 bits of its SHA-256 (hex)."""
    return int(digest[:16], 16) & _ID_MASK


def check_source_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 200 or any(c in name for c in "/#\\\n") \
            or name in (".", ".."):
        raise expected("source name", "1-200 characters without '/', '#', '\\' or a line break", repr(name))
    return name


def _default_name(path: Path) -> str:
    name = _text(path.resolve().name) or "root"
    return name.replace("#", "_")


@dataclass(frozen=True)
class Item:
    """One image of a source: ``key`` (stable, unique in the source), ``id`` (from the key, or from
    the content when ``uid`` is set), ``label`` (or None), ``metadata`` (JSON-serialisable), and
    ``ref``: how the source opens it."""

    key: str
    label: str | None = None
    metadata: dict = field(default_factory=dict)
    ref: object = None
    uid: int | None = None  # the id when it is not the key's (content ids)

    @property
    def id(self) -> int:
        return item_id(self.key) if self.uid is None else self.uid


class FolderSource:
    """Images under ``root`` (recursively, sorted). ``labels="subfolders"`` labels each image by its
    first-level sub-folder; ``"auto"`` (default) does so when every image sits in one; ``None``: no labels."""

    kind = "folder"

    def __init__(self, root: str | Path, *, labels: str | None = "auto", name: str | None = None):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise expected("source", "an existing image folder, manifest (.csv/.jsonl) or IDX file",
                           f"{str(root)!r}, which does not exist" if not self.root.exists() else f"{str(root)!r}")
        if labels not in ("auto", "subfolders", None):
            raise expected("labels", "'auto', 'subfolders' or None", repr(labels))
        self.labels = labels
        self.name = _default_name(self.root) if name is None else check_source_name(name)

    def items(self) -> list[Item]:
        """Every path with an image extension that is not a directory, in sorted order. Files that
        are not regular (broken or looping symbolic links, FIFOs) are items too: opening them fails
        with the reason, which ingestion counts and lists. A file name that is not valid UTF-8 gets
        a key with its undecodable bytes written ``\\xNN`` (Milvus stores UTF-8 text only)."""
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
        rel = [_text(p.relative_to(self.root).as_posix()) for p in paths]
        use_labels = self.labels == "subfolders" or (self.labels == "auto" and rel and all("/" in r for r in rel))
        return [Item(f"{self.name}/{r}", r.split("/", 1)[0] if use_labels else None, {}, str(p))
                for r, p in zip(rel, paths)]

    def origin(self, item: Item) -> str:
        """Where the item's image is: its absolute path."""
        return _text(str(Path(item.ref).absolute()))

    def content(self, item: Item) -> bytes:
        """The image file's bytes (nothing is read from what is not a regular file)."""
        check_regular_file(item.ref)
        return Path(item.ref).read_bytes()

    def open(self, item: Item) -> Image.Image:
        return open_image(item.ref)

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r}, name={self.name!r})"


class ManifestSource(FolderSource):
    """A CSV (header with ``path``; optional ``label``; other columns become metadata) or JSONL file
    (objects with ``path``, optional ``label`` and ``metadata`` or other keys). Relative paths are
    relative to the manifest's folder."""

    kind = "manifest"

    def __init__(self, path: str | Path, *, name: str | None = None):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise expected("source", "an existing manifest file (.csv or .jsonl)", f"{str(path)!r}")
        self.root = self.path.parent
        self.name = _default_name(self.path.with_suffix("")) if name is None else check_source_name(name)

    def _rows(self):
        if self.path.suffix.lower() == ".csv":
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                if not reader.fieldnames or "path" not in reader.fieldnames:
                    raise expected("source", "a CSV manifest with a 'path' column",
                                   f"columns {reader.fieldnames} in {self.path}")
                yield from ((i + 2, row) for i, row in enumerate(reader))
            return
        with self.path.open() as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise expected("source", "one JSON object per line", f"line {line_no} of {self.path}: {exc}") from exc
                if not isinstance(row, dict) or "path" not in row:
                    raise expected("source", "JSON objects with a 'path' key", f"line {line_no} of {self.path}")
                yield line_no, row

    def items(self) -> list[Item]:
        out, seen = [], set()
        for line_no, row in self._rows():
            rel = str(row.pop("path") or "").strip()
            if not rel:
                raise expected("source", "a non-empty path on every row", f"an empty one at line {line_no} of {self.path}")
            label = row.pop("label", None)
            meta = row.pop("metadata", None) if isinstance(row.get("metadata"), dict) else None
            meta = {**(meta or {}), **{k: v for k, v in row.items() if v not in (None, "")}}
            full = (self.root / rel) if not Path(rel).is_absolute() else Path(rel)
            key = f"{self.name}/{Path(rel).as_posix().lstrip('/')}"
            if key in seen:
                continue
            seen.add(key)
            out.append(Item(key, None if label in (None, "") else str(label), meta, str(full)))
        return out

    def __repr__(self) -> str:
        return f"ManifestSource({str(self.path)!r}, name={self.name!r})"


class IdxSource:
    """Images of an IDX file (``uint8 (n, h, w)``, MNIST / Fashion-MNIST), labelled from the matching
    ``*labels-idx1*`` file when it is there (or ``labels_path``). Keys are ``<file name>#<index>``."""

    kind = "idx"

    def __init__(self, path: str | Path, labels_path: str | Path | None = None, *, name: str | None = None):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise expected("source", "an existing IDX images file", f"{str(path)!r}")
        self.images = read_idx(self.path)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise expected("source", "an IDX file of uint8 images (n, h, w)",
                           f"{self.images.dtype} of shape {self.images.shape} in {self.path}")
        if labels_path is None:
            guess = self.path.with_name(self.path.name.replace("images-idx3", "labels-idx1"))
            labels_path = guess if guess != self.path and guess.is_file() else None
        self.labels = read_idx(labels_path) if labels_path is not None else None
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise expected("labels_path", f"{len(self.images)} labels", f"shape {self.labels.shape}")
        self.name = self.path.name.removesuffix(".gz") if name is None else check_source_name(name)

    def items(self) -> list[Item]:
        labels = self.labels.tolist() if self.labels is not None else [None] * len(self.images)
        return [Item(f"{self.name}#{i}", None if lab is None else str(lab), {}, i) for i, lab in enumerate(labels)]

    def open(self, item: Item) -> Image.Image:
        return Image.fromarray(self.images[item.ref], mode="L")

    def origin(self, item: Item) -> str:
        return f"{self.path.absolute()}#{item.ref}"

    def content(self, item: Item) -> bytes:
        """The image's pixels with their shape (an IDX image has no file of its own)."""
        a = self.images[item.ref]
        return f"{a.shape}".encode() + a.tobytes()

    def __repr__(self) -> str:
        return f"IdxSource({str(self.path)!r})"


class SourceImages:
    """The images of a source's items as a sequence of PIL images, opened on access (also in
    DataLoader workers): what image-consuming encoders such as UTH take."""

    def __init__(self, source, items: list[Item]):
        self.source, self.items = source, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Image.Image:
        return self.source.open(self.items[i])


def open_source(spec: str | Path, *, labels: str | None = "auto", name: str | None = None):
    """The source a path names: a folder, a ``.csv``/``.jsonl`` manifest, or an IDX file (``*-idx3-ubyte``,
    optionally ``.gz``); ``name`` (default: the folder's or file's name) begins every key."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return FolderSource(path, labels=labels, name=name)
    lower = path.name.lower()
    if not path.exists():
        raise expected("source", "an existing image folder, manifest (.csv/.jsonl) or IDX file",
                       f"{str(spec)!r}, which does not exist")
    if lower.endswith((".csv", ".jsonl")):
        return ManifestSource(path, name=name)
    if "idx3" in lower or lower.endswith((".idx", ".idx.gz")):
        return IdxSource(path, name=name)
    raise expected("source", "an image folder, a .csv/.jsonl manifest or an IDX file (*-idx3-ubyte[.gz])",
                   repr(str(spec)))


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N) to ``(I, N)``; None is ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise expected("shard", "I/N with integers 0 <= I < N, e.g. 0/4", repr(text)) from None
    if not (n >= 1 and 0 <= i < n):
        raise expected("shard", "I/N with integers 0 <= I < N, e.g. 0/4", repr(text))
    return i, n


def select_shard(items: list[Item], shard: tuple[int, int]) -> list[Item]:
    """The items of shard ``I`` of ``N``: those whose key's id is ``I`` modulo ``N`` (deterministic;
    known before any file is read, whatever ids the items are stored under)."""
    i, n = shard
    return items if n == 1 else [it for it in items if item_id(it.key) % n == i]


__all__ = ["SourceImages", "FolderSource", "IdxSource", "Item", "ManifestSource", "check_source_name", "content_id",
           "item_id", "open_source", "parse_shard", "select_shard"]
