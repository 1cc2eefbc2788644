"""UGH speed on Fashion-MNIST pixels (60,000 x 784), each figure beside its baseline from the same run.

* Hyper-training: seconds for the whole library and per round, with ``--jobs`` processes, against
  the same rounds solved with one liblinear call per SVM (the straightforward solver) on a sample
  of rounds, whose codes' agreement is reported too.
* Encoding: ``UGHLibrary.transform`` images/s against the bare float matrix product of the same
  shapes (ratio).
* Bit selection: the L1-SVM selector for 10 classes x 10 examples on the library's codes.

Usage::

    .venv/bin/python benchmarks/ugh_speed.py                 # 2,000 rounds = 20,000 bits, 2 jobs
    .venv/bin/python benchmarks/ugh_speed.py --rounds 200    # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from common import RESULTS, cached_library, pixel_features

from milvus_hash.encoders.ugh.selection import L1BitSelector


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-rounds", type=int, default=10, help="rounds solved both ways for the comparison")
    args = p.parse_args(argv)
    Xtr, ytr, _, _ = pixel_features()
    out = {"rounds": args.rounds, "bits": args.rounds * 10, "jobs": args.jobs}
    lib, seconds = cached_library("pixels", Xtr, n_rounds=args.rounds, n_jobs=args.jobs, seed=args.seed, refresh=True)
    out["hypertrain_s"] = seconds
    out["s_per_round_per_core"] = out["hypertrain_s"] * args.jobs / args.rounds
    print(f"hyper-training {out['bits']:,} bits ({args.rounds} rounds, {args.jobs} jobs): "
          f"{out['hypertrain_s']:.0f} s, {out['s_per_round_per_core']:.2f} s per round per core", flush=True)

    # The straightforward solver on the same rounds (same seeds): time and quality side by side.
    import torch

    from milvus_hash.encoders.ugh.hypertrain import RoundParams, hypertrain_round

    torch.set_num_threads(1)
    seeds = np.random.SeedSequence(args.seed).spawn(args.rounds)[: args.compare_rounds]
    held = Xtr[-5000:]
    timing = {"batched": [], "liblinear": []}
    results = {}
    for solver in timing:
        results[solver] = []
        for seed in seeds:
            t0 = time.perf_counter()
            results[solver].append(hypertrain_round(Xtr, RoundParams(solver=solver), seed, torch.device("cpu")))
            timing[solver].append(time.perf_counter() - t0)
    agree, obj_ratio = [], []
    for rb, rl in zip(results["batched"], results["liblinear"]):
        bits_b = (held @ rb.W[:-1] + rb.W[-1]) * rb.a + rb.b >= 0
        bits_l = (held @ rl.W[:-1] + rl.W[-1]) * rl.a + rl.b >= 0
        agree.append((bits_b == bits_l).mean())
        obj_ratio.append(rb.history[1][-1] / rl.history[1][-1])
    out.update(round_s_batched=float(np.mean(timing["batched"])), round_s_liblinear=float(np.mean(timing["liblinear"])),
               bit_agreement=float(np.mean(agree)), dbc_objective_ratio=float(np.mean(obj_ratio)))
    print(f"one round on one core, {len(seeds)} rounds: batched solver {out['round_s_batched']:.2f} s, "
          f"liblinear per SVM {out['round_s_liblinear']:.2f} s ({out['round_s_liblinear'] / out['round_s_batched']:.1f}x); "
          f"same seeds: {out['bit_agreement']:.1%} of bits agree on 5,000 images, final DBC objective "
          f"ratio {out['dbc_objective_ratio']:.4f} (batched / liblinear; the objective is negative: above 1 is better)",
          flush=True)

    X = Xtr[:20000]
    lib.transform(X[:512])
    t0 = time.perf_counter()
    lib.transform(X)
    enc = time.perf_counter() - t0
    W = lib.W_[:-1]
    t0 = time.perf_counter()
    for s in range(0, len(X), 4096):
        X[s:s + 4096] @ W
    bare = time.perf_counter() - t0
    out.update(encode_images_s=len(X) / enc, bare_matmul_images_s=len(X) / bare, encode_vs_matmul=bare / enc)
    print(f"encoding: {out['encode_images_s']:,.0f} images/s; bare float matmul {out['bare_matmul_images_s']:,.0f} "
          f"images/s; ratio {out['encode_vs_matmul']:.2f}", flush=True)

    rng = np.random.default_rng(args.seed)
    lab = np.concatenate([rng.choice(np.flatnonzero(ytr == c), 10, replace=False) for c in range(10)])
    lib_codes = lib.transform(Xtr[lab])
    t0 = time.perf_counter()
    sel = L1BitSelector(16).fit(lib_codes, ytr[lab])
    out["select_s"] = time.perf_counter() - t0
    print(f"bit selection, 10 classes x 10 examples on {lib.n_bits_:,} bits: {out['select_s'] * 1000:.0f} ms "
          f"(C used {sel.C_}, relaxed {sel.lowered_} times)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ugh_speed.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
