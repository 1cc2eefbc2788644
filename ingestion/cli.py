"""The ``milvus-hash`` command line.

Exit codes: 0 success; 1 an error that a retry will not fix (bad input, unknown collection,
encoder mismatch); 2 a usage error; 75 Milvus unreachable or busy (a retry may help).
"""

from __future__ import annotations

import functools
import json
import sys

import click

from milvus_hash import DEFAULT_URI, HashStore, MilvusHashError, __version__

EXIT_ERROR, EXIT_RETRY = 1, 75


class HashCliError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def milvus_options(fn):
    """--uri / --token, read from MILVUS_URI / MILVUS_TOKEN when not given."""

    @click.option("--uri", envvar="MILVUS_URI", default=DEFAULT_URI, show_default=True,
                  help="Milvus Lite file (*.db) or server URI such as http://localhost:19530 [env: MILVUS_URI]")
    @click.option("--token", envvar="MILVUS_TOKEN", default=None,
                  help="user:password or API key for a server with authentication [env: MILVUS_TOKEN]")
    @click.option("--timeout", type=float, default=30.0, show_default=True,
                  help="Seconds one Milvus call may take before giving up (exit code 75).")
    @click.option("--consistency-level", "consistency_level", default="Strong", show_default=True,
                  type=click.Choice(["Strong", "Bounded", "Session", "Eventually"]),
                  help="Consistency of new collections.")
    @functools.wraps(fn)
    def wrapper(*args, uri, token, timeout, consistency_level, **kwargs):
        try:
            with HashStore(uri, token=token, timeout=timeout, consistency_level=consistency_level) as store:
                return fn(*args, store=store, **kwargs)
        except MilvusHashError as exc:
            raise HashCliError(str(exc), EXIT_RETRY if exc.retryable else EXIT_ERROR) from exc

    return wrapper


def _load_config(ctx: click.Context, _param, path: str | None) -> None:
    """--config: the file's store section becomes every command's defaults (flags and env win)."""
    if path is None:
        return
    from milvus_hash.config import load_config

    try:
        store = load_config(path).get("store", {})
    except MilvusHashError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--config") from exc
    ctx.default_map = {name: dict(store) for name in cli.commands}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="milvus-hash")
@click.option("--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True,
              expose_value=False, help="YAML file with a store section (see configs/store.yaml).")
def cli():
    """Learned binary hashing of images, stored and searched in Milvus.

    \b
    Examples:
      milvus-hash demo                          # round trip on embedded Milvus Lite
      milvus-hash info                          # collections, counts, encoders
      MILVUS_URI=http://localhost:19530 milvus-hash info
      milvus-hash --config configs/store.yaml info
    """


@cli.command()
@milvus_options
@click.option("--collection", default="demo_digits", show_default=True, help="Collection to write.")
@click.option("--bits", "n_bits", default=64, show_default=True, type=int, help="Code length (multiple of 8).")
@click.option("-k", default=10, show_default=True, type=int, help="Neighbours to show per query.")
@click.option("--queries", "n_queries", default=5, show_default=True, type=int, help="Number of query images.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(store, collection, n_bits, k, n_queries, seed, as_json):
    """Round trip: real images to binary codes, into Milvus, searched back.

    Encodes scikit-learn's bundled handwritten digits (1,797 images) with a 64-bit
    random-projection hash, upserts them (a rerun rewrites the same ids), and runs
    Hamming queries through Milvus, checking them against an exact numpy search.

    \b
    Examples:
      milvus-hash demo
      milvus-hash demo --uri http://localhost:19530 --bits 128
    """
    from .demo import run_demo

    report = run_demo(store, collection=collection, n_bits=n_bits, k=k, n_queries=n_queries, seed=seed)
    if as_json:
        click.echo(json.dumps(report.__dict__, indent=2))
    else:
        click.echo(f"{store.target}: collection {report.collection!r}, {report.written} codes of "
                   f"{report.n_bits} bits written in {report.write_seconds:.2f} s")
        for q in report.queries:
            click.echo(f"  query id {q['id']:4d} (digit {q['label']}): top-{k} digits {q['hit_labels']} "
                       f"at distances {q['distances']}  precision {q['precision']:.2f}")
        click.echo(f"mean precision@{k}: {report.mean_precision:.3f}; "
                   f"{len(report.queries)} queries in {report.search_seconds * 1000:.1f} ms; "
                   f"Milvus top-k equals exact numpy top-k: {'yes' if report.matches_numpy else 'NO'}")
    if not report.matches_numpy:
        raise HashCliError("Milvus results differ from the exact numpy search", EXIT_ERROR)


@cli.command()
@milvus_options
@click.argument("collections", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(store, collections, as_json):
    """List milvus-hash collections with their row counts and encoders.

    \b
    Examples:
      milvus-hash info
      milvus-hash info demo_digits --json
    """
    names = list(collections) or store.list_collections()
    rows = []
    for name in names:
        d = store.describe_collection(name)
        rows.append({"collection": name, "count": store.count(name), "n_bits": d.n_bits,
                     "encoder": d.encoder.to_dict(), "index": d.index_type})
    if as_json:
        click.echo(json.dumps({"uri": store.uri, "collections": rows}, indent=2))
        return
    click.echo(f"{store.target}: {len(rows)} collection(s)")
    for r in rows:
        click.echo(f"  {r['collection']}: {r['count']} codes, {r['n_bits']} bits, index {r['index']}, "
                   f"encoder {r['encoder']['kind']}:{r['encoder']['fingerprint'][:16]}")


def main() -> None:
    cli(prog_name="milvus-hash")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
