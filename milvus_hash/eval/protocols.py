"""The papers' evaluation protocols over feature arrays, with their baselines side by side.

- :func:`fewshot_protocol` (UGH paper, Section 4): for ``n`` labeled database images per class,
  learn a ``B``-bit code by every method, rank the database for each query, report mAP over the
  full Hamming ranking and precision within Hamming radius 2, mean and std over draws; then code
  lengths at a fixed ``n``.
- :func:`unsupervised_protocol` (UTH paper, Section 4): codes learned without labels, mAP@1000 at
  several code lengths, mean and std over seeds.

Both score through a scorer (:mod:`.scoring`): numpy, or the queries through Milvus. The benchmark
scripts and ``milvus-hash eval`` call these functions, so their numbers are the same computation.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..codes import select_bits
from .scoring import NumpyScorer

FEWSHOT_METHODS = ("UGH default (CCA codes)", "UGH paper (L1 bits)", "random library bits", "LSH", "PCA-ITQ",
                   "CCA-ITQ (labeled)", "CCA-ITQ (rotation on unlabeled)", "L1 bits of 4,096 LSH bits")


def cosine_map(Xq, yq, Xdb, ydb, *, top: int | None = None) -> float:
    """mAP (or mAP@top) of the float features' cosine ranking (a reference, not a code)."""
    aps = []
    k = len(ydb) if top is None else min(top, len(ydb))
    pos = np.arange(1, k + 1)
    for s in range(0, len(Xq), 100):
        sim = Xq[s:s + 100] @ Xdb.T
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        rel = ydb[order] == yq[s:s + 100, None]
        hits = np.cumsum(rel, axis=1)
        n = rel.sum(1)
        aps.append(np.where(n > 0, (rel * hits / pos).sum(1) / np.maximum(n, 1), 0.0))
    return float(np.concatenate(aps).mean())


def draw_support(ydb: np.ndarray, n: int, draw: int) -> np.ndarray:
    """Rows of ``n`` labeled database images per class for draw ``draw`` (seeded by n and draw)."""
    r = np.random.default_rng(10_000 * n + draw)
    return np.concatenate([r.choice(np.flatnonzero(ydb == c), n, replace=False) for c in np.unique(ydb)])


def summarise(runs: list[dict]) -> dict:
    """Mean and std over draws/seeds of each method's scores."""
    out = {}
    for name in runs[0]:
        vals = [r[name] for r in runs if name in r]
        out[name] = {}
        for key in vals[0]:
            arr = np.array([v[key] for v in vals], dtype=np.float64)
            out[name][key] = float(arr.mean())
            if key != "fit_s":
                out[name][f"{key}_std"] = float(arr.std())
    return out


class FewShot:
    """The few-shot methods on one database / query split (features ``X``, library codes ``L``)."""

    def __init__(self, Xdb, ydb, Xq, yq, library, *, methods=FEWSHOT_METHODS, scorer=None, seed: int = 0,
                 library_codes: tuple | None = None):
        from ..encoders.lsh import LSHHasher

        unknown = sorted(set(methods) - set(FEWSHOT_METHODS))
        if unknown:
            from ..errors import expected

            raise expected("methods", f"names among {list(FEWSHOT_METHODS)}", unknown)
        self.Xdb, self.ydb, self.Xq, self.yq = Xdb, np.asarray(ydb), Xq, np.asarray(yq)
        self.lib, self.methods = library, tuple(methods)
        self.scorer = scorer or NumpyScorer()
        # the library codes of the database and the queries, when the caller has them already
        self.Ldb, self.Lq = library_codes or (library.transform(Xdb), library.transform(Xq))
        if "L1 bits of 4,096 LSH bits" in self.methods:
            pool = LSHHasher(n_bits=4096, random_state=seed).fit(Xdb)
            self.Pdb, self.Pq = pool.transform(Xdb), pool.transform(Xq)

    def score(self, qc, dbc) -> dict:
        return self.scorer.score(qc, self.yq, dbc, self.ydb, top=None, radius=2)

    def codes(self, name: str, n_bits: int, lab: np.ndarray, draw: int):
        """``(query codes, database codes)`` of method ``name``, or None where it does not apply."""
        from ..encoders.itq import ITQHasher
        from ..encoders.lsh import LSHHasher
        from ..encoders.ugh.fewshot import CCACoder
        from ..encoders.ugh.selection import L1BitSelector

        Xl, yl = self.Xdb[lab], self.ydb[lab]
        if name == "UGH default (CCA codes)":
            coder = CCACoder(n_bits, random_state=draw).fit(self.Ldb[lab], yl, background=self.Ldb)
            return coder.transform(self.Lq), coder.transform(self.Ldb)
        if name == "UGH paper (L1 bits)":
            sel = L1BitSelector(n_bits).fit(self.Ldb[lab], yl)
            return sel.transform(self.Lq), sel.transform(self.Ldb)
        if name == "random library bits":
            pos = np.random.default_rng(draw).choice(self.lib.n_bits_, n_bits, replace=False)
            return select_bits(self.Lq, pos), select_bits(self.Ldb, pos)
        if name == "LSH":
            lsh = LSHHasher(n_bits, random_state=draw).fit(self.Xdb)
            return lsh.transform(self.Xq), lsh.transform(self.Xdb)
        if name == "PCA-ITQ":
            pca = ITQHasher(n_bits, random_state=draw).fit(self.Xdb)
            return pca.transform(self.Xq), pca.transform(self.Xdb)
        if name == "CCA-ITQ (labeled)":
            if len(lab) <= n_bits:
                return None
            cca = ITQHasher(n_bits, projection="cca", random_state=draw).fit(Xl, yl)
            return cca.transform(self.Xq), cca.transform(self.Xdb)
        if name == "CCA-ITQ (rotation on unlabeled)":
            cca_u = ITQHasher(n_bits, projection="cca", random_state=draw).fit(Xl, yl, unlabeled=self.Xdb)
            return cca_u.transform(self.Xq), cca_u.transform(self.Xdb)
        lsel = L1BitSelector(n_bits).fit(self.Pdb[lab], yl)
        return lsel.transform(self.Pq), lsel.transform(self.Pdb)

    def run_once(self, n_bits: int, lab: np.ndarray, draw: int) -> dict:
        out = {}
        for name in self.methods:
            t0 = time.perf_counter()
            codes = self.codes(name, n_bits, lab, draw)
            if codes is None:
                continue
            fit_s = time.perf_counter() - t0
            out[name] = self.score(*codes)
            if name.startswith("UGH"):
                out[name]["fit_s"] = fit_s
        return out


    def protocol(self, *, shots=(1, 3, 5, 10, 30), lengths=(8, 16, 32, 64), n_bits: int = 16,
                 length_shots: int = 10, draws: int = 5, log: Callable[[str], None] = print) -> dict:
        """The protocol on this split: see :func:`fewshot_protocol`."""
        lib = self.lib
        results = {"library_bits": int(lib.n_bits_), "draws": draws, "n_bits": n_bits, "length_shots": length_shots,
                   "scorer": self.scorer.name, "n_database": int(len(self.ydb)), "n_queries": int(len(self.yq)),
                   "cosine_float_map": cosine_map(self.Xq, self.yq, self.Xdb, self.ydb),
                   "library_hamming_map": self.score(self.Lq, self.Ldb)["map"], "by_shots": {}, "by_length": {}}
        log(f"reference: float cosine mAP {results['cosine_float_map']:.3f}; all {lib.n_bits_:,} library bits, "
            f"Hamming mAP {results['library_hamming_map']:.3f}")
        for n in shots:
            runs = [self.run_once(n_bits, draw_support(self.ydb, n, d), d) for d in range(draws)]
            results["by_shots"][n] = summarise(runs)
            log(format_rows(f"n = {n} labeled per class, {n_bits} bits", results["by_shots"][n]))
        for b in lengths:
            runs = [self.run_once(b, draw_support(self.ydb, length_shots, d), d) for d in range(draws)]
            results["by_length"][b] = summarise(runs)
            log(format_rows(f"{b} bits, n = {length_shots}", results["by_length"][b]))
        return results


def fewshot_protocol(Xdb, ydb, Xq, yq, *, library, shots=(1, 3, 5, 10, 30), lengths=(8, 16, 32, 64),
                     n_bits: int = 16, length_shots: int = 10, draws: int = 5, methods=FEWSHOT_METHODS,
                     scorer=None, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """The UGH paper's few-shot protocol. Returns ``{"by_shots": {n: {method: {map, map_std, p_r2,
    p_r2_std[, fit_s]}}}, "by_length": {B: ...}, "cosine_float_map", "library_hamming_map", ...}``."""
    fs = FewShot(Xdb, ydb, Xq, yq, library, methods=methods, scorer=scorer, seed=seed)
    return fs.protocol(shots=shots, lengths=lengths, n_bits=n_bits, length_shots=length_shots, draws=draws, log=log)


def format_rows(title: str, rows: dict) -> str:
    lines = [f"\n{title}", f"  {'method':34s} {'mAP':>15s} {'P@r2':>15s}"]
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["map"]):
        pr = f"{r['p_r2']:.3f} ± {r['p_r2_std']:.3f}" if "p_r2" in r else ""
        lines.append(f"  {name:34s} {r['map']:.3f} ± {r['map_std']:.3f}   {pr}")
    return "\n".join(lines)


def unsupervised_protocol(methods: dict[str, Callable[[int, int], tuple]], yq, ydb, *, lengths=(16, 32, 64),
                          seeds=(0, 1, 2), top: int = 1000, scorer=None, log: Callable[[str], None] = print) -> dict:
    """The UTH paper's protocol: mAP@top for each method, code length and seed.

    ``methods[name](n_bits, seed)`` returns ``(query codes, database codes)`` or ``(query codes,
    database codes, extra dict)`` (extra numbers, e.g. training seconds, are averaged and reported).
    Returns ``{"by_length": {B: {method: {map, map_std, ...}}}, ...}``.
    """
    scorer = scorer or NumpyScorer()
    yq, ydb = np.asarray(yq), np.asarray(ydb)
    results = {"top": top, "seeds": list(seeds), "scorer": scorer.name, "n_database": int(len(ydb)),
               "n_queries": int(len(yq)), "by_length": {}}
    for b in lengths:
        runs = []
        for seed in seeds:
            run = {}
            for name, fn in methods.items():
                out = fn(b, seed)
                if out is None:
                    continue
                qc, dbc, *extra = out
                run[name] = {**scorer.score(qc, yq, dbc, ydb, top=top, radius=None), **(extra[0] if extra else {})}
                log(f"{name:34s} {b:3d} bits seed {seed}: mAP@{top} {run[name]['map']:.4f}")
            runs.append(run)
        results["by_length"][b] = summarise(runs)
    return results


__all__ = ["FEWSHOT_METHODS", "FewShot", "cosine_map", "draw_support", "fewshot_protocol", "format_rows",
           "summarise", "unsupervised_protocol"]
