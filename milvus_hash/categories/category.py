"""A few-shot category (or task) code: what is learned from a few examples, as plain arrays.

Built from library codes alone by the UGH few-shot coders (:class:`~milvus_hash.encoders.ugh.CCACoder`, the
default, or the paper's :class:`~milvus_hash.encoders.ugh.L1BitSelector`), plus, per class, a *prototype* (the
majority category code of its positives), and the membership model that ranks the store's items
(:mod:`.membership`: log-odds weights on the library bits, and a calibration curve) with the positives'
library codes, the *anchors* whose neighbourhoods :meth:`HashClient.members` searches. Everything is
arrays and JSON, so it persists in Milvus (:mod:`.definitions`) and loads without pickle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..codes import as_codes, pack_bits, select_bits, signed_bits, unpack_bits
from ..encoders.spec import EncoderSpec, fingerprint
from ..encoders.ugh.background import Background
from .membership import fit_membership
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
        ``member_weights float32 (n_classes, L)``, ``member_bias float32 (n_classes,)``,
        ``member_scale float32 (n_classes, 4)``, ``member_platt float32 (n_classes, 3)``,
        ``member_curve float32 (n_classes, 2, G)`` (:mod:`.membership`); ``anchors uint8 (n, L // 8)``
        (the positives' library codes) and ``anchor_classes int32 (n,)``.
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
    rounds: list = field(default_factory=list)  # refinements: {"at", "positives", "negatives", "forgot"} each

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

    def member_scores(self, library_codes, c: int) -> np.ndarray:
        """Membership scores ``float32 (n,)`` of class ``c`` (:mod:`.membership`) of library codes."""
        from .membership import member_scores

        return member_scores(self.arrays, c, self.anchors(c), library_codes, negatives=self.negatives())

    def ranking_scores(self, library_codes, c: int) -> np.ndarray:
        """What :meth:`HashClient.members` ranks items by, ``float32 (n,)``: the membership scores of
        class ``c``, re-ordered among the best by label propagation from the positives and the marked
        negatives (:func:`.membership.diffused_order`). Give it the items a ranking covers, marked
        negatives left out (as ``members`` does)."""
        from .membership import diffused_order

        codes = as_codes(library_codes, n_bits=self.library_bits, argument="library codes")
        s = self.member_scores(codes, c)
        if "member_score_scale" not in self.arrays or len(s) < 2:  # defined before propagation existed
            return s
        anchors, negatives = self.anchors(c), self.negatives()
        return diffused_order(s, codes, anchors=anchors, negatives=negatives,
                              scale=self.arrays["member_score_scale"][c], anchor_scores=self.member_scores(anchors, c),
                              negative_scores=None if negatives is None else self.member_scores(negatives, c))

    def probabilities(self, library_codes) -> np.ndarray:
        """Calibrated membership ``float64 (n, n_classes)`` of library codes ``uint8 (n, L // 8)``."""
        from .membership import class_calibration, probabilities

        codes = as_codes(library_codes, n_bits=self.library_bits, argument="library codes")
        return np.stack([probabilities(class_calibration(self.arrays, c), self.member_scores(codes, c))
                         for c in range(len(self.classes))], axis=1)

    def anchors(self, c: int) -> np.ndarray:
        """The library codes ``uint8 (m, L // 8)`` of class ``c``'s positives."""
        return self.arrays["anchors"][self.arrays["anchor_classes"] == c]

    def marked_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """Stored ids ``int64`` of the positives (examples and marked right) and of the marked
        negatives; -1 for those given as images, codes or features."""
        n_pos, n_neg = len(self.arrays["anchors"]), len(self.arrays.get("negative_codes", ()))
        pos = self.arrays.get("anchor_ids", np.full(n_pos, -1, np.int64))
        neg = self.arrays.get("negative_ids", np.full(n_neg, -1, np.int64))
        return np.asarray(pos, np.int64), np.asarray(neg, np.int64)

    def negatives(self) -> np.ndarray | None:
        """The library codes ``uint8 (m, L // 8)`` of the marked (given) negatives, or None."""
        neg = self.arrays.get("negative_codes")
        return neg if neg is not None and len(neg) else None

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
        """SHA-256 of the arrays and what they mean: computed once (the arrays are read-only; on a
        20,000-bit library they are a few MB, and hashing them on every search cost about 10 ms)."""
        key = (self.method, tuple(self.classes), self.library_fingerprint, tuple(sorted(self.arrays)))
        cached = self.__dict__.get("_fingerprint")
        if cached is not None and cached[0] == key:
            return cached[1]
        for a in self.arrays.values():
            a.flags.writeable = False
        value = fingerprint(*(self.arrays[k] for k in sorted(self.arrays)), method=self.method, classes=self.classes,
                            library=self.library_fingerprint)
        self.__dict__["_fingerprint"] = (key, value)
        return value

    def encoder_spec(self) -> EncoderSpec:
        """The identity of this code, recorded by the materialized task collection."""
        return EncoderSpec("ugh-category", self.fingerprint, self.n_bits)

    def describe(self) -> dict:
        return {"name": self.name, "method": self.method, "n_bits": self.n_bits, "classes": self.classes,
                "library_fingerprint": self.library_fingerprint, "library_bits": self.library_bits,
                "created": self.created, "example_ids": self.example_ids, "examples": self.example_sources,
                "params": self.params, "fingerprint": self.fingerprint, "rounds": self.rounds,
                "positives": int(len(self.arrays["anchors"])),
                "negatives": int(len(self.arrays.get("negative_codes", ())))}

    @classmethod
    def from_stored(cls, head: dict, arrays: dict) -> "Category":
        return cls(name=head["name"], method=head["method"], n_bits=int(head["n_bits"]), classes=list(head["classes"]),
                   library_fingerprint=head["library_fingerprint"], library_bits=int(head["library_bits"]),
                   arrays=arrays, created=float(head["created"]), example_ids=list(head.get("example_ids", [])),
                   params=dict(head.get("params", {})), example_sources=dict(head.get("examples", {})),
                   rounds=list(head.get("rounds", [])))


def learn_category(name: str, codes: np.ndarray, labels: list[str], *, background, n_bits: int,
                   method: str, library: EncoderSpec, example_ids=(), example_sources=None, seed: int = 0,
                   ids=None, rounds=(), membership: dict | None = None, **params) -> Category:
    """Fit the few-shot code of ``codes`` (library codes of the examples, ``labels`` one per code;
    :data:`BACKGROUND` marks given negatives) with ``background``: unlabeled library codes, or a
    :class:`~milvus_hash.encoders.ugh.background.Background` that keeps what is computed from them.
    ``ids``: ``int64 (n,)`` the stored id of each code (-1: not a stored item), kept with the
    positives and negatives (``Category.marked_ids``); ``rounds``: the refinements so far;
    ``membership``: keyword arguments of :func:`.membership.fit_membership` (for experiments)."""
    if method not in METHODS:
        raise expected("method", f"one of {METHODS}", repr(method))
    background = Background.of(background, n_bits=library.n_bits)
    y = np.asarray(labels, dtype=object).astype(str)
    classes = sorted(set(y.tolist()) - {BACKGROUND})
    if not classes:
        raise expected("labels", "at least one positive example", "only negatives")
    if len(classes) == 1 and BACKGROUND not in y and len(background) == 0:
        raise expected("background", "unlabeled codes (negatives) for a single category", "none")
    if method == "cca":
        from ..encoders.ugh.fewshot import CCACoder

        coder = CCACoder(n_bits, random_state=seed, **params).fit(codes, y, background=background)
        arrays = {"projection": coder.projection_, "offset": coder.offset_}
    else:
        from ..encoders.ugh.selection import L1BitSelector

        coder = L1BitSelector(n_bits, random_state=seed, **params)
        if len(classes) == 1 and BACKGROUND not in y:
            coder.fit(codes, y, background=background.codes)
        else:
            coder.fit(codes, y)
        arrays = {"positions": coder.positions_}
    cat = Category(name, method, n_bits, classes, library.fingerprint, library.n_bits, arrays,
                   example_ids=[int(i) for i in example_ids], params={"seed": seed, **params},
                   example_sources=dict(example_sources or {}), rounds=list(rounds))
    task = cat.transform(codes)
    bits = unpack_bits(task)
    cat.arrays["prototypes"] = pack_bits(np.stack([bits[y == c].mean(0) >= 0.5 for c in classes]))
    yi = np.array([classes.index(v) if v in classes else -1 for v in y], np.int32)
    positive = yi >= 0
    cat.arrays.update(fit_membership(codes[positive], yi[positive], len(classes), background=background,
                                     negatives=codes[~positive] if (~positive).any() else None,
                                     **(membership or {})))
    cat.arrays["anchors"], cat.arrays["anchor_classes"] = codes[positive], yi[positive]
    cat.arrays["negative_codes"] = codes[~positive]
    ids = np.full(len(codes), -1, np.int64) if ids is None else np.asarray(ids, np.int64)
    if ids.shape != (len(codes),):
        raise expected("ids", f"one id per example ({len(codes)})", f"shape {ids.shape}")
    cat.arrays["anchor_ids"], cat.arrays["negative_ids"] = ids[positive], ids[~positive]
    return cat


__all__ = ["BACKGROUND", "METHODS", "Category", "learn_category"]
