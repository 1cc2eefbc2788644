"""A few-shot category (or task) code: what is learned from a few examples, as plain arrays.

Built from library codes alone by the UGH few-shot coders (:class:`~milvus_hash.encoders.ugh.CCACoder`, the
default, or the paper's :class:`~milvus_hash.encoders.ugh.L1BitSelector`), plus, per class, a *prototype* (the
majority category code of its positives) and a Platt-calibrated linear SVM on the category code that
gives a membership probability for ranking. Everything is arrays and JSON, so it persists in Milvus
(:mod:`.definitions`) and loads without pickle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..codes import as_codes, pack_bits, select_bits, signed_bits, unpack_bits
from ..encoders.spec import EncoderSpec, fingerprint
from ..errors import expected

METHODS = ("cca", "l1")
BACKGROUND = "__background__"


@dataclass
class Category:
    """A defined category or task.

    Attributes:
        name, method (``"cca"`` or ``"l1"``), n_bits, classes (labels, in order),
        library_fingerprint / library_bits (the library collection's encoder), created (Unix time),
        example_ids (ids of stored examples, when given by id), params (the coder's parameters).
        arrays: ``projection float32 (L, B)`` and ``offset float32 (B,)`` (cca) or
        ``positions int64 (B,)`` (l1); ``prototypes uint8 (n_classes, B // 8)``;
        ``svm float32 (n_classes, B + 1)`` (weights on ±1 bits, bias last); ``platt float32 (n_classes, 2)``.
    """

    name: str
    method: str
    n_bits: int
    classes: list[str]
    library_fingerprint: str
    library_bits: int
    arrays: dict[str, np.ndarray]
    created: float = field(default_factory=time.time)
    example_ids: list[int] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    example_sources: dict = field(default_factory=dict)  # what the examples were: image paths, or a count

    def transform(self, library_codes) -> np.ndarray:
        """Category codes ``uint8 (n, n_bits // 8)`` of library codes ``uint8 (n, library_bits // 8)``."""
        codes = as_codes(library_codes, n_bits=self.library_bits, argument="library codes")
        if self.method == "l1":
            return select_bits(codes, self.arrays["positions"], n_bits=self.library_bits)
        P, off = self.arrays["projection"], self.arrays["offset"]
        out = np.empty((codes.shape[0], self.n_bits // 8), np.uint8)
        for s in range(0, codes.shape[0], 4096):
            out[s:s + 4096] = pack_bits(signed_bits(codes[s:s + 4096]) @ P - off >= 0)
        return out

    def probabilities(self, category_codes) -> np.ndarray:
        """Calibrated membership ``float64 (n, n_classes)`` of category codes."""
        F = signed_bits(as_codes(category_codes, n_bits=self.n_bits))
        S = F @ self.arrays["svm"][:, :-1].T + self.arrays["svm"][:, -1]
        a, b = self.arrays["platt"][:, 0], self.arrays["platt"][:, 1]
        return 1.0 / (1.0 + np.exp(-(S * a + b)))

    def class_index(self, label) -> int:
        if label is None:
            if len(self.classes) != 1:
                raise expected("label", f"one of the task's classes {self.classes}", None)
            return 0
        if str(label) not in self.classes:
            raise expected("label", f"one of the task's classes {self.classes}", repr(label))
        return self.classes.index(str(label))

    @property
    def fingerprint(self) -> str:
        return fingerprint(*(self.arrays[k] for k in sorted(self.arrays)), method=self.method, classes=self.classes,
                           library=self.library_fingerprint)

    def encoder_spec(self) -> EncoderSpec:
        """The identity of this code, recorded by the materialized task collection."""
        return EncoderSpec("ugh-category", self.fingerprint, self.n_bits)

    def describe(self) -> dict:
        return {"name": self.name, "method": self.method, "n_bits": self.n_bits, "classes": self.classes,
                "library_fingerprint": self.library_fingerprint, "library_bits": self.library_bits,
                "created": self.created, "example_ids": self.example_ids, "examples": self.example_sources,
                "params": self.params, "fingerprint": self.fingerprint}

    @classmethod
    def from_stored(cls, head: dict, arrays: dict) -> "Category":
        return cls(name=head["name"], method=head["method"], n_bits=int(head["n_bits"]), classes=list(head["classes"]),
                   library_fingerprint=head["library_fingerprint"], library_bits=int(head["library_bits"]),
                   arrays=arrays, created=float(head["created"]), example_ids=list(head.get("example_ids", [])),
                   params=dict(head.get("params", {})), example_sources=dict(head.get("examples", {})))


def _svm_and_platt(F: np.ndarray, yi: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest L2 linear SVMs on ±1 category bits, and Platt's sigmoid fitted on their outputs."""
    from sklearn.svm import LinearSVC

    from ..encoders.ugh.calibration import platt_fit

    svm = np.zeros((n_classes, F.shape[1] + 1), np.float32)
    platt = np.zeros((n_classes, 2), np.float32)
    for c in range(n_classes):
        t = np.where(yi == c, 1, -1)
        if (t > 0).all() or (t < 0).all():
            continue
        model = LinearSVC(C=1.0, max_iter=5000).fit(F, t)
        svm[c, :-1], svm[c, -1] = model.coef_[0], model.intercept_[0]
        s = F @ svm[c, :-1] + svm[c, -1]
        a, b = platt_fit(s[:, None], (t > 0).astype(np.float64)[:, None])
        platt[c] = (a[0], b[0])
    return svm, platt


def learn_category(name: str, codes: np.ndarray, labels: list[str], *, background: np.ndarray, n_bits: int,
                   method: str, library: EncoderSpec, example_ids=(), example_sources=None, seed: int = 0,
                   **params) -> Category:
    """Fit the few-shot code of ``codes`` (library codes of the examples, ``labels`` one per code;
    :data:`BACKGROUND` marks given negatives) with ``background`` unlabeled library codes."""
    if method not in METHODS:
        raise expected("method", f"one of {METHODS}", repr(method))
    y = np.asarray(labels, dtype=object).astype(str)
    classes = sorted(set(y.tolist()) - {BACKGROUND})
    if not classes:
        raise expected("labels", "at least one positive example", "only negatives")
    if len(classes) == 1 and BACKGROUND not in y and background.shape[0] == 0:
        raise expected("background", "unlabeled codes (negatives) for a single category", "none")
    if method == "cca":
        from ..encoders.ugh.fewshot import CCACoder

        coder = CCACoder(n_bits, random_state=seed, **params).fit(codes, y, background=background)
        arrays = {"projection": coder.projection_, "offset": coder.offset_}
    else:
        from ..encoders.ugh.selection import L1BitSelector

        coder = L1BitSelector(n_bits, random_state=seed, **params)
        if len(classes) == 1 and BACKGROUND not in y:
            coder.fit(codes, y, background=background)
        else:
            coder.fit(codes, y)
        arrays = {"positions": coder.positions_}
    cat = Category(name, method, n_bits, classes, library.fingerprint, library.n_bits, arrays,
                   example_ids=[int(i) for i in example_ids], params={"seed": seed, **params},
                   example_sources=dict(example_sources or {}))
    task = cat.transform(codes)
    bits = unpack_bits(task)
    cat.arrays["prototypes"] = pack_bits(np.stack([bits[y == c].mean(0) >= 0.5 for c in classes]))
    # the SVM sees the examples and, for a single category without given negatives, background codes
    F, yi = signed_bits(task), np.array([classes.index(v) if v in classes else -1 for v in y])
    if len(classes) == 1 and BACKGROUND not in y:
        neg = signed_bits(cat.transform(background[: max(10 * len(codes), 100)]))
        F, yi = np.vstack([F, neg]), np.concatenate([yi, np.full(len(neg), -1)])
    cat.arrays["svm"], cat.arrays["platt"] = _svm_and_platt(F, yi, len(classes))
    return cat


__all__ = ["BACKGROUND", "METHODS", "Category", "learn_category"]
