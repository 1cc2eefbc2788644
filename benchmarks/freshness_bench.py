"""Materialized categories as the store changes: materialize time beside the time to stream the library
codes out (the baseline, measured in the same run), a second materialize with nothing to do, and the
repair after items written around milvus-hash with smaller ids (the case the old resume-by-largest-id
missed).

    .venv/bin/python benchmarks/freshness_bench.py                  # 60,000 codes of 2,048 bits, Milvus Lite
    .venv/bin/python benchmarks/freshness_bench.py --uri http://127.0.0.1:19530 --n 20000

Random library codes (the category code's cost does not depend on what they mean); a one-class category
defined from 10 stored ids. Prints one line a step and writes ``benchmarks/results/freshness.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", default=None, help="Milvus URI (default: a Milvus Lite file in a temporary folder)")
    ap.add_argument("--n", type=int, default=60_000, help="library codes at first")
    ap.add_argument("--later", type=int, default=10_000, help="items written later, around milvus-hash")
    ap.add_argument("--bits", type=int, default=2048)
    args = ap.parse_args(argv)

    from milvus_hash import EncoderSpec, HashClient, HashStore

    rng = np.random.default_rng(0)
    spec = EncoderSpec("ugh", "freshness-bench-" + "0" * 48, args.bits)
    codes = rng.integers(0, 256, (args.n + args.later, args.bits // 8), dtype=np.uint8)
    ids = rng.permutation(10**9)[:args.n].astype(np.int64) + 10**9
    later_ids = np.arange(1, args.later + 1, dtype=np.int64)  # smaller than every id stored first
    out: dict = {"n": args.n, "later": args.later, "bits": args.bits}
    with tempfile.TemporaryDirectory() as tmp:
        uri = args.uri or str(Path(tmp) / "freshness.db")
        with HashStore(uri) as store:
            store.drop_collection("freshness_bench")
            store.create_collection("freshness_bench", encoder=spec)
            store.insert("freshness_bench", ids=ids, codes=codes[:args.n], encoder=spec)
            client = HashClient(store=store, collection="freshness_bench", background=2000)
            client.define("c", ids=ids[:10].tolist())
            t = time.perf_counter()
            streamed = sum(len(r) for r in store.iter_records("freshness_bench"))
            out["stream_s"] = time.perf_counter() - t
            t = time.perf_counter()
            first = client.materialize("c")
            out["materialize_s"], out["materialize_written"] = time.perf_counter() - t, first.written
            t = time.perf_counter()
            again = client.materialize("c")
            out["noop_s"], out["noop_written"] = time.perf_counter() - t, again.written
            store.upsert("freshness_bench", ids=later_ids, codes=codes[args.n:], encoder=spec)
            state = client.status("c")
            out["status_after_later"] = str(state)
            t = time.perf_counter()
            repaired = client.materialize("c")
            out["repair_s"], out["repair_written"], out["rows"] = time.perf_counter() - t, repaired.written, repaired.rows
            out["library_rows"] = store.count("freshness_bench")
            store.drop_collection(client.task_collection("c"))
            client.drop("c")
            store.drop_collection("freshness_bench")
            out["target"] = str(store.target)
    print(f"{out['target']}: {args.n:,} library codes of {args.bits} bits")
    print(f"  stream them out (baseline): {out['stream_s']:.1f} s ({streamed:,} rows)")
    print(f"  first materialize: {out['materialize_s']:.1f} s ({out['materialize_written']:,} written, "
          f"{out['materialize_s'] / out['stream_s']:.2f}x the stream)")
    print(f"  materialize again, nothing to do: {out['noop_s']:.1f} s ({out['noop_written']:,} written)")
    print(f"  after {args.later:,} items with smaller ids written around milvus-hash: {out['status_after_later']}")
    print(f"  materialize: {out['repair_s']:.1f} s ({out['repair_written']:,} written); "
          f"{out['rows']:,} rows of {out['library_rows']:,}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "freshness.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
