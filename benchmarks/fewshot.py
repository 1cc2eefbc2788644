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

Usage::

    .venv/bin/python benchmarks/fewshot.py                      # pixels, 20,000-bit library, 5 draws
    .venv/bin/python benchmarks/base_cnn.py && .venv/bin/python benchmarks/fewshot.py --features cnn
    .venv/bin/python benchmarks/fewshot.py --rounds 500 --draws 2 --shots 1 5 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from common import BASE_CLASSES, RESULTS, cached_library, cnn_features, pixel_features

from milvus_hash.codes import select_bits
from milvus_hash.eval import average_precisions, mean_average_precision, precision_within_radius
from milvus_hash.itq import ITQHasher
from milvus_hash.lsh import LSHHasher
from milvus_hash.ugh.fewshot import CCACoder
from milvus_hash.ugh.selection import L1BitSelector


def cosine_map(Xq, yq, Xdb, ydb) -> float:
    aps = []
    for s in range(0, len(Xq), 100):
        sim = Xq[s:s + 100] @ Xdb.T
        order = np.argsort(-sim, axis=1, kind="stable")
        rel = ydb[order] == yq[s:s + 100, None]
        hits = np.cumsum(rel, axis=1)
        aps.append((rel * hits / np.arange(1, len(ydb) + 1)).sum(1) / np.maximum(rel.sum(1), 1))
    return float(np.concatenate(aps).mean())


def run(args) -> dict:
    Xtr, ytr, Xte, yte = pixel_features() if args.features == "pixels" else cnn_features()
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
    Ldb, Lq = lib.transform(Xdb), lib.transform(Xq)
    pool = LSHHasher(n_bits=4096, random_state=args.seed).fit(Xdb)
    Pdb, Pq = pool.transform(Xdb), pool.transform(Xq)

    def score(qc, dbc):
        return (mean_average_precision(qc, yq, dbc, ydb), precision_within_radius(qc, yq, dbc, ydb, radius=2))

    def methods(n_bits, lab, draw):
        Xl, yl = Xdb[lab], ydb[lab]
        out = {}
        t0 = time.perf_counter()
        coder = CCACoder(n_bits, random_state=draw).fit(Ldb[lab], yl, background=Ldb)
        out["UGH default (CCA codes)"] = score(coder.transform(Lq), coder.transform(Ldb)) + (time.perf_counter() - t0,)
        t0 = time.perf_counter()
        sel = L1BitSelector(n_bits).fit(Ldb[lab], yl)
        out["UGH paper (L1 bits)"] = score(sel.transform(Lq), sel.transform(Ldb)) + (time.perf_counter() - t0,)
        pos = np.random.default_rng(draw).choice(lib.n_bits_, n_bits, replace=False)
        out["random library bits"] = score(select_bits(Lq, pos), select_bits(Ldb, pos))
        lsh = LSHHasher(n_bits, random_state=draw).fit(Xdb)
        out["LSH"] = score(lsh.transform(Xq), lsh.transform(Xdb))
        pca = ITQHasher(n_bits, random_state=draw).fit(Xdb)
        out["PCA-ITQ"] = score(pca.transform(Xq), pca.transform(Xdb))
        if len(lab) > n_bits:
            cca = ITQHasher(n_bits, projection="cca", random_state=draw).fit(Xl, yl)
            out["CCA-ITQ (labeled)"] = score(cca.transform(Xq), cca.transform(Xdb))
        cca_u = ITQHasher(n_bits, projection="cca", random_state=draw).fit(Xl, yl, unlabeled=Xdb)
        out["CCA-ITQ (rotation on unlabeled)"] = score(cca_u.transform(Xq), cca_u.transform(Xdb))
        lsel = L1BitSelector(n_bits).fit(Pdb[lab], yl)
        out["L1 bits of 4,096 LSH bits"] = score(lsel.transform(Pq), lsel.transform(Pdb))
        return out

    results = {"library_bits": lib.n_bits_, "validate": args.validate, "draws": args.draws,
               "cosine_float_map": cosine_map(Xq, yq, Xdb, ydb),
               "library_hamming_map": float(average_precisions(Lq, yq, Ldb, ydb).mean()),
               "by_shots": {}, "by_length": {}}
    print(f"reference: float cosine mAP {results['cosine_float_map']:.3f}; "
          f"all {lib.n_bits_:,} library bits, Hamming mAP {results['library_hamming_map']:.3f}", flush=True)

    def draw_labels(n, draw):
        r = np.random.default_rng(10_000 * n + draw)
        return np.concatenate([r.choice(np.flatnonzero(ydb == c), n, replace=False) for c in np.unique(ydb)])

    for n in args.shots:
        runs = [methods(16, draw_labels(n, d), d) for d in range(args.draws)]
        results["by_shots"][n] = summarise(runs)
        print_table(f"n = {n} labeled per class, 16 bits", results["by_shots"][n])
    for b in args.lengths:
        runs = [methods(b, draw_labels(10, d), d) for d in range(args.draws)]
        results["by_length"][b] = summarise(runs)
        print_table(f"{b} bits, n = 10", results["by_length"][b])
    return results


def summarise(runs: list[dict]) -> dict:
    out = {}
    for name in runs[0]:
        vals = np.array([r[name] for r in runs if name in r])
        out[name] = {"map": float(vals[:, 0].mean()), "map_std": float(vals[:, 0].std()),
                     "p_r2": float(vals[:, 1].mean()), "p_r2_std": float(vals[:, 1].std())}
        if vals.shape[1] > 2:
            out[name]["fit_s"] = float(vals[:, 2].mean())
    return out


def print_table(title: str, rows: dict) -> None:
    print(f"\n{title}\n  {'method':34s} {'mAP':>15s} {'P@r2':>15s}")
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["map"]):
        print(f"  {name:34s} {r['map']:.3f} ± {r['map_std']:.3f}   {r['p_r2']:.3f} ± {r['p_r2_std']:.3f}")
    sys.stdout.flush()


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
