"""Ingestion throughput against the bare backbone forward pass, measured in the same run, and peak memory.

1. EfficientNet-Lite0 (the default backbone, its installed ImageNet weights) and ResNet-50
   (``weights=None``; speed does not depend on the weights) at 224x224: PNG files on disk
   (256x256, Fashion-MNIST images scaled up) through the whole pipeline (decode in DataLoader workers,
   transform, CNN, encode with a 20,000-bit UGH-shaped library, upsert to Milvus Lite and to the local
   Milvus server) against the bare ``backbone(batch)`` on the same images already decoded and
   transformed in memory, same batch size: overhead = pipeline time / bare forward time - 1. Each
   stage is also timed alone (decode + transform, forward, encode, a bare ``HashStore.upsert``), and
   the pipeline is compared with their sum.
2. ``pixels`` on Fashion-MNIST (the IDX file, 60,000 images) with the cached 20,000-bit pixel
   library: the same table. Here the "forward pass" is a reshape, so the comparison that matters is
   the pipeline against the sum of its stages.
3. Peak memory (VmHWM of the process plus its DataLoader workers) of ingesting the first N of the
   60,000 Fashion-MNIST images into Milvus Lite, for growing N, each in a fresh process.

Usage::

    .venv/bin/python benchmarks/ingest_bench.py                 # everything (~15 minutes here)
    .venv/bin/python benchmarks/ingest_bench.py --skip-server --images 128
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch  # noqa: E402
from common import RESULTS, ROOT, cached_library, pixel_features
from PIL import Image  # noqa: E402

from ingestion.idx import FASHION_MNIST_DIR, load_fashion_mnist  # noqa: E402
from ingestion.pipeline import ingest  # noqa: E402
from ingestion.sources import FolderSource, IdxSource  # noqa: E402
from milvus_hash import HashStore  # noqa: E402
from milvus_hash.encoders.ugh.library import UGHLibrary  # noqa: E402
from milvus_hash.features import get_backbone  # noqa: E402


def shaped_library(dim: int, n_bits: int = 20_000, seed: int = 0) -> UGHLibrary:
    """A library with the shapes of a hyper-trained one (``dim`` features, ``n_bits`` bits): for timing
    the encoding, whose cost is the same matrix product whatever the hyperplanes are."""
    rng = np.random.default_rng(seed)
    lib = UGHLibrary(n_rounds=n_bits // 10)
    lib.W_ = rng.standard_normal((dim + 1, n_bits)).astype(np.float32)
    lib.a_ = np.ones(n_bits, np.float32)
    lib.b_ = np.zeros(n_bits, np.float32)
    lib.n_bits_, lib.n_features_in_ = n_bits, dim
    return lib


def write_pngs(folder: Path, n: int, side: int = 256) -> FolderSource:
    X, y = load_fashion_mnist(split="test")
    for i in range(n):
        path = folder / str(y[i]) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(X[i]).resize((side, side), Image.BILINEAR).convert("RGB").save(path)
    return FolderSource(folder)


def stages(backbone, encoder, source, items, batch_size: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Seconds of each stage done alone, in this process: decode + transform, the bare forward pass
    (``backbone(batch)`` on the transformed images), encode. Returns (times, ids, codes)."""
    t0 = time.perf_counter()
    tensors = [backbone.transform(source.open(it)) for it in items]
    decode = time.perf_counter() - t0
    backbone(torch.stack(tensors[:batch_size]))  # warm-up
    t0 = time.perf_counter()
    feats = [backbone(torch.stack(tensors[s:s + batch_size])).numpy() for s in range(0, len(tensors), batch_size)]
    forward = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes = encoder.transform(np.concatenate(feats))
    encode = time.perf_counter() - t0
    return {"decode": decode, "forward": forward, "encode": encode}, np.array([it.id for it in items]), codes


def bare_write(uri: str, encoder, ids, codes) -> float:
    with HashStore(uri) as store:
        name = f"bare_{int(time.time() * 1000) % 10**9}"
        spec = encoder.encoder_spec()
        store.create_collection(name, encoder=spec)
        t0 = time.perf_counter()
        store.upsert(name, ids=ids, codes=codes, encoder=spec)
        store.flush(name)
        seconds = time.perf_counter() - t0
        store.drop_collection(name)
    return seconds


def pipeline_run(source, backbone, encoder, uri: str, batch_size: int, workers: int) -> tuple[float, int]:
    with HashStore(uri) as store:
        name = f"bench_{int(time.time() * 1000) % 10**9}"
        store.drop_collection(name)
        t0 = time.perf_counter()
        report = ingest(source, store=store, collection=name, encoder=encoder, backbone=backbone,
                        batch_size=batch_size, workers=workers, progress=False)
        seconds = time.perf_counter() - t0
        n = store.count(name)
        store.drop_collection(name)
    assert n == report.written, (n, report.written)
    return seconds, n


def compare(title, source, backbone, encoder, uris, batch_size, workers) -> dict:
    items = source.items()
    n = len(items)
    times, ids, codes = stages(backbone, encoder, source, items, batch_size)
    out = {"images": n, "stages": times, "bare_forward_images_per_s": n / times["forward"]}
    print(f"\n{title}: {n:,} images, batch {batch_size}, {workers} decode workers")
    for stage, secs in times.items():
        print(f"  {stage + ' alone':28s} {secs:8.2f} s  {n / secs:11.1f} images/s")
    for label, uri in uris.items():
        write = bare_write(uri, encoder, ids, codes)
        secs, got = pipeline_run(source, backbone, encoder, uri, batch_size, workers)
        parts = sum(times.values()) + write
        out[label] = {"write_alone_s": write, "pipeline_s": secs, "images_per_s": got / secs,
                      "overhead_vs_forward": secs / times["forward"] - 1, "vs_sum_of_stages": secs / parts}
        print(f"  {'write alone -> ' + label:28s} {write:8.2f} s  {n / write:11.1f} images/s")
        print(f"  {'pipeline -> ' + label:28s} {secs:8.2f} s  {got / secs:11.1f} images/s   "
              f"vs bare forward {secs / times['forward'] - 1:+.1%}, vs sum of the stages {secs / parts:.2f}x")
    return out


MEMORY_CHILD = r"""
import json, resource, sys, tempfile
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/benchmarks")
from milvus_hash.features import get_backbone
from ingestion.pipeline import ingest
from ingestion.sources import IdxSource
from milvus_hash import HashStore
from ingest_bench import _Head, shaped_library
n = int(sys.argv[1])
src = IdxSource({idx!r})
bb = get_backbone("pixels", weights=None)
with tempfile.TemporaryDirectory() as d, HashStore(d + "/m.db") as store:
    rep = ingest(_Head(src, src.items()[:n]), store=store, collection="m", encoder=shaped_library(784, 2048), backbone=bb,
                 batch_size=256, workers=2, progress=False)
    count = store.count("m")
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({{"n": n, "written": rep.written, "count": count, "peak_rss_mib": hwm / 1024,
                  "worker_peak_rss_mib": children / 1024}}))
"""


def memory_profile(sizes) -> list[dict]:
    idx = next(p for p in (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz", FASHION_MNIST_DIR / "train-images-idx3-ubyte")
               if p.exists())
    code = MEMORY_CHILD.format(root=str(ROOT), idx=str(idx))
    rows = []
    print("\npeak memory of ingesting the first N Fashion-MNIST images (pixels, 2,048 bits, Milvus Lite)")
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True,
                             cwd=str(ROOT / "benchmarks"))
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  N = {n:6,d}: main process peak {row['peak_rss_mib']:7.1f} MiB, largest worker "
              f"{row['worker_peak_rss_mib']:7.1f} MiB ({row['count']:,} rows stored)")
    return rows


class _Head:
    """The first items of a source."""

    def __init__(self, source, items):
        self.source, self._items = source, items

    def items(self):
        return self._items

    def open(self, item):
        return self.source.open(item)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=256, help="PNG images for the CNN comparisons")
    p.add_argument("--cnn", nargs="*", default=["efficientnet_lite0", "resnet50"], help="CNN backbones to compare")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--idx-images", type=int, default=60_000, help="Fashion-MNIST images for the pixels comparison")
    p.add_argument("--skip-server", action="store_true", help="Milvus Lite only")
    p.add_argument("--memory-sizes", type=int, nargs="*", default=[5_000, 20_000, 60_000])
    args = p.parse_args(argv)
    torch.manual_seed(0)
    results = {"threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    with tempfile.TemporaryDirectory() as tmp:
        uris = {"Milvus Lite": str(Path(tmp) / "bench.db")}
        server = None
        if not args.skip_server:
            from milvus_hash.store.local_server import LocalMilvusServer

            server = LocalMilvusServer(Path(tmp) / "server")
            server.start()
            uris["Milvus server"] = server.uri
        try:
            import warnings

            source = write_pngs(Path(tmp) / "pngs", args.images)
            for name in args.cnn:
                weights = "DEFAULT" if name == "efficientnet_lite0" else None  # installed, no download
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cnn = get_backbone(name, weights=weights)
                results[name] = compare(f"{name} (weights={weights}), 224x224 from 256x256 PNG files", source, cnn,
                                        shaped_library(cnn.dim), uris, args.batch_size, args.workers)
                del cnn
            Xtr, *_ = pixel_features()
            lib, _ = cached_library("pixels", Xtr, n_rounds=2000)
            idx = IdxSource(next(p for p in (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz",
                                             FASHION_MNIST_DIR / "train-images-idx3-ubyte") if p.exists()))
            head = _Head(idx, idx.items()[:args.idx_images])
            results["pixels"] = compare(f"pixels on {args.idx_images:,} Fashion-MNIST training images (IDX), "
                                        f"{lib.n_bits_:,}-bit library", head, get_backbone("pixels", weights=None),
                                        lib, uris, 1024, args.workers)
        finally:
            if server is not None:
                server.stop()
    results["memory"] = memory_profile(args.memory_sizes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_bench.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'ingest_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
