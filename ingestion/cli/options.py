"""Options and errors shared by the ``milvus-hash`` commands."""

from __future__ import annotations

import functools
import warnings

import click

from milvus_hash.errors import MilvusHashError
from milvus_hash.store.uri import DEFAULT_URI

EXIT_ERROR, EXIT_RETRY = 1, 75
#: ``milvus_hash.features.ARCHITECTURES``' names, here so that ``--help`` does not import torch.
BACKBONES = ("alexnet", "efficientnet_lite0", "pixels", "resnet18", "resnet50", "small_cnn", "vgg16")
#: ``milvus_hash.features.DEFAULT_BACKBONE``: ImageNet weights that install with the package.
DEFAULT_BACKBONE = "efficientnet_lite0"


class HashCliError(click.ClickException):
    """A failure told in one line with its exit code; ``--debug`` (``MILVUS_HASH_DEBUG=1``) also
    prints the traceback of the error behind it."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        import os

        if os.environ.get("MILVUS_HASH_DEBUG") == "1" and self.__cause__ is not None:
            import traceback

            click.echo("".join(traceback.format_exception(self.__cause__)).rstrip(), err=True)
        super().show(file)


def milvus_options(fn=None, *, existing: bool | str = False, precheck=None):
    """--uri / --token, read from MILVUS_URI / MILVUS_TOKEN when not given. ``existing``: the command
    only reads, so a Milvus Lite file that does not exist is an error (not a new empty database);
    ``"or-none"``: the command is called with ``store=None`` and ``uri=`` the path instead.
    ``precheck(kwargs)``: checks of the command's own arguments, run before Milvus starts (a usage
    error answers at once, not after the store's start-up)."""
    if fn is None:
        return functools.partial(milvus_options, existing=existing, precheck=precheck)

    @click.option("--uri", envvar="MILVUS_URI", default=DEFAULT_URI, show_default=True,
                  help="Milvus Lite file (*.db) or server URI such as http://localhost:19530 [env: MILVUS_URI]")
    @click.option("--token", envvar="MILVUS_TOKEN", default=None,
                  help="user:password or API key for a server with authentication [env: MILVUS_TOKEN]")
    @click.option("--timeout", type=float, default=30.0, show_default=True,
                  help="Seconds one Milvus call may take before giving up (exit code 75).")
    @click.option("--consistency-level", "consistency_level", default="Session", show_default=True,
                  type=click.Choice(["Strong", "Bounded", "Session", "Eventually"]),
                  help="Consistency of reads and new collections. Session: this command sees its own writes, "
                       "others' within about a second; Strong: every write, about 200 ms more a search.")
    @functools.wraps(fn)
    def wrapper(*args, uri, token, timeout, consistency_level, **kwargs):
        if precheck is not None:
            precheck(kwargs)
        if existing == "or-none" and _missing_lite_file(uri):
            return fn(*args, store=None, uri=uri, **kwargs)
        if existing:
            _check_lite_file_exists(uri)
        from milvus_hash.store.lite import prestart

        prestart(uri)  # Milvus Lite's server starts while pymilvus (and any CNN) imports
        try:
            from milvus_hash.store import HashStore

            with HashStore(uri, token=token, timeout=timeout, consistency_level=consistency_level) as store:
                return fn(*args, store=store, **kwargs)
        except MilvusHashError as exc:
            raise HashCliError(str(exc), EXIT_RETRY if exc.retryable else EXIT_ERROR) from exc

    return wrapper


def _missing_lite_file(uri: str) -> bool:
    from pathlib import Path

    from milvus_hash.store.uri import REMOTE_SCHEMES

    text = str(uri).strip()
    return text.endswith(".db") and not text.startswith(REMOTE_SCHEMES) and not Path(text).expanduser().exists()


def _check_lite_file_exists(uri: str) -> None:
    text = str(uri).strip()
    if _missing_lite_file(text):
        raise HashCliError(f"uri: expected an existing Milvus Lite file, got {text!r}: no such file "
                           f"(`milvus-hash ingest` creates one; a server URI looks like http://localhost:19530)",
                           EXIT_ERROR)


_FOLDERS: dict[tuple, list] = {}  # folders checked already in this command (before Milvus started)


def folder_images(folder: str, option: str, *, strict: bool = False):
    """The image items of ``folder`` (a FolderSource) that decode, or a usage error naming ``option``
    when it has none. Pictures that do not decode are all listed: skipped with a warning, or refused
    with ``strict`` (``--strict``)."""
    key = (str(folder), option, strict)
    if key in _FOLDERS:
        return _FOLDERS[key]
    from PIL import Image

    from ..sources import FolderSource, _text

    items = FolderSource(folder).items()
    if not items:
        raise click.BadParameter(f"expected a folder with images, received {folder!r}, which has none",
                                 param_hint=option)
    good, bad = [], []
    for it in items:
        try:
            with Image.open(it.ref) as im:
                im.load()
            good.append(it)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            bad.append(f"{_text(str(it.ref))} ({type(exc).__name__}: {str(exc)[:80]})")
    if bad and (strict or not good):
        raise click.BadParameter(f"expected pictures that decode, received {len(bad)} of {len(items)} that do not: "
                                 + "; ".join(bad), param_hint=option)
    for line in bad:
        click.echo(f"warning: {option}: skipped {line} (--strict refuses instead)", err=True)
    _FOLDERS[key] = good
    return good


def source_exists(kwargs) -> None:
    """A ``milvus_options`` precheck: SOURCE exists (a usage error at once, before Milvus starts)."""
    from pathlib import Path

    source = kwargs.get("source")
    if source is not None and not Path(str(source)).expanduser().exists():
        raise click.BadParameter(f"expected an existing image folder, manifest (.csv/.jsonl) or IDX file, received "
                                 f"{str(source)!r}, which does not exist", param_hint="SOURCE")


def check_output_file(path, option: str) -> None:
    """Before any work: ``path`` can be written (its folder exists and is writable; it is not a
    folder), else a usage error that names ``option``."""
    import os
    from pathlib import Path

    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise click.BadParameter(f"expected a file path, received {str(path)!r}, a folder", param_hint=option)
    if not parent.is_dir():
        raise click.BadParameter(f"expected a file in an existing folder, received {str(path)!r} "
                                 f"({str(parent)!r} does not exist)", param_hint=option)
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise click.BadParameter(f"expected a writable file, received {str(path)!r} (permission denied)",
                                 param_hint=option)


def cli_errors(fn):
    """Turn milvus-hash errors into exit codes 1 (retry will not help) or 75 (it may)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MilvusHashError as exc:
            raise HashCliError(str(exc), EXIT_RETRY if exc.retryable else EXIT_ERROR) from exc

    return wrapper


def backbone_options(fn):
    """--backbone, --weights, --device, --ten-crop, --size, --batch-size, --workers."""
    options = [
        click.option("--backbone", type=click.Choice(BACKBONES), default=None,
                     help=f"Feature extractor [default: the encoder's, else {DEFAULT_BACKBONE}: ImageNet weights "
                          "installed with milvus-hash, no download]."),
        click.option("--weights", default=None,
                     help="DEFAULT (efficientnet_lite0: the installed weights; torchvision backbones: downloaded "
                          "once to the torch hub cache), a torchvision weights name, a state_dict file, or 'none' "
                          "(random: tests only) [default: the encoder's, else DEFAULT; small_cnn has no "
                          "pretrained weights: give a file or none]."),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N."),
        click.option("--ten-crop", is_flag=True, help="Average the features of ten 224 crops (the UGH paper)."),
        click.option("--size", type=int, default=None, help="Side of the pixels extractor's image [default: 28]."),
        click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Images per CNN batch."),
        click.option("--workers", type=click.IntRange(0), default=2, show_default=True, envvar="MILVUS_HASH_WORKERS",
                     help="DataLoader processes decoding images (0: in this process) [env: MILVUS_HASH_WORKERS]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _weights_arg(text):
    if text is None:
        return "DEFAULT"
    if text.lower() in ("none", "random"):
        return None
    return text


def make_backbone(*, backbone, weights, device, ten_crop, size, record: dict | None = None, in_memory: bool = False):
    """The backbone the flags ask for, or the one an encoder records; clashing flags are a UsageError.
    ``in_memory``: it only extracts images in memory (``extract``), so ``pixels`` needs no torch."""
    from milvus_hash.features.extractor import get_extractor, record_arguments

    resolved = _weights_arg(weights)
    if record is not None:
        if backbone is not None and backbone != record["name"]:
            raise click.UsageError(f"--backbone {backbone} clashes with the encoder, which was fitted on "
                                   f"{record['name']!r} features; leave --backbone out to use that one")
        recorded = record_arguments(record)
        backbone = recorded["name"]
        if weights is None:
            resolved = recorded["weights"]
        size = size or recorded["size"]
    backbone = backbone or DEFAULT_BACKBONE
    if backbone == "small_cnn" and weights is None and record is None:
        raise click.UsageError("--weights: small_cnn has no pretrained weights; expected a state_dict file "
                               "(benchmarks/base_cnn.py trains one) or 'none' (random: tests only), received nothing")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if in_memory:
            bb = get_extractor(backbone, resolved, device=device, ten_crop=ten_crop, size=size or 28)
        else:
            from milvus_hash.features.backbones import get_backbone

            bb = get_backbone(backbone, resolved, device=device, ten_crop=ten_crop, size=size or 28)
    for w in caught:
        click.secho(f"WARNING: {w.message}", fg="red", err=True, bold=True)
    if record is not None and record.get("fingerprint") != bb.fingerprint:
        raise HashCliError(f"the encoder was fitted on {record['name']!r} features with weights "
                           f"{record.get('weights')!r} (fingerprint {str(record.get('fingerprint'))[:16]}), but this "
                           f"backbone is {bb.name!r} with weights {bb.weights!r} (fingerprint {bb.fingerprint[:16]}): "
                           "its features would be meaningless to the encoder", EXIT_ERROR)
    return bb
