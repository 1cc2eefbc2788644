"""``milvus-hash ingest`` and ``milvus-hash search``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .features import _print_failures, _source_option, open_cli_source
from .options import (EXIT_ERROR, HashCliError, backbone_options, check_output_file, folder_images, make_backbone,
                      milvus_options, source_exists)


def _load_encoder(path: str, device: str = "auto"):
    from milvus_hash.encoders import load_encoder

    return load_encoder(path, device=device)


def encoder_and_backbone(encoder_path: str, *, backbone, weights, device, ten_crop, size, in_memory: bool = False):
    """``(encoder, backbone)`` for the pipeline: a UTH network is its own backbone (its hash-layer
    outputs, thresholded by the encoder); the others run on the backbone they record. ``in_memory``:
    the backbone only extracts images in memory (a query), so ``pixels`` runs without torch."""
    from milvus_hash.encoders import encoder_backbone

    encoder = _load_encoder(encoder_path, device)
    if encoder.encoder_spec().kind == "uth":
        clash = [f for f, v in (("--backbone", backbone), ("--weights", weights), ("--ten-crop", ten_crop),
                                ("--size", size)) if v]
        if clash:
            raise click.UsageError(f"{', '.join(clash)} clash with --encoder {encoder_path}, a UTH network that "
                                   "carries its own CNN; leave them out")
        bb, codes = encoder.as_pipeline()
        return codes, bb
    bb = make_backbone(backbone=backbone, weights=weights, device=device, ten_crop=ten_crop, size=size,
                       record=encoder_backbone(encoder), in_memory=in_memory)
    return encoder, bb


@click.command()
@click.argument("source")
@click.option("--collection", required=True, help="Collection to write (created when missing).")
@click.option("--encoder", "encoder_path", required=True, type=click.Path(dir_okay=False),
              help="Fitted encoder file: a UGH library (`hypertrain`), a UTH network (`train-uth`) or an LSH hasher.")
@milvus_options(precheck=source_exists)
@backbone_options
@_source_option
@click.option("--ids", "ids_from", type=click.Choice(["path", "content"]), default="path", show_default=True,
              help="path: an image's id comes from its key (source name and path); content: from the file's "
                   "SHA-256, so the same image is stored once whatever its path.")
@click.option("--resume", is_flag=True, help="Skip the ids the collection holds without reading their files "
                                              "(a rerun already skips unchanged images, after hashing them).")
@click.option("--features", "features_in", type=click.Path(file_okay=False, exists=True), default=None,
              help="A features folder of these images (`milvus-hash features`, same backbone): an image it holds "
                   "unchanged (same SHA-256) takes its features from there instead of running the CNN again.")
@click.option("--keep-features", type=click.Path(file_okay=False), default=None,
              help="Also write the float features to this features folder (re-encode later without the CNN).")
@click.option("--index", "index_type", type=click.Choice(["BIN_FLAT", "BIN_IVF_FLAT", "HNSW", "auto"],
                                                        case_sensitive=False), default=None,
              help="Hamming index of a new collection [default: BIN_FLAT, exact]. BIN_IVF_FLAT: servers; HNSW: "
                   "Milvus 2.6.4 and later; auto: the fastest this Milvus has. An existing collection keeps its own.")
@click.option("--index-param", "index_param", multiple=True, metavar="KEY=VALUE",
              help="Index parameter of a new collection, repeatable: nlist (BIN_IVF_FLAT, default 1024), "
                   "M and efConstruction (HNSW, default 16 and 200).")
@click.option("--bulk", "bulk_stage", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="Write through Milvus's bulk import (servers; not Milvus Lite): codes are staged as NumPy "
                   "files where the server reads them, and imported every --bulk-rows rows: DIR on a server with "
                   "local storage; s3://BUCKET/PREFIX on a server on MinIO / S3, BUCKET its own bucket (the files "
                   "are uploaded; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Rows already "
                   "stored are upserted as usual.")
@click.option("--s3-endpoint", envvar=["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"], show_envvar=True, default=None,
              metavar="URL",
              help="Object storage of an s3:// --bulk stage, e.g. http://localhost:9000 (MinIO) [default: AWS S3].")
@click.option("--bulk-rows", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Rows per bulk import.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write the run's report (counts, unreadable files) as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(source, collection, encoder_path, store, backbone, weights, device, ten_crop, size, batch_size, workers,
           shard, labels, source_name, ids_from, resume, features_in, keep_features, index_type, index_param,
           bulk_stage, s3_endpoint, bulk_rows, report_path, quiet):
    """Encode the images of SOURCE and write their codes to Milvus.

    An image's key is the source's name and its path (letters/Q/x.png; name#index for
    IDX) and its id derives from the key (or, with --ids content, from the file's
    content). Rows are upserted and record each image's SHA-256: a rerun after a crash
    or Ctrl-C writes no duplicates and skips, before any CNN work, the images stored
    unchanged; a changed file replaces its row; a key that holds a different image
    from elsewhere (two folders of the same name) is a conflict, listed and not
    written. Unreadable images are skipped and listed. The backbone is the one the
    encoder records (a UTH network is its own); --backbone/--weights only when it
    records none.

    \b
    Examples:
      milvus-hash ingest photos/ --collection photos --encoder lib.npz
      milvus-hash ingest photos/ --collection photos --encoder lib.npz --features feats/
      milvus-hash ingest batch2/ --collection photos --encoder lib.npz --source-name batch2-2026
      milvus-hash ingest photos/ --collection photos --encoder lib.npz --ids content
      milvus-hash ingest photos/ --collection photos-uth --encoder uth.pt
      milvus-hash ingest photos/ --collection big --encoder lib.npz --uri http://milvus:19530 --index auto
      milvus-hash ingest photos/ --collection big --encoder lib.npz --uri http://localhost:19530 \\
          --bulk /var/lib/milvus/data/stage
      milvus-hash ingest photos/ --collection big --encoder lib.npz --uri http://localhost:19530 \\
          --bulk s3://a-bucket/stage --s3-endpoint http://localhost:9000
      MILVUS_URI=http://milvus:19530 milvus-hash ingest manifest.csv --collection photos \\
          --encoder lib.npz --shard $JOB_COMPLETION_INDEX/8
    """
    from ..pipeline import ingest as run_ingest
    from ..sources import parse_shard

    if report_path:
        check_output_file(report_path, "--report")
    index_params = _parse_index_params(index_param)
    if bulk_stage is not None and store.embedded:
        raise click.BadParameter(f"expected a Milvus server for a bulk import (Milvus Lite has no import), "
                                 f"received --uri {store.target}", param_hint="--bulk")
    if bulk_stage is not None:
        from milvus_hash.errors import InvalidInputError
        from milvus_hash.store.bulk_stage import open_stage

        options = {"endpoint": s3_endpoint} if s3_endpoint and "://" in bulk_stage else {}
        try:
            bulk_stage = open_stage(bulk_stage, **options)
        except InvalidInputError as exc:
            arg, _, message = str(exc).partition(": ")
            raise click.BadParameter(message, param_hint="--s3-endpoint" if arg == "endpoint" else "--bulk") from None
    _check_index(store, collection, index_type, index_params)
    src = open_cli_source(source, labels, source_name)
    shard_t = parse_shard(shard)
    encoder, bb = encoder_and_backbone(encoder_path, backbone=backbone, weights=weights, device=device,
                                       ten_crop=ten_crop, size=size)
    report = run_ingest(src, store=store, collection=collection, encoder=encoder, backbone=bb,
                        batch_size=batch_size, workers=workers, shard=shard_t, resume=resume, ids=ids_from,
                        features_out=keep_features, features_in=features_in, progress=not quiet,
                        index_type=index_type or "BIN_FLAT", index_params=index_params, bulk_stage=bulk_stage,
                        bulk_rows=bulk_rows)
    _print_failures(report)
    for key, reason in report.conflicts[:10]:
        click.echo(f"  conflict {key}: {reason}", err=True)
    if len(report.conflicts) > 10:
        click.echo(f"  ... and {len(report.conflicts) - 10} more conflicts", err=True)
    if report_path:
        Path(report_path).write_text(json.dumps({"source": str(source), "collection": collection, **report.to_dict()},
                                                indent=2))
    click.echo(f"{store.target}: collection {collection!r}: " + report.summary())
    if report.interrupted:
        raise HashCliError("interrupted", 130)


def _parse_index_params(pairs) -> dict:
    from milvus_hash.store.hash_store import INDEX_PARAM_KEYS

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in INDEX_PARAM_KEYS or not value.isdigit() or int(value) < 1:
            raise click.BadParameter(f"expected KEY=VALUE with KEY one of {', '.join(INDEX_PARAM_KEYS)} and a "
                                     f"positive integer VALUE, received {pair!r}", param_hint="--index-param")
        params[key] = int(value)
    return params


def _check_index(store, collection: str, index_type: str | None, index_params: dict) -> None:
    """Before any work: the index this Milvus can build, and a note when the collection has its own."""
    from milvus_hash.errors import InvalidInputError

    if index_params and index_type is None:
        raise click.UsageError("--index-param needs --index (the index it belongs to)")
    if index_type is None:
        return
    try:
        chosen = store.resolve_index(index_type)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc).removeprefix("index_type: "), param_hint="--index") from None
    if store.has_collection(collection):
        have = store.describe_collection(collection).index_type
        if have != chosen:
            click.echo(f"note: collection {collection!r} exists with index {have}; --index {index_type} applies "
                       "only to a new collection", err=True)


def _parse_code(text: str, n_bits: int) -> np.ndarray:
    try:
        raw = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise click.BadParameter(f"expected {n_bits // 4} hexadecimal digits, received {text!r}",
                                 param_hint="--code") from None
    if len(raw) * 8 != n_bits:
        raise click.BadParameter(f"expected {n_bits // 4} hexadecimal digits ({n_bits} bits), received "
                                 f"{len(raw) * 2}", param_hint="--code")
    return np.frombuffer(raw, dtype=np.uint8)[None, :]


@click.command()
@click.option("--collection", required=True, help="Collection to search.")
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Query image file (needs --encoder); repeat it for several pictures, merged into one ranking.")
@click.option("--images", "images_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="A folder of query images, merged into one ranking (needs --encoder).")
@click.option("--id", "item_ids", multiple=True, type=int,
              help="Query by the code of a stored id; repeatable (merged into one ranking).")
@click.option("--code", default=None, help="Query code in hexadecimal (n_bits / 4 digits).")
@click.option("--encoder", "encoder_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The collection's encoder file (to encode --image).")
@click.option("-k", type=click.IntRange(1, 16384), default=10, show_default=True, help="Hits to return.")
@click.option("--filter", "filter_expr", default="", help='Milvus filter on the scalar fields, e.g. \'label == "7"\'.')
@click.option("--ties", type=click.Choice(["any", "id"]), default="any", show_default=True,
              help="Among hits tied at the k-th distance: Milvus's choice, or the smallest ids (exact, slower).")
@milvus_options(existing=True)
@backbone_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the hits as a contact sheet (one HTML file, thumbnails inline).")
def search(collection, images, images_dir, item_ids, code, encoder_path, k, filter_expr, ties, store, backbone,
           weights, device, ten_crop, size, batch_size, workers, as_json, html_out):
    """Hamming search: the k codes nearest to an image, a stored id or a code. Several
    pictures (--image repeated, --images DIR, --id repeated) are one ranking: each item at its
    smallest distance to any of them (the plain search to compare a category with).

    \b
    Examples:
      milvus-hash search --collection photos --image query.jpg --encoder lib.npz
      milvus-hash search --collection photos --images five-shoes/ --encoder lib.npz -k 50
      milvus-hash search --collection photos --id 123456789 --id 987654321 -k 20 --json
      milvus-hash search --collection photos --code 0f3a... --filter 'label == "cat"'
      milvus-hash search --collection photos --id 123456789 -k 100 --html hits.html
    """
    paths = list(images)
    if images_dir is not None:
        paths += [it.ref for it in folder_images(images_dir, "--images")]
    given = [name for name, v in (("--image/--images", paths), ("--id", item_ids), ("--code", code)) if v]
    if len(given) != 1:
        raise click.UsageError(f"give one of --image (or --images), --id, --code (received {', '.join(given) or 'none'})")
    if paths and encoder_path is None:
        raise click.UsageError("--image needs --encoder, the encoder file the collection was written with")
    info = store.describe_collection(collection)
    if paths:
        from PIL import Image, UnidentifiedImageError

        encoder, bb = encoder_and_backbone(encoder_path, backbone=backbone, weights=weights, device=device,
                                           ten_crop=ten_crop, size=size, in_memory=True)
        if encoder.encoder_spec() != info.encoder:
            raise HashCliError(f"--encoder {encoder_path} is {encoder.encoder_spec()}, but collection {collection!r} "
                               f"was written by {info.encoder}", EXIT_ERROR)
        loaded, bad = [], []
        for path in paths:
            try:
                with Image.open(path) as im:
                    im.load()
                    loaded.append(im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy())
            except (OSError, UnidentifiedImageError) as exc:
                bad.append(f"{path!r} ({exc})")
        if bad:
            raise click.BadParameter(f"expected readable images, received {len(bad)} that cannot be read: "
                                     + "; ".join(bad[:10]), param_hint="--image")
        query = encoder.transform(bb.extract(loaded))
    elif item_ids:
        rec = store.get(collection, ids=list(item_ids))
        if rec.missing.size:
            raise HashCliError(f"--id: expected ids stored in {collection!r}, received "
                               f"{', '.join(map(str, rec.missing.tolist()[:10]))}, not stored", EXIT_ERROR)
        query = rec.codes
    else:
        query = _parse_code(code, info.n_bits)
    res = store.search(collection, codes=query, k=k, filter=filter_expr, ties=ties,
                       output_fields=["source", "label"])
    m_ids, m_dist, m_fields = res.merged()
    hits = [{"id": int(hid), "distance": int(dist), "source": (f or {}).get("source", ""), "label": (f or {}).get("label")}
            for hid, dist, f in zip(m_ids[:k].tolist(), m_dist[:k].tolist(), (m_fields or [{}] * len(m_ids))[:k])]
    if paths:
        query_given = {"image": paths[0]} if len(paths) == 1 else {"images": paths}
    elif item_ids:
        query_given = {"id": item_ids[0]} if len(item_ids) == 1 else {"ids": list(item_ids)}
    else:
        query_given = {"code": code}
    if html_out is not None:
        from ..web.sheet import write_contact_sheet

        title = f"{len(hits)} nearest in {collection} to " + (
            f"{len(paths)} picture(s)" if paths else f"{len(item_ids)} stored picture(s)" if item_ids else "a code")
        rows = [{**h, "rank": r} for r, h in enumerate(hits, 1)]
        click.echo(f"wrote {write_contact_sheet(html_out, store=store, collection=collection, title=title, rows=rows, queries=list(item_ids))}",
                   err=True)
    if as_json:
        click.echo(json.dumps({"collection": collection, "query": query_given, "hits": hits}, indent=2))
        return
    what, value = next(iter(query_given.items()))
    shown = value if not isinstance(value, list) else f"({len(value)}, merged: each item at its nearest)"
    click.echo(f"{len(hits)} nearest to {what} {shown} in {collection!r} by Hamming distance:")
    click.echo(f"  {'rank':>4s}  {'distance':>8s}  {'id':>20s}  {'label':>8s}  source")
    for rank, h in enumerate(hits, 1):
        click.echo(f"  {rank:4d}  {h['distance']:8d}  {h['id']:>20d}  {str(h.get('label')):>8s}  {h.get('source', '')}")
