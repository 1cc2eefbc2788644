"""The ingestion pipeline: source -> decode (DataLoader workers) -> backbone features -> encoder ->
packed codes -> Milvus, in batches, with bounded memory.

Ids come from the items' keys (:func:`ingestion.sources.item_id`: the source's name and the path)
or, with ``ids="content"``, from the image files' SHA-256; rows are written with upsert, so a rerun
after a crash or Ctrl-C writes no duplicates. Every row records its image's SHA-256 and where it
came from (``content_sha256`` and ``origin`` in its metadata), so a run knows, before any CNN work,
which images are new, which are unchanged (skipped), and which replace a stored row: the same file
changed, or, for a key that holds a different image from another place (two folders of the same
name), a conflict, which is listed and not written. ``resume=True`` skips stored ids without
reading their files. Images that cannot be read are counted and listed, never fatal.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from milvus_hash.categories.materialized import materialized_categories
from milvus_hash.errors import MilvusHashError, MilvusUnavailableError, expected
from milvus_hash.features import Backbone, backbone_record
from milvus_hash.store.bulk_stage import open_stage

from .features_folder import FeaturesWriter, stored_ids
from .sources import Item, _text, content_id, select_shard


@dataclass
class Report:
    """What a run did. ``written`` = ``new`` + ``replaced`` rows written; ``unchanged``: stored
    already with the same content (or, with resume, stored at all), not read again; ``duplicates``:
    content ids met twice in one run; ``failed`` lists ``(key, reason)`` of unreadable images;
    ``conflicts`` lists ``(key, reason)`` of images whose key holds a different image from another
    place (not written)."""

    total: int = 0
    unchanged: int = 0
    written: int = 0
    new: int = 0
    replaced: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    categories: list[str] = field(default_factory=list)  # materialized categories kept up to date
    reused: int = 0  # of the written, features read from a features folder (no CNN)

    @property
    def skipped(self) -> int:
        """Images not written because they are stored already (unchanged or duplicates)."""
        return self.unchanged + self.duplicates

    @property
    def rate(self) -> float:
        """Images processed per second (written + failed)."""
        done = self.written + len(self.failed)
        return done / self.seconds if self.seconds > 0 else 0.0

    def summary(self, what: str = "ingested") -> str:
        return (f"{what} {self.written:,} (new {self.new:,}, replaced {self.replaced:,}), unchanged "
                f"{self.unchanged:,}" + (f", duplicates {self.duplicates:,}" if self.duplicates else "")
                + (f", conflicts {len(self.conflicts):,}" if self.conflicts else "")
                + f", failed {len(self.failed):,} of {self.total:,} in {self.seconds:.1f} s ({self.rate:,.1f} images/s)"
                + (f"; features of {self.reused:,} read from the features folder" if self.reused else "")
                + (f"; kept {len(self.categories)} materialized categor{'y' if len(self.categories) == 1 else 'ies'} "
                   f"up to date ({', '.join(self.categories)})" if self.categories else "")
                + (" - interrupted, rerun to finish" if self.interrupted else ""))

    def to_dict(self) -> dict:
        return {"total": self.total, "written": self.written, "new": self.new, "replaced": self.replaced,
                "unchanged": self.unchanged, "duplicates": self.duplicates, "skipped": self.skipped,
                "failed": len(self.failed), "failures": [{"key": k, "reason": r} for k, r in self.failed],
                "conflicts": [{"key": k, "reason": r} for k, r in self.conflicts], "seconds": round(self.seconds, 3),
                "images_per_second": round(self.rate, 2), "interrupted": self.interrupted,
                "categories": list(self.categories), "reused": self.reused}


class _Images(Dataset):
    def __init__(self, source, items: list[Item], transform):
        self.source, self.items, self.transform = source, items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        try:
            return i, self.transform(self.source.open(self.items[i])), ""
        except Exception as exc:  # noqa: BLE001 - any unreadable image is reported, not fatal
            return i, None, f"{type(exc).__name__}: {exc}"


def _collate(batch):
    ok = [(i, t) for i, t, _ in batch if t is not None]
    failed = [(i, err) for i, t, err in batch if t is None]
    idx = [i for i, _ in ok]
    tensors = torch.stack([t for _, t in ok]) if ok else None
    return idx, tensors, failed


def stream_features(source, items: list[Item], backbone: Backbone, *, batch_size: int = 64, workers: int = 2):
    """Yield ``(items, features float32 (b, dim), failures [(item, reason)])`` per batch, in order."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise expected("batch_size", "a positive int", repr(batch_size))
    if not isinstance(workers, int) or workers < 0:
        raise expected("workers", "an int >= 0 (0: decode in this process)", repr(workers))
    loader = DataLoader(_Images(source, items, backbone.transform), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_collate, pin_memory=backbone.device.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    for idx, tensors, failed in loader:
        feats = backbone(tensors).cpu().numpy() if tensors is not None else np.zeros((0, backbone.dim), np.float32)
        yield [items[i] for i in idx], feats, [(items[i], err) for i, err in failed]


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def extract(source, *, backbone: Backbone, out, batch_size: int = 64, workers: int = 2,
            shard: tuple[int, int] = (0, 1), resume: bool = True, part_rows: int = 4096,
            progress: bool = True) -> Report:
    """Write the features of ``source`` to the features folder ``out`` (see :mod:`.features_folder`)."""
    t0 = time.perf_counter()
    writer = FeaturesWriter(out, backbone_record(backbone))
    items = select_shard(source.items(), shard)
    report = Report(total=len(items))
    if resume:
        have = stored_ids(out)
        todo = [it for it in items if it.id not in have]
        report.unchanged = len(items) - len(todo)
        items = todo
    buf: list = []
    bar = _progress(len(items), "features", progress)

    def flush():
        if buf:
            its = [it for b in buf for it in b[0]]
            writer.write([it.id for it in its], np.concatenate([b[1] for b in buf]), [it.key for it in its],
                         [it.label for it in its], sha256=_digests(source, its))
            buf.clear()

    try:
        rows = 0
        for its, feats, failed in stream_features(source, items, backbone, batch_size=batch_size, workers=workers):
            report.failed += [(it.key, err) for it, err in failed]
            if its:
                buf.append((its, feats))
            rows += len(its)
            report.written += len(its)
            report.new += len(its)
            if rows >= part_rows:
                flush()
                rows = 0
            bar.update(len(its) + len(failed))
        flush()
    except KeyboardInterrupt:
        flush()
        report.interrupted = True
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    return report


def _digests(source, items: list[Item]) -> list[str] | None:
    """The SHA-256 of each item's file (what ``ingest --features`` matches on), None for a source
    that cannot give its bytes; a file unreadable now gets an empty digest (never matched)."""
    if not hasattr(source, "content"):
        return None
    out = []
    for it in items:
        try:
            out.append(hashlib.sha256(source.content(it)).hexdigest())
        except (OSError, ValueError):
            out.append("")
    return out


def _reused_batches(items: list[Item], index, batch_size: int):
    """Yield ``(items, features, [])`` batches read from a features index, like :func:`stream_features`."""
    for s in range(0, len(items), batch_size):
        its = items[s:s + batch_size]
        yield its, index.features([it.key for it in its]), []


class _Writer:
    """Runs ``fn(batch)`` in one background thread, one call at a time; errors surface on the next
    ``submit`` or ``wait``."""

    def __init__(self, fn):
        from concurrent.futures import ThreadPoolExecutor

        self.fn, self.pool, self.future = fn, ThreadPoolExecutor(1, thread_name_prefix="milvus-hash-writer"), None

    def wait(self) -> None:
        future, self.future = self.future, None
        if future is not None:
            future.result()

    def submit(self, batch: list) -> None:
        self.wait()
        if batch:
            self.future = self.pool.submit(self.fn, batch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(wait=True)


def _triage(source, store, collection: str, items: list[Item], *, resume: bool, ids: str,
            report: Report) -> tuple[list[Item], dict[int, dict], set[int]]:
    """The items to encode, the metadata each row gets (the item's, its ``content_sha256``,
    ``origin`` and the source's ``root`` folder) and the ids among them that replace a stored row; counts the unchanged, duplicates, conflicts and unreadable files in ``report``.
    Files are read (hashed) but not decoded: no CNN work for what is not written."""
    if ids not in ("path", "content"):
        raise expected("ids", "'path' or 'content'", repr(ids))
    if ids == "path":  # two files with one key (a name that is not UTF-8 beside its \\xNN spelling): keep the first
        first: dict[int, Item] = {}
        kept = []
        for it in items:
            if it.id in first:
                other = _text(str(first[it.id].ref))
                report.conflicts.append((it.key, f"its key is also the key of {other} (a file name that is not "
                                                 "UTF-8 is stored with its bytes written \\xNN): rename one of them"))
                continue
            first[it.id] = it
            kept.append(it)
        items = kept
    if resume and ids == "path" and items:  # trust the stored ids: no file is read for them
        missing = set(store.get(collection, ids=np.array([it.id for it in items], np.int64), with_codes=False)
                      .missing.tolist())
        report.unchanged += sum(1 for it in items if it.id not in missing)
        items = [it for it in items if it.id in missing]
    if not hasattr(source, "content"):  # a source that cannot give its bytes: every item is written
        if ids == "content":
            raise expected("ids", "'path' for a source without a content() method", repr(ids))
        return items, {it.id: dict(it.metadata) for it in items}, set()
    hashed, digests, seen = [], {}, set()
    for it in items:
        try:
            digest = hashlib.sha256(source.content(it)).hexdigest()
        except (OSError, ValueError) as exc:  # unreadable: listed with its reason, as when decoding
            report.failed.append((it.key, f"{type(exc).__name__}: {exc}"))
            continue
        if ids == "content":
            it = replace(it, uid=content_id(digest))
            if it.id in seen:  # the same image twice in this run
                report.duplicates += 1
                continue
            seen.add(it.id)
        hashed.append(it)
        digests[it.id] = digest
    stored: dict[int, dict] = {}
    for s in range(0, len(hashed), 4096):
        rec = store.get(collection, ids=np.array([it.id for it in hashed[s:s + 4096]], np.int64), with_codes=False)
        stored.update(zip(rec.ids.tolist(), rec.metadata))
    todo, meta, replacing = [], {}, set()
    # the folder the source was read from: the web page serves pictures from inside it only
    root = {"root": _text(str(Path(source.root).absolute()))} if getattr(source, "root", None) is not None else {}
    for it in hashed:
        origin = source.origin(it)
        old = stored.get(it.id)
        row = {**it.metadata, "content_sha256": digests[it.id], "origin": origin, **root}
        if old is not None:
            if old.get("content_sha256") == digests[it.id]:
                report.unchanged += 1
                continue
            if ids == "path" and old.get("origin") not in (None, origin):
                report.conflicts.append((it.key, f"its id already holds a different image, from {old['origin']}; "
                                                 "give this source another name (--source-name) to keep both"))
                continue
            replacing.add(it.id)  # the same place, new content (or a row without a recorded hash)
        todo.append(it)
        meta[it.id] = row
    return todo, meta, replacing


def ingest(source, *, store, collection: str, encoder, backbone: Backbone | None = None, batch_size: int = 64,
           workers: int = 2, shard: tuple[int, int] = (0, 1), resume: bool = False, ids: str = "path",
           features_out=None, features_in=None, write_rows: int = 2048, progress: bool = True,
           index_type: str = "BIN_FLAT", index_params: dict | None = None, bulk_stage=None,
           bulk_rows: int = 1_000_000) -> Report:
    """Encode every image of ``source`` and upsert its code into ``collection`` (created if missing).

    Args:
        source: an image source (:mod:`.sources`).
        store: a :class:`milvus_hash.store.HashStore`.
        encoder: a fitted encoder on the backbone's features (``transform`` and ``encoder_spec``), or
            a fitted :class:`milvus_hash.encoders.uth.UTHEncoder` (its own backbone: leave ``backbone`` out).
        backbone: the feature extractor (:func:`.backbones.get_backbone`).
        shard: ``(I, N)``: only the items whose key's id is I modulo N.
        resume: skip the ids the collection already holds without reading their files.
        ids: ``"path"`` (from the key: the source's name and the path) or ``"content"`` (from the
            image's SHA-256: the same image is stored once, whatever its path).
        features_out: also keep the float features in this features folder.
        features_in: a features folder of the same backbone (``milvus-hash features``): an image
            whose key it holds, for the same file content (SHA-256), takes its features from there
            instead of the CNN.
        write_rows: rows per write to Milvus.
        index_type, index_params: the Hamming index of a new collection
            (:meth:`milvus_hash.store.HashStore.create_collection`); an existing one keeps its own.
        bulk_stage: write the codes through Milvus's bulk import (a server only,
            :meth:`milvus_hash.store.HashStore.bulk_import`), staging NumPy files where the server
            reads them (a directory, or ``s3://BUCKET/PREFIX`` / a
            :class:`milvus_hash.store.bulk_stage.BucketStage` for a server on MinIO / S3), one import
            per ``bulk_rows`` rows; rows whose id is stored are upserted as usual.
    """
    t0 = time.perf_counter()
    if hasattr(encoder, "as_pipeline"):
        if backbone is not None:
            raise expected("backbone", "None with a UTH encoder (the network is its own backbone)", backbone)
        backbone, encoder = encoder.as_pipeline()
    elif backbone is None:
        raise expected("backbone", "the feature extractor the encoder was fitted on", None)
    n_features = getattr(encoder, "n_features_in_", None)
    if n_features is not None and n_features != backbone.dim:
        raise expected("encoder", f"an encoder of {backbone.dim}-D {backbone.name!r} features",
                       f"one fitted on {n_features}-D features")
    index = None
    if features_in is not None:  # checked before anything is written
        from .features_folder import FeaturesIndex

        index = FeaturesIndex(features_in, backbone_record(backbone))
    spec = encoder.encoder_spec()
    if bulk_stage is not None:  # checked before any work: Milvus Lite has no import
        if store.embedded:
            raise expected("bulk_stage", "None on Milvus Lite (it has no bulk import: leave out --bulk)",
                           repr(str(bulk_stage)))
        if isinstance(bulk_rows, bool) or not isinstance(bulk_rows, int) or bulk_rows < 1:
            raise expected("bulk_rows", "a positive int", repr(bulk_rows))
        bulk_stage = open_stage(bulk_stage).check()  # a bucket that is missing or refused: before any work
    store.create_collection(collection, encoder=spec, index_type=index_type, index_params=index_params)
    # library codes: the collection's materialized categories get their codes in the same pass
    categories = materialized_categories(store, collection) if spec.kind == "ugh" else None
    items = select_shard(source.items(), shard)
    report = Report(total=len(items), categories=[c.name for c in categories.categories] if categories else [])
    items, meta, replacing = _triage(source, store, collection, items, resume=resume, ids=ids, report=report)
    writer = FeaturesWriter(features_out, backbone_record(backbone)) if features_out is not None else None
    reuse: list[Item] = []
    if index is not None:
        reuse = [it for it in items if index.has(it.key, meta[it.id].get("content_sha256"))]
    reused_ids = {it.id for it in reuse}
    if reused_ids:
        items = [it for it in items if it.id not in reused_ids]
    bar = _progress(len(reuse) + len(items), f"ingest -> {collection}", progress)

    staged: list = []  # bulk mode: (items, codes) not imported yet

    def count(its):
        report.written += len(its)
        report.reused += sum(1 for it in its if it.id in reused_ids)
        replaced = sum(1 for it in its if it.id in replacing)
        report.replaced += replaced
        report.new += len(its) - replaced

    def import_staged():
        if not staged:
            return
        its = [it for b in staged for it in b[0]]
        codes = np.concatenate([b[1] for b in staged])
        staged.clear()

        def shown(percent, rows):
            bar.set_postfix_str(f"import {percent or 0}%: {rows:,} rows", refresh=True)

        store.bulk_import(collection, ids=np.array([it.id for it in its], np.int64), codes=codes, encoder=spec,
                          stage=bulk_stage, sources=[it.key for it in its], labels=[it.label for it in its],
                          metadata=[meta[it.id] for it in its], progress=shown if progress else None)
        count(its)

    def write(batch):
        its = [it for b in batch for it in b[0]]
        feats = np.concatenate([b[1] for b in batch])
        codes = encoder.transform(feats)
        ids = np.array([it.id for it in its], np.int64)
        if bulk_stage is None:
            store.upsert(collection, ids=ids, codes=codes, encoder=spec, sources=[it.key for it in its],
                         labels=[it.label for it in its], metadata=[meta[it.id] for it in its])
        if categories:
            categories.write(ids=ids, codes=codes, sources=[it.key for it in its], labels=[it.label for it in its])
        if writer is not None:
            writer.write(ids, feats, [it.key for it in its], [it.label for it in its],
                         sha256=[meta[it.id].get("content_sha256", "") for it in its])
        if bulk_stage is None:
            count(its)
            return
        staged.append((its, codes))
        if sum(len(b[0]) for b in staged) >= bulk_rows:
            import_staged()

    # encoding and writing run in one background thread, overlapping the next batches' decoding and
    # CNN (numpy, torch and gRPC release the GIL); at most one write is in flight, so memory stays bounded
    failure: MilvusHashError | None = None
    with _Writer(write) as background:
        pending: list = []
        try:
            rows = 0
            batches = itertools.chain(
                _reused_batches(reuse, index, batch_size) if reuse else (),
                stream_features(source, items, backbone, batch_size=batch_size, workers=workers) if items else ())
            for its, feats, failed in batches:
                report.failed += [(it.key, err) for it, err in failed]
                if its:
                    pending.append((its, feats))
                rows += len(its)
                if rows >= write_rows:
                    background.submit(pending)
                    pending, rows = [], 0
                bar.update(len(its) + len(failed))
            background.submit(pending)
            background.wait()
            import_staged()
        except KeyboardInterrupt:  # keep what was computed; the rest is for --resume
            background.wait()
            background.submit(pending)
            background.wait()
            import_staged()
            report.interrupted = True
        except MilvusHashError as exc:
            failure = exc
        finally:
            bar.close()
            try:
                background.wait()
            except MilvusHashError as exc:
                failure = failure or exc
            # rows written are made durable even after a failed write; a flush that fails after a
            # failed write does not hide which write failed
            flush_only = False
            try:
                # a Milvus that did not answer a write would make the flush wait out the timeout
                # again (the report would come after twice the timeout): it flushes on its own
                if not isinstance(failure, MilvusUnavailableError):
                    store.flush(collection)
                    if categories:
                        categories.flush()
            except MilvusHashError as exc:
                flush_only = failure is None
                failure = failure or exc
            report.seconds = time.perf_counter() - t0
    if failure is not None and flush_only and not report.interrupted:  # every write went through
        failure.args = (f"{failure}; every image of this run was written ({report.written:,} of {report.total:,}; "
                        "the rest unchanged or unreadable), but the final flush failed: rerun the same command "
                        "to make sure they are durable (stored images are skipped)",) + failure.args[1:]
        raise failure
    if failure is not None:  # one line: what failed, and what is stored
        failure.args = (f"{failure}; {report.written:,} of this run's {report.total:,} images are stored "
                        "(rerun the same command to write the rest: stored images are skipped)",) + failure.args[1:]
        raise failure
    return report


__all__ = ["Report", "extract", "ingest", "stream_features"]
