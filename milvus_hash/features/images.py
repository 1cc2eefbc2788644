"""Reading image files the one way every stage does, so an image gives the same features at
ingestion and as a query."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def open_image(path: str | Path) -> Image.Image:
    """The image at ``path``, fully read (the file is closed), as ``L`` or ``RGB`` (other modes are
    converted to RGB; each backbone's transform takes it from there)."""
    with Image.open(path) as im:
        im.load()
        return im.copy() if im.mode in ("RGB", "L") else im.convert("RGB")


__all__ = ["open_image"]
