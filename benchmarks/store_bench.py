"""Store speed against its baselines, measured in one run on the same codes.

For each back-end (Milvus Lite, the local Milvus standalone server) and code length (64, 256 bits):

* insert rows/s: ``HashStore.insert`` and ``HashStore.upsert`` against bare pymilvus writing the same
  rows column-wise (ORM ``Collection.insert`` and ``Collection.upsert``) and row-wise
  (``MilvusClient.insert`` of dicts); the store's own row path (``write_path="rows"``, what stays
  when pymilvus drops its ORM) and, on a server, ``HashStore.bulk_import`` (BulkWriter files and
  Milvus's import, timed until every row shows);
* search queries/s (k nearest, a batch of queries): ``HashStore.search`` against bare
  ``MilvusClient.search`` on the same collection, and against faiss ``IndexBinaryFlat`` on the same
  codes in memory.

Usage::

    .venv/bin/python benchmarks/store_bench.py                     # 1M codes, as in the issue
    .venv/bin/python benchmarks/store_bench.py --n 100000 --backends lite
    .venv/bin/python benchmarks/store_bench.py --server-uri http://localhost:19530

Prints a table and the ratios, and writes them as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from milvus_hash import EncoderSpec, HashStore, hamming_topk  # noqa: E402
from milvus_hash.codes import codes_to_bytes  # noqa: E402
from milvus_hash.store.hash_store import CODE  # noqa: E402
from milvus_hash.store.local_server import LocalMilvusServer  # noqa: E402

BATCH = 10_000


def timed(fn, repeats: int = 1) -> float:
    """Median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def wait_indexed(store: HashStore, name: str, timeout: float = 600) -> None:
    """Flush and wait until the server has indexed every sealed row (no-op cost on Lite)."""
    store.flush(name)
    client = store._client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idx = client.describe_index(name, client.list_indexes(name)[0])
        if int(idx.get("pending_index_rows", 0)) == 0 and idx.get("state", "Finished") == "Finished":
            return
        time.sleep(1)


def bare_rows_insert(client, name, ids, codes):
    for s in range(0, len(ids), BATCH):
        rows = [{"id": int(i), CODE: c, "source": "", "label": "", "metadata": {}}
                for i, c in zip(ids[s:s + BATCH], codes_to_bytes(codes[s:s + BATCH]))]
        client.insert(name, rows)


def bare_column_write(uri, name, ids, codes, mode="insert"):
    """Bare pymilvus, column-wise (ORM ``Collection.insert`` / ``Collection.upsert``)."""
    from pymilvus import Collection, connections

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connections.connect(alias="bench-bare", uri=uri)
        col = Collection(name, using="bench-bare")
        write = getattr(col, mode)
        for s in range(0, len(ids), BATCH):
            n = len(ids[s:s + BATCH])
            write([ids[s:s + BATCH].tolist(), codes_to_bytes(codes[s:s + BATCH]), [""] * n, [""] * n, [{}] * n])
        connections.disconnect("bench-bare")


def bench_backend(label: str, uri: str, n: int, bits_list, nq: int, k: int, seed: int, faiss_rows: dict,
                  stage: str | None = None) -> list[dict]:
    rows = []
    store = HashStore(uri, timeout=120)
    rows_store = HashStore(uri, timeout=120, write_path="rows")
    for n_bits in bits_list:
        rng = np.random.default_rng(seed + n_bits)
        codes = rng.integers(0, 256, (n, n_bits // 8), dtype=np.uint8)
        ids = np.arange(n, dtype=np.int64)
        queries = rng.integers(0, 256, (nq, n_bits // 8), dtype=np.uint8)
        spec = EncoderSpec("bench", f"random-{seed}-{n_bits}", n_bits)
        r = {"backend": label, "n": n, "n_bits": n_bits, "queries": nq, "k": k}
        warm = f"bench_warmup_{n_bits}"  # first writes pay for connections and segment set-up
        store.drop_collection(warm)
        store.create_collection(warm, encoder=spec)
        store.insert(warm, ids=ids[:BATCH], codes=codes[:BATCH], encoder=spec)
        bare_column_write(uri, warm, ids[BATCH:2 * BATCH], codes[BATCH:2 * BATCH])
        store.drop_collection(warm)
        paths = {
            "store_insert_rows_s": lambda name: store.insert(name, ids=ids, codes=codes, encoder=spec, batch_size=BATCH),
            "bare_column_insert_rows_s": lambda name: bare_column_write(uri, name, ids, codes),
            "store_upsert_rows_s": lambda name: store.upsert(name, ids=ids, codes=codes, encoder=spec, batch_size=BATCH),
            "bare_column_upsert_rows_s": lambda name: bare_column_write(uri, name, ids, codes, "upsert"),
            "bare_row_insert_rows_s": lambda name: bare_rows_insert(store._client, name, ids, codes),
            "store_rows_upsert_rows_s": lambda name: rows_store.upsert(name, ids=ids, codes=codes, encoder=spec,
                                                                       batch_size=BATCH),
        }
        if stage is not None:  # a server: the bulk import, counted until every row shows
            paths["store_bulk_import_rows_s"] = lambda name: store.bulk_import(name, ids=ids, codes=codes,
                                                                               encoder=spec, stage=stage)
        # Each path writes all n rows into a fresh collection, twice, in opposite orders; the
        # better of its two runs counts (the machine's background work hits both sides alike).
        target = f"bench_target_{n_bits}"
        for rep, order in enumerate((list(paths), list(paths)[::-1])):
            for key in order:
                name = target if (key == "store_insert_rows_s" and rep == 1) else f"bench_{rep}_{n_bits}"
                store.drop_collection(name)
                store.create_collection(name, encoder=spec)
                rate = n / timed(lambda: paths[key](name))
                r[key] = max(r.get(key, 0.0), rate)
                assert store._strong_count(name) == n, (key, name)  # writes of other connections too
                if name != target:
                    store.drop_collection(name)
        wait_indexed(store, target)
        params = {"metric_type": "HAMMING", "params": {}}
        qbytes = codes_to_bytes(queries)

        def bare_search():
            res = store._client.search(target, data=qbytes, anns_field=CODE, limit=k, search_params=params)
            assert len(res) == nq

        def store_search():
            res = store.search(target, codes=queries, k=k)
            assert res.ids.shape == (nq, k)

        for _ in range(2):  # warm up (loads segments, settles compaction)
            store_search(), bare_search()
        r["bare_search_qps"] = nq / timed(bare_search, repeats=5)
        r["store_search_qps"] = nq / timed(store_search, repeats=5)
        # correctness of what was timed: distances equal the exact numpy top-k on a sample
        sample = store.search(target, codes=queries[:20], k=k)
        ref = hamming_topk(queries[:20], codes, k, ids=ids)
        r["distances_equal_numpy"] = bool((sample.distances == ref.distances).all())
        if n_bits not in faiss_rows:
            faiss_rows[n_bits] = bench_faiss(codes, queries, k)
        r.update(faiss_rows[n_bits])
        best_bare = max(r["bare_column_insert_rows_s"], r["bare_row_insert_rows_s"])
        r["ratio_store_insert_vs_best_bare"] = r["store_insert_rows_s"] / best_bare
        r["ratio_store_upsert_vs_bare_upsert"] = r["store_upsert_rows_s"] / r["bare_column_upsert_rows_s"]
        r["ratio_bare_columns_vs_rows"] = r["bare_column_insert_rows_s"] / r["bare_row_insert_rows_s"]
        r["ratio_store_rows_upsert_vs_store_upsert"] = r["store_rows_upsert_rows_s"] / r["store_upsert_rows_s"]
        if "store_bulk_import_rows_s" in r:
            r["ratio_bulk_import_vs_store_upsert"] = r["store_bulk_import_rows_s"] / r["store_upsert_rows_s"]
        r["ratio_store_search_vs_bare"] = r["store_search_qps"] / r["bare_search_qps"]
        r["ratio_store_search_vs_faiss"] = r["store_search_qps"] / r["faiss_search_qps"]
        store.drop_collection(target)
        rows.append(r)
        print_row(r)
    store.close()
    rows_store.close()
    return rows


def bench_faiss(codes: np.ndarray, queries: np.ndarray, k: int) -> dict:
    try:
        import faiss
    except ImportError:
        return {"faiss_add_rows_s": float("nan"), "faiss_search_qps": float("nan")}
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    add_s = timed(lambda: index.add(codes))
    index.search(queries[:10], k)
    search_s = timed(lambda: index.search(queries, k), repeats=3)
    return {"faiss_add_rows_s": len(codes) / add_s, "faiss_search_qps": len(queries) / search_s,
            "faiss_threads": faiss.omp_get_max_threads()}


def print_row(r: dict) -> None:
    print(f"\n[{r['backend']}] {r['n']:,} codes of {r['n_bits']} bits; {r['queries']} queries, k={r['k']}")
    print(f"  insert rows/s   HashStore.insert {r['store_insert_rows_s']:>10,.0f}   HashStore.upsert {r['store_upsert_rows_s']:>10,.0f}")
    print(f"                  bare col insert  {r['bare_column_insert_rows_s']:>10,.0f}   bare col upsert  {r['bare_column_upsert_rows_s']:>10,.0f}"
          f"   bare row insert {r['bare_row_insert_rows_s']:>10,.0f}")
    bulk = r.get("store_bulk_import_rows_s")
    print(f"                  HashStore.upsert through MilvusClient rows (write_path='rows') "
          f"{r['store_rows_upsert_rows_s']:>10,.0f} ({r['ratio_store_rows_upsert_vs_store_upsert']:.2f}x columns)"
          + (f"   HashStore.bulk_import {bulk:>10,.0f} ({r['ratio_bulk_import_vs_store_upsert']:.2f}x upsert)"
             if bulk else ""))
    print(f"  search q/s      HashStore        {r['store_search_qps']:>10,.1f}   bare pymilvus    {r['bare_search_qps']:>10,.1f}"
          f"   faiss IndexBinaryFlat {r['faiss_search_qps']:>9,.1f}")
    print(f"  ratios          store insert / best bare {r['ratio_store_insert_vs_best_bare']:.2f}x, "
          f"store upsert / bare upsert {r['ratio_store_upsert_vs_bare_upsert']:.2f}x, "
          f"bare columns / rows {r['ratio_bare_columns_vs_rows']:.2f}x")
    print(f"                  store search / bare {r['ratio_store_search_vs_bare']:.2f}x, "
          f"store search / faiss {r['ratio_store_search_vs_faiss']:.2f}x; "
          f"distances equal numpy: {r['distances_equal_numpy']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="codes per collection")
    p.add_argument("--bits", type=int, nargs="+", default=[64, 256])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("-k", type=int, default=100)
    p.add_argument("--backends", nargs="+", default=["lite", "server"], choices=["lite", "server"])
    p.add_argument("--server-uri", help="use this server instead of starting a local one")
    p.add_argument("--bulk-stage", help="with --server-uri: a directory that server imports from (else no bulk path)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/store_bench.json")
    args = p.parse_args(argv)
    rows, faiss_rows = [], {}
    with tempfile.TemporaryDirectory(prefix="milvus-hash-bench-") as tmp:
        if "lite" in args.backends:
            rows += bench_backend("Milvus Lite", str(Path(tmp) / "bench.db"), args.n, args.bits,
                                  args.queries, args.k, args.seed, faiss_rows)
        if "server" in args.backends:
            if args.server_uri:
                rows += bench_backend("server", args.server_uri, args.n, args.bits, args.queries, args.k,
                                      args.seed, faiss_rows, stage=args.bulk_stage)
            else:
                with LocalMilvusServer(Path(tmp) / "server", stop_grace=5) as server:
                    rows += bench_backend("Milvus 2.3.5 standalone", server.uri, args.n, args.bits,
                                          args.queries, args.k, args.seed, faiss_rows, stage=str(Path(tmp) / "stage"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
