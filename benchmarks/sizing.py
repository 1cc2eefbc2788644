"""Bytes per item, memory and disk of milvus-hash collections at 1M / 100M / 1B items: the model
behind docs/deployment.md's sizing table (arithmetic with the assumptions printed; the scale-down
measurements of issue 15 are what checks it).

    .venv/bin/python benchmarks/sizing.py                     # the docs' table
    .venv/bin/python benchmarks/sizing.py --source-bytes 120  # longer paths

The model, per item of a loaded collection (Milvus 2.5/2.6, no mmap):
- system and key fields: the int64 primary key and the int64 timestamp (16 bytes);
- scalar fields: source path, label and metadata JSON as stored (their average sizes are
  assumptions: ``--source-bytes``, ``--label-bytes``, ``--metadata-bytes``) plus a 4-byte offset each;
- the code and its index (an index that holds the raw codes replaces the raw field in memory):
  BIN_FLAT n_bits / 8; BIN_IVF_FLAT n_bits / 8 + 8 (the id in its list); HNSW n_bits / 8 + 8 + the
  level-0 links, 2 M x 4 + 4 bytes (M = 16), and about 1 / M of that again for the upper levels.
Disk (object storage): the binlogs hold the fields once more (codes incompressible, scalars about
halved by compression) beside the index files, each about its size in memory.
"""

from __future__ import annotations

import argparse

SCALES = (1_000_000, 100_000_000, 1_000_000_000)
LIBRARY_BITS = (512, 2048, 20_000)
CATEGORY_BITS = (16, 64)


def index_bytes(n_bits: int, index: str, m: int = 16) -> float:
    code = n_bits / 8
    if index == "BIN_FLAT":
        return code
    if index == "BIN_IVF_FLAT":
        return code + 8
    if index == "HNSW":
        level0 = 2 * m * 4 + 4
        return code + 8 + level0 * (1 + 1 / m)
    raise ValueError(f"index: expected BIN_FLAT, BIN_IVF_FLAT or HNSW, received {index!r}")


def item_bytes(n_bits: int, index: str, *, source: int, label: int, metadata: int) -> tuple[float, float]:
    """(memory, disk) bytes of one item of a collection of ``n_bits`` codes."""
    scalars = source + label + metadata + 3 * 4
    memory = 16 + scalars + index_bytes(n_bits, index)
    disk = 16 + scalars / 2 + n_bits / 8 + index_bytes(n_bits, index)
    return memory, disk


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


def table(args) -> list[str]:
    sizes = dict(source=args.source_bytes, label=args.label_bytes, metadata=args.metadata_bytes)
    rows = ["| collection | index | bytes an item (memory / disk) | memory at 1M / 100M / 1B | disk at 1M / 100M / 1B |",
            "|---|---|---|---|---|"]
    cases = [(f"library, {b:,} bits", b, idx) for b in LIBRARY_BITS for idx in ("BIN_FLAT", "HNSW")]
    cases += [(f"category, {b} bits", b, "BIN_FLAT") for b in CATEGORY_BITS]
    for name, bits, idx in cases:
        mem, disk = item_bytes(bits, idx, **sizes)
        rows.append(f"| {name} | {idx} | {mem:,.0f} / {disk:,.0f} | "
                    + " / ".join(human(mem * n) for n in SCALES) + " | "
                    + " / ".join(human(disk * n) for n in SCALES) + " |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source-bytes", type=int, default=64, help="average source path length (default 64)")
    ap.add_argument("--label-bytes", type=int, default=8, help="average label length (default 8)")
    ap.add_argument("--metadata-bytes", type=int, default=2, help="average metadata JSON size (default 2: {})")
    args = ap.parse_args(argv)
    print(f"assumed per item: source {args.source_bytes} B, label {args.label_bytes} B, "
          f"metadata {args.metadata_bytes} B; HNSW M = 16")
    print("\n".join(table(args)))


if __name__ == "__main__":
    main()
