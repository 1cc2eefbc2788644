"""A category's calls as a user makes them, beside the bare Milvus searches they make, and members' quality.

The 60,000 Fashion-MNIST training images' codes from the cached 20,000-bit pixel library are written
to Milvus Lite and to the local Milvus server. For each class, a category is defined from 5 stored
images of it (given by id), then ``HashClient.members(k=100)`` is timed beside, in the same run:

- a bare ``MilvusClient.search`` on the same collection with the 5 positives as queries (limit 100,
  and limit = the members' ``candidates``, the search members itself makes), at the collection's
  consistency level;
- ``search`` of a materialized category and a plain ``similar`` search (100 queries, k = 100,
  returning source and label), each beside the bare ``MilvusClient.search`` of its collection;
- ``define`` itself: from the 5 positives, and from 10 (the issue's measure), each on a client that
  has its background sample already; and the first definition on a new client (which reads the
  sample from Milvus), beside the client's construction.

Quality: precision at 100 of the members (the 5 positives left out) beside the plain search from the
same 5 images (each one's nearest neighbours, merged by smallest distance), and how much of the
exhaustive ranking's top 100 the served pool finds.

Usage::

    .venv/bin/python benchmarks/members_bench.py [--skip-server | --skip-lite] [--candidates 2000]
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

from milvus_hash import HashClient, HashStore  # noqa: E402
from milvus_hash.codes import codes_to_bytes  # noqa: E402


def bench(uri: str, lib, Ldb, ydb, label: str, candidates: int, others=()) -> dict:
    name = f"mb_{uuid.uuid4().hex[:8]}"
    ids = np.arange(len(Ldb), dtype=np.int64)
    out = {}
    with HashStore(uri) as store:
        spec = lib.encoder_spec()
        store.create_collection(name, encoder=spec)
        store.upsert(name, ids=ids, codes=Ldb, encoder=spec, labels=[str(v) for v in ydb])
        store.flush(name)
    try:
        rng = np.random.default_rng(1)
        t_first, t_open, t_def10 = [], [], []
        for rep in range(3):  # the first definition on a new client: reads the background sample
            t0 = time.perf_counter()
            with HashClient(uri, collection=name) as client:
                t_open.append((time.perf_counter() - t0) * 1000)
                pos = np.sort(rng.choice(np.flatnonzero(ydb == rep), 10, replace=False))
                t0 = time.perf_counter()
                client.define(f"first{rep}", ids=pos, replace=True)
                t_first.append((time.perf_counter() - t0) * 1000)
                for c in range(10):
                    pos = np.sort(rng.choice(np.flatnonzero(ydb == c), 10, replace=False))
                    t0 = time.perf_counter()
                    client.define(f"ten{c}", ids=pos, replace=True)
                    t_def10.append((time.perf_counter() - t0) * 1000)
        out.update(define_first=percentiles(t_first), define_first_in_process_ms=t_first[0],
                   client_open=percentiles(t_open), define_10_positives=percentiles(t_def10))
        with HashClient(uri, collection=name) as client:
            rng = np.random.default_rng(0)
            t_def, t_mem, t_bare100, t_bare_pool, p_mem, p_plain, pool_recall = [], [], [], [], [], [], []
            t_other, r_other = {}, {}
            raw = client.store._client
            for c in range(10):
                pos = np.sort(rng.choice(np.flatnonzero(ydb == c), 5, replace=False))
                t0 = time.perf_counter()
                client.define(f"c{c}", ids=pos, replace=True)
                t_def.append((time.perf_counter() - t0) * 1000)
                data = codes_to_bytes(Ldb[pos])
                params = {"metric_type": "HAMMING", "params": {}}
                for _ in range(3):
                    for m in others:
                        t0 = time.perf_counter()
                        other = client.members(f"c{c}", k=100 + 5, candidates=m)
                        t_other.setdefault(m, []).append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    got = client.members(f"c{c}", k=100 + 5, candidates=candidates)
                    t_mem.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    raw.search(name, data=data, anns_field="code", limit=100, search_params=params)
                    t_bare100.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    raw.search(name, data=data, anns_field="code", limit=candidates, search_params=params)
                    t_bare_pool.append((time.perf_counter() - t0) * 1000)
                keep = ~np.isin(got.ids, pos)
                p_mem.append(float((ydb[got.ids[keep][:100]] == c).mean()))
                order = client.similar(ids=pos, k=105, output_fields=()).merged(exclude=pos)[0][:100]
                p_plain.append(float((ydb[order] == c).mean()))
                every = client.members(f"c{c}", k=105, exhaustive=True)
                pool_recall.append(len(set(got.ids[:100].tolist()) & set(every.ids[:100].tolist())) / 100)
                for m in others:
                    other = client.members(f"c{c}", k=105, candidates=m)
                    r_other.setdefault(m, []).append(len(set(other.ids[:100].tolist()) & set(every.ids[:100].tolist()))
                                                     / 100)
            # category search (materialized: the default once materialized) and plain search, each
            # beside the bare search it makes, at the same consistency level, returning the same fields
            client.materialize("c0")
            task, cat, level = client.task_collection("c0"), client.category("c0"), client.store.consistency_level
            fields = ["source", "label"]
            lat = {"category_search": [], "bare_search_category_collection": [], "plain_search": [],
                   "bare_search_library_collection": []}
            for q in rng.choice(len(Ldb), 100, replace=False):
                code = Ldb[q:q + 1]
                calls = {
                    "category_search": lambda: client.search("c0", codes=code, k=100),
                    "bare_search_category_collection": lambda: raw.search(
                        task, data=codes_to_bytes(cat.transform(code)), anns_field="code", limit=100,
                        search_params=params, output_fields=fields, consistency_level=level),
                    "plain_search": lambda: client.similar(codes=code, k=100),
                    "bare_search_library_collection": lambda: raw.search(
                        name, data=codes_to_bytes(code), anns_field="code", limit=100, search_params=params,
                        output_fields=fields, consistency_level=level)}
                for key, call in calls.items():
                    t0 = time.perf_counter()
                    call()
                    lat[key].append((time.perf_counter() - t0) * 1000)
            out.update({key: percentiles(v) for key, v in lat.items()})
            out.update({"define": percentiles(t_def[1:]), "members": percentiles(t_mem),
                   "bare_search_limit100": percentiles(t_bare100), f"bare_search_limit{candidates}": percentiles(t_bare_pool),
                   "members_p100": float(np.mean(p_mem)), "plain_p100": float(np.mean(p_plain)),
                   "pool_recall_of_exhaustive_top100": float(np.mean(pool_recall)),
                   "other_candidates": {m: {**percentiles(t_other[m]), "pool_recall": float(np.mean(r_other[m]))}
                                        for m in others}})
    finally:
        drop_collections(uri, name)
    print(f"\n{label}: {len(Ldb):,} codes of {Ldb.shape[1] * 8:,} bits; a category from 5 stored images of each class")
    print(f"  {'call':48s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for key in ("category_search", "bare_search_category_collection", "plain_search",
                "bare_search_library_collection", "members", "bare_search_limit100", f"bare_search_limit{candidates}",
                "define", "define_10_positives", "define_first", "client_open"):
        print(f"  {key:48s} {out[key]['p50_ms']:8.1f} {out[key]['p99_ms']:8.1f}")
    print(f"  the first definition in this process (imports scipy's eigensolvers): "
          f"{out['define_first_in_process_ms']:.0f} ms")
    ratio = {"category search / its bare search": ("category_search", "bare_search_category_collection"),
             "plain search / its bare search": ("plain_search", "bare_search_library_collection"),
             "members / bare search from the positives (limit 100)": ("members", "bare_search_limit100")}
    for text, (a, b) in ratio.items():
        print(f"  {text}: {out[a]['p50_ms'] / out[b]['p50_ms']:.2f}x (p50)")
    print(f"  precision@100: members {out['members_p100']:.3f}, plain search from the same 5 images "
          f"{out['plain_p100']:.3f}; the pool finds {out['pool_recall_of_exhaustive_top100']:.3f} of the "
          f"exhaustive top 100")
    for m, r in out["other_candidates"].items():
        print(f"  members with {m:,} candidates a positive: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; "
              f"finds {r['pool_recall']:.3f} of the exhaustive top 100")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--candidates", type=int, default=2000)
    p.add_argument("--also", type=int, nargs="*", default=[], help="other candidate counts to time")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--skip-lite", action="store_true",
                   help="the server alone (Milvus Lite's embedded server can stay busy for minutes after its run)")
    args = p.parse_args(argv)
    Xtr, ytr, _, _ = pixel_features()
    lib, _ = cached_library("pixels", Xtr, n_rounds=args.rounds)
    Ldb = lib.transform(Xtr)
    results = {"library_bits": lib.n_bits_, "candidates": args.candidates}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_lite:
            results["lite"] = bench(str(Path(tmp) / "m.db"), lib, Ldb, ytr, "Milvus Lite", args.candidates, args.also)
        if not args.skip_server:
            from milvus_hash.store.local_server import LocalMilvusServer

            with LocalMilvusServer(Path(tmp) / "server") as server:
                results["server"] = bench(server.uri, lib, Ldb, ytr, "Milvus server (local standalone)",
                                          args.candidates, args.also)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "members_bench.json"  # a run of one deployment keeps the other's last numbers
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **results}, indent=2))
    print(f"\nwrote {RESULTS / 'members_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
