"""The ``pixels`` extractor in numpy: what ``get_backbone("pixels")`` computes, without torch.

A query of one picture through the pixels backbone spent 3 s importing torch and torchvision to
resize a 28 x 28 image. :class:`PixelExtractor` gives the same features (grayscale, resized to
``size x size`` by PIL's bilinear filter as torchvision does for PIL images, in [0, 1], centred per
image, L2-normalised; a uniform image gives zeros) and the same ``fingerprint``, so encoders fitted through the torch backbone
accept it; ``tests/test_backbones.py`` holds both to equal features.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: ``repr`` of the torch pixels backbone's transform (torchvision's ``Compose``): it enters the
#: fingerprint that encoders record, so it is kept as it was written.
TRANSFORM_REPR = ("Compose(\n    ToGray()\n    Resize(size=({size}, {size}), interpolation=bilinear, max_size=None, "
                  "antialias=True)\n    ToTensor()\n)")


def pixels_fingerprint(size: int) -> str:
    """The fingerprint of the pixels features of side ``size`` (as :class:`~.backbones.Backbone` computes it)."""
    return hashlib.sha256(f"pixels|none|{TRANSFORM_REPR.format(size=size)}".encode()).hexdigest()


class PixelExtractor:
    """Features ``float32 (n, size * size)`` of PIL images: grayscale pixels, centred, L2-normalised.

    Attributes as a :class:`~.backbones.Backbone`'s: ``name`` ("pixels"), ``weights`` ("none"),
    ``dim``, ``fingerprint``, ``device`` ("cpu").
    """

    name = "pixels"
    weights = "none"
    device = "cpu"

    def __init__(self, size: int = 28):
        from ..errors import expected

        if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 512:
            raise expected("size", "an int from 4 to 512", repr(size))
        self.size, self.dim = size, size * size
        self.fingerprint = pixels_fingerprint(size)

    def extract(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Features ``float32 (n, dim)`` of a list of PIL images (``batch_size`` is accepted and unused)."""
        from PIL import Image

        out = np.zeros((len(images), self.dim), np.float32)
        for i, im in enumerate(images):
            gray = im.convert("L").resize((self.size, self.size), Image.Resampling.BILINEAR)
            x = (np.asarray(gray, dtype=np.float32).reshape(-1) / np.float32(255)).astype(np.float64)
            x = (x - x.mean()).astype(np.float32)  # in float64 as the torch backbone: a uniform image is 0
            out[i] = x / max(float(np.linalg.norm(x)), 1e-12)
        return out

    def __repr__(self) -> str:
        return f"PixelExtractor(size={self.size})"


__all__ = ["PixelExtractor", "TRANSFORM_REPR", "pixels_fingerprint"]
