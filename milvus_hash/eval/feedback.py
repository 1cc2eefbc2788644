"""The feedback protocol: n pictures of one class, then rounds of marking what comes back.

For each class ``c``, each draw and each ``n`` (1, 3, 5): ``n`` positives of ``c`` are drawn from the
query images. Then, round after round (``R = 3``), each method shows its top ``per_round`` (20)
database items that the user has not marked yet, and a simulated user marks each one right (class
``c``) or wrong; the method then ranks again with every mark it has. After every round (round 0 is
the positives alone) the score is the average precision of ``c`` over the full ranking of the
database, with the marked positives first and the marked negatives last (a user has seen them: they
are known), and precision at 10 and at 100. Mean and standard deviation over every (class, draw).

Each method runs its own loop: what it shows decides what it learns. Methods, all from the same
positives and marks:

- **UGH category (members)**: what :meth:`HashClient.members` ranks by after
  :meth:`HashClient.refine` (:mod:`milvus_hash.categories.membership`), on the library codes;
- **plain search, library codes**: minimum Hamming distance to every known positive (a plain
  multi-query search from all the pictures, merged by smallest distance);
- **plain search, float features**: maximum cosine to every known positive;
- **Rocchio, float features**: cosine to ``mean(positives) - 0.25 mean(negatives)``;
- **best positive - best negative, float features**: the best cosine to a positive minus the best
  cosine to a negative (Qdrant's ``recommend``'s best-score strategy);
- **logistic regression, float features**: positives against the marked negatives and a background
  sample of the database (taken as negatives), balanced.

Ties are broken by database row.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..codes import hamming_distances
from ..encoders.ugh.background import Background
from .single_category import background_rows, draw_positives

UGH = "UGH category (members)"
PLAIN_CODES = "plain search, library codes"
PLAIN_FLOAT = "plain search, float features"
ROCCHIO = "Rocchio, float features"
BEST_POS_NEG = "best positive - best negative, float"
LOGREG = "logistic regression, float features"
FEEDBACK_METHODS = (UGH, PLAIN_CODES, PLAIN_FLOAT, ROCCHIO, BEST_POS_NEG, LOGREG)


class Marks:
    """What a method knows in one loop: the positives' rows among the queries, and the database rows
    marked right and wrong."""

    def __init__(self, query_rows: np.ndarray):
        self.query_rows = np.asarray(query_rows, np.int64)
        self.pos: list[int] = []
        self.neg: list[int] = []

    @property
    def seen(self) -> set[int]:
        return set(self.pos) | set(self.neg)


def final_order(scores: np.ndarray, marks: Marks) -> np.ndarray:
    """The ranking a user sees: marked positives first, then the rest by score (desc, ties by row),
    marked negatives last."""
    s = np.asarray(scores, np.float64).copy()
    if marks.pos:
        s[marks.pos] = np.inf
    if marks.neg:
        s[marks.neg] = -np.inf
    return np.argsort(-s, kind="stable")


def _scores_of(order: np.ndarray, relevant: np.ndarray) -> dict:
    rel = relevant[order]
    hits = np.cumsum(rel)
    n_rel = max(int(rel.sum()), 1)
    ap = float((rel * hits / np.arange(1, len(rel) + 1)).sum() / n_rel)
    return {"ap": ap, "p10": float(rel[:10].mean()), "p100": float(rel[:100].mean())}


class FeedbackProtocol:
    """The protocol on one split: database float features ``Xdb`` (L2-normalised here) and library
    codes ``Ldb``, labels ``ydb``; query images ``Xq`` / ``Lq`` / ``yq`` the positives are drawn from."""

    def __init__(self, Xdb, ydb, Xq, yq, *, library_codes: tuple, library_spec, background: int = 2_000,
                 seed: int = 0, rounds: int = 3, per_round: int = 20, membership: dict | None = None):
        self.Xdb, self.Xq = _normalise(Xdb), _normalise(Xq)
        self.ydb, self.yq = np.asarray(ydb), np.asarray(yq)
        self.Ldb, self.Lq = library_codes
        self.spec, self.seed, self.rounds, self.per_round = library_spec, seed, rounds, per_round
        self.bg_rows = background_rows(len(self.Ldb), background, seed)
        self.bg = Background(self.Ldb[self.bg_rows])
        self.membership = dict(membership or {})
        self.seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ methods: marks -> scores (N,)
    def _pos_codes(self, m: Marks) -> np.ndarray:
        return np.vstack([self.Lq[m.query_rows], self.Ldb[m.pos]]) if m.pos else self.Lq[m.query_rows]

    def _pos_feats(self, m: Marks) -> np.ndarray:
        return np.vstack([self.Xq[m.query_rows], self.Xdb[m.pos]]) if m.pos else self.Xq[m.query_rows]

    def ugh(self, m: Marks) -> np.ndarray:
        """What :meth:`HashClient.members` ranks by (``exhaustive``) after :meth:`HashClient.refine`
        with the same positives and marks: :meth:`Category.ranking_scores` of every unmarked item."""
        from ..categories.category import BACKGROUND, learn_category

        P = self._pos_codes(m)
        N = self.Ldb[m.neg] if m.neg else np.zeros((0, P.shape[1]), np.uint8)
        cat = learn_category("c", np.vstack([P, N]), ["c"] * len(P) + [BACKGROUND] * len(N), background=self.bg,
                             n_bits=16, method="cca", library=self.spec, seed=self.seed, membership=self.membership)
        rest = np.ones(len(self.Ldb), bool)
        rest[m.neg] = False  # members never shows a marked negative
        out = np.full(len(self.Ldb), -np.inf, np.float32)
        out[rest] = cat.ranking_scores(self.Ldb[rest], 0)
        self._last_category = cat
        return out

    def calibration(self, scores: np.ndarray, relevant: np.ndarray, marks: Marks) -> dict:
        """How readable the UGH ranking's probabilities are, over the items a user has not marked:
        the expected calibration error (10 equal-width bins), the precision of the items shown with
        probability >= 0.5 (and how many), the top 10's mean probability, precision and number of
        distinct values."""
        from ..categories.membership import class_calibration, probabilities

        cat = self._last_category
        unmarked = np.ones(len(scores), bool)
        unmarked[marks.pos + marks.neg] = False
        p = probabilities(class_calibration(cat.arrays, 0), scores[unmarked])
        r = relevant[unmarked].astype(np.float64)
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(p[bins == b].mean() - r[bins == b].mean()) * (bins == b).mean() for b in range(10)
                  if (bins == b).any())
        sure = p >= 0.5
        top = np.argsort(-scores[unmarked], kind="stable")[:10]
        return {"ece": float(ece), "precision_0.5": float(r[sure].mean()) if sure.any() else float("nan"),
                "n_0.5": int(sure.sum()), "top10_probability": float(p[top].mean()), "top10_precision": float(r[top].mean()),
                "top10_distinct": int(len(np.unique(np.round(p[top], 4)))), "top10_min": float(p[top].min())}

    def plain_codes(self, m: Marks) -> np.ndarray:
        return -hamming_distances(self._pos_codes(m), self.Ldb).min(0).astype(np.float32)

    def plain_float(self, m: Marks) -> np.ndarray:
        return (self.Xdb @ self._pos_feats(m).T).max(1)

    def rocchio(self, m: Marks) -> np.ndarray:
        q = self._pos_feats(m).mean(0)
        if m.neg:
            q = q - 0.25 * self.Xdb[m.neg].mean(0)
        return self.Xdb @ q

    def best_pos_neg(self, m: Marks) -> np.ndarray:
        s = (self.Xdb @ self._pos_feats(m).T).max(1)
        if m.neg:
            s = s - (self.Xdb @ self.Xdb[m.neg].T).max(1)
        return s

    def logreg(self, m: Marks) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        P = self._pos_feats(m)
        bg = np.setdiff1d(self.bg_rows, np.asarray(m.pos, np.int64))
        N = np.vstack([self.Xdb[m.neg], self.Xdb[bg]]) if m.neg else self.Xdb[bg]
        X = np.vstack([P, N])
        y = np.r_[np.ones(len(P)), np.zeros(len(N))]
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=500).fit(X, y)
        return clf.decision_function(self.Xdb)

    def methods(self) -> dict[str, Callable[[Marks], np.ndarray]]:
        return {UGH: self.ugh, PLAIN_CODES: self.plain_codes, PLAIN_FLOAT: self.plain_float, ROCCHIO: self.rocchio,
                BEST_POS_NEG: self.best_pos_neg, LOGREG: self.logreg}

    # ------------------------------------------------------------------ one loop
    def loop(self, method: Callable[[Marks], np.ndarray], c, query_rows, name: str = "") -> list[dict]:
        """The scores after each round 0..R of one method's loop for class ``c``."""
        relevant = self.ydb == c
        marks = Marks(query_rows)
        out = []
        for r in range(self.rounds + 1):
            t0 = time.perf_counter()
            scores = method(marks)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            order = final_order(scores, marks)
            out.append(_scores_of(order, relevant))
            if name == UGH:
                out[-1]["calibration"] = self.calibration(scores, relevant, marks)
            if r == self.rounds:
                break
            seen = marks.seen
            shown = [int(i) for i in order[:len(seen) + self.per_round + len(seen)] if int(i) not in seen]
            shown = shown[:self.per_round]
            for i in shown:
                (marks.pos if relevant[i] else marks.neg).append(i)
        return out

    def protocol(self, *, shots=(1, 3, 5), draws: int = 3, classes=None, methods=None,
                 log: Callable[[str], None] = print) -> dict:
        """Run it. Returns ``{"by_shots": {n: {method: [ {map, map_std, p10, ..} per round ]}}, ...}``."""
        classes = [c for c in np.unique(self.yq) if classes is None or c in set(classes)]
        chosen = {k: v for k, v in self.methods().items() if methods is None or k in methods}
        res = {"library_bits": int(self.Ldb.shape[1] * 8), "n_database": int(len(self.ydb)), "draws": draws,
               "rounds": self.rounds, "per_round": self.per_round, "classes": [str(c) for c in classes],
               "by_shots": {}}
        for n in shots:
            runs: dict[str, list[list[dict]]] = {k: [] for k in chosen}
            for d in range(draws):
                for c in classes:
                    rows = draw_positives(self.yq, c, n, d, self.seed)
                    for name, fn in chosen.items():
                        runs[name].append(self.loop(fn, c, rows, name))
            res["by_shots"][n] = {name: _summarise(r) for name, r in runs.items()}
            if UGH in runs:
                res.setdefault("calibration", {})[n] = [
                    {key: float(np.nanmean([lp[r]["calibration"][key] for lp in runs[UGH]]))
                     for key in runs[UGH][0][0]["calibration"]} for r in range(self.rounds + 1)]
                log(format_calibration(res["calibration"][n]))
            log(format_feedback(f"n = {n} positives, {len(classes)} classes x {draws} draws",
                                res["by_shots"][n]))
        res["seconds"] = dict(self.seconds)
        return res


def _summarise(loops: list[list[dict]]) -> list[dict]:
    out = []
    for r in range(len(loops[0])):
        row = {}
        for key, metric in (("ap", "map"), ("p10", "p10"), ("p100", "p100")):
            vals = np.array([lp[r][key] for lp in loops])
            row[metric], row[f"{metric}_std"] = float(vals.mean()), float(vals.std())
        out.append(row)
    return out


def format_feedback(title: str, rows: dict) -> str:
    rounds = len(next(iter(rows.values())))
    head = "".join(f"{'round ' + str(r):>16s}" for r in range(rounds))
    lines = [f"\n{title}: mAP (± std) after each round", f"  {'method':38s}{head}"]
    for name, per in sorted(rows.items(), key=lambda kv: -kv[1][-1]["map"]):
        lines.append(f"  {name:38s}" + "".join(f"{r['map']:8.3f} ± {r['map_std']:.3f}" for r in per))
    return "\n".join(lines)


def format_calibration(rows: list[dict]) -> str:
    """One line a round of the UGH ranking's calibration (means over classes and draws)."""
    lines = ["  UGH probabilities: ECE, precision of p >= 0.5 (items), top 10 mean p / precision / min p / distinct"]
    for r, c in enumerate(rows):
        lines.append(f"    round {r}: ECE {c['ece']:.3f}, {c['precision_0.5']:.3f} ({c['n_0.5']:.0f}), "
                     f"{c['top10_probability']:.2f} / {c['top10_precision']:.2f} / {c['top10_min']:.2f} / "
                     f"{c['top10_distinct']:.1f}")
    return "\n".join(lines)


def best_baseline(rows: dict, r: int, metric: str = "map") -> tuple[str, float]:
    """The best method other than the UGH category after round ``r``, and its score."""
    name = max((m for m in rows if m != UGH), key=lambda m: rows[m][r][metric])
    return name, rows[name][r][metric]


def _normalise(X) -> np.ndarray:
    X = np.asarray(X, np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


__all__ = ["BEST_POS_NEG", "FEEDBACK_METHODS", "FeedbackProtocol", "LOGREG", "Marks", "PLAIN_CODES", "PLAIN_FLOAT",
           "ROCCHIO", "UGH", "best_baseline", "final_order", "format_feedback"]
