"""The UTH paper's unsupervised protocol on Fashion-MNIST: mAP@1000 at 16 / 32 / 64 bits.

Setting ``scratch``: UTH (the small CNN from a random initialisation) trained on the 60,000 training
images without labels; database = those 60,000, queries = 1,000 test images. Baselines in the same
run, on pixels: LSH, PCA-ITQ, random bit subsets of the UGH pixel library, and the float pixels'
cosine ranking (a reference, not a code).

Setting ``base``: UTH initialised from the base CNN of the UGH issue (trained with labels on classes
0-4 only: ``benchmarks/base_cnn.py``), then trained on the 60,000 images without labels; database =
the training images of classes 5-9, queries = 1,000 test images of classes 5-9. Baselines: PCA-ITQ
and LSH on the base CNN's features and on pixels, the UGH CNN library's random subsets, and cosine
on both.

UTH's hyper-parameters come from ``configs/uth_fashion_mnist.yaml`` (chosen with ``--validate``:
queries from held-out training images, never the test set). Trained encoders are kept in
``benchmarks/results/uth_{setting}_{bits}b_s{seed}.pt``.

    .venv/bin/python benchmarks/unsupervised.py                    # both settings, 3 seeds
    .venv/bin/python benchmarks/unsupervised.py --setting scratch --bits 16 --seeds 0 --validate
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from common import BASE_CNN, RESULTS, ROOT, cached_library, cnn_features, pixel_features  # noqa: F401

from ingestion.idx import load_fashion_mnist  # noqa: E402
from milvus_hash.codes import pack_bits  # noqa: E402
from milvus_hash.config import load_config  # noqa: E402
from milvus_hash.encoders.itq import ITQHasher  # noqa: E402
from milvus_hash.encoders.lsh import LSHHasher  # noqa: E402
from milvus_hash.encoders.uth import UTHEncoder  # noqa: E402
from milvus_hash.eval.protocols import cosine_map, unsupervised_protocol  # noqa: E402

TOP = 1000
CONFIG = ROOT / "configs" / "uth_fashion_mnist.yaml"


def ugh_subset_codes(lib, X: np.ndarray, bits: np.ndarray) -> np.ndarray:
    Wa = lib.W_[:-1, bits] * lib.a_[bits]
    threshold = -(lib.W_[-1, bits] * lib.a_[bits] + lib.b_[bits])
    return pack_bits(X @ Wa >= threshold)


def split(setting: str, validate: bool, rng: np.random.Generator):
    """Training images, and (database rows, query images/rows) as index arrays into train/test."""
    Xtr, ytr = load_fashion_mnist(split="train")
    Xte, yte = load_fashion_mnist(split="test")
    if validate:  # queries: 1,000 of the last 5,000 training images, which are left out of everything else
        Xte, yte = Xtr[-5000:], ytr[-5000:]
        Xtr, ytr = Xtr[:-5000], ytr[:-5000]
    keep = np.isin(ytr, (5, 6, 7, 8, 9)) if setting == "base" else np.ones(len(ytr), bool)
    pool = np.flatnonzero(np.isin(yte, (5, 6, 7, 8, 9))) if setting == "base" else np.arange(len(yte))
    queries = np.sort(rng.choice(pool, 1000, replace=False))
    return Xtr, ytr, Xte, yte, np.flatnonzero(keep), queries


def feature_spaces(setting: str, validate: bool):
    """(name, train features, test features) of the baselines' feature spaces."""
    Ptr, _, Pte, _ = pixel_features()
    spaces = [("pixels", Ptr, Pte)]
    if setting == "base":
        Ctr, _, Cte, _ = cnn_features()
        spaces.insert(0, ("cnn", Ctr, Cte))
    if validate:
        spaces = [(n, a[:-5000], a[-5000:]) for n, a, _ in spaces]
    return spaces


def uth_params(setting: str, args) -> dict:
    params = load_config(args.config)["uth"]
    if setting == "base":
        params["weights"] = str(BASE_CNN)
    for key in ("alpha", "beta", "margin", "lr", "stage2_lr", "activation", "stage1_epochs", "stage2_epochs"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    return params


def run(setting: str, args) -> dict:
    rng = np.random.default_rng(12345)
    Xtr, ytr, Xte, yte, db, queries = split(setting, args.validate, rng)
    ydb, yq = ytr[db], yte[queries]
    out = {"setting": setting, "validate": args.validate, "bits": args.bits, "seeds": args.seeds,
           "n_train": len(Xtr), "n_database": len(db), "n_queries": len(queries), "uth": uth_params(setting, args),
           "references": {}}
    spaces = [] if args.uth_only else feature_spaces(setting, args.validate)
    for name, Ftr, Fte in spaces:
        out["references"][f"float cosine ({name})"] = cosine_map(Fte[queries], yq, Ftr[db], ydb, top=TOP)
        print(f"float cosine ({name}): {out['references'][f'float cosine ({name})']:.4f}", flush=True)
    libs = {n: cached_library(n, Ftr, n_rounds=2000)[0] for n, Ftr, _ in spaces
            if (RESULTS / f"ugh_{n}_D2000_s0.npz").exists()}

    methods = {}
    for name, Ftr, Fte in spaces:
        def lsh(bits, seed, Ftr=Ftr, Fte=Fte):
            h = LSHHasher(bits, random_state=seed).fit(Ftr)
            return h.transform(Fte[queries]), h.transform(Ftr[db])

        def pca_itq(bits, seed, Ftr=Ftr, Fte=Fte):
            h = ITQHasher(bits, random_state=seed).fit(Ftr)
            return h.transform(Fte[queries]), h.transform(Ftr[db])

        methods[f"LSH ({name})"], methods[f"PCA-ITQ ({name})"] = lsh, pca_itq
        if name in libs:
            def random_bits(bits, seed, lib=libs[name], Ftr=Ftr, Fte=Fte):
                sel = np.sort(np.random.default_rng(seed).choice(lib.n_bits_, bits, replace=False))
                return ugh_subset_codes(lib, Fte[queries], sel), ugh_subset_codes(lib, Ftr[db], sel)

            methods[f"UGH random bits ({name})"] = random_bits

    def uth(bits, seed):
        params = {**uth_params(setting, args), "n_bits": bits, "random_state": seed}
        path = RESULTS / f"uth_{setting}_{bits}b_s{seed}{'_validate' if args.validate else ''}{args.tag}.pt"
        t0 = time.perf_counter()
        enc = UTHEncoder(**params, progress=args.progress, checkpoint_dir=RESULTS / "uth_checkpoints" / path.stem,
                         resume=True)
        enc.fit(Xtr, log=lambda m: print("  " + m, flush=True))
        fit_s = time.perf_counter() - t0
        enc.save(path)
        t0 = time.perf_counter()
        db_codes = enc.transform(Xtr[db])
        rate = len(db) / (time.perf_counter() - t0)
        bits_on = np.unpackbits(db_codes, axis=1).mean(0)
        extra = {"train_s": fit_s, "encode_per_s": rate, "distinct_codes": len(np.unique(enc.transform(Xtr), axis=0)),
                 "bit_balance": float(np.abs(bits_on - 0.5).mean())}
        return enc.transform(Xte[queries]), db_codes, extra

    methods["UTH"] = uth
    res = unsupervised_protocol(methods, yq, ydb, lengths=args.bits, seeds=args.seeds, top=TOP,
                                log=lambda m: print(m, flush=True))
    return {**out, **res}


def summarise(res: dict) -> list[str]:
    bits = res["bits"]
    lines = [f"\n{res['setting']}: mAP@{TOP}, mean ± std over seeds {res['seeds']} "
             f"({res['n_train']:,} training images, database {res['n_database']:,}, {res['n_queries']:,} queries"
             f"{', VALIDATION' if res['validate'] else ''})", "",
             "| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---" * (len(bits) + 1) + "|"]
    by = res["by_length"]
    for method in by[bits[0]]:
        cells = [f"{by[b][method]['map']:.3f} ± {by[b][method]['map_std']:.3f}" if method in by[b] else "-"
                 for b in bits]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for name, v in res["references"].items():
        lines.append(f"| {name} (reference) | " + " | ".join([f"{v:.3f}"] * len(bits)) + " |")
    for b in bits:
        u = by[b].get("UTH")
        if u:
            lines.append(f"UTH {b} bits: training {u['train_s']:.0f} s, encoding {u['encode_per_s']:,.0f} images/s, "
                         f"distinct codes {u['distinct_codes']:,.0f} of {res['n_train']:,}, mean |P(bit)-0.5| "
                         f"{u['bit_balance']:.3f}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=["scratch", "base", "both"], default="both")
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--config", default=str(CONFIG))
    p.add_argument("--validate", action="store_true", help="queries from held-out training images (for tuning)")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument("--uth-only", action="store_true", help="no baselines (for tuning)")
    p.add_argument("--tag", default="", help="suffix of the JSON and encoder files")
    for key, kind in (("alpha", float), ("beta", float), ("margin", float), ("lr", float), ("stage2_lr", float),
                      ("activation", str), ("stage1_epochs", int), ("stage2_epochs", int)):
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, default=None, help="override the config")
    args = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for setting in (["scratch", "base"] if args.setting == "both" else [args.setting]):
        if setting == "base" and not BASE_CNN.exists():
            raise SystemExit(f"{BASE_CNN} is missing: run benchmarks/base_cnn.py first")
        res = run(setting, args)
        lines = summarise(res)
        print("\n".join(lines), flush=True)
        name = f"unsupervised_{setting}{'_validate' if args.validate else ''}{args.tag}.json"
        (RESULTS / name).write_text(json.dumps({**res, "table": lines}, indent=2))
        print(f"wrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
