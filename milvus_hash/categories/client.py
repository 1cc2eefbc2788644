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

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows(self) -> list[dict]:
        """One dict per item in rank order: ``rank``, ``id``, ``source``, ``label``, ``probability``, ``score``."""
        return [{"rank": r + 1, "id": int(i), "source": s, "label": lab, "probability": round(float(p), 6),
                 "score": round(float(sc), 4)}
                for r, (i, s, lab, p, sc) in enumerate(zip(self.ids.tolist(), self.sources, self.labels,
                                                            self.probabilities, self.scores))]


class _TopScores:
    """The ``k`` best (score desc, id asc) of batches of records, in bounded memory."""

    def __init__(self, k: int):
        self.k = k
        self.ids = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float32)
        self.sources: list[str] = []
        self.labels: list[str] = []

    def add(self, rec: Records, scores: np.ndarray) -> None:
        ids = np.concatenate([self.ids, rec.ids])
        sc = np.concatenate([self.scores, scores.astype(np.float32)])
        sources, labels = self.sources + list(rec.sources), self.labels + list(rec.labels)
        order = np.lexsort((ids, -sc))[:self.k]
        self.ids, self.scores = ids[order], sc[order]
        self.sources, self.labels = [sources[j] for j in order], [labels[j] for j in order]

    def result(self):
        return self.ids, self.scores, self.sources, self.labels


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

            library = UGHLibrary.load(library)
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
            from ..features import get_backbone, record_arguments

            record = getattr(library, "features_", None)
            if not record:
                raise expected("backbone", "a backbone (the library records none)", None)
            self._backbone = get_backbone(**record_arguments(record))
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
            ids, images, codes, features: the examples, by exactly one keyword (see :mod:`.items`):
                stored ids, images (paths, PIL images or uint8 arrays, through the library's
                backbone), library codes or feature vectors.
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
        given = self.items(ids=ids, images=images, codes=codes, features=features)
        codes = given.codes
        if labels is None:
            y = [name] * len(codes)
        else:
            y = [str(v) for v in labels]
            if len(y) != len(codes):
                raise expected("labels", f"{len(codes)} labels, one per example", f"{len(y)}")
        if negatives is not None:
            neg = self.items(ids=negatives, argument="negatives").codes
            codes, y = np.vstack([codes, neg]), y + [BACKGROUND] * len(neg)
        if len(set(y) - {BACKGROUND}) == 1 and BACKGROUND not in y and len(self.background()) == 0:
            raise expected("background", "a collection with codes to draw negatives from (or negatives=)",
                           "an empty collection")
        cat = learn_category(name, codes, y, background=self.background(), n_bits=n_bits, method=method,
                             library=self.info.encoder, example_ids=[] if given.ids is None else given.ids.tolist(),
                             example_sources=given.describe(), seed=self.seed, **params)
        self.definitions.save(name, cat.describe(), cat.arrays, old=old)
        self._forget(name)
        self._cache[name], self._verified[name] = cat, time.monotonic()
        return cat

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
                candidates: int | None = None, exhaustive: bool = False) -> "Members":
        """The store's items ranked by membership of the category (of class ``label`` of a task), best first.

        The score is the category's membership score (:mod:`.membership`: log-odds of the library
        bits plus nearness to a positive), turned into a calibrated probability. By default it is computed for the ``candidates`` nearest items
        (full library Hamming distance) of each positive (default ``3 k``, at least 100), found by
        one Milvus search with the positives as queries (:meth:`HashStore.neighbours`: the codes come
        with the hits on a server, read by id after it on Milvus Lite): memory is bounded by
        ``positives x candidates`` codes whatever the collection's size. (Measured on 60,000
        Fashion-MNIST codes, 5 positives, k = 100: 300 candidates a positive find the exhaustive
        ranking's whole top 100, 100 find 93% of it.) ``exhaustive=True`` scores every item, streamed
        in batches (bounded memory too, but it reads the whole collection: for evaluation).

        Returns :class:`Members` (at most ``k``, with probability ``>= min_probability``), ties by id.
        """
        cat = self.category(name)
        c = cat.class_index(label)
        k = _positive_int(k, "k")
        if not isinstance(min_probability, (int, float)) or not 0.0 <= float(min_probability) <= 1.0:
            raise expected("min_probability", "a number from 0 to 1", repr(min_probability))
        best, pool = _TopScores(k), 0
        if exhaustive:
            for rec in self.store.iter_records(self.collection):
                best.add(rec, cat.member_scores(rec.codes, c))
                pool += len(rec.ids)
        else:
            candidates = min(max(3 * k, 100), MAX_TOPK) if candidates is None else \
                _positive_int(candidates, "candidates", MAX_TOPK)
            rec = self.store.neighbours(self.collection, codes=cat.anchors(c), k=candidates)
            best.add(rec, cat.member_scores(rec.codes, c))
            pool = len(rec)
        ids, sc, sources, labels = best.result()
        from .membership import class_calibration, probabilities

        prob = probabilities(class_calibration(cat.arrays, c), sc)
        keep = prob >= float(min_probability)
        return Members(ids[keep], sc[keep], prob[keep], [s for s, t in zip(sources, keep) if t],
                       [v for v, t in zip(labels, keep) if t], candidates=pool)

    def score(self, name: str, *, ids=None, images=None, codes=None, features=None, label=None) -> np.ndarray:
        """Calibrated membership probabilities ``float64 (n,)`` for ``label`` of the items given by
        exactly one of ``ids``, ``images``, ``codes``, ``features``."""
        cat = self.category(name)
        c = cat.class_index(label)
        qlib = self.items(ids=ids, images=images, codes=codes, features=features, argument="query").codes
        return cat.probabilities(qlib)[:, c]

    def similar(self, *, ids=None, images=None, codes=None, features=None, k: int = 10,
                output_fields=("source", "label"), ties: str = "any") -> SearchResult:
        """A plain similarity search: the ``k`` items nearest to each query by full library-code
        Hamming distance (no category), queries by exactly one of ``ids``, ``images``, ``codes``,
        ``features``. Rows sorted by (distance, id), as :meth:`HashStore.search` (``ties="id"``: the
        smallest ids among those tied at the k-th distance, exactly as numpy)."""
        qlib = self.items(ids=ids, images=images, codes=codes, features=features, argument="query").codes
        return self.store.search(self.collection, codes=qlib, k=k, ties=ties, output_fields=list(output_fields),
                                 encoder=self.info.encoder)


__all__ = ["DEFAULT_CANDIDATES", "HashClient", "Items", "Materialization", "Members"]
