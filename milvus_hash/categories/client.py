"""``HashClient``: few-shot categories over a collection of UGH library codes, and queries against them.

.. code-block:: python

    client = HashClient("./milvus_hash.db", collection="photos", library="lib.npz")
    client.define("shoes", images=["a.jpg", "b.jpg", "c.jpg"])            # positives; background from the store
    client.define("clothes", ids=ids, labels=labels, replace=True)        # a task of several classes
    client.search("shoes", ids=[id1], k=10)                               # instant: no extra collection
    client.materialize("shoes"); client.search("shoes", images="q.jpg", mode="materialized")
    client.members("shoes", k=100)                                        # the store's items ranked by membership
    client.similar(images="q.jpg", k=10)                                  # plain search, no category

Examples and queries are given by exactly one keyword (:mod:`.items`): ``ids=`` (stored ids),
``images=`` (paths, PIL images or uint8 arrays; needs ``library`` and its backbone), ``codes=``
(library codes ``uint8 (n, L // 8)``) or ``features=`` (``float (n, d)``, needs ``library``).
Definitions live in Milvus (:mod:`.definitions`), so other processes see them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codes import hamming_distances
from ..encoders.ugh.background import Background
from ..errors import CollectionNotFoundError, EncoderMismatchError, expected
from ..store.hash_store import DEFAULT_URI, MAX_TOPK, HashStore
from ..store.records import Records, SearchResult
from .category import BACKGROUND, Category, learn_category
from .definitions import (DEFINITIONS, CategoryExistsError, CategoryNotFoundError, DefinitionStore,
                          check_category_name)
from .items import as_ids, as_images, as_rows, one_kind
from .materialized import (Freshness, MaterializedCategories, category_collection, freshness, is_materialized,
                           materialized_categories, reconcile, warn_if_stale)

DEFAULT_CANDIDATES = 2_000


@dataclass(frozen=True)
class Items:
    """Items given to the client: their library ``codes`` ``uint8 (n, L // 8)``, the keyword they came
    by, their ``ids`` (given by id) and ``sources`` (image paths; "" for an image in memory)."""

    codes: np.ndarray
    kind: str
    ids: np.ndarray | None = None
    sources: list[str] | None = None

    def describe(self) -> dict:
        """What a definition records of its examples (ids are recorded on their own)."""
        if self.kind == "images":
            return {"images": [s or "<in memory>" for s in self.sources][:1000]}
        return {self.kind: len(self.codes)}


@dataclass(frozen=True)
class Members:
    """Items ranked by membership, best first: ``ids int64 (m,)``, ``scores float32 (m,)`` (membership score),
    ``probabilities float64 (m,)`` (calibrated), their ``sources`` and ``labels``; ``candidates``:
    how many items were scored."""

    ids: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    sources: list[str]
    labels: list[str]
    candidates: int = 0
    examples: np.ndarray | None = None  # bool (m,): an example or a member marked right (known already)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows(self) -> list[dict]:
        """One dict per item in rank order: ``rank``, ``id``, ``source``, ``label``, ``probability``,
        ``score`` and ``example`` (True: one of the category's examples or a member marked right)."""
        flags = self.examples if self.examples is not None else np.zeros(len(self), bool)
        return [{"rank": r + 1, "id": int(i), "source": s, "label": lab, "probability": round(float(p), 6),
                 "score": round(float(sc), 4), "example": bool(e)}
                for r, (i, s, lab, p, sc, e) in enumerate(zip(self.ids.tolist(), self.sources, self.labels,
                                                               self.probabilities, self.scores, flags))]


class _TopScores:
    """The ``k`` best (score desc, id asc) of batches of records, in bounded memory."""

    def __init__(self, k: int):
        self.k = k
        self.ids = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float32)
        self.flags = np.zeros(0, bool)
        self.codes: np.ndarray | None = None
        self.sources: list[str] = []
        self.labels: list[str] = []

    def add(self, rec: Records, scores: np.ndarray, keep: np.ndarray | None = None,
            flags: np.ndarray | None = None) -> None:
        keep = np.ones(len(rec.ids), bool) if keep is None else keep
        flags = np.zeros(len(rec.ids), bool) if flags is None else flags
        ids = np.concatenate([self.ids, rec.ids[keep]])
        sc = np.concatenate([self.scores, scores.astype(np.float32)[keep]])
        fl = np.concatenate([self.flags, flags[keep]])
        codes = rec.codes[keep] if self.codes is None else np.vstack([self.codes, rec.codes[keep]])
        sources = self.sources + [v for v, t in zip(rec.sources, keep) if t]
        labels = self.labels + [v for v, t in zip(rec.labels, keep) if t]
        order = np.lexsort((ids, -sc))[:self.k]
        self.ids, self.scores, self.flags, self.codes = ids[order], sc[order], fl[order], codes[order]
        self.sources, self.labels = [sources[j] for j in order], [labels[j] for j in order]

    def reorder(self, scores: np.ndarray) -> None:
        """Replace the kept items' scores (a re-ranking of them) and sort again."""
        order = np.lexsort((self.ids, -scores))
        self.ids, self.scores, self.flags = self.ids[order], scores[order].astype(np.float32), self.flags[order]
        self.codes = None if self.codes is None else self.codes[order]
        self.sources, self.labels = [self.sources[j] for j in order], [self.labels[j] for j in order]

    def result(self, k: int):
        return self.ids[:k], self.scores[:k], self.sources[:k], self.labels[:k], self.flags[:k]


def _code_in(codes: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """``bool (n,)``: which of ``codes`` equal one of the ``known`` codes exactly (the same image stored)."""
    if known is None or not len(known) or codes is None or not len(codes):
        return np.zeros(0 if codes is None else len(codes), bool)
    seen = {row.tobytes() for row in np.ascontiguousarray(known)}
    return np.fromiter((row.tobytes() in seen for row in np.ascontiguousarray(codes)), bool, len(codes))


def _unique_marks(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marks with each stored id once (its last mark); items not given by id are all kept."""
    if not len(ids):
        return codes, ids
    keep = np.ones(len(ids), bool)
    seen: set[int] = set()
    for j in range(len(ids) - 1, -1, -1):
        i = int(ids[j])
        if i >= 0:
            keep[j] = i not in seen
            seen.add(i)
    return codes[keep], ids[keep]


def _positive_int(value, argument: str, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or \
            (upper is not None and value > upper):
        raise expected(argument, f"a positive int{'' if upper is None else f' up to {upper}'}", repr(value))
    return int(value)


@dataclass(frozen=True)
class Materialization:
    """What :meth:`HashClient.materialize` did: the category's ``collection``, the rows ``written``
    and ``deleted``, and the ``rows`` it now holds (those of the library collection)."""

    collection: str
    written: int
    deleted: int
    rows: int


class HashClient:
    """Few-shot categories and Hamming queries on the library collection ``collection``.

    Args:
        uri, token, timeout: where Milvus is (see :class:`HashStore`); or pass ``store``.
        collection: a collection written with UGH library codes.
        library: the :class:`~milvus_hash.encoders.ugh.UGHLibrary` (or its file) that wrote it; needed only for
            feature vectors and images. Checked against the collection's encoder.
        backbone: for images; default: the one the library records.
        background: how many unlabeled library codes to sample from the collection as the
            categories' background (read once, on the first definition; see :meth:`background`).
        stale_check: seconds for which what this client checked of a category stays trusted: that
            its definition is the stored one, that it is materialized, and that its collection covers
            the library collection (ingestion keeps it so; writes around milvus-hash are caught here).
            This client's own definitions, materializations and drops take effect at once; another
            process's are seen within ``stale_check`` seconds (0: check before every query).
    """

    def __init__(self, uri: str = DEFAULT_URI, *, collection: str, library=None, backbone=None,
                 token: str | None = None, timeout: float = 30.0, store: HashStore | None = None,
                 definitions: str = DEFINITIONS, background: int = 2_000, seed: int = 0,
                 stale_check: float = 10.0):
        self.store = store if store is not None else HashStore(uri, token=token, timeout=timeout)
        self.collection = collection
        self.info = self.store.describe_collection(collection)
        if self.info.encoder.kind != "ugh":
            raise expected("collection", "a collection of UGH library codes",
                           f"{collection!r} written by a {self.info.encoder.kind!r} encoder")
        if isinstance(library, (str, Path)):
            from ..encoders.ugh.library import UGHLibrary

            library = UGHLibrary.load(library, argument="library")
        if library is not None and library.encoder_spec() != self.info.encoder:
            raise EncoderMismatchError(f"library: the collection {collection!r} was written by {self.info.encoder}, "
                                       f"this library is {library.encoder_spec()}")
        self.library, self._backbone, self.background_size, self.seed = library, backbone, background, seed
        self.definitions = DefinitionStore(self.store, collection, definitions=definitions)
        self._background: Background | None = None
        self._cache: dict[str, Category] = {}
        self.stale_check = stale_check
        self._checked: dict[str, float] = {}  # name -> when its coverage was checked
        self._verified: dict[str, float] = {}  # name -> when the cached definition was checked
        self._materialized_as: dict[str, tuple[str, float]] = {}  # name -> (fingerprint, when) seen materialized

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "HashClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ inputs
    @property
    def library_bits(self) -> int:
        return self.info.n_bits

    def _need_library(self, what: str):
        if self.library is None:
            raise expected("library", f"the UGHLibrary (or its file) to encode {what}", None)
        return self.library

    def _images_to_codes(self, images) -> np.ndarray:
        library = self._need_library("images")
        if self._backbone is None:
            from ..features import get_extractor, record_arguments

            record = getattr(library, "features_", None)
            if not record:
                raise expected("backbone", "a backbone (the library records none)", None)
            self._backbone = get_extractor(**record_arguments(record))
        return library.transform(self._backbone.extract(images))

    def items(self, *, ids=None, images=None, codes=None, features=None, argument: str = "examples") -> Items:
        """The library codes of items given by exactly one keyword (see :mod:`.items`): stored ``ids``,
        ``images`` (through the library's backbone), library ``codes`` or ``features``."""
        kind, value = one_kind(argument, ids=ids, images=images, codes=codes, features=features)
        where = f"{argument} ({kind}=)"
        if kind == "ids":
            ids = as_ids(value, where)
            rec = self.store.get(self.collection, ids=ids)
            if rec.missing.size:
                raise expected(where, f"ids stored in {self.collection!r}",
                               f"{rec.missing.size} missing, e.g. {rec.missing[:5].tolist()}")
            return Items(rec.codes, kind, ids=ids)
        if kind == "images":
            images, sources = as_images(value, where)
            return Items(self._images_to_codes(images), kind, sources=sources)
        if kind == "codes":
            return Items(as_rows(value, where, width=self.library_bits // 8, dtype_kind="B",
                                 what=f"library codes of {self.library_bits} bits (uint8)"), kind)
        library = self._need_library("feature vectors")
        return Items(library.transform(as_rows(value, where, width=library.n_features_in_, dtype_kind="f",
                                               what="feature vectors (float)")), kind)

    def items_of(self, argument: str, *, required: bool = True, **given) -> tuple[np.ndarray, np.ndarray, dict]:
        """Items given by one or more of ``ids``, ``images``, ``codes``, ``features`` together: their
        library codes ``uint8 (n, L // 8)`` (in that order of kinds), their stored ids ``int64 (n,)``
        (-1 for items not given by id) and what a definition records of them. ``required``: at
        least one kind (else none is fine: empty arrays)."""
        named = {k: v for k, v in given.items() if v is not None}
        if not named:
            if required:
                raise expected(argument, "at least one of ids=, images=, codes=, features=", "none of them")
            return np.zeros((0, self.library_bits // 8), np.uint8), np.zeros(0, np.int64), {}
        codes, ids, described = [], [], {}
        for kind in ("ids", "images", "codes", "features"):
            if kind in named:
                it = self.items(**{kind: named[kind]}, argument=argument)
                codes.append(it.codes)
                ids.append(it.ids if it.ids is not None else np.full(len(it.codes), -1, np.int64))
                described.update(it.describe() if kind != "ids" else {})
        return np.vstack(codes), np.concatenate(ids), described

    def background(self) -> Background:
        """The background sample every category of this client learns against: about ``background``
        items of the collection (whole residue classes of their ids, seeded: see
        :mod:`.background_sample`), read on first use and kept, with what is computed from it."""
        if self._background is None:
            from .background_sample import read_background

            _, codes = read_background(self.store, self.collection, self.background_size, self.seed)
            self._background = Background(codes)
        return self._background

    # ------------------------------------------------------------------ definitions
    def define(self, name: str, *, ids=None, images=None, codes=None, features=None, labels=None,
               negatives=None, n_bits: int = 16, method: str = "cca", replace: bool = False, **params) -> Category:
        """Define a category from positives, or a task from labeled examples.

        Args:
            ids, images, codes, features: the examples, by one or more keywords (see :mod:`.items`):
                stored ids, images (paths, PIL images or uint8 arrays, through the library's
                backbone), library codes or feature vectors; several kinds together are one set of
                examples (e.g. five pictures and the ids of members already confirmed).
            labels: one label per example for a task of several classes; None: one category ``name``
                whose negatives are ``negatives`` or, when not given, background codes of the store.
            negatives: stored ids of negative examples (optional).
            n_bits: code length B (8 to 1024, multiple of 8; default 16).
            method: ``"cca"`` (the default few-shot code) or ``"l1"`` (the paper's bit selection).
            replace: redefine ``name`` if it exists (atomically: readers see the old or the new
                definition); without it an existing name is an error.
            params: passed to the coder (e.g. ``ridge``, ``self_training`` or ``C``).
        """
        check_category_name(name)
        old = self.definitions.previous(name)
        if old is not None and not replace:
            raise CategoryExistsError(f"name: expected a name not defined yet (or replace=True to redefine it), "
                                      f"received {name!r}, which is defined on {self.collection!r}")
        codes, example_ids, described = self.items_of("examples", ids=ids, images=images, codes=codes,
                                                      features=features)
        if labels is None:
            y = [name] * len(codes)
        else:
            y = [str(v) for v in labels]
            if len(y) != len(codes):
                raise expected("labels", f"{len(codes)} labels, one per example", f"{len(y)}")
        all_ids = example_ids
        if negatives is not None:
            neg_ids = as_ids(negatives, "negatives")
            neg = self.items(ids=neg_ids, argument="negatives").codes
            codes, y = np.vstack([codes, neg]), y + [BACKGROUND] * len(neg)
            all_ids = np.concatenate([example_ids, neg_ids])
        if len(set(y) - {BACKGROUND}) == 1 and BACKGROUND not in y and len(self.background()) == 0:
            raise expected("background", "a collection with codes to draw negatives from (or negatives=)",
                           "an empty collection")
        cat = learn_category(name, codes, y, background=self.background(), n_bits=n_bits, method=method,
                             library=self.info.encoder, example_ids=example_ids[example_ids >= 0].tolist(),
                             example_sources=described or {"ids": int((example_ids >= 0).sum())}, seed=self.seed,
                             ids=all_ids, **params)
        self.definitions.save(name, cat.describe(), cat.arrays, old=old)
        self._forget(name)
        self._cache[name], self._verified[name] = cat, time.monotonic()
        return cat

    def refine(self, name: str, *, positive_ids=None, negative_ids=None, positive_images=None,
               negative_images=None, positive_codes=None, negative_codes=None, positive_features=None,
               negative_features=None, forget_ids=None) -> Category:
        """Mark items right (``positive_*``) or wrong (``negative_*``) for category ``name`` and learn it
        again from its examples and every mark so far; ``forget_ids`` removes marks (by stored id).

        Marks are given by ids (as :meth:`members` prints them), images, library codes or feature
        vectors, any together. The latest mark of an id wins (an id marked wrong that was marked right
        is wrong now). Marked negatives never appear in :meth:`members`; marked positives are flagged
        there as examples (``new_only=True`` leaves them out). The stored definition is replaced
        atomically (another process sees the old or the new one) and records the round (``describe``:
        ``rounds``, ``positives``, ``negatives``). Returns the new :class:`Category`.
        """
        check_category_name(name)
        self._forget(name)  # refine the stored definition, not a cached one
        old_head = self.definitions.describe(name)
        cat = self.category(name)
        if len(cat.classes) != 1:
            raise expected("name", "a category of one class (refine marks its members)",
                           f"{name!r}, a task of classes {cat.classes}")
        new_pos, new_pos_ids, _ = self.items_of("positives", required=False, ids=positive_ids,
                                                images=positive_images, codes=positive_codes,
                                                features=positive_features)
        new_neg, new_neg_ids, _ = self.items_of("negatives", required=False, ids=negative_ids,
                                                images=negative_images, codes=negative_codes,
                                                features=negative_features)
        forget = set() if forget_ids is None else set(as_ids(forget_ids, "forget_ids").tolist())
        if not len(new_pos) and not len(new_neg) and not forget:
            raise expected("marks", "positives, negatives or ids to forget", "none")
        pos_codes, neg_codes = cat.anchors(0), cat.negatives()
        neg_codes = np.zeros((0, pos_codes.shape[1]), np.uint8) if neg_codes is None else neg_codes
        pos_ids, neg_ids = cat.marked_ids()
        unknown = forget - set(pos_ids.tolist()) - set(neg_ids.tolist())
        if unknown:
            raise expected("forget_ids", f"ids marked on {name!r} (its examples and marks)",
                           f"{sorted(unknown)[:10]}, not marked")
        # the latest mark of an id wins; forgotten ids go
        drop_pos = set(new_neg_ids[new_neg_ids >= 0].tolist()) | set(new_pos_ids[new_pos_ids >= 0].tolist()) | forget
        drop_neg = set(new_pos_ids[new_pos_ids >= 0].tolist()) | set(new_neg_ids[new_neg_ids >= 0].tolist()) | forget
        kp = ~np.isin(pos_ids, list(drop_pos)) | (pos_ids < 0)
        kn = ~np.isin(neg_ids, list(drop_neg)) | (neg_ids < 0)
        P = np.vstack([pos_codes[kp], new_pos])
        P_ids = np.concatenate([pos_ids[kp], new_pos_ids])
        N = np.vstack([neg_codes[kn], new_neg])
        N_ids = np.concatenate([neg_ids[kn], new_neg_ids])
        P, P_ids = _unique_marks(P, P_ids)
        N, N_ids = _unique_marks(N, N_ids)
        if not len(P):
            raise expected("forget_ids", f"at least one positive left in {name!r}", "every positive forgotten")
        rounds = cat.rounds + [{"at": time.time(), "positives": int(len(new_pos)), "negatives": int(len(new_neg)),
                                "forgot": len(forget)}]
        params = {k: v for k, v in cat.params.items() if k != "seed"}
        new = learn_category(name, np.vstack([P, N]), [cat.classes[0]] * len(P) + [BACKGROUND] * len(N),
                             background=self.background(), n_bits=cat.n_bits, method=cat.method,
                             library=self.info.encoder, example_ids=cat.example_ids,
                             example_sources=cat.example_sources, seed=int(cat.params.get("seed", self.seed)),
                             ids=np.concatenate([P_ids, N_ids]), rounds=rounds, **params)
        new.created = cat.created
        self.definitions.save(name, new.describe(), new.arrays, old=old_head)
        self._forget(name)
        self._cache[name], self._verified[name] = new, time.monotonic()
        return new

    def categories(self) -> list[str]:
        return self.definitions.list()

    def describe(self, name: str) -> dict:
        """The stored description of ``name``: method, bits, classes, the examples it came from
        (``example_ids``, or ``examples``: image paths or what was given), ``created`` (Unix time) and
        ``created_at`` (readable, UTC), the library's fingerprint."""
        head = self.definitions.describe(name)
        head.pop("n_parts", None)
        head["created_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(head["created"])))
        return head

    def category(self, name: str) -> Category:
        """The stored definition (re-read when another process redefined it: checked at most every
        ``stale_check`` seconds)."""
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached is not None and now - self._verified.get(name, -1e9) < self.stale_check:
            return cached
        head = self.definitions.describe(name)
        if cached is not None and cached.fingerprint == head.get("fingerprint"):
            self._verified[name] = now
            return cached
        head, arrays = self.definitions.load(name)
        cat = Category.from_stored(head, arrays)
        if cat.library_fingerprint != self.info.encoder.fingerprint:
            raise EncoderMismatchError(f"category {name!r} was defined on library {cat.library_fingerprint[:16]}, "
                                       f"collection {self.collection!r} holds {self.info.encoder}")
        self._cache[name], self._verified[name] = cat, now
        return cat

    def _forget(self, name: str) -> None:
        """Forget what was checked of ``name`` (after this client changed it, or a query failed on it)."""
        for seen in (self._cache, self._verified, self._checked, self._materialized_as):
            seen.pop(name, None)

    def drop(self, name: str) -> None:
        """Drop the definition and its materialized collection, if any."""
        self.definitions.drop(name)
        self._forget(name)
        task = self.task_collection(name)
        if self.store.has_collection(task):
            self.store.drop_collection(task)

    # ------------------------------------------------------------------ queries
    def task_collection(self, name: str) -> str:
        """The collection that holds the category codes of ``name`` once materialized."""
        return category_collection(self.collection, name)

    def materialize(self, name: str, *, batch_size: int = 10_000, rebuild: bool = False) -> Materialization:
        """Bring the category's collection to exactly the library collection's items, each with its
        category code: missing or changed rows are written, rows of deleted items removed (streamed
        in batches by id, in bounded memory; idempotent, so an interrupted run is completed by the
        next). ``rebuild`` drops the collection first. Ingestion (``ingestion.pipeline.ingest``) and
        :meth:`delete` keep a materialized category up to date from then on."""
        cat = self.category(name)
        if rebuild and self.store.has_collection(self.task_collection(name)):
            self.store.drop_collection(self.task_collection(name))
        done = reconcile(self.store, self.collection, cat, batch_size=batch_size)
        self._checked[name] = time.monotonic()
        self._materialized_as[name] = (cat.fingerprint, self._checked[name])
        return Materialization(**done)

    def status(self, name: str) -> Freshness | None:
        """Rows of the materialized category beside the library collection's (None: not materialized)."""
        task = self.task_collection(name)
        return freshness(self.store, self.collection, task) if is_materialized(
            self.store, self.collection, self.category(name)) else None

    def _materialized(self, name: str, cat: Category) -> str:
        """The category's collection, checked to exist and, at most every ``stale_check`` seconds, to
        cover the library collection (a :class:`StaleCategoryWarning` when it does not)."""
        task = self.task_collection(name)
        if not self._is_materialized(name, cat):
            raise CategoryNotFoundError(f"mode: category {name!r} is not materialized for its current definition; "
                                        f"call materialize({name!r})")
        now = time.monotonic()
        if now - self._checked.get(name, -1e9) >= self.stale_check:
            warn_if_stale(freshness(self.store, self.collection, task), name)
            self._checked[name] = now
        return task

    def _is_materialized(self, name: str, cat: Category) -> bool:
        seen = self._materialized_as.get(name)
        now = time.monotonic()
        if seen is not None and seen[0] == cat.fingerprint and now - seen[1] < self.stale_check:
            return True
        if is_materialized(self.store, self.collection, cat):
            self._materialized_as[name] = (cat.fingerprint, now)
            return True
        self._materialized_as.pop(name, None)
        return False

    def materialized_categories(self) -> MaterializedCategories:
        """The materialized categories of the collection, to write or delete their codes with the
        library's."""
        return materialized_categories(self.store, self.collection, definitions=self.definitions.definitions)

    def delete(self, *, ids) -> int:
        """Delete items from the library collection and from every materialized category. Returns the
        number of ids asked for."""
        cats = self.materialized_categories()
        n = self.store.delete(self.collection, ids=ids)
        cats.delete(ids=ids)
        return n

    def search(self, name: str, *, ids=None, images=None, codes=None, features=None, k: int = 10,
               mode: str = "auto", candidates: int = DEFAULT_CANDIDATES, output_fields=("source", "label"),
               ties: str = "any") -> SearchResult:
        """Top-k by Hamming distance on the category's code.

        ``mode="materialized"`` searches the task collection (see :meth:`materialize`), exactly: one
        Milvus search. ``"instant"`` searches the library codes for the ``candidates`` nearest (full
        library Hamming distance), then ranks them by the category code. ``"auto"`` (default): the
        materialized collection when the category has one, else instant. The queries: by exactly one of ``ids``,
        ``images``, ``codes``, ``features`` (see :meth:`items`).
        Rows sorted by (distance, id), padded with -1 / int32 max, as :meth:`HashStore.search`.
        Short codes tie a lot: with ``ties="any"`` (default) the hits at the k-th distance are any of
        the tied items (Milvus's choice); ``ties="id"`` returns the smallest ids among them, so that
        the materialized answer equals numpy's exactly, at the cost of extra range searches.
        """
        if mode not in ("auto", "instant", "materialized"):
            raise expected("mode", "'auto', 'instant' or 'materialized'", repr(mode))
        cat = self.category(name)
        qlib = self.items(ids=ids, images=images, codes=codes, features=features, argument="query").codes
        if mode == "materialized" or (mode == "auto" and self._is_materialized(name, cat)):
            try:
                return self._search_materialized(name, cat, qlib, k, ties, output_fields)
            except (EncoderMismatchError, CollectionNotFoundError):  # changed by another process: look again
                self._forget(name)
                cat = self.category(name)
                if mode == "materialized" or self._is_materialized(name, cat):
                    return self._search_materialized(name, cat, qlib, k, ties, output_fields)
        qcat = cat.transform(qlib)
        if not isinstance(candidates, int) or not k <= candidates <= MAX_TOPK:
            raise expected("candidates", f"an int from k = {k} to {MAX_TOPK}", repr(candidates))
        first = self.store.search(self.collection, codes=qlib, k=candidates)
        ids = np.full((len(qlib), k), -1, np.int64)
        dist = np.full((len(qlib), k), np.iinfo(np.int32).max, np.int32)
        fields = []
        for i in range(len(qlib)):
            cand = first.ids[i][first.ids[i] >= 0]
            rec: Records = self.store.get(self.collection, ids=cand)
            d = hamming_distances(qcat[i:i + 1], cat.transform(rec.codes))[0]
            order = np.lexsort((rec.ids, d))[:k]
            ids[i, :len(order)], dist[i, :len(order)] = rec.ids[order], d[order]
            fields.append([{f: getattr(rec, f + "s")[j] for f in output_fields} for j in order])
        return SearchResult(ids, dist, fields if output_fields else None)

    def _search_materialized(self, name, cat, qlib, k, ties, output_fields) -> SearchResult:
        task = self._materialized(name, cat)
        return self.store.search(task, codes=cat.transform(qlib), k=k, ties=ties, output_fields=list(output_fields),
                                 encoder=cat.encoder_spec())

    def members(self, name: str, *, k: int = 100, label=None, min_probability: float = 0.0,
                candidates: int | None = None, exhaustive: bool = False, new_only: bool = False) -> "Members":
        """The store's items ranked by membership of the category (of class ``label`` of a task), best first.

        The score is the category's membership score (:mod:`.membership`: log-odds of the library
        bits plus nearness to a positive; once members are marked wrong by :meth:`refine`, also
        distance from the marked negatives and per-bit weights fitted to the marks), turned into a
        calibrated probability. By default it is computed for the ``candidates`` nearest items
        (full library Hamming distance) of each positive (default ``3 k``, at least 100, plus the
        marks), found by one Milvus search with the positives as queries
        (:meth:`HashStore.neighbours`: the codes come with the hits on a server, read by id after it
        on Milvus Lite): memory is bounded by ``positives x candidates`` codes whatever the
        collection's size. (Measured on 60,000 Fashion-MNIST codes, 5 positives, k = 100: 300
        candidates a positive find the exhaustive ranking's whole top 100, 100 find 93% of it.)
        ``exhaustive=True`` scores every item, streamed in batches (bounded memory too, but it reads
        the whole collection: for evaluation).

        Items marked wrong never appear. The examples and the items marked right (by id, or stored
        items whose code equals an example's: the same picture) are flagged (``Members.examples``,
        ``"example"`` in ``rows()``); ``new_only=True`` leaves them out.

        Returns :class:`Members` (at most ``k``, with probability ``>= min_probability``), ties by id.
        """
        cat = self.category(name)
        c = cat.class_index(label)
        k = _positive_int(k, "k")
        if not isinstance(min_probability, (int, float)) or not 0.0 <= float(min_probability) <= 1.0:
            raise expected("min_probability", "a number from 0 to 1", repr(min_probability))
        pos_ids, neg_ids = cat.marked_ids()
        anchors = cat.anchors(c)
        known_pos = pos_ids[(cat.arrays["anchor_classes"] == c) & (pos_ids >= 0)] if len(pos_ids) else pos_ids
        known_neg = neg_ids[neg_ids >= 0]
        negatives = cat.negatives()
        n_marked = int(len(known_neg) + (len(anchors) if new_only else 0))

        def masks(rec: Records) -> tuple[np.ndarray, np.ndarray]:
            example = np.isin(rec.ids, known_pos) | _code_in(rec.codes, anchors)
            drop = np.isin(rec.ids, known_neg) | _code_in(rec.codes, negatives)
            if new_only:
                drop |= example
            return ~drop, example

        from .membership import DIFFUSION_POOL

        # the best DIFFUSION_POOL items by membership score are re-ordered by propagation from the
        # marks (Category.ranking_scores): kept with their codes, then re-ranked, then cut to k
        best, pool = _TopScores(max(k, DIFFUSION_POOL)), 0
        if exhaustive:
            for rec in self.store.iter_records(self.collection):
                best.add(rec, cat.member_scores(rec.codes, c), *masks(rec))
                pool += len(rec.ids)
        else:
            candidates = min(max(3 * k, 100) + n_marked, MAX_TOPK) if candidates is None else \
                _positive_int(candidates, "candidates", MAX_TOPK)
            rec = self.store.neighbours(self.collection, codes=anchors, k=candidates)
            best.add(rec, cat.member_scores(rec.codes, c), *masks(rec))
            pool = len(rec)
        if len(best.ids) > 1:
            best.reorder(cat.ranking_scores(best.codes, c))
        ids, sc, sources, labels, flags = best.result(k)
        from .membership import class_calibration, probabilities

        prob = probabilities(class_calibration(cat.arrays, c), sc)
        keep = prob >= float(min_probability)
        return Members(ids[keep], sc[keep], prob[keep], [s for s, t in zip(sources, keep) if t],
                       [v for v, t in zip(labels, keep) if t], candidates=pool, examples=flags[keep])

    def score(self, name: str, *, ids=None, images=None, codes=None, features=None, label=None) -> np.ndarray:
        """Calibrated membership probabilities ``float64 (n,)`` for ``label`` of the items given by
        exactly one of ``ids``, ``images``, ``codes``, ``features``."""
        cat = self.category(name)
        c = cat.class_index(label)
        qlib = self.items(ids=ids, images=images, codes=codes, features=features, argument="query").codes
        return cat.probabilities(qlib)[:, c]

    def similar(self, *, ids=None, images=None, codes=None, features=None, k: int = 10,
                output_fields=("source", "label"), ties: str = "any", merge: str | None = None) -> SearchResult:
        """A plain similarity search: the ``k`` items nearest to each query by full library-code
        Hamming distance (no category). Queries by ``ids``, ``images``, ``codes``, ``features`` (one
        kind, or several together with ``merge``). Rows sorted by (distance, id), as
        :meth:`HashStore.search` (``ties="id"``: the smallest ids among those tied at the k-th
        distance, exactly as numpy).

        ``merge="min"``: all the queries as one ranking, the plain search from several pictures to
        compare a category with: each item at its smallest distance to any query, the ``k`` nearest
        (a :class:`SearchResult` of one row; ``fields[0]`` their fields)."""
        if merge not in (None, "min"):
            raise expected("merge", "None or 'min'", repr(merge))
        if merge is None:
            qlib = self.items(ids=ids, images=images, codes=codes, features=features, argument="query").codes
        else:
            qlib = self.items_of("query", ids=ids, images=images, codes=codes, features=features)[0]
        res = self.store.search(self.collection, codes=qlib, k=k, ties=ties, output_fields=list(output_fields),
                                encoder=self.info.encoder)
        if merge is None:
            return res
        m_ids, m_dist, m_fields = res.merged()
        return SearchResult(m_ids[None, :k], m_dist[None, :k], None if m_fields is None else [m_fields[:k]])


__all__ = ["DEFAULT_CANDIDATES", "HashClient", "Items", "Materialization", "Members"]
