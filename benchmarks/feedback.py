"""The feedback protocol on Fashion-MNIST: n pictures of one class, then 3 rounds of marking the top 20.

See :mod:`milvus_hash.eval.feedback`: per class and draw, n = 1, 3, 5 positives; each method shows its
top 20 unmarked items a round and a simulated user marks each right or wrong; after every round the AP
of the class over the full ranking (marked positives first, marked negatives last), P@10 and P@100.
Baselines with the same labels, each running its own loop, in the same run: plain multi-query search on
library codes and on float features, Rocchio, best-positive minus best-negative, logistic regression.

Feature spaces: ``--features pixels`` (the 60,000 training images as the database, a library
hyper-trained on them without labels) or ``effnet`` (EfficientNet-Lite0, the default backbone, on
15,000 training images: 1,500 a class). ``--classes 0,2,4,6`` restricts the classes to the confusable
tops (T-shirt, pullover, coat, shirt): the database holds only them. ``--validate`` draws the positives
from held-out *training* images (the setting the method's parameters were chosen in); otherwise from
the test split.

The goal (the category-loop issue): after round 3 at least 1.15x the best baseline's mAP; at round 0
at least 1.1x for n >= 5; never below the best baseline in any round.

Usage::

    .venv/bin/python benchmarks/feedback.py --features pixels
    .venv/bin/python benchmarks/feedback.py --features effnet
    .venv/bin/python benchmarks/feedback.py --features effnet --classes 0,2,4,6
    .venv/bin/python benchmarks/feedback.py --features pixels --validate      # for tuning only
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from common import RESULTS, cached_library, effnet_features, pixel_features

from milvus_hash.eval.feedback import UGH, FeedbackProtocol, best_baseline  # noqa: E402


def load(features: str, validate: bool):
    """(Xdb, ydb, Xq, yq, name) of a feature space; queries held out of the training images for --validate."""
    if features == "pixels":
        Xtr, ytr, Xte, yte = pixel_features()
        if not validate:
            return Xtr, ytr, Xte, yte
        held = np.random.default_rng(123).choice(len(Xtr), 10_000, replace=False)
        mask = np.ones(len(Xtr), bool)
        mask[held] = False
        return Xtr[mask], ytr[mask], Xtr[held], ytr[held]
    d = effnet_features()
    return d["Xdb"], d["ydb"], (d["Xval"] if validate else d["Xte"]), (d["yval"] if validate else d["yte"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", choices=["pixels", "effnet"], default="pixels")
    p.add_argument("--rounds", type=int, default=200, help="library rounds D (10 bits each) [default: 200]")
    p.add_argument("--feedback-rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--classes", default=None, help="comma-separated labels: the database and queries hold only them")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validate", action="store_true", help="positives from held-out training images")
    p.add_argument("--plot", default=None, help="write the mAP-by-round plot to this PNG (e.g. docs/feedback-effnet.png)")
    p.add_argument("--ugh-only", action="store_true", help="run only the UGH category (its calibration; no ratios)")
    args = p.parse_args(argv)
    Xdb, ydb, Xq, yq = load(args.features, args.validate)
    if args.classes:
        keep = [int(c) for c in args.classes.split(",")]
        m, mq = np.isin(ydb, keep), np.isin(yq, keep)
        Xdb, ydb, Xq, yq = Xdb[m], ydb[m], Xq[mq], yq[mq]
    tag = f"{args.features}{'_c' + args.classes.replace(',', '') if args.classes else ''}"
    lib, secs = cached_library(f"feedback_{tag}_{len(Xdb)}", Xdb, n_rounds=args.rounds, seed=args.seed,
                               n_subset=min(20_000, len(Xdb)))
    if secs is not None:
        print(f"hyper-trained {lib.n_bits_:,} bits on the database (no labels) in {secs:.0f} s", flush=True)
    t0 = time.perf_counter()
    Ldb, Lq = lib.transform(Xdb), lib.transform(Xq)
    print(f"{args.features}: database {len(Xdb):,} images, positives from {len(Xq):,} "
          f"{'held-out training' if args.validate else 'test'} images, classes {sorted(set(ydb.tolist()))}, "
          f"{lib.n_bits_:,}-bit library; {args.feedback_rounds} rounds of {args.per_round} marks", flush=True)
    proto = FeedbackProtocol(Xdb, ydb, Xq, yq, library_codes=(Ldb, Lq), library_spec=lib.encoder_spec(),
                             seed=args.seed, rounds=args.feedback_rounds, per_round=args.per_round)
    methods = [UGH] if args.ugh_only else None
    res = proto.protocol(shots=args.shots, draws=args.draws, methods=methods, log=lambda m: print(m, flush=True))
    if args.ugh_only:
        print(f"\n{time.perf_counter() - t0:.0f} s (no baselines run: no ratio)")
        return 0
    print("\nUGH category against the best baseline (mAP), round by round:")
    for n, rows in res["by_shots"].items():
        parts = []
        for r in range(args.feedback_rounds + 1):
            name, best = best_baseline(rows, r)
            parts.append(f"r{r} {rows[UGH][r]['map']:.3f}/{best:.3f} = {rows[UGH][r]['map'] / best:.2f}x")
        print(f"  n = {n}: " + ", ".join(parts))
    if args.plot:
        from milvus_hash.eval.plots import plot_feedback

        title = (f"Feedback protocol, {args.features}{' (tops: ' + args.classes + ')' if args.classes else ''}, "
                 f"{len(Xdb):,} items: mAP after each round of {args.per_round} marks")
        print(f"wrote {plot_feedback(res, args.plot, title=title)}")
    print(f"\n{time.perf_counter() - t0:.0f} s; seconds per method: "
          + ", ".join(f"{k}: {v:.1f}" for k, v in res["seconds"].items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"feedback_{tag}_D{args.rounds}{'_validate' if args.validate else ''}.json"
    out.write_text(json.dumps({**res, "features": args.features, "validate": args.validate}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
