"""``milvus-hash train-uth``: train a UTH encoder on the images of a source, without labels."""

from __future__ import annotations

import time

import click

from .features import _source_option, open_cli_source
from .options import check_output_file, cli_errors

#: flag -> UTHEncoder parameter (None values leave the config's or the default).
UTH_FLAGS = {"bits": "n_bits", "backbone": "backbone", "activation": "activation", "alpha": "alpha", "beta": "beta",
             "margin": "margin", "stage1_epochs": "stage1_epochs", "stage2_epochs": "stage2_epochs", "lr": "lr",
             "stage2_lr": "stage2_lr", "batch_size": "batch_size", "workers": "workers", "seed": "random_state"}


@click.command("train-uth")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Encoder file to write (.pt).")
@click.option("--bits", type=click.IntRange(8, 4096), default=None, help="Code length K, a multiple of 8 [config or 32].")
@click.option("--backbone", default=None,
              type=click.Choice(["alexnet", "efficientnet_lite0", "resnet18", "resnet50", "small_cnn", "vgg16"]),
              help="The CNN trunk [config or vgg16].")
@click.option("--weights", default=None,
              help="The trunk's initial weights: DEFAULT / a torchvision weights name, a state_dict file, or "
                   "'none' (train from scratch) [config or DEFAULT].")
@click.option("--activation", type=click.Choice(["relu", "sigmoid"]), default=None, help="After the hash layer [relu].")
@click.option("--alpha", type=float, default=None, help="Quantization loss weight [config or 1].")
@click.option("--beta", type=float, default=None, help="Bit-entropy loss weight [config or 1].")
@click.option("--margin", type=float, default=None, help="Triplet margin [config or 1].")
@click.option("--stage1-epochs", type=click.IntRange(0), default=None, help="Quantization + entropy epochs [config or 1].")
@click.option("--stage2-epochs", type=click.IntRange(0), default=None, help="Epochs with the triplet loss [config or 3].")
@click.option("--lr", type=float, default=None, help="Stage 1 learning rate [config or 0.001].")
@click.option("--stage2-lr", type=float, default=None, help="Stage 2 learning rate [config or 0.0001].")
@click.option("--batch-size", type=click.IntRange(4), default=None, help="Images per batch [config or 64].")
@click.option("--workers", type=click.IntRange(0), default=None, envvar="MILVUS_HASH_WORKERS",
              help="DataLoader processes decoding images [2] [env: MILVUS_HASH_WORKERS].")
@click.option("--seed", type=int, default=None, help="Random seed [config or 0].")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
@click.option("--checkpoints", type=click.Path(file_okay=False), default=None,
              help="Write a checkpoint after every epoch to this folder [default: OUT.checkpoints].")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint (same settings).")
@_source_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@cli_errors
def train_uth(ctx, source, out, bits, backbone, weights, activation, alpha, beta, margin, stage1_epochs,
              stage2_epochs, lr, stage2_lr, batch_size, workers, seed, device, checkpoints, resume, shard, labels,
              source_name, quiet):
    """Train a UTH encoder (CNN + hash layer) on the images of SOURCE, without labels.

    SOURCE is an image folder, a CSV/JSONL manifest or an IDX file; labels, if any, are
    not used. Hyper-parameters come from the uth section of --config (configs/uth.yaml
    holds the paper's, configs/uth_fashion_mnist.yaml a small CNN's for 28x28 images),
    then these flags. A checkpoint is written after every epoch; after a crash or
    Ctrl-C, rerun with --resume. Then ingest with `milvus-hash ingest SOURCE --encoder OUT`.

    \b
    Examples:
      milvus-hash --config configs/uth.yaml train-uth photos/ --out uth.pt --bits 64
      milvus-hash --config configs/uth_fashion_mnist.yaml train-uth \\
          /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz --out fmnist-uth.pt
      milvus-hash train-uth photos/ --out uth.pt --resume      # after an interruption
      milvus-hash ingest photos/ --collection photos --encoder uth.pt
    """
    from pathlib import Path

    from milvus_hash.encoders.uth import UTHEncoder

    from ..sources import SourceImages, parse_shard, select_shard
    from .options import _weights_arg

    params = dict(ctx.meta.get("milvus_hash.config", {}).get("uth", {}))
    for flag, name in UTH_FLAGS.items():
        value = locals()[flag]
        if value is not None:
            params[name] = value
    if weights is not None:
        params["weights"] = _weights_arg(weights)
    if params.get("weights") is None and "weights" in params:
        click.secho(f"note: the {params.get('backbone', 'vgg16')!r} trunk is trained from a random initialisation "
                    "(weights none)", fg="yellow", err=True)
    check_output_file(out, "--out")
    src = open_cli_source(source, labels, source_name)
    items = select_shard(src.items(), parse_shard(shard))
    if len(items) < 2:
        raise click.BadParameter(f"expected at least 2 images, received {len(items)}", param_hint="SOURCE")
    ckpt = Path(checkpoints) if checkpoints else Path(out).with_name(Path(out).name + ".checkpoints")
    enc = UTHEncoder(**params, device=device, checkpoint_dir=ckpt, resume=resume, progress=not quiet)
    t0 = time.perf_counter()
    enc.fit(SourceImages(src, items), log=click.echo)
    enc.save(out)
    last = enc.history_[-1]["losses"]
    click.echo(f"trained UTH ({enc.n_bits} bits, {enc.backbone}) on {enc.n_images_:,} images in "
               f"{time.perf_counter() - t0:.1f} s; last epoch: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items())
               + f" -> {out} (encoder {enc.encoder_spec()})")
