"""``milvus-hash category define|list|describe|drop|materialize|search``."""

from __future__ import annotations

import functools
import json
import warnings

import click

from .options import EXIT_ERROR, HashCliError, folder_images, milvus_options


def client_options(fn):
    @click.option("--collection", required=True, help="The collection of UGH library codes.")
    @click.option("--library", type=click.Path(dir_okay=False), default=None,
                  help="The collection's library file (for example or query images).")
    @functools.wraps(fn)
    def wrapper(*args, store, collection, library, **kwargs):
        from milvus_hash import HashClient

        return fn(*args, client=HashClient(collection=collection, library=library, store=store), **kwargs)

    return milvus_options(wrapper, existing=True, precheck=_precheck)


#: Options whose pictures are encoded through the collection's library.
_PICTURE_OPTIONS = {"folder": "--examples", "neg_folder": "--negative-examples", "image": "--image"}


def _precheck(kwargs) -> None:
    """Before Milvus starts: pictures need --library, which loads (a bad file is an error naming it),
    and example folders hold pictures that decode."""
    given = [flag for key, flag in _PICTURE_OPTIONS.items() if kwargs.get(key)]
    if given and kwargs.get("library") is None:
        raise click.UsageError(f"--library: expected the collection's library file (lib.npz) to encode the "
                               f"pictures of {given[0]}, received none")
    if isinstance(kwargs.get("library"), str):
        from milvus_hash import InvalidInputError
        from milvus_hash.encoders.ugh.library import UGHLibrary

        try:
            kwargs["library"] = UGHLibrary.load(kwargs["library"], argument="--library")
        except InvalidInputError as exc:
            raise click.BadParameter(str(exc).removeprefix("--library: "), param_hint="--library") from None
    for key in ("folder", "neg_folder"):
        if kwargs.get(key):
            folder_images(kwargs[key], _PICTURE_OPTIONS[key], strict=bool(kwargs.get("strict")))


def strict_option(fn):
    return click.option("--strict", is_flag=True,
                        help="Refuse example pictures that do not decode (default: skip them with a warning).")(fn)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integer ids, received {text!r}", param_hint=flag) from None


@click.group()
def category():
    """Few-shot categories: define from a few examples, then query.

    \b
    Examples:
      milvus-hash category define shoes --collection photos --ids 11,42,97
      milvus-hash category define fashion --collection photos --examples labeled/ --library lib.npz
      milvus-hash category search shoes --collection photos --id 11 -k 20
      milvus-hash category materialize shoes --collection photos
    """


@category.command()
@click.argument("name")
@client_options
@click.option("--ids", default=None, help="Stored ids of the examples (comma-separated).")
@click.option("--labels", default=None, help="One label per id (comma-separated): a task of several classes.")
@click.option("--examples", "folder", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of example images (one sub-folder per class for a task); needs --library.")
@click.option("--negatives", default=None, help="Stored ids of negatives (default: background codes of the store).")
@click.option("--bits", "n_bits", type=int, default=16, show_default=True, help="Code length B (8 to 1024).")
@click.option("--method", type=click.Choice(["cca", "l1"]), default="cca", show_default=True,
              help="cca: the default few-shot code; l1: the paper's L1-SVM bit selection.")
@click.option("--replace", is_flag=True, help="Redefine NAME if it exists (atomically).")
@click.option("--json", "as_json", is_flag=True)
@strict_option
def define(name, client, ids, labels, folder, negatives, n_bits, method, replace, as_json, strict):
    """Define category NAME from a few examples (--replace redefines it, atomically).

    \b
    Examples:
      milvus-hash category define shoes --collection photos --examples five-shoes/ --library lib.npz
      milvus-hash category define shoes --collection photos --ids 11,42,97 --replace
      milvus-hash category define t --collection photos --ids 1,2,3,4 --labels a,a,b,b --bits 32
      milvus-hash category define fashion --collection photos --examples labeled/ --library lib.npz
    """
    if ids is None and folder is None:
        raise click.UsageError("give --ids, --examples or both (pictures and the ids of confirmed members)")
    if labels is not None and (ids is None or folder is not None):
        raise click.UsageError("--labels goes with --ids alone (a folder's sub-folders are its labels)")
    examples, label_list = {}, None
    if ids is not None:
        examples["ids"] = _ints(ids, "--ids")
        label_list = None if labels is None else [v.strip() for v in labels.split(",")]
    if folder is not None:
        items = folder_images(folder, "--examples", strict=strict)
        examples["images"] = [it.ref for it in items]
        if items[0].label is not None:
            if ids is not None:
                raise click.UsageError("--examples with sub-folders (a task) cannot be mixed with --ids")
            label_list = [it.label for it in items]
    neg = _ints(negatives, "--negatives") if negatives else None
    from milvus_hash.categories.definitions import CategoryExistsError

    try:
        cat = client.define(name, **examples, labels=label_list, negatives=neg, n_bits=n_bits, method=method,
                            replace=replace)
    except CategoryExistsError:
        raise HashCliError(f"name: {name!r} is defined on {client.collection!r} already: --replace redefines it",
                           EXIT_ERROR) from None
    info = cat.describe()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        n = sum(len(v) for v in examples.values())
        click.echo(f"defined {name!r}: {method}, {n_bits} bits, classes {cat.classes}, from {n} examples "
                   f"(fingerprint {info['fingerprint'][:16]})")


@category.command(name="list")
@client_options
def list_(client):
    """List the categories defined on a collection.

    \b
    Examples:
      milvus-hash category list --collection photos
    """
    for name in client.categories():
        d = client.describe(name)
        state = client.status(name)
        where = "not materialized" if state is None else f"materialized, {state}"
        click.echo(f"{name}: {d['method']}, {d['n_bits']} bits, classes {d['classes']}; {where}")


@category.command()
@click.argument("name")
@client_options
def describe(name, client):
    """Print a category's definition as JSON.

    \b
    Examples:
      milvus-hash category describe shoes --collection photos
    """
    click.echo(json.dumps(client.describe(name), indent=2))


@category.command()
@click.argument("name")
@client_options
def drop(name, client):
    """Drop a category (and its materialized collection).

    \b
    Examples:
      milvus-hash category drop shoes --collection photos
    """
    client.drop(name)
    click.echo(f"dropped {name!r}")


@category.command()
@click.argument("name")
@client_options
@click.option("--rebuild", is_flag=True, help="Drop the category's collection and write it anew.")
def materialize(name, client, rebuild):
    """Write every item's category code into the category's own collection, or bring it up to date:
    missing and changed items are written, deleted ones removed. Ingestion keeps it up to date from
    then on; run it again after writes made around milvus-hash (`category list` shows when).

    \b
    Examples:
      milvus-hash category materialize shoes --collection photos
      milvus-hash category materialize shoes --collection photos --rebuild
    """
    done = client.materialize(name, rebuild=rebuild)
    click.echo(f"materialized {name!r} into {done.collection!r}: {done.rows:,} codes "
               f"({done.written:,} written, {done.deleted:,} deleted)")


@category.command()
@click.argument("name")
@client_options
@click.option("--id", "item_id", type=int, default=None, help="Query by a stored id.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None, help="Query image (needs --library).")
@click.option("-k", type=click.IntRange(1, 16384), default=10, show_default=True)
@click.option("--mode", type=click.Choice(["auto", "instant", "materialized"]), default="auto", show_default=True,
              help="materialized: one search of the category's collection; instant: library-code candidates "
                   "re-ranked; auto: materialized when the category is.")
@click.option("--candidates", type=click.IntRange(1, 16384), default=2000, show_default=True,
              help="Instant mode: library-code candidates re-ranked by the category code.")
@click.option("--ties", type=click.Choice(["any", "id"]), default="any", show_default=True,
              help="Among hits tied at the k-th distance: Milvus's choice, or the smallest ids (exact, slower).")
@click.option("--json", "as_json", is_flag=True)
def search(name, client, item_id, image, k, mode, candidates, ties, as_json):
    """Top-k by Hamming distance on the category's code.

    \b
    Examples:
      milvus-hash category search shoes --collection photos --id 11
      milvus-hash category search shoes --collection photos --image q.jpg --library lib.npz --mode materialized
    """
    if (item_id is None) == (image is None):
        raise click.UsageError("give exactly one of --id and --image")
    query = {"ids": [item_id]} if item_id is not None else {"images": [image]}
    from milvus_hash import StaleCategoryWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StaleCategoryWarning)
        res = client.search(name, **query, k=k, mode=mode, candidates=max(candidates, k), ties=ties)
    for w in caught:  # a stale materialized category: one line on stderr, not a traceback-like warning
        if issubclass(w.category, StaleCategoryWarning):
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    hits = [{"id": int(i), "distance": int(d), **f} for i, d, f in zip(res.ids[0], res.distances[0], res.fields[0])
            if i >= 0]
    if as_json:
        click.echo(json.dumps({"category": name, "mode": mode, "hits": hits}, indent=2))
        return
    for h in hits:
        click.echo(f"  {h['distance']:4d}  id {h['id']:>20d}  label {str(h.get('label')):>10s}  {h.get('source', '')}")


@category.command()
@click.argument("name")
@client_options
@click.option("-k", type=click.IntRange(1), default=20, show_default=True, help="Members to print at most.")
@click.option("--label", default=None, help="The class of a task (a category of several classes).")
@click.option("--min-probability", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Print only members at least this likely.")
@click.option("--candidates", type=click.IntRange(1, 16384), default=None,
              help="Nearest items of each positive that are scored [default: 3 x k, at least 100].")
@click.option("--all", "exhaustive", is_flag=True, help="Score every item of the collection (streamed; slower).")
@click.option("--new-only", is_flag=True, help="Leave out the examples and the members marked right.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per member, in rank order (\"example\": true for examples and marked members).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the members as a contact sheet (one HTML file, thumbnails inline).")
def members(name, client, k, label, min_probability, candidates, exhaustive, new_only, as_json, html_out):
    """The collection's items ranked by membership of category NAME, best first, each with a
    calibrated probability.

    \b
    Examples:
      milvus-hash category members threes --collection digits -k 50
      milvus-hash category members threes --collection digits --min-probability 0.9 --json
      milvus-hash category members fashion --collection photos --label shoes --all -k 1000
      milvus-hash category members threes --collection digits --new-only -k 20
      milvus-hash category members shoes --collection photos -k 100 --html shoes.html
    """
    got = client.members(name, k=k, label=label, min_probability=min_probability, candidates=candidates,
                         exhaustive=exhaustive, new_only=new_only)
    if html_out is not None:
        from ..web.sheet import write_contact_sheet

        path = write_contact_sheet(html_out, store=client.store, collection=client.collection, rows=got.rows(),
                                   title=f"{len(got)} members of {name} in {client.collection}"
                                         f"{' (new only)' if new_only else ''}")
        click.echo(f"wrote {path}", err=True)
    if as_json:
        for row in got.rows():
            click.echo(json.dumps(row))
        return
    click.echo(f"{'rank':>5s}  {'probability':>11s}  {'id':>20s}  {'label':>10s}  source")
    for row in got.rows():
        click.echo(f"{row['rank']:5d}  {row['probability']:11.4f}  {row['id']:20d}  {str(row['label']):>10s}  "
                   f"{row['source']}{'  (example)' if row['example'] else ''}")
    click.echo(f"{len(got)} members of {got.candidates:,} items scored", err=True)


@category.command()
@click.argument("name")
@client_options
@click.option("--positive", "positives", multiple=True, type=int, metavar="ID",
              help="A stored id marked right (as `members --json` prints it); repeatable.")
@click.option("--negative", "negatives", multiple=True, type=int, metavar="ID",
              help="A stored id marked wrong: never a member again; repeatable.")
@click.option("--examples", "folder", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of more pictures of the category (positives; needs --library).")
@click.option("--negative-examples", "neg_folder", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of pictures of what the category is not (needs --library).")
@click.option("--forget", "forget", multiple=True, type=int, metavar="ID",
              help="Remove the mark of a stored id (undo); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the new description as JSON.")
@strict_option
def refine(name, client, positives, negatives, folder, neg_folder, forget, as_json, strict):
    """Mark members of category NAME right or wrong and learn it again from its examples and
    every mark so far (kept in Milvus: every process sees the new definition at once, or the old).
    Marked-wrong items never show in `members` again; marked-right ones are flagged there as
    examples (`members --new-only` leaves them out).

    \b
    Examples:
      milvus-hash category refine shoes --collection photos --negative 4711 --negative 815 --positive 42
      milvus-hash category refine shoes --collection photos --examples more-shoes/ --library lib.npz
      milvus-hash category refine shoes --collection photos --forget 4711
    """
    if not (positives or negatives or folder or neg_folder or forget):
        raise click.UsageError("give marks: --positive ID, --negative ID, --examples DIR, --negative-examples DIR "
                               "or --forget ID")
    kwargs = {"positive_ids": list(positives) or None, "negative_ids": list(negatives) or None,
              "forget_ids": list(forget) or None}
    if folder is not None:
        kwargs["positive_images"] = [it.ref for it in folder_images(folder, "--examples", strict=strict)]
    if neg_folder is not None:
        kwargs["negative_images"] = [it.ref for it in folder_images(neg_folder, "--negative-examples",
                                                                    strict=strict)]
    cat = client.refine(name, **kwargs)
    info = cat.describe()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    n_pos = len(positives) + len(kwargs.get("positive_images") or [])
    n_neg = len(negatives) + len(kwargs.get("negative_images") or [])
    click.echo(f"refined {name!r} (round {len(info['rounds'])}): {n_pos} right, {n_neg} wrong, forgot {len(forget)}; "
               f"now {info['positives']} positives and {info['negatives']} negatives")
