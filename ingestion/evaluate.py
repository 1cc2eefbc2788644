"""``milvus-hash eval``'s work: a labeled source (and query source) -> features -> the papers'
protocols with their baselines -> report.md, plots and results.json.

The protocols, scorers, plots and report are in :mod:`milvus_hash.eval`; this module reads the
images, extracts features with a backbone, hyper-trains a library when none is given, and puts the
pieces together.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from milvus_hash.errors import expected


@dataclass
class EvalSettings:
    protocols: tuple[str, ...] = ("fewshot", "unsupervised")
    shots: tuple[int, ...] = (1, 5, 10)
    lengths: tuple[int, ...] = (16, 32, 64)
    n_bits: int = 16
    length_shots: int = 10
    draws: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    top: int = 1000
    n_queries: int = 1000
    rounds: int = 200
    classes: tuple[str, ...] | None = None
    seed: int = 0
    batch_size: int = 256
    workers: int = 2
    uth: tuple[str, ...] = field(default_factory=tuple)
    feedback_rounds: int = 3  # the feedback protocol: rounds of marks, items marked a round
    per_round: int = 20


def _labeled(source, items, what: str):
    items = [it for it in items if it.label is not None]
    if not items:
        raise expected(what, "a labeled source (sub-folders, a label column, or an IDX labels file)",
                       f"{source!r} without labels")
    return items


def _features(source, items, backbone, settings, log):
    from .pipeline import stream_features

    feats, keep = [], []
    t0 = time.perf_counter()
    for its, f, _failed in stream_features(source, items, backbone, batch_size=settings.batch_size,
                                           workers=settings.workers):
        feats.append(f)
        keep += its
    seconds = time.perf_counter() - t0
    X = np.concatenate(feats) if feats else np.zeros((0, backbone.dim), np.float32)
    if len(keep) < len(items):
        log(f"{len(items) - len(keep)} unreadable images skipped")
    return X, keep, seconds


class FeatureSource:
    """A features folder (``milvus-hash features``) as a labeled source without images: items in the
    natural order of their keys (``file#2`` before ``file#10``), ``features`` their rows."""

    has_images = False

    def __init__(self, directory: str | Path):
        import re

        from .features_folder import read_features
        from .sources import Item

        _, X, keys, labels, meta = read_features(directory)
        order = sorted(range(len(keys)), key=lambda i: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", keys[i])])
        self.features = X[order]
        self.backbone = meta["backbone"]
        self._items = [Item(keys[i], labels[i], {}, j) for j, i in enumerate(order)]
        self.directory = Path(directory)

    def items(self):
        return list(self._items)

    def open(self, item):
        raise expected("source", "images", f"features only in {self.directory}")

    def __repr__(self) -> str:
        return f"FeatureSource({str(self.directory)!r})"


def is_features_folder(path) -> bool:
    return (Path(path) / "meta.json").is_file()


def run_eval(source, *, out: str | Path, backbone, settings: EvalSettings, query_source=None, library=None,
             store=None, through_milvus: bool = False, log: Callable[[str], None] = print) -> Path:
    """Run the protocols and write the report into ``out``; returns the path of ``report.md``."""
    from milvus_hash.encoders.itq import ITQHasher
    from milvus_hash.encoders.lsh import LSHHasher
    from milvus_hash.encoders.ugh.library import UGHLibrary
    from milvus_hash.eval import pr_curve
    from milvus_hash.eval.plots import plot_bit_montage, plot_lines, plot_pr_curves
    from milvus_hash.eval.protocols import FewShot, cosine_map, draw_support, unsupervised_protocol
    from milvus_hash.eval.report import write_report
    from milvus_hash.eval.scoring import MilvusScorer, NumpyScorer
    from milvus_hash.eval.speed import peak_rss_mib, search_speed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(settings.protocols) - {"fewshot", "single", "unsupervised", "feedback"}
    if not settings.protocols or unknown:
        raise expected("protocols", "fewshot, single, unsupervised and/or feedback", sorted(unknown) or "none")
    t_start = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    db_items = _labeled(source, source.items(), "source")
    if settings.classes:
        db_items = [it for it in db_items if it.label in settings.classes]
    if query_source is not None:
        q_pool = _labeled(query_source, query_source.items(), "query_source")
        if settings.classes:
            q_pool = [it for it in q_pool if it.label in settings.classes]
        q_src = query_source
    else:  # hold out queries from the source: they leave the database
        q_src = source
        pick = set(rng.choice(len(db_items), min(settings.n_queries, len(db_items) // 5), replace=False).tolist())
        q_pool = [it for i, it in enumerate(db_items) if i in pick]
        db_items = [it for i, it in enumerate(db_items) if i not in pick]
    if len(q_pool) > settings.n_queries:
        q_pool = [q_pool[i] for i in np.sort(rng.choice(len(q_pool), settings.n_queries, replace=False))]
    if len(db_items) < 10 or not q_pool:
        raise expected("source", "at least 10 database images and one query", f"{len(db_items)} and {len(q_pool)}")

    images = getattr(source, "has_images", True) and getattr(q_src, "has_images", True)
    if not images:
        if settings.uth:
            raise expected("uth", "an image source to encode (a UTH network reads images)", "a features folder")
        Xdb = source.features[[it.ref for it in db_items]]
        Xq = q_src.features[[it.ref for it in q_pool]]
        feat_s = 0.0
        log(f"{len(db_items):,} database and {len(q_pool):,} query features from features folders")
    else:
        log(f"features of {len(db_items):,} database and {len(q_pool):,} query images ({backbone.name})")
        Xdb, db_items, feat_s = _features(source, db_items, backbone, settings, log)
        Xq, q_pool, _ = _features(q_src, q_pool, backbone, settings, log)
    labels = sorted({it.label for it in db_items})
    lab_index = {lab: i for i, lab in enumerate(labels)}
    ydb = np.array([lab_index[it.label] for it in db_items])
    yq = np.array([lab_index.get(it.label, -1) for it in q_pool])
    speed = {"feature extraction (images/s)": len(db_items) / max(feat_s, 1e-9)} if images else {}

    if library is None:
        log(f"hyper-training a UGH library of {settings.rounds * 10:,} bits on the database features (no labels)")
        t0 = time.perf_counter()
        n = len(Xdb)
        n_cat = min(30, max(2, n // 40))  # the paper's C = 30, T = 6, F = 50, scaled down for small sets
        library = UGHLibrary(n_rounds=settings.rounds, n_subset=min(20_000, n), n_categories=n_cat,
                             n_expand=min(50, max(2, min(20_000, n) // n_cat - 7)),
                             n_jobs=(os.cpu_count() or 1) if min(20_000, n) * settings.rounds >= 100_000 else 1,
                             random_state=settings.seed, progress=False).fit(Xdb)
        speed[f"UGH hyper-training, {library.n_bits_:,} bits (s)"] = time.perf_counter() - t0
    elif library.n_features_in_ != Xdb.shape[1]:
        raise expected("library", f"a library of {Xdb.shape[1]}-D {backbone.name} features",
                       f"one of {library.n_features_in_}-D features")
    t0 = time.perf_counter()
    Ldb = library.transform(Xdb)
    enc_s = time.perf_counter() - t0
    Lq = library.transform(Xq)
    speed[f"UGH library encoding, {library.n_bits_:,} bits (codes/s)"] = len(Xdb) / max(enc_s, 1e-9)
    if images:
        speed["images/s end to end (features + library codes)"] = len(Xdb) / (feat_s + enc_s)

    scorer = MilvusScorer(store) if through_milvus else NumpyScorer()
    setup = {"database": f"{len(db_items):,} images of {source!r}" + (f", classes {list(settings.classes)}"
                                                                       if settings.classes else ""),
             "queries": f"{len(q_pool):,} images of {q_src!r}" + ("" if query_source else " (held out)"),
             "backbone": (f"{backbone.name} ({backbone.dim}-D, weights {backbone.weights})" if images else
                          f"features folders ({Xdb.shape[1]}-D)"),
             "library": f"UGH, {library.n_bits_:,} bits ({library.encoder_spec()})",
             "scoring": "through Milvus (" + store.uri + ")" if through_milvus else "numpy",
             "command": "milvus-hash eval"}
    figures, fewshot_res, unsup_res, single_res, feedback_res = [], None, None, None, None
    log_fn = (lambda m: log(m.strip())) if log else None

    if "fewshot" in settings.protocols:
        log(f"few-shot protocol: shots {', '.join(map(str, settings.shots))}, {settings.draws} draw(s)")
        min_class = int(np.bincount(ydb).min())
        shots = tuple(n for n in settings.shots if n <= min_class)
        if len(shots) < len(settings.shots):
            log(f"shots above {min_class} (the smallest class) left out")
        fs = FewShot(Xdb, ydb, Xq, yq, library, scorer=scorer, seed=settings.seed, library_codes=(Ldb, Lq))
        fewshot_res = fs.protocol(shots=shots, lengths=settings.lengths, n_bits=settings.n_bits,
                                  length_shots=min(settings.length_shots, min_class), draws=settings.draws, log=log_fn)
        if len(shots) > 1:
            figures.append(("mAP against labeled examples per class (few-shot)",
                            plot_lines(fewshot_res["by_shots"], out / "fewshot_map_vs_shots.png",
                                       title=f"Few-shot mAP, {settings.n_bits} bits", xlabel="labeled examples per class",
                                       log_x=True).name))
        if len(settings.lengths) > 1:
            figures.append(("mAP against code length (few-shot)",
                            plot_lines(fewshot_res["by_length"], out / "fewshot_map_vs_length.png",
                                       title=f"Few-shot mAP, n = {fewshot_res['length_shots']} per class",
                                       xlabel="code length (bits)", log_x=True).name))
        lab = draw_support(ydb, fewshot_res["length_shots"], 0)
        curves = {}
        for name in fs.methods:
            codes = fs.codes(name, settings.n_bits, lab, 0)
            if codes is not None:
                curves[name] = pr_curve(codes[0], yq, codes[1], ydb)
        figures.append((f"Precision-recall over Hamming radius (few-shot, n = {fewshot_res['length_shots']}, "
                        f"{settings.n_bits} bits, draw 0)",
                        plot_pr_curves(curves, out / "fewshot_pr_curves.png",
                                       title=f"Few-shot precision-recall, {settings.n_bits} bits").name))
        if images:  # the UGH paper's Fig. 7: the bits the L1 selection picks for this task, and their images
            figures.append(_montage(fs, library, Xdb, ydb, lab, source, db_items, settings, out, plot_bit_montage))

    if "single" in settings.protocols:
        log(f"single-category protocol: shots {', '.join(map(str, settings.shots))}, {settings.draws} draw(s)")
        from milvus_hash.eval.single_category import single_category_protocol

        counts = np.bincount(yq[yq >= 0])
        min_q = int(counts[counts > 0].min())
        shots = tuple(n for n in settings.shots if n <= min_q)
        if len(shots) < len(settings.shots):
            log(f"single category: shots above {min_q} (the fewest queries of a class) left out")
        single_res = single_category_protocol(Xdb, ydb, Xq[yq >= 0], yq[yq >= 0], library=library, shots=shots,
                                              draws=settings.draws, seed=settings.seed, library_codes=(Ldb, Lq[yq >= 0]),
                                              store=store if through_milvus else None, log=log_fn)
        single_res["labels"] = labels
        if len(shots) > 1:
            figures.append(("mAP against positives (single category)",
                            plot_lines(single_res["by_shots"], out / "single_map_vs_shots.png",
                                       title="Single category: mAP of the class over the full ranking",
                                       xlabel="positives (n)", log_x=True).name))

    if "feedback" in settings.protocols:
        from milvus_hash.eval.feedback import FeedbackProtocol
        from milvus_hash.eval.plots import plot_feedback

        counts = np.bincount(yq[yq >= 0])
        min_q = int(counts[counts > 0].min())
        shots = tuple(n for n in settings.shots if n <= min_q)
        log(f"feedback protocol: shots {', '.join(map(str, shots))}, {settings.draws} draw(s), "
            f"{settings.feedback_rounds} rounds of {settings.per_round} marks")
        proto = FeedbackProtocol(Xdb, ydb, Xq[yq >= 0], yq[yq >= 0], library_codes=(Ldb, Lq[yq >= 0]),
                                 library_spec=library.encoder_spec(), seed=settings.seed,
                                 rounds=settings.feedback_rounds, per_round=settings.per_round)
        feedback_res = proto.protocol(shots=shots, draws=settings.draws, log=log_fn or (lambda m: None))
        feedback_res["labels"] = labels
        figures.append(("mAP after each round of marks (feedback protocol)",
                        plot_feedback(feedback_res, out / "feedback_map_by_round.png").name))

    if "unsupervised" in settings.protocols:
        log("unsupervised protocol: " + ", ".join(f"{b} bits" for b in settings.lengths))
        methods = {
            "LSH": lambda b, s: _fit_codes(LSHHasher(b, random_state=s), Xdb, Xq),
            "PCA-ITQ": lambda b, s: _fit_codes(ITQHasher(b, random_state=s), Xdb, Xq),
            "random library bits": lambda b, s: _library_bits(library, Ldb, Lq, b, s),
        }
        uths = {}
        for path in settings.uth:
            from milvus_hash.encoders.uth import UTHEncoder

            enc = UTHEncoder.load(path, device=backbone.device if backbone is not None else "auto")
            uths[f"UTH ({Path(path).name}, {enc.n_bits} bits)"] = enc
        for name, enc in uths.items():
            methods[name] = _uth_method(enc, source, db_items, q_src, q_pool, settings.seeds[0])
        lengths = tuple(sorted(set(settings.lengths) | {e.n_bits for e in uths.values()}))
        unsup_res = unsupervised_protocol(methods, yq, ydb, lengths=lengths, seeds=settings.seeds, top=settings.top,
                                          scorer=scorer, log=log_fn)
        unsup_res["cosine_float_map"] = cosine_map(Xq, yq, Xdb, ydb, top=settings.top)
        if len(lengths) > 1:
            figures.append(("mAP@%d against code length (unsupervised)" % settings.top,
                            plot_lines(unsup_res["by_length"], out / "unsupervised_map_vs_length.png",
                                       title=f"Unsupervised mAP@{settings.top}", xlabel="code length (bits)",
                                       ylabel=f"mAP@{settings.top}", log_x=True).name))
        b = lengths[len(lengths) // 2]
        curves = {}
        for name, fn in methods.items():
            codes = fn(b, settings.seeds[0])
            if codes is not None:
                curves[name] = pr_curve(codes[0], yq, codes[1], ydb)
        figures.append((f"Precision-recall over Hamming radius (unsupervised, {b} bits, seed {settings.seeds[0]})",
                        plot_pr_curves(curves, out / "unsupervised_pr_curves.png",
                                       title=f"Unsupervised precision-recall, {b} bits").name))

    b = settings.n_bits
    codes_q, codes_db = _library_bits(library, Ldb, Lq, b, 0)
    speed.update(search_speed(codes_q, codes_db, k=100, store=store))
    if through_milvus:
        speed["protocol searches through Milvus (queries/s, full rankings)"] = scorer.queries / max(scorer.search_s, 1e-9)
        speed["protocol collections written (s)"] = scorer.build_s
    speed["peak memory (MiB)"] = peak_rss_mib()
    speed["whole evaluation (s)"] = time.perf_counter() - t_start
    report = write_report(out, title="milvus-hash evaluation", setup=setup, fewshot=fewshot_res,
                          unsupervised=unsup_res, single=single_res, feedback=feedback_res, speed=speed,
                          figures=figures)
    log(f"wrote {report}")
    return report


def _montage(fs, library, Xdb, ydb, lab, source, db_items, settings, out, plot_bit_montage):
    from milvus_hash.encoders.ugh.selection import L1BitSelector

    sel = L1BitSelector(settings.n_bits).fit(fs.Ldb[lab], ydb[lab])
    bits = [int(b) for b in np.asarray(sel.positions_)[:4]]
    z = (Xdb @ library.W_[:-1, bits] + library.W_[-1, bits]) * library.a_[bits] + library.b_[bits]
    picks = set()
    for j in range(len(bits)):
        order = np.argsort(z[:, j], kind="stable")
        picks.update(order[:8].tolist() + order[::-1][:8].tolist())
    images = {}
    for i in picks:
        im = source.open(db_items[i]).convert("L")
        images[i] = np.asarray(im.resize((64, 64)) if max(im.size) > 64 else im)
    return ("Library bits the L1 selection picks for the task (draw 0): the images most confidently on each side "
            "(UGH Fig. 7)", plot_bit_montage(_Lookup(images), z, bits, out / "ugh_bits_montage.png").name)


class _Lookup:
    def __init__(self, images: dict):
        self.images = images

    def __getitem__(self, i):
        return self.images[int(i)]


def _fit_codes(hasher, Xdb, Xq):
    hasher.fit(Xdb)
    return hasher.transform(Xq), hasher.transform(Xdb)


def _library_bits(library, Ldb, Lq, n_bits, seed):
    """``n_bits`` random library bits (as the few-shot protocol's "random library bits")."""
    from milvus_hash.codes import select_bits

    pos = np.random.default_rng(seed).choice(library.n_bits_, n_bits, replace=False)
    return select_bits(Lq, pos), select_bits(Ldb, pos)


def _uth_method(enc, source, db_items, q_src, q_items, first_seed):
    from .sources import SourceImages
    cache = {}

    def method(n_bits, seed):
        if n_bits != enc.n_bits or seed != first_seed:  # a trained network: one length, one run
            return None
        if "codes" not in cache:
            t0 = time.perf_counter()
            db = enc.transform(SourceImages(source, db_items))
            rate = len(db_items) / (time.perf_counter() - t0)
            cache["codes"] = (enc.transform(SourceImages(q_src, q_items)), db, {"encode_per_s": rate})
        return cache["codes"]

    return method


__all__ = ["EvalSettings", "run_eval"]
