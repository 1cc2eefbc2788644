"""Stage 2, features (or images) to binary codes.

- :mod:`.spec`: the :class:`Encoder` protocol, :class:`EncoderSpec` (which encoder wrote a
  collection) and :func:`fingerprint`;
- :mod:`.ugh`: UGH, the hyper-trained library of generic hash functions and few-shot codes;
- :mod:`.uth`: UTH, the image-to-code network trained on unlabeled triplets;
- :mod:`.lsh`, :mod:`.itq`: LSH and PCA-/CCA-ITQ baselines;
- :mod:`.loading`: :func:`load_encoder`, whichever encoder a saved file holds;
- :mod:`.validation`: the input checks the estimators share.

Every encoder's ``transform`` returns packed codes ``uint8 (n, n_bits // 8)``. Names load on first
use (the UTH network imports torch, the others scikit-learn).
"""

from .._lazy import lazy_exports
from .spec import Encoder, EncoderSpec, fingerprint

_EXPORTS = {
    "load_encoder": ".loading", "encoder_kind": ".loading", "encoder_backbone": ".loading",
    "LSHHasher": ".lsh", "ITQHasher": ".itq",
    "UGHLibrary": ".ugh", "CCACoder": ".ugh", "L1BitSelector": ".ugh",
    "UTHEncoder": ".uth",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["Encoder", "EncoderSpec", "fingerprint", *sorted(_EXPORTS)]
