"""The client on Fashion-MNIST: define latency, instant vs materialized queries, materialize time.

The 60,000 training images' codes from the cached 20,000-bit pixel library (``benchmarks/common.py``)
are written to Milvus Lite and to the local Milvus server. On each:

- define a 10-class task from 10 examples per class given as stored ids (median of 5 definitions;
  the first one also reads the background sample from Milvus, reported apart);
- materialize it (60,000 category codes streamed from the library collection);
- 100 queries by id, top-100: materialized search and instant search (library-code candidates
  re-ranked by the category code) for several candidate counts: latency p50/p99 and recall@100
  against the exact numpy ranking on the category code (set recall with ties broken by id, and
  tie-aware recall: hits at a distance <= the exact 100th distance);
- the few-shot mAP (full ranking) of 1,000 test queries computed from the category codes read back
  from the task collection, against the same number computed offline from the library: they must
  be equal; and mAP@100 through Milvus search against numpy.

Usage::

    .venv/bin/python benchmarks/client_bench.py [--skip-server]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from common import RESULTS, cached_library, drop_collections, percentiles, pixel_features

from milvus_hash import (  # noqa: E402
    HashClient,  # noqa: E402
    HashStore,
    hamming_topk,
)
from milvus_hash.eval import mean_average_precision  # noqa: E402


def bench(uri: str, lib, Ldb, ydb, Lq, yq, label: str, candidate_counts) -> dict:
    out = {}
    name = f"fm_{uuid.uuid4().hex[:8]}"
    ids = np.arange(len(Ldb), dtype=np.int64)
    with HashStore(uri) as store:
        spec = lib.encoder_spec()
        store.create_collection(name, encoder=spec)
        t0 = time.perf_counter()
        store.upsert(name, ids=ids, codes=Ldb, encoder=spec, labels=[str(v) for v in ydb])
        store.flush(name)
        out["write_library_codes_s"] = time.perf_counter() - t0
    try:
        with HashClient(uri, collection=name, library=lib) as client:
            rng = np.random.default_rng(0)
            draws = [np.concatenate([rng.choice(np.flatnonzero(ydb == c), 10, replace=False) for c in range(10)])
                     for _ in range(6)]
            times = []
            for i, ex in enumerate(draws):
                t0 = time.perf_counter()
                cat = client.define("task", ids=ids[ex], labels=[str(v) for v in ydb[ex]])
                times.append(time.perf_counter() - t0)
            out["define_first_s"] = times[0]
            out["define_median_s"] = float(np.median(times[1:]))
            t0 = time.perf_counter()
            task = client.materialize("task").collection
            out["materialize_s"] = time.perf_counter() - t0
            cat_db = cat.transform(Ldb)
            q_ids = rng.choice(len(Ldb), 100, replace=False)
            ref = hamming_topk(cat_db[q_ids], cat_db, 100, ids=ids)
            kth = ref.distances[:, -1]

            def quality(res):
                strict = np.mean([len(set(res.ids[i]) & set(ref.ids[i])) / 100 for i in range(len(q_ids))])
                tie_aware = np.mean([(res.distances[i] <= kth[i]).sum() / 100 for i in range(len(q_ids))])
                return float(strict), float(tie_aware)

            def timed(**kw):
                lat, rows = [], []
                for q in q_ids:
                    t0 = time.perf_counter()
                    r = client.search("task", ids=[int(q)], k=100, output_fields=(), **kw)
                    lat.append((time.perf_counter() - t0) * 1000)
                    rows.append(r)
                from milvus_hash.store.records import SearchResult

                res = SearchResult(np.vstack([r.ids for r in rows]), np.vstack([r.distances for r in rows]))
                return lat, res

            lat, res = timed(mode="materialized")
            out["materialized"] = {**percentiles(lat), "recall@100": quality(res)}
            for c in candidate_counts:
                lat, res = timed(mode="instant", candidates=c)
                out[f"instant_{c}"] = {**percentiles(lat), "recall@100": quality(res)}
            # mAP through the store equals the offline number
            got_ids, got_codes = zip(*client.store.iter_codes(task))
            stored = np.concatenate(got_codes)[np.argsort(np.concatenate(got_ids))]
            offline = mean_average_precision(cat.transform(Lq), yq, cat_db, ydb)
            through = mean_average_precision(cat.transform(Lq), yq, stored, ydb)
            res = client.store.search(task, codes=cat.transform(Lq), k=100, ties="id")
            top = hamming_topk(cat.transform(Lq), cat_db, 100, ids=ids)
            out["map_offline"], out["map_through_store"] = offline, through
            out["top100_equal_numpy"] = bool((res.ids == top.ids).all())
    finally:
        drop_collections(uri, name)
    print(f"\n{label}: library codes of {len(Ldb):,} items written in {out['write_library_codes_s']:.1f} s")
    print(f"  define a 10-class task from 10 examples per class: {out['define_median_s'] * 1000:.0f} ms "
          f"(median of 5; the first, reading {client.background_size:,} background codes: "
          f"{out['define_first_s'] * 1000:.0f} ms)")
    print(f"  materialize {len(Ldb):,} category codes: {out['materialize_s']:.1f} s")
    print(f"  {'query (100 by id, k=100)':32s} {'p50 ms':>8s} {'p99 ms':>8s} {'recall@100':>11s} {'tie-aware':>10s}")
    for key in ["materialized"] + [f"instant_{c}" for c in candidate_counts]:
        r = out[key]
        print(f"  {key:32s} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['recall@100'][0]:11.3f} {r['recall@100'][1]:10.3f}")
    print(f"  few-shot mAP of 1,000 test queries: through the store {out['map_through_store']:.4f}, "
          f"offline {out['map_offline']:.4f}; Milvus top-100 equals numpy: {out['top100_equal_numpy']}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--candidates", type=int, nargs="+", default=[500, 2000, 8000])
    args = p.parse_args(argv)
    Xtr, ytr, Xte, yte = pixel_features()
    lib, _ = cached_library("pixels", Xtr, n_rounds=args.rounds)
    Ldb = lib.transform(Xtr)
    q = np.random.default_rng(0).choice(len(Xte), 1000, replace=False)
    Lq, yq = lib.transform(Xte[q]), yte[q]
    results = {"library_bits": lib.n_bits_}
    with tempfile.TemporaryDirectory() as tmp:
        results["lite"] = bench(str(Path(tmp) / "client.db"), lib, Ldb, ytr, Lq, yq, "Milvus Lite", args.candidates)
        if not args.skip_server:
            from milvus_hash.store.local_server import LocalMilvusServer

            with LocalMilvusServer(Path(tmp) / "server") as server:
                results["server"] = bench(server.uri, lib, Ldb, ytr, Lq, yq, "Milvus server (local standalone)",
                                          args.candidates)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "client_bench.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'client_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
