"""Stage 1, images to features: CNN backbones in the torchvision manner.

``get_backbone(name, weights=...)`` returns a :class:`Backbone` that carries its own input transform
and gives L2-normalised ``float32 (n, dim)`` features (CUDA when present); ``load_trunk`` gives the
same CNN cut at its feature node, trainable (the UTH network's trunk); :mod:`.small_cnn` is the
small 28x28 grayscale CNN and its supervised training.
"""

from .backbones import (
                        ARCHITECTURES,
                        DEFAULT_BACKBONE,
                        Backbone,
                        RandomWeightsWarning,
                        Trunk,
                        backbone_record,
                        get_backbone,
                        load_trunk,
                        record_arguments,
                        resolve_device,
)

__all__ = ["ARCHITECTURES", "DEFAULT_BACKBONE", "Backbone", "RandomWeightsWarning", "Trunk", "backbone_record", "get_backbone",
           "load_trunk", "open_image", "record_arguments", "resolve_device"]
