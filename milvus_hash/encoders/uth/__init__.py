"""UTH, unsupervised triplet hashing (the second encoder): a CNN and a hash layer trained without labels
on (image, rotated image, random image) triplets with quantization and bit-entropy losses.

- :mod:`.losses`: the three losses and their weighted sum;
- :mod:`.model`: :class:`HashNet` (trunk + hash layer + activation) and the rotation of batches;
- :mod:`.training`: the two-stage SGD loop with checkpoints and resume;
- :mod:`.estimator`: :class:`UTHEncoder`, the estimator (``fit`` / ``transform`` / ``save`` / ``load``).
"""

from .estimator import UTHEncoder
from .losses import entropy_loss, quantization_loss, triplet_loss, uth_loss
from .model import HashNet
from .training import TrainSettings

__all__ = ["HashNet", "TrainSettings", "UTHEncoder", "entropy_loss", "quantization_loss", "triplet_loss",
           "uth_loss"]
