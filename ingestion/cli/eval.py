"""``milvus-hash eval``: the papers' protocols on a labeled image source, written as a report."""

from __future__ import annotations

import click

from .features import open_cli_source
from .options import backbone_options, make_backbone, milvus_options, source_exists


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, received {text!r}", param_hint=name) from None
    if not vals or any(v < 0 for v in vals):
        raise click.BadParameter(f"expected comma-separated non-negative integers, received {text!r}", param_hint=name)
    return vals


@click.command("eval")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for report.md, plots, results.json.")
@click.option("--query-source", default=None,
              help="Labeled images to query with (e.g. a test split) [default: --queries held out from SOURCE].")
@click.option("--queries", "n_queries", type=click.IntRange(1), default=1000, show_default=True, help="Query images.")
@click.option("--library", "library_path", type=click.Path(dir_okay=False), default=None,
              help="A UGH library (`hypertrain`) on the backbone's features [default: hyper-train one, --rounds].")
@click.option("--rounds", type=click.IntRange(1), default=200, show_default=True,
              help="Rounds (10 bits each) of the library hyper-trained when --library is not given.")
@click.option("--uth", "uth_paths", multiple=True, type=click.Path(dir_okay=False),
              help="A UTH network (`train-uth`) to evaluate in the unsupervised protocol (repeatable).")
@click.option("--protocol", "protocols", multiple=True,
              type=click.Choice(["fewshot", "single", "unsupervised", "feedback"]),
              help="Protocols to run (repeatable) [default: fewshot and unsupervised]. single: n pictures of one "
                   "class, the database ranked by the category's membership beside plain searches; feedback: "
                   "the same, then rounds in which a simulated user marks each method's top results.")
@click.option("--feedback-rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Rounds of marks (feedback protocol).")
@click.option("--per-round", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Items marked a round (feedback protocol).")
@click.option("--shots", default="1,5,10", show_default=True,
              help="Labeled examples per class (few-shot), positives per category (single).")
@click.option("--lengths", default="16,32,64", show_default=True, help="Code lengths.")
@click.option("--bits", "n_bits", type=click.IntRange(8, 1024), default=16, show_default=True,
              help="Code length of the few-shot table by examples.")
@click.option("--draws", type=click.IntRange(1), default=3, show_default=True, help="Draws of the labeled examples.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Seeds of the unsupervised encoders.")
@click.option("--top", type=click.IntRange(1, 16384), default=1000, show_default=True, help="K of mAP@K (unsupervised).")
@click.option("--classes", default=None, help="Only these labels, comma-separated (e.g. unseen classes: 5,6,7,8,9).")
@click.option("--through-milvus", is_flag=True,
              help="Run every protocol query through the store (--uri: Lite or a server) instead of numpy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the query sample and the library.")
@milvus_options(precheck=source_exists)
@backbone_options
@click.option("--quiet", is_flag=True, help="Less output.")
def eval_command(source, out, query_source, n_queries, library_path, rounds, uth_paths, protocols, feedback_rounds,
                 per_round, shots, lengths, n_bits, draws, seeds, top, classes, through_milvus, seed, store, backbone, weights, device, ten_crop,
                 size, batch_size, workers, quiet):
    """Evaluate encoders on a labeled image source: the UGH few-shot protocol and the
    UTH unsupervised protocol, with LSH, PCA-ITQ, CCA-ITQ and random library bits
    side by side, and the single-category protocol (find a class from n of its
    pictures: category members beside cosine and plain Hamming searches);
    writes report.md (tables), PNG plots and results.json into --out.

    SOURCE is an image folder, a manifest or an IDX file, or a features folder
    (`milvus-hash features`; then --query-source is one too). Labels come from
    sub-folders, a manifest's label column or an IDX labels file.
    --through-milvus sends every query through Milvus (Lite or the server of --uri)
    and gives the same numbers as numpy; the speed section always measures Milvus.

    \b
    Examples:
      F=/usr/share/datasets/fashion-mnist
      milvus-hash eval $F/train-images-idx3-ubyte.gz --query-source $F/t10k-images-idx3-ubyte.gz \\
          --backbone pixels --out report/
      milvus-hash eval photos/ --library lib.npz --uth uth.pt --out report/ --protocol unsupervised
      milvus-hash eval photos/ --library lib.npz --out report/ --protocol single --shots 1,3,5,10
      milvus-hash eval photos/ --library lib.npz --out report/ --protocol feedback --shots 1,3,5
      milvus-hash eval photos/ --library lib.npz --out report/ --through-milvus \\
          --uri http://localhost:19530 --shots 5 --draws 1 --lengths 16
    """
    from milvus_hash.encoders import encoder_backbone, load_encoder

    if library_path is None and rounds % 4:
        raise click.BadParameter(f"expected a multiple of 4 (10 bits per round, codes in whole bytes), received "
                                 f"{rounds}", param_hint="--rounds")

    from ..evaluate import EvalSettings, run_eval

    settings = EvalSettings(protocols=tuple(protocols) or ("fewshot", "unsupervised"), shots=_ints(shots, "--shots"),
                            lengths=_ints(lengths, "--lengths"), n_bits=n_bits, draws=draws,
                            seeds=_ints(seeds, "--seeds"), top=top, n_queries=n_queries, rounds=rounds,
                            classes=tuple(c.strip() for c in classes.split(",")) if classes else None, seed=seed,
                            batch_size=max(batch_size, 64), workers=workers, uth=tuple(uth_paths),
                            feedback_rounds=feedback_rounds, per_round=per_round)
    for b in settings.lengths:
        if b % 8 or b < 8:
            raise click.BadParameter(f"expected multiples of 8, received {b}", param_hint="--lengths")
    from ..evaluate import FeatureSource, is_features_folder

    def open_any(spec):
        return FeatureSource(spec) if is_features_folder(spec) else open_cli_source(spec, "auto")

    src = open_any(source)
    qsrc = open_any(query_source) if query_source else None
    library = None
    if library_path:
        library = load_encoder(library_path)
        if library.encoder_spec().kind != "ugh":
            raise click.BadParameter(f"expected a UGH library, received a {library.encoder_spec().kind!r} encoder",
                                     param_hint="--library")
    if isinstance(src, FeatureSource):
        if backbone or weights or ten_crop or size:
            raise click.UsageError("SOURCE is a features folder: its backbone is fixed; drop --backbone/--weights/"
                                   "--ten-crop/--size")
        if qsrc is not None and not isinstance(qsrc, FeatureSource):
            raise click.UsageError("SOURCE is a features folder: --query-source must be one too")
        bb = None
    else:
        bb = make_backbone(backbone=backbone, weights=weights, device=device, ten_crop=ten_crop, size=size,
                           record=encoder_backbone(library) if library is not None else None)
    import warnings
    from collections import Counter

    # third-party warnings (liblinear's convergence in the L1 bit selection, ...) are counted and
    # summed up once at the end, not printed between the tables
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_eval(src, out=out, backbone=bb, settings=settings, query_source=qsrc, library=library,
                          store=store, through_milvus=through_milvus, log=(lambda m: None) if quiet else click.echo)
    seen = Counter(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught)
    for text, count in seen.most_common():
        click.echo(f"note: {count} x {text}", err=True)
    click.echo(f"report: {report}")
