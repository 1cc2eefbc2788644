"""The single-category protocol on Fashion-MNIST: n pictures of one class, rank the database, find the class.

For each class and each draw, n positives (n = 1, 3, 5, 10) drawn from the test images; the database
(the 60,000 training images, or for ``--features cnn`` the 30,000 of the classes the base CNN never
saw) ranked by each method; AP over the full ranking, P@10 and P@100, mean ± std over classes and draws.
Side by side in the same run (see :mod:`milvus_hash.eval.single_category`): the UGH category (what
``HashClient.members`` ranks by), the float features' cosine to the positives' mean, the nearest
positive on the full library codes, the positives' majority library code, and the previous one-class
16-bit category code. The goal (issue 13): the UGH category at least the best baseline at n = 1 and
at least 1.1x at n >= 5.

``--validate`` draws the positives from 10,000 held-out *training* images instead (removed from the
database): the setting in which the method and its parameters were chosen.

Usage::

    .venv/bin/python benchmarks/single_category.py                       # pixels, 20,000-bit library
    .venv/bin/python benchmarks/base_cnn.py && .venv/bin/python benchmarks/single_category.py --features cnn
    .venv/bin/python benchmarks/single_category.py --validate
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from common import BASE_CLASSES, RESULTS, cached_library, cnn_features, pixel_features

from milvus_hash.eval.single_category import UGH, best_baseline, single_category_protocol  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", choices=["pixels", "cnn"], default="pixels")
    p.add_argument("--rounds", type=int, default=2000, help="library rounds D (K = 10 bits each)")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5, 10])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validate", action="store_true", help="positives from held-out training images")
    p.add_argument("--background", type=int, default=None,
                   help="background codes sampled from the database (default: HashClient's)")
    args = p.parse_args(argv)
    Xtr, ytr, Xte, yte = pixel_features() if args.features == "pixels" else cnn_features()
    lib, secs = cached_library(args.features, Xtr, n_rounds=args.rounds)
    if secs is not None:
        print(f"hyper-trained {lib.n_bits_:,} bits in {secs:.0f} s", flush=True)
    if args.features == "cnn":
        tr, te = ~np.isin(ytr, BASE_CLASSES), ~np.isin(yte, BASE_CLASSES)
        Xtr, ytr, Xte, yte = Xtr[tr], ytr[tr], Xte[te], yte[te]
    if args.validate:
        rng = np.random.default_rng(123)
        held = rng.choice(len(Xtr), 10_000, replace=False)
        mask = np.ones(len(Xtr), bool)
        mask[held] = False
        Xdb, ydb, Xq, yq = Xtr[mask], ytr[mask], Xtr[held], ytr[held]
    else:
        Xdb, ydb, Xq, yq = Xtr, ytr, Xte, yte
    print(f"{args.features}: database {len(Xdb):,}, positives drawn from {len(Xq):,} "
          f"{'held-out training' if args.validate else 'test'} images, {lib.n_bits_:,}-bit library", flush=True)
    res = single_category_protocol(Xdb, ydb, Xq, yq, library=lib, shots=args.shots, draws=args.draws,
                                   seed=args.seed, log=lambda m: print(m, flush=True),
                                   **({} if args.background is None else {"background": args.background}))
    print("\nUGH category against the best baseline (mAP):")
    for n, rows in res["by_shots"].items():
        name, best = best_baseline(rows)
        print(f"  n = {n:2d}: {rows[UGH]['map']:.3f} vs {best:.3f} ({rows[UGH]['map'] / best:.2f}x, {name})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"single_category_{args.features}_D{args.rounds}{'_validate' if args.validate else ''}.json"
    out.write_text(json.dumps({**res, "validate": args.validate}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
