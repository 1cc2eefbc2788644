"""The ``milvus-hash`` command line.

Exit codes: 0 success; 1 an error that a retry will not fix (bad input, unknown collection,
encoder mismatch); 2 a usage error; 75 Milvus unreachable or busy (a retry may help).
"""

from __future__ import annotations

import json
import sys

import click

from milvus_hash import MilvusHashError, __version__

from .options import EXIT_ERROR, EXIT_RETRY, HashCliError, milvus_options


def _load_config(ctx: click.Context, _param, path: str | None) -> None:
    """--config: the file's store section becomes every command's defaults (flags and env win)."""
    if path is None:
        return
    from milvus_hash.config import load_config

    try:
        config = load_config(path)
    except MilvusHashError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--config") from exc
    store = config.get("store", {})
    ctx.meta["milvus_hash.config"] = config
    ctx.default_map = {name: dict(store) for name in cli.commands}


class _Commands(click.Group):
    """The command group: Ctrl-C anywhere in a command (its start-up included) exits 130, as a shell
    expects of an interrupted program, not click's "Aborted!" with 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)


def _debug(ctx: click.Context, _param, on: bool) -> None:
    """--debug: tracebacks behind one-line errors, pymilvus's logs and Milvus Lite's server output."""
    if on:
        import logging
        import os

        os.environ["MILVUS_HASH_DEBUG"] = "1"
        os.environ.pop("MILVUS_HASH_QUIET_PYMILVUS", None)
        logging.getLogger("pymilvus").setLevel(logging.NOTSET)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="milvus-hash")
@click.option("--debug", is_flag=True, callback=_debug, is_eager=True, expose_value=False,
              help="Show the traceback behind an error, pymilvus's logs and Milvus Lite's output "
                   "[env: MILVUS_HASH_DEBUG=1].")
@click.option("--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True,
              expose_value=False, help="YAML file with a store section (see configs/store.yaml).")
def cli():
    """Learned binary hashing of images, stored and searched in Milvus.

    \b
    Examples:
      milvus-hash demo                          # images -> UGH codes -> Milvus Lite -> search
      milvus-hash info                          # collections, counts, encoders
      MILVUS_URI=http://localhost:19530 milvus-hash info
      milvus-hash --config configs/store.yaml info
    """


def _versus(name_a: str, name_b: str, a_k: float, a_100: float, b_k: float, b_100: float, k: int) -> str:
    return (f"   precision of {name_a}: {a_k:.2f} at {k}, {a_100:.2f} at 100; {name_b}: {b_k:.2f} at {k}, "
            f"{b_100:.2f} at 100 ({_verdict(a_100, b_100, 'at 100')})")


def _verdict(a: float, b: float, when: str) -> str:
    """Say honestly how the category fared against the plain search."""
    if a > b + 0.005:
        return f"the category wins {when} ({a:.2f} vs {b:.2f})"
    if a < b - 0.005:
        return f"the category LOSES to a plain search {when} ({a:.2f} vs {b:.2f})"
    return f"the category ties with a plain search {when} ({a:.2f})"


@cli.command()
@milvus_options
@click.option("--dataset", type=click.Choice(["auto", "fashion-mnist", "digits"]), default="auto", show_default=True,
              help="auto: Fashion-MNIST where Debian's dataset-fashion-mnist is installed, else scikit-learn's digits.")
@click.option("--workdir", type=click.Path(file_okay=False), default="milvus-hash-demo", show_default=True,
              help="Folder for the images, features and library.")
@click.option("--collection", default="demo", show_default=True, help="Collection to write.")
@click.option("--rounds", type=click.IntRange(1), default=40, show_default=True, help="Library rounds (10 bits each).")
@click.option("-k", default=10, show_default=True, type=click.IntRange(1, 1000), help="Neighbours to show per query.")
@click.option("--queries", "n_queries", default=5, show_default=True, type=click.IntRange(1), help="Query images.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--backbone", type=click.Choice(["efficientnet_lite0", "pixels"]), default="efficientnet_lite0",
              show_default=True, help="Features: the pretrained CNN installed with milvus-hash, or raw pixels "
                                      "(better for the 8x8 digits).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(store, dataset, workdir, collection, rounds, k, n_queries, seed, backbone, as_json):
    """The main job on real images: folder -> features -> UGH library -> Milvus -> search,
    then a category from 5 pictures of one class, its members beside a plain search.

    Writes a real sample as PNG files (Fashion-MNIST, 3,000 images, where installed;
    else scikit-learn's 1,797 digits), extracts features (EfficientNet-Lite0 with
    ImageNet weights, installed with milvus-hash: no download), hyper-trains a small UGH
    library on them without labels, ingests every image, then queries with a few of
    the images and checks Milvus's answer against an exact numpy search; finally
    defines a category from 5 pictures of one class and prints its top members and
    their precision beside a plain search from the same 5 pictures, then the same
    for every class. Reruns are idempotent.

    \b
    Examples:
      milvus-hash demo
      milvus-hash demo --dataset digits --backbone pixels --uri http://localhost:19530
    """
    from ..demo import run_demo

    report = run_demo(store, workdir=workdir, dataset=dataset, collection=collection, rounds=rounds, k=k,
                      n_queries=n_queries, seed=seed, backbone=backbone, progress=False, extract_progress=not as_json,
                      log=(lambda *_: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(report.__dict__, indent=2))
    else:
        click.echo(f"5. {len(report.queries)} query images, top-{k} by Hamming distance (the query itself left out):")
        for q in report.queries:
            click.echo(f"  {q['image']} ({q['label']}): {q['hit_labels']} at {q['distances']}  "
                       f"precision {q['precision']:.2f}")
        click.echo(f"mean precision@{k}: {report.mean_precision:.3f}; "
                   f"Milvus top-k equals exact numpy top-k: {'yes' if report.matches_numpy else 'NO'}")
        c = report.category
        click.echo(f"6. \"here are 5 pictures of a {c['label']}: find all of them\": category {c['name']!r} from "
                   f"{', '.join(c['examples'])}; its top-{k} members (the 5 pictures left out):")
        for m in c["members"]:
            click.echo(f"  {m['probability']:.3f}  {m['label']:>10s}  {m['source']}")
        click.echo(_versus("the category's members", "a plain search from the same 5 pictures",
                           c["precision_at_k"], c["precision_at_100"], c["plain_precision_at_k"],
                           c["plain_precision_at_100"], k))
        click.echo(f"7. one round of marks: a simulated user marks the top 20 members ({c['marked_right']} right, "
                   f"{c['marked_wrong']} wrong) and the category is refined (`milvus-hash category refine`); "
                   f"its next top-{k}, only pictures not seen yet:")
        for m in c["members_after"]:
            click.echo(f"  {m['probability']:.3f}  {m['label']:>10s}  {m['source']}")
        click.echo(_versus("the refined category", f"a plain search from the 5 pictures and the {c['marked_right']} "
                           "marked right", c["after_precision_at_k"], c["after_precision_at_100"],
                           c["plain_after_precision_at_k"], c["plain_after_precision_at_100"], k))
        e = report.every_class
        click.echo(f"8. the same for every class (5 pictures each, one draw), precision at {k} / at 100, "
                   "before and after one round of 20 marks:")
        at_k = f"P@{k}"
        click.echo(f"  {'class':>12s}  {'members ' + at_k:>12s} {'P@100':>6s}  {'plain ' + at_k:>10s} {'P@100':>6s}"
                   f"  | {'refined ' + at_k:>12s} {'P@100':>6s}  {'plain ' + at_k:>10s} {'P@100':>6s}")
        for r in [*e["classes"], {"label": "mean", **e["mean"]}]:
            click.echo(f"  {r['label']:>12s}  {r['precision_at_k']:12.2f} {r['precision_at_100']:6.2f}  "
                       f"{r['plain_precision_at_k']:10.2f} {r['plain_precision_at_100']:6.2f}  | "
                       f"{r['after_precision_at_k']:12.2f} {r['after_precision_at_100']:6.2f}  "
                       f"{r['plain_after_precision_at_k']:10.2f} {r['plain_after_precision_at_100']:6.2f}")
        m = e["mean"]
        click.echo(_verdict(m["precision_at_100"], m["plain_precision_at_100"], "before marks") + "; "
                   + _verdict(m["after_precision_at_100"], m["plain_after_precision_at_100"], "after one round"))
        click.echo(f"try: milvus-hash category members {c['name']} --collection {report.collection} --uri {store.uri}")
        click.echo(f"see the pictures: milvus-hash serve --collection {report.collection} --uri {store.uri}"
                   f"{' --library ' + report.library if report.library else ''}")
    if not report.matches_numpy:
        raise HashCliError("Milvus results differ from the exact numpy search", EXIT_ERROR)


@cli.command()
@milvus_options(existing="or-none")
@click.argument("collections", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(store, collections, as_json, uri=None):
    """List milvus-hash collections with their row counts and encoders.

    \b
    Examples:
      milvus-hash info
      milvus-hash info demo_digits --json
    """
    if store is None:  # a Milvus Lite file that does not exist: said, not created
        if collections:
            raise HashCliError(f"uri: expected an existing Milvus Lite file holding {', '.join(collections)}, got "
                               f"{uri!r}: no such file", EXIT_ERROR)
        if as_json:
            click.echo(json.dumps({"uri": uri, "exists": False, "collections": []}, indent=2))
        else:
            click.echo(f"Milvus Lite at {uri}: no such file yet (`milvus-hash ingest` creates it)")
        return
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


from .category import category  # noqa: E402
from .eval import eval_command  # noqa: E402
from .features import features, hypertrain  # noqa: E402
from .ingest import ingest, search  # noqa: E402
from .serve import serve  # noqa: E402
from .uth import train_uth  # noqa: E402

for _command in (features, hypertrain, train_uth, ingest, search, category, eval_command, serve):
    cli.add_command(_command)


__all__ = ["EXIT_ERROR", "EXIT_RETRY", "cli", "main"]


def main() -> None:
    import logging
    import os

    # pymilvus logs every failed call with its traceback (100-260 lines for one failed write); the
    # command line reports each failure in one line with its exit code instead (MILVUS_HASH_DEBUG=1
    # keeps pymilvus's logs). pymilvus sets its levels on import: the store applies this after it.
    if os.environ.get("MILVUS_HASH_DEBUG") != "1":
        os.environ.setdefault("MILVUS_HASH_QUIET_PYMILVUS", "1")
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    import signal

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (a background job)
        signal.signal(signal.SIGINT, _interrupt)
    try:
        cli(prog_name="milvus-hash")
    except SystemExit as exc:
        _exit(exc.code)


#: Packages whose import runs native code that calls back into Python: a KeyboardInterrupt raised
#: there becomes a C++ exception and the process aborts ("terminate called after throwing an
#: instance of 'pybind11::error_already_set'", exit -6) instead of exiting 130.
_NATIVE_IMPORTS = ("torch", "torchvision", "timm")


def _importing_native() -> bool:
    return any(getattr(getattr(sys.modules.get(name), "__spec__", None), "_initializing", False)
               for name in _NATIVE_IMPORTS)


def _interrupt(signum, frame) -> None:
    """Ctrl-C: KeyboardInterrupt, as Python's own handler, except while torch's native modules load:
    then it is delivered again as soon as that import has finished."""
    import os
    import signal
    import threading
    import time

    if not _importing_native():
        raise KeyboardInterrupt

    def redeliver() -> None:
        while _importing_native():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=redeliver, name="milvus-hash-interrupt", daemon=True).start()


def _exit(code) -> None:
    """End the process once the command's work is done, without the interpreter's teardown: once
    torch is imported, tearing its thousands of modules down took 1.4 s of an image search's 5.9 s
    (and 0.25 s of any command with pymilvus). Everything a normal exit does that matters runs first:
    other threads are joined, the ``atexit`` handlers run (logging flushes, temporary folders go),
    Milvus Lite's servers stop and remove their lock files, stdout and stderr are flushed."""
    import atexit
    import os
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
        if "milvus_lite.server_manager" in sys.modules:
            sys.modules["milvus_lite.server_manager"].server_manager_instance.release_all()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (| head) or stream: nothing more to say
                pass
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
