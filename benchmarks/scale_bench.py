"""The scale-down curve: insert and search throughput and resident memory as a collection grows.

For each back-end (Milvus Lite, the local Milvus 2.3.5 standalone server) and code length (64 and
256 bits, and a 2,048-bit library code), one collection grows through the sizes asked (default 1M,
3M, 10M codes, random codes: exact BIN_FLAT search does the same work whatever the codes). At each
size, measured in the same run:

* insert rows/s of the rows added to reach it (``HashStore.insert``, column batches of 10,000);
* search queries/s: ``HashStore.search`` of 100 queries, k = 100, median of 3, after a flush and
  once the server has indexed every sealed segment;
* resident memory (RSS, MiB) of the Milvus process (the server, or Milvus Lite's embedded server).

Then a power law ``y = a N^b`` is fitted to each series (least squares on logs) and extrapolated to
1B codes, the numbers a cluster at that scale would have to split across nodes. Assumptions are
printed with the fit: exact search, one machine's two cores, growth that keeps its exponent.

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


def milvus_pids(server: LocalMilvusServer | None) -> list[int]:
    """The Milvus process(es): the local server's, or Milvus Lite's embedded server (a child of this process)."""
    if server is not None:
        return [server.proc.pid]
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                name = stat.split("(", 1)[1].split(")", 1)[0]
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me and name.startswith("milvus"):
                out.append(int(entry))
    return out


def wait_indexed(store: HashStore, name: str, timeout: float = 1800) -> None:
    store.flush(name)
    client = store._client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idx = client.describe_index(name, client.list_indexes(name)[0])
        if int(idx.get("pending_index_rows", 0)) == 0 and idx.get("state", "Finished") == "Finished":
            return
        time.sleep(1)


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
            store.search(name, codes=queries[:5], k=K)  # loads what was sealed
            times = []
            for _ in range(3):
                t2 = time.perf_counter()
                res = store.search(name, codes=queries, k=K)
                times.append(time.perf_counter() - t2)
            assert res.ids.shape == (QUERIES, K) and (res.ids >= 0).all()
            row = {"backend": label, "n_bits": n_bits, "n": n, "insert_rows_s": (n - have) / insert_s,
                   "flush_index_s": settle_s, "search_qps": QUERIES / statistics.median(times),
                   "rss_mib": rss_mib(milvus_pids(server)), "count": store.count(name)}
            assert row["count"] == n, row
            out.append(row)
            save()
            print(f"  [{label}] {n_bits:>5} bits  N = {n:>12,}  insert {row['insert_rows_s']:>9,.0f} rows/s  "
                  f"flush+index {settle_s:6.1f} s  search {row['search_qps']:8.1f} q/s  RSS {row['rss_mib']:8,.0f} MiB",
                  flush=True)
            have = n
        store.drop_collection(name)
    return out


def fit(rows: list[dict], key: str) -> tuple[float, float]:
    """``(a, b)`` of ``y = a N^b`` by least squares on logs."""
    n = np.log([r["n"] for r in rows])
    y = np.log([r[key] for r in rows])
    b, log_a = np.polyfit(n, y, 1)
    return float(np.exp(log_a)), float(b)


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
    print("\nfits y = a N^b, and what they predict at N = 1B (exact BIN_FLAT search on one machine like this one)")
    fits = []
    for backend in dict.fromkeys(r["backend"] for r in rows):
        for n_bits in args.bits:
            series = [r for r in rows if r["backend"] == backend and r["n_bits"] == n_bits]
            if len(series) < 2:
                continue
            f = {"backend": backend, "n_bits": n_bits}
            for key in ("insert_rows_s", "search_qps", "rss_mib"):
                a, b = fit(series, key)
                f[key] = {"a": a, "b": b, "at_1B": a * 1e9 ** b}
            fits.append(f)
            print(f"  [{backend}] {n_bits:>5} bits: insert N^{f['insert_rows_s']['b']:+.2f} "
                  f"-> {f['insert_rows_s']['at_1B']:,.0f} rows/s; search N^{f['search_qps']['b']:+.2f} "
                  f"-> {f['search_qps']['at_1B']:.3f} q/s; RSS N^{f['rss_mib']['b']:+.2f} "
                  f"-> {f['rss_mib']['at_1B'] / 1024:,.1f} GiB")
    out.write_text(json.dumps({"rows": rows, "fits": fits}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
