"""Reading image files the one way every stage does, so an image gives the same features at
ingestion and as a query.

Every file that cannot become a meaningful 8-bit image raises :class:`UnreadableImageError` with
the reason, which ingestion counts and lists instead of stopping:

- anything but a regular file (a broken symbolic link, a symbolic link loop, a FIFO or device
  with an image extension): refused before it is opened, so a FIFO never blocks the run;
- 16-bit images (PNG, TIFF, PGM: PIL's modes ``I;16`` and ``I``) are scaled to 8 bits
  (``v / 257``); 32-bit integer values beyond 16 bits are refused; floating-point images are scaled from [0, 1] (or taken as they are
  when they already lie in [0, 255] with integral values); any other range is refused rather than
  turned into an all-white or all-black image;
- images more elongated than :data:`MAX_ASPECT` : 1 are centre-cropped to it, so the backbones'
  resize (shorter side to 256) stays small: a 1 x 20,000 PNG of 101 bytes would otherwise become a
  5,120,000 x 256 image (about 6 GB). The CNN transforms keep only the centre 224 x 224 of the
  resized image, which such a crop does not change; images of at most 16 : 1 are never touched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image

#: The most elongated image read as it is; longer ones are centre-cropped to this ratio.
MAX_ASPECT = 16


class UnreadableImageError(ValueError):
    """A file that is not an image milvus-hash can read; the message says why."""


def check_regular_file(path: str | Path) -> None:
    """Raise :class:`UnreadableImageError` unless ``path`` is a non-empty regular file (followed
    through symbolic links); nothing is opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UnreadableImageError(f"broken symbolic link (to {os.readlink(path)!r})") from None
        raise UnreadableImageError("no such file") from None
    except OSError as exc:  # ELOOP: a symbolic link loop; EACCES ...
        raise UnreadableImageError(f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise UnreadableImageError(f"not a regular file ({kind})")
    if st.st_size == 0:
        raise UnreadableImageError("empty file")


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and floating-point images as ``L`` (or the image as it is)."""
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.int64)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise UnreadableImageError(f"{im.mode} image with values {lo} to {hi}, outside 16 bits")
        return Image.fromarray(np.rint(a / 257.0).astype(np.uint8), mode="L")
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if a.size and not np.isfinite(a).all():
            raise UnreadableImageError("floating-point image with NaN or infinite values")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1:
            return Image.fromarray(np.rint(a * 255).astype(np.uint8), mode="L")
        if lo >= 0 and hi <= 255 and np.array_equal(a, np.rint(a)):
            return Image.fromarray(a.astype(np.uint8), mode="L")
        raise UnreadableImageError(f"floating-point image with values {lo:g} to {hi:g}: expected [0, 1] "
                                   "(or whole numbers in [0, 255])")
    return im


def _bound_aspect(im: Image.Image) -> Image.Image:
    w, h = im.size
    if w > MAX_ASPECT * h:
        keep = MAX_ASPECT * h
        return im.crop(((w - keep) // 2, 0, (w - keep) // 2 + keep, h))
    if h > MAX_ASPECT * w:
        keep = MAX_ASPECT * w
        return im.crop((0, (h - keep) // 2, w, (h - keep) // 2 + keep))
    return im


def open_image(path: str | Path) -> Image.Image:
    """The image at ``path``, fully read (the file is closed), as ``L`` or ``RGB`` (other modes are
    converted: 16-bit and float images scaled to 8 bits, the rest to RGB; each backbone's transform
    takes it from there), at most :data:`MAX_ASPECT` : 1. Raises :class:`UnreadableImageError` (see
    the module doc) or PIL's errors for a corrupt file."""
    check_regular_file(path)
    with Image.open(path) as im:
        im.load()
        if im.size[0] == 0 or im.size[1] == 0:
            raise UnreadableImageError(f"image of size {im.size[0]} x {im.size[1]}")
        out = _to_8bit(im)
        out = out.copy() if out.mode in ("RGB", "L") else out.convert("RGB")
    return _bound_aspect(out)


__all__ = ["MAX_ASPECT", "UnreadableImageError", "check_regular_file", "open_image"]
