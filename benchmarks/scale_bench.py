"""The scale-down curve: insert and search throughput and resident memory as a collection grows.

For each back-end (Milvus Lite, the local Milvus 2.3.5 standalone server) and code length (64 and
256 bits, and a 2,048-bit library code), one collection grows through the sizes asked (default 1M,
3M, 10M codes, random codes: exact BIN_FLAT search does the same work whatever the codes). At each
size, measured in the same run:

* insert rows/s of the rows added to reach it (``HashStore.insert``, column batches of 10,000);
* search queries/s: ``HashStore.search`` of 100 queries, k = 100, median of 3, after a flush and
  once the server has indexed every sealed segment;
* resident memory (RSS, MiB) of the Milvus process (the server, or Milvus Lite's embedded server).

Then search time a query and resident memory are fitted as ``a + b N`` (:func:`fit`) and extrapolated
to 1B codes: what a cluster at that scale has to split across its nodes. Assumptions are printed
with the fit: exact search, one machine's two cores, growth that stays as measured.

Usage::

    .venv/bin/python benchmarks/scale_bench.py                                  # 1M, 3M, 10M; ~1 hour here
    .venv/bin/python benchmarks/scale_bench.py --sizes 100000 300000 --bits 64  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from milvus_hash import EncoderSpec, HashStore  # noqa: E402
from milvus_hash.store.local_server import LocalMilvusServer  # noqa: E402
from store_bench import wait_indexed  # noqa: E402  (flush, then wait until every sealed row is indexed)

BATCH = 10_000
QUERIES = 100
K = 100


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these processes and their descendants, in MiB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def milvus_pids(server: LocalMilvusServer | None, uri: str) -> list[int]:
    """The Milvus process(es): the local server's, or the Milvus Lite embedded server of ``uri`` (a
    child of this process whose command line names the database file: an earlier Lite server that
    has not exited yet is not counted, as it was in the run of 2026-12-02)."""
    if server is not None:
        return [server.proc.pid]
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                name = stat.split("(", 1)[1].split(")", 1)[0]
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me and name.startswith("milvus") and Path(uri).name in cmdline:
                out.append(int(entry))
    return out


def grow(label: str, uri: str, server, sizes: list[int], n_bits: int, seed: int, out: list[dict],
         save) -> list[dict]:
    """Grow one collection through ``sizes``, appending a row to ``out`` (and saving) at each."""
    spec = EncoderSpec("bench", f"scale-{seed}-{n_bits}", n_bits)
    name = f"scale_{n_bits}"
    queries = np.random.default_rng(seed).integers(0, 256, (QUERIES, n_bits // 8), dtype=np.uint8)
    with HashStore(uri, timeout=600) as store:
        store.drop_collection(name)
        store.create_collection(name, encoder=spec)
        have = 0
        for n in sizes:
            t0 = time.perf_counter()
            for start in range(have, n, BATCH):
                stop = min(n, start + BATCH)
                rng = np.random.default_rng([seed, n_bits, start])
                store.insert(name, ids=np.arange(start, stop, dtype=np.int64),
                             codes=rng.integers(0, 256, (stop - start, n_bits // 8), dtype=np.uint8), encoder=spec)
            insert_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            wait_indexed(store, name)
            settle_s = time.perf_counter() - t1
            # warm up until two searches in a row agree within 20%: after a flush the 2.3.5 server
            # searches the rows in growing segments (slowly) until the query node has loaded the
            # sealed ones, seconds after the index says it is done (a first run measured 14 q/s at 1M
            # codes and 50 at 10M)
            last, deadline = None, time.monotonic() + 300
            while time.monotonic() < deadline:
                t2 = time.perf_counter()
                store.search(name, codes=queries, k=K)
                took = time.perf_counter() - t2
                if last is not None and abs(took - last) <= 0.2 * last:
                    break
                last = took
            times = []
            for _ in range(3):
                t2 = time.perf_counter()
                res = store.search(name, codes=queries, k=K)
                times.append(time.perf_counter() - t2)
            assert res.ids.shape == (QUERIES, K) and (res.ids >= 0).all()
            row = {"backend": label, "n_bits": n_bits, "n": n, "insert_rows_s": (n - have) / insert_s,
                   "flush_index_s": settle_s, "search_qps": QUERIES / statistics.median(times),
                   "rss_mib": rss_mib(milvus_pids(server, uri)), "count": store.count(name)}
            assert row["count"] == n, row
            out.append(row)
            save()
            print(f"  [{label}] {n_bits:>5} bits  N = {n:>12,}  insert {row['insert_rows_s']:>9,.0f} rows/s  "
                  f"flush+index {settle_s:6.1f} s  search {row['search_qps']:8.1f} q/s  RSS {row['rss_mib']:8,.0f} MiB",
                  flush=True)
            have = n
        store.drop_collection(name)
    return out


def fit(rows: list[dict]) -> dict:
    """How each measure grows with N, and what that predicts at 1B codes on one machine like this one.

    Search time a query and resident memory are fitted as ``a + b N`` (least squares): exact
    BIN_FLAT search scans every code, and memory holds every code plus a fixed part; ``b`` is the
    cost of one more code (seconds a query, bytes). The power ``N^p`` of search throughput says
    whether the scan stays linear (p = -1). Insert rate: its mean (it should not depend on N).
    """
    n = np.array([r["n"] for r in rows], float)
    t = QUERIES / np.array([r["search_qps"] for r in rows])  # seconds for 100 queries
    rss = np.array([r["rss_mib"] for r in rows]) * 2**20
    tb, ta = np.polyfit(n, t / QUERIES, 1)
    mb, ma = np.polyfit(n, rss, 1)
    p = float(np.polyfit(np.log(n), np.log([r["search_qps"] for r in rows]), 1)[0])
    return {"insert_rows_s_mean": float(np.mean([r["insert_rows_s"] for r in rows])),
            "search_s_per_query": {"a": float(ta), "b_per_code": float(tb), "at_1B": float(ta + tb * 1e9)},
            "search_qps_power": p,
            "rss_bytes": {"a": float(ma), "b_per_code": float(mb), "at_1B": float(ma + mb * 1e9)}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    p.add_argument("--bits", type=int, nargs="+", default=[64, 256, 2048])
    p.add_argument("--backends", nargs="+", default=["server", "lite"], choices=["lite", "server"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/scale_bench.json")
    args = p.parse_args(argv)
    sizes = sorted(args.sizes)
    rows: list[dict] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():  # after every measurement: a long run stopped part-way keeps what it measured
        out.write_text(json.dumps({"rows": rows}, indent=2))

    with tempfile.TemporaryDirectory(prefix="milvus-hash-scale-") as tmp:
        for backend in args.backends:
            for n_bits in args.bits:  # a fresh Milvus per code length: RSS is the collection's own
                if backend == "server":
                    with LocalMilvusServer(Path(tmp) / f"server{n_bits}", stop_grace=10) as server:
                        grow("Milvus 2.3.5 standalone", server.uri, server, sizes, n_bits, args.seed, rows, save)
                else:
                    grow("Milvus Lite 2.5.1", str(Path(tmp) / f"lite{n_bits}.db"), None, sizes, n_bits,
                         args.seed, rows, save)
    print("\nfits (search time a query and RSS as a + b N; search q/s as N^p), and what they predict at N = 1B")
    print("on one machine like this one (2 cores, exact BIN_FLAT search, the growth measured here continuing)")
    fits = []
    for backend in dict.fromkeys(r["backend"] for r in rows):
        for n_bits in args.bits:
            series = [r for r in rows if r["backend"] == backend and r["n_bits"] == n_bits]
            if len(series) < 2:
                continue
            f = {"backend": backend, "n_bits": n_bits, **fit(series)}
            fits.append(f)
            print(f"  [{backend}] {n_bits:>5} bits: insert {f['insert_rows_s_mean']:,.0f} rows/s; search q/s ~ "
                  f"N^{f['search_qps_power']:+.2f}, {f['search_s_per_query']['b_per_code'] * 1e9:.1f} ns a code a "
                  f"query -> {f['search_s_per_query']['at_1B']:.1f} s a query at 1B; RSS "
                  f"{f['rss_bytes']['b_per_code']:.0f} B a code -> {f['rss_bytes']['at_1B'] / 2**30:,.0f} GiB at 1B")
    out.write_text(json.dumps({"rows": rows, "fits": fits}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
