"""The UGH hash library: thousands of calibrated linear hash functions hyper-trained without labels.

``UGHLibrary(...).fit(X)`` runs ``D`` independent rounds of :func:`.hypertrain.hypertrain_round`
(``K`` hash functions each, so ``K * D`` bits); ``transform(X)`` gives packed library codes
``uint8 (n, K * D // 8)``. Rounds run in parallel (``n_jobs``) and each is seeded from
``SeedSequence(random_state).spawn(D)``, and computed on one thread, so the library is the same
for a given seed whatever ``n_jobs`` is.

The defaults are the paper's hyper-parameters (Section 4.1; ``configs/ugh.yaml``): M = 20,000,
m = 50, C = 30, T = 6, K = 10, F = 50, D = 2,000 (20,000 bits), gamma = lambda1 = 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...codes import check_n_bits
from ...errors import expected
from ..base import Estimator
from ..spec import EncoderSpec, fingerprint
from ..validation import check_features, check_fitted, fitted_features

FORMAT = 1
_ENCODE_ROWS = 4096


def _normalise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def _run_round(X, params, seed, device):
    import torch

    from .hypertrain import hypertrain_round

    torch.set_num_threads(1)  # one thread per round: same numbers whatever n_jobs
    return hypertrain_round(X, params, seed, torch.device(device))


class UGHLibrary(Estimator):
    """Unsupervised generic hashing library (UGH paper, Section 3.1).

    Args:
        n_subset: M, points drawn from the pool per round.
        n_candidates: m, candidate seed sets in the Max step.
        n_categories: C, pseudo-categories per round.
        per_category: T, points per pseudo-category.
        bits_per_round: K, hash functions learned per round.
        n_expand: F, points added per pseudo-category in the expansion.
        n_rounds: D; the library has ``K * D`` bits (a multiple of 8).
        gamma, lambda1: DBC's regulariser and hinge weights.
        lambda2: DBC's between-category weight; None balances the two pair sums.
        n_iter: DBC alternations at most (fewer when the codes stop changing).
        holdout: share of the expansion held out for calibration.
        solver: "batched" (all SVMs of a round in one truncated-Newton solve, default) or
            "liblinear" (one LinearSVC per SVM: the straightforward reference, several times slower).
        n_jobs: rounds run in parallel (processes).
        random_state: seed of the whole library.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        progress: show a progress bar.
        checkpoint_dir: a folder that keeps each finished round; a fit on the same features with the
            same parameters (a rerun after a crash, or more rounds) takes the rounds found there
            instead of computing them again (rounds are independent and seeded by their index).

    Attributes:
        W_: ``float32 (n_features + 1, n_bits)`` hyperplanes, bias in the last row.
        a_, b_: ``float32 (n_bits,)`` Platt sigmoid: bit ``k`` is ``a_k * (x . w_k) + b_k >= 0``.
        n_bits_: library length ``K * D``.
        n_features_in_: feature count seen by ``fit``.
        features_: optional record of the backbone whose features it was fitted on (name, weights,
            fingerprint, dim), set by the CLI and saved with the library; ``ingest`` checks it.
    """

    def __init__(self, *, n_subset: int = 20_000, n_candidates: int = 50, n_categories: int = 30,
                 per_category: int = 6, bits_per_round: int = 10, n_expand: int = 50, n_rounds: int = 2_000,
                 gamma: float = 1.0, lambda1: float = 1.0, lambda2: float | None = None, n_iter: int = 10,
                 holdout: float = 0.1, solver: str = "batched", n_jobs: int = 1, random_state: int | None = 0,
                 device: str = "auto", progress: bool = False, checkpoint_dir: str | None = None):
        self.n_subset = n_subset
        self.n_candidates = n_candidates
        self.n_categories = n_categories
        self.per_category = per_category
        self.bits_per_round = bits_per_round
        self.n_expand = n_expand
        self.n_rounds = n_rounds
        self.gamma = gamma
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.n_iter = n_iter
        self.holdout = holdout
        self.solver = solver
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------ checks
    def _round_params(self, n_samples: int):
        from .hypertrain import RoundParams

        for name in ("n_subset", "n_candidates", "n_categories", "per_category", "bits_per_round",
                     "n_expand", "n_rounds", "n_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise expected(name, "a positive int", repr(value))
        if self.n_categories < 2:
            raise expected("n_categories", "at least 2 pseudo-categories", self.n_categories)
        check_n_bits(self.bits_per_round * self.n_rounds, argument="bits_per_round * n_rounds")
        if self.n_subset > n_samples:
            raise expected("X", f"at least n_subset = {self.n_subset} rows (or a smaller n_subset)",
                           f"{n_samples} rows")
        need = self.n_categories * (self.per_category + self.n_expand)
        if need > self.n_subset:
            raise expected("n_subset", f"at least n_categories * (per_category + n_expand) = {need}",
                           self.n_subset)
        if not 0 < self.holdout < 1 or round(self.holdout * self.n_expand) < 1:
            raise expected("holdout", "a share in (0, 1) that holds out at least one point per category",
                           f"{self.holdout} of n_expand = {self.n_expand}")
        for name in ("gamma", "lambda1"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise expected(name, "a positive number", repr(value))
        from .svm import SOLVERS

        if self.solver not in SOLVERS:
            raise expected("solver", f"one of {sorted(SOLVERS)}", repr(self.solver))
        if self.lambda2 is not None and (not isinstance(self.lambda2, (int, float)) or self.lambda2 < 0):
            raise expected("lambda2", "None or a non-negative number", repr(self.lambda2))
        return RoundParams(n_subset=self.n_subset, n_candidates=self.n_candidates,
                           n_categories=self.n_categories, per_category=self.per_category,
                           n_bits=self.bits_per_round, n_expand=self.n_expand, holdout=self.holdout,
                           gamma=float(self.gamma), lambda1=float(self.lambda1),
                           lambda2=None if self.lambda2 is None else float(self.lambda2), n_iter=self.n_iter,
                           solver=self.solver)

    def _device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device not in ("cpu", "cuda"):
            raise expected("device", "'auto', 'cpu' or 'cuda'", repr(self.device))
        if self.device == "cuda" and not torch.cuda.is_available():
            raise expected("device", "a CUDA device (none is available here)", "'cuda'")
        return self.device

    def _check_X(self, X) -> np.ndarray:
        return _normalise(fitted_features(self, X, "W_"))

    # ------------------------------------------------------------------ fit / transform
    def fit(self, X, y=None) -> "UGHLibrary":
        """Hyper-train the library on unlabeled features ``X (n, d)`` (rows are L2-normalised)."""
        X = check_features(X)
        params = self._round_params(X.shape[0])
        device = self._device()
        X = _normalise(X)
        seeds = np.random.SeedSequence(self.random_state).spawn(self.n_rounds)
        rounds = self._run_rounds(X, params, seeds, device)
        self.W_ = np.concatenate([r.W for r in rounds], axis=1)
        self.a_ = np.concatenate([r.a for r in rounds])
        self.b_ = np.concatenate([r.b for r in rounds])
        self.n_bits_ = int(self.W_.shape[1])
        self.n_features_in_ = int(X.shape[1])
        self.history_ = [r.history for r in rounds]
        return self

    def _run_rounds(self, X, params, seeds, device):
        from joblib import Parallel, delayed
        from tqdm.auto import tqdm

        n_jobs = int(self.n_jobs)
        if n_jobs == 0 or isinstance(self.n_jobs, bool):
            raise expected("n_jobs", "a non-zero int (-1: all cores)", repr(self.n_jobs))
        store = None
        if self.checkpoint_dir is not None:
            from .checkpoints import RoundCheckpoints

            store = RoundCheckpoints(self.checkpoint_dir, X, params, self.random_state, device)
        done = store.load_all(len(seeds)) if store is not None else {}
        self.resumed_rounds_ = len(done)
        todo = [i for i in range(len(seeds)) if i not in done]
        bar = tqdm(total=len(seeds), initial=len(done), desc="UGH rounds", unit="round", disable=not self.progress)

        def finished(i, result):
            if store is not None:
                store.save(i, result)
            done[i] = result
            bar.update()

        if n_jobs == 1 or device == "cuda":
            import torch

            threads = torch.get_num_threads()
            try:
                for i in todo:
                    finished(i, _run_round(X, params, seeds[i], device))
            finally:
                torch.set_num_threads(threads)
        elif todo:
            jobs = (delayed(_run_round)(X, params, seeds[i], device) for i in todo)
            for i, result in zip(todo, Parallel(n_jobs=n_jobs, return_as="generator")(jobs)):
                finished(i, result)
        bar.close()
        return [done[i] for i in range(len(seeds))]

    def decision_function(self, X) -> np.ndarray:
        """Calibrated outputs ``float32 (n, n_bits)`` in (0, 1); a bit is 1 where it is >= 0.5."""
        X = self._check_X(X)
        out = np.empty((X.shape[0], self.n_bits_), dtype=np.float32)
        for start in range(0, X.shape[0], _ENCODE_ROWS):
            z = self._logits(X[start:start + _ENCODE_ROWS])
            out[start:start + _ENCODE_ROWS] = 1.0 / (1.0 + np.exp(-z))
        return out

    def _logits(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.W_[:-1] + self.W_[-1]) * self.a_ + self.b_

    def transform(self, X) -> np.ndarray:
        """Packed library codes ``uint8 (n, n_bits // 8)``."""
        X = self._check_X(X)
        # a * (x.w + w0) + b >= 0  <=>  x.(a w) >= -(a w0 + b): one product and one comparison.
        Wa = self.W_[:-1] * self.a_
        threshold = -(self.W_[-1] * self.a_ + self.b_)
        out = np.empty((X.shape[0], self.n_bits_ // 8), dtype=np.uint8)
        for start in range(0, X.shape[0], _ENCODE_ROWS):
            out[start:start + _ENCODE_ROWS] = np.packbits(X[start:start + _ENCODE_ROWS] @ Wa >= threshold, axis=1)
        return out

    # ------------------------------------------------------------------ identity and files
    def encoder_spec(self) -> EncoderSpec:
        check_fitted(self, "W_")
        return EncoderSpec("ugh", fingerprint(self.W_, self.a_, self.b_, kind="ugh"), self.n_bits_)

    def save(self, path: str | Path) -> None:
        """Write the library to ``.npz`` (no pickle): arrays plus the hyper-parameters as JSON."""
        check_fitted(self, "W_")
        params = {k: v for k, v in self.get_params().items() if k != "checkpoint_dir"}  # a local path
        meta = {"format": FORMAT, "kind": "ugh", "params": params, "n_bits": self.n_bits_,
                "n_features": self.n_features_in_, "fingerprint": self.encoder_spec().fingerprint,
                "features": getattr(self, "features_", None)}
        np.savez(path, meta=np.array(json.dumps(meta)), W=self.W_, a=self.a_, b=self.b_)

    @classmethod
    def load(cls, path: str | Path, *, argument: str = "path") -> "UGHLibrary":
        """The UGHLibrary saved at ``path`` (``argument``: how errors name the file)."""
        from ...npz import read_npz

        data = read_npz(path, argument=argument, what="a UGH library file written by UGHLibrary.save")
        try:
            meta = json.loads(str(data["meta"]))
        except (KeyError, ValueError) as exc:
            raise expected(argument, "a UGH library file written by UGHLibrary.save", str(path)) from exc
        if meta.get("kind") != "ugh" or meta.get("format") != FORMAT:
            raise expected(argument, f"a UGH library file of format {FORMAT}",
                           f"kind {meta.get('kind')!r}, format {meta.get('format')!r}")
        try:
            self = cls(**meta["params"])
            self.W_, self.a_, self.b_ = data["W"], data["a"], data["b"]
        except (KeyError, TypeError) as exc:
            raise expected(argument, "a UGH library file written by UGHLibrary.save",
                           f"{str(path)!r}, missing or unknown {exc}") from None
        if meta.get("features"):
            self.features_ = meta["features"]
        self.n_bits_ = int(self.W_.shape[1])
        self.n_features_in_ = int(self.W_.shape[0] - 1)
        if self.encoder_spec().fingerprint != meta["fingerprint"]:
            raise expected(argument, "a library whose arrays match its recorded fingerprint", "a modified file")
        return self
