"""Are members' probabilities right? Calibration of ``HashClient.members`` on real images, beside
the previous calibration, in the same run.

The setting of ``milvus-hash demo`` on images it never shows: Fashion-MNIST *training* images
(300 of each class for the store, rows 300-599 of each class; positives drawn from 100 others of
each class, rows 600-699) through the default backbone (EfficientNet-Lite0, ImageNet weights), a
400-bit UGH library hyper-trained on the store without labels, the store's 2,000-code background.
For n = 1, 2, 3, 5, 10 positives, each class, ``--draws`` draws: the category is learned as
``HashClient.define`` learns it, every store item is scored, and the printed figures are the Brier
score, the mean probability of the top 10 (and 100) beside their precision, and how many items
get probability >= 0.5 / >= 0.9 at which precision (the class has 300 items). "previous" is the
Elkan-Noto calibration (Platt's sigmoid over its mean on the positives, clipped to 1) that the
category still carries as ``member_platt``.

Usage::

    .venv/bin/python benchmarks/calibration.py            # ~5 min the first time (features cached)
    .venv/bin/python benchmarks/calibration.py --rounds 200   # a 2,000-bit library
    .venv/bin/python benchmarks/calibration.py --features-folders fm   # the same images for `milvus-hash eval`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from common import RESULTS

from ingestion.idx import load_fashion_mnist
from milvus_hash.categories.category import learn_category
from milvus_hash.categories.membership import class_calibration, probabilities
from milvus_hash.encoders.ugh.background import Background
from milvus_hash.encoders.ugh.library import UGHLibrary
from milvus_hash.codes import hamming_distances
from milvus_hash.eval.single_category import background_rows, draw_positives, ranking_scores


def features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from PIL import Image

    from milvus_hash.features import DEFAULT_BACKBONE, get_backbone

    backbone = get_backbone(DEFAULT_BACKBONE, "DEFAULT")
    cache = RESULTS / "features_calibration_fmnist.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) == backbone.fingerprint:
                return z["Fdb"], z["ydb"], z["Fq"], z["yq"]
    X, y = load_fashion_mnist(split="train")
    db = np.concatenate([np.flatnonzero(y == c)[300:600] for c in range(10)])
    q = np.concatenate([np.flatnonzero(y == c)[600:700] for c in range(10)])
    out = []
    for rows in (db, q):
        out.append(np.concatenate([backbone.extract([Image.fromarray(X[i], mode="L") for i in rows[s:s + 64]])
                                   for s in range(0, len(rows), 64)]))
        print(f"extracted {len(rows):,} images", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez(cache, Fdb=out[0], ydb=y[db], Fq=out[1], yq=y[q], fingerprint=backbone.fingerprint)
    return out[0], y[db], out[1], y[q]


def write_folders(root: Path, Fdb, ydb, Fq, yq) -> None:
    """The store's and the queries' EfficientNet-Lite0 features, and the same images' pixels, as
    features folders labelled with the class names."""
    from ingestion.demo import FASHION_NAMES
    from ingestion.features_folder import FeaturesWriter
    from milvus_hash.features import DEFAULT_BACKBONE, backbone_record, get_backbone

    X, y = load_fashion_mnist(split="train")
    rows = {"db": np.concatenate([np.flatnonzero(y == c)[300:600] for c in range(10)]),
            "q": np.concatenate([np.flatnonzero(y == c)[600:700] for c in range(10)])}
    spaces = {DEFAULT_BACKBONE: (get_backbone(DEFAULT_BACKBONE, "DEFAULT"), {"db": Fdb, "q": Fq}),
              "pixels": (get_backbone("pixels", weights=None, size=28),
                         {k: X[r].reshape(len(r), -1).astype(np.float32) / 255.0 for k, r in rows.items()})}
    for space, (backbone, feats) in spaces.items():
        for part, labels in (("db", ydb), ("q", yq)):
            out = root / space / part
            FeaturesWriter(out, backbone_record(backbone)).write(
                np.arange(len(labels)) + (0 if part == "db" else 1_000_000), feats[part],
                [f"fashion-mnist-train/{i}" for i in rows[part]], [FASHION_NAMES[v] for v in labels])
            print(f"wrote {out}")


def measure(p: np.ndarray, s: np.ndarray, relevant: np.ndarray) -> dict:
    order = np.argsort(-s, kind="stable")
    out = {"brier": float(np.mean((p - relevant) ** 2))}
    for k in (10, 100):
        out[f"top{k}_probability"] = float(p[order[:k]].mean())
        out[f"p{k}"] = float(relevant[order[:k]].mean())
    for t in (0.5, 0.9):
        sel = p >= t
        out[f"n_{t}"] = int(sel.sum())
        out[f"precision_{t}"] = float(relevant[sel].mean()) if sel.any() else float("nan")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40, help="library rounds (10 bits each; the demo's 40)")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features-folders", metavar="DIR", default=None,
                    help="only write these images' features as features folders DIR/{efficientnet_lite0,pixels}/"
                         "{db,q} (for `milvus-hash eval DIR/efficientnet_lite0/db --query-source ...`) and stop")
    args = ap.parse_args(argv)
    Fdb, ydb, Fq, yq = features()
    if args.features_folders:
        write_folders(Path(args.features_folders), Fdb, ydb, Fq, yq)
        return 0
    lib = UGHLibrary(n_rounds=args.rounds, n_subset=len(Fdb), n_categories=20, n_expand=20,
                     random_state=args.seed).fit(Fdb)
    Ldb, Lq = lib.transform(Fdb), lib.transform(Fq)
    rows_bg = background_rows(len(Ldb), 2000, args.seed)
    bg, spec = Background(Ldb[rows_bg]), lib.encoder_spec()
    print(f"store {len(Ldb):,} items ({(ydb == 0).sum()} a class), {lib.n_bits_}-bit library, "
          f"{args.draws} draws of each of 10 classes", flush=True)
    results = {}
    for n in (1, 2, 3, 5, 10):
        runs = {"curve": [], "previous": []}
        ranking = {"members": [], "nearest positive": []}
        for d in range(args.draws):
            for c in range(10):
                pos = draw_positives(yq, c, n, d, args.seed)
                cat = learn_category("c", Lq[pos], ["c"] * n, background=bg, n_bits=16, method="cca",
                                     library=spec, seed=args.seed)
                s = cat.member_scores(Ldb, 0)
                relevant = ydb == c
                runs["curve"].append(measure(probabilities(class_calibration(cat.arrays, 0), s), s, relevant))
                runs["previous"].append(measure(probabilities(cat.arrays["member_platt"][0], s), s, relevant))
                ranking["members"].append(ranking_scores(s.astype(np.float64), relevant))
                d_min = hamming_distances(Lq[pos], Ldb).min(0).astype(np.float64)
                ranking["nearest positive"].append(ranking_scores(-d_min, relevant))
        results[n] = {name: {k: float(np.nanmean([r[k] for r in rs])) for k in rs[0]} for name, rs in runs.items()}
        results[n]["ranking"] = {name: {k: float(np.mean([r[k] for r in rs])) for k in ("ap", "p10", "p100")}
                                 for name, rs in ranking.items()}
        print(f"\nn = {n}")
        for name, m in results[n]["ranking"].items():
            print(f"  ranking by {name:17s} mAP {m['ap']:.3f}  P@10 {m['p10']:.3f}  P@100 {m['p100']:.3f}")
        for name in ("curve", "previous"):
            m = results[n][name]
            print(f"  {name:9s} Brier {m['brier']:.3f}   top 10: mean p {m['top10_probability']:.2f}, "
                  f"P@10 {m['p10']:.2f}   top 100: {m['top100_probability']:.2f}, {m['p100']:.2f}   "
                  f"p >= 0.5: {m['n_0.5']:.0f} items, precision {m['precision_0.5']:.2f}   "
                  f"p >= 0.9: {m['n_0.9']:.0f}, {m['precision_0.9']:.2f}", flush=True)
    out = RESULTS / f"calibration_D{args.rounds}.json"
    out.write_text(json.dumps({"library_bits": int(lib.n_bits_), "draws": args.draws, "by_shots": results}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
