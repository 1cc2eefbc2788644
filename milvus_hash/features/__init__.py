"""Stage 1, images to features: CNN backbones in the torchvision manner.

``get_backbone(name, weights=...)`` returns a :class:`Backbone` that carries its own input transform
and gives L2-normalised ``float32 (n, dim)`` features (CUDA when present); ``load_trunk`` gives the
same CNN cut at its feature node, trainable (the UTH network's trunk); :mod:`.small_cnn` is the
small 28x28 grayscale CNN and its supervised training. ``get_extractor`` is the same for images in
memory, without torch for ``pixels`` (:mod:`.pixels`); :mod:`.images` reads image files.

Names load on first use: reading images or the pixels features never imports torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ARCHITECTURES", "DEFAULT_BACKBONE", "Backbone", "RandomWeightsWarning", "Trunk", "get_backbone",
                     "load_trunk", "resolve_device"], ".backbones"),
    **dict.fromkeys(["backbone_record", "get_extractor", "record_arguments"], ".extractor"),
    "PixelExtractor": ".pixels",
    "open_image": ".images",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
