"""``milvus-hash features`` and ``milvus-hash hypertrain``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click
import numpy as np

from .options import HashCliError, backbone_options, check_output_file, cli_errors, make_backbone


def _source_option(fn):
    fn = click.option("--source-name", default=None, metavar="NAME",
                      help="First part of every image's key, and so of its id [default: the folder's or file's "
                           "name]: two folders of the same name need different ones.")(fn)
    fn = click.option("--shard", default=None, metavar="I/N",
                      help="Only the items whose key's id is I modulo N (N workers, one corpus).")(fn)
    fn = click.option("--labels", type=click.Choice(["auto", "subfolders", "none"]), default="auto",
                      show_default=True, help="Folder labels: first-level sub-folder names.")(fn)
    return fn


def open_cli_source(source: str, labels: str, name: str | None = None):
    from ..sources import open_source

    return open_source(source, labels=None if labels == "none" else labels, name=name)


def _check_library_bits(params: dict, config: dict, rounds, bits_per_round) -> None:
    """Before any feature is extracted: the library's length (--bits-per-round x --rounds) is a code
    length Milvus stores, named by the flags (or the config keys) that set it."""
    from milvus_hash import InvalidInputError
    from milvus_hash.codes import MAX_BITS, check_n_bits

    k, d = params.get("bits_per_round", 10), params.get("n_rounds", 2_000)
    if not (isinstance(k, int) and isinstance(d, int)) or k < 1 or d < 1:
        return  # the library's own checks name a value that is no positive int
    try:
        check_n_bits(k * d)
    except InvalidInputError:
        def name(flag, key, given, default):
            return flag if given is not None else f"ugh.{key} of --config" if key in config else f"{flag} ({default} by default)"

        names = " x ".join((name("--bits-per-round", "bits_per_round", bits_per_round, 10),
                            name("--rounds", "n_rounds", rounds, 2000)))
        raise click.BadParameter(f"expected a multiple of 8 bits up to {MAX_BITS:,} (Milvus stores whole bytes), "
                                 f"received {k} x {d} = {k * d:,} bits", param_hint=names) from None


@click.command()
@click.argument("source")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Features folder to write.")
@backbone_options
@_source_option
@click.option("--no-resume", is_flag=True, help="Recompute ids the folder already holds.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@cli_errors
def features(source, out, backbone, weights, device, ten_crop, size, batch_size, workers, shard, labels,
             source_name, no_resume, quiet):
    """Extract CNN (or pixel) features of SOURCE into a features folder.

    SOURCE is an image folder (one sub-folder per label, optionally), a CSV/JSONL
    manifest (path, label, metadata columns) or an IDX file. A rerun skips the
    images already done. The folder feeds `hypertrain` and re-encoding without the CNN.

    \b
    Examples:
      milvus-hash features photos/ --out feats/      # EfficientNet-Lite0, installed weights
      milvus-hash features photos/ --out feats/ --backbone resnet50   # downloads once
      milvus-hash features photos/ --out feats/ --backbone alexnet --weights ~/alexnet.pth --ten-crop
      milvus-hash features /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \\
          --out fmnist/ --backbone pixels
    """
    from ..pipeline import extract
    from ..sources import parse_shard

    src = open_cli_source(source, labels, source_name)
    shard_t = parse_shard(shard)
    bb = make_backbone(backbone=backbone, weights=weights, device=device, ten_crop=ten_crop, size=size)
    report = extract(src, backbone=bb, out=out, batch_size=batch_size, workers=workers, shard=shard_t,
                     resume=not no_resume, progress=not quiet)
    _print_failures(report)
    click.echo(f"{bb.name} features ({bb.dim}-D) -> {out}: " + report.summary("extracted"))


def _print_failures(report, limit: int = 10) -> None:
    for key, reason in report.failed[:limit]:
        click.echo(f"  skipped {key}: {reason}", err=True)
    if len(report.failed) > limit:
        click.echo(f"  ... and {len(report.failed) - limit} more unreadable images", err=True)


#: Points x rounds from which hypertrain uses every core by default (each worker loads torch: ~4 s).
PARALLEL_WORK = 100_000
UGH_FLAGS = {"rounds": "n_rounds", "bits_per_round": "bits_per_round", "subset": "n_subset", "jobs": "n_jobs",
             "seed": "random_state", "categories": "n_categories", "expand": "n_expand"}


@click.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Library file to write (.npz).")
@click.option("--rounds", type=click.IntRange(1), default=None, help="Rounds D [config or 2000].")
@click.option("--bits-per-round", type=click.IntRange(1), default=None, help="Hash functions per round K [config or 10].")
@click.option("--subset", type=click.IntRange(2), default=None,
              help="Points per round M [config or 20000; at most the number of images].")
@click.option("--categories", type=click.IntRange(2), default=None, help="Pseudo-categories per round C [config or 30].")
@click.option("--expand", type=click.IntRange(1), default=None,
              help="Points added per pseudo-category F [config or 50]; C * (T + F) must fit in M.")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Rounds run in parallel, one process each [config, else every core; one for a small library "
                   "(subset x rounds under 100,000), where starting the workers, each loading torch, costs more].")
@click.option("--seed", type=int, default=None, help="Random seed [config or 0].")
@backbone_options
@_source_option
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
@cli_errors
def hypertrain(ctx, source, out, rounds, bits_per_round, subset, categories, expand, jobs, seed, backbone, weights, device, ten_crop,
               size, batch_size, workers, shard, labels, source_name, quiet):
    """Hyper-train a UGH hash library (K*D bits) from unlabeled images or features.

    SOURCE is a features folder (from `milvus-hash features`) or anything `features`
    reads (the features are then extracted first). Hyper-parameters come from the
    ugh section of --config (configs/ugh.yaml holds the paper's), then these flags.
    The library records its backbone, so `ingest` uses the same one. Rounds are
    independent: they run on every core by default, and each finished round is kept
    in OUT.rounds/ until the library is saved, so rerunning a crashed or interrupted
    command goes on from there.

    \b
    Sizing the library to the data (bits = 10 x --rounds):
      - each round draws --subset points (at most the images you have) and needs
        --categories x (6 + --expand) of them: with N images, keep that under N;
      - a few thousand images: --rounds 20-50 (200-500 bits), --categories 20
        --expand 20; the demo's 3,000 images use 40 rounds (400 bits);
      - 20,000 images and more: the paper's values (configs/ugh.yaml, 20,000 bits:
        about 10 minutes on 2 cores for 60,000 images). Longer libraries help
        categories (their members are ranked on every bit) more than plain search;
        every stored code costs bits / 8 bytes.

    \b
    Examples:
      milvus-hash features photos/ --out feats/ && milvus-hash hypertrain feats/ --out lib.npz
      milvus-hash --config configs/ugh.yaml hypertrain feats/ --out lib.npz --jobs 8
      milvus-hash hypertrain digits/ --backbone pixels --size 8 --rounds 20 \\
          --categories 20 --expand 20 --out lib.npz          # a small image set
    """
    from milvus_hash.encoders.ugh.library import UGHLibrary

    from ..features_folder import read_features

    check_output_file(out, "--out")
    params = dict(ctx.meta.get("milvus_hash.config", {}).get("ugh", {}))
    for flag, name in UGH_FLAGS.items():
        value = locals()[flag]
        if value is not None:
            params[name] = value
    _check_library_bits(params, ctx.meta.get("milvus_hash.config", {}).get("ugh", {}), rounds, bits_per_round)
    t0 = time.perf_counter()
    if (Path(source) / "meta.json").is_file():
        if backbone or weights or ten_crop or size:
            raise click.UsageError("SOURCE is a features folder: its backbone is fixed; drop --backbone/--weights/"
                                   "--ten-crop/--size")
        _, X, _, _, meta = read_features(source)
        record = meta["backbone"]
        click.echo(f"read {len(X):,} {record['name']} features ({X.shape[1]}-D) from {source}")
    else:
        from milvus_hash.features import backbone_record

        from ..pipeline import stream_features
        from ..sources import parse_shard, select_shard

        src = open_cli_source(source, labels, source_name)
        bb = make_backbone(backbone=backbone, weights=weights, device=device, ten_crop=ten_crop, size=size)
        items = select_shard(src.items(), parse_shard(shard))
        parts, failed = [], 0
        from tqdm.auto import tqdm

        with tqdm(total=len(items), desc="features", unit="img", disable=quiet) as bar:
            for its, feats, bad in stream_features(src, items, bb, batch_size=batch_size, workers=workers):
                parts.append(feats)
                failed += len(bad)
                bar.update(len(its) + len(bad))
        X = np.concatenate(parts) if parts else np.zeros((0, bb.dim), np.float32)
        record = backbone_record(bb)
        click.echo(f"extracted {len(X):,} {bb.name} features ({bb.dim}-D), {failed} unreadable images skipped")
    n_subset = params.get("n_subset", 20_000)
    if len(X) < n_subset:
        params["n_subset"] = len(X)
        click.echo(f"n_subset: {len(X):,} (every image; the configured {n_subset:,} is more than there are)")
    n_cat, t, f = params.get("n_categories", 30), params.get("per_category", 6), params.get("n_expand", 50)
    m = params.get("n_subset", 20_000)
    if n_cat * (t + f) > m:  # a small set: what a round needs does not fit in it
        if categories is not None and expand is not None:
            raise click.BadParameter(f"expected --categories x (6 + --expand) <= {m:,} (the points a round "
                                     f"draws), received {n_cat} x (6 + {f}) = {n_cat * (t + f):,}",
                                     param_hint="--categories/--expand")
        if categories is None:
            n_cat = min(n_cat, max(2, m // 40))
        if expand is None:
            f = max(1, min(f, m // n_cat - t))
        if n_cat * (t + f) > m:
            raise click.BadParameter(f"expected --categories x (6 + --expand) <= {m:,}, received {n_cat} x "
                                     f"(6 + {f}); give fewer --categories", param_hint="--categories/--expand")
        params["n_categories"], params["n_expand"] = n_cat, f
        click.echo(f"a small set ({m:,} points a round): --categories {n_cat} --expand {f}, sized automatically "
                   "(flags set them)")
    if "n_jobs" not in params:  # rounds are independent: every core, unless starting the workers costs more
        work = params.get("n_subset", 20_000) * params.get("n_rounds", 2_000)
        params["n_jobs"] = (os.cpu_count() or 1) if work >= PARALLEL_WORK else 1
    rounds_dir = Path(out).with_name(Path(out).name + ".rounds")  # finished rounds, until the library is saved
    lib = UGHLibrary(**{**params, "progress": not quiet, "checkpoint_dir": str(rounds_dir)})
    try:
        lib.fit(X)
    except KeyboardInterrupt:
        raise HashCliError(f"interrupted: the finished rounds are kept in {rounds_dir}/; rerun the same command "
                           "to go on from there", 130) from None
    if lib.resumed_rounds_:
        click.echo(f"took {lib.resumed_rounds_:,} of {lib.n_rounds:,} rounds from {rounds_dir}/ (an earlier run)")
    lib.features_ = record
    lib.save(out)
    shutil.rmtree(rounds_dir, ignore_errors=True)
    spec = lib.encoder_spec()
    click.echo(f"hyper-trained {lib.n_bits_:,} bits in {time.perf_counter() - t0:.1f} s -> {out} "
               f"(encoder {spec})")
