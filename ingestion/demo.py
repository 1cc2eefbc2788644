"""The main job end to end, on real images, as a user runs it: an image folder -> features -> a UGH
library hyper-trained on them without labels -> codes ingested into Milvus -> image queries.

The images are a real sample written out as PNG files: Fashion-MNIST (300 training images per
class) where Debian's ``dataset-fashion-mnist`` is installed, else scikit-learn's bundled digits
(1,797 images), so it runs offline on a fresh machine. Features come from the default backbone,
EfficientNet-Lite0 with ImageNet weights installed with milvus-hash (no download), or the ``pixels``
extractor (``backbone="pixels"``: raw pixels suit the 8x8 digits better). Every step reruns
idempotently in ``workdir``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from milvus_hash import HashStore, hamming_topk
from milvus_hash.encoders.ugh.library import UGHLibrary
from milvus_hash.errors import expected
from milvus_hash.features import DEFAULT_BACKBONE, backbone_record, get_backbone

from .features_folder import read_features
from .idx import FASHION_MNIST_DIR
from .pipeline import extract, ingest
from .sources import FolderSource

FASHION_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


@dataclass
class DemoReport:
    dataset: str
    folder: str
    collection: str
    n_images: int
    n_bits: int
    hypertrain_seconds: float
    ingest: dict
    queries: list[dict] = field(default_factory=list)
    mean_precision: float = 0.0
    matches_numpy: bool = False
    category: dict = field(default_factory=dict)
    every_class: dict = field(default_factory=dict)
    library: str = ""


def fashion_mnist_available() -> bool:
    return (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists() or \
        (FASHION_MNIST_DIR / "train-images-idx3-ubyte").exists()


def write_sample(folder: Path, dataset: str, per_class: int = 300) -> tuple[Path, int]:
    """Write the sample as PNG files in one sub-folder per label (kept if already there)."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        images = (data.images * 16).clip(0, 255).astype(np.uint8)
        labels = [str(v) for v in data.target]
        names = [f"digit-{i:04d}.png" for i in range(len(images))]
    else:
        from .idx import load_fashion_mnist

        X, y = load_fashion_mnist(split="train")
        pick = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
        images, labels = X[pick], [FASHION_NAMES[v] for v in y[pick]]
        names = [f"fmnist-train-{i:05d}.png" for i in pick]
    for im, lab, name in zip(images, labels, names):
        path = folder / lab / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im, mode="L").save(path)
    return folder, len(images)


def run_demo(store: HashStore, *, workdir: str | Path = "milvus-hash-demo", dataset: str = "auto",
             collection: str = "demo", rounds: int = 40, k: int = 10, n_queries: int = 5, seed: int = 0,
             backbone: str = DEFAULT_BACKBONE, progress: bool = False, extract_progress: bool = False,
             log=print) -> DemoReport:
    """Run the demo (see the module doc); ``log`` receives one line per step; ``extract_progress``:
    a progress bar (on stderr) during feature extraction only, the one long step."""
    if dataset == "auto":
        dataset = "fashion-mnist" if fashion_mnist_available() else "digits"
    if dataset not in ("digits", "fashion-mnist"):
        raise expected("dataset", "'auto', 'digits' or 'fashion-mnist'", repr(dataset))
    if backbone not in (DEFAULT_BACKBONE, "pixels"):
        raise expected("backbone", f"{DEFAULT_BACKBONE!r} or 'pixels'", repr(backbone))
    workdir = Path(workdir)
    folder, n = write_sample(workdir / f"images-{dataset}", dataset)
    log(f"1. images: {n:,} {dataset} PNG files in {folder}/<label>/")

    source = FolderSource(folder)
    backbone_name = backbone
    if backbone_name == "pixels":
        backbone = get_backbone("pixels", weights=None, size=8 if dataset == "digits" else 28)
    else:
        backbone = get_backbone(backbone_name, "DEFAULT")
    feats = workdir / f"features-{dataset}-{backbone_name}"
    rep = extract(source, backbone=backbone, out=feats, workers=0, progress=progress or extract_progress)
    _, X, _, _, _ = read_features(feats)
    log(f"2. features: {X.shape[0]:,} x {X.shape[1]} ({backbone.name}) in {feats}/ ({rep.written:,} new)")

    t0 = time.perf_counter()
    lib = UGHLibrary(n_rounds=rounds, n_subset=min(len(X), 20_000), n_categories=20, n_expand=20,
                     random_state=seed, progress=progress).fit(X)
    lib.features_ = backbone_record(backbone)
    lib_path = workdir / f"library-{dataset}-{backbone_name}.npz"
    lib.save(lib_path)
    hyper_s = time.perf_counter() - t0
    log(f"3. hyper-trained a UGH library of {lib.n_bits_} bits without labels in {hyper_s:.1f} s -> {lib_path}")

    report = ingest(source, store=store, collection=collection, encoder=lib, backbone=backbone, workers=0,
                    features_in=feats, progress=progress)  # the features of step 2: no second CNN pass
    log(f"4. {store.target}: collection {collection!r}: {report.summary()}")

    # queries: images of the folder, encoded from the files like any new image
    items = source.items()
    rng = np.random.default_rng(seed)
    queries = [items[i] for i in rng.choice(len(items), size=min(n_queries, len(items)), replace=False)]
    qcodes = lib.transform(backbone.extract([source.open(it) for it in queries]))
    res = store.search(collection, codes=qcodes, k=k + 1, ties="id", output_fields=["label", "source"],
                       encoder=lib.encoder_spec())
    all_ids, all_codes = [], []
    for ids, codes in store.iter_codes(collection):
        all_ids.append(ids)
        all_codes.append(codes)
    ref = hamming_topk(qcodes, np.concatenate(all_codes), k + 1, ids=np.concatenate(all_ids))
    out = DemoReport(dataset, str(folder), collection, n, lib.n_bits_, hyper_s, report.to_dict(), library=str(lib_path))
    for row, item in enumerate(queries):
        keep = res.ids[row] != item.id  # the query image itself is stored: leave it out
        hits = [f for f, kp in zip(res.fields[row], keep) if kp][:k]
        labels = [h["label"] for h in hits]
        precision = float(np.mean([lab == item.label for lab in labels])) if labels else 0.0
        out.queries.append({"image": item.key, "label": item.label, "hit_labels": labels,
                            "hit_sources": [h["source"] for h in hits],
                            "distances": res.distances[row][keep][:k].tolist(), "precision": precision})
    out.mean_precision = float(np.mean([q["precision"] for q in out.queries])) if out.queries else 0.0
    out.matches_numpy = bool((res.ids == ref.ids).all() and (res.distances == ref.distances).all())
    from milvus_hash import HashClient

    client = HashClient(store=store, collection=collection, library=lib, backbone=backbone)
    out.category = five_pictures(client, items, label=queries[0].label, k=k, seed=seed)
    out.every_class = every_class(client, items, k=k, seed=seed, keep=queries[0].label)
    return out


def five_pictures(client, items, *, label: str, k: int = 10, n_examples: int = 5, seed: int = 0,
                  marks: int = 20) -> dict:
    """"Here are 5 pictures of what I mean: find all of them", and one round of the loop.

    A category defined from ``n_examples`` images of ``label``; its members beside a plain search
    from the same pictures (merged: each item at its smallest distance to any of them); then a
    simulated user marks the top ``marks`` members right or wrong (by the folder's labels), the
    category is refined with the marks, and both are asked again: the members, and the plain search
    from the pictures plus the members marked right. Only what the user has not seen counts (the
    pictures and the marked items are left out of every list). Returns the members shown, and
    precision at ``k`` and at 100 of the four lists."""
    rng = np.random.default_rng(seed + 1)
    pool = [it for it in items if it.label == label]
    examples = [pool[i] for i in np.sort(rng.choice(len(pool), min(n_examples, len(pool)), replace=False))]
    label_of = {it.id: it.label for it in items}
    name = f"demo-{label}"
    refs = [it.ref for it in examples]
    client.define(name, images=refs, replace=True)
    seen = {it.id for it in examples}

    def precision(ids, n):
        ids = [i for i in ids if i not in seen][:n]
        return float(np.mean([label_of.get(int(i)) == label for i in ids])) if ids else 0.0

    def plain_ids(extra_ids=()):
        if extra_ids:
            res = client.similar(images=refs, ids=list(extra_ids), k=100 + len(seen), merge="min")
        else:
            res = client.similar(images=refs, k=100 + len(seen), merge="min")
        return [int(i) for i in res.ids[0] if i >= 0]

    before = client.members(name, k=100 + len(seen), new_only=True)
    plain_before = plain_ids()
    out = {"label": label, "name": name, "examples": [it.key for it in examples], "k": k, "class_size": len(pool),
           "members": [{"id": int(i), "label": lab, "source": src, "probability": float(p)}
                       for i, lab, src, p in zip(before.ids[:k], before.labels, before.sources, before.probabilities)],
           "precision_at_k": precision(before.ids, k), "precision_at_100": precision(before.ids, 100),
           "plain_precision_at_k": precision(plain_before, k), "plain_precision_at_100": precision(plain_before, 100)}
    shown = [int(i) for i in before.ids if int(i) not in seen][:marks]
    right = [i for i in shown if label_of.get(i) == label]
    wrong = [i for i in shown if label_of.get(i) != label]
    client.refine(name, positive_ids=right or None, negative_ids=wrong or None)
    seen |= set(shown)
    after = client.members(name, k=100 + len(seen), new_only=True)
    plain_after = plain_ids(right)
    out.update({"marked_right": len(right), "marked_wrong": len(wrong), "marked": shown,
                "members_after": [{"id": int(i), "label": lab, "source": src, "probability": float(p)}
                                  for i, lab, src, p in zip(after.ids[:k], after.labels, after.sources,
                                                            after.probabilities)],
                "after_precision_at_k": precision(after.ids, k), "after_precision_at_100": precision(after.ids, 100),
                "plain_after_precision_at_k": precision(plain_after, k),
                "plain_after_precision_at_100": precision(plain_after, 100)})
    return out


def every_class(client, items, *, k: int = 10, n_examples: int = 5, seed: int = 0, keep: str | None = None) -> dict:
    """:func:`five_pictures` for every label (one draw each), so one class's luck does not speak for
    the method: the precision of each, and the means of the members' and the plain search's. The
    categories are dropped afterwards, but for label ``keep``'s."""
    labels = sorted({it.label for it in items})
    rows = []
    for label in labels:
        r = five_pictures(client, items, label=label, k=k, n_examples=n_examples, seed=seed)
        if label != keep:
            client.drop(r["name"])
        rows.append({key: r[key] for key in ("label", "precision_at_k", "precision_at_100", "plain_precision_at_k",
                                             "plain_precision_at_100", "after_precision_at_k", "after_precision_at_100",
                                             "plain_after_precision_at_k", "plain_after_precision_at_100")})
    means = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "label"} if rows else {}
    return {"classes": rows, "mean": means, "k": k}
