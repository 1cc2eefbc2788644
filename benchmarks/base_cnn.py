"""Train the UGH issue's base CNN: :class:`SmallCNN` with labels on Fashion-MNIST classes 0-4 only.

The papers' CNN was trained on ImageNet and then described images of other categories; in miniature,
this CNN learns classes 0-4 (T-shirt, trouser, pullover, dress, coat) and its 256-D penultimate layer
is the feature space of the few-shot protocol on the unseen classes 5-9 (sandal, shirt, sneaker, bag,
ankle boot). The weights are saved as a plain ``state_dict`` and read back through
``get_backbone("small_cnn", weights=path)``, the local-weights path users have.

Usage::

    .venv/bin/python benchmarks/base_cnn.py            # ~2 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from common import BASE_CLASSES, BASE_CNN

from ingestion.idx import load_fashion_mnist
from milvus_hash.features.small_cnn import accuracy, save_weights, train_classifier


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(BASE_CNN))
    args = p.parse_args(argv)
    Xtr, ytr = load_fashion_mnist(split="train")
    Xte, yte = load_fashion_mnist(split="test")
    base = np.isin(ytr, BASE_CLASSES)
    t0 = time.perf_counter()
    model = train_classifier(Xtr[base], ytr[base], epochs=args.epochs, seed=args.seed)
    secs = time.perf_counter() - t0
    test = np.isin(yte, BASE_CLASSES)
    acc = accuracy(model, Xte[test], yte[test], np.array(BASE_CLASSES))
    path = save_weights(model, args.out)
    print(f"trained on {base.sum():,} images of classes {BASE_CLASSES} in {secs:.0f} s; "
          f"test accuracy on those classes {acc:.4f}; weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
