"""The category loop's speed on 60,000 pictures, from Python and through the web page, on Milvus Lite
and the local Milvus server, beside a bare Milvus search measured in the same run.

The 60,000 Fashion-MNIST training images are written as PNG files (the pictures the page shows) and
their codes from the cached 20,000-bit pixel library (``benchmarks/common.py``) are stored with each
file's path and folder, as ``ingest`` stores them. For each class a category is defined from 5 of its
pictures, then, 10 times, one member of its top 20 is marked (right if it is of the class, else
wrong), as a person clicks:

- ``refine + members``: ``HashClient.refine`` then ``HashClient.members(k=100)`` (the category issue's
  goal: < 1 s p50);
- ``mark -> new members grid``: the page's POST of the mark, its redirect and the new members page's
  HTML (the web issue's goal: < 1.5 s);
- ``browse page``: the HTML of a page of 100 pictures, and in Debian's chromium the time until all
  100 thumbnails are on the page, once they are cached (goal: < 1 s);
- the baseline: a bare ``MilvusClient.search`` of 5 codes, limit 100, on the same collection.

Usage::

    .venv/bin/python benchmarks/web_bench.py [--skip-server | --skip-lite] [--classes 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from common import RESULTS, cached_library, percentiles, pixel_features

from milvus_hash import HashClient, HashStore  # noqa: E402


def write_pngs(root: Path, X: np.ndarray, y: np.ndarray) -> list[str]:
    from PIL import Image

    paths = []
    for i, (x, lab) in enumerate(zip(X, y)):
        p = root / str(int(lab)) / f"{i:05d}.png"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x, mode="L").save(p)
        paths.append(str(p))
    return paths


def serve(client, cache: Path):
    import uvicorn

    from ingestion.web.app import create_app
    from ingestion.web.files import Files

    app = create_app(client, files=Files(cache_dir=cache))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.csrf


def browser_page_ms(url: str, reps: int = 5) -> list[float]:
    """Milliseconds from navigation to every thumbnail of the page decoded, in chromium (cached thumbnails)."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1280, "height": 20000})  # all 100 tiles in view: none lazy
        page.goto(url, wait_until="load")  # first visit: thumbnails made and cached by the server
        for _ in range(reps):
            page.goto("about:blank")
            ctx = page.context
            ctx.clear_cookies()
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_function("Array.from(document.querySelectorAll('#results img'))"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            out.append((time.perf_counter() - t0) * 1000)
        b.close()
    return out


def bench(uri: str, label: str, Ldb, ydb, paths, root: Path, spec, n_classes: int, cache: Path) -> dict:
    import httpx
    from pymilvus import MilvusClient

    from milvus_hash.codes import codes_to_bytes

    name = f"wb_{uuid.uuid4().hex[:8]}"
    ids = np.arange(len(Ldb), dtype=np.int64)
    meta = [{"origin": p, "root": str(root)} for p in paths]
    with HashStore(uri) as store:
        store.create_collection(name, encoder=spec)
        t0 = time.perf_counter()
        store.upsert(name, ids=ids, codes=Ldb, encoder=spec, labels=[str(v) for v in ydb],
                     sources=[f"fmnist/{Path(p).parent.name}/{Path(p).name}" for p in paths], metadata=meta)
        store.flush(name)
        print(f"{label}: wrote {len(ids):,} rows of {Ldb.shape[1] * 8:,} bits in {time.perf_counter() - t0:.0f} s",
              flush=True)
    res = {}
    client = HashClient(uri, collection=name)
    server, thread, url, csrf = serve(client, cache)
    try:
        rng = np.random.default_rng(0)
        t_loop, t_mark, t_bare = [], [], []
        bare = MilvusClient(uri) if not uri.endswith(".db") else client.store._client
        for c in range(n_classes):
            pos = np.sort(rng.choice(np.flatnonzero(ydb == c), 5, replace=False))
            client.define(f"py{c}", ids=pos)
            client.define(f"web{c}", ids=pos)
            client.members(f"py{c}", k=100)
            for r in range(10):
                got = client.members(f"py{c}", k=20, new_only=True)
                i = int(got.ids[r % len(got)])
                t0 = time.perf_counter()
                client.refine(f"py{c}", **{"positive_ids" if ydb[i] == c else "negative_ids": [i]})
                client.members(f"py{c}", k=100)
                t_loop.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                bare.search(name, data=codes_to_bytes(Ldb[pos]), limit=100, anns_field="code",
                            search_params={"metric_type": "HAMMING"}, **client.store.read_level(name))
                t_bare.append((time.perf_counter() - t0) * 1000)
            with httpx.Client(base_url=url, timeout=60) as http:
                http.get(f"/category/web{c}")
                for r in range(10):
                    got = client.members(f"web{c}", k=20, new_only=True)
                    i = int(got.ids[r % len(got)])
                    t0 = time.perf_counter()
                    resp = http.post(f"/category/web{c}/mark", data={"csrf": csrf, "id": str(i),
                                     "verdict": "right" if ydb[i] == c else "wrong", "back": f"/category/web{c}"},
                                     follow_redirects=True)
                    t_mark.append((time.perf_counter() - t0) * 1000)
                    grid = resp.text.split('id="results"', 1)[-1].split("<!-- /results -->", 1)[0]
                    assert resp.status_code == 200 and (f'data-id="{i}"' not in grid or ydb[i] == c)
        with httpx.Client(base_url=url, timeout=60) as http:
            http.get("/")
            t_html = []
            for _ in range(10):
                t0 = time.perf_counter()
                http.get("/")
                t_html.append((time.perf_counter() - t0) * 1000)
        res = {"refine + members(k=100) ms": percentiles(t_loop), "mark -> new members grid (HTTP) ms":
               percentiles(t_mark), "browse page HTML ms": percentiles(t_html),
               "bare MilvusClient.search, 5 codes, limit 100 ms": percentiles(t_bare)}
        if shutil.which("chromium"):
            res["browse page with 100 cached thumbnails in chromium ms"] = percentiles(browser_page_ms(url + "/"))
        print(f"\n{label}, {len(ids):,} items, {Ldb.shape[1] * 8:,}-bit library:")
        for k, v in res.items():
            print(f"  {k:55s} p50 {v['p50_ms']:7.0f}  p99 {v['p99_ms']:7.0f}")
        return res
    finally:
        server.should_exit = True
        thread.join(10)
        with HashStore(uri) as store:
            for c in store.list_collections():
                if c.startswith(name):
                    store.drop_collection(c)
        client.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2000, help="library rounds (10 bits each) [default: 2000]")
    p.add_argument("--classes", type=int, default=3, help="categories timed [default: 3]")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--skip-lite", action="store_true")
    args = p.parse_args(argv)
    from ingestion.idx import load_fashion_mnist

    Xtr, ytr, _, _ = pixel_features()
    lib, _ = cached_library("pixels", Xtr, n_rounds=args.rounds)
    Ldb = lib.transform(Xtr)
    images, labels = load_fashion_mnist(split="train")
    assert np.array_equal(labels, ytr)
    root = RESULTS / "fmnist_train_png"
    t0 = time.perf_counter()
    paths = write_pngs(root, images, labels)
    print(f"{len(paths):,} PNG files in {root} ({time.perf_counter() - t0:.0f} s)", flush=True)
    results = {"library_bits": int(lib.n_bits_), "items": len(Ldb)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "thumbs"
        if not args.skip_lite:
            results["lite"] = bench(str(Path(tmp) / "w.db"), "Milvus Lite", Ldb, ytr, paths, root,
                                    lib.encoder_spec(), args.classes, cache)
        if not args.skip_server:
            from milvus_hash.store.local_server import LocalMilvusServer

            with LocalMilvusServer(Path(tmp) / "server") as server:
                results["server"] = bench(server.uri, "Milvus server (local standalone)", Ldb, ytr, paths, root,
                                          lib.encoder_spec(), args.classes, cache)
    path = RESULTS / "web_bench.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **results}, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
