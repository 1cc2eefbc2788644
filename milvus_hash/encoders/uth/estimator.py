"""``UTHEncoder``: the UTH network as an estimator: ``fit(images)`` without labels, ``transform(images)``
to packed codes ``uint8 (n, n_bits // 8)``.

Images are either a ``uint8`` array at the network's input size (``(n, H, W)`` grayscale or
``(n, H, W, C)``; normalised like the backbone's transform, no resizing) or a sequence of PIL images
(any size: the backbone's own transform resizes them; unreadable entries may be ``None`` and are
skipped in ``fit``). Saved with ``torch.save`` (tensors, numbers and a JSON string only) and loaded
with ``torch.load(weights_only=True)``; :meth:`encoder_spec` carries the fingerprint of the weights.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ...codes import check_n_bits, pack_bits
from ...errors import expected
from ..spec import EncoderSpec, fingerprint
from .model import ACTIVATIONS, HashNet
from .training import TrainSettings, shuffled_batches, train

_SETTINGS = tuple(TrainSettings.__dataclass_fields__)
_ARRAY_CHUNK = 512


def _normalisation(transform) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std of the ``Normalize`` step in a backbone's transform."""
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", [transform])
    for step in steps:
        if isinstance(step, T.Normalize):
            return torch.tensor(step.mean, dtype=torch.float32), torch.tensor(step.std, dtype=torch.float32)
        inner = getattr(step, "normalize", None)
        if isinstance(inner, T.Normalize):
            return torch.tensor(inner.mean, dtype=torch.float32), torch.tensor(inner.std, dtype=torch.float32)
    raise expected("backbone", "a backbone whose transform normalises its input", repr(transform))


class _PILImages(torch.utils.data.Dataset):
    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        try:
            im = self.images[i]
            return None if im is None else self.transform(im)
        except Exception:  # noqa: BLE001 - an unreadable image is skipped (counted by the caller)
            return None


def _stack(batch):
    ok = [t for t in batch if t is not None]
    return (torch.stack(ok) if ok else None), len(batch) - len(ok)


class UTHEncoder(BaseEstimator):
    """Unsupervised triplet hashing: a CNN trained without labels that maps an image to a code.

    Args:
        n_bits: code length K, a multiple of 8 (16 to 256 in the paper).
        backbone: the trunk, a CNN of :mod:`milvus_hash.features` (``vgg16`` as in the paper,
            ``alexnet``, ``resnet18``, ``resnet50``, ``small_cnn`` for 28x28 grayscale).
        weights: the trunk's initial weights: a torchvision weights name (``"DEFAULT"``), a local
            ``state_dict`` file, or None to train the trunk from a random initialisation (said in
            the log; the whole network is trained either way).
        activation: ``"relu"`` (the paper's) or ``"sigmoid"`` after the hash layer.
        batchnorm: BatchNorm1d on the hash layer's pre-activations.
        alpha, beta, margin, rotations, stage1_epochs, stage2_epochs, lr, stage2_lr, schedule,
            momentum, weight_decay, batch_size: training (:class:`~.training.TrainSettings`).
        workers: DataLoader workers decoding PIL images (0: in this process).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        random_state: seed of the initialisation, shuffling, rotations and dropout.
        checkpoint_dir: write a checkpoint after every epoch there; ``resume=True`` continues from
            the newest one.
        progress: a progress bar with the running losses.

    Attributes:
        net_: the trained :class:`~.model.HashNet` (eval mode).
        history_: per-epoch ``{"epoch", "stage", "lr", "seconds", "losses"}``.
        input_shape_: ``(C, H, W)`` of the network's input.
        trunk_weights_: the trunk's initial weights as loaded (a path, a weights name or "random").
    """

    def __init__(self, n_bits: int = 32, *, backbone: str = "vgg16", weights="DEFAULT", activation: str = "relu",
                 batchnorm: bool = True, alpha: float = 1.0, beta: float = 1.0, margin: float = 1.0,
                 rotations=(-10.0, -5.0, 5.0, 10.0), stage1_epochs: int = 1, stage2_epochs: int = 3,
                 lr: float = 0.001, stage2_lr: float = 0.0001, schedule: str = "step", momentum: float = 0.9,
                 weight_decay: float = 5e-4, batch_size: int = 64, workers: int = 2, device="auto",
                 random_state: int = 0, checkpoint_dir=None, resume: bool = False, progress: bool = True):
        self.n_bits = n_bits
        self.backbone = backbone
        self.weights = weights
        self.activation = activation
        self.batchnorm = batchnorm
        self.alpha = alpha
        self.beta = beta
        self.margin = margin
        self.rotations = rotations
        self.stage1_epochs = stage1_epochs
        self.stage2_epochs = stage2_epochs
        self.lr = lr
        self.stage2_lr = stage2_lr
        self.schedule = schedule
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.workers = workers
        self.device = device
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress

    # -- construction -----------------------------------------------------------------------------
    def _settings(self) -> TrainSettings:
        return TrainSettings(**{k: getattr(self, k) for k in _SETTINGS})

    def _build(self, weights):
        from ...features import RandomWeightsWarning, load_trunk

        check_n_bits(self.n_bits)
        if self.activation not in ACTIVATIONS:
            raise expected("activation", f"one of {ACTIVATIONS}", repr(self.activation))
        torch.manual_seed(int(self.random_state))  # the trunk's and the hash layer's initialisation
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            trunk = load_trunk(self.backbone, weights)
        net = HashNet(trunk.module, trunk.dim, int(self.n_bits), activation=self.activation,
                      batchnorm=bool(self.batchnorm))
        self.transform_ = trunk.transform
        self.input_shape_ = tuple(trunk.input_shape)
        self.mean_, self.std_ = _normalisation(trunk.transform)
        self.trunk_weights_ = trunk.label
        return net

    def _device(self) -> torch.device:
        from ...features import resolve_device

        return resolve_device(self.device)

    # -- inputs -----------------------------------------------------------------------------------
    def _array_tensor(self, X: np.ndarray) -> torch.Tensor:
        c, h, w = self.input_shape_
        shapes = f"(n, {h}, {w})" + (f" or (n, {h}, {w}, 1)" if c == 1 else f" or (n, {h}, {w}, {c})")
        if X.dtype != np.uint8:
            raise expected("images", f"a uint8 array of shape {shapes} (or PIL images)", f"dtype {X.dtype}")
        received = X.shape
        if X.ndim == 3 and c == 1:
            X = X[..., None]
        if X.ndim != 4 or X.shape[1:3] != (h, w) or X.shape[3] != c or len(X) == 0:
            what = f"{c} channel{'s' if c > 1 else ''} of {h}x{w}"
            raise expected("images", f"a non-empty uint8 array of shape {shapes} ({what}; resize, or pass PIL "
                           "images to use the backbone's transform)", f"shape {received}")
        t = torch.from_numpy(np.ascontiguousarray(X)).permute(0, 3, 1, 2).float().div_(255.0)
        return (t - self.mean_.view(1, -1, 1, 1)) / self.std_.view(1, -1, 1, 1)

    def _is_array(self, X) -> bool:
        if isinstance(X, np.ndarray):
            return True
        if isinstance(X, (list, tuple)) and X and isinstance(X[0], np.ndarray):
            raise expected("images", "a uint8 array or a sequence of PIL images",
                           "a list of arrays (stack them with np.stack)")
        if not hasattr(X, "__len__") or not hasattr(X, "__getitem__") or isinstance(X, (str, bytes)):
            raise expected("images", "a uint8 array or a sequence of PIL images", type(X).__name__)
        if len(X) == 0:
            raise expected("images", "at least one image", "an empty sequence")
        return False

    def _loader(self, X, *, shuffle: bool, generator=None):
        if not isinstance(self.workers, int) or self.workers < 0:
            raise expected("workers", "an int >= 0", repr(self.workers))
        return torch.utils.data.DataLoader(_PILImages(X, self.transform_), batch_size=int(self.batch_size),
                                           shuffle=shuffle, generator=generator, num_workers=self.workers,
                                           collate_fn=_stack, drop_last=False)

    # -- estimator API ----------------------------------------------------------------------------
    def fit(self, X, y=None, *, log=None) -> "UTHEncoder":
        """Train on images ``X`` (labels, if given, are ignored: UTH is unsupervised)."""
        log = log or (print if self.progress else (lambda _msg: None))
        settings = self._settings()
        net = self._build(self.weights)
        if self.weights is None:
            log(f"UTH: the {self.backbone!r} trunk starts from a random initialisation (weights=None)")
        device = self._device()
        if self._is_array(X):
            data = self._array_tensor(np.asarray(X))
            batches, n = shuffled_batches(data, settings.batch_size), len(data)
        else:
            n = len(X)

            def batches(epoch, gen):
                unreadable[epoch] = 0
                for x, bad in self._loader(X, shuffle=True, generator=gen):
                    unreadable[epoch] += bad
                    if x is not None:
                        yield x
        unreadable: dict[int, int] = {}
        if n < 2:
            raise expected("images", "at least 2 images", n)
        fill = (0.0 - self.mean_) / self.std_
        n_batches = (n + settings.batch_size - 1) // settings.batch_size
        self.history_ = [h.__dict__ for h in train(
            net, batches, n_batches, settings=settings, fill=fill, device=device, seed=int(self.random_state),
            checkpoint_dir=self.checkpoint_dir, resume=self.resume, identity=self._identity(),
            progress=self.progress, log=log)]
        self.net_ = net.eval()
        self.n_unreadable_ = unreadable[max(unreadable)] if unreadable else 0
        self.n_images_ = n - self.n_unreadable_
        if self.n_unreadable_:
            log(f"UTH: {self.n_unreadable_} unreadable images skipped")
        self._fingerprint = None
        return self

    def _identity(self) -> dict:
        p = {k: v for k, v in self.get_params().items() if k not in ("workers", "device", "checkpoint_dir",
                                                                      "resume", "progress")}
        p["weights"] = str(p["weights"])
        p["rotations"] = [float(r) for r in p["rotations"]]
        return p

    @torch.inference_mode()
    def hash_outputs(self, X) -> np.ndarray:
        """Hash-layer outputs ``float32 (n, n_bits)`` of images ``X`` (deterministic: eval mode).
        With PIL images, unreadable ones raise."""
        check_is_fitted(self, "net_")
        device = next(self.net_.parameters()).device
        self.net_.eval()
        if self._is_array(X):
            t = self._array_tensor(np.asarray(X))
            chunks = [self.net_(t[s:s + _ARRAY_CHUNK].to(device)).float().cpu() for s in range(0, len(t), _ARRAY_CHUNK)]
        else:
            ds = _PILImages(X, self.transform_)
            chunks = [self.net_(x.to(device)).float().cpu() for x, _ in self._loader(X, shuffle=False) if x is not None]
            if sum(len(c) for c in chunks) != len(ds):
                raise expected("images", "images the backbone's transform can read", "some that failed to load")
        return torch.cat(chunks).numpy()

    def transform(self, X) -> np.ndarray:
        """Packed codes ``uint8 (n, n_bits // 8)``: bit ``k`` is 1 where output ``k >= 0.5``."""
        return pack_bits(self.hash_outputs(X) >= 0.5)

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    # -- identity, persistence, pipeline ------------------------------------------------------------
    def _state(self) -> dict:
        return {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}

    @property
    def fingerprint_(self) -> str:
        check_is_fitted(self, "net_")
        if getattr(self, "_fingerprint", None) is None:
            state = self._state()
            self._fingerprint = fingerprint(*(state[k].numpy() for k in sorted(state)),
                                            kind="uth", keys=sorted(state), **self._identity())
        return self._fingerprint

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(kind="uth", fingerprint=self.fingerprint_, n_bits=int(self.n_bits))

    def save(self, path: str | Path) -> Path:
        """Write the network and its parameters (``torch.save``; loadable with ``weights_only=True``)."""
        check_is_fitted(self, "net_")
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"params": self._identity(), "history": self.history_, "n_images": self.n_images_,
                "trunk_weights": self.trunk_weights_, "fingerprint": self.fingerprint_}
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"kind": "uth", "meta": json.dumps(meta), "state_dict": self._state()}, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, device="auto") -> "UTHEncoder":
        path = Path(path).expanduser()
        if not path.is_file():
            raise expected("encoder", "an existing UTH encoder file (.pt)", f"{str(path)!r}, which is no file")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise expected("encoder", "a UTH encoder file written by UTHEncoder.save",
                           f"{path} ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict) or data.get("kind") != "uth" or "state_dict" not in data:
            raise expected("encoder", "a UTH encoder file written by UTHEncoder.save", f"{path} (no kind 'uth')")
        meta = json.loads(data["meta"])
        params = dict(meta["params"])
        params["weights"] = None if params["weights"] == "None" else params["weights"]
        enc = cls(**params, device=device, progress=False)
        net = enc._build(None)
        net.load_state_dict(data["state_dict"])
        enc.net_ = net.to(enc._device()).eval()
        enc.history_, enc.n_images_ = meta["history"], meta["n_images"]
        enc.trunk_weights_ = meta["trunk_weights"]
        enc._fingerprint = None
        if enc.fingerprint_ != meta["fingerprint"]:
            raise expected("encoder", "an intact UTH encoder file", f"{path} (its weights do not match its fingerprint)")
        return enc

    def as_pipeline(self):
        """``(backbone, codes)`` for an ingestion pipeline (``ingestion.pipeline.ingest``): the network as a backbone
        whose "features" are the hash-layer outputs (same transform, no normalisation), and an
        encoder that thresholds them at 0.5."""
        from ...features import Backbone

        check_is_fitted(self, "net_")
        backbone = Backbone("uth", self.net_, self.transform_, int(self.n_bits), f"uth:{self.fingerprint_[:16]}",
                            self.fingerprint_, next(self.net_.parameters()).device, normalize=False, amp=False)
        return backbone, _ThresholdCodes(self.encoder_spec())


class _ThresholdCodes:
    """Hash-layer outputs ``(n, n_bits)`` -> packed codes; the UTH encoder's identity."""

    def __init__(self, spec: EncoderSpec):
        self._spec = spec
        self.n_features_in_ = spec.n_bits

    def transform(self, H) -> np.ndarray:
        H = np.asarray(H)
        if H.ndim != 2 or H.shape[1] != self._spec.n_bits:
            raise expected("outputs", f"hash-layer outputs of shape (n, {self._spec.n_bits})", f"shape {H.shape}")
        return pack_bits(H >= 0.5)

    def encoder_spec(self) -> EncoderSpec:
        return self._spec


__all__ = ["UTHEncoder"]
