"""Materialized categories: every item's category code in a collection of its own, kept exact.

A category's collection (``<library collection>__cat_<name>``) must hold exactly the ids of its
library collection, each with the category code of its current library code. Three things keep it
so:

- :func:`reconcile` (``HashClient.materialize``) brings it up to date whatever happened: it streams
  the library collection by id and writes the rows that are missing or differ, then removes the rows
  whose id left the library. Memory is bounded by one page of each collection.
- :class:`MaterializedCategories` is what a writer of library codes (the ingestion pipeline,
  ``HashClient.delete``) uses to write the codes of every materialized category in the same pass.
- :func:`freshness` compares the row counts of the two collections: writes made around milvus-hash
  (a bare ``HashStore`` or pymilvus) that add or remove items show up there, and queries warn.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass

import numpy as np

from .category import Category
from .definitions import DEFINITIONS, DefinitionStore


class StaleCategoryWarning(UserWarning):
    """A materialized category does not cover its library collection: call ``materialize`` again."""


def category_collection(collection: str, name: str) -> str:
    """The collection holding the category codes of ``name`` over the library ``collection``."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if safe != name:  # keep names that differ only in '.' or '-' apart
        safe += "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{collection}__cat_{safe}"


@dataclass(frozen=True)
class Freshness:
    """Rows of a materialized category beside those of its library collection."""

    rows: int
    library_rows: int

    @property
    def fresh(self) -> bool:
        return self.rows == self.library_rows

    def __str__(self) -> str:
        if self.fresh:
            return f"up to date ({self.rows:,} items)"
        return f"stale: {self.rows:,} items materialized, the library collection holds {self.library_rows:,}"


def is_materialized(store, collection: str, category: Category) -> bool:
    """The category's collection exists and was written for this definition of it."""
    task = category_collection(collection, category.name)
    return store.has_collection(task) and store.describe_collection(task).encoder == category.encoder_spec()


def freshness(store, collection: str, task: str) -> Freshness:
    return Freshness(rows=store.count(task), library_rows=store.count(collection))


class _Rows:
    """One side of a merge-join: a collection's rows streamed by ascending id (``iter_records``),
    handed out by id range. Holds at most the pages that cover the range asked for."""

    def __init__(self, pages):
        self._pages, self._last, self._done = iter(pages), None, False
        self._ids, self._codes, self._sources, self._labels = np.zeros(0, np.int64), None, [], []

    def _pull(self) -> None:
        rec = next(self._pages, None)
        if rec is None or len(rec) == 0:
            self._done = True
            return
        self._ids = np.concatenate([self._ids, rec.ids])
        self._codes = rec.codes if self._codes is None else np.vstack([self._codes, rec.codes])
        self._sources += list(rec.sources)
        self._labels += list(rec.labels)
        self._last = int(rec.ids[-1])

    def through(self, last: int | None):
        """``(ids, codes, sources, labels)`` of the rows with id <= ``last`` (None: all that are left)."""
        while not self._done and (last is None or self._last is None or self._last < last):
            self._pull()
        cut = self._ids.shape[0] if last is None else int(np.searchsorted(self._ids, last, side="right"))
        taken = (self._ids[:cut], None if self._codes is None else self._codes[:cut], self._sources[:cut],
                 self._labels[:cut])
        self._ids, self._sources, self._labels = self._ids[cut:], self._sources[cut:], self._labels[cut:]
        self._codes = None if self._codes is None else self._codes[cut:]
        return taken


def reconcile(store, collection: str, category: Category, *, batch_size: int = 10_000) -> dict:
    """Make the category's collection hold exactly the category codes of the items of ``collection``.

    Creates the collection (or recreates it when it was written for another definition), then walks
    both collections by ascending id in step (a merge-join: one sequential read of each, memory
    bounded by a page of each), writes the rows that are missing or differ (code, source or label)
    and deletes the rows whose id is no longer in ``collection``. Idempotent; an interrupted run
    leaves a collection that the next run completes. Returns the counts
    ``{"collection", "written", "deleted", "rows"}``.
    """
    task, spec = category_collection(collection, category.name), category.encoder_spec()
    if store.has_collection(task) and store.describe_collection(task).encoder != spec:
        store.drop_collection(task)  # written for an older definition
    store.create_collection(task, encoder=spec)
    written = deleted = 0
    # writes below only touch ids the task side has already read past, so its paging is unaffected
    have = _Rows(store.iter_records(task, batch_size=batch_size))
    for rec in store.iter_records(collection, batch_size=batch_size):
        codes = category.transform(rec.codes)
        t_ids, t_codes, t_sources, t_labels = have.through(int(rec.ids[-1]))
        gone = t_ids[~np.isin(t_ids, rec.ids)]
        if gone.size:
            deleted += store.delete(task, ids=gone)
        stale = np.ones(len(rec), dtype=bool)
        if t_ids.size:
            pos = np.minimum(np.searchsorted(t_ids, rec.ids), t_ids.size - 1)
            for r in np.flatnonzero(t_ids[pos] == rec.ids):
                j = pos[r]
                stale[r] = not (np.array_equal(t_codes[j], codes[r]) and t_sources[j] == rec.sources[r]
                                and t_labels[j] == rec.labels[r])
        if stale.any():
            written += store.upsert(task, ids=rec.ids[stale], codes=codes[stale], encoder=spec,
                                    sources=[s for s, k in zip(rec.sources, stale) if k],
                                    labels=[v for v, k in zip(rec.labels, stale) if k])
    rest = have.through(None)[0]
    if rest.size:
        deleted += store.delete(task, ids=rest)
    store.flush(task)
    return {"collection": task, "written": written, "deleted": deleted, "rows": store.count(task)}


class MaterializedCategories:
    """The materialized categories of one library collection, for writers of its library codes.

    ``categories`` are the current definitions (:class:`Category`) whose collection exists and was
    written for that definition; :meth:`write` and :meth:`delete` keep them in step with the library.
    """

    def __init__(self, store, collection: str, categories: list[Category]):
        self.store, self.collection = store, collection
        self.categories = [c for c in categories if is_materialized(store, collection, c)]

    def __len__(self) -> int:
        return len(self.categories)

    def write(self, *, ids, codes, sources=None, labels=None) -> None:
        """Upsert the category codes of these library codes (``uint8 (n, L // 8)``) into each."""
        for cat in self.categories:
            self.store.upsert(category_collection(self.collection, cat.name), ids=ids, codes=cat.transform(codes),
                              encoder=cat.encoder_spec(), sources=sources, labels=labels)

    def delete(self, *, ids) -> None:
        for cat in self.categories:
            self.store.delete(category_collection(self.collection, cat.name), ids=ids)

    def flush(self) -> None:
        for cat in self.categories:
            self.store.flush(category_collection(self.collection, cat.name))


def materialized_categories(store, collection: str, *, definitions: str = DEFINITIONS) -> MaterializedCategories:
    """The materialized categories defined on the library ``collection`` (none when no category was
    ever defined in this Milvus: nothing is created)."""
    if not store.has_collection(definitions):
        return MaterializedCategories(store, collection, [])
    stored = DefinitionStore(store, collection, definitions=definitions)
    fingerprint = store.describe_collection(collection).encoder.fingerprint
    categories = []
    for name in stored.list():
        category = Category.from_stored(*stored.load(name))
        if category.library_fingerprint == fingerprint:
            categories.append(category)
    return MaterializedCategories(store, collection, categories)


def warn_if_stale(state: Freshness, name: str) -> None:
    if not state.fresh:
        warnings.warn(f"category {name!r} is {state}; its answers miss the difference: run "
                      f"materialize({name!r}) (milvus-hash category materialize {name})", StaleCategoryWarning,
                      stacklevel=3)


__all__ = ["Freshness", "MaterializedCategories", "StaleCategoryWarning", "category_collection", "freshness",
           "is_materialized", "materialized_categories", "reconcile", "warn_if_stale"]
