"""The UGH paper's few-shot protocol on Fashion-MNIST, every method on the same features.

Two feature spaces: ``--features pixels`` (all ten classes) and ``--features cnn``, the paper's
setting in miniature: the 256-D features of a small CNN trained with labels on classes 0-4 only
(``benchmarks/base_cnn.py``), and the protocol on the unseen classes 5-9.

Hyper-train the library on the 60,000 training images without labels. For n labeled training images
per class, learn a 16-bit code; the database is the 60,000 training images, the queries 1,000 test
images; report mAP (full Hamming ranking, ties broken by id) and precision within Hamming radius 2,
mean and std over draws. Side by side, in the same run: the UGH default (:class:`CCACoder`), the
paper's L1 bit selection, 16 random library bits, LSH, PCA-ITQ, CCA-ITQ on the labeled images
(rotation fitted on them, or on the unlabeled images), an L1 selection from 4,096 random LSH bits
(what the library adds over random hyperplanes), and the float features' cosine ranking.
Then code lengths 8/16/32/64 at n = 10.

``--validate`` replaces the test queries by 1,000 held-out *training* images (removed from the
database): the setting for choosing hyper-parameters without looking at the queries.

The arrays are also written as features folders, so the command line reproduces these numbers::

    milvus-hash eval benchmarks/results/features_pixels_train \
        --query-source benchmarks/results/features_pixels_test \
        --library benchmarks/results/ugh_pixels_D2000_s0.npz --protocol fewshot --shots 1,3,5,10,30 \
        --lengths 8,16,32,64 --draws 5 --out report/      # --classes 5,6,7,8,9 for --features cnn

Usage::

    .venv/bin/python benchmarks/fewshot.py                      # pixels, 20,000-bit library, 5 draws
    .venv/bin/python benchmarks/base_cnn.py && .venv/bin/python benchmarks/fewshot.py --features cnn
    .venv/bin/python benchmarks/fewshot.py --rounds 500 --draws 2 --shots 1 5 10
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from common import BASE_CLASSES, RESULTS, cached_library, cnn_features, export_features, pixel_features

from milvus_hash.eval.protocols import fewshot_protocol  # noqa: E402


def run(args) -> dict:
    Xtr, ytr, Xte, yte = pixel_features() if args.features == "pixels" else cnn_features()
    for split, X, y in (("train", Xtr, ytr), ("test", Xte, yte)):  # for `milvus-hash eval` on the same arrays
        export_features(args.features, X, y, split)
    lib, secs = cached_library(args.features, Xtr, n_rounds=args.rounds, n_jobs=args.jobs)
    if secs is not None:
        print(f"hyper-trained {lib.n_bits_:,} bits in {secs:.0f} s", flush=True)
    if args.features == "cnn":  # the protocol runs on the classes the CNN never saw
        novel_tr, novel_te = ~np.isin(ytr, BASE_CLASSES), ~np.isin(yte, BASE_CLASSES)
        Xtr, ytr, Xte, yte = Xtr[novel_tr], ytr[novel_tr], Xte[novel_te], yte[novel_te]
        print(f"CNN features of the unseen classes {sorted(set(ytr.tolist()))}: database {len(Xtr):,} "
              f"training images, queries from {len(Xte):,} test images", flush=True)
    rng = np.random.default_rng(args.seed)
    if args.validate:
        q_idx = rng.choice(len(Xtr), 1000, replace=False)
        db_mask = np.ones(len(Xtr), bool)
        db_mask[q_idx] = False
        Xdb, ydb, Xq, yq = Xtr[db_mask], ytr[db_mask], Xtr[q_idx], ytr[q_idx]
    else:
        q_idx = rng.choice(len(Xte), 1000, replace=False)
        Xdb, ydb, Xq, yq = Xtr, ytr, Xte[q_idx], yte[q_idx]
    results = fewshot_protocol(Xdb, ydb, Xq, yq, library=lib, shots=args.shots, lengths=args.lengths,
                               draws=args.draws, seed=args.seed, log=lambda m: print(m, flush=True))
    return {**results, "validate": args.validate}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", choices=["pixels", "cnn"], default="pixels",
                   help="pixels, or the base CNN's features (classes 5-9; run base_cnn.py first)")
    p.add_argument("--rounds", type=int, default=2000, help="library rounds D (K = 10 bits each)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5, 10, 30])
    p.add_argument("--lengths", type=int, nargs="*", default=[8, 16, 32, 64])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validate", action="store_true", help="held-out training images as queries")
    args = p.parse_args(argv)
    results = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"fewshot_{args.features}_D{args.rounds}{'_validate' if args.validate else ''}.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
