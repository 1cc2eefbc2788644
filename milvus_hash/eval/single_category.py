"""The single-category protocol: n pictures of one class, then find all of that class.

For each class ``c`` and each draw, ``n`` positives of ``c`` are drawn from the query images
(``n`` = 1, 3, 5, 10); the whole database is ranked by membership; the scores are the average
precision of ``c``'s items over the full ranking, and precision at 10 and at 100. Mean and standard
deviation are over every (class, draw). Side by side, on the same positives:

- **UGH category**: what :meth:`HashClient.members` ranks by (:mod:`milvus_hash.categories.membership`:
  log-odds on the library bits plus nearness to a positive), learned with the store's background sample;
- **cosine to the mean feature**: the float features' cosine to the positives' mean (no code at all);
- **nearest positive**: minimum Hamming distance to the positives on the full library codes (what a
  plain multi-query search with the same pictures gives);
- **majority library code**: Hamming distance to the positives' bitwise majority library code;
- **one-class 16-bit code**: the previous category ranking, Hamming distance to the positives'
  prototype on the default 16-bit category code.

Ties are broken by database row. With a ``store``, the UGH category runs through Milvus as a user
runs it: the database codes go into a collection, each category is defined with
:meth:`HashClient.define` (background read from the store) and ranked with
:meth:`HashClient.members` (``exhaustive``): the numbers equal numpy's.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

import numpy as np

from ..codes import hamming_distances
from ..encoders.ugh.background import Background

UGH = "UGH category (members)"
SINGLE_METHODS = (UGH, "cosine to the mean feature", "nearest positive (library Hamming)",
                  "majority library code (Hamming)", "one-class 16-bit code (previous)")


def ranking_scores(order_scores: np.ndarray, relevant: np.ndarray) -> dict:
    """AP over the full ranking and P@10 / P@100 of ``scores (N,)`` (higher first, ties by row)."""
    order = np.argsort(-order_scores, kind="stable")
    return ranked_scores(order, relevant)


def ranked_scores(order: np.ndarray, relevant: np.ndarray) -> dict:
    """AP, P@10 and P@100 of a ranking ``order`` (rows, best first) of the whole database."""
    from .scoring import ap_from_ranking

    rel = relevant[order]
    ap = float(ap_from_ranking(np.asarray(order)[None], np.array([True]), relevant)[0])
    return {"ap": ap, "p10": float(rel[:10].mean()), "p100": float(rel[:100].mean())}


def draw_positives(yq: np.ndarray, c, n: int, draw: int, seed: int = 0) -> np.ndarray:
    """Rows of ``n`` query images of class ``c`` for ``draw`` (seeded by n, draw and the class's rank)."""
    classes = np.unique(yq)
    r = np.random.default_rng([seed, n, draw, int(np.searchsorted(classes, c))])
    return r.choice(np.flatnonzero(yq == c), n, replace=False)


def background_rows(n_database: int, size: int, seed: int) -> np.ndarray:
    """The rows :meth:`HashClient.background` samples from a collection whose ids are the rows."""
    from ..categories.background_sample import sample_ids

    return sample_ids(np.arange(n_database, dtype=np.int64), size, seed)


class SingleCategory:
    """The protocol on one split: database features ``Xdb`` and library codes ``Ldb``, query images
    ``Xq`` / ``Lq`` from which positives are drawn."""

    def __init__(self, Xdb, ydb, Xq, yq, library, *, background: int = 2_000, seed: int = 0, store=None,
                 library_codes: tuple | None = None):
        self.ydb, self.yq = np.asarray(ydb), np.asarray(yq)
        self.Xdb = _normalise(np.asarray(Xdb, np.float32))
        self.Xq = _normalise(np.asarray(Xq, np.float32))
        self.lib, self.seed, self.background = library, seed, background
        self.Ldb, self.Lq = library_codes or (library.transform(Xdb), library.transform(Xq))
        self.bg = Background(self.Ldb[background_rows(len(self.Ldb), background, seed)])
        self.store, self.client, self.collection = store, None, None
        self.milvus_s = 0.0

    # ------------------------------------------------------------------ the UGH category
    def _numpy_category(self, pos_rows):
        from ..categories.category import learn_category

        return learn_category("c", self.Lq[pos_rows], ["c"] * len(pos_rows), background=self.bg, n_bits=16,
                              method="cca", library=self.lib.encoder_spec(), seed=self.seed)

    def _milvus_ranking(self, pos_rows) -> np.ndarray:
        if self.client is None:
            from ..categories.client import HashClient

            self.collection = f"milvus_hash_single_{uuid.uuid4().hex[:10]}"
            spec = self.lib.encoder_spec()
            self.store.create_collection(self.collection, encoder=spec)
            self.store.insert(self.collection, ids=np.arange(len(self.Ldb), dtype=np.int64), codes=self.Ldb,
                              encoder=spec)
            self.client = HashClient(store=self.store, collection=self.collection, background=self.background,
                                     seed=self.seed)
        t0 = time.perf_counter()
        self.client.define("c", codes=self.Lq[pos_rows], replace=True)
        got = self.client.members("c", k=len(self.Ldb), exhaustive=True)
        self.milvus_s += time.perf_counter() - t0
        return got.ids

    def close(self) -> None:
        if self.client is not None:
            self.client.drop("c")
            self.store.drop_collection(self.collection)
            self.client = None

    # ------------------------------------------------------------------ one run
    def run_once(self, c, pos_rows) -> dict:
        relevant = self.ydb == c
        Lp = self.Lq[pos_rows]
        cat = self._numpy_category(pos_rows)
        out = {}
        if self.store is not None:
            out[UGH] = ranked_scores(self._milvus_ranking(pos_rows), relevant)
        else:
            out[UGH] = ranking_scores(cat.ranking_scores(self.Ldb, 0), relevant)
        out["cosine to the mean feature"] = ranking_scores(self.Xdb @ self.Xq[pos_rows].mean(0), relevant)
        D = hamming_distances(Lp, self.Ldb)
        out["nearest positive (library Hamming)"] = ranking_scores(-D.min(0).astype(np.float32), relevant)
        bits = np.unpackbits(Lp, axis=1)
        majority = np.packbits(bits.mean(0) >= 0.5)[None]
        out["majority library code (Hamming)"] = ranking_scores(
            -hamming_distances(majority, self.Ldb)[0].astype(np.float32), relevant)
        proto = cat.arrays["prototypes"][:1]
        out["one-class 16-bit code (previous)"] = ranking_scores(
            -hamming_distances(proto, cat.transform(self.Ldb))[0].astype(np.float32), relevant)
        return out

    def protocol(self, *, shots=(1, 3, 5, 10), draws: int = 3, classes=None,
                 log: Callable[[str], None] = print) -> dict:
        """Run the protocol. Returns ``{"by_shots": {n: {method: {map, map_std, p10, p10_std, p100,
        p100_std}}}, "classes", "draws", ...}`` (mean and std over every class and draw)."""
        classes = [c for c in np.unique(self.yq) if classes is None or c in set(classes)]
        results = {"library_bits": int(self.Ldb.shape[1] * 8), "draws": draws, "n_database": int(len(self.ydb)),
                   "classes": [str(c) for c in classes], "background": int(len(self.bg)),
                   "scorer": "milvus" if self.store is not None else "numpy", "by_shots": {}}
        try:
            for n in shots:
                runs = []
                for d in range(draws):
                    for c in classes:
                        runs.append(self.run_once(c, draw_positives(self.yq, c, n, d, self.seed)))
                results["by_shots"][n] = _summarise(runs)
                log(format_single(f"n = {n} positives, {len(classes)} classes x {draws} draws",
                                  results["by_shots"][n]))
        finally:
            self.close()
        if self.store is not None:
            results["milvus_seconds"] = self.milvus_s
        return results


def _normalise(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _summarise(runs: list[dict]) -> dict:
    out = {}
    for name in runs[0]:
        out[name] = {}
        for key, metric in (("ap", "map"), ("p10", "p10"), ("p100", "p100")):
            vals = np.array([r[name][key] for r in runs])
            out[name][metric], out[name][f"{metric}_std"] = float(vals.mean()), float(vals.std())
    return out


def format_single(title: str, rows: dict) -> str:
    lines = [f"\n{title}", f"  {'method':40s} {'mAP':>15s} {'P@10':>15s} {'P@100':>15s}"]
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["map"]):
        lines.append(f"  {name:40s} {r['map']:.3f} ± {r['map_std']:.3f}   {r['p10']:.3f} ± {r['p10_std']:.3f}   "
                     f"{r['p100']:.3f} ± {r['p100_std']:.3f}")
    return "\n".join(lines)


def best_baseline(rows: dict, metric: str = "map") -> tuple[str, float]:
    """The best method other than the UGH category, and its score."""
    name = max((m for m in rows if m != UGH), key=lambda m: rows[m][metric])
    return name, rows[name][metric]


def single_category_protocol(Xdb, ydb, Xq, yq, *, library, shots=(1, 3, 5, 10), draws: int = 3, classes=None,
                             background: int = 2_000, seed: int = 0, store=None, library_codes=None,
                             log: Callable[[str], None] = print) -> dict:
    """See the module doc; ``store``: a :class:`~milvus_hash.store.HashStore` to run the UGH category
    through Milvus (``define`` and ``members``) instead of numpy."""
    sc = SingleCategory(Xdb, ydb, Xq, yq, library, background=background, seed=seed, store=store,
                        library_codes=library_codes)
    return sc.protocol(shots=shots, draws=draws, classes=classes, log=log)


__all__ = ["SINGLE_METHODS", "UGH", "SingleCategory", "best_baseline", "draw_positives", "format_single",
           "ranked_scores", "ranking_scores", "single_category_protocol"]
